"""Metrics over sim time: a bounded time series, and the run summary users compare."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

COLUMNS = (
    "t", "tokens", "progress", "tokens_per_s", "mfu", "ettr", "stability",
    "healthy", "failed", "in_repair", "spare",
    "generality", "chip", "node", "cluster", "power_w",
)  # fmt: skip


class TimeSeries:
    """Rows sampled every `interval` of sim time and at every event, in a fixed amount of memory.

    When the buffer fills, every other row is dropped and the interval doubles: a year-long run keeps
    the same number of rows as a day-long one, evenly spread.
    """

    def __init__(self, interval: float, capacity: int = 4096) -> None:
        self.interval = interval
        self.capacity = capacity
        self._rows = np.zeros((capacity, len(COLUMNS)))
        self._n = 0
        self.next_sample = 0.0

    def __len__(self) -> int:
        return self._n

    def add(self, row: tuple[float, ...]) -> None:
        if self._n == self.capacity:
            keep = self._rows[: self._n : 2].copy()
            self._n = len(keep)
            self._rows[: self._n] = keep
            self.interval *= 2
        self._rows[self._n] = row
        self._n += 1

    def column(self, name: str) -> np.ndarray:
        return self._rows[: self._n, COLUMNS.index(name)]

    def as_dict(self) -> dict[str, list[float]]:
        """Every column; power_w only when the run has power figures (a run without holds NaN there)."""
        out = {name: self.column(name).tolist() for name in COLUMNS}
        if self._n and np.isnan(self.column("power_w")).all():
            del out["power_w"]
        return out


@dataclass
class RunSummary:
    """What a run produced and what faults cost it."""

    duration_s: float
    seed: int
    policy: str
    chips: int
    ettr: float
    stability: float
    tokens: float
    mean_tokens_per_s: float
    fault_free_tokens_per_s: float
    interruptions: dict[str, int]
    isolations: int
    faults: int
    lost_chip_hours: float
    lost_chip_hours_by: dict[str, float]
    spares_used: int
    min_spares: int
    checkpoints: int
    time_to_target_s: float | None
    factors: dict[str, float]
    fingerprint: str | None = None
    events: int = 0
    notes: list[str] = field(default_factory=list)
    spare_pool_empty_s: float = 0.0  # time with no spare server in the pool
    waiting_for_spares_s: float = 0.0  # time with a job slot that no spare could fill (waiting for a repair)
    power: dict[str, Any] | None = None  # energy, power, swing, energy lost, cost (engine.power); None: no figures

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.time_to_target_s is not None and not math.isfinite(self.time_to_target_s):
            out["time_to_target_s"] = None
        return out


NUMERIC = ("ettr", "stability", "tokens", "mean_tokens_per_s", "lost_chip_hours", "isolations", "faults",
           "spares_used", "checkpoints", "spare_pool_empty_s", "waiting_for_spares_s")  # fmt: skip


def aggregate(summaries: list[RunSummary]) -> dict[str, Any]:
    """Means over seeds with a `spread` object of standard deviations (and the per-cause means)."""
    if not summaries:
        raise ValueError("no runs to aggregate")
    first = summaries[0]
    out: dict[str, Any] = {"seeds": [s.seed for s in summaries], "runs": len(summaries),
                           "duration_s": first.duration_s, "policy": first.policy, "chips": first.chips}  # fmt: skip
    spread: dict[str, Any] = {}
    for key in NUMERIC:
        values = np.array([getattr(s, key) for s in summaries], dtype=float)
        out[key] = float(values.mean())
        spread[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    causes = sorted({c for s in summaries for c in s.interruptions})
    out["interruptions"] = {c: float(np.mean([s.interruptions.get(c, 0) for s in summaries])) for c in causes}
    spread["interruptions"] = {
        c: float(np.std([s.interruptions.get(c, 0) for s in summaries], ddof=1)) if len(summaries) > 1 else 0.0
        for c in causes
    }
    out["factors"] = {k: float(np.mean([s.factors[k] for s in summaries])) for k in first.factors}
    spread["factors"] = {
        k: float(np.std([s.factors[k] for s in summaries], ddof=1)) if len(summaries) > 1 else 0.0
        for k in first.factors
    }
    out["lost_chip_hours_by"] = {
        k: float(np.mean([s.lost_chip_hours_by.get(k, 0.0) for s in summaries])) for k in first.lost_chip_hours_by
    }
    reached = [s.time_to_target_s for s in summaries if s.time_to_target_s is not None]
    out["time_to_target_s"] = float(np.mean(reached)) if len(reached) == len(summaries) else None
    powers = [s.power for s in summaries]
    if all(p is not None for p in powers):
        out["power"], spread["power"] = _aggregate_power(powers)  # type: ignore[arg-type]
    out["spread"] = spread
    return out


def _aggregate_power(powers: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, float]]:
    """Means of a run's power figures over seeds, and the standard deviations of the numeric ones."""
    first = powers[0]
    mean: dict[str, Any] = {}
    spread: dict[str, float] = {}
    for key, value in first.items():
        if isinstance(value, dict):
            mean[key] = {k: float(np.mean([p[key][k] for p in powers])) for k in value}
        elif isinstance(value, (int, float)) and all(isinstance(p.get(key), (int, float)) for p in powers):
            values = np.array([p[key] for p in powers], dtype=float)
            mean[key] = float(values.mean())
            spread[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        else:
            mean[key] = value if all(p.get(key) == value for p in powers) else None
    return mean, spread
