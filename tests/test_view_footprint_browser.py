"""The footprint chart in Chromium: zoomed in it writes the numbers, zoomed out it shows the
Datashader image; dark and light. Screenshots go to tests/artifacts/footprint-*.png."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dashboards.components.theme import THEMES
from tests.browser import ROOT, browser_page, panel_app

ARTIFACTS = ROOT / "tests" / "artifacts"

PAGE = textwrap.dedent('''
    import pandas as pd
    import panel as pn

    from dashboards.components.delta import CVDPane, DeltaPane
    from dashboards.components.footprint import FootprintChart
    from dashboards.components.theme import THEMES
    from tradeflow.bars import build
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.model import Instrument

    ES = Instrument("ES", 0.25, exchange="CME", asset_class="future", point_value=50.0,
                    session="America/Chicago 08:30-15:15,17:00-16:00")
    args = pn.state.session_args
    theme = args.get("theme", [b"dark"])[0].decode()
    zoom = args.get("zoom", [b"in"])[0].decode()
    cell = args.get("cell", [b"bid_ask"])[0].decode()
    color_by = args.get("color_by", [b"delta"])[0].decode()
    trades = MarketSimulator(ES, seed=7).generate(pd.Timestamp("2024-03-13 14:30", tz="UTC"),
                                                  pd.Timestamp("2024-03-13 17:30", tz="UTC")).trades
    bars, cells = build(trades, "1m", ES)
    chart = FootprintChart(bars.iloc[:-1], cells[cells["ts"] < bars["ts"].iloc[-1]],
                           current=bars.iloc[-1:], current_footprint=cells[cells["ts"] == bars["ts"].iloc[-1]],
                           instrument=ES, theme=theme, height=560, cell=cell, color_by=color_by)
    chart.text.name, chart.image.name = "fp-text", "fp-image"
    chart.cells.name, chart.bars.source.name = "fp-cells", "fp-bars"
    if zoom == "out":
        chart.x_range.update(start=-0.5, end=len(bars) + 1.5)
        chart.y_range.update(start=float(bars["low"].min()) - 1, end=float(bars["high"].max()) + 1)
    delta = DeltaPane(bars, instrument=ES, theme=theme, height=110, x_range=chart.x_range,
                      crosshair=chart.crosshair)
    flow = CVDPane(bars, instrument=ES, theme=theme, trades=trades, style="candles", height=120,
                   x_range=chart.x_range, crosshair=chart.crosshair)
    pn.Column(chart, delta, flow, sizing_mode="stretch_width",
              styles={"background": THEMES[theme].background}).servable()
''')

FILLED = """(name) => {
  const doc = window.Bokeh && window.Bokeh.documents[0];
  if (!doc) return false;
  const src = doc.get_model_by_name(name);
  const data = src && src.data;
  return !!data && ((data.x && data.x.length > 0) || (data.image && data.image.length > 0));
}"""


def colour_share(png: Path, colour: str, tol: int = 40) -> float:
    """The share of the screenshot's pixels within ``tol`` of ``colour`` (per channel)."""
    px = np.asarray(Image.open(png).convert("RGB"), dtype=int)
    want = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(px - want).max(axis=2) <= tol).mean())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    script = tmp_path_factory.mktemp("page") / "footprint_page.py"
    script.write_text(PAGE)
    with panel_app(str(script)) as url:
        yield f"{url}/footprint_page"


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_footprint_numbers_zoomed_in_and_heatmap_zoomed_out(served, theme):
    ARTIFACTS.mkdir(exist_ok=True)
    colours = THEMES[theme]
    with browser_page(1400, 900) as page:
        for zoom, filled in (("in", "fp-text"), ("out", "fp-image")):
            page.goto(f"{served}?theme={theme}&zoom={zoom}")
            # the browser reports its view, the server answers with numbers or an image
            page.wait_for_function(FILLED, arg=filled, timeout=60_000)
            page.wait_for_timeout(1500)
            png = ARTIFACTS / f"footprint-{zoom}-{theme}.png"
            page.screenshot(path=str(png), full_page=True)
            other = "fp-image" if zoom == "in" else "fp-text"
            assert not page.evaluate(FILLED, other)
            # candles, delta columns and coloured cells in the theme's up and down colours
            assert colour_share(png, colours.up) > 0.002
            assert colour_share(png, colours.down) > 0.002
            # the page is the theme's, not a blank white or black one
            assert colour_share(png, colours.background, 8) > 0.2


# the bars (x) of the rows each renderer of a source draws, and the x range in view
DRAWN = """(name) => {
  const doc = window.Bokeh.documents[0];
  const src = doc.get_model_by_name(name);
  const drawn = [...doc.all_models].filter(m => m.data_source === src && m.view && m.glyph &&
                                                m.view.filter.type === "CustomJSFilter")
                                   .map(r => [...r.view.indices.ones()].map(i => src.data.x[i]));
  const xr = drawn.length ? doc.all_models.values().find(
      m => m.type === "CustomJSFilter").args.xr : null;
  return {drawn, rows: src.data.x.length, last: Math.max(...src.data.x), start: xr && xr.start,
          end: xr && xr.end};
}"""
PAN = """([start, end]) => {
  const xr = [...window.Bokeh.documents[0].all_models].find(m => m.type === "CustomJSFilter").args.xr;
  xr.setv({start, end});
  return new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
}"""


def test_only_the_bars_in_view_are_drawn_and_a_pan_draws_the_bars_it_reaches(served):
    """The day's cells and bars are drawn through a filter of the bars in view (one bar of
    margin each side), run in the browser again when the view reaches other bars."""
    with browser_page(1400, 900) as page:
        page.goto(f"{served}?theme=dark&zoom=in")
        page.wait_for_function(FILLED, arg="fp-text", timeout=60_000)
        for span in (None, (20.5, 30.5), (-0.5, 6.5)):
            if span is not None:
                page.evaluate(PAN, list(span))
            for name in ("fp-cells", "fp-bars"):
                got = page.evaluate(DRAWN, name)
                assert len(got["drawn"]) >= 2, name  # cells, profile; candle, POC, totals
                lo, hi = np.floor(got["start"]) - 1, np.ceil(got["end"]) + 1
                for xs in got["drawn"]:
                    assert xs and lo <= min(xs) and max(xs) <= hi, (name, span, min(xs), max(xs))
                    # every bar in view is drawn (all the bars' rows; the cells of each bar)
                    assert set(np.arange(max(lo, 0), min(hi, got["last"]) + 1)) <= set(xs), (name, span)
                assert got["rows"] > max(len(xs) for xs in got["drawn"])
