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
    assert len(found) == 2 and found[1].startswith("cluster.chip: out of memory: the job needs")


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


# ---------------------------------------------------------------- output paths that never clobber


def run_args(*extra: str) -> list[str]:
    return ["run", str(STARTER), "--duration", "1d", *extra]


def test_recording_over_the_scenario_being_read_is_refused_and_it_stays(tmp_path, capsys):
    mine = tmp_path / "mine.toml"
    mine.write_text(STARTER.read_text())
    before = mine.read_bytes()
    assert main(["run", str(mine), "--duration", "1d", "--record", str(mine), "--force"]) == 2
    assert problems_of(capsys) == [f'--record: "{mine}" is the scenario being read; write to another file']
    assert mine.read_bytes() == before


def test_a_device_is_never_replaced(capsys):
    assert main(run_args("--record", "/dev/null", "--force")) == 2
    assert problems_of(capsys) == ['--record: "/dev/null" is a device; factorysim writes only regular files']
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_an_existing_file_needs_force_and_is_then_replaced(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    log.write_text("keep me\n")
    assert main(run_args("--record", str(log))) == 2
    assert problems_of(capsys) == [f'--record: "{log}" exists; add --force to overwrite it']
    assert log.read_text() == "keep me\n"
    assert main(run_args("--record", str(log), "--force")) == 0
    assert main(["replay", str(log)]) == 0


def test_on_a_terminal_an_existing_file_is_asked_about(tmp_path, capsys, monkeypatch):
    import io

    import factorysim.outputs as outputs

    report = tmp_path / "r.html"
    report.write_text("old")
    monkeypatch.setattr(outputs, "_interactive", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert main(run_args("--report", str(report))) == 2
    assert f"{report} exists; overwrite it? [y/N]" in capsys.readouterr().err and report.read_text() == "old"
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert main(run_args("--report", str(report))) == 0
    assert report.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    "record,report,problems",
    [
        ("{tmp}", None, ['--record: "{tmp}" is a directory; name a file in it']),
        ("{tmp}/no/run.jsonl", "{tmp}/no/r.html",
         ['--record: folder "{tmp}/no" does not exist', '--report: folder "{tmp}/no" does not exist']),
        ("{tmp}/a", "{tmp}/a", ['--report: "{tmp}/a" is also the file of --record; give two files']),
        ("/proc/run.jsonl", None, ['--record: cannot write in folder "/proc": No such file or directory']),
    ],
    ids=["directory", "missing-folder", "same-file", "unwritable-folder"],
)  # fmt: skip
def test_bad_output_paths_are_refused_before_the_run_starts(tmp_path, capsys, monkeypatch, record, report, problems):
    import factorysim.engine as engine

    monkeypatch.setattr(engine, "Simulation", lambda *a, **k: pytest.fail("the run started"))
    argv = run_args("--record", record.format(tmp=tmp_path))
    if report:
        argv += ["--report", report.format(tmp=tmp_path)]
    assert main(argv) == 2
    assert problems_of(capsys) == [p.format(tmp=tmp_path) for p in problems]


def test_a_full_disk_is_a_clear_error_after_the_summary_and_the_old_file_stays(tmp_path, capsys, monkeypatch):
    import errno

    log = tmp_path / "run.jsonl"
    log.write_text("the previous run\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main(run_args("--record", str(log), "--force")) == 2
    out, err = capsys.readouterr()
    assert "effective training time ratio" in out  # the run's figures were shown first
    assert err == f'error: --record: cannot write "{log}": No space left on device; nothing was written\n'
    assert log.read_text() == "the previous run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["run.jsonl"]  # no temporary file left behind


def test_the_library_writer_refuses_a_fifo(tmp_path):
    from factorysim.scenario.files import NotARegularFile, write_atomically

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile, match="is a FIFO"):
        write_atomically(fifo, "x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# ---------------------------------------------------------------- the work budget


@pytest.mark.parametrize(
    "argv,events",
    [
        (["run", "scenarios/h100-100k.toml", "--duration", "100y"], "about 2,267,048 fault events (62 a day over 100.0 y)"),
        (["run", "scenarios/h100-100k.toml", "--seeds", "1000"], "about 2,173,584 fault events (62 a day over 30.0 d × 1,000 runs)"),
        (["run", "scenarios/kuae-mtt-s4000-1k.toml", "--set", "reliability.rates.fabric_link_flapping=10"],
         "about 8,400,021 fault events (240,001 a day over 30.0 d)"),
        (["run", "scenarios/h100-100k.toml", "--set", "reliability.rate_multiplier=1000"],
         "about 2,173,584 fault events (62,102 a day over 30.0 d)"),
        (["replay", "{big_log}"], "about 1,998,827 fault events (1,997 a day over 2.7 y)"),
    ],
    ids=["100-years", "1000-seeds", "flapping", "storm", "replay"],
)  # fmt: skip
def test_work_past_the_budget_is_refused_before_it_starts(tmp_path, capsys, monkeypatch, argv, events):
    import factorysim.engine as engine

    if "{big_log}" in argv:
        argv = ["replay", str(_log_of_a_long_run(tmp_path))]
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(engine, "Simulation", lambda *a, **k: pytest.fail("the run started"))
    assert main(argv) == 2
    assert problems_of(capsys) == [
        f"work budget: {events}, past the budget of 1,000,000; add --yes to run it anyway, or shorten --duration, "
        "run fewer --seeds or lower the fault rates"
    ]


def _log_of_a_long_run(tmp_path: Path) -> Path:
    """A valid log whose closing line says the run lasted 1000 days at a high fault rate (as if run with --yes)."""
    import json

    from factorysim.engine.log import EventLog, dumps, with_links
    from factorysim.scenario.files import load_scenario_file, scenario_data

    data = scenario_data(load_scenario_file(None, ["reliability.rates.faulty_gpu=1.3"]))
    from factorysim.engine.log import scenario_hash

    log = EventLog({"factorysim": "x", "seed": 1, "scenario": data, "scenario_sha256": scenario_hash(data)},
                   keep_all=True)  # fmt: skip
    closing = dumps(log.closing(1000 * 86400.0, {}))
    path = tmp_path / "long.jsonl"
    path.write_text(with_links([*log.lines, closing]))
    assert json.loads(closing)["t"] == 1000 * 86400.0
    return path


def test_a_fault_draw_too_large_for_memory_is_refused_even_with_yes(capsys):
    assert main(run_args("--set", "reliability.rates.faulty_gpu=1000", "--yes")) == 2
    assert problems_of(capsys) == [
        "reliability.rates: about 10,752,000 fault events a sim week; at most 10,000,000 can be drawn at once: "
        "lower the rates or reliability.rate_multiplier"
    ]


def test_the_estimate_is_rates_times_exposure_times_duration_and_matches_a_run():
    """64 GPUs failing at 0.01 per GPU-hour for 4 weeks: 0.64 an hour, 430 in all; a run draws that many."""
    from factorysim.engine import Simulation
    from factorysim.engine.budget import estimate_work
    from factorysim.engine.faults import fault_classes

    zero = [
        f"reliability.rates.{fc.name}=0" for fc in fault_classes(load_scenario_file(None)) if fc.name != "faulty_gpu"
    ]
    s = load_scenario_file(None, [*zero, "reliability.rates.faulty_gpu=0.01", "cluster.spare_nodes=0"])
    work = estimate_work(s, 28 * 86400.0, runs=3)
    assert work.per_hour == pytest.approx(0.64)
    assert work.events == pytest.approx(0.64 * 24 * 28 * 3)
    drawn = sum(len(Simulation(s, seed=k).process.chunk(w)) for k in range(3) for w in range(4))
    assert abs(drawn - work.events) < 3 * work.events**0.5  # Poisson: within 3 standard deviations


# ---------------------------------------------------------------- Ctrl-C and progress


def _interrupt_after(monkeypatch, cls, name: str, calls: int) -> None:
    """Send this process a real SIGINT (as Ctrl-C does) on the given call of cls.name."""
    import signal

    real = getattr(cls, name)
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(cls, name, wrapped)


def test_ctrl_c_stops_a_run_cleanly_with_a_partial_summary_and_a_log_that_replays(tmp_path, capsys, monkeypatch):
    from factorysim.engine import Simulation

    _interrupt_after(monkeypatch, Simulation, "run_until", 50)
    log = tmp_path / "run.jsonl"
    assert main(["run", str(STARTER), "--duration", "20d", "--record", str(log)]) == 130
    out, err = capsys.readouterr()
    assert out.startswith("starter-64 — 5.0 d of sim time")  # 50 of 200 steps of 20 days
    assert "interrupted at 5.0 d of 20.0 d of sim time: the figures above cover the time simulated" in err
    monkeypatch.undo()
    assert main(["replay", str(log)]) == 0


def test_ctrl_c_stops_many_seeds_between_runs(capsys, monkeypatch):
    import factorysim.engine.runs as runs

    _interrupt_after(monkeypatch, runs, "run_one", 2)
    assert main(["run", str(STARTER), "--duration", "1d", "--seeds", "3", "--json"]) == 130
    out, err = capsys.readouterr()
    assert '"runs": 2' in out and "interrupted after 2 of 3 runs" in err


def test_progress_appears_only_on_a_terminal_and_after_a_while(monkeypatch):
    import io

    from factorysim.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for show_after, shown in ((0.0, True), (60.0, False)):
        err = Terminal()
        monkeypatch.setattr(sys, "stderr", err)
        with Progress("simulating", 10, show_after=show_after) as bar:
            for i in range(10):
                bar.update(i + 1)
        assert ("simulating" in err.getvalue() and "ETA" in err.getvalue()) == shown


def test_ctrl_c_stops_both_runs_of_a_comparison_at_the_same_sim_time(capsys, monkeypatch):
    import json

    from factorysim.engine import Simulation

    _interrupt_after(monkeypatch, Simulation, "run_until", 21)  # during step 11 of 200, run A
    assert main(["compare", str(STARTER), str(STARTER), "--duration", "20d", "--json"]) == 130
    out = json.loads(capsys.readouterr().out)
    assert out["duration_s"] == out["summaries"]["a"]["duration_s"] == out["summaries"]["b"]["duration_s"]
    assert out["duration_s"] == pytest.approx(11 / 200 * 20 * 86400)


def test_ctrl_c_stops_a_replay_without_a_verdict(tmp_path, capsys, monkeypatch):
    from factorysim.engine import Simulation

    log = tmp_path / "run.jsonl"
    assert main(["run", str(STARTER), "--duration", "5d", "--record", str(log)]) == 0
    capsys.readouterr()
    _interrupt_after(monkeypatch, Simulation, "run_until", 30)
    assert main(["replay", str(log)]) == 130
    out, err = capsys.readouterr()
    assert out == "" and "the replay stopped before the end of the log, so there is no verdict" in err


@pytest.mark.parametrize(
    "command,size,message",
    [
        ("validate", 2 << 20, "is 2,097,152 bytes; a scenario file is at most 1,048,576"),
        ("replay", 1 << 30, "is 1,073,741,824 bytes; an event log is at most 268,435,456"),
    ],
)
def test_a_gigabyte_input_is_refused_by_its_size_before_reading(tmp_path, capsys, command, size, message):
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(size)  # sparse: no disk used, but read it would take the memory
    assert main([command, str(big)]) == 2
    assert problems_of(capsys) == [message]
