"""The notebook API behind ``import tradeflow as tf``: one store, its market data, any study, any
chart, in a few calls.

A :class:`Workspace` is one store (a URL, as the CLI takes it: the argument, else
``$TRADEFLOW_STORE``, else the default DuckDB file). ``tf.open(url)`` makes it the current one;
``tf.bars(...)``, ``tf.study(...)``, ``tf.chart(...)`` and the others use the current one (the
default store when none was opened).

Every read and write is the CLI's own operation (``tradeflow.server.control``), so a notebook
gets the same frames and the same checks as ``tradeflow export`` / ``study`` / ``import``; while
``tradeflow serve`` holds the DuckDB file, the work runs in that server, as the CLI's does, and
charts read its HTTP API. Errors are the project's own (``ModelError``, ``StoreError``,
``StudyError``, ``IndicatorError``, ``IngestError``, ``ServerError``), each one line.
"""
from __future__ import annotations

import inspect
import os

import pandas as pd

from . import config
from .marketdata import MarketData
from .model import Instrument, Session
from .server import control
from .server.client import ServerError, call
from .server.runfile import find

__all__ = ["Workspace", "open", "current", "instrument", "instruments", "add_instrument",
           "trades", "bars", "footprint", "depth", "study", "studies", "import_file", "simulate",
           "chart", "overview"]


class Workspace:
    """One store and what a notebook does with it (see the module's docstring)."""

    def __init__(self, url: str | None = None):
        self.url = config.store_url(url)
        self._store = None
        self._marketdata = None

    def __repr__(self) -> str:
        from data_access.pg_url import redact_url
        return f"<tradeflow workspace {redact_url(self.url)}>"

    # --- where the work runs --------------------------------------------------------------
    @property
    def server(self):
        """The ``tradeflow serve`` holding the store (a DuckDB file), else None. Not this very
        process: a notebook served as a page by that server opens the file itself (DuckDB
        allows it in one process), as asking its own loop over HTTP would wait forever."""
        if self._store is not None:
            return None
        running = find(self.url)
        return None if running is None or running.pid == os.getpid() else running

    @property
    def store(self):
        """The open store (a ``data_access.Store``); not while a server holds it."""
        if self._store is None:
            server = self.server
            if server is not None:
                raise ServerError(f"the server at {server.url} (process {server.pid}) holds the "
                                  "store: read it through tf.bars/tf.study/tf.chart, or stop "
                                  "the server first")
            from data_access import open_store
            self._store = open_store(self.url)
        return self._store

    @property
    def marketdata(self):
        """What charts read: ``MarketData`` over the store, or the holding server's read API."""
        if self._marketdata is None:
            server = self.server
            if server is not None:
                from .remote import ServerData
                return ServerData(server.url)
            self._marketdata = MarketData(self.store)
        return self._marketdata

    def _run(self, op: str, **args) -> control.Result:
        server = self.server
        if server is not None:
            return call(server, op, args)
        return control.OPERATIONS[op](self.store, **args)

    # --- instruments ---------------------------------------------------------------------
    def instrument(self, symbol: str) -> Instrument:
        return self.marketdata.store.instrument(symbol)

    def instruments(self) -> pd.DataFrame:
        """The stored instruments, one row each."""
        rows = [{"symbol": i.symbol, "exchange": i.exchange, "asset_class": i.asset_class,
                 "tick_size": i.tick_size, "point_value": i.point_value,
                 "session": str(i.session)} for i in self.store.instruments()]
        return pd.DataFrame(rows, columns=["symbol", "exchange", "asset_class", "tick_size",
                                           "point_value", "session"])

    def add_instrument(self, symbol: str, tick_size: float, exchange: str = "",
                       asset_class: str = "other", point_value: float = 1.0,
                       session: str | Session = "UTC 00:00-24:00") -> Instrument:
        """Add or replace an instrument (``session``: ``'TZ RTH[,ETH]'``, as the CLI takes)."""
        self._run("instruments_add", symbol=symbol, tick_size=tick_size, exchange=exchange,
                  asset_class=asset_class, point_value=point_value, session=str(session))
        return self.instrument(symbol)

    # --- market data ---------------------------------------------------------------------
    def trades(self, symbol: str, start=None, end=None, last: int | None = None) -> pd.DataFrame:
        return self._run("export", what="trades", symbol=symbol, start=start, end=end,
                         last=last).frame

    def bars(self, symbol: str, spec="1m", start=None, end=None, last: int | None = None,
             received: bool = False) -> pd.DataFrame:
        """Bars of any spec (``"5m"``, ``"T500"``, ``"V1000"``, ``"R8"``, ``"HA1m"`` ...); time
        bars aggregate the store's rollups in the database, so a long range is cheap.
        ``received``: the bars received built (Sierra Chart, .scid bar records)."""
        return self._run("export", what="bars", symbol=symbol, spec=str(spec), start=start,
                         end=end, last=last, received=received).frame

    def footprint(self, symbol: str, spec="1m", start=None, end=None,
                  last: int | None = None) -> pd.DataFrame:
        """Footprint cells (bid/ask volume per bar and price level), with ``price`` and
        ``delta`` columns as ``tradeflow export footprint`` writes them."""
        return self._run("export", what="footprint", symbol=symbol, spec=str(spec), start=start,
                         end=end, last=last).frame

    def depth(self, symbol: str, start=None, end=None) -> pd.DataFrame:
        """Stored book snapshots (every row of one ``ts`` is one snapshot)."""
        return self.store.depth(symbol, start, end)

    # --- studies -------------------------------------------------------------------------
    def study(self, name: str, symbol: str, spec="1m", start=None, end=None,
              last: int | None = None, higher=None, **params) -> pd.DataFrame:
        """Study ``name`` of the catalogue over the bars of ``spec`` (``last``: the last N
        bars); ``params`` are checked by the catalogue, as ``tradeflow study --param`` is;
        ``higher``: an indicator computed on that longer spec, aligned without look-ahead."""
        if last is not None:
            recent = self.bars(symbol, spec, start, end, last)
            start = recent["ts"].iloc[0] if len(recent) else start
        return self._run("study", name=name, symbol=symbol, spec=str(spec), start=start,
                         end=end, params=params, tf=None if higher is None else str(higher),
                         text=False).frame

    def overview(self, symbol: str, start, end, width: int = 1000, height: int = 400,
                 chunk="1D"):
        """Volume per time x price cell of a long history (``xarray.DataArray``), read one
        ``chunk`` of trades at a time: for Datashader (``tradeflow.history_grid``)."""
        from .history_grid import trade_grid
        return trade_grid(self, symbol, start, end, width, height, chunk)

    # --- writing -------------------------------------------------------------------------
    def import_file(self, *paths, format: str | None = None, symbol: str | None = None,
                    mapping: dict | None = None) -> list[str]:
        """Import trade or depth files (all or nothing, as ``tradeflow import``); the lines
        the CLI prints."""
        if not paths:
            raise ValueError("import_file: give at least one file")
        return self._run("import", paths=[os.path.abspath(os.fspath(p)) for p in paths],
                         format=format, symbol=symbol, mapping=mapping).lines

    def simulate(self, symbol: str, start, end, seed: int = 0, trades_per_day: int = 200_000,
                 depth: bool = True, depth_interval: str = "1s") -> int:
        """Fill ``[start, end)`` of ``symbol`` (a stored instrument) with simulated trades (and
        book snapshots every ``depth_interval``, liquidations); deterministic for ``seed``. The
        trades written."""
        from data_access.frames import bounds

        from .ingest.simulator import MarketSimulator
        from .live.simulated import fill_history

        start, end = bounds(start, end)
        if start is None or end is None:
            raise ValueError("simulate: give both start and end (fixed times)")
        # without depth: no snapshots made only to be dropped, and a day per transaction
        # (weeks of history in seconds, not a minute)
        sim = MarketSimulator(self.store.instrument(symbol), seed=seed,
                              trades_per_day=trades_per_day,
                              depth_interval=depth_interval if depth else "1D",
                              depth_levels=20 if depth else 1)
        return fill_history(self.store, sim, symbol, start, end, depth=depth,
                            chunk="1h" if depth else "1D")

    # --- charts --------------------------------------------------------------------------
    def chart(self, symbol: str, spec="1m", type: str = "candles", studies=(), panes=(),
              theme: str = "dark", start=None, end=None, last: int | None = None, live=None,
              height: int = 500, period_ms: int = 1000):
        """The desk's chart component (displays inline with its widgets). See
        ``dashboards.notebook.chart``."""
        from dashboards.notebook import chart
        return chart(self, symbol, spec, type=type, studies=studies, panes=panes, theme=theme,
                     start=start, end=end, last=last, live=live, height=height,
                     period_ms=period_ms)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = self._marketdata = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_current: Workspace | None = None


def open(url: str | None = None) -> Workspace:  # noqa: A001 -- tf.open reads as it should
    """Make the store at ``url`` (default: ``$TRADEFLOW_STORE``, else the default DuckDB file)
    the current one, and return it."""
    global _current
    wanted = config.store_url(url)
    if _current is None or _current.url != wanted:
        _current = Workspace(wanted)
    return _current


def current() -> Workspace:
    """The current workspace (the default store when none was opened)."""
    return _current if _current is not None else open()


def _delegate(name: str):
    def call_current(*args, **kwargs):
        return getattr(current(), name)(*args, **kwargs)
    method = getattr(Workspace, name)
    call_current.__name__ = call_current.__qualname__ = name
    call_current.__doc__ = method.__doc__
    signature = inspect.signature(method)  # help(tf.bars) shows the method's, without self
    call_current.__signature__ = signature.replace(
        parameters=list(signature.parameters.values())[1:])
    return call_current


instrument = _delegate("instrument")
instruments = _delegate("instruments")
add_instrument = _delegate("add_instrument")
trades = _delegate("trades")
bars = _delegate("bars")
footprint = _delegate("footprint")
depth = _delegate("depth")
study = _delegate("study")
import_file = _delegate("import_file")
simulate = _delegate("simulate")
chart = _delegate("chart")
overview = _delegate("overview")


def studies() -> pd.DataFrame:
    """The study catalogue: one row per study (group, what it reads, parameters, live form)."""
    from .studies import list_studies
    return list_studies()
