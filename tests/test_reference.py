"""A reference for the time engine: a plain Monte Carlo of checkpoint-restart with a finite spare pool.

Written from the policy's description, not from the engine's code, and as plainly as possible: servers are
counts, not objects; the next failure is drawn afresh after every event (exponential lifetimes forget their
past); time is walked event by event. The rules it follows:

- every healthy server fails at the same rate, in the job or in the spare pool; a failed spare goes to repair;
- a failed job server hangs the job until it is detected, losing the work since the last durable checkpoint
  if the job was training; at detection the server goes to repair and its slot is empty;
- a stopped job with no undetected failure fills its empty slots from the pool and restarts when all are
  full (after the restart time); otherwise it waits for repaired servers;
- a restart in progress is called off by a failure (and started again once that failure is detected);
- a running job trains for the checkpoint interval, then pauses for the save; a save is durable when it ends.

ETTR = (training time - training time whose work was lost) / wall time; the time waiting for spares is the
time a slot is empty with no spare in the pool. The engine must agree on both within three standard errors,
on two scenarios: a pool that is always large enough, and one that runs dry.
"""

from __future__ import annotations

import heapq
import math
import random

import numpy as np
import pytest

from factorysim import Simulation

from .conftest import scenario
from .test_engine import NO_FAULTS

HOUR, DAY = 3600.0, 86400.0


def reference_run(job: int, spares: int, rate: float, detect: float, restart: float, repair: float,
                   tau: float, delta: float, wall: float, rng: random.Random) -> tuple[float, float]:  # fmt: skip
    """One run: (ETTR, share of the time a slot waited for a repaired server). `rate` per server-second,
    times in seconds."""
    t = 0.0
    state = "running"  # running | restarting | stopped
    seg_start = 0.0  # start of the running segment
    restart_done = math.inf
    undetected: list[float] = []  # detection times of failed job servers
    returns: list[float] = []  # times repaired servers come back to the pool
    empty = 0  # job slots without a server
    trained = lost = waiting = 0.0

    def trained_in(x: float) -> float:  # training in the first x seconds of a segment
        k = math.floor(x / (tau + delta))
        return k * tau + min(x - k * (tau + delta), tau)

    def saved_in(x: float) -> float:  # training made durable by the saves finished in the first x seconds
        return math.floor(x / (tau + delta)) * tau

    def training() -> bool:
        return state == "running" and not undetected

    def try_restart() -> None:
        nonlocal empty, spares, state, restart_done
        if state != "stopped" or undetected:
            return
        filled = min(empty, spares)
        empty -= filled
        spares -= filled
        if empty == 0:
            state, restart_done = "restarting", t + restart

    while True:
        healthy_job = job - empty - len(undetected)
        next_failure = t + rng.expovariate(rate * (healthy_job + spares)) if healthy_job + spares else math.inf
        t_next = min(next_failure, undetected[0] if undetected else math.inf, returns[0] if returns else math.inf,
                     restart_done, wall)  # fmt: skip
        if training():
            trained += trained_in(t_next - seg_start) - trained_in(t - seg_start)
        if empty and not spares:
            waiting += min(t_next, wall) - t
        t = t_next
        if t >= wall:
            break
        if t == next_failure:
            if rng.random() < spares / (healthy_job + spares):
                spares -= 1
                heapq.heappush(returns, t + repair)
                continue
            if training():
                done = trained_in(t - seg_start)
                lost += done - saved_in(t - seg_start)
            if state == "restarting":
                state, restart_done = "stopped", math.inf
            heapq.heappush(undetected, t + detect)
        elif undetected and t == undetected[0]:
            heapq.heappop(undetected)
            heapq.heappush(returns, t + repair)
            empty += 1
            if state != "stopped":
                state, restart_done = "stopped", math.inf
            try_restart()
        elif returns and t == returns[0]:
            heapq.heappop(returns)
            spares += 1
            try_restart()
        else:  # the restart is done
            state, restart_done, seg_start = "running", math.inf, t
    return (trained - lost) / wall, waiting / wall


def engine_scenario(spares: int, per_server_h: float, repair_h: float):
    """Eight job servers and a pool; only host failures, every other fault class off."""
    s = scenario(f"cluster.nodes={8 + spares}", f"cluster.spare_nodes={spares}", NO_FAULTS,
                 f'reliability.repair={{host_unplanned_maintenance="{repair_h}h"}}')  # fmt: skip
    rates = {**s.reliability.rates, "host_unplanned_maintenance": per_server_h}
    return s.model_copy(update={"reliability": s.reliability.model_copy(update={"rates": rates})})


@pytest.mark.parametrize(
    "spares,per_server_h,repair_h",
    [(8, 1 / 40, 12.0), (1, 1 / 120, 24.0)],
    ids=["pool-large-enough", "pool-runs-dry"],
)
def test_the_engine_agrees_with_a_plain_monte_carlo_of_checkpoint_restart(spares, per_server_h, repair_h):
    s = engine_scenario(spares, per_server_h, repair_h)
    rel = s.reliability
    wall = 60 * DAY
    engine = []
    for seed in range(40):
        sim = Simulation(s, seed=seed, metrics=False)
        sim.run_until(wall)
        engine.append((sim.ettr, sim.summary().waiting_for_spares_s / wall))
    rng = random.Random(20250601)
    args = (8, spares, per_server_h / HOUR, rel.detect_time, rel.restart_time, repair_h * HOUR,
            rel.checkpoint_interval, rel.checkpoint_cost, wall)  # fmt: skip
    reference = [reference_run(*args, rng) for _ in range(200)]
    for what, e, r in zip(("ETTR", "waiting share"), np.array(engine).T, np.array(reference).T, strict=True):
        se = math.hypot(e.std(ddof=1) / math.sqrt(len(e)), r.std(ddof=1) / math.sqrt(len(r)))
        assert abs(e.mean() - r.mean()) <= 3 * se, (what, e.mean(), r.mean(), se)
    ettr, waiting = np.array(reference).mean(axis=0)
    assert 0.3 < ettr < 0.99  # faults matter in both scenarios, so the comparison says something
    assert (waiting > 0.1) == (spares == 1)  # and the small pool does run dry
