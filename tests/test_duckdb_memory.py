"""What the DuckDB store holds in memory while it serves: one read cursor per live thread (a
cursor goes with its thread), the rows written since the last checkpoint kept small, and freed
memory given back."""
from __future__ import annotations

import asyncio
import threading
import time

import duckdb
import pandas as pd
import pytest

from data_access import open_async_store
from data_access.duckdb_store import duckdb_allocator, open_duckdb
from tradeflow.server.app import SERVED_DUCKDB_MEMORY
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.model import Instrument

BTC = Instrument("BTCUSDT", 0.1, "SIM", "crypto")
DAY = pd.Timestamp("2024-03-05", tz="UTC")  # a fixed day; BTCUSDT trades around the clock


def test_cursors_of_finished_reader_threads_are_released(tmp_path):
    """Each thread reads on its own cursor; when the thread ends its cursor is closed and
    forgotten (a server whose reads ran on ever new threads held one each, ~20 kB, until the
    store closed); close() closes the cursors of threads still running."""
    store = open_duckdb(f"/{tmp_path}/a.duckdb")
    store.add_instrument(BTC)
    seen = []

    def read():
        seen.append(len(store.bars("BTCUSDT", "1m", last=10)))

    for _ in range(20):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    assert seen == [0] * 20
    assert len(store.reader_cursors) == 0, "cursors of ended threads are still held"

    reading, release = threading.Event(), threading.Event()
    cursors = []

    def read_and_wait():
        read()
        cursors.extend(store.reader_cursors)
        reading.set()
        release.wait(30)

    thread = threading.Thread(target=read_and_wait)
    thread.start()
    try:
        assert reading.wait(30)
        assert len(cursors) == 1  # the running thread's cursor, the only one held
        store.close()
        with pytest.raises(duckdb.ConnectionException):
            cursors[0].execute("SELECT 1")
    finally:
        release.set()
        thread.join()


def test_rows_written_since_the_last_checkpoint_stay_few(tmp_path):
    """The served write pattern (one transaction a batch: trades with their rollups, book
    snapshots) over half a simulated hour of a busy market: the rows not yet checkpointed,
    which DuckDB keeps in memory, stay under ~5 MB (DuckDB's default threshold let them grow to
    13 MB here, and on to ~25 MB)."""
    store = open_duckdb(f"/{tmp_path}/a.duckdb")
    store.add_instrument(BTC)
    sim = MarketSimulator(BTC, seed=3, trades_per_day=4_000_000)
    unchecked = []
    for minute in range(30):
        a = DAY + pd.Timedelta(minutes=minute)
        batch = sim.generate(a, a + pd.Timedelta(minutes=1))
        with store.transaction():
            store.write_trades("BTCUSDT", batch.trades)
            store.write_depth("BTCUSDT", batch.depth)
        unchecked.append(store.memory().get("IN_MEMORY_TABLE", 0) / 2**20)
    store.close()
    assert max(unchecked) < 8, f"MB not checkpointed after each batch: {unchecked}"
    assert max(unchecked) > 1  # (what is measured is there)


def test_duckdb_gives_freed_memory_back_to_the_system(tmp_path):
    """DuckDB's jemalloc keeps the pages it frees until it allocates again; the store turns on
    its background threads, which return them while the store is idle (without them an idle
    store kept all of a large query's ~100 MB resident). The setting is in force on a store
    opened the way ``tradeflow serve`` opens it."""
    store = asyncio.run(open_async_store(f"duckdb:///{tmp_path}/a.duckdb",
                                         duckdb_memory_limit=SERVED_DUCKDB_MEMORY)).sync
    try:
        assert store.con.execute(
            "SELECT current_setting('allocator_background_threads')").fetchone()[0] is True
        before = duckdb_allocator()["resident"]
        store.con.execute("CREATE TEMP TABLE big AS SELECT range AS i, random() AS r "
                          "FROM range(2000000)").fetchall()
        store.con.execute("SELECT r, count(*) FROM big GROUP BY r ORDER BY 2 DESC LIMIT 1"
                          ).fetchall()
        store.con.execute("DROP TABLE big").fetchall()
        resident = []
        for _ in range(300):  # the decay is 1 s; give a loaded machine up to 30 s
            resident.append((duckdb_allocator()["resident"] - before) / 2**20)
            if resident[-1] < 20:
                break
            time.sleep(0.1)
        assert max(resident) > 20  # (the query did leave freed pages behind)
        assert resident[-1] < 20, f"MB DuckDB still holds after a large query: {resident[-1]:.0f}"
    finally:
        store.close()


def test_a_live_batch_inside_a_stored_minute_writes_the_keyed_rollup_once(tmp_path):
    """Every write to ``market_data`` (keyed, for ``INSERT OR REPLACE``) grows DuckDB's memory
    for good (DuckDB 2.0.1: ~1.4 kB a statement, through checkpoints). A live batch of seconds
    inside a minute that already has trades is rolled up by recomputing that minute once, not by
    an insert and two recomputations; the minute's bar stays exact."""
    store = open_duckdb(f"/{tmp_path}/a.duckdb")
    store.add_instrument(BTC)
    sim = MarketSimulator(BTC, seed=3, trades_per_day=4_000_000)
    first = sim.generate(DAY, DAY + pd.Timedelta(seconds=5)).trades
    batch = sim.generate(DAY + pd.Timedelta(seconds=5), DAY + pd.Timedelta(seconds=10)).trades
    assert len(first) and len(batch)
    store.write_trades("BTCUSDT", first)
    store.con.execute("CALL enable_logging('QueryLog')").fetchall()
    store.write_trades("BTCUSDT", batch)
    logged = [m for (m,) in store.con.execute(
        "SELECT message FROM duckdb_logs WHERE type = 'QueryLog'").fetchall()]
    assert sum("INTO market_data" in m for m in logged) == 1, logged
    bar = store.bars("BTCUSDT", "1m")
    both = pd.concat([first, batch])
    assert len(bar) == 1 and bar["trades"].iloc[0] == len(both)
    assert bar["volume"].iloc[0] == pytest.approx(both["size"].sum())
    assert bar["close"].iloc[0] == both["price"].iloc[-1]
    store.close()


def test_eviction_queues_count_the_nodes_left_by_queries(tmp_path):
    """``eviction_queues()`` (what ``bench_memory`` prints) reads DuckDB's queues: each buffer a
    query unpins leaves a node, a node whose buffer is gone counts as dead, and neither kind
    shrinks below the other."""
    store = open_duckdb(f"/{tmp_path}/a.duckdb")
    before = store.eviction_queues()
    for _ in range(20):  # aggregations large enough to hold buffers of their own
        store.con.execute("SELECT i % 1000 AS k, count(*) FROM range(300000) t(i) GROUP BY k"
                          ).fetchall()
    after = store.eviction_queues()
    store.close()
    nodes, dead = after["MANAGED_BUFFER"]
    assert nodes > before.get("MANAGED_BUFFER", (0, 0))[0]
    assert 0 < dead <= nodes
