"""A scenario's job on its cluster: the links each parallel dimension crosses, one step's estimate, whether the
job fits in memory, and the layout a scenario that gives none gets."""

from __future__ import annotations

import numpy as np

from ..scenario.checks import ParallelLayout, layout_problems, resolve_layout
from ..scenario.errors import Problem
from ..scenario.models import Scenario
from ..topology.edits import index_for
from ..topology.index import FabricIndex
from .memory import GB, memory_per_chip, memory_problems
from .step import StepEstimate, StepLinks, estimate_step


def step_links(index: FabricIndex, layout: ParallelLayout, placement: np.ndarray | None = None) -> StepLinks:
    """The bottleneck links of every parallel dimension of a job placed on the cluster."""
    return StepLinks(
        tp=index.group_links(layout, "tp", placement),
        cp=index.group_links(layout, "cp", placement),
        dp=index.group_links(layout, "dp", placement),
        pp=index.group_links(layout, "pp", placement),
        ep=index.group_links(layout, "ep", placement),
    )


def estimate(scenario: Scenario, index: FabricIndex | None = None) -> StepEstimate:
    """Estimate one training step of a validated scenario (on its cluster, edits applied, unless an index is given)."""
    layout = resolve_layout(scenario)
    if index is None:
        index = index_for(scenario.cluster, scenario.topology.edits)
    return estimate_step(scenario, layout, step_links(index, layout))


def feasibility_problems(scenario: Scenario) -> list[Problem]:
    """Physics checks beyond the layout: does the job fit in memory? (`run`, the sandbox and challenges refuse a
    job that does not; `estimate` times it anyway and reports `fits`.)"""
    return memory_problems(scenario, resolve_layout(scenario))


LAYOUT_KEYS = ("tp", "pp", "cp", "dp")
"""The keys of [parallelism] that lay a job out; a scenario that gives none of them gets `default_layout`'s."""


def default_layout(scenario: Scenario) -> Scenario:
    """The scenario with a layout chosen by rule when it gives none (no parallelism.tp, pp, cp or dp): the smallest
    tensor-parallel degree (1, 2, 4, ... up to a server's chips, dividing the model's heads and MLP width) with which
    the job fits in its chips' memory without a pipeline; failing that, a server-wide tp and the fewest pipeline
    stages that fit. If none fits and the scenario does not give workload.recompute, the same again with full
    recompute. dp fills the cluster. A job that fits nowhere gets the layout tried that needs the least memory (the
    estimate says how far off it is). A scenario that gives any of those layout keys is returned unchanged."""
    p = scenario.parallelism
    if p.model_fields_set & set(LAYOUT_KEYS):
        return scenario
    model, cluster = scenario.workload.model_spec(), scenario.cluster
    cap = cluster.chip_spec.memory_gb * GB
    tps = [t for t in (2**i for i in range(11)) if t <= cluster.chips_per_node and not cluster.chips_per_node % t]
    tps = [t for t in tps if not model.heads % t and not model.ffn % t]
    recomputes = [scenario.workload.recompute]
    if "recompute" not in scenario.workload.model_fields_set and recomputes[0] != "full":
        recomputes.append("full")
    best: tuple[float, Scenario] | None = None

    def laid_out(tp: int, pp: int, recompute: str) -> Scenario:
        return scenario.model_copy(
            update={
                "parallelism": p.model_copy(update={"tp": tp, "pp": pp, "dp": "auto"}),
                "workload": scenario.workload.model_copy(update={"recompute": recompute}),
            }
        )

    def fits(s: Scenario) -> bool:
        nonlocal best
        if layout_problems(s):
            return False
        need = memory_per_chip(s, resolve_layout(s)).total
        if best is None or need < best[0]:
            best = (need, s)
        return need <= cap

    for recompute in recomputes:
        for tp in tps:
            if fits(s := laid_out(tp, 1, recompute)):
                return s
        if tps:
            tp = tps[-1]
            for pp in range(2, model.layers + 1):
                if not cluster.job_chips % (tp * pp) and fits(s := laid_out(tp, pp, recompute)):
                    return s
    return best[1] if best is not None else scenario
