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
* Bars received built (``write_bars``) are kept apart, in ``external_bars``, at their own
  timeframe (``seconds``), one per (symbol, timeframe, open time): writing a bar again replaces
  it. ``bars(..., source="external")`` reads them: at their own timeframe as they came, longer
  specs aggregating them (per bar, the finest received timeframe there that builds it); a spec
  that no received bar there can build is an error saying so. Received bars of a timeframe that
  divides a minute also make the 1-minute rollups of minutes that hold no trade: where a minute
  has trades, the bars built from them win (they agree with the footprint cells, which only
  trades give). Longer received bars never reach the minute rollups.
"""
from __future__ import annotations

import abc
from contextlib import AbstractAsyncContextManager, AbstractContextManager

import pandas as pd

from tradeflow.model import BarSpec, Instrument, InstrumentRegistry, ModelError

BASE_SPEC = BarSpec.parse("1m")  # the timeframe of the rollups
SOURCES = (None, "external")  # bars built from trades (the rollups), or the bars received built


# the columns of a stored API key (migration 3)
API_KEY_COLUMNS = ("key_id", "name", "salt", "digest", "timezone", "created_at", "revoked_at")


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


def check_source(source) -> bool:
    """Whether a read asks for the received bars (``source="external"``); refuses others."""
    if source not in SOURCES:
        raise ModelError(f"bar source {source!r}: use None (the rollups, bars built from trades) "
                         "or 'external' (the bars received built)")
    return source == "external"


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
    def write_bars(self, symbol: str, bars: pd.DataFrame, seconds: int | None = None) -> int:
        """Store bars received built, each ``seconds`` long (1, 60, 3600, 86400...), as they
        came; returns the bars stored. A bar with the timeframe and open time of a stored one
        replaces it (in one frame, the later row wins). ``seconds=None``: bars of at most a
        minute whose timeframe is not known, stored rolled up as 1-minute bars (returns those).
        """

    @abc.abstractmethod
    def write_depth(self, symbol: str, depth: pd.DataFrame) -> int:
        """Store order-book snapshots (model depth layout; a snapshot is all rows of one time).

        Snapshots of a time already stored for the symbol are skipped, so a resent batch or a
        re-imported file adds nothing; returns the rows written."""

    @abc.abstractmethod
    def write_liquidations(self, symbol: str, liquidations: pd.DataFrame) -> int:
        """Store liquidations (model liquidation layout)."""

    # API keys (tradeflow.accounts makes and checks them; the store keeps their hashes) ------
    @abc.abstractmethod
    def add_api_key(self, row: dict) -> None:
        """Store a key's row (``API_KEY_COLUMNS``)."""

    @abc.abstractmethod
    def api_keys(self) -> list[dict]:
        """Every key's row, revoked ones too, oldest first."""

    @abc.abstractmethod
    def revoke_api_key(self, name: str, at) -> int:
        """Mark the active keys named ``name`` revoked at ``at``; returns how many."""

    # reads ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def trades(self, symbol, start=None, end=None, last=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    def bars(self, symbol, spec="1m", start=None, end=None, last=None,
             source=None) -> pd.DataFrame:
        """Time bars: ``source=None`` from the rollups, ``"external"`` the received bars."""

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
    async def write_bars(self, symbol: str, bars: pd.DataFrame,
                         seconds: int | None = None) -> int: ...

    @abc.abstractmethod
    async def write_depth(self, symbol: str, depth: pd.DataFrame) -> int: ...

    @abc.abstractmethod
    async def write_liquidations(self, symbol: str, liquidations: pd.DataFrame) -> int: ...

    @abc.abstractmethod
    async def add_api_key(self, row: dict) -> None: ...

    @abc.abstractmethod
    async def api_keys(self) -> list[dict]: ...

    @abc.abstractmethod
    async def revoke_api_key(self, name: str, at) -> int: ...

    @abc.abstractmethod
    async def trades(self, symbol, start=None, end=None, last=None) -> pd.DataFrame: ...

    @abc.abstractmethod
    async def bars(self, symbol, spec="1m", start=None, end=None, last=None,
                   source=None) -> pd.DataFrame: ...

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
