-- What the app recorded of these Stripe events (stripe_events): processed, ignored, failed with the error, or nothing.
SELECT id, type, status, error, received_at, processed_at
FROM public.stripe_events
WHERE id = ANY(CAST(:ids AS text[]))
