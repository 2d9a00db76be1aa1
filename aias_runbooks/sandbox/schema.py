"""Apply the sandbox's Supabase-shaped migrations (recorded as the Supabase CLI does) and seed its history."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

MIGRATIONS = Path(__file__).parent / "migrations"
SEED = Path(__file__).parent / "seed.sql"

HISTORY_TABLE = """
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
    version text NOT NULL PRIMARY KEY,
    statements text[],
    name text
);
"""


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations in version order, one transaction each; returns the versions applied."""
    applied: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(HISTORY_TABLE)
        done = {row[0] for row in conn.execute("SELECT version FROM supabase_migrations.schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in done:
                continue
            sql = path.read_text()
            with conn.transaction():
                conn.execute(sql)
                conn.execute("INSERT INTO supabase_migrations.schema_migrations (version, statements, name) "
                             "VALUES (%s, %s, %s)", (version, [sql], name))
            applied.append(version)
    return applied


def allow_login(dsn: str, passwords: dict[str, str]) -> None:
    """LOGIN PASSWORD for roles the migrations created NOLOGIN (passwords never live in a migration).

    The password is hashed here (SCRAM-SHA-256, as psql's \\password does), so its plain text never reaches
    the server: not its log, not pg_stat_statements.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role, password in passwords.items():
            verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                            sql.Literal(verifier)))


def enable_pg_stat_statements(dsn: str) -> None:
    """As Supabase does: the extension lives in the `extensions` schema."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS extensions")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA extensions")


def seed(dsn: str, scale: int = 1) -> None:
    """Bulk-load days of history relative to now(); scale multiplies the row counts."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT set_config('aias.seed_scale', %s, true)", (str(scale),))
        conn.execute(SEED.read_text())
