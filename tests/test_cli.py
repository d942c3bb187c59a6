"""The command line as a user meets it: output, JSON, exit codes, no tracebacks for user errors."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tomllib

import pytest

from factorysim import Scenario, estimate, load_scenario
from factorysim.cli import main
from factorysim.labels import si

from .conftest import SCENARIOS


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factorysim", *args], capture_output=True, text=True, timeout=120)


def test_estimate_json_is_the_step_and_its_figures_agree(capsys):
    path = SCENARIOS / "llama3-70b-1k-h100.toml"
    assert main(["estimate", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    step = estimate(load_scenario(path))
    assert out["step_time_s"] == step.step_time_s and out["factors"] == step.factors.as_dict()
    # the figures hold together: tokens/s from the batch, MFU from the factors and the peak, parts sum up
    assert out["tokens_per_s"] == pytest.approx(512 * 8192 / out["step_time_s"], rel=1e-12)  # the file's batch
    assert out["mfu"] == pytest.approx(math.prod(out["factors"].values()), rel=1e-12)
    assert out["delivered_pflops"] == pytest.approx(out["peak_pflops"] * out["mfu"], rel=1e-12)
    assert out["peak_pflops"] == pytest.approx(out["chips"] * 989e12 / 1e15)  # 1,024 H100 at 989 TFLOP/s
    assert out["tflops_per_chip"] == pytest.approx(out["mfu"] * 989, rel=1e-12)
    assert sum(out["breakdown"].values()) == pytest.approx(out["step_time_s"], rel=1e-12)
    assert sum(v for k, v in out["memory_gb"].items() if k != "total") == pytest.approx(out["memory_gb_per_chip"])
    layout = out["layout"]
    assert layout["tp"] * layout["pp"] * layout["dp"] * layout["cp"] == out["chips"] == 1024
    assert out["factors"]["stability"] == 1.0 and 0.3 < out["mfu"] < 0.5


TOO_BIG = ["--set", "workload.model=llama3-70b", "--set", "parallelism.tp=1", "--set", "parallelism.dp=auto"]


def test_a_job_that_does_not_fit_is_estimated_with_what_would_fit(capsys):
    assert main(["estimate", "--json", *TOO_BIG]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] is False and out["step_time_s"] > 0
    assert out["memory_over_gb"] == pytest.approx(out["memory_gb_per_chip"] - 80)
    assert out["fit_hints"][-1].startswith("more tp or pp")
    assert main(["estimate", *TOO_BIG]) == 0
    text = capsys.readouterr().out
    assert "does not fit" in text and "would fit with" in text and "MFU" in text


def test_strict_estimates_and_runs_refuse_a_job_that_does_not_fit(capsys):
    assert main(["estimate", "--strict", *TOO_BIG]) == 2
    captured = capsys.readouterr()
    assert "MFU" in captured.out and "cluster.chip: out of memory" in captured.err
    assert main(["run", "--duration", "1h", *TOO_BIG]) == 2
    assert "out of memory" in capsys.readouterr().err
    assert main(["estimate", "--strict"]) == 0


def test_set_overrides_reach_the_estimate(capsys):
    main(["estimate", "--json"])
    base = json.loads(capsys.readouterr().out)
    main(["estimate", "--json", "--set", "workload.precision=fp8"])
    fp8 = json.loads(capsys.readouterr().out)
    assert fp8["tokens_per_s"] > base["tokens_per_s"] * 1.1


def test_estimate_prints_the_waterfall_from_peak_to_delivered(capsys):
    assert main(["estimate"]) == 0
    out = capsys.readouterr().out
    step = estimate(load_scenario())
    f = step.factors
    running, rows = step.peak_flops, []
    for name in ("generality", "chip", "node", "cluster", "stability"):
        running *= getattr(f, name)
        rows.append(rf"× {name}\s+{getattr(f, name):.3f}\s+{re.escape(si(running, 'FLOP/s'))}")
    expected = [rf"peak \(dense BF16\)\s+{re.escape(si(step.peak_flops, 'FLOP/s'))}\s+\S+\s+64 chips", *rows,
                rf"= delivered\s+{f.product:.3f}\s+{re.escape(si(step.delivered_flops, 'FLOP/s'))}"]  # fmt: skip
    for pattern in expected:
        assert re.search(pattern, out), pattern
    assert f"MFU {step.mfu * 100:.1f} % (model FLOPs)" in out


def test_bad_input_exits_2_with_a_message_and_no_traceback():
    result = run("estimate", "--set", "parallelism.tp=3", "--set", "workload.precision=fp16")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert 'workload.precision: got "fp16"' in result.stderr


def test_validate_reports_ok_and_problems(tmp_path, capsys):
    assert main(["validate", str(SCENARIOS / "h100-100k.toml")]) == 0
    assert "ok:" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[cluster]\nchip = "H900"\n')
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert 'cluster.chip: unknown chip "H900"' in err and str(bad) in err


def test_schema_describes_what_the_models_accept(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    defs = schema["$defs"]
    assert schema["title"] == "factorysim scenario" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(Scenario.model_fields)
    nodes = defs["ClusterConfig"]["properties"]["nodes"]
    assert (nodes["exclusiveMinimum"], nodes["maximum"]) == (0, 1_000_000)
    duration = re.compile(defs["RunConfig"]["properties"]["duration"]["pattern"])
    assert duration.match("30d") and duration.match("1h30m") and not duration.match("30 days")
    assert defs["WorkloadConfig"]["properties"]["precision"]["enum"] == ["bf16", "fp8"]
    # every key of every shipped scenario is one the schema names
    for path in SCENARIOS.glob("*.toml"):
        data = tomllib.loads(path.read_text())
        assert set(data) <= set(schema["properties"]), path.name
        for section in ("cluster", "workload", "parallelism", "reliability", "run"):
            ref = schema["properties"][section]["$ref"].rsplit("/", 1)[-1]
            assert set(data.get(section, {})) <= set(defs[ref]["properties"]), (path.name, section)


def test_calibrate_shows_the_calibration_and_validation_tables_with_mean_and_largest_error(capsys):
    assert main(["calibrate"]) == 0  # both tables meet their targets (test_perf holds each)
    out = capsys.readouterr().out
    cal, val = out.index("Calibration: runs the fitted constants"), out.index("Validation: runs never used")
    assert cal < out.index("megatron-1t") < val < out.index("bridge-llama3-405b-1024")
    assert out.count("mean |error|") == 2 and out.count("— met") == 2 and "NOT met" not in out


def test_calibrate_exits_1_and_says_not_met_when_a_table_misses_its_target(capsys, monkeypatch):
    monkeypatch.setattr("factorysim.perf.calibration.VALIDATION_MAX", 0.01)  # no run is that close
    assert main(["calibrate"]) == 1
    assert capsys.readouterr().out.count("— NOT met") == 1


def test_calibrate_json_keeps_the_tables_apart(capsys):
    assert main(["calibrate", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["tables"]) == {"calibration", "validation"}
    assert data["tables"]["validation"]["refused"] == 0
    assert all(row["source"] for row in data["rows"])


def test_help_teaches_with_examples():
    result = run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "--set" in result.stdout


@pytest.mark.parametrize("args", [["estimate", "--bogus"], ["nonsense"]])
def test_argument_errors_exit_2(args):
    assert run(*args).returncode == 2


def test_play_with_a_bad_file_shows_the_clear_errors_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[parallelism]\ntp = 3\n[workload]\nprecision = "fp4"\n')
    result = run("play", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert 'workload.precision: got "fp4"' in result.stderr and str(bad) in result.stderr
    assert run(str(tmp_path / "missing.toml")).returncode == 2  # `factorysim FILE` opens the sandbox too


def test_play_help_is_the_default_command_help():
    result = run("play", "--help")
    assert result.returncode == 0 and "--speed" in result.stdout and "--paused" in result.stdout


@pytest.mark.parametrize(
    ("value", "unit", "digits", "shown"),
    [
        (1.234e15, "FLOP/s", 3, "1.23 PFLOP/s"),
        (700.0, "W", 2, "700 W"),  # more whole digits than significant ones: never 7e+02
        (787_173.0, "W", 2, "790 kW"),
        (999_700.0, "", 3, "1 M"),  # rounding up takes the next prefix, never 1e+03 k
        (0.984, "", 3, "0.984"),
        (-1_500.0, "W", 2, "-1.5 kW"),
        (0.0, "W", 2, "0 W"),
    ],
)
def test_si_prefixes_keep_the_digits_asked_for_and_never_turn_scientific(value, unit, digits, shown):
    assert si(value, unit, digits) == shown


def test_a_mistyped_command_is_named_with_the_nearest_one_and_exit_2(capsys):
    assert main(["sweeep", "x.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: "sweeep" is not a command nor a scenario file; did you mean "sweep"?')
    assert "search, sweep" in err and len(err.strip().splitlines()) == 1


def test_an_argument_error_is_one_line_that_points_at_the_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["search", "--top", "x", "a.toml"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.strip() == (
        "factorysim search: error: argument --top: invalid int value: 'x' (see factorysim search --help)"
    )
