"""``tradeflow export chart``: a standalone HTML file that draws from ``file://`` with the
network blocked, a PNG of the asked size, and one clear line for each bad input (nothing
written). Run as a user runs it (the installed entry point), on a simulator-filled DuckDB
store at fixed dates; screenshots in ``tests/artifacts/export-*.png``."""
from __future__ import annotations

import io
import os
import re
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboards.components.theme import THEMES
from tests.test_cli import run
from tests.test_cli_errors import one_line_error

ARTIFACTS = Path(__file__).parent / "artifacts"
END = "2026-01-07T20:00:00Z"  # a Wednesday: ES traded the whole simulated day


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """ES with a simulated day of trades up to :data:`END`."""
    url = f"duckdb:///{tmp_path_factory.mktemp('export')}/export.duckdb"
    run(["instruments", "add", "ES", "--tick-size", "0.25", "--session",
         "America/Chicago 08:30-15:15,17:00-16:00"], url)
    run(["simulate", "ES", "--days", "1", "--end", END, "--no-live", "--trades-per-day",
         "20000"], url)
    return url


def bars_of(url, **args) -> pd.DataFrame:
    from tradeflow.marketdata import MarketData

    with MarketData(url) as md:
        return md.bars("ES", **args)


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])


def pixels_of(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)


def count(pixels: np.ndarray, colour: str) -> int:
    return int((pixels == rgb(colour)).all(axis=1).sum())


# what the page's Bokeh document holds: the bars' rows, the cells, the numbers and their renderers
DOCUMENT = """() => {
  const models = [...Bokeh.documents[0].all_models];
  const data = m => m.data !== undefined ? m.data : null;
  const bars = models.find(m => data(m) && "poc_y" in m.data);
  const cells = models.find(m => data(m) && "imb" in m.data && "layer" in m.data);
  const texts = models.filter(m => data(m) && "center" in m.data && "xl" in m.data);
  const shown = models.filter(m => m.glyph && m.glyph.properties.text !== undefined &&
                                   m.data_source && "center" in m.data_source.data)
                      .filter(r => r.visible).map(r => r.glyph.text.field);
  return {open: Array.from(bars.data.open), close: Array.from(bars.data.close),
          cells: cells.data.x.length, numbers: texts.map(t => t.data.x.length),
          shown: shown};
}"""
ZOOM = """(factor) => {
  const fig = [...Bokeh.documents[0].all_models].find(
      m => m.title && m.title.text && m.title.text.includes("   row "));
  const r = fig.x_range, mid = (r.start + r.end) / 2, half = (r.end - r.start) / 2 * factor;
  r.setv({start: mid - half, end: mid + half});
  return new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
}"""


def test_the_html_draws_from_a_file_with_no_network(filled, tmp_path):
    from tests.browser import browser_page

    out = tmp_path / "footprint.html"
    proc = run(["export", "chart", "ES", "--spec", "5m", "--type", "footprint", "--last", "12",
                "--end", END, "-o", str(out)], filled)
    assert f"wrote {out}" in proc.stderr
    text = out.read_text()
    # every script and style is inlined: no src or href at all, so nothing to fetch
    assert not re.search(r"<script[^>]*\bsrc\s*=", text)
    assert not re.search(r"<link[^>]*\bhref\s*=", text)
    assert "<title>ES 5m footprint</title>" in text and "ES 5m   row " in text
    want = bars_of(filled, spec="5m", last=12, end=END)
    ARTIFACTS.mkdir(exist_ok=True)
    theme = THEMES["dark"]
    with browser_page(1200, 700) as page:
        asked, errors = [], []

        def no_network(route):  # the page may read its own file, nothing else
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                asked.append(route.request.url)
                route.abort()

        page.route("**/*", no_network)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(out.as_uri())
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                               "Bokeh.documents[0].is_idle", timeout=60_000)
        page.evaluate(ZOOM, 1.0)
        shot = page.screenshot(path=str(ARTIFACTS / "export-footprint-html.png"))
        doc = page.evaluate(DOCUMENT)
        # the bars exported, exactly
        np.testing.assert_allclose(doc["open"], want["open"])
        np.testing.assert_allclose(doc["close"], want["close"])
        # every cell's numbers are in the file (no server writes them), shown: readable here
        assert doc["cells"] > 12 * 5 and sum(doc["numbers"]) == doc["cells"]
        # bid and ask (the words of the cell mode; the middle one is another mode's)
        assert sorted(doc["shown"]) == ["left", "left", "right", "right"]
        pixels = pixels_of(shot)
        assert count(pixels, theme.up) > 200 and count(pixels, theme.down) > 200  # candles
        # zoomed out in the browser, the numbers would overlap: hidden, shown again zoomed in
        page.evaluate(ZOOM, 8.0)
        assert page.evaluate(DOCUMENT)["shown"] == []
        page.screenshot(path=str(ARTIFACTS / "export-footprint-html-zoomed-out.png"))
        page.evaluate(ZOOM, 1 / 8.0)
        assert sorted(page.evaluate(DOCUMENT)["shown"]) == ["left", "left", "right", "right"]
    assert asked == [] and errors == []


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_png_has_the_asked_size_and_draws(filled, tmp_path):
    out = tmp_path / "candles.png"
    run(["export", "chart", "ES", "--spec", "5m", "--type", "candles", "--studies",
         "EMA(timeperiod=20),RSI", "--theme", "light", "--end", END, "--width", "1000",
         "--height", "600", "-o", str(out)], filled)
    data = out.read_bytes()
    assert png_size(data) == (1000, 600)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(out, ARTIFACTS / "export-candles-light.png")
    theme = THEMES["light"]
    pixels = pixels_of(data)
    assert count(pixels, theme.background) < 0.9 * len(pixels)
    assert count(pixels, theme.up) > 300 and count(pixels, theme.down) > 300
    assert [p for p in os.listdir(tmp_path) if p.endswith(".part")] == []


BAD = [
    (["NOPE", "--spec", "5m"], "unknown symbol 'NOPE'"),
    (["ES", "--spec", "5x"], "--spec: bar spec '5x' not understood"),
    (["ES", "--type", "pie"], "--type: 'pie': use one of footprint, ohlc, candles"),
    (["ES", "--studies", "NOPE"], "--studies: unknown study 'NOPE'"),
    (["ES", "--type", "footprint", "--studies", "EMA"], "--studies: the footprint draws"),
    (["ES", "--start", "2025-01-06", "--end", "2025-01-07"], "no bars from 2025-01-06"),
    (["ES", "--start", "yesterday"], "time 'yesterday' not understood"),
    (["ES", "--type", "footprint", "--spec", "1m", "--last", "1001"],
     "a file holds at most 1,000 footprint bars"),
]
BAD_OUTPUT = [  # where the file cannot go: said before any work
    ("{tmp}/missing/chart.html", "the folder {tmp}/missing does not exist"),
    ("{tmp}/chart.pdf", "use a .html or .png file name, or give --format"),
    ("{tmp}", "is a folder: give a file name"),
    ("{tmp}/chart.htm --format png", "is a .htm file name but --format is png"),
    ("{tmp}/chart.html --width 800", "--width and --height: give both, or neither"),
    # not writable (even for root, who may write in read-only folders)
    ("/proc/chart.html --last 5", "cannot write a file in /proc"),
]


def test_bad_input_is_one_line_and_writes_nothing(filled, tmp_path, tmp_path_factory):
    out = tmp_path / "chart.html"
    out.write_text("the previous chart")
    commands = [(args + ["-o", str(out)], part) for args, part in BAD] + [
        (["ES", "-o", *path.format(tmp=tmp_path).split()] + (
            ["--format", "html"] if path == "{tmp}" else []), part.format(tmp=tmp_path))
        for path, part in BAD_OUTPUT]

    stores = tmp_path_factory.mktemp("stores")

    def export(i, command):  # each on its own copy: one DuckDB file serves one process at a time
        copy = stores / f"{i}.duckdb"
        shutil.copy(filled.removeprefix("duckdb:///"), copy)
        return run(["export", "chart", *command[0]], f"duckdb:///{copy}", ok=False)

    with ThreadPoolExecutor(3) as pool:  # each is a process: use the cores there are
        answers = list(pool.map(export, range(len(commands)), commands))
    for (args, part), proc in zip(commands, answers):
        one_line_error(proc, part)
    # the file given is left as it was, and no piece of another is left beside it
    assert out.read_text() == "the previous chart"
    assert sorted(os.listdir(tmp_path)) == ["chart.html"]


def test_a_missing_browser_says_what_to_install(filled, tmp_path):
    out = tmp_path / "chart.png"
    # no Chromium on the PATH, and Playwright downloaded none here
    proc = run(["export", "chart", "ES", "-o", str(out)], filled, ok=False,
               env={"PATH": str(tmp_path)})
    one_line_error(proc, "no Chromium found", "apt install chromium", "playwright install")
    named = run(["export", "chart", "ES", "-o", str(out)], filled, ok=False,
                env={"TRADEFLOW_CHROMIUM": str(tmp_path / "chrome")})
    one_line_error(named, f"TRADEFLOW_CHROMIUM={tmp_path / 'chrome'}: no such program")
    assert not out.exists()


def test_write_file_replaces_whole_or_leaves_all_as_it_was(tmp_path):
    from dashboards.export import write_file

    target = tmp_path / "chart.html"
    target.write_text("old")
    write_file(target, b"new chart")
    assert target.read_bytes() == b"new chart"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes a file
    folder = tmp_path / "a folder"
    folder.mkdir()
    with pytest.raises(OSError):  # a rename over a folder fails: the piece written is removed
        write_file(folder, b"new chart")
    assert sorted(os.listdir(tmp_path)) == ["a folder", "chart.html"]


def test_a_served_store_is_exported_through_its_server(filled, tmp_path):
    """While ``tradeflow serve`` holds the DuckDB file, the chart reads through its read API:
    the same file as from the store itself (up to Bokeh's model ids)."""
    from tests.serve import serving

    held = f"duckdb:///{tmp_path / 'held.duckdb'}"
    shutil.copy(filled.removeprefix("duckdb:///"), tmp_path / "held.duckdb")
    args = ["export", "chart", "ES", "--spec", "5m", "--studies", "EMA(timeperiod=5)",
            "--last", "30", "--end", END]
    direct = tmp_path / "direct.html"
    run([*args, "-o", str(direct)], held)
    through = tmp_path / "through.html"
    with serving(held, "--no-simulate"):
        proc = run([*args, "-o", str(through)], held)
    assert "holds the store: the chart reads from it" in proc.stderr

    def canonical(text: str) -> str:  # Bokeh's ids and document uuids differ per file
        text = re.sub(r"\bp\d+\b", "p", text)
        return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "u", text)

    assert canonical(through.read_text()) == canonical(direct.read_text())
