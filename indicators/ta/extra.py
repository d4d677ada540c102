"""Classic indicators TA-Lib lacks, registered in :data:`indicators.registry.REGISTRY`.

Each is a pure function over float64 arrays (the registry contract): one array per input, in
order, params by keyword, one array per output, as long as the bars, ``NaN`` during the warm-up.
TA-Lib computes the building blocks where its definition matches the published one (EMA seeded
with the SMA of the first ``period`` values, Wilder's RSI/ATR). No output uses a later bar than
the one it is written at: values that charts *display* shifted (Ichimoku's spans and lagging
line) are output at the bar they are computed on, and the shift is given in the record's
``meta["display_shift"]`` for the chart to apply.

Indicators TA-Lib (0.6+ C library) already has are not repeated here: SUPERTREND, DONCHIAN,
HMA, VWMA, ZLEMA, AO, COPPOCK, FRACTAL (marked at the bar where it becomes known), VORTEX and
RVOL come from :mod:`indicators.ta.talib_funcs` (``tests/test_indicators_extra.py`` checks them
against the published definitions). :func:`KELTNER` is added beside TA-Lib's ``KC``, which
centres on the EMA of the typical price rather than of the close.
"""
from __future__ import annotations

import numpy as np
import talib
from numpy.lib.stride_tricks import sliding_window_view

from indicators.registry import Param, indicator

__all__ = ["ALMA", "ICHIMOKU", "KELTNER", "CHANDELIER", "CHOP", "ELDER_RAY", "FISHER", "CRSI",
           "SQUEEZE", "KVO", "PIVOTS", "PIVOT_METHODS"]

PERIOD_MAX = 100_000


def _period(name: str, default: int, lo: int = 1, description: str = "") -> Param:
    return Param(name, default, min=lo, max=PERIOD_MAX, description=description or name)


def _rolling(x: np.ndarray, n: int, fn) -> np.ndarray:
    """``fn`` over each window of ``n`` values ending at each bar; NaN before the first full
    window (and wherever a window holds a NaN)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= n:
        out[n - 1:] = fn(sliding_window_view(x, n), axis=1)
    return out


def _midpoint(high: np.ndarray, low: np.ndarray, n: int) -> np.ndarray:
    return (_rolling(high, n, np.max) + _rolling(low, n, np.min)) / 2.0


# --------------------------------------------------------------------------------------------
# Overlap studies


@indicator(group="Overlap Studies", overlay=True, outputs=("value",), params=[
    _period("timeperiod", 9, description="Window length"),
    Param("offset", 0.85, min=0.0, max=1.0,
          description="Where the Gaussian peaks in the window (0 oldest bar, 1 newest)"),
    Param("sigma", 6.0, min=0.01, max=1000.0,
          description="Sharpness: the Gaussian's width is timeperiod / sigma"),
])
def ALMA(close, timeperiod=9, offset=0.85, sigma=6.0):
    """Arnaud Legoux Moving Average

    ``m = offset * (N - 1)``, ``s = N / sigma``, ``w_i = exp(-(i - m)^2 / (2 s^2))`` for
    ``i = 0..N-1`` (``i = 0`` the oldest bar of the window); ``ALMA = sum(w_i * x_i) / sum(w_i)``.
    Source: A. Legoux and D. Kouzis-Loukas (2009); TradingView ``ta.alma`` (floor=false).
    Warm-up: ``N - 1`` bars.
    """
    n = timeperiod
    i = np.arange(n, dtype=np.float64)
    m = offset * (n - 1)
    s = n / sigma
    w = np.exp(-((i - m) ** 2) / (2.0 * s * s))
    w /= w.sum()
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] >= n:
        out[n - 1:] = sliding_window_view(close, n) @ w
    return out


@indicator(group="Overlap Studies", overlay=True, inputs=("high", "low", "close"),
           outputs=("tenkan", "kijun", "senkou_a", "senkou_b", "chikou"),
           params=[
               _period("tenkan", 9, description="Conversion line window"),
               _period("kijun", 26, description="Base line window"),
               _period("senkou", 52, description="Leading span B window"),
               _period("displacement", 26, description="Display shift of the spans and the "
                       "lagging line (display only: does not change the values)"),
           ],
           meta={"display_shift": {"senkou_a": "displacement - 1",
                                   "senkou_b": "displacement - 1",
                                   "chikou": "-(displacement - 1)"},
                 "look_ahead": False})
def ICHIMOKU(high, low, close, tenkan=9, kijun=26, senkou=52, displacement=26):
    """Ichimoku Kinko Hyo

    ``tenkan = (HH(tenkan) + LL(tenkan)) / 2``, ``kijun = (HH(kijun) + LL(kijun)) / 2``,
    ``senkou_a = (tenkan + kijun) / 2``, ``senkou_b = (HH(senkou) + LL(senkou)) / 2``,
    ``chikou = close``. Source: Goichi Hosoda; TradingView "Ichimoku Cloud" help (lengths
    9/26/52, displacement 26).

    No look-ahead: every output is written at the bar it is computed on. Charts *display* the
    two senkou spans ``displacement - 1`` bars ahead and the chikou ``displacement - 1`` bars
    back (TradingView's offsets); ``meta["display_shift"]`` says so and the chart applies it.
    The ``displacement`` parameter only feeds that display shift. Warm-up: ``tenkan - 1``,
    ``kijun - 1``, ``max(tenkan, kijun) - 1``, ``senkou - 1`` and 0 bars.
    """
    t = _midpoint(high, low, tenkan)
    k = _midpoint(high, low, kijun)
    return t, k, (t + k) / 2.0, _midpoint(high, low, senkou), close.copy()


@indicator(group="Overlap Studies", overlay=True, inputs=("high", "low", "close"),
           outputs=("upperband", "middleband", "lowerband"), params=[
               _period("timeperiod", 20, description="EMA length of the middle line"),
               _period("atrperiod", 10, description="ATR length"),
               Param("multiplier", 2.0, min=0.0, max=100.0, description="ATR multiple"),
           ])
def KELTNER(high, low, close, timeperiod=20, atrperiod=10, multiplier=2.0):
    """Keltner Channels (EMA of the close)

    ``middle = EMA(close, N)``, ``upper/lower = middle +- multiplier * ATR(atrperiod)``, EMA and
    Wilder ATR TA-Lib's. Source: Linda Bradford Raschke's version of Chester Keltner's channel,
    as in StockCharts ChartSchool "Keltner Channels" and TradingView's "Keltner Channels" help
    (defaults 20, 10, 2). TA-Lib's own ``KC`` centres on the EMA of the *typical price* instead.
    Warm-up: middle ``N - 1`` bars, bands ``max(N - 1, atrperiod)``.
    """
    mid = talib.EMA(close, timeperiod=timeperiod)
    band = multiplier * talib.ATR(high, low, close, timeperiod=atrperiod)
    return mid + band, mid, mid - band


@indicator(group="Volatility Indicators", overlay=True, inputs=("high", "low", "close"),
           outputs=("long", "short"), params=[
               _period("timeperiod", 22, description="Window of the extreme and of the ATR"),
               Param("multiplier", 3.0, min=0.0, max=100.0, description="ATR multiple"),
           ])
def CHANDELIER(high, low, close, timeperiod=22, multiplier=3.0):
    """Chandelier Exit

    ``long = HH(high, N) - multiplier * ATR(N)``, ``short = LL(low, N) + multiplier * ATR(N)``,
    ATR being Wilder's (TA-Lib ``ATR``). Source: Chuck LeBeau; StockCharts ChartSchool
    "Chandelier Exit" (22, 3). Warm-up: ``N`` bars (the ATR's).
    """
    atr = talib.ATR(high, low, close, timeperiod=timeperiod)
    return (_rolling(high, timeperiod, np.max) - multiplier * atr,
            _rolling(low, timeperiod, np.min) + multiplier * atr)


# --------------------------------------------------------------------------------------------
# Trend / momentum


def _true_range(high, low, close):
    """True range; the first bar, with no previous close, is ``high - low`` (as TradingView's
    ``ta.tr(true)``)."""
    tr = talib.TRANGE(high, low, close)
    if tr.shape[0]:
        tr[0] = high[0] - low[0]
    return tr


@indicator(group="Volatility Indicators", inputs=("high", "low", "close"), outputs=("value",),
           levels=(38.2, 61.8), params=[_period("timeperiod", 14, lo=2, description="Window")])
def CHOP(high, low, close, timeperiod=14):
    """Choppiness Index

    ``CHOP = 100 * log10(sum(TR, N) / (HH(high, N) - LL(low, N))) / log10(N)``, TR the true
    range (first bar: ``high - low``). Source: E. W. Dreiss; TradingView "Choppiness Index"
    help (``ta.atr(1)`` summed). A window with no range gives NaN. Warm-up: ``N - 1`` bars.
    """
    n = timeperiod
    rng = _rolling(high, n, np.max) - _rolling(low, n, np.min)
    tr_sum = _rolling(_true_range(high, low, close), n, np.sum)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * np.log10(tr_sum / rng) / np.log10(n)
    out[~(rng > 0)] = np.nan
    return out


@indicator(group="Momentum Indicators", inputs=("high", "low", "close"),
           outputs=("bull", "bear"), levels=(0.0,),
           params=[_period("timeperiod", 13, description="EMA length")])
def ELDER_RAY(high, low, close, timeperiod=13):
    """Elder-Ray Index (bull and bear power)

    ``bull = high - EMA(close, N)``, ``bear = low - EMA(close, N)``, the EMA TA-Lib's (seeded
    with the SMA of the first N closes). Source: Alexander Elder, "Trading for a Living" (1993);
    StockCharts ChartSchool "Elder-Ray Index". Warm-up: ``N - 1`` bars.
    """
    ema = talib.EMA(close, timeperiod=timeperiod)
    return high - ema, low - ema


@indicator(group="Momentum Indicators", inputs=("high", "low"), outputs=("fisher", "trigger"),
           levels=(-1.5, -0.75, 0.0, 0.75, 1.5),
           params=[_period("timeperiod", 9, description="Window of the median price's range")])
def FISHER(high, low, timeperiod=9):
    """Fisher Transform

    On ``hl2 = (high + low) / 2``: ``v = clamp(0.66 * ((hl2 - LL(hl2, N)) / (HH(hl2, N) -
    LL(hl2, N)) - 0.5) + 0.67 * v[1])`` (clamped to +-0.999 past +-0.99),
    ``fisher = 0.5 * ln((1 + v) / (1 - v)) + 0.5 * fisher[1]``, ``trigger = fisher[1]``.
    Source: John F. Ehlers, "Using the Fisher Transform" (2002); TradingView's built-in
    "Fisher Transform" script, including how it treats gaps: a bar whose window has no range is
    NaN, and the next bar continues from 0 (Pine's ``nz``). Warm-up: ``N - 1`` bars (trigger
    ``N``).
    """
    n = high.shape[0]
    hl2 = (high + low) / 2.0
    hi = _rolling(hl2, timeperiod, np.max)
    lo = _rolling(hl2, timeperiod, np.min)
    fish = np.full(n, np.nan)
    trig = np.full(n, np.nan)
    prev_v = 0.0
    prev_f = 0.0
    for t in range(n):
        if t > 0:
            trig[t] = fish[t - 1]
        rng = hi[t] - lo[t]
        if not rng > 0:  # NaN window or no range: na in Pine
            prev_v = prev_f = 0.0
            continue
        v = 0.66 * ((hl2[t] - lo[t]) / rng - 0.5) + 0.67 * prev_v
        v = 0.999 if v > 0.99 else (-0.999 if v < -0.99 else v)
        f = 0.5 * np.log((1.0 + v) / (1.0 - v)) + 0.5 * prev_f
        fish[t] = f
        prev_v, prev_f = v, f
    return fish, trig


def _streak(close: np.ndarray) -> np.ndarray:
    """Consecutive up (+) / down (-) closes; 0 on an unchanged close and on the first bar."""
    out = np.zeros(close.shape[0])
    s = 0.0
    for t in range(1, close.shape[0]):
        if close[t] > close[t - 1]:
            s = s + 1.0 if s > 0 else 1.0
        elif close[t] < close[t - 1]:
            s = s - 1.0 if s < 0 else -1.0
        else:
            s = 0.0
        out[t] = s
    return out


def _percentrank(x: np.ndarray, n: int) -> np.ndarray:
    """Pine's ``ta.percentrank(x, n)``: 100 * (how many of the previous ``n`` values are <= the
    current one) / n; NaN until ``n`` previous values exist (or with a NaN among them)."""
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] > n:
        win = sliding_window_view(x, n + 1)  # previous n, then the current one
        cur = win[:, -1:]
        prev = win[:, :-1]
        res = 100.0 * (prev <= cur).sum(axis=1) / n
        bad = np.isnan(win).any(axis=1)
        res[bad] = np.nan
        out[n:] = res
    return out


@indicator(group="Momentum Indicators", outputs=("value",), levels=(10.0, 90.0), params=[
    _period("rsi_period", 3, description="RSI length of the close"),
    _period("streak_period", 2, description="RSI length of the up/down streak"),
    _period("rank_period", 100, description="Percent-rank window of the 1-bar ROC"),
])
def CRSI(close, rsi_period=3, streak_period=2, rank_period=100):
    """Connors RSI

    ``CRSI = (RSI(close, 3) + RSI(streak, 2) + PercentRank(ROC(close, 1), 100)) / 3``; the
    streak counts consecutive up (+1, +2, ...) or down (-1, -2, ...) closes, 0 when unchanged;
    the percent rank is the share of the previous 100 one-bar changes at or below the current
    one. RSI is Wilder's (TA-Lib ``RSI``). Source: Larry Connors, Connors Research (2012);
    TradingView "Connors RSI" help. Warm-up: ``max(rsi_period, streak_period,
    rank_period + 1)`` bars.
    """
    rsi = talib.RSI(close, timeperiod=rsi_period)
    srsi = talib.RSI(_streak(close), timeperiod=streak_period)
    roc = np.full(close.shape[0], np.nan)
    if close.shape[0] > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            roc[1:] = 100.0 * (close[1:] - close[:-1]) / close[:-1]
    return (rsi + srsi + _percentrank(roc, rank_period)) / 3.0


@indicator(group="Momentum Indicators", inputs=("high", "low", "close"),
           outputs=("momentum", "squeeze"), levels=(0.0,), params=[
               _period("bb_period", 20, lo=2, description="Bollinger Bands length"),
               Param("bb_mult", 2.0, min=0.0, max=100.0,
                     description="Bollinger Bands width (standard deviations)"),
               _period("kc_period", 20, lo=2, description="Keltner Channel and momentum length"),
               Param("kc_mult", 1.5, min=0.0, max=100.0,
                     description="Keltner Channel width (multiples of the true-range SMA)"),
           ])
def SQUEEZE(high, low, close, bb_period=20, bb_mult=2.0, kc_period=20, kc_mult=1.5):
    """Squeeze Momentum

    Bollinger Bands ``SMA(close, bb) +- bb_mult * stdev(close, bb)`` (population stdev, TA-Lib
    ``STDDEV``); Keltner Channel ``SMA(close, kc) +- kc_mult * SMA(TR, kc)``. ``squeeze`` is
    1 when the BB are inside the KC (squeeze on), -1 when both BB lines are outside (off), 0
    otherwise. ``momentum = LINREG(close - ((HH(high, kc) + LL(low, kc)) / 2 + SMA(close,
    kc)) / 2, kc)`` (the least-squares line's value at the bar, TA-Lib ``LINEARREG``).
    Source: John Carter, "Mastering the Trade" (TTM Squeeze); LazyBear's TradingView script
    "Squeeze Momentum Indicator" (whose BB width uses the KC multiplier, 1.5: pass
    ``bb_mult=1.5`` to reproduce it). Warm-up: momentum ``2*kc - 2`` bars; squeeze
    ``max(bb - 1, kc)`` (the true range starts at bar 1).
    """
    basis = talib.SMA(close, timeperiod=bb_period)
    dev = bb_mult * talib.STDDEV(close, timeperiod=bb_period, nbdev=1.0)
    ma = talib.SMA(close, timeperiod=kc_period)
    rangema = talib.SMA(talib.TRANGE(high, low, close), timeperiod=kc_period)
    up_bb, lo_bb = basis + dev, basis - dev
    up_kc, lo_kc = ma + kc_mult * rangema, ma - kc_mult * rangema
    sqz = np.where((lo_bb > lo_kc) & (up_bb < up_kc), 1.0,
                   np.where((lo_bb < lo_kc) & (up_bb > up_kc), -1.0, 0.0))
    sqz[np.isnan(up_bb) | np.isnan(up_kc)] = np.nan
    mid = (_midpoint(high, low, kc_period) + ma) / 2.0
    mom = talib.LINEARREG(close - mid, timeperiod=kc_period)
    return mom, sqz


@indicator(group="Volume Indicators", inputs=("high", "low", "close", "volume"),
           outputs=("kvo", "signal"), levels=(0.0,), params=[
               _period("fastperiod", 34, description="Fast EMA length"),
               _period("slowperiod", 55, description="Slow EMA length"),
               _period("signalperiod", 13, description="Signal EMA length"),
           ])
def KVO(high, low, close, volume, fastperiod=34, slowperiod=55, signalperiod=13):
    """Klinger Volume Oscillator

    ``sv = volume`` when ``hlc3`` rose or held since the previous bar, else ``-volume``;
    ``kvo = EMA(sv, fast) - EMA(sv, slow)``, ``signal = EMA(kvo, signal)``. Source: Stephen J.
    Klinger (1997); TradingView "Klinger Oscillator" help (its built-in volume-force
    simplification, 34/55/13). The EMAs are TA-Lib's, seeded with an SMA (Pine seeds with the
    first value: early values differ, then converge); the first bar has no previous ``hlc3``
    and so no ``sv``. Warm-up: kvo ``max(fast, slow)`` bars, signal ``max(fast, slow) +
    signalperiod - 1``.
    """
    hlc3 = (high + low + close) / 3.0
    sv = np.full(hlc3.shape[0], np.nan)
    if hlc3.shape[0] > 1:
        sv[1:] = np.where(hlc3[1:] - hlc3[:-1] >= 0, volume[1:], -volume[1:])
        sv[1:][np.isnan(hlc3[1:] - hlc3[:-1])] = np.nan
    kvo = talib.EMA(sv, timeperiod=fastperiod) - talib.EMA(sv, timeperiod=slowperiod)
    return kvo, talib.EMA(kvo, timeperiod=signalperiod)


#: pivot point methods: choice value -> label
PIVOT_METHODS = ("standard", "fibonacci", "camarilla", "woodie", "demark")


@indicator(group="Overlap Studies", overlay=True, inputs=("open", "high", "low", "close"),
           outputs=("pp", "r1", "r2", "r3", "s1", "s2", "s3"), params=[
               Param("method", 0, type="choice", choices=tuple(range(len(PIVOT_METHODS))),
                     labels=tuple(m.title() for m in PIVOT_METHODS),
                     description="Pivot formula"),
           ], meta={"from_previous_bar": True, "look_ahead": False})
def PIVOTS(open, high, low, close, method=0):  # noqa: A002  (the bar column's name)
    """Pivot Points

    Levels for each bar from the *previous* bar's open/high/low/close (H, L, C, O; range
    ``R = H - L``); the first bar has none. Bars of the frame the pivots belong to go in (daily
    bars for daily pivots): to draw daily pivots on intraday bars, compute them on daily bars
    and carry each day's values over that day's intraday bars.

    * Standard (floor): ``P = (H+L+C)/3``, ``R1 = 2P-L``, ``S1 = 2P-H``, ``R2 = P+R``,
      ``S2 = P-R``, ``R3 = H+2(P-L)``, ``S3 = L-2(H-P)``.
    * Fibonacci: ``P = (H+L+C)/3``, ``R1/2/3 = P + 0.382/0.618/1.000 R``, ``S = P - ...``.
    * Camarilla (Nick Scott): ``P = (H+L+C)/3``, ``R1/2/3 = C + 1.1 R / 12, /6, /4``,
      ``S = C - ...``.
    * Woodie: ``P = (H+L+2C)/4``, then R/S as Standard.
    * DeMark (Tom DeMark): ``X = H+2L+C`` if ``C<O``, ``2H+L+C`` if ``C>O``, else ``H+L+2C``;
      ``P = X/4``, ``R1 = X/2-L``, ``S1 = X/2-H``; R2/R3/S2/S3 are NaN (DeMark defines none).

    Source: TradingView "Pivot Points Standard" help (Traditional, Fibonacci, Woodie, Classic,
    DM, Camarilla). Warm-up: 1 bar.
    """
    n = close.shape[0]
    o, h, l, c = (np.r_[np.nan, x[:-1]] if n else x.copy() for x in (open, high, low, close))
    r = h - l
    kind = PIVOT_METHODS[method]
    nan = np.full(n, np.nan)
    if kind == "demark":
        x = np.where(c < o, h + 2 * l + c, np.where(c > o, 2 * h + l + c, h + l + 2 * c))
        return x / 4, x / 2 - l, nan, nan.copy(), x / 2 - h, nan.copy(), nan.copy()
    p = (h + l + 2 * c) / 4 if kind == "woodie" else (h + l + c) / 3
    if kind == "fibonacci":
        return (p, p + 0.382 * r, p + 0.618 * r, p + r, p - 0.382 * r, p - 0.618 * r, p - r)
    if kind == "camarilla":
        k = 1.1 * r
        return (p, c + k / 12, c + k / 6, c + k / 4, c - k / 12, c - k / 6, c - k / 4)
    return (p, 2 * p - l, p + r, h + 2 * (p - l), 2 * p - h, p - r, l - 2 * (h - p))
