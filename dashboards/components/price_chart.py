"""The price chart: bars of any spec drawn as any chart type of the desk, the volume under them,
catalogue studies over them or in panes below, a crosshair readout, and live updates that stream
closed bars and patch the forming one.

Drawn with Bokeh (:mod:`dashboards.components.theme`): x is the bar number, labelled with the
bars' local times (:mod:`dashboards.components.axes`); prices carry the instrument's decimals.
The price axis is on the right, where the last price's label sits; the y range follows the bars
in view (a ``CustomJS`` on the x range, no server round trip), and so does the readout of the
bar under the cursor.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.events import MouseLeave, MouseMove
from bokeh.layouts import column
from bokeh.models import (CategoricalColorMapper, CDSView, ColumnDataSource, CustomJS, Div,
                          GroupFilter, Label, Node, NumeralTickFormatter, Range1d, Span)
from bokeh.transform import dodge, transform

from tradeflow.live.hub import ExternalBars, Resync, Snapshot, Update
from tradeflow.model import BAR_COLUMNS, FOOTPRINT_COLUMNS, Instrument, empty_frame, to_utc

from . import axes
from .bar_rows import PRICE_BORDER
from .footprint_cells import SIZE_NOISE, format_size, signed_size
from .live_source import put_differences, put_rows, truncate
from .price_shapes import (BAR_FIELDS, CANDLE_TYPES, CHART_TYPES, TRANSFORM_TYPES, Carry,
                           bar_rows)
from .price_studies import StudyLayer, batch_frame, make_layer
from .price_transforms import MARK_FIELDS, TRANSFORM_FIELDS, Transform
from .theme import THEMES, Theme, crosshair_tool, figure, style, theme_of

__all__ = ["PriceChart"]

RIGHT_MARGIN = 8  # empty bars right of the last one in the first view (room for its label)

# Each pane's y range spans its columns over the rows in view (and its extra values: a study's
# levels; a floor: the volume's 0).
_FIT = """
for (let k = 0; k < sources.length; k++) {
  const d = sources[k].data, xs = d['x'], yr = ranges[k];
  if (!xs || xs.length == 0) continue;
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < xs.length; i++) {
    if (xs[i] < xr.start || xs[i] > xr.end) continue;
    for (const c of columns[k]) {
      const v = d[c][i];
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
  }
  if (!isFinite(mn) || !isFinite(mx)) continue;
  for (const v of extras[k]) { if (v < mn) mn = v; if (v > mx) mx = v; }
  const pad = (mx - mn) * 0.08 || Math.abs(mx) * 0.001 || 1;
  yr.start = floors[k] == null ? mn - pad : floors[k];
  yr.end = mx + pad;
}
"""

# The readout of the bar under the cursor (mouse events) or of the last bar (leaving the plot).
_READOUT = """
const d = src.data, xs = d['x'];
if (!xs || xs.length == 0) { div.text = head; return; }
let i = xs.length - 1;
while (i > 0 && isNaN(d['close'][i])) i--;  // blanked rows (a forming row gone)
if (cb_obj.event_name == 'mousemove') {
  const j = Math.round(cb_obj.x) - xs[0];
  if (j < 0 || j >= xs.length) return;
  i = j;
}
const fmt = (v, n) => (v == null || isNaN(v)) ? '–' :
  v.toLocaleString('en-US', {minimumFractionDigits: n, maximumFractionDigits: n});
const signed = (v, n) => (v > 0 ? '+' : '') + fmt(v, n);
// sizes as the footprint's cells write them (footprint_cells.format_size): 12, 12.3k, 0.004, and
// 0 for the float error of a sum (below noise)
const size = (v) => {
  if (v == null || isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a < noise) return '0';
  let t;
  if (a >= 1e6) t = (a / 1e6).toFixed(1) + 'M';
  else if (a >= 1e4) t = a < 1e5 ? (a / 1e3).toFixed(1) + 'k' : (a / 1e3).toFixed(0) + 'k';
  else if (a == Math.round(a)) t = String(a);
  else t = String(Number(a.toPrecision(3)));
  return (v < 0 ? '-' : '') + t;
};
const col = (v) => v >= noise ? colors.up : (v <= -noise ? colors.down : colors.text);
const span = (label, text, color) => '<span style="color:' + colors.muted + '">' + label +
  '</span> <span style="color:' + color + '">' + text + '</span>';
const c = d['close'][i], o = d['open'] ? d['open'][i] : c, dir = c >= o ? 1 : -1;
const parts = [];
for (const k of ['open', 'high', 'low', 'close'])
  if (d[k]) parts.push(span(k[0].toUpperCase(), fmt(d[k][i], decimals), col(dir)));
if (d['change']) {
  const ch = d['change'][i], prev = c - ch;
  parts.push(span('Chg', signed(ch, decimals) + (prev ? ' (' + signed(100 * ch / prev, 2) + '%)'
    : ''), col(ch)));
}
if (d['volume']) parts.push(span('Vol', size(d['volume'][i]), colors.text));
if (d['delta']) parts.push(span('Δ', (d['delta'][i] >= noise ? '+' : '') + size(d['delta'][i]),
                                col(d['delta'][i])));
// the time last: a narrow chart cuts the readout's end, and the axis shows the time too
if (d['t']) {
  const t = new Date(d['t'][i]), pad = (n) => String(n).padStart(2, '0');
  parts.push('<span style="color:' + colors.muted + '">' + t.getUTCFullYear() + '-' +
    pad(t.getUTCMonth() + 1) + '-' + pad(t.getUTCDate()) + ' ' + pad(t.getUTCHours()) + ':' +
    pad(t.getUTCMinutes()) + (t.getUTCSeconds() ? ':' + pad(t.getUTCSeconds()) : '') +
    '</span>');
}
div.text = head + parts.join('&nbsp;&nbsp;');
"""


class PriceChart(pn.viewable.Viewer):
    """The price chart of one instrument (see the module's docstring).

    Parameters (the user's choices; the desk's settings panel shows them):

    * ``instrument``: a ``tradeflow.model.Instrument`` (tick size, time zone).
    * ``theme``: ``"dark"`` or ``"light"``; the chart restyles in place.
    * ``chart_type``: one of :data:`CHART_TYPES` -- ``ohlc``, ``candles``, ``hollow_candles``,
      ``volume_candles``, ``heikin_ashi``, ``line``, ``line_markers``, ``step``, ``area``,
      ``hlc_area``, ``baseline``, ``columns``, ``high_low``, ``renko`` (give it Renko bars, spec
      ``RKn``), ``range`` (range bars, ``Rn``), ``kagi``, ``point_and_figure``, ``line_break``.
    * ``show_volume``: the volume pane under the price (Kagi, P&F, Line Break: each line's or
      column's bars' volume; their studies are computed over their lines, see
      ``price_transforms``).
    * ``studies``: ``[(name, params), ...]`` of the study catalogue
      (``[("EMA", {"timeperiod": 50}), ("RSI", {})]``); overlays on the price, panes below.
    * ``base_price``: the baseline chart's price (None: the first close).
    * ``volume_candles``: ``"width"`` or ``"colour"``: what a volume candle's volume sets.
    * ``transform``: settings of Kagi / P&F / Line Break (``{"reversal": 3, "box": 4}``).
    * ``spec``: the bars' spec (what studies are told), ``visible_bars``: bars in the first
      view, ``height`` (price pane, px; None: stretch), ``pane_height`` (volume and study panes).

    Constructor: ``PriceChart(instrument=inst, bars=frame, footprint=None, x_range=None,
    crosshair=None, **params)``; ``x_range`` and ``crosshair`` to share with other views of the
    same chart. Attributes other views share: ``x_range``, ``y_range`` (the price axis),
    ``crosshair``; ``source`` (the bar rows), ``layers`` (the studies drawn).

    Data: :meth:`load` (bars frame in the model layout, or a hub ``Snapshot``) and :meth:`apply`
    (a hub ``Update``/``ExternalBars``/``Snapshot``/``Resync``): closed bars are streamed once,
    the forming bar patched in place, study rows likewise from their ``Changes``. Give it plain
    bars: Heikin-Ashi is ``chart_type="heikin_ashi"`` (``MarketData`` transforms a ``:HA`` spec's
    bars already, the hub's live bars of it are plain: load ``BarSpec.base`` 's bars).
    """

    instrument = param.ClassSelector(class_=Instrument, allow_None=True, doc="The instrument")
    theme = param.Selector(default="dark", objects=list(THEMES), doc="Colours")
    chart_type = param.Selector(default="candles", objects=list(CHART_TYPES),
                                doc="How the bars are drawn")
    show_volume = param.Boolean(default=True, doc="Volume pane under the price")
    studies = param.List(default=[], doc="Catalogue studies: [(name, params), ...]")
    base_price = param.Number(default=None, allow_None=True,
                              doc="Baseline chart: the base price (None: the first close)")
    volume_candles = param.Selector(default="width", objects=["width", "colour"],
                                    doc="Volume candles: volume sets the width or the colour")
    transform = param.Dict(default={}, doc="Kagi / Point & Figure / Line Break settings")
    spec = param.String(default="1m", doc="The bars' spec (for the studies)")
    visible_bars = param.Integer(default=150, bounds=(5, None), doc="Bars in the first view")
    height = param.Integer(default=460, bounds=(100, None), allow_None=True,
                           doc="Height of the price pane in pixels (None: stretch)")
    pane_height = param.Integer(default=130, bounds=(60, None),
                                doc="Height of the volume and study panes")
    time_axis = param.Boolean(default=True, doc="The time axis under the last pane (off when "
                              "panes under the chart show it: one axis, not two)")

    def __init__(self, *, bars=None, footprint=None, x_range=None, crosshair=None, **params):
        super().__init__(**params)
        if self.instrument is None:
            raise ValueError("PriceChart needs instrument= (its tick size and time zone)")
        self.x_range = x_range if x_range is not None else Range1d(-0.5, 10.5)
        self.y_range = Range1d(0, 1)
        self.crosshair = crosshair if crosshair is not None else crosshair_tool(self._theme)
        self.source = ColumnDataSource({f: [] for f in BAR_FIELDS})
        self.transform_source = ColumnDataSource({f: [] for f in TRANSFORM_FIELDS})
        self.marks = ColumnDataSource({f: [] for f in MARK_FIELDS})  # Kagi lines, P&F boxes
        self._transform: Transform | None = None
        # one line, cut at the chart's edge (a narrow chart beside the ladder and tape)
        self.readout = Div(text="", sizing_mode="stretch_width", height=22,
                           styles={"overflow": "hidden", "white-space": "nowrap",
                                   "text-overflow": "ellipsis"})
        self._closed = empty_frame(BAR_COLUMNS)   # the closed bars held
        self._forming = empty_frame(BAR_COLUMNS)  # the forming bar (0 or 1 row)
        self._closed_ns = np.zeros(0, "int64")    # their open times
        self._all = None                          # both, made when asked (_bars)
        self._cells = None          # closed bars' footprint cells (None: not given)
        self._forming_cells = None  # the forming bar's
        self._tentative = False                   # the last row came in a frame: maybe closed
        self._carry = Carry()                     # after the closed rows
        self._given: dict = {}                    # study frames handed to load()
        self.layers: list[StudyLayer] = [self._layer(s) for s in self.studies]
        self.param.watch(self._studies_changed, "studies")
        self._vref = None  # the volume of a full volume candle (see _volume_ref)
        self._restylers: list = []
        self._fits: list = []  # (source, columns, y range, floor, extra values) of each pane
        self._fit_js: CustomJS | None = None
        theme = self._theme  # factors of the rows -> the theme's colours (restyled in place)
        self._dir_map = CategoricalColorMapper(factors=["up", "down"],
                                               palette=[theme.up, theme.down])
        self._fill_map = CategoricalColorMapper(factors=["up", "down", "hollow"],
                                                palette=[theme.up, theme.down, theme.background])
        self._pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self._layout = None
        self._redraw()
        if bars is not None:
            self.load(bars, footprint)

    def __panel__(self):
        return self._pane

    # ----------------------------------------------------------------------------- settings
    @property
    def _theme(self) -> Theme:
        return theme_of(self.theme)

    @property
    def _tz(self) -> str:
        return self.instrument.session.timezone

    @property
    def _decimals(self) -> int:
        return min(axes.price_decimals(self.instrument.tick_size), 10)

    @staticmethod
    def _layer(study) -> StudyLayer:
        if isinstance(study, str):
            return make_layer(study)
        name, params = (study[0], study[1] if len(study) > 1 else {})
        return make_layer(name, params)

    def _studies_changed(self, event):
        """Draw the studies now asked for; a bad one is refused (a ``ValueError`` of one line)
        and the studies stay as they were."""
        try:
            layers = [self._layer(s) for s in event.new]
        except ValueError:
            with param.parameterized.discard_events(self):
                self.studies = event.old
            raise
        self.layers = layers
        self._redraw()

    @param.depends("chart_type", "show_volume", "base_price", "volume_candles", "transform",
                   "height", "pane_height", "time_axis", watch=True)
    def _redraw(self):
        """Recompute every row and build the figures (a user's choice changed; not live)."""
        self._fill_bars()
        self._fill_studies()
        self._build()

    @param.depends("theme", watch=True)
    def _restyle(self):
        theme = self._theme
        for restyle in self._restylers:
            restyle(theme)
        self._show_last()

    # --------------------------------------------------------------------------------- data
    def load(self, bars, footprint=None, studies=None) -> None:
        """Draw ``bars`` (a frame in the model's bar layout, time order; its last bar may still
        be forming) and their ``footprint`` cells, or a hub ``Snapshot`` (closed bars, the
        forming one, each study's result). ``studies``: ``{name: frame}`` results the chart
        cannot compute from bars and cells (studies of trades: the hub's snapshot has them);
        the others are computed by the catalogue."""
        if isinstance(bars, Snapshot):
            snap = bars
            bars = _cat(snap.closed, snap.current)
            footprint = _cat(snap.closed_footprint, snap.current_footprint)
            studies = {**snap.studies, **(studies or {})}
            n_final, self._tentative = len(snap.closed), False
        else:
            missing = [c for c in BAR_COLUMNS if c not in bars.columns]
            if missing:
                raise ValueError(f"PriceChart.load: the bars frame lacks {', '.join(missing)} "
                                 f"(the model's bar layout)")
            n_final, self._tentative = max(len(bars) - 1, 0), len(bars) > 0
        self._hold(bars[list(BAR_COLUMNS)].reset_index(drop=True), n_final)
        self._cells = self._forming_cells = None
        if footprint is not None:
            cells = footprint[list(FOOTPRINT_COLUMNS)].reset_index(drop=True)
            forming = (to_utc(cells["ts"]).asi8 == to_utc(self._bars["ts"]).asi8[-1]) if (
                len(self._bars) > self._n_final) else np.zeros(len(cells), bool)
            self._cells, self._forming_cells = cells[~forming], cells[forming]
        self._given = dict(studies or {})
        self._redraw()
        self._initial_view()

    def apply(self, update) -> None:
        """Follow one hub message: an ``Update`` streams the closed bars (once) and patches the
        forming bar in place, and each study's ``Changes``; ``ExternalBars`` replace bars of the
        same time or add them; a ``Snapshot`` is loaded; a ``Resync`` waits for it."""
        if isinstance(update, Snapshot):
            self.load(update)
        elif isinstance(update, Resync):
            return
        elif isinstance(update, ExternalBars):
            bars = update.bars[list(BAR_COLUMNS)].sort_values("ts", ignore_index=True)
            if not len(bars):
                return
            held = to_utc(self._bars["ts"]).asi8
            start = int(np.searchsorted(held, to_utc(bars["ts"]).asi8[0], side="left"))
            later = self._bars.iloc[start:]
            merged = _cat(later, bars).drop_duplicates("ts", keep="last").sort_values(
                "ts", ignore_index=True)
            self._write(start, merged, len(merged))
            self._follow_last()
        elif isinstance(update, Update):
            tail = _cat(update.closed, update.current)
            start = self._n_final + len(self._forming)
            if len(self._forming):  # a forming row is held
                replaces = (not self._tentative or not len(tail)
                            or to_utc(tail["ts"]).asi8[0] == to_utc(self._forming["ts"]).asi8[0])
                start = self._n_final if replaces else start
            self._tentative = False
            if self._cells is not None:  # (kept for studies computed later)
                if start > self._n_final:  # the row held as forming was closed: its cells too
                    self._cells = _cat(self._cells, self._forming_cells)
                self._cells = _cat(self._cells, update.closed_footprint)
                self._forming_cells = update.current_footprint
            self._write(start, tail, len(update.closed))
            # (a transform's studies are its lines', written with them, not the hub's bars')
            if self.layers and update.studies and not self._is_transform:
                bar_ts, bar_x = self._bar_positions()
                for layer in self.layers:
                    changes = layer.of(update.studies)
                    if changes is not None:
                        layer.apply(changes, bar_ts, bar_x)
            self._follow_last()
        else:
            raise TypeError(f"PriceChart.apply: not a hub message: {type(update).__name__}")

    # rows of the bars -------------------------------------------------------------------------
    @property
    def _is_transform(self) -> bool:
        return self.chart_type in TRANSFORM_TYPES

    @property
    def x_is_bar(self) -> bool:
        """Whether x is the bar's number (Renko bricks are bars of their spec); not for Kagi,
        Point & Figure and Line Break, whose x counts their own lines and columns: their first
        view is their own."""
        return not self._is_transform

    def line_starts(self) -> np.ndarray | None:
        """Kagi, Point & Figure, Line Break: the open times (UTC ns) of the bars that began each
        line or column drawn (x 0, 1, ...), which the panes under the chart follow; else None
        (x is the bar)."""
        return self._transform.line_starts() if self._transform is not None else None

    @property
    def _n_final(self) -> int:
        """Bars held that are closed."""
        return len(self._closed)

    @property
    def _bars(self) -> pd.DataFrame:
        """Every bar held: the closed ones, then the forming one."""
        if self._all is None:
            self._all = _cat(self._closed, self._forming)
        return self._all

    def _hold(self, bars: pd.DataFrame, n_final: int) -> None:
        """Hold ``bars``, the first ``n_final`` closed."""
        self._closed = bars.iloc[:n_final].reset_index(drop=True)
        self._forming = bars.iloc[n_final:].reset_index(drop=True)
        self._closed_ns = to_utc(self._closed["ts"]).asi8
        self._all = None

    def _base(self) -> float:
        if self.base_price is not None:
            return float(self.base_price)
        first = self._closed if len(self._closed) else self._forming
        return float(first["close"].iloc[0]) if len(first) else np.nan

    def _volume_ref(self) -> float:
        """The volume of a full volume candle: the 95th percentile of the bars first loaded,
        kept while live so closed candles never change."""
        if self._vref is None:
            vol = self._bars["volume"].to_numpy("float64")
            self._vref = float(np.percentile(vol, 95)) if len(vol) else np.nan
        return self._vref

    def _rows(self, bars: pd.DataFrame, x0: int, carry: Carry, n_closed: int | None = None
              ) -> tuple[dict, Carry]:
        volume = self.chart_type == "volume_candles"
        return bar_rows(self.chart_type, bars, x0, carry, self._tz, base=self._base(),
                        volume_ref=self._volume_ref() if volume else np.nan,
                        volume_by=self.volume_candles, n_closed=n_closed)

    def _fill_bars(self) -> None:
        """Every row, from scratch (a load, or another chart type)."""
        self._vref = None
        if self._is_transform:
            self._transform = self._new_transform()
            self.transform_source.data = _writable(self._transform.rows())
            self.marks.data = _writable(self._transform.marks())
            self.source.data = {f: [] for f in BAR_FIELDS}
            return
        self._transform = None
        rows, self._carry = self._rows(self._bars, 0, Carry(), n_closed=self._n_final)
        self.source.data = _writable(rows)

    def _write(self, start: int, tail: pd.DataFrame, n_closed: int) -> None:
        """Bars from position ``start`` on are ``tail`` (its first ``n_closed`` closed): rows
        held before ``start`` are not sent again; the others are patched, new ones streamed."""
        held = self._n_final + len(self._forming)
        start = min(start, held)
        tail = tail[list(BAR_COLUMNS)]
        following = start == self._n_final  # else bars already made into rows changed
        if not following and not self._is_transform:  # the carry to ``start`` again
            carry = self._rows(self._bars.iloc[:start], 0, Carry())[1]
        else:
            carry = self._carry
        if following:  # (the live case: only what arrived is added)
            if n_closed:
                closed = tail.iloc[:n_closed]
                self._closed = _cat(self._closed, closed)
                self._closed_ns = np.concatenate([self._closed_ns, to_utc(closed["ts"]).asi8])
            self._forming = tail.iloc[n_closed:].reset_index(drop=True)
            self._all = None
        else:
            self._hold(_cat(self._bars.iloc[:start], tail), start + n_closed)
        if self._is_transform:
            if following:
                self._transform.update(tail.iloc[:n_closed], tail.iloc[n_closed:])
            else:
                self._transform = self._new_transform()
            self._write_transform()
        else:
            rows, self._carry = self._rows(tail, start, carry, n_closed=n_closed)
            put_rows(self.source, start, rows)
            truncate(self.source, self._n_final + len(self._forming))
        self._show_last()

    def _new_transform(self) -> Transform:
        """The chart type's transform, fed the closed bars held and the forming one."""
        made = Transform(self.chart_type, self.instrument, self._tz,
                         self.transform.get(self.chart_type))
        made.update(self._bars.iloc[:self._n_final], self._bars.iloc[self._n_final:])
        return made

    def _write_transform(self) -> None:
        """Send what differs from the rows held (the last line or column, mostly)."""
        rows = self._transform.rows()
        for source, new in ((self.transform_source, rows),
                            (self.marks, self._transform.marks())):
            put_differences(source, new)
        if self.layers:
            self._write_transform_studies(rows)

    def _bar_positions(self) -> tuple[np.ndarray, np.ndarray]:
        ts = np.concatenate([self._closed_ns, to_utc(self._forming["ts"]).asi8])
        return ts, np.arange(len(ts), dtype="int64")

    # studies ----------------------------------------------------------------------------------
    def _fill_studies(self) -> None:
        if self._is_transform:
            self._fill_transform_studies()
            return
        bar_ts, bar_x = self._bar_positions()
        for layer in self.layers:
            frame = layer.of(self._given)
            if frame is None:
                if not len(self._bars):
                    frame = pd.DataFrame({c: [] for c in layer.info.outputs})
                else:
                    frame = batch_frame(layer, self.instrument, self._bars, self._all_cells(),
                                        self.spec)
            elif layer.kind != "markers":
                frame = self._with_earlier_rows(layer, frame)
            layer.load(frame, bar_ts, bar_x)

    def _transform_frames(self, rows: dict | None = None) -> tuple[pd.DataFrame, dict]:
        """Each study's frame over the transform's lines or columns taken as bars (see
        ``price_transforms``), by label; one that reads more than bars (trades, cells: they do
        not follow the lines) has no rows, and its label is in :attr:`_not_on_lines`."""
        lines = self._transform.bars(rows)
        frames, self._not_on_lines = {}, set()
        for layer in self.layers:
            if set(layer.info.reads) == {"bars"} and len(lines):
                frames[layer.label] = batch_frame(layer, self.instrument, lines, None,
                                                  self.spec)
            else:
                if set(layer.info.reads) != {"bars"}:
                    self._not_on_lines.add(layer.label)
                frames[layer.label] = pd.DataFrame({c: [] for c in layer.info.outputs})
        return lines, frames

    def _fill_transform_studies(self) -> None:
        lines, frames = self._transform_frames()
        ts, x = to_utc(lines["ts"]).asi8, np.arange(len(lines), dtype="int64")
        for layer in self.layers:
            layer.load(frames[layer.label], ts, x)

    def _write_transform_studies(self, rows: dict) -> None:
        """Live: the studies over the lines again, the rows that differ sent (the last line's,
        mostly: a line's study rows depend on the lines up to it)."""
        lines, frames = self._transform_frames(rows)
        ts, x = to_utc(lines["ts"]).asi8, np.arange(len(lines), dtype="int64")
        for layer in self.layers:
            frame = frames[layer.label].reset_index(drop=True)
            new = layer.rows(frame, np.arange(len(frame)), ts, x)
            put_differences(layer.source, new)

    def _all_cells(self, before=None):
        if self._cells is None:
            return None
        cells = _cat(self._cells, self._forming_cells)
        return cells if before is None else cells[to_utc(cells["ts"]).asi8 < before]

    def _with_earlier_rows(self, layer: StudyLayer, frame: pd.DataFrame) -> pd.DataFrame:
        """A hub's rows of a per-bar study (those of the bars it keeps, indexed by position),
        with the rows of the chart's earlier bars computed here in front, so the study is drawn
        over all the bars shown. The study's value at a bar depends on the bars up to it, so
        computing it over the earlier bars alone gives their rows."""
        if not len(frame) or "ts" not in frame or not len(self._bars):
            return frame
        first = to_utc(frame["ts"].iloc[:1]).asi8[0]
        earlier = self._bars[to_utc(self._bars["ts"]).asi8 < first]
        if not len(earlier):
            return frame
        try:
            own = batch_frame(layer, self.instrument, earlier.reset_index(drop=True),
                              self._all_cells(before=first), self.spec)
        except ValueError:  # a study of what the chart was not given (trades): the hub's only
            return frame
        own = own[[c for c in frame.columns if c in own.columns]]
        start = int(frame.index[0])
        own.index = pd.RangeIndex(start - len(own), start)
        return pd.concat([own, frame])

    # the view ---------------------------------------------------------------------------------
    def _main_source(self) -> ColumnDataSource:
        return self.transform_source if self._is_transform else self.source

    def _initial_view(self) -> None:
        """The last ``visible_bars`` bars (and any study shifted past them), y fitted."""
        src = self._main_source()
        i = _last_row(src.data)
        if i is None:
            return
        last = float(src.data["x"][i])
        ahead = max([0] + [layer.max_shift for layer in self.layers]) if not \
            self._is_transform else 0
        first = float(src.data["x"][0])
        self.x_range.start = max(last - self.visible_bars, first - 1) + 0.5
        self.x_range.end = last + max(RIGHT_MARGIN, ahead + 1) + 0.5
        self._fit_y()

    def _fit_y(self) -> None:
        """What the ``_FIT`` callback does in the browser, for the first view."""
        for fit in self._fits:
            source, columns, y_range, floor, extra = fit
            x = np.asarray(source.data["x"], "float64")
            view = (x >= self.x_range.start) & (x <= self.x_range.end)
            values = np.concatenate([np.asarray(source.data[c], "float64")[view]
                                     for c in columns] + [np.asarray(extra, "float64")])
            values = values[np.isfinite(values)]
            if not view.any() or not len(values):
                continue
            lo, hi = values.min(), values.max()
            pad = (hi - lo) * 0.08 or abs(hi) * 0.001 or 1.0
            y_range.start, y_range.end = (lo - pad if floor is None else floor), hi + pad

    def _follow_last(self) -> None:
        """Live: while the last bar is in view, the panes' y ranges follow it (a range set to
        the value it has sends nothing)."""
        src = self._main_source()
        i = _last_row(src.data)
        if i is not None and self.x_range.start <= float(src.data["x"][i]) <= self.x_range.end:
            self._fit_y()

    def _show_last(self) -> None:
        """The last price's line and label, and the readout of the last bar."""
        src = self._main_source()
        theme = self._theme
        if not hasattr(self, "_last_line"):
            return
        i = _last_row(src.data)
        if i is None:
            self._last_line.visible = self._last_label.visible = False
            self.readout.text = self._readout_head
            return
        close = float(src.data["close"][i])
        up = close >= float(src.data["open"][i]) if "open" in src.data else True
        colour = theme.up if up else theme.down
        self._last_line.update(location=close, line_color=colour, visible=True)
        self._last_label.update(y=close, text=f"{close:,.{self._decimals}f}",
                                background_fill_color=colour, visible=True)
        self.readout.text = self._readout_head + _last_readout(src.data, i, self._decimals,
                                                               theme)

    def _build(self) -> None:
        theme = self._theme
        self._restylers = []
        src = self._main_source()
        self._fits = [(src, ["lo", "hi"], self.y_range, None, [])]
        price = figure(theme, height=self.height, x_range=self.x_range, y_range=self.y_range,
                       crosshair=self.crosshair, y_axis_location="right")
        price.yaxis.formatter = axes.price_formatter(self.instrument.tick_size)
        figures = [price]
        self._draw_price(price)
        if self.show_volume:  # (Kagi, P&F, Line Break: each line's or column's bars')
            vol = figure(theme, height=self.pane_height, x_range=self.x_range,
                         y_range=Range1d(0, 1), crosshair=self.crosshair,
                         y_axis_location="right")
            vol.yaxis.formatter = NumeralTickFormatter(format="0.[0]a")
            self._fits.append((src, ["volume"], vol.y_range, 0.0, []))
            # rect, not vbar, for every bar: Bokeh draws vbars left of the view on its edge
            vol.rect(x=axes.X, y="vmid", width=0.7, height="volume", source=src,
                     fill_color=transform("dir", self._dir_map), line_color=None,
                     fill_alpha=0.55)
            vol.yaxis.ticker.desired_num_ticks = 3
            figures.append(vol)
        overlays = [layer for layer in self.layers if layer.draws == "overlay"]
        colours = iter(range(1000))
        for layer in overlays:
            self._draw_layer(price, layer, colours)
        for layer in self.layers:
            if layer.draws == "pane":
                pane = figure(theme, height=self.pane_height, x_range=self.x_range,
                              y_range=Range1d(0, 1), crosshair=self.crosshair,
                              y_axis_location="right")
                self._fits.append((layer.source, list(layer.fit_columns), pane.y_range,
                                   None, list(layer.info.levels)))
                pane.yaxis.ticker.desired_num_ticks = 4
                for level in layer.info.levels:
                    span = Span(location=level, dimension="width", line_dash="dashed",
                                line_width=1, line_color=theme.muted)
                    pane.add_layout(span)
                    self._restylers.append(lambda t, s=span: setattr(s, "line_color",
                                                                       t.muted))
                self._draw_layer(pane, layer, colours)
                figures.append(pane)
        for fig in figures[:-1]:
            fig.xaxis.visible = False
        for fig in figures[1:]:  # one toolbar (the price pane's) acts on the shared x range
            fig.toolbar_location = None
        figures[-1].xaxis.formatter = axes.time_formatter(src, figures[-1])
        figures[-1].xaxis.visible = self.time_axis
        for fig in figures:
            fig.min_border_right = PRICE_BORDER  # room for the price labels, equal in every pane
            style(fig, theme)  # again: the legends came with the studies
            self._restylers.append(lambda t, f=fig: style(f, t))
        self._readout_js(figures, src)
        self._fit_in_browser()
        self._fit_y()
        self._restylers.append(self._restyle_readout)
        self._restyle_readout(theme)
        self._layout = column(self.readout, *figures, sizing_mode="stretch_width")
        if self.height is None:  # the price pane takes the height the others leave
            self._layout.sizing_mode = price.sizing_mode = "stretch_both"
        # (the pane passes its sizing mode on to the layout)
        self._pane.sizing_mode = self._layout.sizing_mode
        self._pane.object = self._layout
        self._show_last()

    def _fit_in_browser(self) -> None:
        """The ``_FIT`` callback on the shared x range (the previous build's taken off)."""
        callbacks = self.x_range.js_property_callbacks
        if self._fit_js is not None:
            self.x_range.js_property_callbacks = {
                event: [cb for cb in cbs if cb is not self._fit_js]
                for event, cbs in callbacks.items()}
        sources, columns, ranges, floors, extras = (list(v) for v in zip(*self._fits))
        self._fit_js = CustomJS(args=dict(sources=sources, columns=columns, ranges=ranges,
                                          floors=floors, extras=extras, xr=self.x_range),
                                code=_FIT)
        self.x_range.js_on_change("start", self._fit_js)
        self.x_range.js_on_change("end", self._fit_js)

    def _readout_js(self, figures, src) -> None:
        """The readout follows the mouse over every pane (``_READOUT``); its head, the symbol
        and spec, escaped (they go into HTML)."""
        self._readout_head = (
            f'<b style="margin-right:10px">{html.escape(self.instrument.symbol)}</b>'
            f'<span style="margin-right:10px">{html.escape(self.spec)}</span>')
        self._readout_cb = CustomJS(args={"src": src, "div": self.readout, "colors": {},
                                          "decimals": self._decimals, "noise": SIZE_NOISE,
                                          "head": self._readout_head}, code=_READOUT)
        for fig in figures:
            fig.js_on_event(MouseMove, self._readout_cb)
            fig.js_on_event(MouseLeave, self._readout_cb)

    def _restyle_readout(self, theme: Theme) -> None:
        self._readout_cb.args = dict(self._readout_cb.args, colors={
            "up": theme.up, "down": theme.down, "text": theme.text, "muted": theme.muted})
        self.readout.styles = {"color": theme.text, "background": theme.background,
                               "font-family": "monospace", "font-size": "12px",
                               "padding": "2px 6px", "white-space": "nowrap"}
        self._pane.styles = {"background": theme.background}
        self._dir_map.palette = [theme.up, theme.down]
        self._fill_map.palette = [theme.up, theme.down, theme.background]

    def _themed(self, renderer, **colours) -> None:
        """Give ``renderer``'s glyph colours by theme field (``line_color="accent"``), now and
        at each theme change."""
        def apply(theme, glyph=renderer.glyph):
            glyph.update(**{k: getattr(theme, v) for k, v in colours.items()})
        apply(self._theme)
        self._restylers.append(apply)

    def _draw_price(self, fig) -> None:
        kind, src, d, f = self.chart_type, self.source, self._dir_map, self._fill_map
        X = axes.X
        if kind in TRANSFORM_TYPES:
            self._draw_transform(fig)
        elif kind == "ohlc":
            for x0, y0, x1, y1 in ((X, "low", X, "high"), (dodge(X, -0.35), "open", X, "open"),
                                   (X, "close", dodge(X, 0.35), "close")):
                fig.segment(x0=x0, y0=y0, x1=x1, y1=y1, source=src, line_width=1.5,
                            line_color=transform("dir", d))
        elif kind in CANDLE_TYPES:
            if kind != "renko":
                fig.segment(x0=X, y0="low", x1=X, y1="high", source=src,
                            line_color=transform("dir", d))
            fig.rect(x=X, y="mid", width="width", height="height", source=src,
                     fill_color=transform("fill", f), line_color=transform("dir", d),
                     fill_alpha="alpha")
        elif kind in ("columns", "high_low"):
            fig.rect(x=X, y="mid", width=0.7 if kind == "columns" else 0.5, height="height",
                     source=src, fill_color=transform("fill", f), line_color=None)
        elif kind == "hlc_area":
            self._themed(fig.varea(x=X, y1="close", y2="high", source=src, fill_alpha=0.18),
                         fill_color="up")
            self._themed(fig.varea(x=X, y1="low", y2="close", source=src, fill_alpha=0.18),
                         fill_color="down")
            self._themed(fig.line(x=X, y="high", source=src, line_width=1), line_color="up")
            self._themed(fig.line(x=X, y="low", source=src, line_width=1), line_color="down")
            self._themed(fig.line(x=X, y="close", source=src, line_width=1.5), line_color="text")
        elif kind == "baseline":
            base = self._base()
            base = 0.0 if np.isnan(base) else base
            self._themed(fig.varea(x=X, y1=base, y2="above", source=src, fill_alpha=0.2),
                         fill_color="up")
            self._themed(fig.varea(x=X, y1="below", y2=base, source=src, fill_alpha=0.2),
                         fill_color="down")
            self._themed(fig.line(x=X, y="above", source=src, line_width=1.5), line_color="up")
            self._themed(fig.line(x=X, y="below", source=src, line_width=1.5),
                         line_color="down")
            span = Span(location=base, dimension="width", line_dash="dashed", line_width=1)
            fig.add_layout(span)
            self._restylers.append(lambda t, s=span: setattr(s, "line_color", t.muted))
            span.line_color = self._theme.muted
        else:  # line, line_markers, step, area
            if kind == "area":
                self._themed(fig.varea(x=X, y1=0, y2="close", source=src, fill_alpha=0.15),
                             fill_color="accent")
            if kind == "step":
                r = fig.step(x=X, y="close", source=src, mode="center", line_width=1.5)
            else:
                r = fig.line(x=X, y="close", source=src, line_width=1.5)
            self._themed(r, line_color="accent")
            if kind == "line_markers":
                self._themed(fig.scatter(x=X, y="close", source=src, size=4),
                             fill_color="accent", line_color="accent")
        self._last_line = Span(dimension="width", line_dash="dotted", line_width=1,
                               location=0, visible=False)
        # at the frame's right edge, inside it (annotations are clipped to the frame)
        self._last_label = Label(x=Node(target="frame", symbol="right", offset=-1), y=0,
                                 text="", anchor="center_right", text_font_size="11px",
                                 text_color="#ffffff", padding=2, visible=False)
        fig.add_layout(self._last_line)
        fig.add_layout(self._last_label)

    def _draw_transform(self, fig) -> None:
        """Kagi: vertical lines joined by horizontal ones, thick yang lines in the up colour,
        thin yin lines in the down colour; P&F: X and O boxes; Line Break: bricks."""
        X, d = axes.X, self._dir_map
        if self.chart_type == "kagi":
            for x0, y0, y1 in (("join", "y0", "y0"), (X, "y0", "y1")):
                fig.segment(x0=x0, y0=y0, x1=X, y1=y1, source=self.marks,
                            line_color=transform("dir", d), line_width="thick")
        elif self.chart_type == "point_and_figure":
            # boxes in data units (a column is 0.7 bars wide, a box 80% of its level's height),
            # so they keep their size on the grid at any zoom: Xs as two diagonals, Os as ellipses
            ups = CDSView(filter=GroupFilter(column_name="dir", group="up"))
            downs = CDSView(filter=GroupFilter(column_name="dir", group="down"))
            left, right = dodge(X, -0.35), dodge(X, 0.35)
            for y0, y1 in (("y0", "y1"), ("y1", "y0")):
                fig.segment(x0=left, y0=y0, x1=right, y1=y1, source=self.marks, view=ups,
                            line_width=1.6, line_color=transform("dir", d))
            fig.ellipse(x=X, y="y", width=0.7, height="box", source=self.marks, view=downs,
                        fill_color=None, line_width=1.6, line_color=transform("dir", d))
        else:
            fig.rect(x=X, y="mid", width=0.8, height="height", source=self.transform_source,
                     fill_color=transform("dir", d), line_color=transform("dir", d))

    def _draw_layer(self, fig, layer: StudyLayer, colours) -> None:
        src, X = layer.source, axes.X
        label = layer.label
        if self._is_transform and label in getattr(self, "_not_on_lines", ()):
            label += " (time bars only)"
        if layer.kind == "candles":
            colour = transform("dir", self._dir_map)
            fig.segment(x0=X, y0="low", x1=X, y1="high", source=src, line_color=colour)
            fig.rect(x=X, y="mid", width=0.6, height="height", source=src, fill_color=colour,
                     line_color=colour, legend_label=label)
        elif layer.kind == "markers":
            i = next(colours)
            r = fig.scatter(x=X, y="price", source=src, size=7, marker="diamond",
                            legend_label=label)
            self._palette_colour(r, i)
        else:
            cloud = [c for c in layer.columns if layer.short(c) in ("senkou_a", "senkou_b")]
            if len(cloud) == 2:  # Ichimoku's cloud between its two spans
                x = f"x_{cloud[0]}" if cloud[0] in layer.shifts else X
                r = fig.varea(x=x, y1=cloud[0], y2=cloud[1], source=src, fill_alpha=0.08)
                self._themed(r, fill_color="neutral")
            for col in layer.columns:
                i = next(colours)
                x = f"x_{col}" if col in layer.shifts else X
                name = f"{label} {layer.short(col)}" if len(layer.columns) > 1 else label
                if layer.short(col).endswith("hist"):  # MACD's histogram as columns
                    r = fig.rect(x=x, y=f"{col}_mid", height=f"{col}_height", width=0.6, source=src,
                                 fill_alpha=0.5, line_color=None, legend_label=name)
                else:
                    r = fig.line(x=x, y=col, source=src, line_width=1.3, legend_label=name)
                self._palette_colour(r, i)
        for legend in fig.legend:
            legend.location = "top_left"
            legend.label_text_font_size = "10px"
            legend.glyph_height = legend.glyph_width = 10
            legend.spacing = 0
            legend.padding = 2
            legend.click_policy = "hide"

    def _palette_colour(self, renderer, i: int) -> None:
        def apply(theme, glyph=renderer.glyph):
            colour = theme.palette[i % len(theme.palette)]
            glyph.update(**{k: colour for k in ("line_color", "fill_color")
                            if hasattr(glyph, k)})
        apply(self._theme)
        self._restylers.append(apply)


def _last_row(data: dict) -> int | None:
    """The last row drawn (rows past it may be blanks, see ``live_source.truncate``)."""
    close = data.get("close", [])
    for i in range(len(close) - 1, -1, -1):  # (from the end: blanks are few)
        if np.isfinite(close[i]):
            return i
    return None


def _last_readout(data: dict, i: int, decimals: int, theme: Theme) -> str:
    """The readout of row ``i`` (the last), as ``_READOUT`` writes it in the browser (shown
    until the cursor is over the chart, and after each live update)."""
    def value(label, text, colour):
        return (f'<span style="color:{theme.muted}">{label}</span> '
                f'<span style="color:{colour}">{text}</span>')

    def colour(v):
        return theme.up if v >= SIZE_NOISE else theme.down if v <= -SIZE_NOISE else theme.text

    def fmt(v, n):
        return "–" if v is None or not np.isfinite(v) else f"{v:,.{n}f}"

    def signed(v, n):
        return ("+" if v > 0 else "") + fmt(v, n)

    def size(v, signed=False):
        if v is None or not np.isfinite(v):
            return "–"
        return signed_size(v) if signed else format_size(v)
    row = {k: float(v[i]) for k, v in data.items() if k not in ("dir", "fill")}
    close = row["close"]
    rising = 1 if close >= row.get("open", close) else -1
    parts = []
    parts += [value(k[0].upper(), fmt(row[k], decimals), colour(rising))
              for k in ("open", "high", "low", "close") if k in row]
    if "change" in row:
        ch, prev = row["change"], close - row["change"]
        pct = f" ({signed(100 * ch / prev, 2)}%)" if np.isfinite(ch) and prev else ""
        parts.append(value("Chg", signed(ch, decimals) + pct, colour(ch)))
    if "volume" in row:
        parts.append(value("Vol", size(row["volume"]), theme.text))
    if "delta" in row:
        parts.append(value("Δ", size(row["delta"], signed=True), colour(row["delta"])))
    if "t" in row:  # last: a narrow chart cuts the readout's end, and the axis shows the time
        t = pd.to_datetime(row["t"], unit="ms")  # local wall-clock time (axes.local_ms)
        parts.append(f'<span style="color:{theme.muted}">{t:%Y-%m-%d %H:%M}'
                     f'{t.strftime(":%S") if t.second else ""}</span>')
    return "&nbsp;&nbsp;".join(parts)


def _cat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    if b is None or not len(b):
        return a.reset_index(drop=True)
    if a is None or not len(a):
        return b.reset_index(drop=True)
    return pd.concat([a, b], ignore_index=True)


def _writable(columns: dict) -> dict:
    """Columns Bokeh can patch in place (pandas hands out read-only views)."""
    return {k: np.array(v) for k, v in columns.items()}
