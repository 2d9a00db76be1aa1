"""Alerts in: webhooks from Alertmanager, Grafana and PagerDuty parsed into one shape (model.py, inbound.py) and
routed to the runbook that diagnoses them (routes.py, params/routes.yaml). `aias-runbooks serve` (serve/) admits
them; this package decides nothing about when a run starts, only what an alert is and which run it asks for."""
