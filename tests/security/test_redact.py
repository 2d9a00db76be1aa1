"""The secret scan on its own: every spelling of a secret, the password with an '@', notebooks read structurally
(lines, tracebacks, stream chunks, ANSI colours), and innocent reports left byte for byte."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import secrets
from urllib.parse import quote, unquote

import nbformat
import pytest
from sqlalchemy.exc import ArgumentError

from aias_runbooks.dsn import split_url
from aias_runbooks.runner import page
from aias_runbooks.runner.redact import MASK, redact_folder, redact_notebook_text, redact_text, secret_values
from aias_runbooks.settings import Secret
from aias_runbooks.sources import database

from ..helpers import encodings, views

TOKEN = secrets.token_hex(6)
SECRET = f"c@n&ry<'\"%-é:{TOKEN}ß@x"            # hostile: '@', quotes, '<', '&', '%', non-ASCII
PASSWORD = f"p@ss-word-{TOKEN}"
DSN = f"postgresql://monitor:{PASSWORD}@127.0.0.1:5432/postgres"
PEM = "\n".join(["-----BEGIN CANARY PRIVATE KEY-----", *(base64.b64encode(secrets.token_bytes(45)).decode()
                                                          for _ in range(3)), "-----END CANARY PRIVATE KEY-----"])
SPELLINGS = {
    "as is": lambda s: s,
    "html.escape": html.escape,
    "html.escape quote=False": lambda s: html.escape(s, quote=False),
    "repr": lambda s: repr(s)[1:-1],
    "unicode_escape": lambda s: s.encode("unicode_escape").decode("ascii"),
    "json": lambda s: json.dumps(s)[1:-1],
    "json ensure_ascii=False": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "quote safe=''": lambda s: quote(s, safe=""),
    "quote": quote,
    "unquote": unquote,
    "markdown-escaped (report header)": lambda s: re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(s.split())),
}
JSON_ON_TOP = {"json": SPELLINGS["json"], "json ensure_ascii=False": SPELLINGS["json ensure_ascii=False"]}


def _clean(text: str, *values: str) -> bool:
    return not any(e in text for v in values for e in encodings(v))


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_each_spelling_of_a_secret_is_redacted(spelling):
    spelled = SPELLINGS[spelling](SECRET)
    text, count = redact_text(f"before {spelled} after", [SECRET])
    assert text == f"before {MASK} after" and count == 1


@pytest.mark.parametrize("outer", JSON_ON_TOP)
@pytest.mark.parametrize("inner", SPELLINGS)
def test_json_escaping_on_top_of_each_spelling_is_redacted(inner, outer):
    """A repr (or any spelling) printed by a notebook ends up JSON-escaped inside the .ipynb."""
    spelled = JSON_ON_TOP[outer](SPELLINGS[inner](SECRET))
    text, count = redact_text(f'{{"text": "{spelled}"}}', [SECRET])
    assert count == 1 and _clean(text, SECRET) and json.loads(text) == {"text": MASK}


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode], ids=["standard", "urlsafe"])
@pytest.mark.parametrize("offset", range(6))
def test_base64_of_a_secret_inside_a_larger_blob_is_found_at_every_alignment(encode, offset):
    blob = secrets.token_bytes(300 + offset) + SECRET.encode() + secrets.token_bytes(300)
    text, count = redact_text(encode(blob).decode(), [SECRET])
    assert count == 1 and MASK in text and _clean(text, SECRET)


def test_a_password_with_an_unencoded_at_is_read_whole_by_the_database_source():
    assert split_url(DSN).password == PASSWORD
    engine = database.connect(Secret("AIAS_DATABASE_URL", DSN), "x")      # lazy: nothing connects
    assert engine.url.password == PASSWORD and engine.url.username == "monitor"
    assert (engine.url.host, engine.url.port, engine.url.database) == ("127.0.0.1", 5432, "postgres")
    encoded = database.connect(
        Secret("X", f"postgresql://monitor:{quote(SECRET, safe='')}@db:6543/app?sslmode=require"), "x")
    assert encoded.url.password == SECRET and encoded.url.query == {"sslmode": "require"}
    with pytest.raises(ArgumentError) as refused:
        database.connect(Secret("AIAS_DATABASE_URL", f"{PASSWORD} is not a URL"), "x")
    assert PASSWORD not in str(refused.value), "a refused URL is never quoted"


def test_a_password_with_an_unencoded_at_is_redacted_whole_and_in_pieces():
    values = secret_values([DSN])
    assert PASSWORD in values and quote(PASSWORD, safe="") in values and f"ss-word-{TOKEN}" in values
    quoted = [DSN, PASSWORD, quote(PASSWORD, safe=""),
              f"could not translate host name \"ss-word-{TOKEN}@127.0.0.1\"",   # what a first-'@' parser sends
              f"postgresql+psycopg://monitor:{quote(PASSWORD, safe='')}@127.0.0.1:5432/postgres"]
    for line in quoted:
        text, count = redact_text(line, [DSN])
        assert count >= 1 and PASSWORD not in text and f"ss-word-{TOKEN}" not in text, line


def test_key_shapes_and_unknown_urls_with_an_at_in_the_password_are_redacted():
    text, count = redact_text("dsn postgresql://u:p@ss-word@db.example.com:5432/x key sk_live_abcdefghijklmnop", [])
    assert text == f"dsn postgresql://u:{MASK}@db.example.com:5432/x key {MASK}" and count == 2
    text, count = redact_text(f"postgresql://u:{MASK}@h/x", [])
    assert count == 0, "a password already masked is not counted again"


def test_short_secrets_and_innocent_text_are_left_alone():
    assert redact_text("admin admin admin", ["admin"]) == ("admin admin admin", 0)
    text = f"{SECRET[:5]} and {TOKEN[:5]} are not secrets"
    assert redact_text(text, [SECRET]) == (text, 0)


def test_json_text_stays_valid_json():
    tricky = "nabcdef-" + TOKEN          # in JSON text "\nabcdef..." its raw form follows a backslash
    text = json.dumps({"error": f"line\n{tricky} and \n{SECRET}", "also": "\\" + SECRET})
    cleaned, count = redact_text(text, [tricky, SECRET])
    assert count == 3 and json.loads(cleaned)["error"].count(MASK) == 2 and _clean(cleaned, SECRET, tricky)


def _notebook() -> nbformat.NotebookNode:
    """What a careless notebook leaves: a PEM printed and shown, a secret in three stream chunks, and a
    traceback whose colours interrupt a secret."""
    nb = nbformat.v4.new_notebook()
    shown = nbformat.v4.new_code_cell("print(pem)\npem", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=PEM + "\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": repr(PEM)}, execution_count=1)])
    third = len(SECRET) // 3
    chunks = nbformat.v4.new_code_cell("for chunk in chunks: print(chunk, end='', flush=True)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=part)
        for part in (SECRET[:third], SECRET[third:2 * third], SECRET[2 * third:] + "\n")])
    failed = nbformat.v4.new_code_cell("connect()", outputs=[nbformat.v4.new_output(
        "error", ename="RuntimeError", evalue=f"bad key {SECRET}",
        traceback=["\x1b[31m---------------------------------------------------------------------------\x1b[39m",
                   f"\x1b[31mRuntimeError\x1b[39m: bad key {SECRET[:5]}\x1b[1;31m{SECRET[5:]}\x1b[0m\n"
                   f"and the PEM:\n{PEM[:50]}\x1b[32m{PEM[50:]}\x1b[39m"])])
    nb.cells += [shown, chunks, failed]
    return nb


def test_a_notebook_is_redacted_across_lines_chunks_and_colour_codes(tmp_path):
    text = nbformat.writes(_notebook())
    assert PEM not in text and SECRET not in text, "nbformat splits them: a text scan cannot see them"
    cleaned, count = redact_notebook_text(text, [PEM, SECRET])
    assert count >= 5
    path = tmp_path / "notebook.ipynb"
    path.write_text(cleaned, encoding="utf-8")
    nb = nbformat.reads(cleaned, as_version=4)
    nbformat.validate(nb)
    assert all(_clean(view, PEM, SECRET) for view in views(path))
    assert len([o for o in nb.cells[1].outputs if o.output_type == "stream"]) == 1, "the chunks were merged"
    traceback = nb.cells[2].outputs[0].traceback
    assert traceback[0].startswith("\x1b[31m---"), "colours outside a secret stay"


def test_report_html_rendered_from_a_leaky_notebook_is_redacted(tmp_path):
    """The page escapes HTML, drops ANSI colours and gives each stream chunk its own <pre>."""
    body = page.render(_notebook(), "leaky")
    path = tmp_path / "report.html"
    path.write_text(body, encoding="utf-8")
    assert not all(_clean(view, SECRET) for view in views(path))
    assert redact_folder(tmp_path, [PEM, SECRET])["report.html"] >= 3
    assert all(_clean(view, PEM, SECRET) for view in views(path))


def test_redact_folder_counts_per_file_keeps_modes_and_valid_json(tmp_path):
    (tmp_path / "notebook.ipynb").write_text(nbformat.writes(_notebook()), encoding="utf-8")
    (tmp_path / "verdict.json").write_text(json.dumps({"error": f"{DSN}\n{SECRET}"}, indent=2), encoding="utf-8")
    (tmp_path / "verdict.json").chmod(0o640)
    (tmp_path / "clean.txt").write_text("nothing here", encoding="utf-8")
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe" + SECRET.encode() + b"\x80")
    outside = tmp_path.parent / f"outside-{TOKEN}.txt"
    outside.write_text(SECRET, encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(outside)
    found = redact_folder(tmp_path, [DSN, PEM, SECRET])
    assert set(found) == {"notebook.ipynb", "verdict.json", "blob.bin"} and found["verdict.json"] == 2
    assert json.loads((tmp_path / "verdict.json").read_text())["error"] == f"{MASK}\n{MASK}"
    assert (tmp_path / "verdict.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "blob.bin").read_bytes() == b"\xff\xfe" + MASK.encode() + b"\x80"
    assert outside.read_text() == SECRET, "a symbolic link is not followed out of the report"


def test_an_innocent_half_megabyte_notebook_is_left_byte_for_byte(tmp_path):
    nb = nbformat.v4.new_notebook()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(375_000)).decode()
    nb.cells.append(nbformat.v4.new_code_cell("chart()", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": png, "text/plain": "<Figure size 640x480 with 1 Axes>"})]))
    nb.cells.append(nbformat.v4.new_markdown_cell("# Report\n\nLatency **P95** < 500 ms; `\x1b[31m` is just text."))
    text = nbformat.writes(nb)
    assert len(text) > 500_000
    values = [DSN, PEM, SECRET, "sk_test_" + TOKEN * 2]
    assert redact_notebook_text(text, values) == (text, 0)
    (tmp_path / "notebook.ipynb").write_text(text, encoding="utf-8")
    body = page.render(nb, "innocent")
    (tmp_path / "report.html").write_text(body, encoding="utf-8")
    assert redact_folder(tmp_path, values) == {}
    assert (tmp_path / "notebook.ipynb").read_text(encoding="utf-8") == text
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == body


def test_text_that_is_not_a_notebook_falls_back_to_the_text_scan():
    assert redact_notebook_text(f"not json {SECRET}", [SECRET]) == (f"not json {MASK}", 1)
    assert redact_notebook_text(json.dumps([SECRET]), [SECRET]) == (json.dumps([MASK]), 1)


def test_the_redactor_stays_import_light():
    import subprocess
    import sys
    code = ("import sys, aias_runbooks.runner.redact; "
            "print(sorted(m for m in ('pandas', 'sqlalchemy', 'nbformat', 'papermill') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
