from __future__ import annotations

from pathlib import Path

import pytest

from factorysim.scenario import Scenario, load_scenario_file

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def scenario(*overrides: str, path: str | Path | None = None) -> Scenario:
    """The built-in starter scenario (or a file) with key.path=value overrides."""
    return load_scenario_file(path, overrides)


@pytest.fixture
def starter() -> Scenario:
    return scenario()


def custom_scenario(*overrides: str) -> Scenario:
    """The starter scenario without its catalog model, so that shape keys describe a custom model."""
    from factorysim.scenario import apply_overrides, default_scenario_text, parse_toml, validate_scenario

    data = parse_toml(default_scenario_text(), "<default scenario>")
    del data["workload"]["model"]
    return validate_scenario(apply_overrides(data, overrides))
