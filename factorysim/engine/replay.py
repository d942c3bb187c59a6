"""Replay a recorded run: re-simulate from the log's header and injections, and compare every event."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..scenario.files import validate_scenario
from .faults import Fault
from .log import read_log
from .simulation import Simulation


@dataclass(frozen=True)
class ReplayResult:
    events: int
    fingerprint: str
    recorded_fingerprint: str
    divergence: str | None

    @property
    def identical(self) -> bool:
        return self.divergence is None and self.fingerprint == self.recorded_fingerprint


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

    def __init__(self, path: str | os.PathLike[str], metrics: bool = False) -> None:
        header, self.lines, closing = read_log(path)
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


def replay(path: str | os.PathLike[str]) -> ReplayResult:
    """Re-simulate a recorded run and report the first event that differs, if any."""
    replayer = Replayer(path)
    sim = replayer.seek(replayer.end)
    lines = replayer.lines
    closing = {"fingerprint": replayer.recorded_fingerprint}
    assert sim.log is not None and sim.log.lines is not None
    got = sim.log.lines
    divergence = None
    # events first: the header is the input, and an older log's header lacks keys added since
    for number, (want, have) in enumerate(zip(lines[1:], got[1:], strict=False), start=2):
        if want != have:
            divergence = f"line {number} differs:\n  recorded: {want}\n  replayed: {have}"
            break
    else:
        if len(lines) != len(got):
            divergence = f"the log has {len(lines)} lines, the replay {len(got)}"
        elif lines[0] != got[0]:
            divergence = ("every event is the same, but the header is written differently now (the log comes "
                          "from another factorysim version), so the fingerprints differ")  # fmt: skip
    return ReplayResult(len(got) - 1, sim.log.fingerprint, closing.get("fingerprint", ""), divergence)
