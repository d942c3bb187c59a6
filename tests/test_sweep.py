"""Sweeps: rows that match direct runs, the same bytes wherever they ran, resumable, and no point lost when a
Dask worker dies mid-sweep."""

from __future__ import annotations

import os
import signal
import time

import pyarrow.parquet as pq
import pytest

from factorysim import estimate, load_scenario
from factorysim.cli import main
from factorysim.engine import run_one
from factorysim.explore import DaskRunner, LocalRunner
from factorysim.explore.sweep import grid, parse_axis, result_keys, sweep
from factorysim.scenario import ScenarioError
from factorysim.scenario.files import scenario_data

from .conftest import SCENARIOS

KUAE = SCENARIOS / "kuae-mtt-s4000-1k.toml"  # 1,000 cards, isolate-group: a 2-day run takes milliseconds
AXES = ("reliability.checkpoint_interval=10m,30m,2h", "reliability.rate_multiplier=1,4")
SEEDS, DAYS = 2, 2


def axes():
    return [parse_axis(a) for a in AXES]


def kuae():
    return load_scenario(KUAE)


def run_sweep(out, runner=None, progress=None):
    return sweep(kuae(), axes(), str(out), seeds=SEEDS, duration=DAYS * 86400.0, runner=runner, progress=progress)


def test_a_points_keys_are_its_scenario_and_seed_hashed_as_one_result_is():
    s = kuae()
    from factorysim import __version__
    from factorysim.explore.cache import digest

    data = scenario_data(s)
    keys = result_keys(data, [None, 1, 7])
    assert keys == [digest(__version__, data, "estimate"), digest(__version__, data, 1), digest(__version__, data, 7)]
    assert len(set(keys)) == 3


def test_the_grid_is_the_cartesian_product_or_the_zip():
    a, b = parse_axis("parallelism.pp=4,8"), parse_axis('workload.precision="bf16",fp8')
    assert grid([a, b]) == [(4, "bf16"), (4, "fp8"), (8, "bf16"), (8, "fp8")]
    assert grid([a, b], zipped=True) == [(4, "bf16"), (8, "fp8")]
    with pytest.raises(ScenarioError, match="needs lists of one length"):
        grid([a, parse_axis("parallelism.tp=1,2,4")], zipped=True)


def test_rows_are_the_runs_and_estimates_of_each_point_and_seed(tmp_path):
    result = run_sweep(tmp_path / "s.parquet")
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    runs = [r for r in table if r["stat"] == "run"]
    assert len(runs) == 6 * SEEDS and len([r for r in table if r["stat"] == "mean"]) == 6
    row = next(
        r for r in runs if r["reliability.checkpoint_interval"] == "2h" and r["reliability.rate_multiplier"] == 4.0
    )
    direct = load_scenario(KUAE, ["reliability.checkpoint_interval=2h", "reliability.rate_multiplier=4",
                                  f"run.duration={DAYS * 86400.0}"])  # fmt: skip
    summary = run_one(direct, row["seed"], DAYS * 86400.0)
    assert row["ettr"] == summary.ettr and row["tokens"] == summary.tokens and row["faults"] == summary.faults
    assert row["tokens_per_s"] == estimate(direct).tokens_per_s
    mean = next(r for r in table if r["stat"] == "mean" and r["point"] == row["point"])
    both = [r["ettr"] for r in runs if r["point"] == row["point"]]
    assert mean["ettr"] == pytest.approx(sum(both) / 2, rel=1e-15)
    assert result.computed == 6 * SEEDS and result.reused == 0


def test_a_sweep_is_identical_locally_on_a_dask_cluster_and_resumed_after_a_stop(tmp_path):
    from distributed import LocalCluster

    local = tmp_path / "local.parquet"
    run_sweep(local, LocalRunner(1))
    expected = local.read_bytes()

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        runner = DaskRunner(cluster.scheduler_address)
        try:
            on_dask = tmp_path / "dask.parquet"
            run_sweep(on_dask, runner)
        finally:
            runner.close()
    assert on_dask.read_bytes() == expected

    stopped = tmp_path / "stopped.parquet"

    def stop_half_way(done, total):
        if done >= total // 2 and done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(stopped, LocalRunner(1), stop_half_way)
    journal = tmp_path / "stopped.parquet.partial.jsonl"
    assert not stopped.exists() and 0 < len(journal.read_text().splitlines()) < 6 * SEEDS
    resumed = run_sweep(stopped, LocalRunner(1))
    assert 0 < resumed.computed < 6 * SEEDS and resumed.reused == 6 * SEEDS - resumed.computed
    assert stopped.read_bytes() == expected and not journal.exists()
    again = run_sweep(stopped, LocalRunner(1))
    assert again.computed == 0 and stopped.read_bytes() == expected


def test_a_worker_killed_mid_sweep_loses_no_point(tmp_path):
    from distributed import Client, LocalCluster

    # more batches than workers, so that batches are in flight when the first results come back
    axes = [
        parse_axis("reliability.checkpoint_interval=10m,20m,30m,1h"),
        parse_axis("reliability.rate_multiplier=1,2,4"),
    ]

    def run(out, runner, progress=None):
        return sweep(kuae(), axes, str(out), seeds=3, duration=4 * 86400.0, runner=runner, progress=progress)

    local = tmp_path / "local.parquet"
    run(local, LocalRunner(1))
    killed: list[str] = []

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        spy = Client(cluster.scheduler_address, set_as_default=False)
        runner = DaskRunner(cluster.scheduler_address)
        pids = spy.run(os.getpid)

        def kill_a_busy_worker(done, total):
            if killed or done == 0:
                return
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # a worker with a batch in flight
                busy = [w for w, keys in spy.processing().items() if keys and w in pids]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                    return
                time.sleep(0.005)

        try:
            on_dask = tmp_path / "dask.parquet"
            result = run(on_dask, runner, kill_a_busy_worker)
        finally:
            runner.close()
            spy.close()
    assert killed, "no worker had a batch in flight to kill"
    assert result.computed == 12 * 3
    assert on_dask.read_bytes() == local.read_bytes()


def test_refused_points_are_rows_that_say_why_and_the_rest_run(tmp_path):
    s = load_scenario(KUAE)
    result = sweep(s, [parse_axis("parallelism.pp=4,8,16")], str(tmp_path / "r.parquet"))
    stats = [r["stat"] for r in result.rows]
    assert stats == ["refused", "estimate", "refused"]  # the file's explicit dp fits pp = 8 only
    assert "parallelism.dp" in result.rows[0]["problem"]
    with pytest.raises(ScenarioError, match="every point is refused"):
        sweep(s, [parse_axis("parallelism.pp=3,5")], str(tmp_path / "none.parquet"))


def test_sweep_command_writes_csv_a_report_and_reuses_results(tmp_path, capsys):
    out, report = tmp_path / "pp.csv", tmp_path / "pp.html"
    args = ["sweep", str(KUAE), "--set", "parallelism.dp=auto", "--vary", "parallelism.pp=4,8,16",
            "--vary", "workload.precision=bf16,fp8", "--output", str(out), "--report", str(report), "--workers", "1"]  # fmt: skip
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "computed 4 results, reused 0" in first  # pp = 16 does not divide the 960 chips: refused
    assert "point 4: parallelism.dp" in first
    assert out.read_text().splitlines()[0].startswith('"point","stat","seed","parallelism.pp","workload.precision"')
    page = report.read_text()
    assert page.count("<svg") == 2  # one chart per varied key
    before = out.read_bytes()
    assert main(args) == 0
    assert "computed 0 results, reused 4" in capsys.readouterr().out
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vary", "parallelism.pp"], "is not key.path=v1,v2"),
        (["--vary", "parallelism.pp=8", "--seeds", "3"], "--seeds: seeds are for runs: add --run"),
        (["--vary", "parallelism.pp=8", "--run", "soon"], "--run:"),
        (["--vary", "parallelism.pp=8", "--vary", "parallelism.pp=4"], "is varied twice"),
        (["--vary", "parallelism.pp=8", "--format", "xlsx"], "invalid choice"),
        (["--vary", "parallelism.pp=4,8", "--set", "parallelism.pp=2"], "--set: parallelism.pp is both set and varied"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    try:
        code = main(["sweep", str(KUAE), "--output", str(tmp_path / "x.parquet"), "--workers", "1", *args])
    except SystemExit as exc:  # argparse's own checks (choices) exit directly, also with 2
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_sweep_refuses_to_replace_a_file_that_is_not_a_sweep(tmp_path, capsys):
    out = tmp_path / "notes.csv"
    out.write_text("my notes\n")
    args = ["sweep", str(KUAE), "--vary", "parallelism.pp=8", "--output", str(out), "--workers", "1"]
    assert main(args) == 2
    assert "is not a factorysim sweep" in capsys.readouterr().err
    assert out.read_text() == "my notes\n"
    assert main([*args, "--force"]) == 0
    assert main(["sweep", str(KUAE), "--vary", "parallelism.pp=8", "--output", str(KUAE), "--workers", "1"]) == 2
    assert "is the scenario being read" in capsys.readouterr().err


def test_a_narrower_sweep_never_drops_the_results_an_output_holds_of_other_points(tmp_path, capsys):
    out = tmp_path / "s.parquet"
    wide = ["sweep", str(KUAE), "--vary", "parallelism.pp=4,8", "--output", str(out), "--workers", "1",
            "--set", "parallelism.dp=auto"]  # fmt: skip
    assert main(wide) == 0
    held = out.read_bytes()
    capsys.readouterr()
    narrow = ["sweep", str(KUAE), "--vary", "parallelism.pp=8", "--output", str(out), "--workers", "1",
              "--set", "parallelism.dp=auto"]  # fmt: skip
    assert main(narrow) == 2
    err = capsys.readouterr().err
    assert "holds 1 result of points this sweep does not have" in err and "--force" in err
    assert out.read_bytes() == held  # nothing written
    assert main([*wide[:3], "parallelism.pp=4,8,16", *wide[4:]]) == 0  # a wider one reuses them
    assert "computed 0 results, reused 2" in capsys.readouterr().out
    assert main([*narrow, "--force"]) == 0
    assert len([r for r in pq.read_table(out).to_pylist() if r["stat"] == "estimate"]) == 1


def test_a_sweep_redraws_its_own_report_and_replaces_no_other_file_without_force(tmp_path, capsys):
    mine = tmp_path / "mine.html"
    mine.write_text("<html>my page</html>")
    args = ["sweep", str(KUAE), "--vary", "parallelism.pp=4,8", "--output", str(tmp_path / "s.parquet"),
            "--workers", "1", "--report"]  # fmt: skip
    assert main([*args, str(mine)]) == 2
    assert '"mine.html" exists; add --force' in capsys.readouterr().err.replace(str(tmp_path) + "/", "")
    assert mine.read_text() == "<html>my page</html>"
    ours = tmp_path / "sweep.html"
    assert main([*args, str(ours)]) == 0 and main([*args, str(ours)]) == 0  # its own page: redrawn each time
    assert "<svg" in ours.read_text()
    assert main([*args, str(mine), "--force"]) == 0 and "<svg" in mine.read_text()


def test_a_dask_cluster_no_worker_joins_stops_after_the_timeout_with_exit_2(tmp_path, capsys):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        t = time.monotonic()
        code = main(["sweep", str(KUAE), "--vary", "reliability.rate_multiplier=1,2", "--output",
                     str(tmp_path / "s.csv"), "--scheduler", cluster.scheduler_address, "--worker-timeout", "1"])  # fmt: skip
        waited = time.monotonic() - t
    err = capsys.readouterr().err
    assert code == 2 and 1 <= waited < 20
    assert "no worker connected" in err and "within 1 s" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_sweep_whose_workers_all_leave_stops_after_the_timeout_and_resumes_where_it_stopped(tmp_path):
    from distributed import LocalCluster

    axes = [
        parse_axis("reliability.checkpoint_interval=10m,20m,30m,1h"),
        parse_axis("reliability.rate_multiplier=1,2,4"),
    ]

    def run(out, runner, progress=None):
        return sweep(kuae(), axes, str(out), seeds=3, duration=4 * 86400.0, runner=runner, progress=progress)

    local = tmp_path / "local.parquet"
    run(local, LocalRunner(1))
    out = tmp_path / "dask.parquet"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        runner = DaskRunner(cluster.scheduler_address, worker_timeout=1.0)

        def everyone_leaves(done, total):
            if 0 < done < total and cluster.workers:
                cluster.scale(0)

        t = time.monotonic()
        try:
            with pytest.raises(ScenarioError, match=r"every worker .* is gone and none came back within 1 s"):
                run(out, runner, everyone_leaves)
        finally:
            runner.close()
        waited = time.monotonic() - t
    assert waited < 30  # stopped, not hung
    journal = tmp_path / "dask.parquet.partial.jsonl"
    assert not out.exists() and 0 < len(journal.read_text().splitlines()) < 12 * 3
    resumed = run(out, LocalRunner(1))
    assert 0 < resumed.computed < 12 * 3 and out.read_bytes() == local.read_bytes()


def test_the_worker_timeout_must_be_positive(capsys):
    code = main(["sweep", str(KUAE), "--vary", "reliability.rate_multiplier=1,2", "--worker-timeout", "0"])
    assert code == 2 and "--worker-timeout: must be a positive number of seconds, got 0" in capsys.readouterr().err


def test_the_help_states_the_worker_timeout_the_runner_uses(capsys):
    from factorysim.explore.runner import WORKER_TIMEOUT

    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert f"(default {WORKER_TIMEOUT:g}: explore.runner.WORKER_TIMEOUT)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("bogus", '"bogus" is not HOST:PORT'),
        ("http://127.0.0.1:8786", "the scheme must be one of tcp"),
        ("tcp://127.0.0.1:1", "cannot reach the scheduler at tcp://127.0.0.1:1"),
    ],
)
def test_a_scheduler_address_that_cannot_be_a_scheduler_is_one_line_and_exit_2(address, message, capsys, tmp_path):
    args = ["sweep", str(KUAE), "--vary", "parallelism.pp=8", "--output", str(tmp_path / "s.parquet")]
    assert main([*args, "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_server_that_never_answers_as_a_scheduler_is_given_up_on():
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, then says nothing (a web server waits so)
    port = listener.getsockname()[1]
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    t = time.monotonic()
    with pytest.raises(ScenarioError, match=r"did not answer as a Dask scheduler|cannot use the scheduler"):
        DaskRunner(f"tcp://127.0.0.1:{port}", timeout=1.0, worker_timeout=1.0)
    assert time.monotonic() - t < 30
    listener.close()
