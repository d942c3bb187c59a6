"""The cluster graph and the index the physics reads from it."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factorysim.perf import estimate_step, step_links
from factorysim.scenario import resolve_layout
from factorysim.topology import FabricIndex, build_graph, link_kind, plan_clos

from .conftest import scenario

SHAPES = [
    ("fat-tree", 2, 1.0, 16),
    ("rail-optimized", 2, 1.0, 16),
    ("fat-tree", 3, 2.0, 64),
    ("rail-optimized", 3, 1.0, 64),
    ("rail-optimized", 3, 3.0, 48),
]


def cluster_of(topology: str, tiers: int, oversub: float, nodes: int):
    return scenario(
        f"cluster.nodes={nodes}",
        f'cluster.fabric.topology="{topology}"',
        f"cluster.fabric.tiers={tiers}",
        f"cluster.fabric.oversubscription={oversub}",
        "cluster.fabric.switch_radix=16",
        "parallelism.dp=auto",
        f"workload.global_batch={nodes * 16}",
    ).cluster


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(map(str, s)))
def test_graph_has_every_chip_server_and_link_kind(shape):
    cluster = cluster_of(*shape)
    g = build_graph(cluster)
    kinds = nx.get_node_attributes(g, "kind")
    assert sum(k == "chip" for k in kinds.values()) == cluster.total_chips
    assert sum(k == "server" for k in kinds.values()) == cluster.nodes
    for a, b, e in g.edges(data=True):
        assert link_kind(kinds[a], kinds[b]) == e["kind"]
    # every chip: one scale-up link to its own server, one NIC to a leaf
    assert all(g.degree(n) == 2 for n, k in kinds.items() if k == "chip")
    assert nx.is_connected(g)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(map(str, s)))
def test_index_from_plan_equals_index_from_graph(shape):
    cluster = cluster_of(*shape)
    a = FabricIndex.from_plan(cluster)
    b = FabricIndex.from_graph(build_graph(cluster))
    for name in ("nic", "scale_up", "leaf", "leaf_ratio", "pod_ratio", "leaf_pod", "spine_pod"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    edges = lambda ix: sorted(zip(ix.up_leaf, ix.up_spine, ix.up_bw, strict=False))  # noqa: E731
    assert edges(a) == edges(b)
    core = lambda ix: sorted(zip(ix.core_spine, ix.core_core, ix.core_bw, strict=False))  # noqa: E731
    assert core(a) == core(b)


def test_oversubscribed_leaves_share_their_uplinks():
    cluster = cluster_of("fat-tree", 2, 3.0, 16)
    index = FabricIndex.from_plan(cluster)
    down, up = cluster.fabric.leaf_ports()
    assert index.leaf_ratio.min() == pytest.approx(up / down)


def test_tensor_parallel_stays_inside_a_server_and_data_parallel_crosses_the_fabric(starter):
    layout = resolve_layout(starter)
    index = FabricIndex.from_plan(starter.cluster)
    tp = index.group_links(layout, "tp")
    dp = index.group_links(layout, "dp")
    assert (tp.size, tp.n_nodes, tp.n_local) == (2, 1, 2)
    assert tp.local_bw == 450e9
    assert (dp.size, dp.n_nodes, dp.n_local) == (32, 8, 4)
    assert dp.out_bw == 400e9 / 8


def test_rail_optimized_keeps_data_parallel_rings_off_oversubscribed_spines():
    """Same-rank chips of a scalable unit share a rail leaf: oversubscription does not touch them."""
    common = ["cluster.nodes=32", "cluster.fabric.oversubscription=3", "parallelism.tp=8", "parallelism.dp=auto"]
    rail = scenario(*common, 'cluster.fabric.topology="rail-optimized"')
    fat = scenario(*common, 'cluster.fabric.topology="fat-tree"')
    rail_dp = FabricIndex.from_plan(rail.cluster).group_links(resolve_layout(rail), "dp")
    fat_dp = FabricIndex.from_plan(fat.cluster).group_links(resolve_layout(fat), "dp")
    assert not rail_dp.spans_leaf and rail_dp.out_bw == 50e9
    assert fat_dp.spans_leaf and fat_dp.out_bw < 50e9 * 0.5


def test_a_failed_spine_slows_traffic_that_crosses_leaves():
    s = scenario("cluster.nodes=16", 'cluster.fabric.topology="fat-tree"', "parallelism.tp=8", "parallelism.dp=auto")
    layout = resolve_layout(s)
    index = FabricIndex.from_plan(s.cluster)
    before = estimate_step(s, layout, step_links(index, layout))
    index.set_health("spine", 0, 0.0)
    after = estimate_step(s, layout, step_links(index, layout))
    assert index.leaf_ratio.min() < 1.0
    assert after.breakdown.dp_s > before.breakdown.dp_s
    assert after.step_time_s > before.step_time_s
    index.set_health("spine", 0, 1.0)
    assert estimate_step(s, layout, step_links(index, layout)).step_time_s == pytest.approx(before.step_time_s)


def test_editing_the_graph_changes_the_step_through_path_bottlenecks():
    """Removing half of a leaf's uplinks in the graph slows data parallelism; adding them back restores it."""
    s = scenario("cluster.nodes=16", 'cluster.fabric.topology="fat-tree"', "parallelism.tp=8", "parallelism.dp=auto")
    layout = resolve_layout(s)
    g = build_graph(s.cluster)
    base = estimate_step(s, layout, step_links(FabricIndex.from_graph(g), layout))
    uplinks = [(a, b, dict(e)) for a, b, e in g.edges("leaf0", data=True) if e["kind"] == "uplink"]
    g.remove_edges_from([(a, b) for a, b, _ in uplinks[: len(uplinks) // 2]])
    thinner = estimate_step(s, layout, step_links(FabricIndex.from_graph(g), layout))
    assert thinner.step_time_s > base.step_time_s
    g.add_edges_from(uplinks)
    again = estimate_step(s, layout, step_links(FabricIndex.from_graph(g), layout))
    assert again.step_time_s == pytest.approx(base.step_time_s)


def test_a_degraded_nic_makes_every_rank_wait():
    s = scenario()
    layout = resolve_layout(s)
    index = FabricIndex.from_plan(s.cluster)
    before = estimate_step(s, layout, step_links(index, layout)).breakdown.dp_s
    index.set_health("nic", 5, 0.25)
    assert index.group_links(layout, "dp").out_bw == pytest.approx(50e9 * 0.25)
    assert estimate_step(s, layout, step_links(index, layout)).breakdown.dp_s > before


def test_a_dead_leaf_blocks_the_job_instead_of_crashing(starter):
    layout = resolve_layout(starter)
    index = FabricIndex.from_plan(starter.cluster)
    index.set_health("leaf", 0, 0.0)
    result = estimate_step(starter, layout, step_links(index, layout))
    assert result.blocked and result.tokens_per_s == 0.0 and result.factors.cluster == 0.0
    assert result.as_dict()["step_time_s"] is None


def test_three_tier_plan_connects_100k_chips_with_128_port_switches():
    s = scenario(
        "cluster.nodes=12500", "cluster.fabric.tiers=3", 'cluster.fabric.technology="RoCE-400G"',
        "cluster.spare_nodes=212", "parallelism.tp=8", "parallelism.pp=16", "parallelism.dp=auto",
        "workload.global_batch=12288",
    )  # fmt: skip
    plan = plan_clos(s.cluster)
    assert plan.chips == 100_000 and plan.pods > 1
    index = FabricIndex.from_plan(s.cluster)
    assert index.nic.min() > 0 and index.pod_ratio.min() == 1.0


health_changes = st.lists(
    st.tuples(st.sampled_from(FabricIndex.HEALTH_KINDS), st.integers(0, 10**6), st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    min_size=1,
    max_size=12,
)


def recomputed(live: FabricIndex, cluster) -> FabricIndex:
    """A fresh index of the same cluster with the live one's health, computed in one pass."""
    fresh = FabricIndex.from_plan(cluster)
    for kind in FabricIndex.HEALTH_KINDS:
        fresh.health_of(kind)[:] = live.health_of(kind)
    fresh.recompute()
    return fresh


@settings(max_examples=25, deadline=None)
@given(health_changes)
def test_incremental_health_updates_match_a_full_recompute(changes):
    cluster = cluster_of("fat-tree", 3, 2.0, 64)
    live = FabricIndex.from_plan(cluster)
    for kind, i, h in changes:
        live.set_health(kind, i % len(live.health_of(kind)), h)
    fresh = recomputed(live, cluster)
    for name in ("nic", "scale_up", "leaf_ratio", "pod_ratio", "leaf_up", "leaf_down", "pod_up", "pod_down"):
        assert np.allclose(getattr(live, name), getattr(fresh, name)), name


def three_tier_job():
    """A TP4 PP4 job on 64 servers of a three-tier, 2:1 oversubscribed fabric, and its layout."""
    s = scenario("cluster.nodes=64", "cluster.fabric.tiers=3", "cluster.fabric.switch_radix=16",
                 "cluster.fabric.oversubscription=2", "parallelism.tp=4", "parallelism.pp=4", "parallelism.dp=auto")  # fmt: skip
    return s, resolve_layout(s)


@settings(max_examples=25, deadline=None)
@given(health_changes, st.sampled_from(["tp", "dp", "pp"]))
def test_group_bottlenecks_follow_health_changes_exactly(changes, dim):
    s, layout = three_tier_job()
    live = FabricIndex.from_plan(s.cluster)
    live.group_links(layout, dim)  # cache the group shape before the changes
    for kind, i, h in changes:
        live.set_health(kind, i % len(live.health_of(kind)), h)
        assert live.group_links(layout, dim) == recomputed(live, s.cluster).group_links(layout, dim)


@settings(max_examples=25, deadline=None)
@given(health_changes)
def test_sums_per_leaf_and_pod_are_exactly_those_of_a_loop_over_each(changes):
    cluster = cluster_of("rail-optimized", 3, 3.0, 48)
    live = FabricIndex.from_plan(cluster)
    for kind, i, h in changes:
        live.set_health(kind, i % len(live.health_of(kind)), h)
    leaves, pods = np.arange(live.plan.leaves), np.arange(live.plan.pods)
    loop = lambda members, keys, weight: np.array([weight(members.of(k)).sum() for k in keys])  # noqa: E731
    assert np.array_equal(live.leaf_down, loop(live._leaf_chips, leaves, live.nic.__getitem__))
    assert np.array_equal(live.leaf_up, loop(live._leaf_uplinks, leaves, live._uplink_weight))
    assert np.array_equal(live.pod_down, loop(live._pod_uplinks, pods, live._uplink_weight))
    assert np.array_equal(live.pod_up, loop(live._pod_corelinks, pods, live._core_weight))
    some = leaves[::3]
    assert np.array_equal(live._leaf_uplinks.sums(some, live._uplink_weight), live.leaf_up[some])


def test_health_cleared_gives_the_links_of_a_fresh_index_for_placements_already_cached():
    s, layout = three_tier_job()
    used = FabricIndex.from_plan(s.cluster)
    before = step_links(used, layout)
    for kind, i in (("spine", 1), ("nic", 5), ("uplink", 3), ("core", 0), ("leaf", 2)):
        used.set_health(kind, i, 0.5)
    assert step_links(used, layout) != before
    used.clear_health()
    assert used.placements_cached == 3  # tp, pp, dp (cp and ep are groups of one: nothing to place)
    assert step_links(used, layout) == before == step_links(FabricIndex.from_plan(s.cluster), layout)


def test_a_healthy_copy_keeps_the_placements_and_reads_its_own_health_only():
    s, layout = three_tier_job()
    shared = FabricIndex.from_plan(s.cluster)
    fresh = step_links(shared, layout)
    shared.set_health("spine", 1, 0.5)
    hurt = step_links(shared, layout)
    assert hurt != fresh
    copy = shared.healthy_copy()
    assert copy.placements_cached == shared.placements_cached == 3
    assert step_links(copy, layout) == fresh  # the copy starts healthy, though its placements were read hurt
    copy.set_health("nic", 5, 0.25)
    assert step_links(copy, layout) != fresh
    assert step_links(shared, layout) == hurt  # the copy's faults never reach the index it came from


def test_the_placement_cache_is_bounded_least_recently_used_first_and_can_be_emptied():
    s = scenario("cluster.nodes=64", "parallelism.tp=8", "parallelism.pp=1", "parallelism.dp=auto")
    index = FabricIndex.from_plan(s.cluster)
    index.placement_limit = 2
    layouts = [resolve_layout(s).with_dp(dp) for dp in (16, 32, 64)]  # dp groups of three sizes
    for layout in layouts:
        index.group_links(layout, "dp")
    assert index.placements_cached == 2
    assert [key[3] for key in index._shapes] == [32, 64]  # the first one asked about went first
    index.group_links(layouts[1], "dp")  # used again: now the most recent
    index.group_links(layouts[0], "dp")
    assert [key[3] for key in index._shapes] == [32, 16]
    index.forget_placements()
    assert index.placements_cached == 0
    assert index.group_links(layouts[0], "dp") == FabricIndex.from_plan(s.cluster).group_links(layouts[0], "dp")
