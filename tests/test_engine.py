"""The time engine: mechanics of each policy, determinism, and the figures the world knows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorysim import Fault, Simulation, load_scenario
from factorysim.engine import FakeTime, SimClock, fault_classes, run_seeds
from factorysim.engine.faults import JOB_REFERENCE_CHIPS
from factorysim.sandbox import Sandbox
from factorysim.scenario import ScenarioError
from factorysim.topology.index import FabricIndex

from .conftest import SCENARIOS, scenario

NO_FAULTS = "reliability.rates={" + ", ".join(f"{c.name}=0" for c in fault_classes(scenario())) + "}"
HOUR, DAY = 3600.0, 86400.0


def quiet(*overrides: str):
    """The starter cluster with one spare server and no natural faults."""
    return scenario("cluster.nodes=9", "cluster.spare_nodes=1", NO_FAULTS, *overrides)


# ---------------------------------------------------------------- mechanics


def test_a_fault_free_run_loses_only_checkpoint_pauses():
    sim = Simulation(quiet())
    sim.run_until(DAY)
    tau, delta = 1800.0, 20.0
    assert sim.summary().interruptions == {"total": 0}
    assert sim.stability == pytest.approx(sim.work.trained(DAY) / DAY)
    assert sim.ettr == pytest.approx(1 - (DAY // (tau + delta)) * delta / DAY, rel=1e-6)


def test_checkpoint_restart_loses_the_work_since_the_last_checkpoint():
    sim = Simulation(quiet())
    T = sim.T0
    sim.run_until(2700.0)  # 45 min: one checkpoint committed at 30 min (+20 s save)
    assert sim.committed == pytest.approx(T * 1800)
    sim.inject(Fault("n3", "fail"))
    assert sim.lost_tokens == pytest.approx(T * (2700 - 1820))
    assert sim.progress == pytest.approx(T * 1800)
    assert sim.snapshot().job_state == "hung"
    sim.run_until(2700 + 180 + 1)  # detected: the spare goes in and the job restarts
    assert sim.job_state == "restarting" and sim.spares_used == 1
    sim.run_until(2700 + 180 + 600 + 1)
    assert sim.job_state == "running"
    assert sim.summary().interruptions == {"injected": 1, "total": 1}


def test_without_spares_the_job_waits_for_the_repair():
    sim = Simulation(scenario(NO_FAULTS))
    sim.run_until(HOUR)
    sim.inject(Fault("n1.2", "fail"))  # a chip: its server goes, back after faulty_gpu's 72 h
    sim.run_until(10 * HOUR)
    assert sim.job_state == "stopped" and sim.tokens_per_s == 0
    sim.run_until(HOUR + 180 + 72 * HOUR + 600 + 1)
    assert sim.job_state == "running" and sim.tokens_per_s > 0


def test_isolate_group_drops_only_the_failed_group_and_a_spare_joins():
    sim = Simulation(quiet("reliability.policy=isolate-group"))
    sim.run_until(HOUR)
    before = sim.tokens_per_s
    sim.inject(Fault("n2", "fail"))
    assert sim.snapshot().job_state == "hung" and sim.lost_tokens == 0
    sim.run_until(HOUR + 181)
    snap = sim.snapshot()
    assert snap.replicas_up == 28 and snap.replicas == 32  # n2 holds 4 of the 32 TP2 replicas
    assert sim.tokens_per_s == pytest.approx(before * 28 / 32, rel=0.02)
    sim.run_until(HOUR + 180 + 300 + 1)  # the hot spare joins
    assert sim.snapshot().replicas_up == 32
    assert sim.tokens_per_s == pytest.approx(before)
    assert sim.summary().interruptions == {"total": 0} and sim.isolations == 1 and sim.lost_tokens == 0


def test_a_straggler_slows_everyone_until_it_is_evicted():
    sim = Simulation(quiet())
    sim.run_until(HOUR)
    before = sim.tokens_per_s
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=2 * HOUR))
    assert sim.tokens_per_s < before * 0.6
    sim.run_until(HOUR + 600 + 1)  # evicted after the 10 min window: checkpoint, swap, restart
    assert sim.summary().interruptions["evict:injected"] == 1
    assert sim.committed == sim.progress  # the eviction saved everything
    sim.run_until(HOUR + 600 + 20 + 600 - 1)  # the save's 20 s, then the 10 min restart
    assert sim.tokens_per_s == 0
    sim.run_until(HOUR + 600 + 20 + 600)
    assert sim.tokens_per_s == pytest.approx(before)
    assert sim.lost_tokens == 0


def test_a_degraded_link_slows_the_step_through_the_fabric_and_recovers():
    sim = Simulation(quiet("reliability.evict_stragglers=false"))
    sim.run_until(HOUR)
    before = sim.tokens_per_s
    sim.inject(Fault("n5.0", "degrade", factor=0.05, duration=HOUR))
    assert sim.job.estimate.breakdown.dp_s > sim.base.breakdown.dp_s
    assert sim.tokens_per_s < before
    sim.run_until(2 * HOUR + 1)
    assert sim.tokens_per_s == pytest.approx(before)


def test_a_leaf_switch_takes_its_servers_fabric_ports_down():
    s = scenario("cluster.nodes=16", "cluster.spare_nodes=8", 'cluster.fabric.topology="fat-tree"', NO_FAULTS,
                 "workload.global_batch=256")  # fmt: skip
    sim = Simulation(s)
    sim.inject(Fault("leaf0", "fail"))
    assert sim.chip_counts()["failed"] == 4 * 8  # a 32-port leaf holds four 8-GPU servers in a fat-tree


def test_a_spine_failure_is_a_slowdown_not_an_interruption():
    s = scenario("cluster.nodes=16", 'cluster.fabric.topology="fat-tree"', "parallelism.tp=8", "parallelism.dp=auto",
                 "cluster.fabric.oversubscription=2", NO_FAULTS)  # fmt: skip
    sim = Simulation(s)
    before = sim.tokens_per_s
    sim.inject(Fault("spine0", "fail"))
    assert 0 < sim.tokens_per_s < before and sim.summary().interruptions == {"total": 0}


def test_a_failed_leaf_is_down_until_the_last_of_its_servers_is_back():
    s = scenario("cluster.nodes=16", "cluster.spare_nodes=8", 'cluster.fabric.topology="fat-tree"', NO_FAULTS,
                 "workload.global_batch=256")  # fmt: skip
    sim = Simulation(s)
    assert sim.switch_health("leaf", 0) is None and not sim.switches_unhealthy("leaf")
    sim.inject(Fault("leaf0", "fail"))
    assert sim.switch_health("leaf", 0) == 0.0 and sim.switches_unhealthy("leaf")
    assert sim.switch_health("leaf", 1) is None
    back = 180 + 8 * HOUR  # its servers were in the job: detected after 3 min, then the 8 h leaf repair
    sim.run_until(back - 1)
    assert sim.switch_health("leaf", 0) == 0.0 and sim.chip_counts()["in_repair"] == 32
    sim.run_until(back)
    assert sim.switch_health("leaf", 0) is None and sim.chip_counts()["in_repair"] == 0


def test_repairing_a_leaf_brings_it_and_its_servers_back_at_once():
    s = scenario("cluster.nodes=16", "cluster.spare_nodes=8", 'cluster.fabric.topology="fat-tree"', NO_FAULTS,
                 "workload.global_batch=256")  # fmt: skip
    sim = Simulation(s)
    sim.inject(Fault("leaf0", "fail"))
    sim.run_until(HOUR)
    sim.inject(Fault("leaf0", "repair"))
    assert sim.switch_health("leaf", 0) is None and sim.chip_counts()["in_repair"] == 0


def test_the_sandbox_draws_a_failed_leaf_as_failed():
    sb = Sandbox(scenario("cluster.nodes=16", "cluster.spare_nodes=8", 'cluster.fabric.topology="fat-tree"',
                          NO_FAULTS, "workload.global_batch=256"))  # fmt: skip
    assert sb.switch_state("leaf", 0) == "ok"
    sb.inject(Fault("leaf0", "fail"))
    assert sb.switch_state("leaf", 0) == "failed" and sb.switch_state("leaf", 1) == "ok"


def test_a_run_keeps_its_fault_health_to_itself():
    """A lent fabric index is never written: a second run on it starts healthy (the sandbox's reset)."""
    s = scenario("cluster.nodes=16", 'cluster.fabric.topology="fat-tree"', "parallelism.tp=8", "parallelism.dp=auto",
                 "cluster.fabric.oversubscription=2", NO_FAULTS)  # fmt: skip
    shared = FabricIndex.from_plan(s.cluster)
    first = Simulation(s, index=shared)
    fresh = first.tokens_per_s
    first.inject(Fault("spine0", "fail"))
    first.inject(Fault("n3.1", "degrade", 0.05, 7200))
    assert first.tokens_per_s < fresh and first.switch_health("spine", 0) == 0.0
    assert shared.spine_health.min() == 1.0 and shared.nic_health.min() == 1.0 and shared.version == 1
    second = Simulation(s, index=shared)
    assert second.tokens_per_s == fresh and second.switch_health("spine", 0) is None


@pytest.mark.parametrize(
    "fault,where",
    [
        (Fault("n99"), "target"),
        (Fault("n1.42"), "target"),
        (Fault("leaf7000"), "target"),
        (Fault("n1", "melt"), "kind"),
        (Fault("job", "straggle"), "kind"),
        (Fault("n1", "straggle", factor=3.0), "factor"),
    ],
)
def test_bad_injections_are_refused_with_what_exists(fault, where):
    sim = Simulation(quiet())
    with pytest.raises(ScenarioError) as info:
        sim.inject(fault)
    assert where in str(info.value)
    if where == "target":
        assert "servers n0-n8" in str(info.value)


def test_injecting_in_the_past_is_refused():
    sim = Simulation(quiet())
    sim.run_until(HOUR)
    with pytest.raises(ScenarioError, match="in the past"):
        sim.inject(Fault("n1"), at=10.0)


def test_scheduled_faults_from_the_scenario_happen_at_their_time():
    s = quiet('faults=[{at="2h", target="n1", kind="fail"}]')
    sim = Simulation(s)
    sim.run_until(2 * HOUR - 1)
    assert sim.summary().interruptions["total"] == 0
    sim.run_until(2 * HOUR)
    assert sim.summary().interruptions == {"scheduled": 1, "total": 1}


def test_a_bad_scheduled_fault_target_is_a_scenario_error():
    with pytest.raises(ScenarioError, match=r"faults\[0\].target"):
        Simulation(quiet('faults=[{at="2h", target="n77"}]'))


# ---------------------------------------------------------------- determinism


def test_same_seed_same_run_however_time_is_advanced():
    s = load_scenario(SCENARIOS / "kuae-mtt-s4000-10k.toml")
    one = Simulation(s, fingerprint=True)
    one.run_until(10 * DAY)
    many = Simulation(s, metrics=False, fingerprint=True)
    for k in range(1, 301):
        many.run_until(10 * DAY * k / 300)
    assert one.summary().fingerprint == many.summary().fingerprint
    assert one.progress == many.progress
    other = Simulation(s, seed=2, fingerprint=True)
    other.run_until(10 * DAY)
    assert other.summary().fingerprint != one.summary().fingerprint


def test_the_fifth_factor_closes_the_identity_over_a_run():
    """G·C·N·E·S × peak is the run's delivered model FLOP/s, each part measured on its own: G·C·N·E from one
    step's time, S from the tokens of the same cluster run with no faults and no checkpoint pauses."""
    path = SCENARIOS / "llama3-70b-1k-h100.toml"
    s = load_scenario(path)
    sim = Simulation(s)
    sim.run_until(20 * DAY)
    summ = sim.summary()
    free = Simulation(load_scenario(path, [NO_FAULTS, "reliability.checkpoint_cost=0s"]))
    free.run_until(20 * DAY)
    step = sim.base
    mfu = s.workload.tokens_per_step * step.model_flops_per_token / (step.step_time_s * step.peak_flops)
    stability = summ.tokens / free.summary().tokens
    assert math.prod(summ.factors.values()) == pytest.approx(mfu * stability, rel=1e-9)
    delivered = summ.tokens * step.model_flops_per_token / (20 * DAY)
    assert step.peak_flops * math.prod(summ.factors.values()) == pytest.approx(delivered, rel=1e-9)
    assert free.summary().faults == 0 and 0.5 < stability < 0.95  # faults cost this cluster 5 to 50 %


# ---------------------------------------------------------------- ties to the world


def test_mean_interruptions_match_rate_times_exposure():
    """Over seeds, job interruptions equal Σ rate × units in the job × time the job was exposed (3 SE)."""
    s = scenario("cluster.nodes=40", "cluster.spare_nodes=8", "parallelism.dp=auto", "workload.global_batch=512",
                 "reliability.rates={planned_maintenance=0, gpu_straggler=0, fabric_link_degrade=0, "
                 "fabric_link_flapping=0, scale_up_link_degrade=0, leaf_switch=0, spine_switch=0, core_switch=0, "
                 "faulty_gpu=2e-4, host_unplanned_maintenance=4e-4, software_bug=4}")  # fmt: skip
    counts, expected = [], []
    for seed in range(40):
        sim = Simulation(s, seed=seed, metrics=False, fingerprint=False)
        sim.run_until(20 * DAY)
        counts.append(sim.summary().interruptions["total"])
        units = {"gpu": 256, "gpu_port": 256, "host": 32, "job": 256 / JOB_REFERENCE_CHIPS}
        rate = sum(c.rate * units.get(c.unit, 0) for c in fault_classes(s) if c.kind in ("fail-stop", "crash"))
        expected.append(rate * sim.exposure / HOUR)
    counts = np.array(counts, dtype=float)
    se = counts.std(ddof=1) / math.sqrt(len(counts))
    assert abs(counts.mean() - np.mean(expected)) <= 3 * se, (counts.mean(), np.mean(expected), se)
    assert counts.mean() > 20  # enough events for the test to mean something


def test_checkpoint_interval_sweep_peaks_near_youngs_formula():
    """ETTR over checkpoint intervals is best near τ* = √(2δM) (Young 1974), within 25 %."""
    delta, mtbi = 60.0, 2 * HOUR
    rate_per_gpu = 1 / (mtbi / HOUR) / 64  # 64 chips in the job
    s = scenario("cluster.nodes=9", "cluster.spare_nodes=1", NO_FAULTS, "reliability.detect_time=\"10s\"",
                 "reliability.restart_time=\"60s\"", f"reliability.checkpoint_cost=\"{delta:g}s\"",
                 "reliability.repair={faulty_gpu=\"1h\"}")  # fmt: skip
    s = s.model_copy(update={"reliability": s.reliability.model_copy(update={"rates": {"faulty_gpu": rate_per_gpu}})})
    taus = np.array([300, 450, 600, 800, 1000, 1300, 1700, 2200, 3000], dtype=float)
    ettr = []
    for tau in taus:
        run = s.model_copy(update={"reliability": s.reliability.model_copy(update={"checkpoint_interval": tau})})
        values = []
        for seed in range(6):  # the same fault traces for every interval
            sim = Simulation(run, seed=seed, metrics=False, fingerprint=False)
            sim.run_until(120 * DAY)
            values.append(sim.ettr)
        ettr.append(np.mean(values))
    # loss(τ) ≈ a/τ + b·τ + c: fit, then the optimum is √(a/b)
    A = np.column_stack([1 / taus, taus, np.ones_like(taus)])
    a, b, _ = np.linalg.lstsq(A, 1 - np.array(ettr), rcond=None)[0]
    best = math.sqrt(a / b)
    young = math.sqrt(2 * delta * mtbi)
    assert best == pytest.approx(young, rel=0.25), (best, young, ettr)
    assert taus[int(np.argmax(ettr))] == pytest.approx(young, rel=0.6)


def test_the_llama3_anchor_meets_metas_54_days():
    """Meta: 466 interruptions and more than 90 % effective training time in 54 days (Llama 3, section 3.3.4);
    the check `factorysim run scenarios/llama3-405b-16k-h100.toml --duration 54d --seeds 4` makes."""
    s = load_scenario(SCENARIOS / "llama3-405b-16k-h100.toml")
    runs = run_seeds(s, [1, 2, 3, 4], 54 * DAY)
    assert 400 <= np.mean([r.interruptions["total"] for r in runs]) <= 470
    assert np.mean([r.ettr for r in runs]) > 0.90
    assert max(r.waiting_for_spares_s for r in runs) == 0  # the rest of the 24K cluster never runs out


def test_the_kuae_10k_cluster_keeps_the_vendors_99_percent():
    s = load_scenario(SCENARIOS / "kuae-mtt-s4000-10k.toml")
    runs = run_seeds(s, [1, 2, 3], 30 * DAY, workers=1)
    assert min(r.ettr for r in runs) > 0.99
    assert all(r.stability < r.ettr for r in runs)  # S also counts the replicas out while groups wait for spares


def test_isolate_group_keeps_ettr_above_checkpoint_restart_on_the_same_faults():
    base = load_scenario(SCENARIOS / "kuae-mtt-s4000-10k.toml")
    results = {}
    for policy in ("checkpoint-restart", "isolate-group"):
        s = base.model_copy(update={"reliability": base.reliability.model_copy(update={"policy": policy})})
        results[policy] = [run.ettr for run in run_seeds(s, [1, 2, 3], 30 * DAY, workers=1)]
    for cr, ig in zip(results["checkpoint-restart"], results["isolate-group"], strict=False):
        assert ig > cr


# ---------------------------------------------------------------- storms


storm = st.lists(
    st.tuples(
        st.floats(0, 5 * DAY),
        st.sampled_from(["fail", "straggle", "degrade", "flap", "crash", "repair"]),
        st.integers(0, 10**6),
        st.sampled_from([None, 0.1, 0.5, 0.9]),
        st.sampled_from([None, 600.0, 7200.0]),
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(storm, st.sampled_from(["checkpoint-restart", "isolate-group"]), st.integers(0, 3))
def test_random_fault_storms_keep_the_books_straight(events, policy, seed):
    s = scenario("cluster.nodes=10", "cluster.spare_nodes=2", f"reliability.policy={policy}",
                 'cluster.fabric.topology="fat-tree"', "reliability.rates={faulty_gpu=1e-3, software_bug=20}")  # fmt: skip
    sim = Simulation(s, seed=seed, sample_interval=1800.0)
    names = {
        "fail": lambda i: [f"n{i % 10}", f"n{i % 10}.{i % 8}", f"leaf{i % 3}", f"spine{i % 8}"][i % 4],
        "straggle": lambda i: f"n{i % 10}.{i % 8}",
        "degrade": lambda i: f"n{i % 10}.{i % 8}" if i % 3 else f"spine{i % 8}",
        "flap": lambda i: f"n{i % 10}.{i % 8}",
        "crash": lambda i: "job",
        "repair": lambda i: f"n{i % 10}",
    }
    for t, kind, i, factor, duration in sorted(events, key=lambda e: e[0]):
        sim.run_until(t)
        sim.inject(Fault(names[kind](i), kind, factor, duration))
        c = sim.chip_counts()
        assert c["healthy"] + c["failed"] + c["in_repair"] + c["spare"] == c["total"] == 80
    sim.run_until(6 * DAY)
    tokens = sim.series.column("tokens")
    assert (np.diff(tokens) >= 0).all()
    assert ((sim.series.column("stability") >= 0) & (sim.series.column("stability") <= 1 + 1e-12)).all()
    total = sim.series.column("healthy") + sim.series.column("failed") + sim.series.column("in_repair")
    assert (total + sim.series.column("spare") == 80).all()
    assert sim.committed <= sim.progress + 1e-6


# ---------------------------------------------------------------- async


async def test_stream_follows_the_clock_speed_pause_and_step():
    fake = FakeTime()
    clock = SimClock(speed=600.0, frame_interval=0.1, time_source=fake, sleep=fake.sleep)
    sim = Simulation(quiet('faults=[{at="3h", target="n1"}]'))
    frames = []
    async for frame in sim.stream(clock, until=2 * HOUR):
        frames.append(frame)
        if len(frames) == 11:
            break
    assert frames[-1].t == pytest.approx(10 * 0.1 * 600.0)  # ten frames of 0.1 s at 600x
    clock.pause()
    async for frame in sim.stream(clock):
        frames.append(frame)
        if len(frames) == 15:
            break
    assert frames[-1].t == frames[-4].t  # paused: time stands still
    clock.request_step()
    async for frame in sim.stream(clock):
        if frame.t > frames[-1].t:
            break
    assert frame.t == pytest.approx(3 * HOUR)  # single step: straight to the next event
    assert frame.job_state == "hung"


def test_clock_speeds_run_from_real_time_to_a_day_per_second():
    clock = SimClock(speed=1.0)
    assert clock.slower() == 1.0
    for _ in range(10):
        clock.faster()
    assert clock.speed == DAY
