"""The sandbox's database as a Supabase project has it: the platform's roles, schemas and Auth tables (set up by the
superuser supabase_admin), then the app's migrations applied as the project's `postgres` role, which is not a
superuser (recorded as the Supabase CLI does), then days of history."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from ....sources.migrations import split

MIGRATIONS = Path(__file__).parent / "migrations"
PLATFORM = Path(__file__).parent / "platform.sql"
SEED = Path(__file__).parent / "seed.sql"
PROJECT_ROLE = "postgres"   # what a Supabase project's owner logs in as: CREATEROLE, BYPASSRLS, not a superuser

HISTORY_TABLE = """
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
    version text NOT NULL PRIMARY KEY,
    statements text[],
    name text
);
"""


def provision(admin_dsn: str, project_password: str) -> tuple[str, list[str]]:
    """A fresh cluster made a Supabase project: the platform (as the superuser of admin_dsn), the `postgres` login
    with project_password, the app's migrations applied as postgres. Returns postgres's URL and the versions applied."""
    bootstrap(admin_dsn)
    allow_login(admin_dsn, {PROJECT_ROLE: project_password})
    project_dsn = as_role(admin_dsn, PROJECT_ROLE, project_password)
    return project_dsn, migrate(project_dsn)


def bootstrap(admin_dsn: str) -> None:
    """platform.sql, once: what Supabase sets up before a project's first migration (it creates the auth schema)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regnamespace('auth') IS NULL").fetchone()[0]:
            with conn.transaction():
                conn.execute(PLATFORM.read_text())


def as_role(dsn: str, role: str, password: str) -> str:
    """dsn with another login (a sandbox URL: postgresql://user:password@host:port/db)."""
    scheme, _, rest = dsn.partition("://")
    return f"{scheme}://{role}:{password}@{rest.rsplit('@', 1)[1]}"


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
                             "VALUES (%s, %s, %s)", (version, [s.text for s in split(sql)], name))   # as the CLI
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


# `sandbox up --scale`: seed.sql's settings (aias.seed_<name>) per scale; default is seed.sql's own (72 hours).
SCALES: dict[str, dict[str, float]] = {
    "default": {},
    # 30 days of a busy platform: 10 M API requests with a daily cycle, 2 M error logs (one per 5xx, ~30 k, and
    # the worker's warnings), 1 M workflow executions, 50 k users in 2 k tenants (few large ones, many small),
    # 3 % of them paying
    "large": {"scale": 50, "hours": 720, "daily_cycle": 0.6, "users": 50_000, "tenants": 2_000,
              "tenant_skew": 3, "requests": 10_000_000, "executions": 1_000_000, "warnings": 1_970_000,
              "paid_share": 0.03},   # 1,500 paying users: localstripe holds them all, and seeds them at each `up`
}
# what a production database of that size has (Supabase's compute sizes give it a quarter of the memory or more)
SHARED_BUFFERS = {"default": "128MB", "large": "1GB"}
# After the large load, what a running platform has in memory and the load evicted: every table and index of
# the application up to 200 MB whole, and the newest 5 % of the larger ones (the recent end the platform writes
# and the runbooks read). pg_prewarm, when the server has it.
PREWARM_SQL = """
SELECT count(extensions.pg_prewarm(c.oid, 'buffer', 'main',
                                   CASE WHEN pg_relation_size(c.oid) > 200 * 1024 * 1024
                                        THEN (0.95 * pg_relation_size(c.oid)
                                              / current_setting('block_size')::int)::bigint
                                   END, NULL))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'auth') AND c.relkind IN ('r', 'i') AND pg_relation_size(c.oid) > 0
"""
ARCHIVE_TABLES = 2_000   # large: one small archive table per tenant (schema archive), as per-tenant exports leave


def seed(dsn: str, scale: float = 1, settings: dict[str, float] | None = None) -> None:
    """Bulk-load days of history relative to now(); scale multiplies the row counts, settings (SCALES) set
    seed.sql's aias.seed_<name> (row counts per table, hours of history, daily cycle, tenant skew)."""
    values = {"scale": scale, **(settings or {})}
    with psycopg.connect(dsn) as conn:
        for name, value in values.items():
            conn.execute("SELECT set_config(%s, %s, true)", (f"aias.seed_{name}", str(value)))
        conn.execute(SEED.read_text())


def settle(dsn: str) -> bool:
    """After a bulk load: VACUUM now (otherwise autovacuum reads the new tables whole, after the statistics
    reset, and that reads as a low cache hit ratio), then read the working set back into shared buffers.
    False if the server has no pg_prewarm (the vacuum is done, the cache stays cold)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM")
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm WITH SCHEMA extensions")
        except psycopg.errors.UndefinedFile:
            return False
        conn.execute(PREWARM_SQL)
        conn.execute("DROP EXTENSION pg_prewarm")
    return True


def archive_tables(dsn: str, count: int = ARCHIVE_TABLES, batch: int = 100) -> None:
    """Schema `archive`: one small table per tenant (1 to ~60 rows, larger tenants more), `batch` tables per
    transaction (each new table, its TOAST table and their indexes take a lock until the commit)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS archive CASCADE")
        conn.execute("CREATE SCHEMA archive")
        for start in range(1, count + 1, batch):
            conn.execute("".join(
                f"CREATE TABLE archive.tenant_{t:04d} (id bigint PRIMARY KEY, archived_at timestamptz NOT NULL,"
                f" kind text NOT NULL, amount numeric(12, 2));"
                f"INSERT INTO archive.tenant_{t:04d} SELECT g, now() - g * interval '1 day',"
                f" (ARRAY['invoice','export','audit'])[1 + g % 3], round((g * 37 % 1000)::numeric, 2)"
                f" FROM generate_series(1, {1 + 60 // t ** 0.5:.0f}) AS g;"
                for t in range(start, min(start + batch, count + 1))))
            # the row estimates autovacuum would leave (a list: one transaction per table)
            conn.execute("ANALYZE " + ", ".join(f"archive.tenant_{t:04d}"
                                                for t in range(start, min(start + batch, count + 1))))
