"""Live (incremental) order-flow studies: after every batch of trades the live results equal the
batch functions over all trades so far, and a chart that follows only the changes holds the same;
a hand-worked example; bad input."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import indicators.orderflow as of
from indicators.orderflow import LiveOrderFlow
from indicators.orderflow.live import INSTRUMENT, REQUIRED, STUDIES, study_defaults
from tests.test_orderflow import ES, HAND, START, T0, trades
from tests.test_vwap_prints import NAKED, NEXT_DAY
from tradeflow.bars import BarAggregator, build
from tradeflow.model import BarSpec, ModelError

MIN = pd.Timedelta("1min")
DIVIDED = {"footprint_metrics": ["delta_pct"], "big_trades": ["price"]}  # compared with a tolerance


class Stream:
    """A ``LiveOrderFlow`` following a ``BarAggregator`` (what the pipeline does): ``update``
    feeds a batch to the aggregator and its update to the flow; ``changes`` keeps the last
    ``ChangeSet``; the rest is the flow's."""

    def __init__(self, spec, flow):
        self.aggregator, self.flow, self.change_set = BarAggregator(ES, spec), flow, None

    def update(self, trades=None, liquidations=None):
        self.change_set = self.flow.apply(self.aggregator.update(trades, liquidations))
        return self.flow.last_update

    def __getattr__(self, name):
        return getattr(self.flow, name)


def live_for(spec="1m", **params):
    return Stream(spec, LiveOrderFlow(ES, **params))


def follow_changes(live, shown):
    """What a chart following only the changes holds: ``shown`` (output -> frame) updated with
    the last update's changes, checked equal to the results."""
    for name in ("bars", "footprint") + live.studies:
        ch = live.change_set[name]
        res = live.result(name)
        assert ch.length == len(res), name
        shown[name] = ch.applied(shown[name]) if name in shown else ch.rows
        if isinstance(res, pd.Series):
            pd.testing.assert_series_equal(shown[name], res, obj=name)
        else:  # (labels are str, or object when empty, as the batch functions give them)
            pd.testing.assert_frame_equal(shown[name], res, check_dtype=len(res) > 0,
                                          check_index_type=False, obj=name)


def liq_frame(rows, start=T0):
    """Liquidations from (seconds after start, side, tick, size) tuples."""
    sec, side, tick, size = (np.asarray(x) for x in zip(*rows)) if rows else ([],) * 4
    return pd.DataFrame({"ts": start + pd.to_timedelta(np.asarray(sec, float), unit="s"),
                         "side": np.asarray(side, "int8"),
                         "price": np.asarray(tick, float) * ES.tick_size,
                         "size": np.asarray(size, float)})


def assert_same(got, want, name):
    """Exact equality, except a tolerance for the columns that are divisions."""
    if isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want, check_exact=True, obj=name)
        return
    divided = [c for c in DIVIDED.get(name, []) if c in want.columns]
    pd.testing.assert_frame_equal(got.drop(columns=divided), want.drop(columns=divided),
                                  check_exact=True, obj=name)
    for c in divided:
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float),
                                   rtol=1e-12, err_msg=f"{name}.{c}")
        assert got[c].dtype == want[c].dtype


def check_against_batch(live, so_far, liqs_so_far, spec):
    bars, cells = build(so_far, spec, ES)
    if BarSpec.parse(spec).heikin_ashi:
        bars = build(so_far, BarSpec.parse(spec).base, ES)[0]
    for name, want in live.batch(so_far, bars, cells, liqs_so_far).items():
        assert_same(live.result(name), want, name)
    assert_same(live.result("bars"), bars, "bars")
    assert_same(live.result("footprint"), cells, "footprint")


def check_changes(live, name):
    """``changes`` are rows of ``result`` at their positions, and hold every row of the bars the
    update touched."""
    res, ch = live.result(name), live.changes(name)
    if isinstance(res, pd.Series):
        pd.testing.assert_series_equal(ch, res.loc[ch.index])
        return
    # (labels are str, or object when empty, as the batch functions give them)
    pd.testing.assert_frame_equal(ch, res.loc[ch.index], check_dtype=len(ch) > 0)
    ts_col = "ts_start" if name == "sweeps" else "ts"
    if name in ("big_trades", "sweeps") or not len(res):
        return
    first = live.last_update.first_bar
    if first < live.n_bars:
        t0 = live.result("bars")["ts"].iloc[first]
        touched = res[(res[ts_col] >= t0) & ((res["kind"] == "bar") if name == "naked_pocs"
                                             else True)]
        assert set(touched.index) <= set(ch.index), name


# --------------------------------------------------------------------------------------------
# hand-worked


def test_hand_worked_batches():
    # HAND (tests/test_orderflow.py): bar A 15:00 (6 trades), bar B 15:01 (4), bar C next day (1)
    live = live_for(cvd={"session": ES.session}, cvd_candles={"session": ES.session})
    up = live.update(HAND.iloc[:3])  # A: +2 @20000, +3 @20001, -1 @20001
    assert (up.first_bar, up.bars, up.closed) == (0, 1, 0)
    m = live.result("footprint_metrics")
    # running delta +2, +5, +4; POC 20001 (3 + 1 = 4 against 2)
    assert m[["volume", "delta", "delta_max", "delta_min"]].values.tolist() == [[6, 4, 5, 0]]
    assert m["poc"].tolist() == [20001]
    up = live.update(HAND.iloc[3:8])  # the rest of A (-6, -4, +5), then B's first two
    assert (up.first_bar, up.bars, up.closed) == (0, 2, 1)  # A was forming: touched again
    up = live.update(HAND.iloc[8:])  # B's last two, then C on the next trading day
    assert (up.first_bar, up.bars, up.closed) == (1, 3, 2)  # A is closed: not touched
    m = live.result("footprint_metrics")
    assert m["volume"].tolist() == [21, 11, 4]
    assert m["delta"].tolist() == [-1, -7, 4]
    assert m["delta_max"].tolist() == [5, 0, 4]
    assert m["delta_min"].tolist() == [-6, -9, 0]
    assert m["poc"].tolist() == [20000, 20012, 20005]
    assert live.changes("footprint_metrics").index.tolist() == [1, 2]
    # CVD restarts on the new trading day: -1, -8, then 4
    assert live.result("cvd").tolist() == [-1, -8, 4]
    assert live.result("cvd_candles")[["open", "high", "low", "close"]].values.tolist() == [
        [0, 5, -6, -1], [-1, -1, -10, -8], [0, 4, 0, 4]]


def test_big_trade_split_across_batches():
    # three prints of one timestamp, 2 + 2 lots bought and 1 sold; min size 4
    t = trades([(0, 100, 2, 1), (0, 101, 2, 1), (0, 101, 1, -1), (1, 100, 1, 1)])
    live = live_for(studies=["big_trades"], big_trades={"min_size": 4})
    live.update(t.iloc[:1])
    assert live.result("big_trades").empty  # 2 lots so far
    live.update(t.iloc[1:3])
    big = live.result("big_trades")  # the two buys are one order of 4 at 100.5 on average
    assert big[["side", "size", "prints"]].values.tolist() == [[1, 4, 2]]
    assert big["price"].tolist() == [100.5 * ES.tick_size]
    live.update(t.iloc[3:])  # a later timestamp: the group is final
    assert live.result("big_trades")[["size", "prints"]].values.tolist() == [[4, 2]]
    # the update wrote that row (it became final); the 1-lot print at 15:00:01 is no big trade
    assert live.changes("big_trades").index.tolist() == [0]


def test_naked_pocs_trade_by_trade():
    # NAKED (tests/test_vwap_prints.py): bar POCs 20100, 20102, 20101, 20100, 20099
    live = live_for(studies=["naked_pocs"], naked_pocs={"session": ES.session})
    for i in range(len(NAKED)):
        live.update(NAKED.iloc[i:i + 1])
    out = live.result("naked_pocs")
    t = [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN, T0 + pd.Timedelta(seconds=NEXT_DAY)]
    bars = out[out["kind"] == "bar"]
    assert bars["poc"].tolist() == [20100, 20102, 20101, 20100, 20099]
    assert list(bars["naked_until"]) == [t[3], t[2], pd.NaT, t[4], pd.NaT]
    sess = out[out["kind"] == "session"]
    assert sess["poc"].tolist() == [20100, 20099]  # day 1 covered by the first bar of day 2
    assert sess["naked_until"].iloc[0] == t[4] and pd.isna(sess["naked_until"].iloc[1])
    # the last trade (20100) widens bar 4 to 20099-20100: that update covered bar 3's POC and
    # day 1's, and rewrote bar 4's and day 2's rows
    ch = live.changes("naked_pocs")
    assert list(zip(ch["kind"], ch["poc"])) == [("bar", 20100), ("bar", 20099),
                                                ("session", 20100), ("session", 20099)]
    assert ch.index.tolist() == [3, 4, 5, 6]


def test_rows_trade_by_trade():
    # NAKED in rows of 2 ticks (hand-worked in tests/test_vwap_prints.py): bar POCs 20100,
    # 20102, 20100, 20100, 20098; bar 2's row is revisited by bar 3 (20100), which it was not
    # with single ticks
    live = live_for(studies=["footprint_metrics", "naked_pocs", "zero_prints"],
                    footprint_metrics={"rows": 2}, naked_pocs={"session": ES.session, "rows": 2},
                    zero_prints={"rows": 2})
    for i in range(len(NAKED)):
        live.update(NAKED.iloc[i:i + 1])
    assert live.result("footprint_metrics")["poc"].tolist() == [20100, 20102, 20100, 20100,
                                                                20098]
    out = live.result("naked_pocs")
    assert out["poc"].tolist() == [20100, 20102, 20100, 20100, 20098, 20100, 20098]
    assert out["naked_until"].isna().tolist() == [False] * 4 + [True, False, True]
    bars, cells = build(NAKED, "1m", ES)
    for name, want in live.batch(NAKED, bars, cells).items():
        assert_same(live.result(name), want, name)


def test_session_poc_of_a_day_that_ended_between_batches():
    # T2 bars: day 1's two bars are complete when its batch ends, so the next batch (day 2)
    # touches none of them; day 1's POC 100 must still wait for, and be covered by, day 2's bar
    t = trades([(0, 100, 3, 1), (1, 100, 1, -1), (2, 101, 1, 1), (3, 102, 1, 1),
                (NEXT_DAY, 99, 1, 1), (NEXT_DAY + 1, 100, 1, -1)])
    live = live_for("T2", studies=["naked_pocs"], naked_pocs={"session": ES.session})
    live.update(t.iloc[:4])
    assert live.n_closed == live.n_bars == 2
    up = live.update(t.iloc[4:])
    assert up.first_bar == 2
    want = of.naked_pocs(build(t, "T2", ES)[1], ES.session)
    assert_same(live.result("naked_pocs"), want, "naked_pocs")
    day1 = want[want["kind"] == "session"].iloc[0]
    assert day1["poc"] == 100 and day1["naked_until"] == T0 + pd.Timedelta(seconds=NEXT_DAY)


def test_liquidation_moves_to_a_later_bar():
    live = live_for(studies=["liquidations_by_bar", "liquidations_by_level"])
    live.update(HAND.iloc[:2], liq_frame([(30, -1, 20000, 2.0), (70, 1, 20010, 1.0)]))
    # both are at or after bar A's open and no later bar exists yet: A holds them
    assert live.result("liquidations_by_bar")[["long_size", "short_size", "count"]
                                              ].values.tolist() == [[2, 1, 2]]
    live.update(HAND.iloc[2:8])  # bar B opens at 15:01: the one at 15:01:10 is B's now
    by_bar = live.result("liquidations_by_bar")
    assert by_bar[["long_size", "short_size", "count"]].values.tolist() == [[2, 0, 1], [0, 1, 1]]
    assert live.result("liquidations_by_level")["tick"].tolist() == [20000, 20010]
    live.update(liquidations=liq_frame([(75, -1, 20012, 4.0)]))  # a late one, into B
    assert live.changes("liquidations_by_bar").index.tolist() == [1]
    assert live.result("liquidations_by_level")["tick"].tolist() == [20000, 20010, 20012]


# --------------------------------------------------------------------------------------------
# property: every batch split agrees with the batch functions


@st.composite
def streams(draw):
    """Trades (ticks on the grid, dyadic sizes so sums are exact, same-timestamp prints, the CME
    day change at 23:00 UTC inside), liquidations, and where both streams are cut into batches."""
    n = draw(st.integers(1, 90))
    steps = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0, 0, 1, 7, 50, 700, 4000]), min_size=n, max_size=n))
    sizes = draw(st.lists(st.sampled_from([1.0, 2.0, 0.5, 7.0, 13.0, 0.125]), min_size=n,
                          max_size=n))
    sides = draw(st.lists(st.sampled_from([1, -1, 0]), min_size=n, max_size=n))
    tr = pd.DataFrame({"ts": START + pd.to_timedelta(np.cumsum(gaps) * 100, unit="ms"),
                       "price": (20000 + np.cumsum(steps)) * ES.tick_size, "size": sizes,
                       "side": np.asarray(sides, "int8"), "trade_id": np.arange(n)})
    span = (tr["ts"].iloc[-1] - START).total_seconds()
    k = draw(st.integers(0, 12))
    secs = sorted(draw(st.lists(st.floats(-30, span + 90), min_size=k, max_size=k)))
    liqs = liq_frame([(s, draw(st.sampled_from([-1, 1])), 20000 + draw(st.integers(-8, 8)),
                       draw(st.sampled_from([0.5, 1.0, 3.0]))) for s in secs], START)
    cuts = sorted(set(draw(st.lists(st.integers(1, n), max_size=6))) | {n})
    liq_cuts = [draw(st.integers(0, k)) for _ in cuts]
    return tr, liqs, cuts, sorted(liq_cuts[:-1]) + [k]


ROWS = st.sampled_from([1, 2, 3])  # ticks per row of the cell studies
PARAMS = st.fixed_dictionaries({
    "footprint_metrics": st.fixed_dictionaries({"rows": ROWS}),
    "cvd": st.sampled_from([{}, {"session": ES.session}, {"session": ES.session,
                                                         "reset": "none"}]),
    "cvd_candles": st.sampled_from([{}, {"session": ES.session}]),
    "imbalances": st.fixed_dictionaries({"ratio": st.sampled_from([1.5, 3.0]),
                                         "min_volume": st.sampled_from([0.0, 3.0]),
                                         "rows": st.sampled_from([1, 2]),
                                         "compare_edges": st.booleans()}),
    "stacked_imbalances": st.fixed_dictionaries({"min_rows": st.sampled_from([2, 3]),
                                                 "ratio": st.sampled_from([1.5, 3.0]),
                                                 "rows": st.sampled_from([1, 2])}),
    "unfinished_auctions": st.fixed_dictionaries({"rows": st.sampled_from([1, 3]),
                                                  "min_volume": st.sampled_from([0.0, 1.0])}),
    "big_trades": st.fixed_dictionaries({"min_size": st.sampled_from([2.0, 7.0, 14.0]),
                                         "aggregate_same_ts": st.booleans()}),
    "zero_prints": st.fixed_dictionaries({"tick_size": st.sampled_from([None, ES.tick_size]),
                                          "rows": ROWS}),
    "naked_pocs": st.fixed_dictionaries({"session": st.sampled_from([None, ES.session]),
                                         "rows": ROWS}),
    "liquidations_by_level": st.fixed_dictionaries({"rows": ROWS}),
    "sweeps": st.fixed_dictionaries({"min_levels": st.sampled_from([2, 3]),
                                     "max_gap": st.sampled_from(["250ms", "5s"]),
                                     "min_size": st.sampled_from([0, 5])}),
    "absorption": st.fixed_dictionaries({"min_volume": st.sampled_from([0.0, 4.0]),
                                         "max_progress_ticks": st.sampled_from([0, 1]),
                                         "side": st.sampled_from([None, "bid"]),
                                         "rows": ROWS}),
})
SPECS = ["1m", "5m", "1h:HA", "T5", "V20", "R4"]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=streams(), params=PARAMS, spec=st.sampled_from(SPECS))
def test_live_equals_batch_after_every_batch(stream, params, spec):
    tr, liqs, cuts, liq_cuts = stream
    if not BarSpec.parse(spec).is_time:
        # the cell-based batch functions match cells to bars by ts: bars must not share one
        bars = build(tr, spec, ES)[0]
        assume(bars["ts"].is_unique)
    live = live_for(spec, **params)
    a = la = 0
    shown = {}
    for b, lb in zip(cuts, liq_cuts):
        live.update(tr.iloc[a:b], liqs.iloc[la:lb])
        check_against_batch(live, tr.iloc[:b], liqs.iloc[:lb], spec)
        for name in live.studies:
            check_changes(live, name)
        follow_changes(live, shown)
        a, la = b, lb


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams())
def test_closed_bars_are_not_recomputed(stream):
    tr, _, cuts, _ = stream
    live = live_for(studies=["footprint_metrics", "imbalances"])
    a, before = 0, None
    for b in cuts:
        closed = live.n_closed
        up = live.update(tr.iloc[a:b])
        assert up.first_bar == closed  # only the forming bar and new ones were touched
        now = live.result("imbalances")
        if before is not None:
            kept = before[before["ts"] < live.result("bars")["ts"].iloc[closed]] \
                if closed < live.n_bars else before
            pd.testing.assert_frame_equal(now.iloc[:len(kept)], kept)
        before, a = now, b


def same(got, want, name):
    """Equal (dtypes too, except of empty frames: labels are then object or str)."""
    if isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want, obj=name)
    else:
        pd.testing.assert_frame_equal(got, want, check_dtype=len(want) > 0, obj=name)


PER_BAR = ("bars", "footprint", "footprint_metrics", "cvd", "cvd_candles", "imbalances",
           "stacked_imbalances", "unfinished_auctions", "zero_prints", "absorption")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=streams(), params=PARAMS, spec=st.sampled_from(["1m", "T5", "V20"]),
       keep=st.sampled_from([1, 2]))
def test_keep_bounds_what_is_held_and_changes_stay_the_same(stream, params, spec, keep):
    """With ``keep=N`` a follower holds the rows of at most N closed bars before the last
    update plus those it touched; its changes are those of a follower keeping everything, and
    what it holds is the tail of that one's result."""
    tr, liqs, cuts, liq_cuts = stream
    full, kept = live_for(spec, **params), live_for(spec, keep=keep, **params)
    a = la = 0
    for b, lb in zip(cuts, liq_cuts):
        full.update(tr.iloc[a:b], liqs.iloc[la:lb])
        up = kept.update(tr.iloc[a:b], liqs.iloc[la:lb])
        for name in ("bars", "footprint") + kept.studies:
            want, got = full.change_set[name], kept.change_set[name]
            assert got.length == want.length, name
            same(got.rows, want.rows, name)
            held, every = kept.result(name), full.result(name)
            same(held, every.loc[held.index], name)
            if name in PER_BAR:  # a tail of the whole result
                assert held.index.tolist() == list(range(len(every) - len(held), len(every)))
        bars = kept.result("bars")
        first_held = max(min(up.first_bar, up.closed) - keep, 0)  # (closed before the update)
        assert len(bars) <= kept.n_bars - first_held, "closed bars held beyond the bound"
        if len(bars):  # cells and per-bar rows only of the bars held
            since = bars["ts"].iloc[0]
            cells = kept.result("footprint")
            assert len(cells) == (full.result("footprint").index >= cells.index.min()).sum() \
                if len(cells) else True
            for name in set(PER_BAR[2:]) & set(kept.studies):
                held = kept.result(name)
                if isinstance(held, pd.DataFrame) and len(held):
                    assert (held["ts"] >= since).all(), name
        a, la = b, lb


def test_keep_holds_few_bars_of_a_long_stream():
    """Hundreds of bars through a follower keeping 2: what it holds does not grow with them."""
    rng = np.random.default_rng(5)
    n = 6000
    tr = pd.DataFrame({"ts": START + pd.to_timedelta(np.arange(n) * 3, unit="s"),
                       "price": (20000 + np.cumsum(rng.integers(-2, 3, n))) * ES.tick_size,
                       "size": rng.integers(1, 5, n).astype(float),
                       "side": rng.choice(np.array([1, -1], "int8"), n),
                       "trade_id": np.arange(n)})
    live = live_for("1m", keep=2, studies=["cvd", "footprint_metrics", "imbalances",
                                           "naked_pocs"])
    most = {}
    for a in range(0, n, 50):
        live.update(tr.iloc[a:a + 50])
        for name in ("bars", "footprint", "imbalances", "cvd", "footprint_metrics"):
            most[name] = max(most.get(name, 0), len(live.result(name)))
    assert live.n_bars == 300
    # 2 kept, up to 3 closed by an update of 150 s, the forming one
    assert most["bars"] <= 6 and most["cvd"] <= 6 and most["footprint_metrics"] <= 6
    cells_per_bar = len(build(tr, "1m", ES)[1]) / 300
    assert most["footprint"] <= 6 * cells_per_bar * 2 and most["imbalances"] <= most["footprint"]
    assert len(live.result("naked_pocs")) == 300  # a POC per bar (small), kept whole
    assert live.result("cvd").iloc[-1] == (tr["size"] * tr["side"]).sum()


# --------------------------------------------------------------------------------------------
# parameters and bad input


def test_defaults_are_the_batch_functions_defaults():
    """The live studies' parameters are read from the batch functions' signatures: a tick size
    without default is the instrument's, another parameter without one is required."""
    assert study_defaults("sweeps") == {"tick_size": INSTRUMENT, "min_levels": 3,
                                        "max_gap": "250ms", "min_size": 0}
    assert study_defaults("big_trades") == {"min_size": REQUIRED, "aggregate_same_ts": True}
    assert study_defaults("zero_prints") == {"tick_size": None, "rows": 1}
    assert set(STUDIES) == set(LiveOrderFlow(ES, big_trades={"min_size": 1},
                                             absorption={"min_volume": 1}).studies)


def test_default_studies():
    live = live_for()
    assert "big_trades" not in live.studies and "absorption" not in live.studies
    assert live_for(big_trades={"min_size": 5}).studies.count("big_trades") == 1
    assert live_for(studies=["cvd"]).studies == ("cvd",)


def test_trades_out_of_order_are_refused():
    live = live_for()
    live.update(HAND.iloc[[1, 0]])  # the aggregator sorts a batch
    pd.testing.assert_frame_equal(live.result("bars"), build(HAND.iloc[:2], "1m", ES)[0])
    live.update(HAND.iloc[3:5])
    with pytest.raises(ModelError, match="older than the last trade already aggregated"):
        live.update(HAND.iloc[2:3])
    up = live.aggregator.update(HAND.iloc[5:6])
    with pytest.raises(ValueError, match="before the last trade already fed"):  # a hand-made one
        live.flow.apply(type(up)(up.closed, up.current, up.closed_footprint,
                                 up.current_footprint, HAND.iloc[2:3]))
    with pytest.raises(ValueError, match="liquidations must arrive in time order"):
        live.update(liquidations=liq_frame([(9, 1, 20000, 1.0), (3, 1, 20000, 1.0)]))
    with pytest.raises(ValueError, match="side must be"):
        live.update(HAND.iloc[6:7].assign(side=2))


@pytest.mark.parametrize("kwargs, message", [
    ({"imbalances": {"ratio": 1.0}}, "ratio must be a number > 1"),
    ({"stacked_imbalances": {"min_rows": 0}}, "min_rows must be a whole number >= 1"),
    ({"unfinished_auctions": {"rows": 1.5}}, "rows must be a whole number >= 1"),
    ({"imbalances": {"ratoi": 3}}, "unknown parameter.*ratoi"),
    ({"imbalances": 3.0}, "parameters must be a dict"),
    ({"cvd": {"reset": "session"}}, "needs a session"),
    ({"cvd": {"reset": "daily"}}, "reset must be one of"),
    ({"naked_pocs": {"session": "UTC 00:00-24:00"}}, "Session"),
    ({"big_trades": {"min_size": 0}}, "min_size must be a finite number > 0"),
    ({"studies": ["big_trades"]}, "big_trades: needs min_size"),
    ({"studies": ["cvd"], "imbalances": {}}, "not among the studies chosen"),
    ({"studies": ["vwap"]}, "unknown studies vwap"),
    ({"vwap": {}}, "unknown study"),
    ({"sweeps": {"min_levels": 1}}, "min_levels must be a whole number >= 2"),
    ({"sweeps": {"max_gap": 5}}, "max_gap must be a duration"),
    ({"absorption": {"min_volume": 1, "side": "buy"}}, "side must be None, 'bid' or 'ask'"),
    ({"liquidations_by_level": {"tick_size": -1}}, "tick size must be positive"),
    ({"zero_prints": {"tick_size": 0}}, "tick_size must be a finite number > 0"),
    ({"footprint_metrics": {"rows": 0}}, "footprint_metrics: rows must be a whole number >= 1"),
    ({"zero_prints": {"rows": 1.5}}, "zero_prints: rows must be a whole number >= 1"),
    ({"naked_pocs": {"rows": -2}}, "naked_pocs: rows must be a whole number >= 1"),
    ({"absorption": {"min_volume": 1, "rows": 0}}, "absorption: rows must be a whole number"),
    ({"liquidations_by_level": {"rows": True}}, "liquidations_by_level: rows must be a whole"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        live_for(**kwargs)


def test_bad_input_and_names():
    with pytest.raises(ValueError, match="expected the stream's tradeflow.model.Instrument"):
        LiveOrderFlow(BarAggregator(ES, "1m"))
    with pytest.raises(ValueError, match="expected a tradeflow.model.BarUpdate"):
        LiveOrderFlow(ES).apply(HAND)
    live = live_for(studies=["cvd"])
    with pytest.raises(ValueError, match="no study 'imbalances'"):
        live.result("imbalances")
    live.update(liquidations=liq_frame([(1, 1, 20000, 1.0)]))  # no liquidation study: ignored
    assert live.result("cvd").empty
    # an update of the stream that was missed, or given twice, is noticed
    live.update(HAND.iloc[:2])
    live.aggregator.update(HAND.iloc[2:3])
    with pytest.raises(ValueError, match="an update of the stream was missed or given twice"):
        live.update(HAND.iloc[3:4])
    flow, agg = LiveOrderFlow(ES, studies=["cvd"]), BarAggregator(ES, "1m")
    up = agg.update(HAND.iloc[:3])
    flow.apply(up)
    with pytest.raises(ValueError, match="trades must arrive in time order"):
        flow.apply(up)
    assert flow.result("cvd").tolist() == [4.0]  # the refused update changed nothing


def test_changes_are_read_before_the_next_update():
    flow, agg = LiveOrderFlow(ES, studies=["cvd"]), BarAggregator(ES, "1m")
    first = flow.apply(agg.update(HAND.iloc[:3]))
    kept = first["cvd"]  # read in time: kept
    flow.apply(agg.update(HAND.iloc[3:5]))
    assert kept.rows.tolist() == [4.0] and kept.length == 1
    with pytest.raises(RuntimeError, match="read after the follower's next update"):
        first["bars"]


def test_empty_updates_and_frames():
    live = live_for(big_trades={"min_size": 5}, absorption={"min_volume": 1})
    up = live.update(HAND.iloc[:0])
    assert (up.first_bar, up.bars) == (0, 0)
    for name in live.studies + ("bars", "footprint"):
        res = live.result(name)
        assert len(res) == 0, name
        assert len(live.changes(name)) == 0, name
