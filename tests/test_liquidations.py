"""Liquidations per bar and per level: a hand-worked example and the totals invariant."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indicators.orderflow.liquidations import liquidations_by_bar, liquidations_by_level

T0 = pd.Timestamp("2026-01-06 10:00", tz="UTC")
BARS = pd.DataFrame({"ts": [T0, T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("2min")]})
LIQS = pd.DataFrame({
    "ts": [T0 - pd.Timedelta("1s"),          # before the first bar: left out
           T0 + pd.Timedelta("5s"),          # bar 0, forced sell 2 @ 100.0 (a long)
           T0 + pd.Timedelta("30s"),         # bar 0, forced sell 1 @ 100.1 -> tick 1001
           T0 + pd.Timedelta("50s"),         # bar 0, forced buy 3 @ 100.0 (a short)
           T0 + pd.Timedelta("150s")],       # bar 2, forced buy 0.5 @ 101.0
    "side": [-1, -1, -1, 1, 1], "price": [99.0, 100.0, 100.1, 100.0, 101.0],
    "size": [9.0, 2.0, 1.0, 3.0, 0.5]})


def test_by_hand():
    per_bar = liquidations_by_bar(LIQS, BARS)
    assert per_bar["long_size"].tolist() == [3.0, 0.0, 0.0]
    assert per_bar["short_size"].tolist() == [3.0, 0.0, 0.5]
    assert per_bar["count"].tolist() == [3, 0, 1]
    levels = liquidations_by_level(LIQS, BARS, 0.1)
    assert levels["tick"].tolist() == [1000, 1001, 1010]
    assert levels["long_size"].tolist() == [2.0, 1.0, 0.0]
    assert levels["short_size"].tolist() == [3.0, 0.0, 0.5]
    assert list(levels["ts"]) == [T0, T0, T0 + pd.Timedelta("2min")]


def test_by_level_of_rows_by_hand():
    # rows of 3 ticks keyed by the lowest, floor(tick / 3) * 3: 1000 and 1001 -> 999
    # (999-1001), 1010 -> 1008 (1008-1010). Bar 0: one row 999 holding long 2 + 1, short 3,
    # 3 liquidations; bar 2: row 1008, short 0.5
    levels = liquidations_by_level(LIQS, BARS, 0.1, rows=3)
    assert levels["tick"].tolist() == [999, 1008]
    assert levels["long_size"].tolist() == [3.0, 0.0]
    assert levels["short_size"].tolist() == [3.0, 0.5]
    assert levels["count"].tolist() == [3, 1]
    assert list(levels["ts"]) == [T0, T0 + pd.Timedelta("2min")]
    # rows of 2: 1000 and 1001 share the row 1000; 1010 is a row key itself
    assert liquidations_by_level(LIQS, BARS, 0.1, rows=2)["tick"].tolist() == [1000, 1010]
    pd.testing.assert_frame_equal(liquidations_by_level(LIQS, BARS, 0.1, rows=1),
                                  liquidations_by_level(LIQS, BARS, 0.1))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.sampled_from([-1, 1]), st.integers(990, 1010),
                          st.floats(0.001, 50)), max_size=60), st.sampled_from([1, 2, 3]))
def test_levels_add_up_to_bars(rows, n):
    liqs = pd.DataFrame(rows, columns=["sec", "side", "tick", "size"])
    liqs["ts"] = T0 + pd.to_timedelta(liqs["sec"], unit="s")
    liqs["price"] = liqs["tick"] * 0.1
    per_bar = liquidations_by_bar(liqs, BARS)
    levels = liquidations_by_level(liqs, BARS, 0.1, rows=n)
    summed = levels.groupby("ts")[["long_size", "short_size", "count"]].sum()
    nonzero = per_bar[per_bar["count"] > 0].set_index("ts")
    np.testing.assert_allclose(summed.to_numpy(float), nonzero.to_numpy(float))
    assert per_bar["count"].sum() == len(liqs)  # every one falls in some bar (none before T0)
    # brute force: the single-tick levels summed per row of n ticks
    ticks = liquidations_by_level(liqs, BARS, 0.1)
    want = ticks.groupby(["ts", ticks["tick"] // n * n])[["long_size", "short_size", "count"]
                                                        ].sum()
    assert levels.set_index(["ts", "tick"]).index.tolist() == want.index.tolist()
    np.testing.assert_allclose(levels[["long_size", "short_size", "count"]].to_numpy(float),
                               want.to_numpy(float))


def test_bad_input():
    with pytest.raises(ValueError, match="tick size must be positive"):
        liquidations_by_level(pd.DataFrame(columns=["ts", "side", "price", "size"]), BARS, 0)
    with pytest.raises(ValueError, match="missing column"):
        liquidations_by_bar(pd.DataFrame({"ts": []}), BARS)
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="liquidations_by_level: rows must be a whole"):
            liquidations_by_level(LIQS, BARS, 0.1, rows=n)
