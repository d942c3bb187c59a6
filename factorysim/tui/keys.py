"""Every key the sandbox answers to, in one table.

The app's bindings, the help screen (?) and the command palette (ctrl+p) are all read from KEYS, so a key
cannot be bound without being explained, and a palette entry cannot name a key that does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Key:
    """One row of the table.

    keys: Textual key names (comma-separated) bound on the app; empty when the key is handled elsewhere
    (the canvas's own bindings, Textual's tab and ctrl+p) and the row only explains it.
    action: the app action it runs (``action_<name>``, arguments allowed for bindings).
    help: the help screen's line; empty when the row above already explains it (``+ / -``).
    palette: the command palette's title; empty for keys that are not palette commands.
    """

    keys: str
    action: str
    label: str
    help: str
    display: str = ""
    id: str | None = None
    show: bool = False
    priority: bool = False
    palette: str = ""
    help_key: str = ""

    @property
    def shown(self) -> str:
        """How the key is written on screen."""
        return self.display or self.keys.split(",")[0]

    @property
    def help_shown(self) -> str:
        """How the help screen writes it (one row may explain a pair: ``+ / -``)."""
        return self.help_key or self.shown

    def binding(self) -> Binding:
        return Binding(self.keys, self.action, self.label, show=self.show, key_display=self.display or None,
                       priority=self.priority, id=self.id)  # fmt: skip


# fmt: off
KEYS: tuple[Key, ...] = (
    Key("space", "toggle_pause", "Pause", "pause or resume sim time", id="pause", show=True, priority=True,
        palette="Pause or resume"),
    Key("plus,equals_sign", "faster", "Faster", "faster or slower: 1 s per second up to 1 day per second",
        display="+", help_key="+ / -", id="faster", palette="Faster"),
    Key("minus", "slower", "Slower", "", display="-", id="slower", palette="Slower"),
    Key("n", "next_event", "Next event", "jump to the next event (also while paused)", id="next",
        palette="Next event"),
    Key("f", "fault", "Fault", "inject a fault on the selection: fail, straggle, degrade, flap, repair", id="fault",
        show=True, palette="Inject a fault on the selection"),
    Key("F", "storm", "Storm", "start or stop a random fault storm", display="F", id="storm",
        palette="Fault storm on/off"),
    Key("p", "policy", "Policy", "switch the recovery policy live: checkpoint-restart / isolate-group", id="policy",
        palette="Switch recovery policy"),
    Key("r", "reset", "Reset", "reset the run to t = 0", id="reset", palette="Reset the run"),
    Key("u,ctrl+z", "undo", "Undo", "undo or redo an edit, a move, a link change, a policy switch (also ctrl+z / ctrl+y)",
        display="u", help_key="u / U", id="undo", show=True, palette="Undo"),
    Key("U,ctrl+y", "redo", "Redo", "", display="U", id="redo", palette="Redo"),
    Key("0", "reset_layout", "Reset layout", "put this view's boxes back where the layout places them (u undoes)",
        id="reset_layout", palette="Reset this view's layout"),
    Key("s", "save", "Save", "save the scenario (TOML, atomic), with layout and topology edits", id="save", show=True,
        palette="Save the scenario"),
    Key("o", "open", "Open", "open a scenario file (a file picker)", id="open", palette="Open a scenario"),
    Key("w", "write_log", "Write log",
        "write this run's event log (JSON lines; factorysim replay checks it, play --replay shows it)",
        display="w", id="write_log", palette="Write the run's event log"),
    Key("m", "maximize_panel", "Max",
        "maximise the focused panel (canvas, dashboard, inspector, events); m or escape restores", display="m",
        id="maximize", show=True, palette="Maximise the focused panel"),
    Key("c", "chart_window", "Chart window", "the charts' time window: 6 h, 1 d, 7 d, 30 d, the whole run",
        id="chart", palette="Chart time window"),
    Key("g", "go_alert", "Go to alert", "go to the latest alert (! on the map: where something broke)", id="alert",
        palette="Go to the latest alert"),
    Key("k", "legend", "Legend", "show or hide the legend of states", id="legend", palette="Legend on/off"),
    Key("b", "brief", "Brief", "a challenge's brief", id="brief", palette="Challenge brief"),
    Key("t", "tour", "Walkthrough", "the walkthrough: pause, select, fault, fix", id="tour", palette="Walkthrough"),
    Key("L", "search_layouts", "Best layouts", "best layouts: search every valid layout of the job, apply one (u undoes)",
        display="L", id="search", palette="Search the best layouts"),
    Key("question_mark", "help", "Help", "this help", display="?", id="help", show=True, palette="Keys"),
    Key("q", "quit", "Quit", "quit (twice if there are unsaved changes)", id="quit", show=True),
    Key("", "colour_blind_theme", "", "", palette="Colour-blind-safe theme"),
    Key("", "", "", "command palette: every action by name, and themes (a colour-blind-safe one too)",
        display="ctrl+p"),
    Key("", "", "", "select the nearest box in that direction", display="arrows"),
    Key("", "", "", "pan the canvas (ctrl+page up / down: sideways); or drag empty space, or scroll",
        display="page up / down"),
    Key("", "", "", "nudge the selected box (its position is saved)", display="shift+arrows"),
    Key("", "", "", "zoom into the selection (cluster › pod › rack › server)", display="enter"),
    Key("", "zoom_out", "", "zoom out", display="backspace", help_key="backspace / escape", palette="Zoom out"),
    Key("", "", "", "link mode: l on one node, select another, l again adds a link (escape cancels)", display="l"),
    Key("", "", "", "move focus: canvas, dashboard, inspector, event log", display="tab"),
    Key("left_square_bracket", "seek(-0.01)", "-1%", "a recorded run (play --replay): back or forward 1 %",
        display="[", help_key="[ / ]", show=True, priority=True),
    Key("right_square_bracket", "seek(0.01)", "+1%", "", display="]", show=True, priority=True),
    Key("left_curly_bracket", "seek(-0.1)", "-10%", "a recorded run: back or forward 10 %", display="{", help_key="{ / }",
        priority=True),
    Key("right_curly_bracket", "seek(0.1)", "+10%", "", display="}", priority=True),
    Key("home", "seek_to(0)", "Start", "a recorded run: to its start or its end; click the slider to go anywhere",
        display="home", help_key="home / end", priority=True),
    Key("end", "seek_to(1)", "End", "", display="end", priority=True),
)
# fmt: on

BINDINGS: list[BindingType] = [k.binding() for k in KEYS if k.keys]
"""The app's bindings."""

HELP: list[tuple[str, str]] = [(k.help_shown, k.help) for k in KEYS if k.help]
"""The help screen's rows: key as shown, what it does."""

PALETTE: list[tuple[str, str, str]] = [(k.palette, k.action, k.shown) for k in KEYS if k.palette]
"""The command palette's entries: title, app action, the key that does the same (or empty)."""
