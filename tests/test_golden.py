"""Golden step breakdowns: every shipped scenario, and variants that switch on each feature, to 1e-9.

A change to the physics changes these numbers on purpose or by mistake; either way it shows here. After a
deliberate change, regenerate and review the diff of tests/golden_steps.json:

    FACTORYSIM_REGENERATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from factorysim import estimate
from factorysim.scenario import load_scenario_file

from .conftest import SCENARIOS

GOLDEN = Path(__file__).parent / "golden_steps.json"
REGENERATE = os.environ.get("FACTORYSIM_REGENERATE_GOLDEN") == "1"

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "kuae-inr": ("kuae-mtt-s4000-1k", ["features.in_network_reduction=true", "parallelism.sequence_parallel=false"]),
    "kuae-zero0-inr": ("kuae-mtt-s4000-1k", ["parallelism.zero=0", "features.in_network_reduction=true"]),
    "70b-tp-overlap": ("llama3-70b-1k-h100", ["features.tp_overlap=true"]),
    "70b-tp-overlap-ace": ("llama3-70b-1k-h100", ["features.tp_overlap=true", "features.async_comm_engine=true"]),
    "70b-fp8-full": ("llama3-70b-1k-h100-fp8", ["workload.recompute=full", "workload.micro_batch=2"]),
    "70b-zero3-bf16-grads": ("llama3-70b-1k-h100", ["parallelism.zero=3", "workload.grad_dtype=bf16"]),
    "70b-zero2-no-sp": ("llama3-70b-1k-h100", ["parallelism.zero=2", "parallelism.sequence_parallel=false"]),
    "70b-cp4": ("llama3-70b-1k-h100", ["workload.seq_len=32768", "parallelism.cp=4", "parallelism.pp=1",
                                        "parallelism.interleave=1", "parallelism.dp=32", "workload.global_batch=128"]),
    "405b-uneven": ("llama3-405b-16k-h100", ["parallelism.first_stage_layers=7", "parallelism.last_stage_layers=7",
                                             "parallelism.interleave=1"]),
    "405b-causal-selective": ("llama3-405b-16k-h100", ["workload.attention_flops=causal",
                                                       "workload.recompute=selective"]),
    "8b-unfused-tp4": ("default", ["workload.attention=unfused", "parallelism.tp=4"]),
    "8b-flash2-fp8": ("default", ["workload.attention=flash2", "workload.precision=fp8"]),
    "mixtral-ep4": ("moe-mixtral-2k-h100", ["parallelism.ep=4", "workload.recompute=full"]),
    "s4000-fp8": ("kuae-mtt-s4000-1k", ["workload.precision=fp8"]),
}  # fmt: skip


def cases() -> dict[str, tuple[str, list[str]]]:
    shipped = {p.stem: (p.stem, []) for p in sorted(SCENARIOS.glob("*.toml"))}
    return {**shipped, **VARIANTS}


def figures(path_stem: str, overrides: list[str]) -> dict:
    e = estimate(load_scenario_file(SCENARIOS / f"{path_stem}.toml", overrides))
    return {
        "step_time_s": e.step_time_s,
        "tokens_per_s": e.tokens_per_s,
        "mfu": e.mfu,
        "hfu": e.hfu,
        "breakdown": asdict(e.breakdown),
        "factors": e.factors.as_dict(),
        "critical_stage": e.critical_stage,
        "memory_stage_bytes": [m.total for m in e.stage_memory],
        "memory_worst": asdict(e.memory),
        "fits": e.fits,
    }


def _close(a, b, path: str) -> list[str]:
    if isinstance(a, dict):
        return [p for k in a for p in _close(a[k], b.get(k), f"{path}.{k}")] + [
            f"{path}.{k}: missing" for k in b if k not in a
        ]
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return [f"{path}: {a} != {b}"]
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, bool | int | str):
        return [] if a == b else [f"{path}: {a} != {b}"]
    return [] if b is not None and a == pytest.approx(b, rel=1e-9, abs=1e-15) else [f"{path}: {a} != {b}"]


def test_golden_breakdowns_of_the_shipped_scenarios_and_their_variants():
    now = {name: figures(stem, overrides) for name, (stem, overrides) in cases().items()}
    if REGENERATE:
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert set(now) == set(golden), "scenarios added or removed: regenerate deliberately"
    differences = [d for name in now for d in _close(now[name], golden[name], name)]
    assert not differences, "\n".join(differences[:40])


def test_every_variant_changes_its_scenario():
    golden = json.loads(GOLDEN.read_text())
    for name, (stem, _) in VARIANTS.items():
        assert golden[name]["step_time_s"] != golden[stem]["step_time_s"], name
