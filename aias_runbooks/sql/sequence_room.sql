-- Each sequence against the largest value the column it feeds can hold (an integer column fed by a bigint sequence runs out at 2^31-1): the share of its range used; last_value is null where this role may not read the sequence (readable false).
WITH fed AS (
    -- owned by the column (serial, identity, OWNED BY) ...
    SELECT d.objid AS seq_oid, d.refobjid AS table_oid, d.refobjsubid AS attnum
    FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
    UNION
    -- ... or named by a column's default (nextval('...'))
    SELECT d.refobjid, ad.adrelid, ad.adnum
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_attrdef ad ON ad.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
), judged AS (
    SELECT sn.nspname || '.' || sc.relname                                   AS sequence_name,
           tn.nspname || '.' || tc.relname || '.' || a.attname               AS column_name,
           pg_catalog.format_type(a.atttypid, NULL)                          AS column_type,
           pg_catalog.format_type(q.seqtypid, NULL)                          AS sequence_type,
           q.seqincrement > 0                                                AS ascending,
           pg_catalog.has_sequence_privilege(sc.oid, 'SELECT,USAGE')         AS readable,
           CASE WHEN pg_catalog.has_sequence_privilege(sc.oid, 'SELECT,USAGE')
                THEN pg_catalog.pg_sequence_last_value(sc.oid) END           AS last_value,
           q.seqmin, q.seqmax,
           CASE WHEN q.seqincrement > 0
                THEN least(q.seqmax, CASE a.atttypid WHEN 'pg_catalog.int2'::pg_catalog.regtype THEN 32767
                                                     WHEN 'pg_catalog.int4'::pg_catalog.regtype THEN 2147483647
                                                     ELSE q.seqmax END)
                ELSE greatest(q.seqmin, CASE a.atttypid WHEN 'pg_catalog.int2'::pg_catalog.regtype THEN -32768
                                                        WHEN 'pg_catalog.int4'::pg_catalog.regtype THEN -2147483648
                                                        ELSE q.seqmin END) END AS limit_value
    FROM fed f
    JOIN pg_catalog.pg_class sc ON sc.oid = f.seq_oid AND sc.relkind = 'S'
    JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
    JOIN pg_catalog.pg_sequence q ON q.seqrelid = sc.oid
    JOIN pg_catalog.pg_class tc ON tc.oid = f.table_oid
    JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace
    JOIN pg_catalog.pg_attribute a ON a.attrelid = f.table_oid AND a.attnum = f.attnum AND NOT a.attisdropped
    WHERE NOT pg_catalog.pg_is_other_temp_schema(sc.relnamespace)
)
SELECT sequence_name, column_name, column_type, sequence_type, readable, last_value, limit_value,
       CASE WHEN readable THEN round(100.0 * CASE WHEN ascending THEN coalesce(last_value, seqmin)::numeric - seqmin
                                                  ELSE seqmax::numeric - coalesce(last_value, seqmax) END
             / nullif(CASE WHEN ascending THEN limit_value::numeric - seqmin ELSE seqmax::numeric - limit_value END, 0), 2)
       END
           AS used_pct,
       current_user AS reader
FROM judged
ORDER BY used_pct DESC NULLS LAST, sequence_name, column_name
