"""Gray faults: chips that run slow and links that degrade or flap, and the job's view of them.

A gray fault belongs to a physical server's chip. The job sees it through the slot that server is in:
a slow chip slows every synchronous step, a flapping link takes a share of the time away, and a
degraded link lowers that rank position's bandwidth in the run's fabric index, so the step physics
finds the new bottleneck. When a server leaves a slot its faults leave the job's view with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..topology.index import FabricIndex


@dataclass
class GrayFault:
    """A gray fault on one chip of a server: a straggler, a degraded or a flapping link."""

    server: int
    local: int
    kind: str  # straggle | degrade | degrade_up | flap
    factor: float
    end: float
    cause: str


class GrayFaults:
    """The gray faults in force, by token, and their effect on the job's slots."""

    def __init__(self, chips_per_node: int, index: FabricIndex) -> None:
        self.cpn = chips_per_node
        self.index = index  # the run's own: degraded links are written here
        self._faults: dict[int, GrayFault] = {}
        self._seq = 0
        self._touched_slots: set[int] = set()
        self._slow: dict[int, float] = {}  # job chip -> speed
        self._flap: dict[int, float] = {}  # job chip -> share of time up

    def __iter__(self) -> Iterator[GrayFault]:
        return iter(self._faults.values())

    def add(self, fault: GrayFault) -> int:
        """A new gray fault; returns its token (for its end and its eviction)."""
        token = self._seq
        self._seq += 1
        self._faults[token] = fault
        return token

    def get(self, token: int) -> GrayFault | None:
        return self._faults.get(token)

    def remove(self, token: int) -> GrayFault | None:
        return self._faults.pop(token, None)

    def tokens_on(self, server: int) -> list[int]:
        return [token for token, g in self._faults.items() if g.server == server]

    # ------------------------------------------------------------ the job's view

    def show(self, slot: int, server: int) -> None:
        """Make the job's view of a slot's chips match the gray faults of the server now in it (-1: none)."""
        base = slot * self.cpn
        wanted: dict[tuple[str, int], float] = {}
        if server >= 0:
            for g in self._faults.values():
                if g.server == server:
                    key = (g.kind, g.local)
                    wanted[key] = min(wanted.get(key, 1.0), g.factor)
        if not wanted and slot not in self._touched_slots:
            return
        index = self.index
        for local in range(self.cpn):
            chip = base + local
            speed = wanted.get(("straggle", local), 1.0)
            if speed != 1.0:
                self._slow[chip] = speed
            else:
                self._slow.pop(chip, None)
            flap = wanted.get(("flap", local), 1.0)
            if flap != 1.0:
                self._flap[chip] = flap
            else:
                self._flap.pop(chip, None)
            nic = wanted.get(("degrade", local), 1.0)
            if index.nic_health[chip] != nic:
                index.set_health("nic", chip, nic)
            up = wanted.get(("degrade_up", local), 1.0)
            if index.up_health[chip] != up:
                index.set_health("scale_up", chip, up)
        if wanted:
            self._touched_slots.add(slot)
        else:
            self._touched_slots.discard(slot)

    def slowest(self, training: Callable[[int], bool]) -> float:
        """Speed of the slowest chip in a training slot (1: none is slow)."""
        if not self._slow:
            return 1.0
        return min((v for chip, v in self._slow.items() if training(chip // self.cpn)), default=1.0)

    def link_uptime(self, training: Callable[[int], bool]) -> float:
        """Share of time the worst flapping link of a training slot is up (1: none flaps)."""
        if not self._flap:
            return 1.0
        return min((v for chip, v in self._flap.items() if training(chip // self.cpn)), default=1.0)
