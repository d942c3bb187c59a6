"""The cluster as a networkx graph: servers with their chips, scale-up links, NICs, and a folded Clos.

Node names are short and readable because people see them: servers ``n12``, chips ``n12.3``,
switches ``leaf7``, ``spine3``, ``core40``. Node attribute ``kind`` is one of
chip, server, leaf, spine, core. Edge attributes:

- ``kind``: scale_up (chip - its server's scale-up switch), nic (chip - leaf), uplink (leaf - spine),
  core (spine - core)
- ``bw``: bytes/s per direction of the whole bundle
- ``links``: physical links in the bundle
- ``health``: 1.0 healthy, in (0, 1) degraded, 0.0 failed (absent means 1.0)

A server node stands for the server's scale-up switch (NVSwitch, MTLink bridge): every chip of the
server has one scale_up edge to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import TYPE_CHECKING

from ..scenario.models import ClusterConfig

if TYPE_CHECKING:  # networkx costs ~170 ms to import; only graph builds need it
    import networkx as nx

NODE_KINDS = ("chip", "server", "leaf", "spine", "core")
LINK_KINDS = {
    # kind: (endpoint kinds, what it is)
    "scale_up": (("chip", "server"), "chip to its server's scale-up switch"),
    "nic": (("chip", "leaf"), "chip NIC to a leaf switch"),
    "uplink": (("leaf", "spine"), "leaf to spine"),
    "core": (("spine", "core"), "spine to core"),
}


def server_name(i: int) -> str:
    return f"n{i}"


def chip_name(server: int, local: int) -> str:
    return f"n{server}.{local}"


def link_kind(a_kind: str, b_kind: str) -> str | None:
    """The kind of link that may join two node kinds (either order), or None."""
    for kind, (ends, _) in LINK_KINDS.items():
        if {a_kind, b_kind} == set(ends) and (a_kind != b_kind or ends[0] == ends[1]):
            return kind
    return None


@dataclass(frozen=True)
class ClosPlan:
    """How many of each switch a cluster needs and how chips map to leaves."""

    servers: int
    chips_per_node: int
    leaf_down: int
    leaves: int
    spines_per_pod: int
    leaves_per_pod: int
    pods: int
    cores_per_plane: int
    rail: bool
    tiers: int

    @property
    def chips(self) -> int:
        return self.servers * self.chips_per_node

    def leaf_of(self, server: int, local: int) -> int:
        if self.rail:
            return (server // self.leaf_down) * self.chips_per_node + local
        return (server * self.chips_per_node + local) // self.leaf_down

    def pod_of_leaf(self, leaf: int) -> int:
        return leaf // self.leaves_per_pod

    def servers_per_unit(self) -> int:
        """Servers under one group of leaves (a scalable unit): the natural 'pod' for display."""
        if self.rail:
            return self.leaf_down
        return max(1, self.leaf_down // self.chips_per_node)


def plan_clos(cluster: ClusterConfig) -> ClosPlan:
    fabric = cluster.fabric
    servers, c = cluster.nodes, cluster.chips_per_node
    down, up = fabric.leaf_ports()
    rail = fabric.topology == "rail-optimized"
    chips = servers * c
    leaves = ceil(servers / down) * c if rail else ceil(chips / down)
    attached = min(down, servers) if rail else min(down, chips)
    # Spines: enough leaf uplinks for the attached ports at the oversubscription ratio.
    spines = max(1, min(up, ceil(attached / fabric.oversubscription)))
    if fabric.tiers == 2:
        return ClosPlan(servers, c, down, leaves, spines, leaves, 1, 0, rail, 2)
    leaves_per_pod = max(1, fabric.radix // 2)
    if rail:  # keep scalable units whole inside a pod
        leaves_per_pod = max(c, leaves_per_pod // c * c)
    pods = ceil(leaves / leaves_per_pod)
    in_pod = min(leaves, leaves_per_pod)
    cores_per_plane = max(1, ceil(in_pod * pods / fabric.radix))
    return ClosPlan(servers, c, down, leaves, spines, leaves_per_pod, pods, cores_per_plane, rail, 3)


def build_graph(cluster: ClusterConfig) -> nx.Graph:
    """Build the cluster graph for a cluster section. Deterministic: same config, same graph."""
    import networkx as nx

    plan = plan_clos(cluster)
    fabric = cluster.fabric
    link = cluster.link_spec
    port_bw = fabric.spec.port_gbps * 1e9 / 8
    nic_bw = fabric.nic_bytes_per_s
    up_bw = link.gb_s_per_dir * 1e9

    g: nx.Graph = nx.Graph(plan=plan)
    c = plan.chips_per_node
    g.add_nodes_from((server_name(s), {"kind": "server", "index": s}) for s in range(plan.servers))
    g.add_nodes_from(
        (chip_name(s, j), {"kind": "chip", "server": s, "local": j}) for s in range(plan.servers) for j in range(c)
    )
    g.add_nodes_from((f"leaf{i}", {"kind": "leaf", "index": i, "pod": plan.pod_of_leaf(i)}) for i in range(plan.leaves))
    g.add_edges_from(
        (chip_name(s, j), server_name(s), {"kind": "scale_up", "bw": up_bw, "links": 1})
        for s in range(plan.servers)
        for j in range(c)
    )
    g.add_edges_from(
        (chip_name(s, j), f"leaf{plan.leaf_of(s, j)}", {"kind": "nic", "bw": nic_bw, "links": 1})
        for s in range(plan.servers)
        for j in range(c)
    )
    # Spines: in 2 tiers one set for all leaves; in 3 tiers one set per pod.
    spine = 0
    for pod in range(plan.pods):
        pod_leaves = range(pod * plan.leaves_per_pod, min(plan.leaves, (pod + 1) * plan.leaves_per_pod))
        names = [f"spine{spine + k}" for k in range(plan.spines_per_pod)]
        g.add_nodes_from(
            (n, {"kind": "spine", "index": spine + k, "pod": pod, "plane": k}) for k, n in enumerate(names)
        )
        g.add_edges_from(
            (f"leaf{leaf}", n, {"kind": "uplink", "bw": port_bw, "links": 1}) for leaf in pod_leaves for n in names
        )
        if plan.tiers == 3:
            bundle = max(1, ceil(len(pod_leaves) / plan.cores_per_plane))
            for k, n in enumerate(names):
                g.add_edges_from(
                    (
                        n,
                        f"core{k * plan.cores_per_plane + q}",
                        {"kind": "core", "bw": port_bw * bundle, "links": bundle},
                    )
                    for q in range(plan.cores_per_plane)
                )
        spine += plan.spines_per_pod
    if plan.tiers == 3:
        for k in range(plan.spines_per_pod):
            for q in range(plan.cores_per_plane):
                i = k * plan.cores_per_plane + q
                g.nodes[f"core{i}"].update(kind="core", index=i, plane=k)
    return g
