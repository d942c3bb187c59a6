"""The command line as a user meets it: output, JSON, exit codes, no tracebacks for user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from factorysim.cli import main

from .conftest import SCENARIOS


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factorysim", *args], capture_output=True, text=True, timeout=120)


def test_estimate_json_has_the_documented_keys(capsys):
    assert main(["estimate", str(SCENARIOS / "llama3-70b-1k-h100.toml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("step_time_s", "tokens_per_s", "mfu", "hfu", "tflops_per_chip", "memory_gb_per_chip"):
        assert isinstance(out[key], float), key
    assert set(out["factors"]) == {"generality", "chip", "node", "cluster", "stability"}
    assert {"compute_s", "tp_s", "pp_s", "dp_s", "ep_s", "cp_s", "bubble_s"} <= set(out["breakdown"])
    assert out["factors"]["stability"] == 1.0


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
    for word in (
        "peak (dense BF16)",
        "× generality",
        "× chip",
        "× node",
        "× cluster",
        "× stability",
        "= delivered",
        "MFU",
    ):
        assert word in out


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


def test_schema_prints_json_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "factorysim scenario"


def test_calibrate_shows_the_calibration_and_validation_tables_with_mean_and_largest_error(capsys):
    assert main(["calibrate"]) == 0
    out = capsys.readouterr().out
    cal, val = out.index("Calibration: runs the fitted constants"), out.index("Validation: runs never used")
    assert cal < out.index("megatron-1t") < val < out.index("bridge-llama3-405b-1024")
    assert out.count("mean |error|") == 3 and out.count("— met") == 2


def test_calibrate_json_keeps_the_tables_apart(capsys):
    assert main(["calibrate", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["tables"]) == {"calibration", "validation", "reference"}
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
