"""The AIAS Platform as its users meet it: its database (database/), its HTTP API (api/) and its workflow worker."""
