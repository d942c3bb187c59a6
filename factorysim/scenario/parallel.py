"""A job's parallel layout: the degrees the scenario gives, resolved ("auto" filled in), and its pipeline stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from .models import Scenario


@dataclass(frozen=True)
class ParallelLayout:
    """The resolved parallel degrees of a job. Ranks: tp innermost, then cp, dp, pp outermost."""

    tp: int
    cp: int
    pp: int
    dp: int
    ep: int
    interleave: int
    micro_batch: int
    micro_batches: int  # per pipeline per step (gradient-accumulation steps)
    stage_layers: tuple[int, ...] = ()  # layers per pipeline stage, first to last (pp entries)

    @property
    def chips(self) -> int:
        return self.tp * self.cp * self.pp * self.dp

    @cached_property
    def chunk_layers(self) -> tuple[tuple[int, ...], ...]:
        """Layers of each of the `interleave` chunks of each stage (see `chunk_layers`)."""
        return chunk_layers(self.stage_layers, self.interleave)

    def with_dp(self, dp: int) -> ParallelLayout:
        """The same layout with fewer (or more) replicas, each keeping its micro-batches."""
        return replace(self, dp=dp)


def split_layers(layers: int, pp: int, first: int | None = None, last: int | None = None) -> tuple[int, ...]:
    """Layers per stage: `first` and `last` where given, the other stages as evenly as possible, the earlier
    stages taking the extra layers. The result may hold zeros or negatives; `stage_problems` refuses those."""
    fixed = {}
    if first is not None:
        fixed[0] = first
    if last is not None and pp > 1:
        fixed[pp - 1] = last
    free = [i for i in range(pp) if i not in fixed]
    rest = layers - sum(fixed.values())
    out = [0] * pp
    for i, n in fixed.items():
        out[i] = n
    if free:
        base, extra = divmod(rest, len(free))
        for j, i in enumerate(free):
            out[i] = base + (1 if j < extra else 0)
    return tuple(out)


def chunk_layers(stage_layers: Sequence[int], interleave: int) -> tuple[tuple[int, ...], ...]:
    """Layers of each chunk of each stage: as even as possible, the earlier chunks taking the extra layers,
    except on the first stage, whose first chunk (with the input embedding) is the shorter one. So a first or
    last stage one layer short of v chunks has a chunk of the embedding (or the output layer) alone."""
    out = []
    for i, n in enumerate(stage_layers):
        base, extra = divmod(n, interleave)
        chunks = [base + 1] * extra + [base] * (interleave - extra)
        out.append(tuple(reversed(chunks)) if i == 0 and len(stage_layers) > 1 else tuple(chunks))
    return tuple(out)


def stage_layers_of(s: Scenario) -> tuple[int, ...]:
    """The layers of each pipeline stage of a scenario (its explicit list, or the split its keys describe)."""
    p = s.parallelism
    layers = s.workload.model_spec().layers
    if p.stage_layers is not None:
        return tuple(p.stage_layers)
    return split_layers(layers, p.pp, p.first_stage_layers, p.last_stage_layers)


def dp_for(s: Scenario) -> int | None:
    """The data-parallel degree: as given, or for "auto" the job's chips over a replica's (None if it does not divide)."""
    p = s.parallelism
    if p.dp != "auto":
        return p.dp
    per_replica = p.tp * p.cp * p.pp
    chips = s.cluster.job_chips
    return chips // per_replica if chips % per_replica == 0 else None


def resolve_layout(s: Scenario) -> ParallelLayout:
    """The layout of a scenario that passed `layout_problems` (dp "auto" filled in)."""
    p, w = s.parallelism, s.workload
    dp = dp_for(s) or 1
    return ParallelLayout(
        tp=p.tp,
        cp=p.cp,
        pp=p.pp,
        dp=dp,
        ep=p.ep,
        interleave=p.interleave,
        micro_batch=w.micro_batch,
        micro_batches=max(1, w.global_batch // (dp * w.micro_batch)),
        stage_layers=stage_layers_of(s),
    )
