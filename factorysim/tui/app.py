"""The factorysim sandbox: build a cluster, break it, watch the factory.

The app is a thin shell over factorysim.sandbox.Sandbox (scenario, graph, simulation): it draws, it
forwards what the player does, and it never computes physics. Sim time comes from a SimClock (real
time × speed), never from counting timer ticks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, RichLog

from ..engine import Fault, SimClock, Snapshot
from ..engine.faults import parse_target
from ..sandbox import Sandbox
from ..scenario import Scenario, ScenarioError
from ..topology.layout import Box
from .canvas import TopologyCanvas
from .dashboard import Dashboard, clock_text
from .inspector import Inspector
from .screens import EndScreen, FaultScreen, HelpScreen, PathScreen
from .slider import TimeSlider

STORM_RATE = 6 / 3600.0
"""Faults per sim second while a storm rages (six an hour)."""
LOG_FLUSH = 0.5
"""Seconds between writes to the event log (each write costs a layout pass)."""


class FactorySimApp(App[None]):
    """The sandbox app, constructed from a scenario (and the file it came from, if any)."""

    CSS_PATH = "app.tcss"
    TITLE = "factorysim"
    BINDINGS = [
        Binding("space", "toggle_pause", "Pause", id="pause"),
        Binding("plus,equals_sign", "faster", "Faster", id="faster", key_display="+"),
        Binding("minus", "slower", "Slower", id="slower", key_display="-"),
        Binding("n", "next_event", "Next event", id="next"),
        Binding("f", "fault", "Fault", id="fault"),
        Binding("F", "storm", "Storm", id="storm", key_display="F"),
        Binding("p", "policy", "Policy", id="policy"),
        Binding("r", "reset", "Reset", id="reset"),
        Binding("s", "save", "Save", id="save"),
        Binding("o", "open", "Open", id="open"),
        Binding("w", "write_log", "Write log", id="write_log", key_display="w", show=False),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("left_square_bracket", "seek(-0.01)", "-1%", key_display="[", priority=True),
        Binding("right_square_bracket", "seek(0.01)", "+1%", key_display="]", priority=True),
        Binding("left_curly_bracket", "seek(-0.1)", "-10%", key_display="{", show=False, priority=True),
        Binding("right_curly_bracket", "seek(0.1)", "+10%", key_display="}", show=False, priority=True),
        Binding("home", "seek_to(0)", "Start", key_display="home", show=False, priority=True),
        Binding("end", "seek_to(1)", "End", key_display="end", show=False, priority=True),
    ]
    REPLAY_ONLY = {"seek", "seek_to"}
    LIVE_ONLY = {"fault", "storm", "policy"}
    KEY_HELP = [
        ("space", "pause or resume sim time"),
        ("+ / -", "faster or slower: 1 s per second up to 1 day per second"),
        ("n", "jump to the next event (also while paused)"),
        ("f", "inject a fault on the selection: fail, straggle, degrade, flap, repair"),
        ("F", "start or stop a random fault storm"),
        ("p", "switch the recovery policy live: checkpoint-restart / isolate-group"),
        ("r", "reset the run to t = 0"),
        ("s", "save the scenario (TOML, atomic), with layout and topology edits"),
        ("o", "open a scenario file"),
        ("w", "write this run's event log (JSON lines; factorysim replay checks it, play --replay shows it)"),
        ("?", "this help"),
        ("q", "quit (twice if there are unsaved changes)"),
        ("ctrl+p", "command palette: every action by name"),
        ("arrows", "select the nearest box in that direction"),
        ("page up / down", "pan the canvas (ctrl+page up / down: sideways); or drag empty space, or scroll"),
        ("shift+arrows", "nudge the selected box (its position is saved)"),
        ("enter", "zoom into the selection (cluster › pod › rack › server)"),
        ("backspace / escape", "zoom out"),
        ("l", "link mode: l on one node, select another, l again adds a link"),
        ("tab", "move focus: canvas, inspector, event log"),
        ("[ / ]", "a recorded run (play --replay): back or forward 1 % (with shift, { } 10 %)"),
        ("home / end", "a recorded run: to its start or its end; click the slider to go anywhere"),
    ]

    def __init__(
        self,
        scenario: Scenario,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: SimClock | None = None,
        seed: int | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        super().__init__()
        self.sandbox = sandbox if sandbox is not None else Sandbox(scenario, path, seed)
        self.clock = clock or SimClock(speed=3600.0, frame_interval=1 / 12)
        self.frames = 0
        self.view = self.sandbox.initial_view()
        self.storm = False
        self._storm_rng = np.random.default_rng([scenario.run.seed, 0x5707])
        self._log_lines: list[str] = []
        self._drawn_events = -1
        self._last_t = 0.0
        self._quit_armed = False
        self._quitting = False
        self._frame: Snapshot | None = None
        self._layout_width = 0
        self._log_flushed = 0.0
        self._announced: object | None = None

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Label("", id="crumb")
                yield TimeSlider(id="slider")
                yield TopologyCanvas(id="canvas")
            yield Dashboard(id="dashboard")
        with Horizontal(id="bottom"):
            yield Inspector(id="inspector")
            yield RichLog(id="events", max_lines=500, markup=True, wrap=False)
        yield Footer()

    async def on_mount(self) -> None:
        # the main screen's widgets, kept: queries would look at whatever screen is on top (a dialog)
        self.canvas = self.query_one(TopologyCanvas)
        self.inspector = self.query_one(Inspector)
        self.dashboard = self.query_one(Dashboard)
        self.events_log = self.query_one("#events", RichLog)
        self.crumb = self.query_one("#crumb", Label)
        self.slider = self.query_one(TimeSlider)
        self.slider.display = self.sandbox.read_only
        self._wire_sandbox()
        self.events_log.border_title = "events"
        self.inspector.border_title = "inspector"
        self.dashboard.border_title = "factory output"
        self._compact(self.size.width, self.size.height)
        self.load_view()
        self.canvas.focus()
        self.start_sim()
        # the editor's widgets are the costliest part of start-up: after the first frame is on screen
        self.call_after_refresh(lambda: self.run_worker(self.inspector.show_scenario(self._values())))

    def on_resize(self, event) -> None:
        self._compact(event.size.width, event.size.height)

    def _compact(self, width: int, height: int) -> None:
        self.screen.set_class(width < 110, "narrow")
        self.screen.set_class(height < 32, "short")

    def _wire_sandbox(self) -> None:
        sb = self.sandbox
        sb.listeners.append(self._on_sim_event)
        canvas = self.canvas
        canvas.state_of = sb.box_state
        canvas.chip_state = sb.chip_state
        canvas.switch_state = sb.switch_state
        canvas.detail_of = self._detail
        canvas.chips_per_node = sb.plan.chips_per_node
        self.sub_title = f"{sb.scenario.name} · {sb.scenario.cluster.total_chips:,} chips"
        if sb.read_only:
            self.sub_title = f"replay of {sb.replayer.path} · " + self.sub_title
        if sb.challenge is not None:
            self.sub_title = f"challenge: {sb.challenge.title} · " + self.sub_title
            self.notify(f"{sb.challenge.brief}\nYou may change: {', '.join(sb.challenge.may_change)}",
                        title=sb.challenge.title, timeout=12)  # fmt: skip

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

    @on(TopologyCanvas.Resized)
    def _canvas_resized(self) -> None:
        if self.canvas.scrollable_content_region.width != self._layout_width:
            self.load_view(keep_selection=True)

    def load_view(self, keep_selection: bool = False) -> None:
        if self.view.level in ("rack", "server") and not self.sandbox.has_graph:
            self.crumb.update(f"building the cluster graph ({self.sandbox.plan.chips:,} chips) …")
            self._build_graph(keep_selection)
            return
        width = self._layout_width = max(40, self.canvas.scrollable_content_region.width or 80)
        scene = self.sandbox.scene(self.view, width)
        crumbs = self.sandbox.hierarchy.breadcrumb(self.view)
        self.crumb.update(
            " › ".join(f"[b]{v.key}[/b]" if v == self.view else v.key for v in crumbs) + f" — {scene.title}"
        )
        self.canvas.show(scene, keep_selection)

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
        end = sb.replayer.end
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
            self._log_lines.clear()
        self._drawn_events = -1

    @on(TimeSlider.Seek)
    def _slider_seek(self, event: TimeSlider.Seek) -> None:
        self._seek(event.t)
        self.show_frame(self.sandbox.sim.snapshot())

    def action_seek(self, fraction: float) -> None:
        self._slider_seek(TimeSlider.Seek(self.sandbox.sim.now + fraction * self.sandbox.replayer.end))

    def action_seek_to(self, fraction: float) -> None:
        self._slider_seek(TimeSlider.Seek(fraction * self.sandbox.replayer.end))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Seek keys only for a recorded run; fault, storm and policy keys only for a live one."""
        replay = getattr(self, "sandbox", None) is not None and self.sandbox.read_only
        if action in self.REPLAY_ONLY:
            return replay
        if action in self.LIVE_ONLY and replay:
            return None  # shown greyed out: a recording cannot be changed
        return True

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
        with self.batch_update():
            self.dashboard.show(frame, sb.step, self.clock.speed, self.clock.paused,
                                           sb.scenario.workload.target_tokens, self.storm)  # fmt: skip
            self._challenge_frame()
            if sb.read_only:
                self.slider.set(frame.t, sb.replayer.end, self.clock.paused)
            now = time.monotonic()
            if self._log_lines and now - self._log_flushed >= LOG_FLUSH:
                # one write per flush: every write resizes the log, and a resize costs a layout of the screen
                self.events_log.write("\n".join(self._log_lines[-200:]))
                self._log_lines.clear()
                self._log_flushed = now
            if sb.sim.events != self._drawn_events:
                self._drawn_events = sb.sim.events
                self.canvas.redraw()
                box = self.canvas.selected_box
                if box is not None:
                    self.inspector.update_props(self._props(box))

    def _challenge_frame(self) -> None:
        sb = self.sandbox
        status = sb.status()
        self.dashboard.show_challenge(sb.challenge.title if sb.challenge else "", status)
        if status is None or not status.over or self._announced is sb.sim:
            return
        self._announced = sb.sim  # once per run
        self.clock.pause()
        ch = sb.challenge

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
        effect = record.get("effect", {})
        detail = ", ".join(f"{k}={_short(v)}" for k, v in effect.items())
        cause = record.get("cause")
        style = {"fault": "red", "inject": "red", "detect": "yellow", "restarted": "green", "joined": "green",
                 "rejoin": "green", "repaired": "green", "isolate": "yellow", "gray": "yellow", "evict": "yellow",
                 "checkpoint": "dim", "edit": "cyan", "policy": "cyan"}.get(kind, "")  # fmt: skip
        line = (
            f"[dim]{clock_text(record['t'])}[/dim] [{style}]{kind}[/{style}] [b]{record['target']}[/b]"
            if style
            else (f"[dim]{clock_text(record['t'])}[/dim] {kind} [b]{record['target']}[/b]")
        )
        if cause:
            line += f" [dim]({cause})[/dim]"
        if detail:
            line += f" {detail}"
        self._log_lines.append(line)

    # ------------------------------------------------------------ canvas messages

    @on(TopologyCanvas.Selected)
    async def _selected(self, event: TopologyCanvas.Selected) -> None:
        box = event.box
        if box is None:
            await self.inspector.show_scenario(self._values())
            return
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
        self.sandbox.move(event.view, event.box_id, event.x, event.y)
        self.load_view(keep_selection=True)

    @on(TopologyCanvas.LinkRequested)
    async def _link(self, event: TopologyCanvas.LinkRequested) -> None:
        result = self.sandbox.add_link(event.a, event.b)
        await self._after_edit(result, f"link {event.a} - {event.b} added")

    @on(TopologyCanvas.ZoomRequested)
    def _zoom(self, event: TopologyCanvas.ZoomRequested) -> None:
        self.view = event.view
        self.load_view()

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
        result = self.sandbox.edit(event.path, event.value)
        if result.ok:
            self.inspector.show_result(event.path, "✓ applied; the run restarted on the new scenario")
            self.inspector.fill(self._values())
            self._restarted()
        else:
            self.inspector.show_result(event.path, "✗ " + result.message)
            self.inspector.fill(self._values())

    @on(Inspector.LinkEdit)
    async def _link_edit(self, event: Inspector.LinkEdit) -> None:
        if event.gbps is None:
            result = self.sandbox.remove_link(event.a, event.b)
            what = f"link {event.a} - {event.b} removed"
        else:
            result = self.sandbox.set_link(event.a, event.b, event.gbps)
            what = f"link {event.a} - {event.b} set to {event.gbps:g} Gb/s"
        if not result.ok:
            self.inspector.show_link_result("✗ " + result.message)
        await self._after_edit(result, what)

    async def _after_edit(self, result, what: str) -> None:
        if not result.ok:
            self.notify(result.message, title="refused", severity="error", timeout=8)
            return
        self.notify(f"{what}; the run restarted", title="topology edited")
        self._restarted()
        box = self.canvas.selected_box
        if box is not None and box.node:
            self.inspector.forget()
            await self.inspector.show_box(box, self._props(box), self.sandbox.links_of(box.node))

    def _restarted(self) -> None:
        self.canvas.chips_per_node = self.sandbox.plan.chips_per_node
        self.load_view(keep_selection=True)
        self.start_sim()

    # ------------------------------------------------------------ actions (keys and command palette)

    def action_toggle_pause(self) -> None:
        paused = self.clock.toggle()
        self._refresh_dashboard()
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
        box = self.canvas.selected_box
        name = box.node if box is not None and box.node else "job"
        target = parse_target(name, self.sandbox.plan)

        def chosen(fault: Fault | None) -> None:
            if fault is None:
                return
            result = self.sandbox.inject(fault)
            if result.ok:
                self.notify(f"{fault.kind} on {fault.target}", title="fault injected", timeout=3)
                self._refresh_dashboard()
            else:
                self.notify(result.message, title="refused", severity="error")

        self.push_screen(FaultScreen(target, name), chosen)

    def action_storm(self) -> None:
        self.storm = not self.storm
        self._last_t = self.sandbox.sim.now
        self.notify("fault storm " + ("on: six random faults per sim hour" if self.storm else "off"), timeout=3)
        self._refresh_dashboard()

    def action_policy(self) -> None:
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
        self.start_sim()
        self.notify("run reset to t = 0", timeout=2)

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
        except (OSError, ScenarioError) as exc:
            message = str(exc)
            self.notify(f"not saved: {message}; the file on disk is unchanged", severity="error")
            return message
        self.notify(f"saved {saved}", timeout=3)
        return None

    def action_open(self) -> None:
        from .. import load_scenario

        loaded: dict[str, Scenario] = {}

        def check(path: str) -> str | None:
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
                return f"not written: {exc.strerror or exc}"
            self.notify(f"wrote {path}: factorysim replay {path}", timeout=5)
            return None

        self.push_screen(PathScreen("Write this run's event log to", f"{self.sandbox.scenario.name}-run.jsonl", check))

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
        return super().push_screen(screen, callback, wait_for_dismiss=wait_for_dismiss)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, action, help_text in (
            ("Pause or resume", self.action_toggle_pause, "space"),
            ("Faster", self.action_faster, "+"),
            ("Slower", self.action_slower, "-"),
            ("Next event", self.action_next_event, "n"),
            ("Inject a fault on the selection", self.action_fault, "f"),
            ("Fault storm on/off", self.action_storm, "F"),
            ("Switch recovery policy", self.action_policy, "p"),
            ("Reset the run", self.action_reset, "r"),
            ("Save the scenario", self.action_save, "s"),
            ("Open a scenario", self.action_open, "o"),
            ("Write the run's event log", self.action_write_log, "w"),
            ("Keys", self.action_help, "?"),
            ("Zoom out", self.canvas.action_zoom_out, "backspace"),
        ):
            yield SystemCommand(name, f"{help_text}: {name.lower()}", action)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
