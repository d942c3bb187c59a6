"""The layout search: it finds what exhaustive estimates find, refuses only what the checks refuse, ranks by
its objectives, and writes, reports and fails the way a user expects."""

from __future__ import annotations

import itertools
import json
import math
import os
from collections import Counter

import numpy as np
import pytest

from factorysim import check_scenario, estimate, load_scenario
from factorysim.cli import main
from factorysim.engine import run_seeds
from factorysim.explore import LocalRunner, Request
from factorysim.explore.goodput import expected_goodput, replica_share
from factorysim.explore.search import search
from factorysim.scenario import ScenarioError, layout_problems, resolve_layout
from factorysim.scenario.parallel import split_layers
from factorysim.topology import FabricIndex, plan_clos

from .conftest import SCENARIOS

# 16 MTT S4000 (48 GB) training an 8-layer Llama-3 8B: small enough to try every layout by hand, tight
# enough in memory that the memory rule refuses some.
SMALL = [
    "name=small", "cluster.chip=MTT-S4000", "cluster.nodes=2", "cluster.spare_nodes=0", "workload.layers=8",
    "workload.global_batch=64", "workload.seq_len=4096", "parallelism.tp=1", "parallelism.pp=1",
    "parallelism.dp=auto", "parallelism.interleave=1",
]  # fmt: skip
LAYOUT_KEYS = ("parallelism.tp", "parallelism.cp", "parallelism.pp", "parallelism.dp", "workload.micro_batch",
               "parallelism.interleave", "parallelism.sequence_parallel", "parallelism.zero", "workload.recompute",
               "features.tp_overlap", "parallelism.first_stage_layers", "parallelism.last_stage_layers")  # fmt: skip
STAGE_SPLITS = ("even", "last one short", "first and last one short")


def splits(layers: int, pp: int) -> list[tuple]:
    """(first_stage_layers, last_stage_layers) of the splits the search documents, each split once."""
    short = -(-layers // pp) - 1
    out, seen = [], set()
    # where the even split already ends one short, the third split is the first one short over it (the first
    # and last one short where the layers allow, else the short stage moved to the front)
    ends_short = split_layers(layers, pp, None, short) == split_layers(layers, pp)
    third = (short, None) if ends_short else (short, short)
    for first, last in ((None, None), (None, short), third):
        if (pp == 1 and last is not None) or (pp < 3 and first is not None):
            continue
        split = split_layers(layers, pp, first, last)
        if sum(split) == layers and min(split) >= 1 and split not in seen:
            seen.add(split)
            out.append((first, last))
    return out


GRID = {
    "parallelism.tp": list(range(1, 9)),
    "parallelism.cp": [1, 2, 3, 4, 8, 16],
    "parallelism.pp": list(range(1, 9)),
    "workload.micro_batch": [1, 2, 3, 4, 8, 16, 32, 64],
    "parallelism.interleave": list(range(1, 9)),
    "parallelism.sequence_parallel": [True, False],
    "features.tp_overlap": [False, True],
}
"""Every value of the layout knobs the small cluster could take, for exhaustive estimation (zero and recompute
are set per test)."""


def small(*more: str):
    return load_scenario(None, [*SMALL, *more])


def exhaustive(base, grid: dict[str, list]) -> dict[tuple, float]:
    """tokens/s of every combination the scenario's own checks accept (layout, memory), by plain estimate calls."""
    index = FabricIndex.from_plan(base.cluster)
    layers = base.workload.model_spec().layers
    found = {}
    keys = list(grid)
    for combo in itertools.product(*grid.values()):
        values = dict(zip(keys, combo, strict=True))
        if values["parallelism.tp"] == 1 and values.get("features.tp_overlap"):
            continue  # nothing to overlap: the same layout as tp_overlap = false
        for first, last in splits(layers, values["parallelism.pp"]):
            values.update({"parallelism.first_stage_layers": first, "parallelism.last_stage_layers": last})
            sections = {"parallelism": {"dp": "auto"}, "workload": {}, "features": {}}
            for key, value in values.items():
                section, name = key.split(".")
                sections[section][name] = value
            s = base.model_copy(update={k: getattr(base, k).model_copy(update=v) for k, v in sections.items()})
            if layout_problems(s) or check_scenario(s):
                continue
            layout = resolve_layout(s)
            if layout.tp == 1 and not s.parallelism.sequence_parallel:
                continue  # the same layout as sequence_parallel = true
            key = {
                **values,
                "parallelism.dp": layout.dp,
                "features.tp_overlap": values.get("features.tp_overlap", False),
            }
            found[tuple(key[k] for k in LAYOUT_KEYS)] = estimate(s, index).tokens_per_s
    return found


def searched(result) -> dict[tuple, float]:
    return {tuple(r.knobs[k] for k in LAYOUT_KEYS): r.tokens_per_s for r in result.best}


def test_search_finds_every_layout_exhaustive_estimates_accept_and_no_other():
    base = small()
    grid = {**GRID, "parallelism.zero": [1], "workload.recompute": ["selective"]}
    truth = exhaustive(base, grid)
    result = search(base, Request(fix=("parallelism.zero=1", "workload.recompute=selective"), top=10**6))

    found = searched(result)
    assert result.estimated == len(found) == len(truth) > 100
    assert set(found) == set(truth)  # refuses nothing the checks accept, accepts nothing they refuse
    for layout, tokens in truth.items():
        assert found[layout] == pytest.approx(tokens, rel=1e-12)
    best = max(truth, key=truth.get)
    assert tuple(result.best[0].knobs[k] for k in LAYOUT_KEYS) == best
    assert result.layout_refused["fits in the chip's memory"] > 0
    assert result.placement_refused["tp·cp·pp divides the job's chips"] > 0


def test_the_memory_and_schedule_knobs_are_searched_exactly_too():
    base = small()
    grid = {
        "parallelism.tp": [2],
        "parallelism.cp": [1],
        "parallelism.pp": [2],
        "workload.micro_batch": [1, 2, 3, 4, 8, 16, 32, 64],
        "parallelism.interleave": [1, 2, 3, 4, 5],
        "parallelism.sequence_parallel": [True, False],
        "parallelism.zero": [0, 1, 2, 3],
        "workload.recompute": ["none", "selective", "full"],
        "features.tp_overlap": [False, True],
    }
    truth = exhaustive(base, grid)
    fixed = ("parallelism.tp=2", "parallelism.cp=1", "parallelism.pp=2")
    result = search(base, Request(fix=fixed, top=10**6))
    found = searched(result)
    assert set(found) == set(truth) and len(truth) > 50
    assert result.layout_refused["fits in the chip's memory"] > 0


def test_eight_layers_on_three_stages_are_split_with_the_short_stage_last_and_first():
    base = small("cluster.nodes=3", "workload.global_batch=48")  # 24 chips: three stages of eight
    grid = {
        "parallelism.tp": [8],
        "parallelism.cp": [1],
        "parallelism.pp": [3],
        "workload.micro_batch": [1, 2, 3, 4, 6, 8, 12, 16, 24, 48],
        "parallelism.interleave": [1, 2, 3],
        "parallelism.sequence_parallel": [True, False],
        "features.tp_overlap": [False, True],
    }
    truth = exhaustive(base, {**grid, "parallelism.zero": [1], "workload.recompute": ["selective"]})
    fixed = ("parallelism.tp=8", "parallelism.cp=1", "parallelism.pp=3", "parallelism.zero=1",
             "workload.recompute=selective")  # fmt: skip
    result = search(base, Request(fix=fixed, top=10**6))

    found = searched(result)
    assert set(found) == set(truth) and len(truth) > 20
    stages = {split_layers(8, 3, r.knobs["parallelism.first_stage_layers"], r.knobs["parallelism.last_stage_layers"])
              for r in result.best}  # fmt: skip
    assert stages == {(3, 3, 2), (2, 3, 3)}


def test_the_pruned_search_finds_the_top_layouts_exhaustive_estimates_find_estimating_fewer():
    base = small()
    grid = {**GRID, "parallelism.zero": [0, 1, 2, 3], "workload.recompute": ["none", "selective", "full"]}
    truth = exhaustive(base, grid)
    ranked = sorted(truth.items(), key=lambda kv: -kv[1])[:5]

    result = search(base, Request(top=5))

    assert [tuple(r.knobs[k] for k in LAYOUT_KEYS) for r in result.best] == [layout for layout, _ in ranked]
    assert [r.tokens_per_s for r in result.best] == pytest.approx([t for _, t in ranked], rel=1e-12)
    assert result.pruned > 10 * result.estimated  # the floor kept most layouts from being estimated
    everything = search(base, Request(top=10**6))
    assert result.layouts_tried == everything.layouts_tried  # each layout counted once, estimated or not


def test_the_cheapest_layouts_per_token_are_found_estimating_fewer_than_every_layout():
    base = small()
    everything = search(base, Request(objective="cost_per_token", top=10**6))
    pruned = search(base, Request(objective="cost_per_token", top=5))
    assert everything.pruned == 0 and pruned.pruned > 5 * pruned.estimated
    assert pruned.best == everything.best[:5]
    assert pruned.best[0].objective < pruned.best[4].objective  # dollars per million tokens, cheapest first
    assert pruned.layouts_tried == everything.layouts_tried


def test_pruning_with_the_report_keeps_the_frontier_and_the_scatter_of_every_layout():
    base = small()
    everything = search(base, Request(top=10**6, frontier=True))
    pruned = search(base, Request(top=3, frontier=True))
    assert everything.pruned == 0 and pruned.pruned > 0
    assert [(r.order, r.objective) for r in pruned.frontier] == [(r.order, r.objective) for r in everything.frontier]
    assert [(r.order, r.objective) for r in pruned.cloud] == [(r.order, r.objective) for r in everything.cloud]
    assert pruned.best == everything.best[:3]


def test_the_floor_never_exceeds_the_step_time_and_without_interleaving_memory_never_falls_with_the_micro_batch():
    from factorysim.explore.knobs import KNOBS, Space
    from factorysim.explore.layouts import ComputeFloor, Domain, DpFloor, Walker, layout_of, with_choice
    from factorysim.perf import estimate_step, memory_per_chip, step_links

    rng = np.random.default_rng(7)
    tight = 0
    shipped = [
        load_scenario(SCENARIOS / f, memory=False) for f in ("llama3-405b-16k-h100.toml", "moe-mixtral-2k-h100.toml")
    ]
    for s in [small(), *shipped]:
        space = Space(s)
        given = {"workload.recompute": ("none", "selective", "full"), "features.async_comm_engine": (False, True),
                 "workload.grad_dtype": ("fp32", "bf16"), "features.in_network_reduction": (False, True)}  # fmt: skip
        domain = Domain(tuple(k.key for k in KNOBS if k.searched), given)
        walker = Walker(domain, space)
        floor, dp_floor, index = ComputeFloor(s), DpFloor(s), FabricIndex.from_plan(s.cluster)
        places = walker.walk(domain.knobs("placement"), {}, Counter())
        checked = 0
        for p in rng.choice(len(places), size=min(12, len(places)), replace=False):
            layouts = walker.walk([k.key for k in KNOBS if k.level == "layout"], places[p], Counter())
            for c in rng.choice(len(layouts), size=min(40, len(layouts)), replace=False):
                choice = layouts[c]
                layout = layout_of(space, choice)
                scenario = with_choice(s, choice)
                assert layout == resolve_layout(scenario)  # the search's layout is the scenario's
                links = step_links(index, layout)
                step = estimate_step(scenario, layout, links)
                compute, busiest = floor.bound(choice, layout)
                assert compute == floor.seconds(choice, layout) <= step.step_time_s
                dp = dp_floor.seconds(int(p), choice, layout, links, busiest)
                assert dp <= step.breakdown.dp_s and compute + dp <= step.step_time_s
                tight += dp >= 0.5 * step.breakdown.dp_s > 0  # the data-parallel floor is no token zero
                mb = choice["workload.micro_batch"]
                larger = [v for v in walker.values("workload.micro_batch", choice) if v > mb]
                if larger and layout.interleave == 1:  # interleaved chunks are held by groups: not monotone
                    bigger = {**choice, "workload.micro_batch": larger[0]}
                    memory = memory_per_chip(scenario, layout).total
                    assert memory_per_chip(with_choice(s, bigger), layout_of(space, bigger)).total >= memory
                checked += 1
        assert checked > 200
    assert tight > 20  # shallow pipelines of 405B: their gradients cannot hide


def test_stage_splits_are_even_last_one_short_and_first_and_last_one_short_each_once():
    from factorysim.explore.knobs import Space
    from factorysim.explore.layouts import Domain, Walker, layout_of

    s = load_scenario(SCENARIOS / "llama3-405b-16k-h100.toml", memory=False)  # 126 layers
    walker = Walker(Domain(("parallelism.stage_layers", "parallelism.last_stage_layers",
                            "parallelism.first_stage_layers")), Space(s))  # fmt: skip
    keys = ["parallelism.stage_layers", "parallelism.last_stage_layers", "parallelism.first_stage_layers"]

    def splits_for(pp: int) -> list[tuple[int, ...]]:
        start = {**{k: 1 for k in ("parallelism.tp", "parallelism.cp", "parallelism.ep")}, "parallelism.pp": pp,
                 "parallelism.dp": 16512 // pp, "workload.micro_batch": 1, "parallelism.interleave": 1}  # fmt: skip
        return [layout_of(Space(s), c).stage_layers for c in walker.walk(keys, start, Counter())]

    assert splits_for(1) == [(126,)]
    assert splits_for(2) == [(63, 63), (64, 62)]  # even, then the last one short
    # 126 on 16 stages: the even split already has the two 7-layer stages last; Llama 3's puts them at both ends
    sixteen = splits_for(16)
    assert sixteen == [(8,) * 14 + (7, 7), (7,) + (8,) * 14 + (7,)]
    # 126 on 14 stages divides evenly: one short gives its layer to the earliest stages in between
    assert splits_for(14) == [(9,) * 14, (10,) + (9,) * 12 + (8,), (8, 10, 10) + (9,) * 10 + (8,)]


def test_a_reporting_convention_is_not_a_knob():
    with pytest.raises(ScenarioError, match=r"attention_flops.*reporting convention"):
        search(small(), Request(vary=("workload.attention_flops=full,causal",)))


def test_a_process_pool_ranks_exactly_like_one_process():
    base = small()
    one = search(base, Request(top=20), LocalRunner(1))
    two = search(base, Request(top=20), LocalRunner(2))
    assert [(r.order, r.objective) for r in one.best] == [(r.order, r.objective) for r in two.best]
    assert one.layout_refused == two.layout_refused and one.estimated == two.estimated and one.pruned == two.pruned


def test_the_best_layout_beats_the_scenarios_own_and_fix_holds_a_knob():
    s = small("parallelism.tp=8", "parallelism.pp=2")
    result = search(s, Request(top=3))
    assert result.baseline is not None
    assert result.best[0].tokens_per_s > result.baseline.tokens_per_s
    held = search(s, Request(fix=("parallelism.tp=8",), top=50))
    assert {r.knobs["parallelism.tp"] for r in held.best} == {8}
    assert held.best[0].tokens_per_s <= result.best[0].tokens_per_s


def test_vary_compares_chips_and_the_faster_chip_wins():
    result = search(small(), Request(vary=("cluster.chip=MTT-S4000,H100-SXM-80GB",), fix=("parallelism.cp=1",), top=3))
    per = {dict(sets)["cluster.chip"]: r for (sets, _), r in zip(result.variants, result.best_per_variant, strict=True)}
    assert set(per) == {"MTT-S4000", "H100-SXM-80GB"}
    assert per["H100-SXM-80GB"].tokens_per_s > 3 * per["MTT-S4000"].tokens_per_s
    assert result.settings(result.best[0])["cluster.chip"] == "H100-SXM-80GB"


def test_a_layout_knob_varied_by_name_joins_the_search():
    narrow = ("parallelism.tp=8", "parallelism.cp=1")
    plain = search(small(), Request(fix=narrow, top=10**6))
    fp8 = search(small("cluster.chip=H100-SXM-80GB"), Request(vary=("workload.precision",), fix=narrow, top=10**6))
    assert {r.knobs["workload.precision"] for r in plain.best} == {"bf16"}
    assert {r.knobs["workload.precision"] for r in fp8.best} == {"bf16", "fp8"}
    assert fp8.best[0].knobs["workload.precision"] == "fp8"


# ------------------------------------------------------------------ expected goodput (time to target)


def test_a_server_failure_takes_one_replica_per_pipeline_it_holds():
    s = small("parallelism.tp=8", "parallelism.pp=2")  # 2 servers, one pipeline of 2 stages: dp = 1
    assert replica_share(resolve_layout(s), 8, 1) == 1.0
    s = small("parallelism.tp=1", "parallelism.pp=1")  # dp = 16, 8 replicas per server
    assert replica_share(resolve_layout(s), 8, 1) == 0.5


@pytest.mark.parametrize("pp", [4, 1])
def test_expected_goodput_matches_the_simulated_mean(pp):
    # isolate-group under a storm: spares run out and a deep pipeline loses more per failed server
    s = load_scenario(SCENARIOS / "h100-4k-isolate-group.toml",
                      ["reliability.rate_multiplier=5", f"parallelism.pp={pp}", "parallelism.dp=auto",
                       "parallelism.interleave=1", "workload.recompute=full"])  # fmt: skip
    runs = run_seeds(s, list(range(1, 7)), 30 * 86400, workers=1)
    simulated = np.mean([r.stability for r in runs])
    expected = expected_goodput(s, resolve_layout(s), plan_clos(s.cluster))
    assert expected.goodput == pytest.approx(simulated, abs=0.03)
    assert expected.ettr == pytest.approx(np.mean([r.ettr for r in runs]), abs=0.01)


def test_time_to_target_ranks_by_tokens_per_second_times_expected_goodput():
    s = small("workload.target_tokens=1e10", "reliability.policy=isolate-group", "reliability.rate_multiplier=50")
    result = search(s, Request(objective="time_to_target", top=5))
    best = result.best[0]
    assert best.goodput is not None and 0 < best.goodput < 1
    assert best.objective == pytest.approx(1e10 / (best.tokens_per_s * best.goodput))
    assert all(a.objective <= b.objective for a, b in itertools.pairwise(result.best))


def test_time_to_target_without_a_target_is_refused_with_the_key_to_set():
    s = small()
    s = s.model_copy(update={"workload": s.workload.model_copy(update={"target_tokens": None})})
    with pytest.raises(ScenarioError, match=r"workload\.target_tokens"):
        search(s, Request(objective="time_to_target"))


# ------------------------------------------------------------------ the command


def test_search_command_prints_the_top_layouts_why_and_the_counts(capsys):
    path = SCENARIOS / "default.toml"
    assert main(["search", str(path), "--fix", "parallelism.zero=1", "--fix", "workload.recompute=selective",
                 "--top", "2", "--workers", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Top 2 by tokens/s" in out and "Why the best beats the scenario's own layout" in out
    assert "break the rule: fits in the chip's memory" in out
    assert out.count("From peak to delivered") == 2


def test_a_long_top_lists_every_layout_and_draws_the_first_ten_waterfalls(capsys):
    path = SCENARIOS / "default.toml"
    assert main(["search", str(path), "--fix", "parallelism.zero=1", "--fix", "workload.recompute=selective",
                 "--top", "12", "--workers", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Top 12 by tokens/s" in out and out.count("From peak to delivered") == 10
    assert "(waterfalls of the first 10; --json has every layout's factors)" in out


def test_search_over_chips_shows_the_scenarios_own_chip_in_its_own_row(capsys):
    assert main(["search", str(SCENARIOS / "default.toml"), "--fix", "parallelism.zero=1", "--fix",
                 "workload.recompute=selective", "--fix", "workload.precision=bf16", "--vary",
                 "cluster.chip=H100-SXM-80GB,A100-SXM-80GB", "--top", "2", "--workers", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    [own] = [line.split() for line in out.splitlines() if line.startswith("own ")]
    assert own[4:6] == ["H100-SXM-80GB", "TP2"]  # the starter's chip and layout, after tokens/s, MFU, GB/chip


def test_search_json_and_write_give_a_scenario_that_loads_and_matches(tmp_path, capsys):
    out = tmp_path / "best.toml"
    args = ["search", str(SCENARIOS / "default.toml"), "--fix", "parallelism.zero=1", "--top", "1", "--json",
            "--workers", "1", "--write", str(out)]  # fmt: skip
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["layouts_estimated"] > 0 and data["top"][0]["rank"] == 1
    counts = data["counts"]
    refused = sum(counts["layouts_refused"].values())
    assert counts["layouts_tried"] == counts["layouts_estimated"] + counts["layouts_not_estimated"] + refused
    best = load_scenario(out)
    assert estimate(best).tokens_per_s == pytest.approx(data["top"][0]["tokens_per_s"], rel=1e-12)
    assert data["top"][0]["tokens_per_s"] >= data["baseline"]["tokens_per_s"]

    before = out.read_text()
    assert main(args) == 2  # exists: needs --force
    assert "exists; add --force" in capsys.readouterr().err
    assert out.read_text() == before


def test_search_never_writes_over_its_input(tmp_path, capsys):
    src = tmp_path / "mine.toml"
    src.write_text((SCENARIOS / "default.toml").read_text())
    before = src.read_text()
    assert main(["search", str(src), "--write", str(src), "--force"]) == 2
    assert "is the scenario being read" in capsys.readouterr().err
    assert src.read_text() == before


def test_search_report_draws_the_frontier_and_keeps_names_as_text(tmp_path, capsys):
    report = tmp_path / "search.html"
    name = "<b>$x$</b> & co"
    assert main(["search", str(SCENARIOS / "default.toml"), "--set", f'name="{name}"', "--fix", "parallelism.zero=1",
                 "--fix", "workload.recompute=none", "--workers", "1", "--report", str(report)]) == 0  # fmt: skip
    page = report.read_text()
    assert page.count("<svg") == 1 and "frontier" in page and "Every layout fills the job's 64 chips" in page
    assert "<b>$x$</b>" not in page and "&lt;b&gt;$x$&lt;/b&gt; &amp; co" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fix", "parallelism.tp"], "--fix: 'parallelism.tp' is not KEY=VALUE"),
        (["--fix", "workload.global_batch=64"], "is not a knob the search turns; set it with --set"),
        (["--vary", "cluster.nodes"], "has no candidates of its own; give values"),
        (["--objective", "time_to_target", "--set", "workload.target_tokens=0"], "must be more than 0"),
        (["--vary", "cluster.chip=NoSuchChip"], 'unknown chip "NoSuchChip"'),
        (["--vary", "cluster.chip=NoSuchChip,H100-SXM-80GB"], 'unknown chip "NoSuchChip"'),  # not dropped silently
        (["--vary", "bogus.key=1,2"], "bogus: unknown key; allowed here: name, description"),
        (["--top", "0"], "--top: must be at least 1"),
        (["--vary", "parallelism.tp=4,8", "--vary", "parallelism.tp=2"], "parallelism.tp is varied twice"),
        (["--vary", "cluster.chip", "--vary", "cluster.chip=B200"], "cluster.chip is varied twice"),
        (["--fix", "parallelism.tp=8", "--fix", "parallelism.tp=4"], "parallelism.tp is fixed twice"),
        (["--fix", "parallelism.tp=two"], 'parallelism.tp: "two" is not allowed: input should be a valid integer'),
        (["--vary", "workload.recompute=none,some"], 'workload.recompute: "some" is not allowed'),
    ],
)
def test_bad_search_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(["search", str(SCENARIOS / "default.toml"), "--workers", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_objective_list_has_a_direction_and_a_formatter_for_each():
    from factorysim.explore import OBJECTIVES

    assert {"tokens_per_s", "mfu", "time_to_target"} <= set(OBJECTIVES)
    for obj in OBJECTIVES.values():
        assert obj.better in ("higher", "lower") and isinstance(obj.fmt(1.0), str)
        assert obj.key(2.0) < obj.key(1.0) if obj.better == "higher" else obj.key(1.0) < obj.key(2.0)
        assert math.isfinite(obj.key(1.0))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a pool of worker processes needs two cores")
def test_sigterm_stops_a_search_and_its_worker_processes_like_ctrl_c():
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    cmd = [sys.executable, "-m", "factorysim", "search", str(SCENARIOS / "llama3-405b-16k-h100.toml"), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:  # the pool has started
        workers = [int(p) for p in children.read_text().split()]
        time.sleep(0.05)
    assert len(workers) >= 2, "the search never started its worker processes"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    deadline = time.monotonic() + 30
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and "zombie" not in _state(p)]
        time.sleep(0.1)
    assert not alive, f"worker processes {alive} outlived the search"


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/status").read().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"
