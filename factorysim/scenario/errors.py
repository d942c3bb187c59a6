"""User-facing errors: one line per problem, each naming the key path, the bad value and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario. `path` is a dotted key path such as ``parallelism.tp``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ScenarioError(ValueError):
    """A scenario (file, --set override or edit) that cannot be used. Carries every problem found."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        count = len(self.problems)
        if count == 1:
            return f"{head}{self.problems[0]}"
        lines = [f"{head}{count} problems"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def with_source(self, source: str) -> ScenarioError:
        return ScenarioError(self.problems, source)


def show(value: Any) -> str:
    """A value as it would appear in a TOML file."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def one_of(values: Iterable[Any], limit: int = 40) -> str:
    items = [show(v) for v in values]
    if len(items) > limit:
        items = [*items[:limit], f"... ({len(items) - limit} more)"]
    return ", ".join(items)
