"""Words and number formats that the terminal output, the HTML report and the sandbox share."""

from __future__ import annotations

import math

from .perf.step import StepEstimate
from .scenario.models import Scenario

FACTOR_NAMES = (
    ("generality", "generality", "ops on the chip's fast paths"),
    ("chip", "chip", "kernel mix, chip alone"),
    ("node", "node", "communication inside servers"),
    ("cluster", "cluster", "fabric, bubble, stragglers"),
    ("stability", "stability", "faults, checkpoints, restarts"),
)
"""The five factors from peak to delivered, in order: (key, label, what it covers)."""


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """1.23e15 → '1.23 P' + unit: `digits` significant digits, or the whole number where it has more (700 W with
    two digits is '700 W', never '7e+02 W'); rounding that reaches the next prefix takes it (999.7 k → '1 M')."""
    if value and math.isfinite(value):
        value = float(f"{value:.{digits}g}")
    for scale, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{_digits(value / scale, digits)} {prefix}{unit}"
    return f"{_digits(value, digits)} {unit}".rstrip()


def _digits(x: float, digits: int) -> str:
    return f"{x:.0f}" if abs(x) >= 10**digits else f"{x:.{digits}g}"


def plural(n: int, noun: str) -> str:
    """1 point, 2 points, 1,024 points."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def describe(s: Scenario, e: StepEstimate) -> str:
    """The cluster and the job in one line: model, chips, servers, layout, precision, recompute."""
    c, lay = s.cluster, e.layout
    parts = [f"TP{lay.tp}", f"PP{lay.pp}" + (f"×{lay.interleave}" if lay.interleave > 1 else ""), f"DP{lay.dp}"]
    if lay.cp > 1:
        parts.append(f"CP{lay.cp}")
    if lay.ep > 1:
        parts.append(f"EP{lay.ep}")
    return (
        f"{s.workload.model_name} on {e.chips:,} × {c.chip_name} ({c.job_nodes:,} servers + {c.spare_nodes} spare), "
        f"{' '.join(parts)}, {s.workload.precision.upper()}, recompute {s.workload.recompute}"
    )
