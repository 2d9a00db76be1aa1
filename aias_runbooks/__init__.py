"""aias-runbooks: executable runbook notebooks for operating the AIAS Platform."""

__version__ = "0.1.0"
