"""Fuzzing, kept: mutated scenarios through validate, damaged logs through replay.

Whatever the input, the promise holds: exit 0 or 2, one line per problem (no control character, no
traceback), and a log with any byte changed is never replayed as identical. Bounded: well under a minute.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorysim import Fault, Simulation
from factorysim.cli import main
from factorysim.engine import replay
from factorysim.scenario import ScenarioError, scenario_data

from .conftest import scenario

WORK = Path(tempfile.mkdtemp(prefix="factorysim-fuzz-"))  # one folder for every example, removed at exit
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
SCALE = float(os.environ.get("FACTORYSIM_FUZZ_SCALE", "1"))
"""More examples on demand (FACTORYSIM_FUZZ_SCALE=20 pytest tests/test_fuzz.py); CI runs the default."""
STARTER_DATA = scenario_data(scenario())


def leaf_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leaf_paths(v, (*prefix, k))] or [prefix]
    return [prefix]


PATHS = sorted(set(leaf_paths(STARTER_DATA)) | {
    ("cluster", "chip", "bf16_tflops"), ("cluster", "scale_up"), ("cluster", "fabric", "switch_radix"),
    ("workload", "layers"), ("workload", "experts"), ("reliability", "rates", "faulty_gpu"),
    ("reliability", "repair", "faulty_gpu"), ("reliability", "detect_time"), ("faults",), ("topology", "edits"),
    ("layout", "positions", "n1"), ("challenge",), ("challenge", "title"), ("name",), ("name", "inline"),
    ("made_up_key",), ("cluster", "\x1b[31m"),
})  # fmt: skip

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
NUMBERS = st.one_of(
    st.integers(-10, 5000),
    st.integers(-(10**40), 10**40),
    st.integers(10**300, 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
)
VALUES = st.one_of(
    NUMBERS,
    TEXT,
    st.sampled_from(["30d", "1e300s", "-1h", "fp8", "n3", "job", "x" * 10_000, "\n\x1b]0;title\x07", "[/]", "$x$"]),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.none()),
    st.times(),
    st.lists(NUMBERS, max_size=3),
    st.lists(
        st.dictionaries(
            st.sampled_from(["at", "target", "kind", "factor", "op", "a", "b"]), st.one_of(NUMBERS, TEXT), max_size=4
        ),
        max_size=2,
    ),
    st.dictionaries(TEXT, NUMBERS, max_size=2),
)


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    node[path[-1]] = value


def assert_the_promise(code: int, out: str, err: str) -> None:
    """Exit 0 with `ok:`, or exit 2 with one line per problem: no traceback, no control character."""
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 0:
        assert out.startswith("ok: ")
        return
    lines = err.rstrip("\n").split("\n")
    assert lines[0].startswith("error: ")
    for line in lines:
        assert all(ch.isprintable() for ch in line), repr(line)
        assert len(line) < 2_000, line[:200]


def validate(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=int(150 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=4))
def test_any_mutated_scenario_is_accepted_or_refused_one_line_per_problem(mutations):
    data = scenario_data(scenario())
    for path, value in mutations:
        set_path(data, path, value)
    target = WORK / "mutated.toml"
    target.write_text(tomli_w.dumps(data))
    assert_the_promise(*validate(target))


@settings(max_examples=int(100 * SCALE), deadline=None)
@given(st.integers(0, 10**6), st.binary(min_size=0, max_size=8), st.integers(0, 3))
def test_any_damaged_scenario_text_is_refused_one_line_per_problem(where, junk, cut):
    text = tomli_w.dumps(STARTER_DATA).encode()
    at = where % (len(text) + 1)
    target = WORK / "damaged.toml"
    target.write_bytes(text[:at] + junk + text[at + cut :])
    assert_the_promise(*validate(target))


# ---------------------------------------------------------------- replay


@pytest.fixture(scope="module")
def recorded() -> bytes:
    sim = Simulation(scenario("cluster.nodes=9", "cluster.spare_nodes=1"), record=True)
    sim.run_until(36_000)
    sim.inject(Fault("n4", "fail"))
    sim.run_until(86400)
    path = WORK / "recorded.jsonl"
    sim.write_log(path)
    assert replay(path).identical
    return path.read_bytes()


@settings(max_examples=int(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_log_with_any_byte_changed_is_never_replayed_as_identical(recorded, data):
    at = data.draw(st.integers(0, len(recorded) - 1), label="position")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != recorded[at]), label="byte")
    damaged = recorded[:at] + bytes([new]) + recorded[at + 1 :]
    path = WORK / "damaged.jsonl"
    path.write_bytes(damaged)
    line = recorded[:at].count(b"\n") + 1
    try:
        result = replay(path)
    except ScenarioError as exc:  # a refused log: the header, the file's text, or a cut-off last line
        assert line == 1 or at == len(recorded) - 1 or "UTF-8" in str(exc), (line, str(exc))
        return
    assert not result.identical
    if line > 1:  # past the header, the first line that breaks the hash chain is the changed one
        assert result.altered_at == line


@settings(max_examples=int(60 * SCALE), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_log_with_lines_deleted_or_repeated_is_never_replayed_as_identical(recorded, data):
    lines = recorded.split(b"\n")[:-1]
    k = data.draw(st.integers(1, len(lines) - 1), label="line")
    repeat = data.draw(st.booleans(), label="repeat")
    changed = [*lines[:k], *([lines[k]] * 2 if repeat else []), *lines[k + 1 :]]
    path = WORK / "lines.jsonl"
    path.write_bytes(b"\n".join(changed) + b"\n")
    try:
        result = replay(path)
    except ScenarioError as exc:  # deleting the closing line leaves a log without one
        assert k == len(lines) - 1 and "truncated" in str(exc)
        return
    assert result.altered_at == k + 1 + repeat
    assert not result.identical
