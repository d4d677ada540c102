"""Market profile (TPO): a hand-worked day, invariants, merge/split, bad parameters."""
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.profile.tpo import (LETTERS, merge_profiles, period_letter, split_profile,
                                    tpo_profile, tpo_profiles)
from tradeflow.model import Session

NY = Session.parse("America/New_York 09:30-16:00,18:00-17:00")
TICK = 0.25
OPEN = pd.Timestamp("2026-03-03 14:30", tz="UTC")  # 09:30 New York (EST), trading day 03-03


def bar(minute, low, high, open_=None, close=None, start=OPEN):
    """A 1-minute bar ``minute`` minutes after ``start``; prices given in ticks."""
    open_ = low if open_ is None else open_
    close = high if close is None else close
    return {"ts": start + pd.Timedelta(minutes=minute), "open": open_ * TICK, "high": high * TICK,
            "low": low * TICK, "close": close * TICK, "volume": 1.0}


# The hand-worked day, in ticks (price = tick * 0.25), 30-minute periods from the 09:30 open:
#   A 09:30  two bars 402-405 (open 404) and 403-406  -> A covers 402..406
#   B 10:00  401-404                                   -> B 401..404
#   C 10:30  404-408                                   -> C 404..408
#   D 11:00  408-411                                   -> D 408..411
#   E 11:30  405-406                                   -> E 405..406
#   F 12:00  410-411 (close 410)                       -> F 410..411
# plus a pre-market bar at 09:00 (08:59 local bar would do too) 380-420, outside regular hours.
#
#   tick  letters  count
#   411   DF       2     <- top row has 2 TPOs: poor high
#   410   DF       2
#   409   D        1     <- single print (2+ rows above and below)
#   408   CD       2
#   407   C        1     <- single print
#   406   ACE      3
#   405   ACE      3
#   404   ABC      3
#   403   AB       2
#   402   AB       2
#   401   B        1     <- bottom row 1 TPO: a tail, not poor, not a single print
# total 22 TPOs.
# POC: count 3 at 404, 405, 406; the profile spans 401..411, middle 406 -> POC 406.
# Value area, target 0.7 * 22 = 15.4: start 406 (3).
#   up 407+408 = 3, down 405+404 = 6 -> down, 9, area 404..406
#   up 3, down 403+402 = 4          -> down, 13, area 402..406
#   up 3, down 401 = 1              -> up, 16 >= 15.4, area 402..408.  VAL 402, VAH 408, 16 TPOs.
# IB (A, B) = 401..406. High 411 -> extension up 5 ticks, first beyond 406 in C (high 408).
# Low 401 = IB low -> no extension down. Open 404 in A, close 410 in F.
HAND = [bar(0, 402, 405, open_=404), bar(1, 403, 406), bar(30, 401, 404), bar(60, 404, 408),
        bar(90, 408, 411), bar(120, 405, 406), bar(150, 410, 411, close=410),
        bar(-30, 380, 420)]


def hand_bars():
    return pd.DataFrame(HAND)


def test_hand_worked_day():
    p = tpo_profile(hand_bars(), TICK, NY)
    lv = p.levels.set_index("tick")
    assert list(lv.index) == list(range(401, 412))
    assert lv["letters"].to_dict() == {
        401: "B", 402: "AB", 403: "AB", 404: "ABC", 405: "ACE", 406: "ACE", 407: "C",
        408: "CD", 409: "D", 410: "DF", 411: "DF"}
    assert lv["tpo_count"].tolist() == [1, 2, 2, 3, 3, 3, 1, 2, 1, 2, 2]
    assert p.tpo_count == 22
    assert (p.poc, p.val, p.vah, p.value_area_tpos) == (406, 402, 408, 16)
    assert lv.index[lv["poc"]].tolist() == [406]
    assert lv.index[lv["value_area"]].tolist() == list(range(402, 409))
    assert lv.index[lv["single_print"]].tolist() == [407, 409]
    assert p.single_prints == ((407, 407), (409, 409))
    assert (p.poor_high, p.poor_low) == (True, False)
    assert (p.ib_low, p.ib_high) == (401, 406)
    assert (p.ext_up, p.ext_up_period, p.ext_down, p.ext_down_period) == (5, "C", 0, None)
    assert (p.open, p.open_period, p.close, p.close_period) == (404, "A", 410, "F")
    assert (p.low, p.high) == (401, 411)
    assert p.dates == (pd.Timestamp("2026-03-03", tz="UTC"),)
    assert p.summary()["poc"] == 406


def test_all_hours_letters_count_from_the_day_start():
    # the day starts 18:00 the evening before; 09:00 is 15 h later = period 30 -> 'e',
    # 09:30 is period 31 -> 'f'
    p = tpo_profile(hand_bars(), TICK, NY, regular_only=False)
    lv = p.levels.set_index("tick")
    assert (p.low, p.high) == (380, 420)
    assert lv.loc[380, "letters"] == "e"
    assert lv.loc[404, "letters"] == "efgh"
    assert p.open_period == "e" and p.ib_low == 380 and p.ib_high == 420 and p.ext_up == 0


def test_ties_go_to_the_middle_then_lower_and_rows_group_ticks():
    # one period 10..13: four rows of 1 TPO; middle is between 11 and 12 -> the lower, 11
    p = tpo_profile(pd.DataFrame([bar(0, 10, 13)]), TICK, NY)
    assert p.poc == 11 and p.poor_high is False and p.single_prints == ()
    # rows=2 on the hand day: rows keyed 400, 402, ..., 410
    p2 = tpo_profile(hand_bars(), TICK, NY, rows=2)
    assert p2.levels["tick"].tolist() == [400, 402, 404, 406, 408, 410]
    assert p2.levels["letters"].tolist() == ["B", "AB", "ABCE", "ACE", "CD", "DF"]
    assert (p2.ib_low, p2.ib_high, p2.ext_up) == (400, 406, 4)


def test_letters_run_a_to_z_then_lowercase_and_wrap():
    assert LETTERS[:3] == "ABC" and period_letter(25) == "Z" and period_letter(26) == "a"
    assert period_letter(51) == "z" and period_letter(52) == "A"
    day = pd.DataFrame([bar(m, 0, 0) for m in range(0, 390, 5)])  # 78 five-minute periods
    p = tpo_profile(day, TICK, NY, period="5min")
    assert p.levels["letters"].iloc[0] == LETTERS + LETTERS[:26]


def test_profiles_per_day_merge_and_split():
    nxt = pd.DataFrame([bar(0, 400, 402, start=OPEN + pd.Timedelta(days=1)),
                        bar(30, 399, 400, start=OPEN + pd.Timedelta(days=1))])
    both = pd.concat([hand_bars(), nxt], ignore_index=True)
    days = tpo_profiles(both, TICK, NY)
    assert list(days) == [pd.Timestamp("2026-03-03", tz="UTC"),
                          pd.Timestamp("2026-03-04", tz="UTC")]
    d2 = days[pd.Timestamp("2026-03-04", tz="UTC")]
    assert d2.levels["letters"].tolist() == ["B", "AB", "A", "A"]
    m = merge_profiles(days)
    lv = m.levels.set_index("tick")
    assert lv.loc[400, "tpo_count"] == 2 and lv.loc[400, "letters"] == "AB"
    assert lv.loc[401, "letters"] == "BA" and m.tpo_count == 22 + 5
    assert m.ib_high is None and m.open == 404 and m.close == 400
    with pytest.raises(ValueError, match="2 trading days"):
        tpo_profile(both, TICK, NY)
    # split the hand day at 11:00 New York: A B C before, D E F after, letters kept
    before, after = split_profile(hand_bars(), TICK, NY, at=OPEN + pd.Timedelta(minutes=90))
    assert (before.low, before.high, before.close_period) == (401, 408, "C")
    assert (after.low, after.high, after.open_period, after.ib_high) == (405, 411, "D", 411)
    assert merge_profiles([before, after]).levels["tpo_count"].tolist() == \
        tpo_profile(hand_bars(), TICK, NY).levels["tpo_count"].tolist()


@pytest.mark.parametrize("kw, msg", [
    ({"tick_size": 0}, "tick_size"), ({"tick_size": -0.25}, "tick_size"),
    ({"tick_size": float("nan")}, "tick_size"), ({"rows": 0}, "rows"),
    ({"value_area": 0}, "value_area"), ({"value_area": 1.2}, "value_area"),
    ({"period": "0min"}, "period"), ({"period": "-5min"}, "period"), ({"period": "soon"}, "period"),
    ({"period": 30}, "period"), ({"period": timedelta(0)}, "period"),
    ({"ib_periods": 0}, "ib_periods"),
])
def test_bad_parameters(kw, msg):
    args = {"tick_size": TICK, **kw}
    with pytest.raises(ValueError, match=msg):
        tpo_profile(hand_bars(), args.pop("tick_size"), NY, **args)


def test_bad_bars():
    with pytest.raises(ValueError, match="no bars"):
        tpo_profile(hand_bars().iloc[:0], TICK, NY)
    with pytest.raises(ValueError, match="regular hours"):
        tpo_profile(pd.DataFrame([bar(-30, 1, 2)]), TICK, NY)
    with pytest.raises(ValueError, match="missing column"):
        tpo_profile(hand_bars().drop(columns="low"), TICK, NY)
    with pytest.raises(ValueError, match="high below low"):
        tpo_profile(pd.DataFrame([bar(0, 5, 4)]), TICK, NY)
    with pytest.raises(ValueError, match="one side"):
        split_profile(hand_bars(), TICK, NY, at=OPEN - pd.Timedelta(hours=2))
    with pytest.raises(ValueError, match="no profiles"):
        merge_profiles([])
    with pytest.raises(ValueError, match="different rows"):
        merge_profiles([tpo_profile(hand_bars(), TICK, NY),
                        tpo_profile(hand_bars(), TICK, NY, rows=2)])
    with pytest.raises(ValueError, match="different periods"):
        merge_profiles([tpo_profile(hand_bars(), TICK, NY),
                        tpo_profile(hand_bars(), TICK, NY, period="15min")])


def test_periods_follow_the_local_open_across_daylight_saving():
    # 2026-03-09 is the first trading day on EDT: the 09:30 open is 13:30 UTC
    edt = pd.Timestamp("2026-03-09 13:30", tz="UTC")
    p = tpo_profile(pd.DataFrame([bar(0, 1, 1, start=edt), bar(59, 2, 2, start=edt)]), TICK, NY)
    assert p.levels["letters"].tolist() == ["A", "B"]


# ---------------------------------------------------------------------------------------------
# invariants

UTC = Session()
DAY = pd.Timestamp("2026-01-05", tz="UTC")

bar_st = st.tuples(st.integers(0, 24 * 60 - 1), st.integers(-30, 30), st.integers(0, 12))


@st.composite
def day_bars(draw):
    raw = draw(st.lists(bar_st, min_size=1, max_size=40))
    rows = []
    for minute, low, width in raw:
        rows.append({"ts": DAY + pd.Timedelta(minutes=minute), "open": low * TICK,
                     "high": (low + width) * TICK, "low": low * TICK,
                     "close": (low + width) * TICK, "volume": 1.0})
    return pd.DataFrame(rows)


def expected_counts(bars, period_min, rows):
    counts = {}
    ticks = np.round(bars[["low", "high"]].to_numpy() / TICK).astype(int) // rows
    per = ((bars["ts"] - DAY) // pd.Timedelta(minutes=period_min)).to_numpy()
    for p in np.unique(per):
        lo, hi = ticks[per == p, 0].min(), ticks[per == p, 1].max()
        for r in range(lo, hi + 1):
            counts[r * rows] = counts.get(r * rows, 0) + 1
    return counts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day_bars(), st.sampled_from([15, 30, 60]), st.integers(1, 3),
       st.sampled_from([0.5, 0.7, 1.0]))
def test_counts_follow_bar_ranges_and_value_area_holds_the_target(bars, period_min, rows, va):
    p = tpo_profile(bars, TICK, UTC, period=timedelta(minutes=period_min), rows=rows,
                    value_area=va)
    got = dict(zip(p.levels["tick"], p.levels["tpo_count"]))
    exp = expected_counts(bars, period_min, rows)
    assert {k: v for k, v in got.items() if v} == exp
    assert (p.levels["letters"].str.len() == p.levels["tpo_count"]).all()
    assert p.levels.loc[p.levels["poc"], "value_area"].all()
    assert p.val <= p.poc <= p.vah
    assert p.value_area_tpos >= va * p.tpo_count - 1e-9
    assert p.levels.loc[p.levels["value_area"], "tpo_count"].sum() == p.value_area_tpos
    assert p.levels["tpo_count"].max() == p.levels.loc[p.levels["poc"], "tpo_count"].iloc[0]
    assert p.ib_low >= p.low and p.ib_high <= p.high
    assert p.ext_up == p.high - p.ib_high and p.ext_down == p.ib_low - p.low
    c = p.levels["tpo_count"].to_numpy()
    assert p.poor_high == (c[-1] >= 2) and p.poor_low == (c[0] >= 2)
    for i in np.flatnonzero(p.levels["single_print"]):
        assert c[i] == 1 and (c[:i] >= 2).any() and (c[i + 1:] >= 2).any()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(day_bars(), min_size=1, max_size=4))
def test_merged_counts_are_the_sum(days):
    profiles = [tpo_profile(b, TICK, UTC) for b in days]
    m = merge_profiles(profiles)
    total = {}
    for p in profiles:
        for t, c in zip(p.levels["tick"], p.levels["tpo_count"]):
            total[t] = total.get(t, 0) + c
    got = dict(zip(m.levels["tick"], m.levels["tpo_count"]))
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in total.items() if v}
    assert m.tpo_count == sum(p.tpo_count for p in profiles)
    assert m.value_area_tpos >= 0.7 * m.tpo_count - 1e-9
