"""The one store interface, in a synchronous form (notebooks, CLI) and an async form (server).

A backend implements whichever form is natural to its driver (DuckDB: sync, asyncpg: async);
``data_access.adapters`` derives the other one, so callers always have both.

Semantics every backend honours (the contract tests in ``tests/test_store_contract.py`` check them):

* Time ranges are ``[start, end)`` in UTC; ``None`` leaves a side open. ``last=N`` keeps the N
  latest rows (bars: the N latest bars) after the range is applied.
* ``write_*`` calls are all-or-nothing and bulk (Arrow into DuckDB, binary COPY into PostgreSQL).
  Inside ``transaction()`` several writes commit or roll back together (an import uses it so that a
  bad record late in a file leaves nothing stored).
* Trades are unique by ``(symbol, ts, trade_id)``: writing the same trades twice stores them once.
  ``write_trades`` returns how many rows were new and keeps the rollups (base-timeframe bars in
  ``market_data`` and footprint cells in ``footprint``) equal to an aggregation of all stored trades
  of the minutes it touched.
* ``bars``/``footprint`` serve time specs (``BarSpec.is_time``): intraday specs that are whole
  minutes aggregate the rollups; shorter ones aggregate trades; daily, weekly and monthly bars
  aggregate the rollups by the instrument's trading day. Tick, volume, range and Renko bars are
  built from ``trades`` by ``tradeflow.bars`` (a layer above).
"""
from __future__ import annotations

import abc
from contextlib import AbstractAsyncContextManager, AbstractContextManager

import pandas as pd

from tradeflow.model import BarSpec, Instrument, InstrumentRegistry, ModelError

BASE_SPEC = BarSpec.parse("1m")  # the timeframe of the rollups


class StoreError(RuntimeError):
    """A store could not be opened or a request could not be served; the message says why."""


def check_time_spec(spec) -> BarSpec:
    """The spec as a BarSpec, refusing ones a store does not serve."""
    spec = BarSpec.parse(spec)
    if not spec.is_time or spec.heikin_ashi:
        raise ModelError(
            f"bar spec {spec}: stores serve plain time bars; tick, volume, range, Renko and "
            "Heikin-Ashi bars are built from trades by tradeflow.bars"
        )
    return spec


class Store(abc.ABC):
    """Synchronous store API."""

    url: str

    # instruments -------------------------------------------------------------------------
    @abc.abstractmethod
    def add_instrument(self, instrument: Instrument) -> None:
        """Insert or replace an instrument."""

    @abc.abstractmethod
    def instruments(self) -> InstrumentRegistry:
        """All stored instruments."""

    def instrument(self, symbol: str) -> Instrument:
        return self.instruments().get(symbol)

    # writes --------------------------------------------------------------------------------
    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager:
        """Group writes so that they commit or roll back together."""

    @abc.abstractmethod
    def write_trades(self, symbol: str, trades: pd.DataFrame) -> int:
        """Store trades (model trade layout); returns rows new to the store."""

    @abc.abstractmethod
    def write_bars(self, symbol: str, bars: pd.DataFrame) -> int:
        """Store bars of at most the base timeframe (e.g. .scid bar records), rolled up to it.

        Rows replace the base bars of the minutes they cover; returns base bars written.
        """

    @abc.abstractmethod
    def write_depth(self, symbol: str, depth: pd.DataFrame) -> int:
        """Store order-book snapshots (model depth layout; a snapshot is all rows of one time).

        Snapshots of a time already stored for the symbol are skipped, so a resent batch or a
        re-imported file adds nothing; returns the rows written."""

    @abc.abstractmethod
    def write_liquidations(self, symbol: str, liquidations: pd.DataFrame) -> int:
        """Store liquidations (model liquidation layout)."""

    # reads ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def trades(self, symbol, start=None, end=None, last=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def bars(self, symbol, spec="1m", start=None, end=None, last=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def footprint(self, symbol, spec="1m", start=None, end=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def depth(self, symbol, start=None, end=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def liquidations(self, symbol, start=None, end=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AsyncStore(abc.ABC):
    """Async store API: the same methods as :class:`Store`, awaited."""

    url: str

    @abc.abstractmethod
    async def add_instrument(self, instrument: Instrument) -> None: ...

    @abc.abstractmethod
    async def instruments(self) -> InstrumentRegistry: ...

    async def instrument(self, symbol: str) -> Instrument:
        return (await self.instruments()).get(symbol)

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager: ...

    @abc.abstractmethod
    async def write_trades(self, symbol: str, trades: pd.DataFrame) -> int: ...

    @abc.abstractmethod
    async def write_bars(self, symbol: str, bars: pd.DataFrame) -> int: ...

    @abc.abstractmethod
    async def write_depth(self, symbol: str, depth: pd.DataFrame) -> int: ...

    @abc.abstractmethod
    async def write_liquidations(self, symbol: str, liquidations: pd.DataFrame) -> int: ...

    @abc.abstractmethod
    async def trades(self, symbol, start=None, end=None, last=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    async def bars(self, symbol, spec="1m", start=None, end=None, last=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    async def footprint(self, symbol, spec="1m", start=None, end=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    async def depth(self, symbol, start=None, end=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    async def liquidations(self, symbol, start=None, end=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
