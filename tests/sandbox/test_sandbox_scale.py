"""`sandbox up --scale`: the option's validation and the refusal to change a running sandbox's scale (cheap, no
sandbox); the full large-scale load and every runbook healthy on it are marked slow (deselected by default:
`pytest -m slow tests/sandbox/test_sandbox_scale.py` runs it, about 5 minutes on two cores)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from aias_runbooks import cli as aias_cli
from aias_runbooks.errors import UsageError
from aias_runbooks.sandbox import control
from aias_runbooks.sandbox.platform.database import schema

from ..helpers import cli, free_port_base


def test_an_unknown_scale_is_one_line_and_exit_3(capsys):
    with pytest.raises(SystemExit) as exit_:
        aias_cli.main(["sandbox", "up", "--scale", "huge"])
    assert exit_.value.code == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'huge'" in err and "default" in err and "large" in err
    with pytest.raises(UsageError, match="unknown scale 'huge'; valid: default, large"):
        control.check_scale("huge")
    assert set(schema.SCALES) == {"default", "large"} and schema.SCALES["default"] == {}


@pytest.fixture
def running_default(monkeypatch, tmp_path):
    """A sandbox that looks up at scale default (state file only; nothing is started or stopped)."""
    monkeypatch.setenv("AIAS_SANDBOX_DIR", str(tmp_path))
    (tmp_path / "state.json").write_text(json.dumps({"folder": str(tmp_path), "components": {}, "scenario": "healthy"}))
    monkeypatch.setattr(control, "is_up", lambda state: bool(state))
    switched = []
    monkeypatch.setattr(control, "apply_scenario", lambda state, name, say: switched.append((state, name)) or state)
    return switched


def test_up_large_on_a_running_default_sandbox_says_to_bring_it_down_first(running_default, capsys):
    assert aias_cli.main(["sandbox", "up", "--scale", "large"]) == 3
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "is up at scale 'default'; bring it down first (`aias-runbooks sandbox down`)" in captured.err
    assert not running_default, "the running sandbox is left as it was"


def test_switching_scenario_keeps_the_running_scale(running_default, capsys):
    assert aias_cli.main(["sandbox", "up", "--scenario", "api-down"]) == 0
    assert aias_cli.main(["sandbox", "up", "--scale", "default", "--scenario", "healthy"]) == 0
    assert [name for _, name in running_default] == ["api-down", "healthy"]
    assert "(scale 'default')" in capsys.readouterr().out


RUNBOOKS = ["health-check", "database-connection-errors", "database-health", "stripe-webhook-failures",
            "incident-payment-issues", "signup-failures", "high-error-rate", "workflows-not-executing"]


@pytest.mark.slow
def test_large_scale_loads_within_3_minutes_and_healthy_stays_ok_in_every_runbook():
    folder = Path(tempfile.mkdtemp(prefix="aias-test-large-"))
    folder.chmod(0o755)
    env = os.environ | {"AIAS_SANDBOX_DIR": str(folder), "AIAS_SANDBOX_PORT_BASE": str(free_port_base())}
    try:
        started = time.monotonic()
        up = cli("sandbox", "up", "--scale", "large", timeout=600, env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        loaded = next(line for line in up.stdout.splitlines() if "scale 'large'" in line)
        assert "10,0" in loaded and float(loaded.rsplit("loaded in ", 1)[1].split()[0]) < 180, loaded
        assert json.loads((folder / "state.json").read_text())["scale"] == "large"
        assert time.monotonic() - started < 400
        for runbook in RUNBOOKS:
            result = cli("run", runbook, "--output", str(folder / "output"), env=env)
            assert result.returncode == 0, f"{runbook}: {result.stdout}{result.stderr}"
        switched = cli("sandbox", "up", "--scenario", "slow-queries", env=env)
        assert switched.returncode == 0 and "(scale 'large')" in switched.stdout, switched.stdout + switched.stderr
    finally:
        cli("sandbox", "down", env=env)
        shutil.rmtree(folder, ignore_errors=True)
