"""The panes a chart shows beside its main view (``ChartConfig.panes``), other than the
price-aligned profiles:

* under it, sharing its time axis (its ``x_range`` and crosshair): ``delta`` (per-bar delta),
  ``cvd`` (a line) and ``cvd_candles`` (``components.delta``); their value axis on the side of
  the main view's price axis, so the bars line up; under Kagi, Point & Figure and Line Break
  (x is their line or column) they follow the same lines (a line's delta is its bars');
* beside it, the book panels: ``tape`` (time & sales, ``components.tape``) and ``dom`` (the
  ladder, ``components.dom``). The ladder keeps its own price range around the touch: the
  chart's spans hundreds of ticks, where one row a tick cannot be read.

:class:`BookPanels` loads the panels from the store (:func:`read_book`: the newest trading day's
trades, the last book snapshot) and follows the hub's messages (a subscription asked with
:meth:`BookPanels.subscription`: the book's best levels and the tape).
"""
from __future__ import annotations

import pandas as pd
import panel as pn

from dashboards.components.delta import CVDPane, DeltaPane
from tradeflow.model import DEPTH_COLUMNS, LIQUIDATION_COLUMNS, TRADE_COLUMNS, empty_frame

__all__ = ["UNDER", "BOOK", "under_pane", "BookPanels", "read_book", "UNDER_HEIGHT"]

UNDER = ("delta", "cvd", "cvd_candles")
BOOK = ("tape", "dom")
UNDER_HEIGHT = 110  # pixels of a pane under the chart
DAY_TRADES = 300_000  # trades read at most for a ladder's volume at price and a tape
TAPE_ROWS = 200  # trades in the hub's snapshot tape
BOOK_WIDTH = 250  # pixels of a side panel


def under_pane(name: str, *, instrument, theme: str, x_range, crosshair, axis: str,
               lines=None):
    """The pane ``name`` (one of :data:`UNDER`) on the chart's x axis; ``lines``: the main
    view's ``line_starts`` (its x counts its own lines: the pane follows them), if it has one."""
    kw = dict(instrument=instrument, theme=theme, x_range=x_range, crosshair=crosshair,
              axis=axis, height=UNDER_HEIGHT, lines=lines)
    if name == "delta":
        return DeltaPane(**kw)
    return CVDPane(style="candles" if name == "cvd_candles" else "line", **kw)


def read_book(marketdata, symbol: str, window: pd.Timedelta | None = None,
              end: pd.Timestamp | None = None) -> dict:
    """What the book views load, read up to ``end`` (default: the newest stored trade): the
    trades of the last day (at most :data:`DAY_TRADES`), the depth snapshots and liquidations
    of the last ``window`` (default: the last minute's depth only, for the ladder's book)."""
    none = {"trades": empty_frame(TRADE_COLUMNS), "depth": empty_frame(DEPTH_COLUMNS),
            "liquidations": empty_frame(LIQUIDATION_COLUMNS)}
    newest = end
    if newest is None:
        last = marketdata.trades(symbol, last=1)
        if not len(last):
            return none
        newest = pd.Timestamp(last["ts"].iloc[-1])
    start = newest - (window or pd.Timedelta(minutes=1))
    day = min(start, newest - pd.Timedelta(days=1))
    return {"trades": marketdata.trades(symbol, start=day, end=end, last=DAY_TRADES),
            "depth": marketdata.depth(symbol, start=start, end=end),
            "liquidations": marketdata.liquidations(symbol, start=start, end=end)}


class BookPanels:
    """The tape and the ladder asked for (``names``, from :data:`BOOK`), ``height`` pixels."""

    def __init__(self, names, *, instrument, theme: str, height: int):
        from dashboards.components.dom import DomLadder
        from dashboards.components.tape import Tape

        self.tape = self.dom = None
        if "dom" in names:
            self.dom = DomLadder(instrument=instrument, theme=theme, height=height,
                                 width=BOOK_WIDTH)
        if "tape" in names:
            self.tape = Tape(instrument=instrument, theme=theme, height=height, width=BOOK_WIDTH)

    @property
    def views(self) -> list:
        return [v for v in (self.dom, self.tape) if v is not None]

    @property
    def panels(self) -> list:
        """The views laid out at their own width (a stretched page would share its width
        among them and the chart)."""
        if not hasattr(self, "_panels"):
            views = self.views
            self._panels = [pn.Row(*views, sizing_mode="fixed", width=(BOOK_WIDTH + 20)
                                   * len(views), margin=0)] if views else []
        return self._panels

    def subscription(self) -> dict:
        """The hub subscription's ``book_levels`` and ``tape`` these panels follow."""
        return {"book_levels": self.dom.levels if self.dom is not None else 0,
                "tape": TAPE_ROWS if self.views else 0}

    def load(self, read: dict) -> None:
        """Show what :func:`read_book` read."""
        if self.dom is not None:
            self.dom.load(read["depth"], read["trades"])
        if self.tape is not None:
            self.tape.load(read["trades"])

    def apply(self, message) -> None:
        """A hub message (its book, trades; a Snapshot adds only what is newer)."""
        for view in self.views:
            view.apply(message)

    def set_theme(self, theme: str) -> None:
        for view in self.views:
            view.theme = theme
