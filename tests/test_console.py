"""Terminal output when piped: tables are not cut to 80 columns, names are text and never markup."""

from __future__ import annotations

import subprocess
import sys

from .conftest import SCENARIOS


def piped(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "factorysim", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compare_headers_keep_both_full_scenario_names_when_piped():
    out = piped(
        "compare",
        str(SCENARIOS / "h100-4k-checkpoint-restart.toml"),
        str(SCENARIOS / "h100-4k-isolate-group.toml"),
        "--duration",
        "1h",
    )
    header = out.splitlines()[1]
    assert "h100-4k-checkpoint-restart" in header and "h100-4k-isolate-group" in header
    assert "…" not in out


def test_the_waterfall_notes_are_whole_when_piped():
    out = piped("estimate")
    assert "ops on the chip's fast paths" in out and "communication inside servers" in out


def test_catalog_prints_bracketed_key_names_as_typed():
    out = piped("catalog")
    assert "Fault classes (override with [reliability.rates] and [reliability.repair])" in out
