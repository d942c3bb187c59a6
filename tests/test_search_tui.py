"""The sandbox's layout search, driven like a player would: open it, search, pick a layout, undo it."""

from __future__ import annotations

from textual.widgets import Button, Input, OptionList

from factorysim import load_scenario
from factorysim.engine import SimClock
from factorysim.explore.search import Request, search
from factorysim.scenario import resolve_layout
from factorysim.tui import FactorySimApp
from factorysim.tui.search_dialog import SearchScreen

from .test_search import SMALL
from .test_tui import screen_text, until


def small_app() -> FactorySimApp:
    return FactorySimApp(load_scenario(None, SMALL), None, clock=SimClock(speed=3600.0, paused=True))


def results(app: FactorySimApp) -> OptionList:
    return app.screen.query_one("#search-results", OptionList)


async def open_and_search(pilot, app: FactorySimApp) -> None:
    await until(pilot, lambda: app.canvas.scene is not None)
    await pilot.press("L")
    await until(pilot, lambda: isinstance(app.screen, SearchScreen))
    await pilot.press("enter")  # the search button has the focus
    await until(pilot, lambda: results(app).display and results(app).option_count > 0, seconds=60)
    await pilot.pause(0.3)  # drawn


async def test_the_search_lists_the_best_layouts_and_applies_the_chosen_one_as_an_undoable_edit():
    app = small_app()
    before = app.sandbox.scenario
    expected = search(before, Request(top=5))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_and_search(pilot, app)
        assert results(app).option_count == 5
        shown = [str(results(app).get_option_at_index(i).prompt) for i in range(5)]
        for text, record in zip(shown, expected.best, strict=True):
            assert expected.objective.fmt(record.objective) in text
        assert "factors" in shown[0] and "GB/chip" in shown[0]

        await pilot.press("down", "enter")  # the second best
        await until(pilot, lambda: not isinstance(app.screen, SearchScreen))
        second = expected.best[1].knobs
        layout = resolve_layout(app.sandbox.scenario)
        assert (layout.tp, layout.pp, layout.micro_batch) == (
            second["parallelism.tp"], second["parallelism.pp"], second["workload.micro_batch"])  # fmt: skip
        assert app.sandbox.step.tokens_per_s == expected.best[1].tokens_per_s
        assert app.sandbox.can_undo.startswith("layout from search")

        await pilot.press("u")
        await pilot.pause(0.2)
        assert app.sandbox.scenario == before


async def test_a_bad_top_n_is_refused_in_the_dialog_and_escape_leaves_the_scenario_alone():
    app = small_app()
    before = app.sandbox.scenario
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "= delivered" in screen_text(app))
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        app.screen.query_one("#search-top", Input).value = "0"
        await pilot.click("#search-run")
        await pilot.pause(0.2)
        assert "top N: a whole number from 1 to 20, got 0" in screen_text(app)
        assert not app.screen.query_one("#search-run", Button).disabled  # nothing started
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SearchScreen))
    assert app.sandbox.scenario == before and app.sandbox.can_undo is None


async def test_closing_the_dialog_mid_search_stops_it_and_changes_nothing():
    app = small_app()
    before = app.sandbox.scenario
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "= delivered" in screen_text(app))
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        dialog = app.screen
        await pilot.press("enter", "escape")
        await until(pilot, lambda: not isinstance(app.screen, SearchScreen))
        await until(pilot, lambda: all(w.is_finished for w in dialog.workers if w.group == "search"), seconds=60)
        await pilot.pause(0.2)
        assert app.sandbox.scenario == before and app.sandbox.can_undo is None


async def test_the_dialog_and_its_results_fit_an_80_by_24_terminal():
    app = small_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_and_search(pilot, app)
        text = screen_text(app)
        assert "Best layouts for small" in text and "1. " in text and "apply" in text and "close" in text
        first = str(results(app).get_option_at_index(0).prompt).splitlines()[0]
        assert first in text  # the best layout's line is on screen, not cut off
