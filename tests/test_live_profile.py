"""Live volume profile and TPO, developing POC / value area: a hand-worked developing example,
live == batch after every update of random streams (property tests), invariants, bad parameters."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.profile import (LiveTPO, LiveVolumeProfile, developing_profile, session_profiles,
                                tpo_profiles, volume_profile)
from tradeflow.bars import BarAggregator, build
from tradeflow.model import Instrument, Session

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
T0 = pd.Timestamp("2026-01-05 15:00", tz="UTC")  # trading day 2026-01-05 in Chicago
NEXT_DAY = pd.Timestamp("2026-01-05 23:00", tz="UTC")  # 17:00 Chicago: trading day 2026-01-06
NY = Session.parse("America/New_York 09:30-16:00,18:00-17:00")
OPEN = pd.Timestamp("2026-03-03 14:30", tz="UTC")  # 09:30 New York, trading day 2026-03-03
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cells(ts, volumes: dict) -> pd.DataFrame:
    """One bar's footprint cells at ``ts``: ``{tick: volume}``, a third of it bought."""
    ticks = np.array(list(volumes), dtype="int64")
    v = np.array(list(volumes.values()), dtype="float64")
    return pd.DataFrame({"ts": pd.DatetimeIndex([ts] * len(v)).as_unit("ns"), "tick": ticks,
                         "volume": v, "ask_volume": v / 3, "bid_volume": v - v / 3,
                         "trades": np.ones(len(v), "int64")})


def bar(ts, low, high, open_=None, close=None, tick=0.25) -> dict:
    """A bar at ``ts``; prices in ticks."""
    return {"ts": ts, "open": (low if open_ is None else open_) * tick, "high": high * tick,
            "low": low * tick, "close": (high if close is None else close) * tick, "volume": 1.0}


def frame(bars: list[dict]) -> pd.DataFrame:
    out = pd.DataFrame(bars, columns=["ts", "open", "high", "low", "close", "volume"])
    out["ts"] = pd.DatetimeIndex(out["ts"]).as_unit("ns")
    return out


def same_tpo(a, b) -> None:
    assert a.summary() == b.summary()
    assert (a.dates, a.rows, a.period) == (b.dates, b.rows, b.period)
    pd.testing.assert_frame_equal(a.levels, b.levels)


def same_profile(a, b) -> None:
    assert a.summary() == b.summary() and a.rows == b.rows
    pd.testing.assert_frame_equal(a.levels, b.levels)


# --------------------------------------------------------------------------------------------
# hand-worked developing POC

# Four 1-minute bars (ticks: volume); the fourth opens the next trading day.
#   bar 1 15:00   100: 5, 101: 3
#   bar 2 15:01   101: 4, 102: 6
#   bar 3 15:02    99: 2, 100: 6
#   bar 4 23:00   200: 1                   (17:00 Chicago: trading day 2026-01-06)
HAND = [(T0, {100: 5, 101: 3}), (T0 + pd.Timedelta("1min"), {101: 4, 102: 6}),
        (T0 + pd.Timedelta("2min"), {99: 2, 100: 6}), (NEXT_DAY, {200: 1})]
# So far after each bar:
#   1: 100: 5, 101: 3. POC 100. Total 8, target 5.6: 5; above (101) = 3, below nothing -> 8.
#      VA 100..101.
#   2: 100: 5, 101: 7, 102: 6. POC 101. Total 18, target 12.6: 7; above (102) = 6, below
#      (100) = 5 -> above: 13 >= 12.6. VA 101..102.
#   3: 99: 2, 100: 11, 101: 7, 102: 6. POC 100. Total 26, target 18.2: 11; above (101, 102) =
#      13, below (99) = 2 -> above: 24 >= 18.2. VA 100..102.
#   4: a new day: 200: 1 alone. POC = VAH = VAL = 200.
HAND_ROWS = [(100, 101, 100, 8.0), (101, 102, 101, 18.0), (100, 102, 100, 26.0),
             (200, 200, 200, 1.0)]


def test_developing_profile_by_hand():
    all_cells = pd.concat([cells(t, v) for t, v in HAND], ignore_index=True)
    dev = developing_profile(all_cells, ES.session)
    assert list(dev.columns) == ["ts", "date", "poc", "vah", "val", "volume"]
    assert dev["ts"].tolist() == [t for t, _ in HAND]
    assert dev["date"].dt.strftime("%Y-%m-%d").tolist() == ["2026-01-05"] * 3 + ["2026-01-06"]
    assert list(zip(dev["poc"], dev["vah"], dev["val"], dev["volume"])) == HAND_ROWS
    # without a session it never restarts: bar 4 joins the profile (200 stretches the range;
    # POC 100 still with 11)
    one = developing_profile(all_cells)
    assert one["date"].isna().all()
    assert (one["poc"].iloc[-1], one["volume"].iloc[-1]) == (100, 27.0)
    # rows of 2 ticks, bar 1: 100: 8 -> POC, VAH, VAL 100
    assert developing_profile(all_cells, ES.session, rows=2).iloc[0][["poc", "vah", "val"]
                                                                    ].tolist() == [100, 100, 100]
    # the live form, bar 2 forming (half of it, then whole), bar 1 closed
    live = LiveVolumeProfile(ES.session)
    first = live.update(current=cells(*HAND[0]))
    assert [(r.ts, r.poc, r.vah, r.val) for r in first] == [(T0, 100, 101, 100)]
    rows = live.update(closed=cells(*HAND[0]), current=cells(HAND[1][0], {102: 6}))
    # 100: 5, 101: 3, 102: 6 -> POC 102 (6); 14 * 0.7 = 9.8: 6; below (100, 101) = 8 -> 14
    assert [(r.poc, r.vah, r.val) for r in rows] == [(100, 101, 100), (102, 102, 100)]
    live.update(current=cells(*HAND[1]))
    assert live.summary() == {"poc": 101, "vah": 102, "val": 101, "volume": 18.0}
    live.update(closed=pd.concat([cells(*HAND[1]), cells(*HAND[2])]), current=cells(*HAND[3]))
    assert live.date == pd.Timestamp("2026-01-06", tz="UTC")
    pd.testing.assert_frame_equal(live.developing(), dev)
    assert live.profile().levels["tick"].tolist() == [200]


# --------------------------------------------------------------------------------------------
# live volume profile == batch, after every update of a random stream

volumes = st.one_of(st.integers(0, 20).map(float), st.integers(0, 40).map(lambda x: x / 10))


@st.composite
def cell_bars(draw):
    """Bars as ``(ts, {tick: volume})``, times increasing, sometimes across the 23:00 UTC day
    change, with the partial versions a forming bar goes through."""
    n = draw(st.integers(1, 8))
    t = NEXT_DAY - pd.Timedelta(minutes=draw(st.integers(0, 12)))
    price = draw(st.integers(-5, 5))
    out = []
    for _ in range(n):
        t += pd.Timedelta(minutes=draw(st.integers(1, 5)))
        price += draw(st.integers(-3, 3))
        final = draw(st.dictionaries(st.integers(price - 4, price + 4), volumes, min_size=1,
                                     max_size=6))
        partials = []
        for _ in range(draw(st.integers(0, 2))):
            keep = [k for k in final if draw(st.booleans())] or [next(iter(final))]
            partials.append({k: final[k] if draw(st.booleans()) else 0.0 for k in keep})
        out.append((t, final, partials))
    return out


def cell_updates(draw, bars):
    """The stream in updates ``(closed bars, current version or None)``, split at random."""
    updates, closed = [], []
    for t, final, partials in bars:
        for part in partials:
            if draw(st.booleans()):
                updates.append((closed, (t, part)))
                closed = []
        closed = closed + [(t, final)]
        if draw(st.booleans()):
            updates.append((closed, None))
            closed = []
    if closed:
        updates.append((closed, None))
    return updates


@SLOW
@given(st.data(), st.integers(1, 3), st.sampled_from([0.01, 0.5, 0.7, 1.0]),
       st.sampled_from([ES.session, None]))
def test_live_volume_profile_equals_batch(data, rows, share, session):
    bars = data.draw(cell_bars())
    live = LiveVolumeProfile(session, rows, share)
    fed = []  # cells of the closed bars, in the order fed
    for closed, current in cell_updates(data.draw, bars):
        closed_cells = [cells(t, v) for t, v in closed]
        cur = cells(*current) if current else None
        touched = live.update(pd.concat(closed_cells) if closed_cells else None, cur)
        fed += closed_cells
        now = pd.concat(fed + ([cur] if cur is not None else []), ignore_index=True)
        day = (session.trading_date(now["ts"]) if session else pd.DatetimeIndex([T0] * len(now)))
        today = now[(day == day[-1])]
        if today["volume"].sum() > 0:
            same_profile(live.profile(), volume_profile(today, rows, share))
        else:
            with pytest.raises(ValueError, match="no volume"):
                live.profile()
        dev = developing_profile(now, session, rows, share)
        pd.testing.assert_frame_equal(live.developing(), dev)
        assert {r.ts for r in touched} <= set(dev["ts"])
        assert [r.ts for r in touched] == sorted({r.ts for r in touched})
        check_developing(now, dev, session, rows, share)


def check_developing(all_cells, dev, session, rows, share) -> None:
    """Each developing row is the profile of its day's cells up to its bar, written out."""
    t = pd.DatetimeIndex(all_cells["ts"])
    day = session.trading_date(t) if session else pd.DatetimeIndex([T0] * len(t))
    for r in dev.itertuples():
        mine = all_cells[(t <= r.ts) & (day == (r.date if session else T0))]
        assert r.volume == pytest.approx(mine["volume"].sum())
        if not mine["volume"].sum() > 0:
            assert pd.isna(r.poc) and pd.isna(r.vah) and pd.isna(r.val)
            continue
        p = volume_profile(mine, rows, share)
        assert (r.poc, r.vah, r.val, r.volume) == (p.poc, p.vah, p.val, p.volume)
        # invariants: the value area holds the POC and at least the target share
        assert r.val <= r.poc <= r.vah
        assert p.value_area_volume >= share * p.volume * (1 - 1e-12)


@SLOW
@given(st.lists(st.tuples(st.integers(0, 3 * 24 * 60), st.integers(-6, 6), st.integers(1, 9)),
                min_size=1, max_size=40), st.integers(1, 2))
def test_developing_ends_at_the_session_profile(rows_, rows):
    all_cells = pd.concat([cells(T0 + pd.Timedelta(minutes=m), {k: float(v)})
                           for m, k, v in rows_], ignore_index=True)
    dev = developing_profile(all_cells, ES.session, rows=rows)
    assert dev["ts"].is_monotonic_increasing and dev["ts"].is_unique
    last = dev.groupby("date").tail(1).set_index("date")
    summary = session_profiles(all_cells, ES.session, rows=rows)[1].set_index("date")
    assert last[["poc", "vah", "val"]].astype("int64").equals(summary[["poc", "vah", "val"]])
    assert last["volume"].tolist() == summary["volume"].tolist()
    assert (dev["val"] <= dev["poc"]).all() and (dev["poc"] <= dev["vah"]).all()


def test_live_from_the_bar_aggregator():
    """The pipeline's form: trades in batches -> BarAggregator -> apply(update)."""
    rng = np.random.default_rng(3)
    n = 20_000
    ts = T0 - pd.Timedelta("3h") + pd.to_timedelta(np.sort(rng.integers(0, 12 * 3600 * 10**6, n)),
                                                   unit="us")
    trades = pd.DataFrame({"ts": ts, "price": 5000 + 0.25 * np.cumsum(rng.integers(-1, 2, n)),
                           "size": rng.integers(1, 9, n).astype(float),
                           "side": rng.choice([-1, 1], n).astype("int8"),
                           "trade_id": np.arange(n)})
    agg = BarAggregator(ES, "1m")
    vp, tpo = LiveVolumeProfile(ES.session, rows=2), LiveTPO(ES.tick_size, ES.session)
    cuts = np.sort(rng.choice(np.arange(1, n), 60, replace=False))
    shown, seen_rows = vp.developing(), 0
    for part in np.split(np.arange(n), cuts):
        up = agg.update(trades.iloc[part])
        changes = vp.apply(up)["developing"]
        levels = tpo.apply(up)["tpo"]
        # a chart following the changes only holds the developing rows
        shown = changes.applied(shown)
        pd.testing.assert_frame_equal(shown, vp.developing())
        assert changes.rows.index[0] >= seen_rows - 2  # only the last closed row is re-sent
        seen_rows = changes.length
        if tpo.date is not None:
            pd.testing.assert_frame_equal(levels.rows, tpo.profile().levels)
        else:
            assert levels.length == 0 and levels.rows.empty
    bars, fp = build(trades, "1m", ES)
    day = ES.session.trading_date(fp["ts"])
    same_profile(vp.profile(), volume_profile(fp[day == day[-1]], rows=2))
    pd.testing.assert_frame_equal(vp.developing(), developing_profile(fp, ES.session, rows=2))
    same_tpo(tpo.profile(), list(tpo_profiles(bars, ES.tick_size, ES.session).values())[-1])


# --------------------------------------------------------------------------------------------
# live TPO == batch


@st.composite
def tpo_bars(draw):
    """1-minute-ish bars (prices in ticks) from before the New York open, with gaps of up to a
    day, and the partial versions a forming bar goes through (a narrower range)."""
    n = draw(st.integers(1, 14))
    t = OPEN - pd.Timedelta(minutes=draw(st.integers(0, 20)))
    price = 400
    out = []
    for _ in range(n):
        t += pd.Timedelta(minutes=draw(st.sampled_from([1, 1, 2, 3, 7, 13, 31, 24 * 60])))
        price += draw(st.integers(-4, 4))
        low, high = price - draw(st.integers(0, 3)), price + draw(st.integers(0, 3))
        final = bar(t, low, high, draw(st.integers(low, high)), draw(st.integers(low, high)))
        partials = []
        for _ in range(draw(st.integers(0, 2))):
            lo = draw(st.integers(low, high))
            hi = draw(st.integers(lo, high))
            partials.append(bar(t, lo, hi, final["open"] / 0.25, draw(st.integers(lo, hi))))
        out.append((t, final, partials))
    return out


def bar_updates(draw, bars):
    updates, closed = [], []
    for _, final, partials in bars:
        for part in partials:
            if draw(st.booleans()):
                updates.append((closed, part))
                closed = []
        closed = closed + [final]
        if draw(st.booleans()):
            updates.append((closed, None))
            closed = []
    if closed:
        updates.append((closed, None))
    return updates


@SLOW
@given(st.data(), st.sampled_from(["5min", "10min", "30min"]), st.integers(1, 3),
       st.integers(1, 3), st.booleans(), st.sampled_from([0.3, 0.7, 1.0]))
def test_live_tpo_equals_batch(data, period, rows, ib_periods, regular_only, share):
    kw = dict(period=period, rows=rows, value_area=share, ib_periods=ib_periods,
              regular_only=regular_only)
    live = LiveTPO(0.25, NY, **kw)
    fed = []
    for closed, current in bar_updates(data.draw, data.draw(tpo_bars())):
        live.update(frame(closed) if closed else None, frame([current]) if current else None)
        fed += closed
        now = frame(fed + ([current] if current else []))
        try:
            days = tpo_profiles(now, 0.25, NY, **kw)
        except ValueError as exc:  # no bar in regular hours yet
            assert "no bars in the session's regular hours" in str(exc)
            with pytest.raises(ValueError, match="no bars in the session's hours yet"):
                live.profile()
            continue
        same_tpo(live.profile(), list(days.values())[-1])
        assert live.date == list(days)[-1]


def test_live_tpo_hand_day_bar_by_bar():
    # test_tpo's hand-worked day fed one bar at a time, each first as a forming half-bar
    from tests.test_tpo import HAND, TICK
    from indicators.profile.tpo import tpo_profile

    live = LiveTPO(TICK, NY)
    bars = sorted(HAND, key=lambda b: b["ts"])
    for k, b in enumerate(bars):
        half = dict(b, high=b["low"], close=b["low"])
        live.update(current=frame([half]))
        live.update(closed=frame([b]))
        if k:  # the first bar is pre-market: nothing to profile yet
            same_tpo(live.profile(), tpo_profile(frame(bars[:k + 1]), TICK, NY))
    prof = live.profile()
    assert (prof.poc, prof.val, prof.vah, prof.ext_up, prof.ext_up_period) == (406, 402, 408,
                                                                                5, "C")


# --------------------------------------------------------------------------------------------
# bad parameters, empty input, out-of-order feeds


def test_bad_parameters_and_input():
    c = cells(*HAND[0])
    for share in (0, -0.1, 1.01, float("nan"), "0.7"):
        with pytest.raises(ValueError, match=r"value_area must be a share in \(0, 1\]"):
            developing_profile(c, value_area=share)
        with pytest.raises(ValueError, match=r"value_area must be a share in \(0, 1\]"):
            LiveVolumeProfile(value_area=share)
        with pytest.raises(ValueError, match=r"value_area must be a share in \(0, 1\]"):
            LiveTPO(0.25, NY, value_area=share)
    for rows in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="rows must be a whole number >= 1"):
            developing_profile(c, rows=rows)
        with pytest.raises(ValueError, match="rows must be a whole number >= 1"):
            LiveVolumeProfile(rows=rows)
        with pytest.raises(ValueError, match="rows must be a whole number >= 1"):
            LiveTPO(0.25, NY, rows=rows)
    with pytest.raises(ValueError, match="no cells, nothing to profile"):
        developing_profile(c.iloc[:0])
    with pytest.raises(ValueError, match="missing column"):
        developing_profile(c.drop(columns="volume"))
    with pytest.raises(ValueError, match="session must be"):
        developing_profile(c, "America/Chicago 08:30-15:15")
    with pytest.raises(ValueError, match="session must be"):
        LiveVolumeProfile("UTC 00:00-24:00")
    with pytest.raises(ValueError, match="tick_size must be a positive number"):
        LiveTPO(0, NY)
    with pytest.raises(ValueError, match="period must be a positive duration"):
        LiveTPO(0.25, NY, period=30)
    with pytest.raises(ValueError, match="ib_periods must be a whole number >= 1"):
        LiveTPO(0.25, NY, ib_periods=0)

    live = LiveVolumeProfile(ES.session)
    with pytest.raises(ValueError, match="no cells yet, nothing to profile"):
        live.profile()
    assert live.developing().empty and live.update() == []
    assert live.summary()["poc"] is None
    live.update(closed=pd.concat([cells(*HAND[0]), cells(*HAND[1])]))
    with pytest.raises(ValueError, match="time order"):
        live.update(closed=cells(*HAND[0]))
    with pytest.raises(ValueError, match="time order"):
        live.update(current=cells(*HAND[0]))
    with pytest.raises(ValueError, match="one bar"):
        live.update(current=pd.concat([cells(*HAND[2]), cells(*HAND[3])]))
    with pytest.raises(ValueError, match="missing column"):
        live.update(closed=cells(*HAND[2]).drop(columns="tick"))
    # a refused update changes nothing
    assert live.summary() == {"poc": 101, "vah": 102, "val": 101, "volume": 18.0}

    tpo = LiveTPO(0.25, NY)
    with pytest.raises(ValueError, match="no bars in the session's hours yet"):
        tpo.profile()
    tpo.update(closed=frame([bar(OPEN - pd.Timedelta("5min"), 1, 2)]))  # pre-market: ignored
    with pytest.raises(ValueError, match="no bars in the session's hours yet"):
        tpo.profile()
    tpo.update(closed=frame([bar(OPEN + pd.Timedelta("1min"), 1, 2)]))
    with pytest.raises(ValueError, match="time order"):
        tpo.update(closed=frame([bar(OPEN, 1, 2)]))
    with pytest.raises(ValueError, match="one forming bar"):
        tpo.update(current=frame([bar(OPEN + pd.Timedelta("2min"), 1, 2),
                                  bar(OPEN + pd.Timedelta("3min"), 1, 2)]))
    with pytest.raises(ValueError, match="high below low"):
        tpo.update(closed=frame([bar(OPEN + pd.Timedelta("2min"), 3, 2)]))
    assert tpo.profile().tpo_count == 2


def test_bars_sharing_a_time_give_one_developing_row():
    # tick bars may share an open time: their cells cannot be told apart, one step per time
    live = LiveVolumeProfile()
    live.update(closed=cells(T0, {100: 1.0}))
    rows = live.update(closed=cells(T0, {101: 3.0}))
    assert [(r.poc, r.volume, r.date) for r in rows] == [(101, 4.0, None)]
    live.update(current=cells(T0, {102: 5.0}))
    dev = live.developing()
    assert dev[["poc", "volume"]].values.tolist() == [[102, 9.0]]
    pd.testing.assert_frame_equal(dev, developing_profile(pd.concat(
        [cells(T0, {100: 1.0}), cells(T0, {101: 3.0}), cells(T0, {102: 5.0})])))
