"""Multi-timeframe inputs: a study computed on higher-timeframe bars, aligned to the chart's bars
without look-ahead.

A higher bar's value is known only once that bar has closed. A chart bar therefore shows the value
of the latest higher bar that closed no later than the chart bar itself closes: the 10:55 five-minute
bar (closing 11:00) shows the 10:00 hour; the 10:50 bar shows the 9:00 hour. This is TradingView's
``request.security(..., lookahead=barmerge.lookahead_off)`` on confirmed bars.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import BarSpec, Session, bar_end


def align_higher(chart_ts, chart_spec, higher_ts, higher_spec, values: pd.DataFrame,
                 session: Session) -> pd.DataFrame:
    """``values`` (one row per higher bar, in ``higher_ts`` order) aligned to the chart bars.

    Returns a frame with one row per chart bar (NaN until the first higher bar has closed).
    """
    chart_spec, higher_spec = BarSpec.parse(chart_spec), BarSpec.parse(higher_spec)
    if len(values) != len(higher_ts):
        raise ValueError(f"align_higher: {len(values)} values for {len(higher_ts)} higher bars")
    chart_close = bar_end(chart_ts, chart_spec, session)
    higher_close = bar_end(higher_ts, higher_spec, session)
    if chart_spec.kind != "time":
        # a chart bar of trades closes when the next opens; the open last one is "now"
        chart_close = chart_close.fillna(pd.Timestamp.max.tz_localize("UTC"))
    known = higher_close.notna()  # an open higher bar (non-time spec) is not known yet
    closes = higher_close[known].asi8
    if len(closes) and (np.diff(closes) < 0).any():
        raise ValueError("align_higher: higher bars must be in time order")
    # the latest higher bar with close <= the chart bar's close
    pick = np.searchsorted(closes, chart_close.asi8, side="right") - 1
    rows = values[np.asarray(known)].reset_index(drop=True)
    out = rows.reindex(np.where(pick >= 0, pick, -1))
    out.index = pd.RangeIndex(len(chart_close))
    return out
