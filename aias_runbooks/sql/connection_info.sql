-- This session as the server sees it: version, database, role, read-only state, timeouts, application_name.
SELECT current_setting('server_version')              AS server_version,
       current_database()                              AS database,
       current_user                                    AS role,
       current_setting('transaction_read_only')        AS read_only,
       current_setting('statement_timeout')            AS statement_timeout,
       current_setting('lock_timeout')                 AS lock_timeout,
       current_setting('application_name')             AS application_name,
       pg_postmaster_start_time()                      AS server_started_at
