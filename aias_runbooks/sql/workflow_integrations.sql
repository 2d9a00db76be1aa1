-- The integrations (external APIs) active workflows call, with how many workflows call each.
SELECT integration, count(*) AS workflows
FROM public.workflows
WHERE status = 'active'
GROUP BY integration
ORDER BY count(*) DESC, integration
LIMIT 50
