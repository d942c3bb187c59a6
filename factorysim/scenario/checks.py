"""Cross-field checks: a parallel layout that fits the cluster, the model and the batch.

Each check returns problems instead of raising, so a user sees every problem at once.
Memory per chip is physics and is checked in perf.memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import Problem
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

    @property
    def chips(self) -> int:
        return self.tp * self.cp * self.pp * self.dp

    def with_dp(self, dp: int) -> ParallelLayout:
        """The same layout with fewer (or more) replicas, each keeping its micro-batches."""
        return ParallelLayout(
            self.tp, self.cp, self.pp, dp, self.ep, self.interleave, self.micro_batch, self.micro_batches
        )


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
    )


def layout_problems(s: Scenario) -> list[Problem]:
    """Everything that stops this parallel layout from running on this cluster with this model."""
    c, w, p = s.cluster, s.workload, s.parallelism
    out: list[Problem] = []
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
    elif p.pp * p.interleave > model.layers:
        add(
            "parallelism.interleave",
            f"pp x interleave = {p.pp * p.interleave} chunks exceeds the model's {model.layers} layers",
        )
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
