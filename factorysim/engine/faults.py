"""Fault classes, fault targets, and the superposed Poisson process of natural faults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..scenario.catalog import catalog
from ..scenario.errors import Problem, ScenarioError
from ..scenario.models import FAULT_KINDS, Scenario
from ..topology.graph import ClosPlan

JOB_REFERENCE_CHIPS = 16384
"""Job-level rates in the catalog are per 16,384-GPU job (the Llama 3 study) and scale with the job's chips."""

CHUNK = 7 * 86400.0
"""Natural faults are drawn a week at a time, from a stream seeded by (seed, week): runs are deterministic
however time is advanced."""


@dataclass(frozen=True)
class FaultClass:
    """A fault class with the scenario's overrides applied."""

    name: str
    unit: str
    kind: str
    rate: float  # per unit-hour
    repair: float  # seconds
    slowdown: float | None
    factor: float | None
    source: str


def fault_classes(s: Scenario) -> list[FaultClass]:
    rel = s.reliability
    out = []
    for name, spec in catalog().fault_classes.items():
        out.append(
            FaultClass(
                name=name,
                unit=spec.unit,
                kind=spec.kind,
                rate=rel.rates.get(name, spec.rate) * rel.rate_multiplier,
                repair=rel.repair.get(name, spec.repair),
                slowdown=spec.slowdown,
                factor=spec.factor,
                source=spec.source,
            )
        )
    return out


def unit_counts(s: Scenario, plan: ClosPlan) -> dict[str, float]:
    """How many of each unit the cluster has (the job unit is a fraction of the 16K-GPU reference job)."""
    return {
        "gpu": plan.chips,
        "gpu_port": plan.chips,
        "host": plan.servers,
        "leaf": plan.leaves,
        "spine": plan.pods * plan.spines_per_pod,
        "core": plan.spines_per_pod * plan.cores_per_plane if plan.tiers == 3 else 0,
        "job": s.cluster.job_chips / JOB_REFERENCE_CHIPS,
    }


class FaultProcess:
    """Superposed Poisson arrivals of every fault class over every unit, drawn in weekly chunks."""

    def __init__(self, s: Scenario, plan: ClosPlan, seed: int) -> None:
        self.classes = [c for c in fault_classes(s) if c.rate > 0]
        counts = unit_counts(s, plan)
        self.population = np.array([counts[c.unit] for c in self.classes], dtype=float)
        self.intensity = np.array([c.rate for c in self.classes]) * self.population / 3600.0  # per second
        self.total = float(self.intensity.sum())
        self.seed = seed
        self._weeks = 0  # chunks handed out by `due`

    def chunk(self, k: int) -> list[tuple[float, int, int]]:
        """Arrivals in [k·CHUNK, (k+1)·CHUNK): (time, class index, unit index), sorted by time."""
        if self.total <= 0:
            return []
        rng = np.random.default_rng([self.seed, k, 0xFA17])
        n = rng.poisson(self.total * CHUNK)
        times = np.sort(rng.uniform(k * CHUNK, (k + 1) * CHUNK, size=n))
        which = rng.choice(len(self.classes), size=n, p=self.intensity / self.total)
        units = np.floor(rng.uniform(0, 1, size=n) * np.maximum(self.population[which], 1)).astype(np.int64)
        return list(zip(times.tolist(), which.tolist(), units.tolist(), strict=True))

    def due(self, t: float) -> Iterator[tuple[float, FaultClass, int]]:
        """Arrivals (time, class, unit index) of the chunks that start by time t, each chunk handed out once."""
        while self._weeks * CHUNK <= t:
            for when, which, unit in self.chunk(self._weeks):
                yield when, self.classes[which], unit
            self._weeks += 1


# ------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    """A fault target: a server, a chip, a switch, or the job."""

    kind: str  # server | chip | leaf | spine | core | job
    index: int = 0
    name: str = field(default="", compare=False)


_NAME = re.compile(r"^(?:n(\d+)(?:\.(\d+))?|(leaf|spine|core)(\d+)|(job))$")

ALLOWED = {
    "fail": ("server", "chip", "leaf", "spine", "core"),
    "straggle": ("server", "chip"),
    "degrade": ("chip", "spine", "core"),
    "flap": ("chip",),
    "crash": ("job",),
    "repair": ("server", "chip", "leaf", "spine", "core"),
}


def describe_targets(plan: ClosPlan) -> str:
    parts = [f"servers n0-n{plan.servers - 1}", f"chips n0.0-n{plan.servers - 1}.{plan.chips_per_node - 1}",
             f"leaf0-leaf{plan.leaves - 1}", f"spine0-spine{plan.pods * plan.spines_per_pod - 1}"]  # fmt: skip
    if plan.tiers == 3:
        parts.append(f"core0-core{plan.spines_per_pod * plan.cores_per_plane - 1}")
    return ", ".join(parts) + ', "job"'


def parse_target(name: str, plan: ClosPlan, path: str = "target") -> Target:
    """A target name checked against this cluster; a ScenarioError names what exists."""
    m = _NAME.match(name.strip())
    limits = {
        "leaf": plan.leaves,
        "spine": plan.pods * plan.spines_per_pod,
        "core": plan.spines_per_pod * plan.cores_per_plane if plan.tiers == 3 else 0,
    }
    target: Target | None = None
    if m:
        if m.group(5):
            target = Target("job", 0, "job")
        elif m.group(3):
            i = int(m.group(4))
            if i < limits[m.group(3)]:
                target = Target(m.group(3), i, name)
        else:
            server = int(m.group(1))
            if server < plan.servers:
                if m.group(2) is None:
                    target = Target("server", server, name)
                elif int(m.group(2)) < plan.chips_per_node:
                    target = Target("chip", server * plan.chips_per_node + int(m.group(2)), name)
    if target is None:
        raise ScenarioError([Problem(path, f'no "{name}" in this cluster; it has {describe_targets(plan)}')])
    return target


@dataclass(frozen=True)
class Fault:
    """A fault injected through the API or scheduled in the scenario."""

    target: str
    kind: str = "fail"
    factor: float | None = None
    duration: float | None = None
    cause: str = "injected"

    def check(self, plan: ClosPlan, path: str = "fault") -> Target:
        if self.kind not in FAULT_KINDS:
            allowed = ", ".join(f'"{k}"' for k in FAULT_KINDS)
            raise ScenarioError([Problem(f"{path}.kind", f'unknown fault kind "{self.kind}"; allowed: {allowed}')])
        target = parse_target(self.target, plan, f"{path}.target")
        if target.kind not in ALLOWED[self.kind]:
            raise ScenarioError([Problem(
                f"{path}.kind", f'"{self.kind}" does not apply to a {target.kind}; it applies to: {", ".join(ALLOWED[self.kind])}'
            )])  # fmt: skip
        if self.factor is not None and not 0 < self.factor <= 1:
            raise ScenarioError([Problem(f"{path}.factor", f"must be in (0, 1], got {self.factor}")])
        if self.duration is not None and self.duration <= 0:
            raise ScenarioError([Problem(f"{path}.duration", f"must be positive, got {self.duration}")])
        return target

    def as_dict(self) -> dict[str, str | float]:
        out: dict[str, str | float] = {"target": self.target, "kind": self.kind, "cause": self.cause}
        if self.factor is not None:
            out["factor"] = self.factor
        if self.duration is not None:
            out["duration"] = self.duration
        return out
