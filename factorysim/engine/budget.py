"""How much work a run is before it starts: the fault events it will draw, from rates × exposure × duration.

A run costs per event (the engine integrates between events in closed form), and natural faults are drawn
a week at a time, so the events drawn bound both the time a run takes and the memory it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..scenario.models import Scenario
from ..scenario.units import human_duration
from ..topology.graph import plan_clos
from .faults import CHUNK, fault_classes, unit_counts

WORK_BUDGET = 1_000_000
"""Fault events a command may draw without --yes: on the order of a minute or two of simulation here
(10 to 160 µs per event, by kind) and a few hundred MB at most."""

MAX_WEEKLY_EVENTS = 10_000_000
"""Faults drawn at once (one sim week of one run): past this the draw alone needs gigabytes, --yes or not."""


@dataclass(frozen=True)
class WorkEstimate:
    """The expected fault events of `runs` runs of `duration` seconds each."""

    per_hour: float  # fault events per sim hour of one run: Σ rate × units
    per_week: float  # drawn at once by one run
    duration: float
    runs: int
    scheduled: int  # [[faults]] of the scenario, per run

    @property
    def events(self) -> float:
        """Events drawn over all runs (whole weeks: a week is drawn at once)."""
        weeks = max(1, math.ceil(self.duration / CHUNK))
        return (self.per_week * weeks + self.scheduled) * self.runs

    @property
    def over_budget(self) -> bool:
        return self.events > WORK_BUDGET

    @property
    def too_large(self) -> bool:
        return self.per_week > MAX_WEEKLY_EVENTS

    def describe(self) -> str:
        runs = f" × {self.runs:,} runs" if self.runs > 1 else ""
        return (f"about {self.events:,.0f} fault events ({self.per_hour * 24:,.0f} a day over "
                f"{human_duration(self.duration)}{runs})")  # fmt: skip


def estimate_work(scenario: Scenario, duration: float, runs: int = 1) -> WorkEstimate:
    """The fault events `runs` runs of the scenario will draw over `duration` seconds of sim time."""
    counts = unit_counts(scenario, plan_clos(scenario.cluster))
    per_hour = sum(fc.rate * counts[fc.unit] for fc in fault_classes(scenario))
    return WorkEstimate(per_hour, per_hour * CHUNK / 3600, duration, runs, len(scenario.faults))
