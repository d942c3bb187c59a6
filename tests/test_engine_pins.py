"""The engine, pinned further: natural faults of each kind as they land, the first slot, planned maintenance
under both policies, eviction records, the log reader's checks on injections, replay at an injection's
instant, and the small helpers (means, time series, work estimates) at exact values."""

from __future__ import annotations

import dataclasses
import json

import pytest

from factorysim import Fault, Simulation
from factorysim.engine import FakeTime, aggregate, read_log
from factorysim.engine.budget import estimate_work
from factorysim.engine.faults import fault_classes
from factorysim.engine.gray import GrayFault
from factorysim.engine.log import MAX_DURATION, EventLog, LogAltered, read_recorded_run, with_links
from factorysim.engine.metrics import COLUMNS, TimeSeries
from factorysim.engine.replay import Replayer, ReplayResult, injections, replay
from factorysim.engine.runs import _run_batch, run_one
from factorysim.scenario import ScenarioError
from factorysim.scenario.files import scenario_data
from factorysim.topology.targets import describe_targets

from .test_recovery import DELTA, DETECT, HOUR, RESTART, WINDOW, records, starter

DAY = 86400.0


def only(rates: dict[str, float], *overrides: str):
    """The starter job (9 servers, one spare) whose only natural faults are these classes at these rates."""
    zero = {fc.name: 0.0 for fc in fault_classes(starter())}
    table = ", ".join(f"{k}={v}" for k, v in {**zero, **rates}.items())
    return starter(9, 1, f"reliability.rates={{{table}}}", *overrides)


def first_fault(sim: Simulation) -> dict:
    """Step to the first natural fault and return its record."""
    while sim.now < 30 * DAY:
        sim.step_to_next_event()
        got = [r for r in records(sim) if r["kind"] == "fault"]
        if got:
            return got[0]
    raise AssertionError("no fault in 30 days")


def arrive(sim: Simulation, name: str, unit: int, **changes) -> None:
    """A natural fault of class `name` (with `changes` to the class) lands on `unit` now."""
    fc = dataclasses.replace(next(fc for fc in sim.classes if fc.name == name), **changes)
    sim.clock.schedule(sim.now, "arrival", (fc, unit))
    sim.run_until(sim.now)


# ---------------------------------------------------------------- natural faults as they land


def test_a_natural_leaf_failure_takes_its_servers_down_for_the_leaf_repair():
    sim = Simulation(only({"leaf_switch": 1e-3}), record=True)
    rec = first_fault(sim)
    t = rec["t"]
    assert rec == {"t": t, "kind": "fault", "target": rec["target"], "cause": "leaf_switch", "effect": {"servers": 9}}
    assert sim.job_state == "running" and sim.snapshot().job_state == "hung"
    assert sim.chip_counts() == {"healthy": 0, "failed": 64, "in_repair": 8, "spare": 0, "total": 72}
    leaf = int(rec["target"][4:])
    back = t + DETECT + 8 * HOUR  # leaf_switch repairs in 8 h, from detection for the job's servers
    sim.run_until(back - 1)
    assert sim.switch_health("leaf", leaf) == 0.0
    sim.run_until(back)
    assert sim.switch_health("leaf", leaf) is None
    assert sim.summary().interruptions == {"leaf_switch": 1, "total": 1} and sim.faults == 1


def test_a_natural_spine_failure_is_recorded_under_its_class_and_repaired_after_eight_hours():
    sim = Simulation(only({"spine_switch": 1e-3}), record=True)
    rec = first_fault(sim)
    t, spine = rec["t"], int(rec["target"][5:])
    assert rec == {
        "t": t,
        "kind": "fault",
        "target": f"spine{spine}",
        "cause": "spine_switch",
        "effect": {"health": 0.0},
    }
    assert sim.switch_health("spine", spine) == 0.0 and sim.summary().interruptions == {"total": 0}
    sim.run_until(t + 8 * HOUR)
    assert sim.switch_health("spine", spine) is None
    assert {"t": t + 8 * HOUR, "kind": "repaired", "target": f"spine{spine}"} in records(sim, t)


@pytest.mark.parametrize(
    "name,changes,kind,factor",
    [
        ("gpu_straggler", {"slowdown": 0.8}, "straggle", 0.8),
        ("fabric_link_degrade", {}, "degrade", 0.25),
        ("fabric_link_flapping", {}, "flap", 0.7),
        ("scale_up_link_degrade", {}, "degrade_up", 0.5),
    ],
)
def test_a_natural_gray_fault_takes_its_factor_from_its_class(name, changes, kind, factor):
    sim = Simulation(only({}), record=True)
    sim.run_until(HOUR)
    arrive(sim, name, 4 * 8 + 3, **changes)  # chip 3 of n4
    repair = next(fc.repair for fc in sim.classes if fc.name == name)
    assert sim.gray_faults == [GrayFault(4, 3, kind, pytest.approx(factor), HOUR + repair, name)]
    assert records(sim, HOUR) == [{"t": HOUR, "kind": "gray", "target": "n4.3", "cause": name,
                                   "effect": {"kind": kind, "factor": pytest.approx(factor), "until": HOUR + repair}}]  # fmt: skip


# ---------------------------------------------------------------- the first slot is a slot like any other


def test_a_straggler_in_slot_zero_slows_the_job_like_one_in_slot_four_and_its_end_frees_it():
    rates = {}
    for server in (0, 4):
        sim = Simulation(starter(9, 1))
        sim.run_until(HOUR)
        before = sim.tokens_per_s
        sim.inject(Fault(f"n{server}.2", "straggle", factor=0.5, duration=300))  # ends inside the window
        rates[server] = sim.tokens_per_s
        assert sim.tokens_per_s < 0.6 * before
        sim.run_until(HOUR + 300)
        assert sim.tokens_per_s == before and sim.gray_faults == []
    assert rates[0] == rates[4]


# ---------------------------------------------------------------- planned maintenance


@pytest.mark.parametrize("policy", ["checkpoint-restart", "isolate-group"])
def test_planned_maintenance_saves_then_stops_the_whole_job_without_rolling_maintenance(policy):
    sim = Simulation(only({}, f'reliability.policy="{policy}"', "reliability.rolling_maintenance=false"), record=True)
    T = sim.T0
    sim.run_until(2700)
    arrive(sim, "planned_maintenance", 0)
    assert sim.job_state == "restarting" and sim.committed == sim.progress == pytest.approx(T * 2680)
    assert records(sim, 2700) == [
        {"t": 2700, "kind": "stop", "target": "job", "cause": "planned_maintenance", "effect": {"job": "restarting"}}
    ]
    sim.run_until(2700 + DELTA + RESTART - 1)  # the save, then the restart
    assert sim.tokens_per_s == 0
    sim.run_until(2700 + DELTA + RESTART)
    assert sim.job_state == "running" and sim.tokens_per_s == sim.T0 and sim.lost_tokens == 0
    assert sim.summary().interruptions == {"planned_maintenance": 1, "total": 1} and sim.faults == 1


def test_planned_maintenance_while_the_job_is_down_is_counted_but_changes_nothing():
    sim = Simulation(only({}), record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n3", "fail"))  # hung until detected
    arrive(sim, "planned_maintenance", 0)
    assert [r["kind"] for r in records(sim, HOUR)] == ["inject", "fault"]
    assert sim.faults == 2 and sim.summary().interruptions == {"injected": 1, "total": 1}


# ---------------------------------------------------------------- evictions, as recorded


def test_an_eviction_with_a_spare_writes_these_records():
    sim = Simulation(starter(9, 1), record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=2 * HOUR))
    t = HOUR + WINDOW
    sim.run_until(t + DELTA + RESTART)
    assert records(sim, t) == [
        {"t": t, "kind": "evict", "target": "n4", "cause": "injected", "effect": {"server": "in_repair"}},
        {"t": t, "kind": "spare_in", "target": "n8", "effect": {"slot": 4, "spares": 0}},
        {"t": t, "kind": "stop", "target": "job", "cause": "evict:injected", "effect": {"job": "restarting"}},
        {"t": t + DELTA + RESTART, "kind": "restarted", "target": "job", "effect": {"replicas_up": 32, "replicas": 32}},
    ]  # fmt: skip


def test_a_straggler_due_for_eviction_while_the_job_hangs_waits_and_says_why():
    sim = Simulation(starter(10, 2), record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n4.1", "straggle", factor=0.5, duration=2 * HOUR))
    sim.run_until(HOUR + WINDOW - 60)
    sim.inject(Fault("n3", "fail"))  # the job hangs for the detection time, past the window
    sim.run_until(HOUR + WINDOW)
    assert records(sim, HOUR + WINDOW) == [
        {"t": HOUR + WINDOW, "kind": "evict_wait", "target": "n4", "cause": "injected", "effect": {"why": "job hung"}}
    ]


def test_a_crash_under_isolate_group_restarts_the_whole_job_with_these_records():
    sim = Simulation(starter(9, 1, 'reliability.policy="isolate-group"', "reliability.isolate_crashes=false"),
                     record=True)  # fmt: skip
    sim.run_until(2700)
    sim.inject(Fault("job", "crash"))
    sim.run_until(2 * HOUR)
    got = [(r["t"], r["kind"], r["target"], r.get("cause"), r.get("effect")) for r in records(sim, 2700)]
    assert got[2:] == [
        (2700 + DETECT, "detect", "job", "injected", {"job": "stopped"}),
        (2700 + DETECT, "stop", "job", "restart", {"job": "restarting"}),
        (2700 + DETECT + RESTART, "restarted", "job", None, {"replicas_up": 32, "replicas": 32}),
    ]


# ---------------------------------------------------------------- the log reader's checks on injections


@pytest.fixture
def small_log(tmp_path):
    sim = Simulation(starter(9, 1), record=True)
    sim.run_until(HOUR)
    sim.inject(Fault("n4.1", "straggle", factor=0.3, duration=1800))
    sim.run_until(2 * HOUR)
    path = tmp_path / "run.jsonl"
    sim.write_log(path)
    return path


def rewritten(path, edit):
    """The log with its records edited and its hash chain computed afresh (so only the record checks can refuse)."""
    bodies = [json.loads(line.rsplit(',"chain":', 1)[0] + "}") for line in path.read_text().splitlines()]
    edit(bodies)
    path.write_text(with_links([json.dumps(b, sort_keys=True, separators=(",", ":")) for b in bodies]))
    return path


def the_injection(records_: list[dict]) -> dict:
    return next(r for r in records_ if r.get("kind") == "inject")


@pytest.mark.parametrize("duration", [1, MAX_DURATION])
def test_an_injection_of_any_allowed_duration_is_read(small_log, duration):
    rewritten(small_log, lambda r: the_injection(r)["effect"].__setitem__("duration", duration))
    _, lines, _ = read_log(small_log)
    assert json.loads(next(x for x in lines if '"inject"' in x))["effect"]["duration"] == duration


@pytest.mark.parametrize("duration,shown", [(-5, "-5"), (0, "0"), (MAX_DURATION * 2, f"{MAX_DURATION * 2:g}")])
def test_an_injection_of_a_bad_duration_is_refused_at_its_line(small_log, duration, shown):
    rewritten(small_log, lambda r: the_injection(r)["effect"].__setitem__("duration", duration))
    line = next(i for i, x in enumerate(small_log.read_text().splitlines(), 1) if '"inject"' in x)
    with pytest.raises(ScenarioError) as err:
        read_log(small_log)
    assert str(err.value).startswith(f"{small_log}: line {line}: injected fault duration ")
    assert str(err.value).endswith("allowed: seconds, more than 0")


def test_only_injection_records_are_checked_as_faults(small_log):
    def edit(records_):
        gray = next(r for r in records_ if r.get("kind") == "gray")
        gray["effect"]["kind"] = "degrade_up"  # a gray kind, not a kind of fault one can inject
        gray["effect"]["duration"] = -1

    rewritten(small_log, edit)
    _, lines, _ = read_log(small_log)
    assert json.loads(next(x for x in lines if '"gray"' in x))["effect"]["kind"] == "degrade_up"


def test_an_altered_log_names_its_file_and_line(small_log):
    text = small_log.read_text().splitlines()
    text[3] = text[3].replace('"t":', '"t":1')
    small_log.write_text("\n".join(text) + "\n")
    with pytest.raises(LogAltered) as err:
        read_recorded_run(small_log)
    assert err.value.line == 4
    assert str(err.value) == (f"{small_log}: altered at line 4: the line does not match the log's hash chain, "
                              "so the log was changed after it was written")  # fmt: skip


# ---------------------------------------------------------------- replay


def test_injections_come_back_with_their_factor_duration_and_the_default_kind():
    lines = ["{}",
             '{"t":5,"kind":"inject","target":"n1","cause":"injected","effect":{}}',
             '{"t":6,"kind":"inject","target":"n2.1","cause":"injected","effect":{"kind":"straggle","factor":0.3,"duration":90}}',
             '{"t":7,"kind":"inject","target":"n3","cause":"scheduled","effect":{"kind":"fail"}}']  # fmt: skip
    assert injections(lines) == [(5, Fault("n1", "fail")), (6, Fault("n2.1", "straggle", 0.3, 90.0))]


def test_seeking_to_the_instant_of_an_injection_shows_it(small_log):
    replayer = Replayer(small_log)
    sim = replayer.seek(HOUR)
    assert sim.gray_faults == [GrayFault(4, 1, "straggle", 0.3, HOUR + 1800, "injected")]
    sim = replayer.seek(HOUR - 1)  # back: simulated again from the start
    assert sim.now == HOUR - 1 and sim.gray_faults == []


# ---------------------------------------------------------------- small helpers, exact


def test_fake_time_starts_at_zero_unless_told():
    assert FakeTime()() == 0.0 and FakeTime(5.0)() == 5.0


def test_the_targets_a_cluster_has_are_named_in_full():
    sim = Simulation(starter(9, 1))
    assert describe_targets(sim.plan) == 'servers n0-n8, chips n0.0-n8.7, leaf0-leaf7, spine0-spine8, "job"'


def test_a_time_series_as_a_table_has_every_column_as_sampled():
    series = TimeSeries(60.0, capacity=4)
    for i in range(3):
        series.add(tuple(float(i * 100 + c) for c in range(len(COLUMNS))))
    table = series.as_dict()
    assert list(table) == list(COLUMNS)
    assert table["t"] == [0.0, 100.0, 200.0] and table["cluster"] == [14.0, 114.0, 214.0]


def test_means_over_seeds_average_the_factors_and_each_lost_chip_hour_account():
    s = starter(9, 1)
    a, b = run_one(s, 1, HOUR), run_one(s, 2, HOUR)
    b.factors = {**b.factors, "stability": 0.5}
    b.lost_chip_hours_by = {**b.lost_chip_hours_by, "downtime": 10.0}
    out = aggregate([a, b])
    assert out["factors"]["stability"] == pytest.approx((a.factors["stability"] + 0.5) / 2)
    assert out["factors"]["chip"] == a.factors["chip"]
    assert out["lost_chip_hours_by"]["downtime"] == pytest.approx((a.lost_chip_hours_by["downtime"] + 10.0) / 2)


def test_a_batch_of_seeds_runs_each_seed_of_the_batch():
    s = starter(9, 1)
    got = _run_batch(scenario_data(s), [3, 4], HOUR)
    assert [r.seed for r in got] == [3, 4]
    assert [r.as_dict() for r in got] == [run_one(s, 3, HOUR).as_dict(), run_one(s, 4, HOUR).as_dict()]


def test_the_work_estimate_is_rates_times_units_by_the_week():
    s = only({"faulty_gpu": 0.01})  # 72 GPUs: 0.72 a GPU-hour
    one = estimate_work(s, 10 * DAY)
    assert one.per_hour == pytest.approx(0.72) and one.per_week == pytest.approx(0.72 * 168)
    assert one.events == pytest.approx(0.72 * 168 * 2)  # two weeks are drawn
    assert one.describe() == "about 242 fault events (17 a day over 10.0 d)"
    assert estimate_work(s, 10 * DAY, runs=3).describe() == "about 726 fault events (17 a day over 10.0 d × 3 runs)"


def test_an_altered_log_replays_to_nothing_but_where_it_was_altered(small_log):
    text = small_log.read_text().splitlines()
    text[3] = text[3].replace('"t":', '"t":1')
    small_log.write_text("\n".join(text) + "\n")
    reason = "the line does not match the log's hash chain, so the log was changed after it was written"
    assert replay(small_log) == ReplayResult(0, "", "", f"altered at line 4: {reason}", altered_at=4)


def test_an_empty_log_is_refused_with_this_message(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ScenarioError) as err:
        read_log(path)
    assert str(err.value) == f"{path}: empty file: not a factorysim event log"


def test_a_replay_counts_the_events_and_names_the_closing_line_that_differs(small_log):
    _, lines, closing = read_log(small_log)
    assert replay(small_log).events == closing["events"] == len(lines) - 1

    def lie(records_):
        records_[-1]["summary"]["faults"] = 99

    rewritten(small_log, lie)
    result = replay(small_log)
    assert result.divergence == (f"the closing line (line {len(lines) + 1}) differs: "
                                 "summary.faults: recorded 99, replayed 1")  # fmt: skip


def test_a_line_that_keeps_the_chain_but_is_not_json_is_refused_at_its_number(small_log):
    bodies = [line.rsplit(',"chain":', 1)[0] + "}" for line in small_log.read_text().splitlines()]
    bodies[2] = "{not json}"
    small_log.write_text(with_links(bodies))
    with pytest.raises(ScenarioError) as err:
        read_log(small_log)
    assert str(err.value) == f"{small_log}: line 3 is not a JSON record (it matches the chain, so it was written so)"


def test_an_altered_line_in_a_log_without_its_last_line_end_is_still_altered_there(small_log):
    text = small_log.read_text().splitlines()
    text[3] = text[3].replace('"t":', '"t":1')
    small_log.write_text("\n".join(text))  # no line end after the closing line
    with pytest.raises(LogAltered) as err:
        read_recorded_run(small_log)
    assert err.value.line == 4


def test_a_log_that_keeps_no_lines_has_no_text():
    log = EventLog({"seed": 1}, keep_all=False)
    with pytest.raises(RuntimeError) as err:
        log.text(0.0, {})
    assert str(err.value) == "this log does not keep its lines; create it with keep_all=True"


def test_straggling_a_server_slows_every_chip_of_that_server():
    sim = Simulation(starter(9, 1, "reliability.evict_stragglers=false"))
    sim.inject(Fault("n4", "straggle", factor=0.5, duration=HOUR))
    assert [(g.server, g.local, g.kind, g.factor) for g in sim.gray_faults] == [
        (4, i, "straggle", 0.5) for i in range(8)
    ]


def test_a_summary_whose_target_is_never_reached_reports_none_in_json():
    summary = run_one(starter(9, 1), 1, HOUR)
    summary.time_to_target_s = float("inf")
    out = summary.as_dict()
    assert out["time_to_target_s"] is None and json.dumps(out, allow_nan=False)


def test_the_job_target_is_named_job():
    from factorysim.topology.targets import parse_target

    target = parse_target("job", Simulation(starter()).plan)
    assert (target.kind, target.index, target.name) == ("job", 0, "job")


@pytest.mark.parametrize(("duration", "ok"), [(0.0, False), (-1.0, False), (1.0, True), (1e-3, True)])
def test_an_injected_fault_lasts_a_positive_time(duration, ok):
    plan = Simulation(starter()).plan
    fault = Fault("n3.1", "straggle", duration=duration)
    if ok:
        assert fault.check(plan).name == "n3.1"
        return
    with pytest.raises(ScenarioError) as err:
        fault.check(plan)
    assert [(p.path, p.message) for p in err.value.problems] == [
        ("fault.duration", f"must be positive, got {duration}")
    ]


def test_an_injection_in_the_past_names_its_time_and_now():
    sim = Simulation(starter())
    sim.run_until(HOUR)
    with pytest.raises(ScenarioError) as err:
        sim.inject(Fault("n3"), at=60.0)
    assert [(p.path, p.message) for p in err.value.problems] == [("at", "60 s is in the past (now 3600 s)")]
