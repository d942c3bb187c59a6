"""Recovery policies: what the job does when a server fails, is detected, is evicted, or comes back.

One object per policy, behind one interface. The job holds the policy in force and may switch it live;
events scheduled under one policy (a spare joining, a group coming back) are handled by the job itself,
whichever policy is in force when they land.

- checkpoint-restart: a fail-stop fault hangs the job and loses the work since the last checkpoint; at
  detection the job stops, spares fill the empty slots (or the job waits for repairs), and the job
  restarts after the restart time.
- isolate-group: the job hangs until detection, then only the failed node group drops out (with every
  data-parallel replica that has a rank in it); the rest keep training with no rollback, and a hot spare
  joins after the join time. Job-level crashes restart the whole job from the last checkpoint unless
  `isolate_crashes` keeps them inside one node group; `rolling_maintenance` drains one group at a time.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from ..scenario.models import ReliabilityConfig
from .gray import GrayFault
from .pool import ServerPool
from .progress import Progress


class JobControl(Protocol):
    """What a policy sees of the job and may do to it (the job in job.py)."""

    rel: ReliabilityConfig
    state: str  # running | restarting | stopped
    hung: int  # undetected faults hanging the job
    pool: ServerPool
    work: Progress

    def emit(self, kind: str, target: str, cause: str | None = None, /, **effect: object) -> None: ...
    def count_interruption(self, cause: str) -> None: ...
    def stop_detected(self, server: int, cause: str) -> None: ...
    def restart_job(self, extra: float, cause: str) -> None: ...
    def reconcile(self) -> None: ...
    def fill_slots(self) -> None: ...
    def join_spares(self) -> None: ...
    def take_out(self, server: int, back_at: float) -> int: ...
    def emit_evict(self, gray: GrayFault) -> None: ...
    def isolate(self, slot: int, cause: str) -> None: ...
    def crash_group(self, cause: str) -> None: ...
    def pick_group(self) -> int: ...
    def drain(self, group: int, cause: str, why: str) -> None: ...


class RecoveryPolicy:
    """The decisions a recovery policy makes; the job carries them out. Policies hold no state of their own."""

    name: ClassVar[str]

    def rank_lost(self, job: JobControl, cause: str, was_training: bool, interrupts: bool) -> None:
        """A server in the job failed: the job hangs. What else is lost at this moment?"""
        raise NotImplementedError

    def detected(self, job: JobControl, slot: int, server: int, cause: str) -> None:
        """A failed server was detected and taken out of its slot (now empty)."""
        raise NotImplementedError

    def reconcile(self, job: JobControl) -> None:
        """Fill empty slots and restart the job when it can run again (never called while the job hangs)."""
        raise NotImplementedError

    def evict(self, job: JobControl, gray: GrayFault) -> bool:
        """Take out a server that stayed slow for the straggler window; False: it stays, slowed, for now (it is
        tried again when a spare frees up or the job runs again)."""
        raise NotImplementedError

    def can_restart(self, job: JobControl) -> bool:
        """May a scheduled restart go ahead with the slots as they are?"""
        raise NotImplementedError

    def may_run_narrow(self, job: JobControl) -> bool:
        """May the job train with fewer data-parallel replicas than it was launched with?"""
        raise NotImplementedError

    def crash_in_group(self, job: JobControl, cause: str) -> bool:
        """Handle a job-level crash inside one node group; False: it takes the whole job down."""
        return False

    def maintain_in_group(self, job: JobControl, cause: str) -> bool:
        """Handle planned maintenance one node group at a time; False: the whole job stops for it."""
        return False


class CheckpointRestart(RecoveryPolicy):
    """Any fail-stop fault stops the whole job, which restarts from the last checkpoint on a full set of slots."""

    name = "checkpoint-restart"

    def rank_lost(self, job: JobControl, cause: str, was_training: bool, interrupts: bool) -> None:
        if was_training:
            job.work.roll_back()
        if interrupts:
            job.count_interruption(cause)

    def detected(self, job: JobControl, slot: int, server: int, cause: str) -> None:
        job.stop_detected(server, cause)

    def reconcile(self, job: JobControl) -> None:
        job.fill_slots()
        if job.state == "stopped":
            if not job.pool.empty:
                job.restart_job(0.0, "restart")
            else:
                job.emit("waiting", "job", "no spare", empty_slots=len(job.pool.empty))

    def evict(self, job: JobControl, gray: GrayFault) -> bool:
        # Only with a spare: without one the job would stop until a server is back, so it trains on slowed.
        # It saves first (paying the checkpoint cost, so nothing is lost), swaps in the spare, restarts.
        if not job.pool.spares or job.state != "running" or job.hung:
            return False
        cause = f"evict:{gray.cause}"
        job.work.save_now()
        job.take_out(gray.server, gray.end)
        job.count_interruption(cause)
        job.emit_evict(gray)
        job.fill_slots()
        job.restart_job(job.rel.checkpoint_cost, cause)
        return True

    def can_restart(self, job: JobControl) -> bool:
        return not job.pool.empty

    def may_run_narrow(self, job: JobControl) -> bool:
        return bool(job.pool.isolated)


class IsolateGroup(RecoveryPolicy):
    """Only the failed node group drops out; the rest train on, and a hot spare joins."""

    name = "isolate-group"

    def _local(self, job: JobControl) -> bool:
        """The job is training normally, so a fault can stay inside one node group."""
        return job.state == "running" and not job.hung

    def rank_lost(self, job: JobControl, cause: str, was_training: bool, interrupts: bool) -> None:
        return None  # the job hangs until detection, then isolates: nothing rolls back

    def detected(self, job: JobControl, slot: int, server: int, cause: str) -> None:
        if job.state == "running":
            job.isolate(slot, cause)
        else:
            job.stop_detected(server, cause)

    def reconcile(self, job: JobControl) -> None:
        if job.state != "running":
            job.fill_slots()
            if job.state == "stopped":
                job.restart_job(0.0, "restart")
            return
        job.join_spares()

    def evict(self, job: JobControl, gray: GrayFault) -> bool:
        # No save and no rollback: the slow server's group drops out and a spare joins it. Without a spare the
        # group stays out until one frees up (the evicted server itself, once its fault clears): training a
        # group narrower costs less than running every step at the straggler's pace, unless no replica is left.
        if not self._local(job):
            return False
        slot = int(job.pool.server_slot[gray.server])
        if not job.pool.spares and job.pool.replicas_left_without(slot) == 0:
            return False
        job.take_out(gray.server, gray.end)
        job.emit_evict(gray)
        job.isolate(slot, f"evict:{gray.cause}")
        job.reconcile()
        return True

    def can_restart(self, job: JobControl) -> bool:
        return True

    def may_run_narrow(self, job: JobControl) -> bool:
        return True

    def crash_in_group(self, job: JobControl, cause: str) -> bool:
        if not (job.rel.isolate_crashes and self._local(job)):
            return False
        job.crash_group(cause)
        return True

    def maintain_in_group(self, job: JobControl, cause: str) -> bool:
        if not (job.rel.rolling_maintenance and self._local(job)):
            return False
        job.drain(job.pick_group(), cause, "maintenance")
        return True


POLICIES: dict[str, RecoveryPolicy] = {p.name: p for p in (CheckpointRestart(), IsolateGroup())}
