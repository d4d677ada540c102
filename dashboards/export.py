"""A chart as a file: one standalone HTML document (BokehJS inlined: it opens from disk with no
server and no network) or a PNG of that document rendered in headless Chromium.

The chart is the desk's :class:`~dashboards.chart.Chart`, ``static``, over the bars asked for,
all of them in view. What needs the server in the desk is settled when the file is written:

* the footprint draws every cell of the range as a rect and writes every number, and the
  browser shows the numbers while a cell is readable (``FootprintChart.static``); the
  Datashader image, which only the server re-renders on zoom, is not used. So the range is
  bounded (:data:`MAX_BARS`, :data:`MAX_CELLS`).
* zoom, pan, the crosshair, the price chart's readout and its price-axis fit are JavaScript
  already;
* nothing is live and no older history is read on scrolling: the file holds the bars asked for.

The document holds Bokeh's models only (checked), so Bokeh's own scripts are all it needs: no
Panel script, no external script of any other library.
"""
from __future__ import annotations

import copy
import html
import os
import re
import tempfile
from pathlib import Path

from bokeh.core.templates import get_env
from bokeh.embed import file_html
from bokeh.layouts import row
from bokeh.resources import Resources

from dashboards.chart import SHOWN_BARS, SHOWN_FOOTPRINT, Chart
from dashboards.chart_state import ChartConfig, StateError, parse_studies
from dashboards.components.theme import theme_of
from data_access import StoreError
from tradeflow.model import ModelError

__all__ = ["ExportError", "FORMATS", "MAX_BARS", "MAX_CELLS", "PNG_SIZE", "chart_config",
           "chart_html", "png_of", "write_file"]

FORMATS = ("html", "png")
MAX_BARS = {"footprint": 1_000, "other": 20_000}  # bars a file may hold
MAX_CELLS = 200_000  # footprint cells (rows) a file may hold: each is drawn and written
PNG_SIZE = (1280, 720)  # pixels, when not given
_OPTIONS = {"symbol": "SYMBOL", "spec": "--spec", "chart_type": "--type", "theme": "--theme"}
_TEMPLATE = get_env().from_string(
    '{% extends "file.html.jinja" %}{% block preamble %}<style>body { background: '
    '{{ background }}; }</style>{% endblock %}')


class ExportError(ValueError):
    """A chart that cannot be written as asked; the message says what and where."""


class _BokehOnly(Resources):
    """Bokeh's scripts and styles inlined, and no other: Bokeh would add the external scripts
    of every model class loaded (Panel's, a relative path that does not exist beside the
    file), though the document uses Bokeh's models only."""

    @property
    def js_files(self) -> list[str]:
        return []

    @property
    def css_files(self) -> list[str]:
        return []

    def clone(self, *, components=None) -> "_BokehOnly":  # Bokeh clones what it is given
        twin = copy.copy(self)
        twin.components = list(components if components is not None else self.components)
        return twin


def chart_config(symbol: str, spec: str = "1m", chart_type: str = "candles",
                 studies: str = "", theme: str = "dark") -> ChartConfig:
    """The chart asked for, checked; a bad value is one :class:`ExportError` line naming the
    command's option (``--spec: bar spec '5x' not understood: ...``)."""
    try:
        chosen = parse_studies(studies, "--studies") if studies.strip() else []
        if chosen and chart_type == "footprint":
            raise StateError("--studies: the footprint draws its own order-flow marks; studies "
                             "go on the other chart types (candles, ohlc, line ...)")
        return ChartConfig.from_dict({"symbol": symbol, "spec": spec, "chart_type": chart_type,
                                      "studies": chosen, "theme": theme})
    except StateError as exc:
        message = str(exc)
        for field, option in _OPTIONS.items():
            message = re.sub(rf"^{field}:", f"{option}:", message)
        raise ExportError(message) from None


def chart_html(marketdata, config: ChartConfig, start=None, end=None, last: int | None = None,
               size: tuple[int, int] | None = None) -> str:
    """The standalone HTML document of ``config`` over ``marketdata``'s bars from ``start`` to
    ``end`` (or the ``last`` ones; none of them: as many as the desk shows first).

    ``size``: (width, height) in pixels; None: the chart fills the browser's window."""
    kind = "footprint" if config.chart_type == "footprint" else "other"
    if last is None and start is None:
        last = SHOWN_FOOTPRINT + 2 if kind == "footprint" else SHOWN_BARS
    cap = MAX_BARS[kind]
    what = f"{config.symbol} {config.spec}"
    # the bars alone first (one more than a file may hold): a range too long or empty is said
    # before its footprint is read and drawn
    try:
        marketdata.store.instrument(config.symbol)  # unknown: ModelError, not "no bars"
        n = len(marketdata.bars(config.symbol, config.spec, start, end, min(last or cap + 1,
                                                                               cap + 1)))
    except (ModelError, StoreError) as exc:
        raise ExportError(f"{what}: {exc}") from None
    if n > cap:
        raise ExportError(f"{what}: more than {cap:,} bars from {start or 'the start'} to "
                          f"{end or 'the end'}; a file holds at most {cap:,} "
                          f"{'footprint ' if kind == 'footprint' else ''}bars: use --last, a "
                          "shorter range or a larger --spec")
    if n == 0:
        where = f" from {start or 'the start'} to {end or 'the end'}" if start or end else ""
        raise ExportError(f"{what}: no bars{where}: nothing to draw")
    chart = _chart(config, marketdata, start, end, min(last or cap, cap))
    cells = getattr(chart.view, "cells", None)
    if cells is not None and len(cells.data["x"]) > MAX_CELLS:
        raise ExportError(f"{what}: the footprint of these {n:,} bars has "
                          f"{len(cells.data['x']):,} cells; a file holds at most "
                          f"{MAX_CELLS:,}: use --last, a shorter range or a larger --spec")
    if kind == "footprint":  # its title says the row size only: a file needs the chart's name
        chart.figure.title.text = f"{what}   {chart.figure.title.text}"
    root = row(*[view.__panel__().object for view in (chart.view, *chart.panes)],
               sizing_mode="stretch_both")
    if size is not None:
        root.update(sizing_mode="fixed", width=size[0], height=size[1])
    foreign = sorted({type(m).__module__ for m in root.references()
                      if not type(m).__module__.startswith("bokeh.")})
    if foreign:  # their scripts are not in the file: it would draw nothing
        raise RuntimeError(f"a static chart holds models of {', '.join(foreign)}")
    theme = theme_of(config.theme)
    return file_html(root, _BokehOnly(mode="inline"),
                     title=f"{config.symbol} {config.spec} {config.chart_type}",
                     template=_TEMPLATE,
                     template_variables={"background": html.escape(theme.background)},
                     suppress_callback_warning=True)  # the views' Python callbacks stay unused


def _chart(config, marketdata, start, end, last) -> Chart:
    try:
        chart = Chart(config, marketdata, start=start, end=end, last=last, static=True,
                      read_only=True)  # a file: zoom, pan and crosshair; no drawing tools
    except ValueError as exc:  # a view refusing its settings (a study it does not draw)
        raise ExportError(f"{config.symbol} {config.spec}: {exc}") from None
    if chart.error is not None:  # the read failed: an unknown symbol, a store refusing
        raise ExportError(f"{config.symbol} {config.spec}: {chart.error}")
    return chart


def png_of(browser, document: str, size: tuple[int, int] = PNG_SIZE) -> bytes:
    """The PNG (``size`` pixels) of an HTML ``document`` drawn in ``browser`` (a Playwright
    Chromium: ``tradeflow.browser.launch()``) with no network: a request that is not for the
    file itself is refused, and an error."""
    width, height = size
    with tempfile.TemporaryDirectory(prefix="tradeflow-png-") as folder:
        page_file = Path(folder) / "chart.html"
        page_file.write_text(document, encoding="utf-8")
        url = page_file.as_uri()
        asked = []

        def only_the_file(route):
            if route.request.url == url:
                route.continue_()
            else:
                asked.append(route.request.url)
                route.abort()

        page = browser.new_page(viewport={"width": width, "height": height})
        try:
            page.route("**/*", only_the_file)
            page.goto(url)
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                                   "Bokeh.documents[0].is_idle", timeout=60_000)
            # two frames: what the last callbacks changed is painted
            page.evaluate("() => new Promise(done => requestAnimationFrame(() => "
                          "requestAnimationFrame(done)))")
            image = page.screenshot(type="png")
        finally:
            page.close()
        if asked:
            raise RuntimeError(f"the chart asked for {asked[0]}: a file must need no network")
    return image


def write_file(path: str | os.PathLike, data: bytes) -> None:
    """``data`` into ``path`` whole or not at all: written to a temporary file beside it, then
    renamed over it."""
    path = Path(path)
    fd, part = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(part, 0o666 & ~umask)  # as a plain open() would make it
        os.replace(part, path)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise

