"""Where things go on a 2-D canvas, at four zoom levels: cluster → pod → rack → server.

A *pod* is a network pod (three tiers) or a scalable unit of leaves (two tiers); a *rack* is a run of
servers inside a pod. Each view is a Scene of boxes (things you can select, drag, zoom into) and wires
(links, or buses standing for a full mesh). Coordinates are character cells. A box the user dragged
keeps its place, saved as "<view>/<box>" in the scenario's [layout] table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from math import ceil
from typing import TYPE_CHECKING, Literal

from .graph import ClosPlan, chip_name, server_name

if TYPE_CHECKING:  # networkx costs ~170 ms to import; only graph builds need it
    import networkx as nx

Level = Literal["cluster", "pod", "rack", "server"]
LEVELS: tuple[Level, ...] = ("cluster", "pod", "rack", "server")


@dataclass(frozen=True)
class View:
    """A zoom level and its subject (pod, rack or server number)."""

    level: Level = "cluster"
    index: int = 0

    @property
    def key(self) -> str:
        return "cluster" if self.level == "cluster" else f"{self.level}{self.index}"


@dataclass(frozen=True)
class Box:
    id: str  # graph node ("n3", "n3.2", "leaf4") or group ("pod2", "rack7", "spines", "cores")
    kind: str  # pod | rack | server | chip | leaf | spine | core | spines | cores | switch
    label: str
    detail: str
    x: int
    y: int
    w: int
    h: int
    servers: tuple[int, int] = (0, 0)  # the servers it stands for, [lo, hi)
    zoom: View | None = None
    node: str | None = None  # the graph node it is, if any (links can be drawn to it)

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h

    @property
    def center(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2


@dataclass(frozen=True)
class Wire:
    """A link between two boxes, or a bus (a full mesh between two rows of boxes)."""

    ends: tuple[str, ...]  # box ids; a bus lists every box on it
    kind: str  # scale_up | nic | uplink | core | bus
    bus_y: int | None = None


@dataclass
class Scene:
    view: View
    title: str
    boxes: list[Box]
    wires: list[Wire]
    width: int = 0
    height: int = 0
    _by_id: dict[str, Box] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {b.id: b for b in self.boxes}
        self.width = max((b.x + b.w for b in self.boxes), default=0) + 2
        self.height = max((b.y + b.h for b in self.boxes), default=0) + 1

    def box(self, box_id: str) -> Box | None:
        return self._by_id.get(box_id)

    def box_at(self, x: int, y: int) -> Box | None:
        for b in reversed(self.boxes):  # drawn last, on top
            if b.contains(x, y):
                return b
        return None


class Hierarchy:
    """Pods and racks of a cluster, from its Clos plan."""

    def __init__(self, plan: ClosPlan, servers_per_rack: int | None = None) -> None:
        self.plan = plan
        c = plan.chips_per_node
        if plan.tiers == 3:
            per_leaf = plan.leaf_down if plan.rail else max(1, plan.leaf_down // c)
            units = plan.leaves_per_pod // c if plan.rail else plan.leaves_per_pod
            self.pod_size = max(1, units * per_leaf)
        else:
            self.pod_size = plan.servers_per_unit()
        self.pods = ceil(plan.servers / self.pod_size)
        self.rack_size = servers_per_rack or max(1, 32 // c)
        self.racks_per_pod = ceil(self.pod_size / self.rack_size)

    def pod_servers(self, pod: int) -> tuple[int, int]:
        lo = pod * self.pod_size
        return lo, min(self.plan.servers, lo + self.pod_size)

    def rack_servers(self, rack: int) -> tuple[int, int]:
        pod, k = divmod(rack, self.racks_per_pod)
        lo = pod * self.pod_size + k * self.rack_size
        return lo, min(self.pod_servers(pod)[1], lo + self.rack_size)

    def racks_of_pod(self, pod: int) -> range:
        lo, hi = self.pod_servers(pod)
        return range(pod * self.racks_per_pod, pod * self.racks_per_pod + ceil((hi - lo) / self.rack_size))

    def pod_of_server(self, server: int) -> int:
        return server // self.pod_size

    def rack_of_server(self, server: int) -> int:
        pod = self.pod_of_server(server)
        return pod * self.racks_per_pod + (server - pod * self.pod_size) // self.rack_size

    def leaves_of_pod(self, pod: int) -> range:
        p = self.plan
        if p.tiers == 3:
            return range(pod * p.leaves_per_pod, min(p.leaves, (pod + 1) * p.leaves_per_pod))
        lo, hi = self.pod_servers(pod)
        leaves = sorted({p.leaf_of(s, j) for s in (lo, hi - 1) for j in range(p.chips_per_node)})
        return range(leaves[0], leaves[-1] + 1)

    def spines_of_pod(self, pod: int) -> range:
        p = self.plan
        if p.tiers == 3:
            return range(pod * p.spines_per_pod, (pod + 1) * p.spines_per_pod)
        return range(p.spines_per_pod)

    def parent(self, view: View) -> View | None:
        if view.level == "cluster":
            return None
        if view.level == "pod":
            return View("cluster")
        if view.level == "rack":
            return View("pod", view.index // self.racks_per_pod)
        return View("rack", self.rack_of_server(view.index))

    def breadcrumb(self, view: View) -> list[View]:
        out = [view]
        while (up := self.parent(out[0])) is not None:
            out.insert(0, up)
        return out


def _row(ids: Sequence[tuple[str, str, str, str | None]], y: int, w: int, h: int, x0: int = 2, per_row: int = 12,
         gap: int = 1) -> list[Box]:  # fmt: skip
    """Boxes in rows: (id, kind, label, node) items, `per_row` to a row."""
    boxes = []
    for i, (box_id, kind, label, node) in enumerate(ids):
        r, c = divmod(i, per_row)
        boxes.append(Box(box_id, kind, label, "", x0 + c * (w + gap), y + r * (h + 1), w, h, node=node))
    return boxes


def _rows_height(n: int, per_row: int, h: int) -> int:
    return ceil(n / per_row) * (h + 1) if n else 0


def scene(view: View, hier: Hierarchy, graph: nx.Graph | None = None, positions: Mapping[str, tuple[int, int]] = {},
          width: int = 100) -> Scene:  # fmt: skip
    """The boxes and wires of one view. Rack and server views read links from the graph when given."""
    per_row = max(1, (width - 4) // 11)
    if view.level == "cluster":
        sc = _cluster(hier, per_row)
    elif view.level == "pod":
        sc = _pod(view.index, hier, per_row)
    elif view.level == "rack":
        sc = _rack(view.index, hier, graph, per_row)
    else:
        sc = _server(view.index, hier, graph, per_row)
    moved = []
    for b in sc.boxes:
        pos = positions.get(f"{view.key}/{b.id}")
        moved.append(replace(b, x=max(0, pos[0]), y=max(0, pos[1])) if pos else b)
    return Scene(view, sc.title, moved, sc.wires)


def _cluster(hier: Hierarchy, per_row: int) -> Scene:
    p = hier.plan
    boxes: list[Box] = []
    spines = p.pods * p.spines_per_pod
    boxes.append(Box("spines", "spines", f"spines ×{spines}", f"{p.leaves} leaves below", 2, 1, 20, 3))
    if p.tiers == 3:
        cores = p.spines_per_pod * p.cores_per_plane
        boxes.append(Box("cores", "cores", f"cores ×{cores}", f"{p.spines_per_pod} planes", 24, 1, 20, 3))
    y = 6
    cols = max(1, min(hier.pods, per_row // 2))
    for pod in range(hier.pods):
        lo, hi = hier.pod_servers(pod)
        r, c = divmod(pod, cols)
        boxes.append(Box(f"pod{pod}", "pod", f"pod {pod}", f"{hi - lo} servers", 2 + c * 22, y + r * 6, 20, 4,
                         servers=(lo, hi), zoom=View("pod", pod)))  # fmt: skip
    pods = [b.id for b in boxes if b.kind == "pod"]
    wires = [Wire(("spines", *pods), "bus", bus_y=y - 2)]
    if p.tiers == 3:
        wires.append(Wire(("spines", "cores"), "core"))
    return Scene(View("cluster"), f"cluster: {p.servers:,} servers, {p.chips:,} chips", boxes, wires)


def _switches(kind: str, members: range, y: int, per_row: int) -> list[Box]:
    """A row of switch boxes, or, when they would take more than two rows, one strip with a cell per switch."""
    if len(members) <= 2 * per_row:
        return _row([(f"{kind}{i}", kind, f"{kind}{i}", f"{kind}{i}") for i in members], y, 10, 3, per_row=per_row)
    width = min(per_row * 11 - 1, len(members) + 2)
    height = 3 + ceil(len(members) / (width - 2))
    plural = {"leaf": "leaves"}.get(kind, kind + "s")
    label = f"{plural} {kind}{members[0]}-{kind}{members[-1]} ({len(members)})"
    return [
        Box(f"{kind}-strip", f"{kind}_strip", label, "", 2, y, width, height, servers=(members[0], members[-1] + 1))
    ]


def _pod(pod: int, hier: Hierarchy, per_row: int) -> Scene:
    boxes: list[Box] = []
    boxes += _switches("spine", hier.spines_of_pod(pod), 1, per_row)
    y = max(b.y + b.h for b in boxes) + 3
    leaf_boxes = _switches("leaf", hier.leaves_of_pod(pod), y, per_row)
    boxes += leaf_boxes
    y = max(b.y + b.h for b in leaf_boxes) + 3
    racks = list(hier.racks_of_pod(pod))
    cols = max(1, per_row // 2)
    for k, rack in enumerate(racks):
        lo, hi = hier.rack_servers(rack)
        r, c = divmod(k, cols)
        boxes.append(Box(f"rack{rack}", "rack", f"rack {rack}", f"{server_name(lo)}-{server_name(hi - 1)}",
                         2 + c * 22, y + r * (hier.rack_size + 5), 20, hier.rack_size + 4, servers=(lo, hi),
                         zoom=View("rack", rack)))  # fmt: skip
    lo, hi = hier.pod_servers(pod)
    wires = [
        Wire(tuple(b.id for b in boxes if b.kind.startswith(("spine", "leaf"))), "bus", bus_y=leaf_boxes[0].y - 2),
        Wire(tuple(b.id for b in boxes if b.kind.startswith("leaf") or b.kind == "rack"), "bus", bus_y=y - 2),
    ]
    return Scene(View("pod", pod), f"pod {pod}: servers {server_name(lo)}-{server_name(hi - 1)}", boxes, wires)


def _server_links(server: int, hier: Hierarchy, graph: nx.Graph | None) -> list[tuple[str, str, str]]:
    """(chip, other end, kind) of every link of the server's chips: from the graph, or from the plan."""
    p = hier.plan
    out = []
    for j in range(p.chips_per_node):
        chip = chip_name(server, j)
        if graph is not None and chip in graph:
            out += [(chip, other, e["kind"]) for other, e in graph.adj[chip].items()]
        else:
            out += [(chip, server_name(server), "scale_up"), (chip, f"leaf{p.leaf_of(server, j)}", "nic")]
    return out


def _rack(rack: int, hier: Hierarchy, graph: nx.Graph | None, per_row: int) -> Scene:
    p = hier.plan
    lo, hi = hier.rack_servers(rack)
    links = [link for s in range(lo, hi) for link in _server_links(s, hier, graph)]
    leaves = sorted({o for _, o, k in links if k == "nic"}, key=lambda n: int(n[4:]))
    boxes = _row([(n, "leaf", n, n) for n in leaves], 1, 10, 3, per_row=per_row)
    y = 1 + _rows_height(len(leaves), per_row, 3) + 3
    w = max(24, 2 * p.chips_per_node + 8)
    cols = max(1, (per_row * 11) // (w + 2))
    for k, s in enumerate(range(lo, hi)):
        r, c = divmod(k, cols)
        boxes.append(Box(server_name(s), "server", server_name(s), f"{p.chips_per_node} chips", 2 + c * (w + 2),
                         y + r * 6, w, 4, servers=(s, s + 1), zoom=View("server", s), node=server_name(s)))  # fmt: skip
    pairs = {(chip.split(".")[0], other) for chip, other, kind in links if kind == "nic"}
    servers = [server_name(s) for s in range(lo, hi)]
    if len(pairs) == len(servers) * len(leaves) and len(leaves) > 1:  # every server on every leaf: draw a bus
        wires = [Wire((*leaves, *servers), "bus", bus_y=y - 2)]
    else:
        wires = [Wire(pair, "nic") for pair in sorted(pairs)]
    return Scene(View("rack", rack), f"rack {rack}: {server_name(lo)}-{server_name(hi - 1)}", boxes, wires)


def _server(server: int, hier: Hierarchy, graph: nx.Graph | None, per_row: int) -> Scene:
    p = hier.plan
    links = _server_links(server, hier, graph)
    leaves = sorted({o for _, o, k in links if k == "nic"}, key=lambda n: int(n[4:]))
    boxes = _row([(n, "leaf", n, n) for n in leaves], 1, 10, 3, per_row=per_row)
    y = 1 + _rows_height(len(leaves), per_row, 3) + 3
    chips = [
        (chip_name(server, j), "chip", chip_name(server, j), chip_name(server, j)) for j in range(p.chips_per_node)
    ]
    chip_boxes = _row(chips, y, 10, 3, per_row=per_row)
    boxes += chip_boxes
    y += _rows_height(len(chips), per_row, 3) + 2
    name = server_name(server)
    width = max(b.x + b.w for b in chip_boxes) - 2
    boxes.append(Box(name, "switch", f"{name} scale-up switch", "", 2, y, max(24, width), 3,
                     servers=(server, server + 1), node=name))  # fmt: skip
    wires = [Wire((chip, other), kind) for chip, other, kind in links if kind in ("nic", "scale_up")]
    return Scene(View("server", server), f"server {name}: {p.chips_per_node} chips", boxes, wires)
