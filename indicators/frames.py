"""Small shared checks and conversions for the order-flow and profile studies (numpy/pandas only)."""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd


def require(frame: pd.DataFrame, columns, what: str) -> None:
    """Raise a ValueError naming the columns ``frame`` lacks."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what}: expected a DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}; expected "
                         f"{', '.join(columns)} (tradeflow.model layout)")


def trade_arrays(trades: pd.DataFrame, what: str):
    """(ts ns, price, size, side) of a trades frame, checked: finite prices, finite sizes >= 0,
    sides in {-1, 0, 1}."""
    require(trades, ("ts", "price", "size", "side"), f"{what}: trades")
    t = ts_ns(trades["ts"])
    price = trades["price"].to_numpy(dtype="float64")
    size = trades["size"].to_numpy(dtype="float64")
    side = trades["side"].to_numpy(dtype="int64")
    if not (np.all(np.isfinite(price)) and np.all(np.isfinite(size)) and np.all(size >= 0)):
        raise ValueError(f"{what}: prices must be finite and sizes finite and >= 0")
    if not np.all(np.isin(side, (-1, 0, 1))):
        raise ValueError(f"{what}: side must be +1 (buyer aggressor), -1 (seller) or 0 (unknown)")
    return t, price, size, side


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1, else a ValueError that says so."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def positive_tick_size(value, what: str) -> float:
    """A tick size: a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{what}: tick_size must be a finite number > 0 (e.g. 0.25), "
                         f"got {value!r}")
    return float(value)


def non_negative(value, name: str) -> float:
    """``value`` as a finite float >= 0, else a ValueError that says so."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def non_negative_int(value, name: str) -> int:
    """``value`` as an int >= 0, else a ValueError that says so."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def positive_number(value, name: str) -> float:
    """``value`` as a finite float > 0, else a ValueError that says so."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def ts_ns(values) -> np.ndarray:
    """UTC nanoseconds (int64) of a column of timestamps."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return idx.as_unit("ns").asi8


def group_starts(keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a run of equal ``keys`` begins (``keys`` already grouped)."""
    first = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        first[1:] = keys[1:] != keys[:-1]
    return first
