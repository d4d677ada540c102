"""The desk: ``tradeflow serve`` serves it at ``/`` and ``/desk``.

Symbol search and watchlist, bar-spec, chart-type and study pickers (study settings panels made
from the catalogue), layouts of 1, 2 or 4 charts, dark and light themes, keyboard shortcuts.
The desk's state is its URL (``dashboards.chart_state.DeskConfig.to_query``), so a link reopens
the same desk. Market data comes from the running server (``tradeflow.server.context.current``:
its ``MarketData`` and hub, so the charts are live); under a plain ``panel serve`` from the
configured store, without the live feed. Bad input (URL or pickers) is said in the page, escaped.
"""
from __future__ import annotations

import html
import logging
import threading
import time

import pandas as pd
import panel as pn
import param
from panel.custom import JSComponent

from dashboards.chart import Chart, draws_studies
from dashboards.chart_state import (CHART_TYPES, LAYOUTS, PANES, ChartConfig, DeskConfig,
                                    StateError)
from dashboards.heatmap_chart import chart_class
from dashboards.components.axes import price_decimals
from dashboards.components.theme import theme_of
from dashboards.live import FALLBACK_MS, Reads, Waker, session_callback
from dashboards.pages import PageError, check_client, error_view, sources, template
from dashboards.study_params import settings_class, study_values
from data_access import StoreError
from indicators.catalogue import CATALOGUE
from indicators.registry import IndicatorError
from tradeflow.model import BarSpec, ModelError

pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)
log = logging.getLogger(__name__)

SPECS = {"Time": ["5s", "15s", "30s", "1m", "5m", "15m", "30m", "1h", "4h", "1d"],
         "Tick": ["T100", "T500", "T1000"], "Volume": ["V100", "V1000", "V10000"],
         "Range": ["R4", "R8", "R16"], "Renko": ["RK5", "RK10", "RK20"]}
SHORTCUTS = (("1 / 2 / 4", "one, two or four charts"), ("t", "dark / light theme"),
             ("f", "footprint"), ("c", "candles"), ("h", "order-book heatmap"),
             ("d", "DOM ladder on / off"), ("s", "time & sales on / off"), ("/", "symbol search"),
             ("[ / ]", "focus the previous / next chart"))
TOGGLES = {"d": "dom", "s": "tape"}  # keys that show or hide a side panel
CHART_HEIGHT = {1: 760, 2: 760, 4: 380}
WATCH_EVERY_MS = 5000  # (every 2 s, each session's table patch was 10% of the loop at 20)
STATE_EVERY_MS = 1000  # drawings and view ranges into the URL
# a button group's chosen button filled with the accent, the others outlined (Panel's default
# style marked it by a shade of grey 5/255 from the others', which could not be seen)
SELECTED = {"button_type": "primary", "button_style": "outline"}


class Keys(JSComponent):
    """The desk's keyboard shortcuts: a key pressed outside a text field is sent as ``key``
    (``"t:3"``: the key and a count, so the same key twice is two changes); ``/`` focuses the
    symbol search in the browser."""

    key = param.String(default="")

    _esm = """
    const KEYS = ['1', '2', '4', 't', 'f', 'c', 'h', 'd', 's', '/', '[', ']'];
    function find(root, selector) {  // through Panel's shadow roots
      const hit = root.querySelector(selector);
      if (hit) return hit;
      for (const el of root.querySelectorAll('*')) {
        if (el.shadowRoot) { const inner = find(el.shadowRoot, selector); if (inner) return inner; }
      }
      return null;
    }
    export function render({ model }) {
      let count = 0;
      document.addEventListener('keydown', (e) => {
        if (e.ctrlKey || e.metaKey || e.altKey || !KEYS.includes(e.key)) return;
        const typing = e.composedPath().some(
          (el) => el.tagName && ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName));
        if (typing) return;
        e.preventDefault();
        if (e.key === '/') {
          const box = find(document, '.desk-symbol input');
          if (box) { box.focus(); box.select(); }
          return;
        }
        count += 1;
        model.key = e.key + ':' + count;
      });
      return document.createElement('span');
    }
    """


_WATCHED: dict = {}  # id(store) -> (monotonic time, the rows): one read for every session
_WATCH_LOCK = threading.Lock()  # one read at a time: the sessions asking meanwhile wait for it


def _shared_watch_rows(marketdata) -> tuple[list[str], pd.DataFrame]:
    """:func:`_watch_rows`, read once per refresh period for all the sessions of a store (each
    session asking every 2 s made the watchlist a read per session, sent again unchanged). Runs
    on the reader threads: sessions asking while the read runs take its result (without the
    lock each started a read of its own, and 50 sessions kept the threads and cores busy)."""
    key = id(marketdata.store) if marketdata else None
    with _WATCH_LOCK:
        now = time.monotonic()
        kept = _WATCHED.get(key)
        if kept is not None and now - kept[0] < WATCH_EVERY_MS / 1e3 * 0.75:
            return kept[1]
        rows = _watch_rows(marketdata)
        _WATCHED[key] = (time.monotonic(), rows)
        return rows


def _watch_rows(marketdata) -> tuple[list[str], pd.DataFrame]:
    """The stored symbols, and the watchlist's rows as text: the last price (the instrument's
    decimals), the change since the previous close (else the day's open), the day's volume."""
    rows, symbols = [], []
    for inst in (marketdata.store.instruments() if marketdata else ()):
        symbols.append(inst.symbol)
        try:
            days = marketdata.store.bars(inst.symbol, "1d", last=2)
        except (ModelError, StoreError):
            days = None
        if days is None or not len(days):
            rows.append({"symbol": inst.symbol, "last": "–", "chg": "–", "volume": "–"})
            continue
        today = days.iloc[-1]
        base = days["close"].iloc[-2] if len(days) > 1 else today["open"]
        rows.append({"symbol": inst.symbol,
                     "last": f"{today['close']:,.{price_decimals(inst.tick_size)}f}",
                     "chg": f"{100 * (today['close'] / base - 1):+.2f}%" if base else "–",
                     "volume": _volume(today["volume"])})
    return symbols, pd.DataFrame(rows, columns=["symbol", "last", "chg", "volume"])


def patch_changed_cells(table: pn.widgets.Tabulator, rows: pd.DataFrame) -> bool:
    """Send only the cells of ``table`` that differ in ``rows`` when both hold the same rows
    (the same symbols, in order); False, and nothing done, when the table must be set whole."""
    shown = table.value
    if shown is None or list(shown.columns) != list(rows.columns) or \
            len(shown) != len(rows) or list(shown["symbol"]) != list(rows["symbol"]):
        return False
    changed = {}
    for column in rows.columns:
        cells = [(i, new) for i, (old, new) in enumerate(zip(shown[column], rows[column]))
                 if old != new]
        if cells:
            changed[column] = cells
    if changed:
        table.patch(changed, as_index=False)
    return True


def _volume(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


class Desk(pn.viewable.Viewer):
    """The desk page over ``marketdata`` (``tradeflow.marketdata.MarketData``), live from
    ``hub`` when given; ``config`` is its state (the URL's)."""

    def __init__(self, config: DeskConfig, marketdata, hub=None, run=None, symbols=(),
                 **params):
        super().__init__(**params)
        self.config, self.marketdata, self.hub, self.run = config, marketdata, hub, run
        self.symbols = list(symbols)
        self.reads = Reads(run)
        self._watching = False
        self._watch_read = None
        self._main = None
        self.charts: list[Chart | None] = []
        self._syncing = False
        self.alert = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["desk-alert"])
        # pickers (they act on the active chart)
        self.symbol = pn.widgets.AutocompleteInput(
            label="Symbol (/)", options=self.symbols, case_sensitive=False, min_characters=1,
            search_strategy="includes", restrict=False, css_classes=["desk-symbol"])
        self.spec = pn.widgets.Select(label="Bars", groups=SPECS, css_classes=["desk-spec"])
        self.spec_text = pn.widgets.TextInput(label="Other bars",
                                              placeholder="e.g. 2m, T250, R10",
                                              css_classes=["desk-spec-text"])
        self.heikin_ashi = pn.widgets.Checkbox(label="Heikin-Ashi")
        self.chart_type = pn.widgets.Select(label="Chart type", options=list(CHART_TYPES),
                                            css_classes=["desk-chart-type"])
        self.panes = pn.widgets.MultiChoice(label="Panes", options=list(PANES),
                                            css_classes=["desk-panes"])
        self.study = pn.widgets.AutocompleteInput(
            label="Add a study", options=CATALOGUE.names(), case_sensitive=False,
            search_strategy="includes", min_characters=1, restrict=False,
            css_classes=["desk-study"])
        self.add_study = pn.widgets.Button(label="Add", color="primary", width=60,
                                           css_classes=["desk-add-study"], align="end")
        self.study_panels = pn.Column(sizing_mode="stretch_width", css_classes=["desk-studies"])
        self.layout = pn.widgets.RadioButtonGroup(label="Layout", options=[1, 2, 4],
                                                  css_classes=["desk-layout"], **SELECTED)
        self.theme = pn.widgets.RadioButtonGroup(label="Theme", options=["dark", "light"],
                                                 css_classes=["desk-theme"], **SELECTED)
        self.active = pn.widgets.RadioButtonGroup(label="Chart", options=[1],
                                                  css_classes=["desk-active"], **SELECTED)
        self.watchlist = pn.widgets.Tabulator(
            _watch_rows(None)[1], show_index=False, disabled=True,
            selectable=1, sizing_mode="stretch_width", css_classes=["desk-watchlist"],
            header_filters=False, layout="fit_columns",
            # the symbol wider than the numbers: "BTCUSDT" and its header are not cut off
            widths={"symbol": "31%", "last": "27%", "chg": "20%", "volume": "22%"},
            titles={"volume": "vol"},
            # columns still sort on a click; their arrows (and the room kept for them) took the
            # headers' text
            configuration={"headerSortElement": ""},
            stylesheets=[".tabulator-col-title { padding-right: 0 !important; }"])
        self.keys = Keys(visible=True, width=0, height=0, sizing_mode="fixed")
        self.grid = pn.GridBox(ncols=1, sizing_mode="stretch_width", css_classes=["desk-grid"])
        self._build_charts()
        self._show_pickers()
        self.symbol.param.watch(self._on_symbol, "value")
        self.spec.param.watch(self._on_spec, "value")
        self.spec_text.param.watch(self._on_spec_text, "value")
        self.heikin_ashi.param.watch(self._on_spec, "value")
        self.chart_type.param.watch(self._on_type, "value")
        self.panes.param.watch(self._on_panes, "value")
        self.add_study.on_click(self._on_add_study)
        self.layout.param.watch(self._on_layout, "value")
        self.theme.param.watch(self._on_theme, "value")
        self.active.param.watch(self._on_active, "value")
        self.watchlist.param.watch(self._on_watch_pick, "selection")
        self.keys.param.watch(self._on_key, "key")
        self._refresh_watchlist()
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self.reads.wake = Waker(self.reads.apply)  # the watchlist shown once read
            self._callbacks = [
                session_callback(self.reads.apply, FALLBACK_MS),
                session_callback(self._refresh_watchlist, WATCH_EVERY_MS),
                session_callback(self._sync_states, STATE_EVERY_MS)]
            pn.state.on_session_destroyed(lambda _context: self.close())

    # --- charts -------------------------------------------------------------------------------
    @property
    def chart_config(self) -> ChartConfig:
        return self.config.charts[self.config.active]

    def _make_chart(self, i: int):
        config = self.config.charts[i]
        cls = chart_class(config)
        try:
            chart = cls(config, self.marketdata, self.hub, self.run,
                        height=CHART_HEIGHT[self.config.layout] - 30)
            return chart, chart
        except (ModelError, StoreError, IndicatorError, ValueError) as exc:
            known = ", ".join(self.symbols) or "none yet"
            return None, error_view(PageError(f"chart {i + 1}: {exc}",
                                              f"stored symbols: {known}"))

    def _cell(self, i: int, view):
        config = self.config.charts[i]
        title = html.escape(f"{i + 1} · {config.symbol} {config.spec} {config.chart_type}")
        active = i == self.config.active and self.config.layout > 1
        t = theme_of(self.config.theme)
        head = pn.pane.HTML(
            f'<div class="desk-chart-title" style="color:{t.text};font:13px sans-serif;'
            f'padding:2px 6px;border-left:3px solid {t.accent if active else t.grid}">{title}'
            '</div>', sizing_mode="stretch_width", margin=0)
        return pn.Column(head, view, height=CHART_HEIGHT[self.config.layout],
                         sizing_mode="stretch_width", css_classes=[f"desk-chart-{i + 1}"],
                         margin=(2, 4))

    def _build_charts(self) -> None:
        for chart in self.charts:
            if chart is not None:
                chart.close()
        self.charts, cells = [], []
        for i in range(self.config.layout):
            chart, view = self._make_chart(i)
            self.charts.append(chart)
            cells.append(self._cell(i, view))
        self.grid.ncols = 1 if self.config.layout == 1 else 2
        self.grid.objects = cells

    def _rebuild(self, i: int | None = None) -> None:
        """Make chart ``i`` (default: the active one) again from its config."""
        i = self.config.active if i is None else i
        old = self.charts[i]
        if old is not None:
            self.config.charts[i] = old.state()
            old.close()
        chart, view = self._make_chart(i)
        self.charts[i] = chart
        cells = list(self.grid.objects)
        cells[i] = self._cell(i, view)
        self.grid.objects = cells
        self._sync_url()

    # --- pickers ------------------------------------------------------------------------------
    def _show_pickers(self) -> None:
        """The pickers show the active chart's choices (without acting on them)."""
        self._syncing = True
        try:
            c = self.chart_config
            spec = BarSpec.parse(c.spec)
            plain = str(spec.base)
            self.symbol.value = c.symbol
            known = any(plain in v for v in SPECS.values())
            self.spec.value = plain if known else self.spec.value
            self.spec_text.value = "" if known else plain
            self.heikin_ashi.value = spec.heikin_ashi
            self.chart_type.value = c.chart_type
            self.panes.value = list(c.panes)
            self.layout.value = self.config.layout
            self.theme.value = self.config.theme
            self.active.options = list(range(1, self.config.layout + 1))
            self.active.value = self.config.active + 1
            self._show_studies()
        finally:
            self._syncing = False

    def _show_studies(self) -> None:
        panels = []
        kind = self.chart_config.chart_type
        # said in each card: a study added to a footprint was kept and silently not drawn
        not_drawn = [] if draws_studies(kind) else [pn.pane.HTML(
            f'<span style="color:{theme_of(self.config.theme).down}">Not drawn on a '
            f'{html.escape(kind)} chart: candles and the other bar types draw it</span>',
            css_classes=["desk-not-drawn"], sizing_mode="stretch_width")]
        for k, entry in enumerate(self.chart_config.studies):
            info = CATALOGUE.get(entry["name"])
            settings = settings_class(info)(**entry["params"])
            settings.param.watch(lambda _e, k=k, s=settings: self._on_setting(k, s),
                                 [p.name for p in info.params] or [])
            remove = pn.widgets.Button(label="Remove", button_type="danger",
                                       button_style="outline", width=80,
                                       css_classes=["desk-remove-study"])
            remove.on_click(lambda _e, k=k: self._remove_study(k))
            # numbers typed (a slider over 2..100000 cannot pick 21)
            widgets = {p.name: pn.widgets.IntInput if p.type == "int" else pn.widgets.FloatInput
                       for p in info.params if p.type in ("int", "float")}
            panels.append(pn.Card(
                *not_drawn, pn.Param(settings, show_name=False, sizing_mode="stretch_width",
                                     widgets=widgets), remove,
                title=f"{info.name}: {info.title}", collapsed=False, sizing_mode="stretch_width",
                header_color=theme_of(self.config.theme).text,
                header_background=theme_of(self.config.theme).grid,
                css_classes=["desk-study-card", f"desk-study-{info.key}"]))
        self.study_panels.objects = panels

    def _say(self, problem: str = "", advice: str = "") -> None:
        self.alert.object = "" if not problem else error_view(
            PageError(problem, advice), redact=False).object

    def _change(self, **doc) -> bool:
        """Apply checked changes to the active chart (a bad value is said, nothing changes)."""
        try:
            checked = ChartConfig.check(doc)
        except StateError as exc:
            self._say(str(exc), "the chart keeps its previous settings")
            return False
        self._say()
        if "symbol" in checked and checked["symbol"] not in self.symbols:
            self._say(f"unknown symbol {checked['symbol']!r}",
                      f"stored symbols: {', '.join(self.symbols) or 'none yet'}")
            return False
        if "symbol" in checked and checked["symbol"] != self.chart_config.symbol:
            checked["drawings"] = []  # drawings belong to the symbol's prices
            checked["view_range"] = None
        if "spec" in checked:
            checked["view_range"] = None
        if all(getattr(self.chart_config, k) == v for k, v in checked.items()):
            return True  # nothing changed: the chart stays as it is
        self.chart_config.param.update(**checked)
        self._rebuild()
        return True

    def _on_symbol(self, event) -> None:
        if not self._syncing and event.new:
            self._change(symbol=event.new.strip())

    def _current_spec(self) -> str:
        spec = self.spec_text.value.strip() or self.spec.value
        return spec + (":HA" if self.heikin_ashi.value else "")

    def _on_spec(self, _event) -> None:
        if not self._syncing:
            self._syncing = True
            self.spec_text.value = ""
            self._syncing = False
            self._change(spec=self._current_spec())

    def _on_spec_text(self, event) -> None:
        if not self._syncing and event.new.strip():
            self._change(spec=self._current_spec())

    def _on_type(self, event) -> None:
        if not self._syncing and self._change(chart_type=event.new):
            self._show_studies()  # (whether the type draws them)

    def _on_panes(self, event) -> None:
        if not self._syncing:
            self._change(panes=list(event.new))

    def _on_add_study(self, _event) -> None:
        name = (self.study.value or self.study.value_input or "").strip()
        if not name:
            self._say("no study chosen", "type a study's name, e.g. RSI, then Add")
            return
        studies = [dict(s) for s in self.chart_config.studies] + [{"name": name}]
        if self._change(studies=studies):
            self.study.value = ""
            self._show_studies()

    def _on_setting(self, k: int, settings) -> None:
        try:
            values = study_values(settings)
        except IndicatorError as exc:
            self._say(str(exc), "the study keeps its previous settings")
            return
        studies = [dict(s) for s in self.chart_config.studies]
        studies[k] = {"name": studies[k]["name"], "params": values}
        self._change(studies=studies)

    def _remove_study(self, k: int) -> None:
        studies = [dict(s) for j, s in enumerate(self.chart_config.studies) if j != k]
        self._change(studies=studies)
        self._show_studies()

    def _on_layout(self, event) -> None:
        if self._syncing or event.new not in LAYOUTS:
            return
        self._keep_states()
        self.config.layout = event.new
        self.config.fill()
        self._build_charts()
        self._show_pickers()
        self._sync_url()

    def _on_theme(self, event) -> None:
        if self._syncing:
            return
        self.config.theme = event.new
        self.config.fill()  # every chart's config takes the theme; their views restyle
        self._sync_url()
        # the page's widgets take the theme on reload (a template is themed as it is made). The
        # reload goes in a message after the URL's: in one message with it, the browser went to
        # the new URL and then reloaded it, two loads of the page.
        location = pn.state.location

        def reload():
            location.reload = True

        pn.state.execute(reload, schedule=True)

    def _on_active(self, event) -> None:
        if self._syncing:
            return
        self.config.active = event.new - 1
        self._show_pickers()
        self._restyle_cells()
        self._sync_url()

    def _restyle_cells(self) -> None:
        cells = list(self.grid.objects)
        for i, chart in enumerate(self.charts):
            view = chart if chart is not None else cells[i].objects[1]
            cells[i] = self._cell(i, view)
        self.grid.objects = cells

    def _on_watch_pick(self, event) -> None:
        if event.new:
            symbol = self.watchlist.value["symbol"].iloc[event.new[0]]
            self.symbol.value = symbol  # as if typed: the active chart changes

    def _on_key(self, event) -> None:
        key = event.new.split(":")[0]
        if key in ("1", "2", "4"):
            self.layout.value = int(key)
        elif key == "t":
            self.theme.value = "light" if self.config.theme == "dark" else "dark"
        elif key == "f":
            self.chart_type.value = "footprint"
        elif key == "c":
            self.chart_type.value = "candles"
        elif key == "h":
            self.chart_type.value = "heatmap"
        elif key in TOGGLES:
            pane = TOGGLES[key]
            shown = list(self.panes.value)
            self.panes.value = [p for p in shown if p != pane] if pane in shown else \
                shown + [pane]
        elif key in "[]" and self.config.layout > 1:
            step = 1 if key == "]" else -1
            self.active.value = (self.config.active + step) % self.config.layout + 1

    def _refresh_watchlist(self) -> None:
        if self._watching:
            return  # the last read is still running
        self._watching = True

        def show(read):
            self._watching = False
            shown, self._watch_read = self._watch_read, read
            if shown is not None and (read is shown or (
                    read[0] == shown[0] and read[1].equals(shown[1]))):
                return  # nothing new: not sent again
            symbols, rows = read
            # (a new table was ~13 ms of the loop per session every 2 s, all the sessions at
            # once: live updates waited behind the burst)
            if not patch_changed_cells(self.watchlist, rows):
                self.watchlist.value = rows.copy()  # its own: patches change it in place
            if symbols != self.symbols:
                self.symbols = symbols
                self._syncing = True  # new options are not a choice of symbol
                try:
                    self.symbol.options = symbols
                finally:
                    self._syncing = False

        def failed(exc):
            self._watching = False
            log.warning("the watchlist could not be read: %s", exc)
        self.reads.submit(_shared_watch_rows, self.marketdata, then=show, failed=failed)

    # --- state --------------------------------------------------------------------------------
    def _keep_states(self) -> None:
        for i, chart in enumerate(self.charts):
            if chart is not None:
                self.config.charts[i] = chart.state()

    def _sync_states(self) -> None:
        """The charts' drawings and view ranges into the URL, when they changed."""
        self._keep_states()
        self._sync_url()

    def _sync_url(self) -> None:
        if pn.state.location is not None:
            try:
                query = self.config.to_query()
            except StateError as exc:  # too many drawings for a link: the URL keeps the last
                self._say(str(exc), "the drawings are kept while the page is open")
                return
            search = f"?{query}" if query else ""
            if pn.state.location.search != search:  # (each change is a browser history entry)
                pn.state.location.search = search

    def close(self) -> None:
        for callback in getattr(self, "_callbacks", ()):
            callback.stop()
        self.reads.close()
        for chart in self.charts:
            if chart is not None:
                chart.close()

    def sidebar(self) -> list:
        t = theme_of(self.config.theme)
        keys = "".join(f"<tr><td><kbd>{html.escape(k)}</kbd></td><td>{html.escape(v)}</td></tr>"
                       for k, v in SHORTCUTS)
        help_ = pn.pane.HTML(
            f'<details class="desk-shortcuts" style="color:{t.text}"><summary>Keyboard '
            f'shortcuts</summary><table>{keys}</table></details>')
        return [self.symbol, self.watchlist, pn.Row(self.spec, self.heikin_ashi),
                self.spec_text, self.chart_type, self.panes, pn.Row(self.study, self.add_study),
                self.study_panels, pn.pane.Markdown("Layout"), self.layout,
                pn.pane.Markdown("Focused chart"), self.active, pn.pane.Markdown("Theme"),
                self.theme, help_, self.keys]

    def __panel__(self):
        if self._main is None:  # one layout, however often Panel asks
            self._main = pn.Column(self.alert, self.grid, sizing_mode="stretch_width")
        return self._main


class _StateProblem(PageError):
    """A desk state that cannot be used (its text is the user's, never a store URL)."""


def _page(title: str, theme: str, main: list, sidebar=()):
    t = theme_of(theme)
    try:
        return template(
            title=html.escape(title), main=main, sidebar=list(sidebar),
            theme="default" if theme == "light" else theme, theme_toggle=False, main_layout=None,
            sidebar_width=300, accent_base_color=t.accent, header_background=t.background,
            header_color=t.text, background_color=t.background)
    except KeyError:  # the template reads ?theme= itself and fails on a value it does not know
        return pn.Row(pn.Column(*sidebar, width=300), pn.Column(*main),
                      styles={"background": t.background})


def app():
    theme = "dark"
    try:
        check_client()
        try:
            config = DeskConfig.from_query(pn.state.session_args or {})
        except StateError as exc:
            raise _StateProblem(f"this desk link cannot be opened: {exc}",
                            "fix that part of the URL, or open / for the default desk") from None
        theme = config.theme
        marketdata, hub, run, symbols = sources()
        desk = Desk(config, marketdata, hub, run, symbols)
    except PageError as exc:
        log.info("the desk refused a request: %s", exc.problem)
        return _page("TradeFlow · desk", theme, [
            error_view(exc, redact=not isinstance(exc, _StateProblem))])
    except Exception:  # noqa: BLE001 -- a page never goes blank; the details go to the log
        log.exception("the desk failed")
        return _page("TradeFlow · desk", theme, [error_view(PageError(
            "the desk could not be built (an internal error)",
            "the server log has the details; reload the page to try again"))])
    return _page("TradeFlow · desk", config.theme, [desk], desk.sidebar())


app().servable()
