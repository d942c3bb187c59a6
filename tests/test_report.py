"""Run reports and comparisons: one self-contained HTML file with its charts."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from factorysim import Simulation, load_scenario
from factorysim.cli import main

from .conftest import ROOT, SCENARIOS

STARTER = ROOT / "factorysim" / "scenario" / "data" / "default.toml"

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


def table_cells(text: str) -> dict[str, list[str]]:
    """Each row of the report's tables: first cell -> the other cells."""
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", text, re.S):
        cells = [html.unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row, re.S)]
        rows[cells[0]] = cells[1:]
    return rows


def bar_widths(svg: str) -> list[float]:
    """The widths of the horizontal bars of a bar chart, top to bottom (the axes' own patches left out)."""
    widths = []
    for d in re.findall(r'<g id="patch_\d+">\s*<path d="([^"]*)"', svg):
        xs = [float(x) for x in re.findall(r"[ML] ([-\d.]+) ", d)]
        if len(xs) == 4 and "z" in d:
            widths.append(max(xs) - min(xs))
    return widths[2:]  # the first two closed paths are the figure and the axes backgrounds


def test_run_report_shows_the_runs_figures_in_its_tables_and_charts(tmp_path, capsys):
    out = tmp_path / "run.html"
    path = SCENARIOS / "kuae-mtt-s4000-10k.toml"
    assert main(["run", str(path), "--duration", "10d", "--report", str(out)]) == 0
    text = out.read_text()
    check_html(text)
    charts = svgs(text)
    assert len(charts) == 8
    for title in ("Tokens per second", "Effective training time ratio", "The five factors",
                  "Job interruptions by cause", "Model FLOP/s after each factor", "Lost chip-hours",
                  "Site power", "Energy lost to faults"):  # fmt: skip
        assert title in text
    sim = Simulation(load_scenario(path), seed=1, metrics=True)  # the same run, through the library
    sim.run_until(10 * 86400)
    summary = sim.summary()
    rows = table_cells(text)
    assert rows["effective training time ratio (ETTR)"] == [f"{summary.ettr:.2%}"]
    assert rows["cluster stability S"] == [f"{summary.stability:.4f}"]
    assert rows["lost chip-hours"] == [f"{summary.lost_chip_hours:,.0f}"]
    assert rows["job interruptions"] == [str(summary.interruptions.get("total", 0))]
    # the waterfall's bars: peak, then after each factor; each bar is the one above times its factor
    waterfall = next(c for c in re.findall(r"<svg.*?</svg>", text, re.S) if "after each factor" in c)
    widths = bar_widths(waterfall)
    factors = list(summary.factors.values())
    assert len(widths) == 6
    for above, below, factor in zip(widths[:-1], widths[1:], factors, strict=True):
        assert below / above == pytest.approx(factor, rel=1e-4)
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
    assert rows["ETTR"]["a"] == f"{ettr_a:.2%}" and rows["ETTR"]["b"] == f"{ettr_b:.2%}"
    assert rows["ETTR"]["change"] == f"{(ettr_b - ettr_a) * 100:+.2f} pts"
    text = out.read_text()
    check_html(text)
    assert len(svgs(text)) == 8  # six, and site power and energy lost to faults
    assert table_cells(text)["ETTR"] == [f"{ettr_a:.2%}", f"{ettr_b:.2%}", rows["ETTR"]["change"]]


NAMES = ["cost $\\frac{x$ in $", "_hidden", "<b>bold</b> & co", "[/]", "[bold red]red"]


@pytest.mark.parametrize("name", NAMES, ids=["mathtext", "underscore", "html", "rich-close", "rich-style"])
def test_names_are_plain_text_in_charts_and_tables(tmp_path, capsys, name):
    """A name with mathtext, markup or a leading underscore is shown as written, everywhere."""
    out = tmp_path / "ab.html"
    args = ["--duration", "1d", "--set", f"name={json.dumps(name)}"]
    assert main(["compare", str(STARTER), str(STARTER), *args, "--report", str(out)]) == 0
    terminal = capsys.readouterr().out
    assert f"{name} vs {name} (seed 1)" in terminal  # the table's title, not markup
    text = out.read_text()
    check_html(text)
    for chart in svgs(text):  # every chart is well-formed SVG
        assert chart is not None
    in_charts = sum(html.unescape(chart).count(name) for chart in re.findall(r"<svg.*?</svg>", text, re.S))
    # both names in 6 legends (waterfall, tokens, ETTR, interruptions, site power, energy lost) and 2 titles
    assert in_charts == 14
    if "$" in name:  # run --report crashed on it too (the charts are the same code)
        assert main(["run", str(STARTER), *args, "--report", str(tmp_path / "run.html")]) == 0


def test_a_report_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    code = main(["run", "--duration", "1d", "--report", str(tmp_path / "missing" / "r.html")])
    assert code == 2
    assert capsys.readouterr().err == f'error: --report: folder "{tmp_path / "missing"}" does not exist\n'
