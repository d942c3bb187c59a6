"""The sandbox session, headless: edits are physics, refusals keep the old scenario, files round-trip."""

from __future__ import annotations

import os

import pytest

from factorysim import Fault, estimate, load_scenario
from factorysim.sandbox import Sandbox
from factorysim.scenario import catalog, load_scenario_file
from factorysim.topology.layout import View

from .conftest import scenario


def oversubscribed() -> Sandbox:
    """16 servers on a fat-tree whose leaves have half the uplinks they would need."""
    return Sandbox(scenario("cluster.nodes=16", 'cluster.fabric.topology="fat-tree"', "cluster.fabric.oversubscription=2",
                            "parallelism.tp=8", "parallelism.dp=auto"))  # fmt: skip


def test_removing_an_uplink_slows_the_step_through_the_leaf_bottleneck():
    sb = oversubscribed()
    before = sb.step.step_time_s
    assert sb.remove_link("leaf0", "spine0").ok
    assert sb.step.step_time_s > before
    assert sb.step.breakdown.dp_s > 0


def test_thinning_a_link_slows_the_step_and_widening_it_back_restores_it():
    sb = oversubscribed()
    before = sb.step.step_time_s
    assert sb.set_link("n0.0", "leaf0", 50).ok  # a NIC down to 50 Gb/s
    thin = sb.step.step_time_s
    assert thin > before
    assert sb.set_link("n0.0", "leaf0", 400).ok
    assert sb.step.step_time_s == pytest.approx(before)


def test_adding_uplinks_to_an_oversubscribed_leaf_speeds_the_step():
    sb = oversubscribed()
    before, ratio = sb.step.step_time_s, sb.index.leaf_ratio.min()
    for leaf in range(sb.plan.leaves):
        for spine in range(sb.plan.spines_per_pod):
            assert sb.add_link(f"leaf{leaf}", f"spine{spine}").ok
    assert ratio < 0.5 and sb.index.leaf_ratio.min() > 0.95  # uplinks doubled: nearly full bisection
    assert sb.step.step_time_s < before


def test_failing_a_spine_switch_slows_the_run_through_the_same_bottleneck():
    sb = oversubscribed()
    before = sb.sim.tokens_per_s
    assert sb.inject(Fault("spine0", "fail")).ok
    assert 0 < sb.sim.tokens_per_s < before


def test_edits_are_saved_and_reload_to_the_same_graph(tmp_path):
    sb = oversubscribed()
    sb.remove_link("leaf1", "spine2")
    sb.set_link("n3.1", "leaf0", 100)
    sb.move(View("pod", 0), "rack1", 30, 12)
    path = sb.save(tmp_path / "edited.toml")
    again = Sandbox(load_scenario(path), path)
    assert again.scenario == sb.scenario
    assert not again.graph.has_edge("leaf1", "spine2")
    assert again.graph.edges["n3.1", "leaf0"]["bw"] == pytest.approx(100e9 / 8)
    assert again.step.step_time_s == pytest.approx(sb.step.step_time_s)
    assert again.scene(View("pod", 0)).box("rack1").x == 30
    # and the headless estimate of the saved file sees the same edited graph
    assert estimate(load_scenario_file(path)).step_time_s == pytest.approx(sb.step.step_time_s)


def test_an_edit_that_would_break_the_scenario_is_refused_with_the_reason():
    sb = Sandbox(scenario())
    before = sb.scenario
    result = sb.edit("parallelism.tp", 3)
    assert not result.ok and "parallelism.tp" in result.message
    assert sb.scenario == before
    result = sb.edit("workload.precision", "fp4")
    assert not result.ok and '"bf16" or "fp8"' in result.message
    assert sb.add_link("n0.0", "n1.0").message.startswith("link: no link joins a chip and a chip")
    assert sb.remove_link("leaf0", "n5.3").ok is False


def test_an_accepted_edit_reruns_the_step_physics_at_once():
    sb = Sandbox(scenario())
    bf16 = sb.step.tokens_per_s
    assert sb.edit("workload.precision", "fp8").ok
    assert sb.step.tokens_per_s > bf16 * 1.15
    assert sb.sim.now == 0.0  # the run restarted on the new scenario


def test_a_failed_save_leaves_the_file_on_disk(tmp_path, monkeypatch):
    target = tmp_path / "keep.toml"
    sb = Sandbox(scenario(), target)
    sb.save()
    before = target.read_bytes()
    sb.edit("workload.global_batch", 512)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        sb.save()
    assert target.read_bytes() == before


def test_switching_policy_live_changes_what_the_next_fault_does():
    sb = Sandbox(scenario("cluster.nodes=9", "cluster.spare_nodes=1"))
    assert sb.set_policy("isolate-group").ok
    sb.sim.run_until(3600)
    sb.inject(Fault("n2"))
    sb.sim.run_until(3600 + 200)
    assert sb.sim.isolations == 1 and sb.sim.summary().interruptions["total"] == 0
    assert sb.scenario.reliability.policy == "isolate-group"


def test_display_states_follow_the_run():
    sb = Sandbox(scenario())
    sb.inject(Fault("n2.3", "straggle", 0.5, 7200))
    assert sb.chip_state(2, 3) == "degraded" and sb.server_state(2) == "degraded"
    sb.inject(Fault("n5"))
    assert sb.server_state(5) == "failed"
    pod = sb.scene(View("pod", 0)).box("rack1")
    assert sb.box_state(pod) == "failed"


def test_reset_starts_a_clean_run_without_the_last_runs_faults():
    sb = oversubscribed()
    fresh = sb.sim.tokens_per_s
    sb.inject(Fault("spine0", "fail"))
    sb.inject(Fault("n3.1", "degrade", 0.05, 7200))
    assert sb.sim.tokens_per_s < fresh
    sb.reset()
    assert sb.sim.tokens_per_s == pytest.approx(fresh)
    assert sb.index.spine_health.min() == 1.0 and sb.index.nic_health.min() == 1.0


def test_an_edit_that_leaves_the_cluster_alone_keeps_its_graph():
    sb = oversubscribed()
    assert sb.remove_link("leaf0", "spine0").ok
    graph = sb.graph
    assert sb.edit("workload.precision", "fp8").ok
    assert sb.graph is graph and not sb.graph.has_edge("leaf0", "spine0")
    assert sb.edit("cluster.fabric.oversubscription", 1.0).ok
    assert sb.graph is not graph


def test_a_failed_leaf_is_drawn_failed_until_it_is_repaired():
    sb = Sandbox(scenario())
    sb.sim.run_until(3600)
    assert sb.switch_state("leaf", 7) == "ok"
    assert sb.inject(Fault("leaf7", "fail")).ok
    sb.sim.run_until(3660)
    assert sb.switch_state("leaf", 7) == "failed"
    assert ("state", "failed") in sb.describe("leaf7")
    assert sb.switch_state("leaf", 6) == "ok"
    leaf = next(b for b in sb.scene(View("pod", 0)).boxes if b.id == "leaf7")
    assert sb.box_state(leaf) == "failed"
    assert sb.inject(Fault("leaf7", "repair")).ok
    assert sb.switch_state("leaf", 7) == "ok"


def test_a_failed_leaf_comes_back_after_its_repair_time():
    sb = Sandbox(scenario())
    sb.inject(Fault("leaf2", "fail"))
    repair = catalog().fault_classes["leaf_switch"].repair
    repair += sb.scenario.reliability.detect_time  # its servers are in the job: they go to repair when detected
    sb.sim.run_until(repair - 1)
    assert sb.switch_state("leaf", 2) == "failed"
    sb.sim.run_until(repair + 1)
    assert sb.switch_state("leaf", 2) == "ok"
