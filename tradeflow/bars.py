"""Trades into bars and footprint cells, for every bar spec, in batch and incrementally.

One mechanism serves both forms. A *cutter* (one per bar kind) walks a batch of trades and says
where bars begin, carrying what it needs between batches (the open bar's trade count, volume,
range or Renko anchor). ``build_bars`` runs one cutter over all trades; ``BarAggregator`` runs one
over successive batches and merges each batch's first bar into the bar left open by the previous
batch. Batch and incremental results therefore agree by construction (and a property test shows it).

Bar kinds (notation in ``tradeflow.model.BarSpec``):

* time: a bar per interval, labelled by its open time; empty intervals produce no bar;
* tick ``T<n>``: a bar every n trades;
* volume ``V<n>``: a bar closes with the trade that brings its volume to n or more; trades are never
  split, so a bar may hold more than n;
* range ``R<n>``: a trade that would stretch the bar's high-low beyond n ticks opens a new bar;
* Renko ``RK<n>``: bricks of n ticks; a brick completes when price reaches one brick beyond the last
  brick's close in its direction or two bricks against it. Open/close/high/low are on the brick
  grid (no wicks); the trades while a brick formed give its volume, delta and footprint. A jump of
  several bricks at once adds bricks with no volume.

Tick, volume, range and Renko bars start afresh at each trading day of the instrument's session,
so a day's bars are the same however much history is loaded. Heikin-Ashi (``":HA"``) is a
transform of the bars of any spec: :func:`heikin_ashi`; so are Kagi, Point & Figure and Line
Break (chart types, not specs). The transforms, batch and incremental, are in
:mod:`tradeflow.bar_transforms`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradeflow.bar_transforms import (HeikinAshi, Kagi, LineBreak, PointAndFigure, heikin_ashi,
                                      kagi, line_break, point_and_figure)
from tradeflow.model import (TRADE_COLUMNS, BarSpec, BarUpdate, Instrument, ns_to_utc,
                             ModelError, bar_start, empty_frame, normalize_trades)

# the chart-type transforms live in tradeflow.bar_transforms; they are re-exported here so every
# bar kind is found in one place
__all__ = ["BarAggregator", "BarUpdate", "HeikinAshi", "Kagi", "LineBreak", "PointAndFigure",
           "build", "build_bars", "build_footprint", "heikin_ashi", "kagi", "line_break",
           "point_and_figure"]

# --------------------------------------------------------------------------------------------
# Cutters: where bars begin in a batch


@dataclass
class Cut:
    """Bars in a batch: bar k holds trades ``starts[k]:starts[k+1]``.

    ``continues`` says whether bar 0 continues the bar left open by the previous batch.
    ``keys`` holds each bar's label (ns since the epoch) for time bars (None for others: the
    first trade's time).
    """

    starts: np.ndarray
    continues: bool
    keys: np.ndarray | None = None


class TimeCutter:
    def __init__(self, spec: BarSpec, instrument: Instrument):
        self.spec, self.session = spec, instrument.session
        self.open_key = None  # the open bar's start (ns int)

    def cut(self, ts, ticks, sizes) -> Cut:
        keys = bar_start(ts, self.spec, self.session).asi8
        if self.open_key is not None and keys[0] < self.open_key:
            raise ModelError(
                f"trade at {pd.Timestamp(ts[0])} is older than the open bar "
                f"({ns_to_utc(self.open_key)}): trades must arrive in time order")
        change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        starts = np.concatenate(([0], change))
        continues = self.open_key is not None and keys[0] == self.open_key
        self.open_key = int(keys[-1])
        return Cut(starts, continues, keys[starts])


class TickCutter:
    def __init__(self, spec: BarSpec, instrument: Instrument):
        self.n = spec.size
        self.in_open = 0  # trades in the open, incomplete bar
        self.complete = False

    def cut(self, ts, ticks, sizes) -> Cut:
        m, r = len(ts), self.in_open
        continues = r > 0
        starts = np.arange(self.n - r if continues else 0, m, self.n)
        if continues:
            starts = np.concatenate(([0], starts))
        last = m - starts[-1] + (r if starts[-1] == 0 else 0)
        self.complete = last == self.n
        self.in_open = 0 if self.complete else last
        return Cut(starts.astype(np.int64), continues)


def _scan(m: int, s: int, test, window: int = 256):
    """First index ``j >= s`` where ``test(s, e)`` (which inspects trades ``s:e`` and returns the
    offsets that hit) fires, looking in doubling windows so a bar costs about its own length.
    Returns (j or None, the last window's result)."""
    e = s
    while e < m:
        e = min(m, e + window)
        hits = test(s, e)
        if len(hits):
            return s + int(hits[0])
        window *= 2
    return None


class VolumeCutter:
    def __init__(self, spec: BarSpec, instrument: Instrument):
        self.n = float(spec.size)
        self.vol_open = 0.0  # volume of the open bar, summed left to right
        self.complete = True  # no open bar yet, or it is full

    def cut(self, ts, ticks, sizes) -> Cut:
        m = len(sizes)
        continues = not self.complete
        starts, s, v0 = [0], 0, (self.vol_open if continues else 0.0)
        while True:
            # the bar's volume is summed left to right from v0 (np.cumsum is sequential), so that
            # batch and incremental runs round identically and cut at the same trade
            def reached(a, e, v0=v0):
                return np.flatnonzero(np.cumsum(np.concatenate(([v0], sizes[a:e])))[1:] >= self.n)
            j = _scan(m, s, reached)
            if j is None:
                self.vol_open = float(np.cumsum(np.concatenate(([v0], sizes[s:])))[-1])
                self.complete = False
                break
            if j + 1 >= m:
                self.vol_open, self.complete = 0.0, True
                break
            starts.append(j + 1)
            s, v0 = j + 1, 0.0
        return Cut(np.asarray(starts, dtype=np.int64), continues)


class RangeCutter:
    def __init__(self, spec: BarSpec, instrument: Instrument):
        self.n = spec.size
        self.hi = self.lo = None  # the open bar's range, in ticks

    def cut(self, ts, ticks, sizes) -> Cut:
        m = len(ticks)
        continues = self.hi is not None
        hi = self.hi if continues else int(ticks[0])
        lo = self.lo if continues else int(ticks[0])
        starts, s = [0], 0
        while True:
            def broke(a, e, hi=hi, lo=lo):
                run_hi = np.maximum.accumulate(np.maximum(ticks[a:e], hi))
                run_lo = np.minimum.accumulate(np.minimum(ticks[a:e], lo))
                return np.flatnonzero(run_hi - run_lo > self.n)
            j = _scan(m, s, broke)
            if j is None:
                self.hi = max(hi, int(ticks[s:].max()))
                self.lo = min(lo, int(ticks[s:].min()))
                break
            if j == 0:  # the batch's first trade breaks the open bar: that bar is done
                continues = False
            else:
                starts.append(j)
            s, hi, lo = j, int(ticks[j]), int(ticks[j])
        return Cut(np.asarray(starts, dtype=np.int64), continues)


class RenkoCutter:
    """Renko bricks; besides where bricks begin it records each brick's grid open/close."""

    def __init__(self, spec: BarSpec, instrument: Instrument):
        self.box = spec.size
        self.anchor = None  # close (in ticks) of the last completed brick
        self.direction = 0
        self.has_open = False  # trades since the last completed brick

    def cut(self, ts, ticks, sizes):
        """Returns (segments, bricks): segments are (start, end) trade ranges; bricks are
        (segment index, open tick, close tick, complete) in order."""
        if self.anchor is None:
            self.anchor = int(ticks[0])
        m, s = len(ticks), 0
        segments, bricks = [], []
        continues = self.has_open
        while s < m:
            up = self.anchor + (self.box if self.direction >= 0 else 2 * self.box)
            down = self.anchor - (self.box if self.direction <= 0 else 2 * self.box)
            j = _scan(m, s, lambda a, e: np.flatnonzero((ticks[a:e] >= up) | (ticks[a:e] <= down)))
            if j is None:
                segments.append((s, m))
                bricks.append((len(segments) - 1, None, None, False))
                self.has_open = True
                break
            segments.append((s, j + 1))
            seg = len(segments) - 1
            price = int(ticks[j])
            sign = 1 if price >= up else -1
            # a reversal first needs the brick beside the last one; it then starts from there
            start = self.anchor + sign * self.box if self.direction == -sign else self.anchor
            count = (sign * (price - start)) // self.box
            for k in range(count):
                o = start + sign * k * self.box
                bricks.append((seg, o, o + sign * self.box, True))
            self.anchor = start + sign * count * self.box
            self.direction = sign
            self.has_open = False
            s = j + 1
        return segments, bricks, continues


CUTTERS = {"time": TimeCutter, "tick": TickCutter, "volume": VolumeCutter, "range": RangeCutter}


# --------------------------------------------------------------------------------------------
# Aggregation of cut trades. Inside the aggregator bars and cells are dicts of numpy columns
# (pandas costs milliseconds per small operation, too much for a live update); times are int64
# nanoseconds, and cells carry ``seg``, the position in the batch of the bar they belong to.
# Frames are made only for what ``update`` returns.

SUMS = ("volume", "ask_volume", "bid_volume", "trades")  # summed, for bars and cells alike


def _arrays(trades: pd.DataFrame, instrument: Instrument):
    ts = pd.DatetimeIndex(trades["ts"]).as_unit("ns")
    price = trades["price"].to_numpy(dtype="float64")
    size = trades["size"].to_numpy(dtype="float64")
    side = trades["side"].to_numpy()
    return ts, price, size, side, instrument.to_tick(price)


def _segment_bars(ts_ns, price, size, side, starts, keys=None) -> dict:
    ends = np.append(starts[1:], len(price))
    return {
        "ts": keys if keys is not None else ts_ns[starts],
        "open": price[starts],
        "high": np.maximum.reduceat(price, starts),
        "low": np.minimum.reduceat(price, starts),
        "close": price[ends - 1],
        "volume": np.add.reduceat(size, starts),
        "ask_volume": np.add.reduceat(np.where(side == 1, size, 0.0), starts),
        "bid_volume": np.add.reduceat(np.where(side == -1, size, 0.0), starts),
        "trades": (ends - starts).astype("int64"),
    }


def _group_cells(seg, tick, volume, ask, bid, trades) -> dict:
    """Cells summed per (seg, tick), ordered by seg then tick."""
    if len(seg) == 0:
        return _empty_cells()
    low, width = tick.min(), int(tick.max() - tick.min()) + 1
    key = seg * width + (tick - low)
    space = (int(seg.max()) + 1) * width
    if space <= 4 * len(key) + (1 << 20):  # a small key space: count densely, no sort
        present = np.bincount(key, minlength=space) > 0
        keys, cell = np.flatnonzero(present), (np.cumsum(present) - 1)[key]
    else:
        keys, cell = np.unique(key, return_inverse=True)
    return {
        "seg": keys // width, "tick": keys % width + low,
        "volume": np.bincount(cell, weights=volume),
        "ask_volume": np.bincount(cell, weights=ask),
        "bid_volume": np.bincount(cell, weights=bid),
        "trades": np.bincount(cell, weights=trades).astype("int64"),
    }


def _segment_cells(ticks, size, side, starts, seg_ids=None) -> dict:
    """Footprint cells per (segment, tick), with ``seg`` = ``seg_ids[segment]``."""
    lengths = np.diff(np.append(starts, len(ticks)))
    seg = np.repeat(np.arange(len(starts)) if seg_ids is None else np.asarray(seg_ids), lengths)
    return _group_cells(seg, ticks, size, np.where(side == 1, size, 0.0),
                        np.where(side == -1, size, 0.0), np.ones(len(ticks)))


def _renko_batch(ts_ns, price, size, side, ticks, instrument, segments, bricks):
    """Bars and cells of Renko bricks; the filler bricks of a jump carry no trades."""
    starts = np.array([a for a, _ in segments], dtype=np.int64)
    ends = np.array([b for _, b in segments], dtype=np.int64)
    flow = _segment_bars(ts_ns, price, size, side, starts)  # per segment: its trades' aggregates
    seg = np.array([b[0] for b in bricks], dtype=np.int64)
    first = np.concatenate(([True], seg[1:] != seg[:-1]))  # the brick that holds the trades
    grid = np.array([(o, c) if o is not None else (0, 0) for _, o, c, _ in bricks], dtype=np.int64)
    forming = np.array([o is None for _, o, _, _ in bricks])
    o_p, c_p = instrument.to_price(grid[:, 0]), instrument.to_price(grid[:, 1])
    stamp = np.where(first, starts[seg], ends[seg] - 1)  # fillers: the trade that made the jump
    bars = {
        "ts": ts_ns[stamp],
        "open": np.where(forming, flow["open"][seg], o_p),
        "high": np.where(forming, flow["high"][seg], np.maximum(o_p, c_p)),
        "low": np.where(forming, flow["low"][seg], np.minimum(o_p, c_p)),
        "close": np.where(forming, flow["close"][seg], c_p),
    }
    for c in SUMS:
        bars[c] = np.where(first, flow[c][seg], 0).astype(flow[c].dtype)
    cells = _segment_cells(ticks, size, side, starts, np.flatnonzero(first))
    return bars, cells


def _empty_bars() -> dict:
    return {c: np.empty(0, "int64" if c in ("ts", "trades") else "float64")
            for c in ("ts", "open", "high", "low", "close") + SUMS}


def _empty_cells() -> dict:
    return {c: np.empty(0, "float64" if c in ("volume", "ask_volume", "bid_volume") else "int64")
            for c in ("seg", "tick") + SUMS}


def _cat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _take(cols: dict, index) -> dict:
    return {k: v[index] for k, v in cols.items()}


def _bars_frame(bars: dict) -> pd.DataFrame:
    """Bars in the model layout (one dict, in ``BAR_COLUMNS`` order: no reordering copy)."""
    data = {"ts": ns_to_utc(bars["ts"])}
    data.update((k, bars[k]) for k in ("open", "high", "low", "close", "volume", "ask_volume",
                                       "bid_volume"))
    data["delta"] = bars["ask_volume"] - bars["bid_volume"]
    data["trades"] = bars["trades"]
    data["open_interest"] = np.full(len(bars["ts"]), np.nan)
    return pd.DataFrame(data)


def _cells_frame(cells: dict, bar_ts: np.ndarray) -> pd.DataFrame:
    """Cells labelled with their bar's time (``bar_ts[seg]``), in the model footprint layout."""
    data = {"ts": ns_to_utc(bar_ts[cells["seg"]])}
    data.update((k, cells[k]) for k in ("tick",) + SUMS)
    return pd.DataFrame(data)


# --------------------------------------------------------------------------------------------
# Incremental form (the batch form is one call of it)


class BarAggregator:
    """Feed trades in batches (time order); get the bars that closed and the open bar, as a
    ``BarUpdate`` (``tradeflow.model``) that every live study follows (``apply(update)``).

    The concatenation of every ``closed`` and the last ``current`` equals ``build_bars`` of all the
    trades (same for the footprint). Heikin-Ashi specs are aggregated as their plain spec; apply
    :func:`heikin_ashi` for display.
    """

    def __init__(self, instrument: Instrument, spec):
        self.instrument = instrument
        self.spec = BarSpec.parse(spec)
        self.day = None  # trading day of the open bar (non-time bars restart each day)
        self.last_ts = None  # time (ns) of the last trade fed
        self._reset()

    def update(self, trades: pd.DataFrame | None = None,
               liquidations: pd.DataFrame | None = None) -> BarUpdate:
        """Aggregate a batch of ``trades`` (sorted by time here; none older than the last trade
        fed). ``liquidations`` of the same moment ride along in the update, untouched, for the
        studies that read them."""
        trades = _prepare(trades if trades is not None else empty_frame(TRADE_COLUMNS))
        if len(trades):
            first = int(trades["ts"].array.as_unit("ns").asi8[0])
            if self.last_ts is not None and first < self.last_ts:
                raise ModelError(
                    f"trade at {ns_to_utc(first)} is older than the last trade "
                    f"already aggregated ({ns_to_utc(self.last_ts)}); trades must "
                    f"arrive in time order")
        closed, closed_cells = [], []  # (bars, cells) dicts; cells' seg indexes their bars
        if len(trades) and self.spec.is_time:
            self._update(trades, closed, closed_cells)
        elif len(trades):
            # tick, volume, range and Renko bars start afresh each trading day, so that the bars
            # of a day do not depend on how much history was loaded before it
            days = self.instrument.session.trading_date(trades["ts"]).asi8
            bounds = np.flatnonzero(days[1:] != days[:-1]) + 1
            for part, day in zip(np.split(np.arange(len(trades)), bounds),
                                 days[np.concatenate(([0], bounds))]):
                if self.day is not None and day != self.day:
                    closed.append(self.open_bar)
                    closed_cells.append(self.open_cells)
                    self._reset()
                self.day = day
                self._update(trades.iloc[part], closed, closed_cells)
        if len(trades):
            self.last_ts = int(trades["ts"].array.as_unit("ns").asi8[-1])
        closed_bars, closed_footprint = self._closed_frames(closed, closed_cells)
        return BarUpdate(closed_bars, _bars_frame(self.open_bar), closed_footprint,
                         _cells_frame(self.open_cells, self.open_bar["ts"]), trades, liquidations)

    @staticmethod
    def _closed_frames(closed, closed_cells):
        """The closed bars and cells of an update, numbering cells' bars across the pieces."""
        offset, relabelled = 0, []
        for bars, cells in zip(closed, closed_cells):
            relabelled.append(dict(cells, seg=cells["seg"] + offset))
            offset += len(bars["ts"])
        bars = _cat(closed) if closed else _empty_bars()
        cells = _cat(relabelled) if relabelled else _empty_cells()
        return _bars_frame(bars), _cells_frame(cells, bars["ts"])

    def _reset(self) -> None:
        kind = self.spec.kind
        cutter = RenkoCutter if kind == "renko" else CUTTERS[kind]
        self.cutter = cutter(self.spec, self.instrument)
        self.open_bar = _empty_bars()  # 0 or 1 bar
        self.open_cells = _empty_cells()  # its cells, seg 0

    def _update(self, trades: pd.DataFrame, closed: list, closed_cells: list) -> None:
        """Aggregate one run of trades; append what closed to ``closed``/``closed_cells``."""
        ts, price, size, side, ticks = _arrays(trades, self.instrument)
        ts_ns = ts.asi8
        if self.spec.kind == "renko":
            segments, bricks, continues = self.cutter.cut(ts, ticks, size)
            bars, cells = _renko_batch(ts_ns, price, size, side, ticks, self.instrument,
                                       segments, bricks)
            complete, grid_first = bricks[-1][3], bricks[0][1] is not None
        else:
            cut = self.cutter.cut(ts, ticks, size)
            bars = _segment_bars(ts_ns, price, size, side, cut.starts, cut.keys)
            cells = _segment_cells(ticks, size, side, cut.starts)
            continues, grid_first = cut.continues, False
            complete = getattr(self.cutter, "complete", False)
        has_open = len(self.open_bar["ts"]) > 0
        if has_open and not continues:  # the bar left open is done: it closes first
            bars = _cat([self.open_bar, bars])
            cells = _cat([self.open_cells, dict(cells, seg=cells["seg"] + 1)])
        elif has_open:
            bars = _merge_first(self.open_bar, bars, keep_prices=grid_first)
            first = cells["seg"] == 0
            cells = _cat([_merge_cells(self.open_cells, _take(cells, first)),
                          _take(cells, ~first)])
        n = len(bars["ts"])
        n_closed = n if complete else n - 1
        is_open = cells["seg"] >= n_closed
        closed.append(_take(bars, slice(0, n_closed)))
        closed_cells.append(_take(cells, ~is_open))
        self.open_bar = _take(bars, slice(n_closed, n))
        self.open_cells = dict(_take(cells, is_open), seg=np.zeros(int(is_open.sum()), "int64"))


def _merge_first(open_bar: dict, bars: dict, keep_prices=False) -> dict:
    """``bars`` whose first bar is extended back by the bar left open by the previous batch.

    ``keep_prices``: the first bar's OHLC already are final (a completed Renko brick)."""
    bars = {k: v.copy() for k, v in bars.items()}
    bars["ts"][0] = open_bar["ts"][0]
    if not keep_prices:
        bars["open"][0] = open_bar["open"][0]
        bars["high"][0] = max(open_bar["high"][0], bars["high"][0])
        bars["low"][0] = min(open_bar["low"][0], bars["low"][0])
    for c in SUMS:
        bars[c][0] += open_bar[c][0]
    return bars


def _merge_cells(open_cells: dict, first: dict) -> dict:
    """Footprint of the open bar plus the first bar of a batch, summed per level (seg 0)."""
    both = _cat([open_cells, first])
    return _group_cells(both["seg"], both["tick"], *(both[c] for c in SUMS))


# --------------------------------------------------------------------------------------------
# Batch form


def _prepare(trades: pd.DataFrame) -> pd.DataFrame:
    """Trades in the model layout, sorted by time."""
    if not {"trade_id", "side"} <= set(trades.columns):
        return normalize_trades(trades)
    if not pd.DatetimeIndex(trades["ts"]).is_monotonic_increasing:
        return trades.sort_values("ts", kind="stable")
    return trades


def build(trades: pd.DataFrame, spec, instrument: Instrument) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bars and footprint cells of ``trades`` for ``spec`` (every bar, the last one included)."""
    spec = BarSpec.parse(spec)
    up = BarAggregator(instrument, spec).update(trades)
    bars = pd.concat([up.closed, up.current], ignore_index=True) if len(up.current) else up.closed
    cells = (pd.concat([up.closed_footprint, up.current_footprint], ignore_index=True)
             if len(up.current_footprint) else up.closed_footprint)
    if spec.heikin_ashi:
        bars = heikin_ashi(bars)
    return bars, cells


def build_bars(trades: pd.DataFrame, spec, instrument: Instrument) -> pd.DataFrame:
    """Bars (model bar layout) of ``trades`` for ``spec``."""
    return build(trades, spec, instrument)[0]


def build_footprint(trades: pd.DataFrame, spec, instrument: Instrument) -> pd.DataFrame:
    """Footprint cells (model footprint layout) of ``trades`` for ``spec``."""
    return build(trades, spec, instrument)[1]
