"""Per-process caches for many evaluations: one validated scenario per resolved data, one cluster index per
cluster. Building a 16K-chip index costs milliseconds and the group placement of a layout as much again;
a search or sweep that varies the job but not the cluster builds them once per worker process.

Step estimates never change an index's health, so they share the cached one; a search releases the group
placements it computed once it has their links (a 16K-chip placement holds about 2 MB of arrays). A
simulation changes health (faults) only in an index of its own (engine.fabric.own_index), so it starts from
the shared one too. Runs whose step physics is the same (a sweep over reliability keys and seeds) share
their step estimates (`step_cache`).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

from ..scenario.files import scenario_data, validate_scenario
from ..scenario.models import Scenario
from ..topology.edits import index_for
from ..topology.index import FabricIndex

_LIMIT = 16
_scenarios: OrderedDict[str, Scenario] = OrderedDict()
_indexes: OrderedDict[str, FabricIndex] = OrderedDict()
_steps: OrderedDict[str, dict] = OrderedDict()

NOT_STEP_PHYSICS = ("name", "description", "reliability", "run", "faults", "layout", "challenge")
"""Scenario sections a step estimate never reads (perf/ does not look at them): runs of scenarios that differ
only in these share their step estimates."""


def digest(*parts: Any) -> str:
    """SHA-256 of JSON data in canonical form (sorted keys, no spaces): equal data, equal digest."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _remember(store: OrderedDict, key: str, value: Any) -> Any:
    store[key] = value
    store.move_to_end(key)
    while len(store) > _LIMIT:
        store.popitem(last=False)
    return value


def scenario_of(data: dict[str, Any], checks: bool = True) -> Scenario:
    """The validated scenario of plain data, built once per process. `checks`: also the layout checks
    (a search's variants skip them: the search chooses the layout)."""
    key = digest(data, checks)
    found = _scenarios.get(key)
    if found is not None:
        _scenarios.move_to_end(key)
        return found
    made = validate_scenario(data) if checks else Scenario.model_validate(data)
    return _remember(_scenarios, key, made)


def cluster_key(s: Scenario) -> str:
    data = scenario_data(s)
    return digest(data.get("cluster", {}), data.get("topology", {}))


def shared_index(s: Scenario) -> FabricIndex:
    """The scenario's cluster index, shared by every estimate on the same cluster (read-only use)."""
    key = cluster_key(s)
    found = _indexes.get(key)
    if found is not None:
        _indexes.move_to_end(key)
        return found
    index = index_for(s.cluster, s.topology.edits)
    index.placement_limit = PLACEMENTS_KEPT
    return _remember(_indexes, key, index)


PLACEMENTS_KEPT = 64
"""Group placements a shared index keeps (least recently used go first): a sweep over layouts stays bounded."""


def release(index: FabricIndex) -> None:
    """Drop the group placements an index has cached (they are rebuilt on demand)."""
    index.forget_placements()


def step_cache(data: dict[str, Any]) -> dict:
    """The step estimates shared by every run in this process of a scenario with this data's step physics
    (engine.Throughput's `shared`): a sweep over reliability keys and seeds computes each state's step once."""
    key = digest({k: v for k, v in data.items() if k not in NOT_STEP_PHYSICS})
    found = _steps.get(key)
    if found is not None:
        _steps.move_to_end(key)
        return found
    return _remember(_steps, key, {})


def clear() -> None:
    _scenarios.clear()
    _indexes.clear()
    _steps.clear()
