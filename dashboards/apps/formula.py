"""The formula box as a served page: ``panel serve dashboards/apps/formula.py --address 127.0.0.1``
(see the README for serving it to other machines), then open
``/formula?symbol=ES&spec=5m&last=500``. Bars come from the configured store
(``$TRADEFLOW_STORE``, else the embedded DuckDB file), read once per browser session.

A bad query parameter or a store that cannot be read gives a page that says so and what to do.
"""
from __future__ import annotations

import logging

import holoviews as hv
import panel as pn

from dashboards.formula import FormulaBox
from dashboards.pages import PageError, bar_count, check_client, error_view, frame, query_arg
from data_access import StoreError
from tradeflow.marketdata import MarketData
from tradeflow.model import BarSpec, ModelError, validate_symbol

hv.extension("bokeh", logo=False)
pn.extension(sizing_mode="stretch_width")
log = logging.getLogger(__name__)

EXAMPLE = "?symbol=ES&spec=5m&last=500"


def _request() -> tuple[str, BarSpec, int]:
    """symbol, spec and last from the URL, checked."""
    symbol = query_arg("symbol", "ES")
    try:
        validate_symbol(symbol)
    except ModelError as exc:
        raise PageError(str(exc), f"open the page with a stored symbol, e.g. {EXAMPLE}") from None
    try:
        spec = BarSpec.parse(query_arg("spec", "5m"))
    except ModelError as exc:
        raise PageError(str(exc), f"e.g. {EXAMPLE}") from None
    return symbol, spec, bar_count(query_arg("last", "500"))


def _bars(symbol: str, spec: BarSpec, last: int):
    try:
        md = MarketData()
    except (StoreError, ModelError) as exc:  # a store held elsewhere, unreachable or misnamed
        # the store's own message says why (DuckDB: another process holds the file)
        raise PageError(str(exc), "reload this page once the store is free or reachable") \
            from None
    try:
        try:
            md.store.instrument(symbol)
        except ModelError as exc:
            known = ", ".join(i.symbol for i in md.store.instruments()) or "none yet"
            raise PageError(str(exc), f"stored symbols: {known}") from None
        return md.bars(symbol, spec, last=last)
    except (ModelError, StoreError) as exc:
        raise PageError(str(exc), "check the query parameters, e.g. " + EXAMPLE) from None
    finally:
        md.store.close()  # the embedded store serves one process: hold it only while reading


def app():
    try:
        check_client()
        symbol, spec, last = _request()
        bars = _bars(symbol, spec, last)
    except PageError as exc:
        log.info("formula page refused a request: %s", exc.problem)
        return frame("TradeFlow · formula", [error_view(exc)])
    except Exception:  # noqa: BLE001 -- a page never goes blank; the details go to the log
        log.exception("formula page failed")
        return frame("TradeFlow · formula", [error_view(PageError(
            "the page could not be built (an internal error)",
            "the server log has the details; reload the page to try again"))])
    return frame(f"{symbol} {spec} · formula", [FormulaBox(bars=bars)])


app().servable()
