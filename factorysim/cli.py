"""Command-line entry points. Thin: parse arguments, call the library, print.

Exit codes: 0 success, 1 a check failed (calibrate), 2 bad input (scenario, arguments, files).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._version import __version__

EXAMPLES = """\
examples:
  factorysim                                          open the sandbox on the built-in 64-GPU starter
  factorysim play scenarios/kuae-mtt-s4000-10k.toml   open the sandbox on a file
  factorysim estimate                                 one training step of the starter scenario
  factorysim estimate scenarios/llama3-70b-1k-h100.toml
  factorysim estimate scenarios/h100-100k.toml --set workload.precision=fp8 --json
  factorysim estimate FILE --set parallelism.tp=4 --set parallelism.dp=auto
  factorysim run scenarios/kuae-mtt-s4000-10k.toml    30 days with faults: ETTR, stability, lost chip-hours
  factorysim run FILE --seeds 100 --json              means and spreads over 100 seeds
  factorysim run FILE --record run.jsonl              keep the event log ...
  factorysim replay run.jsonl                         ... and check that it re-simulates identically
  factorysim run FILE --report run.html               a self-contained HTML report with charts
  factorysim compare A.toml B.toml --report ab.html   two scenarios side by side, same seed
  factorysim challenges                                the built-in challenges, easy to hard
  factorysim play --challenge layout-101              play one
  factorysim play --replay run.jsonl                  watch a recorded run, with a time slider
  factorysim validate FILE                            check a file, list every problem
  factorysim calibrate                                the model against published training runs
  factorysim schema > factorysim.schema.json          JSON Schema for editors

Scenario keys are documented in README.md and in `factorysim schema`.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default exit code is 2 too; keep the message short
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _scenario_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    if required:
        p.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    else:
        p.add_argument(
            "scenario", metavar="SCENARIO", nargs="?", help="scenario file (TOML); default: the built-in starter"
        )
    p.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a scenario key, validated like the file (repeatable): --set parallelism.dp=64",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="factorysim",
        description="A sandbox for AI-training clusters: build a cluster, give it a training job, break it, "
        "and watch production = generality × chip × node × cluster × stability.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"factorysim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "play",
        help="open the sandbox (the default command)",
        description="Open the terminal sandbox on a scenario: the cluster on a canvas you can "
        "zoom, drag and link, the factory's output live, faults on demand. Press ? inside for keys.",
    )
    _scenario_args(p)
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default: the scenario's run.seed)")
    p.add_argument(
        "--speed", metavar="TIME", default="1h", help='sim time per real second to start with (default "1h")'
    )
    p.add_argument("--paused", action="store_true", help="start paused")
    p.add_argument("--challenge", metavar="NAME", help="play a built-in challenge (see `factorysim challenges`)")
    p.add_argument("--replay", metavar="LOG", help="watch a recorded run (factorysim run --record) with a time slider")

    p = sub.add_parser(
        "estimate",
        help="step time, MFU and the factors of one training step",
        description="Estimate one training step: step time and where it goes, tokens/s, MFU (model "
        "FLOPs) and HFU (with recompute) against dense BF16 peak, memory per chip on the worst pipeline "
        "stage, and the factors as a waterfall from peak to delivered. A job that does not fit in memory "
        "is still estimated (as if memory were unlimited) and reported as not fitting, with what would "
        "make it fit; `run` and the sandbox refuse to start it.",
    )
    _scenario_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 when the job does not fit in its chips' memory (it is estimated and reported either way)",
    )

    p = sub.add_parser("validate", help="check a scenario file and list every problem")
    _scenario_args(p, required=True)

    sub.add_parser("schema", help="print the JSON Schema of scenario files")

    p = sub.add_parser(
        "calibrate",
        help="compare the step model with published training runs",
        description="Two tables kept apart: the runs the model's fitted constants were fitted to (calibration), "
        "and runs never used for fitting (validation), each with source, published figure, model figure and "
        "error, and the mean and largest error per table; then runs shown for reference only. Exit 1 when a "
        "table misses its target.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser(
        "run",
        help="run a scenario through time: faults, recovery, stability, ETTR",
        description="Simulate the scenario over sim time with faults drawn from the catalog's rates "
        "(override them in [reliability.rates]), the recovery policy, checkpoints and spares; print "
        "ETTR, stability, interruptions by cause and lost chip-hours.",
    )
    _scenario_args(p)
    p.add_argument(
        "--duration", metavar="TIME", help='sim time to run, e.g. "30d" (default: the scenario\'s run.duration)'
    )
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default: the scenario's run.seed)")
    p.add_argument(
        "--seeds", type=int, metavar="K", default=1, help="run K seeds (N, N+1, ...) and report means and spreads"
    )
    p.add_argument("--record", metavar="FILE", help="write the event log (JSON lines) for `factorysim replay`")
    p.add_argument(
        "--challenge", metavar="NAME", help="run a built-in challenge (with your --set moves) and say if it is won"
    )
    p.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report with charts")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser(
        "compare",
        help="two scenarios side by side: step physics and a run on the same seed",
        description="Estimate and run two scenarios on the same seed and show them side by side "
        "(step time, MFU, the five factors, ETTR, tokens, interruptions, lost chip-hours).",
    )
    p.add_argument("first", metavar="A", help="scenario file")
    p.add_argument("second", metavar="B", help="scenario file")
    p.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a key in both scenarios (repeatable)",
    )
    p.add_argument("--duration", metavar="TIME", help="sim time to run each (default: A's run.duration)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed for both (default: A's run.seed)")
    p.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report with charts")
    p.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser(
        "challenges",
        help="list the built-in challenges",
        description="Challenges are scenarios with an objective and the keys you may change. "
        "Play one with `factorysim play --challenge NAME`; check a setup headless with "
        "`factorysim run --challenge NAME --set key=value`.",
    )

    p = sub.add_parser(
        "replay",
        help="re-simulate a recorded run and check it is identical",
        description="Re-run a recorded event log from its header (scenario, seed) and injected "
        "faults, and compare every event and the final fingerprint.",
    )
    p.add_argument("log", metavar="LOG", help="event log written by `factorysim run --record`")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("catalog", help="list the chips, links, fabrics and models scenarios may name")
    p.add_argument("--json", action="store_true", help="print JSON (every figure with its source)")
    return parser


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _scenario_or_challenge(args: argparse.Namespace):
    """The scenario named by SCENARIO or by --challenge NAME, with --set overrides."""
    from . import check_scenario, load_scenario
    from .challenge import budget_problems, load_challenge
    from .scenario import Problem, ScenarioError, apply_overrides, scenario_data, validate_scenario

    name = getattr(args, "challenge", None)
    if not name:
        return load_scenario(args.scenario, args.overrides)
    if args.scenario:
        raise ScenarioError([Problem("--challenge", "give either a scenario file or --challenge NAME, not both")])
    base = load_challenge(name)
    if not args.overrides:
        return base
    refusals = [p for o in args.overrides if (p := _refusal(base, o.split("=", 1)[0].strip()))]
    if refusals:
        raise ScenarioError(refusals, f"challenge {name}")
    scenario = validate_scenario(apply_overrides(scenario_data(base), args.overrides), f"challenge {name}")
    problems = check_scenario(scenario) + budget_problems(scenario.challenge, scenario)
    if problems:
        raise ScenarioError(problems, f"challenge {name}")
    return scenario


def _refusal(scenario, path: str):
    from .challenge import edit_refusal
    from .scenario import Problem

    reason = edit_refusal(scenario.challenge, path)
    return Problem(path, reason) if reason else None


def cmd_play(args: argparse.Namespace) -> int:
    from .engine import SimClock
    from .sandbox import Sandbox
    from .scenario import Problem, ScenarioError, parse_duration

    sandbox = None
    if args.replay:
        if args.scenario or args.challenge or args.overrides:
            raise ScenarioError(
                [Problem("--replay", "a recording brings its own scenario: no SCENARIO, --set or --challenge")]
            )
        sandbox = Sandbox.from_log(args.replay)
        scenario = sandbox.scenario
    else:
        scenario = _scenario_or_challenge(args)
    try:
        speed = parse_duration(args.speed)
    except ValueError as exc:
        raise ScenarioError([Problem("--speed", str(exc))]) from None
    if speed <= 0:
        raise ScenarioError([Problem("--speed", "must be positive")])
    from .tui import FactorySimApp

    clock = SimClock(speed=speed, paused=args.paused, frame_interval=1 / 12)
    app = FactorySimApp(
        scenario, args.scenario if not args.challenge else None, clock=clock, seed=args.seed, sandbox=sandbox
    )
    app.run()
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from . import estimate, load_scenario
    from .console import print_estimate

    scenario = load_scenario(args.scenario, args.overrides, memory=False)
    result = estimate(scenario)
    if args.json:
        print(json.dumps({"scenario": scenario.name, **result.as_dict()}, indent=2))
    else:
        print_estimate(_console(), scenario, result)
    if args.strict and not result.fits:
        from .perf import memory_problems

        return _fail(str(memory_problems(scenario, result.layout)[0]))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from . import estimate, load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    step = estimate(scenario)
    print(
        f"ok: {args.scenario}: {scenario.name}, {step.chips:,} chips in the job, "
        f"{step.memory.total / 1e9:.1f} of {scenario.cluster.chip_spec.memory_gb:g} GB per chip"
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .scenario import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .console import print_calibration
    from .perf.calibration import TABLES, run_calibration, summarize

    results = run_calibration()
    summaries = {table: summarize(results, table) for table in TABLES}
    if args.json:
        rows = [
            {
                "case": r.case.name,
                "table": r.case.table,
                "measured": r.case.measured,
                "modelled": r.modelled,
                "error": r.error,
                "fits": r.fits,
                "unit": r.case.unit,
                "convention": r.case.convention,
                "attention_flops": r.case.scenario.workload.attention_flops,
                "source": r.case.source,
                "assumed": r.case.assumed,
            }
            for r in results
        ]
        tables = {
            t: {"rows": s.rows, "mean_abs_error": s.mean_abs_error, "max_abs_error": s.max_abs_error,
                "refused": s.refused, "ok": s.ok}
            for t, s in summaries.items()
        }  # fmt: skip
        print(json.dumps({"tables": tables, "rows": rows}, indent=2))
    else:
        print_calibration(_console(), results, summaries)
    return 0 if all(s.ok for s in summaries.values()) else 1


def _progress(label: str):
    """A progress bar on stderr while a run lasts (nothing at all when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from .console import print_run_summary
    from .engine import Simulation, aggregate, run_seeds
    from .scenario import Problem, ScenarioError, parse_duration

    scenario = _scenario_or_challenge(args)
    try:
        default = scenario.challenge.within if args.challenge else scenario.run.duration
        duration = parse_duration(args.duration) if args.duration else default
    except ValueError as exc:
        raise ScenarioError([Problem("--duration", str(exc))]) from None
    if duration <= 0:
        raise ScenarioError([Problem("--duration", "must be positive")])
    if args.seeds < 1:
        raise ScenarioError([Problem("--seeds", "must be at least 1")])
    if args.seeds > 1 and (args.record or args.report):
        raise ScenarioError([Problem("--record" if args.record else "--report", "is for one run; drop --seeds")])
    seed = scenario.run.seed if args.seed is None else args.seed
    if args.seeds > 1:
        seeds = list(range(seed, seed + args.seeds))
        with _progress(f"{len(seeds)} seeds") as bar:
            task = bar.add_task("runs", total=len(seeds))
            summaries = run_seeds(scenario, seeds, duration, progress=lambda n: bar.advance(task, n))
        summary = aggregate(summaries)
        base = Simulation(scenario, seed=seed, metrics=False, fingerprint=False).base
    else:
        sim = Simulation(scenario, seed=seed, record=bool(args.record), metrics=bool(args.report))
        steps = 200
        with _progress("simulating") as bar:
            task = bar.add_task("sim", total=steps)
            for i in range(1, steps + 1):
                sim.run_until(duration * i / steps)
                bar.advance(task)
        summary = sim.summary().as_dict()
        base = sim.base
        if args.record:
            sim.write_log(args.record)
        if args.report:
            from .report import RunResult, run_report

            _write_text(args.report, run_report(RunResult.of(sim)))
    verdict = None
    if args.challenge and args.seeds == 1:
        from .challenge import status

        verdict = status(scenario.challenge, sim)
        summary["challenge"] = {
            "state": verdict.state,
            "score": verdict.score,
            "detail": verdict.detail,
            "reason": verdict.reason,
        }
    if args.json:
        print(json.dumps({"scenario": scenario.name, **summary}, indent=2))
    else:
        print_run_summary(_console(), scenario, summary, base)
        if args.record:
            print(f"\nrecorded {args.record}; check it with: factorysim replay {args.record}")
        if args.report:
            print(f"\nreport written to {args.report}")
        if verdict is not None:
            print(
                f"\nchallenge {args.challenge}: {verdict.state.upper()} (score {verdict.score}): "
                f"{verdict.reason or verdict.detail}"
            )
    return 0


def _write_text(path: str, text: str) -> None:
    from .scenario import Problem, ScenarioError, write_atomically

    try:
        write_atomically(path, text)
    except OSError as exc:
        raise ScenarioError([Problem("--report", f"cannot write {path}: {exc.strerror or exc}")]) from None


def cmd_compare(args: argparse.Namespace) -> int:
    from . import load_scenario
    from .console import print_rows
    from .engine import Simulation
    from .report import RunResult, compare_report, compare_rows
    from .scenario import Problem, ScenarioError, parse_duration

    a = load_scenario(args.first, args.overrides)
    b = load_scenario(args.second, args.overrides)
    try:
        duration = parse_duration(args.duration) if args.duration else a.run.duration
    except ValueError as exc:
        raise ScenarioError([Problem("--duration", str(exc))]) from None
    seed = a.run.seed if args.seed is None else args.seed
    results = []
    with _progress("simulating both") as bar:
        task = bar.add_task("sim", total=2)
        for scenario in (a, b):
            sim = Simulation(scenario, seed=seed)
            sim.run_until(duration)
            results.append(RunResult.of(sim))
            bar.advance(task)
    ra, rb = results
    rows = compare_rows(ra, rb)
    if args.json:
        print(
            json.dumps(
                {
                    "a": ra.scenario.name,
                    "b": rb.scenario.name,
                    "seed": seed,
                    "duration_s": duration,
                    "rows": [dict(zip(("what", "a", "b", "change"), r, strict=True)) for r in rows],
                    "summaries": {"a": ra.summary, "b": rb.summary},
                },
                indent=2,
            )
        )
    else:
        print_rows(_console(), f"{a.name} vs {b.name} (seed {seed})", ["", a.name, b.name, "change"], rows)
    if args.report:
        _write_text(args.report, compare_report(ra, rb))
        if not args.json:
            print(f"\nreport written to {args.report}")
    return 0


def cmd_challenges(args: argparse.Namespace) -> int:
    from .challenge import list_challenges
    from .console import print_rows

    console = _console()
    rows = [
        (name, s.challenge.level, s.challenge.title, f"{s.cluster.total_chips:,}", s.challenge.goal)
        for name, s in list_challenges()
    ]
    print_rows(
        console, "Challenges (factorysim play --challenge NAME)", ["name", "level", "title", "chips", "goal"], rows
    )
    console.print()
    for name, s in list_challenges():
        console.print(f"[b]{name}[/b]: {s.challenge.brief}")
        console.print(f"  you may change: {', '.join(s.challenge.may_change)}", style="dim")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .engine import replay

    result = replay(args.log)
    if args.json:
        print(
            json.dumps(
                {
                    "identical": result.identical,
                    "events": result.events,
                    "fingerprint": result.fingerprint,
                    "recorded_fingerprint": result.recorded_fingerprint,
                    "divergence": result.divergence,
                },
                indent=2,
            )
        )
    elif result.identical:
        print(f"identical: {result.events} events replayed, fingerprint {result.fingerprint}")
    else:
        print(f"DIFFERENT: {result.divergence or 'the fingerprints differ'}", file=sys.stderr)
        print(
            f"  recorded fingerprint {result.recorded_fingerprint}\n  replayed fingerprint {result.fingerprint}",
            file=sys.stderr,
        )
    return 0 if result.identical else 1


def cmd_catalog(args: argparse.Namespace) -> int:
    from .console import print_rows
    from .scenario import catalog, human_duration

    cat = catalog()
    if args.json:
        print(json.dumps(cat.model_dump(mode="json"), indent=2))
        return 0
    console = _console()
    print_rows(
        console,
        "Chips",
        ["name", "BF16 TFLOP/s", "FP8 TFLOP/s", "memory GB", "TB/s", "scale-up"],
        [
            (
                n,
                f"{c.bf16_peak_flops / 1e12:g}" + ("*" if c.bf16_tflops is None else ""),
                f"{c.fp8_tflops:g}" if c.fp8_tflops else "-",
                f"{c.memory_gb:g}",
                f"{c.hbm_tb_s:g}",
                c.scale_up or "-",
            )
            for n, c in cat.chips.items()
        ],
    )
    console.print("  * derived, see `factorysim catalog --json` for sources and assumptions\n")
    print_rows(
        console,
        "Scale-up links",
        ["name", "GB/s per direction", "domain"],
        [(n, f"{x.gb_s_per_dir:g}", x.domain) for n, x in cat.links.items()],
    )
    console.print()
    print_rows(
        console,
        "Fabrics",
        ["name", "Gb/s per port", "switch radix"],
        [(n, f"{x.port_gbps:g}", x.switch_radix) for n, x in cat.fabrics.items()],
    )
    console.print()
    print_rows(
        console,
        "Models",
        ["name", "params (B)", "layers", "hidden", "experts"],
        [(n, f"{x.total_params() / 1e9:.1f}", x.layers, x.hidden, x.experts) for n, x in cat.models.items()],
    )
    console.print()
    print_rows(
        console,
        "Fault classes (override with [reliability.rates] and [reliability.repair])",
        ["name", "per", "kind", "rate per unit-hour", "back after", "source"],
        [
            (
                n,
                f.unit,
                f.kind,
                f"{f.rate:.3g}",
                human_duration(f.repair) if f.repair else "-",
                f.source[:48] + ("…" if len(f.source) > 48 else ""),
            )
            for n, f in cat.fault_classes.items()
        ],
    )
    return 0


COMMANDS = {
    "play": cmd_play,
    "estimate": cmd_estimate,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "calibrate": cmd_calibrate,
    "catalog": cmd_catalog,
    "run": cmd_run,
    "challenges": cmd_challenges,
    "compare": cmd_compare,
    "replay": cmd_replay,
}


def main(argv: Sequence[str] | None = None) -> int:
    from .scenario import ScenarioError

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["play", *argv]  # `factorysim`, `factorysim FILE.toml`, `factorysim --paused` open the sandbox
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ScenarioError as exc:
        return _fail(exc.render())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
