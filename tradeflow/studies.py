"""Studies over stored market data, by name: what ``tradeflow study`` runs.

Two kinds, one command:

* every indicator of ``indicators.registry`` (all of TA-Lib, and any registered with
  ``@indicator``, in a notebook or in the user's indicator folders: ``tradeflow.plugins``),
  computed over stored bars of any spec (or a higher one, aligned: ``indicators.mtf``): a ``ts``
  column, then its outputs;
* the order-flow and profile studies below, which read bars, footprint cells or trades and return
  frames of their own shape (the volume profile: one row per price level).

Parameters arrive as text (``--param timeperiod=21``), are converted by the parameter's declared
type and validated (``indicators.registry.Param``) before anything runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd

from indicators.orderflow import (
    absorption, big_trades, cvd, cvd_candles, footprint_metrics, heatmap_grid, imbalances,
    liquidations_by_level, naked_pocs, session_vwap, stacked_imbalances, sweeps,
    unfinished_auctions, zero_prints,
)
from indicators.mtf import align_higher
from indicators.profile import (developing_profile, session_profiles, tpo_profiles, volume_nodes,
                                volume_profile)
from indicators.registry import REGISTRY, IndicatorError, Param

from .marketdata import MarketData
from .model import BarSpec
from .plugins import load_user_indicators


class StudyError(ValueError):
    """A study could not run: unknown name, bad parameter or unusable data."""


@dataclass
class Inputs:
    """What a study may read, loaded on first use."""

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
    def cells(self) -> pd.DataFrame:
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

    def price(self, ticks):
        return self.instrument.to_price(ticks)


@dataclass(frozen=True)
class FlowStudy:
    name: str
    group: str
    title: str
    params: tuple[Param, ...]
    run: Callable[[Inputs, dict], pd.DataFrame]


ROWS = Param("rows", 1, min=1, max=100_000, description="Ticks per price row")
RATIO = Param("ratio", 3.0, min=1.0001, max=1000.0,
              description="Imbalance ratio (3 = 300%), above 1")
MIN_VOLUME = Param("min_volume", 0.0, min=0.0, description="Least volume of an imbalanced level")
RESET = Param("reset", "session", choices=("session", "none"),
              description="Restart CVD at each trading day, or never")
VALUE_AREA = Param("value_area", 0.70, min=0.01, max=1.0, description="Value area share")


def _by(inputs: Inputs) -> str:
    return "time" if inputs.spec.is_time else "count"


def _with_price(frame: pd.DataFrame, inputs: Inputs, tick="tick", price="price") -> pd.DataFrame:
    frame.insert(frame.columns.get_loc(tick) + 1, price, inputs.price(frame[tick]))
    return frame


def _volume_profile(i: Inputs, p: dict) -> pd.DataFrame:
    levels = volume_profile(i.cells, p["rows"], p["value_area"]).levels
    levels.insert(0, "price", i.price(levels["tick"]))
    return levels[["price", "volume", "ask_volume", "bid_volume", "trades", "poc", "value_area",
                   "tick"]]


def _session_profiles(i: Inputs, p: dict) -> pd.DataFrame:
    summary = session_profiles(i.cells, i.instrument.session, p["rows"], p["value_area"])[1]
    for col in ("poc", "vah", "val"):
        summary[col] = i.price(summary[col])
    return summary


def _developing_profile(i: Inputs, p: dict) -> pd.DataFrame:
    """Per bar of the spec: POC, VAH and VAL (prices) of the trading day's profile so far."""
    out = developing_profile(i.cells, i.instrument.session, p["rows"], p["value_area"])
    for col in ("poc", "vah", "val"):
        known = out[col].notna().to_numpy()
        ticks = out[col].fillna(0).to_numpy(dtype="int64")
        out[col] = np.where(known, i.price(ticks), np.nan)
    return out


def _tpo(i: Inputs, p: dict) -> pd.DataFrame:
    """Each trading day's TPO levels (from 1-minute bars of the range), one row per price."""
    bars = i.md.bars(i.symbol, "1m", i.start, i.end)
    days = tpo_profiles(bars, i.instrument.tick_size, i.instrument.session,
                        period=pd.Timedelta(minutes=p["period_minutes"]), rows=p["rows"],
                        value_area=p["value_area"], ib_periods=p["ib_periods"],
                        regular_only=p["hours"] == "regular")
    frames = [prof.levels.assign(date=day) for day, prof in days.items()]
    levels = pd.concat(frames, ignore_index=True)
    levels.insert(1, "price", i.price(levels["tick"]))
    return levels[["date", "price"] + [c for c in levels.columns if c not in ("date", "price")]]


FLOW_STUDIES = {s.name: s for s in [
    FlowStudy("footprint_metrics", "Order Flow", "Delta, delta %, running delta extremes, POC",
              (ROWS,), lambda i, p: _with_price(
                  footprint_metrics(i.bars, i.trades, i.cells, by=_by(i), rows=p["rows"]), i,
                  "poc", "poc_price")),
    FlowStudy("cvd", "Order Flow", "Cumulative volume delta", (RESET,),
              lambda i, p: pd.DataFrame({"ts": i.bars["ts"], "cvd": cvd(
                  i.bars, i.instrument.session, p["reset"]).to_numpy()})),
    FlowStudy("cvd_candles", "Order Flow", "CVD candles", (RESET,),
              lambda i, p: cvd_candles(i.bars, i.trades, i.instrument.session, p["reset"],
                                       by=_by(i))),
    FlowStudy("imbalances", "Order Flow", "Diagonal bid/ask imbalances", (RATIO, MIN_VOLUME, ROWS),
              lambda i, p: _with_price(imbalances(i.cells, p["ratio"], p["min_volume"],
                                                  p["rows"]), i)),
    FlowStudy("stacked_imbalances", "Order Flow", "Stacked imbalance zones",
              (Param("min_rows", 3, min=2, max=1000, description="Consecutive rows"),
               RATIO, MIN_VOLUME, ROWS),
              lambda i, p: _with_price(_with_price(stacked_imbalances(
                  i.cells, p["min_rows"], p["ratio"], p["min_volume"], p["rows"]), i,
                  "tick_low", "price_low"), i, "tick_high", "price_high")),
    FlowStudy("unfinished_auctions", "Order Flow", "Unfinished auctions at bar extremes",
              (ROWS, MIN_VOLUME),
              lambda i, p: unfinished_auctions(i.cells, p["rows"], p["min_volume"])),
    FlowStudy("vwap", "Order Flow", "Session VWAP with 1, 2 and 3 standard-deviation bands", (),
              lambda i, p: session_vwap(i.bars, i.instrument.session)),
    FlowStudy("big_trades", "Order Flow", "Big trades (same-time prints of a side summed)",
              (Param("min_size", 50.0, min=1e-12, description="Least size of a big trade"),),
              lambda i, p: big_trades(i.trades, p["min_size"])),
    FlowStudy("zero_prints", "Order Flow", "Levels in a bar's range with no bid or ask volume",
              (ROWS,), lambda i, p: _with_price(zero_prints(
                  i.cells, i.bars, i.instrument.tick_size, rows=p["rows"]), i)),
    FlowStudy("naked_pocs", "Order Flow", "Bar and session POCs not revisited since", (ROWS,),
              lambda i, p: _with_price(naked_pocs(i.cells, i.instrument.session, rows=p["rows"]),
                                       i, "poc", "poc_price")),
    FlowStudy("sweeps", "Order Flow", "Sweeps: one side clearing several levels fast",
              (Param("min_levels", 3, min=2, max=1000, description="Distinct price levels"),
               Param("max_gap_ms", 250.0, min=0.001, max=60_000.0,
                     description="Most time between the trades of a sweep, ms"),
               Param("min_size", 0.0, min=0.0, description="Least total size")),
              lambda i, p: sweeps(i.trades, i.instrument.tick_size, p["min_levels"],
                                  pd.Timedelta(milliseconds=p["max_gap_ms"]), p["min_size"])),
    FlowStudy("absorption", "Order Flow", "Absorption: heavy volume at a level that held",
              (Param("min_volume", 100.0, min=0.0, description="Least aggressor volume"),
               Param("max_progress_ticks", 1, min=0, max=10_000,
                     description="Most ticks the close got past the level"), ROWS),
              lambda i, p: _with_price(absorption(i.cells, i.bars, i.instrument.tick_size,
                                                  p["min_volume"], p["max_progress_ticks"],
                                                  rows=p["rows"]), i)),
    FlowStudy("heatmap", "Order Book", "Resting size per time bucket and price (depth heatmap)",
              (Param("interval_seconds", 1.0, min=0.001, max=86_400.0,
                     description="Seconds per time bucket"), ROWS,
               Param("how", "last", choices=("last", "mean", "max"),
                     description="Size of a bucket: its last snapshot, mean or max")),
              lambda i, p: _with_price(heatmap_grid(
                  i.depth, pd.Timedelta(seconds=p["interval_seconds"]), p["rows"], p["how"]), i)),
    FlowStudy("liquidations", "Order Flow", "Liquidations per bar and price level", (ROWS,),
              lambda i, p: _with_price(liquidations_by_level(
                  i.liquidations, i.bars, i.instrument.tick_size, rows=p["rows"]), i)),
    FlowStudy("tpo", "Profile", "Market profile (TPO) of each trading day, from 1m bars",
              (Param("period_minutes", 30, min=1, max=1440, description="Minutes per letter"),
               ROWS, VALUE_AREA,
               Param("ib_periods", 2, min=1, max=48, description="Periods of the initial balance"),
               Param("hours", "regular", choices=("regular", "all"),
                     description="Regular trading hours only, or the whole trading day")),
              _tpo),
    FlowStudy("volume_profile", "Profile", "Volume profile of the range (POC, value area)",
              (ROWS, VALUE_AREA), _volume_profile),
    FlowStudy("developing_profile", "Profile",
              "Developing POC and value area: per bar, those of the trading day so far",
              (ROWS, VALUE_AREA), _developing_profile),
    FlowStudy("volume_nodes", "Profile", "High- and low-volume nodes of the range's profile",
              (ROWS, VALUE_AREA, Param("smooth", 5, min=1, max=1001, description="Smoothing"),
               Param("span", 3, min=1, max=1000, description="Levels each side")),
              lambda i, p: _with_price(volume_nodes(volume_profile(
                  i.cells, p["rows"], p["value_area"]), p["smooth"], p["span"]), i)),
    FlowStudy("session_profiles", "Profile", "POC and value area of each trading day",
              (ROWS, VALUE_AREA), _session_profiles),
]}


def list_studies() -> pd.DataFrame:
    """One row per study: name, group, title, pane, outputs and parameters with defaults."""
    load_user_indicators()
    def params(ps):
        return ", ".join(f"{p.name}={p.default} ({p.describe_range()})" for p in ps)

    rows = [{"name": s.name, "group": s.group, "title": s.title, "pane": "frame",
             "outputs": "", "params": params(s.params)} for s in FLOW_STUDIES.values()]
    rows += [{"name": ind.name, "group": ind.group, "title": ind.title,
              "pane": "overlay" if ind.overlay else "own pane",
              "outputs": ", ".join(ind.columns), "params": params(ind.params)}
             for ind in REGISTRY]
    return pd.DataFrame(rows).sort_values(["group", "name"], ignore_index=True)


def _typed(owner: str, params: tuple[Param, ...], pairs: dict[str, str]) -> dict:
    """Text values converted to the declared types and validated; defaults for the rest."""
    by_name = {p.name: p for p in params}
    out = {p.name: p.default for p in params}
    for key, text in pairs.items():
        param = by_name.get(key)
        if param is None:
            raise StudyError(f"{owner}: unknown parameter {key!r}; valid parameters: "
                             f"{', '.join(by_name) or 'none'}")
        try:
            if param.type == "int":
                value = int(text)
            elif param.type == "float":
                value = float(text)
            else:  # a choice: its value (e.g. an MA type code) or its label ("EMA")
                value = int(text) if text.lstrip("-").isdigit() else text
        except ValueError:
            raise StudyError(f"{owner}: parameter {key!r} must be {param.describe_range()}; "
                             f"got {text!r}") from None
        out[key] = param.validate(value, owner)
    return out


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
              params: dict[str, str] | None = None, higher=None) -> pd.DataFrame:
    """Run study ``name`` over ``symbol``'s stored data; errors a user can fix are StudyErrors.

    ``higher``: compute an indicator on bars of this (higher) spec and align it to the ``spec``
    bars without look-ahead (``indicators.mtf``)."""
    load_user_indicators()
    inputs = Inputs(md, symbol, BarSpec.parse(spec), start, end)
    flow = FLOW_STUDIES.get(name.lower())
    if flow is None and name not in REGISTRY:
        raise StudyError(f"unknown study {name!r}: see 'tradeflow study --list' for the studies "
                         "and their parameters")
    if higher is not None:
        _check_higher(inputs.spec, BarSpec.parse(higher))
    try:
        if flow is not None:
            if higher is not None:
                raise StudyError(f"{flow.name}: a higher timeframe applies to indicators only")
            values = _typed(flow.name, flow.params, params or {})
            return flow.run(inputs, values).reset_index(drop=True)
        ind = REGISTRY.get(name)
        values = _typed(ind.name, ind.params, params or {})
        if higher is None:
            out = REGISTRY.compute(ind, inputs.bars, **values)
        else:
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
