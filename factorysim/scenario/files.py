"""Scenario files: TOML in, validated Scenario out; --set overrides; atomic saves; JSON Schema.

No pickle, no eval: a scenario file is data only.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
import typing
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from .checks import layout_problems
from .errors import Problem, ScenarioError, one_of, show
from .models import REF_TAGS, Scenario

DEFAULT_SCENARIO = "default.toml"


# ---------------------------------------------------------------- reading


def parse_toml(text: str, source: str | None = None) -> dict[str, Any]:
    """Parse TOML text; a syntax error names its line and column and shows the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            lines = text.splitlines()
            shown = lines[line - 1] if 0 < line <= len(lines) else ""
            detail = f"TOML syntax error at line {line}, column {col}: {reason}\n    {shown}\n    {' ' * (col - 1)}^"
        else:
            detail = f"TOML syntax error: {msg}"
        raise ScenarioError([Problem("", detail)], source) from None


def read_scenario_data(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw table of a scenario file (not yet validated)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem("", "no such file")], str(path)) from None
    except IsADirectoryError:
        raise ScenarioError([Problem("", "is a directory, not a scenario file")], str(path)) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([Problem("", f"not UTF-8 text ({exc.reason} at byte {exc.start})")], str(path)) from None
    except OSError as exc:
        raise ScenarioError([Problem("", exc.strerror or str(exc))], str(path)) from None
    return parse_toml(text, str(path))


def default_scenario_text() -> str:
    """The scenario embedded in the package, so `factorysim` works from any directory."""
    return resources.files("factorysim.scenario").joinpath("data", DEFAULT_SCENARIO).read_text("utf-8")


# ---------------------------------------------------------------- overrides


def parse_override(item: str) -> tuple[list[str], Any]:
    """`key.path=value` → (["key", "path"], value). Values are TOML (64, 0.5, true, "x"); bare words are strings."""
    if "=" not in item:
        raise ScenarioError([Problem("--set", f"{item!r} is not key.path=value (e.g. parallelism.dp=64)")])
    key, raw = item.split("=", 1)
    parts = [k.strip() for k in key.strip().split(".")]
    if not all(parts):
        raise ScenarioError([Problem("--set", f"{key!r} is not a dotted key path (e.g. cluster.fabric.nic_gbps)")])
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Lay `key.path=value` overrides over raw scenario data (returns a new dict)."""
    out = json.loads(json.dumps(data))  # deep copy of plain TOML data
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                path = ".".join(parts[: i + 1])
                raise ScenarioError([Problem(path, f"is {show(nxt)}, not a table; cannot set {'.'.join(parts)}")])
            node = nxt
        node[parts[-1]] = value
    return out


# ---------------------------------------------------------------- validation


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `FabricConfig | None` or a catalog reference."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Scenario
    for part in loc:
        if model is None:
            return None
        if part in REF_TAGS:
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part in REF_TAGS or part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(err: dict[str, Any]) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    path = _path(loc)
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = one_of(parent.model_fields) if parent else "none"
        return Problem(path, f"unknown key; allowed here: {allowed.replace(chr(34), '')}")
    if kind == "missing":
        return Problem(path, "required key is missing")
    if kind == "literal_error":
        return Problem(path, f"got {show(value)}; allowed: {err['ctx']['expected'].replace(chr(39), chr(34))}")
    if kind in ("value_error", "assertion_error"):
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        return Problem(path, msg)
    msg = err["msg"]
    msg = msg[0].lower() + msg[1:] if msg else msg
    if kind.startswith("model_") or kind == "dict_type":
        return Problem(path, f"expected a table, got {show(value)}")
    return Problem(path, f"got {show(value)}: {msg}")


def validate_scenario(data: dict[str, Any], source: str | None = None) -> Scenario:
    """Raw data → Scenario, or a ScenarioError listing every problem (schema first, then layout)."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([_problem(e) for e in exc.errors()], source) from None
    problems = layout_problems(scenario)
    if problems:
        raise ScenarioError(problems, source)
    return scenario


def load_scenario_file(path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()) -> Scenario:
    """Load and validate a scenario file (None = the embedded default) with `key.path=value` overrides."""
    if path is None:
        source = "<default scenario>"
        data = parse_toml(default_scenario_text(), source)
    else:
        source = str(path)
        data = read_scenario_data(path)
    try:
        data = apply_overrides(data, overrides)
    except ScenarioError as exc:
        raise exc.with_source(source) from None
    return validate_scenario(data, source)


# ---------------------------------------------------------------- writing


def scenario_data(scenario: Scenario) -> dict[str, Any]:
    """A scenario as plain TOML-ready data (durations as strings; nothing null, no empty lists or tables)."""
    return _prune(scenario.model_dump(mode="json", exclude_none=True))


def _prune(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _prune(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v != {} and v != []}
    return node


def scenario_toml(scenario: Scenario) -> str:
    return tomli_w.dumps(scenario_data(scenario))


def write_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write text to a file atomically: a temporary file in the same folder, flushed, then renamed over the
    target. A failure at any point leaves the file already on disk untouched. The new file keeps the old
    one's permissions, or gets the usual ones (the umask's)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():
            mode = target.stat().st_mode & 0o777
        else:
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def save_scenario(scenario: Scenario, path: str | os.PathLike[str]) -> Path:
    """Save a scenario as TOML, atomically (see write_atomically)."""
    return write_atomically(path, scenario_toml(scenario))


def json_schema() -> dict[str, Any]:
    """JSON Schema of a scenario file, for editors."""
    schema = Scenario.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
