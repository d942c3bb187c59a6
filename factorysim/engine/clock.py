"""SimClock: how fast sim time runs against real time, with pause and single-step.

Sim time is derived from a real-time source, never from counting timer ticks (ticks get dropped).
Both the time source and the sleep are injectable, so tests and benchmarks drive time with no waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

SPEEDS = (1.0, 10.0, 60.0, 600.0, 3600.0, 6 * 3600.0, 86400.0)
"""Sim seconds per real second, from real time up to a day per second."""


class SimClock:
    """Speed multiplier, pause and single-step for a running Simulation."""

    def __init__(
        self,
        speed: float = 3600.0,
        *,
        paused: bool = False,
        frame_interval: float = 0.1,
        time_source: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.paused = paused
        self.frame_interval = frame_interval
        self.now = time_source
        self.sleep = sleep
        self._steps = 0

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def toggle(self) -> bool:
        self.paused = not self.paused
        return self.paused

    def faster(self) -> float:
        self.speed = next((s for s in SPEEDS if s > self.speed), SPEEDS[-1])
        return self.speed

    def slower(self) -> float:
        self.speed = next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0])
        return self.speed

    def request_step(self) -> None:
        """Ask the stream to jump to the next event (works while paused)."""
        self._steps += 1

    def take_step(self) -> bool:
        if self._steps:
            self._steps -= 1
            return True
        return False


class FakeTime:
    """A time source and sleep for tests: sleeping advances the clock instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)
