"""The migrations runbook's parsing, without a database: median time of the CLI split (sources.migrations.split),
the applied-vs-file comparison (same_sql) and the dependency analysis (checks.migration_dependencies.analyze) on the
sandbox's own migrations and on generated files of N statements (a schema migration: tables with foreign keys,
indexes and policies; a data migration: INSERTs). Usage:
    .venv/bin/python benchmarks/migrations.py [RUNS]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from aias_runbooks.checks.migration_dependencies import analyze
from aias_runbooks.sandbox.platform.database.schema import MIGRATIONS
from aias_runbooks.sources.migrations import Catalogue, same_sql, split

SUPABASE = Catalogue(schemas=frozenset({"public", "extensions", "supabase_migrations"}),
                     relations=frozenset({("supabase_migrations", "schema_migrations")}))


def schema_migration(tables: int) -> str:
    """Each table references the one before it, gets an index, RLS and a policy calling a function: 5 statements."""
    parts = ["CREATE FUNCTION public.allowed() RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT true $$;\n"]
    for i in range(tables):
        ref = f", parent bigint REFERENCES public.t{i - 1} (id)" if i else ""
        parts.append(f"CREATE TABLE public.t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                     f"name text NOT NULL DEFAULT 'x;y'{ref});\n"
                     f"CREATE INDEX t{i}_name_idx ON public.t{i} (name);\n"
                     f"ALTER TABLE public.t{i} ENABLE ROW LEVEL SECURITY;\n"
                     f"CREATE POLICY t{i}_read ON public.t{i} FOR SELECT USING (public.allowed());\n"
                     f"GRANT SELECT ON public.t{i} TO authenticated;\n")
    return "".join(parts)


def data_migration(rows: int) -> str:
    return "CREATE TABLE public.d (a int, b text);\n" + "".join(
        f"INSERT INTO public.d (a, b) VALUES ({i}, 'row; {i}');\n" for i in range(rows))


def median_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sandbox = [(p.name, p.read_text()) for p in sorted(MIGRATIONS.glob("*.sql"))]
    cases = [(f"sandbox ({len(sandbox)} files)", sandbox)]
    cases += [(f"schema, {n * 5 + 1:,} statements", [("20990101000000_s.sql", schema_migration(n))])
              for n in (200, 2_000)]
    cases += [(f"data, {n + 1:,} statements", [("20990101000000_d.sql", data_migration(n))]) for n in (2_000, 20_000)]
    print(f"{'migrations':32} {'KB':>7} {'statements':>10} {'split ms':>9} {'same_sql ms':>11} {'analyze ms':>10}")
    for name, files in cases:
        size = sum(len(text.encode()) for _, text in files) / 1e3
        count = sum(len(split(text)) for _, text in files)
        split_ms = median_ms(lambda files=files: [split(t) for _, t in files], runs)
        same_ms = median_ms(lambda files=files: [same_sql(t, t) for _, t in files], runs)
        analyze_ms = median_ms(lambda files=files: analyze(files, SUPABASE), runs)
        print(f"{name:32} {size:7.0f} {count:10,} {split_ms:9.0f} {same_ms:11.0f} {analyze_ms:10.0f}")


if __name__ == "__main__":
    main()
