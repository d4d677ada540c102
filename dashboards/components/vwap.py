"""Session VWAP with standard-deviation bands as lines on a price figure (x = bar number).

The values are :func:`indicators.orderflow.session_vwap`'s (live: ``VwapState``, which equals it):
the VWAP restarts each trading day of the instrument's session, the bands are ``k`` volume-weighted
standard deviations from it. Lines break between trading days (:class:`.live_sources.BarLines`);
live, closed bars' rows are streamed once and the forming bar's row is patched.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from indicators.orderflow import VwapState, session_vwap
from tradeflow.model import Instrument

from .axes import X
from .live_sources import BarLines, BarNumbers
from .profile import trading_days
from .theme import theme_of

__all__ = ["VwapOverlay", "vwap_overlay", "BAND_DASH"]

BAND_DASH = ("solid", "dashed", "dotted")  # the 1st, 2nd, 3rd band (and further: dotted)


class VwapOverlay:
    """The session VWAP and its bands drawn on ``fig``: ``load(bars)``, ``apply(update)``,
    ``restyle(theme)``; ``renderers`` are the glyphs added (a legend or a toggle can use them)."""

    def __init__(self, fig, instrument: Instrument, theme: str = "dark", bands=(1, 2, 3)):
        self.instrument = instrument
        self.state = VwapState(session=instrument.session, bands=bands)  # checks the bands
        self.bands = self.state.bands
        names = [f"{k:g}" for k in self.bands]
        self.columns = ("vwap",) + tuple(f"{s}_{n}" for n in names for s in ("upper", "lower"))
        self.lines = BarLines(self.columns)
        self.source = self.lines.source
        self.numbers = BarNumbers()
        self.fill = (fig.varea(x=X, y1=f"lower_{names[0]}", y2=f"upper_{names[0]}",
                               source=self.source, fill_alpha=0.07) if names else None)
        self.band_lines = []
        for i, n in enumerate(names):
            dash = BAND_DASH[min(i, len(BAND_DASH) - 1)]
            for side in ("upper", "lower"):
                self.band_lines.append(fig.line(X, f"{side}_{n}", source=self.source,
                                                line_dash=dash, line_width=1, line_alpha=0.7))
        self.vwap = fig.line(X, "vwap", source=self.source, line_width=2)
        self.renderers = ([self.fill] if self.fill is not None else []) + self.band_lines \
            + [self.vwap]
        self.restyle(theme)

    def restyle(self, theme: str) -> None:
        th = theme_of(theme)
        colour = th.palette[1]
        self.vwap.glyph.line_color = colour
        for r in self.band_lines:
            r.glyph.line_color = colour
        if self.fill is not None:
            self.fill.glyph.fill_color = colour

    def load(self, bars: pd.DataFrame, footprint=None, studies=None) -> None:
        """Show the VWAP of ``bars`` (model layout); the last bar is taken as forming."""
        xs = self.numbers.load(bars)
        self.state = VwapState(session=self.instrument.session, bands=self.bands)
        if not len(bars):
            self.lines.load([], [], {c: [] for c in self.columns})
            return
        bars = bars.sort_values("ts", kind="stable")
        self.state.update(bars.iloc[:-1])  # final rows only; the forming bar is re-sent
        rows = session_vwap(bars, self.instrument.session, self.bands)
        self.lines.load(xs, trading_days(rows["ts"], self.instrument.session),
                        {c: rows[c].to_numpy() for c in self.columns})

    def apply(self, update) -> None:
        """Follow a hub ``Update``: closed bars' rows streamed, the forming bar's patched."""
        step = self.numbers.advance(update)
        rows = self.state.apply(step)["vwap"].rows
        if not len(rows):
            return
        x = np.concatenate((step.closed_x, step.current_x))
        self.lines.put(x, trading_days(rows["ts"], self.instrument.session),
                       {c: rows[c].to_numpy() for c in self.columns})


def vwap_overlay(fig, instrument: Instrument, bars=None, **kw) -> VwapOverlay:
    """Add the session VWAP and its bands to the price figure ``fig``; ``load`` ``bars`` when
    given. The returned object's ``apply(update)`` follows the hub."""
    overlay = VwapOverlay(fig, instrument, **kw)
    if bars is not None:
        overlay.load(bars)
    return overlay
