"""VWAP with standard-deviation bands: reset each trading day, or anchored at any time.

Input: bars (``tradeflow.model`` bar layout: ``ts, high, low, close, volume`` are used) or trades
(``ts, price, size``), ordered by ``ts``. Output: one row per input row, ``ts, vwap, upper_1,
lower_1, upper_2, lower_2, ...`` (one ``upper_k``/``lower_k`` pair per band multiplier ``k``,
named with ``f"{k:g}"``, e.g. ``upper_1.5``). Pure functions, no I/O; :class:`VwapState` is the
incremental (live) form and gives the same values as the batch functions.

Definitions
-----------
* **Price of a row**: for bars the *typical price* ``(high + low + close) / 3`` weighted by the
  bar's ``volume`` (a bar's trades are not seen, so its volume is placed at its typical price);
  for trades the trade's own ``price`` weighted by its ``size`` (exact VWAP).
* **VWAP** after row n of a session (cumulative from the session's first row):
  ``VWAP_n = sum(v_i * p_i) / sum(v_i)``.
* **Bands**: the volume-weighted standard deviation of price around the VWAP, cumulative in the
  same window: ``sd_n = sqrt(sum(v_i * (p_i - VWAP_n)^2) / sum(v_i))
  = sqrt(sum(v_i * p_i^2) / sum(v_i) - VWAP_n^2)``; ``upper_k = VWAP + k * sd``,
  ``lower_k = VWAP - k * sd`` -- the volume-weighted *population* variance (frequency weights,
  no ``n-1`` correction), as in the session-VWAP bands of e.g. wickra-core's ``VwapStdDevBands``
  (https://docs.rs/wickra-core/0.3.1/wickra_core/indicators/struct.VwapStdDevBands.html: typical
  price, ``variance = sum(v p^2)/sum(v) - vwap^2``) and quantwave-core's ``SessionVwapState``
  (``sqrt(sum(V (TP - VWAP)^2) / sum(V))``, bands at 1, 2, 3 sd:
  https://docs.rs/quantwave-core/0.10.0/quantwave_core/indicators/session_levels/struct.SessionVwapState.html).
  The sums are kept of ``p - r``, ``r``
  being the session's first price, so that the difference of squares does not lose precision;
  the result is the same quantity (the variance does not depend on the shift).
* **Session**: :func:`session_vwap` restarts the sums at each trading day of ``session``
  (``Session.trading_date``); :func:`anchored_vwap` sums from the first row with
  ``ts >= anchor_ts`` onward (for bars: the bar that *opens* at or after the anchor) and never
  restarts; rows before the anchor are NaN.
* Rows before the window has any volume (e.g. a first bar of volume 0) are NaN.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc

from ..frames import require, ts_ns
from ..live_protocol import Changes, ChangeSet

__all__ = ["session_vwap", "anchored_vwap", "VwapState"]

_BAR_COLUMNS = ("ts", "high", "low", "close", "volume")
_TRADE_COLUMNS = ("ts", "price", "size")


def _check_bands(bands) -> tuple[float, ...]:
    if isinstance(bands, numbers.Real) and not isinstance(bands, bool):
        bands = (bands,)
    try:
        out = tuple(bands)
    except TypeError:
        raise ValueError(f"bands must be a sequence of numbers > 0 (e.g. (1, 2, 3)), "
                         f"got {bands!r}") from None
    for k in out:
        if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(k) or k <= 0:
            raise ValueError(f"bands: each multiplier must be a finite number > 0 (standard "
                             f"deviations from the VWAP), got {k!r}")
    names = [f"{float(k):g}" for k in out]
    if len(set(names)) != len(names):
        raise ValueError(f"bands: multipliers must be distinct, got {bands!r}")
    return tuple(float(k) for k in out)


def _kind(frame: pd.DataFrame, what: str) -> str:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what}: expected a DataFrame of bars or trades, "
                         f"got {type(frame).__name__}")
    if all(c in frame.columns for c in _BAR_COLUMNS):
        return "bars"
    if all(c in frame.columns for c in _TRADE_COLUMNS):
        return "trades"
    got = ", ".join(map(str, frame.columns))
    raise ValueError(f"{what}: expected bars ({', '.join(_BAR_COLUMNS)}) or trades "
                     f"({', '.join(_TRADE_COLUMNS)}), got columns {got}")


def _inputs(frame: pd.DataFrame, kind: str, what: str):
    """(ts ns, price, weight) of the rows, checked."""
    require(frame, _BAR_COLUMNS if kind == "bars" else _TRADE_COLUMNS, what)
    t = ts_ns(frame["ts"])
    if kind == "bars":
        h, lo, c = (frame[k].to_numpy(dtype="float64") for k in ("high", "low", "close"))
        price = (h + lo + c) / 3.0
        w = frame["volume"].to_numpy(dtype="float64")
    else:
        price = frame["price"].to_numpy(dtype="float64")
        w = frame["size"].to_numpy(dtype="float64")
    if not np.all(np.isfinite(price)):
        raise ValueError(f"{what}: prices must be finite numbers (found NaN or inf)")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0)):
        raise ValueError(f"{what}: volumes/sizes must be finite numbers >= 0")
    if len(t) > 1 and np.any(t[1:] < t[:-1]):
        raise ValueError(f"{what}: rows must be ordered by ts; sort them first "
                         f"(frame.sort_values('ts', kind='stable'))")
    return t, price, w


class _Carry:
    """The running sums of the current window."""

    __slots__ = ("key", "ref", "sv", "sd", "sd2")

    def __init__(self):
        self.key = None  # window key (trading date ns, or 0 when anchored); None: no window yet
        self.ref = 0.0
        self.sv = self.sd = self.sd2 = 0.0

    def copy(self) -> "_Carry":
        out = _Carry()
        out.key, out.ref, out.sv, out.sd, out.sd2 = self.key, self.ref, self.sv, self.sd, self.sd2
        return out


def _accumulate(keys: np.ndarray, active: np.ndarray, price: np.ndarray, w: np.ndarray,
                carry: _Carry):
    """VWAP and sd per row; ``carry`` is read and advanced. Rows not ``active`` give NaN and add
    nothing. Each window's sums are a plain sequential ``cumsum`` started from the carried value,
    so splitting the input anywhere gives bit-identical results."""
    n = len(price)
    vwap = np.full(n, np.nan)
    sd = np.full(n, np.nan)
    idx = np.flatnonzero(active)
    if not len(idx):
        return vwap, sd
    k = keys[idx]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.append(starts[1:], len(idx))
    for s, e in zip(starts, ends):
        rows = idx[s:e]
        if carry.key is None or k[s] != carry.key:
            carry.key, carry.ref = k[s], float(price[rows[0]])
            carry.sv = carry.sd = carry.sd2 = 0.0
        d = price[rows] - carry.ref
        v = w[rows]
        sv = np.cumsum(np.r_[carry.sv, v])[1:]
        sdv = np.cumsum(np.r_[carry.sd, v * d])[1:]
        sd2 = np.cumsum(np.r_[carry.sd2, v * d * d])[1:]
        carry.sv, carry.sd, carry.sd2 = float(sv[-1]), float(sdv[-1]), float(sd2[-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(sv > 0, sdv / sv, np.nan)
            var = np.where(sv > 0, sd2 / sv - mean * mean, np.nan)
        vwap[rows] = carry.ref + mean
        sd[rows] = np.sqrt(np.maximum(var, 0.0))
    return vwap, sd


def _frame(t: np.ndarray, vwap: np.ndarray, sd: np.ndarray, bands) -> pd.DataFrame:
    out = {"ts": ns_to_utc(t), "vwap": vwap}
    for k in bands:
        out[f"upper_{k:g}"] = vwap + k * sd
        out[f"lower_{k:g}"] = vwap - k * sd
    return pd.DataFrame(out)


def _check_session(session) -> Session:
    if not isinstance(session, Session):
        raise ValueError(f"session must be a tradeflow.model.Session (e.g. instrument.session), "
                         f"got {type(session).__name__}")
    return session


def _anchor_ns(anchor_ts) -> int:
    try:
        ts = pd.Timestamp(anchor_ts)
    except (TypeError, ValueError):
        raise ValueError(f"anchor_ts must be a timestamp, got {anchor_ts!r}") from None
    if ts is pd.NaT:
        raise ValueError("anchor_ts must be a timestamp, got NaT")
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def session_vwap(bars_or_trades: pd.DataFrame, session: Session, bands=(1, 2, 3)) -> pd.DataFrame:
    """VWAP restarted at each trading day of ``session``, with bands at ``bands`` standard
    deviations: ``ts, vwap, upper_1, lower_1, ...`` (one row per input row; see the module's
    definitions for the price used and the formula)."""
    state = VwapState(session=session, bands=bands)
    return state.update(bars_or_trades)


def anchored_vwap(bars_or_trades: pd.DataFrame, anchor_ts, bands=()) -> pd.DataFrame:
    """VWAP summed from ``anchor_ts`` on (never restarted), NaN before it: ``ts, vwap`` and the
    ``upper_k``/``lower_k`` band columns of ``bands``."""
    state = VwapState(anchor_ts=anchor_ts, bands=bands)
    return state.update(bars_or_trades)


class VwapState:
    """Incremental VWAP: feed bars or trades in order; each call returns the rows of what it was
    given, equal to the rows the batch function gives for the whole input.

    Give ``session`` for a VWAP restarted each trading day (as :func:`session_vwap`) or
    ``anchor_ts`` for an anchored one (as :func:`anchored_vwap`), not both. ``kind`` (``"bars"``
    or ``"trades"``) says what it follows; None: fixed by the first :meth:`update`, bars for
    :meth:`apply`.

    Two ways to feed it, one per state:

    * :meth:`apply` follows the ``tradeflow.model.BarUpdate`` of a stream (the live protocol of
      :mod:`indicators.live_protocol`): closed bars are added to the sums once; the forming bar's
      row is computed from a copy of the sums and recomputed at each update until the bar
      closes, so it is never counted twice. With ``kind="trades"`` it follows the update's trades
      (one row each: the exact VWAP).
    * :meth:`update` takes final rows only (each bar once, when it has closed).
    """

    def __init__(self, session: Session | None = None, anchor_ts=None, bands=(1, 2, 3),
                 kind: str | None = None):
        if (session is None) == (anchor_ts is None):
            raise ValueError("VwapState: give either session (a VWAP per trading day) or "
                             "anchor_ts (anchored VWAP), exactly one")
        if kind not in (None, "bars", "trades"):
            raise ValueError(f"VwapState: kind must be 'bars', 'trades' or None, got {kind!r}")
        self.session = _check_session(session) if session is not None else None
        self.anchor = _anchor_ns(anchor_ts) if anchor_ts is not None else None
        self.bands = _check_bands(bands)
        self.kind: str | None = kind
        self.last_ts: int | None = None
        self.rows = 0  # final rows so far (closed bars, or trades)
        self._carry = _Carry()
        self._applied = 0  # updates applied (a ChangeSet reads the state of its own)

    def update(self, bars_or_trades: pd.DataFrame) -> pd.DataFrame:
        kind = _kind(bars_or_trades, "vwap")
        if self.kind is not None and kind != self.kind and len(bars_or_trades):
            raise ValueError(f"vwap: this state was fed {self.kind}, now {kind}; use one state "
                             f"per input kind")
        t, vwap, sd = self._rows(bars_or_trades, kind, self._carry)
        if len(t):
            self.kind, self.last_ts = kind, int(t[-1])
            self.rows += len(t)
        return _frame(t, vwap, sd, self.bands)

    def apply(self, update) -> ChangeSet:
        """Follow a ``BarUpdate``: ``{"vwap": Changes}``, the rows written (the closed bars', then
        the forming bar's, which replaces the previous forming row), indexed by position."""
        self.kind = self.kind or "bars"
        start = self.rows
        if self.kind == "trades":
            parts = [self._rows(update.trades, "trades", self._carry)]
            current = 0
        else:
            parts = [self._rows(update.closed, "bars", self._carry)]
            current = len(update.current)
            if current:  # the forming bar: from a copy of the sums, so it is not counted twice
                parts.append(self._rows(update.current, "bars", self._carry.copy()))
        t, vwap, sd = (np.concatenate(x) for x in zip(*parts))
        final = len(t) - current
        if final:
            self.last_ts = int(t[final - 1])
        self.rows += final
        self._applied += 1
        applied = self._applied

        def rows():
            frame = _frame(t, vwap, sd, self.bands)
            frame.index = pd.RangeIndex(start, start + len(t))
            return Changes(frame, start + len(t))
        return ChangeSet({"vwap": rows}, stale=lambda: self._applied != applied)

    def _rows(self, frame: pd.DataFrame, kind: str, carry: _Carry):
        """(ts, vwap, sd) of the rows of ``frame``, advancing ``carry``; checked to start no
        earlier than the last final row."""
        what = "vwap"
        t, price, w = _inputs(frame, kind, what)
        if not len(t):
            return t, price, price
        if self.last_ts is not None and t[0] < self.last_ts:
            raise ValueError(f"{what}: new rows start before the last row already fed; feed rows "
                             f"in time order")
        if self.session is not None:
            keys = self.session.trading_date(pd.DatetimeIndex(ns_to_utc(t))).asi8
            active = np.ones(len(t), dtype=bool)
        else:
            keys = np.zeros(len(t), dtype="int64")
            active = t >= self.anchor
        vwap, sd = _accumulate(keys, active, price, w, carry)
        return t, vwap, sd
