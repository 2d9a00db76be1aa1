"""The sandbox's Stripe: localstripe (server.py), started by launcher.py, seeded consistent with the database
(seeding.py)."""
