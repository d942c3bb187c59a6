"""Run reports and comparisons: one self-contained HTML file with its charts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from factorysim.cli import main

from .conftest import SCENARIOS

VOID = {"meta", "br", "img", "hr", "input", "link"}


class Checker(HTMLParser):
    """Tags balance; nothing is fetched from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.fetches: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.fetches.append(f"{tag} {name}={value}")
        if tag in ("script", "link", "img", "iframe"):
            self.fetches.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def check_html(text: str) -> Checker:
    assert text.startswith("<!DOCTYPE html>")
    checker = Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == [], checker.stack
    assert checker.fetches == []
    return checker


def svgs(text: str) -> list[ET.Element]:
    out, start = [], 0
    while (i := text.find("<svg", start)) >= 0:
        j = text.index("</svg>", i) + len("</svg>")
        out.append(ET.fromstring(text[i:j]))  # each chart is well-formed SVG
        start = j
    return out


def test_run_report_is_self_contained_html_with_its_charts(tmp_path, capsys):
    out = tmp_path / "run.html"
    assert main(["run", str(SCENARIOS / "kuae-mtt-s4000-10k.toml"), "--duration", "10d", "--report", str(out)]) == 0
    text = out.read_text()
    check_html(text)
    charts = svgs(text)
    assert len(charts) == 6
    for title in ("Tokens per second", "Effective training time ratio", "The five factors",
                  "Job interruptions by cause", "Model FLOP/s after each factor", "Lost chip-hours"):  # fmt: skip
        assert title in text
    for name in ("generality", "chip", "node", "cluster", "stability", "ETTR", "lost chip-hours"):
        assert name in text
    assert "report written to" in capsys.readouterr().out


def test_compare_shows_both_scenarios_and_writes_a_report(tmp_path, capsys):
    out = tmp_path / "ab.html"
    a, b = SCENARIOS / "h100-4k-checkpoint-restart.toml", SCENARIOS / "h100-4k-isolate-group.toml"
    assert main(["compare", str(a), str(b), "--duration", "10d", "--json", "--report", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["what"]: r for r in data["rows"]}
    assert rows["step time"]["a"] == rows["step time"]["b"]  # same physics
    ettr_a, ettr_b = data["summaries"]["a"]["ettr"], data["summaries"]["b"]["ettr"]
    assert ettr_b > ettr_a  # isolate-group keeps more of the time productive on the same faults
    text = out.read_text()
    check_html(text)
    assert len(svgs(text)) == 6
    assert "h100-4k-checkpoint-restart" in text and "h100-4k-isolate-group" in text


def test_a_report_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    code = main(["run", "--duration", "1d", "--report", str(tmp_path / "missing" / "r.html")])
    assert code == 2
    assert capsys.readouterr().err == f'error: --report: folder "{tmp_path / "missing"}" does not exist\n'
