-- The same reads as the user sees them under row level security (authenticated, with their JWT claims), through the read-only function that alone may run them so.
SELECT "table", "read", "rows"
FROM aias_runbooks.user_reads_as_user(CAST(:user_id AS uuid), CAST(:email AS text), CAST(:tenant_ids AS uuid[]),
                                      CAST(:since AS timestamptz))
