"""The time engine: discrete events, fault processes, recovery policies, and the fifth factor.

Between events the job's throughput is constant, and progress, checkpoints and samples are computed in
closed form: the cost of a run grows with the number of events, never with chips × time or with steps.
A run is deterministic given (scenario, seed, injected faults): natural faults come from a stream seeded
by (seed, week), events are ordered by (time, insertion order), and nothing else is random.

Servers are in one of six states. The job has one slot per server it needs; a slot holds a server.

    active   in a slot, training          spare    healthy, waiting in the pool
    idle     in a slot of an isolated group, healthy, not training
    joining  a spare on its way into a slot (isolate-group)
    failed   down, not yet detected       in_repair  detected, coming back after its repair time

Recovery policies:
- checkpoint-restart: a fail-stop fault hangs the job and loses the work since the last checkpoint; at
  detection the job stops, spares fill the empty slots (or the job waits for repairs), and the job
  restarts after the restart time.
- isolate-group: the job hangs until detection, then only the failed node group drops out (with every
  data-parallel replica that has a rank in it); the rest keep training with no rollback, and a hot spare
  joins after the join time. Job-level crashes still restart the whole job from the last checkpoint.
Under both, a chip or link that stays slow for the straggler window is swapped for a spare.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._version import __version__
from ..scenario.files import scenario_data
from ..scenario.models import Scenario
from ..topology.edits import index_for
from ..topology.graph import server_name
from ..topology.index import FabricIndex
from .clock import SimClock
from .faults import CHUNK, Fault, FaultProcess, Target, fault_classes
from .log import EventLog, scenario_hash
from .metrics import RunSummary, TimeSeries
from .throughput import Throughput

ACTIVE, SPARE, FAILED, REPAIR, IDLE, JOINING = range(6)
STATUS = ("active", "spare", "failed", "in_repair", "idle", "joining")

HOUR = 3600.0


@dataclass
class GrayFault:
    """A gray fault on one chip of a server: a straggler, a degraded or a flapping link."""

    server: int
    local: int
    kind: str  # straggle | degrade | degrade_up | flap
    factor: float
    end: float
    cause: str


@dataclass(frozen=True)
class Snapshot:
    """The state of a run at one moment, for the dashboard and for tests."""

    t: float
    job_state: str
    tokens: float  # durable (checkpointed) tokens
    progress: float  # tokens in the model now
    tokens_per_s: float
    fault_free_tokens_per_s: float
    mfu: float
    ettr: float
    stability: float
    factors: dict[str, float]
    chips: dict[str, int]  # healthy, failed, in_repair, spare, total
    replicas_up: int
    replicas: int
    interruptions: int
    isolations: int
    policy: str


class Simulation:
    """A scenario run through time. Sync: advance(dt), run_until(t), inject(fault). Async: stream(clock)."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        *,
        index: FabricIndex | None = None,
        record: bool = False,
        metrics: bool = True,
        sample_interval: float | None = None,
        fingerprint: bool | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.run.seed if seed is None else seed
        rel = scenario.reliability
        self.policy = rel.policy
        self.index = index if index is not None else index_for(scenario.cluster, scenario.topology.edits)
        self.plan = self.index.plan
        self.throughput = Throughput(scenario, self.index)
        self.layout = self.throughput.layout
        self.base = self.throughput.base
        self.T0 = self.base.tokens_per_s

        c = self.cpn = scenario.cluster.chips_per_node
        nodes = scenario.cluster.nodes
        self.slots = self.layout.chips // c
        self.status = np.full(nodes, SPARE, dtype=np.int8)
        self.status[: self.slots] = ACTIVE
        self.slot_server = np.arange(self.slots, dtype=np.int64)
        self.server_slot = np.full(nodes, -1, dtype=np.int64)
        self.server_slot[: self.slots] = np.arange(self.slots)
        self._spares = list(range(self.slots, nodes))  # kept sorted: the lowest-numbered spare joins first
        self._recount_status()
        self._init_replicas()

        self.classes = fault_classes(scenario)
        self._class = {fc.name: fc for fc in self.classes}
        self.process = FaultProcess(scenario, self.plan, self.seed)
        self._queue: list[tuple[float, int, int, str, Any]] = []
        self._seq = 0
        self._chunks = 0

        # job and progress
        self.now = 0.0
        self.job_state = "running"
        self.hung = 0
        self.seg_start = 0.0
        self.progress = 0.0
        self.committed = 0.0
        self._snapshot: tuple[float, float] | None = None  # (progress, train time) at the start of a save
        self.train_time = 0.0
        self.committed_train = 0.0
        self.lost_train = 0.0
        self.lost_tokens = 0.0
        self.pause_time = 0.0
        self.degraded_chip_s = 0.0  # Σ train dt × (1 - T/T0)
        self.checkpoints = 0
        self._watched: dict[float, float | None] = {}  # token counts -> sim time first reached
        if scenario.workload.target_tokens:
            self.watch(scenario.workload.target_tokens)
        if scenario.challenge is not None and scenario.challenge.goal == "tokens":
            self.watch(scenario.challenge.target)
        self._gens = {"restart": 0}
        self._join_gen: dict[int, int] = {}
        self._joining: dict[int, int] = {}  # slot -> spare on its way

        # counters
        self.interruptions: dict[str, int] = {}
        self.exposure = 0.0  # seconds during which a fault would interrupt the job
        self.events = 0
        self.isolations = 0
        self.faults = 0
        self.spares_used = 0
        self.min_spares = len(self._spares)

        # gray faults and their effect on the job's view of the fabric
        self._gray: dict[int, GrayFault] = {}
        self._gray_seq = 0
        self._touched_slots: set[int] = set()
        self._slow: dict[int, float] = {}  # slot chip -> speed
        self._flap: dict[int, float] = {}  # slot chip -> share of time up
        self._switch_down: dict[tuple[str, int], float] = {}
        self._leaf_back: dict[int, float] = {}  # failed leaf -> when its repair ends (its servers' repair)

        interval = sample_interval or max(60.0, scenario.run.duration / 1000)
        self.series = TimeSeries(interval) if metrics else None
        self.log: EventLog | None = None
        if record or fingerprint:  # the fingerprint is the hash of the log; by default only recorded runs keep one
            data = scenario_data(scenario)
            header = {"factorysim": __version__, "seed": self.seed, "scenario": data,
                      "scenario_sha256": scenario_hash(data)}  # fmt: skip
            self.log = EventLog(header, keep_all=record)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

        for i, f in enumerate(scenario.faults):
            fault = Fault(f.target, f.kind, f.factor, f.duration, cause="scheduled")
            fault.check(self.plan, f"faults[{i}]")
            self._push(f.at, "inject", fault)
        self._rate = 0.0
        self._estimate = self.base
        self._refresh_rate()
        self._rebase()
        if self.series is not None:
            self._sample()

    # ------------------------------------------------------------ layout of replicas

    def _init_replicas(self) -> None:
        lay = self.layout
        ranks = np.arange(lay.chips, dtype=np.int64)
        rank_replica = (ranks // (lay.tp * lay.cp)) % lay.dp
        rank_slot = ranks // self.cpn
        pairs = np.unique(rank_slot * lay.dp + rank_replica)
        self._pairs = (pairs // lay.dp, pairs % lay.dp)  # sorted by slot
        starts = np.searchsorted(self._pairs[0], np.arange(self.slots + 1))
        replicas = self._pairs[1].tolist()
        self._slot_replicas = [replicas[starts[i] : starts[i + 1]] for i in range(self.slots)]
        self._replica_bad = [0] * lay.dp
        self.replicas_up = lay.dp
        self.group_size = self.scenario.cluster.node_group_size
        self._isolated: set[int] = set()
        self._slot_ok = np.ones(self.slots, dtype=bool)
        self._slot_group = np.arange(self.slots) // self.group_size
        self._empty: set[int] = set()  # slots without a server

    def _set_slot_ok(self, slot: int, ok: bool) -> None:
        if self._slot_ok[slot] == ok:
            return
        self._slot_ok[slot] = ok
        bad = self._replica_bad
        for r in self._slot_replicas[slot]:
            if ok:
                bad[r] -= 1
                self.replicas_up += bad[r] == 0
            else:
                self.replicas_up -= bad[r] == 0
                bad[r] += 1

    def _recount_replicas(self) -> None:
        slot_of, replica_of = self._pairs
        bad = np.bincount(replica_of, weights=~self._slot_ok[slot_of], minlength=self.layout.dp).astype(np.int64)
        self._replica_bad = bad.tolist()
        self.replicas_up = int((bad == 0).sum())

    def _set_status(self, server: int, status: int) -> None:
        self._status_count[int(self.status[server])] -= 1
        self._status_count[status] += 1
        self.status[server] = status

    def _recount_status(self) -> None:
        self._status_count = np.bincount(self.status.astype(np.int64), minlength=len(STATUS)).tolist()

    def _group_slots(self, slot: int) -> range:
        g = slot // self.group_size
        return range(g * self.group_size, min(self.slots, (g + 1) * self.group_size))

    # ------------------------------------------------------------ queue

    def _push(self, t: float, kind: str, payload: Any = None) -> None:
        # Injected faults go after every other event of the same instant: that is where an interactive
        # injection lands (the run has handled everything up to now), so a replay puts them there too.
        heapq.heappush(self._queue, (t, 1 if kind == "inject" else 0, self._seq, kind, payload))
        self._seq += 1

    def _generate_until(self, t: float) -> None:
        while self._chunks * CHUNK <= t:
            for when, cls, unit in self.process.chunk(self._chunks):
                self._push(when, "arrival", (cls, unit))
            self._chunks += 1

    @property
    def next_event_time(self) -> float | None:
        self._generate_until(self.now)
        return self._queue[0][0] if self._queue else None

    # ------------------------------------------------------------ public API

    def run_until(self, t: float) -> None:
        """Advance sim time to t, handling every event on the way."""
        if t < self.now:
            raise ValueError(f"cannot run back in time: now {self.now:g} s, asked {t:g} s")
        self._generate_until(t)
        while self._queue and self._queue[0][0] <= t:
            when, _, _, kind, payload = heapq.heappop(self._queue)
            self._integrate(when)
            getattr(self, f"_on_{kind}")(payload)
            self._refresh_rate()
            self._rebase()
            if self.series is not None:
                self._sample()
            self._generate_until(t)
        self._integrate(t)

    def advance(self, dt: float) -> None:
        """Advance sim time by dt seconds."""
        if dt < 0:
            raise ValueError("dt must not be negative")
        self.run_until(self.now + dt)

    def step_to_next_event(self, limit: float | None = None) -> float:
        """Jump to the next event (or to `limit`, whichever comes first) and handle it."""
        nxt = self.next_event_time
        target = nxt if nxt is not None else self.now
        if limit is not None:
            target = min(target, limit)
        self.run_until(max(target, self.now))
        return self.now

    def inject(self, fault: Fault | dict[str, Any], at: float | None = None) -> None:
        """Inject a fault now or at a later sim time. Raises ScenarioError for a bad target or kind."""
        if isinstance(fault, dict):
            fault = Fault(**fault)
        fault.check(self.plan)
        when = self.now if at is None else at
        if when < self.now:
            from ..scenario.errors import Problem, ScenarioError

            raise ScenarioError([Problem("at", f"{when:g} s is in the past (now {self.now:g} s)")])
        self._push(when, "inject", fault)
        if when == self.now:
            self.run_until(self.now)

    def set_policy(self, policy: str) -> None:
        """Switch the recovery policy for the faults that come next."""
        if policy not in ("checkpoint-restart", "isolate-group"):
            raise ValueError(f'unknown policy "{policy}"; allowed: "checkpoint-restart", "isolate-group"')
        if policy != self.policy:
            self.policy = policy
            self._emit("policy", "job", policy=policy)

    # ------------------------------------------------------------ the closed form between events

    def _cycle(self) -> tuple[float, float]:
        rel = self.scenario.reliability
        pause = rel.async_checkpoint_cost if rel.checkpoint_async else rel.checkpoint_cost
        return rel.checkpoint_interval, pause

    def _trained(self, x: float) -> float:
        """Training time in the first x seconds of a running segment (checkpoint pauses excluded)."""
        tau, delta = self._cycle()
        if x <= 0:
            return 0.0
        k = math.floor(x / (tau + delta))
        return k * tau + min(x - k * (tau + delta), tau)

    def _elapsed_for(self, trained: float) -> float:
        """Inverse of _trained: the segment time at which `trained` seconds of training are done."""
        tau, delta = self._cycle()
        k = math.floor(trained / tau) if trained > 0 else 0
        rest = trained - k * tau
        if rest == 0 and k > 0:
            return k * (tau + delta) - delta
        return k * (tau + delta) + rest

    def _training(self) -> bool:
        return self.job_state == "running" and self.hung == 0 and self._rate > 0

    def _interruptible(self) -> bool:
        """The job is up (running or restarting) and not already hung: a fault now is a new interruption."""
        return self.job_state in ("running", "restarting") and self.hung == 0

    def _integrate(self, t: float) -> None:
        a = self.now
        if t <= a:
            return
        if self.series is not None:
            while self.series.next_sample < t:
                s = max(self.series.next_sample, a)
                self._advance_to(s)
                self._sample()
                self.series.next_sample = s + self.series.interval
        self._advance_to(t)

    def _advance_to(self, t: float) -> None:
        """Bring the run to time t. Values come in closed form from the last event (the anchor), so the
        result does not depend on how time between two events is split (frames, samples, advance calls)."""
        if t <= self.now:
            return
        if self._interruptible():
            self.exposure += t - self.now
        if not self._training():
            self.now = t
            return
        T = self._rate
        seg = self.seg_start
        tau, delta = self._cycle()
        cyc = tau + delta
        a0 = self._anchor[0]
        base = self._trained(a0 - seg)

        def at(x: float) -> tuple[float, float]:
            d = self._trained(x - seg) - base
            return self._anchor[1] + T * d, self._anchor[2] + d

        k_prev, k_t = math.floor((self.now - seg) / cyc), math.floor((t - seg) / cyc)
        if k_t > k_prev:
            # every commit is an event when the run is logged; otherwise only the last one matters
            for k in range(k_prev + 1, k_t + 1) if self.log is not None else (k_t,):
                commit, start = seg + k * cyc, seg + k * cyc - delta
                snap = self._snapshot if start <= a0 else at(start)
                self._snapshot = None
                if snap is not None:
                    self.committed, self.committed_train = snap
                    if self.log is not None:
                        self._emit("checkpoint", "job", None, commit, tokens=snap[0])
            self.checkpoints += k_t - k_prev
        if (t - seg) - k_t * cyc > tau:  # t falls inside a save: remember where it started
            start = seg + k_t * cyc + tau
            if start > a0:
                self._snapshot = at(start)
        prog, train = at(t)
        trained = train - self._anchor[2]
        for target, reached in self._watched.items():
            if reached is None and prog >= target > self._anchor[1]:
                self._watched[target] = seg + self._elapsed_for(base + (target - self._anchor[1]) / T)
        self.degraded_chip_s = self._anchor[3] + (trained * max(0.0, 1 - T / self.T0) if self.T0 > 0 else 0.0)
        self.pause_time = self._anchor[4] + (t - a0) - trained
        self.progress, self.train_time = prog, train
        self.now = t

    def _rebase(self) -> None:
        """Make the present the anchor of the closed form (after an event changed the state)."""
        self._anchor = (self.now, self.progress, self.train_time, self.degraded_chip_s, self.pause_time)

    def watch(self, tokens: float) -> None:
        """Record the sim time at which the run first holds this many tokens."""
        self._watched.setdefault(tokens, None)

    def target_time_for(self, tokens: float) -> float | None:
        return self._watched.get(tokens)

    @property
    def target_time(self) -> float | None:
        """When the workload's target_tokens was first reached (None: not yet)."""
        target = self.scenario.workload.target_tokens
        return self._watched.get(target) if target else None

    def _rollback(self) -> None:
        """The work since the last durable checkpoint is lost."""
        self.lost_tokens += self.progress - self.committed
        self.lost_train += self.train_time - self.committed_train
        self.committed_train = self.train_time  # the lost time is counted; the next loss starts here
        self.progress = self.committed
        self._snapshot = None

    # ------------------------------------------------------------ rate and metrics

    def _refresh_rate(self) -> None:
        slowest = flap = 1.0
        if self._slow:
            slowest = min((v for chip, v in self._slow.items() if self._slot_active(chip // self.cpn)), default=1.0)
        if self._flap:
            flap = min((v for chip, v in self._flap.items() if self._slot_active(chip // self.cpn)), default=1.0)
        narrow = self._may_run_narrow()
        est = self.throughput.at(max(1, self.replicas_up) if narrow else self.layout.dp, slowest)
        up = self.replicas_up > 0 and (narrow or self.replicas_up == self.layout.dp)
        self._estimate = est
        self._rate = est.tokens_per_s * flap if up else 0.0

    def _may_run_narrow(self) -> bool:
        """True when the job may train with fewer replicas than it was launched with."""
        return self.policy == "isolate-group" or bool(self._isolated)

    def _slot_active(self, slot: int) -> bool:
        server = self.slot_server[slot] if 0 <= slot < self.slots else -1
        return server >= 0 and self.status[server] == ACTIVE

    @property
    def gray_faults(self) -> list[GrayFault]:
        """Gray faults in force now (physical server and chip)."""
        return list(self._gray.values())

    def switch_health(self, kind: str, index: int) -> float | None:
        """Health of a leaf, spine or core switch that is down or degraded now (None: healthy)."""
        if kind == "leaf":
            return 0.0 if self._leaf_back.get(index, -1.0) > self.now else None
        return self._switch_down.get((kind, index))

    def switches_unhealthy(self, kind: str) -> bool:
        if kind == "leaf":
            return any(t > self.now for t in self._leaf_back.values())
        return any(k == kind for k, _ in self._switch_down)

    def chip_counts(self) -> dict[str, int]:
        n, c = self._status_count, self.cpn
        return {"healthy": (n[ACTIVE] + n[IDLE] + n[JOINING]) * c, "failed": n[FAILED] * c,
                "in_repair": n[REPAIR] * c, "spare": n[SPARE] * c, "total": sum(n) * c}  # fmt: skip

    @property
    def tokens_per_s(self) -> float:
        return self._rate if self._training() else 0.0

    @property
    def stability(self) -> float:
        return self.progress / (self.T0 * self.now) if self.now > 0 and self.T0 > 0 else 1.0

    @property
    def ettr(self) -> float:
        return (self.train_time - self.lost_train) / self.now if self.now > 0 else 1.0

    def _sample(self) -> None:
        assert self.series is not None
        f = self._estimate.factors
        c = self.chip_counts()
        mfu = self._estimate.mfu * (
            self.tokens_per_s / self._estimate.tokens_per_s if self._estimate.tokens_per_s else 0
        )
        self.series.add((self.now, self.committed, self.progress, self.tokens_per_s, mfu, self.ettr, self.stability,
                         c["healthy"], c["failed"], c["in_repair"], c["spare"],
                         f.generality, f.chip, f.node, f.cluster))  # fmt: skip

    def snapshot(self) -> Snapshot:
        f = self._estimate.factors.as_dict()
        f["stability"] = self.stability
        rate = self.tokens_per_s
        return Snapshot(
            t=self.now,
            job_state=self._state_name(),
            tokens=self.committed,
            progress=self.progress,
            tokens_per_s=rate,
            fault_free_tokens_per_s=self.T0,
            mfu=self._estimate.mfu * rate / self._estimate.tokens_per_s if self._estimate.tokens_per_s else 0.0,
            ettr=self.ettr,
            stability=self.stability,
            factors=f,
            chips=self.chip_counts(),
            replicas_up=self.replicas_up,
            replicas=self.layout.dp,
            interruptions=sum(self.interruptions.values()),
            isolations=self.isolations,
            policy=self.policy,
        )

    def _state_name(self) -> str:
        if self.hung:
            return "hung"
        if self.job_state == "running" and self.replicas_up < self.layout.dp:
            return "running (reduced)"
        return self.job_state

    # ------------------------------------------------------------ events: the log

    def _emit(
        self, kind: str, target: str, cause: str | None = None, at: float | None = None, /, **effect: Any
    ) -> None:
        record: dict[str, Any] = {"t": self.now if at is None else at, "kind": kind, "target": target}
        if cause is not None:
            record["cause"] = cause
        if effect:
            record["effect"] = effect
        self.events += kind != "checkpoint"  # commits are counted in `checkpoints`, logged or not
        if self.log is not None:
            self.log.append(record)
        for listener in self.listeners:
            listener(record)

    # ------------------------------------------------------------ events: handlers

    def _on_arrival(self, payload: tuple[int, int]) -> None:
        cls_index, unit = payload
        fc = self.process.classes[cls_index]
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
        self._emit(
            "inject",
            fault.target,
            fault.cause,
            **{k: v for k, v in fault.as_dict().items() if k not in ("target", "cause")},
        )
        cause = fault.cause
        defaults = self._class
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
            spec = defaults[f"{target.kind}_switch"]
            self._switch(target.kind, target.index, fault.factor or 0.5, cause, fault.duration or spec.repair)
        else:
            spec = {"straggle": "gpu_straggler", "degrade": "fabric_link_degrade", "flap": "fabric_link_flapping"}[
                fault.kind
            ]
            fc = defaults[spec]
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

    # fail-stop -----------------------------------------------------------------------------

    def _fail_server(self, server: int, cause: str, repair: float, count: bool = True) -> None:
        st = self.status[server]
        if st in (FAILED, REPAIR):
            return
        self.faults += count
        name = server_name(server)
        if st == SPARE:
            self._spares.remove(server)
            self.min_spares = min(self.min_spares, len(self._spares))
            self._to_repair(server, repair)
            self._emit("fault", name, cause, server="in_repair", role="spare")
            return
        if st == JOINING:
            self._join_gen[server] = self._join_gen.get(server, 0) + 1
            self._joining = {slot: s for slot, s in self._joining.items() if s != server}
            self._to_repair(server, repair)
            self._emit("fault", name, cause, server="in_repair", role="joining")
            self._reconcile()
            return
        slot = int(self.server_slot[server])
        if st == IDLE:
            self._vacate(slot)
            self._to_repair(server, repair)
            self._emit("fault", name, cause, server="in_repair", role="idle")
            self._reconcile()
            return
        # an active server: collectives hang until the fault is detected
        was_training = self._training()
        interrupts = self._interruptible()
        self._set_status(server, FAILED)
        self._set_slot_ok(slot, False)
        self.hung += 1
        if self.policy == "checkpoint-restart":
            if was_training:
                self._rollback()
            if interrupts:
                self._count_interruption(cause)
        self._emit("fault", name, cause, server="failed", job="hung", lost_tokens=self.lost_tokens)
        self._push(self.now + self.scenario.reliability.detect_time, "detect", (server, repair, cause))

    def _on_detect(self, payload: tuple[int, float, str]) -> None:
        server, repair, cause = payload
        self.hung -= 1
        if self.status[server] != FAILED:
            return
        slot = int(self.server_slot[server])
        self._vacate(slot)
        self._to_repair(server, repair)
        if self.policy == "checkpoint-restart" or self.job_state != "running":
            if self.job_state in ("running", "restarting"):
                self._gens["restart"] += 1
            self.job_state = "stopped"
            self._emit("detect", server_name(server), cause, job="stopped")
        else:
            self._isolate(slot, cause)
        self._reconcile()

    def _isolate(self, slot: int, cause: str) -> None:
        group = slot // self.group_size
        if group not in self._isolated:
            self._isolated.add(group)
            self.isolations += 1
            for s in self._group_slots(slot):
                server = self.slot_server[s]
                if server >= 0 and self.status[server] == ACTIVE:
                    self._set_status(server, IDLE)
                self._set_slot_ok(s, False)
        self._emit("isolate", f"group{group}", cause, replicas_up=self.replicas_up, replicas=self.layout.dp)

    def _to_repair(self, server: int, repair: float) -> None:
        self._set_status(server, REPAIR)
        self._push(self.now + repair, "repaired", server)

    def _vacate(self, slot: int) -> None:
        server = int(self.slot_server[slot])
        if server >= 0:
            self.server_slot[server] = -1
        self.slot_server[slot] = -1
        self._empty.add(slot)
        self._set_slot_ok(slot, False)
        self._slot_effects(slot)

    def _on_repaired(self, server: int) -> None:
        if self.status[server] != REPAIR:
            return
        self._set_status(server, SPARE)
        self._insert_spare(server)
        self._emit("repaired", server_name(server), spares=len(self._spares))
        self._reconcile()

    def _insert_spare(self, server: int) -> None:
        import bisect

        bisect.insort(self._spares, server)

    def _take_spare(self) -> int | None:
        if not self._spares:
            return None
        server = self._spares.pop(0)
        self.spares_used += 1
        self.min_spares = min(self.min_spares, len(self._spares))
        return server

    def _place(self, slot: int, server: int, status: int) -> None:
        self._empty.discard(slot)
        self.slot_server[slot] = server
        self.server_slot[server] = slot
        self._set_status(server, status)
        self._slot_effects(slot)

    def _count_interruption(self, cause: str) -> None:
        self.interruptions[cause] = self.interruptions.get(cause, 0) + 1

    # job-level -----------------------------------------------------------------------------

    def _local(self) -> bool:
        """Job-level faults stay inside one node group (isolate-group with the matching option)."""
        return self.policy == "isolate-group" and self.job_state == "running" and not self.hung

    def _pick_group(self) -> int:
        """A node group for a job-level fault, deterministic in sim time (no extra random draws)."""
        groups = -(-self.slots // self.group_size)
        return int(self.now * 1000.003) % groups

    def _crash(self, cause: str) -> None:
        self.faults += 1
        if self.scenario.reliability.isolate_crashes and self._local():
            group = self._pick_group()
            self.hung += 1  # collectives hang until the crashed rank is noticed
            self._emit("fault", f"group{group}", cause, job="hung", scope="group")
            self._push(self.now + self.scenario.reliability.detect_time, "detect_local", (group, cause))
            return
        if not self._interruptible():
            self._emit("fault", "job", cause, job="already down")
            return
        if self._training():
            self._rollback()
        self._count_interruption(cause)
        self.hung += 1
        self._emit("fault", "job", cause, job="hung", lost_tokens=self.lost_tokens)
        self._push(self.now + self.scenario.reliability.detect_time, "detect_crash", cause)

    def _on_detect_local(self, payload: tuple[int, str]) -> None:
        group, cause = payload
        self.hung -= 1
        self._drain(group, cause, "restart")

    def _drain(self, group: int, cause: str, why: str) -> None:
        """Take a node group out of training for restart_time; it rejoins with no spare and no rollback."""
        slot = group * self.group_size
        if slot >= self.slots or group in self._isolated:
            return
        self._isolate(slot, cause)
        self._push(self.now + self.scenario.reliability.restart_time, "group_back", slot)
        self._emit(why, f"group{group}", cause, back_at=self.now + self.scenario.reliability.restart_time)

    def _on_group_back(self, slot: int) -> None:
        self._restore_group(slot)

    def _on_detect_crash(self, cause: str) -> None:
        self.hung -= 1
        self._gens["restart"] += 1
        self.job_state = "stopped"
        self._emit("detect", "job", cause, job="stopped")
        self._reconcile()

    def _planned(self, cause: str) -> None:
        self.faults += 1
        if self.scenario.reliability.rolling_maintenance and self._local():
            self._drain(self._pick_group(), cause, "maintenance")
            return
        if not self._training():
            return
        self.committed, self.committed_train = self.progress, self.train_time  # checkpoint, then stop
        self._snapshot = None
        self._count_interruption(cause)
        self._stop_and_restart(self.scenario.reliability.checkpoint_cost, cause)

    def _stop_and_restart(self, extra: float, cause: str) -> None:
        self._gens["restart"] += 1
        self.job_state = "restarting"
        self._push(self.now + extra + self.scenario.reliability.restart_time, "restarted", self._gens["restart"])
        self._emit("stop", "job", cause, job="restarting")

    def _reconcile(self) -> None:
        """Fill empty slots with spares and restart the job when it can run again."""
        if self.hung:
            return
        global_restart = self.policy == "checkpoint-restart" or self.job_state != "running"
        if global_restart:
            for slot in sorted(self._empty):
                server = self._take_spare()
                if server is None:
                    break
                self._place(slot, server, ACTIVE)
                self._emit("spare_in", server_name(server), slot=slot, spares=len(self._spares))
            if self.job_state == "stopped":
                if not self._empty or self.policy == "isolate-group":
                    self._stop_and_restart(0.0, "restart")
                else:
                    self._emit("waiting", "job", "no spare", empty_slots=len(self._empty))
            return
        for slot in sorted(self._empty):
            if slot in self._joining:
                continue
            server = self._take_spare()
            if server is None:
                break
            self._set_status(server, JOINING)
            self._joining[slot] = server
            gen = self._join_gen[server] = self._join_gen.get(server, 0) + 1
            self._push(self.now + self.scenario.reliability.join_time, "joined", (slot, server, gen))
            self._emit("spare_join", server_name(server), slot=slot, spares=len(self._spares))

    def _on_joined(self, payload: tuple[int, int, int]) -> None:
        slot, server, gen = payload
        if self._joining.get(slot) == server:
            del self._joining[slot]
        if self._join_gen.get(server) != gen or self.status[server] != JOINING or self.slot_server[slot] >= 0:
            if self.status[server] == JOINING:
                self._set_status(server, SPARE)
                self._insert_spare(server)
            self._reconcile()
            return
        self._place(slot, server, IDLE)
        self._emit("joined", server_name(server), slot=slot)
        self._restore_group(slot)

    def _restore_group(self, slot: int) -> None:
        group = slot // self.group_size
        slots = self._group_slots(slot)
        if any(self.slot_server[s] < 0 or self.status[self.slot_server[s]] not in (IDLE, ACTIVE) for s in slots):
            return
        self._isolated.discard(group)
        for s in slots:
            self._set_status(self.slot_server[s], ACTIVE)
            self._set_slot_ok(s, True)
            self._slot_effects(s)
        self._emit("rejoin", f"group{group}", replicas_up=self.replicas_up, replicas=self.layout.dp)

    def _on_restarted(self, gen: int) -> None:
        if gen != self._gens["restart"] or self.job_state != "restarting":
            return
        if self.hung:
            self.job_state = "stopped"
            return
        if self.policy == "checkpoint-restart" and self._empty:
            self.job_state = "stopped"
            self._reconcile()
            return
        if not self._empty and not self._isolated and (self.status[self.slot_server] == ACTIVE).all():
            self._slot_ok[:] = True  # the common case: every slot holds a working server
            self._replica_bad = [0] * self.layout.dp
            self.replicas_up = self.layout.dp
        else:
            self._restart_partial()
        self.job_state = "running"
        self.seg_start = self.now
        self._snapshot = None
        self._emit("restarted", "job", replicas_up=self.replicas_up, replicas=self.layout.dp)
        if self._isolated:
            self._reconcile()

    def _restart_partial(self) -> None:
        """After a global restart: every filled slot trains again, except in groups that still miss a server."""
        filled = self.slot_server >= 0
        servers = self.slot_server[filled]
        st = self.status[servers]
        st[(st == IDLE) | (st == ACTIVE)] = ACTIVE
        self.status[servers] = st
        isolated = np.zeros(self._slot_group[-1] + 1, dtype=bool)
        isolated[self._slot_group[~filled]] = True
        self._isolated = set(np.flatnonzero(isolated).tolist())
        in_isolated = isolated[self._slot_group]
        idle = self.slot_server[filled & in_isolated]
        self.status[idle[self.status[idle] == ACTIVE]] = IDLE
        ok = filled & ~in_isolated
        ok[filled] &= self.status[servers] == ACTIVE
        self._slot_ok = ok
        self._recount_replicas()
        self._recount_status()

    # switches ---------------------------------------------------------------------------------

    def _fail_leaf(self, leaf: int, cause: str, repair: float) -> None:
        """A leaf switch takes its servers' fabric ports down; they are back when the leaf is."""
        self.faults += 1
        servers = self._servers_of_leaf(leaf)
        self._leaf_back[leaf] = max(self._leaf_back.get(leaf, 0.0), self.now + repair)
        self._emit("fault", f"leaf{leaf}", cause, servers=len(servers))
        for server in servers:
            self._fail_server(server, cause, repair, count=False)

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
        self.index.set_health(kind, index, health)
        self._switch_down[(kind, index)] = health
        self._emit("fault", f"{kind}{index}", cause, health=health)
        self._push(self.now + repair, "switch_back", (kind, index))

    def _on_switch_back(self, payload: tuple[str, int]) -> None:
        kind, index = payload
        if self._switch_down.pop((kind, index), None) is None:
            return
        self.index.set_health(kind, index, 1.0)
        self._emit("repaired", f"{kind}{index}")

    def _repair_target(self, target: Target) -> None:
        if target.kind in ("spine", "core"):
            self._on_switch_back((target.kind, target.index))
            return
        if target.kind == "leaf":
            self._leaf_back.pop(target.index, None)
            servers = self._servers_of_leaf(target.index)
        else:
            servers = [target.index // self.cpn if target.kind == "chip" else target.index]
        for server in servers:
            for token, g in list(self._gray.items()):
                if g.server == server:
                    self._end_gray(token)
            if self.status[server] == REPAIR:
                self._on_repaired(server)

    # gray faults ------------------------------------------------------------------------------

    def _start_gray(self, server: int, local: int, kind: str, factor: float, duration: float, cause: str) -> None:
        self.faults += 1
        token = self._gray_seq
        self._gray_seq += 1
        self._gray[token] = GrayFault(server, local, kind, factor, self.now + duration, cause)
        slot = int(self.server_slot[server])
        self._emit("gray", f"{server_name(server)}.{local}", cause, kind=kind, factor=factor, until=self.now + duration)
        if slot >= 0:
            self._slot_effects(slot)
        self._push(self.now + duration, "gray_end", token)
        rel = self.scenario.reliability
        if rel.evict_stragglers and rel.straggler_window < duration:
            self._push(self.now + rel.straggler_window, "evict", token)

    def _on_gray_end(self, token: int) -> None:
        self._end_gray(token)

    def _end_gray(self, token: int) -> None:
        g = self._gray.pop(token, None)
        if g is None:
            return
        slot = int(self.server_slot[g.server])
        if slot >= 0:
            self._slot_effects(slot)
        self._emit("gray_end", f"{server_name(g.server)}.{g.local}", g.cause, kind=g.kind)

    def _on_evict(self, token: int) -> None:
        g = self._gray.get(token)
        if g is None or self.status[g.server] != ACTIVE:
            return
        slot = int(self.server_slot[g.server])
        name = server_name(g.server)
        cause = f"evict:{g.cause}"
        if self.policy == "isolate-group" and self.job_state == "running" and not self.hung:
            self._vacate(slot)
            self._set_status(g.server, REPAIR)
            self._push(g.end, "repaired", g.server)
            self._emit("evict", name, g.cause, server="in_repair")
            self._isolate(slot, cause)
            self._reconcile()
            return
        if self.job_state != "running" or self.hung:
            return
        # checkpoint-restart: save, stop, swap the slow server for a spare, restart
        self.committed, self.committed_train = self.progress, self.train_time
        self._snapshot = None
        self._vacate(slot)
        self._set_status(g.server, REPAIR)
        self._push(g.end, "repaired", g.server)
        self._count_interruption(cause)
        self._emit("evict", name, g.cause, server="in_repair")
        self.job_state = "stopped"
        self._reconcile()

    def _slot_effects(self, slot: int) -> None:
        """Make the job's view of a slot's chips match the gray faults of the server now in it."""
        server = int(self.slot_server[slot])
        base = slot * self.cpn
        wanted: dict[tuple[str, int], float] = {}
        if server >= 0:
            for g in self._gray.values():
                if g.server == server:
                    key = (g.kind, g.local)
                    wanted[key] = min(wanted.get(key, 1.0), g.factor)
        if not wanted and slot not in self._touched_slots:
            return
        for local in range(self.cpn):
            chip = base + local
            speed = wanted.get(("straggle", local), 1.0)
            if speed != 1.0:
                self._slow[chip] = speed
            else:
                self._slow.pop(chip, None)
            flap = wanted.get(("flap", local), 1.0)
            if flap != 1.0:
                self._flap[chip] = flap
            else:
                self._flap.pop(chip, None)
            nic = wanted.get(("degrade", local), 1.0)
            if self.index.nic_health[chip] != nic:
                self.index.set_health("nic", chip, nic)
            up = wanted.get(("degrade_up", local), 1.0)
            if self.index.up_health[chip] != up:
                self.index.set_health("scale_up", chip, up)
        if wanted:
            self._touched_slots.add(slot)
        else:
            self._touched_slots.discard(slot)

    # ------------------------------------------------------------ results

    def summary(self) -> RunSummary:
        J = self.layout.chips
        wall_h = self.now / HOUR
        useful = self.progress / self.T0 / HOUR * J if self.T0 > 0 else 0.0
        train_h = self.train_time / HOUR
        lost_by = {
            "downtime": J * (wall_h - train_h - self.pause_time / HOUR),
            "checkpoints": J * self.pause_time / HOUR,
            "slowdown_and_width": J * self.degraded_chip_s / HOUR,
            "rolled_back": J * self.lost_tokens / self.T0 / HOUR if self.T0 > 0 else 0.0,
        }
        factors = self.base.factors.as_dict()
        factors["stability"] = self.stability
        interruptions = dict(sorted(self.interruptions.items()))
        interruptions["total"] = sum(self.interruptions.values())
        return RunSummary(
            duration_s=self.now,
            seed=self.seed,
            policy=self.policy,
            chips=J,
            ettr=self.ettr,
            stability=self.stability,
            tokens=self.progress,
            mean_tokens_per_s=self.progress / self.now if self.now > 0 else 0.0,
            fault_free_tokens_per_s=self.T0,
            interruptions=interruptions,
            isolations=self.isolations,
            faults=self.faults,
            lost_chip_hours=J * wall_h - useful,
            lost_chip_hours_by=lost_by,
            spares_used=self.spares_used,
            min_spares=self.min_spares,
            checkpoints=self.checkpoints,
            time_to_target_s=self.target_time,
            factors=factors,
            fingerprint=self.log.fingerprint if self.log is not None else None,
            events=self.events,
        )

    def write_log(self, path: str) -> None:
        if self.log is None or self.log.lines is None:
            raise RuntimeError("this simulation was not created with record=True")
        self.log.write(path, self.now, self.summary().as_dict())

    # ------------------------------------------------------------ async

    async def stream(self, clock: SimClock, until: float | None = None) -> AsyncIterator[Snapshot]:
        """Yield a snapshot every frame while sim time follows the clock (speed, pause, single step)."""
        last = clock.now()
        yield self.snapshot()
        while until is None or self.now < until:
            # frames on a steady beat: sleep what is left of this frame after the work of the last one
            await clock.sleep(max(0.0, last + clock.frame_interval - clock.now()))
            now = clock.now()
            if clock.take_step():
                self.step_to_next_event(limit=until)
            elif not clock.paused:
                dt = (now - last) * clock.speed
                self.run_until(self.now + dt if until is None else min(until, self.now + dt))
            last = now
            yield self.snapshot()
