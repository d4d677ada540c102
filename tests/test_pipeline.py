"""The live pipeline and hub over real stores (DuckDB, PostgreSQL, PostgreSQL + TimescaleDB):
acknowledged means stored, bad batches store nothing and harm no one, overload is refused and
recovers, stop() loses nothing, and charts following the hub hold what the batch build of the
stored trades gives."""
import asyncio

import numpy as np
import pandas as pd
import pytest

from data_access import open_async_store
from indicators.catalogue import CATALOGUE
from indicators.orderflow.footprint import cvd
from tradeflow.bars import build
from tradeflow.live import ChartState, Overloaded, Pipeline, Rejected, Resync, Snapshot, Update
from tradeflow.model import Instrument

BTC = Instrument("BTCUSDT", 0.1, "BINANCE", "crypto")
ETH = Instrument("ETHUSDT", 0.01, "BINANCE", "crypto")
START = pd.Timestamp("2026-03-02 10:00", tz="UTC")  # a Monday; crypto trades around the clock
NUM = ["open", "high", "low", "close", "volume", "ask_volume", "bid_volume", "trades"]


def trades(n, start=START, seconds=60.0, first_id=0, seed=0, inst=BTC):
    """``n`` trades over ``seconds`` from ``start`` in time order, ids from ``first_id``; some
    share a microsecond."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, int(seconds * 1e6), n))
    offsets[1::5] = offsets[0::5][: len(offsets[1::5])]
    offsets.sort()
    ticks = 600_000 + np.cumsum(rng.integers(-3, 4, n))
    return pd.DataFrame({
        "ts": start + pd.to_timedelta(offsets, unit="us"),
        "price": ticks * inst.tick_size,
        "size": rng.integers(1, 9, n) / 4.0,
        "side": rng.choice([-1, 1], n).astype("int8"),
        "trade_id": np.arange(first_id, first_id + n, dtype="int64"),
    })


def batches(count, per, start=START, seconds=30.0, seed=0):
    """``count`` consecutive batches of ``per`` trades, each ``seconds`` long."""
    return [trades(per, start + pd.Timedelta(seconds=i * seconds), seconds, i * per, seed + i)
            for i in range(count)]


def run(store_url, body, **options):
    """Run ``body(pipeline, store)`` on a fresh loop with a started pipeline over the store."""
    async def main():
        store = await open_async_store(store_url)
        try:
            await store.add_instrument(BTC)
            await store.add_instrument(ETH)
            pipeline = Pipeline(store, **options)
            await pipeline.start()
            try:
                return await body(pipeline, store)
            finally:
                await pipeline.stop()
        finally:
            await store.close()
    return asyncio.run(main())


def assert_same_trades(got, want):
    got = got.reset_index(drop=True)
    want = want.sort_values(["ts", "trade_id"], ignore_index=True)
    assert len(got) == len(want)
    assert (got["ts"].to_numpy() == want["ts"].to_numpy()).all()
    assert (got["trade_id"].to_numpy() == want["trade_id"].to_numpy()).all()
    np.testing.assert_allclose(got[["price", "size"]].to_numpy(), want[["price", "size"]]
                               .to_numpy(), rtol=1e-12)
    assert (got["side"].to_numpy() == want["side"].to_numpy()).all()


def assert_bars_equal(got, want):
    assert len(got) == len(want)
    assert (got["ts"].to_numpy() == want["ts"].to_numpy()).all()
    np.testing.assert_allclose(got[NUM].to_numpy(float), want[NUM].to_numpy(float), rtol=1e-12)


def assert_cells_equal(got, want):
    cols = ["tick", "volume", "ask_volume", "bid_volume", "trades"]
    assert len(got) == len(want)
    assert (got["ts"].to_numpy() == want["ts"].to_numpy()).all()
    np.testing.assert_allclose(got[cols].to_numpy(float), want[cols].to_numpy(float))


def test_what_is_acknowledged_is_stored_exactly(store_url):
    """Each acknowledged batch is in the store when its submit returns; concurrent submitters'
    batches share transactions; a resent batch adds nothing."""
    btc, eth = batches(8, 400), batches(8, 300, seed=50)

    async def body(pipeline, store):
        async def feed(symbol, parts):
            for part in parts:
                assert await pipeline.submit_trades(symbol, part, source=symbol) == len(part)
                stored = await store.trades(symbol, start=part["ts"].iloc[0],
                                            end=part["ts"].iloc[-1] + pd.Timedelta(1, "us"))
                assert set(part["trade_id"]) <= set(stored["trade_id"])  # acknowledged: stored
        await asyncio.gather(feed("BTCUSDT", btc[:3]), feed("ETHUSDT", eth[:3]))
        before = pipeline.stats["transactions"]
        # ten submitters at once (each symbol's in order)
        done = await asyncio.gather(*(pipeline.submit_trades(s, p) for s, parts in
                                      (("BTCUSDT", btc[3:]), ("ETHUSDT", eth[3:])) for p in parts))
        assert done == [400] * 5 + [300] * 5
        shared = pipeline.stats["transactions"] - before
        assert await pipeline.submit_trades("BTCUSDT", btc[-1]) == 0  # resent: nothing new
        assert await pipeline.submit_trades("BTCUSDT", btc[2]) == 0  # an older one too
        return await store.trades("BTCUSDT"), await store.trades("ETHUSDT"), shared

    got_btc, got_eth, shared = run(store_url, body)
    assert_same_trades(got_btc, pd.concat(btc))
    assert_same_trades(got_eth, pd.concat(eth))
    assert shared <= 2  # the ten batches went in at most two transactions


def test_a_rejected_batch_stores_nothing_and_spares_a_concurrent_one(store_url):
    good = trades(500)
    bad = trades(500, seed=7, inst=ETH)
    bad.loc[3, "price"] = bad.loc[3, "price"] + 0.004  # off ETH's 0.01 grid

    async def body(pipeline, store):
        results = await asyncio.gather(pipeline.submit_trades("BTCUSDT", good),
                                       pipeline.submit_trades("ETHUSDT", bad),
                                       return_exceptions=True)
        late = trades(3, START - pd.Timedelta(minutes=5), first_id=10_000)
        with pytest.raises(Rejected) as too_old:
            await pipeline.submit_trades("BTCUSDT", late)
        with pytest.raises(Rejected) as unknown:
            await pipeline.submit_trades("NOPE", good)
        return (results, too_old.value, unknown.value, await store.trades("BTCUSDT"),
                await store.trades("ETHUSDT"))

    (ok, refused), too_old, unknown, btc, eth = run(store_url, body)
    assert ok == 500
    assert isinstance(refused, Rejected) and refused.row == 3
    assert str(refused).startswith("row 3: price ") and "tick grid of ETHUSDT" in str(refused)
    assert eth.empty
    assert_same_trades(btc, good)
    assert too_old.row == 0 and "time order" in str(too_old)
    assert "unknown symbol 'NOPE'" in str(unknown)


def test_overload_is_refused_at_once_and_recovers(store_url):
    parts = batches(6, 400)

    async def body(pipeline, store):
        await pipeline.submit_trades("BTCUSDT", parts[0])
        # five submitters at once: the queue takes two (800 rows), the rest would pass 1000
        results = await asyncio.gather(*(pipeline.submit_trades("BTCUSDT", p)
                                         for p in parts[1:]), return_exceptions=True)
        assert pipeline.pending_rows == 0
        for part, result in zip(parts[1:], results):
            if isinstance(result, Overloaded):
                await asyncio.sleep(result.retry_after)
                # retried in order (the refused batches came after the accepted ones)
                assert await pipeline.submit_trades("BTCUSDT", part) == len(part)
        with pytest.raises(Rejected, match="more than the pipeline takes at once"):
            await pipeline.submit_trades("BTCUSDT", trades(1001, START + pd.Timedelta(hours=1),
                                                           first_id=10**6))
        return results, await store.trades("BTCUSDT")

    results, stored = run(store_url, body, max_pending_rows=1000)
    assert results[:2] == [400, 400]
    assert all(isinstance(r, Overloaded) and 0 < r.retry_after <= 10 for r in results[2:])
    assert_same_trades(stored, pd.concat(parts))


def test_queue_trades_returns_once_queued_and_answers_once_stored(store_url):
    parts = batches(4, 300)

    async def body(pipeline, store):
        queued = []
        for part in parts[:3]:  # a feeder with batches in flight: each queued behind the last
            queued.append(await pipeline.queue_trades("BTCUSDT", part))
            assert not queued[-1].done()  # queued, not yet stored
        with pytest.raises(Overloaded):  # refused before anything of it is queued
            await pipeline.queue_trades("BTCUSDT", parts[3])
        assert pipeline.pending_rows == 900
        assert await asyncio.gather(*queued) == [300, 300, 300]
        again = await pipeline.queue_trades("BTCUSDT", parts[2])  # resent: nothing new
        assert again.done() and again.result() == 0
        assert await (await pipeline.queue_trades("BTCUSDT", parts[3])) == 300
        return await store.trades("BTCUSDT")

    assert_same_trades(run(store_url, body, max_pending_rows=1000), pd.concat(parts))


def test_stop_writes_everything_queued(store_url):
    parts = batches(5, 300)

    async def body(pipeline, store):
        tasks = [asyncio.ensure_future(pipeline.submit_trades("BTCUSDT", p)) for p in parts]
        await asyncio.sleep(0)  # the submitters queue their batches
        await pipeline.stop()
        assert all(t.done() for t in tasks) and [t.result() for t in tasks] == [300] * 5
        with pytest.raises(RuntimeError, match="not running"):
            await pipeline.submit_trades("BTCUSDT", parts[0])
        return await store.trades("BTCUSDT")

    assert_same_trades(run(store_url, body), pd.concat(parts))


async def drain(sub, state):
    """Apply every message waiting (the first read waits for the snapshot)."""
    kinds = []
    while True:
        if kinds and not sub.waiting:
            return kinds
        message = await asyncio.wait_for(sub.__anext__(), 30)
        state.apply(message)
        kinds.append(type(message).__name__)


@pytest.mark.parametrize("spec", ["1m", "T50"])
def test_a_chart_holds_the_batch_build_of_the_stored_trades(store_url, spec):
    """History first (the stream is seeded from the store), then live batches through the hub."""
    history = batches(8, 300, seconds=45)  # 6 minutes
    live = batches(6, 250, start=START + pd.Timedelta(minutes=6), seconds=20, seed=90)

    async def body(pipeline, store):
        for part in history:
            await pipeline.submit_trades("BTCUSDT", part)
        chart, sub = ChartState(), pipeline.hub.subscribe("BTCUSDT", spec, studies=["cvd"])
        kinds = await drain(sub, chart)
        for part in live:
            await pipeline.submit_trades("BTCUSDT", part)
            kinds += await drain(sub, chart)
        sub.close()
        return chart, kinds, await store.trades("BTCUSDT")

    chart, kinds, stored = run(store_url, body, history=10_000)
    assert kinds == ["Snapshot"] + ["Update"] * len(live)
    bars, cells = build(stored, spec, BTC)
    assert_bars_equal(chart.bars, bars)
    assert_cells_equal(chart.footprint, cells)
    # the study follows the stream from the trading day's start (00:00 UTC for crypto)
    assert (chart.studies["cvd"]["ts"].to_numpy() == bars["ts"].to_numpy()).all()
    np.testing.assert_allclose(chart.studies["cvd"]["cvd"].to_numpy(float),
                               cvd(bars).to_numpy(), rtol=1e-9)


def test_charts_with_the_same_key_share_one_follower(store_url):
    async def body(pipeline, store):
        await pipeline.submit_trades("BTCUSDT", trades(200))
        hub = pipeline.hub
        a = hub.subscribe("BTCUSDT", "1m", studies={"imbalances": {"ratio": 3}})
        b = hub.subscribe("BTCUSDT", "1m", studies={"imbalances": {"ratio": 3.0}})
        c = hub.subscribe("BTCUSDT", "5s")
        states = [ChartState() for _ in range(3)]
        for sub, state in zip((a, b, c), states):
            await drain(sub, state)
        streams = hub.streams()
        one = streams[("BTCUSDT", "1m")].fanout
        imbalances = CATALOGUE.get("imbalances").follower_key({"ratio": 3})
        shape = (sorted(streams), len(one), one.users(imbalances))
        await pipeline.submit_trades("BTCUSDT", trades(100, START + pd.Timedelta(minutes=1),
                                                       first_id=1000))
        got = [a.__anext__(), b.__anext__()]
        ua, ub = [await m for m in got]
        a.close(), b.close()
        left = sorted(hub.streams())
        c.close()
        return shape, ua, ub, left, sorted(hub.streams())

    shape, ua, ub, left, none = run(store_url, body)
    assert shape == ([("BTCUSDT", "1m"), ("BTCUSDT", "5s")], 1, 2)
    assert isinstance(ua, Update) and ua.studies["imbalances"] is ub.studies["imbalances"]
    assert left == [("BTCUSDT", "5s")] and none == []


def test_a_slow_subscriber_is_told_to_resync(store_url):
    live = batches(6, 100, seconds=20)

    async def body(pipeline, store):
        await pipeline.submit_trades("BTCUSDT", live[0])
        slow = pipeline.hub.subscribe("BTCUSDT", "1m", queue_size=3)
        fast = pipeline.hub.subscribe("BTCUSDT", "1m")
        slow_chart, fast_chart = ChartState(), ChartState()
        await drain(slow, slow_chart)
        await drain(fast, fast_chart)
        for part in live[1:]:  # the slow one reads nothing meanwhile: the pipeline goes on
            await pipeline.submit_trades("BTCUSDT", part)
            await drain(fast, fast_chart)
        first = await slow.__anext__()
        second = await slow.__anext__()
        slow_chart.apply(second)
        return first, second, slow_chart, fast_chart, slow.dropped

    first, second, slow_chart, fast_chart, dropped = run(store_url, body)
    assert isinstance(first, Resync) and "dropped" in first.reason and dropped == 3
    assert isinstance(second, Snapshot)
    assert_bars_equal(slow_chart.bars, fast_chart.bars)
    assert_cells_equal(slow_chart.footprint, fast_chart.footprint)
