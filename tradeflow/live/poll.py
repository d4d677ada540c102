"""Live bars by polling a store or a server: hub ``Update`` s made from reads.

A process that runs no pipeline (a notebook) follows another one's data by reading it again:
from PostgreSQL directly (another process writes there), or through a running ``tradeflow
serve``'s read API. :class:`BarPoller` reads the bars from the forming bar on, every time, and
answers in the hub's terms, so a chart applies them as it applies the hub's: the bars that closed
since the last poll (once), then the forming bar (replacing the one shown), with their footprint
cells; nothing when nothing changed.
"""
from __future__ import annotations

import pandas as pd

from tradeflow.model import BAR_COLUMNS, FOOTPRINT_COLUMNS, BarSpec, empty_frame

from .hub import Update

__all__ = ["BarPoller"]


class BarPoller:
    """Poll ``source`` (``MarketData`` or ``tradeflow.remote.ServerData``: ``bars`` and
    ``footprint``) for the bars of ``symbol`` and ``spec`` after ``forming``, the bar shown last
    (a one-row bar frame, or empty: from the newest bar on). ``cells``: read footprint cells too.
    """

    def __init__(self, source, symbol: str, spec, forming: pd.DataFrame | None = None,
                 cells: bool = False):
        self.source, self.symbol, self.spec = source, symbol, str(BarSpec.parse(spec))
        self.cells = cells
        self.forming = (forming if forming is not None else empty_frame(BAR_COLUMNS)).iloc[-1:]
        self.forming = self.forming[list(BAR_COLUMNS)].reset_index(drop=True)
        self.forming_cells = empty_frame(FOOTPRINT_COLUMNS)
        self.polls = 0

    def read(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The bars from the forming bar on (the newest one when none is shown yet), and their
        cells when asked."""
        if len(self.forming):
            bars = self.source.bars(self.symbol, self.spec, start=self.forming["ts"].iloc[0])
        else:
            bars = self.source.bars(self.symbol, self.spec, last=1)
        bars = bars[list(BAR_COLUMNS)].reset_index(drop=True)
        if not (self.cells and len(bars)):
            return bars, empty_frame(FOOTPRINT_COLUMNS)
        cells = self.source.footprint(self.symbol, self.spec, start=bars["ts"].iloc[0])
        return bars, cells[list(FOOTPRINT_COLUMNS)].reset_index(drop=True)

    def poll(self) -> Update | None:
        """An Update of what changed since the last poll, or None."""
        self.polls += 1
        bars, cells = self.read()
        return self.update(bars, cells)

    def update(self, bars: pd.DataFrame, cells: pd.DataFrame) -> Update | None:
        """The Update of ``bars`` (from the forming bar on) and their ``cells``, or None when
        they are the forming bar as shown."""
        if not len(bars):
            return None
        current = bars.iloc[-1:].reset_index(drop=True)
        forming_ts = current["ts"].iloc[0]
        now = (cells["ts"] == forming_ts).to_numpy()
        current_cells = cells[now].reset_index(drop=True)
        if len(bars) == 1 and _same(current, self.forming) and _same(current_cells,
                                                                     self.forming_cells):
            return None
        self.forming, self.forming_cells = current, current_cells
        return Update(closed=bars.iloc[:-1].reset_index(drop=True),
                      closed_footprint=cells[~now].reset_index(drop=True),
                      current=current, current_footprint=current_cells)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if len(a) != len(b):
        return False
    if not len(a):
        return True
    try:
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                      check_dtype=False)
    except AssertionError:
        return False
    return True
