"""The desk: its state as JSON and as a URL (pure Python), and the served desk end to end in
Chromium (``tradeflow serve --simulate``)."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import expect

from dashboards.chart_state import (CHART_TYPES, DRAWING_POINTS, PANES, ChartConfig, DeskConfig,
                                    StateError, format_studies, parse_studies)
from indicators.catalogue import CATALOGUE
from tests.browser import BARS_JS

# --- the state document ------------------------------------------------------------------------

STUDIES = ["RSI", "EMA", "MA", "BBANDS", "MACD", "cvd", "session_vwap", "imbalances", "volume_profile"]
SYMBOL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/^:=@$#!"


@st.composite
def study_entries(draw):
    info = CATALOGUE.get(draw(st.sampled_from(STUDIES)))
    params = {}
    for p in info.params:
        if not draw(st.booleans()):
            continue
        if p.type == "choice":
            params[p.name] = draw(st.sampled_from(list(p.choices)))
        elif p.type == "bool":
            params[p.name] = draw(st.booleans())
        elif p.type == "int":
            params[p.name] = draw(st.integers(p.min, min(p.max, p.min + 500)))
        else:
            params[p.name] = draw(st.floats(p.min, p.max, allow_nan=False))
    return {"name": info.name, "params": params}


times = st.datetimes(min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
                     max_value=pd.Timestamp("2090-01-01").to_pydatetime()).map(
    lambda d: pd.Timestamp(d, tz="UTC").isoformat())
prices = st.floats(0.01, 1e6, allow_nan=False)


@st.composite
def drawings(draw):
    kind = draw(st.sampled_from(sorted(DRAWING_POINTS)))
    points = [{"t": draw(times), "dx": draw(st.floats(-50, 50, allow_nan=False)),
               "price": draw(prices)} for _ in range(DRAWING_POINTS[kind])]
    out = {"kind": kind, "points": points}
    if kind == "text":
        out["text"] = draw(st.text(st.characters(codec="utf-8", categories=["L", "N", "P"],
                                                include_characters=" "),
                                   max_size=40))
    return out


@st.composite
def chart_docs(draw):
    start = pd.Timestamp(draw(times))
    return {"symbol": draw(st.text(SYMBOL_CHARS, min_size=1, max_size=12).filter(
                lambda s: any(c.isalnum() for c in s))),
            "spec": draw(st.sampled_from(["1m", "5s", "4h", "1d", "T500", "V1000", "R8", "RK10",
                                          "5m:HA"])),
            "chart_type": draw(st.sampled_from(CHART_TYPES)),
            "panes": draw(st.lists(st.sampled_from(PANES), unique=True, max_size=3)),
            "studies": draw(st.lists(study_entries(), max_size=4)),
            "drawings": draw(st.lists(drawings(), max_size=4)),
            "view_range": draw(st.one_of(st.none(), st.just(
                [start.isoformat(), (start + pd.Timedelta(hours=3)).isoformat()]))),
            "theme": draw(st.sampled_from(["dark", "light"]))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chart_docs())
def test_a_chart_round_trips_through_its_json_document(doc):
    chart = ChartConfig.from_dict(doc)
    again = ChartConfig.from_json(chart.to_json())
    assert again == chart
    assert again.to_json() == chart.to_json()
    # what was asked is what is held: names as the catalogue has them, settings with defaults
    assert [s["name"] for s in again.studies] == [CATALOGUE.get(s["name"]).name
                                                   for s in doc["studies"]]
    for asked, held in zip(doc["studies"], again.studies):
        assert held["params"] == CATALOGUE.get(asked["name"]).check_params(asked["params"])
    for asked, held in zip(doc["drawings"], again.drawings):
        assert [pd.Timestamp(p["t"]) for p in held["points"]] == [
            pd.Timestamp(p["t"]) for p in asked["points"]]
        assert [p["price"] for p in held["points"]] == [p["price"] for p in asked["points"]]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([1, 2, 4]), st.sampled_from(["dark", "light"]), st.data())
def test_the_desk_round_trips_through_its_url(layout, theme, data):
    charts = [ChartConfig.from_dict(data.draw(chart_docs())) for _ in range(layout)]
    desk = DeskConfig(layout=layout, theme=theme, charts=charts,
                      active=data.draw(st.integers(0, layout - 1)))
    query = desk.to_query()
    assert DeskConfig.from_query(query) == desk
    assert DeskConfig.from_json(desk.to_json()) == desk


def test_the_url_is_short_and_readable():
    desk = DeskConfig.from_query("layout=2&studies=RSI(timeperiod=21),MA(matype=EMA),CVD"
                                 "&type=candles&symbol2=ES&spec2=T500")
    assert desk.to_query() == ("layout=2&type=candles&studies=RSI(timeperiod=21),MA(matype=EMA),"
                               "cvd&symbol2=ES&spec2=T500")
    assert desk.charts[0].studies[1] == {"name": "MA", "params": {"timeperiod": 30, "matype": 1}}
    assert DeskConfig().to_query() == ""  # the default desk: BTCUSDT 1m footprint, dark


@pytest.mark.parametrize("query, message", [
    ("symbol=a%20b", "symbol: symbol 'a b' is not valid"),
    ("spec=3x", "spec: bar spec '3x' not understood"),
    ("studies=FOO", "studies: unknown study 'FOO'"),
    ("studies=RSI(timeperiod=0)", "studies: RSI: parameter 'timeperiod' must be an integer"),
    ("studies=RSI(length=3)", "studies: RSI: unknown parameter 'length'"),
    ("studies=RSI(x", "studies: 'RSI(x' not understood at character 1"),
    ("layout=3", "layout: '3': use 1, 2 or 4"),
    ("symbol2=ES", "symbol2: chart 2 is not shown with layout=1"),
    ("layout=2&spec2=2x", "spec2: bar spec '2x' not understood"),
    ("type=pie", "type: 'pie': use one of footprint, ohlc, candles"),
    ("mode=blue", "mode: 'blue': use one of dark, light"),
    ("theme=light", "URL: unknown parameter 'theme'"),
    ("typo=1", "URL: unknown parameter 'typo'"),
    ("draw=circle(2026-11-27T14:35Z@1)", "draw[0]: 'circle' is not a drawing: use trend, hline"),
    ("draw=hline(2026-11-27T14:35@1)", "draw[0]: not understood at character 7: a point is"),
    ("draw=trend(2026-11-27T14:35Z@1)", "draw[0].points: a trend drawing has 2 points"),
    ("draw=hline(2026-11-27T14:35Z@1)hline(2026-11-27T14:36Z@1)",
     "draw[1]: not understood at character 27: drawings are separated by commas"),
    ("draw=text(2026-11-27T14:35Z@1;'a%1Bb')", "draw[0].text: a note is printable text"),
    ("draw=hline(2026-11-27T14:35Z@1e999)", "draw[0].points[0].price: inf is not a finite"),
    ("layout=2&draw2=" + ",".join(["hline(2026-11-27T14:35Z@1)"] * 700),
     "draw2: 18,899 characters; a link holds at most 16,000 in one parameter"),
    ("view=2026-11-27T16:00Z,2026-11-27T14:00Z", "view: the start must come before the end"),
    ("view=yesterday", "view: 'yesterday': write START,END as UTC times"),
    ("layout=2&view2=2026-11-27T16:00Z", "view2: '2026-11-27T16:00Z': write START,END"),
])
def test_a_bad_url_says_what_and_where(query, message):
    with pytest.raises(StateError) as exc:
        DeskConfig.from_query(query)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("change, message", [
    ({"studies": [{"name": "RSI", "params": {"timeperiod": 1}}]},
     "studies[0]: RSI: parameter 'timeperiod'"),
    ({"studies": [{"name": "RSI"}, {"name": "nope"}]}, "studies[1]: unknown study 'nope'"),
    ({"drawings": [{"kind": "trend", "points": [{"t": "2026-11-27T10:00:00Z", "price": 1}]}]},
     "drawings[0].points: a trend drawing has 2 points"),
    ({"drawings": [{"kind": "hline", "points": [{"t": "2026-11-27T10:00", "price": 1}]}]},
     "drawings[0].points[0].t: '2026-11-27T10:00' has no time zone"),
    ({"drawings": [{"kind": "hline", "points": [{"t": "2026-11-27T10:00Z", "price": "x"}]}]},
     "drawings[0].points[0].price: 'x' is not a finite number"),
    ({"drawings": [{"kind": "text", "text": "a\x1b[31m", "points": [
        {"t": "2026-11-27T10:00Z", "price": 1}]}]}, "drawings[0].text: a note is printable"),
    ({"view_range": ["2026-11-27T10:00Z", "2026-11-27T09:00Z"]},
     "view_range: the start must come before the end"),
    ({"spec": "T0"}, "spec: bar spec 'T0': the size must be positive"),
    ({"colour": "red"}, "unknown fields ['colour']"),
])
def test_a_bad_document_says_what_and_where(change, message):
    doc = ChartConfig().to_dict() | change
    with pytest.raises(StateError) as exc:
        ChartConfig.from_json(json.dumps(doc))
    assert str(exc.value).startswith(message)
    with pytest.raises(StateError, match="not a JSON document"):
        ChartConfig.from_json("{")


def test_drawings_and_the_view_range_are_short_in_the_url():
    desk = DeskConfig(charts=[ChartConfig.from_dict(dict(
        chart_type="candles", view_range=["2026-11-27T14:00Z", "2026-11-27T16:00:30Z"],
        drawings=[{"kind": "trend", "points": [
                      {"t": "2026-11-27T14:10:00Z", "dx": 0.5, "price": 101.25},
                      {"t": "2026-11-27T14:20:00Z", "dx": -2.0, "price": 105}]},
                  {"kind": "text", "points": [{"t": "2026-11-27T15:00:00Z", "price": 99}],
                   "text": "it's (here), <b>; ok"}]))])
    query = desk.to_query()
    assert query == ("type=candles&draw=trend(2026-11-27T14:10Z%2B0.5@101.25;"
                     "2026-11-27T14:20Z-2@105),text(2026-11-27T15:00Z@99;"
                     "'it''s+(here),+%3Cb%3E;+ok')&view=2026-11-27T14:00Z,2026-11-27T16:00:30Z")
    assert DeskConfig.from_query(query) == desk


def test_study_text_round_trips():
    studies = parse_studies("BBANDS(timeperiod=10,nbdevup=2.5,matype=WMA), cvd")
    assert studies[0]["params"] == {"timeperiod": 10, "nbdevup": 2.5, "nbdevdn": 2.0,
                                    "matype": 2}
    assert parse_studies(format_studies(studies)) == studies


# --- the served desk, end to end in Chromium ----------------------------------------------------

ARTIFACTS = __import__("pathlib").Path(__file__).parent / "artifacts"
HISTORY_END = "2026-11-27T20:00:00Z"  # a Friday: ES traded; BTCUSDT trades around the clock

# the chart's bar source: of the sources drawn by the plots on the page (Bokeh's views), the
# longest with bar numbers and closes
_SERVED = []  # the server of the module's tests (its output is printed when a wait fails)


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """``tradeflow serve --simulate BTCUSDT`` over a store with history of BTCUSDT and ES."""
    from tests.serve import serving, tradeflow

    store = f"duckdb:///{tmp_path_factory.mktemp('desk') / 'desk.duckdb'}"
    tradeflow(["instruments", "add", "ES", "--tick-size", "0.25", "--exchange", "CME",
               "--session", "America/Chicago 08:30-15:15,17:00-16:00"], store)
    tradeflow(["instruments", "add", "BTCUSDT", "--tick-size", "0.1", "--asset-class", "crypto"],
              store)
    tradeflow(["simulate", "BTCUSDT", "ES", "--days", "1", "--no-live", "--end", HISTORY_END,
               "--trades-per-day", "100000"], store)
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(store, "--simulate", "BTCUSDT") as served:
        _SERVED.append(served)
        yield served
    # no error of the desk's in the server's log (a browser closed mid-message is Tornado's
    # noise; the views have their own tests)
    ours = re.findall(r'File "[^"]*/(?:dashboards/(?:apps/desk|chart|chart_state|live|components/'
                      r'drawings)|tradeflow/(?:server|live)/[a-z_]+)\.py"', served.output)
    assert not ours, served.output[-5000:]


@pytest.fixture
def page():
    from tests.browser import browser_page

    with browser_page(1400, 950) as page:
        yield page


def _wait(page, js: str, timeout=60_000) -> None:
    """Wait until ``js`` is true; else a screenshot of what the page showed instead."""
    try:
        page.wait_for_function(js, timeout=timeout)
    except Exception:
        page.screenshot(path=ARTIFACTS / "desk-failed.png")
        print(_SERVED[-1].output[-6000:] if _SERVED else "")  # the server's side of it
        raise


def _bars(page, at_least=1, timeout=60_000):
    _wait(page, f"() => {{ const b = ({BARS_JS})(); "
                f"return b !== null && b.x.length >= {at_least}; }}", timeout)
    return page.evaluate(BARS_JS)


def _titles(page) -> list[str]:
    return [t.strip() for t in page.locator(".desk-chart-title").all_inner_texts()]


def _shows(page, *titles):
    """The charts' titles become ``titles`` (Playwright retries until they do)."""
    expect(page.locator(".desk-chart-title")).to_have_text(list(titles), timeout=60_000)


# a button's background, or else the first of its ancestors' (across shadow roots) not transparent
BACKGROUNDS_JS = """bs => bs.map(b => {
  let e = b, c = null;
  while (e) {
    c = getComputedStyle(e).backgroundColor;
    if (c !== 'transparent' && !/^rgba\\(.*, 0\\)$/.test(c)) break;
    e = e.parentElement || (e.getRootNode() && e.getRootNode().host);
  }
  return [b.textContent.trim(), c, b.classList.contains('bk-active')];
})"""


def _chosen(page, group: str) -> str:
    """The label of the button chosen in the button group ``group``, checking that a user can see
    which it is: its background stands out from every other button's by at least 100 (the sum
    over red, green and blue of 0-255; Panel's default style made it 15, which could not be
    seen)."""
    def rgb(colour: str) -> list[int]:
        return [int(v) for v in re.findall(r"\d+", colour)[:3]]

    buttons = page.locator(f".{group} button").evaluate_all(BACKGROUNDS_JS)
    chosen = [(label, colour) for label, colour, active in buttons if active]
    assert len(chosen) == 1, buttons
    label, colour = chosen[0]
    for other, other_colour, active in buttons:
        if not active:
            distance = sum(abs(a - b) for a, b in zip(rgb(colour), rgb(other_colour)))
            assert distance >= 100, (label, colour, other, other_colour)
    return label


def _open(page, url):
    page.goto(url, timeout=90_000)  # the machine is shared: a page may wait for the server
    page.wait_for_selector(".desk-chart-title", timeout=60_000)


def test_the_desk_opens_on_a_live_btcusdt_footprint(desk, page):
    elsewhere = []  # requests to any other host than the server (a web font, a CDN...)
    page.on("request", lambda r: elsewhere.append(r.url)
            if not r.url.startswith((desk.url, "data:", "blob:")) else None)
    _open(page, f"{desk.url}/")
    _shows(page, "1 · BTCUSDT 1m footprint")
    first = _bars(page, at_least=300)  # the history: a day of 1-minute bars, then live ones
    assert first["x"] == list(range(first["x"][0], first["x"][0] + len(first["x"])))
    # live: the forming bar changes in place or new bars come; closed bars never change
    page.wait_for_function(
        f"""() => {{ const b = ({BARS_JS})();
        return b.x.length > {len(first['x'])} || b.close[b.close.length - 1] !==
               {first['close'][-1]} || b.high[b.high.length - 1] !== {first['high'][-1]} ||
               b.low[b.low.length - 1] !== {first['low'][-1]}; }}""", timeout=60_000)
    later = page.evaluate(BARS_JS)
    closed = len(first["x"]) - 1
    for column in ("x", "close", "high", "low"):
        assert later[column][:closed] == first[column][:closed]
    page.screenshot(path=ARTIFACTS / "desk-dark.png")
    assert (_chosen(page, "desk-layout"), _chosen(page, "desk-active"),
            _chosen(page, "desk-theme")) == ("1", "1", "dark")
    # /desk is the same page
    _open(page, f"{desk.url}/desk")
    _shows(page, "1 · BTCUSDT 1m footprint")
    assert elsewhere == []  # the page asks nothing of another host (it works offline)


def test_pickers_redraw_and_the_url_follows(desk, page):
    _open(page, f"{desk.url}/")
    before = _bars(page, at_least=300)
    page.locator(".desk-symbol input").fill("ES")
    page.locator(".desk-symbol input").press("Enter")
    page.wait_for_function("() => location.search.includes('symbol=ES')", timeout=60_000)
    _shows(page, "1 · ES 1m footprint")
    # redrawn with ES's bars (prices near 5000; BTCUSDT's near 50000)
    _wait(page, f"() => {{ const b = ({BARS_JS})(); return b !== null && b.x.length > 0 "
                f"&& Math.max(...b.high) < 20000; }}")
    assert before["close"][-1] > 20_000
    page.locator(".desk-spec select").select_option("T500")
    page.wait_for_function("() => location.search.includes('spec=T500')", timeout=60_000)
    _shows(page, "1 · ES T500 footprint")
    page.locator(".desk-chart-type select").select_option("candles")
    page.wait_for_function("() => location.search.includes('type=candles')", timeout=60_000)
    _shows(page, "1 · ES T500 candles")
    page.screenshot(path=ARTIFACTS / "desk-es-t500.png")
    page.locator(".desk-layout button", has_text="4").click()
    page.wait_for_function("() => location.search.includes('layout=4')", timeout=60_000)
    _shows(page, "1 · ES T500 candles", "2 · ES T500 candles",
           "3 · ES T500 candles", "4 · ES T500 candles")
    page.wait_for_timeout(3000)
    page.screenshot(path=ARTIFACTS / "desk-layout-4.png")
    page.keyboard.press("2")  # a shortcut: two charts
    page.wait_for_function("() => location.search.includes('layout=2')", timeout=60_000)
    assert len(_titles(page)) == 2
    # the theme: the page reloads itself light (waited for, not opened again: two loads at once
    # made the server build four charts, and the second load once waited out its 90 s)
    loads = []
    page.on("load", lambda: loads.append(page.url))
    # the page's load, not a navigation: the URL's change (history, no load) is one already, and
    # then the old page's titles passed the checks below before the reload came
    with page.expect_event("load", timeout=90_000):
        page.keyboard.press("t")
    assert "mode=light" in page.url
    page.wait_for_selector(".desk-chart-title", timeout=60_000)
    _shows(page, "1 · ES T500 candles", "2 · ES T500 candles")
    page.wait_for_timeout(2000)
    assert len(loads) == 1, loads  # one load of the page, not a second after it
    assert _chosen(page, "desk-theme") == "light"
    assert _chosen(page, "desk-layout") == "2"
    _bars(page)  # drawn, not left on "loading"
    page.screenshot(path=ARTIFACTS / "desk-light.png")
    assert len(_titles(page)) == 2


PLOTS_JS = """() => {
  let n = 0;
  const seen = new Set();
  function walk(view) {
    if (!view || seen.has(view)) return;
    seen.add(view);
    if (view.model && view.model.renderers && view.model.renderers.length) n += 1;
    for (const child of view.child_views || []) walk(child);
  }
  for (const view of Object.values(window.Bokeh.index)) walk(view);
  return n;
}"""


def test_a_study_from_the_picker_appears_with_its_settings(desk, page):
    _open(page, f"{desk.url}/?type=candles")
    _bars(page)
    plots = page.evaluate(PLOTS_JS)
    page.locator(".desk-study input").fill("RSI")
    page.locator(".desk-study input").press("Enter")
    page.locator(".desk-add-study button").click()
    page.wait_for_function("() => location.search.includes('studies=RSI')", timeout=60_000)
    card = page.locator(".desk-study-rsi")
    expect(card).to_contain_text("Timeperiod", timeout=30_000)
    _bars(page)
    _wait(page, f"() => ({PLOTS_JS})() > {plots}")  # its pane under the price
    page.screenshot(path=ARTIFACTS / "desk-study.png")
    expect(page.locator(".desk-not-drawn")).to_have_count(0)
    # a footprint does not draw it: its card says so, and the study is kept for the bar types
    page.locator(".desk-chart-type select").select_option("footprint")
    expect(card.locator(".desk-not-drawn")).to_contain_text(
        "Not drawn on a footprint chart", timeout=30_000)
    page.locator(".desk-chart-type select").select_option("candles")
    page.wait_for_function("() => location.search.includes('type=candles')", timeout=60_000)
    expect(page.locator(".desk-not-drawn")).to_have_count(0, timeout=30_000)
    expect(card).to_contain_text("Timeperiod")


def test_a_page_reopened_from_its_url_shows_the_same_desk(desk, page):
    query = "?layout=2&type=candles&studies=RSI(timeperiod=21)&symbol2=ES&spec2=5m&active=2"
    _open(page, f"{desk.url}/{query}")
    _shows(page, "1 · BTCUSDT 1m candles", "2 · ES 5m footprint")
    # the pickers show the focused chart (2): ES 5m
    assert page.locator(".desk-symbol input").input_value() == "ES"
    assert page.locator(".desk-spec select").input_value() == "5m"
    page.locator(".desk-active button", has_text="1").click()
    page.locator(".desk-study-rsi").wait_for(timeout=20_000)
    assert "21" in page.locator(".desk-study-rsi input").first.input_value()
    page.wait_for_function("() => !location.search.includes('active=')", timeout=60_000)
    reopened = DeskConfig.from_query(page.evaluate("() => location.search"))
    assert reopened == DeskConfig.from_query(query.replace("&active=2", ""))


@pytest.mark.parametrize("query, shown", [
    ("?symbol=%3Cb%3Ebold%3C/b%3E", "symbol: symbol '<b>bold</b>' is not valid"),
    ("?spec=7q", "bar spec '7q' not understood"),
    ("?studies=RSI(timeperiod=1)", "parameter 'timeperiod' must be an integer from 2"),
    ("?symbol=NOPE", "unknown symbol 'NOPE'"),
    ("?theme=light", "unknown parameter 'theme'"),
])
def test_bad_input_is_said_in_the_page(desk, page, query, shown):
    page.goto(f"{desk.url}/{query}")
    page.wait_for_selector(".page-error", timeout=60_000)
    text = page.locator(".page-error").first.inner_text()
    assert shown in text
    # shown as text, never as HTML
    assert page.locator("b", has_text=re.compile("^bold$")).count() == 0


# --- drawings ------------------------------------------------------------------------------------

def _bars_at(start, n):
    return pd.date_range(start, periods=n, freq="1min", tz="UTC")


def test_fibonacci_levels_from_the_two_points():
    from dashboards.components.drawings import fib_levels

    levels = dict(fib_levels(100.0, 200.0))  # a move up from 100 to 200
    assert levels[0.0] == 200.0 and levels[1.0] == 100.0
    assert levels[0.5] == 150.0 and levels[0.618] == pytest.approx(138.2)
    assert dict(fib_levels(200.0, 100.0))[0.382] == pytest.approx(138.2)  # a move down


def test_drawings_are_kept_in_times_and_survive_more_history():
    from bokeh.plotting import figure

    from dashboards.components.drawings import Drawings

    ts = _bars_at("2026-11-27 14:00", 100)
    xs = np.arange(100)
    config = ChartConfig()
    drawings = Drawings(figure(), config, lambda: (xs, ts))
    # drawn with the tools (the browser edits the sources)
    drawings.trends.data = {"xs": [[10, 20.5]], "ys": [[101.0, 105.0]]}
    drawings.fibs.data = {"xs": [[30, 40]], "ys": [[100.0, 120.0]]}
    drawings.hlines.data = {"x": [50], "y": [103.25]}
    drawings.rects.data = {"x": [60], "y": [102.0], "width": [10], "height": [4]}
    drawings.notes.data = {"x": [104.0], "y": [99.0], "text": ["note"]}  # past the last bar
    kinds = [d["kind"] for d in config.drawings]
    assert kinds == ["trend", "fib", "hline", "rect", "text"]
    trend = config.drawings[0]["points"]
    assert trend[0] == {"t": "2026-11-27T14:10:00Z", "dx": 0.0, "price": 101.0}
    assert trend[1] == {"t": "2026-11-27T14:20:00Z", "dx": 0.5, "price": 105.0}
    assert config.drawings[4]["points"][0] == {"t": "2026-11-27T15:39:00Z", "dx": 5.0,
                                               "price": 99.0}
    # the retracement's levels were drawn from its two points
    assert sorted(y[0] for y in drawings.fib_lines.data["ys"]) == pytest.approx(
        sorted(p for _, p in __import__("dashboards.components.drawings", fromlist=["x"])
               .fib_levels(100.0, 120.0)))
    # through the JSON document, onto a chart with 60 older bars in front (numbered from 0)
    again = ChartConfig.from_json(config.to_json())
    more_ts = _bars_at("2026-11-27 13:00", 160)
    more_xs = np.arange(160)
    reloaded = Drawings(figure(), again, lambda: (more_xs, more_ts))
    assert reloaded.trends.data["xs"] == [[70.0, 80.5]]
    assert reloaded.hlines.data == {"x": [110.0], "y": [103.25]}
    assert reloaded.rects.data == {"x": [120.0], "y": [102.0], "width": [10.0], "height": [4.0]}
    assert reloaded.notes.data["x"] == [164.0]
    assert reloaded.to_state() == again.drawings


def test_a_note_is_edited_in_the_page_and_checked():
    from bokeh.plotting import figure

    from dashboards.components.drawings import Drawings

    ts = _bars_at("2026-11-27 14:00", 50)
    config = ChartConfig.from_dict({"drawings": [
        {"kind": "hline", "points": [{"t": "2026-11-27T14:05:00Z", "price": 100.0}]},
        {"kind": "text", "points": [{"t": "2026-11-27T14:10:00Z", "price": 101.0}],
         "text": "first"}]})
    drawings = Drawings(figure(), config, lambda: (np.arange(50), ts))
    assert not drawings.editor.visible
    drawings.notes.selected.indices = [0]  # selected with the note tool
    assert drawings.editor.visible and drawings.note_input.value == "first"
    drawings.note_input.value_input = "breakout <b>here</b>"
    assert config.drawings[1]["text"] == "breakout <b>here</b>"
    assert list(drawings.notes.data["text"]) == ["breakout <b>here</b>"]
    assert config.drawings[0]["kind"] == "hline"  # the others stay
    for bad in ("x" * 201, "bell\x07"):  # refused, said under the box; the note keeps its text
        drawings.note_input.value_input = bad
        assert "a note is printable text of at most 200 characters" in \
            drawings.note_problem.object
        assert config.drawings[1]["text"] == "breakout <b>here</b>"
    drawings.note_input.value_input = "fine"
    assert drawings.note_problem.object == "" and config.drawings[1]["text"] == "fine"
    drawings.notes.selected.indices = []
    assert not drawings.editor.visible


def _simulated_market(tmp_path, start: str, end: str):
    """MarketData over a DuckDB store of simulated BTCUSDT trades from ``start`` to ``end``."""
    from data_access import open_store
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.marketdata import MarketData
    from tradeflow.model import Instrument

    store = open_store(f"duckdb:///{tmp_path / 'market.duckdb'}")
    inst = Instrument("BTCUSDT", 0.1)
    store.add_instrument(inst)
    sim = MarketSimulator(inst, seed=3, trades_per_day=20_000)
    store.write_trades("BTCUSDT", sim.generate(start, end).trades)
    return MarketData(store)


def test_a_footprint_read_while_trades_arrive_holds_cells_of_its_bars_only(tmp_path):
    """The bars and their cells are two reads: trades stored between them (the live feed)
    must not give the chart cells of a bar it did not read."""
    from dashboards.chart import Chart
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.marketdata import MarketData

    market = _simulated_market(tmp_path, "2026-11-25 00:00", "2026-11-25 06:00")
    later = [MarketSimulator(market.store.instrument("BTCUSDT"), seed=4, trades_per_day=20_000
                             ).generate("2026-11-25 06:00", "2026-11-25 07:00").trades]

    class TradesArriveBetweenReads(MarketData):
        def bars(self, *args, **kw):
            bars = super().bars(*args, **kw)
            if later:  # the feed stores an hour of trades right after the bars are read
                self.store.write_trades("BTCUSDT", later.pop())
            return bars

    chart = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="footprint"),
                  TradesArriveBetweenReads(market.store))
    assert chart.ready and chart.history["ts"].iloc[-1] < pd.Timestamp("2026-11-25 06:00", tz="UTC")
    assert chart.history_cells["ts"].isin(chart.history["ts"]).all()
    assert market.store.trades("BTCUSDT")["ts"].max() >= pd.Timestamp("2026-11-25 06:30", tz="UTC")


def test_a_chart_keeps_its_drawings_and_loads_older_history(tmp_path):
    """A Chart over a store (no server): history read at once, older bars put in front with
    lower numbers when the view nears the first bar, drawings kept in place."""
    from dashboards.chart import FIRST_BARS, Chart

    market = _simulated_market(tmp_path, "2026-11-25 00:00", "2026-11-27 00:00")
    config = ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="candles", drawings=[
        {"kind": "hline", "points": [{"t": "2026-11-26T20:00:00Z", "dx": 0.0,
                                      "price": 50_000.0}]}])
    chart = Chart(config, market)
    assert chart.ready and len(chart.history) == FIRST_BARS
    drawn_at = pd.Timestamp("2026-11-26T20:00:00Z")

    def hline_bar():  # the open time of the bar the horizontal line is drawn at
        return chart.history["ts"].iloc[int(chart.drawings.hlines.data["x"][0]) - chart.first_x]
    assert hline_bar() == drawn_at
    first_ts = chart.history["ts"].iloc[0]
    chart.x_range.start = chart.first_x + 5  # scrolled back near the first bar
    older = market.bars("BTCUSDT", "1m", end=first_ts, last=FIRST_BARS)
    assert len(older) > 100 and len(chart.history) == FIRST_BARS + len(older)
    assert chart.history["ts"].iloc[len(older)] == first_ts  # the older bars in front
    source = chart.view.source.data
    xs = list(source["x"])
    assert xs == list(range(chart.first_x, chart.first_x + len(chart.history)))
    assert chart.x_range.start > xs[0] + len(older) - 10  # the view did not jump
    assert hline_bar() == drawn_at  # the drawing kept its bar
    state = chart.state()
    assert state.drawings == config.drawings
    assert state.view_range is None  # the newest bar in view: the latest, following the market
    # a range scrolled back is kept in times, and a chart opened on it shows the same bars
    ts = pd.DatetimeIndex(chart.history["ts"])
    chart.x_range.update(start=chart.first_x + 99.6, end=chart.first_x + 160.2)
    view = chart.state().view_range
    assert view == (ts[100], ts[160])
    again = Chart(ChartConfig.from_json(chart.state().to_json()), market)
    assert again.state().view_range == view
    first = pd.DatetimeIndex(again.history["ts"])
    assert first[int(np.ceil(again.x_range.start)) - again.first_x] == ts[100]
    # the heatmap reads at most 6 hours of depth
    from dashboards.heatmap_chart import HeatmapChart
    heat = HeatmapChart(ChartConfig.from_dict({
        "symbol": "BTCUSDT", "chart_type": "heatmap",
        "view_range": ["2026-11-26T00:00Z", "2026-11-26T07:00Z"]}), market)
    assert "the heatmap shows at most 6 hours of depth" in heat.error
    market.store.close()


def store_and_live_trades(tmp_path):
    """A DuckDB store holding the first 2,000 of two hours of simulated BTCUSDT trades on a fixed
    day: (store, instrument, the stored trades, the rest, to be fed live)."""
    from data_access import open_store
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.model import Instrument

    store = open_store(f"duckdb:///{tmp_path / 'f.duckdb'}")
    inst = Instrument("BTCUSDT", 0.1)
    store.add_instrument(inst)
    trades = MarketSimulator(inst, seed=5, trades_per_day=50_000).generate(
        "2026-11-26 10:00", "2026-11-26 12:00").trades
    stored, live = trades.iloc[:2000], trades.iloc[2000:]
    store.write_trades("BTCUSDT", stored)
    return store, inst, stored, live


@pytest.mark.parametrize("spec, chart_type", [("1m", "candles"), ("1m:HA", "candles"),
                                              ("T200", "candles"), ("1m", "footprint")])
def test_a_chart_follows_the_hub_messages_without_redrawing(tmp_path, spec, chart_type):
    """Snapshot then Updates (as the hub sends them): the chart's bars equal the batch build of
    every trade; closed bars are streamed once, the forming bar patched, nothing replaced."""
    from bokeh.document import Document

    from dashboards.chart import Chart
    from tradeflow.bars import BarAggregator, build, heikin_ashi
    from tradeflow.live.hub import Snapshot, Update
    from tradeflow.marketdata import MarketData

    store, inst, stored, live = store_and_live_trades(tmp_path)
    trades = pd.concat([stored, live])
    chart = Chart(ChartConfig(symbol="BTCUSDT", spec=spec, chart_type=chart_type,
                              panes=["delta", "cvd"]), MarketData(store))
    doc = Document()
    doc.add_root(chart.figure)
    for pane in chart.under:
        doc.add_root(pane.figure)
    events = []
    doc.on_change(lambda event: events.append(
        (type(event).__name__, type(getattr(event, "model", None)).__name__,
         getattr(event, "attr", None))))
    plain = spec.replace(":HA", "")
    aggregator = BarAggregator(inst, plain)
    seed = aggregator.update(stored)
    chart.on_message(Snapshot(seed.closed, seed.closed_footprint, seed.current,
                              seed.current_footprint))
    events.clear()
    source = getattr(chart.view, "source", None) or chart.view.bars.source  # footprint: BarRows
    for start in range(0, len(live), 700):
        before = {k: list(v) for k, v in source.data.items()}
        up = aggregator.update(live.iloc[start:start + 700])
        chart.on_message(Update(up.closed, up.closed_footprint, up.current, up.current_footprint))
        closed_before = len(before["x"]) - 1
        for column in ("x", "open", "high", "low", "close"):  # closed bars never change
            assert list(source.data[column][:closed_before]) == before[column][:closed_before]
    kinds = {kind for kind, _, _ in events}
    assert {"ColumnsStreamedEvent", "ColumnsPatchedEvent"} <= kinds
    # nothing else touched the bars' source (the view range follows the new bars)
    assert not [e for e in events if e[0] == "ModelChangedEvent" and e[1] == "ColumnDataSource"]
    expected = build(trades, plain, inst)[0]
    if spec.endswith(":HA"):
        expected = heikin_ashi(expected)
    assert list(source.data["x"]) == list(range(len(expected)))
    for column in ("open", "high", "low", "close"):
        np.testing.assert_allclose(source.data[column], expected[column], rtol=1e-12)
    # the delta and CVD panes under it: the same bar numbers, the bars' values
    delta, cvd_pane = (pane.source.data for pane in chart.under)
    assert list(delta["x"]) == list(cvd_pane["x"]) == list(range(len(expected)))
    np.testing.assert_allclose(delta["delta"], expected["ask_volume"] - expected["bid_volume"])
    np.testing.assert_allclose(cvd_pane["cvd"], np.cumsum(expected["ask_volume"]
                                                          - expected["bid_volume"]), atol=1e-9)
    if chart_type == "footprint":  # the cells the chart keeps (noted per update, joined on read)
        keys = ["ts", "tick"]
        want = build(trades, plain, inst)[1].sort_values(keys, ignore_index=True)
        got = chart.history_cells.sort_values(keys, ignore_index=True)
        pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=False)
    store.close()


# --- the desk's other views: delta/CVD panes, the book panels, the heatmap, the state in the URL

# the sources drawn on the page, by a column they have: {column: [source data, ...]}
SOURCES_JS = """(column) => {
  const out = [];
  const seen = new Set();
  function walk(view) {
    if (!view || seen.has(view)) return;
    seen.add(view);
    for (const r of (view.model && view.model.renderers) || []) {
      const s = r.data_source;
      if (s && s.data && s.data[column] !== undefined && !out.includes(s)) out.push(s);
    }
    for (const child of view.child_views || []) walk(child);
  }
  for (const view of Object.values(window.Bokeh.index)) walk(view);
  return out;
}"""


def _column(page, column: str, name: str | None = None) -> list:
    """The values of ``name`` (default: ``column``) of the first drawn source with ``column``."""
    return page.evaluate(f"""() => {{ const s = ({SOURCES_JS})({json.dumps(column)});
        return s.length ? Array.from(s[0].data[{json.dumps(name or column)}]) : null; }}""")


def _has_rows(column: str, at_least: int = 1) -> str:
    return (f"() => {{ const s = ({SOURCES_JS})({json.dumps(column)}); "
            f"return s.length > 0 && s[0].data[{json.dumps(column)}].length >= {at_least}; }}")


def test_delta_cvd_tape_and_ladder_from_the_desk_controls(desk, page):
    _open(page, f"{desk.url}/?type=candles")
    bars = _bars(page, at_least=300)
    for name in ("delta", "cvd_candles"):  # the pane picker
        page.locator(".desk-panes input").click()
        page.locator(".desk-panes .choices__item--choice", has_text=re.compile(f"^{name}$")
                     ).first.click()
    page.wait_for_function("() => location.search.includes('panes=delta,cvd_candles')",
                           timeout=20_000)
    page.locator(".desk-chart-title").first.click()  # out of the picker: the keys are shortcuts
    page.keyboard.press("d")  # the DOM ladder
    page.wait_for_function("() => location.search.includes('dom')", timeout=20_000)
    page.keyboard.press("s")  # time & sales
    page.wait_for_function("() => location.search.includes('panes=delta,cvd_candles,dom,tape')",
                           timeout=20_000)
    # every pane drew: delta and CVD on the bars' numbers, the ladder's rows, the tape's trades
    _wait(page, _has_rows("delta", len(bars["x"])))
    _wait(page, _has_rows("cvd", len(bars["x"])))
    _wait(page, _has_rows("bid_text", 5))
    _wait(page, _has_rows("side_text", 20))
    shown = _bars(page)
    assert _column(page, "delta", "x")[-len(shown["x"]):] == shown["x"][-len(shown["x"]):]
    # live: new trades stream onto the tape, the forming bar's delta changes or a bar is added
    tape, delta = _column(page, "side_text", "y"), _column(page, "delta")
    _wait(page, f"() => {{ const y = ({SOURCES_JS})('side_text')[0].data.y; "
                f"return y[y.length - 1] > {tape[-1]}; }}")
    _wait(page, f"() => {{ const d = ({SOURCES_JS})('delta')[0].data.delta; "
                f"return d.length > {len(delta)} || d[d.length - 1] !== {delta[-1]}; }}")
    page.wait_for_timeout(1000)
    # (headless Chromium on a busy machine renders this live page slowly: a frame may take 20 s)
    page.screenshot(path=ARTIFACTS / "desk-panes.png", timeout=90_000)


def _drawn(column: str, at_least: int) -> str:
    """Some drawn source's ``column`` holds ``at_least`` finite values other than 0."""
    return (f"() => ({SOURCES_JS})({json.dumps(column)}).some((s) => Array.from("
            f"s.data[{json.dumps(column)}]).filter((v) => Number.isFinite(v) && v !== 0)"
            f".length >= {at_least})")


def test_kagi_with_rsi_the_footprints_profiles_and_cvd_candles_draw(desk, page):
    """Kagi with RSI: its volume, RSI and delta panes drawn over its lines; the footprint with
    the volume profile and TPO beside it (following the hub); candles over CVD candles whose bars
    before the hub's day have wicks too."""
    _open(page, f"{desk.url}/?type=kagi&studies=RSI&panes=delta")
    _shows(page, "1 · BTCUSDT 1m kagi")
    _wait(page, _drawn("vmid", 20))  # the lines' volume
    _wait(page, _drawn("RSI", 20))
    # the delta pane: one column a line, not a bar (live, the lines and columns grow together)
    _wait(page, f"() => {{ const v = ({SOURCES_JS})('vmid').find((s) => s.data.x.length),"
                f" d = ({SOURCES_JS})('delta').find((s) => s.data.vmid === undefined);"
                f" return v && d && d.data.x.length === v.data.x.length; }}")
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTIFACTS / "desk-kagi-rsi.png", timeout=90_000)
    _open(page, f"{desk.url}/?panes=volume_profile,tpo")
    # the profile's rows (by zone: POC, value area, outside) and the TPO's letters
    _wait(page, f"() => ({SOURCES_JS})('zone').some((s) => s.data.volume !== undefined && "
                f"Array.from(s.data.volume).filter((v) => v > 0).length >= 30)")
    _wait(page, f"() => ({SOURCES_JS})('letters').some((s) => s.data.letters.length > 3)")
    page.wait_for_timeout(1500)
    page.screenshot(path=ARTIFACTS / "desk-footprint-profiles.png", timeout=90_000)
    _open(page, f"{desk.url}/?type=candles&spec=5m&panes=cvd_candles")
    bars = _bars(page, at_least=200)
    _wait(page, _has_rows("cvd", len(bars["x"])))
    # wicks beyond the bodies on most bars, the earliest (before the hub's day) among them
    wicks = page.evaluate(f"""() => {{ const d = ({SOURCES_JS})('cvd')[0].data;
        const out = [];
        for (let i = 0; i < d.cvd.length; i++)
          out.push(d.high[i] > Math.max(d.open[i], d.close[i]) ||
                   d.low[i] < Math.min(d.open[i], d.close[i]));
        return out; }}""")
    assert sum(wicks[:50]) > 40, wicks[:50]
    page.wait_for_timeout(1000)
    page.screenshot(path=ARTIFACTS / "desk-cvd-candles.png", timeout=90_000)


def test_the_heatmap_chart_from_the_keyboard(desk, page):
    _open(page, f"{desk.url}/?panes=dom")
    _bars(page)
    page.locator(".desk-chart-title").first.click()
    page.keyboard.press("h")
    page.wait_for_function("() => location.search.includes('type=heatmap')", timeout=20_000)
    _shows(page, "1 · BTCUSDT 1m heatmap")
    _wait(page, _has_rows("image"))  # the depth grid, rendered
    _wait(page, _has_rows("volume", 10))  # trades as bubbles
    _wait(page, _has_rows("bid_text", 5))  # the ladder beside it
    best = len(_column(page, "bid", "x") or [])
    assert best > 0
    _wait(page, f"() => ({SOURCES_JS})('ask')[0].data.x.length > {best}")  # live best bid/ask
    page.wait_for_timeout(1500)
    page.screenshot(path=ARTIFACTS / "desk-heatmap.png")


def test_drawings_and_the_view_range_reopen_from_the_url_and_notes_are_edited(desk, page):
    query = ("?type=candles&draw=trend(2026-11-27T18:10Z@47100;2026-11-27T18:50Z%2B0.5@47450),"
             "hline(2026-11-27T18:30Z@47250),"
             "text(2026-11-27T18:20Z@47600;'first%20note')"
             "&view=2026-11-27T18:00Z,2026-11-27T19:00Z")
    _open(page, f"{desk.url}/{query}")
    bars = _bars(page, at_least=300)
    _wait(page, _has_rows("text"))
    assert _column(page, "text") == ["first note"]
    # the view shows 18:00 to 19:00 (BTCUSDT's zone is UTC: t is UTC milliseconds)
    shown = page.evaluate(f"""() => {{ const s = ({SOURCES_JS})('close')[0];
        for (const v of Object.values(window.Bokeh.index)) for (const p of v.model.references())
          if (p.renderers && p.renderers.some((r) => r.data_source === s))
            return [p.x_range.start, p.x_range.end]; }}""")
    t = dict(zip(bars["x"], _column(page, "close", "t")))
    start, end = pd.Timestamp("2026-11-27T18:00Z"), pd.Timestamp("2026-11-27T19:00Z")
    assert pd.Timestamp(t[shown[0] + 0.5], unit="ms", tz="UTC") == start
    assert pd.Timestamp(t[shown[1] - 0.5], unit="ms", tz="UTC") == end
    # the page's state gives back the same link (the URL is rewritten from it every second)
    page.wait_for_timeout(2500)
    assert DeskConfig.from_query(page.evaluate("() => location.search")) == \
        DeskConfig.from_query(query)
    # a note selected (as a click with the note tool selects it) shows its text to edit
    page.evaluate(f"() => {{ ({SOURCES_JS})('text')[0].selected.indices = [0]; }}")
    box = page.locator(".chart-note input")
    expect(box).to_have_value("first note", timeout=20_000)
    box.fill("breakout <b>here</b>")
    _wait(page, f"() => ({SOURCES_JS})('text')[0].data.text[0] === 'breakout <b>here</b>'")
    page.wait_for_function("() => decodeURIComponent(location.search.replace(/\\+/g, ' '))"
                           ".includes(\"'breakout <b>here</b>'\")", timeout=20_000)
    assert page.locator("b", has_text="here").count() == 0  # text, never HTML
    box.fill("x" * 250)  # too long: said under the box, the note keeps its text
    expect(page.locator(".chart-note-problem")).to_contain_text("at most 200 characters",
                                                                timeout=20_000)
    page.wait_for_timeout(1500)
    assert _column(page, "text") == ["breakout <b>here</b>"]
    page.screenshot(path=ARTIFACTS / "desk-drawings.png")
    reopened = DeskConfig.from_query(page.evaluate("() => location.search"))
    assert reopened.charts[0].drawings[2]["text"] == "breakout <b>here</b>"


def test_a_full_chart_shrinks_its_panes_before_its_price(tmp_path):
    """Two panes under a fixed-height chart and a study in its own pane: the volume and study
    panes shrink (to 90 px at least) before the price does (it was left 150 px)."""
    from dashboards.chart import UNDER_HEIGHT, Chart

    market = _simulated_market(tmp_path, "2026-11-26 00:00", "2026-11-27 00:00")
    plain = ChartConfig(symbol="BTCUSDT", spec="5m", chart_type="candles")
    full = ChartConfig(symbol="BTCUSDT", spec="5m", chart_type="candles", panes=["delta", "cvd"],
                       studies=[{"name": "RSI", "params": {}}])
    alone = Chart(plain, market, height=700)
    crowded = Chart(full, market, height=700)
    assert alone.view.pane_height == 130  # room enough: the default
    assert crowded.view.pane_height == 90
    # the chart's height is shared out whole: readout and axis, volume and RSI, the two panes
    under = 2 * (UNDER_HEIGHT + 10)
    assert crowded.view.height == 700 - under - 50 - 2 * 90 > 150


def test_a_chart_of_lines_keeps_its_lines_in_view_when_older_history_loads(tmp_path):
    """Scrolled back to its first Kagi lines, the chart reads older bars, which number the lines
    again: the lines in view stay in view (the chart jumped to its last lines), the panes under
    it on the same lines."""
    import math

    from dashboards.chart import FIRST_BARS, Chart

    market = _simulated_market(tmp_path, "2026-11-24 00:00", "2026-11-27 00:00")
    chart = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="kagi", panes=["delta"]),
                  market, height=600)
    before = np.asarray(chart.view.transform_source.data["t"])
    chart.x_range.end = 40.5
    chart.x_range.start = 3.5  # near the first line: older bars are read
    after = np.asarray(chart.view.transform_source.data["t"])
    assert len(chart.history) == 2 * FIRST_BARS and len(after) > len(before)
    start, end = math.ceil(chart.x_range.start), math.floor(chart.x_range.end)
    assert (after[start], after[end]) == (before[4], before[40])
    assert len(chart.under[0].source.data["x"]) == len(after)


@pytest.mark.parametrize("chart_type", ["kagi", "point_and_figure", "line_break"])
def test_a_chart_of_boxes_or_lines_opens_on_them(tmp_path, chart_type):
    """Kagi, Point & Figure and Line Break count their own lines and columns along x, not bars: the
    chart opens on them (it kept the last bars' numbers, so Kagi filled a tenth of the view), and
    the delta and CVD panes under it follow the same lines."""
    from dashboards.chart import Chart
    from dashboards.components.price_chart import RIGHT_MARGIN

    market = _simulated_market(tmp_path, "2026-11-26 00:00", "2026-11-27 00:00")
    chart = Chart(ChartConfig(symbol="BTCUSDT", spec="5m", chart_type=chart_type,
                              panes=["delta", "cvd_candles"]), market, height=600)
    x = np.asarray(chart.view.transform_source.data["x"], dtype=float)
    assert len(x)
    # the panes under it follow its lines (x and time labels), summing each line's bars; one
    # time axis, under the last pane
    bars = chart.history
    for pane in chart.under:
        np.testing.assert_array_equal(pane.source.data["x"], x)
        np.testing.assert_array_equal(pane.source.data["t"], chart.view.transform_source.data["t"])
    delta = np.asarray(chart.under[0].source.data["delta"])
    assert len(bars) > len(x) and delta.sum() == pytest.approx(
        (bars["ask_volume"] - bars["bid_volume"]).sum())
    assert not chart.view.time_axis and chart.under[-1].figure.xaxis.visible
    # its x counts lines: no view range of bar times goes into the desk's URL (the first lines
    # read as bars gave the day's first minutes)
    assert chart.state().view_range is None
    start, end = chart.x_range.start, chart.x_range.end
    last = min(len(np.unique(x)), chart.view.visible_bars)  # the newest of them in view
    assert start <= np.unique(x)[-last] and x.max() <= end
    assert end - start <= last + RIGHT_MARGIN + 2


def test_the_state_read_every_second_reads_no_history_while_the_latest_is_in_view(
        tmp_path, monkeypatch):
    """The desk asks each chart for its state every second (the URL's view range): with the
    newest bar in view that is "the latest" and reads no history frame (no join of the day's
    bars the live updates grew); a view moved back reads the bars' times."""
    from dashboards.chart import Chart
    from dashboards.growing_frame import GrowingFrame
    from tradeflow.bars import BarAggregator
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.live.hub import Snapshot, Update

    market = _simulated_market(tmp_path, "2026-11-25 00:00", "2026-11-25 03:00")
    inst = market.store.instrument("BTCUSDT")
    chart = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="footprint"), market)
    trades = MarketSimulator(inst, seed=8, trades_per_day=20_000).generate(
        "2026-11-25 03:00", "2026-11-25 03:30").trades
    aggregator = BarAggregator(inst, "1m")
    seed = aggregator.update(trades.iloc[:10])
    chart.on_message(Snapshot(seed.closed, seed.closed_footprint, seed.current,
                              seed.current_footprint))
    for start in range(10, len(trades), 50):
        up = aggregator.update(trades.iloc[start:start + 50])
        chart.on_message(Update(up.closed, up.closed_footprint, up.current,
                                up.current_footprint))
    reads = []
    frame = GrowingFrame.frame
    monkeypatch.setattr(GrowingFrame, "frame",
                        property(lambda rows: reads.append(1) or frame.fget(rows)))
    n = len(chart.bar_times()[0])  # (read before counting)
    reads.clear()
    assert chart.state().view_range is None and reads == []
    chart.x_range.update(start=chart.first_x + n - 40, end=chart.first_x + n - 20)
    assert chart.state().view_range is not None and reads  # times read: a view back in time
