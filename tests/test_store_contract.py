"""The store contract, run against every backend: DuckDB, PostgreSQL, PostgreSQL + TimescaleDB.

Expected bars and footprints come from ``tradeflow.bars`` over the same trades, an aggregation
written independently of the SQL the stores run.
"""
import asyncio

import numpy as np
import pandas as pd
import pytest

from data_access import open_async_store, open_store
from tradeflow.bars import build
from tradeflow.model import Instrument, ModelError

ES = Instrument("ES", 0.25, "CME", "future", 50.0, "America/Chicago 08:30-15:15,17:00-16:00")
BTC = Instrument("BTCUSDT", 0.1, "BINANCE", "crypto")
NUM = ["open", "high", "low", "close", "volume", "ask_volume", "bid_volume", "delta", "trades"]


def make_trades(n=3000, start="2026-01-05 21:30", hours=30, seed=0, inst=ES):
    """Random trades over ``hours`` (crossing a CME trading-day boundary), with repeated times."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, hours * 3600 * 10**6, n))
    offsets[1::7] = offsets[0::7][: len(offsets[1::7])]  # several trades in the same microsecond
    offsets.sort()
    ts = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(offsets, unit="us")
    ticks = 20000 + np.cumsum(rng.integers(-2, 3, n))
    frame = pd.DataFrame({
        "ts": ts, "price": ticks * inst.tick_size, "size": rng.integers(1, 20, n).astype(float),
        "side": rng.choice([-1, 1, 0], n, p=[0.45, 0.45, 0.1]).astype("int8"),
    })
    frame["trade_id"] = frame.groupby("ts").cumcount()
    return frame


@pytest.fixture
def es_store(store):
    store.add_instrument(ES)
    return store


def assert_bars_equal(got, want):
    assert len(got) == len(want)
    assert (got["ts"].to_numpy() == want["ts"].to_numpy()).all()
    np.testing.assert_allclose(got[NUM].to_numpy(float), want[NUM].to_numpy(float), rtol=1e-12)


def assert_cells_equal(got, want):
    assert len(got) == len(want)
    assert (got["ts"].to_numpy() == want["ts"].to_numpy()).all()
    cols = ["tick", "volume", "ask_volume", "bid_volume", "trades"]
    np.testing.assert_allclose(got[cols].to_numpy(float), want[cols].to_numpy(float))


# instruments ---------------------------------------------------------------------------------

def test_instruments_round_trip(store):
    store.add_instrument(ES)
    store.add_instrument(BTC)
    assert store.instrument("ES") == ES
    assert [i.symbol for i in store.instruments()] == ["BTCUSDT", "ES"]
    store.add_instrument(Instrument("ES", 0.5))  # replaces
    assert store.instrument("ES").tick_size == 0.5
    with pytest.raises(ModelError, match="unknown symbol 'NQ'"):
        store.instrument("NQ")


# trades ----------------------------------------------------------------------------------------

def test_trades_round_trip_and_dedupe(es_store):
    t = make_trades()
    assert es_store.write_trades("ES", t) == len(t)
    assert es_store.write_trades("ES", t) == 0  # the same data twice is stored once
    assert es_store.write_trades("ES", t.iloc[1000:1200]) == 0
    back = es_store.trades("ES")
    assert len(back) == len(t)
    assert (back["ts"].to_numpy() == t["ts"].to_numpy()).all()
    np.testing.assert_array_equal(back["price"], t["price"])
    np.testing.assert_array_equal(back["side"], t["side"])
    assert str(back["ts"].dtype) == "datetime64[ns, UTC]"


def test_overlapping_import_adds_only_new_trades(es_store):
    t = make_trades()
    assert es_store.write_trades("ES", t.iloc[:2000]) == 2000
    assert es_store.write_trades("ES", t.iloc[1500:]) == len(t) - 2000
    assert len(es_store.trades("ES")) == len(t)
    # the rollups of the overlap are exact, not double counted
    assert_bars_equal(es_store.bars("ES", "1m"), build(t, "1m", ES)[0])


def test_chunked_writes_keep_rollups_exact(es_store):
    """Chunks that split minutes, written out of order, give the rollups of all trades at once."""
    t = make_trades(n=3000, hours=2)  # ~25 trades a minute: every cut falls inside a minute
    cuts = [0, 377, 1000, 1013, 2222, 2900, 3000]
    parts = [t.iloc[a:b] for a, b in zip(cuts, cuts[1:])]
    for part in parts[3:] + parts[:3]:
        es_store.write_trades("ES", part)
    want_bars, want_cells = build(t, "1m", ES)
    assert_bars_equal(es_store.bars("ES", "1m"), want_bars)
    assert_cells_equal(es_store.footprint("ES", "1m"), want_cells)


def test_trade_ranges_and_last(es_store):
    t = make_trades()
    es_store.write_trades("ES", t)
    a, b = t["ts"].iloc[100], t["ts"].iloc[900]
    got = es_store.trades("ES", start=a, end=b)
    want = t[(t["ts"] >= a) & (t["ts"] < b)]
    assert len(got) == len(want)
    last = es_store.trades("ES", last=5)
    np.testing.assert_array_equal(last["trade_id"], t["trade_id"].iloc[-5:])
    assert (last["ts"].to_numpy() == t["ts"].iloc[-5:].to_numpy()).all()


# bars and footprint ------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["1m", "5m", "1h", "4h", "1d", "1w", "1M", "15s", "1s"])
def test_bars_match_an_independent_aggregation(es_store, spec):
    t = make_trades()
    es_store.write_trades("ES", t)
    assert_bars_equal(es_store.bars("ES", spec), build(t, spec, ES)[0])


@pytest.mark.parametrize("spec", ["1m", "30m", "1d", "20s"])
def test_footprint_matches_an_independent_aggregation(es_store, spec):
    t = make_trades()
    es_store.write_trades("ES", t)
    assert_cells_equal(es_store.footprint("ES", spec), build(t, spec, ES)[1])


def test_bar_ranges_and_last(es_store):
    t = make_trades()
    es_store.write_trades("ES", t)
    every = build(t, "5m", ES)[0]
    a, b = every["ts"].iloc[10], every["ts"].iloc[20]
    assert_bars_equal(es_store.bars("ES", "5m", start=a, end=b), every.iloc[10:20])
    # a start inside a bar leaves that bar out (ranges select bars by their open time)
    assert_bars_equal(es_store.bars("ES", "5m", start=a + pd.Timedelta("1min"), end=b),
                      every.iloc[11:20])
    assert_bars_equal(es_store.bars("ES", "5m", last=7), every.iloc[-7:])
    fp = es_store.footprint("ES", "5m", start=a, end=b)
    assert set(fp["ts"]) == set(every["ts"].iloc[10:20])


def test_non_time_specs_are_refused(es_store):
    with pytest.raises(ModelError, match="built from trades"):
        es_store.bars("ES", "T500")


def test_write_bars_rolls_up_to_the_base_timeframe(es_store):
    ts = pd.date_range("2026-01-06 14:30", periods=180, freq="1s", tz="UTC")
    rng = np.random.default_rng(3)
    close = 5000 + 0.25 * np.cumsum(rng.integers(-1, 2, len(ts)))
    bars = pd.DataFrame({"ts": ts, "open": close, "high": close + 0.5, "low": close - 0.25,
                         "close": close, "volume": 10.0, "ask_volume": 6.0, "bid_volume": 4.0,
                         "trades": 3})
    assert es_store.write_bars("ES", bars) == 3
    got = es_store.bars("ES", "1m")
    assert len(got) == 3
    first = got.iloc[0]
    assert first.open == close[0] and first.close == close[59]
    assert first.high == close[:60].max() + 0.5 and first.low == close[:60].min() - 0.25
    assert (first.volume, first.delta, first.trades) == (600, 120, 180)
    assert es_store.write_bars("ES", bars) == 3  # rewriting replaces, not adds
    assert es_store.bars("ES", "1m")["volume"].sum() == 1800


# depth and liquidations ---------------------------------------------------------------------

def test_depth_and_liquidations_round_trip(store):
    store.add_instrument(BTC)
    ts = pd.date_range("2026-01-06", periods=3, freq="1s", tz="UTC")
    depth = pd.DataFrame({"ts": ts.repeat(2), "side": [1, -1] * 3, "tick": [600001, 600000] * 3,
                          "size": [1.5, 2.0, 1.0, 2.5, 0.5, 3.0]})
    liq = pd.DataFrame({"ts": ts[:2], "side": [-1, 1], "price": [60000.1, 60010.0],
                        "size": [0.3, 1.2]})
    assert store.write_depth("BTCUSDT", depth) == 6
    assert store.write_liquidations("BTCUSDT", liq) == 2
    got = store.depth("BTCUSDT")
    assert len(got) == 6 and got["size"].sum() == depth["size"].sum()
    assert store.depth("BTCUSDT", start=ts[1], end=ts[2])["size"].sum() == 3.5
    back = store.liquidations("BTCUSDT")
    np.testing.assert_array_equal(back["price"], liq["price"])
    np.testing.assert_array_equal(back["side"], liq["side"])


def test_depth_snapshots_already_stored_are_skipped(store):
    """A snapshot (all rows of one time) already stored for the symbol is not stored again, even
    when the resent rows differ; new times in the same batch are, and other symbols are apart."""
    store.add_instrument(BTC)
    store.add_instrument(ES)
    ts = pd.date_range("2026-01-06 10:00", periods=4, freq="1s", tz="UTC")

    def snaps(times, size):
        return pd.DataFrame({"ts": times.repeat(2), "side": [-1, 1] * len(times),
                             "tick": [600000, 600001] * len(times),
                             "size": np.full(2 * len(times), size)})

    assert store.write_depth("BTCUSDT", snaps(ts[:2], 1.0)) == 4
    assert store.write_depth("BTCUSDT", snaps(ts[:2], 1.0)) == 0  # resent: nothing
    # ts[1] stored, ts[2] and ts[3] new; a resend with other sizes keeps the first snapshot
    assert store.write_depth("BTCUSDT", snaps(ts[1:], 9.0)) == 4
    got = store.depth("BTCUSDT")
    assert list(got.groupby("ts")["size"].sum()) == [2.0, 2.0, 18.0, 18.0]
    # the same time under another symbol is new; within one transaction it holds too
    with store.transaction():
        assert store.write_depth("ES", snaps(ts[:1], 1.0)) == 2
        assert store.write_depth("ES", snaps(ts[:1], 1.0)) == 0
    assert len(store.depth("ES")) == 2 and len(store.depth("BTCUSDT")) == 8


# all or nothing -----------------------------------------------------------------------------

def test_bad_rows_store_nothing(es_store):
    t = make_trades(n=500)
    t.loc[400, "price"] = np.nan
    with pytest.raises(ModelError, match="row 400: price must be positive"):
        es_store.write_trades("ES", t)
    t = make_trades(n=500)
    t.loc[7, "price"] = 1e300
    with pytest.raises(ModelError, match=r"row 7: price 1e\+300 is out of range"):
        es_store.write_trades("ES", t)
    t = make_trades(n=500)
    t.loc[10, "side"] = 3
    with pytest.raises(ModelError, match="side"):
        es_store.write_trades("ES", t)
    assert len(es_store.trades("ES")) == 0
    assert len(es_store.bars("ES", "1m")) == 0


def test_unknown_symbol_is_refused(store):
    with pytest.raises(ModelError, match="unknown symbol 'ES'"):
        store.write_trades("ES", make_trades(n=10))


def test_transaction_rolls_back_every_write(es_store):
    t = make_trades(n=500)
    with pytest.raises(RuntimeError, match="late failure"):
        with es_store.transaction() as tx:
            tx.write_trades("ES", t.iloc[:300])
            tx.write_trades("ES", t.iloc[300:])
            raise RuntimeError("late failure")
    assert len(es_store.trades("ES")) == 0
    assert len(es_store.footprint("ES")) == 0
    with es_store.transaction() as tx:
        tx.write_trades("ES", t.iloc[:300])
        tx.write_trades("ES", t.iloc[300:])
    assert len(es_store.trades("ES")) == 500
    assert_bars_equal(es_store.bars("ES", "1m"), build(t, "1m", ES)[0])


def test_data_outlives_the_connection(store_url):
    with open_store(store_url) as s:
        s.add_instrument(ES)
        s.write_trades("ES", make_trades(n=100))
    with open_store(store_url) as s:
        assert len(s.trades("ES")) == 100
        assert s.instrument("ES") == ES


def test_async_api_gives_the_same_answers(store_url):
    t = make_trades(n=800)

    async def run():
        s = await open_async_store(store_url)
        try:
            await s.add_instrument(ES)
            assert await s.write_trades("ES", t) == 800
            async with s.transaction() as tx:
                assert await tx.write_trades("ES", t) == 0
            return await s.bars("ES", "15m"), await s.footprint("ES", "15m")
        finally:
            await s.close()

    bars, cells = asyncio.run(run())
    want_bars, want_cells = build(t, "15m", ES)
    assert_bars_equal(bars, want_bars)
    assert_cells_equal(cells, want_cells)
