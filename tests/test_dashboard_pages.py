"""Served pages in a real browser (Debian's Chromium, Playwright) given bad requests: every
problem is shown in the page, escaped, with what to do -- never a blank page, never a script run.
The store holds ES trades of 2026-01-06 (a generated CSV imported with ``tradeflow import``) and
an instrument row with a script for a symbol, written with SQL past the symbol rule."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.parse

import duckdb
import pytest

from dashboards.pages import MAX_BARS, client_allowed
from tests.browser import browser_page, panel_app
from tests.test_cli import run, trades_csv

XSS = "<svg/onload=alert(document.domain)>"
SPEC_XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    url = f"duckdb:///{folder}/pages.duckdb"
    run(["instruments", "add", "ES", "--tick-size", "0.25", "--session",
         "America/Chicago 08:30-15:15,17:00-16:00"], url)
    trades_csv(folder / "es.csv", n=3000)
    run(["import", str(folder / "es.csv"), "--symbol", "ES", "--quiet"], url)
    con = duckdb.connect(str(folder / "pages.duckdb"))
    con.execute("INSERT INTO instruments (symbol, tick_size) VALUES (?, 0.25)", [XSS])
    con.close()
    return folder / "pages.duckdb"


@pytest.fixture(scope="module")
def site(store_path):
    with panel_app("formula", env={"TRADEFLOW_STORE": f"duckdb:///{store_path}"}) as url, \
            browser_page() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        yield url, page, dialogs


def open_page(site, query: str, wait=".formula-ok, .page-error") -> str:
    url, page, _ = site
    page.goto(f"{url}/formula?{query}")
    page.wait_for_selector(wait, timeout=60_000)
    return page.locator(wait).first.inner_text()


def shot(page, tmp_path_factory, name):
    page.screenshot(path=str(tmp_path_factory.getbasetemp() / f"page-{name}.png"), full_page=True)


def test_a_good_request_shows_the_formula_under_an_escaped_title(site):
    status = open_page(site, "symbol=ES&spec=5m&last=50", ".formula-ok")
    _, page, dialogs = site
    assert "last value" in status
    assert page.locator(".app-header .title").inner_text() == "ES 5m · formula"
    assert page.locator(".page-error").count() == 0 and dialogs == []


BAD = [
    ("symbol=" + urllib.parse.quote(XSS), "xss",
     [f"symbol '{XSS}' is not valid: use 1 to 40 letters, digits"], "open the page with a stored "
     "symbol"),
    ("symbol=NOPE", "unknown-symbol", ["unknown symbol 'NOPE'"], "stored symbols: ES"),
    ("symbol=ES%20X", "space", ["symbol 'ES X' is not valid"], "e.g. ?symbol=ES&spec=5m"),
    ("spec=7x", "spec", ["bar spec '7x' not understood"], "e.g. ?symbol=ES&spec=5m&last=500"),
    ("spec=" + urllib.parse.quote(SPEC_XSS), "spec-xss", [f"bar spec '{SPEC_XSS}' not understood"],
     "e.g. ?symbol=ES"),
    ("last=abc", "last-abc", ["last='abc' is not a number of bars"], "from 1 to 100,000"),
    ("last=-1", "last-negative", ["last='-1' is not a number of bars"], "from 1 to 100,000"),
    ("last=0", "last-zero", ["last='0' is not a number of bars"], "e.g. last=500"),
    ("last=1e9", "last-1e9", ["last='1e9' is not a number of bars"], "from 1 to 100,000"),
    (f"last={MAX_BARS + 1}", "last-huge", [f"last='{MAX_BARS + 1}' is not a number"], "100,000"),
]


@pytest.mark.parametrize("query, name, problem, advice", BAD, ids=[b[1] for b in BAD])
def test_a_bad_query_parameter_is_shown_in_the_page(site, tmp_path_factory, query, name, problem,
                                                    advice):
    text = open_page(site, query)
    _, page, dialogs = site
    page.wait_for_timeout(300)  # time for an injected handler to fire, were there one
    # the text is shown, never parsed as markup, and no script ran
    assert dialogs == []
    assert page.locator("svg[onload], img[onerror]").count() == 0
    assert page.locator(".page-error").count() == 1, text
    assert page.locator(".formula-ok").count() == 0
    for part in problem:
        assert part in page.locator(".page-error-problem").inner_text()
    assert advice in page.locator(".page-error-advice").inner_text()
    shot(page, tmp_path_factory, name)


def test_a_store_held_by_another_process_is_explained(site, store_path, tmp_path_factory):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time\n"
         f"con = duckdb.connect({str(store_path)!r})\nprint('held', flush=True)\ntime.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        open_page(site, "symbol=ES&spec=5m&last=50")
        _, page, dialogs = site
        problem = page.locator(".page-error-problem").inner_text()
        assert "cannot open DuckDB store" in problem and "lock" in problem
        assert "reload this page once the store is free" in page.locator(
            ".page-error-advice").inner_text()
        shot(page, tmp_path_factory, "store-held")
    finally:
        holder.kill()
        holder.wait(10)
    time.sleep(0.5)
    assert "last value" in open_page(site, "symbol=ES&spec=5m&last=50", ".formula-ok")
    assert dialogs == []


def test_the_page_title_is_escaped(site, tmp_path, tmp_path_factory):
    """The issue's vector: the template renders the title as HTML on the server. A page framed
    with a title holding a script shows it as text and runs nothing."""
    app = tmp_path / "title_probe.py"
    app.write_text("import panel as pn\nfrom dashboards.pages import frame\n"
                   f"frame({XSS + ' 5m · formula'!r}, [pn.pane.HTML('<p class=probe>ok</p>')])"
                   ".servable()\n")
    _, page, dialogs = site
    with panel_app(str(app)) as url:
        page.goto(f"{url}/title_probe")
        page.wait_for_selector(".probe", timeout=60_000)
        page.wait_for_timeout(300)
        assert dialogs == []
        assert page.locator("svg[onload]").count() == 0
        assert page.locator(".app-header .title").inner_text() == f"{XSS} 5m · formula"
        shot(page, tmp_path_factory, "title")


@pytest.mark.parametrize("ip, env, allowed", [
    ("127.0.0.1", {}, True), ("::1", {}, True), ("127.8.0.1", {}, True), (None, {}, True),
    ("::ffff:127.0.0.1", {}, True), ("::ffff:192.168.1.20", {}, False),
    ("192.168.1.20", {}, False), ("10.0.0.5", {}, False), ("2001:db8::1", {}, False),
    ("not-an-ip", {}, False),
    ("192.168.1.20", {"TRADEFLOW_ALLOW_REMOTE": "1"}, True),
    ("192.168.1.20", {"TRADEFLOW_ALLOW_REMOTE": "yes"}, False),
])
def test_pages_answer_loopback_clients_unless_told_otherwise(ip, env, allowed):
    assert client_allowed(ip, env) is allowed


@pytest.mark.parametrize("store, problem", [
    ("postgresql://desk:s3cr3t-pw@127.0.0.1:1/db", "cannot connect to PostgreSQL at 127.0.0.1:1/db"),
    ("mysql://desk:s3cr3t-pw@h/db", "store URL 'mysql://desk:***@h/db': unknown scheme 'mysql'"),
])
def test_a_store_that_cannot_be_opened_is_explained_without_its_password(site, store, problem):
    _, page, dialogs = site
    with panel_app("formula", env={"TRADEFLOW_STORE": store}) as url:
        page.goto(f"{url}/formula?symbol=ES")
        page.wait_for_selector(".page-error", timeout=60_000)
        assert problem in page.locator(".page-error-problem").inner_text()
        assert "s3cr3t-pw" not in page.content()
    assert dialogs == []
