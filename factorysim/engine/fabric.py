"""The run's own fabric health: switches that are down or degraded, in an index no one else writes to.

A run writes fault health (degraded links, spines and cores down) into a fabric index. That index is
the run's own: a caller that lends its index (the sandbox keeps one per cluster) gets it back untouched,
so a new run on the same cluster starts healthy and two runs never see each other's faults.
"""

from __future__ import annotations

from ..topology.index import FabricIndex


def own_index(shared: FabricIndex) -> FabricIndex:
    """The run's index: `shared`'s fabric and group placements, with health of its own (FabricIndex.healthy_copy)."""
    return shared.healthy_copy()


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
