"""The notebooks: each runs top to bottom from its committed copy (no outputs kept in git) on a
fresh DuckDB store and on a fresh PostgreSQL+TimescaleDB database; the executed copy (written to
tmp_path) holds the charts as Bokeh output with BokehJS inline and nothing from a CDN. And
``tradeflow serve`` serves them read-only under /notebooks."""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.browser import ROOT, browser_page
from tests.serve import serving

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BY_NAME = {p.stem: p for p in NOTEBOOKS}
CDN = re.compile(r"https?://cdn\.(bokeh|holoviz)\.org")
EXEC_MIMES = ("application/vnd.holoviews_exec.v0+json", "application/vnd.bokehjs_exec.v0+json")
SHOWS_A_CHART = re.compile(r"\.servable\(|tf\.chart\(|pn\.pane\.HoloViews\(")
ARTIFACTS = ROOT / "tests" / "artifacts"


def execute(path: Path, store: str, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run the committed notebook on ``store`` (the kernel inherits $TRADEFLOW_STORE) in
    tmp_path; the executed copy is saved there too."""
    monkeypatch.setenv("TRADEFLOW_STORE", store)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / path.name)
    return nb


def check_outputs(nb: nbformat.NotebookNode) -> None:
    """No errors; every cell that shows a chart holds Bokeh output; BokehJS is in the notebook
    itself and nothing is loaded from a CDN."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.get("outputs", [])]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors
    for cell in code:
        if SHOWS_A_CHART.search(cell.source):
            mimes = {m for o in cell.outputs for m in o.get("data", {})}
            assert mimes & set(EXEC_MIMES), f"no Bokeh output from:\n{cell.source}"
    scripts = [o["data"]["application/javascript"] for o in outputs
               if "application/javascript" in o.get("data", {})]
    assert any("BEGIN bokeh.min.js" in "".join(s) for s in scripts), "BokehJS is not inline"
    found = CDN.findall(json.dumps(outputs))
    assert not found, f"outputs load from a CDN: {sorted(set(found))}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_duckdb_and_shows_its_charts_offline(path, tmp_path, monkeypatch):
    nb = execute(path, f"duckdb:///{tmp_path}/store.duckdb", tmp_path, monkeypatch)
    check_outputs(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_timescaledb(path, timescale_db_url, tmp_path, monkeypatch):
    """The store URL is the one thing that changes: each notebook on PostgreSQL+TimescaleDB."""
    nb = execute(path, timescale_db_url, tmp_path, monkeypatch)
    check_outputs(nb)
    if path.stem == "quickstart":
        printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert "new trades" in printed and "IngestError" in printed  # the bad file refused


def test_the_issue_notebooks_are_there_and_committed_without_outputs():
    assert {"quickstart", "footprint_research", "orderbook_heatmap",
            "indicator_research"} <= set(BY_NAME)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in cells), path.name
        # the store is one setting at the top, from $TRADEFLOW_STORE
        assert 'os.environ.get("TRADEFLOW_STORE"' in cells[0].source, path.name


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=240) as answer:
        assert answer.status == 200
        return answer.read().decode()


def test_serve_shows_the_notebooks_read_only(tmp_path):
    """A store with a day of BTCUSDT, served: the index lists every notebook, the quickstart's
    page runs on the server's store, draws in Chromium and writes nothing."""
    from data_access import open_store
    from tradeflow.api import Workspace

    url = f"duckdb:///{tmp_path}/store.duckdb"
    with Workspace(url) as ws:
        ws.add_instrument("BTCUSDT", 0.1, "BINANCE", "crypto", session="UTC 00:00-24:00")
        stored = ws.simulate("BTCUSDT", "2026-01-05", "2026-01-06", seed=5,
                             trades_per_day=20_000, depth=False)
    with serving(url) as served:
        # a Bokeh server page arrives as a shell; its content comes over the websocket
        assert "TradeFlow notebooks" in _get(f"{served.url}/notebooks")
        _get(f"{served.url}/notebooks/quickstart")
        with browser_page() as browser:
            ARTIFACTS.mkdir(exist_ok=True)
            browser.goto(f"{served.url}/notebooks", timeout=120_000)
            links = browser.locator('a[href^="/notebooks/"]')
            links.first.wait_for(timeout=60_000)
            hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
            assert {f"/notebooks/{name}" for name in BY_NAME} <= hrefs
            assert browser.get_by_text("Quickstart: a store, a trade file").count() == 1
            browser.screenshot(path=str(ARTIFACTS / "notebook-served-index.png"))
            browser.goto(f"{served.url}/notebooks/quickstart", timeout=240_000)
            browser.wait_for_selector("canvas", state="attached", timeout=120_000)
            browser.get_by_text("BTCUSDT").first.wait_for(timeout=60_000)  # the chart's readout
            browser.wait_for_timeout(2000)
            browser.screenshot(path=str(ARTIFACTS / "notebook-served-quickstart.png"),
                               full_page=True)
            # a notebook that reads what this store lacks says so (escaped), and why
            browser.goto(f"{served.url}/notebooks/orderbook_heatmap", timeout=240_000)
            alert = browser.locator(".page-error-problem")
            alert.wait_for(timeout=120_000)
            assert "orderbook_heatmap.ipynb stopped" in alert.inner_text()
            assert "SOLUSDT" in alert.inner_text()
    store = open_store(url)
    try:  # the page read the store and wrote nothing (no import, no sample filled)
        assert len(store.trades("BTCUSDT")) == stored
        assert [i.symbol for i in store.instruments()] == ["BTCUSDT"]
    finally:
        store.close()


def test_a_fixed_height_chart_holds_its_study_panes(tmp_path):
    """tf.chart(height=H) with studies in panes: the price figure leaves them room, so every
    figure lies inside the H pixels the notebook output gives the chart."""
    import panel as pn
    from bokeh.models import Plot

    from tradeflow.api import Workspace

    with Workspace(f"duckdb:///{tmp_path}/store.duckdb") as ws:
        ws.add_instrument("BTCUSDT", 0.1, "BINANCE", "crypto", session="UTC 00:00-24:00")
        ws.simulate("BTCUSDT", "2026-01-05", "2026-01-06", seed=5, trades_per_day=5_000,
                    depth=False)
        for studies, figures in (((), 2), (("RSI", ("MACD", {}), "session_vwap"), 4)):
            made = ws.chart("BTCUSDT", "15m", studies=studies, height=700)
            plots = pn.panel(made).get_root().select({"type": Plot})
            heights = [p.height for p in plots if p.height]
            assert len(heights) == figures  # price, volume and one per pane study
            assert sum(heights) + 22 <= 700  # 22: the readout line above
