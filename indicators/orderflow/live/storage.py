"""What :class:`LiveOrderFlow` keeps between updates, and how it reads and writes frames.

Numpy columns that grow (``Columns``), what one update touched (``Touch``) and what it reports
(``LiveUpdate``), the trading day of bar times (``TradingDays``), and the conversions between
model-layout frames and columns (``rows_frame``, ``result_index``, ``frame_columns``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc



class Columns:
    """Numpy columns that grow at the end and can be cut back, and whose first rows can be
    dropped (``drop_before``) while every row keeps its position.

    Positions count every row ever appended (``len`` is the end position); rows before ``base``
    are gone. ``cut``, ``take`` and ``at`` take positions; ``[name]`` is a view of the rows kept
    (positions ``base`` on). Capacity doubles, so appending k rows costs O(k) amortised whatever
    the history; cutting is O(1); dropped rows are moved out once they outnumber the kept ones.
    Rows of a bar still forming are cut and appended anew at each update."""

    def __init__(self, **dtypes):
        self._data = {k: np.empty(64, dtype=v) for k, v in dtypes.items()}
        self.n = 0  # the end position
        self.base = 0  # the first position kept
        self._p0 = 0  # the position of ``_data``'s row 0 (<= base)

    def __len__(self) -> int:
        return self.n

    @property
    def kept(self) -> int:
        """Rows held (positions ``base`` to ``len - 1``)."""
        return self.n - self.base

    def __getitem__(self, name: str) -> np.ndarray:
        # a view of the kept rows: valid until the next append
        return self._data[name][self.base - self._p0:self.n - self._p0]

    def at(self, name: str, positions):
        """Values of column ``name`` at ``positions`` (kept ones: an IndexError otherwise)."""
        pos = np.asarray(positions, dtype="int64")
        if pos.size and (pos.min() < self.base or pos.max() >= self.n):
            raise IndexError(f"positions {pos.min()}..{pos.max()} outside the rows kept "
                             f"({self.base}..{self.n - 1})")
        out = self._data[name][pos - self._p0]
        return out[()] if out.ndim == 0 else out

    def cut(self, n: int) -> None:
        n = int(n)
        if n < self.base:
            raise IndexError(f"cut at {n}: rows before {self.base} are no longer kept")
        self.n = min(self.n, n)

    def drop_before(self, position: int) -> None:
        """Forget the rows before ``position`` (positions of the others do not change)."""
        self.base = max(self.base, min(int(position), self.n))
        if self.base - self._p0 > self.n - self.base:  # more dead rows than live: move
            live = slice(self.base - self._p0, self.n - self._p0)
            for name, arr in self._data.items():
                arr[:self.n - self.base] = arr[live].copy()
            self._p0 = self.base

    def append(self, cols: dict) -> None:
        k = len(next(iter(cols.values())))
        end = self.n + k - self._p0
        cap = len(next(iter(self._data.values())))
        if end > cap:
            size = max(end, 2 * cap)
            for name, old in self._data.items():
                new = np.empty(size, dtype=old.dtype)
                new[:self.n - self._p0] = old[:self.n - self._p0]
                self._data[name] = new
        for name, arr in self._data.items():
            arr[self.n - self._p0:end] = cols[name]
        self.n += k

    def positions(self) -> slice:
        """The kept rows' positions, as a slice."""
        return slice(self.base, self.n)

    def take(self, rows) -> dict:
        """Copies of the rows at the given positions (a slice or an index array; kept ones)."""
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.n)
            if stop > start and start < self.base:
                raise IndexError(f"rows from {start}: rows before {self.base} are no longer kept")
            rows = slice(start - self._p0, max(stop, start) - self._p0, step)
            return {k: np.array(v[rows]) for k, v in self._data.items()}
        pos = np.asarray(rows, dtype="int64")
        if pos.size and (pos.min() < self.base or pos.max() >= self.n):
            raise IndexError(f"positions {pos.min()}..{pos.max()} outside the rows kept "
                             f"({self.base}..{self.n - 1})")
        return {k: np.array(v[pos - self._p0]) for k, v in self._data.items()}


@dataclass
class Touch:
    """What one update touched: bars ``j0..n-1`` (the first ``n_closed`` of all bars are closed),
    their columns (core values included), their cells and the batch's trades, as numpy arrays.
    ``poc_cell`` indexes, per touched bar with cells (``poc_bar``), its POC among ``cells``.
    ``cache``: what studies derive from it and share (the POC rows of N ticks, by N)."""

    j0: int
    n: int
    n_closed: int
    bars: dict
    cells: dict
    trades: dict
    poc_bar: np.ndarray
    poc_cell: np.ndarray
    cache: dict = field(default_factory=dict, repr=False)


@dataclass
class LiveUpdate:
    """What one :meth:`LiveOrderFlow.update` did: bars ``first_bar`` to ``bars - 1`` were
    (re)computed; the first ``closed`` bars are final. ``bar_update`` is the aggregator's
    ``BarUpdate`` for the batch (None when no trades came)."""

    first_bar: int
    bars: int
    closed: int
    bar_update: object | None = None


class TradingDays:
    """Trading date (ns) of bar times per session, remembering the span ``[start, end)`` of the
    last day seen: a live update's bars almost always fall in it, and then no pandas time-zone
    work is needed. A span is kept only once both its ends are checked to map to that day."""

    _DAY = 86_400_000_000_000

    def __init__(self):
        self._span: dict[Session, tuple[int, int, int]] = {}

    def keys(self, session: Session | None, ts: np.ndarray) -> np.ndarray:
        if session is None or not len(ts):
            return np.zeros(len(ts), "int64")
        start, end, day = self._span.get(session, (0, 0, 0))
        if ts[0] >= start and ts[-1] < end:
            return np.full(len(ts), day, dtype="int64")
        keys = self._dates(session, ts)
        self._remember(session, int(keys[-1]))
        return keys

    @staticmethod
    def _dates(session: Session, ts) -> np.ndarray:
        return session.trading_date(pd.DatetimeIndex(ns_to_utc(np.asarray(ts, "int64")))).asi8

    def _remember(self, session: Session, day: int) -> None:
        bounds = session.day_start_utc(ns_to_utc(np.array([day, day + self._DAY]))).asi8
        start, end = int(bounds[0]), int(bounds[1])
        if end > start and (self._dates(session, [start, end - 1]) == day).all():
            self._span[session] = (start, end, day)


def rows_frame(cols: dict, index) -> pd.DataFrame:
    return pd.DataFrame(cols, index=index)


def result_index(rows, n: int):
    """The index of a frame of ``rows`` (a slice or positions) of a result of ``n`` rows."""
    if isinstance(rows, slice):
        start, stop, _ = rows.indices(n)
        return pd.RangeIndex(start, stop)
    return pd.Index(np.asarray(rows, dtype="int64"))


def frame_columns(frames, floats, ints) -> dict:
    """Numpy columns (``ts`` as int64 ns) of model-layout frames, concatenated."""
    frames = [f for f in frames if len(f)] or frames[:1]
    out = {"ts": np.concatenate([f["ts"].array.as_unit("ns").asi8 for f in frames])}
    for c in floats:
        out[c] = np.concatenate([f[c].to_numpy(dtype="float64") for f in frames])
    for c in ints:
        out[c] = np.concatenate([f[c].to_numpy(dtype="int64") for f in frames])
    return out
