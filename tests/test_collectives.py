"""Each collective on hand-built link groups against its closed form, inside and across servers."""

from __future__ import annotations

import math

import pytest

from factorysim.perf import collectives as coll
from factorysim.perf.collectives import IN_NETWORK_HALF_STEPS, IN_NETWORK_STEPS, LinkRates
from factorysim.scenario.catalog import catalog
from factorysim.topology import GroupLinks

UP, OUT = 400e9, 50e9  # bytes/s per direction: scale-up link, NIC
A_UP, A_OUT = 2e-6, 5e-6  # latency per step
S = 1e9  # bytes


def group(n_nodes: int, n_local: int, up: float = UP, out: float = OUT) -> GroupLinks:
    return GroupLinks(
        size=n_nodes * n_local,
        n_nodes=n_nodes,
        n_local=n_local,
        local_bw=up if n_local > 1 else math.inf,
        out_bw=out if n_nodes > 1 else math.inf,
        spans_leaf=n_nodes > 1,
        spans_pod=False,
    )


def rates(g: GroupLinks, inr_up: bool = False, inr_out: bool = False) -> LinkRates:
    # efficiencies 0.8 (scale-up) and 0.9 (fabric); in-network 0.6 and 0.7
    return LinkRates(g, 0.8, 0.9, A_UP, A_OUT, inr_up, inr_out, 0.6, 0.7)


def test_ring_all_reduce_inside_one_server():
    inside, across = coll.all_reduce(S, rates(group(1, 8)))
    assert inside == pytest.approx(2 * 7 / 8 * S / (0.8 * UP) + 2 * 7 * A_UP, rel=1e-12)
    assert across == 0.0


def test_hierarchical_all_reduce_splits_inside_and_across():
    inside, across = coll.all_reduce(S, rates(group(16, 8)))
    # reduce-scatter + all-gather inside the server, all-reduce of S/8 across 16 servers
    assert inside == pytest.approx(2 * (7 / 8 * S / (0.8 * UP) + 7 * A_UP), rel=1e-12)
    assert across == pytest.approx(2 * 15 / 16 * (S / 8) / (0.9 * OUT) + 2 * 15 * A_OUT, rel=1e-12)


def test_all_reduce_across_servers_with_one_rank_each():
    inside, across = coll.all_reduce(S, rates(group(32, 1)))
    assert inside == 0.0
    assert across == pytest.approx(2 * 31 / 32 * S / (0.9 * OUT) + 2 * 31 * A_OUT, rel=1e-12)


@pytest.mark.parametrize("op", [coll.reduce_scatter, coll.all_gather])
def test_reduce_scatter_and_all_gather_inside_a_server_or_with_one_rank_per_server_are_half_a_ring(op):
    inside, across = op(S, rates(group(1, 8)))
    assert inside == pytest.approx(7 / 8 * S / (0.8 * UP) + 7 * A_UP, rel=1e-12) and across == 0.0
    inside, across = op(S, rates(group(16, 1)))
    assert inside == 0.0 and across == pytest.approx(15 / 16 * S / (0.9 * OUT) + 15 * A_OUT, rel=1e-12)


@pytest.mark.parametrize("op", [coll.reduce_scatter, coll.all_gather])
def test_reduce_scatter_across_servers_is_one_ring_paced_by_its_network_hops(op):
    n = 32  # 8 ranks on each of 4 servers
    inside, across = op(S, rates(group(4, 8)))
    nic = (n - 1) / n * S / 8 / (0.9 * OUT)  # each rank's NIC carries 1/8 of the ring's traffic
    nvlink = (n - 1) / n * S * 7 / 8 / (0.8 * UP)  # the hops inside the server, at the same time
    assert nic > nvlink
    assert inside == 0.0
    assert across == pytest.approx(nic + (n - 1) * A_OUT, rel=1e-12)  # 31 steps, each waits for a network hop
    # a slow scale-up link: the hops inside the server are the bottleneck, their excess counted inside
    slow = rates(group(4, 8, up=20e9))
    inside, across = op(S, slow)
    nvlink = (n - 1) / n * S * 7 / 8 / (0.8 * 20e9)
    assert inside == pytest.approx(nvlink - nic, rel=1e-12)
    assert across == pytest.approx(nic + (n - 1) * A_OUT, rel=1e-12)


def test_reduce_scatter_latency_grows_with_every_rank_of_the_ring():
    small = 1e3  # latency-bound
    few, many = coll.reduce_scatter(small, rates(group(16, 8))), coll.reduce_scatter(small, rates(group(64, 8)))
    assert sum(many) - sum(few) == pytest.approx((511 - 127) * A_OUT, rel=1e-3)


def test_all_to_all_sends_the_local_share_over_scale_up_and_the_rest_over_the_nic():
    inside, across = coll.all_to_all(S, rates(group(4, 8)))
    n = 32
    assert inside == pytest.approx(7 / n * S / (0.8 * UP) + 7 * A_UP, rel=1e-12)
    assert across == pytest.approx(24 / n * S / (0.9 * OUT) + 3 * A_OUT, rel=1e-12)


def test_point_to_point_uses_the_nic_when_the_group_spans_servers():
    assert coll.p2p(S, rates(group(1, 8))) == pytest.approx((S / (0.8 * UP) + A_UP, 0.0))
    assert coll.p2p(S, rates(group(8, 1))) == pytest.approx((0.0, S / (0.9 * OUT) + A_OUT))


def test_a_group_of_one_moves_nothing_and_a_dead_link_never_finishes():
    one = rates(group(1, 1))
    for op in (coll.all_reduce, coll.reduce_scatter, coll.all_to_all, coll.p2p):
        assert op(S, one) == (0.0, 0.0)
    dead = rates(group(4, 1, out=0.0))
    assert coll.all_reduce(S, dead)[1] == math.inf
    assert coll.p2p(S, dead)[1] == math.inf


# ---------------------------------------------------------------- in-network reduction


def test_in_network_all_reduce_sends_each_byte_once_inside_and_across():
    inside, _ = coll.all_reduce(S, rates(group(1, 8), inr_up=True))
    assert inside == pytest.approx(S / (0.6 * UP) + IN_NETWORK_STEPS * A_UP, rel=1e-12)
    _, across = coll.all_reduce(S, rates(group(16, 1), inr_out=True))
    assert across == pytest.approx(S / (0.7 * OUT) + IN_NETWORK_STEPS * A_OUT, rel=1e-12)


def test_the_seeds_claim_half_the_traffic_and_sixty_percent_less_latency_in_one_domain():
    """An all-reduce in one 8-chip scale-up domain: bytes each chip sends and latency steps, ring vs in-network."""
    n = 8
    ring, inr = rates(group(1, n)), rates(group(1, n), inr_up=True)
    # at equal link efficiency, traffic is the bandwidth term of a huge message
    same = LinkRates(group(1, n), 1.0, 1.0, 0.0, 0.0, True, False, 1.0, 1.0)
    big = 1e12
    traffic = coll.all_reduce(big, same)[0] / coll.all_reduce(big, LinkRates(group(1, n), 1.0, 1.0, 0.0, 0.0))[0]
    assert traffic == pytest.approx(n / (2 * (n - 1)))  # 57 %: about half the traffic
    assert 0.4 <= 1 - traffic <= 0.6
    tiny = 1.0  # a one-byte all-reduce is all latency
    latency = coll.all_reduce(tiny, inr)[0] / coll.all_reduce(tiny, ring)[0]
    assert latency == pytest.approx(IN_NETWORK_STEPS / (2 * (n - 1)), rel=1e-6)  # 43 %
    assert 0.5 <= 1 - latency <= 0.7


def test_in_network_reduce_scatter_keeps_the_rings_bandwidth_and_takes_three_steps():
    ring, inr = rates(group(1, 8)), rates(group(1, 8), inr_up=True)
    big = 1e10
    assert coll.reduce_scatter(big, inr)[0] == pytest.approx(7 / 8 * big / (0.8 * UP) + 3 * A_UP, rel=1e-12)
    assert coll.reduce_scatter(big, ring)[0] - coll.reduce_scatter(big, inr)[0] == pytest.approx(4 * A_UP, rel=1e-6)
    assert IN_NETWORK_HALF_STEPS == IN_NETWORK_STEPS / 2
    # or an in-network all-reduce of which each rank keeps its shard, when that is faster (a slow ring)
    slow_ring = LinkRates(group(1, 8), 0.1, 0.9, A_UP, A_OUT, True, False, 0.6, 0.7)
    assert coll.reduce_scatter(big, slow_ring)[0] == pytest.approx(big / (0.6 * UP) + IN_NETWORK_STEPS * A_UP)
    # across servers with SHARP: hierarchical, each side in three steps
    inside, across = coll.reduce_scatter(big, rates(group(4, 8), inr_up=True, inr_out=True))
    assert inside == pytest.approx(7 / 8 * big / (0.8 * UP) + 3 * A_UP, rel=1e-12)
    assert across == pytest.approx(
        3 / 4 * big / 8 / (0.9 * OUT) + 3 * A_OUT, rel=1e-12
    )  # 4 servers: 3 steps either way


def test_nvlink_sharp_reaches_the_bus_bandwidth_nccl_measures_on_8_h100():
    """NCCL all-reduce bus bandwidth on 8 H100 (NVIDIA GTC24 S62129 slide 12; nccl-tests): rings ~370 GB/s,
    NVLink SHARP ~480 GB/s. Bus bandwidth = 2(n-1)/n x size / time."""
    from factorysim.scenario import catalog

    link = catalog().links["NVLink4"]
    g = group(1, 8, up=link.gb_s_per_dir * 1e9)
    r = LinkRates(g, link.efficiency, 1.0, 0.0, 0.0, True, False, link.in_network_efficiency, 1.0)
    size = 8e9
    ring = LinkRates(g, link.efficiency, 1.0, 0.0, 0.0)
    bus = 2 * 7 / 8 * size
    assert bus / coll.all_reduce(size, ring)[0] / 1e9 == pytest.approx(370, rel=0.05)
    assert bus / coll.all_reduce(size, r)[0] / 1e9 == pytest.approx(480, rel=0.05)


# ------------------------------------------------------------------ a ring through many servers, catalog figures


def h100_rates(n_nodes: int) -> LinkRates:
    """8 H100 a server over NVLink4, one 400 Gb/s InfiniBand NDR NIC each, as the catalog gives them."""
    cat = catalog()
    link, fabric = cat.links["NVLink4"], cat.fabrics["InfiniBand-NDR"]
    g = group(n_nodes, 8, up=link.gb_s_per_dir * 1e9, out=fabric.port_gbps / 8 * 1e9)
    return LinkRates(g, link.efficiency, fabric.efficiency, link.latency_us * 1e-6, fabric.latency_us * 1e-6)


def bus_bandwidth(size: float, r: LinkRates) -> float:
    """nccl-tests' bus bandwidth of an all-gather of `size` bytes in total: (n-1)/n · size / time."""
    n = r.group.size
    return (n - 1) / n * size / sum(coll.all_gather(size, r))


def test_a_network_step_costs_what_nccl_counts_for_one():
    """NCCL's cost model (src/graph/tuning.cc) counts 14 us for one network step of a ring with the Simple protocol."""
    assert catalog().fabrics["InfiniBand-NDR"].latency_us == 14.0


def test_the_published_all_gather_on_256_h100_is_reproduced():
    """all_gather_perf, 2 GB on 32 servers of 8 H100: 200 GB/s bus bandwidth (NVIDIA/nccl#1218). The model gives the
    bytes 5.9 ms at 340 GB/s and the 255 ring steps 14 us each: 9.4 ms, 212 GB/s."""
    r = h100_rates(32)
    n = 256
    share = (n - 1) / n * 2e9
    assert sum(coll.all_gather(2e9, r)) == pytest.approx(share / 8 / (0.85 * 50e9) + (n - 1) * 14e-6, rel=1e-12)
    assert bus_bandwidth(2e9, r) == pytest.approx(200e9, rel=0.10)


def test_a_rings_bus_bandwidth_falls_as_each_ranks_chunk_shrinks():
    """FSDP gathers one layer at a time: an MPT-1B layer is 100 MB in BF16, 195 KB a rank on 512 GPUs, where the
    ring's 511 steps cost more than its bytes. More ranks for the same layer, or a smaller layer, mean less bandwidth."""
    r512 = h100_rates(64)
    peak = 8 * 0.85 * 50e9  # large messages: eight NICs a server
    layer_1b, layer_70b = 100e6, 1.7e9
    by_size = [bus_bandwidth(s, r512) for s in (layer_1b, layer_70b, 100e9)]
    assert by_size == sorted(by_size) and by_size[-1] == pytest.approx(peak, rel=0.05)
    assert by_size[0] < 0.15 * peak  # MPT-1B's layer on 512 GPUs: latency-bound
    by_ranks = [bus_bandwidth(layer_1b, h100_rates(servers)) for servers in (8, 16, 64)]
    assert by_ranks == sorted(by_ranks, reverse=True)
    assert by_ranks[0] / by_ranks[-1] > 3  # 63 steps against 511
