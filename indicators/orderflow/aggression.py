"""Aggression studies: sweeps (one side clearing several levels fast) and absorption (heavy
aggression at a level that fails to move price).

Pure functions over ``tradeflow.model`` layouts (trades ``ts, price, size, side``; footprint cells
``ts, tick, volume, ask_volume, bid_volume``; bars ``ts, close``); price levels are integer ticks
(``round(price / tick_size)``, halves away from zero as ``Instrument.to_tick``). No I/O.

Definitions
-----------
* **Sweep**: an aggressive order (or a burst of them) that takes the liquidity of several price
  levels in a row -- "a single 'at market' buy order that exceeds the quantity available at the
  front of the sell queue, lifting price and taking some of the volume at level 2 [...] a large
  order can sweep price 6+ levels" (camron systems, "sweep orders - sweep trades",
  http://camron.co.nz/index.php/level-5/paper-cst-503). Feeds report such an order as several
  prints (see :func:`.prints.big_trades`, which sums prints of one timestamp); here the prints
  may also be spread over a short time. From the tape, trades in time order (stable for equal
  times) are cut into maximal *runs*: a run continues from one trade to the next while

  - both have the same known aggressor side (+1 or -1; an opposite-side or unknown-side trade
    ends the run, unknown-side trades belong to no run),
  - the next trade is at most ``max_gap`` after the previous one (inclusive), and
  - the price does not move against the aggressor: buys tick up or stay, sells tick down or stay.

  A run is a sweep when it trades at ``>= min_levels`` distinct ticks (``levels``; with monotone
  prices that is 1 + the number of tick changes) and its total size is ``>= min_size``. Runs are
  maximal, so every stretch of trades that satisfies the conditions lies inside one reported
  sweep. A row: ``ts_start, ts_end, side, tick_start, tick_end, levels, size, trades``
  (``trades`` = number of prints), ordered by ``ts_start``.

* **Absorption**: heavy aggressive volume at a level that does not move price -- "disproportionate
  volume near the extreme of a bar with little to no price movement beyond that level"; *selling
  absorption* when aggressive sellers are met by passive buyers, *buying absorption* when
  aggressive buyers are met by passive sellers (footprintchart.com, "Absorption - Reading Supply
  and Demand on a Footprint Chart", https://footprintchart.com/see-inside-the-chart-1/2018/4/4/
  absorption-reading-supply-and-demand-on-a-footprint-chart; the ATAS description at
  https://www.orderflowtrading.de/website/en/absoption-on-the-footprint-chart/ says the same).
  Per bar, with the bar's cells summed per tick:

  - the level is the bar's POC (:func:`.footprint.bar_poc`: most volume; ties to the middle of
    the bar, then the lower tick) -- one candidate per bar;
  - its aggressor is the side with more volume there: ``bid_volume > ask_volume`` (sellers
    hitting the bid) gives ``side='bid'`` (passive buyers absorbed the selling),
    ``ask_volume > bid_volume`` gives ``side='ask'`` (passive sellers absorbed the buying); a level
    with equal sides is no absorption;
  - ``aggressor_volume`` (that side's volume at the level) is ``>= min_volume``;
  - ``progress_ticks`` -- how far the bar's close lies beyond the level in the aggressor's
    direction: ``level - close_tick`` for bid absorption, ``close_tick - level`` for ask
    absorption (negative when the close is on the passive side) -- is ``<= max_progress_ticks``.

  A row: ``ts, tick, side, volume, aggressor_volume, progress_ticks``, ordered by ``ts``.

  **Rows of N ticks** (``rows=N``, default 1): the bar's cells are summed into rows of N ticks,
  keyed by their lowest tick ``floor(tick / N) * N`` (as :func:`.imbalance.group_ticks`), and
  the level is the bar's POC row (:func:`.footprint.bar_poc` with ``rows``): heavy volume in a
  band of N ticks. ``tick`` is the row's key; ``volume`` and the sides are the row's sums;
  ``progress_ticks`` is still in ticks, measured from the row's edge on the aggressor's side
  (sellers push down, so from its lowest tick: ``key - close_tick``; buyers from its highest:
  ``close_tick - (key + N - 1)``), so a close inside the row is no progress (<= 0).
"""
from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from tradeflow.model import ns_to_utc, price_to_tick

from ..frames import (group_starts, non_negative, non_negative_int, positive_int,
                       positive_tick_size, require, trade_arrays, ts_ns)
from .footprint import bar_poc
from .imbalance import rows_summed

__all__ = ["sweeps", "absorption"]

ABSORPTION_SIDES = (None, "bid", "ask")


def max_gap_ns(value) -> int:
    """``max_gap`` (``"250ms"``, a Timedelta/timedelta/timedelta64) as positive nanoseconds."""
    if value is None or isinstance(value, bool) or (
            isinstance(value, numbers.Number) and not isinstance(value, np.timedelta64)):
        # a bare number has no unit
        raise ValueError(f"sweeps: max_gap must be a duration such as '250ms' or "
                         f"pd.Timedelta('250ms'), got {value!r}")
    try:
        gap = pd.Timedelta(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"sweeps: max_gap {value!r} is not a duration (e.g. '250ms', '1s')"
                         ) from exc
    if pd.isna(gap) or gap <= pd.Timedelta(0):
        raise ValueError(f"sweeps: max_gap must be a duration > 0, got {value!r}")
    return int(gap.value)


def _empty_sweeps() -> pd.DataFrame:
    return pd.DataFrame({"ts_start": ns_to_utc(np.empty(0, "int64")),
                         "ts_end": ns_to_utc(np.empty(0, "int64")),
                         "side": np.empty(0, "int8"), "tick_start": np.empty(0, "int64"),
                         "tick_end": np.empty(0, "int64"), "levels": np.empty(0, "int64"),
                         "size": np.empty(0, "float64"), "trades": np.empty(0, "int64")})


def sweeps(trades: pd.DataFrame, tick_size: float, min_levels: int = 3, max_gap="250ms",
           min_size: float = 0) -> pd.DataFrame:
    """Sweeps in ``trades``: maximal runs of same-side trades, each within ``max_gap`` of the
    previous, with prices monotone in the aggressor's direction, over ``>= min_levels`` distinct
    ticks and ``>= min_size`` in total (see the module's definitions).

    Returns ``ts_start, ts_end, side, tick_start, tick_end, levels, size, trades`` ordered by
    ``ts_start``. ``min_levels`` must be >= 2 (a single level is no sweep), ``max_gap`` > 0,
    ``tick_size`` > 0 and ``min_size`` >= 0."""
    tick_size = positive_tick_size(tick_size, "sweeps")
    if isinstance(min_levels, bool) or not isinstance(min_levels, numbers.Integral) \
            or min_levels < 2:
        raise ValueError(f"sweeps: min_levels must be a whole number >= 2 (a sweep clears at "
                         f"least two levels), got {min_levels!r}")
    gap = max_gap_ns(max_gap)
    min_size = non_negative(min_size, "sweeps: min_size")
    t, price, size, side = trade_arrays(trades, "sweeps")
    n = len(t)
    if n == 0:
        return _empty_sweeps()
    order = np.argsort(t, kind="stable")
    t, price, size, side = t[order], price[order], size[order], side[order]
    tick = price_to_tick(price, tick_size)

    # a run breaks before trade i when any continuation condition fails
    brk = np.ones(n, dtype=bool)
    dtick = np.diff(tick)
    brk[1:] = ((side[1:] != side[:-1]) | (side[1:] == 0) | (np.diff(t) > gap)
               | (side[1:] * dtick < 0))
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], n) - 1
    changed = np.zeros(n, dtype="int64")
    changed[1:] = (dtick != 0) & ~brk[1:]
    levels = 1 + np.add.reduceat(changed, starts)
    total = np.add.reduceat(size, starts)
    run_side = side[starts]
    keep = (run_side != 0) & (levels >= min_levels) & (total >= min_size)
    s, e = starts[keep], ends[keep]
    return pd.DataFrame({"ts_start": ns_to_utc(t[s]), "ts_end": ns_to_utc(t[e]),
                         "side": run_side[keep].astype("int8"), "tick_start": tick[s],
                         "tick_end": tick[e], "levels": levels[keep].astype("int64"),
                         "size": total[keep], "trades": (e - s + 1).astype("int64")})


def absorption(cells: pd.DataFrame, bars: pd.DataFrame, tick_size: float, min_volume: float,
               max_progress_ticks: int = 1, side: str | None = None, rows: int = 1
               ) -> pd.DataFrame:
    """Absorption per bar: the bar's POC where one side's aggression (``>= min_volume``, and
    more than the other side's there) did not carry the close more than ``max_progress_ticks``
    beyond the level (see the module's definitions).

    Returns ``ts, tick, side, volume, aggressor_volume, progress_ticks`` ordered by ``ts``;
    ``side`` ``'bid'`` = passive buyers absorbed selling, ``'ask'`` = passive sellers absorbed
    buying; pass ``side`` to keep one kind only. ``bars`` need ``ts, close`` with distinct,
    increasing ``ts``; every cell must belong to one of the bars (same ``ts``); bars without cells
    give no row. ``rows=N``: the level is the POC row of N ticks, ``tick`` its lowest tick."""
    tick_size = positive_tick_size(tick_size, "absorption")
    rows = positive_int(rows, "absorption: rows")
    min_volume = non_negative(min_volume, "absorption: min_volume")
    max_progress_ticks = non_negative_int(max_progress_ticks, "absorption: max_progress_ticks")
    if side not in ABSORPTION_SIDES:
        raise ValueError(f"absorption: side must be None, 'bid' or 'ask', got {side!r}")
    require(cells, ("ts", "tick", "volume", "ask_volume", "bid_volume"), "absorption: cells")
    require(bars, ("ts", "close"), "absorption: bars")
    bt = ts_ns(bars["ts"])
    if np.any(np.diff(bt) <= 0):
        raise ValueError("absorption: bars must be ordered by ts, one row per bar (distinct open "
                         "times)")
    close = bars["close"].to_numpy(dtype="float64")
    if not np.all(np.isfinite(close)):
        raise ValueError("absorption: bar closes must be finite")
    close_tick = price_to_tick(close, tick_size)

    t = ts_ns(cells["ts"])
    tick = cells["tick"].to_numpy(dtype="int64")
    vol = cells["volume"].to_numpy(dtype="float64")
    ask = cells["ask_volume"].to_numpy(dtype="float64")
    bid = cells["bid_volume"].to_numpy(dtype="float64")
    if len(t) and not np.all(np.isin(t, bt)):
        raise ValueError("absorption: some cells belong to no bar of `bars` (their ts is not a "
                         "bar's ts); pass the bars and cells of one build")
    # cells summed per (ts, row); with rows=1 a row is a tick
    t, tick, sums = rows_summed(t, tick, {"vol": vol, "ask": ask, "bid": bid}, rows)
    vol, ask, bid = sums["vol"], sums["ask"], sums["bid"]
    poc = bar_poc(pd.DataFrame({"ts": ns_to_utc(t), "tick": tick, "volume": vol}))
    pt = ts_ns(poc["ts"])
    ptick = poc["poc"].to_numpy(dtype="int64")
    # the POC's row among the summed cells: keyed by (ts, tick), both sorted
    row = _rows(t, tick, pt, ptick)
    pa, pb, pv = ask[row], bid[row], vol[row]
    ct = close_tick[np.searchsorted(bt, pt)]
    is_bid = pb > pa
    is_ask = pa > pb
    agg = np.where(is_bid, pb, pa)
    # from the row's edge on the aggressor's side: its lowest tick for sellers, highest for buyers
    progress = np.where(is_bid, ptick - ct, ct - (ptick + rows - 1))
    keep = (is_bid | is_ask) & (agg >= min_volume) & (progress <= max_progress_ticks)
    if side == "bid":
        keep &= is_bid
    elif side == "ask":
        keep &= is_ask
    label = np.where(is_bid, "bid", "ask")
    return pd.DataFrame({"ts": ns_to_utc(pt[keep]), "tick": ptick[keep],
                         "side": label[keep].astype(object), "volume": pv[keep],
                         "aggressor_volume": agg[keep],
                         "progress_ticks": progress[keep].astype("int64")})


def _rows(t: np.ndarray, tick: np.ndarray, qt: np.ndarray, qtick: np.ndarray) -> np.ndarray:
    """Index of each (qt, qtick) among the (t, tick) pairs, which are sorted and contain them."""
    if not len(qt):
        return np.empty(0, "int64")
    lo = np.searchsorted(t, qt, side="left")
    # within each bar's slice, ticks are sorted: binary search per bar, vectorised by offsetting
    # the ticks of bar g by g * span so that one global search finds them
    bar = np.cumsum(group_starts(t)) - 1
    kmin = int(min(tick.min(), qtick.min()))
    span = int(max(tick.max(), qtick.max())) - kmin + 1
    key = bar * span + (tick - kmin)
    qkey = bar[lo] * span + (qtick - kmin)
    return np.searchsorted(key, qkey)
