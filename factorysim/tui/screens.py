"""Modal screens: help, the fault picker, a challenge's brief and verdict, and the file picker."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..engine import Fault
from ..engine.faults import ALLOWED
from ..scenario.units import parse_duration
from ..topology.targets import Target


class HelpScreen(ModalScreen[None]):
    """Every key the sandbox answers to, and what the screen shows."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(no_wrap=True, style="bold")
        keys.add_column()
        for key, what in self.keys:
            keys.add_row(key, what)
        with Vertical(id="dialog"):
            yield Static("[b]factorysim sandbox: keys[/b]", classes="dialog-title")
            with VerticalScroll():
                yield Static(keys, id="help-keys")
                yield Static(legend_text(), id="help-legend")
                yield Static(MOUSE_HELP, id="help-text")
            yield Label("escape closes", classes="hint")


def legend_text() -> str:
    from .canvas import legend_items

    rows = "\n".join(f"  [$text-{_STATE_COLOUR[s]}]{g}[/] {w}: {_STATE_MEANING[s]}" for s, g, w in legend_items())
    return (
        "[b]States[/b] (a glyph for each, so colour is never the only sign; ctrl+p › theme for other colours)\n" + rows
    )


_STATE_COLOUR = {"ok": "success", "degraded": "warning", "failed": "error", "in_repair": "accent",
                 "spare": "primary", "idle": "muted", "joining": "secondary"}  # fmt: skip
_STATE_MEANING = {
    "ok": "training",
    "degraded": "a straggler or a slow link slows the step",
    "failed": "down (a heavy border on boxes); the job hangs until the fault is found",
    "in_repair": "being repaired, back in the spare pool after the repair time",
    "spare": "a spare server waiting to take a failed one's place",
    "idle": "healthy but out of the job (its node group is isolated)",
    "joining": "a hot spare on its way into the job",
}

MOUSE_HELP = """[b]Mouse[/b]
  click selects · hover shows a summary · drag a box to move it (saved with the scenario) · ctrl+drag from
  one node to another links them (or press l on each) · drag empty space to pan · double-click zooms in ·
  click an event to go to its node

[b]Screen[/b]
  left: the cluster at one zoom level (cluster › pod › rack › server); ! marks where something broke
  right: the factors from peak to delivered, tokens/s and ETTR over time (c: time window), the counts
  below: the inspector (the selection, or the scenario's fields) and the event log (type to filter)"""


FAULT_LABELS = {
    "fail": "fail: the part stops (fail-stop)",
    "straggle": "straggle: the chip runs slower",
    "degrade": "degrade: the link or switch carries less",
    "flap": "flap: the link drops in and out",
    "crash": "crash: the job's software crashes",
    "repair": "repair: bring it back now",
}


class FaultScreen(ModalScreen[Fault | None]):
    """Pick a fault for a target: kind, factor and duration."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, target: Target, name: str) -> None:
        super().__init__()
        self.target = target
        self.target_name = name
        self.kinds = [k for k, kinds in ALLOWED.items() if target.kind in kinds]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]Fault on {self.target_name}[/b] ({self.target.kind})", classes="dialog-title")
            yield OptionList(*[Option(FAULT_LABELS[k], id=k) for k in self.kinds], id="fault-kinds")
            with Horizontal(classes="field"):
                yield Label("factor", classes="field-name")
                yield Input(placeholder="default from the fault catalog", id="fault-factor", compact=True)
            with Horizontal(classes="field"):
                yield Label("duration", classes="field-name")
                yield Input(placeholder='e.g. "2h" (default from the catalog)', id="fault-duration", compact=True)
            yield Label("", id="fault-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("inject", variant="primary", id="inject")
                yield Button("cancel", id="cancel")

    def on_mount(self) -> None:
        for kinds in self.query(OptionList).results(OptionList):
            kinds.highlighted = 0
            kinds.focus()

    @on(OptionList.OptionSelected)
    @on(Input.Submitted)
    def _chosen(self) -> None:
        self._inject()

    @on(Button.Pressed, "#inject")
    def _inject(self) -> None:
        kinds = self.query_one(OptionList)
        if kinds.highlighted is None:
            return
        kind = self.kinds[kinds.highlighted]
        factor_text = self.query_one("#fault-factor", Input).value.strip()
        duration_text = self.query_one("#fault-duration", Input).value.strip()
        try:
            factor = float(factor_text) if factor_text else None
            if factor is not None and not 0 < factor <= 1:
                raise ValueError("factor must be in (0, 1]")
            duration = parse_duration(duration_text) if duration_text else None
        except ValueError as exc:
            self.query_one("#fault-error", Label).update(str(exc))
            return
        self.dismiss(Fault(self.target_name, kind, factor, duration))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class EndScreen(ModalScreen[bool]):
    """A challenge is over: won or lost, why, the score. Dismisses with True to try again."""

    BINDINGS = [Binding("r", "retry", "Try again"), Binding("escape", "close", "Close")]

    def __init__(self, title: str, state: str, reason: str, score: int, hint: str) -> None:
        super().__init__()
        self.verdict = (title, state, reason, score, hint)

    def compose(self) -> ComposeResult:
        title, state, reason, score, hint = self.verdict
        headline = "[b $text-success]Won![/]" if state == "won" else "[b $text-error]Lost.[/]"
        with Vertical(id="dialog"):
            yield Static(f"[b]{title}[/b]", classes="dialog-title")
            yield Static(f"{headline} {reason}\nscore [b]{score}[/b]", id="verdict")
            if state == "lost" and hint:
                yield Static(f"[dim]hint: {hint}[/dim]", id="hint")
            with Horizontal(classes="buttons"):
                yield Button("try again (r)", variant="primary", id="retry")
                yield Button("close (escape)", id="close")

    @on(Button.Pressed, "#retry")
    def action_retry(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(False)


class BriefScreen(ModalScreen[bool]):
    """A challenge's brief before its clock starts: the situation, the goal, what may change, the budget."""

    BINDINGS = [Binding("enter,space", "start", "Start", priority=True), Binding("escape", "start", "Start")]

    def __init__(self, title: str, level: str, brief: str, goal: str, may_change: list[str], budget: str) -> None:
        super().__init__()
        self.parts = (title, level, brief, goal, may_change, budget)

    def compose(self) -> ComposeResult:
        from textual.markup import escape

        title, level, brief, goal, may_change, budget = self.parts
        with Vertical(id="dialog", classes="brief"):
            yield Static(f"[b]Challenge: {escape(title)}[/b] [dim]({level})[/dim]", classes="dialog-title")
            with VerticalScroll(id="brief-body"):
                yield Static(escape(brief), id="brief-text")
                yield Static(f"[b]Goal[/b]: {escape(goal)}", id="brief-goal")
                yield Static(f"[b]You may change[/b]: {escape(', '.join(may_change) or 'nothing')}", id="brief-may")
                if budget:
                    yield Static(f"[b]Budget[/b]: {escape(budget)}", id="brief-budget")
                yield Static(
                    "The clock is stopped until you start. Edit in the inspector (other keys are refused "
                    "with the reason), space pauses, b shows this brief again.",
                    classes="hint",
                )
            with Horizontal(classes="buttons"):
                yield Button("start the clock (enter)", variant="primary", id="start")

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        self.dismiss(True)


class TomlTree(DirectoryTree):
    """Folders and scenario or log files only."""

    def __init__(self, path: str | Path, suffixes: tuple[str, ...], *, id: str | None = None) -> None:
        super().__init__(path, id=id)
        self.suffixes = suffixes

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix in self.suffixes)]


class PathScreen(ModalScreen[str | None]):
    """Pick a file: type a path or choose it in the tree; `check` returns an error to show, or None to accept.

    The dialog stays open on an error (a missing folder, a bad file) with the reason under the path.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str, check: Callable[[str], str | None],
                 suffixes: tuple[str, ...] = (".toml",)) -> None:  # fmt: skip
        super().__init__()
        self.title_text = title
        self.value = value
        self.check = check
        self.suffixes = suffixes

    def compose(self) -> ComposeResult:
        folder = Path(self.value).parent if Path(self.value).parent.is_dir() else Path(".")
        if Path(self.value).is_dir():
            folder = Path(self.value)
        with Vertical(id="dialog", classes="picker"):
            yield Static(f"[b]{self.title_text}[/b]", classes="dialog-title")
            yield Input(self.value, id="path")
            yield Static("", id="path-error", classes="error")
            yield TomlTree(folder, self.suffixes, id="path-tree")
            yield Label("enter confirms · tab to the files, enter picks one · escape cancels", classes="hint")

    def on_mount(self) -> None:
        for field in self.query(Input).results(Input):  # none when the app is already shutting down
            field.focus()
            field.cursor_position = len(field.value)

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        field = self.query_one("#path", Input)
        field.value = str(event.path)
        field.focus()
        field.cursor_position = len(field.value)

    @on(DirectoryTree.DirectorySelected)
    def _folder(self, event: DirectoryTree.DirectorySelected) -> None:
        field = self.query_one("#path", Input)
        name = Path(field.value).name if field.value and not field.value.endswith("/") else ""
        field.value = str(event.path / name) if name and Path(field.value).suffix else str(event.path) + "/"

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if not path:
            return
        error = self.check(path)
        if error:
            self.query_one("#path-error", Static).update(error)
        else:
            self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
