"""User-facing errors: one line per problem, each naming the key path, the bad value and what is allowed.

Values come from files and the command line, so they are shown escaped and shortened: a newline in a value
cannot split a message, a terminal escape sequence is printed as text instead of reaching the terminal, and a
10 kB value is cut to 80 characters with its length said.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SHOWN_CHARACTERS = 80
"""The longest a value is shown in a message (quotes included); longer ones are cut and their length said."""

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _escape_char(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)  # control, format (bidi overrides, zero-width), separators: shown by code, never emitted
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def show_text(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """A string as a quoted, escaped literal of at most `limit` characters (a longer one says its length)."""
    pieces: list[str] = []
    size = 2  # the quotes
    for ch in text:
        piece = _escape_char(ch)
        if size + len(piece) > limit:
            tail = f'…" ({len(text):,} characters)'
            while pieces and size + len(tail) > limit:
                size -= len(pieces.pop())
            return '"' + "".join(pieces) + tail
        pieces.append(piece)
        size += len(piece)
    return '"' + "".join(pieces) + '"'


def show(value: Any) -> str:
    """A value as it would appear in a TOML file, escaped and at most about 80 characters long."""
    if isinstance(value, str):
        return show_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() <= 130:  # up to 40 digits, shown whole
            return str(value)
        if value.bit_length() < 14_000:  # str() refuses more than 4,300 digits
            return f"an integer of {len(str(abs(value))):,} digits"
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time of day"
    if value is None:
        return "nothing"
    return show_text(repr(value))


def show_key(key: Any) -> str:
    """One part of a key path: bare when TOML would write it bare, else quoted and escaped."""
    if isinstance(key, int):
        return f"[{key}]"
    text = str(key)
    return text if _BARE_KEY.match(text) else show_text(text, 40)


def visible(text: str) -> str:
    """Text with every control character shown escaped, line breaks included (the last line of defence:
    values should already come through `show`, which also shortens them)."""
    return "".join(ch if ch.isprintable() or ch == " " else _escape_char(ch) for ch in text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario. `path` is a dotted key path such as ``parallelism.tp``; `message` is
    one line; `detail` (optional) follows on lines of its own, such as the line of a TOML syntax error."""

    path: str
    message: str
    detail: str = ""

    def __str__(self) -> str:
        # Everything is made visible: no line break or control sequence from a file or an argument reaches
        # the terminal, so a problem is always one line (and its detail lines, each escaped on its own).
        text = f"{visible(self.path)}: {visible(self.message)}" if self.path else visible(self.message)
        return "".join([text, *(f"\n{visible(line)}" for line in self.detail.split("\n") if self.detail)])


class ScenarioError(ValueError):
    """A scenario (file, --set override or edit) that cannot be used. Carries every problem found."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{visible(self.source)}: " if self.source else ""
        count = len(self.problems)
        if count == 1:
            return f"{head}{self.problems[0]}"
        lines = [f"{head}{count} problems"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def with_source(self, source: str) -> ScenarioError:
        return ScenarioError(self.problems, source)


def one_of(values: Iterable[Any], limit: int = 40) -> str:
    items = [show(v) for v in values]
    if len(items) > limit:
        items = [*items[:limit], f"... ({len(items) - limit} more)"]
    return ", ".join(items)
