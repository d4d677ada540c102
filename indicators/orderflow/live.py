"""Incremental (live) forms of the order-flow studies: :class:`LiveOrderFlow`.

A live chart receives trades in small batches. ``LiveOrderFlow.update(trades)`` feeds a batch to a
``tradeflow.bars.BarAggregator`` and updates every study for the bars the batch touched only: the
bar that was still forming and any new ones. Rows of closed bars are kept, never recomputed (a
naked POC's ``naked_until`` and a late liquidation's bar are set in place). After every update,
``result(name)`` equals the batch function run on all trades (and liquidations) so far -- same
columns, dtypes and row order -- and ``changes(name)`` gives the rows the update wrote, indexed by
their position in ``result(name)``.

The aggregator is passed in rather than built here: ``indicators/`` imports only numpy, pandas and
``tradeflow.model`` (the layering rule), a chart already runs one for its candles, and handing it
over means trades are aggregated once and the studies see exactly the bars the chart draws
(``LiveUpdate.bar_update`` is the aggregator's own answer). This object calls it itself, with
exactly the trades it was given, so bars, cells and trades cannot drift apart.

Kept between updates, and why:

* bars, footprint cells and per-bar core values (running-delta extremes, POC, traded range) in
  numpy columns that grow (capacity doubles), so an update costs its batch plus the touched bars
  and frames are built only on request;
* the forming bar's running delta, maximum and minimum (its extremes continue in the next batch);
* per bar the CVD and its trading day (the sum carries over, and restarts on a new day);
* big trades: the groups of the last timestamp (the next batch may add prints to them);
  sweeps: the run of the last trade (it may go on);
* naked POCs by tick (a later bar that trades through one sets its ``naked_until``) and, for
  session POCs, the volume per tick of the current trading day;
* liquidations in the last bar or before any bar, raw: a bar opening later may take them.

Studies are computed per bar. For bar kinds whose bars can share an open time (tick, volume,
range, Renko) the cell-based batch functions, which match cells to bars by ``ts``, would merge such
bars; here each stays apart. Trades are placed in bars by count (the batch ``by="count"``).
Sums are kept in the batch functions' order where they are plain running sums; where the batch
uses pairwise or compensated summation the last bits may differ for sizes that are not exact
binary fractions (property tests use sizes that are, and compare divisions with a tolerance).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradeflow.model import BAR_COLUMNS, Session, price_to_tick

from .._frames import group_starts, positive_int, require, trade_arrays, ts_frame, ts_ns
from .aggression import (_SIDES, _gap_ns, _non_negative, _non_negative_int, _tick_size,
                         absorption, sweeps)
from .footprint import _reset_mode, cvd, cvd_candles, footprint_metrics
from .imbalance import _check_ratio, _flags, _runs, imbalances, stacked_imbalances, \
    unfinished_auctions
from .liquidations import liquidations_by_bar, liquidations_by_level
from .prints import _first_cover, _positive_number, big_trades, naked_pocs, zero_prints

__all__ = ["LiveOrderFlow", "LiveUpdate", "STUDY_PARAMS"]

REQUIRED = "<required>"  # a parameter without default (as in the batch function)
INSTRUMENT = "<instrument tick size>"  # defaults to the aggregator's instrument's tick size

# Parameters of each study: the batch function's own names and defaults.
STUDY_PARAMS = {
    "footprint_metrics": {},
    "cvd": {"session": None, "reset": None},
    "cvd_candles": {"session": None, "reset": None},
    "imbalances": {"ratio": 3.0, "min_volume": 0.0, "rows": 1, "compare_edges": False},
    "stacked_imbalances": {"min_rows": 3, "ratio": 3.0, "min_volume": 0.0, "rows": 1,
                           "compare_edges": False},
    "unfinished_auctions": {"rows": 1, "min_volume": 0.0},
    "big_trades": {"min_size": REQUIRED, "aggregate_same_ts": True},
    "zero_prints": {"tick_size": None},
    "naked_pocs": {"session": None},
    "liquidations_by_bar": {},
    "liquidations_by_level": {"tick_size": INSTRUMENT},
    "sweeps": {"tick_size": INSTRUMENT, "min_levels": 3, "max_gap": "250ms", "min_size": 0},
    "absorption": {"tick_size": INSTRUMENT, "min_volume": REQUIRED, "max_progress_ticks": 1,
                   "side": None},
}
_OUTPUTS = ("bars", "footprint") + tuple(STUDY_PARAMS)
_MISSING = np.iinfo("int64").min  # NaT as int64 nanoseconds
_ZERO_SIDES = np.array(["ask", "bid", "both"], dtype=object)


# --------------------------------------------------------------------------------------------
# storage


class _Columns:
    """Numpy columns that grow at the end and can be cut back.

    Capacity doubles, so appending k rows costs O(k) amortised whatever the history; cutting is
    O(1). Rows of a bar still forming are cut and appended anew at each update."""

    def __init__(self, **dtypes):
        self._data = {k: np.empty(64, dtype=v) for k, v in dtypes.items()}
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name][:self.n]  # a view: valid until the next append

    def cut(self, n: int) -> None:
        self.n = min(self.n, int(n))

    def append(self, cols: dict) -> None:
        k = len(next(iter(cols.values())))
        end = self.n + k
        cap = len(next(iter(self._data.values())))
        if end > cap:
            size = max(end, 2 * cap)
            for name, old in self._data.items():
                new = np.empty(size, dtype=old.dtype)
                new[:self.n] = old[:self.n]
                self._data[name] = new
        for name, arr in self._data.items():
            arr[self.n:end] = cols[name]
        self.n = end

    def take(self, rows) -> dict:
        """Copies of the given rows (a slice or an index array)."""
        return {k: np.array(v[:self.n][rows]) for k, v in self._data.items()}


@dataclass
class _Touch:
    """What one update touched: bars ``j0..n-1`` (the first ``n_closed`` of all bars are closed),
    their columns (core values included), their cells and the batch's trades, as numpy arrays.
    ``poc_cell`` indexes, per touched bar with cells (``poc_bar``), its POC among ``cells``."""

    j0: int
    n: int
    n_closed: int
    bars: dict
    cells: dict
    trades: dict
    poc_bar: np.ndarray
    poc_cell: np.ndarray


@dataclass
class LiveUpdate:
    """What one :meth:`LiveOrderFlow.update` did: bars ``first_bar`` to ``bars - 1`` were
    (re)computed; the first ``closed`` bars are final. ``bar_update`` is the aggregator's
    ``BarUpdate`` for the batch (None when no trades came)."""

    first_bar: int
    bars: int
    closed: int
    bar_update: object | None = None


# --------------------------------------------------------------------------------------------
# per-bar computations shared by the studies (numpy, vectorised over the touched bars)


def _pocs(group: np.ndarray, tick: np.ndarray, vol: np.ndarray):
    """Per group of rows sorted by (group, tick): the index of its POC -- most volume; ties to the
    tick closest to the middle of the group's lowest and highest tick, then the lower one (the rule
    of ``bar_poc`` and of the volume profile). Returns (picks, group starts, group ends)."""
    if not len(group):
        e = np.empty(0, "int64")
        return e, e, e
    first = group_starts(group)
    grp = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(group)) - 1
    vmax = np.maximum.reduceat(vol, starts)[grp]
    dist = np.abs(2 * tick - (tick[starts] + tick[ends])[grp])
    cand = np.flatnonzero(vol == vmax)
    pick = cand[np.lexsort((tick[cand], dist[cand], grp[cand]))]
    return pick[group_starts(grp[pick])], starts, ends


def _extremes(signed: np.ndarray, counts: np.ndarray, carry):
    """Running-delta maximum and minimum of each bar (the opening 0 included) and the running
    delta at each bar's end. ``counts``: the batch's trades per bar; ``carry``: (run, max, min) of
    the first bar from earlier batches, or None when it is new."""
    nb = len(counts)
    run_end, hi, lo = np.zeros(nb), np.zeros(nb), np.zeros(nb)
    if carry is not None and nb:
        run_end[0], hi[0], lo[0] = carry
    init = run_end.copy()
    nonempty = counts > 0
    if len(signed):
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        cs = np.cumsum(signed)
        base = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0.0)
        run = cs - np.repeat(base, counts) + np.repeat(init, counts)
        s = starts[nonempty]
        hi[nonempty] = np.maximum(hi[nonempty], np.maximum.reduceat(run, s))
        lo[nonempty] = np.minimum(lo[nonempty], np.minimum.reduceat(run, s))
        run_end[nonempty] = run[s + counts[nonempty] - 1]
    return np.maximum(hi, 0.0), np.minimum(lo, 0.0), run_end


def _grouped(cells: dict, rows: int) -> dict:
    """Cells summed into rows of ``rows`` ticks per bar, as ``imbalance._cell_arrays`` does, keyed
    by bar index (``ts``) rather than time. Cells come sorted by (bar, tick)."""
    key = np.floor_divide(cells["tick"], rows) * rows
    out = {"ts": cells["bar"], "tick": key}
    cols = ("volume", "ask_volume", "bid_volume", "trades")
    if rows == 1:
        return {**out, **{c: cells[c] for c in cols}}
    s = np.flatnonzero(group_starts(cells["bar"]) | group_starts(key))
    out = {"ts": cells["bar"][s], "tick": key[s]}
    for c in cols:
        out[c] = np.add.reduceat(cells[c], s) if len(s) else cells[c][:0]
    return out


def _levels(lo: np.ndarray, hi: np.ndarray):
    """Every level lo..hi of each range: (range index, level, offset of each range's first)."""
    n = (hi - lo + 1).astype("int64")
    first = np.cumsum(n) - n
    which = np.repeat(np.arange(len(n)), n)
    return which, lo[which] + (np.arange(n.sum()) - first[which]), first


class _TradingDays:
    """Trading date (ns) of bar times per session, remembering the span ``[start, end)`` of the
    last day seen: a live update's bars almost always fall in it, and then no pandas time-zone
    work is needed. A span is kept only once both its ends are checked to map to that day."""

    _DAY = 86_400_000_000_000

    def __init__(self):
        self._span: dict[Session, tuple[int, int, int]] = {}

    def keys(self, session: Session | None, ts: np.ndarray) -> np.ndarray:
        if session is None or not len(ts):
            return np.zeros(len(ts), "int64")
        start, end, day = self._span.get(session, (0, 0, 0))
        if ts[0] >= start and ts[-1] < end:
            return np.full(len(ts), day, dtype="int64")
        keys = self._dates(session, ts)
        self._remember(session, int(keys[-1]))
        return keys

    @staticmethod
    def _dates(session: Session, ts) -> np.ndarray:
        return session.trading_date(pd.DatetimeIndex(ts_frame(np.asarray(ts, "int64")))).asi8

    def _remember(self, session: Session, day: int) -> None:
        bounds = session.day_start_utc(ts_frame(np.array([day, day + self._DAY]))).asi8
        start, end = int(bounds[0]), int(bounds[1])
        if end > start and (self._dates(session, [start, end - 1]) == day).all():
            self._span[session] = (start, end, day)


def _frame(cols: dict, index) -> pd.DataFrame:
    return pd.DataFrame(cols, index=index)


def _index(rows, n: int):
    """The index of a frame of ``rows`` (a slice or positions) of a result of ``n`` rows."""
    if isinstance(rows, slice):
        start, stop, _ = rows.indices(n)
        return pd.RangeIndex(start, stop)
    return pd.Index(np.asarray(rows, dtype="int64"))


# --------------------------------------------------------------------------------------------
# studies with rows per bar


class _PerBar:
    """A study whose rows belong to bars, in bar order (``start[j]``: bar j's first row). An
    update cuts the rows from the first touched bar on and appends the touched bars' rows anew;
    earlier rows stay as they are."""

    columns: dict = {}

    def __init__(self, owner: "LiveOrderFlow"):
        self.owner = owner
        self.rows = _Columns(bar="int64", **self.columns)
        self.start = _Columns(s="int64")
        self.changed = slice(0, 0)

    def update(self, t: _Touch) -> None:
        cols = self.compute(t)
        cut = self.start["s"][t.j0] if len(self.start) > t.j0 else len(self.rows)
        self.rows.cut(cut)
        self.start.cut(t.j0)
        self.start.append({"s": cut + np.searchsorted(cols["bar"], np.arange(t.j0, t.n))})
        self.rows.append(cols)
        self.changed = slice(cut, len(self.rows))

    def result(self):
        return self.frame(slice(0, len(self.rows)))

    def changes(self):
        return self.frame(self.changed)

    def frame(self, rows):
        cols = self.rows.take(rows)
        cols["ts"] = ts_frame(self.owner._bars["ts"][cols["bar"]])
        return self.build(cols, _index(rows, len(self.rows)))

    def compute(self, t: _Touch) -> dict:
        raise NotImplementedError

    def build(self, cols: dict, index) -> pd.DataFrame:
        raise NotImplementedError


class _FootprintMetrics:
    """``footprint_metrics``: read from the bars' own columns (one row per bar), nothing kept."""

    def __init__(self, owner: "LiveOrderFlow"):
        self.owner = owner
        self.changed = slice(0, 0)

    def update(self, t: _Touch) -> None:
        self.changed = slice(t.j0, t.n)

    def result(self):
        return self.frame(slice(0, len(self.owner._bars)))

    def changes(self):
        return self.frame(self.changed)

    def frame(self, rows):
        b = self.owner._bars.take(rows)
        volume = b["volume"]
        delta = b["ask_volume"] - b["bid_volume"]
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(volume > 0, delta / np.where(volume > 0, volume, 1.0), np.nan)
        poc = pd.array(np.where(b["ncells"] > 0, b["poc"], 0), dtype="Int64")
        poc[b["ncells"] == 0] = pd.NA
        return _frame({"ts": ts_frame(b["ts"]), "volume": volume, "trades": b["trades"],
                       "delta": delta, "delta_pct": pct, "delta_max": b["dmax"],
                       "delta_min": b["dmin"], "poc": poc}, _index(rows, len(self.owner._bars)))


class _Cvd(_PerBar):
    """``cvd`` / ``cvd_candles``. Kept per bar: the CVD after it, its trading day and whether it
    opens a day (the next bar continues the sum or restarts it)."""

    columns = {"cvd": "float64", "day": "int64", "first": "bool"}

    def __init__(self, owner, candles: bool, session=None, reset=None):
        super().__init__(owner)
        if session is not None and not isinstance(session, Session):
            raise ValueError(f"cvd: session must be a tradeflow.model.Session (e.g. "
                             f"instrument.session) or None, got {type(session).__name__}")
        self.mode = _reset_mode(session, reset)
        self.session = session if self.mode == "session" else None
        self.candles = candles

    def compute(self, t: _Touch) -> dict:
        delta = t.bars["ask_volume"] - t.bars["bid_volume"]
        day = self.owner._days.keys(self.session, t.bars["ts"])
        first = np.ones(len(day), dtype=bool)
        first[1:] = day[1:] != day[:-1]
        carry = 0.0
        if t.j0 > 0 and len(day):
            first[0] = day[0] != self.rows["day"][t.j0 - 1]
            carry = float(self.rows["cvd"][t.j0 - 1])
        out = np.empty(len(day))
        starts = np.union1d([0], np.flatnonzero(first)) if len(day) else np.empty(0, "int64")
        for a, b in zip(starts, np.append(starts[1:], len(day))):
            start = 0.0 if first[a] else carry
            out[a:b] = np.cumsum(np.r_[start, delta[a:b]])[1:]  # sequential, as the batch sums
        return {"bar": np.arange(t.j0, t.n), "cvd": out, "day": day, "first": first}

    def build(self, cols: dict, index):
        if not self.candles:
            return pd.Series(cols["cvd"], index=index, name="cvd")
        b = self.owner._bars.take(cols["bar"])
        close = cols["cvd"]
        open_ = close - (b["ask_volume"] - b["bid_volume"])
        open_[cols["first"]] = 0.0
        high = np.maximum.reduce([open_ + b["dmax"], open_, close])
        low = np.minimum.reduce([open_ + b["dmin"], open_, close])
        return _frame({"ts": cols["ts"], "open": open_, "high": high, "low": low,
                       "close": close}, index)


def _imbalance_params(what, ratio, min_volume, rows, compare_edges):
    ratio, min_volume = _check_ratio(ratio, min_volume)
    rows = positive_int(rows, f"{what}: rows")
    if not isinstance(compare_edges, (bool, np.bool_)):
        raise ValueError(f"{what}: compare_edges must be True or False, got {compare_edges!r}")
    return ratio, min_volume, rows, bool(compare_edges)


class _Imbalances(_PerBar):
    """``imbalances``: one row per bar and (grouped) row of the touched bars."""

    columns = {"tick": "int64", "volume": "float64", "ask_volume": "float64",
               "bid_volume": "float64", "bid_below": "float64", "ask_above": "float64",
               "buy": "bool", "sell": "bool"}

    def __init__(self, owner, ratio=3.0, min_volume=0.0, rows=1, compare_edges=False):
        super().__init__(owner)
        self.p = _imbalance_params("imbalances", ratio, min_volume, rows, compare_edges)

    def compute(self, t: _Touch) -> dict:
        ratio, min_volume, rows, edges = self.p
        a = _grouped(t.cells, rows)
        buy, sell, below, above = _flags(a, rows, ratio, min_volume, edges)
        return {"bar": a["ts"], "tick": a["tick"], "volume": a["volume"],
                "ask_volume": a["ask_volume"], "bid_volume": a["bid_volume"],
                "bid_below": below, "ask_above": above, "buy": buy, "sell": sell}

    def build(self, cols: dict, index):
        return _frame({"ts": cols["ts"], **{k: cols[k] for k in self.columns}}, index)


class _Stacked(_PerBar):
    """``stacked_imbalances``: zones of the touched bars, ordered by bar, side (buy first), tick."""

    columns = {"side": "int8", "tick_low": "int64", "tick_high": "int64", "rows": "int64"}

    def __init__(self, owner, min_rows=3, ratio=3.0, min_volume=0.0, rows=1,
                 compare_edges=False):
        super().__init__(owner)
        self.min_rows = positive_int(min_rows, "stacked_imbalances: min_rows")
        self.p = _imbalance_params("stacked_imbalances", ratio, min_volume, rows, compare_edges)

    def compute(self, t: _Touch) -> dict:
        ratio, min_volume, rows, edges = self.p
        a = _grouped(t.cells, rows)
        buy, sell, _, _ = _flags(a, rows, ratio, min_volume, edges)
        parts = []
        for side, flag in ((1, buy), (-1, sell)):
            s, e = _runs(a["ts"], a["tick"], flag, rows, self.min_rows)
            parts.append((a["ts"][s], np.full(len(s), side, "int8"), a["tick"][s],
                          a["tick"][e - 1], (e - s).astype("int64")))
        bar, side, lo, hi, n = (np.concatenate(x) for x in zip(*parts))
        order = np.lexsort((lo, -side, bar))
        return {"bar": bar[order], "side": side[order], "tick_low": lo[order],
                "tick_high": hi[order], "rows": n[order]}

    def build(self, cols: dict, index):
        return _frame({"ts": cols["ts"], **{k: cols[k] for k in self.columns}}, index)


class _Unfinished(_PerBar):
    """``unfinished_auctions``: one row per touched bar with cells."""

    columns = {"high_tick": "int64", "low_tick": "int64", "unfinished_high": "bool",
               "unfinished_low": "bool"}

    def __init__(self, owner, rows=1, min_volume=0.0):
        super().__init__(owner)
        self.rows_ = positive_int(rows, "unfinished_auctions: rows")
        self.min_volume = _non_negative(min_volume, "min_volume")

    def compute(self, t: _Touch) -> dict:
        a = _grouped(t.cells, self.rows_)
        lo = np.flatnonzero(group_starts(a["ts"]))
        hi = np.append(lo[1:], len(a["ts"])) - 1 if len(lo) else lo
        ask, bid, m = a["ask_volume"], a["bid_volume"], self.min_volume

        def both(i):
            return (ask[i] > 0) & (bid[i] > 0) & (ask[i] >= m) & (bid[i] >= m)

        return {"bar": a["ts"][lo], "high_tick": a["tick"][hi], "low_tick": a["tick"][lo],
                "unfinished_high": both(hi), "unfinished_low": both(lo)}

    def build(self, cols: dict, index):
        return _frame({"ts": cols["ts"], **{k: cols[k] for k in self.columns}}, index)


class _ZeroPrints(_PerBar):
    """``zero_prints``: levels of the touched bars' ranges with one side (or both) empty."""

    columns = {"tick": "int64", "missing": "int8"}  # missing: 0 ask, 1 bid, 2 both

    def __init__(self, owner, tick_size=None):
        super().__init__(owner)
        self.tick_size = (None if tick_size is None
                          else _positive_number(tick_size, "zero_prints: tick_size"))

    def _ranges(self, t: _Touch):
        """(bar, low tick, high tick) of the bars to scan and each cell's range index."""
        b, c = t.bars, t.cells
        if self.tick_size is None:  # the range of the bar's cells; bars without cells skipped
            with_cells = b["ncells"] > 0
            which = np.cumsum(group_starts(c["bar"])) - 1
            return (np.arange(t.j0, t.n)[with_cells], b["lo"][with_cells], b["hi"][with_cells],
                    which)
        lo = price_to_tick(b["low"] / self.tick_size, 1.0)
        hi = price_to_tick(b["high"] / self.tick_size, 1.0)
        has = b["ncells"] > 0  # traded levels widen the stated range
        lo[has] = np.minimum(lo[has], b["lo"][has])
        hi[has] = np.maximum(hi[has], b["hi"][has])
        return np.arange(t.j0, t.n), lo, hi, c["bar"] - t.j0

    def compute(self, t: _Touch) -> dict:
        bar, lo, hi, cell_range = self._ranges(t)
        which, level, first = _levels(lo, hi)
        ask, bid = np.zeros(len(level)), np.zeros(len(level))
        pos = first[cell_range] + (t.cells["tick"] - lo[cell_range])
        ask[pos], bid[pos] = t.cells["ask_volume"], t.cells["bid_volume"]
        no_ask, no_bid = ask <= 0, bid <= 0
        miss = no_ask | no_bid
        code = np.where(no_ask & no_bid, 2, np.where(no_ask, 0, 1)).astype("int8")
        return {"bar": bar[which][miss], "tick": level[miss], "missing": code[miss]}

    def build(self, cols: dict, index):
        return _frame({"ts": cols["ts"], "tick": cols["tick"],
                       "missing_side": _ZERO_SIDES[cols["missing"]]}, index)


class _Absorption(_PerBar):
    """``absorption``: per touched bar with cells, its POC when one side's aggression there did
    not carry the close beyond the level."""

    columns = {"tick": "int64", "bid": "bool", "volume": "float64",
               "aggressor_volume": "float64", "progress_ticks": "int64"}

    def __init__(self, owner, tick_size, min_volume, max_progress_ticks=1, side=None):
        super().__init__(owner)
        self.tick_size = _tick_size(tick_size, "absorption")
        self.min_volume = _non_negative(min_volume, "absorption: min_volume")
        self.max_progress = _non_negative_int(max_progress_ticks,
                                              "absorption: max_progress_ticks")
        if side not in _SIDES:
            raise ValueError(f"absorption: side must be None, 'bid' or 'ask', got {side!r}")
        self.side = side

    def compute(self, t: _Touch) -> dict:
        c, i = t.cells, t.poc_cell
        ask, bid, vol, tick = (c[k][i] for k in ("ask_volume", "bid_volume", "volume", "tick"))
        close = price_to_tick(t.bars["close"][t.poc_bar - t.j0], self.tick_size)
        is_bid, is_ask = bid > ask, ask > bid
        agg = np.where(is_bid, bid, ask)
        progress = np.where(is_bid, tick - close, close - tick)
        keep = (is_bid | is_ask) & (agg >= self.min_volume) & (progress <= self.max_progress)
        if self.side is not None:
            keep &= is_bid if self.side == "bid" else is_ask
        return {"bar": t.poc_bar[keep], "tick": tick[keep], "bid": is_bid[keep],
                "volume": vol[keep], "aggressor_volume": agg[keep],
                "progress_ticks": progress[keep].astype("int64")}

    def build(self, cols: dict, index):
        side = np.where(cols["bid"], "bid", "ask").astype(object)
        return _frame({"ts": cols["ts"], "tick": cols["tick"], "side": side,
                       "volume": cols["volume"], "aggressor_volume": cols["aggressor_volume"],
                       "progress_ticks": cols["progress_ticks"]}, index)


# --------------------------------------------------------------------------------------------
# naked POCs


class _DayProfile:
    """Volume per tick of one trading day, dense over a tick span that grows as needed: adding a
    bar's cells costs the cells, and the POC costs the day's span -- never the history. Volumes
    are added in order from 0, as the batch profile's ``bincount`` adds them."""

    def __init__(self, day: int):
        self.day, self.base, self.vol = day, 0, np.zeros(0)
        self.lo = self.hi = None  # lowest and highest traded tick

    def copy(self) -> "_DayProfile":
        out = _DayProfile(self.day)
        out.base, out.vol, out.lo, out.hi = self.base, self.vol.copy(), self.lo, self.hi
        return out

    def add(self, ticks: np.ndarray, vols: np.ndarray) -> None:
        if not len(ticks):
            return
        lo, hi = int(ticks.min()), int(ticks.max())
        if self.lo is not None:
            lo, hi = min(lo, self.lo), max(hi, self.hi)
        if lo < self.base or hi >= self.base + len(self.vol):
            span = hi - lo + 1
            base = lo - span // 2  # room on both sides: growing is rare
            vol = np.zeros(2 * span)
            if self.lo is not None:  # the traded part moves over; the rest is zeros
                vol[self.lo - base:self.hi - base + 1] = \
                    self.vol[self.lo - self.base:self.hi - self.base + 1]
            self.base, self.vol = base, vol
        self.lo, self.hi = lo, hi
        np.add.at(self.vol, ticks - self.base, vols)

    def poc(self):
        """The POC tick (rule of the volume profile), or None without volume."""
        if self.lo is None:
            return None
        v = self.vol[self.lo - self.base:self.hi - self.base + 1]
        if not v.sum() > 0:
            return None
        pick, _, _ = _pocs(np.zeros(len(v), "int64"), np.arange(self.lo, self.hi + 1), v)
        return int(self.lo + pick[0])


class _NakedPocs:
    """``naked_pocs``. Kept: one row per bar with cells (``bar, poc, until``) and, with a session,
    one per trading day with volume; ``store`` maps a tick to the fixed POCs there that no later
    bar has traded through yet (codes: bar row ``r``, or ``-(r + 1)`` for session row ``r``), so a
    touched bar only looks up the ticks of its own range. Session POCs need the volume per tick
    of the current day from its closed bars (``profile``)."""

    def __init__(self, owner, session=None):
        if session is not None and not isinstance(session, Session):
            raise ValueError(f"naked_pocs: session must be a tradeflow.model.Session (e.g. "
                             f"instrument.session) or None, got {type(session).__name__}")
        self.owner, self.session = owner, session
        self.rows = _Columns(bar="int64", poc="int64", until="int64")
        self.start = _Columns(s="int64")
        self.days = _Columns(day="int64", poc="int64", until="int64")
        self.store: dict[int, list[int]] = {}
        self.open_day = None  # (day, its row or None) of the day still going on
        self.profile = None  # _DayProfile of the last day's closed bars
        self.changed = (np.empty(0, "int64"), np.empty(0, "int64"))

    # -- the update

    def update(self, t: _Touch) -> None:
        has = t.bars["ncells"] > 0
        bar = np.arange(t.j0, t.n)[has]
        lo, hi = t.bars["lo"][has], t.bars["hi"][has]
        poc = t.bars["poc"][has]
        days = (self.owner._days.keys(self.session, t.bars["ts"][has])
                if self.session is not None else None)
        if days is not None and len(days):
            self._close_open_day(days[0])
        cand_ticks = self._candidates(lo, hi)
        day_q = self._session_queries(t, days) if days is not None and len(days) else []
        q_poc = np.concatenate([cand_ticks, poc] + [np.array([d[1]]) for d in day_q]
                               ).astype("int64")
        q_after = np.concatenate([np.full(len(cand_ticks), -1), np.arange(len(bar))]
                                 + [np.array([d[2]]) for d in day_q]).astype("int64")
        hit = _first_cover(lo, hi, q_after, q_poc) if len(bar) else np.full(len(q_poc), -1)
        until = np.where(hit >= 0, t.bars["ts"][has][np.maximum(hit, 0)] if len(bar) else 0,
                         _MISSING)
        k = len(cand_ticks)
        covered = self._cover(cand_ticks, until[:k])
        bar_rows = self._write_bars(t, bar, poc, until[k:k + len(bar)])
        day_rows = self._write_days(day_q, until[k + len(bar):], days)
        self.changed = (np.union1d(covered[0], bar_rows), np.union1d(covered[1], day_rows))

    def _candidates(self, lo, hi) -> np.ndarray:
        """Ticks in the touched bars' span holding naked POCs (fixed before this update)."""
        if not len(lo) or not self.store:
            return np.empty(0, "int64")
        a, b = int(lo.min()), int(hi.max())
        if b - a + 1 <= len(self.store):
            ticks = [x for x in range(a, b + 1) if x in self.store]
        else:
            ticks = [x for x in self.store if a <= x <= b]
        return np.asarray(sorted(ticks), dtype="int64")

    def _cover(self, ticks, until):
        """Set ``naked_until`` of every stored POC at the covered ``ticks``; returns the bar and
        session rows changed."""
        bar_rows, day_rows = [], []
        for tick, u in zip(ticks.tolist(), until.tolist()):
            if u == _MISSING:
                continue
            for code in self.store.pop(tick):
                if code >= 0:
                    self.rows._data["until"][code] = u
                    bar_rows.append(code)
                else:
                    self.days._data["until"][-code - 1] = u
                    day_rows.append(-code - 1)
        return np.asarray(bar_rows, "int64"), np.asarray(day_rows, "int64")

    def _remember(self, tick: int, code: int) -> None:
        self.store.setdefault(int(tick), []).append(int(code))

    def _write_bars(self, t: _Touch, bar, poc, until) -> np.ndarray:
        cut = self.start["s"][t.j0] if len(self.start) > t.j0 else len(self.rows)
        self.rows.cut(cut)
        self.start.cut(t.j0)
        self.start.append({"s": cut + np.searchsorted(bar, np.arange(t.j0, t.n))})
        self.rows.append({"bar": bar, "poc": poc, "until": until})
        for i in np.flatnonzero((bar < t.n_closed) & (until == _MISSING)):
            self._remember(poc[i], cut + i)  # closed and still naked: later bars may cover it
        return np.arange(cut, len(self.rows))

    # -- session POCs

    def _close_open_day(self, first_day: int) -> None:
        """The day still going on at the last update is over when a bar of a later day comes:
        its POC is final, so it joins the store (its row does not change)."""
        if self.open_day is None or self.open_day[0] >= first_day:
            return
        day, row = self.open_day
        if row is not None and self.days["until"][row] == _MISSING:
            self._remember(self.days["poc"][row], -row - 1)
        self.open_day = None

    def _profile_of(self, day: int) -> _DayProfile:
        """The profile of ``day`` from its closed bars before this update (empty for a new day)."""
        return self.profile if self.profile is not None and self.profile.day == day \
            else _DayProfile(day)

    def _session_queries(self, t: _Touch, days) -> list:
        """(day, POC, index among the touched bars with cells of its last bar) for each touched
        day with volume; adds the touched closed bars of the last day to its profile."""
        c = t.cells
        cell_day = days[np.cumsum(group_starts(c["bar"])) - 1] if len(c["bar"]) else days[:0]
        closed = c["bar"] < t.n_closed
        out, bounds = [], np.flatnonzero(group_starts(days))
        last = int(days[-1])
        for a, b in zip(bounds, np.append(bounds[1:], len(days))):
            day = int(days[a])
            sel = cell_day == day
            base = self._profile_of(day)
            if day == last:  # its closed bars stay in the profile for the next update
                done = sel & closed
                base.add(c["tick"][done], c["volume"][done])
                self.profile, sel = base, sel & ~closed
            prof = base.copy() if sel.any() else base
            prof.add(c["tick"][sel], c["volume"][sel])
            poc = prof.poc()
            if poc is not None:
                out.append((day, poc, b - 1))
        return out

    def _write_days(self, day_q, until, days) -> np.ndarray:
        if days is None or not len(days):
            return np.empty(0, "int64")
        if self.open_day is not None and self.open_day[1] is not None:
            self.days.cut(self.open_day[1])  # the day going on is written anew
        first = len(self.days)
        self.open_day = (int(days[-1]), None)
        for (day, poc, _), u in zip(day_q, until.tolist()):
            row = len(self.days)
            self.days.append({"day": [day], "poc": [poc], "until": [u]})
            if day == days[-1]:
                self.open_day = (day, row)
            elif u == _MISSING:
                self._remember(poc, -row - 1)
        return np.arange(first, len(self.days))

    # -- frames

    def result(self):
        return self.frame(np.arange(len(self.rows)), np.arange(len(self.days)))

    def changes(self):
        return self.frame(*self.changed)

    def frame(self, bar_rows, day_rows) -> pd.DataFrame:
        b, d = self.rows.take(bar_rows), self.days.take(day_rows)
        ts = np.concatenate([self.owner._bars["ts"][b["bar"]], d["day"]])
        kind = np.array(["bar"] * len(b["bar"]) + ["session"] * len(d["day"]), dtype=object)
        index = np.concatenate([bar_rows, len(self.rows) + np.asarray(day_rows, "int64")])
        return _frame({"ts": ts_frame(ts), "kind": kind,
                       "poc": np.concatenate([b["poc"], d["poc"]]),
                       "naked_until": ts_frame(np.concatenate([b["until"], d["until"]]))},
                      index if len(index) != len(self.rows) + len(self.days)
                      else pd.RangeIndex(len(index)))


# --------------------------------------------------------------------------------------------
# studies over the trades themselves


class _Prints:
    """``big_trades``. Kept: the rows of timestamps before the last one (final) and the groups of
    the last timestamp (one per side, or the big single prints), which the next batch may extend
    or join: ``size``, ``pv`` (size-weighted price sum), low, high, prints."""

    _EMPTY = {"t": "int64", "side": "int64", "size": "float64", "pv": "float64",
              "lo": "float64", "hi": "float64", "n": "int64"}

    def __init__(self, owner, min_size, aggregate_same_ts=True):
        self.min_size = _positive_number(min_size, "big_trades: min_size")
        if not isinstance(aggregate_same_ts, (bool, np.bool_)):
            raise ValueError(f"big_trades: aggregate_same_ts must be True or False, "
                             f"got {aggregate_same_ts!r}")
        self.aggregate = bool(aggregate_same_ts)
        self.rows = _Columns(ts="int64", side="int8", price="float64", size="float64",
                             prints="int64", price_low="float64", price_high="float64")
        self.open = {k: np.empty(0, v) for k, v in self._EMPTY.items()}
        self.changed = slice(0, 0)

    def update(self, tr: dict) -> None:
        t, price, size, side = tr["t"], tr["price"], tr["size"], tr["side"]
        work = {"t": t, "side": side, "size": size, "pv": price * size, "lo": price, "hi": price,
                "n": np.ones(len(t), "int64")}
        work = {k: np.concatenate([self.open[k], work[k]]) for k in work}
        order = np.lexsort((-work["side"], work["t"]))  # stable: earlier prints first
        w = {k: v[order] for k, v in work.items()}
        g = self._groups(w) if self.aggregate else w
        last = g["t"] == g["t"][-1]
        before = len(self.rows)
        self._append(g, ~last & (g["size"] >= self.min_size))
        self.open = {k: v[last & (self.aggregate | (g["size"] >= self.min_size))]
                     for k, v in g.items()}
        self.changed = slice(before, None)

    @staticmethod
    def _groups(w: dict) -> dict:
        s = np.flatnonzero(group_starts(w["t"]) | group_starts(w["side"]))
        return {"t": w["t"][s], "side": w["side"][s], "size": np.add.reduceat(w["size"], s),
                "pv": np.add.reduceat(w["pv"], s), "lo": np.minimum.reduceat(w["lo"], s),
                "hi": np.maximum.reduceat(w["hi"], s), "n": np.add.reduceat(w["n"], s)}

    def _append(self, g: dict, keep, into: _Columns | None = None) -> None:
        tot, lo, hi = g["size"][keep], g["lo"][keep], g["hi"][keep]
        if self.aggregate:
            with np.errstate(invalid="ignore", divide="ignore"):
                vw = np.where(tot > 0, g["pv"][keep] / tot, (lo + hi) / 2)
            vw = np.clip(vw, lo, hi)  # as the batch: rounding cannot leave the prints' range
        else:
            vw = lo
        (self.rows if into is None else into).append(
            {"ts": g["t"][keep], "side": g["side"][keep], "price": vw, "size": tot,
             "prints": g["n"][keep], "price_low": lo, "price_high": hi})

    def _open_rows(self) -> dict:
        tail = _Columns(**{k: v.dtype for k, v in self.rows._data.items()})
        self._append(self.open, self.open["size"] >= self.min_size, tail)
        return tail.take(slice(None))

    def result(self):
        return self.frame(slice(0, None))

    def changes(self):
        return self.frame(self.changed)

    def frame(self, rows) -> pd.DataFrame:
        start = rows.indices(len(self.rows))[0]
        done, tail = self.rows.take(rows), self._open_rows()
        cols = {k: np.concatenate([done[k], tail[k]]) for k in done}
        cols["ts"] = ts_frame(cols["ts"])
        return _frame(cols, pd.RangeIndex(start, start + len(cols["size"])))


class _Sweeps:
    """``sweeps``. Kept: the qualifying runs that ended, and the run of the last trade (it may
    go on): its start time, side, first tick, levels, size, prints, and the last trade's time and
    tick (the next trade continues the run or breaks it)."""

    def __init__(self, owner, tick_size, min_levels=3, max_gap="250ms", min_size=0):
        self.tick_size = _tick_size(tick_size, "sweeps")
        if isinstance(min_levels, bool) or not isinstance(min_levels, numbers.Integral) \
                or min_levels < 2:
            raise ValueError(f"sweeps: min_levels must be a whole number >= 2 (a sweep clears "
                             f"at least two levels), got {min_levels!r}")
        self.min_levels = int(min_levels)
        self.gap = _gap_ns(max_gap)
        self.min_size = _non_negative(min_size, "sweeps: min_size")
        self.rows = _Columns(ts_start="int64", ts_end="int64", side="int8", tick_start="int64",
                             tick_end="int64", levels="int64", size="float64", trades="int64")
        self.open = None  # the last run: dict of scalars
        self.changed = slice(0, 0)

    def _breaks(self, t, side, tick):
        """Where a run breaks before each trade, and where a run's tick changes (the batch rule;
        the first trade is compared with the last one of the previous batch)."""
        m = len(t)
        pt, ps, pk = (np.zeros(m, "int64") for _ in range(3))
        pt[1:], ps[1:], pk[1:] = t[:-1], side[:-1], tick[:-1]
        if self.open is not None:
            pt[0], ps[0], pk[0] = self.open["t_last"], self.open["side"], self.open["tick_last"]
        brk = (side != ps) | (side == 0) | (t - pt > self.gap) | (side * (tick - pk) < 0)
        if self.open is None:
            brk[0] = True
        changed = ((tick != pk) & ~brk).astype("int64")
        return brk, changed

    def update(self, tr: dict) -> None:
        t, size, side = tr["t"], tr["size"], tr["side"]
        tick = price_to_tick(tr["price"], self.tick_size)
        brk, changed = self._breaks(t, side, tick)
        s = np.flatnonzero(brk)
        if not brk[0]:
            s = np.concatenate(([0], s))
        e = np.append(s[1:], len(t)) - 1
        runs = {"ts_start": t[s], "ts_end": t[e], "side": side[s].astype("int8"),
                "tick_start": tick[s], "tick_end": tick[e],
                "levels": 1 + np.add.reduceat(changed, s), "size": np.add.reduceat(size, s),
                "trades": (e - s + 1).astype("int64")}
        if not brk[0]:  # the first run continues the last batch's
            o = self.open
            runs["ts_start"][0], runs["side"][0] = o["ts_start"], o["side"]
            runs["tick_start"][0] = o["tick_start"]
            runs["levels"][0] += o["levels"] - 1
            runs["size"][0] = o["size"] + runs["size"][0]
            runs["trades"][0] += o["trades"]
        before = len(self.rows)
        if brk[0] and self.open is not None:  # the last batch's run ended before this batch
            ended = {k: np.asarray([self.open[k]], dtype=v.dtype) for k, v in runs.items()}
            self.rows.append({k: v[self._keep(ended)] for k, v in ended.items()})
        done = np.arange(len(s)) < len(s) - 1
        self.rows.append({k: v[done & self._keep(runs)] for k, v in runs.items()})
        self.open = {k: v[-1] for k, v in runs.items()}
        self.open.update(t_last=t[-1], tick_last=tick[-1])
        self.changed = slice(before, None)

    def _keep(self, runs: dict) -> np.ndarray:
        return ((runs["side"] != 0) & (runs["levels"] >= self.min_levels)
                & (runs["size"] >= self.min_size))

    def result(self):
        return self.frame(slice(0, None))

    def changes(self):
        return self.frame(self.changed)

    def frame(self, rows) -> pd.DataFrame:
        start = rows.indices(len(self.rows))[0]
        cols = self.rows.take(rows)
        if self.open is not None:
            tail = {k: np.asarray([self.open[k]], dtype=cols[k].dtype) for k in cols}
            if self._keep(tail)[0]:
                cols = {k: np.concatenate([cols[k], tail[k]]) for k in cols}
        cols["ts_start"], cols["ts_end"] = ts_frame(cols["ts_start"]), ts_frame(cols["ts_end"])
        return _frame(cols, pd.RangeIndex(start, start + len(cols["size"])))


# --------------------------------------------------------------------------------------------
# liquidations


class _Liquidations:
    """``liquidations_by_bar`` and ``liquidations_by_level``. A liquidation belongs to the latest
    bar opened at or before it. Kept: final sums per bar (``per_bar``, with the count of level
    rows) and per bar and tick (``levels``), and the *pending* liquidations -- in the last bar or
    before any bar -- raw, because a bar opening later, at or before their time, takes them."""

    def __init__(self, owner, tick_size):
        self.owner = owner
        self.tick_size = tick_size
        self.per_bar = _Columns(long="float64", short="float64", count="int64", nlev="int64")
        self.levels: dict[int, dict[int, list]] = {}
        self.pending = self._empty()
        self.last_ts = None
        self.changed = np.empty(0, "int64")

    @staticmethod
    def _empty() -> dict:
        return {"ts": np.empty(0, "int64"), "side": np.empty(0, "int64"),
                "tick": np.empty(0, "int64"), "size": np.empty(0)}

    def check(self, liqs: pd.DataFrame) -> dict:
        """Liquidations as numpy columns: checked, and in time order after the ones fed before."""
        what = "LiveOrderFlow.update: liquidations"
        require(liqs, ("ts", "side", "price", "size"), what)
        t = ts_ns(liqs["ts"])
        price = liqs["price"].to_numpy(dtype="float64")
        size = liqs["size"].to_numpy(dtype="float64")
        if not (np.all(np.isfinite(price)) and np.all(np.isfinite(size))):
            raise ValueError(f"{what}: prices and sizes must be finite")
        if (len(t) > 1 and np.any(np.diff(t) < 0)) or (
                len(t) and self.last_ts is not None and t[0] < self.last_ts):
            raise ValueError(f"{what} must arrive in time order: each batch sorted by ts and "
                             f"starting at or after the last one fed")
        return {"ts": t, "side": liqs["side"].to_numpy(dtype="int64"),
                "tick": price_to_tick(price, self.tick_size), "size": size}

    def update(self, j0: int | None, new: dict | None) -> None:
        """Bars from ``j0`` on were (re)written (None: no bar changed); place the pending
        liquidations and the ``new`` ones."""
        bar_ts = self.owner._bars["ts"]
        n = len(bar_ts)
        changed = [np.arange(j0, n)] if j0 is not None else []
        if j0 is not None:
            self.per_bar.cut(j0)  # bar j0 held only pending ones: nothing final is lost
            z = np.zeros(n - j0)
            self.per_bar.append({"long": z, "short": z, "count": z.astype("int64"),
                                 "nlev": z.astype("int64")})
        if new is not None and len(new["ts"]):
            self.last_ts = int(new["ts"][-1])
            self.pending = {k: np.concatenate([self.pending[k], new[k]]) for k in new}
        p = self.pending
        bar = np.searchsorted(bar_ts, p["ts"], side="right") - 1
        final = (bar >= 0) & (bar < n - 1)
        self._finalize({k: v[final] for k, v in p.items()}, bar[final])
        self.pending = {k: v[(bar == n - 1) | (n == 0)] for k, v in p.items()}
        changed.append(np.unique(bar[final]))
        if n and len(self.pending["ts"]):
            changed.append(np.array([n - 1]))
        self.changed = np.unique(np.concatenate(changed)) if changed else np.empty(0, "int64")

    def _finalize(self, p: dict, bar: np.ndarray) -> None:
        """Add liquidations, in order, to their bars' final sums."""
        if not len(bar):
            return
        long_, short = self._split(p)
        for col, v in (("long", long_), ("short", short)):
            np.add.at(self.per_bar._data[col], bar, v)
        np.add.at(self.per_bar._data["count"], bar, 1)
        for b, k, lo, sh in zip(bar.tolist(), p["tick"].tolist(), long_.tolist(), short.tolist()):
            level = self.levels.setdefault(b, {})
            if k not in level:
                level[k] = [0.0, 0.0, 0]
                self.per_bar._data["nlev"][b] += 1
            cell = level[k]
            cell[0] += lo
            cell[1] += sh
            cell[2] += 1

    @staticmethod
    def _split(p: dict):
        return (np.where(p["side"] == -1, p["size"], 0.0),
                np.where(p["side"] == 1, p["size"], 0.0))

    # -- frames

    def by_bar(self, bars) -> pd.DataFrame:
        """Rows of ``bars`` (a slice or positions): final sums plus the pending ones."""
        n = len(self.per_bar)
        b = np.arange(n)[bars]
        cols = self.per_bar.take(b)
        at = b == n - 1  # the last bar has no final sums: only pending ones
        if at.any() and len(self.pending["ts"]):
            long_, short = self._split(self.pending)
            first = np.zeros(len(long_), "int64")  # bincount adds in order, as the batch
            cols["long"][at] = np.bincount(first, weights=long_)[0]
            cols["short"][at] = np.bincount(first, weights=short)[0]
            cols["count"][at] = len(long_)
        return _frame({"ts": ts_frame(self.owner._bars["ts"][b]), "long_size": cols["long"],
                       "short_size": cols["short"], "count": cols["count"]}, _index(bars, n))

    def _pending_levels(self) -> dict:
        p = self.pending
        if not len(self.per_bar) or not len(p["ts"]):
            return {}
        long_, short = self._split(p)
        out: dict[int, list] = {}
        for k, lo, sh in zip(p["tick"].tolist(), long_.tolist(), short.tolist()):
            cell = out.setdefault(k, [0.0, 0.0, 0])
            cell[0] += lo
            cell[1] += sh
            cell[2] += 1
        return out

    def by_level(self, bars: np.ndarray) -> pd.DataFrame:
        """Level rows of ``bars`` (bar indexes, ascending), indexed by position in the result."""
        n = len(self.per_bar)
        pend = self._pending_levels()
        counts = self.per_bar["nlev"].copy()
        if pend:
            counts[n - 1] += len(pend)
        first = np.cumsum(counts) - counts
        rows, index = [], []
        for b in bars.tolist():
            level = pend if (b == n - 1 and pend) else self.levels.get(b, {})
            for i, k in enumerate(sorted(level)):
                rows.append((b, k, *level[k]))
                index.append(first[b] + i)
        b, k, lo, sh, c = (np.asarray(x) for x in zip(*rows)) if rows else (
            np.empty(0, "int64"),) * 2 + (np.empty(0),) * 2 + (np.empty(0, "int64"),)
        return _frame({"ts": ts_frame(self.owner._bars["ts"][b.astype("int64")]),
                       "tick": k.astype("int64"), "long_size": lo.astype("float64"),
                       "short_size": sh.astype("float64"), "count": c.astype("int64")},
                      pd.Index(np.asarray(index, "int64")) if len(index) != counts.sum()
                      else pd.RangeIndex(len(index)))

    def bars_with_levels(self) -> np.ndarray:
        n = len(self.per_bar)
        present = np.flatnonzero(self.per_bar["nlev"] > 0)
        if n and len(self.pending["ts"]):
            present = np.union1d(present, [n - 1])
        return present


class _LiqView:
    """One of the two liquidation studies, over the shared :class:`_Liquidations`."""

    def __init__(self, liq: _Liquidations, level: bool):
        self.liq, self.level = liq, level

    def result(self):
        if self.level:
            return self.liq.by_level(self.liq.bars_with_levels())
        return self.liq.by_bar(slice(0, len(self.liq.per_bar)))

    def changes(self):
        if self.level:
            return self.liq.by_level(np.intersect1d(self.liq.changed,
                                                    self.liq.bars_with_levels()))
        return self.liq.by_bar(self.liq.changed)


# --------------------------------------------------------------------------------------------
# the live object


def _study_params(name: str, given, instrument) -> dict:
    """The parameters of study ``name``: the batch defaults updated with ``given``."""
    defaults = STUDY_PARAMS[name]
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise ValueError(f"{name}: parameters must be a dict of {', '.join(defaults) or 'none'}"
                         f", e.g. {name}={{}}, got {given!r}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(defaults) or 'none'}")
    params = {**defaults, **given}
    missing = [k for k, v in params.items() if isinstance(v, str) and v == REQUIRED]
    if missing:
        raise ValueError(f"{name}: needs {', '.join(missing)} (no default, as in the batch "
                         f"function), e.g. {name}={{'{missing[0]}': ...}}")
    return {k: (instrument.tick_size if isinstance(v, str) and v == INSTRUMENT else v)
            for k, v in params.items()}


class LiveOrderFlow:
    """The order-flow studies of a live chart, updated from new trades without recomputing the
    history.

    ``aggregator`` is a fresh ``tradeflow.bars.BarAggregator(instrument, spec)`` that only this
    object feeds. Each study takes the batch function's parameters as a dict under its name, e.g.
    ``LiveOrderFlow(agg, imbalances={"ratio": 4.0}, big_trades={"min_size": 50})``; missing ones
    take the batch defaults (tick sizes default to the instrument's). ``studies`` chooses which
    to compute (default: all, except ``big_trades`` and ``absorption`` unless their required
    parameter is given). Names: see ``STUDY_PARAMS``; ``result``/``changes`` also take ``"bars"``
    and ``"footprint"`` (bars and cells in the model layouts; for a ``:HA`` spec the plain bars,
    as the studies use them -- Heikin-Ashi is a display transform)."""

    def __init__(self, aggregator, studies=None, **params):
        for attr in ("update", "instrument", "spec"):
            if not hasattr(aggregator, attr):
                raise ValueError(f"LiveOrderFlow: expected a tradeflow.bars.BarAggregator, got "
                                 f"{type(aggregator).__name__} (it lacks .{attr})")
        open_bar = getattr(aggregator, "open_bar", None)
        if isinstance(open_bar, dict) and len(open_bar.get("ts", ())):
            raise ValueError("LiveOrderFlow: the aggregator has been fed already; pass a fresh "
                             "BarAggregator that only this object feeds")
        self.aggregator, self.instrument = aggregator, aggregator.instrument
        self.studies = self._choose(studies, params)
        self._params = {s: _study_params(s, params.get(s), self.instrument) for s in self.studies}
        self._bars = _Columns(ts="int64", open="float64", high="float64", low="float64",
                              close="float64", volume="float64", ask_volume="float64",
                              bid_volume="float64", trades="int64", dmax="float64",
                              dmin="float64", poc="int64", lo="int64", hi="int64",
                              ncells="int64", cell_start="int64")
        self._cells = _Columns(bar="int64", tick="int64", volume="float64", ask_volume="float64",
                               bid_volume="float64", trades="int64")
        self._n_closed = 0
        self._carry = None  # (run, max, min) of the forming bar's running delta
        self._last_ts = None
        self._changed_bars = slice(0, 0)
        self._cache: dict = {}
        self._days = _TradingDays()
        self._impl = self._build_studies()
        self.last_update = LiveUpdate(0, 0, 0)

    @staticmethod
    def _choose(studies, params) -> tuple:
        unknown = sorted(set(params) - set(STUDY_PARAMS))
        if unknown:
            raise ValueError(f"LiveOrderFlow: unknown study or argument {', '.join(unknown)}; "
                             f"studies: {', '.join(STUDY_PARAMS)}")
        if studies is None:
            return tuple(s for s, p in STUDY_PARAMS.items()
                         if REQUIRED not in p.values() or s in params)
        chosen = (studies,) if isinstance(studies, str) else tuple(studies)
        bad = [s for s in chosen if s not in STUDY_PARAMS]
        if bad:
            raise ValueError(f"LiveOrderFlow: unknown studies {', '.join(map(str, bad))}; "
                             f"choose from {', '.join(STUDY_PARAMS)}")
        unused = sorted(set(params) - set(chosen))
        if unused:
            raise ValueError(f"LiveOrderFlow: parameters given for {', '.join(unused)}, which "
                             f"is not among the studies chosen")
        return tuple(s for s in STUDY_PARAMS if s in chosen)

    def _build_studies(self) -> dict:
        p, impl = self._params, {}
        classes = {"footprint_metrics": _FootprintMetrics, "imbalances": _Imbalances,
                   "stacked_imbalances": _Stacked, "unfinished_auctions": _Unfinished,
                   "zero_prints": _ZeroPrints, "naked_pocs": _NakedPocs,
                   "absorption": _Absorption, "big_trades": _Prints, "sweeps": _Sweeps}
        for name in self.studies:
            if name in ("cvd", "cvd_candles"):
                impl[name] = _Cvd(self, name == "cvd_candles", **p[name])
            elif name in classes:
                impl[name] = classes[name](self, **p[name])
        liq = [s for s in self.studies if s.startswith("liquidations")]
        if liq:
            tick = p.get("liquidations_by_level", {}).get("tick_size", self.instrument.tick_size)
            if not (isinstance(tick, (int, float)) and not isinstance(tick, bool) and tick > 0):
                raise ValueError(f"liquidations_by_level: tick size must be positive, "
                                 f"got {tick!r}")
            self._liq = _Liquidations(self, float(tick))
            for name in liq:
                impl[name] = _LiqView(self._liq, name.endswith("level"))
        else:
            self._liq = None
        return impl

    # -- feeding

    @property
    def n_bars(self) -> int:
        return len(self._bars)

    @property
    def n_closed(self) -> int:
        return self._n_closed

    def update(self, trades: pd.DataFrame | None = None,
               liquidations: pd.DataFrame | None = None) -> LiveUpdate:
        """Add a batch of trades (model trade layout, in time order, none older than the last one
        fed) and/or liquidations (``ts, side, price, size``, in time order); update the studies
        for the bars the batch touched. Returns what was touched."""
        liqs = self._liq.check(liquidations) if (
            self._liq is not None and liquidations is not None) else None
        if liquidations is not None and self._liq is None:
            raise ValueError("LiveOrderFlow.update: liquidations given, but no liquidation "
                             "study was chosen")
        arrays = self._check_trades(trades) if trades is not None and len(trades) else None
        self._cache.clear()
        first, bar_update = len(self._bars), None
        if arrays is not None:
            bar_update = self.aggregator.update(trades)
            self._last_ts = int(arrays["t"][-1])
            touch = self._ingest(bar_update, arrays)
            first = touch.j0
            for name, study in self._impl.items():
                if not name.startswith("liquidations") and name not in ("big_trades", "sweeps"):
                    study.update(touch)
            for name in ("big_trades", "sweeps"):
                if name in self._impl:
                    self._impl[name].update(arrays)
        if self._liq is not None:
            self._liq.update(first if arrays is not None else None, liqs)
        self._changed_bars = slice(first, len(self._bars))
        self.last_update = LiveUpdate(first, len(self._bars), self._n_closed, bar_update)
        return self.last_update

    def _check_trades(self, trades: pd.DataFrame) -> dict:
        what = "LiveOrderFlow.update"
        t, price, size, side = trade_arrays(trades, what)
        if len(t) > 1 and np.any(np.diff(t) < 0):
            raise ValueError(f"{what}: trades must be in time order within a batch; sort them "
                             f"first (frame.sort_values('ts', kind='stable'))")
        if self._last_ts is not None and t[0] < self._last_ts:
            raise ValueError(f"{what}: trades must arrive in time order; this batch starts at "
                             f"{pd.Timestamp(int(t[0]), tz='UTC')}, before the last trade already "
                             f"fed ({pd.Timestamp(self._last_ts, tz='UTC')})")
        return {"t": t, "price": price, "size": size, "side": side}

    def _ingest(self, up, tr: dict) -> _Touch:
        """Write the bars and cells of the aggregator's answer from the first touched bar on,
        with their core values; returns what was touched."""
        j0 = self._n_closed
        bars = _frame_columns([up.closed, up.current], ("open", "high", "low", "close", "volume",
                                                       "ask_volume", "bid_volume"), ("trades",))
        cells = _frame_columns([up.closed_footprint, up.current_footprint],
                               ("volume", "ask_volume", "bid_volume"), ("tick", "trades"))
        nb = len(bars["ts"])
        counts = bars["trades"].copy()
        if len(self._bars) > j0 and nb:
            counts[0] -= self._bars["trades"][j0]  # the forming bar's earlier trades
        if counts.sum() != len(tr["t"]) or (counts < 0).any():
            raise ValueError("LiveOrderFlow: the aggregator's bars do not hold exactly this "
                             "batch's trades; pass a fresh BarAggregator that only this object "
                             "feeds")
        # cells come ordered by bar then tick: the running count of their trades says whose
        cells["bar"] = j0 + np.searchsorted(np.cumsum(bars["trades"]), np.cumsum(cells["trades"]))
        carry = self._carry if len(self._bars) > j0 else None
        signed = np.where(tr["side"] > 0, tr["size"], np.where(tr["side"] < 0, -tr["size"], 0.0))
        bars["dmax"], bars["dmin"], run_end = _extremes(signed, counts, carry)
        pick, s, e = _pocs(cells["bar"], cells["tick"], cells["volume"])
        poc_bar = cells["bar"][s] if len(s) else np.empty(0, "int64")
        local = poc_bar - j0
        for col, src in (("poc", pick), ("lo", s), ("hi", e)):
            bars[col] = np.zeros(nb, "int64")
            bars[col][local] = cells["tick"][src]
        bars["ncells"] = np.zeros(nb, "int64")
        bars["ncells"][local] = e - s + 1
        cell0 = self._bars["cell_start"][j0] if len(self._bars) > j0 else len(self._cells)
        bars["cell_start"] = cell0 + np.searchsorted(cells["bar"], np.arange(j0, j0 + nb))
        self._bars.cut(j0)
        self._bars.append(bars)
        self._cells.cut(cell0)
        self._cells.append(cells)
        self._n_closed = j0 + len(up.closed)
        self._carry = ((run_end[-1], bars["dmax"][-1], bars["dmin"][-1])
                       if len(up.current) else None)
        return _Touch(j0, j0 + nb, self._n_closed, bars, cells, tr, poc_bar, pick)

    # -- reading

    def result(self, name: str):
        """The current full result of study ``name`` (as its batch function gives it for all
        trades so far: a frame, or for ``cvd`` a Series), built on request and cached until the
        next update."""
        key = ("result", name)
        if key not in self._cache:
            self._cache[key] = self._read(name, full=True)
        return self._cache[key]

    def changes(self, name: str):
        """The rows of ``result(name)`` the last update wrote (those of the bars it touched, plus
        naked POCs it covered and bars late liquidations fell in), indexed by their position in
        ``result(name)``."""
        return self._read(name, full=False)

    def _read(self, name: str, full: bool):
        if name == "bars":
            return self._bars_frame(slice(0, len(self._bars)) if full else self._changed_bars)
        if name == "footprint":
            return self._cells_frame(full)
        if name not in self._impl:
            raise ValueError(f"LiveOrderFlow: no study {name!r}; computed here: "
                             f"{', '.join(('bars', 'footprint') + self.studies)}")
        study = self._impl[name]
        return study.result() if full else study.changes()

    def _bars_frame(self, rows) -> pd.DataFrame:
        b = self._bars.take(rows)
        frame = _frame({"ts": ts_frame(b["ts"]), **{c: b[c] for c in BAR_COLUMNS[1:8]},
                        "delta": b["ask_volume"] - b["bid_volume"], "trades": b["trades"],
                        "open_interest": np.full(len(b["ts"]), np.nan)},
                       _index(rows, len(self._bars)))
        return frame[list(BAR_COLUMNS)]

    def _cells_frame(self, full: bool) -> pd.DataFrame:
        j0 = self._changed_bars.start
        start = (0 if full else len(self._cells) if j0 >= len(self._bars)
                 else int(self._bars["cell_start"][j0]))
        c = self._cells.take(slice(start, None))
        return _frame({"ts": ts_frame(self._bars["ts"][c["bar"]]), "tick": c["tick"],
                       "volume": c["volume"], "ask_volume": c["ask_volume"],
                       "bid_volume": c["bid_volume"], "trades": c["trades"]},
                      pd.RangeIndex(start, len(self._cells)))

    def batch(self, trades: pd.DataFrame, bars: pd.DataFrame, cells: pd.DataFrame,
              liquidations: pd.DataFrame | None = None) -> dict:
        """The batch functions with this object's parameters over ``trades`` and the ``bars``/
        ``cells`` built from them (``tradeflow.bars.build``): what ``result`` must equal. For
        tests and benchmarks."""
        fns = {"footprint_metrics": lambda: footprint_metrics(bars, trades, cells),
               "cvd": lambda: cvd(bars, **self._params["cvd"]),
               "cvd_candles": lambda: cvd_candles(bars, trades,
                                                            **self._params["cvd_candles"]),
               "imbalances": lambda: imbalances(cells, **self._params["imbalances"]),
               "stacked_imbalances": lambda: stacked_imbalances(
                   cells, **self._params["stacked_imbalances"]),
               "unfinished_auctions": lambda: unfinished_auctions(
                   cells, **self._params["unfinished_auctions"]),
               "big_trades": lambda: big_trades(trades, **self._params["big_trades"]),
               "zero_prints": lambda: zero_prints(cells, bars,
                                                         **self._params["zero_prints"]),
               "naked_pocs": lambda: naked_pocs(cells, **self._params["naked_pocs"]),
               "sweeps": lambda: sweeps(trades, **self._params["sweeps"]),
               "absorption": lambda: absorption(cells, bars,
                                                           **self._params["absorption"])}
        liqs = liquidations if liquidations is not None else pd.DataFrame(
            {"ts": pd.DatetimeIndex([], tz="UTC"), "side": np.empty(0, "int8"),
             "price": np.empty(0), "size": np.empty(0)})
        fns["liquidations_by_bar"] = lambda: liquidations_by_bar(liqs, bars)
        fns["liquidations_by_level"] = lambda: liquidations_by_level(
            liqs, bars, **self._params["liquidations_by_level"])
        return {name: fns[name]() for name in self.studies}


def _frame_columns(frames, floats, ints) -> dict:
    """Numpy columns (``ts`` as int64 ns) of model-layout frames, concatenated."""
    frames = [f for f in frames if len(f)] or frames[:1]
    out = {"ts": np.concatenate([f["ts"].array.as_unit("ns").asi8 for f in frames])}
    for c in floats:
        out[c] = np.concatenate([f[c].to_numpy(dtype="float64") for f in frames])
    for c in ints:
        out[c] = np.concatenate([f[c].to_numpy(dtype="int64") for f in frames])
    return out
