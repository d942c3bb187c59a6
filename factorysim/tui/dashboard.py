"""The dashboard: the five factors as a waterfall, charts over sim time, counts, the clock. Display only.

Sizes: at 80×24 every number fits without scrolling (the clock sits in the border, the waterfall folds
peak and delivered into one row, the charts step aside); taller panels add the charts, wider ones longer
bars and words.
"""

from __future__ import annotations

import numpy as np
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from ..challenge import ChallengeStatus
from ..console import watts
from ..engine import Snapshot
from ..labels import FACTOR_NAMES, si
from ..perf import StepEstimate
from ..scenario.units import clock_text, human_duration, short_duration

TIME_RANGES: tuple[tuple[str, float | None], ...] = (
    ("6 h", 6 * 3600.0),
    ("1 d", 86400.0),
    ("7 d", 7 * 86400.0),
    ("30 d", 30 * 86400.0),
    ("whole run", None),
)
"""The charts' time windows, cycled with c."""

BLOCKS = " ▁▂▃▄▅▆▇█"


def speed_text(speed: float) -> str:
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if speed >= size:
            return f"{speed / size:g} {unit}/s"
    return f"{speed:g} s/s"


def status_line(t: float, speed: float, state: str, compact: bool = False) -> str:
    """The clock as the dashboard's title: sim time, speed, what the job is doing."""
    if compact:
        return f"{clock_text(t)} · {speed_text(speed)} · {state.replace('running (reduced)', 'reduced')}"
    return f"t {clock_text(t)} · {speed_text(speed)} · {state}"


class Waterfall(Widget):
    """Peak → × G → × C → × N → × E → × S → delivered, as bars. Folded to six rows when `compact`."""

    COMPONENT_CLASSES = {"waterfall--bar", "waterfall--delivered", "waterfall--name", "waterfall--low"}
    DEFAULT_CSS = "Waterfall { height: 7; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.peak = 0.0
        self.factors: dict[str, float] = {}
        self.compact = False

    def set(self, peak: float, factors: dict[str, float]) -> None:
        if (peak, factors) != (self.peak, self.factors):
            self.peak, self.factors = peak, dict(factors)
            self.refresh()

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            self.compact = compact
            self.styles.height = 6 if compact else 7
            self.refresh()

    def render(self) -> Table:
        bar_style = self.get_component_rich_style("waterfall--bar")
        low = self.get_component_rich_style("waterfall--low")
        name_style = self.get_component_rich_style("waterfall--name")
        out = self.get_component_rich_style("waterfall--delivered")
        compact = self.compact
        name_w, value_w = (12, 5) if compact else (12, 7)
        width = max(4, self.size.width - name_w - value_w - 2)
        running = 1.0
        for key, _, _ in FACTOR_NAMES:
            running *= self.factors.get(key, 1.0)
        delivered = self.peak * running
        table = Table.grid(padding=(0, 1))
        if compact:  # peak and delivered share the first row: six rows in all
            table.add_column(no_wrap=True)
            head = Text.assemble(("peak ", name_style), si(self.peak, "F", 3), (" → ", name_style),
                                 (f"{si(delivered, 'F', 3)} delivered", out))  # fmt: skip
            head.no_wrap, head.overflow = True, "ellipsis"
            table.add_row(head)
            rows = Table.grid(padding=(0, 1))
            table.add_row(rows)
        else:
            rows = table
        rows.add_column(no_wrap=True, width=name_w)
        rows.add_column(justify="right", no_wrap=True, width=value_w)
        rows.add_column(no_wrap=True)
        if not compact:
            rows.add_row(Text("peak BF16", name_style), si(self.peak, "F", 3), Text("█" * width, bar_style))
        running = 1.0
        for key, name, _ in FACTOR_NAMES:
            f = self.factors.get(key, 1.0)
            running *= f
            bar = Text(_bar(running, width), low if f < 0.8 else bar_style)
            if compact and key == "stability":
                bar = Text(_bar(running, width - 7).ljust(width - 7), low if f < 0.8 else bar_style)
                bar.append(f"{running:7.1%}", out)
            rows.add_row(Text(f"× {name}", name_style), f"{f:.3f}", bar)
        if not compact:
            rows.add_row(Text("= delivered", out), si(delivered, "F", 3),
                         Text(_bar(running, width - 7).ljust(width - 7) + f"{running:7.1%}", out))  # fmt: skip
        return table


def _bar(fraction: float, width: int) -> str:
    width = max(1, width)
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    return "█" * full + (" ▏▎▍▌▋▊▉"[int((cells - full) * 8)] if full < width else "")


def _nice_low(lo: float, hi: float, percent: bool) -> float:
    """A round lower bound for a y axis that shows a small dip as a dip, not a collapse."""
    if hi <= 0:
        return 0.0
    if not percent:
        return 0.0
    span = max(hi - lo, 1e-4)
    step = 10 ** np.floor(np.log10(span))
    return max(0.0, float(np.floor(lo / step) * step))


class TimeChart(Widget):
    """A value over sim time with its axes: the y scale at the left, the time window along the bottom.

    Values are the engine's samples (taken in sim time, never from UI ticks), held as steps: each column
    shows the last sample at or before its time.
    """

    COMPONENT_CLASSES = {"chart--bar", "chart--axis", "chart--title"}
    DEFAULT_CSS = "TimeChart { height: 4; }"
    AXIS = 7

    def __init__(self, title: str, *, percent: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.percent = percent
        self.headline = ""
        self.window: float | None = TIME_RANGES[0][1]
        self.window_name = TIME_RANGES[0][0]
        self._t = np.zeros(0)
        self._v = np.zeros(0)
        self._now = 0.0
        self._ceiling: float | None = None
        self._key: tuple | None = None

    def set(self, t: np.ndarray, v: np.ndarray, now: float, headline: str, ceiling: float | None = None) -> None:
        key = (len(t), now, headline, ceiling, self.window_name, float(v[-1]) if len(v) else None)
        if key == self._key:
            return
        self._key = key
        self._t, self._v, self._now, self.headline, self._ceiling = t, v, now, headline, ceiling
        self.refresh()

    def set_window(self, name: str, seconds: float | None) -> None:
        self.window_name, self.window = name, seconds
        self._key = None
        self.refresh()

    def _fmt(self, value: float) -> str:
        if self.percent:
            return f"{value:.1%}" if value < 0.999995 else "100%"
        return si(value, "", 3)

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        axis_style = self.get_component_rich_style("chart--axis")
        bar_style = self.get_component_rich_style("chart--bar")
        title_style = self.get_component_rich_style("chart--title")
        out = Text(no_wrap=True, overflow="crop")
        out.append(self.title + " ", title_style)
        out.append(self.headline)
        rows = max(1, height - 2)
        cols = max(4, width - self.AXIS - 1)
        t, v, now = self._t, self._v, self._now
        start = 0.0 if self.window is None else now - self.window
        start = max(start, 0.0) if self.window is None else start
        span = max(now - start, 1e-9)
        if len(t):
            ends = start + span * (np.arange(cols) + 1) / cols
            idx = np.searchsorted(t, ends, side="right") - 1
            values = np.where(idx >= 0, v[np.clip(idx, 0, None)], np.nan)
            values[ends < t[0]] = np.nan
        else:
            values = np.full(cols, np.nan)
        seen = values[~np.isnan(values)]
        hi = max(float(seen.max()) if len(seen) else 0.0, self._ceiling or 0.0)
        lo = _nice_low(float(seen.min()) if len(seen) else 0.0, hi, self.percent)
        if hi <= lo:
            lo = max(0.0, hi - 0.01) if self.percent else lo
            hi = lo + (0.01 if self.percent else 1.0) if hi <= lo else hi
        levels = np.where(np.isnan(values), -1.0, (np.clip(values, lo, hi) - lo) / (hi - lo) * rows * 8)
        for r in range(rows):
            out.append("\n")
            label = self._fmt(hi) if r == 0 else (self._fmt(lo) if r == rows - 1 else "")
            out.append(label.rjust(self.AXIS - 1)[: self.AXIS - 1] + " ┤"[r == 0 or r == rows - 1], axis_style)
            floor = (rows - 1 - r) * 8
            cells = []
            for level in levels:
                if level < 0:
                    cells.append(" ")
                else:
                    cells.append(BLOCKS[int(min(8, max(0, level - floor)))] if level > floor else " ")
            if rows == 1 or r == rows - 1:  # the bottom row always shows where the data is
                cells = [c if c != " " or lv < 0 else "▁" for c, lv in zip(cells, levels, strict=True)]
            out.append("".join(cells), bar_style)
        out.append("\n")
        left = f"−{short_duration(span)}" if self.window is not None or start > 0 else "t=0"
        right = f"now ({self.window_name})"
        fill = max(1, cols - len(left) - len(right))
        out.append(" " * (self.AXIS - 1) + "└" + left + "─" * fill + right, axis_style)
        return out


class Dashboard(Vertical, can_focus=True):
    """Everything the factory is producing, updated every frame."""

    ALLOW_MAXIMIZE = True

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.compact = False
        self.window = 0

    def compose(self) -> ComposeResult:
        yield Static(id="challenge")
        yield Waterfall(id="waterfall")
        yield TimeChart("tokens/s", id="rate")
        yield TimeChart("ETTR", percent=True, id="ettr")
        yield Static(id="stats")

    def on_mount(self) -> None:
        self._challenge = self.query_one("#challenge", Static)
        self._challenge.display = False
        self._waterfall = self.query_one(Waterfall)
        self._rate = self.query_one("#rate", TimeChart)
        self._ettr = self.query_one("#ettr", TimeChart)
        self._stats = self.query_one("#stats", Static)
        self.ready = True

    ready = False

    def rows_needed(self, charts: bool) -> int:
        """Rows the dashboard needs to show every number (and the charts, if asked), border included."""
        challenge = (2 if self.compact else 5) if self._challenge.display else 0
        if self.compact:  # no margins
            return 2 + challenge + 6 + (8 if charts else 0) + 9
        return 2 + challenge + 7 + (10 if charts else 0) + 10

    def set_compact(self, compact: bool) -> None:
        self.compact = compact
        self.set_class(compact, "-compact")
        self._waterfall.set_compact(compact)
        self._challenge.styles.height = 2 if compact else 4

    def cycle_window(self) -> str:
        """The next time window for the charts; returns its name."""
        self.window = (self.window + 1) % len(TIME_RANGES)
        name, seconds = TIME_RANGES[self.window]
        self._rate.set_window(name, seconds)
        self._ettr.set_window(name, seconds)
        return name

    def clear(self) -> None:
        self._key = None

    @staticmethod
    def _put(widget: Static, text: str | Text | Table, key: object = None) -> None:
        """Update a fixed-height text without a layout pass, and only if it changed (layout is the costly part)."""
        key = text if key is None else key
        if getattr(widget, "_shown_key", None) != key:
            widget._shown_key = key  # type: ignore[attr-defined]
            widget.update(text, layout=False)

    def show_challenge(self, title: str, status: ChallengeStatus | None) -> None:
        """The objective, a progress bar and the score (hidden when there is no challenge)."""
        if not self.ready:
            return
        if self._challenge.display != (status is not None):
            self._challenge.display = status is not None
        if status is None:
            return
        width = max(8, self.size.width - 18)
        bar = _bar(status.progress, width).ljust(width)
        state = {"won": "[b $text-success]WON[/]", "lost": "[b $text-error]LOST[/]"}.get(status.state, "")
        progress = f"[$text-primary]{bar}[/] score [b]{status.score}[/b]"
        if self.compact:
            text = f"[b]{_esc(title)}[/b] {state}\n{progress}"
        else:
            text = f"[b]{_esc(title)}[/b] {state}\n{_esc(status.headline)}\n{progress}\n[dim]{_esc(status.reason or status.detail)}[/dim]"
        self._put(self._challenge, text)

    def show(self, frame: Snapshot, step: StepEstimate, speed: float, paused: bool, target: float | None,
             storm: bool, series: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
             spare_nodes: int = 1) -> None:  # fmt: skip
        """One frame; spare_nodes is the pool's configured size (0: "none" rather than "empty")."""
        if not self.ready:
            return
        state = "paused" if paused else frame.job_state
        title = status_line(frame.t, speed, state, self.compact)
        if title != self.border_title:
            self.border_title = title
        subtitle = frame.policy + (" · STORM" if storm else "")
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle
        self._waterfall.set(step.peak_flops, frame.factors)
        if self._rate.display and series is not None:
            t, rate, ettr = series
            t, rate, ettr = np.append(t, frame.t), np.append(rate, frame.tokens_per_s), np.append(ettr, frame.ettr)
            self._rate.set(t, rate, frame.t, f"{frame.tokens_per_s:,.0f}", ceiling=frame.fault_free_tokens_per_s)
            self._ettr.set(t, ettr, frame.t, f"{frame.ettr:.2%}", ceiling=1.0)
        self._put(self._stats, self._stats_table(frame, step, target, spare_nodes),
                  key=(frame, step.mfu, target, self.compact, spare_nodes))  # fmt: skip

    def _stats_table(self, frame: Snapshot, step: StepEstimate, target: float | None, spare_nodes: int) -> Table:
        """Label, value, label, value: every count the run has, labels first."""
        narrow = self.compact
        count = (lambda x: si(x, "", 3)) if narrow else (lambda x: f"{x:,.0f}")
        c = frame.chips
        if c["spare"]:
            spares = Text(f"{c['spare']:,}")
        else:  # the pool ran dry, or the cluster has none
            spares = Text("empty", "bold") if spare_nodes else Text("none", "dim")
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True, min_width=8)
        table.add_column(justify="right", no_wrap=True, min_width=7 if narrow else 12)
        table.add_column(style="dim", no_wrap=True, min_width=9)
        table.add_column(justify="right", no_wrap=True, min_width=5 if narrow else 12)
        rows: list[tuple[str, str | Text, str, str]] = [
            ("tokens/s", count(frame.tokens_per_s), "no faults", count(frame.fault_free_tokens_per_s)),
            (
                "ETTR",
                f"{frame.ettr:.2%}",
                "stability",
                f"{frame.stability:.3f}" if narrow else f"{frame.stability:.4f}",
            ),
            ("MFU now", f"{frame.mfu:.1%}", "per step", f"{step.mfu:.1%}"),
            ("replicas", f"{frame.replicas_up}/{frame.replicas}", "stops", f"{frame.interruptions}"),
            ("chips ok", f"{c['healthy']:,}", "isolated", f"{frame.isolations}"),
            ("failed", Text(f"{c['failed']:,}", "bold" if c["failed"] else ""), "in repair", f"{c['in_repair']:,}"),
            *_power_rows(frame, narrow),
        ]
        if target:
            done = min(1.0, frame.progress / target)
            rate = frame.progress / frame.t if frame.t > 0 else frame.fault_free_tokens_per_s
            eta = (target - frame.progress) / rate if rate > 0 else float("inf")
            when = "reached" if done >= 1 else human_duration(eta)
            if narrow and when.endswith((" d", " h")) and len(when) > 5:  # 20.7 d → 21 d: fits beside the spares
                when = f"{float(when[:-2]):.0f}{when[-2:]}"
            if narrow:  # the ETA beside the spares, the tokens on a line of their own
                rows.append(("spares", spares, "ETA", when))
                line = f"{si(frame.progress, '', 3)} of {si(target, '', 3)} ({done:.1%})"
            else:
                per_kwh = f"{frame.tokens_per_kwh:,.0f}" if frame.power_w is not None else ""
                rows.append(("spares", spares, "tok/kWh" if per_kwh else "", per_kwh))
                line = f"{frame.progress:.3g} of {target:.3g} ({done:.1%}) · " + (
                    "target reached" if done >= 1 else f"ETA {when}"
                )
        else:
            rows.append(("spares", spares, "durable", si(frame.tokens, "", 3)))
            line = f"{frame.progress:.3g}"
        for row in rows:
            table.add_row(*row)
        outer = Table.grid(expand=True)
        outer.add_column(no_wrap=True, overflow="ellipsis")
        outer.add_row(table)
        extra = []
        if frame.power_w is not None and frame.tokens_per_kwh > 0 and (narrow or not target):
            extra.append(f"{si(frame.tokens_per_kwh, '', 3)}/kWh")
        if narrow and frame.power_w is not None and frame.facility_mw is not None:
            extra.append(f"limit {frame.facility_mw:g} MW")
        room = max(
            20, self.size.width - 11
        )  # the tokens line's width inside the dashboard: what does not fit is left out
        for part in extra:
            if len(line) + 3 + len(part) <= room:
                line += " · " + part
        outer.add_row(Text.assemble(("tokens ", "dim"), line))
        return outer


def _power_rows(frame: Snapshot, narrow: bool) -> list[tuple[str, str | Text, str, str]]:
    """The power gauge: the site's draw now (against the facility's limit where set, bold when above it) and the
    largest swing within a minute so far, as the engine reports them (tokens per kWh go on the tokens line;
    on a narrow dashboard the limit goes there too)."""
    if frame.power_w is None:
        return [("power", "unknown", "", "")]
    limit = frame.facility_mw
    over = limit is not None and frame.power_w / 1e6 > limit
    if narrow:
        now = si(frame.power_w, "W", 2)
    else:
        now = watts(frame.power_w) + (f" of {limit:g} MW" if limit is not None else "")
    return [("power", Text(now, "bold" if over else ""), "swing", si(frame.swing_w, "W", 2))]


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
