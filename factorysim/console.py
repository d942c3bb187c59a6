"""Readable terminal output for the command line: tables, the factor waterfall, progress."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .labels import FACTOR_NAMES, describe, si
from .perf.step import StepEstimate
from .scenario.models import Scenario

PIPE_WIDTH = 200
"""Columns for output that is not a terminal (a pipe, a file): wide enough that no table is cut."""


def terminal_console() -> Console:
    """A console for the command line: the terminal's width, or PIPE_WIDTH when piped, so nothing is cut."""
    console = Console(highlight=False)
    if not console.is_terminal and console.width < PIPE_WIDTH:
        console = Console(highlight=False, width=PIPE_WIDTH)
    return console


def bar(fraction: float, width: int = 20) -> str:
    fraction = max(0.0, min(1.0, fraction))
    full = int(fraction * width)
    part = " ▏▎▍▌▋▊▉"[int((fraction * width - full) * 8)]
    return ("█" * full + (part if full < width else "")).ljust(width)


def waterfall_table(e: StepEstimate, stability_note: str = "1 per step; see factorysim run") -> Table:
    t = Table(title="From peak to delivered (model FLOP/s)", title_justify="left", box=None, pad_edge=False)
    t.add_column("", no_wrap=True, min_width=17)
    t.add_column("factor", justify="right", no_wrap=True, min_width=6)
    t.add_column("FLOP/s", justify="right", no_wrap=True, min_width=13)
    t.add_column("", no_wrap=True, min_width=20)
    t.add_column("", style="dim", overflow="ellipsis", no_wrap=True, ratio=1)
    peak = e.peak_flops
    t.add_row("peak (dense BF16)", "", si(peak, "FLOP/s"), bar(1.0), f"{e.chips:,} chips")
    running = peak
    factors = e.factors.as_dict()
    for key, name, meaning in FACTOR_NAMES:
        running *= factors[key]
        note = stability_note if key == "stability" and factors[key] == 1.0 else meaning
        t.add_row(f"× {name}", f"{factors[key]:.3f}", si(running, "FLOP/s"), bar(running / peak), note)
    t.add_row(
        Text("= delivered", style="bold"),
        f"{e.factors.product:.3f}",
        Text(si(e.delivered_flops, "FLOP/s"), style="bold"),
        bar(e.delivered_flops / peak),
        f"{e.factors.product * 100:.1f} % of peak",
    )
    return t


def breakdown_table(e: StepEstimate) -> Table:
    t = Table(title="Where a step's time goes", title_justify="left", box=None, pad_edge=False)
    t.add_column("part")
    t.add_column("seconds", justify="right")
    t.add_column("share", justify="right")
    t.add_column("")
    labels = {
        "compute_s": "compute",
        "optimizer_s": "optimizer update",
        "tp_s": "tensor-parallel comm",
        "pp_s": "pipeline p2p",
        "dp_s": "data-parallel comm (exposed)",
        "ep_s": "expert-parallel all-to-all",
        "cp_s": "context-parallel comm",
        "bubble_s": "pipeline bubble",
        "straggler_s": "waiting for stragglers",
    }
    step = e.step_time_s
    for key, value in vars(e.breakdown).items():
        if value == 0 and key not in ("compute_s",):
            continue
        share = value / step if step > 0 else 0.0
        t.add_row(labels[key], f"{value:.3f}", f"{share * 100:.1f} %", bar(share, 20))
    t.add_row(Text("step", style="bold"), Text(f"{step:.3f}", style="bold"), "100 %", "")
    return t


def print_estimate(console: Console, s: Scenario, e: StepEstimate) -> None:
    chip = s.cluster.chip_spec
    console.print(Text(s.name, style="bold"), Text("— " + describe(s, e)))
    if e.blocked:
        console.print(Text("The job cannot run: " + "; ".join(e.notes), style="bold red"))
        return
    console.print(
        f"  step {e.step_time_s:.3f} s · {e.tokens_per_s:,.0f} tokens/s · "
        f"MFU {e.mfu * 100:.1f} % (model FLOPs) · HFU {e.hfu * 100:.1f} % (hardware FLOPs, recompute counted) · "
        f"{e.tflops_per_chip:.0f} TFLOP/s per chip"
    )
    mem = e.memory.as_gb()
    where = f" on stage {e.memory.stage} of {e.layout.pp} (the fullest)" if e.layout.pp > 1 else ""
    console.print(
        f"  memory {mem['total']:.1f} of {chip.memory_gb:g} GB per chip{where} "
        f"(weights {mem['weights']:.1f}, gradients {mem['gradients']:.1f}, optimizer {mem['optimizer']:.1f}, "
        f"activations {mem['activations']:.1f}, runtime {mem['overhead']:.1f})"
    )
    if not e.fits:
        console.print(
            Text(
                f"  does not fit: {e.memory_over / 1e9:.1f} GB over; the step above is timed as if memory were "
                f"unlimited, and `factorysim run` would refuse the job",
                style="bold red",
            )
        )
        console.print(Text("  would fit with: " + "; or ".join(e.fit_hints), style="red"))
    target = s.workload.target_tokens
    if target:
        from .scenario.units import human_duration

        console.print(
            f"  {si(target)} target tokens in {human_duration(target / e.tokens_per_s)} at this rate with no faults"
        )
    for note in e.notes:
        console.print(Text(f"  note: {note}", style="yellow"))
    console.print()
    console.print(waterfall_table(e))
    console.print()
    console.print(breakdown_table(e))


def usd(x: float) -> str:
    """Dollars with sense: $0.047, $91.83, $4,723, $40.8 M."""
    if x >= 1e6:
        return f"${x / 1e6:,.3g} M" if x < 1e9 else f"${x / 1e9:,.3g} B"
    if x >= 100:
        return f"${x:,.0f}"
    return f"${x:.3g}" if x < 1 else f"${x:,.2f}"


def mean_sd(value: float, sd: float | None, fmt: str | Callable[[float], str]) -> str:
    """A value, with ' ± sd' when a spread is given; a spread that is rounding noise (a millionth of the value or
    less) is 0, and -0 is 0."""
    show = fmt if callable(fmt) else (lambda x: format(x, fmt))
    text = show(value + 0.0)
    if sd is not None:
        text += " ± " + show(0.0 if abs(sd) <= 1e-6 * abs(value) else sd)
    return text


def count(x: float) -> str:
    """A count, or a mean of counts: 3, 1,204, 0.67."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def amount(x: float) -> str:
    """A quantity to a sensible precision: 4.37, 511, 32,769."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def watts(x: float) -> str:
    """Power in W, kW or MW."""
    if x >= 1e6:
        return f"{x / 1e6:.3g} MW"
    if x >= 1e3:
        return f"{x / 1e3:.3g} kW"
    return f"{x:.0f} W"


def print_power(console: Console, s: Scenario, sp, unknown: str | None = None) -> None:
    """`estimate`'s power, energy and cost section (sp: perf.power.StepPower; `unknown`: why there is none)."""
    console.print(Text("Power and cost", style="italic"), Text("(fault-free, at the step's duty cycle)", style="dim"))
    if sp is None:
        console.print(Text(f"  unknown: {unknown}", style="yellow"))
        return
    m, ph = sp.model, sp.phases
    step = ph.total or 1.0
    cap = f", capped at {m.chip.cap_w:g} W" if m.chip.cap_w is not None else ""
    console.print(
        f"  per chip {sp.chip_w:.0f} W over a step{cap}: GEMM-bound {m.chip.gemm_w:.0f} W {ph.gemm_s / step:.0%} of the "
        f"time, memory-bound {m.chip.memory_w:.0f} W {ph.memory_s / step:.0%}, waiting {m.chip.waiting_w:.0f} W "
        f"{ph.waiting_s / step:.0%}; idle {m.chip.idle_w:.0f} W"
    )
    console.print(
        f"  cluster {watts(sp.it_w)} IT (job {watts(sp.job_it_w)} with hosts at {watts(m.host_w)} a server, spares "
        f"{watts(sp.spares_it_w)}, fabric {watts(sp.fabric_w)}: {sp.inventory.switches:,} switches, "
        f"{sp.inventory.switch_ports:,} switch ports, {sp.inventory.nic_ports:,} NICs) · {watts(sp.site_w)} at the "
        f"meter (PUE {m.pue:.2f}) · peak {watts(sp.peak_site_w)}"
    )
    limit = s.facility.power_mw
    if limit is not None:
        over = sp.peak_site_w / 1e6 > limit
        line = f"  facility limit {limit:g} MW: peak {sp.peak_site_w / 1e6:.2f} MW, " + (
            "OVER: `factorysim run` would refuse the cluster"
            if over
            else f"{limit - sp.peak_site_w / 1e6:.2f} MW spare"
        )
        console.print(Text(line, style="bold red" if over else ""))
    console.print(
        f"  energy per step {si(sp.energy_per_step_j, 'J')} · {sp.tokens_per_kwh:,.0f} tokens per kWh · "
        f"{sp.joules_per_flop * 1e12:.2f} pJ per model FLOP"
    )
    hardware = (
        f"{usd(sp.capex_usd_per_hour)} hardware over {m.amortization_years:g} y"
        if sp.capex_usd_per_hour is not None
        else "hardware not priced"
    )
    console.print(
        f"  cost {usd(sp.usd_per_hour)} per hour ({usd(sp.electricity_usd_per_hour)} electricity at "
        f"${m.usd_per_kwh:g}/kWh, {hardware}) · {usd(sp.usd_per_million_tokens)} per million tokens · "
        f"{sp.co2_kg_per_hour:,.0f} kg CO2 per hour at {m.carbon_g_per_kwh:g} g/kWh"
    )
    target = s.workload.target_tokens
    if target:
        to = sp.to_tokens(target)
        console.print(
            f"  {si(target)} target tokens: {amount(to['energy_mwh'])} MWh, {usd(to['usd'])} "
            f"({usd(to['electricity_usd'])} of it electricity), {amount(to['co2_t'])} t CO2"
        )
    console.print(
        f"  swings: {watts(sp.stop_swing_w)} when the whole job stops at once (a checkpoint, a hang, a restart); "
        f"{watts(sp.phase_swing_w)} between compute and communication inside a step"
    )
    unpriced = [k for k, v in sp.capex_parts.items() if v is None]
    if unpriced:
        console.print(Text(f"  not priced: {', '.join(unpriced)} (set them in [cost])", style="dim"))
    assumed = m.assumptions
    if assumed:
        console.print(
            Text(
                f"  assumptions in use: {', '.join(assumed)}; sources and assumptions: "
                "factorysim/scenario/data/power.toml",
                style="dim",
            )
        )


def print_run_summary(console: Console, s: Scenario, summary: dict, base: StepEstimate) -> None:
    """A run's (or the mean of several runs') summary: output, interruptions, what the faults cost."""
    from .scenario.units import human_duration

    runs = summary.get("runs", 1)
    spread = summary.get("spread", {})

    def pm(key: str, fmt: str | Callable[[float], str], scale: float = 1.0) -> str:
        sd = spread[key] * scale if runs > 1 and key in spread else None
        return mean_sd(summary[key] * scale, sd, fmt)

    head = f"{s.name} — {human_duration(summary['duration_s'])} of sim time, policy {summary['policy']}"
    head += f", {runs} seeds (mean ± sd)" if runs > 1 else f", seed {summary['seed']}"
    console.print(Text(head, style="bold"))
    console.print(
        f"  effective training time ratio (ETTR) {pm('ettr', '.2%')} · cluster stability {pm('stability', '.4f')}"
    )
    console.print(
        f"  tokens {pm('tokens', lambda x: si(x, '', 4))} · mean {pm('mean_tokens_per_s', ',.0f')} tokens/s "
        f"(fault-free {base.tokens_per_s:,.0f})"
    )
    target = s.workload.target_tokens
    if target:
        reached = summary.get("time_to_target_s")
        if reached is not None:
            console.print(f"  target of {si(target)} tokens reached after {human_duration(reached)}")
        elif summary["mean_tokens_per_s"] > 0:
            eta = target / summary["mean_tokens_per_s"]
            console.print(f"  target of {si(target)} tokens: about {human_duration(eta)} at the mean rate")
    console.print()
    interruptions = dict(summary["interruptions"])
    total = interruptions.pop("total", sum(interruptions.values()))
    rows = [(cause, count(n)) for cause, n in sorted(interruptions.items(), key=lambda kv: -kv[1])]
    print_rows(
        console, f"Job interruptions: {count(total)}" + (" per run" if runs > 1 else ""), ["cause", "count"], rows
    )
    if summary.get("isolations"):
        console.print(f"  node groups isolated without stopping the job: {count(summary['isolations'])}")
    console.print(
        f"  faults {count(summary['faults'])} · spares used {count(summary['spares_used'])} · "
        f"checkpoints {count(summary['checkpoints'])}"
    )
    if "spare_pool_empty_s" in summary:
        pool = (f"spare pool empty {pm('spare_pool_empty_s', '.1f', 1 / 3600)} h" if s.cluster.spare_nodes
                else "no spare servers (cluster.spare_nodes = 0)")  # fmt: skip
        console.print(
            f"  {pool} · a slot waiting for a repaired server {pm('waiting_for_spares_s', '.1f', 1 / 3600)} h"
        )
    console.print()
    lost = summary["lost_chip_hours_by"]
    labels = {"downtime": "job down (detect, restart)", "waiting_for_spares": "job down waiting for spares",
              "checkpoints": "checkpoint pauses",
              "slowdown_and_width": "slow chips/links, fewer replicas", "rolled_back": "work lost to rollbacks"}  # fmt: skip
    print_rows(
        console,
        f"Lost chip-hours: {summary['lost_chip_hours']:,.0f} ({1 - summary['stability']:.2%} of the fault-free output)",
        ["where", "chip-hours"],
        [(labels.get(k, k), f"{v:,.0f}") for k, v in lost.items()],
    )
    if summary.get("power"):
        console.print()
        print_run_power(console, s, summary["power"], runs, spread.get("power", {}))
    console.print()
    from dataclasses import replace

    factors = summary["factors"]
    shown = replace(base, factors=replace(base.factors, stability=factors["stability"]))
    console.print(waterfall_table(shown))
    if summary.get("fingerprint"):
        console.print(Text(f"\nfingerprint {summary['fingerprint']}", style="dim"))


def print_run_power(console: Console, s: Scenario, p: dict, runs: int = 1, spread: dict | None = None) -> None:
    """A run's energy, power, swing, energy lost to faults and cost (p: RunSummary.power, or its mean)."""
    spread = spread or {}

    def sd(key: str, fmt: str | Callable[[float], str], unit: str, scale: float = 1.0) -> str:
        return mean_sd(p[key] * scale, spread[key] * scale if runs > 1 and key in spread else None, fmt) + unit

    console.print(
        Text("Power and cost", style="italic"), Text("(the cluster's draw by state over the run)", style="dim")
    )
    console.print(
        f"  energy {sd('energy_mwh', amount, ' MWh')} at the meter · mean {watts(p['mean_w'])}, "
        f"peak {watts(p['peak_w'])} (fault-free {watts(p['fault_free_w'])}) · "
        f"{sd('tokens_per_kwh', ',.0f', '')} tokens per kWh"
    )
    console.print(
        f"  largest swing within a minute {sd('swing_w', '.3g', ' MW', 1e-6)} "
        "(a checkpoint pause, a hang, a stop or a restart of the whole job)"
    )
    limit = p.get("facility_mw")
    if limit is not None:
        over = p["peak_w"] / 1e6 > limit
        console.print(
            Text(
                f"  facility limit {limit:g} MW: peak {p['peak_w'] / 1e6:.2f} MW" + (" — OVER" if over else ""),
                style="bold red" if over else "",
            )
        )
    hardware = (
        f"{usd(p['hardware_usd'])} hardware amortised" if p.get("hardware_usd") is not None else "hardware not priced"
    )
    per_m = p.get("usd_per_million_tokens")
    console.print(
        f"  cost {usd(p['usd'])} ({usd(p['electricity_usd'])} electricity at ${p['usd_per_kwh']:g}/kWh, {hardware}) · "
        f"{usd(p['usd_per_hour'])} per hour · " + (f"{usd(per_m)} per million tokens" if per_m else "no tokens")
    )
    console.print(f"  emissions {amount(p['co2_t'])} t CO2 at {p['carbon_g_per_kwh']:g} g/kWh")
    to = p.get("to_target")
    if to and s.workload.target_tokens:
        console.print(
            f"  {si(s.workload.target_tokens)} target tokens at this run's rate: {amount(to['energy_mwh'])} MWh, "
            f"{usd(to['usd'])} ({usd(to['electricity_usd'])} of it electricity), {amount(to['co2_t'])} t CO2"
        )
    labels = {"downtime": "job down (detect, restart)", "waiting_for_spares": "job down waiting for spares",
              "checkpoints": "checkpoint pauses", "slowdown_and_width": "slow chips/links, fewer replicas",
              "rolled_back": "work lost to rollbacks", "servers_off": "servers off in repair (not drawn)"}  # fmt: skip
    lost = p["lost_energy_mwh_by"]
    total = p["lost_energy_mwh"]
    print_rows(
        console,
        f"Energy lost to faults: {amount(total)} MWh ({total / p['energy_mwh']:.2%} of the energy)"
        if p["energy_mwh"] > 0
        else "Energy lost to faults",
        ["where", "MWh"],
        [(labels.get(k, k), f"{v:,.1f}") for k, v in lost.items()],
    )


def print_rows(console: Console, title: str, header: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    """A plain table. Titles, headers and cells are text, never markup: names like [reliability.rates] show as typed."""
    console.print(Text(title, style="italic"))  # its own line: a table title would wrap at the table's width
    rows = list(rows)
    if not rows:
        return
    t = Table(box=None, pad_edge=False)
    for i, h in enumerate(header):
        t.add_column(Text(h, style="bold"), justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(Text(str(x)) for x in row))
    console.print(t)


_UNITS = {"tokens_per_s_per_gpu": "tok/s/GPU", "tflops_per_gpu": "TFLOP/s/GPU", "mfu": "MFU"}
_TABLE_TITLES = {
    "calibration": "Calibration: runs the fitted constants were fitted to",
    "validation": "Validation: runs never used for fitting",
}


def print_calibration(console: Console, results, summaries) -> None:
    """`factorysim calibrate`: the calibration and validation tables, each with its mean and largest error."""
    from .perf.calibration import CALIBRATION_TOLERANCE, VALIDATION_MAX, VALIDATION_MEAN

    targets = {
        "calibration": f"target: each within ±{CALIBRATION_TOLERANCE:.0%}",
        "validation": f"targets: mean ≤ {VALIDATION_MEAN:.0%}, largest ≤ {VALIDATION_MAX:.0%}, nothing refused",
    }
    for table, summary in summaries.items():
        rows = [r for r in results if r.case.table == table]
        if not rows:
            continue
        t = Table(title=_TABLE_TITLES[table], title_justify="left", box=None, pad_edge=False)
        t.add_column("run", no_wrap=True, max_width=30, overflow="ellipsis")
        t.add_column("published", justify="right")
        t.add_column("model", justify="right")
        t.add_column("error", justify="right")
        t.add_column("unit", no_wrap=True)
        for r in rows:
            flops = ""
            if r.case.unit != "tokens_per_s_per_gpu":
                flops = " hw" if r.case.convention == "hardware" else ""
                flops += " causal" if r.case.scenario.workload.attention_flops == "causal" else ""
            error = f"{r.error * 100:+.1f} %" + ("" if r.fits else " OOM")
            t.add_row(r.case.name, f"{r.case.measured:g}", f"{r.modelled:.4g}", error, _UNITS[r.case.unit] + flops)
        console.print(t)
        verdict = " — met" if summary.ok else " — NOT met"
        refused = f", {summary.refused} do not fit in memory" if summary.refused else ""
        console.print(
            f"  {summary.rows} runs: mean |error| {summary.mean_abs_error:.1%}, largest {summary.max_abs_error:.1%}"
            f"{refused} ({targets[table]}){verdict}\n"
        )
    console.print("Sources and assumptions per run: factorysim calibrate --json", style="dim")
