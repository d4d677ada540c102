"""The time and price axes of bar charts.

Bars are drawn at x = their sequence number (:data:`X`), so bars of every spec sit side by side
and a closed session leaves no gap (nor a flat line across it, as a time axis would draw). The
labels read each bar's open time, in the instrument's zone, from the chart's bar source (column
:data:`T`: milliseconds of the local wall-clock time, so the browser formats it with UTC getters
whatever its own zone).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from bokeh.models import AdaptiveTicker, ColumnDataSource, CustomJSTickFormatter

__all__ = ["X", "T", "local_ms", "time_formatter", "price_formatter", "price_decimals",
           "price_ticker"]

X = "x"  # the bar's sequence number, the x of every bar-based glyph
T = "t"  # the bar's open time as local wall-clock milliseconds (for the labels)


def local_ms(ts, tz: str) -> np.ndarray:
    """Open times (UTC, tz-aware or naive UTC) as milliseconds of wall-clock time in ``tz``."""
    index = pd.DatetimeIndex(ts)
    if index.tz is None:
        index = index.tz_localize("UTC")
    local = index.tz_convert(tz).tz_localize(None)
    return local.as_unit("ms").asi8


_TIME_LABEL = """
const xs = source.data['%(x)s'], ts = source.data['%(t)s'];
if (xs.length == 0) return '';
const i = Math.round(tick) - xs[0];
if (i < 0 || i >= ts.length) return '';
const d = new Date(ts[i]);
const pad = (n) => String(n).padStart(2, '0');
const day = (v) => { const j = Math.round(v) - xs[0];
                     return (j >= 0 && j < ts.length) ? Math.floor(ts[j] / 86400000) : null; };
const months = ['Jan','Feb','Mar','Apr','May','Jun','Jul','Aug','Sep','Oct','Nov','Dec'];
const first = index == 0 || day(ticks[index - 1]) !== Math.floor(ts[i] / 86400000);
const hm = pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
if (!first) return (d.getUTCSeconds() ? hm + ':' + pad(d.getUTCSeconds()) : hm);
return d.getUTCDate() + ' ' + months[d.getUTCMonth()];  // as wide as a time: no overlap
"""


def time_formatter(source: ColumnDataSource) -> CustomJSTickFormatter:
    """Labels of a bar-number axis: the bar's local time ("14:35"), and the date instead at the
    first tick and where the day changes ("27 Nov": a date and a time were twice as wide and ran
    into the next label); read from ``source`` (columns X and T), so bars streamed in later are
    labelled too."""
    return CustomJSTickFormatter(args={"source": source}, code=_TIME_LABEL % {"x": X, "t": T})


def price_decimals(tick_size: float) -> int:
    """Decimals that show every price of a ``tick_size`` grid (0.25 -> 2, 0.1 -> 1, 1 -> 0)."""
    text = np.format_float_positional(float(tick_size), trim="-")
    return len(text.partition(".")[2]) if "." in text else 0


def price_formatter(tick_size: float) -> CustomJSTickFormatter:
    """Price labels with the instrument's decimals and thousands separators."""
    decimals = min(price_decimals(tick_size), 10)
    return CustomJSTickFormatter(code=(
        f"return tick.toLocaleString('en-US', {{minimumFractionDigits: {decimals}, "
        f"maximumFractionDigits: {decimals}}});"))


def price_ticker(tick_size: float) -> AdaptiveTicker:
    """Price ticks on the instrument's grid: steps of 1, 2 or 5 times a power of ten, never finer
    than the tick (so a 0.25 tick gets 0.5, 1, 2, 5 ... and no 4,570.10)."""
    return AdaptiveTicker(mantissas=[1, 2, 5], base=10, min_interval=float(tick_size))
