"""report.html: the executed notebook as one standalone page that any browser opens offline.

The header cell (verdict and provenance) comes first, then each section's text, tables and charts (inline PNG),
with each cell's code folded under a "code" toggle for those who want it. A few KB of CSS instead of
JupyterLab's, and no nbconvert: rendering costs milliseconds, not the half second of a full HTML export.
Markdown is rendered by mistune with raw HTML escaped: text in a notebook is shown, never run.
"""

from __future__ import annotations

import html
import re
from typing import Any

import mistune

CSS = """
body{font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
max-width:1150px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.6em;border-bottom:1px solid #d0d7de;padding-bottom:.3em}h2{font-size:1.3em;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0;font-size:13px;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;vertical-align:top}th{background:#f6f8fa}
tbody tr:nth-child(even){background:#fafbfc}
code,pre{font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f6f8fa;padding:8px 10px;overflow-x:auto;white-space:pre-wrap;margin:4px 0}
pre.stderr{background:#fff8c5}pre.error{background:#ffebe9}
details.code>summary{cursor:pointer;color:#656d76;font-size:12px}details.code>pre{background:#f0f3f6}
img{max-width:100%;height:auto}.header{border:1px solid #d0d7de;border-radius:6px;padding:4px 16px;margin-bottom:12px}
.header td,.header th{text-align:left}
"""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_markdown = mistune.create_markdown(plugins=["table", "strikethrough"])   # escape=True: raw HTML shown as text


def render(nb: Any, title: str) -> str:
    """The whole page for a notebook (nbformat v4 node or plain dict)."""
    body = "\n".join(_cell(cell) for cell in nb["cells"])
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def _source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _cell(cell: Any) -> str:
    if cell["cell_type"] == "markdown":
        header = "aias-report-header" in cell.get("metadata", {}).get("tags", [])
        return f"<section class=\"{'header' if header else 'text'}\">{_markdown(_source(cell))}</section>"
    if cell["cell_type"] != "code":
        return ""
    code = _source(cell)
    folded = f"<details class=\"code\"><summary>code</summary><pre>{html.escape(code)}</pre></details>" if code else ""
    return folded + "".join(_output(o) for o in cell.get("outputs", []))


def _output(output: Any) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        text = _text(output.get("text", ""))
        return f"<pre class=\"{html.escape(output.get('name', 'stdout'))}\">{html.escape(_ANSI.sub('', text))}</pre>"
    if kind == "error":
        trace = "\n".join(output.get("traceback", [])) or f"{output.get('ename')}: {output.get('evalue')}"
        return f"<pre class=\"error\">{html.escape(_ANSI.sub('', trace))}</pre>"
    data = output.get("data", {})
    if "image/png" in data:
        return f"<div><img alt=\"chart\" src=\"data:image/png;base64,{_text(data['image/png']).strip()}\"></div>"
    if "image/svg+xml" in data:
        return f"<div>{_text(data['image/svg+xml'])}</div>"
    if "text/html" in data:
        return f"<div>{_text(data['text/html'])}</div>"
    if "text/markdown" in data:
        return _markdown(_text(data["text/markdown"]))
    if "text/plain" in data:
        return f"<pre>{html.escape(_ANSI.sub('', _text(data['text/plain'])))}</pre>"
    return ""


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)
