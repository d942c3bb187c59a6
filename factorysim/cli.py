"""Command-line entry points. Thin: parse arguments, call the library, print.

Exit codes: 0 success, 1 a check failed (calibrate), 2 bad input (scenario, arguments, files).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

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
  factorysim serve                                    the sandbox as a web page on http://127.0.0.1:8000
  factorysim validate FILE                            check a file, list every problem
  factorysim calibrate                                the model against published training runs
  factorysim schema > factorysim.schema.json          JSON Schema for editors
  factorysim search scenarios/llama3-70b-1k-h100.toml  every layout of the job, the best first
  factorysim search FILE --vary cluster.chip --objective time_to_target --write best.toml
  factorysim sweep FILE --vary parallelism.pp=4,8,16 --vary workload.precision=bf16,fp8 \
      --set parallelism.dp=auto --seeds 4 --run 30d

Scenario keys are documented in README.md and in `factorysim schema`.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, as every other input error; exit 2 as argparse's own
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
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


def _safety_args(p: argparse.ArgumentParser, outputs: bool = True) -> None:
    if outputs:
        p.add_argument(
            "--force",
            action="store_true",
            help="overwrite files that exist (otherwise asked on a terminal, refused elsewhere)",
        )
    p.add_argument(
        "--yes",
        action="store_true",
        help="run even past the work budget (about 1,000,000 fault events, estimated before the run starts)",
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
    p.add_argument(
        "--tour",
        action="store_true",
        help="show the walkthrough (pause, select, fault, fix); it shows by itself the first time",
    )

    p = sub.add_parser(
        "serve",
        help="serve the sandbox as a web page (one sandbox per browser tab)",
        description="Serve the sandbox in a web browser: every tab that opens the page gets its own "
        "sandbox process, exactly as `factorysim play` would run it in a terminal. By default the "
        "server listens on 127.0.0.1, so only this machine can open it. --host 0.0.0.0 (or an "
        "address of this machine) exposes it to everyone who can reach the port: there is no login, "
        "and the sandbox's open, save and write-log dialogs read and write files with your "
        "permissions. Expose it only on a network you trust, or behind a proxy that authenticates.",
    )
    _scenario_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default: the scenario's run.seed)")
    p.add_argument("--speed", metavar="TIME", default="1h", help='sim time per real second (default "1h")')
    p.add_argument("--paused", action="store_true", help="start paused")
    p.add_argument("--challenge", metavar="NAME", help="serve a built-in challenge")

    p = sub.add_parser(
        "estimate",
        help="step time, MFU, the factors, power and cost of one training step",
        description="Estimate one training step: step time and where it goes, tokens/s, MFU (model "
        "FLOPs) and HFU (with recompute) against dense BF16 peak, memory per chip on the worst pipeline "
        "stage, and the factors as a waterfall from peak to delivered; then power and cost at the step's "
        "duty cycle: watts per chip and for the cluster, the peak against [facility] power_mw, energy per "
        "step, tokens per kWh, joules per model FLOP, cost per hour and per million tokens, emissions, and "
        "what workload.target_tokens costs. A job that does not fit in memory (estimated as if memory were "
        "unlimited) or a cluster whose peak is above the facility's limit is still estimated and reported "
        "as such, with what would fix it; `run` and the sandbox refuse to start it. A scenario that gives no "
        "parallel layout (none of parallelism.tp, pp, cp, dp) gets the smallest tp (up to a server's chips) "
        "with which its model fits without a pipeline, else a server-wide tp and the fewest pp stages that "
        "fit, else (when workload.recompute is not given) the same with full recompute; dp fills the cluster.",
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
        "error, and the mean and largest error per table. Exit 1 when a "
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
    _safety_args(p)

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
    _safety_args(p)

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
        description="Check a recorded event log's hash chain (a changed line is reported as ALTERED, exit 1, "
        "before anything is re-simulated), then re-run it from its header (scenario, seed) and injected faults "
        "and compare every event and the closing line. Exit 0 identical, 1 altered or different, 2 unreadable.",
    )
    p.add_argument("log", metavar="LOG", help="event log written by `factorysim run --record`")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _safety_args(p, outputs=False)

    p = sub.add_parser("catalog", help="list the chips, links, fabrics and models scenarios may name")
    p.add_argument("--json", action="store_true", help="print JSON (every figure with its source)")
    _explore_parsers(sub)
    return parser


def _where_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers", type=int, metavar="N", help="local worker processes (default: one per core); runs locally"
    )
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on a Dask distributed cluster (default: $FACTORYSIM_SCHEDULER when set and --workers is not)",
    )
    p.add_argument(
        "--worker-timeout",
        type=float,
        metavar="SECONDS",
        help="with --scheduler: stop (exit 2) when no worker connects, or every worker is gone, this long "
        "(default 60: explore.runner.WORKER_TIMEOUT)",
    )


def _explore_parsers(sub) -> None:
    from .explore.objectives import OBJECTIVES

    p = sub.add_parser(
        "search",
        help="every valid layout of the job on its cluster, ranked",
        description="Enumerate every valid layout of the scenario's job on its cluster (tp, cp, pp, dp, ep, "
        "interleave, micro_batch, sequence_parallel, zero, recompute), refuse what breaks the scale-up "
        "domain, divisibility or memory (counted by rule), estimate the rest, and rank them. Shows the top "
        "layouts with their factor waterfalls and why the best beats the scenario's own layout.",
        epilog="examples:\n"
        "  factorysim search scenarios/llama3-70b-1k-h100.toml\n"
        "  factorysim search FILE --fix parallelism.tp=8 --top 10\n"
        "  factorysim search FILE --vary cluster.chip                  compare every catalog chip\n"
        "  factorysim search FILE --vary cluster.chip=H100-SXM-80GB,B200 --vary workload.precision\n"
        "  factorysim search FILE --objective time_to_target           with faults, for the target tokens\n"
        "  factorysim search FILE --vary cluster.chip --objective cost_per_token\n"
        "  factorysim search FILE --write best.toml --report search.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _scenario_args(p, required=True)
    p.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default="tokens_per_s",
        help="rank by tokens/s (default), MFU, time to workload.target_tokens with the expected "
        "effective training time of each layout's node groups, or cost_per_token: electricity and amortised "
        "hardware per million tokens, fault-free (as estimate shows it)",
    )
    p.add_argument(
        "--vary",
        metavar="KEY[=A,B,...]",
        action="append",
        default=[],
        help="also search a held knob (cluster.chip, workload.precision, features.*) over its candidates, "
        "or any key over the values given (repeatable)",
    )
    p.add_argument(
        "--fix", metavar="KEY=VALUE", action="append", default=[], help="hold a knob at a value (repeatable)"
    )
    p.add_argument("--top", type=int, default=5, metavar="N", help="layouts to show (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--write", metavar="FILE.toml", help="write the scenario with the best layout")
    p.add_argument("--force", action="store_true", help="let --write and --report replace existing files")
    p.add_argument("--report", metavar="FILE.html",
                   help="write an HTML report with the frontier (kept exact: many more layouts are estimated, "
                        "so a search takes several times longer)")  # fmt: skip
    _where_args(p)

    p = sub.add_parser(
        "sweep",
        help="a scenario at every point of a grid of keys, into a Parquet or CSV file",
        description="Estimate the scenario at every point of a grid (and with --run, simulate it over K "
        "seeds); write one row per point and seed, plus each point's mean and spread, to a columnar file. "
        "A point the checks refuse is a row that says why. Results are keyed by a hash of the resolved "
        "scenario and seed: run the same command again to continue an interrupted sweep; a finished one "
        "costs nothing.",
        epilog="examples:\n"
        "  factorysim sweep FILE --vary parallelism.pp=4,8,16 --set parallelism.dp=auto\n"
        "  factorysim sweep FILE --vary reliability.checkpoint_interval=10m,30m,2h --seeds 8 --run 30d\n"
        "  factorysim sweep FILE --vary cluster.nodes=130,136 --vary cluster.spare_nodes=2,8 --zip\n"
        "      (the same 128 servers in the job, with 2 or 8 spares: nodes counts both)\n"
        "  factorysim sweep FILE --vary workload.precision=bf16,fp8 --output fp8.csv --report fp8.html\n"
        "columns: point, stat (estimate | run | mean | sd | refused), seed, the varied keys, problem, key,\n"
        "then the estimate (step_time_s, tokens_per_s, mfu, ...) and, with --run, the run (ettr, ...)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _scenario_args(p, required=True)
    p.add_argument(
        "--vary",
        metavar="KEY=A,B,...",
        action="append",
        default=[],
        required=True,
        help="a key and its values, TOML like --set (repeatable: the points are the cartesian product)",
    )
    p.add_argument("--zip", action="store_true", help="pair the --vary lists by position instead")
    p.add_argument("--run", metavar="TIME", help="simulate each point for this long, e.g. 30d (default: estimate)")
    p.add_argument("--seeds", type=int, metavar="K", help="with --run: seeds per point (default 1)")
    p.add_argument("--output", metavar="FILE", help="results file (default: SCENARIO-sweep.parquet here)")
    p.add_argument("--format", choices=["parquet", "csv"], help="results format (default: from --output's suffix)")
    p.add_argument("--force", action="store_true",
                   help="replace an --output that is not a factorysim sweep or holds results of other points, "
                        "or a --report file that is not a factorysim page")  # fmt: skip
    p.add_argument("--report", metavar="FILE.html", help="write an HTML report with a chart per varied key")
    p.add_argument("--json", action="store_true", help="print the points as JSON")
    _where_args(p)


def _console():
    from .console import terminal_console

    return terminal_console()


def _seed(args: argparse.Namespace, scenario) -> int:
    """--seed, or the scenario's run.seed; a ScenarioError when out of range (numpy takes 0 to 2**63 - 1 here)."""
    from .scenario import Problem, ScenarioError
    from .scenario.models import MAX_SEED

    if args.seed is None:
        return scenario.run.seed
    last = args.seed + getattr(args, "seeds", 1) - 1
    if not 0 <= args.seed <= MAX_SEED or last > MAX_SEED:
        raise ScenarioError([Problem("--seed", f"got {args.seed}; a seed is a whole number from 0 to 2**63 - 1")])
    return args.seed


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _scenario_or_challenge(args: argparse.Namespace):
    """The scenario named by SCENARIO or by --challenge NAME, with --set overrides."""
    from . import check_scenario, load_scenario
    from .challenge import budget_problems, edit_refusal, load_challenge
    from .scenario import Problem, ScenarioError, apply_overrides, scenario_data, validate_scenario

    name = getattr(args, "challenge", None)
    if not name:
        return load_scenario(args.scenario, args.overrides)
    if args.scenario:
        raise ScenarioError([Problem("--challenge", "give either a scenario file or --challenge NAME, not both")])
    base = load_challenge(name)
    if not args.overrides:
        return base
    refusals = [p for o in args.overrides if (p := edit_refusal(base.challenge, o.split("=", 1)[0].strip()))]
    if refusals:
        raise ScenarioError(refusals, f"challenge {name}")
    scenario = validate_scenario(apply_overrides(scenario_data(base), args.overrides), f"challenge {name}")
    problems = check_scenario(scenario) + budget_problems(scenario.challenge, scenario)
    if problems:
        raise ScenarioError(problems, f"challenge {name}")
    return scenario


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
    from .tui.tour import marker_path

    clock = SimClock(speed=speed, paused=args.paused, frame_interval=1 / 12)
    marker = marker_path()
    first_run = not (args.scenario or args.challenge or args.replay or args.overrides) and not marker.exists()
    app = FactorySimApp(
        scenario,
        args.scenario if not args.challenge else None,
        clock=clock,
        seed=None if args.seed is None else _seed(args, scenario),
        sandbox=sandbox,
        tour=args.tour or first_run,
        tour_marker=marker,
    )
    app.run()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The sandbox in a browser: textual-serve runs `factorysim play` with the same arguments per page."""
    import shlex

    from .scenario import Problem, ScenarioError, parse_duration

    _scenario_or_challenge(args)  # bad input is reported here, once, not in every browser tab
    try:
        if parse_duration(args.speed) <= 0:
            raise ValueError("must be positive")
    except ValueError as exc:
        raise ScenarioError([Problem("--speed", str(exc))]) from None
    if not 0 < args.port < 65536:
        raise ScenarioError([Problem("--port", f"must be between 1 and 65535, got {args.port}")])
    play = [sys.executable, "-m", "factorysim", "play", "--speed", args.speed]
    if args.scenario:
        from pathlib import Path

        play.append(str(Path(args.scenario).resolve()))  # the server may start pages from another folder
    for override in args.overrides:
        play += ["--set", override]
    if args.seed is not None:
        play += ["--seed", str(args.seed)]
    if args.paused:
        play.append("--paused")
    if args.challenge:
        play += ["--challenge", args.challenge]
    from textual_serve.server import Server

    title = f"factorysim {args.challenge or args.scenario or 'starter'}"
    Server(shlex.join(play), host=args.host, port=args.port, title=title).serve()
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from . import estimate, load_scenario
    from .console import print_estimate, print_power
    from .perf.power import PowerUnknown, step_power
    from .topology.edits import index_for

    scenario = load_scenario(args.scenario, args.overrides, memory=False)
    index = index_for(scenario.cluster, scenario.topology.edits)
    result = estimate(scenario, index)
    power, unknown = None, None
    try:
        power = step_power(scenario, result, index)
    except PowerUnknown as exc:
        unknown = str(exc)
    if args.json:
        power_json = power.as_dict(scenario.workload.target_tokens) if power else {"unknown": unknown}
        print(json.dumps({"scenario": scenario.name, **result.as_dict(), "power": power_json}, indent=2))
    else:
        console = _console()
        print_estimate(console, scenario, result)
        if not result.blocked:
            console.print()
            print_power(console, scenario, power, unknown)
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


def _interrupted(at: float, of: float) -> None:
    from .scenario.units import human_duration

    print(f"\ninterrupted at {human_duration(at)} of {human_duration(of)} of sim time: the figures above cover "
          "the time simulated", file=sys.stderr)  # fmt: skip


def cmd_run(args: argparse.Namespace) -> int:
    from .console import print_run_summary
    from .engine import Simulation, aggregate, run_seeds
    from .outputs import check_outputs, write_outputs
    from .progress import Interruptible, Progress, check_work
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
    seed = _seed(args, scenario)
    outputs = check_outputs([("--record", args.record), ("--report", args.report)], [args.scenario], args.force)
    check_work([(scenario, duration, args.seeds)], args.yes)
    stopped_at = None
    if args.seeds > 1:
        seeds = list(range(seed, seed + args.seeds))
        with Interruptible() as guard, Progress(f"{len(seeds)} seeds", len(seeds)) as bar:
            summaries = run_seeds(scenario, seeds, duration, progress=bar.advance, stop=lambda: guard.stopped)
        if guard.stopped:
            print(f"\ninterrupted after {len(summaries)} of {len(seeds)} runs", file=sys.stderr)
            if not summaries:
                return 130
        summary = aggregate(summaries)
        base = Simulation(scenario, seed=seed, metrics=False, fingerprint=False).base
    else:
        sim = Simulation(scenario, seed=seed, record=bool(args.record), metrics=bool(args.report))
        steps = 200
        with Interruptible() as guard, Progress("simulating", duration) as bar:
            for i in range(1, steps + 1):
                if guard.stopped:
                    stopped_at = sim.now
                    break
                sim.run_until(duration if i == steps else duration * i / steps)
                bar.update(sim.now)
        summary = sim.summary().as_dict()
        base = sim.base
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
        if verdict is not None:
            print(
                f"\nchallenge {args.challenge}: {verdict.state.upper()} (score {verdict.score}): "
                f"{verdict.reason or verdict.detail}"
            )
    if stopped_at is not None:
        _interrupted(stopped_at, duration)
    if outputs:  # after the summary: a file that cannot be written loses nothing already shown
        from .report import RunResult, run_report

        def record() -> str:
            assert sim.log is not None  # created with record=True
            return sim.log.text(sim.now, sim.summary().as_dict())

        texts = {"--record": record, "--report": lambda: run_report(RunResult.of(sim))}
        write_outputs([(o, texts[o.flag]) for o in outputs], [args.scenario])
        if not args.json:
            for o in outputs:
                if o.flag == "--record":
                    print(f"\nrecorded {o.path}; check it with: factorysim replay {o.path}")
                else:
                    print(f"\nreport written to {o.path}")
    return 130 if stopped_at is not None or (args.seeds > 1 and guard.stopped) else 0


def cmd_compare(args: argparse.Namespace) -> int:

    from . import load_scenario
    from .console import print_rows
    from .engine import Simulation
    from .outputs import check_outputs, write_outputs
    from .progress import Interruptible, Progress, check_work
    from .report import RunResult, compare_report, compare_rows
    from .scenario import Problem, ScenarioError, parse_duration

    a = load_scenario(args.first, args.overrides)
    b = load_scenario(args.second, args.overrides)
    try:
        duration = parse_duration(args.duration) if args.duration else a.run.duration
    except ValueError as exc:
        raise ScenarioError([Problem("--duration", str(exc))]) from None
    if duration <= 0:
        raise ScenarioError([Problem("--duration", "must be positive")])
    seed = _seed(args, a)
    outputs = check_outputs([("--report", args.report)], [args.first, args.second], args.force)
    check_work([(a, duration, 1), (b, duration, 1)], args.yes)
    sims = [Simulation(scenario, seed=seed) for scenario in (a, b)]
    steps, stopped_at = 200, None
    with Interruptible() as guard, Progress("simulating both", duration) as bar:
        for i in range(1, steps + 1):  # in step, so an interrupted comparison compares the same sim time
            if guard.stopped:
                stopped_at = sims[0].now
                break
            for sim in sims:
                sim.run_until(duration if i == steps else duration * i / steps)
            bar.update(sims[0].now)
    ra, rb = (RunResult.of(sim) for sim in sims)
    rows = compare_rows(ra, rb)
    if args.json:
        print(
            json.dumps(
                {
                    "a": ra.scenario.name,
                    "b": rb.scenario.name,
                    "seed": seed,
                    "duration_s": sims[0].now,
                    "rows": [dict(zip(("what", "a", "b", "change"), r, strict=True)) for r in rows],
                    "summaries": {"a": ra.summary, "b": rb.summary},
                },
                indent=2,
            )
        )
    else:  # names are plain text in the table, never markup
        title = f"{a.name} vs {b.name} (seed {seed})"
        print_rows(_console(), title, ["", a.name, b.name, "change"], rows)
    if stopped_at is not None:
        _interrupted(stopped_at, duration)
    if outputs:
        write_outputs([(outputs[0], lambda: compare_report(ra, rb))], [args.first, args.second])
        if not args.json:
            print(f"\nreport written to {outputs[0].path}")
    return 130 if stopped_at is not None else 0


def cmd_challenges(args: argparse.Namespace) -> int:
    from .challenge import challenge_of, list_challenges
    from .console import print_rows

    console = _console()
    found = [(name, s, challenge_of(s)) for name, s in list_challenges()]
    rows = [(name, ch.level, ch.title, f"{s.cluster.total_chips:,}", ch.goal) for name, s, ch in found]
    print_rows(
        console, "Challenges (factorysim play --challenge NAME)", ["name", "level", "title", "chips", "goal"], rows
    )
    console.print()
    for name, _, ch in found:
        console.print(f"[b]{name}[/b]: {ch.brief}")
        console.print(f"  you may change: {', '.join(ch.may_change)}", style="dim")
    return 0


class _Stopped(Exception):
    """Ctrl-C during work that has no partial result to show."""


def cmd_replay(args: argparse.Namespace) -> int:
    from .engine import ReplayResult, replay
    from .engine.log import LogAltered, read_recorded_run
    from .progress import Interruptible, Progress, check_work
    from .scenario import validate_scenario

    try:
        run = read_recorded_run(args.log)
    except LogAltered as exc:
        result = ReplayResult(0, "", "", str(exc.problems[0]), altered_at=exc.line)
    else:
        scenario = validate_scenario(run.header["scenario"], f"{args.log} (scenario in the header)")
        check_work([(scenario, float(run.closing["t"]), 1)], args.yes)
        with Interruptible() as guard, Progress("replaying", 1.0) as bar:

            def tick(share: float) -> None:
                bar.update(share)
                if guard.stopped:
                    raise _Stopped

            try:
                result = replay(args.log, progress=tick, run=run)
            except _Stopped:
                print("\ninterrupted: the replay stopped before the end of the log, so there is no verdict",
                      file=sys.stderr)  # fmt: skip
                return 130
    if args.json:
        print(
            json.dumps(
                {
                    "identical": result.identical,
                    "events": result.events,
                    "fingerprint": result.fingerprint,
                    "recorded_fingerprint": result.recorded_fingerprint,
                    "divergence": result.divergence,
                    "altered_at": result.altered_at,
                },
                indent=2,
            )
        )
    elif result.altered_at is not None:
        print(
            f"ALTERED: line {result.altered_at} does not match the log's hash chain: the log was changed after "
            "it was written; nothing was re-simulated",
            file=sys.stderr,
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
        ["name", "BF16 TFLOP/s", "FP8 TFLOP/s", "memory GB", "TB/s", "scale-up", "TDP W", "price $"],
        [
            (
                n,
                f"{c.bf16_peak_flops / 1e12:g}" + ("*" if c.bf16_tflops is None else ""),
                f"{c.fp8_tflops:g}" if c.fp8_tflops else "-",
                f"{c.memory_gb:g}",
                f"{c.hbm_tb_s:g}",
                c.scale_up or "-",
                (f"{c.tdp_w:g}" + ("*" if c.power_source.startswith("none") else "")) if c.tdp_w else "-",
                f"{c.price_usd:,.0f}" if c.price_usd else "-",
            )
            for n, c in cat.chips.items()
        ],
    )
    console.print(
        "  * derived or assumed, see `factorysim catalog --json` for sources and assumptions "
        "(power and prices: scenario/data/power.toml)\n"
    )
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
        ["name", "Gb/s per port", "switch radix", "switch W", "optics W/port", "NIC W", "switch $"],
        [
            (
                n,
                f"{x.port_gbps:g}",
                x.switch_radix,
                f"{x.switch_w:g}" if x.switch_w is not None else "-",
                f"{x.port_w:g}" if x.port_w is not None else "-",
                f"{x.nic_w:g}" if x.nic_w is not None else "-",
                f"{x.switch_usd:,.0f}" if x.switch_usd is not None else "-",
            )
            for n, x in cat.fabrics.items()
        ],
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


def _counting_progress(label: str):
    """A progress bar on stderr with done/total, rate and time left (nothing when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.1f}/s" if speed else "  –/s", style="progress.data.speed")

    console = Console(stderr=True)
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _runner(args: argparse.Namespace):
    from .explore.runner import default_workers, runner_for
    from .scenario import Problem, ScenarioError

    if args.workers is not None and args.workers < 1:
        raise ScenarioError([Problem("--workers", f"must be at least 1, got {args.workers}")])
    cores = default_workers()
    if args.workers is not None and args.workers > cores and not args.scheduler:
        # the work is all computation: more processes than cores only add memory (each holds a cluster index)
        print(f"note: --workers {args.workers} is more than this machine's {cores} cores; using {cores}",
              file=sys.stderr)  # fmt: skip
        args.workers = cores
    if args.worker_timeout is not None and not args.worker_timeout > 0:
        raise ScenarioError(
            [Problem("--worker-timeout", f"must be a positive number of seconds, got {args.worker_timeout:g}")]
        )
    return runner_for(args.workers, args.scheduler, args.worker_timeout)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a search or a sweep runs, SIGTERM (kill, timeout, a CI runner) stops it as Ctrl-C does: finished results
    kept and the worker processes stopped with it, where the signal's default would leave them running."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_search(args: argparse.Namespace) -> int:
    from . import load_scenario
    from .explore.search import Request, search, why_better
    from .outputs import check_outputs, write_outputs

    scenario = load_scenario(args.scenario, args.overrides)
    outputs = check_outputs([("--write", args.write), ("--report", args.report)], [args.scenario], args.force)
    request = Request(args.objective, tuple(args.vary), tuple(args.fix), args.top, frontier=bool(args.report))
    runner = _runner(args)
    try:
        with _counting_progress("placements") as bar:
            task = bar.add_task("search", total=None)
            result = search(
                scenario, request, runner, lambda done, total: bar.update(task, completed=done, total=total)
            )
    finally:
        runner.close()
    estimates = [result.estimate_of(r) for r in result.best]
    own = result.baseline
    why = why_better(result, estimates[0], _own_estimate(scenario)) if estimates and own else []
    if args.json:
        print(json.dumps(_search_json(result, estimates, why), indent=2))
    else:
        from .explore.tables import print_search

        print_search(_console(), result, estimates, why)
    texts = {}
    if result.best:  # nothing valid: nothing to write
        from .scenario import scenario_toml

        texts["--write"] = lambda: scenario_toml(result.scenario_for(result.best[0]))
    if args.report:
        from .explore.pages import search_report

        texts["--report"] = lambda: search_report(result, estimates, why)
    write_outputs([(o, texts[o.flag]) for o in outputs if o.flag in texts], [args.scenario])
    if not args.json:
        for o in outputs:
            if o.flag in texts:
                print(f"{'best layout' if o.flag == '--write' else 'report'} written to {o.path}")
    return 0


def _own_estimate(scenario):
    from . import estimate

    return estimate(scenario)


def _search_json(result, estimates, why) -> dict:
    from .explore.search import changes

    def row(r) -> dict:
        return {
            "objective": r.objective,
            "settings": result.settings(r) if r.variant >= 0 else dict(r.choice),
            "tokens_per_s": r.tokens_per_s,
            "mfu": r.mfu,
            "step_time_s": r.step_time_s,
            "memory_gb_per_chip": r.memory_gb,
            "chips": r.chips,
            "expected_goodput": r.goodput,
        }

    return {
        "scenario": result.scenario.name,
        "objective": result.objective.name,
        "better": result.objective.better,
        "turned": list(result.domain.turned),
        "counts": {
            "placements_valid": result.placements,
            "placements_refused": dict(result.placement_refused.most_common()),
            "layouts_tried": result.layouts_tried,
            "layouts_estimated": result.estimated,
            "layouts_not_estimated": result.pruned,  # out of reach of the top N (and of the frontier)
            "layouts_refused": dict(result.layout_refused.most_common()),
        },
        "baseline": row(result.baseline) if result.baseline else None,
        "top": [
            {"rank": i, **row(r), "changes": changes(result, r), "estimate": e.as_dict()}
            for i, (r, e) in enumerate(zip(result.best, estimates, strict=True), 1)
        ],
        "best_per_variant": [
            {"variant": dict(sets), "best": row(r) if r else None}
            for (sets, _), r in zip(result.variants, result.best_per_variant, strict=True)
        ],
        "why": why,
        "frontier": [row(r) for r in result.frontier],
    }


def cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import load_scenario
    from .explore.store import format_for
    from .explore.sweep import means, parse_axis, sweep
    from .outputs import check_outputs, is_factorysim_page, write_outputs
    from .scenario import Problem, ScenarioError, parse_duration

    axes = [parse_axis(v) for v in args.vary]
    both = sorted({a.key for a in axes} & {o.split("=", 1)[0].strip() for o in args.overrides})
    if both:  # the --set value would be checked alone, and then replaced at every point
        raise ScenarioError([Problem("--set", f"{', '.join(both)} is both set and varied; drop the --set")])
    scenario = load_scenario(args.scenario, args.overrides)
    duration = None
    if args.run:
        try:
            duration = parse_duration(args.run)
        except ValueError as exc:
            raise ScenarioError([Problem("--run", str(exc))]) from None
        if duration <= 0:
            raise ScenarioError([Problem("--run", "must be positive")])
    output = args.output or f"{Path(args.scenario).stem}-sweep.parquet"
    fmt = format_for(output, args.format)
    # the output may exist: a sweep resumes from it (the store refuses a file that is not a sweep, or one whose
    # results it would drop); the report is redrawn over a factorysim page, anything else only with --force
    mine = ["--output"] + (["--report"] if args.report and is_factorysim_page(args.report) else [])
    outputs = check_outputs([("--output", output), ("--report", args.report)], [args.scenario], args.force, mine)
    runner = _runner(args)
    try:
        with _counting_progress("runs" if duration else "points") as bar:
            task = bar.add_task("sweep", total=None)
            result = sweep(
                scenario, axes, output, zipped=args.zip, seeds=args.seeds, duration=duration, fmt=fmt,
                force=args.force, runner=runner,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted: finished results are kept; run the same command again to continue", file=sys.stderr)
        return 130
    finally:
        runner.close()
    if args.json:
        print(json.dumps({"output": output, "rows": len(result.rows), "computed": result.computed,
                          "reused": result.reused, "points": means(result)}, indent=2))  # fmt: skip
    else:
        from .explore.tables import print_sweep

        print_sweep(_console(), result)
    if args.report:
        from .explore.pages import sweep_report

        report = next(o for o in outputs if o.flag == "--report")
        write_outputs([(report, lambda: sweep_report(result, scenario.name))], [args.scenario])
        if not args.json:
            print(f"report written to {args.report}")
    return 0


COMMANDS = {
    "play": cmd_play,
    "serve": cmd_serve,
    "estimate": cmd_estimate,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "calibrate": cmd_calibrate,
    "catalog": cmd_catalog,
    "run": cmd_run,
    "challenges": cmd_challenges,
    "compare": cmd_compare,
    "replay": cmd_replay,
    "search": cmd_search,
    "sweep": cmd_sweep,
}


def _looks_like_a_command(word: str) -> bool:
    """A bare word that names no command and no file: a mistyped command, not a scenario to open."""
    import os
    import re

    return word not in COMMANDS and re.fullmatch(r"[a-z][a-z-]*", word) is not None and not os.path.exists(word)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and _looks_like_a_command(argv[0]):
        import difflib

        near = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        hint = f'did you mean "{near[0]}"? ' if near else ""
        return _fail(f'"{argv[0]}" is not a command nor a scenario file; {hint}commands: {", ".join(COMMANDS)}')
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["play", *argv]  # `factorysim`, `factorysim FILE.toml`, `factorysim --paused` open the sandbox
    args = parser.parse_args(argv)
    try:
        if args.command in ("search", "sweep"):  # the commands with worker processes
            with _sigterm_as_interrupt():
                return COMMANDS[args.command](args)
        return COMMANDS[args.command](args)
    except Exception as exc:  # a user error is one line per problem; anything else is a bug and keeps its traceback
        from .scenario.errors import ScenarioError  # imported here: `factorysim --help` needs no scenario code

        if isinstance(exc, ScenarioError):
            return _fail(exc.render())
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
