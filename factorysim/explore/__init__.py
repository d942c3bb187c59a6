"""Exploring the design space: layout search and parameter sweeps, locally or on a Dask cluster."""

from .knobs import KNOBS, Knob, Rule
from .objectives import OBJECTIVES, Objective
from .runner import DaskRunner, LocalRunner, runner_for
from .search import Request, SearchResult, search

__all__ = [
    "KNOBS", "OBJECTIVES", "DaskRunner", "Knob", "LocalRunner", "Objective", "Request", "Rule", "SearchResult",
    "runner_for", "search",
]  # fmt: skip
