"""The served simulator continues the stored simulated market: a restart (or `tradeflow
simulate` before `serve`) leaves no gap between the history and the live stream."""
import asyncio

import pandas as pd

from data_access import open_async_store, open_store
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.live import Pipeline
from tradeflow.live.simulated import CATCH_UP_LIMIT, catch_up, fill_history
from tradeflow.model import Instrument

BTC = Instrument("BTCUSDT", 0.1, "BINANCE", "crypto")
T0 = pd.Timestamp("2026-03-02 10:00", tz="UTC")  # a Monday; crypto trades around the clock
T1 = T0 + pd.Timedelta("20min")                   # where the stored history ends


def _simulator():
    # a thin market, so that a day of catching up takes seconds
    return MarketSimulator(BTC, seed=0, trades_per_day=20_000, depth_interval="30s")


def _stored_history(url):
    with open_store(url) as store:
        store.add_instrument(BTC)
        fill_history(store, _simulator(), "BTCUSDT", T0, T1)


def _catch_up(url, since, clock):
    async def main():
        store = await open_async_store(url)
        pipeline = Pipeline(store)
        await pipeline.start()
        try:
            sim = _simulator()
            return await catch_up(pipeline, sim, "BTCUSDT", since, now=clock)
        finally:
            await pipeline.stop()
            await store.close()
    return asyncio.run(main())


def test_the_gap_since_the_last_stored_trade_is_filled_up_to_now(tmp_path):
    url = f"duckdb:///{tmp_path}/store.duckdb"
    _stored_history(url)
    with open_store(url) as store:
        last = store.trades("BTCUSDT", last=1)["ts"].iloc[-1]
    # the clock moves on while the gap is filled: it fills again up to the later time
    times = iter([T1 + pd.Timedelta("10min"), T1 + pd.Timedelta("10min"),
                  T1 + pd.Timedelta("12min")])
    later = T1 + pd.Timedelta("12min")
    n = _catch_up(url, last, lambda: next(times, later))
    want = _simulator().generate(T0, later).trades
    with open_store(url) as store:
        got = store.trades("BTCUSDT")
    assert n > 0
    assert len(got) == len(want) and got["trade_id"].is_unique
    assert (got["trade_id"].to_numpy() == want["trade_id"].to_numpy()).all()
    assert got["ts"].max() < later <= got["ts"].max() + pd.Timedelta("1min")


def test_a_gap_longer_than_the_limit_stays(tmp_path):
    url = f"duckdb:///{tmp_path}/store.duckdb"
    _stored_history(url)
    assert _catch_up(url, T1, lambda: T1 + CATCH_UP_LIMIT + pd.Timedelta("1s")) == 0
    assert _catch_up(url, T1, lambda: T1 + CATCH_UP_LIMIT) > 0
    with open_store(url) as store:
        assert store.trades("BTCUSDT")["ts"].max() >= T1 + CATCH_UP_LIMIT - pd.Timedelta("1min")
