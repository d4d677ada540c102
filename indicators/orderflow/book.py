"""A local limit order book and the book heatmap grid (studies: no venue's rules here).

* :class:`OrderBook` -- resting size per price level, keyed by integer tick, following
  ``tradeflow.model.DepthUpdate`` s (the live protocol): a snapshot replaces the book, other
  updates set the levels they carry, whole or not at all (a crossed book is refused). A venue's
  own rules (Binance's ``U``/``u``/``pu`` sequencing, Sierra Chart depth commands) live with the
  venue, in ``tradeflow.venues``, and drive this book.
* :func:`heatmap_grid` -- depth snapshots (``tradeflow.model`` depth layout ``ts, side, tick,
  size``) aggregated into a time x price grid of resting size; :func:`to_matrix` turns it into
  dense arrays for plotting.

Pure computation, no I/O; numpy, pandas and stdlib only.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from tradeflow.model import ns_to_utc, price_to_tick

from ..frames import positive_int, require, ts_ns
from ..live_protocol import Changes, ChangeSet

__all__ = ["OrderBook", "BookCrossedError", "heatmap_grid", "to_matrix"]


class BookCrossedError(ValueError):
    """An event would leave the best bid at or above the best ask."""


class OrderBook:
    """A local order book keyed by integer tick (``round(price / tick_size)``, halves away from
    zero, as :meth:`tradeflow.model.Instrument.to_tick`): ``bids`` and ``asks`` map tick to
    resting size.

    Updates are applied whole: one that is malformed, or that would leave the book crossed (best
    bid >= best ask after the whole update), raises a ValueError and changes nothing. The update
    ids a ``DepthUpdate`` may carry are the venue's business (``tradeflow.venues.binance``).
    """

    def __init__(self, tick_size: float):
        if (isinstance(tick_size, bool) or not isinstance(tick_size, numbers.Real)
                or not math.isfinite(tick_size) or tick_size <= 0):
            raise ValueError(f"OrderBook: tick size must be a positive number, got {tick_size!r}")
        self.tick_size = float(tick_size)
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}

    # ---- conversions -----------------------------------------------------------------------
    def to_tick(self, price) -> np.ndarray:
        return price_to_tick(price, self.tick_size)

    # ---- updates ---------------------------------------------------------------------------
    def set_levels(self, bid_ticks, bid_qty, ask_ticks, ask_qty, what: str) -> list:
        """Set the levels (quantity 0 removes one), whole or not at all: an event that would
        cross the book is undone and raises :class:`BookCrossedError`. Returns the changed
        levels as ``(side, tick, new size)``."""
        undo: list[tuple[dict, int, float | None]] = []
        changed = []
        for side, book, ticks, qtys in ((-1, self.bids, bid_ticks, bid_qty),
                                        (1, self.asks, ask_ticks, ask_qty)):
            for t, q in zip(np.asarray(ticks).tolist(), np.asarray(qtys).tolist()):
                old = book.get(t)
                undo.append((book, t, old))
                if q > 0:
                    book[t] = q
                else:
                    book.pop(t, None)
                if (old or 0.0) != q:
                    changed.append((side, t, q))
        bb, ba = self.best_bid(), self.best_ask()
        if bb is not None and ba is not None and bb[0] >= ba[0]:
            for book, t, old in reversed(undo):
                if old is None:
                    book.pop(t, None)
                else:
                    book[t] = old
            raise BookCrossedError(
                f"{what} would cross the book (best bid tick {bb[0]} >= best ask tick {ba[0]}); "
                f"the event was not applied, resync from a new snapshot")
        return changed

    def apply(self, update) -> ChangeSet:
        """Follow a ``tradeflow.model.DepthUpdate`` (the live protocol of
        :mod:`indicators.live_protocol`): a snapshot replaces the book, other updates change the
        levels given (size 0 removes one), whole or not at all; update ids are not looked at (a
        venue's sequencing decides before, e.g. ``tradeflow.venues.binance.BinanceBook``).
        Returns ``{"levels": Changes}``: the changed levels in the depth layout (size 0: gone),
        keyed by ``("side", "tick")``, and the number of levels held."""
        what = "order book update"
        levels = update.levels
        require(levels, ("side", "tick", "size"), what)
        side = levels["side"].to_numpy(dtype="int64")
        tick = levels["tick"].to_numpy(dtype="int64")
        size = levels["size"].to_numpy(dtype="float64")
        if not np.isin(side, (-1, 1)).all():
            raise ValueError(f"{what}: side must be -1 (bid) or +1 (ask)")
        if not (np.isfinite(size).all() and (size >= 0).all()):
            raise ValueError(f"{what}: sizes must be finite and >= 0 (0 removes a level)")
        bid, ask = side == -1, side == 1
        if update.snapshot:
            old = {(-1, t): q for t, q in self.bids.items()}
            old.update(((1, t), q) for t, q in self.asks.items())
            new_bids = {int(t): float(q) for t, q in zip(tick[bid], size[bid]) if q > 0}
            new_asks = {int(t): float(q) for t, q in zip(tick[ask], size[ask]) if q > 0}
            if new_bids and new_asks and max(new_bids) >= min(new_asks):
                raise BookCrossedError(f"{what}: the snapshot is crossed (best bid tick "
                                       f"{max(new_bids)} >= best ask tick {min(new_asks)})")
            self.bids, self.asks = new_bids, new_asks
            new = {(-1, t): q for t, q in new_bids.items()}
            new.update(((1, t), q) for t, q in new_asks.items())
            changed = [(s, t, new.get((s, t), 0.0)) for s, t in sorted(old.keys() | new.keys())
                       if old.get((s, t)) != new.get((s, t))]
        else:
            changed = self.set_levels(tick[bid], size[bid], tick[ask], size[ask], what)
        stamp = ts_ns(levels["ts"]).max() if len(levels) and "ts" in levels else None
        held = len(self.bids) + len(self.asks)

        def rows():
            s, t, q = (np.asarray(x) for x in zip(*changed)) if changed else ([], [], [])
            frame = pd.DataFrame({
                "ts": ns_to_utc(np.full(len(changed), stamp if stamp is not None
                                        else np.iinfo("int64").min, dtype="int64")),
                "side": np.asarray(s, dtype="int8"), "tick": np.asarray(t, dtype="int64"),
                "size": np.asarray(q, dtype="float64")})
            return Changes(frame, held, key=("side", "tick"))
        return ChangeSet({"levels": rows})

    # ---- queries ---------------------------------------------------------------------------
    def best_bid(self) -> tuple[int, float] | None:
        """(tick, size) of the highest bid, or None when there are no bids."""
        if not self.bids:
            return None
        t = max(self.bids)
        return t, self.bids[t]

    def best_ask(self) -> tuple[int, float] | None:
        """(tick, size) of the lowest ask, or None when there are no asks."""
        if not self.asks:
            return None
        t = min(self.asks)
        return t, self.asks[t]

    def levels(self, n: int | None = None, ts=None) -> pd.DataFrame:
        """The book in the depth layout ``ts, side, tick, size``: bids best first (side -1), then
        asks best first (side +1); ``n`` levels a side (all when None); ``ts`` is the caller's
        snapshot time (NaT when None)."""
        if n is not None:
            n = positive_int(n, "levels: n")
        bid_ticks = sorted(self.bids, reverse=True)[:n]
        ask_ticks = sorted(self.asks)[:n]
        k = len(bid_ticks) + len(ask_ticks)
        stamp = pd.Timestamp(ts) if ts is not None else pd.NaT
        if stamp is not pd.NaT:
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return pd.DataFrame({
            "ts": pd.DatetimeIndex([stamp] * k, dtype="datetime64[ns, UTC]"),
            "side": np.array([-1] * len(bid_ticks) + [1] * len(ask_ticks), dtype="int8"),
            "tick": np.array(bid_ticks + ask_ticks, dtype="int64"),
            "size": np.array([self.bids[t] for t in bid_ticks] + [self.asks[t] for t in ask_ticks],
                             dtype="float64"),
        })


# --------------------------------------------------------------------------------------------
# Heatmap grid

_HOW = ("last", "mean", "max")
GRID_COLUMNS = ("ts", "tick", "bid_size", "ask_size")


def interval_ns(interval, what: str = "heatmap_grid") -> int:
    """A duration (``"1s"``, ``"250ms"``, a Timedelta) as positive nanoseconds."""
    try:
        step = pd.Timedelta(interval)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: interval {interval!r} is not a duration, "
                         "use e.g. '1s', '250ms', '1min'") from exc
    if step is pd.NaT or step.value <= 0:
        raise ValueError(f"{what}: interval must be a positive duration, got {interval!r}")
    return int(step.value)


def heatmap_grid(depth: pd.DataFrame, interval="1s", tick_rows: int = 1,
                 how: str = "last") -> pd.DataFrame:
    """Depth snapshots aggregated into a time x price grid of resting size.

    A snapshot is all rows of ``depth`` sharing one ``ts``. Rows are bucketed by
    ``ts`` floored to ``interval`` (epoch-aligned) and by price row ``floor(tick / tick_rows) *
    tick_rows`` (sizes of the ticks in a row are summed within a snapshot). Per bucket and row:

    * ``how="last"``: the size in the bucket's last snapshot (0 if the level is absent there);
    * ``how="mean"``: the mean over the bucket's snapshots, a snapshot without the level counting 0;
    * ``how="max"``: the largest size in any of the bucket's snapshots.

    Returns a long frame ``ts, tick, bid_size, ask_size`` sorted by ``ts, tick``; only rows where
    some size is positive.
    """
    if how not in _HOW:
        raise ValueError(f"heatmap_grid: how must be one of {', '.join(_HOW)}, got {how!r}")
    step = interval_ns(interval)
    rows = positive_int(tick_rows, "heatmap_grid: tick_rows")
    require(depth, ("ts", "side", "tick", "size"), "heatmap_grid")
    if len(depth) == 0:
        return pd.DataFrame({"ts": pd.DatetimeIndex([], dtype="datetime64[ns, UTC]"),
                             "tick": np.empty(0, "int64"), "bid_size": np.empty(0),
                             "ask_size": np.empty(0)})
    ts = ts_ns(depth["ts"])
    side = depth["side"].to_numpy()
    if not np.isin(side, (-1, 1)).all():
        raise ValueError("heatmap_grid: side must be +1 (ask) or -1 (bid)")
    ask = (side == 1)
    tick = np.floor_divide(depth["tick"].to_numpy(dtype="int64"), rows) * rows
    size = depth["size"].to_numpy(dtype="float64")
    bucket = np.floor_divide(ts, step) * step

    # one row per snapshot, side and price row: summed size
    cells = pd.DataFrame({"bucket": bucket, "snap": ts, "ask": ask, "tick": tick, "size": size})
    cells = (cells.groupby(["bucket", "snap", "ask", "tick"], sort=False, as_index=False)["size"]
             .sum())
    if how == "last":
        last = cells.groupby("bucket")["snap"].transform("max").to_numpy()
        agg = cells[cells["snap"].to_numpy() == last].drop(columns="snap")
    elif how == "max":
        agg = cells.groupby(["bucket", "ask", "tick"], sort=False, as_index=False)["size"].max()
    else:
        snaps = pd.Series(ts).groupby(bucket).nunique()
        agg = cells.groupby(["bucket", "ask", "tick"], sort=False, as_index=False)["size"].sum()
        agg["size"] = agg["size"].to_numpy() / snaps.reindex(agg["bucket"]).to_numpy()
    wide = agg.pivot_table(index=["bucket", "tick"], columns="ask", values="size",
                           aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(columns=[False, True], fill_value=0.0).sort_index()
    out = pd.DataFrame({
        "ts": ns_to_utc(wide.index.get_level_values("bucket").to_numpy()),
        "tick": wide.index.get_level_values("tick").to_numpy(dtype="int64"),
        "bid_size": wide[False].to_numpy(dtype="float64"),
        "ask_size": wide[True].to_numpy(dtype="float64"),
    })
    keep = (out["bid_size"].to_numpy() > 0) | (out["ask_size"].to_numpy() > 0)
    return out[keep].reset_index(drop=True)


def to_matrix(grid: pd.DataFrame, tick_rows: int | None = None):
    """Dense arrays of a :func:`heatmap_grid` frame for plotting:
    ``(times, ticks, bid_matrix, ask_matrix)`` -- ``times`` the distinct bucket starts
    (``datetime64[ns]``, UTC), ``ticks`` an evenly spaced row axis from the lowest to the highest
    row key (the step is ``tick_rows`` when given, else the gcd of the row keys' spacing; empty
    rows inside the range are kept), matrices of shape ``(len(times), len(ticks))`` with 0 where
    there is no size."""
    require(grid, GRID_COLUMNS, "to_matrix")
    t_ns = ts_ns(grid["ts"])
    times = np.unique(t_ns)
    keys = np.unique(grid["tick"].to_numpy(dtype="int64"))
    if len(keys) == 0:
        empty = np.zeros((0, 0))
        return times.view("datetime64[ns]"), keys, empty, empty.copy()
    if tick_rows is not None:
        step = positive_int(tick_rows, "to_matrix: tick_rows")
        if ((keys - keys[0]) % step).any():
            raise ValueError(f"to_matrix: the grid's row keys are not {step} ticks apart")
    else:
        step = int(np.gcd.reduce(np.diff(keys))) if len(keys) > 1 else 1
    ticks = np.arange(keys[0], keys[-1] + 1, step, dtype="int64")
    ti = np.searchsorted(times, t_ns)
    ki = (grid["tick"].to_numpy(dtype="int64") - keys[0]) // step
    bid = np.zeros((len(times), len(ticks)))
    ask = np.zeros((len(times), len(ticks)))
    np.add.at(bid, (ti, ki), grid["bid_size"].to_numpy(dtype="float64"))
    np.add.at(ask, (ti, ki), grid["ask_size"].to_numpy(dtype="float64"))
    return times.view("datetime64[ns]"), ticks, bid, ask
