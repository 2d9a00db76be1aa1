"""`aias-runbooks serve`: alerts in (Alertmanager, Grafana, PagerDuty webhooks), runbook runs out.

app.py is the HTTP side (POST /alerts/{sender}, GET /metrics, GET /healthz, SIGTERM drain); intake.py decides each
alert (resolved, routed, deduplicated, admitted); admission.py keeps the dedup window and the bounds on runs;
runs.py starts each run as its own `aias-runbooks run` process and, when it ends, pages, records metrics and posts
the report back; audit.py keeps one JSON line per alert decided in <output>/.serve/audit.jsonl.
"""
