"""Footprint imbalances: diagonal bid/ask imbalances, stacked-imbalance zones, unfinished auctions.

Input: footprint cells (``tradeflow.model`` layout ``ts, tick, volume, ask_volume, bid_volume,
trades``, one row per bar and tick). Every study can first group ticks into rows of ``rows`` ticks
(:func:`group_ticks`); a row is keyed by its lowest tick, and "the row below/above" is the row
``rows`` ticks lower/higher. Pure functions, no I/O.

Definitions
-----------
* **Diagonal imbalance** (the usual footprint comparison: buyers lift the offer one level above
  where sellers hit the bid, so a level's ask is compared with the bid one level *below*):

  - buy imbalance at row p: ``ask(p) >= ratio * bid(p - 1 row)`` and ``ask(p) >= min_volume``
    and ``ask(p) > 0``;
  - sell imbalance at row p: ``bid(p) >= ratio * ask(p + 1 row)`` and ``bid(p) >= min_volume``
    and ``bid(p) > 0``.

  ``ratio`` 3.0 means 300%; it must be > 1. **Zero on the other side**: a row inside the bar's
  range with no trades (or no volume on that side) counts as 0, so the comparison holds and it *is*
  an imbalance when the volume reaches ``min_volume`` (raise ``min_volume`` to filter such thin
  levels). **Bar edges**: the lowest row has no row below it inside the bar and the highest none
  above, so by default the lowest row cannot carry a buy imbalance nor the highest a sell
  imbalance; ``compare_edges=True`` compares them with 0 instead. (Emoji Trading's Order Flow
  Suite, "Imbalance Settings", describes the same diagonal comparison and the same default for the
  edges: https://www.emojitrading.com/docs/user-guide-order-flow-suite/common-indicator-settings/imbalance-settings/)
* **Stacked imbalances**: a run of at least ``min_rows`` (default 3) consecutive rows (adjacent
  rows, no gap) of one bar, each with an imbalance of the same side. A zone is reported as
  ``ts, side (+1 buy / -1 sell), tick_low, tick_high, rows``, ``tick_low``/``tick_high`` being the
  keys (lowest ticks) of its lowest and highest row.
* **Unfinished auction** at a bar's high: the bar's highest row has both ask and bid volume > 0;
  at its low: the lowest row has both bid and ask volume > 0 (a finished auction shows zero on one
  side at the extreme). Definition as in MarketDelta's "unfinished auction / unfinished business"
  (https://footprintchart.com/see-inside-the-chart-1/2016/02/19/unfinished-auction-aka-unfinished-business)
  and ATAS's Unfinished Auction indicator
  (https://support.atas.net/en/knowledge-bases/2/articles/17466-unfinished-auction), whose
  optional volume filters correspond to ``min_volume`` here.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from tradeflow.model import ns_to_utc

from ..frames import group_starts, positive_int, require, ts_ns

__all__ = ["group_ticks", "imbalances", "stacked_imbalances", "unfinished_auctions"]

CELL_COLUMNS = ("ts", "tick", "volume", "ask_volume", "bid_volume", "trades")
_SUMS = ("volume", "ask_volume", "bid_volume", "trades")


def _cell_arrays(cells: pd.DataFrame, rows: int, what: str) -> dict:
    """Cells summed into rows of ``rows`` ticks, as numpy columns ordered by (ts, row)."""
    require(cells, ("ts", "tick", "volume", "ask_volume", "bid_volume"), what)
    rows = positive_int(rows, f"{what}: rows")
    t = ts_ns(cells["ts"])
    key = np.floor_divide(cells["tick"].to_numpy(dtype="int64"), rows) * rows
    cols = {c: cells[c].to_numpy(dtype="float64") for c in ("volume", "ask_volume", "bid_volume")}
    cols["trades"] = (cells["trades"].to_numpy(dtype="int64") if "trades" in cells.columns
                      else np.zeros(len(t), "int64"))
    order = np.lexsort((key, t))
    t, key = t[order], key[order]
    first = np.ones(len(t), dtype=bool)
    if len(t) > 1:
        first[1:] = (t[1:] != t[:-1]) | (key[1:] != key[:-1])
    starts = np.flatnonzero(first)
    out = {"ts": t[starts], "tick": key[starts]}
    for c in _SUMS:
        v = cols[c][order]
        out[c] = np.add.reduceat(v, starts) if len(starts) else v[:0]
    return out


def row_keys(ticks: np.ndarray, rows: int) -> np.ndarray:
    """The key of each tick's row of ``rows`` ticks: its lowest tick, ``floor(tick / rows) * rows``
    (floor division, so negative ticks group the same way)."""
    return np.floor_divide(np.asarray(ticks, dtype="int64"), rows) * rows


def rows_summed(t: np.ndarray, tick: np.ndarray, values: dict, rows: int):
    """``values`` (name: array per cell) summed per bar (``t``) and row of ``rows`` ticks:
    ``(t, row key, sums)`` ordered by t, row. Each sum adds its cells in tick order, as the live
    form (which keeps cells ordered by bar and tick) does, so both give the same bits."""
    order = np.lexsort((tick, t))
    t, key = t[order], row_keys(tick[order], rows)
    s = np.flatnonzero(group_starts(t) | group_starts(key))
    sums = {k: (np.add.reduceat(v[order], s) if len(s) else v[:0]) for k, v in values.items()}
    return t[s], key[s], sums


def group_ticks(cells: pd.DataFrame, n: int) -> pd.DataFrame:
    """Footprint cells summed into rows of ``n`` ticks per bar.

    A row holds ticks ``k*n .. k*n + n - 1`` (floor division, so negative ticks group the same
    way) and is keyed by its lowest tick ``k*n``. Same layout as the input, ordered by ts, tick."""
    a = _cell_arrays(cells, n, "group_ticks")
    frame = pd.DataFrame({c: a[c] for c in ("tick",) + _SUMS})
    frame.insert(0, "ts", ns_to_utc(a["ts"]))
    return frame


_REL_TOL = 1e-9  # see imbalance_flags


def check_ratio(ratio, min_volume) -> tuple[float, float]:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not math.isfinite(ratio) \
            or ratio <= 1:
        raise ValueError(f"ratio must be a number > 1 (3.0 means 300%: the ask at least three "
                         f"times the bid diagonally below), got {ratio!r}")
    if isinstance(min_volume, bool) or not isinstance(min_volume, numbers.Real) \
            or not math.isfinite(min_volume) or min_volume < 0:
        raise ValueError(f"min_volume must be a number >= 0, got {min_volume!r}")
    return float(ratio), float(min_volume)


def imbalance_flags(a: dict, rows: int, ratio: float, min_volume: float, compare_edges: bool):
    """Buy and sell imbalance flags of the rows in ``a`` (ordered by ts, row)."""
    t, key, ask, bid = a["ts"], a["tick"], a["ask_volume"], a["bid_volume"]
    n = len(t)
    lowest = group_starts(t)  # first row of each bar
    highest = np.ones(n, dtype=bool)
    if n > 1:
        highest[:-1] = t[1:] != t[:-1]
    # the present row just below / above, when it is the adjacent row of the same bar
    below_adj = np.zeros(n, dtype=bool)
    below_adj[1:] = (~lowest[1:]) & (key[1:] - key[:-1] == rows)
    above_adj = np.zeros(n, dtype=bool)
    above_adj[:-1] = below_adj[1:]
    bid_below = np.zeros(n)
    bid_below[1:] = np.where(below_adj[1:], bid[:-1], 0.0)
    ask_above = np.zeros(n)
    ask_above[:-1] = np.where(above_adj[:-1], ask[1:], 0.0)
    # "at least" within a relative 1e-9: sizes are decimals summed in binary floating point, so
    # an ask of 0.3 against a bid of 0.1 is 300% and must not depend on the order of the sums
    lenient = 1.0 - _REL_TOL
    buy = (ask > 0) & (ask >= min_volume * lenient) & (ask >= ratio * bid_below * lenient)
    sell = (bid > 0) & (bid >= min_volume * lenient) & (bid >= ratio * ask_above * lenient)
    if not compare_edges:
        buy &= ~lowest
        sell &= ~highest
    return buy, sell, bid_below, ask_above


def imbalances(cells: pd.DataFrame, ratio: float = 3.0, min_volume: float = 0.0, rows: int = 1,
               compare_edges: bool = False) -> pd.DataFrame:
    """Diagonal imbalances per footprint row (see the module's definitions).

    One row per bar and (grouped) row that has trades: ``ts, tick, volume, ask_volume,
    bid_volume, bid_below, ask_above, buy, sell``, ordered by ts, tick; ``bid_below``/``ask_above``
    are the diagonal volumes compared with (0 where that row had no trades or lies outside the
    bar), ``buy``/``sell`` the flags."""
    ratio, min_volume = check_ratio(ratio, min_volume)
    a = _cell_arrays(cells, rows, "imbalances")
    buy, sell, bid_below, ask_above = imbalance_flags(a, int(rows), ratio, min_volume,
                                                      compare_edges)
    frame = pd.DataFrame({"tick": a["tick"], "volume": a["volume"], "ask_volume": a["ask_volume"],
                          "bid_volume": a["bid_volume"], "bid_below": bid_below,
                          "ask_above": ask_above, "buy": buy, "sell": sell})
    frame.insert(0, "ts", ns_to_utc(a["ts"]))
    return frame


def flagged_runs(t, key, flag, rows: int, min_rows: int):
    """(start, end) positions (end exclusive) of runs of adjacent flagged rows of one bar."""
    n = len(t)
    cont = np.zeros(n, dtype=bool)  # this row continues the run of the row before it
    cont[1:] = flag[1:] & flag[:-1] & (t[1:] == t[:-1]) & (key[1:] - key[:-1] == rows)
    start = flag & ~cont
    starts = np.flatnonzero(start)
    run_id = np.cumsum(start) - 1
    length = np.bincount(run_id[flag], minlength=len(starts)) if len(starts) else np.empty(0, int)
    keep = length >= min_rows
    return starts[keep], starts[keep] + length[keep]


def stacked_imbalances(cells: pd.DataFrame, min_rows: int = 3, ratio: float = 3.0,
                       min_volume: float = 0.0, rows: int = 1, compare_edges: bool = False
                       ) -> pd.DataFrame:
    """Zones of stacked imbalances: ``ts, side, tick_low, tick_high, rows``.

    A zone is a run of at least ``min_rows`` adjacent rows of one bar that all carry an imbalance
    of the same side (``side`` +1 buy, -1 sell); ``tick_low``/``tick_high`` are the keys of its
    lowest and highest row. Imbalances as in :func:`imbalances`. Ordered by ts, side, tick_low."""
    min_rows = positive_int(min_rows, "stacked_imbalances: min_rows")
    ratio, min_volume = check_ratio(ratio, min_volume)
    a = _cell_arrays(cells, rows, "stacked_imbalances")
    buy, sell, _, _ = imbalance_flags(a, int(rows), ratio, min_volume, compare_edges)
    parts = []
    for side, flag in ((1, buy), (-1, sell)):
        s, e = flagged_runs(a["ts"], a["tick"], flag, int(rows), min_rows)
        parts.append((a["ts"][s], np.full(len(s), side, "int8"), a["tick"][s], a["tick"][e - 1],
                      (e - s).astype("int64")))
    t, side, lo, hi, n = (np.concatenate(x) for x in zip(*parts))
    order = np.lexsort((lo, -side, t))
    return pd.DataFrame({"ts": ns_to_utc(t[order]), "side": side[order], "tick_low": lo[order],
                         "tick_high": hi[order], "rows": n[order]})


def unfinished_auctions(cells: pd.DataFrame, rows: int = 1, min_volume: float = 0.0
                        ) -> pd.DataFrame:
    """Per bar: ``ts, high_tick, low_tick, unfinished_high, unfinished_low``.

    ``unfinished_high``: the bar's highest (grouped) row has ask volume > 0 and bid volume > 0
    (both also >= ``min_volume``); ``unfinished_low``: the same at its lowest row. ``high_tick``/
    ``low_tick`` are the keys of those rows. A one-row bar is judged at that row for both."""
    if isinstance(min_volume, bool) or not isinstance(min_volume, numbers.Real) \
            or not math.isfinite(min_volume) or min_volume < 0:
        raise ValueError(f"min_volume must be a number >= 0, got {min_volume!r}")
    a = _cell_arrays(cells, rows, "unfinished_auctions")
    t, key, ask, bid = a["ts"], a["tick"], a["ask_volume"], a["bid_volume"]
    lo = np.flatnonzero(group_starts(t))
    hi = np.append(lo[1:], len(t)) - 1 if len(lo) else lo

    def both(i):
        return (ask[i] > 0) & (bid[i] > 0) & (ask[i] >= min_volume) & (bid[i] >= min_volume)

    return pd.DataFrame({"ts": ns_to_utc(t[lo]), "high_tick": key[hi], "low_tick": key[lo],
                         "unfinished_high": both(hi), "unfinished_low": both(lo)})
