"""Errors the CLI turns into one clear line on stderr and exit code 3."""


class UsageError(Exception):
    """Bad input: names what is wrong and what is valid."""
