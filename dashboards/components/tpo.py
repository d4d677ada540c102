"""The market profile (TPO) pane: a letter per period on every price row the period traded, beside
the price chart (sharing its price axis), with the POC and value area shaded, the initial balance
as a bar at the left and single prints marked.

The profile is :mod:`indicators.profile`'s (``LiveTPO`` for the latest session, ``tpo_profiles``
and ``merge_profiles`` for a composite); nothing here counts TPOs itself. Live, ``apply(update)``
feeds ``LiveTPO`` and patches the rows whose letters changed (:class:`.live_sources.KeyedRows`);
a new session replaces the rows. Served, the latest session's profile is not computed here: the
chart asks the hub for :meth:`TPOPane.hub_study` (the catalogue's ``tpo``, which follows the
symbol's 1-minute bars) and the pane follows its rows (:meth:`TPOPane.follow`), so every pane
of a symbol with the same settings shares one follower.

Row height: ``row_ticks`` ticks per row; 0 chooses it at load so that the latest session has at
most :data:`AUTO_ROWS` rows (letters need about 12 pixels of height to read).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.properties import value
from bokeh.models import ColumnDataSource, Range1d
from bokeh.transform import factor_cmap

from indicators.profile import LiveTPO, merge_profiles, tpo_profiles
from indicators.profile.tpo import summarise
from tradeflow.model import Instrument

from .live_sources import BarNumbers, KeyedRows, set_small
from .profile import ZONES, auto_row_ticks, pane_figure, row_prices, trading_days
from .theme import style, theme_of

__all__ = ["TPOPane", "AUTO_ROWS"]

AUTO_ROWS = 40
LETTER_FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"  # letters of a row in columns
# x of the pane, in data units: single prints 0..2, the initial balance at 3.5, letters from 5
_WIDTH, _LETTERS_X, _IB_X = 100.0, 5.0, 3.5


class SharedTPO:
    """The latest trading day's market profile as a hub's ``tpo`` follower computes it: what
    the pane's own ``LiveTPO`` would answer (``date``, ``profile()``), taken from the
    follower's rows (:meth:`take`); until rows come, the profile loaded."""

    def __init__(self, live: LiveTPO):
        try:
            self._profile = live.profile()
        except ValueError:  # no bar in the session's hours yet
            self._profile = None
        self.date, self._live = live.date, live

    def update(self, closed=None, current=None) -> None:
        """(The hub folds the bars in.)"""

    def take(self, rows: pd.DataFrame) -> None:
        """The follower's changed rows (the catalogue's ``tpo`` layout, days in order): the
        latest day's, when they hold it."""
        if not len(rows):
            return
        day = rows[rows["date"] == rows["date"].max()].sort_values("tick")
        live = self._live
        # (the profile object from its rows, as LiveTPO makes it: POC and value area are a
        # pass over the day's few rows; the letters and counts are the hub's)
        prof = summarise(day["tick"].to_numpy("int64"), day["tpo_count"].to_numpy("int64"),
                         list(day["letters"]), live.value_area, live.rows, live.period,
                         (day["date"].iloc[0],))
        ib = day["tick"][day["initial_balance"].to_numpy(bool)]
        self._profile = dataclasses.replace(
            prof, ib_low=int(ib.min()) if len(ib) else None,
            ib_high=int(ib.max()) if len(ib) else None)
        self.date = day["date"].iloc[0]

    def profile(self):
        if self._profile is None:
            raise ValueError("no bar in the session's hours yet")
        return self._profile


class TPOPane(pn.viewable.Viewer):
    """Market profile letters beside a price chart (see the module's docstring)."""

    instrument = param.ClassSelector(class_=Instrument, doc="tick size, time zone, session")
    theme = param.Selector(default="dark", objects=["dark", "light"])
    range = param.Selector(default="session", objects=["session", "composite"],
                           doc="the latest session, or all sessions loaded merged")
    period = param.String(default="30min", doc="one letter per period of this length")
    row_ticks = param.Integer(default=0, bounds=(0, 10_000), doc="ticks per row; 0: automatic")
    value_area_pct = param.Number(default=70, bounds=(1, 100), doc="value area, % of TPOs")
    ib_periods = param.Integer(default=2, bounds=(1, 52), doc="periods of the initial balance")
    regular_only = param.Boolean(default=True, doc="only bars in the session's regular hours")
    width = param.Integer(default=300, bounds=(80, 1200))

    def __init__(self, y_range=None, crosshair=None, bars=None, **params):
        super().__init__(**params)
        if self.instrument is None:
            raise ValueError("TPOPane: give the instrument (tick size and session)")
        self.y_range = y_range if y_range is not None else Range1d(0, 1)
        self.rows = ColumnDataSource({c: [] for c in ("key", "y", "height", "letters", "zone",
                                                      "weight", "single")})
        self.ib = ColumnDataSource({"y0": [], "y1": []})
        self._shown = KeyedRows(self.rows, "key")
        self.numbers = BarNumbers()
        self.figure = pane_figure(theme_of(self.theme), self.y_range, self.width, "TPO",
                                  crosshair)
        self.figure.x_range.end = _WIDTH
        self._draw()
        self._bars = None
        self._label = None  # the hub study followed (its label in messages), see follow()
        if bars is not None:
            self.load(bars)

    def __panel__(self):
        return pn.pane.Bokeh(self.figure, sizing_mode="stretch_height", width=self.width)

    # -- drawing

    def _draw(self) -> None:
        fig = self.figure
        self.zone_fill = factor_cmap("zone", palette=["#000000"] * 3, factors=list(ZONES))
        self.shade = fig.hbar(y="y", height="height", left=0, right=_WIDTH, source=self.rows,
                              fill_color=self.zone_fill, line_color=None, fill_alpha=0.22)
        self.zone_text = factor_cmap("zone", palette=["#000000"] * 3, factors=list(ZONES))
        self.letters = fig.text(x=_LETTERS_X, y="y", text="letters", source=self.rows,
                                text_color=self.zone_text, text_font=value(LETTER_FONT),
                                text_font_style="weight", text_font_size="9pt",
                                text_baseline="middle")
        self.singles = fig.hbar(y="y", height="height", left=0, right=2, source=self.rows,
                                fill_alpha="single", line_color=None)
        self.ib_line = fig.segment(x0=_IB_X, x1=_IB_X, y0="y0", y1="y1", source=self.ib,
                                   line_width=3)
        self._restyle()

    @param.depends("theme", watch=True)
    def _restyle(self) -> None:
        th = theme_of(self.theme)
        style(self.figure, th)
        self.zone_fill["transform"].palette = [th.poc, th.value_area, th.background]
        self.zone_text["transform"].palette = [th.poc, th.text, th.muted]
        self.singles.glyph.fill_color = th.accent
        self.ib_line.glyph.line_color = th.palette[3]

    # -- data

    def _live(self) -> LiveTPO:
        return LiveTPO(self.instrument.tick_size, self.instrument.session, period=self.period,
                       rows=self._rows, value_area=self.value_area_pct / 100,
                       ib_periods=self.ib_periods, regular_only=self.regular_only)

    def load(self, bars: pd.DataFrame, footprint=None, studies=None) -> None:
        """Show the profile of ``bars`` (model layout); the last bar is taken as forming."""
        self._bars = bars
        self.numbers.load(bars)
        if not self.following:  # (else kept: the hub's follower has these rows)
            self._rows = self.row_ticks or auto_row_ticks(bars, self.instrument, AUTO_ROWS)
        self.tpo = self._live()
        self._done = {}  # trading date -> TPOProfile of the days before the live one
        if len(bars):
            bars = bars.sort_values("ts", kind="stable")
            self.tpo.update(bars.iloc[:-1], bars.iloc[-1:])
            if self.tpo.date is not None:
                earlier = bars[trading_days(bars["ts"], self.instrument.session)
                               < self.tpo.date.value]
                if len(earlier):
                    self._done = self._earlier(earlier)
        if self.following:  # loaded here once; live, the hub's rows
            self.tpo = SharedTPO(self.tpo)
        self._refresh()

    def hub_study(self) -> tuple[str, dict] | None:
        """The catalogue study whose hub follower gives the latest session's profile with this
        pane's settings (ask after a load: the automatic row size is chosen there), or None
        when the catalogue's ``tpo`` cannot say them (a period not in whole minutes)."""
        minutes = pd.Timedelta(self.period) / pd.Timedelta(minutes=1)
        if minutes != int(minutes) or not 1 <= minutes <= 1440 or self.ib_periods > 48:
            return None
        return "tpo", {"period_minutes": int(minutes), "rows": self._rows,
                       "value_area": self.value_area_pct / 100, "ib_periods": self.ib_periods,
                       "hours": "regular" if self.regular_only else "all"}

    def follow(self, label: str | None) -> None:
        """Take the latest session's profile from the hub messages' study ``label`` (the
        :meth:`hub_study` asked for) from now on; None: compute it here again."""
        was, self._label = self._label, label
        if label is not None and isinstance(getattr(self, "tpo", None), LiveTPO):
            self.tpo = SharedTPO(self.tpo)
        elif label is None and was is not None and self._bars is not None:
            self.load(self._bars)

    @property
    def following(self) -> bool:
        return self._label is not None

    def _earlier(self, bars: pd.DataFrame) -> dict:
        try:
            return tpo_profiles(bars, self.instrument.tick_size, self.instrument.session,
                                period=self.period, rows=self._rows,
                                value_area=self.value_area_pct / 100,
                                ib_periods=self.ib_periods, regular_only=self.regular_only)
        except ValueError:  # no bars in the regular hours of those days
            return {}

    def apply(self, update) -> None:
        """Follow a hub ``Update``: the rows whose letters changed are patched."""
        step = self.numbers.advance(update)
        closed = step.closed
        if len(closed):
            days = trading_days(closed["ts"], self.instrument.session)
            for day in pd.unique(days):
                self._day_change(day)
                self.tpo.update(closed[days == day], None)
        if len(step.current):
            self._day_change(trading_days(step.current["ts"], self.instrument.session)[0])
        self.tpo.update(None, step.current)
        if self.following:
            changes = (getattr(update, "studies", None) or {}).get(self._label)
            if changes is not None:
                self.tpo.take(changes.rows)
        self._refresh()

    def _day_change(self, day: int) -> None:
        date = self.tpo.date
        if date is not None and date.value != day and date not in self._done:
            self._done[date] = self.tpo.profile()

    @param.depends("period", "row_ticks", "value_area_pct", "ib_periods", "regular_only",
                   watch=True)
    def _reload(self) -> None:
        """Other settings: the hub's follower has the old ones, so computed here from now."""
        self._label = None
        self._on_range()

    @param.depends("range", watch=True)
    def _on_range(self) -> None:
        if self._bars is not None:
            self.load(self._bars)

    def profile(self):
        """The profile shown (``indicators.profile.TPOProfile``), or None before any bar."""
        try:
            live = [self.tpo.profile()]
        except ValueError:  # no bar in the session's hours yet
            live = []
        if self.range == "session":
            if live:
                return live[0]
            # the new session has no bar in its regular hours yet (overnight): the last one that
            # had, so the pane does not go blank every night
            return self._done[max(self._done)] if self._done else None
        profiles = [p for d, p in sorted(self._done.items()) if d != self.tpo.date] + live
        return merge_profiles(profiles, self.value_area_pct / 100) if profiles else None

    def _refresh(self) -> None:
        profile = self.profile()
        if profile is None:
            self._shown.show({c: [] for c in self.rows.data})
            set_small(self.ib, {"y0": [], "y1": []})
            waiting = self.regular_only and self._bars is not None and len(self._bars)
            self.figure.title.text = ("TPO · waiting for regular hours"
                                      if waiting else "TPO")
            return
        lv = profile.levels
        y, h = row_prices(lv["tick"], self._rows, self.instrument.tick_size)
        zone = np.where(lv["poc"], "poc", np.where(lv["value_area"], "va", "out"))
        self._shown.show({"key": lv["tick"].to_numpy(), "y": y, "height": np.full(len(lv), h),
                          "letters": lv["letters"].to_numpy(dtype=object), "zone": zone,
                          "weight": np.where(zone == "poc", "bold", "normal"),
                          "single": lv["single_print"].to_numpy(dtype="float64") * 0.9})
        if profile.ib_high is not None:
            lo, hi = row_prices([profile.ib_low, profile.ib_high], self._rows,
                                self.instrument.tick_size)[0]
            set_small(self.ib, {"y0": [lo - h / 2], "y1": [hi + h / 2]})
        else:
            set_small(self.ib, {"y0": [], "y1": []})
        if self.range == "session":
            where = f"{profile.dates[-1]:%d %b}" if profile.dates else ""
        else:
            where = f"composite of {len(profile.dates)} sessions"
        self.figure.title.text = f"TPO · {where} · {self.period} · {self._rows}-tick rows"
