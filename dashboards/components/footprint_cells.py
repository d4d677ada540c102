"""What a footprint chart draws, as plain columns: each bar's cells summed into rows of N ticks
(with their imbalance flags and per-bar profile lengths), the numbers written in them, and the
Datashader image of the cells in a range.

The studies come from ``indicators.orderflow`` (``group_ticks``, ``imbalances``); this module only
places their rows on the chart: x = the bar's number, y = the middle of the row's price span.
"""
from __future__ import annotations

import weakref

import datashader as ds
import datashader.transfer_functions as tf
import numpy as np
import pandas as pd
import xarray as xr

from indicators.frames import group_starts
from indicators.orderflow import (bar_poc, stacked_imbalances, unfinished_auctions,
                                  zero_prints)
from indicators.orderflow.imbalance import check_ratio, imbalance_flags, rows_summed
from tradeflow.model import Instrument

from .axes import T, X, local_ms

__all__ = ["CELL_LEFT", "CELL_RIGHT", "CELL_WIDTH", "CELL_MID", "CANDLE_X", "CELL_COLUMNS",
           "cell_columns", "open_ns", "bar_parts", "shared_parts", "forming_rows", "shifted",
           "format_size", "signed_size", "SIZE_NOISE", "cell_text", "cell_words", "label_room",
           "TEXT_COLUMNS", "TEXT_WORDS", "TEXT_LEFT", "TEXT_RIGHT", "empty_text", "raster"]

# a bar's slot is [x - 0.5, x + 0.5]: a thin candle on the left quarter, the cells beside it
CANDLE_X = -0.375
CELL_LEFT, CELL_RIGHT = -0.25, 0.48
CELL_WIDTH = CELL_RIGHT - CELL_LEFT
CELL_MID = (CELL_LEFT + CELL_RIGHT) / 2
LABEL_GAP = 0.12  # bid x ask: the numbers end (bid) and start (ask) this share of a cell off its middle

CELL_COLUMNS = ("x", "tick", "y", "volume", "ask", "bid", "delta", "delta_pct", "trades", "imb",
                "pw", "px", "pwidth", "state")


def cell_columns(cells: pd.DataFrame, bar_ts: np.ndarray, bar_x: np.ndarray,
                 instrument: Instrument, row_ticks: int, ratio: float, state) -> dict:
    """Source columns of ``cells`` (footprint layout) summed into rows of ``row_ticks`` ticks,
    matched to bars by open time (``bar_ts`` ns, ``bar_x`` their numbers); ordered by x, tick.

    ``imb``: +1 buy imbalance, -1 sell, 0 none (``imbalances``' rule at ``ratio``; a row can
    carry both: it is drawn as the larger side's). ``pw``: the row's share of its bar's largest
    row volume (the per-bar profile), ``px`` the profile bar's middle. ``state``: one for every
    row, or a function of the rows' ``x`` giving each its state.

    The rows and flags come from the studies' array forms (``rows_summed``,
    ``imbalance_flags``: the same sums and flags as ``group_ticks`` and ``imbalances``), not
    their frames: a live update's few cells cost pandas' overhead many times over their
    arithmetic, and this runs once per update on the server's loop."""
    t = open_ns(cells)
    sums = {c: cells[c].to_numpy(dtype="float64") for c in ("volume", "ask_volume", "bid_volume")}
    sums["trades"] = cells["trades"].to_numpy(dtype="int64")
    t, tick, sums = rows_summed(t, cells["tick"].to_numpy(dtype="int64"), sums, int(row_ticks))
    pos = np.searchsorted(bar_ts, t)
    if len(t) and (np.any(pos >= len(bar_ts)) or np.any(bar_ts[np.minimum(pos, len(bar_ts) - 1)] != t)):
        raise ValueError("footprint: some cells belong to no bar given (their ts is no bar's ts)")
    x = np.asarray(bar_x, dtype="int64")[pos] if len(t) else np.empty(0, "int64")
    volume, ask, bid = sums["volume"], sums["ask_volume"], sums["bid_volume"]
    delta = ask - bid
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(volume > 0, delta / np.where(volume > 0, volume, 1.0), 0.0)
    ratio, _ = check_ratio(ratio, 0.0)
    buy, sell, _, _ = imbalance_flags({"ts": t, "tick": tick, "ask_volume": ask,
                                       "bid_volume": bid}, int(row_ticks), ratio, 0.0, False)
    imb = np.where(buy & (~sell | (ask >= bid)), 1, np.where(sell, -1, 0)).astype("int64")
    if len(t):  # rows are ordered by bar: each bar's largest row by reduceat over its run
        first = group_starts(t)
        largest = np.maximum.reduceat(volume, np.flatnonzero(first))[np.cumsum(first) - 1]
        pw = np.where(largest > 0, volume / np.where(largest > 0, largest, 1.0), 0.0)
    else:
        pw = np.empty(0)
    size = instrument.tick_size
    states = state(x) if callable(state) else np.full(len(x), state, dtype=object)
    return {"x": x, "tick": tick, "y": (tick + (row_ticks - 1) / 2) * size,
            "volume": volume, "ask": ask, "bid": bid, "delta": delta, "delta_pct": pct,
            "trades": sums["trades"].astype("int64"), "imb": imb, "pw": pw,
            "px": x + CELL_LEFT + pw * CELL_WIDTH / 2, "pwidth": pw * CELL_WIDTH,
            "state": states}


def open_ns(frame: pd.DataFrame) -> np.ndarray:
    """A frame's ``ts`` column as int64 nanoseconds (UTC)."""
    return frame["ts"].array.as_unit("ns").asi8


def _none(*names) -> dict:
    return {n: np.empty(0, dtype=object if n == "side" else "float64") for n in names}


def bar_parts(bars: pd.DataFrame, cells: pd.DataFrame, instrument: Instrument, row_ticks: int,
              ratio: float, forming: bool) -> dict:
    """Everything drawn of ``bars`` (numbered 0, 1, ... here; shift them with :func:`shifted`)
    that depends on those bars alone: ``bars`` (per-bar columns but the CVD), ``days`` (their
    trading days, ``Session.trading_date`` as int64), ``cells``
    (:func:`cell_columns`; the last bar's ``state`` is ``forming`` when ``forming``), and the
    marks ``stacked``, ``zeros``, ``unfinished`` (column ``bar``: whose; ``x`` where drawn)."""
    size, rows = instrument.tick_size, row_ticks
    xs = np.arange(len(bars))
    bar_ts = open_ns(bars)
    n_closed = len(bars) - (1 if forming and len(bars) else 0)
    mine = cells
    if len(cells):  # (cells of no bar given are left out)
        known = np.isin(open_ns(cells), bar_ts)
        mine = cells if known.all() else cells[known]
    if len(mine):
        cols = cell_columns(mine, bar_ts, xs, instrument, rows, ratio, lambda x: np.where(
            x < n_closed, "closed", "forming").astype(object))
    else:
        cols = {c: np.empty(0, dtype=object if c == "state" else
                            ("int64" if c in ("x", "tick", "trades", "imb") else "float64"))
                for c in CELL_COLUMNS}
    mid = (rows - 1) / 2
    poc_y = np.full(len(bars), np.nan)
    open_, close = bars["open"].to_numpy(float), bars["close"].to_numpy(float)
    delta = bars["ask_volume"].to_numpy(float) - bars["bid_volume"].to_numpy(float)
    volume = bars["volume"].to_numpy(float)
    out = {"cells": cols, "days": instrument.session.trading_date(bars["ts"]).asi8,
           "stacked": _none("bar", "x", "bottom", "top", "side"),
           "zeros": _none("bar", "x", "y", "side"), "unfinished": _none("bar", "x", "y", "side")}
    if len(cells):
        def x_of(frame):  # the bar numbers of a study's rows (by their bar's open time)
            return np.searchsorted(bar_ts, open_ns(frame)).astype(float)
        poc = bar_poc(cells, rows)
        pos = pd.Index(open_ns(poc)).get_indexer(bar_ts)
        hit = pos >= 0
        poc_y[hit] = (poc["poc"].to_numpy()[pos[hit]] + mid) * size
        st = stacked_imbalances(cells, ratio=ratio, rows=rows)
        if len(st):
            bx = x_of(st)
            out["stacked"] = {"bar": bx, "x": bx, "bottom": st["tick_low"].to_numpy() * size,
                              "top": (st["tick_high"].to_numpy() + rows) * size,
                              "side": np.where(st["side"].to_numpy() > 0, "buy", "sell"
                                               ).astype(object)}
        zp = zero_prints(cells, bars, size, rows=rows)
        if len(zp):
            side = zp["missing_side"].to_numpy()
            bx = x_of(zp)
            shift = np.where(side == "bid", CELL_LEFT + 0.05,
                             np.where(side == "ask", CELL_RIGHT - 0.05, CELL_MID))
            out["zeros"] = {"bar": bx, "x": bx + shift, "y": (zp["tick"].to_numpy() + mid) * size,
                            "side": side.astype(object)}
        ua = unfinished_auctions(cells, rows=rows)
        if len(ua):
            hi, lo = ua["unfinished_high"].to_numpy(), ua["unfinished_low"].to_numpy()
            bx = x_of(ua)
            row = size * rows
            top = (ua["high_tick"].to_numpy() + mid) * size + row * 0.9
            bottom = (ua["low_tick"].to_numpy() + mid) * size - row * 0.9
            both = np.concatenate([bx[hi], bx[lo]])
            out["unfinished"] = {"bar": both, "x": both + CELL_MID,
                                 "y": np.concatenate([top[hi], bottom[lo]]),
                                 "side": np.array(["high"] * int(hi.sum()) + ["low"] * int(lo.sum()),
                                                  dtype=object)}
    out["bars"] = {X: xs, T: local_ms(bars["ts"], instrument.session.timezone).astype("float64"),
                   "open": open_, "high": bars["high"].to_numpy(float),
                   "low": bars["low"].to_numpy(float), "close": close,
                   "dir": np.where(close >= open_, "up", "down").astype(object),
                   "volume": volume, "delta": delta, "poc_y": poc_y,
                   "vol_text": np.array([format_size(v) for v in volume], dtype=object),
                   "delta_text": np.array([signed_size(v) for v in delta], dtype=object),
                   "delta_dir": np.where(delta > -SIZE_NOISE, "up", "down").astype(object)}
    return out


_SHARED: dict = {}  # ids of an update's frames -> (weak references to them, {settings: parts})
_FRAMES = ("closed", "closed_footprint", "current", "current_footprint")


def shared_parts(update, instrument: Instrument, row_ticks: int, ratio: float) -> dict:
    """:func:`bar_parts` of a live update's bars (its closed bars, then the forming one),
    computed once for every chart that applies the same bars with the same settings: the hub
    gives each subscriber its own ``Update`` (its studies, book and tape differ) holding the
    stream's same frames, so many sessions on one symbol share this work by those frames and
    each only sends its own patches."""
    frames = [getattr(update, name) for name in _FRAMES]
    key = tuple(id(f) for f in frames)
    settings = (instrument.tick_size, instrument.session.timezone, int(row_ticks), float(ratio))
    entry = _SHARED.get(key)
    if entry is None or any(ref() is not f for ref, f in zip(entry[0], frames)):
        try:
            entry = ([weakref.ref(f) for f in frames], {})
        except TypeError:  # not weakly referable: nothing to share it by
            entry = None
        else:
            _SHARED[key] = entry
            while len(_SHARED) > 64:
                _SHARED.pop(next(iter(_SHARED)))
    if entry is None or settings not in entry[1]:
        bars = pd.concat([update.closed, update.current], ignore_index=True)
        cells = pd.concat([update.closed_footprint, update.current_footprint], ignore_index=True)
        parts = bar_parts(bars, cells, instrument, row_ticks, ratio, len(update.current) > 0)
        if entry is None:
            return parts
        entry[1][settings] = parts
    return entry[1][settings]


def forming_rows(parts: dict, mode: str, colours: tuple) -> dict:
    """The forming bar's rows of ``parts["cells"]`` (:func:`bar_parts`) with the words of their
    numbers (:func:`cell_text` in ``mode`` with ``colours``, :data:`TEXT_WORDS`), but ``state``.

    Kept in ``parts`` and read-only: the parts of a live update are shared by the charts showing
    it (:func:`shared_parts`), so every session patches its forming bar from these same arrays
    (and ``dashboards.patch_messages`` writes each of them into a message once)."""
    key = ("forming", mode, tuple(colours))
    rows = parts.get(key)
    if rows is None:
        cells = parts["cells"]
        forming = np.asarray(cells["state"]) == "forming"
        rows = {k: np.asarray(v)[forming] for k, v in cells.items() if k != "state"}
        words = cell_text(rows, mode, *colours)
        rows.update({k: words[k] for k in TEXT_WORDS})
        for v in rows.values():
            v.setflags(write=False)
        parts[key] = rows
    return rows


def shifted(cols: dict, dx: int, keys=("x", "bar", "px")) -> dict:
    """``cols`` with the bar positions (``keys`` present) moved ``dx`` bars to the right."""
    return {k: (np.asarray(v) + dx if k in keys else v) for k, v in cols.items()}


# sums of fractional sizes carry float error (a bid of 0.1 + 0.2 against an ask of 0.3 is a delta
# of 5.6e-17): a size this small is zero. It is far below any venue's size step (a satoshi: 1e-8).
SIZE_NOISE = 1e-9


def signed_size(v: float) -> str:
    """A delta as written: ``+12``, ``-5``, ``0``."""
    return ("+" if v >= SIZE_NOISE else "") + format_size(v)


def format_size(v: float) -> str:
    """A volume as a cell shows it: whole numbers up to 9,999 as they are, larger ones as 12.3k
    or 1.2M, fractions (crypto sizes) with at most three significant digits; ``0`` below
    :data:`SIZE_NOISE` (a delta's float error was written ``+1.39e-17``, and in the delta mode
    the widest number sets the width every number of the chart must fit)."""
    a = abs(v)
    if a < SIZE_NOISE:
        return "0"
    if a >= 1e6:
        text = f"{a / 1e6:.1f}M"
    elif a >= 1e4:
        text = f"{a / 1e3:.1f}k" if a < 1e5 else f"{a / 1e3:.0f}k"
    elif a == int(a):
        text = f"{int(a)}"
    else:
        text = f"{a:.3g}"
    return ("-" if v < 0 else "") + text


TEXT_WORDS = ("left", "right", "center", "lcolor", "rcolor", "ccolor", "lstyle", "rstyle",
              "cstyle")
TEXT_COLUMNS = ("x", "xl", "xr", "y") + TEXT_WORDS
TEXT_LEFT, TEXT_RIGHT = -LABEL_GAP * CELL_WIDTH, LABEL_GAP * CELL_WIDTH  # bid, ask: from the middle


def empty_text() -> dict:
    return {c: np.empty(0, dtype=object if c not in ("x", "xl", "xr", "y") else "float64")
            for c in TEXT_COLUMNS}


def cell_text(cols: dict, mode: str, text: str, up: str, down: str) -> dict:
    """The numbers of the cells ``cols`` (a selection of :func:`cell_columns`) for ``mode``
    (``bid_ask`` writes bid on the left and ask on the right of the cell, an imbalanced side bold
    in the ``up``/``down`` colour, ``center`` blank; the others one number in the middle, bold in
    an imbalanced cell, in the ``text`` colour: the cell may be tinted by imbalance; ``left`` and
    ``right`` blank). No "x" between bid and ask: each word is a text the browser measures and
    paints at every repaint of the chart, and the gap between the two numbers separates them."""
    n = len(cols["x"])
    x = np.asarray(cols["x"], dtype="float64") + CELL_MID
    out = {"x": x, "xl": x + TEXT_LEFT, "xr": x + TEXT_RIGHT,
           "y": np.asarray(cols["y"], dtype="float64")}
    blank = np.full(n, "", dtype=object)
    plain = np.full(n, text, dtype=object)
    normal = np.full(n, "normal", dtype=object)
    imb = np.asarray(cols["imb"])
    if mode == "bid_ask":
        out["left"] = np.array([format_size(v) for v in cols["bid"]], dtype=object)
        out["right"] = np.array([format_size(v) for v in cols["ask"]], dtype=object)
        out["center"] = blank
        out["lcolor"] = np.where(imb < 0, down, text).astype(object)
        out["rcolor"] = np.where(imb > 0, up, text).astype(object)
        out["lstyle"] = np.where(imb < 0, "bold", "normal").astype(object)
        out["rstyle"] = np.where(imb > 0, "bold", "normal").astype(object)
        out["ccolor"] = plain
        out["cstyle"] = normal
        return out
    words = cell_words(cols, mode)
    out.update(left=blank, right=blank, center=np.array(words, dtype=object), lcolor=plain,
               rcolor=plain, lstyle=normal, rstyle=normal, ccolor=plain,
               cstyle=np.where(imb != 0, "bold", "normal").astype(object))
    return out


def cell_words(cols: dict, mode: str) -> list[str]:
    """The one number each cell of ``cols`` writes in a single-number ``mode`` (delta, delta %,
    trades; volume and profile write the volume)."""
    if mode == "delta_pct":
        return [f"{v * 100:+.0f}%" for v in cols["delta_pct"]]
    if mode == "delta":
        return [signed_size(v) for v in cols["delta"]]
    if mode == "trades":
        return [format_size(v) for v in cols["trades"]]
    return [format_size(v) for v in cols["volume"]]


DIGIT_EM = 0.58    # a digit's width in the chart's sans-serif font, in font sizes (bold a little more)
SIDE_ROOM = 0.5 - LABEL_GAP - 0.02  # share of a cell each number of bid x ask has, less a margin
MIDDLE_ROOM = 0.9  # share of a cell one centred number has


def label_room(cols: dict, mode: str) -> float:
    """Cell pixels per font pixel that the widest number of ``cols`` needs in ``mode`` (0 when
    there are none): the numbers fit at font sizes up to the cell's width over this. Crypto's
    fractional sizes (``0.154 x 0.013``) need about twice the room of a future's ``12 x 30``."""
    if not len(cols["x"]):
        return 0.0
    if mode == "bid_ask":
        sizes = np.unique(np.concatenate([np.asarray(cols["bid"], dtype="float64"),
                                          np.asarray(cols["ask"], dtype="float64")]))
        return max(len(format_size(v)) for v in sizes) * DIGIT_EM / SIDE_ROOM
    return max(map(len, cell_words(cols, mode))) * DIGIT_EM / MIDDLE_ROOM


def raster(cols: dict, value: str, x_range: tuple, y_range: tuple, size: tuple,
           row_price: float, palette: list, span: tuple):
    """The cells of ``cols`` in view, coloured by column ``value`` on ``palette`` over ``span``,
    as an RGBA image (uint32, rows bottom-up) of ``size`` (width, height) pixels covering
    ``x_range`` x ``y_range``, by Datashader; None when no cell is in the range.

    The cells are laid on a regular grid (a quarter of a bar wide, one row high) whose first
    quarter of each bar is left empty for the candle, and resampled to the pixels with
    ``Canvas.quadmesh``: zoomed out many cells share a pixel (their mean), zoomed in a cell
    covers many."""
    (x0, x1), (y0, y1) = x_range, y_range
    x = np.asarray(cols["x"], dtype="int64")
    y = np.asarray(cols["y"], dtype="float64")
    keep = (x >= np.floor(x0) - 1) & (x <= np.ceil(x1) + 1) & (y >= y0 - row_price) \
        & (y <= y1 + row_price)
    if not keep.any():
        return None
    x, y, v = x[keep], y[keep], np.asarray(cols[value], dtype="float64")[keep]
    xa, xb = int(x.min()), int(x.max())
    row = np.round((y - y.min()) / row_price).astype("int64")
    nrows = int(row.max()) + 1
    width = size[0]
    # four sub-columns per bar while they are wider than a pixel; one when bars are narrower
    sub = 4 if (xb - xa + 1) * 4 <= 4 * width else 1
    # one empty row and column past the cells: quadmesh infers a cell's size from the spacing
    # of its coordinates, so it needs at least two of each (a view of one price row has one)
    grid = np.full((nrows + 1, (xb - xa + 1) * sub + 1), np.nan, dtype="float64")
    first = 1 if sub == 4 else 0
    for k in range(first, sub):
        grid[row, (x - xa) * sub + k] = v
    xs = xa - 0.5 + (np.arange(grid.shape[1]) + 0.5) / sub
    ys = y.min() + np.arange(nrows + 1) * row_price
    da = xr.DataArray(grid, coords={"y": ys, "x": xs}, dims=("y", "x"), name=value)
    canvas = ds.Canvas(plot_width=max(int(size[0]), 1), plot_height=max(int(size[1]), 1),
                       x_range=(x0, x1), y_range=(y0, y1))
    agg = canvas.quadmesh(da, x="x", y="y", agg=ds.mean(value))
    img = tf.shade(agg, cmap=palette, how="linear", span=list(span))
    return np.asarray(img.data, dtype="uint32")
