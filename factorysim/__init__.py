"""factorysim: a sandbox for AI-training clusters.

    from factorysim import load_scenario, estimate
    scenario = load_scenario("scenarios/llama3-70b-1k-h100.toml", overrides=["parallelism.dp=32"])
    step = estimate(scenario)
    print(step.mfu, step.factors)
"""

from __future__ import annotations

import os
from typing import Iterable

from ._version import __version__
from .engine import Fault, SimClock, Simulation
from .perf import StepEstimate, estimate, feasibility_problems
from .scenario import Scenario, ScenarioError, load_scenario_file



def load_scenario(path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()) -> Scenario:
    """Load, validate and check a scenario file (None = the embedded default), with key.path=value overrides.

    Raises ScenarioError listing every problem: syntax, schema, parallel layout, memory per chip.
    """
    scenario = load_scenario_file(path, overrides)
    problems = feasibility_problems(scenario)
    if problems:
        raise ScenarioError(problems, str(path) if path is not None else "<default scenario>")
    return scenario


__all__ = [
    "Fault", "Scenario", "ScenarioError", "SimClock", "Simulation", "StepEstimate", "estimate", "load_scenario",
    "__version__",
]  # fmt: skip
