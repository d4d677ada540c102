"""Liquidations per bar and per level: a hand-worked example and the totals invariant."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indicators.orderflow.liquidations import liquidations_by_bar, liquidations_by_level

T0 = pd.Timestamp("2026-01-06 10:00", tz="UTC")
BARS = pd.DataFrame({"ts": [T0, T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("2min")]})


def test_by_hand():
    liqs = pd.DataFrame({
        "ts": [T0 - pd.Timedelta("1s"),          # before the first bar: left out
               T0 + pd.Timedelta("5s"),          # bar 0, forced sell 2 @ 100.0 (a long)
               T0 + pd.Timedelta("30s"),         # bar 0, forced sell 1 @ 100.1 -> tick 1001
               T0 + pd.Timedelta("50s"),         # bar 0, forced buy 3 @ 100.0 (a short)
               T0 + pd.Timedelta("150s")],       # bar 2, forced buy 0.5 @ 101.0
        "side": [-1, -1, -1, 1, 1], "price": [99.0, 100.0, 100.1, 100.0, 101.0],
        "size": [9.0, 2.0, 1.0, 3.0, 0.5]})
    per_bar = liquidations_by_bar(liqs, BARS)
    assert per_bar["long_size"].tolist() == [3.0, 0.0, 0.0]
    assert per_bar["short_size"].tolist() == [3.0, 0.0, 0.5]
    assert per_bar["count"].tolist() == [3, 0, 1]
    levels = liquidations_by_level(liqs, BARS, 0.1)
    assert levels["tick"].tolist() == [1000, 1001, 1010]
    assert levels["long_size"].tolist() == [2.0, 1.0, 0.0]
    assert levels["short_size"].tolist() == [3.0, 0.0, 0.5]
    assert list(levels["ts"]) == [T0, T0, T0 + pd.Timedelta("2min")]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.sampled_from([-1, 1]), st.integers(990, 1010),
                          st.floats(0.001, 50)), max_size=60))
def test_levels_add_up_to_bars(rows):
    liqs = pd.DataFrame(rows, columns=["sec", "side", "tick", "size"])
    liqs["ts"] = T0 + pd.to_timedelta(liqs["sec"], unit="s")
    liqs["price"] = liqs["tick"] * 0.1
    per_bar = liquidations_by_bar(liqs, BARS)
    levels = liquidations_by_level(liqs, BARS, 0.1)
    summed = levels.groupby("ts")[["long_size", "short_size", "count"]].sum()
    nonzero = per_bar[per_bar["count"] > 0].set_index("ts")
    np.testing.assert_allclose(summed.to_numpy(float), nonzero.to_numpy(float))
    assert per_bar["count"].sum() == len(liqs)  # every one falls in some bar (none before T0)


def test_bad_input():
    with pytest.raises(ValueError, match="tick size must be positive"):
        liquidations_by_level(pd.DataFrame(columns=["ts", "side", "price", "size"]), BARS, 0)
    with pytest.raises(ValueError, match="missing column"):
        liquidations_by_bar(pd.DataFrame({"ts": []}), BARS)
