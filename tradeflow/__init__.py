"""TradeFlow: order-flow and technical-analysis workbench.

The notebook API (``import tradeflow as tf``; see ``tradeflow.api``)::

    tf.open("duckdb:///data/es.duckdb")            # or a postgresql:// URL; default: the CLI's
    tf.bars("ES", "5m", last=500)                   # bars of any spec, footprint, trades
    tf.study("RSI", "ES", "5m", timeperiod=21)      # any catalogue study (tf.studies() lists them)
    tf.chart("ES", "5m", type="footprint", studies=["cvd"], live=True)

Names load on first use, so ``import tradeflow`` (and the ``tradeflow`` command) stays light:
Panel and Bokeh load with the first chart.
"""
from __future__ import annotations

import importlib
import sys
import types

# public name -> module that defines it
_NAMES = {
    **{name: "tradeflow.api" for name in (
        "Workspace", "open", "current", "instrument", "instruments", "add_instrument", "trades",
        "bars", "footprint", "depth", "study", "studies", "import_file", "simulate", "chart",
        "overview")},
    "Instrument": "tradeflow.model",
    "BarSpec": "tradeflow.model",
    "MarketData": "tradeflow.marketdata",
    "indicator": "indicators.registry",
    "Param": "indicators.registry",
}

__all__ = sorted(_NAMES)


class _Package(types.ModuleType):
    """``tradeflow`` itself. ``tf.bars`` and ``tf.studies`` are functions of the API, while
    ``tradeflow/bars.py`` and ``tradeflow/studies.py`` are modules too: the import system sets a
    submodule as an attribute of its package once loaded, which would hide the function, so
    the API's names are kept here. The modules stay importable by their full names
    (``from tradeflow.bars import build``, ``importlib.import_module("tradeflow.bars")``)."""

    def __setattr__(self, name, value):
        if name in _NAMES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __getattr__(self, name: str):
        module = _NAMES.get(name)
        if module is None:
            raise AttributeError(f"module 'tradeflow' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        super().__setattr__(name, value)  # once loaded, a plain attribute
        return value

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(_NAMES))


sys.modules[__name__].__class__ = _Package
