"""Chart-type transforms (Kagi, Point & Figure, Line Break, Heikin-Ashi): hand-worked examples,
invariants, and incremental (with the forming bar previewed) == batch over any split."""
import importlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeflow.bar_transforms import (HeikinAshi, Kagi, LineBreak, PointAndFigure, heikin_ashi,
                                      kagi, line_break, point_and_figure)
from tradeflow.bars import BarAggregator, build_bars
from tradeflow.model import Instrument

bars_module = importlib.import_module("tradeflow.bars")  # tradeflow.bars is tf.bars, a function

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
T0 = pd.Timestamp("2026-01-05 15:00", tz="UTC")


def closes(ticks, inst=ES) -> pd.Series:
    """Closes (given in ticks) one a minute from T0."""
    return pd.Series(np.asarray(ticks, float) * inst.tick_size,
                     index=T0 + pd.to_timedelta(np.arange(len(ticks)), unit="min"))


def bar_frame(close, high=None, low=None, inst=ES) -> pd.DataFrame:
    """Bars (prices given in ticks) one a minute from T0; open = close."""
    close = np.asarray(close, float)
    high = close if high is None else np.asarray(high, float)
    low = close if low is None else np.asarray(low, float)
    n = len(close)
    return pd.DataFrame({"ts": T0 + pd.to_timedelta(np.arange(n), unit="min"),
                         "open": close * inst.tick_size, "high": high * inst.tick_size,
                         "low": low * inst.tick_size, "close": close * inst.tick_size,
                         "volume": np.ones(n)})


def minutes(times) -> list[int]:
    return ((pd.DatetimeIndex(times) - T0) // pd.Timedelta("1min")).tolist()


def ticks(values, inst=ES) -> list[int]:
    return np.rint(np.asarray(values, float) / inst.tick_size).astype(int).tolist()


# --------------------------------------------------------------------------------------------
# Hand-worked examples


def test_kagi_by_hand():
    # reversal 3 ticks; closes (ticks) at minutes 0..10:
    #   10 start; 11 (+1) nothing; 13 (+3 from 10): line 0 up 10->13, yang (a first rise);
    #   12 (-1) nothing; 10 (-3 from 13): line 1 down 13->10, still yang;
    #   9 passes below 10 (line 0's start, the waist): line 1 splits, 10->9 yin; 8 extends it;
    #   11 (+3 from 8): line 2 up 8->11, yin; 12 extends; 14 passes above 13 (line 1's start, the
    #   shoulder): the yin row ends at 13, a yang row 13->14 begins; 13 (-1) nothing.
    k = kagi(closes([10, 11, 13, 12, 10, 9, 8, 11, 12, 14, 13]), ES, reversal=3)
    assert list(k.columns) == ["ts", "end_ts", "line", "direction", "open", "close", "yang"]
    assert k["line"].tolist() == [0, 1, 1, 2, 2]
    assert k["direction"].tolist() == [1, -1, -1, 1, 1]
    assert ticks(k["open"]) == [10, 13, 10, 8, 13]
    assert ticks(k["close"]) == [13, 10, 8, 13, 14]
    assert k["yang"].tolist() == [True, True, False, False, True]
    assert minutes(k["ts"]) == [2, 4, 5, 7, 9]
    assert minutes(k["end_ts"]) == [2, 5, 6, 9, 9]
    assert str(k["ts"].dtype) == "datetime64[ns, UTC]"


def test_kagi_reversal_in_percent():
    # tick 1.0; 2.5 % of 100 is 2.5, rounded up to 3 ticks: 102 (minute 1) is not enough, 103
    # (minute 2) draws the first line; 2.5 % of 103 is 2.575 -> 3 ticks: 101 is not enough, 102
    # nothing, 100 (minute 5) turns the line
    one = Instrument("X", 1.0)
    k = kagi(closes([100, 102, 103, 101, 102, 100], one), one, reversal=2.5, unit="percent")
    assert k["open"].tolist() == [100, 103] and k["close"].tolist() == [103, 100]
    assert minutes(k["ts"]) == [2, 5]
    live = Kagi(one, 2.5, "percent")
    assert live.amount(20000) == 500
    # exact, from the decimal written: in floats 10000 * 0.07 / 100 is 7.000000000000001
    assert Kagi(one, 0.07, "percent").amount(10000) == 7
    assert live.amount(20001) == 501 and live.amount(-20001) == 501  # 500.025 rounded up


def test_point_and_figure_by_hand():
    # box 2 ticks (levels at even ticks, level k = 2k), reversal 2 boxes, closes (ticks):
    #   10 start (rises count from level ceil(10/2) = 5, falls from floor = 5);
    #   11: floor(11/2) = 5, not a level above 5; 12: level 6: X column of levels 5..6 (10..12);
    #   13 nothing; 14: level 7, the X column runs to 14; 15, 13, 12, 11: none reaches level
    #   7 - 2 = 5 (ceil(11/2) = 6); 9: ceil(9/2) = 5 <= 5: O column from 7-1 = 6 down to 5
    #   (12..10); 10, 12, 13: none reaches level 5 + 2 = 7; 14: level 7: X column 6..7 (12..14).
    pf = point_and_figure(closes([10, 11, 12, 13, 14, 15, 13, 12, 11, 9, 10, 12, 13, 14]), ES,
                          box=2, reversal=2)
    assert list(pf.columns) == ["ts", "end_ts", "direction", "low", "high", "boxes"]
    assert pf["direction"].tolist() == [1, -1, 1]
    assert ticks(pf["low"]) == [10, 10, 12]
    assert ticks(pf["high"]) == [14, 12, 14]
    assert pf["boxes"].tolist() == [3, 2, 2]
    assert minutes(pf["ts"]) == [2, 9, 13]
    assert minutes(pf["end_ts"]) == [4, 9, 13]


def test_point_and_figure_high_low_method():
    # box 2, reversal 2; bars (close, high, low in ticks):
    #   0: close 10, the start;
    #   1: high 15 -> level 7 >= 5 + 1: X column 5..7 (10..14); its low is not looked at;
    #   2: high 13 does not extend the X column (level 6); low 9: ceil(9/2) = 5 <= 7 - 2:
    #      O column 6..5 (12..10);
    #   3: low 8: level 4 extends the O column (8..12); its high 16 is not looked at;
    #   4: low 12 does not extend it; high 14: level 7 >= 4 + 2: X column 5..7 (10..14).
    # Closes alone (10, 11, 12, 9, 13) make one X column 10..12 only.
    frame = bar_frame([10, 11, 12, 9, 13], high=[10, 15, 13, 16, 14], low=[10, 7, 9, 8, 12])
    pf = point_and_figure(frame, ES, box=2, reversal=2, method="high_low")
    assert pf["direction"].tolist() == [1, -1, 1]
    assert ticks(pf["low"]) == [10, 8, 10]
    assert ticks(pf["high"]) == [14, 12, 14]
    by_close = point_and_figure(frame, ES, box=2, reversal=2)
    assert by_close["direction"].tolist() == [1]
    assert (ticks(by_close["low"]), ticks(by_close["high"])) == ([10], [12])


def test_line_break_by_hand():
    # three-line break; closes (ticks) at minutes 0..12:
    #   10 start; 10 nothing; 12: line 0 up 10->12; 13: up 12->13; 11: a reversal needs a close
    #   below the lowest of the last 3 lines (10): nothing; 14, 15, 16: up lines;
    #   13: the last 3 lines (13-14, 14-15, 15-16) have low 13: not below, nothing;
    #   12: below 13: a falling line from the last line's open, 15->12; 11, 9: falling lines;
    #   17: above the highest of the last 3 (15): a rising line from the last open, 11->17.
    prices = closes([10, 10, 12, 13, 11, 14, 15, 16, 13, 12, 11, 9, 17])
    lb = line_break(prices, ES)
    assert list(lb.columns) == ["ts", "direction", "open", "high", "low", "close"]
    assert lb["direction"].tolist() == [1, 1, 1, 1, 1, -1, -1, -1, 1]
    assert ticks(lb["open"]) == [10, 12, 13, 14, 15, 15, 12, 11, 11]
    assert ticks(lb["close"]) == [12, 13, 14, 15, 16, 12, 11, 9, 17]
    assert (lb["high"] == lb[["open", "close"]].max(axis=1)).all()
    assert (lb["low"] == lb[["open", "close"]].min(axis=1)).all()
    assert minutes(lb["ts"]) == [2, 3, 5, 6, 7, 9, 10, 11, 12]
    # two-line break: 13 is below the last two lines' low (14) and turns at minute 8, from 15
    two = line_break(prices, ES, lines=2)
    assert minutes(two["ts"])[5] == 8 and ticks(two["open"])[5] == 15


def test_heikin_ashi_by_hand():
    bars = pd.DataFrame({"open": [10.0, 12.0], "high": [14.0, 15.0], "low": [9.0, 11.0],
                         "close": [12.0, 14.0]})
    ha = heikin_ashi(bars)
    assert ha["close"].tolist() == [11.25, 13.0]
    assert ha["open"].tolist() == [11.0, (11.0 + 11.25) / 2]
    # incrementally: the first bar closed, the second forming, then closed
    live = HeikinAshi()
    first = live.update(bars.iloc[:1], forming=bars.iloc[1:])
    assert first.length == 2 and first.rows.index.tolist() == [0, 1]
    second = live.update(bars.iloc[1:])
    assert second.length == 2 and second.rows.index.tolist() == [1]  # bar 0 is not re-sent
    assert second.rows["open"].tolist() == [(11.0 + 11.25) / 2]


def test_every_transform_is_found_in_bars():
    for name in ("kagi", "point_and_figure", "line_break", "heikin_ashi", "Kagi",
                 "PointAndFigure", "LineBreak", "HeikinAshi"):
        assert name in bars_module.__all__ and hasattr(bars_module, name)


def test_trades_are_prices_too():
    t = closes([10, 11, 13, 12, 10, 9])
    trades = pd.DataFrame({"ts": t.index, "price": t.to_numpy(), "size": 1.0})
    pd.testing.assert_frame_equal(kagi(trades, ES, 3), kagi(t, ES, 3))
    # off-grid prices (Heikin-Ashi closes, say) are put on the nearest tick
    off = kagi(closes([10, 11, 13.4, 12, 10, 9]), ES, 3)
    assert ticks(off["close"])[0] == 13 and (off["close"] / 0.25 % 1 == 0).all()


# --------------------------------------------------------------------------------------------
# Bad input and settings


def test_bad_rows_are_named_and_nothing_is_used():
    k = Kagi(ES, 3)
    k.update(closes([10, 13]))
    bad = closes([14, 15, 16])
    bad.iloc[1] = np.nan
    with pytest.raises(ValueError, match=r"^kagi: row 1 has close nan, not a finite price; "
                                         r"nothing of this update was used$") as err:
        k.update(bad)
    assert "\n" not in str(err.value)
    assert ticks(k.result()["close"]) == [13]  # 14 (row 0) was not used either
    with pytest.raises(ValueError, match=r"expected bars \(columns ts, close\) or trades "
                                         r"\(ts, price\), got columns when, px"):
        k.update(pd.DataFrame({"when": [T0], "px": [1.0]}))
    with pytest.raises(ValueError, match="high_low method needs high and low"):
        point_and_figure(closes([1, 2]).rename("close").reset_index().rename(
            columns={"index": "ts"}), ES, method="high_low")
    with pytest.raises(ValueError, match="row 0 has high 1.0 below low 2.0"):
        PointAndFigure(ES, method="high_low").update(
            pd.DataFrame({"ts": [T0], "close": [1.5], "high": [1.0], "low": [2.0]}))
    with pytest.raises(ValueError, match="needs the bar times as its index"):
        line_break(pd.Series([1.0, 2.0]), ES)


@pytest.mark.parametrize("make, message", [
    (lambda: Kagi(ES, 0), "kagi: the reversal in ticks must be a whole number of at least 1"),
    (lambda: Kagi(ES, 2.5), "kagi: the reversal in ticks must be a whole number"),
    (lambda: Kagi(ES, 100, "percent"), "kagi: the reversal in percent must be above 0"),
    (lambda: Kagi(ES, 3, "points"), "kagi: unit must be 'ticks' or 'percent'"),
    (lambda: PointAndFigure(ES, box=0), "point_and_figure: the box size in ticks must be"),
    (lambda: PointAndFigure(ES, reversal=True), "point_and_figure: the reversal in boxes"),
    (lambda: PointAndFigure(ES, method="hl"), "point_and_figure: method must be 'close' or"),
    (lambda: LineBreak(ES, lines=0), "line_break: the number of lines must be"),
    (lambda: LineBreak(0.25), "line_break: expected a tradeflow.model.Instrument"),
])
def test_bad_settings_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --------------------------------------------------------------------------------------------
# Invariants


@st.composite
def walks(draw, max_size=200):
    """Bars of a random walk in ticks, with highs and lows around the closes."""
    n = draw(st.integers(0, max_size))
    steps = draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n))
    up = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    down = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    close = 20000 + np.cumsum(steps)
    return bar_frame(close, close + np.asarray(up, int), close - np.asarray(down, int))


def kagi_params(draw):
    if draw(st.booleans()):
        return {"reversal": draw(st.integers(1, 12)), "unit": "ticks"}
    return {"reversal": draw(st.sampled_from([0.01, 0.02, 0.05, 0.1])), "unit": "percent"}


@settings(max_examples=60, deadline=None)
@given(frame=walks(), data=st.data())
def test_kagi_invariants(frame, data):
    params = kagi_params(data.draw)
    k = kagi(frame, ES, **params)
    amount = Kagi(ES, **params).amount
    price = ticks(frame["close"])
    at = {t: i for i, t in enumerate(frame["ts"])}
    o, c, line, d, yang = ticks(k["open"]), ticks(k["close"]), k["line"].tolist(), \
        k["direction"].tolist(), k["yang"].tolist()
    for i in range(1, len(k)):
        assert o[i] == c[i - 1]  # one unbroken line
        if line[i] == line[i - 1]:  # a thickness change, where the line passes the last turn
            assert d[i] == d[i - 1] and yang[i] != yang[i - 1] and yang[i] == (d[i] > 0)
            assert (i == 1 or line[i - 2] != line[i]) and line[i] >= 1
            before = k[k["line"] == line[i] - 1]
            assert o[i] == ticks(before["open"])[0]
        else:
            assert line[i] == line[i - 1] + 1 and d[i] == -d[i - 1] and yang[i] == yang[i - 1]
    lines = k.groupby("line").agg(ts=("ts", "first"), open=("open", "first"),
                                  close=("close", "last"), d=("direction", "first"))
    starts = [at[t] for t in lines["ts"]] + [len(frame)]
    lo, lc = ticks(lines["open"]), ticks(lines["close"])
    for j in range(len(lines)):
        dj = lines["d"].iloc[j]
        # a line turns only by at least the reversal amount from the last line's end
        assert dj * (lc[j] - lo[j]) >= amount(lo[j])
        assert dj * (price[starts[j]] - lo[j]) >= amount(lo[j])
        # and its end is the extreme of the prices while it was the last line
        window = price[starts[j]:starts[j + 1]]
        assert lc[j] == (max(window) if dj > 0 else min(window))
    if len(k) and len(lines) > 1:
        assert lines["d"].iloc[0] == -lines["d"].iloc[1]


@settings(max_examples=60, deadline=None)
@given(frame=walks(), box=st.integers(1, 6), reversal=st.integers(1, 4),
       method=st.sampled_from(["close", "high_low"]))
def test_point_and_figure_invariants(frame, box, reversal, method):
    pf = point_and_figure(frame, ES, box=box, reversal=reversal, method=method)
    d, lo, hi, boxes = (pf["direction"].tolist(), ticks(pf["low"]), ticks(pf["high"]),
                        pf["boxes"].tolist())
    for i in range(len(pf)):
        assert lo[i] % box == 0 and hi[i] % box == 0  # on the box grid (and the tick grid)
        assert boxes[i] == (hi[i] - lo[i]) // box + 1
        if i == 0:
            assert boxes[i] >= 2
            continue
        assert d[i] == -d[i - 1]  # X and O columns alternate
        assert boxes[i] >= reversal
        if d[i] > 0:
            assert lo[i] == lo[i - 1] + box
        else:
            assert hi[i] == hi[i - 1] - box
    # every level a column marks was traded through: within the range of the prices since the
    # column before it began
    high = ticks(frame["high"] if method == "high_low" else frame["close"])
    low = ticks(frame["low"] if method == "high_low" else frame["close"])
    at = {t: i for i, t in enumerate(frame["ts"])}
    for i in range(len(pf)):
        since = at[pf["ts"].iloc[i - 1]] if i else 0
        upto = at[pf["end_ts"].iloc[i]] + 1
        assert min(low[since:upto]) <= lo[i] and hi[i] <= max(high[since:upto])


@settings(max_examples=60, deadline=None)
@given(frame=walks(), lines=st.integers(1, 5))
def test_line_break_invariants(frame, lines):
    lb = line_break(frame, ES, lines=lines)
    d, o, c, h, lo = (lb["direction"].tolist(), ticks(lb["open"]), ticks(lb["close"]),
                      ticks(lb["high"]), ticks(lb["low"]))
    for i in range(len(lb)):
        assert d[i] * (c[i] - o[i]) > 0 and h[i] == max(o[i], c[i]) and lo[i] == min(o[i], c[i])
        if i == 0:
            continue
        if d[i] == d[i - 1]:  # runs on from the last close, beyond it
            assert o[i] == c[i - 1] and d[i] * (c[i] - c[i - 1]) > 0
        else:  # turns from the last open, beyond the extreme of the last `lines` lines
            assert o[i] == o[i - 1]
            recent = slice(max(0, i - lines), i)
            assert (c[i] > max(h[recent])) if d[i] > 0 else (c[i] < min(lo[recent]))
    # a close that draws nothing neither runs the last line on nor gets past the last `lines`
    close = ticks(frame["close"])
    drawn = set(lb["ts"])
    for j, t in enumerate(frame["ts"]):
        before = lb[lb["ts"] < t]
        if t in drawn or not len(before):
            continue
        highs, lows = ticks(before["high"])[-lines:], ticks(before["low"])[-lines:]
        if before["direction"].iloc[-1] > 0:
            assert min(lows) <= close[j] <= highs[-1]
        else:
            assert lows[-1] <= close[j] <= max(highs)


# --------------------------------------------------------------------------------------------
# Incremental == batch, over any split, with the forming bar previewed between updates

MAKERS = {
    "kagi": (lambda p: Kagi(ES, **p), lambda f, p: kagi(f, ES, **p), kagi_params),
    "point_and_figure": (
        lambda p: PointAndFigure(ES, **p), lambda f, p: point_and_figure(f, ES, **p),
        lambda draw: {"box": draw(st.integers(1, 5)), "reversal": draw(st.integers(1, 4)),
                      "method": draw(st.sampled_from(["close", "high_low"]))}),
    "line_break": (lambda p: LineBreak(ES, **p), lambda f, p: line_break(f, ES, **p),
                   lambda draw: {"lines": draw(st.integers(1, 4))}),
}
OPEN_ROWS = {"kagi": 1, "point_and_figure": 1, "line_break": 0}


@pytest.mark.parametrize("name", list(MAKERS))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=walks(), data=st.data())
def test_incremental_equals_batch(name, frame, data):
    make, batch, params_of = MAKERS[name]
    params = params_of(data.draw)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(frame)), max_size=10))))
    live = make(params)
    shown = live.result()  # what a chart following the changes holds
    bounds = [0] + cuts + [len(frame)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        # the bar forming after this batch: any bar near the last one (or none)
        shift = data.draw(st.none() | st.integers(-9, 9))
        forming = None
        if shift is not None and len(frame):
            forming = frame.iloc[[max(0, b - 1)]].copy()
            forming[["open", "high", "low", "close"]] += shift * ES.tick_size
            forming["ts"] += pd.Timedelta("30s")
        final_before = max(0, len(batch(frame.iloc[:a], params)) - OPEN_ROWS[name])
        changes = live.update(frame.iloc[a:b], forming=forming)
        # closed rows are never re-sent: only the last one may grow
        assert (changes.rows.index >= final_before).all()
        shown = changes.applied(shown)
        expect = batch(pd.concat([frame.iloc[:b], forming]) if forming is not None
                       else frame.iloc[:b], params)
        pd.testing.assert_frame_equal(shown.reset_index(drop=True), expect)
        pd.testing.assert_frame_equal(live.result(), expect)
    pd.testing.assert_frame_equal(live.update(None).applied(shown).reset_index(drop=True),
                                  batch(frame, params))


@pytest.mark.parametrize("name", list(MAKERS))
@settings(max_examples=30, deadline=None)
@given(steps=st.lists(st.sampled_from([0, 0, 0, 1, -1, 2, -3]), max_size=80),
       spread=st.lists(st.integers(0, 6), min_size=80, max_size=80), data=st.data())
def test_row_by_row_equals_batch(name, steps, spread, data):
    """Runs of equal closes (common in trades; a batch skips them as no-ops) change nothing:
    one row per update, where nothing is skipped, gives the batch result; for the high-low
    method equal closes with other highs and lows do count."""
    make, batch, params_of = MAKERS[name]
    params = params_of(data.draw)
    close = 20000 + np.cumsum(steps, dtype=int)
    frame = bar_frame(close, close + np.asarray(spread[:len(close)]),
                      close - np.asarray(spread[::-1][:len(close)]))
    live = make(params)
    for i in range(len(frame)):
        live.update(frame.iloc[i:i + 1])
    pd.testing.assert_frame_equal(live.result(), batch(frame, params))


@settings(max_examples=40, deadline=None)
@given(frame=walks(60), data=st.data())
def test_heikin_ashi_incremental_equals_batch(frame, data):
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(frame)), max_size=6))))
    live, shown = HeikinAshi(), None
    bounds = [0] + cuts + [len(frame)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        forming = frame.iloc[b:b + 1] if data.draw(st.booleans()) else None
        changes = live.update(frame.iloc[a:b], forming=forming)
        assert (changes.rows.index >= a).all()  # closed HA bars are never re-sent
        shown = changes.rows if shown is None else changes.applied(shown)
        expect = heikin_ashi(frame.iloc[:b + (1 if forming is not None else 0)])
        pd.testing.assert_frame_equal(shown.reset_index(drop=True),
                                      expect.reset_index(drop=True))


def test_follows_a_bar_update_stream():
    """The transforms follow the live aggregator's updates (closed bars committed, the forming
    bar previewed) and end where the batch transform of the same bars does."""
    rng = np.random.default_rng(7)
    n = 600
    trades = pd.DataFrame({
        "ts": T0 + pd.to_timedelta(np.arange(n) * 7, unit="s"),
        "price": (20000 + np.cumsum(rng.integers(-3, 4, n))) * ES.tick_size,
        "size": 1.0, "side": np.int8(1), "trade_id": np.arange(n)})
    agg = BarAggregator(ES, "1m")
    followers = [Kagi(ES, 4), PointAndFigure(ES, 2, 3, "high_low"), LineBreak(ES, 3),
                 HeikinAshi()]
    shown = [None] * len(followers)
    for part in np.array_split(np.arange(n), 37):
        update = agg.update(trades.iloc[part])
        for i, f in enumerate(followers):
            changes = f.apply(update)[f.name]
            shown[i] = changes.rows if shown[i] is None else changes.applied(shown[i])
    bars = build_bars(trades, "1m", ES)
    expected = [kagi(bars, ES, 4), point_and_figure(bars, ES, 2, 3, "high_low"),
                line_break(bars, ES, 3), heikin_ashi(bars)]
    for got, want in zip(shown, expected):
        assert len(want) > 2
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
