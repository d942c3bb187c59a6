"""The kernel model and the step's bookkeeping, held to formulas written out here.

Each expected value is assembled from the pieces the model is made of (one GEMM's time, one collective's time,
the catalog's figures and the kernel constants), so a wrong count, factor or branch shows as a number.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from factorysim import estimate
from factorysim.perf import KERNELS, step_links
from factorysim.perf import collectives as coll
from factorysim.perf.collectives import LinkRates
from factorysim.perf.gemm import gemm_time, linear_times
from factorysim.perf.memory import GB, memory_per_stage, memory_problems, stage_params
from factorysim.perf.pipeline import bubble_time, pipeline_time
from factorysim.perf.step import estimate_step, layer_compute, logits_compute
from factorysim.scenario import resolve_layout
from factorysim.topology import GroupLinks
from factorysim.topology.edits import index_for

from .conftest import custom_scenario, scenario

LLAMA70 = ("workload.model=llama3-70b", "parallelism.tp=8", "parallelism.pp=1", "parallelism.dp=auto",
           "workload.global_batch=64", "workload.recompute=none")  # fmt: skip


def rates_of(s, g: GroupLinks) -> LinkRates:
    link, fabric = s.cluster.link_spec, s.cluster.fabric.spec
    return LinkRates(g, link.efficiency, fabric.efficiency, link.latency_us * 1e-6, fabric.latency_us * 1e-6)


def links_of(s):
    lay = resolve_layout(s)
    return lay, step_links(index_for(s.cluster, s.topology.edits), lay)


# ---------------------------------------------------------------- one layer


def expected_layer(s, *, rate: float, in_bytes: float, sp: bool = True):
    """(linear, attention forward, memory-bound) seconds of one dense layer and micro-batch, from the formulas."""
    w, chip = s.workload, s.cluster.chip_spec
    m = w.model_spec()
    lay = resolve_layout(s)
    t, T = lay.tp, lay.micro_batch * w.seq / lay.cp
    h, kv, f = m.hidden, m.kv_dim, m.ffn
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    shapes = [(T, (h + 2 * kv) / t, h), (T, h, h / t), (T, (2 if m.gated_mlp else 1) * f / t, h), (T, h, f / t)]
    fwd = sum(linear_times(*sh, rate, chip.sm_count, hbm, in_bytes)[0] for sh in shapes)
    bwd = sum(linear_times(*sh, rate, chip.sm_count, hbm, in_bytes)[1] for sh in shapes)
    keys = w.seq / lay.cp
    attn = 0.5 * 4 * w.seq * h * T / t / (chip.attention_rate(w.attention) * keys / (keys + 400.0))
    per_token = 44.0 * h / (t if sp else 1) + (16.0 if m.gated_mlp else 10.0) * f / t
    if w.precision == "fp8":
        per_token += 6.0 * (3 * h / t + f / t)
    return fwd, bwd, attn, T * per_token / hbm


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_a_layer_is_its_gemms_its_attention_and_its_memory_bound_kernels(recompute):
    s = scenario(*LLAMA70, f"workload.recompute={recompute}")
    chip = s.cluster.chip_spec
    fwd, bwd, attn, mem = expected_layer(s, rate=chip.bf16_peak_flops * chip.gemm_efficiency, in_bytes=2.0)
    got = layer_compute(s, resolve_layout(s), chip, s.workload.model_spec(), native=False)
    again = {"none": 0, "selective": 0, "full": 1}[recompute]  # forward passes run again
    attn_again = {"none": 0, "selective": 1, "full": 1}[recompute]
    assert got.linear == pytest.approx((1 + again) * fwd + bwd, rel=1e-12)
    assert got.attention == pytest.approx((3 + attn_again) * attn, rel=1e-12)
    assert got.memory == pytest.approx(mem * (4 / 3 if recompute == "full" else 1), rel=1e-12)
    assert got.attention_fwd == pytest.approx(attn, rel=1e-12) and got.attention_bwd == pytest.approx(2 * attn)


def test_pointwise_recompute_runs_the_norms_and_the_activation_function_forward_again():
    s = scenario(*LLAMA70, "workload.recompute=pointwise")
    chip = s.cluster.chip_spec
    fwd, bwd, attn, mem = expected_layer(s, rate=chip.bf16_peak_flops * chip.gemm_efficiency, in_bytes=2.0)
    got = layer_compute(s, resolve_layout(s), chip, s.workload.model_spec(), native=False)
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    again = 8192 * (8.0 * 8192 / 8 + 6.0 * 28672 / 8) / hbm  # two norms forward (sharded by SP), SwiGLU forward
    assert got.linear == pytest.approx(fwd + bwd, rel=1e-12)  # no GEMM again
    assert got.attention == pytest.approx(3 * attn, rel=1e-12)
    assert got.memory == pytest.approx(mem + again, rel=1e-12)
    e = estimate(s)
    assert e.hfu == pytest.approx(e.mfu, rel=1e-12)


def test_fp8_layers_run_gemms_at_the_fp8_rate_and_pay_for_the_casts():
    s = scenario(*LLAMA70, "workload.precision=fp8")
    chip = s.cluster.chip_spec
    fwd, bwd, _, mem = expected_layer(s, rate=chip.fp8_peak_flops * chip.fp8_gemm_efficiency, in_bytes=1.0)
    got = layer_compute(s, resolve_layout(s), chip, s.workload.model_spec(), native=False)
    assert got.linear == pytest.approx(fwd + bwd, rel=1e-12)
    assert got.memory == pytest.approx(mem, rel=1e-12)


def test_without_sequence_parallelism_norms_run_on_every_tensor_parallel_rank():
    s = scenario(*LLAMA70, "parallelism.sequence_parallel=false")
    chip = s.cluster.chip_spec
    *_, mem = expected_layer(s, rate=chip.bf16_peak_flops * chip.gemm_efficiency, in_bytes=2.0, sp=False)
    got = layer_compute(s, resolve_layout(s), chip, s.workload.model_spec(), native=False)
    assert got.memory == pytest.approx(mem, rel=1e-12)


def test_unfused_attention_computes_the_whole_square_one_head_wide_and_moves_the_scores():
    s = scenario(*LLAMA70, "workload.attention=unfused")
    chip, m = s.cluster.chip_spec, s.workload.model_spec()
    lay = resolve_layout(s)
    T, t, hd = 8192, 8, 128
    attn = 4 * 8192 * 8192 * T / t / (chip.bf16_peak_flops * chip.gemm_efficiency * hd / (hd + 64))
    got = layer_compute(s, lay, chip, m, native=False)
    flash = layer_compute(scenario(*LLAMA70), lay, chip, m, native=False)
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    assert got.attention_fwd == pytest.approx(attn, rel=1e-12)
    assert got.memory - flash.memory == pytest.approx(T * 36.0 * 64 / t * 8192 / hbm, rel=1e-9)


def test_the_triton_flash_attention_runs_at_half_flashattention_2s_rate():
    s = scenario(*LLAMA70, "workload.attention=flash2")
    triton = scenario(*LLAMA70, "workload.attention=triton")
    chip, m = s.cluster.chip_spec, s.workload.model_spec()
    lay = resolve_layout(s)
    assert chip.attention_rate("triton") == pytest.approx(0.5 * 0.29 * 989e12, rel=1e-12)
    fa2, tri = layer_compute(s, lay, chip, m, native=False), layer_compute(triton, lay, chip, m, native=False)
    assert tri.attention_fwd == pytest.approx(2 * fa2.attention_fwd, rel=1e-12)
    assert tri.linear == fa2.linear and tri.memory == fa2.memory


@pytest.mark.parametrize("attention", ["flash2", "triton"])
def test_eager_kernels_pay_the_second_norm_pass_and_the_unpadding_copies(attention):
    base = (*LLAMA70, f"workload.attention={attention}")
    fused, eager = scenario(*base), scenario(*base, "workload.kernels=eager")
    chip, m = fused.cluster.chip_spec, fused.workload.model_spec()
    lay = resolve_layout(fused)
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    T, t, h, kv = 8192, 8, 8192, 1024  # tokens per micro-batch; Llama 3 70B: 8 K/V heads of 128
    extra = 8.0 * h / t  # LayerNorm weight gradients (sequence parallel: the norms run on h/t per token)
    if attention != "triton":  # FlashAttention's varlen path: Q, K, V gathered and the output scattered back
        extra += 10.0 * (2 * h + 2 * kv) / t
    a, b = layer_compute(fused, lay, chip, m, native=False), layer_compute(eager, lay, chip, m, native=False)
    assert b.memory - a.memory == pytest.approx(T * extra / hbm, rel=1e-9)
    assert b.linear == a.linear and b.attention == a.attention
    assert logits_compute(eager, lay, chip, m) == logits_compute(fused, lay, chip, m)  # the loss is its own setting


def test_an_eager_loss_moves_fp32_copies_of_the_logits():
    fused, eager = scenario(*LLAMA70), scenario(*LLAMA70, "workload.loss=eager")
    chip, m = fused.cluster.chip_spec, fused.workload.model_spec()
    lay = resolve_layout(fused)
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    loss = logits_compute(eager, lay, chip, m) - logits_compute(fused, lay, chip, m)
    assert loss == pytest.approx(8192 * (36.0 - 16.0) * m.vocab / 8 / hbm, rel=1e-9)


def test_moe_layers_run_each_local_expert_on_its_share_of_the_routed_tokens():
    s = scenario("workload.model=mixtral-8x7b", "workload.seq_len=4096", "parallelism.tp=2", "parallelism.ep=4",
                 "parallelism.dp=auto", "cluster.nodes=16")  # fmt: skip
    chip, m = s.cluster.chip_spec, s.workload.model_spec()
    lay = resolve_layout(s)
    rate, hbm = chip.bf16_peak_flops * chip.gemm_efficiency, chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    T, h, kv, f, t = 4096, 4096, 1024, 14336, 2
    local, per_expert = 2, 4096 * 2 / 2  # 8 experts over ep 4; top-2 routing

    def lin(*shape):
        return linear_times(*shape, rate, chip.sm_count, hbm, 2.0)

    parts = [lin(T, (h + 2 * kv) / t, h), lin(T, h, h / t), lin(T, 8, h)]
    parts += [
        tuple(local * x for x in lin(per_expert, 2 * f / t, h)),
        tuple(local * x for x in lin(per_expert, h, f / t)),
    ]
    got = layer_compute(s, lay, chip, m, native=False)
    assert got.linear == pytest.approx(sum(a + b for a, b in parts), rel=1e-12)


def test_memory_bound_gemms_pay_their_input_bytes():
    # a chip with compute to spare and little memory bandwidth: every GEMM is bound by its traffic
    chip = (
        '{bf16_tflops=100000, memory_gb=96, hbm_tb_s=0.1, scale_up="NVLink4", fast_paths=["bf16", "flash_attention"]}'
    )
    s = scenario("workload.model=llama3-8b", "parallelism.tp=1", "parallelism.dp=auto", f"cluster.chip={chip}")
    spec, m = s.cluster.chip_spec, s.workload.model_spec()
    hbm = spec.hbm_tb_s * 1e12 * spec.hbm_efficiency
    T, h, kv, f = 8192, 4096, 1024, 14336

    def traffic(a, b, c):  # A (a x c) and B (c x b) read in BF16, C (a x b) written in BF16
        return (2 * (a * c + c * b) + 2 * a * b) / hbm

    shapes = [(T, h + 2 * kv, h), (T, h, h), (T, 2 * f, h), (T, h, f)]
    expected = sum(traffic(a, b, c) + traffic(a, c, b) + traffic(c, b, a) for a, b, c in shapes)
    got = layer_compute(s, resolve_layout(s), spec, m, native=False)
    assert got.linear == pytest.approx(expected, rel=1e-12)


def test_an_empty_gemm_takes_no_time():
    assert gemm_time(0, 4096, 4096, 5e14, 132, 3e12, 2.0) == 0.0
    assert gemm_time(4096, 4096, 0, 5e14, 132, 3e12, 2.0) == 0.0


# ---------------------------------------------------------------- pipeline, expert parallel, optimizer


def test_pipeline_time_divides_the_bubble_by_the_chunks():
    assert pipeline_time([1.0, 1.0, 1.0, 1.0], 8, 2) == pytest.approx(8 + 1.5)
    assert bubble_time([1.0, 3.0, 2.0], 1) == pytest.approx(3.0)


@pytest.mark.parametrize("interleave", [1, 2])
def test_point_to_point_fill_and_drain_are_exposed_and_the_steady_state_overlaps_when_interleaved(interleave):
    s = scenario("workload.model=llama3-70b", "cluster.nodes=32", "parallelism.tp=8", "parallelism.pp=4",
                 "parallelism.dp=auto", "workload.global_batch=64", f"parallelism.interleave={interleave}")  # fmt: skip
    e = estimate(s)
    lay, links = links_of(s)
    send = sum(coll.p2p(8192 * 8192 * 2.0 / 8, rates_of(s, links.pp)))
    m, p = lay.micro_batches, 4
    steady = 2 * interleave * m * send * (KERNELS.comm_interference if interleave > 1 else 1.0)
    assert e.breakdown.pp_s == pytest.approx(2 * (p - 1) * send + steady, rel=1e-12)


@pytest.mark.parametrize("recompute,count", [("none", 4), ("full", 6)])
def test_expert_parallel_all_to_alls_per_layer(recompute, count):
    base = ("workload.model=mixtral-8x7b", "workload.seq_len=4096", "parallelism.tp=2", "parallelism.dp=auto",
            "cluster.nodes=16", f"workload.recompute={recompute}")  # fmt: skip
    for ep in (2, 8):
        s = scenario(*base, f"parallelism.ep={ep}")
        e = estimate(s)
        lay, links = links_of(s)
        one = sum(coll.all_to_all(4096 / 2 * 2 * 4096 * 2.0, rates_of(s, links.ep)))
        assert e.breakdown.ep_s == pytest.approx(lay.micro_batches * 32 * count * one, rel=1e-12)


@pytest.mark.parametrize("recompute,count", [("none", (10, 4)), ("full", (14, 6))])
def test_tensor_parallel_collective_counts_with_and_without_recompute(recompute, count):
    for sp, n in zip((True, False), count, strict=True):
        s = scenario(*LLAMA70, f"parallelism.sequence_parallel={str(sp).lower()}", f"workload.recompute={recompute}")
        e = estimate(s)
        lay, links = links_of(s)
        act = 8192 * 8192 * 2.0
        r = rates_of(s, links.tp)
        one = coll.reduce_scatter(act, r)[0] if sp else coll.all_reduce(act, r)[0]
        assert e.breakdown.tp_s == pytest.approx(lay.micro_batches * 80 * n * one, rel=1e-12)


def test_the_optimizer_streams_the_owned_dense_and_expert_parameters():
    s = scenario("workload.model=mixtral-8x7b", "workload.seq_len=4096", "parallelism.tp=2", "parallelism.ep=8",
                 "parallelism.dp=auto", "cluster.nodes=16", "parallelism.zero=1")  # fmt: skip
    e = estimate(s)
    lay = e.layout
    p = stage_params(s, lay, 0)
    chip = s.cluster.chip_spec
    owned = p.dense / lay.dp + p.experts / (lay.dp // 8)
    assert e.breakdown.optimizer_s == pytest.approx(owned * (26 + 4) / (chip.hbm_tb_s * 1e12 * 0.8), rel=1e-12)
    s0 = scenario("workload.model=llama3-8b", "parallelism.tp=2", "parallelism.dp=auto", "parallelism.zero=0",
                  "workload.grad_dtype=bf16")  # fmt: skip
    e0 = estimate(s0)
    whole = stage_params(s0, e0.layout, 0).total
    assert e0.breakdown.optimizer_s == pytest.approx(whole * (26 + 2) / (chip.hbm_tb_s * 1e12 * 0.8), rel=1e-12)


def test_zero_three_gathers_and_reduces_layer_by_layer_every_micro_batch():
    s = scenario("parallelism.tp=1", "parallelism.dp=auto", "parallelism.zero=3", "workload.global_batch=256",
                 "cluster.fabric.nic_gbps=25", "workload.grad_dtype=bf16")  # fmt: skip
    e = estimate(s)
    lay, links = links_of(s)
    r = rates_of(s, links.dp)
    params = stage_params(s, lay, 0).total
    L, m = 32, lay.micro_batches
    gather = coll.scale(coll.all_gather(params * 2.0 / L, r), L)
    reduce = coll.scale(coll.reduce_scatter(params * 2.0 / L, r), L)
    mb = e.breakdown.compute_s / m
    st = KERNELS.comm_interference

    def exposed(c, w):
        return max(0.0, c - w) + st * min(c, w)

    fwd = exposed(sum(gather), mb / 3)
    both = sum(gather) + sum(reduce)
    bwd = both / L + exposed(both * (1 - 1 / L), mb * 2 / 3)
    assert e.breakdown.dp_s == pytest.approx(m * (fwd + bwd), rel=1e-12)


def test_zero_two_gathers_before_each_forward_and_reduces_after_each_backward_layer_by_layer():
    """PyTorch FSDP's SHARD_GRAD_OP: weights kept from a micro-batch's forward to its backward, not longer."""
    s = scenario("parallelism.tp=1", "parallelism.dp=auto", "parallelism.zero=2", "workload.global_batch=256",
                 "cluster.fabric.nic_gbps=25", "workload.grad_dtype=fp32")  # fmt: skip
    e = estimate(s)
    lay, links = links_of(s)
    r = rates_of(s, links.dp)
    params = stage_params(s, lay, 0).total
    L, m = 32, lay.micro_batches
    gather = L * sum(coll.all_gather(params * 2.0 / L, r))
    reduce = L * sum(coll.reduce_scatter(params * 4.0 / L, r))
    mb = e.breakdown.compute_s / m
    st = KERNELS.comm_interference

    def exposed(c, w):
        return max(0.0, c - w) + st * min(c, w)

    per_mb = exposed(gather, mb / 3) + reduce / L + exposed(reduce * (1 - 1 / L), mb * 2 / 3)
    assert m > 1 and e.breakdown.dp_s == pytest.approx(m * per_mb, rel=1e-12)


def test_generality_is_one_when_every_op_has_a_fast_path_whatever_stage_paces_the_pipeline():
    s = scenario("workload.model=llama3-70b", "cluster.nodes=32", "parallelism.tp=8", "parallelism.pp=4",
                 "parallelism.dp=auto", "workload.global_batch=64", "parallelism.stage_layers=[22, 22, 22, 14]")  # fmt: skip
    e = estimate(s)
    assert e.critical_stage == 0
    assert e.factors.generality == 1.0


def test_a_job_cut_off_from_its_peers_reports_no_cluster_efficiency():
    s = scenario("parallelism.tp=2", "parallelism.dp=auto")
    lay, links = links_of(s)
    dead = replace(links, dp=GroupLinks(32, 8, 4, 400e9, 0.0, True, False))
    e = estimate_step(s, lay, dead)
    assert e.blocked and e.tokens_per_s == 0.0
    assert e.factors.cluster == 0.0
    assert e.as_dict()["step_time_s"] is None


def test_step_links_follow_the_placement():
    s = scenario("parallelism.tp=8", "parallelism.dp=auto")
    lay = resolve_layout(s)
    index = index_for(s.cluster, [])
    order = np.arange(lay.chips).reshape(8, 8).T.ravel()  # rank r on server r % 8: tp crosses servers
    placed = step_links(index, lay, order)
    assert placed.tp.n_nodes == 8 and step_links(index, lay).tp.n_nodes == 1
    assert placed.dp.n_nodes == 1 and step_links(index, lay).dp.n_nodes == 8


# ---------------------------------------------------------------- what an estimate reports


def test_an_estimate_as_data_names_every_figure():
    e = estimate(scenario("parallelism.tp=2", "parallelism.pp=2", "parallelism.dp=auto"))
    d = e.as_dict()
    assert d["step_time_s"] == e.step_time_s and d["mfu"] == e.mfu and d["fits"] is True
    assert d["memory_capacity_gb"] == 80.0 and d["memory_over_gb"] == 0.0 and d["fit_hints"] == []
    assert d["memory_gb_per_stage"] == [round(m.total / GB, 3) for m in e.stage_memory]
    assert d["critical_stage"] == e.critical_stage == 1
    assert d["factors"] == {"generality": e.factors.generality, "chip": e.factors.chip, "node": e.factors.node,
                            "cluster": e.factors.cluster, "stability": 1.0}  # fmt: skip
    assert d["memory_gb"] == {"weights": e.memory.weights / GB, "gradients": e.memory.gradients / GB,
                              "optimizer": e.memory.optimizer / GB, "activations": e.memory.activations / GB,
                              "overhead": 3.0, "total": e.memory.total / GB}  # fmt: skip


def test_the_last_stage_holds_one_micro_batch_and_its_logits_both_growing_with_the_micro_batch():
    one = scenario("parallelism.tp=2", "parallelism.pp=2", "parallelism.dp=auto", "workload.micro_batch=1")
    two = scenario("parallelism.tp=2", "parallelism.pp=2", "parallelism.dp=auto", "workload.micro_batch=2")
    last = [memory_per_stage(x, resolve_layout(x))[-1].activations for x in (one, two)]
    assert last[1] == pytest.approx(2 * last[0], rel=1e-12)
    logits = 4 * 8192 * 128256 / 2  # FP32 logits of one micro-batch, vocabulary split over tp
    per_layer = (last[0] - logits) / 16
    first = memory_per_stage(one, resolve_layout(one))[0].activations
    assert first == pytest.approx(per_layer * 16 * 2, rel=1e-12)  # two micro-batches in flight, no logits


OVER = ("workload.model=llama3-8b", "parallelism.tp=8", "parallelism.dp=auto", "workload.micro_batch=2",
        "workload.global_batch=256", "workload.recompute=none", "parallelism.sequence_parallel=false",
        "workload.attention=unfused", "parallelism.zero=0")  # fmt: skip


def worst_gb(*overrides: str) -> float:
    s = scenario(*overrides)
    return max(m.total for m in memory_per_stage(s, resolve_layout(s))) / GB


def test_out_of_memory_names_the_worst_stage_how_far_over_and_each_single_change_that_fits():
    s = scenario(*OVER)
    [p] = memory_problems(s, resolve_layout(s))
    need = worst_gb(*OVER)
    assert p.path == "cluster.chip"
    assert p.message.startswith(f"out of memory: the job needs {need:.1f} GB per chip on every chip but ")
    assert f"has 80 GB, {need - 80:.1f} GB over" in p.message
    candidates = [
        ('workload.recompute = "pointwise"', "workload.recompute=pointwise"),
        ('workload.recompute = "selective"', "workload.recompute=selective"),
        ('workload.recompute = "full"', "workload.recompute=full"),
        ("parallelism.zero = 1", "parallelism.zero=1"),
        ('workload.grad_dtype = "bf16"', "workload.grad_dtype=bf16"),
        ("workload.micro_batch = 1", "workload.micro_batch=1"),
        ("parallelism.sequence_parallel = true", "parallelism.sequence_parallel=true"),
    ]
    expected = [f"{text} ({worst_gb(*OVER, change):.1f} GB)" for text, change in candidates]
    expected = [h for h in expected if float(h.split("(")[1].split(" GB")[0]) <= 80]
    assert len(expected) == 7  # 0.6 GB over: every single change fits
    hints = p.message.split("would fit with ")[1].split("; or ")
    assert hints == [*expected, f"more tp or pp, or a chip with at least {need:.0f} GB"]
    fits = scenario("workload.model=llama3-8b", "parallelism.tp=8", "parallelism.dp=auto")
    assert memory_problems(fits, resolve_layout(fits)) == []
    staged = scenario(*OVER, "parallelism.pp=2", "parallelism.tp=2", "workload.micro_batch=4")
    assert " per chip on stage 0 of 2 but " in memory_problems(staged, resolve_layout(staged))[0].message


def test_all_to_all_over_a_dead_link_never_finishes_and_a_byte_still_pays_latency():
    g = GroupLinks(16, 4, 4, 400e9, 0.0, True, False)
    r = LinkRates(g, 0.8, 0.9, 2e-6, 5e-6)
    assert coll.all_to_all(1e9, r)[1] == math.inf
    alive = LinkRates(replace(g, out_bw=50e9), 0.8, 0.9, 2e-6, 5e-6)
    inside, across = coll.all_to_all(1.0, alive)
    assert inside == pytest.approx(3 / 16 / (0.8 * 400e9) + 3 * 2e-6)
    assert across == pytest.approx(12 / 16 / (0.9 * 50e9) + 3 * 5e-6)


def test_collectives_in_pieces_pay_the_latency_of_each_piece():
    g = GroupLinks(8, 8, 1, math.inf, 50e9, True, False)
    r = LinkRates(g, 0.8, 1.0, 0.0, 5e-6)
    one = coll.reduce_scatter(1e9, r)[1]
    ten = coll.in_pieces(coll.reduce_scatter, 1e9, r, 10)[1]
    assert ten - one == pytest.approx(9 * 7 * 5e-6, rel=1e-9)
    assert coll.in_pieces(coll.reduce_scatter, 1e9, r, 0) == coll.reduce_scatter(1e9, r)


# ---------------------------------------------------------------- notes, windows and placements


def test_notes_name_what_the_chip_lacks_and_nothing_else():
    assert (
        estimate(scenario('cluster.chip="A100-SXM-80GB"', 'cluster.scale_up="NVLink3"', "parallelism.dp=auto")).notes
        == ()
    )
    no_flash = '{bf16_tflops=500, memory_gb=96, hbm_tb_s=4, scale_up="NVLink4", fast_paths=["bf16"]}'
    flash = estimate(scenario(f"cluster.chip={no_flash}", "parallelism.dp=auto"))
    assert flash.notes == ("custom chip has no fused attention: the score matrix goes through memory",)
    unfused = estimate(scenario(f"cluster.chip={no_flash}", "parallelism.dp=auto", "workload.attention=unfused"))
    assert unfused.notes == ()
    lay, links = links_of(scenario("parallelism.tp=2", "parallelism.dp=auto"))
    dead = replace(links, dp=GroupLinks(32, 8, 4, 400e9, 0.0, True, False))
    blocked = estimate_step(scenario("parallelism.tp=2", "parallelism.dp=auto"), lay, dead)
    assert blocked.notes == ("a chip of the job has no working path to its peers: the job cannot run",)


@pytest.mark.parametrize("recompute,share", [("none", 2 / 3), ("full", 0.6)])
def test_gradients_hide_under_the_last_backward_which_is_a_larger_share_without_recompute(recompute, share):
    s = scenario("parallelism.tp=8", "parallelism.pp=1", "parallelism.dp=auto", "parallelism.zero=0",
                 "cluster.fabric.nic_gbps=25", "workload.global_batch=64", f"workload.recompute={recompute}")  # fmt: skip
    e = estimate(s)
    lay, links = links_of(s)
    params = stage_params(s, lay, 0).total
    buckets = math.ceil(params / 40e6)
    comm = buckets * sum(coll.all_reduce(params * 4.0 / buckets, rates_of(s, links.dp)))
    window = e.breakdown.compute_s / lay.micro_batches * share
    rest = comm * (1 - 1 / buckets)
    expected = comm / buckets + max(0.0, rest - window) + KERNELS.comm_interference * min(rest, window)
    assert e.breakdown.dp_s == pytest.approx(expected, rel=1e-12)


def test_zero_three_on_one_layer_stages_still_gathers_per_layer():
    s = scenario("workload.model=llama3-8b", "workload.layers=4", "cluster.nodes=16", "parallelism.tp=8",
                 "parallelism.pp=4", "parallelism.dp=auto", "parallelism.zero=3", "workload.global_batch=16",
                 "cluster.fabric.nic_gbps=25")  # fmt: skip
    e = estimate(s)
    lay, links = links_of(s)
    assert lay.stage_layers == (1, 1, 1, 1) and lay.dp == 4
    r = rates_of(s, links.dp)
    params = stage_params(s, lay, e.critical_stage).total
    gather, reduce = sum(coll.all_gather(params * 2.0, r)), sum(coll.reduce_scatter(params * 4.0, r))
    mb = e.breakdown.compute_s / lay.micro_batches
    st = KERNELS.comm_interference
    fwd = max(0.0, gather - mb / 3) + st * min(gather, mb / 3)
    bwd = gather + reduce  # one layer: the whole collective is the last piece
    assert e.breakdown.dp_s > 0
    assert e.breakdown.dp_s == pytest.approx(lay.micro_batches * (fwd + bwd), rel=1e-12)


def test_expert_groups_follow_the_placement():
    s = scenario("workload.model=mixtral-8x7b", "workload.seq_len=4096", "parallelism.tp=2", "parallelism.ep=4",
                 "parallelism.dp=auto")  # fmt: skip
    lay = resolve_layout(s)
    index = index_for(s.cluster, [])
    order = np.arange(lay.chips).reshape(8, 8).T.ravel()
    assert step_links(index, lay).ep.n_nodes == 1
    assert step_links(index, lay, order).ep.n_nodes == 4


def test_unfused_score_matrix_memory_shrinks_with_context_parallelism():
    base = ("parallelism.tp=8", "parallelism.dp=auto", "workload.attention=unfused", "workload.recompute=none",
            "workload.seq_len=16384")  # fmt: skip
    one, two = scenario(*base), scenario(*base, "parallelism.cp=2")
    from factorysim.perf.memory import activation_bytes_per_layer

    scores = 2.0 * 32 * 16384 * 16384 / 8  # softmax output per layer: 2 B x heads x s x s / tp
    a1 = activation_bytes_per_layer(one, resolve_layout(one))
    a2 = activation_bytes_per_layer(two, resolve_layout(two))
    assert a1 - 2 * a2 == pytest.approx(scores / 2, rel=1e-9)  # each rank: half the queries against half the keys


# ---------------------------------------------------------------- edges


def test_an_in_network_collective_over_a_dead_link_never_finishes_and_a_byte_still_pays_latency():
    dead = LinkRates(GroupLinks(8, 8, 1, math.inf, 0.0, True, False), 0.8, 0.9, 2e-6, 5e-6, False, True, 0.6, 0.7)
    assert coll.all_reduce(1e9, dead)[1] == math.inf
    g = GroupLinks(2, 2, 1, math.inf, 50e9, True, False)
    assert coll.p2p(1.0, LinkRates(g, 0.8, 0.9, 2e-6, 5e-6)) == pytest.approx((0.0, 1 / (0.9 * 50e9) + 5e-6))


def test_a_chip_that_stops_stops_the_step():
    s = scenario("parallelism.tp=2", "parallelism.pp=2", "parallelism.dp=auto")
    lay, links = links_of(s)
    e = estimate_step(s, lay, replace(links, slowest_speed=0.0))
    assert e.breakdown.straggler_s == math.inf and e.blocked


def test_a_job_whose_servers_cannot_talk_inside_reports_no_node_or_cluster_efficiency():
    s = scenario("parallelism.tp=2", "parallelism.dp=auto")
    lay, links = links_of(s)
    dead = replace(links, tp=GroupLinks(2, 1, 2, 0.0, math.inf, False, False))
    e = estimate_step(s, lay, dead)
    assert e.blocked and e.factors.cluster == 0.0 and e.factors.node == 0.0


def test_two_stage_pipelines_send_activations_too():
    s = scenario("parallelism.tp=2", "parallelism.pp=2", "parallelism.dp=auto")
    e = estimate(s)
    lay, links = links_of(s)
    send = sum(coll.p2p(8192 * 4096 * 2.0 / 2, rates_of(s, links.pp)))
    assert e.breakdown.pp_s == pytest.approx((2 * 1 + 2 * lay.micro_batches) * send, rel=1e-12)


def test_context_parallel_gradients_reduce_over_dp_times_cp_even_with_two_cp_ranks():
    base = ("parallelism.tp=8", "parallelism.dp=auto", "parallelism.zero=0", "workload.global_batch=64",
            "cluster.fabric.nic_gbps=25", "workload.recompute=full")  # fmt: skip
    e = estimate(scenario(*base, "parallelism.cp=2"))
    lay, links = links_of(scenario(*base, "parallelism.cp=2"))
    s = scenario(*base, "parallelism.cp=2")
    group = links.dp.resized(lay.dp * 2, links.dp.n_nodes * links.cp.n_nodes)
    params = stage_params(s, lay, 0).total
    buckets = math.ceil(params / 40e6)
    comm = buckets * sum(coll.all_reduce(params * 4.0 / buckets, rates_of(s, group)))
    window = e.breakdown.compute_s / lay.micro_batches * 0.6
    rest = comm * (1 - 1 / buckets)
    expected = comm / buckets + max(0.0, rest - window) + KERNELS.comm_interference * min(rest, window)
    assert e.breakdown.dp_s == pytest.approx(expected, rel=1e-12)


def test_ring_attention_with_full_recompute_passes_the_forward_blocks_twice():
    s = scenario("workload.seq_len=65536", "parallelism.cp=8", "parallelism.tp=8", "parallelism.dp=auto",
                 "workload.global_batch=8", "workload.recompute=full", "cluster.fabric.nic_gbps=50")  # fmt: skip
    e = estimate(s)
    lay, links = links_of(s)
    model = s.workload.model_spec()
    send = sum(coll.p2p(2 * (65536 / 8) * model.kv_dim * 2.0 / 8, rates_of(s, links.cp)))
    work = layer_compute(s, lay, s.cluster.chip_spec, model, native=False)
    st = KERNELS.comm_interference

    def exposed(c, w):
        return max(0.0, c - w) + st * min(c, w)

    per_layer = 7 * (2 * exposed(send, work.attention_fwd / 8) + exposed(2 * send, work.attention_bwd / 8))
    assert e.breakdown.cp_s == pytest.approx(lay.micro_batches * 32 * per_layer, rel=1e-12)


def test_a_model_smaller_than_one_bucket_reduces_its_gradients_in_one_piece():
    s = custom_scenario("workload.layers=2", "workload.hidden=1024", "workload.heads=8", "workload.vocab=8192",
                        "workload.seq_len=2048", "parallelism.tp=8", "parallelism.dp=auto", "parallelism.zero=0",
                        "cluster.fabric.nic_gbps=25", "workload.global_batch=64")  # fmt: skip
    e = estimate(s)
    lay, links = links_of(s)
    params = stage_params(s, lay, 0).total
    assert params < 40e6
    comm = sum(coll.all_reduce(params * 4.0, rates_of(s, links.dp)))
    assert comm > 0 and e.breakdown.dp_s == pytest.approx(comm, rel=1e-12)  # the only bucket is the last


def test_an_estimate_as_data_keeps_its_documented_keys():
    e = estimate(scenario("parallelism.tp=2", "parallelism.pp=2", "parallelism.dp=auto"))
    d = e.as_dict()
    assert d["tokens_per_s"] == e.tokens_per_s and d["memory_gb_per_chip"] == e.memory.total / GB
    assert d["memory_worst_stage"] == e.memory.stage and d["peak_pflops"] == pytest.approx(64 * 989 / 1000)
    assert d["layout"]["stage_layers"] == (16, 16) and d["layout"]["dp"] == 16


def test_the_zero_hint_appears_whenever_the_optimizer_can_shard():
    # one replica of two context-parallel ranks: the optimizer can still shard over the pair
    base = ("cluster.nodes=2", "workload.model=llama3-8b", "parallelism.tp=8", "parallelism.cp=2", "parallelism.dp=auto",
            "workload.seq_len=32768", "workload.global_batch=4", "parallelism.zero=0")  # fmt: skip
    need = {zero: worst_gb(*base, f"parallelism.zero={zero}") for zero in (0, 1)}
    assert need[1] < need[0]
    chip = f'{{bf16_tflops=989, memory_gb={(need[0] + need[1]) / 2:.3f}, hbm_tb_s=3.35, scale_up="NVLink4"}}'
    s = scenario(*base, f"cluster.chip={chip}")
    assert resolve_layout(s).dp == 1
    assert f"parallelism.zero = 1 ({need[1]:.1f} GB)" in memory_problems(s, resolve_layout(s))[0].message


def test_empty_collectives_cost_nothing():
    r = LinkRates(GroupLinks(16, 2, 8, 400e9, 50e9, True, False), 0.8, 0.9, 2e-6, 5e-6)
    for op in (coll.all_reduce, coll.reduce_scatter, coll.all_gather):
        assert op(0.0, r) == (0.0, 0.0)


SLOW_MEMORY = (
    '{bf16_tflops=100000, memory_gb=96, hbm_tb_s=0.1, scale_up="NVLink4", fast_paths=["bf16", "flash_attention"]}'
)


def test_on_a_chip_starved_for_bandwidth_the_output_layer_and_a_native_fp8_path_pay_their_bytes():
    s = scenario("workload.model=llama3-8b", "parallelism.tp=1", "parallelism.dp=auto", f"cluster.chip={SLOW_MEMORY}",
                 "workload.precision=fp8")  # fmt: skip
    spec, m, lay = s.cluster.chip_spec, s.workload.model_spec(), resolve_layout(s)
    hbm = spec.hbm_tb_s * 1e12 * spec.hbm_efficiency
    T, h, V = 8192, 4096, 128256

    def traffic(a, b, c, in_bytes):
        return (in_bytes * (a * c + c * b) + 2 * a * b) / hbm

    logits = traffic(T, V, h, 2) + traffic(T, h, V, 2) + traffic(h, V, T, 2) + T * 16.0 * V / hbm
    assert logits_compute(s, lay, spec, m) == pytest.approx(logits, rel=1e-12)
    shapes = [(T, h + 2 * 1024, h), (T, h, h), (T, 2 * 14336, h), (T, h, 14336)]
    native = sum(traffic(a, b, c, 1) + traffic(a, c, b, 1) + traffic(c, b, a, 1) for a, b, c in shapes)
    assert layer_compute(s, lay, spec, m, native=True).linear == pytest.approx(native, rel=1e-12)


def test_an_estimate_reports_the_delivered_flops():
    e = estimate(scenario("parallelism.tp=2", "parallelism.dp=auto"))
    assert e.as_dict()["delivered_pflops"] == pytest.approx(e.peak_flops * e.factors.product / 1e15, rel=1e-12)
