"""The core is a library that runs without the UI: nothing below tui/ imports textual."""

from __future__ import annotations

import contextlib
import io
import math
import subprocess
import sys

import pytest

from .conftest import SCENARIOS

CORE = ["factorysim.scenario", "factorysim.topology", "factorysim.perf", "factorysim.engine", "factorysim"]


def test_core_layers_do_not_import_textual():
    code = (
        "import sys\n"
        f"for name in {CORE!r}:\n"
        "    __import__(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_library_api_is_enough():
    """The README's library example, with numbers: the top-level names alone estimate a step, run faults,
    inject one and read the effect, and agree with the command line."""
    import json

    from factorysim import Fault, Simulation, estimate, load_scenario
    from factorysim.cli import main

    scenario = load_scenario(SCENARIOS / "kuae-mtt-s4000-10k.toml")
    step = estimate(scenario)
    assert step.mfu == pytest.approx(math.prod(list(step.factors.as_dict().values())[:4]), rel=1e-12)
    assert step.tokens_per_s == pytest.approx(scenario.workload.tokens_per_step / step.step_time_s, rel=1e-12)

    sim = Simulation(scenario, seed=3, record=True)
    sim.run_until(86400)
    up, isolated = sim.snapshot().replicas_up, sim.snapshot().isolations
    sim.inject(Fault("n12", "fail"))
    sim.advance(120)  # isolate-group: detected after 60 s, n12's group drops out; a spare joins after 300 s
    assert (sim.snapshot().replicas_up, sim.snapshot().isolations) == (up - 1, isolated + 1)
    sim.advance(600)
    assert sim.snapshot().replicas_up == up
    assert 0.9 < sim.summary().ettr < 1

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["estimate", str(SCENARIOS / "kuae-mtt-s4000-10k.toml"), "--json"]) == 0
    assert json.loads(buffer.getvalue())["step_time_s"] == step.step_time_s


def test_help_imports_no_numerics_and_no_scenario_models():
    """`factorysim --help` answers from the argument parser alone (the package's names load on first use)."""
    code = (
        "import sys, contextlib, io\n"
        "from factorysim.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('numpy', 'networkx', 'pydantic', 'rich', 'textual', 'factorysim.scenario', 'factorysim.engine')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_every_top_level_name_resolves():
    import factorysim

    for name in factorysim.__all__:
        assert getattr(factorysim, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        factorysim.nope  # noqa: B018
