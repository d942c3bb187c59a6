"""A numpy view of the cluster that answers what the step physics asks, fast.

The index holds the fabric as arrays: each chip's NIC and scale-up bandwidth and its leaf, every
leaf-spine and spine-core link, and the health of every chip link and switch (1 healthy, 0 down,
between: degraded). From these it derives, per leaf, the share of its chips' traffic the uplinks can
carry (below 1 when oversubscribed or when spines or uplinks are down), the same per pod at the core
tier, and for each parallel group of a job the servers it spans and its bottleneck bandwidths.

Two ways to build it, which agree exactly (a test holds it):
- `FabricIndex.from_plan`: straight from the Clos plan, no graph (100,000 chips in milliseconds);
- `FabricIndex.from_graph`: by scanning a cluster graph, after the user edited it.
Health is runtime state (faults, repairs) and lives here, not in the graph.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..scenario.models import ClusterConfig
from ..scenario.parallel import ParallelLayout
from .graph import ClosPlan, plan_clos

if TYPE_CHECKING:  # networkx costs ~170 ms to import; only graph builds need it
    import networkx as nx

Dim = Literal["tp", "cp", "dp", "pp", "ep"]
_AXIS = {"pp": 0, "dp": 1, "cp": 2, "tp": 3}
_SIZE: dict[str, Callable[[ParallelLayout], int]] = {
    "tp": lambda x: x.tp, "cp": lambda x: x.cp, "pp": lambda x: x.pp, "dp": lambda x: x.dp, "ep": lambda x: x.ep,
}  # fmt: skip
STALE_LEAVES = 32
"""Past this many leaves changed since a placement's minima were read, they are read afresh in one pass
(minima do not depend on the order they are taken in: both ways give the same links)."""


@dataclass(frozen=True)
class GroupLinks:
    """Where one kind of parallel group sits, and its slowest member's bandwidths (bytes/s per direction)."""

    size: int  # ranks per group
    n_nodes: int  # servers the group spans (the most any group of this kind spans)
    n_local: int  # members per server
    local_bw: float  # scale-up bandwidth, slowest member (inf when n_local == 1)
    out_bw: float  # bandwidth leaving the server, slowest member, after leaf/pod sharing (inf when n_nodes == 1)
    spans_leaf: bool
    spans_pod: bool

    def resized(self, size: int, n_nodes: int) -> GroupLinks:
        """The same links for a group of another size (a data-parallel group that lost replicas)."""
        return GroupLinks(
            size, max(1, n_nodes), self.n_local, self.local_bw, self.out_bw, self.spans_leaf, self.spans_pod
        )


ALONE = GroupLinks(1, 1, 1, np.inf, np.inf, False, False)
"""The links of a group of one: nothing to cross."""


class _GroupShape:
    """Where the groups of one parallel dimension sit (independent of health), with per-leaf minima of the
    members' bandwidths that are refreshed only for the leaves a health change touched."""

    def __init__(self, groups: np.ndarray, n_nodes: int, n_local: int, chip_leaf: np.ndarray, leaf_pod: np.ndarray,
                 spans_leaf: np.ndarray, spans_pod: np.ndarray, buckets: int) -> None:  # fmt: skip
        self.size = groups.shape[1]
        self.n_nodes = n_nodes
        self.n_local = n_local
        self.any_leaf = bool(spans_leaf.any())
        self.any_pod = bool(spans_pod.any())
        chips = groups.ravel()
        leaf = chip_leaf[chips]
        bucket = np.where(leaf >= 0, leaf, buckets - 1)
        # a stable sort of small integers is a radix sort: linear in the chips
        order = np.argsort(bucket.astype(np.uint16) if buckets <= 1 << 16 else bucket, kind="stable")
        self.chips = chips[order]
        self.bucket = bucket[order]
        self.spans_leaf = np.repeat(spans_leaf, self.size)[order]
        self.spans_pod = np.repeat(spans_pod, self.size)[order]
        self.pod = leaf_pod[np.maximum(leaf[order], 0)]
        self.starts = np.searchsorted(self.bucket, np.arange(buckets + 1))
        self.out_min = np.full(buckets, np.inf)
        self.up_min = np.full(buckets, np.inf)
        self.at_version = -1

    def unread(self) -> _GroupShape:
        """The same placement (its arrays shared) with minima of its own, not yet read from any health."""
        fresh = copy.copy(self)
        fresh.out_min = np.full_like(self.out_min, np.inf)
        fresh.up_min = np.full_like(self.up_min, np.inf)
        fresh.at_version = -1
        return fresh


class _Members:
    """Index lists by key (a CSR layout): which edges or chips belong to each leaf, spine, pod."""

    def __init__(self, keys: np.ndarray, count: int) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        self.count = count
        self.order = np.argsort(keys, kind="stable")
        self.starts = (
            np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=count))])
            if len(keys)
            else np.zeros(count + 1, dtype=np.int64)
        )

    def of(self, key: int) -> np.ndarray:
        return self.order[self.starts[key] : self.starts[key + 1]]

    def sums(self, keys: np.ndarray, weight: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Σ weight(members) for each key, in one pass (0 for a key with no members).

        Each key's members are summed as one contiguous slice, as `weight(self.of(key)).sum()` would:
        the same additions in the same order, so the result does not depend on which keys are asked.
        """
        keys = np.asarray(keys, dtype=np.int64)
        out = np.zeros(len(keys))
        lo, hi = self.starts[keys], self.starts[keys + 1]
        size = hi - lo
        has = size > 0
        if not has.any():
            return out
        if len(keys) == self.count and (lo[1:] == hi[:-1]).all():
            members = self.order  # every key, in order: the members are the whole order array
        else:
            at = np.repeat(lo - np.concatenate([[0], np.cumsum(size)[:-1]]), size)
            members = self.order[at + np.arange(int(size.sum()))]
        firsts = np.concatenate([[0], np.cumsum(size)[:-1]])[has]
        out[has] = np.add.reduceat(weight(members), firsts)
        return out


def _ratio(up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Share of downlink demand the uplinks can carry, capped at 1 (1 where there is no demand)."""
    safe = np.where(down > 0, down, 1.0)
    return np.where(down > 0, np.minimum(1.0, up / safe), 1.0)


class FabricIndex:
    """Fabric arrays, health arrays, and the queries the step physics needs."""

    def __init__(
        self,
        plan: ClosPlan,
        *,
        nic_base: np.ndarray,
        up_base: np.ndarray,
        chip_leaf: np.ndarray,
        leaf_pod: np.ndarray,
        spine_pod: np.ndarray,
        uplinks: tuple[np.ndarray, np.ndarray, np.ndarray],
        corelinks: tuple[np.ndarray, np.ndarray, np.ndarray],
        cores: int,
    ) -> None:
        self.plan = plan
        n = plan.chips
        self.chips_per_node = plan.chips_per_node
        self.server = np.arange(n, dtype=np.int64) // plan.chips_per_node
        self.nic_base, self.up_base, self.leaf = nic_base, up_base, chip_leaf
        self.leaf_pod, self.spine_pod = leaf_pod, spine_pod
        self.up_leaf, self.up_spine, self.up_bw = uplinks
        self.core_spine, self.core_core, self.core_bw = corelinks
        # runtime health (1 healthy, 0 down)
        self.nic_health = np.ones(n)
        self.up_health = np.ones(n)
        self.leaf_health = np.ones(plan.leaves)
        self.spine_health = np.ones(len(spine_pod))
        self.core_health = np.ones(max(cores, 0))
        self.uplink_health = np.ones(len(self.up_bw))
        self.version = 0
        self.leaf_touched = np.zeros(plan.leaves + 1, dtype=np.int64)  # last version that changed a leaf's chips
        self._shapes: OrderedDict[tuple, _GroupShape] = OrderedDict()
        self._links: dict[tuple, GroupLinks] = {}
        self.placement_limit: int | None = None
        """At most this many group placements are kept (least recently used go first); None: no bound."""
        self._build_maps()
        self.recompute()

    # ------------------------------------------------------------ construction

    @classmethod
    def from_plan(cls, cluster: ClusterConfig) -> FabricIndex:
        """The index of a freshly built cluster, computed from the Clos plan without a graph."""
        plan = plan_clos(cluster)
        n, c, d = plan.chips, plan.chips_per_node, plan.leaf_down
        chip = np.arange(n, dtype=np.int64)
        leaf = (chip // c // d) * c + chip % c if plan.rail else chip // d
        port_bw = cluster.fabric.spec.port_gbps * 1e9 / 8
        up_leaf, up_spine, core_spine, core_core, core_bw = [], [], [], [], []
        for pod in range(plan.pods):
            leaves = np.arange(pod * plan.leaves_per_pod, min(plan.leaves, (pod + 1) * plan.leaves_per_pod))
            spines = np.arange(pod * plan.spines_per_pod, (pod + 1) * plan.spines_per_pod)
            up_leaf.append(np.repeat(leaves, len(spines)))
            up_spine.append(np.tile(spines, len(leaves)))
            if plan.tiers == 3:
                bundle = max(1, -(-len(leaves) // plan.cores_per_plane))
                k = np.arange(plan.spines_per_pod)
                q = np.arange(plan.cores_per_plane)
                core_spine.append(np.repeat(spines, len(q)))
                core_core.append((k[:, None] * plan.cores_per_plane + q[None, :]).ravel())
                core_bw.append(np.full(len(k) * len(q), port_bw * bundle))
        cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        uplinks = (cat(up_leaf, np.int64), cat(up_spine, np.int64), np.full(sum(map(len, up_leaf)), port_bw))
        corelinks = (cat(core_spine, np.int64), cat(core_core, np.int64), cat(core_bw, float))
        return cls(
            plan,
            nic_base=np.full(n, cluster.fabric.nic_bytes_per_s),
            up_base=np.full(n, cluster.link_spec.gb_s_per_dir * 1e9),
            chip_leaf=leaf,
            leaf_pod=np.arange(plan.leaves, dtype=np.int64) // plan.leaves_per_pod,
            spine_pod=np.arange(plan.pods * plan.spines_per_pod, dtype=np.int64) // plan.spines_per_pod,
            uplinks=uplinks,
            corelinks=corelinks,
            cores=plan.spines_per_pod * plan.cores_per_plane if plan.tiers == 3 else 0,
        )

    @classmethod
    def from_graph(cls, graph: nx.Graph) -> FabricIndex:
        """The index of a cluster graph, as edited: one pass over its nodes and edges."""
        plan: ClosPlan = graph.graph["plan"]
        n, c = plan.chips, plan.chips_per_node
        kind_of: dict[str, str] = {}
        index_of: dict[str, int] = {}
        leaf_pod = np.zeros(plan.leaves, dtype=np.int64)
        spine_pod: dict[int, int] = {}
        cores = 0
        for name, a in graph.nodes(data=True):
            kind = a["kind"]
            kind_of[name] = kind
            if kind == "chip":
                index_of[name] = a["server"] * c + a["local"]
            else:
                index_of[name] = a.get("index", 0)
                if kind == "leaf":
                    leaf_pod[a["index"]] = a.get("pod", 0)
                elif kind == "spine":
                    spine_pod[a["index"]] = a.get("pod", 0)
                elif kind == "core":
                    cores = max(cores, a["index"] + 1)
        nic = np.zeros(n)
        up = np.zeros(n)
        leaf = np.full(n, -1, dtype=np.int64)
        ul, us, ub, cs, cc, cb = [], [], [], [], [], []
        for a, b, e in graph.edges(data=True):
            kind, bw = e["kind"], e["bw"]
            if kind_of[a] > kind_of[b]:  # order the ends: chip < core < leaf < server < spine
                a, b = b, a
            if kind == "nic":
                i, li = index_of[a], index_of[b]
                nic[i] += bw
                leaf[i] = li if leaf[i] < 0 else min(leaf[i], li)
            elif kind == "scale_up":
                up[index_of[a]] += bw
            elif kind == "uplink":
                ul.append(index_of[a])
                us.append(index_of[b])
                ub.append(bw)
            elif kind == "core":
                cs.append(index_of[b])
                cc.append(index_of[a])
                cb.append(bw)
        spines = np.zeros(max(spine_pod, default=-1) + 1, dtype=np.int64)
        for i, pod in spine_pod.items():
            spines[i] = pod
        arr = lambda x, t: np.asarray(x, dtype=t)  # noqa: E731
        return cls(
            plan,
            nic_base=nic,
            up_base=up,
            chip_leaf=leaf,
            leaf_pod=leaf_pod,
            spine_pod=spines,
            uplinks=(arr(ul, np.int64), arr(us, np.int64), arr(ub, float)),
            corelinks=(arr(cs, np.int64), arr(cc, np.int64), arr(cb, float)),
            cores=cores,
        )

    # ------------------------------------------------------------ derived arrays

    def _build_maps(self) -> None:
        """Who touches whom, as index lists, so a health change updates only what it touches."""
        pods = max(1, self.plan.pods)
        self._leaf_chips = _Members(np.where(self.leaf >= 0, self.leaf, self.plan.leaves), self.plan.leaves + 1)
        self._leaf_uplinks = _Members(self.up_leaf, self.plan.leaves)
        self._spine_uplinks = _Members(self.up_spine, len(self.spine_pod))
        self._core_corelinks = _Members(self.core_core, len(self.core_health))
        self._pod_uplinks = _Members(self.spine_pod[self.up_spine] if len(self.up_spine) else self.up_spine, pods)
        self._pod_corelinks = _Members(
            self.spine_pod[self.core_spine] if len(self.core_spine) else self.core_spine, pods
        )

    def _uplink_weight(self, e: np.ndarray) -> np.ndarray:
        return (
            self.up_bw[e]
            * self.uplink_health[e]
            * self.spine_health[self.up_spine[e]]
            * self.leaf_health[self.up_leaf[e]]
        )

    def _core_weight(self, e: np.ndarray) -> np.ndarray:
        return self.core_bw[e] * self.spine_health[self.core_spine[e]] * self.core_health[self.core_core[e]]

    def recompute(self) -> None:
        """Derive effective bandwidths and sharing ratios from the base arrays and health, everywhere."""
        n_leaves, pods = self.plan.leaves, max(1, self.plan.pods)
        self.scale_up = self.up_base * self.up_health
        self.nic = np.zeros_like(self.nic_base)
        self.leaf_down, self.leaf_up, self.leaf_ratio = np.zeros(n_leaves), np.zeros(n_leaves), np.ones(n_leaves)
        self._refresh_chips(np.arange(len(self.nic_base)), np.arange(n_leaves))
        self._refresh_leaves(np.arange(n_leaves))
        self.pod_up, self.pod_down, self.pod_ratio = np.zeros(pods), np.zeros(pods), np.ones(pods)
        self._refresh_pods(np.arange(pods))
        self._touch()
        self.leaf_touched[:] = self.version
        for shape in self._shapes.values():  # every leaf changed: each placement's minima are read afresh at once
            shape.at_version = -1

    def _refresh_chips(self, chips: np.ndarray, leaves: np.ndarray | None = None) -> None:
        """The chips' NIC bandwidth, and the downlink demand of their leaves (`leaves`, when known)."""
        leaf = self.leaf[chips]
        ok = np.where(leaf >= 0, self.leaf_health[np.maximum(leaf, 0)], 0.0)
        self.nic[chips] = self.nic_base[chips] * self.nic_health[chips] * ok
        if leaves is None:
            leaves = np.unique(leaf[leaf >= 0])
        self.leaf_down[leaves] = self._leaf_chips.sums(leaves, self.nic.__getitem__)
        self._update_leaf_ratio(leaves)

    def _refresh_leaves(self, leaves: np.ndarray) -> None:
        if len(self.up_bw):
            self.leaf_up[leaves] = self._leaf_uplinks.sums(leaves, self._uplink_weight)
        self._update_leaf_ratio(leaves)

    def _update_leaf_ratio(self, leaves: np.ndarray) -> None:
        self.leaf_ratio[leaves] = _ratio(self.leaf_up[leaves], self.leaf_down[leaves]) if len(self.up_bw) else 1.0

    def _refresh_pods(self, pods: np.ndarray) -> None:
        if self.plan.tiers < 3 or not len(self.core_bw):
            return
        self.pod_down[pods] = self._pod_uplinks.sums(pods, self._uplink_weight)
        self.pod_up[pods] = self._pod_corelinks.sums(pods, self._core_weight)
        self.pod_ratio[pods] = _ratio(self.pod_up[pods], self.pod_down[pods])

    def _touch(self) -> None:
        self.version += 1
        self._links.clear()

    # ------------------------------------------------------------ health (faults and repairs)

    HEALTH_KINDS = ("nic", "scale_up", "leaf", "spine", "core", "uplink")

    def health_of(self, kind: str) -> np.ndarray:
        return {
            "nic": self.nic_health,
            "scale_up": self.up_health,
            "leaf": self.leaf_health,
            "spine": self.spine_health,
            "core": self.core_health,
            "uplink": self.uplink_health,
        }[kind]

    def set_health(self, kind: str, index: int, health: float) -> None:
        """Set the health of one component and update only what depends on it.

        kind: 'nic' or 'scale_up' (a chip's link, by chip index), 'leaf', 'spine', 'core', 'uplink'.
        """
        self.health_of(kind)[index] = health
        one = np.array([index])
        pods = np.zeros(0, dtype=np.int64)
        if kind in ("nic", "scale_up"):
            leaves = self.leaf[one]
            if kind == "nic":
                self._refresh_chips(one)
            else:
                self.scale_up[index] = self.up_base[index] * health
        elif kind == "leaf":
            leaves = one
            self._refresh_chips(self._leaf_chips.of(index))
            self._refresh_leaves(one)
            pods = np.unique(self.leaf_pod[one])
        elif kind == "spine":
            leaves = np.unique(self.up_leaf[self._spine_uplinks.of(index)])
            self._refresh_leaves(leaves)
            pods = self.spine_pod[one]
        elif kind == "core":
            leaves = one[:0]
            pods = np.unique(self.spine_pod[self.core_spine[self._core_corelinks.of(index)]])
        else:  # uplink
            leaves = self.up_leaf[one]
            self._refresh_leaves(leaves)
            pods = self.spine_pod[self.up_spine[one]]
        self._refresh_pods(pods)
        self._touch()
        self.leaf_touched[np.where(leaves >= 0, leaves, self.plan.leaves)] = self.version
        if self.plan.tiers == 3 and len(pods):
            self.leaf_touched[:-1][np.isin(self.leaf_pod, pods)] = self.version

    def clear_health(self) -> None:
        """Every link and switch healthy again (a new run on the same cluster)."""
        for kind in self.HEALTH_KINDS:
            self.health_of(kind)[:] = 1.0
        self.recompute()

    # ------------------------------------------------------------ queries

    def group_links(self, layout: ParallelLayout, dim: Dim, placement: np.ndarray | None = None) -> GroupLinks:
        """Bottleneck links of the `dim` groups of a job placed on `placement` (chip per rank; default in order).

        Where groups sit depends only on the placement and is cached; the bandwidths are re-read after
        every health change.
        """
        if _SIZE[dim](layout) == 1:
            return ALONE
        key = (layout.tp, layout.cp, layout.pp, layout.dp, layout.ep, dim,
               None if placement is None else placement.tobytes())  # fmt: skip
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = self._shape_of(self._groups(layout, dim, placement))
            self._bound_placements()
        else:
            self._shapes.move_to_end(key)
        found = self._links.get(key)
        if found is None:
            found = self._links[key] = self._bandwidth(shape)
        return found

    def healthy_copy(self) -> FabricIndex:
        """An index with this fabric (its arrays shared, never written) and health of its own, all healthy. The
        group placements held here come along (where a group sits does not depend on health; each copy reads
        its bandwidth minima afresh from its own health), so the copy does not place a job again."""
        own = FabricIndex(
            self.plan,
            nic_base=self.nic_base,
            up_base=self.up_base,
            chip_leaf=self.leaf,
            leaf_pod=self.leaf_pod,
            spine_pod=self.spine_pod,
            uplinks=(self.up_leaf, self.up_spine, self.up_bw),
            corelinks=(self.core_spine, self.core_core, self.core_bw),
            cores=len(self.core_health),
        )
        for key, shape in self._shapes.items():
            own._shapes[key] = shape.unread()
        return own

    # ------------------------------------------------------------ the placement cache

    @property
    def placements_cached(self) -> int:
        """Group placements held (one per parallel dimension of each layout asked about)."""
        return len(self._shapes)

    def forget_placements(self) -> None:
        """Drop every cached group placement and its links (they are computed again when asked for).

        A 16K-chip placement holds about 2 MB of arrays; a search that visits thousands of layouts drops
        them once it has their links."""
        self._shapes.clear()
        self._links.clear()

    def _bound_placements(self) -> None:
        limit = self.placement_limit
        while limit is not None and len(self._shapes) > max(1, limit):
            key, _ = self._shapes.popitem(last=False)
            self._links.pop(key, None)

    @staticmethod
    def _groups(layout: ParallelLayout, dim: Dim, placement: np.ndarray | None) -> np.ndarray:
        chips = np.arange(layout.chips, dtype=np.int64) if placement is None else placement
        grid = chips.reshape(layout.pp, layout.dp, layout.cp, layout.tp)
        if dim == "ep":  # expert parallelism is carved out of dp: consecutive replicas form an EP group
            return np.moveaxis(grid, 1, -1).reshape(-1, layout.ep)
        return np.moveaxis(grid, _AXIS[dim], -1).reshape(-1, grid.shape[_AXIS[dim]])

    def _shape_of(self, groups: np.ndarray) -> _GroupShape:
        size = groups.shape[1]
        servers = self.server[groups]
        if size == 1 or (servers.min(axis=1) == servers.max(axis=1)).all():
            worst = 1
        else:
            servers = np.sort(servers, axis=1)
            worst = int((1 + (np.diff(servers, axis=1) != 0).sum(axis=1)).max())
        leaves = np.maximum(self.leaf[groups], 0)
        spans_leaf = leaves.min(axis=1) != leaves.max(axis=1)
        pods = self.leaf_pod[leaves]
        spans_pod = pods.min(axis=1) != pods.max(axis=1)
        return _GroupShape(groups, worst, max(1, size // worst), self.leaf, self.leaf_pod, spans_leaf, spans_pod,
                           self.plan.leaves + 1)  # fmt: skip

    def _bandwidth(self, g: _GroupShape) -> GroupLinks:
        if g.size == 1:
            return ALONE
        stale: list[int] = []
        if g.at_version >= 0:
            stale = np.flatnonzero(self.leaf_touched > g.at_version).tolist()
        if g.at_version < 0 or len(stale) > STALE_LEAVES:
            self._bandwidth_all(g)
            stale = []
        for b in stale:
            lo, hi = g.starts[b], g.starts[b + 1]
            if lo == hi:
                continue
            chips = g.chips[lo:hi]
            if g.n_local > 1:
                g.up_min[b] = self.scale_up[chips].min()
            if g.n_nodes > 1:
                out = self.nic[chips]
                if g.any_leaf and b < self.plan.leaves:
                    out = np.where(g.spans_leaf[lo:hi], out * self.leaf_ratio[b], out)
                if g.any_pod:
                    out = np.where(g.spans_pod[lo:hi], out * self.pod_ratio[g.pod[lo:hi]], out)
                g.out_min[b] = out.min()
        g.at_version = self.version
        local_bw = float(g.up_min.min()) if g.n_local > 1 else np.inf
        out_bw = float(g.out_min.min()) if g.n_nodes > 1 else np.inf
        return GroupLinks(g.size, g.n_nodes, g.n_local, local_bw, out_bw, g.any_leaf, g.any_pod)

    def _bandwidth_all(self, g: _GroupShape) -> None:
        """Every leaf's minima at once (segmented reductions over the members sorted by leaf)."""
        firsts = g.starts[:-1][np.diff(g.starts) > 0]
        buckets = g.bucket[firsts]
        if g.n_local > 1:
            g.up_min[buckets] = np.minimum.reduceat(self.scale_up[g.chips], firsts)
        if g.n_nodes > 1:
            out = self.nic[g.chips]
            if g.any_leaf:
                ratio = np.append(self.leaf_ratio, 1.0)[g.bucket]
                out = np.where(g.spans_leaf, out * ratio, out)
            if g.any_pod:
                out = np.where(g.spans_pod, out * self.pod_ratio[g.pod], out)
            g.out_min[buckets] = np.minimum.reduceat(out, firsts)
