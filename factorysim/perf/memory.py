"""Memory per chip on each pipeline stage: weights, gradients, optimizer state, activations, runtime.

Mixed-precision Adam as Megatron-LM lays it out: BF16 weights (2 B/param), a gradient buffer in
`workload.grad_dtype` (FP32 main_grad, 4 B, by default; 2 B in BF16), FP32 master weights and two Adam
moments (12 B). `parallelism.zero` shards over the data-parallel × context-parallel group (expert weights
over that group divided by ep, their own data-parallel group): 1 the optimizer state (the distributed
optimizer: 6 + 12/d bytes per parameter), 2 also the gradients, 3 also the weights (FSDP), which then
need the full weights of the layer at work and of the one being prefetched.

Activations per layer and micro-batch are counted tensor by tensor from what the backward pass keeps
(Korthikanti et al. 2022, arXiv 2205.05198, §4, generalised). Per token, in bytes, with h hidden, kv the
key/value width (GQA), f the MLP width, a heads, t tensor-parallel ranks:

    attention  norm input 2h, QKV input 2h, Q 2h/t, K and V 2kv/t each, output (= projection input) 2h/t,
               and the softmax output 2·a·s/t unless attention is fused (flash keeps only its log-sum-exp,
               4·a/t) or recomputed (selective)
    MLP        norm input 2h, first GEMM input 2h, its output 2f/t (4f/t gated: gate and up), second GEMM
               input 2f/t; routed tokens count top_k times
    FP8        the inputs of the QKV, first and second MLP GEMMs are kept in FP8 (1 B per element, as
               Transformer Engine keeps its casted inputs for the weight gradient); the projection keeps
               an FP8 copy of the attention output beside the BF16 one attention keeps (+1 B per element)

Norm inputs and the inputs of the first GEMMs are replicated over t without sequence parallelism and
sharded with it (Korthikanti's 10·s·b·h, without dropout masks: pre-training today runs without dropout,
an assumption). Full recompute keeps each layer's input (2h per token) plus, while one layer is recomputed,
that layer's full activations. With Korthikanti's GPT shape and no fusion this is 32·s·b·h + 2·a·s²·b per
layer: his 34·s·b·h + 5·a·s²·b less the dropout masks and dropout output (2·s·b·h + 3·a·s²·b). Pointwise
recompute keeps neither the norm outputs (the QKV and first MLP GEMMs' inputs) nor the activation function's
output (the second MLP GEMM's input) nor FP8 copies: they are rebuilt in the backward pass.

Stage i holds its layers' activations for the micro-batches in flight there, chunk by chunk when the
schedule is interleaved (perf.pipeline.held_layers: the first stage holds the most, unless it is a layer
short), the first stage the input embedding, the last the output layer and the FP32 logits of one
micro-batch. The worst stage decides whether the job fits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..scenario.catalog import ModelSpec
from ..scenario.checks import ParallelLayout
from ..scenario.errors import Problem
from ..scenario.models import Scenario
from .pipeline import held_layers

GB = 1e9
RUNTIME_OVERHEAD_GB = 3.0
"""CUDA/MUSA context, communication buffers and allocator fragmentation (model constant, an assumption)."""
OPTIMIZER_BYTES = 12.0
"""FP32 master weights and two FP32 Adam moments per parameter."""
WEIGHT_BYTES = 2.0
"""BF16 weights."""
GRAD_BYTES = {"fp32": 4.0, "bf16": 2.0}
LOGIT_BYTES = 4.0
"""FP32 logits of one micro-batch on the last stage, for the loss."""
EAGER_LOGIT_BYTES = 12.0
"""The same for a loss run in PyTorch eager (workload.loss = "eager", as torchtitan runs it),
per token and vocabulary entry at the loss's peak in the backward pass: the log-softmax output kept for the
backward (FP32, 4), the dense NLL gradient (4) and log-softmax's input gradient (4), the BF16 logits already freed
(torchtitan deletes them before the backward; the forward's transient peak, BF16 + FP32 copy + output, is 10)."""


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per chip on one pipeline stage (by default the worst one)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float
    stage: int = 0

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    def as_gb(self) -> dict[str, float]:
        return {
            "weights": self.weights / GB,
            "gradients": self.gradients / GB,
            "optimizer": self.optimizer / GB,
            "activations": self.activations / GB,
            "overhead": self.overhead / GB,
            "total": self.total / GB,
        }


@dataclass(frozen=True)
class StageParams:
    """Parameters one chip of a stage holds: dense ones (sharded by tp) and expert ones (by tp and ep)."""

    dense: float
    experts: float

    @property
    def total(self) -> float:
        return self.dense + self.experts


def stage_params(s: Scenario, layout: ParallelLayout, stage: int) -> StageParams:
    """Parameters per chip of pipeline stage `stage`: its layers, plus the input embedding on the first
    stage and the output layer on the last (one matrix when pp = 1 and they are tied)."""
    return _stage_params(s.workload.model_spec(), layout, stage)


def _stage_params(m: ModelSpec, layout: ParallelLayout, stage: int) -> StageParams:
    dense_layer, expert_layer = _layer_params(m)
    layers = layout.stage_layers[stage]
    dense = layers * dense_layer + _embeddings(m, layout, stage) * m.vocab * m.hidden
    return StageParams(dense / layout.tp, layers * expert_layer / layout.ep / layout.tp)


def _layer_params(m: ModelSpec) -> tuple[int, int]:
    """(dense, expert) parameters of one layer: attention, norms and router; the MLPs of all experts."""
    return m.attention_params() + 4 * m.hidden + (m.hidden * m.experts if m.is_moe else 0), m.experts * m.mlp_params()


def _embeddings(m: ModelSpec, layout: ParallelLayout, stage: int) -> int:
    """Embedding matrices on a stage: the input one on the first, the output layer on the last."""
    n = 1 if stage == 0 else 0
    if stage == layout.pp - 1 and (layout.pp > 1 or not m.tied_embeddings):
        n += 1
    return n


def activation_bytes_per_layer(s: Scenario, layout: ParallelLayout, recompute: str | None = None) -> float:
    """Bytes one layer keeps for the backward pass of one micro-batch, per chip."""
    w = s.workload
    return _layer_activations(s, w.model_spec(), layout, w.recompute if recompute is None else recompute, w.seq)


def _layer_activations(s: Scenario, m: ModelSpec, layout: ParallelLayout, recompute: str, seq: int) -> float:
    w, p = s.workload, s.parallelism
    tokens = seq / layout.cp * layout.micro_batch
    t = layout.tp
    shard = t if (p.sequence_parallel or t == 1) else 1
    if recompute == "full":
        return tokens * 2.0 * m.hidden / shard
    h, kv, f, k = m.hidden, m.kv_dim, m.ffn, m.top_k
    gemm_in = 1.0 if w.precision == "fp8" else 2.0
    # pointwise recompute rebuilds the norm outputs (the first GEMMs' inputs), the activation function's
    # output (the second MLP GEMM's input) and FP8 casts from what is kept
    kept = 0.0 if recompute == "pointwise" else 1.0
    # replicated without sequence parallelism: the norm inputs and the inputs of the first GEMMs
    replicated = 2 * h + kept * gemm_in * h + 2 * h + kept * gemm_in * h * k
    sharded: float = 2 * h + 4 * kv + 2 * h  # Q, K, V, attention output
    if w.precision == "fp8":
        sharded += kept * h  # the projection's FP8 copy of the attention output
    if w.attention != "unfused":
        sharded += 4.0 * m.heads
    elif recompute != "selective":
        sharded += 2.0 * m.heads * seq / layout.cp
    sharded += k * ((4 if m.gated_mlp else 2) * f + kept * gemm_in * f)
    return tokens * (replicated / shard + sharded / t)


def memory_per_stage(s: Scenario, layout: ParallelLayout) -> tuple[MemoryBreakdown, ...]:
    """Memory per chip of every pipeline stage, first to last."""
    return _memory_per_stage(s, layout, s.workload.model_spec(), s.workload.seq)


def _total(b: MemoryBreakdown) -> float:
    return b.total


def _memory_per_stage(s: Scenario, layout: ParallelLayout, m: ModelSpec, seq: int) -> tuple[MemoryBreakdown, ...]:
    w, p = s.workload, s.parallelism
    per_layer = _layer_activations(s, m, layout, w.recompute, seq)
    # with full recompute, one layer's full activations live while it is recomputed
    working = _layer_activations(s, m, layout, "none", seq) if w.recompute == "full" else 0.0
    logit_bytes = EAGER_LOGIT_BYTES if w.loss == "eager" else LOGIT_BYTES
    logits = logit_bytes * seq / layout.cp * layout.micro_batch * m.vocab / layout.tp
    dense_shard = layout.dp * layout.cp
    expert_shard = max(1, dense_shard // layout.ep)
    zero = p.zero
    grad_bytes = GRAD_BYTES[w.grad_dtype]
    dense_count, expert_count = _layer_params(m)
    dense_layer, expert_layer = dense_count / layout.tp, expert_count / layout.ep / layout.tp
    embedding = m.vocab * m.hidden / layout.tp
    chunks = layout.chunk_layers
    out = []
    for stage, layers in enumerate(layout.stage_layers):
        dense = layers * dense_layer + _embeddings(m, layout, stage) * embedding
        experts = layers * expert_layer
        owned = dense / dense_shard + experts / expert_shard
        whole = dense + experts
        weights = WEIGHT_BYTES * (owned if zero >= 3 else whole)
        if zero >= 3:  # FSDP: the layer at work and the prefetched one are whole
            weights += 2 * WEIGHT_BYTES * (dense_layer + expert_layer)
        gradients = grad_bytes * (owned if zero >= 2 else whole)
        optimizer = OPTIMIZER_BYTES * (owned if zero >= 1 else whole)
        held = held_layers(stage, layout.pp, layout.micro_batches, chunks[stage])
        acts = per_layer * held + (working if layers else 0.0)
        if stage == layout.pp - 1:
            acts += logits
        out.append(MemoryBreakdown(weights, gradients, optimizer, acts, RUNTIME_OVERHEAD_GB * GB, stage))
    return tuple(out)


def memory_per_chip(s: Scenario, layout: ParallelLayout) -> MemoryBreakdown:
    """The stage that needs the most memory (the first such stage on a tie)."""
    return max(memory_per_stage(s, layout), key=_total)


# ------------------------------------------------------------------ does it fit?


def fit_hints(s: Scenario, layout: ParallelLayout) -> list[str]:
    """Single changes that would make a job that does not fit fit, each with the memory it would need."""
    cap = s.cluster.chip_spec.memory_gb * GB
    w, p = s.workload, s.parallelism
    tries: list[tuple[str, Scenario, ParallelLayout]] = []

    def workload(**update) -> Scenario:
        return s.model_copy(update={"workload": w.model_copy(update=update)})

    def parallelism(**update) -> Scenario:
        return s.model_copy(update={"parallelism": p.model_copy(update=update)})

    if w.recompute == "none":
        tries.append(('workload.recompute = "pointwise"', workload(recompute="pointwise"), layout))
    if w.recompute in ("none", "pointwise") and w.attention == "unfused":
        tries.append(('workload.recompute = "selective"', workload(recompute="selective"), layout))
    if w.recompute != "full":
        tries.append(('workload.recompute = "full"', workload(recompute="full"), layout))
    if p.zero < 3 and layout.dp * layout.cp > 1:
        tries.append((f"parallelism.zero = {p.zero + 1}", parallelism(zero=p.zero + 1), layout))
    if w.grad_dtype == "fp32":
        tries.append(('workload.grad_dtype = "bf16"', workload(grad_dtype="bf16"), layout))
    if layout.micro_batch > 1:
        half = layout.micro_batch // 2
        smaller = replace(layout, micro_batch=half, micro_batches=layout.micro_batches * 2)
        tries.append((f"workload.micro_batch = {half}", workload(micro_batch=half), smaller))
    if not p.sequence_parallel and layout.tp > 1:
        tries.append(("parallelism.sequence_parallel = true", parallelism(sequence_parallel=True), layout))
    hints = []
    for text, candidate, lay in tries:
        need = memory_per_chip(candidate, lay).total
        if need <= cap:
            hints.append(f"{text} ({need / GB:.1f} GB)")
    worst = memory_per_chip(s, layout)
    hints.append(f"more tp or pp, or a chip with at least {worst.total / GB:.0f} GB")
    return hints


def memory_problems(s: Scenario, layout: ParallelLayout) -> list[Problem]:
    """Does the job fit in the chip's memory? The message shows the worst stage's figures and what would help."""
    stages = memory_per_stage(s, layout)
    mem = max(stages, key=lambda b: b.total)
    cap = s.cluster.chip_spec.memory_gb * GB
    if mem.total <= cap:
        return []
    gb = mem.as_gb()
    where = f"stage {mem.stage} of {layout.pp}" if layout.pp > 1 else "every chip"
    return [
        Problem(
            "cluster.chip",
            f"out of memory: the job needs {gb['total']:.1f} GB per chip on {where} but "
            f"{s.cluster.chip_name} has {s.cluster.chip_spec.memory_gb:g} GB, {gb['total'] - cap / GB:.1f} GB over "
            f"(weights {gb['weights']:.1f} + gradients {gb['gradients']:.1f} + optimizer {gb['optimizer']:.1f} + "
            f"activations {gb['activations']:.1f} + runtime {gb['overhead']:.1f} GB); "
            f"would fit with {'; or '.join(fit_hints(s, layout))}",
        )
    ]
