"""The sandbox's layout search: pick an objective and how many layouts to show, search the current scenario in
a worker thread with progress, and pick one of the best to apply as an ordinary edit.

All the numbers come from factorysim.explore (the search, its objectives and its tables); this screen only
shows them. It dismisses with the keys to set (the chosen layout's edits) and a one-line description, or
None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, ProgressBar, Select, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from ..scenario.models import Scenario

FACTORS = ("generality", "chip", "node", "cluster")
"""The step's factors from peak to delivered, as the dashboard's waterfall shows them."""
MAX_TOP = 20
"""The most layouts the dialog lists (the command line shows any number)."""


@dataclass(frozen=True)
class Chosen:
    """The layout picked: the scenario keys to set (None unsets) and what to call the edit."""

    edits: dict[str, Any]
    what: str


class _Stopped(Exception):
    """The dialog closed while its search ran."""


class SearchScreen(ModalScreen[Chosen | None]):
    """Search the current scenario's layouts; enter applies the highlighted one."""

    BINDINGS = [Binding("escape", "cancel", "Close")]

    def __init__(self, scenario: Scenario, top: int = 5) -> None:
        super().__init__()
        self.scenario = scenario
        self.top = top
        self.result = None
        self.choices: list[Chosen] = []

    def compose(self) -> ComposeResult:
        from ..explore.objectives import OBJECTIVES

        with Vertical(id="dialog", classes="search"):
            yield Static(f"[b]Best layouts for {self.scenario.name}[/b]", classes="dialog-title")
            with Horizontal(classes="field"):
                yield Label("objective", classes="field-name")
                yield Select([(o.label, name) for name, o in OBJECTIVES.items()], value="tokens_per_s",
                             allow_blank=False, id="search-objective", compact=True)  # fmt: skip
                yield Label(" top N ", id="search-top-name")
                yield Input(str(self.top), id="search-top", type="integer", compact=True)
            yield ProgressBar(id="search-progress", show_eta=True)
            yield Static("enter or the button searches every valid layout", id="search-status")
            yield OptionList(id="search-results")
            yield Static("", id="search-detail")
            with Horizontal(classes="buttons"):
                yield Button("search", variant="primary", id="search-run", compact=True)
                yield Button("apply (enter)", id="search-apply", disabled=True, compact=True)
                yield Button("close (escape)", id="search-close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#search-results", OptionList).display = False
        self.query_one("#search-progress", ProgressBar).display = False
        self.query_one("#search-run", Button).focus()

    # ------------------------------------------------------------ running the search

    @on(Input.Submitted, "#search-top")
    @on(Button.Pressed, "#search-run")
    def action_search(self) -> None:
        text = self.query_one("#search-top", Input).value.strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_TOP:
            self._status(f"top N: a whole number from 1 to {MAX_TOP}, got {text or 'nothing'}", error=True)
            return
        self.top = int(text)
        objective = str(self.query_one("#search-objective", Select).value)
        self.query_one("#search-run", Button).disabled = True
        self.query_one("#search-apply", Button).disabled = True
        self.query_one("#search-results", OptionList).display = False
        bar = self.query_one("#search-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self._status("searching…")
        self._search(objective, self.top)

    @work(thread=True, exclusive=True, group="search")
    def _search(self, objective: str, top: int) -> None:
        from ..explore.search import Request, search
        from ..explore.tables import compact
        from ..scenario.errors import ScenarioError

        worker = get_current_worker()

        def progress(done: int, total: int) -> None:
            if worker.is_cancelled:
                raise _Stopped
            self.app.call_from_thread(self._progress, done, total)

        try:
            result = search(self.scenario, Request(objective=objective, top=top), progress=progress)
            rows = []
            for r in result.best:
                step = result.estimate_of(r)
                rows.append((r, compact(result.settings(r)), step.factors.as_dict()))
        except _Stopped:
            return
        except ScenarioError as exc:
            self.app.call_from_thread(self._status, exc.render().replace("\n", "; "), True)
            self.app.call_from_thread(self._ready)
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, result, rows)

    def _progress(self, done: int, total: int) -> None:
        if not self.is_attached:
            return
        self.query_one("#search-progress", ProgressBar).update(total=max(total, 1), progress=done)

    def _ready(self) -> None:
        if not self.is_attached:
            return
        self.query_one("#search-run", Button).disabled = False
        self.query_one("#search-progress", ProgressBar).display = False

    def _status(self, text: str, error: bool = False) -> None:
        if not self.is_attached:
            return
        status = self.query_one("#search-status", Static)
        status.update(text)
        status.set_class(error, "error")

    def _show(self, result, rows) -> None:
        from ..explore.search import changes, refusal_lines

        if not self.is_attached:
            return
        self.result = result
        self._ready()
        obj = result.objective
        if not rows:
            self._status("no layout fits: " + "; ".join(refusal_lines(result)[-2:]), error=True)
            return
        options = []
        self.choices = []
        base = result.baseline
        for i, (r, label, factors) in enumerate(rows, 1):
            gain = ""
            if base is not None and base.objective and obj.key(r.objective) != obj.key(base.objective):
                gain = f" ({r.objective / base.objective - 1:+.1%})"
            shown = " · ".join(f"{k} {factors[k]:.2f}" for k in FACTORS if k in factors)
            text = f"{i}. {obj.fmt(r.objective)}{gain} · {r.memory_gb:.0f} GB/chip · {label}\n   factors {shown}"
            options.append(Option(text, id=str(i - 1)))
            moved = changes(result, r)
            what = "layout from search: " + (", ".join(moved) if moved else "the scenario's own")
            self.choices.append(Chosen(result.edits(r), what))
        results = self.query_one("#search-results", OptionList)
        results.clear_options()
        results.add_options(options)
        results.display = True
        results.highlighted = 0
        results.focus()
        self.query_one("#search-apply", Button).disabled = False
        own = f"; the scenario's own: {obj.fmt(base.objective)}" if base is not None else ""
        self._status(f"{result.layouts_tried:,} layouts tried, {result.estimated:,} estimated{own}. "
                     "enter applies (u undoes)")  # fmt: skip

    @on(OptionList.OptionHighlighted, "#search-results")
    def _detail(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index < len(self.choices):
            self.query_one("#search-detail", Static).update(self.choices[event.option_index].what)

    # ------------------------------------------------------------ choosing

    @on(OptionList.OptionSelected, "#search-results")
    @on(Button.Pressed, "#search-apply")
    def action_apply(self) -> None:
        highlighted = self.query_one("#search-results", OptionList).highlighted
        if highlighted is not None and highlighted < len(self.choices):
            self.dismiss(self.choices[highlighted])

    @on(Button.Pressed, "#search-close")
    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "search")
        self.dismiss(None)
