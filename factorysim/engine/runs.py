"""Many seeds of one scenario, in parallel processes when that pays."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ..scenario.files import scenario_data, validate_scenario
from ..scenario.models import Scenario
from .metrics import RunSummary
from .simulation import Simulation


def run_one(scenario: Scenario, seed: int, duration: float) -> RunSummary:
    sim = Simulation(scenario, seed=seed, metrics=False)
    sim.run_until(duration)
    return sim.summary()


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops between batches


def _run_batch(data: dict[str, Any], seeds: Sequence[int], duration: float) -> list[RunSummary]:
    scenario = validate_scenario(data)
    return [run_one(scenario, seed, duration) for seed in seeds]


def run_seeds(
    scenario: Scenario,
    seeds: Sequence[int],
    duration: float,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[RunSummary]:
    """Summaries of one run per seed, in seed order. `progress(n)` is called as runs finish; once `stop()` is
    true, no more runs start and the summaries of the first seeds, those finished, are returned."""
    workers = workers or min(len(seeds), os.cpu_count() or 1)
    if workers <= 1 or len(seeds) < 4:
        out = []
        for seed in seeds:
            if stop is not None and stop():
                break
            out.append(run_one(scenario, seed, duration))
            if progress:
                progress(1)
        return out
    data = scenario_data(scenario)
    size = max(1, len(seeds) // (workers * 8))
    batches = [list(seeds[i : i + size]) for i in range(0, len(seeds), size)]
    results: list[list[RunSummary]] = []
    with ProcessPoolExecutor(max_workers=workers, initializer=_ignore_interrupts) as pool:
        futures = [pool.submit(_run_batch, data, batch, duration) for batch in batches]
        for future in futures:
            if stop is not None and stop():
                for f in futures:
                    f.cancel()
                break
            results.append(future.result())
            if progress:
                progress(len(results[-1]))
    return [s for batch in results for s in batch]
