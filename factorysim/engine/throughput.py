"""Throughput of the job in a given cluster state, from the step physics, cached per state."""

from __future__ import annotations

from dataclasses import replace
from math import ceil

from ..perf import StepEstimate, estimate_step, step_links
from ..scenario.models import Scenario
from ..scenario.parallel import resolve_layout
from ..topology.index import FabricIndex


class Throughput:
    """Step estimates for the job with some data-parallel replicas out, a slowest chip, and the fabric's health.

    A replica that drops out leaves the others' work unchanged (each keeps its micro-batches), so the
    global batch shrinks with it. The index is the job's view of the fabric, by rank position: a spare
    that takes a failed server's place takes its position and its links.
    """

    def __init__(self, scenario: Scenario, index: FabricIndex) -> None:
        self.scenario = scenario
        self.index = index
        self.layout = resolve_layout(scenario)
        self._cache: dict[tuple, StepEstimate] = {}
        self.base = self.at(self.layout.dp, 1.0)

    def at(self, replicas: int, slowest: float) -> StepEstimate:
        key = (replicas, slowest, self.index.version)
        found = self._cache.get(key)
        if found is not None:
            return found
        full = self.layout
        links = step_links(self.index, full)
        if replicas != full.dp:
            dp = links.dp
            links = replace(links, dp=dp.resized(replicas, ceil(dp.n_nodes * replicas / full.dp)))
        links = replace(links, slowest_speed=slowest)
        found = estimate_step(self.scenario, full.with_dp(replicas), links)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = found
        return found
