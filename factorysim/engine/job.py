"""The training job on its cluster: its state, and what every event does to it.

The job is running, restarting or stopped, and hung while a fault is not yet detected (its collectives
wait). Fault arrivals and injections become operations on the job's parts: its slots and the spare pool
(`ServerPool`), gray faults (`GrayFaults`), switch health (`SwitchHealth`), its progress (`Progress`);
the recovery policy in force decides what a fault, a detection, an eviction or a repair does to the job
as a whole. Time and the order of events belong to the scheduler; this module never looks at a wall clock
and draws nothing at random.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..scenario.models import Scenario
from ..topology.graph import ClosPlan, server_name
from ..topology.index import FabricIndex
from .fabric import SwitchHealth
from .faults import Fault, FaultClass, Target
from .gray import GrayFault, GrayFaults
from .policies import POLICIES, RecoveryPolicy
from .pool import ACTIVE, FAILED, IDLE, JOINING, REPAIR, SPARE, ServerPool
from .progress import Progress
from .recorder import Recorder
from .scheduler import Scheduler
from .throughput import Throughput


class Job:
    """The job, its slots and spares, and the handlers of every kind of event."""

    def __init__(self, scenario: Scenario, plan: ClosPlan, index: FabricIndex, throughput: Throughput,
                 clock: Scheduler, work: Progress, recorder: Recorder, classes: list[FaultClass]) -> None:  # fmt: skip
        self.scenario = scenario
        self.rel = scenario.reliability
        self.plan = plan
        self.throughput = throughput
        self.layout = throughput.layout
        self.cpn = scenario.cluster.chips_per_node
        self.clock = clock
        self.work = work
        self.emit = recorder.emit
        self.defaults = {fc.name: fc for fc in classes}  # what an injected fault borrows from its class
        self.pool = ServerPool(scenario.cluster.nodes, self.layout, self.cpn, scenario.cluster.node_group_size)
        self.gray = GrayFaults(self.cpn, index)
        self.switches = SwitchHealth(index)
        self.recovery: RecoveryPolicy = POLICIES[self.rel.policy]

        self.state = "running"  # running | restarting | stopped
        self.hung = 0  # faults that hang the job's collectives until they are detected
        self._restarts = 0  # generation of the last stop: a restart scheduled before a later stop does not land
        self.interruptions: dict[str, int] = {}
        self.isolations = 0
        self.faults = 0
        self._overdue: list[int] = []  # gray faults past the straggler window, not evicted yet (tokens)

        self.rate = 0.0  # tokens/s when training
        self.estimate = throughput.base  # the step physics in the present state
        self.refresh_rate()

    def handle(self, kind: str, payload: Any) -> None:
        """Handle one event from the scheduler."""
        HANDLERS[kind](self, payload)

    # ------------------------------------------------------------ state

    @property
    def training(self) -> bool:
        return self.state == "running" and self.hung == 0 and self.rate > 0

    @property
    def interruptible(self) -> bool:
        """The job is up (running or restarting) and not already hung: a fault now is a new interruption."""
        return self.state in ("running", "restarting") and self.hung == 0

    @property
    def waiting_for_spares(self) -> bool:
        """A slot is empty and no spare is on its way to it."""
        return len(self.pool.empty) > len(self.pool.joining)

    def set_policy(self, name: str) -> None:
        self.recovery = POLICIES[name]

    def refresh_rate(self) -> None:
        """The job's throughput in the present state (called after every event)."""
        training = self.pool.slot_active
        slowest = self.gray.slowest(training)
        uptime = self.gray.link_uptime(training)
        narrow = self.recovery.may_run_narrow(self)
        replicas_up, dp = self.pool.replicas_up, self.layout.dp
        est = self.throughput.at(max(1, replicas_up) if narrow else dp, slowest)
        up = replicas_up > 0 and (narrow or replicas_up == dp)
        self.estimate = est
        self.rate = est.tokens_per_s * uptime if up else 0.0

    def count_interruption(self, cause: str) -> None:
        self.interruptions[cause] = self.interruptions.get(cause, 0) + 1

    # ------------------------------------------------------------ faults in: natural and injected

    def _on_arrival(self, payload: tuple[FaultClass, int]) -> None:
        fc, unit = payload
        if fc.kind == "crash":
            self._crash(fc.name)
        elif fc.kind == "planned":
            self._planned(fc.name)
        elif fc.unit == "leaf":
            self._fail_leaf(unit, fc.name, fc.repair)
        elif fc.unit in ("spine", "core"):
            self._switch(fc.unit, unit, 0.0, fc.name, fc.repair)
        elif fc.kind == "fail-stop":
            server = unit // self.cpn if fc.unit in ("gpu", "gpu_port") else unit
            self._fail_server(server, fc.name, fc.repair)
        else:
            kind = {"straggler": "straggle", "degrade": "degrade", "flapping": "flap"}[fc.kind]
            if fc.name == "scale_up_link_degrade":
                kind = "degrade_up"
            factor = fc.slowdown if fc.kind == "straggler" else fc.factor
            if fc.kind == "flapping":
                factor = 1 - (fc.factor or 0.0)
            self._start_gray(unit // self.cpn, unit % self.cpn, kind, float(factor or 0.5), fc.repair, fc.name)

    def _on_inject(self, fault: Fault) -> None:
        target = fault.check(self.plan)
        self.emit(
            "inject",
            fault.target,
            fault.cause,
            **{k: v for k, v in fault.as_dict().items() if k not in ("target", "cause")},
        )
        cause = fault.cause
        defaults = self.defaults
        if fault.kind == "crash":
            self._crash(cause)
        elif fault.kind == "repair":
            self._repair_target(target)
        elif fault.kind == "fail":
            if target.kind == "leaf":
                self._fail_leaf(target.index, cause, defaults["leaf_switch"].repair)
            elif target.kind in ("spine", "core"):
                self._switch(target.kind, target.index, 0.0, cause, defaults[f"{target.kind}_switch"].repair)
            else:
                server = target.index // self.cpn if target.kind == "chip" else target.index
                repair = defaults["faulty_gpu" if target.kind == "chip" else "host_unplanned_maintenance"].repair
                self._fail_server(server, cause, repair)
        elif fault.kind == "degrade" and target.kind in ("spine", "core"):
            switch = defaults[f"{target.kind}_switch"]
            self._switch(target.kind, target.index, fault.factor or 0.5, cause, fault.duration or switch.repair)
        else:
            like = {"straggle": "gpu_straggler", "degrade": "fabric_link_degrade", "flap": "fabric_link_flapping"}
            fc = defaults[like[fault.kind]]
            if fault.kind == "straggle":
                factor = fault.factor or fc.slowdown or 0.5
            elif fault.kind == "flap":
                factor = 1 - (fault.factor or fc.factor or 0.3)
            else:
                factor = fault.factor or fc.factor or 0.25
            chips = range(self.cpn) if target.kind == "server" else [target.index % self.cpn]
            server = target.index if target.kind == "server" else target.index // self.cpn
            for local in chips:
                self._start_gray(server, local, fault.kind, factor, fault.duration or fc.repair, cause)

    def _repair_target(self, target: Target) -> None:
        if target.kind in ("spine", "core"):
            self._on_switch_back((target.kind, target.index))
            return
        if target.kind == "leaf":
            servers = self._servers_of_leaf(target.index)
            self.switches.leaf_back(target.index)
        else:
            servers = [target.index // self.cpn if target.kind == "chip" else target.index]
        for server in servers:
            for token in self.gray.tokens_on(server):
                self._end_gray(token)
            if self.pool.status[server] == REPAIR:
                self._on_repaired(server)

    # ------------------------------------------------------------ slots: servers in and out

    def _show(self, slot: int) -> None:
        """The job's view of a slot follows the gray faults of the server now in it."""
        self.gray.show(slot, int(self.pool.slot_server[slot]))

    def _vacate(self, slot: int) -> None:
        self.pool.vacate(slot)
        self._show(slot)

    def _place(self, slot: int, server: int, status: int) -> None:
        self.pool.place(slot, server, status)
        self._show(slot)

    def _to_repair(self, server: int, repair: float) -> None:
        self.pool.set_status(server, REPAIR)
        self.clock.schedule(self.clock.now + repair, "repaired", server)

    def take_out(self, server: int, back_at: float) -> int:
        """Take a working server out of its slot into repair until `back_at`; returns the slot."""
        slot = int(self.pool.server_slot[server])
        self._vacate(slot)
        self.pool.set_status(server, REPAIR)
        self.clock.schedule(back_at, "repaired", server)
        return slot

    def _on_repaired(self, server: int) -> None:
        if self.pool.status[server] != REPAIR:
            return
        self.pool.return_spare(server)
        self.emit("repaired", server_name(server), spares=len(self.pool.spares))
        self.reconcile()

    def reconcile(self) -> None:
        """Let the policy fill empty slots and restart the job, unless an undetected fault still hangs it;
        then evict the stragglers that waited for a spare, if spares are there now."""
        if self.hung:
            return
        self.recovery.reconcile(self)
        self._evict_overdue()

    def fill_slots(self) -> None:
        """Put spares into the empty slots, lowest slot first, while there are spares."""
        for slot in sorted(self.pool.empty):
            server = self.pool.take_spare()
            if server is None:
                break
            self._place(slot, server, ACTIVE)
            self.emit("spare_in", server_name(server), slot=slot, spares=len(self.pool.spares))

    def join_spares(self) -> None:
        """Send hot spares to the empty slots while the job runs; each joins after the join time."""
        for slot in sorted(self.pool.empty):
            if slot in self.pool.joining:
                continue
            joining = self.pool.start_join(slot)
            if joining is None:
                break
            server, gen = joining
            self.clock.schedule(self.clock.now + self.rel.join_time, "joined", (slot, server, gen))
            self.emit("spare_join", server_name(server), slot=slot, spares=len(self.pool.spares))

    def _on_joined(self, payload: tuple[int, int, int]) -> None:
        slot, server, gen = payload
        if not self.pool.finish_join(slot, server, gen):
            self.reconcile()
            return
        self._show(slot)
        self.emit("joined", server_name(server), slot=slot)
        self.restore_group(slot)

    # ------------------------------------------------------------ node groups

    def isolate(self, slot: int, cause: str) -> None:
        """Take the slot's node group out of training (the rest of the job trains on)."""
        if self.pool.isolate(slot):
            self.isolations += 1
        self.emit("isolate", f"group{self.pool.group_of(slot)}", cause, replicas_up=self.pool.replicas_up,
                  replicas=self.layout.dp)  # fmt: skip

    def restore_group(self, slot: int) -> None:
        """The slot's node group trains again if every slot of it holds a working server."""
        if not self.pool.group_ready(slot):
            return
        for s in self.pool.rejoin(slot):
            self._show(s)
        self.emit("rejoin", f"group{self.pool.group_of(slot)}", replicas_up=self.pool.replicas_up,
                  replicas=self.layout.dp)  # fmt: skip

    def pick_group(self) -> int:
        """A node group for a job-level fault, deterministic in sim time (no extra random draws)."""
        return int(self.clock.now * 1000.003) % self.pool.groups

    def drain(self, group: int, cause: str, why: str) -> None:
        """Take a node group out of training for restart_time; it rejoins with no spare and no rollback."""
        slot = group * self.pool.group_size
        if slot >= self.pool.slots or group in self.pool.isolated:
            return
        self.isolate(slot, cause)
        back = self.clock.now + self.rel.restart_time
        self.clock.schedule(back, "group_back", slot)
        self.emit(why, f"group{group}", cause, back_at=back)

    # ------------------------------------------------------------ fail-stop faults

    def _fail_server(self, server: int, cause: str, repair: float, count: bool = True) -> None:
        pool = self.pool
        st = pool.status[server]
        if st in (FAILED, REPAIR):
            return
        self.faults += count
        name = server_name(server)
        if st == SPARE:
            pool.lose_spare(server)
            self._to_repair(server, repair)
            self.emit("fault", name, cause, server="in_repair", role="spare")
            return
        if st == JOINING:
            pool.cancel_join(server)
            self._to_repair(server, repair)
            self.emit("fault", name, cause, server="in_repair", role="joining")
            self.reconcile()
            return
        slot = int(pool.server_slot[server])
        if st == IDLE:
            self._vacate(slot)
            self._to_repair(server, repair)
            self.emit("fault", name, cause, server="in_repair", role="idle")
            self.reconcile()
            return
        # an active server: collectives hang until the fault is detected
        was_training = self.training
        interrupts = self.interruptible
        pool.set_status(server, FAILED)
        pool.set_slot_ok(slot, False)
        self.hung += 1
        self.recovery.rank_lost(self, cause, was_training, interrupts)
        self.emit("fault", name, cause, server="failed", job="hung", lost_tokens=self.work.lost_tokens)
        self.clock.schedule(self.clock.now + self.rel.detect_time, "detect", (server, repair, cause))

    def _on_detect(self, payload: tuple[int, float, str]) -> None:
        server, repair, cause = payload
        self.hung -= 1
        if self.pool.status[server] != FAILED:
            return
        slot = int(self.pool.server_slot[server])
        self._vacate(slot)
        self._to_repair(server, repair)
        self.recovery.detected(self, slot, server, cause)
        self.reconcile()

    def stop_detected(self, server: int, cause: str) -> None:
        """A detected fault stops the whole job (any restart on its way is called off)."""
        if self.state in ("running", "restarting"):
            self._restarts += 1
        self.state = "stopped"
        self.emit("detect", server_name(server), cause, job="stopped")

    def emit_evict(self, gray: GrayFault) -> None:
        self.emit("evict", server_name(gray.server), gray.cause, server="in_repair")

    # ------------------------------------------------------------ job-level faults and restarts

    def _crash(self, cause: str) -> None:
        self.faults += 1
        if self.recovery.crash_in_group(self, cause):
            return
        if not self.interruptible:
            self.emit("fault", "job", cause, job="already down")
            return
        if self.training:
            self.work.roll_back()
        self.count_interruption(cause)
        self.hung += 1
        self.emit("fault", "job", cause, job="hung", lost_tokens=self.work.lost_tokens)
        self.clock.schedule(self.clock.now + self.rel.detect_time, "detect_crash", cause)

    def crash_group(self, cause: str) -> None:
        """A crashed rank hangs the job until noticed; then only its node group restarts (isolate_crashes)."""
        group = self.pick_group()
        self.hung += 1
        self.emit("fault", f"group{group}", cause, job="hung", scope="group")
        self.clock.schedule(self.clock.now + self.rel.detect_time, "detect_local", (group, cause))

    def _on_detect_crash(self, cause: str) -> None:
        self.hung -= 1
        self._restarts += 1
        self.state = "stopped"
        self.emit("detect", "job", cause, job="stopped")
        self.reconcile()

    def _on_detect_local(self, payload: tuple[int, str]) -> None:
        group, cause = payload
        self.hung -= 1
        self.drain(group, cause, "restart")

    def _planned(self, cause: str) -> None:
        self.faults += 1
        if self.recovery.maintain_in_group(self, cause):
            return
        if not self.training:
            return
        self.work.save_now()  # checkpoint, then stop
        self.count_interruption(cause)
        self.restart_job(self.rel.checkpoint_cost, cause)

    def restart_job(self, extra: float, cause: str) -> None:
        """Stop the job and relaunch it after `extra` seconds plus the restart time."""
        self._restarts += 1
        self.state = "restarting"
        self.clock.schedule(self.clock.now + extra + self.rel.restart_time, "restarted", self._restarts)
        self.emit("stop", "job", cause, job="restarting")

    def _on_restarted(self, gen: int) -> None:
        if gen != self._restarts or self.state != "restarting":
            return
        if self.hung:
            self.state = "stopped"
            return
        if not self.recovery.can_restart(self):
            self.state = "stopped"
            self.reconcile()
            return
        self._swap_overdue()
        self.pool.restart()
        self.state = "running"
        self.work.start_segment(self.clock.now)
        self.emit("restarted", "job", replicas_up=self.pool.replicas_up, replicas=self.layout.dp)
        if self.pool.isolated:
            self.reconcile()
        self._evict_overdue()

    # ------------------------------------------------------------ switches

    def _fail_leaf(self, leaf: int, cause: str, repair: float) -> None:
        """A leaf switch takes its servers' fabric ports down; they are back when the leaf is."""
        self.faults += 1
        servers = self._servers_of_leaf(leaf)
        self.emit("fault", f"leaf{leaf}", cause, servers=len(servers))
        in_job = False
        for server in servers:
            in_job = in_job or self.pool.status[server] == ACTIVE
            self._fail_server(server, cause, repair, count=False)
        # servers in the job go into repair at detection, the others at once
        detect = self.rel.detect_time if in_job else 0.0
        self.switches.leaf_down(leaf, self.clock.now + detect + repair)

    def _servers_of_leaf(self, leaf: int) -> list[int]:
        """Physical servers with a NIC on this leaf (the plan's wiring, not the job's view)."""
        p = self.plan
        if p.rail:
            first = (leaf // p.chips_per_node) * p.leaf_down
            return list(range(first, min(p.servers, first + p.leaf_down)))
        first_chip = leaf * p.leaf_down
        return list(
            range(first_chip // p.chips_per_node, min(p.servers, -(-(first_chip + p.leaf_down) // p.chips_per_node)))
        )

    def _switch(self, kind: str, index: int, health: float, cause: str, repair: float) -> None:
        self.faults += 1
        self.switches.set(kind, index, health)
        self.emit("fault", f"{kind}{index}", cause, health=health)
        self.clock.schedule(self.clock.now + repair, "switch_back", (kind, index))

    def _on_switch_back(self, payload: tuple[str, int]) -> None:
        kind, index = payload
        if self.switches.restore(kind, index):
            self.emit("repaired", f"{kind}{index}")

    # ------------------------------------------------------------ gray faults

    def _start_gray(self, server: int, local: int, kind: str, factor: float, duration: float, cause: str) -> None:
        self.faults += 1
        now = self.clock.now
        end = now + duration
        token = self.gray.add(GrayFault(server, local, kind, factor, end, cause))
        slot = int(self.pool.server_slot[server])
        self.emit("gray", f"{server_name(server)}.{local}", cause, kind=kind, factor=factor, until=end)
        if slot >= 0:
            self._show(slot)
        self.clock.schedule(end, "gray_end", token)
        if self.rel.evict_stragglers and self.rel.straggler_window < duration:
            self.clock.schedule(now + self.rel.straggler_window, "evict", token)

    def _end_gray(self, token: int) -> None:
        g = self.gray.remove(token)
        if g is None:
            return
        if token in self._overdue:
            self._overdue.remove(token)
        slot = int(self.pool.server_slot[g.server])
        if slot >= 0:
            self._show(slot)
        self.emit("gray_end", f"{server_name(g.server)}.{g.local}", g.cause, kind=g.kind)

    def _on_evict(self, token: int) -> None:
        """A gray fault lasted the straggler window: swap its server for a spare, or wait for one."""
        g = self._straggler(token)
        if g is None:
            return
        if self.recovery.evict(self, g):
            return
        self._overdue.append(token)  # it keeps running slowed until a spare frees up or the job restarts
        why = "no spare" if not self.pool.spares else f"job {self._state_name()}"
        self.emit("evict_wait", server_name(g.server), g.cause, why=why)

    def _straggler(self, token: int) -> GrayFault | None:
        """The gray fault, if it is still in force on a server that trains in the job."""
        g = self.gray.get(token)
        return g if g is not None and self.pool.status[g.server] == ACTIVE else None

    def _evict_overdue(self) -> None:
        """The running job evicts the stragglers that waited, oldest first, as far as the policy will."""
        while self._overdue and self.state == "running" and not self.hung:
            token = self._overdue.pop(0)
            g = self._straggler(token)
            if g is not None and not self.recovery.evict(self, g):
                self._overdue.insert(0, token)
                return

    def _swap_overdue(self) -> None:
        """At a restart the job is down anyway: waiting stragglers go out and spares take their slots."""
        for token in list(self._overdue):
            if not self.pool.spares:
                return
            self._overdue.remove(token)
            g = self._straggler(token)
            if g is None:
                continue
            slot = self.take_out(g.server, g.end)
            self.emit_evict(g)
            server = self.pool.take_spare()
            assert server is not None
            self._place(slot, server, ACTIVE)
            self.emit("spare_in", server_name(server), slot=slot, spares=len(self.pool.spares))

    def _state_name(self) -> str:
        return "hung" if self.hung else self.state


HANDLERS: dict[str, Callable[[Job, Any], None]] = {
    "arrival": Job._on_arrival, "inject": Job._on_inject, "detect": Job._on_detect,
    "detect_crash": Job._on_detect_crash, "detect_local": Job._on_detect_local, "restarted": Job._on_restarted,
    "joined": Job._on_joined, "group_back": Job.restore_group, "repaired": Job._on_repaired,
    "switch_back": Job._on_switch_back, "gray_end": Job._end_gray, "evict": Job._on_evict,
}  # fmt: skip
"""What each kind of event does to the job."""
