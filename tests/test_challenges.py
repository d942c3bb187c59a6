"""Challenges: each loads, is won by a known move, and is lost by doing nothing."""

from __future__ import annotations

import pytest

from factorysim.challenge import budget_problems, edit_refusal, list_challenges, load_challenge
from factorysim.cli import main
from factorysim.engine import SimClock
from factorysim.sandbox import Sandbox
from factorysim.scenario import ScenarioError
from factorysim.tui import FactorySimApp
from factorysim.tui.screens import EndScreen

ZERO_INTERRUPTION = [
    ("reliability.policy", "isolate-group"), ("reliability.isolate_crashes", True),
    ("reliability.rolling_maintenance", True), ("reliability.checkpoint_async", True),
]  # fmt: skip
WINNING_MOVES = {
    "layout-101": [("parallelism.tp", 2), ("parallelism.pp", 1), ("workload.recompute", "selective")],
    "fp8-switch": [("workload.precision", "fp8")],
    "blanket-cap": [("cluster.power_cap_w", 640)],
    "cooling-retrofit": [("facility.pue", 1.1), ("cluster.power_cap_w", 700)],
    "moe-in-the-box": [("parallelism.ep", 4)],
    "spare-parts": [("cluster.nodes", 136), ("cluster.spare_nodes", 8)],
    "checkpoint-cadence": [("reliability.checkpoint_async", True), ("reliability.checkpoint_interval", "10m")],
    "storm-10k": [*ZERO_INTERRUPTION, ("reliability.checkpoint_interval", "10m"), ("reliability.detect_time", "1m"), ("reliability.restart_time", "5m")],
    "hundred-k-99": [*ZERO_INTERRUPTION, ("reliability.detect_time", "10s"), ("reliability.async_checkpoint_cost", "1s"), ("reliability.checkpoint_interval", "10m"), ("reliability.join_time", "2m"), ("reliability.restart_time", "2m")],
}  # fmt: skip


def test_there_are_at_least_six_challenges_from_easy_to_hard():
    found = list_challenges()
    assert len(found) >= 6
    levels = [s.challenge.level for _, s in found]
    assert levels == sorted(levels, key=["easy", "medium", "hard"].index)
    assert {"easy", "medium", "hard"} <= set(levels)
    assert any(s.cluster.total_chips >= 100_000 and s.challenge.target >= 0.99 for _, s in found)
    assert set(WINNING_MOVES) == {name for name, _ in found}


def play(name: str, moves) -> Sandbox:
    sb = Sandbox(load_challenge(name))
    for path, value in moves:
        result = sb.edit(path, value)
        assert result.ok, (path, result.message)
    sb.sim.run_until(sb.challenge.within)
    return sb


@pytest.mark.parametrize("name", sorted(WINNING_MOVES))
def test_a_known_move_wins(name):
    status = play(name, WINNING_MOVES[name]).status()
    assert status.state == "won", status.detail
    assert status.score >= 1000


@pytest.mark.parametrize("name", sorted(WINNING_MOVES))
def test_doing_nothing_loses(name):
    status = play(name, []).status()
    assert status.state == "lost", status.detail
    assert status.reason


def test_a_challenge_refuses_edits_it_does_not_allow_and_keeps_its_budgets():
    sb = Sandbox(load_challenge("hundred-k-99"))
    assert "lets you change" in sb.edit("workload.precision", "fp8").message
    assert "lets you change" in sb.add_link("leaf0", "spine0").message
    assert "at least 10s" in sb.edit("reliability.detect_time", "1s").message
    assert sb.scenario == load_challenge("hundred-k-99")
    storm = load_challenge("storm-10k")
    assert "at least 3" in Sandbox(storm).edit("reliability.rate_multiplier", 0).message
    assert edit_refusal(storm.challenge, "reliability.policy") is None
    assert budget_problems(storm.challenge, storm) == []


def test_partial_moves_do_not_win_the_hard_challenge():
    status = play("hundred-k-99", ZERO_INTERRUPTION[:1]).status()
    assert status.state == "lost"


def test_a_power_budget_refuses_a_cap_the_hall_cannot_feed_and_half_the_retrofit_does_not_win():
    sb = Sandbox(load_challenge("blanket-cap"))
    refused = sb.edit("cluster.power_cap_w", 670).message
    assert "peak is 20.01 MW" in refused and "above the facility's 20 MW" in refused
    assert sb.scenario.cluster.power_cap_w == 400
    retrofit = Sandbox(load_challenge("cooling-retrofit"))
    assert "above the facility's 21 MW" in retrofit.edit("cluster.power_cap_w", 500).message
    assert "at least 1.1" in retrofit.edit("facility.pue", 1.0).message
    assert play("cooling-retrofit", [("facility.pue", 1.1)]).status().state == "lost"


def test_cli_lists_challenges_and_judges_a_run(capsys):
    assert main(["challenges"]) == 0
    out = capsys.readouterr().out
    for name in WINNING_MOVES:
        assert name in out
    assert main(["run", "--challenge", "fp8-switch", "--set", "workload.precision=fp8"]) == 0
    assert "challenge fp8-switch: WON" in capsys.readouterr().out
    assert main(["run", "--challenge", "fp8-switch", "--set", "cluster.nodes=200"]) == 2
    assert "lets you change" in capsys.readouterr().err
    with pytest.raises(ScenarioError, match="unknown challenge"):
        load_challenge("nope")


async def test_the_sandbox_shows_the_objective_and_declares_the_end():
    app = FactorySimApp(load_challenge("layout-101"), clock=SimClock(speed=86400.0, paused=True))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):  # the first frame: at most 5 s on a loaded machine
            await pilot.pause(0.05)
            if app.dashboard._challenge.display:
                break
        assert app.dashboard._challenge.display
        assert "Fix a bad parallel layout" in str(app.dashboard._challenge.visual)
        await pilot.press("enter")  # the brief read (the clock stays paused: it was started paused)
        assert app.clock.paused
        app.clock.resume()
        for _ in range(400):  # a sim day at a day per second: at most 20 s on a loaded machine
            await pilot.pause(0.05)
            if isinstance(app.screen, EndScreen):
                break
        assert isinstance(app.screen, EndScreen)
        assert app.sandbox.sim.now == pytest.approx(86400.0)  # stopped exactly at the limit
        assert app.sandbox.status().state == "lost" and app.clock.paused
        assert "Lost." in str(app.screen.query_one("#verdict").visual)
        app.clock.speed = 3600.0  # the retried run must not reach the limit again on a loaded machine
        await pilot.press("r")  # try again
        await pilot.pause(0.2)
        assert app.sandbox.sim.now < 86400.0 and not isinstance(app.screen, EndScreen)
