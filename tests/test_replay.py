"""Recorded runs: they replay identically, and a damaged log is refused with a clear message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from factorysim import Fault, Simulation
from factorysim.engine import read_log, replay
from factorysim.scenario import ScenarioError

from .conftest import scenario


@pytest.fixture
def log(tmp_path):
    sim = Simulation(scenario("cluster.nodes=9", "cluster.spare_nodes=1"), record=True)
    sim.run_until(36_000)
    sim.inject(Fault("n4", "fail"))
    sim.inject(Fault("spine2", "fail"), at=50_000)
    sim.run_until(2 * 86400)
    path = tmp_path / "run.jsonl"
    sim.write_log(path)
    return path


def lines(path):
    return path.read_text().splitlines()


def test_a_recorded_run_with_injections_replays_identically(log):
    result = replay(log)
    assert result.identical and result.events > 100
    header, events, closing = read_log(log)
    assert header["schema"] == 1 and header["seed"] == 1 and header["factorysim"]
    assert closing["fingerprint"] == result.fingerprint
    assert any(json.loads(e)["kind"] == "inject" for e in events)


def test_an_edited_event_is_reported_as_the_first_divergence(log):
    text = lines(log)
    i = next(k for k, line in enumerate(text) if '"kind":"detect"' in line)
    text[i] = text[i].replace('"detect"', '"detected"')
    log.write_text("\n".join(text) + "\n")
    result = replay(log)
    assert not result.identical
    assert result.divergence.startswith(f"line {i + 1} differs")


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda t: t[:-1], "truncated"),
        (lambda t: [*t[:5], '{"t": 1, "kind": ', *t[6:]], "line 6 is not JSON"),
        (lambda t: [t[0].replace('"schema":1', '"schema":7'), *t[1:]], "schema version 7"),
        (lambda t: [t[0].replace('"nodes":9', '"nodes":10'), *t[1:]], "does not match its hash"),
        (lambda t: [], "empty file"),
        (lambda t: ['{"kind":"event"}', *t[1:]], "not a factorysim log header"),
    ],
    ids=["truncated", "corrupted", "other-schema", "other-scenario", "empty", "no-header"],
)
def test_a_damaged_log_is_refused_with_a_clear_message(log, damage, message):
    log.write_text("\n".join(damage(lines(log))) + "\n")
    with pytest.raises(ScenarioError, match=message):
        replay(log)
    result = subprocess.run([sys.executable, "-m", "factorysim", "replay", str(log)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and message in result.stderr


def test_a_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(ScenarioError, match="no such file"):
        replay(tmp_path / "nope.jsonl")
