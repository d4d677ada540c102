"""The volume profile pane: volume per price row beside the price chart (sharing its price axis),
with its POC, value area, high-/low-volume nodes and naked POCs; and the developing POC / value
area as lines on the price chart.

The studies are those of :mod:`indicators.profile` (``LiveVolumeProfile``, ``volume_profile``,
``session_profiles``, ``volume_nodes``) and :func:`indicators.orderflow.naked_pocs`; nothing here
computes a POC or a value area itself.

Ranges (``range``)
* ``session``: the latest trading day in the pane; :meth:`VolumeProfilePane.chart_overlay` draws
  every day's profile on the price chart, each at its own first bar and as wide as a share of the
  day's bars (TradingView's session volume profile).
* ``visible``: the bars in the chart's view (its ``x_range``), recomputed when the view moves to
  other bars.
* ``composite``: every bar loaded.

Rows: ``row_ticks`` ticks per row; 0 (the default) chooses a "nice" size at load so that the
latest session has at most :data:`AUTO_ROWS` rows (1 tick for ES, 100 for a bitcoin day).

Live: ``apply(update)`` feeds the update to the live profile and shows the result through
:class:`.live_sources.KeyedRows`: rows whose values changed are patched, rows new to the profile
are streamed; a new session (or another visible range) replaces the rows. Served, the latest
session's profile is not computed here: the chart asks the hub for :meth:`hub_study` (the
catalogue's ``volume_profile``: the hub's followers start with the trading day) and the pane
follows its rows (:meth:`follow`), so every pane of a symbol with the same rows and value area
shares one follower (one computation per update, whatever the number of sessions).
Naked POCs: those of completed trading days (``naked_pocs(..., session)``) that no later bar has
traded through; live, a bar whose cells reach a naked POC's row takes it off (the same rule).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import BoxAnnotation, ColumnDataSource, Range1d, Span, Title
from bokeh.transform import factor_cmap

from indicators.orderflow import naked_pocs
from indicators.profile import LiveVolumeProfile, VolumeProfile, volume_nodes, volume_profile
from tradeflow.model import FOOTPRINT_COLUMNS, Instrument, empty_frame

from .axes import X
from .live_sources import BarLines, BarNumbers, KeyedRows, set_small
from .theme import figure, style, theme_of

__all__ = ["VolumeProfilePane", "DevelopingOverlay", "developing_overlay", "row_prices",
           "zone_palette", "auto_row_ticks", "ZONES", "AUTO_ROWS"]

ZONES = ("poc", "va", "out")  # a row is the POC, in the value area, or outside it
AUTO_ROWS = 300  # rows of an automatic row size: a bar of a pixel or two each
_NICE = (1, 2, 4, 5, 8, 10, 20, 25, 40, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10_000)
VIEW_DELAY_MS = 150  # a visible-range profile follows the view this long after it moved
SESSION_WIDTH = 0.35  # a session profile on the chart spans this share of the day's bars
_TOOLS = dict(tools="ypan,ywheel_zoom,reset,save", active_drag="ypan", active_scroll="ywheel_zoom")


def zone_palette(theme) -> list[str]:
    """Colours of :data:`ZONES`: the POC row, value-area rows, the rows outside."""
    return [theme.poc, theme.accent, theme.neutral]


def row_prices(keys, rows: int, tick_size: float) -> tuple[np.ndarray, float]:
    """Centre price of each row keyed by its lowest tick (rows of ``rows`` ticks), and the rows'
    height in price."""
    keys = np.asarray(keys, dtype="float64")
    return (keys + (rows - 1) / 2) * tick_size, rows * tick_size


def pane_figure(theme, y_range, width: int, title: str, crosshair=None):
    """A narrow figure beside the price chart: shares its ``y_range`` (and ``crosshair`` when
    given), pans and zooms in price."""
    fig = figure(theme, y_range=y_range, x_range=Range1d(0, 1), width=width, crosshair=crosshair,
                 sizing_mode="stretch_height", title=title, **_TOOLS)
    fig.xaxis.visible = False
    fig.xgrid.visible = False
    fig.yaxis.visible = False  # the price chart beside it has the labels
    fig.min_border_left = fig.min_border_right = 4
    return fig


def node_window(levels: int) -> tuple[int, int]:
    """(smooth, span) of ``volume_nodes`` for a profile of ``levels`` rows: a twelfth and a tenth
    of the rows (at least 5 and 3), so that a profile shows its few main nodes whatever its
    row size, not one per wiggle of single-tick rows."""
    return max(5, levels // 12 | 1), max(3, levels // 10)


def auto_row_ticks(bars: pd.DataFrame, instrument: Instrument, most: int) -> int:
    """Ticks per row so that the latest trading day's range in ``bars`` has at most ``most``
    rows (a "nice" number: 1, 2, 4, 5, 8, 10, 20, 25, ...)."""
    if not len(bars):
        return 1
    day = trading_days(bars["ts"], instrument.session)
    latest = bars[day == day.max()]
    span = int(instrument.to_tick(latest["high"].max())
               - instrument.to_tick(latest["low"].min())) + 1
    return next((n for n in _NICE if span / n <= most), _NICE[-1])


def trading_days(ts, session) -> np.ndarray:
    """Trading day (int64 ns of midnight UTC) of each time."""
    return session.trading_date(pd.DatetimeIndex(ts)).asi8


def _zones(levels: pd.DataFrame) -> np.ndarray:
    return np.where(levels["poc"], "poc", np.where(levels["value_area"], "va", "out"))


def _with_x(cells: pd.DataFrame, bars_ts, xs) -> pd.DataFrame:
    """``cells`` with the x of their bar (the last bar of that open time)."""
    bars_ns = pd.DatetimeIndex(bars_ts).as_unit("ns").asi8
    cell_ns = pd.DatetimeIndex(cells["ts"]).as_unit("ns").asi8
    at = np.searchsorted(bars_ns, cell_ns, side="right") - 1
    return cells.assign(**{X: np.asarray(xs, dtype="int64")[np.maximum(at, 0)]})


class SharedDay:
    """The latest trading day's profile as a hub's follower computes it: what the pane's own
    ``LiveVolumeProfile`` would answer (``date``, ``profile()``), taken from the follower's
    rows (:meth:`take`) rather than computed. The date follows the cells fed; the hub drops a
    stream with studies at a new trading day (its charts reload), so the rows are that day's."""

    def __init__(self, date, profile, session, rows: int):
        self.date, self._profile = date, profile
        self.session, self.rows = session, rows

    def update(self, closed, current) -> None:
        cells = current if current is not None and len(current) else closed
        if cells is not None and len(cells):
            self.date = self.session.trading_date(pd.DatetimeIndex(cells["ts"].iloc[-1:]))[0]

    def take(self, levels: pd.DataFrame) -> None:
        """The follower's rows (the catalogue's ``volume_profile`` layout) as the profile."""
        if not len(levels):
            return
        levels = levels.sort_values("tick", ignore_index=True)
        tick = levels["tick"].to_numpy("int64")
        volume = levels["volume"].to_numpy("float64")
        va = levels["value_area"].to_numpy(bool)
        self._profile = VolumeProfile(
            levels[["tick", "volume", "ask_volume", "bid_volume", "trades", "poc",
                    "value_area"]],
            int(tick[levels["poc"].to_numpy(bool)][0]), int(tick[va].max()), int(tick[va].min()),
            float(volume.sum()), float(volume[va].sum()), self.rows)

    def profile(self):
        return self._profile


class VolumeProfilePane(pn.viewable.Viewer):
    """Volume per price row beside a price chart (see the module's docstring)."""

    instrument = param.ClassSelector(class_=Instrument, doc="tick size, time zone, session")
    theme = param.Selector(default="dark", objects=["dark", "light"])
    range = param.Selector(default="session", objects=["session", "visible", "composite"],
                           doc="the bars profiled: the latest session, the bars in view, all")
    color_by = param.Selector(default="volume", objects=["volume", "bid_ask", "delta"],
                              doc="rows in value-area colours, split bid/ask, or by delta")
    value_area_pct = param.Number(default=70, bounds=(1, 100), doc="value area, % of volume")
    row_ticks = param.Integer(default=0, bounds=(0, 10_000),
                              doc="ticks per price row; 0: automatic (at most 300 rows a day)")
    nodes = param.Boolean(default=True, doc="mark high- and low-volume nodes")
    naked = param.Boolean(default=True, doc="mark the naked POCs of earlier sessions")
    width = param.Integer(default=220, bounds=(80, 1000))

    def __init__(self, y_range=None, x_range=None, crosshair=None, bars=None, footprint=None,
                 **params):
        super().__init__(**params)
        if self.instrument is None:
            raise ValueError("VolumeProfilePane: give the instrument (tick size and session)")
        self.x_range = x_range  # the chart's bar axis, for range="visible"
        self.y_range = y_range if y_range is not None else Range1d(0, 1)
        self.rows = ColumnDataSource(self._no_rows())
        self.node_rows = ColumnDataSource({"y": [], "x": [], "label": []})
        self.naked_rows = ColumnDataSource({"y": [], "x": [], "label": []})
        self.session_rows = ColumnDataSource({"key": [], "y": [], "height": [], "left": [],
                                              "right": [], "zone": [], "alpha": []})
        self._shown = KeyedRows(self.rows, "key")
        self._sessions_shown = KeyedRows(self.session_rows, "key")
        self.numbers = BarNumbers()
        self.figure = pane_figure(theme_of(self.theme), self.y_range, self.width,
                                  "Volume profile", crosshair)
        self.rows_title = Title(text="", text_font_size="10px", text_font_style="normal")
        self.figure.add_layout(self.rows_title, "above")
        self._draw()
        self._view = None  # (first, last) bar in view, range="visible"
        self._view_pending = False  # a refresh for a moved view is scheduled
        self._auto_rows = 1  # the automatic row size of the bars loaded
        self._label = None  # the hub study followed (its label in messages), see follow()
        self._bars = self._footprint = None
        if x_range is not None:
            x_range.on_change("start", self._on_view)
            x_range.on_change("end", self._on_view)
        self._reset()
        if bars is not None:
            self.load(bars, footprint)

    def __panel__(self):
        return pn.pane.Bokeh(self.figure, sizing_mode="stretch_height", width=self.width)

    # -- drawing

    @staticmethod
    def _no_rows() -> dict:
        return {c: [] for c in ("key", "y", "height", "volume", "ask", "bid", "zone", "side",
                                "alpha")}

    def _draw(self) -> None:
        th, fig = theme_of(self.theme), self.figure
        self.va_box = BoxAnnotation(fill_alpha=0.12, line_alpha=0, level="underlay")
        fig.add_layout(self.va_box)
        bar = dict(y="y", height="height", source=self.rows, line_color=None, fill_alpha="alpha")
        self.zone_colors = factor_cmap("zone", palette=zone_palette(th),
                                       factors=list(ZONES))
        self.side_colors = factor_cmap("side", palette=[th.up, th.down], factors=["up", "down"])
        self.by_volume = fig.hbar(left=0, right="volume", fill_color=self.zone_colors, **bar)
        self.by_bid = fig.hbar(left=0, right="bid", fill_color=th.down, **bar)
        self.by_ask = fig.hbar(left="bid", right="volume", fill_color=th.up, **bar)
        self.by_delta = fig.hbar(left=0, right="volume", fill_color=self.side_colors, **bar)
        self.poc_line = Span(dimension="width", line_width=1.5, location=None)
        fig.add_layout(self.poc_line)
        self.node_lines = fig.hspan(y="y", source=self.node_rows, line_dash="dotted",
                                    line_width=1)
        self.node_text = fig.text(x="x", y="y", text="label", source=self.node_rows,
                                  text_font_size="8pt", text_align="right",
                                  text_baseline="bottom")
        self.naked_lines = fig.hspan(y="y", source=self.naked_rows, line_dash="dashed",
                                     line_width=1)
        self.naked_text = fig.text(x="x", y="y", text="label", source=self.naked_rows,
                                   text_font_size="8pt", text_align="right", text_baseline="top")
        self._restyle()
        self._show_mode()

    @param.depends("theme", watch=True)
    def _restyle(self) -> None:
        th = theme_of(self.theme)
        style(self.figure, th)
        self.rows_title.text_color = th.muted
        self.va_box.fill_color = th.value_area
        self.zone_colors["transform"].palette = zone_palette(th)
        self.side_colors["transform"].palette = [th.up, th.down]
        self.by_bid.glyph.fill_color, self.by_ask.glyph.fill_color = th.down, th.up
        self.poc_line.line_color = th.poc
        self.node_lines.glyph.line_color = th.accent
        self.node_text.glyph.text_color = th.muted
        for label in (self.node_text, self.naked_text):  # legible over bars and each other
            label.glyph.background_fill_color = th.background
            label.glyph.background_fill_alpha = 0.75
        self.naked_lines.glyph.line_color = th.poc
        self.naked_text.glyph.text_color = th.poc
        for r in getattr(self, "_chart_renderers", ()):
            r.glyph.fill_color = factor_cmap("zone", palette=zone_palette(th),
                                             factors=list(ZONES))

    @param.depends("color_by", "nodes", "naked", watch=True)
    def _show_mode(self) -> None:
        mode = self.color_by
        self.by_volume.visible = mode == "volume"
        self.by_bid.visible = self.by_ask.visible = mode == "bid_ask"
        self.by_delta.visible = mode == "delta"
        self.node_lines.visible = self.node_text.visible = self.nodes
        self.naked_lines.visible = self.naked_text.visible = self.naked

    def chart_overlay(self, fig) -> list:
        """Draw every session's profile on the price figure ``fig`` (x = bar number), each from
        the day's first bar; returns the renderers."""
        th = theme_of(self.theme)
        r = fig.hbar(y="y", height="height", left="left", right="right", source=self.session_rows,
                     fill_color=factor_cmap("zone", palette=zone_palette(th),
                                            factors=list(ZONES)),
                     fill_alpha="alpha", line_color=None, level="underlay")
        self._chart_renderers = [r]
        return [r]

    # -- data

    def _reset(self) -> None:
        self._cells = empty_frame(FOOTPRINT_COLUMNS + (X,))  # closed bars' cells, with x
        self._current = empty_frame(FOOTPRINT_COLUMNS + (X,))  # the forming bar's
        self._session = LiveVolumeProfile(self.instrument.session, self.row_size, self._share)
        self._all = LiveVolumeProfile(None, self.row_size, self._share)
        self._naked = pd.DataFrame({"date": pd.DatetimeIndex([], tz="UTC"),
                                    "poc": np.empty(0, "int64")})
        self._days = {}  # trading day -> (first x, last x)
        self._done_days = {}  # trading day -> profile rows of a finished day on the chart

    def hub_study(self) -> tuple[str, dict]:
        """The catalogue study whose hub follower gives the latest session's profile with
        this pane's settings (ask after a load: the automatic row size is chosen there)."""
        return "volume_profile", {"rows": self.row_size, "value_area": self._share}

    def follow(self, label: str | None) -> None:
        """Take the latest session's profile from the hub messages' study ``label`` (the
        :meth:`hub_study` asked for) from now on; None: compute it here again."""
        was, self._label = self._label, label
        if label is not None and not isinstance(self._session, SharedDay):
            self._share_day()
        elif label is None and was is not None and self._bars is not None:
            self.load(self._bars, self._footprint)

    def _share_day(self) -> None:
        """The latest day's profile from the hub's rows from now on (until they come: the one
        loaded)."""
        day = self._session
        self._session = SharedDay(day.date, day.profile() if day.date is not None else None,
                                  self.instrument.session, self.row_size)

    @property
    def following(self) -> bool:
        return self._label is not None

    @property
    def row_size(self) -> int:
        """Ticks per row in use: ``row_ticks``, or the automatic size chosen at load."""
        return self.row_ticks or self._auto_rows

    @property
    def _share(self) -> float:
        return self.value_area_pct / 100

    def load(self, bars: pd.DataFrame, footprint: pd.DataFrame | None = None,
             studies=None) -> None:
        """Show the profile of ``bars`` and their ``footprint`` cells (model layouts); the last
        bar is taken as the one still forming."""
        if footprint is None:
            raise ValueError("VolumeProfilePane.load: the footprint cells are needed (volume per "
                             "price comes from them)")
        self._bars, self._footprint = bars, footprint
        if not self.following:  # (else kept: the hub's follower has these rows)
            self._auto_rows = auto_row_ticks(bars, self.instrument, AUTO_ROWS)
        self._reset()
        xs = self.numbers.load(bars, footprint)
        if not len(bars) or not len(footprint):
            self._shown.show(self._no_rows())
            return
        cells = _with_x(footprint.sort_values("ts", kind="stable"), bars["ts"], xs)
        last = cells[X].to_numpy() == xs[-1]
        self._feed(cells[~last], cells[last])
        if self.following:  # loaded here once; live, the hub's rows
            self._share_day()
        self._naked = self._load_naked(cells)
        self._refresh()

    def apply(self, update) -> None:
        """Follow a hub ``Update``: the forming profile's changed rows are patched."""
        step = self.numbers.advance(update)
        closed = _with_x(step.closed_cells, step.closed["ts"], step.closed_x) \
            if len(step.closed_cells) else self._current.iloc[:0]
        current = _with_x(step.current_cells, step.current["ts"], step.current_x) \
            if len(step.current_cells) else self._current.iloc[:0]
        self._feed(closed, current)
        if self.following:
            changes = (getattr(update, "studies", None) or {}).get(self._label)
            if changes is not None:
                self._session.take(changes.rows)
        self._refresh()

    @param.depends("value_area_pct", "row_ticks", watch=True)
    def _reload(self) -> None:
        """Other settings: the hub's follower has the old ones, so computed here from now."""
        self._label = None
        if getattr(self, "_bars", None) is not None:
            self.load(self._bars, self._footprint)

    @param.depends("range", watch=True)
    def _on_range(self) -> None:
        self._view = None
        if self.range == "composite":  # (kept only while shown)
            self._all = LiveVolumeProfile(None, self.row_size, self._share)
            self._all.update(self._cells, self._current)
        self._refresh()

    def _feed(self, closed: pd.DataFrame, current: pd.DataFrame) -> None:
        """Add closed cells (in time order) and make ``current`` the forming bar's cells."""
        session = self.instrument.session
        both = pd.concat([closed, current]) if len(current) else closed
        if len(both):
            days = trading_days(both["ts"], session)
            for day, xs in pd.Series(both[X].to_numpy()).groupby(days):
                first, last = self._days.get(day, (int(xs.min()), int(xs.max())))
                self._days[day] = (min(first, int(xs.min())), max(last, int(xs.max())))
        # per day, in order: a day that ends hands its POC to the naked ones, and the bars of a
        # later day trade through the naked POCs they reach
        c_days = trading_days(closed["ts"], session) if len(closed) else np.empty(0, "int64")
        parts = [(closed[c_days == d], None) for d in pd.unique(c_days)] + [(None, current)]
        for part, cur in parts:
            cells = part if part is not None else cur
            if len(cells):
                day = int(trading_days(cells["ts"].iloc[:1], session)[0])
                self._day_change(day)
                self._revisit(cells, day)
            self._session.update(part, cur)
        if self.range == "composite":  # (made again from the cells when chosen)
            self._all.update(closed, current)
        if len(closed):
            self._cells = pd.concat([self._cells, closed], ignore_index=True)
        self._current = current

    def _day_change(self, day: int) -> None:
        date = self._session.date
        if date is None or date.value == day:
            return
        profile = self._session.profile()
        self._done_days[date.value] = self._session_rows(date.value, profile)
        self._naked = pd.concat([self._naked, pd.DataFrame({"date": [date], "poc": [profile.poc]})],
                                ignore_index=True)

    def _revisit(self, cells: pd.DataFrame, day: int) -> None:
        """Take off the naked POCs of days before ``day`` that these cells' bars reach."""
        if not len(self._naked):
            return
        n = self.row_size
        rows = np.floor_divide(cells["tick"].to_numpy(dtype="int64"), n)
        ranges = pd.DataFrame({"ts": cells["ts"].to_numpy(), "row": rows}).groupby("ts")["row"]
        lo, hi = ranges.min().to_numpy(), ranges.max().to_numpy()
        poc = self._naked["poc"].to_numpy(dtype="int64") // n
        hit = ((poc[:, None] >= lo[None, :]) & (poc[:, None] <= hi[None, :])).any(axis=1)
        hit &= self._naked["date"].to_numpy(dtype="datetime64[ns]").astype("int64") < day
        self._naked = self._naked[~hit].reset_index(drop=True)

    def _load_naked(self, cells: pd.DataFrame) -> pd.DataFrame:
        """Session POCs of the finished days that are still naked."""
        found = naked_pocs(cells[list(FOOTPRINT_COLUMNS)], self.instrument.session, self.row_size)
        keep = (found["kind"] == "session") & found["naked_until"].isna()
        if self._session.date is not None:
            keep &= found["ts"] < self._session.date
        out = found[keep].reset_index(drop=True)
        return pd.DataFrame({"date": out["ts"], "poc": out["poc"].astype("int64")})

    def profile(self):
        """The profile the pane shows now (``indicators.profile.VolumeProfile``), or None."""
        if self.range == "session":
            return self._session.profile() if self._session.date is not None else None
        if self.range == "composite":
            return self._all.profile() if len(self._cells) or len(self._current) else None
        cells = pd.concat([self._cells, self._current]) if len(self._current) else self._cells
        if self.x_range is not None and len(cells):
            first, last = self._visible()
            x = cells[X].to_numpy()
            cells = cells[(x >= first) & (x <= last)]
        if not len(cells) or not cells["volume"].sum() > 0:
            return None
        return volume_profile(cells, rows=self.row_size, value_area=self._share)

    def _visible(self) -> tuple[int, int]:
        return int(np.ceil(self.x_range.start)), int(np.floor(self.x_range.end))

    def _on_view(self, attr, old, new) -> None:
        if self.range != "visible":
            return
        view = self._visible()
        if view == self._view:
            return
        self._view = view
        doc = self.figure.document
        if doc is None:  # not shown in a served page (a notebook, a test): now
            self._refresh()
        elif not self._view_pending:  # served: once the view has settled a moment (debounced)
            self._view_pending = True
            doc.add_timeout_callback(self._view_settled, VIEW_DELAY_MS)

    def _view_settled(self) -> None:
        self._view_pending = False
        self._refresh()

    def _refresh(self) -> None:
        """Show the profile of the current range, its nodes and naked POCs, and the sessions on
        the chart."""
        profile = self.profile()
        tick = self.instrument.tick_size
        if profile is None:
            self._shown.show(self._no_rows())
            self.poc_line.location = None
            set_small(self.node_rows, {"y": [], "x": [], "label": []})
            return
        lv = profile.levels
        y, h = row_prices(lv["tick"], self.row_size, tick)
        ask, bid = lv["ask_volume"].to_numpy(), lv["bid_volume"].to_numpy()
        zone = _zones(lv)
        self._shown.show({
            "key": lv["tick"].to_numpy(), "y": y, "height": np.full(len(lv), h * 0.85),
            "volume": lv["volume"].to_numpy(), "ask": ask, "bid": bid, "zone": zone,
            "side": np.where(ask >= bid, "up", "down"),
            "alpha": np.where(zone == "out", 0.4, 0.75)})
        top = float(lv["volume"].max())
        end = self.figure.x_range.end
        if top > end / 1.05 or top < end / 2:  # rescaled seldom, so the labels rarely move
            self.figure.x_range.end = end = top * 1.25
        self.poc_line.location = float(row_prices([profile.poc], self.row_size, tick)[0][0])
        self.va_box.bottom = float(row_prices([profile.val], self.row_size, tick)[0][0]) - h / 2
        self.va_box.top = float(row_prices([profile.vah], self.row_size, tick)[0][0]) + h / 2
        nodes = volume_nodes(profile, *node_window(len(lv)))
        set_small(self.node_rows, {"y": row_prices(nodes["tick"], self.row_size, tick)[0],
                                   "x": np.full(len(nodes), end * 0.98),
                                   "label": nodes["kind"].str.upper().to_numpy()})
        set_small(self.naked_rows, {
            "y": row_prices(self._naked["poc"], self.row_size, tick)[0],
            "x": np.full(len(self._naked), end * 0.98),
            "label": [f"nPOC {d:%d %b}" for d in self._naked["date"]]})
        self.figure.title.text = self._title()
        self._show_sessions()

    def _title(self) -> str:
        """The title; the row size goes on the line above it (both on one line ran into the
        pane beside this narrow one)."""
        self.rows_title.text = f"{self.row_size}-tick rows" if self.row_size > 1 else ""
        if self.range == "session":
            date = self._session.date
            return f"Volume profile · {date:%d %b}" if date is not None else "Volume profile"
        return "Volume profile · " + ("visible range" if self.range == "visible"
                                      else "composite")

    def _session_rows(self, day: int, profile) -> dict:
        """Rows of one day's profile on the chart: from its first bar, ``SESSION_WIDTH`` of its
        bars wide at the day's largest row."""
        first, last = self._days.get(day, (0, 0))
        lv = profile.levels
        y, h = row_prices(lv["tick"], self.row_size, self.instrument.tick_size)
        span = (last - first + 1) * SESSION_WIDTH
        v = lv["volume"].to_numpy()
        zone = _zones(lv)
        return {"key": [f"{day}:{k}" for k in lv["tick"]], "y": y,
                "height": np.full(len(lv), h * 0.85), "left": np.full(len(lv), first - 0.5),
                "right": first - 0.5 + v / v.max() * span, "zone": zone,
                "alpha": np.where(zone == "out", 0.25, 0.45)}

    def _show_sessions(self) -> None:
        parts = list(self._done_days.values())
        date = self._session.date
        if date is not None:
            parts.append(self._session_rows(date.value, self._session.profile()))
        if not parts:
            return
        self._sessions_shown.show({k: np.concatenate([np.asarray(p[k]) for p in parts])
                                   for k in parts[0]})


class DevelopingOverlay:
    """Developing POC, VAH and VAL of the session (``indicators.profile.developing_profile``;
    live: ``LiveVolumeProfile``) as lines on a price figure, at x = bar number."""

    def __init__(self, fig, instrument: Instrument, theme: str = "dark", row_ticks: int = 1,
                 value_area_pct: float = 70):
        self.instrument, self.row_size = instrument, row_ticks
        self.share = value_area_pct / 100
        self.lines = BarLines(("poc", "vah", "val"))
        self.source = self.lines.source
        self.numbers = BarNumbers()
        self.poc = fig.step(X, "poc", source=self.source, mode="center", line_width=1.5)
        self.vah = fig.step(X, "vah", source=self.source, mode="center", line_dash="dashed")
        self.val = fig.step(X, "val", source=self.source, mode="center", line_dash="dashed")
        self.renderers = [self.poc, self.vah, self.val]
        self.restyle(theme)

    def restyle(self, theme: str) -> None:
        th = theme_of(theme)
        self.poc.glyph.line_color = th.poc
        self.vah.glyph.line_color = self.val.glyph.line_color = th.value_area

    def _values(self, rows: pd.DataFrame, bars_ts, xs):
        at = np.searchsorted(pd.DatetimeIndex(bars_ts).as_unit("ns").asi8,
                             pd.DatetimeIndex(rows["ts"]).as_unit("ns").asi8, side="right") - 1
        y = {c: self.instrument.tick_size * (rows[c].to_numpy(dtype="float64", na_value=np.nan)
                                             + (self.row_size - 1) / 2)
             for c in ("poc", "vah", "val")}
        return np.asarray(xs)[at], trading_days(rows["ts"], self.instrument.session), y

    def load(self, bars: pd.DataFrame, footprint: pd.DataFrame, studies=None) -> None:
        xs = self.numbers.load(bars, footprint)
        self._live = LiveVolumeProfile(self.instrument.session, self.row_size, self.share)
        if not len(bars) or not len(footprint):
            self.lines.load([], [], {c: [] for c in self.lines.columns})
            return
        cells = footprint.sort_values("ts", kind="stable")
        last = cells["ts"] == bars["ts"].iloc[-1]
        self._live.update(cells[~last], cells[last])
        self.lines.load(*self._values(self._live.developing(), bars["ts"], xs))

    def apply(self, update) -> None:
        step = self.numbers.advance(update)
        rows = self._live.update(step.closed_cells, step.current_cells)
        if not rows:
            return
        frame = pd.DataFrame(rows, columns=["ts", "date", "poc", "vah", "val", "volume"])
        frame[["poc", "vah", "val"]] = frame[["poc", "vah", "val"]].astype("Float64")
        bars = pd.concat([step.closed, step.current]) if len(step.current) else step.closed
        x, day, y = self._values(frame, bars["ts"], np.concatenate((step.closed_x,
                                                                    step.current_x)))
        self.lines.put(x, day, y)


def developing_overlay(fig, instrument: Instrument, bars=None, footprint=None, **kw
                       ) -> DevelopingOverlay:
    """Add the developing POC / value area lines to the price figure ``fig``; ``load`` the bars
    and cells when given. The returned object's ``apply(update)`` follows the hub."""
    overlay = DevelopingOverlay(fig, instrument, **kw)
    if bars is not None:
        overlay.load(bars, footprint)
    return overlay

