"""A chart's history as live updates grow it: the frame read, then the closed bars' rows of each
update kept as parts, and the forming bar's rows replaced by each update; joined only when read.

A chart used to join its whole history (a day of bars, ~24,000 footprint cells) at every update
in every session; with 20 sessions at 4 updates a second that was work for nothing, as nothing
reads the history between two updates but its length.
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

__all__ = ["GrowingFrame"]


class GrowingFrame:
    """Rows of ``frame``, then of the updates' closed bars, then the last update's forming bar."""

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        self._parts: list[pd.DataFrame] = []  # closed bars' rows of updates since, in order
        self._tail: pd.DataFrame | None = None  # the forming bar's rows once an update gave them
        self._joined: pd.DataFrame | None = None
        self._length = len(frame)

    def __len__(self) -> int:
        return self._length

    def grow(self, closed: pd.DataFrame, current: pd.DataFrame,
             cut: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
        """An update: ``closed`` rows kept, ``current`` (the forming bar's) replacing the last
        update's. ``cut(frame)``: the rows of the frame as read that the first update since
        keeps (it re-sends the forming bar read with it); called once."""
        if self._tail is None:
            self._frame = cut(self._frame)
            self._length = len(self._frame)
        else:
            self._length -= len(self._tail)
        if len(closed):
            self._parts.append(closed)
            self._length += len(closed)
        self._tail = current
        self._length += len(current)
        self._joined = None

    @property
    def frame(self) -> pd.DataFrame:
        """Every row, index 0..n-1 (joined now if updates came since the last read)."""
        if self._joined is None:
            if self._parts:
                self._frame = pd.concat([self._frame, *self._parts], ignore_index=True)
                self._parts = []
            tail = self._tail
            self._joined = (pd.concat([self._frame, tail], ignore_index=True)
                            if tail is not None and len(tail) else self._frame)
        return self._joined
