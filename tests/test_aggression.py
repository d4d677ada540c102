"""Aggression studies (sweeps, absorption): hand-worked examples, invariants against a brute-force
loop, bad parameters."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.orderflow.aggression import absorption, sweeps
from tradeflow.bars import build
from tradeflow.model import Instrument

ES = Instrument("ES", 0.25)
T0 = pd.Timestamp("2026-01-05 15:00", tz="UTC")
MS = pd.Timedelta("1ms")
MIN = pd.Timedelta("1min")

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def trades(rows, start=T0):
    """Trades from (milliseconds after start, tick, size, side) tuples."""
    ms, tick, size, side = (np.asarray(x) for x in zip(*rows))
    return pd.DataFrame({
        "ts": start + pd.to_timedelta(ms, unit="ms"),
        "price": tick.astype(float) * ES.tick_size,
        "size": size.astype(float),
        "side": side.astype("int8"),
        "trade_id": np.arange(len(ms)),
    })


# --------------------------------------------------------------------------------------------
# sweeps: hand-worked

TAPE = trades([
    (0, 100, 2, +1),     # 0  run A starts (buy)
    (100, 101, 3, +1),   # 1  up a tick, 100 ms later
    (200, 101, 1, +1),   # 2  same price is allowed
    (450, 102, 4, +1),   # 3  250 ms gap: allowed (inclusive) -> A = ticks 100..102, 3 levels,
                         #    size 2+3+1+4 = 10, 4 prints
    (500, 103, 1, -1),   # 4  opposite side ends A; run B (sell) starts
    (600, 102, 2, -1),   # 5  B = 103..102: 2 levels, size 3, 2 prints
    (1000, 101, 5, -1),  # 6  400 ms gap > 250 ends B; run C starts
    (1100, 100, 5, -1),  # 7
    (1200, 99, 5, -1),   # 8  C = 101..99: 3 levels, size 15, 3 prints
    (1300, 100, 1, -1),  # 9  a sell one tick *up* (against the seller) ends C
    (1350, 99, 1, 0),    # 10 unknown side: in no run, ends run D (= trade 9 alone)
    (1400, 98, 1, -1),   # 11 run E = 98..97: 2 levels
    (1500, 97, 1, -1),   # 12
])


def test_sweeps_hand_worked():
    out = sweeps(TAPE, 0.25)
    assert list(out.columns) == ["ts_start", "ts_end", "side", "tick_start", "tick_end",
                                 "levels", "size", "trades"]
    assert out["ts_start"].tolist() == [T0, T0 + 1000 * MS]
    assert out["ts_end"].tolist() == [T0 + 450 * MS, T0 + 1200 * MS]
    assert out["side"].tolist() == [1, -1]
    assert out["tick_start"].tolist() == [100, 101]
    assert out["tick_end"].tolist() == [102, 99]
    assert out["levels"].tolist() == [3, 3]
    assert out["size"].tolist() == [10.0, 15.0]
    assert out["trades"].tolist() == [4, 3]


def test_sweeps_thresholds():
    # min_size 12: A (10) drops, C (15) stays
    assert sweeps(TAPE, 0.25, min_size=12)["tick_start"].tolist() == [101]
    # min_levels 2: B (103..102) and E (98..97) join; D (one trade) never does
    out = sweeps(TAPE, 0.25, min_levels=2)
    assert out["tick_start"].tolist() == [100, 103, 101, 98]
    assert out["levels"].tolist() == [3, 2, 3, 2]
    # max_gap 99 ms: A breaks after trade 0 (gap 100 ms) -> 101..102 is 2 levels only; C's gaps
    # are exactly 100 ms too, so nothing is left at 3 levels
    assert sweeps(TAPE, 0.25, max_gap="99ms").empty
    # max_gap 400 ms (inclusive): B and C merge? no -- C's first trade 101 is below B's last 102,
    # monotone down, same side, gap 400 ms: B+C = 103..99, 5 levels, size 3+15 = 18
    out = sweeps(TAPE, 0.25, max_gap=pd.Timedelta("400ms"))
    assert out["tick_start"].tolist() == [100, 103]
    assert out["levels"].tolist() == [3, 5]
    assert out["size"].tolist() == [10.0, 18.0]


def test_sweeps_max_gap_forms():
    import datetime
    want = sweeps(TAPE, 0.25, max_gap="250ms")
    for gap in (pd.Timedelta("250ms"), datetime.timedelta(milliseconds=250),
                np.timedelta64(250, "ms")):
        pd.testing.assert_frame_equal(sweeps(TAPE, 0.25, max_gap=gap), want)


def test_sweeps_unknown_side_breaks_and_unsorted_input():
    tape = trades([(0, 100, 1, +1), (10, 101, 1, 0), (20, 102, 1, +1), (30, 103, 1, +1)])
    assert sweeps(tape, 0.25).empty  # 102..103 is 2 levels
    # input order does not matter: trades are taken in time order
    shuffled = TAPE.iloc[::-1].reset_index(drop=True)
    pd.testing.assert_frame_equal(sweeps(shuffled, 0.25), sweeps(TAPE, 0.25))


def test_sweeps_ticks_not_float_equality():
    # 0.1 tick: 0.3 / 0.1 = 2.9999999999999996 still rounds to tick 3
    tape = pd.DataFrame({"ts": [T0, T0 + MS, T0 + 2 * MS], "price": [0.1, 0.2, 0.1 + 0.2],
                         "size": [1.0, 1.0, 1.0], "side": [1, 1, 1]})
    out = sweeps(tape, 0.1)
    assert out["tick_start"].tolist() == [1] and out["tick_end"].tolist() == [3]


def test_sweeps_empty():
    out = sweeps(TAPE.iloc[:0], 0.25)
    assert out.empty and list(out.columns)[0] == "ts_start"


# --------------------------------------------------------------------------------------------
# sweeps: invariants against a brute-force loop


def _continues(prev, cur, t, tick, side, gap):
    return (side[cur] != 0 and side[cur] == side[prev] and t[cur] - t[prev] <= gap
            and side[cur] * (tick[cur] - tick[prev]) >= 0)


def _brute_runs(t, tick, side, gap):
    """Maximal runs as (first, last) trade indices, by a plain loop."""
    runs, start = [], 0
    for i in range(1, len(t) + 1):
        if i == len(t) or not _continues(i - 1, i, t, tick, side, gap):
            if side[start] != 0:
                runs.append((start, i - 1))
            start = i
    return runs


def _qualifies(a, b, t, tick, size, side, gap, min_levels, min_size):
    """Do trades a..b (inclusive) satisfy every condition of a sweep, checked from scratch?"""
    if side[a] == 0 or any(side[k] != side[a] for k in range(a, b + 1)):
        return False
    if any(t[k] - t[k - 1] > gap for k in range(a + 1, b + 1)):
        return False
    if any(side[a] * (tick[k] - tick[k - 1]) < 0 for k in range(a + 1, b + 1)):
        return False
    return len(set(tick[a:b + 1].tolist())) >= min_levels and size[a:b + 1].sum() >= min_size


def _at(ns):
    """UTC datetime64[ns] timestamps ``ns`` nanoseconds after T0."""
    return (T0.as_unit("ns") + pd.to_timedelta(np.asarray(ns, dtype="int64"), unit="ns")
            ).as_unit("ns")


tape_rows = st.lists(
    st.tuples(st.integers(0, 120), st.integers(-3, 3), st.integers(0, 5),
              st.sampled_from([1, 1, -1, -1, 0])),
    min_size=0, max_size=40)


@FAST
@given(rows=tape_rows, min_levels=st.integers(2, 4), gap_ms=st.integers(1, 150),
       min_size=st.integers(0, 12))
def test_sweeps_match_brute_force(rows, min_levels, gap_ms, min_size):
    # a random walk of prices on the tick grid, times non-decreasing (ties included)
    t = np.cumsum([r[0] for r in rows]).astype("int64") * 1_000_000  # ns after T0
    tick = 1000 + np.cumsum([r[1] for r in rows]).astype("int64")
    size = np.array([r[2] for r in rows], dtype=float)
    side = np.array([r[3] for r in rows], dtype="int64")
    frame = pd.DataFrame({"ts": T0 + pd.to_timedelta(t, unit="ns"), "price": tick * 0.25,
                          "size": size, "side": side.astype("int8")})
    gap = gap_ms * 1_000_000
    out = sweeps(frame, 0.25, min_levels=min_levels, max_gap=f"{gap_ms}ms", min_size=min_size)

    want = [(a, b) for a, b in _brute_runs(t, tick, side, gap)
            if _qualifies(a, b, t, tick, size, side, gap, min_levels, min_size)]
    # every reported sweep is one side, monotone, within max_gap, >= min_levels, >= min_size
    for a, b in want:
        assert _qualifies(a, b, t, tick, size, side, gap, min_levels, min_size)
    assert len(out) == len(want)
    exp = pd.DataFrame({
        "ts_start": _at([t[a] for a, _ in want]),
        "ts_end": _at([t[b] for _, b in want]),
        "side": np.array([side[a] for a, _ in want], dtype="int8"),
        "tick_start": np.array([tick[a] for a, _ in want], dtype="int64"),
        "tick_end": np.array([tick[b] for _, b in want], dtype="int64"),
        "levels": np.array([len(set(tick[a:b + 1].tolist())) for a, b in want], dtype="int64"),
        "size": np.array([size[a:b + 1].sum() for a, b in want], dtype=float),
        "trades": np.array([b - a + 1 for a, b in want], dtype="int64"),
    })
    pd.testing.assert_frame_equal(out.reset_index(drop=True), exp, check_index_type=False)
    # nothing is missed: every stretch a..b that qualifies on its own lies inside a sweep
    for a in range(len(t)):
        for b in range(a, len(t)):
            if _qualifies(a, b, t, tick, size, side, gap, min_levels, min_size):
                assert any(s <= a and b <= e for s, e in want), (a, b)


# --------------------------------------------------------------------------------------------
# absorption: hand-worked


def cells(rows):
    """Footprint cells from (minute, tick, ask_volume, bid_volume) tuples."""
    m, tick, ask, bid = (np.asarray(x) for x in zip(*rows))
    return pd.DataFrame({"ts": T0 + m * MIN, "tick": tick.astype("int64"),
                         "volume": (ask + bid).astype(float), "ask_volume": ask.astype(float),
                         "bid_volume": bid.astype(float), "trades": np.ones(len(m), "int64")})


CELLS = cells([
    # bar 0: POC 100 (45 = 5 + 40), sellers dominate (bid 40 > ask 5); close at tick 101
    #        -> bid absorption, progress = 100 - 101 = -1 (closed a tick above the level)
    (0, 100, 5, 40), (0, 101, 10, 10), (0, 102, 8, 2),
    # bar 1: POC 200 (53), sellers (50 > 3); close at 198 -> progress = 200 - 198 = 2
    (1, 198, 1, 5), (1, 199, 4, 6), (1, 200, 3, 50),
    # bar 2: POC 300 (70), buyers (60 > 10); close at 299 -> ask absorption,
    #        progress = 299 - 300 = -1
    (2, 299, 5, 5), (2, 300, 60, 10),
    # bar 3: POC 400 (40), ask 20 = bid 20 -> no aggressor, no absorption
    (3, 400, 20, 20), (3, 401, 1, 1),
])
BARS = pd.DataFrame({"ts": T0 + np.arange(5) * MIN,  # bar 4 has no cells
                     "close": np.array([101, 198, 299, 400, 500]) * 0.25})


def test_absorption_hand_worked():
    out = absorption(CELLS, BARS, 0.25, min_volume=30)
    assert list(out.columns) == ["ts", "tick", "side", "volume", "aggressor_volume",
                                 "progress_ticks"]
    assert out["ts"].tolist() == [T0, T0 + 2 * MIN]
    assert out["tick"].tolist() == [100, 300]
    assert out["side"].tolist() == ["bid", "ask"]
    assert out["volume"].tolist() == [45.0, 70.0]
    assert out["aggressor_volume"].tolist() == [40.0, 60.0]
    assert out["progress_ticks"].tolist() == [-1, -1]


def test_absorption_thresholds_and_side():
    # bar 1 progressed 2 ticks: in with max_progress_ticks=2
    out = absorption(CELLS, BARS, 0.25, min_volume=30, max_progress_ticks=2)
    assert out["tick"].tolist() == [100, 200, 300]
    assert out["progress_ticks"].tolist() == [-1, 2, -1]
    # min_volume 50: bar 0's 40 sellers fall short, bar 2's 60 buyers stay
    assert absorption(CELLS, BARS, 0.25, min_volume=50)["tick"].tolist() == [300]
    # inclusive threshold: exactly 60
    assert absorption(CELLS, BARS, 0.25, min_volume=60)["tick"].tolist() == [300]
    # min_volume 0 and a wide progress allowance: bar 3's balanced POC (20 = 20) still gives none
    out = absorption(CELLS, BARS, 0.25, min_volume=0, max_progress_ticks=5)
    assert out["tick"].tolist() == [100, 200, 300]
    assert absorption(CELLS, BARS, 0.25, 30, side="bid")["side"].tolist() == ["bid"]
    assert absorption(CELLS, BARS, 0.25, 30, side="ask")["tick"].tolist() == [300]


def test_absorption_of_rows_by_hand():
    # rows of 3 ticks keyed by the lowest (floor(tick / 3) * 3), ask x bid summed per row;
    # progress from the row's edge on the aggressor's side (bid: its lowest tick, ask: its highest)
    # bar 0: 99 (99-101) = 100 + 101: ask 15, bid 50, volume 65; 102 (102-104): 8 x 2
    #        -> POC 99, sellers 50; close 101 -> progress 99 - 101 = -2 -> bid absorption
    # bar 1: 198 (198-200) = all three: ask 1+4+3 = 8, bid 5+6+50 = 61, volume 69
    #        -> POC 198, sellers 61; close 198 -> progress 198 - 198 = 0 (single ticks: 2, out)
    # bar 2: 297 (297-299) = 299: 5 x 5; 300 (300-302): ask 60, bid 10, volume 70
    #        -> POC 300, buyers 60; close 299 -> progress 299 - 302 = -3 -> ask absorption
    # bar 3: 399 (399-401): ask 21 = bid 21 -> no aggressor
    out = absorption(CELLS, BARS, 0.25, min_volume=30, rows=3)
    assert out["ts"].tolist() == [T0, T0 + MIN, T0 + 2 * MIN]
    assert out["tick"].tolist() == [99, 198, 300]
    assert out["side"].tolist() == ["bid", "bid", "ask"]
    assert out["volume"].tolist() == [65.0, 69.0, 70.0]
    assert out["aggressor_volume"].tolist() == [50.0, 61.0, 60.0]
    assert out["progress_ticks"].tolist() == [-2, 0, -3]
    # rows of 2: bar 2's row 300 (300-301): progress 299 - 301 = -2; bar 1's row 200 (200-201)
    # holds 53 against 198's 16, close 198 -> progress 2 > 1: out, as with single ticks
    two = absorption(CELLS, BARS, 0.25, min_volume=30, rows=2)
    assert two["tick"].tolist() == [100, 300]
    assert two["progress_ticks"].tolist() == [-1, -2]
    pd.testing.assert_frame_equal(absorption(CELLS, BARS, 0.25, 30, rows=1),
                                  absorption(CELLS, BARS, 0.25, 30))


def test_absorption_sums_duplicate_cells():
    # bar 0's tick 100 split in two rows (5+0 ask, 15+25 bid): the same answer
    split = pd.concat([CELLS.iloc[1:], cells([(0, 100, 5, 15), (0, 100, 0, 25)])])
    pd.testing.assert_frame_equal(absorption(split, BARS, 0.25, 30),
                                  absorption(CELLS, BARS, 0.25, 30))


def test_absorption_from_built_bars():
    # sellers hammer 5000.00 (tick 20000) with 30 lots, price never trades below it, and the
    # bar closes at 5000.25 -> bid absorption at 20000, progress -1
    tape = trades([(0, 20002, 2, +1), (1000, 20001, 3, -1), (2000, 20000, 10, -1),
                   (3000, 20000, 10, -1), (4000, 20000, 10, -1), (5000, 20000, 2, +1),
                   (6000, 20001, 4, +1)])
    bars, fp = build(tape, "1m", ES)
    out = absorption(fp, bars, ES.tick_size, min_volume=25)
    assert out["tick"].tolist() == [20000] and out["side"].tolist() == ["bid"]
    assert out["volume"].tolist() == [32.0] and out["aggressor_volume"].tolist() == [30.0]
    assert out["progress_ticks"].tolist() == [-1]


def _brute_absorption(cell_frame, bar_frame, tick_size, min_volume, max_progress, n=1):
    rows = []
    for ts, close in zip(bar_frame["ts"], bar_frame["close"]):
        c = cell_frame[cell_frame["ts"] == ts]
        if c.empty:
            continue
        # rows of n ticks, keyed by the lowest
        lv = c.groupby(c["tick"] // n * n)[["volume", "ask_volume", "bid_volume"]].sum()
        mid2 = lv.index.min() + lv.index.max()
        best = lv["volume"].max()
        # POC: most volume, then closest to the middle of the bar, then the lower tick
        poc = min((t for t in lv.index if lv.loc[t, "volume"] == best),
                  key=lambda t: (abs(2 * t - mid2), t))
        ask, bid = lv.loc[poc, "ask_volume"], lv.loc[poc, "bid_volume"]
        ct = int(Instrument("X", tick_size).to_tick(close))
        if bid > ask:
            side, agg, prog = "bid", bid, poc - ct
        elif ask > bid:
            side, agg, prog = "ask", ask, ct - (poc + n - 1)  # past the row's highest tick
        else:
            continue
        if agg >= min_volume and prog <= max_progress:
            rows.append((ts, int(poc), side, float(lv.loc[poc, "volume"]), float(agg), int(prog)))
    return rows


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.lists(st.tuples(st.integers(0, 3), st.integers(-3, 3), st.integers(0, 9),
                               st.integers(0, 9)), min_size=1, max_size=30),
       closes=st.lists(st.integers(-5, 5), min_size=4, max_size=4),
       min_volume=st.integers(0, 12), max_progress=st.integers(0, 3),
       n=st.sampled_from([1, 2, 3]))
def test_absorption_matches_brute_force(data, closes, min_volume, max_progress, n):
    c = cells([(m, 100 + k, a, b) for m, k, a, b in data])
    b = pd.DataFrame({"ts": T0 + np.arange(4) * MIN, "close": (100 + np.array(closes)) * 0.25})
    out = absorption(c, b, 0.25, min_volume, max_progress_ticks=max_progress, rows=n)
    got = list(zip(out["ts"], out["tick"].tolist(), out["side"], out["volume"].tolist(),
                   out["aggressor_volume"].tolist(), out["progress_ticks"].tolist()))
    assert got == _brute_absorption(c, b, 0.25, min_volume, max_progress, n)
    # every row: aggressor dominates at the bar's max-volume level and made little progress
    assert (out["progress_ticks"] <= max_progress).all()
    assert (out["aggressor_volume"] >= min_volume).all()


def test_absorption_cells_without_bar():
    with pytest.raises(ValueError, match="no bar"):
        absorption(CELLS, BARS.iloc[:2], 0.25, 30)


# --------------------------------------------------------------------------------------------
# bad parameters


@pytest.mark.parametrize("kwargs, match", [
    ({"min_levels": 1}, "min_levels"),
    ({"min_levels": 0}, "min_levels"),
    ({"min_levels": 2.5}, "min_levels"),
    ({"max_gap": "0ms"}, "max_gap"),
    ({"max_gap": "-5ms"}, "max_gap"),
    ({"max_gap": "soon"}, "max_gap"),
    ({"max_gap": 250}, "max_gap"),
    ({"max_gap": None}, "max_gap"),
    ({"max_gap": "NaT"}, "max_gap"),
    ({"tick_size": 0}, "tick_size"),
    ({"tick_size": -0.25}, "tick_size"),
    ({"tick_size": float("nan")}, "tick_size"),
    ({"min_size": -1}, "min_size"),
])
def test_sweeps_bad_parameters(kwargs, match):
    args = {"tick_size": 0.25, **kwargs}
    with pytest.raises(ValueError, match=match):
        sweeps(TAPE, **args)


def test_sweeps_bad_input():
    with pytest.raises(ValueError, match="missing column"):
        sweeps(TAPE.drop(columns="side"), 0.25)
    bad = TAPE.copy()
    bad.loc[0, "side"] = 2
    with pytest.raises(ValueError, match="side"):
        sweeps(bad, 0.25)


@pytest.mark.parametrize("kwargs, match", [
    ({"min_volume": -1}, "min_volume"),
    ({"tick_size": 0}, "tick_size"),
    ({"tick_size": -1}, "tick_size"),
    ({"max_progress_ticks": -1}, "max_progress_ticks"),
    ({"max_progress_ticks": 0.5}, "max_progress_ticks"),
    ({"side": "buy"}, "side"),
    ({"rows": 0}, "absorption: rows must be a whole number >= 1"),
    ({"rows": 1.5}, "absorption: rows must be a whole number >= 1"),
    ({"rows": False}, "absorption: rows must be a whole number >= 1"),
])
def test_absorption_bad_parameters(kwargs, match):
    args = {"tick_size": 0.25, "min_volume": 30, **kwargs}
    with pytest.raises(ValueError, match=match):
        absorption(CELLS, BARS, **args)


def test_absorption_bars_out_of_order():
    with pytest.raises(ValueError, match="ordered"):
        absorption(CELLS, BARS.iloc[::-1], 0.25, 30)
