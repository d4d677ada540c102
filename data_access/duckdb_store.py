"""The embedded default store: one DuckDB file, no server, one process at a time."""
from __future__ import annotations

import ctypes
import re
import threading
import time
import weakref
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import duckdb
import pandas as pd

from tradeflow.model import Instrument, InstrumentRegistry, ModelError

from . import frames, migrations
from .rollup import minute_rollups
from .sql import (bucket_expr, external_bars_sql, minutes_from_external_sql, reads_rollups,
                  rolled_up, too_fine, widen)
from .store import (API_KEY_COLUMNS, BASE_SPEC, Store, StoreError, check_source,
                    check_time_spec)

DIALECT = "duckdb"
# Rows committed since the last checkpoint stay in memory (and in the WAL file) until the WAL
# reaches this size; DuckDB's default, 16MB, let a served store's memory rise by ~25 MB and fall
# at each checkpoint (a few every simulated hour of a busy market). Smaller: a flat line, for a
# checkpoint about every 4 MB written (tens of milliseconds on the writer).
CHECKPOINT_THRESHOLD = "4MB"
# recycle(): how long it waits for the operations in flight to end (a thread inside a
# transaction may wait for another's read, which the recycle holds back: it then gives up), and
# how long it tries to open the file again while another process holds it (DuckDB does not wait
# for a file lock; the server's writes wait meanwhile, unacknowledged)
RECYCLE_WAIT_S = 30.0
REOPEN_TRIES_S = 10.0
# first / last value by time and last non-NULL value (arg_max skips NULL values)
_FIRST_LAST = (lambda v: f"arg_min({v}, ts)", lambda v: f"arg_max({v}, ts)",
               lambda v: f"arg_max({v}, ts)")


class DuckDBStore(Store):
    """Store backed by a DuckDB file (``duckdb:///path``) or memory (``duckdb://:memory:``)."""

    def __init__(self, path: str | Path, memory_limit: str | None = None):
        self.path = str(path)
        self.url = f"duckdb:///{self.path}" if self.path != ":memory:" else "duckdb://:memory:"
        self.memory_limit = memory_limit  # (checked by open_duckdb; the database's, cursors too)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.con = self._connect()
        self._lock = threading.RLock()  # one writer at a time, on ``con``
        self._tx_depth = 0
        self._tx_thread: int | None = None  # the thread inside the transaction
        self._readers = threading.local()    # each thread's own read connection
        # the read cursors open now: held only by their thread's local, so a cursor goes (and
        # closes) with its thread; close() closes the rest (each holds ~20 kB of DuckDB's)
        self.reader_cursors: weakref.WeakSet = weakref.WeakSet()
        self._cursors_lock = threading.Lock()  # not the writer's: making a cursor never waits
        # The gate recycle() closes: every read and transaction passes it (a thread once, at its
        # outermost operation); ``_active`` counts those in flight, ``_recycling`` holds new ones.
        self._gate = threading.Condition()
        self._active = 0
        self._recycling = False
        self._held = threading.local()  # this thread's depth of operations inside the gate
        self.generation = 0  # opens since the first: a cursor of an older one is replaced
        self.recycles: deque[Recycled] = deque(maxlen=100)  # the last ones, newest last
        self.cache_drops: deque[float] = deque(maxlen=1000)  # the last ones' held seconds
        self.closed = False
        self._registry: InstrumentRegistry | None = None  # one process owns the file: cache it
        self._migrate()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the database with the store's settings: the one open path of ``__init__`` and
        ``recycle``, so a recycled store runs as the first one did."""
        try:
            con = duckdb.connect(self.path)
        except duckdb.Error as exc:
            hint = (" (a DuckDB file serves one process at a time: stop the other one, or share "
                    "data through PostgreSQL)") if "lock" in str(exc).lower() else ""
            raise StoreError(f"cannot open DuckDB store {self.path}: {exc}{hint}") from exc
        try:
            con.execute("SET TimeZone = 'UTC'").fetchall()
            con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'").fetchall()
            # DuckDB allocates through its own jemalloc, which keeps the pages it frees until
            # the same arena allocates again (its decay is counted only then): an idle store
            # kept 350 MB resident after one large query, a served one 20-40 MB. Its background
            # threads return them after the decay (1 s) whatever the load. (A setting of the
            # process's allocator.)
            con.execute("SET allocator_background_threads = true").fetchall()
            self._set_memory_limit(con)
        except BaseException:
            con.close()
            raise
        return con

    def _set_memory_limit(self, con) -> None:
        """The store's memory limit on ``con``'s database (DuckDB's default when it has none)."""
        con.execute("RESET memory_limit" if self.memory_limit is None
                    else f"SET memory_limit = '{self.memory_limit}'").fetchall()

    @contextmanager
    def _in_use(self):
        """Pass the gate for one store operation (a read, or a transaction with what it does).
        A thread already inside one passes at once (a transaction's own reads, a nested
        transaction): it cannot wait for a recycle that waits for it."""
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            with self._gate:
                while self._recycling:
                    self._gate.wait()
                if self.con is None and not self.closed:  # a recycle could not open it again
                    self._reopen(tries_for=0.0)
                self._active += 1
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                with self._gate:
                    self._active -= 1
                    if self._active == 0:
                        self._gate.notify_all()

    def _exec(self, sql: str, params=None) -> list:
        """Run a statement to completion (DuckDB keeps a result pending until it is fetched)."""
        return self.con.execute(sql, params).fetchall()

    def _reader(self):
        """The connection a read runs on: inside a transaction its own (the read must see the
        transaction's writes); else this thread's cursor on the same database. DuckDB's MVCC lets
        a cursor read the last committed state while another thread writes, so a chart's read
        never queues behind the pipeline's write transactions (a lock shared with them let a
        busy writer starve readers for tens of seconds)."""
        if self._tx_thread == threading.get_ident():
            return self.con
        cursor = getattr(self._readers, "con", None)
        if cursor is None or self._readers.generation != self.generation:  # none, or closed
            with self._cursors_lock:
                cursor = self.con.cursor()
                self.reader_cursors.add(cursor)
            cursor.execute("SET TimeZone = 'UTC'").fetchall()
            self._readers.con, self._readers.generation = cursor, self.generation
        return cursor

    def _read_rows(self, sql: str, params=None) -> list:
        with self._in_use():
            return self._reader().execute(sql, params).fetchall()

    # schema ----------------------------------------------------------------------------------
    def _migrate(self) -> None:
        self._exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "version INTEGER PRIMARY KEY, description VARCHAR, "
                         "applied_at TIMESTAMPTZ DEFAULT now())")
        current = self._exec("SELECT coalesce(max(version), 0) FROM schema_migrations"
                                   )[0][0]
        for version, description, statements in migrations.pending(current):
            with self.transaction():
                for sql in migrations.render(DIALECT, statements):
                    self._exec(sql)
                self._exec("INSERT INTO schema_migrations (version, description) VALUES (?, ?)",
                                 [version, description])

    def schema_version(self) -> int:
        return self._read_rows("SELECT max(version) FROM schema_migrations")[0][0]

    # transactions ----------------------------------------------------------------------------
    @contextmanager
    def transaction(self):
        with self._in_use(), self._lock:
            if self._tx_depth:  # nested: the outer transaction decides
                self._tx_depth += 1
                try:
                    yield self
                finally:
                    self._tx_depth -= 1
                return
            self._exec("BEGIN TRANSACTION")
            self._tx_depth = 1
            self._tx_thread = threading.get_ident()
            try:
                yield self
            except BaseException:
                self._exec("ROLLBACK")
                self._registry = None
                raise
            else:
                self._exec("COMMIT")
            finally:
                self._tx_depth = 0
                self._tx_thread = None

    # instruments ----------------------------------------------------------------------------
    def add_instrument(self, instrument: Instrument) -> None:
        with self.transaction():
            self._exec(
                "INSERT OR REPLACE INTO instruments VALUES (?, ?, ?, ?, ?, ?)",
                [instrument.symbol, instrument.exchange, instrument.asset_class,
                 instrument.tick_size, instrument.point_value, str(instrument.session)])
            self._registry = None

    def instruments(self) -> InstrumentRegistry:
        if self._registry is not None:
            return self._registry
        rows = self._read_rows(
            "SELECT symbol, tick_size, exchange, asset_class, point_value, session "
            "FROM instruments ORDER BY symbol")
        self._registry = InstrumentRegistry.from_rows(rows)
        return self._registry

    # writes ----------------------------------------------------------------------------------
    def write_trades(self, symbol: str, trades: pd.DataFrame) -> int:
        inst = self.instrument(symbol)
        df = frames.clean_trades(trades, inst.tick_size)
        if df.empty:
            return 0
        lo, hi = df["ts"].iloc[0], df["ts"].iloc[-1]
        incoming = frames.to_arrow(df)
        with self.transaction():
            self.con.register("incoming", incoming)
            try:
                overlap = self._exec(
                    "SELECT count(*) FROM trades WHERE symbol = ? AND ts >= ? AND ts <= ?",
                    [symbol, lo, hi])[0][0]
                select, params = "SELECT ?, ts, price, size, side, trade_id FROM incoming", [symbol]
                if overlap:  # keep only trades not stored yet
                    select += (" WHERE NOT EXISTS (SELECT 1 FROM trades t WHERE t.symbol = ? "
                               "AND t.ts >= ? AND t.ts <= ? AND t.ts = incoming.ts "
                               "AND t.trade_id = incoming.trade_id)")
                    params += [symbol, lo, hi]
                added = self._exec(f"INSERT INTO trades {select}", params)[0][0]
            finally:
                self.con.unregister("incoming")
            if overlap and added:
                self._refresh_rollups(symbol, inst.tick_size, lo, hi)
            elif added:
                self._write_rollups(symbol, inst, df, lo, hi)
        return added

    def _write_rollups(self, symbol: str, inst: Instrument, df: pd.DataFrame, lo, hi) -> None:
        """Rollups of a batch that was all new: computed from the batch in memory; the first and
        last minute are recomputed in SQL when other stored trades share them."""
        bars, cells = minute_rollups(df, inst)
        a, b = lo.floor("min"), hi.floor("min") + pd.Timedelta(minutes=1)
        shared = self._exec(
            "SELECT count(*) FROM trades WHERE symbol = ? AND "
            "((ts >= ? AND ts < ?) OR (ts > ? AND ts < ?))", [symbol, a, lo, hi, b])[0][0]
        # the first and last minute, recomputed in SQL when shared, are not written twice: each
        # write to the keyed market_data grows DuckDB's memory for good (~1.4 kB a statement
        # in DuckDB 2.0.1), and a live batch of seconds usually lies in one shared minute
        ends = sorted({lo.floor("min"), hi.floor("min")}) if shared else []
        bars = bars[~bars["ts"].isin(ends)]
        cells = cells[~cells["ts"].isin(ends)]
        self._exec("DELETE FROM footprint WHERE symbol = ? AND ts >= ? AND ts < ?", [symbol, a, b])
        for table, frame in (("market_data", bars), ("footprint", cells)):
            if frame.empty:
                continue
            self.con.register("rollup", frames.to_arrow(frame))
            try:
                verb = "INSERT OR REPLACE" if table == "market_data" else "INSERT"
                self._exec(f"{verb} INTO {table} SELECT ?, * FROM rollup", [symbol])
            finally:
                self.con.unregister("rollup")
        for minute in ends:
            self._refresh_rollups(symbol, inst.tick_size, minute, minute)

    def _refresh_rollups(self, symbol: str, tick_size: float, lo, hi) -> None:
        """Recompute the base bars and footprint cells of the minutes ``[lo, hi]`` touches."""
        a = lo.floor("min")
        b = hi.floor("min") + pd.Timedelta(minutes=1)
        minute = "time_bucket(INTERVAL '1 minute', ts)"
        params = [symbol, a, b]
        rng = "symbol = ? AND ts >= ? AND ts < ?"
        self._exec(f"""
            INSERT OR REPLACE INTO market_data
            SELECT symbol, {minute} AS m,
                   arg_min(price, (ts, trade_id)), max(price), min(price),
                   arg_max(price, (ts, trade_id)), sum(size),
                   sum(CASE WHEN side = 1 THEN size ELSE 0 END),
                   sum(CASE WHEN side = -1 THEN size ELSE 0 END),
                   count(*), NULL
            FROM trades WHERE {rng} GROUP BY symbol, m""", params)
        self._exec(f"DELETE FROM footprint WHERE {rng}", params)
        self._exec(f"""
            INSERT INTO footprint
            SELECT symbol, {minute} AS m, CAST(round(price / {float(tick_size)!r}) AS BIGINT) AS tick,
                   sum(size), sum(CASE WHEN side = 1 THEN size ELSE 0 END),
                   sum(CASE WHEN side = -1 THEN size ELSE 0 END), count(*)
            FROM trades WHERE {rng} GROUP BY symbol, m, tick""", params)

    def write_bars(self, symbol: str, bars: pd.DataFrame, seconds: int | None = None) -> int:
        if seconds is None:  # bars of at most a minute, of no stated timeframe: as 1-minute bars
            return self._write_received(symbol, frames.to_minutes(frames.clean_bars(bars)), 60)
        seconds = frames.check_bar_seconds(seconds)
        return self._write_received(symbol, frames.clean_received_bars(bars), seconds)

    def _write_received(self, symbol: str, df: pd.DataFrame, seconds: int) -> int:
        """Store received bars (one per open time) and roll up the minutes they cover."""
        self.instrument(symbol)
        if df.empty:
            return 0
        incoming = frames.to_arrow(df)
        cols = ", ".join(frames.STORED_BAR_COLUMNS)
        with self.transaction():
            self.con.register("incoming", incoming)
            try:
                self._exec(f"INSERT OR REPLACE INTO external_bars (symbol, seconds, {cols}) "
                           f"SELECT ?, ?, {cols} FROM incoming", [symbol, seconds])
            finally:
                self.con.unregister("incoming")
            if rolled_up(seconds):
                a = df["ts"].iloc[0].floor("min")
                b = df["ts"].iloc[-1].floor("min") + pd.Timedelta(minutes=1)
                rows = minutes_from_external_sql(
                    DIALECT, "symbol = ? AND ts >= ? AND ts < ?", "?", *_FIRST_LAST)
                self._exec(f"INSERT OR REPLACE INTO market_data SELECT ?, * FROM ({rows})",
                           [symbol, symbol, a, b, symbol])
        return len(df)

    def _append(self, table: str, symbol: str, df: pd.DataFrame) -> int:
        self.instrument(symbol)
        if df.empty:
            return 0
        incoming = frames.to_arrow(df)
        cols = ", ".join(df.columns)
        with self.transaction():
            self.con.register("incoming", incoming)
            try:
                self._exec(f"INSERT INTO {table} (symbol, {cols}) SELECT ?, {cols} FROM incoming",
                                 [symbol])
            finally:
                self.con.unregister("incoming")
        return len(df)

    def write_depth(self, symbol: str, depth: pd.DataFrame) -> int:
        depth = frames.clean_depth(depth)
        if depth.empty:
            return self._append("depth", symbol, depth)
        with self.transaction():
            params = [symbol]
            where = self._range("ts", *frames.depth_span(depth), params)
            stored = self._query(f"SELECT DISTINCT ts FROM depth WHERE symbol = ?{where}", params)
            return self._append("depth", symbol, frames.new_snapshots(depth, stored["ts"]))

    def write_liquidations(self, symbol: str, liquidations: pd.DataFrame) -> int:
        return self._append("liquidations", symbol, frames.clean_liquidations(liquidations))

    # API keys --------------------------------------------------------------------------------
    def add_api_key(self, row: dict) -> None:
        with self.transaction():
            self._exec(f"INSERT INTO api_keys ({', '.join(API_KEY_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(API_KEY_COLUMNS))})",
                       [row.get(c) for c in API_KEY_COLUMNS])

    def api_keys(self) -> list[dict]:
        rows = self._read_rows(f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys "
                               "ORDER BY created_at, key_id")
        return [dict(zip(API_KEY_COLUMNS, r)) for r in rows]

    def revoke_api_key(self, name: str, at) -> int:
        with self.transaction():
            return self._exec("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND "
                              "revoked_at IS NULL", [at, name])[0][0]

    # reads -----------------------------------------------------------------------------------
    def _query(self, sql: str, params) -> pd.DataFrame:
        with self._in_use():
            return self._reader().execute(sql, params).fetch_df()

    @staticmethod
    def _range(col: str, start, end, params: list) -> str:
        where = ""
        if start is not None:
            where += f" AND {col} >= ?"
            params.append(start)
        if end is not None:
            where += f" AND {col} < ?"
            params.append(end)
        return where

    def _rows(self, table: str, columns, symbol, start, end, last=None, order="ts") -> pd.DataFrame:
        start, end = frames.bounds(start, end)
        params = [symbol]
        where = self._range("ts", start, end, params)
        cols = ", ".join(columns)
        sql = f"SELECT {cols} FROM {table} WHERE symbol = ?{where} ORDER BY {order}"
        if last is not None:
            sql = (f"SELECT * FROM (SELECT {cols} FROM {table} WHERE symbol = ?{where} "
                   f"ORDER BY {order.replace(',', ' DESC,')} DESC LIMIT {int(last)}) ORDER BY {order}")
        return self._query(sql, params)

    def trades(self, symbol, start=None, end=None, last=None) -> pd.DataFrame:
        df = self._rows("trades", frames.LAYOUTS["trades"], symbol, start, end, last, "ts, trade_id")
        return frames.finish(df, frames.LAYOUTS["trades"])

    def depth(self, symbol, start=None, end=None) -> pd.DataFrame:
        df = self._rows("depth", frames.LAYOUTS["depth"], symbol, start, end, order="ts, side, tick")
        return frames.finish(df, frames.LAYOUTS["depth"])

    def liquidations(self, symbol, start=None, end=None) -> pd.DataFrame:
        df = self._rows("liquidations", frames.LAYOUTS["liquidations"], symbol, start, end)
        return frames.finish(df, frames.LAYOUTS["liquidations"])

    def bars(self, symbol, spec="1m", start=None, end=None, last=None,
             source=None) -> pd.DataFrame:
        spec = check_time_spec(spec)
        external = check_source(source)
        session = self.instrument(symbol).session
        start, end = frames.bounds(start, end)
        b = bucket_expr(DIALECT, spec, session)
        lo, hi = widen(spec, start, end)
        params = [symbol]
        if external:
            where = "symbol = ?" + self._range("ts", lo, hi, params)
            inner = external_bars_sql(DIALECT, spec, session, where, *_FIRST_LAST)
        elif spec == BASE_SPEC:  # the rollup itself
            inner = f"""
                SELECT ts AS bucket, open, high, low, close, volume, ask_volume, bid_volume,
                       trades, open_interest
                FROM market_data WHERE symbol = ?{self._range("ts", start, end, params)}"""
        elif reads_rollups(spec):
            inner = f"""
                SELECT {b} AS bucket, arg_min(open, ts) AS open, max(high) AS high,
                       min(low) AS low, arg_max(close, ts) AS close, sum(volume) AS volume,
                       sum(ask_volume) AS ask_volume, sum(bid_volume) AS bid_volume,
                       sum(trades) AS trades, arg_max(open_interest, ts) AS open_interest
                FROM market_data WHERE symbol = ?{self._range("ts", lo, hi, params)}
                GROUP BY bucket"""
        else:
            inner = f"""
                SELECT {b} AS bucket, arg_min(price, (ts, trade_id)) AS open, max(price) AS high,
                       min(price) AS low, arg_max(price, (ts, trade_id)) AS close,
                       sum(size) AS volume,
                       sum(CASE WHEN side = 1 THEN size ELSE 0 END) AS ask_volume,
                       sum(CASE WHEN side = -1 THEN size ELSE 0 END) AS bid_volume,
                       count(*) AS trades, CAST(NULL AS DOUBLE) AS open_interest
                FROM trades WHERE symbol = ?{self._range("ts", lo, hi, params)}
                GROUP BY bucket"""
        outer = self._range("bucket", start, end, params)
        sql = f"SELECT bucket AS ts, * EXCLUDE (bucket) FROM ({inner}) WHERE true{outer}"
        if last is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY ts DESC LIMIT {int(last)}) ORDER BY ts"
        else:
            sql += " ORDER BY ts"
        out = frames.finish(self._query(sql, params), frames.LAYOUTS["bars"])
        if external and out.empty:  # nothing, or only bars too long for the spec?
            params = [symbol]
            where = self._range("ts", lo, hi, params)
            finest = self._read_rows(
                f"SELECT min(seconds) FROM external_bars WHERE symbol = ?{where}", params)[0][0]
            if finest is not None:
                raise ModelError(too_fine(spec, finest, symbol))
        return out

    def footprint(self, symbol, spec="1m", start=None, end=None) -> pd.DataFrame:
        spec = check_time_spec(spec)
        inst = self.instrument(symbol)
        start, end = frames.bounds(start, end)
        b = bucket_expr(DIALECT, spec, inst.session)
        lo, hi = widen(spec, start, end)
        params = [symbol]
        if reads_rollups(spec):
            inner = f"""
                SELECT {b} AS bucket, tick, sum(volume) AS volume, sum(ask_volume) AS ask_volume,
                       sum(bid_volume) AS bid_volume, sum(trades) AS trades
                FROM footprint WHERE symbol = ?{self._range("ts", lo, hi, params)}
                GROUP BY bucket, tick"""
        else:
            inner = f"""
                SELECT {b} AS bucket,
                       CAST(round(price / {float(inst.tick_size)!r}) AS BIGINT) AS tick,
                       sum(size) AS volume,
                       sum(CASE WHEN side = 1 THEN size ELSE 0 END) AS ask_volume,
                       sum(CASE WHEN side = -1 THEN size ELSE 0 END) AS bid_volume,
                       count(*) AS trades
                FROM trades WHERE symbol = ?{self._range("ts", lo, hi, params)}
                GROUP BY bucket, tick"""
        outer = self._range("bucket", start, end, params)
        sql = (f"SELECT bucket AS ts, * EXCLUDE (bucket) FROM ({inner}) WHERE true{outer} "
               "ORDER BY ts, tick")
        return frames.finish(self._query(sql, params), frames.LAYOUTS["footprint"])

    def memory(self) -> dict[str, int]:
        """DuckDB's own accounting of the memory it holds, bytes by kind (``duckdb_memory()``:
        ``BASE_TABLE`` cached blocks of the file, ``IN_MEMORY_TABLE`` rows not yet
        checkpointed, ``ART_INDEX``...; what it allocates outside its buffer manager is not in
        it); kinds holding nothing are left out."""
        rows = self._read_rows("SELECT tag, memory_usage_bytes FROM duckdb_memory() "
                               "WHERE memory_usage_bytes > 0")
        return {tag: int(n) for tag, n in rows}

    def eviction_queues(self) -> dict[str, tuple[int, int]]:
        """DuckDB's buffer eviction queues: (nodes, dead nodes) by queue kind. A dead node (a
        block used again since, or gone) still holds its block's bookkeeping until the queue is
        purged, outside ``memory()``'s accounting."""
        rows = self._read_rows("SELECT queue_type, sum(approximate_size), sum(dead_nodes) "
                               "FROM duckdb_eviction_queues() GROUP BY ALL")
        return {kind: (int(n), int(dead)) for kind, n, dead in rows}

    # recycling ---------------------------------------------------------------------------------
    def recycle(self, wait: float = RECYCLE_WAIT_S) -> Recycled | None:
        """Close the database and open it again in place: what DuckDB keeps allocated for the
        life of an instance (its eviction queues' dead nodes, the blocks they keep, the file's
        cache; a few MB an hour in a served store) is given back. Waits for the reads and
        transactions in flight, holds new ones back until the new instance is open (they then
        run on it) and returns what it cost; None when it did not happen: asked from inside a
        store operation of this thread (closing would break it), the operations in flight did
        not end within ``wait`` s, the store is in memory (closing it loses it) or closed. If
        another process takes the file between close and open, it tries again for
        ``REOPEN_TRIES_S``, then raises a ``StoreError`` saying so; every later operation
        tries to open it again, and fails with that error until it can."""
        if getattr(self._held, "depth", 0) or self.path == ":memory:" or self.closed:
            return None
        at, held = time.monotonic(), time.perf_counter()
        with self._alone(wait) as alone:
            if not alone:
                return None
            drained = time.perf_counter()
            with self._lock, self._cursors_lock:
                if self.closed:  # (closed meanwhile)
                    return None
                for cursor in list(self.reader_cursors):
                    cursor.close()
                if self.con is not None:
                    self.con.close()  # checkpoints what the WAL holds
                self.con = None
            closed = time.perf_counter()
            self._reopen(REOPEN_TRIES_S)
            done = time.perf_counter()
        got = Recycled(at=at, held_s=done - held, waited_s=drained - held,
                       close_s=closed - drained, open_s=done - closed)
        self.recycles.append(got)
        return got

    def drop_cache(self, wait: float = RECYCLE_WAIT_S) -> float | None:
        """Evict what DuckDB keeps cached; the seconds reads and writes were held back, or None
        when it did not happen (as ``recycle``; and for a store in memory, whose blocks are its
        data). DuckDB keeps every block of the file it has read until its memory limit is
        reached (80% of the machine's memory by default), so a served store's cache grows with
        what it has read (~4 MB a simulated hour of a busy market, blocks read once or twice and
        never again), and its eviction queues keep a node for every buffer it unpinned until one
        holds ~33,000 (~9 MB). Lowering the limit to 1 MB makes DuckDB evict every buffer no
        operation holds, walking its queues, which drops their dead nodes; the store's limit is
        then set back. Evicted blocks of the file are read again when needed; the few buffers
        that are not in the file (~0.5 MB) go to DuckDB's temporary directory. It takes 5-30 ms,
        with no operation of the store in flight (one could fail for want of memory at that
        limit)."""
        if getattr(self._held, "depth", 0) or self.path == ":memory:" or self.closed:
            return None
        held = time.perf_counter()
        with self._alone(wait) as alone:
            if not alone:
                return None
            with self._lock:
                if self.con is None or self.closed:
                    return None
                try:
                    self.con.execute("SET memory_limit = '1MB'").fetchall()
                except duckdb.OutOfMemoryException:
                    pass  # (more is pinned: what was not has been evicted)
                finally:
                    self._set_memory_limit(self.con)
        self.cache_drops.append(time.perf_counter() - held)
        return self.cache_drops[-1]

    @contextmanager
    def _alone(self, wait: float):
        """Hold new store operations back and wait up to ``wait`` s for those in flight: yields
        True with none in flight (the gate's lock held, so a thread that comes waits), False
        when they did not end in time or another thread holds them back already."""
        with self._gate:
            if self._recycling:  # another thread does it now
                yield False
                return
            self._recycling = True
            try:
                yield self._gate.wait_for(lambda: self._active == 0, timeout=wait)
            finally:
                self._recycling = False
                self._gate.notify_all()

    def _reopen(self, tries_for: float) -> None:
        """Open the file again (the gate's lock held, nothing in flight), trying for
        ``tries_for`` s while another process holds it; a ``StoreError`` after that."""
        give_up = time.monotonic() + tries_for
        pause = 0.05
        while True:
            try:
                self.con = self._connect()
            except StoreError as exc:
                if time.monotonic() + pause > give_up:
                    raise StoreError(
                        f"DuckDB store {self.path}: another process took the file while this "
                        f"one reopened it to give memory back ({exc}); stop that process: "
                        "this one opens the file again at its next store operation") from exc
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            else:
                self.generation += 1
                return

    def close(self) -> None:
        with self._lock, self._cursors_lock:
            self.closed = True  # (a recycle after it must not open the file again)
            for cursor in list(self.reader_cursors):
                cursor.close()
            if self.con is not None:
                self.con.close()


@dataclass(frozen=True)
class Recycled:
    """What one ``DuckDBStore.recycle`` cost, seconds: new operations were held back for
    ``held_s``: waiting for those in flight (``waited_s``), closing (``close_s``, with its
    checkpoint) and opening again (``open_s``); it began at ``at`` (``time.monotonic()``)."""
    at: float
    held_s: float
    waited_s: float
    close_s: float
    open_s: float


def duckdb_allocator() -> dict[str, int]:
    """What DuckDB's own jemalloc holds in this process, bytes: ``allocated`` (in use, DuckDB's
    buffers and its other structures) and ``resident`` (pages in memory: also freed pages not
    yet given back); empty where DuckDB is built without jemalloc. Read through the
    ``duckdb_je_mallctl`` its Linux builds export."""
    try:
        je = ctypes.CDLL(duckdb._duckdb.__file__)
        mallctl = je.duckdb_je_mallctl
    except (AttributeError, OSError):
        return {}
    one, size = ctypes.c_uint64(1), ctypes.c_size_t(8)
    mallctl(b"epoch", ctypes.byref(one), ctypes.byref(size), ctypes.byref(one), size)  # refresh
    out = {}
    for key in ("allocated", "resident"):
        value, size = ctypes.c_uint64(0), ctypes.c_size_t(8)
        if mallctl(f"stats.{key}".encode(), ctypes.byref(value), ctypes.byref(size), None,
                   0) == 0:
            out[key] = value.value
    return out


_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def open_duckdb(rest: str, memory_limit: str | None = None) -> DuckDBStore:
    """``rest`` is what follows ``duckdb://`` in the URL: ``/path`` or ``:memory:``, and
    optionally ``?memory_limit=512MB`` (DuckDB's own cap on its buffers and cache; without it
    ``memory_limit`` here, else DuckDB's default of 80% of the machine's memory, which the cache
    of a growing file in a long-running process creeps towards)."""
    rest, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    memory_limit = options.pop("memory_limit", memory_limit)
    if options:
        raise StoreError(f"store URL duckdb://{rest}: unknown option {sorted(options)[0]!r}; "
                         "a DuckDB store takes memory_limit (e.g. ?memory_limit=512MB)")
    if memory_limit is not None and not _SIZE.fullmatch(memory_limit.strip()):
        raise StoreError(f"store URL duckdb://{rest}: memory_limit={memory_limit!r} is not a "
                         "size; write it as e.g. 512MB or 2GB")
    memory_limit = None if memory_limit is None else memory_limit.strip()
    if rest in (":memory:", "/:memory:"):
        return DuckDBStore(":memory:", memory_limit)
    if not rest.startswith("/"):
        raise ModelError(f"store URL duckdb://{rest}: use duckdb:///path/to/file.duckdb")
    return DuckDBStore(rest[1:] if rest.startswith("//") else rest, memory_limit)
