"""The platform's everyday traffic: the application's database reads and row-lock contention (reads.py) and its
users over HTTP (visitors.py): what a healthy platform looks like to every runbook."""
