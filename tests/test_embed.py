"""The embed (``/embed``): its URL, the origins allowed to frame it, the frame headers of every
page, the read-only document; end to end in Chromium from pages of other origins (a little HTTP
server on another loopback port is another origin)."""
from __future__ import annotations

import http.server
import re
import threading
import time
import urllib.error
import urllib.request

import pytest

from dashboards.chart_state import StateError
from tests.browser import BARS_JS
from tradeflow.config import EMBED_ORIGINS, ConfigError, embed_origins

# --- the configured origins ----------------------------------------------------------------------


def test_origins_are_read_from_the_option_else_the_environment(monkeypatch):
    monkeypatch.setenv(EMBED_ORIGINS, " HTTPS://News.Example.com ,http://127.0.0.1:8080,,"
                                      "http://[::1]:9000,https://news.example.com")
    assert embed_origins() == ["https://news.example.com", "http://127.0.0.1:8080",
                               "http://[::1]:9000"]
    assert embed_origins("http://localhost:3000") == ["http://localhost:3000"]
    monkeypatch.delenv(EMBED_ORIGINS)
    assert embed_origins() == []


@pytest.mark.parametrize("origin, why", [
    ("ftp://example.com", "the scheme is http or https"),
    ("example.com", "the scheme is http or https"),
    ("javascript:alert(1)", "the scheme is http or https"),
    ("https://example.com/", "no path"),
    ("https://example.com/news", "no path"),
    ("https://example.com?x=1", "no path"),
    ("https://user@example.com", "no user or password"),
    ("https://*.example.com", "the host is a name"),
    ("https://exa mple.com", "it holds a space"),
    ("https://example.com:0", "its port is not a number from 1 to 65535"),
    ("https://example.com:70000", "its host or port cannot be read; a port is a number"),
    ("http://[nope]:80", "its host or port cannot be read"),
    ("http://'self'", "the host is a name"),
])
def test_a_bad_origin_is_one_line_naming_it(monkeypatch, origin, why):
    monkeypatch.setenv(EMBED_ORIGINS, f"https://ok.example.com,{origin}")
    with pytest.raises(ConfigError) as exc:
        embed_origins()
    message = str(exc.value)
    assert message.startswith(f"{EMBED_ORIGINS}: {origin!r} is not an origin ({why}")
    assert "\n" not in message


def test_a_bad_origin_stops_the_server_before_it_starts(tmp_path):
    import os
    import subprocess

    from tests.serve import TRADEFLOW

    env = dict(os.environ, TRADEFLOW_STORE=f"duckdb:///{tmp_path / 's.duckdb'}",
               **{EMBED_ORIGINS: "https://ok.example.com, http://evil.example.com/x"})
    proc = subprocess.run([TRADEFLOW, "serve", "--port", "0"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: {EMBED_ORIGINS}: 'http://evil.example.com/x' is not an origin (no path, not "
        "even '/'): write scheme://host[:port], e.g. https://news.example.com or "
        "http://127.0.0.1:8080"]
    assert "serving" not in proc.stdout
    assert not (tmp_path / "s.duckdb").exists()  # nothing opened, nothing written


# --- the embed's URL -----------------------------------------------------------------------------

def _config(query: str):
    from urllib.parse import parse_qs

    from dashboards.apps.embed import embed_config
    return embed_config({k: [v.encode() for v in vs] for k, vs in parse_qs(query).items()})


def test_the_embed_takes_the_desks_names_and_the_issues():
    chart = _config("symbol=ES&spec=5m&view=footprint&theme=light")
    assert (chart.symbol, chart.spec, chart.chart_type, chart.theme) == (
        "ES", "5m", "footprint", "light")
    chart = _config("symbol=ES&spec=T500&type=candles&mode=dark&studies=RSI(timeperiod=21)"
                    "&panes=volume_profile")
    assert (chart.chart_type, chart.theme, chart.panes) == ("candles", "dark",
                                                            ["volume_profile"])
    assert chart.studies == [{"name": "RSI", "params": {"timeperiod": 21}}]
    assert _config("symbol=ES&view=line&type=line").chart_type == "line"


@pytest.mark.parametrize("query, message", [
    ("spec=5m", "symbol: missing"),
    ("symbol=", "symbol: missing"),
    ("symbol=a%20b", "symbol: symbol 'a b' is not valid"),
    ("symbol=ES&spec=3x", "spec: bar spec '3x' not understood"),
    ("symbol=ES&view=pie", "view: 'pie': use one of footprint"),
    ("symbol=ES&type=pie", "type: 'pie': use one of footprint"),
    ("symbol=ES&theme=blue", "theme: 'blue': use one of dark, light"),
    ("symbol=ES&view=line&type=candles", "view: 'line' and type='candles'"),
    ("symbol=ES&layout=2", "URL: unknown parameter 'layout'; the embed takes symbol"),
    ("symbol=ES&symbol2=NQ", "URL: unknown parameter 'symbol2'"),
    ("symbol=ES&studies=FOO", "studies: unknown study 'FOO'"),
])
def test_a_bad_embed_url_says_what_and_where(query, message):
    with pytest.raises(StateError) as exc:
        _config(query)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


# --- the read-only document ---------------------------------------------------------------------

def test_the_document_takes_only_what_viewing_needs(caplog):
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource, Div, Range1d
    from bokeh.plotting import figure

    from dashboards.read_only import allowed, read_only

    doc = Document()
    x_range = Range1d(0, 10)
    bars = ColumnDataSource({"x": [0, 1], "close": [1.0, 2.0]})
    viewport = ColumnDataSource({"x0": [0.0], "x1": [1.0]})
    fig = figure(x_range=x_range)
    fig.scatter("x", "close", source=bars)
    fig.scatter("x0", "x1", source=viewport)
    note = Div(text="ES 5m")
    doc.add_root(fig)
    doc.add_root(note)
    read_only(doc, lambda: [viewport])

    def change(model, attr, new):
        return {"kind": "ModelChanged", "model": {"id": model.id}, "attr": attr, "new": new}

    with caplog.at_level("WARNING", logger="dashboards.read_only"):
        doc.apply_json_patch({"events": [
            change(x_range, "start", 3.0), change(x_range, "end", 7.0),  # a zoom: applied
            change(note, "text", "NQ 1m"),                     # a text: dropped, no word
            change(fig, "title", None),                                  # refused
            change(bars, "data", {"x": [5], "close": [9.0]}),            # a source: refused
            change(viewport, "data", {"x0": [3.0], "x1": [7.0]}),        # the report: applied
            change(x_range, "bounds", [0, 1]),                           # not a zoom: refused
        ]})
    assert (x_range.start, x_range.end) == (3.0, 7.0)
    assert note.text == "ES 5m"
    assert bars.data["close"] == [1.0, 2.0]
    assert viewport.data["x0"] == [3.0]
    assert x_range.bounds is None
    refused = [r.getMessage() for r in caplog.records]
    assert len(refused) == 1
    for what in ("figure.title", "ColumnDataSource.data", "Range1d.bounds"):
        assert what in refused[0]
    assert "Div.text" not in refused[0]
    assert fig.title is not None
    # nothing at all applied when everything is refused; a new root is refused
    doc.apply_json_patch({"events": [{"kind": "TitleChanged", "title": "forged"},
                                     change(note, "text", "x")]})
    assert doc.title != "forged" and note.text == "ES 5m"
    # Bokeh's plot events and document_ready pass; a widget's event does not
    event = (lambda name: {"kind": "MessageSent", "msg_type": "bokeh_event",
                           "msg_data": {"type": "event", "name": name, "values": {}}})
    assert allowed(doc, event("rangesupdate")) and allowed(doc, event("document_ready"))
    assert allowed(doc, event("mousemove")) and allowed(doc, event("wheel"))
    assert not allowed(doc, event("button_click")) and not allowed(doc, event("menu_item_click"))
    assert not allowed(doc, {"kind": "MessageSent", "msg_type": "comm", "msg_data": {}})


# --- served: headers, API, and Chromium ----------------------------------------------------------

ARTIFACTS = __import__("pathlib").Path(__file__).parent / "artifacts"
OTHER_SITE = "https://news.example.com"


class _Site:
    """A little site on its own loopback port (its own origin) with one page framing ``src``."""

    def __init__(self):
        site = self

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = (f'<!doctype html><html><head><title>another site</title></head>'
                        f'<body style="margin:8px;background:#e8e4da;font:14px sans-serif">'
                        f'<h3>Another site on {site.origin}</h3>'
                        f'<iframe id="chart" src="{site.src}" width="860" height="480" '
                        f'style="border:1px solid #888"></iframe></body></html>').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.src = "about:blank"
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sites():
    allowed, refused = _Site(), _Site()
    yield allowed, refused
    allowed.close()
    refused.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, sites):
    """``tradeflow serve --simulate BTCUSDT`` (a few hours of history stored first), the first
    little site's origin and OTHER_SITE allowed to frame the embed."""
    from data_access import open_store
    from tests.serve import serving
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.model import Instrument

    path = tmp_path_factory.mktemp("embed") / "embed.duckdb"
    store = open_store(f"duckdb:///{path}")
    inst = Instrument("BTCUSDT", 0.1)
    store.add_instrument(inst)
    store.write_trades("BTCUSDT", MarketSimulator(inst, seed=7, trades_per_day=20_000).generate(
        "2026-11-27 14:00", "2026-11-27 20:00").trades)
    store.close()
    ARTIFACTS.mkdir(exist_ok=True)
    origins = f"{sites[0].origin},{OTHER_SITE}"
    with serving(f"duckdb:///{path}", "--simulate", "BTCUSDT",
                 env={EMBED_ORIGINS: origins}) as server:
        yield server


def _get(url: str, method: str = "GET", headers=None, data=None):
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers


def test_only_the_embed_may_be_framed_by_the_configured_origins(served, sites):
    status, headers = _get(f"{served.url}/embed?symbol=BTCUSDT&spec=5m")
    assert status == 200
    assert headers.get_all("Content-Security-Policy") == [
        f"frame-ancestors 'self' {sites[0].origin} {OTHER_SITE}"]
    assert headers.get("X-Frame-Options") is None  # it would forbid the allowed origins
    # (pages refusing a bad query answer fastest; the headers do not depend on the query)
    for path in ("/?typo=1", "/desk?typo=1", "/formula?last=0", "/api/v1/openapi.json",
                 "/api/v1/bars?symbol=BTCUSDT&spec=1m&last=5", "/no-such-page"):
        status, headers = _get(served.url + path)
        assert status in (200, 404), path
        assert headers.get_all("Content-Security-Policy") == ["frame-ancestors 'self'"], path
        assert headers.get("X-Frame-Options") == "SAMEORIGIN", path


def test_the_write_api_wants_a_key_and_lets_no_other_origin_in(served, sites):
    origin = {"Origin": sites[0].origin}
    status, headers = _get(f"{served.api}/trades", "OPTIONS",
                           {**origin, "Access-Control-Request-Method": "POST",
                            "Access-Control-Request-Headers": "x-api-key,content-type"})
    assert not [h for h in headers if h.lower().startswith("access-control-")]
    status, headers = _get(f"{served.api}/trades", "POST",
                           {**origin, "Content-Type": "application/json"}, b"[]")
    assert status == 401
    assert not [h for h in headers if h.lower().startswith("access-control-")]


# the bars of the chart in a frame: of the sources drawn by the plots (Bokeh's views), the
# longest with bar numbers and closes (as tests/test_desk.py reads the top page)
# the types of every model of the frame's document (tools among them)
TYPES_JS = """() => Array.from(Bokeh.documents[0].all_models).map(m => m.type)"""

# a forged change from the frame: the page's URL model (Panel's Location) and the bars' source
FORGE_JS = """() => {
  const doc = Bokeh.documents[0];
  const models = Array.from(doc.all_models);
  const location = models.find(m => m.type.endsWith('.Location') || m.type === 'Location');
  location.search = '?symbol=ES';
  const bars = models.find(m => m.type === 'ColumnDataSource' && m.data.close);
  bars.data = {x: [0], close: [1], high: [1], low: [1], open: [1]};
  return [location.id, bars.id];
}"""


@pytest.fixture(scope="module")
def page():
    """One Chromium page for the module's browser tests (each opens its own URL)."""
    from tests.browser import browser_page

    with browser_page(900, 560) as page:
        yield page


def _frame(page):
    page.wait_for_selector("#chart", timeout=30_000)
    return page.frame_locator("#chart"), page.main_frame.child_frames[0]


def _refused(served) -> list[str]:
    return [line for line in served.output.splitlines() if "refused from the browser" in line]


def test_an_allowed_site_frames_a_live_read_only_chart(served, sites, page):
    site = sites[0]
    site.src = f"{served.url}/embed?symbol=BTCUSDT&spec=1m&view=candles&theme=light"
    page.goto(f"{site.origin}/", timeout=90_000)
    _, frame = _frame(page)
    frame.wait_for_function(f"() => {{ const b = ({BARS_JS})(); return b !== null && "
                            "b.x.length > 300; }", timeout=90_000)
    first = frame.evaluate(BARS_JS)
    # live: the forming bar changes in place, or new bars come; closed bars never change
    frame.wait_for_function(
        f"""() => {{ const b = ({BARS_JS})();
        return b.x.length > {len(first['x'])} || b.close.at(-1) !== {first['close'][-1]} ||
               b.high.at(-1) !== {first['high'][-1]} || b.low.at(-1) !== {first['low'][-1]} ||
               b.volume.at(-1) !== {first['volume'][-1]}; }}""", timeout=60_000)
    later = frame.evaluate(BARS_JS)
    closed = len(first["x"]) - 1
    assert later["close"][:closed] == first["close"][:closed]
    assert frame.url.startswith(f"{served.url}/embed?")
    # sized by the iframe: the page fills it and does not scroll
    assert frame.evaluate("() => document.documentElement.scrollHeight <= innerHeight")
    # read-only: no widget, no drawing tool; zoom, pan and the crosshair are there
    assert frame.locator("input, select, textarea, button").count() == 0
    types = set(frame.evaluate(TYPES_JS))
    assert not types & {"PolyDrawTool", "PointDrawTool", "BoxEditTool", "FreehandDrawTool"}
    assert {"WheelZoomTool", "PanTool", "CrosshairTool"} <= types
    page.screenshot(path=ARTIFACTS / "embed-allowed.png")
    # a wheel zoom inside the frame is taken (nothing refused), a forged change is not
    box = page.locator("#chart").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(1500)
    assert _refused(served) == []
    frame.evaluate(FORGE_JS)
    page.wait_for_timeout(1500)
    refused = " ".join(_refused(served))
    # (the frame's own URL follows its Location model; the session does not)
    assert "Location.search" in refused and "ColumnDataSource.data" in refused


def test_a_site_not_configured_is_refused_the_frame(served, sites, page):
    site = sites[1]
    site.src = f"{served.url}/embed?symbol=BTCUSDT&spec=1m&view=candles"
    page.goto(f"{site.origin}/", timeout=90_000)
    frame = _blocked(page)
    assert frame.evaluate("() => typeof window.Bokeh") == "undefined"
    page.screenshot(path=ARTIFACTS / "embed-refused.png")
    # the desk cannot be framed by the allowed site either: only /embed can
    sites[0].src = f"{served.url}/"
    page.goto(f"{sites[0].origin}/", timeout=90_000)
    _blocked(page)


def _blocked(page):
    """The page's frame once Chromium has refused to render it (its error page)."""
    _frame(page)
    deadline = time.monotonic() + 30
    frame = page.main_frame.child_frames[0]
    while not frame.url.startswith("chrome-error://") and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        frame = page.main_frame.child_frames[0]
    assert frame.url.startswith("chrome-error://"), frame.url  # refused, not rendered
    return frame


BAD = [("symbol=%3Cb%3Ebold%3C/b%3E&spec=1m", "symbol: symbol '<b>bold</b>' is not valid"),
       ("symbol=BTCUSDT&spec=7q", "spec: bar spec '7q' not understood"),
       # said by the read's failure, applied in the session's tick once the page has loaded
       ("symbol=NOPE&spec=1m", "unknown symbol 'NOPE'")]


def test_bad_input_is_said_in_the_frame(served, page):
    for query, shown in BAD:
        page.goto(f"{served.url}/embed?{query}", timeout=90_000)
        page.wait_for_selector(".page-error", timeout=30_000)
        assert shown in page.locator(".page-error").first.inner_text(), query
        assert page.locator("b", has_text=re.compile("^bold$")).count() == 0  # text, not HTML
        if "BTCUSDT" not in query:  # no other symbol is named
            assert "BTCUSDT" not in page.locator("body").inner_text()
    page.screenshot(path=ARTIFACTS / "embed-error.png")  # the last: an unknown symbol



def test_an_embed_slow_to_report_ready_is_still_drawn(served, page):
    """A chart's first draw waits for the browser's ``document_ready`` (dashboards/live.py):
    a browser held back for 4 s after pulling the document must still get its chart once it
    reports ready."""
    from tests.browser import ready_held_back

    with ready_held_back(page, r".*/embed/ws.*") as (slow, release):
        slow.goto(f"{served.url}/embed?symbol=BTCUSDT&spec=1m", timeout=90_000)
        slow.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0",
                               timeout=60_000)
        slow.wait_for_timeout(4000)  # the first read finishes on the server meanwhile
        assert slow.locator(".chart-loading").count() == 1  # not drawn before it is ready
        release()
        slow.wait_for_function(f"() => ({BARS_JS})() !== null", timeout=30_000)
        assert slow.locator(".chart-loading").count() == 0
