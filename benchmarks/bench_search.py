"""Speed of layout search and sweeps (figures, not pass/fail).

    python benchmarks/bench_search.py            all three
    python benchmarks/bench_search.py rate       estimates per second per core, 16K-chip scenario
    python benchmarks/bench_search.py search     rank every layout of Llama-3 405B on 16,384 H100
    python benchmarks/bench_search.py sweep      1,000 points x 4 seeds of 30-day runs, 10K cards
    python benchmarks/bench_search.py profile    where one estimate's and a sweep batch's time goes (cProfile)

Targets (issue: layout search and sweeps, 2 cores): >= 2,000 estimates per second per core on a 16K-chip
cluster; every valid 405B layout ranked in <= 10 s; the 1,000 x 4 sweep in <= 60 s locally.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine

from factorysim import estimate, load_scenario
from factorysim.explore import LocalRunner, Request
from factorysim.explore.knobs import KNOBS, Space
from factorysim.explore.layouts import BatchJob, Domain, evaluate, placements
from factorysim.explore.runner import default_workers
from factorysim.explore.search import search
from factorysim.explore.sweep import SweepJob, compute, parse_axis, sweep
from factorysim.perf import estimate_step, step_links
from factorysim.scenario import resolve_layout, scenario_data
from factorysim.topology.edits import index_for

ROOT = Path(__file__).resolve().parents[1] / "scenarios"
L405 = ROOT / "llama3-405b-16k-h100.toml"
K10 = ROOT / "kuae-mtt-s4000-10k.toml"


def rate() -> None:
    s = load_scenario(L405)
    index = index_for(s.cluster)
    layout = resolve_layout(s)
    t = time.perf_counter()
    links = step_links(index, layout)
    cold = time.perf_counter() - t
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        estimate_step(s, layout, links)
    warm = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for _ in range(20):
        estimate(s, index_for(s.cluster))
    fresh = (time.perf_counter() - t) / 20
    print(f"one estimate, {s.cluster.job_chips:,}-chip job on {s.cluster.nodes * s.cluster.chips_per_node:,} chips: {fresh * 1e3:.1f} ms with the index built ({1 / fresh:,.0f}/s); "
          f"group links of one placement {cold * 1e3:.1f} ms; step physics alone {warm * 1e6:.0f} µs "
          f"({1 / warm:,.0f}/s)")  # fmt: skip

    # the search's inner loop on one core, every layout of a slice of placements (of every pipeline depth)
    # estimated: keeping them all, nothing is pruned, so this is the rate of estimates and memory checks alone
    turned = tuple(k.key for k in KNOBS if k.searched)
    placed = placements(Space(s), Domain(turned), Counter())
    chosen = list(enumerate(placed))[::24]
    job = BatchJob(0, scenario_data(s), chosen, turned, {}, "tokens_per_s", 10**9)
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        r = evaluate(job)
        dt = time.perf_counter() - t
        rates.append((r.estimated / dt, (r.estimated + sum(r.refused.values())) / dt))
    est, tried = statistics.median(x for x, _ in rates), statistics.median(y for _, y in rates)
    print(f"search inner loop, one core, {len(chosen)} placements: {est:,.0f} estimates/s "
          f"({tried:,.0f} layouts/s tried, memory refusals included)")  # fmt: skip


def rank_405b() -> None:
    s = load_scenario(L405)
    workers = default_workers()
    t = time.perf_counter()
    result = search(s, Request(), LocalRunner(workers))
    dt = time.perf_counter() - t
    b = result.best[0]
    c = s.cluster
    print(f"rank every layout of Llama-3 405B on {c.job_chips:,} of {c.nodes * c.chips_per_node:,} H100 "
          f"({workers} workers): {dt:.1f} s; "
          f"{result.placements} placements, {result.layouts_tried:,} layouts tried, {result.estimated:,} estimated "
          f"({result.estimated / dt:,.0f}/s); best {b.tokens_per_s:,.0f} tokens/s vs the file's "
          f"{result.baseline.tokens_per_s:,.0f}")  # fmt: skip


def sweep_10k() -> None:
    s = load_scenario(K10)
    axes = [
        parse_axis("reliability.checkpoint_interval=" + ",".join(f'"{m}m"' for m in (5, 10, 15, 20, 30, 45, 60, 90, 120, 240))),
        parse_axis("reliability.rate_multiplier=" + ",".join(str(x) for x in (0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.2, 1.3, 1.5))),
        parse_axis("reliability.detect_time=" + ",".join(f'"{s}s"' for s in (10, 20, 30, 60, 90, 120, 180, 240, 300, 600))),
    ]  # fmt: skip
    workers = default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "sweep.parquet")
        t = time.perf_counter()
        result = sweep(s, axes, out, seeds=4, duration=30 * 86400.0, runner=LocalRunner(workers))
        first = time.perf_counter() - t
        t = time.perf_counter()
        again = sweep(s, axes, out, seeds=4, duration=30 * 86400.0, runner=LocalRunner(workers))
        repeat = time.perf_counter() - t
    points = len(result.points) - result.refused
    print(f"sweep of {points:,} points ({result.refused} refused) x 4 seeds x 30 days, 10,000 cards ({workers} workers): {first:.1f} s "
          f"({result.computed / first:,.0f} runs/s); repeated: {repeat:.1f} s, {again.computed} computed")  # fmt: skip


def _profiled(label: str, fn) -> None:
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(14)
    print(f"--- {label}")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip()))


def profile() -> None:
    s = load_scenario(L405)
    estimate(s)  # imports and catalog
    _profiled("one estimate, cold (index built, group links computed)", lambda: estimate(s))
    index = index_for(s.cluster)
    layout = resolve_layout(s)
    links = step_links(index, layout)
    _profiled("200 estimates, warm (group links cached for the placement)",
              lambda: [estimate_step(s, layout, links) for _ in range(200)])  # fmt: skip
    # a sweep's worker: 5 points x 4 seeds of 30-day runs of the 10K-card scenario (its step estimates shared)
    k10 = load_scenario(K10)
    items = []
    for minutes in (5, 10, 20, 40, 80):
        data = scenario_data(k10)
        data["reliability"]["checkpoint_interval"] = minutes * 60.0
        data["run"]["duration"] = 30 * 86400.0
        items += [(f"{minutes}-{seed}", data, seed) for seed in range(1, 5)]
    _profiled("a sweep batch: 20 runs of 30 days, 10,000 cards", lambda: compute(SweepJob(items)))


def main() -> None:
    print(f"machine: {machine()}")
    which = sys.argv[1:] or ["rate", "search", "sweep"]
    for name in which:
        {"rate": rate, "search": rank_405b, "sweep": sweep_10k, "profile": profile}[name]()


if __name__ == "__main__":
    main()
