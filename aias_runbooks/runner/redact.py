"""After every run: find secrets in the report folder (values in use and known key shapes) and redact them."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urlsplit

MASK = "[REDACTED]"
KEY_SHAPES = [
    re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"),          # Stripe secret / restricted keys
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{10,}"),                     # Stripe webhook signing secrets
    re.compile(r"\bre_[A-Za-z0-9]{6,}_[A-Za-z0-9]{10,}"),           # Resend API keys
    re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"),         # JWTs (Supabase service keys, sessions)
]
DSN_PASSWORD = re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s\"'<>]+:)([^@\s\"'<>]+)(@)")


def variants(value: str) -> set[str]:
    """The ways a secret can be spelled in a JSON, HTML or URL file."""
    return {value, json.dumps(value)[1:-1], html.escape(value), quote(value, safe="")}


def secret_values(secrets: Iterable[str]) -> list[str]:
    """The secrets in use plus the password inside any connection URL among them."""
    values = [s for s in secrets if s]
    for value in list(values):
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            values.append(password)
    return values


def redact_text(text: str, secrets: Iterable[str]) -> tuple[str, int]:
    count = 0
    for secret in sorted({v for s in secrets if len(s) >= 6 for v in variants(s)}, key=len, reverse=True):
        if secret in text:
            count += text.count(secret)
            text = text.replace(secret, MASK)
    for shape in KEY_SHAPES:
        text, n = shape.subn(MASK, text)
        count += n
    passwords = [m for m in DSN_PASSWORD.finditer(text) if m.group(2) != MASK]
    text = DSN_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return text, count + len(passwords)


def redact_folder(folder: Path, secrets: Iterable[str]) -> dict[str, int]:
    """Redact every text file under folder in place; returns {file name: redactions} for files changed."""
    values = secret_values(secrets)
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        cleaned, count = redact_text(text, values)
        if count:
            path.write_text(cleaned)
            found[path.name] = count
    return found
