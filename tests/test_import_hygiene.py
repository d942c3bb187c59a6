"""The core is a library that runs without the UI: nothing below tui/ imports textual."""

from __future__ import annotations

import subprocess
import sys

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
    from factorysim import estimate, load_scenario

    assert estimate(load_scenario()).mfu > 0
