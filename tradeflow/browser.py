"""Headless Chromium, driven by Playwright: where the browser is and how it is started (the PNG
export renders its chart in it; the browser tests use the same).

The browser is, in this order: the program named by ``$TRADEFLOW_CHROMIUM``, the first of
:data:`NAMES` on the ``PATH`` (Debian's ``chromium``), or the one ``playwright install
chromium`` downloaded. Playwright itself is the optional ``png`` extra (``pip install
'tradeflow[png]'``): most installs (the server, the desk) never start a browser.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

__all__ = ["BrowserMissing", "CHROMIUM_ARGS", "NAMES", "chromium_path", "launch"]

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# no sandbox as root (containers), and no background connections: a closed network refuses them
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
INSTALL = ("install Chromium (Debian/Ubuntu: apt install chromium), or run 'playwright install "
           "chromium', or set TRADEFLOW_CHROMIUM to a Chromium or Chrome program")


class BrowserMissing(RuntimeError):
    """No browser (or no Playwright) to render with; the message says what to install."""


def chromium_path(playwright=None) -> str:
    """The Chromium program to start (see the module's docstring); ``playwright``: a started
    Playwright, to find the browser it downloaded."""
    named = os.environ.get("TRADEFLOW_CHROMIUM")
    if named:
        if not (os.path.isfile(named) and os.access(named, os.X_OK)):
            raise BrowserMissing(f"TRADEFLOW_CHROMIUM={named}: no such program; {INSTALL}")
        return named
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    if playwright is not None:
        own = playwright.chromium.executable_path
        if own and Path(own).is_file():
            return own
    raise BrowserMissing(f"no Chromium found: {INSTALL}")


@contextlib.contextmanager
def launch():
    """A headless Chromium (a Playwright ``Browser``), closed after."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserMissing("rendering a PNG needs Playwright: pip install 'tradeflow[png]' (or "
                             f"pip install playwright), and a browser: {INSTALL}") from None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(pw), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            yield browser
        finally:
            browser.close()
