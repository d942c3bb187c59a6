"""The step model held to its formulas and to the trends the world shows."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from factorysim import estimate
from factorysim.perf import KERNELS, step_links
from factorysim.perf import collectives as coll
from factorysim.perf.collectives import LinkRates
from factorysim.perf.gemm import K_HALF, TILE_ELEMENTS, WAVE_SHARE, gemm_measurements, gemm_time, shape_efficiency
from factorysim.perf.memory import stage_params
from factorysim.perf.pipeline import bubble_time, pipeline_time
from factorysim.perf.step import estimate_step, layer_compute, logits_compute
from factorysim.scenario import catalog, load_scenario_file, resolve_layout
from factorysim.topology.edits import index_for

from .conftest import SCENARIOS, custom_scenario, scenario

GPT3 = ("workload.layers=96", "workload.hidden=12288", "workload.heads=96", "workload.vocab=51200",
        "workload.seq_len=2048", "workload.tied_embeddings=true")  # fmt: skip


def with_speed(s, speed: float):
    lay = resolve_layout(s)
    links = replace(step_links(index_for(s.cluster, s.topology.edits), lay), slowest_speed=speed)
    return estimate_step(s, lay, links)


# ---------------------------------------------------------------- FLOPs and utilisation


@pytest.mark.parametrize("recompute", ["none", "pointwise", "selective", "full"])
def test_hfu_counts_what_each_recompute_mode_runs_again(recompute):
    s = custom_scenario(*GPT3, "cluster.nodes=16", "parallelism.tp=8", "parallelism.pp=2", "parallelism.dp=auto",
                        f"workload.recompute={recompute}", "workload.global_batch=64")  # fmt: skip
    e = estimate(s)
    L, h, sq, V = 96, 12288, 2048, 51200
    model = 72 * L * h * h + 12 * L * h * sq + 6 * V * h
    extra = {"none": 0, "pointwise": 0, "selective": 4 * L * h * sq, "full": 24 * L * h * h + 4 * L * h * sq}[recompute]
    assert e.hfu / e.mfu == pytest.approx((model + extra) / model, rel=1e-12)


def test_causal_convention_counts_half_the_attention_square():
    base = (*GPT3, "cluster.nodes=16", "parallelism.tp=8", "parallelism.pp=2", "parallelism.dp=auto")
    full = estimate(custom_scenario(*base))
    causal = estimate(custom_scenario(*base, "workload.attention_flops=causal"))
    L, h, sq, V = 96, 12288, 2048, 51200
    assert causal.model_flops_per_token == pytest.approx(72 * L * h * h + 6 * L * h * sq + 6 * V * h, rel=1e-12)
    assert causal.step_time_s == full.step_time_s  # a convention, not physics
    assert causal.mfu / full.mfu == pytest.approx(causal.model_flops_per_token / full.model_flops_per_token)


# ---------------------------------------------------------------- compute by shape


def test_gemm_efficiency_rises_with_tokens_and_with_the_sharded_widths():
    sms = 132
    assert shape_efficiency(4096, 4608, 12288, sms) > shape_efficiency(2048, 4608, 12288, sms)
    assert shape_efficiency(2048, 12288, 12288, sms) > shape_efficiency(2048, 12288 / 8, 12288, sms)
    assert shape_efficiency(2048, 12288, 12288, sms) > shape_efficiency(2048, 12288, 12288 / 8, sms)
    tiles = 2048 * 4608 / TILE_ELEMENTS
    assert shape_efficiency(2048, 4608, 12288, sms) == pytest.approx(
        tiles / (tiles + WAVE_SHARE * sms) * 12288 / (12288 + K_HALF), rel=1e-12
    )


def test_the_shape_curve_follows_public_gemm_sweeps():
    for series in gemm_measurements():
        shape = [shape_efficiency(m, n, k, series["sms"]) for m, n, k, _ in series["points"]]
        measured = [tflops / series["peak_tflops"] for *_, tflops in series["points"]]
        ceiling = math.exp(sum(math.log(a / b) for a, b in zip(measured, shape, strict=True)) / len(shape))
        assert ceiling <= 1.0, series["name"]
        errors = [a / (ceiling * b) - 1 for a, b in zip(measured, shape, strict=True)]
        assert max(abs(e) for e in errors) <= 0.13, (series["name"], errors)
        assert math.sqrt(sum(e * e for e in errors) / len(errors)) <= 0.07, series["name"]


def test_a_gemm_never_beats_its_memory_traffic():
    rate, hbm = 1e18, 2.7e12  # compute so fast that only the bytes count
    m, n, k = 64, 8192, 8192
    assert gemm_time(m, n, k, rate, 132, hbm, 2.0) == pytest.approx((2 * (m * k + k * n) + 2 * m * n) / hbm)
    assert gemm_time(m, n, k, rate, 132, hbm, 1.0) == pytest.approx((m * k + k * n + 2 * m * n) / hbm)


def test_micro_batch_two_computes_each_token_faster_than_micro_batch_one():
    base = ("workload.model=gpt3-175b", "cluster.nodes=128", "parallelism.tp=8", "parallelism.pp=8",
            "parallelism.dp=auto", "workload.global_batch=1536", "workload.seq_len=2048")  # fmt: skip
    one = estimate(scenario(*base, "workload.micro_batch=1"))
    two = estimate(scenario(*base, "workload.micro_batch=2"))
    assert two.breakdown.compute_s < one.breakdown.compute_s
    assert two.factors.chip > one.factors.chip


# ---------------------------------------------------------------- pipeline


def test_pipeline_time_is_m_times_the_slowest_stage_plus_the_others_once():
    assert pipeline_time([1.0, 1.0, 1.0, 1.0], 8) == pytest.approx(8 + 3)
    assert pipeline_time([1.0, 2.0, 1.0], 4) == pytest.approx(4 * 2 + 2)
    assert bubble_time([1.0, 1.0, 1.0, 1.0], 2) == pytest.approx(1.5)  # (p - 1)/v stage times


def test_bubble_follows_1f1b_and_interleaved_formulas_on_even_stages():
    base = ["workload.model=llama3-70b", "cluster.nodes=32", "parallelism.tp=8", "parallelism.pp=8",
            "parallelism.dp=auto", "workload.global_batch=64", "workload.recompute=full"]  # fmt: skip
    p = 8
    for v in (1, 2):
        s = scenario(*base, f"parallelism.interleave={v}")
        e = estimate(s)
        b, m = e.breakdown, e.layout.micro_batches
        logits = logits_compute(s, e.layout, s.cluster.chip_spec, s.workload.model_spec())
        assert e.critical_stage == p - 1  # ten layers and the output layer
        stage = (b.compute_s + b.tp_s) / m - logits  # ten layers, one micro-batch
        assert b.bubble_s == pytest.approx((p - 1) / v * stage, rel=1e-12)


def test_uneven_stages_change_the_bubble_and_the_steady_state_as_the_formula_says():
    base = ["workload.model=llama3-405b", "cluster.nodes=256", "parallelism.tp=8", "parallelism.pp=16",
            "parallelism.dp=auto", "workload.global_batch=256", "workload.recompute=full", "parallelism.interleave=2"]  # fmt: skip
    even = estimate(scenario(*base))  # 8 layers on the first 14 stages, 7 on the last two
    uneven = estimate(scenario(*base, "parallelism.first_stage_layers=6", "parallelism.last_stage_layers=6"))
    assert uneven.layout.stage_layers == (6,) + (9,) * 2 + (8,) * 12 + (6,)
    m, v = even.layout.micro_batches, 2
    layer = (even.breakdown.compute_s + even.breakdown.tp_s) / (m * 8)  # one layer, one micro-batch
    # Σt is the same work on both splits; the busiest stage holds 9 layers instead of 8
    assert uneven.breakdown.bubble_s - even.breakdown.bubble_s == pytest.approx(-layer / v, rel=1e-9)
    steady = uneven.breakdown.compute_s + uneven.breakdown.tp_s - (even.breakdown.compute_s + even.breakdown.tp_s)
    assert steady == pytest.approx(m * layer, rel=1e-9)


def test_a_straggler_paces_its_stage_for_every_micro_batch():
    for extra in ([], ["parallelism.interleave=2"]):
        s = scenario("workload.model=llama3-70b", "cluster.nodes=32", "parallelism.tp=8", "parallelism.pp=4",
                     "parallelism.dp=auto", "workload.global_batch=64", *extra)  # fmt: skip
        base, slow = with_speed(s, 1.0), with_speed(s, 0.8)
        assert base.breakdown.straggler_s == 0.0
        assert slow.breakdown.straggler_s == pytest.approx(base.breakdown.compute_s * (1 / 0.8 - 1), rel=1e-12)
        assert slow.step_time_s == pytest.approx(base.step_time_s + slow.breakdown.straggler_s, rel=1e-12)


# ---------------------------------------------------------------- tensor parallel and overlap


def test_tensor_parallel_collectives_per_layer_with_and_without_sequence_parallelism():
    for sp, count in ((True, 10), (False, 4)):
        s = scenario("workload.model=llama3-70b", "parallelism.tp=8", "parallelism.pp=1", "parallelism.dp=auto",
                     f"parallelism.sequence_parallel={str(sp).lower()}", "workload.global_batch=64",
                     "workload.recompute=none")  # fmt: skip
        e = estimate(s)
        link = s.cluster.link_spec
        lay = e.layout
        g = step_links(index_for(s.cluster, []), lay).tp
        r = LinkRates(g, link.efficiency, 0.85, link.latency_us * 1e-6, 5e-6)
        act = 1 * 8192 * 8192 * 2.0
        one = coll.reduce_scatter(act, r)[0] if sp else coll.all_reduce(act, r)[0]
        assert e.breakdown.tp_s == pytest.approx(lay.micro_batches * 80 * count * one, rel=1e-12)


def test_tp_overlap_hides_tensor_parallel_time_behind_the_gemms_at_the_interference_it_costs():
    base = ("workload.model=llama3-70b", "parallelism.tp=8", "parallelism.pp=1", "parallelism.dp=auto",
            "workload.global_batch=64", "workload.recompute=none")  # fmt: skip
    plain = estimate(scenario(*base))
    overlap = estimate(scenario(*base, "features.tp_overlap=true"))
    engine = estimate(scenario(*base, "features.tp_overlap=true", "features.async_comm_engine=true"))
    tail = 1 / KERNELS.tp_overlap_splits  # the first (or last) chunk of each pipelined collective stays exposed
    assert KERNELS.tp_overlap_splits == 4
    hidden = (1 - tail) * KERNELS.comm_interference  # the rest costs the compute it occupies
    assert overlap.breakdown.tp_s == pytest.approx((tail + hidden) * plain.breakdown.tp_s, rel=1e-12)
    assert engine.breakdown.tp_s == pytest.approx(tail * plain.breakdown.tp_s, rel=1e-12)
    assert overlap.factors.node > plain.factors.node
    assert engine.factors.node > overlap.factors.node  # the engine's effect shows in N
    assert overlap.breakdown.compute_s == plain.breakdown.compute_s


# ---------------------------------------------------------------- data parallel


def test_data_parallel_all_reduce_on_a_slow_fabric_is_exposed_beyond_the_last_backward():
    s = scenario("parallelism.tp=8", "parallelism.pp=1", "parallelism.dp=auto", "parallelism.zero=0",
                 "cluster.fabric.nic_gbps=25", "workload.global_batch=64")  # fmt: skip
    e = estimate(s)
    lay = e.layout
    fabric, link = s.cluster.fabric.spec, s.cluster.link_spec
    g = step_links(index_for(s.cluster, []), lay).dp  # 8 ranks, one per server
    r = LinkRates(g, link.efficiency, fabric.efficiency, link.latency_us * 1e-6, fabric.latency_us * 1e-6)
    params = stage_params(s, lay, 0).total
    buckets = math.ceil(params / 40e6)  # Megatron-LM's buckets: max(40M, 1M x dp) parameters
    comm = buckets * sum(coll.all_reduce(params * 4.0 / buckets, r))
    window = e.breakdown.compute_s / lay.micro_batches * 2 / 3  # the last micro-batch's backward
    tail = 1 / buckets  # the last bucket cannot hide
    rest = comm * (1 - tail)
    expected = comm * tail + max(0.0, rest - window) + KERNELS.comm_interference * min(rest, window)
    assert comm > window  # the fabric is too slow to hide
    assert e.breakdown.dp_s == pytest.approx(expected, rel=1e-12)


def test_zero_three_gathers_the_weights_for_every_micro_batch():
    base = ("parallelism.tp=1", "parallelism.dp=auto", "cluster.fabric.nic_gbps=25", "workload.global_batch=256")
    one = estimate(scenario(*base, "parallelism.zero=1"))
    three = estimate(scenario(*base, "parallelism.zero=3"))
    m = three.layout.micro_batches
    assert m == 4
    assert three.breakdown.dp_s > 3 * one.breakdown.dp_s


# ---------------------------------------------------------------- context parallel


def test_ring_attention_passes_kv_blocks_and_hides_them_behind_the_attention_of_the_block_in_hand():
    s = scenario("workload.seq_len=65536", "parallelism.cp=8", "parallelism.tp=8", "parallelism.dp=auto",
                 "workload.global_batch=8", "workload.recompute=none", "cluster.fabric.nic_gbps=50")  # fmt: skip
    e = estimate(s)
    lay = e.layout
    fabric = s.cluster.fabric.spec
    g = step_links(index_for(s.cluster, []), lay).cp
    model = s.workload.model_spec()
    block = 2 * (65536 / 8) * model.kv_dim * 2.0 / 8
    send = block / (g.out_bw * fabric.efficiency) + fabric.latency_us * 1e-6
    work = layer_compute(s, lay, s.cluster.chip_spec, model, native=False)
    st = KERNELS.comm_interference

    def exposed(comm, window):
        return max(0.0, comm - window) + st * min(comm, window)

    per_layer = 7 * (exposed(send, work.attention_fwd / 8) + exposed(2 * send, work.attention_bwd / 8))
    assert e.breakdown.cp_s == pytest.approx(lay.micro_batches * 32 * per_layer, rel=1e-12)


# ---------------------------------------------------------------- in-network reduction and the seed's features


def test_in_network_reduction_lowers_the_node_communication_share_of_kuae_when_tp_all_reduces():
    path = SCENARIOS / "kuae-mtt-s4000-1k.toml"
    ar = ["parallelism.sequence_parallel=false"]
    plain = estimate(load_scenario_file(path, ar))
    inr = estimate(load_scenario_file(path, [*ar, "features.in_network_reduction=true"]))
    assert inr.factors.node > plain.factors.node
    # each byte of the all-reduce crosses MTLink once instead of 2(n-1)/n times
    assert inr.breakdown.tp_s / plain.breakdown.tp_s == pytest.approx(8 / 14, rel=0.03)


def test_in_network_reduction_lowers_the_node_communication_share_of_the_default_kuae_scenario():
    """With sequence parallelism and the distributed optimizer every collective is a reduce-scatter or an
    all-gather, which send or receive (n-1)/n of the data in the network as on a ring: near-memory reduction
    only takes their latency from 7 steps to 3 on MTLink, a small gain on KUAE's 67 MB tensor-parallel messages."""
    path = SCENARIOS / "kuae-mtt-s4000-1k.toml"
    plain = estimate(load_scenario_file(path))
    inr = estimate(load_scenario_file(path, ["features.in_network_reduction=true"]))
    assert inr.factors.node > plain.factors.node  # N's communication share, 1 - N, is lower
    s = load_scenario_file(path)
    lay = resolve_layout(s)
    collectives = lay.micro_batches * 10 * lay.stage_layers[0]  # selective recompute: 10 per layer and micro-batch
    saved = collectives * (7 - 3) * s.cluster.link_spec.latency_us * 1e-6
    assert plain.breakdown.tp_s - inr.breakdown.tp_s == pytest.approx(saved, rel=1e-9)
    assert saved / plain.breakdown.tp_s < 0.05  # small: bandwidth, not latency, bounds these messages


def test_an_overlapped_in_network_collective_costs_a_third_of_the_interference():
    base = ("workload.model=llama3-70b", "cluster.nodes=32", "parallelism.tp=8", "parallelism.pp=4",
            "parallelism.dp=auto", "workload.global_batch=64", "features.tp_overlap=true")  # fmt: skip
    plain, inr = estimate(scenario(*base)), estimate(scenario(*base, "features.in_network_reduction=true"))
    s = scenario(*base)
    lay, index = resolve_layout(s), index_for(s.cluster, [])
    links = step_links(index, lay)
    link = s.cluster.link_spec

    def tp(in_network: bool, stolen: float) -> float:
        r = LinkRates(links.tp, link.efficiency, 1.0, link.latency_us * 1e-6, 0.0, in_network, False,
                      link.in_network_efficiency, 1.0)  # fmt: skip
        comm = 10 * sum(coll.reduce_scatter(8192 * 8192 * 2.0, r))
        window = layer_compute(s, lay, s.cluster.chip_spec, s.workload.model_spec(), native=False).linear
        tail, rest = comm / 4, comm * 3 / 4
        return lay.micro_batches * 20 * (tail + max(0.0, rest - window) + stolen * min(rest, window))

    assert plain.breakdown.tp_s == pytest.approx(tp(False, KERNELS.comm_interference), rel=1e-12)
    assert inr.breakdown.tp_s == pytest.approx(tp(True, KERNELS.comm_interference / 3), rel=1e-12)


def test_in_network_reduction_halves_a_data_parallel_all_reduce_across_servers():
    base = ["parallelism.zero=0", "parallelism.tp=8", "parallelism.dp=auto", "cluster.fabric.nic_gbps=25"]
    ring = estimate(scenario(*base))
    sharp = estimate(scenario(*base, "features.in_network_reduction=true"))
    assert sharp.breakdown.dp_s < ring.breakdown.dp_s


def test_a_fabric_without_in_network_reduction_says_the_feature_does_nothing():
    s = scenario('cluster.chip="A100-SXM-80GB"', 'cluster.scale_up="NVLink3"', 'cluster.fabric.technology="RoCE-400G"',
                 "features.in_network_reduction=true", "parallelism.dp=auto")  # fmt: skip
    assert any("reduces in the network" in n for n in estimate(s).notes)


def test_fp8_on_h100_calibrated_rate_stays_under_the_measured_matmul_ceiling():
    h100 = catalog().chips["H100-SXM-80GB"]
    # maximum achievable matmul FLOPS on H100 SXM (ml-engineering MAMF table): BF16 794.5, FP8 1402.6 TFLOP/s
    assert h100.bf16_peak_flops * h100.gemm_efficiency <= 794.5e12
    assert h100.fp8_peak_flops * h100.fp8_gemm_efficiency <= 1402.6e12
