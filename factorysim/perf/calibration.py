"""Published training runs, and what the step model says about each, in two tables kept apart.

- calibration: the runs the model's fitted constants (per chip, the share of the measured matmul ceiling
  that training sustains) were fitted to; held by a test within CALIBRATION_TOLERANCE.
- validation: runs never used for fitting, from other frameworks, sources and scales; the targets are a
  mean |error| of at most VALIDATION_MEAN and a largest of at most VALIDATION_MAX, with every run fitting
  in memory. A run that is not used for fitting is a validation run, whatever its error: there is no third
  table to put awkward runs in.

Each run is compared on its source's own figure: tokens/s per GPU where published (no FLOP convention
involved), otherwise TFLOP/s or MFU counted as the source counts them (model or hardware FLOPs; the
attention square full or causal, set in the row's workload).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from ..scenario.files import validate_scenario
from ..scenario.models import Scenario
from . import estimate
from .step import StepEstimate

CALIBRATION_TOLERANCE = 0.12
"""Each calibration run within 12 %: one constant per chip cannot put both A100 frameworks (Megatron-LM's SC21
runs and Megatron-DeepSpeed's BLOOM, 21 points apart) within 10 %."""
VALIDATION_MEAN = 0.08
VALIDATION_MAX = 0.15
TOLERANCE = CALIBRATION_TOLERANCE

Table = Literal["calibration", "validation"]
TABLES: tuple[Table, ...] = ("calibration", "validation")


@dataclass(frozen=True)
class CalibrationCase:
    name: str
    table: Table
    measured: float
    unit: Literal["tflops_per_gpu", "mfu", "tokens_per_s_per_gpu"]
    convention: Literal["hardware", "model"]
    source: str
    assumed: str
    scenario: Scenario


@dataclass(frozen=True)
class CalibrationResult:
    case: CalibrationCase
    estimate: StepEstimate

    @property
    def modelled(self) -> float:
        e, c = self.estimate, self.case
        if c.unit == "tokens_per_s_per_gpu":
            return e.tokens_per_s / e.chips
        if c.unit == "mfu":
            return e.hfu if c.convention == "hardware" else e.mfu
        return e.hw_tflops_per_chip if c.convention == "hardware" else e.tflops_per_chip

    @property
    def error(self) -> float:
        """Relative error of the model against the measurement."""
        return self.modelled / self.case.measured - 1.0

    @property
    def fits(self) -> bool:
        return self.estimate.fits

    @property
    def ok(self) -> bool:
        limit = CALIBRATION_TOLERANCE if self.case.table == "calibration" else VALIDATION_MAX
        return abs(self.error) <= limit and self.fits


@dataclass(frozen=True)
class TableSummary:
    table: Table
    rows: int
    mean_abs_error: float
    max_abs_error: float
    refused: int  # runs the model says do not fit in memory

    @property
    def ok(self) -> bool:
        if self.rows == 0:
            return True
        if self.table == "calibration":
            return self.max_abs_error <= CALIBRATION_TOLERANCE and not self.refused
        return self.mean_abs_error <= VALIDATION_MEAN and self.max_abs_error <= VALIDATION_MAX and not self.refused


def summarize(results: list[CalibrationResult], table: Table) -> TableSummary:
    rows = [r for r in results if r.case.table == table]
    errors = [abs(r.error) for r in rows]
    return TableSummary(
        table,
        len(rows),
        sum(errors) / len(errors) if errors else math.nan,
        max(errors) if errors else math.nan,
        sum(1 for r in rows if not r.fits),
    )


def calibration_cases() -> list[CalibrationCase]:
    raw: dict[str, Any] = tomllib.loads(
        resources.files("factorysim.scenario").joinpath("data", "calibration.toml").read_text("utf-8")
    )
    cases = []
    for row in raw["case"]:
        data = {"name": row["name"], "description": row["source"], **row["scenario"]}
        if row["table"] not in TABLES:
            raise ValueError(f"calibration case {row['name']}: table {row['table']!r}; allowed: {', '.join(TABLES)}")
        cases.append(
            CalibrationCase(
                name=row["name"],
                table=row["table"],
                measured=row["measured"],
                unit=row["unit"],
                convention=row["convention"],
                source=row["source"],
                assumed=row.get("assumed", ""),
                scenario=validate_scenario(data, f"calibration case {row['name']}"),
            )
        )
    return cases


def run_calibration() -> list[CalibrationResult]:
    return [CalibrationResult(case, estimate(case.scenario)) for case in calibration_cases()]
