"""GEMM time as a function of the GEMM's shape.

A GEMM C[m×n] = A[m×k]·B[k×n] on a chip runs its output tiles on the chip's streaming multiprocessors
(SMs) in waves; too few tiles leave SMs idle (wave quantization), and a short reduction dimension k
leaves each tile's prologue and epilogue unamortised. Averaged over the saw-tooth of real tile choices:

    efficiency(m, n, k) = large-GEMM efficiency × tiles / (tiles + SMs/4) × k / (k + k½)
    tiles = m·n / (128·256)

and the GEMM cannot beat its memory traffic: t = max(2·m·n·k / (peak × efficiency), bytes / HBM).
The tile area is that of Hopper's usual 128×256 tiles; the wave share (1/4: libraries pick among tile
shapes and split k, so the loss is a quarter of a wave on average, not the half a single tile shape would
give) and k½ are fitted to public GEMM sweeps (scenario/data/gemm.toml; a test holds the curve to them).
The large-GEMM efficiency of each chip and precision is in the chip catalog.
"""

from __future__ import annotations

import tomllib
from importlib import resources

TILE_ELEMENTS = 128 * 256
"""Output elements per tile (Hopper CUTLASS/cuBLAS 128×256 tiles)."""
K_HALF = 460.0
"""Reduction length at which a tile's fixed costs halve its throughput; fitted to scenario/data/gemm.toml."""
WAVE_SHARE = 0.25
"""Idle share of a wave, in SMs per tile; fitted to scenario/data/gemm.toml."""


def shape_efficiency(m: float, n: float, k: float, sms: int) -> float:
    """Share of a chip's large-GEMM throughput that a GEMM of this shape reaches (compute-bound part)."""
    tiles = m * n / TILE_ELEMENTS
    return tiles / (tiles + WAVE_SHARE * sms) * k / (k + K_HALF)


def gemm_time(m: float, n: float, k: float, rate: float, sms: int, hbm: float, in_bytes: float) -> float:
    """Seconds for one GEMM: `rate` is the chip's large-GEMM FLOP/s at this precision, `hbm` its achieved
    memory bandwidth (bytes/s), `in_bytes` the size of an input element (BF16 output)."""
    if m <= 0 or n <= 0 or k <= 0:
        return 0.0
    compute = 2.0 * m * n * k / (rate * shape_efficiency(m, n, k, sms))
    memory = (in_bytes * (m * k + k * n) + 2.0 * m * n) / hbm
    return max(compute, memory)


def linear_times(
    m: float, n: float, k: float, rate: float, sms: int, hbm: float, in_bytes: float
) -> tuple[float, float]:
    """(forward, backward) of one linear layer: the forward GEMM m×n×k; backward the input gradient
    (m×k×n) and the weight gradient (k×n×m)."""
    fwd = gemm_time(m, n, k, rate, sms, hbm, in_bytes)
    bwd = gemm_time(m, k, n, rate, sms, hbm, in_bytes) + gemm_time(k, n, m, rate, sms, hbm, in_bytes)
    return fwd, bwd


def gemm_measurements() -> list[dict]:
    """The public GEMM sweeps the shape curve is fitted to (scenario/data/gemm.toml)."""
    text = resources.files("factorysim.scenario").joinpath("data", "gemm.toml").read_text("utf-8")
    return tomllib.loads(text)["series"]
