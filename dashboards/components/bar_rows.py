"""Per-bar rows of a live chart in one Bokeh source: the closed bars, then at most one forming bar.

Rows are kept by their bar number (:data:`axes.X`), consecutive from the first. A live update
patches the forming bar's row in place (the columns that changed) (also when it closes: its final values) and streams the
bars past it; a closed bar is never sent again. Also: the CVD of new bars, reset per trading day.

Text columns (a bar's direction, the totals' numbers) are held as Python lists, not object
arrays: Bokeh compares every column of a source with itself on each patch (``Property.matches``,
``np.array_equal``), element by element in Python for an object array -- with a day of bars,
half of a patch's cost -- while two lists that hold the same strings compare at C speed. Bokeh
sends a list of strings as it sends an object array.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource

from indicators.orderflow import cvd
from tradeflow.model import BAR_COLUMNS, Session, empty_frame

from .axes import X
from .live_sources import patch_rows

__all__ = ["BarRows", "cvd_from", "joined", "LEFT_BORDER", "PRICE_BORDER"]

LEFT_BORDER = 72  # pixels left of every pane's plot, so that stacked panes' bars line up
PRICE_BORDER = 70  # pixels right of the price chart's panes (price axis on the right), likewise


class BarRows:
    """A :class:`ColumnDataSource` of per-bar columns (``X`` among them, consecutive)."""

    def __init__(self, columns):
        self.source = ColumnDataSource({c: np.empty(0) for c in columns})

    def __len__(self) -> int:
        return len(self.source.data[X])

    def first_x(self) -> int:
        return int(self.source.data[X][0]) if len(self) else 0

    def load(self, data: dict) -> None:
        """Replace every row (a new frame, a new setting: a whole redraw)."""
        # writable copies (patched later); text as lists (see the module's docstring)
        self.source.data = {k: _held(v) for k, v in data.items()}

    def apply(self, data: dict) -> None:
        """Rows by bar number: those already shown (the forming bar) are patched, the rest
        streamed. ``data``'s bars must follow on from the shown ones."""
        x = np.asarray(data[X], dtype="int64")
        if not len(x):
            return
        shown = len(self)
        pos = x - self.first_x() if shown else np.arange(len(x))
        old = pos < shown
        if old.any():
            lo, hi = int(pos[old].min()), int(pos[old].max()) + 1
            if hi - lo != int(old.sum()):
                raise ValueError("bar rows: patched bars must be consecutive")
            patch_rows(self.source, lo, hi, {k: np.asarray(v)[old] for k, v in data.items()})
        if (~old).any():
            if pos[~old][0] != shown:
                raise ValueError(f"bar rows: bar {int(x[~old][0])} does not follow the "
                                 f"{shown} bars shown")
            # (a list column stays a list: Bokeh makes it an array when streamed an array)
            held = self.source.data
            self.source.stream({k: _held(np.asarray(v)[~old]) if isinstance(held[k], list)
                                else np.asarray(v)[~old] for k, v in data.items()})


def _held(values):
    """A column as the source holds it: strings as a list, anything else a numpy array (a
    writable copy)."""
    values = np.array(values)
    if values.dtype == object and all(type(v) is str for v in values.flat):
        return values.tolist()
    return values


def joined(*frames: pd.DataFrame | None) -> pd.DataFrame:
    """``frames`` one after another (None and empty ones skipped), index 0..n-1; with none to
    join, the first frame emptied (its columns kept), or an empty bar frame."""
    parts = [f for f in frames if f is not None and len(f)]
    if not parts:
        return frames[0].iloc[:0] if frames and frames[0] is not None else empty_frame(BAR_COLUMNS)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)


def cvd_from(bars: pd.DataFrame, start: int, session: Session, reset: str = "session",
             days: np.ndarray | None = None) -> np.ndarray:
    """CVD (``indicators.orderflow.cvd``) of ``bars[start:]``, computed from the first bar of
    ``bars[start]``'s trading day on (so a live update costs one day's bars, not the history).
    ``days``: the bars' trading days (``session.trading_date(...).asi8``), when already known."""
    if start >= len(bars):
        return np.empty(0)
    if reset != "session":
        return cvd(bars, reset="none").to_numpy()[start:]
    if days is None:
        days = session.trading_date(bars["ts"]).asi8
    begin = int(np.searchsorted(days, days[start]))  # bars are in time order
    day = bars.iloc[begin:]
    if (days[begin:] == days[begin]).all():  # one trading day: no reset inside it
        return cvd(day, reset="none").to_numpy()[start - begin:]
    return cvd(day, session=session, reset="session").to_numpy()[start - begin:]
