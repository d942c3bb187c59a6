"""The sandbox app, driven like a player would (Pilot), with sim time frozen unless a test moves it."""

from __future__ import annotations

import io

import pytest
from textual.widgets import Input, Select

from factorysim import Fault, load_scenario
from factorysim.challenge import load_challenge
from factorysim.engine import SimClock
from factorysim.scenario import load_scenario_file
from factorysim.topology.layout import View
from factorysim.tui import FactorySimApp
from factorysim.tui.canvas import GLYPHS, TopologyCanvas
from factorysim.tui.screens import BriefScreen, FaultScreen, HelpScreen, PathScreen

from .conftest import scenario

SIZE = (120, 40)


def app_for(path=None, **kw) -> FactorySimApp:
    s = load_scenario(path) if path else scenario(*kw.pop("overrides", ()))
    clock = kw.pop("clock", None) or SimClock(speed=3600.0, paused=True)
    return FactorySimApp(s, path, clock=clock, **kw)


def screen_text(app: FactorySimApp) -> str:
    """What the terminal shows now, as plain text."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


async def select(pilot, app: FactorySimApp, box_id: str) -> None:
    box = app.canvas.scene.box(box_id)
    app.canvas.scroll_to(0, max(0, box.y - 2), animate=False)
    await pilot.pause()
    sx, sy = app.canvas.scroll_offset
    await pilot.click(TopologyCanvas, offset=(box.x + 2 - sx, box.y + 1 - sy))
    await pilot.pause()
    assert app.canvas.selected == box_id


async def until(pilot, condition, seconds: float = 15.0) -> None:
    """Wait (in small steps) for what a slow, shared machine may take a moment to show."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition()


async def click_in_inspector(pilot, app: FactorySimApp, selector: str, offset=(2, 0)) -> None:
    """Scroll a control of the inspector into view, as a player would, and click it."""
    app.inspector.query_one(selector).scroll_visible(animate=False)
    await pilot.pause(0.2)
    await pilot.click(selector, offset=offset)


async def inject(pilot, app: FactorySimApp, kind_index: int = 0) -> None:
    """f on the selection, then the kind at kind_index in the fault dialog."""
    await pilot.press("f")
    await pilot.pause()
    assert isinstance(app.screen, FaultScreen)
    await pilot.press(*(["down"] * kind_index), "enter")
    await pilot.pause(0.2)


async def test_the_sandbox_opens_on_the_starter_with_every_panel():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "events" in screen_text(app) and "= delivered" in screen_text(app))
        assert app.view == View("pod", 0)
        assert app.canvas.scene.box("rack0") is not None
        text = screen_text(app)
        for word in ("peak BF16", "× stability", "= delivered", "tokens/s", "ETTR", "inspector", "events"):
            assert word in text, word
        assert app.dashboard.border_title == "t 0d 00:00:00 · 1 h/s · paused"
        step = app.sandbox.step  # the waterfall shows the starter's step: its peak and its four factors
        assert app.dashboard._waterfall.peak == step.peak_flops == pytest.approx(64 * 989e12)
        shown = app.dashboard._waterfall.factors
        assert [shown[k] for k in ("generality", "chip", "node", "cluster")] == list(step.factors.as_dict().values())[
            :4
        ]
        assert app.sandbox.sim.now == 0.0  # paused: sim time frozen


# ------------------------------------------------------------------ building: move, link, undo


async def test_dragging_a_node_moves_it_and_the_position_is_saved(tmp_path):
    path = tmp_path / "s.toml"
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        box = app.canvas.scene.box("leaf7")
        free_x = max(b.x + b.w for b in app.canvas.scene.boxes) + 3 - box.x  # right of every box: empty
        await pilot.mouse_down(TopologyCanvas, offset=(box.x + 2, box.y + 1))
        await pilot.hover(TopologyCanvas, offset=(box.x + 8, box.y + 2))
        await pilot.mouse_up(TopologyCanvas, offset=(box.x + 2 + free_x, box.y + 1))
        await pilot.pause()
        assert app.sandbox.scenario.layout.positions["pod0/leaf7"] == (box.x + free_x, box.y)
        assert app.canvas.scene.box("leaf7").x == box.x + free_x
        app.sandbox.save(path)
    assert load_scenario_file(path).layout.positions["pod0/leaf7"] == (box.x + free_x, box.y)


async def test_a_box_dropped_onto_another_lands_beside_it():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        leaf0, leaf1 = app.canvas.scene.box("leaf0"), app.canvas.scene.box("leaf1")
        await pilot.mouse_down(TopologyCanvas, offset=(leaf0.x + 2, leaf0.y + 1))
        await pilot.hover(TopologyCanvas, offset=(leaf1.x + 1, leaf1.y + 1))
        await pilot.mouse_up(TopologyCanvas, offset=(leaf1.x + 2, leaf1.y + 1))  # exactly onto leaf1
        await pilot.pause()
        moved = app.canvas.scene.box("leaf0")
        others = [b for b in app.canvas.scene.boxes if b.id != "leaf0"]
        overlapping = [
            b.id
            for b in others
            if moved.x < b.x + b.w and b.x < moved.x + moved.w and moved.y < b.y + b.h and b.y < moved.y + moved.h
        ]
        assert overlapping == []
        assert (moved.x, moved.y) != (leaf0.x, leaf0.y)


async def test_shift_arrows_nudge_the_selection_and_u_puts_it_back():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "spine1")
        x, y = app.canvas.selected_box.x, app.canvas.selected_box.y
        await pilot.press("shift+down")
        assert app.sandbox.scenario.layout.positions["pod0/spine1"] == (x, y + 1)
        await pilot.press("u")
        assert "pod0/spine1" not in app.sandbox.scenario.layout.positions
        assert (app.canvas.scene.box("spine1").x, app.canvas.scene.box("spine1").y) == (x, y)
        await pilot.press("U")
        assert app.sandbox.scenario.layout.positions["pod0/spine1"] == (x, y + 1)
        await pilot.press("0")  # the view's layout reset
        assert app.sandbox.scenario.layout.positions == {}


async def test_dragging_from_one_node_to_another_with_ctrl_adds_a_link_drawn_on_the_canvas():
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
        assert ("leaf0", "spine2", "added") in app.canvas.edit_wires


async def test_link_mode_by_keyboard_shows_itself_and_adds_a_link():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "leaf3")
        await pilot.press("l")
        await pilot.pause()
        assert "LINK" in screen_text(app) and "from leaf3" in screen_text(app)
        assert app.canvas.has_class("-linking")
        await select(pilot, app, "spine0")
        await pilot.press("l")
        await pilot.pause()
        assert [(e.a, e.b) for e in app.sandbox.scenario.topology.edits] == [("leaf3", "spine0")]
        assert "LINK" not in screen_text(app) and not app.canvas.has_class("-linking")


async def test_link_mode_is_cancelled_by_escape():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "leaf3")
        await pilot.press("l", "escape")
        await pilot.pause()
        assert not app.canvas.link_mode and "LINK" not in screen_text(app)
        assert app.view == View("pod", 0)  # escape ended the link, it did not zoom out


async def test_removing_a_link_draws_it_crossed_out_and_undo_brings_it_back():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "leaf2")
        await pilot.pause(0.3)
        await click_in_inspector(pilot, app, "#rm-spine5")
        await pilot.pause(0.3)
        assert ("leaf2", "spine5", "removed") in app.canvas.edit_wires
        assert "✕" in screen_text(app)
        assert not app.sandbox.graph.has_edge("leaf2", "spine5")
        await pilot.press("u")
        await pilot.pause()
        assert app.sandbox.graph.has_edge("leaf2", "spine5")
        assert app.canvas.edit_wires == []


async def test_undo_and_redo_an_inspector_edit_restart_the_run_on_each_scenario():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.inspector.query("#f-parallelism-tp"))
        tp = app.inspector.query_one("#f-parallelism-tp", Input)
        tp.focus()
        tp.value = "4"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.sandbox.scenario.parallelism.tp == 4
        app.canvas.focus()
        await pilot.press("u")
        await pilot.pause(0.2)
        assert app.sandbox.scenario.parallelism.tp == 2 and tp.value == "2"
        assert app.sandbox.step.layout.tp == 2
        await pilot.press("U")
        await pilot.pause(0.2)
        assert app.sandbox.scenario.parallelism.tp == 4 and app.sandbox.step.layout.tp == 4


# ------------------------------------------------------------------ breaking things


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
        await inject(pilot, app)
        await pilot.pause(0.6)  # the log is written twice a second
        assert before > 0 and app.sandbox.sim.tokens_per_s == 0
        assert app.sandbox.server_state(1) == "failed"
        lines = app.events_log.plain_lines()
        assert "you injected fail on n1" in lines[-2] or any("you injected fail on n1" in x for x in lines)
        assert any("n1 failed" in line and "the job hangs" in line for line in lines)


async def test_a_failed_leaf_is_drawn_failed_and_inspected_as_failed():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "leaf7")
        await inject(pilot, app)
        await pilot.pause(0.2)
        assert app.sandbox.sim.snapshot().replicas_up == 0
        assert app.sandbox.box_state(app.canvas.scene.box("leaf7")) == "failed"
        assert f"{GLYPHS['failed']} leaf7" in screen_text(app)
        assert "state: failed" in str(app.inspector.query_one("#inspector-props").visual)


async def test_enter_in_the_fault_dialogs_fields_injects():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "rack0")
        await pilot.press("enter")
        await pilot.pause()
        await select(pilot, app, "n2")
        await pilot.press("f")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, FaultScreen)
        await pilot.press("down")  # straggle
        dialog.query_one("#fault-factor", Input).focus()
        await pilot.press("0", ".", "5", "enter")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, FaultScreen)
        assert {(g.server, g.kind, g.factor) for g in app.sandbox.sim.gray_faults} == {(2, "straggle", 0.5)}


async def test_an_alert_marks_where_something_broke_and_g_goes_there():
    app = app_for(path="scenarios/kuae-mtt-s4000-10k.toml")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert app.view == View("cluster")
        assert app.sandbox.inject(Fault("n1200", "fail")).ok
        app._log_flushed = 0
        app.show_frame(app.sandbox.sim.snapshot())
        pod = f"pod{app.sandbox.hierarchy.pod_of_server(1200)}"
        assert app.canvas.alerts == {pod}
        assert " ! " in screen_text(app)
        await pilot.press("g")
        await pilot.pause(0.5)
        assert app.view == View("rack", app.sandbox.hierarchy.rack_of_server(1200))
        assert app.canvas.selected == "n1200"


async def test_choosing_an_event_goes_to_its_node():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        app.sandbox.inject(Fault("n5.3", "straggle", 0.5, 3600))
        app._log_flushed = 0
        app.show_frame(app.sandbox.sim.snapshot())
        await pilot.pause()
        lines = app.events_log.plain_lines()
        assert any("n5.3 runs at 50% speed" in line for line in lines)
        options = app.events_log.options
        index = next(i for i, line in enumerate(lines) if "runs at" in line)
        options.focus()
        options.highlighted = index
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.view == View("server", 5) and app.canvas.selected == "n5.3"


@pytest.mark.parametrize(("overrides", "faults", "shown"), [
    ((), (), "none"),  # the cluster keeps no spares
    (("cluster.nodes=9", "cluster.spare_nodes=1"), (), "8"),  # one server of eight chips waits
    (("cluster.nodes=9", "cluster.spare_nodes=1"), ("n5",), "empty"),  # it took n5's place: the pool ran dry
])  # fmt: skip
async def test_the_spares_line_tells_a_dry_pool_from_none_at_all(overrides, faults, shown):
    app = app_for(overrides=overrides)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        for node in faults:
            assert app.sandbox.inject(Fault(node, "fail")).ok
        app.sandbox.sim.run_until(app.sandbox.sim.now + 3600)
        app.show_frame(app.sandbox.sim.snapshot())
        await pilot.pause()
        line = next(line for line in screen_text(app).splitlines() if " spares " in line)
        assert line.split(" spares ")[1].split()[0] == shown


async def test_the_event_filter_keeps_matching_events():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        app.sandbox.inject(Fault("n5", "fail"))
        app.sandbox.inject(Fault("n6.1", "straggle", 0.5, 3600))
        app._log_flushed = 0
        app.show_frame(app.sandbox.sim.snapshot())
        await pilot.pause()
        assert len(app.events_log.plain_lines()) >= 4
        app.query_one("#event-filter", Input).value = "n6"
        await pilot.pause()
        shown = app.events_log.plain_lines()
        assert shown and all("n6" in line for line in shown)
        assert app.events_log.options.option_count == len(shown)


async def test_hovering_a_box_shows_its_summary():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        app.sandbox.inject(Fault("n1", "fail"))
        rack = app.canvas.scene.box("rack0")
        await pilot.hover(TopologyCanvas, offset=(rack.x + 3, rack.y + 1))
        await pilot.pause()
        assert "rack 0 (rack): ✕ failed" in str(app.canvas.tooltip)
        assert "servers: n0-n3" in str(app.canvas.tooltip)


# ------------------------------------------------------------------ editing: answers in view


async def test_a_refused_edit_says_why_in_view_and_the_field_shows_the_value_in_use():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.inspector.query("#f-parallelism-tp"))
        tp = app.inspector.query_one("#f-parallelism-tp", Input)
        tp.focus()
        tp.value = "3"
        await pilot.press("enter")
        result = app.inspector.query_one("#inspector-result")
        await until(pilot, lambda: "refused" in str(result.visual))
        assert result.display and result.region.height >= 1
        assert "refused" in str(result.visual) and "stays 2" in str(result.visual)
        assert "does not divide" in str(app.inspector.query_one("#f-parallelism-tp-err").visual)
        assert tp.value == "2"  # the field shows what the model uses, not the refused 3
        assert app.sandbox.scenario.parallelism.tp == 2
        tp.value = "4"
        await pilot.press("enter")
        await until(pilot, lambda: app.sandbox.scenario.parallelism.tp == 4)
        assert "applied" in str(result.visual)


async def test_a_link_speed_that_is_not_a_number_is_refused_in_view_and_the_field_restored():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "leaf2")
        await pilot.pause(0.3)
        field = app.inspector.query_one("#link-spine5", Input)
        field.focus()
        field.value = "abc"
        await pilot.press("enter")
        await pilot.pause(0.2)
        result = app.inspector.query_one("#inspector-result")
        assert result.display and "'abc' is not a positive number" in str(result.visual)
        assert field.value == "400"
        assert app.sandbox.scenario.topology.edits == []


async def test_clicking_into_a_link_speed_and_typing_replaces_it():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await select(pilot, app, "leaf2")
        await pilot.pause(0.3)
        await click_in_inspector(pilot, app, "#link-spine5")
        await pilot.press("1", "0", "0", "enter")
        await pilot.pause(0.3)
        assert [(e.op, e.gbps) for e in app.sandbox.scenario.topology.edits] == [("set", 100.0)]


async def test_space_still_pauses_after_an_edit_in_a_select():
    app = app_for(clock=SimClock(speed=3600.0, paused=False))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.inspector.query("#tab-workload"))
        await pilot.click("#tab-workload")
        await until(pilot, lambda: [s.value for s in app.inspector.query("#f-workload-precision")] == ["bf16"])
        precision = app.inspector.query_one("#f-workload-precision", Select)
        precision.focus()
        precision.value = "fp8"
        await until(pilot, lambda: app.sandbox.scenario.workload.precision == "fp8")
        assert not app.clock.paused
        await pilot.press("space")
        await pilot.pause()
        assert app.clock.paused and not precision.expanded
        await pilot.press("space")
        assert not app.clock.paused


# ------------------------------------------------------------------ challenges, time, files


async def test_a_challenge_waits_for_the_player_to_read_the_brief():
    ch = load_challenge("layout-101")
    app = FactorySimApp(ch, clock=SimClock(speed=3600.0, frame_interval=1 / 20))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.8)
        assert isinstance(app.screen, BriefScreen)
        assert app.clock.paused and app.sandbox.sim.now == 0.0
        text = screen_text(app)
        assert "layout-101" in text or ch.challenge.title in text
        assert "train 4.5e+10 tokens within 1 d" in text
        await pilot.press("enter")
        await pilot.pause(0.4)
        assert not isinstance(app.screen, BriefScreen)
        assert not app.clock.paused and app.sandbox.sim.now > 0


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
        assert f" · {app.clock.speed / 60:g} min/s · paused" in app.dashboard.border_title


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


async def test_saving_into_a_missing_folder_keeps_the_dialog_open_with_the_reason(tmp_path):
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, PathScreen)
        field = app.screen.query_one("#path", Input)
        field.value = str(tmp_path / "nowhere" / "x.toml")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PathScreen)
        error = str(app.screen.query_one("#path-error").visual)
        assert f"the folder {tmp_path / 'nowhere'} does not exist" in error
        assert ".tmp" not in error
        field.value = str(tmp_path / "x.toml")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, PathScreen)
    assert load_scenario(tmp_path / "x.toml").name == app.sandbox.scenario.name


async def test_the_open_dialog_picks_a_file_from_its_tree(tmp_path):
    from factorysim.scenario import save_scenario

    save_scenario(scenario("name='picked'"), tmp_path / "picked.toml")
    (tmp_path / "notes.txt").write_text("not a scenario")
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("o")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, PathScreen)
        tree = dialog.query_one("#path-tree")
        tree.path = tmp_path
        await pilot.pause(0.3)
        names = [node.label.plain for node in tree.root.children]
        assert names == ["picked.toml"]  # folders and .toml files only
        tree.select_node(tree.root.children[0])
        await pilot.pause()
        assert dialog.query_one("#path", Input).value == str(tmp_path / "picked.toml")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.sandbox.scenario.name == "picked"


# ------------------------------------------------------------------ screen sizes, panels, help


async def test_at_80x24_every_dashboard_number_is_on_screen():
    app = app_for()
    labels = ("0d 00:00:00", "peak", "delivered", "× generality", "× stability", "49.3%", "tokens/s",
              "no faults", "ETTR", "100.00%", "stability", "MFU now", "per step", "replicas", "32/32",
              "stops", "chips ok", "isolated", "failed", "in repair", "spares", "tokens", "ETA")  # fmt: skip
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):  # the first frame: at most 10 s on a loaded machine
            await pilot.pause(0.05)
            if "ETA" in screen_text(app) and app.inspector.is_mounted:
                break
        await pilot.pause(0.3)
        text = screen_text(app)
        for label in labels:
            assert label in text, label
        assert "…" not in "\n".join(line[44:] for line in text.splitlines()[:16])  # nothing cut in the dashboard
        stats = app.dashboard.query_one("#stats")
        assert stats.region.bottom <= app.dashboard.region.bottom - 1  # inside the border, no scrolling
        footer = text.splitlines()[-1]
        assert "Pause" in footer and "Help" in footer and "Quit" in footer


async def test_a_live_resize_reflows_the_canvas_and_the_dashboard():
    app = app_for(path="scenarios/kuae-mtt-s4000-10k.toml")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        wide = app._layout_width
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.4)
        assert app._layout_width == app.canvas.size.width - 1 < wide
        assert app.canvas.region.width >= 40 and app.dashboard.compact
        assert max(b.x + b.w for b in app.canvas.scene.boxes if b.kind == "pod") <= app._layout_width
        await pilot.resize_terminal(200, 60)
        await pilot.pause(0.4)
        assert app._layout_width == app.canvas.size.width - 1 > wide
        assert not app.dashboard.compact and app.dashboard._rate.display


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


async def test_m_maximises_the_focused_panel_and_escape_restores_it():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("m")
        await pilot.pause()
        assert app.screen.maximized is app.canvas
        assert app.canvas.region.width == SIZE[0]
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.maximized is None
        app.dashboard.focus()
        await pilot.press("m")
        await pilot.pause(0.2)
        assert app.screen.maximized is app.dashboard and app.dashboard._rate.display


async def test_the_chart_axes_show_the_scale_and_c_changes_the_time_window():
    app = app_for()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        app.sandbox.sim.run_until(2 * 3600)
        app.sandbox.inject(Fault("n3", "fail"))
        app.sandbox.sim.run_until(3 * 3600)
        app.show_frame(app.sandbox.sim.snapshot())
        await pilot.pause()
        text = screen_text(app)
        assert "−6 h" in text and "now (6 h)" in text
        ettr = app.dashboard._ettr.render().plain
        assert "100%" in ettr and "%┤" in ettr.splitlines()[-2]  # the low end of the scale is labelled
        await pilot.press("c")
        await pilot.pause()
        assert "now (1 d)" in screen_text(app)


async def test_the_walkthrough_moves_on_as_the_player_does_each_step():
    app = app_for(tour=True, clock=SimClock(speed=3600.0, paused=False))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert app.tour.display and app.tour.waiting_for == "pause"
        await pilot.press("space")
        assert app.tour.waiting_for == "select"
        await select(pilot, app, "leaf1")
        assert app.tour.waiting_for == "fault"
        await inject(pilot, app)
        assert app.tour.waiting_for == "resume"
        await pilot.press("space")
        assert app.tour.waiting_for == "fix"
        await pilot.press("r")
        assert app.tour.finished
        await pilot.press("t")
        assert not app.tour.display


async def test_a_recording_is_watch_only_and_says_so(tmp_path):
    from factorysim import Simulation
    from factorysim.sandbox import Sandbox

    log = tmp_path / "run.jsonl"
    sim = Simulation(scenario(), record=True)
    sim.run_until(3600)
    sim.write_log(log)
    sb = Sandbox.from_log(log)
    app = FactorySimApp(sb.scenario, clock=SimClock(speed=3600.0, paused=True), sandbox=sb)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        assert app.inspector.read_only
        assert all(field.disabled for field in app.inspector.query("#inspector-body Input"))
        await pilot.press("f")
        await pilot.pause()
        assert not isinstance(app.screen, FaultScreen)
        assert any("watched, not changed" in str(n.message) for n in app._notifications)
        assert "watch only" in app.sub_title


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
        keys = {line.split("  ")[0].strip() for line in console.export_text().splitlines()}
        for binding in [*app.BINDINGS, *TopologyCanvas.BINDINGS]:
            shown = binding.key_display or binding.key.split(",")[0]
            if shown in ("up", "down", "left", "right"):
                shown = "arrows"
            elif shown.startswith("shift+"):
                shown = "shift+arrows"
            assert any(shown in key.split(" / ") for key in keys), shown
        for key, _ in FactorySimApp.KEY_HELP:
            assert key in keys
        legend = str(app.screen.query_one("#help-legend").visual)
        assert all(glyph in legend for glyph in GLYPHS.values())
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_the_palette_help_and_bindings_come_from_one_table():
    from factorysim.tui import keys

    app = app_for(path="scenarios/kuae-mtt-s4000-10k.toml")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        help_keys = {k for row, _ in keys.HELP for k in row.split(" / ")}
        for title, action, key in keys.PALETTE:
            assert commands[title].callback == getattr(app, f"action_{action}")
            assert commands[title].help == (f"{key}: {title.lower()}" if key else title)
            assert not key or key in help_keys, title
        bound = {b.action for b in app.BINDINGS}  # type: ignore[union-attr]
        for k in keys.KEYS:
            if k.keys:
                assert k.action in bound
                assert hasattr(app, "action_" + k.action.split("(")[0]), k.action
        commands["Colour-blind-safe theme"].callback()
        assert app.theme == "factorysim-colour-blind"
        await select(pilot, app, "pod0")
        await pilot.press("enter")
        await pilot.pause()
        assert app.view == View("pod", 0)
        commands["Zoom out"].callback()
        await pilot.pause()
        assert app.view == View("cluster")


async def test_a_recorded_run_replays_in_the_sandbox_to_the_same_final_state(tmp_path):
    from factorysim import Simulation
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
        await pilot.press("q", "s", "o", "question_mark")  # q quits; s and o would open dialogs
        await pilot.pause(0.2)
        assert len(app.screen_stack) == 1
    assert app.return_code == 0
