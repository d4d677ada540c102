"""Live indicator updates (``indicators.live``): for every registered indicator, the values kept
bar by bar -- the forming bar changing, new bars closing -- equal the batch computation over all
bars so far, and no update computes over the whole history."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from indicators.live import ANCHORED, BarBuffer, LiveIndicator, LiveIndicators
from indicators.formula import evaluate, parse
from indicators.registry import REGISTRY, IndicatorError, Registry, compute, indicator
from tests.test_indicator_registry import make_bars, other_params, registry_inputs

HISTORY = 1500   # bars computed in batch when the live form starts
NEW_BARS = 10    # bars then fed one by one, each in two forming versions and its final one
PRICE_COLS = ("open", "high", "low", "close")
AMOUNT_COLS = ("volume", "ask_volume", "bid_volume", "delta", "trades")
ALL_INDICATORS = sorted(i.name for i in REGISTRY)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return make_bars(HISTORY + NEW_BARS, seed=11).reset_index(drop=True)


def forming_versions(row: pd.Series) -> list[dict]:
    """How a bar reaches the chart: just opened (every price at the open), half-way, final."""
    final = row.to_dict()
    opened = dict(final, **{c: final["open"] for c in PRICE_COLS},
                  **{c: 0.0 for c in AMOUNT_COLS})
    half = dict(final, high=max(final["open"], final["close"]),
                low=min(final["open"], final["close"]),
                **{c: round(final[c] / 2) for c in AMOUNT_COLS})
    return [opened, half, final]


def assert_close(got, want, scale: float, what: str) -> None:
    got, want = np.asarray(got, dtype="float64"), np.asarray(want, dtype="float64")
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    if same.all():
        return
    err = np.abs(got - want)[~same]
    assert np.isfinite(err).all() and err.max() <= 1e-7 * max(scale, 1e-9), (
        f"{what}: live {got[~same][:3]} != batch {want[~same][:3]}")


def _scale(values: np.ndarray) -> float:
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    return float(np.abs(v).max()) if v.size else 0.0


def run_live(name: str, bars: pd.DataFrame, params: dict) -> LiveIndicator:
    """Feed the bars after HISTORY to a live form and compare each update with the batch."""
    ind = REGISTRY.get(name)
    inputs = registry_inputs(ind)
    live = LiveIndicator(name, bars.iloc[:HISTORY], inputs=inputs, **params)
    for i in range(HISTORY, len(bars)):
        for version in forming_versions(bars.iloc[i]):
            got = live.update(version)
            so_far = pd.concat([bars.iloc[:i], pd.DataFrame([version])], ignore_index=True)
            want = compute(name, so_far, inputs=inputs, **params)
            for col in ind.columns:
                assert_close(got[col], want[col].iloc[-1], _scale(want[col].iloc[-600:]),
                             f"{name}{params or ''} bar {i} {col}")
    # the whole series, closed bars included, equals the batch one
    want = compute(name, bars, inputs=inputs, **params)
    frame = live.frame()
    for col in ind.columns:
        assert_close(frame[col].to_numpy()[HISTORY - 50:], want[col].to_numpy()[HISTORY - 50:],
                     _scale(want[col].iloc[-600:]), f"{name} series {col}")
    return live


@pytest.mark.parametrize("name", ALL_INDICATORS)
def test_every_indicator_updates_live_like_the_batch(bars, name):
    live = run_live(name, bars, {})
    # the point of the live form: it computed over a window, not the whole history
    assert live.window < HISTORY, f"{name}: window {live.window} covers the whole history"


@pytest.mark.parametrize("name", [n for n in ALL_INDICATORS if REGISTRY.get(n).params])
def test_every_indicator_with_other_parameters(bars, name):
    run_live(name, bars.iloc[:HISTORY + 3], other_params(REGISTRY.get(name)))


# --------------------------------------------------------------------------------------------
# The mechanism


def test_cumulative_indicators_are_anchored_not_recomputed(bars):
    for name, mode in ANCHORED.items():
        live = LiveIndicator(name, bars.iloc[:HISTORY])
        assert live.mode == mode
        assert live.window < 600


def test_a_window_too_short_is_grown_and_the_values_stay_right(bars):
    live = LiveIndicator("EMA", bars.iloc[:HISTORY], timeperiod=50)
    live.window = 60  # far too short for an EMA(50) to have faded
    for i in range(HISTORY, HISTORY + 3):
        got = live.update(bars.iloc[i].to_dict())["EMA"]
        want = compute("EMA", bars.iloc[:i + 1], timeperiod=50)["EMA"].iloc[-1]
        assert abs(got - want) <= 1e-9 * want
    assert live.regrown >= 1 and live.window > 60


def test_an_undeclared_cumulative_custom_indicator_is_still_right(bars):
    """A running sum that does not say so: the check finds every window too short and the
    update falls back to the whole history, which is slow but never wrong."""
    reg = Registry()

    @indicator(registry=reg, inputs=("delta",))
    def running(delta):
        return np.cumsum(delta)

    @indicator(registry=reg, inputs=("delta",), meta={"live": "sum"})
    def declared(delta):
        return np.cumsum(delta)

    slow = LiveIndicator(reg.get("running"), bars.iloc[:300])
    fast = LiveIndicator(reg.get("declared"), bars.iloc[:300])
    for i in range(300, 305):
        row = bars.iloc[i].to_dict()
        want = float(bars["delta"].iloc[:i + 1].sum())
        assert slow.update(row)["running"] == pytest.approx(want, rel=1e-12)
        assert fast.update(row)["declared"] == pytest.approx(want, rel=1e-12)
    assert slow.window >= 300 and fast.window < 300


def test_several_indicators_share_one_buffer(bars):
    live = LiveIndicators(bars.iloc[:HISTORY])
    assert live.add("RSI") == "RSI"
    assert live.add("RSI", timeperiod=21) == "RSI(timeperiod=21)"
    assert live.add("BBANDS", key="bands") == "bands"
    with pytest.raises(IndicatorError, match="already followed"):
        live.add("RSI")
    row = bars.iloc[HISTORY].to_dict()
    out = live.update(row)
    assert set(out) == {"RSI", "RSI(timeperiod=21)", "bands"}
    assert set(out["bands"]) == {"BBANDS_upperband", "BBANDS_middleband", "BBANDS_lowerband"}
    want = compute("RSI", bars.iloc[:HISTORY + 1], timeperiod=21)["RSI"].iloc[-1]
    assert out["RSI(timeperiod=21)"]["RSI"] == pytest.approx(want, abs=1e-7)


def test_bars_pushed_to_the_buffer_between_reads_are_all_recomputed(bars):
    buf = BarBuffer(bars.iloc[:HISTORY])
    live = LiveIndicator("SMA", buffer=buf, timeperiod=5)
    for i in range(HISTORY, HISTORY + 4):  # four bars, two versions each, nobody reading
        buf.push(dict(bars.iloc[i].to_dict(), close=0.0))
        buf.push(bars.iloc[i].to_dict())
    want = compute("SMA", bars.iloc[:HISTORY + 4], timeperiod=5)["SMA"].to_numpy()
    np.testing.assert_allclose(live.frame()["SMA"].to_numpy(), want, rtol=1e-12)


ops = st.lists(st.tuples(st.sampled_from(["append", "replace"]),
                         st.floats(-3, 3, allow_nan=False), st.integers(0, 2000)),
               min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.integers(1, 400), steps=ops,
       name=st.sampled_from(["EMA", "SMA", "OBV", "VWAP", "NVI", "MAXINDEX", "SAR", "RSI",
                             "CDLENGULFING", "SUPERTREND", "ICHIMOKU"]))
def test_random_streams_of_new_and_changed_bars(history, steps, name):
    """Whatever the history's length and however bars change or arrive, the live series equals
    the batch one."""
    rows = make_bars(history + len(steps) + 1, seed=history).reset_index(drop=True)
    live = LiveIndicator(name, rows.iloc[:history])
    shown = rows.iloc[:history].to_dict("records")
    nxt = history
    for kind, move, vol in steps:
        if kind == "append":
            bar = rows.iloc[nxt].to_dict()
            nxt += 1
        else:
            bar = dict(shown.pop())
        bar["close"] = bar["close"] + move
        bar["high"] = max(bar["high"], bar["close"])
        bar["low"] = min(bar["low"], bar["close"])
        bar["volume"] = float(vol)
        live.update(bar)
        shown.append(bar)
    want = compute(name, pd.DataFrame(shown))
    frame = live.frame()
    for col in REGISTRY.get(name).columns:
        assert_close(frame[col].to_numpy(), want[col].to_numpy(), _scale(want[col]), col)


# --------------------------------------------------------------------------------------------
# Following a stream's bar updates (the live protocol)


def test_bar_updates_of_tick_bars_sharing_a_time():
    """``apply``: closed bars appended once, the forming bar replaced; tick bars may open at the
    same time (the one-bar-at-a-time ``update`` would take the second for the first changed)."""
    from tests.test_orderflow import ES
    from tradeflow.bars import BarAggregator, build

    t0 = pd.Timestamp("2026-01-05 15:00", tz="UTC")
    secs = [0, 0, 0, 0, 0, 1, 1, 2, 3, 3, 3, 4, 9, 9]  # T2 bars: three open at 15:00:00
    trades = pd.DataFrame({"ts": t0 + pd.to_timedelta(secs, unit="s"),
                           "price": (20000 + np.array([0, 1, 3, 2, 1, 0, -1, 0, 2, 4, 3, 1, 0,
                                                       -2])) * ES.tick_size,
                           "size": np.arange(1.0, 15.0), "side": np.int8([1, -1] * 7),
                           "trade_id": np.arange(14)})
    agg, live = BarAggregator(ES, "T2"), LiveIndicators()
    for name in ("SMA", "OBV", "ATR"):
        live.add(name, timeperiod=2) if name != "OBV" else live.add(name)
    shown = {key: live[key].frame() for key in live}
    for a, b in ((0, 3), (3, 4), (4, 9), (9, 9), (9, 14)):
        up = agg.update(trades.iloc[a:b])
        changes = live.apply(up)
        bars = build(trades.iloc[:b], "T2", ES)[0]
        for key in live:
            want = compute(key.split("(")[0], bars, **({} if key == "OBV" else
                                                       {"timeperiod": 2}))
            shown[key] = changes[key].applied(shown[key])
            for got in (live[key].frame(), shown[key]):
                assert list(got["ts"]) == list(bars["ts"])
                for col in want.columns:
                    assert_close(got[col].to_numpy(), want[col].to_numpy(), 1.0, f"{key} {col}")
        assert live.n_closed == len(bars) - len(up.current)
    assert bars["ts"].duplicated().any()  # the case this test is about
    with pytest.raises(IndicatorError, match="older than the bars already closed"):
        live.buffer.write_tail(live.buffer.n, [bars.iloc[:1]])


# --------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_is_refused_clearly(bars):
    live = LiveIndicator("RSI", bars.iloc[:100])
    last = bars.iloc[99].to_dict()
    with pytest.raises(IndicatorError, match="older than the newest bar"):
        live.update(dict(last, ts=last["ts"] - pd.Timedelta("1min")))
    with pytest.raises(IndicatorError, match="column 'colour' the history lacks"):
        live.update(dict(last, colour=1.0))
    with pytest.raises(IndicatorError, match="'close' is not a number"):
        live.update(dict(last, close="abc"))
    with pytest.raises(IndicatorError, match="needs its 'ts'"):
        live.update({"close": 1.0})
    with pytest.raises(IndicatorError, match="rtol"):
        LiveIndicator("RSI", bars.iloc[:100], rtol=0)
    with pytest.raises(IndicatorError, match="unknown indicator"):
        LiveIndicator("NOPE", bars.iloc[:100])
    with pytest.raises(IndicatorError, match="timeperiod"):
        LiveIndicator("RSI", bars.iloc[:100], timeperiod=0)
    with pytest.raises(IndicatorError, match="'ts' column"):
        LiveIndicator("RSI", bars.drop(columns="ts"))
    with pytest.raises(IndicatorError, match="strictly increasing"):
        LiveIndicator("RSI", pd.concat([bars.iloc[:5], bars.iloc[:5]]))
    with pytest.raises(IndicatorError, match="lack column"):
        LiveIndicator("RSI", bars.iloc[:100][["ts", "open"]])
    # a refused bar changed nothing
    assert live.frame()["ts"].iloc[-1] == last["ts"]
    assert len(live.frame()) == 100


@pytest.mark.parametrize("text", ["ema(close, 20) - ema(close, 50)", "rsi(close, 14) > 70",
                                  "(hlc3 - sma(close, 20)) / atr(high, low, close, 14)"])
def test_desk_formulas_update_live(bars, text):
    formula = parse(text)
    live = LiveIndicator(formula.indicator(), bars.iloc[:HISTORY])
    for i in range(HISTORY, HISTORY + 5):
        for version in forming_versions(bars.iloc[i]):
            got = live.update(version)["FORMULA"]
            so_far = pd.concat([bars.iloc[:i], pd.DataFrame([version])], ignore_index=True)
            want = evaluate(formula, so_far)
            assert_close(got, want.iloc[-1], _scale(want.iloc[-600:]), text)
    assert live.window < HISTORY
