"""Sweeps: a scenario at every point of a grid of keys, estimated, and with a run length simulated over
seeds; one row per point and seed plus each point's mean and spread, in a columnar file.

    factorysim sweep FILE --vary parallelism.pp=4,8,16 --vary workload.precision=bf16,fp8 --seeds 4 --run 30d

Points are the cartesian product of the --vary lists (or, with --zip, their positions taken together).
Each point is validated like a file; a point the checks refuse is a row that says why, and the others
run. Results are keyed by a hash of the resolved scenario and seed (store.py): an interrupted sweep
continues where it stopped and a repeated one costs nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..perf import estimate
from ..scenario.errors import Problem, ScenarioError, show
from ..scenario.files import apply_overrides, parse_override, scenario_data, validate_scenario
from ..scenario.models import Scenario
from . import cache
from .runner import LocalRunner, Runner, batches
from .store import ResultStore
from .values import split_values, toml_value

ESTIMATE_METRICS = ("step_time_s", "tokens_per_s", "mfu", "hfu", "memory_gb_per_chip", "chips",
                    "generality", "chip", "node", "cluster")  # fmt: skip
RUN_METRICS = ("ettr", "stability", "tokens", "mean_tokens_per_s", "interruptions", "isolations", "faults",
               "lost_chip_hours", "spares_used", "checkpoints", "time_to_target_s")  # fmt: skip


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[Any, ...]


def parse_axis(item: str) -> Axis:
    """`key.path=v1,v2,...` → Axis; values are TOML like --set values."""
    if "=" not in item:
        raise ScenarioError([Problem("--vary", f"{item!r} is not key.path=v1,v2,... (e.g. parallelism.pp=4,8,16)")])
    key, raw = item.split("=", 1)
    values = tuple(parse_override(f"{key}={v}")[1] for v in split_values(raw))
    if not values:
        raise ScenarioError([Problem("--vary", f"{item!r} lists no values")])
    return Axis(".".join(parse_override(f"{key}=0")[0]), values)


def grid(axes: Sequence[Axis], zipped: bool = False) -> list[tuple[Any, ...]]:
    """The points: the cartesian product of the axes' values, or with `zipped` their positions together."""
    if zipped:
        sizes = {len(a.values) for a in axes}
        if len(sizes) > 1:
            listed = ", ".join(f"{a.key} has {len(a.values)}" for a in axes)
            raise ScenarioError([Problem("--zip", f"needs lists of one length ({listed})")])
        return list(zip(*(a.values for a in axes), strict=True))
    return list(itertools.product(*(a.values for a in axes)))


@dataclass
class Point:
    values: tuple[Any, ...]
    scenario: Scenario | None
    problem: str | None
    keys: list[tuple[str, int | None]] = field(default_factory=list)  # (result key, seed) per row


@dataclass
class SweepResult:
    axes: list[Axis]
    points: list[Point]
    seeds: list[int] | None  # None: estimates only
    rows: list[dict[str, Any]]
    computed: int
    reused: int
    output: str

    @property
    def refused(self) -> int:
        return sum(p.problem is not None for p in self.points)


def result_keys(data: dict[str, Any], seeds: Sequence[int | None]) -> list[str]:
    """The key of each result of a resolved scenario's data: cache.digest of the factorysim version, the data
    and the seed ("estimate" for None), with the data put in canonical form once for all the seeds."""
    head = json.dumps([__version__, data], sort_keys=True, separators=(",", ":"), allow_nan=False)[:-1]
    return [hashlib.sha256(f"{head},{json.dumps('estimate' if seed is None else seed)}]".encode()).hexdigest()
            for seed in seeds]  # fmt: skip


def _point(base: dict[str, Any], axes: Sequence[Axis], values: tuple[Any, ...], duration: float | None) -> Point:
    from .. import check_scenario

    sets = [f"{a.key}={toml_value(v)}" for a, v in zip(axes, values, strict=True)]
    try:
        data = apply_overrides(base, sets)
        if duration is not None:
            data.setdefault("run", {})["duration"] = duration
        s = validate_scenario(data)
        problems = check_scenario(s)
        if problems:
            raise ScenarioError(problems)
    except ScenarioError as exc:
        return Point(values, None, "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in exc.problems))
    return Point(values, s, None)


@dataclass
class SweepJob:
    """A batch of results to compute: plain data, so it travels to any worker."""

    items: list[tuple[str, dict[str, Any], int | None]]  # (key, scenario data, seed or None)


def estimate_metrics(s: Scenario) -> dict[str, Any]:
    index = cache.shared_index(s)
    step = estimate(s, index)
    f = step.factors
    return {
        "step_time_s": step.step_time_s, "tokens_per_s": step.tokens_per_s, "mfu": step.mfu, "hfu": step.hfu,
        "memory_gb_per_chip": step.memory.total / 1e9, "chips": step.chips,
        "generality": f.generality, "chip": f.chip, "node": f.node, "cluster": f.cluster,
    }  # fmt: skip


def run_metrics(s: Scenario, seed: int, steps: dict | None = None) -> dict[str, Any]:
    """The run's figures. The run starts from the shared cluster index (a run keeps its fault health in a copy
    of its own) and meters no power (no column reads it); `steps`: cache.step_cache of the scenario's data."""
    from ..engine import Simulation

    sim = Simulation(s, seed=seed, index=cache.shared_index(s), metrics=False, power=False, steps=steps)
    sim.run_until(s.run.duration)
    r = sim.summary()
    return {
        "ettr": r.ettr, "stability": r.stability, "tokens": r.tokens, "mean_tokens_per_s": r.mean_tokens_per_s,
        "interruptions": float(r.interruptions.get("total", 0)), "isolations": float(r.isolations),
        "faults": float(r.faults), "lost_chip_hours": r.lost_chip_hours, "spares_used": float(r.spares_used),
        "checkpoints": float(r.checkpoints), "time_to_target_s": r.time_to_target_s,
    }  # fmt: skip


def compute(job: SweepJob) -> list[tuple[str, dict[str, Any]]]:
    """The results of one batch (runs in a worker). A point's seeds share its data (one object in the batch):
    it is validated and estimated once."""
    out = []
    points: dict[int, tuple[Scenario, dict[str, Any], dict]] = {}
    for key, data, seed in job.items:
        found = points.get(id(data))
        if found is None:
            s = cache.scenario_of(data)
            found = points[id(data)] = (s, estimate_metrics(s), cache.step_cache(data))
        s, estimated, steps = found
        metrics = dict(estimated)
        if seed is not None:
            metrics.update(run_metrics(s, seed, steps))
        out.append((key, metrics))
    return out


def _column_type(values: Sequence[Any]):
    import pyarrow as pa

    if all(isinstance(v, bool) for v in values):
        return pa.bool_(), values
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64(), values
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pa.float64(), [float(v) for v in values]
    if all(isinstance(v, str) for v in values):
        return pa.string(), values
    return pa.string(), [v if isinstance(v, str) else toml_value(v) for v in values]


def _aggregate(runs: list[dict[str, Any]], stat: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in RUN_METRICS:
        vals = [r[m] for r in runs]
        if any(v is None for v in vals):
            out[m] = None
            continue
        arr = np.array(vals, dtype=float)
        if stat == "mean":
            out[m] = float(arr.mean())
        else:
            out[m] = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return out


def sweep(
    scenario: Scenario,
    axes: Sequence[Axis],
    output: str,
    *,
    zipped: bool = False,
    seeds: int | None = None,
    duration: float | None = None,
    fmt: str = "parquet",
    force: bool = False,
    runner: Runner | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Estimate (and with `duration`, simulate over `seeds` seeds) every point; write and return the rows."""

    if not axes:
        raise ScenarioError([Problem("--vary", "give at least one key=v1,v2,... to sweep")])
    if seeds is not None and seeds < 1:
        raise ScenarioError([Problem("--seeds", "must be at least 1")])
    if seeds is not None and duration is None:
        raise ScenarioError([Problem("--seeds", "seeds are for runs: add --run 30d (or another length)")])
    if duration is not None and seeds is None:
        seeds = 1
    dupes = sorted({a.key for a in axes if sum(b.key == a.key for b in axes) > 1})
    if dupes:
        raise ScenarioError([Problem("--vary", f"{', '.join(dupes)} is varied twice")])
    base = scenario_data(scenario)
    points = [_point(base, axes, values, duration) for values in grid(axes, zipped)]
    if all(p.problem is not None for p in points):
        raise ScenarioError([Problem("--vary", f"every point is refused; the first: {points[0].problem}")])
    first = scenario.run.seed
    seed_list: list[int] | None = list(range(first, first + seeds)) if seeds else None
    runs: list[int | None] = [*seed_list] if seed_list else [None]  # no seeds: one estimate per point
    metrics = list(ESTIMATE_METRICS) + (list(RUN_METRICS) if seed_list else [])
    store = ResultStore(output, "csv" if fmt == "csv" else "parquet", metrics, force)
    have = store.load()
    todo: dict[int, list[tuple[str, dict[str, Any], int | None]]] = {}
    for i, p in enumerate(points):
        if p.scenario is None:
            continue
        data = scenario_data(p.scenario)
        for seed, key in zip(runs, result_keys(data, runs), strict=True):
            p.keys.append((key, seed))
            if key not in have:
                todo.setdefault(i, []).append((key, data, seed))
    others = len(store.written - {key for p in points for key, _ in p.keys})
    if others:  # the output is rewritten with this sweep's rows only: never drop results without being told to
        held = f"{others:,} result{'s' * (others != 1)}"
        raise ScenarioError([Problem("--output", f"{show(output)} holds {held} of points this sweep does not have "
                                     "(another grid, scenario or factorysim version), which writing it would drop; "
                                     "choose another file, or --force to replace it")])  # fmt: skip
    runner = runner or LocalRunner(1)
    order = sorted(todo)
    jobs = [SweepJob([item for j in batch for item in todo[order[j]]])
            for batch in batches(len(order), runner.workers, per_worker=8, at_most=64)] if order else []  # fmt: skip
    total = sum(len(j.items) for j in jobs)
    done_count = 0

    def done(i: int, results: list[tuple[str, dict[str, Any]]]) -> None:
        nonlocal done_count
        store.add(results)
        have.update(results)
        done_count += len(results)
        if progress:
            progress(done_count, total)

    if progress:
        progress(0, total)
    try:
        runner.map(compute, jobs, done)
    finally:
        store.close()

    rows = _rows(axes, points, seed_list, have)
    schema = _schema(axes, points, metrics)
    store.write(rows, schema)
    return SweepResult(list(axes), points, seed_list, rows, computed=total, reused=sum(len(p.keys) for p in points) - total,
                       output=output)  # fmt: skip


def _rows(axes, points: list[Point], seeds: list[int] | None, have: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    columns = {}
    for a, i in zip(axes, range(len(axes)), strict=True):
        _, columns[a.key] = _column_type([p.values[i] for p in points])
    rows = []
    for n, p in enumerate(points):
        head = {a.key: columns[a.key][n] for a in axes}
        if p.scenario is None:
            rows.append({"point": n, "stat": "refused", "seed": None, **head, "problem": p.problem, "key": None})
            continue
        runs = []
        for key, seed in p.keys:
            m = have[key]
            runs.append(m)
            stat = "estimate" if seed is None else "run"
            rows.append({"point": n, "stat": stat, "seed": seed, **head, "problem": None, "key": key, **m})
        if seeds:
            est = {k: runs[0][k] for k in ESTIMATE_METRICS}
            rows.append({"point": n, "stat": "mean", "seed": None, **head, "problem": None, "key": None, **est,
                         **_aggregate(runs, "mean")})  # fmt: skip
            rows.append({"point": n, "stat": "sd", "seed": None, **head, "problem": None, "key": None,
                         **_aggregate(runs, "sd")})  # fmt: skip
    return rows


def _schema(axes, points: list[Point], metrics: list[str]):
    import pyarrow as pa

    fields = [pa.field("point", pa.int64()), pa.field("stat", pa.string()), pa.field("seed", pa.int64())]
    for i, a in enumerate(axes):
        kind, _ = _column_type([p.values[i] for p in points])
        fields.append(pa.field(a.key, kind))
    fields += [pa.field("problem", pa.string()), pa.field("key", pa.string())]
    fields += [pa.field(m, pa.float64()) for m in metrics]
    return pa.schema(fields)


def means(result: SweepResult) -> list[dict[str, Any]]:
    """One row per point: the estimate, or with runs the mean row (refused points included)."""
    want = "mean" if result.seeds else "estimate"
    return [r for r in result.rows if r["stat"] in (want, "refused")]


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
