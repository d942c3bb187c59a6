"""A scenario's job on its cluster: the links each parallel dimension crosses, one step's estimate, and whether
the job fits in memory."""

from __future__ import annotations

import numpy as np

from ..scenario.errors import Problem
from ..scenario.models import Scenario
from ..scenario.parallel import ParallelLayout, resolve_layout
from ..topology.edits import index_for
from ..topology.index import FabricIndex
from .memory import memory_problems
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
