"""The indicator registry: every TA-Lib function registered from its own metadata, computed through
the registry exactly as TA-Lib computes it, parameters validated, custom indicators registered by
decorator."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

talib = pytest.importorskip("talib")
from talib import abstract  # noqa: E402

from indicators.registry import (  # noqa: E402
    REGISTRY, Indicator, IndicatorError, Param, Registry, compute, get, indicator,
)
from tradeflow.model import BAR_COLUMNS  # noqa: E402

N_BARS = 3000
TALIB_NAMES = talib.get_functions()
TALIB_INDICATORS = [i for i in REGISTRY if i.source == "talib"]


def make_bars(n: int = N_BARS, seed: int = 7) -> pd.DataFrame:
    """Bars in the model's layout, float64 prices and volumes, a random walk with realistic
    ranges (high >= max(open, close), low <= min(open, close))."""
    rng = np.random.default_rng(seed)
    ret = rng.standard_t(4, n) * 0.0015
    close = 4500.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.0003, n))
    wick = np.abs(rng.normal(0, 0.001, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = np.round(rng.lognormal(6, 0.8, n))
    ask = np.round(volume * rng.beta(5, 5, n))
    bid = volume - ask
    ts = pd.date_range("2024-03-04", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame({
        "ts": ts, "open": open_, "high": high, "low": low, "close": close,
        "volume": volume, "ask_volume": ask, "bid_volume": bid, "delta": ask - bid,
        "trades": rng.integers(1, 500, n).astype("int64"),
        "open_interest": 1e5 + np.cumsum(rng.normal(0, 10, n)),
        # MAVP's variable periods (not a bar column: mapped with inputs=)
        "mavp_periods": rng.integers(2, 40, n).astype("float64"),
    }).set_index("ts", drop=False)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return make_bars()


def talib_direct(name: str, bars: pd.DataFrame, params: dict):
    """TA-Lib's own answer through its abstract API (it maps the input names itself)."""
    fn = abstract.Function(name)
    data = {c: bars[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close",
                                                           "volume")}
    data["periods"] = bars["mavp_periods"].to_numpy()
    out = fn(data, **params)
    return list(out) if isinstance(out, list) else [out]


def registry_inputs(ind: Indicator) -> dict | None:
    return {"periods": "mavp_periods"} if "periods" in ind.inputs else None


def other_params(ind: Indicator) -> dict:
    """A valid non-default value for every parameter."""
    out = {}
    for p in ind.params:
        if p.type == "choice":
            out[p.name] = 1 if p.default != 1 else 0  # EMA / SMA
        elif p.type == "int":
            out[p.name] = min(p.default + 3, p.max)
        else:
            d = p.default
            cand = d * 0.8 if d else 0.1
            if p.min is not None:
                cand = max(cand, p.min)
            if p.max is not None:
                cand = min(cand, p.max)
            out[p.name] = cand
    return out


# --------------------------------------------------------------------------------------------
# Everything of TA-Lib is there


def test_every_talib_function_is_registered():
    names = {i.name for i in TALIB_INDICATORS}
    assert len(TALIB_INDICATORS) == len(TALIB_NAMES)
    assert names == set(TALIB_NAMES)
    patterns = REGISTRY.by_group("Pattern Recognition")
    assert len(patterns) == len([n for n in TALIB_NAMES if n.startswith("CDL")]) >= 61
    assert all(p.levels == (0.0,) and not p.overlay for p in patterns)


def test_lookup_is_case_insensitive_and_grouped():
    assert get("rsi") is get("RSI") is get(" Rsi ") is REGISTRY.get("RSI")
    assert "macd" in REGISTRY
    groups = REGISTRY.groups()
    assert set(groups) >= set(talib.get_function_groups())
    for group, funcs in talib.get_function_groups().items():
        assert {i.name for i in REGISTRY.by_group(group)} >= set(funcs)
        assert {i.name for i in REGISTRY.by_group(group.upper())} >= set(funcs)
    listed = list(REGISTRY)
    assert len(listed) == len(REGISTRY) and [i.key for i in listed] == sorted(i.key for i in listed)
    with pytest.raises(IndicatorError, match="unknown indicator 'NOPE'"):
        get("NOPE")


# --------------------------------------------------------------------------------------------
# compute() is TA-Lib


@pytest.mark.parametrize("which", ["defaults", "other"])
def test_compute_equals_talib_for_every_function(bars, which):
    failures = []
    for ind in TALIB_INDICATORS:
        params = {} if which == "defaults" else other_params(ind)
        got = compute(ind.name, bars, inputs=registry_inputs(ind), **params)
        want = talib_direct(ind.name, bars, {**ind.defaults, **params})
        assert list(got.columns) == list(ind.columns)
        assert got.index.equals(bars.index)
        assert len(want) == len(ind.outputs), ind.name
        for col, expected in zip(ind.columns, want):
            try:
                assert_allclose(got[col].to_numpy(), expected, rtol=0, atol=0, equal_nan=True)
            except AssertionError as exc:
                failures.append(f"{ind.name}.{col} {params}: {exc}")
    assert not failures, "\n".join(failures[:5])


def test_some_outputs_are_not_all_nan(bars):
    # guard against comparing NaN to NaN everywhere
    for name in ("RSI", "MACD", "BBANDS", "STOCH", "ADX", "OBV", "SAR", "CCI", "MFI", "ATR"):
        out = compute(name, bars)
        assert out.notna().all(axis=1).sum() > N_BARS * 0.9, name
    assert (compute("CDLDOJI", bars)["CDLDOJI"] != 0).any()


def test_output_naming_scheme(bars):
    assert list(compute("RSI", bars).columns) == ["RSI"]
    assert list(compute("MACD", bars).columns) == ["MACD_macd", "MACD_macdsignal",
                                                    "MACD_macdhist"]
    assert list(compute("bbands", bars).columns) == ["BBANDS_upperband", "BBANDS_middleband",
                                                     "BBANDS_lowerband"]
    assert get("STOCH").columns == ("STOCH_slowk", "STOCH_slowd")


def test_inputs_can_read_other_columns(bars):
    got = compute("RSI", bars, inputs={"close": "delta"}, timeperiod=10)
    assert_allclose(got["RSI"], talib.RSI(bars["delta"].to_numpy(), 10), equal_nan=True)
    # int columns are read as float64
    got = compute("SMA", bars, inputs={"close": "trades"}, timeperiod=5)
    assert_allclose(got["SMA"], talib.SMA(bars["trades"].to_numpy(float), 5), equal_nan=True)
    with pytest.raises(IndicatorError, match="RSI: inputs= maps 'high'"):
        compute("RSI", bars, inputs={"high": "close"})


def test_missing_columns_are_named(bars):
    with pytest.raises(IndicatorError) as err:
        compute("ATR", bars.drop(columns=["high", "low"]))
    assert "ATR" in str(err.value) and "'high', 'low'" in str(err.value)
    with pytest.raises(ValueError, match="MAVP: the bars lack column.*'periods'.*inputs="):
        compute("MAVP", bars)
    with pytest.raises(IndicatorError, match="RSI: the bars lack column.*'nope'"):
        compute("RSI", bars, inputs={"close": "nope"})
    with pytest.raises(IndicatorError, match="RSI: column 'ts' is not numeric"):
        compute("RSI", bars.reset_index(drop=True), inputs={"close": "ts"})


def test_talib_refusals_name_the_indicator(bars):
    # in range one by one, refused together by TA-Lib's C checks
    with pytest.raises(IndicatorError, match="MAVP: TA-Lib refused"):
        compute("MAVP", bars, inputs={"periods": "mavp_periods"}, minperiod=50, maxperiod=10)


# --------------------------------------------------------------------------------------------
# Parameters


def test_unknown_parameter(bars):
    with pytest.raises(ValueError) as err:
        compute("RSI", bars, period=14)
    msg = str(err.value)
    assert msg.startswith("RSI:") and "'period'" in msg and "timeperiod" in msg


def test_out_of_range_parameter(bars):
    with pytest.raises(IndicatorError) as err:
        compute("RSI", bars, timeperiod=1)
    assert str(err.value) == ("RSI: parameter 'timeperiod' must be an integer from 2 to 100000; "
                              "got 1")
    with pytest.raises(IndicatorError, match=r"EMA: parameter 'timeperiod' must be an integer "
                                             r"from 1 to 100000; got 0"):
        compute("EMA", bars, timeperiod=0)
    with pytest.raises(IndicatorError, match=r"T3: parameter 'vfactor' must be a number from 0 "
                                             r"to 1; got 1.5"):
        compute("T3", bars, vfactor=1.5)
    with pytest.raises(IndicatorError, match=r"MA: parameter 'matype' must be one of 0 \(SMA\), "
                                             r"1 \(EMA\).*got 99"):
        compute("MA", bars, matype=99)


def test_wrong_type_parameter(bars):
    with pytest.raises(IndicatorError, match=r"RSI: parameter 'timeperiod' must be an integer "
                                             r"from 2 to 100000; got '14' of type str"):
        compute("RSI", bars, timeperiod="14")
    with pytest.raises(IndicatorError, match="RSI: parameter 'timeperiod'.*got 14.5"):
        compute("RSI", bars, timeperiod=14.5)
    with pytest.raises(IndicatorError, match="got True of type bool"):
        compute("RSI", bars, timeperiod=True)
    with pytest.raises(IndicatorError, match="BBANDS: parameter 'nbdevup'.*got nan"):
        compute("BBANDS", bars, nbdevup=float("nan"))
    with pytest.raises(IndicatorError, match="MA: parameter 'matype'.*got 'FOO'"):
        compute("MA", bars, matype="FOO")


def test_parameter_coercion(bars):
    # integral floats and numpy ints are integers; MA types by label
    a = compute("RSI", bars, timeperiod=10.0)
    b = compute("RSI", bars, timeperiod=np.int64(10))
    pd.testing.assert_frame_equal(a, b)
    assert_allclose(compute("MA", bars, matype="ema", timeperiod=9)["MA"],
                    talib.EMA(bars["close"].to_numpy(), 9), equal_nan=True)
    assert get("BBANDS").param("nbdevup").validate(3) == 3.0


def test_int_ranges_match_what_talib_takes(bars):
    """The declared minimum of every integer parameter is accepted by TA-Lib and the value below
    it refused; the maximum is accepted. Every MA type code is accepted."""
    small = {c: bars[c].to_numpy(dtype="float64")[:300] for c in ("open", "high", "low", "close",
                                                                  "volume")}
    small["periods"] = bars["mavp_periods"].to_numpy()[:300]

    def accepts(name, **params):
        try:
            abstract.Function(name)(small, **params)
            return True
        except Exception:
            return False

    wrong = []
    for ind in TALIB_INDICATORS:
        for p in ind.params:
            if p.type == "int":
                if not accepts(ind.name, **{p.name: p.min}):
                    wrong.append(f"{ind.name}.{p.name}: min {p.min} refused")
                if accepts(ind.name, **{p.name: p.min - 1}):
                    wrong.append(f"{ind.name}.{p.name}: {p.min - 1} accepted below min")
                if p.name != "minperiod" and not accepts(ind.name, **{p.name: p.max}):
                    wrong.append(f"{ind.name}.{p.name}: max {p.max} refused")
            elif p.type == "float":
                for v in (p.min, p.max):
                    if v is not None and not accepts(ind.name, **{p.name: v}):
                        wrong.append(f"{ind.name}.{p.name}: {v} refused")
            else:
                for v in p.choices:
                    if not accepts(ind.name, **{p.name: v}):
                        wrong.append(f"{ind.name}.{p.name}: choice {v} refused")
    assert not wrong, "\n".join(wrong)


# --------------------------------------------------------------------------------------------
# Metadata


def test_metadata_sanity():
    bar_columns = set(BAR_COLUMNS) - {"ts"}
    for ind in REGISTRY:
        assert ind.group and ind.title and ind.outputs, ind.name
        assert isinstance(ind.overlay, bool)
        assert all(isinstance(x, float) for x in ind.levels), ind.name
        assert len(set(ind.columns)) == len(ind.columns)
        if ind.source == "talib":
            extra = set(ind.inputs) - bar_columns
            assert extra <= {"periods"}, (ind.name, extra)
            assert ind.inputs, ind.name
        for p in ind.params:
            assert p.type in ("int", "float", "choice"), (ind.name, p)
            assert p.description, (ind.name, p.name)
            assert p.validate(p.default, ind.name) == p.default
            if p.type == "choice":
                assert p.default in p.choices
            else:
                assert p.min is None or p.min <= p.default, (ind.name, p)
                assert p.max is None or p.default <= p.max, (ind.name, p)
                if p.type == "int":
                    assert p.min in (1, 2) and p.max == 100_000, (ind.name, p)
            assert math.isfinite(float(p.default))


def test_overlay_and_levels_of_the_usual_suspects():
    overlays = {"SMA", "EMA", "BBANDS", "SAR", "KAMA", "MAMA", "MIDPRICE", "TYPPRICE", "VWAP",
                "HA", "KC", "SUPERTREND", "DONCHIAN"}
    panes = {"RSI", "MACD", "STOCH", "CCI", "ATR", "OBV", "ADX", "CDLENGULFING", "AVGDEV",
             "WILLR", "MFI"}
    assert all(get(n).overlay for n in overlays)
    assert not any(get(n).overlay for n in panes)
    assert get("RSI").levels == (30.0, 70.0)
    assert get("STOCH").levels == (20.0, 80.0)
    assert get("CCI").levels == (-100.0, 100.0)
    assert get("CDLHAMMER").levels == (0.0,)
    assert get("MACD").levels == (0.0,)


# --------------------------------------------------------------------------------------------
# Custom indicators


def test_decorator_registers_a_custom_indicator_like_a_builtin(bars):
    try:
        @indicator(group="Order Flow", inputs=("ask_volume", "bid_volume"),
                   outputs=("ratio", "smooth"), levels=(0.5,),
                   params=[Param("period", 20, min=1, max=10_000,
                                 description="Smoothing window")])
        def BUY_RATIO(ask, bid, period=20, scale=1.0):
            """Share of volume bought at the ask"""
            ratio = scale * ask / np.where(ask + bid == 0, np.nan, ask + bid)
            return ratio, talib.SMA(ratio, period)

        ind = get("buy_ratio")
        assert BUY_RATIO.indicator is ind and ind.title == "Share of volume bought at the ask"
        assert [p.name for p in ind.params] == ["period", "scale"]
        assert ind.param("scale").type == "float" and ind.param("scale").min is None
        assert ind in REGISTRY.by_group("order flow") and "BUY_RATIO" in REGISTRY.names()
        assert ind.to_dict()["columns"] == ["BUY_RATIO_ratio", "BUY_RATIO_smooth"]

        out = compute("Buy_Ratio", bars, period=5)
        ratio = bars["ask_volume"] / bars["volume"]
        assert_allclose(out["BUY_RATIO_ratio"], ratio, equal_nan=True)
        assert_allclose(out["BUY_RATIO_smooth"], talib.SMA(ratio.to_numpy(), 5), equal_nan=True)
        assert out.index.equals(bars.index)
        with pytest.raises(IndicatorError, match=r"BUY_RATIO: parameter 'period' must be an "
                                                 r"integer from 1 to 10000; got 0"):
            compute("buy_ratio", bars, period=0)
        with pytest.raises(IndicatorError, match="already registered"):
            indicator("buy_ratio")(lambda close: close)
    finally:
        if "buy_ratio" in REGISTRY:
            REGISTRY.unregister("buy_ratio")
    assert "buy_ratio" not in REGISTRY


def test_decorator_in_a_private_registry_with_choices(bars):
    reg = Registry()

    @indicator(registry=reg, overlay=True, params=[
        Param("how", "sma", choices=("sma", "ema"), description="Average")])
    def avg(close, how="sma", period=3):
        return talib.SMA(close, period) if how == "sma" else talib.EMA(close, period)

    assert len(reg) == 1 and "avg" in reg and "avg" not in REGISTRY
    out = reg.compute("AVG", bars, how="EMA", period=4)
    assert list(out.columns) == ["avg"]
    assert_allclose(out["avg"], talib.EMA(bars["close"].to_numpy(), 4), equal_nan=True)
    with pytest.raises(IndicatorError, match=r"avg: parameter 'how' must be one of 'sma', 'ema'"):
        reg.compute("avg", bars, how="wma")


def test_bad_custom_outputs_are_caught(bars):
    reg = Registry()
    indicator("short", registry=reg)(lambda close: close[:-1])
    indicator("two", registry=reg)(lambda close: (close, close))
    with pytest.raises(IndicatorError, match=r"short: output 'short' has shape \(2999,\)"):
        reg.compute("short", bars)
    with pytest.raises(IndicatorError, match=r"two: the function returned 2 array\(s\), "
                                             r"expected 1"):
        reg.compute("two", bars)
    with pytest.raises(IndicatorError, match="default"):
        Indicator("bad", "g", "t", ("close",), (Param("p", 0, min=1),), ("x",), lambda c, p: c)


def test_registry_module_imports_only_the_model():
    src = Path(__file__).resolve().parents[1] / "indicators" / "registry.py"
    tree = ast.parse(src.read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add(node.module or "")
    tf = {m for m in mods if m.split(".")[0] == "tradeflow"}
    assert tf <= {"tradeflow.model"}, tf
    third_party = {m.split(".")[0] for m in mods} - {
        "__future__", "functools", "importlib", "inspect", "math", "numbers", "threading", "dataclasses",
        "typing", "numpy", "pandas", "tradeflow"}
    assert not third_party, third_party


def test_decorator_checks_the_function_against_its_description(bars):
    reg = Registry()
    with pytest.raises(IndicatorError, match="f1: function argument 'period' has no default"):
        indicator("f1", registry=reg)(lambda close, period: close)
    with pytest.raises(IndicatorError, match="f2: the function takes no parameter.*'window'"):
        indicator("f2", registry=reg, params=[Param("window", 3, min=1)])(lambda close: close)
    with pytest.raises(IndicatorError, match=r"f3: the function takes 1 positional argument.*"
                                             r"reads 2 input"):
        indicator("f3", registry=reg, inputs=("high", "low"))(lambda high: high)
    assert len(reg) == 0

    # **kwargs takes described parameters; bare @indicator uses the function's name
    indicator("f4", registry=reg, params=[Param("k", 2.0, min=0, max=10)])(
        lambda close, **kw: close * kw["k"])
    assert_allclose(reg.compute("f4", bars, k=3)["f4"], bars["close"] * 3)

    try:
        @indicator
        def plain_mid(close, shift=0):
            return close if shift == 0 else np.roll(close, shift)

        assert get("PLAIN_MID").group == "Custom" and get("plain_mid").param("shift").type == "int"
        out = compute("plain_mid", bars)
        assert_allclose(out["plain_mid"], bars["close"])
        # the output does not alias the bars' data
        assert not np.shares_memory(out["plain_mid"].to_numpy(), bars["close"].to_numpy())
    finally:
        REGISTRY.unregister("plain_mid")
