"""factorysim: a sandbox for AI-training clusters.

from factorysim import load_scenario, estimate
scenario = load_scenario("scenarios/llama3-70b-1k-h100.toml", overrides=["parallelism.dp=32"])
step = estimate(scenario)
print(step.mfu, step.factors)
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ._version import __version__
from .engine import Fault, SimClock, Simulation
from .perf import StepEstimate, estimate, feasibility_problems
from .scenario import Problem, Scenario, ScenarioError, load_scenario_file
from .topology import plan_clos
from .topology.edits import cluster_graph


def load_scenario(
    path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = (), *, memory: bool = True
) -> Scenario:
    """Load, validate and check a scenario file (None = the embedded default), with key.path=value overrides.

    Raises ScenarioError listing every problem: syntax, schema, parallel layout, memory per chip (unless
    `memory` is False: an estimate still times a job that does not fit, and says so).
    """
    scenario = load_scenario_file(path, overrides)
    problems = check_scenario(scenario, memory=memory)
    if problems:
        raise ScenarioError(problems, str(path) if path is not None else "<default scenario>")
    return scenario


def check_scenario(scenario: Scenario, edits_checked: bool = False, *, memory: bool = True) -> list[Problem]:
    """Checks that need the physics or the graph: memory per chip, topology edits, scheduled fault targets.

    `edits_checked`: the caller has already applied the topology edits to a graph (building one is slow).
    `memory`: refuse a job that does not fit in its chips' memory (a run would crash out of memory).
    """
    problems = feasibility_problems(scenario) if memory else []
    try:
        if scenario.topology.edits and not edits_checked:
            cluster_graph(scenario.cluster, scenario.topology.edits)
    except ScenarioError as exc:
        problems += exc.problems
    plan = plan_clos(scenario.cluster)
    for i, f in enumerate(scenario.faults):
        try:
            Fault(f.target, f.kind, f.factor, f.duration).check(plan, f"faults[{i}]")
        except ScenarioError as exc:
            problems += exc.problems
    return problems


__all__ = [
    "Fault",
    "Problem",
    "Scenario",
    "ScenarioError",
    "SimClock",
    "Simulation",
    "StepEstimate",
    "__version__",
    "check_scenario",
    "estimate",
    "load_scenario",
]  # fmt: skip
