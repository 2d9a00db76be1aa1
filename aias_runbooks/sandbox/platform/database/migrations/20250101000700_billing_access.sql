-- Billing access: the API's webhook and reconcile endpoints write stripe_events and subscription_tiers; the monitor reads them and the webhook log.

-- /api/stripe/webhook records every verified event (received, then processed, failed or ignored) and applies
-- subscription changes; /api/billing/reconcile updates subscription_tiers from Stripe's objects.
GRANT SELECT, INSERT, UPDATE ON public.stripe_events TO aias_app;
GRANT UPDATE ON public.subscription_tiers TO aias_app;

-- The billing runbooks compare Stripe's events with stripe_events and read the endpoint's own request log.
GRANT SELECT ON public.stripe_events, public.api_requests TO aias_monitor;
CREATE POLICY stripe_events_monitor_read ON public.stripe_events FOR SELECT TO aias_monitor USING (true);
CREATE POLICY api_requests_monitor_read ON public.api_requests FOR SELECT TO aias_monitor USING (true);
