"""Recovery, pinned: evictions that wait for a spare, a spare pool that runs dry, the rare recovery paths,
the accounts of time and chip-hours, and the event log's records as written."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from factorysim import Fault, Simulation
from factorysim.engine.faults import JOB_REFERENCE_CHIPS, FaultProcess, unit_counts
from factorysim.topology import plan_clos
from factorysim.topology.edits import cluster_graph

from .conftest import scenario
from .test_engine import NO_FAULTS

HOUR, DAY = 3600.0, 86400.0
TAU, DELTA, DETECT, RESTART, JOIN, WINDOW = 1800.0, 20.0, 180.0, 600.0, 300.0, 600.0  # the starter's settings
HOST_REPAIR = 24 * HOUR  # an injected server failure borrows host_unplanned_maintenance's repair time


def starter(nodes: int = 9, spares: int = 1, *overrides: str):
    """The starter job (8 servers of 8 H100, TP2 DP32: 4 replicas per server) with no natural faults."""
    return scenario(f"cluster.nodes={nodes}", f"cluster.spare_nodes={spares}", NO_FAULTS, *overrides)


def conserved(sim: Simulation, servers: int) -> bool:
    c = sim.chip_counts()
    return c["healthy"] + c["failed"] + c["in_repair"] + c["spare"] == c["total"] == 8 * servers


def records(sim: Simulation, since: float = 0.0) -> list[dict]:
    """The event log's lines after the header, parsed, without checkpoint commits."""
    assert sim.log is not None and sim.log.lines is not None
    out = [json.loads(line) for line in sim.log.lines[1:]]
    return [r for r in out if r["kind"] != "checkpoint" and r["t"] >= since]


# ---------------------------------------------------------------- evictions wait for a spare


def test_without_a_spare_a_straggler_keeps_running_slowed_under_checkpoint_restart():
    sim = Simulation(starter(8, 0), record=True)
    sim.run_until(HOUR)
    before = sim.tokens_per_s
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=2 * HOUR))
    slowed = sim.tokens_per_s
    assert slowed < 0.6 * before
    sim.run_until(HOUR + WINDOW + 1)  # past the straggler window: no spare, so no eviction
    assert sim.job_state == "running" and sim.tokens_per_s == slowed
    assert sim.summary().interruptions == {"total": 0}
    sim.run_until(3 * HOUR)  # the gray fault ends
    assert sim.tokens_per_s == before and sim.lost_tokens == 0
    assert records(sim, HOUR + WINDOW) == [
        {"t": HOUR + WINDOW, "kind": "evict_wait", "target": "n4", "cause": "injected", "effect": {"why": "no spare"}},
        {"t": 3 * HOUR, "kind": "gray_end", "target": "n4.1", "cause": "injected", "effect": {"kind": "straggle"}},
    ]


def test_a_waiting_straggler_is_evicted_when_a_spare_frees_up_and_the_save_is_paid_for():
    sim = Simulation(starter(9, 1), record=True)
    sim.inject(Fault("n2", "fail"))  # its spare takes the slot: the pool is empty for 24 h
    sim.run_until(HOUR)
    before = sim.tokens_per_s
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=10 * HOUR))
    sim.run_until(HOUR + WINDOW + 1)
    assert sim.job_state == "running" and sim.tokens_per_s < 0.6 * before
    t = 2 * HOUR
    sim.run_until(t)
    sim.inject(Fault("n2", "repair"))  # n2 back in the pool: the straggler goes at once
    assert sim.job_state == "restarting" and sim.committed == sim.progress
    assert sim.summary().interruptions == {"evict:injected": 1, "injected": 1, "total": 2}
    sim.run_until(t + DELTA + RESTART - 1)  # the save blocks for the checkpoint cost, then the restart
    assert sim.tokens_per_s == 0
    sim.run_until(t + DELTA + RESTART)
    assert sim.tokens_per_s == before and sim.slot_server[4] == 2
    assert [(r["kind"], r["target"]) for r in records(sim, t)] == [
        ("inject", "n2"), ("repaired", "n2"), ("evict", "n4"), ("spare_in", "n2"), ("stop", "job"),
        ("restarted", "job"),
    ]  # fmt: skip
    assert records(sim, t)[2] == {"t": t, "kind": "evict", "target": "n4", "cause": "injected",
                                  "effect": {"server": "in_repair"}}  # fmt: skip
    assert records(sim, t)[4]["cause"] == "evict:injected"


def test_isolate_group_trains_narrower_rather_than_slowed_when_no_spare_is_left():
    sim = Simulation(starter(9, 1, "reliability.policy=isolate-group"))
    sim.inject(Fault("n2", "fail"))
    sim.run_until(HOUR)  # detected, isolated, the spare n8 joined: the pool is empty
    before = sim.tokens_per_s
    assert sim.replicas_up == 32 and sim.chip_counts()["spare"] == 0
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=10 * HOUR))
    sim.run_until(HOUR + WINDOW + 1)  # n4's group drops out with no spare to join it
    assert sim.replicas_up == 28 and sim.isolations == 2 and sim.snapshot().waiting_for_spares
    assert sim.tokens_per_s == pytest.approx(before * 28 / 32, rel=0.02)
    sim.inject(Fault("n2", "repair"))  # a spare: n2 joins n4's group
    sim.run_until(sim.now + JOIN)
    assert sim.replicas_up == 32 and sim.tokens_per_s == before and sim.slot_server[4] == 2
    assert sim.lost_tokens == 0 and sim.summary().interruptions == {"total": 0}


def test_isolate_group_keeps_a_straggler_when_its_group_is_the_whole_job():
    sim = Simulation(starter(8, 0, "reliability.policy=isolate-group", "cluster.node_group_size=8"), record=True)
    sim.run_until(HOUR)
    before = sim.tokens_per_s
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=2 * HOUR))
    sim.run_until(HOUR + WINDOW + 1)
    assert sim.replicas_up == 32 and 0 < sim.tokens_per_s < 0.6 * before
    assert [r["kind"] for r in records(sim, HOUR + WINDOW)] == ["evict_wait"]


def test_a_straggler_found_while_the_job_is_down_is_swapped_at_the_restart():
    sim = Simulation(starter(10, 2), record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=10 * HOUR))
    crash = HOUR + WINDOW - 300
    sim.run_until(crash)
    sim.inject(Fault("job", "crash"))  # down from here until the restart
    sim.run_until(HOUR + WINDOW + 1)
    assert records(sim, HOUR + WINDOW)[0]["effect"] == {"why": "job restarting"}
    sim.run_until(crash + DETECT + RESTART)  # the restart takes n4 out and the spare in
    assert sim.job_state == "running" and sim.slot_server[4] == 8 and sim.tokens_per_s == sim.T0
    assert sim.summary().interruptions == {"injected": 1, "total": 1}


def test_natural_gray_faults_land_on_a_chip_and_slow_the_job():
    s = starter(9, 1)
    rates = {**s.reliability.rates, "gpu_straggler": 5e-3, "fabric_link_flapping": 5e-3,
             "scale_up_link_degrade": 5e-3}  # fmt: skip
    rel = s.reliability.model_copy(update={"rates": rates, "evict_stragglers": False})
    sim = Simulation(s.model_copy(update={"reliability": rel}), record=True)
    base = sim.base.breakdown
    slowed = set()
    while len(slowed) < 3 and sim.now < 10 * DAY and sim.next_event_time is not None:
        sim.step_to_next_event()
        kinds = {g.kind for g in sim.gray_faults if sim.server_slot[g.server] >= 0}
        step = sim.job.estimate
        if sim.snapshot().job_state != "running" or len(kinds) != 1:
            continue
        if kinds == {"straggle"} and step.breakdown.straggler_s > 0 and sim.tokens_per_s < sim.T0:
            slowed.add("straggle")  # the whole job waits for the slow chip
        if kinds == {"flap"} and sim.tokens_per_s == pytest.approx(0.7 * step.tokens_per_s):
            slowed.add("flap")  # the link is down 30 % of the time
        if kinds == {"degrade_up"} and step.breakdown.tp_s > base.tp_s:
            slowed.add("degrade_up")  # tensor-parallel traffic crosses the slower scale-up link
    assert slowed == {"straggle", "flap", "degrade_up"}
    grays = [r for r in records(sim) if r["kind"] == "gray"]
    assert {r["effect"]["kind"] for r in grays} == {"straggle", "flap", "degrade_up"}
    for r in grays:
        server, local = r["target"][1:].split(".")
        assert int(server) < 9 and int(local) < 8


def test_a_gray_fault_no_longer_than_the_window_is_never_up_for_eviction():
    sim = Simulation(starter(), sample_interval=1e9)
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=WINDOW))
    sim.run_until(WINDOW + 1)
    assert len(sim.series) == 4  # the start, its interval sample, the injection, the fault's end: no eviction


# ---------------------------------------------------------------- the spare pool runs dry


def test_waiting_for_a_repair_is_reported_as_time_and_chip_hours():
    sim = Simulation(starter(8, 0))
    sim.run_until(HOUR)
    sim.inject(Fault("n1.2", "fail"))  # a chip: 72 h until its server is back
    sim.run_until(HOUR + DETECT + HOUR)
    snap = sim.snapshot()
    assert snap.waiting_for_spares and snap.spares == 0 and snap.job_state == "stopped"
    sim.run_until(5 * DAY)
    s = sim.summary()
    assert s.waiting_for_spares_s == 72 * HOUR
    assert s.spare_pool_empty_s == 5 * DAY  # no spare at any time
    assert s.lost_chip_hours_by["waiting_for_spares"] == pytest.approx(64 * 72, rel=1e-12)
    assert s.lost_chip_hours_by["downtime"] == pytest.approx(64 * (DETECT + RESTART) / HOUR, rel=1e-9)
    assert sum(s.lost_chip_hours_by.values()) == pytest.approx(s.lost_chip_hours, rel=1e-9)
    assert not sim.snapshot().waiting_for_spares


def test_an_empty_pool_is_timed_even_when_the_job_does_not_wait():
    sim = Simulation(starter(9, 1))
    assert sim.snapshot().spares == 1
    sim.run_until(HOUR)
    sim.inject(Fault("n3", "fail"))  # the spare goes in at detection; n3 is back after 24 h
    sim.run_until(3 * DAY)
    s = sim.summary()
    assert s.spare_pool_empty_s == pytest.approx(HOST_REPAIR, rel=1e-12)
    assert s.waiting_for_spares_s == 0 and s.lost_chip_hours_by["waiting_for_spares"] == 0


# ---------------------------------------------------------------- rare recovery paths


def test_a_joining_spare_that_fails_is_replaced_by_the_next_one():
    sim = Simulation(starter(10, 2, "reliability.policy=isolate-group"), record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n2", "fail"))
    sim.run_until(HOUR + DETECT + 120)  # n8 is on its way into slot 2
    sim.inject(Fault("n8", "fail"))
    assert sim.replicas_up == 28 and conserved(sim, 10)
    assert sim.chip_counts() == {"healthy": 64, "failed": 0, "in_repair": 16, "spare": 0, "total": 80}
    assert [r for r in records(sim, sim.now) if r["kind"] == "fault"] == [
        {"t": sim.now, "kind": "fault", "target": "n8", "cause": "injected",
         "effect": {"server": "in_repair", "role": "joining"}},
    ]  # fmt: skip
    sim.run_until(HOUR + DETECT + JOIN)  # n8's old join lands on nothing
    assert sim.replicas_up == 28
    sim.run_until(HOUR + DETECT + 120 + JOIN)  # n9 joins
    assert sim.replicas_up == 32 and sim.slot_server[2] == 9 and conserved(sim, 10)
    sim.inject(Fault("n8", "repair"))  # back in the pool, and the next spare to join
    sim.inject(Fault("n5"))
    sim.run_until(sim.now + DETECT + JOIN)
    assert sim.slot_server[5] == 8 and sim.replicas_up == 32


def test_an_idle_server_that_fails_leaves_its_group_waiting_for_two_spares():
    s = starter(10, 2, "reliability.policy=isolate-group", "cluster.node_group_size=2")
    sim = Simulation(s, record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n2", "fail"))
    sim.run_until(HOUR + DETECT + 20)  # group 1 (slots 2 and 3) is out, n3 idle, n8 joining slot 2
    assert sim.replicas_up == 24
    sim.inject(Fault("n3", "fail"))
    assert [r["effect"] for r in records(sim, sim.now) if r["kind"] == "fault"] == [
        {"server": "in_repair", "role": "idle"}
    ]
    assert sim.replicas_up == 24 and conserved(sim, 10)
    sim.run_until(HOUR + DETECT + JOIN)  # n8 joined, slot 3 still empty: the group stays out
    assert sim.replicas_up == 24
    sim.run_until(HOUR + DETECT + 20 + JOIN)  # n9 joined slot 3: the group is back
    assert sim.replicas_up == 32 and list(sim.slot_server[2:4]) == [8, 9] and conserved(sim, 10)


def test_a_group_with_a_slot_still_empty_does_not_rejoin():
    s = starter(9, 1, "reliability.policy=isolate-group", "cluster.node_group_size=2")
    sim = Simulation(s)
    sim.run_until(HOUR)
    sim.inject(Fault("n2"))
    sim.inject(Fault("n3"))  # both servers of group 1; one spare for two slots
    sim.run_until(HOUR + DETECT + JOIN)  # n8 joined slot 2, slot 3 waits
    assert list(sim.slot_server[2:4]) == [8, -1] and sim.replicas_up == 24
    assert sim.snapshot().job_state == "running (reduced)" and sim.snapshot().waiting_for_spares
    assert sim.chip_counts() == {"healthy": 56, "failed": 0, "in_repair": 16, "spare": 0, "total": 72}


def test_a_job_whose_only_group_is_out_trains_nothing():
    sim = Simulation(starter(8, 0, "reliability.policy=isolate-group", "cluster.node_group_size=8"))
    sim.run_until(HOUR)
    sim.inject(Fault("n2"))
    sim.run_until(HOUR + DETECT + 1)
    assert sim.replicas_up == 0 and sim.tokens_per_s == 0
    tokens = sim.progress
    sim.run_until(2 * HOUR)
    assert sim.progress == tokens


def test_a_restart_while_a_group_is_isolated_keeps_that_group_out():
    sim = Simulation(starter(8, 0, "reliability.policy=isolate-group"))
    sim.run_until(HOUR)
    full = sim.tokens_per_s
    sim.inject(Fault("n2", "fail"))  # no spare: group 2 stays out for the 24 h repair
    sim.run_until(2 * HOUR)
    sim.inject(Fault("job", "crash"))  # a job-level crash: the whole job restarts from its checkpoint
    sim.run_until(2 * HOUR + DETECT + RESTART)
    snap = sim.snapshot()
    assert snap.job_state == "running (reduced)" and snap.replicas_up == 28
    assert sim.tokens_per_s == pytest.approx(full * 28 / 32, rel=0.02)
    assert sim.chip_counts() == {"healthy": 56, "failed": 0, "in_repair": 8, "spare": 0, "total": 64}
    sim.run_until(HOUR + DETECT + HOST_REPAIR + JOIN)  # n2 is back and joins
    assert sim.replicas_up == 32 and sim.tokens_per_s == full


def test_a_crash_while_the_job_hangs_is_not_kept_inside_a_group():
    sim = Simulation(starter(9, 1, "reliability.policy=isolate-group", "reliability.isolate_crashes=true"), record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n2"))  # hangs the job until it is detected
    sim.run_until(HOUR + 10)
    sim.inject(Fault("job", "crash"))
    assert records(sim, HOUR + 10)[1] == {"t": HOUR + 10, "kind": "fault", "target": "job", "cause": "injected",
                                          "effect": {"job": "already down"}}  # fmt: skip
    assert sim.faults == 2 and sim.summary().interruptions == {"total": 0}


def test_rolling_maintenance_drains_one_group_at_a_time_and_never_stops_the_job():
    s = starter(9, 1, "reliability.policy=isolate-group", "reliability.rolling_maintenance=true")
    rates = {**s.reliability.rates, "planned_maintenance": 200.0}  # per 16K-GPU job-hour: a few a day here
    s = s.model_copy(update={"reliability": s.reliability.model_copy(update={"rates": rates})})
    sim = Simulation(s, record=True)
    sim.run_until(5 * DAY)
    drained = [r for r in records(sim) if r["kind"] == "maintenance"]
    assert len(drained) >= 5 and all(r["effect"]["back_at"] == r["t"] + RESTART for r in drained)
    assert sim.summary().interruptions == {"total": 0} and sim.lost_tokens == 0
    assert sim.isolations == len(drained) <= sim.faults  # a drain that finds its group already out does nothing


def test_a_failed_leaf_writes_these_records():
    s = scenario("cluster.nodes=16", "cluster.spare_nodes=8", 'cluster.fabric.topology="fat-tree"', NO_FAULTS,
                 "workload.global_batch=256")  # fmt: skip
    sim = Simulation(s, record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("leaf1", "fail"))  # servers 4-7 of the job
    got = records(sim, HOUR)
    assert got[:2] == [
        {"t": HOUR, "kind": "inject", "target": "leaf1", "cause": "injected", "effect": {"kind": "fail"}},
        {"t": HOUR, "kind": "fault", "target": "leaf1", "cause": "injected", "effect": {"servers": 4}},
    ]
    assert [(r["kind"], r["target"]) for r in got[2:]] == [("fault", f"n{i}") for i in range(4, 8)]
    assert sim.faults == 1 and sim.summary().interruptions == {"injected": 1, "total": 1}


def test_repairing_a_spine_restores_the_fabric_at_once():
    s = scenario("cluster.nodes=16", 'cluster.fabric.topology="fat-tree"', "parallelism.tp=8", "parallelism.dp=auto",
                 "cluster.fabric.oversubscription=2", NO_FAULTS)  # fmt: skip
    sim = Simulation(s, record=True)
    before = sim.tokens_per_s
    sim.inject(Fault("spine0", "fail"))
    assert sim.tokens_per_s < before and sim.switch_health("spine", 0) == 0.0
    sim.run_until(HOUR)
    sim.inject(Fault("spine0", "repair"))
    assert sim.tokens_per_s == before and sim.switch_health("spine", 0) is None
    assert records(sim, HOUR)[-1] == {"t": HOUR, "kind": "repaired", "target": "spine0"}
    sim.run_until(HOUR + 8 * HOUR)  # the failure's own repair finds nothing left to do
    assert records(sim, HOUR + 1) == []


def test_stepping_to_the_next_event_stops_at_the_limit():
    sim = Simulation(starter())
    sim.inject(Fault("n3"), at=2 * HOUR)
    assert sim.next_event_time == 2 * HOUR
    assert sim.step_to_next_event(limit=HOUR) == HOUR and sim.snapshot().job_state == "running"
    assert sim.step_to_next_event() == 2 * HOUR and sim.snapshot().job_state == "hung"
    assert sim.step_to_next_event(limit=2 * HOUR + 10) == 2 * HOUR + 10 and sim.snapshot().job_state == "hung"
    assert sim.step_to_next_event() == 2 * HOUR + DETECT and sim.job_state == "restarting"


# ---------------------------------------------------------------- accounts: time to target, lost chip-hours


@pytest.mark.parametrize(
    "trained,at",
    [
        (TAU, TAU),  # the end of the first window, just before the first save
        (TAU + 200, TAU + DELTA + 200),  # inside the second window
        (2 * TAU, 2 * (TAU + DELTA) - DELTA),  # the end of the second window
    ],
)
def test_a_token_target_is_reached_at_the_closed_form_time(trained, at):
    T0 = Simulation(starter()).T0
    sim = Simulation(starter(9, 1, f"workload.target_tokens={T0 * trained!r}"))
    sim.run_until(DAY)
    assert sim.summary().time_to_target_s == pytest.approx(at, rel=1e-12)


def test_a_token_target_after_a_rollback_counts_only_work_that_was_kept():
    sim = Simulation(starter())
    T0 = sim.T0
    sim.watch(T0 * 2700)
    sim.run_until(2700)  # trained 2,680 s: 20 s short
    sim.inject(Fault("n3"))  # back to the checkpoint of 1,800 s; the job restarts at 2,700 + 180 + 600
    sim.run_until(DAY)
    assert sim.target_time_for(T0 * 2700) == pytest.approx(2700 + DETECT + RESTART + 900, rel=1e-12)
    assert sim.summary().time_to_target_s is None  # the workload itself has no target


@pytest.mark.parametrize("fault_at,lost", [(2700.0, 880.0), (TAU + 10, TAU), (TAU + DELTA, 0.0)])
def test_lost_chip_hours_split_exactly_and_sum_to_the_total(fault_at, lost):
    """A failure mid-window loses the window; one during a save loses the save; one right after it, nothing."""
    sim = Simulation(starter())
    sim.run_until(fault_at)
    sim.inject(Fault("n3"))
    sim.run_until(DAY)
    s = sim.summary()
    restart = fault_at + DETECT + RESTART
    cycles, rest = divmod(DAY - restart, TAU + DELTA)
    pauses = min(max(fault_at - TAU, 0.0), DELTA) + cycles * DELTA  # a save cut short counts as far as it got
    trained_first = min(fault_at, TAU) + max(0.0, fault_at - TAU - DELTA)
    trained = trained_first + cycles * TAU + min(rest, TAU)
    assert s.lost_chip_hours_by == pytest.approx(
        {"downtime": 64 * (DETECT + RESTART) / HOUR, "waiting_for_spares": 0.0, "checkpoints": 64 * pauses / HOUR,
         "slowdown_and_width": 0.0, "rolled_back": 64 * lost / HOUR}, rel=1e-9, abs=1e-9
    )  # fmt: skip
    assert s.lost_chip_hours == pytest.approx(64 * (DAY - trained + lost) / HOUR, rel=1e-9)
    assert sum(s.lost_chip_hours_by.values()) == pytest.approx(s.lost_chip_hours, rel=1e-9)
    assert s.ettr == pytest.approx((trained - lost) / DAY, rel=1e-12)
    assert s.stability == pytest.approx((trained - lost) / DAY, rel=1e-9)


# ---------------------------------------------------------------- unit counts per fault class


@pytest.mark.parametrize(
    "overrides",
    [
        ("cluster.nodes=40", "cluster.spare_nodes=8", 'cluster.fabric.topology="fat-tree"', "parallelism.dp=auto",
         "workload.global_batch=512"),
        ("cluster.nodes=264", "cluster.spare_nodes=8", "cluster.fabric.tiers=3", "parallelism.dp=auto",
         "workload.global_batch=1024", 'cluster.fabric.topology="fat-tree"'),
    ],
    ids=["2-tier", "3-tier"],
)  # fmt: skip
def test_each_fault_class_is_drawn_over_the_units_the_cluster_has(overrides):
    s = scenario(*overrides)
    plan = plan_clos(s.cluster)
    kinds = Counter(a["kind"] for _, a in cluster_graph(s.cluster).nodes(data=True))
    counts = unit_counts(s, plan)
    assert counts == {"gpu": kinds["chip"], "gpu_port": kinds["chip"], "host": kinds["server"],
                      "leaf": kinds["leaf"], "spine": kinds["spine"], "core": kinds.get("core", 0),
                      "job": s.cluster.job_chips / JOB_REFERENCE_CHIPS}  # fmt: skip
    assert (counts["core"] > 0) == (plan.tiers == 3)
    process = FaultProcess(s, plan, 1)
    for fc, population in zip(process.classes, process.population, strict=True):
        assert population == counts[fc.unit], fc.name


@pytest.mark.parametrize("kind", ["spine", "core"])
def test_spine_and_core_switches_fail_on_a_three_tier_cluster(kind):
    s = scenario("cluster.nodes=264", "cluster.spare_nodes=8", "cluster.fabric.tiers=3", "parallelism.dp=auto",
                 "workload.global_batch=1024", 'cluster.fabric.topology="fat-tree"', NO_FAULTS)  # fmt: skip
    rates = {**s.reliability.rates, f"{kind}_switch": 2e-3}
    s = s.model_copy(update={"reliability": s.reliability.model_copy(update={"rates": rates})})
    units = unit_counts(s, plan_clos(s.cluster))[kind]
    sim = Simulation(s, record=True)
    sim.run_until(20 * DAY)
    hit = [r["target"] for r in records(sim) if r["kind"] == "fault"]
    assert len(hit) > 0.5 * 2e-3 * units * 20 * 24  # about half the expected count at least
    assert all(t.startswith(kind) and int(t[len(kind) :]) < units for t in hit)
    assert sim.summary().interruptions == {"total": 0}  # a switch above the leaves slows the job, no more


# ---------------------------------------------------------------- the event log, record by record


def test_checkpoint_restart_writes_these_records():
    sim = Simulation(starter(), record=True)
    T0 = sim.T0
    sim.run_until(2700)
    sim.inject(Fault("n3"))
    sim.set_policy("checkpoint-restart")  # no change: no record
    sim.run_until(2 * DAY)
    lines = [json.loads(line) for line in sim.log.lines]
    assert lines[1] == {"t": TAU + DELTA, "kind": "checkpoint", "target": "job", "effect": {"tokens": T0 * TAU}}
    got = records(sim)
    assert got[1]["effect"].pop("lost_tokens") == pytest.approx(T0 * 880, rel=1e-12)
    assert got == [
        {"t": 2700, "kind": "inject", "target": "n3", "cause": "injected", "effect": {"kind": "fail"}},
        {"t": 2700, "kind": "fault", "target": "n3", "cause": "injected", "effect": {"server": "failed", "job": "hung"}},
        {"t": 2700 + DETECT, "kind": "detect", "target": "n3", "cause": "injected", "effect": {"job": "stopped"}},
        {"t": 2700 + DETECT, "kind": "spare_in", "target": "n8", "effect": {"slot": 3, "spares": 0}},
        {"t": 2700 + DETECT, "kind": "stop", "target": "job", "cause": "restart", "effect": {"job": "restarting"}},
        {"t": 2700 + DETECT + RESTART, "kind": "restarted", "target": "job", "effect": {"replicas_up": 32, "replicas": 32}},
        {"t": 2700 + DETECT + HOST_REPAIR, "kind": "repaired", "target": "n3", "effect": {"spares": 1}},
    ]  # fmt: skip


def test_isolate_group_writes_these_records():
    sim = Simulation(starter(), record=True)
    sim.run_until(HOUR)
    sim.set_policy("isolate-group")
    sim.inject(Fault("n2"))
    sim.run_until(2 * DAY)
    assert records(sim) == [
        {"t": HOUR, "kind": "policy", "target": "job", "effect": {"policy": "isolate-group"}},
        {"t": HOUR, "kind": "inject", "target": "n2", "cause": "injected", "effect": {"kind": "fail"}},
        {"t": HOUR, "kind": "fault", "target": "n2", "cause": "injected",
         "effect": {"server": "failed", "job": "hung", "lost_tokens": 0.0}},
        {"t": HOUR + DETECT, "kind": "isolate", "target": "group2", "cause": "injected",
         "effect": {"replicas_up": 28, "replicas": 32}},
        {"t": HOUR + DETECT, "kind": "spare_join", "target": "n8", "effect": {"slot": 2, "spares": 0}},
        {"t": HOUR + DETECT + JOIN, "kind": "joined", "target": "n8", "effect": {"slot": 2}},
        {"t": HOUR + DETECT + JOIN, "kind": "rejoin", "target": "group2", "effect": {"replicas_up": 32, "replicas": 32}},
        {"t": HOUR + DETECT + HOST_REPAIR, "kind": "repaired", "target": "n2", "effect": {"spares": 1}},
    ]  # fmt: skip


def test_a_job_crash_under_checkpoint_restart_writes_these_records():
    sim = Simulation(starter(), record=True)
    T0 = sim.T0
    sim.run_until(2700)
    sim.inject(Fault("job", "crash"))
    sim.run_until(2 * HOUR)
    got = records(sim)
    assert got[1]["effect"].pop("lost_tokens") == pytest.approx(T0 * 880, rel=1e-12)
    assert got == [
        {"t": 2700, "kind": "inject", "target": "job", "cause": "injected", "effect": {"kind": "crash"}},
        {"t": 2700, "kind": "fault", "target": "job", "cause": "injected", "effect": {"job": "hung"}},
        {"t": 2700 + DETECT, "kind": "detect", "target": "job", "cause": "injected", "effect": {"job": "stopped"}},
        {"t": 2700 + DETECT, "kind": "stop", "target": "job", "cause": "restart", "effect": {"job": "restarting"}},
        {"t": 2700 + DETECT + RESTART, "kind": "restarted", "target": "job", "effect": {"replicas_up": 32, "replicas": 32}},
    ]  # fmt: skip
    assert sim.faults == 1 and sim.summary().interruptions == {"injected": 1, "total": 1}


def test_a_failed_spare_writes_this_record_and_leaves_the_job_alone():
    sim = Simulation(starter(), record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n8"))
    assert records(sim, HOUR)[1] == {"t": HOUR, "kind": "fault", "target": "n8", "cause": "injected",
                                     "effect": {"server": "in_repair", "role": "spare"}}  # fmt: skip
    assert sim.job_state == "running" and sim.chip_counts()["spare"] == 0 and sim.summary().interruptions["total"] == 0


def test_a_server_failing_during_a_restart_stops_it_until_detected():
    sim = Simulation(starter(10, 2))
    sim.run_until(HOUR)
    sim.inject(Fault("n3"))
    restart_done = HOUR + DETECT + RESTART
    sim.run_until(restart_done - 60)
    assert sim.job_state == "restarting"
    sim.inject(Fault("n4"))  # hangs the restart: it cannot finish
    sim.run_until(restart_done + 1)
    assert sim.job_state == "stopped" and sim.snapshot().job_state == "hung"
    sim.run_until(restart_done - 60 + DETECT + RESTART)  # detected, the second spare in, restarted
    assert sim.job_state == "running" and sim.summary().interruptions == {"injected": 2, "total": 2}


def test_a_crash_during_a_restart_starts_the_restart_over():
    sim = Simulation(starter())
    sim.inject(Fault("job", "crash"))
    sim.run_until(300)  # detected at 180: restarting until 780
    sim.inject(Fault("job", "crash"))  # detected at 480: restarting until 1,080
    sim.run_until(1080 - 1)
    assert sim.job_state == "restarting" and sim.tokens_per_s == 0
    sim.run_until(1080)
    assert sim.job_state == "running" and sim.summary().interruptions == {"injected": 2, "total": 2}


def test_the_first_server_leaves_its_slot_like_any_other():
    sim = Simulation(starter())
    sim.inject(Fault("n0"))
    sim.run_until(DETECT)
    assert sim.server_slot[0] == -1 and sim.slot_server[0] == 8 and sim.server_slot[8] == 0


def test_a_crash_kept_inside_a_node_group_writes_these_records():
    sim = Simulation(starter(9, 1, "reliability.policy=isolate-group", "reliability.isolate_crashes=true"), record=True)
    sim.run_until(HOUR)
    group = int(HOUR * 1000.003) % 8  # the group a job-level fault lands on is a function of sim time
    sim.inject(Fault("job", "crash"))
    sim.run_until(2 * HOUR)
    assert records(sim) == [
        {"t": HOUR, "kind": "inject", "target": "job", "cause": "injected", "effect": {"kind": "crash"}},
        {"t": HOUR, "kind": "fault", "target": f"group{group}", "cause": "injected",
         "effect": {"job": "hung", "scope": "group"}},
        {"t": HOUR + DETECT, "kind": "isolate", "target": f"group{group}", "cause": "injected",
         "effect": {"replicas_up": 28, "replicas": 32}},
        {"t": HOUR + DETECT, "kind": "restart", "target": f"group{group}", "cause": "injected",
         "effect": {"back_at": HOUR + DETECT + RESTART}},
        {"t": HOUR + DETECT + RESTART, "kind": "rejoin", "target": f"group{group}",
         "effect": {"replicas_up": 32, "replicas": 32}},
    ]  # fmt: skip
    assert sim.lost_tokens == 0 and sim.summary().interruptions == {"total": 0}


async def test_the_sandbox_dashboard_says_when_the_spare_pool_is_empty():
    from factorysim.engine import SimClock
    from factorysim.tui import FactorySimApp

    from .test_tui import screen_text

    app = FactorySimApp(starter(9, 1), clock=SimClock(speed=3600.0, paused=True))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        assert re.search(r"spares +8\b", screen_text(app))
        app.sandbox.inject(Fault("n3"))
        app.sandbox.sim.run_until(HOUR)  # detected: the only spare went in
        app.show_frame(app.sandbox.sim.snapshot())
        await pilot.pause(0.1)
        assert re.search(r"spares +empty\b", screen_text(app))
