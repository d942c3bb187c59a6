"""Edits to the cluster graph (add, remove, thin or widen a link), and the index a scenario runs on.

An edit changes the graph; the step physics sees it only through the index built from that graph,
so removing an uplink or adding one moves step time through the path bottlenecks, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..scenario.errors import Problem, ScenarioError
from ..scenario.models import ClusterConfig, TopologyEdit
from .graph import LINK_KINDS, build_graph, link_kind
from .index import FabricIndex

if TYPE_CHECKING:  # networkx costs ~170 ms to import; only graph builds need it
    import networkx as nx


def default_bandwidth(cluster: ClusterConfig, kind: str) -> float:
    """Bytes/s per direction of a new link of this kind."""
    if kind == "scale_up":
        return cluster.link_spec.gb_s_per_dir * 1e9
    if kind == "nic":
        return cluster.fabric.nic_bytes_per_s
    return cluster.fabric.spec.port_gbps * 1e9 / 8


def apply_edit(graph: nx.Graph, cluster: ClusterConfig, edit: TopologyEdit, path: str = "edit") -> None:
    """Apply one edit in place, or raise a ScenarioError naming what is wrong."""
    for end in ("a", "b"):
        name = getattr(edit, end)
        if name not in graph:
            raise ScenarioError([Problem(f"{path}.{end}", f'no node "{name}" in this cluster')])
    if edit.a == edit.b:
        raise ScenarioError([Problem(f"{path}.b", "a link needs two different nodes")])
    kinds = graph.nodes[edit.a]["kind"], graph.nodes[edit.b]["kind"]
    kind = link_kind(*kinds)
    if kind is None:
        allowed = "; ".join(f"{a}-{b} ({what})" for a, b, what in ((*ends, what) for ends, what in LINK_KINDS.values()))
        raise ScenarioError([Problem(path, f"no link joins a {kinds[0]} and a {kinds[1]}; links are: {allowed}")])
    exists = graph.has_edge(edit.a, edit.b)
    if edit.op == "add":
        bw = edit.gbps * 1e9 / 8 if edit.gbps else default_bandwidth(cluster, kind)
        if exists:
            e = graph.edges[edit.a, edit.b]
            e["bw"] += bw
            e["links"] = e.get("links", 1) + 1
        else:
            graph.add_edge(edit.a, edit.b, kind=kind, bw=bw, links=1)
        return
    if not exists:
        raise ScenarioError([Problem(path, f"there is no link between {edit.a} and {edit.b} to {edit.op}")])
    if edit.op == "remove":
        graph.remove_edge(edit.a, edit.b)
    else:
        if not edit.gbps:
            raise ScenarioError([Problem(f"{path}.gbps", '"set" needs the new bandwidth in Gb/s')])
        graph.edges[edit.a, edit.b]["bw"] = edit.gbps * 1e9 / 8


def apply_edits(graph: nx.Graph, cluster: ClusterConfig, edits: Sequence[TopologyEdit]) -> None:
    problems: list[Problem] = []
    for i, edit in enumerate(edits):
        try:
            apply_edit(graph, cluster, edit, f"topology.edits[{i}]")
        except ScenarioError as exc:
            problems += exc.problems
    if problems:
        raise ScenarioError(problems)


def cluster_graph(cluster: ClusterConfig, edits: Sequence[TopologyEdit] = ()) -> nx.Graph:
    graph = build_graph(cluster)
    apply_edits(graph, cluster, edits)
    return graph


def index_for(cluster: ClusterConfig, edits: Sequence[TopologyEdit] = ()) -> FabricIndex:
    """The index a scenario runs on: straight from the Clos plan, or from the edited graph."""
    if not edits:
        return FabricIndex.from_plan(cluster)
    return FabricIndex.from_graph(cluster_graph(cluster, edits))
