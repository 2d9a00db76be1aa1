-- Duplicate indexes: valid indexes of one table on the same columns and expressions, with the same predicate, operator classes, collations and access method; the first of each set is the one to keep (it backs a constraint, else it is unique, else the oldest).
WITH indexes AS (
    SELECT x.indexrelid, x.indrelid,
           n.nspname || '.' || i.relname AS index_name,
           EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid) AS backs_constraint,
           x.indisunique,
           pg_catalog.pg_relation_size(x.indexrelid) AS index_bytes,
           concat_ws(' | ', i.relam::text, x.indkey::text, x.indclass::text, x.indcollation::text, x.indoption::text,
                     pg_catalog.pg_get_expr(x.indexprs, x.indrelid),
                     'WHERE ' || pg_catalog.pg_get_expr(x.indpred, x.indrelid)) AS signature
    FROM pg_catalog.pg_index x
    JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
    WHERE x.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND NOT pg_catalog.pg_is_other_temp_schema(i.relnamespace)
)
SELECT tn.nspname || '.' || t.relname                                                        AS table_name,
       array_agg(d.index_name ORDER BY d.backs_constraint DESC, d.indisunique DESC, d.indexrelid) AS indexes,
       (array_agg(pg_catalog.pg_get_indexdef(d.indexrelid)
                  ORDER BY d.backs_constraint DESC, d.indisunique DESC, d.indexrelid))[1]          AS kept_definition,
       sum(d.index_bytes) - (array_agg(d.index_bytes
                                       ORDER BY d.backs_constraint DESC, d.indisunique DESC, d.indexrelid))[1]
                                                                                             AS duplicate_bytes
FROM indexes d
JOIN pg_catalog.pg_class t ON t.oid = d.indrelid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
GROUP BY tn.nspname, t.relname, d.indrelid, d.signature
HAVING count(*) > 1
ORDER BY table_name, indexes
