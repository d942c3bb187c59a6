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
"""

from __future__ import annotations

from collections.abc import Sequence


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
