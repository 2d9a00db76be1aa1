"""The hosted services the platform depends on, emulated with their public APIs' shapes by one small server
(server.py): Vercel, Resend, Supabase Auth's health, the vendors' status pages, a Slack incoming webhook and the
external APIs workflows call, one module each, sharing services.json (state.py)."""
