"""The shared store: PostgreSQL through an asyncpg pool, with TimescaleDB features when available.

URL: ``postgresql://user[:password]@host:port/db[?option=value&...]``. These options are read
(and stripped) by the store; any other query option goes to asyncpg (``sslmode``...):

* ``timescaledb=auto|on|off`` -- ``auto`` (default) uses TimescaleDB when the extension exists in
  the database or can be created there (the server must preload it); ``on`` requires it; ``off``
  keeps plain tables even when it is installed.
* ``compress_after=7d`` -- TimescaleDB: chunks older than this move to the columnstore (a
  columnstore policy on every hypertable; 7 days when the database has none yet; ``off`` removes
  it).
* ``retention=90d`` -- TimescaleDB: raw trades and depth older than this are dropped, chunk by
  chunk, by a retention policy (``off`` removes it; absent leaves the database as it is). Rollups
  (bars, footprint) are kept. On plain PostgreSQL the option is ignored with a logged warning: a
  DELETE on every write would make a historical import delete what it had just stored.

Durations are ``<n>s|m|h|d|w``. The schema is ``data_access.migrations`` (dialect ``postgres``),
recorded in ``schema_migrations``; the TimescaleDB steps (hypertables, columnstore, the
``market_data_1h`` continuous aggregate) are versioned separately in ``timescale_migrations`` so
they apply whenever the extension becomes available. Every start-up runs under an advisory lock,
so processes starting together do not race.

Writes are binary ``COPY`` of numpy-encoded rows; reads are binary ``COPY`` decoded by numpy.
``bars("1h")`` (and longer whole-hour intraday specs) read the continuous aggregate; a write below
its watermark refreshes the hours it touched once the write has committed, so the aggregate
equals aggregating ``market_data`` (another process may see the old hours in between).
TimescaleDB 2.18 or later is needed (the columnstore API).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import numpy as np
import pandas as pd

from tradeflow.model import Instrument, InstrumentRegistry, ModelError, Session

from . import frames, migrations
from .sql import bucket_expr, reads_rollups, widen
from .store import BASE_SPEC, AsyncStore, StoreError, check_time_spec

DIALECT = "postgres"
log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# URL options

OFF = "off"
DEFAULT_COMPRESS_AFTER = "7 days"
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


@dataclass(frozen=True)
class Options:
    """The store's own URL options (intervals as PostgreSQL interval text)."""

    timescaledb: str = "auto"
    compress_after: str | None = None
    retention: str | None = None


def _interval(name: str, value: str) -> str:
    if value.strip().lower() in ("off", "none"):
        return OFF
    m = _DURATION.match(value)
    if not m or int(m.group(1)) == 0:
        raise StoreError(f"store URL option {name}={value!r}: use a duration such as 90d, 12h or "
                         "2w, or 'off'")
    return f"{int(m.group(1))} {_UNITS[m.group(2)]}"


@dataclass(frozen=True)
class Target:
    """Where the store connects: the DSN for asyncpg and a password-free description."""

    dsn: str
    url: str  # the URL without its password (store.url)
    where: str  # "host:port/db" for messages


def parse_url(url: str) -> tuple[Target, Options]:
    """Split a store URL into the asyncpg DSN and the store's options."""
    parts = urlsplit(str(url))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    mode = query.pop("timescaledb", "auto").strip().lower()
    if mode not in ("auto", "on", "off"):
        raise StoreError(f"store URL option timescaledb={mode!r}: use auto, on or off")
    opts = Options(
        timescaledb=mode,
        compress_after=_interval("compress_after", query.pop("compress_after"))
        if "compress_after" in query else None,
        retention=_interval("retention", query.pop("retention")) if "retention" in query else None,
    )
    rest = urlencode(query)
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    netloc = f"{parts.username}@" if parts.username else ""
    netloc += f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    public = urlunsplit(("postgresql", netloc, parts.path, _public_query(parts.query), ""))
    return Target(dsn, public, f"{host}:{port}{parts.path or '/'}"), opts


def _public_query(query: str) -> str:
    """The query string without anything that looks like a secret."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
             if "pass" not in k.lower() and "secret" not in k.lower()]
    return urlencode(pairs)


# --------------------------------------------------------------------------------------------
# Binary COPY: rows are encoded and decoded with numpy record dtypes, never one by one.

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = _SIGNATURE + bytes(8)  # flags 0, no header extension
_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's epoch, in Unix microseconds
_WIRE = {"ts": ">i8", "f8": ">f8", "i8": ">i8", "i2": ">i2"}
_NATIVE = {"ts": "int64", "f8": "float64", "i8": "int64", "i2": "int16"}
_CHUNK_ROWS = 1 << 16


def kind_of(column: str) -> str:
    """Wire type of a model column (everything not named here is a float)."""
    return {"ts": "ts", "side": "i2", "tick": "i8", "trades": "i8", "trade_id": "i8",
            "seq": "i8", "symbol": "text"}.get(column, "f8")


def _row_dtype(kinds, text_len: int = 0) -> np.dtype:
    fields = [("n", ">i2")]
    for i, k in enumerate(kinds):
        fields += [(f"l{i}", ">i4"), (f"v{i}", f"S{text_len}" if k == "text" else _WIRE[k])]
    return np.dtype(fields)


def _ts_us(values) -> np.ndarray:
    """Times as microseconds since PostgreSQL's epoch (floored, as the stores keep them)."""
    return pd.DatetimeIndex(values).as_unit("ns").asi8 // 1000 - _PG_EPOCH_US


def encode_rows(columns: dict[str, object], n: int):
    """Binary COPY data for ``n`` rows, in chunks; a ``symbol`` column is one string for all."""
    kinds = [kind_of(c) for c in columns]
    text = str(columns.get("symbol", "")).encode()
    dtype = _row_dtype(kinds, len(text))
    values = [text if k == "text" else (_ts_us(v) if k == "ts" else np.asarray(v))
              for k, v in zip(kinds, columns.values())]
    yield _HEADER
    for a in range(0, n, _CHUNK_ROWS):
        b = min(n, a + _CHUNK_ROWS)
        rows = np.empty(b - a, dtype)
        rows["n"] = len(kinds)
        for i, (k, v) in enumerate(zip(kinds, values)):
            rows[f"l{i}"] = len(text) if k == "text" else dtype[f"v{i}"].itemsize
            rows[f"v{i}"] = v if k == "text" else v[a:b]
        yield rows.tobytes()
    yield _TRAILER


async def copy_in(con, table: str, columns: dict[str, object], n: int) -> None:
    """COPY ``n`` rows (column name -> array, or the symbol string) into ``table``."""
    async def chunks():
        for chunk in encode_rows(columns, n):
            yield chunk
    await con.copy_to_table(table, source=chunks(), columns=list(columns), format="binary")


def decode_rows(data: bytes, columns) -> pd.DataFrame:
    """A frame of binary COPY output whose columns are all fixed-width and NOT NULL."""
    if not data.startswith(_SIGNATURE):
        raise StoreError("PostgreSQL sent COPY data in an unexpected format")
    start = len(_HEADER) + int.from_bytes(data[15:19], "big")
    kinds = [kind_of(c) for c in columns]
    dtype = _row_dtype(kinds)
    n, extra = divmod(len(data) - start - len(_TRAILER), dtype.itemsize)
    rows = np.frombuffer(data, dtype, count=n, offset=start)
    widths = [dtype[f"v{i}"].itemsize for i in range(len(kinds))]
    if extra or (rows["n"] != len(kinds)).any() or any(
            (rows[f"l{i}"] != w).any() for i, w in enumerate(widths)):
        raise StoreError("PostgreSQL sent a NULL or a column of unexpected width in a read")
    out = {}
    for i, (c, k) in enumerate(zip(columns, kinds)):
        v = rows[f"v{i}"].astype(_NATIVE[k])
        if k == "ts":
            v = pd.DatetimeIndex((v + _PG_EPOCH_US).view("datetime64[us]"), tz="UTC")
        out[c] = v
    return pd.DataFrame(out)


async def copy_out(con, sql: str, columns) -> pd.DataFrame:
    """Run ``sql`` through binary COPY and decode it (much faster than records for big reads)."""
    parts: list[bytes] = []

    async def sink(chunk):
        parts.append(chunk)
    await con.copy_from_query(sql, output=sink, format="binary")
    return decode_rows(b"".join(parts), columns)


# --------------------------------------------------------------------------------------------
# SQL pieces

_EPOCH = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
MINUTE = f"date_bin(INTERVAL '60 seconds', ts, {_EPOCH})"


def text_literal(value: str) -> str:
    """A safely quoted SQL string literal (reads inline their few values to use COPY)."""
    value = str(value)
    if "\x00" in value:
        raise ModelError(f"{value!r}: text cannot contain NUL characters")
    body = value.replace("'", "''")
    if "\\" in body:  # E'' reads the same whatever standard_conforming_strings says
        return "E'" + body.replace("\\", "\\\\") + "'"
    return f"'{body}'"


def ts_literal(ts: pd.Timestamp) -> str:
    # ceil: with microsecond rows, ts >= t and ts < t hold exactly when they hold for ceil(t)
    return f"'{ts.ceil('us').isoformat()}'::timestamptz"


def ts_range(col: str, start, end) -> str:
    """`` AND col >= start AND col < end`` for the sides that are given."""
    where = ""
    if start is not None:
        where += f" AND {col} >= {ts_literal(start)}"
    if end is not None:
        where += f" AND {col} < {ts_literal(end)}"
    return where


def tick_expr(tick_size: float) -> str:
    """Integer tick index of ``price``, rounding half away from zero exactly like DuckDB's
    ``round`` (PostgreSQL's float ``round`` rounds half to even)."""
    x = f"(price / {float(tick_size)!r}::float8)"
    return (f"CAST(CASE WHEN abs({x} - trunc({x})) = 0.5 THEN trunc({x}) + sign({x}) "
            f"ELSE round({x}) END AS BIGINT)")


_VOLUMES = """sum(size) AS volume,
    sum(CASE WHEN side = 1 THEN size ELSE 0 END) AS ask_volume,
    sum(CASE WHEN side = -1 THEN size ELSE 0 END) AS bid_volume,
    count(*) AS trades"""


def trade_bars(bucket: str, sym: str, times: str) -> str:
    """Bars of symbol ``sym`` (an SQL value) from its trades matching ``times``, by ``bucket``.

    Open and close are the prices of the first and last trade by ``(ts, trade_id)``: found by
    two index probes per bar rather than by ordering every trade (``array_agg(... ORDER BY)``
    was three times slower over two million trades), and the same with or without TimescaleDB.
    The symbol stays out of GROUP BY: it is fixed, and grouping on it cost a third more.
    """
    return f"""
        SELECT {sym}::text AS symbol, a.bucket, o.price AS open, a.high, a.low, c.price AS close,
               a.volume, a.ask_volume, a.bid_volume, a.trades
        FROM (SELECT {bucket} AS bucket, min(ts) AS t0, max(ts) AS t1,
                     max(price) AS high, min(price) AS low, {_VOLUMES}
              FROM trades WHERE symbol = {sym}{times} GROUP BY bucket) a
        CROSS JOIN LATERAL (SELECT price FROM trades t WHERE t.symbol = {sym} AND t.ts = a.t0
                            ORDER BY t.trade_id LIMIT 1) o
        CROSS JOIN LATERAL (SELECT price FROM trades t WHERE t.symbol = {sym} AND t.ts = a.t1
                            ORDER BY t.trade_id DESC LIMIT 1) c"""


def trade_cells(bucket: str, tick_size: float, sym: str, times: str) -> str:
    """Footprint cells of symbol ``sym`` from its trades matching ``times``."""
    return f"""
        SELECT {sym}::text AS symbol, {bucket} AS bucket, {tick_expr(tick_size)} AS tick,
               {_VOLUMES}
        FROM trades WHERE symbol = {sym}{times} GROUP BY bucket, tick"""


def descending(order: str) -> str:
    return ", ".join(f"{c.strip()} DESC" for c in order.split(","))


def first_last(timescaledb: bool, order: str = "ts"):
    """SQL makers for the first / last value by ``order`` (unique within a group), and the last
    non-NULL value. TimescaleDB's first()/last() (one ``order`` column) avoid sorting; plain
    PostgreSQL sorts. Both give the same answer: ``order`` has no ties."""
    if timescaledb:
        return (lambda v: f"first({v}, {order})", lambda v: f"last({v}, {order})",
                lambda v: f"last({v}, {order}) FILTER (WHERE {v} IS NOT NULL)")
    desc = descending(order)
    return (lambda v: f"(array_agg({v} ORDER BY {order}))[1]",
            lambda v: f"(array_agg({v} ORDER BY {desc}))[1]",
            lambda v: f"(array_agg({v} ORDER BY {desc}) FILTER (WHERE {v} IS NOT NULL))[1]")


def rollup_bars(first, last, last_value, bucket: str, source: str, where: str) -> str:
    """Bars aggregated from base bars (``market_data`` or the 1-hour aggregate)."""
    return f"""
        SELECT {bucket} AS bucket, {first('open')} AS open, max(high) AS high, min(low) AS low,
               {last('close')} AS close, sum(volume) AS volume, sum(ask_volume) AS ask_volume,
               sum(bid_volume) AS bid_volume, sum(trades)::bigint AS trades,
               {last_value('open_interest')} AS open_interest
        FROM {source} WHERE {where} GROUP BY bucket"""


_BAR_VALUES = ", ".join(frames.STORED_BAR_COLUMNS[1:-1])
_BAR_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in frames.STORED_BAR_COLUMNS[1:])

# --------------------------------------------------------------------------------------------
# TimescaleDB steps, versioned on their own (they need the extension, which may come later)

CAGG = "market_data_1h"
# the 1-hour aggregate, read like market_data (its bucket as ts; predicates reach inside)
HOURS = f"(SELECT symbol, bucket AS ts, {_BAR_VALUES}, open_interest FROM {CAGG}) hours"
CHUNKS = {"trades": "1 day", "depth": "1 day", "market_data": "7 days", "footprint": "7 days",
          "liquidations": "7 days"}
RETAINED = ("trades", "depth")  # raw data; rollups outlive it

TIMESCALE_MIGRATIONS: list[tuple[int, str, list[str]]] = [
    # no default (ts DESC) indexes: every read filters on symbol, and the keys and
    # (symbol, ts) indexes of migration 2 lead with it; another index only slows COPY
    (1, "hypertables", [
        f"SELECT create_hypertable('{t}', by_range('ts', INTERVAL '{i}'), "
        "create_default_indexes => false, migrate_data => true)" for t, i in CHUNKS.items()]),
    (2, "columnstore segmented by symbol, ordered by time", [
        f"ALTER TABLE {t} SET (timescaledb.enable_columnstore, timescaledb.segmentby = 'symbol', "
        "timescaledb.orderby = 'ts')" for t in CHUNKS]),
    # ts is unique per symbol in market_data, so first()/last() by ts are exact
    (3, "1-hour bars: a real-time continuous aggregate of market_data", [
        f"""CREATE MATERIALIZED VIEW {CAGG}
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT symbol, time_bucket(INTERVAL '1 hour', ts) AS bucket,
                   first(open, ts) AS open, max(high) AS high, min(low) AS low,
                   last(close, ts) AS close, sum(volume) AS volume,
                   sum(ask_volume) AS ask_volume, sum(bid_volume) AS bid_volume,
                   sum(trades)::bigint AS trades,
                   last(open_interest, ts) FILTER (WHERE open_interest IS NOT NULL)
                       AS open_interest
            FROM market_data GROUP BY symbol, time_bucket(INTERVAL '1 hour', ts)
            WITH NO DATA""",
        f"SELECT add_continuous_aggregate_policy('{CAGG}', start_offset => NULL, "
        "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour')",
    ]),
]

_LOCK_KEY = 0x7472_6164_6566_6C6F  # "tradeflo": the schema advisory lock (per database)


async def _apply(con, table: str, steps) -> int:
    """Apply the steps above the version recorded in ``table``; returns the version."""
    await con.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, "
                      "description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    current = await con.fetchval(f"SELECT coalesce(max(version), 0) FROM {table}")
    for version, description, statements in steps:
        if version <= current:
            continue
        for sql in statements:
            await con.execute(sql)
        await con.execute(f"INSERT INTO {table} (version, description) VALUES ($1, $2)",
                          version, description)
        current = version
    return current


async def _timescaledb_ready(con, mode: str) -> bool:
    """Whether to use TimescaleDB, creating the extension when it is allowed and possible."""
    if mode == OFF:
        return False
    if await con.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
        return True
    # creating it without the library preloaded kills the connection, so look first: a
    # preloaded library registers its timescaledb.* settings
    preloaded = await con.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name LIKE 'timescaledb.%') "
        "AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')")
    reason = "the server does not preload it (shared_preload_libraries = 'timescaledb')"
    if preloaded:
        try:
            async with con.transaction():  # a savepoint: a refusal leaves the setup usable
                await con.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            return True
        except asyncpg.PostgresError as exc:
            reason = f"CREATE EXTENSION timescaledb failed: {exc}"
    if mode == "on":
        raise StoreError(f"timescaledb=on but TimescaleDB is not available: {reason}")
    return False


async def _sync_policy(con, table: str, proc: str, key: str, want, default, add, remove) -> None:
    """Make ``table``'s ``proc`` policy match ``want`` (an interval, OFF, or None: keep what is
    there, adding ``default`` when there is nothing)."""
    current = await con.fetchval(
        "SELECT config->>$3 FROM timescaledb_information.jobs WHERE proc_name = $1 "
        "AND hypertable_name = $2 AND hypertable_schema = current_schema()", proc, table, key)
    if want is None:
        want = default if current is None else None
    if want is None or (want == OFF and current is None):
        return
    if current is not None and want != OFF and await con.fetchval(
            "SELECT $1::text::interval = $2::text::interval", current, want):
        return
    if current is not None:
        await con.execute(remove.format(table=table))
    if want != OFF:
        await con.execute(add.format(table=table, after=want))


async def _sync_policies(con, opts: Options) -> None:
    for table in CHUNKS:
        await _sync_policy(
            con, table, "policy_compression", "compress_after", opts.compress_after,
            DEFAULT_COMPRESS_AFTER,
            "CALL add_columnstore_policy('{table}', after => INTERVAL '{after}')",
            "CALL remove_columnstore_policy('{table}', if_exists => true)")
    for table in RETAINED:
        await _sync_policy(
            con, table, "policy_retention", "drop_after", opts.retention, None,
            "SELECT add_retention_policy('{table}', drop_after => INTERVAL '{after}')",
            "SELECT remove_retention_policy('{table}', if_exists => true)")


async def setup_schema(con, opts: Options) -> tuple[bool, bool]:
    """Migrate the database (one transaction, under the advisory lock). Returns whether the store
    uses TimescaleDB, and whether the 1-hour aggregate exists (it may, with timescaledb=off, from
    an earlier start; writes must then keep it fresh all the same)."""
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        timescaledb = await _timescaledb_ready(con, opts.timescaledb)
        core = [(v, d, migrations.render(DIALECT, s)) for v, d, s in migrations.MIGRATIONS]
        await _apply(con, "schema_migrations", core)
        if timescaledb:
            await _apply(con, "timescale_migrations", TIMESCALE_MIGRATIONS)
            await _sync_policies(con, opts)
        hourly = timescaledb or await con.fetchval("SELECT to_regclass($1) IS NOT NULL", CAGG)
    if not timescaledb:
        for name in ("retention", "compress_after"):
            if getattr(opts, name) not in (None, OFF):
                log.warning("store option %s ignored: it needs TimescaleDB, which this database "
                            "does not have", name)
    return timescaledb, hourly


# --------------------------------------------------------------------------------------------
# The store


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
    """

    def __init__(self, pool, target: Target, timescaledb: bool, hourly: bool, con=None):
        self._pool = pool
        self._target = target
        self._where = target.where
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
            raise StoreError(f"PostgreSQL at {self._where}: {type(exc).__name__}: {exc}") from exc

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
        if not self._hourly or not ranges:
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
        return InstrumentRegistry(
            Instrument(s, t, e, a, p, Session.parse(sess)) for s, t, e, a, p, sess in rows)

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
            df = frames.clean_trades(trades)
            if df.empty:
                return 0
            lo, hi = df["ts"].iloc[0], df["ts"].iloc[-1]
            columns = {"symbol": symbol, **{c: df[c] for c in frames.LAYOUTS["trades"]}}
            async with con.transaction():  # a savepoint inside transaction()
                added = await self._insert_trades(con, symbol, columns, len(df), lo, hi)
                if added:
                    await self._refresh_rollups(con, symbol, inst.tick_size, lo, hi)
            if added:
                await self._written(con, lo.floor("min"), hi.floor("min") + pd.Timedelta("1min"))
        return added

    async def _insert_trades(self, con, symbol, columns, n, lo, hi) -> int:
        """COPY straight into trades when none of the symbol's are stored in ``[lo, hi]``, else
        through a staging table and ``ON CONFLICT DO NOTHING``; returns rows new."""
        if not await self._stored_between(con, symbol, lo, hi):
            try:
                async with con.transaction():
                    await copy_in(con, "trades", columns, n)
                return n
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
        return int(status.rsplit(" ", 1)[1])

    @staticmethod
    async def _stored_between(con, symbol, lo, hi) -> bool:
        return await con.fetchval(
            "SELECT EXISTS (SELECT 1 FROM trades WHERE symbol = $1 AND ts >= $2 AND ts <= $3)",
            symbol, lo.to_pydatetime(), hi.to_pydatetime())

    async def _refresh_rollups(self, con, symbol: str, tick_size: float, lo, hi) -> None:
        """Recompute the base bars and footprint cells of the minutes ``[lo, hi]`` touches."""
        a = lo.floor("min").to_pydatetime()
        b = (hi.floor("min") + pd.Timedelta(minutes=1)).to_pydatetime()
        times = " AND ts >= $2 AND ts < $3"
        await con.execute(f"""
            INSERT INTO market_data (symbol, ts, {_BAR_VALUES}, open_interest)
            SELECT *, NULL::float8 FROM ({trade_bars(MINUTE, '$1', times)}) bars
            ON CONFLICT (symbol, ts) DO UPDATE SET {_BAR_UPDATE}""", symbol, a, b)
        await con.execute(f"DELETE FROM footprint WHERE symbol = $1{times}", symbol, a, b)
        # in key order, so that reading a range scans the heap sequentially (its server time
        # halved for a day of cells)
        await con.execute(f"""
            INSERT INTO footprint (symbol, ts, tick, volume, ask_volume, bid_volume, trades)
            {trade_cells(MINUTE, tick_size, '$1', times)} ORDER BY bucket, tick""", symbol, a, b)

    @_errors
    async def write_bars(self, symbol: str, bars: pd.DataFrame) -> int:
        async with self._connection() as con:
            await self._instrument(con, symbol)
            df = frames.clean_bars(bars)
            if df.empty:
                return 0
            # seq keeps the frame's order: the first of bars with equal times opens, the last closes
            columns = {"seq": np.arange(len(df)), **{c: df[c] for c in frames.STORED_BAR_COLUMNS}}
            first, last, last_value = first_last(False, "ts, seq")
            async with con.transaction():
                await con.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS bars_incoming (seq int8, ts timestamptz, "
                    "open float8, high float8, low float8, close float8, volume float8, "
                    "ask_volume float8, bid_volume float8, trades int8, open_interest float8)")
                await con.execute("TRUNCATE bars_incoming")
                await copy_in(con, "bars_incoming", columns, len(df))
                status = await con.execute(f"""
                    INSERT INTO market_data (symbol, ts, {_BAR_VALUES}, open_interest)
                    SELECT $1, {MINUTE} AS m, {first('open')}, max(high), min(low),
                           {last('close')}, sum(volume), sum(ask_volume), sum(bid_volume),
                           sum(trades)::bigint,
                           {last_value("nullif(open_interest, 'NaN')")}
                    FROM bars_incoming GROUP BY m
                    ON CONFLICT (symbol, ts) DO UPDATE SET {_BAR_UPDATE}""", symbol)
            ts = df["ts"]
            await self._written(con, ts.iloc[0].floor("min"), ts.iloc[-1].floor("min")
                                + pd.Timedelta("1min"))
        return int(status.rsplit(" ", 1)[1])

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
        return await self._append("depth", symbol, frames.clean_depth, depth)

    @_errors
    async def write_liquidations(self, symbol: str, liquidations: pd.DataFrame) -> int:
        return await self._append("liquidations", symbol, frames.clean_liquidations, liquidations)

    # reads -------------------------------------------------------------------------------------
    @staticmethod
    async def _read(con, sql: str, layout: str, columns=None) -> pd.DataFrame:
        df = await copy_out(con, sql, columns or frames.LAYOUTS[layout])
        return frames.finish(df, frames.LAYOUTS[layout])

    @staticmethod
    def _latest(sql: str, order: str, last) -> str:
        """``sql`` ordered by ``order``; with ``last``, only its ``last`` final rows."""
        if last is None:
            return f"{sql} ORDER BY {order}"
        return (f"SELECT * FROM ({sql} ORDER BY {descending(order)} LIMIT {int(last)}) q "
                f"ORDER BY {order}")

    async def _rows(self, table, symbol, start, end, last=None, order="ts") -> pd.DataFrame:
        start, end = frames.bounds(start, end)
        cols = ", ".join(frames.LAYOUTS[table])
        sql = (f"SELECT {cols} FROM {table} WHERE symbol = {text_literal(symbol)}"
               f"{ts_range('ts', start, end)}")
        async with self._connection() as con:
            return await self._read(con, self._latest(sql, order, last), table)

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
    async def bars(self, symbol, spec="1m", start=None, end=None, last=None) -> pd.DataFrame:
        spec = check_time_spec(spec)
        start, end = frames.bounds(start, end)
        async with self._connection() as con:
            inst = await self._instrument(con, symbol)
            sql = self._bars_sql(symbol, spec, inst.session, start, end)
            return await self._read(con, self._latest(sql, "bucket", last), "bars",
                                    frames.STORED_BAR_COLUMNS)

    def _bars_sql(self, symbol, spec, session, start, end) -> str:
        """Bars as ``bucket`` (open time) and the stored bar columns, without NULLs."""
        b = bucket_expr(DIALECT, spec, session)
        lo, hi = widen(spec, start, end)
        sym, times = text_literal(symbol), ts_range("ts", lo, hi)
        where = f"symbol = {sym}{times}"
        if spec == BASE_SPEC:  # the rollups are the answer
            inner = (f"SELECT ts AS bucket, {_BAR_VALUES}, open_interest FROM market_data "
                     f"WHERE {where}")
        elif reads_rollups(spec):
            source = HOURS if self._uses_1h(spec) else "market_data"
            inner = rollup_bars(*first_last(self.timescaledb), b, source, where)
        else:
            inner = (f"SELECT bucket, {_BAR_VALUES}, NULL::float8 AS open_interest "
                     f"FROM ({trade_bars(b, sym, times)}) t")
        return (f"SELECT bucket, {_BAR_VALUES}, coalesce(open_interest, 'NaN') FROM ({inner}) q "
                f"WHERE true{ts_range('bucket', start, end)}")

    @_errors
    async def footprint(self, symbol, spec="1m", start=None, end=None) -> pd.DataFrame:
        spec = check_time_spec(spec)
        start, end = frames.bounds(start, end)
        async with self._connection() as con:
            inst = await self._instrument(con, symbol)
            sql = self._footprint_sql(symbol, spec, inst, start, end)
            return await self._read(con, sql, "footprint")

    @staticmethod
    def _footprint_sql(symbol, spec, inst, start, end) -> str:
        b = bucket_expr(DIALECT, spec, inst.session)
        lo, hi = widen(spec, start, end)
        sym, times = text_literal(symbol), ts_range("ts", lo, hi)
        where = f"symbol = {sym}{times}"
        sums = "volume, ask_volume, bid_volume, trades"
        if spec == BASE_SPEC:
            inner = f"SELECT ts AS bucket, tick, {sums} FROM footprint WHERE {where}"
        elif reads_rollups(spec):
            inner = (f"SELECT {b} AS bucket, tick, sum(volume) AS volume, "
                     "sum(ask_volume) AS ask_volume, sum(bid_volume) AS bid_volume, "
                     f"sum(trades)::bigint AS trades FROM footprint WHERE {where} "
                     "GROUP BY bucket, tick")
        else:
            inner = trade_cells(b, inst.tick_size, sym, times)
        return (f"SELECT bucket, tick, {sums} FROM ({inner}) q "
                f"WHERE true{ts_range('bucket', start, end)} ORDER BY bucket, tick")

    async def close(self) -> None:
        if self._con is not None:  # a transaction's store: the transaction owns the connection
            return
        try:
            await asyncio.wait_for(self._pool.close(), timeout=10)
        except asyncio.TimeoutError:
            self._pool.terminate()


async def connect(url: str) -> PostgresStore:
    """Open the store at ``url`` (see the module docstring for the options), migrating it."""
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
    return PostgresStore(pool, target, timescaledb, hourly)
