"""Bars of any spec over a store: time bars from the store's rollups, the rest from trades.

``MarketData`` is what notebooks, the CLI and the dashboards read market data through. Stores
serve trades and plain time bars (aggregated in the database); tick, volume, range and Renko bars
and Heikin-Ashi are built here with ``tradeflow.bars`` from stored trades.
"""
from __future__ import annotations

import pandas as pd

from data_access import Store, open_store
from data_access.frames import bounds

from . import config
from .bars import build, heikin_ashi
from .model import BarSpec, ModelError


class MarketData:
    """Read bars and footprints of any spec from ``store`` (a Store or a store URL)."""

    def __init__(self, store: Store | str | None = None):
        self.store = store if isinstance(store, Store) else open_store(config.store_url(store))

    def trades(self, symbol, start=None, end=None, last=None) -> pd.DataFrame:
        return self.store.trades(symbol, start, end, last)

    def depth(self, symbol, start=None, end=None) -> pd.DataFrame:
        """Stored book snapshots (depth layout: every row of one ``ts`` is one snapshot)."""
        return self.store.depth(symbol, start, end)

    def liquidations(self, symbol, start=None, end=None) -> pd.DataFrame:
        return self.store.liquidations(symbol, start, end)

    def bars(self, symbol, spec="1m", start=None, end=None, last=None,
             source=None) -> pd.DataFrame:
        """Bars of ``spec``; ``source="external"``: from the bars received built (time specs)."""
        spec = BarSpec.parse(spec)
        if spec.is_time:
            bars = self.store.bars(symbol, spec.base, start, end, last, source=source)
        elif source is not None:
            raise ModelError(f"bar spec {spec}: tick, volume, range and Renko bars are built "
                             "from trades; received bars serve time specs only")
        else:
            bars = self._from_trades(symbol, spec, start, end, last)[0]
        return heikin_ashi(bars) if spec.heikin_ashi else bars

    def footprint(self, symbol, spec="1m", start=None, end=None, last=None) -> pd.DataFrame:
        spec = BarSpec.parse(spec).base
        if spec.is_time:
            if last is not None:  # the footprint of the last N bars
                recent = self.store.bars(symbol, spec, start, end, last)
                if len(recent) == 0:
                    return self.store.footprint(symbol, spec, start, end)
                start = recent["ts"].iloc[0]
            return self.store.footprint(symbol, spec, start, end)
        return self._from_trades(symbol, spec, start, end, last)[1]

    def _from_trades(self, symbol, spec: BarSpec, start, end, last):
        """Bars and cells built from trades. Non-time bars restart each trading day, so building
        from the start of the trading day of ``start`` gives the same bars as any longer history;
        with ``last`` and no start, earlier days are added until there are enough bars."""
        inst = self.store.instrument(symbol)
        session = inst.session
        start, end = bounds(start, end)
        anchor = start
        if anchor is None:
            newest = self.store.trades(symbol, end=end, last=1)
            if newest.empty:
                return build(newest, spec, inst)
            anchor = newest["ts"].iloc[0]
        day = session.trading_date([anchor])[0]
        while True:
            since = session.day_start_utc([day])[0]
            bars, cells = build(self.store.trades(symbol, since, end), spec, inst)
            if start is not None or last is None or len(bars) >= last:
                break
            earlier = self.store.trades(symbol, end=since, last=1)
            if earlier.empty:
                break
            day = session.trading_date(earlier["ts"])[0]
        if start is not None:
            bars = bars[bars["ts"] >= start]
        if last is not None:
            bars = bars.iloc[-last:]
        first = bars["ts"].iloc[0] if len(bars) else pd.Timestamp.max.tz_localize("UTC")
        return bars.reset_index(drop=True), cells[cells["ts"] >= first].reset_index(drop=True)

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
