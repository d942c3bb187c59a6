"""What a user describes: the scenario, as pydantic models.

These models are the single source of truth for what a scenario file may contain: the JSON Schema,
the inspector's fields and the error messages all come from them. Unknown keys are rejected.
Catalog references (chip, scale-up link, fabric technology, model) may be a catalog name or an
inline table with the same fields as the catalog entry.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .catalog import ChipSpec, FabricSpec, ModelSpec, ScaleUpSpec, catalog, known
from .errors import one_of, show
from .units import Duration


def _catalog_name(kind: str, what: str):
    def check(name: str) -> str:
        if name not in getattr(catalog(), kind):
            raise ValueError(f"unknown {what} {show(name)}; known: {one_of(known(kind))}")
        return name

    return AfterValidator(check)


def _printable(text: str) -> str:
    if not text.isprintable():
        raise ValueError(f"got {show(text)}: control characters are not allowed here")
    return text


def _prose(text: str) -> str:
    if not text.replace("\n", "").replace("\t", "").isprintable():
        raise ValueError(f"got {show(text)}: control characters other than line breaks and tabs are not allowed")
    return text


Name = Annotated[str, AfterValidator(_printable), Field(max_length=200)]
"""A name or target shown in tables, charts and messages: printable text, one line."""
Prose = Annotated[str, AfterValidator(_prose), Field(max_length=20_000)]
"""A description or brief: text with line breaks, no other control characters."""
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MAX_SEED = 2**63 - 1


def _ref_tag(value: Any) -> str:
    """Which branch of a catalog reference a value is: a name, or an inline table (told apart by type, so an
    error names one branch only)."""
    return "name" if isinstance(value, str) else "inline"


ChipRef: TypeAlias = Annotated[
    Annotated[str, _catalog_name("chips", "chip"), Tag("name")] | Annotated[ChipSpec, Tag("inline")],
    Discriminator(_ref_tag),
]
LinkRef: TypeAlias = Annotated[
    Annotated[str, _catalog_name("links", "scale-up link"), Tag("name")] | Annotated[ScaleUpSpec, Tag("inline")],
    Discriminator(_ref_tag),
]
FabricRef: TypeAlias = Annotated[
    Annotated[str, _catalog_name("fabrics", "fabric technology"), Tag("name")] | Annotated[FabricSpec, Tag("inline")],
    Discriminator(_ref_tag),
]
ModelName = Annotated[str, _catalog_name("models", "model")]
FaultClassName = Annotated[str, _catalog_name("fault_classes", "fault class")]

REF_TAGS = ("name", "inline")
"""Discriminator tags pydantic puts in error locations; dropped when naming a key path."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class FabricConfig(_Section):
    """The scale-out network between servers: a folded Clos of leaf, spine (and core) switches."""

    technology: FabricRef = Field("InfiniBand-NDR", description="catalog fabric name or inline table")
    topology: Literal["fat-tree", "rail-optimized"] = Field(
        "fat-tree",
        description="fat-tree: a server's NICs share one leaf; rail-optimized: NIC i of every server in a "
        "scalable unit goes to leaf i",
    )
    tiers: Literal[2, 3] = Field(2, description="switch tiers: 2 = leaf/spine, 3 = leaf/spine/core")
    nic_gbps: PositiveFloat | None = Field(
        None, le=100_000, description="scale-out bandwidth per chip, Gb/s (default: port speed)"
    )
    oversubscription: float = Field(1.0, ge=1.0, le=16.0, description="leaf downlink : uplink bandwidth")
    switch_radix: PositiveInt | None = Field(
        None, ge=4, le=4096, description="ports per switch (default: technology's)"
    )

    @property
    def spec(self) -> FabricSpec:
        t = self.technology
        return catalog().fabrics[t] if isinstance(t, str) else t

    @property
    def nic_bytes_per_s(self) -> float:
        return (self.nic_gbps or self.spec.port_gbps) * 1e9 / 8

    @property
    def radix(self) -> int:
        return self.switch_radix or self.spec.switch_radix

    def leaf_ports(self) -> tuple[int, int]:
        """(down, up) ports of a leaf switch under the oversubscription ratio."""
        down = max(1, round(self.radix * self.oversubscription / (1 + self.oversubscription)))
        return down, max(1, self.radix - down)

    def max_chips(self) -> int:
        """Largest number of chip NIC ports this Clos can connect."""
        down, _ = self.leaf_ports()
        if self.tiers == 2:
            return down * self.radix  # a spine has `radix` ports, one per leaf
        # 3 tiers: a pod holds radix/2 leaves (spines split their ports half down, half up);
        # a core switch has `radix` ports, one per pod.
        return down * (self.radix // 2) * self.radix


class ClusterConfig(_Section):
    """The machines: servers of chips, their scale-up links and the scale-out fabric."""

    chip: ChipRef = Field("H100-SXM-80GB", description="catalog chip name or inline [cluster.chip] table")
    nodes: PositiveInt = Field(8, le=1_000_000, description="servers, spares included")
    chips_per_node: PositiveInt = Field(8, le=1024, description="accelerators per server")
    scale_up: LinkRef | None = Field(None, description="scale-up link (default: the chip's usual one)")
    spare_nodes: NonNegativeInt = Field(0, le=1_000_000, description="servers kept idle as hot spares")
    node_group_size: PositiveInt = Field(1, le=1_000_000, description="fault-isolation domain, in nodes")
    fabric: FabricConfig = Field(default_factory=FabricConfig)
    power_cap_w: PositiveFloat | None = Field(
        None,
        le=100_000,
        description="power limit per chip, W (default: none, the chip's TDP); GEMM-bound kernels slow down by the "
        "chip's power/performance curve, no phase draws more",
    )

    @model_validator(mode="after")
    def _link_resolves(self) -> ClusterConfig:
        _ = self.link_spec  # an inline chip names no scale-up link: the ValueError says to set cluster.scale_up
        return self

    @field_validator("power_cap_w")
    @classmethod
    def _cap_applies(cls, cap: float | None, info: ValidationInfo) -> float | None:
        chip = info.data.get("chip")
        if cap is None or chip is None:
            return cap
        spec = catalog().chips[chip] if isinstance(chip, str) else chip
        name = chip if isinstance(chip, str) else "the inline chip"
        if spec.tdp_w is None:
            raise ValueError(f"a power cap needs the chip's TDP: {name} has no tdp_w")
        if cap > spec.tdp_w:
            raise ValueError(
                f"{cap:g} W is above {name}'s TDP of {spec.tdp_w:g} W, where a cap does nothing; allowed: up to "
                f"{spec.tdp_w:g}"
            )
        return cap

    @property
    def raw_chip_spec(self) -> ChipSpec:
        """The chip as the catalog (or the inline table) describes it, without the power cap."""
        c = self.chip
        return catalog().chips[c] if isinstance(c, str) else c

    @property
    def chip_spec(self) -> ChipSpec:
        """The chip as it runs: under `power_cap_w` its GEMM-bound kernels are slower (ChipSpec.capped)."""
        spec = self.raw_chip_spec
        return spec if self.power_cap_w is None else _capped(spec, self.power_cap_w)

    @property
    def chip_name(self) -> str:
        return self.chip if isinstance(self.chip, str) else "custom chip"

    @property
    def link_spec(self) -> ScaleUpSpec:
        link = self.scale_up if self.scale_up is not None else self.chip_spec.scale_up
        if link is None:
            raise ValueError("no scale-up link: set cluster.scale_up")
        return catalog().links[link] if isinstance(link, str) else link

    @property
    def link_name(self) -> str:
        link = self.scale_up if self.scale_up is not None else self.chip_spec.scale_up
        return link if isinstance(link, str) else "custom link"

    @property
    def total_chips(self) -> int:
        return self.nodes * self.chips_per_node

    @property
    def job_nodes(self) -> int:
        return self.nodes - self.spare_nodes

    @property
    def job_chips(self) -> int:
        return self.job_nodes * self.chips_per_node


_SHAPE_KEYS = (
    "params_b", "layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab",
    "gated_mlp", "tied_embeddings", "experts", "top_k",
)  # fmt: skip

DEFAULT_MODEL = "llama3-8b"
"""The model a workload trains when it names none and gives no shape."""

CUSTOM_MODEL_DEFAULTS: dict[str, Any] = {"vocab": 51200, "gated_mlp": False, "tied_embeddings": False}
"""What a shape given without `model` assumes for the keys it leaves out (with kv_heads = heads, multi-head
attention, and ffn_hidden = 4 x hidden): a GPT-style transformer with a plain GELU MLP, separate input and
output embeddings, and GPT-2's vocabulary padded to 51,200 as Megatron-LM does."""

DEFAULT_SEQ_LEN = 2048
"""Tokens per sequence when neither the workload nor the model gives one."""

PARAMS_TOLERANCE = 0.05
"""How far a given workload.params_b may be from the count of the shape it comes with."""


class WorkloadConfig(_Section):
    """The training job: the model (a catalog name, a shape, or a name with shape overrides) and its batch."""

    model: ModelName | None = Field(
        None,
        description=f"catalog model name; shape keys below modify it. Without it, shape keys describe a custom "
        f"model (kv_heads = heads, ffn_hidden = 4 x hidden, plain GELU MLP, untied embeddings, vocab 51200 "
        f"unless given); with neither, the job trains {DEFAULT_MODEL}",
    )
    params_b: PositiveFloat | None = Field(
        None, le=1e6, description="published size, billions; must agree with the shape's own count within 5 %"
    )
    layers: PositiveInt | None = Field(None, le=10_000)
    hidden: PositiveInt | None = Field(None, le=1_000_000)
    heads: PositiveInt | None = Field(None, le=100_000)
    kv_heads: PositiveInt | None = Field(None, le=100_000, description="key/value heads (grouped-query attention)")
    ffn_hidden: PositiveInt | None = Field(None, le=10_000_000, description="MLP width (per expert)")
    vocab: PositiveInt | None = Field(None, le=100_000_000)
    gated_mlp: bool | None = Field(None, description="SwiGLU-style MLP with three weight matrices")
    tied_embeddings: bool | None = Field(None, description="input embedding shares weights with the output layer")
    experts: PositiveInt | None = Field(None, le=100_000)
    top_k: PositiveInt | None = Field(None, le=100_000)
    seq_len: PositiveInt | None = Field(None, le=100_000_000, description="tokens per sequence (default: the model's)")
    global_batch: PositiveInt = Field(512, le=1_000_000_000, description="sequences per optimizer step")
    micro_batch: PositiveInt = Field(1, le=1_000_000, description="sequences per micro-batch")
    precision: Literal["bf16", "fp8"] = Field("bf16", description="GEMM precision")
    recompute: Literal["none", "pointwise", "selective", "full"] = Field(
        "none",
        description="activation recomputation: none; pointwise (norm and activation-function outputs rebuilt in "
        "the backward pass from their inputs, as torch.compile's min-cut partitioner does: less memory, no GEMM "
        "again); selective (the attention core again, Megatron-LM); full (every layer's forward again from its "
        "input)",
    )
    attention: Literal["flash", "flash2", "triton", "unfused"] = Field(
        "flash",
        description="flash: the chip's best fused attention (FlashAttention-3 or cuDNN on Hopper); flash2: "
        "FlashAttention-2-class kernels (PyTorch SDPA before FA3); triton: the 2022 Triton FlashAttention "
        "(flash_attn_triton, llm-foundry's attn_impl triton), FlashAttention-1 class; unfused: the score matrix "
        "through memory",
    )
    kernels: Literal["fused", "eager"] = Field(
        "fused",
        description="fused: norms, activation functions and the loss as fused kernels (Megatron-LM, NeMo, "
        "Transformer Engine, torch.compile); eager: PyTorch eager, each op its own kernel and memory pass "
        "(LayerNorm's weight gradient in a second pass, FlashAttention's unpadding copies)",
    )
    loss: Literal["fused", "eager"] = Field(
        "fused",
        description="fused: a fused cross-entropy that keeps one FP32 copy of the logits (Megatron-LM's "
        "vocab-parallel loss, flash-attn's, llm-foundry's default); eager: PyTorch's cross-entropy under "
        "autocast (torchtitan): FP32 copies, log-softmax output and gradients, more memory and traffic",
    )
    grad_dtype: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="gradient buffer and data-parallel gradient reduction: fp32 (Megatron-LM's main_grad, "
        "the default) or bf16",
    )
    attention_flops: Literal["full", "causal"] = Field(
        "full",
        description="how model FLOPs (MFU) count the attention core: the full s x s square (PaLM, Megatron-LM, "
        "torchtitan) or its causal half (NeMo since 2025); changes what MFU reports, not the step time",
    )
    target_tokens: PositiveFloat | None = Field(None, le=1e18, description="tokens to train, for the ETA")

    @model_validator(mode="after")
    def _shape_resolves(self) -> WorkloadConfig:
        self.model_spec()  # a ValueError here names what is missing or inconsistent
        return self

    def shape_overrides(self) -> tuple[tuple[str, Any], ...]:
        """The shape keys this workload sets, in a fixed order."""
        return tuple((k, getattr(self, k)) for k in _SHAPE_KEYS if getattr(self, k) is not None)

    @property
    def is_custom(self) -> bool:
        """A shape given without a catalog model."""
        return self.model is None and any(k != "params_b" for k, _ in self.shape_overrides())

    def model_spec(self) -> ModelSpec:
        """The model's shape: the catalog entry with any shape keys given here laid over it, or a custom shape
        on the documented defaults (CUSTOM_MODEL_DEFAULTS), never on another model's fields."""
        d = self.__dict__
        return _model_spec_of(d["model"], tuple(d[k] for k in _SHAPE_KEYS))

    @property
    def model_name(self) -> str:
        if self.is_custom:
            return "custom model"
        shaped = any(k != "params_b" for k, _ in self.shape_overrides())
        name = self.model or DEFAULT_MODEL
        return f"{name} (modified)" if shaped else name

    @property
    def seq(self) -> int:
        return self.seq_len or self.model_spec().seq_len or DEFAULT_SEQ_LEN

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq


@lru_cache(maxsize=64)
def _capped(spec: ChipSpec, cap_w: float) -> ChipSpec:
    return spec.capped(cap_w)


@lru_cache(maxsize=1024)
def _model_spec_of(name: str | None, values: tuple[Any, ...]) -> ModelSpec:
    """Cached by the shape keys' values in _SHAPE_KEYS order (None where not given)."""
    return _model_spec(name, tuple((k, v) for k, v in zip(_SHAPE_KEYS, values, strict=True) if v is not None))


@lru_cache(maxsize=256)
def _model_spec(name: str | None, overrides: tuple[tuple[str, Any], ...]) -> ModelSpec:
    shape = {k: v for k, v in overrides if k != "params_b"}
    if name is None and not shape:
        name = DEFAULT_MODEL
    if name is not None:
        base: dict[str, Any] = catalog().models[name].model_dump(exclude_none=True)
        if shape:  # the published size and source describe the catalog model, not this one
            base.pop("source", None)
            base.pop("params_b", None)
    else:
        base = dict(CUSTOM_MODEL_DEFAULTS)
    base.update(dict(overrides))
    missing = [k for k in ("layers", "hidden", "heads") if k not in base]
    if missing:
        raise ValueError(
            f"no model shape: set workload.model to one of {one_of(known('models'))}, "
            f"or give {', '.join('workload.' + k for k in missing)}"
        )
    return ModelSpec.model_validate(base)


class ParallelismConfig(_Section):
    """How the job is split over chips. Ranks are laid out tp (innermost), cp, dp, pp (outermost). A scenario
    that gives none of tp, pp, cp and dp gets a layout chosen by rule when it is loaded: the smallest tp (1, 2,
    4, ... up to a server's chips, dividing the heads and the MLP width) with which the job fits in memory
    without a pipeline, else a server-wide tp and the fewest pipeline stages that fit, else (when workload.recompute
    is not given) the same with full recompute; dp fills the cluster."""

    tp: PositiveInt = Field(
        1,
        le=1024,
        description="tensor parallel degree (inside a scale-up domain); when the scenario gives none of tp, pp, cp "
        "and dp, the smallest tp with which the job fits (else a server's chips and the fewest pp stages that fit)",
    )
    pp: PositiveInt = Field(
        1, le=100_000, description="pipeline stages (1, or chosen with tp when the scenario gives no layout)"
    )
    dp: Annotated[int, Field(gt=0, le=1_000_000_000)] | Literal["auto"] = Field(
        "auto", description='data parallel replicas, or "auto" to fill the cluster'
    )
    cp: PositiveInt = Field(1, le=1_000_000, description="context parallel degree (sequence split for attention)")
    ep: PositiveInt = Field(1, le=1_000_000, description="expert parallel degree (MoE), carved out of dp")
    interleave: PositiveInt = Field(1, le=10_000, description="virtual pipeline chunks per stage (1 = plain 1F1B)")
    sequence_parallel: bool = Field(
        True, description="shard norms/dropout over tp; all-reduce -> reduce-scatter + all-gather"
    )
    zero: int = Field(
        1,
        ge=0,
        le=3,
        description="optimizer sharding over dp x cp: 0 none, 1 optimizer state (Megatron-LM's distributed "
        "optimizer), 2 +gradients, 3 +weights (FSDP)",
    )
    first_stage_layers: PositiveInt | None = Field(
        None,
        description="layers on the first pipeline stage (default: an even split); the stages between the first "
        "and the last share the remaining layers as evenly as possible",
    )
    last_stage_layers: PositiveInt | None = Field(
        None, description="layers on the last pipeline stage, which also holds the output layer (default: even)"
    )
    stage_layers: list[PositiveInt] | None = Field(
        None,
        description="layers on each pipeline stage, first to last (pp entries summing to the model's layers); "
        "replaces first_stage_layers and last_stage_layers",
    )


class FeaturesConfig(_Section):
    """Hardware and software features that change the step physics."""

    tp_overlap: bool = Field(
        False,
        description="overlap tensor-parallel reduce-scatter and all-gather with the GEMMs that produce and "
        "consume them (Transformer Engine userbuffers, PyTorch async TP)",
    )
    in_network_reduction: bool = Field(
        False,
        description="reductions in the switch or near memory and all-gathers by multicast, on scale-up links "
        "and fabrics that support them (catalog flag in_network_reduction)",
    )
    async_comm_engine: bool = Field(
        False,
        description="communication on dedicated engines: overlapped collectives no longer take compute cores",
    )


FaultKind = Literal["fail", "straggle", "degrade", "flap", "crash", "repair"]
FAULT_KINDS: tuple[str, ...] = ("fail", "straggle", "degrade", "flap", "crash", "repair")


class ReliabilityConfig(_Section):
    """Fault handling: the recovery policy, checkpoints, detection and repair times, fault rates."""

    policy: Literal["checkpoint-restart", "isolate-group"] = Field(
        "checkpoint-restart",
        description="checkpoint-restart: any fail-stop stops the job, which restarts from the last checkpoint; "
        "isolate-group: only the failed node group drops out, the rest keep training, a hot spare joins",
    )
    checkpoint_interval: Duration = Field(1800.0, gt=0, description="training time between checkpoints")
    checkpoint_cost: Duration = Field(20.0, description="training pause per checkpoint")
    checkpoint_async: bool = Field(False, description="save in the background: pause only for async_checkpoint_cost")
    async_checkpoint_cost: Duration = Field(2.0, description="pause per checkpoint when saving asynchronously")
    detect_time: Duration = Field(
        180.0, description="from a fail-stop fault to its detection (the job hangs meanwhile)"
    )
    restart_time: Duration = Field(600.0, description="relaunch the job and reload the checkpoint")
    join_time: Duration = Field(300.0, description="isolate-group: a hot spare joins the running job")
    isolate_crashes: bool = Field(
        False,
        description="isolate-group: a software crash restarts only its node group's processes from their peers' "
        "in-memory state, the rest keep training (no global rollback)",
    )
    rolling_maintenance: bool = Field(
        False,
        description="isolate-group: planned maintenance drains one node group at a time instead of stopping the job",
    )
    rate_multiplier: float = Field(1.0, ge=0, le=1000, description="scale every fault rate (e.g. 5 for a fault storm)")
    evict_stragglers: bool = Field(
        True, description="swap a chip or link that stays slow for straggler_window for a spare"
    )
    straggler_window: Duration = Field(600.0, description="how long a rank must be slow before it is evicted")
    rates: dict[FaultClassName, Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="fault rate overrides per unit-hour, by fault class (factorysim catalog)"
    )
    repair: dict[FaultClassName, Duration] = Field(
        default_factory=dict, description="repair time overrides by fault class"
    )


class PowerConfig(_Section):
    """Power draws that override the catalog's (factorysim/scenario/data/power.toml): per chip by phase, and the
    servers' host. A value left out comes from the chip's catalog entry, or from [chip_defaults] as a share of
    its TDP; `factorysim estimate` says which."""

    idle_w: PositiveFloat | None = Field(None, le=100_000, description="per chip with nothing to do, W")
    memory_bound_w: PositiveFloat | None = Field(
        None, le=100_000, description="per chip in memory-bound kernels (norms, casts, the optimizer), W"
    )
    waiting_w: PositiveFloat | None = Field(
        None, le=100_000, description="per chip waiting on communication, a pipeline bubble or a straggler, W"
    )
    host_w: float | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="per server while its chips train: CPUs, memory, storage, fans, scale-up switches, power-supply "
        "losses (not the fabric NICs), W",
    )
    host_idle_w: float | None = Field(None, ge=0, le=1_000_000, description="per server with its chips idle, W")


class FacilityConfig(_Section):
    """The building: its power limit, cooling overhead (PUE), electricity price and grid carbon intensity.
    Values left out come from power.toml [facility] (US averages and a hyperscale PUE, all sourced)."""

    power_mw: PositiveFloat | None = Field(
        None,
        le=1e6,
        description="the most the site may draw, MW at the meter (IT x PUE); a cluster whose peak is above it is "
        "refused (default: no limit)",
    )
    pue: float | None = Field(None, ge=1, le=5, description="power usage effectiveness: site power / IT power")
    electricity_usd_per_kwh: float | None = Field(None, ge=0, le=100, description="price of electricity, USD/kWh")
    carbon_g_per_kwh: float | None = Field(None, ge=0, le=5000, description="grid carbon intensity, gCO2/kWh")


class CostConfig(_Section):
    """Capital cost, amortised over `amortization_years`. Values left out come from the catalog (chip and switch
    prices, public estimates) and power.toml [facility] (a server costs 1.64 x its accelerators, 5 years)."""

    chip_usd: float | None = Field(None, ge=0, le=1e9, description="price of one chip, USD")
    server_usd: float | None = Field(
        None, ge=0, le=1e10, description="price of one server beyond its accelerators, USD"
    )
    switch_usd: float | None = Field(None, ge=0, le=1e9, description="price of one fabric switch, USD")
    amortization_years: float | None = Field(None, gt=0, le=100, description="years the hardware is paid off over")


class ScheduledFault(_Section):
    """A fault that happens at a set time: [[faults]] at = "2d", target = "n3", kind = "fail"."""

    at: Duration = Field(description="sim time of the fault")
    target: Name = Field(
        description='a server "n3", chip "n3.2" (its NIC link for degrade/flap), switch "leaf1", or "job"'
    )
    kind: FaultKind = Field("fail", description="fail, straggle, degrade, flap, crash (job) or repair")
    factor: float | None = Field(
        None, gt=0, le=1, description="straggle: speed; degrade: bandwidth share; flap: down share"
    )
    duration: Duration | None = Field(None, description="how long a straggle, degrade or flap lasts")


class RunConfig(_Section):
    """How long to simulate, and the random seed."""

    duration: Duration = Field(30 * 86400.0, gt=0, description="simulated wall time")
    seed: NonNegativeInt = Field(1, le=MAX_SEED)


class TopologyEdit(_Section):
    """One change to the cluster graph: add a link, remove one, or set its bandwidth (thin or widen it)."""

    op: Literal["add", "remove", "set"] = Field(description="add a link, remove it, or set its bandwidth")
    a: Name = Field(description='one end: "n3.2" (chip), "n3" (server), "leaf1", "spine0", "core4"')
    b: Name = Field(description="the other end")
    gbps: PositiveFloat | None = Field(
        None, le=100_000, description="bandwidth per direction, Gb/s (add: default by link kind)"
    )


class TopologyConfig(_Section):
    """Edits to the built cluster graph, applied in order."""

    edits: list[TopologyEdit] = Field(default_factory=list)


Coordinate = Annotated[int, Field(ge=-100_000, le=100_000)]


class LayoutConfig(_Section):
    """Where the user put nodes on the canvas (cell coordinates in the node's zoom view)."""

    positions: dict[Name, tuple[Coordinate, Coordinate]] = Field(
        default_factory=dict, description='node -> [x, y], e.g. "n3" = [10, 4]'
    )


class ChallengeConfig(_Section):
    """An objective for the sandbox: what to reach, by when, and what the player may change."""

    title: Name = Field(min_length=1)
    level: Literal["easy", "medium", "hard"] = "medium"
    brief: Prose = Field("", description="the situation and the goal, for the player")
    goal: Literal["tokens", "ettr", "mfu"] = Field(
        description="tokens: train `target` tokens before `within`; ettr: effective training time ratio of at "
        "least `target` at `within`; mfu: a step MFU of at least `target` before `within`"
    )
    target: PositiveFloat = Field(le=1e18)
    within: Duration = Field(gt=0, description="sim time the player has")
    may_change: list[str] = Field(
        default_factory=list,
        description='scenario keys the player may edit; patterns like "parallelism.*"; "topology" allows link edits',
    )
    min: dict[Name, FiniteFloat | Name] = Field(
        default_factory=dict, description="lowest allowed value per key (a budget)"
    )
    max: dict[Name, FiniteFloat | Name] = Field(
        default_factory=dict, description="highest allowed value per key (a budget)"
    )
    hint: Prose = ""


class Scenario(BaseModel):
    """A whole scenario: cluster, training job, parallel layout, features, reliability and run length."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, title="factorysim scenario", allow_inf_nan=False
    )

    name: Name = Field("untitled", min_length=1, description="short name")
    description: Prose = Field("", description="what this is and where its figures come from")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    parallelism: ParallelismConfig = Field(default_factory=ParallelismConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    reliability: ReliabilityConfig = Field(default_factory=ReliabilityConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    power: PowerConfig = Field(default_factory=PowerConfig, description="power draws overriding the catalog's")
    facility: FacilityConfig = Field(
        default_factory=FacilityConfig, description="the site: power limit, PUE, electricity price, carbon"
    )
    cost: CostConfig = Field(default_factory=CostConfig, description="capital cost and its amortisation")
    faults: list[ScheduledFault] = Field(default_factory=list, description="faults at set times")
    topology: TopologyConfig = Field(default_factory=TopologyConfig, description="edits to the cluster graph")
    layout: LayoutConfig = Field(default_factory=LayoutConfig, description="node positions on the canvas")
    challenge: ChallengeConfig | None = Field(None, description="an objective for the sandbox")
