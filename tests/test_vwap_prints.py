"""VWAP (session, anchored, incremental) and prints (big trades, zero prints, naked POCs):
hand-worked examples, invariants, bad parameters."""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.orderflow.imbalance import group_ticks
from indicators.orderflow.prints import big_trades, naked_pocs, zero_prints
from indicators.orderflow.vwap import VwapState, anchored_vwap, session_vwap
from tradeflow.bars import BarAggregator, build
from tradeflow.model import Instrument

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
T0 = pd.Timestamp("2026-01-05 15:00", tz="UTC")  # 09:00 in Chicago, trading day 2026-01-05
MIN = pd.Timedelta("1min")
NEXT_DAY = 8 * 3600 + 300  # 23:05 UTC = 17:05 Chicago: trading day 2026-01-06

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


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


HAND = trades([
    # bar A (15:00)
    (0, 20000, 2, +1),
    (5, 20001, 3, +1),
    (10, 20001, 1, -1),
    (15, 20000, 6, -1),
    (20, 19999, 4, -1),
    (25, 20000, 5, +1),
    # bar B (15:01)
    (60, 20013, 1, -1),
    (65, 20012, 3, -1),
    (70, 20010, 5, -1),
    (75, 20012, 2, +1),
    # bar C (next trading day)
    (NEXT_DAY, 20005, 4, +1),
])


def nan_equal(a, b):
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


# --------------------------------------------------------------------------------------------
# VWAP: hand-worked


def test_session_vwap_trades_by_hand():
    tr = trades([(0, 400, 1, 1), (1, 408, 3, -1), (NEXT_DAY, 404, 2, 1)])
    # prices 100.0 (size 1), 102.0 (size 3), then 101.0 (size 2) on the next trading day
    out = session_vwap(tr, ES.session, bands=(1, 2))
    assert list(out.columns) == ["ts", "vwap", "upper_1", "lower_1", "upper_2", "lower_2"]
    # row 0: VWAP 100, sd 0
    # row 1: VWAP (100*1 + 102*3)/4 = 406/4 = 101.5;
    #        var = (1*(100-101.5)^2 + 3*(102-101.5)^2)/4 = (2.25 + 0.75)/4 = 0.75
    # row 2: new day -> VWAP 101, sd 0
    assert out["vwap"].tolist() == pytest.approx([100.0, 101.5, 101.0])
    sd = math.sqrt(0.75)
    assert out["upper_1"].tolist() == pytest.approx([100.0, 101.5 + sd, 101.0])
    assert out["lower_2"].tolist() == pytest.approx([100.0, 101.5 - 2 * sd, 101.0])
    assert list(out["ts"]) == list(tr["ts"])


def test_session_vwap_bars_typical_price_by_hand():
    bars, _ = build(HAND, "1m", ES)
    out = session_vwap(bars, ES.session, bands=(1,))
    # A: H 5000.25, L 4999.75, C 5000.00 -> typical 5000.0, volume 21
    # B: H 5003.25, L 5002.50, C 5003.00 -> typical 15008.75/3 = 5002.91666.., volume 11
    # C: next day, H = L = C = 5001.25, volume 4
    tb = 15008.75 / 3
    v_b = (5000.0 * 21 + tb * 11) / 32  # = 5001.0026..
    var_b = (21 * (5000.0 - v_b) ** 2 + 11 * (tb - v_b) ** 2) / 32
    assert out["vwap"].tolist() == pytest.approx([5000.0, v_b, 5001.25])
    assert out["upper_1"].tolist() == pytest.approx([5000.0, v_b + math.sqrt(var_b), 5001.25])
    assert out["lower_1"].tolist() == pytest.approx([5000.0, v_b - math.sqrt(var_b), 5001.25])


def test_anchored_vwap_by_hand():
    bars, _ = build(HAND, "1m", ES)
    out = anchored_vwap(bars, T0 + MIN)  # anchored at bar B's open, never reset
    assert list(out.columns) == ["ts", "vwap"]
    tb = 15008.75 / 3
    # A: before the anchor -> NaN; B: its typical price; C: (tb*11 + 5001.25*4)/15
    assert math.isnan(out["vwap"][0])
    assert out["vwap"][1:].tolist() == pytest.approx([tb, (tb * 11 + 5001.25 * 4) / 15])
    # naive anchors are UTC; bands work as for the session VWAP
    out2 = anchored_vwap(bars, (T0 + MIN).tz_localize(None), bands=(2,))
    assert nan_equal(out2["vwap"], out["vwap"])
    assert math.isnan(out2["upper_2"][0])


def test_vwap_zero_volume_start_is_nan():
    tr = trades([(0, 400, 0, 1), (1, 404, 2, 1)])
    out = session_vwap(tr, ES.session)
    assert math.isnan(out["vwap"][0]) and math.isnan(out["upper_3"][0])
    assert out["vwap"][1] == pytest.approx(101.0)


def test_vwap_empty_input_gives_empty_frame():
    out = session_vwap(HAND.iloc[:0], ES.session)
    assert len(out) == 0 and list(out.columns)[:2] == ["ts", "vwap"]


# --------------------------------------------------------------------------------------------
# VWAP: bad parameters


@pytest.mark.parametrize("bands", [(0,), (-1,), (1, -2), (float("nan"),), ("1",), (1, 1.0), 0,
                                   None, (True,)])
def test_vwap_bad_bands(bands):
    with pytest.raises(ValueError, match="bands"):
        session_vwap(HAND, ES.session, bands=bands)


def test_vwap_bad_inputs():
    with pytest.raises(ValueError, match="Session"):
        session_vwap(HAND, "America/Chicago 08:30-15:15")
    with pytest.raises(ValueError, match="ordered by ts"):
        session_vwap(HAND.iloc[::-1], ES.session)
    bad = HAND.copy()
    bad.loc[2, "size"] = -1
    with pytest.raises(ValueError, match=">= 0"):
        session_vwap(bad, ES.session)
    with pytest.raises(ValueError, match="bars .* or trades"):
        session_vwap(HAND[["ts", "price"]], ES.session)
    with pytest.raises(ValueError, match="anchor_ts"):
        anchored_vwap(HAND, "not a time")
    with pytest.raises(ValueError, match="exactly one"):
        VwapState()
    with pytest.raises(ValueError, match="exactly one"):
        VwapState(session=ES.session, anchor_ts=T0)
    state = VwapState(session=ES.session)
    state.update(HAND.iloc[5:])
    with pytest.raises(ValueError, match="time order"):
        state.update(HAND.iloc[:5])
    bars, _ = build(HAND, "1m", ES)
    with pytest.raises(ValueError, match="one state"):
        state.update(bars)


# --------------------------------------------------------------------------------------------
# VWAP: invariants and the incremental form


@st.composite
def trade_lists(draw, max_size=30):
    n = draw(st.integers(1, max_size))
    secs = sorted(draw(st.lists(st.integers(0, 240), min_size=n, max_size=n)))
    # a few trades roll over into the next trading day
    cut = draw(st.integers(0, n))
    secs = [s if i < cut else s + NEXT_DAY for i, s in enumerate(secs)]
    ticks = draw(st.lists(st.integers(20000, 20008), min_size=n, max_size=n))
    sizes = draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
    sides = draw(st.lists(st.sampled_from([1, -1]), min_size=n, max_size=n))
    return trades(list(zip(secs, ticks, sizes, sides)))


def _splits(draw, n):
    return sorted(set(draw(st.lists(st.integers(0, n), max_size=4))))


@FAST
@given(data=st.data())
def test_vwap_state_equals_batch_for_any_split(data):
    tr = data.draw(trade_lists())
    as_bars = data.draw(st.booleans())
    frame = build(tr, "1m", ES)[0] if as_bars else tr
    cuts = [0] + _splits(data.draw, len(frame)) + [len(frame)]
    anchor = T0 + pd.Timedelta(seconds=data.draw(st.integers(-60, NEXT_DAY + 300)))
    for batch, state in ((session_vwap(frame, ES.session), VwapState(session=ES.session)),
                         (anchored_vwap(frame, anchor, bands=(1, 2.5)),
                          VwapState(anchor_ts=anchor, bands=(1, 2.5)))):
        parts = [state.update(frame.iloc[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
        inc = pd.concat(parts, ignore_index=True)
        assert list(inc.columns) == list(batch.columns)
        assert list(inc["ts"]) == list(batch["ts"])
        for c in batch.columns[1:]:
            assert nan_equal(inc[c], batch[c]), c


@FAST
@given(data=st.data())
def test_vwap_state_follows_bar_updates(data):
    # the live protocol: one aggregator's updates; a chart following the changes holds the batch
    # VWAP of every bar so far, the forming one included (its row recomputed, never added twice)
    tr = data.draw(trade_lists())
    spec = data.draw(st.sampled_from(["1m", "T3"]))
    cuts = [0] + _splits(data.draw, len(tr)) + [len(tr)]
    anchor = T0 + pd.Timedelta(seconds=data.draw(st.integers(-60, NEXT_DAY + 300)))
    agg = BarAggregator(ES, spec)
    states = {"bars": (VwapState(session=ES.session), VwapState(anchor_ts=anchor, bands=(2,))),
              "trades": (VwapState(session=ES.session, kind="trades"),
                         VwapState(anchor_ts=anchor, bands=(2,), kind="trades"))}
    shown = {}
    for a, b in zip(cuts[:-1], cuts[1:]):
        up = agg.update(tr.iloc[a:b])
        so_far = {"bars": build(tr.iloc[:b], spec, ES)[0], "trades": tr.iloc[:b]}
        for kind, (by_day, anchored) in states.items():
            for state, want in ((by_day, session_vwap(so_far[kind], ES.session)),
                                (anchored, anchored_vwap(so_far[kind], anchor, bands=(2,)))):
                ch = state.apply(up)["vwap"]
                key = (kind, id(state))
                shown[key] = ch.applied(shown[key]) if key in shown else ch.rows
                got = shown[key]
                assert ch.length == len(want) and list(got["ts"]) == list(want["ts"])
                for c in want.columns[1:]:
                    assert nan_equal(got[c].reset_index(drop=True), want[c]), (kind, c)


def test_vwap_state_apply_counts_a_forming_bar_once():
    agg, state = BarAggregator(ES, "1m"), VwapState(session=ES.session, bands=())
    for i in range(6):  # bar A grows trade by trade: its row is rewritten, not added
        ch = state.apply(agg.update(HAND.iloc[i:i + 1]))["vwap"]
        assert ch.length == 1 and ch.rows.index.tolist() == [0]
    want = session_vwap(build(HAND.iloc[:6], "1m", ES)[0], ES.session, bands=())
    assert ch.rows["vwap"].tolist() == want["vwap"].tolist()
    assert state.rows == 0  # nothing final yet
    ch = state.apply(agg.update(HAND.iloc[6:7]))["vwap"]  # B opens: A is final
    assert ch.rows.index.tolist() == [0, 1] and state.rows == 1
    with pytest.raises(ValueError, match="kind must be"):
        VwapState(session=ES.session, kind="ticks")


@FAST
@given(tr=trade_lists(), as_bars=st.booleans())
def test_vwap_within_session_range_and_bands_symmetric(tr, as_bars):
    frame = build(tr, "1m", ES)[0] if as_bars else tr
    out = session_vwap(frame, ES.session, bands=(1, 2, 3))
    day = ES.session.trading_date(frame["ts"])
    lo = (frame["low"] if as_bars else frame["price"]).groupby(day).cummin().to_numpy()
    hi = (frame["high"] if as_bars else frame["price"]).groupby(day).cummax().to_numpy()
    v = out["vwap"].to_numpy()
    assert np.all(v >= lo - 1e-9) and np.all(v <= hi + 1e-9)
    sd = out["upper_1"] - out["vwap"]
    assert np.all(sd >= 0)
    for k in (1, 2, 3):
        np.testing.assert_allclose(out[f"upper_{k}"] - v, v - out[f"lower_{k}"], atol=1e-9)
        np.testing.assert_allclose(out[f"upper_{k}"] - v, k * sd, atol=1e-9)


# --------------------------------------------------------------------------------------------
# big trades


def test_big_trades_by_hand():
    tr = trades([
        (0, 400, 5, +1),  # t0 buys: 5 @ 100.00 and 3 @ 100.25 (a sweep) -> 8 @ 100.09375
        (0, 401, 3, +1),  #   (5*100 + 3*100.25)/8 = 800.75/8 = 100.09375
        (0, 399, 2, -1),  # t0 sell 2 @ 99.75 (below 8)
        (1, 402, 10, +1),  # t1 buy 10 @ 100.50
        (2, 398, 8, -1),  # t2 sell 8 @ 99.50 (exactly min_size: kept)
    ])
    out = big_trades(tr, 8)
    assert list(out.columns) == ["ts", "side", "price", "size", "prints", "price_low", "price_high"]
    assert list(out["ts"]) == [T0, T0 + pd.Timedelta("1s"), T0 + pd.Timedelta("2s")]
    assert out["side"].tolist() == [1, 1, -1]
    assert out["price"].tolist() == pytest.approx([100.09375, 100.5, 99.5])
    assert out["size"].tolist() == [8, 10, 8]
    assert out["prints"].tolist() == [2, 1, 1]
    assert out["price_low"].tolist() == [100.0, 100.5, 99.5]
    assert out["price_high"].tolist() == [100.25, 100.5, 99.5]
    single = big_trades(tr, 8, aggregate_same_ts=False)  # the 5 and 3 no longer count
    assert single["size"].tolist() == [10, 8] and single["prints"].tolist() == [1, 1]
    assert len(big_trades(tr.iloc[:0], 1)) == 0


@pytest.mark.parametrize("min_size", [0, -1, float("nan"), float("inf"), "5", True, None])
def test_big_trades_bad_min_size(min_size):
    with pytest.raises(ValueError, match="min_size"):
        big_trades(HAND, min_size)


def test_big_trades_bad_frame():
    with pytest.raises(ValueError, match="side"):
        big_trades(HAND[["ts", "price", "size"]], 1)


@FAST
@given(tr=trade_lists(), min_size=st.integers(1, 25))
def test_big_trades_sizes_sum(tr, min_size):
    every = big_trades(tr, 1e-9)  # every group kept: sizes and prints add up to the input
    assert every["size"].sum() == pytest.approx(tr["size"].sum())
    assert every["prints"].sum() == len(tr)
    out = big_trades(tr, min_size)
    groups = tr.groupby(["ts", "side"])["size"].sum()
    assert out["size"].sum() == pytest.approx(groups[groups >= min_size].sum())
    assert np.all(out["size"] >= min_size)
    assert np.all((out["price_low"] <= out["price"]) & (out["price"] <= out["price_high"]))
    assert out["ts"].is_monotonic_increasing


# --------------------------------------------------------------------------------------------
# zero prints


def test_zero_prints_by_hand():
    bars, cells = build(HAND, "1m", ES)
    # A: 19999 bid 4 / ask 0 -> 'ask';  20000 ask 7 bid 6;  20001 ask 3 bid 1
    # B: 20010 bid 5 -> 'ask';  20011 no trade -> 'both';  20012 ask 2 bid 3;  20013 bid 1 -> 'ask'
    # C: 20005 ask 4 -> 'bid'
    expected = [(T0, 19999, "ask"), (T0 + MIN, 20010, "ask"), (T0 + MIN, 20011, "both"),
                (T0 + MIN, 20013, "ask"), (T0 + pd.Timedelta(seconds=NEXT_DAY), 20005, "bid")]
    for out in (zero_prints(cells, bars), zero_prints(cells, bars, tick_size=0.25)):
        assert list(out.columns) == ["ts", "tick", "missing_side"]
        assert list(out.itertuples(index=False, name=None)) == expected


def test_zero_prints_bar_range_from_bars():
    bars, cells = build(HAND.iloc[:6], "1m", ES)
    wide = bars.assign(high=bars["high"] + 0.25)  # the bar states one more level above
    out = zero_prints(cells, wide, tick_size=0.25)
    assert out["tick"].tolist() == [19999, 20002]
    assert out["missing_side"].tolist() == ["ask", "both"]


def test_zero_prints_of_rows_by_hand():
    bars, cells = build(HAND, "1m", ES)
    # rows of 2 ticks keyed by the lower one (floor(tick / 2) * 2), ask / bid summed per row:
    # A: 19998 (19998-99): ask 0, bid 4 -> 'ask';  20000 (20000-01): ask 7 + 3, bid 6 + 1
    # B: 20010 (20010-11): ask 0, bid 5 -> 'ask';  20012 (20012-13): ask 2, bid 3 + 1
    # C: 20004 (20004-05): ask 4, bid 0 -> 'bid'
    expected = [(T0, 19998, "ask"), (T0 + MIN, 20010, "ask"),
                (T0 + pd.Timedelta(seconds=NEXT_DAY), 20004, "bid")]
    for out in (zero_prints(cells, bars, rows=2), zero_prints(cells, bars, 0.25, rows=2)):
        assert list(out.itertuples(index=False, name=None)) == expected
    # grouping the cells first is not the same: the range is then walked tick by tick, so the
    # ticks between row keys (19999, 20011, ...) look untraded
    walked = zero_prints(group_ticks(cells, 2), bars)
    assert (T0, 19999, "both") in list(walked.itertuples(index=False, name=None))
    # rows of 3: A 19998 (19998-20000): ask 7, bid 10; 20001: ask 3, bid 1 -> none;
    # B 20010 (20010-12): ask 2, bid 8; 20013 (20013-15): bid 1 -> 'ask';  C 20004: 'bid'
    out = zero_prints(cells, bars, rows=3)
    assert list(out.itertuples(index=False, name=None)) == [
        (T0 + MIN, 20013, "ask"), (T0 + pd.Timedelta(seconds=NEXT_DAY), 20004, "bid")]


def test_zero_prints_of_rows_a_gap_inside_the_stated_range():
    bars, cells = build(HAND.iloc[:6], "1m", ES)
    wide = bars.assign(high=bars["high"] + 0.5)  # the bar states two more levels: up to 20003
    # rows of 2 over 19999..20003: 19998 ('ask': bid 4 only), 20000 (both sides),
    # 20002 (20002-03, no trade -> 'both')
    out = zero_prints(cells, wide, tick_size=0.25, rows=2)
    assert out["tick"].tolist() == [19998, 20002]
    assert out["missing_side"].tolist() == ["ask", "both"]


def test_zero_prints_bad_inputs():
    bars, cells = build(HAND, "1m", ES)
    with pytest.raises(ValueError, match="no bar"):
        zero_prints(cells, bars.iloc[:1])
    with pytest.raises(ValueError, match="tick_size"):
        zero_prints(cells, bars, tick_size=0)
    with pytest.raises(ValueError, match="missing column"):
        zero_prints(cells.drop(columns="bid_volume"), bars)
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="zero_prints: rows must be a whole number >= 1"):
            zero_prints(cells, bars, rows=n)


@FAST
@given(tr=trade_lists(), n=st.sampled_from([1, 2, 3]))
def test_zero_prints_match_brute_force(tr, n):
    bars, cells = build(tr, "1m", ES)
    out = zero_prints(cells, bars, tick_size=ES.tick_size, rows=n)
    expected = []
    for b in bars.itertuples():
        c = cells[cells["ts"] == b.ts].set_index("tick")
        lo, hi = int(ES.to_tick(b.low)) // n * n, int(ES.to_tick(b.high)) // n * n
        for k in range(lo, hi + 1, n):  # every row of the range; a row's sides summed
            a = sum(c["ask_volume"].get(x, 0.0) for x in range(k, k + n))
            d = sum(c["bid_volume"].get(x, 0.0) for x in range(k, k + n))
            if a == 0 or d == 0:
                expected.append((b.ts, k, "both" if a == d == 0 else ("ask" if a == 0 else "bid")))
    assert list(out.itertuples(index=False, name=None)) == expected
    assert list(zero_prints(cells, bars, rows=n).itertuples(index=False, name=None)) == expected


# --------------------------------------------------------------------------------------------
# naked POCs

NAKED = trades([
    (0, 20100, 5, 1), (1, 20101, 1, -1),      # bar 0: POC 20100, range 20100-20101
    (60, 20102, 3, 1), (61, 20103, 1, -1),    # bar 1: POC 20102, range 20102-20103
    (120, 20101, 1, 1), (121, 20102, 1, -1),  # bar 2: tie 20101/20102, equally near the middle
                                              #        20101.5 -> the lower, 20101; range 20101-02
    (180, 20100, 2, -1),                      # bar 3: POC 20100, range 20100
    (NEXT_DAY, 20099, 3, 1), (NEXT_DAY + 1, 20100, 1, 1),  # bar 4 (next day): POC 20099, 20099-00
])


def test_naked_pocs_by_hand():
    _, cells = build(NAKED, "1m", ES)
    t = [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN, T0 + pd.Timedelta(seconds=NEXT_DAY)]
    out = naked_pocs(cells)
    assert list(out.columns) == ["ts", "kind", "poc", "naked_until"]
    assert list(out["ts"]) == t and set(out["kind"]) == {"bar"}
    assert out["poc"].tolist() == [20100, 20102, 20101, 20100, 20099]
    # bar 0's 20100: bar 1 (20102-03) and bar 2 (20101-02) miss it, bar 3 (20100) touches it
    # bar 1's 20102: bar 2's range 20101-20102 holds it
    # bar 2's 20101: bar 3 (20100) and bar 4 (20099-20100) miss it -> naked
    # bar 3's 20100: bar 4 (20099-20100) holds it;  bar 4: nothing after it -> naked
    assert list(out["naked_until"].isna()) == [False, False, True, False, True]
    assert list(out["naked_until"].dropna()) == [t[3], t[2], t[4]]

    with_sessions = naked_pocs(cells, ES.session)
    sess = with_sessions[with_sessions["kind"] == "session"]
    # day 1 volume per tick: 20100 5+2 = 7, 20101 1+1 = 2, 20102 3+1 = 4, 20103 1 -> POC 20100,
    # revisited by bar 4 (the first bar of day 2); day 2: POC 20099, nothing after it
    assert list(sess["ts"]) == [pd.Timestamp("2026-01-05", tz="UTC"),
                                pd.Timestamp("2026-01-06", tz="UTC")]
    assert sess["poc"].tolist() == [20100, 20099]
    assert sess["naked_until"].iloc[0] == t[4] and pd.isna(sess["naked_until"].iloc[1])
    assert with_sessions.iloc[:5].equals(out)


def test_naked_pocs_of_rows_by_hand():
    _, cells = build(NAKED, "1m", ES)
    t = [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN, T0 + pd.Timedelta(seconds=NEXT_DAY)]
    # rows of 2 ticks (20100 = 20100-01, 20102 = 20102-03, 20098 = 20098-99), per bar:
    #   bar 0: 20100 = 5 + 1 = 6                      -> POC 20100, range rows 20100
    #   bar 1: 20102 = 3 + 1 = 4                      -> POC 20102, range rows 20102
    #   bar 2: 20100 = 1 (20101), 20102 = 1: a tie, both as near the middle 20101 -> the lower,
    #          20100; range rows 20100-20102
    #   bar 3: 20100 = 2                              -> POC 20100, range rows 20100
    #   bar 4: 20098 = 3 (20099), 20100 = 1           -> POC 20098, range rows 20098-20100
    out = naked_pocs(cells, rows=2)
    assert out["poc"].tolist() == [20100, 20102, 20100, 20100, 20098]
    # bar 0's row: bar 1 misses it, bar 2 trades in it (20101) -> t[2]
    # bar 1's row: bar 2 (20102) -> t[2];  bar 2's row 20100: bar 3 traded 20100 -> t[3]
    #   (with single ticks bar 2's POC 20101 stayed naked: bar 3 traded 20100 only)
    # bar 3's row: bar 4 (rows 20098-20100) -> t[4];  bar 4: nothing after it -> naked
    assert list(out["naked_until"].iloc[:4]) == [t[2], t[2], t[3], t[4]]
    assert pd.isna(out["naked_until"].iloc[4])
    sess = naked_pocs(cells, ES.session, rows=2).iloc[5:]
    # day 1 rows: 20100 = 5 + 1 + 1 + 2 = 9, 20102 = 3 + 1 + 1 = 5 -> POC 20100, revisited by
    # bar 4 (day 2, rows 20098-20100); day 2: 20098 = 3, 20100 = 1 -> POC 20098, naked
    assert sess["kind"].tolist() == ["session"] * 2
    assert sess["poc"].tolist() == [20100, 20098]
    assert sess["naked_until"].iloc[0] == t[4] and pd.isna(sess["naked_until"].iloc[1])


def test_naked_pocs_bad_inputs():
    _, cells = build(NAKED, "1m", ES)
    with pytest.raises(ValueError, match="Session"):
        naked_pocs(cells, session="UTC 00:00-24:00")
    with pytest.raises(ValueError, match="missing column"):
        naked_pocs(cells.drop(columns="volume"))
    assert len(naked_pocs(cells.iloc[:0])) == 0
    for n in (0, -3, 1.0, None):
        with pytest.raises(ValueError, match="naked_pocs: rows must be a whole number >= 1"):
            naked_pocs(cells, rows=n)


@FAST
@given(tr=trade_lists(), n=st.sampled_from([1, 2, 3]))
def test_naked_poc_never_inside_a_later_bar(tr, n):
    bars, cells = build(tr, "1m", ES)
    out = naked_pocs(cells, ES.session, rows=n)
    assert (out["poc"] % n == 0).all()  # row keys
    # a bar's range in rows: from the row of its low to the row of its high
    lo, hi = ES.to_tick(bars["low"]) // n * n, ES.to_tick(bars["high"]) // n * n
    ts = list(bars["ts"])
    days = ES.session.trading_date(bars["ts"])
    for r in out.itertuples():
        if r.kind == "bar":
            after = [i for i, x in enumerate(ts) if x > r.ts]
        else:
            after = [i for i, d in enumerate(days) if d > r.ts]
        covering = [i for i in after if lo[i] <= r.poc <= hi[i]]
        if pd.isna(r.naked_until):
            assert not covering  # naked: no later bar's range holds it
        else:
            assert ts[covering[0]] == r.naked_until  # the first revisit
