"""Catalogue studies on the price chart: which ones it can draw, how their frames become source
columns, their display shifts, and following their live ``Changes``.

* A study whose rows are one per bar (it reads bars and has no price, tick or side column:
  indicators, CVD, VWAP, footprint metrics) is drawn as lines, or as candles when its outputs
  are ``open/high/low/close`` (CVD candles). Row ``i`` of its frame sits at ``x0 + i``, ``x0``
  the x of the bar of its first row (the hub's followers may start later than the bars shown).
* A study of events with a ``price`` column (big trades, absorption, zero prints, liquidations,
  imbalances) is drawn as markers at the bar holding each event's time.
* ``StudyInfo.shift`` (``{"senkou_a": "displacement - 1"}``) moves a column that many bars
  right (left when negative): the column gets its own x column, ``x_<column>``.

The other studies (profiles, the heatmap, sweeps, stacked imbalances, unfinished auctions,
naked POCs) belong to the footprint, profile and book views; asking the price chart for them is
refused with a line that says so.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource

from indicators.catalogue import CATALOGUE, StudyData, StudyInfo
from tradeflow.model import to_utc

from . import axes
from .live_source import put_rows, truncate

__all__ = ["StudyLayer", "make_layer", "batch_frame", "shift_bars", "CANDLE_OUTPUTS"]

CANDLE_OUTPUTS = ("open", "high", "low", "close")
_EVENT_COLUMNS = {"price", "tick", "side", "price_low", "tick_low", "poc_price"}


def shift_bars(expression: str, params: dict) -> int:
    """A display shift such as ``"displacement - 1"`` or ``"-(displacement - 1)"``, in bars, from
    the study's settings: whole numbers, parameter names, ``+ - *`` and brackets only."""
    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in params:
            return int(params[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = value(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            a, b = value(node.left), value(node.right)
            return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(
                node.op, ast.Sub) else a * b
        raise ValueError(f"display shift {expression!r}: only whole numbers, the study's "
                         f"parameters ({', '.join(params) or 'none'}) and + - * are allowed")
    try:
        return value(ast.parse(str(expression), mode="eval"))
    except SyntaxError:
        raise ValueError(f"display shift {expression!r} is not an expression") from None


@dataclass
class StudyLayer:
    """One study on the chart: its catalogue entry and settings, how it draws (``"lines"``,
    ``"candles"`` or ``"markers"``), the columns it draws, their shifts, and its source."""
    info: StudyInfo
    params: dict
    kind: str
    columns: tuple[str, ...]
    shifts: dict[str, int]
    source: ColumnDataSource = field(default_factory=ColumnDataSource)
    x0: int | None = None  # x of position 0 (per-bar studies), known once a row is seen
    offset: int = 0  # the position in the study's result of the source's first row
    key: str = ""  # the name as asked for: the hub labels the study's messages by it

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def label(self) -> str:
        """The study and the settings that differ from its defaults (``EMA 50``): its legend,
        and the hub's label of a study asked for as a ``(name, settings)`` pair."""
        return self.info.label(self.params)

    def of(self, by_label: dict):
        """This study's entry of a hub message's ``{label: ...}``: by its label, else by the
        name it was asked by (a subscription made with names), else None."""
        for label in (self.label, self.key, self.name):
            if label in by_label:
                return by_label[label]
        return None

    def short(self, column: str) -> str:
        """A column's name without the study's prefix (``ICHIMOKU_kijun`` -> ``kijun``)."""
        return column.removeprefix(f"{self.info.name}_")

    @property
    def draws(self) -> str:
        return self.info.draws

    @property
    def fit_columns(self) -> tuple[str, ...]:
        """The columns a pane's y range spans (the drawn ones)."""
        if self.kind == "candles":
            return ("low", "high")
        return self.columns

    @property
    def max_shift(self) -> int:
        return max([0, *self.shifts.values()])

    # frames -> columns ---------------------------------------------------------------------
    def rows(self, frame: pd.DataFrame, positions: np.ndarray, bar_ts: np.ndarray,
             bar_x: np.ndarray) -> dict:
        """Source columns of ``frame`` (rows of the study's result at ``positions``), placed
        against the chart's bars (their open times ``bar_ts``, int64 ns, and x)."""
        def times():
            return to_utc(frame["ts"]).asi8 if "ts" in frame else np.zeros(len(frame), "int64")
        if self.kind == "markers":
            ts = times()
            at = np.searchsorted(bar_ts, ts, side="right") - 1  # the bar holding the event
            x = np.where(at >= 0, bar_x[np.clip(at, 0, None)] if len(bar_x) else 0, -1)
        else:
            if self.x0 is None and len(frame):
                first = np.searchsorted(bar_ts, times()[0], side="left")
                self.x0 = int((bar_x[first] if first < len(bar_x) else
                               (bar_x[-1] + 1 if len(bar_x) else 0)) - positions[0])
            x = (self.x0 or 0) + np.asarray(positions, "int64")
        out = {axes.X: np.asarray(x, "float64")}
        for col in self.columns:
            values = frame[col]
            out[col] = (values.to_numpy("float64") if values.dtype.kind in "fiu" else
                        pd.to_numeric(values, errors="coerce").to_numpy("float64"))
            if col in self.shifts:
                out[f"x_{col}"] = out[axes.X] + self.shifts[col]
        if self.kind == "candles":  # bodies and colours, as the price's candles
            o, c = out["open"], out["close"]
            out.update(mid=(o + c) / 2, height=np.abs(c - o),
                       dir=np.where(c >= o, "up", "down").astype(object))
        for col in self.columns:
            if self.short(col).endswith("hist"):  # a histogram's bars: centre for ``rect``
                out[f"{col}_mid"], out[f"{col}_height"] = out[col] / 2, np.abs(out[col])
        return out

    def load(self, frame: pd.DataFrame, bar_ts: np.ndarray, bar_x: np.ndarray) -> None:
        """Draw the study's result: whole, or its rows from some position on (a hub snapshot's,
        indexed by position)."""
        self.x0 = None
        index = frame.index
        self.offset = (index.start if isinstance(index, pd.RangeIndex) else int(index[0])
                       if len(index) and pd.api.types.is_integer_dtype(index) else 0)
        frame = frame.reset_index(drop=True)
        rows = self.rows(frame, self.offset + np.arange(len(frame)), bar_ts, bar_x)
        self.source.data = {k: np.array(v) for k, v in rows.items()}  # writable: patched

    def apply(self, changes, bar_ts: np.ndarray, bar_x: np.ndarray) -> None:
        """Follow one update's ``Changes`` of the study: rows past those shown are streamed, the
        others patched, rows at or past ``changes.length`` dropped."""
        held = len(self.source.data[axes.X])
        rows = changes.rows
        if isinstance(rows, pd.Series):
            rows = rows.to_frame(self.columns[0] if self.columns else rows.name)
        if changes.length - self.offset < held:
            truncate(self.source, max(changes.length - self.offset, 0))
        rows = rows[rows.index >= self.offset]  # (rows before the first held are not shown)
        if not len(rows):
            return
        rows = rows.sort_index()
        start = int(rows.index[0])
        positions = rows.index.to_numpy()
        if not np.array_equal(positions, np.arange(start, start + len(rows))):
            for pos, row in rows.iterrows():  # scattered rows: one write each
                put_rows(self.source, int(pos) - self.offset,
                         self.rows(row.to_frame().T, np.array([pos]), bar_ts, bar_x))
            return
        put_rows(self.source, start - self.offset, self.rows(rows, positions, bar_ts, bar_x))


def make_layer(name: str, params: dict | None = None) -> StudyLayer:
    """The layer of catalogue study ``name`` with ``params`` (checked by the catalogue); a
    ``ValueError`` of one line for a study the price chart does not draw."""
    info = CATALOGUE.get(name)
    checked = info.check_params(params or {})
    outputs = tuple(c for c in info.outputs if c != "ts")
    if info.draws == "profile" or info.stream != "bars":
        raise ValueError(f"study {info.name!r} draws a price profile or the book: add it to the "
                         f"profile or heatmap view, not the price chart")
    per_bar = "bars" in info.reads and not (_EVENT_COLUMNS & set(outputs))
    if per_bar:
        kind = "candles" if set(CANDLE_OUTPUTS) <= set(outputs) else "lines"
        columns = CANDLE_OUTPUTS if kind == "candles" else tuple(
            c for c in outputs if c not in ("poc",))  # tick keys are not prices
    elif "price" in outputs and "ts" in info.outputs:
        kind, columns = "markers", ("price",) + (("size",) if "size" in outputs else ())
    else:
        raise ValueError(f"study {info.name!r} marks zones or levels the price chart does not "
                         f"draw: add it to the footprint view")
    # shifts name outputs (``senkou_a``); the frame's columns are ``ICHIMOKU_senkou_a``
    shifts = {col: shift_bars(expr, checked) for out, expr in info.shift.items()
              for col in columns if col in (out, f"{info.name}_{out}")}
    return StudyLayer(info, checked, kind, columns, shifts, key=str(name))


def batch_frame(layer: StudyLayer, instrument, bars: pd.DataFrame,
                footprint: pd.DataFrame | None, spec) -> pd.DataFrame:
    """The study computed over the chart's bars (and cells); a ``ValueError`` naming what it
    reads that the chart was not given (trades, liquidations: the hub's snapshot has them)."""
    given = {"bars": bars, "footprint": footprint}
    missing = [r for r in layer.info.reads if given.get(r) is None]
    if missing:
        raise ValueError(f"study {layer.name!r} reads {', '.join(missing)}, which the chart was "
                         f"not given: pass its frame in load(studies={{{layer.name!r}: frame}})")
    return layer.info.batch(StudyData(instrument, bars=bars, footprint=footprint, spec=spec),
                            **layer.params)

