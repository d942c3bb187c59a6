"""The event log as a player reads it: one sentence per event, a filter, and a click that goes to the node."""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from ..scenario.units import clock_text

NODE = re.compile(r"^(n\d+(\.\d+)?|leaf\d+|spine\d+|core\d+)$")
SEVERITY = {
    "fault": "error", "inject": "error", "detect": "warning", "stop": "warning", "waiting": "warning",
    "isolate": "warning", "gray": "warning", "evict": "warning", "restart": "warning", "maintenance": "warning",
    "restarted": "success", "joined": "success", "rejoin": "success", "repaired": "success", "gray_end": "success",
    "spare_in": "success", "spare_join": "success", "checkpoint": "muted", "edit": "accent", "policy": "accent",
}  # fmt: skip
MARK = {"error": "✕", "warning": "▲", "success": "✓", "muted": "·", "accent": "✎"}
"""A glyph per severity, so the log does not speak in colour alone."""


def _cause(record: dict[str, Any]) -> str:
    cause = record.get("cause")
    return f" ({str(cause).replace('_', ' ')})" if cause else ""


def _spares(n: Any) -> str:
    return f"{n} spare{'' if n == 1 else 's'}"


def _pct(value: Any) -> str:
    return f"{float(value):.0%}" if isinstance(value, (int, float)) else str(value)


def describe_event(record: dict[str, Any]) -> str:
    """One plain sentence for an event record (what happened to what, and what it did)."""
    kind, target = record["kind"], str(record["target"])
    effect: dict[str, Any] = record.get("effect", {})
    cause = _cause(record)
    if kind == "inject":
        what = effect.get("kind", "fault")
        extra = []
        if effect.get("factor") is not None:
            extra.append(f"factor {effect['factor']:g}")
        if effect.get("duration") is not None:
            extra.append(f"for {effect['duration'] / 3600:g} h")
        return f"you injected {what} on {target}" + (f" ({', '.join(extra)})" if extra else "")
    if kind == "fault":
        if target == "job":
            return f"the job crashed{cause}" + ("; it was already down" if effect.get("job") == "already down" else "")
        if target.startswith("group"):
            return f"{target} hangs{cause}"
        if "servers" in effect:
            return f"{target} failed{cause}: its {effect['servers']} servers are cut off"
        if "health" in effect:
            health = effect["health"]
            return f"{target} failed{cause}" if not health else f"{target} degraded to {_pct(health)}{cause}"
        role = effect.get("role")
        if role:
            return f"{role} server {target} failed{cause}; it goes to repair"
        return f"{target} failed{cause}; the job hangs until the fault is found"
    if kind == "detect":
        return ("crash found" if target == "job" else f"{target}'s fault found") + f"{cause}: the job stops"
    if kind == "stop":
        return f"the job stops to restart{cause}"
    if kind == "isolate":
        return f"{target} isolated{cause}: {effect.get('replicas_up')}/{effect.get('replicas')} replicas train on"
    if kind in ("restart", "maintenance"):
        verb = "restarts in place" if kind == "restart" else "drains for maintenance"
        back = f", back at {clock_text(effect['back_at'])}" if "back_at" in effect else ""
        return f"{target} {verb}{cause}{back}"
    if kind == "repaired":
        spares = f" ({_spares(effect['spares'])} now)" if "spares" in effect else ""
        return f"{target} repaired{spares}"
    if kind == "spare_in":
        return f"spare {target} takes slot {effect.get('slot')} ({_spares(effect.get('spares'))} left)"
    if kind == "spare_join":
        return f"hot spare {target} joining slot {effect.get('slot')} ({_spares(effect.get('spares'))} left)"
    if kind == "joined":
        return f"{target} joined the job in slot {effect.get('slot')}"
    if kind == "waiting":
        return f"no spare: the job waits for a repair ({effect.get('empty_slots')} empty slots)"
    if kind == "rejoin":
        return f"{target} back: {effect.get('replicas_up')}/{effect.get('replicas')} replicas"
    if kind == "restarted":
        return f"the job restarted: {effect.get('replicas_up')}/{effect.get('replicas')} replicas"
    if kind == "gray":
        gk, factor = effect.get("kind"), effect.get("factor", 1.0)
        until = f" until {clock_text(effect['until'])}" if "until" in effect else ""
        what = {"straggle": f"runs at {_pct(factor)} speed", "degrade": f"link at {_pct(factor)} bandwidth",
                "degrade_up": f"scale-up link at {_pct(factor)}", "flap": f"link flaps (up {_pct(factor)} of the time)"}  # fmt: skip
        return f"{target} {what.get(gk, str(gk))}{until}{cause}"
    if kind == "gray_end":
        return f"{target} back to full speed"
    if kind == "evict":
        return f"{target} evicted as a straggler{cause}; a spare takes its place"
    if kind == "checkpoint":
        tokens = effect.get("tokens")
        return "checkpoint saved" + (f" at {tokens:.3g} tokens" if isinstance(tokens, (int, float)) else "")
    if kind == "policy":
        return f"recovery policy now {effect.get('policy')}"
    if kind == "edit":
        return "scenario changed: the run starts again at t = 0"
    return f"{kind} {target}{cause}"


def node_of(record: dict[str, Any]) -> str | None:
    """The canvas node an event is about, if any (servers, chips, switches)."""
    target = str(record.get("target", ""))
    return target if NODE.match(target) else None


class EventLog(Vertical):
    """The run's events, newest last: a filter box and a list whose entries go to their node when chosen."""

    ALLOW_MAXIMIZE = True
    LIMIT = 400

    class Chosen(Message):
        """The player chose an event about a node: show it."""

        def __init__(self, node: str) -> None:
            super().__init__()
            self.node = node

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.records: deque[dict[str, Any]] = deque(maxlen=self.LIMIT)
        self._pending: list[dict[str, Any]] = []
        self.query_text = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: fault, n12, leaf, repaired …", id="event-filter", compact=True)
        yield OptionList(id="event-list")

    def on_mount(self) -> None:
        self.options = self.query_one("#event-list", OptionList)

    def add(self, record: dict[str, Any]) -> None:
        """Queue an event; `flush` shows what was queued (one layout per flush, not per event)."""
        self._pending.append(record)

    def flush(self) -> None:
        if not self._pending:
            return
        new, self._pending = self._pending, []
        overflow = len(self.records) + len(new) > self.LIMIT
        self.records.extend(new)
        if overflow:
            self._rebuild()
            return
        shown = [self._option(r) for r in new if self._matches(r)]
        if shown:
            following = self.options.highlighted is None  # the player is not reading an older event
            self.options.add_options(shown)
            if following:
                self.call_after_refresh(self.options.scroll_end, animate=False)

    def clear(self) -> None:
        self.records.clear()
        self._pending.clear()
        self.options.clear_options()

    def _matches(self, record: dict[str, Any]) -> bool:
        if not self.query_text:
            return True
        text = f"{record['kind']} {record['target']} {describe_event(record)}".lower()
        return all(word in text for word in self.query_text.lower().split())

    def _option(self, record: dict[str, Any]) -> Option:
        severity = SEVERITY.get(record["kind"], "muted")
        style = {"error": "$text-error", "warning": "$text-warning", "success": "$text-success",
                 "muted": "$text-muted", "accent": "$text-accent"}[severity]  # fmt: skip
        node = node_of(record)
        prompt = f"[dim]{clock_text(record['t'])}[/dim] [{style}]{MARK[severity]}[/] {escape(describe_event(record))}"
        return Option(prompt + (" [dim]›[/dim]" if node else ""))

    def _rebuild(self) -> None:
        self.options.clear_options()
        self.options.add_options([self._option(r) for r in self.records if self._matches(r)])
        self.call_after_refresh(self.options.scroll_end, animate=False)

    def shown_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if self._matches(r)]

    @on(Input.Changed, "#event-filter")
    def _filter(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self._rebuild()

    @on(OptionList.OptionSelected, "#event-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        shown = self.shown_records()
        if 0 <= event.option_index < len(shown) and (node := node_of(shown[event.option_index])):
            self.post_message(self.Chosen(node))

    def plain_lines(self) -> list[str]:
        """What the list shows, as plain text (for tests and screen readers of the log)."""
        return [f"{clock_text(r['t'])} {describe_event(r)}" for r in self.shown_records()]
