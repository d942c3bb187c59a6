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

from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np

from ..scenario.checks import ParallelLayout
from ..scenario.models import ClusterConfig
from .graph import ClosPlan, plan_clos

Dim = Literal["tp", "cp", "dp", "pp", "ep"]
_AXIS = {"pp": 0, "dp": 1, "cp": 2, "tp": 3}


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

    @property
    def inside_server(self) -> bool:
        return self.n_nodes <= 1

    def resized(self, size: int, n_nodes: int) -> GroupLinks:
        """The same links for a group of another size (a data-parallel group that lost replicas)."""
        return GroupLinks(size, max(1, n_nodes), self.n_local, self.local_bw, self.out_bw, self.spans_leaf, self.spans_pod)


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
        graph: nx.Graph | None = None,
    ) -> None:
        self.plan = plan
        self.graph = graph
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
        self.speed = np.ones(n)  # compute speed of each chip (stragglers < 1); set by the engine
        self.version = 0
        self._cache: dict[tuple, GroupLinks] = {}
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
            graph=graph,
        )

    # ------------------------------------------------------------ derived arrays

    def recompute(self) -> None:
        """Derive effective bandwidths and sharing ratios from the base arrays and health (vectorized)."""
        leaf_ok = np.where(self.leaf >= 0, self.leaf_health[np.maximum(self.leaf, 0)], 0.0)
        self.nic = self.nic_base * self.nic_health * leaf_ok
        self.scale_up = self.up_base * self.up_health
        n_leaves = self.plan.leaves
        down = np.bincount(np.maximum(self.leaf, 0), weights=self.nic * (self.leaf >= 0), minlength=n_leaves)
        up_w = (
            self.up_bw * self.uplink_health * self.spine_health[self.up_spine] * self.leaf_health[self.up_leaf]
            if len(self.up_bw)
            else np.zeros(0)
        )
        up = np.bincount(self.up_leaf, weights=up_w, minlength=n_leaves) if len(up_w) else np.zeros(n_leaves)
        self.leaf_ratio = _ratio(up, down)
        pods = max(1, self.plan.pods)
        if self.plan.tiers == 3 and len(self.core_bw):
            pod_down = np.bincount(self.spine_pod[self.up_spine], weights=up_w, minlength=pods)
            core_w = self.core_bw * self.spine_health[self.core_spine] * self.core_health[self.core_core]
            pod_up = np.bincount(self.spine_pod[self.core_spine], weights=core_w, minlength=pods)
            self.pod_ratio = _ratio(pod_up, pod_down)
        else:
            self.pod_ratio = np.ones(pods)
        self.version += 1
        self._cache.clear()

    # ------------------------------------------------------------ health (faults and repairs)

    def set_health(self, kind: str, index: int, health: float) -> None:
        """Set the health of one component: 'nic' or 'scale_up' (chip index), 'leaf', 'spine', 'core', 'uplink'."""
        target = {
            "nic": self.nic_health,
            "scale_up": self.up_health,
            "leaf": self.leaf_health,
            "spine": self.spine_health,
            "core": self.core_health,
            "uplink": self.uplink_health,
        }[kind]
        target[index] = health
        self.recompute()

    def set_speed(self, chip: int, speed: float) -> None:
        self.speed[chip] = speed
        self.version += 1
        self._cache.clear()

    # ------------------------------------------------------------ queries

    def group_links(self, layout: ParallelLayout, dim: Dim, placement: np.ndarray | None = None) -> GroupLinks:
        """Bottleneck links of the `dim` groups of a job placed on `placement` (chip per rank; default in order)."""
        key = (layout.tp, layout.cp, layout.pp, layout.dp, layout.ep, dim, self.version,
               None if placement is None else placement.tobytes())  # fmt: skip
        found = self._cache.get(key)
        if found is not None:
            return found
        chips = np.arange(layout.chips, dtype=np.int64) if placement is None else placement
        grid = chips.reshape(layout.pp, layout.dp, layout.cp, layout.tp)
        if dim == "ep":  # expert parallelism is carved out of dp: consecutive replicas form an EP group
            groups = np.moveaxis(grid, 1, -1).reshape(-1, layout.ep)
        else:
            groups = np.moveaxis(grid, _AXIS[dim], -1).reshape(-1, grid.shape[_AXIS[dim]])
        found = self._links_of(groups)
        self._cache[key] = found
        return found

    def _links_of(self, groups: np.ndarray) -> GroupLinks:
        size = groups.shape[1]
        if size == 1:
            return GroupLinks(1, 1, 1, np.inf, np.inf, False, False)
        servers = self.server[groups]
        if (servers.min(axis=1) == servers.max(axis=1)).all():
            worst = 1
        else:
            servers = np.sort(servers, axis=1)
            worst = int((1 + (np.diff(servers, axis=1) != 0).sum(axis=1)).max())
        n_local = max(1, size // worst)
        local_bw = float(self.scale_up[groups].min()) if n_local > 1 else np.inf
        leaves = np.maximum(self.leaf[groups], 0)
        spans_leaf = leaves.min(axis=1) != leaves.max(axis=1)
        pods = self.leaf_pod[leaves]
        spans_pod = pods.min(axis=1) != pods.max(axis=1)
        if worst > 1:
            out = self.nic[groups]
            out = np.where(spans_leaf[:, None], out * self.leaf_ratio[leaves], out)
            out = np.where(spans_pod[:, None], out * self.pod_ratio[pods], out)
            out_bw = float(out.min())
        else:
            out_bw = np.inf
        return GroupLinks(size, worst, n_local, local_bw, out_bw, bool(spans_leaf.any()), bool(spans_pod.any()))

    def slowest_speed(self, layout: ParallelLayout, placement: np.ndarray | None = None) -> float:
        """Compute speed of the slowest chip in the job (synchronous training waits for it)."""
        chips = slice(0, layout.chips) if placement is None else placement
        return float(self.speed[chips].min())
