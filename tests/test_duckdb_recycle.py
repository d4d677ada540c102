"""Giving back the served DuckDB store's memory: ``DuckDBStore.recycle()`` closes and opens the
database again in place while other threads read and write, ``DuckDBStore.drop_cache()`` evicts
its cache of the file, and the server's policy decides when."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from data_access.duckdb_store import open_duckdb
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.model import Instrument
from tradeflow.server.recycling import Recycler

BTC = Instrument("BTCUSDT", 0.1, "SIM", "crypto")
DAY = pd.Timestamp("2024-03-05", tz="UTC")  # a fixed day; BTCUSDT trades around the clock
SETTINGS = ("SELECT current_setting('TimeZone'), current_setting('checkpoint_threshold'), "
            "current_setting('memory_limit'), current_setting('allocator_background_threads')")


def _store(tmp_path):
    store = open_duckdb(f"/{tmp_path}/a.duckdb", "64MB")
    store.add_instrument(BTC)
    return store


def _fill_eviction_queue(store) -> int:
    """Queries that leave nodes in DuckDB's managed-buffer eviction queue; its node count."""
    for _ in range(10):
        store.con.execute("SELECT i % 1000 AS k, count(*) FROM range(300000) t(i) GROUP BY k"
                          ).fetchall()
    return store.eviction_queues().get("MANAGED_BUFFER", (0, 0))[0]


def test_recycle_while_threads_read_and_one_writes(tmp_path):
    """Three threads read and one writes 40 batches while the store is recycled five times:
    no error, every trade stored once, every read sees at least what an earlier one saw, and
    after it the new instance has the store's settings and fresh eviction queues."""
    store = _store(tmp_path)
    expected = ("UTC", store.con.execute(SETTINGS).fetchone()[1], "61.0 MiB", True)
    assert store.con.execute(SETTINGS).fetchone() == expected
    sim = MarketSimulator(BTC, seed=5, trades_per_day=2_000_000)
    batches = [sim.generate(DAY + pd.Timedelta(seconds=5 * i),
                            DAY + pd.Timedelta(seconds=5 * (i + 1))).trades for i in range(40)]
    errors: list[BaseException] = []
    writing = threading.Event()
    done = threading.Event()

    def write():
        try:
            for i, batch in enumerate(batches):
                with store.transaction():
                    store.write_trades("BTCUSDT", batch)
                    store.bars("BTCUSDT", "1m", last=1)  # a read inside the transaction
                writing.set()
        except BaseException as exc:  # noqa: BLE001 -- the test's verdict
            errors.append(exc)
        finally:
            done.set()

    seen: list[list[int]] = [[], [], []]

    def read(mine: list[int]):
        try:
            while not done.is_set():
                mine.append(len(store.trades("BTCUSDT")))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read, args=(s,)) for s in seen]
    for t in threads:
        t.start()
    assert writing.wait(60)
    recycled = []
    while len(recycled) < 5 and not done.is_set():
        got = store.recycle()
        assert got is not None and got.held_s >= got.close_s + got.open_s
        recycled.append(got)
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(recycled) == 5, "the writer ended before five recycles: write more batches"
    assert store.generation == 5
    total = sum(len(b) for b in batches)
    stored = store.trades("BTCUSDT")
    assert len(stored) == total and stored["trade_id"].is_unique
    assert store.bars("BTCUSDT", "1m")["trades"].sum() == total
    for mine in seen:
        assert mine and mine == sorted(mine)  # no read saw fewer trades than an earlier one
    assert store.con.execute(SETTINGS).fetchone() == expected
    reader_zone = store._reader().execute(SETTINGS).fetchone()[0]  # noqa: SLF001 -- a cursor
    assert reader_zone == "UTC"
    assert _fill_eviction_queue(store) > 100
    store.recycle()
    assert store.eviction_queues().get("MANAGED_BUFFER", (0, 0))[0] < 20  # a new instance
    store.close()


def _cache_an_hour(store, sim, hour: int = 0) -> pd.DataFrame:
    """The ``hour``-th hour of trades written to the file's blocks (which DuckDB keeps cached:
    the trades, their bars and footprint) and read back; its trades."""
    start = DAY + pd.Timedelta(hours=hour)
    store.write_trades("BTCUSDT", sim.generate(start, start + pd.Timedelta(hours=1)).trades)
    store.con.execute("CHECKPOINT").fetchall()
    got = store.trades("BTCUSDT", start=start)
    assert store.memory().get("BASE_TABLE", 0) > 2 * 2**20
    return got


def test_drop_cache_evicts_the_cached_blocks_while_threads_read_and_one_writes(tmp_path):
    """Reads of an hour of trades fill DuckDB's cache; dropping it (five times while two threads
    read and one writes) evicts it to under 1 MB, every read and write succeeds with the same
    answers, and the store's settings are in force after."""
    store = _store(tmp_path)
    expected = store.con.execute(SETTINGS).fetchone()
    sim = MarketSimulator(BTC, seed=5, trades_per_day=2_000_000)
    hour = _cache_an_hour(store, sim)
    later = [sim.generate(DAY + pd.Timedelta(hours=1, seconds=5 * i),
                          DAY + pd.Timedelta(hours=1, seconds=5 * (i + 1))).trades
             for i in range(20)]
    errors: list[BaseException] = []
    done = threading.Event()

    def write():
        try:
            for batch in later:
                with store.transaction():
                    store.write_trades("BTCUSDT", batch)
        except BaseException as exc:  # noqa: BLE001 -- the test's verdict
            errors.append(exc)
        finally:
            done.set()

    def read():
        try:
            while not done.is_set():
                got = store.trades("BTCUSDT", end=DAY + pd.Timedelta(hours=1))
                assert got["trade_id"].equals(hour["trade_id"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (write, read, read)]
    for t in threads:
        t.start()
    dropped = [store.drop_cache() for _ in range(5)]
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all(d is not None for d in dropped)
    assert store.drop_cache() is not None
    assert store.memory().get("BASE_TABLE", 0) <= 2**20
    assert store.con.execute(SETTINGS).fetchone() == expected
    assert len(store.trades("BTCUSDT")) == len(hour) + sum(len(b) for b in later)
    store.close()


def test_drop_cache_drops_the_eviction_queues_dead_nodes(tmp_path):
    """Evicting walks DuckDB's eviction queues, which drops their dead nodes (each keeps its
    buffer's bookkeeping until a queue holds ~33,000)."""
    store = _store(tmp_path)
    assert _fill_eviction_queue(store) > 10
    assert store.drop_cache() is not None
    assert store.eviction_queues().get("MANAGED_BUFFER", (0, 0))[0] < 5
    store.close()


@pytest.mark.parametrize("give_back", ["recycle", "drop_cache"])
def test_giving_back_waits_for_a_transaction_and_is_refused_inside_one(tmp_path, give_back):
    """A recycle (or a cache drop) asked while another thread is inside a transaction waits for
    it to commit (the transaction's reads and writes, made meanwhile, pass the gate); asked from
    inside a transaction, it does not happen (closing would break it) and does not deadlock."""
    store = _store(tmp_path)
    sim = MarketSimulator(BTC, seed=5, trades_per_day=2_000_000)
    first, second = (sim.generate(DAY + pd.Timedelta(seconds=5 * i),
                                  DAY + pd.Timedelta(seconds=5 * (i + 1))).trades for i in (0, 1))
    inside, go = threading.Event(), threading.Event()
    results = {}

    def transaction():
        with store.transaction():
            store.write_trades("BTCUSDT", first)
            results["own"] = getattr(store, give_back)()
            inside.set()
            go.wait(60)
            results["read"] = len(store.trades("BTCUSDT"))
            store.write_trades("BTCUSDT", second)

    def recycle():
        results["recycle"] = getattr(store, give_back)()

    tx = threading.Thread(target=transaction)
    tx.start()
    assert inside.wait(60)
    rc = threading.Thread(target=recycle)
    rc.start()
    rc.join(0.5)
    assert rc.is_alive(), f"{give_back} did not wait for the transaction"
    go.set()
    tx.join(60)
    rc.join(60)
    assert results["own"] is None
    assert results["read"] == len(first)
    assert results["recycle"] is not None
    assert store.generation == (give_back == "recycle")
    assert len(store.trades("BTCUSDT")) == len(first) + len(second)
    store.close()


def test_the_policy_recycles_when_memory_has_grown_by_its_threshold(tmp_path):
    """The measure is driven, not the clock: a recycle when it has grown by ``after_mb`` over its
    lowest since the last open, not before, and not within ``min_interval_s`` of an open."""
    store = _store(tmp_path)
    now = [0.0]
    measure = [0.0]
    policy = Recycler(store, measure=lambda: measure[0], after_mb=8, min_interval_s=600,
                      clock=lambda: now[0])

    def check(at: float, mb: float):
        now[0], measure[0] = at, mb
        return policy.check()

    assert check(60, 100) is None  # the first look: the baseline
    assert check(120, 95) is None  # lower: the new baseline
    assert check(180, 102.9) is None and store.generation == 0  # +7.9
    assert check(240, 103) is None and store.generation == 0  # +8, but within 600 s of the open
    assert check(660, 102.5) is None and store.generation == 0  # past the interval, +7.5
    got = check(720, 103.5)  # +8.5
    assert got is not None and store.generation == 1 and store.recycles[-1] is got
    assert check(780, 130) is None  # the new instance's first look: its baseline
    assert check(1200, 140) is None and store.generation == 1  # +10, within 600 s of the open
    assert check(1330, 138.5) is not None and store.generation == 2
    store.close()


def test_the_policy_drops_the_cache_at_its_interval(tmp_path):
    """A check drops the cache once ``drop_cache_every_s`` has passed since the last drop (or
    the start), not before; a cache drop is not a recycle."""
    store = _store(tmp_path)
    sim = MarketSimulator(BTC, seed=5, trades_per_day=2_000_000)
    _cache_an_hour(store, sim)
    cached = store.memory()["BASE_TABLE"]
    now = [0.0]
    policy = Recycler(store, measure=lambda: 100.0, drop_cache_every_s=300,
                      clock=lambda: now[0])

    def check(at: float) -> int:
        now[0] = at
        assert policy.check() is None  # (no recycle)
        return len(store.cache_drops)

    assert check(299) == 0 and store.memory()["BASE_TABLE"] == cached
    assert check(300) == 1 and store.memory().get("BASE_TABLE", 0) <= 2**20
    _cache_an_hour(store, sim, hour=1)  # cached again
    assert check(599) == 1
    assert check(600) == 2 and store.memory().get("BASE_TABLE", 0) <= 2**20
    assert store.generation == 0
    store.close()


# Another process that opens the file as soon as it can: it waits for the lock to go (the
# recycle's close), then holds the file until the test says to let go.
TAKER = """
import pathlib, sys, time
import duckdb
path, trying, took, release = sys.argv[1:]
pathlib.Path(trying).touch()
while True:
    try:
        con = duckdb.connect(path)
        break
    except duckdb.Error:
        pass
pathlib.Path(took).touch()
while not pathlib.Path(release).exists():
    time.sleep(0.02)
con.close()
"""


def test_another_process_taking_the_file_in_a_recycle_is_said_and_the_store_opens_after_it(
        tmp_path, monkeypatch):
    """A recycle whose file another process opened between its close and its open raises a
    ``StoreError`` saying so; later operations fail with that error while the other process
    holds the file, and open it again once it lets go, with nothing lost."""
    import data_access.duckdb_store as duckdb_store
    from data_access import StoreError

    monkeypatch.setattr(duckdb_store, "REOPEN_TRIES_S", 0.3)  # (10 s in the server)
    store = _store(tmp_path)
    sim = MarketSimulator(BTC, seed=5)
    written = sim.generate(DAY, DAY + pd.Timedelta(minutes=30)).trades
    store.write_trades("BTCUSDT", written)
    trying, took, release = (tmp_path / name for name in ("trying", "took", "release"))
    taker = subprocess.Popen([sys.executable, "-c", TAKER, store.path, str(trying), str(took),
                              str(release)])
    try:
        for _ in range(600):  # (its start, before any recycle: a slow one would miss them all)
            if trying.exists() or taker.poll() is not None:
                break
            time.sleep(0.1)
        assert trying.exists(), "the other process did not start"
        error = None
        for _ in range(200):  # (each recycle is a window for the taker; it soon wins one)
            try:
                store.recycle()
            except StoreError as exc:
                error = exc
                break
        assert error is not None, "the other process never took the file in a recycle"
        assert took.exists()
        assert "another process took the file" in str(error)
        with pytest.raises(StoreError, match="another process took the file"):
            store.trades("BTCUSDT")  # tried again, still held
        release.touch()
        assert taker.wait(timeout=30) == 0
    finally:
        release.touch()
        taker.wait(timeout=30)
    stored = store.trades("BTCUSDT")  # opened again
    assert len(stored) == len(written) and stored["trade_id"].is_unique
    store.write_trades("BTCUSDT", sim.generate(DAY + pd.Timedelta(minutes=30),
                                               DAY + pd.Timedelta(minutes=40)).trades)
    assert len(store.trades("BTCUSDT")) > len(written)
    store.close()
