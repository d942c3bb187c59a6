"""factorysim: a sandbox for AI-training clusters.

from factorysim import load_scenario, estimate
scenario = load_scenario("scenarios/llama3-70b-1k-h100.toml", overrides=["parallelism.dp=32"])
step = estimate(scenario)
print(step.mfu, step.factors)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from .engine.clock import SimClock
    from .engine.faults import Fault
    from .engine.simulation import Simulation
    from .loading import check_scenario, load_scenario
    from .perf.job import estimate
    from .perf.step import StepEstimate
    from .scenario.errors import Problem, ScenarioError
    from .scenario.models import Scenario

__getattr__ = lazy_exports(globals(), {
    "Fault": ".engine.faults",
    "Problem": ".scenario.errors",
    "Scenario": ".scenario.models",
    "ScenarioError": ".scenario.errors",
    "SimClock": ".engine.clock",
    "Simulation": ".engine.simulation",
    "StepEstimate": ".perf.step",
    "check_scenario": ".loading",
    "estimate": ".perf.job",
    "load_scenario": ".loading",
})  # fmt: skip

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
