"""The main screens pinned as pictures at 80×24 and 120×40 (pytest-textual-snapshot).

A change that moves a pixel fails here: look at the report pytest writes, and if the new screen is the
one you meant, accept it with `pytest tests/test_snapshots.py --snapshot-update`.
Sim time is frozen (a paused clock) and every fault is injected at a set time, so each picture is
the same on every machine.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from factorysim import Fault, load_scenario
from factorysim.challenge import load_challenge
from factorysim.engine import SimClock
from factorysim.tui import FactorySimApp

SIZES = [(80, 24), (120, 40)]


def starter(path=None) -> FactorySimApp:
    return FactorySimApp(load_scenario(path), path, clock=SimClock(speed=3600.0, paused=True))


async def settle(pilot, seconds: float = 0.6) -> None:
    """The first frame, then the scenario editor (mounted after it) and a written event log."""
    await pilot.pause(seconds)
    app = pilot.app
    app._log_flushed = 0
    app.show_frame(app.sandbox.sim.snapshot())
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_starter(snap_compare, size):
    async def run_before(pilot):
        await settle(pilot)

    assert snap_compare(starter(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_failed_leaf(snap_compare, size):
    async def run_before(pilot):
        await settle(pilot)
        app = pilot.app
        sim = app.sandbox.sim
        sim.run_until(6 * 3600)
        app.sandbox.inject(Fault("leaf7", "fail"))
        sim.run_until(6 * 3600 + 600)
        app.canvas.select("leaf7")
        for _ in range(100):  # the cluster graph, built off the UI thread, lists leaf7's links (where shown)
            if app.sandbox.has_graph:
                break
            await pilot.pause(0.05)
        await settle(pilot, 0.3)

    assert snap_compare(starter(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_refused_edit(snap_compare, size):
    async def run_before(pilot):
        await settle(pilot)
        app = pilot.app
        tp = app.inspector.query_one("#f-parallelism-tp", Input)
        tp.focus()
        tp.value = "3"
        await pilot.press("enter")
        await pilot.pause(0.2)
        app.canvas.focus()  # no blinking cursor in the picture
        await pilot.pause()

    assert snap_compare(starter(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_challenge_brief(snap_compare, size):
    app = FactorySimApp(load_challenge("spare-parts"), clock=SimClock(speed=3600.0))

    async def run_before(pilot):
        await pilot.pause(0.6)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_the_10k_cluster_with_a_failed_server_at_120x40(snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        app = pilot.app
        app.sandbox.sim.run_until(86400)
        app.sandbox.inject(Fault("n700", "fail"))
        app.sandbox.inject(Fault("n12.3", "straggle", 0.5, 6 * 3600))
        app.sandbox.sim.run_until(86400 + 1200)
        await settle(pilot, 0.3)

    assert snap_compare(starter("scenarios/kuae-mtt-s4000-10k.toml"), terminal_size=(120, 40), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_layout_search_with_its_best_layouts(snap_compare, size):
    from textual.widgets import OptionList

    from factorysim.tui.search_dialog import SearchScreen

    from .test_search import SMALL
    from .test_tui import until

    app = FactorySimApp(load_scenario(None, SMALL), None, clock=SimClock(speed=3600.0, paused=True))

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        await pilot.press("enter")  # the search button has the focus; the search runs in one process
        listed = lambda: app.screen.query_one("#search-results", OptionList)  # noqa: E731
        await until(pilot, lambda: listed().display and listed().option_count == 5, seconds=120)
        await until(pilot, lambda: "layouts tried" in str(app.screen.query_one("#search-status").render()))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
