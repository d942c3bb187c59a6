"""The time engine: a scenario run through sim time, with faults, recovery, and the fifth factor.

A `Simulation` is a small event core around a model, the way SimPy keeps its environment apart from
the processes it runs:

    scheduler.Scheduler      sim time and the heap of events to come
    job.Job                  the model: the job on its cluster, and what every event does to it, made of
      pool.ServerPool          the job's slots, the servers in them, the spare pool, replicas up
      gray.GrayFaults          slow chips and degraded or flapping links, as the job sees them
      fabric.SwitchHealth      switches down or degraded, in the run's own fabric index
      policies.RecoveryPolicy  checkpoint-restart or isolate-group: what a fault does to the job
    progress.Progress        tokens, checkpoints and time accounts, in closed form between events
    power.PowerMeter         the cluster's draw by state: energy, peak, swings, cost, in closed form too
    recorder.Recorder        every state change: counted, logged, told to listeners

This module runs the loop (take the next event, bring progress up to its time, let the job handle it),
records every state change, and reports: snapshots, the time series, the summary. Between events the
job's throughput is constant and everything is computed in closed form: the cost of a run grows with
the number of events, never with chips × time or with steps. A run is deterministic given (scenario,
seed, injected faults): natural faults come from a stream seeded by (seed, week), events are ordered by
(time, insertion order), and nothing else is random.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._version import __version__
from ..scenario.files import scenario_data
from ..scenario.models import Scenario
from ..topology.edits import index_for
from ..topology.index import FabricIndex
from .clock import SimClock
from .fabric import own_index
from .faults import Fault, FaultProcess, fault_classes
from .gray import GrayFault
from .job import Job
from .log import EventLog, scenario_hash
from .metrics import RunSummary, TimeSeries
from .policies import POLICIES
from .pool import STATUS
from .power import PowerMeter
from .progress import Progress
from .recorder import Recorder
from .scheduler import LATE, Scheduler
from .throughput import Throughput

__all__ = ["STATUS", "GrayFault", "Simulation", "Snapshot"]

HOUR = 3600.0


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
    spares: int = 0  # servers in the spare pool
    waiting_for_spares: bool = False  # a slot is empty and no spare can fill it
    spare_pool_empty_s: float = 0.0  # so far
    power_w: float | None = None  # the site's draw now (None: the chip or fabric gives no power figures)
    swing_w: float = 0.0  # the largest change of site power within a minute so far
    energy_mwh: float = 0.0  # so far
    tokens_per_kwh: float = 0.0  # so far
    facility_mw: float | None = None  # the facility's limit, when the scenario sets one


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
        power: bool = True,
        steps: dict | None = None,
    ) -> None:
        """`index`: the cluster's fabric index to start from (the run keeps its fault health in a copy of
        its own, so the index lent is never written). `record`: keep the whole event log (for write_log);
        `fingerprint`: hash the log without keeping it. `metrics`: sample a time series. `power`: meter the
        site's draw (False: the summary has no power figures, as for a chip without them; nothing else
        changes). `steps`: step estimates to share with other runs of the same job physics (Throughput)."""
        self.scenario = scenario
        self.seed = scenario.run.seed if seed is None else seed
        rel = scenario.reliability
        self.index = own_index(index) if index is not None else index_for(scenario.cluster, scenario.topology.edits)
        self.plan = self.index.plan
        self.throughput = Throughput(scenario, self.index, steps)
        self.layout = self.throughput.layout
        self.base = self.throughput.base
        self.T0 = self.base.tokens_per_s

        self.classes = fault_classes(scenario)
        process = self.process = FaultProcess(scenario, self.plan, self.seed)
        self.clock = Scheduler(feed=lambda t: ((when, "arrival", (fc, unit)) for when, fc, unit in process.due(t)))

        self.log: EventLog | None = None
        if record or fingerprint:  # the fingerprint is the hash of the log; by default only recorded runs keep one
            data = scenario_data(scenario)
            header = {"factorysim": __version__, "seed": self.seed, "scenario": data,
                      "scenario_sha256": scenario_hash(data)}  # fmt: skip
            self.log = EventLog(header, keep_all=record)
        self.recorder = Recorder(self.clock, self.log)
        self.exposure = 0.0  # seconds during which a fault would interrupt the job
        self.pool_empty_s = 0.0  # seconds with no spare server in the pool
        self.waiting_s = 0.0  # seconds with a slot that no spare can fill (the job waits for a repair)
        self.waiting_down_s = 0.0  # the part of waiting_s during which the job could not train

        pause = rel.async_checkpoint_cost if rel.checkpoint_async else rel.checkpoint_cost
        commit = self.recorder.commit if self.log is not None else None
        self.work = Progress(rel.checkpoint_interval, pause, self.T0, on_commit=commit)
        if scenario.workload.target_tokens:
            self.work.watch(scenario.workload.target_tokens)
        if scenario.challenge is not None and scenario.challenge.goal == "tokens":
            self.work.watch(scenario.challenge.target)
        self.job = Job(scenario, self.plan, self.index, self.throughput, self.clock, self.work, self.recorder,
                       self.classes)  # fmt: skip
        self.power = self._power_meter() if power else None

        interval = sample_interval or max(60.0, scenario.run.duration / 1000)
        self.series = TimeSeries(interval) if metrics else None
        for i, f in enumerate(scenario.faults):
            fault = Fault(f.target, f.kind, f.factor, f.duration, cause="scheduled")
            fault.check(self.plan, f"faults[{i}]")
            self.clock.schedule(f.at, "inject", fault, LATE)
        self.work.rebase(self.now)
        if self.series is not None:
            self._sample()

    # ------------------------------------------------------------ public API: time

    @property
    def now(self) -> float:
        """Sim time, seconds."""
        return self.clock.now

    @property
    def next_event_time(self) -> float | None:
        return self.clock.next_time()

    def run_until(self, t: float) -> None:
        """Advance sim time to t, handling every event on the way."""
        if t < self.now:
            raise ValueError(f"cannot run back in time: now {self.now:g} s, asked {t:g} s")
        clock, job = self.clock, self.job
        clock.fill(t)
        while (event := clock.pop_until(t)) is not None:
            when, kind, payload = event
            self._integrate(when)
            job.handle(kind, payload)
            job.refresh_rate()
            self.work.rebase(clock.now)
            if self.power is not None:
                self.power.update(job, self.work, clock.now)
            if self.series is not None:
                self._sample()
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
        # after every other event of the same instant: that is where an interactive injection lands (the run
        # has handled everything up to now), so a replay puts it there too
        self.clock.schedule(when, "inject", fault, LATE)
        if when == self.now:
            self.run_until(self.now)

    @property
    def policy(self) -> str:
        """The recovery policy in force: "checkpoint-restart" or "isolate-group"."""
        return self.job.recovery.name

    def set_policy(self, policy: str) -> None:
        """Switch the recovery policy for the faults that come next."""
        if policy not in POLICIES:
            allowed = ", ".join(f'"{p}"' for p in POLICIES)
            raise ValueError(f'unknown policy "{policy}"; allowed: {allowed}')
        if policy != self.policy:
            self.job.set_policy(policy)
            self.emit("policy", "job", policy=policy)

    # ------------------------------------------------------------ public API: state

    @property
    def job_state(self) -> str:
        """running, restarting or stopped (see snapshot().job_state for hung and reduced)."""
        return self.job.state

    @property
    def status(self) -> np.ndarray:
        """Each server's state, an index into STATUS."""
        return self.job.pool.status

    @property
    def server_slot(self) -> np.ndarray:
        """The job slot each server holds (-1: none)."""
        return self.job.pool.server_slot

    @property
    def slot_server(self) -> np.ndarray:
        """The server in each job slot (-1: empty)."""
        return self.job.pool.slot_server

    @property
    def replicas_up(self) -> int:
        return self.job.pool.replicas_up

    @property
    def spares_used(self) -> int:
        return self.job.pool.spares_used

    @property
    def interruptions(self) -> dict[str, int]:
        """Job interruptions by cause."""
        return self.job.interruptions

    @property
    def isolations(self) -> int:
        return self.job.isolations

    @property
    def faults(self) -> int:
        return self.job.faults

    @property
    def progress(self) -> float:
        """Tokens in the model now (work since the last checkpoint included)."""
        return self.work.tokens

    @property
    def committed(self) -> float:
        """Tokens in the last durable checkpoint."""
        return self.work.committed

    @property
    def lost_tokens(self) -> float:
        return self.work.lost_tokens

    @property
    def gray_faults(self) -> list[GrayFault]:
        """Gray faults in force now (physical server and chip)."""
        return list(self.job.gray)

    def switch_health(self, kind: str, index: int) -> float | None:
        """Health of a leaf, spine or core switch that is down or degraded now (None: healthy)."""
        return self.job.switches.health(kind, index, self.now)

    def switches_unhealthy(self, kind: str) -> bool:
        """Is any switch of this kind (leaf, spine, core) down or degraded now?"""
        return self.job.switches.any_unhealthy(kind, self.now)

    def chip_counts(self) -> dict[str, int]:
        return self.job.pool.chip_counts()

    def watch(self, tokens: float) -> None:
        """Record the sim time at which the run first holds this many tokens."""
        self.work.watch(tokens)

    def target_time_for(self, tokens: float) -> float | None:
        return self.work.reached_at(tokens)

    @property
    def target_time(self) -> float | None:
        """When the workload's target_tokens was first reached (None: not yet)."""
        target = self.scenario.workload.target_tokens
        return self.work.reached_at(target) if target else None

    @property
    def tokens_per_s(self) -> float:
        return self.job.rate if self.job.training else 0.0

    @property
    def stability(self) -> float:
        """S: tokens trained over what the same cluster with no faults and no checkpoints trains in the time."""
        return self.work.tokens / (self.T0 * self.now) if self.now > 0 and self.T0 > 0 else 1.0

    @property
    def ettr(self) -> float:
        """Effective training time ratio: productive training time (not rolled back) over wall time."""
        return (self.work.train_time - self.work.lost_train) / self.now if self.now > 0 else 1.0

    def _power_meter(self) -> PowerMeter | None:
        from ..perf.power import PowerUnknown

        try:
            meter = PowerMeter(self.scenario, self.index, self.base)
        except PowerUnknown:
            return None
        meter.update(self.job, self.work, self.now)
        return meter

    # ------------------------------------------------------------ the closed form between events

    def _integrate(self, t: float) -> None:
        a = self.now
        if t <= a:
            return
        series = self.series
        if series is not None:
            while series.next_sample < t:
                s = max(series.next_sample, a)
                self._advance_to(s)
                self._sample()
                series.next_sample = s + series.interval
        self._advance_to(t)

    def _advance_to(self, t: float) -> None:
        """Bring the run to time t. Values come in closed form from the last event (the anchor), so the
        result does not depend on how time between two events is split (frames, samples, advance calls)."""
        now = self.clock.now
        if t <= now:
            return
        job = self.job
        dt = t - now
        if job.interruptible:
            self.exposure += dt
        if not job.pool.spares:
            self.pool_empty_s += dt
            if job.waiting_for_spares:
                self.waiting_s += dt
                if not job.training:
                    self.waiting_down_s += dt
        if self.power is not None:
            self.power.advance(self.work, now, t)
        if job.training:
            self.work.advance(now, t, job.rate)
        self.clock.now = t

    # ------------------------------------------------------------ the event log

    @property
    def listeners(self) -> list[Callable[[dict[str, Any]], None]]:
        """Called with every state change as it is recorded (the sandbox's event log)."""
        return self.recorder.listeners

    @property
    def events(self) -> int:
        """State changes so far (checkpoint commits are counted in `checkpoints`)."""
        return self.recorder.events

    def emit(self, kind: str, target: str, cause: str | None = None, at: float | None = None, /, **effect: Any) -> None:
        """Record a state change: to the log (if any) and to every listener."""
        self.recorder.emit(kind, target, cause, at, **effect)

    # ------------------------------------------------------------ results

    def summary(self) -> RunSummary:
        J = self.layout.chips
        w = self.work
        wall_h = self.now / HOUR
        useful = w.tokens / self.T0 / HOUR * J if self.T0 > 0 else 0.0
        train_h = w.train_time / HOUR
        waiting_h = self.waiting_down_s / HOUR
        lost_by = {
            "downtime": J * (wall_h - train_h - w.pause_time / HOUR - waiting_h),
            "waiting_for_spares": J * waiting_h,
            "checkpoints": J * w.pause_time / HOUR,
            "slowdown_and_width": J * w.degraded_chip_s / HOUR,
            "rolled_back": J * w.lost_tokens / self.T0 / HOUR if self.T0 > 0 else 0.0,
        }
        factors = self.base.factors.as_dict()
        factors["stability"] = self.stability
        interruptions = dict(sorted(self.job.interruptions.items()))
        interruptions["total"] = sum(self.job.interruptions.values())
        return RunSummary(
            duration_s=self.now,
            seed=self.seed,
            policy=self.policy,
            chips=J,
            ettr=self.ettr,
            stability=self.stability,
            tokens=w.tokens,
            mean_tokens_per_s=w.tokens / self.now if self.now > 0 else 0.0,
            fault_free_tokens_per_s=self.T0,
            interruptions=interruptions,
            isolations=self.job.isolations,
            faults=self.job.faults,
            lost_chip_hours=J * wall_h - useful,
            lost_chip_hours_by=lost_by,
            spares_used=self.job.pool.spares_used,
            min_spares=self.job.pool.min_spares,
            spare_pool_empty_s=self.pool_empty_s,
            waiting_for_spares_s=self.waiting_s,
            checkpoints=w.checkpoints,
            time_to_target_s=self.target_time,
            factors=factors,
            fingerprint=self.log.fingerprint if self.log is not None else None,
            events=self.events,
            power=None
            if self.power is None
            else self.power.summary(self.now, w.tokens, w.lost_tokens, w.tokens / self.now if self.now > 0 else 0.0),
        )

    def write_log(self, path: str) -> None:
        if self.log is None or self.log.lines is None:
            raise RuntimeError("this simulation was not created with record=True")
        self.log.write(path, self.now, self.summary().as_dict())

    def _sample(self) -> None:
        assert self.series is not None
        f = self.job.estimate.factors
        c = self.job.pool.chip_counts()
        mfu = self.job.estimate.mfu * (
            self.tokens_per_s / self.job.estimate.tokens_per_s if self.job.estimate.tokens_per_s else 0
        )
        self.series.add((self.now, self.work.committed, self.work.tokens, self.tokens_per_s, mfu, self.ettr,
                         self.stability, c["healthy"], c["failed"], c["in_repair"], c["spare"],
                         f.generality, f.chip, f.node, f.cluster,
                         self.power.sample_w(self.now) if self.power is not None else float("nan")))  # fmt: skip

    def snapshot(self) -> Snapshot:
        f = self.job.estimate.factors.as_dict()
        f["stability"] = self.stability
        rate = self.tokens_per_s
        return Snapshot(
            t=self.now,
            job_state=self._state_name(),
            tokens=self.work.committed,
            progress=self.work.tokens,
            tokens_per_s=rate,
            fault_free_tokens_per_s=self.T0,
            mfu=self.job.estimate.mfu * rate / self.job.estimate.tokens_per_s
            if self.job.estimate.tokens_per_s
            else 0.0,
            ettr=self.ettr,
            stability=self.stability,
            factors=f,
            chips=self.job.pool.chip_counts(),
            replicas_up=self.replicas_up,
            replicas=self.layout.dp,
            interruptions=sum(self.job.interruptions.values()),
            isolations=self.job.isolations,
            policy=self.policy,
            spares=len(self.job.pool.spares),
            waiting_for_spares=not self.job.pool.spares and self.job.waiting_for_spares,
            spare_pool_empty_s=self.pool_empty_s,
            **self._power_now(),
        )

    def _power_now(self) -> dict[str, Any]:
        p = self.power
        if p is None:
            return {}
        mwh = p.energy_j / 3.6e9
        return {"power_w": p.now_w, "swing_w": p.swing_w, "energy_mwh": mwh,
                "tokens_per_kwh": self.work.tokens / (mwh * 1000) if mwh > 0 else 0.0,
                "facility_mw": self.scenario.facility.power_mw}  # fmt: skip

    def _state_name(self) -> str:
        if self.job.hung:
            return "hung"
        if self.job.state == "running" and self.replicas_up < self.layout.dp:
            return "running (reduced)"
        return self.job.state

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
