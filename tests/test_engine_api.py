"""The engine's API at its edges: the sim clock, the stream, error messages, injected factors, targets,
means over seeds and the parallel runner."""

from __future__ import annotations

import dataclasses

import pytest

from factorysim import Fault, Simulation
from factorysim.engine import FakeTime, SimClock, aggregate, run_seeds
from factorysim.engine.faults import parse_target
from factorysim.scenario import ScenarioError
from factorysim.topology import plan_clos

from .conftest import scenario
from .test_engine import NO_FAULTS
from .test_recovery import starter

HOUR, DAY = 3600.0, 86400.0


# ---------------------------------------------------------------- the sim clock and the stream


def test_the_clock_pauses_resumes_and_counts_single_steps():
    clock = SimClock()
    assert clock.toggle() is True and clock.paused is True
    assert clock.toggle() is False and clock.paused is False
    clock.pause()
    clock.resume()
    assert clock.paused is False
    clock.request_step()
    clock.request_step()
    assert [clock.take_step() for _ in range(3)] == [True, True, False]


def test_the_clock_steps_through_its_speeds_both_ways():
    clock = SimClock(speed=600.0)
    assert clock.slower() == 60.0 and clock.slower() == 10.0
    assert clock.faster() == 60.0 and clock.faster() == 600.0
    with pytest.raises(ValueError, match="speed must be positive"):
        SimClock(speed=0)


async def test_a_stream_with_an_end_stops_there():
    fake = FakeTime()
    clock = SimClock(speed=600.0, frame_interval=0.1, time_source=fake, sleep=fake.sleep)
    sim = Simulation(starter())
    frames = []
    async for frame in sim.stream(clock, until=600.0):
        frames.append(frame.t)
        if len(frames) > 20:
            break
    assert frames == pytest.approx([60.0 * k for k in range(11)])


async def test_a_stream_without_an_end_runs_forward():
    fake = FakeTime()
    clock = SimClock(speed=3600.0, frame_interval=0.5, time_source=fake, sleep=fake.sleep)
    sim = Simulation(starter())
    frames = []
    async for frame in sim.stream(clock):
        frames.append(frame.t)
        if len(frames) == 4:
            break
    assert frames == pytest.approx([0.0, 1800.0, 3600.0, 5400.0])


def test_writing_a_log_needs_a_recorded_run(tmp_path):
    sim = Simulation(starter())
    with pytest.raises(RuntimeError, match=r"^this simulation was not created with record=True$"):
        sim.write_log(str(tmp_path / "x.jsonl"))


# ---------------------------------------------------------------- injections and targets


def test_injected_factors_mean_what_they_say():
    s = scenario("cluster.nodes=16", 'cluster.fabric.topology="fat-tree"', "parallelism.tp=8", "parallelism.dp=auto",
                 "cluster.fabric.oversubscription=2", NO_FAULTS)  # fmt: skip
    sim = Simulation(s)
    sim.inject(Fault("spine1", "degrade", factor=0.2, duration=HOUR))
    sim.inject(Fault("n3.1", "flap", factor=0.3, duration=HOUR))  # down 30 % of the time
    sim.inject(Fault("n3.2", "degrade", factor=0.05, duration=HOUR))
    sim.inject(Fault("n3.3", "straggle", factor=0.7, duration=HOUR))
    assert sim.switch_health("spine", 1) == 0.2 and sim.switches_unhealthy("spine")
    assert not sim.switches_unhealthy("core") and not sim.switches_unhealthy("leaf")
    assert {(g.local, g.kind): g.factor for g in sim.gray_faults} == {
        (1, "flap"): pytest.approx(0.7), (2, "degrade"): 0.05, (3, "straggle"): 0.7
    }  # fmt: skip
    sim.run_until(HOUR)
    assert sim.gray_faults == [] and not sim.switches_unhealthy("spine")


def test_straggling_a_server_slows_each_of_its_chips_by_the_catalog_factor():
    sim = Simulation(starter(9, 1, "reliability.evict_stragglers=false"))
    sim.inject(Fault("n4", "straggle", duration=HOUR))
    assert sorted((g.local, g.kind, g.factor) for g in sim.gray_faults) == [(i, "straggle", 0.5) for i in range(8)]


def test_an_unknown_policy_is_refused_with_the_ones_there_are():
    sim = Simulation(starter())
    with pytest.raises(ValueError, match=r'^unknown policy "elastic"; allowed: "checkpoint-restart", "isolate-group"$'):
        sim.set_policy("elastic")


def test_bad_targets_name_what_the_cluster_has():
    s = scenario("cluster.nodes=264", "cluster.spare_nodes=8", "cluster.fabric.tiers=3", "parallelism.dp=auto",
                 "workload.global_batch=1024", 'cluster.fabric.topology="fat-tree"')  # fmt: skip
    plan = plan_clos(s.cluster)
    cores = plan.spines_per_pod * plan.cores_per_plane
    with pytest.raises(ScenarioError) as info:
        parse_target("core9999", plan)
    assert str(info.value).startswith("target: ")
    assert f"core0-core{cores - 1}, " in str(
        info.value
    ) and f"spine0-spine{plan.pods * plan.spines_per_pod - 1}," in str(info.value)
    assert parse_target("job", plan).kind == "job" and parse_target(f"core{cores - 1}", plan).index == cores - 1


def test_a_fault_kind_that_does_not_fit_its_target_says_what_it_fits():
    sim = Simulation(starter())
    with pytest.raises(ScenarioError) as info:
        sim.inject(Fault("job", "straggle"))
    assert 'fault.kind: "straggle" does not apply to a job; it applies to: server, chip' in str(info.value)


def test_scheduled_faults_keep_their_factor_and_duration():
    sim = Simulation(starter(9, 1, 'faults=[{at="1h", target="n2.3", kind="straggle", factor=0.3, duration="20m"}]',
                            "reliability.evict_stragglers=false"))  # fmt: skip
    sim.run_until(HOUR)
    assert [(g.server, g.local, g.factor, g.end, g.cause) for g in sim.gray_faults] == [
        (2, 3, 0.3, HOUR + 1200, "scheduled")
    ]


def test_samples_come_a_thousandth_of_the_run_apart_but_at_least_a_minute():
    assert Simulation(starter()).series.interval == 30 * DAY / 1000  # the starter runs 30 days
    assert Simulation(starter(9, 1, 'run.duration="1h"')).series.interval == 60.0


# ---------------------------------------------------------------- results


def test_the_time_series_samples_what_a_snapshot_shows():
    def slowed() -> Simulation:
        sim = Simulation(starter(), sample_interval=60.0)
        sim.inject(Fault("n3.1", "straggle", factor=0.5, duration=HOUR))
        return sim

    sim = slowed()
    sim.run_until(5 * 60)  # slowed, before the straggler window ends
    t = sim.series.column("t")[-1]
    assert t == 240.0
    same = slowed()
    same.run_until(t)
    snap = same.snapshot()
    row = {name: sim.series.column(name)[-1] for name in ("mfu", "tokens_per_s", "ettr", "stability", "spare")}
    assert row == pytest.approx({"mfu": snap.mfu, "tokens_per_s": snap.tokens_per_s, "ettr": snap.ettr,
                                 "stability": snap.stability, "spare": 8})  # fmt: skip
    assert 0 < snap.mfu < sim.base.mfu and snap.stability < 1


def test_the_mean_rate_is_tokens_over_time_from_the_first_second():
    sim = Simulation(starter())
    assert sim.summary().mean_tokens_per_s == 0.0
    sim.run_until(0.5)
    assert sim.summary().mean_tokens_per_s == pytest.approx(sim.T0)
    sim.run_until(DAY)
    mean = sim.summary().mean_tokens_per_s
    assert mean == pytest.approx(sim.progress / DAY) and mean < sim.T0


def test_a_summary_reports_its_time_to_target_in_json():
    T0 = Simulation(starter()).T0
    sim = Simulation(starter(9, 1, f"workload.target_tokens={T0 * 100!r}"))
    sim.run_until(HOUR)
    assert sim.summary().as_dict()["time_to_target_s"] == pytest.approx(100.0)


def test_means_over_seeds_carry_their_spreads():
    one = Simulation(starter()).summary()
    a = dataclasses.replace(one, seed=1, ettr=0.9, faults=2, interruptions={"x": 1, "total": 1},
                            spare_pool_empty_s=10.0, time_to_target_s=100.0)  # fmt: skip
    b = dataclasses.replace(one, seed=2, ettr=0.8, faults=4, interruptions={"y": 3, "total": 3},
                            spare_pool_empty_s=30.0, time_to_target_s=None)  # fmt: skip
    out = aggregate([a, b])
    assert out["seeds"] == [1, 2] and out["runs"] == 2 and out["policy"] == "checkpoint-restart"
    assert out["spread"]["interruptions"] == {"total": pytest.approx(2**0.5), "x": pytest.approx(0.5**0.5),
                                              "y": pytest.approx(4.5**0.5)}  # fmt: skip
    assert out["lost_chip_hours_by"] == pytest.approx(one.lost_chip_hours_by)
    assert out["ettr"] == pytest.approx(0.85) and out["spread"]["ettr"] == pytest.approx(0.0707107, rel=1e-5)
    assert out["faults"] == 3 and out["spread"]["faults"] == pytest.approx(2**0.5)
    assert out["spare_pool_empty_s"] == 20 and out["interruptions"] == {"total": 2, "x": 0.5, "y": 1.5}
    assert out["time_to_target_s"] is None  # not every run reached it
    single = aggregate([a])["spread"]
    assert single["ettr"] == 0.0 and single["interruptions"] == {"total": 0.0, "x": 0.0}
    with pytest.raises(ValueError):
        aggregate([])


def test_seeds_run_in_parallel_give_what_they_give_one_by_one():
    s = starter(9, 1, "reliability.rate_multiplier=50")
    s = s.model_copy(update={"reliability": s.reliability.model_copy(update={"rates": {}})})
    done = []
    seeds = list(range(1, 21))  # more seeds than 8 batches per worker
    parallel = run_seeds(s, seeds, 2 * DAY, workers=2, progress=done.append)
    serial = run_seeds(s, seeds, 2 * DAY, workers=1)
    assert [r.as_dict() for r in parallel] == [r.as_dict() for r in serial]
    assert [r.seed for r in parallel] == seeds and sum(done) == 20
    assert len({r.ettr for r in serial}) > 1  # the seeds differ
