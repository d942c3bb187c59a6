"""Replay a recorded run: check the log's hash chain, re-simulate from its header and injections, and compare
every event and the closing line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..scenario.files import validate_scenario
from .faults import Fault
from .log import LogAltered, RecordedRun, dumps, read_recorded_run
from .simulation import Simulation


@dataclass(frozen=True)
class ReplayResult:
    events: int
    fingerprint: str
    recorded_fingerprint: str
    divergence: str | None
    altered_at: int | None = None
    """The first line that breaks the log's hash chain (then nothing was re-simulated)."""

    @property
    def identical(self) -> bool:
        return self.altered_at is None and self.divergence is None and self.fingerprint == self.recorded_fingerprint


def injections(lines: list[str]) -> list[tuple[float, Fault]]:
    """The faults a session injected (scheduled ones come back from the scenario itself)."""
    out = []
    for line in lines[1:]:
        rec = json.loads(line)
        if rec.get("kind") == "inject" and rec.get("cause") == "injected":
            effect = rec.get("effect", {})
            out.append((rec["t"], Fault(rec["target"], effect.get("kind", "fail"), effect.get("factor"),
                                        effect.get("duration"), "injected")))  # fmt: skip
    return out


class Replayer:
    """A recorded run that can be shown at any sim time: forward by simulating on, backward by simulating
    again from t = 0 (with the recorded injections at their times). Deterministic, so every visit to a
    time shows the same state."""

    def __init__(self, path: str | os.PathLike[str], metrics: bool = False, run: RecordedRun | None = None) -> None:
        self.run = run if run is not None else read_recorded_run(path)
        header, self.lines, closing = self.run.header, self.run.lines, self.run.closing
        self.path = str(path)
        self.scenario = validate_scenario(header["scenario"], f"{path} (scenario in the header)")
        self.seed = header["seed"]
        self.end = float(closing["t"])
        self.recorded_fingerprint = closing.get("fingerprint", "")
        self.injections = injections(self.lines)
        self.metrics = metrics
        self.sim = self._fresh()

    def _fresh(self) -> Simulation:
        self._next = 0
        return Simulation(self.scenario, seed=self.seed, record=True, metrics=self.metrics)

    def seek(self, t: float) -> Simulation:
        """Show the run at sim time t (clamped to the recording); returns the simulation now showing it."""
        t = min(max(0.0, t), self.end)
        if t < self.sim.now:
            self.sim = self._fresh()
        while self._next < len(self.injections) and self.injections[self._next][0] <= t:
            when, fault = self.injections[self._next]
            self.sim.run_until(when)
            self.sim.inject(fault)
            self._next += 1
        self.sim.run_until(t)
        return self.sim

    @property
    def done(self) -> bool:
        return self.sim.now >= self.end


def _differences(recorded: Any, replayed: Any, path: str = "") -> list[str]:
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        out = []
        for key in sorted(set(recorded) | set(replayed)):
            out += _differences(recorded.get(key), replayed.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if recorded == replayed else [f"{path}: recorded {recorded!r}, replayed {replayed!r}"]


def replay(
    path: str | os.PathLike[str],
    progress: Callable[[float], None] | None = None,
    run: RecordedRun | None = None,
    steps: int = 200,
) -> ReplayResult:
    """Check the log's hash chain, then re-simulate the run and report the first line that differs, if any
    (the closing line and its summary included). `progress(share)` is called as the replay goes on."""
    try:
        replayer = Replayer(path, run=run)
    except LogAltered as exc:
        return ReplayResult(0, "", "", str(exc.problems[0]), altered_at=exc.line)
    end = replayer.end
    for i in range(1, steps + 1):
        sim = replayer.seek(end if i == steps else end * i / steps)
        if progress is not None:
            progress(i / steps)
    lines = replayer.lines
    assert sim.log is not None and sim.log.lines is not None
    got = sim.log.lines
    divergence = None
    # events first: the header is the input, and an older log's header lacks keys added since
    for number, (want, have) in enumerate(zip(lines[1:], got[1:], strict=False), start=2):
        if want != have:
            divergence = f"line {number} differs:\n  recorded: {want}\n  replayed: {have}"
            break
    else:
        closing = json.loads(dumps(sim.log.closing(sim.now, sim.summary().as_dict())))
        if len(lines) != len(got):
            divergence = f"the log has {len(lines)} lines before its closing line, the replay {len(got)}"
        elif lines[0] != got[0]:
            divergence = ("every event is the same, but the header is written differently now (the log comes "
                          "from another factorysim version), so the fingerprints differ")  # fmt: skip
        elif closing != replayer.run.closing:  # compared as values: 172800 and 172800.0 are the same time
            diffs = _differences(replayer.run.closing, closing)
            divergence = f"the closing line (line {len(lines) + 1}) differs: " + "; ".join(diffs[:5])
    return ReplayResult(len(got) - 1, sim.log.fingerprint, replayer.recorded_fingerprint, divergence)
