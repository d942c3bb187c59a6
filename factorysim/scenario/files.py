"""Scenario files: TOML in, validated Scenario out; --set overrides; atomic saves; JSON Schema.

No pickle, no eval: a scenario file is data only.
"""

from __future__ import annotations

import copy
import datetime
import errno
import os
import re
import stat
import tempfile
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, Discriminator, ValidationError

from .checks import layout_problems
from .errors import Problem, ScenarioError, show, show_key
from .models import REF_TAGS, Scenario

DEFAULT_SCENARIO = "default.toml"


# ---------------------------------------------------------------- reading

MAX_SCENARIO_BYTES = 1 << 20
"""The largest scenario file read (1 MiB; the shipped ones are a few kB)."""
MAX_NESTING = 32
"""The deepest arrays and inline tables may nest in a scenario file (the deepest in use is 3)."""

_STRUCTURE = re.compile(r'"""|\'\'\'|["\'#\[\]{}\n\\]')


def nesting_depth(text: str) -> int:
    """How deep brackets and braces nest in TOML text, strings and comments skipped. A scan, not a parse, so
    it is safe on hostile input (the TOML parser recurses once per level)."""
    depth = deepest = 0
    quote: str | None = None  # the delimiter of the string we are in
    comment = False
    escaped_at = -1  # where a backslash in a basic string escapes the next character
    for m in _STRUCTURE.finditer(text):
        tok = m.group()
        if comment:
            comment = tok != "\n"
            continue
        if quote is not None:
            if m.start() == escaped_at:
                continue
            if tok == "\\" and quote in ('"', '"""'):
                escaped_at = m.end()
            elif tok == quote or (tok == "\n" and len(quote) == 1):
                quote = None
            continue
        if tok in ('"', "'", '"""', "'''"):
            quote = tok
        elif tok == "#":
            comment = True
        elif tok in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif tok in "]}":
            depth = max(0, depth - 1)
    return deepest


def _toml_values_problems(node: Any, path: str) -> list[Problem]:
    """TOML dates and times have no meaning in a scenario (durations are strings): each one, by key path."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _toml_values_problems(value, f"{path}.{show_key(key)}" if path else show_key(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _toml_values_problems(value, f"{path}[{i}]")
    elif isinstance(node, (datetime.date, datetime.time)):  # datetime.datetime is a date
        out.append(Problem(path, f"got {show(node)}; factorysim takes no TOML dates or times "
                                 f'(a sim time or duration is a string such as "2d" or "1h30m")'))  # fmt: skip
    return out


def parse_toml(text: str, source: str | None = None) -> dict[str, Any]:
    """Parse TOML text; a syntax error names its line and column and shows the line. Text nested deeper than
    MAX_NESTING is refused before parsing; dates and times are refused with their key paths."""
    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        raise ScenarioError(
            [Problem("", f"arrays or tables nest {depth} deep; at most {MAX_NESTING} are read")], source
        )
    try:
        data = tomllib.loads(text)
    except RecursionError:  # the scan above should have refused it; never a traceback all the same
        raise ScenarioError([Problem("", "arrays or tables nest too deeply")], source) from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            lines = text.splitlines()
            shown = lines[line - 1] if 0 < line <= len(lines) else ""
            if len(shown) > 120:  # show the part around the column
                start = max(0, col - 60)
                shown, col = shown[start : start + 120], col - start
            problem = Problem("", f"TOML syntax error at line {line}, column {col}: {reason}",
                              f"    {shown}\n    {' ' * (col - 1)}^")  # fmt: skip
        else:
            problem = Problem("", f"TOML syntax error: {msg}")
        raise ScenarioError([problem], source) from None
    except ValueError:  # the only other error: an integer past Python's 4,300-digit conversion limit
        raise ScenarioError([Problem("", "an integer has more than 4,300 digits")], source) from None
    problems = _toml_values_problems(data, "")
    if problems:
        raise ScenarioError(problems, source)
    return data


def read_text_file(path: str | os.PathLike[str], limit: int, what: str) -> str:
    """The text of a regular file of at most `limit` bytes. Devices, FIFOs and directories are refused before
    anything is read (reading /dev/zero never ends; a FIFO blocks), and a file that grows past the limit while
    being read is refused too. Raises ScenarioError naming the file."""
    source = str(path)

    def bad(message: str) -> ScenarioError:
        return ScenarioError([Problem("", message)], source)

    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise bad(f"is a directory, not {what}")
        if not stat.S_ISREG(info.st_mode):
            raise bad(f"is {file_kind(info.st_mode)}, not {what}; only regular files are read")
        if info.st_size > limit:
            raise bad(f"is {info.st_size:,} bytes; {what} is at most {limit:,}")
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except FileNotFoundError:
        raise bad("no such file") from None
    except OSError as exc:
        raise bad(exc.strerror or str(exc)) from None
    if len(raw) > limit:
        raise bad(f"is more than {limit:,} bytes; {what} is at most {limit:,}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words: "a directory", "a device", "a FIFO (named pipe)"..."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def read_scenario_data(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw table of a scenario file (not yet validated)."""
    return parse_toml(read_text_file(path, MAX_SCENARIO_BYTES, "a scenario file"), str(path))


def default_scenario_text() -> str:
    """The scenario embedded in the package, so `factorysim` works from any directory."""
    return resources.files("factorysim.scenario").joinpath("data", DEFAULT_SCENARIO).read_text("utf-8")


# ---------------------------------------------------------------- overrides


def parse_override(item: str) -> tuple[list[str], Any]:
    """`key.path=value` → (["key", "path"], value). Values are TOML (64, 0.5, true, "x"); bare words are strings."""
    if "=" not in item:
        raise ScenarioError([Problem("--set", f"{show(item)} is not key.path=value (e.g. parallelism.dp=64)")])
    key, raw = item.split("=", 1)
    parts = [k.strip() for k in key.strip().split(".")]
    if not all(parts):
        raise ScenarioError([Problem("--set", f"{show(key)} is not a dotted key path (e.g. cluster.fabric.nic_gbps)")])
    raw = raw.strip()
    try:
        value = parse_toml(f"v = {raw}")["v"]
    except ScenarioError as exc:
        if any(p.message.startswith("TOML syntax error") for p in exc.problems):
            value = raw
        else:
            raise ScenarioError([Problem(".".join(parts), p.message) for p in exc.problems]) from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Lay `key.path=value` overrides over raw scenario data (returns a new dict)."""
    out = copy.deepcopy(data)  # plain TOML data, no dates (parse_toml refuses them), nesting bounded
    for item in overrides:
        parts, value = parse_override(item)
        set_value_at(out, ".".join(parts), value)
    return out


def value_at(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted key path ("cluster.fabric.nic_gbps") of raw scenario data; None where there is none."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_value_at(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted key path of raw scenario data, making the tables on the way; None removes
    the key. A key on the way that holds a value, not a table, is a ScenarioError naming that key."""
    parts = path.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise ScenarioError([Problem(where, f"is {show(nxt)}, not a table; cannot set {path}")])
        node = nxt
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


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


def _is_reference(annotation: Any) -> bool:
    """A catalog reference: a union told apart by tag, whose tags pydantic puts in error locations."""
    if any(isinstance(m, Discriminator) for m in getattr(annotation, "__metadata__", ())):
        return True
    return any(_is_reference(arg) for arg in typing.get_args(annotation))


def _walk(loc: tuple[Any, ...]) -> tuple[list[Any], type[BaseModel] | None]:
    """An error location → (the keys and indices of the data it points at, the model holding the last key).
    Pydantic adds the tag of a catalog reference ("name" or "inline") after the reference's key, and "[key]"
    after a dict key it refused; neither is in the file. A key really called "name" stays."""
    keys: list[Any] = []
    model: type[BaseModel] | None = Scenario
    parent: type[BaseModel] | None = None
    tagged = False
    for part in loc:
        if tagged and part in REF_TAGS:
            tagged = False
            model = model if part == "inline" else None
            continue
        if part == "[key]":
            continue
        keys.append(part)
        parent = model
        if isinstance(part, int):
            continue  # an index keeps the list's element model
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            model, tagged = None, False
        else:
            tagged = _is_reference(field.annotation) or any(isinstance(m, Discriminator) for m in field.metadata)
            model = _inner_model(field.annotation)
    return keys, parent


def _path(keys: list[Any]) -> str:
    out = ""
    for part in keys:
        out += show_key(part) if isinstance(part, int) or not out else f".{show_key(part)}"
    return out


_BOUNDS = {
    "greater_than": ("more than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}


def _problem(err: Mapping[str, Any]) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    keys, _ = _walk(loc)
    path = _path(keys)
    if kind == "extra_forbidden":
        _, parent = _walk(loc)
        allowed = ", ".join(parent.model_fields) if parent else "none"
        return Problem(path, f"unknown key; allowed here: {allowed}")
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
    if kind in _BOUNDS:
        word, key = _BOUNDS[kind]
        bound = err.get("ctx", {}).get(key)
        shown = f"{bound:,g}" if isinstance(bound, (int, float)) and not isinstance(bound, bool) else show(bound)
        return Problem(path, f"got {show(value)}; must be {word} {shown}")
    if kind == "finite_number":
        return Problem(path, f"got {show(value)}: a finite number is needed")
    return Problem(path, f"got {show(value)}: {msg}")


def _remove(data: dict[str, Any], keys: list[Any]) -> bool:
    """Remove what `keys` points at (a list element whole). False if it is not there."""
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            if last or not isinstance(node[key], (dict, list)):
                del node[key]
                return True
            node = node[key]
        elif isinstance(node, dict) and key in node:
            if last:
                del node[key]
                return True
            node = node[key]
        else:
            return False
    return False


def _without_refused(data: dict[str, Any], errors: list[Any]) -> tuple[Scenario | None, list[list[Any]]]:
    """The scenario with every refused key left at its default (a list element or table whose own keys are
    wrong is dropped whole), and the keys dropped; None if nothing valid is left."""
    data = copy.deepcopy(data)
    dropped: list[list[Any]] = []
    for _ in range(8):
        targets = []
        for err in errors:
            keys, _ = _walk(tuple(err["loc"]))
            if err["type"] == "missing":
                keys = keys[:-1]
            while keys and any(isinstance(k, int) for k in keys[:-1]):  # drop the list element, not inside it
                keys = keys[: max(i for i, k in enumerate(keys) if isinstance(k, int)) + 1]
            if not keys:
                return None, dropped
            targets.append(keys)
        for keys in sorted(targets, key=lambda k: [str(x) if not isinstance(x, int) else f"{x:012d}" for x in k],
                           reverse=True):  # fmt: skip
            if _remove(data, keys):
                dropped.append(keys)
        try:
            return Scenario.model_validate(data), dropped
        except ValidationError as exc:
            errors = exc.errors()
    return None, dropped


def _mentions(problem: Problem, dropped: list[list[Any]]) -> bool:
    for keys in dropped:
        path = _path(keys)
        if problem.path == path or problem.path.startswith(path + ".") or problem.path.startswith(path + "["):
            return True
        names = [k for k in keys if isinstance(k, str)]
        if names and re.search(rf"(?<![\w.]){re.escape(names[-1])}(?!\w)", problem.message):
            return True
    return False


def validate_scenario(
    data: dict[str, Any], source: str | None = None, more_checks: Callable[[Scenario], list[Problem]] | None = None
) -> Scenario:
    """Raw data → Scenario, or a ScenarioError listing every problem in one pass: the schema's, then the
    cross-field checks (the parallel layout, then `more_checks` once the layout is sound).

    When keys are refused by the schema, the cross-field checks still run, with those keys at their defaults;
    a problem they find that names a refused key is left out (it may vanish once the key is fixed)."""
    try:
        scenario: Scenario | None = Scenario.model_validate(data)
        problems: list[Problem] = []
        dropped: list[list[Any]] = []
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        scenario, dropped = _without_refused(data, exc.errors())
    if scenario is not None:
        cross = layout_problems(scenario)
        if not cross and more_checks is not None:
            cross = more_checks(scenario)
        problems += [p for p in cross if not _mentions(p, dropped)]
    if problems:
        raise ScenarioError(problems, source)
    assert scenario is not None
    return scenario


def load_scenario_file(
    path: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    more_checks: Callable[[Scenario], list[Problem]] | None = None,
) -> Scenario:
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
    return validate_scenario(data, source, more_checks)


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
    return tomli_w.dumps(scenario_data(scenario), multiline_strings=True)  # a description stays readable


class NotARegularFile(OSError):
    """The target of a write exists and is not a regular file (a device, FIFO, socket or directory)."""


def write_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write text to a file atomically: a temporary file in the same folder, flushed, then renamed over the
    target. A failure at any point leaves the file already on disk untouched. The new file keeps the old
    one's permissions, or gets the usual ones (the umask's). Anything but a regular file (or a symbolic link,
    which is replaced, not followed) is refused with NotARegularFile."""
    target = Path(path)
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):  # renaming over /dev/null replaces it
        raise NotARegularFile(
            errno.EEXIST, f"{target} is {file_kind(mode)}; only a regular file is replaced", str(target)
        )
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
