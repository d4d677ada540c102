"""Base-timeframe (1-minute) rollups of a batch of trades, computed in memory with numpy.

A store that has just inserted a batch of new trades uses this instead of aggregating them back
out of the database: the batch is already clean and sorted, so one pass gives the minute bars and
footprint cells. Only minutes that also hold trades stored by other writes need the database.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import Instrument, ns_to_utc

MINUTE_NS = 60 * 1_000_000_000


def minute_rollups(trades: pd.DataFrame, instrument: Instrument):
    """(bars, cells) of clean trades sorted by (ts, trade_id): ``market_data`` and ``footprint``
    rows without the symbol column."""
    ts = pd.DatetimeIndex(trades["ts"]).asi8
    price = trades["price"].to_numpy()
    size = trades["size"].to_numpy()
    side = trades["side"].to_numpy()
    ask = np.where(side == 1, size, 0.0)
    bid = np.where(side == -1, size, 0.0)
    minute = ts - ts % MINUTE_NS
    starts = np.flatnonzero(np.concatenate(([True], minute[1:] != minute[:-1])))
    ends = np.append(starts[1:], len(ts))
    bars = pd.DataFrame({
        "ts": ns_to_utc(minute[starts]),
        "open": price[starts],
        "high": np.maximum.reduceat(price, starts),
        "low": np.minimum.reduceat(price, starts),
        "close": price[ends - 1],
        "volume": np.add.reduceat(size, starts),
        "ask_volume": np.add.reduceat(ask, starts),
        "bid_volume": np.add.reduceat(bid, starts),
        "trades": (ends - starts).astype("int64"),
        "open_interest": np.full(len(starts), np.nan),
    })
    # cells: one key per (minute, tick), minute-major so the output is ordered like the table's key
    seg = np.repeat(np.arange(len(starts)), ends - starts)
    tick = instrument.to_tick(price)
    low = tick.min()
    width = int(tick.max() - low) + 1
    key = seg * width + (tick - low)
    if len(starts) * width <= 4 * len(key) + (1 << 20):
        # a small key space: count densely (a linear pass) instead of sorting
        present = np.bincount(key, minlength=len(starts) * width) > 0
        keys = np.flatnonzero(present)
        cell = (np.cumsum(present) - 1)[key]
    else:
        keys, cell = np.unique(key, return_inverse=True)
    cells = pd.DataFrame({
        "ts": ns_to_utc(minute[starts][keys // width]),
        "tick": keys % width + low,
        "volume": np.bincount(cell, weights=size),
        "ask_volume": np.bincount(cell, weights=ask),
        "bid_volume": np.bincount(cell, weights=bid),
        "trades": np.bincount(cell).astype("int64"),
    })
    return bars, cells
