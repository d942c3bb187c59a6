"""Long work on the command line: a budget checked before it starts, progress with an ETA while it lasts,
and Ctrl-C that stops it cleanly between steps (the caller then reports what was done)."""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Any

from .scenario.errors import Problem, ScenarioError

SHOW_AFTER = 2.0
"""Seconds of work before a progress bar appears (shorter work prints nothing extra)."""


def check_work(runs: list[tuple[Any, float, int]], yes: bool) -> None:
    """Refuse, before it starts, work past the budget unless --yes, and work too large to draw at all.
    `runs`: (scenario, sim duration, number of runs) for each scenario the command runs."""
    from .engine.budget import MAX_WEEKLY_EVENTS, WORK_BUDGET, estimate_work

    works = [estimate_work(scenario, duration, count) for scenario, duration, count in runs]
    for work in works:
        if work.too_large:
            raise ScenarioError([Problem("reliability.rates", (
                f"about {work.per_week:,.0f} fault events a sim week; at most {MAX_WEEKLY_EVENTS:,} can be drawn "
                "at once: lower the rates or reliability.rate_multiplier"))])  # fmt: skip
    total = sum(work.events for work in works)
    if total > WORK_BUDGET and not yes:
        what = works[0].describe() if len(works) == 1 else f"about {total:,.0f} fault events in all"
        raise ScenarioError([Problem("work budget", (
            f"{what}, past the budget of {WORK_BUDGET:,}; add --yes to run it anyway, or shorten --duration, "
            "run fewer --seeds or lower the fault rates"))])  # fmt: skip


class Progress:
    """A progress bar with elapsed time and ETA on stderr, shown only on a terminal and only once the work
    has lasted SHOW_AFTER seconds."""

    def __init__(self, label: str, total: float, show_after: float = SHOW_AFTER) -> None:
        self.label, self.total, self.show_after = label, total, show_after
        self.done = 0.0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        self.start = time.monotonic()
        return self

    def update(self, done: float) -> None:
        self.done = done
        if self._bar is None and time.monotonic() - self.start >= self.show_after and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn(self.label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)  # fmt: skip
            self._task = self._bar.add_task(self.label, total=self.total)
            for task in self._bar.tasks:  # the elapsed time counts from the start of the work, not of the bar
                if task.id == self._task and task.start_time is not None:
                    task.start_time -= time.monotonic() - self.start
            self._bar.start()
        if self._bar is not None:
            self._bar.update(self._task, completed=done)

    def advance(self, n: float = 1) -> None:
        self.update(self.done + n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


class Interruptible:
    """Ctrl-C sets `stopped` instead of raising, so long work stops between steps with its state whole and
    the caller can report what was done. A second Ctrl-C stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.stopped = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        print("\nstopping… (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> Interruptible:
        try:
            self._previous: Any = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: Ctrl-C keeps its usual meaning
            self._previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
