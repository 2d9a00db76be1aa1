"""The faults scenarios inject, one module each, behind one protocol (base.Fault: make(ctx) / reset(ctx)):
the API's own (api_modes), the Stripe webhook endpoint's (webhook_modes), held database sessions
(database_sessions: a leak, exhausted slots, lock queues, a missing index), schema changes (autovacuum_disabled,
rls_gap, paying_member_removed), Stripe activity (stripe_activity), signups (signup_activity), a bad release
(bad_release), workflow faults (workflow_faults), stale backups (stale_backup), migration drift (migration_drift),
stolen credentials (credential_misuse), a policy hiding a user's rows (rls_blocks_user) and minutes of metric
history (metric_history)."""
