"""Volume profile: POC, value area, nodes, session and composite profiles -- hand-worked examples,
invariants, bad parameters."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.profile import (composite_profile, session_profiles, value_area_bounds,
                                volume_nodes, volume_profile)
from tradeflow.bars import build
from tradeflow.model import Instrument

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
T0 = pd.Timestamp("2026-01-05 15:00", tz="UTC")  # trading day 2026-01-05 in Chicago


def cells_from(volumes: dict, start=T0, bars=2):
    """Footprint cells whose summed volume per tick is ``volumes``, spread over ``bars`` minutes
    (built from trades: buys for the first half of each level's volume, sells for the rest)."""
    rows, s = [], 0
    for tick, v in volumes.items():
        for part, side in ((v // 2, 1), (v - v // 2, -1)):
            if part:
                rows.append((s % (60 * bars), tick, part, side))
                s += 37
    rows.sort()
    sec, tick, size, side = (np.asarray(x) for x in zip(*rows))
    t = pd.DataFrame({"ts": start + pd.to_timedelta(sec, unit="s"), "price": tick * ES.tick_size,
                      "size": size.astype(float), "side": side.astype("int8"),
                      "trade_id": np.arange(len(sec))})
    return build(t, "1m", ES)[1]


# tick: volume (105 untraded)
HAND = {100: 2, 101: 5, 102: 9, 103: 20, 104: 12, 106: 7, 107: 3, 108: 1}


def test_value_area_by_hand():
    p = volume_profile(cells_from(HAND))
    lv = p.levels
    # every level of the range is a row, the untraded 105 with volume 0
    assert lv["tick"].tolist() == list(range(100, 109))
    assert lv["volume"].tolist() == [2, 5, 9, 20, 12, 0, 7, 3, 1]
    assert (lv["ask_volume"] + lv["bid_volume"]).tolist() == lv["volume"].tolist()
    # total 59, target 0.70 * 59 = 41.3. Start at the POC 103: 20.
    #   above (104, 105) = 12 + 0 = 12, below (101, 102) = 5 + 9 = 14 -> below: 34
    #   above (104, 105) = 12, below (100) = 2 -> above: 46 >= 41.3, done
    assert (p.poc, p.val, p.vah) == (103, 101, 105)
    assert (p.volume, p.value_area_volume) == (59, 46)
    assert lv.loc[lv["poc"], "tick"].tolist() == [103]
    assert lv.loc[lv["value_area"], "tick"].tolist() == [101, 102, 103, 104, 105]
    # 100% takes everything; a tiny share just the POC
    assert (volume_profile(cells_from(HAND), value_area=1.0).val,
            volume_profile(cells_from(HAND), value_area=1.0).vah) == (100, 108)
    tiny = volume_profile(cells_from(HAND), value_area=0.1)
    assert (tiny.val, tiny.vah) == (103, 103)  # 20 >= 5.9 already


def test_value_area_grouped_rows_by_hand():
    p = volume_profile(cells_from(HAND), rows=2)
    # rows of 2 ticks: 100: 2+5 = 7, 102: 9+20 = 29, 104: 12+0 = 12, 106: 7+3 = 10, 108: 1
    assert p.levels["tick"].tolist() == [100, 102, 104, 106, 108]
    assert p.levels["volume"].tolist() == [7, 29, 12, 10, 1]
    # POC 102: 29; above (104, 106) = 22, below (100) = 7 -> above: 51 >= 41.3
    assert (p.poc, p.val, p.vah, p.value_area_volume) == (102, 102, 106, 51)


def test_value_area_tie_goes_above():
    # 10: 4, 11: 10 (POC), 12: 2, 13: 2 -- total 18, target 12.6
    # above (12, 13) = 4 equals below (10) = 4: the pair above is taken -> 14
    assert value_area_bounds(np.array([4., 10, 2, 2]), 1, 0.7) == (1, 3)
    p = volume_profile(cells_from({10: 4, 11: 10, 12: 2, 13: 2}))
    assert (p.poc, p.val, p.vah) == (11, 11, 13)


def test_poc_tie_goes_to_the_middle_then_lower():
    # 100 and 102 hold 5: 102 is closer to the middle (101.5) of 100..103
    assert volume_profile(cells_from({100: 5, 101: 1, 102: 5, 103: 1})).poc == 102
    # 100 and 103 equally far from the middle 101.5: the lower
    assert volume_profile(cells_from({100: 5, 101: 1, 102: 1, 103: 5})).poc == 100


def test_volume_nodes_by_hand():
    levels = pd.DataFrame({"tick": np.arange(7), "volume": [1., 5, 2, 1, 6, 3, 1]})
    n = volume_nodes(levels, smooth=1, span=1)
    # no smoothing; peaks: 1 (5 > 1, 5 >= 2), 4 (6 > 1, 6 >= 3); trough: 3 (1 < 2, 1 <= 6);
    # the end levels 0 and 6 are never nodes
    assert n[["tick", "kind"]].values.tolist() == [[1, "hvn"], [3, "lvn"], [4, "hvn"]]
    # a flat top gives its lowest level
    flat = pd.DataFrame({"tick": np.arange(5), "volume": [1., 4, 4, 1, 2]})
    assert volume_nodes(flat, smooth=1, span=1)[["tick", "kind"]].values.tolist() == [
        [1, "hvn"], [3, "lvn"]]
    # smoothing over 3 levels: s = [3, 8/3, 8/3, 3, 10/3, 10/3, 2]: with span 1 the flat
    # low 1..2 gives 1 (lvn), the flat top 4..5 gives 4 (hvn)
    sm = volume_nodes(levels, smooth=3, span=1)
    assert sm[["tick", "kind"]].values.tolist() == [[1, "lvn"], [4, "hvn"]]
    assert sm["smoothed"].tolist() == pytest.approx([8 / 3, 10 / 3])
    # from a profile: one clear peak at 103 within 3 levels each side
    assert volume_nodes(volume_profile(cells_from(HAND)), smooth=1, span=3)[
        ["tick", "kind"]].values.tolist() == [[103, "hvn"], [105, "lvn"]]


def test_session_and_composite_profiles():
    # day 1 (2026-01-05): HAND; day 2 (17:00 Chicago = 23:00 UTC onwards -> 2026-01-06)
    day2 = {103: 1, 104: 3, 105: 8, 106: 2}
    cells = pd.concat([cells_from(HAND), cells_from(day2, start=pd.Timestamp(
        "2026-01-05 23:30", tz="UTC"))], ignore_index=True)
    levels, summary = session_profiles(cells, ES.session)
    assert summary["date"].tolist() == [pd.Timestamp("2026-01-05", tz="UTC"),
                                        pd.Timestamp("2026-01-06", tz="UTC")]
    assert summary["poc"].tolist() == [103, 105]
    assert summary["volume"].tolist() == [59, 14]
    # day 2: POC 105: 8; above (106) = 2, below (103, 104) = 4 -> below: 12 >= 9.8
    assert summary[["val", "vah"]].values.tolist() == [[101, 105], [103, 105]]
    assert levels.columns[0] == "date" and len(levels) == 9 + 4
    # composite of both days: 103: 21, 104: 15, 105: 8, 106: 9 ...
    both = composite_profile(cells, ES.session, sessions=2)
    assert both.poc == 103 and both.volume == 73
    assert both.levels.set_index("tick")["volume"].to_dict() == {
        100: 2, 101: 5, 102: 9, 103: 21, 104: 15, 105: 8, 106: 9, 107: 3, 108: 1}
    # the last one session is day 2; ending on day 1 it is day 1
    assert composite_profile(cells, ES.session, sessions=1).poc == 105
    assert composite_profile(cells, ES.session, sessions=5, end="2026-01-05").volume == 59


# --------------------------------------------------------------------------------------------
# invariants

profiles = st.dictionaries(st.integers(-20, 20), st.integers(0, 30), min_size=1, max_size=25) \
    .filter(lambda d: sum(d.values()) > 0)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def direct_cells(volumes: dict, ts=T0) -> pd.DataFrame:
    ticks = np.array(list(volumes), dtype="int64")
    v = np.array(list(volumes.values()), dtype=float)
    return pd.DataFrame({"ts": ts, "tick": ticks, "volume": v, "ask_volume": np.floor(v / 3),
                         "bid_volume": v - np.floor(v / 3), "trades": np.ones(len(v), "int64")})


@FAST
@given(profiles, st.floats(0.01, 1.0), st.integers(1, 4))
def test_value_area_invariants(volumes, share, rows):
    p = volume_profile(direct_cells(volumes), rows=rows, value_area=share)
    lv = p.levels
    v = lv["volume"].to_numpy()
    assert v.sum() == pytest.approx(sum(volumes.values()))
    assert np.diff(lv["tick"]).tolist() == [rows] * (len(lv) - 1)  # contiguous levels
    # the POC has the max volume
    assert lv.loc[lv["poc"], "volume"].item() == v.max()
    # the value area contains the POC, is contiguous, and holds at least the target share
    va = lv["value_area"].to_numpy()
    idx = np.flatnonzero(va)
    assert (np.diff(idx) == 1).all()
    assert va[lv["poc"].to_numpy()].all()
    assert lv.loc[va, "volume"].sum() >= share * v.sum() * (1 - 1e-12)
    assert (p.val, p.vah) == (lv["tick"][idx[0]], lv["tick"][idx[-1]])
    assert p.val <= p.poc <= p.vah
    # and it is the one the expansion rule gives, written out plainly
    assert (idx[0], idx[-1]) == brute_value_area(v.tolist(), share)


def brute_value_area(v, share):
    n = len(v)
    top = max(v)
    poc = sorted((i for i in range(n) if v[i] == top), key=lambda i: (abs(2 * i - (n - 1)), i))[0]
    area, acc = {poc}, v[poc]
    while acc < share * sum(v) and len(area) < n:
        up = [i for i in (max(area) + 1, max(area) + 2) if i < n]
        down = [i for i in (min(area) - 1, min(area) - 2) if i >= 0]
        su, sd = sum(v[i] for i in up), sum(v[i] for i in down)
        take = up if up and (not down or su >= sd) else down
        area |= set(take)
        acc += sum(v[i] for i in take)
    return min(area), max(area)


@FAST
@given(profiles, st.integers(1, 7), st.integers(1, 4))
def test_node_invariants(volumes, smooth, span):
    p = volume_profile(direct_cells(volumes))
    nodes = volume_nodes(p, smooth=smooth, span=span)
    ticks = p.levels["tick"].tolist()
    for r in nodes.itertuples():
        assert ticks[0] < r.tick < ticks[-1]
    assert nodes["tick"].is_monotonic_increasing


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 3 * 24 * 60), st.integers(-5, 5), st.integers(1, 9)),
                min_size=1, max_size=60))
def test_session_profiles_partition_the_composite(rows):
    cells = pd.concat([direct_cells({k: v}, ts=T0 + pd.Timedelta(minutes=m)) for m, k, v in rows],
                      ignore_index=True)
    levels, summary = session_profiles(cells, ES.session)
    days = ES.session.trading_date(cells["ts"])
    assert summary["date"].tolist() == sorted(set(days))
    assert summary["volume"].sum() == pytest.approx(cells["volume"].sum())
    everything = composite_profile(cells, ES.session, sessions=len(summary))
    per_tick = levels.groupby("tick")["volume"].sum()
    assert everything.levels.set_index("tick")["volume"].to_dict() == pytest.approx(
        per_tick.reindex(everything.levels["tick"], fill_value=0).to_dict())
    for day, part in levels.groupby("date"):
        one = summary.set_index("date").loc[day]
        assert part.loc[part["poc"], "tick"].item() == one["poc"]


# --------------------------------------------------------------------------------------------
# bad parameters and empty input


def test_bad_parameters():
    cells = cells_from(HAND)
    for rows in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rows must be a whole number >= 1"):
            volume_profile(cells, rows=rows)
    for share in (0, -0.1, 1.01, 70, float("nan")):
        with pytest.raises(ValueError, match=r"value_area must be a share in \(0, 1\]"):
            volume_profile(cells, value_area=share)
    with pytest.raises(ValueError, match="no cells, nothing to profile"):
        volume_profile(cells.iloc[:0])
    with pytest.raises(ValueError, match="no cells"):
        session_profiles(cells.iloc[:0], ES.session)
    with pytest.raises(ValueError, match="no volume"):
        volume_profile(cells.assign(volume=0.0))
    with pytest.raises(ValueError, match="missing column"):
        volume_profile(cells.drop(columns="tick"))
    with pytest.raises(ValueError, match="smooth"):
        volume_nodes(volume_profile(cells), smooth=0)
    with pytest.raises(ValueError, match="sessions"):
        composite_profile(cells, ES.session, sessions=0)
    with pytest.raises(ValueError, match="no trading day on or before"):
        composite_profile(cells, ES.session, end="2020-01-01")
    with pytest.raises(ValueError, match="session must be"):
        session_profiles(cells, "America/Chicago 08:30-15:15")


@FAST
@given(st.lists(st.one_of(st.integers(0, 6).map(float), st.integers(0, 30).map(lambda x: x / 10)),
                min_size=1, max_size=40), st.floats(0.01, 1.0), st.data())
def test_merged_expansion_is_the_step_by_step_one(volumes, share, data):
    # the loop-free expansion (used past 200 levels) against the loop, from any start level
    from indicators.profile.volume import _expand_loop, _expand_merged

    v = np.array(volumes)
    start = data.draw(st.integers(0, len(v) - 1))
    target = share * float(v.sum())
    assert _expand_merged(v, start, target) == _expand_loop(v, start, target)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 9).map(float), min_size=201, max_size=320), st.floats(0.01, 1.0))
def test_value_area_of_many_levels(volumes, share):
    if not sum(volumes):
        volumes[0] = 1.0
    v = np.array(volumes)
    top = v.max()
    n = len(v)
    poc = sorted((i for i in range(n) if v[i] == top), key=lambda i: (abs(2 * i - (n - 1)), i))[0]
    assert value_area_bounds(v, poc, share) == brute_value_area(volumes, share)
