"""Market data refused at the edge: the one check every imported chunk and live batch passes.

A :class:`Validator` follows one stream (one imported file; later one feeder's connection) and
checks each batch of trades or bars of one instrument before anything is stored:

* prices finite, positive, at most ``MAX_PRICE`` and on the instrument's tick grid, allowing
  only the representation error of the source's numbers (a relative ``1e-9`` for text and
  fixed-point prices, ``2**-23`` for float32 ones such as ``.scid``); accepted prices come back
  as the exact grid value (the double nearest ``ticks * tick_size`` in decimal), so bars and
  footprint cells agree. A price below one tick is off the grid;
* trade sizes within ``MIN_SIZE``..``MAX_SIZE``; bars with OHLC as prices, high/low containing
  open and close, volumes within 0..``MAX_BAR_VOLUME`` (``data_access.frames``: the stores check
  the same magnitudes, so nothing written any way can overflow a rollup);
* time order, one rule for every format, by what tells rows apart: a trade with the source's id
  (``trade_id >= 0``) may come in any order (Binance futures files interleave streams weeks
  apart). A trade without one (made ids are negative: ranks in the microsecond, in file order)
  may come at most ``REORDER_WINDOW_NS`` (60 s) before the latest such trade of its symbol
  already read from the same stream (real feeds reorder a little: Databento's ``ts_event``).
  Bars must be in time order (sources write them so; a bar write replaces whole minutes). Rows
  further back are refused; everything is stored in time order.

Errors are :class:`data_access.frames.RowError` naming the batch's row; the caller turns the row
into the file's own place (``ImportChunk.where``) or the position in a posted batch.
"""
from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pandas as pd

from data_access.frames import RowError, check_bar_values, check_trade_values
from tradeflow.ingest.chunks import REORDER_WINDOW_NS, first_true, late_reason

# Relative error a source's price numbers may carry, by their bits (float32: half an ulp is
# 2**-24 of the value; twice that for safety).
PRICE_TOLERANCE = {64: 1e-9, 32: 2.0**-23}


def grid_decimals(tick_size: float) -> int:
    """Decimal places of a tick size (0.25 -> 2, 1e-8 -> 8, 5 -> 0), at most 15."""
    exponent = Decimal(repr(float(tick_size))).normalize().as_tuple().exponent
    return min(max(0, -int(exponent)), 15)


def on_grid(price: np.ndarray, tick_size: float, price_bits: int = 64
            ) -> tuple[np.ndarray, int | None]:
    """(prices snapped to the tick grid, index of the first price off it or below one tick, or
    None). Prices must already be finite and positive."""
    ticks_f = np.asarray(price, dtype="float64") / tick_size
    ticks = np.rint(ticks_f)
    tolerance = PRICE_TOLERANCE[price_bits] * np.maximum(np.abs(ticks_f), 1.0)
    bad = first_true((np.abs(ticks_f - ticks) > tolerance) | (ticks < 1))
    if bad is not None:
        return price, bad
    snapped = np.round(ticks * tick_size, grid_decimals(tick_size))
    # the decimal rounding must not move a price to another tick (it cannot for ticks written
    # in decimal; for e.g. 1/3 it might): keep the plain product there
    moved = np.rint(snapped / tick_size) != ticks
    if moved.any():
        snapped[moved] = ticks[moved] * tick_size
    return snapped, None


def off_grid_reason(column: str, value: float, tick_size: float, symbol: str) -> str:
    ticks = value / tick_size
    if ticks < 0.5:
        return (f"{column} {value!r} is below one tick ({tick_size!r}) of {symbol}: is the "
                "tick size right?")
    decimals = grid_decimals(tick_size)
    below = round(math.floor(ticks) * tick_size, decimals)
    above = round(math.ceil(ticks) * tick_size, decimals)
    return (f"{column} {value!r} is not on the tick grid of {symbol} (tick size {tick_size!r}: "
            f"{below!r} or {above!r}); the tick size may be wrong: see 'tradeflow instruments "
            "list'")


class Validator:
    """Checks the batches of one stream; ``tick_size(symbol)`` gives an instrument's tick size.

    Keeps, per symbol and kind, the latest time read, for the time-order rule.
    """

    def __init__(self, tick_size):
        self._tick_size = tick_size
        self._latest: dict[tuple[str, str], int] = {}

    def trades(self, symbol: str, frame: pd.DataFrame, order=None,
               price_bits: int = 64) -> pd.DataFrame:
        """``frame`` (``model.TRADE_COLUMNS``) checked, prices snapped to the grid; same rows in
        the same order. ``order``: the rows' positions in the stream (e.g. line numbers) when
        the frame is not in stream order (an import chunk is sorted by time). Raises
        :class:`RowError`."""
        check_trade_values(frame)
        price, bad = self._grid(symbol, frame["price"], price_bits)
        if bad is not None:
            raise RowError("trades", bad, off_grid_reason(
                "price", float(frame["price"].iloc[bad]), self._tick_size(symbol), symbol))
        made = frame["trade_id"].to_numpy() < 0  # no source id: the order must hold
        if made.any():
            self._time_order(symbol, "trades", frame["ts"], order, made)
        return frame.assign(price=price)

    def bars(self, symbol: str, frame: pd.DataFrame, order=None,
             price_bits: int = 64, seconds: int | None = None) -> pd.DataFrame:
        """Bars (``ts, open, high, low, close, volume, ...``) checked as :meth:`trades` checks
        trades; OHLC snapped to the grid. Bars of each timeframe (``seconds``) are in time
        order on their own (a file may interleave two, as live DBN data can)."""
        check_bar_values(frame)
        snapped = {}
        for column in ("open", "high", "low", "close"):
            snapped[column], bad = self._grid(symbol, frame[column], price_bits)
            if bad is not None:
                raise RowError("bars", bad, off_grid_reason(
                    column, float(frame[column].iloc[bad]), self._tick_size(symbol), symbol))
        self._time_order(symbol, "bars", frame["ts"], order, window=0, timeframe=seconds)
        return frame.assign(**snapped)

    def _grid(self, symbol, prices: pd.Series, price_bits):
        return on_grid(prices.to_numpy(dtype="float64"), self._tick_size(symbol), price_bits)

    def _time_order(self, symbol: str, kind: str, ts: pd.Series, order, only=None,
                    window: int = REORDER_WINDOW_NS, timeframe=None) -> None:
        """No row (of those ``only`` selects) more than ``window`` ns before the latest row read
        before it."""
        ns = pd.DatetimeIndex(ts).as_unit("ns").asi8
        rows = np.arange(len(ns)) if only is None else np.flatnonzero(only)
        if order is not None:
            order = np.asarray(order)[rows]
            if len(order) > 1 and not (order[1:] > order[:-1]).all():
                rows = rows[np.argsort(order, kind="stable")]  # stream order
        ns = ns[rows]
        if len(ns) == 0:
            return
        key = (symbol, kind, timeframe)
        latest = np.maximum.accumulate(ns)
        before = np.empty_like(latest)
        before[0] = self._latest.get(key, ns[0])
        before[1:] = np.maximum(latest[:-1], before[0])
        i = first_true(ns < before - window)
        if i is not None:
            raise RowError(kind, int(rows[i]), late_reason(int(ns[i]), int(before[i]), kind))
        self._latest[key] = int(max(latest[-1], before[0]))
