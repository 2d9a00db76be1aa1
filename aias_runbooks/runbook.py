"""What a notebook holds on to: the target environment, thresholds, run id and the findings so far.

A notebook starts with `rb = runbook.start("<slug>", environment)`, records findings as it goes and ends with
`rb.verdict()`, whose display output carries the verdict the runner reads back.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from .checks import connections
from .errors import first_line
from .findings import FINDINGS_MIME, Finding, Severity, Verdict, html_table
from .runner.redact import redact_text, secret_values
from .settings import Environment, load_environment
from .thresholds import load_thresholds

if TYPE_CHECKING:   # the database and Stripe parts are imported where used: health-check never pays for them
    from sqlalchemy import Connection
    from sqlalchemy.exc import SQLAlchemyError

    from .sources.stripe import StripeClient

T = TypeVar("T")


@dataclass
class Runbook:
    slug: str
    env: Environment
    run_id: str
    thresholds: dict[str, Any]
    incident: str | None = None
    findings: list[Finding] = field(default_factory=list)
    _conn: Connection | None = None
    _db_problem: str | None = None
    _db_target: str = ""
    _stripe_problem: str | None = None
    _stripe: StripeClient | None = None

    def __post_init__(self) -> None:
        # Tables show each text whole (an error, a message): pandas cuts a cell at 50 characters by default, which
        # hid the part that names the cause; the report wraps long cells instead.
        pd.set_option("display.max_colwidth", None)

    def record(self, findings: Finding | list[Finding]) -> FindingList:
        """Add findings to the verdict and show them.

        Under the runner each finding is also appended, redacted, to the run's journal at once, so it reaches
        the verdict however the run ends (a later cell failing, a timeout, SIGTERM, a dead kernel).
        """
        batch = [findings] if isinstance(findings, Finding) else list(findings)
        self.findings.extend(batch)
        if journal := os.environ.get("AIAS_FINDINGS_JOURNAL"):
            with open(journal, "a", encoding="utf-8") as fh:
                fh.writelines(redact_text(json.dumps(f.to_dict()), self.secret_values)[0] + "\n" for f in batch)
        return FindingList(batch)

    @cached_property
    def secret_values(self) -> list[str]:
        """The profile's secret values in every form the redaction masks, derived once per run: for the findings
        journal and the audit records, which lie outside the report folder the runner scans."""
        return secret_values(s.reveal() for s in self.env.secrets().values())

    def verdict(self) -> Verdict:
        """The verdict so far; as a cell's last expression it is what the runner reads back."""
        return Verdict(self.slug, self.env.name, self.run_id, list(self.findings))

    def connection(self) -> Connection | None:
        """The run's one read-only database connection, opened on first use.

        When the server cannot be reached or refuses the connection, that is recorded once as a finding
        (DB_UNREACHABLE or DB_POOL_SATURATED) and None is returned from then on: a diagnosis never retries
        against a server that is out of connections.
        """
        from sqlalchemy.exc import DBAPIError

        from .sources import database
        if self._conn is None and self._db_problem is None:
            dsn = self.env.secret("database_url")
            if dsn is None:
                self._db_problem = self.env.missing_secret_message("database_url")
                self._show(self.record(Finding("DB_NOT_CONFIGURED", Severity.UNKNOWN, self._db_problem)))
                return None
            engine = database.connect(dsn, f"aias-runbooks/{self.slug}/{self.run_id}")
            self._db_target = f"{engine.url.host}:{engine.url.port or 5432}/{engine.url.database or ''}"
            try:
                self._conn = engine.connect()
            except DBAPIError as exc:
                self._db_problem = str(exc.orig).strip()
                self._show(self.record(connections.unreachable(self._db_problem, self._db_target,
                                                               engine.url.username or "",
                                                               getattr(exc.orig, "sqlstate", None))))
        return self._conn

    def from_stripe(self, read: Callable[[StripeClient], T]) -> T | None:
        """What read(client) returns from Stripe; None when Stripe is not configured (STRIPE_NOT_CONFIGURED) or
        does not answer (STRIPE_UNREACHABLE), each recorded once: later reads are skipped, as for the database."""
        from .checks import billing
        from .sources.stripe import StripeClient, StripeUnavailable
        if self._stripe_problem:
            return None
        key = self.env.secret("stripe_secret_key")
        if key is None:
            self._stripe_problem = self.env.missing_secret_message("stripe_secret_key")
            self._show(self.record(billing.not_configured("Stripe", self._stripe_problem)))
            return None
        if self._stripe is None:
            self._stripe = StripeClient(key.reveal(), self.env.stripe_api_base)
        try:
            return read(self._stripe)
        except StripeUnavailable as exc:
            self._stripe_problem = str(exc)
            self._show(self.record(billing.stripe_unreachable(self._stripe_problem)))
            return None

    def query(self, name: str, **params) -> pd.DataFrame:
        """The named query as a DataFrame; empty (with attrs["error"]) when the database could not answer.

        A lost connection is recorded once as DB_UNREACHABLE and every later query is skipped; any other
        failure of this one query is DB_QUERY_FAILED.
        """
        from sqlalchemy.exc import SQLAlchemyError

        from .sources import database
        conn = self.connection()
        if conn is None:
            return _empty(name, f"skipped: {self._db_problem}")
        try:
            return database.query(conn, name, **params)
        except database.GuardMissing as exc:   # never run unguarded: this query and every later one are skipped
            self._db_problem = str(exc)
            self._conn = None
            with contextlib.suppress(SQLAlchemyError):
                conn.close()
            self._show(self.record(Finding(
                "DB_GUARD_MISSING", Severity.UNKNOWN, "The diagnosis session could not be made read-only and "
                "bounded: no query was run.", {"error": str(exc), "target": self._db_target},
                ["Give the monitoring role the settings as its own (ALTER ROLE ... SET default_transaction_read_only "
                 "= on, statement_timeout, lock_timeout), or use the direct or session connection string."])))
            return _empty(name, f"skipped: {self._db_problem}")
        except SQLAlchemyError as exc:
            message = first_line(exc)
            if not isinstance(exc, database.ExtensionMissing) and self._lost(exc):   # that one never reached it
                return _empty(name, f"skipped: {self._db_problem}")
            self._show(self.record(Finding("DB_QUERY_FAILED", Severity.UNKNOWN, f"Query '{name}' failed: {message}",
                                           {"query": name}, ["Re-run; if it persists, run the query by hand."])))
            return _empty(name, message)

    def ping(self, samples: int = 20, interval_ms: int = 50) -> pd.DataFrame:
        """Database round-trip samples (see sources.database.ping); no rows when it cannot be reached.

        A failed round trip stays in the frame as a sample (connections.latency reports it as DB_PING_FAILED);
        when the connection itself was lost the probe has stopped there, and DB_UNREACHABLE is recorded once.
        """
        from .sources import database
        conn = self.connection()
        if conn is None:
            return database.ping_frame([])
        frame = database.ping(conn, samples, interval_ms)
        if not frame["answered"].all() and (conn.invalidated or conn.closed):
            self._lost(None, frame.loc[~frame["answered"], "error"].iloc[0])
        return frame

    def _lost(self, exc: SQLAlchemyError | None, message: str | None = None) -> bool:
        """When the connection broke (server gone, killed backend, network), record DB_UNREACHABLE once."""
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError
        conn = self._conn
        broken = exc is None or not isinstance(exc, DBAPIError) or exc.connection_invalidated
        if conn is None or not (broken or conn.invalidated or conn.closed):
            return False
        self._db_problem = f"the connection was lost during the run: {message or first_line(exc)}"
        self._conn = None
        with contextlib.suppress(SQLAlchemyError):
            conn.close()
        self._show(self.record(connections.unreachable(self._db_problem, self._db_target)))
        return True

    @staticmethod
    def _show(findings: FindingList) -> None:
        from IPython.display import display
        display(findings)

    def _repr_html_(self) -> str:
        rows = {"runbook": self.slug, "environment": f"{self.env.name} ({self.env.description})",
                "API": self.env.api_base_url or "(not configured)", "run id": self.run_id}
        return html_table(rows)


@dataclass
class FindingList:
    findings: list[Finding]

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        """HTML for people; the findings as JSON so a run that fails later still reports them."""
        return {FINDINGS_MIME: [f.to_dict() for f in self.findings], "text/plain": repr(self),
                "text/html": "".join(f._repr_html_() for f in self.findings) or "<i>no findings</i>"}

    def __repr__(self) -> str:
        return "\n".join(map(str, self.findings)) or "no findings"


def start(slug: str, env: str = "sandbox") -> Runbook:
    """Open a runbook against an environment profile; the runner's run id is used when there is one.

    In a notebook each cell from here on is a run section with a budget for its HTTP requests (sources.http):
    a section calling several targets ends by naming the one that did not answer, before the cell timeout."""
    profile = load_environment(env)
    profile.check_ready()
    _sections()
    run_id = os.environ.get("AIAS_RUN_ID") or "interactive-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Runbook(slug, profile, run_id, load_thresholds(profile.thresholds), os.environ.get("AIAS_INCIDENT"))


def _sections() -> None:
    """Open a new section budget before each cell IPython runs (and now, for the rest of this one); once."""
    from IPython import get_ipython

    from .sources import http
    shell = get_ipython()
    if shell is None:   # not in a notebook: each request keeps its own deadline only
        return
    if http.start_section not in shell.events.callbacks["pre_run_cell"]:
        shell.events.register("pre_run_cell", http.start_section)
    http.start_section()


def _empty(name: str, error: str) -> pd.DataFrame:
    frame = pd.DataFrame()
    frame.attrs.update(query=name, error=error)
    return frame
