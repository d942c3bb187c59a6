"""The job's progress and checkpoints, in closed form between events.

A running segment starts when the job (re)starts and alternates τ seconds of training with δ seconds of a
blocking save. Between events the job's throughput T is constant, so tokens, training time, checkpoint
commits and the time a token target is reached follow from the last event (the anchor) with no stepping:
the result does not depend on how the time between two events is split.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class Progress:
    """Tokens trained, tokens saved by checkpoints, and the time accounts they come from."""

    def __init__(self, interval: float, pause: float, fault_free_rate: float,
                 on_commit: Callable[[float, float], None] | None = None) -> None:  # fmt: skip
        """`interval` τ and `pause` δ of the checkpoint cycle; `fault_free_rate` T0 (tokens/s) for the slowdown
        account; `on_commit(t, tokens)` is told every commit (when the run is logged), else only the last counts."""
        self.tau, self.delta = interval, pause
        self.T0 = fault_free_rate
        self.on_commit = on_commit
        self.seg_start = 0.0  # when the running segment (and its checkpoint cycle) began
        self.tokens = 0.0  # tokens in the model now
        self.committed = 0.0  # tokens in the last durable checkpoint
        self.train_time = 0.0  # seconds spent training (work later rolled back included)
        self.committed_train = 0.0  # train_time at the last durable checkpoint (or the last loss)
        self.lost_train = 0.0  # training seconds whose work was rolled back
        self.lost_tokens = 0.0
        self.pause_time = 0.0  # seconds in checkpoint saves
        self.degraded_chip_s = 0.0  # Σ train dt × (1 - T/T0): output lost to slowdowns and fewer replicas
        self.checkpoints = 0
        self._saving: tuple[float, float] | None = None  # (tokens, train time) at the start of a save in progress
        self._watched: dict[float, float | None] = {}  # token counts -> sim time first reached
        self.rebase(0.0)

    # ------------------------------------------------------------ the checkpoint cycle

    def trained(self, x: float) -> float:
        """Training time in the first x seconds of a running segment (checkpoint pauses excluded)."""
        tau, delta = self.tau, self.delta
        if x <= 0:
            return 0.0
        k = math.floor(x / (tau + delta))
        return k * tau + min(x - k * (tau + delta), tau)

    def elapsed_for(self, trained: float) -> float:
        """Inverse of `trained`: the segment time at which `trained` seconds of training are done."""
        tau, delta = self.tau, self.delta
        k = math.floor(trained / tau) if trained > 0 else 0
        rest = trained - k * tau
        if rest == 0 and k > 0:
            return k * (tau + delta) - delta
        return k * (tau + delta) + rest

    # ------------------------------------------------------------ closed form

    def rebase(self, now: float) -> None:
        """Make the present the anchor of the closed form (after an event changed the state)."""
        self._anchor = (now, self.tokens, self.train_time, self.degraded_chip_s, self.pause_time)

    def advance(self, now: float, t: float, rate: float) -> None:
        """Train from `now` to `t` at `rate` tokens/s (constant since the anchor), committing checkpoints."""
        T = rate
        seg = self.seg_start
        tau, delta = self.tau, self.delta
        cyc = tau + delta
        a0 = self._anchor[0]
        base = self.trained(a0 - seg)

        def at(x: float) -> tuple[float, float]:
            d = self.trained(x - seg) - base
            return self._anchor[1] + T * d, self._anchor[2] + d

        k_prev, k_t = math.floor((now - seg) / cyc), math.floor((t - seg) / cyc)
        if k_t > k_prev:
            # every commit is told when the run is logged; otherwise only the last one matters
            for k in range(k_prev + 1, k_t + 1) if self.on_commit is not None else (k_t,):
                commit, start = seg + k * cyc, seg + k * cyc - delta
                snap = self._saving if start <= a0 else at(start)
                self._saving = None
                if snap is not None:
                    self.committed, self.committed_train = snap
                    if self.on_commit is not None:
                        self.on_commit(commit, snap[0])
            self.checkpoints += k_t - k_prev
        if (t - seg) - k_t * cyc > tau:  # t falls inside a save: remember where it started
            start = seg + k_t * cyc + tau
            if start > a0:
                self._saving = at(start)
        prog, train = at(t)
        trained = train - self._anchor[2]
        for target, reached in self._watched.items():
            if reached is None and prog >= target > self._anchor[1]:
                self._watched[target] = seg + self.elapsed_for(base + (target - self._anchor[1]) / T)
        self.degraded_chip_s = self._anchor[3] + (trained * max(0.0, 1 - T / self.T0) if self.T0 > 0 else 0.0)
        self.pause_time = self._anchor[4] + (t - a0) - trained
        self.tokens, self.train_time = prog, train

    # ------------------------------------------------------------ what faults and restarts do

    def start_segment(self, now: float) -> None:
        """The job (re)starts: a new checkpoint cycle begins now."""
        self.seg_start = now
        self._saving = None

    def save_now(self) -> None:
        """Everything trained so far becomes durable (a checkpoint taken before a planned stop)."""
        self.committed, self.committed_train = self.tokens, self.train_time
        self._saving = None

    def roll_back(self) -> None:
        """The work since the last durable checkpoint is lost."""
        self.lost_tokens += self.tokens - self.committed
        self.lost_train += self.train_time - self.committed_train
        self.committed_train = self.train_time  # the lost time is counted; the next loss starts here
        self.tokens = self.committed
        self._saving = None

    # ------------------------------------------------------------ token targets

    def watch(self, tokens: float) -> None:
        """Record the sim time at which the job first holds this many tokens."""
        self._watched.setdefault(tokens, None)

    def reached_at(self, tokens: float) -> float | None:
        return self._watched.get(tokens)
