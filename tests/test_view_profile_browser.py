"""The volume profile, TPO and VWAP views in Chromium: each beside a simple candle chart over two
simulated ES sessions, dark and light; screenshots go to tests/artifacts/profile-<view>-<theme>.png
and the drawn pixels are checked for the view's own colours."""
import io
import textwrap

import numpy as np
import pytest
from PIL import Image

from dashboards.components.theme import THEMES
from tests.browser import ROOT, browser_page, panel_app

ARTIFACTS = ROOT / "tests" / "artifacts"

APP = textwrap.dedent('''
    import panel as pn
    from bokeh.models import Range1d

    from dashboards.components import axes
    from dashboards.components.profile import VolumeProfilePane, developing_overlay
    from dashboards.components.theme import THEMES, figure
    from dashboards.components.tpo import TPOPane
    from dashboards.components.vwap import vwap_overlay
    from tradeflow.bars import build
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.model import Instrument

    args = pn.state.session_args
    view = args.get("view", [b"volume"])[0].decode()
    theme = args.get("theme", [b"dark"])[0].decode()
    th = THEMES[theme]
    ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
    trades = MarketSimulator(ES, seed=7).generate("2026-03-03 13:00", "2026-03-04 19:00").trades
    bars, cells = build(trades, "5m", ES)
    x = list(range(len(bars)))
    src = dict(x=x, t=axes.local_ms(bars["ts"], ES.session.timezone), open=bars["open"],
               close=bars["close"], high=bars["high"], low=bars["low"],
               color=[th.up if c >= o else th.down for o, c in zip(bars["open"], bars["close"])])
    from bokeh.models import ColumnDataSource
    source = ColumnDataSource(src)
    low, high = float(bars["low"].min()), float(bars["high"].max())
    y_range = Range1d(low - 2, high + 2)
    price = figure(th, y_range=y_range, x_range=Range1d(-1, len(bars) + 1),
                   title="ES 5m (simulated)")
    price.xaxis.formatter = axes.time_formatter(source)
    price.yaxis.formatter = axes.price_formatter(ES.tick_size)
    price.segment("x", "high", "x", "low", source=source, color="color")
    price.vbar("x", 0.7, "open", "close", source=source, fill_color="color", line_color="color")
    if view == "volume":
        pane = VolumeProfilePane(instrument=ES, theme=theme, y_range=y_range,
                                 x_range=price.x_range, bars=bars, footprint=cells)
        pane.chart_overlay(price)
        developing_overlay(price, ES, bars, cells, theme=theme)
    elif view == "bidask":
        pane = VolumeProfilePane(instrument=ES, theme=theme, y_range=y_range, range="composite",
                                 color_by="bid_ask", bars=bars, footprint=cells)
    elif view == "tpo":
        pane = TPOPane(instrument=ES, theme=theme, y_range=y_range, bars=bars)
    else:
        vwap_overlay(price, ES, bars, theme=theme)
        pane = None
    parts = [price] if pane is None else [price, pane]
    pn.Row(*parts, sizing_mode="stretch_both",
           styles={"background": th.background}).servable()
''')


def colour(hex_: str) -> np.ndarray:
    return np.array([int(hex_[i:i + 2], 16) for i in (1, 3, 5)])


def share_near(pixels: np.ndarray, hex_: str, tol: int = 40) -> float:
    """Share of ``pixels`` (h x w x 3) within ``tol`` of the colour (any alpha blend nearby)."""
    return float((np.abs(pixels.astype(int) - colour(hex_)).sum(axis=2) < tol).mean())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    script = tmp_path_factory.mktemp("app") / "profile_views.py"
    script.write_text(APP)
    with panel_app(str(script)) as url:
        yield url + "/profile_views"


# view -> (the region of the page holding it, colours that must be drawn there)
CHECKS = {
    "volume": ("pane", ("poc", "accent")),
    "bidask": ("pane", ("up", "down")),
    "tpo": ("pane", ("poc", "text")),
    "vwap": ("chart", ("vwap",)),
}


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("view", list(CHECKS))
def test_each_view_draws_beside_a_price_chart(site, view, theme):
    ARTIFACTS.mkdir(exist_ok=True)
    th = THEMES[theme]
    with browser_page(1280, 760) as page:
        page.goto(f"{site}?view={view}&theme={theme}", timeout=120_000)
        page.wait_for_selector("canvas", timeout=120_000)
        page.wait_for_timeout(2500)  # the canvases finish drawing
        png = page.screenshot(path=str(ARTIFACTS / f"profile-{view}-{theme}.png"))
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    region, colours = CHECKS[view]
    width = pixels.shape[1]
    part = pixels[:, width - 280:] if region == "pane" else pixels[:, :width - 300]
    for name in colours:
        hex_ = th.palette[1] if name == "vwap" else getattr(th, name)
        assert share_near(part, hex_) > 0.0002, f"{view} {theme}: no {name} pixels drawn"
