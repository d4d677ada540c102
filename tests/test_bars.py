"""Trades -> bars and footprint: hand-worked examples and batch/incremental agreement."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeflow import model
from tradeflow.bars import (BarAggregator, BarUpdate, build, build_bars, build_footprint,
                            heikin_ashi)
from tradeflow.model import (BAR_COLUMNS, FOOTPRINT_COLUMNS, TRADE_COLUMNS, BarSpec, Instrument,
                             ModelError)

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
T0 = pd.Timestamp("2026-01-05 15:00", tz="UTC")


def trades(ticks, sizes=None, sides=None, seconds=None, inst=ES):
    n = len(ticks)
    return pd.DataFrame({
        "ts": T0 + pd.to_timedelta(seconds if seconds is not None else np.arange(n), unit="s"),
        "price": np.asarray(ticks, float) * inst.tick_size,
        "size": np.asarray(sizes if sizes is not None else [1] * n, float),
        "side": np.asarray(sides if sides is not None else [1] * n, "int8"),
        "trade_id": np.arange(n),
    })


def test_time_bars_by_hand():
    t = trades([20000, 20004, 19998, 20001, 20002], sizes=[1, 2, 3, 4, 5],
               sides=[1, -1, -1, 1, 0], seconds=[0, 10, 59, 60, 130])
    bars = build_bars(t, "1m", ES)
    assert list(bars["ts"]) == [T0, T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("2min")]
    first = bars.iloc[0]
    assert (first.open, first.high, first.low, first.close) == (5000.0, 5001.0, 4999.5, 4999.5)
    assert (first.volume, first.ask_volume, first.bid_volume, first.delta, first.trades) == (
        6, 1, 5, -4, 3)
    # the unknown-side trade counts in volume only
    last = bars.iloc[2]
    assert (last.volume, last.ask_volume, last.bid_volume, last.delta) == (5, 0, 0, 0)


def test_footprint_by_hand():
    t = trades([20000, 20000, 20001, 20000], sizes=[2, 3, 4, 1], sides=[1, -1, 1, 1])
    fp = build_footprint(t, "1m", ES)
    assert fp["tick"].tolist() == [20000, 20001]
    assert fp["ask_volume"].tolist() == [3, 4]
    assert fp["bid_volume"].tolist() == [3, 0]
    assert fp["volume"].tolist() == [6, 4]
    assert fp["trades"].tolist() == [3, 1]


@pytest.mark.parametrize("spec", ["1m", "T2"])
def test_frames_have_the_model_layout(spec):
    """Bars and cells, of a batch build and of every part of an update, in the model's column
    order and dtypes (empty frames included)."""
    t = trades([20000, 20004, 19998, 20001, 20002], seconds=[0, 10, 59, 60, 130])
    bars, cells = build(t, spec, ES)
    up = BarAggregator(ES, spec).update(t.iloc[:0])
    for frame in (bars, up.closed, up.current):
        assert tuple(frame.columns) == BAR_COLUMNS
        assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
        assert frame["trades"].dtype == "int64" and frame["open_interest"].dtype == "float64"
    for frame in (cells, up.closed_footprint, up.current_footprint):
        assert tuple(frame.columns) == FOOTPRINT_COLUMNS
        assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
        assert frame["tick"].dtype == "int64" and frame["volume"].dtype == "float64"


def test_tick_bars_by_hand():
    bars = build_bars(trades([1, 2, 3, 4, 5]), "T2", ES)
    assert bars["trades"].tolist() == [2, 2, 1]
    assert (bars["open"] / 0.25).tolist() == [1, 3, 5]


def test_volume_bars_never_split_a_trade():
    bars = build_bars(trades([1, 2, 3, 4, 5], sizes=[3, 4, 2, 5, 1]), "V5", ES)
    assert bars["volume"].tolist() == [7, 7, 1]
    assert bars["trades"].tolist() == [2, 2, 1]


def test_range_bars_by_hand():
    bars = build_bars(trades([0, 1, 2, 3, 1, 0, -1]), "R2", ES)
    assert (bars["open"] / 0.25).tolist() == [0, 3, 0]
    assert ((bars["high"] - bars["low"]) / 0.25).tolist() == [2, 2, 1]
    assert bars["trades"].tolist() == [3, 2, 2]


def test_renko_by_hand():
    # box of 2 ticks from 0: up 0->2, up 2->4; the reversal needs 2 boxes: 4 -> ... 0 gives 2->0
    bars = build_bars(trades([0, 1, 2, 3, 4, 3, 2, 1, 0, 1]), "RK2", ES)
    grid = ((bars[["open", "close"]]) / 0.25).astype(int).values.tolist()
    assert grid[:3] == [[0, 2], [2, 4], [2, 0]]
    assert bars["trades"].tolist() == [3, 2, 4, 1]  # the last brick is still forming
    # a jump of three boxes makes two filler bricks with no trades
    jump = build_bars(trades([0, 1, 6]), "RK2", ES)
    assert ((jump[["open", "close"]]) / 0.25).astype(int).values.tolist() == [[0, 2], [2, 4], [4, 6]]
    assert jump["trades"].tolist() == [3, 0, 0]


def test_daily_bars_follow_the_trading_day():
    # 23:30 UTC on Jan 5 is 17:30 in Chicago: the CME trading day of Jan 6 has begun
    t = trades([20000, 20001, 20002], seconds=[0, 8 * 3600 + 1800, 8 * 3600 + 1900])
    bars = build_bars(t, "1d", ES)
    assert list(bars["ts"].dt.strftime("%Y-%m-%d")) == ["2026-01-05", "2026-01-06"]


def test_heikin_ashi_by_hand():
    bars = pd.DataFrame({"open": [10.0, 12.0], "high": [14.0, 15.0], "low": [9.0, 11.0],
                         "close": [12.0, 14.0]})
    ha = heikin_ashi(bars)
    assert ha["close"].tolist() == [11.25, 13.0]
    assert ha["open"].tolist() == [11.0, (11.0 + 11.25) / 2]
    assert ha["high"].tolist() == [14.0, 15.0]
    assert ha["low"].tolist() == [9.0, 11.0]
    assert len(build_bars(trades([1, 2, 3]), "1m:HA", ES)) == 1


def test_out_of_order_batch_is_refused():
    agg = BarAggregator(ES, "1m")
    agg.update(trades([1, 2], seconds=[120, 121]))
    with pytest.raises(ModelError, match="older than the last trade"):
        agg.update(trades([1], seconds=[0]))
    # older than the last trade, though in the open bar: refused too, and nothing changed
    with pytest.raises(ModelError, match="older than the last trade already aggregated"):
        agg.update(trades([5], seconds=[120.5]))
    up = agg.update(trades([3], seconds=[122]))
    assert up.current["volume"].tolist() == [3] and up.current["trades"].tolist() == [3]


def test_update_carries_its_trades_and_liquidations():
    agg = BarAggregator(ES, "1m")
    batch = trades([4, 5, 6], seconds=[2, 1, 3])  # sorted by the aggregator
    liqs = pd.DataFrame({"ts": [T0], "side": np.int8([1]), "price": [1.25], "size": [2.0]})
    up = agg.update(batch, liqs)
    assert up.trades["price"].tolist() == [5 * ES.tick_size, 4 * ES.tick_size, 6 * ES.tick_size]
    assert list(up.trades.columns) == list(TRADE_COLUMNS)
    pd.testing.assert_frame_equal(up.liquidations, liqs)
    up = agg.update(liquidations=liqs)  # liquidations alone: the forming bar is re-sent as is
    assert up.trades.empty and up.closed.empty and up.current["trades"].tolist() == [3]
    assert agg.update().liquidations is None  # (none: no frame built for nothing)
    assert BarUpdate is model.BarUpdate  # one type, defined in the model


# --------------------------------------------------------------------------------------------
# Invariants and batch == incremental, for every bar kind

SPECS = ["1s", "1m", "5m", "1h", "1d", "T3", "T50", "V10", "V97", "R4", "R1", "RK2", "RK5"]


@st.composite
def trade_lists(draw):
    n = draw(st.integers(1, 300))
    steps = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0, 0, 1, 7, 50, 700, 4000]), min_size=n, max_size=n))
    sizes = draw(st.lists(st.sampled_from([1.0, 2.0, 0.5, 7.0, 13.0, 0.125]), min_size=n,
                          max_size=n))
    sides = draw(st.lists(st.sampled_from([1, -1, 0]), min_size=n, max_size=n))
    cuts = draw(st.lists(st.integers(0, n), max_size=8))
    frame = pd.DataFrame({
        "ts": T0 + pd.to_timedelta(np.cumsum(gaps) * 100, unit="ms"),
        "price": (20000 + np.cumsum(steps)) * 0.25,
        "size": sizes, "side": np.asarray(sides, "int8"), "trade_id": np.arange(n),
    })
    return frame, sorted(set(cuts))


def run_incremental(t, spec, cuts):
    agg = BarAggregator(ES, spec)
    bars, cells = [], []
    for part in np.split(np.arange(len(t)), cuts):
        up = agg.update(t.iloc[part])
        bars.append(up.closed)
        cells.append(up.closed_footprint)
    bars.append(up.current)
    cells.append(up.current_footprint)
    return pd.concat(bars, ignore_index=True), pd.concat(cells, ignore_index=True)


NUM = ["open", "high", "low", "close", "volume", "ask_volume", "bid_volume", "delta", "trades"]


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=trade_lists())
def test_incremental_equals_batch(spec, data):
    t, cuts = data
    bars, cells = build(t, spec, ES)
    inc_bars, inc_cells = run_incremental(t, spec, cuts)
    assert len(inc_bars) == len(bars)
    assert (inc_bars["ts"].to_numpy() == bars["ts"].to_numpy()).all()
    np.testing.assert_allclose(inc_bars[NUM].to_numpy(float), bars[NUM].to_numpy(float))
    assert len(inc_cells) == len(cells)
    assert (inc_cells["ts"].to_numpy() == cells["ts"].to_numpy()).all()
    np.testing.assert_allclose(inc_cells.drop(columns="ts").to_numpy(float),
                               cells.drop(columns="ts").to_numpy(float))


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=trade_lists())
def test_footprint_sums_to_bars(spec, data):
    t, _ = data
    bars, cells = build(t, spec, ES)
    assert bars["volume"].sum() == pytest.approx(t["size"].sum())
    assert bars["trades"].sum() == len(t)
    per_bar = cells.groupby("ts", sort=True)[["volume", "ask_volume", "bid_volume", "trades"]].sum()
    traded = bars[bars["trades"] > 0].groupby("ts", sort=True)[
        ["volume", "ask_volume", "bid_volume", "trades"]].sum()
    np.testing.assert_allclose(per_bar.to_numpy(float), traded.to_numpy(float))
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1) - 1e-9).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1) + 1e-9).all()
    if BarSpec.parse(spec).kind == "range":
        assert ((bars["high"] - bars["low"]) / 0.25 <= BarSpec.parse(spec).size + 1e-9).all()
    if BarSpec.parse(spec).kind == "tick":
        assert (bars["trades"].iloc[:-1] == BarSpec.parse(spec).size).all()


def test_tick_bars_restart_at_the_trading_day():
    # CME's trading day starts at 17:00 Chicago = 23:00 UTC (in January): the bar in progress
    # closes there even though it holds fewer than 3 trades
    t = trades([1, 2, 3, 4, 5], seconds=[7 * 3600 + s for s in (0, 1, 3599, 3601, 3602)])
    bars = build_bars(t, "T3", ES)
    assert bars["trades"].tolist() == [3, 2]
    t = trades([1, 2, 3, 4, 5], seconds=[7 * 3600 + s for s in (0, 1, 3601, 3602, 3603)])
    assert build_bars(t, "T3", ES)["trades"].tolist() == [2, 3]
