"""Bad input: one clear line on stderr, exit 3, and no kernel started (no report folder written)."""

from __future__ import annotations

import os

import pytest

BAD = [
    (["nope"], "unknown runbook 'nope'; valid: database-connection-errors, database-health, health-check"),
    (["health-check", "-p", "samples=abc"], "parameter 'samples' must be an integer, got 'abc'"),
    (["health-check", "-p", "samples=0"], "parameter 'samples' must be between 1 and 500"),
    (["health-check", "-p", "colour=red"], "no parameter 'colour'; valid: environment, samples"),
    (["health-check", "-p", "samples"], "expected -p KEY=VALUE"),
    (["health-check", "--env", "prod"], "unknown environment 'prod'; valid: sandbox"),
    (["health-check", "--incident", "../etc"], "incident id '../etc' is not valid"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_3_without_running(run, args, message):
    result = run(*args)
    assert result.proc.returncode == 3
    lines = result.proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.proc.stderr
    assert not result.output.exists(), "nothing may be written for bad input"


def test_sandbox_not_running_is_a_clear_error(run, tmp_path):
    """No sandbox.env in the sandbox folder: say how to start it instead of probing an empty URL."""
    empty = tmp_path / "no-sandbox"
    empty.mkdir()
    result = run("health-check", env=os.environ | {"AIAS_SANDBOX_DIR": str(empty)})
    assert result.proc.returncode == 3
    assert result.proc.stderr.strip() == ("aias-runbooks: error: the sandbox is not running: start it with "
                                          "`aias-runbooks sandbox up` (or `make demo`)")
    assert not result.output.exists()
