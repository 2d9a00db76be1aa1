"""Hostile input to `aias-runbooks run`, generated from the runbooks themselves (a new runbook is covered as it lands).

For every runbook and every parameter of it: out-of-range values, overlong strings, hostile text; for each kind of
parameter (type, choices, timestamp, user), once: wrong types, control characters, invalid UTF-8 (argv as bytes);
and every option of `run`. Each refusal must be: exit 3, exactly one line on
stderr naming the problem (never echoing a parameters file's content, never a value longer than ~60 characters),
nothing on stdout, no report folder, nothing under --output, and no file created in the working folder.

No sandbox is consulted: AIAS_SANDBOX_DIR is an empty folder, so input that passes every check is refused only with
"the sandbox is not running". The hostile-but-valid cases (SQL, HTML, markdown, shell, `../` in a text parameter)
expect exactly that: accepted as input, never run. All cases run concurrently once per module; each is then its
own test.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from aias_runbooks.catalogue import slugs
from aias_runbooks.runner.parameterize import ENV_PARAM, MAX_TEXT, Parameter, load_runbook

from ..helpers import CLI, ROOT

NOT_RUNNING = "the sandbox is not running"
SECRET = "sk_live_" + secrets.token_hex(12)     # the first line of a file a -f symlink points at
TYPES = {"int": "must be an integer", "float": "must be a number", "bool": "must be true or false"}
HOSTILE_TEXT = ["'; DROP TABLE auth.users; --", "<script>alert(1)</script>", "[click](javascript:alert(1))",
                "$(rm -rf /) `id` | tee /etc/passwd &", "../../../etc/passwd", "Zoë ☃ 日本 עברית", "%s%n{0}"]
# Unicode format characters (category Cf) are invisible and change what a terminal or report shows: a bidi override
# makes 'exe.txt' read 'txt.exe', a zero-width space makes two different names look the same
FORMATS = [("bidi-override", "a\u202eb"), ("bidi-isolate", "a\u2066b"), ("zero-width-space", "a\u200bb"),
           ("zero-width-joiner", "a\u200db"), ("byte-order-mark", "\ufeffa"), ("soft-hyphen", "a\u00adb")]
HOSTILE_EMAILS = ["o'brien\"<script>alert(1)</script>@example.test", "x'--@evil.test", "[a](javascript:x)@b.c"]


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str | bytes, ...]    # after `run`; "{files}" is the folder of prepared files
    expect: str                      # in the one stderr line


CASES: list[Case] = []
KINDS: set[tuple] = set()   # kinds of parameter already given the encoding, control and type cases


def case(id: str, *args: str | bytes, expect: str) -> None:
    CASES.append(Case(id, args, expect))


def _out_of_range(param: Parameter) -> list[str]:
    if param.type == "int":
        low, high = param.bounds or (-2 ** 63, 2 ** 63 - 1)
        return [str(int(low) - 1), str(int(high) + 1)]
    if param.type == "float" and param.bounds:
        low, high = param.bounds
        return [f"{low - 1:g}", f"{high + 1:g}"]
    return []


def _in_range(param: Parameter) -> list[str]:
    if param.type in ("int", "float") and param.bounds:
        return [f"{b:g}" if param.type == "float" else str(int(b)) for b in param.bounds]
    if param.choices:
        return list(param.choices)
    if param.timestamp:
        return ["", "2026-11-01T07:00:00Z", "2026-03-08T02:30:00-05:00"]
    if param.user:
        return ["ada@example.test", "0F8FAD5B-D9CB-469F-A165-70867728950E",
                "x" * (param.max_length - 13) + "@example.test"]
    return {"bool": ["false", "off"], "str": ["", "x" * param.max_length]}.get(param.type, [])


for slug in slugs():
    info = load_runbook(slug)
    valid = ", ".join(info.parameters)
    case(f"{slug}:unknown-parameter", slug, "-p", "nosuch=1", expect=f"has no parameter 'nosuch'; valid: {valid}")
    case(f"{slug}:environment-as-parameter", slug, "-p", f"{ENV_PARAM}=production", expect="with --env")
    for param in info.parameters.values():
        if param.name == ENV_PARAM:
            continue
        name, wrong = param.name, TYPES.get(param.type)
        pid = f"{slug}:{name}"
        case(f"{pid}:overlong", slug, "-p", f"{name}={'9' * 10000}",
             expect=wrong or f"must be at most {param.max_length} characters, got 10000")
        # encoding, control characters and wrong types are refused by one check per kind of parameter: each kind
        # gets them once, at its first parameter (a new kind is covered as it lands)
        kind = (param.type, bool(param.choices), param.timestamp, param.user)
        if kind not in KINDS:
            KINDS.add(kind)
            case(f"{pid}:invalid-utf8", slug, "-p", name.encode() + b"=\xff\xfeok", expect="is not valid UTF-8")
            case(f"{pid}:invalid-utf8-key", slug, "-p", b"\xc3(" + name.encode() + b"=1",
                 expect="is not valid UTF-8")
            controls = [("newline", "1\nb"), ("escape", "1\x1b[2J"), ("tab", "\t1"), ("del", "1\x7f"),
                        ("c1", "1\x85"), ("line-separator", "1\u2028")]
            for label, text in controls if not wrong else controls[:2]:
                case(f"{pid}:control-{label}", slug, "-p", f"{name}={text}",
                     expect=wrong or "must not contain control characters")
            for label, text in FORMATS if not wrong else FORMATS[:1]:
                case(f"{pid}:format-{label}", slug, "-p", f"{name}={text}",
                     expect=wrong or "must not contain Unicode format characters (U+")
            for text in (["abc", "1.5" if param.type != "float" else "1,5", "0x10", "\u0663", "", "nan",
                          "true" if param.type != "bool" else "maybe"] if wrong else []):
                case(f"{pid}:wrong-type-{text!r}", slug, "-p", f"{name}={text}", expect=wrong)
        if not wrong:
            case(f"{pid}:one-over-limit", slug, "-p", f"{name}={'x' * (param.max_length + 1)}",
                 expect=f"must be at most {param.max_length} characters")
            # a parameter with choices or a timestamp format refuses such text; any other takes it as data
            refused = ("must be one of" if param.choices else
                       "must be an ISO 8601 timestamp" if param.timestamp else
                       "must be an email or a user id (uuid)" if param.user else None)
            for i, text in enumerate(HOSTILE_TEXT):
                case(f"{pid}:hostile-but-valid-{i}", slug, "-p", f"{name}={text}", expect=refused or NOT_RUNNING)
            for i, text in enumerate(HOSTILE_EMAILS if param.user else []):
                case(f"{pid}:hostile-email-{i}", slug, "-p", f"{name}={text}", expect=NOT_RUNNING)
        for text in _out_of_range(param):
            case(f"{pid}:out-of-range-{text}", slug, "-p", f"{name}={text}", expect="must be between")
        for text in _in_range(param):
            case(f"{pid}:valid-{text[:10]}", slug, "-p", f"{name}={text}", expect=NOT_RUNNING)

for label, slug in [("parent", "../tests/notebooks/crashing-check"), ("absolute", "/etc/passwd"),
                    ("file-name", "health-check.ipynb"), ("capitals", "Health-Check"), ("empty", ""),
                    ("newline", "health-check\n"), ("overlong", "h" * 10000), ("dash", "-"),
                    ("notebook-path", str(ROOT / "notebooks" / "health-check"))]:
    case(f"runbook:{label}", slug, expect="unknown runbook '")
case("runbook:invalid-utf8", b"health-check\xff", expect="is not valid UTF-8")
case("runbook:missing", expect="the following arguments are required: runbook")
case("option:unknown", "health-check", "--bogus", expect="unrecognized arguments: --bogus")

for label, env in [("parent", "../etc"), ("shell", "prod;rm -rf /"), ("empty", ""), ("overlong", "e" * 10000),
                   ("example", "production.example"), ("newline", "sandbox\n"), ("absolute", "/etc/passwd")]:
    case(f"--env:{label}", "health-check", "--env", env, expect="unknown environment '")
case("--env:invalid-utf8", "health-check", "--env", b"sand\xffbox", expect="is not valid UTF-8")

for label, incident in [("parent", "../etc"), ("html", "<script>alert(1)</script>"), ("space", "INC 1"),
                        ("overlong", "I" * 65), ("newline", "INC-1\nINC-2"), ("empty", ""), ("shell", "INC-1;id")]:
    case(f"--incident:{label}", "health-check", "--incident", incident, expect="incident id '")
case("--incident:invalid-utf8", "health-check", "--incident", b"INC-\xff", expect="is not valid UTF-8")

for label, operator in [("escape", "bob\x1b[31m"), ("newline", "bob\nroot"), ("nul-like", "bob\x01")]:
    case(f"--operator:{label}", "health-check", "--operator", operator, expect="--operator must not contain control")
for label, operator in FORMATS:
    case(f"--operator:format-{label}", "health-check", "--operator", operator,
         expect="--operator must not contain Unicode format characters (U+")
case("--operator:10kB", "health-check", "--operator", "o" * 10240, expect="--operator must be at most 200 characters")
case("--operator:201", "health-check", "--operator", "o" * (MAX_TEXT + 1), expect="--operator must be at most 200")
case("--operator:invalid-utf8", "health-check", "--operator", b"b\xf6b", expect="is not valid UTF-8")
case("--operator:hostile-but-valid", "health-check", "--operator", "Robert'); DROP TABLE students;--",
     expect=NOT_RUNNING)
case("--operator:differs-from-parameter", "database-connection-errors", "-p", "operator=alice", "--operator", "bob",
     expect="--operator 'bob' and the operator parameter 'alice' differ")
case("--operator:apply-without", "database-connection-errors", "-p", "apply=true",
     expect="apply=true needs an operator")

for label, output in [("below-a-file", "{files}/regular-file/out"), ("deep-below-a-file", "{files}/regular-file/a/b"),
                      ("a-file", "{files}/regular-file")]:
    case(f"--output:{label}", "health-check", "--output", output, expect="output folder '")
case("--output:empty", "health-check", "--output", "", expect="argument --output: must name a folder")

for value in ["0", "-5", "abc", "86401", "", "1.5", "9" * 5000, "\u0665"]:
    case(f"--cell-timeout:{value[:8]!r}", "health-check", "--cell-timeout", value,
         expect="argument --cell-timeout: must be whole seconds from 1 to 86400")

FILES = {   # name: (content, expected message); every one is refused without quoting the content
    "malformed.yaml": (b"samples: [1, 2\ninterval_ms: 3\n", "is not valid YAML (line "),
    "bad-indent.yaml": (b"samples: 5\n  interval_ms: 3\n", "is not valid YAML (line 2"),
    "tabs.yaml": (b"samples:\n\t- 1\n", "is not valid YAML (line "),
    "binary.yaml": (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00samples", "is not UTF-8 text"),
    "nul.yaml": (b"samples: 5\x00\n", "holds a character YAML does not allow"),
    "python.yaml": (b"samples: !!python/object/apply:os.system ['touch pwned']\n", "uses a YAML tag that is not"),
    "python-name.yaml": (b"samples: !!python/name:os.system\n", "uses a YAML tag that is not allowed"),
    "alias-bomb.yaml": (b'samples:\n- &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'   # 9**7 lols
                        + b"".join(b"- &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n" % ((c,) + (c - 1,) * 9)
                                   for c in range(ord("b"), ord("h"))),
                        "uses YAML anchors or aliases, which are not allowed"),
    "anchor.yaml": (b"samples: &n 5\n", "uses YAML anchors or aliases"),
    "merge.yaml": (b"<<: {samples: 5}\n", "merge keys (<<) are not allowed"),
    "not-a-mapping.yaml": (b"- samples\n- 5\n", "must hold a mapping of name: value"),
    "number-key.yaml": (b"1: 5\n", "line 1: each key must be a parameter name"),
    "duplicate.yaml": (b"samples: 5\nsamples: 6\n", "line 2: repeats the parameter set on line 1"),
    "list-value.yaml": (b"samples: [1, 2]\n", "parameter 'samples' (parameters file '"),
    "mapping-value.yaml": (b"samples: {a: 1}\n", "must be an integer, got a mapping"),
    "null-value.yaml": (b"samples:\n", "must be an integer, got null"),
    "deep.yaml": (b"samples: " + b"[" * 100000, "parameters file '"),
    "unknown.yaml": (b"colour: red\n", "line 1: runbook 'health-check' has no such parameter; valid: "),
    "secret-line.txt": (f"{SECRET}\nsecond line\n".encode(), "must hold a mapping of name: value"),
    "secret-key.txt": (f"{SECRET}: 1\n".encode(), "line 1: runbook 'health-check' has no such parameter"),
    "secret-value.txt": (f"samples: {SECRET}\n".encode(), "line 1) must be an integer, got text"),
    "shadow.txt": (f"root:$6${SECRET}$x:19000:0:99999:7:::\n".encode(), "line 1: each key must be a parameter"),
    "2MB.yaml": (b"samples: 5\n" + b"#" * (2 * 1024 * 1024), "is larger than 1 MiB"),
}
for name, (_, expect) in FILES.items():
    case(f"-f:{name}", "health-check", "-f", f"{{files}}/{name}", expect=expect)
for name in ["secret-line.txt", "secret-key.txt", "secret-value.txt", "shadow.txt"]:
    case(f"-f:symlink-to-{name}", "health-check", "-f", f"{{files}}/link-to-{name}", expect=FILES[name][1])
case("-f:list-value", "health-check", "-f", "{files}/list-value.yaml", expect="must be an integer, got a list")
case("-f:missing", "health-check", "-f", "{files}/nope.yaml", expect="does not exist")
case("-f:directory", "health-check", "-f", "{files}", expect="is a folder, not a file")
case("-f:fifo", "health-check", "-f", "{files}/fifo", expect="is not a regular file")
case("-f:device", "health-check", "-f", "/dev/zero", expect="is not a regular file")
case("-f:invalid-utf8-name", "health-check", "-f", b"params\xff.yaml", expect="is not valid UTF-8")
for label, pair in [("no-equals", "samples"), ("no-key", "=5"), ("empty", ""), ("spaces", "  =5")]:
    case(f"-p:{label}", "health-check", "-p", pair, expect="expected -p KEY=VALUE")

assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path, Path]]:
    """Run every case once, concurrently; each in its own empty working folder."""
    base = tmp_path_factory.mktemp("hostile")
    files = base / "files"
    files.mkdir()
    for name, (content, _) in FILES.items():
        (files / name).write_bytes(content)
        if name.endswith(".txt"):
            (files / f"link-to-{name}").symlink_to(files / name)
    (files / "regular-file").write_text("not a folder\n")
    os.mkfifo(files / "fifo")
    (base / "no-sandbox").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIAS_")}
    env["AIAS_SANDBOX_DIR"] = str(base / "no-sandbox")

    def run(index: int, case: Case) -> tuple[subprocess.CompletedProcess, Path, Path]:
        cwd = base / f"case-{index}"
        cwd.mkdir()
        args = [a.replace("{files}", str(files)) if isinstance(a, str) else a for a in case.args]
        if "--output" not in args:
            args += ["--output", str(cwd / "output")]
        proc = subprocess.run([*CLI, "run", *args], capture_output=True, timeout=60, cwd=cwd,
                              env=env | {"AIAS_OUTPUT_DIR": str(cwd / "default-output")})
        return proc, cwd, files

    with ThreadPoolExecutor(max_workers=max(2, 2 * (os.cpu_count() or 1))) as pool:
        done = pool.map(run, range(len(CASES)), CASES)
        return {c.id: result for c, result in zip(CASES, done, strict=True)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_in_one_line_and_nothing_written(results, case):
    proc, cwd, files = results[case.id]
    stderr = proc.stderr.decode("utf-8", "backslashreplace")
    assert proc.returncode == 3, stderr
    assert proc.stdout == b""
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), f"one line, got:\n{stderr}"
    assert all(c == "\n" or unicodedata.category(c) not in ("Cc", "Cf") for c in stderr), \
        f"control and format characters shown escaped, got {stderr!r}"
    assert stderr.startswith("aias-runbooks: error: ") and case.expect in stderr, stderr
    said = stderr.split("; valid: ")[0]   # the list of valid names grows with the catalogue; the value must not
    assert len(said) < 300, "a long value is shortened, never echoed whole"
    assert "sk_live" not in stderr and "second line" not in stderr, "a file's content is never quoted"
    assert list(cwd.iterdir()) == [], "no report folder, nothing under --output, no file in the working folder"
    assert (files / "regular-file").read_text() == "not a folder\n"
