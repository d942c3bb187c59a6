"""Cross-field checks: a parallel layout that fits the cluster, the model and the batch.

Each check returns problems instead of raising, so a user sees every problem at once.
Memory per chip is physics and is checked in perf.memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from .errors import Problem, show
from .models import PARAMS_TOLERANCE, Scenario


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


def _dp_for(s: Scenario) -> int | None:
    p = s.parallelism
    if p.dp != "auto":
        return p.dp
    per_replica = p.tp * p.cp * p.pp
    chips = s.cluster.job_chips
    return chips // per_replica if chips % per_replica == 0 else None


def resolve_layout(s: Scenario) -> ParallelLayout:
    """The layout of a scenario that passed `layout_problems` (dp "auto" filled in)."""
    p, w = s.parallelism, s.workload
    dp = _dp_for(s) or 1
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


def workload_problems(s: Scenario) -> list[Problem]:
    """A published size (workload.params_b) that the shape does not have."""
    w = s.workload
    if w.params_b is None:
        return []
    model = w.model_spec()
    counted = model.total_params() / 1e9
    if abs(counted / w.params_b - 1.0) <= PARAMS_TOLERANCE:
        return []
    given = [f"workload.{k} = {show(v)}" for k, v in w.shape_overrides() if k != "params_b"]
    origin = f'workload.model = "{w.model}"' if w.model else "the custom-model defaults"
    keys = f"{', '.join(given)}, the rest from {origin}" if given else origin
    return [
        Problem(
            "workload.params_b",
            f"{w.params_b:g} B parameters given, but the shape ({keys}) has {counted:.1f} B; they differ by "
            f"{abs(counted / w.params_b - 1.0):.0%}, more than {PARAMS_TOLERANCE:.0%}: fix the shape "
            f"(kv_heads, ffn_hidden, gated_mlp, vocab, tied_embeddings) or params_b",
        )
    ]


def stage_problems(s: Scenario) -> list[Problem]:
    """Pipeline stages that hold no layer, more layers than the model has, or fewer than their chunks."""
    p = s.parallelism
    layers = s.workload.model_spec().layers
    out: list[Problem] = []
    if p.stage_layers is not None:
        if p.first_stage_layers is not None or p.last_stage_layers is not None:
            out.append(
                Problem(
                    "parallelism.stage_layers",
                    "give either stage_layers or first_stage_layers/last_stage_layers, not both",
                )
            )
        if len(p.stage_layers) != p.pp:
            return [
                *out,
                Problem("parallelism.stage_layers", f"{len(p.stage_layers)} entries for pp = {p.pp} stages"),
            ]
        if sum(p.stage_layers) != layers:
            return [
                *out,
                Problem(
                    "parallelism.stage_layers",
                    f"the stages hold {sum(p.stage_layers)} layers but the model has {layers}",
                ),
            ]
    elif p.first_stage_layers is not None or p.last_stage_layers is not None:
        key = "parallelism.first_stage_layers" if p.first_stage_layers is not None else "parallelism.last_stage_layers"
        if p.pp == 1:
            return [Problem(key, "uneven stages need pipeline parallelism (pp > 1)")]
        split = stage_layers_of(s)
        if sum(split) != layers or min(split) < 1:
            return [
                Problem(
                    key,
                    f"first {p.first_stage_layers or 'even'} and last {p.last_stage_layers or 'even'} leave "
                    f"{split} layers per stage for the model's {layers} layers on pp = {p.pp} stages; "
                    f"every stage needs at least one layer",
                )
            ]
    split = stage_layers_of(s)
    short = [i for i, n in enumerate(split) if n < p.interleave - (1 if i in (0, len(split) - 1) else 0)]
    if short:
        uneven = p.stage_layers is not None or p.first_stage_layers is not None or p.last_stage_layers is not None
        i = short[0]
        detail = (
            f"stage {i} holds only {split[i]} layers ({', '.join(map(str, split))}) for {p.interleave} chunks; "
            f"every chunk needs a layer, except the first stage's first chunk (it may hold the embedding alone) "
            f"and the last stage's last chunk (the output layer alone)"
            if uneven
            else f"pp x interleave = {p.pp * p.interleave} chunks exceeds the model's {layers} layers"
        )
        out.append(Problem("parallelism.interleave", detail))
    return out


def layout_problems(s: Scenario) -> list[Problem]:
    """Everything that stops this parallel layout from running on this cluster with this model."""
    c, w, p = s.cluster, s.workload, s.parallelism
    out: list[Problem] = workload_problems(s)
    add = lambda path, msg: out.append(Problem(path, msg))  # noqa: E731
    model = w.model_spec()
    link = c.link_spec

    if c.spare_nodes >= c.nodes:
        add("cluster.spare_nodes", f"{c.spare_nodes} spare nodes leave none of the {c.nodes} nodes for the job")
    if c.chips_per_node > link.domain:
        add(
            "cluster.chips_per_node",
            f"{c.chips_per_node} chips per server exceeds the {c.link_name} scale-up domain of {link.domain} chips",
        )
    if c.node_group_size > max(1, c.job_nodes):
        add("cluster.node_group_size", f"{c.node_group_size} nodes is more than the {c.job_nodes} nodes of the job")

    # Tensor parallelism lives inside one server's scale-up domain.
    if p.tp > c.chips_per_node:
        add(
            "parallelism.tp",
            f"{p.tp} exceeds the scale-up domain of {c.chips_per_node} chips (cluster.chips_per_node): "
            f"tensor-parallel collectives run every layer and would cross the scale-out fabric at "
            f"{c.fabric.nic_bytes_per_s / 1e9:.0f} GB/s instead of {link.gb_s_per_dir:.0f} GB/s; "
            f"use tp <= {c.chips_per_node}",
        )
    elif c.chips_per_node % p.tp:
        add(
            "parallelism.tp",
            f"{p.tp} does not divide chips_per_node = {c.chips_per_node}; TP groups would straddle servers",
        )
    if model.heads % p.tp:
        add("parallelism.tp", f"{p.tp} does not divide the model's {model.heads} attention heads")
    if model.ffn % p.tp:
        add("parallelism.tp", f"{p.tp} does not divide the model's MLP width {model.ffn}")

    # The product of the degrees must be the chips the job runs on.
    per_replica = p.tp * p.cp * p.pp
    job = c.job_chips
    if p.dp == "auto":
        if job % per_replica:
            add(
                "parallelism.dp",
                f'"auto" needs the job\'s {job} chips ((nodes - spare_nodes) x chips_per_node = '
                f"({c.nodes} - {c.spare_nodes}) x {c.chips_per_node}) to be a multiple of tp·cp·pp = "
                f"{p.tp}·{p.cp}·{p.pp} = {per_replica}",
            )
    elif per_replica * p.dp != job:
        hint = f"set parallelism.dp = {job // per_replica}" if job % per_replica == 0 else "change tp, cp or pp"
        need_nodes = per_replica * p.dp / c.chips_per_node + c.spare_nodes
        nodes_hint = f" or cluster.nodes = {need_nodes:.0f}" if need_nodes == int(need_nodes) else ""
        add(
            "parallelism.dp",
            f"tp·cp·pp·dp = {p.tp}·{p.cp}·{p.pp}·{p.dp} = {per_replica * p.dp} chips, but the job runs on "
            f"(nodes - spare_nodes) x chips_per_node = ({c.nodes} - {c.spare_nodes}) x {c.chips_per_node} = "
            f'{job} chips; {hint}{nodes_hint} (or dp = "auto")',
        )
    dp = _dp_for(s)
    if dp:
        if w.global_batch % (dp * w.micro_batch):
            add(
                "workload.global_batch",
                f"{w.global_batch} sequences is not divisible by dp x micro_batch = {dp} x {w.micro_batch} = "
                f"{dp * w.micro_batch}; try {max(1, w.global_batch // (dp * w.micro_batch)) * dp * w.micro_batch}",
            )
        elif p.interleave > 1 and (w.global_batch // (dp * w.micro_batch)) % p.pp:
            m = w.global_batch // (dp * w.micro_batch)
            add(
                "parallelism.interleave",
                f"the interleaved schedule needs the {m} micro-batches per pipeline to be a multiple of pp = {p.pp}",
            )
        if p.ep > 1 and dp % p.ep:
            add(
                "parallelism.ep", f"{p.ep} must divide dp = {dp} (expert parallelism is carved out of data parallelism)"
            )

    if p.pp > model.layers:
        add("parallelism.pp", f"{p.pp} stages for a model of {model.layers} layers")
    else:
        out += stage_problems(s)
    if p.interleave > 1 and p.pp == 1:
        add("parallelism.interleave", "interleaving needs pipeline parallelism (pp > 1)")
    if w.seq % p.cp:
        add("parallelism.cp", f"{p.cp} does not divide seq_len = {w.seq}")
    if p.ep > 1 and not model.is_moe:
        add("parallelism.ep", f"{p.ep} needs a mixture-of-experts model; {w.model_name} is dense")
    elif model.is_moe and model.experts % p.ep:
        add("parallelism.ep", f"{p.ep} does not divide the model's {model.experts} experts")

    fabric = c.fabric
    if fabric.max_chips() < c.total_chips:
        down, _ = fabric.leaf_ports()
        add(
            "cluster.fabric.tiers",
            f"{fabric.tiers} tiers of {fabric.radix}-port switches ({down} leaf ports down at "
            f"oversubscription {fabric.oversubscription:g}) connect at most {fabric.max_chips():,} chips; "
            f"this cluster has {c.total_chips:,}; use tiers = 3 or a larger cluster.fabric.switch_radix",
        )
    if fabric.topology == "rail-optimized" and c.chips_per_node > fabric.leaf_ports()[0]:
        add("cluster.fabric.topology", "rail-optimized needs at least one leaf port per server per rail")
    return out
