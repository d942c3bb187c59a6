"""The factorysim sandbox: build a cluster, break it, watch the factory.

The app is a thin shell over factorysim.sandbox.Sandbox (scenario, graph, simulation): it draws, it
forwards what the player does, and it never computes physics. Sim time comes from a SimClock (real
time × speed), never from counting timer ticks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Footer, Header, Input, Label, Static

from ..engine import Fault, SimClock, Snapshot
from ..sandbox import Sandbox
from ..scenario import Scenario, ScenarioError
from ..topology.layout import Box
from ..topology.targets import parse_target
from . import keys
from .canvas import GLYPHS, STATE_WORDS, TopologyCanvas, free_spot, legend_items
from .dashboard import Dashboard
from .events import EventLog, node_of
from .inspector import Inspector
from .screens import BriefScreen, EndScreen, FaultScreen, HelpScreen, PathScreen
from .slider import TimeSlider
from .tour import Tour

COLOUR_BLIND = Theme(
    name="factorysim-colour-blind",
    primary="#56B4E9",
    secondary="#009E73",
    accent="#CC79A7",
    warning="#E69F00",
    error="#D55E00",
    success="#0072B2",
    foreground="#E8E8E8",
    background="#101418",
    surface="#181E24",
    panel="#222A32",
    dark=True,
)
"""Okabe and Ito's palette, told apart with every common form of colour blindness (ok blue, failed vermillion)."""

STORM_RATE = 6 / 3600.0
"""Faults per sim second while a storm rages (six an hour)."""
LOG_FLUSH = 0.5
"""Seconds between writes to the event log (each write costs a layout pass)."""


class FactorySimApp(App[None]):
    """The sandbox app, constructed from a scenario (and the file it came from, if any)."""

    CSS_PATH = "app.tcss"
    TITLE = "factorysim"
    BINDINGS = keys.BINDINGS
    REPLAY_ONLY = {"seek", "seek_to"}
    LIVE_ONLY = {"fault", "storm", "policy", "undo", "redo", "reset_layout", "search_layouts"}
    KEY_HELP = keys.HELP

    def __init__(
        self,
        scenario: Scenario,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: SimClock | None = None,
        seed: int | None = None,
        sandbox: Sandbox | None = None,
        tour: bool = False,
        tour_marker: Path | None = None,
    ) -> None:
        super().__init__()
        self.sandbox = sandbox if sandbox is not None else Sandbox(scenario, path, seed)
        self.clock = clock or SimClock(speed=3600.0, frame_interval=1 / 12)
        self.frames = 0
        self.view = self.sandbox.initial_view()
        self.storm = False
        self._storm_rng = np.random.default_rng([scenario.run.seed, 0x5707])
        self._show_tour = tour
        self._tour_marker = tour_marker
        self._alert_nodes: list[str] = []  # where something broke, latest last, until repaired or looked at
        self._link_note = ""
        self._drawn_events = -1
        self._last_t = 0.0
        self._quit_armed = False
        self._quitting = False
        self._frame: Snapshot | None = None
        self._layout_width = 0
        self._log_flushed = 0.0
        self._announced: object | None = None
        self._fitted: tuple[int, int, bool] | None = None

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(id="header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Label("", id="crumb")
                yield TimeSlider(id="slider")
                yield Tour(id="tour")
                yield TopologyCanvas(id="canvas")
                yield Static("", id="legend")
            yield Dashboard(id="dashboard")
        with Horizontal(id="bottom"):
            yield Inspector(id="inspector")
            yield EventLog(id="events")
        yield Footer()

    async def on_mount(self) -> None:
        # the main screen's widgets, kept: queries would look at whatever screen is on top (a dialog)
        self.register_theme(COLOUR_BLIND)
        self.main_screen = self.screen
        self.canvas = self.query_one(TopologyCanvas)
        self.inspector = self.query_one(Inspector)
        self.dashboard = self.query_one(Dashboard)
        self.events_log = self.query_one(EventLog)
        self.crumb = self.query_one("#crumb", Label)
        self.slider = self.query_one(TimeSlider)
        self.tour = self.query_one(Tour)
        self.legend = self.query_one("#legend", Static)
        self.slider.display = self.sandbox.read_only
        self.tour.display = self._show_tour
        self.inspector.set_read_only(self.sandbox.read_only)
        self._wire_sandbox()
        self.events_log.border_title = "events"
        self.inspector.border_title = "inspector"
        self.dashboard.border_title = "factory output"
        self._fit(self.size.width, self.size.height)
        self.load_view()
        self.canvas.focus()
        self.start_sim()
        if self.sandbox.challenge is not None and not self.sandbox.read_only:
            self._brief(start=True)
        # the editor's widgets are the costliest part of start-up: after the first frame is on screen
        self.call_after_refresh(lambda: self.run_worker(self.inspector.show_scenario(self._values())))

    def on_resize(self, event) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        """Lay the panels out for the terminal: at 80×24 every dashboard number shows without scrolling.

        Narrow terminals get a slimmer dashboard with compact figures; short ones lose the header (its
        title moves into the breadcrumb) and the charts; the top row is as tall as the dashboard needs.
        """
        narrow, short = width < 110, height < 32
        screen = getattr(self, "main_screen", None)
        if screen is None:  # a resize before the panels are mounted
            return
        screen.set_class(narrow, "narrow")
        screen.set_class(short, "short")
        maximised = screen.maximized is self.dashboard
        charts = maximised or height >= 30
        self.dashboard.set_compact((narrow or short) and not maximised)
        for chart in (self.dashboard._rate, self.dashboard._ettr):
            chart.display = charts
        header = 0 if short else 1
        available = height - 1 - header
        need = self.dashboard.rows_needed(charts)
        main = min(max(need, round(available * 0.62)), available - 5)
        self.query_one("#main").styles.height = max(need if available - need >= 3 else available - 3, main)
        self._show_legend()
        self._crumb_text()

    def _show_legend(self) -> None:
        """The states' glyphs and words, as many as the canvas is wide (? shows them all)."""
        width = self.size.width - (37 if self.main_screen.has_class("narrow") else 58) - 2  # the dashboard, as app.tcss
        for short, sep, alert in (({}, "  ", True), ({"failed": "fail", "in_repair": "repair"}, " ", True),
                                  ({"failed": "fail", "in_repair": "repair", "joining": "join"}, " ", False)):  # fmt: skip
            parts = [f"{g} {short.get(s, w)}" for s, g, w in legend_items()] + (["! alert"] if alert else [])
            if len(sep.join(parts)) <= width:
                break
        else:  # the last states go until the rest fit (? lists them all)
            while len(parts) > 1 and len(sep.join(parts)) > width:
                parts.pop()
        coloured = [
            f"[$text-{_COLOUR[s]}]{p[0]}[/]{p[1:]}" for (s, _, _), p in zip(legend_items(), parts, strict=False)
        ]
        coloured += [f"[b $text-error]![/]{p[1:]}" for p in parts[len(legend_items()) :]]
        self.legend.update(sep.join(coloured))

    def _wire_sandbox(self) -> None:
        sb = self.sandbox
        sb.listeners.append(self._on_sim_event)
        canvas = self.canvas
        canvas.state_of = sb.box_state
        canvas.chip_state = sb.chip_state
        canvas.switch_state = sb.switch_state
        canvas.detail_of = self._detail
        canvas.summary_of = self._summary
        canvas.chips_per_node = sb.plan.chips_per_node
        canvas.edit_wires = sb.edited_links()
        self.sub_title = f"{sb.scenario.name} · {sb.scenario.cluster.total_chips:,} chips"
        if sb.replayer is not None:
            self.sub_title = f"replay of {sb.replayer.path} (watch only) · " + self.sub_title
        if sb.challenge is not None:
            self.sub_title = f"challenge: {sb.challenge.title} · " + self.sub_title
        self._alert_nodes.clear()

    def _summary(self, box: Box) -> str:
        """A hover summary: what the box is, its state in words, and its properties."""
        state = self.sandbox.box_state(box)
        lines = [f"{box.label} ({box.kind}): {GLYPHS.get(state, '')} {STATE_WORDS.get(state, state)}"]
        if box.kind in ("pod", "rack") or box.node:
            lines += [f"{k}: {v}" for k, v in self._props(box) if k not in ("node", "kind", "state")]
        elif box.kind.endswith("_strip"):
            kind = box.kind[: -len("_strip")]
            states = [self.sandbox.switch_state(kind, i) for i in range(*box.servers)]
            bad = {s: states.count(s) for s in set(states) if s != "ok"}
            lines.append(", ".join(f"{n} {STATE_WORDS[s]}" for s, n in bad.items()) or "all ok")
        if box.zoom is not None:
            lines.append("enter or double-click: zoom in")
        return "\n".join(lines)

    def _detail(self, box: Box) -> str:
        if box.kind in ("pod", "rack"):
            counts = self.sandbox.group_counts(*box.servers)
            down = counts.get("failed", 0) + counts.get("in_repair", 0)
            text = f"{box.servers[1] - box.servers[0]} srv"
            if down:
                text += f" · {down} down"
            if counts.get("degraded", 0):
                text += f" · {counts['degraded']} slow"
            return text
        return box.detail

    def _canvas_width(self) -> int:
        """Columns the view is laid out in: the canvas less a column for its scrollbar, which comes and goes."""
        return max(40, (self.canvas.size.width or 81) - 1)

    @on(TopologyCanvas.Resized)
    def _canvas_resized(self) -> None:
        if self._canvas_width() != self._layout_width:
            self.load_view(keep_selection=True)

    def load_view(self, keep_selection: bool = False) -> None:
        if self.view.level in ("rack", "server") and not self.sandbox.has_graph:
            self.crumb.update(f"building the cluster graph ({self.sandbox.plan.chips:,} chips) …")
            self._build_graph(keep_selection)
            return
        width = self._layout_width = self._canvas_width()
        scene = self.sandbox.scene(self.view, width)
        self._scene_title = scene.title
        self.canvas.edit_wires = self.sandbox.edited_links()
        self._crumb_text()
        self.canvas.show(scene, keep_selection)
        self._place_alerts()

    def _crumb_text(self) -> None:
        """Where the canvas is (cluster › pod › rack › server), a link in progress, and on short screens the title."""
        if not hasattr(self, "crumb"):
            return
        crumbs = self.sandbox.hierarchy.breadcrumb(self.view)
        text = " › ".join(f"[b]{v.key}[/b]" if v == self.view else v.key for v in crumbs)
        text += f" — {escape(getattr(self, '_scene_title', ''))}"
        if self._link_note:
            text = f"[b reverse $text-accent] LINK [/] {self._link_note}"
        elif self.main_screen.has_class("short"):
            crumbs_only = " › ".join(f"[b]{v.key}[/b]" if v == self.view else v.key for v in crumbs)
            text = f"[b]{escape(self.sub_title)}[/b] │ " + crumbs_only
        self.crumb.update(text)

    def _place_alerts(self) -> None:
        """Mark the boxes of this view that hold something that broke (! on the map)."""
        width = self._layout_width or 100
        boxes = {self.sandbox.box_in_view(self.view, n, width) for n in self._alert_nodes}
        boxes.discard(None)
        if boxes != self.canvas.alerts:
            self.canvas.alerts = boxes  # type: ignore[assignment]
            self.canvas.redraw()

    @work(thread=True, exclusive=True, group="graph")
    def _build_graph(self, keep_selection: bool = False) -> None:
        """The first rack or server view, or link list, needs the graph: a second or two at 100,000 chips."""
        _ = self.sandbox.graph
        self.call_from_thread(self._graph_ready, keep_selection)

    def _graph_ready(self, keep_selection: bool) -> None:
        self.load_view(keep_selection)
        box = self.canvas.selected_box
        if box is not None and box.node:
            self.inspector.forget()
            self.run_worker(self.inspector.show_box(box, self._props(box), self.sandbox.links_of(box.node)))

    def _values(self) -> dict[str, Any]:
        return {f.path: self.sandbox.value(f.path) for f in self.inspector.fields}

    # ------------------------------------------------------------ the run

    def start_sim(self) -> None:
        self._drawn_events = -1
        self._last_t = self.sandbox.sim.now
        self.dashboard.clear()
        if self.sandbox.read_only:
            self._run_replay()
        else:
            self._run()

    @work(exclusive=True, group="sim")
    async def _run_replay(self) -> None:
        """A recording: move through it at the clock's speed; single steps and seeks as asked."""
        sb, clock = self.sandbox, self.clock
        end = sb.recording.end
        last = clock.now()
        self.show_frame(sb.sim.snapshot())
        while True:
            await clock.sleep(max(0.0, last + clock.frame_interval - clock.now()))
            now = clock.now()
            target = None
            if clock.take_step():
                nxt = sb.sim.next_event_time
                target = end if nxt is None else min(end, nxt)
            elif not clock.paused:
                target = min(end, sb.sim.now + (now - last) * clock.speed)
            last = now
            if target is not None and target != sb.sim.now:
                self._seek(target)
            if sb.sim.now >= end and not clock.paused:
                clock.pause()
            self.show_frame(sb.sim.snapshot())

    def _seek(self, t: float) -> None:
        if self.sandbox.seek(t):  # simulated again from the start: the log starts over too
            self.events_log.clear()
            self._alert_nodes.clear()
        self._drawn_events = -1

    @on(TimeSlider.Seek)
    def _slider_seek(self, event: TimeSlider.Seek) -> None:
        self._seek(event.t)
        self.show_frame(self.sandbox.sim.snapshot())

    def action_seek(self, fraction: float) -> None:
        self._slider_seek(TimeSlider.Seek(self.sandbox.sim.now + fraction * self.sandbox.recording.end))

    def action_seek_to(self, fraction: float) -> None:
        self._slider_seek(TimeSlider.Seek(fraction * self.sandbox.recording.end))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Seek keys only for a recorded run. Space pauses unless a dialog or a text field has the key."""
        replay = getattr(self, "sandbox", None) is not None and self.sandbox.read_only
        if action in self.REPLAY_ONLY:
            return replay
        if action == "toggle_pause":
            main = getattr(self, "main_screen", None)
            return self.screen is main and not isinstance(self.focused, Input)
        if action == "brief":
            return getattr(self, "sandbox", None) is not None and self.sandbox.challenge is not None
        return True

    def _watch_only(self) -> bool:
        """A recording: say so (keys that would change it do nothing otherwise)."""
        if self.sandbox.read_only:
            self.notify("a recorded run can be watched, not changed: open its scenario to play it",
                        title="recorded run", severity="warning", timeout=4)  # fmt: skip
            return True
        return False

    @work(exclusive=True, group="sim")
    async def _run(self) -> None:
        sim = self.sandbox.sim
        # a challenge's run stops exactly at its time limit, so the verdict counts nothing past it
        until = self.sandbox.challenge.within if self.sandbox.challenge is not None else None
        async for frame in sim.stream(self.clock, until=until):
            if sim is not self.sandbox.sim:
                return
            if self.storm and frame.t > self._last_t:
                self._storm(frame.t - self._last_t)
                frame = sim.snapshot()
            self._last_t = frame.t
            self.show_frame(frame)

    def show_frame(self, frame: Snapshot) -> None:
        self._frame = frame
        self.frames += 1
        sb = self.sandbox
        series = None
        if sb.sim.series is not None:
            s = sb.sim.series
            series = (s.column("t"), s.column("tokens_per_s"), s.column("ettr"))
        with self.batch_update():
            self.dashboard.show(frame, sb.step, self.clock.speed, self.clock.paused,
                                sb.scenario.workload.target_tokens, self.storm, series,
                                spare_nodes=sb.scenario.cluster.spare_nodes)  # fmt: skip
            self._challenge_frame()
            if sb.read_only:
                self.slider.set(frame.t, sb.recording.end, self.clock.paused)
            now = time.monotonic()
            if now - self._log_flushed >= LOG_FLUSH:
                # one write per flush: every write resizes the log, and a resize costs a layout of the screen
                self.events_log.flush()
                self._log_flushed = now
                self._place_alerts()
            if sb.sim.events != self._drawn_events:
                self._drawn_events = sb.sim.events
                self.canvas.redraw()
                box = self.canvas.selected_box
                if box is not None:
                    self.inspector.update_props(self._props(box))

    def _challenge_frame(self) -> None:
        sb = self.sandbox
        ch, status = sb.challenge, sb.status()
        self.dashboard.show_challenge(ch.title if ch else "", status)
        if ch is None or status is None or not status.over or self._announced is sb.sim:
            return
        self._announced = sb.sim  # once per run
        self.clock.pause()

        def closed(retry: bool | None) -> None:
            if retry:
                self.action_reset()
                self.clock.resume()

        self.push_screen(EndScreen(ch.title, status.state, status.reason, status.score, ch.hint), closed)

    def _storm(self, sim_dt: float) -> None:
        sb, rng = self.sandbox, self._storm_rng
        for _ in range(int(rng.poisson(STORM_RATE * sim_dt))):
            server = int(rng.integers(sb.plan.servers))
            local = int(rng.integers(sb.plan.chips_per_node))
            kind = rng.choice(["fail", "fail", "straggle", "degrade", "flap"])
            target = f"n{server}" if kind == "fail" else f"n{server}.{local}"
            sb.inject(Fault(target, str(kind)))

    def _on_sim_event(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        if kind == "checkpoint" and self.clock.speed > 600:
            return  # too many to read at speed; they are in the recorded log
        self.events_log.add(record)
        node = node_of(record)
        if node is None:
            return
        if kind in ("fault", "gray", "evict"):
            if node in self._alert_nodes:
                self._alert_nodes.remove(node)
            self._alert_nodes.append(node)
            del self._alert_nodes[:-50]
        elif kind in ("repaired", "gray_end", "joined") and node in self._alert_nodes:
            self._alert_nodes.remove(node)

    # ------------------------------------------------------------ canvas messages

    @on(TopologyCanvas.Selected)
    async def _selected(self, event: TopologyCanvas.Selected) -> None:
        box = event.box
        if box is None:
            await self.inspector.show_scenario(self._values())
            return
        if box.node:
            self.tour.advance("select")
        if box.node:  # looked at: its alerts have done their job (placed on the map yet or not)
            width = self._layout_width or 100
            kept = [n for n in self._alert_nodes if self.sandbox.box_in_view(self.view, n, width) != box.id]
            if len(kept) != len(self._alert_nodes):
                self._alert_nodes = kept
                self._place_alerts()
        if box.node and not self.sandbox.has_graph:  # its links come once the graph is built
            await self.inspector.show_box(box, self._props(box), [])
            self._build_graph(keep_selection=True)
            return
        links = self.sandbox.links_of(box.node) if box.node else []
        await self.inspector.show_box(box, self._props(box), links)

    def _props(self, box: Box) -> list[tuple[str, str]]:
        if box.node:
            return self.sandbox.describe(box.node)
        if box.kind in ("pod", "rack"):
            counts = self.sandbox.group_counts(*box.servers)
            return [("servers", f"n{box.servers[0]}-n{box.servers[1] - 1}")] + [
                (k, str(v)) for k, v in counts.items() if v
            ]
        return [("what", box.label)]

    @on(TopologyCanvas.Moved)
    def _moved(self, event: TopologyCanvas.Moved) -> None:
        x, y = event.x, event.y
        if self.canvas.scene is not None and self.canvas.scene.box(event.box_id) is not None:
            x, y = free_spot(self.canvas.scene.boxes, event.box_id, x, y)  # never onto another box
        self.sandbox.move(event.view, event.box_id, x, y)
        self.load_view(keep_selection=True)

    @on(TopologyCanvas.LinkMode)
    def _link_mode(self, event: TopologyCanvas.LinkMode) -> None:
        if not event.on:
            self._link_note = ""
        elif event.source:
            self._link_note = f"from {event.source}: select the other end, l again (escape cancels)"
        else:
            self._link_note = "select where the link starts, l (escape cancels)"
        self.canvas.set_class(event.on, "-linking")
        self._crumb_text()

    @on(TopologyCanvas.LinkRequested)
    async def _link(self, event: TopologyCanvas.LinkRequested) -> None:
        if self._watch_only():
            return
        result = self.sandbox.add_link(event.a, event.b)
        await self._after_edit(result, f"link {event.a} - {event.b} added")

    @on(TopologyCanvas.ZoomRequested)
    def _zoom(self, event: TopologyCanvas.ZoomRequested) -> None:
        self.view = event.view
        self.load_view()

    @on(EventLog.Chosen)
    def _event_chosen(self, event: EventLog.Chosen) -> None:
        self.go_to(event.node)

    def go_to(self, node: str) -> bool:
        """Show a node: zoom to the view that draws it and select its box (jump-to from the log or an alert)."""
        found = self.sandbox.locate(node, self._layout_width or 100)
        if found is None:
            return False
        view, box_id = found
        if self.view != view:
            self.view = view
            self.load_view()
        if not self.sandbox.has_graph and view.level in ("rack", "server"):
            self.call_after_refresh(self._select_when_drawn, box_id, 50)
        else:
            self.canvas.select(box_id)
        self.canvas.focus()
        return True

    def _select_when_drawn(self, box_id: str, tries: int) -> None:
        if self.canvas.scene is not None and self.canvas.scene.box(box_id) is not None:
            self.canvas.select(box_id)
        elif tries > 0:
            self.set_timer(0.1, lambda: self._select_when_drawn(box_id, tries - 1))

    @on(TopologyCanvas.ZoomOutRequested)
    def _zoom_out(self) -> None:
        parent = self.sandbox.hierarchy.parent(self.view)
        if parent is not None:
            child = self.view
            self.view = parent
            self.load_view()
            box = next((b for b in self.canvas.scene.boxes if b.zoom == child), None) if self.canvas.scene else None
            if box is not None:
                self.canvas.select(box.id)

    # ------------------------------------------------------------ inspector messages

    @on(Inspector.Edit)
    async def _edit(self, event: Inspector.Edit) -> None:
        if self._watch_only():
            self.inspector.fill(self._values(), force=event.path)
            return
        result = self.sandbox.edit(event.path, event.value)
        name = event.path.rsplit(".", 1)[-1]
        shown = "default" if event.value is None else repr(event.value)
        if result.ok:
            self.inspector.say(f"✓ {name} = {shown} applied; the run restarted (u undoes)", True)
            self.inspector.show_result(event.path, "")
            self.inspector.fill(self._values())
            self._restarted()
        else:
            now = self.sandbox.value(event.path)
            keeps = f"; it stays {now!r}" if now is not None else "; the default stays"
            self.inspector.say(f"✗ {name} = {shown} refused: {result.message}{keeps}", False)
            self.inspector.show_result(event.path, "✗ " + result.message)
            self.inspector.fill(self._values(), force=event.path)
            self.notify(result.message, title=f"{name} = {shown} refused", severity="error", timeout=6)

    @on(Inspector.LinkEdit)
    async def _link_edit(self, event: Inspector.LinkEdit) -> None:
        if self._watch_only():
            return
        if event.gbps is None:
            result = self.sandbox.remove_link(event.a, event.b)
            what = f"link {event.a} - {event.b} removed"
        else:
            result = self.sandbox.set_link(event.a, event.b, event.gbps)
            what = f"link {event.a} - {event.b} set to {event.gbps:g} Gb/s"
        if not result.ok:
            self.inspector.show_link_result(f"✗ {what} refused: {result.message}")
            self.inspector.restore_link(event.b)
        await self._after_edit(result, what)

    async def _after_edit(self, result, what: str) -> None:
        if not result.ok:
            self.notify(result.message, title="refused", severity="error", timeout=8)
            return
        self.notify(f"{what}; the run restarted (u undoes)", title="topology edited")
        self._restarted()
        box = self.canvas.selected_box
        if box is not None and box.node:
            self.inspector.forget()
            await self.inspector.show_box(box, self._props(box), self.sandbox.links_of(box.node))
            self.inspector.show_link_result(f"✓ {what}; the run restarted (u undoes)")

    def _restarted(self) -> None:
        self.canvas.chips_per_node = self.sandbox.plan.chips_per_node
        self.load_view(keep_selection=True)
        self.start_sim()

    # ------------------------------------------------------------ actions (keys and command palette)

    def action_toggle_pause(self) -> None:
        paused = self.clock.toggle()
        self._refresh_dashboard()
        self.tour.advance("pause" if paused else "resume")
        self.notify("paused" if paused else "running", timeout=1)

    def action_faster(self) -> None:
        self.clock.faster()
        self._refresh_dashboard()

    def action_slower(self) -> None:
        self.clock.slower()
        self._refresh_dashboard()

    def action_next_event(self) -> None:
        self.clock.request_step()

    def _refresh_dashboard(self) -> None:
        if self._frame is not None:
            self.show_frame(self.sandbox.sim.snapshot())

    def action_fault(self) -> None:
        if self._watch_only():
            return
        box = self.canvas.selected_box
        name = box.node if box is not None and box.node else "job"
        target = parse_target(name, self.sandbox.plan)

        def chosen(fault: Fault | None) -> None:
            if fault is None:
                return
            result = self.sandbox.inject(fault)
            if result.ok:
                self.notify(f"{fault.kind} on {fault.target}", title="fault injected", timeout=3)
                self.tour.advance("fix" if fault.kind == "repair" else "fault")
                self._drawn_events = -1
                self._refresh_dashboard()
            else:
                self.notify(result.message, title="refused", severity="error")

        self.push_screen(FaultScreen(target, name), chosen)

    def action_search_layouts(self) -> None:
        if self._watch_only():
            return
        from .search_dialog import Chosen, SearchScreen

        def chosen(pick: Chosen | None) -> None:
            if pick is None:
                return
            if not pick.edits:
                self.notify("that is the scenario's own layout: nothing to change", timeout=3)
                return
            result = self.sandbox.edit_keys(pick.edits, pick.what)
            if result.ok:
                self.notify(f"{pick.what}; the run restarted (u undoes)", title="layout applied", timeout=5)
                self.inspector.fill(self._values())
                self._restarted()
            else:
                self.notify(result.message, title="layout refused", severity="error", timeout=8)

        self.push_screen(SearchScreen(self.sandbox.scenario), chosen)

    def action_storm(self) -> None:
        if self._watch_only():
            return
        self.storm = not self.storm
        self._last_t = self.sandbox.sim.now
        self.notify("fault storm " + ("on: six random faults per sim hour" if self.storm else "off"), timeout=3)
        self._refresh_dashboard()

    def action_policy(self) -> None:
        if self._watch_only():
            return
        new = "isolate-group" if self.sandbox.sim.policy == "checkpoint-restart" else "checkpoint-restart"
        result = self.sandbox.set_policy(new)
        if result.ok:
            self.notify(f"recovery policy: {new} (from the next fault on)", timeout=3)
            self.inspector.fill(self._values())
            self._refresh_dashboard()
        else:
            self.notify(result.message, title="refused", severity="error")

    def action_reset(self) -> None:
        self.sandbox.reset()
        self.events_log.clear()
        self._alert_nodes.clear()
        self.start_sim()
        self.tour.advance("fix")
        self.notify("run reset to t = 0", timeout=2)

    def action_undo(self) -> None:
        self._history(undo=True)

    def action_redo(self) -> None:
        self._history(undo=False)

    def _history(self, undo: bool) -> None:
        if self._watch_only():
            return
        sim = self.sandbox.sim
        what = self.sandbox.undo() if undo else self.sandbox.redo()
        if what is None:
            self.notify(f"nothing to {'undo' if undo else 'redo'}", timeout=2)
            return
        self.notify(what, title="undone" if undo else "redone", timeout=3)
        self.inspector.fill(self._values())
        if self.sandbox.sim is not sim:
            self._restarted()
        else:
            self.load_view(keep_selection=True)
            self._refresh_dashboard()
        box = self.canvas.selected_box
        if box is not None and box.node:
            self.inspector.forget()
            self.run_worker(self.inspector.show_box(box, self._props(box), self.sandbox.links_of(box.node)))

    def action_reset_layout(self) -> None:
        if self._watch_only():
            return
        if self.sandbox.reset_layout(self.view):
            self.load_view(keep_selection=True)
            self.notify(f"boxes of {self.view.key} back in place (u undoes)", timeout=3)
        else:
            self.notify("nothing was moved in this view", timeout=2)

    def action_maximize_panel(self) -> None:
        """Maximise the focused panel (the canvas if nothing is focused); again, or escape, restores."""
        screen = self.main_screen
        if screen.maximized is not None:
            screen.minimize()
        else:
            focused = self.focused if self.screen is screen else None
            screen.maximize(focused or self.canvas)
        self.call_after_refresh(self._fit, self.size.width, self.size.height)

    def action_chart_window(self) -> None:
        name = self.dashboard.cycle_window()
        self.notify(f"charts show {name}", timeout=2)

    def action_go_alert(self) -> None:
        if not self._alert_nodes:
            self.notify("no alerts: nothing has broken since you last looked", timeout=3)
            return
        self.go_to(self._alert_nodes[-1])

    def action_legend(self) -> None:
        self.legend.display = not self.legend.display

    def action_tour(self) -> None:
        if self.tour.display:
            self.tour.display = False
            self._tour_done()
        else:
            if self.tour.finished:
                self.tour.restart()
            self.tour.display = True

    def _tour_done(self) -> None:
        if self._tour_marker is not None:
            try:
                self._tour_marker.parent.mkdir(parents=True, exist_ok=True)
                self._tour_marker.touch()
            except OSError:
                pass  # remembering is a courtesy: the walkthrough shows again next time

    def action_brief(self) -> None:
        self._brief(start=False)

    def _brief(self, start: bool) -> None:
        """A challenge's brief; at the start, the clock waits until the player has read it."""
        from ..challenge import status

        ch = self.sandbox.challenge
        if ch is None:
            return
        resume = start and not self.clock.paused
        if start:
            self.clock.pause()

        def show(v: object) -> str:
            return f"{v:g}" if isinstance(v, float) else str(v)

        budget = "; ".join([f"{k} at least {show(v)}" for k, v in ch.min.items()]
                           + [f"{k} at most {show(v)}" for k, v in ch.max.items()])  # fmt: skip
        goal = status(ch, self.sandbox.sim).headline

        def started(_: bool | None) -> None:
            if resume:
                self.clock.resume()
                self._refresh_dashboard()

        self.push_screen(BriefScreen(ch.title, ch.level, ch.brief, goal, list(ch.may_change), budget), started)

    def action_save(self) -> None:
        if self.sandbox.path is not None:
            self._save(str(self.sandbox.path))
            return

        def check(path: str) -> str | None:
            return self._save(path)

        self.push_screen(PathScreen("Save scenario as", f"{self.sandbox.scenario.name}.toml", check))

    def _save(self, path: str) -> str | None:
        try:
            saved = self.sandbox.save(path)
        except OSError as exc:
            message = f"not saved: {_os_reason(path, exc)}; nothing on disk changed"
            self.notify(message, severity="error")
            return message
        except ScenarioError as exc:
            message = f"not saved: {exc.render()}"
            self.notify(message, severity="error")
            return message
        self.notify(f"saved {saved}", timeout=3)
        return None

    def action_open(self) -> None:
        from .. import load_scenario

        loaded: dict[str, Scenario] = {}

        def check(path: str) -> str | None:
            if Path(path).is_dir():
                return f"{path} is a folder: choose a .toml file in it"
            try:
                loaded["s"] = load_scenario(path)
            except ScenarioError as exc:
                return exc.render()
            return None

        def opened(path: str | None) -> None:
            if path is None:
                return
            self.sandbox = Sandbox(loaded["s"], path)
            self._wire_sandbox()
            self.inspector.set_read_only(False)
            self.slider.display = False
            self.view = self.sandbox.initial_view()
            self.load_view()
            self.run_worker(self.inspector.show_scenario(self._values()))
            self.events_log.clear()
            self.start_sim()
            self.notify(f"opened {path}", timeout=3)

        self.push_screen(PathScreen("Open scenario", "scenarios/", check), opened)

    def action_write_log(self) -> None:
        def check(path: str) -> str | None:
            try:
                self.sandbox.write_log(path)
            except OSError as exc:
                return f"not written: {_os_reason(path, exc)}"
            self.notify(f"wrote {path}: factorysim replay {path}", timeout=5)
            return None

        self.push_screen(PathScreen("Write this run's event log to", f"{self.sandbox.scenario.name}-run.jsonl", check,
                                    suffixes=(".jsonl",)))  # fmt: skip

    def action_colour_blind_theme(self) -> None:
        self.theme = COLOUR_BLIND.name

    def action_zoom_out(self) -> None:
        self.canvas.action_zoom_out()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.KEY_HELP))

    async def action_quit(self) -> None:
        if self.sandbox.dirty and not self._quit_armed:
            self._quit_armed = True
            self.notify("unsaved changes: s saves, q again quits without saving", severity="warning")
            return
        self._quitting = True
        self.exit()

    def push_screen(self, screen, callback=None, wait_for_dismiss: bool = False):  # type: ignore[override]
        """No new dialog once quitting has begun (keys typed after q must not open one)."""
        if self._quitting:
            return None
        if wait_for_dismiss:
            return super().push_screen(screen, callback, wait_for_dismiss=True)
        return super().push_screen(screen, callback)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, action, key in keys.PALETTE:
            yield SystemCommand(title, f"{key}: {title.lower()}" if key else title, getattr(self, f"action_{action}"))


def _os_reason(path: str, exc: OSError) -> str:
    """Why a file could not be written, in the user's terms (never a temporary file's name)."""
    target = Path(path)
    if not target.parent.exists():
        return f"the folder {target.parent} does not exist"
    if target.is_dir():
        return f"{path} is a folder"
    return f"{exc.strerror or exc.__class__.__name__} ({path})"


_COLOUR = {"ok": "success", "degraded": "warning", "failed": "error", "in_repair": "accent", "spare": "primary",
           "idle": "muted", "joining": "secondary"}  # fmt: skip
