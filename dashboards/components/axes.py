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
// with the plot: a label is drawn only where it is read whole -- not within half a label of
// the frame's edges (it ran under the price axis there), and every n-th tick when the ticks
// are closer than a label is wide (n from the tick's value, so labels do not hop on a pan)
let w = 0;  // (unset until the plot is laid out: then every label)
try { w = plot ? plot.inner_width : 0; } catch (e) { w = 0; }
const xr = plot ? plot.x_range : null;
const px = (v) => (v - xr.start) / (xr.end - xr.start) * w;
const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
const every = (w > 0 && ticks.length > 1)
  ? Math.max(1, Math.ceil(%(label)d / Math.max(px(ticks[0] + step) - px(ticks[0]), 1))) : 1;
const shown = (v) => w <= 0 || (px(v) >= %(edge)d && px(v) <= w - %(edge)d
                                && Math.round(v / step) %% every == 0);
if (!shown(tick)) return '';
const d = new Date(ts[i]);
const pad = (n) => String(n).padStart(2, '0');
const day = (v) => { const j = Math.round(v) - xs[0];
                     return (j >= 0 && j < ts.length) ? Math.floor(ts[j] / 86400000) : null; };
const months = ['Jan','Feb','Mar','Apr','May','Jun','Jul','Aug','Sep','Oct','Nov','Dec'];
let before = index - 1;  // the label drawn before this one
while (before >= 0 && !shown(ticks[before])) before -= 1;
const first = before < 0 || day(ticks[before]) !== Math.floor(ts[i] / 86400000);
const hm = pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
if (!first) return (d.getUTCSeconds() ? hm + ':' + pad(d.getUTCSeconds()) : hm);
return d.getUTCDate() + ' ' + months[d.getUTCMonth()];  // as wide as a time: no overlap
"""
LABEL_PX = 44  # a time label's width and a gap ("07:38", "30 Nov" at Bokeh's 11 px)
EDGE_PX = 18  # a label centred nearer the frame's edge than this runs past it


def time_formatter(source: ColumnDataSource, plot=None) -> CustomJSTickFormatter:
    """Labels of a bar-number axis: the bar's local time ("14:35"), and the date instead at the
    first label and where the day changes ("27 Nov": a date and a time were twice as wide and
    ran into the next label); read from ``source`` (columns X and T), so bars streamed in later
    are labelled too. Given the axis's ``plot``, labels that would run past the frame's edges
    (under a price axis) are left out, and so are labels too close to be read."""
    return CustomJSTickFormatter(args={"source": source, "plot": plot},
                                 code=_TIME_LABEL % {"x": X, "t": T, "label": LABEL_PX,
                                                     "edge": EDGE_PX})


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
