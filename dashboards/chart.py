"""The Chart: one :class:`~dashboards.chart_state.ChartConfig` (symbol, spec, type, studies,
drawings, view range, theme) made into views over market data, following the live feed.

* History comes through ``MarketData``: :data:`FIRST_BARS` bars (a day of 1-minute bars) at
  first; when the view's start comes within :data:`NEAR_START` bars of the first bar, the
  :data:`FIRST_BARS` bars before it are read and put in front (bar numbers below 0, so the bars
  in view keep their numbers and the view does not jump).
* Live: a :class:`~dashboards.live.LiveFeed` on the hub; a ``Snapshot`` is joined to the
  history (history before the snapshot's first bar, then the snapshot) and loaded, each
  ``Update`` goes to the view's ``apply`` (closed bars streamed once, the forming bar patched).
* Heikin-Ashi specs follow the plain bars of their spec and are transformed here, the forming
  bar from the last closed one.
* Drawings (``components.drawings``) are kept in the config, in times, so they survive reloads
  and show at the same time on every chart type (on Kagi, P&F and Line Break through the lines).
* At the live edge (the newest bar, or line, in view) the view scrolls as new ones come; a view
  scrolled back stays.
* Panes (``chart_panes``): delta and CVD under the view on its time axis, the volume profile and
  TPO beside it on its prices, the tape and the DOM ladder as side panels (loaded from the store,
  then live from the same hub subscription, asked with the book and the tape).
"""
from __future__ import annotations

import html
import logging
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, CrosshairTool, Range1d, Span

from dashboards.chart_panes import UNDER, UNDER_HEIGHT, BookPanels, read_book, under_pane
from dashboards.chart_state import ChartConfig
from dashboards.components import axes
from dashboards.components.live_sources import BarNumbers
from dashboards.components.theme import figure, style, theme_of
from dashboards.growing_frame import GrowingFrame
from dashboards.live import FALLBACK_MS, Reads, Waker, session_callback
from dashboards.patch_messages import light_patch_messages
from data_access import StoreError
from tradeflow.bars import heikin_ashi
from tradeflow.live.hub import Snapshot, Update
from tradeflow.model import (BAR_COLUMNS, FOOTPRINT_COLUMNS, BarSpec, Instrument, ModelError,
                             empty_frame)

__all__ = ["Chart", "FIRST_BARS", "NEAR_START"]

log = logging.getLogger(__name__)

FIRST_BARS = 1440  # a day of 1-minute bars
NEAR_START = 20    # bars from the first one at which older history is read
SHOWN_BARS = 120   # bars in view at first
MAX_BARS = 20 * FIRST_BARS  # bars read to open on an old view range
SHOWN_FOOTPRINT = 14  # footprint bars an export shows (a served one: as many as its numbers fit)
_READ_ERRORS = (ModelError, StoreError, ValueError)  # bad symbol or spec, a store refusing


class _Candles(pn.viewable.Viewer):
    """The simplest candle figure (until the price chart lands): closed bars streamed once, the
    forming bar patched in place, older bars put in front with lower bar numbers."""

    instrument = param.ClassSelector(class_=Instrument)
    theme = param.Selector(default="dark", objects=["dark", "light"])

    COLUMNS = (axes.X, axes.T, "open", "high", "low", "close", "volume", "color")

    def __init__(self, x_range=None, crosshair=None, **params):
        super().__init__(**params)
        self.source = ColumnDataSource({c: [] for c in self.COLUMNS})
        self.x_range = x_range or Range1d(0, 1)
        self.figure = figure(theme_of(self.theme), x_range=self.x_range, crosshair=crosshair,
                             y_axis_location="right")
        self.y_range = self.figure.y_range
        self.figure.segment(axes.X, "high", axes.X, "low", color="color", source=self.source)
        self.figure.vbar(axes.X, 0.7, "open", "close", fill_color="color", line_color="color",
                         source=self.source)
        self.figure.xaxis.formatter = axes.time_formatter(self.source, self.figure)
        if self.instrument is not None:
            self.figure.yaxis.formatter = axes.price_formatter(self.instrument.tick_size)
        self.numbers = BarNumbers()
        self.base = 0

    def _rows(self, bars: pd.DataFrame, x0: int) -> dict:
        t = theme_of(self.theme)
        up = bars["close"].to_numpy() >= bars["open"].to_numpy()
        return {axes.X: list(range(x0, x0 + len(bars))),
                axes.T: axes.local_ms(bars["ts"], self.instrument.session.timezone).tolist(),
                "open": bars["open"].tolist(), "high": bars["high"].tolist(),
                "low": bars["low"].tolist(), "close": bars["close"].tolist(),
                "volume": bars["volume"].tolist(),
                "color": np.where(up, t.up, t.down).tolist()}

    @property
    def first_x(self) -> int:
        xs = self.source.data[axes.X]
        return int(xs[0]) if len(xs) else 0

    def load(self, bars, footprint=None, studies=None, first_x: int = 0) -> None:
        self.base = first_x  # x of the loaded frame's first bar
        self.numbers.load(bars)
        self.source.data = self._rows(bars, first_x)

    def apply(self, update) -> None:
        step = self.numbers.advance(update)
        rows = [f for f in (step.closed, step.current) if len(f)]
        if not rows:
            return
        new = self._rows(pd.concat(rows, ignore_index=True), self.base + int(
            np.concatenate([step.closed_x, step.current_x])[0]))
        shown = len(self.source.data[axes.X])
        at = new[axes.X][0] - self.first_x  # the row of the first bar, if shown already
        if at < shown:  # the forming bar, re-sent or closed: patched in place
            self.source.patch({c: [(at, new[c][0])] for c in self.COLUMNS})
            new = {c: v[1:] for c, v in new.items()}
        if new[axes.X]:
            self.source.stream(new)

    def prepend(self, bars, footprint=None) -> None:
        """Older closed bars, in front (numbered below the first)."""
        old = self.source.data
        front = self._rows(bars, self.first_x - len(bars))
        self.source.data = {c: list(front[c]) + list(old[c]) for c in self.COLUMNS}

    @param.depends("theme", watch=True)
    def _restyle(self):
        t = theme_of(self.theme)
        style(self.figure, t)
        data = dict(self.source.data)
        up = np.asarray(data["close"]) >= np.asarray(data["open"])
        data["color"] = np.where(up, t.up, t.down).tolist()
        self.source.data = data

    def __panel__(self):
        return pn.pane.Bokeh(self.figure, sizing_mode="stretch_both")


def draws_studies(chart_type: str) -> bool:
    """Whether a chart of ``chart_type`` draws the catalogue's studies (the price chart's types
    do; the footprint does not yet)."""
    return "studies" in _view_class(chart_type).param


def _view_class(chart_type: str):
    """The view class for a chart type: the footprint, else the price chart (the stand-in
    candles only if those components are missing)."""
    try:
        if chart_type == "footprint":
            from dashboards.components.footprint import FootprintChart
            return FootprintChart
        from dashboards.components.price_chart import PriceChart
        return PriceChart
    except ImportError:
        return _Candles


def _pane_class(name: str):
    """The component of a pane (``ChartConfig.panes``), or None while it does not exist."""
    try:
        if name == "volume_profile":
            from dashboards.components.profile import VolumeProfilePane
            return VolumeProfilePane
        if name == "tpo":
            from dashboards.components.tpo import TPOPane
            return TPOPane
    except ImportError:
        return None
    return None


class Chart(pn.viewable.Viewer):
    """A chart of ``config`` over ``marketdata`` (a ``tradeflow.marketdata.MarketData``),
    following ``hub`` (a ``tradeflow.live.hub.Hub``) when given.

    ``run``: how blocking reads run (``dashboards.live.Reads``): None in a notebook; in a server
    ``ServerContext.read``, and the results wait for the session's periodic callback (``tick``,
    every 250 ms), which also drains the live feed. ``end``: show the bars before this time
    (a notebook's historical chart), else the latest."""

    config = param.ClassSelector(class_=ChartConfig)

    height = param.Integer(default=None, allow_None=True, doc="pixels; None: stretch")

    fill = param.Boolean(default=False, doc="with no height: the views fill the space given "
                                            "(an iframe), the price pane stretching")

    read_only = param.Boolean(default=False, doc="no drawing tools (the embed): zoom, pan and "
                                                 "crosshair only")

    static = param.Boolean(default=False, doc="drawn into a file (no server answers it): every "
                           "bar read is in view, the views fill the page and draw at once what "
                           "they would ask the server for")

    def __init__(self, config: ChartConfig, marketdata, hub=None, run=None, *, start=None,
                 end=None, last=None, **params):
        """``start``/``end``/``last``: the bars read first (``MarketData.bars``' arguments);
        none of them: the last :data:`FIRST_BARS`."""
        super().__init__(config=config, **params)
        self.marketdata, self.hub, self.run = marketdata, hub, run
        self.window = dict(start=start, end=end,
                           last=last if last is not None or start is not None else FIRST_BARS)
        self.spec = BarSpec.parse(config.spec)
        self.instrument = None
        self.view = None
        self.panes: list = []
        self.under: list = []  # panes under the view (delta, CVD)
        self.book = None       # the side panels (tape, ladder)
        self.feed = None
        self.drawings = None
        self._placed = None  # what the drawings were placed by (_drawings_key)
        self.error = None
        self.history = empty_frame(BAR_COLUMNS)      # bars as read, plain (not Heikin-Ashi)
        self.history_cells = empty_frame(FOOTPRINT_COLUMNS)
        # the hub's study rows as followed (by label, indexed by position in each result):
        # a view reloaded draws these, so the hub's later Changes land on the same positions
        self.live_studies: dict[str, pd.DataFrame] = {}
        self.cvd_wicks = None  # CVD candles of the bars read (cvd_wicks), for their wicks
        self.first_x = 0
        self.more_history = True
        self._loading = False
        self._forming = 1  # the history's last bar is forming (rows after the closed ones)
        self.reads = Reads(run)
        self.x_range = Range1d(0, 1)
        self.crosshair = CrosshairTool(overlay=[
            Span(dimension="width", line_dash="dotted", line_width=1),
            Span(dimension="height", line_dash="dotted", line_width=1)])
        muted = theme_of(config.theme).muted
        self._layout = pn.Column(pn.pane.HTML(f'<span style="color:{muted}">loading '
                                              f'{html.escape(config.symbol)} {config.spec}…'
                                              '</span>', css_classes=["chart-loading"]),
                                 sizing_mode="stretch_both", min_height=200)
        self._callback = None
        self._waker = Waker(self.tick)  # a live message is shown at once, not at the next tick
        if run is not None and pn.state.curdoc is not None and \
                pn.state.curdoc.session_context is not None:
            light_patch_messages(pn.state.curdoc)  # each update's message: not a Ref of every model
            self.reads.wake = self._waker  # a read's result is shown at once too
            self._callback = session_callback(self.tick, FALLBACK_MS)
            pn.state.on_session_destroyed(lambda _context: self.close())
        self._submit(self._first_read, then=self._start)

    # --- work off the loop ----------------------------------------------------------------------
    def _submit(self, fn, *args, then) -> None:
        self.reads.submit(fn, *args, then=then, failed=self._failed)

    def tick(self) -> None:
        """The session's periodic work: results of reads, then the live feed's messages."""
        with pn.io.hold():
            self.reads.apply()
            if self.feed is not None:
                self.feed.drain()

    def _failed(self, exc) -> None:
        from dashboards.pages import PageError, error_view
        self._loading = False
        if not isinstance(exc, _READ_ERRORS):
            log.error("chart %s %s failed", self.config.symbol, self.config.spec, exc_info=exc)
            exc = "the chart could not be read (an internal error; the server log has details)"
        self.error = str(exc)
        self._layout.objects = [error_view(PageError(
            f"{self.config.symbol} {self.config.spec}: {exc}",
            "choose another symbol or bar spec"))]

    def _first_read(self):
        instrument = self.marketdata.store.instrument(self.config.symbol)  # unknown: ModelError
        bars, cells, wicks = self._read(**self.window)
        view = self.config.view_range
        if view is not None and len(bars) and view[0] < bars["ts"].iloc[0]:
            # a range older than the first day read (a link): read from a little before it
            before = self.marketdata.bars(self.config.symbol, self.spec.base, end=view[0],
                                          last=NEAR_START + 1)
            bars, cells, wicks = self._read(self.window["end"], start=before["ts"].iloc[0]
                                            if len(before) else view[0], last=None)
        return instrument, bars, cells, wicks

    def _start(self, result) -> None:
        self.instrument, self.history, self.history_cells, self.cvd_wicks = result
        self.view = self._make_view()
        self.panes = self._make_panes()
        self.under = [under_pane(name, instrument=self.instrument, theme=self.config.theme,
                                 x_range=self.x_range, crosshair=self.crosshair,
                                 axis="left" if self.config.chart_type == "footprint" else "right",
                                 lines=getattr(self.view, "line_starts", None))
                      for name in self.config.panes if name in UNDER]
        for pane in self.under[:-1]:  # one time axis, under the last pane
            pane.figure.xaxis.visible = False
        self.book = BookPanels(self.config.panes, instrument=self.instrument,
                               theme=self.config.theme, height=(self.height or 700) - 70)
        self._load_history()
        if not self.read_only:
            self._attach_drawings()
        self.x_range.on_change("start", self._scrolled)
        # a fixed height when given: stretched panes added after the page was drawn can be laid
        # out with no height at all
        size = (dict(height=self.height, sizing_mode="stretch_width") if self.height
                else dict(sizing_mode="stretch_both"))
        main = pn.Column(self.view, *self.under, sizing_mode=size["sizing_mode"], margin=0)
        self._layout.objects = [pn.Row(main, *self.panes, *self.book.panels, **size)]
        if self.drawings is not None:
            self._layout.insert(0, self.drawings.editor)
        if self.book.views:  # the book first, then the feed: its Snapshot adds what is newer
            self._submit(read_book, self.marketdata, self.config.symbol, then=self._book_read)
        elif self.hub is not None:
            self.feed = self._follow()

    def _book_read(self, read) -> None:
        self.book.load(read)
        if self.hub is not None:
            self.feed = self._follow()

    def _follow(self):
        """The live feed, with the chart's studies when the hub computes them (one follower per
        study and settings, shared by every chart), else the bars only."""
        from dashboards.live import LiveFeed
        from indicators.catalogue import CATALOGUE
        from indicators.registry import IndicatorError

        # (name, settings) pairs: the hub labels each by its settings, so two EMAs are two
        studies = ([(s["name"], dict(s["params"])) for s in self.config.studies]
                   if self.config.chart_type != "footprint" else [])
        if "cvd_candles" in self.config.panes and not any(n == "cvd_candles" for n, _ in studies):
            studies.append(("cvd_candles", {}))  # the candles' wicks
        # the profile panes' latest session, computed once by the hub for every pane like them
        shared = self._pane_studies()
        studies += [s for s in shared.values() if s not in studies]
        book = self.book.subscription() if self.book is not None else {}
        try:
            feed = LiveFeed(self.hub, self.config.symbol, str(self.spec.base), self.on_message,
                            studies=studies, periodic=False, wake=self._waker, **book)
            for pane, (name, settings) in shared.items():
                pane.follow(CATALOGUE.get(name).label(settings))
            return feed
        except (ValueError, IndicatorError) as exc:
            log.info("live studies of %s not from the hub (%s): bars only", self.config.symbol,
                     exc)
            return LiveFeed(self.hub, self.config.symbol, str(self.spec.base), self.on_message,
                            periodic=False, wake=self._waker, **book)

    def _pane_studies(self) -> dict:
        """``{pane: (study, settings)}``: the hub study each profile pane can follow."""
        asked = {}
        for pane in self.panes:
            study = pane.hub_study() if hasattr(pane, "hub_study") else None
            if study is not None:
                asked[pane] = study
        return asked

    def browser_sources(self) -> list:
        """The sources the views' own browser code writes (the footprint's viewport report)."""
        views = [self.view, *self.panes] if self.view is not None else []
        return [v.viewport for v in views if getattr(v, "viewport", None) is not None]

    @property
    def ready(self) -> bool:
        return self.view is not None

    # --- views --------------------------------------------------------------------------------
    def _make_view(self):
        cls = _view_class(self.config.chart_type)
        kw = dict(instrument=self.instrument, theme=self.config.theme, x_range=self.x_range,
                  crosshair=self.crosshair)
        if "chart_type" in cls.param and self.config.chart_type in cls.param.chart_type.objects:
            kw["chart_type"] = self.config.chart_type
        if "studies" in cls.param:
            kw["studies"] = [(s["name"], dict(s["params"])) for s in self.config.studies]
        if "spec" in cls.param:
            kw["spec"] = str(self.spec)
        if "time_axis" in cls.param and any(name in UNDER for name in self.config.panes):
            kw["time_axis"] = False  # the panes under it show it (on a transform's lines too)
        if "height" in cls.param and self.height:
            under = sum(name in UNDER for name in self.config.panes) * (UNDER_HEIGHT + 10)
            if cls.__name__ == "PriceChart":
                kw["pane_height"] = self._pane_height(cls, under)
            kw["height"] = max(self.height - under - self._below_price(cls, kw.get("pane_height")),
                               150)
        elif "height" in cls.param and self.fill and cls.param.height.allow_None:
            kw["height"] = None
        if self.static:
            if "static" in cls.param:
                kw["static"] = True
            if "visible_bars" in cls.param:
                kw["visible_bars"] = max(len(self.history), cls.param.visible_bars.bounds[0])
            if "height" in cls.param and cls.param.height.allow_None:
                kw["height"] = None  # fills the page
        return cls(**kw)

    def _study_panes(self) -> int:
        """The chart's studies drawn in a pane of their own."""
        from indicators.catalogue import CATALOGUE

        return sum(1 for s in self.config.studies if s["name"] in CATALOGUE
                   and CATALOGUE.get(s["name"]).draws == "pane")

    def _pane_height(self, cls, under: int) -> int:
        """Pixels of each of a fixed-height price chart's volume and study panes: their default,
        less when they would leave the price less than half the chart (90 at least: the last
        one holds the time axis too)."""
        panes = 1 + self._study_panes()
        room = 0.5 * self.height - under - 50
        return int(min(cls.param.pane_height.default, max(90, room / panes)))

    def _below_price(self, cls, pane_height: int | None = None) -> int:
        """Pixels of a fixed-height chart under its price figure: the readout and volume, and
        each study drawn in a pane of its own (else they fall outside the chart's height)."""
        if cls.__name__ != "PriceChart":
            return 60
        return 50 + (1 + self._study_panes()) * (pane_height or cls.param.pane_height.default)

    def _make_panes(self) -> list:
        """The price-aligned panes asked for that exist (they share the main view's prices)."""
        panes = []
        for name in self.config.panes:
            cls = _pane_class(name)
            if cls is None:
                log.info("pane %s is not available yet", name)
                continue
            kw = dict(instrument=self.instrument, theme=self.config.theme,
                      y_range=getattr(self.view, "y_range", None), crosshair=self.crosshair)
            if "x_range" in _params(cls.__init__):
                kw["x_range"] = self.x_range
            panes.append(cls(**kw))
        return panes

    @property
    def figure(self):
        """The main figure (drawings go on it): the view's ``figure``, else the figure of its
        Bokeh layout that draws its price range."""
        fig = getattr(self.view, "figure", None)
        if fig is not None or self.view is None:
            return fig
        from bokeh.models import Plot
        pane = self.view.__panel__()
        root = getattr(pane, "object", None)
        if root is None:
            return None
        y_range = getattr(self.view, "y_range", None)
        plots = list(root.select({"type": Plot}))
        return next((p for p in plots if p.y_range is y_range), plots[0] if plots else None)

    def _attach_drawings(self):
        try:
            from dashboards.components.drawings import Drawings
        except ImportError:
            return
        if self.figure is not None:
            self.drawings = Drawings(self.figure, self.config, self.bar_times, self._line_starts)
            self._placed = self._drawings_key()

    def _line_starts(self) -> np.ndarray | None:
        """Kagi, P&F, Line Break: the open times of the bars that began each line (x 0, 1, ...);
        else None (x is the bar)."""
        starts = getattr(self.view, "line_starts", None)
        return starts() if starts is not None else None

    def _drawings_key(self) -> tuple | None:
        """What a chart of lines places its drawings by (the bars shown, the lines' starts): a
        drawing in the last line or past it moves when these change; None on a bar chart."""
        starts = self._line_starts()
        return None if starts is None else (len(self._bars), starts.tobytes())

    def _follow_drawings(self) -> None:
        """Live, on a chart of lines: drawings placed again when the bars or lines changed
        (by their times; only the sources whose positions moved are sent)."""
        if self.drawings is None or not self.config.drawings:
            return
        key = self._drawings_key()
        if key is not None and key != self._placed:
            self._placed = key
            self.drawings.restore(changed_only=True)

    def bar_times(self) -> tuple[np.ndarray, pd.DatetimeIndex]:
        """(bar numbers, open times) of the bars shown: what drawings convert between."""
        bars = self.shown_bars
        return np.arange(self.first_x, self.first_x + len(bars)), pd.DatetimeIndex(bars["ts"])

    # --- data ---------------------------------------------------------------------------------
    @property
    def history(self) -> pd.DataFrame:
        """The bars shown, as read (plain, not Heikin-Ashi), then as live updates grew them
        (:class:`~dashboards.growing_frame.GrowingFrame`: joined when read, not per update)."""
        return self._bars.frame

    @history.setter
    def history(self, bars: pd.DataFrame) -> None:
        self._bars = GrowingFrame(bars)

    @property
    def history_cells(self) -> pd.DataFrame:
        """The footprint cells of :attr:`history`, likewise (a day's cells are ~24,000 rows:
        cutting and joining them at every update, in every session, was most of a session's
        work)."""
        return self._cells.frame

    @history_cells.setter
    def history_cells(self, cells: pd.DataFrame) -> None:
        self._cells = GrowingFrame(cells)

    def _note_update(self, update: Update, closed_before: int) -> None:
        """An update's bars and cells: those of the bars it closed kept, the forming bar's
        replaced; the first update since a load re-sends the bars from the forming one."""
        self._bars.grow(update.closed, update.current, lambda bars: bars.iloc[:closed_before])
        if len(update.closed_footprint) or len(update.current_footprint):
            first = update.closed if len(update.closed) else update.current
            # (read once, by the first update since a load: not per update)
            self._cells.grow(update.closed_footprint, update.current_footprint,
                             lambda cells: cells[cells["ts"] < first["ts"].iloc[0]]
                             if len(first) else cells)

    def _read(self, end=None, start=None, last=FIRST_BARS):
        """The ``last`` bars before ``end`` (None: the newest), or every bar from ``start`` (at
        most :data:`MAX_BARS`), their cells when drawn, and their CVD candles when drawn
        (:func:`cvd_wicks`; else None)."""
        md, symbol = self.marketdata, self.config.symbol
        plain = self.spec.base
        bars = md.bars(symbol, plain, start=start, end=end, last=last)
        if last is None and len(bars) > MAX_BARS:
            raise ValueError(f"the view range starts {len(bars):,} bars back; a chart holds "
                             f"at most {MAX_BARS:,}: open a later range or longer bars")
        cells = md.footprint(symbol, plain, start=bars["ts"].iloc[0], end=end) if (
            len(bars) and self.wants_cells) else empty_frame(FOOTPRINT_COLUMNS)
        # trades stored between the two reads: cells of a bar newer than the bars read
        cells = cells[cells["ts"] <= bars["ts"].iloc[-1]] if len(cells) else cells
        bars = bars.reset_index(drop=True)
        wicks = (cvd_wicks(md, symbol, bars, md.store.instrument(symbol).session)
                 if "cvd_candles" in self.config.panes else None)
        return bars, cells.reset_index(drop=True), wicks

    @property
    def wants_cells(self) -> bool:
        """Whether footprint cells are read: only for what draws them (the footprint, the
        volume profile)."""
        return self.config.chart_type == "footprint" or "volume_profile" in self.config.panes

    def _display(self, bars: pd.DataFrame) -> pd.DataFrame:
        return heikin_ashi(bars) if self.spec.heikin_ashi else bars

    @property
    def shown_bars(self) -> pd.DataFrame:
        return self.history

    def _load_history(self):
        """Load the history read, the view range set first (views fit their prices to it)."""
        self.first_x = 0
        n = len(self.history)
        if self.config.view_range is not None and n:
            start, end = self.config.view_range
            ts = pd.DatetimeIndex(self.history["ts"])
            self.x_range.update(start=float(ts.searchsorted(start)) - 0.5,
                                end=float(ts.searchsorted(end)) + 0.5)
        elif self.static:  # the file holds what was read, all of it in view
            self.x_range.update(start=-0.5, end=n - 0.5)
        else:
            shown = SHOWN_FOOTPRINT if self.config.chart_type == "footprint" else SHOWN_BARS
            self.x_range.update(start=max(n - shown, 0) - 0.5, end=n + 1.5)
        self._load_view()
        if self.config.view_range is None and not self.static and n and hasattr(
                self.view, "first_shown"):  # the footprint: as many bars as its numbers fit
            self.x_range.update(start=self.view.first_shown(n) - 0.5, end=n + 1.5)
            self.view.range_set()

    def _load_view(self):
        self._load_main()
        self._load_panes()

    def _load_main(self, **kw) -> None:
        """Load the view, keeping the view range (a view may open on its last bars) and the
        drawings (on its new figure, if it built one)."""
        kept = (self.x_range.start, self.x_range.end)
        self._view_load(self.view, **kw)
        if getattr(self.view, "x_is_bar", True):
            self.x_range.update(start=kept[0], end=kept[1])
        if self.drawings is not None and self.figure is not self.drawings.fig:
            self.drawings.attach(self.figure)

    def _view_load(self, view, **kw) -> None:
        """Load the history into ``view``; a view that takes the forming bar apart
        (``current=``, the footprint) gets it apart."""
        shown, cells = self._display(self.history), self.history_cells
        if self.live_studies and "studies" in _params(view.load):
            kw = {"studies": self.live_studies, **kw}
        if "current" not in _params(view.load):
            view.load(shown, cells, **kw)
            return
        n = self._closed_count()
        forming = shown.iloc[n:].reset_index(drop=True)
        if len(forming) and len(cells):
            now = cells["ts"] >= forming["ts"].iloc[0]
            closed_cells, forming_cells = cells[~now], cells[now]
        else:
            closed_cells, forming_cells = cells, cells.iloc[:0]
        view.load(shown.iloc[:n].reset_index(drop=True), closed_cells.reset_index(drop=True),
                  current=forming, current_footprint=forming_cells.reset_index(drop=True), **kw)

    def _load_panes(self):
        for pane in self.panes:
            pane.load(self._display(self.history), self.history_cells)
        for pane in self.under:  # (with the CVD candles' wicks: read, then the hub's)
            self._view_load(pane, first_x=self.first_x, studies=self._under_studies())

    def _under_studies(self) -> dict:
        """The hub's study rows, the CVD candles' in front of them those read with the bars
        (:attr:`cvd_wicks`: the hub's start with its trading day; later rows win by time)."""
        studies = dict(self.live_studies)
        if self.cvd_wicks is not None:
            hub = studies.get("cvd_candles")
            studies["cvd_candles"] = _cat_rows(self.cvd_wicks, hub)
        return studies

    def on_message(self, message) -> None:
        """A hub message: a Snapshot joins the history and reloads; an Update is applied."""
        if isinstance(message, Snapshot):
            self.live_studies = dict(message.studies)
            live = pd.concat([f for f in (message.closed, message.current) if len(f)]
                             or [message.current], ignore_index=True)
            cells = pd.concat([f for f in (message.closed_footprint, message.current_footprint)
                               if len(f)] or [message.current_footprint], ignore_index=True)
            if len(live):
                first = live["ts"].iloc[0]
                old = self.history[self.history["ts"] < first]
                old_cells = self.history_cells[self.history_cells["ts"] < first]
                edge = self._edge()
                self.history = pd.concat([old, live[list(BAR_COLUMNS)]], ignore_index=True) \
                    if len(old) else live[list(BAR_COLUMNS)].reset_index(drop=True)
                self.history_cells = pd.concat([old_cells, cells], ignore_index=True) \
                    if len(old_cells) else cells.reset_index(drop=True)
                self._forming = len(message.current)
                self._load_view_at(self.first_x)
                self._follow_edge(edge)
            if self.book is not None:
                self.book.apply(message)
        elif isinstance(message, Update):
            update = message
            for label, changes in message.studies.items():
                if label in self.live_studies and not changes.key:
                    self.live_studies[label] = changes.applied(self.live_studies[label])
            if self.spec.heikin_ashi:
                update = self._heikin_ashi(update)
            closed_before = self._closed_count()
            edge = self._edge()
            self._note_update(message, closed_before)
            self._forming = len(message.current)
            self.view.apply(update)
            for pane in [*self.panes, *self.under]:
                pane.apply(update)
            if self.book is not None:
                self.book.apply(message)
            self._follow_edge(edge)
            self._follow_drawings()

    def _closed_count(self) -> int:
        return len(self._bars) - min(self._forming, len(self._bars))

    def _load_view_at(self, first_x: int):
        """Load the whole history numbered from ``first_x``; a view that numbers from 0 only
        gets the history from 0 and the view range moves with the bars (Kagi, P&F, Line Break:
        with the lines in view, found again by their times)."""
        lines = self._lines_in_view()
        if first_x and "first_x" not in _params(self.view.load):
            self.x_range.update(start=self.x_range.start - first_x,
                                end=self.x_range.end - first_x)
            first_x = self.first_x = 0
        self._load_main(**({"first_x": first_x} if first_x else {}))
        self._load_panes()
        if lines is not None:
            self._show_lines(*lines)
        if self.drawings is not None:
            self.drawings.restore()  # the bars may have new numbers
            self._placed = self._drawings_key()

    def _lines_in_view(self) -> tuple | None:
        """A view whose x counts its own lines: (the open time of the line at the view's
        start, the view's start and end as offsets from it); else None."""
        starts = self._line_starts()
        if starts is None or not len(starts):
            return None
        i = int(np.clip(math.ceil(self.x_range.start), 0, len(starts) - 1))
        return int(starts[i]), self.x_range.start - i, self.x_range.end - i

    def _show_lines(self, start_ns: int, before: float, after: float) -> None:
        """Put the line that began at ``start_ns`` (or the first after it) back at the view's
        start: more history numbers the lines again (they open on their last lines)."""
        starts = self._line_starts()
        if starts is None or not len(starts):
            return
        i = int(min(np.searchsorted(starts, start_ns), len(starts) - 1))
        self.x_range.update(start=i + before, end=i + after)

    def _last_x(self) -> int:
        """x of the newest bar, or on Kagi, P&F and Line Break of the newest line (one before
        the first when there is none)."""
        starts = self._line_starts()
        if starts is not None:
            return len(starts) - 1
        return self.first_x + len(self._bars) - 1

    def _edge(self) -> tuple | None:
        """When the newest bar or line is in view (the live edge): its x and the view's start
        and end from it; else None (scrolled back)."""
        last = self._last_x()
        if self.x_range.end < last:
            return None
        return last, self.x_range.start - last, self.x_range.end - last

    def _follow_edge(self, edge: tuple | None) -> None:
        """Keep the newest bar or line where it was in the view when it was at the ``edge``
        (the chart scrolls with the market; a line the forming bar previewed may go again)."""
        if edge is None:
            return
        last, start, end = edge
        now = self._last_x()
        if now != last:
            self.x_range.update(start=now + start, end=now + end)

    def _heikin_ashi(self, update: Update) -> Update:
        closed = self.history.iloc[:self._closed_count()]
        prev = None
        if len(closed):
            last = heikin_ashi(closed.iloc[-min(len(closed), 200):]).iloc[-1]
            prev = (last["open"], last["close"])
        both = pd.concat([f for f in (update.closed, update.current) if len(f)]
                         or [update.current], ignore_index=True)
        ha = heikin_ashi(both, prev)
        return replace(update, closed=ha.iloc[:len(update.closed)].reset_index(drop=True),
                       current=ha.iloc[len(update.closed):].reset_index(drop=True))

    def _scrolled(self, attr, old, new) -> None:
        if (self._loading or not self.more_history or not len(self.history)
                or self.view is None or new > self.first_x + NEAR_START):
            return
        self.load_older()

    def load_older(self) -> None:
        """Read the bars before the first shown and put them in front (now without ``run``,
        else in a later tick)."""
        if self._loading:
            return
        self._loading = True
        first_ts = self.history["ts"].iloc[0]
        self._submit(self._read, first_ts, then=lambda read: self._prepend(first_ts, *read))

    def _prepend(self, first_ts, bars, cells, wicks=None) -> int:
        """Put ``bars`` (read before ``first_ts``) in front; how many there were."""
        self._loading = False
        if not len(self.history) or self.history["ts"].iloc[0] != first_ts:
            return 0  # the chart was reloaded meanwhile
        bars = bars[bars["ts"] < first_ts]
        if not len(bars):
            self.more_history = False
            return 0
        self.history = pd.concat([bars, self.history], ignore_index=True)
        self.history_cells = pd.concat([cells[cells["ts"] < first_ts], self.history_cells],
                                       ignore_index=True)
        self.first_x -= len(bars)
        if wicks is not None:
            self.cvd_wicks = _cat_rows(wicks[wicks["ts"] < first_ts], self.cvd_wicks)
        if hasattr(self.view, "prepend"):
            shown = self._display(self.history).iloc[:len(bars)]
            self.view.prepend(shown, cells)
            self._load_panes()
        else:  # a view that can only load whole: numbered from 0 again, the view shifted
            self._load_view_at(self.first_x)
        return len(bars)

    # --- state --------------------------------------------------------------------------------
    @param.depends("config.theme", watch=True)
    def _theme(self):
        for view in ([self.view, *self.panes, *self.under] if self.view is not None else []):
            view.theme = self.config.theme
        if self.book is not None:
            self.book.set_theme(self.config.theme)

    def state(self) -> ChartConfig:
        """The config with the view range and drawings as shown now. A view that shows the
        newest bar is "the latest" (``view_range`` None): it follows the market, and a link
        to it does too. Kagi, P&F and Line Break have none: their x counts lines, not bars (read
        as bars, the first lines gave the first bars' times), and they open on their own."""
        n = len(self._bars)
        if not getattr(self.view, "x_is_bar", True):
            self.config.view_range = None
        elif n and self.x_range.end >= self.first_x + n - 1:
            self.config.view_range = None  # the newest bar in view (no times read: every second)
        elif n:
            xs, ts = self.bar_times()

            def at(i):
                return ts[int(np.clip(i - self.first_x, 0, len(ts) - 1))]
            # the first and last bar wholly in view (a range loaded from times gives them back)
            start, end = at(math.ceil(self.x_range.start)), at(math.floor(self.x_range.end))
            self.config.view_range = (start, end) if start < end else None
        if self.drawings is not None:
            self.config.drawings = self.drawings.to_state()
        return self.config

    def close(self) -> None:
        self._waker.closed = True
        if self._callback is not None:
            self._callback.stop()
        self.reads.close()
        if self.feed is not None:
            self.feed.close()

    def __panel__(self):
        return self._layout


def cvd_wicks(marketdata, symbol: str, bars: pd.DataFrame, session) -> pd.DataFrame | None:
    """CVD candles of ``bars`` (``indicators.orderflow.cvd_candles``, the batch form of the hub's
    ``cvd_candles`` study) from their stored trades, for the wicks of the bars before the hub's
    trading day: a wick is the running delta's extremes inside the bar, which only the trades
    hold (the cells have lost their order). None when the trades do not make the bars (bars
    received built), so those bars are drawn without wicks rather than with wrong ones."""
    from indicators.orderflow import cvd_candles

    if not len(bars):
        return None
    trades = marketdata.trades(symbol, start=bars["ts"].iloc[0])
    # the bars' trades, in order (trades stored since the bars were read are left over)
    trades = trades.iloc[:int(bars["trades"].sum())]
    try:
        return cvd_candles(bars, trades=trades, session=session)
    except ValueError as exc:
        log.info("CVD candles of %s without wicks before the live day: %s", symbol, exc)
        return None


def _cat_rows(front: pd.DataFrame | None, back: pd.DataFrame | None) -> pd.DataFrame | None:
    """Two frames of rows one after the other (either may be None or empty), index 0..n-1."""
    parts = [f for f in (front, back) if f is not None and len(f)]
    if not parts:
        return front if front is not None else back
    return pd.concat(parts, ignore_index=True)


def _params(fn) -> tuple[str, ...]:
    import inspect
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()
