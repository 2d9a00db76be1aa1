-- Every migration the Supabase CLI recorded as applied (version, name, the statements it ran), oldest first.
SELECT version, coalesce(name, '') AS name, statements
FROM supabase_migrations.schema_migrations
ORDER BY version
LIMIT :limit
