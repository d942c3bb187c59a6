"""What a layout search ranks by. One entry per objective; a new one (cost per token, once the scenario
knows prices and power) is one more row: its name, which way is better, what it needs, and its value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # `factorysim --help` lists the objectives without loading the scenario models
    from ..scenario.models import Scenario


@dataclass(frozen=True)
class Measures:
    """What the search knows about one layout."""

    tokens_per_s: float
    mfu: float
    step_time_s: float
    memory_gb: float
    chips: int
    goodput: float | None  # expected output share with faults (only when an objective needs it)
    target_tokens: float | None
    usd_per_million_tokens: float | None = None  # electricity and amortised hardware (only when an objective needs it)


@dataclass(frozen=True)
class Objective:
    name: str
    label: str
    unit: str
    better: Literal["higher", "lower"]
    value: Callable[[Measures], float]
    needs_goodput: bool = False
    needs_cost: bool = False
    missing: Callable[[Scenario], str | None] = lambda s: None  # why this scenario cannot be ranked by it
    fmt: Callable[[float], str] = lambda v: f"{v:,.4g}"

    def key(self, value: float) -> float:
        """Sort key: smaller is better."""
        return -value if self.better == "higher" else value


def _days(v: float) -> str:
    return f"{v / 86400:,.1f} days"


def _time_to_target(m: Measures) -> float:
    rate = m.tokens_per_s * (m.goodput if m.goodput is not None else 1.0)
    return (m.target_tokens or 0.0) / rate if rate > 0 else float("inf")


def _needs_target(s: Scenario) -> str | None:
    if s.workload.target_tokens:
        return None
    return "time_to_target needs workload.target_tokens (e.g. --set workload.target_tokens=15e12)"


def _needs_power(s: Scenario) -> str | None:
    from ..perf.power import PowerUnknown, power_model

    try:
        power_model(s)
    except PowerUnknown as exc:
        return f"cost_per_token: {exc}"
    return None


def _cost(m: Measures) -> float:
    return m.usd_per_million_tokens if m.usd_per_million_tokens is not None else float("inf")


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective(
            "tokens_per_s", "tokens/s", "tokens/s", "higher", lambda m: m.tokens_per_s, fmt=lambda v: f"{v:,.0f}"
        ),
        Objective("mfu", "MFU", "", "higher", lambda m: m.mfu, fmt=lambda v: f"{v:.1%}"),
        Objective(
            "time_to_target",
            "time to target",
            "s",
            "lower",
            _time_to_target,
            needs_goodput=True,
            missing=_needs_target,
            fmt=_days,
        ),
        Objective(
            "cost_per_token",
            "$ per M tokens",
            "USD per million tokens",
            "lower",
            _cost,
            needs_cost=True,
            missing=_needs_power,
            fmt=lambda v: f"${v:,.4g}",
        ),
    )
}
