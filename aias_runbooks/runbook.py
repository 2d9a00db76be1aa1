"""What a notebook holds on to: the target environment, thresholds, run id and the findings so far.

A notebook starts with `rb = runbook.start("<slug>", environment)`, records findings as it goes and ends with
`rb.verdict()`, whose display output carries the verdict the runner reads back.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from .findings import FINDINGS_MIME, Finding, Verdict
from .settings import Environment, load_environment
from .sources import database
from .thresholds import load_thresholds


@dataclass
class Runbook:
    slug: str
    env: Environment
    run_id: str
    thresholds: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    _engine: Engine | None = None

    def record(self, findings: Finding | list[Finding]) -> FindingList:
        """Add findings to the verdict and show them."""
        batch = [findings] if isinstance(findings, Finding) else list(findings)
        self.findings.extend(batch)
        return FindingList(batch)

    def verdict(self) -> Verdict:
        """The verdict so far; as a cell's last expression it is what the runner reads back."""
        return Verdict(self.slug, self.env.name, self.run_id, list(self.findings))

    @property
    def db(self) -> Engine:
        """The read-only engine for this environment's database (opened on first use)."""
        if self._engine is None:
            dsn = self.env.secret("database_url")
            if dsn is None:
                raise RuntimeError(self.env.missing_secret_message("database_url"))
            self._engine = database.connect(dsn, f"aias-runbooks/{self.slug}/{self.run_id}")
        return self._engine

    def query(self, name: str, **params) -> pd.DataFrame:
        return database.query(self.db, name, **params)

    def _repr_html_(self) -> str:
        rows = {"runbook": self.slug, "environment": f"{self.env.name} ({self.env.description})",
                "API": self.env.api_base_url or "(not configured)", "run id": self.run_id}
        cells = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>"
                        f"{html.escape(str(v))}</td></tr>" for k, v in rows.items())
        return f"<table>{cells}</table>"


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
    """Open a runbook against an environment profile; the runner's run id is used when there is one."""
    profile = load_environment(env)
    run_id = os.environ.get("AIAS_RUN_ID") or "interactive-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Runbook(slug, profile, run_id, load_thresholds(profile.thresholds))
