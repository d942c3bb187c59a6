"""Memory per chip: weights, gradients, optimizer state, activations, runtime overhead.

Mixed-precision Adam as Megatron-LM does it: BF16 weights (2 B/param), FP32 main gradients (4 B),
FP32 master weights and two Adam moments (12 B). The distributed optimizer (zero = 1) shards the
12 B over the data-parallel (× context-parallel) group, zero = 2 also the gradients, zero = 3 also
the weights.

Activations per layer and micro-batch follow Korthikanti et al. 2022 (arXiv 2205.05198), Table 2:
s·b·h·(34 + 5·a·s/h) bytes with sequence parallelism over t ranks divided by t; without sequence
parallelism s·b·h·(10 + 24/t + 5·a·s/(h·t)). The 5·a·s/h term is the attention score matrix, which
fused (flash) attention never stores. Selective recompute drops it too; full recompute keeps only
each layer's input (2·s·b·h). The first pipeline stage holds activations of min(pp, m) micro-batches
(1F1B), times (1 + (pp-1)/(pp·v)) with v interleaved chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ..scenario.checks import ParallelLayout
from ..scenario.errors import Problem
from ..scenario.models import Scenario

GB = 1e9
RUNTIME_OVERHEAD_GB = 3.0
"""CUDA/MUSA context, communication buffers and allocator fragmentation (model constant)."""


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per chip on the most loaded pipeline stage."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float

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


def stage_layers(layers: int, pp: int) -> int:
    """Layers on the most loaded stage when layers are spread as evenly as possible."""
    return ceil(layers / pp)


def params_per_chip(s: Scenario, layout: ParallelLayout) -> float:
    """Parameters held by one chip of the most loaded stage (experts spread over ep)."""
    m = s.workload.model_spec()
    dense = m.attention_params() + 4 * m.hidden + (m.hidden * m.experts if m.is_moe else 0)
    experts = m.experts * m.mlp_params() / layout.ep
    per_layer = dense / layout.tp + experts / layout.tp
    layers = stage_layers(m.layers, layout.pp)
    embed = m.vocab * m.hidden / layout.tp  # input embedding on the first stage, output layer on the last
    if layout.pp == 1:
        embed *= 1 if m.tied_embeddings else 2
    return layers * per_layer + embed


def activation_bytes_per_layer(s: Scenario, layout: ParallelLayout) -> float:
    w, p = s.workload, s.parallelism
    m = w.model_spec()
    sbh = w.seq / layout.cp * layout.micro_batch * m.hidden
    t = layout.tp
    sp = p.sequence_parallel or t == 1
    # Korthikanti's 34 = 15 (attention block) + 19 (MLP block, 4h GELU); scale the MLP part to this model.
    mlp_scale = (m.ffn / (4 * m.hidden)) * (1.5 if m.gated_mlp else 1.0) * m.top_k
    linear = 15 + 19 * mlp_scale
    replicated = 10 * linear / 34  # norms, dropout and residuals: sharded only with sequence parallelism
    scores = (
        0.0 if (w.attention == "flash" or w.recompute == "selective") else 5 * m.heads * w.seq / layout.cp / m.hidden
    )
    if w.recompute == "full":
        return 2 * sbh / (t if sp else 1)
    if sp:
        return sbh * (linear + scores) / t
    return sbh * (replicated + (linear - replicated) / t + scores / t)


def memory_per_chip(s: Scenario, layout: ParallelLayout) -> MemoryBreakdown:
    w = s.workload
    m = w.model_spec()
    params = params_per_chip(s, layout)
    shard = layout.dp * layout.cp
    zero = s.parallelism.zero
    weights = 2 * params / (shard if zero >= 3 else 1)
    grads = 4 * params / (shard if zero >= 2 else 1)
    optimizer = 12 * params / (shard if zero >= 1 else 1)
    in_flight = min(layout.pp, layout.micro_batches)
    if layout.interleave > 1:
        in_flight *= 1 + (layout.pp - 1) / (layout.pp * layout.interleave)
    acts = activation_bytes_per_layer(s, layout) * stage_layers(m.layers, layout.pp) * in_flight
    if w.recompute == "full":  # one layer's full activations live while it is recomputed
        acts += _full_layer(s, layout)
    # FP32 logits for the loss on the last stage
    acts += 4 * w.seq / layout.cp * layout.micro_batch * m.vocab / layout.tp
    return MemoryBreakdown(weights, grads, optimizer, acts, RUNTIME_OVERHEAD_GB * GB)


def _full_layer(s: Scenario, layout: ParallelLayout) -> float:
    full = s.model_copy(update={"workload": s.workload.model_copy(update={"recompute": "none"})})
    return activation_bytes_per_layer(full, layout)


def memory_problems(s: Scenario, layout: ParallelLayout) -> list[Problem]:
    """Does the job fit in the chip's memory? The message shows the figures and what would help."""
    mem = memory_per_chip(s, layout)
    cap = s.cluster.chip_spec.memory_gb * GB
    if mem.total <= cap:
        return []
    gb = mem.as_gb()
    hints = []
    if s.workload.recompute != "full":
        hints.append('workload.recompute = "full"')
    if s.parallelism.zero < 1 and layout.dp > 1:
        hints.append("parallelism.zero = 1")
    if layout.micro_batch > 1:
        hints.append("a smaller workload.micro_batch")
    hints.append("more tp or pp")
    return [
        Problem(
            "cluster.chip",
            f"the job needs {gb['total']:.1f} GB per chip but {s.cluster.chip_name} has "
            f"{s.cluster.chip_spec.memory_gb:g} GB (weights {gb['weights']:.1f} + gradients {gb['gradients']:.1f} + "
            f"optimizer {gb['optimizer']:.1f} + activations {gb['activations']:.1f} + runtime {gb['overhead']:.1f} GB); "
            f"try {', '.join(hints)}",
        )
    ]
