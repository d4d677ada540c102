"""What each chart type of the price chart puts in its bar source: plain columns, no colours.

A chart type draws from one row per bar at x = the bar's sequence number (``axes.X``). Every row
holds the bar's shown ``open/high/low/close`` (Heikin-Ashi values for ``heikin_ashi``), its
``volume`` and ``delta``, ``change`` (close minus the previous close), ``lo``/``hi`` (what the
y auto-fit spans: the bar's range, or the close alone for line types) and ``dir`` (``"up"`` or
``"down"``) and ``fill`` (``"up"``, ``"down"`` or ``"hollow"``), factors the chart maps to the
theme's colours, so a theme change re-sends no data. Bodies: ``top``/``bottom``, ``width``,
and ``mid``/``height`` (what a ``rect`` glyph takes: Bokeh draws ``vbar`` s left of the view as
a line on its left edge), ``vmid`` (half the volume, the volume column's centre).

Rows depend on the bar itself and on :class:`Carry` (the last closed bar: its close, its
Heikin-Ashi open and close), so the forming bar's row is made without the history and closed
rows never change once made.

Kagi, Point & Figure and Line Break are not rows of bars: their x is their own column or line
number (:mod:`dashboards.components.price_transforms`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradeflow.bars import heikin_ashi

from . import axes

__all__ = ["BAR_TYPES", "TRANSFORM_TYPES", "CHART_TYPES", "LINE_TYPES", "CANDLE_TYPES",
           "Carry", "bar_rows", "BAR_FIELDS"]

# candle-like: a body from open to close and (but Renko) a wick from low to high
CANDLE_TYPES = ("candles", "hollow_candles", "volume_candles", "heikin_ashi", "renko", "range")
# drawn from the closes (and for hlc_area the highs and lows) as lines or areas
LINE_TYPES = ("line", "line_markers", "step", "area", "hlc_area", "baseline")
BAR_TYPES = ("ohlc",) + CANDLE_TYPES + LINE_TYPES + ("columns", "high_low")
TRANSFORM_TYPES = ("kagi", "point_and_figure", "line_break")
CHART_TYPES = BAR_TYPES + TRANSFORM_TYPES

# the columns of every row, in this order
BAR_FIELDS = (axes.X, axes.T, "open", "high", "low", "close", "volume", "delta", "change", "lo",
              "hi", "dir", "fill", "top", "bottom", "mid", "height", "width", "alpha", "above",
              "below", "vmid")

BODY = 0.7            # body width of a bar, in bars
MIN_BODY = 0.12       # volume candles: the narrowest body


@dataclass(frozen=True)
class Carry:
    """What the row of the next bar needs from the closed bars before it."""
    close: float = np.nan          # the last closed bar's close
    ha_open: float = np.nan        # its Heikin-Ashi open and close
    ha_close: float = np.nan


def bar_rows(chart_type: str, bars: pd.DataFrame, x0: int, carry: Carry, tz: str, *,
             base: float = np.nan, volume_ref: float = np.nan, volume_by: str = "width",
             n_closed: int | None = None) -> tuple[dict, Carry]:
    """The rows of ``bars`` (model layout, time order) drawn as ``chart_type`` at x = ``x0``,
    ``x0 + 1``, ...; and the carry after them (after the first ``n_closed``, when given: the
    bars after those are still forming). ``base``: the baseline
    chart's price; ``volume_ref``: the volume of a full volume candle, whose ``volume_by``
    (``"width"`` or ``"colour"``: the body's opacity) it sets."""
    if chart_type not in BAR_TYPES:
        raise ValueError(f"chart type {chart_type!r}: bar types are {', '.join(BAR_TYPES)}")
    n = len(bars)
    raw_close = bars["close"].to_numpy("float64")
    if chart_type == "heikin_ashi":
        prev = None if np.isnan(carry.ha_open) else (carry.ha_open, carry.ha_close)
        shown = heikin_ashi(bars, prev=prev)
    else:
        shown = bars
    o, h, l, c = (shown[k].to_numpy("float64") for k in ("open", "high", "low", "close"))
    prev_close = np.concatenate([[carry.close], raw_close[:-1]]) if n else raw_close
    change = raw_close - prev_close
    rising = c >= o
    # columns and hollow candles colour by the close against the previous close
    by_prev = np.where(np.isnan(change), rising, change >= 0)
    colour_up = by_prev if chart_type in ("columns", "hollow_candles") else rising
    fill = np.where(colour_up, "up", "down").astype(object)
    if chart_type == "hollow_candles":
        fill = np.where(c > o, "hollow", fill).astype(object)
    width, alpha = np.full(n, BODY), np.ones(n)
    if chart_type == "volume_candles" and volume_ref > 0:
        share = bars["volume"].to_numpy("float64") / volume_ref
        if volume_by == "colour":
            alpha = np.clip(share, 0.2, 1.0)
        else:
            width = np.clip(share, MIN_BODY / 0.9, 1.0) * 0.9
    if chart_type == "renko":
        width = np.full(n, 0.9)  # bricks nearly touch
    close_only = chart_type in LINE_TYPES and chart_type not in ("hlc_area",)
    lo, hi = (c, c) if close_only else (l, h)
    if chart_type == "baseline" and not np.isnan(base):
        lo, hi = np.minimum(c, base), np.maximum(c, base)
    if chart_type == "columns":
        top, bottom = c, np.zeros(n)   # down to the axis
        lo, hi = c, c
    elif chart_type == "high_low":
        top, bottom = h, l
    else:
        top, bottom = np.maximum(o, c), np.minimum(o, c)
    rows = {
        axes.X: np.arange(x0, x0 + n, dtype="int64"),
        axes.T: axes.local_ms(bars["ts"], tz),
        "open": o, "high": h, "low": l, "close": c,
        "volume": bars["volume"].to_numpy("float64"),
        "delta": bars["delta"].to_numpy("float64"),
        "change": change, "lo": lo, "hi": hi,
        "dir": np.where(colour_up, "up", "down").astype(object), "fill": fill,
        "top": top, "bottom": bottom, "mid": (top + bottom) / 2, "height": top - bottom,
        "width": width, "alpha": alpha,
        "vmid": bars["volume"].to_numpy("float64") / 2,
        "above": np.maximum(c, base) if not np.isnan(base) else c,
        "below": np.minimum(c, base) if not np.isnan(base) else c,
    }
    last = n if n_closed is None else n_closed
    if last:
        i = last - 1
        ha = (o[i], c[i]) if chart_type == "heikin_ashi" else (np.nan, np.nan)
        carry = Carry(raw_close[i], *ha)
    return rows, carry
