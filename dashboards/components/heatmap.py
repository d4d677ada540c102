"""The order-book heatmap: resting size by time and price (Bookmap's picture), with the trades
as bubbles, liquidations marked and the best bid / best ask lines.

Unlike the bar-based views, this view's x is TRUE time: a datetime axis reading the
instrument's own wall clock (``axes.local_ms``), because resting liquidity is a function of time,
not of bars. It does not share the bar charts' ``x_range``; it may share ``y_range`` (price) with
them and with the DOM ladder.

The depth grid (:func:`indicators.orderflow.book.heatmap_grid`) is held as an
``xarray.DataArray`` (dims ``time`` x ``price``, :attr:`BookHeatmap.grid`) and rendered to one
``image_rgba`` for the range in view, again whenever a pan or zoom ends (Bokeh's
``RangesUpdate``, sent once per gesture) and after live updates: the cells in view, one pixel a
cell or, when there are more cells than pixels, the largest size of each pixel's cells
(:func:`max_pool`), shaded by Datashader (``tf.shade``). Datashader's own resampling
(``Canvas.raster``) was the first choice; its numba kernels compile for 5-10 s in each new
process here, for a reduction numpy does in milliseconds.
"""
from __future__ import annotations

import datashader.transfer_functions as tf
import numpy as np
import pandas as pd
import panel as pn
import param
import xarray as xr
from bokeh.core.property.descriptors import UnsetValueError
from bokeh.events import RangesUpdate
from bokeh.models import ColumnDataSource, DatetimeTickFormatter, HoverTool, Range1d

from indicators.orderflow import LiveHeatmap
from indicators.orderflow.book import heatmap_grid, interval_ns
from tradeflow.model import (DEPTH_COLUMNS, LIQUIDATION_COLUMNS, TRADE_COLUMNS, DepthUpdate,
                             Instrument, ns_to_utc)

from . import axes
from .book_data import best_of, frame_of, last_snapshot, newer, parts, side_colors
from .colour_scales import robust_max
from .theme import figure, style, theme_of

__all__ = ["BookHeatmap", "DepthGrid", "best_quotes", "trade_bubbles", "bubble_sizes",
           "heat_colors", "max_pool", "MAX_CELLS"]

MAX_CELLS = 20_000_000  # time x price cells held (160 MB of float64); live: the oldest go first
MS = 1_000_000  # nanoseconds in a millisecond
BUBBLE_ROWS = 200_000  # live: the oldest bubbles go beyond this


def heat_colors(theme) -> list[str]:
    """The colour ramp of resting size, from nothing (the background) to the cap."""
    # blue -> violet -> amber: no green or red, which mean buying and selling here
    return [theme.background, theme.accent, theme.palette[2], theme.poc]


class DepthGrid:
    """The heatmap grid as a dense time x price array that grows at its end.

    Time buckets are every ``interval`` from the first one (epoch-aligned, as ``heatmap_grid``):
    a bucket without a snapshot is NaN (no data, drawn blank), so gaps stay gaps in true time.
    Price rows are every ``tick_rows`` ticks, keyed by their lowest tick. ``put(rows)`` takes
    rows of ``heatmap_grid`` (``ts, tick, bid_size, ask_size``): each bucket present is replaced
    whole by its rows (that is how ``LiveHeatmap`` reports the bucket in progress)."""

    def __init__(self, instrument: Instrument, interval="1s", tick_rows: int = 1,
                 max_cells: int = MAX_CELLS):
        self.instrument = instrument
        self.step = interval_ns(interval, "heatmap")
        self.interval = interval
        self.tick_rows = int(tick_rows)
        self.max_cells = int(max_cells)
        self.t0: int | None = None      # ns of the first bucket held
        self.k0 = 0                     # lowest row key held
        self.n_t = 0                    # buckets filled
        self.values = np.empty((0, 0))  # (time capacity, rows)

    @property
    def ticks(self) -> np.ndarray:
        return self.k0 + self.tick_rows * np.arange(self.values.shape[1], dtype="int64")

    @property
    def times(self) -> np.ndarray:
        """Bucket starts, epoch ns (UTC)."""
        return (self.t0 or 0) + self.step * np.arange(self.n_t, dtype="int64")

    def put(self, rows: pd.DataFrame, trim: bool = True) -> None:
        if not len(rows):
            return
        t = pd.DatetimeIndex(rows["ts"]).as_unit("ns").asi8
        k = rows["tick"].to_numpy(dtype="int64")
        if self.t0 is None:
            self.t0 = int(t.min())
        if t.min() < self.t0:
            raise ValueError(f"heatmap: depth at {ns_to_utc(t.min())} is "
                             f"before the first bucket held; load older depth with load()")
        self._cover_ticks(int(k.min()), int(k.max()))
        ti = (t - self.t0) // self.step
        need = int(ti.max()) + 1
        if need * self.values.shape[1] > self.max_cells:
            if not trim:
                raise ValueError(
                    f"heatmap: {need} time buckets x {self.values.shape[1]} price rows is more "
                    f"than {self.max_cells:,} cells; load a shorter time range or choose a longer "
                    f"interval or more tick_rows")
            self._drop_oldest(need - self.max_cells // max(self.values.shape[1], 1))
            ti = (t - self.t0) // self.step
            need = int(ti.max()) + 1
        self._cover_times(need)
        ki = (k - self.k0) // self.tick_rows
        self.values[np.unique(ti)] = 0.0  # a bucket given is replaced whole
        np.add.at(self.values, (ti, ki), rows["bid_size"].to_numpy(dtype="float64")
                  + rows["ask_size"].to_numpy(dtype="float64"))
        self.n_t = max(self.n_t, need)

    def array(self) -> xr.DataArray:
        """The grid now: ``time`` (bucket starts, UTC, naive ``datetime64[ns]``) x ``price``
        (each row's lowest price), the resting size of both sides; coordinate ``tick`` (the row
        key) along ``price``. A view of the buffer, not a copy."""
        return xr.DataArray(
            self.values[:self.n_t], dims=("time", "price"), name="size",
            coords={"time": self.times.view("datetime64[ns]"),
                    "price": self.instrument.to_price(self.ticks),
                    "tick": ("price", self.ticks)},
            attrs={"interval": str(self.interval), "tick_rows": self.tick_rows,
                   "tick_size": self.instrument.tick_size, "timezone": "UTC"})

    def _cover_ticks(self, lo: int, hi: int) -> None:
        lo = lo // self.tick_rows * self.tick_rows
        n = self.values.shape[1]
        if n and lo >= self.k0 and hi < self.k0 + n * self.tick_rows:
            return
        # room for the price to wander before the next copy: a quarter of the width, so a
        # trending market copies the buffer a logarithmic number of times
        margin = max(16, n // 4) * self.tick_rows
        new_lo = lo - margin if not n else min(lo - margin, self.k0)
        new_hi = hi + margin if not n else max(hi + margin, self.k0 + (n - 1) * self.tick_rows)
        width = (new_hi - new_lo) // self.tick_rows + 1
        values = np.full((self.values.shape[0], width), np.nan)
        if n:
            at = (self.k0 - new_lo) // self.tick_rows
            values[:, at:at + n] = self.values
            values[:self.n_t, :at] = np.where(np.isnan(self.values[:self.n_t, :1]), np.nan, 0.0)
            values[:self.n_t, at + n:] = np.where(np.isnan(self.values[:self.n_t, :1]), np.nan,
                                                  0.0)
        self.values, self.k0 = values, new_lo

    def _cover_times(self, need: int) -> None:
        if need <= self.values.shape[0]:
            return
        capacity = max(need, 2 * self.values.shape[0], 64)
        values = np.full((capacity, self.values.shape[1]), np.nan)
        values[:self.n_t] = self.values[:self.n_t]
        self.values = values

    def _drop_oldest(self, n: int) -> None:
        n = min(max(n, self.n_t // 4), self.n_t)  # drop a quarter at least: fewer copies
        self.values[:self.n_t - n] = self.values[n:self.n_t].copy()
        self.values[self.n_t - n:] = np.nan
        self.n_t -= n
        self.t0 += n * self.step


def max_pool(values: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``values`` (2-D) reduced to ``rows`` x ``columns`` (at most its own shape) by the
    largest value of each block of cells, NaN where a block has none; blocks are as even as
    whole cells allow."""
    rows, columns = max(min(rows, values.shape[0]), 1), max(min(columns, values.shape[1]), 1)
    if values.size == 0:
        return np.full((rows, columns), np.nan)
    with np.errstate(invalid="ignore"):
        out = values
        if columns < values.shape[1]:
            starts = np.linspace(0, values.shape[1], columns + 1).astype(int)[:-1]
            out = np.fmax.reduceat(out, starts, axis=1)
        if rows < values.shape[0]:
            starts = np.linspace(0, values.shape[0], rows + 1).astype(int)[:-1]
            out = np.fmax.reduceat(out, starts, axis=0)
    return out


def best_quotes(depth: pd.DataFrame) -> pd.DataFrame:
    """Best bid and best ask (ticks; -1 where a side is empty) of each snapshot of a depth
    frame: ``ts, bid, ask``."""
    if not len(depth):
        return pd.DataFrame({"ts": pd.DatetimeIndex([], dtype="datetime64[ns, UTC]"),
                             "bid": np.empty(0, "int64"), "ask": np.empty(0, "int64")})
    by = depth.groupby(["ts", "side"])["tick"]
    best = pd.concat([by.max().xs(-1, level="side").rename("bid"),
                      by.min().xs(1, level="side").rename("ask")], axis=1)
    best = best.reindex(pd.DatetimeIndex(depth["ts"].unique())).fillna(-1).astype("int64")
    return best.rename_axis("ts").reset_index()


def trade_bubbles(trades: pd.DataFrame, step_ns: int) -> pd.DataFrame:
    """Trades summed per time bucket of ``step_ns``, price and aggressor side: ``bucket`` (epoch
    ns), ``price``, ``side``, ``volume``, ``trades``; sorted by bucket, price, side."""
    bucket = pd.DatetimeIndex(trades["ts"]).as_unit("ns").asi8 // step_ns * step_ns
    price = trades["price"].to_numpy(float)
    side = trades["side"].to_numpy("int64")
    order = np.lexsort((side, price, bucket))
    bucket, price, side = bucket[order], price[order], side[order]
    volume = trades["size"].to_numpy(float)[order]
    # (numpy rather than a pandas groupby: a live batch is a few trades, pandas costs ~10 ms)
    first = np.flatnonzero(np.r_[True, (bucket[1:] != bucket[:-1]) | (price[1:] != price[:-1])
                                 | (side[1:] != side[:-1])]) if len(order) else order
    return pd.DataFrame({"bucket": bucket[first], "price": price[first], "side": side[first],
                         "volume": np.add.reduceat(volume, first) if len(first) else volume,
                         "trades": np.diff(np.r_[first, len(order)]).astype("int64")})


def bubble_sizes(volume, reference: float, smallest: float = 4.0, largest: float = 30.0
                 ) -> np.ndarray:
    """Bubble diameters in pixels: the area grows with the volume (diameter ~ sqrt) from
    ``smallest`` up to ``largest`` at ``reference`` volume and above."""
    share = np.clip(np.asarray(volume, float) / max(float(reference), 1e-300), 0.0, 1.0)
    return smallest + (largest - smallest) * np.sqrt(share)


class BookHeatmap(pn.viewable.Viewer):
    """Order-book heatmap of one instrument: ``load(depth, trades, liquidations)`` draws frames
    (``tradeflow.model`` depth, trade and liquidation layouts); ``apply(update)`` follows live
    messages (their ``DepthUpdate`` s, trades and liquidations).

    The x axis is TRUE time (a datetime axis in the instrument's time zone), not bar numbers.
    """

    instrument = param.ClassSelector(class_=Instrument, doc="Tick size and time zone")
    theme = param.Selector(default="dark", objects=["dark", "light"])
    interval = param.Selector(default="1s", objects=["250ms", "500ms", "1s", "5s", "15s", "1min"],
                              doc="Time bucket of the grid")
    tick_rows = param.Integer(default=1, bounds=(1, 1000), doc="Ticks per price row")
    how = param.Selector(default="last", objects=["last", "mean", "max"],
                         doc="Size of a bucket: its last snapshot, the mean or the largest")
    cap_quantile = param.Number(
        default=0.97, bounds=(0.5, 1.0),
        doc="The colour scale tops out at this quantile of the sizes of the time in view, so "
            "one huge level does not wash out the rest")
    bubbles = param.Boolean(default=True, doc="Trades as bubbles sized by volume")
    max_bubble = param.Integer(default=30, bounds=(6, 80), doc="Largest bubble, pixels")
    follow = param.Boolean(default=True, doc="Live: keep the newest time in view")
    first_view = param.Number(
        default=300, bounds=(10, None),
        doc="Seconds of the newest depth in view at first (zoom out for the rest): over a longer "
            "time the price range is too wide for the book's levels to be seen")
    study = param.String(default="heatmap",
                         doc="The label the hub subscription asked the heatmap study by")
    height = param.Integer(default=520, bounds=(150, 4000))

    def __init__(self, depth=None, trades=None, liquidations=None, *, x_range=None,
                 y_range=None, crosshair=None, **params):
        super().__init__(**params)
        if self.instrument is None:
            raise ValueError("BookHeatmap: give the instrument (tick size and time zone)")
        self.x_range = x_range or Range1d(0, 1)
        self.y_range = y_range or Range1d(0, 1)
        self.fig = figure(theme_of(self.theme), height=self.height, x_range=self.x_range,
                          y_range=self.y_range, crosshair=crosshair, x_axis_type="datetime",
                          tools="pan,wheel_zoom,box_zoom,reset,save", active_drag="pan",
                          active_scroll="wheel_zoom")
        self.fig.xaxis.formatter = DatetimeTickFormatter(
            milliseconds="%H:%M:%S.%3N", seconds="%H:%M:%S", minsec="%H:%M:%S",
            minutes="%H:%M", hourmin="%H:%M", hours="%H:%M", days="%d %b", months="%b %Y")
        self.fig.xaxis.axis_label = f"time ({self.instrument.session.timezone})"
        self.fig.yaxis.formatter = axes.price_formatter(self.instrument.tick_size)
        self.fig.yaxis.ticker = axes.price_ticker(self.instrument.tick_size)
        self.image_source = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []},
                                             name="heatmap-image")
        self.best_source = ColumnDataSource({"x": [], "bid": [], "ask": []})
        self.bubble_source = ColumnDataSource(
            {"x": [], "price": [], "volume": [], "trades": [], "side": [], "size": [],
             "color": []})
        self.liquidation_source = ColumnDataSource(
            {"x": [], "price": [], "size": [], "side": [], "marker": []})
        self._offset_ms = None
        self._rendered_end, self._buckets_per_px = None, 1  # (the last render's)
        self._glyphs()
        self.fig.on_event(RangesUpdate, lambda event: self.render())
        self.load(depth, trades, liquidations)

    # ---- data ------------------------------------------------------------------------------
    @property
    def grid(self) -> xr.DataArray:
        """The depth grid (``time`` x ``price``, resting size of both sides) as drawn."""
        return self._grid.array()

    def load(self, depth=None, trades=None, liquidations=None) -> None:
        """Draw whole frames: ``depth`` snapshots (depth layout), ``trades``, ``liquidations``.
        The book of the last snapshot is where live depth updates continue from."""
        depth = frame_of(depth, DEPTH_COLUMNS, "heatmap depth")
        trades = frame_of(trades, TRADE_COLUMNS[:4], "heatmap trades")
        liqs = frame_of(liquidations, LIQUIDATION_COLUMNS, "heatmap liquidations")
        self._loaded = (depth, trades, liqs)
        self._offset_ms = None  # (set by the first time drawn: see _x)
        self._live = LiveHeatmap(self.instrument.tick_size, self.interval, self.tick_rows,
                                 self.how)
        snap = last_snapshot(depth)
        if len(snap):
            self._live.apply(DepthUpdate(snap, snapshot=True))
        self._grid = DepthGrid(self.instrument, self.interval, self.tick_rows)
        self._grid.put(heatmap_grid(depth, self.interval, self.tick_rows, self.how), trim=False)
        best = best_quotes(depth)
        self.best_source.data = self._best_columns(best)
        bubbles = trade_bubbles(trades, self._grid.step)
        # the largest bubble is the 99th percentile of the loaded volumes: a few giant prints
        # must not shrink every other bubble to a dot
        self._bubble_ref = float(np.quantile(bubbles["volume"], 0.99)) if len(bubbles) else None
        self.bubble_source.data = self._bubble_columns(bubbles)
        self._tail, self._tail_bucket = {}, None
        if len(bubbles):
            self._tail_bucket = bubbles["bucket"].max()
            self._tail_add(bubbles[bubbles["bucket"] == self._tail_bucket])
        self.liquidation_source.data = self._liquidation_columns(liqs)
        self._liq_legend()
        # what is shown goes up to these times (a hub Snapshot adds what is newer)
        self._trades_until = trades["ts"].max() if len(trades) else None
        self._liqs_until = liqs["ts"].max() if len(liqs) else None
        self._best_until = best["ts"].max() if len(best) else None
        self._fit()
        self.render()

    def apply(self, update) -> None:
        """Follow a live message: the heatmap study's rows (or depth updates, through a
        ``LiveHeatmap`` of this view's own) replace the grid's buckets they cover, the best
        bid/ask lines are streamed, trades streamed as bubbles (the current bucket's bubbles
        patched), liquidations streamed; then the image is rendered again. A hub ``Snapshot``
        (the first message of a subscription, or after a resync) adds what is newer than what
        is shown: its grid's buckets, and the trades, liquidations and book after the last
        shown, so history loaded before it stays."""
        p = parts(update, self.study)
        before = self._data_end()
        trades, liqs, book = p.trades, p.liquidations, p.book
        if p.snapshot:
            trades, liqs = newer(trades, self._trades_until), newer(liqs, self._liqs_until)
            if book is not None and len(newer(book, self._best_until)) == 0:
                book = None
            if isinstance(p.heatmap, pd.DataFrame) and len(p.heatmap):
                rows = p.heatmap
                if self._grid.t0 is not None:  # (older buckets than those held stay out)
                    rows = rows[pd.DatetimeIndex(rows["ts"]).asi8 >= self._grid.t0]
                self._grid.put(rows)
        elif p.heatmap is not None:
            self._grid.put(p.heatmap.rows)
        best = []
        for u in p.depth:
            changes = self._live.apply(u)["heatmap"]
            self._grid.put(changes.rows)
            if len(u.levels):
                best.append(self._best_frame(self._live.book.levels(ts=u.levels["ts"].max())))
        if book is not None and len(book):
            best.append(self._best_frame(book))
        if best:
            best = pd.concat(best, ignore_index=True)
            self.best_source.stream(self._best_columns(best))
            self._best_until = best["ts"].max()
        if len(trades):
            self._stream_bubbles(trade_bubbles(trades, self._grid.step))
            self._trades_until = trades["ts"].max()
        if len(liqs):
            self.liquidation_source.stream(self._liquidation_columns(liqs))
            self._liqs_until = liqs["ts"].max()
            self._liq_legend()
        if before is None:
            self._fit()
        elif self.follow:
            self._follow(before)
        # The image again once the buckets past the last render fill a pixel column (one bucket
        # when zoomed in): a live update in the bucket in progress sends no image, and the
        # bucket is drawn whole when the next one begins.
        end = self._grid_end()
        if (p.snapshot or before is None or self._rendered_end is None or end is None
                or end - self._rendered_end >= self._buckets_per_px * self._grid.step):
            self.render()

    @property
    def study_settings(self) -> dict:
        """The hub subscription's ``studies`` entry that gives this view's grid:
        ``{study: {"interval_seconds", "rows", "how"}}`` (the catalogue's ``heatmap``)."""
        return {self.study: {"interval_seconds": pd.Timedelta(self.interval).total_seconds(),
                             "rows": self.tick_rows, "how": self.how}}

    @staticmethod
    def _best_frame(book: pd.DataFrame | None) -> pd.DataFrame:
        """The best bid/ask of a book's levels as one row of :func:`best_quotes`."""
        if book is None or not len(book):
            return best_quotes(frame_of(None, DEPTH_COLUMNS, "book"))
        bid, ask = best_of(book)
        return pd.DataFrame({"ts": [book["ts"].max()], "bid": [bid], "ask": [ask]})

    def _liq_legend(self) -> None:
        """The liquidation legend entry only once there is one to see."""
        for item in self.fig.legend.items:
            if self._liqs in item.renderers:
                item.visible = len(self.liquidation_source.data["x"]) > 0

    # ---- drawing ---------------------------------------------------------------------------
    def _x(self, ts) -> np.ndarray:
        """x of UTC times: milliseconds of the instrument zone's wall clock, at the zone's UTC
        offset of the first time this view drew. One offset for everything, so the image (a
        regular grid) and the glyphs stay aligned across a daylight-saving change (the labels
        after it are then an hour off until the view is loaded again)."""
        utc = pd.DatetimeIndex(ts)
        utc = utc.tz_localize("UTC") if utc.tz is None else utc.tz_convert("UTC")
        ms = utc.as_unit("ms").asi8.astype("float64")
        if self._offset_ms is None and len(utc):
            self._offset_ms = float(axes.local_ms(utc[:1], self.instrument.session.timezone)[0]
                                    - ms[0])
        return ms + (self._offset_ms or 0.0)

    def _best_columns(self, best: pd.DataFrame) -> dict:
        bid = best["bid"].to_numpy("int64")
        ask = best["ask"].to_numpy("int64")
        return {"x": self._x(best["ts"]),
                "bid": np.where(bid >= 0, self.instrument.to_price(bid), np.nan),
                "ask": np.where(ask >= 0, self.instrument.to_price(ask), np.nan)}

    def _bubble_columns(self, bubbles: pd.DataFrame) -> dict:
        if self._bubble_ref is None and len(bubbles):
            self._bubble_ref = float(np.quantile(bubbles["volume"], 0.99))
        half = self._grid.step // 2
        return {"x": self._x(pd.to_datetime(bubbles["bucket"].to_numpy() + half, utc=True)),
                # copies: Bokeh patches the arrays in place, pandas hands out read-only views
                "price": np.array(bubbles["price"], dtype=float),
                "volume": np.array(bubbles["volume"], dtype=float),
                "trades": np.array(bubbles["trades"], dtype="int64"),
                "side": np.array(bubbles["side"], dtype="int64"),
                "size": bubble_sizes(bubbles["volume"], self._bubble_ref or 1.0,
                                     largest=self.max_bubble),
                "color": side_colors(bubbles["side"], theme_of(self.theme))}

    def _stream_bubbles(self, new: pd.DataFrame) -> None:
        """Bubbles of the bucket shown last grow in place (patched); new ones are streamed.
        The last bucket's bubbles are always the source's last rows: ``self._tail`` maps each
        one's ``(price, side)`` to ``[row among them, volume, trades]``."""
        bucket = new["bucket"].to_numpy()
        if self._tail and len(new):
            same = bucket == self._tail_bucket
            if same.any():
                first = len(self.bubble_source.data["x"]) - len(self._tail)
                grown, added = [], []
                for i in np.flatnonzero(same).tolist():
                    row = self._tail.get((new["price"].iat[i], new["side"].iat[i]))
                    if row is None:
                        added.append(i)
                    else:
                        row[1] += new["volume"].iat[i]
                        row[2] += int(new["trades"].iat[i])
                        grown.append(row)
                if grown:
                    where = [first + row[0] for row in grown]
                    volume = np.array([row[1] for row in grown])
                    sizes = bubble_sizes(volume, self._bubble_ref or 1.0,
                                         largest=self.max_bubble)
                    self.bubble_source.patch({
                        "volume": list(zip(where, volume.tolist())),
                        "trades": list(zip(where, [row[2] for row in grown])),
                        "size": list(zip(where, sizes.tolist()))})
                if added:
                    more = new.iloc[added]
                    self.bubble_source.stream(self._bubble_columns(more), BUBBLE_ROWS)
                    self._tail_add(more)
                new, bucket = new[~same], bucket[~same]
        if len(new):
            self.bubble_source.stream(self._bubble_columns(new), BUBBLE_ROWS)
            self._tail, self._tail_bucket = {}, bucket.max()
            self._tail_add(new[bucket == bucket.max()])

    def _tail_add(self, rows: pd.DataFrame) -> None:
        for price, side, volume, trades in zip(rows["price"].tolist(), rows["side"].tolist(),
                                               rows["volume"].tolist(), rows["trades"].tolist()):
            self._tail[(price, side)] = [len(self._tail), volume, trades]

    def _liquidation_columns(self, liqs: pd.DataFrame) -> dict:
        side = liqs["side"].to_numpy("int64")
        # a forced sell (a long liquidated) points down, a forced buy up
        return {"x": self._x(liqs["ts"]), "price": liqs["price"].to_numpy(float),
                "size": liqs["size"].to_numpy(float), "side": side,
                "marker": np.where(side < 0, "inverted_triangle", "triangle")}

    def _glyphs(self) -> None:
        theme = theme_of(self.theme)
        fig = self.fig
        self._image = fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh",
                                     source=self.image_source)
        self._bubbles = fig.scatter("x", "price", size="size", source=self.bubble_source,
                                    fill_color="color", line_color="color", fill_alpha=0.45,
                                    line_alpha=0.9, visible=self.bubbles)
        # the best bid / ask over the bubbles, which would hide them
        self._bid_line = fig.step("x", "bid", source=self.best_source, mode="after",
                                  line_width=1.5, color=theme.up, legend_label="best bid")
        self._ask_line = fig.step("x", "ask", source=self.best_source, mode="after",
                                  line_width=1.5, color=theme.down, legend_label="best ask")
        self._liqs = fig.scatter("x", "price", marker="marker", size=16,
                                 source=self.liquidation_source, fill_color=theme.text,
                                 line_color=theme.background, line_width=1.5,
                                 legend_label="liquidation")
        fig.add_tools(HoverTool(renderers=[self._bubbles], tooltips=[
            ("time", "@x{%H:%M:%S}"), ("price", "@price"), ("volume", "@volume{0,0.[000]}"),
            ("trades", "@trades")], formatters={"@x": "datetime"}))
        fig.legend.location = "top_left"
        fig.legend.orientation = "horizontal"
        fig.legend.label_text_font_size = "8pt"
        style(fig, theme)

    @param.depends("theme", watch=True)
    def _restyle(self) -> None:
        theme = theme_of(self.theme)
        style(self.fig, theme)
        self._bid_line.glyph.line_color = theme.up
        self._ask_line.glyph.line_color = theme.down
        # (the text colour: amber, the heat's top, would hide them in a wall)
        self._liqs.glyph.fill_color = theme.text
        self._liqs.glyph.line_color = theme.background
        data = dict(self.bubble_source.data)
        data["color"] = side_colors(data["side"], theme)
        self.bubble_source.data = data
        self.render()

    @param.depends("bubbles", watch=True)
    def _show_bubbles(self) -> None:
        self._bubbles.visible = self.bubbles

    @param.depends("max_bubble", watch=True)
    def _resize_bubbles(self) -> None:
        data = dict(self.bubble_source.data)
        data["size"] = bubble_sizes(data["volume"], self._bubble_ref or 1.0,
                                    largest=self.max_bubble)
        self.bubble_source.data = data

    @param.depends("interval", "tick_rows", "how", watch=True)
    def _regrid(self) -> None:
        """A new grid setting redraws the frames last loaded (a live desk loads again)."""
        self.load(*self._loaded)

    def _data_end(self) -> float | None:
        """x (local ms) of the end of the newest bucket held, or None."""
        if not self._grid.n_t:
            return None
        return float(self._x(pd.to_datetime([self._grid.times[-1] + self._grid.step],
                                            utc=True))[0])

    def _fit(self) -> None:
        """The newest ``first_view`` seconds of the grid in view, and the prices with depth in
        them (a shared range is left alone when there is nothing)."""
        grid = self._grid
        if not grid.n_t:
            return
        first = max(0, grid.n_t - int(np.ceil(self.first_view * 1e9 / grid.step)))
        start = float(self._x(pd.to_datetime([grid.times[first]], utc=True))[0])
        end = self._data_end()
        self.x_range.update(start=start, end=end + 0.02 * (end - start))
        have = ~np.isnan(grid.values[first:grid.n_t]) & (grid.values[first:grid.n_t] > 0)
        rows = np.flatnonzero(have.any(axis=0))
        if not len(rows):  # (an empty book throughout)
            return
        tick = self.instrument.tick_size
        lo = (grid.k0 - 0.5 + rows[0] * grid.tick_rows) * tick
        hi = (grid.k0 - 0.5 + (rows[-1] + 1) * grid.tick_rows) * tick
        self.y_range.update(start=lo - 2 * tick, end=hi + 2 * tick)

    def _follow(self, before: float) -> None:
        """Scroll with the data when the view was showing its end."""
        end = self._data_end()
        x0, x1 = self.x_range.start, self.x_range.end
        if end is None or end <= before or x1 < before:
            return
        shift = end - before
        self.x_range.update(start=x0 + shift, end=x1 + shift)

    def render(self) -> None:
        """Render the grid for the range in view (clipped to the data) with Datashader."""
        grid = self._grid
        if not grid.n_t or grid.values.shape[1] == 0:
            self._no_image()
            return
        tick = self.instrument.tick_size
        step_ms = grid.step / MS
        t_start = float(self._x(pd.to_datetime([grid.times[0]], utc=True))[0])
        # a row of ticks k..k+n-1 covers their prices: from half a tick under k's
        lo_price = (grid.k0 - 0.5) * tick
        row = grid.tick_rows * tick
        x0 = max(self.x_range.start, t_start)
        x1 = min(self.x_range.end, t_start + grid.n_t * step_ms)
        y0 = max(self.y_range.start, lo_price)
        y1 = min(self.y_range.end, lo_price + grid.values.shape[1] * row)
        if not (x1 > x0 and y1 > y0):
            self._no_image()
            return
        # the cells in view (a view of the buffer), by index
        i0, i1 = int((x0 - t_start) // step_ms), int(np.ceil((x1 - t_start) / step_ms))
        j0, j1 = int((y0 - lo_price) // row), int(np.ceil((y1 - lo_price) / row))
        cells = grid.values[i0:i1, j0:j1]
        # The image covers whole cells: one pixel a cell while the cells in view are fewer than
        # the plot's pixels (Bokeh scales images up unsmoothed, and a live update then sends a
        # small image), the largest size among each pixel's cells when there are more.
        width, height = self._canvas_size()
        agg = max_pool(cells.T, min(height, cells.shape[1]), min(width, cells.shape[0]))
        x0, x1 = t_start + i0 * step_ms, t_start + i1 * step_ms
        y0, y1 = lo_price + j0 * row, lo_price + j1 * row
        # the cap from the sizes of the time in view at every price: zooming into a few cells
        # keeps their colours
        sizes = grid.values[i0:i1]
        cap = robust_max(sizes[sizes > 0], self.cap_quantile)  # (levels present only)
        raster = xr.DataArray(np.where(agg > 0, agg, np.nan), dims=("price", "time"))
        image = tf.shade(raster, cmap=heat_colors(theme_of(self.theme)), how="linear",
                         span=(0.0, max(cap, 1e-12)))
        self.cap = cap
        self.image_source.data = {"image": [np.asarray(image.data)], "x": [x0], "y": [y0],
                                  "dw": [x1 - x0], "dh": [y1 - y0]}
        self._rendered_end = self._grid_end()
        self._buckets_per_px = -(-cells.shape[0] // agg.shape[1])

    def _no_image(self) -> None:
        self.image_source.data = {"image": [], "x": [], "y": [], "dw": [], "dh": []}
        self._rendered_end = None

    def _grid_end(self) -> int | None:
        """End (epoch ns) of the newest bucket held."""
        grid = self._grid
        return grid.t0 + grid.n_t * grid.step if grid.n_t else None

    def _canvas_size(self) -> tuple[int, int]:
        """The plot's inner size in pixels as the browser last reported it (a guess before)."""
        try:
            width, height = int(self.fig.inner_width), int(self.fig.inner_height)
        except UnsetValueError:  # not drawn yet
            width, height = 1000, self.height
        return width, height

    def __panel__(self):
        return pn.pane.Bokeh(self.fig, sizing_mode="stretch_width", height=self.height)
