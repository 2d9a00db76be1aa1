"""Orchestrators the runbooks run under besides cron and run-due: Airflow (airflow.py)."""
