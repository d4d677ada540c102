"""Every TA-Lib function as a registered :class:`~indicators.registry.Indicator`.

The records come from TA-Lib's own metadata (``talib.abstract.Function(name).info``: group,
display name, inputs, parameters with defaults, outputs, function flags; the parameter hints of
the C library become the descriptions). What TA-Lib's metadata does not expose is added here:

* valid ranges: TA-Lib checks them in C but does not publish them to Python. Periods run to
  100000 and start at 2, or at 1 where TA-Lib takes 1 (:data:`_PERIOD_MIN_1`, checked against
  TA-Lib by the tests); MA types are a choice of TA-Lib's ``MA_Type`` codes; float parameters
  get the range that makes sense for them (:data:`_FLOAT_RANGES`, inside what TA-Lib takes);
* ``overlay``: the group is ``Overlap Studies`` or the function is flagged "Output scale same as
  input" (prices in, prices out), except :data:`_NOT_OVERLAY`;
* ``levels``: the usual reference lines of the oscillators (:data:`_LEVELS`; candlestick
  patterns: 0).

TA-Lib does the computing: each record's function is ``talib.<NAME>`` itself. Bar columns for
TA-Lib's input names: ``price`` is ``close``, ``prices`` lists its columns, ``price0``/``price1``
(BETA, CORREL) default to ``high``/``low``; MAVP's ``periods`` is not a bar column, give it with
``inputs={"periods": "<column>"}``.
"""
from __future__ import annotations

import talib
from talib import abstract

from indicators.registry import REGISTRY, Indicator, Param, Registry

__all__ = ["MA_TYPES", "talib_indicator", "register_all"]

#: TA-Lib's moving-average types, code -> short label (``matype=1`` or ``matype="EMA"``)
MA_TYPES: dict[int, str] = dict(sorted(
    (int(getattr(talib.MA_Type, label)), label)
    for label in dir(talib.MA_Type) if not label.startswith("_") and label.isupper()
)) or {0: "SMA", 1: "EMA", 2: "WMA", 3: "DEMA", 4: "TEMA", 5: "TRIMA", 6: "KAMA", 7: "MAMA",
       8: "T3"}

PERIOD_MAX = 100_000

#: integer parameters TA-Lib accepts from 1 (all others start at 2), "FUNCS: params" per line
_PERIOD_MIN_1_TABLE = """
ERI MINUS_DI MINUS_DM MOM PLUS_DI PLUS_DM QSTICK ROC ROCP ROCR ROCR100 TRIX VORTEX: timeperiod
DEMA EMA HMA KAMA MA RMA SMA T3 TEMA TRIMA VWMA WMA ZLEMA: timeperiod
BETA CORREL VAR ADR ATR NATR RVI EFI RVOL: timeperiod
COPPOCK: wmaperiod roc1period roc2period
FRACTAL: leftbars rightbars
KDJ STOCH: fastk_period slowk_period slowd_period
STOCHF STOCHRSI: fastk_period fastd_period
MACD MACDEXT MACDFIX: signalperiod
ULTOSC: timeperiod1 timeperiod2 timeperiod3
KC: atrperiod
MAVP: minperiod
CVI: rocperiod
"""
_PERIOD_MIN_1: frozenset[tuple[str, str]] = frozenset(
    (func, param)
    for line in _PERIOD_MIN_1_TABLE.strip().splitlines()
    for funcs, params in [line.split(":")]
    for func in funcs.split() for param in params.split()
)

#: float parameter -> (min, max); None is unbounded
_FLOAT_RANGES: dict[str, tuple[float | None, float | None]] = {
    "acceleration": (0.0, 1.0), "maximum": (0.0, 1.0),
    "accelerationinitlong": (0.0, 1.0), "accelerationlong": (0.0, 1.0),
    "accelerationmaxlong": (0.0, 1.0), "accelerationinitshort": (0.0, 1.0),
    "accelerationshort": (0.0, 1.0), "accelerationmaxshort": (0.0, 1.0),
    "startvalue": (None, None),  # a price; 0 = auto, > 0 start long there, < 0 short
    "offsetonreverse": (0.0, 1.0),
    "nbdev": (0.0, 100.0), "nbdevup": (0.0, 100.0), "nbdevdn": (0.0, 100.0),
    "multiplier": (0.0, 100.0),
    "penetration": (0.0, 1.0),
    "fastlimit": (0.01, 0.99), "slowlimit": (0.01, 0.99),
    "vfactor": (0.0, 1.0),
    "percentile": (0.0, 100.0),
}

#: reference lines of the usual oscillators
_LEVELS: dict[str, tuple[float, ...]] = {
    "RSI": (30, 70), "STOCH": (20, 80), "STOCHF": (20, 80), "STOCHRSI": (20, 80),
    "KDJ": (20, 80), "MFI": (20, 80), "ULTOSC": (30, 70), "IMI": (30, 70),
    "CCI": (-100, 100), "WILLR": (-80, -20), "CMO": (-50, 50), "CMOU": (-50, 50),
    "SMI": (-40, 40), "ADX": (25,), "ADXR": (25,), "DX": (25,), "AROON": (30, 70),
    "AROONOSC": (0,), "RVI": (50,), "PERCENTRANK": (20, 80),
    "MACD": (0,), "MACDEXT": (0,), "MACDFIX": (0,), "PPO": (0,), "APO": (0,), "PVO": (0,),
    "MOM": (0,), "ROC": (0,), "ROCP": (0,), "ROCR": (1,), "ROCR100": (100,), "TRIX": (0,),
    "BOP": (0,), "AO": (0,), "AC": (0,), "TSI": (0,), "COPPOCK": (0,), "DPO": (0,),
    "FOSC": (0,), "QSTICK": (0,), "CMF": (0,), "ADOSC": (0,), "EFI": (0,), "CVI": (0,),
    "CORREL": (-1, 0, 1), "LINEARREG_SLOPE": (0,), "LINEARREG_ANGLE": (0,), "ERI": (0,),
    "HT_TRENDMODE": (0, 1), "RVOL": (1,),
}
_PATTERN_GROUP = "Pattern Recognition"

#: flagged "Output scale same as input", yet not on the price's scale
_NOT_OVERLAY = frozenset({"AVGDEV"})

_INPUT_DEFAULTS = {"price": ("close",), "price0": ("high",), "price1": ("low",),
                   "periods": ("periods",)}


def _inputs(info) -> tuple[str, ...]:
    cols: list[str] = []
    for key, value in info["input_names"].items():
        if isinstance(value, (list, tuple)):
            cols.extend(value)
        elif isinstance(value, str) and value:
            cols.append(value)
        else:
            cols.extend(_INPUT_DEFAULTS.get(key, (key,)))
    return tuple(cols)


def _param_hints(name: str) -> dict[str, tuple[str, int]]:
    """param -> (description, TA-Lib type code) from the C library's own hints, if reachable."""
    try:
        from talib import _ta_lib
        info = _ta_lib._ta_getFuncInfo(name.encode())
        out = {}
        for i in range(info["num_opt_inputs"]):
            p = _ta_lib._ta_getOptInputParameterInfo(name.encode(), i)
            desc = (p.get("help") or p.get("display_name") or "").strip()
            out[p["name"]] = (desc, int(p.get("type", -1)))
        return out
    except Exception:  # a private API: descriptions are a nicety
        return {}


def _is_matype(pname: str, type_code: int) -> bool:
    return type_code == 3 or pname.endswith("matype")


def _param(func: str, pname: str, default, hint: tuple[str, int]) -> Param:
    desc, code = hint
    if _is_matype(pname, code):
        return Param(pname, int(default), type="choice", choices=tuple(MA_TYPES),
                     labels=tuple(MA_TYPES.values()), description=desc or "Moving average type")
    if isinstance(default, int) and not isinstance(default, bool):
        lo = 1 if (func, pname) in _PERIOD_MIN_1 else 2
        return Param(pname, default, min=min(lo, default), max=max(PERIOD_MAX, default),
                     type="int", description=desc or pname)
    lo, hi = _FLOAT_RANGES.get(pname, (None, None))
    default = float(default)
    if lo is not None:
        lo = min(lo, default)
    if hi is not None:
        hi = max(hi, default)
    return Param(pname, default, min=lo, max=hi, type="float", description=desc or pname)


def talib_indicator(name: str) -> Indicator:
    """The registry record of one TA-Lib function, built from its abstract metadata."""
    info = abstract.Function(name).info
    flags = tuple(info.get("function_flags") or ())
    group = info["group"]
    hints = _param_hints(name)
    params = tuple(_param(name, p, d, hints.get(p, ("", -1)))
                   for p, d in info["parameters"].items())
    overlay = (group == "Overlap Studies" or "Output scale same as input" in flags) \
        and name not in _NOT_OVERLAY
    if group == _PATTERN_GROUP or "Output is a candlestick" in flags:
        levels: tuple[float, ...] = (0,)
    else:
        levels = _LEVELS.get(name, ())
    return Indicator(
        name=name, group=group, title=info.get("display_name") or name, inputs=_inputs(info),
        params=params, outputs=tuple(info["output_names"]), function=getattr(talib, name),
        overlay=overlay, levels=tuple(float(x) for x in levels), source="talib",
        meta={"function_flags": flags, "output_flags": dict(info.get("output_flags") or {})},
    )


def register_all(registry: Registry = REGISTRY, *, replace: bool = False) -> list[Indicator]:
    """Register every function of ``talib.get_functions()``; returns the records."""
    out = []
    for name in talib.get_functions():
        ind = talib_indicator(name)
        if replace or name not in registry:
            registry.register(ind, replace=replace)
        out.append(ind)
    return out


TALIB_INDICATORS = register_all()
