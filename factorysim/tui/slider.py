"""The time slider of a recorded run: where the replay is, and a click to go anywhere."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from ..scenario.units import clock_text


class TimeSlider(Widget):
    """▶ 2d 03:14 ━━━━━●──────── 30d 00:00. Click to jump; [ ] step 1 %, { } step 10 %, home/end."""

    COMPONENT_CLASSES = {"slider--done", "slider--left", "slider--knob"}
    DEFAULT_CSS = "TimeSlider { height: 1; }"

    class Seek(Message):
        def __init__(self, t: float) -> None:
            super().__init__()
            self.t = t

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.t, self.end, self.paused = 0.0, 1.0, True

    def set(self, t: float, end: float, paused: bool) -> None:
        if (t, end, paused) != (self.t, self.end, self.paused):
            self.t, self.end, self.paused = t, max(end, 1e-9), paused
            self.refresh()

    def _track(self) -> tuple[int, int]:
        left = len(self._label(self.t)) + 1
        return left, max(4, self.size.width - left - len(clock_text(self.end)) - 1)

    def _label(self, t: float) -> str:
        return f"{'⏸' if self.paused else '▶'} {clock_text(t)}"

    def render(self) -> Text:
        _, width = self._track()
        pos = min(width - 1, int(self.t / self.end * (width - 1) + 0.5))
        text = Text(self._label(self.t) + " ")
        text.append("━" * pos, self.get_component_rich_style("slider--done"))
        text.append("●", self.get_component_rich_style("slider--knob"))
        text.append("─" * (width - pos - 1), self.get_component_rich_style("slider--left"))
        text.append(" " + clock_text(self.end))
        return text

    def on_click(self, event: events.Click) -> None:
        left, width = self._track()
        fraction = min(1.0, max(0.0, (event.x - left) / max(1, width - 1)))
        self.post_message(self.Seek(fraction * self.end))
