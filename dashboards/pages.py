"""What every served page shares: its query parameters, checked; the page frame with an escaped
title; the page that says what was wrong with a request and what to do; who may open a page.

A bad request never gives a blank page: the page shows the problem (escaped: query parameters
and stored text are user text) and the advice, and the server log gets the details.
"""
from __future__ import annotations

import html
import logging
import os

import panel as pn

from data_access import redact_url
from tradeflow.server.base import is_loopback

__all__ = ["PageError", "MAX_BARS", "query_arg", "bar_count", "frame", "template", "error_view",
           "client_allowed", "check_client", "sources", "ALLOW_REMOTE"]

log = logging.getLogger(__name__)

MAX_BARS = 100_000  # the most bars a page reads and plots
# pages answer loopback clients only unless this is set (behind a reverse proxy with TLS and
# authentication on another host; see the README)
ALLOW_REMOTE = "TRADEFLOW_ALLOW_REMOTE"


class PageError(ValueError):
    """A request a page cannot serve: ``problem`` says what was wrong, ``advice`` what to do."""

    def __init__(self, problem: str, advice: str):
        super().__init__(problem)
        self.problem, self.advice = problem, advice


def query_arg(name: str, default: str) -> str:
    """The query parameter ``name`` of this session's URL (the first, when repeated)."""
    values = (pn.state.session_args or {}).get(name)
    return values[0].decode("utf-8", errors="replace") if values else default


def bar_count(text: str, name: str = "last") -> int:
    """``text`` as a number of bars from 1 to :data:`MAX_BARS`, else a PageError."""
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_BARS:
        raise PageError(f"{name}={text!r} is not a number of bars",
                        f"use a whole number from 1 to {MAX_BARS:,}, e.g. {name}=500")
    return value


class Fast(pn.theme.Fast):
    """Panel's Fast design without its web font (Open Sans, fetched from Google's servers): a
    page asks nothing of another host (a trading desk may have no internet, and a page that calls
    out tells a third party who looks at it); the font falls back to the system's sans-serif.
    Named ``Fast`` as Panel's: Panel finds a design's own files by its class name."""

    _resources = {kind: res for kind, res in pn.theme.Fast._resources.items() if kind != "font"}


def template(**params) -> pn.template.FastListTemplate:
    """Panel's FastListTemplate in the :class:`Fast` design above."""
    return pn.template.FastListTemplate(design=Fast, **params)


def frame(title: str, main: list) -> pn.template.FastListTemplate:
    """The page around ``main``; the title is escaped (the template inserts it as HTML)."""
    return template(title=html.escape(title), main=main, theme_toggle=False)


def error_view(exc: PageError, redact: bool = True) -> pn.pane.HTML:
    """What was wrong and what to do, every text escaped (passwords of store URLs masked;
    ``redact=False`` for texts that hold no URL, as symbols with '@' would read as one)."""
    clean = redact_url if redact else str
    problem = html.escape(clean(exc.problem))
    advice = html.escape(clean(exc.advice))
    return pn.pane.HTML(
        f'<div class="page-error" role="alert" style="color:#b00020;border:1px solid #b00020;'
        f'border-radius:4px;padding:8px 12px;background:#fff5f5"><div '
        f'class="page-error-problem"><b>{problem}</b></div><div class="page-error-advice" '
        f'style="color:#333;margin-top:4px">{advice}</div></div>', sizing_mode="stretch_width")


def client_allowed(remote_ip: str | None, env=os.environ) -> bool:
    """Whether a client at ``remote_ip`` may open a page: loopback clients always; others only
    when ``$TRADEFLOW_ALLOW_REMOTE`` is ``1`` (the operator put an authenticating proxy in
    front). Unknown addresses (no request: a notebook) are local."""
    if env.get(ALLOW_REMOTE, "") == "1" or not remote_ip:
        return True
    return is_loopback(remote_ip)


def check_client() -> None:
    """A PageError unless this session's client may open pages (:func:`client_allowed`)."""
    context = pn.state.curdoc.session_context if pn.state.curdoc else None
    request = context.request if context else None
    remote_ip = getattr(request, "remote_ip", None)
    if not client_allowed(remote_ip):
        log.warning("page refused to %s: not a loopback client and $%s is not 1", remote_ip,
                    ALLOW_REMOTE)
        raise PageError("this page answers clients on this machine only",
                        "ask the operator: pages are shared through a reverse proxy with TLS and "
                        "authentication (see the README)")


def sources():
    """(MarketData, hub, run, symbols) of a page: the running server's (reads on its reader
    threads, symbols read with the prices), else the configured store's, read here and without
    a live feed."""
    from tradeflow.server.context import current

    ctx = current()
    if ctx is not None:
        return ctx.marketdata, ctx.pipeline.hub, ctx.read, ()
    from data_access import StoreError
    from tradeflow.marketdata import MarketData
    from tradeflow.model import ModelError
    try:
        md = MarketData()
        return md, None, None, [i.symbol for i in md.store.instruments()]
    except (StoreError, ModelError) as exc:
        raise PageError(str(exc), "reload this page once the store is free or reachable") \
            from None
