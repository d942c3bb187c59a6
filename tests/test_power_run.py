"""The cluster's draw by state as a run goes: what each state draws, the energy accounts, the swing, the facility."""

from __future__ import annotations

import math

import pytest

from factorysim import Fault, Simulation
from factorysim.engine.pool import ACTIVE, SPARE
from factorysim.perf.power import power_model
from factorysim.scenario import load_scenario_file

from .conftest import SCENARIOS
from .test_recovery import starter

HOUR, DAY = 3600.0, 86400.0
NO_CHECKPOINTS = "reliability.checkpoint_interval=100000000"


def levels(sim: Simulation) -> tuple[float, float, float]:
    """(a training server, an idle server, the fabric), W at the meter, from the scenario's power model."""
    m = sim.power
    assert m is not None
    pue = m.model.pue
    return m.model.server_w(m.step_chip_w(sim.base)) * pue, m.model.idle_server_w * pue, m.fabric_w * pue


def test_a_fault_free_run_draws_its_fault_free_power_and_loses_no_energy():
    sim = Simulation(starter(9, 1, NO_CHECKPOINTS))
    train, idle, fabric = levels(sim)
    assert sim.snapshot().power_w == pytest.approx(8 * train + idle + fabric)
    sim.run_until(DAY)
    p = sim.summary().power
    assert p["mean_w"] == pytest.approx(8 * train + idle + fabric) == p["peak_w"] == p["fault_free_w"]
    assert p["energy_mwh"] == pytest.approx((8 * train + idle + fabric) * DAY / 3.6e9)
    assert p["lost_energy_mwh"] == pytest.approx(0.0, abs=1e-9)
    assert p["swing_w"] == 0.0


def test_a_failed_spare_draws_nothing_from_the_moment_it_fails():
    sim = Simulation(starter(9, 1, NO_CHECKPOINTS))
    _, idle, _ = levels(sim)
    before = sim.snapshot().power_w
    sim.inject(Fault("n8", "fail"))  # the spare
    assert sim.status[8] != SPARE
    assert before - sim.snapshot().power_w == pytest.approx(idle)


def test_a_failed_chip_hangs_the_job_at_its_waiting_draw_and_its_server_draws_nothing_in_repair():
    s = starter(9, 1, NO_CHECKPOINTS)
    sim = Simulation(s)
    train, idle, fabric = levels(sim)
    pm = power_model(s)
    sim.run_until(HOUR)
    sim.inject(Fault("n3.5", "fail"))
    hung = (7 * (8 * pm.chip.waiting_w + pm.host_idle_w) + pm.idle_server_w) * pm.pue + fabric
    assert sim.snapshot().job_state == "hung" and sim.snapshot().power_w == pytest.approx(hung)
    sim.run_until(HOUR + s.reliability.detect_time + 1)  # detected: the spare takes the slot, the job restarts
    assert sim.job_state == "restarting" and int((sim.status == ACTIVE).sum()) == 8
    assert sim.snapshot().power_w == pytest.approx(8 * idle + fabric)  # n3 in repair draws nothing
    sim.run_until(HOUR + s.reliability.detect_time + s.reliability.restart_time + 60)
    # the spare trains in n3's place (its links may change the step a little)
    assert sim.job_state == "running" and sim.snapshot().power_w == pytest.approx(8 * train + fabric, rel=1e-3)
    p = sim.summary().power
    assert p["swing_w"] == pytest.approx(8 * (train - idle), rel=1e-3)  # the restart, all at once
    assert p["lost_energy_mwh_by"]["downtime"] > 0 and p["lost_energy_mwh_by"]["servers_off"] < 0


def test_a_job_waiting_for_a_spare_draws_idle_power_and_the_energy_is_lost_to_waiting():
    s = starter(8, 0, NO_CHECKPOINTS)
    sim = Simulation(s)
    _, idle, fabric = levels(sim)
    sim.inject(Fault("n2", "fail"))
    sim.run_until(s.reliability.detect_time + s.reliability.restart_time + HOUR)
    assert sim.snapshot().waiting_for_spares
    assert sim.snapshot().power_w == pytest.approx(7 * idle + fabric)
    p = sim.summary().power
    assert p["lost_energy_mwh_by"]["waiting_for_spares"] == pytest.approx(
        (7 * idle + fabric) * sim.summary().waiting_for_spares_s / 3.6e9, rel=0.01
    )


def test_a_checkpoint_pause_swings_the_whole_job_from_training_to_idle_and_costs_its_energy():
    s = starter(9, 1, "reliability.checkpoint_interval=1800", "reliability.checkpoint_cost=30")
    sim = Simulation(s)
    train, idle, fabric = levels(sim)
    sim.run_until(DAY)
    p = sim.summary().power
    assert p["swing_w"] == pytest.approx(8 * (train - idle))
    pauses = sim.summary().checkpoints * 30
    assert p["lost_energy_mwh_by"]["checkpoints"] == pytest.approx((8 * idle + idle + fabric) * pauses / 3.6e9)
    assert p["mean_w"] < p["peak_w"] == pytest.approx(8 * train + idle + fabric)


def test_energy_lost_by_cause_adds_up_to_what_the_tokens_did_not_need():
    sim = Simulation(scenario_with_faults())
    sim.run_until(7 * DAY)
    summary = sim.summary()
    p = summary.power
    fault_free_j_per_token = p["fault_free_w"] / summary.fault_free_tokens_per_s
    needed = summary.tokens * fault_free_j_per_token / 3.6e9
    assert sum(p["lost_energy_mwh_by"].values()) == pytest.approx(p["energy_mwh"] - needed)
    assert p["lost_energy_mwh"] > 0


def scenario_with_faults():
    return load_scenario_file(SCENARIOS / "h100-4k-checkpoint-restart.toml", [])


def test_the_time_series_carries_the_meter_and_its_energy_is_the_run_s():
    sim = Simulation(scenario_with_faults(), sample_interval=600)
    sim.run_until(2 * DAY)
    t = sim.series.column("t")
    w = sim.series.column("power_w")
    energy = float((w[1:] * (t[1:] - t[:-1])).sum()) / 3.6e9  # each row: the mean power since the row before
    p = sim.summary().power
    after_last_row = p["peak_w"] * (sim.now - t[-1]) / 3.6e9
    assert 0 <= p["energy_mwh"] - energy <= after_last_row + 1e-9
    assert len(t) > 200 and w.max() == pytest.approx(p["peak_w"])


def test_fp8_changes_the_energy_per_token_of_a_run():
    runs = {}
    for name in ("llama3-70b-1k-h100", "llama3-70b-1k-h100-fp8"):
        sim = Simulation(load_scenario_file(SCENARIOS / f"{name}.toml", []), seed=3)
        sim.run_until(DAY)
        runs[name] = sim.summary().power["tokens_per_kwh"]
    assert runs["llama3-70b-1k-h100-fp8"] / runs["llama3-70b-1k-h100"] > 1.2


def test_cost_of_a_run_is_its_electricity_and_its_hardware_by_the_hour():
    sim = Simulation(starter(9, 1, NO_CHECKPOINTS))
    sim.run_until(DAY)
    p = sim.summary().power
    assert p["electricity_usd"] == pytest.approx(p["energy_mwh"] * 1000 * p["usd_per_kwh"])
    assert p["hardware_usd"] == pytest.approx(p["capex_usd_per_hour"] * 24)
    assert p["usd_per_million_tokens"] == pytest.approx(p["usd"] / sim.summary().tokens * 1e6)
    assert p["co2_t"] == pytest.approx(p["energy_mwh"] * p["carbon_g_per_kwh"] / 1000)


def test_a_chip_without_power_figures_runs_without_a_power_account():
    s = starter(9, 1, "cluster.chip={bf16_tflops=989, memory_gb=80, hbm_tb_s=3.35}")
    sim = Simulation(s)
    sim.run_until(HOUR)
    assert sim.summary().power is None and sim.snapshot().power_w is None
    assert "power_w" not in sim.series.as_dict()


# ---------------------------------------------------------------- against the world and the facility


def test_the_llama3_16k_site_swings_by_tens_of_megawatts_as_meta_describes():
    """Meta (Llama 3, arXiv 2407.21783 §3.3): the whole job pausing at once makes the site's power swing 'on the
    order of tens of megawatts'."""
    s = load_scenario_file(SCENARIOS / "llama3-405b-16k-h100.toml", [])
    sim = Simulation(s, seed=1, metrics=False)
    sim.run_until(2 * DAY)
    swing_mw = sim.summary().power["swing_w"] / 1e6
    assert round(math.log10(swing_mw)) == 1, swing_mw  # 3.2 to 32 MW: tens of megawatts


def test_a_capped_run_draws_less_and_stays_inside_its_hall():
    path = SCENARIOS / "llama3-405b-16k-h100.toml"
    runs = {}
    for cap in (None, 600):
        s = load_scenario_file(path, ["facility.power_mw=23"] + ([f"cluster.power_cap_w={cap}"] if cap else []))
        sim = Simulation(s, seed=1, metrics=False)
        sim.run_until(DAY)
        runs[cap] = sim.summary()
    assert runs[600].power["peak_w"] < runs[None].power["peak_w"]
    assert runs[600].power["peak_w"] / 1e6 <= 23
    assert runs[600].tokens < runs[None].tokens


# ---------------------------------------------------------------- reports and compare


def test_compare_and_the_reports_show_energy_cost_and_power_over_time():
    from factorysim.report import RunResult, compare_report, compare_rows, run_report

    runs = []
    for name in ("llama3-70b-1k-h100", "llama3-70b-1k-h100-fp8"):
        sim = Simulation(load_scenario_file(SCENARIOS / f"{name}.toml", ["facility.power_mw=2"]), seed=3)
        sim.run_until(DAY)
        runs.append(RunResult.of(sim))
    a, b = runs
    rows = {r[0]: r for r in compare_rows(a, b)}
    pa, pb = a.summary["power"], b.summary["power"]
    assert rows["tokens per kWh"][1:3] == (f"{pa['tokens_per_kwh']:,.0f}", f"{pb['tokens_per_kwh']:,.0f}")
    assert rows["tokens per kWh"][3] == f"{pb['tokens_per_kwh'] / pa['tokens_per_kwh'] - 1:+.1%}"
    assert {"energy (MWh)", "peak power", "largest swing within a minute", "cost per million tokens"} <= set(rows)
    page = run_report(a)
    assert "<h2>Power and cost</h2>" in page and "Site power" in page and "facility limit" in page
    assert "Energy lost to faults" in compare_report(a, b)
