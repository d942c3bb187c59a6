"""A scenario loaded with every check: the file's syntax and schema, the parallel layout, then the checks that
need the physics or the cluster graph (memory per chip, topology edits, scheduled fault targets)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .engine.faults import Fault
from .perf.job import default_layout, feasibility_problems
from .perf.power import power_problems
from .scenario.errors import Problem, ScenarioError
from .scenario.files import load_scenario_file
from .scenario.models import Scenario
from .topology.edits import cluster_graph
from .topology.graph import plan_clos


def load_scenario(
    path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = (), *, memory: bool = True
) -> Scenario:
    """Load, validate and check a scenario file (None = the embedded default), with key.path=value overrides.

    A scenario that gives no parallel layout (none of parallelism.tp, pp, cp, dp) gets the one
    perf.job.default_layout chooses by rule, written into the returned scenario.

    Raises ScenarioError listing every problem: syntax, schema, parallel layout, memory per chip (unless
    `memory` is False: an estimate still times a job that does not fit, and says so).
    """
    # the checks see the layout the rule chooses (it only chooses layouts that pass the layout checks)
    scenario = load_scenario_file(path, overrides, lambda s: check_scenario(default_layout(s), memory=memory))
    return default_layout(scenario)


def check_scenario(scenario: Scenario, edits_checked: bool = False, *, memory: bool = True) -> list[Problem]:
    """Checks that need the physics or the graph: memory per chip, topology edits, scheduled fault targets.

    `edits_checked`: the caller has already applied the topology edits to a graph (building one is slow).
    `memory`: refuse a job that does not fit in its chips' memory (a run would crash out of memory) or a cluster
    whose peak power is above the facility's limit (`estimate` times both and says so).
    """
    problems = feasibility_problems(scenario) if memory else []
    problems += power_problems(scenario, facility=memory)
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
