"""`aias-runbooks doctor` through the real CLI against the session's sandbox: one line per check, the exit code
of the worst, the variable named when a secret is missing, bounded when a target hangs, and never a password."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..helpers import (
    DOCTOR_BOUND_S,
    admin_session,
    cli,
    doctor,
    free_port_base,
    hanging_port,
    line,
    sandbox_dsn,
    sandbox_password,
)


def test_healthy_sandbox_is_all_ok(sandbox):
    result, lines = doctor("--env", "sandbox")
    assert result.returncode == 0, result.stdout
    assert all(entry.startswith("OK ") for entry in lines), result.stdout
    assert result.stderr == ""
    for name in ("database_url", "stripe_secret_key", "database", "database role", "database grants",
                 "grant for actions", "table reads", "write paths", "read-only session", "API", "Stripe API",
                 "url status_stripe"):
        line(lines, name)
    assert "can write nothing" in line(lines, "write paths")
    assert "aias_monitor is not a superuser" in line(lines, "database role")
    assert "default_transaction_read_only=on" in line(lines, "read-only session")
    assert "direct to the server" in line(lines, "connection route")
    assert "pg_signal_backend" in line(lines, "grant for actions")
    assert sandbox_password() not in result.stdout


def test_missing_secret_names_its_variable_and_is_critical(sandbox):
    result, lines = doctor(AIAS_SANDBOX_STRIPE_SECRET_KEY="")
    assert result.returncode == 2, result.stdout
    missing = line(lines, "stripe_secret_key")
    assert missing.startswith("CRITICAL") and "AIAS_SANDBOX_STRIPE_SECRET_KEY is not set" in missing
    assert lines[-1].startswith("CRITICAL summary")


def test_malformed_secrets_are_named_never_shown(sandbox):
    bad_key, bad_dsn = "pk_test_notasecretkey", "not a url with hunter2-password"
    result, lines = doctor(AIAS_SANDBOX_STRIPE_SECRET_KEY=bad_key, AIAS_SANDBOX_DATABASE_URL=bad_dsn)
    assert result.returncode == 2
    assert line(lines, "stripe_secret_key").startswith("CRITICAL")
    assert line(lines, "database_url").startswith("CRITICAL") and "AIAS_SANDBOX_DATABASE_URL" in result.stdout
    assert bad_key not in result.stdout and "hunter2" not in result.stdout


def test_unreachable_api_is_named_and_bounded(sandbox):
    refused = f"http://127.0.0.1:{free_port_base()}"
    result, lines = doctor(AIAS_SANDBOX_API_URL=refused)
    assert result.returncode == 2
    assert line(lines, "API").startswith("CRITICAL") and refused in line(lines, "API")
    with hanging_port() as port:     # accepts and never answers: the probe's deadline ends it, within the bound
        frozen = f"http://127.0.0.1:{port}"
        result, lines = doctor(AIAS_SANDBOX_API_URL=frozen)
    assert result.returncode == 2
    assert line(lines, "API").startswith("CRITICAL") and "no complete answer within 5 s" in line(lines, "API")
    assert line(lines, "database").startswith("OK"), "the other targets are still checked"


def test_superuser_dsn_is_a_warning_and_its_password_never_printed(sandbox):
    result, lines = doctor(AIAS_SANDBOX_DATABASE_URL=sandbox_dsn())
    assert result.returncode == 1, result.stdout
    role = line(lines, "database role")
    assert role.startswith("WARNING") and "superuser" in role
    assert line(lines, "read-only session").startswith("OK"), "the runbooks' session is read-only even so"
    assert urlsplit(sandbox_dsn()).password not in result.stdout + result.stderr


def test_a_monitoring_login_that_could_switch_to_a_writing_role_is_a_warning(sandbox):
    """The production login a doctor run checks: membership of authenticated (even through a NOINHERIT role) is a way
    to write as any user once a session turns read-only off; doctor names it."""
    with admin_session() as conn:
        conn.execute("CREATE ROLE doctor_test_bridge NOLOGIN NOINHERIT")
        conn.execute("GRANT authenticated TO doctor_test_bridge")
        conn.execute("GRANT doctor_test_bridge TO aias_monitor")
        try:
            result, lines = doctor("--env", "sandbox")
        finally:
            conn.execute("DROP ROLE doctor_test_bridge")
    assert result.returncode == 1, result.stdout
    paths = line(lines, "write paths")
    assert paths.startswith("WARNING") and "public.profiles as authenticated" in paths, paths


def test_unknown_environment_is_one_usage_line_before_anything(sandbox):
    result = cli("doctor", "--env", "nope", timeout=DOCTOR_BOUND_S)
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "unknown environment 'nope'" in result.stderr
