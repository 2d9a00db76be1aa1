"""The monitoring login cannot write, by any path: not through a role it can switch to, not with forged JWT claims, not
in a READ WRITE transaction with read-only turned off, not through a SECURITY DEFINER function it may execute.

Every attempt runs in one transaction that is rolled back, so even a write that got through would leave nothing; the
assertion is on the refusal itself (insufficient_privilege, 42501), not on read-only mode, which a client can turn
off."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from ..helpers import admin_session, monitor_dsn

MONITOR = "aias_monitor"
INSUFFICIENT_PRIVILEGE = "42501"

TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
ORDER BY 1, 2
"""


def _monitor() -> psycopg.Connection:
    """A monitor session as an attacker holding the login would open it: no read-only client option."""
    return psycopg.connect(monitor_dsn(), autocommit=True)


def _refusal(conn: psycopg.Connection, statement: sql.Composable | str) -> str | None:
    """The SQLSTATE the statement failed with inside a savepoint, or None when it ran."""
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def _attempts(conn: psycopg.Connection, tables: list[tuple[str, str, str]]) -> dict[str, str | None]:
    """Every write to every table, in a READ WRITE transaction with read-only off: statement -> SQLSTATE."""
    seen: dict[str, str | None] = {}
    for schema, table, column in tables:
        name = sql.Identifier(schema, table)
        for statement in (sql.SQL("INSERT INTO {} DEFAULT VALUES").format(name),
                          sql.SQL("UPDATE {} SET {} = {} WHERE false").format(name, sql.Identifier(column),
                                                                              sql.Identifier(column)),
                          sql.SQL("DELETE FROM {} WHERE false").format(name),
                          sql.SQL("TRUNCATE {}").format(name)):
            seen[statement.as_string(conn)] = _refusal(conn, statement)
    return seen


@pytest.fixture(scope="module")
def tables(sandbox) -> list[tuple[str, str, str]]:
    """Every table of the database (schema, name, a column), the platform's and Supabase's alike."""
    with admin_session() as conn:
        rows = conn.execute(TABLES).fetchall()
        return [(s, t, conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                                    "AND NOT attisdropped AND attidentity = '' AND attgenerated = '' "
                                    "ORDER BY attnum LIMIT 1",
                                    [f'"{s}"."{t}"']).fetchone()[0]) for s, t in rows]


def test_the_monitor_starts_read_only_by_role_setting(sandbox):
    """Read-only is the role's own setting, not only an option our client sends."""
    with _monitor() as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"


def test_the_monitor_can_switch_to_no_role_that_can_write(sandbox, tables):
    """SET ROLE to every role of the cluster: refused, or the role reached can write nothing either."""
    with admin_session() as admin:
        roles = [r[0] for r in admin.execute("SELECT rolname FROM pg_roles WHERE rolname <> %s ORDER BY 1",
                                             [MONITOR]).fetchall()]
    reached = []
    with _monitor() as conn:
        conn.execute("SET default_transaction_read_only = off")
        for role in roles:
            with conn.transaction(force_rollback=True):
                if _refusal(conn, sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role))) is None:
                    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                    reached.append(role)
                    written = {s: code for s, code in _attempts(conn, tables).items()
                               if code != INSUFFICIENT_PRIVILEGE}
                    assert not written, f"as {role} the monitor was not refused: {written}"
    assert "authenticated" not in reached and "service_role" not in reached and "postgres" not in reached, reached


def test_forged_claims_in_a_read_write_transaction_write_nothing(sandbox, tables):
    """The attack as reported: read-only off, BEGIN READ WRITE, a user's JWT claims, then every write to every
    table; and the issue's own reproduction leaves the profile as it was."""
    with admin_session() as admin:
        uid, name = admin.execute("SELECT id, full_name FROM public.profiles ORDER BY id LIMIT 1").fetchone()
    claims = json.dumps({"sub": str(uid), "role": "authenticated"})
    with _monitor() as conn:
        conn.execute("SET default_transaction_read_only = off")
        assert _refusal(conn, "SET ROLE authenticated") == INSUFFICIENT_PRIVILEGE
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ WRITE")
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [claims])
            written = {s: code for s, code in _attempts(conn, tables).items() if code != INSUFFICIENT_PRIVILEGE}
            assert not written, f"the monitor was not refused: {written}"
            assert _refusal(conn, sql.SQL("UPDATE public.profiles SET full_name = 'written-by-monitor' WHERE id = {}")
                            .format(sql.Literal(uid))) == INSUFFICIENT_PRIVILEGE
    with admin_session() as admin:
        assert admin.execute("SELECT full_name FROM public.profiles WHERE id = %s", [uid]).fetchone()[0] == name


def test_no_definer_function_the_monitor_may_run_can_write(sandbox):
    """A SECURITY DEFINER function runs with its owner's rights: every one the monitor may execute is STABLE or
    IMMUTABLE (PostgreSQL refuses INSERT, UPDATE and DELETE inside those), and the monitor may create none of its own
    in any schema."""
    with admin_session() as admin:
        definers = admin.execute(
            "SELECT p.oid::regprocedure::text, p.provolatile FROM pg_proc p "
            "WHERE p.prosecdef AND has_function_privilege(%s, p.oid, 'EXECUTE')", [MONITOR]).fetchall()
        creatable = admin.execute("SELECT nspname FROM pg_namespace WHERE has_schema_privilege(%s, oid, 'CREATE') "
                                  "AND nspname !~ '^pg_temp|^pg_toast_temp'", [MONITOR]).fetchall()
    assert ("aias_runbooks.user_reads_as_user(uuid,text,uuid[],timestamp with time zone)", "s") in definers
    assert all(volatility in ("s", "i") for _, volatility in definers), definers
    assert creatable == [], creatable


def test_the_definer_function_reads_as_the_user_and_refuses_a_write_inside(sandbox):
    """The function does see through the user's eyes (their own profile, not another's), and a write attempted from
    inside a STABLE function is refused by PostgreSQL itself."""
    with admin_session() as admin:
        uid = admin.execute("SELECT id FROM public.profiles ORDER BY id LIMIT 1").fetchone()[0]
        admin.execute("CREATE OR REPLACE FUNCTION pg_temp.try_write() RETURNS int LANGUAGE plpgsql STABLE AS "
                      "$$ BEGIN UPDATE public.profiles SET full_name = full_name WHERE false; RETURN 1; END $$")
        # "UPDATE is not allowed in a non-volatile function"
        assert _refusal(admin, "SELECT pg_temp.try_write()") == "0A000"
    with _monitor() as conn:
        rows = dict(conn.execute('SELECT "table", "rows" FROM '
                                 "aias_runbooks.user_reads_as_user(%s, '', '{}', now())", [uid]).fetchall())
        assert rows["profiles"] == 1 and rows["plan_limits"] > 0
        assert conn.execute("SELECT current_user, current_setting('request.jwt.claims', true)").fetchone() \
            in ((MONITOR, ""), (MONITOR, None))
