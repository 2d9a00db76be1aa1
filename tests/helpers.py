"""Helpers the test files share: the real CLI, the session's sandbox (its DSNs, a superuser session), a run's
report (its findings, tables, audit records), waiting for a condition with a deadline, the secret scan, targets that
misbehave. Fixtures and pytest hooks live in conftest.py; a test file imports helpers from here, never from
conftest.py or from another test file."""

from __future__ import annotations

import base64
import html
import json
import os
import random
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import nbformat
import psycopg
import pytest
from dotenv import dotenv_values

from aias_runbooks import paths
from aias_runbooks.sandbox import processes
from aias_runbooks.settings import load_environment
from aias_runbooks.sources.deploys import Vercel

# The repository and the tests' own fixture notebooks (tests/notebooks/: runbooks that crash, leak, hang...).
ROOT = Path(__file__).resolve().parents[1]
FIXTURE_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
# The severities that mean a problem (a finding to act on), as opposed to OK and UNKNOWN.
PROBLEMS = {"WARNING", "CRITICAL"}


CLI = [sys.executable, "-m", "aias_runbooks.cli"]


def free_port_base() -> int:
    """Five free consecutive ports, outside the kernel's ephemeral range: a sandbox restarts servers (a scenario's
    emulator, the pooler) on its ports mid-session, and a port in that range may meanwhile be the local end of any
    outgoing connection on the machine (a CI run lost its pooler's port that way)."""
    low, high = _ephemeral_ports()
    starts = [b for b in range(20000, 65520, 10) if b + 4 < low or b > high]
    for _ in range(200):
        base = random.choice(starts)
        if all(processes.port_free(base + i) for i in range(5)):
            return base
    raise RuntimeError("no five consecutive free ports found (a sandbox uses base..base+4 with --pooler)")


def _ephemeral_ports() -> tuple[int, int]:
    """The range the kernel picks outgoing connections' local ports from (Linux's default where unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def sandbox_env() -> dict[str, str | None]:
    """The running sandbox's sandbox.env (its URLs and the superuser's and the application's DSNs)."""
    return dotenv_values(paths.sandbox_dir() / "sandbox.env")


def sandbox_dsn() -> str:
    """The running sandbox's superuser connection string (the test session's sandbox), for tests' setup."""
    return sandbox_env()["AIAS_SANDBOX_ADMIN_DATABASE_URL"]


def app_dsn() -> str:
    """The application role's (aias_app) connection string: sessions the platform itself would open."""
    return sandbox_env()["AIAS_SANDBOX_APP_DATABASE_URL"]


def monitor_dsn() -> str:
    """What the runbooks connect with: the sandbox profile's database_url, the monitoring role aias_monitor."""
    return load_environment("sandbox").secret("database_url").reveal()


def sandbox_password() -> str:
    """The password of the DSN the runbooks use (the monitoring role's): it must never reach a report."""
    return urlsplit(monitor_dsn()).password


def cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or os.environ.copy())


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    output: Path

    @property
    def folders(self) -> list[Path]:
        return sorted(p.parent for p in self.output.glob("*/*/verdict.json"))

    @property
    def folder(self) -> Path:
        """This run's report folder, as the CLI printed it."""
        reports = [line.split("report: ", 1)[1] for line in self.proc.stdout.splitlines() if "report: " in line]
        assert len(reports) == 1, f"no report printed\n{self.proc.stdout}\n{self.proc.stderr}"
        return Path(reports[0]).parent

    @property
    def verdict(self) -> dict:
        return json.loads((self.folder / "verdict.json").read_text())

    @property
    def codes(self) -> dict[str, str]:
        return {f["code"]: f["severity"] for f in self.verdict["findings"]}


def finding(result: Run, code: str) -> dict:
    """The run's first finding with this code (StopIteration if it has none)."""
    return next(f for f in result.verdict["findings"] if f["code"] == code)


def table_text(result: Run) -> str:
    """The text of every table the run's notebook shows (pandas' HTML), unescaped, whitespace made single spaces:
    what a reader of the report sees in its tables."""
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    shown = ["".join(o["data"]["text/html"]) for c in nb["cells"] for o in c.get("outputs", [])
             if "dataframe" in "".join(o.get("data", {}).get("text/html", ""))]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", "\n".join(shown))).split())


def audit_records(result: Run) -> list[dict]:
    """Every record of the run's output/audit.jsonl, in order."""
    return [json.loads(line) for line in (result.output / "audit.jsonl").read_text().splitlines()]


def wait_for(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll condition() until it holds; fail naming what was awaited once timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def admin_session(timeout: float = 15) -> psycopg.Connection:
    """A superuser session on the sandbox for a test's own setup and probes. A connection refused or dropped
    while it is being made is tried again until `timeout`: once on CI, one closed during authentication
    (no message from the server) failed a test before it began."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(sandbox_dsn(), autocommit=True)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def forget_recent_failures() -> None:
    """Forget the failures earlier tests of this session left in the last hour of the platform's history (5xx and
    4xx answers, logged errors such as refused emails, failed payments and webhook processing): a test that needs a
    quiet recent past (monitoring, triage, a healthy runbook) starts from the platform as a fresh `sandbox up` leaves
    it. Run it before switching to the test's scenario, which writes its own history."""
    with admin_session() as conn:
        conn.execute("DELETE FROM public.api_requests WHERE status >= 400 AND created_at > now() - interval '1 hour'")
        conn.execute("DELETE FROM public.error_logs WHERE created_at > now() - interval '1 hour'")
        conn.execute("DELETE FROM public.stripe_events WHERE received_at > now() - interval '1 hour' "
                     "AND (status = 'failed' OR type = 'invoice.payment_failed')")


@contextmanager
def client_backends(total: int, application: str = "aias-api/oversized-pool") -> Iterator[None]:
    """Hold application connections (as aias_app) until `total` client backends are in use, counting a probe
    session that stays open meanwhile; all closed afterwards."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as probe:
        in_use = probe.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                               ).fetchone()[0]
        held = [psycopg.connect(app_dsn(), application_name=application, autocommit=True)
                for _ in range(total - in_use)]
        try:
            yield
        finally:
            for conn in held:
                conn.close()


def code_cells(result: Run) -> dict[str, dict]:
    """The executed notebook's code cells by id."""
    nb = json.loads((result.folder / "notebook.ipynb").read_text())
    return {c["id"]: c for c in nb["cells"] if c["cell_type"] == "code"}


# Secrets: every spelling of a canary value, looked for in every file and stream a run leaves.

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def encodings(secret: str) -> set[str]:
    """Every spelling of secret a report could hold: as is, HTML-escaped (with and without quotes), repr- and
    unicode_escape-escaped, JSON-escaped (ASCII or not, also on top of each other spelling), percent-encoded
    and -decoded, and base64 (standard and URL-safe) at each byte alignment, as inside a larger blob."""
    plain = {secret, html.escape(secret), html.escape(secret, quote=False), repr(secret)[1:-1],
             secret.encode("unicode_escape").decode("ascii"), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe=""), quote(secret), unquote(secret)}
    spelled = plain | {json.dumps(p, ensure_ascii=ascii_only)[1:-1] for p in plain for ascii_only in (True, False)}
    data = secret.encode()
    for offset in range(3):
        aligned = data[offset:offset + 3 * ((len(data) - offset) // 3)]
        spelled |= {base64.b64encode(aligned).decode(), base64.urlsafe_b64encode(aligned).decode()}
    return spelled


def needles(values: dict[str, str]) -> dict[str, str]:
    """{spelling: which secret} for the canaries, their URL passwords (and the '@'/':' pieces of them a
    first-'@' parser would print as a host or user) and each body line of a multi-line canary."""
    pieces = []
    for value in values.values():
        pieces.append(value)
        if value.startswith("postgresql://"):
            password = unquote(urlsplit(value).password)
            pieces += [password, *(p for p in re.split("[@:]", password) if len(p) >= 6)]
        pieces += [line for line in value.splitlines()[1:-1] if len(line) >= 16]
    return {spelling: piece[:24] for piece in pieces for spelling in encodings(piece) if len(spelling) >= 6}


def views(path: Path) -> list[str]:
    """The file's text plus what a reader sees of it: a notebook's strings with its lists of lines, traceback
    frames and stream chunks joined (with and without ANSI colours); an HTML page's text without its tags."""
    text = path.read_bytes().decode("utf-8", "replace")
    seen = [text]
    if path.suffix == ".ipynb":
        nb = nbformat.reads(text, as_version=4)
        for cell in nb.cells:
            outputs = cell.get("outputs", [])
            seen += [cell.source, "".join(o.get("text", "") for o in outputs if o.output_type == "stream")]
            for out in outputs:
                seen += [out.get("evalue", ""), "\n".join(out.get("traceback", []))]
                seen += [v if isinstance(v, str) else json.dumps(v) for v in out.get("data", {}).values()]
        seen += [_ANSI.sub("", s) for s in seen]
    if path.suffix == ".html":
        seen.append(html.unescape(re.sub(r"<[^>]+>", "", re.sub(r">\s+<", "><", text))))
    return seen


def leaks(values: dict[str, str], output: Path, *streams: str) -> list[str]:
    """Where any spelling of any canary is found: files under output, then the given stdout/stderr."""
    found = needles(values)
    places = [(p.relative_to(output).as_posix(), views(p)) for p in sorted(output.rglob("*")) if p.is_file()]
    places += [(f"stream {i}", [s, _ANSI.sub("", s)]) for i, s in enumerate(streams)]
    return sorted({f"{where}: {secret}... as {spelling[:40]!r}" for where, texts in places
                   for spelling, secret in found.items() if any(spelling in t for t in texts)})


# Targets that misbehave: a port that never answers, an HTTP server that drips or dawdles.

@contextmanager
def hanging_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a frozen host)."""
    server = socket.create_server(("127.0.0.1", free_port_base()))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


class Target:
    """An HTTP target on 127.0.0.1 of the test's own: `drip` sends an answer's status line, then a header that
    never ends, one byte every `every` seconds, until the client goes away; `slow` waits `every` seconds, then
    sends a whole healthy answer ({"ok": true}) and closes the connection."""

    def __init__(self, mode: str, every: float) -> None:
        stop = self.stop = threading.Event()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.recv(65536)
                try:
                    if mode == "slow":
                        if not stop.wait(every):
                            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                                 b"Connection: close\r\nContent-Length: 12\r\n\r\n"
                                                 b"{\"ok\": true}")
                        return
                    for byte in b"HTTP/1.1 200 OK\r\nX-Dripping: ":
                        self.request.sendall(bytes([byte]))
                    while not stop.wait(every):
                        self.request.sendall(b"a")
                except OSError:   # the client gave up and closed the connection
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


# The CLI's other commands: `run` refusing input, `schedule run-due`, `doctor`.

def refuse(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`aias-runbooks run ...` from an empty folder, with no sandbox to consult."""
    (tmp_path / "no-sandbox").mkdir(exist_ok=True)
    env = os.environ | {"AIAS_SANDBOX_DIR": str(tmp_path / "no-sandbox")} | (env or {})
    if "--output" not in args:
        args = (*args, "--output", str(tmp_path / "output"))
    return subprocess.run([*CLI, "run", *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def run_due(schedules: Path, output: Path, now: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return cli("schedule", "run-due", "--schedules", str(schedules), "--output", str(output), "--now", now, env=env)


def runs(archive: Path | str) -> list[dict]:
    """Every run filed in an archive (a folder or an s3:// URL), oldest first, as the catalogue holds them."""
    from aias_runbooks.runner import catalog
    return catalog.read_runs(catalog.at(archive))


def write_schedule(tmp_path: Path, notify_yaml: str, runbook: str = "health-check",
                   parameters: str = "{samples: 10, interval_ms: 0}") -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text("schedules:\n  - name: health-5min\n    cron: '*/5 * * * *'\n"
                    f"    runbook: {runbook}\n    environment: sandbox\n    parameters: {parameters}\n"
                    f"    notify: {notify_yaml}\n")
    return path


DOCTOR_BOUND_S = 60   # every probe has a 5 s timeout and they run at once: a hang must not hold the command


def doctor(*args: str, **env: str):
    result = cli("doctor", *args, timeout=DOCTOR_BOUND_S, env=os.environ | env)
    lines = result.stdout.splitlines()
    assert lines and all(line.split()[0] in {"OK", "WARNING", "CRITICAL", "UNKNOWN"} for line in lines), \
        result.stdout + result.stderr
    return result, lines


def line(lines: list[str], name: str) -> str:
    (found,) = [entry for entry in lines if entry[9:33].strip() == name]   # status word, name, detail
    return found


# The platform's state, as tests of several runbooks read it.

def vercel() -> Vercel:
    profile = load_environment("sandbox")
    return Vercel(profile.secret("vercel_token").reveal(), profile.urls["vercel_api"], profile.vercel_project)


def leaked_longer_than(seconds: float, sessions: int = 8) -> bool:
    """The leak scenario's sessions have all been idle in transaction for more than `seconds`."""
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'aias-api/export-worker' "
                            "AND state = 'idle in transaction' AND now() - state_change > make_interval(secs => %s)",
                            (seconds,)).fetchone()[0] >= sessions


HOSTILE_APP = "[docs](javascript:alert(1))<img src=x onerror=alert(2)>"


def live_markup(html: str) -> list[str]:
    """Links, images and tags an attacker's text could have produced in the report."""
    return re.findall(r"<a [^>]*href=\"javascript:[^>]*>|<img src=x[^>]*>|<b>\*\*bold", html, flags=re.IGNORECASE)


def no_problem(result: Run) -> None:
    """The run found nothing to act on: exit 0 and no WARNING or CRITICAL finding."""
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert not PROBLEMS & set(result.codes.values()), result.verdict["findings"]


def monitor_connections(sandbox: Path, result: Run) -> int:
    """How many sessions the run opened as the monitoring role, from the sandbox's postgres.log (the run names its
    sessions aias-runbooks/<runbook>/<run id>)."""
    app = f"aias-runbooks/{result.verdict['runbook']}/{result.verdict['run_id']}"[:63]
    log = (sandbox / "logs" / "postgres.log").read_text()
    return log.count(f"connection authorized: user=aias_monitor database=postgres application_name={app}\n")


def billing_healthy(result: Run) -> None:
    """A billing runbook's run on a healthy platform: exit 0, no problem, Stripe and the database agree, a report."""
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert not PROBLEMS & set(result.codes.values())
    assert "SUBSCRIPTIONS_MATCH" in result.codes, "all seeded subscriptions agree with the database"
    assert {"notebook.ipynb", "report.html", "verdict.json"} <= {p.name for p in result.folder.iterdir()}


# full-system-check's report, as its own tests and those through a pooler judge it.

SUBSYSTEMS = {"API", "Database", "Database pool", "Database queries", "Vercel deployment", "Vercel error rate",
              "Supabase Auth", "Stripe webhooks", "Resend email", "Status: stripe", "Status: supabase",
              "Status: vercel", "Status: resend"}


def rows(result: Run) -> dict[str, dict]:
    """The subsystem table as the verdict carries it (SYSTEM_CHECK's evidence): subsystem -> status, detail, next."""
    return finding(result, "SYSTEM_CHECK")["evidence"]["subsystems"]


def ran_to_the_end(result: Run) -> None:
    assert "RUNBOOK_ERROR" not in result.codes, result.verdict["findings"]
    for cell_id, cell in code_cells(result).items():
        assert not [o for o in cell["outputs"] if o["output_type"] == "error"], cell_id
    first = [o for o in code_cells(result)["fsc-04"]["outputs"] if "text/html" in o.get("data", {})]
    assert first and "Vercel error rate" in "".join(first[0]["data"]["text/html"]), "the table is the first result"
    assert set(rows(result)) == SUBSYSTEMS, "every subsystem has its row, whatever its state"


def healthy(result: Run) -> None:
    assert result.proc.returncode == 0, result.verdict["findings"]
    assert not PROBLEMS & set(result.codes.values()), result.verdict["findings"]
    assert {r["status"] for r in rows(result).values()} == {"up"}, rows(result)
    assert not [r["run_next"] for r in rows(result).values() if r["run_next"]]
    assert finding(result, "SYSTEM_CHECK")["title"] == f"Every subsystem checked is up ({len(SUBSYSTEMS)} of " \
                                                       f"{len(SUBSYSTEMS)})."
    assert {"DB_POOL_OK", "ERROR_RATE_OK", "WEBHOOK_SUCCESS_RATE_OK", "EMAIL_DELIVERY_OK",
            "EMAIL_DOMAIN_VERIFIED", "API_HEALTHY", "EXTERNAL_STATUS_OK"} <= result.codes.keys()
    assert {"notebook.ipynb", "report.html", "verdict.json"} == {p.name for p in result.folder.iterdir()}


def stop_serve(proc: subprocess.Popen | None, timeout: float = 120) -> None:
    """Stop a serve process as an operator does (SIGTERM: it drains), killed only if it outlives `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
