"""Studies over stored market data, by name: what ``tradeflow study`` runs.

Today every registered indicator (``indicators.registry``: all of TA-Lib, and any indicator
registered with ``@indicator``) computed over stored bars of any spec. Parameters arrive as text
(``--param timeperiod=21``) and are converted by the parameter's declared type, then validated by
the registry.
"""
from __future__ import annotations

import pandas as pd

from indicators.registry import REGISTRY, IndicatorError

from .marketdata import MarketData


def list_studies() -> pd.DataFrame:
    """One row per study: name, group, title, outputs and parameters with defaults and ranges."""
    rows = []
    for ind in REGISTRY:
        params = ", ".join(f"{p.name}={p.default} ({p.describe_range()})" for p in ind.params)
        rows.append({"name": ind.name, "group": ind.group, "title": ind.title,
                     "pane": "overlay" if ind.overlay else "own pane",
                     "outputs": ", ".join(ind.columns), "params": params})
    return pd.DataFrame(rows).sort_values(["group", "name"], ignore_index=True)


def parse_params(name: str, pairs: dict[str, str]) -> dict:
    """Text parameter values converted to their declared types (the registry checks ranges)."""
    ind = REGISTRY.get(name)
    out = {}
    for key, text in pairs.items():
        param = ind.param(key)  # unknown names raise an IndicatorError listing the valid ones
        try:
            if param.type == "int":
                out[key] = int(text)
            elif param.type == "float":
                out[key] = float(text)
            else:  # a choice: its value (e.g. an MA type code) or its label ("EMA")
                out[key] = int(text) if text.lstrip("-").isdigit() else text
        except ValueError:
            raise IndicatorError(f"{ind.name}: parameter {key!r} must be "
                                 f"{param.describe_range()}; got {text!r}") from None
    return out


def run_study(md: MarketData, name: str, symbol: str, spec="1m", start=None, end=None,
              params: dict[str, str] | None = None) -> pd.DataFrame:
    """The study's output over the bars of ``symbol``: a ``ts`` column, then its outputs."""
    values = parse_params(name, params or {})
    bars = md.bars(symbol, spec, start, end)
    out = REGISTRY.compute(name, bars, **values)
    out.insert(0, "ts", bars["ts"])
    return out
