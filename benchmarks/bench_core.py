"""Speed and memory of the headless core on the 100,000-chip scenario.

Targets: the cluster graph builds in <= 5 s and <= 1.5 GB; one estimate takes <= 50 ms once the
cluster exists; `factorysim estimate` on the scenario takes <= 3 s end to end; `factorysim --help`
answers in <= 0.15 s.

    python benchmarks/bench_core.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from _util import child_peak_mb, machine, median_time

ROOT = Path(__file__).resolve().parents[1]
BIG = ROOT / "scenarios" / "h100-100k.toml"


def main() -> None:
    print(f"machine: {machine()}")
    print(f"scenario: {BIG.name}")

    graph = child_peak_mb(
        "import time\n"
        "from factorysim import load_scenario\n"
        "from factorysim.topology import build_graph, FabricIndex\n"
        f"s = load_scenario({str(BIG)!r})\n"
        "t = time.perf_counter(); g = build_graph(s.cluster); build = time.perf_counter() - t\n"
        "t = time.perf_counter(); FabricIndex.from_graph(g); scan = time.perf_counter() - t\n"
        "out = {'build_s': build, 'scan_s': scan, 'nodes': g.number_of_nodes(), 'edges': g.number_of_edges()}\n"
    )
    print(
        f"graph build: {graph['build_s']:.2f} s for {graph['nodes']:,} nodes and {graph['edges']:,} edges; "
        f"index scan of the graph {graph['scan_s']:.2f} s; peak RSS {graph['peak_rss_mb']:.0f} MB (target <= 5 s, <= 1500 MB)"
    )

    from factorysim import load_scenario
    from factorysim.perf import estimate_step, step_links
    from factorysim.scenario import resolve_layout
    from factorysim.topology import FabricIndex

    s = load_scenario(BIG)
    index, plan_times = None, []
    for _ in range(3):
        t = time.perf_counter()
        index = FabricIndex.from_plan(s.cluster)
        plan_times.append(time.perf_counter() - t)
    print(f"index from the Clos plan (no graph): median {statistics.median(plan_times) * 1000:.0f} ms")

    layout = resolve_layout(s)

    def one_estimate():
        index._links.clear()  # bottleneck queries are part of an estimate (group placement stays cached)
        index._shapes.clear()
        return estimate_step(s, layout, step_links(index, layout))

    med, times = median_time(one_estimate, repeat=21)
    print(
        f"one estimate with the cluster built: median {med * 1000:.1f} ms, max {max(times) * 1000:.1f} ms (target <= 50 ms)"
    )

    links = step_links(index, layout)
    med, _ = median_time(lambda: estimate_step(s, layout, links), repeat=201)
    print(
        f"the step physics alone (links known, as when a sweep varies the job on one cluster): median "
        f"{med * 1e6:.0f} µs, {1 / med:,.0f} estimates per second"
    )

    from factorysim.perf.power import CostMeter, step_power

    e = estimate_step(s, layout, links)
    med, _ = median_time(lambda: step_power(s, e, index), repeat=51)
    print(f"power, energy and cost of an estimate (estimate's section, fabric counted): median {med * 1000:.2f} ms")
    meter = CostMeter(s, index)
    med, _ = median_time(lambda: meter.usd_per_million_tokens(s, e), repeat=201)
    print(f"cost per token of one more layout (search --objective cost_per_token): median {med * 1e6:.0f} µs")

    def cli():
        subprocess.run([sys.executable, "-m", "factorysim", "estimate", str(BIG)], check=True, capture_output=True)

    med, times = median_time(cli, repeat=5)
    print(f"`factorysim estimate {BIG.name}` end to end: median {med:.2f} s of 5 runs (target <= 3 s)")

    def help_():
        subprocess.run([sys.executable, "-m", "factorysim", "--help"], check=True, capture_output=True)

    def bare():
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)

    med, _ = median_time(help_, repeat=21)
    python, _ = median_time(bare, repeat=21)
    print(f"`factorysim --help`: median {med * 1000:.0f} ms of 21 runs, of which Python's own start-up "
          f"{python * 1000:.0f} ms (target <= 150 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
