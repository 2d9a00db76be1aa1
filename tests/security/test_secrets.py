"""The canary suite: every runbook, and a notebook that leaks on purpose, run with canary values for every secret
of the sandbox profile. No canary may survive, in any spelling, anywhere in the output, stdout or stderr.

A guarded action whose target echoes the admin token in its error must leave it in no audit record and no
incident bundle either: those live beside the reports, not in a report folder the runner scans.

The database URL's password is hostile (an unencoded '@', quotes, '<', '&', '%', non-ASCII) and belongs to a
real role, so the runbooks really connect with it. `encodings` and `views` are written here on their own, not
borrowed from the redactor: a shared bug could not make both agree.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from aias_runbooks.catalogue import slugs
from aias_runbooks.runner.parameterize import load_runbook
from aias_runbooks.runner.store import open_archive
from aias_runbooks.settings import load_environment

from ..helpers import FIXTURE_NOTEBOOKS, audit_records, cli, leaks, runs, sandbox_dsn

# Small samples keep every run cheap; a parameter is only passed to the runbooks that declare it.
CHEAP = {"samples": 5, "interval_ms": 10, "latency_samples": 10, "top_tables": 5,
         "create": "true"}   # database-backup takes a backup too: pg_dump, besides pg_restore, gets a hostile password


@pytest.fixture(scope="module")
def canaries(sandbox):
    """{env var: canary} for every secret of the sandbox profile (env vars win over sandbox.env).

    database_url logs in as a real role created for the test, with a hostile password; backup_database_url and
    scratch_database_url as another (a superuser, as pg_dump and pg_restore need), whose password also holds the
    passfile's special characters ':' and '\\'; stripe_webhook_secret is multi-line, like a PEM key.
    """
    profile = load_environment("sandbox")
    token = secrets.token_hex(6)
    role, password = f"canary_{token}", f"c@n&ry<'\"%-é:{token}ß@x"
    admin = urlsplit(sandbox_dsn())
    dsn = f"postgresql://{role}:{password}@{admin.hostname}:{admin.port}{admin.path}"
    owner, owner_password = f"canary_{token}_backup", f"b@ck:\\up<'\"%-é:{token}ß@x"
    owned = {name: f"postgresql://{owner}:{owner_password}@{admin.hostname}:{admin.port}/{database}"
             for name, database in (("backup_database_url", "postgres"), ("scratch_database_url", "aias_scratch"))}
    pem = "\n".join(["-----BEGIN CANARY PRIVATE KEY-----",
                     *(base64.b64encode(secrets.token_bytes(45)).decode() for _ in range(3)),
                     "-----END CANARY PRIVATE KEY-----"])
    values = {var: dsn if name == "database_url" else pem if name == "stripe_webhook_secret"
              else owned.get(name, f"canary-{name}-{token}<&'\"é") for name, var in profile.secret_vars.items()}
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_read_all_stats, pg_read_all_settings")
                     .format(sql.Identifier(role), sql.Literal(password)))
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'aias_monitor'").fetchone():
            conn.execute(sql.SQL("GRANT aias_monitor TO {}").format(sql.Identifier(role)))  # its table reads
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}")
                     .format(sql.Identifier(owner), sql.Literal(owner_password)))
    try:
        yield values
    finally:
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)",
                         [[role, owner]])
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        with psycopg.connect(sandbox_dsn().rsplit("/", 1)[0] + "/aias_scratch", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(owner)))   # what verify restored there
        with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(owner)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))


@pytest.mark.parametrize("slug", slugs())
def test_runbook_with_canary_secrets_leaks_none(run, canaries, slug, tmp_path):
    declared = load_runbook(slug).parameters
    params = [arg for name, value in CHEAP.items() if name in declared for arg in ("-p", f"{name}={value}")]
    metrics = tmp_path / "metrics"   # the Prometheus textfile too; the perfdata is on stdout's first line
    metrics.mkdir()
    result = run(slug, *params, "--metrics-dir", str(metrics), env=os.environ | canaries)
    assert "RUNBOOK_ERROR" not in result.codes, result.verdict["findings"]
    assert not leaks(canaries, result.output, result.proc.stdout, result.proc.stderr)
    assert [p.name for p in metrics.iterdir()] == [f"aias_runbooks_{slug}_sandbox.prom"]
    assert not leaks(canaries, metrics)
    assert not {"DB_UNREACHABLE", "DB_NOT_CONFIGURED", "BACKUP_FAILED", "BACKUP_NOT_VERIFIED",
                "BACKUP_VERIFY_FAILED"} & set(result.codes), "it connected with the hostile password"


def test_leaky_notebook_with_canary_secrets_leaks_none(run, canaries, tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    result = run("leaky-check", "--metrics-dir", str(metrics),
                 env=os.environ | canaries | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)})
    assert result.proc.returncode == 3, "the notebook fails on purpose, quoting the secrets in its error"
    assert not leaks(canaries, result.output, result.proc.stdout, result.proc.stderr)
    assert (metrics / "aias_runbooks_leaky-check_sandbox.prom").is_file() and not leaks(canaries, metrics)
    assert " | leaky_measure_fine=3ms" in result.proc.stdout.splitlines()[0], "its measures are written, redacted"
    (record,) = runs(result.output)
    assert result.verdict["redactions"] >= 1 and record["redactions"] == result.verdict["redactions"]
    assert "redacted" in result.proc.stderr
    assert "[REDACTED]" in (result.folder / "notebook.ipynb").read_text()


def test_a_leaky_run_filed_into_a_bucket_leaves_no_secret_there(run, canaries, s3_archive, tmp_path):
    """The canary run again, its report filed into object storage: everything in the bucket is downloaded and
    searched, as well as what is left on this host and what the CLI printed."""
    result = run("leaky-check", "--archive", s3_archive,
                 env=os.environ | canaries | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS)})
    assert result.proc.returncode == 3, result.proc.stdout + result.proc.stderr
    (record,) = runs(s3_archive)
    assert record["redactions"] >= 1
    bucket = open_archive(s3_archive)
    copy = tmp_path / "bucket"
    bucket.fs.get(bucket.root, str(copy), recursive=True)
    assert (copy / record["report_dir"] / "notebook.ipynb").is_file() and (copy / "index.html").is_file()
    assert "[REDACTED]" in (copy / record["report_dir"] / "notebook.ipynb").read_text()
    assert not leaks(canaries, copy, result.proc.stdout, result.proc.stderr)
    assert not leaks(canaries, result.output)


def test_cells_run_headless_stay_out_of_ipython_history(run, tmp_path):
    """IPython would copy every cell, the parameters' values included, into ~/.ipython's history.sqlite."""
    home = tmp_path / "ipython"
    result = run("user-support", "-p", "user=history.canary@example.test", env=os.environ | {"IPYTHONDIR": str(home)})
    assert result.proc.returncode in (0, 1, 2), result.proc.stderr
    written = [p for p in home.rglob("*") if p.is_file() and b"history.canary" in p.read_bytes()]
    assert home.is_dir() and not written, written


class _Echo(BaseHTTPRequestHandler):
    """An API that refuses every request (401) quoting the Authorization header it was sent, as a careless
    endpoint's error does."""

    def _refuse(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": f"not allowed: {self.headers.get('Authorization')}"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echoing_api():
    """The base URL of an _Echo server on a free local port, for the test's duration."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def blocked_key(sandbox):
    """A rate-limit key blocked right now (a row of the sandbox's rate_limits), removed afterwards."""
    key = f"ip:198.51.100.{secrets.randbelow(200) + 20}"
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute('INSERT INTO public.rate_limits (key, window_start, count, "limit", blocked_until) '
                     "VALUES (%s, now(), 9, 5, now() + interval '15 minutes')", [key])
    yield key
    with psycopg.connect(sandbox_dsn(), autocommit=True) as conn:
        conn.execute("DELETE FROM public.rate_limits WHERE key = %s", [key])


def test_a_token_the_target_echoes_reaches_no_audit_record_nor_bundle(run, echoing_api, blocked_key, tmp_path):
    token = {"AIAS_SANDBOX_ADMIN_TOKEN": f"canary-admin-{secrets.token_hex(12)}"}
    result = run("signup-failures", "-p", f"key={blocked_key}", "-p", "apply=true", "--operator", "alice",
                 "--incident", "INC-ECHO", env=os.environ | token | {"AIAS_SANDBOX_API_URL": echoing_api})
    assert "RUNBOOK_ERROR" not in result.codes, result.verdict["findings"]
    records = audit_records(result)
    assert [r["phase"] for r in records] == ["started", "finished"], records
    assert records[1]["outcome"].startswith("failed: HTTP 401") and "[REDACTED]" in records[1]["outcome"], records
    made = cli("bundle", "--incident", "INC-ECHO", "--output", str(result.output))
    assert made.returncode == 0, made.stderr
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(next((result.output / "bundles").glob("*.zip"))) as zf:
        assert "audit.jsonl" in zf.namelist()
        zf.extractall(unpacked)
    assert not leaks(token, result.output, result.proc.stdout, result.proc.stderr, made.stdout, made.stderr)
    assert not leaks(token, unpacked)


class _Sink(BaseHTTPRequestHandler):
    """PagerDuty's Events API and a Slack webhook in one: records each POST (path, raw body) on the server, answers
    PagerDuty's 202 or Slack's "ok"."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts.append((self.path, body.decode()))  # type: ignore[attr-defined]
        paged = self.path.startswith("/pagerduty/")
        answer = b'{"status": "success", "message": "Event processed"}' if paged else b"ok"
        self.send_response(202 if paged else 200)
        self.send_header("Content-Type", "application/json" if paged else "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


def test_a_page_and_a_block_kit_message_carry_no_canary(canaries, tmp_path):
    """paging-check, scheduled with notify {slack: true, pagerduty: true}: its CRITICAL finding's title quotes the
    profile's secrets; it pages and is told on Slack (Block Kit), and neither body holds any canary in any spelling,
    the routing key only as the event's routing_key, where PagerDuty needs it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.posts = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    token = secrets.token_hex(12)
    hook = f"{base}/services/TCANARY/BCANARY/{token}"
    profile = load_environment("sandbox")
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text("schedules:\n  - name: leak-paged\n    cron: '*/5 * * * *'\n    runbook: paging-check\n"
                         "    environment: sandbox\n    notify: {slack: true, pagerduty: true}\n")
    env = os.environ | canaries | {"AIAS_NOTEBOOKS_DIR": str(FIXTURE_NOTEBOOKS), "AIAS_SANDBOX_SERVICES_URL": base,
                                   profile.secret_vars["slack_webhook_url"]: hook,
                                   "AIAS_SANDBOX_REPORT_BASE_URL": "https://runbooks.example.test/reports"}
    output = tmp_path / "output"
    try:
        result = cli("schedule", "run-due", "--schedules", str(schedules), "--output", str(output), "--now",
                     "2026-11-26T20:00:10Z", env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 2 and "notification" not in result.stderr, result.stdout + result.stderr
    posts = dict(server.posts)  # type: ignore[attr-defined]
    assert set(posts) == {"/pagerduty/events/v2/enqueue", "/services/TCANARY/BCANARY/" + token}, list(posts)
    event = json.loads(posts.pop("/pagerduty/events/v2/enqueue"))
    assert event.pop("routing_key") == canaries[profile.secret_vars["pagerduty_routing_key"]]
    assert event["event_action"] == "trigger" and event["links"][0]["href"].startswith("https://runbooks.example")
    assert "PAGED_LEAK" in event["payload"]["summary"] and "[REDACTED]" in event["payload"]["summary"]
    [slack] = posts.values()
    assert json.loads(slack)["blocks"], "the Slack message is Block Kit"
    watched = canaries | {profile.secret_vars["slack_webhook_url"]: hook, "webhook token": token}
    assert not leaks(watched, output, json.dumps(event), json.dumps(event, ensure_ascii=False), slack,
                     result.stdout, result.stderr)
