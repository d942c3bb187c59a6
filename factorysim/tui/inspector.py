"""The inspector: the selection's properties and links, or the scenario's fields, editable.

Fields come from the scenario's pydantic models (names, choices, descriptions); the app validates every
edit through the same models and the reply (accepted, or refused with the reason) shows under the field.
"""

from __future__ import annotations

import time
import tomllib
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, Switch, Tab, Tabs
from textual.widgets.input import Selection

from ..scenario.catalog import catalog
from ..scenario.models import (
    ClusterConfig,
    FabricConfig,
    FeaturesConfig,
    ParallelismConfig,
    ReliabilityConfig,
    WorkloadConfig,
)
from ..topology.layout import Box

SECTIONS: tuple[tuple[str, type[BaseModel], tuple[str, ...]], ...] = (
    ("parallelism", ParallelismConfig, ()),
    (
        "workload",
        WorkloadConfig,
        (
            "params_b",
            "layers",
            "hidden",
            "heads",
            "kv_heads",
            "ffn_hidden",
            "vocab",
            "gated_mlp",
            "tied_embeddings",
            "experts",
            "top_k",
        ),
    ),
    ("features", FeaturesConfig, ()),
    ("reliability", ReliabilityConfig, ("rates", "repair")),
    ("cluster", ClusterConfig, ("fabric",)),
    ("cluster.fabric", FabricConfig, ()),
)
CATALOG_FIELDS = {"cluster.chip": "chips", "cluster.scale_up": "links", "cluster.fabric.technology": "fabrics",
                  "workload.model": "models"}  # fmt: skip


@dataclass(frozen=True)
class FieldSpec:
    path: str
    label: str
    widget: Literal["select", "switch", "input"]
    options: tuple[str, ...]
    help: str


def _choices(annotation: Any) -> tuple[str, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    for arg in typing.get_args(annotation):
        found = _choices(arg)
        if found:
            return found
    return None


def scenario_fields() -> list[FieldSpec]:
    """Every simple scenario key, with the widget that edits it."""
    out = []
    for section, model, skip in SECTIONS:
        for name, field in model.model_fields.items():
            if name in skip:
                continue
            path = f"{section}.{name}"
            help_text = field.description or ""
            if path in CATALOG_FIELDS:
                names = tuple(sorted(getattr(catalog(), CATALOG_FIELDS[path])))
                out.append(FieldSpec(path, name, "select", names, help_text))
            elif field.annotation is bool:
                out.append(FieldSpec(path, name, "switch", (), help_text))
            elif (choices := _choices(field.annotation)) and name != "dp":
                out.append(FieldSpec(path, name, "select", choices, help_text))
            else:
                out.append(FieldSpec(path, name, "input", (), help_text))
    return out


def parse_value(text: str) -> Any:
    """An input's text as a TOML value (64, 0.5, true, "30m"); bare words are strings, empty is 'unset'."""
    text = text.strip()
    if not text:
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FieldInput(Input):
    """An input whose whole value is selected when a click brings focus, so typing replaces it (not 400 → 10000)."""

    _focused_at = 0.0
    _select_all = False

    def _on_focus(self, event: events.Focus) -> None:
        super()._on_focus(event)
        self._focused_at = time.monotonic()

    async def _on_mouse_down(self, event: events.MouseDown) -> None:
        self._select_all = not self.has_focus or time.monotonic() - self._focused_at < 0.3
        await super()._on_mouse_down(event)

    async def _on_mouse_up(self, event: events.MouseUp) -> None:
        await super()._on_mouse_up(event)
        if self._select_all and self.selection.is_empty:
            self.selection = Selection(0, len(self.value))
        self._select_all = False


def _wid(path: str) -> str:
    return "f-" + path.replace(".", "-").replace("_", "--")


class Inspector(VerticalScroll):
    """Properties of the selection, or the scenario when nothing is selected."""

    class Edit(Message):
        """Set a scenario key (None = remove it and take the default)."""

        def __init__(self, path: str, value: Any) -> None:
            super().__init__()
            self.path, self.value = path, value

    class LinkEdit(Message):
        def __init__(self, a: str, b: str, gbps: float | None) -> None:
            super().__init__()
            self.a, self.b, self.gbps = a, b, gbps  # gbps None = remove

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.fields = scenario_fields()
        self.section = SECTIONS[0][0]
        self._mode: tuple[str, str | None] = ("none", None)
        self._linked = False  # the body lists links
        self._filling = False
        self._shown: dict[str, Any] = {}  # what each field shows: change events for these values are echoes
        self.read_only = False
        self._links: dict[str, float] = {}

    ALLOW_MAXIMIZE = True

    def compose(self) -> ComposeResult:
        yield Static("", id="inspector-title")
        yield Static("", id="inspector-result")
        yield Static("", id="inspector-props")
        yield VerticalScroll(id="inspector-body")

    def on_mount(self) -> None:
        self.query_one("#inspector-result").display = False

    def set_read_only(self, read_only: bool) -> None:
        """A recorded run: fields show values but take no edits."""
        self.read_only = read_only
        self.set_class(read_only, "-read-only")
        for control in self.query("#inspector-body Input, #inspector-body Select, #inspector-body Switch, "
                                  "#inspector-body Button"):  # fmt: skip
            control.disabled = read_only

    def say(self, message: str, ok: bool) -> None:
        """The answer to the last edit, at the top of the inspector where it is always in view."""
        for result in self.query("#inspector-result").results(Static):  # none while closing
            result.set_class(not ok, "-refused")
            result.set_class(ok, "-accepted")
            result.update(message)
            result.display = bool(message)

    async def show_scenario(self, values: dict[str, Any], section: str | None = None) -> None:
        """The scenario editor, one section at a time, filled with the current values."""
        section = section or self.section
        if not self.is_attached:  # populated after the first frame: the app may already be closing
            return
        if self._mode != ("scenario", section):
            self._mode = ("scenario", section)
            self.section = section
            body = self.query_one("#inspector-body")
            await body.remove_children()
            tabs = Tabs(*[Tab(name, id=f"tab-{name.replace('.', '-')}") for name, _, _ in SECTIONS],
                        active=f"tab-{section.replace('.', '-')}", id="sections")  # fmt: skip
            widgets: list = [tabs]
            for f in self.fields:
                if f.path.rsplit(".", 1)[0] != section:
                    continue
                control: Widget
                if f.widget == "select":
                    control = Select([(o, o) for o in f.options], allow_blank=True, id=_wid(f.path), compact=True)
                elif f.widget == "switch":
                    control = Switch(id=_wid(f.path))
                else:
                    control = FieldInput(id=_wid(f.path), compact=True)
                control.tooltip = f.help
                control.disabled = self.read_only
                widgets.append(Horizontal(Label(f.label, classes="field-name"), control, classes="field"))
                error = Label("", id=_wid(f.path) + "-err", classes="error")
                error.display = False
                widgets.append(error)
            await body.mount_all(widgets)
        for title in self.query("#inspector-title").results(Static):
            title.update("[b]Scenario[/b] [dim](or select a node)[/dim]")
        for props in self.query("#inspector-props").results(Static):
            props.update(
                "a recorded run: its scenario, to read (o opens another file)"
                if self.read_only
                else "enter applies a field; u undoes"
            )
        if self.is_attached:
            self.fill(values)

    @on(Tabs.TabActivated, "#sections")
    async def _section(self, event: Tabs.TabActivated) -> None:
        name = next(n for n, _, _ in SECTIONS if f"tab-{n.replace('.', '-')}" == event.tab.id)
        if name != self.section:
            await self.show_scenario(self._shown, name)

    def fill(self, values: dict[str, Any], force: str | None = None) -> None:
        """Show the scenario's values in the editor (if the editor is what the inspector shows).

        An input being typed in keeps its text, except `force` (a refused field goes back to the value in use).
        """
        self._shown = dict(values)
        if self._mode[0] != "scenario":
            return
        self._filling = True
        try:
            for f in self.fields:
                if f.path.rsplit(".", 1)[0] != self.section:
                    continue
                value = values.get(f.path)
                found = self.query("#" + _wid(f.path))
                if not found:  # the section is being mounted: it is filled when it is
                    continue
                control = found.first()
                if isinstance(control, Select):
                    if value is not None and str(value) in f.options:
                        control.value = str(value)
                    else:
                        control.clear()
                elif isinstance(control, Switch):
                    control.value = bool(value)
                elif isinstance(control, Input) and (not control.has_focus or f.path == force):
                    control.value = _show(value)
        finally:
            self._filling = False

    def show_result(self, path: str, message: str) -> None:
        """The answer under the field too, scrolled into view."""
        for err in self.query(".error").results(Label):
            if err.id == _wid(path) + "-err":
                err.update(message)
                err.display = bool(message)
                if message:
                    self.call_after_refresh(err.scroll_visible, animate=False)

    async def show_box(self, box: Box, props: list[tuple[str, str]], links: list[tuple[str, str, float]]) -> None:
        key = ("box", box.id)
        self.query_one("#inspector-title", Static).update(f"[b]{box.label}[/b] ({box.kind})")
        if self._mode != key:
            self.say("", True)
        self.update_props(props)
        hint = "f: inject a fault" if box.node else ""
        if box.zoom is not None:
            hint += ("  ·  " if hint else "") + "enter: zoom in"
        self._links = {other: gbps for other, _, gbps in links}
        if self._mode == key:
            return
        plain = self._mode[0] == "box" and not self._linked and not (box.node and links)
        self._mode = key
        self._linked = bool(box.node and links)
        body = self.query_one("#inspector-body")
        if plain:  # neither the last selection nor this one lists links: reuse the body (mounting is slow)
            for label in body.query(".hint").results(Label):
                label.update(hint)
            return
        await body.remove_children()
        widgets: list[Widget] = []
        if box.node and links:
            widgets.append(
                Label(f"[b]links[/b] ({len(links)}) Gb/s per direction: type a number, enter", classes="section")
            )
            for other, kind, gbps in links[:64]:
                widgets.append(Horizontal(
                    Label(f"{kind} → {other}", classes="field-name"),
                    FieldInput(f"{gbps:g}", id=f"link-{other.replace('.', '_')}", compact=True, classes="link-bw",
                               disabled=self.read_only),
                    Button("remove", id=f"rm-{other.replace('.', '_')}", compact=True, classes="remove",
                           disabled=self.read_only),
                    classes="field",
                ))  # fmt: skip
            if len(links) > 64:
                widgets.append(Label(f"... and {len(links) - 64} more"))
            error = Label("", id="link-err", classes="error")
            error.display = False
            widgets.append(error)
        widgets.append(Label(hint, classes="hint"))
        await body.mount_all(widgets)

    def forget(self) -> None:
        """Rebuild the body on the next show (after an edit changed what it lists)."""
        self._mode = ("none", None)

    def update_props(self, props: list[tuple[str, str]]) -> None:
        text = "\n".join(f"{k}: [b]{v}[/b]" for k, v in props)
        widget = self.query_one("#inspector-props", Static)
        if getattr(widget, "_shown_text", None) != text:
            widget._shown_text = text  # type: ignore[attr-defined]
            widget.update(text)

    def show_link_result(self, message: str) -> None:
        for err in self.query("#link-err").results(Label):
            err.update(message)
            err.display = bool(message)
        if message:
            self.say(message, not message.startswith("✗"))

    def restore_link(self, other: str) -> None:
        """Show a link's Gb/s in use again (after a refused or invalid edit)."""
        for field in self.query(f"#link-{other.replace('.', '_')}").results(Input):
            if other in self._links:
                field.value = f"{self._links[other]:g}"

    # ------------------------------------------------------------ edits out

    @on(Input.Submitted)
    def _input(self, event: Input.Submitted) -> None:
        wid = event.input.id or ""
        if wid.startswith("link-"):
            box_id = self._mode[1]
            try:
                gbps = float(event.value)
                if not 0 < gbps < float("inf"):
                    raise ValueError
            except ValueError:
                other = wid[5:].replace("_", ".")
                self.show_link_result(f"✗ {event.value!r} is not a positive number of Gb/s; the link is unchanged")
                self.restore_link(other)
                return
            self.post_message(self.LinkEdit(box_id or "", wid[5:].replace("_", "."), gbps))
            return
        path = self._path_of(wid)
        if path:
            self.post_message(self.Edit(path, parse_value(event.value)))

    def _changed(self, path: str | None, value: Any) -> None:
        """A control changed: an edit, unless it only echoes what fill() put there."""
        if path and not self._filling and value != self._shown.get(path) and str(value) != str(self._shown.get(path)):
            self._shown[path] = value
            self.post_message(self.Edit(path, value))

    @on(Select.Changed)
    def _select(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._changed(self._path_of(event.select.id or ""), parse_value(event.value))

    @on(Switch.Changed)
    def _switch(self, event: Switch.Changed) -> None:
        self._changed(self._path_of(event.switch.id or ""), event.value)

    @on(Button.Pressed, ".remove")
    def _remove(self, event: Button.Pressed) -> None:
        box_id = self._mode[1]
        other = (event.button.id or "")[3:].replace("_", ".")
        self.post_message(self.LinkEdit(box_id or "", other, None))

    def _path_of(self, wid: str) -> str | None:
        for f in self.fields:
            if _wid(f.path) == wid:
                return f.path
        return None
