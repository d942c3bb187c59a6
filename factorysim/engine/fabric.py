"""The run's own fabric health: switches that are down or degraded, in an index no one else writes to.

A run writes fault health (degraded links, spines and cores down) into a fabric index. That index is
the run's own: a caller that lends its index (the sandbox keeps one per cluster) gets it back untouched,
so a new run on the same cluster starts healthy and two runs never see each other's faults.
"""

from __future__ import annotations

import copy

import numpy as np

from ..topology.index import FabricIndex


def own_index(shared: FabricIndex) -> FabricIndex:
    """An index with the same fabric as `shared` (arrays shared, never written) and health of its own. The group
    placements `shared` holds come along (where each group sits does not depend on health; their per-leaf
    bandwidth minima are the run's own, read afresh from its health): a run does not place its job again."""
    own = FabricIndex(
        shared.plan,
        nic_base=shared.nic_base,
        up_base=shared.up_base,
        chip_leaf=shared.leaf,
        leaf_pod=shared.leaf_pod,
        spine_pod=shared.spine_pod,
        uplinks=(shared.up_leaf, shared.up_spine, shared.up_bw),
        corelinks=(shared.core_spine, shared.core_core, shared.core_bw),
        cores=len(shared.core_health),
    )
    for key, shape in shared._shapes.items():
        mine = copy.copy(shape)
        mine.out_min, mine.up_min, mine.at_version = (
            np.full_like(shape.out_min, np.inf),
            np.full_like(shape.up_min, np.inf),
            -1,
        )
        own._shapes[key] = mine
    return own


class SwitchHealth:
    """Leaf, spine and core switches that are down or degraded now.

    A spine or core lowers the bandwidth of the paths through it (written into the run's index). A leaf
    takes its servers' fabric ports down: the servers fail and the job sees that, so the leaf's own health
    is kept here for display, until the last of its servers is back.
    """

    def __init__(self, index: FabricIndex) -> None:
        self.index = index
        self._down: dict[tuple[str, int], float] = {}  # (spine|core, index) -> health
        self._leaves: dict[int, float] = {}  # leaf -> sim time its servers are all back

    def set(self, kind: str, index: int, health: float) -> None:
        """A spine or core goes down (0) or degrades (between 0 and 1)."""
        self.index.set_health(kind, index, health)
        self._down[(kind, index)] = health

    def restore(self, kind: str, index: int) -> bool:
        """A spine or core is healthy again; False if it was not down."""
        if self._down.pop((kind, index), None) is None:
            return False
        self.index.set_health(kind, index, 1.0)
        return True

    def leaf_down(self, leaf: int, until: float) -> None:
        self._leaves[leaf] = max(until, self._leaves.get(leaf, until))

    def leaf_back(self, leaf: int) -> None:
        self._leaves.pop(leaf, None)

    def health(self, kind: str, index: int, now: float) -> float | None:
        """Health of a switch that is down or degraded at `now` (None: healthy)."""
        if kind == "leaf":
            until = self._leaves.get(index)
            return 0.0 if until is not None and until > now else None
        return self._down.get((kind, index))

    def any_unhealthy(self, kind: str, now: float) -> bool:
        if kind == "leaf":
            return any(until > now for until in self._leaves.values())
        return any(k == kind for k, _ in self._down)
