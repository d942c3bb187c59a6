"""The event scheduler and the sim clock: a heap of pending events and the time they are handled at.

Events are ordered by (time, priority, insertion order), so a run is deterministic however its time is
advanced. A source (the natural fault process) can feed events lazily, a window at a time, as the
clock needs them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

LATE = 1
"""Priority of events that go after every other event of the same instant (an injection lands there)."""


class Scheduler:
    """Sim time (`now`, seconds) and the events still to come."""

    def __init__(self, feed: Callable[[float], Iterable[tuple[float, str, Any]]] | None = None) -> None:
        """`feed(t)` returns events not yet scheduled up to time t; it is asked before events are taken."""
        self.now = 0.0
        self._heap: list[tuple[float, int, int, str, Any]] = []
        self._seq = 0
        self._feed = feed

    def schedule(self, t: float, kind: str, payload: Any = None, priority: int = 0) -> None:
        """Handle `kind` with `payload` at sim time t."""
        heapq.heappush(self._heap, (t, priority, self._seq, kind, payload))
        self._seq += 1

    def fill(self, t: float) -> None:
        """Take what the feed has up to time t."""
        if self._feed is not None:
            for when, kind, payload in self._feed(t):
                self.schedule(when, kind, payload)

    def next_time(self) -> float | None:
        """When the next event happens (None: nothing is scheduled)."""
        self.fill(self.now)
        return self._heap[0][0] if self._heap else None

    def pop_until(self, t: float) -> tuple[float, str, Any] | None:
        """The next event at or before t as (time, kind, payload), or None. The clock is not moved."""
        if self._heap and self._heap[0][0] <= t:
            when, _, _, kind, payload = heapq.heappop(self._heap)
            return when, kind, payload
        return None

    def __len__(self) -> int:
        return len(self._heap)
