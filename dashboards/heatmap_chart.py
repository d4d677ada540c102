"""The order-book heatmap as a chart of the desk (chart type ``heatmap``): one symbol's book over
true time (``components.heatmap.BookHeatmap``: the depth grid, trades as bubbles, liquidations,
the best bid/ask lines), with the tape and the DOM ladder beside it when asked (``panes``).

It reads the last :data:`WINDOW` of depth, trades and liquidations (or the config's view range,
at most :data:`MAX_WINDOW`), then follows the hub: the ``heatmap`` study (one follower per
settings, shared by every chart), the book's best levels and the trades. The bar spec does not
change what it draws; the bar panes (delta, CVD, profiles) belong to bar charts.
"""
from __future__ import annotations

import pandas as pd
import panel as pn

from dashboards.chart import Chart
from dashboards.chart_panes import TAPE_ROWS, BookPanels, read_book

__all__ = ["HeatmapChart", "WINDOW", "MAX_WINDOW", "chart_class"]

WINDOW = pd.Timedelta(minutes=30)  # of depth read at first
MAX_WINDOW = pd.Timedelta(hours=6)


class HeatmapChart(Chart):
    """A :class:`~dashboards.chart.Chart` whose view is the order-book heatmap."""

    def _first_read(self):
        instrument = self.marketdata.store.instrument(self.config.symbol)  # unknown: ModelError
        window, end = WINDOW, None
        if self.config.view_range is not None:
            start, end = self.config.view_range
            window = end - start
            if window > MAX_WINDOW:
                raise ValueError(f"the heatmap shows at most {MAX_WINDOW.total_seconds() / 3600:g}"
                                 f" hours of depth; the view range asks for "
                                 f"{window.total_seconds() / 3600:.1f}")
        return instrument, read_book(self.marketdata, self.config.symbol, window, end)

    def _start(self, result) -> None:
        from dashboards.components.heatmap import BookHeatmap

        self.instrument, read = result
        height = (self.height or 700) - 10
        self.view = BookHeatmap(instrument=self.instrument, theme=self.config.theme,
                                height=height)
        self.view.load(read["depth"], read["trades"], read["liquidations"])
        self.book = BookPanels(self.config.panes, instrument=self.instrument,
                               theme=self.config.theme, height=height - 30)
        self.book.load(read)
        size = (dict(height=self.height, sizing_mode="stretch_width") if self.height
                else dict(sizing_mode="stretch_both"))
        self._layout.objects = [pn.Row(self.view, *self.book.panels, **size)]
        if self.hub is not None:
            self.feed = self._follow()

    def _follow(self):
        from dashboards.live import LiveFeed

        # the best bid/ask lines need the book, the bubbles the trades: always asked
        asked = self.book.subscription()
        asked["book_levels"] = max(asked["book_levels"], 1)
        asked["tape"] = TAPE_ROWS
        return LiveFeed(self.hub, self.config.symbol, str(self.spec.base), self.on_message,
                        studies=self.view.study_settings, periodic=False, wake=self._waker,
                        **asked)

    def on_message(self, message) -> None:
        """Every hub message to the heatmap and the side panels (a Snapshot adds what is
        newer than what they show)."""
        self.view.apply(message)
        self.book.apply(message)

    def state(self):
        """The config (the heatmap's range is in time: the view range it was opened with)."""
        return self.config


def chart_class(config) -> type[Chart]:
    """The chart that shows ``config``: the heatmap for its chart type, else the bar chart."""
    return HeatmapChart if config.chart_type == "heatmap" else Chart
