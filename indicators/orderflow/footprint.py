"""Per-bar order-flow metrics (delta, delta %, intrabar running-delta extremes, bar POC) and
cumulative volume delta (CVD) with its candles.

Inputs are ``tradeflow.model`` frames: trades ``ts, price, size, side, trade_id``, bars ``ts, open,
high, low, close, volume, ask_volume, bid_volume, delta, trades, open_interest`` and footprint
cells ``ts, tick, volume, ask_volume, bid_volume, trades``. Pure functions, no I/O.

Definitions
-----------
* **delta** of a bar: ``ask_volume - bid_volume`` (buyer- minus seller-initiated volume; trades
  of unknown side count in volume only). **delta %**: ``delta / volume`` (NaN for a bar without
  volume), a share in [-1, 1].
* **running delta** inside a bar: starting at 0 when the bar opens, after each trade (in time
  order) the sum of ``+size`` for buyer-initiated and ``-size`` for seller-initiated trades so far.
  ``delta_max``/``delta_min`` are its maximum/minimum over the bar *including the opening 0*, so
  ``delta_min <= min(0, delta) <= max(0, delta) <= delta_max`` always holds and a CVD candle's
  open lies within its high-low range.
* **bar POC**: the tick with the largest volume among the bar's footprint cells. Ties go to the
  tick closest to the midpoint of the bar's traded range (the middle of its lowest and highest
  cell), and if two are equally close (one above, one below), to the lower of the two.
  With ``rows=N`` the bar's cells are first summed into rows of N ticks, each keyed by its lowest
  tick ``floor(tick / N) * N`` (as :func:`.imbalance.group_ticks`); the POC is then the row with
  the largest volume (ties: the row closest to the middle of the bar's lowest and highest row,
  then the lower row), reported by its key.
* **CVD**: running sum of bar delta; with a :class:`~tradeflow.model.Session` it restarts at 0 at
  each trading day (``Session.trading_date`` of the bar's open time).
* **CVD candles**: per bar, ``open`` = CVD before the bar (0 at a reset), ``close`` = CVD after it,
  ``high = open + delta_max``, ``low = open + delta_min``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc

from ..frames import group_starts, positive_int, require, ts_ns
from .imbalance import rows_summed

__all__ = [
    "bar_delta", "running_delta_extremes", "bar_poc", "footprint_metrics", "cvd", "cvd_candles",
]

_BY = ("count", "time")
_RESETS = ("session", "none")


def bar_delta(bars: pd.DataFrame) -> pd.DataFrame:
    """Per bar: ``ts, volume, trades, delta, delta_pct``.

    ``delta = ask_volume - bid_volume``; ``delta_pct = delta / volume`` (NaN where volume is 0).
    The frame has the bars' index."""
    require(bars, ("ts", "volume", "ask_volume", "bid_volume", "trades"), "bar_delta: bars")
    volume = bars["volume"].to_numpy(dtype="float64")
    delta = bars["ask_volume"].to_numpy(dtype="float64") - bars["bid_volume"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(volume > 0, delta / np.where(volume > 0, volume, 1.0), np.nan)
    return pd.DataFrame({"ts": bars["ts"], "volume": volume,
                         "trades": bars["trades"].to_numpy(dtype="int64"),
                         "delta": delta, "delta_pct": pct}, index=bars.index)


def _trade_counts(trades_ts: np.ndarray, bars: pd.DataFrame, by: str) -> np.ndarray:
    """How many of the (time-ordered) trades belong to each bar, in bar order."""
    if by == "count":
        counts = bars["trades"].to_numpy(dtype="int64")
        if counts.sum() != len(trades_ts) or (counts < 0).any():
            raise ValueError(
                f"running delta: the bars count {int(counts.sum())} trades but {len(trades_ts)} "
                "were given; pass exactly the trades the bars were built from, or by='time' to "
                "place each trade in the bar whose open time is the latest at or before it")
        return counts
    bar_ts = ts_ns(bars["ts"])
    if len(bar_ts) > 1 and not (np.diff(bar_ts) > 0).all():
        raise ValueError("running delta by='time': bar open times must be strictly increasing "
                         "(tick/volume/range bars can share a time: use by='count')")
    idx = np.searchsorted(bar_ts, trades_ts, side="right") - 1
    if len(idx) and idx[0] < 0:
        raise ValueError("running delta by='time': some trades are older than the first bar")
    return np.bincount(idx, minlength=len(bar_ts)).astype("int64")


def running_delta_extremes(trades: pd.DataFrame, bars: pd.DataFrame, by: str = "count"
                           ) -> pd.DataFrame:
    """Per bar: ``ts, delta_max, delta_min`` -- the extremes of the running delta inside the bar.

    The running delta starts at 0 when the bar opens and adds ``side * size`` after each trade (time
    order, ties in input order); its extremes include that opening 0. Which trades form which bar:
    ``by="count"`` (default, every bar type) takes consecutive trades by the bars' ``trades``
    counts, so ``trades`` must be exactly the trades the bars were built from; ``by="time"`` puts each
    trade in the bar with the latest open time at or before it (time bars only)."""
    require(trades, ("ts", "size", "side"), "running_delta_extremes: trades")
    require(bars, ("ts", "trades"), "running_delta_extremes: bars")
    if by not in _BY:
        raise ValueError(f"by must be one of {', '.join(_BY)}, got {by!r}")
    t_ns = ts_ns(trades["ts"])
    order = np.argsort(t_ns, kind="stable")
    size = trades["size"].to_numpy(dtype="float64")[order]
    side = trades["side"].to_numpy()[order]
    signed = np.where(side > 0, size, np.where(side < 0, -size, 0.0))
    counts = _trade_counts(t_ns[order], bars, by)
    n = len(counts)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if n else np.empty(0, "int64")
    dmax, dmin = np.zeros(n), np.zeros(n)
    nonempty = counts > 0
    if len(signed):
        cs = np.cumsum(signed)
        base = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0.0)
        run = cs - np.repeat(base, counts)  # running delta, reset at every bar's first trade
        dmax[nonempty] = np.maximum.reduceat(run, starts[nonempty])
        dmin[nonempty] = np.minimum.reduceat(run, starts[nonempty])
    return pd.DataFrame({"ts": bars["ts"], "delta_max": np.maximum(dmax, 0.0),
                         "delta_min": np.minimum(dmin, 0.0)}, index=bars.index)


def bar_poc(cells: pd.DataFrame, rows: int = 1) -> pd.DataFrame:
    """Per bar present in ``cells``: ``ts, poc, poc_volume``, ordered by ``ts``.

    POC = the tick with the largest volume in the bar; ties go to the tick closest to the middle
    of the bar's lowest and highest cell, then to the lower tick. ``rows=N``: the same over the
    bar's rows of N ticks (cells summed per row), ``poc`` being the row's lowest tick."""
    require(cells, ("ts", "tick", "volume"), "bar_poc: cells")
    rows = positive_int(rows, "bar_poc: rows")
    t = ts_ns(cells["ts"])
    tick = cells["tick"].to_numpy(dtype="int64")
    vol = cells["volume"].to_numpy(dtype="float64")
    if rows > 1:  # (rows=1 takes the cells as given, as it always has)
        t, tick, sums = rows_summed(t, tick, {"volume": vol}, rows)
        vol = sums["volume"]
    order = np.lexsort((tick, t))
    t, tick, vol = t[order], tick[order], vol[order]
    if not len(t):
        return pd.DataFrame({"ts": ns_to_utc(np.empty(0, "int64")),
                             "poc": np.empty(0, "int64"), "poc_volume": np.empty(0)})
    first = group_starts(t)
    grp = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(t)) - 1
    vmax = np.maximum.reduceat(vol, starts)[grp]
    mid2 = (tick[starts] + tick[ends])[grp]  # twice the midpoint, kept integral
    dist = np.abs(2 * tick - mid2)
    cand = np.flatnonzero(vol == vmax)
    # among the candidates of each bar: the smallest distance, then the lowest tick
    pick = cand[np.lexsort((tick[cand], dist[cand], grp[cand]))]
    pick = pick[group_starts(grp[pick])]
    return pd.DataFrame({"ts": ns_to_utc(t[pick]), "poc": tick[pick], "poc_volume": vol[pick]})


def footprint_metrics(bars: pd.DataFrame, trades: pd.DataFrame | None = None,
                      cells: pd.DataFrame | None = None, by: str = "count", rows: int = 1
                      ) -> pd.DataFrame:
    """Per bar: ``ts, volume, trades, delta, delta_pct, delta_max, delta_min, poc``.

    See the module's definitions. ``delta_max``/``delta_min`` need ``trades`` (NaN without them);
    ``poc`` needs ``cells`` (``<NA>`` without them, and for bars without cells) and is the POC of
    rows of ``rows`` ticks (:func:`bar_poc`). Cells are matched to bars by ``ts``, so bars given
    with cells must have distinct open times."""
    rows = positive_int(rows, "footprint_metrics: rows")
    out = bar_delta(bars)
    if trades is not None:
        ext = running_delta_extremes(trades, bars, by=by)
        out["delta_max"], out["delta_min"] = ext["delta_max"], ext["delta_min"]
    else:
        out["delta_max"], out["delta_min"] = np.nan, np.nan
    poc = pd.array(np.full(len(bars), pd.NA), dtype="Int64")
    if cells is not None:
        bar_ts = ts_ns(bars["ts"])
        if len(np.unique(bar_ts)) != len(bar_ts):
            raise ValueError("footprint_metrics: bars share an open time, so their cells cannot "
                             "be told apart; compute bar_poc(cells) per distinct time instead")
        p = bar_poc(cells, rows)
        pos = pd.Index(ts_ns(p["ts"])).get_indexer(bar_ts)
        hit = pos >= 0
        values = np.zeros(len(bars), "int64")
        values[hit] = p["poc"].to_numpy()[pos[hit]]
        poc = pd.array(np.where(hit, values, 0), dtype="Int64")
        poc[~hit] = pd.NA
    out["poc"] = poc
    return out


def reset_mode(session: Session | None, reset: str | None) -> str:
    if reset is None:
        return "session" if session is not None else "none"
    if reset not in _RESETS:
        raise ValueError(f"reset must be one of {', '.join(_RESETS)}, got {reset!r}")
    if reset == "session" and session is None:
        raise ValueError("reset='session' needs a session (e.g. instrument.session)")
    return reset


def _day_keys(bars: pd.DataFrame, session: Session | None, reset: str) -> np.ndarray:
    if reset == "none" or not len(bars):
        return np.zeros(len(bars), "int64")
    return session.trading_date(pd.DatetimeIndex(ns_to_utc(ts_ns(bars["ts"])))).asi8


def cvd(bars: pd.DataFrame, session: Session | None = None, reset: str | None = None) -> pd.Series:
    """Cumulative volume delta: the running sum of ``ask_volume - bid_volume`` over the bars (in
    the order given, which should be time order).

    ``reset="session"`` (the default when ``session`` is given) restarts the sum at each trading
    day of ``session``; ``reset="none"`` (the default without a session) never restarts."""
    require(bars, ("ts", "ask_volume", "bid_volume"), "cvd: bars")
    mode = reset_mode(session, reset)
    delta = bars["ask_volume"].astype("float64") - bars["bid_volume"].astype("float64")
    days = _day_keys(bars, session, mode)
    out = delta.groupby(days).cumsum() if mode == "session" else delta.cumsum()
    return out.rename("cvd")


def cvd_candles(bars: pd.DataFrame, trades: pd.DataFrame | None = None,
                session: Session | None = None, reset: str | None = None,
                by: str = "count") -> pd.DataFrame:
    """CVD as candles, per bar: ``ts, open, high, low, close``.

    ``open`` = CVD before the bar (0 after a reset), ``close`` = CVD after it, ``high``/``low`` =
    ``open`` plus the bar's running-delta maximum/minimum. The extremes come from ``trades`` (see
    :func:`running_delta_extremes`) or, without trades, from ``delta_max``/``delta_min`` columns of
    ``bars`` (as :func:`footprint_metrics` gives). Reset rules as in :func:`cvd`."""
    close = cvd(bars, session=session, reset=reset).to_numpy()
    delta = (bars["ask_volume"].to_numpy(dtype="float64")
             - bars["bid_volume"].to_numpy(dtype="float64"))
    open_ = close - delta
    # at a reset the open is exactly 0 (no rounding left over from the subtraction)
    mode = reset_mode(session, reset)
    if len(bars):
        first = group_starts(_day_keys(bars, session, mode))
        open_[first] = 0.0
    if trades is not None:
        ext = running_delta_extremes(trades, bars, by=by)
        dmax, dmin = ext["delta_max"].to_numpy(), ext["delta_min"].to_numpy()
    elif {"delta_max", "delta_min"} <= set(bars.columns):
        dmax = bars["delta_max"].to_numpy(dtype="float64")
        dmin = bars["delta_min"].to_numpy(dtype="float64")
    else:
        raise ValueError("cvd_candles: pass the trades of the bars, or bars with delta_max and "
                         "delta_min columns (footprint_metrics gives them)")
    high = np.maximum.reduce([open_ + dmax, open_, close])
    low = np.minimum.reduce([open_ + dmin, open_, close])
    return pd.DataFrame({"ts": bars["ts"], "open": open_, "high": high, "low": low,
                         "close": close}, index=bars.index)
