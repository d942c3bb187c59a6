"""Command-line entry points. Thin: parse arguments, call the library, print.

Exit codes: 0 success, 1 a check failed (calibrate), 2 bad input (scenario, arguments, files).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from . import __version__

EXAMPLES = """\
examples:
  factorysim estimate                                 the built-in 64-GPU starter scenario
  factorysim estimate scenarios/llama3-70b-1k-h100.toml
  factorysim estimate scenarios/h100-100k.toml --set workload.precision=fp8 --json
  factorysim estimate FILE --set parallelism.tp=4 --set parallelism.dp=auto
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
        p.add_argument("scenario", metavar="SCENARIO", nargs="?", help="scenario file (TOML); default: the built-in starter")
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

    p = sub.add_parser("estimate", help="step time, MFU and the factors of one training step",
                       description="Estimate one training step: step time and where it goes, tokens/s, MFU (model "
                       "FLOPs) and HFU (with recompute) against dense BF16 peak, memory per chip, and the factors "
                       "as a waterfall from peak to delivered.")  # fmt: skip
    _scenario_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    p = sub.add_parser("validate", help="check a scenario file and list every problem")
    _scenario_args(p, required=True)

    sub.add_parser("schema", help="print the JSON Schema of scenario files")

    p = sub.add_parser("calibrate", help="compare the step model with published training runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("catalog", help="list the chips, links, fabrics and models scenarios may name")
    p.add_argument("--json", action="store_true", help="print JSON (every figure with its source)")
    return parser


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_estimate(args: argparse.Namespace) -> int:
    from . import estimate, load_scenario
    from .console import print_estimate

    scenario = load_scenario(args.scenario, args.overrides)
    result = estimate(scenario)
    if args.json:
        print(json.dumps({"scenario": scenario.name, **result.as_dict()}, indent=2))
    else:
        print_estimate(_console(), scenario, result)
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
    from .console import print_rows
    from .perf.calibration import TOLERANCE, run_calibration

    results = run_calibration()
    if args.json:
        rows = [
            {"case": r.case.name, "measured": r.case.measured, "modelled": r.modelled, "error": r.error,
             "unit": r.case.unit, "convention": r.case.convention, "source": r.case.source, "assumed": r.case.assumed}
            for r in results
        ]  # fmt: skip
        print(json.dumps(rows, indent=2))
    else:
        console = _console()
        print_rows(
            console,
            "The step model against published training runs",
            ["case", "measured", "modelled", "error", "unit", "FLOPs counted"],
            [
                (r.case.name, f"{r.case.measured:g}", f"{r.modelled:.3g}", f"{r.error * 100:+.1f} %", r.case.unit,
                 "with recompute" if r.case.convention == "hardware" else "model only")
                for r in results
            ],  # fmt: skip
        )
        worst = max(abs(r.error) for r in results)
        verdict = "all within" if worst <= TOLERANCE else "NOT all within"
        console.print(f"\n{verdict} ±{TOLERANCE * 100:.0f} % (worst {worst * 100:.1f} %). Sources and assumptions: --json")
    return 0 if all(r.ok for r in results) else 1


def cmd_catalog(args: argparse.Namespace) -> int:
    from .console import print_rows
    from .scenario import catalog

    cat = catalog()
    if args.json:
        print(json.dumps(cat.model_dump(mode="json"), indent=2))
        return 0
    console = _console()
    print_rows(console, "Chips", ["name", "BF16 TFLOP/s", "FP8 TFLOP/s", "memory GB", "TB/s", "scale-up"],
               [(n, f"{c.bf16_peak_flops / 1e12:g}" + ("*" if c.bf16_tflops is None else ""),
                 f"{c.fp8_tflops:g}" if c.fp8_tflops else "-", f"{c.memory_gb:g}", f"{c.hbm_tb_s:g}", c.scale_up or "-")
                for n, c in cat.chips.items()])  # fmt: skip
    console.print("  * derived, see `factorysim catalog --json` for sources and assumptions\n")
    print_rows(console, "Scale-up links", ["name", "GB/s per direction", "domain"],
               [(n, f"{x.gb_s_per_dir:g}", x.domain) for n, x in cat.links.items()])  # fmt: skip
    console.print()
    print_rows(console, "Fabrics", ["name", "Gb/s per port", "switch radix"],
               [(n, f"{x.port_gbps:g}", x.switch_radix) for n, x in cat.fabrics.items()])  # fmt: skip
    console.print()
    print_rows(console, "Models", ["name", "params (B)", "layers", "hidden", "experts"],
               [(n, f"{x.total_params() / 1e9:.1f}", x.layers, x.hidden, x.experts) for n, x in cat.models.items()])  # fmt: skip
    return 0


COMMANDS = {
    "estimate": cmd_estimate,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "calibrate": cmd_calibrate,
    "catalog": cmd_catalog,
}


def main(argv: Sequence[str] | None = None) -> int:
    from .scenario import ScenarioError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["estimate", *(argv or [])])
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
