"""What only the PostgreSQL store does: migrations under a lock, TimescaleDB hypertables,
columnstore, policies and the 1-hour continuous aggregate, the two COPY paths, transactions
bound to one connection. The behaviour every store shares is in test_store_contract.py."""
import asyncio
import logging
import socket

import asyncpg
import numpy as np
import pandas as pd
import pytest

from data_access import StoreError, migrations, open_store
from data_access import postgres_store as pgs
from data_access.postgres_store import connect
from tradeflow.model import Instrument, ModelError

ES = Instrument("ES", 0.25, "CME", "future", 50.0, "America/Chicago 08:30-15:15,17:00-16:00")
HYPERTABLES = {"trades", "depth", "market_data", "footprint", "liquidations"}
RECEIVED = "external_bars"  # segmented by symbol and timeframe


def run(coro):
    return asyncio.run(coro)


def make_trades(n=4000, start="2024-03-04 22:00", hours=48, seed=1):
    """Trades over two days with several trades per microsecond (ids break the ties)."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, hours * 3600 * 10**6, n))
    offsets[1::5] = offsets[0::5][: len(offsets[1::5])]
    offsets.sort()
    frame = pd.DataFrame({
        "ts": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(offsets, unit="us"),
        "price": (20000 + np.cumsum(rng.integers(-2, 3, n))) * 0.25,
        "size": rng.integers(1, 20, n).astype(float),
        "side": rng.choice([-1, 0, 1], n).astype("int8"),
    })
    frame["trade_id"] = frame.groupby("ts").cumcount()
    return frame


async def opened(url):
    store = await connect(url)
    await store.add_instrument(ES)
    return store


async def open_close(url) -> bool:
    """Connect (migrating) and close; whether the store uses TimescaleDB."""
    store = await connect(url)
    await store.close()
    return store.timescaledb


async def fetch(url, sql, *args):
    con = await asyncpg.connect(url)
    try:
        return await con.fetch(sql, *args)
    finally:
        await con.close()


async def execute(url, *statements):
    con = await asyncpg.connect(url)
    try:
        for sql in statements:
            await con.execute(sql)
    finally:
        await con.close()


@pytest.fixture(params=["postgres", "timescaledb"])
def db_url(request):
    """A fresh database, plain PostgreSQL and TimescaleDB."""
    return request.getfixturevalue("pg_db_url" if request.param == "postgres"
                                   else "timescale_db_url")


def assert_same(a: pd.DataFrame, b: pd.DataFrame):
    pd.testing.assert_frame_equal(a, b, check_exact=True)


# URL and connection -----------------------------------------------------------------------------

def test_url_options_are_parsed_and_stripped():
    target, opts = pgs.parse_url(
        "postgresql://bob:s3cret@db.example:6543/flow?retention=90d&compress_after=2w"
        "&timescaledb=off&sslmode=disable")
    assert (opts.retention, opts.compress_after, opts.timescaledb) == ("90 days", "2 weeks", "off")
    assert "retention" not in target.dsn and "sslmode=disable" in target.dsn
    assert "s3cret" not in target.url and "s3cret" not in target.where
    assert target.where == "db.example:6543/flow"
    for bad in ("retention=90", "retention=-1d", "compress_after=soon", "timescaledb=maybe"):
        with pytest.raises(StoreError, match=bad.split("=")[0]):
            pgs.parse_url(f"postgresql://bob@localhost/flow?{bad}")


def test_connection_failure_names_the_server_not_the_password():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}") as err:
        run(connect(f"postgresql://bob:s3cret@127.0.0.1:{port}/flow"))
    assert "s3cret" not in str(err.value)
    assert err.value.__cause__ is None or "s3cret" not in str(err.value.__cause__)


# migrations ---------------------------------------------------------------------------------------

def test_migrations_apply_once_and_are_recorded(pg_db_url):
    async def go():
        for _ in range(2):
            store = await connect(pg_db_url)
            assert await store.schema_version() == migrations.LATEST
            await store.close()
        return await fetch(pg_db_url, "SELECT version FROM schema_migrations ORDER BY version")

    assert [r["version"] for r in run(go())] == [m[0] for m in migrations.MIGRATIONS]


def test_concurrent_starts_migrate_safely(db_url):
    async def go():
        stores = await asyncio.gather(*(connect(db_url) for _ in range(4)))
        versions = [await s.schema_version() for s in stores]
        for s in stores:
            await s.close()
        return versions

    assert run(go()) == [migrations.LATEST] * 4
    rows = run(fetch(db_url, "SELECT count(*) AS n FROM schema_migrations"))
    assert rows[0]["n"] == len(migrations.MIGRATIONS)


def test_plain_postgres_has_indexes_and_no_timescaledb(pg_db_url):
    assert run(open_close(pg_db_url)) is False
    indexes = {r["indexname"] for r in run(fetch(
        pg_db_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"))}
    assert {"trades_key", "depth_symbol_ts", "liquidations_symbol_ts"} <= indexes
    assert not run(fetch(pg_db_url, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"))
    assert not run(fetch(pg_db_url, "SELECT 1 FROM pg_class WHERE relname = 'market_data_1h'"))


def test_timescaledb_on_requires_the_extension(pg_db_url):
    with pytest.raises(StoreError, match="TimescaleDB is not available"):
        run(connect(pg_db_url + "?timescaledb=on"))


def test_plain_postgres_ignores_retention_with_a_warning(pg_db_url, caplog):
    with caplog.at_level(logging.WARNING, logger="data_access.postgres_store"):
        run(open_close(pg_db_url + "?retention=90d"))
    assert "retention ignored" in caplog.text


# TimescaleDB ------------------------------------------------------------------------------------

def test_timescaledb_hypertables_columnstore_and_policies(timescale_db_url):
    assert run(open_close(timescale_db_url)) is True
    tables = run(fetch(timescale_db_url, "SELECT hypertable_name, compression_enabled "
                       "FROM timescaledb_information.hypertables"))
    user = {r["hypertable_name"]: r["compression_enabled"] for r in tables
            if r["hypertable_name"] in HYPERTABLES | {RECEIVED}}
    assert user == dict.fromkeys(HYPERTABLES | {RECEIVED}, True)
    intervals = {r["hypertable_name"]: r["time_interval"] for r in run(fetch(
        timescale_db_url, "SELECT hypertable_name, time_interval "
        "FROM timescaledb_information.dimensions"))}
    assert intervals["trades"] == intervals["depth"] == pd.Timedelta("1D")
    assert intervals["market_data"] == intervals["footprint"] == pd.Timedelta("7D")
    settings = run(fetch(timescale_db_url, "SELECT hypertable::text AS t, segmentby, orderby "
                         "FROM timescaledb_information.hypertable_columnstore_settings"))
    segments = {r["t"]: (r["segmentby"], r["orderby"]) for r in settings}
    assert {t: segments[t] for t in HYPERTABLES} == dict.fromkeys(HYPERTABLES, ("symbol", "ts"))
    assert segments[RECEIVED] == ("symbol,seconds", "ts")
    jobs = run(fetch(timescale_db_url, "SELECT proc_name, hypertable_name, config "
                     "FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"))
    compress = {r["hypertable_name"] for r in jobs if r["proc_name"] == "policy_compression"}
    assert compress == HYPERTABLES | {RECEIVED}
    assert not [r for r in jobs if r["proc_name"] == "policy_retention"]
    assert any(r["proc_name"] == "policy_refresh_continuous_aggregate" for r in jobs)
    steps = run(fetch(timescale_db_url, "SELECT version FROM timescale_migrations"))
    assert len(steps) == len(pgs.TIMESCALE_MIGRATIONS)


def _policies(url, proc):
    rows = run(fetch(url, "SELECT hypertable_name AS t, config FROM timescaledb_information.jobs "
                     "WHERE proc_name = $1", proc))
    return {r["t"]: r["config"] for r in rows}


def test_retention_and_compression_follow_the_url(timescale_db_url):
    def reopen(query):
        run(open_close(timescale_db_url + query))

    reopen("?retention=90d&compress_after=14d")
    kept = _policies(timescale_db_url, "policy_retention")
    assert set(kept) == {"trades", "depth"} and '"90 days"' in kept["trades"]
    assert '"14 days"' in _policies(timescale_db_url, "policy_compression")["footprint"]
    reopen("")  # no option: what is there stays
    assert set(_policies(timescale_db_url, "policy_retention")) == {"trades", "depth"}
    reopen("?retention=30d")
    assert '"30 days"' in _policies(timescale_db_url, "policy_retention")["depth"]
    reopen("?retention=off&compress_after=off")
    assert _policies(timescale_db_url, "policy_retention") == {}
    assert _policies(timescale_db_url, "policy_compression") == {}


def test_timescaledb_steps_apply_when_the_extension_comes_later(timescale_db_url):
    t = make_trades(n=1500)

    async def go():
        plain = await opened(timescale_db_url + "?timescaledb=off")
        assert plain.timescaledb is False
        await plain.write_trades("ES", t)
        before = await plain.bars("ES", "1h"), await plain.footprint("ES", "5m")
        await plain.close()
        assert not await fetch(timescale_db_url, "SELECT 1 FROM pg_class "
                               "WHERE relname = 'market_data_1h'")
        later = await connect(timescale_db_url)
        assert later.timescaledb is True
        after = await later.bars("ES", "1h"), await later.footprint("ES", "5m")
        await later.close()
        return before, after

    (bars0, cells0), (bars1, cells1) = run(go())
    assert_same(bars0, bars1)
    assert_same(cells0, cells1)
    names = {r["hypertable_name"] for r in run(fetch(
        timescale_db_url, "SELECT hypertable_name FROM timescaledb_information.hypertables"))}
    assert HYPERTABLES <= names


async def _compress_everything(url):
    """Run each columnstore policy job (all test data is older than 7 days)."""
    jobs = await fetch(url, "SELECT job_id FROM timescaledb_information.jobs "
                       "WHERE proc_name = 'policy_compression'")
    for job in jobs:
        await execute(url, f"CALL run_job({job['job_id']})")
    return await fetch(url, "SELECT hypertable_name, count(*) AS n "
                       "FROM timescaledb_information.chunks WHERE is_compressed "
                       "GROUP BY hypertable_name")


def test_compressed_chunks_read_back_identical_and_still_dedupe(timescale_db_url):
    t = make_trades()

    async def reads(store):
        return [await store.trades("ES"), await store.bars("ES", "1m"),
                await store.bars("ES", "1h"), await store.bars("ES", "1d"),
                await store.footprint("ES", "1m"), await store.footprint("ES", "15m")]

    async def go():
        store = await opened(timescale_db_url)
        assert await store.write_trades("ES", t.iloc[:3000]) == 3000
        before = await reads(store)
        compressed = await _compress_everything(timescale_db_url)
        assert {r["hypertable_name"] for r in compressed} >= {"trades", "market_data",
                                                               "footprint"}
        after = await reads(store)
        assert await store.write_trades("ES", t.iloc[:3000]) == 0  # into compressed chunks
        again = await reads(store)
        assert await store.write_trades("ES", t) == len(t) - 3000
        full = await store.trades("ES"), await store.bars("ES", "1m")
        await store.close()
        return before, after, again, full

    before, after, again, (trades, bars) = run(go())
    for a, b, c in zip(before, after, again):
        assert_same(a, b)
        assert_same(a, c)
    assert len(trades) == len(t)
    assert bars["trades"].sum() == len(t)


def test_retention_policy_drops_old_raw_data_only(timescale_db_url):
    async def go():
        store = await opened(timescale_db_url + "?retention=90d")
        await store.write_trades("ES", make_trades(n=500))  # 2024: far older than 90 days
        job = (await fetch(timescale_db_url, "SELECT job_id FROM timescaledb_information.jobs "
                           "WHERE proc_name = 'policy_retention' "
                           "AND hypertable_name = 'trades'"))[0]["job_id"]
        await execute(timescale_db_url, f"CALL run_job({job})")
        out = len(await store.trades("ES")), len(await store.bars("ES", "1m"))
        await store.close()
        return out

    trades, bars = run(go())
    assert trades == 0 and bars > 0


def test_hourly_aggregate_equals_aggregating_market_data(timescale_db_url):
    """bars("1h") reads market_data_1h; once it is materialized, writes below its watermark
    (plain, in a transaction, write_bars, from a timescaledb=off store) still show at once."""
    t = make_trades(n=6000, hours=72)
    early, late = t.iloc[::2], t.iloc[1::2]
    extra = pd.DataFrame({"ts": pd.date_range("2024-03-05 03:00:30", periods=90, freq="20s",
                                              tz="UTC"),
                          "open": 5001.0, "high": 5002.0, "low": 5000.0, "close": 5001.5,
                          "volume": 3.0, "open_interest": np.arange(90.0)})

    async def compare(store, plain):
        for spec in ("1h", "4h"):
            assert_same(await store.bars("ES", spec), await plain.bars("ES", spec))
        start, end = t["ts"].iloc[1000], t["ts"].iloc[5000]
        assert_same(await store.bars("ES", "1h", start, end, last=7),
                    await plain.bars("ES", "1h", start, end, last=7))

    async def go():
        store = await opened(timescale_db_url)
        plain = await connect(timescale_db_url + "?timescaledb=off")  # aggregates market_data
        await store.write_trades("ES", early)
        await compare(store, plain)
        await execute(timescale_db_url,
                      "CALL refresh_continuous_aggregate('market_data_1h', NULL, NULL)")
        watermark = (await fetch(timescale_db_url, "SELECT _timescaledb_functions.to_timestamp("
                                 "_timescaledb_functions.cagg_watermark(mat_hypertable_id)) "
                                 "FROM _timescaledb_catalog.continuous_agg"))[0][0]
        assert watermark >= t["ts"].max().floor("h")  # every later write lands below it
        await compare(store, plain)
        await store.write_trades("ES", late.iloc[:1000])  # below the watermark
        await compare(store, plain)
        async with store.transaction() as tx:
            await tx.write_trades("ES", late.iloc[1000:2000])
            await tx.write_bars("ES", extra)
        await compare(store, plain)
        await plain.write_trades("ES", late.iloc[2000:])  # timescaledb=off refreshes it too
        await compare(store, plain)
        hourly = await store.bars("ES", "1h")
        await store.close()
        await plain.close()
        return hourly

    hourly = run(go())
    assert len(hourly) == t["ts"].dt.floor("h").nunique()


def test_hourly_bars_really_read_the_aggregate(timescale_db_url):
    async def go():
        store = await opened(timescale_db_url)
        await store.write_trades("ES", make_trades(n=500))
        await execute(timescale_db_url,
                      "CALL refresh_continuous_aggregate('market_data_1h', NULL, NULL)",
                      # tamper with the materialized rows: only the aggregate can show this
                      "UPDATE _timescaledb_internal._materialized_hypertable_"
                      + str((await fetch(timescale_db_url,
                                         "SELECT mat_hypertable_id FROM "
                                         "_timescaledb_catalog.continuous_agg"))[0][0])
                      + " SET high = 99999")
        hourly = await store.bars("ES", "1h")
        minutely = await store.bars("ES", "30m")
        await store.close()
        return hourly, minutely

    hourly, minutely = run(go())
    assert (hourly["high"] == 99999).all()
    assert (minutely["high"] < 99999).all()


# the two write paths ----------------------------------------------------------------------------

def test_copy_fast_path_and_conflict_path_both_dedupe(db_url, monkeypatch):
    tables = []
    real = pgs.copy_in

    async def spy(con, table, columns, n):
        if table.startswith("trades"):  # (rollups of new batches are copied in too)
            tables.append(table)
        return await real(con, table, columns, n)

    monkeypatch.setattr(pgs, "copy_in", spy)
    t = make_trades()

    async def go():
        store = await opened(db_url)
        assert await store.write_trades("ES", t.iloc[:2500]) == 2500
        assert tables == ["trades"]  # nothing stored in the range: straight into trades
        assert await store.write_trades("ES", t.iloc[:2500]) == 0
        assert await store.write_trades("ES", t.iloc[2000:]) == len(t) - 2500
        assert tables[1:] == ["trades_incoming", "trades_incoming"]
        back = await store.trades("ES")
        await store.close()
        return back

    back = run(go())
    assert len(back) == len(t)
    assert not back.duplicated(["ts", "trade_id"]).any()


def test_a_racing_writer_falls_back_to_the_conflict_path(db_url, monkeypatch):
    t = make_trades(n=800)

    async def go():
        store = await opened(db_url)
        await store.write_trades("ES", t)

        async def nothing_stored(*args):  # as if another process committed after our look
            return False
        monkeypatch.setattr(store, "_stored_between", nothing_stored)
        assert await store.write_trades("ES", t) == 0
        n = len(await store.trades("ES"))
        await store.close()
        return n

    assert run(go()) == len(t)


# transactions -----------------------------------------------------------------------------------

def test_a_failing_write_in_a_transaction_leaves_nothing(db_url):
    t = make_trades(n=600)
    depth = pd.DataFrame({"ts": t["ts"].iloc[:4], "side": [1, -1, 1, -1], "tick": [1, 2, 3, 4],
                          "size": 1.0})
    bad_bars = pd.DataFrame({"ts": t["ts"].iloc[:2], "open": [1.0, 1.0], "high": [0.5, 2.0],
                             "low": [1.0, 1.0], "close": [1.0, 1.0], "volume": [1.0, 1.0]})

    async def go():
        store = await opened(db_url)
        with pytest.raises(ModelError, match="high/low"):
            async with store.transaction() as tx:
                assert await tx.write_trades("ES", t) == len(t)
                assert await tx.write_depth("ES", depth) == 4
                async with tx.transaction() as inner:  # nested: joins the outer one
                    assert inner is tx
                    assert len(await inner.trades("ES")) == len(t)  # sees its own writes
                    assert len(await store.trades("ES")) == 0  # others do not, yet
                    await inner.write_bars("ES", bad_bars)
        counts = [len(await store.trades("ES")), len(await store.depth("ES")),
                  len(await store.bars("ES", "1m")), len(await store.footprint("ES"))]
        with pytest.raises(StoreError, match="transaction has ended"):
            await tx.trades("ES")
        await store.close()
        return counts

    assert run(go()) == [0, 0, 0, 0]


def test_a_transaction_survives_a_write_refused_inside_it(pg_db_url, monkeypatch):
    """A write the database refuses rolls back to its savepoint; the transaction goes on."""
    t = make_trades(n=300)
    depth = pd.DataFrame({"ts": t["ts"].iloc[:1], "side": [1], "tick": [1], "size": [1.0]})
    real = pgs.copy_in

    async def copy_then_fail(con, table, columns, n):
        await real(con, table, columns, n)
        await con.execute("SELECT 1 / 0")

    async def go():
        store = await opened(pg_db_url)
        async with store.transaction() as tx:
            await tx.write_trades("ES", t)
            monkeypatch.setattr(pgs, "copy_in", copy_then_fail)
            with pytest.raises(StoreError, match="division by zero"):
                await tx.write_depth("ES", depth)
            monkeypatch.setattr(pgs, "copy_in", real)
            await tx.write_depth("ES", depth)
        out = len(await store.trades("ES")), len(await store.depth("ES"))
        await store.close()
        return out

    assert run(go()) == (300, 1)


# the sync API -----------------------------------------------------------------------------------

def test_sync_api_via_open_store(db_url):
    t = make_trades(n=1000)
    with open_store(db_url) as store:
        store.add_instrument(ES)
        with pytest.raises(RuntimeError):
            with store.transaction() as tx:
                tx.write_trades("ES", t)
                raise RuntimeError("rolled back")
        assert len(store.trades("ES")) == 0
        with store.transaction() as tx:
            assert tx.write_trades("ES", t) == 1000
        assert store.write_trades("ES", t) == 0
        assert store.bars("ES", "1h")["trades"].sum() == 1000
        assert store.url.startswith("postgresql://postgres@127.0.0.1:")


# binary COPY codec ------------------------------------------------------------------------------

def test_binary_rows_round_trip_and_nulls_are_refused():
    ts = pd.DatetimeIndex(["1969-12-31 23:59:59.999999", "2024-03-04 05:06:07.123456"], tz="UTC")
    cols = {"ts": ts, "price": np.array([1.5, -2.25]), "side": np.array([-1, 1], "int8"),
            "trade_id": np.array([2**62, -3])}
    data = b"".join(pgs.encode_rows(cols, 2))
    back = pgs.decode_rows(data, list(cols))
    assert (back["ts"].to_numpy() == ts.as_unit("us").to_numpy()).all()
    np.testing.assert_array_equal(back["price"], cols["price"])
    np.testing.assert_array_equal(back["side"], [-1, 1])
    np.testing.assert_array_equal(back["trade_id"], cols["trade_id"])
    with pytest.raises(StoreError, match="NULL"):
        pgs.decode_rows(data, ["ts", "price", "side"])
