"""Memory per chip on each pipeline stage, held to hand-written formulas.

Each formula is written out here from the layout rules (Megatron-LM's mixed-precision Adam and distributed
optimizer, Korthikanti et al. 2022's activation count without dropout, 1F1B and interleaved in-flight
micro-batches), independently of factorysim's code.
"""

from __future__ import annotations

import pytest

from factorysim import estimate
from factorysim.perf.memory import (
    RUNTIME_OVERHEAD_GB,
    activation_bytes_per_layer,
    fit_hints,
    memory_per_chip,
    memory_per_stage,
    stage_params,
)
from factorysim.perf.pipeline import chunk_layers, held_layers, in_flight
from factorysim.scenario import ScenarioError, resolve_layout

from .conftest import custom_scenario, scenario

GB = 1e9

# A GPT-style shape with round numbers: h = 1024, 16 heads, 8 layers, vocab 32000, plain GELU MLP of 4h.
GPT = ("workload.layers=8", "workload.hidden=1024", "workload.heads=16", "workload.vocab=32000",
       "workload.seq_len=2048", "workload.global_batch=64", "workload.recompute=none")  # fmt: skip
LLAMA = ("workload.model=llama3-70b", "workload.seq_len=8192", "workload.global_batch=64", "workload.recompute=none")


def gpt(*extra: str):
    return custom_scenario(*GPT, *extra)


def layer_params_gpt(h: int) -> int:
    return 12 * h * h + 4 * h  # attention 4h², MLP 8h², two norms (weight and bias)


# ---------------------------------------------------------------- activations per layer


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_unfused_activations_without_sequence_parallelism_are_korthikanti_less_dropout(tp):
    s = gpt(f"parallelism.tp={tp}", "parallelism.sequence_parallel=false", "workload.attention=unfused")
    lay = resolve_layout(s)
    sb, h, a = 2048 * 1, 1024, 16
    # Korthikanti Table 2, no parallel sequence: sbh(10 + 24/t + 5as/ht); without dropout masks (2 of the 10)
    # and the attention-dropout mask and output (3 of the 5): sbh(8 + 24/t) + 2·a·s²·b/t
    expected = sb * h * (8 + 24 / tp) + 2 * a * 2048 * sb / tp
    assert activation_bytes_per_layer(s, lay) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("tp", [2, 4, 8])
def test_sequence_parallelism_shards_everything_over_tp(tp):
    s = gpt(f"parallelism.tp={tp}", "parallelism.sequence_parallel=true", "workload.attention=unfused")
    lay = resolve_layout(s)
    sb, h, a = 2048, 1024, 16
    assert activation_bytes_per_layer(s, lay) == pytest.approx((sb * h * 32 + 2 * a * 2048 * sb) / tp, rel=1e-12)


def test_flash_attention_keeps_only_the_log_sum_exp_of_the_scores():
    s = gpt("parallelism.tp=4", "workload.attention=flash")
    lay = resolve_layout(s)
    sb, h, a = 2048, 1024, 16
    assert activation_bytes_per_layer(s, lay) == pytest.approx((sb * h * 32 + 4 * a * sb) / 4, rel=1e-12)


def test_selective_recompute_drops_the_unfused_score_matrix():
    s = gpt("parallelism.tp=4", "workload.attention=unfused", "workload.recompute=selective")
    assert activation_bytes_per_layer(s, resolve_layout(s)) == pytest.approx(2048 * 1024 * 32 / 4, rel=1e-12)


@pytest.mark.parametrize("sp,shard", [(True, 4), (False, 1)])
def test_full_recompute_keeps_each_layers_input(sp, shard):
    s = gpt("parallelism.tp=4", f"parallelism.sequence_parallel={str(sp).lower()}", "workload.recompute=full")
    assert activation_bytes_per_layer(s, resolve_layout(s)) == pytest.approx(2 * 2048 * 1024 / shard, rel=1e-12)


def test_gqa_and_swiglu_activations_per_layer():
    s = scenario(*LLAMA, "parallelism.tp=8", "parallelism.pp=4", "parallelism.dp=auto")
    lay = resolve_layout(s)
    h, kv, f, a, t, tokens = 8192, 1024, 28672, 64, 8, 8192
    # norms and GEMM inputs 8h; Q 2h, K and V 2kv each, attention output 2h, log-sum-exp 4a; SwiGLU: gate and up
    # outputs 4f, the down projection's input 2f
    per_token = (8 * h + 2 * h + 4 * kv + 2 * h + 4 * a + 6 * f) / t
    assert activation_bytes_per_layer(s, lay) == pytest.approx(tokens * per_token, rel=1e-12)


def test_fp8_keeps_gemm_inputs_in_one_byte():
    base = (*LLAMA, "parallelism.tp=8", "parallelism.pp=4", "parallelism.dp=auto")
    bf16 = scenario(*base)
    fp8 = scenario(*base, "workload.precision=fp8")
    lay = resolve_layout(bf16)
    h, f, t = 8192, 28672, 8
    # QKV and MLP inputs (h each) and the down projection's input (f) shrink by a byte; the projection keeps an
    # FP8 copy of the attention output (+h)
    saved = 8192 * (h + h + f - h) / t
    assert activation_bytes_per_layer(bf16, lay) - activation_bytes_per_layer(fp8, lay) == pytest.approx(saved)


def test_context_parallelism_splits_the_tokens():
    one = gpt("parallelism.tp=2", "workload.recompute=full")
    two = gpt("parallelism.tp=2", "parallelism.cp=2", "workload.recompute=full")
    assert activation_bytes_per_layer(two, resolve_layout(two)) == pytest.approx(
        activation_bytes_per_layer(one, resolve_layout(one)) / 2
    )


# ---------------------------------------------------------------- weights, gradients, optimizer


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
@pytest.mark.parametrize("grad", ["fp32", "bf16"])
def test_model_state_per_zero_stage_and_gradient_dtype(zero, grad):
    s = gpt("parallelism.tp=2", "parallelism.pp=2", f"parallelism.zero={zero}", f"workload.grad_dtype={grad}")
    lay = resolve_layout(s)  # 64 chips: dp 16
    h, V, d = 1024, 32000, 16
    first = (4 * layer_params_gpt(h) + V * h) / 2  # 4 layers and the input embedding, over tp = 2
    g = 4 if grad == "fp32" else 2
    stage = memory_per_stage(s, lay)[0]
    weights = 2 * first / (d if zero >= 3 else 1)
    if zero >= 3:  # the layer at work and the one being prefetched, whole
        weights += 2 * 2 * layer_params_gpt(h) / 2
    assert stage.weights == pytest.approx(weights, rel=1e-12)
    assert stage.gradients == pytest.approx(g * first / (d if zero >= 2 else 1), rel=1e-12)
    assert stage.optimizer == pytest.approx(12 * first / (d if zero >= 1 else 1), rel=1e-12)
    assert stage.overhead == RUNTIME_OVERHEAD_GB * GB


def test_distributed_optimizer_shards_over_data_and_context_parallel_ranks():
    s = gpt("parallelism.tp=2", "parallelism.cp=4", "parallelism.zero=1")
    lay = resolve_layout(s)  # 64 chips: dp 8, cp 4
    params = stage_params(s, lay, 0).total
    assert memory_per_stage(s, lay)[0].optimizer == pytest.approx(12 * params / (8 * 4), rel=1e-12)


def test_expert_weights_shard_over_ep_and_their_optimizer_over_the_expert_data_parallel_group():
    s = scenario("workload.model=mixtral-8x7b", "workload.seq_len=4096", "parallelism.tp=2", "parallelism.ep=8",
                 "parallelism.dp=auto", "cluster.nodes=16", "parallelism.zero=1")  # fmt: skip
    lay = resolve_layout(s)  # 128 chips: dp 64
    m = s.workload.model_spec()
    p = stage_params(s, lay, 0)
    assert p.experts == pytest.approx(m.layers * m.experts * m.mlp_params() / 8 / 2)
    opt = memory_per_stage(s, lay)[0].optimizer
    assert opt == pytest.approx(12 * (p.dense / 64 + p.experts / 8), rel=1e-12)


def test_output_layer_sits_on_the_last_stage_and_tied_embeddings_count_once_without_a_pipeline():
    untied = gpt("parallelism.tp=1", "parallelism.pp=2")
    lay = resolve_layout(untied)
    h, V = 1024, 32000
    assert stage_params(untied, lay, 0).total == 4 * layer_params_gpt(h) + V * h
    assert stage_params(untied, lay, 1).total == 4 * layer_params_gpt(h) + V * h
    tied = gpt("parallelism.tp=1", "workload.tied_embeddings=true")
    assert stage_params(tied, resolve_layout(tied), 0).total == 8 * layer_params_gpt(h) + V * h
    one = gpt("parallelism.tp=1")
    assert stage_params(one, resolve_layout(one), 0).total == 8 * layer_params_gpt(h) + 2 * V * h


# ---------------------------------------------------------------- stages


def test_first_stage_holds_pp_micro_batches_and_each_later_stage_one_fewer():
    s = gpt("parallelism.tp=1", "parallelism.pp=4", "workload.recompute=full")
    lay = resolve_layout(s)  # dp 16, 4 micro-batches of 1
    per_layer = activation_bytes_per_layer(s, lay)
    one_layer_whole = activation_bytes_per_layer(s, lay, recompute="none")
    logits = 4 * 2048 * 32000
    stages = memory_per_stage(s, lay)
    for i, stage in enumerate(stages):
        expected = per_layer * 2 * (4 - i) + one_layer_whole + (logits if i == 3 else 0)
        assert stage.activations == pytest.approx(expected, rel=1e-12), i
    # with two small layers per stage the last stage's FP32 logits outweigh the first stage's extra micro-batches
    assert memory_per_chip(s, lay).stage == 3
    big = scenario(*LLAMA, "parallelism.tp=8", "parallelism.pp=4", "parallelism.dp=auto")
    assert memory_per_chip(big, resolve_layout(big)).stage == 0


def test_in_flight_micro_batches_follow_1f1b_and_megatrons_interleaved_warmup():
    assert [in_flight(i, 4, 8) for i in range(4)] == [4, 3, 2, 1]
    assert [in_flight(i, 4, 2) for i in range(4)] == [2, 2, 2, 1]
    # interleaved: 2(p - i - 1) + (v - 1)p + 1 chunks, each 1/v of the stage
    assert in_flight(0, 4, 8, 2) == pytest.approx((6 + 4 + 1) / 2)
    assert in_flight(3, 4, 8, 2) == pytest.approx((0 + 4 + 1) / 2)
    # the first stage: p(1 + (p - 1)/(p v)), Korthikanti et al. 2022
    for p, v in [(4, 2), (8, 4), (16, 8)]:
        assert in_flight(0, p, 64, v) == pytest.approx(p * (1 + (p - 1) / (p * v)))
    assert in_flight(0, 4, 1, 2) == 1.0  # never more than the micro-batches of the step


def test_uneven_stages_set_each_stages_layers_and_memory():
    s = scenario(*LLAMA, "workload.model=llama3-405b", "cluster.nodes=16", "parallelism.tp=8", "parallelism.pp=16",
                 "parallelism.first_stage_layers=7", "parallelism.last_stage_layers=7", "parallelism.dp=auto",
                 "workload.global_batch=16", "workload.recompute=full")  # fmt: skip
    lay = resolve_layout(s)
    assert lay.stage_layers == (7,) + (8,) * 14 + (7,)
    stages = memory_per_stage(s, lay)
    per_layer = activation_bytes_per_layer(s, lay)
    assert stages[1].activations - stages[2].activations == pytest.approx(per_layer * 8)  # 15 vs 14 in flight


def test_a_job_that_does_not_fit_is_still_estimated_and_says_how_far_off_it_is():
    s = scenario("workload.model=llama3-70b", "parallelism.tp=1", "parallelism.dp=auto")
    e = estimate(s)
    assert not e.fits
    assert e.step_time_s > 0 and e.mfu > 0
    assert e.memory_over == pytest.approx(e.memory.total - 80e9)
    assert e.as_dict()["fits"] is False
    assert any("more tp or pp" in h for h in e.fit_hints)


def test_hints_name_single_changes_that_fit_with_the_memory_they_need():
    s = scenario("workload.model=llama3-70b", "parallelism.tp=8", "parallelism.pp=1", "parallelism.dp=auto",
                 "workload.recompute=none")  # fmt: skip
    lay = resolve_layout(s)
    hints = fit_hints(s, lay)
    full = [h for h in hints if h.startswith('workload.recompute = "full"')]
    assert full, hints
    need = float(full[0].split("(")[1].split(" GB")[0])
    assert need <= 80


def test_sharding_the_model_state_saves_what_torchtitan_measured_from_fsdp8_to_fsdp128():
    """torchtitan benchmarks/llama3_h100_202412: Llama 3.1 8B, local batch 2 at 8K tokens, peak memory 82.4 GiB on
    FSDP8 and 67.0 GiB on FSDP128. Activations and allocator overheads are the same on both; the difference is
    the BF16 weights, FP32 gradients and Adam state sharded 16 times thinner."""
    base = ("workload.model=llama3-8b", "parallelism.tp=1", "parallelism.zero=3", "workload.micro_batch=2",
            "workload.recompute=none", "workload.attention=flash2")  # fmt: skip
    small = scenario(*base, "cluster.nodes=1", "parallelism.dp=8", "workload.global_batch=16")
    large = scenario(*base, "cluster.nodes=16", "parallelism.dp=128", "workload.global_batch=256")
    saved = memory_per_chip(small, resolve_layout(small)).total - memory_per_chip(large, resolve_layout(large)).total
    assert saved / 2**30 == pytest.approx(82.4 - 67.0, rel=0.05)


@pytest.mark.parametrize(("cp", "seq", "published_gib"), [(1, 32768, 83.9), (8, 262144, 84.5)])
def test_llama3_8b_at_long_context_needs_what_torchtitan_measured_less_the_allocators_reserve(cp, seq, published_gib):
    """torchtitan benchmarks/llama3_h100_202412 Table 2: Llama 3.1 8B on 8 H100, FSDP 8/cp x CP cp, local batch 1,
    full activation checkpointing, torch.compile on the blocks, Float8 linears, loss in eager PyTorch: peak memory
    83.9 GiB at 32K tokens (CP 1) and 84.5 GiB at 256K (CP 8). The model counts what tensors hold, not the caching
    allocator's reserve over them, so it lands below, within 10 %; the tokens per rank are the same in both rows,
    and so is the model's figure."""
    s = scenario("workload.model=llama3-8b", "cluster.nodes=1", "parallelism.tp=1", f"parallelism.cp={cp}",
                 f"parallelism.dp={8 // cp}", "parallelism.zero=3", "workload.micro_batch=1",
                 f"workload.global_batch={8 // cp}", f"workload.seq_len={seq}", "workload.recompute=full",
                 "workload.attention=flash2", "workload.grad_dtype=bf16", "workload.precision=fp8",
                 "workload.loss=eager")  # fmt: skip
    need = memory_per_chip(s, resolve_layout(s)).total / 2**30
    assert published_gib * 0.9 <= need < published_gib
    fused = s.model_copy(update={"workload": s.workload.model_copy(update={"loss": "fused"})})
    saved = need - memory_per_chip(fused, resolve_layout(fused)).total / 2**30
    assert saved == pytest.approx(32768 * 128256 * (12 - 4) / 2**30, rel=1e-9)  # the eager loss's FP32 buffers


# ---------------------------------------------------------------- chunks of unequal layers (Llama 3's pipeline)


META = ("workload.model=llama3-405b", "cluster.nodes=256", "parallelism.tp=8", "parallelism.pp=16",
        "parallelism.interleave=8", "parallelism.first_stage_layers=7", "parallelism.last_stage_layers=7",
        "parallelism.dp=auto", "workload.recompute=none")  # fmt: skip


def test_a_stage_one_layer_short_gives_its_outer_chunk_the_embedding_or_the_output_layer_alone():
    s = scenario(*META, "workload.global_batch=256")
    lay = resolve_layout(s)
    assert lay.chunk_layers[0] == (0, 1, 1, 1, 1, 1, 1, 1)  # the embedding alone in the first chunk
    assert lay.chunk_layers[15] == (1, 1, 1, 1, 1, 1, 1, 0)  # the output layer and the loss alone in the last
    assert set(lay.chunk_layers[1:15]) == {(1,) * 8}
    assert chunk_layers((10, 9, 11), 4) == ((2, 2, 3, 3), (3, 2, 2, 2), (3, 3, 3, 2))


def test_only_the_outer_stages_may_be_one_layer_short_of_their_chunks():
    short_middle = ("workload.model=llama3-405b", "cluster.nodes=256", "parallelism.tp=8", "parallelism.pp=16",
                    "parallelism.interleave=8", "parallelism.dp=auto", "workload.global_batch=256",
                    "parallelism.stage_layers=[8, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7]")  # fmt: skip
    with pytest.raises(ScenarioError) as err:
        scenario(*short_middle)
    [problem] = err.value.problems
    assert problem.path == "parallelism.interleave" and problem.message.startswith("stage 1 holds only 7 layers")
    with pytest.raises(ScenarioError):
        scenario(*META, "parallelism.first_stage_layers=6", "workload.global_batch=256")  # two empty chunks


@pytest.mark.parametrize(
    "stage,m,held",
    [
        # m = 16 = pp: warm-up 2(p - i - 1) + (v - 1)p >= m·v = 128 on stages 0 and 1, every forward runs first
        (0, 16, 16 * 7),  # 16 micro-batches of the seven one-layer chunks (the embedding chunk holds none)
        (1, 16, 16 * 8),
        (15, 16, 16 * 7),  # warm-up 112 chunks: chunks 0-6, 16 each; then the empty chunk
        # m = 32: stage 1 warms up 28 + 112 chunks and holds one more: 141 one-layer chunks
        (1, 32, 141),
        # stage 0: forwards 0-142 are chunk 0 (16, empty), chunks 1-7 (112), chunk 0 again (15, empty)
        (0, 32, 112),
        # the last stage: 112 after the warm-up; its backwards free the empty chunk 7 while the forwards of
        # the second round start with chunk 0: one layer more at the 16th steady step
        (15, 32, 113),
    ],
)
def test_held_layers_of_llama3s_pipeline_follow_the_schedule_chunk_by_chunk(stage, m, held):
    s = scenario(*META, f"workload.global_batch={16 * m}")
    lay = resolve_layout(s)
    assert lay.micro_batches == m
    assert held_layers(stage, 16, m, lay.chunk_layers[stage]) == held
    acts = memory_per_stage(s, lay)[stage].activations
    logits = 4 * 8192 * 128256 / 8 if stage == 15 else 0.0
    assert acts == pytest.approx(activation_bytes_per_layer(s, lay) * held + logits, rel=1e-12)


def test_held_layers_of_equal_chunks_are_the_interleaved_warmup_plus_one():
    for p, v, m in [(4, 2, 8), (8, 4, 16), (16, 8, 64)]:
        for i in range(p):
            expected = min(2 * (p - i - 1) + (v - 1) * p + 1, m * v) * 3  # three layers per chunk
            assert held_layers(i, p, m, (3,) * v) == expected
    assert held_layers(1, 4, 8, (5,)) == 3 * 5  # plain 1F1B: p - i micro-batches of the whole stage


# ---------------------------------------------------------------- pointwise recompute


def test_pointwise_recompute_keeps_norm_inputs_qkv_attention_output_and_the_activation_functions_inputs():
    s = scenario(*LLAMA, "parallelism.tp=8", "parallelism.pp=4", "parallelism.dp=auto", "workload.recompute=pointwise")
    lay = resolve_layout(s)
    h, kv, f, a, t, tokens = 8192, 1024, 28672, 64, 8, 8192
    # norm inputs 2h each; Q 2h, K and V 2kv each, attention output 2h, log-sum-exp 4a; SwiGLU gate and up 4f;
    # not the norm outputs (the QKV and first MLP GEMMs' inputs, 2h each) nor the product (2f)
    per_token = (4 * h + 2 * h + 4 * kv + 2 * h + 4 * a + 4 * f) / t
    assert activation_bytes_per_layer(s, lay) == pytest.approx(tokens * per_token, rel=1e-12)
    fp8 = scenario(*LLAMA, "parallelism.tp=8", "parallelism.pp=4", "parallelism.dp=auto",
                   "workload.recompute=pointwise", "workload.precision=fp8")  # fmt: skip
    assert activation_bytes_per_layer(fp8, lay) == activation_bytes_per_layer(s, lay)  # no FP8 copy kept


def test_pointwise_recompute_is_offered_to_a_job_that_does_not_fit_without_recompute():
    base = ("workload.model=llama3-70b", "parallelism.tp=8", "parallelism.pp=1", "parallelism.dp=auto",
            "workload.global_batch=64", "workload.seq_len=4096")  # fmt: skip
    s = scenario(*base, "workload.recompute=none")
    lay = resolve_layout(s)
    assert memory_per_chip(s, lay).total > 80 * GB
    need = memory_per_chip(scenario(*base, "workload.recompute=pointwise"), lay).total
    assert need <= 80 * GB
    assert fit_hints(s, lay)[0] == f'workload.recompute = "pointwise" ({need / GB:.1f} GB)'


# ---------------------------------------------------------------- the layout a scenario that gives none gets


def minimal(tmp_path, *overrides: str):
    from factorysim.loading import load_scenario

    path = tmp_path / "x.toml"
    path.write_text('name = "x"\n')
    return load_scenario(path, overrides, memory=False)  # as `estimate` loads: a job that does not fit is timed


def test_the_minimal_scenario_gets_the_smallest_tp_that_fits_and_estimates_as_fitting(tmp_path):
    s = minimal(tmp_path)
    e = estimate(s)
    assert (s.parallelism.tp, s.parallelism.pp, resolve_layout(s).dp) == (2, 1, 32)
    assert e.fits and e.memory.total <= 80e9
    from factorysim.loading import load_scenario

    assert load_scenario(tmp_path / "x.toml").parallelism.tp == 2  # `run` and the sandbox accept it as it is
    # the tp it skipped is the one that does not fit: Llama-3 8B at 8K tokens without recompute on one H100
    tp1 = minimal(tmp_path, "parallelism.tp=1")
    assert memory_per_chip(tp1, resolve_layout(tp1)).total > 80e9


def test_the_default_layout_follows_the_chips_memory_and_the_model_the_scenario_names(tmp_path):
    h200 = minimal(tmp_path, "cluster.chip=H200-SXM")  # 141 GB: the 8B fits without tensor parallelism
    assert (h200.parallelism.tp, h200.parallelism.pp) == (1, 1)
    big = minimal(tmp_path, "workload.model=llama3-70b")  # 70B on 64 H100: a server-wide tp and a pipeline
    assert big.parallelism.tp == 8 and big.parallelism.pp == 2
    assert estimate(big).fits
    assert not estimate(minimal(tmp_path, "workload.model=llama3-70b", "parallelism.pp=1")).fits


def test_a_scenario_that_gives_any_layout_key_keeps_its_layout_even_when_it_does_not_fit(tmp_path):
    s = minimal(tmp_path, "parallelism.tp=1")
    assert (s.parallelism.tp, s.parallelism.pp) == (1, 1)
    assert not estimate(s).fits
    dp = minimal(tmp_path, "parallelism.dp=64")
    assert dp.parallelism.tp == 1 and not estimate(dp).fits


def test_other_parallelism_keys_shape_the_chosen_layout(tmp_path):
    s = minimal(tmp_path, "parallelism.zero=3")  # weights, gradients and optimizer sharded: tp 1 fits
    assert s.parallelism.tp == 1 and estimate(s).fits


def test_when_no_layout_fits_the_rule_turns_on_full_recompute_unless_the_scenario_chose_recompute(tmp_path):
    big = ("workload.model=llama3-405b", "cluster.nodes=64")  # 405B at 8K tokens on 512 H100
    s = minimal(tmp_path, *big)
    assert (s.parallelism.tp, s.parallelism.pp, s.workload.recompute) == (8, 8, "full")
    assert estimate(s).fits
    mine = minimal(tmp_path, *big, "workload.recompute=none")  # the user's recompute stays: nothing fits
    e = estimate(mine)
    assert mine.workload.recompute == "none" and not e.fits
    # the layout that needs the least memory of those tried: a server-wide tp and, as the first stage holds the
    # same activations at any pp, the deepest pipeline the layers allow
    assert mine.parallelism.tp == 8 and mine.parallelism.pp == 64
    tried = minimal(tmp_path, *big, "workload.recompute=none", "parallelism.tp=8", "parallelism.pp=32")
    assert e.memory.total < estimate(tried).memory.total
