"""The cluster's draw as a run goes: energy, mean and peak power, swings, energy lost to faults, cost.

What each server draws follows its state and the job's (figures from perf.power's model of the scenario):

    a server training          its chips at the step's mean draw (its phases: GEMM-bound, memory-bound,
                               waiting, from the step estimate in force, so a straggler or a narrower job
                               changes it; a flapping link's down time is waiting) and its host busy
    the job in a checkpoint    every chip idle, hosts idle (assumption: a blocking save is storage I/O;
      pause, restarting,       the chips wait for it)
      stopped or waiting for
      spares
    the job hung               chips at their waiting draw (collectives spin until the fault is detected),
                               hosts idle
    a spare, an idle server of an isolated group, a spare joining: idle
    failed or in repair        nothing (it is powered off)

The fabric draws the same whatever the job does; the facility multiplies by its PUE. The draw is constant
between events except for the checkpoint cycle, whose training and pause times come in closed form from the
job's progress: energy is integrated exactly with no stepping, and the cost of a run still grows with its
events only.

The largest swing within a minute is the largest change of site power between two levels in force less than
60 s apart: a synchronous checkpoint pause (training to idle and back), a hang, a stop and a restart. Levels
are step means: inside a step the compute/communication square wave swings faster than any meter samples
(`StepPower.phase_swing_w` in the estimate).

Energy lost to faults splits as lost chip-hours do: each token the run holds is charged what it costs the
same cluster fault-free with no checkpoints (J per token at the fault-free draw); the rest is lost, by where
it went. Servers off in repair while the job trains draw less than the fault-free cluster's idle spares: that
term is negative.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ..perf.power import (
    HOURS_PER_YEAR,
    J_PER_KWH,
    PowerModel,
    capex,
    chip_step_energy,
    fabric_inventory,
    fabric_w,
    gemm_share,
    power_model,
    step_phases,
)
from ..perf.step import StepEstimate
from ..scenario.models import Scenario
from ..topology.index import FabricIndex
from .pool import ACTIVE, FAILED, IDLE, JOINING, REPAIR, SPARE

if TYPE_CHECKING:
    from .job import Job
    from .progress import Progress

SWING_WINDOW_S = 60.0


class PowerMeter:
    """Site power by state, integrated between events; the run's energy, peak, swing and cost."""

    def __init__(self, scenario: Scenario, index: FabricIndex, base: StepEstimate) -> None:
        """Raises perf.power.PowerUnknown when the chip or the fabric gives no power figures."""
        self.scenario = scenario
        pm: PowerModel = power_model(scenario)
        self.model = pm
        self.share = gemm_share(scenario)
        inv = fabric_inventory(index)
        self.fabric_w = fabric_w(pm, inv)
        total, _ = capex(pm, scenario.cluster.nodes, inv)
        self.capex_usd_per_hour = None if total is None else total / (pm.amortization_years * HOURS_PER_YEAR)
        self._chip_w: dict[int, tuple[StepEstimate, float]] = {}
        c = scenario.cluster
        self.fault_free_w = (
            c.job_nodes * pm.server_w(self.step_chip_w(base)) + c.spare_nodes * pm.idle_server_w + self.fabric_w
        ) * pm.pue
        self.j_per_token = self.fault_free_w / base.tokens_per_s if base.tokens_per_s > 0 else 0.0

        self.energy_j = 0.0
        self.by = {"down": 0.0, "waiting_for_spares": 0.0, "checkpoints": 0.0, "training": 0.0}  # J by state
        self.off_w = 0.0  # what the servers off (failed, in repair) would draw idle as spares, site W
        self.off_j = 0.0  # ... integrated while the job trains
        self.train_w = self.pause_w = self.level_w = 0.0  # site W: training, in a checkpoint pause, not training
        self.training = False
        self.waiting = False  # down and waiting for spares
        self.peak_w = 0.0
        self.swing_w = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (since, site W) of levels in the last minute
        self._sampled = (0.0, 0.0)  # (t, energy) at the last time-series row
        self._anchor: tuple[float, float, dict[str, float], float] = (0.0, 0.0, dict(self.by), 0.0)

    # ------------------------------------------------------------ levels

    def step_chip_w(self, e: StepEstimate) -> float:
        """One training chip's mean draw over a step of estimate `e`, W."""
        found = self._chip_w.get(id(e))
        if found is not None and found[0] is e:
            return found[1]
        pm = self.model
        w = chip_step_energy(pm.chip, step_phases(e, self.share)) / e.step_time_s if e.step_time_s > 0 else 0.0
        w = w if e.step_time_s > 0 else pm.chip.idle_w
        if len(self._chip_w) > 4096:
            self._chip_w.clear()
        self._chip_w[id(e)] = (e, w)
        return w

    def update(self, job: Job, work: Progress, now: float) -> None:
        """The levels in force after an event changed the job's state."""
        pm, pool = self.model, job.pool
        n = pool._status_count
        active = n[ACTIVE]
        idle_servers = n[SPARE] + n[IDLE] + n[JOINING]
        idle_w = pm.idle_server_w
        rest = idle_servers * idle_w + self.fabric_w
        self._anchor = (now, self.energy_j, dict(self.by), self.off_j)
        self.training = job.training
        self.waiting = not self.training and not pool.spares and job.waiting_for_spares
        self.pause_w = ((active * idle_w) + rest) * pm.pue
        self.off_w = (n[FAILED] + n[REPAIR]) * idle_w * pm.pue
        if self.training:
            est = job.estimate
            uptime = job.rate / est.tokens_per_s if est.tokens_per_s > 0 else 1.0
            chip_w = uptime * self.step_chip_w(est) + (1 - uptime) * pm.chip.waiting_w
            dp = job.layout.dp
            train = active if pool.replicas_up >= dp else min(active, round(pool.slots * pool.replicas_up / dp))
            self.train_w = (train * pm.server_w(chip_w) + (active - train) * idle_w + rest) * pm.pue
            level = self.pause_w if self._in_pause(work, now) else self.train_w
        else:
            per = pm.chips_per_server * pm.chip.waiting_w + pm.host_idle_w if job.hung else idle_w
            self.level_w = (active * per + rest) * pm.pue
            level = self.level_w
        self._enter(now, level)

    def _in_pause(self, work: Progress, t: float) -> bool:
        cyc = work.tau + work.delta
        return work.delta > 0 and (t - work.seg_start) % cyc >= work.tau

    def _enter(self, t: float, level: float) -> None:
        """A level starts at t: the swing against every level in force within the last minute."""
        recent = self._recent
        if recent and recent[-1][1] == level:
            return
        while len(recent) > 1 and recent[1][0] <= t - SWING_WINDOW_S:
            recent.popleft()
        for _, w in recent:
            self.swing_w = max(self.swing_w, abs(level - w))
        recent.append((t, level))

    # ------------------------------------------------------------ between events

    def advance(self, work: Progress, a: float, t: float) -> None:
        """Bring the accounts from a to t at the levels in force. Like the job's progress, they come in closed form
        from the last event (the anchor), so they do not depend on how the time since is split."""
        if t <= a:
            return
        a0, e0, by0, off0 = self._anchor
        dt = t - a0
        if self.training:
            seg = work.seg_start
            trained = work.trained(t - seg) - work.trained(a0 - seg)
            paused = dt - trained
            e_train, e_pause = self.train_w * trained, self.pause_w * paused
            self.by["training"] = by0["training"] + e_train
            self.by["checkpoints"] = by0["checkpoints"] + e_pause
            self.energy_j = e0 + e_train + e_pause
            self.off_j = off0 + self.off_w * dt
            if work.trained(t - seg) > work.trained(a - seg):
                self.peak_w = max(self.peak_w, self.train_w)
            if (t - a) > work.trained(t - seg) - work.trained(a - seg):
                self.peak_w = max(self.peak_w, self.pause_w)
            if work.delta > 0 and trained > 0 and paused > 0:
                self._boundaries(work, a, t)
        else:
            key = "waiting_for_spares" if self.waiting else "down"
            self.by[key] = by0[key] + self.level_w * dt
            self.energy_j = e0 + self.level_w * dt
            self.peak_w = max(self.peak_w, self.level_w)

    def _boundaries(self, work: Progress, a: float, t: float) -> None:
        """The checkpoint cycle's last two level changes in (a, t]: the pause against training within a minute."""
        seg, tau, cyc = work.seg_start, work.tau, work.tau + work.delta
        k = (t - seg) // cyc
        start = seg + k * cyc
        # (time, level after it): the previous save starts, training resumes, this cycle's save starts
        changes = [(start - work.delta, self.pause_w), (start, self.train_w), (start + tau, self.pause_w)]
        for when, level in [c for c in changes if a < c[0] <= t][-2:]:
            self._enter(when, level)

    def sample_w(self, t: float) -> float:
        """Mean site power since the previous time-series row (the level in force for a row at the same time)."""
        t0, e0 = self._sampled
        self._sampled = (t, self.energy_j)
        if t > t0:
            return (self.energy_j - e0) / (t - t0)
        return self._recent[-1][1] if self._recent else 0.0

    @property
    def now_w(self) -> float:
        """Site power in force now."""
        return self._recent[-1][1] if self._recent else 0.0

    # ------------------------------------------------------------ results

    def summary(self, duration_s: float, tokens: float, lost_tokens: float, mean_rate: float) -> dict[str, Any]:
        """Energy, power, swing, energy lost by cause and cost of the run so far."""
        pm = self.model
        hours = duration_s / 3600
        mwh = self.energy_j / J_PER_KWH / 1000
        jt = self.j_per_token
        lost_by = {
            "downtime": self.by["down"],
            "waiting_for_spares": self.by["waiting_for_spares"],
            "checkpoints": self.by["checkpoints"],
            "slowdown_and_width": self.by["training"] + self.off_j - (tokens + lost_tokens) * jt,
            "rolled_back": lost_tokens * jt,
            # the fault-free cluster keeps every spare idle; a server off in repair while the job trains
            # on a spare draws nothing: energy not drawn, against the fault-free draw
            "servers_off": -self.off_j,
        }
        electricity = mwh * 1000 * pm.usd_per_kwh
        hardware = None if self.capex_usd_per_hour is None else self.capex_usd_per_hour * hours
        usd = electricity + (hardware or 0.0)
        out: dict[str, Any] = {
            "energy_mwh": mwh,
            "mean_w": self.energy_j / duration_s if duration_s > 0 else 0.0,
            "peak_w": self.peak_w,
            "fault_free_w": self.fault_free_w,
            "swing_w": self.swing_w,
            "tokens_per_kwh": tokens / (mwh * 1000) if mwh > 0 else 0.0,
            "lost_energy_mwh": sum(lost_by.values()) / J_PER_KWH / 1000,
            "lost_energy_mwh_by": {k: v / J_PER_KWH / 1000 for k, v in lost_by.items()},
            "pue": pm.pue,
            "usd_per_kwh": pm.usd_per_kwh,
            "electricity_usd": electricity,
            "hardware_usd": hardware,
            "capex_usd_per_hour": self.capex_usd_per_hour,
            "usd": usd,
            "usd_per_hour": usd / hours if hours > 0 else 0.0,
            "usd_per_million_tokens": usd / tokens * 1e6 if tokens > 0 else None,
            "carbon_g_per_kwh": pm.carbon_g_per_kwh,
            "co2_t": mwh * pm.carbon_g_per_kwh / 1000,
            "facility_mw": self.scenario.facility.power_mw,
        }
        target = self.scenario.workload.target_tokens
        if target and tokens > 0 and mean_rate > 0:
            share = target / tokens  # at the run's mean rate, energy and cost per token
            out["to_target"] = {
                "hours": target / mean_rate / 3600,
                "energy_mwh": mwh * share,
                "usd": usd * share,
                "electricity_usd": electricity * share,
                "co2_t": out["co2_t"] * share,
            }
        return out
