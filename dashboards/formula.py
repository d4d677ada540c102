"""The formula box: a desk user types a formula (``ema(close, 20) - ema(close, 50)``,
``rsi(close, 14) > 70``) and sees it plotted under the price, or why it was refused.

The text goes to :func:`indicators.formula.parse` and :func:`~indicators.formula.evaluate`: a
whitelist parser, never Python's ``eval``. A refused formula shows the error with a caret under
the offending part and leaves the last good plot in place. The same component renders in a
notebook (``FormulaBox(bars=frame)``) and in a served app (:mod:`dashboards.apps.formula`).
"""
from __future__ import annotations

import html

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from indicators.formula import FormulaError, evaluate, parse

__all__ = ["FormulaBox"]

EXAMPLES = ("ema(close, 20) - ema(close, 50)", "rsi(close, 14) > 70",
            "(close - sma(close, 20)) / atr(high, low, close, 14)",
            "crossover(ema(close, 9), ema(close, 21))")


class FormulaBox(pn.viewable.Viewer):
    """A formula over ``bars`` (a frame with ``ts`` and the bar columns), plotted."""

    bars = param.DataFrame(default=None, allow_None=True, doc="The chart's bars")
    text = param.String(default=EXAMPLES[0], doc="The formula as typed")
    result = param.Series(default=None, allow_None=True, constant=True,
                          doc="The last accepted formula's values, one per bar")
    error = param.String(default="", constant=True,
                         doc="Why the last formula was refused (with a caret line), or ''")

    def __init__(self, **params):
        super().__init__(**params)
        self._input = pn.widgets.TextInput.from_param(
            self.param.text, name="Formula", placeholder=EXAMPLES[0], sizing_mode="stretch_width")
        self._status = pn.pane.HTML(sizing_mode="stretch_width", css_classes=["formula-status"])
        self._plot = pn.pane.HoloViews(sizing_mode="stretch_width", height=470)
        self._compute()

    @param.depends("text", "bars", watch=True)
    def _compute(self) -> None:
        with param.edit_constant(self):
            try:
                if self.bars is None or not len(self.bars):
                    raise FormulaError("there are no bars to compute the formula over")
                values = evaluate(parse(self.text), self.bars)
            except FormulaError as exc:
                self.error = str(exc)
            else:
                self.error = ""
                self.result = values
        self._render()

    def _render(self) -> None:
        if self.error:
            # the message wraps; the formula and its caret line stay monospaced and aligned
            message, _, where = self.error.partition("\n")
            self._status.object = (
                f'<div class="formula-error" style="color:#b00020">'
                f'<div>{html.escape(message)}</div>'
                f'<pre style="margin:2px 0 0 0">{html.escape(where)}</pre></div>')
        elif self.result is not None:
            last = self.result.iloc[-1]
            shown = str(bool(last)) if self.result.dtype == bool else f"{last:,.6g}"
            self._status.object = (f'<span class="formula-ok">{html.escape(self.text)} '
                                   f'&middot; last value <b>{shown}</b></span>')
        if self.result is not None and not self.error:
            self._plot.object = self._chart()

    def _chart(self):
        ts = pd.DatetimeIndex(self.bars["ts"]).tz_localize(None)  # Bokeh shows naive as UTC
        price = hv.Curve((ts, self.bars["close"].to_numpy()), "time", "price",
                         label="close").opts(color="#444", line_width=1, height=250,
                                             responsive=True, xaxis=None, tools=["hover"],
                                             title="close")
        values = self.result.to_numpy()
        if self.result.dtype == bool:  # the bars where it holds, as spikes
            where = np.flatnonzero(values)
            series = hv.Spikes((ts[where], np.ones(len(where))), "time", "true").opts(
                color="#1565c0", spike_length=1, yaxis=None)
        else:
            series = (hv.HLine(0).opts(color="#bbb", line_width=1) *
                      hv.Curve((ts, values), "time", "value").opts(color="#1565c0",
                                                                   line_width=1.5))
            series = series.opts(ylabel="value")
        series = series.opts(hv.opts.Curve(tools=["hover"]), hv.opts.Spikes(tools=["hover"]))
        series = series.opts(height=200, responsive=True, title=self.text, xlabel="time (UTC)")
        return (price + series).cols(1).opts(shared_axes=True)

    def __panel__(self):
        return pn.Column(self._input, self._status, self._plot, sizing_mode="stretch_width")
