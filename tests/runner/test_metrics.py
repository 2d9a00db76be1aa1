"""Metrics out, through real runs: `run`'s summary line carries monitoring-plugins performance data after " | ",
`--metrics-dir` writes a Prometheus textfile per runbook and environment (replaced whole), and every finding code
the catalogue says is measured carries exactly its measures, with the lines params/thresholds.yaml sets.

The perfdata grammar is written here from the monitoring-plugins guidelines
(https://www.monitoring-plugins.org/doc/guidelines.html#AEN200), not borrowed from metrics.py: a shared bug
could not make both agree. The textfile is read with prometheus_client's own parser."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from aias_runbooks import catalogue, metrics
from aias_runbooks.catalogue import slugs
from aias_runbooks.runner.parameterize import load_runbook
from aias_runbooks.settings import load_environment
from aias_runbooks.thresholds import load_thresholds

from ..helpers import Run, cli, finding

NUM = r"-?[0-9]+(?:\.[0-9]+)?"
RANGE = rf"@?(?:(?:{NUM}|~)?:)?(?:{NUM})?"        # 10, 10:, ~:10, 10:20, @10:20 (or empty)
LABEL = r"'(?:[^']|'')+'|[^'=\s]+"                # quoted when it holds a space or '=' (a quote doubled inside)
ITEM = re.compile(rf"(?P<label>{LABEL})=(?P<value>{NUM}|U)(?P<uom>s|ms|us|%|B|KB|MB|TB|c)?"
                  rf"(?:;(?P<warn>{RANGE})(?:;(?P<crit>{RANGE})(?:;(?P<min>{NUM})?(?:;(?P<max>{NUM})?)?)?)?)?")
CHEAP = {"samples": 10, "interval_ms": 0, "latency_samples": 10, "top_tables": 5}


def perfdata(result: Run) -> dict[str, dict[str, str | None]]:
    """The first stdout line's performance data by label, each item matched whole by the guidelines' grammar."""
    first = result.proc.stdout.splitlines()[0]
    assert " | " in first, f"no performance data on the summary line: {first}"
    summary, data = first.split(" | ", 1)
    assert summary == result.verdict["summary"].replace("|", "/"), "the verdict's summary, then its perfdata"
    items = {}
    for text in data.split(" "):
        match = ITEM.fullmatch(text)
        assert match, f"not performance data: {text!r} in {data!r}"
        items[match["label"].strip("'")] = match.groupdict()
    assert len(items) == len(data.split(" ")), "labels are unique on the line"
    return items


def measured(result: Run) -> dict[str, dict]:
    """verdict.json's measures by their perfdata label (<code lowercased>_<name>)."""
    return {f"{code.lower()}_{name}": m for code, name, m in metrics.measures(result.verdict["findings"])}


def lines() -> dict:
    return load_thresholds(load_environment("sandbox").thresholds)


def number(text: str | None) -> float | None:
    return None if not text else float(text.rstrip(":"))


def as_catalogued(result: Run) -> None:
    """Each finding carries exactly the measures its catalogue entry names (none for a code without any)."""
    for f in result.verdict["findings"]:
        info = catalogue.finding(f["code"])
        names = sorted(m["name"] for m in f.get("measures", []))
        assert names == sorted(info.measures if info else ()), (f["code"], names)


def agrees(result: Run) -> None:
    """The summary's perfdata holds every measure of verdict.json: value, UOM, lines and range."""
    data, ours = perfdata(result), measured(result)
    assert data.keys() == ours.keys()
    for label, m in ours.items():
        item = data[label]
        assert (None if item["value"] == "U" else float(item["value"])) == \
            (None if m["value"] is None else round(m["value"], 6)), label
        unit = m["unit"] if m["unit"] in metrics.UOMS and m["value"] is not None else ""   # "U" stands alone
        assert (item["uom"] or "") == unit, label
        for key, field in (("warn", "warning"), ("crit", "critical"), ("min", "min"), ("max", "max")):
            want = m[field]
            assert number(item[key]) == (None if want is None else round(want, 6)), (label, key)
        if m.get("low_is_bad") and m["warning"] is not None:
            assert item["warn"].endswith(":"), f"{label}: low is bad, so the range alerts below the line"


def test_healthy_health_check_prints_perfdata_on_the_thresholds_lines(quiet, run):
    result = run("health-check", "-p", "samples=12", "-p", "interval_ms=0")
    assert result.proc.returncode == 0, result.proc.stdout + result.proc.stderr
    agrees(result)
    as_catalogued(result)
    rule, data = lines()["api_response_ms"], perfdata(result)
    p95 = data["api_latency_ok_p95"]
    assert p95["uom"] == "ms" and (number(p95["warn"]), number(p95["crit"])) == (rule["warning_p95"],
                                                                                 rule["critical_p95"])
    assert abs(float(p95["value"]) - finding(result, "API_LATENCY_OK")["evidence"]["p95_ms"]) <= 0.05, \
        "the P95 the report shows"
    assert data["api_healthy_failed_checks"]["value"] == "0"


def test_healthy_monitoring_measures_the_five_metrics_on_their_lines(quiet, run):
    result = run("monitoring")
    assert result.proc.returncode == 0, result.verdict["findings"]
    agrees(result)
    as_catalogued(result)
    t, data = lines(), perfdata(result)
    assert (number(data["monitor_ok_error_rate"]["warn"]), number(data["monitor_ok_error_rate"]["crit"])) == \
        (100 * t["error_rate"]["warning"], 100 * t["error_rate"]["critical"])
    assert (number(data["monitor_ok_response_p95"]["warn"]), number(data["monitor_ok_response_p95"]["crit"])) == \
        (t["api_response_ms"]["warning_p95"], t["api_response_ms"]["critical_p95"])
    assert data["monitor_ok_signup_success"]["warn"] == f"{100 * t['signup_success_rate']['warning']:g}:", \
        "a success rate alerts below its target"
    assert data["monitor_ok_error_rate"]["uom"] == "%" and data["monitor_ok_db_p95"]["uom"] == "ms"


def test_an_error_spike_is_measured_above_its_critical_line(run, scenario):
    scenario("error-spike-after-deploy")
    result = run("high-error-rate")
    assert result.proc.returncode == 2
    agrees(result)
    as_catalogued(result)
    rate = {m["name"]: m for m in finding(result, "ERROR_RATE_HIGH")["measures"]}
    assert finding(result, "ERROR_RATE_HIGH")["severity"] == "CRITICAL"
    assert rate["error_rate"]["value"] > rate["error_rate"]["critical"] == 100 * lines()["error_rate"]["critical"]
    assert rate["minutes_over"]["value"] >= rate["minutes_over"]["critical"] == lines()["error_rate"]["window_minutes"]
    data = perfdata(result)
    assert float(data["error_rate_high_error_rate"]["value"]) > float(data["error_rate_high_error_rate"]["crit"])
    spike = {m["name"]: m for m in finding(result, "ERROR_SPIKE_AFTER_DEPLOY")["measures"]}
    assert spike["error_rate_after"]["value"] > spike["error_rate_after"]["critical"]


def test_a_refused_run_measures_every_slot_taken_and_an_unknown_count(run, scenario):
    """Pool exhaustion: the server refuses the runbook itself, so usage is all of it and who holds how many is
    not known from here: 'U', never a made-up number."""
    scenario("db-pool-exhaustion")
    result = run("database-connection-errors")
    assert result.proc.returncode == 2 and result.codes == {"DB_POOL_SATURATED": "CRITICAL"}
    agrees(result)
    as_catalogued(result)
    data = perfdata(result)
    assert (data["db_pool_saturated_usage"]["value"], data["db_pool_saturated_usage"]["uom"]) == ("100", "%")
    assert data["db_pool_saturated_in_use"]["value"] == "U"


def families(path: Path) -> dict[str, list]:
    """{family name: samples} of a textfile, read by prometheus_client's parser."""
    return {f.name: f.samples for f in text_string_to_metric_families(path.read_text())}


def test_metrics_dir_writes_one_textfile_per_runbook_and_environment(quiet, run, tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    before = time.time()
    first = run("health-check", "-p", "samples=10", "-p", "interval_ms=0", "--metrics-dir", str(folder))
    after = time.time()
    path = folder / "aias_runbooks_health-check_sandbox.prom"
    assert sorted(p.name for p in folder.iterdir()) == [path.name], "one file, no temporary left behind"
    read = families(path)
    labels = {"runbook": "health-check", "environment": "sandbox"}
    (status,) = read["aias_runbook_status"]
    assert status.labels == labels and status.value == first.proc.returncode == 0
    (last,) = read["aias_runbook_last_run_timestamp_seconds"]
    assert before - 1 <= last.value <= after + 1, "finished_at is kept to the second"
    (took,) = read["aias_runbook_duration_seconds"]
    assert 0 < took.value <= after - before + 1
    series = {(s.labels["finding"], s.labels["measure"]): s for s in read["aias_runbook_measure"]}
    want = {(code, name): m for code, name, m in metrics.measures(first.verdict["findings"]) if m["value"] is not None}
    assert series.keys() == want.keys()
    for key, m in want.items():
        assert series[key].value == pytest.approx(m["value"]) and series[key].labels["unit"] == m["unit"]
    warn = {(s.labels["finding"], s.labels["measure"]): s.value for s in read["aias_runbook_measure_warning"]}
    assert warn[("API_LATENCY_OK", "p95")] == lines()["api_response_ms"]["warning_p95"]

    other = run("monitoring", "--metrics-dir", str(folder))
    assert other.proc.returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == [path.name, "aias_runbooks_monitoring_sandbox.prom"]
    kept = (folder / "aias_runbooks_monitoring_sandbox.prom").read_text()

    again_at = time.time()
    run("health-check", "-p", "samples=10", "-p", "interval_ms=0", "--metrics-dir", str(folder))
    (last,) = families(path)["aias_runbook_last_run_timestamp_seconds"]
    assert last.value >= again_at - 1, "the second run replaced the file whole"
    assert (folder / "aias_runbooks_monitoring_sandbox.prom").read_text() == kept, "another runbook's file stays"
    assert len(list(folder.iterdir())) == 2


def test_the_collector_serves_the_last_verdict_of_each_runbook_and_environment(quiet, run):
    """What serve's GET /metrics answers: prometheus_client's text format, one series set per (runbook, env), the
    later verdict of a runbook replacing the earlier."""
    first = run("health-check", "-p", "samples=10", "-p", "interval_ms=0")
    second = run("high-error-rate")
    collector = metrics.Collector()
    collector.record(first.verdict, 2.5, 1_800_000_000.0)
    collector.record(second.verdict, 4.0, 1_800_000_010.0)
    collector.record(first.verdict | {"status": "CRITICAL"}, 3.0, 1_800_000_020.0)
    body, content_type = collector.exposition()
    assert content_type == CONTENT_TYPE_LATEST and content_type.startswith("text/plain; version=")
    read = {f.name: f.samples for f in text_string_to_metric_families(body.decode())}
    status = {s.labels["runbook"]: s.value for s in read["aias_runbook_status"]}
    assert status == {"health-check": 2, "high-error-rate": second.proc.returncode}
    last = {s.labels["runbook"]: s.value for s in read["aias_runbook_last_run_timestamp_seconds"]}
    assert last == {"health-check": 1_800_000_020.0, "high-error-rate": 1_800_000_010.0}
    rates = [s for s in read["aias_runbook_measure"] if s.labels["measure"] == "error_rate"]
    assert [(s.labels["runbook"], s.labels["finding"], s.labels["unit"]) for s in rates] == \
        [("high-error-rate", "ERROR_RATE_OK", "%")]


@pytest.mark.parametrize("make", ["missing", "a file"])
def test_a_bad_metrics_dir_is_one_line_before_anything_runs(tmp_path, make):
    target = tmp_path / "metrics"
    if make == "a file":
        target.write_text("not a folder")
    result = cli("run", "health-check", "--metrics-dir", str(target), "--output", str(tmp_path / "output"))
    assert result.returncode == 3 and result.stdout == ""
    said = result.stderr.splitlines()
    assert len(said) == 1 and said[0].startswith("aias-runbooks: error: --metrics-dir ") and \
        ("does not exist" if make == "missing" else "is not a folder") in said[0], result.stderr
    assert not (tmp_path / "output").exists(), "refused before anything was written"


def test_run_due_writes_each_runs_textfile(sandbox, tmp_path):
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text("schedules:\n  - name: health-5min\n    cron: '*/5 * * * *'\n    runbook: health-check\n"
                         "    environment: sandbox\n    parameters: {samples: 10, interval_ms: 0}\n")
    folder = tmp_path / "metrics"
    folder.mkdir()
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    slot = now.replace(minute=now.minute - now.minute % 5)
    due = cli("schedule", "run-due", "--schedules", str(schedules), "--output", str(tmp_path / "output"),
              "--now", slot.isoformat(), "--metrics-dir", str(folder))
    assert due.returncode == 0 and due.stderr == "", due.stdout + due.stderr
    assert "): OK: " in due.stdout and " | " not in due.stdout, "run-due's line: the summary, no performance data"
    read = families(folder / "aias_runbooks_health-check_sandbox.prom")
    assert read["aias_runbook_status"][0].value == 0
    assert {s.labels["finding"] for s in read["aias_runbook_measure"]} >= {"API_LATENCY_OK", "API_HEALTHY"}


def test_each_code_that_reads_thresholds_says_what_it_measures():
    """Table-driven: a code that reads params/thresholds.yaml names its measures or says why it has none."""
    for code in catalogue.codes().values():
        if code.thresholds:
            assert code.measures or code.unmeasured.startswith("none: "), code.code
        assert not (code.measures and code.unmeasured), code.code
        assert len(set(code.measures)) == len(code.measures), code.code
        assert all(metrics.NAME.fullmatch(n) for n in code.measures), code.code


@pytest.mark.parametrize("slug", slugs())
def test_every_runbook_carries_its_catalogued_measures_into_perfdata_and_the_textfile(quiet, run, tmp_path, slug):
    folder = tmp_path / "metrics"
    folder.mkdir()
    declared = load_runbook(slug).parameters
    params = [arg for name, value in CHEAP.items() if name in declared for arg in ("-p", f"{name}={value}")]
    result = run(slug, *params, "--metrics-dir", str(folder))
    assert "RUNBOOK_ERROR" not in result.codes, result.verdict["findings"]
    as_catalogued(result)
    if measured(result):
        agrees(result)
    else:
        assert " | " not in result.proc.stdout.splitlines()[0]
    read = families(folder / f"aias_runbooks_{slug}_sandbox.prom")
    assert read["aias_runbook_status"][0].value == result.proc.returncode
    values = {(s.labels["finding"], s.labels["measure"]) for s in read.get("aias_runbook_measure", [])}
    assert values == {(c, n) for c, n, m in metrics.measures(result.verdict["findings"]) if m["value"] is not None}
