"""The topology canvas: one Line-API widget that draws a Scene of boxes and wires.

Drawing happens into a character grid when the scene, the states or the selection change; each row is
kept as styled runs, and render_line only crops the visible part. Mouse: click selects, drag moves a
box, drag with ctrl (or in link mode) draws a link to another box, drag on empty space pans, double
click zooms in. Every mouse path has a key: arrows select, shift+arrows nudge, enter zooms in,
backspace zooms out, l links. Drags measure from the press point, never from event deltas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Offset, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..topology.layout import Box, Scene, View

U, D, L, R = 1, 2, 4, 8
LINES = {
    U: "│", D: "│", U | D: "│", L: "─", R: "─", L | R: "─", D | R: "┌", D | L: "┐", U | R: "└", U | L: "┘",
    U | D | R: "├", U | D | L: "┤", D | L | R: "┬", U | L | R: "┴", U | D | L | R: "┼",
}  # fmt: skip
STATES = ("ok", "degraded", "failed", "in_repair", "spare", "idle", "joining")
GLYPHS = {"ok": "■", "degraded": "▲", "failed": "✕", "in_repair": "◐", "spare": "□", "idle": "·", "joining": "↑"}
"""One glyph per state, so a state never rests on colour alone (chip and switch cells, box labels)."""
STATE_WORDS = {"ok": "ok", "degraded": "slow", "failed": "failed", "in_repair": "in repair", "spare": "spare",
               "idle": "idle", "joining": "joining"}  # fmt: skip
CHIP_CELL = GLYPHS["ok"]


def legend_items() -> list[tuple[str, str, str]]:
    """(state, glyph, word) for the legend, in the order a player meets them."""
    return [(s, GLYPHS[s], STATE_WORDS[s]) for s in STATES]


def free_spot(boxes: list[Box], box_id: str, x: int, y: int) -> tuple[int, int]:
    """The free place nearest (x, y) for a dragged box: boxes never land on each other (one cell apart)."""
    me = next(b for b in boxes if b.id == box_id)
    others = [b for b in boxes if b.id != box_id]

    def clear(px: int, py: int) -> bool:
        return all(px + me.w + 1 <= o.x or o.x + o.w + 1 <= px or py + me.h <= o.y or o.y + o.h <= py for o in others)

    if clear(x, y):
        return x, y
    for r in range(1, 200):
        ring = [(x + dx, y + dy) for dy in range(-r, r + 1) for dx in (-r, r)]
        ring += [(x + dx, y + dy) for dx in range(-r + 1, r) for dy in (-r, r)]
        ring.sort(key=lambda p: abs(p[0] - x) + 2 * abs(p[1] - y))
        for px, py in ring:
            if px >= 0 and py >= 0 and clear(px, py):
                return px, py
    return x, y


class TopologyCanvas(ScrollView, can_focus=True):
    """Boxes and wires of the current zoom view, coloured by state."""

    COMPONENT_CLASSES = {
        *(f"canvas--{s}" for s in STATES),
        "canvas--wire",
        "canvas--wire-degraded",
        "canvas--wire-failed",
        "canvas--selected",
        "canvas--label",
        "canvas--detail",
        "canvas--rubber",
        "canvas--title",
        "canvas--alert",
        "canvas--wire-added",
        "canvas--wire-removed",
    }

    BINDINGS = [
        Binding("up", "select_dir(0,-1)", "Select", show=False),
        Binding("down", "select_dir(0,1)", "Select", show=False),
        Binding("left", "select_dir(-1,0)", "Select", show=False),
        Binding("right", "select_dir(1,0)", "Select", show=False),
        Binding("shift+up", "nudge(0,-1)", "Nudge", show=False),
        Binding("shift+down", "nudge(0,1)", "Nudge", show=False),
        Binding("shift+left", "nudge(-1,0)", "Nudge", show=False),
        Binding("shift+right", "nudge(1,0)", "Nudge", show=False),
        Binding("enter", "zoom_in", "Zoom in", id="zoom_in", show=False),
        Binding("backspace,escape", "zoom_out", "Zoom out", id="zoom_out", show=False),
        Binding("l", "link", "Link", id="link", show=False),
    ]

    ALLOW_MAXIMIZE = True
    link_mode: reactive[bool] = reactive(False, init=False)

    class Selected(Message):
        def __init__(self, box: Box | None) -> None:
            super().__init__()
            self.box = box

    class Moved(Message):
        def __init__(self, view: View, box_id: str, x: int, y: int) -> None:
            super().__init__()
            self.view, self.box_id, self.x, self.y = view, box_id, x, y

    class LinkRequested(Message):
        def __init__(self, a: str, b: str) -> None:
            super().__init__()
            self.a, self.b = a, b

    class ZoomRequested(Message):
        def __init__(self, view: View) -> None:
            super().__init__()
            self.view = view

    class ZoomOutRequested(Message):
        pass

    class Resized(Message):
        """The canvas got wider or narrower: the view may lay out its rows again."""

    class LinkMode(Message):
        """Link mode turned on or off (the app shows it)."""

        def __init__(self, on: bool, source: str | None) -> None:
            super().__init__()
            self.on, self.source = on, source

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.scene: Scene | None = None
        self.selected: str | None = None
        self.link_source: str | None = None
        self.state_of: Callable[[Box], str] = lambda box: "ok"
        self.chip_state: Callable[[int, int], str] = lambda server, local: "ok"
        self.switch_state: Callable[[str, int], str] = lambda kind, index: "ok"
        self.detail_of: Callable[[Box], str] = lambda box: box.detail
        self.summary_of: Callable[[Box], str] = lambda box: box.label
        self.alerts: set[str] = set()  # boxes where something broke since the player last looked
        self.edit_wires: list[tuple[str, str, str]] = []  # (a, b, "added" | "removed"): the player's link edits
        self._hover: str | None = None
        self._rows: list[list[tuple[str, Style]]] = []
        self._press: tuple[Offset, Box | None, tuple[int, int], Offset] | None = None
        self._drag: tuple[str, int, int] | None = None  # box being moved to (x, y)
        self._rubber: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._moved = False
        self._linking = False
        self.chips_per_node = 8

    # ------------------------------------------------------------ content

    def show(self, scene: Scene, keep_selection: bool = False) -> None:
        view_changed = self.scene is None or self.scene.view != scene.view
        self.scene = scene
        if not keep_selection or (self.selected and scene.box(self.selected) is None):
            self.selected = None
        if view_changed:
            self.scroll_to(0, 0, animate=False)
        self.redraw()

    def redraw(self) -> None:
        """Draw the scene into styled rows (after a scene, state or selection change)."""
        if self.scene is None or not self.is_attached:  # nothing to draw, or the app is closing
            return
        boxes = self.scene.boxes
        if self._drag is not None:
            box_id, x, y = self._drag
            boxes = [replace(b, x=x, y=y) if b.id == box_id else b for b in boxes]
        width = max(self.scene.width, max((b.x + b.w for b in boxes), default=0) + 2)
        height = max(self.scene.height, max((b.y + b.h for b in boxes), default=0) + 1)
        grid = _Grid(width, height)
        by_id = {b.id: b for b in boxes}
        style = self._style
        wire_styles = {s: style(f"canvas--wire{'' if s == 'ok' else '-' + s}") for s in ("ok", "degraded", "failed")}
        states = {b.id: self.state_of(b) for b in boxes}
        for wire in self.scene.wires:
            ends = [by_id[e] for e in wire.ends if e in by_id]
            worst = "ok"  # a bus is shared: one bad end does not make it bad; a link shows its ends' state
            if wire.bus_y is None:
                worst = (
                    "failed"
                    if any(states[b.id] == "failed" for b in ends)
                    else ("degraded" if any(states[b.id] in ("degraded", "in_repair") for b in ends) else "ok")
                )
            grid.wire(ends, wire.bus_y, wire_styles[worst])
        for a, b, how in self.edit_wires:
            if a in by_id and b in by_id and how == "added":
                grid.wire([by_id[a], by_id[b]], None, style("canvas--wire-added"))
        if self._rubber is not None:
            (x0, y0), (x1, y1) = self._rubber
            grid.route((x0, y0), (x1, y1), style("canvas--rubber"))
        grid.finish_lines()
        for a, b, how in self.edit_wires:  # removed links: dotted and crossed out, over the bus they were part of
            if a in by_id and b in by_id and how == "removed":
                grid.wire([by_id[a], by_id[b]], None, style("canvas--wire-removed"), dotted=True)
        for box in boxes:
            self._draw_box(grid, box, states[box.id])
        self._rows = grid.runs(self.rich_style)
        size = Size(width + 1, height + 1)
        if size != self.virtual_size:
            self.virtual_size = size
        self.refresh()

    def _style(self, *names: str) -> Style:
        return self.get_component_rich_style(*names)

    def _draw_box(self, grid: _Grid, b: Box, state: str) -> None:
        state = state if state in STATES else "ok"
        base = self._style(f"canvas--{state}")
        if b.id == self.selected or (self.link_source is not None and b.node == self.link_source):
            base = base + self._style("canvas--selected")
        label = base + self._style("canvas--label")
        detail = base + self._style("canvas--detail")
        grid.box(b.x, b.y, b.w, b.h, base, heavy=state == "failed")
        if b.id in self.alerts and b.w >= 5:
            grid.text(b.x + b.w - 4, b.y, " ! ", self._style("canvas--alert"))
        inner = b.w - 2
        if b.h >= 3:
            name = b.label
            if len(name) > inner and b.kind.endswith("_strip"):  # "spines spine0-spine7 (8)" → "8 spines"
                kind = b.kind[: -len("_strip")]
                name = f"{b.servers[1] - b.servers[0]} {'leaves' if kind == 'leaf' else kind + 's'}"
            text = name if state == "ok" else f"{GLYPHS[state]} {name}"
            grid.text(b.x + 1, b.y + 1, text[:inner].ljust(inner), label)
        if b.h >= 4:
            grid.text(b.x + 1, b.y + 2, self.detail_of(b)[:inner].ljust(inner), detail)
        if b.kind == "rack":
            for k, server in enumerate(range(*b.servers)):
                y = b.y + 3 + k
                if y >= b.y + b.h - 1:
                    break
                self._server_row(grid, b.x + 1, y, inner, server, detail)
        elif b.kind == "server" and b.h >= 4:
            self._server_row(grid, b.x + 1, b.y + b.h - 2, inner, b.servers[0], detail, label=False)
        elif b.kind.endswith("_strip"):  # one cell per switch
            kind = b.kind[: -len("_strip")]
            for i, member in enumerate(range(*b.servers)):
                row, col = divmod(i, inner)
                state = self.switch_state(kind, member)
                grid.text(b.x + 1 + col, b.y + 2 + row, GLYPHS.get(state, CHIP_CELL), self._style(f"canvas--{state}"))

    def _server_row(
        self, grid: _Grid, x: int, y: int, width: int, server: int, style: Style, label: bool = True
    ) -> None:
        """A server as a name and one coloured cell per chip."""
        name = f"n{server} " if label else ""
        grid.text(x, y, name.ljust(min(width, 7)) if label else "", style)
        cx = x + (min(width, 7) if label else 0)
        for j in range(min(self.chips_per_node, width - (cx - x))):
            state = self.chip_state(server, j)
            grid.text(cx + j, y, GLYPHS.get(state, CHIP_CELL), self._style(f"canvas--{state}"))

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized())

    # ------------------------------------------------------------ Line API

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if row >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        strip = Strip([Segment(text, style) for text, style in self._rows[row]])
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    # ------------------------------------------------------------ selection and keys

    def select(self, box_id: str | None) -> None:
        if box_id == self.selected:
            return
        self.selected = box_id
        self.redraw()
        box = self.scene.box(box_id) if (self.scene and box_id) else None
        if box is not None:
            self._scroll_into_view(box)
        self.post_message(self.Selected(box))

    def _scroll_into_view(self, box: Box) -> None:
        region = self.scrollable_content_region
        x, y = self.scroll_offset
        if not (x <= box.x and box.x + box.w <= x + region.width):
            x = max(0, box.x - 2)
        if not (y <= box.y and box.y + box.h <= y + region.height):
            y = max(0, box.y - 1)
        self.scroll_to(x, y, animate=False)

    @property
    def selected_box(self) -> Box | None:
        return self.scene.box(self.selected) if (self.scene and self.selected) else None

    def action_select_dir(self, dx: int, dy: int) -> None:
        if self.scene is None or not self.scene.boxes:
            return
        current = self.selected_box
        if current is None:
            self.select(self.scene.boxes[0].id)
            return
        cx, cy = current.center
        best, best_score = None, float("inf")
        for b in self.scene.boxes:
            if b.id == current.id:
                continue
            bx, by = b.center
            along = (bx - cx) * dx + (by - cy) * dy
            if along <= 0:
                continue
            across = abs((bx - cx) * dy) + abs((by - cy) * dx)
            score = along + 2 * across
            if score < best_score:
                best, best_score = b, score
        if best is not None:
            self.select(best.id)

    def action_nudge(self, dx: int, dy: int) -> None:
        box = self.selected_box
        if box is not None and self.scene is not None:
            self.post_message(self.Moved(self.scene.view, box.id, max(0, box.x + dx), max(0, box.y + dy)))

    def action_zoom_in(self) -> None:
        box = self.selected_box
        if self.link_mode and box is not None:
            self.action_link()
        elif box is not None and box.zoom is not None:
            self.post_message(self.ZoomRequested(box.zoom))

    def action_zoom_out(self) -> None:
        if self.link_mode:
            self.cancel_link()
            return
        self.post_message(self.ZoomOutRequested())

    def cancel_link(self) -> None:
        self.link_mode = False
        self.link_source = None
        self.redraw()

    def watch_link_mode(self, on: bool) -> None:
        self.post_message(self.LinkMode(on, self.link_source))

    def action_link(self) -> None:
        """First press: the selection is where the link starts; select the other end and press again."""
        box = self.selected_box
        if not self.link_mode:
            self.link_source = box.node if box is not None and box.node else None
            self.link_mode = True
            self.redraw()
            return
        if self.link_source is None and box is not None and box.node:
            self.link_source = box.node
            self.post_message(self.LinkMode(True, self.link_source))
            self.redraw()
            return
        source, self.link_source = self.link_source, None
        self.link_mode = False
        if source and box is not None and box.node and box.node != source:
            self.post_message(self.LinkRequested(source, box.node))
        self.redraw()

    # ------------------------------------------------------------ mouse

    def _canvas_point(self, event: events.MouseEvent) -> tuple[int, int]:
        sx, sy = self.scroll_offset
        return event.x + sx, event.y + sy

    def on_mouse_down(self, event: events.MouseDown) -> None:
        if self.scene is None:
            return
        x, y = self._canvas_point(event)
        box = self.scene.box_at(x, y)
        origin = (box.x, box.y) if box is not None else (int(self.scroll_offset.x), int(self.scroll_offset.y))
        self._press = (event.screen_offset, box, origin, Offset(x, y))
        self._linking = bool(event.ctrl or self.link_mode) and box is not None and box.node is not None
        self._moved = False
        self.capture_mouse()
        self.focus()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._press is None:
            self._hover_at(event)
            return
        start, box, origin, point = self._press
        dx, dy = event.screen_offset.x - start.x, event.screen_offset.y - start.y
        if dx or dy:
            self._moved = True
        if not self._moved:
            return
        if box is None:
            self.scroll_to(max(0, origin[0] - dx), max(0, origin[1] - dy), animate=False)
        elif self._linking:
            self._rubber = (box.center, (point.x + dx, point.y + dy))
            self.redraw()
        else:
            self._drag = (box.id, max(0, origin[0] + dx), max(0, origin[1] + dy))
            self.redraw()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._press is None:
            return
        start, box, origin, point = self._press
        self._press = None
        self.release_mouse()
        dx, dy = event.screen_offset.x - start.x, event.screen_offset.y - start.y
        moved = self._moved or bool(dx or dy)
        drag, self._drag, self._rubber = self._drag, None, None
        if not moved:
            self.select(box.id if box is not None else None)
            return
        if box is None or self.scene is None:
            return
        if self._linking:
            target = self.scene.box_at(point.x + dx, point.y + dy)
            self.redraw()
            if target is not None and target.node and target.node != box.node:
                self.link_mode = False
                self.post_message(self.LinkRequested(box.node or box.id, target.node))
            return
        x, y = drag[1:] if drag is not None else (max(0, origin[0] + dx), max(0, origin[1] + dy))
        self.post_message(self.Moved(self.scene.view, box.id, x, y))

    def _hover_at(self, event: events.MouseMove) -> None:
        """A summary of the box under the pointer, as a tooltip (only rebuilt when the box changes)."""
        if self.scene is None:
            return
        box = self.scene.box_at(*self._canvas_point(event))
        box_id = box.id if box is not None else None
        if box_id != self._hover:
            self._hover = box_id
            self.tooltip = self.summary_of(box) if box is not None else None

    def on_leave(self, event: events.Leave) -> None:
        self._hover = None
        self.tooltip = None

    def on_click(self, event: events.Click) -> None:
        if event.chain == 2:
            box = self.selected_box
            if box is not None and box.zoom is not None:
                self.post_message(self.ZoomRequested(box.zoom))


class _Grid:
    """A character grid with styles; line cells merge into box-drawing joins."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.chars = [[" "] * width for _ in range(height)]
        self.styles: list[list[Style | None]] = [[None] * width for _ in range(height)]
        self.mask: dict[tuple[int, int], int] = {}
        self.line_style: dict[tuple[int, int], Style] = {}

    def _bit(self, x: int, y: int, bits: int, style: Style) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self.mask[x, y] = self.mask.get((x, y), 0) | bits
            self.line_style[x, y] = style

    def vline(self, x: int, y0: int, y1: int, style: Style, dotted: bool = False) -> None:
        lo, hi = sorted((y0, y1))
        for y in range(lo, hi + 1):
            if dotted:
                self.text(x, y, "┆", style)
            else:
                self._bit(x, y, (U if y > lo else 0) | (D if y < hi else 0), style)

    def hline(self, y: int, x0: int, x1: int, style: Style, dotted: bool = False) -> None:
        lo, hi = sorted((x0, x1))
        for x in range(lo, hi + 1):
            if dotted:
                self.text(x, y, "┄", style)
            else:
                self._bit(x, y, (L if x > lo else 0) | (R if x < hi else 0), style)

    def route(self, a: tuple[int, int], b: tuple[int, int], style: Style, dotted: bool = False) -> None:
        """An L-shaped path: down (or up) to the middle, across, then on to b."""
        (x0, y0), (x1, y1) = a, b
        mid = (y0 + y1) // 2
        self.vline(x0, y0, mid, style, dotted)
        self.hline(mid, x0, x1, style, dotted)
        self.vline(x1, mid, y1, style, dotted)
        if dotted:  # a removed link: crossed out where it turns
            self.text((x0 + x1) // 2, mid, "✕", style)

    def wire(self, ends: list[Box], bus_y: int | None, style: Style, dotted: bool = False) -> None:
        if len(ends) < 2:
            return
        if bus_y is not None:
            xs = []
            for b in ends:
                x = b.x + b.w // 2
                xs.append(x)
                if b.y + b.h <= bus_y:
                    self.vline(x, b.y + b.h, bus_y, style)
                else:
                    self.vline(x, bus_y, b.y - 1, style)
            self.hline(bus_y, min(xs), max(xs), style)
            return
        a, b = sorted(ends[:2], key=lambda box: box.y)
        if a.y + a.h <= b.y:
            self.route((a.x + a.w // 2, a.y + a.h), (b.x + b.w // 2, b.y - 1), style, dotted)
        else:  # side by side
            left, right = sorted((a, b), key=lambda box: box.x)
            y = left.y + left.h // 2
            self.hline(y, left.x + left.w, right.x - 1, style, dotted)

    def finish_lines(self) -> None:
        for (x, y), bits in self.mask.items():
            self.chars[y][x] = LINES.get(bits, "·")
            self.styles[y][x] = self.line_style[x, y]

    def box(self, x: int, y: int, w: int, h: int, style: Style, heavy: bool = False) -> None:
        """A box over whatever lines ran there (wires stop at its border). Heavy: a failed part."""
        if w < 2 or h < 2:
            return
        tl, tr, bl, br, hz, vt = "┏┓┗┛━┃" if heavy else "╭╮╰╯─│"
        self.text(x, y, tl + hz * (w - 2) + tr, style)
        for row in range(y + 1, y + h - 1):
            self.text(x, row, vt + " " * (w - 2) + vt, style)
        self.text(x, y + h - 1, bl + hz * (w - 2) + br, style)

    def text(self, x: int, y: int, text: str, style: Style) -> None:
        if not 0 <= y < self.height:
            return
        row_chars, row_styles = self.chars[y], self.styles[y]
        for i, ch in enumerate(text):
            if 0 <= x + i < self.width:
                row_chars[x + i] = ch
                row_styles[x + i] = style

    def runs(self, base: Style) -> list[list[tuple[str, Style]]]:
        """Each row as (text, style) runs, on the canvas's own background and colours."""
        plain = base
        out = []
        for chars, styles in zip(self.chars, self.styles, strict=True):
            row: list[tuple[str, Style]] = []
            start = 0
            for i in range(1, len(chars) + 1):
                if i == len(chars) or styles[i] is not styles[start]:
                    style = styles[start]
                    row.append(("".join(chars[start:i]), plain + style if style is not None else plain))
                    start = i
            out.append(row)
        return out
