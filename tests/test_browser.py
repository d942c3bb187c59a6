"""`factorysim serve` end to end in a real headless Chromium, driven by Playwright.

The page draws the terminal on a canvas, so its text is read the way the page reads it: every byte the
page receives over its websocket goes through a VT emulator (pyte) of the size the page asked for.
Needs the system's Chromium (Debian's `chromium`, which .ci/run installs); Playwright downloads nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyte
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[1]

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("no system Chromium (apt-get install chromium); CI installs it", allow_module_level=True)

# Chromium as root, offline: no sandbox, no GPU, none of the background calls a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server.poll() is not None:
            raise AssertionError(f"factorysim serve exited with {server.returncode}: {server.stdout.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"factorysim serve did not listen on {port} within {seconds} s")


class PageTerminal:
    """The screen the page shows: what it receives, replayed through a VT emulator of the page's size."""

    def __init__(self) -> None:
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)

    def attach(self, ws) -> None:
        query = parse_qs(urlparse(ws.url).query)
        self.screen.resize(int(query.get("height", ["24"])[0]), int(query.get("width", ["80"])[0]))
        ws.on("framereceived", self._received)
        ws.on("framesent", self._sent)

    def _received(self, payload) -> None:
        if isinstance(payload, (bytes, bytearray)):
            self.stream.feed(bytes(payload))

    def _sent(self, payload) -> None:
        if isinstance(payload, str) and payload.startswith('["resize"'):
            size = json.loads(payload)[1]
            self.screen.resize(size["height"], size["width"])

    @property
    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait(self, page, text: str, seconds: float = 30) -> str:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            page.wait_for_timeout(100)  # lets Playwright deliver the frames
            if text in self.text:
                return self.text
        raise AssertionError(f"{text!r} never appeared on the page; it shows:\n{self.text}")


@pytest.fixture
def served(tmp_path):
    """`factorysim serve` on a free loopback port, with the walkthrough already seen (a quiet first screen)."""
    config = tmp_path / "config"
    (config / "factorysim").mkdir(parents=True)
    (config / "factorysim" / "walkthrough-done").touch()
    port = free_port()
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    server = subprocess.Popen(
        [sys.executable, "-m", "factorysim", "serve", "--port", str(port), "--speed", "1h"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, server)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_the_sandbox_plays_in_a_browser(served, tmp_path):
    from playwright.sync_api import sync_playwright

    terminal = PageTerminal()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            page.route("**/fonts.googleapis.com/**", lambda route: route.abort())  # offline: no web fonts
            page.on("websocket", terminal.attach)
            started = time.monotonic()
            page.goto(served)

            # the factors on screen: the same sandbox as in a terminal, running
            text = terminal.wait(page, "× stability")
            assert "peak BF16" in text and "= delivered" in text
            assert terminal.screen.columns >= 110  # the page gave the sandbox the room it has
            print(f"first frame in the browser after {time.monotonic() - started:.2f} s")
            page.locator(".xterm-helper-textarea").focus()  # keys go to the terminal
            terminal.wait(page, "· running")

            page.keyboard.press("Space")  # pause
            terminal.wait(page, "· paused")

            page.keyboard.press("Backspace")  # zoom out to the whole cluster ...
            terminal.wait(page, "cluster — cluster: 8 servers")
            page.keyboard.press("Enter")  # ... and back into its pod
            terminal.wait(page, "cluster › pod0")

            page.keyboard.press("f")  # a fault: nothing selected, so on the job
            terminal.wait(page, "Fault on job")
            page.keyboard.press("Enter")  # crash: the first kind offered for the job
            text = terminal.wait(page, "you injected crash on job")
            assert "the job crashed" in text

            shot = tmp_path / "browser.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000  # a drawn terminal, not a blank page
            if target := os.environ.get("FACTORYSIM_BROWSER_SCREENSHOT"):  # python assets/screenshot.py
                shutil.copy(shot, target)
        finally:
            browser.close()
