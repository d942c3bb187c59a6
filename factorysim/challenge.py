"""Challenges: a scenario with an objective, a time limit, and what the player may change.

Headless: the sandbox asks whether an edit is allowed and how the run is doing; tests play challenges
without a screen. `list_challenges()` knows the built-in ones.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from .engine import Simulation
from .scenario import Problem, Scenario, ScenarioError, parse_duration, scenario_data, validate_scenario, value_at
from .scenario.models import ChallengeConfig
from .scenario.units import short_duration

State = Literal["playing", "won", "lost"]


@dataclass(frozen=True)
class ChallengeStatus:
    state: State
    progress: float  # 0..1 towards the goal (or through the time allowed, for ETTR)
    score: int
    headline: str  # the goal in words
    detail: str  # where the run stands
    reason: str = ""  # why it ended

    @property
    def over(self) -> bool:
        return self.state != "playing"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return parse_duration(value)
    except ValueError:
        return None


def edit_refusal(ch: ChallengeConfig | None, path: str) -> Problem | None:
    """Why the challenge (if any) does not let the player change `path`, as a problem naming it (None: it does).
    The command line's --set and the sandbox's edits both ask here."""
    if ch is None or any(fnmatch.fnmatchcase(path, pattern) or path == pattern for pattern in ch.may_change):
        return None
    allowed = ", ".join(ch.may_change) or "nothing"
    return Problem(path, f"this challenge lets you change: {allowed}")


def budget_problems(ch: ChallengeConfig | None, scenario: Scenario) -> list[Problem]:
    """Values outside the challenge's min/max bounds (none without a challenge)."""
    if ch is None:
        return []
    data = scenario_data(scenario)
    derived = {"cluster.total_chips": scenario.cluster.total_chips, "cluster.job_chips": scenario.cluster.job_chips}
    out = []
    for bounds, below in ((ch.min, True), (ch.max, False)):
        for path, limit in bounds.items():
            value = _number(derived.get(path, value_at(data, path)))
            bound = _number(limit)
            if value is None or bound is None:
                continue
            if (value < bound) if below else (value > bound):
                word = "at least" if below else "at most"
                out.append(Problem(path, f"the challenge's budget allows {word} {limit} (got {value_at(data, path)})"))
    return out


def status(ch: ChallengeConfig, sim: Simulation) -> ChallengeStatus:
    """How the run is doing against the challenge's goal at the current sim time."""
    t, within = sim.now, ch.within
    out_of_time = t >= within
    if ch.goal == "tokens":
        done = sim.progress / ch.target
        headline = f"train {ch.target:.3g} tokens within {short_duration(within)}"
        detail = f"{sim.progress:.3g} tokens ({min(done, 1):.1%}) at {short_duration(t)}"
        reached = sim.target_time_for(ch.target)
        if reached is not None and reached <= within:
            bonus = int(500 * (1 - reached / within))
            return ChallengeStatus("won", 1.0, 1000 + bonus, headline, detail,
                                   f"{ch.target:.3g} tokens after {short_duration(reached)} of the {short_duration(within)} allowed")  # fmt: skip
        if out_of_time:
            return ChallengeStatus("lost", done, int(1000 * done), headline, detail,
                                   f"time is up: {sim.progress:.3g} of {ch.target:.3g} tokens")  # fmt: skip
        return ChallengeStatus("playing", min(done, 1.0), int(1000 * min(done, 1.0)), headline, detail)
    if ch.goal == "ettr":
        headline = f"keep ETTR at or above {ch.target:.1%} for {short_duration(within)}"
        detail = f"ETTR {sim.ettr:.2%} at {short_duration(t)}"
        score = int(1000 * min(1.0, sim.ettr / ch.target))
        if out_of_time:
            if sim.ettr >= ch.target:
                return ChallengeStatus("won", 1.0, 1000 + int(2000 * (sim.ettr - ch.target)), headline, detail,
                                       f"ETTR {sim.ettr:.2%} over {short_duration(within)}")  # fmt: skip
            return ChallengeStatus("lost", t / within, score, headline, detail,
                                   f"ETTR {sim.ettr:.2%} is below {ch.target:.1%}")  # fmt: skip
        return ChallengeStatus("playing", t / within, score, headline, detail)
    mfu = sim.base.mfu
    headline = f"reach a step MFU of {ch.target:.1%} within {short_duration(within)}"
    detail = f"MFU {mfu:.1%} per step"
    if mfu >= ch.target:
        return ChallengeStatus("won", 1.0, 1000 + int(1000 * (mfu - ch.target)), headline, detail,
                               f"MFU {mfu:.1%} (needed {ch.target:.1%})")  # fmt: skip
    if out_of_time:
        return ChallengeStatus("lost", mfu / ch.target, int(1000 * mfu / ch.target), headline, detail,
                               f"MFU {mfu:.1%} is below {ch.target:.1%}")  # fmt: skip
    return ChallengeStatus("playing", mfu / ch.target, int(1000 * mfu / ch.target), headline, detail)


def _files() -> dict[str, Any]:
    folder = resources.files("factorysim.scenario").joinpath("data", "challenges")
    return {
        f.name.removesuffix(".toml"): f
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".toml")
    }


def list_challenges() -> list[tuple[str, Scenario]]:
    """The built-in challenges, easiest first."""
    order = {"easy": 0, "medium": 1, "hard": 2}
    found = [(name, load_challenge(name)) for name in _files()]
    return sorted(found, key=lambda item: (order[challenge_of(item[1]).level], item[0]))


def challenge_of(scenario: Scenario) -> ChallengeConfig:
    """The [challenge] table of a scenario that must have one (a ScenarioError names the key if not)."""
    if scenario.challenge is None:
        raise ScenarioError([Problem("challenge", "this file has no [challenge] table")])
    return scenario.challenge


def load_challenge(name: str) -> Scenario:
    files = _files()
    if name not in files:
        raise ScenarioError([Problem("--challenge", f'unknown challenge "{name}"; known: {", ".join(files)}')])
    data = tomllib.loads(files[name].read_text("utf-8"))
    scenario = validate_scenario(data, f"challenge {name}")
    try:
        challenge_of(scenario)
    except ScenarioError as exc:
        raise ScenarioError(exc.problems, f"challenge {name}") from None
    return scenario
