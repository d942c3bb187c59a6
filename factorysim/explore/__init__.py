"""Exploring the design space: layout search and parameter sweeps, locally or on a Dask cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .knobs import KNOBS, Knob, Rule
    from .objectives import OBJECTIVES, Objective
    from .runner import DaskRunner, LocalRunner, runner_for
    from .search import Request, SearchResult

# the search itself is factorysim.explore.search.search (a package attribute would be shadowed by the module)
# lazily: `factorysim --help` reads the objectives' names without loading the search and its numerics
__getattr__ = lazy_exports(globals(), {
    "KNOBS": ".knobs", "Knob": ".knobs", "Rule": ".knobs",
    "OBJECTIVES": ".objectives", "Objective": ".objectives",
    "DaskRunner": ".runner", "LocalRunner": ".runner", "runner_for": ".runner",
    "Request": ".search", "SearchResult": ".search",
})  # fmt: skip

__all__ = [
    "KNOBS", "OBJECTIVES", "DaskRunner", "Knob", "LocalRunner", "Objective", "Request", "Rule", "SearchResult",
    "runner_for",
]  # fmt: skip
