"""Live studies whose rows belong to bars, recomputed for the touched bars only.

``_PerBar`` (rows in bar order, cut and appended anew from the first touched bar) and the studies
on it: ``Cvd`` (``cvd``, ``cvd_candles``), ``Imbalances``, ``Stacked``
(``stacked_imbalances``), ``Unfinished`` (``unfinished_auctions``), ``ZeroPrints``,
``Absorption``; and ``FootprintMetrics``, read from the bars' own columns. With ``rows=N``
(rows of N ticks keyed by their lowest tick, as the batch functions) the studies group the
touched bars' cells themselves (``_grouped``, ``row_pocs``); the bars' own core values are those
of single ticks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc, price_to_tick

from ...frames import (group_starts, non_negative, non_negative_int, positive_int,
                        positive_number, positive_tick_size)
from ..aggression import ABSORPTION_SIDES
from ..footprint import reset_mode
from ..imbalance import check_ratio, flagged_runs, imbalance_flags
from .poc import group_pocs
from .storage import Columns, Touch, result_index, rows_frame

if TYPE_CHECKING:
    from . import LiveOrderFlow

_ZERO_SIDES = np.array(["ask", "bid", "both"], dtype=object)


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


def row_pocs(t: Touch, rows: int):
    """The POC row of each touched bar with cells, among its rows of ``rows`` ticks (rule of
    ``bar_poc``): ``(pick, grouped)`` -- ``grouped`` the touched cells summed per bar and row
    (``_grouped``), ``pick`` the index of each bar's POC row in it, in bar order. rows=1 gives
    the bars' own POCs. Computed once per update and ``rows`` (several studies use it)."""
    if rows not in t.cache:
        g = _grouped(t.cells, rows)
        pick = t.poc_cell if rows == 1 else group_pocs(g["ts"], g["tick"], g["volume"])[0]
        t.cache[rows] = (pick, g)
    return t.cache[rows]


def _levels(lo: np.ndarray, hi: np.ndarray):
    """Every level lo..hi of each range: (range index, level, offset of each range's first)."""
    n = (hi - lo + 1).astype("int64")
    first = np.cumsum(n) - n
    which = np.repeat(np.arange(len(n)), n)
    return which, lo[which] + (np.arange(n.sum()) - first[which]), first


class _PerBar:
    """A study whose rows belong to bars, in bar order (``start[j]``: bar j's first row). An
    update cuts the rows from the first touched bar on and appends the touched bars' rows anew;
    earlier rows stay as they are."""

    columns: dict = {}

    def __init__(self, owner: "LiveOrderFlow"):
        self.owner = owner
        self.rows = Columns(bar="int64", **self.columns)
        self.start = Columns(s="int64")
        self.changed = slice(0, 0)

    def update(self, t: Touch) -> None:
        cols = self.compute(t)
        cut = self.start.at("s", t.j0) if len(self.start) > t.j0 else len(self.rows)
        self.rows.cut(cut)
        self.start.cut(t.j0)
        self.start.append({"s": cut + np.searchsorted(cols["bar"], np.arange(t.j0, t.n))})
        self.rows.append(cols)
        self.changed = slice(cut, len(self.rows))

    def idle(self) -> None:
        """An update without trades: nothing changed."""
        self.changed = slice(len(self.rows), len(self.rows))

    def trim(self, bar: int) -> None:
        """Drop the rows of the bars before ``bar``."""
        cut = self.start.at("s", bar) if len(self.start) > bar else len(self.rows)
        self.rows.drop_before(cut)
        self.start.drop_before(bar)

    def size(self) -> int:
        return len(self.rows)

    def result(self):
        return self.frame(self.rows.positions())

    def changes(self):
        return self.frame(self.changed)

    def frame(self, rows):
        cols = self.rows.take(rows)
        cols["ts"] = ns_to_utc(self.owner._bars.at("ts", cols["bar"]))
        return self.build(cols, result_index(rows, len(self.rows)))

    def compute(self, t: Touch) -> dict:
        raise NotImplementedError

    def build(self, cols: dict, index) -> pd.DataFrame:
        raise NotImplementedError


class FootprintMetrics:
    """``footprint_metrics``: read from the bars' own columns (one row per bar). Kept with
    ``rows`` > 1 only: each bar's POC row (the bars' ``poc`` is that of single ticks)."""

    def __init__(self, owner: "LiveOrderFlow", rows=1):
        self.owner = owner
        self.row_ticks = positive_int(rows, "footprint_metrics: rows")
        self.poc = Columns(poc="int64")
        self.changed = slice(0, 0)

    def update(self, t: Touch) -> None:
        self.changed = slice(t.j0, t.n)
        if self.row_ticks > 1:
            pick, g = row_pocs(t, self.row_ticks)
            poc = np.zeros(t.n - t.j0, "int64")  # (bars without cells: masked by ncells)
            poc[g["ts"][pick] - t.j0] = g["tick"][pick]
            self.poc.cut(t.j0)
            self.poc.append({"poc": poc})

    def idle(self) -> None:
        self.changed = slice(len(self.owner._bars), len(self.owner._bars))

    def trim(self, bar: int) -> None:
        self.poc.drop_before(bar)

    def size(self) -> int:
        return len(self.owner._bars)

    def result(self):
        return self.frame(self.owner._bars.positions())

    def changes(self):
        return self.frame(self.changed)

    def frame(self, rows):
        b = self.owner._bars.take(rows)
        volume = b["volume"]
        delta = b["ask_volume"] - b["bid_volume"]
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(volume > 0, delta / np.where(volume > 0, volume, 1.0), np.nan)
        ticks = b["poc"] if self.row_ticks == 1 else self.poc.take(rows)["poc"]
        poc = pd.array(np.where(b["ncells"] > 0, ticks, 0), dtype="Int64")
        poc[b["ncells"] == 0] = pd.NA
        return rows_frame({"ts": ns_to_utc(b["ts"]), "volume": volume, "trades": b["trades"],
                           "delta": delta, "delta_pct": pct, "delta_max": b["dmax"],
                           "delta_min": b["dmin"], "poc": poc},
                          result_index(rows, len(self.owner._bars)))


class Cvd(_PerBar):
    """``cvd`` / ``cvd_candles``. Kept per bar: the CVD after it, its trading day and whether it
    opens a day (the next bar continues the sum or restarts it)."""

    columns = {"cvd": "float64", "day": "int64", "first": "bool"}

    def __init__(self, owner, candles: bool, session=None, reset=None):
        super().__init__(owner)
        if session is not None and not isinstance(session, Session):
            raise ValueError(f"cvd: session must be a tradeflow.model.Session (e.g. "
                             f"instrument.session) or None, got {type(session).__name__}")
        self.mode = reset_mode(session, reset)
        self.session = session if self.mode == "session" else None
        self.candles = candles

    def compute(self, t: Touch) -> dict:
        delta = t.bars["ask_volume"] - t.bars["bid_volume"]
        day = self.owner._days.keys(self.session, t.bars["ts"])
        first = np.ones(len(day), dtype=bool)
        first[1:] = day[1:] != day[:-1]
        carry = 0.0
        if t.j0 > 0 and len(day):
            first[0] = day[0] != self.rows.at("day", t.j0 - 1)
            carry = float(self.rows.at("cvd", t.j0 - 1))
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
        return rows_frame({"ts": cols["ts"], "open": open_, "high": high, "low": low,
                           "close": close}, index)


def _imbalance_params(what, ratio, min_volume, rows, compare_edges):
    ratio, min_volume = check_ratio(ratio, min_volume)
    rows = positive_int(rows, f"{what}: rows")
    if not isinstance(compare_edges, (bool, np.bool_)):
        raise ValueError(f"{what}: compare_edges must be True or False, got {compare_edges!r}")
    return ratio, min_volume, rows, bool(compare_edges)


class Imbalances(_PerBar):
    """``imbalances``: one row per bar and (grouped) row of the touched bars."""

    columns = {"tick": "int64", "volume": "float64", "ask_volume": "float64",
               "bid_volume": "float64", "bid_below": "float64", "ask_above": "float64",
               "buy": "bool", "sell": "bool"}

    def __init__(self, owner, ratio=3.0, min_volume=0.0, rows=1, compare_edges=False):
        super().__init__(owner)
        self.p = _imbalance_params("imbalances", ratio, min_volume, rows, compare_edges)

    def compute(self, t: Touch) -> dict:
        ratio, min_volume, rows, edges = self.p
        a = _grouped(t.cells, rows)
        buy, sell, below, above = imbalance_flags(a, rows, ratio, min_volume, edges)
        return {"bar": a["ts"], "tick": a["tick"], "volume": a["volume"],
                "ask_volume": a["ask_volume"], "bid_volume": a["bid_volume"],
                "bid_below": below, "ask_above": above, "buy": buy, "sell": sell}

    def build(self, cols: dict, index):
        return rows_frame({"ts": cols["ts"], **{k: cols[k] for k in self.columns}}, index)


class Stacked(_PerBar):
    """``stacked_imbalances``: zones of the touched bars, ordered by bar, side (buy first), tick."""

    columns = {"side": "int8", "tick_low": "int64", "tick_high": "int64", "rows": "int64"}

    def __init__(self, owner, min_rows=3, ratio=3.0, min_volume=0.0, rows=1,
                 compare_edges=False):
        super().__init__(owner)
        self.min_rows = positive_int(min_rows, "stacked_imbalances: min_rows")
        self.p = _imbalance_params("stacked_imbalances", ratio, min_volume, rows, compare_edges)

    def compute(self, t: Touch) -> dict:
        ratio, min_volume, rows, edges = self.p
        a = _grouped(t.cells, rows)
        buy, sell, _, _ = imbalance_flags(a, rows, ratio, min_volume, edges)
        parts = []
        for side, flag in ((1, buy), (-1, sell)):
            s, e = flagged_runs(a["ts"], a["tick"], flag, rows, self.min_rows)
            parts.append((a["ts"][s], np.full(len(s), side, "int8"), a["tick"][s],
                          a["tick"][e - 1], (e - s).astype("int64")))
        bar, side, lo, hi, n = (np.concatenate(x) for x in zip(*parts))
        order = np.lexsort((lo, -side, bar))
        return {"bar": bar[order], "side": side[order], "tick_low": lo[order],
                "tick_high": hi[order], "rows": n[order]}

    def build(self, cols: dict, index):
        return rows_frame({"ts": cols["ts"], **{k: cols[k] for k in self.columns}}, index)


class Unfinished(_PerBar):
    """``unfinished_auctions``: one row per touched bar with cells."""

    columns = {"high_tick": "int64", "low_tick": "int64", "unfinished_high": "bool",
               "unfinished_low": "bool"}

    def __init__(self, owner, rows=1, min_volume=0.0):
        super().__init__(owner)
        self.rows_ = positive_int(rows, "unfinished_auctions: rows")
        self.min_volume = non_negative(min_volume, "min_volume")

    def compute(self, t: Touch) -> dict:
        a = _grouped(t.cells, self.rows_)
        lo = np.flatnonzero(group_starts(a["ts"]))
        hi = np.append(lo[1:], len(a["ts"])) - 1 if len(lo) else lo
        ask, bid, m = a["ask_volume"], a["bid_volume"], self.min_volume

        def both(i):
            return (ask[i] > 0) & (bid[i] > 0) & (ask[i] >= m) & (bid[i] >= m)

        return {"bar": a["ts"][lo], "high_tick": a["tick"][hi], "low_tick": a["tick"][lo],
                "unfinished_high": both(hi), "unfinished_low": both(lo)}

    def build(self, cols: dict, index):
        return rows_frame({"ts": cols["ts"], **{k: cols[k] for k in self.columns}}, index)


class ZeroPrints(_PerBar):
    """``zero_prints``: levels (ticks, or rows of N ticks) of the touched bars' ranges with one
    side (or both) empty."""

    columns = {"tick": "int64", "missing": "int8"}  # missing: 0 ask, 1 bid, 2 both

    def __init__(self, owner, tick_size=None, rows=1):
        super().__init__(owner)
        self.tick_size = (None if tick_size is None
                          else positive_number(tick_size, "zero_prints: tick_size"))
        self.row_ticks = positive_int(rows, "zero_prints: rows")

    def _ranges(self, t: Touch, g: dict):
        """(bar, low tick, high tick) of the bars to scan and the range index of each row of
        ``g`` (the touched cells grouped per bar and row)."""
        b = t.bars
        if self.tick_size is None:  # the range of the bar's cells; bars without cells skipped
            with_cells = b["ncells"] > 0
            which = np.cumsum(group_starts(g["ts"])) - 1
            return (np.arange(t.j0, t.n)[with_cells], b["lo"][with_cells], b["hi"][with_cells],
                    which)
        lo = price_to_tick(b["low"] / self.tick_size, 1.0)
        hi = price_to_tick(b["high"] / self.tick_size, 1.0)
        has = b["ncells"] > 0  # traded levels widen the stated range
        lo[has] = np.minimum(lo[has], b["lo"][has])
        hi[has] = np.maximum(hi[has], b["hi"][has])
        return np.arange(t.j0, t.n), lo, hi, g["ts"] - t.j0

    def compute(self, t: Touch) -> dict:
        n = self.row_ticks
        g = _grouped(t.cells, n)
        bar, lo, hi, cell_range = self._ranges(t, g)
        # levels are row indexes k of the rows k*n (ticks when n = 1)
        lo, hi = np.floor_divide(lo, n), np.floor_divide(hi, n)
        which, level, first = _levels(lo, hi)
        ask, bid = np.zeros(len(level)), np.zeros(len(level))
        pos = first[cell_range] + (g["tick"] // n - lo[cell_range])
        ask[pos], bid[pos] = g["ask_volume"], g["bid_volume"]
        no_ask, no_bid = ask <= 0, bid <= 0
        miss = no_ask | no_bid
        code = np.where(no_ask & no_bid, 2, np.where(no_ask, 0, 1)).astype("int8")
        return {"bar": bar[which][miss], "tick": level[miss] * n, "missing": code[miss]}

    def build(self, cols: dict, index):
        return rows_frame({"ts": cols["ts"], "tick": cols["tick"],
                           "missing_side": _ZERO_SIDES[cols["missing"]]}, index)


class Absorption(_PerBar):
    """``absorption``: per touched bar with cells, its POC when one side's aggression there did
    not carry the close beyond the level."""

    columns = {"tick": "int64", "bid": "bool", "volume": "float64",
               "aggressor_volume": "float64", "progress_ticks": "int64"}

    def __init__(self, owner, tick_size, min_volume, max_progress_ticks=1, side=None, rows=1):
        super().__init__(owner)
        self.row_ticks = positive_int(rows, "absorption: rows")
        self.tick_size = positive_tick_size(tick_size, "absorption")
        self.min_volume = non_negative(min_volume, "absorption: min_volume")
        self.max_progress = non_negative_int(max_progress_ticks,
                                             "absorption: max_progress_ticks")
        if side not in ABSORPTION_SIDES:
            raise ValueError(f"absorption: side must be None, 'bid' or 'ask', got {side!r}")
        self.side = side

    def compute(self, t: Touch) -> dict:
        n = self.row_ticks
        i, g = row_pocs(t, n)
        ask, bid, vol, tick = (g[k][i] for k in ("ask_volume", "bid_volume", "volume", "tick"))
        poc_bar = g["ts"][i]
        close = price_to_tick(t.bars["close"][poc_bar - t.j0], self.tick_size)
        is_bid, is_ask = bid > ask, ask > bid
        agg = np.where(is_bid, bid, ask)
        # from the row's edge on the aggressor's side (the batch's rule)
        progress = np.where(is_bid, tick - close, close - (tick + n - 1))
        keep = (is_bid | is_ask) & (agg >= self.min_volume) & (progress <= self.max_progress)
        if self.side is not None:
            keep &= is_bid if self.side == "bid" else is_ask
        return {"bar": poc_bar[keep], "tick": tick[keep], "bid": is_bid[keep],
                "volume": vol[keep], "aggressor_volume": agg[keep],
                "progress_ticks": progress[keep].astype("int64")}

    def build(self, cols: dict, index):
        side = np.where(cols["bid"], "bid", "ask").astype(object)
        return rows_frame({"ts": cols["ts"], "tick": cols["tick"], "side": side,
                           "volume": cols["volume"], "aggressor_volume": cols["aggressor_volume"],
                           "progress_ticks": cols["progress_ticks"]}, index)
