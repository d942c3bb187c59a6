"""The physics of one training step: compute, communication, pipeline, and four of the five factors.

Per micro-batch and layer a chip runs its GEMMs (each timed by its shape, perf.gemm), the attention core
(fused kernels skip the masked half of the causal square), and memory-bound kernels (norms, residuals,
activation functions, FP8 casts) from the bytes they move at achieved HBM bandwidth; recomputation runs
forward passes again. Collectives of the layer follow:

- tensor parallel: with sequence parallelism an all-gather before and a reduce-scatter after each of the
  attention and MLP blocks forward, the mirror image backward plus the all-gathers that rebuild the
  sharded GEMM inputs for the weight gradients (10 per layer; 14 with full recompute); without it two
  all-reduces forward and two backward. With `features.tp_overlap` they overlap the layer's GEMMs;
- context parallel: ring attention, K and V blocks passed around the cp ranks while the attention of the
  block in hand runs (causal load balancing gives every rank the same work per step); backward passes
  K, V and their gradients;
- expert parallel: dispatch and combine all-to-alls forward and backward.

Stages hold unequal layers (uneven splits, the output layer on the last); the pipeline runs as
perf.pipeline says: m·max(t) + (Σt − max t)/v. Point-to-point activations cross stages: the fill and
drain sends are on the critical path; in the steady state of the interleaved schedule they overlap
compute (Megatron-LM's overlap_p2p_comm), in plain 1F1B they do not. Data parallelism reduces
gradients (reduce-scatter with a sharded optimizer, all-reduce without) under the last micro-batch's
backward and gathers parameters under the first forward, bucket by bucket (the last bucket cannot
hide); ZeRO-3 gathers the weights for every micro-batch's forward and backward and reduce-scatters
every micro-batch's gradients. The optimizer update streams the owned parameters through HBM.

An overlapped collective is not free: while it runs, it takes `comm_interference` of the compute it
overlaps (communication kernels occupy compute cores and memory bandwidth), unless an async
communication engine carries it.

Synchronous training waits for the slowest chip: a straggler slows the stage it sits on (assumed the
busiest), which paces the steady state: m · (its compute) · (1/speed − 1).

Factor accounting (every factor is a ratio of times, so the product is exact):

    t_ideal   model FLOPs of the step on this chip / dense BF16 peak
    t_native  chip-alone compute time if every op ran on the chip's fast path
    t_compute chip-alone compute time as run (fallbacks included)
    t_node    t_compute + communication inside servers
    t_step    t_node + communication across servers + bubble + stragglers

    C = t_ideal / t_native,  G = t_native / t_compute,  N = t_compute / t_node,  E = t_node / t_step
    MFU = G·C·N·E = t_ideal / t_step
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from math import ceil

from ..scenario.catalog import ChipSpec, FabricSpec, ModelSpec, ScaleUpSpec, catalog
from ..scenario.models import DEFAULT_SEQ_LEN, Scenario
from ..scenario.parallel import ParallelLayout
from ..topology.index import GroupLinks
from . import collectives as coll
from .collectives import LinkRates, Split
from .flops import hardware_flops_per_token, model_flops_per_token
from .gemm import linear_times
from .memory import GB, GRAD_BYTES, MemoryBreakdown, _memory_per_stage, _stage_params, _total, fit_hints
from .pipeline import bubble_time


@dataclass(frozen=True)
class KernelModel:
    """Constants of the kernel model. They come from counting what kernels read and write, or are fitted
    to the calibration table; none is a vendor figure (those live in the catalog)."""

    norm_bytes: float = 44.0
    """Per token, layer and hidden element, forward + backward: two norms (read x, write y; backward read x
    and dy, write dx: 10 B each) and two residual adds (6 B forward, 6 B backward each)."""
    mlp_bytes: float = 10.0
    """Per token, layer and MLP element, forward + backward: GELU (read + write; backward read x, dy, write dx)."""
    gated_mlp_bytes: float = 16.0
    """The same for SwiGLU: two inputs read, one output written; backward reads three, writes two."""
    unfused_attention_bytes: float = 36.0
    """Per token, layer, head and key, forward + backward: the unfused score matrix written by QK^T, read and
    written by scale-mask-softmax, read by AV (about 6 passes of 2 B forward, twice backward)."""
    unfused_head_dim_half: float = 64.0
    """Unfused attention runs QK^T and AV as batched GEMMs one head wide: efficiency head_dim / (head_dim + this)
    of the large-GEMM rate (an assumption; only the 2021 A100 calibration runs use unfused attention)."""
    logit_bytes: float = 16.0
    """Per token and vocabulary entry: FP32 logits written, read by the loss, gradient written and read."""
    eager_logit_bytes: float = 36.0
    """The same for workload.loss = "eager" (autocast runs cross-entropy in FP32): BF16 logits cast to FP32 (read 2, write 4),
    log-softmax (read 4, write 4); backward the dense NLL gradient (write 4), log-softmax's backward (read 8,
    write 4) and the cast back to BF16 (read 4, write 2)."""
    eager_norm_bytes: float = 8.0
    """Per token, layer and hidden element: eager LayerNorm's backward reduces the weight gradient in a second
    pass over x and dy (2 B each), for each of the two norms."""
    eager_unpad_bytes: float = 10.0
    """Per token, layer and element of Q, K, V and the attention output: FlashAttention's variable-length interface
    as eager code calls it (llm-foundry's flash path) gathers Q, K and V into unpadded copies (read 2, write 2)
    and scatters the output back into a zeroed padded tensor (write 2, read 2, write 2); backward the mirror
    image (scatter into zeros for Q, K, V: 6; gather for the output: 4). The Triton kernel takes the padded
    batch and skips them."""
    fp8_cast_bytes: float = 6.0
    """Per token and GEMM-input element, forward + backward: BF16 read + FP8 write of every GEMM input and of
    every output gradient (with the transposes Hopper's FP8 GEMMs need)."""
    attention_seq_half: float = 400.0
    """Keys per query at which fused attention reaches half its long-sequence efficiency: FlashAttention-2
    forward + backward and FlashAttention-3 forward on H100, causal, head dimension 128, reach 81-85 % of their
    16K-token throughput at 2K tokens and 47-50 % at 512 (Dao-AILab/flash-attention benchmark figures)."""
    norm_forward_bytes: float = 8.0
    """Per token, layer and hidden element: the forward of the two norms (read x, write y), run again by pointwise
    recompute (part of norm_bytes)."""
    mlp_forward_bytes: float = 4.0
    """The forward of GELU (read, write), run again by pointwise recompute (part of mlp_bytes)."""
    gated_mlp_forward_bytes: float = 6.0
    """The forward of SwiGLU (read gate and up, write their product), run again by pointwise recompute."""
    optimizer_bytes_per_param: float = 26.0
    """Adam step per owned parameter besides the gradient read: FP32 master and two moments read and written,
    BF16 weight written."""
    param_gather_bytes: float = 2.0
    """The distributed optimizer and FSDP gather BF16 parameters."""
    dp_bucket_params: float = 40e6
    """Gradient bucket: Megatron-LM's default max(40M, 1M x data-parallel size) parameters; the last bucket's
    reduction cannot overlap. ZeRO-3 gathers and reduces per layer instead."""
    tp_overlap_splits: int = 4
    """Chunks an overlapped tensor-parallel collective is pipelined in; one chunk stays exposed (Transformer
    Engine's default num_splits = 4: "a 1x ReduceScatter chunk remains exposed", Megatron-Bridge performance
    guide)."""
    comm_interference: float = 0.15
    """Share of compute lost while a collective overlaps it on the same chip (communication kernels occupy
    compute cores). A dedicated async communication engine removes it."""
    in_network_interference: float = 1 / 3
    """Share of that loss an in-network (in-switch or near-memory) collective still costs: the switch or the
    memory adds, so the chip moves each byte once, where a ring's reduction step reads its own chunk and the one
    it received and writes their sum (three passes through memory and the compute cores doing the adding).
    An assumption from counting those passes; no published measurement isolates it."""


KERNELS = KernelModel()


@dataclass(frozen=True)
class Factors:
    """The five AI-factory factors. delivered FLOP/s = peak × product."""

    generality: float
    chip: float
    node: float
    cluster: float
    stability: float = 1.0

    @property
    def product(self) -> float:
        return self.generality * self.chip * self.node * self.cluster * self.stability

    def as_dict(self) -> dict[str, float]:
        return {
            "generality": self.generality,
            "chip": self.chip,
            "node": self.node,
            "cluster": self.cluster,
            "stability": self.stability,
        }


@dataclass(frozen=True)
class StepBreakdown:
    """Where one step's time goes, seconds. The parts sum to the step time."""

    compute_s: float
    optimizer_s: float
    tp_s: float
    pp_s: float
    dp_s: float
    ep_s: float
    cp_s: float
    bubble_s: float
    straggler_s: float

    @property
    def total(self) -> float:
        return sum(asdict(self).values())


@dataclass(frozen=True)
class StepLinks:
    """The bottleneck links of each parallel dimension, from the topology."""

    tp: GroupLinks
    cp: GroupLinks
    dp: GroupLinks
    pp: GroupLinks
    ep: GroupLinks
    slowest_speed: float = 1.0  # the slowest chip's compute speed (a straggler < 1); set by the engine


@dataclass(frozen=True)
class StepEstimate:
    """The result of the step model for one scenario. The step is timed as if memory were unlimited;
    `fits` says whether it is not."""

    layout: ParallelLayout
    chips: int
    peak_flops: float  # cluster dense BF16 peak of the job's chips
    step_time_s: float
    tokens_per_step: int
    model_flops_per_token: float
    hardware_flops_per_token: float
    breakdown: StepBreakdown
    factors: Factors
    memory: MemoryBreakdown  # the stage that needs the most
    memory_capacity: float = math.inf  # bytes per chip
    stage_memory: tuple[MemoryBreakdown, ...] = ()
    critical_stage: int = 0  # the stage that paces the pipeline
    notes: tuple[str, ...] = field(default_factory=tuple)
    fit_hints: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return not math.isfinite(self.step_time_s)

    @property
    def fits(self) -> bool:
        return self.memory.total <= self.memory_capacity

    @property
    def memory_over(self) -> float:
        """Bytes per chip beyond the chip's memory on the worst stage (0 when the job fits)."""
        return max(0.0, self.memory.total - self.memory_capacity)

    @property
    def tokens_per_s(self) -> float:
        return 0.0 if self.blocked else self.tokens_per_step / self.step_time_s

    @property
    def mfu(self) -> float:
        return self.factors.generality * self.factors.chip * self.factors.node * self.factors.cluster

    @property
    def hfu(self) -> float:
        return self.mfu * self.hardware_flops_per_token / self.model_flops_per_token

    @property
    def delivered_flops(self) -> float:
        """Model FLOP/s of the whole job = peak × G·C·N·E·S."""
        return self.peak_flops * self.factors.product

    @property
    def tflops_per_chip(self) -> float:
        return self.delivered_flops / self.chips / 1e12

    @property
    def hw_tflops_per_chip(self) -> float:
        return self.tflops_per_chip * self.hardware_flops_per_token / self.model_flops_per_token

    def as_dict(self) -> dict:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "step_time_s": num(self.step_time_s),
            "tokens_per_s": self.tokens_per_s,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "tflops_per_chip": self.tflops_per_chip,
            "hw_tflops_per_chip": self.hw_tflops_per_chip,
            "fits": self.fits,
            "memory_gb_per_chip": self.memory.total / GB,
            "memory_capacity_gb": num(self.memory_capacity / GB),
            "memory_over_gb": self.memory_over / GB,
            "memory_worst_stage": self.memory.stage,
            "memory_gb": self.memory.as_gb(),
            "memory_gb_per_stage": [round(m.total / GB, 3) for m in self.stage_memory],
            "fit_hints": list(self.fit_hints),
            "chips": self.chips,
            "peak_pflops": self.peak_flops / 1e15,
            "delivered_pflops": self.delivered_flops / 1e15,
            "layout": asdict(self.layout),
            "critical_stage": self.critical_stage,
            "factors": self.factors.as_dict(),
            "breakdown": {k: num(v) for k, v in asdict(self.breakdown).items()},
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------ compute


@dataclass(frozen=True)
class LayerCompute:
    """Chip-alone seconds of one layer and one micro-batch, recomputation included."""

    linear: float  # GEMMs
    attention: float  # attention core
    memory: float  # memory-bound kernels
    attention_fwd: float  # one forward pass of the attention core
    attention_bwd: float  # its backward pass

    @property
    def total(self) -> float:
        return self.linear + self.attention + self.memory


def _fp8_reference_speedup() -> float:
    """How much faster FP8 GEMMs run than BF16 on a chip that has both, as calibrated on H100."""
    ref = catalog().chips["H100-SXM-80GB"]
    return ref.fp8_peak_flops * ref.fp8_gemm_efficiency / (ref.bf16_peak_flops * ref.gemm_efficiency)


def _gemm_rate(precision: str, chip: ChipSpec, native: bool) -> tuple[float, float]:
    """(large-GEMM FLOP/s, bytes per input element) for the job's precision on this chip."""
    bf16 = chip.bf16_peak_flops * chip.gemm_efficiency
    if precision == "fp8":
        if chip.has_fp8:
            return chip.fp8_peak_flops * chip.fp8_gemm_efficiency, 1.0
        if native:
            return bf16 * _fp8_reference_speedup(), 1.0
    return bf16, 2.0


@dataclass(frozen=True)
class JobKernels:
    """What one layout of a job runs per micro-batch on one chip, independent of the network: a layer as run,
    the same layer as if every op had a fast path, and the output layer with the loss."""

    actual: LayerCompute
    native: LayerCompute
    logits: float


def _all_native(chip: ChipSpec, precision: str, attention: str) -> bool:
    """Every op the job wants has a fast path on this chip (the native layer is the actual one)."""
    return (precision != "fp8" or chip.has_fp8) and (attention == "unfused" or "flash_attention" in chip.fast_paths)


_MEMO_SIZE = 4096
_KERNEL_MEMO: dict[tuple, tuple[ChipSpec, ModelSpec, JobKernels]] = {}


def job_kernels(s: Scenario, layout: ParallelLayout, chip: ChipSpec, model: ModelSpec, seq: int) -> JobKernels:
    """The chip-alone kernel times of a job's layout, memoised: a search varies pp, dp and interleave far more
    often than the shapes these depend on (the chip and model are held, so their ids stay theirs)."""
    w = s.workload
    sp = s.parallelism.sequence_parallel or layout.tp == 1
    eager, eager_loss = w.kernels == "eager", w.loss == "eager"
    key = (id(chip), id(model), w.precision, w.attention, w.recompute, seq, layout.tp, layout.cp,
           layout.micro_batch, layout.ep, sp, eager, eager_loss)  # fmt: skip
    hit = _KERNEL_MEMO.get(key)
    if hit is not None and hit[0] is chip and hit[1] is model:
        return hit[2]
    args = (chip, model, w.precision, w.attention, w.recompute, seq, layout.tp, layout.cp, layout.micro_batch,
            layout.ep, sp)  # fmt: skip
    actual = _layer_compute(*args, native=False, eager=eager)
    native = actual if _all_native(chip, w.precision, w.attention) else _layer_compute(*args, native=True, eager=eager)
    logits = _logits_compute(chip, model, seq, layout.tp, layout.cp, layout.micro_batch, eager=eager_loss)
    kernels = JobKernels(actual, native, logits)
    if len(_KERNEL_MEMO) >= _MEMO_SIZE:
        _KERNEL_MEMO.clear()
    _KERNEL_MEMO[key] = (chip, model, kernels)
    return kernels


def layer_compute(s: Scenario, layout: ParallelLayout, chip: ChipSpec, model: ModelSpec, native: bool) -> LayerCompute:
    """Chip-alone times of one layer and micro-batch. `native`: as if every op the job wants had a fast path."""
    w = s.workload
    sp = s.parallelism.sequence_parallel or layout.tp == 1
    return _layer_compute(chip, model, w.precision, w.attention, w.recompute, w.seq, layout.tp, layout.cp,
                          layout.micro_batch, layout.ep, sp, native, eager=w.kernels == "eager")  # fmt: skip


def _layer_compute(
    chip: ChipSpec,
    model: ModelSpec,
    precision: str,
    attention: str,
    recompute: str,
    seq: int,
    t: int,
    cp: int,
    micro_batch: int,
    ep: int,
    sp: bool,
    native: bool,
    *,
    eager: bool = False,
) -> LayerCompute:
    tokens = micro_batch * seq / cp
    h, kv, f = model.hidden, model.kv_dim, model.ffn
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    rate, in_bytes = _gemm_rate(precision, chip, native)
    sms = chip.sm_count

    def lin(m: float, n: float, k: float) -> tuple[float, float]:
        return linear_times(m, n, k, rate, sms, hbm, in_bytes)

    gemms = [lin(tokens, (h + 2 * kv) / t, h), lin(tokens, h, h / t)]
    up = (2 if model.gated_mlp else 1) * f / t
    if model.is_moe:
        local = max(1, model.experts // ep)
        per_expert = tokens * model.top_k / local
        fc1, fc2 = lin(per_expert, up, h), lin(per_expert, h, f / t)
        gemms += [(local * fc1[0], local * fc1[1]), (local * fc2[0], local * fc2[1]), lin(tokens, model.experts, h)]
    else:
        gemms += [lin(tokens, up, h), lin(tokens, h, f / t)]
    lin_fwd = sum(g[0] for g in gemms)
    lin_bwd = sum(g[1] for g in gemms)

    # Attention core: fused kernels skip the masked half of the causal square and lose efficiency on short
    # key blocks (with context parallelism each ring step sees seq/cp keys); unfused ones compute the whole
    # square at GEMM efficiency and move the score matrix through memory.
    flops = 4.0 * seq * h * tokens / t  # one forward pass, full square
    flash = attention != "unfused" and ("flash_attention" in chip.fast_paths or native)
    attn_bytes = 0.0
    if flash:
        keys = seq / cp
        rate = chip.attention_rate(attention) * keys / (keys + KERNELS.attention_seq_half)
        attn_fwd = 0.5 * flops / rate
    else:
        head_dim = h / model.heads
        eff = chip.gemm_efficiency * head_dim / (head_dim + KERNELS.unfused_head_dim_half)
        attn_fwd = flops / (chip.bf16_peak_flops * eff)
        attn_bytes = KERNELS.unfused_attention_bytes * model.heads / t * seq / cp
    attn_bwd = 2.0 * attn_fwd

    # Memory-bound kernels, forward + backward.
    mlp_elems = f * model.top_k / t
    per_token = KERNELS.norm_bytes * h / (t if sp else 1)
    per_token += (KERNELS.gated_mlp_bytes if model.gated_mlp else KERNELS.mlp_bytes) * mlp_elems
    if precision == "fp8":
        per_token += KERNELS.fp8_cast_bytes * (3 * h / t + mlp_elems)
    if eager:
        per_token += KERNELS.eager_norm_bytes * h / (t if sp else 1)
        if flash and attention != "triton":
            per_token += KERNELS.eager_unpad_bytes * (2 * h + 2 * kv) / t
    if recompute == "pointwise":
        per_token += KERNELS.norm_forward_bytes * h / (t if sp else 1)
        per_token += (KERNELS.gated_mlp_forward_bytes if model.gated_mlp else KERNELS.mlp_forward_bytes) * mlp_elems
    mem = tokens * (per_token + attn_bytes) / hbm

    if recompute == "full":
        return LayerCompute(2 * lin_fwd + lin_bwd, 2 * attn_fwd + attn_bwd, mem * 4 / 3, attn_fwd, attn_bwd)
    if recompute == "selective":
        return LayerCompute(lin_fwd + lin_bwd, 2 * attn_fwd + attn_bwd, mem, attn_fwd, attn_bwd)
    return LayerCompute(lin_fwd + lin_bwd, attn_fwd + attn_bwd, mem, attn_fwd, attn_bwd)


def logits_compute(s: Scenario, layout: ParallelLayout, chip: ChipSpec, model: ModelSpec) -> float:
    """The output layer and the loss of one micro-batch on the last stage (BF16 on every chip)."""
    w = s.workload
    return _logits_compute(chip, model, w.seq, layout.tp, layout.cp, layout.micro_batch, eager=w.loss == "eager")


def _logits_compute(
    chip: ChipSpec, model: ModelSpec, seq: int, tp: int, cp: int, micro_batch: int, *, eager: bool = False
) -> float:
    tokens = micro_batch * seq / cp
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    bf16 = chip.bf16_peak_flops * chip.gemm_efficiency  # the output layer stays in BF16
    fwd, bwd = linear_times(tokens, model.vocab / tp, model.hidden, bf16, chip.sm_count, hbm, 2.0)
    loss = KERNELS.eager_logit_bytes if eager else KERNELS.logit_bytes
    return fwd + bwd + tokens * loss * model.vocab / tp / hbm


# ------------------------------------------------------------------ step


def _exposed(comm: Split, window: float, stolen: float) -> Split:
    """What a collective that may overlap `window` seconds of compute adds to the step, split like `comm`."""
    total = comm[0] + comm[1]
    if total <= 0:
        return coll.ZERO
    if not math.isfinite(total):
        return comm
    cost = max(0.0, total - window) + stolen * min(total, window)
    return coll.scale(comm, cost / total)


def _in_network(r: LinkRates) -> bool:
    """Every side of the group that carries data reduces in the network."""
    g = r.group
    inside = g.n_local <= 1 or r.up_in_network
    across = g.n_nodes <= 1 or r.out_in_network
    return inside and across and g.size > 1


def _tail_exposed(comm: Split, window: float, stolen: float, tail: float) -> Split:
    """As `_exposed`, with a `tail` share of the collective that cannot overlap (the last bucket)."""
    tail = min(1.0, tail)
    return coll.add(coll.scale(comm, tail), _exposed(coll.scale(comm, 1.0 - tail), window, stolen))


def _link_rates(link: ScaleUpSpec, fabric: FabricSpec, on: bool, g: GroupLinks) -> LinkRates:
    """The achieved rates of one group on a scale-up link and fabric (`on`: in-network reduction turned on)."""
    return LinkRates(
        g,
        link.efficiency,
        fabric.efficiency,
        link.latency_us * 1e-6,
        fabric.latency_us * 1e-6,
        on and link.in_network_reduction,
        on and fabric.in_network_reduction,
        link.in_network_efficiency,
        fabric.in_network_efficiency,
    )


def _dp_group(layout: ParallelLayout, links: StepLinks) -> GroupLinks:
    """The group gradients are reduced over: dp × cp ranks."""
    if layout.cp > 1:
        return links.dp.resized(layout.dp * layout.cp, links.dp.n_nodes * links.cp.n_nodes)
    return links.dp


def backward_share(full_recompute: bool) -> float:
    """The share of a micro-batch's compute that is its backward pass (the window gradient reductions hide under);
    the rest is the forward (the window parameter gathers hide under)."""
    return 0.6 if full_recompute else 2 / 3


@dataclass(frozen=True)
class DpCollectives:
    """Seconds of the data-parallel collectives of a stage's parameters, inside + across servers, as one bucket."""

    gather: float
    reduce: float
    all_reduce: float


def least_dp_collectives(s: Scenario, layout: ParallelLayout, links: StepLinks) -> DpCollectives:
    """The data-parallel collectives of the stage with the fewest parameters, each run as one bucket: no less than
    those of the critical stage in `estimate_step`, which pays a latency per bucket (collectives.in_pieces)."""
    model = s.workload.model_spec()
    params = min(_stage_params(model, layout, i).total for i in range(layout.pp))
    c = s.cluster
    rates = _link_rates(c.link_spec, c.fabric.spec, s.features.in_network_reduction, _dp_group(layout, links))
    grad = params * GRAD_BYTES[s.workload.grad_dtype]
    return DpCollectives(
        sum(coll.all_gather(params * KERNELS.param_gather_bytes, rates)),
        sum(coll.reduce_scatter(grad, rates)),
        sum(coll.all_reduce(grad, rates)),
    )


def least_dp_exposed(dp: DpCollectives, zero: int, busiest_s: float, full_recompute: bool, micro_batches: int) -> float:
    """A lower bound on the data-parallel seconds `estimate_step` adds to a step: each collective exposes at least
    what does not fit under the window it may hide under (whatever share of compute overlap steals, and however
    many buckets it runs in). `busiest_s`, a micro-batch's compute on the busiest stage, bounds the windows of the
    critical stage from above."""
    backward = busiest_s * backward_share(full_recompute)
    forward = busiest_s - backward
    if zero == 0:
        return max(0.0, dp.all_reduce - backward)
    if zero == 1:
        return max(0.0, dp.reduce - backward) + max(0.0, dp.gather - forward)
    if zero == 2:
        return micro_batches * (max(0.0, dp.gather - forward) + max(0.0, dp.reduce - backward))
    return micro_batches * (max(0.0, dp.gather - forward) + max(0.0, dp.gather + dp.reduce - backward))


def estimate_step(s: Scenario, layout: ParallelLayout, links: StepLinks) -> StepEstimate:
    """Step time, breakdown and factors for a scenario with the given layout and topology links."""
    w, feats = s.workload, s.features
    cluster = s.cluster
    chip = cluster.chip_spec
    model = w.model_spec()
    seq = w.seq_len or model.seq_len or DEFAULT_SEQ_LEN
    link, fabric = cluster.link_spec, cluster.fabric.spec
    notes: list[str] = []

    def rates(g: GroupLinks) -> LinkRates:
        return _link_rates(link, fabric, feats.in_network_reduction, g)

    m, v, pp, tp = layout.micro_batches, layout.interleave, layout.pp, layout.tp
    tokens = layout.micro_batch * seq / layout.cp
    stolen = 0.0 if feats.async_comm_engine else KERNELS.comm_interference
    full = w.recompute == "full"

    kernels = job_kernels(s, layout, chip, model, seq)
    actual, native, logits = kernels.actual, kernels.native, kernels.logits
    if w.precision == "fp8" and not chip.has_fp8:
        notes.append(f"{s.cluster.chip_name} has no FP8 path: FP8 GEMMs run in BF16 (generality < 1)")
    if w.attention != "unfused" and "flash_attention" not in chip.fast_paths:
        notes.append(f"{s.cluster.chip_name} has no fused attention: the score matrix goes through memory")
    if feats.in_network_reduction and not (link.in_network_reduction or fabric.in_network_reduction):
        notes.append(f"neither {s.cluster.link_name} nor the fabric reduces in the network: the feature does nothing")

    # Tensor parallel, per layer and micro-batch.
    act_bytes = tokens * model.hidden * 2.0
    tp_rates = rates(links.tp)
    if s.parallelism.sequence_parallel and tp > 1:
        tp_layer = coll.scale(coll.reduce_scatter(act_bytes, tp_rates), 14 if full else 10)
    else:
        tp_layer = coll.scale(coll.all_reduce(act_bytes, tp_rates), 6 if full else 4)
    if feats.tp_overlap:  # pipelined in chunks: the first (or last) chunk of each collective stays exposed
        tp_stolen = stolen * (KERNELS.in_network_interference if _in_network(tp_rates) else 1.0)
        tp_layer = _tail_exposed(tp_layer, actual.linear, tp_stolen, 1.0 / KERNELS.tp_overlap_splits)

    # Context parallel: ring attention. Each of the cp-1 steps passes a K/V block (forward; backward K, V and
    # their gradients) while the attention of the block in hand runs.
    cp_layer = coll.ZERO
    if layout.cp > 1:
        kv_block = 2 * tokens * model.kv_dim * 2.0 / tp
        ring_step = coll.p2p(kv_block, rates(links.cp))
        fwd = _exposed(ring_step, actual.attention_fwd / layout.cp, stolen)
        bwd = _exposed(coll.scale(ring_step, 2), actual.attention_bwd / layout.cp, stolen)
        cp_layer = coll.scale(coll.add(coll.scale(fwd, 2 if full else 1), bwd), layout.cp - 1)

    # Expert parallel: dispatch and combine all-to-alls, forward and backward.
    ep_layer = coll.ZERO
    if layout.ep > 1:
        routed = tokens / tp * model.top_k * model.hidden * 2.0
        ep_layer = coll.scale(coll.all_to_all(routed, rates(links.ep)), 6 if full else 4)

    # Stages: per micro-batch time of each, the busiest paces the pipeline.
    comm_layer = sum(tp_layer) + sum(cp_layer) + sum(ep_layer)
    last = pp - 1
    stage_times = [
        n * (actual.total + comm_layer) + (logits if i == last else 0.0) for i, n in enumerate(layout.stage_layers)
    ]
    crit = max(range(pp), key=stage_times.__getitem__)
    crit_layers = layout.stage_layers[crit]
    mb_compute = crit_layers * actual.total + (logits if crit == last else 0.0)
    mb_native = crit_layers * native.total + (logits if crit == last else 0.0)
    bubble = bubble_time(stage_times, v)

    # Pipeline point-to-point: activations cross each chunk boundary forward and back.
    pp_comm = coll.ZERO
    if pp > 1:
        send = coll.p2p(act_bytes / tp, rates(links.pp))
        fill = coll.scale(send, 2 * (pp - 1))
        steady = coll.scale(send, 2 * v * m)
        pp_comm = coll.add(fill, coll.scale(steady, stolen) if v > 1 else steady)

    # Data parallel over dp × cp (experts over their own dp × cp / ep group).
    params = _stage_params(model, layout, crit)
    dp_rates = rates(_dp_group(layout, links))
    grad_bytes = GRAD_BYTES[w.grad_dtype]
    backward_window = mb_compute * backward_share(full)
    forward_window = mb_compute - backward_window
    zero = s.parallelism.zero
    owned = params.total
    dp_total = params.total
    # Collectives run per gradient bucket (per layer with ZeRO-3): the bandwidth of one, the latency of each;
    # the last bucket cannot hide under the backward.
    bucket = max(KERNELS.dp_bucket_params, 1e6 * layout.dp * layout.cp)
    buckets = max(1, crit_layers) if zero >= 2 else max(1, ceil(dp_total / bucket))
    tail = 1.0 / buckets
    dp_stolen = stolen * (KERNELS.in_network_interference if _in_network(dp_rates) else 1.0)
    gather = coll.in_pieces(coll.all_gather, dp_total * KERNELS.param_gather_bytes, dp_rates, buckets)
    reduce = coll.in_pieces(coll.reduce_scatter, dp_total * grad_bytes, dp_rates, buckets)
    if zero == 0:
        all_reduce = coll.in_pieces(coll.all_reduce, dp_total * grad_bytes, dp_rates, buckets)
        dp = _tail_exposed(all_reduce, backward_window, dp_stolen, tail)
    elif zero == 1:
        dp = coll.add(
            _tail_exposed(reduce, backward_window, dp_stolen, tail), _exposed(gather, forward_window, dp_stolen)
        )
    elif zero == 2:  # FSDP SHARD_GRAD_OP: every micro-batch gathers before its forward and reduces after its backward
        per_mb = coll.add(
            _exposed(gather, forward_window, dp_stolen), _tail_exposed(reduce, backward_window, dp_stolen, tail)
        )
        dp = coll.scale(per_mb, m)
    else:  # ZeRO-3 / FSDP FULL_SHARD: gather for every forward and backward, reduce every backward
        per_mb = coll.add(
            _exposed(gather, forward_window, dp_stolen),
            _tail_exposed(coll.add(gather, reduce), backward_window, dp_stolen, tail),
        )
        dp = coll.scale(per_mb, m)
    if zero >= 1:
        owned = params.dense / (layout.dp * layout.cp) + params.experts / max(1, layout.dp * layout.cp // layout.ep)

    # Optimizer update: memory-bound over the parameters this chip owns.
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    optimizer = owned * (KERNELS.optimizer_bytes_per_param + grad_bytes) / hbm

    # Synchronous training waits for the slowest chip, on the busiest stage.
    speed = links.slowest_speed
    straggler = m * mb_compute * (1.0 / speed - 1.0) if speed > 0 else math.inf

    inside_mb = crit_layers * (tp_layer[0] + cp_layer[0] + ep_layer[0])
    across_mb = crit_layers * (tp_layer[1] + cp_layer[1] + ep_layer[1])
    compute = m * mb_compute + optimizer
    compute_native = m * mb_native + optimizer
    inside = m * inside_mb + pp_comm[0] + dp[0]
    across = m * across_mb + pp_comm[1] + dp[1]
    step = compute + inside + across + bubble + straggler

    breakdown = StepBreakdown(
        compute_s=m * mb_compute,
        optimizer_s=optimizer,
        tp_s=m * crit_layers * (tp_layer[0] + tp_layer[1]),
        pp_s=pp_comm[0] + pp_comm[1],
        dp_s=dp[0] + dp[1],
        ep_s=m * crit_layers * (ep_layer[0] + ep_layer[1]),
        cp_s=m * crit_layers * (cp_layer[0] + cp_layer[1]),
        bubble_s=bubble,
        straggler_s=straggler,
    )

    mflops = model_flops_per_token(model, seq, w.attention_flops)
    hflops = hardware_flops_per_token(model, seq, w.recompute, w.attention_flops)
    tokens_step = layout.dp * layout.micro_batch * m * seq
    ideal = tokens_step * mflops / layout.chips / chip.bf16_peak_flops
    node_time = compute + inside
    factors = Factors(
        generality=compute_native / compute,
        chip=ideal / compute_native,
        node=compute / node_time,
        cluster=node_time / step if math.isfinite(step) else 0.0,
    )
    if not math.isfinite(step):
        notes.append("a chip of the job has no working path to its peers: the job cannot run")
    stages = _memory_per_stage(s, layout, model, seq)
    worst = max(stages, key=_total)
    capacity = chip.memory_gb * GB
    hints: tuple[str, ...] = ()
    if worst.total > capacity:
        hints = tuple(fit_hints(s, layout))
    return StepEstimate(
        layout=layout,
        chips=layout.chips,
        peak_flops=layout.chips * chip.bf16_peak_flops,
        step_time_s=step,
        tokens_per_step=tokens_step,
        model_flops_per_token=mflops,
        hardware_flops_per_token=hflops,
        breakdown=breakdown,
        factors=factors,
        memory=worst,
        memory_capacity=capacity,
        stage_memory=stages,
        critical_stage=crit,
        notes=tuple(notes),
        fit_hints=hints,
    )
