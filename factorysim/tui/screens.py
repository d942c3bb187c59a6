"""Modal screens: help, the fault picker, and the path prompt for save and open."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..engine import Fault
from ..engine.faults import ALLOWED, Target
from ..scenario.units import parse_duration


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
                yield Static(MOUSE_HELP, id="help-text")
            yield Label("escape closes", classes="hint")


MOUSE_HELP = """[b]Mouse[/b]
  click selects · drag a box to move it (saved with the scenario) · ctrl+drag from one node to another
  links them (or press l on each) · drag empty space to pan · double-click zooms in · scroll scrolls

[b]Screen[/b]
  left: the cluster at one zoom level (cluster › pod › rack › server), coloured by state:
  ok, degraded (straggler or slow link), failed, in repair, idle (isolated), joining, spare
  right: the factors from peak to delivered, tokens/s and ETTR over time, counts, the target
  below: the inspector (the selection, or the scenario's fields) and the event log"""


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


class PathScreen(ModalScreen[str | None]):
    """Ask for a file path; `check` returns an error message to show, or None to accept."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str, check: Callable[[str], str | None]) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]{self.title_text}[/b]", classes="dialog-title")
            yield Input(self.value, id="path")
            yield Static("", id="path-error", classes="error")
            yield Label("enter confirms · escape cancels", classes="hint")

    def on_mount(self) -> None:
        for field in self.query(Input).results(Input):  # none when the app is already shutting down
            field.focus()

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
