"""Regenerate the README's screenshots: assets/sandbox.svg (the app's own SVG export) and
assets/sandbox-browser.png (taken by the browser test, in headless Chromium).

python assets/screenshot.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from factorysim import Fault, load_scenario
from factorysim.engine import SimClock
from factorysim.topology.layout import View
from factorysim.tui import FactorySimApp

HERE = Path(__file__).resolve().parent


async def main() -> None:
    scenario = load_scenario(HERE.parent / "scenarios" / "kuae-mtt-s4000-10k.toml")
    app = FactorySimApp(scenario, clock=SimClock(speed=3600.0, paused=True))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        sim = app.sandbox.sim
        sim.run_until(2 * 86400)
        app.sandbox.inject(Fault("n6", "fail"))
        app.sandbox.inject(Fault("n9.3", "straggle", 0.5, 6 * 3600))
        sim.run_until(2 * 86400 + 200)
        app.view = View("pod", 0)
        app.load_view()
        app.canvas.select("rack1")
        await pilot.pause(0.5)
        app.show_frame(sim.snapshot())
        await pilot.pause(0.3)
        app.save_screenshot(str(HERE / "sandbox.svg"))
    print(f"wrote {HERE / 'sandbox.svg'}")


def browser() -> None:
    target = HERE / "sandbox-browser.png"
    env = {**os.environ, "FACTORYSIM_BROWSER_SCREENSHOT": str(target)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", str(HERE.parent / "tests" / "test_browser.py")],
                   env=env, check=True)  # fmt: skip
    print(f"wrote {target}")


if __name__ == "__main__":
    asyncio.run(main())
    browser()
