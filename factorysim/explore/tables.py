"""Terminal output of searches and sweeps, with the estimate's own waterfall table."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..console import waterfall_table
from ..labels import describe, plural
from ..perf import StepEstimate
from ..scenario.files import scenario_data, value_at
from .knobs import BY_KEY, LABELS
from .search import SearchResult, changes, refusal_lines
from .sweep import SweepResult, means
from .values import plain


def compact(settings: dict) -> str:
    """A layout as people write it: "TP4 PP2×12 DP128 mb1 ZeRO2 full recompute" (what is off left out)."""
    g = settings.get
    parts = [f"TP{g('parallelism.tp')}"]
    if g("parallelism.cp", 1) > 1:
        parts.append(f"CP{g('parallelism.cp')}")
    v = g("parallelism.interleave", 1)
    parts.append(f"PP{g('parallelism.pp')}" + (f"×{v}" if v > 1 else ""))
    first, last = g("parallelism.first_stage_layers"), g("parallelism.last_stage_layers")
    if first is not None or last is not None:
        parts.append("stages " + "/".join(str(n) if n is not None else "even" for n in (first, last)))
    elif (stages := g("parallelism.stage_layers")) is not None:
        parts.append("stages " + ",".join(map(str, stages)))
    parts.append(f"DP{g('parallelism.dp')}")
    if g("parallelism.ep", 1) > 1:
        parts.append(f"EP{g('parallelism.ep')}")
    parts += [f"mb{g('workload.micro_batch')}", f"ZeRO{g('parallelism.zero')}"]
    if g("workload.recompute") != "none":
        parts.append(f"{g('workload.recompute')} recompute")
    if g("parallelism.tp", 1) > 1 and g("parallelism.sequence_parallel") is False:
        parts.append("no SP")
    if g("workload.grad_dtype") == "bf16":
        parts.append("BF16 grads")
    if (attention := g("workload.attention")) not in (None, "flash"):
        parts.append(str(attention))
    for key, label in (("workload.precision", ""), ("features.tp_overlap", "TP overlap"),
                       ("features.in_network_reduction", "INR"), ("features.async_comm_engine", "ACE")):  # fmt: skip
        value = g(key)
        if key == "workload.precision" and value == "fp8":
            parts.append("FP8")
        elif value is True:
            parts.append(label)
    return " ".join(parts)


WATERFALLS = 10
"""Layouts of the top whose factor waterfalls are printed (the table lists them all)."""


def layout_text(result: SearchResult, r) -> str:
    """Every searched knob of a layout: "tp4 cp1 pp4 dp64 ep1 mb1 v2 sp=true zero1 recompute=none"."""
    settings = result.settings(r) if r.variant >= 0 else dict(r.choice)
    out = []
    for k in result.domain.turned:
        v = BY_KEY[k].show(settings.get(k))
        short = LABELS[k] in ("tp", "cp", "pp", "dp", "ep", "mb", "v", "zero")  # tp4, mb1, zero1; last=19
        out.append(f"{LABELS[k]}{v}" if v.isdigit() and short else f"{LABELS[k]}={v}")
    return " ".join(out)


def print_search(console: Console, result: SearchResult, estimates: Sequence[StepEstimate], why: Sequence[str]) -> None:
    s, obj = result.scenario, result.objective
    console.print(Text(s.name, style="bold"), Text(f"— every layout ranked by {obj.label}"))
    held = [f"{k.key} = {k.show(result.settings(result.best[0]).get(k.key))}" for k in BY_KEY.values()
            if k.level == "layout" and k.key not in result.domain.turned and result.best]  # fmt: skip
    if held:
        console.print(Text("  held (--vary KEY to search): " + ", ".join(held), style="dim"))
    for line in refusal_lines(result):
        console.print(f"  {line}")
    if not result.best:
        console.print(Text("No layout fits: every candidate was refused (see above).", style="bold red"))
        return
    variant_keys = [k for k, _ in result.variants[0][0]]
    t = Table(title=f"Top {len(result.best):,} by {obj.label}", title_justify="left", box=None, pad_edge=False)
    extra = [m for m in ("tokens_per_s", "mfu") if m != obj.name]
    names = {"tokens_per_s": "tokens/s", "mfu": "MFU"}
    for h in ["#", obj.label, *(names[m] for m in extra), "GB/chip"]:
        t.add_column(h, justify="right", no_wrap=True)
    for k in variant_keys:
        t.add_column(LABELS.get(k, k), no_wrap=True)
    t.add_column("layout", no_wrap=False)

    def measures(r) -> list[str]:
        shown = {"tokens_per_s": f"{r.tokens_per_s:,.0f}", "mfu": f"{r.mfu:.1%}"}
        return [obj.fmt(r.objective), *(shown[m] for m in extra), f"{r.memory_gb:.1f}"]

    for rank, r in enumerate(result.best, 1):
        settings = result.settings(r)
        t.add_row(str(rank), *measures(r), *(plain(settings.get(k)) for k in variant_keys), compact(settings))
    if result.baseline is not None:
        b = result.baseline
        own = dict(b.choice)
        t.add_row(*[Text(c, style="dim") for c in [
            "own", *measures(b), *(plain(_variant_value(result, k)) for k in variant_keys), compact(own)]])  # fmt: skip
    console.print()
    console.print(t)
    if len(result.variants) > 1:
        console.print()
        per = Table(title="Best per " + ", ".join(variant_keys), title_justify="left", box=None, pad_edge=False)
        link = "cluster.chip" in variant_keys
        heads = [*(LABELS.get(k, k) for k in variant_keys), *(["scale-up"] if link else []), obj.label,
                 *(names[m] for m in extra)]  # fmt: skip
        for h in heads:
            per.add_column(h, justify="right" if h in (obj.label, "tokens/s", "MFU") else "left", no_wrap=True)
        per.add_column("layout")
        for (sets, v), best in zip(result.variants, result.best_per_variant, strict=True):
            values = [plain(x) for _, x in sets] + ([v.cluster.link_name] if link else [])
            if best is None:
                per.add_row(*values, "no layout fits")
            else:
                per.add_row(*values, *measures(best)[:-1], compact(result.settings(best)))
        console.print(per)
    console.print()
    console.print(Text("Why the best beats the scenario's own layout", style="bold"))
    moved = changes(result, result.best[0])
    console.print("  " + ("changes: " + ", ".join(moved) if moved else "it is the scenario's own layout"))
    for line in why:
        console.print(f"  {line}")
    for rank, (r, e) in enumerate(zip(result.best, estimates, strict=True), 1):
        if rank > WATERFALLS:
            console.print(
                Text(f"\n(waterfalls of the first {WATERFALLS}; --json has every layout's factors)", style="dim")
            )
            break
        console.print()
        scenario = result.scenario_for(r)
        console.print(Text(f"#{rank} ", style="bold"), Text(describe(scenario, e)))
        console.print(Text(f"   {layout_text(result, r)}", style="dim"))
        console.print(waterfall_table(e))


def _variant_value(result: SearchResult, key: str):
    return value_at(scenario_data(result.scenario), key)


def print_sweep(console: Console, result: SweepResult, limit: int = 20) -> None:
    rows = means(result)
    t = Table(title=plural(len(result.points), "point") + (f", {plural(len(result.seeds), 'seed')} each" if result.seeds else ""),
              title_justify="left", box=None, pad_edge=False)  # fmt: skip
    last = [a.key.rsplit(".", 1)[-1] for a in result.axes]
    head = [
        "#",
        *(n if last.count(n) == 1 else a.key for n, a in zip(last, result.axes, strict=True)),
        "tokens/s",
        "MFU",
    ]
    spread = result.seeds is not None and len(result.seeds) > 1
    if result.seeds:  # stability beside ETTR: under isolate-group the job trains on through a fault, slower
        head += ["ETTR (mean ± sd)" if spread else "ETTR", "stability", "tokens/s with faults"]
    for h in head:
        t.add_column(h, justify="right", no_wrap=True)
    sd = {r["point"]: r for r in result.rows if r["stat"] == "sd"}
    for r in rows[:limit]:
        cells = [str(r["point"]), *(plain(v) for v in result.points[r["point"]].values)]
        if r["stat"] == "refused":
            t.add_row(*cells, Text("refused", style="yellow"))
            continue
        cells += [f"{r['tokens_per_s']:,.0f}", f"{r['mfu']:.1%}"]
        if result.seeds:
            d = sd.get(r["point"], {})
            ettr = f"{r['ettr']:.2%}" + (f" ± {d.get('ettr', 0.0):.2%}" if spread else "")
            cells += [ettr, f"{r['stability']:.3f}", f"{r['mean_tokens_per_s']:,.0f}"]
        t.add_row(*cells)
    console.print(t)
    if len(rows) > limit:
        console.print(Text(f"  … {len(rows) - limit:,} more points in {result.output}", style="dim"))
    if result.refused:
        console.print(Text(f"  {result.refused:,} points refused by the scenario checks (rows with stat = refused):",
                           style="yellow"))  # fmt: skip
        refused = [(r["point"], r["problem"]) for r in rows if r["stat"] == "refused"]
        for point, problem in refused[:5]:
            console.print(Text(f"    point {point}: {problem}", style="yellow"), soft_wrap=True)
        if len(refused) > 5:
            console.print(Text(f"    … {len(refused) - 5:,} more", style="yellow"))
    console.print(
        f"\n{plural(len(result.rows), 'row')} written to {result.output}: computed {plural(result.computed, 'result')}, "
        f"reused {result.reused:,} from earlier runs",
        soft_wrap=True,
    )
