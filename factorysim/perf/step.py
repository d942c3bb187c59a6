"""The physics of one training step: compute, communication, pipeline, and four of the five factors.

Times are for the most loaded pipeline stage (the one the step waits for). Per micro-batch the stage
computes its layers forward and backward (and recomputes what the recompute choice says), and runs
tensor-, context- and expert-parallel collectives that cannot overlap its compute. Per step it adds
the pipeline bubble, the point-to-point activations, the exposed part of the data-parallel gradient
and parameter collectives, the optimizer update, and the wait for the slowest chip.

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
from math import ceil, floor

from ..scenario.catalog import ChipSpec, ModelSpec, catalog
from ..scenario.checks import ParallelLayout
from ..scenario.models import Scenario
from ..topology.index import GroupLinks
from . import collectives as coll
from .collectives import LinkRates, Split
from .flops import TokenFlops, hardware_flops_per_token, model_flops_per_token
from .memory import MemoryBreakdown, memory_per_chip, params_per_chip


@dataclass(frozen=True)
class KernelModel:
    """Constants of the kernel model. They come from counting what kernels read and write, or are fitted
    to the calibration table; none is a vendor figure (those live in the catalog)."""

    norm_bytes: float = 66.0
    """Per token, layer and hidden element, forward + backward: layer norms, residual adds, dropout
    (11 reads/writes of 2 bytes forward, twice that backward)."""
    mlp_bytes: float = 12.0
    """Per token, layer and MLP element, forward + backward: the activation function (read + write, 2 B)."""
    gated_mlp_bytes: float = 18.0
    """The same for a gated (SwiGLU) MLP: two inputs read, one output written."""
    unfused_attention_bytes: float = 36.0
    """Per token, layer, head and key, forward + backward: the unfused score matrix written by QK^T, read and
    written by scale-mask-softmax and dropout, read by AV (about 6 passes of 2 B forward, twice backward)."""
    logit_bytes: float = 16.0
    """Per token and vocabulary entry: FP32 logits written, read by the loss, gradient written and read."""
    fp8_cast_bytes: float = 6.0
    """Per token and GEMM-input element, forward + backward: BF16 read + FP8 write of every GEMM input."""
    small_gemm_n: float = 64.0
    """GEMM efficiency falls as n / (n + this) with the smallest sharded dimension n (tile quantization)."""
    optimizer_bytes_per_param: float = 30.0
    """Adam step per owned parameter: FP32 master, two moments (read + write), FP32 gradient read, BF16 write."""
    grad_reduce_bytes: float = 4.0
    """Gradients are reduced in FP32 (Megatron-LM's main_grad)."""
    param_gather_bytes: float = 2.0
    """The distributed optimizer gathers BF16 parameters."""
    comm_interference: float = 0.15
    """Share of compute lost while a collective overlaps it on the same chip (communication kernels occupy
    compute cores). A dedicated async communication engine removes it."""


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
    """The result of the step model for one scenario."""

    layout: ParallelLayout
    chips: int
    peak_flops: float  # cluster dense BF16 peak of the job's chips
    step_time_s: float
    tokens_per_step: int
    model_flops_per_token: float
    hardware_flops_per_token: float
    breakdown: StepBreakdown
    factors: Factors
    memory: MemoryBreakdown
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def blocked(self) -> bool:
        return not math.isfinite(self.step_time_s)

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
            "memory_gb_per_chip": self.memory.total / 1e9,
            "memory_gb": self.memory.as_gb(),
            "chips": self.chips,
            "peak_pflops": self.peak_flops / 1e15,
            "delivered_pflops": self.delivered_flops / 1e15,
            "layout": asdict(self.layout),
            "factors": self.factors.as_dict(),
            "breakdown": {k: num(v) for k, v in asdict(self.breakdown).items()},
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------ compute


@dataclass(frozen=True)
class _Compute:
    layer: float  # one layer, one micro-batch, forward + backward (+ recompute), seconds
    logits: float  # output layer and loss, one micro-batch
    attention: float  # the attention-core share of `layer` (overlap window for context parallelism)


def _size_factor(n: float) -> float:
    return n / (n + KERNELS.small_gemm_n)


def _fp8_reference_speedup() -> float:
    """How much faster FP8 GEMMs run than BF16 on a chip that has both, as calibrated on H100."""
    ref = catalog().chips["H100-SXM-80GB"]
    return ref.fp8_peak_flops * ref.fp8_gemm_efficiency / (ref.bf16_peak_flops * ref.gemm_efficiency)


def _compute_times(s: Scenario, layout: ParallelLayout, chip: ChipSpec, model: ModelSpec, native: bool) -> _Compute:
    """Chip-alone times of one micro-batch. `native`: as if every op the job wants had a fast path."""
    w = s.workload
    tp = layout.tp
    tokens = layout.micro_batch * w.seq / layout.cp
    f = TokenFlops.of(model, w.seq)
    full = w.recompute == "full"
    bf16 = chip.bf16_peak_flops
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency

    # Linear layers: BF16 or FP8 GEMMs.
    n_small = model.hidden / tp
    if model.is_moe:
        n_small = min(n_small, tokens * model.top_k / model.experts * layout.ep)
    size = _size_factor(n_small)
    bf16_rate = bf16 * chip.gemm_efficiency * size
    fp8 = w.precision == "fp8"
    if fp8 and chip.has_fp8:
        lin_rate = chip.fp8_peak_flops * chip.fp8_gemm_efficiency * size
    elif fp8 and native:
        lin_rate = bf16_rate * _fp8_reference_speedup()
    else:
        lin_rate = bf16_rate
    lin_passes = 4.0 if full else 3.0
    t_lin = tokens * f.layer_linear / tp * lin_passes / lin_rate

    # Attention core: fused kernels skip the masked half of the causal square; unfused ones do not,
    # and move the score matrix through memory.
    flash = w.attention == "flash" and ("flash_attention" in chip.fast_paths or native)
    attn_passes = 4.0 if w.recompute in ("full", "selective") else 3.0
    head_dim = model.hidden / model.heads
    if flash:
        t_attn = tokens * f.layer_attention / tp * 0.5 * attn_passes / (bf16 * chip.attention_efficiency)
        attn_bytes = 0.0
    else:
        t_attn = tokens * f.layer_attention / tp * attn_passes / (bf16 * chip.gemm_efficiency * _size_factor(head_dim))
        attn_bytes = KERNELS.unfused_attention_bytes * model.heads / tp * w.seq * attn_passes / 3.0

    # Memory-bound kernels.
    sp = s.parallelism.sequence_parallel or tp == 1
    mlp_elems = model.ffn * model.top_k / tp
    per_token = KERNELS.norm_bytes * model.hidden / (tp if sp else 1)
    per_token += (KERNELS.gated_mlp_bytes if model.gated_mlp else KERNELS.mlp_bytes) * mlp_elems
    if fp8:
        per_token += KERNELS.fp8_cast_bytes * (3 * model.hidden / tp + mlp_elems)
    per_token *= lin_passes / 3.0
    t_mem = tokens * (per_token + attn_bytes) / hbm

    t_logits = tokens * (f.logits / tp * 3.0 / bf16_rate + KERNELS.logit_bytes * model.vocab / tp / hbm)
    return _Compute(layer=t_lin + t_attn + t_mem, logits=t_logits, attention=t_attn)


def _stage_time(layer: float, logits: float, layers: int, pp: int) -> float:
    """The most loaded stage: the first holds ceil(L/pp) layers, the last floor(L/pp) plus the output layer."""
    if pp == 1:
        return layers * layer + logits
    return max(ceil(layers / pp) * layer, floor(layers / pp) * layer + logits)


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


def estimate_step(s: Scenario, layout: ParallelLayout, links: StepLinks) -> StepEstimate:
    """Step time, breakdown and factors for a scenario with the given layout and topology links."""
    w, feats = s.workload, s.features
    chip = s.cluster.chip_spec
    model = w.model_spec()
    link, fabric = s.cluster.link_spec, s.cluster.fabric.spec
    notes: list[str] = []

    def rates(g: GroupLinks) -> LinkRates:
        return LinkRates(g, link.efficiency, fabric.efficiency, link.latency_us * 1e-6, fabric.latency_us * 1e-6)

    m, v, pp, tp = layout.micro_batches, layout.interleave, layout.pp, layout.tp
    tokens = layout.micro_batch * w.seq / layout.cp
    layers = model.layers
    stage_layers = ceil(layers / pp)
    stolen = 0.0 if feats.async_comm_engine else KERNELS.comm_interference
    full = w.recompute == "full"

    actual = _compute_times(s, layout, chip, model, native=False)
    native = _compute_times(s, layout, chip, model, native=True)
    mb_compute = _stage_time(actual.layer, actual.logits, layers, pp)
    mb_native = _stage_time(native.layer, native.logits, layers, pp)
    if w.precision == "fp8" and not chip.has_fp8:
        notes.append(f"{s.cluster.chip_name} has no FP8 path: FP8 GEMMs run in BF16 (generality < 1)")
    if w.attention == "flash" and "flash_attention" not in chip.fast_paths:
        notes.append(f"{s.cluster.chip_name} has no fused attention: the score matrix goes through memory")

    # Tensor parallel: 2 collectives per layer forward, 2 backward, 2 more for a full recompute.
    # With sequence parallelism each is a reduce-scatter + all-gather (the same bytes as an all-reduce).
    act_bytes = tokens * model.hidden * 2.0
    tp_rates = rates(links.tp)
    if s.parallelism.sequence_parallel and tp > 1:
        one = coll.add(coll.reduce_scatter(act_bytes, tp_rates), coll.all_gather(act_bytes, tp_rates))
    else:
        one = coll.all_reduce(act_bytes, tp_rates, feats.in_network_reduction)
    tp_mb = coll.scale(one, (6 if full else 4) * stage_layers)

    # Context parallel: all-gather K and V forward, reduce-scatter their gradients backward; overlaps
    # the attention core.
    cp_mb = coll.ZERO
    if layout.cp > 1:
        kv = 2 * layout.micro_batch * w.seq * model.kv_dim * 2.0 / tp
        per_layer = coll.scale(coll.all_gather(kv, rates(links.cp)), 3 if full else 2)
        cp_mb = coll.scale(_exposed(per_layer, actual.attention, stolen), stage_layers)

    # Expert parallel: dispatch and combine all-to-alls, forward and backward.
    ep_mb = coll.ZERO
    if layout.ep > 1:
        routed = tokens / tp * model.top_k * model.hidden * 2.0
        ep_mb = coll.scale(coll.all_to_all(routed, rates(links.ep)), (6 if full else 4) * stage_layers)

    mb_comm_inside = tp_mb[0] + cp_mb[0] + ep_mb[0]
    mb_comm_across = tp_mb[1] + cp_mb[1] + ep_mb[1]
    mb_time = mb_compute + mb_comm_inside + mb_comm_across

    # Pipeline: bubble of (pp-1)/v micro-batch times; activations cross each chunk boundary forward and back.
    bubble = (pp - 1) / v * mb_time
    pp_comm = coll.ZERO
    if pp > 1:
        send = coll.p2p(act_bytes / tp, rates(links.pp))
        pp_comm = coll.scale(send, 2 * (v * m + pp - 1))

    # Data parallel: gradients reduced after the last micro-batch's backward (overlapping it), parameters
    # gathered under the next step's first forward.
    params = params_per_chip(s, layout)
    dp_rates = rates(links.dp)
    backward_window = mb_compute * (0.75 if full else 2 / 3)
    forward_window = mb_compute - backward_window
    zero = s.parallelism.zero
    grads = params * KERNELS.grad_reduce_bytes
    if zero >= 1:
        dp = coll.add(
            _exposed(coll.reduce_scatter(grads, dp_rates), backward_window, stolen),
            _exposed(coll.all_gather(params * KERNELS.param_gather_bytes, dp_rates), forward_window, stolen),
        )
    else:
        dp = _exposed(coll.all_reduce(grads, dp_rates, feats.in_network_reduction), backward_window, stolen)

    # Optimizer update: memory-bound over the parameters this chip owns.
    owned = params / (layout.dp * layout.cp if zero >= 1 else 1)
    hbm = chip.hbm_tb_s * 1e12 * chip.hbm_efficiency
    optimizer = owned * KERNELS.optimizer_bytes_per_param / hbm

    # Synchronous training waits for the slowest chip.
    speed = links.slowest_speed
    path = m + (pp - 1) / v
    straggler = path * mb_compute * (1.0 / speed - 1.0) if speed > 0 else math.inf

    compute = m * mb_compute + optimizer
    compute_native = m * mb_native + optimizer
    inside = m * mb_comm_inside + pp_comm[0] + dp[0]
    across = m * mb_comm_across + pp_comm[1] + dp[1]
    step = compute + inside + across + bubble + straggler

    breakdown = StepBreakdown(
        compute_s=m * mb_compute,
        optimizer_s=optimizer,
        tp_s=m * (tp_mb[0] + tp_mb[1]),
        pp_s=pp_comm[0] + pp_comm[1],
        dp_s=dp[0] + dp[1],
        ep_s=m * (ep_mb[0] + ep_mb[1]),
        cp_s=m * (cp_mb[0] + cp_mb[1]),
        bubble_s=bubble,
        straggler_s=straggler,
    )

    mflops = model_flops_per_token(model, w.seq)
    hflops = hardware_flops_per_token(model, w.seq, w.recompute)
    tokens_step = layout.dp * layout.micro_batch * m * w.seq
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
        memory=memory_per_chip(s, layout),
        notes=tuple(notes),
    )
