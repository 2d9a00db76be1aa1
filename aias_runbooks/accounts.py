"""What names one user in a runbook parameter: an email or a user id (uuid). Imports nothing heavy: the runner
checks a `[email-or-uuid]` parameter with it before any kernel starts, and the notebook looks the user up with it."""

from __future__ import annotations

import re

# As the AIAS API's signup accepts an email (sandbox/platform/api/auth_routes.py EMAIL): one @, no whitespace, a dot
# after it.
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
EXPECTED = "must be an email or a user id (uuid)"


def user_reference(value: str) -> tuple[str | None, str | None]:
    """(user id, None) for a uuid, (None, email) for an email, both trimmed; ValueError(EXPECTED) otherwise."""
    text = value.strip()
    if UUID.fullmatch(text):
        return text.lower(), None
    if EMAIL.fullmatch(text):
        return None, text
    raise ValueError(EXPECTED)
