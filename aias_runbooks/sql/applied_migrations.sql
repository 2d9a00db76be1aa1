-- Migrations recorded as applied by the Supabase CLI (supabase_migrations.schema_migrations), newest first.
SELECT version, name FROM supabase_migrations.schema_migrations ORDER BY version DESC LIMIT :limit
