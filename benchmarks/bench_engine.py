"""Speed and memory of the time engine.

Targets: 30 simulated days of the 100,000-chip scenario with default fault rates in <= 1 s of engine time
and <= 500 MB; one simulated year in <= 10 s with memory flat over time; 1,000 seeds of the 10,000-card
scenario over 30 days in <= 60 s on this 2-core machine.

    python benchmarks/bench_engine.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from _util import child_peak_mb, machine

ROOT = Path(__file__).resolve().parents[1]
BIG = ROOT / "scenarios" / "h100-100k.toml"
TEN_K = ROOT / "scenarios" / "kuae-mtt-s4000-10k.toml"
DAY = 86400.0


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(quick: bool) -> None:
    from factorysim import Simulation, load_scenario
    from factorysim.engine import run_seeds

    print(f"machine: {machine()}")
    # first, while this process is small: Linux carries the peak RSS of a process over into the program it
    # starts, so a child started after the big runs below would report this process's peak
    peak = child_peak_mb(
        "from factorysim import Simulation, load_scenario\n"
        f"sim = Simulation(load_scenario({str(BIG)!r}))\n"
        "sim.run_until(30 * 86400)\n"
        "out = {}\n"
    )
    big = load_scenario(BIG)

    times = []
    for _ in range(3):
        sim = Simulation(big)  # metrics and fingerprint on, as the CLI and the sandbox run it
        t = time.perf_counter()
        sim.run_until(30 * DAY)
        times.append(time.perf_counter() - t)
    s = sim.summary()
    print(
        f"100K chips, 30 days: median {statistics.median(times):.2f} s of engine time over 3 runs "
        f"({s.events:,} events, {s.faults:,} faults, {s.interruptions['total']:,} interruptions) (target <= 1 s)"
    )
    print(f"100K chips, 30 days: peak RSS of the whole process {peak['peak_rss_mb']:.0f} MB (target <= 500 MB)")

    sim = Simulation(big)
    marks = [30, 91, 182, 273, 365]
    t0 = time.perf_counter()
    rows = []
    for day in marks:
        sim.run_until(day * DAY)
        rows.append(
            f"day {day}: {time.perf_counter() - t0:.1f} s, RSS {rss_mb():.0f} MB, {len(sim.series)} series rows"
        )
    print("100K chips, one year: " + "; ".join(rows) + " (target <= 10 s, memory flat)")

    seeds = 100 if quick else 1000
    ten_k = load_scenario(TEN_K)
    t = time.perf_counter()
    runs = run_seeds(ten_k, list(range(seeds)), 30 * DAY)
    elapsed = time.perf_counter() - t
    ettr = [r.ettr for r in runs]
    print(
        f"10K cards, {seeds} seeds x 30 days: {elapsed:.1f} s on {os.cpu_count()} cores "
        f"(mean ETTR {statistics.mean(ettr):.4f} ± {statistics.stdev(ettr):.4f}) (target <= 60 s for 1,000)"
    )


if __name__ == "__main__":
    main("--quick" in sys.argv)
