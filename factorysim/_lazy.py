"""Lazy re-exports for package __init__ files (PEP 562): a name's module is imported when the name is first used,
so `factorysim --help` does not pay for numpy, networkx and the engine."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level __getattr__ that imports `exports[name]` (a module relative to the package) on first use
    and keeps the value in the package's namespace."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__
