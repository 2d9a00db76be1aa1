"""Find secrets (the values in use, in any spelling, and known key shapes) in a run's files and redact them.

A secret can reach a report spelled many ways: as printed, HTML-escaped (report.html, a DataFrame), repr- or
JSON-escaped (an .ipynb holds a repr inside JSON), percent-encoded or decoded (URLs), markdown-escaped (the
report header), base64 (inside an embedded blob, at any byte offset), hex; split over the lines of an .ipynb
list of strings, over several stream outputs, or interrupted by ANSI colour codes (tracebacks) or HTML tags.
Every spelling of every secret is matched by one compiled regex (a trie of literal strings, longest first), so a
0.5 MB report folder scans in milliseconds. Import-light: the kernel imports this (runbook.record).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import tempfile
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache
from itertools import groupby
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from ..dsn import split_url
from ..findings import markdown_text

MASK = "[REDACTED]"
MIN_LENGTH = 6        # shorter secrets are not matched: they would redact innocent text
MIN_ENCODED = 12      # shortest base64 or hex spelling worth matching
MIN_LINE = 16         # one line of a multi-line secret (a PEM body line) is a secret by itself

# Each starts with a literal, so the regex engine skips ahead to it; the lookbehind after it is the \b before it.
KEY_SHAPES = [re.compile(f"{lit}(?<!\\w{lit}){rest}") for lit, rest in [
    ("sk_", r"(?:live|test)_[A-Za-z0-9]{10,}"),                      # Stripe secret keys
    ("rk_", r"(?:live|test)_[A-Za-z0-9]{10,}"),                      # Stripe restricted keys
    ("whsec_", r"[A-Za-z0-9+/=]{10,}"),                              # Stripe webhook signing secrets
    ("re_", r"[A-Za-z0-9]{6,}_[A-Za-z0-9]{10,}"),                    # Resend API keys
    ("eyJ", r"[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"),                 # JWTs (Supabase service keys, sessions)
]]
# The password of a postgres URL runs to the LAST '@' before the host (the host part holds no '@'), as
# dsn.split_url reads it, so a password with an unencoded '@' is caught whole.
DSN_PASSWORD = re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s\"'<>]*:)([^/\s\"'<>]+?)@"
                          r"(?=[^@/?#\s\"'<>]*(?:[/?#\s\"'<>]|\Z))")
# What can interrupt a secret without being part of it: ANSI escape sequences (raw, or escaped as JSON or
# repr write them) and runs of HTML tags (nbconvert turns ANSI colours into spans; stream chunks into <pre>s).
MARKUP = re.compile(r"(?:\x1b|\\u001[bB]|\\x1[bB]|\\033)(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\))"
                    r"|<[/!A-Za-z][^<>]*>(?:\s*<[/!A-Za-z][^<>]*>)*")
_MARKDOWN = re.compile(r"([!-/:-@\[-`{-~])")
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_UNICODE = re.compile(r"\\u[0-9a-f]{4}")
_LIBPQ_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)")


def secret_values(secrets: Iterable[str]) -> list[str]:
    """The secrets in use plus the parts of them that are secrets by themselves.

    For a connection URL (read by dsn.split_url, as the database source reads it): the password decoded, as
    written and percent-encoded, and each '@'/':'-separated fragment of it of at least 6 characters; for a
    libpq key=value string its password; for a multi-line secret (a PEM key) each long body line.
    """
    values: dict[str, None] = {}
    for secret in secrets:
        if not secret:
            continue
        values[secret] = None
        passwords = [unquote(m.group(1)[1:-1].replace("\\'", "'").replace("\\\\", "\\"))
                     if m.group(1).startswith("'") else m.group(1) for m in _LIBPQ_PASSWORD.finditer(secret)]
        try:
            parts = split_url(secret)
        except ValueError:
            parts = None
        if parts and parts.password:
            passwords += [parts.password, parts.password_as_written or ""]
        for password in passwords:
            for value in (password, quote(password, safe=""), *re.split(r"[@:]", password)):
                if len(value) >= MIN_LENGTH:
                    values[value] = None
        for line in secret.splitlines() if "\n" in secret else []:
            line = line.strip()
            if len(line) >= MIN_LINE and not line.startswith("-----"):
                values[line] = None
    return list(values)


def _escapes(s: str) -> set[str]:
    """The escapes a file format applies on top of whatever it is given: JSON, HTML (html and markupsafe)."""
    escaped = html.escape(s)
    return {json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1], escaped, html.escape(s, quote=False),
            escaped.replace("&#x27;", "&#39;").replace("&quot;", "&#34;")}


def _spellings(s: str) -> set[str]:
    """How code spells a string: as is, repr/ascii/bytes repr, unicode_escape, URL-quoted or unquoted,
    markdown-escaped or with its whitespace collapsed (the report header), libpq-quoted (psycopg conninfo)."""
    collapsed = " ".join(s.split())
    return {s, repr(s)[1:-1], ascii(s)[1:-1], repr(s.encode())[2:-1], s.encode("unicode_escape").decode("ascii"),
            quote(s, safe=""), quote(s), quote(s, safe=" +"), quote_plus(s), unquote(s), collapsed,
            _MARKDOWN.sub(r"\\\1", s), _MARKDOWN.sub(r"\\\1", collapsed), markdown_text(s),
            s.replace("\\", "\\\\").replace("'", "\\'")}


def _binary(s: str) -> set[str]:
    """base64 (standard and URL-safe) at each of the three byte alignments, so the secret is found anywhere
    inside a larger blob, and hex."""
    data = s.encode()
    found = {data.hex(), data.hex().upper()}
    for k in range(3):
        chunk = data[k:k + 3 * ((len(data) - k) // 3)]
        found |= {base64.b64encode(chunk).decode(), base64.urlsafe_b64encode(chunk).decode()}
    return {f for f in found if len(f) >= MIN_ENCODED}


def variants(value: str) -> set[str]:
    """Every spelling of one secret a report file may hold (each at least MIN_LENGTH long)."""
    spelled = _spellings(value)
    once = {e for s in spelled for e in _escapes(s)}
    found = spelled | once | {e for s in once for e in _escapes(s)}
    found |= {_PERCENT.sub(lambda m: m.group().lower(), f) for f in found if "%" in f}
    found |= {_UNICODE.sub(lambda m: "\\u" + m.group()[2:].upper(), f) for f in found if "\\u" in f}
    return {f for f in found | _binary(value) if len(f) >= MIN_LENGTH}


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """The one regex for these secrets; the same whether given the values in use or their secret_values."""
    return compiled(_sorted_values(tuple(secrets)))


@lru_cache(maxsize=16)
def _sorted_values(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """secret_values, sorted, cached by the secrets given: reading their parts again for every short text cost
    serve's audit log ~0.4 ms a field."""
    return tuple(sorted(secret_values(secrets)))


@lru_cache(maxsize=16)
def compiled(values: tuple[str, ...]) -> re.Pattern[str] | None:
    """The regex for these secret values and their variants (None: none long enough to mask), cached: a run
    compiles it once. Public so that benchmarks/redact.py can clear the cache to time the compiling."""
    words = {v for s in values if len(s) >= MIN_LENGTH for v in variants(s)}
    return re.compile(_trie(words)) if words else None


def _trie(words: Iterable[str]) -> str:
    """One regex for many literal strings: a radix tree, so each position costs a step or two, and the
    longest string wins (an optional tail is greedy)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = None

    def build(node: dict[str, Any]) -> str:
        branches = []
        for ch in sorted(k for k in node if k):
            chars, child = [ch], node[ch]
            while len(child) == 1 and "" not in child:       # a chain with no branch: one literal
                (nxt, child), = child.items()
                chars.append(nxt)
            branches.append(re.escape("".join(chars)) + build(child))
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")" if branches else ""
        return f"(?:{body})?" if body and "" in node else body

    return build(root)


def _sub(text: str, pattern: re.Pattern[str], replace=None) -> tuple[str, int]:
    """Replace each match with MASK. A match right after a lone backslash takes it along, so a JSON or repr
    escape is never left dangling in front of the mask (verdict.json stays valid JSON)."""
    pieces, pos, count = [], 0, 0
    for match in pattern.finditer(text):
        start = match.start()
        slashes = 0
        while start - slashes - 1 >= pos and text[start - slashes - 1] == "\\":
            slashes += 1
        if slashes % 2:
            start -= 1
        pieces += [text[pos:start], replace(match) if replace else MASK]
        pos = match.end()
        count += 1
    return ("".join(pieces) + text[pos:], count) if count else (text, 0)


def _sub_through_markup(text: str, pattern: re.Pattern[str]) -> tuple[str, int]:
    """Matches that only appear once ANSI codes and HTML tags are taken out; each masked in the original text
    together with the markup inside it."""
    stripped = MARKUP.sub("", text)
    if stripped is text or not pattern.search(stripped):     # the common case: nothing, at C speed
        return text, 0
    kept, origins, pos = [], [], 0          # origins[i]: where kept[i] starts in text
    for m in MARKUP.finditer(text):
        kept.append(text[pos:m.start()])
        origins.append(pos)
        pos = m.end()
    if not origins:
        return text, 0
    kept.append(text[pos:])
    origins.append(pos)
    starts, at = [], 0                       # starts[i]: where kept[i] starts in the stripped text
    for piece in kept:
        starts.append(at)
        at += len(piece)

    def original(i: int, end: bool = False) -> int:
        seg = bisect_right(starts, i - 1 if end else i) - 1
        return origins[seg] + i - starts[seg]

    spans = [(original(m.start()), original(m.end(), end=True)) for m in pattern.finditer("".join(kept))]
    if not spans:
        return text, 0
    pieces, pos = [], 0
    for start, end in spans:
        pieces += [text[pos:start], MASK]
        pos = end
    return "".join(pieces) + text[pos:], len(spans)


def _redact(text: str, pattern: re.Pattern[str] | None) -> tuple[str, int]:
    count = 0
    if pattern is not None:
        text, count = _sub(text, pattern)
        text, n = _sub_through_markup(text, pattern)
        count += n
    for shape in KEY_SHAPES:
        text, n = _sub(text, shape)
        count += n
    # a password already masked (the value was known) is not counted twice
    leaked = sum(1 for m in DSN_PASSWORD.finditer(text) if m.group(2).replace(MASK, "").strip("@:"))
    if leaked:
        text, _ = _sub(text, DSN_PASSWORD, lambda m: m.group(1) + MASK + "@")
    return text, count + leaked


def redact_text(text: str, secrets: Iterable[str]) -> tuple[str, int]:
    """(text with every secret masked, how many were masked). secrets: the values in use (or secret_values)."""
    return _redact(text, _pattern(secrets))


def redact_notebook_text(text: str, secrets: Iterable[str]) -> tuple[str, int]:
    """A notebook's JSON text with every secret masked, and how many were; text that is not JSON is redacted
    as text.

    Read structurally: nbformat stores a multi-line string as a list of lines, a traceback as a list of
    frames and a printed stream as several outputs, so a secret spanning them is never whole in the file
    text. Each is joined, redacted and split again (consecutive stream outputs with a secret across them are
    merged, as nbclient's coalesce_streams would). An unchanged notebook comes back byte for byte.
    """
    try:
        nb = json.loads(text)
    except ValueError:
        return redact_text(text, secrets)
    if not isinstance(nb, dict):
        return redact_text(text, secrets)
    counter = [0]
    cleaned = _walk(nb, _pattern(secrets), counter)
    if not counter[0]:
        return text, 0
    out = json.dumps(cleaned, sort_keys=True, indent=1, ensure_ascii=False)   # as nbformat.writes
    return out + ("\n" if text.endswith("\n") else ""), counter[0]


def redact_json(value: Any, secrets: Iterable[str]) -> tuple[Any, int]:
    """A JSON value (a record of dicts, lists, strings, numbers) with every secret masked in each of its strings,
    keys included, and how many were: a report's masking for the records written beside the reports
    (output/audit.jsonl), which the runner's scan of a report folder never reads. secrets: as redact_text's."""
    counter = [0]
    return _walk(value, _pattern(secrets), counter), counter[0]


def _walk(node: Any, pattern: re.Pattern[str] | None, counter: list[int], key: str | None = None) -> Any:
    if isinstance(node, str):
        if len(node) < MIN_LENGTH:
            return node
        text, n = _redact(node, pattern)
        counter[0] += n
        return text
    if isinstance(node, dict):
        return {_walk(k, pattern, counter): _walk(v, pattern, counter, k) for k, v in node.items()}
    if not isinstance(node, list):
        return node
    if node and all(isinstance(x, str) for x in node):
        traceback = key == "traceback"                    # frames, shown joined by newlines
        if traceback or all(x.endswith("\n") for x in node[:-1]):   # one string stored as its lines
            text, n = _redact(("\n" if traceback else "").join(node), pattern)
            if not n:
                return node
            counter[0] += n
            return text.split("\n") if traceback else text.splitlines(keepends=True)
    if key == "outputs":
        node = _merge_streams(node, pattern)
    return [_walk(x, pattern, counter) for x in node]


def _merge_streams(outputs: list[Any], pattern: re.Pattern[str] | None) -> list[Any]:
    """Consecutive stream outputs of one name, merged when a secret runs across them (the caller masks it)."""
    def stream(out: Any) -> str | None:
        return out.get("name") if isinstance(out, dict) and out.get("output_type") == "stream" else None

    merged: list[Any] = []
    for name, group in groupby(outputs, key=stream):
        run = list(group)
        if name is not None and len(run) > 1:
            whole = "".join(_text(o) for o in run)
            if _redact(whole, pattern)[0] != "".join(_redact(_text(o), pattern)[0] for o in run):
                run = [run[0] | {"text": whole}]
        merged += run
    return merged


def _text(output: dict[str, Any]) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else str(text)


def redact_folder(folder: Path, secrets: Iterable[str]) -> dict[str, int]:
    """Redact every file under folder in place (notebooks structurally, any other file as text, undecodable
    bytes kept as they are); returns {file path relative to folder: redactions} for the files changed.
    Symbolic links are not followed: a link could point anywhere outside the report."""
    secrets = tuple(secrets)
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "surrogateescape")
        redact = redact_notebook_text if path.suffix == ".ipynb" else redact_text
        cleaned, count = redact(text, secrets)
        if count:
            _replace(path, cleaned.encode("utf-8", "surrogateescape"))
            found[path.relative_to(folder).as_posix()] = count
    return found


def _replace(path: Path, data: bytes) -> None:
    """Replace path's content in one step, keeping its mode."""
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
