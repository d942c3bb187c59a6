"""A sandbox session: one scenario, its cluster graph, a running simulation, and the edits a player makes.

Headless: the Textual app drives it, tests drive it directly. Every change goes through the scenario
models (edits that would make the scenario invalid are refused with the reason, the old scenario stays),
and every change that alters physics restarts the run on the new scenario, so the step physics, the
factors and the run all follow at once, and the run's log always replays headless.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import check_scenario
from .challenge import ChallengeStatus, budget_problems, edit_refusal
from .challenge import status as challenge_status
from .engine import STATUS, Fault, Replayer, Simulation
from .engine.faults import parse_target
from .perf import StepEstimate
from .scenario import Problem, Scenario, ScenarioError, save_scenario, scenario_data, validate_scenario
from .scenario.models import ChallengeConfig, TopologyEdit
from .topology import plan_clos
from .topology.edits import apply_edit, cluster_graph
from .topology.index import FabricIndex
from .topology.layout import Box, Hierarchy, Scene, View, scene

if TYPE_CHECKING:  # networkx costs ~170 ms to import; only graph builds need it
    import networkx as nx

STATE_ORDER = ("failed", "in_repair", "degraded", "joining", "idle", "spare", "ok")
"""Worst first: a group shows the worst state of its members."""


@dataclass(frozen=True)
class EditResult:
    ok: bool
    problems: tuple[Problem, ...] = ()

    @property
    def message(self) -> str:
        return "; ".join(str(p) for p in self.problems)


class Sandbox:
    """Scenario + graph + simulation, and the operations a player has."""

    def __init__(
        self,
        scenario: Scenario,
        path: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        replayer: Replayer | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.seed = seed
        self.replayer = replayer  # a recorded run: shown at any time, never changed
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.dirty = False  # unsaved changes
        self._undo: list[tuple[str, Scenario]] = []  # (what was done, the scenario before it)
        self._redo: list[tuple[str, Scenario]] = []
        self._set(scenario)

    # ------------------------------------------------------------ building

    def _same_fabric(self, scenario: Scenario) -> bool:
        old = getattr(self, "scenario", None)
        return old is not None and old.cluster == scenario.cluster and old.topology == scenario.topology

    def _set(self, scenario: Scenario, graph: nx.Graph | None = None) -> None:
        """Take a validated scenario. `graph`: its cluster graph with the edits applied, if already built."""
        if graph is None and self._same_fabric(scenario):
            self.scenario = scenario  # the same cluster: keep the graph and the index (runs never write to it)
            self.reset()
            return
        self.scenario = scenario
        self.plan = plan_clos(scenario.cluster)
        self.hierarchy = Hierarchy(self.plan)
        self._graph = graph
        if graph is None and scenario.topology.edits:
            self._graph = cluster_graph(scenario.cluster, scenario.topology.edits)
        self.index = (
            FabricIndex.from_graph(self._graph) if self._graph is not None else FabricIndex.from_plan(scenario.cluster)
        )
        self.reset()

    @property
    def graph(self) -> nx.Graph:
        """The cluster graph, built on first use (a 100,000-chip graph takes a second or two)."""
        if self._graph is None:
            self._graph = cluster_graph(self.scenario.cluster, self.scenario.topology.edits)
        return self._graph

    @property
    def has_graph(self) -> bool:
        return self._graph is not None

    @classmethod
    def from_log(cls, path: str | os.PathLike[str]) -> Sandbox:
        """A read-only session on a recorded run."""
        replayer = Replayer(path)
        return cls(replayer.scenario, seed=replayer.seed, replayer=replayer)

    def reset(self) -> None:
        """Start the run again at t = 0 on the current scenario (a recording: back to its start)."""
        if self.replayer is not None:
            self.sim = self.replayer.seek(0.0) if self.replayer.sim.now > 0 else self.replayer.sim
        else:
            self.sim = Simulation(self.scenario, seed=self.seed, index=self.index, record=True)
        if self._relay not in self.sim.listeners:
            self.sim.listeners.append(self._relay)

    def seek(self, t: float) -> bool:
        """A recording: show it at sim time t. True when the run was simulated again from the start."""
        assert self.replayer is not None, "seek is for recorded runs"
        old = self.sim
        self.sim = self.replayer.seek(t)
        if self.sim is not old:
            self.sim.listeners.append(self._relay)
        return self.sim is not old

    @property
    def read_only(self) -> bool:
        return self.replayer is not None

    def _relay(self, record: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(record)

    @property
    def step(self) -> StepEstimate:
        """The step physics of the current scenario (fault-free, full width)."""
        return self.sim.base

    # ------------------------------------------------------------ edits (validated by the scenario models)

    @property
    def challenge(self) -> ChallengeConfig | None:
        return self.scenario.challenge

    def status(self) -> ChallengeStatus | None:
        """How the run stands against the challenge, if this is one."""
        return challenge_status(self.challenge, self.sim) if self.challenge is not None else None

    def _refused(self, path: str) -> EditResult | None:
        if self.read_only:
            return EditResult(False, (Problem(path, "this is a recorded run: it can be watched, not changed"),))
        reason = edit_refusal(self.challenge, path) if self.challenge is not None else None
        return EditResult(False, (Problem(path, reason),)) if reason else None

    def _try(self, data: dict[str, Any], graph: nx.Graph | None = None, what: str = "edit") -> EditResult:
        try:
            candidate = validate_scenario(data)
        except ScenarioError as exc:
            return EditResult(False, tuple(exc.problems))
        problems = check_scenario(candidate, edits_checked=graph is not None or self._same_fabric(candidate))
        if candidate.challenge is not None:
            problems += budget_problems(candidate.challenge, candidate)
        if problems:
            return EditResult(False, tuple(problems))
        self._remember(what)
        self._set(candidate, graph)
        self.dirty = True
        self._relay({"t": 0.0, "kind": "edit", "target": "scenario", "effect": {"restart": True}})
        return EditResult(True)

    def edit(self, key_path: str, value: Any) -> EditResult:
        """Set one scenario key (dotted path) to a value; refused edits keep the old scenario."""
        if (refused := self._refused(key_path)) is not None:
            return refused
        data = scenario_data(self.scenario)
        node = data
        parts = key_path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                return EditResult(False, (Problem(key_path, "is not a table"),))
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
        return self._try(data, what=f"{key_path} = {value!r}" if value is not None else f"{key_path} unset")

    def value(self, key_path: str) -> Any:
        node: Any = scenario_data(self.scenario)
        for part in key_path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def _edit_topology(self, edit: TopologyEdit) -> EditResult:
        if (refused := self._refused("topology")) is not None:
            return refused
        graph = self.graph.copy()
        try:
            apply_edit(graph, self.scenario.cluster, edit, "link")
        except ScenarioError as exc:
            return EditResult(False, tuple(exc.problems))
        data = scenario_data(self.scenario)
        data.setdefault("topology", {}).setdefault("edits", []).append(edit.model_dump(exclude_none=True))
        what = {"add": "link added", "remove": "link removed"}.get(edit.op) or f"link set to {edit.gbps:g} Gb/s"
        return self._try(data, graph, what=f"{edit.a} - {edit.b} {what}")

    def add_link(self, a: str, b: str, gbps: float | None = None) -> EditResult:
        return self._edit_topology(TopologyEdit(op="add", a=a, b=b, gbps=gbps))

    def remove_link(self, a: str, b: str) -> EditResult:
        return self._edit_topology(TopologyEdit(op="remove", a=a, b=b))

    def set_link(self, a: str, b: str, gbps: float) -> EditResult:
        try:
            edit = TopologyEdit(op="set", a=a, b=b, gbps=gbps)
        except ValueError:
            return EditResult(False, (Problem("gbps", f"must be a positive number of Gb/s, got {gbps!r}"),))
        return self._edit_topology(edit)

    def links_of(self, node: str) -> list[tuple[str, str, float]]:
        """(other end, kind, Gb/s) of a node's links in the graph."""
        g = self.graph
        if node not in g:
            return []
        return sorted((o, e["kind"], e["bw"] * 8 / 1e9) for o, e in g.adj[node].items())

    # ------------------------------------------------------------ layout (no physics)

    def scene(self, view: View, width: int = 100) -> Scene:
        graph = self.graph if view.level in ("rack", "server") else None
        return scene(view, self.hierarchy, graph, self.scenario.layout.positions, width)

    def move(self, view: View, box_id: str, x: int, y: int) -> None:
        """Put a box somewhere else on the canvas; saved with the scenario."""
        positions = dict(self.scenario.layout.positions)
        positions[f"{view.key}/{box_id}"] = (max(0, int(x)), max(0, int(y)))
        self._remember(f"{box_id} moved")
        self._set_positions(positions)

    def reset_layout(self, view: View) -> bool:
        """Put every box of a view back where the layout places it. False when nothing was moved there."""
        prefix = f"{view.key}/"
        positions = {k: v for k, v in self.scenario.layout.positions.items() if not k.startswith(prefix)}
        if len(positions) == len(self.scenario.layout.positions):
            return False
        self._remember(f"layout of {view.key} reset")
        self._set_positions(positions)
        return True

    def _set_positions(self, positions: dict[str, tuple[int, int]]) -> None:
        self.scenario = self.scenario.model_copy(
            update={"layout": self.scenario.layout.model_copy(update={"positions": positions})}
        )
        self.dirty = True

    def edited_links(self) -> list[tuple[str, str, str]]:
        """(a, b, "added" | "removed") for the player's link edits, for the canvas to draw."""
        out: dict[frozenset[str], tuple[str, str, str]] = {}
        for e in self.scenario.topology.edits:
            pair = frozenset((e.a, e.b))
            if e.op == "add":
                out[pair] = (e.a, e.b, "added")
            elif e.op == "remove":
                out[pair] = (e.a, e.b, "removed")
        return list(out.values())

    # ------------------------------------------------------------ undo and redo

    def _remember(self, what: str) -> None:
        self._undo.append((what, self.scenario))
        del self._undo[:-200]
        self._redo.clear()

    @property
    def can_undo(self) -> str | None:
        """What undo would take back (None: nothing)."""
        return self._undo[-1][0] if self._undo and not self.read_only else None

    @property
    def can_redo(self) -> str | None:
        return self._redo[-1][0] if self._redo and not self.read_only else None

    def undo(self) -> str | None:
        """Take back the last edit, move, link change or policy switch; returns what it was (None: nothing)."""
        if self.can_undo is None:
            return None
        what, before = self._undo.pop()
        self._redo.append((what, self.scenario))
        self._restore(before)
        return what

    def redo(self) -> str | None:
        if self.can_redo is None:
            return None
        what, after = self._redo.pop()
        self._undo.append((what, self.scenario))
        self._restore(after)
        return what

    def _restore(self, scenario: Scenario) -> None:
        """Go back (or forward) to a scenario from the history: a layout or policy change keeps the run going."""
        current = self.scenario
        same = scenario.model_copy(update={"layout": current.layout, "reliability": current.reliability})
        if same == current and scenario.reliability.model_copy(update={"policy": current.reliability.policy}) == (
            current.reliability
        ):
            if scenario.reliability.policy != self.sim.policy:
                self.sim.set_policy(scenario.reliability.policy)
            self.scenario = scenario
        else:
            self._set(scenario)
            self._relay({"t": 0.0, "kind": "edit", "target": "scenario", "effect": {"restart": True}})
        self.dirty = True

    def locate(self, node: str, width: int = 100) -> tuple[View, str] | None:
        """The view that draws a node as its own box, and that box's id (a strip when its switches are many)."""
        try:
            target = parse_target(node, self.plan)
        except ScenarioError:
            return None
        h, p = self.hierarchy, self.plan
        if target.kind == "server":
            return View("rack", h.rack_of_server(target.index)), node
        if target.kind == "chip":
            return View("server", target.index // p.chips_per_node), node
        if target.kind == "core":
            return View("cluster"), "cores"
        if target.kind in ("leaf", "spine"):
            members = h.leaves_of_pod if target.kind == "leaf" else h.spines_of_pod
            pod = next((q for q in range(h.pods) if target.index in members(q)), 0)
            view = View("pod", pod)
            ids = {b.id for b in self.scene(view, width).boxes}
            return view, node if node in ids else f"{target.kind}-strip"
        return None

    def box_in_view(self, view: View, node: str, width: int = 100) -> str | None:
        """The box of `view` that holds a node: itself, or the pod, rack or strip it is in (None: not shown there)."""
        found = self.locate(node, width)
        if found is None:
            return None
        home, box_id = found
        if home == view:
            return box_id
        h = self.hierarchy
        try:
            target = parse_target(node, self.plan)
        except ScenarioError:
            return None
        server = None
        if target.kind == "server":
            server = target.index
        elif target.kind == "chip":
            server = target.index // self.plan.chips_per_node
        if view.level == "cluster":
            if server is not None:
                return f"pod{h.pod_of_server(server)}"
            if target.kind in ("leaf", "spine") and home.level == "pod":
                return "spines" if target.kind == "spine" else f"pod{home.index}"
        if view.level == "pod" and server is not None and h.pod_of_server(server) == view.index:
            return f"rack{h.rack_of_server(server)}"
        if view.level == "rack" and target.kind == "chip" and server is not None:
            return f"n{server}" if h.rack_of_server(server) == view.index else None
        return None

    def initial_view(self) -> View:
        return View("pod", 0) if self.hierarchy.pods == 1 else View("cluster")

    # ------------------------------------------------------------ faults

    def inject(self, fault: Fault) -> EditResult:
        if (refused := self._refused("fault")) is not None:
            return refused
        try:
            self.sim.inject(fault)
        except ScenarioError as exc:
            return EditResult(False, tuple(exc.problems))
        return EditResult(True)

    def set_policy(self, policy: str) -> EditResult:
        """Switch the recovery policy live (the run goes on) and in the scenario."""
        if (refused := self._refused("reliability.policy")) is not None:
            return refused
        try:
            self.sim.set_policy(policy)
        except ValueError as exc:
            return EditResult(False, (Problem("reliability.policy", str(exc)),))
        rel = self.scenario.reliability.model_copy(update={"policy": policy})
        self._remember(f"policy {policy}")
        self.scenario = self.scenario.model_copy(update={"reliability": rel})
        self.dirty = True
        return EditResult(True)

    # ------------------------------------------------------------ state for display

    def server_state(self, server: int) -> str:
        status = STATUS[int(self.sim.status[server])]
        if status in ("active",):
            return "degraded" if any(g.server == server for g in self.sim.gray_faults) else "ok"
        return status

    def chip_state(self, server: int, local: int) -> str:
        status = self.server_state(server)
        if status in ("ok", "degraded"):
            return "degraded" if any(g.server == server and g.local == local for g in self.sim.gray_faults) else "ok"
        return status

    def switch_state(self, kind: str, index: int) -> str:
        health = self.sim.switch_health(kind, index)
        if health is None:
            return "ok"
        return "failed" if health == 0 else "degraded"

    def group_counts(self, lo: int, hi: int) -> dict[str, int]:
        """Servers in [lo, hi) by state."""
        status = self.sim.status[lo:hi]
        counts = {STATUS[i]: int(n) for i, n in enumerate(np.bincount(status.astype(np.int64), minlength=len(STATUS)))}
        degraded = {g.server for g in self.sim.gray_faults if lo <= g.server < hi and self.sim.status[g.server] == 0}
        counts["degraded"] = len(degraded)
        counts["ok"] = counts.pop("active") - len(degraded)
        return counts

    def box_state(self, box: Box) -> str:
        if box.kind == "chip":
            server, local = box.id[1:].split(".")
            return self.chip_state(int(server), int(local))
        if box.kind in ("server", "switch"):
            return self.server_state(box.servers[0])
        if box.kind in ("leaf", "spine", "core"):
            return self.switch_state(box.kind, int(box.id[len(box.kind) :]))
        if box.kind in ("pod", "rack"):
            counts = self.group_counts(*box.servers)
            return next((s for s in STATE_ORDER if counts.get(s, 0)), "ok")
        if box.kind.endswith("_strip"):
            kind = box.kind[: -len("_strip")]
            states = {self.switch_state(kind, i) for i in range(*box.servers)}
            return next((s for s in STATE_ORDER if s in states), "ok")
        if box.kind in ("spines", "cores"):
            kind = box.kind[:-1]
            return "degraded" if self.sim.switches_unhealthy(kind) else "ok"
        return "ok"

    def describe(self, name: str) -> list[tuple[str, str]]:
        """Properties of a graph node or group for the inspector, as (label, value) rows."""
        try:
            target = parse_target(name, self.plan)
        except ScenarioError:
            return [("node", name)]
        rows = [("node", name), ("kind", target.kind)]
        if target.kind == "server":
            rows.append(("state", self.server_state(target.index)))
            slot = int(self.sim.server_slot[target.index])
            rows.append(("job slot", str(slot) if slot >= 0 else "none (not in the job)"))
        elif target.kind == "chip":
            server, local = divmod(target.index, self.plan.chips_per_node)
            rows.append(("state", self.chip_state(server, local)))
            for g in self.sim.gray_faults:
                if g.server == server and g.local == local:
                    rows.append((g.kind, f"{g.factor:g} until t={g.end / 3600:.1f} h ({g.cause})"))
        elif target.kind in ("leaf", "spine", "core"):
            rows.append(("state", self.switch_state(target.kind, target.index)))
        return rows

    # ------------------------------------------------------------ files

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Save the scenario (with layout and topology edits) atomically; the file on disk is safe on failure."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ScenarioError([Problem("path", "this scenario has no file yet: give a path to save it to")])
        saved = save_scenario(self.scenario, target)
        self.path = saved
        self.dirty = False
        return saved

    def write_log(self, path: str | os.PathLike[str]) -> None:
        self.sim.write_log(str(path))
