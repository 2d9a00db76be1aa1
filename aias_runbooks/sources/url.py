"""Outside text (an integration's name, a deployment's id) placed in a URL's path as exactly one segment."""

from __future__ import annotations

from urllib.parse import quote


def segment(text: str) -> str:
    """`text` percent-encoded as one path segment: `/`, `?`, `#` and `%` cannot end it or start a query, and a
    segment of dots only (`.`, `..`: this folder, its parent) is written `%2E`, which no client resolves. So a name
    like `../admin` or `a/b?x` reaches the path it was meant for, not another endpoint of the same API."""
    quoted = quote(str(text), safe="")
    return quoted.replace(".", "%2E") if quoted and not quoted.strip(".") else quoted
