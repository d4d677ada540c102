"""The desk in a real browser (Debian Chromium via Playwright) against bare Bokeh pages measured
in the same run (issue 11's benchmarks):

1. ``open``: from ``page.goto`` of ``/?symbol=ES&spec=1m&type=footprint`` (``tradeflow serve
   --no-simulate`` over two simulated days of ES) until the footprint's cell source holds the
   day's cells and its zoomed-in numbers are filled. Baseline: a plain Panel page with one Bokeh
   figure drawing the same number of rects, served by ``panel serve``; repeats interleaved.
2. ``live``: ``tradeflow serve --simulate ES`` with N Chromium pages on the desk: websocket bytes
   the browser receives per update (a Bokeh ``PATCH-DOC`` message) and the server's CPU time per
   update per session (psutil, the CPU of the window with the pages open minus that of an equal
   window with none). Baseline: a bare Bokeh app patching one 20-cell column every 250 ms
   (``doc.add_periodic_callback``), the same pages and windows.
3. Sessions held at 4 updates/s before p95 passes 250 ms: not measured here (see the README).

    .venv/bin/python -m tests.benchmarks.bench_desk [--parts open,live] [--repeat 3]
        [--sessions 2] [--window 20] [--out NAME]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from tests.benchmarks.common import Row, environment, print_table, write_json
from tests.browser import browser_page, panel_app
from tests.serve import serving, tradeflow

HISTORY_END = "2026-11-27T20:00:00Z"  # a Friday: ES traded the whole day before
DESK_QUERY = "/?symbol=ES&spec=1m&type=footprint"
PERIOD_MS = 250  # the desk's session callback; the bare app patches at the same pace

# the footprint's cell source (it has a ``layer`` column) and the number of its rows; and
# whether the zoomed-in numbers (a source with ``center`` text) are filled
DESK_CELLS_JS = """() => {
  if (!window.Bokeh || !window.Bokeh.documents.length) return -1;
  let cells = -1, text = 0;
  for (const m of window.Bokeh.documents[0].all_models) {
    const d = m.data;
    if (!d || typeof d !== 'object') continue;
    if (d.layer !== undefined && d.tick !== undefined) cells = Math.max(cells, d.layer.length);
    if (d.center !== undefined) text += d.center.length;
  }
  return text > 0 ? cells : -1;
}"""

BARE_RECTS_JS = """(n) => {
  if (!window.Bokeh || !window.Bokeh.documents.length) return false;
  const src = window.Bokeh.documents[0].get_model_by_name('rects');
  return !!src && src.data.x.length >= n;
}"""

# a plain Panel page with one Bokeh figure drawing ``?n=`` rects
BARE_RECTS_PAGE = '''
import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

n = int(pn.state.session_args.get("n", [b"1000"])[0])
rng = np.random.default_rng(0)
x = np.repeat(np.arange(1440), n // 1440 + 1)[:n]
source = ColumnDataSource({"x": x, "y": rng.normal(5000, 10, n).round(2),
                           "v": rng.integers(1, 200, n)}, name="rects")
fig = figure(sizing_mode="stretch_both", x_range=(x[-1] - 14, x[-1] + 1))
fig.rect("x", "y", 0.8, 0.23, source=source, fill_color="#3a7", line_color=None)
pn.pane.Bokeh(fig, sizing_mode="stretch_both").servable()
'''

# a bare Bokeh app: one 20-cell column patched every 250 ms by the document's own callback
BARE_PATCH_APP = '''
import numpy as np
from bokeh.io import curdoc
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

rng = np.random.default_rng(0)
source = ColumnDataSource({"x": list(range(20)), "y": rng.normal(0, 1, 20).tolist()}, name="bare")
fig = figure(sizing_mode="stretch_both")
fig.vbar("x", 0.8, "y", source=source)


def tick():
    source.patch({"y": [(slice(0, 20), rng.normal(0, 1, 20).tolist())]})


doc = curdoc()
doc.add_root(fig)
doc.add_periodic_callback(tick, %d)
''' % PERIOD_MS


def fill_store(folder: Path) -> str:
    store = f"duckdb:///{folder / 'desk.duckdb'}"
    tradeflow(["instruments", "add", "ES", "--tick-size", "0.25", "--exchange", "CME",
               "--session", "America/Chicago 08:30-15:15,17:00-16:00"], store)
    tradeflow(["simulate", "ES", "--days", "2", "--no-live", "--end", HISTORY_END], store)
    return store


# --- 1. opening the desk ----------------------------------------------------------------------

def time_desk(page, url: str) -> tuple[float, int]:
    """(seconds from goto to a drawn footprint, cells in its source)."""
    t0 = time.perf_counter()
    page.goto(url + DESK_QUERY, timeout=120_000)
    page.wait_for_function(f"() => ({DESK_CELLS_JS})() > 0", timeout=120_000, polling=50)
    dt = time.perf_counter() - t0
    return dt, page.evaluate(DESK_CELLS_JS)


def time_bare(page, url: str, n: int) -> float:
    t0 = time.perf_counter()
    page.goto(f"{url}?n={n}", timeout=120_000)
    page.wait_for_function(BARE_RECTS_JS, arg=n, timeout=120_000, polling=50)
    return time.perf_counter() - t0


def bench_open(store: str, repeat: int, folder: Path) -> list[Row]:
    script = folder / "bare_rects.py"
    script.write_text(BARE_RECTS_PAGE)
    desk_times, bare_times, cells = [], [], 0
    with serving(store, "--no-simulate") as served, panel_app(str(script)) as bare_url:
        bare = f"{bare_url}/bare_rects"
        # a warm-up of each (imports, first session), untimed
        with browser_page(1400, 950) as page:
            _, cells = time_desk(page, served.url)
        with browser_page(1400, 950) as page:
            time_bare(page, bare, cells)
        for _ in range(repeat):  # interleaved, a fresh browser each time (nothing cached)
            with browser_page(1400, 950) as page:
                bare_times.append(time_bare(page, bare, cells))
            with browser_page(1400, 950) as page:
                dt, cells = time_desk(page, served.url)
                desk_times.append(dt)
    value, base = statistics.median(desk_times) * 1e3, statistics.median(bare_times) * 1e3
    return [Row("open the desk -> footprint drawn (ES 1m, a day)", value, "ms", base,
                f"plain Panel page, one Bokeh figure of the same {cells} rects (panel serve)",
                base / value, details={"desk_s": desk_times, "bare_s": bare_times,
                                       "cells": cells},
                note=f"{cells} cells in the footprint's source; median of {repeat}, "
                     f"desk {['%.2f' % t for t in desk_times]} s, "
                     f"bare {['%.2f' % t for t in bare_times]} s")]


# --- 2. live updates --------------------------------------------------------------------------

class Counter:
    """Bytes and Bokeh PATCH-DOC messages a page receives over its websockets."""

    def __init__(self, page):
        self.bytes = self.patches = 0
        self.on = False
        page.on("websocket", self._ws)

    def _ws(self, ws):
        ws.on("framereceived", self._frame)

    def _frame(self, payload):
        if not self.on:
            return
        self.bytes += len(payload.encode() if isinstance(payload, str) else payload)
        if isinstance(payload, str) and '"msgtype":"PATCH-DOC"' in payload.replace(" ", ""):
            self.patches += 1


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of the process and its threads."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def measure_live(pid: int, open_pages, ready_js: str, sessions: int, window: float) -> dict:
    """CPU of an idle window, then of the same window with ``sessions`` pages open and counting."""
    c0 = cpu_of(pid)
    time.sleep(window)
    idle = cpu_of(pid) - c0
    with open_pages() as pages:
        counters = [Counter(p) for p in pages]
        for p, url in pages.items():
            p.goto(url, timeout=120_000)
        for p in pages:
            p.wait_for_function(ready_js, timeout=120_000)
        first = next(iter(pages))
        # (Playwright's sync API delivers the frame events only while it waits)
        first.wait_for_timeout(3000)  # the first loads' messages are done
        for c in counters:
            c.on = True
        c0 = cpu_of(pid)
        first.wait_for_timeout(window * 1000)
        busy = cpu_of(pid) - c0
        for c in counters:
            c.on = False
    patches = sum(c.patches for c in counters)
    received = sum(c.bytes for c in counters)
    return {"idle_cpu_s": idle, "busy_cpu_s": busy, "patches": patches, "bytes": received,
            "bytes_per_update": received / patches if patches else float("nan"),
            "cpu_ms_per_update_session": (busy - idle) / patches * 1e3 if patches
            else float("nan"),
            "updates_per_s_per_session": patches / sessions / window,
            "cpu_ms_per_session_s": (busy - idle) / sessions / window * 1e3}


def pages_at(url: str, sessions: int):
    """A context giving ``sessions`` pages of one headless Chromium, mapped to ``url``."""
    import contextlib

    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    @contextlib.contextmanager
    def opened():
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                         headless=True)
            try:
                yield {browser.new_page(viewport={"width": 1400, "height": 950}): url
                       for _ in range(sessions)}
            finally:
                browser.close()
    return opened


def bench_live(store: str, sessions: int, window: float, folder: Path) -> list[Row]:
    script = folder / "bare_patch.py"
    script.write_text(BARE_PATCH_APP)
    with serving(store, "--simulate", "ES") as served:
        time.sleep(5)  # the simulator and pipeline running
        desk = measure_live(served.proc.pid, pages_at(served.url + DESK_QUERY, sessions),
                            f"() => ({DESK_CELLS_JS})() > 0", sessions, window)
    with panel_app(str(script)) as url:
        time.sleep(2)
        server = _panel_pid(url)
        bare = measure_live(server, pages_at(f"{url}/bare_patch", sessions),
                            "() => !!(window.Bokeh && window.Bokeh.documents.length && "
                            "window.Bokeh.documents[0].get_model_by_name('bare'))",
                            sessions, window)
    what = "bare Bokeh app patching one 20-cell column every 250 ms (panel serve)"
    note = (f"{sessions} Chromium sessions, {window:.0f} s windows; desk "
            f"{desk['updates_per_s_per_session']:.1f} updates/s/session, bare "
            f"{bare['updates_per_s_per_session']:.1f}; server CPU idle/with pages: desk "
            f"{desk['idle_cpu_s']:.2f}/{desk['busy_cpu_s']:.2f} s, bare "
            f"{bare['idle_cpu_s']:.2f}/{bare['busy_cpu_s']:.2f} s; CPU per session-second: desk "
            f"{desk['cpu_ms_per_session_s']:.0f} ms, bare {bare['cpu_ms_per_session_s']:.0f} ms")
    b_desk, b_bare = desk["bytes_per_update"], bare["bytes_per_update"]
    c_desk, c_bare = desk["cpu_ms_per_update_session"], bare["cpu_ms_per_update_session"]
    return [Row("bytes to the browser per live update", b_desk, "B", b_bare, what,
                b_bare / b_desk, details={"desk": desk, "bare": bare}, note=note),
            Row("server CPU per live update per session", c_desk, "ms", c_bare, what,
                c_bare / c_desk)]


def _panel_pid(url: str) -> int:
    """The process listening on ``url``'s port (the ``panel serve`` started by panel_app)."""
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    raise RuntimeError(f"no process listens on {port}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="open,live", help="comma-separated: open, live")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--window", type=float, default=20.0, help="seconds per live window")
    ap.add_argument("--out", default="desk")
    args = ap.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",")}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-desk-") as tmp:
        folder = Path(tmp)
        store = fill_store(folder)
        if "open" in parts:
            rows += bench_open(store, args.repeat, folder)
        if "live" in parts:
            rows += bench_live(store, args.sessions, args.window, folder)
    print_table(rows)
    print("not measured: sessions held at 4 updates/s before p95 trade -> browser passes 250 ms")
    write_json(args.out, rows, {"environment": environment(), "args": vars(args)})


if __name__ == "__main__":
    main()
