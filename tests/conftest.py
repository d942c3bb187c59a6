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
