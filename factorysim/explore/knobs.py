"""The knobs a layout search turns: one table, each knob with its candidate values and its validity rules.

A knob is a scenario key. Its candidates are a finite, documented domain computed from the cluster, the
model and the knobs chosen before it (the table's order); its rules refuse a candidate that the scenario
checks would refuse, at the earliest knob where that is decidable, so the search prunes whole subtrees
and counts every refusal by rule. The last rule, memory per chip, is the physics' own check (an
estimate's `fits`).

A new scenario knob is one more row in `KNOBS`: its key, its candidates, its rules, and whether it changes
a chip's compute (`compute`: the step's compute-only floor, which the search prunes by, depends on it).
Knobs that change the cluster itself (`level="variant"`) are applied through the scenario files'
validation and get their own cluster index; the others are laid over a validated scenario directly.

Uneven pipeline stages are searched as three splits for every pp > 1: the even split, the last stage
one layer short (it also runs the output layer and the loss), and the first and the last one short each
(the first holds the embedding and the most micro-batches in flight; Llama 3's 405B run balanced its
pipeline this way). A split that gives the same layers per stage as one before it is not tried twice. Where
the even split already ends one short, the third is written as the first one short: the first and the last
one short where the layers allow it (126 layers on 16 stages: 7, 8 × 14, 7), else the short stage moved to
the front (8 layers on 3 stages: 3, 3, 2 even, then 2, 3, 3, which holds fewer layers where the most
micro-batches are in flight). Finer splits, and ones with a third stage size (2, 4, 2), are for
`--vary parallelism.first_stage_layers=... --vary parallelism.last_stage_layers=...`: the three cover the
published practice without multiplying the layouts by the layer count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Literal

from ..scenario.catalog import ModelSpec, catalog
from ..scenario.models import Scenario
from ..scenario.parallel import split_layers as _split_layers
from .values import plain

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
    compute: bool = True  # changes a chip's compute per micro-batch (False: only communication and memory)
    memory: bool = True  # changes memory per chip (False: only communication)
    show: Callable[[Any], str] = plain  # a value as a user reads it


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


@lru_cache(maxsize=4096)
def split_layers(layers: int, pp: int, first: int | None = None, last: int | None = None) -> tuple[int, ...]:
    """scenario.parallel.split_layers, remembered: a search asks for the same few splits a million times."""
    return _split_layers(layers, pp, first, last)


def stage_split(s: Space, c: Choice) -> tuple[int, ...]:
    """Layers per stage of a choice, as `stage_layers_of` gives them for the scenario it describes."""
    given = c.get("parallelism.stage_layers")
    if given is not None:
        return tuple(given)
    return split_layers(s.model.layers, c["parallelism.pp"], c.get("parallelism.first_stage_layers"),
                        c.get("parallelism.last_stage_layers"))  # fmt: skip


STAGES = Rule(
    "every stage holds a layer per chunk, and the stages hold the model's layers",
    lambda s, c: (
        len(sp := stage_split(s, c)) == c["parallelism.pp"]
        and sum(sp) == s.model.layers
        and min(sp) >= 1
        # every chunk holds a layer, except the first stage's first and the last stage's last (scenario.checks)
        and all(n >= c["parallelism.interleave"] - (i in (0, len(sp) - 1)) for i, n in enumerate(sp))
    ),
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


def _tp_overlap(s: Space, c: Choice) -> list[bool]:
    # Without tensor parallelism there is nothing to overlap: both values are the same layout.
    return [False, True] if c["parallelism.tp"] > 1 else [False]


def _stage_list(s: Space, c: Choice) -> list[tuple[int, ...] | None]:
    """The file's own list of layers per stage where it has as many stages; otherwise the splits below."""
    given = s.scenario.parallelism.stage_layers
    if given is not None and len(given) == c["parallelism.pp"]:
        return [None, tuple(given)]
    return [None]


def _short(s: Space, c: Choice) -> int:
    """One layer fewer than the largest stage of the even split."""
    return -(-s.model.layers // c["parallelism.pp"]) - 1


def _valid(s: Space, split: tuple[int, ...]) -> bool:
    return sum(split) == s.model.layers and min(split) >= 1


def _last_stage(s: Space, c: Choice) -> list[int | None]:
    pp = c["parallelism.pp"]
    if pp == 1 or c.get("parallelism.stage_layers") is not None:
        return [None]
    short = _short(s, c)
    split = split_layers(s.model.layers, pp, None, short)
    return [None, short] if _valid(s, split) and split != split_layers(s.model.layers, pp) else [None]


def _first_stage(s: Space, c: Choice) -> list[int | None]:
    pp, last = c["parallelism.pp"], c.get("parallelism.last_stage_layers")
    if pp < 3 or c.get("parallelism.stage_layers") is not None:
        return [None]
    layers, short = s.model.layers, _short(s, c)
    if last is None:
        # where the even split already has its last stage one short, that choice was not offered twice: the
        # third split is then the first one short over the even split (the first and last one short where the
        # layers allow, else the short stage moved to the front: 8 layers on 3 stages, 2, 3, 3)
        if split_layers(layers, pp, None, short) != split_layers(layers, pp):
            return [None]
        split = split_layers(layers, pp, short, None)
    else:
        split = split_layers(layers, pp, short, last)
    return [None, short] if _valid(s, split) and split != split_layers(layers, pp, None, last) else [None]


def _stages_shown(value: Any) -> str:
    return "even" if value is None else plain(value)


KNOBS: tuple[Knob, ...] = (
    Knob(
        "cluster.chip",
        "chip",
        lambda s, c: list(catalog().chips),
        searched=False,
        level="variant",
        doc="the accelerator (held: the cluster has the chips it has; --vary compares the catalog's)",
    ),
    Knob("parallelism.tp", "tp", _tp, (SCALE_UP, TP_SHAPE), level="placement", doc="tensor parallel degree"),
    Knob("parallelism.cp", "cp", _cp, (CP_CHIPS,), level="placement", doc="context parallel degree (divides seq)"),
    Knob("parallelism.pp", "pp", _pp, (PP_CHIPS,), level="placement", doc="pipeline stages, 1 to the layers"),
    Knob("parallelism.dp", "dp", _dp, (DP_CHIPS,), level="placement", doc="data parallel replicas (fill the job)"),
    Knob("parallelism.ep", "ep", _ep, (EP_EXPERTS, EP_DP), level="placement", doc="expert parallel degree (MoE)"),
    # knobs that change a chip's compute, then those that change only communication and memory: the search
    # bounds a step by its compute, once for all the layouts that differ only in the second kind
    Knob(
        "workload.precision",
        "precision",
        lambda s, c: ["bf16", "fp8"],
        searched=False,
        doc="GEMM precision (held: FP8 changes the numerics the job has chosen)",
    ),
    Knob(
        "workload.attention",
        "attention",
        lambda s, c: ["flash", "flash2", "unfused"],
        searched=False,
        doc="attention kernels (held: what the job's software has; --vary to see what another would buy)",
    ),
    Knob("workload.micro_batch", "mb", _micro_batch, (BATCH,), doc="sequences per micro-batch"),
    Knob("parallelism.interleave", "v", _interleave, (INTERLEAVE,), doc="virtual pipeline chunks per stage"),
    Knob("parallelism.sequence_parallel", "sp", _sequence_parallel, doc="shard norms and dropout over tp"),
    Knob("workload.recompute", "recompute", lambda s, c: ["none", "selective", "full"], doc="activation recompute"),
    Knob(
        "parallelism.stage_layers",
        "stages",
        _stage_list,
        doc="an explicit list of layers per stage: the file's own, where it has that many stages",
        show=_stages_shown,
    ),
    Knob(
        "parallelism.last_stage_layers",
        "last",
        _last_stage,
        doc="layers on the last stage: even, or one short (it also runs the output layer)",
        show=_stages_shown,
    ),
    Knob(
        "parallelism.first_stage_layers",
        "first",
        _first_stage,
        (STAGES,),
        doc="layers on the first stage: even, or one short with the last",
        show=_stages_shown,
    ),
    Knob("parallelism.zero", "zero", lambda s, c: [0, 1, 2, 3], doc="optimizer sharding stage", compute=False),
    Knob(
        "features.tp_overlap",
        "tpo",
        _tp_overlap,
        doc="overlap tensor-parallel collectives with the GEMMs (where tp > 1)",
        compute=False,
        memory=False,
    ),
    Knob(
        "workload.grad_dtype",
        "grad",
        lambda s, c: ["fp32", "bf16"],
        searched=False,
        doc="gradient buffer and reduction dtype (held: BF16 reductions change the numerics)",
        compute=False,
    ),
    Knob(
        "features.in_network_reduction",
        "inr",
        lambda s, c: [False, True],
        searched=False,
        doc="in-network reduction (held: needs switches or links that reduce; --vary to see what it would buy)",
        compute=False,
        memory=False,
    ),
    Knob(
        "features.async_comm_engine",
        "ace",
        lambda s, c: [False, True],
        searched=False,
        doc="communication on dedicated engines (held: a hardware feature; --vary to see what it would buy)",
        compute=False,
        memory=False,
    ),
)

NOT_KNOBS = {
    "workload.attention_flops": "how MFU counts the attention core: a reporting convention that changes no step time",
}
"""Keys a search must not turn, and why."""

BY_KEY: dict[str, Knob] = {k.key: k for k in KNOBS}
LABELS: dict[str, str] = {k.key: k.label for k in KNOBS}


def scenario_value(s: Scenario, key: str) -> Any:
    """The value a scenario gives a knob (dp resolved when "auto")."""
    if key == "parallelism.dp":
        from ..scenario.parallel import resolve_layout

        return resolve_layout(s).dp
    node: Any = s
    for part in key.split("."):
        node = getattr(node, part)
    if key == "parallelism.sequence_parallel" and s.parallelism.tp == 1:
        return True  # the same layout either way (see _sequence_parallel)
    if key == "features.tp_overlap" and s.parallelism.tp == 1:
        return False  # the same layout either way (see _tp_overlap)
    if key == "parallelism.stage_layers" and node is not None:
        return tuple(node)
    return node
