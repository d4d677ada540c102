"""One live chart for other sites' iframes: ``tradeflow serve`` serves it at ``/embed``.

``/embed?symbol=ES&spec=5m&type=footprint&mode=dark`` (the desk's URL names for one chart:
``symbol`` (required), ``spec``, ``type`` -- or ``view`` -- any chart type or ``footprint``,
``studies``, ``panes``, ``mode`` -- or ``theme`` -- ``dark``/``light``). No template, no
pickers, no drawing tools: the chart fills the frame (``sizing_mode="stretch_both"``) and
follows the hub; zoom, pan and the crosshair are what the viewer can do.

Read-only: the query is read once, when the page is opened; the page has no widget, and its
Bokeh document takes from the browser only what zoom and the crosshair need
(:func:`dashboards.read_only.read_only`), so the embed shows the symbol asked for and nothing
else. Which sites may frame it is the server's ``Content-Security-Policy: frame-ancestors``
(``tradeflow.server.framing``, ``$TRADEFLOW_EMBED_ORIGINS``). Bad input is said in the frame,
escaped.
"""
from __future__ import annotations

import logging

import panel as pn

from dashboards.chart import Chart
from dashboards.chart_state import ChartConfig, DeskConfig, StateError
from dashboards.components.theme import theme_of
from dashboards.pages import PageError, check_client, error_view, sources
from dashboards.read_only import read_only

pn.extension(notifications=False, raw_css=["html, body {margin: 0; height: 100%;}"])
log = logging.getLogger(__name__)

EXAMPLE = "/embed?symbol=ES&spec=5m&type=footprint"
NAMES = ("symbol", "spec", "type", "studies", "panes", "mode")
ALIASES = {"view": "type", "theme": "mode"}  # the names for the desk's


def embed_config(args) -> ChartConfig:
    """The chart asked for by the query ``args`` (``{name: [values]}`` as Panel's
    ``session_args``, bytes or text), checked as the desk checks its URL; a StateError names
    the parameter."""
    values = {}
    for name, vals in (args or {}).items():
        val = vals[0] if isinstance(vals, (list, tuple)) else vals
        values[name] = val.decode("utf-8", "replace") if isinstance(val, bytes) else str(val)
    unknown = sorted(set(values) - set(NAMES) - set(ALIASES))
    if unknown:
        raise StateError(f"URL: unknown parameter {unknown[0]!r}; the embed takes "
                         f"{', '.join(NAMES)} (view for type, theme for mode)")
    said = {}  # the desk's name -> the name used in this URL
    for alias, name in ALIASES.items():
        if alias in values:
            if name in values and values[name] != values[alias]:
                raise StateError(f"{alias}: {values[alias]!r} and {name}={values[name]!r} "
                                 "say the same thing: give one")
            values[name] = values.pop(alias)
            said[name] = alias
    if not values.get("symbol", "").strip():
        raise StateError(f"symbol: missing; name the instrument, e.g. {EXAMPLE}")
    try:
        return DeskConfig.from_query({name: [value] for name, value in values.items()}).charts[0]
    except StateError as exc:
        message = str(exc)
        for name, alias in said.items():
            if message.startswith(name + ":"):
                message = alias + message[len(name):]
        raise StateError(message) from None


class _StateProblem(PageError):
    """A URL that cannot be used (its text is the user's, never a store URL)."""


def _frame(theme: str, view):
    """The whole page: ``view`` filling the frame, in the theme's background."""
    t = theme_of(theme)
    return pn.Column(view, sizing_mode="stretch_both", margin=0, css_classes=["embed"],
                     styles={"background": t.background})


def _error(exc: PageError, theme: str):
    return _frame(theme, error_view(exc, redact=not isinstance(exc, _StateProblem)))


def app():
    theme = "dark"
    try:
        check_client()
        try:
            config = embed_config(pn.state.session_args)
        except StateError as exc:
            raise _StateProblem(f"this chart cannot be shown: {exc}",
                                f"fix that part of the URL, e.g. {EXAMPLE}") from None
        theme = config.theme
        marketdata, hub, run, _symbols = sources()  # the other symbols are not shown here
        chart = Chart(config, marketdata, hub, run, read_only=True, fill=True)
    except PageError as exc:
        log.info("the embed refused a request: %s", exc.problem)
        return _error(exc, theme)
    except Exception:  # noqa: BLE001 -- a frame never goes blank; the details go to the log
        log.exception("the embed failed")
        return _error(PageError("the chart could not be built (an internal error)",
                                "the server log has the details; reload the page to try again"),
                      theme)
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        read_only(doc, chart.browser_sources)
    return _frame(config.theme, chart)


app().servable(title="TradeFlow · chart")
