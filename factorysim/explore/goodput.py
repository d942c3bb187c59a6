"""Expected effective training time of a layout, in closed form, for ranking layouts by time to target.

`factorysim run` samples faults and simulates recovery; a search needs the expectation for thousands of
layouts, so this is the first-order renewal estimate of the same rules (the engine's tests hold it to
the simulated mean, see tests/test_search.py):

- Each fail-stop fault on a job server (GPU, fabric port, host, or a leaf switch's servers), each crash
  and each planned stop arrives as a Poisson process at the catalog's rate (engine.faults).
- checkpoint-restart: the whole job is down for detect_time + restart_time (planned stops: the checkpoint
  and the restart) and loses the work since the last checkpoint, τ/2 on average.
- isolate-group: the job hangs for detect_time, then the failed node group's data-parallel replicas drop
  out until a spare joins (join_time): the share of output lost is the share of replicas with a rank in
  that node group. That is what the layout decides: a deep pipeline puts one replica on many servers, so a
  server failure takes more of the job with it. Crashes and planned stops stay inside one node group with
  isolate_crashes and rolling_maintenance, and stop the whole job otherwise.
- Checkpoints pause training for τ/(τ+δ) of the running time.
- Failed servers are in repair for their class's repair time, so the number in repair is Poisson with
  mean Σ rate × repair (Little's law). When it exceeds the spares, the missing servers' node groups stay
  out (isolate-group) or the job waits for a repair (checkpoint-restart).

Left out (they are in `factorysim run`): gray faults (stragglers, degraded and flapping links, spine and
core switches) and faults during recovery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.faults import fault_classes, unit_counts
from ..scenario.models import Scenario
from ..scenario.parallel import ParallelLayout
from ..topology.graph import ClosPlan


@dataclass(frozen=True)
class ExpectedGoodput:
    """Expected shares of wall time and of fault-free output for one layout."""

    ettr: float  # productive training time / wall time
    goodput: float  # output / output of the same job with no faults and no checkpoints (the expected S)
    interruptions_per_day: float  # whole-job stops
    replica_share_per_failure: float  # share of replicas a server failure takes out (isolate-group)


def replica_share(layout: ParallelLayout, chips_per_node: int, group_size: int) -> float:
    """Mean share of data-parallel replicas with a rank in a failed server's node group.

    Ranks sit on chips in order (tp innermost, then cp, dp, pp), as the engine places them.
    """
    ranks = np.arange(layout.chips, dtype=np.int64)
    replica = (ranks // (layout.tp * layout.cp)) % layout.dp
    group = ranks // chips_per_node // group_size
    pairs = np.unique(group * layout.dp + replica)
    per_group = np.bincount(pairs // layout.dp)
    servers = np.bincount(np.arange(layout.chips // chips_per_node) // group_size)
    return float((per_group * servers).sum() / servers.sum() / layout.dp)


def _leaf_share(layout: ParallelLayout, plan: ClosPlan, group_size: int) -> tuple[float, float]:
    """Mean (servers, share of replicas) a leaf switch failure takes out, over the leaves with job servers."""
    c = plan.chips_per_node
    servers_per_leaf = plan.leaf_down if plan.rail else max(1, plan.leaf_down // c)
    job_servers = layout.chips // c
    ranks = np.arange(layout.chips, dtype=np.int64)
    replica = (ranks // (layout.tp * layout.cp)) % layout.dp
    # every server of a node group that lost one is out: widen the leaf's servers to whole groups
    unit = np.lcm(servers_per_leaf, group_size)
    block = ranks // c // unit
    pairs = np.unique(block * layout.dp + replica)
    per_block = np.bincount(pairs // layout.dp)
    share = float(np.minimum(per_block, layout.dp).mean() / layout.dp) if job_servers else 0.0
    return float(min(servers_per_leaf, job_servers)), min(1.0, share)


def expected_goodput(s: Scenario, layout: ParallelLayout, plan: ClosPlan) -> ExpectedGoodput:
    """First-order expected ETTR and output share of the scenario's job in `layout` (module docstring)."""
    rel, cl = s.reliability, s.cluster
    tau = rel.checkpoint_interval
    pause = rel.async_checkpoint_cost if rel.checkpoint_async else rel.checkpoint_cost
    ckpt = tau / (tau + pause)
    isolate = rel.policy == "isolate-group"
    counts = unit_counts(s, plan)
    job_servers = layout.chips // cl.chips_per_node
    in_job = job_servers / max(1, plan.servers)
    server_share = replica_share(layout, cl.chips_per_node, cl.node_group_size) if isolate else 1.0
    group_share = _one_group_share(layout, cl.chips_per_node, cl.node_group_size) if isolate else 1.0
    leaf_servers, leaf_share = _leaf_share(layout, plan, cl.node_group_size) if isolate else (0.0, 1.0)
    spares = cl.spare_nodes

    down = 0.0  # whole-job seconds lost per second of running
    rolled = 0.0  # training seconds rolled back per second of running
    narrow = 0.0  # replica-seconds out, as a share of the job, per second of running
    stops = 0.0  # whole-job stops per second of running
    in_repair = 0.0  # mean servers in repair
    leaf_servers_all = plan.leaf_down if plan.rail else max(1.0, plan.leaf_down / cl.chips_per_node)
    for fc in fault_classes(s):
        if fc.rate <= 0 or fc.unit in ("spine", "core") or fc.kind not in ("fail-stop", "crash", "planned"):
            continue
        n = counts[fc.unit] * (in_job if fc.unit in ("gpu", "gpu_port", "host") else 1.0)
        lam = fc.rate * n / 3600.0
        if fc.kind == "fail-stop":
            in_repair += lam * fc.repair * (leaf_servers_all if fc.unit == "leaf" else 1.0)
        if fc.kind == "fail-stop" and isolate:
            share = leaf_share if fc.unit == "leaf" else server_share
            need = leaf_servers if fc.unit == "leaf" else 1.0
            back = rel.join_time if spares >= need else fc.repair
            down += lam * rel.detect_time
            narrow += lam * back * share
        elif fc.kind == "crash" and isolate and rel.isolate_crashes:
            down += lam * rel.detect_time
            narrow += lam * rel.restart_time * group_share
        elif fc.kind == "planned" and isolate and rel.rolling_maintenance:
            narrow += lam * rel.restart_time * group_share
        elif fc.kind == "planned":
            stops += lam
            down += lam * (rel.checkpoint_cost + rel.restart_time)
        else:  # a whole-job stop that rolls back to the last checkpoint
            stops += lam
            down += lam * (rel.detect_time + rel.restart_time)
            rolled += lam * tau / 2
    missing, waiting = _short_of_spares(in_repair, spares)
    if isolate:
        narrow += min(1.0, missing * server_share)
        waiting = 0.0
    running = (1.0 - waiting) / (1.0 + down)
    ettr = max(0.0, running * (ckpt - rolled))
    goodput = max(0.0, running * (ckpt - rolled - min(1.0, narrow) * ckpt))
    return ExpectedGoodput(
        ettr=ettr,
        goodput=goodput,
        interruptions_per_day=stops * running * 86400.0,
        replica_share_per_failure=server_share,
    )


def _one_group_share(layout: ParallelLayout, chips_per_node: int, group_size: int) -> float:
    """Share of replicas a node group holds, averaged over groups (a job-level fault picks any group)."""
    ranks = np.arange(layout.chips, dtype=np.int64)
    replica = (ranks // (layout.tp * layout.cp)) % layout.dp
    group = ranks // chips_per_node // group_size
    pairs = np.unique(group * layout.dp + replica)
    return float(np.bincount(pairs // layout.dp).mean() / layout.dp)


def _short_of_spares(mean_in_repair: float, spares: int) -> tuple[float, float]:
    """(expected servers missing, probability that at least one is) when Poisson(mean) servers are in repair."""
    if mean_in_repair <= 0:
        return 0.0, 0.0
    k = np.arange(spares + 1)
    log_pmf = -mean_in_repair + k * np.log(mean_in_repair) - np.cumsum(np.log(np.maximum(k, 1)))
    pmf = np.exp(log_pmf)
    missing = mean_in_repair - spares + float(((spares - k) * pmf).sum())
    return max(0.0, missing), max(0.0, 1.0 - float(pmf.sum()))
