"""Scenario values on the command line: split `a,b,c` lists, and write a value back as TOML for --set."""

from __future__ import annotations

import json
from typing import Any


def split_values(raw: str) -> list[str]:
    """Split on commas outside quotes, brackets and braces: `8,16` → ["8", "16"]; `[1,2],[3]` → two arrays."""
    out, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(raw):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(raw[start:i])
            start = i + 1
    out.append(raw[start:])
    return [v.strip() for v in out if v.strip()]


def toml_value(value: Any) -> str:
    """A Python value as a TOML literal (what `--set key=...` parses back to the same value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        return '""'
    raise TypeError(f"no TOML form for {value!r}")


def plain(value: Any) -> str:
    """A value as a user reads it in a table: 8, fp8, H100-SXM-80GB, true."""
    if isinstance(value, str):
        return value
    return toml_value(value)
