"""The formula box in a real browser: a desk user types formulas into the served page and sees
them computed (the values equal ``indicators.formula.evaluate`` over the same bars) or refused
with a caret under the offending part -- attempts to reach Python included."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from data_access import open_store
from indicators.formula import evaluate
from tests.browser import browser_page, panel_app
from tests.test_cli import run

SCREENSHOTS = "formula"


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('formula')}/desk.duckdb"
    run(["instruments", "add", "ES", "--tick-size", "0.25", "--session",
         "America/Chicago 08:30-15:15,17:00-16:00"], url)
    # a fixed trading day (Tuesday 2026-01-06), so the page shows the same bars on any day
    run(["simulate", "ES", "--days", "1", "--end", "2026-01-07T00:00Z", "--no-live", "--seed", "3",
         "--trades-per-day", "40000"], url)
    return url


@pytest.fixture(scope="module")
def page(store_url):
    with panel_app("formula", env={"TRADEFLOW_STORE": store_url}) as url, browser_page() as page:
        page.goto(f"{url}/formula?symbol=ES&spec=5m&last=300")
        page.wait_for_selector(".formula-ok", timeout=60_000)
        yield page


def bars(store_url):
    store = open_store(store_url)
    try:
        from tradeflow.marketdata import MarketData
        return MarketData(store).bars("ES", "5m", last=300)
    finally:
        store.close()


def type_formula(page, text: str) -> str:
    box = page.get_by_placeholder(re.compile("ema"))
    box.fill(text)
    box.press("Enter")
    # Panel renders into shadow roots; Playwright's CSS locators see into them
    status = page.locator(".formula-ok, .formula-error").filter(has_text=text[:30])
    expect(status).to_have_count(1, timeout=30_000)
    return status.inner_text()


def last_value(status: str) -> str:
    return re.search(r"last value (\S+)", status).group(1)


def test_a_typed_formula_is_computed_and_plotted(page, store_url, tmp_path_factory):
    frame = bars(store_url)
    status = type_formula(page, "ema(close, 20) - ema(close, 50)")
    want = evaluate("ema(close, 20) - ema(close, 50)", frame).iloc[-1]
    assert float(last_value(status).replace(",", "")) == pytest.approx(want, rel=1e-5, abs=1e-9)
    assert page.locator(".bk-Canvas, canvas").count() > 0  # the chart is drawn
    page.screenshot(path=str(tmp_path_factory.getbasetemp() / "formula-ema.png"), full_page=True)

    status = type_formula(page, "rsi(close, 14) > 70")
    want = bool(evaluate("rsi(close, 14) > 70", frame).iloc[-1])
    assert last_value(status) == str(want)


@pytest.mark.parametrize("text, part", [
    ("__import__('os').system('id')", "__import__"),
    ("close.__class__", ".__class__"),
    ("ema(close, 20) -", ""),
    ("rsi(close, 0)", "0"),
    ("open('/etc/passwd')", "open"),
])
def test_refused_formulas_point_at_the_offending_part(page, text, part):
    status = type_formula(page, text)
    assert page.locator(".formula-error").count() == 1
    lines = status.splitlines()
    caret = next(i for i, line in enumerate(lines) if set(line.strip()) == {"^"})
    start, end = lines[caret].index("^"), len(lines[caret].rstrip())
    # the carets sit exactly under the part the error is about (past the end: ends too early)
    assert lines[caret - 1][start:end] == part
    assert lines[caret - 1] == text
