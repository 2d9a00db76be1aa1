-- Rate-limit keys blocked right now (rate_limits): the key, until when, and the count that tripped its limit.
SELECT key, max(blocked_until) AS blocked_until, max(count) AS count, max("limit") AS "limit"
FROM public.rate_limits
WHERE blocked_until > now()
GROUP BY key
ORDER BY max(blocked_until) DESC
LIMIT 50
