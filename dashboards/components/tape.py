"""Time & sales: the trades as they print, newest at the top, coloured by aggressor side, with a
big-trade filter.

Drawn on a Bokeh canvas rather than in a table widget, so it takes the theme's colours like every
other view and follows live trades with ``ColumnDataSource.stream(..., rollover)``: each shown
trade is one row at ``y`` = its running number, and the view's ``y_range`` shows the newest rows
at the top (scroll back with the mouse wheel or by dragging).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, CrosshairTool, Range1d

from tradeflow.model import TRADE_COLUMNS, Instrument

from .book_data import (HEADER_PX, column_headers, frame_of, newer, parts, price_text,
                        side_colors, size_text)
from .theme import figure, style, theme_of

__all__ = ["Tape", "tape_rows", "KEEP"]

KEEP = 20_000  # recent trades kept to filter again when min_size changes
ROW_PX = 18    # height of one row, pixels
COLUMNS = {"time": 0.03, "side": 0.36, "price": 0.66, "size": 0.97}  # x of each column's text


def tape_rows(trades: pd.DataFrame, instrument: Instrument, min_size: float = 0.0
              ) -> pd.DataFrame:
    """The rows a tape shows of ``trades`` (trade layout, time order): trades of at least
    ``min_size``, with their text in the instrument's zone and decimals: ``ts, price, size, side,
    time, price_text, size_text, side_text``."""
    shown = trades[trades["size"].to_numpy(float) >= min_size]
    local = pd.DatetimeIndex(shown["ts"]).tz_convert(instrument.session.timezone)
    side = shown["side"].to_numpy("int64")
    return pd.DataFrame({
        "ts": pd.DatetimeIndex(shown["ts"]), "price": shown["price"].to_numpy(float),
        "size": shown["size"].to_numpy(float), "side": side,
        "time": [t[:12] for t in local.strftime("%H:%M:%S.%f")],
        "price_text": price_text(shown["price"], instrument.tick_size),
        "size_text": size_text(shown["size"]),
        "side_text": np.where(side > 0, "buy", np.where(side < 0, "sell", "")),
    })


class Tape(pn.viewable.Viewer):
    """Time & sales of one instrument: ``load(trades)`` shows a frame (trade layout),
    ``apply(update)`` streams a live message's trades. Newest first; at most ``rows`` rows."""

    instrument = param.ClassSelector(class_=Instrument, doc="Tick size and time zone")
    theme = param.Selector(default="dark", objects=["dark", "light"])
    min_size = param.Number(default=0.0, bounds=(0, None),
                            doc="Big-trade filter: only trades of at least this size")
    rows = param.Integer(default=500, bounds=(10, 10_000), doc="Rows kept")
    follow = param.Boolean(default=True, doc="Live: keep the newest trade at the top")
    height = param.Integer(default=520, bounds=(100, 4000))
    width = param.Integer(default=320, bounds=(200, 2000))

    def __init__(self, trades=None, **params):
        super().__init__(**params)
        if self.instrument is None:
            raise ValueError("Tape: give the instrument (tick size and time zone)")
        self.source = ColumnDataSource({name: [] for name in (
            "y", "time", "price_text", "size_text", "side_text", "size", "side", "color", "bar")})
        self.y_range = Range1d(-0.5, 0.5)
        theme = theme_of(self.theme)
        fig = figure(theme, height=self.height - HEADER_PX, width=self.width, x_range=Range1d(0, 1),
                     y_range=self.y_range, tools="ypan,ywheel_pan,reset,save",
                     active_drag="ypan", active_scroll="ywheel_pan", sizing_mode="fixed",
                     toolbar_location=None)
        fig.tools = [t for t in fig.tools if not isinstance(t, CrosshairTool)]  # rows, not axes
        fig.axis.visible = False
        fig.grid.visible = False
        fig.min_border_left = fig.min_border_right = 4
        fig.min_border_top = fig.min_border_bottom = 2
        # the size bar: a trade's size against the big ones (behind the text)
        self._bars = fig.hbar(y="y", left="bar", right=1.0, height=0.86, source=self.source,
                              fill_color="color", fill_alpha=0.18, line_alpha=0)
        self._texts = {}
        for name, x in COLUMNS.items():
            field = {"time": "time", "side": "side_text", "price": "price_text",
                     "size": "size_text"}[name]
            align = "left" if name in ("time", "side") else "right"
            self._texts[name] = fig.text(
                x=x, y="y", text=field, source=self.source, text_align=align,
                text_baseline="middle", text_font_size="9pt",
                text_color="color" if name != "time" else theme.muted)
        self.header = pn.pane.HTML(self._header_html(), margin=0)
        self.fig = fig
        self._count = 0  # rows ever shown (the next row's y)
        self._recent = frame_of(None, TRADE_COLUMNS[:4], "tape trades")
        self._big = 1.0
        self.load(trades)

    def load(self, trades=None) -> None:
        """Show the frame's trades (the newest ``rows`` of those passing ``min_size``)."""
        trades = frame_of(trades, TRADE_COLUMNS[:4], "tape trades")
        self._recent = trades.iloc[-KEEP:].reset_index(drop=True)
        self._until = trades["ts"].max() if len(trades) else None  # the last trade shown
        # bars reach full width at the 99th percentile of sizes: the big prints stand out
        self._big = float(np.quantile(self._recent["size"], 0.99)) if len(self._recent) else 1.0
        self._refill()

    def apply(self, update) -> None:
        """Stream the trades of a live message that pass the filter (the oldest rows roll
        over); of a hub ``Snapshot`` (the latest trades), those after the last shown."""
        p = parts(update)
        trades = newer(p.trades, self._until) if p.snapshot else p.trades
        if not len(trades):
            return
        self._recent = pd.concat([self._recent, trades], ignore_index=True).iloc[-KEEP:]
        self._until = trades["ts"].max()
        rows = tape_rows(trades, self.instrument, self.min_size).iloc[-self.rows:]
        if not len(rows):
            return
        top = self._count - 1
        self.source.stream(self._columns(rows), rollover=self.rows)
        if self.follow and self.y_range.end >= top + 0.5:
            self._scroll_to_newest()

    @property
    def shown(self) -> pd.DataFrame:
        """The rows shown, newest first: ``time, price, size, side`` as text and numbers."""
        data = self.source.data
        frame = pd.DataFrame({"time": data["time"], "price": data["price_text"],
                              "size": data["size"], "side": data["side"]})
        return frame.iloc[::-1].reset_index(drop=True)

    def _columns(self, rows: pd.DataFrame) -> dict:
        y = np.arange(self._count, self._count + len(rows), dtype="float64")
        self._count += len(rows)
        share = np.clip(rows["size"].to_numpy(float) / max(self._big, 1e-300), 0, 1)
        return {"y": y, "time": rows["time"].tolist(), "price_text": rows["price_text"].tolist(),
                "size_text": rows["size_text"].tolist(), "side_text": rows["side_text"].tolist(),
                "size": rows["size"].to_numpy(float), "side": rows["side"].to_numpy("int64"),
                "color": side_colors(rows["side"], theme_of(self.theme)),
                "bar": 1.0 - 0.45 * share}

    @param.depends("min_size", "rows", watch=True)
    def _refill(self) -> None:
        self._count = 0
        rows = tape_rows(self._recent, self.instrument, self.min_size).iloc[-self.rows:]
        self.source.data = self._columns(rows)
        self._scroll_to_newest()

    def _scroll_to_newest(self) -> None:
        visible = max((self.height - HEADER_PX - 4) // ROW_PX, 1)
        top = self._count - 0.5
        self.y_range.update(start=top - visible, end=top)

    @param.depends("theme", watch=True)
    def _restyle(self) -> None:
        theme = theme_of(self.theme)
        style(self.fig, theme)
        self._texts["time"].glyph.text_color = theme.muted
        self.header.object = self._header_html()
        data = dict(self.source.data)
        data["color"] = side_colors(data["side"], theme)
        self.source.data = data

    def _header_html(self) -> str:
        return column_headers({name: (x, "left" if name in ("time", "side") else "right")
                               for name, x in COLUMNS.items()}, theme_of(self.theme), self.width)

    def __panel__(self):
        return pn.Column(self.header, pn.pane.Bokeh(self.fig, width=self.width,
                                                     height=self.height - HEADER_PX, margin=0),
                         margin=(5, 10))
