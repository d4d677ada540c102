"""Kagi, Point & Figure and Line Break on the price chart: the rows their transforms of the bars
(``tradeflow.bars.kagi``, ``point_and_figure``, ``line_break``) are drawn from.

Their x is their own line or column number, not the bar number; ``t`` is the local open time of
the bar where the line or column began (for the time labels). Every row has ``open`` and
``close`` (where the line or column starts and ends), ``lo``/``hi`` (the y auto-fit), ``dir``
(``"up"``/``"down"``), ``top``/``bottom`` (Line Break's bricks) and ``thickness`` (Kagi's yang
and yin lines); P&F also gives its boxes, one row each (``x``, ``y``: the box's price, ``dir``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import tradeflow.bars as bars_module

from . import axes

__all__ = ["TRANSFORM_FIELDS", "transform_rows"]

TRANSFORM_FIELDS = (axes.X, axes.T, "open", "high", "low", "close", "volume", "lo", "hi", "dir",
                    "top", "bottom", "thickness")
BOX_FIELDS = (axes.X, "y", "dir")


def transform_rows(kind: str, bars: pd.DataFrame, tz: str, settings: dict) -> tuple[dict, dict]:
    """The line/column rows and the P&F boxes of ``bars`` drawn as ``kind``."""
    func = getattr(bars_module, kind, None)
    if func is None:
        raise ValueError(f"chart type {kind!r} is not available yet: tradeflow.bars has no "
                         f"{kind}() transform")
    if not len(bars):
        return {f: [] for f in TRANSFORM_FIELDS}, {f: [] for f in BOX_FIELDS}
    raise NotImplementedError(kind)  # filled in when tradeflow.bars has the transforms
