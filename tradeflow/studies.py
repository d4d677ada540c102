"""Studies over stored market data, by name: what ``tradeflow study`` runs.

Every study is described once, in ``indicators.catalogue.CATALOGUE``: the indicators of
``indicators.registry`` (all of TA-Lib, the extras, and any registered with ``@indicator``, in a
notebook or in the user's indicator folders: ``tradeflow.plugins``) and the order-flow and profile
studies. This module loads what a study reads from the store (:class:`Inputs`) and runs its batch
form; indicators may also be computed on a higher spec and aligned (``indicators.mtf``).

Parameters arrive as text (``--param timeperiod=21``) and are converted and validated by the
catalogue (``StudyInfo.check_params(..., text=True)``) before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from indicators.catalogue import CATALOGUE
from indicators.mtf import align_higher
from indicators.registry import REGISTRY, IndicatorError

from .marketdata import MarketData
from .model import BarSpec
from .plugins import load_user_indicators


class StudyError(ValueError):
    """A study could not run: unknown name, bad parameter or unusable data."""


@dataclass
class Inputs:
    """What a study may read (the attributes ``indicators.catalogue`` studies read), loaded from
    the store on first use."""

    md: MarketData
    symbol: str
    spec: BarSpec
    start: object
    end: object

    @cached_property
    def instrument(self):
        return self.md.store.instrument(self.symbol)

    @cached_property
    def bars(self) -> pd.DataFrame:
        return self.md.bars(self.symbol, self.spec, self.start, self.end)

    @cached_property
    def footprint(self) -> pd.DataFrame:
        return self.md.footprint(self.symbol, self.spec, self.start, self.end)

    @cached_property
    def trades(self) -> pd.DataFrame:
        first = self.bars["ts"].iloc[0] if len(self.bars) else self.start
        return self.md.trades(self.symbol, first, self.end)

    @cached_property
    def depth(self) -> pd.DataFrame:
        return self.md.store.depth(self.symbol, self.start, self.end)

    @cached_property
    def liquidations(self) -> pd.DataFrame:
        first = self.bars["ts"].iloc[0] if len(self.bars) else self.start
        return self.md.store.liquidations(self.symbol, first, self.end)


def list_studies() -> pd.DataFrame:
    """One row per study of the catalogue: name, group, title, what it reads, where it draws,
    its frame's columns, its parameters with defaults and ranges, whether it has a live form."""
    load_user_indicators()
    return CATALOGUE.table()


def _check_higher(spec: BarSpec, higher: BarSpec) -> None:
    """``--tf`` must be a longer timeframe than the chart's bars (when the two can be compared:
    both time bars, or both bars of one kind such as T100 and T500)."""
    if spec.is_time and higher.is_time:
        longer = _time_length(higher) > _time_length(spec)
    elif spec.kind == higher.kind:
        longer = higher.size > spec.size
    else:
        return
    if not longer:
        raise StudyError(f"--tf {higher}: the higher timeframe must be longer than the bars' "
                         f"spec {spec} (e.g. --spec 5m --tf 1h)")


def _time_length(spec: BarSpec) -> int:
    """Seconds of a time bar; a month counts as 31 days (longer than any week)."""
    return 31 * 86400 if spec.unit == "M" else spec.seconds


def run_study(md: MarketData, name: str, symbol: str, spec="1m", start=None, end=None,
              params: dict | None = None, higher=None, text: bool = True) -> pd.DataFrame:
    """Run study ``name`` over ``symbol``'s stored data; errors a user can fix are StudyErrors
    (or ``IndicatorError`` s of the catalogue).

    ``higher``: compute an indicator on bars of this (higher) spec and align it to the ``spec``
    bars without look-ahead (``indicators.mtf``). ``text``: ``params`` are text (``"21"``, as
    the CLI and the query string give them), else values of the parameters' types."""
    load_user_indicators()
    study = CATALOGUE.get(name)
    chart = BarSpec.parse(spec)
    inputs = Inputs(md, symbol, BarSpec.parse(study.spec) if study.spec else chart, start, end)
    if higher is not None:
        _check_higher(chart, BarSpec.parse(higher))
    values = study.check_params(params or {}, text=text)
    try:
        if higher is None:
            return study.batch(inputs, **values)
        if study.key not in REGISTRY:
            raise StudyError(f"{study.name}: a higher timeframe applies to indicators only")
        ind = REGISTRY.get(name)
        up = md.bars(symbol, higher, start, end)
        out = align_higher(inputs.bars["ts"], inputs.spec, up["ts"], higher,
                           REGISTRY.compute(ind, up, **values), inputs.instrument.session)
        out.insert(0, "ts", inputs.bars["ts"].to_numpy())
        return out
    except (IndicatorError, StudyError):
        raise
    except ValueError as exc:  # the studies' own checks (empty data, unusable bars...)
        text = str(exc)
        shown = text if text.lower().startswith(f"{name.lower()}:") else f"{name}: {text}"
        raise StudyError(shown) from exc
