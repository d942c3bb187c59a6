"""The event log: JSON lines with a schema version, a hash chain over every line, and a running fingerprint.

Line 1 is a header: schema version, factorysim version, seed, the scenario itself and its hash. Then one
line per state change (sim time, kind, target, cause, effect on capacity). The last line closes the run
with its end time, event count, summary and fingerprint (the SHA-256 of every line before it, without
their chain links, so it is the same for a run whether it was written to a file or not).

Every written line ends with a link of a hash chain: `"chain":"<16 hex digits>"`, the start of
SHA-256(link of the line before + the line without its link). Reading checks the chain first, line by
line, so a log changed after it was written (any byte, a line removed or added, the closing line
included) is reported as altered at the first line that no longer matches, before anything is
re-simulated. The chain is a check against damage and careless edits, not a signature: anyone can
rewrite a whole chain, and then re-simulating the log is what finds what differs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..scenario.errors import Problem, ScenarioError, show
from ..scenario.files import read_text_file, write_atomically
from ..scenario.models import FAULT_KINDS, MAX_SEED
from ..scenario.units import MAX_DURATION

SCHEMA_VERSION = 2
"""2: every line carries a link of the hash chain. 1 (no chain) is no longer read."""

MAX_LOG_BYTES = 256 << 20
"""The largest log read (256 MiB: several sim years of the 100,000-chip scenario)."""
MAX_HEADER_BYTES = 4 << 20
"""The header holds the scenario (a scenario file is at most 1 MiB of TOML)."""
MAX_LINE_BYTES = 64 << 10
"""Any other line: an event or the closing summary (a few hundred bytes in practice)."""

_LINK = re.compile(r',"chain":"([0-9a-f]{16})"\}$')


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)


def scenario_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(data).encode()).hexdigest()


def chain_link(previous: str, body: str) -> str:
    """The next full link of the chain (the line shows its first 16 hex digits)."""
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


def with_links(bodies: list[str]) -> str:
    """The text of a log: every line with its chain link."""
    out, link = [], ""
    for body in bodies:
        link = chain_link(link, body)
        out.append(f'{body[:-1]},"chain":"{link[:16]}"}}\n')
    return "".join(out)


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
        if "chain" in record:
            raise ValueError('"chain" is the log\'s own key; a record may not use it')
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

    def text(self, t: float, summary: dict[str, Any]) -> str:
        """The whole log as written: every line and the closing one, each with its chain link."""
        if self.lines is None:
            raise RuntimeError("this log does not keep its lines; create it with keep_all=True")
        return with_links([*self.lines, dumps(self.closing(t, summary))])

    def write(self, path: str | os.PathLike[str], t: float, summary: dict[str, Any]) -> Path:
        """Write the whole log atomically (temporary file, then rename)."""
        return write_atomically(path, self.text(t, summary))


# ------------------------------------------------------------------ reading


class LogAltered(ScenarioError):
    """A log whose hash chain breaks at `line`: it was changed after it was written."""

    def __init__(self, line: int, source: str) -> None:
        self.line = line
        reason = "the line does not match the log's hash chain, so the log was changed after it was written"
        super().__init__([Problem("", f"altered at line {line}: {reason}")], source)


@dataclass(frozen=True)
class RecordedRun:
    """A log that passed its checks: the header, the event lines (as hashed, without chain links), the closing
    record, and the closing line as hashed."""

    header: dict[str, Any]
    lines: list[str]  # the header's and every event's, without chain links
    closing: dict[str, Any]
    closing_line: str


def read_log(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """(header, event lines, closing record) of a recorded run; a ScenarioError says what is wrong."""
    run = read_recorded_run(path)
    return run.header, run.lines, run.closing


def read_recorded_run(path: str | os.PathLike[str]) -> RecordedRun:
    """Read a log, checking in this order: a regular file within MAX_LOG_BYTES; a factorysim header of this
    schema; the hash chain of every line (LogAltered names the first line that breaks it); then every
    record's fields and types. A ScenarioError says what is wrong."""
    source = str(path)

    def bad(message: str) -> ScenarioError:
        return ScenarioError([Problem("", message)], source)

    text = read_text_file(path, MAX_LOG_BYTES, "an event log")
    if not text.strip():
        raise bad("empty file: not a factorysim event log")
    rows = text.split("\n")
    complete = rows[-1] == ""  # the writer ends every line, the last one included, with a newline
    if complete:
        rows.pop()
    first = rows[0]
    try:
        header = json.loads(first) if len(first) <= MAX_HEADER_BYTES else None
    except (json.JSONDecodeError, RecursionError):
        header = None
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise bad("the first line is not a factorysim log header")
    if header.get("schema") != SCHEMA_VERSION:
        raise bad(f"log schema version {show(header.get('schema'))}; this factorysim reads version {SCHEMA_VERSION}")

    bodies: list[str] = []
    link = ""
    for number, row in enumerate(rows, start=1):
        limit = MAX_HEADER_BYTES if number == 1 else MAX_LINE_BYTES
        if len(row) > limit:
            raise bad(f"line {number} is {len(row):,} characters; a log line is at most {limit:,}")
        m = _LINK.search(row)
        body = row[: m.start()] + "}" if m else ""
        link = chain_link(link, body)
        if m is None or m.group(1) != link[:16]:
            if number == len(rows) and not complete:
                raise bad(f"line {number} is incomplete (no line end): the log is truncated or was altered")
            raise LogAltered(number, source)
        bodies.append(body)

    records = []
    for number, body in enumerate(bodies, start=1):
        try:
            records.append(json.loads(body))
        except (json.JSONDecodeError, RecursionError):
            raise bad(f"line {number} is not a JSON record (it matches the chain, so it was written so)") from None
    header = records[0]
    _check_header(header, bad)
    closing_at = next((i for i, r in enumerate(records) if isinstance(r, dict) and r.get("kind") == "end"), None)
    if closing_at is None:
        raise bad(f"no closing line after line {len(records)}: the log is truncated")
    if closing_at != len(records) - 1:
        raise bad(f"line {closing_at + 2} comes after the closing line (line {closing_at + 1})")
    for number, record in enumerate(records[1:-1], start=2):
        _check_event(record, number, bad)
    closing = records[-1]
    _check_closing(closing, len(records), bad)
    if scenario_hash(header["scenario"]) != header["scenario_sha256"]:
        raise bad("the scenario in the header does not match its hash: the log was edited or is from another scenario")
    return RecordedRun(header, bodies[:-1], closing, bodies[-1])


Refusal = Callable[[str], ScenarioError]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_header(header: dict[str, Any], bad: Refusal) -> None:
    seed = header.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise bad(f"line 1: the header's seed is {show(seed)}; a seed is a whole number from 0 to 2**63 - 1")
    if not isinstance(header.get("scenario"), dict):
        raise bad(f"line 1: the header's scenario is {show(header.get('scenario'))}, not a table")
    if not isinstance(header.get("scenario_sha256"), str):
        raise bad("line 1: the header has no scenario_sha256")


def _check_time(record: dict[str, Any], number: int, bad: Refusal) -> None:
    t = record.get("t")
    if not (isinstance(t, (int, float)) and _number(t) and 0 <= t <= MAX_DURATION):
        raise bad(f"line {number}: t is {show(t)}; a sim time is a number of seconds from 0 to 1000 years")


def _check_event(record: Any, number: int, bad: Refusal) -> None:
    if not isinstance(record, dict):
        raise bad(f"line {number} is {show(record)}, not an event record")
    if not isinstance(record.get("kind"), str) or not isinstance(record.get("target"), str):
        raise bad(f"line {number}: an event needs a kind and a target (strings)")
    _check_time(record, number, bad)
    effect = record.get("effect", {})
    if not isinstance(effect, dict):
        raise bad(f"line {number}: effect is {show(effect)}, not a table")
    if record["kind"] == "inject" and record.get("cause") == "injected":
        kind, factor, duration = effect.get("kind", "fail"), effect.get("factor"), effect.get("duration")
        if kind not in FAULT_KINDS:
            raise bad(f"line {number}: injected fault kind {show(kind)}; allowed: {', '.join(FAULT_KINDS)}")
        if factor is not None and not (_number(factor) and 0 < factor <= 1):
            raise bad(f"line {number}: injected fault factor {show(factor)}; allowed: a number in (0, 1]")
        if duration is not None and not (_number(duration) and 0 < duration <= MAX_DURATION):
            raise bad(f"line {number}: injected fault duration {show(duration)}; allowed: seconds, more than 0")


def _check_closing(closing: dict[str, Any], number: int, bad: Refusal) -> None:
    _check_time(closing, number, bad)
    events = closing.get("events")
    if not isinstance(events, int) or isinstance(events, bool) or events != number - 2:
        raise bad(f"line {number}: the closing line counts {show(events)} events; the log has {number - 2}")
    if not isinstance(closing.get("fingerprint"), str) or not isinstance(closing.get("summary"), dict):
        raise bad(f"line {number}: the closing line needs a fingerprint and a summary")
