"""Order-flow studies: footprint metrics, CVD, imbalances -- hand-worked examples, invariants,
bad parameters."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.orderflow import (bar_delta, bar_poc, cvd, cvd_candles, footprint_metrics,
                                  group_ticks, imbalances, running_delta_extremes,
                                  stacked_imbalances, unfinished_auctions)
from tradeflow.bars import build
from tradeflow.model import Instrument

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
T0 = pd.Timestamp("2026-01-05 15:00", tz="UTC")  # 09:00 in Chicago, trading day 2026-01-05
MIN = pd.Timedelta("1min")


def trades(rows, start=T0):
    """Trades from (seconds after start, tick, size, side) tuples."""
    sec, tick, size, side = (np.asarray(x) for x in zip(*rows))
    return pd.DataFrame({
        "ts": start + pd.to_timedelta(sec, unit="s"),
        "price": tick.astype(float) * ES.tick_size,
        "size": size.astype(float),
        "side": side.astype("int8"),
        "trade_id": np.arange(len(sec)),
    })


# --------------------------------------------------------------------------------------------
# hand-worked example: two one-minute bars, and a third after the 17:00 Chicago day change

HAND = trades([
    # bar A (15:00)                   running delta after the trade
    (0, 20000, 2, +1),   # +2
    (5, 20001, 3, +1),   # +5   <- max
    (10, 20001, 1, -1),  # +4
    (15, 20000, 6, -1),  # -2
    (20, 19999, 4, -1),  # -6   <- min
    (25, 20000, 5, +1),  # -1   = delta
    # bar B (15:01), only going down after the open
    (60, 20013, 1, -1),  # -1
    (65, 20012, 3, -1),  # -4
    (70, 20010, 5, -1),  # -9   <- min; max is the opening 0
    (75, 20012, 2, +1),  # -7   = delta
    # bar C (23:05 UTC = 17:05 Chicago: trading day 2026-01-06)
    (8 * 3600 + 300, 20005, 4, +1),  # +4
])


def test_footprint_metrics_by_hand():
    bars, cells = build(HAND, "1m", ES)
    assert list(bars["ts"]) == [T0, T0 + MIN, T0 + pd.Timedelta("8h5min")]
    m = footprint_metrics(bars, HAND, cells)
    # A: ask 2+3+5 = 10, bid 1+6+4 = 11 -> delta -1 of volume 21
    # B: ask 2, bid 1+3+5 = 9 -> delta -7 of volume 11;  C: +4 of 4
    assert m["volume"].tolist() == [21, 11, 4]
    assert m["trades"].tolist() == [6, 4, 1]
    assert m["delta"].tolist() == [-1, -7, 4]
    assert m["delta_pct"].tolist() == pytest.approx([-1 / 21, -7 / 11, 1.0])
    assert m["delta_max"].tolist() == [5, 0, 4]
    assert m["delta_min"].tolist() == [-6, -9, 0]
    # A's cells: 19999: 4, 20000: 2+6+5 = 13, 20001: 3+1 = 4 -> POC 20000
    # B's cells: 20010: 5, 20012: 3+2 = 5, 20013: 1 -> tie 20010/20012; range 20010..20013 has
    #   its middle at 20011.5: 20012 is 0.5 away, 20010 1.5 -> POC 20012
    assert m["poc"].tolist() == [20000, 20012, 20005]


def test_bar_poc_of_rows_by_hand():
    bars, cells = build(HAND, "1m", ES)
    # rows of 3 ticks, keyed by the lowest: floor(tick / 3) * 3
    # A: 19999 -> 19998, 20000 -> 19998, 20001 -> 20001: rows 19998 = 4 + 13 = 17, 20001 = 4
    # B: 20010, 20012 -> 20010; 20013 -> 20013: rows 20010 = 5 + 5 = 10, 20013 = 1
    # C: 20005 -> 20004 (4)
    p = bar_poc(cells, rows=3)
    assert p["poc"].tolist() == [19998, 20010, 20004]
    assert p["poc_volume"].tolist() == [17, 10, 4]
    m = footprint_metrics(bars, HAND, cells, rows=3)
    assert m["poc"].tolist() == [19998, 20010, 20004]
    # rows of 2: A 19998 = 4, 20000 = 13 + 4 = 17; B 20010 = 5, 20012 = 5 + 1 = 6; C 20004
    assert bar_poc(cells, rows=2)["poc"].tolist() == [20000, 20012, 20004]
    assert bar_poc(cells, rows=1).equals(bar_poc(cells))


def test_bar_poc_of_rows_tie_goes_to_the_middle_row():
    t = trades([(0, 100, 5, 1), (1, 101, 1, 1), (2, 102, 1, 1), (3, 103, 5, 1), (4, 104, 6, 1)])
    _, cells = build(t, "1m", ES)
    # single ticks: 104 holds the most (6)
    assert bar_poc(cells)["poc"].tolist() == [104]
    # rows of 2: 100 = 5 + 1, 102 = 1 + 5, 104 = 6: a three-way tie; the middle of the lowest
    # and highest row (100 and 104) is 102 -> the row 102
    assert bar_poc(cells, rows=2)[["poc", "poc_volume"]].values.tolist() == [[102, 6]]


def test_poc_tie_equally_close_goes_to_lower_tick():
    t = trades([(0, 100, 5, 1), (1, 101, 1, 1), (2, 102, 1, 1), (3, 103, 5, 1)])
    _, cells = build(t, "1m", ES)
    # 100 and 103 both hold 5 and are both 1.5 ticks from the middle 101.5 -> the lower
    assert bar_poc(cells)["poc"].tolist() == [100]


def test_cvd_and_candles_by_hand():
    bars, _ = build(HAND, "1m", ES)
    # no reset: -1, -1-7 = -8, -8+4 = -4
    assert cvd(bars).tolist() == [-1, -8, -4]
    # reset at the Chicago 17:00 day change: C starts afresh at 0 -> +4
    assert cvd(bars, ES.session).tolist() == [-1, -8, 4]
    assert cvd(bars, ES.session, reset="none").tolist() == [-1, -8, -4]
    c = cvd_candles(bars, HAND, ES.session)
    # A: open 0, high 0+5, low 0-6, close -1;  B: open -1, high -1+0, low -1-9 = -10, close -8
    # C: a new day: open 0, high 4, low 0, close 4
    assert c[["open", "high", "low", "close"]].values.tolist() == [
        [0, 5, -6, -1], [-1, -1, -10, -8], [0, 4, 0, 4]]
    # the same from bars carrying footprint_metrics' extremes
    m = footprint_metrics(bars, HAND)
    with_ext = bars.assign(delta_max=m["delta_max"], delta_min=m["delta_min"])
    pd.testing.assert_frame_equal(cvd_candles(with_ext, session=ES.session), c)


def test_running_delta_by_time_and_tick_bars():
    bars, _ = build(HAND, "1m", ES)
    by_time = running_delta_extremes(HAND, bars, by="time")
    assert by_time["delta_max"].tolist() == [5, 0, 4]
    # tick bars of 4 trades: [A1..A4] [A5 A6 B1 B2] [B3 B4] then C alone on the new day
    tb, _ = build(HAND, "T4", ES)
    assert tb["trades"].tolist() == [4, 4, 2, 1]
    e = running_delta_extremes(HAND, tb)
    # bar 1: +2, +5, +4, -2;  bar 2: -4, +1, 0, -3;  bar 3: -5, -3;  bar 4: +4
    assert e["delta_max"].tolist() == [5, 1, 0, 4]
    assert e["delta_min"].tolist() == [-2, -4, -5, 0]


# --------------------------------------------------------------------------------------------
# imbalances: one bar whose footprint is (tick: bid x ask)
#   20005: 6 x 0     <- high
#   20004: 5 x 1
#   20003: 0 x 4
#   20002: 1 x 9
#   20001: 2 x 30
#   20000: 8 x 0     <- low

LADDER = {20000: (8, 0), 20001: (2, 30), 20002: (1, 9), 20003: (0, 4), 20004: (5, 1),
          20005: (6, 0)}


def ladder_cells(ladder=LADDER, start=T0):
    rows, s = [], 0
    for tick, (bid, ask) in ladder.items():
        for size, side in ((bid, -1), (ask, 1)):
            if size:
                rows.append((s, tick, size, side))
                s += 1
    return build(trades(rows, start), "1m", ES)[1]


def test_imbalances_by_hand():
    im = imbalances(ladder_cells()).set_index("tick")
    # buy at p: ask(p) >= 3 * bid(p-1)
    #   20001: 30 >= 3*8 = 24 yes; 20002: 9 >= 3*2 = 6 yes; 20003: 4 >= 3*1 = 3 yes;
    #   20004: 1 >= 3*0 = 0 yes (zero on the other side counts); 20005: ask 0 -> no;
    #   20000 is the low: no row below inside the bar -> not compared
    assert im["buy"][im["buy"]].index.tolist() == [20001, 20002, 20003, 20004]
    # sell at p: bid(p) >= 3 * ask(p+1)
    #   20000: 8 >= 90 no; 20001: 2 >= 27 no; 20002: 1 >= 12 no; 20003: bid 0 no;
    #   20004: 5 >= 3*0 yes; 20005 is the high: not compared
    assert im["sell"][im["sell"]].index.tolist() == [20004]
    assert im.loc[20002, "bid_below"] == 2 and im.loc[20002, "ask_above"] == 4
    # min_volume 2 drops the 1-lot buy at 20004; the edges compared with 0 add a sell at 20005
    im2 = imbalances(ladder_cells(), min_volume=2, compare_edges=True).set_index("tick")
    assert im2["buy"][im2["buy"]].index.tolist() == [20001, 20002, 20003]
    assert im2["sell"][im2["sell"]].index.tolist() == [20004, 20005]
    # ratio 4.0 (400%): 20001 fails (30 < 4*8 = 32), 20002 passes (9 >= 4*2 = 8), 20003 just
    # passes (4 >= 4*1 = 4: the threshold is inclusive)
    im4 = imbalances(ladder_cells(), ratio=4.0).set_index("tick")
    assert im4["buy"][im4["buy"]].index.tolist() == [20002, 20003, 20004]


def test_imbalances_of_decimal_sizes_do_not_depend_on_float_rounding():
    """Crypto sizes are decimals: an ask of 0.3 against a bid of 0.1 below is 300% although
    0.3 < 3 * 0.1 in binary floating point, and 0.1 + 0.2 counts like 0.3."""
    cells = pd.DataFrame({"ts": [T0] * 3, "tick": [100, 101, 102],
                          "volume": [0.1, 0.3, 0.1 + 0.2], "ask_volume": [0.0, 0.3, 0.1 + 0.2],
                          "bid_volume": [0.1, 0.0, 0.0], "trades": [1, 1, 2]})
    assert 0.3 < 3 * 0.1 and 0.1 + 0.2 > 0.3  # the trap
    im = imbalances(cells, ratio=3.0, min_volume=0.3, compare_edges=True).set_index("tick")
    assert im.loc[101, "buy"]                  # 0.3 vs 3 x 0.1
    assert im.loc[102, "buy"]                  # 0.1 + 0.2 vs 3 x 0 and >= min_volume 0.3
    assert not im.loc[100, "buy"]              # no ask


def test_stacked_imbalances_by_hand():
    z = stacked_imbalances(ladder_cells())
    # buys at 20001..20004: one run of 4 rows; the lone sell at 20004 is no stack
    assert z[["side", "tick_low", "tick_high", "rows"]].values.tolist() == [[1, 20001, 20004, 4]]
    assert z["ts"].tolist() == [T0]
    z2 = stacked_imbalances(ladder_cells(), min_volume=2)
    assert z2[["side", "tick_low", "tick_high", "rows"]].values.tolist() == [[1, 20001, 20003, 3]]
    assert stacked_imbalances(ladder_cells(), min_rows=5).empty
    z3 = stacked_imbalances(ladder_cells(), min_rows=2, compare_edges=True)
    assert z3[["side", "tick_low", "tick_high", "rows"]].values.tolist() == [
        [1, 20001, 20004, 4], [-1, 20004, 20005, 2]]


def test_a_gap_breaks_a_stack():
    # 10: 9 x 0 (low); 11: 0 x 30; 12: 0 x 30; (13 untraded); 14: 0 x 30; 15: 0 x 30; 16: 1 x 0
    ladder = {10: (9, 0), 11: (0, 30), 12: (0, 30), 14: (0, 30), 15: (0, 30), 16: (1, 0)}
    im = imbalances(ladder_cells(ladder)).set_index("tick")
    # 11: 30 >= 27; 12, 14, 15: against 0 (an untraded row counts as 0) -> four buys
    assert im["buy"][im["buy"]].index.tolist() == [11, 12, 14, 15]
    # ... but 13 has no trades, so the runs are 11-12 and 14-15: no stack of 3
    assert stacked_imbalances(ladder_cells(ladder)).empty
    assert stacked_imbalances(ladder_cells(ladder), min_rows=2)["tick_low"].tolist() == [11, 14]


def test_group_ticks_by_hand():
    g = group_ticks(ladder_cells(), 2)
    # rows of 2 ticks keyed by the lower: 20000 = 20000+20001, 20002 = 20002+20003, 20004 = ...
    assert g["tick"].tolist() == [20000, 20002, 20004]
    assert g["bid_volume"].tolist() == [10, 1, 11]
    assert g["ask_volume"].tolist() == [30, 13, 1]
    assert g["volume"].tolist() == [40, 14, 12]
    # grouped diagonals: buy 20002: 13 >= 3*10? no; 20004: 1 >= 3*1? no. sell 20000: 10 >= 39 no
    im = imbalances(ladder_cells(), rows=2)
    assert not im["buy"].any() and not im["sell"].any()
    # negative ticks group by floor: -3 and -4 share the row -4, -1 and -2 the row -2
    cells = pd.DataFrame({"ts": [T0] * 4, "tick": [-4, -3, -2, -1], "volume": [1., 2., 3., 4.],
                          "ask_volume": [1., 2., 3., 4.], "bid_volume": [0.] * 4,
                          "trades": [1] * 4})
    assert group_ticks(cells, 2)[["tick", "volume"]].values.tolist() == [[-4, 3], [-2, 7]]


def test_unfinished_auctions_by_hand():
    # bar 1: the ladder -- high 20005 is 6 x 0, low 20000 is 8 x 0: both finished
    # bar 2: high 20011 is 2 x 3 (both sides: unfinished), low 20010 is 4 x 0 (finished)
    one = ladder_cells()
    two = ladder_cells({20010: (4, 0), 20011: (2, 3)}, start=T0 + MIN)
    u = unfinished_auctions(pd.concat([one, two], ignore_index=True))
    assert u["high_tick"].tolist() == [20005, 20011]
    assert u["low_tick"].tolist() == [20000, 20010]
    assert u["unfinished_high"].tolist() == [False, True]
    assert u["unfinished_low"].tolist() == [False, False]
    # with a filter of 3 lots per side the 2 x 3 high no longer counts
    assert unfinished_auctions(two, min_volume=3)["unfinished_high"].tolist() == [False]


# --------------------------------------------------------------------------------------------
# invariants


trade_lists = st.lists(
    st.tuples(st.integers(0, 3000), st.integers(-6, 6), st.integers(1, 9), st.sampled_from([-1, 0, 1])),
    min_size=1, max_size=80)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = pd.Timestamp("2026-01-05 22:40", tz="UTC")  # 16:40 Chicago: the day changes at 23:00 UTC


def brute_extremes(t, counts):
    t = t.sort_values("ts", kind="stable")
    signed = (t["size"] * np.sign(t["side"])).tolist()
    out, i = [], 0
    for c in counts:
        run, hi, lo = 0.0, 0.0, 0.0
        for x in signed[i:i + c]:
            run += x
            hi, lo = max(hi, run), min(lo, run)
        out.append((hi, lo))
        i += c
    return out


@FAST
@given(trade_lists, st.sampled_from(["1m", "T5", "V20"]))
def test_footprint_invariants(rows, spec):
    t = trades([(s, 20000 + k, z, d) for s, k, z, d in rows], START)
    bars, cells = build(t, spec, ES)
    # cells sum to each bar's volume and delta (bars of distinct open times for time bars)
    m = footprint_metrics(bars, t, cells if spec == "1m" else None)
    assert m["delta"].tolist() == pytest.approx((bars["ask_volume"] - bars["bid_volume"]).tolist())
    if spec == "1m":
        per_bar = cells.groupby("ts")[["volume", "ask_volume", "bid_volume"]].sum()
        assert per_bar["volume"].tolist() == pytest.approx(bars["volume"].tolist())
        assert (per_bar["ask_volume"] - per_bar["bid_volume"]).tolist() == pytest.approx(
            bars["delta"].tolist())
        # the POC has the bar's largest volume
        top = cells.groupby("ts")["volume"].max()
        at_poc = cells.set_index(["ts", "tick"])["volume"]
        for ts, poc in zip(m["ts"], m["poc"]):
            assert at_poc[(ts, poc)] == top[ts]
    # running extremes: brute force, and they bracket 0 and the delta
    want = brute_extremes(t, bars["trades"].tolist())
    assert m["delta_max"].tolist() == pytest.approx([hi for hi, _ in want])
    assert m["delta_min"].tolist() == pytest.approx([lo for _, lo in want])
    assert (m["delta_max"] >= np.maximum(m["delta"], 0) - 1e-9).all()
    assert (m["delta_min"] <= np.minimum(m["delta"], 0) + 1e-9).all()
    # CVD is the running sum of delta, restarting at each trading day
    c = cvd(bars, ES.session)
    days = ES.session.trading_date(bars["ts"])
    for day in np.unique(days):
        sel = np.asarray(days == day)
        assert c[sel].tolist() == pytest.approx(np.cumsum(bars["delta"][sel]).tolist())
    assert cvd(bars).tolist() == pytest.approx(np.cumsum(bars["delta"]).tolist())
    candles = cvd_candles(bars, t, ES.session)
    assert (candles["low"] <= np.minimum(candles["open"], candles["close"])).all()
    assert (candles["high"] >= np.maximum(candles["open"], candles["close"])).all()
    assert candles["close"].tolist() == pytest.approx(c.tolist())


def brute_poc(cells, rows):
    """{ts: (POC row key, its volume)}: rows summed, the most volume, then nearest the middle of
    the lowest and highest row, then the lower."""
    out = {}
    for ts, c in cells.groupby("ts"):
        vol = c.groupby(c["tick"] // rows * rows)["volume"].sum()
        mid2 = vol.index.min() + vol.index.max()
        best = [k for k in vol.index if vol[k] == vol.max()]
        k = min(best, key=lambda k: (abs(2 * k - mid2), k))
        out[ts] = (k, vol[k])
    return out


@FAST
@given(trade_lists, st.sampled_from([1, 2, 3]))
def test_bar_poc_of_rows_agrees_with_brute_force(rows, n):
    t = trades([(s, 20000 + k, z, d) for s, k, z, d in rows], START)
    bars, cells = build(t, "1m", ES)
    p = bar_poc(cells, rows=n)
    assert dict(zip(p["ts"], zip(p["poc"], p["poc_volume"]))) == brute_poc(cells, n)
    assert footprint_metrics(bars, cells=cells, rows=n)["poc"].tolist() == p["poc"].tolist()


def brute_imbalances(cells, ratio, min_volume, rows):
    book = {}
    for r in cells.itertuples():
        key = (r.ts, (r.tick // rows) * rows)
        b, a = book.get(key, (0.0, 0.0))
        book[key] = (b + r.bid_volume, a + r.ask_volume)
    out = {}
    for (ts, p), (bid, ask) in book.items():
        ticks = [k for (t2, k) in book if t2 == ts]
        below_bid = book.get((ts, p - rows), (0.0, 0.0))[0]
        above_ask = book.get((ts, p + rows), (0.0, 0.0))[1]
        buy = p != min(ticks) and ask > 0 and ask >= min_volume and ask >= ratio * below_bid
        sell = p != max(ticks) and bid > 0 and bid >= min_volume and bid >= ratio * above_ask
        out[(ts, p)] = (buy, sell)
    return out


@FAST
@given(trade_lists, st.sampled_from([1.5, 3.0, 4.0]), st.sampled_from([0, 3]),
       st.sampled_from([1, 2, 3]))
def test_imbalances_agree_with_brute_force(rows, ratio, min_volume, n):
    t = trades([(s, k, z, d) for s, k, z, d in rows], START)
    _, cells = build(t, "1m", ES)
    im = imbalances(cells, ratio=ratio, min_volume=min_volume, rows=n)
    got = {(ts, k): (b, s) for ts, k, b, s in zip(im["ts"], im["tick"], im["buy"], im["sell"])}
    assert got == brute_imbalances(cells, ratio, min_volume, n)
    # every stacked zone is a run of flagged adjacent rows of one bar
    for z in stacked_imbalances(cells, min_rows=2, ratio=ratio, min_volume=min_volume,
                                rows=n).itertuples():
        assert z.rows == (z.tick_high - z.tick_low) // n + 1 >= 2
        for p in range(z.tick_low, z.tick_high + 1, n):
            assert got[(z.ts, p)][0 if z.side == 1 else 1]
    g = group_ticks(cells, n)
    assert g["volume"].sum() == pytest.approx(cells["volume"].sum())
    assert (g["tick"] % n == 0).all()


# --------------------------------------------------------------------------------------------
# bad parameters and empty input


def test_bad_parameters():
    bars, cells = build(HAND, "1m", ES)
    for ratio in (1.0, 0.5, 0, -3, float("nan"), "3"):
        with pytest.raises(ValueError, match="ratio must be a number > 1"):
            imbalances(cells, ratio=ratio)
    with pytest.raises(ValueError, match="ratio"):
        stacked_imbalances(cells, ratio=0.9)
    for n in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="rows must be a whole number >= 1"):
            group_ticks(cells, n)
        with pytest.raises(ValueError, match="rows"):
            imbalances(cells, rows=n)
        with pytest.raises(ValueError, match="bar_poc: rows must be a whole number >= 1"):
            bar_poc(cells, rows=n)
        with pytest.raises(ValueError, match="footprint_metrics: rows must be a whole number"):
            footprint_metrics(bars, cells=cells, rows=n)
    with pytest.raises(ValueError, match="min_rows"):
        stacked_imbalances(cells, min_rows=0)
    with pytest.raises(ValueError, match="min_volume"):
        imbalances(cells, min_volume=-1)
    with pytest.raises(ValueError, match="reset must be one of"):
        cvd(bars, reset="daily")
    with pytest.raises(ValueError, match="needs a session"):
        cvd(bars, reset="session")
    with pytest.raises(ValueError, match="by must be one of"):
        running_delta_extremes(HAND, bars, by="bar")
    with pytest.raises(ValueError, match="exactly the trades the bars were built from"):
        running_delta_extremes(HAND.iloc[:-1], bars)
    with pytest.raises(ValueError, match="pass the trades"):
        cvd_candles(bars)
    with pytest.raises(ValueError, match="missing column"):
        imbalances(cells.drop(columns="bid_volume"))
    with pytest.raises(ValueError, match="missing column"):
        bar_delta(bars.drop(columns="volume"))


def test_empty_input_gives_empty_frames():
    bars, cells = build(HAND.iloc[:0], "1m", ES)
    assert footprint_metrics(bars, HAND.iloc[:0], cells).empty
    assert cvd(bars).empty and cvd_candles(bars, HAND.iloc[:0]).empty
    assert imbalances(cells).empty and stacked_imbalances(cells).empty
    assert unfinished_auctions(cells).empty and group_ticks(cells, 2).empty
    assert list(stacked_imbalances(cells).columns) == ["ts", "side", "tick_low", "tick_high", "rows"]


def test_studies_import_only_numpy_pandas_and_the_model():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "indicators"
    # plain-value modules of the standard library (and inspect, to read the batch functions'
    # signatures) are fine; nothing that does I/O or reaches the
    # application or a store
    allowed = {"__future__", "math", "numbers", "dataclasses", "datetime", "string", "typing",
               "functools", "inspect", "numpy", "pandas", "indicators", "collections"}
    # rglob: the live order-flow studies are a package of their own; the live protocol they share
    for src in (sorted((root / "orderflow").rglob("*.py"))
                + sorted((root / "profile").glob("*.py")) + [root / "live_protocol.py"]):
        for node in ast.walk(ast.parse(src.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name == "tradeflow.model" or name.split(".")[0] in allowed, (src, name)
