"""The console over real HTTP: a real `aias-runbooks serve` (server.py) with reports filed as runs file them.

Every route of the app refuses a request without a user (but /healthz, /metrics, /alerts and the login page); a
viewer reads the runs, a run, its files, an incident with its bundle, a runbook; wrong tokens are refused and, five
in a minute, rate-limited; a POST without the CSRF token is refused; no path reaches outside a catalogued report
folder; hostile text from a run shows escaped on every page, and no profile secret on any page; the trusted proxy
header counts only from trusted_from.
"""

from __future__ import annotations

import io
import json
import re
import socket
import zipfile
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from aias_runbooks.findings import Finding, Measure

from .server import csrf_of

HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>']
OPEN_PATHS = {"/healthz", "/metrics", "/console/login"}


def routes_of(console, monkeypatch) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, read from its router: the app built as serve builds it, in the console's
    checkout home."""
    from aias_runbooks.alerts import routes as alert_routes
    from aias_runbooks.serve.app import Server
    monkeypatch.setenv("AIAS_HOME", str(console.home))
    monkeypatch.setenv("AIAS_CONSOLE_TEST_ALERT_TOKEN", "x" * 24)
    server = Server(alert_routes.load(console.home / "params" / "routes.yaml"), console.output, None, lambda _: None)
    app = server.app()
    server.runs.pool.close()
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and path:
            found.append((route.method, path))
    return found


def concrete(path: str, run: dict) -> str:
    """A route's path with its placeholders filled by real values."""
    values = {"run_id": run["run_id"], "incident": run["incident"] or "INC-1", "slug": run["runbook"],
              "path": f"{run['report_dir']}/verdict.json", "sender": "alertmanager", "entry": "nightly",
              "id": "apr-000000000000"}
    return re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: values.get(m.group(1), "x"), path)


def test_every_console_route_refuses_a_request_without_a_user(console, monkeypatch):
    run = console.file_report(incident="INC-7")
    routes = routes_of(console, monkeypatch)
    console_routes = [(m, p) for m, p in routes if p.startswith("/console")]
    assert len(console_routes) >= 8, routes
    with console.client(None) as anonymous:
        for method, path in console_routes:
            if path in OPEN_PATHS:
                continue
            answer = anonymous.request(method, concrete(path, run))
            assert answer.status_code == 401, (method, path, answer.status_code, answer.text[:200])
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/metrics").status_code == 200
        assert anonymous.get("/console/login").status_code == 200


def test_a_viewer_reads_runs_a_run_its_files_an_incident_and_a_runbook(console):
    old = console.file_report(findings=[Finding("API_LATENCY_OK", "OK", "P95 80 ms.", {"p95_ms": 80}).measured(
        Measure("p95_ms", 80, "ms", 500, 1000))], started=datetime.now(timezone.utc) - timedelta(hours=2))
    new = console.file_report(findings=[Finding("API_DOWN", "CRITICAL", "The API is not answering."),
                                        Finding("API_LATENCY_OK", "OK", "P95 90 ms.", {"p95_ms": 90}).measured(
                                            Measure("p95_ms", 90, "ms", 500, 1000))], incident="INC-42")
    with console.client("viewer") as viewer:
        runs = viewer.get("/console/")
        assert runs.status_code == 200, runs.text
        assert new["run_id"] in runs.text and old["run_id"] in runs.text
        assert runs.text.index(new["run_id"]) < runs.text.index(old["run_id"])   # newest first
        assert runs.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in runs.headers["Content-Security-Policy"]

        page = viewer.get(f"/console/runs/{new['run_id']}")
        assert page.status_code == 200
        text = page.text
        assert text.index("CRITICAL: API_DOWN") < text.index("Findings")   # the verdict first
        assert f"/console/files/{new['report_dir']}/report.html" in text
        assert f"/console/compare?a={old['run_id']}&amp;b={new['run_id']}" in text
        assert "/rerun" not in text                                        # a viewer is offered no rerun
        with console.client("operator") as operator:
            assert f"/console/runs/{new['run_id']}/rerun" in operator.get(f"/console/runs/{new['run_id']}").text

        report = viewer.get(f"/console/files/{new['report_dir']}/report.html")
        assert report.status_code == 200
        assert report.headers["Content-Security-Policy"] == ("default-src 'none'; img-src data:; style-src "
                                                             "'unsafe-inline'; sandbox")
        assert report.headers["X-Content-Type-Options"] == "nosniff"
        verdict = viewer.get(f"/console/files/{new['report_dir']}/verdict.json")
        assert verdict.headers["Content-Type"].startswith("text/plain")
        assert json.loads(verdict.text)["run_id"] == new["run_id"]
        notebook = viewer.get(f"/console/files/{new['report_dir']}/notebook.ipynb")
        assert notebook.headers["Content-Disposition"].startswith("attachment")

        incident = viewer.get("/console/incidents/INC-42")
        assert incident.status_code == 200 and new["run_id"] in incident.text and old["run_id"] not in incident.text
        bundle = viewer.get("/console/incidents/INC-42/bundle")
        assert bundle.status_code == 200, bundle.text
        names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
        assert any(n.endswith("verdict.json") for n in names), names

        runbook = viewer.get("/console/runbooks/health-check")
        assert runbook.status_code == 200
        assert "p95_ms" in runbook.text and "<polyline" in runbook.text
        assert new["run_id"] in runbook.text and old["run_id"] in runbook.text


def test_filters_find_runs_by_incident_code_status_and_time(console):
    day_ago = datetime.now(timezone.utc) - timedelta(days=1, hours=1)
    a = console.file_report(findings=[Finding("DB_POOL_HIGH", "WARNING", "Pool at 85 %."),
                                      Finding("API_DOWN", "CRITICAL", "Down.")], incident="INC-9")
    b = console.file_report(runbook="database-health", started=day_ago)
    with console.client("viewer") as viewer:
        def listed(query: str) -> str:
            page = viewer.get(f"/console/?{query}")
            assert page.status_code == 200, (query, page.text)
            return page.text
        assert a["run_id"] in listed("incident=INC-9") and b["run_id"] not in listed("incident=INC-9")
        assert a["run_id"] in listed("code=DB_POOL_HIGH")       # not its top finding: from the record's codes
        assert b["run_id"] in listed("status=OK") and a["run_id"] not in listed("status=OK")
        assert b["run_id"] in listed("runbook=database-health")
        assert a["run_id"] in listed("since=2h") and b["run_id"] not in listed("since=2h")
        assert b["run_id"] in listed(f"until={datetime.now(timezone.utc):%Y-%m-%d}")
        for query, word in (("status=BAD", "status"), ("runbook=Not_A_Slug", "runbook"),
                            ("incident=%3Cx%3E", "incident"), ("code=lower", "code"), ("since=yesterday", "since"),
                            ("before=..%2F..", "before"), ("env=a%20b", "env")):
            answer = viewer.get(f"/console/?{query}")
            assert answer.status_code == 400, (query, answer.text)
            assert word in answer.text and answer.text.count("\n") == 1, answer.text
        for path in ("/console/runs/..%2Fx", "/console/runs/a%20b", "/console/incidents/%3Cscript%3E",
                     "/console/runbooks/Bad_Slug"):
            assert viewer.get(path).status_code == 400, path


def test_older_link_pages_through_runs(console):
    start = datetime.now(timezone.utc) - timedelta(hours=5)
    filed = [console.file_report(started=start + timedelta(minutes=i)) for i in range(105)]
    with console.client("viewer") as viewer:
        first = viewer.get("/console/?runbook=health-check").text
        assert filed[-1]["run_id"] in first and filed[0]["run_id"] not in first
        older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
        second = viewer.get(older).text
        assert filed[0]["run_id"] in second and filed[-1]["run_id"] not in second
        assert 'rel="next"' not in second


def test_a_wrong_token_is_refused_and_five_in_a_minute_are_rate_limited(console):
    with console.client(None, headers={"Authorization": "Bearer not-a-token"}) as guess:
        for _ in range(4):
            assert guess.get("/console/").status_code == 401
        locked = guess.get("/console/")
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    with console.client("viewer") as viewer:    # the right token from the same address waits too
        assert viewer.get("/console/").status_code == 429
    assert [a["action"] for a in console.audit()].count("locked_out") == 1


def test_login_form_makes_a_session_and_posts_need_its_csrf_token(console):
    with httpx.Client(base_url=console.url, timeout=30) as browser:
        page = browser.get("/console/login")
        wrong = browser.post("/console/login", data={"token": "nope", "csrf": csrf_of(page.text)})
        assert wrong.status_code == 401
        assert browser.post("/console/login", data={"token": console.tokens["viewer"]}).status_code == 403
    session = console.login("viewer")
    cookie = next(c for c in session.cookies.jar if c.name == "aias_console")
    assert cookie.path == "/console" and cookie.has_nonstandard_attr("HttpOnly")
    assert session.get("/console/").status_code == 200
    assert session.post("/console/logout", data={}).status_code == 403
    assert session.post("/console/logout", data={"csrf": "wrong"}).status_code == 403
    csrf = console.csrf(session)
    assert session.post("/console/logout", data={"csrf": csrf}).status_code == 303
    assert session.get("/console/").status_code == 401
    with console.client("operator") as operator:       # a bearer user's posts need the token its pages carry
        assert operator.post("/console/logout", data={"csrf": "wrong"}).status_code == 403
        assert operator.post("/console/logout", data={"csrf": console.csrf(operator)}).status_code == 303
    assert {"login", "login_failed", "logout"} <= {a["action"] for a in console.audit()}


def raw_get(console, target: str, token: str) -> tuple[int, str]:
    """GET a request target sent byte for byte (no client normalises its dots or escapes): status, body."""
    host, port = console.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def test_report_files_never_reach_outside_a_catalogued_report_folder(console, tmp_path):
    run = console.file_report()
    folder = console.archive / run["report_dir"]
    secret = tmp_path / "outside.txt"
    secret.write_text("outside the archive\n")
    (folder / "linked.txt").symlink_to(secret)
    day = run["report_dir"].split("/")[0]
    (console.archive / day / "120000_linked-folder_sandbox").symlink_to(folder)
    (folder / ".hidden").write_text("hidden\n")
    rel = run["report_dir"]
    token = console.tokens["viewer"]
    assert raw_get(console, f"/console/files/{rel}/verdict.json", token)[0] == 200
    for target in (f"/console/files/{rel}/../../../etc/passwd", f"/console/files/{rel}/%2e%2e/%2e%2e/index.html",
                   f"/console/files/{rel}%2fverdict.json", f"/console/files/{day}%2F..%2Fcatalog/index.json",
                   f"/console/files/{rel}%5cverdict.json", f"/console/files/{rel}\\verdict.json",
                   f"/console/files/{rel}/verdict.json%00.txt", f"/console/files/{rel}/linked.txt",
                   f"/console/files/{day}/120000_linked-folder_sandbox/verdict.json",
                   f"/console/files/{rel}/.hidden", "/console/files/catalog/index.json",
                   "/console/files//etc/passwd", f"/console/files/{day}/000000_not-filed_sandbox/verdict.json"):
        status, body = raw_get(console, target, token)
        assert status in (400, 404), (target, status)
        assert "outside the archive" not in body and "root:" not in body


def test_hostile_text_shows_escaped_and_no_secret_on_any_page(console):
    hostile = " ".join(HOSTILE)
    run = console.file_report(
        findings=[Finding("API_DOWN", "CRITICAL", f"title {hostile} {console.canary}",
                          {"last_error": f"{hostile} {console.canary}"}, [f"step {hostile}"])],
        incident="INC-66", parameters={"url": hostile, "token": console.canary})
    audit = console.output / "audit.jsonl"
    audit.write_text(json.dumps({"at": "2026-12-07T10:00:00+00:00", "action": "terminate", "phase": "planned",
                                 "incident": "INC-66", "run_id": run["run_id"],
                                 "detail": f"{hostile} {console.canary}"}) + "\n")
    pages = ["/console/", "/console/?incident=INC-66", f"/console/runs/{run['run_id']}", "/console/incidents/INC-66",
             "/console/runbooks/health-check", f"/console/files/{run['report_dir']}/verdict.json",
             f"/console/files/{run['report_dir']}/report.html"]
    with console.client("viewer") as viewer:
        for path in pages:
            page = viewer.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            assert console.canary not in page.text, path
            if path.endswith(".json"):
                continue
            for text in HOSTILE:
                assert text not in page.text, (path, text)
        assert "&lt;script&gt;" in viewer.get(f"/console/runs/{run['run_id']}").text
        assert "&lt;script&gt;" in viewer.get("/console/incidents/INC-66").text


@pytest.mark.parametrize("trusted_from, honoured", [(["127.0.0.1/32"], True), (["10.9.9.9/32"], False)])
def test_the_trusted_header_counts_only_from_trusted_from(start_console, trusted_from, honoured):
    console = start_console({"trusted_header": "X-Forwarded-User", "trusted_from": trusted_from})
    with console.client(None, headers={"X-Forwarded-User": "bob"}) as proxied:
        page = proxied.get("/console/")
        assert page.status_code == (200 if honoured else 401), page.text[:200]
        if honoured:
            assert "bob (approver)" in page.text
            assert proxied.get("/console/", headers={"X-Forwarded-User": "mallory"}).status_code == 401


def test_add_user_prints_a_token_once_and_keeps_only_its_hash(tmp_path):
    from ..helpers import cli
    users = tmp_path / "users.yaml"
    made = cli("console", "add-user", "carol", "--role", "operator", "--users", str(users))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1].split()[-1]
    assert len(token) >= 40 and token not in users.read_text()
    import hashlib
    assert hashlib.sha256(token.encode()).hexdigest() in users.read_text()
    again = cli("console", "add-user", "carol", "--role", "viewer", "--users", str(users))
    assert again.returncode == 3 and "already" in again.stderr
    bad = cli("console", "add-user", "dave", "--role", "admin", "--users", str(users))
    assert bad.returncode == 3 and "viewer, operator, approver" in bad.stderr


def test_an_older_record_without_codes_matches_a_code_by_its_top_finding(console):
    from aias_runbooks.runner import catalog
    run = console.file_report(findings=[Finding("DB_POOL_HIGH", "WARNING", "Pool at 85 %."),
                                        Finding("API_SLOW", "WARNING", "Slow.")])
    older = dict(run, run_id=run["run_id"] + "-old", started_at=(datetime.now(timezone.utc) - timedelta(minutes=5))
                 .isoformat(timespec="seconds"), top_finding="API_SLOW")
    older.pop("codes")
    catalog.file_run(console.archive, older)
    with console.client("viewer") as viewer:
        slow = viewer.get("/console/?code=API_SLOW").text
        assert run["run_id"] in slow and older["run_id"] in slow
        pool = viewer.get("/console/?code=DB_POOL_HIGH").text
        assert run["run_id"] in pool and older["run_id"] not in pool


def test_a_viewer_is_refused_an_operators_post_with_one_line(console):
    run = console.file_report()
    with console.client("viewer") as viewer:
        answer = viewer.post(f"/console/runs/{run['run_id']}/rerun", data={"csrf": console.csrf(viewer)})
        assert answer.status_code == 403 and answer.text.count("\n") == 1 and "operator" in answer.text


def test_the_console_reads_an_archive_in_a_bucket(start_console, s3_archive):
    console = start_console(archive=s3_archive)
    run = console.file_report(incident="INC-S3", findings=[Finding("API_DOWN", "CRITICAL", "Down.")])
    with console.client("viewer") as viewer:
        assert run["run_id"] in viewer.get("/console/").text
        page = viewer.get(f"/console/runs/{run['run_id']}")
        assert page.status_code == 200 and "CRITICAL: API_DOWN" in page.text
        report = viewer.get(f"/console/files/{run['report_dir']}/report.html")
        assert report.status_code == 200 and "sandbox" in report.headers["Content-Security-Policy"]
        assert run["run_id"] in viewer.get("/console/incidents/INC-S3").text
    token = console.tokens["viewer"]
    for target in (f"/console/files/{run['report_dir']}/../../catalog/index.json",
                   f"/console/files/{run['report_dir']}%2f..%2f..%2fcatalog/index.json",
                   "/console/files/catalog/runs/index.json"):
        assert raw_get(console, target, token)[0] == 404, target


def test_a_real_run_is_listed_with_every_code_it_found(console):
    """`aias-runbooks run health-check` against an API that is not there (the console-test profile's port 9): its
    record carries its findings' codes, and the console lists and shows it."""
    import os

    from ..helpers import cli
    env = os.environ | {"AIAS_HOME": str(console.home)}
    result = cli("run", "health-check", "--env", "console-test", "-p", "samples=2", "-p", "interval_ms=0",
                 "-p", "timeout_s=0.5", "--incident", "INC-REAL", "--output", str(console.output), env=env)
    assert result.returncode in (1, 2), result.stdout + result.stderr
    from aias_runbooks.runner import catalog
    (record,) = catalog.read_runs(console.output)
    verdict = json.loads((console.output / record["report_dir"] / "verdict.json").read_text())
    assert record["codes"] == sorted({f["code"] for f in verdict["findings"]}) and record["codes"]
    with console.client("viewer") as viewer:
        for code in record["codes"]:
            assert record["run_id"] in viewer.get(f"/console/?code={code}").text, code
        page = viewer.get(f"/console/runs/{record['run_id']}")
        assert page.status_code == 200 and record["summary"].split(" - ")[0] in page.text
        assert viewer.get(f"/console/files/{record['report_dir']}/notebook.ipynb").status_code == 200


@pytest.mark.parametrize("settings, says", [
    ({"trusted_header": "X-Forwarded-User"}, "needs console.trusted_from"),
    ({"trusted_header": "X-Forwarded-User", "trusted_from": ["not-a-cidr"]}, "is not a CIDR"),
])
def test_serve_refuses_a_console_it_cannot_secure_in_one_line(tmp_path, settings, says):
    import os

    from ..helpers import cli
    from .server import SENDER_VAR, make_home
    home = make_home(tmp_path, {"users_file": str(tmp_path / "users.yaml")} | settings)
    result = cli("serve", "--port", "1", "--output", str(tmp_path / "output"),
                 env=os.environ | {"AIAS_HOME": str(home), SENDER_VAR: "s" * 24}, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert says in result.stderr and result.stderr.count("\n") == 1, result.stderr
