"""The calibration table: published training runs, and what the step model says about each."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from ..scenario.files import validate_scenario
from ..scenario.models import Scenario
from . import estimate
from .step import StepEstimate

TOLERANCE = 0.10


@dataclass(frozen=True)
class CalibrationCase:
    name: str
    measured: float
    unit: Literal["tflops_per_gpu", "mfu"]
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
        if c.unit == "mfu":
            return e.hfu if c.convention == "hardware" else e.mfu
        return e.hw_tflops_per_chip if c.convention == "hardware" else e.tflops_per_chip

    @property
    def error(self) -> float:
        """Relative error of the model against the measurement."""
        return self.modelled / self.case.measured - 1.0

    @property
    def ok(self) -> bool:
        return abs(self.error) <= TOLERANCE


def calibration_cases() -> list[CalibrationCase]:
    raw: dict[str, Any] = tomllib.loads(
        resources.files("factorysim.scenario").joinpath("data", "calibration.toml").read_text("utf-8")
    )
    cases = []
    for row in raw["case"]:
        data = {"name": row["name"], "description": row["source"], **row["scenario"]}
        cases.append(
            CalibrationCase(
                name=row["name"],
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
