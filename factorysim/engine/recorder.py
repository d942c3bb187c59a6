"""Where every state change of a run goes: counted, appended to the event log, told to listeners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .log import EventLog
from .scheduler import Scheduler


class Recorder:
    """Records state changes as {t, kind, target, cause, effect} at the clock's time (or a given one)."""

    def __init__(self, clock: Scheduler, log: EventLog | None) -> None:
        self.clock = clock
        self.log = log  # None: the run keeps no log (and no fingerprint)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.events = 0  # state changes recorded; checkpoint commits are counted apart, logged or not

    def emit(self, kind: str, target: str, cause: str | None = None, at: float | None = None, /, **effect: Any) -> None:
        record: dict[str, Any] = {"t": self.clock.now if at is None else at, "kind": kind, "target": target}
        if cause is not None:
            record["cause"] = cause
        if effect:
            record["effect"] = effect
        self.events += kind != "checkpoint"
        if self.log is not None:
            self.log.append(record)
        for listener in self.listeners:
            listener(record)

    def commit(self, t: float, tokens: float) -> None:
        """A checkpoint committed at sim time t."""
        self.emit("checkpoint", "job", None, t, tokens=tokens)
