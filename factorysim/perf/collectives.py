"""Collective times on the topology, nccl-tests conventions.

Ring all-reduce of S bytes over n ranks: 2(n-1)/n·S/B + 2(n-1)·α. Reduce-scatter and all-gather:
(n-1)/n·S/B + (n-1)·α each. B is the achieved bus bandwidth of the group's slowest member, α the
latency of one algorithm step: across servers NCCL's own figure for a network step of a ring with the Simple
protocol, the one bandwidth-bound collectives run (14 µs, the catalog's fabric latency_us). So the bus bandwidth
a ring achieves, (n-1)/n·S / time, falls as each rank's chunk S/n shrinks: by the time a chunk's bytes take
less than a step's latency, the ring is latency-bound (an MPT-1B layer gathered over 512 H100, 195 KB a rank,
reaches 13 GB/s of the 330 a large message reaches).

Groups that span servers: an all-reduce runs hierarchically (NCCL's trees and NVLS trees do): reduce-scatter
inside the server over the scale-up link, the cross-server all-reduce on S/n_local per rank over each rank's
own NIC, then all-gather inside the server. A reduce-scatter or all-gather has no tree in NCCL: it runs as one
ring through every rank, whose hops inside a server and across servers carry their data at the same time, and
each of whose n-1 steps waits for its slowest hop, the one across servers. So it takes
max(inside, across) for the bandwidth, the inside part being (n-1)/n·S·(n_local-1)/n_local over the scale-up
link and the across part (n-1)/n·S/n_local over each rank's NIC, plus (n-1)·α_across for the latency: at 512
ranks on 64 servers, 511 network steps where the hierarchical view would count 63 (this is why data-parallel
groups of many ranks per server lose time as they grow, and why FSDP's per-layer gathers and reductions over
512 GPUs cost small models more than large ones). A published measurement agrees: all_gather_perf of 2 GB on
256 H100 reaches 200 GB/s bus bandwidth (NVIDIA/nccl#1218), the model 212. The share beyond what the NIC
needs is counted inside.

In-network (in-switch, or near-memory) reduction, where the scale-up link or the fabric supports it
(catalog flag) and the scenario turns it on: an all-reduce sends each byte once and gets the sum back
by multicast, S/B' + 6·α (a reduce-load, a multicast store and a completion barrier, each a round trip
through the switch), with B' the achieved in-network bandwidth (on 8 H100, NVLink SHARP reaches
~480 GB/s bus bandwidth where rings reach ~370: 30 % faster, not 2×). For one 8-rank scale-up domain
that is n/(2(n-1)) = 57 % of the ring's traffic and 6/14 = 43 % of its latency: the seed's "about half
the traffic, about 60 % less latency". A reduce-scatter or all-gather gains no bandwidth in the network
(each rank still sends or receives (n-1)/n·S; NCCL's maintainers say as much of NVLink SHARP and NCCL-tests
measure its reduce-scatter at the ring's bus bandwidth) but finishes in 3 steps (half an all-reduce's) instead
of n-1. In-network collectives across servers run hierarchically (NVLS trees, SHARP).

Every function returns (inside-server seconds, across-servers seconds) so that node efficiency and
cluster efficiency can each take their share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..topology.index import GroupLinks

Split = tuple[float, float]
ZERO: Split = (0.0, 0.0)
IN_NETWORK_STEPS = 6
"""Latency steps of an in-network all-reduce: three round trips through the switch."""
IN_NETWORK_HALF_STEPS = 3
"""Latency steps of an in-network reduce-scatter or all-gather (half an all-reduce)."""


@dataclass(frozen=True)
class LinkRates:
    """Achieved bandwidths (bytes/s) and per-step latencies (s) inside and across servers for one group,
    and whether each side reduces in the network (supported by the hardware and turned on)."""

    group: GroupLinks
    up_efficiency: float
    out_efficiency: float
    up_latency: float
    out_latency: float
    up_in_network: bool = False
    out_in_network: bool = False
    up_in_network_efficiency: float = 0.0
    out_in_network_efficiency: float = 0.0

    @property
    def up_bw(self) -> float:
        return self.group.local_bw * self.up_efficiency

    @property
    def out_bw(self) -> float:
        return self.group.out_bw * self.out_efficiency

    @property
    def up_inr_bw(self) -> float:
        return self.group.local_bw * self.up_in_network_efficiency

    @property
    def out_inr_bw(self) -> float:
        return self.group.out_bw * self.out_in_network_efficiency


def _ring(n: int, size: float, bw: float, latency: float, passes: float) -> float:
    """`passes` = 1 for reduce-scatter or all-gather, 2 for all-reduce."""
    if n <= 1 or size <= 0:
        return 0.0
    if bw <= 0:
        return float("inf")
    return passes * ((n - 1) / n * size / bw + (n - 1) * latency)


def _in_network(n: int, size: float, bw: float, latency: float) -> float:
    """One pass through the switch: each rank sends (or receives) `size` bytes once."""
    if n <= 1 or size <= 0:
        return 0.0
    return size / bw + IN_NETWORK_STEPS * latency if bw > 0 else float("inf")


def _all_reduce_flat(n: int, size: float, bw: float, lat: float, inr: bool, inr_bw: float) -> float:
    ring = _ring(n, size, bw, lat, 2.0)
    return min(ring, _in_network(n, size, inr_bw, lat)) if inr else ring


def _half_flat(n: int, size: float, bw: float, lat: float, inr: bool, inr_bw: float) -> float:
    """Reduce-scatter (or all-gather) of `size` bytes in a flat group: with in-network reduction the ring's
    bandwidth and IN_NETWORK_HALF_STEPS steps, or an in-network all-reduce of which each rank keeps its shard,
    whichever is faster."""
    ring = _ring(n, size, bw, lat, 1.0)
    if not inr or n <= 1 or size <= 0:
        return ring
    fewer_steps = ring - (n - 1 - IN_NETWORK_HALF_STEPS) * lat if n - 1 > IN_NETWORK_HALF_STEPS else ring
    return min(fewer_steps, _in_network(n, size, inr_bw, lat))


def all_reduce(size: float, r: LinkRates) -> Split:
    g = r.group
    if g.n_nodes <= 1:
        return _all_reduce_flat(g.n_local, size, r.up_bw, r.up_latency, r.up_in_network, r.up_inr_bw), 0.0
    inside = 2 * _half_flat(g.n_local, size, r.up_bw, r.up_latency, r.up_in_network, r.up_inr_bw)
    shard = size / g.n_local
    across = _all_reduce_flat(g.n_nodes, shard, r.out_bw, r.out_latency, r.out_in_network, r.out_inr_bw)
    return inside, across


def reduce_scatter(size: float, r: LinkRates) -> Split:
    """Also the time of an all-gather of the same total size."""
    g = r.group
    if g.n_nodes > 1 and g.n_local > 1 and not (r.up_in_network or r.out_in_network):
        return _flat_ring_across(size, r)
    inside = _half_flat(g.n_local, size, r.up_bw, r.up_latency, r.up_in_network, r.up_inr_bw)
    across = _half_flat(g.n_nodes, size / g.n_local, r.out_bw, r.out_latency, r.out_in_network, r.out_inr_bw)
    return inside, across


def _flat_ring_across(size: float, r: LinkRates) -> Split:
    """One ring through n_local ranks on each of n_nodes servers (NCCL's reduce-scatter and all-gather)."""
    g = r.group
    if size <= 0:
        return ZERO
    n = g.n_nodes * g.n_local
    share = (n - 1) / n * size
    if r.out_bw <= 0 or r.up_bw <= 0:  # a dead link: the ring never finishes
        return (math.inf if r.up_bw <= 0 else 0.0), (math.inf if r.out_bw <= 0 else 0.0)
    inside = share * (g.n_local - 1) / g.n_local / r.up_bw
    across = share / g.n_local / r.out_bw
    return max(0.0, inside - across), across + (n - 1) * max(r.out_latency, r.up_latency)


all_gather = reduce_scatter


def all_to_all(size: float, r: LinkRates) -> Split:
    """Each rank sends (n-1)/n of `size`: the share for ranks in its own server over scale-up, the rest over its NIC."""
    g = r.group
    n = g.size
    if n <= 1 or size <= 0:
        return ZERO
    local_share = (g.n_local - 1) / n * size
    remote_share = (n - g.n_local) / n * size
    inside = _send(local_share, r.up_bw, (g.n_local - 1) * r.up_latency) if g.n_local > 1 else 0.0
    across = _send(remote_share, r.out_bw, (g.n_nodes - 1) * r.out_latency) if g.n_nodes > 1 else 0.0
    return inside, across


def _send(size: float, bw: float, latency: float) -> float:
    return size / bw + latency if bw > 0 else float("inf")


def p2p(size: float, r: LinkRates) -> Split:
    """One point-to-point send between neighbouring ranks of the group."""
    g = r.group
    if g.size <= 1 or size <= 0:
        return ZERO
    if g.n_nodes > 1:
        return 0.0, _send(size, r.out_bw, r.out_latency)
    return _send(size, r.up_bw, r.up_latency), 0.0


def in_pieces(op, size: float, r: LinkRates, pieces: int) -> Split:
    """A collective of `size` bytes run as `pieces` equal collectives (gradient buckets, one per layer): the
    same bandwidth time, `pieces` times the latency."""
    pieces = max(1, pieces)
    return scale(op(size / pieces, r), pieces)


def scale(split: Split, k: float) -> Split:
    return split[0] * k, split[1] * k


def add(*splits: Split) -> Split:
    return sum(s[0] for s in splits), sum(s[1] for s in splits)
