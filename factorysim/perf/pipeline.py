"""Pipeline schedules: how long a step takes on stages of unequal work, and what each stage holds in flight.

1F1B (PipeDream-Flush, Megatron-LM): with per-micro-batch stage times t_i (forward + backward) and m
micro-batches, the first micro-batch passes every stage once forward and once backward, and the slowest
stage sets the pace of the rest:

    T = m·max(t) + (Σ t − max(t))            bubble = Σ t − max(t)

which is the familiar (p − 1)·t when the p stages are equal. With v interleaved chunks per stage
(Narayanan et al. 2021) the fill and drain pass chunks 1/v the size, so the bubble is (Σ t − max(t)) / v.

In flight (activations a stage holds at its peak): in 1F1B stage i (0 = first) starts p − i micro-batches
before its first backward, so it holds min(p − i, m). Megatron-LM's interleaved schedule warms up
2·(p − i − 1) + (v − 1)·p chunks and holds one more in the steady state (at most m·v): the first stage
holds p·(1 + (p − 1)/(p·v)) micro-batches' worth (Korthikanti et al. 2022, §4.2.3).

Chunks of one stage need not hold equal layers (`chunk_layers`): Llama 3's pipeline takes one layer off the
first and the last stage, so that the first chunk of the first stage holds only the embedding and the last
chunk of the last stage only the output layer and the loss (arXiv 2407.21783, §3.3.2). Then what a stage
holds is counted chunk by chunk (`held_layers`): the schedule runs forwards in groups of p micro-batches per
chunk, chunk 0 first, and backwards in the same groups from the last chunk; the peak is the largest count of
layers whose forward has run and whose backward has not, over the warm-up and one period of the steady state
(after which the pattern repeats).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from ..scenario.checks import chunk_layers

__all__ = ["bubble_time", "chunk_layers", "held_layers", "in_flight", "pipeline_time"]


def pipeline_time(stage_times: Sequence[float], micro_batches: int, interleave: int = 1) -> float:
    """Time of m micro-batches through stages with per-micro-batch times `stage_times` (bubble included)."""
    slowest = max(stage_times)
    return micro_batches * slowest + bubble_time(stage_times, interleave)


def bubble_time(stage_times: Sequence[float], interleave: int = 1) -> float:
    """The idle time of the slowest stage while the pipeline fills and drains."""
    return (sum(stage_times) - max(stage_times)) / interleave


def in_flight(stage: int, pp: int, micro_batches: int, interleave: int = 1) -> float:
    """Micro-batches whose activations stage `stage` holds at its peak, in units of the whole stage's layers."""
    if interleave == 1:
        return float(min(pp - stage, micro_batches))
    chunks = min(2 * (pp - stage - 1) + (interleave - 1) * pp + 1, micro_batches * interleave)
    return chunks / interleave


def held_layers(stage: int, pp: int, micro_batches: int, chunks: tuple[int, ...]) -> float:
    """Peak count of (layer, micro-batch) activations stage `stage` holds, with the given layers per chunk."""
    v = len(chunks)
    if v == 1:
        return float(min(pp - stage, micro_batches) * chunks[0])
    warmup = min(2 * (pp - stage - 1) + (v - 1) * pp, micro_batches * v)
    return float(_peak(warmup, micro_batches * v, pp, chunks))


@lru_cache(maxsize=8192)
def _peak(warmup: int, total: int, group: int, chunks: tuple[int, ...]) -> int:
    v = len(chunks)

    def forward(k: int) -> int:
        return chunks[(k // group) % v]

    def backward(k: int) -> int:
        return chunks[v - 1 - (k // group) % v]

    held = sum(forward(k) for k in range(min(warmup + 1, total)))
    peak = held
    # steady state: forward warmup + j, then backward j; the pattern repeats every group·v steps
    for j in range(min(group * v, total - warmup - 1)):
        held -= backward(j)
        held += forward(warmup + 1 + j)
        peak = max(peak, held)
    return peak
