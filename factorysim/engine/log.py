"""The event log: JSON lines with a schema version, and a running fingerprint.

Line 1 is a header: schema version, factorysim version, seed, the scenario itself and its hash. Then one
line per state change (sim time, kind, target, cause, effect on capacity). The last line closes the run
with its end time and fingerprint, the SHA-256 of every line before it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..scenario.errors import Problem, ScenarioError
from ..scenario.files import write_atomically

SCHEMA_VERSION = 1


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)


def scenario_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(data).encode()).hexdigest()


class EventLog:
    """Receives every event: hashes it, keeps the recent ones for display, and optionally all of them."""

    def __init__(self, header: dict[str, Any], *, keep_all: bool = False, recent: int = 200) -> None:
        self.header = {"kind": "header", "schema": SCHEMA_VERSION, **header}
        self._hash = hashlib.sha256()
        self.lines: list[str] | None = [] if keep_all else None
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.count = 0
        self._add(self.header)

    def _add(self, record: dict[str, Any]) -> None:
        line = dumps(record)
        self._hash.update(line.encode())
        self._hash.update(b"\n")
        if self.lines is not None:
            self.lines.append(line)

    def append(self, record: dict[str, Any]) -> None:
        self._add(record)
        self.recent.append(record)
        self.count += 1

    @property
    def fingerprint(self) -> str:
        return self._hash.hexdigest()

    def closing(self, t: float, summary: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "end", "t": t, "events": self.count, "fingerprint": self.fingerprint, "summary": summary}

    def write(self, path: str | os.PathLike[str], t: float, summary: dict[str, Any]) -> Path:
        """Write the whole log atomically (temporary file, then rename)."""
        if self.lines is None:
            raise RuntimeError("this log does not keep its lines; create it with keep_all=True")
        text = "".join(line + "\n" for line in self.lines) + dumps(self.closing(t, summary)) + "\n"
        return write_atomically(path, text)


def read_log(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """(header, event lines, closing record) of a recorded run; a ScenarioError says what is wrong."""
    source = str(path)

    def bad(message: str) -> ScenarioError:
        return ScenarioError([Problem("", message)], source)

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise bad("no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise bad(f"cannot read the log ({exc})") from None
    lines = text.splitlines()
    records = []
    for number, line in enumerate(_nonblank(lines), start=1):
        try:
            records.append((line, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise bad(f"line {number} is not JSON ({exc.msg}); the log is corrupted or truncated") from None
    if not records:
        raise bad("empty file: not a factorysim event log")
    header = records[0][1]
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise bad("the first line is not a factorysim log header")
    if header.get("schema") != SCHEMA_VERSION:
        raise bad(f"log schema version {header.get('schema')!r}; this factorysim reads version {SCHEMA_VERSION}")
    if "scenario" not in header or "seed" not in header:
        raise bad("the header has no scenario or seed")
    if scenario_hash(header["scenario"]) != header.get("scenario_sha256"):
        raise bad("the scenario in the header does not match its hash: the log was edited or is from another scenario")
    closing = records[-1][1]
    if closing.get("kind") != "end":
        raise bad(f"no closing line after line {len(records)}: the log is truncated")
    return header, [line for line, _ in records[:-1]], closing


def _nonblank(lines: list[str]) -> Iterator[str]:
    return (line for line in lines if line.strip())
