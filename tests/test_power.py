"""The power model: draw by phase, the cluster's power, energy and cost, the power cap, the facility limit, and
published figures it must reproduce."""

from __future__ import annotations

import pytest

from factorysim import estimate
from factorysim.perf.power import (
    HOURS_PER_YEAR,
    ChipDraw,
    PowerUnknown,
    StepPhases,
    card_energy_mwh,
    chip_step_energy,
    emissions_t,
    fabric_inventory,
    gemm_share,
    power_model,
    power_problems,
    step_phases,
    step_power,
)
from factorysim.scenario import ScenarioError, catalog, load_scenario_file
from factorysim.topology.edits import index_for

from .conftest import SCENARIOS, scenario


def power_of(s):
    index = index_for(s.cluster, s.topology.edits)
    e = estimate(s, index)
    return e, step_power(s, e, index)


# ---------------------------------------------------------------- draw by phase


def test_a_chip_draws_each_phase_at_its_own_power():
    draw = ChipDraw(gemm_w=700, memory_w=300, waiting_w=100, idle_w=70, tdp_w=700)
    phases = StepPhases(gemm_s=2.0, memory_s=0.5, waiting_s=1.5)
    assert chip_step_energy(draw, phases) == 2.0 * 700 + 0.5 * 300 + 1.5 * 100


def test_no_phase_draws_more_than_the_cap():
    draw = ChipDraw(gemm_w=700, memory_w=300, waiting_w=100, idle_w=70, tdp_w=700).capped(250)
    assert (draw.gemm_w, draw.memory_w, draw.waiting_w, draw.idle_w) == (250, 250, 100, 70)


def test_the_step_splits_into_gemm_memory_bound_and_waiting_time(starter):
    e = estimate(starter)
    share = gemm_share(starter)
    ph = step_phases(e, share)
    b = e.breakdown
    # one pipeline stage: the whole compute time is the chip's, split by the GEMM share
    assert ph.gemm_s == pytest.approx(b.compute_s * share, rel=1e-12)
    assert ph.memory_s == pytest.approx(b.compute_s * (1 - share) + b.optimizer_s, rel=1e-12)
    assert ph.waiting_s == pytest.approx(b.tp_s + b.dp_s + b.pp_s + b.bubble_s, rel=1e-9)
    assert ph.total == pytest.approx(e.step_time_s, rel=1e-12)
    assert 0.8 < share < 1.0  # Llama-3 8B at 8K tokens: GEMMs and attention dominate


def test_stages_lighter_than_the_busiest_wait_the_difference():
    s = load_scenario_file(SCENARIOS / "llama3-405b-16k-h100.toml")
    e = estimate(s)
    layers = e.layout.stage_layers  # 7, 8 x 14, 7
    share = 0.9
    ph = step_phases(e, share)
    busy = sum(layers) / len(layers) / layers[e.critical_stage]
    assert busy == pytest.approx(126 / 16 / 8)
    assert ph.gemm_s == pytest.approx(e.breakdown.compute_s * busy * share, rel=1e-12)


def test_the_catalog_chip_figures_and_the_default_shares():
    h100 = power_model(scenario())
    assert (h100.chip.gemm_w, h100.chip.idle_w) == (700, 71.8)  # TDP and measured idle, catalog
    d = catalog().power.chip_defaults
    assert h100.chip.memory_w == pytest.approx(d.memory_bound_share * 700)
    assert h100.chip.waiting_w == pytest.approx(d.waiting_share * 700)
    assert h100.host_w == pytest.approx(322 * 8)
    assert h100.host_idle_w == pytest.approx(d.host_idle_share * 322 * 8)
    assert "assumption" in h100.origin["memory_bound_w"] and "assumption" not in h100.origin["idle_w"]
    b200 = power_model(scenario("cluster.chip=B200", "cluster.scale_up=NVLink5"))
    assert b200.chip.memory_w == 689  # measured, not the default share


def test_a_chip_without_a_published_tdp_says_its_figure_is_an_assumption():
    s = scenario("cluster.chip=MTT-S5000", "cluster.scale_up=MTLink2")
    assert power_model(s).origin["tdp_w"] == "MTT-S5000 catalog (assumption: not published)"


def test_scenario_figures_override_the_catalog_and_say_so():
    s = scenario("power.idle_w=90", "power.host_w=3000", "facility.pue=1.3", "cost.chip_usd=20000")
    pm = power_model(s)
    assert (pm.chip.idle_w, pm.host_w, pm.pue, pm.chip_usd) == (90, 3000, 1.3, 20000)
    assert pm.origin["idle_w"] == "[power]" and pm.origin["pue"] == "[facility]" and pm.origin["chip_usd"] == "[cost]"
    assert pm.host_idle_w == pytest.approx(catalog().power.chip_defaults.host_idle_share * 3000)


def test_an_inline_chip_without_a_tdp_has_no_power_and_says_what_to_set():
    chip = "{bf16_tflops = 500, memory_gb = 96, hbm_tb_s = 3}"
    s = scenario(f"cluster.chip={chip}", "cluster.scale_up=NVLink4")
    with pytest.raises(PowerUnknown, match=r"set cluster\.chip\.tdp_w"):
        power_model(s)


def test_an_inline_chip_with_only_a_tdp_takes_the_default_shares():
    chip = "{bf16_tflops = 500, memory_gb = 96, hbm_tb_s = 3, tdp_w = 500}"
    pm = power_model(scenario(f"cluster.chip={chip}", "cluster.scale_up=NVLink4"))
    d = catalog().power.chip_defaults
    assert pm.chip.idle_w == pytest.approx(d.idle_share * 500)
    assert pm.host_w == pytest.approx(d.host_share * 500 * 8)
    assert pm.chip_usd is None and pm.origin["chip_usd"] == "not priced"


# ---------------------------------------------------------------- the cluster


def test_the_fabric_is_counted_on_the_built_topology(starter):
    # 8 servers of 8 chips, rail-optimized 2 tiers of 64-port NDR switches: 8 rail leaves, each with one
    # uplink to each of 8 spines
    inv = fabric_inventory(index_for(starter.cluster))
    assert (inv.leaves, inv.spines, inv.cores, inv.nic_ports) == (8, 8, 0, 64)
    assert inv.switch_ports == 64 + 2 * 64
    _, sp = power_of(starter)
    assert sp.fabric_w == pytest.approx(16 * 747 + 192 * 7.5 + 64 * 33.9)


def test_a_removed_uplink_takes_its_two_ports_off_the_bill(starter):
    edited = starter.model_copy(
        update={"topology": starter.topology.model_validate({"edits": [{"op": "remove", "a": "leaf0", "b": "spine3"}]})}
    )
    before = fabric_inventory(index_for(starter.cluster))
    after = fabric_inventory(index_for(edited.cluster, edited.topology.edits))
    assert after.switch_ports == before.switch_ports - 2


def test_cluster_power_energy_and_cost_follow_their_formulas(starter):
    e, sp = power_of(starter)
    pm = sp.model
    chip_w = chip_step_energy(pm.chip, sp.phases) / e.step_time_s
    assert sp.chip_w == pytest.approx(chip_w, rel=1e-12)
    it = 8 * (8 * chip_w + pm.host_w) + sp.fabric_w  # no spares
    assert sp.it_w == pytest.approx(it, rel=1e-12)
    assert sp.site_w == pytest.approx(it * 1.10, rel=1e-12)
    assert sp.energy_per_step_j == pytest.approx(it * 1.10 * e.step_time_s, rel=1e-12)
    assert sp.tokens_per_kwh == pytest.approx(e.tokens_per_step / (it * 1.10 * e.step_time_s / 3.6e6), rel=1e-12)
    assert sp.joules_per_flop == pytest.approx(
        it * 1.10 * e.step_time_s / (e.tokens_per_step * e.model_flops_per_token), rel=1e-12
    )
    capex = 64 * 30000 + 8 * 0.64 * 30000 * 8 + 16 * 36000
    assert sp.capex_usd == pytest.approx(capex)
    per_hour = it * 1.10 / 1000 * 0.0806 + capex / (5 * HOURS_PER_YEAR)
    assert sp.usd_per_hour == pytest.approx(per_hour, rel=1e-12)
    assert sp.usd_per_million_tokens == pytest.approx(per_hour / (e.tokens_per_s * 3600) * 1e6, rel=1e-12)
    to = sp.to_tokens(1e11)
    assert to["usd"] == pytest.approx(per_hour * 1e11 / e.tokens_per_s / 3600, rel=1e-12)
    assert to["co2_t"] == pytest.approx(to["energy_mwh"] * 0.367, rel=1e-12)


def test_spare_servers_draw_idle_power_and_never_train_beside_the_job():
    s = scenario("cluster.nodes=10", "cluster.spare_nodes=2")
    _, sp = power_of(s)
    pm = sp.model
    idle = 8 * pm.chip.idle_w + pm.host_idle_w
    assert sp.spares_it_w == pytest.approx(2 * idle)
    # a spare trains only in place of a failed server: at most the job's servers draw full power
    assert sp.peak_site_w == pytest.approx((8 * (8 * 700 + pm.host_w) + 2 * idle + sp.fabric_w) * pm.pue)


def test_swings_when_the_job_stops_and_inside_a_step(starter):
    _, sp = power_of(starter)
    pm = sp.model
    assert sp.stop_swing_w == pytest.approx(8 * (8 * (sp.chip_w - pm.chip.idle_w) + pm.host_w - pm.host_idle_w) * 1.1)
    assert sp.phase_swing_w == pytest.approx(64 * (700 - pm.chip.waiting_w) * 1.1)


def test_fp8_changes_the_energy_per_token():
    bf16 = load_scenario_file(SCENARIOS / "llama3-70b-1k-h100.toml")
    fp8 = load_scenario_file(SCENARIOS / "llama3-70b-1k-h100-fp8.toml")
    (eb, pb), (ef, pf) = power_of(bf16), power_of(fp8)
    assert ef.tokens_per_s / eb.tokens_per_s > 1.2
    # the same chips at full draw for less GEMM time: less energy per token, and a lower mean draw
    assert pf.tokens_per_kwh / pb.tokens_per_kwh > 1.2
    assert pf.chip_w < pb.chip_w
    assert pf.phases.gemm_s < pb.phases.gemm_s and pf.phases.memory_s > pb.phases.memory_s


# ---------------------------------------------------------------- the power cap


def test_a_power_cap_slows_gemm_bound_kernels_by_the_curve(starter):
    capped = scenario("cluster.power_cap_w=500")
    raw, chip = starter.cluster.chip_spec, capped.cluster.chip_spec
    speed = (500 / 700) ** catalog().power.power_cap.exponent
    assert chip.gemm_efficiency == pytest.approx(raw.gemm_efficiency * speed, rel=1e-12)
    assert chip.fp8_gemm_efficiency == pytest.approx(raw.fp8_gemm_efficiency * speed, rel=1e-12)
    assert chip.attention_efficiency == pytest.approx(raw.attention_efficiency * speed, rel=1e-12)
    assert chip.hbm_efficiency == raw.hbm_efficiency  # memory-bound kernels draw less than the cap
    (e0, p0), (e1, p1) = power_of(starter), power_of(capped)
    assert 1.15 < e1.step_time_s / e0.step_time_s < 1 / speed
    assert p1.model.chip.gemm_w == 500 and p1.chip_w < p0.chip_w
    assert p1.peak_site_w < p0.peak_site_w


def test_a_capped_cluster_with_more_chips_against_an_uncapped_smaller_one_in_the_same_hall():
    hall = ("facility.power_mw=0.097",)
    small = scenario(*hall, "cluster.nodes=8")
    more = ("cluster.nodes=10", "workload.global_batch=320")
    assert [p.path for p in power_problems(scenario(*hall, *more))] == ["facility.power_mw"]
    large = scenario(*hall, *more, "cluster.power_cap_w=550")
    assert power_problems(small) == [] and power_problems(large) == []
    (es, ps), (el, pl) = power_of(small), power_of(large)
    assert el.tokens_per_s / es.tokens_per_s == pytest.approx(1.075, abs=0.01)
    # per watt it is nearly a wash: each capped chip still brings its host's 322 W
    assert pl.tokens_per_kwh / ps.tokens_per_kwh == pytest.approx(0.98, abs=0.01)


def test_a_cap_above_the_tdp_or_below_the_memory_bound_draw_is_refused():
    with pytest.raises(ScenarioError, match=r"cluster.power_cap_w: 800 W is above H100-SXM-80GB's TDP of 700 W"):
        scenario("cluster.power_cap_w=800")
    problems = power_problems(scenario("cluster.power_cap_w=200"))
    assert [p.path for p in problems] == ["cluster.power_cap_w"]
    assert "below H100-SXM-80GB's memory-bound draw of 315 W" in problems[0].message
    assert "allowed 315 to 700" in problems[0].message


# ---------------------------------------------------------------- the facility


def test_a_cluster_whose_peak_is_above_the_facility_limit_is_refused_naming_both_figures():
    path = SCENARIOS / "llama3-405b-16k-h100.toml"
    s = load_scenario_file(path, ["facility.power_mw=23"])
    problems = power_problems(s)
    assert [p.path for p in problems] == ["facility.power_mw"]
    # the job's 2,048 servers at full draw and the 1,024 spare servers of Meta's 24K cluster idle
    assert "peak is 23.45 MW" in problems[0].message and "above the facility's 23 MW" in problems[0].message
    assert power_problems(load_scenario_file(path, ["facility.power_mw=24"])) == []
    assert power_problems(s, facility=False) == []  # estimate times it anyway


def test_capping_the_chips_brings_the_cluster_inside_the_hall():
    path = SCENARIOS / "llama3-405b-16k-h100.toml"
    assert power_problems(load_scenario_file(path, ["facility.power_mw=23", "cluster.power_cap_w=650"])) == []


# ---------------------------------------------------------------- checked against the world


@pytest.mark.parametrize("card", catalog().power.model_cards, ids=lambda c: c.name)
def test_a_published_training_run_is_reproduced_from_its_model_card(card):
    chip = catalog().chips[card.chip]
    energy = card_energy_mwh(chip, card.gpu_hours, card.pue)
    assert energy == pytest.approx(card.energy_mwh, rel=0.10)
    if card.emissions_t is not None:
        assert emissions_t(energy, card.carbon_g_per_kwh) == pytest.approx(card.emissions_t, rel=0.10)


def test_bloom_emissions_from_gpu_hours_tdp_and_the_french_grid():
    card = next(c for c in catalog().power.model_cards if c.name.startswith("BLOOM"))
    energy = card_energy_mwh(catalog().chips["A100-SXM-80GB"], card.gpu_hours)
    assert energy == pytest.approx(433.196, rel=1e-4)  # 1,082,990 GPU-hours x 400 W
    assert emissions_t(energy, 57) == pytest.approx(24.7, rel=0.01)


def test_an_eight_h100_node_training_draws_what_was_measured():
    m = next(x for x in catalog().power.node_measurements if x.chip == "H100-SXM-80GB")
    s = scenario("cluster.nodes=1", "workload.global_batch=64", "parallelism.tp=2")  # Llama-3 8B on one node
    _, sp = power_of(s)
    node_w = sp.job_it_w  # one server: chips and host, no fabric (measured at the node's wall)
    assert node_w == pytest.approx(m.measured_w, rel=0.10)


def test_the_llama3_16k_site_swing_is_of_the_order_meta_describes():
    swing = catalog().power.site_swing
    s = load_scenario_file(SCENARIOS / "llama3-405b-16k-h100.toml")
    _, sp = power_of(s)
    for w in (sp.stop_swing_w, sp.phase_swing_w):
        assert swing.low_mw <= w / 1e6 < swing.high_mw


# ---------------------------------------------------------------- the layout search ranks by cost per token


def test_search_ranks_layouts_by_cost_per_token_as_estimate_prices_them():
    from factorysim.explore import LocalRunner, Request
    from factorysim.explore.search import search

    s = scenario("parallelism.zero=1")
    fixed = ("parallelism.pp=1", "parallelism.cp=1", "workload.recompute=selective", "parallelism.zero=1")
    result = search(s, Request(objective="cost_per_token", fix=fixed, top=4), LocalRunner(1))
    costs = [r.objective for r in result.best]
    assert costs == sorted(costs) and len(costs) == 4
    for record in result.best:
        chosen = scenario(*(f"{k}={v}" for k, v in result.settings(record).items() if v is not None))
        _, sp = power_of(chosen)
        assert record.objective == pytest.approx(sp.usd_per_million_tokens, rel=1e-9)


def test_cost_per_token_prefers_the_cheaper_token_to_the_faster_chip():
    from factorysim.explore import LocalRunner, Request
    from factorysim.explore.search import search

    vary = ("cluster.chip=H100-SXM-80GB,H200-SXM",)
    fixed = ("parallelism.pp=1", "parallelism.cp=1", "parallelism.tp=2", "workload.recompute=selective")
    fast = search(scenario(), Request(vary=vary, fix=fixed, top=1), LocalRunner(1))
    cheap = search(scenario(), Request(vary=vary, fix=fixed, objective="cost_per_token", top=1), LocalRunner(1))
    # H200's larger, faster memory buys a few percent of speed at 20 % more per chip
    assert fast.settings(fast.best[0])["cluster.chip"] == "H200-SXM"
    assert cheap.settings(cheap.best[0])["cluster.chip"] == "H100-SXM-80GB"


def test_cost_per_token_needs_a_chip_with_a_tdp():
    from factorysim.explore import Request
    from factorysim.explore.search import search

    chip = "{bf16_tflops = 500, memory_gb = 96, hbm_tb_s = 3}"
    with pytest.raises(ScenarioError, match=r"cost_per_token: custom chip has no tdp_w"):
        search(scenario(f"cluster.chip={chip}", "cluster.scale_up=NVLink4"), Request(objective="cost_per_token"))
