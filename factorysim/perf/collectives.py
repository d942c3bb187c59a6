"""Collective times on the topology, nccl-tests conventions.

Ring all-reduce of S bytes over n ranks: 2(n-1)/n·S/B + 2(n-1)·α. Reduce-scatter and all-gather:
(n-1)/n·S/B + (n-1)·α each. With in-network (or near-memory) reduction an all-reduce moves each byte
over the link about once: S/B + 2·α. Groups that span servers run hierarchically: reduce-scatter
inside the server over the scale-up link, the cross-server collective on S/n_local per rank over each
rank's own NIC, then all-gather inside the server.

Every function returns (inside-server seconds, across-servers seconds) so that node efficiency and
cluster efficiency can each take their share.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..topology.index import GroupLinks

Split = tuple[float, float]
ZERO: Split = (0.0, 0.0)


@dataclass(frozen=True)
class LinkRates:
    """Achieved bus bandwidth (bytes/s) and per-step latency (s) inside and across servers for one group."""

    group: GroupLinks
    up_efficiency: float
    out_efficiency: float
    up_latency: float
    out_latency: float

    @property
    def up_bw(self) -> float:
        return self.group.local_bw * self.up_efficiency

    @property
    def out_bw(self) -> float:
        return self.group.out_bw * self.out_efficiency


def _ring_phase(n: int, size: float, bw: float, latency: float, passes: float) -> float:
    """`passes` = 1 for reduce-scatter or all-gather, 2 for all-reduce."""
    if n <= 1 or size <= 0:
        return 0.0
    if bw <= 0:
        return float("inf")
    return passes * ((n - 1) / n * size / bw + (n - 1) * latency)


def _in_network(size: float, bw: float, latency: float) -> float:
    if size <= 0:
        return 0.0
    return size / bw + 2 * latency if bw > 0 else float("inf")


def all_reduce(size: float, r: LinkRates, in_network: bool = False) -> Split:
    g = r.group
    if g.n_nodes <= 1:
        if in_network and g.n_local > 1:  # near-memory reduction in the scale-up domain
            return _in_network(size, r.up_bw, r.up_latency), 0.0
        return _ring_phase(g.n_local, size, r.up_bw, r.up_latency, 2.0), 0.0
    inside = _ring_phase(g.n_local, size, r.up_bw, r.up_latency, 2.0)
    shard = size / g.n_local
    if in_network:
        across = _in_network(shard, r.out_bw, r.out_latency)
    else:
        across = _ring_phase(g.n_nodes, shard, r.out_bw, r.out_latency, 2.0)
    return inside, across


def reduce_scatter(size: float, r: LinkRates) -> Split:
    """Also the time of an all-gather of the same total size."""
    g = r.group
    inside = _ring_phase(g.n_local, size, r.up_bw, r.up_latency, 1.0)
    across = _ring_phase(g.n_nodes, size / g.n_local, r.out_bw, r.out_latency, 1.0)
    return inside, across


all_gather = reduce_scatter


def all_to_all(size: float, r: LinkRates) -> Split:
    """Each rank sends (n-1)/n of `size`: the share for ranks in its own server over scale-up, the rest over its NIC."""
    g = r.group
    n = g.size
    if n <= 1 or size <= 0:
        return ZERO
    local_share = (g.n_local - 1) / n * size
    remote_share = (n - g.n_local) / n * size
    inside = local_share / r.up_bw + (g.n_local - 1) * r.up_latency if g.n_local > 1 else 0.0
    across = remote_share / r.out_bw + r.out_latency * (g.n_nodes - 1) if g.n_nodes > 1 else 0.0
    if g.n_nodes > 1 and r.out_bw <= 0:
        across = float("inf")
    return inside, across


def p2p(size: float, r: LinkRates) -> Split:
    """One point-to-point send between neighbouring ranks of the group."""
    g = r.group
    if g.size <= 1 or size <= 0:
        return ZERO
    if g.n_nodes > 1:
        return 0.0, (size / r.out_bw + r.out_latency) if r.out_bw > 0 else float("inf")
    return (size / r.up_bw + r.up_latency) if r.up_bw > 0 else float("inf"), 0.0


def scale(split: Split, k: float) -> Split:
    return split[0] * k, split[1] * k


def add(*splits: Split) -> Split:
    return sum(s[0] for s in splits), sum(s[1] for s in splits)
