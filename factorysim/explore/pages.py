"""HTML reports of a search (the frontier) and of a sweep (a chart per varied key), self-contained with
inline SVG, built with the run reports' page and chart helpers. Names from scenario files are text:
escaped in HTML, and never read as matplotlib math."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..perf import StepEstimate
from ..report import COLORS, _figure, _figure_html, _page, _svg, _table, rc_context
from .knobs import LABELS
from .search import SearchResult, changes
from .sweep import SweepResult, is_number, means
from .values import plain

PLAIN_TEXT = {"text.parse_math": False}


def _chart(build) -> str:
    from matplotlib import rcParams

    with rc_context(PLAIN_TEXT, rcParams):
        return build()


def _layout_name(result: SearchResult, record) -> str:
    s = result.settings(record)
    variant = [f"{k}={plain(v)}" for k, v in result.variants[record.variant][0]]
    short = [f"{LABELS.get(k, k)}={plain(v)}" for k, v in s.items() if k in result.domain.turned]
    return " ".join(variant + short)


def frontier_chart(result: SearchResult, x: str, xlabel: str) -> str:
    obj = result.objective

    def build() -> str:
        fig, ax = _figure(height=3.4)
        cloud = result.cloud
        ax.scatter([getattr(r, x) for r in cloud], [r.objective for r in cloud], s=6, color="#9ca3af",
                   alpha=0.5, label="layouts (best per placement and memory bin)", linewidths=0)  # fmt: skip
        if x == "memory_gb":
            front = result.frontier
            ax.plot([r.memory_gb for r in front], [r.objective for r in front], color=COLORS[0], linewidth=1.4,
                    drawstyle="steps-post" if obj.better == "higher" else "default", marker="o", markersize=3,
                    label="frontier")  # fmt: skip
        top = result.best
        ax.scatter([getattr(r, x) for r in top], [r.objective for r in top], s=30, color=COLORS[1], zorder=3,
                   label=f"top {len(top)}")  # fmt: skip
        if result.baseline is not None:
            b = result.baseline
            ax.scatter([getattr(b, x)], [b.objective], s=60, marker="*", color=COLORS[4], zorder=4,
                       label="the scenario's own layout")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{obj.label} ({'higher' if obj.better == 'higher' else 'lower'} is better)")
        ax.set_title(f"{obj.label} against {xlabel}", loc="left", fontsize=11)
        ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
        return _svg(fig)

    return _chart(build)


def search_report(result: SearchResult, estimates: Sequence[StepEstimate], why: Sequence[str]) -> str:
    obj = result.objective
    extra = [m for m in ("tokens_per_s", "mfu") if m != obj.name]
    names = {"tokens_per_s": "tokens/s", "mfu": "MFU"}
    head = ["#", obj.label, *(names[m] for m in extra), "step s", "GB per chip", "chips", "layout", "changes"]

    def measures(r) -> list[str]:
        shown = {"tokens_per_s": f"{r.tokens_per_s:,.0f}", "mfu": f"{r.mfu:.1%}"}
        return [obj.fmt(r.objective), *(shown[m] for m in extra), f"{r.step_time_s:.3f}", f"{r.memory_gb:.1f}",
                f"{r.chips:,}"]  # fmt: skip

    rows = []
    for rank, r in enumerate(result.best, 1):
        rows.append((str(rank), *measures(r), _layout_name(result, r), ", ".join(changes(result, r)) or "none"))
    if result.baseline is not None:
        rows.append(("own", *measures(result.baseline), "", "the scenario as given"))
    counts = [
        ("placements valid", f"{result.placements:,}"),
        *((f"placements refused: {k}", f"{n:,}") for k, n in result.placement_refused.most_common()),
        ("layouts estimated", f"{result.estimated:,}"),
        *((f"layouts refused: {k}", f"{n:,}") for k, n in result.layout_refused.most_common()),
    ]
    chips = {r.chips for r in result.cloud}
    body = [
        "<h2>Best layouts</h2>",
        _table(head, rows),
        "<h2>Why the best beats the scenario's own layout</h2>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in why) + "</ul>",
        "<h2>The frontier</h2>",
        _figure_html(
            frontier_chart(result, "memory_gb", "memory per chip (GB)"),
            "Each grey dot is the best layout of one placement in a band of memory per chip; the line is "
            "the best any layout reaches within that memory.",
        ),
        _figure_html(frontier_chart(result, "chips", "chips used"), "The same layouts by the chips the job runs on.")
        if len(chips) > 1
        else f"<p>Every layout fills the job's {next(iter(chips), 0):,} chips: search with --vary "
        "cluster.spare_nodes=... (or cluster.nodes) to see the objective against chips used.</p>",
        "<h2>What was tried</h2>",
        _table(["", "count"], counts),
    ]
    s = result.scenario
    return _page(f"factorysim search: {s.name}", f"ranked by {obj.label}; {result.layouts_tried:,} layouts tried", body)


# ------------------------------------------------------------------ sweeps


def _headline(result: SweepResult) -> tuple[str, str, str | None]:
    if result.seeds:
        return "mean_tokens_per_s", "tokens/s with faults (mean ± sd of seeds)", "mean_tokens_per_s"
    return "tokens_per_s", "tokens/s (fault-free step)", None


def sweep_chart(result: SweepResult, axis: int) -> str:
    metric, _label, spread_of = _headline(result)
    key = result.axes[axis].key
    order = list(dict.fromkeys(result.axes[axis].values))
    numeric = all(is_number(v) for v in order)
    rows = [r for r in means(result) if r["stat"] != "refused"]
    sd = {r["point"]: r for r in result.rows if r["stat"] == "sd"}
    others = [i for i in range(len(result.axes)) if i != axis]

    def rest(point: int) -> tuple:
        return tuple(result.points[point].values[i] for i in others)

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(rest(r["point"]), []).append(r)

    def build() -> str:
        fig, ax = _figure(height=3.0)
        shown = list(groups.items())[:6]
        for n, (combo, members) in enumerate(shown):
            members.sort(key=lambda r: order.index(result.points[r["point"]].values[axis]))
            xs = [result.points[r["point"]].values[axis] for r in members]
            xs = xs if numeric else [order.index(x) for x in xs]
            ys = [r[metric] for r in members]
            err = [sd[r["point"]][spread_of] if spread_of and r["point"] in sd else 0.0 for r in members]
            name = ", ".join(f"{result.axes[i].key}={plain(v)}" for i, v in zip(others, combo, strict=True)) or key
            ax.errorbar(xs, ys, yerr=err if spread_of else None, color=COLORS[n % len(COLORS)], marker="o",
                        markersize=3, linewidth=1.3, capsize=2, label=name)  # fmt: skip
        if not numeric:
            ax.set_xticks(range(len(order)), labels=[plain(v) for v in order], fontsize=8)
        ax.set_xlabel(key)
        ax.set_ylabel("tokens/s")
        title = f"against {key}"
        if len(groups) > 6:
            title += f" (6 of {len(groups)} combinations of the other keys)"
        ax.set_title(title, loc="left", fontsize=11)
        ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
        return _svg(fig)

    return _chart(build)


def sweep_report(result: SweepResult, name: str) -> str:
    _metric, label, _ = _headline(result)
    head = ["point", *(a.key for a in result.axes), "tokens/s", "MFU"]
    if result.seeds:
        head += ["ETTR", "mean tokens/s"]
    head.append("refused because")
    rows = []
    for r in means(result):
        cells = [str(r["point"]), *(plain(v) for v in result.points[r["point"]].values)]
        if r["stat"] == "refused":
            cells += ["", ""] + (["", ""] if result.seeds else []) + [r["problem"]]
        else:
            cells += [f"{r['tokens_per_s']:,.0f}", f"{r['mfu']:.1%}"]
            if result.seeds:
                cells += [f"{r['ettr']:.2%}", f"{r['mean_tokens_per_s']:,.0f}"]
            cells.append("")
        rows.append(cells)
    body = [f"<h2>{html.escape(label)} by key</h2>"]
    body += [_figure_html(sweep_chart(result, i), "") for i in range(len(result.axes))]
    body += ["<h2>Points</h2>", _table(head, rows)]
    seeds = f", {len(result.seeds)} seeds per point" if result.seeds else ", estimates only"
    return _page(f"factorysim sweep: {name}", f"{len(result.points):,} points{seeds}; results in {result.output}", body)
