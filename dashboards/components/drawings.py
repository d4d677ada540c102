"""Drawing tools on a bar chart's Bokeh figure: trend lines, horizontal lines, rectangles, text
notes and Fibonacci retracements, kept in the chart's state (``ChartConfig.drawings``).

Each kind has its own source and Bokeh edit tool: trend lines and Fibonacci retracements are
two-point lines drawn with ``PolyDrawTool`` (the retracement's levels are computed here from its
two points, :func:`fib_levels`); horizontal lines and notes are points moved with
``PointDrawTool``; rectangles are drawn with ``BoxEditTool``. On the figure x is the bar number
(on Kagi, Point & Figure and Line Break: the line's, converted through the bars by
``price_transforms.LineAxis``); in the state a point is the open time of a bar plus ``dx`` bars
from it (see ``dashboards.chart_state``), so drawings keep their place when the chart loads more
history and its bars are numbered again, and show at the same time on every chart type.

A note's wording is edited in the page: selecting a note (a click with the note tool) shows
:attr:`Drawings.editor`, a text box whose text replaces the note's, checked as the state checks it
(a refused text is said under the box and not kept). The text is drawn by Bokeh as plain text.
"""
from __future__ import annotations

import html
from typing import Callable

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import (BoxEditTool, ColumnDataSource, PointDrawTool, PolyDrawTool)

from .price_transforms import LineAxis
from .theme import theme_of

__all__ = ["Drawings", "FIB_LEVELS", "fib_levels", "to_point", "from_point"]

FIB_LEVELS = (0.0, 0.236, 0.382, 0.5, 0.618, 0.786, 1.0)
NOTE = "note"  # the text of a note placed with the tool (edit it in the state)


def fib_levels(start: float, end: float) -> list[tuple[float, float]]:
    """(level, price) of a retracement drawn from ``start`` to ``end``: level 0 at the end of
    the move, 1 at its start (0.618 lies 61.8% of the way back)."""
    return [(level, end + (start - end) * level) for level in FIB_LEVELS]


def to_point(x: float, price: float, xs: np.ndarray, ts: pd.DatetimeIndex) -> dict:
    """A figure point as a state point: the open time of the bar it is in (within the bars),
    ``dx`` bars from it, and the price."""
    if not len(ts):
        raise ValueError("a drawing needs bars to be placed against")
    i = int(np.clip(np.floor(x) - xs[0], 0, len(ts) - 1))  # the bar it is in: 0 <= dx < 1
    # (dx to 1e-9 of a bar: far finer than a pixel, and no float noise in the document)
    return {"t": ts[i].isoformat().replace("+00:00", "Z"), "dx": round(float(x - xs[i]), 9),
            "price": float(price)}


def from_point(point: dict, xs: np.ndarray, ts: pd.DatetimeIndex) -> tuple[float, float]:
    """A state point on the figure: x of the bar opened at ``t`` (the first at or after it, if
    that bar is not loaded) plus ``dx``; the price."""
    t = pd.Timestamp(point["t"])
    i = int(np.clip(ts.searchsorted(t), 0, len(ts) - 1))
    return float(xs[i] + point.get("dx", 0.0)), float(point["price"])


class Drawings:
    """The drawings of ``config`` (a ``ChartConfig``) on ``fig``. ``bar_times()`` gives the bar
    numbers and open times shown, for converting points; ``lines()``, on a chart whose x counts
    its own lines, the open times (UTC ns) of the bars that began them (else None: x is the
    bar). Changes made with the tools are written back to ``config.drawings``; ``restore()``
    draws the config's drawings again (after the chart's bars or lines were numbered anew)."""

    def __init__(self, fig, config, bar_times: Callable[[], tuple[np.ndarray, pd.DatetimeIndex]],
                 lines: Callable[[], np.ndarray | None] = lambda: None):
        self.config, self.bar_times, self.lines = config, bar_times, lines
        self.trends = ColumnDataSource({"xs": [], "ys": []})
        self.fibs = ColumnDataSource({"xs": [], "ys": []})
        self.fib_lines = ColumnDataSource({"xs": [], "ys": [], "label": [], "lx": [], "ly": []})
        self.hlines = ColumnDataSource({"x": [], "y": []})
        self.rects = ColumnDataSource({"x": [], "y": [], "width": [], "height": []})
        self.notes = ColumnDataSource({"x": [], "y": [], "text": []})
        self.attach(fig)
        self._restoring = False
        for source in (self.trends, self.fibs, self.hlines, self.rects, self.notes):
            source.on_change("data", self._edited)
        # the selected note's wording, edited in the page
        self.note_input = pn.widgets.TextInput(label="Note", placeholder="the note's text",
                                               css_classes=["chart-note"], width=320)
        self.note_problem = pn.pane.HTML("", css_classes=["chart-note-problem"], margin=(0, 10))
        self.editor = pn.Row(self.note_input, self.note_problem, visible=False,
                             sizing_mode="stretch_width", margin=0)
        self._note = None  # the row of the note being edited
        self.notes.selected.on_change("indices", self._note_selected)
        self.note_input.param.watch(self._note_typed, "value_input")
        self.restore()

    # the figure -> the state ---------------------------------------------------------------
    def _edited(self, attr, old, new) -> None:
        if self._restoring:
            return
        self._draw_fib_levels()
        self.config.drawings = self.to_state()

    def attach(self, fig) -> None:
        """Draw the drawings on ``fig`` with their tools (again when the view built its
        figures anew: the sources, and so the drawings, stay)."""
        self.fig = fig
        t = theme_of(self.config.theme)
        trend = fig.multi_line("xs", "ys", source=self.trends, line_color=t.accent, line_width=2)
        fib = fig.multi_line("xs", "ys", source=self.fibs, line_color=t.poc, line_width=1,
                             line_dash="dashed")
        fig.multi_line("xs", "ys", source=self.fib_lines, line_color=t.poc, line_alpha=0.7)
        fig.text("lx", "ly", text="label", source=self.fib_lines, text_color=t.poc,
                 text_font_size="10px", text_baseline="bottom")
        fig.hspan(y="y", source=self.hlines, line_color=t.accent, line_width=1)
        hline_handles = fig.scatter("x", "y", source=self.hlines, size=8, color=t.accent)
        rect = fig.rect("x", "y", "width", "height", source=self.rects, fill_color=t.accent,
                        fill_alpha=0.12, line_color=t.accent)
        note = fig.text("x", "y", text="text", source=self.notes, text_color=t.text,
                        text_font_size="12px")
        fig.add_tools(
            PolyDrawTool(renderers=[trend], description="Trend line (drag to draw)"),
            PolyDrawTool(renderers=[fib], description="Fibonacci retracement (drag to draw)"),
            PointDrawTool(renderers=[hline_handles], description="Horizontal line (click)"),
            BoxEditTool(renderers=[rect], description="Rectangle (shift-drag)"),
            PointDrawTool(renderers=[note], empty_value=NOTE, description="Text note (click)"))

    def _note_selected(self, attr, old, new) -> None:
        """One note selected: its text in the editor; none (or several): the editor hides."""
        self._note = int(new[0]) if len(new) == 1 else None
        self.note_problem.object = ""
        if self._note is not None and self._note < len(self.notes.data["text"]):
            self.note_input.value = str(self.notes.data["text"][self._note])
        self.editor.visible = self._note is not None

    def _note_typed(self, event) -> None:
        """The editor's text as the selected note's, if the state accepts it."""
        i, text = self._note, event.new
        if i is None or i >= len(self.notes.data["text"]) or text is None:
            return
        drawings = self.to_state()
        at = [k for k, d in enumerate(drawings) if d["kind"] == "text"][i]
        drawings[at] = dict(drawings[at], text=text)
        try:
            type(self.config).check({"drawings": drawings})
        except ValueError as exc:  # (StateError) said under the box; the note keeps its text
            self.note_problem.object = (f'<span style="color:{theme_of(self.config.theme).down}'
                                        f'">{html.escape(str(exc))}</span>')
            return
        self.note_problem.object = ""
        self.notes.patch({"text": [(i, text)]})
        self.config.drawings = self.to_state()

    def to_state(self) -> list[dict]:
        """The drawings on the figure, as ``ChartConfig.drawings`` holds them."""
        if not self.config.drawings and not any(
                len(next(iter(s.data.values()), ())) for s in
                (self.trends, self.fibs, self.hlines, self.rects, self.notes)):
            return []  # none drawn, none kept: the bars' times (a join, asked every second) unread
        xs, ts = self.bar_times()
        axis = self._axis(xs, ts)
        if not len(ts) or axis is False:
            return list(self.config.drawings)
        point = (lambda x, y: to_point(x if axis is None else axis.to_bars(x), y, xs, ts))
        out = []
        for kind, source in (("trend", self.trends), ("fib", self.fibs)):
            for lx, ly in zip(source.data["xs"], source.data["ys"]):
                if len(lx) >= 2:  # the first and last vertex: a line from A to B
                    out.append({"kind": kind, "points": [point(lx[0], ly[0]),
                                                         point(lx[-1], ly[-1])]})
        for x, y in zip(self.hlines.data["x"], self.hlines.data["y"]):
            out.append({"kind": "hline", "points": [point(x, y)]})
        d = self.rects.data
        for x, y, w, h in zip(d["x"], d["y"], d["width"], d["height"]):
            out.append({"kind": "rect", "points": [point(x - abs(w) / 2, y - abs(h) / 2),
                                                   point(x + abs(w) / 2, y + abs(h) / 2)]})
        for x, y, text in zip(self.notes.data["x"], self.notes.data["y"],
                              self.notes.data["text"]):
            out.append({"kind": "text", "points": [point(x, y)], "text": str(text)})
        return out

    def _axis(self, xs: np.ndarray, ts: pd.DatetimeIndex) -> LineAxis | None | bool:
        """The lines' x <-> the bars' (None: x is the bar; False: no line drawn yet, so a
        drawing has no place)."""
        starts = self.lines()
        if starts is None:
            return None
        if not len(starts) or not len(ts):
            return False
        return LineAxis(xs, ts.asi8, starts)

    # the state -> the figure ---------------------------------------------------------------
    def restore(self, changed_only: bool = False) -> None:
        """Draw ``config.drawings`` at the bars (or lines) shown now; ``changed_only``: send
        only the sources whose positions changed (live, on a chart of lines: a drawing in the
        growing last line or past it moves as its bars come)."""
        xs, ts = self.bar_times()
        axis = self._axis(xs, ts)
        data = {"trend": {"xs": [], "ys": []}, "fib": {"xs": [], "ys": []},
                "hline": {"x": [], "y": []}, "rect": {"x": [], "y": [], "width": [], "height": []},
                "text": {"x": [], "y": [], "text": []}}
        if len(ts) and axis is not False:
            for d in self.config.drawings:
                pts = [from_point(p, xs, ts) for p in d["points"]]
                if axis is not None:
                    pts = [(axis.to_lines(x), y) for x, y in pts]
                kind = d["kind"]
                if kind in ("trend", "fib"):
                    data[kind]["xs"].append([p[0] for p in pts])
                    data[kind]["ys"].append([p[1] for p in pts])
                elif kind == "hline":
                    data[kind]["x"].append(pts[0][0])
                    data[kind]["y"].append(pts[0][1])
                elif kind == "rect":
                    (x0, y0), (x1, y1) = pts
                    for k, v in (("x", (x0 + x1) / 2), ("y", (y0 + y1) / 2),
                                 ("width", abs(x1 - x0)), ("height", abs(y1 - y0))):
                        data[kind][k].append(v)
                else:
                    data[kind]["x"].append(pts[0][0])
                    data[kind]["y"].append(pts[0][1])
                    data[kind]["text"].append(d.get("text", ""))
        self._restoring = True
        try:
            for kind, source in (("trend", self.trends), ("fib", self.fibs),
                                 ("hline", self.hlines), ("rect", self.rects),
                                 ("text", self.notes)):
                if not changed_only or data[kind] != {k: _plain(v) for k, v in
                                                      source.data.items()}:
                    source.data = data[kind]
                    if kind == "fib":
                        self._draw_fib_levels()
        finally:
            self._restoring = False

    def _draw_fib_levels(self) -> None:
        out = {"xs": [], "ys": [], "label": [], "lx": [], "ly": []}
        for lx, ly in zip(self.fibs.data["xs"], self.fibs.data["ys"]):
            if len(lx) < 2:
                continue
            x0, x1 = min(lx[0], lx[-1]), max(lx[0], lx[-1])
            for level, price in fib_levels(ly[0], ly[-1]):
                out["xs"].append([x0, x1])
                out["ys"].append([price, price])
                out["label"].append(f"{level:.3f}".rstrip("0").rstrip(".") + f"  {price:,.2f}")
                out["lx"].append(x0)
                out["ly"].append(price)
        self.fib_lines.data = out


def _plain(values) -> list:
    """A source's column as plain lists (the browser sends lists, Python may hold arrays)."""
    return [_plain(v) if isinstance(v, (list, tuple, np.ndarray)) else v for v in values]
