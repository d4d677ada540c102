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
from tradeflow.model import BarSpec, Instrument, ModelError, bar_start

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
                assert await tx.write_bars("ES", seconds_bars, seconds=1) == 90
            got = await s.bars("ES", "1s", source="external")
            assert_bars_equal(got, aggregate(seconds_bars, seconds_bars["ts"]))
            since = "2026-01-01"  # the trades' bars (the received ones make the minutes before)
            return await s.bars("ES", "15m", since), await s.footprint("ES", "15m")
        finally:
            await s.close()

    seconds_bars = received("2025-12-01 10:00", 90, "1s")  # minutes apart from the trades
    bars, cells = asyncio.run(run())
    want_bars, want_cells = build(t, "15m", ES)
    assert_bars_equal(bars, want_bars)
    assert_cells_equal(cells, want_cells)


# bars received built --------------------------------------------------------------------------

def received(start, n, freq, seed=5, inst=ES):
    """``n`` random bars of ``freq`` from ``start``, with every column a source sends."""
    rng = np.random.default_rng(seed)
    close = 5000 + inst.tick_size * np.cumsum(rng.integers(-3, 4, n))
    open_ = np.concatenate([[5000.0], close[:-1]])
    ask = rng.integers(0, 30, n).astype(float)
    bid = rng.integers(0, 30, n).astype(float)
    return pd.DataFrame({
        "ts": pd.date_range(start, periods=n, freq=freq, tz="UTC"), "open": open_,
        "high": np.maximum(open_, close) + inst.tick_size * rng.integers(0, 3, n),
        "low": np.minimum(open_, close) - inst.tick_size * rng.integers(0, 3, n),
        "close": close, "volume": ask + bid + 1, "ask_volume": ask, "bid_volume": bid,
        "trades": rng.integers(1, 9, n), "open_interest": 1000.0 + np.arange(n),
    })


def aggregate(bars, labels):
    """Bars grouped by ``labels`` (their open times), aggregated the plain way."""
    g = bars.groupby(pd.DatetimeIndex(labels).rename("ts"), sort=True)
    out = g.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                close=("close", "last"), volume=("volume", "sum"),
                ask_volume=("ask_volume", "sum"), bid_volume=("bid_volume", "sum"),
                trades=("trades", "sum"), open_interest=("open_interest", "last")).reset_index()
    out["delta"] = out["ask_volume"] - out["bid_volume"]
    return out


def test_one_second_bars_are_kept_as_they_came_and_rolled_up(es_store):
    bars = received("2026-01-06 14:29:30", 200, "1s")  # 14:29:30 .. 14:32:49
    assert es_store.write_bars("ES", bars, seconds=1) == 200
    got = es_store.bars("ES", "1s", source="external")
    assert_bars_equal(got, aggregate(bars, bars["ts"]))
    np.testing.assert_array_equal(got["open_interest"], bars["open_interest"])
    for spec in ("1m", "5m", "1h"):
        want = aggregate(bars, bars["ts"].dt.floor(spec.replace("m", "min")))
        assert_bars_equal(es_store.bars("ES", spec, source="external"), want)
        assert_bars_equal(es_store.bars("ES", spec), want)  # the rollups: no trades there
    np.testing.assert_array_equal(es_store.bars("ES", "1m")["open_interest"],
                                  aggregate(bars, bars["ts"].dt.floor("min"))["open_interest"])
    assert es_store.bars("ES", "5s", source="external")["volume"].sum() == bars["volume"].sum()
    # posting bars again replaces them (within one frame the later row wins)
    again = bars.iloc[[40, 41, 41]].copy()
    again["volume"] = [500.0, 1.0, 700.0]
    assert es_store.write_bars("ES", again, seconds=1) == 2
    bars.loc[[40, 41], "volume"] = [500.0, 700.0]
    assert_bars_equal(es_store.bars("ES", "1s", source="external"), aggregate(bars, bars["ts"]))
    assert_bars_equal(es_store.bars("ES", "1m"), aggregate(bars, bars["ts"].dt.floor("min")))
    assert len(es_store.footprint("ES")) == 0  # received bars have no cells
    # the same bars as 1-minute bars of their own are another timeframe, kept apart
    minutes = aggregate(bars, bars["ts"].dt.floor("min")).drop(columns="delta")
    es_store.write_bars("ES", minutes, seconds=60)
    assert_bars_equal(es_store.bars("ES", "1s", source="external"), aggregate(bars, bars["ts"]))


def test_hourly_bars_are_served_at_their_own_and_longer_timeframes(es_store):
    bars = received("2026-01-05 20:00", 30, "1h")  # across CME trading days (17:00 Chicago)
    assert es_store.write_bars("ES", bars, seconds=3600) == 30
    assert_bars_equal(es_store.bars("ES", "1h", source="external"), aggregate(bars, bars["ts"]))
    assert_bars_equal(es_store.bars("ES", "4h", source="external"),
                      aggregate(bars, bars["ts"].dt.floor("4h")))
    days = bar_start(bars["ts"], BarSpec.parse("1d"), ES.session)
    assert_bars_equal(es_store.bars("ES", "1d", source="external"), aggregate(bars, days))
    # not smeared into minutes: no rollups, and a shorter spec says why it has nothing
    assert len(es_store.bars("ES", "1m")) == 0 and len(es_store.bars("ES", "1h")) == 0
    with pytest.raises(ModelError, match=r"bar spec 1m cannot be built from the bars received "
                                         r"there \(the finest are 3600 s bars\)"):
        es_store.bars("ES", "1m", source="external")
    with pytest.raises(ModelError, match="bar spec 90m cannot be built"):
        es_store.bars("ES", "90m", source="external", last=3)
    # ranges select bars by open time; where nothing was received a read is just empty
    got = es_store.bars("ES", "1h", start="2026-01-06 02:00", end="2026-01-06 05:00",
                        source="external")
    assert_bars_equal(got, aggregate(bars.iloc[6:9], bars["ts"].iloc[6:9]))
    assert len(es_store.bars("ES", "1m", source="external", start="2026-02-01")) == 0
    # a day of hourly bars is not shadowed by a few finer bars inside it
    es_store.write_bars("ES", received("2026-01-06 03:00", 5, "1s"), seconds=1)
    assert_bars_equal(es_store.bars("ES", "1d", source="external"), aggregate(bars, days))
    # bars opening off the epoch grid (a session-aligned 4-hour chart) come back as they came
    four = received("2026-01-07 22:00", 3, "4h")
    es_store.write_bars("ES", four, seconds=4 * 3600)
    assert_bars_equal(es_store.bars("ES", "4h", source="external", start="2026-01-07 12:00"),
                      aggregate(four, four["ts"]))


def test_trades_win_the_minutes_they_share_with_received_bars(es_store):
    bars = received("2026-01-06 14:30", 180, "1s")  # 14:30 .. 14:32
    t = make_trades(n=40, start="2026-01-06 14:31", hours=1 / 60)  # all in 14:31
    from_trades = build(t, "1m", ES)[0]
    minutes = aggregate(bars, bars["ts"].dt.floor("min"))
    want = pd.concat([minutes.iloc[[0]], from_trades, minutes.iloc[[2]]], ignore_index=True)
    for trades_first in (False, True):  # the second round rewrites both, in the other order
        if trades_first:
            es_store.write_trades("ES", t)
        es_store.write_bars("ES", bars, seconds=1)
        es_store.write_trades("ES", t)
        assert_bars_equal(es_store.bars("ES", "1m"), want)
        # the footprint of 14:31 agrees with its bar; the received bars are still there
        assert es_store.footprint("ES")["volume"].sum() == from_trades["volume"].sum()
        assert_bars_equal(es_store.bars("ES", "1m", source="external"), minutes)


def test_received_bars_all_or_nothing(es_store):
    bars = received("2026-01-06 14:30", 100, "1s")
    bars.loc[57, "high"] = bars.loc[57, "low"] - 1
    with pytest.raises(ModelError, match="bars: row 57: high/low"):
        es_store.write_bars("ES", bars, seconds=1)
    for bad in (0, -60, 1.5, "60", 10**9):
        with pytest.raises(ModelError, match="seconds must be a whole number"):
            es_store.write_bars("ES", received("2026-01-06 14:30", 3, "1s"), seconds=bad)
    with pytest.raises(RuntimeError, match="late failure"):
        with es_store.transaction() as tx:
            tx.write_bars("ES", received("2026-01-06 15:00", 90, "1s"), seconds=1)
            raise RuntimeError("late failure")
    assert len(es_store.bars("ES", "1m")) == 0
    with pytest.raises(ModelError, match="bar source 'trades': use None"):
        es_store.bars("ES", "1s", source="trades")
    assert len(es_store.bars("ES", "1s", source="external")) == 0


def test_a_duckdb_read_does_not_wait_for_a_write_transaction(tmp_path):
    """A served DuckDB store writes from the pipeline's thread while charts read from others:
    a read sees the last committed state at once, never queued behind an open transaction."""
    import threading

    store = open_store(f"duckdb:///{tmp_path / 'x.duckdb'}")
    store.add_instrument(ES)
    t = make_trades(n=600)
    store.write_trades("ES", t.iloc[:300])
    inside, release = threading.Event(), threading.Event()

    def writer():
        with store.transaction() as tx:
            tx.write_trades("ES", t.iloc[300:])
            assert len(tx.trades("ES")) == 600  # the transaction reads its own writes
            inside.set()
            release.wait(60)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert inside.wait(60)
        seen = []
        reader = threading.Thread(target=lambda: seen.append(len(store.trades("ES"))))
        reader.start()
        reader.join(30)
        assert seen == [300], "the read waited for the write transaction"
    finally:
        release.set()
        thread.join()
    assert len(store.trades("ES")) == 600
    store.close()
