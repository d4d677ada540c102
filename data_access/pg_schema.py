"""The PostgreSQL store's schema set-up: ``setup_schema`` applies ``data_access.migrations``
(dialect ``postgres``, recorded in ``schema_migrations``) and, when TimescaleDB is in use, the
``TIMESCALE_MIGRATIONS`` (hypertables, columnstore, the ``market_data_1h`` continuous aggregate
``CAGG``; versioned separately in ``timescale_migrations`` so that they apply whenever the
extension becomes available), then makes the columnstore and retention policies match the URL
options. Every start-up runs under an advisory lock, so processes starting together do not race.
TimescaleDB 2.18 or later is needed (the columnstore API)."""
from __future__ import annotations

import asyncpg

from . import migrations
from .pg_url import OFF, Options
from .store import StoreError

DIALECT = "postgres"
CAGG = "market_data_1h"
CHUNKS = {"trades": "1 day", "depth": "1 day", "market_data": "7 days", "footprint": "7 days",
          "liquidations": "7 days"}
RETAINED = ("trades", "depth")  # raw data; rollups outlive it
DEFAULT_COMPRESS_AFTER = "7 days"

# TimescaleDB steps, versioned on their own (they need the extension, which may come later)
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
    (4, "received bars: a hypertable, columnstore segmented by symbol and timeframe", [
        "SELECT create_hypertable('external_bars', by_range('ts', INTERVAL '7 days'), "
        "create_default_indexes => false, migrate_data => true)",
        "ALTER TABLE external_bars SET (timescaledb.enable_columnstore, "
        "timescaledb.segmentby = 'symbol, seconds', timescaledb.orderby = 'ts')",
    ]),
]
COMPRESSED = (*CHUNKS, "external_bars")  # tables under the compression policy

_LOCK_KEY = 0x7472_6164_6566_6C6F  # "tradeflo": the schema advisory lock (per database)


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
    return timescaledb, hourly


async def _apply(con, table: str, steps) -> None:
    """Apply the steps above the version recorded in ``table``, recording each."""
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


async def _sync_policies(con, opts: Options) -> None:
    for table in COMPRESSED:
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


async def _sync_policy(con, table: str, proc: str, key: str, want, default, add, remove) -> None:
    """Make ``table``'s ``proc`` policy match ``want`` (an interval, OFF, or None: keep what is
    there, adding ``default`` when there is nothing)."""
    current = await con.fetchval(
        "SELECT config->>$3 FROM timescaledb_information.jobs WHERE proc_name = $1 "
        "AND hypertable_name = $2 AND hypertable_schema = current_schema()", proc, table, key)
    if want is None:
        if current is not None or default is None:
            return
        want = default
    if current is not None:
        if want != OFF and await con.fetchval(
                "SELECT $1::text::interval = $2::text::interval", current, want):
            return
        await con.execute(remove.format(table=table))
    if want != OFF:
        await con.execute(add.format(table=table, after=want))
