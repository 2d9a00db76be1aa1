"""Text from outside (the platform, its clients, a file) made safe to show on a terminal or in a chat message.

A terminal acts on control characters instead of showing them: ESC and CSI (0x9b) sequences clear the screen, move
the cursor, set the window's title or make a hyperlink (OSC 8) whose text hides its address; BEL rings; CR writes
over the line. Unicode format characters (bidi overrides and isolates, zero-width spaces and joiners, the BOM) are
invisible and reorder or hide what is shown: U+202E makes 'report\\u202etxt.exe' read as 'reportexe.txt'.
Commit messages, domain names, error messages, rate-limit keys and client-set names reach our output, so every line
the CLI prints and every notification passes through printable(): what Python does not call printable (control,
format and surrogate characters, line and paragraph separators, spaces other than ' ') is shown as its escape
(`\\x1b`, `\\u202e`). The operator reads what the platform holds; the terminal does nothing with it.
"""

from __future__ import annotations


def printable(text: str, keep: str = "") -> str:
    """`text` with every non-printable character but those in `keep` (e.g. "\\n" for a text meant to span lines)
    written as its Python escape, so that it is shown and never acted on."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def show(text: str, limit: int = 60) -> str:
    """User-given text quoted for a one-line message: non-printable characters escaped (printable()), cut to about
    `limit` characters with "..." so that a huge or hostile value cannot flood the line that names it."""
    text = str(text)
    escaped = printable(text[:limit + 1])
    if len(escaped) > limit or len(text) > limit:
        escaped = escaped[:limit] + "..."
    return f"'{escaped}'"
