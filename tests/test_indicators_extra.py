"""Indicators TA-Lib lacks (``indicators.ta.extra``): a hand-worked example of each on a tiny
input (the arithmetic in the comments), agreement with a second, independent loop-based
implementation written here from the published formula (pandas-ta does not install in this
environment), warm-up lengths, no look-ahead (a prefix of the bars gives the same values), and
parameters validated by the registry."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

pytest.importorskip("talib")

import indicators.ta.extra as extra  # noqa: E402,F401  (registers)
from indicators.registry import IndicatorError, compute, get  # noqa: E402

NAN = np.nan


def make_bars(n: int = 600, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) + np.abs(rng.normal(0, 0.3, n))
    low = np.minimum(open_, close) - np.abs(rng.normal(0, 0.3, n))
    # some unchanged closes, so streaks and ranks see ties
    tie = np.flatnonzero(rng.random(n) < 0.05)
    tie = tie[tie > 0]
    close[tie] = close[tie - 1]
    high = np.maximum(high, close)
    low = np.minimum(low, close)
    volume = np.round(rng.lognormal(6, 0.8, n))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume})


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return make_bars()


def frame(**cols) -> pd.DataFrame:
    return pd.DataFrame({k: np.asarray(v, dtype="float64") for k, v in cols.items()})


def first_valid(a) -> int:
    ok = np.flatnonzero(~np.isnan(np.asarray(a, dtype="float64")))
    return int(ok[0]) if ok.size else len(a)


# --------------------------------------------------------------------------------------------
# Loop-based references, straight from the published formulas


def ref_hh(x, n):
    return [max(x[t - n + 1:t + 1]) if t >= n - 1 else NAN for t in range(len(x))]


def ref_ll(x, n):
    return [min(x[t - n + 1:t + 1]) if t >= n - 1 else NAN for t in range(len(x))]


def ref_tr(h, l, c, first_hl=False):
    out = []
    for t in range(len(h)):
        if t == 0:
            out.append(h[0] - l[0] if first_hl else NAN)
        else:
            out.append(max(h[t] - l[t], abs(h[t] - c[t - 1]), abs(l[t] - c[t - 1])))
    return out


def ref_wilder(x, n, start):
    """Wilder's smoothing of x[start:], seeded with the mean of its first n values."""
    out = [NAN] * len(x)
    if len(x) - start >= n:
        avg = sum(x[start:start + n]) / n
        out[start + n - 1] = avg
        for t in range(start + n, len(x)):
            avg = (avg * (n - 1) + x[t]) / n
            out[t] = avg
    return out


def ref_ema(x, n):
    out = [NAN] * len(x)
    if len(x) >= n:
        e = sum(x[:n]) / n
        out[n - 1] = e
        a = 2.0 / (n + 1)
        for t in range(n, len(x)):
            e = a * x[t] + (1 - a) * e
            out[t] = e
    return out


def ref_rsi(x, n):
    """Wilder's RSI, first value at bar n (the average of the first n changes)."""
    gains = [NAN] + [max(x[t] - x[t - 1], 0.0) for t in range(1, len(x))]
    losses = [NAN] + [max(x[t - 1] - x[t], 0.0) for t in range(1, len(x))]
    ag, al = ref_wilder(gains, n, 1), ref_wilder(losses, n, 1)
    out = []
    for g, lo in zip(ag, al):
        if math.isnan(g):
            out.append(NAN)
        elif g + lo == 0:
            out.append(0.0)
        else:
            out.append(100.0 * g / (g + lo))
    return out


def ref_alma(x, n, offset, sigma):
    m = offset * (n - 1)
    s = n / sigma
    out = []
    for t in range(len(x)):
        if t < n - 1:
            out.append(NAN)
            continue
        num = den = 0.0
        for i in range(n):
            w = math.exp(-((i - m) ** 2) / (2 * s * s))
            num += w * x[t - n + 1 + i]
            den += w
        out.append(num / den)
    return out


def ref_fisher(h, l, n):
    """TradingView's Fisher Transform script, line by line (``None`` for Pine's na)."""
    hl2 = [(a + b) / 2 for a, b in zip(h, l)]
    values, fishes = [], []
    for t in range(len(hl2)):
        prev_v = values[-1] if values and values[-1] is not None else 0.0
        prev_f = fishes[-1] if fishes and fishes[-1] is not None else 0.0
        if t < n - 1:
            values.append(None)
            fishes.append(None)
            continue
        hi, lo = max(hl2[t - n + 1:t + 1]), min(hl2[t - n + 1:t + 1])
        if hi == lo:  # division by zero: na
            values.append(None)
            fishes.append(None)
            continue
        v = 0.66 * ((hl2[t] - lo) / (hi - lo) - 0.5) + 0.67 * prev_v
        v = 0.999 if v > 0.99 else -0.999 if v < -0.99 else v
        f = 0.5 * math.log((1 + v) / (1 - v)) + 0.5 * prev_f
        values.append(v)
        fishes.append(f)
    fish = [NAN if f is None else f for f in fishes]
    return fish, [NAN] + fish[:-1]


def ref_crsi(c, n_rsi, n_streak, n_rank):
    streak = [0.0]
    for t in range(1, len(c)):
        s = streak[-1]
        if c[t] > c[t - 1]:
            streak.append(s + 1 if s > 0 else 1.0)
        elif c[t] < c[t - 1]:
            streak.append(s - 1 if s < 0 else -1.0)
        else:
            streak.append(0.0)
    roc = [NAN] + [100 * (c[t] - c[t - 1]) / c[t - 1] for t in range(1, len(c))]
    prank = []
    for t in range(len(c)):
        prev = roc[t - n_rank:t] if t >= n_rank else []
        if len(prev) < n_rank or any(math.isnan(p) for p in prev) or math.isnan(roc[t]):
            prank.append(NAN)
        else:
            prank.append(100.0 * sum(p <= roc[t] for p in prev) / n_rank)
    r1, r2 = ref_rsi(c, n_rsi), ref_rsi(streak, n_streak)
    return [(a + b + p) / 3 for a, b, p in zip(r1, r2, prank)]


def ref_ema_from(x, n):
    """EMA seeded with the SMA of the first n values after any leading NaNs."""
    start = next((i for i, v in enumerate(x) if not math.isnan(v)), len(x))
    return [NAN] * start + ref_ema(x[start:], n)


def ref_sma(x, n):
    return [sum(x[t - n + 1:t + 1]) / n if t >= n - 1 else NAN for t in range(len(x))]


def ref_pstdev(x, n):
    out = []
    for t in range(len(x)):
        if t < n - 1:
            out.append(NAN)
            continue
        w = x[t - n + 1:t + 1]
        m = sum(w) / n
        out.append(math.sqrt(sum((v - m) ** 2 for v in w) / n))
    return out


def ref_linreg(x, n):
    """The least-squares line through the last n values, evaluated at the last one."""
    out = []
    for t in range(len(x)):
        w = x[t - n + 1:t + 1] if t >= n - 1 else []
        if len(w) < n or any(math.isnan(v) for v in w):
            out.append(NAN)
            continue
        xs = range(n)
        mx, my = (n - 1) / 2, sum(w) / n
        slope = sum((i - mx) * (v - my) for i, v in zip(xs, w)) / sum((i - mx) ** 2 for i in xs)
        out.append(my + slope * (n - 1 - mx))
    return out


def ref_squeeze(h, l, c, bb, bbm, kc, kcm):
    basis, dev = ref_sma(c, bb), ref_pstdev(c, bb)
    ma, rma = ref_sma(c, kc), ref_sma(ref_tr(h, l, c), kc)
    sqz = []
    for t in range(len(c)):
        ub, lb = basis[t] + bbm * dev[t], basis[t] - bbm * dev[t]
        uk, lk = ma[t] + kcm * rma[t], ma[t] - kcm * rma[t]
        if any(math.isnan(v) for v in (ub, uk)):
            sqz.append(NAN)
        elif lb > lk and ub < uk:
            sqz.append(1.0)
        elif lb < lk and ub > uk:
            sqz.append(-1.0)
        else:
            sqz.append(0.0)
    hh, ll = ref_hh(h, kc), ref_ll(l, kc)
    x = [c[t] - ((hh[t] + ll[t]) / 2 + ma[t]) / 2 for t in range(len(c))]
    return ref_linreg(x, kc), sqz


def ref_kvo(h, l, c, v, fast, slow, sig):
    hlc3 = [(a + b + d) / 3 for a, b, d in zip(h, l, c)]
    sv = [NAN] + [v[t] if hlc3[t] - hlc3[t - 1] >= 0 else -v[t] for t in range(1, len(c))]
    kvo = [a - b for a, b in zip(ref_ema_from(sv, fast), ref_ema_from(sv, slow))]
    return kvo, ref_ema_from(kvo, sig)


def ref_pivots(o, h, l, c, method):
    rows = [[NAN] * 7]
    for t in range(1, len(c)):
        O, H, L, C = o[t - 1], h[t - 1], l[t - 1], c[t - 1]
        R = H - L
        if method == "demark":
            X = H + 2 * L + C if C < O else 2 * H + L + C if C > O else H + L + 2 * C
            rows.append([X / 4, X / 2 - L, NAN, NAN, X / 2 - H, NAN, NAN])
            continue
        P = (H + L + 2 * C) / 4 if method == "woodie" else (H + L + C) / 3
        if method == "fibonacci":
            rows.append([P, P + .382 * R, P + .618 * R, P + R, P - .382 * R, P - .618 * R, P - R])
        elif method == "camarilla":
            rows.append([P, C + 1.1 * R / 12, C + 1.1 * R / 6, C + 1.1 * R / 4,
                         C - 1.1 * R / 12, C - 1.1 * R / 6, C - 1.1 * R / 4])
        else:
            rows.append([P, 2 * P - L, P + R, H + 2 * (P - L), 2 * P - H, P - R,
                         L - 2 * (H - P)])
    return [list(col) for col in zip(*rows)]


# --------------------------------------------------------------------------------------------
# The records


def test_records_group_overlay_levels_meta():
    expect = {
        "ALMA": ("Overlap Studies", True, ()),
        "ICHIMOKU": ("Overlap Studies", True, ()),
        "KELTNER": ("Overlap Studies", True, ()),
        "CHANDELIER": ("Volatility Indicators", True, ()),
        "CHOP": ("Volatility Indicators", False, (38.2, 61.8)),
        "ELDER_RAY": ("Momentum Indicators", False, (0.0,)),
        "FISHER": ("Momentum Indicators", False, (-1.5, -0.75, 0.0, 0.75, 1.5)),
        "CRSI": ("Momentum Indicators", False, (10.0, 90.0)),
        "SQUEEZE": ("Momentum Indicators", False, (0.0,)),
        "KVO": ("Volume Indicators", False, (0.0,)),
        "PIVOTS": ("Overlap Studies", True, ()),
    }
    for name, (group, overlay, levels) in expect.items():
        ind = get(name)
        assert (ind.group, ind.overlay, tuple(ind.levels)) == (group, overlay, levels), name
        assert ind.source == "python"
        assert all(isinstance(x, float) for x in ind.levels), name
        doc = ind.function.__doc__
        assert "Source:" in doc and "Warm-up" in doc, name
    ich = get("ICHIMOKU")
    assert ich.columns == ("ICHIMOKU_tenkan", "ICHIMOKU_kijun", "ICHIMOKU_senkou_a",
                           "ICHIMOKU_senkou_b", "ICHIMOKU_chikou")
    assert ich.meta["look_ahead"] is False
    assert ich.meta["display_shift"] == {"senkou_a": "displacement - 1",
                                         "senkou_b": "displacement - 1",
                                         "chikou": "-(displacement - 1)"}


# --------------------------------------------------------------------------------------------
# Hand-worked examples


def test_alma_by_hand():
    # N=3, offset=0.5, sigma=3: m = 0.5*2 = 1, s = 3/3 = 1,
    # w = [exp(-(0-1)^2/2), exp(0), exp(-(2-1)^2/2)] = [e^-0.5, 1, e^-0.5] = [0.60653, 1, 0.60653]
    # bar 2 (x = 1, 2, 4): (0.60653*1 + 1*2 + 0.60653*4) / 2.21306 = 5.03265/2.21306 = 2.27406
    # bar 3 (x = 2, 4, 7): (0.60653*2 + 4 + 0.60653*7) / 2.21306 = 9.45877/2.21306 = 4.27406
    e = math.exp(-0.5)
    out = compute("ALMA", frame(close=[1, 2, 4, 7]), timeperiod=3, offset=0.5, sigma=3.0)
    assert_allclose(out["ALMA"], [NAN, NAN, (e * 1 + 2 + e * 4) / (1 + 2 * e),
                                  (e * 2 + 4 + e * 7) / (1 + 2 * e)], rtol=1e-12)
    assert_allclose(out["ALMA"][2:], [2.27406, 4.27406], atol=1e-5)


HAND = frame(high=[10, 12, 11, 13], low=[8, 9, 7, 10], close=[9, 11, 8, 12])


def test_ichimoku_by_hand():
    b = frame(high=[10, 12, 11, 15, 14], low=[8, 9, 7, 12, 13], close=[9, 11, 8, 14, 13])
    out = compute("ICHIMOKU", b, tenkan=2, kijun=3, senkou=4, displacement=26)
    # tenkan(2): bar1 (12+8)/2=10, bar2 (12+7)/2=9.5, bar3 (15+7)/2=11, bar4 (15+12)/2=13.5
    assert_allclose(out["ICHIMOKU_tenkan"], [NAN, 10, 9.5, 11, 13.5])
    # kijun(3): bar2 (12+7)/2=9.5, bar3 (15+7)/2=11, bar4 (max 11,15,14=15 + min 7,12,13=7)/2=11
    assert_allclose(out["ICHIMOKU_kijun"], [NAN, NAN, 9.5, 11, 11])
    # senkou A = (tenkan+kijun)/2 at the bar computed: (9.5+9.5)/2, (11+11)/2, (13.5+11)/2
    assert_allclose(out["ICHIMOKU_senkou_a"], [NAN, NAN, 9.5, 11, 12.25])
    # senkou B(4): bar3 (15+7)/2=11, bar4 (max 12,11,15,14=15 + min 9,7,12,13=7)/2=11
    assert_allclose(out["ICHIMOKU_senkou_b"], [NAN, NAN, NAN, 11, 11])
    # chikou: the close, at its own bar (the chart draws it displacement-1 bars back)
    assert_allclose(out["ICHIMOKU_chikou"], [9, 11, 8, 14, 13])


def test_chandelier_by_hand():
    out = compute("CHANDELIER", HAND, timeperiod=2, multiplier=1.0)
    # TR: bar1 max(12-9, |12-9|, |9-9|) = 3, bar2 max(11-7, |11-11|, |7-11|) = 4,
    #     bar3 max(13-10, |13-8|, |10-8|) = 5
    # ATR(2): bar2 (3+4)/2 = 3.5, bar3 Wilder (3.5*1 + 5)/2 = 4.25
    # long = HH(2) - ATR: bar2 12-3.5 = 8.5, bar3 13-4.25 = 8.75
    # short = LL(2) + ATR: bar2 7+3.5 = 10.5, bar3 7+4.25 = 11.25
    assert_allclose(out["CHANDELIER_long"], [NAN, NAN, 8.5, 8.75])
    assert_allclose(out["CHANDELIER_short"], [NAN, NAN, 10.5, 11.25])


def test_keltner_by_hand():
    out = compute("KELTNER", HAND, timeperiod=2, atrperiod=2, multiplier=1.0)
    # EMA(close, 2): bar1 (9+11)/2 = 10, bar2 10 + 2/3*(8-10) = 8.6667,
    #                bar3 8.6667 + 2/3*(12-8.6667) = 10.8889
    # ATR(2) (as in the Chandelier example): bar2 3.5, bar3 4.25
    # upper: bar2 8.6667+3.5 = 12.1667, bar3 10.8889+4.25 = 15.1389; lower: 5.1667, 6.6389
    ema = np.array([NAN, 10, 26 / 3, 26 / 3 + 2 / 3 * (12 - 26 / 3)])
    atr = np.array([NAN, NAN, 3.5, 4.25])
    assert_allclose(out["KELTNER_middleband"], ema, rtol=1e-12)
    assert_allclose(out["KELTNER_upperband"], ema + atr, rtol=1e-12)
    assert_allclose(out["KELTNER_lowerband"], ema - atr, rtol=1e-12)
    assert_allclose(out["KELTNER_upperband"][2:], [12.16667, 15.13889], atol=1e-5)


def test_chop_by_hand():
    out = compute("CHOP", HAND, timeperiod=2)
    # TR: bar0 10-8 = 2 (no previous close), bar1 3, bar2 4, bar3 5
    # bar1: sum 2+3 = 5, range 12-8 = 4 -> 100*log10(5/4)/log10(2) = 100*log2(1.25) = 32.193
    # bar2: sum 3+4 = 7, range 12-7 = 5 -> 100*log2(1.4) = 48.543
    # bar3: sum 4+5 = 9, range 13-7 = 6 -> 100*log2(1.5) = 58.496
    assert_allclose(out["CHOP"], [NAN, 100 * math.log2(1.25), 100 * math.log2(1.4),
                                  100 * math.log2(1.5)], rtol=1e-12)
    assert_allclose(out["CHOP"][1:], [32.193, 48.543, 58.496], atol=1e-3)
    # a flat window has no range: NaN, not inf
    flat = compute("CHOP", frame(high=[5, 5, 5], low=[5, 5, 5], close=[5, 5, 5]), timeperiod=2)
    assert np.isnan(flat["CHOP"]).all()


def test_elder_ray_by_hand():
    out = compute("ELDER_RAY", HAND, timeperiod=2)
    # EMA(2), alpha = 2/3: bar1 seed (9+11)/2 = 10, bar2 10 + 2/3*(8-10) = 8.6667,
    #                       bar3 8.6667 + 2/3*(12-8.6667) = 10.8889
    ema = [NAN, 10, 26 / 3, 26 / 3 + 2 / 3 * (12 - 26 / 3)]
    # bull = high - EMA: 12-10 = 2, 11-8.6667 = 2.3333, 13-10.8889 = 2.1111
    # bear = low - EMA:  9-10 = -1, 7-8.6667 = -1.6667, 10-10.8889 = -0.8889
    assert_allclose(out["ELDER_RAY_bull"], np.array([10, 12, 11, 13]) - ema, rtol=1e-12)
    assert_allclose(out["ELDER_RAY_bear"], np.array([8, 9, 7, 10]) - ema, rtol=1e-12)
    assert_allclose(out["ELDER_RAY_bull"][1:], [2, 2.33333, 2.11111], atol=1e-5)


def test_fisher_by_hand():
    b = frame(high=[10, 12, 11], low=[8, 10, 9])
    out = compute("FISHER", b, timeperiod=2)
    # hl2 = [9, 11, 10]
    # bar1: window [9, 11]: (11-9)/(11-9) - 0.5 = 0.5 -> v = 0.66*0.5 + 0.67*0 = 0.33
    #       fisher = 0.5*ln(1.33/0.67) + 0.5*0 = 0.5*ln(1.98507) = 0.5*0.68566 = 0.34283
    # bar2: window [11, 10]: (10-10)/(11-10) - 0.5 = -0.5 -> v = -0.33 + 0.67*0.33 = -0.1089
    #       fisher = 0.5*ln(0.8911/1.1089) + 0.5*0.34283 = 0.5*ln(0.80359) + 0.17141
    #              = -0.10933 + 0.17141 = 0.06208
    f1 = 0.5 * math.log(1.33 / 0.67)
    f2 = 0.5 * math.log(0.8911 / 1.1089) + 0.5 * f1
    assert_allclose(out["FISHER_fisher"], [NAN, f1, f2], rtol=1e-12)
    assert_allclose(out["FISHER_fisher"][1:], [0.34283, 0.06208], atol=1e-5)
    assert_allclose(out["FISHER_trigger"], [NAN, NAN, f1], rtol=1e-12)  # fisher one bar back


def test_crsi_by_hand():
    c = [10, 11, 12, 11, 13]
    out = compute("CRSI", frame(close=c), rsi_period=2, streak_period=2, rank_period=2)
    # RSI(close, 2), changes +1 +1 -1 +2: bar2 gain 1 loss 0 -> 100;
    #   bar3 gain (1+0)/2 = .5, loss (0+1)/2 = .5 -> 50; bar4 gain (.5+2)/2 = 1.25,
    #   loss .25 -> RS 5 -> 100 - 100/6 = 83.333
    # streak = [0, 1, 2, -1, 1], changes +1 +1 -3 +2: bar2 100; bar3 gain .5 loss 1.5 ->
    #   RS 1/3 -> 25; bar4 gain 1.25 loss .75 -> RS 5/3 -> 62.5
    # ROC(1) = [nan, 10, 9.0909, -8.3333, 18.1818]; percent rank over the previous 2:
    #   bar3: none of [10, 9.09] <= -8.33 -> 0; bar4: both of [9.09, -8.33] <= 18.18 -> 100
    # CRSI: bar3 (50+25+0)/3 = 25; bar4 (83.333+62.5+100)/3 = 81.944
    assert_allclose(out["CRSI"], [NAN, NAN, NAN, 25, (100 - 100 / 6 + 62.5 + 100) / 3],
                    rtol=1e-12)
    assert out["CRSI"].iloc[4] == pytest.approx(81.944, abs=1e-3)


def test_squeeze_by_hand():
    # bb = kc = 2, bb_mult = 1: SMA(close) = [-, 10, 9.5, 10], population stdev = [-, 1, 1.5, 2]
    #   BB: bar1 [9, 11], bar2 [8, 11], bar3 [8, 12]
    # TR = [-, 3, 4, 5] -> SMA(TR, 2) = [-, -, 3.5, 4.5]
    #   kc_mult 1:   KC bar2 9.5 +- 3.5 = [6, 13], bar3 10 +- 4.5 = [5.5, 14.5]: BB inside -> 1
    #   kc_mult 0.2: KC bar2 9.5 +- 0.7 = [8.8, 10.2], bar3 10 +- 0.9 = [9.1, 10.9]: outside -> -1
    # momentum: x = close - ((HH2 + LL2)/2 + SMA2)/2:
    #   bar1 11 - ((12+8)/2 + 10)/2 = 1, bar2 8 - ((12+7)/2 + 9.5)/2 = -1.5,
    #   bar3 12 - ((13+7)/2 + 10)/2 = 2; a 2-point regression line ends on the last point
    on = compute("SQUEEZE", HAND, bb_period=2, bb_mult=1.0, kc_period=2, kc_mult=1.0)
    assert_allclose(on["SQUEEZE_squeeze"], [NAN, NAN, 1, 1])
    assert_allclose(on["SQUEEZE_momentum"], [NAN, NAN, -1.5, 2], atol=1e-9)
    off = compute("SQUEEZE", HAND, bb_period=2, bb_mult=1.0, kc_period=2, kc_mult=0.2)
    assert_allclose(off["SQUEEZE_squeeze"], [NAN, NAN, -1, -1])


def test_kvo_by_hand():
    b = frame(high=[10, 12, 11, 13, 13], low=[8, 9, 7, 10, 10], close=[9, 11, 8, 12, 12],
              volume=[100, 200, 300, 400, 500])
    out = compute("KVO", b, fastperiod=2, slowperiod=3, signalperiod=2)
    # hlc3 = [9, 10.667, 8.667, 11.667, 11.667] -> sv = [-, +200, -300, +400, +500 (held)]
    # EMA2(sv): bar2 seed (200-300)/2 = -50, bar3 -50 + 2/3*(400+50) = 250,
    #           bar4 250 + 2/3*(500-250) = 416.667
    # EMA3(sv): bar3 seed (200-300+400)/3 = 100, bar4 100 + 1/2*(500-100) = 300
    # kvo: bar3 250-100 = 150, bar4 416.667-300 = 116.667; signal EMA2: bar4 (150+116.667)/2
    assert_allclose(out["KVO_kvo"], [NAN, NAN, NAN, 150, 1250 / 3 - 300], rtol=1e-12)
    assert_allclose(out["KVO_signal"], [NAN, NAN, NAN, NAN, (150 + 1250 / 3 - 300) / 2],
                    rtol=1e-12)


def test_pivots_by_hand():
    b = frame(open=[9, 10, 11], high=[10, 12, 11], low=[8, 9, 7], close=[9, 11, 8])
    cols = ["pp", "r1", "r2", "r3", "s1", "s2", "s3"]

    def row(method, i):
        out = compute("PIVOTS", b, method=method)
        return dict(zip(cols, out.iloc[i].tolist()))

    # from bar0 (O 9, H 10, L 8, C 9, range 2): P = 27/3 = 9; R1 = 18-8 = 10; S1 = 18-10 = 8;
    # R2 = 9+2 = 11; S2 = 9-2 = 7; R3 = 10 + 2*(9-8) = 12; S3 = 8 - 2*(10-9) = 6
    assert row("Standard", 0) == pytest.approx(dict.fromkeys(cols, NAN), nan_ok=True)
    assert row("standard", 1) == pytest.approx(dict(pp=9, r1=10, r2=11, r3=12, s1=8, s2=7, s3=6))
    # Fibonacci: 9 +- 0.382*2, 0.618*2, 2
    assert row(1, 1) == pytest.approx(dict(pp=9, r1=9.764, r2=10.236, r3=11, s1=8.236,
                                           s2=7.764, s3=7))
    # Camarilla: C = 9, 1.1*2 = 2.2: 9 +- 2.2/12 = 0.18333, 2.2/6 = 0.36667, 2.2/4 = 0.55
    assert row("Camarilla", 1) == pytest.approx(dict(pp=9, r1=9.18333, r2=9.36667, r3=9.55,
                                                     s1=8.81667, s2=8.63333, s3=8.45),
                                                abs=1e-5)
    # Woodie from bar1 (O 10, H 12, L 9, C 11, range 3): P = (12+9+22)/4 = 10.75;
    # R1 = 21.5-9 = 12.5; S1 = 21.5-12 = 9.5; R2 = 13.75; S2 = 7.75;
    # R3 = 12 + 2*(10.75-9) = 15.5; S3 = 9 - 2*(12-10.75) = 6.5
    assert row("Woodie", 2) == pytest.approx(dict(pp=10.75, r1=12.5, r2=13.75, r3=15.5,
                                                  s1=9.5, s2=7.75, s3=6.5))
    # DeMark from bar1: C 11 > O 10 -> X = 2*12 + 9 + 11 = 44; P = 11, R1 = 22-9 = 13,
    # S1 = 22-12 = 10; from bar0: C = O -> X = 10 + 8 + 18 = 36; P = 9, R1 = 10, S1 = 8
    assert row("DeMark", 2) == pytest.approx(dict(pp=11, r1=13, r2=NAN, r3=NAN, s1=10,
                                                  s2=NAN, s3=NAN), nan_ok=True)
    assert row("DeMark", 1) == pytest.approx(dict(pp=9, r1=10, r2=NAN, r3=NAN, s1=8,
                                                  s2=NAN, s3=NAN), nan_ok=True)


# --------------------------------------------------------------------------------------------
# A second implementation


def _cols(bars, *names):
    return [bars[n].tolist() for n in names]


CASES = [
    ("ALMA", {"timeperiod": 9, "offset": 0.85, "sigma": 6.0},
     lambda b, p: [ref_alma(b["close"].tolist(), 9, 0.85, 6.0)]),
    ("ALMA", {"timeperiod": 20, "offset": 0.3, "sigma": 2.5},
     lambda b, p: [ref_alma(b["close"].tolist(), 20, 0.3, 2.5)]),
    ("ICHIMOKU", {},
     lambda b, p: (lambda h, l, c: [
         [(a + d) / 2 for a, d in zip(ref_hh(h, 9), ref_ll(l, 9))],
         [(a + d) / 2 for a, d in zip(ref_hh(h, 26), ref_ll(l, 26))],
         [((a + d) / 2 + (e + f) / 2) / 2 for a, d, e, f in
          zip(ref_hh(h, 9), ref_ll(l, 9), ref_hh(h, 26), ref_ll(l, 26))],
         [(a + d) / 2 for a, d in zip(ref_hh(h, 52), ref_ll(l, 52))],
         c])(*_cols(b, "high", "low", "close"))),
    ("KELTNER", {},
     lambda b, p: (lambda h, l, c: (lambda m, a: [
         [x + 2 * y for x, y in zip(m, a)], m, [x - 2 * y for x, y in zip(m, a)]])(
             ref_ema(c, 20), ref_wilder(ref_tr(h, l, c), 10, 1)))(
                 *_cols(b, "high", "low", "close"))),
    ("CHANDELIER", {"timeperiod": 22, "multiplier": 3.0},
     lambda b, p: (lambda h, l, c: (lambda atr: [
         [x - 3 * a for x, a in zip(ref_hh(h, 22), atr)],
         [x + 3 * a for x, a in zip(ref_ll(l, 22), atr)]])(
             ref_wilder(ref_tr(h, l, c), 22, 1)))(*_cols(b, "high", "low", "close"))),
    ("CHOP", {"timeperiod": 14},
     lambda b, p: (lambda h, l, c: (lambda tr, hh, ll: [[
         100 * math.log10(sum(tr[t - 13:t + 1]) / (hh[t] - ll[t])) / math.log10(14)
         if t >= 13 else NAN for t in range(len(h))]])(
             ref_tr(h, l, c, first_hl=True), ref_hh(h, 14), ref_ll(l, 14)))(
                 *_cols(b, "high", "low", "close"))),
    ("ELDER_RAY", {"timeperiod": 13},
     lambda b, p: (lambda h, l, c: (lambda e: [
         [x - y for x, y in zip(h, e)], [x - y for x, y in zip(l, e)]])(ref_ema(c, 13)))(
             *_cols(b, "high", "low", "close"))),
    ("FISHER", {"timeperiod": 9},
     lambda b, p: list(ref_fisher(*_cols(b, "high", "low"), 9))),
    ("CRSI", {"rsi_period": 3, "streak_period": 2, "rank_period": 100},
     lambda b, p: [ref_crsi(b["close"].tolist(), 3, 2, 100)]),
    ("SQUEEZE", {},
     lambda b, p: list(ref_squeeze(*_cols(b, "high", "low", "close"), 20, 2.0, 20, 1.5))),
    ("SQUEEZE", {"bb_period": 20, "bb_mult": 1.5, "kc_period": 10, "kc_mult": 1.2},
     lambda b, p: list(ref_squeeze(*_cols(b, "high", "low", "close"), 20, 1.5, 10, 1.2))),
    ("KVO", {}, lambda b, p: list(ref_kvo(*_cols(b, "high", "low", "close", "volume"),
                                          34, 55, 13))),
] + [
    ("PIVOTS", {"method": m}, lambda b, p, m=m: ref_pivots(*_cols(b, "open", "high", "low",
                                                                  "close"), m))
    for m in ("standard", "fibonacci", "camarilla", "woodie", "demark")
]


@pytest.mark.parametrize("name,params,ref", CASES, ids=[f"{c[0]}-{i}" for i, c in
                                                         enumerate(CASES)])
def test_matches_loop_reference(bars, name, params, ref):
    out = compute(name, bars, **params)
    expected = ref(bars, params)
    assert len(expected) == out.shape[1]
    for col, exp in zip(out.columns, expected):
        got = out[col].to_numpy()
        exp = np.asarray(exp, dtype="float64")
        assert first_valid(got) == first_valid(exp), col
        assert_allclose(got, exp, rtol=1e-9, atol=1e-9, err_msg=col)


def test_fisher_flat_window_restarts_from_zero():
    # bars 1-2 have a flat hl2 window: NaN there (Pine's na); bar 3 continues from 0 (nz)
    b = frame(high=[10, 11, 11, 11, 12], low=[8, 9, 9, 9, 10])
    out = compute("FISHER", b, timeperiod=2)["FISHER_fisher"].to_numpy()
    exp, _ = ref_fisher(b["high"].tolist(), b["low"].tolist(), 2)
    assert_allclose(out, exp, rtol=1e-12)
    assert np.isnan(out[[0, 2, 3]]).all() and not np.isnan(out[[1, 4]]).any()
    # bar 4: hl2 window [10, 11]: v = 0.66*0.5 + 0.67*0 = 0.33, fisher = 0.5*ln(1.33/0.67)
    assert out[4] == pytest.approx(0.5 * math.log(1.33 / 0.67), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Warm-up, look-ahead, parameters


WARMUP = [  # name, params, {column: first valid bar}
    ("ALMA", {"timeperiod": 9}, {"ALMA": 8}),
    ("ICHIMOKU", {"tenkan": 9, "kijun": 26, "senkou": 52},
     {"ICHIMOKU_tenkan": 8, "ICHIMOKU_kijun": 25, "ICHIMOKU_senkou_a": 25,
      "ICHIMOKU_senkou_b": 51, "ICHIMOKU_chikou": 0}),
    ("ICHIMOKU", {"tenkan": 30, "kijun": 10, "senkou": 5},
     {"ICHIMOKU_tenkan": 29, "ICHIMOKU_kijun": 9, "ICHIMOKU_senkou_a": 29,
      "ICHIMOKU_senkou_b": 4, "ICHIMOKU_chikou": 0}),
    ("CHANDELIER", {"timeperiod": 22}, {"CHANDELIER_long": 22, "CHANDELIER_short": 22}),
    ("KELTNER", {}, {"KELTNER_upperband": 19, "KELTNER_middleband": 19,
                     "KELTNER_lowerband": 19}),
    ("KELTNER", {"timeperiod": 5, "atrperiod": 14}, {"KELTNER_upperband": 14,
                                                     "KELTNER_middleband": 4,
                                                     "KELTNER_lowerband": 14}),
    ("CHOP", {"timeperiod": 14}, {"CHOP": 13}),
    ("ELDER_RAY", {"timeperiod": 13}, {"ELDER_RAY_bull": 12, "ELDER_RAY_bear": 12}),
    ("FISHER", {"timeperiod": 9}, {"FISHER_fisher": 8, "FISHER_trigger": 9}),
    ("CRSI", {"rsi_period": 3, "streak_period": 2, "rank_period": 100}, {"CRSI": 101}),
    ("CRSI", {"rsi_period": 20, "streak_period": 30, "rank_period": 5}, {"CRSI": 30}),
    ("SQUEEZE", {}, {"SQUEEZE_momentum": 38, "SQUEEZE_squeeze": 20}),
    ("SQUEEZE", {"bb_period": 30, "kc_period": 10}, {"SQUEEZE_momentum": 18,
                                                     "SQUEEZE_squeeze": 29}),
    ("KVO", {}, {"KVO_kvo": 55, "KVO_signal": 67}),
    ("PIVOTS", {"method": "standard"}, {f"PIVOTS_{c}": 1 for c in
                                        ("pp", "r1", "r2", "r3", "s1", "s2", "s3")}),
]


@pytest.mark.parametrize("name,params,firsts", WARMUP)
def test_warmup(bars, name, params, firsts):
    out = compute(name, bars, **params)
    assert {c: first_valid(out[c]) for c in out.columns} == firsts
    assert not out.iloc[max(firsts.values()):].isna().any().any()


@pytest.mark.parametrize("name", sorted({c[0] for c in CASES}))
def test_no_look_ahead(bars, name):
    """A value never changes when later bars arrive: computing on a prefix gives the same."""
    full = compute(name, bars)
    for k in (1, 5, 60, 150, 333):
        part = compute(name, bars.iloc[:k])
        assert_allclose(part.to_numpy(), full.iloc[:k].to_numpy(), rtol=1e-12, atol=1e-12,
                        err_msg=f"{name} on {k} bars")


@pytest.mark.parametrize("name", sorted({c[0] for c in CASES}))
def test_short_and_empty_input(bars, name):
    for k in (0, 1, 2):
        out = compute(name, bars.iloc[:k])
        assert out.shape == (k, len(get(name).columns))


@pytest.mark.parametrize("name,params", [
    ("ALMA", {"timeperiod": 0}), ("ALMA", {"offset": 1.5}), ("ALMA", {"sigma": 0.0}),
    ("ALMA", {"timeperiod": 2.5}), ("ICHIMOKU", {"kijun": 0}), ("ICHIMOKU", {"senkou": -1}),
    ("KELTNER", {"atrperiod": 0}), ("KELTNER", {"multiplier": "2"}),
    ("CHANDELIER", {"multiplier": -1.0}), ("CHANDELIER", {"timeperiod": "22"}),
    ("CHOP", {"timeperiod": 1}), ("ELDER_RAY", {"timeperiod": 0}),
    ("FISHER", {"timeperiod": 0}), ("CRSI", {"rank_period": 0}), ("CRSI", {"bogus": 3}),
    ("SQUEEZE", {"kc_period": 1}), ("SQUEEZE", {"bb_mult": -0.5}), ("KVO", {"slowperiod": 0}),
    ("PIVOTS", {"method": "Floor-ish"}), ("PIVOTS", {"method": 7}),
])
def test_params_validated(bars, name, params):
    with pytest.raises(IndicatorError) as exc:
        compute(name, bars, **params)
    assert name in str(exc.value) and next(iter(params)) in str(exc.value)


# --------------------------------------------------------------------------------------------
# The indicators of the list that TA-Lib (0.6+) already registers: checked against the
# published definitions with the same loop references, so the registry's versions are known
# to be the ones users expect (and where they differ, how).


def ref_wma(x, n):
    out = []
    for t in range(len(x)):
        w = x[t - n + 1:t + 1] if t >= n - 1 else []
        if len(w) < n or any(math.isnan(q) for q in w):
            out.append(NAN)
        else:
            out.append(sum((i + 1) * q for i, q in enumerate(w)) / (n * (n + 1) / 2))
    return out


def ref_sum(x, n):
    return [sum(x[t - n + 1:t + 1]) if t >= n - 1 else NAN for t in range(len(x))]


def ref_supertrend(h, l, c, n, factor):
    """TradingView ``ta.supertrend`` (direction -1 up, +1 down; starts down)."""
    atr = ref_wilder(ref_tr(h, l, c), n, 1)
    st, dr = [NAN] * len(c), [NAN] * len(c)
    pu = pl = pst = None
    for t in range(len(c)):
        if math.isnan(atr[t]):
            continue
        mid = (h[t] + l[t]) / 2
        up, lo = mid + factor * atr[t], mid - factor * atr[t]
        if pl is not None:
            lo = lo if (lo > pl or c[t - 1] < pl) else pl
            up = up if (up < pu or c[t - 1] > pu) else pu
        if pst is None:
            d = 1
        elif pst == pu:
            d = -1 if c[t] > up else 1
        else:
            d = 1 if c[t] < lo else -1
        st[t], dr[t] = (lo if d == -1 else up), d
        pu, pl, pst = up, lo, st[t]
    return st, dr


def _talib_refs(b):
    H, L, C, V = _cols(b, "high", "low", "close", "volume")
    hl2 = [(p + q) / 2 for p, q in zip(H, L)]
    hlc3 = [(p + q + r) / 3 for p, q, r in zip(H, L, C)]
    tr = ref_tr(H, L, C)

    def roc(n):
        return [100 * (C[t] - C[t - n]) / C[t - n] if t >= n else NAN for t in range(len(C))]

    def s14(x):
        return [sum(x[t - 13:t + 1]) if t >= 14 else NAN for t in range(len(x))]

    lag = (30 - 1) // 2
    vp = [NAN] + [abs(H[t] - L[t - 1]) for t in range(1, len(C))]
    vm = [NAN] + [abs(L[t] - H[t - 1]) for t in range(1, len(C))]
    # TA-Lib seeds KC's ATR with the mean TR of the 10 bars ending where the EMA starts (bars
    # 10..19), not of bars 1..10 as its own ATR: same Wilder smoothing, different seed, so the
    # two converge (relative difference < 1e-6 after ~150 bars)
    kc_mid, kc_atr = ref_ema(hlc3, 20), ref_wilder(tr, 10, 10)
    hh, ll = ref_hh(H, 20), ref_ll(L, 20)
    return {
        # Donchian (Richard Donchian): HH, mid, LL of N bars
        "DONCHIAN": [hh, [(p + q) / 2 for p, q in zip(hh, ll)], ll],
        # Hull MA (Alan Hull): WMA(2*WMA(n/2) - WMA(n), floor(sqrt(n)))
        "HMA": [ref_wma([2 * p - q for p, q in zip(ref_wma(C, 15), ref_wma(C, 30))], 5)],
        # VWMA (TradingView ta.vwma): sum(close*volume, n) / sum(volume, n)
        "VWMA": [[p / q for p, q in zip(ref_sum([p * q for p, q in zip(C, V)], 30),
                                        ref_sum(V, 30))]],
        # ZLEMA (Ehlers & Way): EMA(close + (close - close[lag]), n), lag = (n-1)//2
        "ZLEMA": [ref_ema_from([NAN] * lag + [2 * C[t] - C[t - lag]
                                              for t in range(lag, len(C))], 30)],
        # Awesome Oscillator (Bill Williams): SMA(hl2, 5) - SMA(hl2, 34)
        "AO": [[p - q for p, q in zip(ref_sma(hl2, 5), ref_sma(hl2, 34))]],
        # Coppock Curve (E. Coppock): WMA(ROC(14) + ROC(11), 10)
        "COPPOCK": [ref_wma([p + q for p, q in zip(roc(14), roc(11))], 10)],
        # Vortex (Botes & Siepman): sum|H - L[1]| / sum TR, sum|L - H[1]| / sum TR, 14 bars
        "VORTEX": [[p / q for p, q in zip(s14(vp), s14(tr))],
                   [p / q for p, q in zip(s14(vm), s14(tr))]],
        # Relative volume: volume / mean of the *previous* 20 volumes
        "RVOL": [[V[t] / (sum(V[t - 20:t]) / 20) if t >= 20 else NAN for t in range(len(V))]],
        # Keltner (TA-Lib's form): EMA(typical price, 20) +- 2 * ATR(10); TradingView's default
        # middle line is EMA(close, 20)
        "KC": [[m + 2 * a for m, a in zip(kc_mid, kc_atr)], kc_mid,
               [m - 2 * a for m, a in zip(kc_mid, kc_atr)]],
    }


@pytest.mark.parametrize("name", ["DONCHIAN", "HMA", "VWMA", "ZLEMA", "AO", "COPPOCK",
                                  "VORTEX", "RVOL", "KC"])
def test_talib_builtins_match_definitions(bars, name):
    params = {"HMA": {"timeperiod": 30}, "VWMA": {"timeperiod": 30}}.get(name, {})
    out = compute(name, bars, **params)
    expected = _talib_refs(bars)[name]
    for col, exp in zip(out.columns, expected):
        exp = np.asarray(exp, dtype="float64")
        assert first_valid(out[col]) == first_valid(exp), col
        assert_allclose(out[col].to_numpy(), exp, rtol=1e-9, atol=1e-9, err_msg=col)


def test_talib_supertrend_against_tradingview(bars):
    """TA-Lib's SUPERTREND is TradingView's ``ta.supertrend`` (hl2 +- factor * Wilder ATR,
    ratcheting bands) once the first flip has happened; before it TA-Lib starts in an uptrend
    where TradingView starts in a downtrend. Its ``trend`` is +1 up / -1 down (TradingView's
    direction with the sign flipped), 0 during the warm-up."""
    out = compute("SUPERTREND", bars, timeperiod=10, multiplier=3.0)
    st, dr = ref_supertrend(*_cols(bars, "high", "low", "close"), 10, 3.0)
    st, dr = np.asarray(st), np.asarray(dr)
    assert first_valid(out["SUPERTREND_supertrend"]) == first_valid(st) == 10
    flip = 11 + int(np.flatnonzero(dr[11:] != dr[10:-1])[0])
    assert_allclose(out["SUPERTREND_supertrend"][flip:], st[flip:], rtol=1e-9)
    assert_allclose(out["SUPERTREND_trend"][flip:], -dr[flip:])
    assert (out["SUPERTREND_trend"][:10] == 0).all()


def test_talib_fractal_has_no_look_ahead(bars):
    """Williams fractal (2 bars each side): TA-Lib marks it (100) at the bar where it becomes
    known, 2 bars after the swing bar, never at the swing bar itself."""
    H, L = _cols(bars, "high", "low")
    out = compute("FRACTAL", bars, leftbars=2, rightbars=2)
    hi = [100 if t >= 4 and H[t - 2] > max(H[t - 4], H[t - 3], H[t - 1], H[t]) else 0
          for t in range(len(H))]
    lo = [100 if t >= 4 and L[t - 2] < min(L[t - 4], L[t - 3], L[t - 1], L[t]) else 0
          for t in range(len(L))]
    assert_allclose(out["FRACTAL_swinghigh"], hi)
    assert_allclose(out["FRACTAL_swinglow"], lo)
    assert sum(hi) > 0 and sum(lo) > 0
    # h = 1 2 5 2 1: the swing high at bar 2 is known at bar 4
    tiny = compute("FRACTAL", frame(high=[1, 2, 5, 2, 1, 1], low=[0, 1, 4, 1, 0, 0]))
    assert tiny["FRACTAL_swinghigh"].tolist() == [0, 0, 0, 0, 100, 0]
