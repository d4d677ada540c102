"""The market simulator: determinism, grid, ids, and the statistics that make it a market."""
from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from tradeflow.ingest.simulator import (
    FAR_SPAN,
    MarketSimulator,
    SimBatch,
    default_start_price,
)
from tradeflow.model import (
    DEPTH_COLUMNS, LIQUIDATION_COLUMNS, TRADE_COLUMNS, Instrument, empty_frame,
)

ES = Instrument("ES", 0.25, exchange="CME", asset_class="future", point_value=50.0,
                session="America/Chicago 08:30-15:15,17:00-16:00")
BTC = Instrument("BTCUSDT", 0.1, exchange="BINANCE", asset_class="crypto")
EURO = Instrument("6E", 0.00005, exchange="CME", asset_class="future",
                  session="America/Chicago 07:20-14:00,17:00-16:00")

WEDNESDAY = pd.Timestamp("2024-03-13", tz="UTC")
CHICAGO = "America/Chicago"


def assert_batches_equal(a: SimBatch, b: SimBatch) -> None:
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.depth, b.depth)
    pd.testing.assert_frame_equal(a.liquidations, b.liquidations)


def concat(batches) -> SimBatch:
    batches = list(batches)
    return SimBatch(*(pd.concat([getattr(b, n) for b in batches], ignore_index=True)
                      for n in ("trades", "depth", "liquidations")))


def local(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert(CHICAGO)


@pytest.fixture(scope="module")
def es_day() -> SimBatch:
    """A Wednesday of ES with the default settings (200k trades, 1 s depth, 20 levels)."""
    return MarketSimulator(ES, seed=7).generate(WEDNESDAY, WEDNESDAY + pd.Timedelta("1D"))


@pytest.fixture(scope="module")
def es_week() -> pd.DataFrame:
    """Trades of Monday 2024-03-11 to Sunday 2024-03-17 (sparse depth to keep it quick)."""
    sim = MarketSimulator(ES, seed=3, depth_interval="1h")
    return sim.generate("2024-03-11", "2024-03-18").trades


@pytest.fixture(scope="module")
def btc_day() -> SimBatch:
    return MarketSimulator(BTC, seed=11).generate(WEDNESDAY, WEDNESDAY + pd.Timedelta("1D"))


# --------------------------------------------------------------------------------- layout


def test_frames_have_the_model_layouts_and_dtypes(es_day, btc_day):
    for batch in (es_day, btc_day):
        for frame, cols in ((batch.trades, TRADE_COLUMNS), (batch.depth, DEPTH_COLUMNS),
                            (batch.liquidations, LIQUIDATION_COLUMNS)):
            assert tuple(frame.columns) == cols
            assert frame.dtypes.to_dict() == empty_frame(cols).dtypes.to_dict()
        assert str(batch.trades["ts"].dtype) == "datetime64[ns, UTC]"
        assert batch.trades["ts"].is_monotonic_increasing
        assert batch.depth["ts"].is_monotonic_increasing
        assert batch.liquidations["ts"].is_monotonic_increasing


def test_a_day_has_about_the_requested_number_of_trades(es_day, btc_day):
    assert 140_000 < len(es_day.trades) < 270_000
    assert 140_000 < len(btc_day.trades) < 270_000


@pytest.mark.parametrize("inst", [ES, BTC, EURO])
def test_prices_lie_on_the_tick_grid(inst):
    trades = MarketSimulator(inst, seed=1).generate(WEDNESDAY + pd.Timedelta("14h"),
                                                    WEDNESDAY + pd.Timedelta("16h")).trades
    assert len(trades) > 1000
    ticks = trades["price"].to_numpy() / inst.tick_size
    assert np.abs(ticks - np.rint(ticks)).max() < 1e-6
    # and they print cleanly: the stored float is exactly the rounded grid price
    np.testing.assert_array_equal(trades["price"].to_numpy(), inst.to_price(np.rint(ticks)))


def test_trade_ids_strictly_increase_across_chunks_and_days():
    sim = MarketSimulator(BTC, seed=2, depth_interval="1min")
    trades = concat(sim.history("2024-03-13 22:00", "2024-03-14 02:00", chunk="25min")).trades
    assert len(trades) > 1000
    assert trades["trade_id"].dtype == np.int64
    assert (np.diff(trades["trade_id"].to_numpy()) > 0).all()


def test_sides_are_aggressor_sides(es_day):
    assert set(np.unique(es_day.trades["side"])) == {-1, 1}
    assert (es_day.trades["size"] > 0).all()


def test_start_price_sets_the_level():
    assert default_start_price(ES) == 5000.0
    assert default_start_price(BTC) == 60000.0
    trades = MarketSimulator(ES, seed=4, start_price=4000, depth_interval="1h").generate(
        WEDNESDAY, WEDNESDAY + pd.Timedelta("1D")).trades
    assert 4000 * 0.75 < trades["price"].median() < 4000 * 1.25


# --------------------------------------------------------------------------------- determinism


def test_same_seed_same_output_and_different_seed_differs():
    start, end = WEDNESDAY + pd.Timedelta("14h"), WEDNESDAY + pd.Timedelta("15h")
    a = MarketSimulator(BTC, seed=5).generate(start, end)
    b = MarketSimulator(BTC, seed=5).generate(start, end)
    c = MarketSimulator(BTC, seed=6).generate(start, end)
    assert_batches_equal(a, b)
    assert len(a.liquidations) > 0
    assert not a.trades["price"].equals(c.trades["price"])
    assert not a.trades["ts"].equals(c.trades["ts"])


def test_chunking_does_not_change_the_output():
    start, end = "2024-03-13 13:00:30", "2024-03-13 15:10:00"
    whole = MarketSimulator(ES, seed=9).generate(start, end)
    chunked = concat(MarketSimulator(ES, seed=9).history(start, end, chunk="7min"))
    assert_batches_equal(whole, chunked)
    assert len(whole.trades) > 10_000


def test_two_one_day_calls_equal_one_two_day_call():
    kw = dict(seed=12, depth_interval="30s")
    day1 = MarketSimulator(ES, **kw).generate("2024-03-14", "2024-03-15")
    day2 = MarketSimulator(ES, **kw).generate("2024-03-15", "2024-03-16")  # fresh simulator
    both = MarketSimulator(ES, **kw).generate("2024-03-14", "2024-03-16")
    assert_batches_equal(concat([day1, day2]), both)
    # the price carries over the day boundary: no jump at midnight UTC
    last, first = day1.trades["price"].iloc[-1], day2.trades["price"].iloc[0]
    assert abs(first - last) < 20 * ES.tick_size


def test_depth_settings_leave_the_trades_alone():
    start, end = WEDNESDAY + pd.Timedelta("14h"), WEDNESDAY + pd.Timedelta("14h30min")
    a = MarketSimulator(BTC, seed=3).generate(start, end)
    b = MarketSimulator(BTC, seed=3, depth_interval="7s", depth_levels=5).generate(start, end)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.liquidations, b.liquidations)
    assert (b.depth.groupby("ts").size() == 10).all()
    assert (b.depth["ts"].astype("int64") % 7_000_000_000 == 0).all()


def test_a_sparse_market_still_works():
    sim = MarketSimulator(ES, seed=2, trades_per_day=50, depth_interval="1min")
    batch = sim.generate("2024-03-13", "2024-03-15")
    assert 30 < len(batch.trades) < 200
    assert (np.diff(batch.trades["trade_id"].to_numpy()) > 0).all()
    assert len(batch.depth) > 0


def test_history_covers_the_range_in_order():
    batches = list(MarketSimulator(BTC, seed=1, depth_interval="10s").history(
        "2024-03-13 10:00", "2024-03-13 12:30", chunk="1h"))
    assert [b.start.hour for b in batches] == [10, 11, 12]
    assert batches[-1].end == pd.Timestamp("2024-03-13 12:30", tz="UTC")
    for b in batches:
        ts = b.trades["ts"]
        assert ts.min() >= b.start and ts.max() < b.end


# --------------------------------------------------------------------------------- statistics


def test_arrivals_cluster(es_day):
    """Per-second counts are overdispersed (a Poisson process would give a ratio of 1)."""
    ts = es_day.trades["ts"]
    t = local(ts)
    mid = es_day.trades[(t.dt.hour >= 10) & (t.dt.hour < 13)]  # mid-session: flat-ish curve
    seconds = mid["ts"].dt.floor("s").value_counts()
    full = seconds.reindex(pd.date_range(mid["ts"].min().floor("s"), mid["ts"].max().floor("s"),
                                         freq="s", unit="ns"), fill_value=0)
    assert full.var() / full.mean() > 2.0


def test_sweeps_print_several_trades_at_one_timestamp(es_day):
    trades = es_day.trades
    per_ts = trades.groupby("ts").size()
    assert (per_ts >= 3).sum() > 100
    # a sweep is one aggressor walking the book: one side, prices moving its way
    multi = trades[trades["ts"].isin(per_ts[per_ts >= 3].index)]
    groups = multi.groupby("ts")
    one_side = groups["side"].nunique() == 1
    assert one_side.mean() > 0.95
    walk = groups.apply(lambda g: bool((np.diff(g["price"].to_numpy()) * g["side"].iloc[0]
                                        >= 0).all()))
    assert walk[one_side].mean() > 0.95


def test_aggressor_side_is_autocorrelated(es_day, btc_day):
    for batch in (es_day, btc_day):
        side = batch.trades["side"].to_numpy(dtype=float)
        assert np.corrcoef(side[:-1], side[1:])[0, 1] > 0.2


def test_aggression_moves_the_price(btc_day):
    trades = btc_day.trades
    minute = trades["ts"].dt.floor("min")
    delta = (trades["size"] * trades["side"]).groupby(minute).sum()
    close = trades.groupby(minute)["price"].last()
    change = close.diff().dropna()
    assert np.corrcoef(delta.loc[change.index], change)[0, 1] > 0.3


def test_trade_sizes_are_heavy_tailed(es_day):
    size = es_day.trades["size"]
    assert size.median() <= 2
    assert (size == 1).mean() > 0.3
    assert size.max() >= 50 * size.median()  # block trades
    assert (size >= 20).sum() > 50


def test_intraday_volume_curve_is_u_shaped(es_week):
    t = local(es_week["ts"])
    minutes = t.dt.hour * 60 + t.dt.minute

    def count(lo, hi):
        return int(((minutes >= lo) & (minutes < hi)).sum())

    first = count(8 * 60 + 30, 9 * 60)         # 08:30-09:00 CT
    middle = count(11 * 60 + 30, 12 * 60)      # 11:30-12:00 CT
    last = count(14 * 60 + 45, 15 * 60 + 15)   # 14:45-15:15 CT
    overnight = count(1 * 60, 1 * 60 + 30)     # 01:00-01:30 CT
    assert first > 1.5 * middle and last > 1.3 * middle
    assert overnight < 0.5 * middle


def test_no_trades_outside_the_session(es_week):
    t = local(es_week["ts"])
    minutes = t.dt.hour * 60 + t.dt.minute
    assert not ((minutes >= 16 * 60) & (minutes < 17 * 60)).any()  # daily maintenance break
    assert not (t.dt.day_of_week == 5).any()  # Saturday
    sunday = t[t.dt.day_of_week == 6]
    assert len(sunday) > 0 and (sunday.dt.hour >= 17).all()  # Sunday evening open only
    friday = t[t.dt.day_of_week == 4]
    assert (friday.dt.hour < 16).all()


def test_crypto_trades_around_the_clock_with_a_mild_cycle(btc_day):
    hourly = btc_day.trades.groupby(btc_day.trades["ts"].dt.hour).size()
    assert len(hourly) == 24
    assert hourly.max() < 6 * hourly.min()


def test_without_the_daily_cycle_activity_does_not_trend():
    """``daily_cycle=False`` (for load and memory measurements): the night and the afternoon
    trade alike, as do a weekday and a Sunday, and a day still has about the count asked for."""
    def hours(daily_cycle, day):
        sim = MarketSimulator(BTC, seed=5, depth_interval="1h", daily_cycle=daily_cycle)
        t = sim.generate(day, day + pd.Timedelta("1D")).trades
        return t.groupby(t["ts"].dt.hour).size(), len(t)

    sunday = WEDNESDAY + pd.Timedelta("4D")
    (cycle, _), (flat, n), (_, n_sunday) = (
        hours(True, WEDNESDAY), hours(False, WEDNESDAY), hours(False, sunday))
    night, afternoon = slice(1, 6), slice(13, 18)  # around the cycle's trough and its peak
    assert cycle[night].sum() < 0.72 * cycle[afternoon].sum()
    assert 0.8 < flat[night].sum() / flat[afternoon].sum() < 1.3
    assert 0.85 < n / 200_000 < 1.15 and 0.85 < n_sunday / n < 1.15


# --------------------------------------------------------------------------------- depth


@pytest.mark.parametrize("interval", ["1s", "250ms"])
def test_depth_snapshots_every_interval_with_asks_above_bids(interval):
    levels = 10
    sim = MarketSimulator(BTC, seed=8, depth_interval=interval, depth_levels=levels)
    start = WEDNESDAY + pd.Timedelta("15h")
    batch = sim.generate(start, start + pd.Timedelta("5min"))
    depth = batch.depth
    snaps = depth.groupby("ts")
    expected = pd.date_range(start, start + pd.Timedelta("5min"), freq=interval,
                             inclusive="left", unit="ns")
    times = pd.DatetimeIndex(depth["ts"].unique())
    assert len(times) == len(expected) and (times == expected).all()
    assert (snaps.size() == 2 * levels).all()
    best_ask = depth[depth["side"] == 1].groupby("ts")["tick"].min()
    best_bid = depth[depth["side"] == -1].groupby("ts")["tick"].max()
    assert (best_ask - best_bid == 1).all()  # one-tick spread, asks above bids
    assert (depth.groupby(["ts", "side"])["tick"].nunique() == levels).all()
    assert (depth["size"] > 0).all()
    # the book follows the tape: last trade before each snapshot is at or near the touch
    last = pd.merge_asof(best_bid.rename("bid").reset_index(),
                         batch.trades[["ts", "price"]], on="ts", direction="backward").dropna()
    gap = (BTC.to_tick(last["price"]) - last["bid"]).abs()
    assert gap.median() <= 10


def test_far_levels_sit_beyond_the_touch_band_on_a_fixed_grid():
    near, far = 5, 4
    sim = MarketSimulator(BTC, seed=8, depth_levels=near, far_levels=far)
    start = WEDNESDAY + pd.Timedelta("15h")
    depth = sim.generate(start, start + pd.Timedelta("2min")).depth
    assert (depth.groupby("ts").size() == 2 * (near + far)).all()
    bid = depth["ts"].map(depth[depth["side"] == -1].groupby("ts")["tick"].max())
    ask = depth["ts"].map(depth[depth["side"] == 1].groupby("ts")["tick"].min())
    beyond = (depth["tick"] < bid - (near - 1)) | (depth["tick"] > ask + (near - 1))
    far_rows = depth[beyond]
    assert len(far_rows) == 2 * far * depth["ts"].nunique()
    assert (far_rows["tick"] % sim.far_step == 0).all() and sim.far_step > 1
    # they reach about FAR_SPAN of the price, and the price moved: the grid holds, not the offsets
    reach = (far_rows["tick"] - bid[beyond]).abs().max() * BTC.tick_size
    assert 0.5 * FAR_SPAN * sim.start_price < reach < 1.5 * FAR_SPAN * sim.start_price
    assert (depth.groupby("ts")["tick"].nunique() == 2 * (near + far)).all()  # no level twice
    with pytest.raises(ValueError, match="far_levels"):
        MarketSimulator(BTC, far_levels=-1)


def test_depth_grows_away_from_the_touch(es_day):
    depth = es_day.depth.iloc[:400_000]
    best_bid = depth[depth["side"] == -1].groupby("ts")["tick"].transform("max")
    dist = np.where(depth["side"] == 1, depth["tick"] - best_bid - 1, best_bid - depth["tick"])
    mean_by_level = depth["size"].groupby(dist).mean()
    assert mean_by_level.iloc[-1] > 2 * mean_by_level.iloc[0]


def test_no_book_while_the_market_is_closed():
    saturday = pd.Timestamp("2024-03-16 12:00", tz="UTC")
    batch = MarketSimulator(ES, seed=1).generate(saturday, saturday + pd.Timedelta("1h"))
    assert batch.trades.empty and batch.depth.empty and batch.liquidations.empty
    assert tuple(batch.depth.columns) == DEPTH_COLUMNS


# --------------------------------------------------------------------------------- liquidations


def test_liquidations_only_for_crypto(es_day, btc_day):
    assert es_day.liquidations.empty
    liq = btc_day.liquidations
    assert len(liq) > 50
    assert set(np.unique(liq["side"])) <= {-1, 1}
    ticks = liq["price"] / BTC.tick_size
    assert np.allclose(ticks, np.rint(ticks))
    assert liq["ts"].isin(btc_day.trades["ts"]).all()  # forced orders execute as trades
    assert liq["size"].median() > btc_day.trades["size"].median()


def test_liquidations_come_with_fast_moves(btc_day):
    trades = btc_day.trades
    minute = trades["ts"].dt.floor("min")
    move = trades.groupby(minute)["price"].agg(lambda p: p.iloc[-1] - p.iloc[0]).abs()
    liq_minutes = btc_day.liquidations["ts"].dt.floor("min").unique()
    assert move.loc[move.index.isin(liq_minutes)].median() > 1.5 * move.median()


# --------------------------------------------------------------------------------- streaming


def test_stream_continues_after_history():
    sim = MarketSimulator(BTC, seed=21, trades_per_day=1_000_000, depth_interval="5s")
    end = pd.Timestamp("2024-03-13 12:00", tz="UTC")
    history = list(sim.history(end - pd.Timedelta("30min"), end, chunk="10min"))
    assert history[-1].end == end

    async def take(n):
        out = []
        async for batch in sim.stream(speed=600.0, batch_interval=0.05):
            out.append(batch)
            if len(out) == n:
                break
        return out

    live = asyncio.run(take(4))
    assert live[0].start == end
    for a, b in zip(live, live[1:]):
        assert a.end == b.start
    trades = pd.concat([b.trades for b in live], ignore_index=True)
    assert len(trades) > 0 and trades["ts"].min() >= end
    assert trades["trade_id"].min() > history[-1].trades["trade_id"].max()
    # live batches are slices of the same deterministic market
    replay = MarketSimulator(BTC, seed=21, trades_per_day=1_000_000, depth_interval="5s")
    assert_batches_equal(concat(live), replay.generate(live[0].start, live[-1].end))


def test_fresh_stream_starts_now():
    sim = MarketSimulator(BTC, seed=1, trades_per_day=2_000_000)

    async def first():
        async for batch in sim.stream(speed=20.0, batch_interval=0.05):
            return batch

    before = pd.Timestamp.now("UTC")
    batch = asyncio.run(first())
    assert abs(batch.start - before) < pd.Timedelta("5s")
    assert batch.end > batch.start


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="seed"):
        MarketSimulator(ES, seed=-1)
    with pytest.raises(ValueError, match="depth_interval"):
        MarketSimulator(ES, depth_interval="0s")
    with pytest.raises(ValueError, match="depth_levels"):
        MarketSimulator(ES, depth_levels=0)
    with pytest.raises(ValueError, match="trades_per_day"):
        MarketSimulator(ES, trades_per_day=0)
    with pytest.raises(ValueError, match="chunk"):
        list(MarketSimulator(ES).history("2024-03-13", "2024-03-14", chunk="0s"))


def test_next_open_is_the_first_minute_that_trades():
    sim = MarketSimulator(ES, seed=0)
    # open: the time itself
    assert sim.next_open("2026-01-06 15:00:00.5") == pd.Timestamp("2026-01-06 15:00:00.5", tz="UTC")
    # the daily maintenance break 16:00-17:00 Chicago (22:00-23:00 UTC in winter)
    assert sim.next_open("2026-01-06 22:10") == pd.Timestamp("2026-01-06 23:00", tz="UTC")
    # the weekend: from Friday's close to Sunday 17:00 Chicago
    assert sim.next_open("2026-01-03 12:00") == pd.Timestamp("2026-01-04 23:00", tz="UTC")
    # in summer (CDT) the same local open is an hour earlier in UTC
    assert sim.next_open("2026-07-04 12:00") == pd.Timestamp("2026-07-05 22:00", tz="UTC")
    # the simulator produces trades from that minute on, and none before it
    batch = sim.generate("2026-01-04 20:00", "2026-01-04 23:30")
    assert batch.trades["ts"].min() >= pd.Timestamp("2026-01-04 23:00", tz="UTC")
    assert len(batch.trades) > 0
    # a market that trades around the clock is always open
    assert MarketSimulator(BTC).next_open("2026-01-03 12:00") == pd.Timestamp("2026-01-03 12:00",
                                                                             tz="UTC")
