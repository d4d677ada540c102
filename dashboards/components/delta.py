"""Delta and CVD panes: per-bar delta columns, and the cumulative volume delta as a line or as
candles, reset per trading day. Same x as every bar view (the bar's number), so they sit under a
price or footprint chart sharing its ``x_range`` and crosshair.

Under a chart whose x is its own (Kagi, Point & Figure, Line Break: ``lines=``, the chart's
``line_starts``), a pane follows the same lines: each line holds the bars from the one that
began it to the one before the next began (``price_transforms.line_spans``), its delta is their
deltas summed, its CVD the CVD at its last bar, its CVD candle opens at the CVD before its first
bar, closes at its last bar's and spans their extremes.

The values are the studies' (``indicators.orderflow``: ``bar_delta``, ``cvd``, ``cvd_candles``);
live, closed bars (lines) are streamed once and the forming one patched in place.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import CategoricalColorMapper, CrosshairTool, CustomJS, Range1d, Span

from indicators.orderflow import bar_delta, cvd_candles
from tradeflow.live.hub import Snapshot
from tradeflow.model import BAR_COLUMNS, Instrument, empty_frame

from .axes import T, X, local_ms, time_formatter
from .bar_rows import LEFT_BORDER, PRICE_BORDER, BarRows, cvd_from, joined
from .live_source import put_differences
from .price_transforms import line_spans, per_line

TOOLBAR_PX = 27  # a vertical Bokeh toolbar's width
from .theme import THEMES, figure, style, theme_of

__all__ = ["DeltaPane", "CVDPane"]

# the value axis follows the bars in view (as a price axis does), so a pane over a long history
# still shows today's small moves; the same rule in Python after a load
_FIT_Y = """
const d = source.data, xs = d['x'];
let lo = Infinity, hi = -Infinity;
for (let i = 0; i < xs.length; i++) {
  if (xs[i] < xr.start - 0.5 || xs[i] > xr.end + 0.5) continue;
  for (const c of cols) { const v = d[c][i]; if (isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
}
if (lo > hi) return;
lo = Math.min(lo, 0); hi = Math.max(hi, 0);
const pad = (hi - lo) * 0.08 || 1;
yr.start = lo - pad; yr.end = hi + pad;
"""


class _BarPane(pn.viewable.Viewer):
    """What both panes share: the bars held (closed, then the forming one), their numbering,
    the figure and its theme; a pane adds its columns (``_columns``), how they make a line's
    (``_line_columns``) and its glyphs (``_draw``)."""

    instrument = param.ClassSelector(class_=Instrument, doc="tick size, time zone, session")
    theme = param.Selector(default="dark", objects=list(THEMES))
    height = param.Integer(default=160, bounds=(60, 2000))
    axis = param.Selector(default="left", objects=["left", "right"],
                          doc="where the value axis is: the side of the price axis above, so "
                              "the bars line up (the price chart's is on the right)")

    FIELDS: tuple = ()
    VALUES: tuple = ()  # the columns the value axis is fitted to

    def __init__(self, bars: pd.DataFrame | None = None, *, x_range=None,
                 crosshair: CrosshairTool | None = None, lines=None, **params):
        """``lines``: the chart's ``line_starts`` (a callable giving the open times of the bars
        that began its lines, or None while x is the bar), asked at each load and update, after
        the chart has taken them."""
        super().__init__(**params)
        self._lines = lines
        self._per_bar: dict = {}  # following lines: every bar's columns (closed, forming)
        if self.instrument is None:
            raise ValueError(f"{type(self).__name__} needs an instrument (its session and zone)")
        theme = theme_of(self.theme)
        self.x_range = x_range if x_range is not None else Range1d(-0.5, 0.5)
        self.crosshair = crosshair or CrosshairTool(overlay=[
            Span(dimension="width", line_dash="dotted", line_color=theme.crosshair),
            Span(dimension="height", line_dash="dotted", line_color=theme.crosshair)])
        self.rows = BarRows((X, T) + self.FIELDS)
        self.source = self.rows.source
        self._dir = CategoricalColorMapper(factors=["up", "down"], palette=[theme.up, theme.down])
        self.y_range = Range1d(-1.0, 1.0)
        self.figure = figure(theme, height=self.height, x_range=self.x_range,
                             y_range=self.y_range, crosshair=self.crosshair,
                             y_axis_location=self.axis)
        fit = CustomJS(args={"source": self.source, "xr": self.x_range, "yr": self.y_range,
                             "cols": list(self.VALUES)}, code=_FIT_Y)
        self.x_range.js_on_change("start", fit)
        self.x_range.js_on_change("end", fit)
        if self.axis == "left":
            self.figure.min_border_left = LEFT_BORDER  # aligned with the chart above it
        else:  # as the price chart's panes: labels right, its toolbar (beside its layout,
            # TOOLBAR_PX wide) acts for all
            self.figure.min_border_right = PRICE_BORDER + TOOLBAR_PX
            self.figure.toolbar_location = None
        self.figure.xaxis.formatter = time_formatter(self.source, self.figure)
        # a short pane: few labels, or they crowd into one another
        self.figure.yaxis.ticker.desired_num_ticks = 3 if self.height < 200 else 5
        self._draw(theme)
        self._closed = empty_frame(BAR_COLUMNS)
        self._current = empty_frame(BAR_COLUMNS)
        self._x0 = 0  # the number of the first bar
        self._studies: dict = {}
        self.param.watch(self._on_theme, "theme")
        if bars is not None:
            self.load(bars)

    def __panel__(self):
        return pn.pane.Bokeh(self.figure, sizing_mode="stretch_width")

    @property
    def closed_count(self) -> int:
        """How many closed bars are drawn (numbers 0 .. closed_count - 1)."""
        return len(self._closed)

    def load(self, bars: pd.DataFrame, footprint=None, studies=None, *,
             current: pd.DataFrame | None = None, first_x: int = 0, **_) -> None:
        """Draw ``bars`` (closed) and the forming bar ``current`` (0 or 1 row), numbered from
        ``first_x``: a whole redraw."""
        self._x0 = int(first_x)
        self._closed = bars.reset_index(drop=True)
        self._current = (current if current is not None else empty_frame(BAR_COLUMNS)
                         ).reset_index(drop=True)
        self._studies = studies or {}
        every = joined(self._closed, self._current)
        bars = self._with_x(every, self._x0 + np.arange(len(every)), every, 0)
        starts = self._lines() if self._lines is not None else None
        if starts is None:
            self._per_bar = {}
            self.rows.load(bars)
        else:
            self._per_bar = bars
            self.rows.load(self._by_line(every, starts))
        self.fit_y()

    def fit_y(self) -> None:
        """Fit the value axis to the bars in the x range (and 0)."""
        d = self.source.data
        x = np.asarray(d[X], dtype=float)
        start, end = self.x_range.start, self.x_range.end
        if start is None or end is None or not len(x):
            return
        near = (x >= start - 0.5) & (x <= end + 0.5)
        if not near.any():  # the range is not set yet: every bar
            near[:] = True
        values = np.concatenate([np.asarray(d[c], dtype=float)[near] for c in self.VALUES])
        values = values[np.isfinite(values)]
        lo, hi = min(values.min(initial=0.0), 0.0), max(values.max(initial=0.0), 0.0)
        pad = (hi - lo) * 0.08 or 1.0
        self.y_range.update(start=lo - pad, end=hi + pad)

    def apply(self, update) -> None:
        """A ``Snapshot`` redraws; an ``Update`` streams closed bars, patches the forming one."""
        if isinstance(update, Snapshot):
            self.load(update.closed, studies=update.studies, current=update.current)
            return
        if not hasattr(update, "closed"):  # Resync: a Snapshot follows
            return
        closed, current = update.closed.reset_index(drop=True), update.current.reset_index(drop=True)
        if not len(closed) and not len(current):
            return
        first = len(self._closed)
        self._closed = joined(self._closed, closed)
        self._current = current
        every = joined(self._closed, self._current)
        touched = every.iloc[first:]
        self._studies = getattr(update, "studies", None) or {}
        bars = self._with_x(touched, self._x0 + np.arange(first, len(every)), every, first)
        starts = self._lines() if self._lines is not None else None
        if (starts is None) != (not self._per_bar):  # the chart's x changed meaning: redraw
            self.load(self._closed, studies=self._studies, current=self._current,
                      first_x=self._x0)
            return
        if starts is None:
            self.rows.apply(bars)
            return
        # the lines made again from every bar's columns (a few hundred lines): only the rows
        # that differ are sent (the last line or two; closed lines never change)
        self._per_bar = {k: np.concatenate([v[:first], bars[k]]) for k, v in self._per_bar.items()}
        put_differences(self.source, self._by_line(every, starts))

    def _by_line(self, every: pd.DataFrame, starts) -> dict:
        """The rows of the lines beginning at ``starts`` (UTC ns), from every bar's columns."""
        starts = np.asarray(starts, "int64")
        first, end = line_spans(every["ts"].array.as_unit("ns").asi8, starts)
        cols = {X: np.arange(len(starts), dtype="int64"),
                T: local_ms(pd.DatetimeIndex(starts, tz="UTC"),
                            self.instrument.session.timezone).astype("float64")}
        cols.update(self._line_columns(self._per_bar, first, end))
        return cols

    def _with_x(self, bars, xs, every, first) -> dict:
        cols = {X: np.asarray(xs, dtype="int64"),
                T: local_ms(bars["ts"], self.instrument.session.timezone).astype("float64")}
        cols.update(self._columns(bars, every, first))
        return cols

    def _on_theme(self, event):
        theme = theme_of(self.theme)
        style(self.figure, theme)
        self._dir.palette = [theme.up, theme.down]
        self._restyle(theme)

    def _restyle(self, theme):
        pass


class DeltaPane(_BarPane):
    """Per-bar delta (``ask_volume - bid_volume``) as columns, up colour above 0, down below."""

    FIELDS = ("delta", "dir")
    VALUES = ("delta",)

    def _draw(self, theme):
        self.figure.vbar(x=X, width=0.7, top="delta", bottom=0, source=self.source,
                         line_color=None, fill_color={"field": "dir", "transform": self._dir})
        self.figure.yaxis.axis_label = "Delta"

    def _columns(self, bars, every, first) -> dict:
        delta = bar_delta(bars)["delta"].to_numpy()
        return {"delta": delta, "dir": np.where(delta >= 0, "up", "down").astype(object)}

    def _line_columns(self, per_bar, first, end) -> dict:
        delta = per_line(per_bar["delta"], first, end, "sum")
        return {"delta": delta, "dir": np.where(delta >= 0, "up", "down").astype(object)}


class CVDPane(_BarPane):
    """Cumulative volume delta, reset each trading day of the instrument's session (``reset``):
    a line, or candles (open = CVD before the bar, close after it, wicks = the running delta's
    extremes inside the bar).

    Candles need those extremes: give ``trades`` (the bars' trades) or bars with ``delta_max``/
    ``delta_min`` columns to ``load``, or ``studies={"cvd_candles": frame}``; live, the update's
    ``cvd_candles`` study changes. A bar without them is drawn without wicks beyond its body."""

    style = param.Selector(default="line", objects=["line", "candles"])
    reset = param.Selector(default="session", objects=["session", "none"])

    FIELDS = ("cvd", "open", "high", "low", "close", "dir")
    VALUES = ("low", "high")

    def __init__(self, bars=None, *, trades: pd.DataFrame | None = None, **params):
        self._trades = trades
        super().__init__(None, **params)
        self.param.watch(lambda e: self._restyle(theme_of(self.theme)), "style")
        self.param.watch(lambda e: self.load(self._closed, studies=self._studies,
                                             current=self._current), "reset")
        if bars is not None:
            self.load(bars, trades=trades)

    def load(self, bars, footprint=None, studies=None, *, current=None, trades=None,
             first_x: int = 0, **_):
        if trades is not None:
            self._trades = trades
        super().load(bars, footprint, studies, current=current, first_x=first_x)
        self._trades = None  # used once: live bars get their extremes from the study's changes

    def _draw(self, theme):
        fig = self.figure
        self._line = fig.line(x=X, y="cvd", source=self.source, line_color=theme.accent,
                              line_width=1.5)
        self._wick = fig.segment(x0=X, x1=X, y0="low", y1="high", source=self.source,
                                 line_color={"field": "dir", "transform": self._dir})
        self._body = fig.vbar(x=X, width=0.7, top="open", bottom="close", source=self.source,
                              line_color=None, fill_color={"field": "dir", "transform": self._dir})
        fig.yaxis.axis_label = "CVD"
        self._restyle(theme)

    def _restyle(self, theme):
        candles = self.style == "candles"
        self._line.visible = not candles
        self._line.glyph.line_color = theme.accent
        self._wick.visible = self._body.visible = candles

    def _extremes(self, bars: pd.DataFrame):
        """``delta_max``/``delta_min`` of ``bars`` where known (NaN elsewhere)."""
        n = len(bars)
        dmax, dmin = np.full(n, np.nan), np.full(n, np.nan)
        if {"delta_max", "delta_min"} <= set(bars.columns):
            return bars["delta_max"].to_numpy(float), bars["delta_min"].to_numpy(float)
        if self._trades is not None and n:
            c = cvd_candles(bars, trades=self._trades, session=self.instrument.session,
                            reset=self.reset)
            return (c["high"] - c["open"]).to_numpy(), (c["low"] - c["open"]).to_numpy()
        study = self._studies.get("cvd_candles")
        if study is not None:
            rows = getattr(study, "rows", study)  # live Changes, or a whole frame
            if len(rows):
                by_ts = pd.Series(np.arange(len(rows)),
                                  index=rows["ts"].array.as_unit("ns").asi8)
                by_ts = by_ts[~by_ts.index.duplicated(keep="last")]
                pos = by_ts.reindex(bars["ts"].array.as_unit("ns").asi8).to_numpy()
                hit = ~np.isnan(pos)
                p = pos[hit].astype(int)
                dmax[hit] = rows["high"].to_numpy(float)[p] - rows["open"].to_numpy(float)[p]
                dmin[hit] = rows["low"].to_numpy(float)[p] - rows["open"].to_numpy(float)[p]
        return dmax, dmin

    def _columns(self, bars, every, first) -> dict:
        close = cvd_from(every, first, self.instrument.session, self.reset)
        delta = bar_delta(bars)["delta"].to_numpy()
        open_ = close - delta
        if len(bars):
            # a bar that opens a trading day opens at 0 (as cvd_candles: no rounding left over)
            days = self.instrument.session.trading_date(every["ts"]).asi8
            starts = np.ones(len(every), bool)
            starts[1:] = days[1:] != days[:-1]
            if self.reset == "session":
                open_[starts[first:]] = 0.0
            elif first == 0:
                open_[0] = 0.0
        dmax, dmin = self._extremes(bars)
        high = np.fmax(np.fmax(open_ + dmax, open_), close)
        low = np.fmin(np.fmin(open_ + dmin, open_), close)
        return {"cvd": close, "open": open_, "high": high, "low": low, "close": close,
                "dir": np.where(close >= open_, "up", "down").astype(object)}

    def _line_columns(self, per_bar, first, end) -> dict:
        """A line's CVD is its last bar's; its candle opens at its first bar's open and spans
        its bars' extremes (wicks included where known)."""
        open_ = per_line(per_bar["open"], first, end, "first")
        close = per_line(per_bar["close"], first, end, "last")
        return {"cvd": close, "open": open_, "high": per_line(per_bar["high"], first, end, "max"),
                "low": per_line(per_bar["low"], first, end, "min"), "close": close,
                "dir": np.where(close >= open_, "up", "down").astype(object)}
