"""The live depth heatmap: :class:`LiveHeatmap` follows a book's ``tradeflow.model.DepthUpdate``
stream (the live protocol of :mod:`indicators.live_protocol`) and keeps the grid of
:func:`.book.heatmap_grid` current.

After each update that carries times, the book (all its levels) is a snapshot at the update's
latest time; updates sharing a time make one snapshot, the book after the last of them. The grid
equals ``heatmap_grid`` over those snapshots. Time buckets are independent in the grid, so the rows
of a bucket are final once a snapshot of a later bucket arrives; only the current bucket's
snapshots are kept (its last one for ``how="last"``), and that bucket's rows are recomputed with
``heatmap_grid`` itself when an update's changes are read (some milliseconds: pandas' grouping),
and once when the bucket ends.
"""
from __future__ import annotations

import pandas as pd

from ..frames import ts_ns
from ..live_protocol import Changes, ChangeSet
from .book import OrderBook, heatmap_grid

__all__ = ["LiveHeatmap"]


class LiveHeatmap:
    """The heatmap grid (``ts, tick, bid_size, ask_size``) of a live book of ``tick_size``;
    ``interval``, ``tick_rows`` and ``how`` as in :func:`.book.heatmap_grid`."""

    def __init__(self, tick_size: float, interval="1s", tick_rows: int = 1, how: str = "last"):
        self.book = OrderBook(tick_size)
        self._grid_args = {"interval": interval, "tick_rows": tick_rows, "how": how}
        # (the parameters checked once, as the batch does)
        self._rows: pd.DataFrame | None = heatmap_grid(self.book.levels(), **self._grid_args)
        self._step = int(pd.Timedelta(interval).value)
        self._snaps: list[pd.DataFrame] = []  # the current bucket's snapshots
        self._bucket: int | None = None
        self._last: int | None = None  # time of the last snapshot
        self._final = 0  # rows of the buckets before the current one
        self._applied = 0

    def apply(self, update) -> ChangeSet:
        """Follow a ``DepthUpdate``: ``{"heatmap": Changes}``, the current bucket's rows (a new
        bucket's rows follow the previous bucket's, which are final). An update older than the
        last one is refused and changes nothing."""
        levels = update.levels
        stamp = int(ts_ns(levels["ts"]).max()) if len(levels) and "ts" in levels else None
        if stamp is not None and self._last is not None and stamp < self._last:
            raise ValueError(f"LiveHeatmap: depth updates must come in time order; "
                             f"{pd.Timestamp(stamp, tz='UTC')} is before the last one "
                             f"({pd.Timestamp(self._last, tz='UTC')})")
        self.book.apply(update)
        if stamp is not None:
            self._snapshot(stamp)
        self._applied += 1
        applied, start = self._applied, self._final

        def rows():  # built when read (a chart may skip updates), valid until the next one
            grid = self._grid()
            return Changes(grid.set_axis(pd.RangeIndex(start, start + len(grid))),
                           start + len(grid))
        return ChangeSet({"heatmap": rows}, stale=lambda: self._applied != applied)

    def _grid(self) -> pd.DataFrame:
        """The current bucket's rows (computed once per state)."""
        if self._rows is None:
            self._rows = heatmap_grid(pd.concat(self._snaps, ignore_index=True),
                                      **self._grid_args)
        return self._rows

    def _snapshot(self, stamp: int) -> None:
        bucket = stamp // self._step * self._step
        if bucket != self._bucket:  # the previous bucket's rows are final
            self._final += len(self._grid())
            self._snaps, self._bucket = [], bucket
        snap = self.book.levels(ts=pd.Timestamp(stamp, tz="UTC"))
        if stamp == self._last and self._snaps:
            self._snaps[-1] = snap  # the book after the last update of that time
        elif self._grid_args["how"] == "last":
            self._snaps = [snap]
        else:
            self._snaps.append(snap)
        self._last = stamp
        self._rows = None
