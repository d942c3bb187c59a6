"""The dashboard: the five factors as a waterfall, live charts, counts, the clock. Display only."""

from __future__ import annotations

from collections import deque

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Label, Sparkline, Static

from ..challenge import ChallengeStatus
from ..console import FACTOR_NAMES, si
from ..engine import Snapshot
from ..perf import StepEstimate
from ..scenario.units import human_duration


def clock_text(t: float) -> str:
    days, rest = divmod(int(t), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}d {h:02d}:{m:02d}:{s:02d}"


def speed_text(speed: float) -> str:
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if speed >= size:
            return f"{speed / size:g} {unit}/s"
    return f"{speed:g} s/s"


class Waterfall(Widget):
    """Peak → × G → × C → × N → × E → × S → delivered, as bars."""

    COMPONENT_CLASSES = {"waterfall--bar", "waterfall--delivered", "waterfall--name", "waterfall--low"}
    DEFAULT_CSS = "Waterfall { height: 8; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.peak = 0.0
        self.factors: dict[str, float] = {}

    def set(self, peak: float, factors: dict[str, float]) -> None:
        if (peak, factors) != (self.peak, self.factors):
            self.peak, self.factors = peak, dict(factors)
            self.refresh()

    def render(self) -> Table:
        width = max(6, self.size.width - 27)
        bar_style = self.get_component_rich_style("waterfall--bar")
        low = self.get_component_rich_style("waterfall--low")
        name_style = self.get_component_rich_style("waterfall--name")
        out = self.get_component_rich_style("waterfall--delivered")
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, width=12)
        table.add_column(justify="right", no_wrap=True, width=7)
        table.add_column(no_wrap=True)
        table.add_row(Text("peak BF16", name_style), si(self.peak, "F", 3), Text("█" * width, bar_style))
        running = 1.0
        for key, name, _ in FACTOR_NAMES:
            f = self.factors.get(key, 1.0)
            running *= f
            style = low if f < 0.8 else bar_style
            table.add_row(Text(f"× {name}", name_style), f"{f:.3f}", Text(_bar(running, width), style))
        table.add_row(Text("= delivered", out), si(self.peak * running, "F", 3),
                      Text(_bar(running, width) + f" {running:.1%}", out))  # fmt: skip
        return table


def _bar(fraction: float, width: int) -> str:
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    return "█" * full + (" ▏▎▍▌▋▊▉"[int((cells - full) * 8)] if full < width else "")


class Dashboard(VerticalScroll):
    """Everything the factory is producing, updated every frame."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rate_history: deque[float] = deque(maxlen=240)
        self.ettr_history: deque[float] = deque(maxlen=240)

    def compose(self) -> ComposeResult:
        yield Static(id="challenge")
        yield Static(id="clock")
        yield Waterfall(id="waterfall")
        yield Label("tokens/s", classes="chart-label", id="rate-label")
        yield Sparkline([], id="rate")
        yield Label("ETTR", classes="chart-label", id="ettr-label")
        yield Sparkline([], id="ettr")
        yield Static(id="stats")

    def on_mount(self) -> None:
        self._clock = self.query_one("#clock", Static)
        self._challenge = self.query_one("#challenge", Static)
        self._challenge.display = False
        self._waterfall = self.query_one(Waterfall)
        self._rate = self.query_one("#rate", Sparkline)
        self._ettr = self.query_one("#ettr", Sparkline)
        self._rate_label = self.query_one("#rate-label", Label)
        self._ettr_label = self.query_one("#ettr-label", Label)
        self._stats = self.query_one("#stats", Static)
        self.ready = True

    ready = False

    def clear(self) -> None:
        self.rate_history.clear()
        self.ettr_history.clear()

    @staticmethod
    def _put(widget: Static, text: str) -> None:
        """Update a fixed-height text without a layout pass, and only if it changed (layout is the costly part)."""
        if getattr(widget, "_shown_text", None) != text:
            widget._shown_text = text  # type: ignore[attr-defined]
            widget.update(text, layout=False)

    def show_challenge(self, title: str, status: ChallengeStatus | None) -> None:
        """The objective, a progress bar and the score (hidden when there is no challenge)."""
        if not self.ready:
            return
        self._challenge.display = status is not None
        if status is None:
            return
        width = max(8, self.size.width - 22)
        bar = _bar(status.progress, width).ljust(width)
        state = {"won": "[b $text-success]WON[/]", "lost": "[b $text-error]LOST[/]"}.get(status.state, "")
        self._put(self._challenge, f"[b]{title}[/b] {state}\n{status.headline}\n[$text-primary]{bar}[/] "
                                   f"score [b]{status.score}[/b]\n[dim]{status.reason or status.detail}[/dim]")  # fmt: skip

    def show(self, frame: Snapshot, step: StepEstimate, speed: float, paused: bool, target: float | None,
             storm: bool) -> None:  # fmt: skip
        if not self.ready:
            return
        state = "paused" if paused else frame.job_state
        storm_text = " · [b]storm[/b]" if storm else ""
        self._put(
            self._clock, f"[b]t {clock_text(frame.t)}[/b] · {speed_text(speed)} · {state} · {frame.policy}{storm_text}"
        )
        self._waterfall.set(step.peak_flops, frame.factors)
        self.rate_history.append(frame.tokens_per_s)
        self.ettr_history.append(frame.ettr)
        self._rate.data = list(self.rate_history)
        self._ettr.data = list(self.ettr_history)
        self._put(
            self._rate_label, f"tokens/s {frame.tokens_per_s:,.0f} · fault-free {frame.fault_free_tokens_per_s:,.0f}"
        )
        self._put(self._ettr_label, f"ETTR {frame.ettr:.2%} · S {frame.stability:.4f}")
        c = frame.chips
        spare = f"[$text-primary]{c['spare']:,} spare[/]" if c["spare"] else "[$text-error]spare pool empty[/]"
        lines = [
            f"MFU {frame.mfu:.1%} now · {step.mfu:.1%} per step",
            f"replicas {frame.replicas_up}/{frame.replicas} · stops {frame.interruptions} · isolated {frame.isolations}",
            f"chips [$text-success]{c['healthy']:,} ok[/] [$text-error]{c['failed']:,} failed[/] "
            f"[$text-warning]{c['in_repair']:,} repair[/] {spare}",
        ]
        if target:
            done = min(1.0, frame.progress / target)
            rate = frame.progress / frame.t if frame.t > 0 else frame.fault_free_tokens_per_s
            eta = (target - frame.progress) / rate if rate > 0 else float("inf")
            lines.append(
                f"tokens {frame.progress:.3g} of {target:.3g} ({done:.1%}) · "
                + ("target reached" if done >= 1 else f"ETA {human_duration(eta)}")
            )
        else:
            lines.append(f"tokens {frame.progress:.3g} (durable {frame.tokens:.3g})")
        self._put(self._stats, "\n".join(lines))
