"""The footprint chart: each bar a column of cells (bid x ask, volume, delta, delta %, trades, or
a per-bar profile) with a thin candle beside it, over x = bar number and y = price.

* Zoomed out, the cells are one Datashader image of the range in view; zoomed in until a cell
  is at least :data:`READABLE_WIDTH` x :data:`READABLE_HEIGHT` pixels, they are drawn one by one
  and their numbers written, for the cells in view only. The browser reports its view (range and
  plot size, debounced) into a small source; the server answers by re-rendering the image or
  refilling the text source.
* Studies from ``indicators.orderflow``: the bar's POC outlined, naked POCs as lines to the right
  edge, imbalance cells outlined (their side's number bold), stacked imbalances as a bar beside
  the column, zero prints and unfinished auctions marked; a totals row (volume, delta, CVD).
* Live: ``apply(update)`` streams the cells of bars that closed and patches the forming bar's
  column in place; a closed bar is never sent again. The forming bar's cells (and their numbers)
  are a small source of their own, so an update never touches the closed cells' source (Bokeh
  compares every column of a source with itself on each patch: a day's cells are ~10-24,000
  rows), and the arrays it sends for it are the same for every session showing the update.
* ``static`` (a chart written to a file, no server to answer the view): every cell is a rect and
  every number is written; the browser shows the numbers while a cell is readable, by the same
  rule as the server (:data:`_SHOW_NUMBERS`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.property.validation import validate
from bokeh.layouts import column
from bokeh.models import (CategoricalColorMapper, CDSView, ColumnDataSource, CrosshairTool,
                          CustomJS, CustomJSFilter, FixedTicker, GroupFilter, LinearColorMapper,
                          Range1d, Span)
from bokeh.transform import dodge

from indicators.orderflow import naked_pocs
from tradeflow.live.hub import Snapshot
from tradeflow.model import BAR_COLUMNS, FOOTPRINT_COLUMNS, Instrument, empty_frame

from . import colour_scales as scales
from .axes import T, X, price_formatter, time_formatter
from .bar_rows import LEFT_BORDER, BarRows, cvd_from, joined
from .footprint_cells import (CANDLE_X, CELL_COLUMNS, CELL_MID, CELL_RIGHT, CELL_WIDTH,
                              TEXT_LEFT, TEXT_RIGHT, TEXT_WORDS, bar_parts, cell_text, empty_text,
                              SIZE_NOISE, forming_rows, label_room, open_ns, raster, shared_parts,
                              shifted, signed_size)
from .live_sources import set_small, update_columns
from .theme import THEMES, figure, style, theme_of

__all__ = ["FootprintChart", "CELL_MODES", "COLOR_BY", "READABLE_WIDTH", "READABLE_HEIGHT",
           "auto_rows"]

CELL_MODES = ("bid_ask", "volume", "delta", "delta_pct", "trades", "profile")
COLOR_BY = ("delta", "volume", "imbalance")
READABLE_WIDTH, READABLE_HEIGHT = 40, 12  # pixels a cell needs before its numbers are written
MIN_FONT, MAX_FONT = 9, 13  # the numbers' font sizes (px): any smaller cannot be read
TOTALS_WIDTH = 44  # pixels a bar needs before the totals row writes its numbers
BAR_PIXELS, ROW_PIXELS = 64, 16  # a bar's width and a row's height after a load: readable
TARGET_ROWS = 40  # rows the bars in view span after a load when the row size is automatic
ROW_STEPS = (1, 2, 5, 10, 25, 50)  # automatic row sizes (in ticks), then x10, x100, ...
BAR_FIELDS = (X, T, "open", "high", "low", "close", "dir", "volume", "delta", "cvd", "poc_y",
              "vol_text", "delta_text", "cvd_text", "delta_dir", "cvd_dir")
_VALUE_OF = {"delta": "delta", "volume": "volume", "imbalance": "imb"}

_REPORT_VIEW = """
clearTimeout(viewport._tf_timer);
viewport._tf_timer = setTimeout(() => {
  viewport.data = {x0: [xr.start], x1: [xr.end], y0: [yr.start], y1: [yr.end],
                   w: [fig.inner_width], h: [fig.inner_height]};
}, 120);
"""

# The rows of a source (bars, or cells) whose bar is in view, one bar of margin each side.
# BokehJS paints every row of a glyph at each repaint of its figure (any change to any source
# drawn in it), in view or not, and measures every text of a source again when the source
# changes: the totals' numbers over a day of bars cost more per live update than all the rest.
_IN_VIEW = """
const x = source.data.x, lo = Math.floor(xr.start) - 1, hi = Math.ceil(xr.end) + 1;
const keep = new Array(x.length);
for (let i = 0; i < x.length; i++) keep[i] = x[i] >= lo && x[i] <= hi;
return keep;
"""
# the filter again when the view reaches other bars (not at every pixel of a pan)
_REFILTER = """
const bars = [Math.floor(xr.start), Math.ceil(xr.end)];
const last = filter._tf_bars;
if (last === undefined || last[0] !== bars[0] || last[1] !== bars[1]) {
  filter._tf_bars = bars;
  filter.change.emit();
}
"""

# the rule of refresh_view, in the browser (a static chart: no server answers the view)
_SHOW_NUMBERS = """
const bar_px = fig.inner_width / Math.max(xr.end - xr.start, 1e-9);
const row_px = fig.inner_height * row / Math.max(yr.end - yr.start, 1e-12);
// the row's height sets the font; the widest number must fit the cell's width at it
const font = Math.min(13, Math.max(9, row_px * 0.62), room > 0 ? bar_px * cell_width / room : 99);
const readable = bar_px * cell_width >= min_width && row_px >= min_height && font >= 9;
const size = Math.floor(Math.max(font, 9)) + "px";
for (const r of texts) {
  r.visible = readable;
  r.glyph.text_font_size = {value: size};
}
for (const r of totals) r.visible = show_totals && bar_px * cell_width >= totals_width;
poc.glyph.line_width = readable ? 2 : 1;
"""


def _font(row_px: float) -> float:
    """The numbers' font size (px) for rows ``row_px`` high."""
    return min(MAX_FONT, max(MIN_FONT, row_px * 0.62))


def auto_rows(price_span: float, tick_size: float, target: int = TARGET_ROWS) -> int:
    """The smallest round row size in ticks (1, 2, 5, 10, 25, 50, 100, 250 ...) at which
    ``price_span`` takes at most ``target`` rows."""
    ticks = price_span / tick_size
    scale = 1
    while True:
        for step in ROW_STEPS:
            if ticks <= target * step * scale:
                return step * scale
        scale *= 10


# the closed cells' source: the cells' columns and ``layer``, where a cell is drawn zoomed out:
# "image" (in the Datashader image) or "rects" (bars closed since the last render)
_CELLS = tuple(c for c in CELL_COLUMNS if c != "state")
SOURCE_COLUMNS = _CELLS + ("layer",)
# the forming bar's source: its cells' columns and the words of their numbers
FORMING_COLUMNS = _CELLS + TEXT_WORDS
_KINDS = {"x": "int64", "tick": "int64", "trades": "int64", "imb": "int64"}


def _empty(columns) -> dict:
    return {c: np.empty(0, dtype=_KINDS.get(c, object if c in TEXT_WORDS or c == "layer"
                                            else "float64")) for c in columns}


def _take(cols: dict, mask) -> dict:
    return {k: np.asarray(v)[mask] for k, v in cols.items()}


class _Layer:
    """Marks of one study: the closed bars' (streamed, never re-sent) and the forming bar's
    (replaced whole at each update: a handful of rows); column ``bar`` says whose."""

    def __init__(self, columns):
        self.columns = columns
        self.closed = ColumnDataSource({c: np.empty(0) for c in ("bar",) + columns})
        self.forming = ColumnDataSource({c: np.empty(0) for c in ("bar",) + columns})
        self.renderers = []

    def load(self, data: dict, forming_x) -> None:
        is_forming = self._forming(data, forming_x)
        self.closed.data = _take(data, ~is_forming)
        self.forming.data = _take(data, is_forming)

    def apply(self, data: dict, forming_x) -> None:
        is_forming = self._forming(data, forming_x)
        if (~is_forming).any():
            self.closed.stream(_take(data, ~is_forming))
        set_small(self.forming, _take(data, is_forming))  # sent only when the marks moved

    @staticmethod
    def _forming(data: dict, forming_x) -> np.ndarray:
        bar = np.asarray(data["bar"])
        return bar == forming_x if forming_x is not None else np.zeros(len(bar), bool)

    def draw(self, draw, in_view: CDSView):
        """Draw both sources with ``draw(source, **kw)``; the closed bars' ``in_view`` only."""
        self.renderers = [draw(self.closed, view=in_view), draw(self.forming)]

    def show(self, visible: bool) -> None:
        for r in self.renderers:
            r.visible = visible


def _with_cvd_words(cols: dict, values: np.ndarray) -> dict:
    """Per-bar columns ``cols`` with the CVD ``values``, as written and coloured in the totals."""
    return dict(cols, cvd=values,
                cvd_text=np.array([signed_size(v) for v in values], dtype=object),
                cvd_dir=np.where(values > -SIZE_NOISE, "up", "down").astype(object))


class FootprintChart(pn.viewable.Viewer):
    """A footprint chart of one instrument: ``load(bars, footprint)`` then ``apply(update)``."""

    instrument = param.ClassSelector(class_=Instrument, doc="tick size, time zone, session")
    theme = param.Selector(default="dark", objects=list(THEMES))
    cell = param.Selector(default="bid_ask", objects=list(CELL_MODES),
                          doc="what a cell shows: bid x ask, volume, delta, delta %, trades, or "
                              "the bar's volume profile")
    color_by = param.Selector(default="delta", objects=list(COLOR_BY))
    row_ticks = param.Integer(default=0, bounds=(0, 10_000),
                              doc="row size in ticks; 0: chosen at each load (:func:`auto_rows`)")
    imbalance_ratio = param.Number(default=3.0, bounds=(1.0, 100.0),
                                   inclusive_bounds=(False, True), doc="3.0 = 300%")
    show_poc = param.Boolean(default=True)
    show_naked_pocs = param.Boolean(default=True)
    show_imbalances = param.Boolean(default=True, doc="imbalance cells and stacked zones")
    show_zero_prints = param.Boolean(default=False)
    show_unfinished = param.Boolean(default=True)
    show_totals = param.Boolean(default=True, doc="volume, delta and CVD under each bar")
    height = param.Integer(default=600, bounds=(200, 4000), allow_None=True,
                           doc="the cells' pane, px; None: it fills the height given (an iframe)")
    static = param.Boolean(default=False, constant=True,
                           doc="no server answers the view (a file): all cells drawn, all bars "
                               "in view, the numbers shown by the browser")

    def __init__(self, bars: pd.DataFrame | None = None, footprint: pd.DataFrame | None = None, *,
                 current: pd.DataFrame | None = None,
                 current_footprint: pd.DataFrame | None = None,
                 x_range=None, crosshair: CrosshairTool | None = None, **params):
        super().__init__(**params)
        if self.instrument is None:
            raise ValueError("FootprintChart needs an instrument (its tick size and time zone)")
        theme = theme_of(self.theme)
        self._own_x = x_range is None
        self.x_range = x_range if x_range is not None else Range1d(-0.5, 0.5)
        self.y_range = Range1d(0.0, 1.0)
        self.crosshair = crosshair or CrosshairTool(overlay=[
            Span(dimension="width", line_dash="dotted", line_color=theme.crosshair),
            Span(dimension="height", line_dash="dotted", line_color=theme.crosshair)])
        self.bars = BarRows(BAR_FIELDS)
        self.cells = ColumnDataSource(_empty(SOURCE_COLUMNS))  # the closed bars' cells
        self.forming = ColumnDataSource(_empty(FORMING_COLUMNS))  # the forming bar's, and words
        self.text = ColumnDataSource(empty_text())  # the numbers of the closed cells in view
        self.image = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []})
        self.naked = ColumnDataSource({"x": np.empty(0), "y": np.empty(0)})
        self.stacked = _Layer(("x", "bottom", "top", "side"))
        self.zeros = _Layer(("x", "y", "side"))
        self.unfinished = _Layer(("x", "y", "side"))
        self.viewport = ColumnDataSource({"x0": [-0.5], "x1": [0.5], "y0": [0.0], "y1": [1.0],
                                          "w": [1100], "h": [(self.height or 600) - 40]})
        self.zoomed_in = False
        self._auto_rows = 1
        self._reset_state()
        self._make_mappers(theme)
        self._in_view = self._make_in_view()
        self.figure = self._make_figure(theme)
        self.totals = self._make_totals(theme)
        self.viewport.on_change("data", lambda attr, old, new: self.refresh_view())
        self.param.watch(self._on_theme, "theme")
        self.param.watch(lambda e: self._reload(), ["row_ticks", "imbalance_ratio"])
        self.param.watch(lambda e: self._on_display(), ["cell", "color_by"])
        self.param.watch(lambda e: self._show_layers(), [
            "show_poc", "show_naked_pocs", "show_imbalances", "show_zero_prints",
            "show_unfinished", "show_totals"])
        self._show_layers()
        if bars is not None:
            self.load(bars, footprint, current=current, current_footprint=current_footprint)

    # ---------------------------------------------------------------------------- state

    def _reset_state(self):
        self._closed = empty_frame(BAR_COLUMNS)      # closed bars, x = their position
        self._current = empty_frame(BAR_COLUMNS)     # the forming bar (0 or 1 row)
        self._closed_cells: list[pd.DataFrame] = []  # their footprint cells, as received
        self._current_cells = empty_frame(FOOTPRINT_COLUMNS)
        self._naked_cells = empty_frame(FOOTPRINT_COLUMNS)  # cells of bars whose POC is naked
        self._forming_range = None  # the forming bar's (low, high) when naked POCs were judged
        self._naked_levels = np.empty(0, "int64")  # row levels (tick // rows) of the naked POCs
        self._days = np.empty(0, "int64")  # trading day of each bar held
        self._fitted = None  # (width, height, first x) a first view assumed, until the page's size

    @property
    def forming_x(self) -> int | None:
        """The forming bar's number (None when no bar is forming)."""
        return len(self._closed) if len(self._current) else None

    @property
    def closed_count(self) -> int:
        """How many closed bars are drawn (numbers 0 .. closed_count - 1)."""
        return len(self._closed)

    @property
    def rows(self) -> int:
        """The row size in ticks drawn: ``row_ticks``, or the one chosen at the last load."""
        return self.row_ticks or self._auto_rows

    def _row_price(self) -> float:
        return self.instrument.tick_size * self.rows

    def row_label(self) -> str:
        """The row size as the chart's title writes it: ``row 5 ticks = 0.5 (auto)``."""
        ticks = self.rows
        return (f"row {ticks} tick{'s' if ticks > 1 else ''} = {self._row_price():g}"
                + (" (auto)" if not self.row_ticks else ""))

    def first_shown(self, n: int) -> int:
        """The first of ``n`` bars in view after a load (as many as are readable, at least 6;
        static: all)."""
        if self.static:
            return 0
        font = max(_font(ROW_PIXELS), MIN_FONT + 1)  # a little above the least readable
        bar_px = max(BAR_PIXELS, self._label_room(recent=True) * font / CELL_WIDTH)
        # two slots of the width stay empty on the right, for the bars to come
        return max(0, n - max(6, int(self.viewport.data["w"][0] / bar_px) - 2) + 1)

    def _label_room(self, recent: bool = False) -> float:
        """``label_room`` of the cells in view (``recent``: of the last 30 bars, for a load)."""
        mode = "volume" if self.cell == "profile" else self.cell
        sources = (self.cells, self.forming)  # the closed bars' cells, the forming bar's
        if recent:
            top = max((int(np.max(s.data["x"])) for s in sources if len(s.data["x"])),
                      default=None)
            return 0.0 if top is None else max(
                label_room(_take(s.data, np.asarray(s.data["x"]) >= top - 30), mode)
                for s in sources)
        return max(label_room(self._cells_in(s, True), mode) for s in sources)

    def _choose_rows(self) -> None:
        """The automatic row size: the bars in view after a load span about TARGET_ROWS rows
        (BTC's 1-minute bars span hundreds of 0.1 ticks: one row each would leave every bar
        but the last off-screen)."""
        bars = joined(self._closed, self._current)
        bars = bars.iloc[self.first_shown(len(bars)):]
        span = float(bars["high"].max() - bars["low"].min()) if len(bars) else 0.0
        self._auto_rows = auto_rows(span, self.instrument.tick_size)

    # ---------------------------------------------------------------------------- drawing

    def _make_mappers(self, theme):
        self.cell_colours = LinearColorMapper(palette=scales.diverging(theme), low=-1, high=1)
        self._outline = LinearColorMapper(palette=self._outline_palette(theme), low=-1, high=1)
        self._dir = CategoricalColorMapper(factors=["up", "down"], palette=[theme.up, theme.down])
        self._side = CategoricalColorMapper(factors=["buy", "sell"], palette=[theme.up, theme.down])
        self._vol_mapper = LinearColorMapper(palette=scales.sequential(theme), low=0, high=1)
        self._delta_mapper = LinearColorMapper(palette=scales.diverging(theme), low=-1, high=1)
        self._cvd_mapper = LinearColorMapper(palette=scales.diverging(theme), low=-1, high=1)

    def _make_in_view(self) -> CustomJSFilter:
        """The filter of the rows whose bar is in view (:data:`_IN_VIEW`), run again when the
        view reaches other bars; each renderer of a large source draws through it."""
        in_view = CustomJSFilter(args={"xr": self.x_range}, code=_IN_VIEW)
        refilter = CustomJS(args={"xr": self.x_range, "filter": in_view}, code=_REFILTER)
        for name in ("start", "end"):
            self.x_range.js_on_change(name, refilter)
        return in_view

    def _view_in(self) -> CDSView:
        """A renderer's view of its source's rows in view (a view is a renderer's own)."""
        return CDSView(filter=self._in_view)

    @staticmethod
    def _outline_palette(theme):
        return [theme.down, "rgba(0,0,0,0)", theme.up]

    def _make_figure(self, theme):
        fig = figure(theme, height=self.height, x_range=self.x_range, y_range=self.y_range,
                     crosshair=self.crosshair, tools="pan,xwheel_zoom,ywheel_zoom,box_zoom,reset,save",
                     active_drag="pan", active_scroll="xwheel_zoom")
        fig.min_border_left = LEFT_BORDER
        fig.xaxis.formatter = time_formatter(self.bars.source, fig)
        fig.yaxis.formatter = price_formatter(self.instrument.tick_size)
        fig.xgrid.visible = False
        self._image_r = fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh",
                                       source=self.image)
        row = self._row_price()
        fill = {"field": "delta", "transform": self.cell_colours}
        line = {"field": "imb", "transform": self._outline}
        # zoomed in: every cell a rect, outlined when imbalanced (or a per-bar profile)
        self._cells_r, self._fcells_r = (
            fig.rect(x=dodge("x", CELL_MID), y="y", width=CELL_WIDTH, height=row * 0.92,
                     source=src, fill_color=fill, line_color=line, line_width=1.5,
                     **({"view": self._view_in()} if src is self.cells else {}))
            for src in (self.cells, self.forming))
        # zoomed out, the forming bar (and bars closed since the image was rendered) are drawn
        # as rects beside the image, so a live update never re-renders it
        self._recent_r = fig.rect(x=dodge("x", CELL_MID), y="y", width=CELL_WIDTH,
                                  height=row * 0.92, source=self.cells, fill_color=fill,
                                  line_color=None,
                                  view=CDSView(filter=GroupFilter(column_name="layer",
                                                                  group="rects")))
        self._fflat_r = fig.rect(x=dodge("x", CELL_MID), y="y", width=CELL_WIDTH,
                                 height=row * 0.92, source=self.forming, fill_color=fill,
                                 line_color=None)
        self._profile_r, self._fprofile_r = (
            fig.rect(x="px", y="y", width="pwidth", height=row * 0.8, source=src,
                     fill_color=fill, line_color=None,
                     **({"view": self._view_in()} if src is self.cells else {}))
            for src in (self.cells, self.forming))
        self._wick_r = fig.segment(x0=dodge(X, CANDLE_X), x1=dodge(X, CANDLE_X), y0="low",
                                   y1="high", source=self.bars.source, line_width=1,
                                   line_color={"field": "dir", "transform": self._dir},
                                   view=self._view_in())
        self._body_r = fig.vbar(x=dodge(X, CANDLE_X), width=0.12, top="open", bottom="close",
                                source=self.bars.source, line_color=None,
                                fill_color={"field": "dir", "transform": self._dir},
                                view=self._view_in())
        self._poc_r = fig.rect(x=dodge(X, CELL_MID), y="poc_y", width=CELL_WIDTH, height=row,
                               source=self.bars.source, fill_alpha=0, line_color=theme.poc,
                               line_width=2, view=self._view_in())
        self._naked_r = fig.ray(x="x", y="y", length=0, angle=0, source=self.naked,
                                line_color=theme.poc, line_dash="dashed", line_width=1.5)
        self.stacked.draw(lambda src, **kw: fig.quad(
            left=dodge("x", CELL_RIGHT + 0.005), right=dodge("x", CELL_RIGHT + 0.045),
            bottom="bottom", top="top", source=src, line_color=None,
            fill_color={"field": "side", "transform": self._side}, **kw), self._view_in())
        self.zeros.draw(lambda src, **kw: fig.scatter(
            x="x", y="y", source=src, marker="circle", size=5, fill_alpha=0,
            line_color=theme.muted, line_width=1.2, **kw), self._view_in())
        self.unfinished.draw(lambda src, **kw: fig.scatter(
            x=dodge("x", CELL_MID), y="y", source=src, marker="triangle", size=8,
            line_color=None, fill_color=theme.accent, **kw), self._view_in())
        # the words of each column (bid, the one number, ask), of the closed cells at their own
        # x and of the forming bar's beside its cells' x; only the cell mode's are shown
        self._words_r = {"left": [], "center": [], "right": []}
        for src, xl, xc, xr in ((self.text, "xl", "x", "xr"),
                                (self.forming, dodge("x", CELL_MID + TEXT_LEFT),
                                 dodge("x", CELL_MID), dodge("x", CELL_MID + TEXT_RIGHT))):
            for word, x, align, c in (("left", xl, "right", "l"), ("center", xc, "center", "c"),
                                      ("right", xr, "left", "r")):
                self._words_r[word].append(fig.text(
                    x=x, y="y", text=word, source=src, text_align=align, text_baseline="middle",
                    text_color=f"{c}color", text_font_style=f"{c}style", text_font_size="11px"))
        self._text_r = [r for rs in self._words_r.values() for r in rs]
        report = CustomJS(args={"viewport": self.viewport, "xr": self.x_range,
                                "yr": self.y_range, "fig": fig}, code=_REPORT_VIEW)
        for rng in (self.x_range, self.y_range):
            rng.js_on_change("start", report)
            rng.js_on_change("end", report)
        self.viewport.js_on_change("tags", report)
        if self.static:
            self._numbers_js = CustomJS(code=_SHOW_NUMBERS, args=dict(
                fig=fig, xr=self.x_range, yr=self.y_range, row=1.0, texts=self.texts_shown(),
                totals=[], show_totals=self.show_totals, poc=self._poc_r, cell_width=CELL_WIDTH,
                min_width=READABLE_WIDTH, min_height=READABLE_HEIGHT, totals_width=TOTALS_WIDTH,
                room=0.0))
            for model, names in ((self.x_range, ("start", "end")), (self.y_range, ("start", "end")),
                                 (fig, ("inner_width", "inner_height"))):
                for name in names:
                    model.js_on_change(name, self._numbers_js)
        return fig

    def _make_totals(self, theme):
        fig = figure(theme, height=78, x_range=self.x_range, y_range=Range1d(0, 3),
                     crosshair=self.crosshair)
        fig.min_border_left = LEFT_BORDER
        fig.xaxis.visible = False
        fig.ygrid.visible = False
        fig.xgrid.visible = False
        fig.yaxis.ticker = FixedTicker(ticks=[0.5, 1.5, 2.5])
        fig.yaxis.major_label_overrides = {0.5: "CVD", 1.5: "Delta", 2.5: "Volume"}
        fig.min_border_top = 2
        src = self.bars.source
        self._totals_rects = [
            fig.rect(x=dodge(X, CELL_MID), y=y, width=CELL_WIDTH, height=0.9, source=src,
                     line_color=None, fill_color={"field": field, "transform": mapper},
                     view=self._view_in())
            for y, field, mapper in ((2.5, "volume", self._vol_mapper),
                                     (1.5, "delta", self._delta_mapper),
                                     (0.5, "cvd", self._cvd_mapper))]
        self._totals_text = [
            fig.text(x=dodge(X, CELL_MID), y=y, text=field, source=src, text_align="center",
                     text_baseline="middle", text_font_size="10px", text_color=theme.text,
                     view=self._view_in())
            for y, field in ((2.5, "vol_text"), (1.5, "delta_text"), (0.5, "cvd_text"))]
        if self.static:
            self._numbers_js.args = dict(self._numbers_js.args, totals=self._totals_text)
        return fig

    def __panel__(self):
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            # once the page is drawn, ask it for its view (the plot's size is only known there)
            pn.state.onload(lambda: setattr(self.viewport, "tags", [len(self.cells.data["x"])]))
        size = "stretch_width" if self.height is not None else "stretch_both"
        return pn.pane.Bokeh(column(self.figure, self.totals, sizing_mode=size),
                             sizing_mode=size)

    # ---------------------------------------------------------------------------- data

    def load(self, bars: pd.DataFrame, footprint: pd.DataFrame | None = None, studies=None, *,
             current: pd.DataFrame | None = None,
             current_footprint: pd.DataFrame | None = None) -> None:
        """Draw ``bars`` (closed, ``BAR_COLUMNS``) and their ``footprint`` cells, and the
        forming bar ``current`` (0 or 1 row) with its cells: a whole redraw."""
        self._reset_state()
        self._closed = bars.reset_index(drop=True)
        self._current = (current if current is not None else empty_frame(BAR_COLUMNS)
                         ).reset_index(drop=True)
        self._closed_cells = [footprint if footprint is not None
                              else empty_frame(FOOTPRINT_COLUMNS)]
        self._current_cells = (current_footprint if current_footprint is not None
                               else empty_frame(FOOTPRINT_COLUMNS))
        self._fit_rows_and_redraw()
        self._initial_view()

    def apply(self, update) -> None:
        """Follow the hub: a ``Snapshot`` redraws; an ``Update`` (or a ``BarUpdate``) streams the
        bars and cells that closed and patches the forming bar in place."""
        if isinstance(update, Snapshot):
            self.load(update.closed, update.closed_footprint, current=update.current,
                      current_footprint=update.current_footprint)
            return
        if not hasattr(update, "closed"):  # a Resync: the Snapshot that follows redraws
            return
        # Bokeh checks every value set against its property's type (for a patch, every column
        # patched, at every update of every session); the live rows are made here, of the
        # types the load gave the sources, so the check is skipped (Bokeh's documented switch)
        with validate(False):
            self._apply_update(update)

    def _apply_update(self, update) -> None:
        closed, current = update.closed, update.current
        if not len(closed) and not len(current):
            return
        first = len(self._closed)  # the number of the first bar in the update
        old_forming = self.forming_x
        new_forming = first + len(closed) if len(current) else None
        if len(closed):
            self._closed = joined(self._closed, closed)
        self._current = current
        if len(update.closed_footprint):
            self._closed_cells.append(update.closed_footprint)
        self._current_cells = update.current_footprint
        # what depends on the update's bars alone is computed once for every chart showing it
        parts = shared_parts(update, self.instrument, self.rows, self.imbalance_ratio)
        self._days = np.concatenate([self._days[:first], parts["days"]])
        self.bars.apply(self._live_cvd(shifted(parts["bars"], first), first))
        self._apply_cells(parts, first)
        for name in ("stacked", "zeros", "unfinished"):
            getattr(self, name).apply(shifted(parts[name], first), new_forming)
        if len(closed):
            self._update_naked(joined(update.closed_footprint, update.current_footprint), current)
        elif len(current):
            b = parts["bars"]
            self._drop_covered((float(b["low"][-1]), float(b["high"][-1])))
        # colour scales stay as the load set them (values past them take the end colours), so a
        # live update never recolours what is drawn
        if self.zoomed_in and old_forming is not None and old_forming != new_forming:
            self._stream_text(old_forming, first + len(closed) - 1)

    # ---------------------------------------------------------------------------- columns

    @staticmethod
    def _range_of(bar: pd.DataFrame):
        return (float(bar["low"].iloc[0]), float(bar["high"].iloc[0])) if len(bar) else None

    def _with_cvd(self, cols: dict, bars: pd.DataFrame, first: int) -> dict:
        """Per-bar columns with the CVD of bars ``first..`` (reset each trading day)."""
        values = cvd_from(bars, first, self.instrument.session, days=self._days)
        return _with_cvd_words(cols, values)

    def _live_cvd(self, cols: dict, first: int) -> dict:
        """:meth:`_with_cvd` of an update's bars ``first..``, from the CVD shown for the bar
        before them (the same trading day) plus their deltas: no frame of the day's bars."""
        delta = np.asarray(cols["delta"], dtype="float64")
        days = self._days[first:first + len(delta)]
        shown, at = self.bars.source.data["cvd"], first - self.bars.first_x() - 1
        same_day = len(days) and at >= 0 and self._days[first - 1] == days[0]
        values = np.cumsum(delta) + (float(shown[at]) if same_day else 0.0)
        for start in np.flatnonzero(days[1:] != days[:-1]) + 1:  # a new trading day: from 0
            values[start:] -= values[start - 1]
        return _with_cvd_words(cols, values)

    def _redraw(self):
        """Fill every source from the frames held (after a load or a new row size / ratio)."""
        bars = joined(self._closed, self._current)
        closed_cells = joined(*self._closed_cells) if self._closed_cells else \
            empty_frame(FOOTPRINT_COLUMNS)
        self._closed_cells = [closed_cells]
        cells = joined(closed_cells, self._current_cells)
        parts = bar_parts(bars, cells, self.instrument, self.rows, self.imbalance_ratio,
                          len(self._current) > 0)
        self._days = parts["days"]
        self.bars.load(self._with_cvd(parts["bars"], bars, 0))
        closed = np.asarray(parts["cells"]["state"]) == "closed"
        self.cells.data = dict({k: np.array(np.asarray(v)[closed]) for k, v in
                                parts["cells"].items() if k != "state"},
                               layer=np.full(int(closed.sum()), "image", dtype=object))
        self._show_forming(forming_rows(parts, *self._words()), 0)
        for name in ("stacked", "zeros", "unfinished"):
            getattr(self, name).load(parts[name], self.forming_x)
        self._naked_cells = cells
        self._update_naked(empty_frame(FOOTPRINT_COLUMNS), self._current)
        for glyph_r, share in ((self._cells_r, 0.92), (self._fcells_r, 0.92),
                               (self._recent_r, 0.92), (self._fflat_r, 0.92),
                               (self._profile_r, 0.8), (self._fprofile_r, 0.8)):
            glyph_r.glyph.height = self._row_price() * share
        self._poc_r.glyph.height = self._row_price()
        if self.static:
            self._numbers_js.args = dict(self._numbers_js.args, row=self._row_price())
        self.figure.title.text = self.row_label()
        self._update_scales()
        self.refresh_view()

    def _apply_cells(self, parts: dict, first: int) -> None:
        """The cells of an update's bars numbered from ``first``: those of bars that closed (the
        forming bar shown before among them) streamed into the closed cells, once; the forming
        bar's shown in its own source."""
        cells = parts["cells"]
        done = np.asarray(cells["state"]) == "closed"
        if done.any():
            rows = {k: np.asarray(v)[done] for k, v in cells.items() if k != "state"}
            self.cells.stream(dict(shifted(rows, first),
                                   layer=np.full(int(done.sum()), "rects", dtype=object)))
        self._show_forming(forming_rows(parts, *self._words()), first)

    def _show_forming(self, rows: dict, dx: int) -> None:
        """Make the forming bar's source hold ``rows`` (:func:`forming_rows`: shared by the
        sessions, read-only) moved ``dx`` bars right: while the bar keeps its rows, the columns
        that changed are replaced by those same arrays (only ``x`` and ``px`` are this chart's);
        a bar with new rows, or a new bar, replaces them all (a few dozen rows). The source's
        arrays are therefore never changed in place (they may be read-only)."""
        held = self.forming.data
        n = len(rows["x"])
        mine = {"x": rows["x"] + dx, "px": rows["px"] + dx}
        if n and len(held["x"]) == n and int(held["x"][0]) == int(mine["x"][0]) and \
                np.array_equal(held["tick"], rows["tick"]):
            update_columns(self.forming, {k: mine.get(k, v) for k, v in rows.items()
                                          if k not in ("x", "tick")})
        elif n or len(held["x"]):
            self.forming.data = {k: mine.get(k, v) for k, v in rows.items()}

    def _words(self) -> tuple[str, tuple]:
        """How the numbers are written: the cell mode and the text colours (blended once per
        theme: asked at every live update)."""
        if getattr(self, "_colours_of", (None,))[0] != self.theme:
            self._colours_of = (self.theme, self._text_colours(theme_of(self.theme)))
        return "volume" if self.cell == "profile" else self.cell, self._colours_of[1]

    def _drop_covered(self, now: tuple[float, float]) -> None:
        """The naked POCs whose rows the forming bar's range ``now`` (low, high) reaches are
        naked no more (a bar traded in or through the row: ``naked_pocs``' rule); the others
        stay. Only a bar that closes brings a new candidate, so ``naked_pocs`` runs again then:
        judging them all at every update was a session's largest cost."""
        if now == self._forming_range:
            return
        self._forming_range = now
        ticks, rows = self.instrument.tick_size, self.rows
        lo, hi = (int(round(p / ticks)) // rows for p in now)
        covered = (self._naked_levels >= lo) & (self._naked_levels <= hi)
        if covered.any():
            self._naked_levels = self._naked_levels[~covered]
            set_small(self.naked, {k: np.asarray(v)[~covered] for k, v in self.naked.data.items()})

    def _update_naked(self, new_cells, current):
        """Naked POCs of the closed bars (``naked_pocs`` over the bars still naked and the new
        ones: a bar between them that was left out covered none of them), as lines from the
        bar to the right edge."""
        self._forming_range = self._range_of(current)
        kept = self._naked_cells
        if len(new_cells) and len(kept):  # the bars the new cells re-send (the forming bar's)
            kept = kept[open_ns(kept) < open_ns(new_cells).min()]
        cells = joined(kept, new_cells) if len(new_cells) else kept
        rows = self.rows
        if not len(cells):
            self.naked.data = {"x": np.empty(0), "y": np.empty(0)}
            self._naked_levels = np.empty(0, "int64")
            return
        found = naked_pocs(cells, rows=rows)
        found = found[(found["kind"] == "bar") & found["naked_until"].isna()]
        if len(current):
            found = found[open_ns(found) != open_ns(current)[0]]
        self._naked_levels = found["poc"].to_numpy(dtype="int64") // rows
        keep_ts = open_ns(found)
        self._naked_cells = cells[np.isin(open_ns(cells), np.concatenate(
            [keep_ts, open_ns(current)]))].reset_index(drop=True)
        bars = self._closed
        pos = np.searchsorted(open_ns(bars), keep_ts)
        set_small(self.naked, {"x": (pos + CELL_RIGHT).astype("float64"),
                               "y": (found["poc"].to_numpy() + (rows - 1) / 2)
                               * self.instrument.tick_size})

    # ---------------------------------------------------------------------------- view

    def _update_scales(self):
        """Colour scale limits from the data shown (after a load or a change of settings)."""
        value = _VALUE_OF[self.color_by]
        data = {k: np.concatenate([np.asarray(self.cells.data[k]), np.asarray(self.forming.data[k])])
                for k in ("volume", "delta")}
        if value == "imb":
            lo, hi = -1.0, 1.0
        elif value == "volume":
            lo, hi = 0.0, scales.robust_max(data["volume"])
        else:
            top = scales.robust_max(data["delta"])
            lo, hi = -top, top
        if (lo, hi) != (self.cell_colours.low, self.cell_colours.high):
            self.cell_colours.update(low=lo, high=hi)
        b = self.bars.source.data
        vol, delta, cvd_top = (scales.robust_max(b["volume"], 1.0), scales.robust_max(b["delta"]),
                               scales.robust_max(b["cvd"], 1.0))
        self._vol_mapper.high = vol
        for mapper, top in ((self._delta_mapper, delta), (self._cvd_mapper, cvd_top)):
            mapper.update(low=-top, high=top)

    def _initial_view(self):
        n = len(self._closed) + len(self._current)
        if not n:
            return
        v = self.viewport.data
        start = self.first_shown(n)
        if self._own_x:
            self.x_range.update(start=start - 0.5, end=n + 0.5)
        lo, hi = self._prices_of(start)
        self.y_range.update(start=lo, end=hi)
        self.viewport.data = {"x0": [self.x_range.start], "x1": [self.x_range.end], "y0": [lo],
                              "y1": [hi], "w": [v["w"][0]], "h": [v["h"][0]]}
        self._fitted = (v["w"][0], v["h"][0], start - 0.5)  # until the page's first report

    def range_set(self) -> None:
        """The shared x range was set by the chart holding this one (a desk chart opens on
        :meth:`first_shown`): answer that view now, as the page's report would. The page shows
        the range set at once, but its report comes later (seconds on a loaded machine), and
        till then the cells were drawn for the wider range before: blocks without numbers. The
        refit to the page's real size is kept for that report."""
        fitted, self._fitted = self._fitted, None
        try:
            self.viewport.data = {**self.viewport.data, "x0": [self.x_range.start],
                                  "x1": [self.x_range.end]}
        finally:
            self._fitted = fitted

    def _prices_of(self, start: int) -> tuple[float, float]:
        """The price range of a first view from bar ``start`` on: all of their prices, or the
        rows around the last close that stay readable."""
        bars = joined(self._closed, self._current).iloc[start:]
        row = self._row_price()
        lo, hi = float(bars["low"].min()) - row, float(bars["high"].max()) + 2 * row
        fit = self.viewport.data["h"][0] / ROW_PIXELS * row  # the span that keeps rows readable
        if hi - lo > fit and not self.static:  # the bars span more: the rows around the last close
            last = float(bars["close"].iloc[-1])
            lo, hi = last - fit / 2, last + fit / 2
        return lo, hi

    def _refit(self, x0: float, x1: float, w: float, h: float) -> bool:
        """The page's first report of its plot's size: when the load assumed another size and
        the view is still the one it chose, show the bars whose numbers fit the real width
        (True: the view changed, and its report follows)."""
        assumed_w, assumed_h, start = self._fitted
        self._fitted = None
        if (w, h) == (assumed_w, assumed_h):
            return False
        if x0 != start or self.x_range.start != start or x1 != self.x_range.end:
            return False  # moved already (a saved view, the user)
        n = len(self._closed) + len(self._current)
        first = self.first_shown(n)
        lo, hi = self._prices_of(first)
        self.x_range.start = first - 0.5
        self.y_range.update(start=lo, end=hi)
        self.viewport.data = {"x0": [first - 0.5], "x1": [self.x_range.end], "y0": [lo],
                              "y1": [hi], "w": [w], "h": [h]}
        return True

    def _view(self):
        v = self.viewport.data
        return (float(v["x0"][0]), float(v["x1"][0]), float(v["y0"][0]), float(v["y1"][0]),
                max(float(v["w"][0]), 1.0), max(float(v["h"][0]), 1.0))

    def refresh_view(self) -> None:
        """Answer the view reported: numbers for the cells in view when they are readable, the
        Datashader image otherwise; the totals row's numbers when bars are wide enough."""
        x0, x1, y0, y1, w, h = self._view()
        if self._fitted is not None and not self.static and self._refit(x0, x1, w, h):
            return
        bar_px = w / max(x1 - x0, 1e-9)
        row_px = h * self._row_price() / max(y1 - y0, 1e-12)
        # the row's height sets the font; the widest number in view must fit the cell at it
        room = self._label_room()
        font = min(_font(row_px), bar_px * CELL_WIDTH / room) if room else _font(row_px)
        readable = (bar_px * CELL_WIDTH >= READABLE_WIDTH and row_px >= READABLE_HEIGHT
                    and font >= MIN_FONT)
        # static: every cell a rect and every number written (the browser shows them)
        self.zoomed_in = readable or self.static
        shown = self.texts_shown()
        if self.static:
            self._numbers_js.args = {**self._numbers_js.args, "room": room, "texts": shown}
        size = f"{int(max(font, MIN_FONT))}px"
        for r in self._text_r:
            r.glyph.text_font_size = size
            # served, the closed cells' numbers are only sent when readable; the forming bar's
            # are always in its source, so shown only then (static: the browser decides); the
            # words the mode leaves blank are never drawn
            r.visible = any(r is t for t in shown) and (
                readable or (not self.static and r.data_source is self.text))
        for r in self._totals_text:
            r.visible = self.show_totals and bar_px * CELL_WIDTH >= TOTALS_WIDTH
        # zoomed out, the marks must not hide the cells they mark
        self._poc_r.glyph.line_width = 2 if self.zoomed_in else 1
        for r in self.unfinished.renderers:
            r.glyph.size = 8 if self.zoomed_in else 5
        self._on_display(render=False)
        if self.zoomed_in:
            self.image.data = {"image": [], "x": [], "y": [], "dw": [], "dh": []}
            self._fill_text()
        else:
            self.text.data = empty_text()
            self._render_image()

    def texts_shown(self) -> list:
        """The text renderers of the cell mode: bid and ask, or the one number."""
        words = ("left", "right") if self.cell == "bid_ask" else ("center",)
        return [r for word in words for r in self._words_r[word]]

    def _closed_cells_in(self, in_view: bool) -> dict:
        """The closed cells' columns, those in view only when ``in_view`` (and not static)."""
        return self._cells_in(self.cells, in_view)

    def _cells_in(self, source, in_view: bool) -> dict:
        """The columns of ``source`` (the closed cells' or the forming bar's), its cells in
        view only when ``in_view`` (and not static)."""
        data = {k: np.asarray(v) for k, v in source.data.items()}
        if not in_view or self.static:
            return data
        x0, x1, y0, y1, _, _ = self._view()
        x, y, row = data["x"], data["y"], self._row_price()
        return _take(data, (x >= np.floor(x0)) & (x <= np.ceil(x1)) & (y >= y0 - row)
                     & (y <= y1 + row))

    def _fill_text(self) -> None:
        """The numbers of the closed cells in view; the forming bar's words in the mode and
        colours shown (a change of either rewrites them)."""
        mode, colours = self._words()
        self.text.data = cell_text(self._closed_cells_in(True), mode, *colours)
        held = {k: np.asarray(v) for k, v in self.forming.data.items()}
        if len(held["x"]):
            words = cell_text(held, mode, *colours)
            update_columns(self.forming, {k: words[k] for k in TEXT_WORDS})

    def _stream_text(self, first: int, last: int) -> None:
        """Add the numbers of bars ``first``..``last``, just closed, when they are in view (the
        text of the other closed bars in view is not sent again)."""
        cols = self._closed_cells_in(True)
        x = cols["x"]
        new = _take(cols, (x >= first) & (x <= last))
        if len(new["x"]):
            mode, colours = self._words()
            self.text.stream(cell_text(new, mode, *colours))

    @staticmethod
    def _text_colours(theme):
        # imbalanced numbers: the side's colour lifted toward the text colour, to stand out on a
        # cell tinted the same way
        return (theme.text, scales.blend(theme.up, theme.text, 0.3),
                scales.blend(theme.down, theme.text, 0.3))

    def _render_image(self) -> None:
        x0, x1, y0, y1, w, h = self._view()
        # a margin around the view, so that a small pan shows cells before the next render
        dx, dy = (x1 - x0) * 0.25, (y1 - y0) * 0.25
        xr, yr = (x0 - dx, x1 + dx), (y0 - dy, y1 + dy)
        size = (int(min(w * 1.5, 3000)), int(min(h * 1.5, 2000)))
        mapper = self.cell_colours
        img = raster(self._closed_cells_in(False), _VALUE_OF[self.color_by], xr, yr, size,
                     self._row_price(), list(mapper.palette), (mapper.low, mapper.high))
        if img is None:
            self.image.data = {"image": [], "x": [], "y": [], "dw": [], "dh": []}
        else:
            self.image.data = {"image": [img], "x": [xr[0]], "y": [yr[0]],
                               "dw": [xr[1] - xr[0]], "dh": [yr[1] - yr[0]]}
        # the bars closed live since the last render are in the image now: no more rects
        moved = np.flatnonzero(np.asarray(self.cells.data["layer"]) == "rects")
        if len(moved):
            self.cells.patch({"layer": [(int(i), "image") for i in moved]})

    # ---------------------------------------------------------------------------- settings

    def _reload(self):
        self._closed_cells = [joined(*self._closed_cells)] if self._closed_cells else []
        self._fit_rows_and_redraw()

    def _fit_rows_and_redraw(self):
        """Redraw at the automatic row size (or the one set). How many bars the first view
        shows depends on how wide their numbers are, which is known once drawn: when that
        changes the row size, draw again at the new one."""
        if self.row_ticks:
            self._redraw()
            return
        self._choose_rows()
        self._redraw()
        rows = self._auto_rows
        self._choose_rows()
        if self._auto_rows != rows:
            self._redraw()

    def _on_display(self, render: bool = True):
        """Which cell glyphs show (``cell``) and what colours them (``color_by``)."""
        value = _VALUE_OF[self.color_by]
        theme = theme_of(self.theme)
        palette = {"delta": scales.diverging(theme), "volume": scales.sequential(theme),
                   "imbalance": scales.imbalance_colours(theme)}[self.color_by]
        if list(self.cell_colours.palette) != palette:
            self.cell_colours.palette = palette
        fill = {"field": value, "transform": self.cell_colours}
        for r in (self._cells_r, self._fcells_r, self._recent_r, self._fflat_r, self._profile_r,
                  self._fprofile_r):
            if r.glyph.fill_color != fill:
                r.glyph.fill_color = fill
        profile = self.cell == "profile"
        for r in (self._cells_r, self._fcells_r):
            r.visible = self.zoomed_in and not profile
        for r in (self._profile_r, self._fprofile_r):
            r.visible = self.zoomed_in and profile
        for r in (self._recent_r, self._fflat_r, self._image_r):
            r.visible = not self.zoomed_in
        if render:
            self._update_scales()
            self.refresh_view()

    def _show_layers(self):
        self._poc_r.visible = self.show_poc
        self._naked_r.visible = self.show_naked_pocs
        self.stacked.show(self.show_imbalances)
        for r in (self._cells_r, self._fcells_r):
            r.glyph.line_alpha = 1.0 if self.show_imbalances else 0.0
        self.zeros.show(self.show_zero_prints)
        self.unfinished.show(self.show_unfinished)
        self.totals.visible = self.show_totals

    def _on_theme(self, event):
        theme = theme_of(self.theme)
        style(self.figure, theme)
        style(self.totals, theme)
        self._outline.palette = self._outline_palette(theme)
        self._dir.palette = [theme.up, theme.down]
        self._side.palette = [theme.up, theme.down]
        self._vol_mapper.palette = scales.sequential(theme)
        self._delta_mapper.palette = scales.diverging(theme)
        self._cvd_mapper.palette = scales.diverging(theme)
        self._poc_r.glyph.line_color = theme.poc
        self._naked_r.glyph.line_color = theme.poc
        for r in self.zeros.renderers:
            r.glyph.line_color = theme.muted
        for r in self.unfinished.renderers:
            r.glyph.fill_color = theme.accent
        for r in self._totals_text:
            r.glyph.text_color = theme.text
        self._on_display()
