"""The DOM ladder: the book around the best bid and ask as a price ladder -- bid size, price, ask
size with size bars, the session's traded volume at each price, the last trade's price
highlighted.

Rows are at y = price (one row per tick), so the ladder can share ``y_range`` with the price
chart or the heatmap. Sizes are the reconstructed book's top ``levels`` levels a side
(:class:`indicators.orderflow.book.OrderBook`); the ladder's rows reach a few ticks past them so
it is not rebuilt at every move of the best price: while the levels stay inside the rows, a live
update patches the columns that changed.
"""
from __future__ import annotations

import heapq

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d, Span

from indicators.orderflow.book import OrderBook
from tradeflow.model import DEPTH_COLUMNS, TRADE_COLUMNS, DepthUpdate, Instrument

from .book_data import (HEADER_PX, column_headers, frame_of, last_snapshot, newer, parts,
                        price_text, size_text)
from .theme import figure, style, theme_of

__all__ = ["DomLadder", "ladder_rows", "top_levels", "COLUMNS"]

COLUMNS = ("bid", "price", "ask", "volume")  # left to right; each one unit of x wide
MARGIN = 4  # rows past the levels shown, either way
ROW_PX = 18  # the least height of a row when the ladder has its own price range


def top_levels(book: OrderBook, levels: int) -> tuple[dict, dict]:
    """The book's best ``levels`` bids and asks, ``{tick: size}`` each."""
    bids = heapq.nlargest(levels, book.bids)
    asks = heapq.nsmallest(levels, book.asks)
    return {t: book.bids[t] for t in bids}, {t: book.asks[t] for t in asks}


def ladder_rows(bids: dict, asks: dict, low: int, high: int, volume: dict,
                last_tick: int | None) -> dict:
    """Ladder rows for ticks ``low..high`` (top first), as arrays: ``tick``, ``bid``, ``ask``
    (the sizes of the levels given, 0 elsewhere), ``volume`` traded at each tick, ``last``: the
    row of the last trade."""
    ticks = np.arange(high, low - 1, -1, dtype="int64")
    listed = ticks.tolist()
    return {"tick": ticks,
            "bid": np.array([bids.get(t, 0.0) for t in listed], dtype=float),
            "ask": np.array([asks.get(t, 0.0) for t in listed], dtype=float),
            "volume": np.array([volume.get(t, 0.0) for t in listed], dtype=float),
            "last": ticks == (last_tick if last_tick is not None else -1)}


class DomLadder(pn.viewable.Viewer):
    """The DOM ladder of one instrument: ``load(depth, trades)`` takes the book from the last
    snapshot of ``depth`` (depth layout) and the session's volume at price from ``trades``;
    ``apply(update)`` follows live depth updates and trades. ``y_range`` and ``crosshair``: pass
    a price chart's to align the ladder with it."""

    instrument = param.ClassSelector(class_=Instrument, doc="Tick size, time zone and session")
    theme = param.Selector(default="dark", objects=["dark", "light"])
    levels = param.Integer(default=10, bounds=(1, 100), doc="Book levels a side")
    height = param.Integer(default=520, bounds=(100, 4000))
    width = param.Integer(default=340, bounds=(200, 2000))

    def __init__(self, depth=None, trades=None, *, y_range=None, crosshair=None, **params):
        super().__init__(**params)
        if self.instrument is None:
            raise ValueError("DomLadder: give the instrument (tick size, time zone, session)")
        self.source = ColumnDataSource({name: [] for name in self._column_names()})
        self.last_source = ColumnDataSource({"y": [], "height": []})
        self._own_range = y_range is None
        self.y_range = y_range or Range1d(0, 1)
        self._build(crosshair)
        self.load(depth, trades)

    # ---- data ------------------------------------------------------------------------------
    def load(self, depth=None, trades=None) -> None:
        """The book of the last snapshot of ``depth``; the volume at each price of the trading
        day of the last of ``trades`` (earlier days' trades are left out)."""
        self.book = OrderBook(self.instrument.tick_size)
        snap = last_snapshot(frame_of(depth, DEPTH_COLUMNS, "ladder depth"))
        if len(snap):
            self.book.apply(DepthUpdate(snap, snapshot=True))
        self._volume: dict[int, float] = {}
        self._day = None
        self._last_tick = None
        self._until = None  # the last trade counted
        self._add_trades(frame_of(trades, TRADE_COLUMNS[:4], "ladder trades"))
        self._window = None
        self._redraw()

    def apply(self, update) -> None:
        """Follow a live message: the hub's ``book`` levels replace the book (or depth updates
        change it), its trades add to the volume at price and move the last trade; the ladder's
        changed columns are patched (rebuilt only when the levels leave its rows). Of a hub
        ``Snapshot``'s trades (the latest few) only those after the last one counted are added,
        so the session's volume loaded before stays right."""
        p = parts(update)
        if p.book is not None:
            book = OrderBook(self.instrument.tick_size)
            book.apply(DepthUpdate(p.book[list(DEPTH_COLUMNS)], snapshot=True))
            self.book = book
        for u in p.depth:
            self.book.apply(u)
        trades = newer(p.trades, self._until) if p.snapshot else p.trades
        self._add_trades(trades)
        if p.book is not None or p.depth or len(trades):
            self._redraw()

    @property
    def rows(self) -> pd.DataFrame:
        """The ladder shown, top row first: ``tick, price, bid, ask, volume, last``."""
        data = self.source.data
        return pd.DataFrame({"tick": data["tick"], "price": data["y"], "bid": data["bid"],
                             "ask": data["ask"], "volume": data["volume"],
                             "last": data["last"]})

    def _add_trades(self, trades: pd.DataFrame) -> None:
        if not len(trades):
            return
        days = self.instrument.session.trading_date(trades["ts"])
        newest = days[-1]
        if self._day is None or newest != self._day:  # a new session: its volume only
            self._volume, self._day = {}, newest
        today = trades[np.asarray(days == newest)]
        ticks = self.instrument.to_tick(today["price"].to_numpy(float))
        summed = pd.Series(today["size"].to_numpy(float)).groupby(ticks).sum()
        for tick, size in summed.items():
            self._volume[int(tick)] = self._volume.get(int(tick), 0.0) + float(size)
        self._last_tick = int(self.instrument.to_tick(trades["price"].iloc[-1]))
        self._until = trades["ts"].max()

    # ---- drawing ---------------------------------------------------------------------------
    def _redraw(self) -> None:
        bids, asks = top_levels(self.book, self.levels)
        ticks = [*bids, *asks] + ([self._last_tick] if self._last_tick is not None else [])
        if not ticks:
            self.source.data = {name: [] for name in self._column_names()}
            self.last_source.data = {"y": [], "height": []}
            return
        needed = min(ticks), max(ticks)  # the levels shown and the last trade
        window = self._window
        moved = window is None or needed[0] < window[0] or needed[1] > window[1]
        if moved:
            window = (needed[0] - MARGIN, needed[1] + MARGIN)
        columns = self._columns(ladder_rows(bids, asks, window[0], window[1], self._volume,
                                            self._last_tick))
        if moved:
            self._window = window
            self.source.data = columns
        if self._own_range:
            self._show_touch(bids, asks, window, moved)
        if not moved:  # same rows: patch the columns that changed
            changed = {name: [(slice(0, len(values)), values)]
                       for name, values in columns.items()
                       if not _same(self.source.data[name], values)}
            if changed:
                self.source.patch(changed)
        last = columns["y"][columns["last"]]
        self.last_source.data = {"y": list(last),
                                 "height": [self.instrument.tick_size] * len(last)}

    def _show_touch(self, bids: dict, asks: dict, window: tuple[int, int], moved: bool) -> None:
        """Its own price range: the rows that fit at :data:`ROW_PX` (all of the window when
        they do), centred on the touch; again when the touch leaves it."""
        tick = self.instrument.tick_size
        fit = max((self.height - HEADER_PX) // ROW_PX, 5)
        lo, hi = window
        if hi - lo + 1 > fit:
            touch = [max(bids)] if bids else []
            touch += [min(asks)] if asks else []
            centre = sum(touch) / len(touch) if touch else (lo + hi) / 2
            shown = (self.y_range.start / tick + 0.5, self.y_range.end / tick - 0.5)
            if not moved and shown[0] <= min(touch or [centre]) and max(touch or [centre]) \
                    <= shown[1] and shown[1] - shown[0] + 1 <= fit:
                return  # the touch is in view: the rows stay still
            lo = int(round(centre - fit / 2))
            hi = lo + fit - 1
        self.y_range.update(start=(lo - 0.5) * tick, end=(hi + 0.5) * tick)

    @staticmethod
    def _column_names():
        return ("tick", "y", "price_text", "bid", "ask", "volume", "last", "bid_text",
                "ask_text", "volume_text", "bid_left", "ask_right", "volume_right")

    def _columns(self, rows: dict) -> dict:
        bid, ask, vol = rows["bid"], rows["ask"], rows["volume"]
        book_max = max(bid.max(initial=0), ask.max(initial=0), 1e-300)
        prices = self.instrument.to_price(rows["tick"])

        def text(values):
            return [t if v > 0 else "" for t, v in zip(size_text(values), values.tolist())]
        return {"tick": rows["tick"], "y": np.asarray(prices, float),
                "price_text": price_text(prices, self.instrument.tick_size),
                "bid": bid, "ask": ask, "volume": vol, "last": rows["last"],
                "bid_text": text(bid), "ask_text": text(ask), "volume_text": text(vol),
                # bars: bids grow leftwards from the price column, asks and volume rightwards
                "bid_left": 1.0 - 0.96 * bid / book_max,
                "ask_right": 2.0 + 0.96 * ask / book_max,
                "volume_right": 3.0 + 0.96 * vol / max(vol.max(initial=0), 1e-300)}

    def _build(self, crosshair) -> None:
        theme = theme_of(self.theme)
        tick = self.instrument.tick_size
        fig = figure(theme, height=self.height - HEADER_PX, width=self.width,
                     x_range=Range1d(0, len(COLUMNS)),
                     y_range=self.y_range, tools="ypan,ywheel_zoom,reset,save",
                     active_drag="ypan", active_scroll="ywheel_zoom", sizing_mode="fixed",
                     toolbar_location=None, crosshair=crosshair)
        fig.xaxis.visible = False
        fig.yaxis.visible = False
        fig.xgrid.visible = False
        fig.ygrid.visible = False
        fig.min_border_left = fig.min_border_right = 4
        fig.min_border_top = fig.min_border_bottom = 2
        self._last = fig.rect(x=1.5, y="y", width=1.0, height="height", source=self.last_source,
                              fill_color=theme.accent, fill_alpha=0.45, line_alpha=0)
        self._bid_bars = fig.hbar(y="y", left="bid_left", right=1.0, height=0.8 * tick,
                                  source=self.source, fill_color=theme.up, fill_alpha=0.35,
                                  line_alpha=0)
        self._ask_bars = fig.hbar(y="y", left=2.0, right="ask_right", height=0.8 * tick,
                                  source=self.source, fill_color=theme.down, fill_alpha=0.35,
                                  line_alpha=0)
        self._volume_bars = fig.hbar(y="y", left=3.0, right="volume_right", height=0.8 * tick,
                                     source=self.source, fill_color=theme.neutral,
                                     fill_alpha=0.3, line_alpha=0)
        style_text = dict(source=self.source, text_baseline="middle", text_font_size="9pt")
        self._texts = {
            "bid": fig.text(x=0.95, y="y", text="bid_text", text_align="right",
                            text_color=theme.text, **style_text),
            "price": fig.text(x=1.5, y="y", text="price_text", text_align="center",
                              text_color=theme.text, **style_text),
            "ask": fig.text(x=2.05, y="y", text="ask_text", text_align="left",
                            text_color=theme.text, **style_text),
            "volume": fig.text(x=3.05, y="y", text="volume_text", text_align="left",
                               text_color=theme.muted, **style_text),
        }
        self._rules = [Span(dimension="height", location=x, line_color=theme.grid, line_width=1)
                       for x in (1.0, 2.0, 3.0)]
        for rule in self._rules:
            fig.add_layout(rule)
        self.header = pn.pane.HTML(self._header_html(), margin=0)
        self.fig = fig
        style(fig, theme)

    @param.depends("theme", watch=True)
    def _restyle(self) -> None:
        theme = theme_of(self.theme)
        style(self.fig, theme)
        self._last.glyph.fill_color = theme.accent
        self._bid_bars.glyph.fill_color = theme.up
        self._ask_bars.glyph.fill_color = theme.down
        self._volume_bars.glyph.fill_color = theme.neutral
        for name, glyph in self._texts.items():
            glyph.glyph.text_color = theme.muted if name == "volume" else theme.text
        for rule in self._rules:
            rule.line_color = theme.grid
        self.header.object = self._header_html()

    @param.depends("levels", watch=True)
    def _relevel(self) -> None:
        self._window = None
        self._redraw()

    def _header_html(self) -> str:
        return column_headers({name: ((i + 0.5) / len(COLUMNS), "center")
                               for i, name in enumerate(COLUMNS)}, theme_of(self.theme),
                              self.width)

    def __panel__(self):
        return pn.Column(self.header, pn.pane.Bokeh(self.fig, width=self.width,
                                                     height=self.height - HEADER_PX, margin=0),
                         margin=(5, 10))


def _same(shown, values) -> bool:
    shown = np.asarray(shown)
    values = np.asarray(values)
    return shown.shape == values.shape and bool((shown == values).all())
