"""README.md quotes the time engine's means exactly as benchmarks/means.py computes them now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_quotes_the_means_the_engine_gives_now():
    spec = importlib.util.spec_from_file_location("means", ROOT / "benchmarks" / "means.py")
    assert spec is not None and spec.loader is not None
    means = importlib.util.module_from_spec(spec)
    sys.modules["means"] = means  # its dataclasses look their module up
    spec.loader.exec_module(means)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert means.readme_block(readme) == means.block(means.table()), "run: python benchmarks/means.py --write"
