"""Chart-type transforms of bars or trades: Heikin-Ashi, Kagi, Point & Figure and Line Break.

Renko and range bars are bar specs (cutters in :mod:`tradeflow.bars`: they decide where bars of
trades begin). These four are drawn from a price series that already exists, so they are
transforms of it:

* **Input**: bars of any spec (a frame with ``ts`` and ``close``; Point & Figure's ``high_low``
  method reads ``high`` and ``low`` too), trades (a frame with ``ts`` and ``price``: a trade is a
  bar whose high, low and close are its price), or a Series of closes indexed by time. Prices
  are put on the instrument's tick grid (the nearest tick), so every price out is on it too.
* **Output**: a frame a chart draws directly (see each class), times UTC ``datetime64[ns]``.
* **Forms**: a batch function (``kagi``, ``point_and_figure``, ``line_break``, ``heikin_ashi``)
  and an incremental class (``Kagi``, ``PointAndFigure``, ``LineBreak``, ``HeikinAshi``) whose
  ``update(prices, forming=None)`` takes the next closed bars (or trades) and, optionally, the bar
  still forming, and answers a :class:`indicators.live_protocol.Changes`: the rows written or
  rewritten (new rows, the last row when it grew, the forming bar's rows), indexed by position,
  and the result's length (a chart drops rows at or past it: what the forming bar drew may go).
  The forming bar is previewed on a copy of the state, never committed. ``apply(update)`` follows
  a ``BarUpdate`` stream as every live study does (``{name: Changes}``). The batch function is one
  ``update`` of the class, so the two agree by construction; the tests show it over any split.
"""
from __future__ import annotations

import copy
from fractions import Fraction

import numpy as np
import pandas as pd

from indicators.live_protocol import Changes
from tradeflow.model import BAR_COLUMNS, Instrument, empty_frame, ns_to_utc, to_utc

__all__ = ["HeikinAshi", "Kagi", "LineBreak", "PointAndFigure", "heikin_ashi", "kagi",
           "line_break", "point_and_figure"]


# --------------------------------------------------------------------------------------------
# Heikin-Ashi


def heikin_ashi(bars: pd.DataFrame, prev: tuple[float, float] | None = None) -> pd.DataFrame:
    """Heikin-Ashi bars: close = (O+H+L+C)/4; open = mean of the previous HA bar's open and close
    (the first bar: (O+C)/2, or from ``prev``, the previous HA bar's (open, close)); high and low
    widened to include them. Volume and order-flow columns are kept. (Averages: these prices are
    not on the tick grid.)"""
    out = bars.copy()
    o, h, l, c = (bars[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close"))
    ha_close = (o + h + l + c) / 4.0
    ha_open = np.empty_like(ha_close)
    if len(ha_open):
        ha_open[0] = (o[0] + c[0]) / 2.0 if prev is None else (prev[0] + prev[1]) / 2.0
        for i in range(1, len(ha_open)):  # a recursion: each open needs the one before
            ha_open[i] = (ha_open[i - 1] + ha_close[i - 1]) / 2.0
    out["open"], out["close"] = ha_open, ha_close
    out["high"] = np.maximum.reduce([h, ha_open, ha_close])
    out["low"] = np.minimum.reduce([l, ha_open, ha_close])
    return out


class HeikinAshi:
    """Heikin-Ashi, incrementally: each closed bar's HA bar is final once made (its open needs
    only the previous HA bar's open and close); the forming bar's HA bar is re-sent until it
    closes. Rows keep the bars' columns."""

    name = "heikin_ashi"

    def __init__(self):
        self._prev = None  # (open, close) of the last closed HA bar
        self._closed = 0  # closed bars made

    def update(self, bars: pd.DataFrame | None, forming: pd.DataFrame | None = None) -> Changes:
        """HA bars of the next closed ``bars`` and of the ``forming`` one (if any)."""
        start, parts = self._closed, []
        if bars is not None and len(bars):
            done = heikin_ashi(bars, self._prev)
            self._prev = (float(done["open"].iloc[-1]), float(done["close"].iloc[-1]))
            self._closed += len(done)
            parts.append(done)
        if forming is not None and len(forming):
            parts.append(heikin_ashi(forming, self._prev))
        if parts:
            rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
        else:
            like = bars if bars is not None else forming
            rows = like.iloc[:0].copy() if like is not None else empty_frame(BAR_COLUMNS)
        rows.index = pd.RangeIndex(start, start + len(rows))
        return Changes(rows, start + len(rows))

    def apply(self, update) -> dict[str, Changes]:
        """Follow a ``tradeflow.model.BarUpdate``: its closed bars, then its forming bar."""
        return {self.name: self.update(update.closed, forming=update.current)}


# --------------------------------------------------------------------------------------------
# Prices in, as (time ns, close, high, low) ticks


def _points(data, instrument: Instrument, name: str, high_low: bool = False) -> list[tuple]:
    """The rows of ``data`` as ``(ts_ns, close, high, low)`` tuples of ints (ticks), checked
    whole before anything is used: a bad row raises one ValueError naming it."""
    if data is None:
        return []
    if isinstance(data, pd.Series):
        if not isinstance(data.index, pd.DatetimeIndex):
            raise ValueError(f"{name}: a Series of closes needs the bar times as its index "
                             f"(a DatetimeIndex), got a {type(data.index).__name__}")
        what, times, close = "close", data.index, data.to_numpy(dtype="float64")
        high = low = close
    elif isinstance(data, pd.DataFrame):
        what = "close" if "close" in data.columns else "price"
        if "ts" not in data.columns or what not in data.columns:
            raise ValueError(f"{name}: expected bars (columns ts, close) or trades (ts, price), "
                             f"got columns {', '.join(map(str, data.columns)) or 'none'}")
        times, close = data["ts"], data[what].to_numpy(dtype="float64")
        high = low = close
        if high_low and what == "close":
            if not {"high", "low"} <= set(data.columns):
                raise ValueError(f"{name}: the high_low method needs high and low columns; "
                                 f"use method='close' for closes only")
            high = data["high"].to_numpy(dtype="float64")
            low = data["low"].to_numpy(dtype="float64")
    else:
        raise ValueError(f"{name}: expected a frame of bars or trades or a Series of closes, "
                         f"got {type(data).__name__}")
    times = to_utc(times)
    if times.hasnans:
        raise ValueError(f"{name}: row {int(np.flatnonzero(times.isna())[0])} has no time; "
                         f"nothing of this update was used")
    for column, values in ((what, close), ("high", high), ("low", low)):
        if not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"{name}: row {i} has {column} {float(values[i])!r}, not a "
                             f"finite price; nothing of this update was used")
    if high_low and (high < low).any():
        i = int(np.flatnonzero(high < low)[0])
        raise ValueError(f"{name}: row {i} has high {float(high[i])!r} below low "
                         f"{float(low[i])!r}; nothing of this update was used")
    c, ts = instrument.to_tick(close), times.asi8
    if high_low:
        h, lo = instrument.to_tick(high), instrument.to_tick(low)
    else:
        # a close equal to the one before it never changes a transform of closes (nothing
        # moves unless price goes beyond a level), so runs of them (common in trades) go here
        moved = np.ones(len(c), dtype=bool)
        moved[1:] = c[1:] != c[:-1]
        c, ts = c[moved], ts[moved]
        h = lo = c
    return list(zip(ts.tolist(), c.tolist(), h.tolist(), lo.tolist()))


# --------------------------------------------------------------------------------------------
# The incremental machinery Kagi, Point & Figure and Line Break share


class _Transform:
    """Rows are lists of ints (times in ns, prices in ticks); all but the last ``_open_rows``
    committed rows are final. Subclasses say their columns and implement ``_push`` (one point)."""

    name = ""
    columns: tuple[str, ...] = ()
    _times: tuple[str, ...] = ()  # columns of ns times
    _prices: tuple[str, ...] = ()  # columns of ticks, shown as prices
    _flags: tuple[str, ...] = ()  # columns of 0/1, shown as bools
    _high_low = False  # read the bars' high and low (else closes only)
    _open_rows = 1  # committed rows at the end that a later point can still change
    _keep = 1  # committed rows at the end a point reads (copied for the forming preview)

    def __init__(self, instrument: Instrument):
        if not isinstance(instrument, Instrument):
            raise ValueError(f"{self.name}: expected a tradeflow.model.Instrument (its tick "
                             f"size puts prices on the grid), got {type(instrument).__name__}")
        self.instrument = instrument
        self._rows: list[list[int]] = []  # committed rows
        self._final = 0  # rows of the last answer that no update can change
        self._cut, self._tail = 0, []  # the last answer: committed rows [:cut] + tail

    def update(self, prices, forming=None) -> Changes:
        """Commit ``prices`` (closed bars or trades, in order); preview ``forming`` (the bar still
        forming) on a copy. Returns the rows changed since the last update and the length."""
        points = _points(prices, self.instrument, self.name, self._high_low)
        preview = _points(forming, self.instrument, self.name, self._high_low)
        for point in points:
            self._push(*point)
        cut, tail = len(self._rows), []
        if preview:
            keep = min(self._keep, len(self._rows))
            clone = copy.copy(self)
            clone._rows = [list(row) for row in self._rows[cut - keep:]]
            for point in preview:
                clone._push(*point)
            cut, tail = cut - keep, clone._rows
        start = self._final
        self._final = max(0, len(self._rows) - self._open_rows)
        self._cut, self._tail = cut, tail
        changed = self._rows[start:cut] + tail[max(0, start - cut):]
        return Changes(self._frame(changed, start), cut + len(tail))

    def apply(self, update) -> dict[str, Changes]:
        """Follow a ``tradeflow.model.BarUpdate``: commit its closed bars, preview the forming
        one."""
        return {self.name: self.update(update.closed, forming=update.current)}

    def result(self) -> pd.DataFrame:
        """The whole result as of the last update (the forming bar's preview included)."""
        return self._frame(self._rows[:self._cut] + self._tail, 0)

    def _frame(self, rows: list, start: int) -> pd.DataFrame:
        cols = list(zip(*rows)) if rows else [()] * len(self.columns)
        data = {}
        for name, values in zip(self.columns, cols):
            values = np.asarray(values, dtype="int64")
            if name in self._times:
                data[name] = ns_to_utc(values)
            elif name in self._prices:
                data[name] = self.instrument.to_price(values)
            elif name in self._flags:
                data[name] = values.astype(bool)
            else:
                data[name] = values
        return pd.DataFrame(data, index=pd.RangeIndex(start, start + len(rows)))

    def _push(self, ts: int, close: int, high: int, low: int) -> None:
        raise NotImplementedError


def _whole(value, name: str, what: str, least: int = 1) -> int:
    """``value`` as an int of at least ``least`` (3.0 passes, 2.5 does not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not float(value).is_integer() or value < least:
        raise ValueError(f"{name}: {what} must be a whole number of at least {least}, "
                         f"got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Kagi


class Kagi(_Transform):
    """Kagi lines: the line runs on in its direction while price extends it and turns only when
    price comes back by at least the reversal amount from the line's end: ``reversal`` ticks, or
    (``unit="percent"``) ``reversal`` % of the end price, rounded up to whole ticks (at least
    one). The first price is the start; the first line is drawn once price has moved the amount
    from it.

    Thickness: the first line is yang (thick) if it rises, else yin (thin); a rising line turns
    yang where it passes above the previous line's start (the last shoulder), a falling line yin
    where it passes below the previous line's start (the last waist); the thickness then holds
    until the opposite crossing. A line is one row per thickness, so it has one or two rows.

    Rows: ``ts`` (time of the point that drew the row), ``end_ts`` (of the last point that
    extended it), ``line`` (the vertical line's number from 0: draw at x = line, with a horizontal
    from the previous line's end), ``direction`` (+1/-1), ``open`` and ``close`` (where the row
    starts and ends), ``yang``."""

    name = "kagi"
    columns = ("ts", "end_ts", "line", "direction", "open", "close", "yang")
    _times, _prices, _flags = ("ts", "end_ts"), ("open", "close"), ("yang",)

    def __init__(self, instrument: Instrument, reversal: float = 10, unit: str = "ticks"):
        super().__init__(instrument)
        if unit == "ticks":
            self.reversal, self._percent = _whole(reversal, "kagi", "the reversal in ticks"), None
        elif unit == "percent":
            if isinstance(reversal, bool) or not isinstance(reversal, (int, float)) \
                    or not 0 < reversal < 100:
                raise ValueError(f"kagi: the reversal in percent must be above 0 and below "
                                 f"100, got {reversal!r}")
            # exact, from the decimal the user wrote: the thresholds are whole ticks
            self.reversal, self._percent = reversal, Fraction(str(reversal))
        else:
            raise ValueError(f"kagi: unit must be 'ticks' or 'percent', got {unit!r}")
        self.unit = unit
        self._start = None  # the first price
        self._dir = 0  # the last line's direction (0: no line yet)
        self._end = None  # the last line's end (its extreme)
        self._line = -1  # the last line's number
        self._line_open = None  # the last line's start: the level the next line must cross
        self._level = None  # the level the last line must cross to change thickness
        self._yang = False

    def amount(self, tick: int) -> int:
        """Ticks price must come back from a line ending at ``tick`` to turn it."""
        if self._percent is None:
            return self.reversal
        p = self._percent
        return max(1, -(-abs(tick) * p.numerator // (p.denominator * 100)))  # ceiling

    def _push(self, ts, close, high, low):
        if self._dir == 0:
            if self._start is None:
                self._start = close
            elif abs(close - self._start) >= self.amount(self._start):
                self._yang = close > self._start
                self._new_line(ts, 1 if close > self._start else -1, self._start, close, None)
            return
        d = self._dir
        if d * (close - self._end) > 0:  # the line runs on
            row = self._rows[-1]
            row[1], row[5] = ts, close
            self._end = close
            self._cross(ts)
        elif d * (self._end - close) >= self.amount(self._end):
            self._new_line(ts, -d, self._end, close, self._line_open)

    def _new_line(self, ts, direction, start, end, level):
        self._line += 1
        self._dir, self._end, self._line_open, self._level = direction, end, start, level
        self._rows.append([ts, ts, self._line, direction, start, end, int(self._yang)])
        self._cross(ts)

    def _cross(self, ts):
        """Split the last row where it passes the level that changes the thickness."""
        d, level, end = self._dir, self._level, self._end
        if level is None or (d > 0) == self._yang or d * (end - level) <= 0:
            return
        self._rows[-1][5] = level
        self._yang = not self._yang
        self._rows.append([ts, ts, self._line, d, level, end, int(self._yang)])


def kagi(prices, instrument: Instrument, reversal: float = 10, unit: str = "ticks"
         ) -> pd.DataFrame:
    """Kagi lines of ``prices`` (bars' closes or trades): see :class:`Kagi`."""
    return Kagi(instrument, reversal, unit).update(prices).rows  # the first answer: all rows


# --------------------------------------------------------------------------------------------
# Point & Figure


class PointAndFigure(_Transform):
    """Point & Figure columns on a grid of boxes of ``box`` ticks (levels at multiples of it).

    An X column marks every level price has risen through, an O column every level it has fallen
    through. A column runs on while price reaches a new level beyond it; it turns when price
    comes back ``reversal`` boxes from its end: the next column starts one box from the end
    (an X column topped at level H turns when price reaches H - reversal or below, and the O
    column marks H-1 down to there), so columns alternate and each after the first has at least
    ``reversal`` boxes. The first price (the first bar's close) is the start: the first column
    begins once price has reached a level one box beyond the start's (ceiling rising, floor
    falling), marking the levels traded through from the start.

    ``method="close"`` reads closes (trades: prices); ``"high_low"`` reads each bar's high and
    low: an X column first tries the high (running on), and only if that does not extend it
    the low (turning); an O column the other way round; before the first column, the high
    first.

    Rows: ``ts`` (time of the point that began the column), ``end_ts`` (of the last point that
    extended it), ``direction`` (+1 X, -1 O), ``low`` and ``high`` (its lowest and highest
    levels), ``boxes`` (levels marked: ``(high - low) / box + 1``)."""

    name = "point_and_figure"
    columns = ("ts", "end_ts", "direction", "low", "high", "boxes")
    _times, _prices = ("ts", "end_ts"), ("low", "high")

    def __init__(self, instrument: Instrument, box: int = 10, reversal: int = 3,
                 method: str = "close"):
        super().__init__(instrument)
        self.box = _whole(box, "point_and_figure", "the box size in ticks")
        self.reversal = _whole(reversal, "point_and_figure", "the reversal in boxes")
        if method not in ("close", "high_low"):
            raise ValueError(f"point_and_figure: method must be 'close' or 'high_low', "
                             f"got {method!r}")
        self.method, self._high_low = method, method == "high_low"
        self._start = None  # the first price, in ticks
        self._dir = 0  # the last column's direction (0: none yet)
        self._lo = self._hi = None  # the last column's levels (in boxes)

    def _push(self, ts, close, high, low):
        b, r = self.box, self.reversal
        top, bottom = high // b, -(-low // b)  # highest level at or below high; lowest above low
        if self._dir == 0:
            if self._start is None:
                self._start = close
                return
            rise_from, fall_from = -(-self._start // b), self._start // b
            if top >= rise_from + 1:
                self._column(ts, 1, rise_from, top)
            elif bottom <= fall_from - 1:
                self._column(ts, -1, bottom, fall_from)
        elif self._dir > 0:
            if top > self._hi:
                self._hi = top
                self._extend(ts)
            elif bottom <= self._hi - r:
                self._column(ts, -1, bottom, self._hi - 1)
        else:
            if bottom < self._lo:
                self._lo = bottom
                self._extend(ts)
            elif top >= self._lo + r:
                self._column(ts, 1, self._lo + 1, top)

    def _column(self, ts, direction, lo, hi):
        self._dir, self._lo, self._hi = direction, lo, hi
        self._rows.append([ts, ts, direction, lo * self.box, hi * self.box, hi - lo + 1])

    def _extend(self, ts):
        row = self._rows[-1]
        row[1], row[3], row[4], row[5] = (ts, self._lo * self.box, self._hi * self.box,
                                          self._hi - self._lo + 1)


def point_and_figure(prices, instrument: Instrument, box: int = 10, reversal: int = 3,
                     method: str = "close") -> pd.DataFrame:
    """Point & Figure columns of ``prices`` (bars or trades): see :class:`PointAndFigure`."""
    # the first answer of a new follower holds every row
    return PointAndFigure(instrument, box, reversal, method).update(prices).rows


# --------------------------------------------------------------------------------------------
# Line Break


class LineBreak(_Transform):
    """Line Break (``lines=3``: three-line break). A close above the last line's high draws a
    rising line from that high (below its low, a falling line from the low) when it continues the
    last line's direction. Turning needs more: a close beyond the extreme of the last ``lines``
    lines (all of them, if fewer), and the new line starts from the last line's open. Other
    closes draw nothing. The first line runs from the first close to the first close that
    differs from it. Lines, once drawn, never change.

    Rows: ``ts`` (time of the bar whose close drew the line), ``direction`` (+1/-1), ``open``,
    ``high``, ``low``, ``close`` (draw as a candle body)."""

    name = "line_break"
    columns = ("ts", "direction", "open", "high", "low", "close")
    _times, _prices = ("ts",), ("open", "high", "low", "close")
    _open_rows = 0

    def __init__(self, instrument: Instrument, lines: int = 3):
        super().__init__(instrument)
        self.lines = self._keep = _whole(lines, "line_break", "the number of lines")
        self._start = None  # the first close

    def _push(self, ts, close, high, low):
        rows = self._rows
        if not rows:
            if self._start is None:
                self._start = close
            elif close != self._start:
                self._line(ts, self._start, close)
            return
        _, d, o, hi, lo, _ = rows[-1]
        if d > 0 and close > hi:
            self._line(ts, hi, close)
        elif d < 0 and close < lo:
            self._line(ts, lo, close)
        # a turn: beyond the last line's other end first (cheap), then beyond the last `lines`
        elif d > 0 and close < lo and close < min(row[4] for row in rows[-self.lines:]):
            self._line(ts, o, close)
        elif d < 0 and close > hi and close > max(row[3] for row in rows[-self.lines:]):
            self._line(ts, o, close)

    def _line(self, ts, start, end):
        self._rows.append([ts, 1 if end > start else -1, start, max(start, end),
                           min(start, end), end])


def line_break(prices, instrument: Instrument, lines: int = 3) -> pd.DataFrame:
    """Line Break lines of ``prices`` (bars' closes or trades): see :class:`LineBreak`."""
    return LineBreak(instrument, lines).update(prices).rows  # the first answer: all rows
