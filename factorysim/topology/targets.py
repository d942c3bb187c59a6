"""Fault targets by name: "n12" a server, "n12.3" a chip, "leaf4", "spine0", "core2" a switch, "job" the job."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..scenario.errors import Problem, ScenarioError
from .graph import ClosPlan


@dataclass(frozen=True)
class Target:
    """A fault target: a server, a chip, a switch, or the job."""

    kind: str  # server | chip | leaf | spine | core | job
    index: int = 0
    name: str = field(default="", compare=False)


_NAME = re.compile(r"^(?:n(\d+)(?:\.(\d+))?|(leaf|spine|core)(\d+)|(job))$")


def describe_targets(plan: ClosPlan) -> str:
    parts = [f"servers n0-n{plan.servers - 1}", f"chips n0.0-n{plan.servers - 1}.{plan.chips_per_node - 1}",
             f"leaf0-leaf{plan.leaves - 1}", f"spine0-spine{plan.pods * plan.spines_per_pod - 1}"]  # fmt: skip
    if plan.tiers == 3:
        parts.append(f"core0-core{plan.spines_per_pod * plan.cores_per_plane - 1}")
    return ", ".join(parts) + ', "job"'


def parse_target(name: str, plan: ClosPlan, path: str = "target") -> Target:
    """A target name checked against this cluster; a ScenarioError names what exists."""
    m = _NAME.match(name.strip())
    limits = {
        "leaf": plan.leaves,
        "spine": plan.pods * plan.spines_per_pod,
        "core": plan.spines_per_pod * plan.cores_per_plane if plan.tiers == 3 else 0,
    }
    target: Target | None = None
    if m:
        if m.group(5):
            target = Target("job", 0, "job")
        elif m.group(3):
            i = int(m.group(4))
            if i < limits[m.group(3)]:
                target = Target(m.group(3), i, name)
        else:
            server = int(m.group(1))
            if server < plan.servers:
                if m.group(2) is None:
                    target = Target("server", server, name)
                elif int(m.group(2)) < plan.chips_per_node:
                    target = Target("chip", server * plan.chips_per_node + int(m.group(2)), name)
    if target is None:
        raise ScenarioError([Problem(path, f'no "{name}" in this cluster; it has {describe_targets(plan)}')])
    return target
