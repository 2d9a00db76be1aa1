"""Bad input: one clear line on stderr, exit 3, and no kernel started (no report folder written).

Bad input is refused before the target is consulted, so these tests need no sandbox: AIAS_SANDBOX_DIR points at an
empty folder, and input that passed every check would be refused with "the sandbox is not running" instead.
tests/security/test_hostile_input.py covers every runbook parameter and every option of `run` the same way.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from aias_runbooks import catalogue, cli
from aias_runbooks.catalogue import slugs
from aias_runbooks.errors import OutputError, SandboxError, UsageError
from aias_runbooks.runner.parameterize import load_runbook
from aias_runbooks.runner.request import prepare

from ..helpers import CLI, refuse

NOT_RUNNING = ("aias-runbooks: error: the sandbox is not running: start it with `aias-runbooks sandbox up` "
               "(or `make demo`)")

BAD = [
    (["nope"], "unknown runbook 'nope'; valid: " + ", ".join(slugs())),
    (["../tests/notebooks/crashing-check"], "unknown runbook '../tests/notebooks/crashing-check'; valid: "),
    (["health-check", "-p", "samples=abc"], "parameter 'samples' must be an integer, got 'abc'"),
    (["health-check", "-p", "samples=0"], "parameter 'samples' must be between 1 and 500"),
    (["health-check", "-p", "colour=red"], "no parameter 'colour'; valid: environment, samples"),
    (["health-check", "-p", "samples"], "expected -p KEY=VALUE"),
    (["health-check", "--env", "prod"], "unknown environment 'prod'; valid: sandbox"),
    (["health-check", "--incident", "../etc"], "incident id '../etc' is not valid"),
    (["health-check", "--cell-timeout", "0"], "argument --cell-timeout: must be whole seconds from 1 to 86400"),
    (["health-check", "--output", "/etc/hostname/out"], "output folder '/etc/hostname/out' cannot be created"),
    (["database-connection-errors", "-p", "operator=alice", "--operator", "bob"],
     "--operator 'bob' and the operator parameter 'alice' differ"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_3_without_running(tmp_path, args, message):
    result = refuse(tmp_path, *args)
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aias-runbooks: error: ") and message in lines[0], result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-sandbox"], "nothing may be written for bad input"


def test_sandbox_not_running_is_a_clear_error(tmp_path):
    """No sandbox.env in the sandbox folder: say how to start it instead of probing an empty URL."""
    result = refuse(tmp_path, "health-check")
    assert result.returncode == 3
    assert result.stderr.strip() == NOT_RUNNING
    assert not (tmp_path / "output").exists()


@pytest.fixture
def reachable_sandbox(monkeypatch, tmp_path):
    """A sandbox profile whose API URL is set (to a closed port): prepare() passes, a probe finds it down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AIAS_SANDBOX_DIR", str(tmp_path / "no-sandbox"))
    monkeypatch.setenv("AIAS_SANDBOX_API_URL", f"http://127.0.0.1:{port}")
    return tmp_path


def test_operator_is_one_value(reachable_sandbox):
    """-p operator=alice alone is the operator of the report and of the audit; --operator alone too."""
    out = reachable_sandbox / "output"
    request = prepare("database-connection-errors", params={"operator": "alice"}, output=out)
    assert request.operator == "alice" and request.parameters["operator"] == "alice"
    request = prepare("database-connection-errors", operator="bob", output=out)
    assert request.operator == "bob" and request.parameters["operator"] == "bob"
    request = prepare("database-connection-errors", params={"operator": "bob"}, operator="bob", output=out)
    assert request.operator == "bob" and request.parameters["operator"] == "bob"
    assert prepare("health-check", params={"operator": "carol"}, output=out).operator == "carol"
    with pytest.raises(UsageError, match="differ"):
        prepare("database-connection-errors", params={"operator": "alice"}, operator="bob", output=out)


def test_output_root_is_created_only_for_a_request_that_passed(reachable_sandbox):
    out = reachable_sandbox / "a" / "b" / "output"
    prepare("health-check", output=out)
    assert out.is_dir()
    (reachable_sandbox / "file").write_text("")
    with pytest.raises(OutputError, match="is not a folder"):
        prepare("health-check", output=reachable_sandbox / "file" / "output")


@pytest.mark.parametrize("command", ["list", "run", "demo", "sandbox"])
@pytest.mark.parametrize("error", [UsageError("bad\ninput"), OutputError("disk full"), SandboxError("no port"),
                                   KeyError("surprise"), RuntimeError("boom")])
def test_every_error_is_one_line_and_exit_3(monkeypatch, capsys, command, error):
    """AiasError is shown as it is; anything unexpected is named in one line (AIAS_DEBUG=1 for a traceback)."""
    def boom(*args):
        raise error
    monkeypatch.setattr(cli, f"cmd_{command}", boom)
    monkeypatch.delenv("AIAS_DEBUG", raising=False)
    argv = {"list": ["list"], "run": ["run", "x"], "demo": ["demo"], "sandbox": ["sandbox", "status"]}[command]
    assert cli.main(argv) == 3
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    if isinstance(error, (UsageError, OutputError, SandboxError)):
        assert err == "aias-runbooks: error: " + str(error).replace("\n", "\\n") + "\n"
    elif not isinstance(error, RuntimeError) or command == "run":
        assert err.startswith(f"aias-runbooks: error: unexpected {type(error).__name__}: ")


@pytest.mark.parametrize("stdout", ["closed", "reader gone"])
def test_exit_code_is_the_verdict_whoever_listens(reachable_sandbox, stdout):
    """`run ... >&-` and `run ... | head -c0` exit with the verdict's code (CRITICAL: the API is down), not 1."""
    args = [*CLI, "run", "health-check", "-p", "samples=2", "-p", "interval_ms=0", "-p", "timeout_s=0.5",
            "--output", str(reachable_sandbox / "output")]
    if stdout == "closed":
        proc = subprocess.run(["sh", "-c", '"$@" >&-', "sh", *args], stderr=subprocess.PIPE, text=True, timeout=120)
    else:
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run(args, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
        finally:
            os.close(write)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ""
    assert len(list((reachable_sandbox / "output").glob("*/*/verdict.json"))) == 1


def test_list_says_each_runbooks_title_when_to_run_it_and_its_guarded_action(capsys):
    """`aias-runbooks list` reads the catalogue: under each runbook's title, when to run it and what it may change."""
    assert cli.main(["list"]) == 0
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith(" "):
            current.append(line.strip())
        else:
            slug, _, title = line.partition(" ")
            current = blocks[slug] = [title.strip()]
    assert list(blocks) == slugs()
    for slug, runbook in catalogue.runbooks().items():
        said = blocks[slug]
        assert said[0] == load_runbook(slug).title
        assert f"when: {runbook.when}" in said, said
        assert f"guarded action: {runbook.action or 'none (it changes nothing)'}" in said, said
    reconcile = "guarded action: reconcile subscriptions with Stripe (actions/reconcile.py)"
    assert reconcile in blocks["stripe-webhook-failures"]


def test_list_to_a_reader_that_went_away_is_not_an_error():
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([*CLI, "list"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (0, "")
