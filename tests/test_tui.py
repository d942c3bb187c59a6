"""The sandbox app, driven like a player would (Pilot), with sim time frozen unless a test moves it."""

from __future__ import annotations

import io

import pytest

from factorysim import load_scenario
from factorysim.engine import SimClock
from factorysim.scenario import load_scenario_file
from factorysim.topology.layout import View
from factorysim.tui import FactorySimApp
from factorysim.tui.canvas import TopologyCanvas
from factorysim.tui.screens import FaultScreen, HelpScreen

from .conftest import scenario

SIZE = (120, 40)


def app_for(path=None, **kw) -> FactorySimApp:
    s = load_scenario(path) if path else scenario(*kw.pop("overrides", ()))
    return FactorySimApp(s, path, clock=SimClock(speed=3600.0, paused=True), **kw)


async def select(pilot, app: FactorySimApp, box_id: str) -> None:
    box = app.canvas.scene.box(box_id)
    app.canvas.scroll_to(0, max(0, box.y - 2), animate=False)
    await pilot.pause()
    sx, sy = app.canvas.scroll_offset
    await pilot.click(TopologyCanvas, offset=(box.x + 2 - sx, box.y + 1 - sy))
    await pilot.pause()
    assert app.canvas.selected == box_id


async def test_the_sandbox_opens_on_the_starter_with_every_panel():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert app.view == View("pod", 0)
        assert app.canvas.scene.box("rack0") is not None
        step = app.sandbox.step  # the waterfall shows the starter's step: its peak and its four factors
        for _ in range(40):  # the first frame comes from a worker: wait for it (at most 2 s more)
            if app.dashboard._waterfall.peak:
                break
            await pilot.pause(0.05)
        assert app.dashboard._waterfall.peak == step.peak_flops == pytest.approx(64 * 989e12)
        shown = app.dashboard._waterfall.factors
        assert [shown[k] for k in ("generality", "chip", "node", "cluster")] == list(step.factors.as_dict().values())[
            :4
        ]
        assert app.sandbox.sim.now == 0.0  # paused: sim time frozen


async def test_dragging_a_node_moves_it_and_the_position_is_saved(tmp_path):
    path = tmp_path / "s.toml"
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        box = app.canvas.scene.box("leaf0")
        await pilot.mouse_down(TopologyCanvas, offset=(box.x + 2, box.y + 1))
        await pilot.hover(TopologyCanvas, offset=(box.x + 8, box.y + 3))
        await pilot.mouse_up(TopologyCanvas, offset=(box.x + 12, box.y + 4))
        await pilot.pause()
        assert app.sandbox.scenario.layout.positions["pod0/leaf0"] == (box.x + 10, box.y + 3)
        assert app.canvas.scene.box("leaf0").x == box.x + 10
        app.sandbox.save(path)
    assert load_scenario_file(path).layout.positions["pod0/leaf0"] == (box.x + 10, box.y + 3)


async def test_shift_arrows_nudge_the_selection():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "spine1")
        x, y = app.canvas.selected_box.x, app.canvas.selected_box.y
        await pilot.press("shift+right", "shift+right", "shift+down")
        assert app.sandbox.scenario.layout.positions["pod0/spine1"] == (x + 2, y + 1)


async def test_dragging_from_one_node_to_another_with_ctrl_adds_a_link():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        leaf, spine = app.canvas.scene.box("leaf0"), app.canvas.scene.box("spine2")
        bw = app.sandbox.graph.edges["leaf0", "spine2"]["bw"]
        await pilot.mouse_down(TopologyCanvas, offset=(leaf.x + 2, leaf.y + 1), control=True)
        await pilot.hover(TopologyCanvas, offset=(spine.x + 3, spine.y + 2))
        await pilot.mouse_up(TopologyCanvas, offset=(spine.x + 3, spine.y + 1))
        await pilot.pause()
        edits = app.sandbox.scenario.topology.edits
        assert [(e.op, e.a, e.b) for e in edits] == [("add", "leaf0", "spine2")]
        assert app.sandbox.graph.edges["leaf0", "spine2"]["bw"] == pytest.approx(2 * bw)


async def test_link_mode_by_keyboard_adds_a_link():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "leaf3")
        await pilot.press("l")
        await select(pilot, app, "spine0")
        await pilot.press("l")
        await pilot.pause()
        assert [(e.a, e.b) for e in app.sandbox.scenario.topology.edits] == [("leaf3", "spine0")]


async def test_a_fault_on_a_selected_server_drops_output_and_shows_in_the_log():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        app.sandbox.sim.run_until(3600)
        before = app.sandbox.sim.tokens_per_s
        await select(pilot, app, "rack0")
        await pilot.press("enter")  # into the rack
        await pilot.pause()
        assert app.view.level == "rack"
        await select(pilot, app, "n1")
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FaultScreen)
        await pilot.press("enter")  # the first choice: fail
        await pilot.pause(0.3)
        assert before > 0 and app.sandbox.sim.tokens_per_s == 0
        assert app.sandbox.server_state(1) == "failed"
        lines = "\n".join(str(line.text) for line in app.events_log.lines)
        assert "fault" in lines and "n1" in lines
        assert app.dashboard._stats.visual is not None


async def test_space_pauses_and_plus_minus_change_speed():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert app.clock.paused
        await pilot.press("space")
        assert not app.clock.paused
        await pilot.press("space")
        assert app.clock.paused
        speed = app.clock.speed
        await pilot.press("plus")
        assert app.clock.speed > speed
        await pilot.press("minus", "minus")
        assert app.clock.speed < speed
        await pilot.pause(0.2)
        assert "min/s" in str(app.dashboard._clock.visual) or "s/s" in str(app.dashboard._clock.visual)


async def test_n_steps_to_the_next_event_while_paused():
    app = app_for(overrides=['faults=[{at="5h", target="n1"}]'])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("n")
        await pilot.pause(0.4)
        assert app.sandbox.sim.now == pytest.approx(5 * 3600)


async def test_save_then_load_gives_the_same_scenario(tmp_path):
    path = tmp_path / "session.toml"
    from factorysim.scenario import save_scenario

    save_scenario(scenario(), path)
    app = app_for(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "spine3")
        await pilot.press("shift+down", "p")  # move a box, switch the policy
        await pilot.press("s")
        await pilot.pause()
        saved = app.sandbox.scenario
    again = load_scenario(path)
    assert again == saved
    assert again.reliability.policy == "isolate-group" and again.layout.positions


async def test_the_inspector_refuses_an_invalid_edit_with_the_reason_and_accepts_a_valid_one():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        tp = app.inspector.query_one("#f-parallelism-tp")
        tp.value = "3"
        tp.focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        error = app.inspector.query_one("#f-parallelism-tp-err")
        assert "✗" in str(error.visual) and "does not divide" in str(error.visual)
        assert app.sandbox.scenario.parallelism.tp == 2
        tp.value = "4"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.sandbox.scenario.parallelism.tp == 4
        assert "applied" in str(error.visual)


async def test_help_lists_every_key():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        from rich.console import Console

        console = Console(width=200, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#help-keys").content)
        text = console.export_text()
        for binding in app.BINDINGS:
            assert binding.key_display or binding.key.split(",")[0] in text
        for key, _ in FactorySimApp.KEY_HELP:
            assert key in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_small_and_large_terminals(size):
    app = app_for(path="scenarios/kuae-mtt-s4000-10k.toml")
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        assert app.view == View("cluster")
        assert app.canvas.region.width > 20 and app.dashboard.region.width > 20
        await select(pilot, app, "pod0")
        await pilot.press("enter")
        await pilot.pause()
        assert app.view == View("pod", 0)
        await pilot.press("backspace")
        assert app.view == View("cluster") and app.canvas.selected == "pod0"


async def test_a_recorded_run_replays_in_the_sandbox_to_the_same_final_state(tmp_path):
    from factorysim import Fault, Simulation
    from factorysim.engine import replay
    from factorysim.sandbox import Sandbox
    from factorysim.tui.slider import TimeSlider

    log = tmp_path / "session.jsonl"
    sim = Simulation(scenario("cluster.nodes=9", "cluster.spare_nodes=1"), record=True)
    sim.run_until(20 * 3600)
    sim.inject(Fault("n3", "fail"))
    sim.run_until(40 * 3600)
    sim.inject(Fault("n6.2", "straggle", 0.5, 7200))
    sim.run_until(3 * 86400)
    sim.write_log(log)
    headless = replay(log)
    assert headless.identical

    sb = Sandbox.from_log(log)
    app = FactorySimApp(sb.scenario, clock=SimClock(speed=3600.0, paused=True), sandbox=sb)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert app.slider.display
        await pilot.press("end")  # to the end of the recording
        await pilot.pause(0.2)
        assert app.sandbox.sim.now == pytest.approx(3 * 86400)
        assert app.sandbox.sim.log.fingerprint == headless.fingerprint == headless.recorded_fingerprint
        await pilot.press("left_square_bracket")  # scrub back 1 %: simulated again up to there
        await pilot.pause(0.2)
        assert app.sandbox.sim.now == pytest.approx(0.99 * 3 * 86400)
        slider = app.query_one(TimeSlider)
        await pilot.click(TimeSlider, offset=(slider._track()[0] + slider._track()[1] // 2, 0))  # the middle
        await pilot.pause(0.2)
        assert 1.2 * 86400 < app.sandbox.sim.now < 1.8 * 86400
        await pilot.press("end")
        await pilot.pause(0.2)
        assert app.sandbox.sim.log.fingerprint == headless.fingerprint  # same final state after scrubbing
        assert "recorded run" in app.sandbox.edit("parallelism.tp", 4).message
        assert not app.sandbox.inject(Fault("n1")).ok


async def test_keys_typed_after_quit_open_nothing_and_crash_nothing():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press(*"question_mark")  # q quits; s and o would open dialogs
        await pilot.pause(0.2)
    assert app.return_code in (0, None)
