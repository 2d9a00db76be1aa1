"""The platform's HTTP API (app.py) and its routes: auth, billing (Stripe webhooks), credentials, workflows."""
