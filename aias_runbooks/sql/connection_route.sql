-- The server session serving this transaction and the client port the server sees (a pooler in between shows as its own port).
SELECT pg_catalog.pg_backend_pid() AS pid,
       (SELECT a.client_port FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()) AS client_port
