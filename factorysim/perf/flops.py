"""FLOP counts of a transformer training step.

Model FLOPs (MFU) per token: 6·M + 12·L·h·s, where M is the parameter count that takes part in a
matrix multiply per token (active layers and the output layer; equal to N for tied embeddings).
This is PaLM's appendix-B count and, for GPT-style models, exactly Megatron-LM's
72·l·h² + 12·l·h·s + 6·V·h. The attention term counts the full s × s square of scores ("full", the
convention of PaLM, Megatron-LM and torchtitan); "causal" counts the half a causal mask keeps,
6·L·h·s (NeMo and Megatron-Bridge since 2025). The convention changes what MFU reports, never the
step time: fused attention kernels skip the masked half either way.

Hardware FLOPs (HFU) add what recomputation runs again: full recompute repeats the forward of every
layer (linear and attention core), selective recompute repeats the attention core, pointwise recompute
repeats no matrix multiply (only norms and activation functions). The output layer is never recomputed. With full recompute this is Megatron-LM's 96·B·s·l·h²·(1 + s/6h + V/16lh).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..scenario.catalog import ModelSpec

Recompute = str  # "none" | "pointwise" | "selective" | "full"
ATTENTION_SHARE = {"full": 1.0, "causal": 0.5}
"""Share of the s × s score square each convention counts."""


@dataclass(frozen=True)
class TokenFlops:
    """Forward FLOPs per token, split by kernel class."""

    layer_linear: float  # one layer's GEMMs (active experts only)
    layer_attention: float  # one layer's attention core (QK^T and AV, full square)
    logits: float  # output layer

    @classmethod
    def of(cls, model: ModelSpec, seq_len: int) -> TokenFlops:
        h = model.hidden
        return cls(
            layer_linear=2.0 * (model.layer_params(active=True) - 4 * h),  # norms do no matmul
            layer_attention=4.0 * seq_len * h,
            logits=2.0 * model.vocab * h,
        )


def model_flops_per_token(model: ModelSpec, seq_len: int, attention: str = "full") -> float:
    """6·M + 12·L·h·s (full) or 6·M + 6·L·h·s (causal): forward and backward of every matmul, no recompute."""
    f = TokenFlops.of(model, seq_len)
    share = ATTENTION_SHARE[attention]
    return 3.0 * (model.layers * (f.layer_linear + share * f.layer_attention) + f.logits)


def hardware_flops_per_token(model: ModelSpec, seq_len: int, recompute: Recompute, attention: str = "full") -> float:
    """Model FLOPs plus the forward passes recomputation repeats (same attention convention)."""
    f = TokenFlops.of(model, seq_len)
    share = ATTENTION_SHARE[attention]
    extra = 0.0
    if recompute == "full":
        extra = model.layers * (f.layer_linear + share * f.layer_attention)
    elif recompute == "selective":
        extra = model.layers * share * f.layer_attention
    return model_flops_per_token(model, seq_len, attention) + extra
