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


def replay(path: str | os.PathLike[str]) -> ReplayResult:
    """Re-simulate a recorded run and report the first event that differs, if any."""
    header, lines, closing = read_log(path)
    scenario = validate_scenario(header["scenario"], f"{path} (scenario in the header)")
    sim = Simulation(scenario, seed=header["seed"], record=True, metrics=False)
    for t, fault in injections(lines):
        sim.run_until(t)
        sim.inject(fault)
    sim.run_until(closing["t"])
    assert sim.log is not None and sim.log.lines is not None
    got = sim.log.lines
    divergence = None
    for number, (want, have) in enumerate(zip(lines, got), start=1):
        if want != have:
            divergence = f"line {number} differs:\n  recorded: {want}\n  replayed: {have}"
            break
    else:
        if len(lines) != len(got):
            divergence = f"the log has {len(lines)} lines, the replay {len(got)}"
    return ReplayResult(len(got) - 1, sim.log.fingerprint, closing.get("fingerprint", ""), divergence)
