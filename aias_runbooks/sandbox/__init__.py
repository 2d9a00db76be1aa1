"""The embedded AIAS Platform: a real Postgres, the sandbox AIAS API and localstripe, with fault scenarios."""
