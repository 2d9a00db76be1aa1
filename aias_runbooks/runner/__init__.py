"""Run a runbook notebook headlessly with papermill and archive its report."""
