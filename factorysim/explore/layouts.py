"""Enumerate the layouts of one scenario and estimate the ones that can matter: the inner loop of a search.

`placements` walks the placement knobs (tp, cp, pp, dp, ep) in the knob table's order, refusing a partial
choice at the first rule it breaks. `evaluate` is the work of one batch of placements, in a worker
process or on a Dask worker. It ranks exactly what estimating every layout would rank, estimating far
fewer:

1. Each placement's knobs that change a chip's compute (micro-batch, interleaving, recompute, sequence
   parallelism, the stage split, precision, attention) are walked, and each such choice gets a floor: a
   step takes at least its pipeline's compute, m·max(c) + (Σc − max c)/v over the stages' compute c
   alone, since communication, the optimizer, stragglers and exposed collectives only add to it
   (perf.step). The compute of a layer is computed once for every layout that shares it.
2. The choices are taken best floor first. The layouts that differ only in knobs that do not change the
   compute (ZeRO stage, TP overlap, gradient dtype, hardware features) share a floor: when the floor
   cannot beat the batch's N-th best layout found so far, none of them can, and they are not estimated
   (counted as such). Everything after it in the order is then out of reach too.
3. Each of the others gets a floor of its own: its compute floor plus what its data-parallel collectives
   cannot hide under the busiest stage's forward or backward, whatever share of compute overlap steals and
   however many buckets they run in (perf.step.least_dp_exposed; DpFloor). A shallow pipeline holds many
   parameters per chip, and their gradients are what keep its step far above its compute. When no layout of
   a ZeRO stage (with its memory knobs) can reach the N-th best this way, its memory is not checked.
4. The others are checked for memory and estimated. Without interleaving, memory per chip grows with the
   micro-batch (the activations in flight do: mb · min(p − i, m) is non-decreasing in mb, and so is the
   worst stage), so once such a layout does not fit, the same layout with a larger micro-batch is refused
   without computing, and once it fits, a smaller one is estimated without the separate check (the
   estimate's `fits` says). Interleaved chunks are held in groups of micro-batches, so there every
   layout's memory is checked.

With `frontier`, a layout is skipped only when, besides, it cannot be on the batch's frontier (a layout
with no more memory per chip already beats its floor) nor the best of its placement's memory bin: the
report's frontier and scatter are then what estimating everything would draw. That needs each layout's
memory, so it costs more.

What a batch returns is what the ranking and the report need (the best layouts, the frontier, a sample per
placement), never the whole list: a million layouts stay in the worker.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..perf import StepLinks, estimate_step, memory_per_chip, step_links
from ..perf.flops import model_flops_per_token
from ..perf.memory import GB
from ..perf.pipeline import pipeline_time
from ..perf.power import CostMeter
from ..perf.step import DpCollectives, layer_compute, least_dp_collectives, least_dp_exposed, logits_compute
from ..scenario.models import Scenario
from ..scenario.parallel import ParallelLayout
from . import cache
from .goodput import expected_goodput
from .knobs import BY_KEY, KNOBS, MEMORY_RULE, Choice, Space, scenario_value, stage_split
from .objectives import OBJECTIVES, Measures

BLOCKED_RULE = "every rank has a path to its peers"
PROGRESS_RULE = "the job is expected to make progress (goodput above zero)"
CLOUD_BINS = 40
"""The report's scatter keeps, per placement, the best layout in each of this many memory bins."""
FLOOR_MARGIN = 1e-9
"""A floor is lowered by this share before it is compared: rounding in a different order of additions
must never make it exceed the step time it bounds."""
DP_KNOBS = ("workload.grad_dtype", "features.in_network_reduction")
"""The knobs, besides the placement and the stage split, that change the data-parallel collectives' bytes or rates
(perf.step.least_dp_collectives reads no other)."""
NOT_PER_LAYER = {"parallelism.pp", "parallelism.dp", "parallelism.interleave", "parallelism.stage_layers",
                 "parallelism.first_stage_layers", "parallelism.last_stage_layers"}  # fmt: skip
"""Knobs that change which layers a stage runs and how often, not what one layer costs."""


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

    def layout_knobs(self, compute: bool, memory: bool | None = None) -> list[str]:
        """The layout knobs that change a chip's compute (True) or not (False); of the latter, those that
        change memory per chip (memory True) or only communication (False)."""
        return [k.key for k in KNOBS if k.level == "layout" and k.compute == compute
                and (memory is None or k.memory == memory)]  # fmt: skip


class Walker:
    """Every choice of some knobs on top of a partial one, in the table's order, refusing a choice at the first
    rule it breaks (each refusal counted once, where it is decided)."""

    def __init__(self, domain: Domain, space: Space) -> None:
        self.domain, self.space = domain, space
        self._fixed: dict[str, tuple[Any, ...]] = {}  # knobs whose candidates do not depend on the choice
        for k in KNOBS:
            if k.key in domain.given:
                self._fixed[k.key] = tuple(domain.given[k.key])
            elif k.key not in domain.turned:
                self._fixed[k.key] = (scenario_value(space.scenario, k.key),)

    def values(self, key: str, choice: Choice) -> Sequence[Any]:
        fixed = self._fixed.get(key)
        return fixed if fixed is not None else BY_KEY[key].values(self.space, choice)

    def walk(self, keys: Sequence[str], start: Choice, refused: Counter) -> list[dict[str, Any]]:
        level = [dict(start)]
        space = self.space
        for key in keys:
            rules = BY_KEY[key].rules
            fixed = self._fixed.get(key)
            nxt = []
            for choice in level:
                for value in fixed if fixed is not None else BY_KEY[key].values(space, choice):
                    made = {**choice, key: value}
                    broken = next((r for r in rules if not r.ok(space, made)), None) if rules else None
                    if broken is not None:
                        refused[broken.name] += 1
                    else:
                        nxt.append(made)
            level = nxt
        return level

    def count(self, keys: Sequence[str], start: Choice) -> int:
        """How many choices `walk` gives, without making them when no knob has a rule."""
        if any(BY_KEY[k].rules for k in keys):
            return len(self.walk(keys, start, Counter()))
        n = 1
        for k in keys:
            n *= len(self.values(k, start))
        return n


def placements(space: Space, domain: Domain, refused: Counter) -> list[dict[str, Any]]:
    """Every placement (tp, cp, pp, dp, ep) the rules accept, in enumeration order."""
    return Walker(domain, space).walk(domain.knobs("placement"), {}, refused)


_SECTION: dict[str, tuple[str, str]] = {}


def _section(key: str) -> tuple[str, str]:
    found = _SECTION.get(key)
    if found is None:
        section, name = key.split(".")
        found = _SECTION[key] = (section, name)
    return found


def with_choice(s: Scenario, choice: Choice, sections: dict | None = None) -> Scenario:
    """The scenario with layout knobs laid over it (no re-validation: the rules stand in for it).

    `sections`, when given, caches the copied sections by their values: a search lays a few workload and
    feature variations over thousands of parallel layouts, and a pydantic copy costs microseconds.
    """
    parts: dict[str, list[tuple[str, Any]]] = {}
    for key, value in choice.items():
        section, name = _section(key)
        parts.setdefault(section, []).append((name, value))
    update = {}
    for sec, items in parts.items():
        cache_key = (sec, *items)
        found = sections.get(cache_key) if sections is not None else None
        if found is None:
            found = _copy(getattr(s, sec), {n: list(v) if isinstance(v, tuple) else v for n, v in items})
            if sections is not None:
                sections[cache_key] = found
        update[sec] = found
    return _copy(s, update)


def _copy(model: Any, update: dict[str, Any]) -> Any:
    """`model.model_copy(update=update)` for a model with no extra or private attributes, in a fifth of the time
    (the same fields, set the same way, unvalidated)."""
    if model.__pydantic_extra__ is not None or model.__pydantic_private__ is not None:
        return model.model_copy(update=update)
    new = object.__new__(type(model))
    values = model.__dict__.copy()
    values.update(update)
    object.__setattr__(new, "__dict__", values)
    object.__setattr__(new, "__pydantic_extra__", None)
    object.__setattr__(new, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    object.__setattr__(new, "__pydantic_private__", None)
    return new


def layout_of(space: Space, choice: Choice) -> ParallelLayout:
    """The resolved layout of a complete choice: what `resolve_layout` gives the scenario it describes."""
    dp, mb = choice["parallelism.dp"], choice["workload.micro_batch"]
    return ParallelLayout(
        tp=choice["parallelism.tp"],
        cp=choice["parallelism.cp"],
        pp=choice["parallelism.pp"],
        dp=dp,
        ep=choice["parallelism.ep"],
        interleave=choice["parallelism.interleave"],
        micro_batch=mb,
        micro_batches=max(1, space.global_batch // (dp * mb)),
        stage_layers=stage_split(space, choice),
    )


class ComputeFloor:
    """The least time a step of a layout can take: its pipeline of compute alone (module docstring, 1).

    A layer's compute is the step model's own (perf.step.layer_compute, logits_compute), computed once per
    combination of the knobs it depends on."""

    def __init__(self, base: Scenario) -> None:
        self.base = base
        self.chip = base.cluster.chip_spec
        self.model = base.workload.model_spec()
        self._per_layer: dict[tuple, tuple[float, float]] = {}
        self._sections: dict = {}
        self._keys = [k.key for k in KNOBS if k.compute and k.level != "variant" and k.key not in NOT_PER_LAYER]

    def seconds(self, choice: Choice, layout: ParallelLayout) -> float:
        return self.bound(choice, layout)[0]

    def bound(self, choice: Choice, layout: ParallelLayout) -> tuple[float, float]:
        """(the floor, a micro-batch's compute on the busiest stage): the second bounds from above the windows a
        step's collectives may hide under (DpFloor)."""
        key = tuple(choice[k] for k in self._keys)
        found = self._per_layer.get(key)
        if found is None:
            s = with_choice(self.base, dict(zip(self._keys, key, strict=True)), self._sections)
            layer = layer_compute(s, layout, self.chip, self.model, native=False).total
            found = self._per_layer[key] = (layer, logits_compute(s, layout, self.chip, self.model))
        layer, logits = found
        stages = [n * layer for n in layout.stage_layers]
        stages[-1] += logits
        floor = pipeline_time(stages, layout.micro_batches, layout.interleave) * (1.0 - FLOOR_MARGIN)
        return floor, max(stages) * (1.0 + FLOOR_MARGIN)


class DpFloor:
    """The least a complete layout's data-parallel collectives add to its compute floor (perf.step.least_dp_exposed):
    what each cannot hide under the busiest stage's forward or backward. Shallow pipelines hold many parameters
    per chip, and this is most of what separates their step from their compute (module docstring, 3).

    The collectives are computed once per placement, stage split and value of the knobs that change their bytes
    or rates (DP_KNOBS); ZeRO's stage and recompute only decide which of them hide under which window."""

    def __init__(self, base: Scenario) -> None:
        self.base = base
        self._collectives: dict[tuple, DpCollectives] = {}
        self._sections: dict = {}

    def seconds(self, number: int, choice: Choice, layout: ParallelLayout, links: StepLinks, busiest: float) -> float:
        key = (number, layout.stage_layers, *(choice[k] for k in DP_KNOBS))
        dp = self._collectives.get(key)
        if dp is None:
            s = with_choice(self.base, {k: choice[k] for k in DP_KNOBS}, self._sections)
            dp = self._collectives[key] = least_dp_collectives(s, layout, links)
        full = choice["workload.recompute"] == "full"
        least = least_dp_exposed(dp, choice["parallelism.zero"], busiest, full, layout.micro_batches)
        return least if math.isfinite(least) else 0.0  # a group with a dead link: estimated, and refused as blocked


@dataclass(frozen=True)
class Record:
    """One estimated layout, as the ranking and the report keep it."""

    order: tuple[int, ...]  # (variant, placement, compute choice, other knobs) in enumeration order: ties break on it
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
    frontier: bool = False  # also keep the frontier and the scatter exact (every layout's memory is needed)
    reached: float | None = None  # an objective N layouts of the variant are known to reach (from earlier batches)


@dataclass
class BatchResult:
    variant: int
    estimated: int = 0
    pruned: int = 0  # not estimated: their floor (compute, unhidden gradient traffic) could not reach the best
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


@dataclass
class _Node:
    """A placement with its compute knobs chosen: the layouts under it share one floor."""

    bound: float  # the objective's sort key at the floor (smaller is better): no layout under it does better
    number: int  # placement
    n: int  # enumeration order within the placement
    choice: dict[str, Any]
    layout: ParallelLayout
    goodput: float | None
    floor_s: float  # its compute floor
    busiest_s: float  # a micro-batch's compute on its busiest stage


class _Frontier:
    """The best objective key among records with at most a given memory per chip (a staircase)."""

    def __init__(self) -> None:
        self.memory: list[float] = []
        self.key: list[float] = []

    def best_within(self, memory: float) -> float:
        i = bisect.bisect_right(self.memory, memory)
        return self.key[i - 1] if i else math.inf

    def add(self, memory: float, key: float) -> None:
        if self.best_within(memory) <= key:
            return
        i = bisect.bisect_left(self.memory, memory)
        j = i
        while j < len(self.memory) and self.key[j] >= key:
            j += 1  # the steps this one beats with no more memory
        self.memory[i:j] = [memory]
        self.key[i:j] = [key]


class _Fits:
    """What memory checks have shown, per layout less its micro-batch: the largest micro-batch that fits and
    the smallest that does not (memory is non-decreasing in the micro-batch)."""

    def __init__(self) -> None:
        self._known: dict[tuple, list[float]] = {}

    def known(self, key: tuple, mb: int) -> bool | None:
        fits, fails = self._known.get(key, (0, math.inf))
        return True if mb <= fits else False if mb >= fails else None

    def learn(self, key: tuple, mb: int, fits: bool) -> None:
        bounds = self._known.setdefault(key, [0, math.inf])
        if fits:
            bounds[0] = max(bounds[0], mb)
        else:
            bounds[1] = min(bounds[1], mb)


def evaluate(job: BatchJob) -> BatchResult:
    """Rank the layouts of a batch of placements (runs in a worker; module docstring)."""
    base = cache.scenario_of(job.data, checks=False)
    space = Space(base)
    walker = Walker(Domain(job.turned, job.given), space)
    obj = OBJECTIVES[job.objective]
    index = cache.shared_index(base)
    cap_gb = base.cluster.chip_spec.memory_gb
    capacity = cap_gb * GB  # as StepEstimate.fits compares
    target = base.workload.target_tokens
    meter = CostMeter(base, index) if obj.needs_cost else None
    result = BatchResult(job.variant)
    floor = ComputeFloor(base)
    domain = walker.domain
    outer = domain.layout_knobs(compute=True)
    held_in_memory, comm_only = domain.layout_knobs(False, memory=True), domain.layout_knobs(False, memory=False)
    tokens = space.global_batch * space.seq
    ideal = tokens * model_flops_per_token(floor.model, space.seq, base.workload.attention_flops)
    ideal /= space.job_chips * floor.chip.bf16_peak_flops
    goodputs: dict[int, float] = {}
    cost_per_hour = least_cost_per_hour(meter) if meter is not None else 0.0
    dp_floor = DpFloor(base)

    def bound_at(t: float, layout: ParallelLayout, goodput: float | None) -> float:
        """The objective's sort key of a layout whose step takes `t` and uses no memory."""
        cost = cost_per_hour * t / (tokens * 3600) * 1e6 if meter is not None else None
        return obj.key(obj.value(Measures(tokens / t, ideal / t, t, 0.0, layout.chips, goodput, target, cost)))

    nodes: list[_Node] = []
    for number, placed in job.placements:
        for n, choice in enumerate(walker.walk(outer, placed, result.refused)):
            layout = layout_of(space, choice)
            goodput = None
            if obj.needs_goodput:
                if number not in goodputs:
                    goodputs[number] = expected_goodput(with_choice(base, choice), layout, index.plan).goodput
                goodput = goodputs[number]
            t, busiest = floor.bound(choice, layout)
            nodes.append(_Node(bound_at(t, layout, goodput), number, n, choice, layout, goodput, t, busiest))
    nodes.sort(key=lambda x: (x.bound, x.number, x.n))

    key = sort_key(job.objective)
    kept: list[Record] = []  # the batch's best so far, best first (at most `keep`)
    front = _Frontier()
    bins: dict[tuple[int, int], Record] = {}
    fits = _Fits()
    links: dict[int, Any] = {}
    estimated: list[Record] = []

    reached = obj.key(job.reached) if job.reached is not None else math.inf

    def beaten(bound: float) -> bool:
        """No layout with this floor can enter the best `keep` (of this batch, or of the variant)."""
        return bound > reached or (len(kept) >= job.keep and bound > obj.key(kept[-1].objective))

    inner = held_in_memory + comm_only
    for i, node in enumerate(nodes):
        if beaten(node.bound) and not job.frontier:  # the rest are worse still: none is estimated
            counts: dict[tuple, int] = {}
            for x in nodes[i:]:
                shape = tuple(x.choice.values())  # the candidates of the knobs below depend on these at most
                if shape not in counts:
                    counts[shape] = walker.count(inner, x.choice)
                result.pruned += counts[shape]
            break
        layout, mb = node.layout, node.choice["workload.micro_batch"]
        node_scenario = with_choice(base, node.choice)
        sections: dict = {}  # the node's sections with the knobs below laid over them, by value
        m = 0
        for held in walker.walk(held_in_memory, node.choice, result.refused):
            # the knobs below change no memory: one check stands for all of them
            leaves = walker.walk(comm_only, held, result.refused)
            if beaten(node.bound) and not job.frontier:  # beaten since this node began
                result.pruned += len(leaves)
                m += len(leaves)
                continue
            if node.number not in links:
                links[node.number] = step_links(index, layout)
                index.forget_placements()  # the links are all a batch needs of a placement
            # each leaf's floor with the data-parallel collectives it cannot hide: when none can reach the
            # best, no memory is checked
            bounds = [bound_at(node.floor_s + dp_floor.seconds(node.number, choice, layout, links[node.number],
                                                               node.busiest_s), layout, node.goodput)
                      for choice in leaves]  # fmt: skip
            if not job.frontier and all(beaten(b) for b in bounds):
                result.pruned += len(leaves)
                m += len(leaves)
                continue
            own = {k: held[k] for k in held_in_memory}
            fit_key = (node.number, *(v for k, v in held.items() if k != "workload.micro_batch"))
            memory = None
            # memory grows with the micro-batch only without interleaving: interleaved chunks are held in
            # groups of micro-batches (perf.pipeline.held_layers), and fewer, larger ones may hold less
            monotone = layout.interleave == 1
            fit = fits.known(fit_key, mb) if monotone else None
            if fit is None or (job.frontier and fit and beaten(node.bound)):
                memory = memory_per_chip(with_choice(node_scenario, own, sections), layout).total
                fit = memory <= capacity
                if monotone:
                    fits.learn(fit_key, mb, fit)
            if not fit:
                result.refused[MEMORY_RULE] += len(leaves)
                m += len(leaves)
                continue
            for choice, bound in zip(leaves, bounds, strict=True):
                m += 1
                if beaten(bound):
                    if not job.frontier:  # beaten since this node began: nothing under it can reach the best
                        result.pruned += 1
                        continue
                    if memory is None:
                        memory = memory_per_chip(with_choice(node_scenario, own, sections), layout).total
                    cell = (node.number, _bin(memory, cap_gb))
                    if front.best_within(memory / GB) < bound and (
                        cell in bins and obj.key(bins[cell].objective) < bound
                    ):
                        result.pruned += 1
                        continue
                leaf = with_choice(node_scenario, {k: choice[k] for k in inner}, sections)
                step = estimate_step(leaf, layout, links[node.number])
                if not step.fits:  # the memory check above is the same one: this would be a change in perf/
                    result.refused[MEMORY_RULE] += 1
                    continue
                if step.blocked:
                    result.refused[BLOCKED_RULE] += 1
                    continue
                mem_gb = step.memory.total / GB
                cost = meter.usd_per_million_tokens(leaf, step) if meter is not None else None
                measures = Measures(step.tokens_per_s, step.mfu, step.step_time_s, mem_gb, step.chips,
                                    node.goodput, target, cost)  # fmt: skip
                value = obj.value(measures)
                if not math.isfinite(value):
                    result.refused[PROGRESS_RULE] += 1
                    continue
                rec = Record((job.variant, node.number, node.n, m - 1), job.variant, tuple(sorted(choice.items())),
                             step.tokens_per_s, step.mfu, step.step_time_s, mem_gb, step.chips, node.goodput, value)  # fmt: skip
                result.estimated += 1
                if len(kept) < job.keep or key(rec) < key(kept[-1]):
                    bisect.insort(kept, rec, key=key)
                    del kept[job.keep :]
                if job.frontier:
                    estimated.append(rec)
                    front.add(mem_gb, obj.key(value))
                    cell = (node.number, _bin(step.memory.total, cap_gb))
                    if cell not in bins or key(rec) < key(bins[cell]):
                        bins[cell] = rec
    result.best = kept
    if job.frontier:
        result.frontier = pareto(estimated, job.objective)
        result.cloud = sorted(bins.values(), key=lambda r: r.order)
    return result


def least_cost_per_hour(meter: CostMeter) -> float:
    """The least the cluster can cost per hour while it trains, whatever the layout (perf.power.CostMeter): a chip's
    mean draw over a step is a mix of its GEMM, memory-bound and waiting draws, so it is at least the least of them.
    Over the floor's step time it bounds a layout's cost per token from below, as the floor bounds tokens/s."""
    pm = meter.model
    chip_w = min(pm.chip.gemm_w, pm.chip.memory_w, pm.chip.waiting_w)
    it = meter.job_servers * pm.server_w(chip_w) + meter.spare_servers * pm.idle_server_w + meter.fabric_w
    return it * pm.pue / 1000 * pm.usd_per_kwh + meter.capex_usd_per_hour


def _bin(memory: float, cap_gb: float) -> int:
    return min(CLOUD_BINS - 1, int(memory / GB / cap_gb * CLOUD_BINS))
