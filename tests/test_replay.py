"""Recorded runs: they replay identically; a log changed after it was written is reported as altered at its
first changed line before anything is re-simulated; a damaged or hostile log is refused with a clear message."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from factorysim import Fault, Simulation
from factorysim.engine import read_log, replay
from factorysim.engine.log import MAX_LINE_BYTES, with_links
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


def bodies(path) -> list[str]:
    """The log's lines without their chain links."""
    return [re.sub(r',"chain":"[0-9a-f]{16}"\}$', "}", line) for line in lines(path)]


def rewrite(path, edit) -> None:
    """Edit the records and write the log again with a freshly computed hash chain: a log that passes the
    chain check, so what catches the edit is the record checks or re-simulating."""
    records = [json.loads(b) for b in bodies(path)]
    edit(records)
    path.write_text(with_links([json.dumps(r, sort_keys=True, separators=(",", ":")) for r in records]))


def cli_replay(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factorysim", "replay", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_recorded_run_with_injections_replays_identically(log):
    result = replay(log)
    assert result.identical and result.events > 100
    header, events, closing = read_log(log)
    assert header["schema"] == 2 and header["seed"] == 1 and header["factorysim"]
    assert closing["fingerprint"] == result.fingerprint
    assert any(json.loads(e)["kind"] == "inject" for e in events)


def test_every_line_carries_a_link_of_the_hash_chain(log):
    assert all(re.search(r',"chain":"[0-9a-f]{16}"\}$', line) for line in lines(log))


# ---------------------------------------------------------------- altered logs


def test_an_edited_event_is_reported_as_altered_at_its_line_before_re_simulating(log, monkeypatch):
    text = lines(log)
    i = next(k for k, line in enumerate(text) if '"kind":"detect"' in line)
    text[i] = text[i].replace('"detect"', '"detected"')
    log.write_text("\n".join(text) + "\n")
    monkeypatch.setattr(Simulation, "run_until", lambda *a: pytest.fail("an altered log was re-simulated"))
    result = replay(log)
    assert not result.identical and result.altered_at == i + 1
    assert result.divergence.startswith(f"altered at line {i + 1}:")


def test_an_edited_closing_summary_is_altered_at_the_last_line(log):
    text = lines(log)
    text[-1] = re.sub(r'"ettr":[0-9.]+', '"ettr":0.999', text[-1])
    log.write_text("\n".join(text) + "\n")
    result = cli_replay(log)
    assert result.returncode == 1
    assert result.stderr.startswith(f"ALTERED: line {len(text)} does not match the log's hash chain")


def test_a_deleted_event_is_altered_not_two_equal_fingerprints(log):
    text = lines(log)
    del text[10]
    log.write_text("\n".join(text) + "\n")
    result = cli_replay(log)
    assert result.returncode == 1 and "ALTERED: line 11 " in result.stderr
    assert "fingerprint" not in result.stderr


def test_a_summary_edited_with_a_recomputed_chain_is_caught_by_re_simulating(log):
    def lie(records):
        records[-1]["summary"]["ettr"] = 0.999

    rewrite(log, lie)
    result = replay(log)
    assert not result.identical and result.altered_at is None
    assert re.fullmatch(r"the closing line \(line \d+\) differs: summary\.ettr: recorded 0\.999, replayed 0\.\d+",
                        result.divergence)  # fmt: skip


def test_an_event_edited_with_a_recomputed_chain_is_the_first_divergence(log):
    n = next(k for k, line in enumerate(lines(log)) if '"kind":"detect"' in line)

    def edit(records):
        records[n]["target"] = "n7"

    rewrite(log, edit)
    result = replay(log)
    assert result.divergence.startswith(f"line {n + 1} differs")


# ---------------------------------------------------------------- damaged or hostile logs


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda t: t[:-1], "no closing line after line"),
        (lambda t: [t[0].replace('"schema":2', '"schema":7'), *t[1:]], "log schema version 7; this factorysim reads version 2"),
        (lambda t: [t[0].replace('"schema":2', '"schema":1'), *t[1:]], "log schema version 1"),
        (lambda t: [], "empty file"),
        (lambda t: ["\n" * 1000], "empty file"),
        (lambda t: ['{"kind":"event"}', *t[1:]], "the first line is not a factorysim log header"),
        (lambda t: ["[" * 100_000, *t[1:]], "the first line is not a factorysim log header"),
        (lambda t: [*t[:3], "x" * (MAX_LINE_BYTES + 1), *t[3:]], f"line 4 is {MAX_LINE_BYTES + 1:,} characters"),
    ],
    ids=["truncated", "other-schema", "schema-1", "empty", "blank", "no-header", "deep-header", "long-line"],
)  # fmt: skip
def test_a_damaged_log_is_refused_with_a_clear_message(log, damage, message):
    log.write_text("\n".join(damage(lines(log))) + "\n")
    with pytest.raises(ScenarioError, match=re.escape(message)):
        replay(log)
    result = cli_replay(log)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and message in result.stderr


def test_a_log_cut_in_the_middle_of_a_line_is_truncated(log):
    text = log.read_text()
    log.write_text(text[: len(text) - 40])
    with pytest.raises(ScenarioError, match=r"line \d+ is incomplete \(no line end\): the log is truncated"):
        replay(log)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda r: r.__setitem__(-1, {**r[-1], "t": 1e300}), "t is 1e+300; a sim time is a number of seconds from 0 to 1000 years"),
        (lambda r: r.__setitem__(-1, {**r[-1], "t": -5}), "t is -5; a sim time"),
        (lambda r: r.__setitem__(-1, {**r[-1], "t": "soon"}), 't is "soon"; a sim time'),
        (lambda r: r.__setitem__(-1, {**r[-1], "events": 3}), "the closing line counts 3 events; the log has"),
        (lambda r: r.insert(5, {"t": 1, "kind": "inject", "target": "n1", "cause": "injected", "effect": {"kind": "melt"}}),
         'line 6: injected fault kind "melt"'),
        (lambda r: r.insert(5, {"t": 1, "kind": "inject", "target": "n1", "cause": "injected", "effect": {"factor": "x"}}),
         'line 6: injected fault factor "x"'),
        (lambda r: r[0].__setitem__("seed", -1), "the header's seed is -1"),
        (lambda r: r[0].__setitem__("seed", "one"), 'the header\'s seed is "one"'),
        (lambda r: r[0]["scenario"]["cluster"].__setitem__("nodes", 10), "the scenario in the header does not match its hash"),
        (lambda r: r.append({"kind": "event", "t": 0, "target": "job"}), "comes after the closing line"),
    ],
    ids=["huge-end", "negative-end", "text-end", "event-count", "fault-kind",
         "fault-factor", "seed-negative", "seed-text", "other-scenario", "after-end"],
)  # fmt: skip
def test_records_are_type_checked_even_when_the_chain_holds(log, edit, message):
    rewrite(log, edit)
    with pytest.raises(ScenarioError, match=re.escape(message)):
        replay(log)
    result = cli_replay(log)  # the huge end time once hung; the others were tracebacks
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("line", ["5", "null", "[]", '"text"', "{}"])
def test_a_line_of_json_that_is_not_a_record_is_an_alteration(log, line):
    text = lines(log)
    log.write_text("\n".join([*text[:5], line, *text[5:]]) + "\n")
    assert replay(log).altered_at == 6
    result = cli_replay(log)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "ALTERED: line 6 " in result.stderr


def test_special_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "run.jsonl"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(ScenarioError, match="only regular files are read"):
            replay(path)  # reading either would never end


def test_a_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(ScenarioError, match="no such file"):
        replay(tmp_path / "nope.jsonl")
