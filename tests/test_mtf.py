"""Multi-timeframe alignment: values of higher bars reach the chart only once those bars closed."""
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from indicators.mtf import align_higher
from indicators.registry import compute
from tradeflow.bars import build_bars
from tradeflow.model import BarSpec, Instrument, Session, bar_end

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")


def test_by_hand():
    chart = pd.date_range("2026-01-06 09:00", periods=36, freq="5min", tz="UTC")
    hours = pd.date_range("2026-01-06 09:00", periods=3, freq="1h", tz="UTC")
    got = align_higher(chart, "5m", hours, "1h", pd.DataFrame({"x": [1.0, 2.0, 3.0]}), Session())
    x = got["x"].to_numpy()
    assert np.isnan(x[:11]).all()        # 09:00..09:50 close before the 09:00 hour does
    assert (x[11:23] == 1.0).all()       # 09:55 closes at 10:00 with the first hour
    assert (x[23:35] == 2.0).all()
    assert x[35] == 3.0


def test_daily_bars_close_at_the_next_trading_day():
    day = pd.to_datetime(["2026-01-06"], utc=True)
    end = bar_end(day, BarSpec.parse("1d"), ES.session)
    assert end[0] == pd.Timestamp("2026-01-06 23:00", tz="UTC")  # 17:00 Chicago


def trades(seed, n=1500):
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2026-01-06 14:00", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 8 * 3600 * 10**6, n)), unit="us")
    return pd.DataFrame({"ts": ts, "price": (20000 + np.cumsum(rng.integers(-2, 3, n))) * 0.25,
                         "size": 1.0, "side": np.int8(1), "trade_id": np.arange(n)})


def aligned(t):
    chart = build_bars(t, "5m", ES)
    higher = build_bars(t, "1h", ES)
    sma = compute("SMA", higher, timeperiod=2)
    return chart, align_higher(chart["ts"], "5m", higher["ts"], "1h", sma, ES.session)["SMA"]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), cut_minutes=st.integers(30, 470))
def test_no_look_ahead(seed, cut_minutes):
    """Cutting the data at any time leaves every chart bar closed by then unchanged."""
    t = trades(seed)
    cut = pd.Timestamp("2026-01-06 14:00", tz="UTC") + pd.Timedelta(minutes=cut_minutes)
    chart, full = aligned(t)
    part_chart, part = aligned(t[t["ts"] < cut])
    closed = np.asarray(bar_end(part_chart["ts"], BarSpec.parse("5m"), ES.session) <= cut)
    np.testing.assert_array_equal(part.to_numpy()[closed], full.to_numpy()[:closed.size][closed])
