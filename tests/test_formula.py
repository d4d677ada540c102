"""User formulas: parsed by our own tokenizer/parser (never Python's eval), validated against the
indicator registry, evaluated to the same numbers as TA-Lib/pandas directly, and every error --
unknown names, bad arguments, syntax, escape attempts -- refused with a FormulaError whose caret
points at the offending part."""
from __future__ import annotations

import ast
import builtins
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

talib = pytest.importorskip("talib")

import indicators.registry as registry  # noqa: E402
from indicators.formula import (  # noqa: E402
    MAX_DEPTH, MAX_LENGTH, SERIES, Formula, FormulaError, evaluate, parse,
)
from indicators.registry import REGISTRY, Param, Registry  # noqa: E402

N = 400


def make_bars(n: int = N, seed: int = 11) -> pd.DataFrame:
    """A random walk in the model's bar layout: high >= max(open, close), low <= min(open,
    close), ask + bid = volume, delta = ask - bid; a few zero-volume bars."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.001, n))
    wick = np.abs(rng.normal(0, 0.002, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = np.round(rng.lognormal(4, 0.8, n))
    volume[::37] = 0.0
    ask = np.round(volume * rng.beta(5, 5, n))
    bid = volume - ask
    ts = pd.date_range("2024-03-04 14:30", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame({
        "ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume,
        "ask_volume": ask, "bid_volume": bid, "delta": ask - bid,
        "trades": rng.integers(1, 300, n).astype("int64"),
        "open_interest": 5e4 + np.cumsum(rng.normal(0, 5, n)),
    }).set_index("ts", drop=False)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return make_bars()


def s(bars, col):
    return bars[col].to_numpy(dtype="float64")


def cross(a, b, up=True):
    a, b = pd.Series(a), pd.Series(b)
    pa, pb = a.shift(1), b.shift(1)
    out = (a > b) & (pa <= pb) if up else (a < b) & (pa >= pb)
    return out.to_numpy()


# --------------------------------------------------------------------------------------------
# Results equal direct computations


def _expected(bars):
    c, o, h, lo, v = (s(bars, k) for k in ("close", "open", "high", "low", "volume"))
    a, b, d = s(bars, "ask_volume"), s(bars, "bid_volume"), s(bars, "delta")
    with np.errstate(all="ignore"):
        return {
            "ema(close, 20) - ema(close, 50)": talib.EMA(c, 20) - talib.EMA(c, 50),
            "rsi(close, 14) > 70": talib.RSI(c, 14) > 70,
            "(close - sma(close, 20)) / atr(high, low, close, 14)":
                (c - talib.SMA(c, 20)) / talib.ATR(h, lo, c, 14),
            "macd(close, 12, 26, 9).macdhist": talib.MACD(c, 12, 26, 9)[2],
            "delta / volume": np.where(v == 0, np.nan, d / v),
            "crossover(ema(close, 9), ema(close, 21))":
                cross(talib.EMA(c, 9), talib.EMA(c, 21)),
            "crossunder(close, sma(close, 10))": cross(c, talib.SMA(c, 10), up=False),
            "rsi(delta, 14)": talib.RSI(d, 14),
            "ema(rsi(close, 14), 5)": talib.EMA(talib.RSI(c, 14), 5),
            "BBands(Close, timeperiod=20, nbdevup=2.5).UpperBand":
                talib.BBANDS(c, 20, 2.5, 2.0, 0)[0],
            "stoch(high, low, close, 5, 3).slowd": talib.STOCH(h, lo, c, 5, 3)[1],
            "shift(close, 3) - hl2": pd.Series(c).shift(3).to_numpy() - (h + lo) / 2,
            "hlc3 + ohlc4 * 2 ** -1": (h + lo + c) / 3 + (o + h + lo + c) / 4 * 0.5,
            "max(close - open, 0) + min(ask_volume, bid_volume) - abs(delta)":
                np.maximum(c - o, 0) + np.minimum(a, b) - np.abs(d),
            "iff(close > open, ask_volume, -bid_volume)": np.where(c > o, a, -b),
            "where(volume == 0, 1, 2)": np.where(v == 0, 1.0, 2.0),
            "30 < rsi(close, 14) <= 70": (talib.RSI(c, 14) > 30) & (talib.RSI(c, 14) <= 70),
            "not close > open and volume > 50 or delta < -20":
                (~(c > o) & (v > 50)) | (d < -20),
            "and(close > open, or(delta > 0, volume == 0))": (c > o) & ((d > 0) | (v == 0)),
            "-close ** 2 / 1e4": -(c ** 2) / 1e4,
            "highest(high, 20) - lowest(low, 20)": talib.MAX(h, 20) - talib.MIN(lo, 20),
            "sum(volume, 10)": talib.SUM(v, 10),
            "obv(close, volume=delta)": talib.OBV(c, d),
            "ema(close, 2 * 10)": talib.EMA(c, 20),
            "(close > open) * 1 + (close < open) * -1": (c > o) * 1.0 - (c < o) * 1.0,
            "trades / (open_interest - open_interest)": np.full(len(c), np.nan),
        }


@pytest.mark.parametrize("text", list(_expected(make_bars(30)).keys()))
def test_results_equal_direct_computation(bars, text):
    want = _expected(bars)[text]
    got = evaluate(text, bars)
    assert isinstance(got, pd.Series)
    assert got.index.equals(bars.index)
    if want.dtype == bool:
        assert got.dtype == bool
        assert_array_equal(got.to_numpy(), want)
    else:
        assert got.dtype == np.float64
        assert_allclose(got.to_numpy(), want, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_constants_fold_and_broadcast(bars):
    f = parse("1 + 2 * 3 ** 2 - 10 / 4")
    assert f.root.is_const and f.root.value == 1 + 2 * 9 - 2.5
    got = evaluate(f, bars)
    assert (got == 16.5).all() and got.index.equals(bars.index)
    assert evaluate("1 < 2", bars).dtype == bool and evaluate("1 < 2", bars).all()
    assert evaluate("-2 ** 2", bars).iloc[0] == -4   # Python's precedence
    assert evaluate("2 ** 3 ** 2", bars).iloc[0] == 512  # right-associative


def test_division_by_zero_is_nan_not_an_error(bars):
    assert evaluate("close / 0", bars).isna().all()
    assert evaluate("1 / 0", bars).isna().all()
    assert evaluate("0 ** -1", bars).isna().all()
    got = evaluate("delta / volume", bars)
    zero = bars["volume"].to_numpy() == 0
    assert zero.any() and got[zero].isna().all() and got[~zero].notna().all()


def test_formula_object_and_reuse(bars):
    f = parse("crossover(ema(close, 9), ema(close, 21)) and volume > 0")
    assert isinstance(f, Formula) and f.kind == "bool"
    assert set(f.series) == {"close", "volume"}
    assert {"crossover", "ema"} <= set(f.functions)
    assert str(f) == f.text
    other = make_bars(120, seed=3)
    assert_array_equal(f.evaluate(other).to_numpy(), evaluate(f.text, other).to_numpy())
    assert parse("rsi(close, 14)").kind == "number"


def test_result_does_not_alias_the_bars(bars):
    b = bars.copy()
    got = evaluate("close", b)
    got.iloc[:] = -1.0
    assert (b["close"] > 0).all()


def test_identical_subexpressions_computed_once(bars, monkeypatch):
    calls = []
    real = REGISTRY.compute

    def spy(name, *a, **k):
        calls.append(getattr(name, "name", name))
        return real(name, *a, **k)

    monkeypatch.setattr(REGISTRY, "compute", spy)
    evaluate("ema(close, 9) - ema(close, 9) + crossover(ema(close, 9), 0)", bars)
    assert calls == ["EMA"]


def test_missing_columns(bars):
    no_delta = bars.drop(columns=["delta"])
    assert_allclose(evaluate("delta", no_delta), bars["delta"])  # derived from ask/bid
    with pytest.raises(FormulaError) as ei:
        evaluate("close + open_interest", bars.drop(columns=["open_interest"]))
    assert ei.value.position == 8 and ei.value.length == len("open_interest")
    assert "open_interest" in ei.value.message


def test_custom_indicator_through_the_registry(bars, monkeypatch):
    from indicators import formula as fm

    reg = Registry()  # a private registry: the shared one is left alone
    monkeypatch.setattr(fm, "REGISTRY", reg)

    @registry.indicator(registry=reg, inputs=("ask_volume", "bid_volume"),
                        params=[Param("period", 5, min=1, max=100)])
    def BUY_RATIO(ask, bid, period=5):
        tot = pd.Series(ask + bid).rolling(period).sum()
        return (pd.Series(ask).rolling(period).sum() / tot).to_numpy()

    got = evaluate("buy_ratio(ask_volume, bid_volume, 3)", bars)
    a, b = bars["ask_volume"].to_numpy(), bars["bid_volume"].to_numpy()
    want = pd.Series(a).rolling(3).sum() / pd.Series(a + b).rolling(3).sum()
    assert_allclose(got.to_numpy(), want.to_numpy(), equal_nan=True)
    with pytest.raises(FormulaError, match="period"):
        parse("buy_ratio(ask_volume, bid_volume, 0)")


def test_keywords_and_names_are_case_insensitive(bars):
    a = evaluate("NOT Close > Open AND Volume > 10 OR CLOSE < 0", bars)
    b = evaluate("not close > open and volume > 10 or close < 0", bars)
    assert_array_equal(a.to_numpy(), b.to_numpy())
    assert_allclose(evaluate("EMA(close, 5)", bars), evaluate("ema(close, 5)", bars))


def test_short_and_empty_bars(bars):
    assert evaluate("ema(close, 5)", bars.iloc[:3]).isna().all()
    assert evaluate("shift(close, 5)", bars.iloc[:3]).isna().all()
    for text in ("ema(close, 5)", "crossover(close, open)", "macd(close).macd", "close + 1"):
        assert len(evaluate(text, bars.iloc[:0])) == 0


def test_indicator_refusing_at_compute_time_is_a_formula_error(bars):
    text = "close + mavp(close, volume, 10, 5)"
    with pytest.raises(FormulaError) as ei:
        evaluate(text, bars)  # TA-Lib checks minperiod <= maxperiod only in C
    assert ei.value.position == 8 and ei.value.length == len(text) - 8
    assert "MAVP" in ei.value.message


def test_fuzz_only_formula_errors(bars):
    """Random token soup: parsing and evaluating either works or raises FormulaError."""
    rng = np.random.default_rng(5)
    atoms = ["close", "volume", "hl2", "1", "2.5", "0", "-", "+", "*", "/", "**", "(", ")",
             ",", ".", "<", ">=", "==", "and", "or", "not", "ema(", "rsi(", "macd(",
             "shift(", "crossover(", "iff(", "max(", "abs(", ".macdhist", "timeperiod=", "3",
             " ", "'", "[", "__x", "lambda", "=", "1e3", "highest("]
    small = bars.iloc[:60]
    for _ in range(3000):
        text = "".join(rng.choice(atoms, rng.integers(1, 12)))
        try:
            got = evaluate(text, small)
        except FormulaError as exc:
            assert 0 <= exc.position <= len(text) and str(exc)
        else:
            assert len(got) == len(small)


# --------------------------------------------------------------------------------------------
# Errors: message, position, caret


def refused(text: str) -> FormulaError:
    with pytest.raises(FormulaError) as ei:
        parse(text)
    return ei.value


def caret_at(err: FormulaError) -> tuple[int, int]:
    """(column offset, width) of the caret line of str(err)."""
    line = str(err).splitlines()[-1]
    stripped = line.lstrip(" ")
    return len(line) - len(stripped), len(stripped)


@pytest.mark.parametrize("text, part, words", [
    ("exec(close)", "exec", ["unknown function 'exec'"]),
    ("emaa(close, 20)", "emaa", ["unknown function 'emaa'", "did you mean", "'ema'"]),
    ("close + clsoe", "clsoe", ["unknown series 'clsoe'", "'close'"]),
    ("ema + 1", "ema", ["is a function"]),
    ("close(3)", "close", ["is a series, not a function"]),
    # argument count and types
    ("ema(close, 20, 3)", "3", ["at most 2 arguments", "ema(close, timeperiod)"]),
    ("atr(high, low)", "atr(high, low)", ["needs its input", "close"]),
    ("ema(5, 20)", "5", ["must be a series"]),
    ("ema(close, sma(close, 3))", "sma(close, 3)", ["must be a constant number"]),
    ("ema(close, timeperod=20)", "timeperod", ["no argument 'timeperod'", "'timeperiod'"]),
    ("ema(close, 20, timeperiod=3)", "timeperiod=3", ["given twice"]),
    ("ema(close, timeperiod=3, 4)", "4", ["follows a keyword argument"]),
    ("shift(close)", "shift(close)", ["needs 2 arguments"]),
    ("abs(close, 1)", "1", ["takes 1 argument"]),
    ("shift(close, -1)", "-1", ["look into the future"]),
    ("shift(close, 1.5)", "1.5", ["whole number"]),
    ("shift(close, volume)", "volume", ["constant whole number"]),
    ("crossover(close, open, x=1)", "x", ["no keyword arguments"]),
    ("macd(close, 12, 26, 9)", "macd(close, 12, 26, 9)", ["3 outputs", ".macdhist"]),
    ("macd(close).hist", "hist", ["no output 'hist'", "'macdhist'"]),
    ("ema(close, 20).foo", "foo", ["no output 'foo'"]),
    # bad parameters: the registry's message
    ("rsi(close, 1)", "1", ["bad parameter '1'", "RSI: parameter 'timeperiod' must be an "
                            "integer from 2 to 100000"]),
    ("ema(close, 0)", "0", ["timeperiod"]),
    ("bbands(close, 20, nbdevup=-1).upperband", "-1", ["nbdevup"]),
    # syntax
    ("close +", "", ["ends too early"]),
    ("(close + open", "", ["ends too early", "')'"]),
    ("close + open)", ")", ["unmatched ')'"]),
    ("close open", "open", ["unexpected name 'open'"]),
    ("close + * open", "*", ["unexpected '*'"]),
    ("ema(close 20)", "20", ["unexpected number '20'", "',' or ')'"]),
    ("close = open", "=", ["'='", "'=='"]),
    ("2 ^ 3", "^", ["'**'"]),
    ("close & open", "&", ["'&' is not allowed", "'and'"]),
    ("close % 2", "%", ["'%' is not allowed"]),
    ("close // 2", "//", ["floor division"]),
    ("1abc + close", "1abc", ["malformed number"]),
    ("1e999 * close", "1e999", ["too large"]),
    ("close × 2", "×", ["unexpected character"]),
    ("and close", "and", ["needs something on its left"]),
    ("", "", ["empty"]),
    # forbidden constructs
    ("close.__class__", ".__class__", ["attribute access", "not allowed"]),
    ("close.shift", ".shift", ["attribute access"]),
    ("__import__('os')", "__import__", ["'__import__' is not allowed"]),
    ("lambda: 1", "lambda", ["'lambda' is not allowed"]),
    ("close if 1 else open", "if", ["unexpected name 'if'"]),
    ("'abc'", "'abc'", ["string 'abc' is not allowed"]),
    ("close[0]", "[", ["'[' is not allowed", "subscripts"]),
    ("{1: 2}", "{", ["'{' is not allowed", "dicts"]),
    ("close; open", ";", ["';' is not allowed", "one expression"]),
    ("2 ** 1000", "1000", ["exponent '1000' is too large"]),
    ("close ** -(50 * 3)", "-(50 * 3)", ["exponent"]),
    ("(close)(1)", "(close)(", ["not a function"]),
    ("*close", "*", ["unexpected '*'"]),
])
def test_errors_point_at_the_part(text, part, words):
    err = refused(text)
    assert isinstance(err, ValueError)
    pos = text.find(part) if part else len(text)
    if part == "":
        assert err.position == len(text)
    else:
        assert err.position == pos, (err.position, pos, str(err))
        assert err.length == len(part), (err.length, str(err))
    for w in words:
        assert w in err.message, (w, err.message)
    assert err.message.startswith(err.reason) and f"at column {err.position + 1}" in err.message
    if not text:
        return
    lines = str(err).splitlines()
    assert lines[0] == err.message and lines[1] == text
    assert caret_at(err) == (err.position, err.length)


def test_caret_example_from_the_issue():
    err = refused("exec(close)")
    assert str(err).splitlines() == [err.message, "exec(close)", "^^^^"]
    assert err.message.startswith("unknown function 'exec' at column 1")
    err = refused("ema(close, 20) + rsi(close, 1)")
    assert caret_at(err) == (28, 1)


def test_error_is_picklable_and_a_value_error():
    err = refused("ema(close, 0)")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.position == err.position
    assert isinstance(err, ValueError)


def test_limits():
    ok = "(" * MAX_DEPTH + "close" + ")" * MAX_DEPTH
    assert parse(ok).root.key == "close"
    err = refused("(" * (MAX_DEPTH + 1) + "close" + ")" * (MAX_DEPTH + 1))
    assert err.position == MAX_DEPTH and "nesting" in err.message
    err = refused("-" * 60 + "close")
    assert err.position == MAX_DEPTH and "nesting" in err.message
    err = refused("ema(" * 60 + "close" + ", 3)" * 60)
    assert "nesting" in err.message
    err = refused("2" + " ** 2" * 60)
    assert "nesting" in err.message
    text = "close + " * 70 + "1"
    assert len(text) > MAX_LENGTH
    err = refused(text)
    assert err.position == MAX_LENGTH and "too long" in err.message
    shown, caret = str(err).splitlines()[1:]
    assert len(shown) < 120  # an excerpt around the position, not the whole text
    col = caret_at(err)[0]
    assert shown.startswith("...") and shown[col:col + 4] == text[MAX_LENGTH:MAX_LENGTH + 4]
    parse("close + " * 62 + "1")  # just under the limit
    # long flat chains do not recurse deeply
    evaluate("+".join(["low"] * 120), make_bars(20))


# --------------------------------------------------------------------------------------------
# Escape attempts: refused, nothing executed

ESCAPES = [
    "__import__('os').system('x')",
    "open('/etc/passwd')",
    "close.__class__.__mro__",
    "().__class__",
    "[c for c in close]",
    "lambda: 1",
    "'a' * 10**9",
    "2 ** 10 ** 10",
    "getattr(close, 'x')",
    "globals()",
    "eval('1')",
    "exec('import os')",
    "compile('1', 'x', 'eval')",
    "close.__class__.__base__.__subclasses__()",
    "macd(close).__class__",
    "ema(close, 3).__globals__",
    "__builtins__",
    "ema.__code__",
    "breakpoint()",
    "(lambda: 1)()",
    "import os",
    "close\n__import__('os')",
    "f'{close}'",
    "b'x'",
    "close if True else 0",
    "x := 1",
    "*close",
    "ema(*[close, 3])",
    "ema(**{'timeperiod': 3})",
    "9 ** 9 ** 9 ** 9",
    "(" * 200 + "1" + ")" * 200,
    "-" * 499 + "1",
    "1+" * 300 + "1",
]


@pytest.fixture
def tripwires(monkeypatch):
    """Anything that would run code or touch the system fails the test loudly (not with a
    FormulaError), and so does any indicator computation."""
    fired = []

    def trip(name):
        def f(*a, **k):
            fired.append(name)
            raise AssertionError(f"{name} was called")
        return f

    for name in ("eval", "exec", "compile", "open", "breakpoint"):
        monkeypatch.setattr(builtins, name, trip(name))
    monkeypatch.setattr(os, "system", trip("os.system"))
    monkeypatch.setattr(subprocess, "Popen", trip("Popen"))
    monkeypatch.setattr(registry, "_compute", trip("indicator computation"))
    return fired


@pytest.mark.parametrize("text", ESCAPES)
def test_escape_attempts_are_refused_and_nothing_runs(text, bars, tripwires):
    with pytest.raises(FormulaError) as ei:
        evaluate(text, bars)
    err = ei.value
    assert tripwires == []
    assert 0 <= err.position <= len(text)
    assert err.reason and "\n" in str(err)


def test_escape_carets():
    cases = {
        "__import__('os').system('x')": (0, "__import__"),
        "open('/etc/passwd')": (0, "open"),
        "close.__class__.__mro__": (5, ".__class__"),
        "().__class__": (0, "()"),
        "[c for c in close]": (0, "["),
        "lambda: 1": (0, "lambda"),
        "'a' * 10**9": (0, "'a'"),
        "2 ** 10 ** 10": (5, "10 ** 10"),
        "getattr(close, 'x')": (0, "getattr"),
        "globals()": (0, "globals"),
        "eval('1')": (0, "eval"),
    }
    for text, (pos, part) in cases.items():
        err = refused(text)
        assert (err.position, err.length) == (pos, len(part)), (text, str(err))
        assert repr(part) in err.message or part in err.message, err.message


def test_the_module_never_runs_python_code():
    """Static guard: formula.py calls no eval/exec/compile/__import__/getattr/setattr, imports
    no parser (ast, tokenize) and nothing of the application but the model."""
    src = Path(__file__).parents[1] / "indicators" / "formula.py"
    tree = ast.parse(src.read_text())
    banned_calls = {"eval", "exec", "compile", "__import__", "getattr", "setattr", "globals",
                    "locals", "vars", "open"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in banned_calls, node.func.id
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for m in mods:
                top = m.split(".")[0]
                assert top in {"__future__", "builtins", "copy", "difflib", "keyword", "math",
                               "dataclasses", "typing", "numpy", "pandas", "indicators",
                               "tradeflow"}, m
                assert top != "tradeflow" or m == "tradeflow.model", m
                assert top != "indicators" or m == "indicators.registry", m


def test_series_whitelist():
    assert set(SERIES) == {"open", "high", "low", "close", "volume", "ask_volume",
                           "bid_volume", "delta", "trades", "open_interest", "hl2", "hlc3",
                           "ohlc4"}
    for name in SERIES:
        assert parse(name).series == (name,)
