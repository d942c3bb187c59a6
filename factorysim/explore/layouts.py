"""Enumerate the layouts of one scenario and estimate each: the inner loop of a search.

`placements` walks the placement knobs (tp, cp, pp, dp, ep) in the knob table's order, refusing a partial
choice at the first rule it breaks. `evaluate` is the work of one batch of placements, in a worker
process or on a Dask worker: for each placement it builds the group links once (the topology's costly
part), walks the remaining knobs, refuses what does not fit in memory, estimates the rest, and keeps what
the ranking and the report need (the best layouts, the frontier, a sample per placement), never the whole
list: 100,000 layouts stay in the worker.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..perf import estimate_step, memory_per_chip, step_links
from ..perf.power import CostMeter
from ..scenario.checks import resolve_layout
from ..scenario.models import Scenario
from . import cache
from .goodput import expected_goodput
from .knobs import BY_KEY, KNOBS, MEMORY_RULE, Choice, Space, scenario_value
from .objectives import OBJECTIVES, Measures

BLOCKED_RULE = "every rank has a path to its peers"
CLOUD_BINS = 40
"""The report's scatter keeps, per placement, the best layout in each of this many memory bins."""


@dataclass(frozen=True)
class Domain:
    """What a search turns: for each knob key, its candidates (None: the knob table's) or a held value."""

    turned: tuple[str, ...]  # knob keys searched, table order
    given: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # explicit candidates (--vary k=a,b / --fix)

    def values(self, key: str, space: Space, choice: Choice) -> Sequence[Any]:
        if key in self.given:
            return self.given[key]
        if key in self.turned:
            return BY_KEY[key].values(space, choice)
        return (scenario_value(space.scenario, key),)

    def knobs(self, level: str) -> list[str]:
        return [k.key for k in KNOBS if k.level == level]


def _walk(keys: Sequence[str], domain: Domain, space: Space, choice: dict[str, Any],
          refused: Counter) -> Iterator[dict[str, Any]]:  # fmt: skip
    if not keys:
        yield dict(choice)
        return
    key, rest = keys[0], keys[1:]
    rules = BY_KEY[key].rules
    for value in domain.values(key, space, choice):
        choice[key] = value
        broken = next((r for r in rules if not r.ok(space, choice)), None)
        if broken is not None:
            refused[broken.name] += 1
            continue
        yield from _walk(rest, domain, space, choice, refused)
    choice.pop(key, None)


def placements(space: Space, domain: Domain, refused: Counter) -> list[dict[str, Any]]:
    """Every placement (tp, cp, pp, dp, ep) the rules accept, in enumeration order."""
    return list(_walk(domain.knobs("placement"), domain, space, {}, refused))


def with_choice(s: Scenario, choice: Choice, sections: dict | None = None) -> Scenario:
    """The scenario with layout knobs laid over it (no re-validation: the rules stand in for it).

    `sections`, when given, caches the copied sections by their values: a search lays a few workload and
    feature variations over thousands of parallel layouts, and a pydantic copy costs microseconds.
    """
    parts: dict[str, dict[str, Any]] = {}
    for key, value in choice.items():
        section, name = key.split(".")
        parts.setdefault(section, {})[name] = value
    update = {}
    for sec, vals in parts.items():
        if sections is None:
            update[sec] = getattr(s, sec).model_copy(update=vals)
            continue
        key = (sec, tuple(vals.items()))
        found = sections.get(key)
        if found is None:
            found = sections[key] = getattr(s, sec).model_copy(update=vals)
        update[sec] = found
    return s.model_copy(update=update)


@dataclass(frozen=True)
class Record:
    """One estimated layout, as the ranking and the report keep it."""

    order: tuple[int, int, int]  # (variant, placement, layout) in enumeration order: ties break on it
    variant: int
    choice: tuple[tuple[str, Any], ...]
    tokens_per_s: float
    mfu: float
    step_time_s: float
    memory_gb: float
    chips: int
    goodput: float | None
    objective: float

    @property
    def knobs(self) -> dict[str, Any]:
        return dict(self.choice)


@dataclass
class BatchJob:
    """A batch of placements of one scenario variant: plain data, so it travels to any worker."""

    variant: int
    data: dict[str, Any]  # the variant scenario, validated by the worker
    placements: list[tuple[int, dict[str, Any]]]  # (placement number, its knobs)
    turned: tuple[str, ...]
    given: dict[str, tuple[Any, ...]]
    objective: str
    keep: int  # best layouts kept per batch


@dataclass
class BatchResult:
    variant: int
    estimated: int = 0
    refused: Counter = field(default_factory=Counter)
    best: list[Record] = field(default_factory=list)
    frontier: list[Record] = field(default_factory=list)  # best objective for memory per chip, lower memory first
    cloud: list[Record] = field(default_factory=list)


def sort_key(objective: str):
    obj = OBJECTIVES[objective]
    return lambda r: (obj.key(r.objective), r.order)


def pareto(records: Sequence[Record], objective: str) -> list[Record]:
    """Records no other beats on both memory per chip (lower) and the objective."""
    key = sort_key(objective)
    out: list[Record] = []
    for r in sorted(records, key=lambda r: (r.memory_gb, key(r))):
        if not out or key(r) < key(out[-1]):
            out.append(r)
    return out


def evaluate(job: BatchJob) -> BatchResult:
    """Estimate every layout on a batch of placements (runs in a worker)."""
    base = cache.scenario_of(job.data, checks=False)
    space = Space(base)
    domain = Domain(job.turned, job.given)
    obj = OBJECTIVES[job.objective]
    index = cache.shared_index(base)
    cap_gb = base.cluster.chip_spec.memory_gb
    target = base.workload.target_tokens
    inner = domain.knobs("layout")
    meter = CostMeter(base, index) if obj.needs_cost else None
    result = BatchResult(job.variant)
    key = sort_key(job.objective)
    kept: list[Record] = []
    sections: dict = {}
    for number, placed in job.placements:
        sections.clear()
        bins: dict[int, Record] = {}
        here: list[Record] = []
        links = goodput = None
        for n, choice in enumerate(_walk(inner, domain, space, dict(placed), result.refused)):
            s = with_choice(base, choice, sections)
            layout = resolve_layout(s)
            mem = memory_per_chip(s, layout).total / 1e9
            if mem > cap_gb:
                result.refused[MEMORY_RULE] += 1
                continue
            if links is None:
                links = step_links(index, layout)
            step = estimate_step(s, layout, links)
            if step.blocked:
                result.refused[BLOCKED_RULE] += 1
                continue
            if obj.needs_goodput and goodput is None:
                goodput = expected_goodput(s, layout, index.plan).goodput
            cost = meter.usd_per_million_tokens(s, step) if meter is not None else None
            m = Measures(step.tokens_per_s, step.mfu, step.step_time_s, mem, step.chips, goodput, target, cost)
            value = obj.value(m)
            if not math.isfinite(value):
                continue
            rec = Record((job.variant, number, n), job.variant, tuple(sorted(choice.items())), m.tokens_per_s,
                         m.mfu, m.step_time_s, mem, m.chips, goodput, value)  # fmt: skip
            result.estimated += 1
            kept.append(rec)
            here.append(rec)
            if len(kept) > 4 * job.keep + 64:
                kept = sorted(kept, key=key)[: job.keep]
            b = min(CLOUD_BINS - 1, int(mem / cap_gb * CLOUD_BINS))
            if b not in bins or key(rec) < key(bins[b]):
                bins[b] = rec
        result.cloud += bins.values()
        result.frontier = pareto(result.frontier + pareto(here, job.objective), job.objective)
        cache.release(index)
    result.best = sorted(kept, key=key)[: job.keep]
    return result
