"""Kagi, Point & Figure and Line Break on the price chart: the rows their transforms of the bars
(``tradeflow.bars.Kagi``, ``PointAndFigure``, ``LineBreak``, incremental) are drawn from.

Their x is their own line or column number, not the bar number; ``t`` is the local time of the
bar that began the line or column (for the time labels and the readout). A line or column holds
the bars from the one that began it to the one before the next began: its ``volume`` (and order
flow) is theirs summed, and :meth:`Transform.bars` gives the lines as bars, so studies are
computed over them (as TradingView computes a Kagi or Renko chart's studies over its own
bricks: the RSI of the lines a trader sees, not of bars he does not). Two sources:

* one row per x (:data:`TRANSFORM_FIELDS`): ``open``/``close`` (where the line or column starts
  and ends), ``high``/``low``, ``lo``/``hi`` (the y auto-fit), ``dir`` (``"up"``/``"down"``),
  ``top``/``bottom`` (Line Break's bricks), ``volume``/``vmid`` (the volume pane); what the
  readout, the axis and the fit read;
* the marks drawn (:data:`MARK_FIELDS`): Kagi's pieces of line (a line is one piece per
  thickness: ``y0``..``y1``, ``thick`` yang or thin yin, and the horizontal ``join`` from the
  previous line's end), P&F's boxes (``y``: the box's level, ``y0``..``y1``: the box's extent
  in price, ``box`` its height, drawn in data units so boxes never overlap however far the chart is zoomed out;
  ``dir``: X up, O down).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import tradeflow.bar_transforms as bar_kinds
from tradeflow.model import BAR_COLUMNS, Instrument, to_utc

from . import axes

__all__ = ["TRANSFORM_FIELDS", "MARK_FIELDS", "TRANSFORMS", "Transform", "LineAxis", "line_spans",
           "per_line"]

TRANSFORM_FIELDS = (axes.X, axes.T, "open", "high", "low", "close", "lo", "hi", "dir", "top",
                    "bottom", "mid", "height", "volume", "vmid")
SUMMED = ("volume", "ask_volume", "bid_volume", "trades")  # a line's: its bars' summed
MARK_FIELDS = (axes.X, "y", "y0", "y1", "join", "thick", "dir", "box")
TRANSFORMS = {"kagi": "Kagi", "point_and_figure": "PointAndFigure", "line_break": "LineBreak"}
KAGI_WIDTH = (1.0, 3.0)  # yin (thin), yang (thick) line widths


def _column(bars: pd.DataFrame, name: str) -> np.ndarray:
    """A bars frame's summed column as floats (missing: zeros)."""
    if name not in bars:
        return np.zeros(len(bars))
    return pd.to_numeric(bars[name], errors="coerce").fillna(0).to_numpy("float64")


def line_spans(bar_ns: np.ndarray, line_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bars each line or column holds, as positions ``first[i]:end[i]`` in the bars (open
    times ``bar_ns``, in order): from the bar that began it (open time ``line_ns[i]``) to the
    one before the next began; the first line also holds the bars before it (they set its
    start)."""
    first = np.searchsorted(np.asarray(bar_ns), np.asarray(line_ns, "int64"), side="left")
    if len(first):
        first[0] = 0
    end = np.append(first[1:], len(bar_ns)).astype(first.dtype)
    return first, np.maximum(end, first)


def per_line(values, first: np.ndarray, end: np.ndarray, how: str) -> np.ndarray:
    """Per-bar ``values`` made one per line over its bars (:func:`line_spans`): ``"sum"``,
    ``"first"``, ``"last"``, ``"max"`` or ``"min"``; a line holding no bar: 0 for a sum, else
    NaN."""
    values = np.asarray(values, "float64")
    if how == "sum":  # (a prefix sum: a line's total never changes as bars are added after it)
        total = np.concatenate([[0.0], np.cumsum(values)])
        return total[end] - total[first]
    out = np.full(len(first), np.nan)
    held = end > first
    if not held.any():
        return out
    if how == "first":
        out[held] = values[first[held]]
    elif how == "last":
        out[held] = values[end[held] - 1]
    elif how in ("max", "min"):
        reduce = np.fmax if how == "max" else np.fmin  # (NaN: a value not known, skipped)
        out[held] = reduce.reduceat(values, first) if held.all() else \
            [reduce.reduce(values[a:b]) for a, b in zip(first[held], end[held])]
    else:
        raise ValueError(f"per_line: how is sum, first, last, max or min, got {how!r}")
    return out


class LineAxis:
    """x on a chart of lines or columns (line ``i`` drawn at x ``i``) <-> x on its bars (bar
    ``k`` at ``bar_x[k]``, as the bar charts draw it), for what is placed by time (drawings).

    Line ``i`` runs from its x to the next line's, as its bars run from the bar that began it
    (open time ``line_ns[i]``) to the next line's first bar; the last line runs to the end of
    the last bar. In between, x is interpolated linearly, so a time inside a line falls inside
    that line's stretch and the two conversions undo each other (a snap to the line would lose
    where in the line a point was, and the state, written from the figure, would move it).
    Lines begun by one bar share it evenly (x stays strictly increasing). Before the first line
    and after the last bar, one line is the lines' average number of bars."""

    def __init__(self, bar_x: np.ndarray, bar_ns: np.ndarray, line_ns: np.ndarray):
        if not len(bar_ns) or not len(line_ns):
            raise ValueError("LineAxis: needs bars and lines")
        begun = np.searchsorted(np.asarray(bar_ns, "int64"), np.asarray(line_ns, "int64"))
        first = np.searchsorted(begun, begun, side="left")
        shared = np.searchsorted(begun, begun, side="right") - first
        n = len(begun)
        x0 = float(bar_x[0])
        # (bar position of each line's start, then of the last bar's end) at x 0, 1, ..., n
        self._bars = np.append(x0 + begun + (np.arange(n) - first) / shared, x0 + len(bar_ns))
        self._lines = np.arange(n + 1, dtype="float64")
        self._scale = (self._bars[-1] - self._bars[0]) / n  # bars per line

    def to_bars(self, x: float) -> float:
        """The bar x of line x ``x`` (to 1e-9 of a bar: a line's start gives its bar back
        exactly, not a hair before it)."""
        lines, bars = self._lines, self._bars
        if x < 0:
            b = bars[0] + x * self._scale
        elif x > lines[-1]:
            b = bars[-1] + (x - lines[-1]) * self._scale
        else:
            b = np.interp(x, lines, bars)
        return round(float(b), 9)

    def to_lines(self, b: float) -> float:
        """The line x of bar x ``b``."""
        lines, bars = self._lines, self._bars
        if b < bars[0]:
            return float((b - bars[0]) / self._scale)
        if b > bars[-1]:
            return float(lines[-1] + (b - bars[-1]) / self._scale)
        return float(np.interp(b, bars, lines))


def _dir(direction) -> np.ndarray:
    return np.where(np.asarray(direction) > 0, "up", "down").astype(object)


class Transform:
    """One chart type's transform of the chart's bars, followed bar by bar: ``update(closed,
    forming)`` commits the closed bars and previews the forming one; ``rows()`` and ``marks()``
    are the two sources' columns for the whole result (a chart sends only what differs)."""

    def __init__(self, kind: str, instrument: Instrument, tz: str, settings: dict | None):
        if kind not in TRANSFORMS:
            raise ValueError(f"chart type {kind!r}: transforms are {', '.join(TRANSFORMS)}")
        self.kind, self.instrument, self.tz = kind, instrument, tz
        made = getattr(bar_kinds, TRANSFORMS[kind], None)
        if made is None:
            raise ValueError(f"chart type {kind!r} is not available: tradeflow.bars has no "
                             f"{TRANSFORMS[kind]}")
        try:
            self._inner = made(instrument, **dict(settings or {}))
        except TypeError as exc:  # an unknown setting
            raise ValueError(f"chart type {kind!r}: {exc}") from None
        # the bars fed: open times (ns) and the summed columns, closed ones, then the forming
        self._ns, self._sums = np.zeros(0, "int64"), {c: np.zeros(0) for c in SUMMED}
        self._forming = None
        self._starts = pd.DatetimeIndex([], tz="UTC")  # the lines' (see line_starts)

    def update(self, closed: pd.DataFrame, forming: pd.DataFrame | None = None) -> None:
        forming = forming if forming is not None and len(forming) else None
        self._inner.update(closed, forming=forming)
        if closed is not None and len(closed):
            self._ns = np.concatenate([self._ns, to_utc(closed["ts"]).asi8])
            self._sums = {c: np.concatenate([v, _column(closed, c)])
                          for c, v in self._sums.items()}
        self._forming = forming

    def rows(self) -> dict:
        frame = self._inner.result()
        if self.kind == "kagi":
            return self._kagi_rows(frame)
        if self.kind == "point_and_figure":
            o = np.where(frame["direction"] > 0, frame["low"], frame["high"])
            c = np.where(frame["direction"] > 0, frame["high"], frame["low"])
            return self._columns(frame, np.arange(len(frame)), o, frame["high"], frame["low"], c)
        return self._columns(frame, np.arange(len(frame)), frame["open"], frame["high"],
                             frame["low"], frame["close"])

    def bars(self, rows: dict | None = None) -> pd.DataFrame:
        """The lines or columns as bars (the model's bar layout, ``ts`` the open time of the
        bar that began each), what studies are computed over; ``rows``: those the last
        :meth:`rows` gave (not made again)."""
        rows = self.rows() if rows is None else rows
        n = len(rows[axes.X])
        out = {"ts": self._starts if n else pd.DatetimeIndex([], tz="UTC")}
        out.update({c: np.asarray(rows[c], "float64") for c in ("open", "high", "low", "close")})
        sums = self._line_sums(n)
        out.update(sums)
        out["delta"] = sums["ask_volume"] - sums["bid_volume"]
        out["open_interest"] = np.full(n, np.nan)
        return pd.DataFrame(out)[list(BAR_COLUMNS)]

    def line_starts(self) -> np.ndarray:
        """The open times (UTC ns) of the bars that began each line or column, as of the last
        :meth:`rows`: what the panes under the chart group their bars by (:func:`line_spans`)."""
        return self._starts.asi8

    def _line_sums(self, n: int) -> dict:
        """Each line's or column's sums of :data:`SUMMED` over its bars (:func:`line_spans`)."""
        ns, sums = self._ns, self._sums
        if self._forming is not None:
            ns = np.concatenate([ns, to_utc(self._forming["ts"]).asi8])
            sums = {c: np.concatenate([v, _column(self._forming, c)]) for c, v in sums.items()}
        if not n:
            return {c: np.zeros(0) for c in SUMMED}
        first, end = line_spans(ns, self._starts.asi8)
        return {c: per_line(v, first, end, "sum") for c, v in sums.items()}

    def _columns(self, frame, x, o, h, l, c) -> dict:
        o, h, l, c = (np.asarray(v, "float64") for v in (o, h, l, c))
        self._starts = to_utc(frame["ts"])
        volume = self._line_sums(len(frame))["volume"]
        return {axes.X: np.asarray(x, "int64"), axes.T: axes.local_ms(frame["ts"], self.tz),
                "open": o, "high": h, "low": l, "close": c, "lo": l, "hi": h,
                "dir": _dir(frame["direction"]), "top": np.maximum(o, c),
                "bottom": np.minimum(o, c), "mid": (o + c) / 2, "height": np.abs(c - o),
                "volume": volume, "vmid": volume / 2}

    def _kagi_rows(self, frame: pd.DataFrame) -> dict:
        """One row per Kagi line (its pieces of thickness merged)."""
        if not len(frame):
            self._starts = pd.DatetimeIndex([], tz="UTC")
            return {f: np.array([]) for f in TRANSFORM_FIELDS}
        lines = frame.groupby("line", sort=True)
        first, last = lines.head(1).set_index("line"), lines.tail(1).set_index("line")
        o, c = first["open"].to_numpy(), last["close"].to_numpy()
        return self._columns(first.reset_index(), first.index.to_numpy(), o,
                             np.maximum(o, c), np.minimum(o, c), c)

    def marks(self) -> dict:
        frame = self._inner.result()
        if self.kind == "kagi":
            n = len(frame)
            line = frame["line"].to_numpy("int64")
            starts = np.r_[True, line[1:] != line[:-1]] if n else np.zeros(0, bool)
            return {axes.X: line, "y": frame["close"].to_numpy("float64"),
                    "y0": frame["open"].to_numpy("float64"),
                    "y1": frame["close"].to_numpy("float64"),
                    # the horizontal from the previous line's end, on a line's first piece
                    "join": np.where(starts & (line > 0), line - 1.0, line).astype("float64"),
                    "thick": np.where(frame["yang"], *KAGI_WIDTH[::-1]).astype("float64"),
                    "dir": np.where(frame["yang"], "up", "down").astype(object),
                    "box": np.zeros(n)}
        if self.kind == "point_and_figure":
            step = self._inner.box * self.instrument.tick_size
            counts = frame["boxes"].to_numpy("int64")
            x = np.repeat(np.arange(len(frame)), counts)
            first = np.repeat(frame["low"].to_numpy("float64"), counts)
            offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            y = np.round((first + offset * step) / self.instrument.tick_size) * \
                self.instrument.tick_size
            half = 0.4 * step  # a box fills 80% of its level's height
            return {axes.X: x, "y": y, "y0": y - half, "y1": y + half, "join": x.astype("float64"),
                    "thick": np.ones(len(x)), "dir": np.repeat(_dir(frame["direction"]), counts),
                    "box": np.full(len(x), 2 * half)}
        return {f: np.array([]) for f in MARK_FIELDS}
