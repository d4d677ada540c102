"""An overview of a long history of trades (a year, tens of millions of rows) without holding it
in memory: the volume traded per (time, price) cell of a ``width`` x ``height`` grid, summed one
chunk of trades at a time.

The price range comes from daily bars (the store aggregates its rollups, so it reads no trades);
then each ``chunk`` of time (a day by default) is read, binned with ``numpy.histogram2d`` and
added to the grid, so memory holds one chunk and the grid. The result is an
``xarray.DataArray`` (``price`` x ``ts``) that Datashader shades as it is
(``datashader.transfer_functions.shade(grid, how="log")``) or HoloViews draws (``hv.Image``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from data_access.frames import bounds

__all__ = ["trade_grid"]


def trade_grid(source, symbol: str, start, end, width: int = 1000, height: int = 400,
               chunk="1D") -> xr.DataArray:
    """Volume per time x price cell of ``symbol``'s trades in ``[start, end)``; ``source`` has
    ``bars(symbol, spec, start, end)`` and ``trades(symbol, start, end)`` (a workspace or
    ``MarketData``)."""
    start, end = bounds(start, end)
    if start is None or end is None or not start < end:
        raise ValueError("overview: give a start before the end (fixed times)")
    if not (isinstance(width, int) and isinstance(height, int) and 1 <= width <= 10_000
            and 1 <= height <= 10_000):
        raise ValueError("overview: width and height are whole numbers of cells, 1 to 10,000")
    step = pd.Timedelta(chunk)
    if step <= pd.Timedelta(0):
        raise ValueError(f"overview: chunk {chunk!r} must be a positive time span")
    days = source.bars(symbol, "1d", start=start.floor("D"), end=end)
    grid = np.zeros((width, height))
    if len(days):
        low, high = float(days["low"].min()), float(days["high"].max())
        if high == low:
            high = low + 1.0
        t_range = [start.value, end.value]
        t = start
        while t < end:
            upto = min(t + step, end)
            trades = source.trades(symbol, start=t, end=upto)
            if len(trades):
                counts, _, _ = np.histogram2d(
                    trades["ts"].to_numpy(dtype="datetime64[ns]").astype("int64"),
                    trades["price"].to_numpy(dtype="float64"), bins=[width, height],
                    range=[t_range, [low, high]], weights=trades["size"].to_numpy())
                grid += counts
            t = upto
    else:
        low, high = 0.0, 1.0
    t_edges = np.linspace(start.value, end.value, width + 1)
    p_edges = np.linspace(low, high, height + 1)
    times = pd.to_datetime(((t_edges[:-1] + t_edges[1:]) / 2).astype("int64"), utc=True)
    return xr.DataArray(grid.T, dims=("price", "ts"), name="volume",
                        coords={"price": (p_edges[:-1] + p_edges[1:]) / 2,
                                "ts": times.tz_localize(None)},
                        attrs={"symbol": symbol, "start": str(start), "end": str(end)})
