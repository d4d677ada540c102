"""Real browser tests: Debian's Chromium driven by Playwright, against Panel apps served by
``panel serve`` on loopback (started here as a subprocess, stopped after)."""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tradeflow.browser import CHROMIUM_ARGS, chromium_path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = chromium_path()  # Debian's chromium here (the package finds it, as the PNG export)

# the longest bars source drawn in the page (x, close, high, low, volume), or null
BARS_JS = """() => {
  if (!window.Bokeh || !window.Bokeh.index) return null;
  let best = null;
  const seen = new Set();
  function walk(view) {
    if (!view || seen.has(view)) return;
    seen.add(view);
    for (const r of (view.model && view.model.renderers) || []) {
      const d = r.data_source && r.data_source.data;
      if (!d || !d.x || !d.close) continue;
      if (best === null || d.x.length > best.x.length)
        best = {x: Array.from(d.x), close: Array.from(d.close), high: Array.from(d.high),
                low: Array.from(d.low), volume: Array.from(d.volume || [])};
    }
    for (const child of view.child_views || []) walk(child);
  }
  for (const view of Object.values(window.Bokeh.index)) walk(view);
  return best;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def panel_app(app: str, env: dict | None = None, timeout: float = 90):
    """Serve ``dashboards/apps/<app>.py`` (or the script at path ``app``) on a free loopback
    port; yields its base URL."""
    port = free_port()
    script = Path(app) if str(app).endswith(".py") else ROOT / "dashboards" / "apps" / f"{app}.py"
    cmd = [str(Path(sys.executable).with_name("panel")), "serve", str(script),
           "--port", str(port), "--address", "127.0.0.1",
           "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"panel serve exited: {proc.stdout.read()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/liveness", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("panel serve did not answer in time")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def browser_page(width: int = 1280, height: int = 900):
    """A fresh page of headless Chromium. Not one browser for the session: Playwright's sync API
    keeps its event loop marked running in this thread while started, and every later test's
    ``asyncio.run`` would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


@contextlib.contextmanager
def ready_held_back(page, ws_url: str):
    """A new page (in its own context of ``page``'s browser) whose messages to the server wait,
    in order, from when it has pulled its document until ``release()``: a browser slow to report
    ``document_ready``. Yields ``(page, release)``; ``ws_url`` is a regex of the websocket URL."""
    context = page.context.browser.new_context(viewport=page.viewport_size)
    slow = context.new_page()
    held: list = []
    state = {"holding": False, "upstream": None}

    def route(ws):
        upstream = state["upstream"] = ws.connect_to_server()

        def from_server(message):
            if isinstance(message, str) and re.search(r'"msgtype": ?"PULL-DOC-REPLY"', message):
                state["holding"] = True  # the page has its document: it reports ready next
            ws.send(message)

        def from_page(message):
            if state["holding"]:
                held.append(message)
            else:
                upstream.send(message)

        upstream.on_message(from_server)
        ws.on_message(from_page)

    def release():
        assert state["upstream"] is not None, "the page's websocket was not routed"
        assert state["holding"] and held, "the page sent nothing after its document was pulled"
        state["holding"] = False
        for message in held:
            state["upstream"].send(message)

    slow.route_web_socket(re.compile(ws_url), route)
    try:
        yield slow, release
    finally:
        context.close()
