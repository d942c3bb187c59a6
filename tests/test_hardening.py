"""Hostile and careless input: every problem is one line naming the key, exit 2, no traceback, nothing changed.

Each test is a minimal reproducer of something that once crashed, hung or misled.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from factorysim.cli import main
from factorysim.scenario import ScenarioError, load_scenario_file
from factorysim.scenario.errors import Problem, show
from factorysim.scenario.files import MAX_NESTING, MAX_SCENARIO_BYTES, nesting_depth

from .conftest import ROOT

STARTER = ROOT / "factorysim" / "scenario" / "data" / "default.toml"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factorysim", *args], capture_output=True, text=True, timeout=timeout)


def problems_of(capsys) -> list[str]:
    """The problems printed on stderr: the lines under `error: SOURCE: N problems`, or the one problem of
    `error: [SOURCE: ]PROBLEM` (the source is a file path, never containing ": ")."""
    lines = capsys.readouterr().err.rstrip("\n").split("\n")
    if len(lines) > 1:
        return [line.removeprefix("  - ") for line in lines[1:]]
    line = lines[0].removeprefix("error: ")
    head, _, rest = line.partition(": ")
    return [rest if head.endswith(".toml") or head.startswith("/") else line]


def starter_with(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(STARTER.read_text() + "\n" + extra)
    return path


# ---------------------------------------------------------------- TOML values the scenario does not take


@pytest.mark.parametrize(
    "text,path,kind",
    [
        ('name = "x"\nwhen = 1979-05-27\n', "when", "a date"),
        ('name = "x"\n[run]\nduration = 1979-05-27T07:32:00Z\n', "run.duration", "a date-time"),
        ('name = "x"\n[[faults]]\nat = 07:32:00\ntarget = "n1"\n', "faults[0].at", "a time of day"),
    ],
    ids=["date", "date-time", "time"],
)
def test_toml_dates_and_times_are_refused_with_their_key_path(tmp_path, capsys, text, path, kind):
    f = tmp_path / "d.toml"
    f.write_text(text)
    assert main(["validate", str(f)]) == 2
    assert problems_of(capsys) == [f"{path}: got {kind}; factorysim takes no TOML dates or times "
                                   '(a sim time or duration is a string such as "2d" or "1h30m")']  # fmt: skip


def test_a_date_given_with_set_is_refused_too(capsys):
    assert main(["validate", str(STARTER), "--set", "run.duration=2024-01-01"]) == 2
    assert problems_of(capsys)[0].startswith("run.duration: got a date;")


def test_arrays_nested_500_deep_are_refused_before_parsing(tmp_path, capsys):
    f = tmp_path / "deep.toml"
    f.write_text('name = "x"\nfoo = ' + "[" * 500 + "]" * 500 + "\n")
    assert main(["validate", str(f)]) == 2
    assert problems_of(capsys) == [f"arrays or tables nest 500 deep; at most {MAX_NESTING} are read"]


@pytest.mark.parametrize(
    "text,depth",
    [
        ("a = [[1], [2]]", 2),
        ('a = "[[[["  # [[[', 0),
        ('a = "\\"[["', 0),
        ("a = '[\\'\nb = [[2]]", 2),
        ('a = """[\n"[\n"""\nb = {c = {d = [1]}}', 3),
        ("[[x.y]]\nz = 1", 2),
    ],
)
def test_nesting_is_counted_outside_strings_and_comments(text, depth):
    assert nesting_depth(text) == depth


def test_an_integer_of_5000_digits_is_refused(tmp_path, capsys):
    f = tmp_path / "big.toml"
    f.write_text('name = "x"\na = ' + "9" * 5000 + "\n")
    assert main(["validate", str(f)]) == 2
    assert problems_of(capsys) == ["an integer has more than 4,300 digits"]


# ---------------------------------------------------------------- numbers range-checked at the model


@pytest.mark.parametrize(
    "override,problem",
    [
        ("run.duration=" + "9" * 30, "run.duration: a duration must be at most 1000y, got " + "9" * 30),
        ('run.duration="1e300s"', 'run.duration: a duration must be at most 1000y, got "1e300s"'),
        ("cluster.fabric.switch_radix=" + "9" * 30, "cluster.fabric.switch_radix: got " + "9" * 30 + "; must be at most 4,096"),
        ("workload.layers=" + "9" * 50, "workload.layers: got an integer of 50 digits; must be at most 10,000"),
        ("reliability.rates.faulty_gpu=1e6", "reliability.rates.faulty_gpu: got 1000000.0; must be at most 1,000"),
        ("reliability.rates.faulty_gpu=inf", "reliability.rates.faulty_gpu: got inf: a finite number is needed"),
        ("cluster.fabric.nic_gbps=nan", "cluster.fabric.nic_gbps: got nan: a finite number is needed"),
        ("run.seed=-1", "run.seed: got -1; must be at least 0"),
        ("run.seed=" + str(2**64), "run.seed: got 18446744073709551616; must be at most 9.22337e+18"),
    ],
    ids=["duration-int", "duration-1e300", "radix", "layers", "rate-1e6", "rate-inf", "nan", "seed-negative", "seed-huge"],
)  # fmt: skip
def test_numbers_out_of_range_are_refused_at_the_model(capsys, override, problem):
    assert main(["validate", str(STARTER), "--set", override]) == 2
    assert problems_of(capsys) == [problem]


@pytest.mark.parametrize("command", [["run", "--duration", "1h"], ["compare", str(STARTER), "--duration", "1h"]])
def test_a_negative_seed_on_the_command_line_is_a_clear_error(capsys, command):
    argv = [command[0], str(STARTER), *command[1:], "--seed", "-1"]
    assert main(argv) == 2
    assert problems_of(capsys) == ["--seed: got -1; a seed is a whole number from 0 to 2**63 - 1"]


def test_an_inline_chip_without_a_scale_up_link_says_to_set_one(tmp_path, capsys):
    f = tmp_path / "chip.toml"
    f.write_text('name = "x"\n[cluster]\nchip = {bf16_tflops = 1000, memory_gb = 80, hbm_tb_s = 3}\n')
    assert main(["validate", str(f)]) == 2
    assert problems_of(capsys) == ["cluster: no scale-up link: set cluster.scale_up"]


# ---------------------------------------------------------------- every problem in one pass


def test_validate_lists_schema_and_layout_problems_in_one_pass(capsys):
    assert main(["validate", str(STARTER), "--set", "cluster.nodes=-3", "--set", "parallelism.tp=3"]) == 2
    assert problems_of(capsys) == [
        "cluster.nodes: got -3; must be more than 0",
        "parallelism.tp: 3 does not divide chips_per_node = 8; TP groups would straddle servers",
        "parallelism.tp: 3 does not divide the model's 32 attention heads",
        "parallelism.tp: 3 does not divide the model's MLP width 14336",
    ]  # the fourth problem of tp = 3 (dp "auto" on 8 nodes) waits: it depends on the refused node count


def test_one_pass_also_reaches_the_memory_check(capsys):
    argv = ["validate", str(STARTER), "--set", "workload.precision=fp4", "--set", "workload.micro_batch=8"]
    assert main(argv) == 2
    found = problems_of(capsys)
    assert found[0].startswith('workload.precision: got "fp4"; allowed:')
    assert len(found) == 2 and found[1].startswith("cluster.chip: the job needs")


# ---------------------------------------------------------------- messages that keep their shape


def test_keys_named_name_or_inline_keep_their_path(tmp_path, capsys):
    f = tmp_path / "n.toml"
    f.write_text(
        'name = 5\n[cluster.chip]\nname = 3\n[layout.positions]\ninline = "x"\n[reliability.rates]\nname = 1\n'
    )
    assert main(["validate", str(f)]) == 2
    paths = [line.split(":")[0] for line in problems_of(capsys)]
    assert paths == ["name", "cluster.chip.memory_gb", "cluster.chip.hbm_tb_s", "cluster.chip.name",
                     "reliability.rates.name", "layout.positions.inline"]  # fmt: skip


def test_a_value_with_a_newline_stays_on_one_line(capsys):
    assert main(["validate", str(STARTER), "--set", 'workload.precision="fp8\\nsecond line"']) == 2
    assert problems_of(capsys) == ['workload.precision: got "fp8\\nsecond line"; allowed: "bf16" or "fp8"']


def test_terminal_escape_sequences_are_shown_never_emitted(tmp_path):
    f = tmp_path / "esc.toml"
    f.write_text('name = "\\u001b]0;owned\\u0007\\u001b[31mred"\n[workload]\nprecision = "\\u001b[2J"\n')
    result = cli("validate", str(f))
    assert result.returncode == 2
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert 'name: got "\\x1b]0;owned\\x07\\x1b[31mred": control characters are not allowed here' in result.stderr
    assert 'workload.precision: got "\\x1b[2J"' in result.stderr


def test_a_10_kb_value_is_shortened_to_80_characters(capsys):
    assert main(["validate", str(STARTER), "--set", "workload.precision=" + "x" * 10_000]) == 2
    (line,) = problems_of(capsys)
    shown = line.removeprefix("workload.precision: got ").split("; allowed")[0]
    assert shown == '"' + "x" * 56 + '…" (10,000 characters)' and len(shown) <= 80


def test_show_escapes_and_shortens_like_repr():
    assert show('a\tb\\c"') == '"a\\tb\\\\c\\""'
    assert show("\u202eevil") == '"\\u202eevil"'  # a bidi override is shown, not applied
    assert show(10**5000) == "an integer of about 5,001 digits"
    assert len(show("\x1b" * 100)) <= 80
    assert str(Problem("a\nb", "c\x1bd")) == "a\\nb: c\\x1bd"


# ---------------------------------------------------------------- files that are not scenario files


def test_special_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO (named pipe)"), ("/dev/zero", "a device")):
        result = cli("validate", str(path), timeout=20)  # reading either would never end
        assert result.returncode == 2
        assert result.stderr == f"error: {path}: is {kind}, not a scenario file; only regular files are read\n"


def test_a_directory_or_an_oversized_file_is_refused(tmp_path):
    with pytest.raises(ScenarioError, match="is a directory, not a scenario file"):
        load_scenario_file(tmp_path)
    big = tmp_path / "big.toml"
    big.write_text('name = "x"\n' + "# padding\n" * (MAX_SCENARIO_BYTES // 10))
    with pytest.raises(ScenarioError, match=f"is {big.stat().st_size:,} bytes; a scenario file is at most 1,048,576"):
        load_scenario_file(big)
    assert stat.S_ISREG(big.stat().st_mode)
