"""Throughput of the job in a given cluster state, from the step physics, cached per state."""

from __future__ import annotations

from dataclasses import replace
from math import ceil

from ..perf import StepEstimate, estimate_step, step_links
from ..perf.step import StepLinks
from ..scenario.models import Scenario
from ..scenario.parallel import resolve_layout
from ..topology.index import FabricIndex

SHARED_LIMIT = 65536
"""Estimates a shared cache holds before it starts again."""


class Throughput:
    """Step estimates for the job with some data-parallel replicas out, a slowest chip, and the fabric's health.

    A replica that drops out leaves the others' work unchanged (each keeps its micro-batches), so the
    global batch shrinks with it. The index is the job's view of the fabric, by rank position: a spare
    that takes a failed server's place takes its position and its links.
    """

    def __init__(self, scenario: Scenario, index: FabricIndex, shared: dict | None = None) -> None:
        """`shared`: estimates by (layout, links), lent by a caller that runs many jobs whose step physics is
        this one's (a sweep over reliability keys): an estimate is a function of the scenario, the layout and
        the links alone, so runs that meet the same state compute it once."""
        self.scenario = scenario
        self.index = index
        self.layout = resolve_layout(scenario)
        self._cache: dict[tuple, StepEstimate] = {}
        self._shared = shared
        self._links: tuple[int, StepLinks] | None = None  # (index version, the job's links then)
        self.base = self.at(self.layout.dp, 1.0)

    def at(self, replicas: int, slowest: float) -> StepEstimate:
        key = (replicas, slowest, self.index.version)
        found = self._cache.get(key)
        if found is not None:
            return found
        full = self.layout
        version = self.index.version
        if self._links is None or self._links[0] != version:
            self._links = (version, step_links(self.index, full))
        links = self._links[1]
        if replicas != full.dp:
            dp = links.dp
            links = replace(links, dp=dp.resized(replicas, ceil(dp.n_nodes * replicas / full.dp)))
        links = replace(links, slowest_speed=slowest)
        layout = full.with_dp(replicas)
        shared = self._shared
        if shared is None:
            found = estimate_step(self.scenario, layout, links)
        else:
            found = shared.get((layout, links))
            if found is None:
                found = estimate_step(self.scenario, layout, links)
                if len(shared) > SHARED_LIMIT:
                    shared.clear()
                shared[(layout, links)] = found
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = found
        return found
