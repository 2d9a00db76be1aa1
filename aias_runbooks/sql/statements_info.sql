-- Since when pg_stat_statements has been counting (pg_stat_statements_info, 1.9+ on PostgreSQL 14+) and whether sessions carry a query_id.
SELECT stats_reset,
       current_setting('compute_query_id', true) AS compute_query_id
FROM :"statements_schema".pg_stat_statements_info
