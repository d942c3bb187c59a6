"""The knobs a layout search turns: one table, each knob with its candidate values and its validity rules.

A knob is a scenario key. Its candidates are a finite, documented domain computed from the cluster, the
model and the knobs chosen before it (the table's order); its rules refuse a candidate that the scenario
checks would refuse, at the earliest knob where that is decidable, so the search prunes whole subtrees
and counts every refusal by rule. The last rule, memory per chip, is the physics' own check.

A new scenario knob is one more row in `KNOBS`: its key, its candidates, its rules. Knobs that change
the cluster itself (`level="variant"`) are applied through the scenario files' validation and get their
own cluster index; the others (`level="layout"`) are laid over a validated scenario directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from ..scenario.catalog import ModelSpec, catalog
from ..scenario.checks import split_layers
from ..scenario.models import Scenario

Choice = Mapping[str, Any]
"""The knobs chosen so far, by scenario key."""


@dataclass(frozen=True)
class Space:
    """What the candidates and rules of a layout depend on: the cluster and the job of one scenario."""

    scenario: Scenario

    @cached_property
    def model(self) -> ModelSpec:
        return self.scenario.workload.model_spec()

    @cached_property
    def chips_per_node(self) -> int:
        return self.scenario.cluster.chips_per_node

    @cached_property
    def job_chips(self) -> int:
        return self.scenario.cluster.job_chips

    @cached_property
    def seq(self) -> int:
        return self.scenario.workload.seq

    @cached_property
    def global_batch(self) -> int:
        return self.scenario.workload.global_batch


@dataclass(frozen=True)
class Rule:
    """A validity rule: `ok(space, choice)` is False when the scenario checks would refuse the choice."""

    name: str  # shown in the refusal counts
    ok: Callable[[Space, Choice], bool]


@dataclass(frozen=True)
class Knob:
    """One scenario key the search may turn."""

    key: str
    label: str  # short column name
    values: Callable[[Space, Choice], Sequence[Any]]  # candidates, given the knobs chosen before this one
    rules: tuple[Rule, ...] = ()
    searched: bool = True  # searched by default; otherwise held at the scenario's value unless --vary names it
    level: Literal["variant", "placement", "layout"] = "layout"
    doc: str = ""


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def _get(c: Choice, key: str) -> Any:
    return c[key]


def _micro_batches(s: Space, c: Choice) -> int:
    return s.global_batch // (c["parallelism.dp"] * c["workload.micro_batch"])


# ------------------------------------------------------------------ rules (each mirrors a scenario check)

SCALE_UP = Rule(
    "tp divides a server's scale-up domain",
    lambda s, c: s.chips_per_node % c["parallelism.tp"] == 0,
)
TP_SHAPE = Rule(
    "tp divides the model's heads and MLP width",
    lambda s, c: s.model.heads % c["parallelism.tp"] == 0 and s.model.ffn % c["parallelism.tp"] == 0,
)
CP_CHIPS = Rule(
    "tp·cp divides the job's chips", lambda s, c: s.job_chips % (c["parallelism.tp"] * c["parallelism.cp"]) == 0
)
PP_CHIPS = Rule(
    "tp·cp·pp divides the job's chips",
    lambda s, c: s.job_chips % (c["parallelism.tp"] * c["parallelism.cp"] * c["parallelism.pp"]) == 0,
)
DP_CHIPS = Rule(
    "tp·cp·pp·dp is the job's chips",
    lambda s, c: c["parallelism.tp"] * c["parallelism.cp"] * c["parallelism.pp"] * c["parallelism.dp"] == s.job_chips,
)
EP_EXPERTS = Rule("ep divides the model's experts", lambda s, c: s.model.experts % c["parallelism.ep"] == 0)
EP_DP = Rule("ep divides dp", lambda s, c: c["parallelism.dp"] % c["parallelism.ep"] == 0)
BATCH = Rule(
    "dp·micro_batch divides the global batch",
    lambda s, c: s.global_batch % (c["parallelism.dp"] * c["workload.micro_batch"]) == 0,
)
INTERLEAVE = Rule(
    "interleaving needs micro-batches in multiples of pp",
    lambda s, c: c["parallelism.interleave"] == 1 or _micro_batches(s, c) % c["parallelism.pp"] == 0,
)
MEMORY_RULE = "fits in the chip's memory"
"""The last rule, checked on a complete layout by the physics (perf.memory)."""


# ------------------------------------------------------------------ candidate domains


def _tp(s: Space, c: Choice) -> list[int]:
    return list(range(1, s.chips_per_node + 1))


def _cp(s: Space, c: Choice) -> list[int]:
    return [d for d in divisors(s.seq) if d <= s.job_chips]


def _pp(s: Space, c: Choice) -> list[int]:
    return list(range(1, s.model.layers + 1))


def _dp(s: Space, c: Choice) -> list[int]:
    return [s.job_chips // (c["parallelism.tp"] * c["parallelism.cp"] * c["parallelism.pp"])]


def _ep(s: Space, c: Choice) -> list[int]:
    return divisors(s.model.experts) if s.model.is_moe else [1]


def _micro_batch(s: Space, c: Choice) -> list[int]:
    return divisors(s.global_batch)


def _interleave(s: Space, c: Choice) -> list[int]:
    # every chunk holds a layer, except the first stage's first and the last stage's last (scenario.checks)
    pp = c["parallelism.pp"]
    if pp == 1:
        return [1]
    split = split_layers(s.model.layers, pp)
    return list(range(1, min(n + (i in (0, pp - 1)) for i, n in enumerate(split)) + 1))


def _sequence_parallel(s: Space, c: Choice) -> list[bool]:
    # Without tensor parallelism there is nothing to shard: both values are the same layout.
    return [True, False] if c["parallelism.tp"] > 1 else [True]


KNOBS: tuple[Knob, ...] = (
    Knob(
        "cluster.chip",
        "chip",
        lambda s, c: list(catalog().chips),
        searched=False,
        level="variant",
        doc="the accelerator (held: the cluster has the chips it has; --vary compares the catalog's)",
    ),
    Knob(
        "workload.precision",
        "precision",
        lambda s, c: ["bf16", "fp8"],
        searched=False,
        doc="GEMM precision (held: FP8 changes the numerics the job has chosen)",
    ),
    Knob("parallelism.tp", "tp", _tp, (SCALE_UP, TP_SHAPE), level="placement", doc="tensor parallel degree"),
    Knob("parallelism.cp", "cp", _cp, (CP_CHIPS,), level="placement", doc="context parallel degree (divides seq)"),
    Knob("parallelism.pp", "pp", _pp, (PP_CHIPS,), level="placement", doc="pipeline stages, 1 to the layers"),
    Knob("parallelism.dp", "dp", _dp, (DP_CHIPS,), level="placement", doc="data parallel replicas (fill the job)"),
    Knob("parallelism.ep", "ep", _ep, (EP_EXPERTS, EP_DP), level="placement", doc="expert parallel degree (MoE)"),
    Knob("workload.micro_batch", "mb", _micro_batch, (BATCH,), doc="sequences per micro-batch"),
    Knob("parallelism.interleave", "v", _interleave, (INTERLEAVE,), doc="virtual pipeline chunks per stage"),
    Knob("parallelism.sequence_parallel", "sp", _sequence_parallel, doc="shard norms and dropout over tp"),
    Knob("parallelism.zero", "zero", lambda s, c: [0, 1, 2, 3], doc="optimizer sharding stage"),
    Knob("workload.recompute", "recompute", lambda s, c: ["none", "selective", "full"], doc="activation recompute"),
    Knob(
        "features.in_network_reduction",
        "inr",
        lambda s, c: [False, True],
        searched=False,
        doc="in-network reduction (held: needs switches or links that reduce; --vary to see what it would buy)",
    ),
    Knob(
        "features.async_comm_engine",
        "ace",
        lambda s, c: [False, True],
        searched=False,
        doc="communication on dedicated engines (held: a hardware feature; --vary to see what it would buy)",
    ),
)

BY_KEY: dict[str, Knob] = {k.key: k for k in KNOBS}
LABELS: dict[str, str] = {k.key: k.label for k in KNOBS}


def scenario_value(s: Scenario, key: str) -> Any:
    """The value a scenario gives a knob (dp resolved when "auto")."""
    if key == "parallelism.dp":
        from ..scenario.checks import resolve_layout

        return resolve_layout(s).dp
    node: Any = s
    for part in key.split("."):
        node = getattr(node, part)
    if key == "parallelism.sequence_parallel" and s.parallelism.tp == 1:
        return True  # the same layout either way (see _sequence_parallel)
    return node
