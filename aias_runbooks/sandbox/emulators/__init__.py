"""The third parties the platform depends on, emulated: Stripe (stripe/: localstripe, its launcher and the seed
it shares with the database) and the hosted services (hosted/: Vercel, Resend, Supabase Auth, status pages, Slack,
integrations)."""
