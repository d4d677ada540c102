"""Keeping Bokeh sources up to date from live bars without redrawing them.

* :class:`BarNumbers` gives bars their x (:data:`axes.X`, the sequence number) as a chart loads a
  frame and then follows the hub's updates, and says which bars closed: the last bar of a loaded
  frame is taken as still forming; if an update neither re-sends it nor closes it, it was final
  already and is handed on among the closed bars, so a study fed from here counts it once.
* :class:`KeyedRows` keeps a source's rows equal to a table keyed by one column (a profile's
  price rows): changed rows are patched, new rows streamed; a table that lost rows (a new session,
  another visible range) replaces the data.
* :class:`BarLines` holds per-bar study values (VWAP, developing POC) at x = bar number: closed
  rows are streamed once, the forming row patched in place, and a row of NaN is put between two
  trading days so that lines break at the session boundary instead of joining the days.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource

from tradeflow.model import BAR_COLUMNS, FOOTPRINT_COLUMNS, empty_frame

from .axes import X
from .live_source import differs

__all__ = ["BarNumbers", "Step", "KeyedRows", "BarLines", "set_small", "patch_rows",
           "update_columns"]


def _ns(ts) -> np.ndarray:
    index = pd.DatetimeIndex(ts)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns").asi8


@dataclass(frozen=True)
class Step:
    """One update in bar numbers: the bars that closed (with a forming bar that closed unsaid)
    and their cells, the forming bar and its cells, and their x."""
    closed: pd.DataFrame
    closed_cells: pd.DataFrame
    current: pd.DataFrame
    current_cells: pd.DataFrame
    closed_x: np.ndarray
    current_x: np.ndarray


class BarNumbers:
    """The x of every bar a chart shows (see the module's docstring)."""

    def __init__(self):
        self.last = -1  # x of the last bar shown
        self._held = None  # (ts ns, bar frame, cells frame) of a bar that may still be re-sent

    def load(self, bars: pd.DataFrame, cells: pd.DataFrame | None = None) -> np.ndarray:
        """x of ``bars`` (0, 1, ...); the last one is held as forming."""
        x = np.arange(len(bars), dtype="int64")
        self.last = len(bars) - 1
        self._held = None
        if len(bars):
            ts = int(_ns(bars["ts"].iloc[-1:])[0])
            held_cells = (cells[_ns(cells["ts"]) == ts] if cells is not None and len(cells)
                          else empty_frame(FOOTPRINT_COLUMNS))
            self._held = (ts, bars.iloc[-1:], held_cells)
        return x

    def advance(self, update) -> Step:
        """Number the bars of ``update`` (a hub ``Update``: ``closed``, ``closed_footprint``,
        ``current``, ``current_footprint``)."""
        closed, closed_cells = update.closed, update.closed_footprint
        current, current_cells = update.current, update.current_footprint
        held = self._held
        closed_ts = _ns(closed["ts"]) if len(closed) else np.empty(0, "int64")
        current_ts = _ns(current["ts"]) if len(current) else np.empty(0, "int64")
        resent = held is not None and (
            (len(closed_ts) and closed_ts[0] == held[0])
            or (not len(closed_ts) and len(current_ts) and current_ts[0] == held[0]))
        if held is not None and not resent:  # it closed without being re-sent: final as shown
            closed = pd.concat([held[1], closed], ignore_index=True) if len(closed) else held[1]
            closed_cells = (pd.concat([held[2], closed_cells], ignore_index=True)
                            if len(closed_cells) else held[2])
        # the held bar (re-sent or handed on) is the first of the sequence, at its own x
        first = self.last if held is not None else self.last + 1
        xs = np.arange(first, first + len(closed) + len(current), dtype="int64")
        if len(xs):
            self.last = int(xs[-1])
        self._held = None
        if len(current):
            cells = current_cells if current_cells is not None else empty_frame(FOOTPRINT_COLUMNS)
            self._held = (int(current_ts[0]), current, cells)
        return Step(closed if len(closed) else empty_frame(BAR_COLUMNS),
                    closed_cells if closed_cells is not None and len(closed_cells)
                    else empty_frame(FOOTPRINT_COLUMNS),
                    current, current_cells if current_cells is not None
                    else empty_frame(FOOTPRINT_COLUMNS),
                    xs[:len(closed)], xs[len(closed):])


def patch_rows(source: ColumnDataSource, lo: int, hi: int, data: dict) -> list[str]:
    """Patch rows ``lo..hi-1`` of ``source`` with ``data`` (columns of ``hi - lo`` values),
    sending only the columns whose values changed (a forming bar's number, time and row keys
    stay, its volumes move); the columns sent. One row is patched as a plain value (a number in
    the message, not an array), objects (text) as a list (a source may hold them so)."""
    sent = {}
    held = source.data
    for k, v in data.items():
        new = np.asarray(v)
        if hi - lo == 1:  # (the forming bar, at every update: plain values compare fastest)
            value, shown = new[:1].tolist()[0], held[k][lo]
            if value != shown and not (value != value and shown != shown):  # (NaN = NaN)
                sent[k] = [(lo, value)]
        elif differs(np.asarray(held[k][lo:hi]), new).any():
            sent[k] = [(slice(lo, hi), new.tolist() if new.dtype == object else new)]
    if sent:
        source.patch(sent)
    return list(sent)


def update_columns(source: ColumnDataSource, data: dict) -> list[str]:
    """Give ``source`` the columns of ``data`` (as many rows as it holds) whose values differ
    from its own, whole (``source.data.update``: only those columns are sent); the columns sent.
    The arrays given are held as they are, never changed in place, so read-only arrays that
    several sessions share can be given (``dashboards.patch_messages`` writes each once)."""
    shown = source.data
    changed = {k: v for k, v in data.items()
               if differs(np.asarray(shown[k]), np.asarray(v)).any()}
    if changed:
        shown.update(changed)
    return list(changed)


def set_small(source: ColumnDataSource, data: dict) -> bool:
    """Give a small source (a few marks: nodes, naked POCs) ``data`` only if it differs from what
    it holds, so an update that did not move them sends nothing. Returns whether it was sent."""
    shown = source.data
    if set(shown) == set(data) and all(
            len(shown[k]) == len(v)
            and (not len(v) or not differs(np.asarray(shown[k]), np.asarray(v)).any())
            for k, v in data.items()):
        return False
    source.data = data
    return True


class KeyedRows:
    """A source whose rows follow a table keyed by ``key`` (see the module's docstring)."""

    def __init__(self, source: ColumnDataSource, key: str):
        self.source, self.key = source, key
        self._at: dict = {}  # key -> row index in the source

    def show(self, data: dict) -> str:
        """Make the source hold ``data`` (columns of equal length, ``key`` among them):
        ``"replaced"``, ``"patched"`` (changed rows patched, new ones streamed) or ``"same"``."""
        data = {k: np.array(v) for k, v in data.items()}  # own, writable copies (patched later)
        keys = data[self.key].tolist()
        if not self._at or not set(self._at) <= set(keys) or set(data) != set(self.source.data):
            self.source.data = data
            self._at = {k: i for i, k in enumerate(keys)}
            return "replaced"
        new = np.array([k not in self._at for k in keys], dtype=bool)
        old = np.flatnonzero(~new)
        at = np.array([self._at[keys[i]] for i in old], dtype="int64")
        patches = {}
        for col, values in data.items():
            if col == self.key or not len(old):
                continue
            shown = np.asarray(self.source.data[col])[at]
            changed = np.flatnonzero(differs(shown, values[old]))
            if len(changed):
                new_values = values[old][changed].tolist()  # plain Python values
                patches[col] = [(int(at[i]), v) for i, v in zip(changed, new_values)]
        if patches:
            self.source.patch(patches)
        if new.any():
            start = len(self._at)
            self.source.stream({c: v[new] for c, v in data.items()})
            for j, i in enumerate(np.flatnonzero(new)):
                self._at[keys[i]] = start + j
        return "patched" if patches or new.any() else "same"


class BarLines:
    """Per-bar values at x = bar number in :attr:`source` (see the module's docstring)."""

    def __init__(self, columns: tuple[str, ...]):
        self.columns = tuple(columns)
        self.source = ColumnDataSource(self._empty())
        self._last_x: int | None = None
        self._last_day: int | None = None

    def _empty(self) -> dict:
        return {X: np.empty(0, "float64"), **{c: np.empty(0, "float64") for c in self.columns}}

    def _rows(self, x, day, values) -> dict:
        """Rows for the source, with a NaN row before each first bar of a new day."""
        x = np.asarray(x, dtype="float64")
        day = np.asarray(day, dtype="int64")
        prev = np.concatenate(([self._last_day if self._last_day is not None else day[0]],
                               day[:-1])) if len(day) else day
        brk = np.flatnonzero(day != prev)
        out = {X: np.insert(x, brk, x[brk] - 0.5)}
        for c in self.columns:
            v = np.asarray(values[c], dtype="float64")
            out[c] = np.insert(v, brk, np.nan)
        return out

    def load(self, x, day, values: dict) -> None:
        """Show the rows of whole bars ``x`` with their trading days (int64) and ``values``."""
        self._last_x = self._last_day = None
        self.source.data = self._rows(x, day, values) if len(x) else self._empty()
        if len(x):
            self._last_x, self._last_day = int(x[-1]), int(day[-1])

    def put(self, x, day, values: dict) -> None:
        """Rows of bars ``x`` (ascending): one at the x of the last row shown replaces it (a
        patch), the others are streamed."""
        x = np.asarray(x, dtype="int64")
        if not len(x):
            return
        if self._last_x is None:
            return self.load(x, day, values)
        same = x == self._last_x
        if same.any():
            i = int(np.flatnonzero(same)[-1])
            last = len(self.source.data[X]) - 1
            self.source.patch({c: [(last, float(values[c][i]))] for c in self.columns})
        later = x > self._last_x
        if later.any():
            rows = self._rows(x[later], np.asarray(day)[later],
                              {c: np.asarray(values[c])[later] for c in self.columns})
            self.source.stream(rows)
            self._last_x, self._last_day = int(x[later][-1]), int(np.asarray(day)[later][-1])
