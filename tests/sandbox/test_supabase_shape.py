"""The sandbox's database as a Supabase project has it, checked against Supabase's own sources (supabase/postgres init
scripts and migrations, supabase/auth migrations and models; see aias_runbooks/sandbox/platform.sql), and the
monitoring-role setup of docs/security.md run, as written, by that project's `postgres` login, which is not a
superuser."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from aias_runbooks.sandbox.platform.database import schema

from ..helpers import ROOT, admin_session, doctor, line, sandbox_env

SECURITY_DOC = ROOT / "docs" / "security.md"

# Each auth table's columns once GoTrue's migrations have run (supabase/auth migrations/, in order).
GOTRUE_COLUMNS = {
    "users": ["instance_id", "id", "aud", "role", "email", "encrypted_password", "email_confirmed_at", "invited_at",
              "confirmation_token", "confirmation_sent_at", "recovery_token", "recovery_sent_at",
              "email_change_token_new", "email_change", "email_change_sent_at", "last_sign_in_at", "raw_app_meta_data",
              "raw_user_meta_data", "is_super_admin", "created_at", "updated_at", "phone", "phone_confirmed_at",
              "phone_change", "phone_change_token", "phone_change_sent_at", "confirmed_at",
              "email_change_token_current", "email_change_confirm_status", "banned_until", "reauthentication_token",
              "reauthentication_sent_at", "is_sso_user", "deleted_at", "is_anonymous"],
    "identities": ["provider_id", "user_id", "identity_data", "provider", "last_sign_in_at", "created_at",
                   "updated_at", "email", "id"],
    "sessions": ["id", "user_id", "created_at", "updated_at", "factor_id", "aal", "not_after", "refreshed_at",
                 "user_agent", "ip", "tag"],
    "refresh_tokens": ["instance_id", "id", "token", "user_id", "revoked", "created_at", "updated_at", "parent",
                       "session_id"],
    "audit_log_entries": ["instance_id", "id", "payload", "created_at", "ip_address"],
}
# internal/models/audit_log_entry.go (NewAuditLogEntry): what GoTrue puts in an audit entry's payload, with
# actor_name only when the user's metadata has a full_name
AUDIT_PAYLOAD_KEYS = {"actor_id", "actor_username", "actor_via_sso", "action", "log_type", "traits"}


def _role(conn: psycopg.Connection, name: str) -> dict:
    row = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin, "
                       "rolinherit FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    assert row is not None, f"role {name} missing"
    names = ("super", "createrole", "createdb", "replication", "bypassrls", "login", "inherit")
    return dict(zip(names, row, strict=True))


def test_postgres_is_not_a_superuser_and_supabase_admin_is(sandbox):
    with admin_session() as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "supabase_admin"
        assert _role(conn, "supabase_admin")["super"]
        assert _role(conn, "postgres") == {"super": False, "createrole": True, "createdb": True, "replication": True,
                                           "bypassrls": True, "login": True, "inherit": True}
        # pg_monitor and pg_signal_backend reach postgres through supabase_superuser, as on Supabase
        assert conn.execute("SELECT pg_has_role('postgres', 'pg_monitor', 'USAGE'), "
                            "pg_has_role('postgres', 'pg_signal_backend', 'USAGE')").fetchone() == (True, True)
    project = sandbox_env()["AIAS_SANDBOX_POSTGRES_DATABASE_URL"]
    with psycopg.connect(project, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("ALTER SYSTEM SET work_mem = '8MB'")


def test_the_api_roles_and_authenticator_are_as_supabase_makes_them(sandbox):
    with admin_session() as conn:
        assert not _role(conn, "anon")["login"] and not _role(conn, "authenticated")["login"]
        assert _role(conn, "service_role")["bypassrls"] and not _role(conn, "anon")["bypassrls"]
        assert _role(conn, "authenticator")["login"] and not _role(conn, "authenticator")["inherit"]
        members = {r[0] for r in conn.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = 'authenticator'")}
        assert {"anon", "authenticated", "service_role"} <= members
        settings = dict(conn.execute("SELECT r.rolname, s.setconfig FROM pg_db_role_setting s JOIN pg_roles r "
                                     "ON r.oid = s.setrole WHERE r.rolname IN ('anon', 'authenticated')").fetchall())
        assert "statement_timeout=3s" in settings["anon"] and "statement_timeout=8s" in settings["authenticated"]


def test_auth_tables_have_gotrue_columns_owner_and_row_level_security(sandbox):
    with admin_session() as conn:
        for table, columns in GOTRUE_COLUMNS.items():
            found = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                                "table_schema = 'auth' AND table_name = %s ORDER BY ordinal_position",
                                                [table])]
            assert found == columns, table
            owner, rls = conn.execute("SELECT pg_get_userbyid(relowner), relrowsecurity FROM pg_class "
                                      "WHERE oid = %s::regclass", [f"auth.{table}"]).fetchone()
            assert (owner, rls) == ("supabase_auth_admin", True), table
        # postgres may read them and grant SELECT on, never write-grant (enable_rls_update_grants)
        assert conn.execute("SELECT has_table_privilege('postgres', 'auth.users', 'SELECT WITH GRANT OPTION'), "
                            "has_table_privilege('postgres', 'auth.users', 'INSERT WITH GRANT OPTION')"
                            ).fetchone() == (True, False)
        assert conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                            "WHERE e.extname = 'pg_stat_statements'").fetchone() == ("extensions",)


def test_migration_history_is_the_supabase_clis_owned_by_postgres(sandbox):
    with admin_session() as conn:
        columns = conn.execute("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
                               "FROM information_schema.columns WHERE table_schema = 'supabase_migrations' "
                               "AND table_name = 'schema_migrations'").fetchone()[0]
        assert columns == "version text, statements ARRAY, name text"
        assert conn.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = "
                            "'supabase_migrations.schema_migrations'::regclass").fetchone() == ("postgres",)
        applied = conn.execute("SELECT count(*) FROM supabase_migrations.schema_migrations").fetchone()[0]
    assert applied == len(list(schema.MIGRATIONS.glob("*.sql")))


def test_signup_and_login_write_what_gotrue_writes(sandbox):
    api = sandbox_env()["AIAS_SANDBOX_API_URL"]
    email, password = f"shape-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
    signed = httpx.post(f"{api}/api/auth/signup", json={"email": email, "password": password}, timeout=10)
    assert signed.status_code == 201, signed.text
    user = signed.json()["user"]["id"]
    try:
        login = httpx.post(f"{api}/api/auth/login", json={"email": email, "password": password}, timeout=10)
        assert login.status_code == 200, login.text
        with admin_session() as conn:
            aud, role, app_meta = conn.execute("SELECT aud, role, raw_app_meta_data FROM auth.users WHERE id = %s",
                                               [user]).fetchone()
            assert (aud, role, app_meta) == ("authenticated", "authenticated",
                                             {"provider": "email", "providers": ["email"]})
            provider, data = conn.execute("SELECT provider, identity_data FROM auth.identities WHERE user_id = %s",
                                          [user]).fetchone()
            assert provider == "email" and data["sub"] == user and data["email"] == email
            payloads = [r[0] for r in conn.execute("SELECT payload FROM auth.audit_log_entries "
                                                   "WHERE payload ->> 'actor_id' = %s ORDER BY created_at", [user])]
            assert [p["action"] for p in payloads] == ["user_signedup", "login"]
            assert all(set(p) == AUDIT_PAYLOAD_KEYS for p in payloads), payloads
            session = conn.execute("SELECT s.aal::text, s.created_at IS NOT NULL, t.session_id = s.id "
                                   "FROM auth.sessions s JOIN auth.refresh_tokens t ON t.user_id = s.user_id::text "
                                   "WHERE s.user_id = %s", [user]).fetchone()
            assert session == ("aal1", True, True)
    finally:
        with admin_session() as conn:
            conn.execute("DELETE FROM auth.audit_log_entries WHERE payload ->> 'actor_id' = %s", [user])
            conn.execute("DELETE FROM auth.users WHERE id = %s", [user])


def test_the_seeded_audit_log_is_what_gotrue_writes(sandbox):
    with admin_session() as conn:
        rows = conn.execute("SELECT a.payload, a.instance_id::text, u.raw_user_meta_data ->> 'full_name' "
                            "FROM auth.audit_log_entries a JOIN auth.users u ON u.id::text = a.payload ->> 'actor_id' "
                            "ORDER BY a.created_at LIMIT 200").fetchall()
    assert len(rows) == 200
    for payload, instance, full_name in rows:
        assert set(payload) == AUDIT_PAYLOAD_KEYS | {"actor_name"} and payload["actor_name"] == full_name, payload
        assert payload["log_type"] == {"user_signedup": "team", "login": "account"}[payload["action"]]
        assert instance == "00000000-0000-0000-0000-000000000000"


def _setup_block() -> str:
    """The monitoring-role block of docs/security.md, as an operator copies it."""
    text = SECURITY_DOC.read_text()
    section = text[text.index("## The monitoring role"):]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def _login(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, f"{user}:{password}@{parts.hostname}:{parts.port}", parts.path, "", ""))


@pytest.fixture
def readme_monitor(sandbox) -> Iterator[str]:
    """The documented block run by the project's postgres login, for a role of its own (aias_monitor_readme, with its
    own policy names); its URL. Dropped afterwards, with everything granted to it."""
    password = secrets.token_urlsafe(12)
    block = (_setup_block().replace("aias_monitor", "aias_monitor_readme").replace("_monitor_read ", "_readme_read ")
             .replace("PASSWORD '...'", f"PASSWORD '{password}'"))
    project = sandbox_env()["AIAS_SANDBOX_POSTGRES_DATABASE_URL"]
    try:
        with psycopg.connect(project, autocommit=True) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            conn.execute(block)
        yield _login(project, "aias_monitor_readme", password)
    finally:
        with admin_session() as conn:   # what postgres granted on objects it does not own, it revokes
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'aias_monitor_readme'").fetchone():
                conn.execute("SET ROLE postgres")
                conn.execute("REVOKE ALL ON SCHEMA extensions, auth FROM aias_monitor_readme")
                conn.execute("REVOKE ALL ON auth.users FROM aias_monitor_readme")
                conn.execute("RESET ROLE")
                conn.execute("DROP OWNED BY aias_monitor_readme")
                conn.execute("DROP ROLE aias_monitor_readme")


def test_the_readmes_monitoring_setup_runs_as_postgres_and_doctor_accepts_it(readme_monitor):
    result, lines = doctor("--env", "sandbox", AIAS_SANDBOX_DATABASE_URL=readme_monitor)
    for name in ("database role", "database grants", "grant for actions", "table reads", "auth reads", "write paths",
                 "read-only session"):
        assert line(lines, name).startswith("OK"), result.stdout
    assert "aias_monitor_readme" in line(lines, "database")


def test_a_plain_grant_on_an_auth_table_reads_no_rows_the_view_reads_them_all(readme_monitor):
    """Why docs/security.md reads Auth through views: postgres may grant SELECT on Auth's tables, but not USAGE on its
    schema, and even with USAGE (the platform's to give) Auth's row level security leaves the role zero rows."""
    with psycopg.connect(sandbox_env()["AIAS_SANDBOX_POSTGRES_DATABASE_URL"], autocommit=True) as project:
        project.execute("GRANT SELECT (id) ON auth.users TO aias_monitor_readme")
    with psycopg.connect(readme_monitor) as monitor, pytest.raises(psycopg.errors.InsufficientPrivilege):
        monitor.execute("SELECT count(*) FROM auth.users")
    with admin_session() as conn:
        conn.execute("GRANT USAGE ON SCHEMA auth TO aias_monitor_readme")
    with psycopg.connect(readme_monitor) as monitor:
        direct = monitor.execute("SELECT count(*) FROM auth.users").fetchone()[0]
        viewed = monitor.execute("SELECT count(*) FROM aias_runbooks.auth_users").fetchone()[0]
    assert direct == 0 and viewed > 100


def test_doctor_warns_when_an_auth_view_cannot_see_past_row_level_security(sandbox):
    with admin_session() as conn:
        conn.execute("ALTER VIEW aias_runbooks.auth_users OWNER TO authenticated")
    try:
        result, lines = doctor("--env", "sandbox")
    finally:
        with admin_session() as conn:
            conn.execute("ALTER VIEW aias_runbooks.auth_users OWNER TO postgres")
    reads = line(lines, "auth reads")
    assert reads.startswith("WARNING") and "aias_runbooks.auth_users (owner authenticated)" in reads, result.stdout
    assert result.returncode != 0


def test_the_platform_is_made_once_and_the_apps_tables_belong_to_postgres(sandbox):
    """A second bootstrap is a no-op; the migrations ran as postgres, so it owns what they made, as on Supabase."""
    schema.bootstrap(sandbox_env()["AIAS_SANDBOX_ADMIN_DATABASE_URL"])
    with admin_session() as conn:
        owners = dict(conn.execute("SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
                                   "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
                                   ).fetchall())
    assert len(owners) >= 13 and set(owners.values()) == {"postgres"}, owners
