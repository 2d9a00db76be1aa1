-- The reads the app makes for one user (profile, memberships, tenants, workflows, executions since :since, subscription, plans): rows per table as the monitoring role sees them (every row).
SELECT "table", "read", "rows"
FROM aias_runbooks.user_reads(CAST(:user_id AS uuid), CAST(:tenant_ids AS uuid[]), CAST(:since AS timestamptz))
