"""Run reports: one self-contained HTML file with inline SVG charts (no scripts, no network).

Charts come from matplotlib's object API rendered to SVG; text stays text (searchable, small).
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import __version__
from .console import amount, usd, watts
from .engine import Simulation
from .labels import FACTOR_NAMES, describe, si
from .outputs import PAGE_MARK
from .perf import StepEstimate
from .scenario import Scenario
from .scenario.units import human_duration

DAY = 86400.0
COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2")


@dataclass
class RunResult:
    """A finished run, as a report needs it."""

    scenario: Scenario
    step: StepEstimate
    summary: dict[str, Any]
    series: dict[str, list[float]]

    @classmethod
    def of(cls, sim: Simulation) -> RunResult:
        if sim.series is None:
            raise ValueError("the simulation kept no time series (metrics=False)")
        return cls(sim.scenario, sim.base, sim.summary().as_dict(), sim.series.as_dict())


# ------------------------------------------------------------------ charts


def _figure(width: float = 7.5, height: float = 2.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="#e5e7eb", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _label(name: str) -> str:
    """A legend label shown as given: matplotlib leaves labels starting with "_" out of legends."""
    return "\u200b" + name if name.startswith("_") else name


def _svg(fig) -> str:
    from matplotlib import rcParams
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.text import Text

    for text in fig.findobj(Text):  # names are plain text: "$" is a dollar sign, not mathtext
        text.set_parse_math(False)
    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "factorysim"}, rcParams):
        FigureCanvasSVG(fig).print_svg(buf)
    text = buf.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    return text.strip()


class rc_context:
    """matplotlib.rc_context without importing pyplot (which is slow to import)."""

    def __init__(self, values: dict[str, Any], params) -> None:
        self.values, self.params = values, params

    def __enter__(self) -> None:
        self.saved = {k: self.params[k] for k in self.values}
        self.params.update(self.values)

    def __exit__(self, *exc) -> None:
        self.params.update(self.saved)


def line_chart(title: str, runs: Sequence[tuple[str, list[float], list[float]]], ylabel: str,
               percent: bool = False, reference: float | None = None, limit: float | None = None) -> str:  # fmt: skip
    fig, ax = _figure()
    for i, (label, t, y) in enumerate(runs):
        days = [x / DAY for x in t]
        values = [v * 100 for v in y] if percent else y
        ax.plot(days, values, color=COLORS[i % len(COLORS)], linewidth=1.3, label=_label(label), drawstyle="steps-post")
    if reference is not None:
        ax.axhline(
            reference * (100 if percent else 1), color="#6b7280", linestyle="--", linewidth=0.9, label="fault-free"
        )
    if limit is not None:
        ax.axhline(limit, color="#dc2626", linestyle=":", linewidth=1.0, label="facility limit")
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel("sim time (days)")
    ax.set_ylabel(ylabel)
    if len(runs) > 1 or reference is not None or limit is not None:
        ax.legend(frameon=False, fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3)
    return _svg(fig)


def factors_chart(title: str, result: RunResult) -> str:
    s = result.series
    fig, ax = _figure()
    days = [x / DAY for x in s["t"]]
    for i, (key, name, _) in enumerate(FACTOR_NAMES):
        values = s["stability"] if key == "stability" else s[key]
        ax.plot(days, values, color=COLORS[i], linewidth=1.2, label=name, drawstyle="steps-post")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel("sim time (days)")
    ax.set_ylabel("factor")
    ax.legend(frameon=False, fontsize=8, ncol=5, loc="lower right", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig)


def bar_chart(title: str, labels: Sequence[str], groups: Sequence[tuple[str, Sequence[float]]], xlabel: str) -> str:
    """Horizontal bars; one series per group (two groups: side by side)."""
    fig, ax = _figure(height=max(1.6, 0.32 * len(labels) * max(1, len(groups)) + 0.9))
    n = max(1, len(groups))
    h = 0.8 / n
    for i, (name, values) in enumerate(groups):
        ys = [k + (i - (n - 1) / 2) * h for k in range(len(labels))]
        ax.barh(ys, values, height=h, color=COLORS[i % len(COLORS)], label=_label(name))
    ax.set_yticks(range(len(labels)), labels=labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel(xlabel)
    if n > 1:
        ax.legend(frameon=False, fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=n)
    return _svg(fig)


def waterfall_chart(title: str, results: Sequence[tuple[str, RunResult]]) -> str:
    """Delivered FLOP/s after each factor, from peak to delivered (PFLOP/s)."""
    labels = ["peak (dense BF16)"] + [f"× {name}" for _, name, _ in FACTOR_NAMES]
    groups = []
    for name, r in results:
        values, running = [r.step.peak_flops / 1e15], r.step.peak_flops / 1e15
        for key, _, _ in FACTOR_NAMES:
            running *= r.summary["factors"][key]
            values.append(running)
        groups.append((name, values))
    return bar_chart(title, labels, groups, "PFLOP/s of model FLOPs")


# ------------------------------------------------------------------ tables and pages


def summary_rows(r: RunResult) -> list[tuple[str, str]]:
    s, e = r.summary, r.step
    f = s["factors"]
    rows = [
        ("cluster and job", describe(r.scenario, e)),
        ("sim time", human_duration(s["duration_s"])),
        ("recovery policy", s["policy"]),
        ("step time (fault-free)", f"{e.step_time_s:.3f} s"),
        ("MFU per step (model FLOPs) / HFU", f"{e.mfu:.1%} / {e.hfu:.1%}"),
        ("effective training time ratio (ETTR)", f"{s['ettr']:.2%}"),
        ("cluster stability S", f"{s['stability']:.4f}"),
        (
            "G · C · N · E · S",
            " · ".join(f"{f[k]:.3f}" for k, _, _ in FACTOR_NAMES) + f" = {math.prod(f.values()):.3f}",
        ),
        ("delivered (mean over the run)", si(e.peak_flops * math.prod(f.values()), "FLOP/s")),
        (
            "tokens",
            f"{s['tokens']:.4g} (mean {s['mean_tokens_per_s']:,.0f}/s, fault-free {s['fault_free_tokens_per_s']:,.0f}/s)",
        ),
        ("job interruptions", str(s["interruptions"].get("total", 0))),
        ("node groups isolated", str(s["isolations"])),
        ("faults", str(s["faults"])),
        ("lost chip-hours", f"{s['lost_chip_hours']:,.0f}"),
        ("spares used (fewest left)", f"{s['spares_used']} ({s['min_spares']})"),
        ("checkpoints", str(s["checkpoints"])),
    ]
    if s.get("time_to_target_s"):
        rows.append(("target tokens reached after", human_duration(s["time_to_target_s"])))
    return rows


def power_rows(r: RunResult) -> list[tuple[str, str]]:
    """The run's energy, power, swing and cost (none when its chip or fabric gives no power figures)."""
    p = r.summary.get("power")
    if not p:
        return []
    per_m = p.get("usd_per_million_tokens")
    hardware = usd(p["hardware_usd"]) if p.get("hardware_usd") is not None else "not priced"
    rows = [
        ("energy at the meter", f"{amount(p['energy_mwh'])} MWh ({p['tokens_per_kwh']:,.0f} tokens per kWh)"),
        ("power: mean / peak / fault-free", f"{watts(p['mean_w'])} / {watts(p['peak_w'])} / {watts(p['fault_free_w'])}"),
        ("largest swing within a minute", watts(p["swing_w"])),
        ("energy lost to faults", f"{amount(p['lost_energy_mwh'])} MWh"),
        ("cost", f"{usd(p['usd'])}: electricity {usd(p['electricity_usd'])} at ${p['usd_per_kwh']:g}/kWh, "
                 f"hardware {hardware}"),
        ("cost per hour / per million tokens", f"{usd(p['usd_per_hour'])} / " + (usd(per_m) if per_m else "-")),
        ("emissions", f"{amount(p['co2_t'])} t CO2 at {p['carbon_g_per_kwh']:g} g/kWh"),
    ]  # fmt: skip
    if p.get("facility_mw") is not None:
        rows.insert(2, ("facility limit", f"{p['facility_mw']:g} MW"))
    to = p.get("to_target")
    if to:
        rows.append(
            (
                "to reach target_tokens at this rate",
                f"{amount(to['energy_mwh'])} MWh, {usd(to['usd'])}, {amount(to['co2_t'])} t CO2",
            )
        )
    return rows


def power_chart(title: str, results: Sequence[tuple[str, RunResult]]) -> str | None:
    """Site power over time, MW, with the fault-free draw (one run) and the facility's limit (when set)."""
    runs = [
        (name, r.series["t"], [w / 1e6 for w in r.series["power_w"]]) for name, r in results if "power_w" in r.series
    ]
    if not runs:
        return None
    first = results[0][1].summary.get("power") or {}
    reference = first.get("fault_free_w", 0) / 1e6 if len(results) == 1 else None
    limits = {(r.summary.get("power") or {}).get("facility_mw") for _, r in results}
    limit = limits.pop() if len(limits) == 1 else None
    return line_chart(title, runs, "MW at the meter", reference=reference, limit=limit)


def _power_section(results: Sequence[tuple[str, RunResult]]) -> list[str]:
    chart = power_chart("Site power", results)
    if chart is None:
        return []
    body = ["<h2>Power and cost</h2>"]
    if len(results) == 1:
        r = results[0][1]
        body.append(_table(["", r.scenario.name], power_rows(r)))
    body.append(
        _figure_html(
            chart,
            "Each point: the mean draw since the point before (a checkpoint pause shorter than that is averaged in).",
        )
    )
    losses = [(name, r.summary["power"]["lost_energy_mwh_by"]) for name, r in results if r.summary.get("power")]
    if losses:
        keys = list(losses[0][1])
        body.append(
            _figure_html(
                bar_chart(
                    "Energy lost to faults", keys, [(name, [lost[k] for k in keys]) for name, lost in losses], "MWh"
                ),
                "Against the energy the same tokens need fault-free; servers off in repair draw less than the "
                "fault-free cluster's idle spares (negative).",
            )
        )
    return body


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; margin: 2rem auto;
       max-width: 1000px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.sub { color: #6b7280; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { background: #f9fafb; }
figure { margin: 1rem 0; } figure svg { width: 100%; height: auto; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
footer { color: #9ca3af; margin-top: 3rem; font-size: 12px; }
"""


def _page(title: str, subtitle: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        PAGE_MARK,
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(subtitle)}</p>',
        *body,
        f"<footer>factorysim {html.escape(__version__)}: production = generality × chip effective compute × node "
        "efficiency × cluster efficiency × cluster stability</footer>",
        "</body>",
        "</html>",
    ])  # fmt: skip


def _figure_html(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def run_report(r: RunResult) -> str:
    """One run: summary, waterfall, tokens/s, ETTR, the five factors over time, interruptions, losses."""
    s = r.summary
    causes = {k: v for k, v in s["interruptions"].items() if k != "total"}
    lost = s["lost_chip_hours_by"]
    body = [
        "<h2>Summary</h2>",
        _table(["", r.scenario.name], summary_rows(r)),
        f"<p>{html.escape(r.scenario.description.strip())}</p>",
        "<h2>From peak to delivered</h2>",
        _figure_html(
            waterfall_chart("Model FLOP/s after each factor", [(r.scenario.name, r)]),
            "Peak × generality × chip × node × cluster × stability = delivered (S is the run's).",
        ),
        "<h2>Over time</h2>",
        _figure_html(
            line_chart(
                "Tokens per second",
                [(r.scenario.name, r.series["t"], r.series["tokens_per_s"])],
                "tokens/s",
                reference=s["fault_free_tokens_per_s"],
            ),
            "Throughput, and what it would be with no faults.",
        ),
        _figure_html(
            line_chart(
                "Effective training time ratio",
                [(r.scenario.name, r.series["t"], r.series["ettr"])],
                "ETTR (%)",
                percent=True,
            ),
            "Productive training time over wall time so far.",
        ),
        _figure_html(factors_chart("The five factors", r), "G, C, N, E of the step as it runs; S so far."),
        "<h2>What faults cost</h2>",
        _figure_html(
            bar_chart(
                "Job interruptions by cause",
                list(causes) or ["none"],
                [(r.scenario.name, list(causes.values()) or [0])],
                "interruptions",
            ),
            "",
        ),
        _figure_html(
            bar_chart("Lost chip-hours", list(lost), [(r.scenario.name, list(lost.values()))], "chip-hours"), ""
        ),
        *_power_section([(r.scenario.name, r)]),
    ]
    return _page(
        f"factorysim run: {r.scenario.name}", f"seed {s['seed']}, {human_duration(s['duration_s'])} of sim time", body
    )


def compare_rows(a: RunResult, b: RunResult) -> list[tuple[str, str, str, str]]:
    def pct(x: float, y: float) -> str:
        return f"{(y / x - 1):+.1%}" if x else ""

    ea, eb, sa, sb = a.step, b.step, a.summary, b.summary
    rows = [
        ("chips in the job", f"{ea.chips:,}", f"{eb.chips:,}", ""),
        ("step time", f"{ea.step_time_s:.3f} s", f"{eb.step_time_s:.3f} s", pct(ea.step_time_s, eb.step_time_s)),
        (
            "tokens/s, fault-free",
            f"{ea.tokens_per_s:,.0f}",
            f"{eb.tokens_per_s:,.0f}",
            pct(ea.tokens_per_s, eb.tokens_per_s),
        ),
        ("MFU per step", f"{ea.mfu:.1%}", f"{eb.mfu:.1%}", f"{(eb.mfu - ea.mfu) * 100:+.1f} pts"),
    ]
    for key, name, _ in FACTOR_NAMES:
        fa, fb = sa["factors"][key], sb["factors"][key]
        rows.append((name, f"{fa:.3f}", f"{fb:.3f}", f"{fb - fa:+.3f}"))
    rows += [
        ("ETTR", f"{sa['ettr']:.2%}", f"{sb['ettr']:.2%}", f"{(sb['ettr'] - sa['ettr']) * 100:+.2f} pts"),
        ("tokens trained", f"{sa['tokens']:.4g}", f"{sb['tokens']:.4g}", pct(sa["tokens"], sb["tokens"])),
        ("job interruptions", str(sa["interruptions"].get("total", 0)), str(sb["interruptions"].get("total", 0)), ""),
        (
            "lost chip-hours",
            f"{sa['lost_chip_hours']:,.0f}",
            f"{sb['lost_chip_hours']:,.0f}",
            pct(sa["lost_chip_hours"], sb["lost_chip_hours"]),
        ),
    ]
    pa, pb = sa.get("power"), sb.get("power")
    if pa and pb:

        def money(key: str) -> tuple[str, str, str]:
            x, y = pa.get(key), pb.get(key)
            return (usd(x) if x is not None else "-", usd(y) if y is not None else "-", pct(x, y) if x and y else "")

        rows += [
            ("energy (MWh)", amount(pa["energy_mwh"]), amount(pb["energy_mwh"]), pct(pa["energy_mwh"], pb["energy_mwh"])),
            ("mean power", watts(pa["mean_w"]), watts(pb["mean_w"]), pct(pa["mean_w"], pb["mean_w"])),
            ("peak power", watts(pa["peak_w"]), watts(pb["peak_w"]), pct(pa["peak_w"], pb["peak_w"])),
            ("largest swing within a minute", watts(pa["swing_w"]), watts(pb["swing_w"]), pct(pa["swing_w"], pb["swing_w"])),
            ("tokens per kWh", f"{pa['tokens_per_kwh']:,.0f}", f"{pb['tokens_per_kwh']:,.0f}",
             pct(pa["tokens_per_kwh"], pb["tokens_per_kwh"])),
            ("energy lost to faults (MWh)", amount(pa["lost_energy_mwh"]), amount(pb["lost_energy_mwh"]),
             pct(pa["lost_energy_mwh"], pb["lost_energy_mwh"])),
            ("cost", *money("usd")),
            ("cost per million tokens", *money("usd_per_million_tokens")),
            ("CO2 (t)", amount(pa["co2_t"]), amount(pb["co2_t"]), pct(pa["co2_t"], pb["co2_t"])),
        ]  # fmt: skip
    return rows


def compare_report(a: RunResult, b: RunResult) -> str:
    """Two scenarios side by side on the same seed."""
    na, nb = a.scenario.name, b.scenario.name
    causes = sorted({k for r in (a, b) for k in r.summary["interruptions"] if k != "total"})
    body = [
        "<h2>Side by side</h2>",
        _table(["", na, nb, "change"], compare_rows(a, b)),
        '<div class="grid">',
        _table(["", na], summary_rows(a)[:1]),
        _table(["", nb], summary_rows(b)[:1]),
        "</div>",
        "<h2>From peak to delivered</h2>",
        _figure_html(waterfall_chart("Model FLOP/s after each factor", [(na, a), (nb, b)]), ""),
        "<h2>Over time</h2>",
        _figure_html(
            line_chart(
                "Tokens per second",
                [(na, a.series["t"], a.series["tokens_per_s"]), (nb, b.series["t"], b.series["tokens_per_s"])],
                "tokens/s",
            ),
            "",
        ),
        _figure_html(
            line_chart(
                "Effective training time ratio",
                [(na, a.series["t"], a.series["ettr"]), (nb, b.series["t"], b.series["ettr"])],
                "ETTR (%)",
                percent=True,
            ),
            "",
        ),
        _figure_html(factors_chart(f"The five factors: {na}", a), ""),
        _figure_html(factors_chart(f"The five factors: {nb}", b), ""),
        "<h2>What faults cost</h2>",
        _figure_html(
            bar_chart(
                "Job interruptions by cause",
                causes or ["none"],
                [
                    (na, [a.summary["interruptions"].get(c, 0) for c in causes] or [0]),
                    (nb, [b.summary["interruptions"].get(c, 0) for c in causes] or [0]),
                ],
                "interruptions",
            ),
            "",
        ),
        *_power_section([(na, a), (nb, b)]),
    ]
    return _page(
        f"factorysim compare: {na} vs {nb}",
        f"seed {a.summary['seed']}, {human_duration(a.summary['duration_s'])} of sim time",
        body,
    )
