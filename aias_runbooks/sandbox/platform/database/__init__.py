"""The platform's Supabase-shaped Postgres: the server, its schema and migrations, the seeded history, PgBouncer in
front of it, the backup role, and its statistics as a running platform has them."""
