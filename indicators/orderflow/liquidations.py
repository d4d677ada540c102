"""Liquidations aggregated per bar and price level.

A liquidation's ``side`` is the side of the forced order (``tradeflow.model`` layout): -1 is a
forced sell, i.e. a *long* position liquidated; +1 a forced buy, a *short* liquidated (as in
Binance's ``forceOrder`` stream, where ``S`` is the order's side). A liquidation belongs to the
latest bar that opened at or before it.

A price level is a tick (``round(price / tick_size)``) or, with ``rows=N``, a row of N ticks keyed
by its lowest tick ``floor(tick / N) * N`` (as :func:`.imbalance.group_ticks`): the liquidations
of all its ticks are summed there.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import ns_to_utc, price_to_tick

from ..frames import positive_int, require, ts_ns
from .imbalance import row_keys

__all__ = ["liquidations_by_level", "liquidations_by_bar"]


def _bar_of(liqs: pd.DataFrame, bars: pd.DataFrame, what: str) -> np.ndarray:
    require(liqs, ("ts", "side", "price", "size"), what)
    require(bars, ("ts",), what)
    opens = ts_ns(bars["ts"])
    if len(opens) > 1 and (np.diff(opens) < 0).any():
        raise ValueError(f"{what}: bars must be in time order")
    return np.searchsorted(opens, ts_ns(liqs["ts"]), side="right") - 1


def liquidations_by_level(liqs: pd.DataFrame, bars: pd.DataFrame, tick_size: float,
                          rows: int = 1) -> pd.DataFrame:
    """Per bar and price level: ``ts, tick, long_size`` (forced sells), ``short_size`` (forced
    buys), ``count``, ordered by ts, tick. ``tick`` is the level's tick, or with ``rows=N`` the
    lowest tick of its row of N ticks. Liquidations before the first bar are left out."""
    if not (isinstance(tick_size, (int, float)) and tick_size > 0):
        raise ValueError(f"liquidations_by_level: tick size must be positive, got {tick_size!r}")
    rows = positive_int(rows, "liquidations_by_level: rows")
    bar = _bar_of(liqs, bars, "liquidations_by_level")
    keep = bar >= 0
    size = liqs["size"].to_numpy(dtype="float64")[keep]
    side = liqs["side"].to_numpy()[keep]
    tick = row_keys(price_to_tick(liqs["price"].to_numpy(dtype="float64")[keep], tick_size), rows)
    frame = pd.DataFrame({"bar": bar[keep], "tick": tick,
                          "long_size": np.where(side == -1, size, 0.0),
                          "short_size": np.where(side == 1, size, 0.0), "count": 1})
    out = frame.groupby(["bar", "tick"], sort=True).sum().reset_index()
    out.insert(0, "ts", ns_to_utc(ts_ns(bars["ts"])[out["bar"].to_numpy()]))
    return out.drop(columns="bar")


def liquidations_by_bar(liqs: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """Per bar (every bar, zeros where none): ``long_size``, ``short_size``, ``count``."""
    bar = _bar_of(liqs, bars, "liquidations_by_bar")
    keep = bar >= 0
    n = len(bars)
    size = liqs["size"].to_numpy(dtype="float64")[keep]
    side = liqs["side"].to_numpy()[keep]
    # (bincount with no weights gives int64: cast, so an empty input has the same dtypes)
    return pd.DataFrame({
        "ts": pd.DatetimeIndex(bars["ts"]),
        "long_size": np.bincount(bar[keep], weights=np.where(side == -1, size, 0.0),
                                 minlength=n).astype("float64"),
        "short_size": np.bincount(bar[keep], weights=np.where(side == 1, size, 0.0),
                                  minlength=n).astype("float64"),
        "count": np.bincount(bar[keep], minlength=n).astype("int64"),
    })
