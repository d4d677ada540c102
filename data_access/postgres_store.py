"""The shared store: ``PostgresStore``, PostgreSQL through an asyncpg pool with TimescaleDB
features when available, and ``connect(url)``, which opens the pool and migrates the database
(the URL and its options are in ``data_access.pg_url``, the schema set-up in
``data_access.pg_schema``, the SQL in ``data_access.pg_sql``, the binary COPY codec in
``data_access.pg_binary``). The store's own work is connections, transactions, instruments, the
write paths and keeping the 1-hour aggregate fresh after them."""
from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import asynccontextmanager, contextmanager, suppress

import asyncpg
import pandas as pd

from tradeflow.model import Instrument, InstrumentRegistry, ModelError

from . import frames
# copy_in and copy_out are looked up here, so that tests and benchmarks can wrap them
from .pg_binary import copy_in, copy_out, decode_rows, encode_rows  # noqa: F401 (re-exported)
from .pg_schema import (CAGG, DIALECT, TIMESCALE_MIGRATIONS,  # noqa: F401 (re-exported)
                        setup_schema)
from .pg_sql import (BAR_UPDATE, BAR_VALUES, MINUTE, bars_sql, first_last, footprint_sql, latest,
                     text_literal, trade_bars, trade_cells, ts_range)
from .pg_url import OFF, Target, parse_url
from .rollup import minute_rollups
from .sql import minutes_from_external_sql, rolled_up, too_fine, widen
from .store import API_KEY_COLUMNS, AsyncStore, StoreError, check_source, check_time_spec

log = logging.getLogger(__name__)

DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


def _errors(method):
    """Driver and network errors become StoreErrors naming the server (never the password)."""
    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        with self._guard():
            return await method(self, *args, **kwargs)
    return wrapper


class PostgresStore(AsyncStore):
    """Store backed by PostgreSQL; ``timescaledb`` tells whether TimescaleDB features are on.

    ``transaction()`` yields a store bound to one connection whose writes join the transaction.
    Writes are binary ``COPY`` of numpy-encoded rows; reads are binary ``COPY`` decoded by numpy.
    ``bars("1h")`` (and longer whole-hour intraday specs) read the continuous aggregate; a write
    below its watermark refreshes the hours it touched once the write has committed, so the
    aggregate equals aggregating ``market_data`` (another process may see the old hours in
    between).
    """

    def __init__(self, pool, target: Target, timescaledb: bool, hourly: bool, con=None):
        self._pool = pool
        self._target = target
        self.url = target.url
        self.timescaledb = timescaledb
        self._hourly = hourly  # the 1-hour aggregate exists: writes refresh it
        self._con = con  # set on a transaction's store
        self._lock = asyncio.Lock()  # one statement at a time on a bound connection
        self._stale: list[tuple] = []  # market_data ranges a transaction wrote (see _refresh_1h)
        self._over = False

    # connections and transactions ----------------------------------------------------------
    @contextmanager
    def _guard(self):
        try:
            yield
        except DRIVER_ERRORS as exc:
            raise StoreError(f"PostgreSQL at {self._target.where}: {type(exc).__name__}: "
                             f"{exc}") from exc

    @asynccontextmanager
    async def _connection(self):
        if self._con is None:
            async with self._pool.acquire() as con:
                yield con
            return
        if self._over:
            raise StoreError("this transaction has ended: use the store that opened it")
        async with self._lock:
            yield self._con

    @asynccontextmanager
    async def transaction(self):
        if self._con is not None:  # nested: join the outer transaction
            yield self
            return
        with self._guard():
            con = await self._pool.acquire()
        tx = PostgresStore(self._pool, self._target, self.timescaledb, self._hourly, con)
        try:
            xact = con.transaction()  # writes through tx nest savepoints in it
            with self._guard():
                await xact.start()
            try:
                yield tx
            except BaseException:
                with suppress(*DRIVER_ERRORS):  # a dead connection has nothing to roll back
                    await xact.rollback()
                raise
            with self._guard():
                await xact.commit()
            await self._refresh_1h(con, tx._stale)
        finally:
            tx._over = True
            await self._pool.release(con)

    async def _written(self, con, lo, hi) -> None:
        """Note that ``market_data`` changed in ``[lo, hi)``, after the write's transaction."""
        if not self._hourly:
            return
        if self._con is not None:
            self._stale.append((lo, hi))  # refreshed when the outer transaction commits
        else:
            await self._refresh_1h(con, [(lo, hi)])

    async def _refresh_1h(self, con, ranges) -> None:
        """Bring the 1-hour aggregate up to date for the hours ``ranges`` touched.

        Real-time aggregation covers hours from the aggregate's watermark on; a change below it
        is only invalidated, so those hours are refreshed (outside any transaction, as
        TimescaleDB requires). Refreshing stops at the watermark so that it never moves it: the
        live tail stays real-time and costs no refresh.
        """
        if not ranges:  # (only noted when the aggregate exists: see _written)
            return
        lo = min(a for a, _ in ranges).floor("h")
        hi = max(b for _, b in ranges).ceil("h")
        try:
            wm = await con.fetchval(
                "SELECT extract(epoch FROM _timescaledb_functions.to_timestamp("
                "_timescaledb_functions.cagg_watermark(mat_hypertable_id)))::float8 "
                "FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = $1 "
                "AND user_view_schema = current_schema()", CAGG)
            if wm is None or wm <= lo.timestamp():  # nothing materialized there (or at all)
                return
            hi = min(hi, pd.Timestamp(wm, unit="s", tz="UTC").floor("h"))
            if hi > lo:
                await con.execute(f"CALL refresh_continuous_aggregate('{CAGG}', $1::timestamptz, "
                                  "$2::timestamptz)", lo.to_pydatetime(), hi.to_pydatetime())
        except DRIVER_ERRORS as exc:  # the data is committed; the refresh policy catches up
            log.warning("refreshing %s for %s..%s failed (%s); its refresh policy will catch up",
                        CAGG, lo, hi, exc)

    # schema ------------------------------------------------------------------------------------
    @_errors
    async def schema_version(self) -> int:
        async with self._connection() as con:
            return await con.fetchval("SELECT max(version) FROM schema_migrations")

    # instruments -------------------------------------------------------------------------------
    @_errors
    async def add_instrument(self, instrument: Instrument) -> None:
        async with self._connection() as con:
            await con.execute(
                "INSERT INTO instruments (symbol, exchange, asset_class, tick_size, point_value, "
                "session) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (symbol) DO UPDATE SET "
                "exchange = EXCLUDED.exchange, asset_class = EXCLUDED.asset_class, "
                "tick_size = EXCLUDED.tick_size, point_value = EXCLUDED.point_value, "
                "session = EXCLUDED.session",
                instrument.symbol, instrument.exchange, instrument.asset_class,
                float(instrument.tick_size), float(instrument.point_value), str(instrument.session))

    _INSTRUMENT_SQL = ("SELECT symbol, tick_size, exchange, asset_class, point_value, session "
                       "FROM instruments")

    @staticmethod
    def _registry(rows) -> InstrumentRegistry:
        return InstrumentRegistry.from_rows(rows)

    @_errors
    async def instruments(self) -> InstrumentRegistry:
        async with self._connection() as con:
            return self._registry(await con.fetch(self._INSTRUMENT_SQL + " ORDER BY symbol"))

    @_errors
    async def instrument(self, symbol: str) -> Instrument:
        async with self._connection() as con:
            return await self._instrument(con, symbol)

    async def _instrument(self, con, symbol: str) -> Instrument:
        rows = await con.fetch(self._INSTRUMENT_SQL + " WHERE symbol = $1", str(symbol))
        return self._registry(rows).get(symbol)  # raises the registry's "unknown symbol"

    # writes ------------------------------------------------------------------------------------
    @_errors
    async def write_trades(self, symbol: str, trades: pd.DataFrame) -> int:
        async with self._connection() as con:
            inst = await self._instrument(con, symbol)
            df = frames.clean_trades(trades, inst.tick_size)
            if df.empty:
                return 0
            lo, hi = df["ts"].iloc[0], df["ts"].iloc[-1]
            minutes = _minutes(df["ts"])
            columns = {"symbol": symbol, **{c: df[c] for c in frames.LAYOUTS["trades"]}}
            async with con.transaction():  # a savepoint inside transaction()
                added, all_new = await self._insert_trades(con, symbol, columns, len(df), lo, hi)
                if all_new:
                    await self._write_rollups(con, symbol, inst, df, lo, hi, *minutes)
                elif added:
                    await self._refresh_rollups(con, symbol, inst.tick_size, *minutes)
            if added:
                await self._written(con, *minutes)
        return added

    async def _insert_trades(self, con, symbol, columns, n, lo, hi) -> int:
        """COPY straight into trades when none of the symbol's are stored in ``[lo, hi]``, else
        through a staging table and ``ON CONFLICT DO NOTHING``; returns (rows new, whether the
        straight path was taken, i.e. the batch's trades are all the stored trades in ``[lo, hi]``).
        """
        if not await self._stored_between(con, symbol, lo, hi):
            try:
                async with con.transaction():
                    await copy_in(con, "trades", columns, n)
                return n, True
            except asyncpg.UniqueViolationError:  # another writer got there first
                pass
        await con.execute(
            "CREATE TEMP TABLE IF NOT EXISTS trades_incoming (ts timestamptz, price float8, "
            "size float8, side int2, trade_id int8)")
        await con.execute("TRUNCATE trades_incoming")
        await copy_in(con, "trades_incoming", {k: v for k, v in columns.items() if k != "symbol"},
                      n)
        status = await con.execute(
            "INSERT INTO trades (symbol, ts, price, size, side, trade_id) "
            "SELECT $1, ts, price, size, side, trade_id FROM trades_incoming "
            "ON CONFLICT (symbol, ts, trade_id) DO NOTHING", symbol)
        return _row_count(status), False

    async def _write_rollups(self, con, symbol, inst: Instrument, df, lo, hi, a, b) -> None:
        """Rollups of a batch that was all new, computed from the batch in memory; the first and
        last minute are recomputed in SQL when other stored trades share them."""
        bars, cells = minute_rollups(df, inst)
        await con.execute(
            "CREATE TEMP TABLE IF NOT EXISTS market_data_incoming "
            "(LIKE market_data INCLUDING DEFAULTS)")
        await con.execute("TRUNCATE market_data_incoming")
        values = [c for c in frames.STORED_BAR_COLUMNS if c != "open_interest"]
        await copy_in(con, "market_data_incoming",
                      {"symbol": symbol, **{c: bars[c] for c in values}}, len(bars))
        await con.execute(f"""
            INSERT INTO market_data (symbol, ts, {BAR_VALUES}, open_interest)
            SELECT symbol, ts, {BAR_VALUES}, NULL FROM market_data_incoming
            ON CONFLICT (symbol, ts) DO UPDATE SET {BAR_UPDATE}""")
        await con.execute("DELETE FROM footprint WHERE symbol = $1 AND ts >= $2 AND ts < $3",
                          symbol, a.to_pydatetime(), b.to_pydatetime())
        # cells come in key order, so that reading a range scans the heap sequentially
        await copy_in(con, "footprint", {"symbol": symbol, **{c: cells[c] for c in cells}},
                      len(cells))
        shared = await con.fetchval(
            "SELECT EXISTS (SELECT 1 FROM trades WHERE symbol = $1 AND "
            "((ts >= $2 AND ts < $3) OR (ts > $4 AND ts < $5)))",
            symbol, a.to_pydatetime(), lo.to_pydatetime(), hi.to_pydatetime(), b.to_pydatetime())
        if shared:
            minute = pd.Timedelta(minutes=1)
            await self._refresh_rollups(con, symbol, inst.tick_size, a, a + minute)
            await self._refresh_rollups(con, symbol, inst.tick_size, b - minute, b)

    @staticmethod
    async def _stored_between(con, symbol, lo, hi) -> bool:
        return await con.fetchval(
            "SELECT EXISTS (SELECT 1 FROM trades WHERE symbol = $1 AND ts >= $2 AND ts <= $3)",
            symbol, lo.to_pydatetime(), hi.to_pydatetime())

    @staticmethod
    async def _refresh_rollups(con, symbol: str, tick_size: float, lo, hi) -> None:
        """Recompute the base bars and footprint cells of the minutes ``[lo, hi)``."""
        a, b = lo.to_pydatetime(), hi.to_pydatetime()
        times = " AND ts >= $2 AND ts < $3"
        await con.execute(f"""
            INSERT INTO market_data (symbol, ts, {BAR_VALUES}, open_interest)
            SELECT *, NULL::float8 FROM ({trade_bars(MINUTE, '$1', times)}) bars
            ON CONFLICT (symbol, ts) DO UPDATE SET {BAR_UPDATE}""", symbol, a, b)
        await con.execute(f"DELETE FROM footprint WHERE symbol = $1{times}", symbol, a, b)
        # in key order, so that reading a range scans the heap sequentially (its server time
        # halved for a day of cells)
        await con.execute(f"""
            INSERT INTO footprint (symbol, ts, tick, volume, ask_volume, bid_volume, trades)
            {trade_cells(MINUTE, tick_size, '$1', times)} ORDER BY bucket, tick""", symbol, a, b)

    @_errors
    async def write_bars(self, symbol: str, bars: pd.DataFrame,
                         seconds: int | None = None) -> int:
        if seconds is None:  # bars of at most a minute, of no stated timeframe: as 1-minute bars
            df, seconds = frames.to_minutes(frames.clean_bars(bars)), 60
        else:
            seconds = frames.check_bar_seconds(seconds)
            df = frames.clean_received_bars(bars)
        async with self._connection() as con:
            await self._instrument(con, symbol)
            if df.empty:
                return 0
            columns = {c: df[c] for c in frames.STORED_BAR_COLUMNS}
            cols = ", ".join(frames.STORED_BAR_COLUMNS)
            async with con.transaction():
                await con.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS external_incoming (ts timestamptz, "
                    "open float8, high float8, low float8, close float8, volume float8, "
                    "ask_volume float8, bid_volume float8, trades int8, open_interest float8)")
                await con.execute("TRUNCATE external_incoming")
                await copy_in(con, "external_incoming", columns, len(df))
                await con.execute(f"""
                    INSERT INTO external_bars (symbol, seconds, {cols})
                    SELECT $1, $2, ts, {BAR_VALUES}, nullif(open_interest, 'NaN')
                    FROM external_incoming
                    ON CONFLICT (symbol, seconds, ts) DO UPDATE SET {BAR_UPDATE}""",
                    symbol, seconds)
                if rolled_up(seconds):
                    a, b = _minutes(df["ts"])
                    rows = minutes_from_external_sql(
                        DIALECT, "symbol = $1 AND ts >= $2 AND ts < $3", "$1",
                        *first_last(self.timescaledb))
                    await con.execute(f"""
                        INSERT INTO market_data (symbol, ts, {BAR_VALUES}, open_interest)
                        SELECT $1, bucket, {BAR_VALUES}, open_interest FROM ({rows}) r
                        ON CONFLICT (symbol, ts) DO UPDATE SET {BAR_UPDATE}""",
                        symbol, a.to_pydatetime(), b.to_pydatetime())
            if rolled_up(seconds):
                await self._written(con, *_minutes(df["ts"]))
        return len(df)

    async def _append(self, table: str, symbol: str, clean, frame: pd.DataFrame) -> int:
        async with self._connection() as con:
            await self._instrument(con, symbol)
            df = clean(frame)
            if df.empty:
                return 0
            async with con.transaction():
                await copy_in(con, table, {"symbol": symbol, **{c: df[c] for c in df.columns}},
                              len(df))
        return len(df)

    @_errors
    async def write_depth(self, symbol: str, depth: pd.DataFrame) -> int:
        async with self._connection() as con:
            await self._instrument(con, symbol)
            df = frames.clean_depth(depth)
            if df.empty:
                return 0
            async with con.transaction():
                # one depth writer per symbol at a time, so two cannot both find a snapshot new
                await con.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"depth {symbol}")
                stored = await copy_out(
                    con, f"SELECT DISTINCT ts FROM depth WHERE symbol = {text_literal(symbol)}"
                    f"{ts_range('ts', *frames.depth_span(df))}", ["ts"])
                df = frames.new_snapshots(df, stored["ts"])
                if len(df):
                    columns = {"symbol": symbol, **{c: df[c] for c in df.columns}}
                    await copy_in(con, "depth", columns, len(df))
        return len(df)

    @_errors
    async def write_liquidations(self, symbol: str, liquidations: pd.DataFrame) -> int:
        return await self._append("liquidations", symbol, frames.clean_liquidations, liquidations)

    # reads -------------------------------------------------------------------------------------
    @staticmethod
    async def _read(con, sql: str, layout: str, columns=None) -> pd.DataFrame:
        df = await copy_out(con, sql, columns or frames.LAYOUTS[layout])
        return frames.finish(df, frames.LAYOUTS[layout])

    async def _rows(self, table, symbol, start, end, last=None, order="ts") -> pd.DataFrame:
        start, end = frames.bounds(start, end)
        cols = ", ".join(frames.LAYOUTS[table])
        sql = (f"SELECT {cols} FROM {table} WHERE symbol = {text_literal(symbol)}"
               f"{ts_range('ts', start, end)}")
        async with self._connection() as con:
            return await self._read(con, latest(sql, order, last), table)

    # API keys ----------------------------------------------------------------------------------
    @_errors
    async def add_api_key(self, row: dict) -> None:
        async with self._connection() as con:
            await con.execute(
                f"INSERT INTO api_keys ({', '.join(API_KEY_COLUMNS)}) VALUES "
                f"({', '.join(f'${i + 1}' for i in range(len(API_KEY_COLUMNS)))})",
                *[row.get(c) for c in API_KEY_COLUMNS])

    @_errors
    async def api_keys(self) -> list[dict]:
        async with self._connection() as con:
            rows = await con.fetch(f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys "
                                   "ORDER BY created_at, key_id")
        return [dict(r) for r in rows]

    @_errors
    async def revoke_api_key(self, name: str, at) -> int:
        async with self._connection() as con:
            return _row_count(await con.execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
                at, name))

    @_errors
    async def trades(self, symbol, start=None, end=None, last=None) -> pd.DataFrame:
        return await self._rows("trades", symbol, start, end, last, "ts, trade_id")

    @_errors
    async def depth(self, symbol, start=None, end=None) -> pd.DataFrame:
        return await self._rows("depth", symbol, start, end, order="ts, side, tick")

    @_errors
    async def liquidations(self, symbol, start=None, end=None) -> pd.DataFrame:
        return await self._rows("liquidations", symbol, start, end)

    def _uses_1h(self, spec) -> bool:
        """Whole-hour intraday bars read the 1-hour aggregate (not inside a transaction: its
        refresh waits for the commit)."""
        return (self.timescaledb and self._con is None and spec.is_intraday_time
                and spec.seconds % 3600 == 0)

    @_errors
    async def bars(self, symbol, spec="1m", start=None, end=None, last=None,
                   source=None) -> pd.DataFrame:
        spec = check_time_spec(spec)
        external = check_source(source)
        start, end = frames.bounds(start, end)
        async with self._connection() as con:
            inst = await self._instrument(con, symbol)
            sql = bars_sql(symbol, spec, inst.session, start, end, self.timescaledb,
                           self._uses_1h(spec), external)
            out = await self._read(con, latest(sql, "bucket", last), "bars",
                                   frames.STORED_BAR_COLUMNS)
            if external and out.empty:  # nothing, or only bars too long for the spec?
                lo, hi = widen(spec, start, end)
                finest = await con.fetchval(
                    f"SELECT min(seconds) FROM external_bars WHERE symbol = $1"
                    f"{ts_range('ts', lo, hi)}", symbol)
                if finest is not None:
                    raise ModelError(too_fine(spec, finest, symbol))
            return out

    @_errors
    async def footprint(self, symbol, spec="1m", start=None, end=None) -> pd.DataFrame:
        spec = check_time_spec(spec)
        start, end = frames.bounds(start, end)
        async with self._connection() as con:
            inst = await self._instrument(con, symbol)
            sql = footprint_sql(symbol, spec, inst, start, end)
            return await self._read(con, sql, "footprint")

    async def close(self) -> None:
        if self._con is not None:  # a transaction's store: the transaction owns the connection
            return
        try:
            await asyncio.wait_for(self._pool.close(), timeout=10)
        except asyncio.TimeoutError:
            self._pool.terminate()


async def connect(url: str) -> PostgresStore:
    """Open the store at ``url`` (see ``parse_url`` for the options), migrating it."""
    target, opts = parse_url(url)
    try:
        pool = await asyncpg.create_pool(
            target.dsn, min_size=1, max_size=10, timeout=15,
            # UTC for determinism; no JIT: it cost more than it saved on every rollup query
            server_settings={"timezone": "UTC", "jit": "off", "application_name": "tradeflow"})
    except DRIVER_ERRORS as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {target.where}: "
                         f"{type(exc).__name__}: {exc}") from None
    try:
        async with pool.acquire() as con:
            timescaledb, hourly = await setup_schema(con, opts)
    except DRIVER_ERRORS as exc:
        pool.terminate()
        raise StoreError(f"cannot prepare the schema of {target.where}: {exc}") from exc
    except BaseException:
        pool.terminate()
        raise
    if not timescaledb:
        for name in ("retention", "compress_after"):
            if getattr(opts, name) not in (None, OFF):
                log.warning("store option %s ignored: it needs TimescaleDB, which this database "
                            "does not have", name)
    return PostgresStore(pool, target, timescaledb, hourly)


def _minutes(ts: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The base bars ``[lo, hi)`` that the sorted times ``ts`` fall in."""
    return ts.iloc[0].floor("min"), ts.iloc[-1].floor("min") + pd.Timedelta(minutes=1)


def _row_count(status: str) -> int:
    """The row count of a command status such as ``INSERT 0 12``."""
    return int(status.rsplit(" ", 1)[1])
