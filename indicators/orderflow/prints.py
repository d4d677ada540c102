"""Prints: big trades (single prints or same-timestamp sweeps), zero prints, naked POCs.

Pure functions over ``tradeflow.model`` layouts (trades ``ts, price, size, side``; footprint cells
``ts, tick, volume, ask_volume, bid_volume``; bars ``ts, high, low``); price levels are integer
ticks. No I/O.

**Rows of N ticks** (``rows=N``, default 1): zero prints and naked POCs can work on rows of N
ticks instead of single ticks. A row holds ticks ``k*N .. k*N + N - 1`` and is keyed by its lowest
tick ``k*N`` (as :func:`.imbalance.group_ticks`); a row's volumes are the sums of its ticks', and a
bar's range in rows runs from the row of its lowest tick to the row of its highest, step N.

Definitions
-----------
* **Big trade**: a trade whose ``size >= min_size``; with ``aggregate_same_ts=True`` (default) the
  prints that share a timestamp *and* an aggressor side are first summed into one (an aggressive
  order that sweeps several levels is reported by most feeds as several prints with one
  timestamp). A row: ``ts, side, price, size, prints, price_low, price_high`` -- ``price`` is the
  size-weighted mean price of the summed prints, ``prints`` their count, ``price_low``/
  ``price_high`` the lowest/highest of them. Trades of unknown side (0) are grouped among
  themselves. Ordered by ts, then side descending (+1, 0, -1). This is the "Big Trades" filter
  of footprint platforms with their "aggregate" option (TigerTrade: "combining several trades with
  the same time and direction (buy or sell) into one, presumably related to one market order",
  https://support.tiger.com/english/windows/chart/main-indicators-in-chart-window/big-trades;
  ATAS "Cumulative Trades" vs "Separate Trades",
  https://help.atas.net/en/support/solutions/articles/72000602332). The threshold is inclusive
  (``size >= min_size``), as those platforms' "Minimum Volume".
* **Zero print**: a price level inside a bar's range (lowest to highest level, both included)
  where one side traded nothing: ``missing_side`` is ``'ask'`` when no volume traded at the ask
  there (no buyer lifted the offer), ``'bid'`` when none at the bid, ``'both'`` when no trade at
  all (a gap inside the bar). Levels with volume on both sides are not listed. As in the
  glossary of scstudies.com ("a price level where one side of the bid/ask volume is zero",
  https://www.scstudies.com/glossary/zero-print). The bar's own high and low are included (a
  zero there is a *finished* auction, the complement of :func:`.imbalance.unfinished_auctions`);
  some tools leave the extremes out (scstudies' Zero Print Zones,
  https://www.scstudies.com/products/zero-print-zones) -- drop the rows at each bar's lowest and
  highest tick to get that. With ``rows=N`` the levels are the rows of the bar's range (every
  row from the row of its lowest tick to that of its highest, gaps included), a row's ask and
  bid volumes the sums over its N ticks, and ``tick`` the row's key. (Summing the cells with
  ``group_ticks`` first is not the same: the range would still be walked tick by tick, so every
  tick between two row keys would look empty.)
* **Naked POC** (also "virgin POC"): a point of control that no later bar's range (low to high,
  both included) has traded through. Each bar's POC (:func:`.footprint.bar_poc`: the tick of most
  volume, ties to the middle of the bar, then lower) and, with a ``session``, each trading day's
  POC (:func:`indicators.profile.volume.session_profiles`) gets ``naked_until``: the ``ts`` of the
  first later bar whose range contains it, NaT while it is still naked. Bar ranges come from the
  cells (lowest and highest tick with a cell). "Later" for a session POC means bars of later
  trading days. Flowsurface does the same per bar (``data/src/aggr/time.rs``,
  ``update_poc_status``: a POC is filled by the first later bar with ``low <= poc <= high``).
  With ``rows=N`` the POCs are those of rows of N ticks (the bar's, :func:`.footprint.bar_poc`
  with ``rows``; the day's, ``session_profiles`` with ``rows``) and a later bar revisits one when
  its range in rows holds that row, i.e. it traded at any tick of the row or through it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc, price_to_tick

from ..profile.volume import session_profiles
from ..frames import group_starts, positive_int, positive_number, require, trade_arrays, ts_ns
from .footprint import bar_poc
from .imbalance import rows_summed

__all__ = ["big_trades", "zero_prints", "naked_pocs"]


# --------------------------------------------------------------------------------------------
# big trades


def big_trades(trades: pd.DataFrame, min_size: float, aggregate_same_ts: bool = True
               ) -> pd.DataFrame:
    """Trades (or same-timestamp, same-side sums of prints) of at least ``min_size``:
    ``ts, side, price, size, prints, price_low, price_high`` (see the module's definitions)."""
    min_size = positive_number(min_size, "big_trades: min_size")
    t, price, size, side = trade_arrays(trades, "big_trades")
    if aggregate_same_ts:
        order = np.lexsort((-side, t))
        t, side, price, size = t[order], side[order], price[order], size[order]
        first = group_starts(t) | group_starts(side)
        starts = np.flatnonzero(first)
        if len(starts):
            tot = np.add.reduceat(size, starts)
            pv = np.add.reduceat(price * size, starts)
            lo = np.minimum.reduceat(price, starts)
            hi = np.maximum.reduceat(price, starts)
            n = np.diff(np.append(starts, len(t)))
            with np.errstate(invalid="ignore", divide="ignore"):
                vw = np.where(tot > 0, pv / tot, (lo + hi) / 2)
            vw = np.clip(vw, lo, hi)  # rounding cannot put the mean outside its prints
        else:
            tot = pv = lo = hi = vw = np.empty(0)
            n = np.empty(0, "int64")
        t, side = t[starts], side[starts]
    else:
        order = np.lexsort((-side, t))
        t, side, vw, tot = t[order], side[order], price[order], size[order]
        lo = hi = vw
        n = np.ones(len(t), dtype="int64")
    keep = tot >= min_size
    return pd.DataFrame({"ts": ns_to_utc(t[keep]), "side": side[keep].astype("int8"),
                         "price": vw[keep], "size": tot[keep], "prints": n[keep].astype("int64"),
                         "price_low": lo[keep], "price_high": hi[keep]})


# --------------------------------------------------------------------------------------------
# zero prints


def _cell_sums(cells: pd.DataFrame, what: str):
    """Cells summed per (ts, tick), ordered by ts, tick: (ts ns, tick, ask, bid)."""
    require(cells, ("ts", "tick", "ask_volume", "bid_volume"), what)
    t = ts_ns(cells["ts"])
    tick = cells["tick"].to_numpy(dtype="int64")
    ask = cells["ask_volume"].to_numpy(dtype="float64")
    bid = cells["bid_volume"].to_numpy(dtype="float64")
    order = np.lexsort((tick, t))
    t, tick, ask, bid = t[order], tick[order], ask[order], bid[order]
    first = group_starts(t) | group_starts(tick)
    s = np.flatnonzero(first)
    if not len(s):
        return t, tick, ask, bid
    return t[s], tick[s], np.add.reduceat(ask, s), np.add.reduceat(bid, s)


def zero_prints(cells: pd.DataFrame, bars: pd.DataFrame, tick_size: float | None = None,
                rows: int = 1) -> pd.DataFrame:
    """Levels inside each bar's range with no volume on one side: ``ts, tick, missing_side``
    (``'bid'``, ``'ask'`` or ``'both'``), ordered by ts, tick.

    A bar's range is its lowest to highest tick: from the bar's ``low``/``high`` on the tick grid
    (``round(price / tick_size)``, as ``Instrument.to_tick``) when ``tick_size`` is given, else
    from its lowest and highest cell (the same thing for bars built from trades; without
    ``tick_size`` a bar without cells has no known range and is skipped). Every cell must belong
    to one of ``bars``. ``rows=N``: the levels are rows of N ticks over that range, ``tick`` the
    row's lowest tick (see the module's definitions)."""
    require(bars, ("ts", "high", "low") if tick_size is not None else ("ts",),
            "zero_prints: bars")
    rows = positive_int(rows, "zero_prints: rows")
    t, tick, ask, bid = _cell_sums(cells, "zero_prints: cells")
    bts = np.unique(ts_ns(bars["ts"]))
    if len(t) and not np.all(np.isin(t, bts)):
        raise ValueError("zero_prints: some cells belong to no bar of `bars` (their ts is not a "
                         "bar's ts); pass the bars and cells of one build")
    if tick_size is not None:
        tick_size = positive_number(tick_size, "zero_prints: tick_size")
        bt = ts_ns(bars["ts"])
        hi_p = bars["high"].to_numpy(dtype="float64") / tick_size
        lo_p = bars["low"].to_numpy(dtype="float64") / tick_size
        if not (np.all(np.isfinite(hi_p)) and np.all(np.isfinite(lo_p))):
            raise ValueError("zero_prints: bar highs and lows must be finite")
        bhi, blo = price_to_tick(hi_p, 1.0), price_to_tick(lo_p, 1.0)  # already in ticks
        # cells outside the stated range widen it (a bar's range holds every traded level)
        if np.any(np.diff(bt) <= 0):
            raise ValueError("zero_prints: bars must be ordered by ts, one row per bar")
        if len(t):
            g = np.searchsorted(bt, t)
            np.minimum.at(blo, g, tick)
            np.maximum.at(bhi, g, tick)
        if np.any(bhi < blo):
            raise ValueError("zero_prints: a bar's high is below its low")
    else:
        s = np.flatnonzero(group_starts(t))
        e = np.append(s[1:], len(t)) - 1 if len(s) else s
        bt, blo, bhi = t[s], tick[s], tick[e]
    if rows > 1:  # the walk below goes level by level: make a level one row (index k of k*N)
        t, key, sums = rows_summed(t, tick, {"ask": ask, "bid": bid}, rows)
        tick, ask, bid = key // rows, sums["ask"], sums["bid"]
        blo, bhi = np.floor_divide(blo, rows), np.floor_divide(bhi, rows)
    n = (bhi - blo + 1).astype("int64")
    lt = np.repeat(bt, n)
    base = np.repeat(blo, n)
    off = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    lk = base + off
    la = np.zeros(len(lk))
    lb = np.zeros(len(lk))
    ordr = np.lexsort((lk, lt))
    lt, lk = lt[ordr], lk[ordr]
    if len(t) and len(lk):
        # every cell lies in its bar's range: find its level by a combined (bar, tick) key
        ubar = np.unique(lt)
        kmin = int(lk.min())
        span = int(lk.max()) - kmin + 1
        key_l = np.searchsorted(ubar, lt) * span + (lk - kmin)
        key_c = np.searchsorted(ubar, t) * span + (tick - kmin)
        j = np.searchsorted(key_l, key_c)
        la[j], lb[j] = ask, bid
    no_ask, no_bid = la <= 0, lb <= 0
    miss = no_ask | no_bid
    label = np.where(no_ask & no_bid, "both", np.where(no_ask, "ask", "bid"))
    return pd.DataFrame({"ts": ns_to_utc(lt[miss]), "tick": lk[miss].astype("int64") * rows,
                         "missing_side": label[miss].astype(object)})


# --------------------------------------------------------------------------------------------
# naked POCs


def first_cover(blo: np.ndarray, bhi: np.ndarray, after: np.ndarray, poc: np.ndarray
                ) -> np.ndarray:
    """For each query: index of the first bar j > after[q] whose [blo, bhi] holds poc[q], or -1.

    Every (level, bar) pair of the bars' ranges is keyed ``level * (nbars + 1) + bar`` and sorted;
    a query is a binary search for its level just after its bar."""
    nb = len(blo)
    if not len(poc):
        return np.empty(0, "int64")
    kmin = int(min(blo.min(), poc.min()))
    n = (bhi - blo + 1).astype("int64")
    bar = np.repeat(np.arange(nb, dtype="int64"), n)
    lvl = np.repeat(blo - kmin, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    m = nb + 1
    keys = np.sort(lvl * m + bar)
    q = (poc - kmin) * m + after + 1
    i = np.searchsorted(keys, q, side="left")
    ok = i < len(keys)
    hit = np.full(len(poc), -1, dtype="int64")
    ki = keys[np.where(ok, i, 0)] if len(keys) else np.zeros(len(poc), "int64")
    ok &= (ki // m) == (poc - kmin)
    hit[ok] = ki[ok] % m
    return hit


def naked_pocs(cells: pd.DataFrame, session: Session | None = None, rows: int = 1
               ) -> pd.DataFrame:
    """Every bar's POC (and, with ``session``, every trading day's) with the first later bar
    that revisited it: ``ts, kind, poc, naked_until`` -- ``kind`` ``'bar'`` (``ts`` the bar's) or
    ``'session'`` (``ts`` the trading date, midnight UTC, as in ``session_profiles``);
    ``naked_until`` is NaT while the POC is still naked. Ordered by kind (bars first), then ts.
    ``rows=N``: POCs of rows of N ticks, ``poc`` the row's lowest tick, revisited by a later bar
    that traded in or through the row (see the module's definitions)."""
    require(cells, ("ts", "tick", "volume"), "naked_pocs: cells")
    if session is not None and not isinstance(session, Session):
        raise ValueError(f"session must be a tradeflow.model.Session (e.g. instrument.session), "
                         f"got {type(session).__name__}")
    rows = positive_int(rows, "naked_pocs: rows")
    t = ts_ns(cells["ts"])
    tick = cells["tick"].to_numpy(dtype="int64")
    order = np.lexsort((tick, t))
    # levels are row indexes k (row key k*N): bar ranges and POCs are compared on them
    t, level = t[order], np.floor_divide(tick[order], rows)
    s = np.flatnonzero(group_starts(t))
    e = np.append(s[1:], len(t)) - 1 if len(s) else s
    bt, blo, bhi = t[s], level[s], level[e]
    pocs = bar_poc(cells, rows)
    plevel = pocs["poc"].to_numpy(dtype="int64") // rows
    q_t = [ts_ns(pocs["ts"])]
    q_kind = [np.full(len(plevel), "bar", dtype=object)]
    q_poc = [plevel]
    q_after = [np.arange(len(plevel), dtype="int64")]  # bar_poc is ordered by ts, as bt
    if session is not None and len(cells):
        vol = cells["volume"].to_numpy(dtype="float64")
        if vol.sum() > 0:
            _, summary = session_profiles(cells, session, rows)
            days = session.trading_date(pd.DatetimeIndex(ns_to_utc(bt))).asi8
            last = np.flatnonzero(np.append(days[1:] != days[:-1], True))  # last bar of each day
            sday = ts_ns(summary["date"])
            q_t.append(sday)
            q_kind.append(np.full(len(sday), "session", dtype=object))
            q_poc.append(summary["poc"].to_numpy(dtype="int64") // rows)
            q_after.append(last[np.searchsorted(days[last], sday)])
    qt, qk, qp, qa = (np.concatenate(x) for x in (q_t, q_kind, q_poc, q_after))
    hit = first_cover(blo, bhi, qa, qp)
    until = np.where(hit >= 0, bt[np.maximum(hit, 0)] if len(bt) else 0, np.iinfo("int64").min)
    return pd.DataFrame({"ts": ns_to_utc(qt), "kind": qk, "poc": qp * rows,
                         "naked_until": ns_to_utc(until)})
