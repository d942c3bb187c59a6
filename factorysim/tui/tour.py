"""The first-run walkthrough: pause, select, break, watch, fix, one step at a time, each done by doing it."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import Static

STEPS: tuple[tuple[str, str], ...] = (
    ("pause", "Sim time is running. Press [b]space[/b] to pause it."),
    ("select", "Select a part: the [b]arrow keys[/b] or a click. A switch or a server (enter zooms into a rack)."),
    ("fault", "Break it: press [b]f[/b], then [b]enter[/b] on [b]fail[/b]. It turns ✕ and the factors fall."),
    ("resume", "Press [b]space[/b] to let time run: the job finds the fault and recovers (see the events)."),
    ("fix", "Fix it: [b]f[/b] › [b]repair[/b] on the same part, or [b]r[/b] to start the run again."),
)
DONE = "Done. [b]?[/b] lists every key · [b]u[/b] undoes an edit · [b]m[/b] maximises a panel · [b]t[/b] closes this."


def marker_path() -> Path:
    """Where a finished or closed walkthrough is remembered, so it shows on the first run only."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "factorysim" / "walkthrough-done"


class Tour(Static):
    """A step of the walkthrough; `advance(what)` moves on when the player did what the step asks."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.step = 0

    def on_mount(self) -> None:
        self.border_title = "walkthrough"
        self._show()

    @property
    def finished(self) -> bool:
        return self.step >= len(STEPS)

    @property
    def waiting_for(self) -> str | None:
        return None if self.finished else STEPS[self.step][0]

    def advance(self, what: str) -> bool:
        """The player did `what`: go to the next step if it was this one's. True if the tour moved on."""
        if self.waiting_for != what:
            return False
        self.step += 1
        self._show()
        return True

    def restart(self) -> None:
        self.step = 0
        self._show()

    def _show(self) -> None:
        if self.finished:
            self.update(DONE)
        else:
            self.update(f"[dim]{self.step + 1}/{len(STEPS)}[/dim] {STEPS[self.step][1]}")
