"""Durations as people write them: "90s", "30m", "2h", "54d", "1h30m"."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from .errors import show

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 365 * 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*(ms|s|m|h|d|w|y)")
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?([eE][+-]?\d+)?\s*(ms|s|m|h|d|w|y)\s*)+$"
MAX_DURATION = 1000 * 365 * 86400.0
"""The longest duration anywhere (1000 years): far beyond any training run, short enough that sim times
keep millisecond resolution as floats."""
DURATION_HELP = 'a duration like "90s", "30m", "2h", "54d" or "1h30m" (units ms, s, m, h, d, w, y)'


def parse_duration(value: object) -> float:
    """Return seconds for a duration string or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}, got {show(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value) if not isinstance(value, int) or value.bit_length() < 1000 else math.inf
    elif isinstance(value, str):
        text = value.strip().lower()
        if not text or not re.fullmatch(DURATION_PATTERN, text):
            raise ValueError(f"expected {DURATION_HELP}, got {show(value)}")
        seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(text))
    else:
        raise ValueError(f"expected {DURATION_HELP}, got {show(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and not negative, got {show(value)}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration must be at most 1000y, got {show(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact string for a duration (round-trips through parse_duration)."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count = seconds / size
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


def human_duration(seconds: float) -> str:
    """A readable approximation for tables and the dashboard: '3.2 d', '14 min', '850 ms'."""
    if not math.isfinite(seconds):
        return "never"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    if seconds < 2 * 365 * 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / (365 * 86400):.1f} y"


def short_duration(seconds: float) -> str:
    """A span in three figures for headlines and chart axes: '45 min', '6 h', '2.5 d', '14 d'."""
    if seconds >= 86400:
        return f"{seconds / 86400:.3g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{max(seconds, 0) / 60:.2g} min"


def clock_text(t: float) -> str:
    """A sim time as a clock: '3d 04:05:06'."""
    days, rest = divmod(int(t), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}d {h:02d}:{m:02d}:{s:02d}"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "description": DURATION_HELP}),
]
"""Seconds in Python; a duration string in files and JSON."""
