"""The layout search: every valid layout of a scenario's job on its cluster, ranked by an objective.

`--vary KEY` adds a knob's candidates (or `KEY=a,b,c` any scenario key's values) to the search; keys that
change the cluster (the chip, the node count) make variants, each validated and indexed once. A chip
compared brings its own scale-up link when the file names its chip's usual one. `--fix KEY=VALUE` holds
a knob. The work is batches of placements, run by a runner (local or Dask).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..perf import StepEstimate, estimate
from ..perf.power import CostMeter
from ..scenario.checks import layout_problems
from ..scenario.errors import Problem, ScenarioError
from ..scenario.files import apply_overrides, parse_override, scenario_data, validate_scenario, value_at
from ..scenario.models import Scenario
from ..scenario.parallel import resolve_layout
from . import cache
from .goodput import expected_goodput
from .knobs import BY_KEY, KNOBS, LABELS, NOT_KNOBS, Space, scenario_value
from .layouts import BatchJob, BatchResult, Domain, Record, evaluate, pareto, placements, sort_key
from .objectives import OBJECTIVES, Measures, Objective
from .runner import LocalRunner, Runner, batches
from .values import plain, split_values, toml_value

PLACEMENTS_PER_BATCH = 12
"""Placements estimated together: the layouts of a batch prune each other, so larger batches estimate fewer."""
FIRST_WAVE = 1
"""Batches of each variant in the first wave; each wave after it is twice as large."""
NEUTRAL_LAYOUT = {"tp": 1, "cp": 1, "pp": 1, "dp": "auto", "ep": 1, "interleave": 1}
LAYOUT_PATHS = ("parallelism.", "workload.global_batch", "workload.micro_batch")


@dataclass(frozen=True)
class Request:
    """What to search: the objective, what to vary and fix, and how many to show."""

    objective: str = "tokens_per_s"
    vary: tuple[str, ...] = ()  # "KEY" (a knob's own candidates) or "KEY=v1,v2" (any key)
    fix: tuple[str, ...] = ()  # "KEY=VALUE" for a knob
    top: int = 5
    frontier: bool = False  # also the frontier and the scatter of every layout (memory of each: slower)


@dataclass
class SearchResult:
    scenario: Scenario  # the input, as given
    objective: Objective
    domain: Domain
    variants: list[tuple[tuple[tuple[str, Any], ...], Scenario]]  # (scenario keys set, the variant)
    placements: int = 0
    placement_refused: Counter = field(default_factory=Counter)
    estimated: int = 0
    pruned: int = 0  # not estimated: their floor (compute, unhidden gradient traffic) could not reach the best
    layout_refused: Counter = field(default_factory=Counter)
    best: list[Record] = field(default_factory=list)
    best_per_variant: list[Record | None] = field(default_factory=list)
    frontier: list[Record] = field(default_factory=list)
    cloud: list[Record] = field(default_factory=list)
    baseline: Record | None = None
    baseline_fits: bool = True  # the scenario's own layout fits in its chips' memory
    frontier_exact: bool = False  # the frontier and the scatter were kept (Request.frontier)

    @property
    def layouts_tried(self) -> int:
        return self.estimated + self.pruned + sum(self.layout_refused.values())

    def settings(self, record: Record) -> dict[str, Any]:
        """Every key the search set for this layout: the variant's keys, then the knobs."""
        if record.variant < 0:  # the input's own layout
            return dict(record.choice)
        out = dict(self.variants[record.variant][0])
        knobs = record.knobs
        out.update((k.key, knobs[k.key]) for k in KNOBS if k.key in knobs)
        return out

    def scenario_for(self, record: Record) -> Scenario:
        """The input scenario with this layout (and its variant's keys), validated like a file."""
        data = scenario_data(self.variants[record.variant][1])
        auto = self.scenario.parallelism.dp == "auto"
        settings = dict(record.knobs)
        if auto:
            settings["parallelism.dp"] = "auto"
        return validate_scenario(set_keys(data, settings), "search result")

    def edits(self, record: Record) -> dict[str, Any]:
        """The keys to set on the input scenario for this layout (None: unset), the variant's keys included:
        what the sandbox applies as one edit."""
        out = {}
        for key, value in self.settings(record).items():
            if key == "parallelism.dp" and self.scenario.parallelism.dp == "auto":
                value = "auto"
            mine = value_at(scenario_data(self.scenario), key)
            value = list(value) if isinstance(value, tuple) else value
            if mine != value:
                out[key] = value
        return out

    def estimate_of(self, record: Record) -> StepEstimate:
        s = self.scenario_for(record)
        return estimate(s, cache.shared_index(s))


def set_keys(data: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Scenario data with dotted keys set (a None value removes the key: the model's default applies)."""
    out = json_copy(data)
    for key, value in settings.items():
        node = out
        *parents, name = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(name, None)
        else:
            node[name] = list(value) if isinstance(value, tuple) else value
    return out


def _problem(path: str, msg: str) -> ScenarioError:
    return ScenarioError([Problem(path, msg)])


def _parse_vary(items: Sequence[str]) -> tuple[list[str], dict[str, tuple[Any, ...]]]:
    widened: list[str] = []
    values: dict[str, tuple[Any, ...]] = {}
    for item in items:
        key = item.split("=", 1)[0].strip()
        if key in widened or key in values:  # one list per key: a second would silently replace the first
            raise _problem("--vary", f"{key} is varied twice; give all its values in one --vary {key}=a,b,c")
        if "=" not in item:
            _not_a_knob(key, "--vary")
            if key not in BY_KEY:
                known = ", ".join(k.key for k in KNOBS)
                raise _problem(
                    "--vary", f'"{key}" has no candidates of its own; give values (KEY=a,b,c) or one of: {known}'
                )
            widened.append(key)
            continue
        key, raw = item.split("=", 1)
        key = key.strip()
        _not_a_knob(key, "--vary")
        vals = tuple(_hashable(parse_override(f"{key}={v}")[1]) for v in split_values(raw))
        if not vals:
            raise _problem("--vary", f"{item!r} gives no values (KEY=a,b,c)")
        values[key] = vals
    return widened, values


def _not_a_knob(key: str, flag: str) -> None:
    if key in NOT_KNOBS:
        raise _problem(flag, f'"{key}" is not searched: {NOT_KNOBS[key]}; set it with --set {key}=...')


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def plan(s: Scenario, req: Request) -> tuple[Domain, list[tuple[tuple[tuple[str, Any], ...], Scenario]]]:
    """The knobs to turn and the scenario variants to turn them on; a ScenarioError names bad input."""
    widened, varied = _parse_vary(req.vary)
    given: dict[str, tuple[Any, ...]] = {}
    for item in req.fix:
        if "=" not in item:
            raise _problem("--fix", f"{item!r} is not KEY=VALUE (e.g. parallelism.tp=8)")
        parts, value = parse_override(item)
        key = ".".join(parts)
        _not_a_knob(key, "--fix")
        if key not in BY_KEY:
            raise _problem("--fix", f'"{key}" is not a knob the search turns; set it with --set {key}=...')
        if key in given:
            raise _problem("--fix", f"{key} is fixed twice; fix it once")
        given[key] = (_hashable(value),)
    clash = sorted(set(given) & (set(varied) | set(widened)))
    if clash:
        raise _problem("--fix", f"{', '.join(clash)} is both fixed and varied")
    turned = [k.key for k in KNOBS if k.searched or k.key in widened]
    outer: list[tuple[str, tuple[Any, ...]]] = []
    for key, vals in varied.items():
        knob = BY_KEY.get(key)
        if knob is not None and knob.level != "variant":
            given[key] = vals
            if key not in turned:
                turned.append(key)
        else:
            outer.append((key, vals))
    for key in widened:
        if BY_KEY[key].level == "variant":
            outer.append((key, tuple(BY_KEY[key].values(Space(s), {}))))
    turned = [k.key for k in KNOBS if k.key in turned and k.level != "variant"]
    if given.get("parallelism.dp") == ("auto",):
        del given["parallelism.dp"]  # "auto" is what the search does anyway
    _check_values(s, given)
    variants = [(tuple(zip([k for k, _ in outer], combo, strict=True)), None) for combo in
                itertools.product(*(v for _, v in outer))]  # fmt: skip
    built = []
    failed: dict[tuple[str, str], list[str]] = {}  # a problem, the variants it refuses
    for sets, _ in variants:
        try:
            built.append((sets, _variant(s, sets)))
        except ScenarioError as exc:
            where = ", ".join(f"{k}={toml_value(v)}" for k, v in sets)
            for p in exc.problems:
                failed.setdefault((p.path, p.message), []).append(where)
    if failed and (not built or any(key in varied for key, _ in outer)):  # a value given by name must be usable
        raise ScenarioError([Problem(path, f"{message} (with {'; '.join(where)})")
                             for (path, message), where in failed.items()])  # fmt: skip
    return Domain(tuple(turned), given), built


def _check_values(s: Scenario, given: dict[str, tuple[Any, ...]]) -> None:
    """Each value given for a knob must be one the scenario's schema allows (type, range, choices)."""
    from pydantic import ValidationError

    data = scenario_data(s)
    problems = []
    for key, values in given.items():
        for value in values:
            try:
                Scenario.model_validate(apply_overrides(data, [f"{key}={toml_value(value)}"]))
            except ValidationError as exc:
                err = exc.errors()[0]
                problems.append(
                    Problem(key, f"{toml_value(value)} is not allowed: {err['msg'][0].lower()}{err['msg'][1:]}")
                )
    if problems:
        raise ScenarioError(problems)


def _variant(s: Scenario, sets: tuple[tuple[str, Any], ...]) -> Scenario:
    """The input with the variant's keys, checked like a file except for the layout (the search picks it)."""
    if not sets:
        return s
    data = apply_overrides(scenario_data(s), [f"{k}={toml_value(v)}" for k, v in sets])
    keys = dict(sets)
    if "cluster.chip" in keys and "cluster.scale_up" not in keys and s.cluster.scale_up == s.cluster.chip_spec.scale_up:
        # the file names its chip's own link: each chip compared brings its own (a chip on another's link is
        # not a machine anyone builds); a link the file chose deliberately stays
        data["cluster"].pop("scale_up", None)
    probe = json_copy(data)
    probe["parallelism"] = {**probe.get("parallelism", {}), **NEUTRAL_LAYOUT}
    probe.setdefault("workload", {})["micro_batch"] = 1
    try:
        validate_scenario(probe, "search")
    except ScenarioError as exc:
        kept = [p for p in exc.problems if not p.path.startswith(LAYOUT_PATHS)]
        if kept:
            raise ScenarioError(kept) from None
    return cache.scenario_of(data, checks=False)


def json_copy(data: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(data))


def measure(s: Scenario, objective: Objective) -> tuple[Record, bool]:
    """The scenario's own layout, measured as the search measures each candidate, and whether it fits."""
    index = cache.shared_index(s)
    step = estimate(s, index)
    layout = resolve_layout(s)
    goodput = expected_goodput(s, layout, index.plan).goodput if objective.needs_goodput else None
    cost = CostMeter(s, index).usd_per_million_tokens(s, step) if objective.needs_cost else None
    m = Measures(step.tokens_per_s, step.mfu, step.step_time_s, step.memory.total / 1e9, step.chips, goodput,
                 s.workload.target_tokens, cost)  # fmt: skip
    choice = tuple(sorted((k.key, scenario_value(s, k.key)) for k in KNOBS if k.level != "variant"))
    record = Record((-1, 0, 0, 0), -1, choice, m.tokens_per_s, m.mfu, m.step_time_s, m.memory_gb, m.chips, goodput,
                    objective.value(m))  # fmt: skip
    return record, step.fits


def search(
    s: Scenario,
    req: Request = Request(),
    runner: Runner | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """Enumerate, estimate and rank every valid layout. `progress(done, total)` counts placements."""
    if req.objective not in OBJECTIVES:
        raise _problem("--objective", f'"{req.objective}" is not one of {", ".join(OBJECTIVES)}')
    if req.top < 1:
        raise _problem("--top", f"must be at least 1, got {req.top}")
    obj = OBJECTIVES[req.objective]
    domain, variants = plan(s, req)
    for _, v in variants:
        why = obj.missing(v)
        if why:
            raise _problem("--objective", why)
    result = SearchResult(s, obj, domain, variants, frontier_exact=req.frontier)
    runner = runner or LocalRunner(1)
    jobs: list[BatchJob] = []
    for i, (_, v) in enumerate(variants):
        placed = placements(Space(v), domain, result.placement_refused)
        result.placements += len(placed)
        numbered = list(enumerate(placed))
        # batches of a size set by the search alone, never by the runner: what each batch prunes, and so every
        # count, is the same on one process, a pool or a Dask cluster
        for batch in batches(len(numbered), 1, per_worker=1, at_most=PLACEMENTS_PER_BATCH):
            jobs.append(BatchJob(i, scenario_data(v), [numbered[j] for j in batch], domain.turned, domain.given,
                                 req.objective, req.top, req.frontier))  # fmt: skip
    total = sum(len(j.placements) for j in jobs)
    finished = 0
    parts: list[BatchResult | None] = [None] * len(jobs)
    key = sort_key(req.objective)

    def run(wave: list[int]) -> None:
        def done(i: int, part: BatchResult) -> None:
            nonlocal finished
            parts[wave[i]] = part
            finished += len(jobs[wave[i]].placements)
            if progress:
                progress(finished, total)

        runner.map(evaluate, [jobs[j] for j in wave], done)

    if progress:
        progress(0, total)
    # Waves of batches, each twice the last: a wave's batches start from the objective the variant's N-th best
    # has reached in the waves before (a layout whose floor cannot reach it cannot be in the top N)
    reached: list[list[Record]] = [[] for _ in variants]
    order = sorted(range(len(jobs)), key=lambda j: (sum(o.variant == jobs[j].variant for o in jobs[:j]), j))
    start, size = 0, FIRST_WAVE * len(variants)
    while start < len(order):
        wave = order[start : start + size]
        for j in wave:
            found = sorted(reached[jobs[j].variant], key=key)[: req.top]
            reached[jobs[j].variant] = found
            if len(found) >= req.top:
                jobs[j].reached = found[-1].objective
        run(wave)
        for j in wave:
            reached[jobs[j].variant] += parts[j].best  # type: ignore[union-attr]
        start, size = start + size, size * 2

    key = sort_key(req.objective)
    per_variant: list[list[Record]] = [[] for _ in variants]
    for part in parts:
        assert part is not None
        result.estimated += part.estimated
        result.pruned += part.pruned
        result.layout_refused += part.refused
        per_variant[part.variant] += part.best
        result.frontier += part.frontier
        result.cloud += part.cloud
    result.best = sorted((r for rs in per_variant for r in rs), key=key)[: req.top]
    result.best_per_variant = [min(rs, key=key) if rs else None for rs in per_variant]
    result.frontier = pareto(result.frontier, req.objective)
    result.cloud.sort(key=lambda r: r.order)
    if not obj.missing(s) and not layout_problems(s):
        result.baseline, result.baseline_fits = measure(s, obj)
    return result


# ------------------------------------------------------------------ explaining the winner

BREAKDOWN_NAMES = {
    "compute_s": "compute", "optimizer_s": "optimizer update", "tp_s": "tensor-parallel comm",
    "pp_s": "pipeline p2p", "dp_s": "data-parallel comm (exposed)", "ep_s": "expert-parallel all-to-all",
    "cp_s": "context-parallel comm", "bubble_s": "pipeline bubble", "straggler_s": "waiting for stragglers",
}  # fmt: skip


def changes(result: SearchResult, record: Record) -> list[str]:
    """The keys that differ from the input scenario, as "tp 8 → 4"."""
    s = result.scenario
    out = []
    for key, value in result.settings(record).items():
        mine = scenario_value(s, key) if key in BY_KEY else value_at(scenario_data(s), key)
        if mine != value:
            show = BY_KEY[key].show if key in BY_KEY else plain
            out.append(f"{LABELS.get(key, key)} {show(mine)} → {show(value)}")
    return out


def why_better(result: SearchResult, best: StepEstimate, base: StepEstimate, limit: int = 4) -> list[str]:
    """Why the best layout beats the input's own: what changed and where a step's time went."""
    obj = result.objective
    lines = []
    if result.baseline is not None and result.best:
        a, b = result.baseline.objective, result.best[0].objective
        if math.isfinite(a) and a > 0:
            lines.append(f"{obj.label}: {obj.fmt(a)} → {obj.fmt(b)} ({b / a - 1:+.1%})")
    tokens = base.tokens_per_step / best.tokens_per_step if best.tokens_per_step else 1.0
    parts = []
    for key, name in BREAKDOWN_NAMES.items():
        was, now = getattr(base.breakdown, key), getattr(best.breakdown, key) * tokens
        if math.isfinite(was) and math.isfinite(now) and abs(now - was) > 0.005 * base.step_time_s:
            parts.append((abs(now - was), f"{name} {was:.3f} s → {now:.3f} s ({now - was:+.3f} s)"))
    lines += [text for _, text in sorted(parts, key=lambda p: -p[0])[:limit]]
    fa, fb = base.factors.as_dict(), best.factors.as_dict()
    moved = [
        f"{k} {fa[k]:.3f} → {fb[k]:.3f}"
        for k in ("generality", "chip", "node", "cluster")
        if abs(fb[k] - fa[k]) > 0.002
    ]
    if moved:
        lines.append("factors: " + ", ".join(moved))
    lines.append(f"memory per chip {base.memory.total / 1e9:.1f} GB → {best.memory.total / 1e9:.1f} GB")
    return lines


def refusal_lines(result: SearchResult) -> list[str]:
    """What was tried and what each rule refused, one line each."""
    placed_tried = result.placements + sum(result.placement_refused.values())
    lines = [f"placements (tp, cp, pp, dp, ep): {placed_tried:,} tried, {result.placements:,} valid"]
    lines += [f"  {n:,} break the rule: {rule}" for rule, n in result.placement_refused.most_common()]
    lines.append(f"layouts on them: {result.layouts_tried:,} tried, {result.estimated:,} estimated")
    lines += [f"  {n:,} break the rule: {rule}" for rule, n in result.layout_refused.most_common()]
    if result.pruned:
        short = f"the top {len(result.best)}" + (" and of the frontier" if result.frontier_exact else "")
        lines.append(f"  {result.pruned:,} not estimated: their compute and the gradient traffic it cannot hide "
                     f"fall short of {short}")  # fmt: skip
    return lines
