-- Whether each table a runbook query reads exists and the connected role may SELECT it (:tables, schema-qualified).
SELECT t                                                                  AS table_name,
       to_regclass(t) IS NOT NULL                                         AS present,
       CASE WHEN to_regclass(t) IS NULL THEN false
            ELSE has_table_privilege(to_regclass(t), 'SELECT') END        AS can_select
FROM unnest(CAST(:tables AS text[])) AS t
ORDER BY t
