"""The formula box as a served page: ``panel serve dashboards/apps/formula.py``, then open
``/formula?symbol=ES&spec=5m&last=500``. Bars come from the configured store
(``$TRADEFLOW_STORE``, else the embedded DuckDB file), read once per browser session."""
from __future__ import annotations

import holoviews as hv
import panel as pn

from dashboards.formula import FormulaBox
from tradeflow.marketdata import MarketData

hv.extension("bokeh", logo=False)
pn.extension(sizing_mode="stretch_width")


def _arg(name: str, default: str) -> str:
    values = (pn.state.session_args or {}).get(name)
    return values[0].decode() if values else default


def app():
    symbol, spec = _arg("symbol", "ES"), _arg("spec", "5m")
    last = int(_arg("last", "500"))
    md = MarketData()
    try:
        bars = md.bars(symbol, spec, last=last)
    finally:
        md.store.close()  # the embedded store serves one process: hold it only while reading
    box = FormulaBox(bars=bars)
    title = f"{symbol} {spec} · formula"
    return pn.template.FastListTemplate(title=title, main=[box], theme_toggle=False)


app().servable()
