-- Stripe events the app received over the window (stripe_events) by type and status, with the latest error: failed processing and failed payments at a glance.
SELECT type, status, count(*) AS events, max(received_at) AS last_at,
       (array_agg(error ORDER BY received_at DESC) FILTER (WHERE error IS NOT NULL))[1] AS last_error
FROM public.stripe_events
WHERE received_at >= now() - make_interval(mins => :window_minutes)
GROUP BY type, status
ORDER BY events DESC, type, status
LIMIT 50
