"""The hardware and model catalog: every figure from the outside world, with its source.

The catalog lives in TOML files under ``scenario/data/`` so that a reader can check each number
against the source written next to it. This module loads them into validated specs.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

FastPath = Literal["bf16", "fp8", "flash_attention", "grouped_gemm"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


TRITON_FLASH_ATTENTION_SHARE = 0.5
"""The 2022 Triton FlashAttention (flash_attn_triton.py, which llm-foundry's attn_impl "triton" runs) against
FlashAttention-2 on the same chip: its docstring says its forward + backward is "slightly slower than" the CUDA
FlashAttention(-1), and FlashAttention-2 is "around 2x" FlashAttention(-1) (Dao 2023, arXiv 2307.08691, abstract).
Both measured on A100; that the ratio holds on H100, where neither kernel uses Hopper's tensor-memory features,
is an assumption."""


class ChipSpec(_Spec):
    """One accelerator: peaks, memory, and the achieved efficiencies the step model uses."""

    kind: Literal["gpu", "npu", "tpu", "other"] = "gpu"
    bf16_tflops: PositiveFloat | None = Field(None, description="dense BF16 peak, TFLOP/s")
    fp8_tflops: PositiveFloat | None = Field(None, description="dense FP8 peak, TFLOP/s; absent = no FP8 path")
    memory_gb: PositiveFloat = Field(description="device memory, GB")
    hbm_tb_s: PositiveFloat = Field(description="device memory bandwidth, TB/s")
    scale_up: str | None = Field(None, description="default scale-up link (catalog name)")
    nic_gbps: PositiveFloat | None = Field(None, description="typical scale-out bandwidth per chip, Gb/s")
    fast_paths: tuple[FastPath, ...] = Field(
        ("bf16", "flash_attention", "grouped_gemm"),
        description="op classes and precisions the chip runs natively; others fall back to a slow path",
    )
    gemm_efficiency: float = Field(0.6, gt=0, le=1, description="achieved share of BF16 peak on large GEMMs")
    fp8_gemm_efficiency: float = Field(0.0, ge=0, le=1, description="achieved share of FP8 peak on large GEMMs")
    attention_efficiency: float = Field(
        0.4, gt=0, le=1, description="the best fused attention kernels on long sequences, share of BF16 peak"
    )
    flash2_attention_efficiency: float | None = Field(
        None, gt=0, le=1, description="FlashAttention-2-class kernels, share of BF16 peak (default: as the best)"
    )
    hbm_efficiency: float = Field(0.8, gt=0, le=1, description="achieved share of memory bandwidth")
    sm_count: PositiveInt = Field(
        132, description="streaming multiprocessors (compute units) GEMM tiles spread over; default H100's 132"
    )
    source: str = ""
    efficiency_source: str = ""
    assumptions: str = ""
    note: str = ""
    # Power and price (catalog chips take them from power.toml; figures left out come from its [chip_defaults])
    tdp_w: PositiveFloat | None = Field(
        None, le=100_000, description="board power at full GEMM load (TDP), W; the draw of GEMM-bound phases"
    )
    idle_w: PositiveFloat | None = Field(None, le=100_000, description="draw with nothing to do, W")
    memory_bound_w: PositiveFloat | None = Field(
        None, le=100_000, description="draw in memory-bound kernels (norms, casts, the optimizer), W"
    )
    waiting_w: PositiveFloat | None = Field(
        None, le=100_000, description="draw while waiting on communication, a pipeline bubble or a straggler, W"
    )
    host_w: float | None = Field(
        None, ge=0, le=100_000, description="the chip's usual server outside its accelerators, per accelerator, W"
    )
    cap_exponent: float | None = Field(
        None, gt=0, le=3, description="power cap: a phase above the cap runs at (cap / its draw)^this of its speed"
    )
    price_usd: float | None = Field(None, ge=0, le=1e9, description="price of one chip, USD")
    power_source: str = ""
    power_assumptions: str = ""

    @model_validator(mode="after")
    def _needs_a_peak(self) -> ChipSpec:
        if self.bf16_tflops is None and self.fp8_tflops is None:
            raise ValueError("a chip needs bf16_tflops (or at least fp8_tflops)")
        return self

    @property
    def bf16_peak_flops(self) -> float:
        """Dense BF16 peak in FLOP/s. Without a published BF16 figure: FP8 / 2 (stated in `assumptions`)."""
        if self.bf16_tflops is not None:
            return self.bf16_tflops * 1e12
        assert self.fp8_tflops is not None
        return self.fp8_tflops * 1e12 / 2

    def attention_rate(self, kernel: str) -> float:
        """Achieved FLOP/s of fused attention on long sequences (model FLOPs: backward = 2 x forward)."""
        eff = self.attention_efficiency
        if kernel in ("flash2", "triton") and self.flash2_attention_efficiency is not None:
            eff = self.flash2_attention_efficiency
        if kernel == "triton":
            eff *= TRITON_FLASH_ATTENTION_SHARE
        return self.bf16_peak_flops * eff

    def capped(self, cap_w: float) -> ChipSpec:
        """The chip under a power cap: its GEMM-bound kernels (GEMMs, fused attention) run at
        (cap / TDP)^cap_exponent of their speed, so their achieved share of the peak falls by that much.
        Memory-bound and waiting phases draw less than any cap the scenario allows and keep their speed."""
        if self.tdp_w is None or cap_w >= self.tdp_w:
            return self
        speed = self.cap_speed(cap_w, self.tdp_w)
        flash2 = self.flash2_attention_efficiency
        return self.model_copy(
            update={
                "gemm_efficiency": self.gemm_efficiency * speed,
                "fp8_gemm_efficiency": self.fp8_gemm_efficiency * speed,
                "attention_efficiency": self.attention_efficiency * speed,
                "flash2_attention_efficiency": None if flash2 is None else flash2 * speed,
            }
        )

    def cap_speed(self, cap_w: float, draw_w: float) -> float:
        """Speed of a phase that would draw `draw_w` under a cap of `cap_w` (1 when the cap is above it)."""
        if cap_w >= draw_w:
            return 1.0
        exponent = self.cap_exponent if self.cap_exponent is not None else catalog().power.power_cap.exponent
        return (cap_w / draw_w) ** exponent

    @property
    def has_fp8(self) -> bool:
        return self.fp8_tflops is not None and "fp8" in self.fast_paths

    @property
    def fp8_peak_flops(self) -> float:
        return (self.fp8_tflops or 0.0) * 1e12


class ScaleUpSpec(_Spec):
    """A scale-up link: NVLink, MTLink, Infinity Fabric."""

    gb_s_per_dir: PositiveFloat = Field(description="bandwidth per chip per direction, GB/s")
    domain: PositiveInt = Field(8, le=1_000_000, description="chips in one scale-up domain")
    efficiency: float = Field(0.8, gt=0, le=1, description="achieved bus bandwidth / link bandwidth")
    latency_us: float = Field(1.5, ge=0, description="latency per collective algorithm step, µs")
    in_network_reduction: bool = Field(False, description="the switch (or memory) reduces and multicasts")
    in_network_efficiency: float = Field(
        0.6, gt=0, le=1, description="achieved in-network all-reduce bandwidth (bytes each rank sends) / link"
    )
    source: str = ""


class FabricSpec(_Spec):
    """A scale-out fabric technology: InfiniBand, RoCE, Omni-Path."""

    port_gbps: PositiveFloat = Field(description="port speed, Gb/s")
    switch_radix: PositiveInt = Field(ge=4, le=4096, description="ports per switch at port speed")
    efficiency: float = Field(0.85, gt=0, le=1, description="achieved bus bandwidth / NIC bandwidth")
    latency_us: float = Field(
        14.0, ge=0, description="latency per collective algorithm step across servers, µs (NCCL's network ring step)"
    )
    in_network_reduction: bool = Field(False, description="the switches reduce (SHARP) and multicast")
    in_network_efficiency: float = Field(
        0.6, gt=0, le=1, description="achieved in-network all-reduce bandwidth (bytes each rank sends) / NIC"
    )
    source: str = ""
    # Power and price (catalog fabrics take them from power.toml)
    switch_w: float | None = Field(None, ge=0, le=1e6, description="one switch chassis, typical, W (optics apart)")
    port_w: float | None = Field(None, ge=0, le=10_000, description="optics on one switch port, W")
    nic_w: float | None = Field(None, ge=0, le=10_000, description="one chip's NIC port: the card and its optic, W")
    switch_usd: float | None = Field(None, ge=0, le=1e9, description="price of one switch, USD")
    power_source: str = ""
    power_assumptions: str = ""


class ModelSpec(_Spec):
    """A transformer's shape. MoE models give experts and top_k."""

    params_b: PositiveFloat | None = Field(None, description="published parameter count, billions")
    layers: PositiveInt = Field(le=10_000)
    hidden: PositiveInt = Field(le=1_000_000)
    heads: PositiveInt = Field(le=100_000)
    kv_heads: PositiveInt | None = Field(None, le=100_000)
    ffn_hidden: PositiveInt | None = Field(
        None, le=10_000_000, description="MLP width (per expert); default 4 x hidden"
    )
    vocab: PositiveInt = Field(51200, le=100_000_000)
    gated_mlp: bool = False
    tied_embeddings: bool = True
    experts: PositiveInt = Field(1, le=100_000)
    top_k: PositiveInt = Field(1, le=100_000)
    seq_len: PositiveInt | None = Field(
        None, le=100_000_000, description="training context length the model was built for"
    )
    source: str = ""

    @model_validator(mode="after")
    def _shape_is_consistent(self) -> ModelSpec:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.kv_heads is not None and (self.kv_heads > self.heads or self.heads % self.kv_heads):
            raise ValueError(f"kv_heads ({self.kv_heads}) must divide heads ({self.heads})")
        if self.top_k > self.experts:
            raise ValueError(f"top_k ({self.top_k}) cannot exceed experts ({self.experts})")
        return self

    @property
    def ffn(self) -> int:
        return self.ffn_hidden or 4 * self.hidden

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * (self.kv_heads or self.heads)

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    def attention_params(self) -> int:
        h = self.hidden
        return 2 * h * h + 2 * h * self.kv_dim

    def mlp_params(self) -> int:
        """One MLP (one expert)."""
        return (3 if self.gated_mlp else 2) * self.hidden * self.ffn

    def layer_params(self, active: bool = False) -> int:
        experts = self.top_k if active else self.experts
        router = self.hidden * self.experts if self.is_moe else 0
        return self.attention_params() + experts * self.mlp_params() + router + 4 * self.hidden

    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    def total_params(self) -> int:
        return self.layers * self.layer_params() + self.embedding_params()


FaultUnit = Literal["gpu", "host", "gpu_port", "leaf", "spine", "core", "job"]
FaultClassKind = Literal["fail-stop", "crash", "planned", "straggler", "degrade", "flapping"]


class FaultClassSpec(_Spec):
    """A class of faults: how often per unit, what it does, how long until the part is back."""

    unit: FaultUnit
    kind: FaultClassKind
    rate: float = Field(ge=0, description="per unit-hour")
    repair: float = Field(0.0, ge=0, description="seconds until the part is back (or a gray fault clears)")
    slowdown: float | None = Field(None, gt=0, le=1, description="straggler speed")
    factor: float | None = Field(None, ge=0, le=1, description="degrade: bandwidth share; flapping: down share")
    source: str = ""

    @model_validator(mode="before")
    @classmethod
    def _durations(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("repair"), str):
            from .units import parse_duration

            data = {**data, "repair": parse_duration(data["repair"])}
        return data


class ChipPowerDefaults(_Spec):
    """What a chip's power figures default to when its entry leaves them out: shares of its TDP."""

    idle_share: float = Field(gt=0, lt=1)
    memory_bound_share: float = Field(gt=0, le=1)
    waiting_share: float = Field(gt=0, le=1)
    host_share: float = Field(ge=0, le=10)
    host_idle_share: float = Field(ge=0, le=1, description="host draw with the chips idle / host_w")
    source: str = ""
    assumptions: str = ""


class FacilityDefaults(_Spec):
    """Facility and economics: PUE, electricity, carbon, amortisation, server cost."""

    pue: float = Field(ge=1, le=5)
    electricity_usd_per_kwh: float = Field(ge=0)
    carbon_g_per_kwh: float = Field(ge=0)
    amortization_years: float = Field(gt=0)
    server_cost_share: float = Field(
        ge=0, description="the server beyond its accelerators, per accelerator / chip price"
    )
    source: str = ""
    assumptions: str = ""


class PowerCapCurve(_Spec):
    """How a power cap slows a phase whose draw is above it."""

    exponent: float = Field(gt=0, le=3)
    source: str = ""
    assumptions: str = ""


class ModelCardRun(_Spec):
    """A published training run's energy (and emissions), with what its card publishes to reproduce them."""

    name: str
    chip: str
    gpu_hours: PositiveFloat
    pue: float = Field(1.0, ge=1)
    carbon_g_per_kwh: float | None = None
    energy_mwh: PositiveFloat
    emissions_t: float | None = None
    source: str = ""


class NodeMeasurement(_Spec):
    """A measured server draw during training."""

    name: str
    chip: str
    chips: PositiveInt
    measured_w: PositiveFloat
    source: str = ""


class SiteSwing(_Spec):
    """A published order of magnitude for a whole site's power swing."""

    low_mw: PositiveFloat
    high_mw: PositiveFloat
    meta_quote: str = ""
    source: str = ""


class PowerCatalog(_Spec):
    """Power, energy and cost figures beyond the chips' and fabrics' own (power.toml)."""

    chip_defaults: ChipPowerDefaults
    facility: FacilityDefaults
    power_cap: PowerCapCurve
    model_cards: tuple[ModelCardRun, ...] = ()
    node_measurements: tuple[NodeMeasurement, ...] = ()
    site_swing: SiteSwing


class Catalog(BaseModel):
    """Everything the scenario may name."""

    chips: dict[str, ChipSpec]
    links: dict[str, ScaleUpSpec]
    fabrics: dict[str, FabricSpec]
    models: dict[str, ModelSpec]
    fault_classes: dict[str, FaultClassSpec]
    power: PowerCatalog


def _read(name: str) -> dict:
    return tomllib.loads(resources.files("factorysim.scenario").joinpath("data", name).read_text("utf-8"))


def _with_power(entries: dict[str, dict], power: dict[str, dict], what: str) -> dict[str, dict]:
    """Catalog entries with their power and price figures from power.toml (its `source` and `assumptions`
    become `power_source` and `power_assumptions`)."""
    unknown = set(power) - set(entries)
    if unknown:
        raise ValueError(f"power.toml names {what} not in the catalog: {sorted(unknown)}")
    out = {}
    for name, entry in entries.items():
        extra = dict(power.get(name, {}))
        for key in ("source", "assumptions"):
            if key in extra:
                extra[f"power_{key}"] = extra.pop(key)
        out[name] = {**entry, **extra}
    return out


@cache
def catalog() -> Catalog:
    """The built-in catalog (validated once, then cached)."""
    power = _read("power.toml")
    return Catalog.model_validate(
        {
            "chips": _with_power(_read("chips.toml"), power.pop("chips"), "chips"),
            "links": _read("links.toml"),
            "fabrics": _with_power(_read("fabrics.toml"), power.pop("fabrics"), "fabrics"),
            "models": _read("models.toml"),
            "fault_classes": _read("failure_rates.toml"),
            "power": power,
        }
    )


def known(kind: str) -> list[str]:
    """Catalog names of one kind: 'chips', 'links', 'fabrics', 'models' or 'fault_classes'."""
    return sorted(getattr(catalog(), kind))
