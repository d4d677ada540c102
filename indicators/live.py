"""Live indicator values: update when the last bar changes or a new bar closes, without
recomputing the history, equal to what :func:`indicators.registry.compute` gives over all bars.

How: an indicator's value at the newest bar depends on a limited stretch of recent bars (its
*window*), so each update runs the indicator's own function (TA-Lib for TA-Lib's, never a
rewrite) over the last ``window`` bars only and keeps the newest value. The window is not guessed
once and trusted: every update also recomputes the few closed bars before the newest one
(``check`` of them), whose values are known, and compares. A mismatch means the window is too
short for this indicator on these data, so it is doubled and the update redone (up to the whole
history, which is the batch computation itself). Three kinds of memory are handled:

* **finite** (SMA, Bollinger, Stochastic, candlestick patterns...): a window of the indicator's
  lookback plus ``check`` bars reproduces the batch values exactly;
* **fading** (EMA, RSI, ATR, ADX, KAMA, MAMA, the Hilbert-transform studies, and path-dependent
  ones such as SAR and Supertrend, whose state re-synchronises after a reversal): values over a
  window differ from the batch ones by an error that shrinks with the window's length; the window
  grows until the checked bars agree within ``rtol`` of their scale (default 1e-9). As the error
  only shrinks toward the newest bar, the newest value is at least as close;
* **cumulative** (running sums and products from the first bar: OBV, AD, CUMSUM, PVT, WAD, NVI,
  PVI, and TA-Lib's VWAP since the first bar; index outputs of MAXINDEX/MININDEX/MINMAXINDEX):
  a window's values differ from the batch ones by a constant offset, a constant factor, the
  window's start, or (VWAP) the volume-weighted history before the window; :data:`ANCHORED`
  names them and the offset is taken from the previous, known value. A user indicator declares
  the same with ``meta={"live": "sum" | "product" | "index"}``.

:class:`LiveIndicator` keeps one indicator; :class:`LiveIndicators` keeps several over one shared
buffer of bars (what a chart with many studies uses). Both are seeded with a bars frame (the
history, computed once in batch). :class:`LiveIndicators` follows the ``tradeflow.model.BarUpdate``
of a stream with ``apply(update)`` (the live protocol of :mod:`indicators.live_protocol`: closed
bars are appended once, the forming bar replaces the previous forming bar, and the changed rows
come back). Both also take bars one at a time as mappings (``{"ts": ..., "open": ..., ...}``): a
bar with the last bar's ``ts`` replaces it (the forming bar changed), a later ``ts`` appends a
new bar. Feed one object one way. Pure computation, no I/O.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from talib import abstract

from indicators.live_protocol import Changes, ChangeSet
from indicators.registry import REGISTRY, Indicator, IndicatorError
from tradeflow.model import BAR_COLUMNS, empty_frame, ns_to_utc

__all__ = ["ANCHORED", "LiveIndicator", "LiveIndicators", "BarBuffer"]

#: TA-Lib functions whose values carry from the first bar, and how a window's values relate to
#: the batch ones: "sum" (a constant offset), "product" (a constant factor), "index" (positions
#: counted from the window's start), "vwap" (volume-weighted with the bars before the window)
ANCHORED: dict[str, str] = {
    "AD": "sum", "CUMSUM": "sum", "OBV": "sum", "PVT": "sum", "WAD": "sum",
    "NVI": "product", "PVI": "product",
    "MAXINDEX": "index", "MININDEX": "index", "MINMAXINDEX": "index",
    "VWAP": "vwap",
}
_MODES = ("window", "sum", "product", "index", "vwap")

#: how many known bars each update recomputes and compares
CHECK_BARS = 8

#: windows to start from where the outputs hide part of the state, so the check cannot see it:
#: the Hilbert-transform studies carry a smoothed cycle period that only shows when it rounds to
#: another whole number of bars (measured: 200-bar windows missed HT_TRENDMODE and HT_TRENDLINE
#: now and then, 400 matched the batch exactly on 4 x 3,000 samples)
MIN_WINDOW: dict[str, int] = {name: 512 for name in (
    "HT_DCPERIOD", "HT_DCPHASE", "HT_PHASOR", "HT_SINE", "HT_TRENDLINE", "HT_TRENDMODE", "MAMA")}



def _ts_ns(value) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.as_unit("ns").value)


def _ts_column(ts: pd.Series) -> np.ndarray:
    """UTC nanoseconds of a ``ts`` column (straight from the usual ``datetime64[ns, UTC]``)."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype) and ts.dtype.unit == "ns":
        return ts.array.asi8
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


def _cat(parts: list[np.ndarray], dtype: str) -> np.ndarray:
    """The parts end to end (no copy for one part: most updates hold only the forming bar)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _grown(arr: np.ndarray, need: int) -> np.ndarray:
    """``arr`` with room for ``need`` values (capacity doubled as needed)."""
    if need <= arr.shape[0]:
        return arr
    out = np.empty(max(need, 2 * arr.shape[0]), dtype=arr.dtype)
    out[:arr.shape[0]] = arr
    return out


class BarBuffer:
    """Bars as growable numpy columns (amortised O(1) append; no frame rebuilt per bar).

    Every write is stamped with the buffer's version, so a follower that saw version ``v`` asks
    :meth:`changed_since` for the first bar it must recompute. Only the newest bar is ever
    rewritten, so the stamps never decrease along the bars."""

    def __init__(self, bars: pd.DataFrame):
        if not isinstance(bars, pd.DataFrame) or "ts" not in bars.columns:
            raise IndicatorError("live indicators: the history must be a bars frame with a 'ts' "
                                 "column")
        n = len(bars)
        cap = max(2 * n, 64)
        self._ts = np.empty(cap, dtype="int64")
        if n:
            self._ts[:n] = pd.DatetimeIndex(bars["ts"]).as_unit("ns").asi8
            if (np.diff(self._ts[:n]) <= 0).any():
                raise IndicatorError("live indicators: the history's ts must be strictly "
                                     "increasing")
        self._cols: dict[str, np.ndarray] = {}
        for name in bars.columns:
            if name != "ts" and pd.api.types.is_numeric_dtype(bars[name].dtype):
                col = np.empty(cap, dtype="float64")
                col[:n] = bars[name].to_numpy(dtype="float64", na_value=np.nan)
                self._cols[name] = col
        self._stamp = np.zeros(cap, dtype="int64")
        self.n = n
        self.version = 0

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    def column(self, name: str, start: int = 0) -> np.ndarray:
        """A view of column ``name`` from bar ``start`` to the newest."""
        return self._cols[name][start:self.n]

    def ts(self) -> np.ndarray:
        return self._ts[:self.n]

    def changed_since(self, version: int) -> int:
        """The first bar written after ``version`` (``n`` when none was)."""
        return int(np.searchsorted(self._stamp[:self.n], version, side="right"))

    def write_tail(self, start: int, bars: Iterable[pd.DataFrame]) -> None:
        """Replace the bars from ``start`` on with ``bars`` (frames with ``ts``, in time order,
        none before bar ``start - 1``; bars may share a time, as tick bars can). Columns the
        frames lack are NaN; columns the buffer lacks are not kept."""
        frames = [f for f in bars if len(f)]
        if not frames and start == self.n:
            return  # nothing written: no version, so followers have nothing to recompute
        ts = _cat([_ts_column(f["ts"]) for f in frames], "int64")
        if len(ts) and ((np.diff(ts) < 0).any() or (start and ts[0] < self._ts[start - 1])):
            raise IndicatorError("live indicators: the update's bars are older than the bars "
                                 "already closed; bars must arrive in time order")
        end = start + len(ts)
        self._ts = _grown(self._ts, end)
        self._stamp = _grown(self._stamp, end)
        self._ts[start:end] = ts
        for k in self._cols:
            col = self._cols[k] = _grown(self._cols[k], end)
            col[start:end] = _cat([f[k].to_numpy(dtype="float64", na_value=np.nan) if k in f
                                   else np.full(len(f), np.nan) for f in frames], "float64")
        self.n = end
        self.version += 1
        self._stamp[start:end] = self.version

    def push(self, bar: Mapping[str, Any]) -> bool:
        """Add ``bar`` (a later ``ts``: appended, returns True) or replace the newest bar (the
        same ``ts``: False). Columns the bar leaves out are NaN (new bar) or kept (replaced)."""
        if "ts" not in bar:
            raise IndicatorError("live indicators: a bar needs its 'ts'")
        t = _ts_ns(bar["ts"])
        last = int(self._ts[self.n - 1]) if self.n else None
        if last is not None and t < last:
            raise IndicatorError(f"live indicators: the bar at {ns_to_utc(t)} is "
                                 f"older than the newest bar ({ns_to_utc(last)}); "
                                 "bars must arrive in time order")
        values = {}
        for k, v in bar.items():
            if k == "ts":
                continue
            if k not in self._cols:
                raise IndicatorError(f"live indicators: the bar has a column {k!r} the history "
                                     f"lacks (it has {', '.join(self._cols)})")
            try:
                values[k] = float(v)
            except (TypeError, ValueError):
                raise IndicatorError(f"live indicators: bar column {k!r} is not a number: "
                                     f"{v!r}") from None
        appended = last is None or t > last
        if appended:
            self._ts = _grown(self._ts, self.n + 1)
            self._stamp = _grown(self._stamp, self.n + 1)
            for k in self._cols:
                self._cols[k] = _grown(self._cols[k], self.n + 1)
                self._cols[k][self.n] = np.nan
            self._ts[self.n] = t
            self.n += 1
        for k, v in values.items():
            self._cols[k][self.n - 1] = v
        self.version += 1
        self._stamp[self.n - 1] = self.version
        return appended


def _mode(ind: Indicator) -> str:
    default = ANCHORED.get(ind.name, "window") if ind.source == "talib" else "window"
    mode = ind.meta.get("live", default)
    if mode not in _MODES:
        raise IndicatorError(f"{ind.name}: meta['live'] must be one of {', '.join(_MODES)}, "
                             f"got {mode!r}")
    return mode


def _first_window(ind: Indicator, params: Mapping[str, Any]) -> int:
    """A starting window: TA-Lib's lookback when it has one, plus room for fading memory. Only
    a hint: the check grows it when the data need more."""
    periods = [v for p, v in params.items() if ind.param(p).type == "int"]
    lookback = 2 * sum(periods)
    if ind.source == "talib":
        try:
            fn = abstract.Function(ind.name)
            fn.set_parameters(**params)
            lookback = int(fn.lookback)
        except Exception:
            pass
    flags = ind.meta.get("function_flags", ())
    fading = 10 * max(periods, default=1) if ("Function has an unstable period" in flags or
                                              "Output is path-dependent" in flags) else 0
    return max(32, MIN_WINDOW.get(ind.name, 0) if ind.source == "talib" else 0,
               lookback + 1 + CHECK_BARS + fading)


class LiveIndicator:
    """One indicator kept current as bars arrive.

    ``LiveIndicator("RSI", history, timeperiod=14)`` computes RSI over ``history`` (a bars frame
    with ``ts``) once; ``update(bar)`` then returns the newest bar's values as
    ``{column: value}``, and :meth:`frame` the whole series, equal to ``compute("RSI", bars)``
    over every bar so far. ``buffer`` shares the bars with other indicators (as
    :class:`LiveIndicators` does); ``rtol`` is the agreement asked of fading indicators, relative
    to the size of their values. ``window`` is the number of bars the last update computed over.
    """

    def __init__(self, name: str | Indicator, history: pd.DataFrame | None = None,
                 inputs: Mapping[str, str] | None = None, *, buffer: BarBuffer | None = None,
                 rtol: float = 1e-9, **params):
        self.indicator = REGISTRY.get(name)
        ind = self.indicator
        self.params = ind.resolve_params(params)
        if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
            raise IndicatorError(f"{ind.name}: rtol must be a number between 0 and 1, got "
                                 f"{rtol!r}")
        self.rtol = float(rtol)
        if (history is None) == (buffer is None):
            raise IndicatorError(f"{ind.name}: give the history or a shared buffer, exactly one")
        self.buffer = buffer if buffer is not None else BarBuffer(history)
        mapping = dict(inputs or {})
        stray = [k for k in mapping if k not in ind.inputs]
        if stray:
            raise IndicatorError(f"{ind.name}: inputs= maps {stray[0]!r}, which it does not "
                                 f"read; its inputs are {', '.join(ind.inputs) or '(none)'}")
        self.inputs = [mapping.get(c, c) for c in ind.inputs]
        missing = [c for c in self.inputs if c not in self.buffer.columns]
        if missing:
            raise IndicatorError(f"{ind.name}: the bars lack column(s) "
                                 f"{', '.join(map(repr, missing))}")
        self.mode = _mode(ind)
        self.window = _first_window(ind, self.params)
        self.regrown = 0  # times an update found its window too short (a benchmark figure)
        self._vsum = (0, 0.0)  # VWAP: (bars summed, their volume)
        # the history in one batch computation, then the window sized against it
        outs = self._run(0)
        self._out = [np.empty(max(2 * self.buffer.n, 64), dtype=o.dtype) for o in outs]
        for buf, o in zip(self._out, outs):
            buf[:o.shape[0]] = o
        self._seen = self.buffer.version
        self._checked: tuple[int, int] | None = None  # (window start, first new bar) checked
        n = self.buffer.n
        if n:
            while True:
                start, win = self._window_values(n)
                if start == 0 or self._agrees(start, win, n):
                    break
                self.window *= 2

    # -- computing -------------------------------------------------------------------------

    def _run(self, start: int) -> list[np.ndarray]:
        """The indicator's own function over bars ``start..newest``."""
        arrays = [self.buffer.column(c, start) for c in self.inputs]
        try:
            result = self.indicator.function(*arrays, **self.params)
        except IndicatorError:
            raise
        except Exception as exc:
            raise IndicatorError(f"{self.indicator.name}: live update failed: {exc}") from exc
        outs = result if isinstance(result, (tuple, list)) else (result,)
        return [np.asarray(o) for o in outs]

    def _window_values(self, stop: int) -> tuple[int, list[np.ndarray]]:
        """(start, values of bars start..newest) computed over the window, on the batch's
        footing; bars before ``stop`` are known and the last of them anchors cumulative
        values."""
        n = self.buffer.n
        start = max(0, n - max(self.window, n - stop + CHECK_BARS + 1))
        if start and any(buf.dtype.kind == "f" and np.isnan(buf[stop - 1]) for buf in self._out):
            # the known bars are still in the warm-up (NaN), so the check cannot tell a window
            # that starts too late (its warm-up ends later): compute from the first bar
            start = 0
        outs = self._run(start)
        if start == 0 or self.mode == "window":
            return start, outs
        if self.mode == "index":
            return start, [o + start for o in outs]
        ref = stop - 1  # >= start, by the window's size
        if self.mode == "vwap":
            return start, [self._vwap(start, outs[0], ref)]
        fixed = []
        for o, buf in zip(outs, self._out):
            at, known = float(o[ref - start]), float(buf[ref])
            if self.mode == "sum":
                fixed.append(o + (known - at))
            else:
                fixed.append(o * (known / at) if at != 0 else np.full(o.shape, np.nan))
        return start, fixed

    def _vwap(self, start: int, window_vwap: np.ndarray, ref: int) -> np.ndarray:
        """VWAP since the first bar from the window's own (which starts at ``start``):
        ``(P_ref V_ref + Σpv) / (V_ref + Σv)``, the sums over the window's bars after ``ref``,
        ``V_ref`` the volume of every bar up to ``ref``."""
        volume = self.buffer.column(self.inputs[-1])
        done, vsum = self._vsum
        if done > ref + 1:
            done, vsum = 0, 0.0
        vsum += float(np.nansum(volume[done:ref + 1]))
        self._vsum = (ref + 1, vsum)
        cum_v = np.cumsum(volume[start:])
        cum_pv = np.where(cum_v > 0, window_vwap * cum_v, 0.0)
        k = ref - start
        after_v, after_pv = cum_v - cum_v[k], cum_pv - cum_pv[k]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (float(self._out[0][ref]) * vsum + after_pv) / (vsum + after_v)
        out[:k + 1] = self._out[0][start:ref + 1]
        return out

    def _agrees(self, start: int, outs: list[np.ndarray], stop: int) -> bool:
        """Whether the window's values equal the known ones on the last bars before ``stop``."""
        lo = max(start, stop - CHECK_BARS)
        for o, buf in zip(outs, self._out):
            got, known = o[lo - start:stop - start].tolist(), buf[lo:stop].tolist()
            # a handful of values: plain Python beats numpy's per-call cost here
            off = [i for i, (g, k) in enumerate(zip(got, known))
                   if g != k and not (g != g and k != k)]  # NaN == NaN for this purpose
            if not off:
                continue
            if buf.dtype.kind in "iub":
                return False
            # the scale of the values over the whole window, not of the few checked ones (an
            # oscillator crossing zero would otherwise ask for ever smaller errors)
            recent = np.abs(buf[start:stop].astype("float64"))
            recent[~np.isfinite(recent)] = 0.0
            atol = self.rtol * max(float(recent.max(initial=0.0)), 1e-12)
            if not all(abs(got[i] - known[i]) <= atol for i in off):
                return False
        return True

    def update(self, bar: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Feed ``bar`` (None when the shared buffer was fed already) and return the newest
        bar's values by column."""
        if bar is not None:
            self.buffer.push(bar)
        self._follow()
        i = self.buffer.n - 1
        return {c: buf[i].item() for c, buf in zip(self.indicator.columns, self._out)}

    def _follow(self) -> None:
        """Recompute the bars written since the last call (the newest, usually) over the
        window, growing the window until the known bars before them agree."""
        if self._seen == self.buffer.version:
            return
        n, stop = self.buffer.n, self.buffer.changed_since(self._seen)
        while True:
            start, outs = self._window_values(stop)
            # the forming bar changed again: the checked bars and the window are those already
            # checked, and (indicators being causal) their values cannot have changed
            if start == 0 or (start, stop) == self._checked or self._agrees(start, outs, stop):
                self._checked = (start, stop)
                break
            self.window *= 2
            self.regrown += 1
        for k, o in enumerate(outs):
            buf = self._out[k] = _grown(self._out[k], n)
            buf[stop:n] = o[stop - start:]
        self._seen = self.buffer.version

    # -- reading ---------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        return self.indicator.columns

    def frame(self, start: int = 0) -> pd.DataFrame:
        """Every bar's values (from bar ``start`` on, indexed by bar position): ``ts``, then the
        indicator's columns."""
        self._follow()
        n = self.buffer.n
        data = {"ts": pd.DatetimeIndex(self.buffer.ts()[start:].copy(), tz="UTC")}
        for c, buf in zip(self.indicator.columns, self._out):
            data[c] = buf[start:n].copy()
        return pd.DataFrame(data, index=pd.RangeIndex(start, max(n, start)))


class LiveIndicators:
    """Several live indicators over one shared bar buffer (a chart's studies): :meth:`add`
    them, then follow the stream's bar updates with :meth:`apply` (or push bars one at a time
    with :meth:`update`, which returns ``{key: {column: value}}`` for the newest bar).

    ``history``: the closed bars before the stream's first update (None: none; the bars then
    have the model's bar columns)."""

    def __init__(self, history: pd.DataFrame | None = None, rtol: float = 1e-9):
        self.buffer = BarBuffer(empty_frame(BAR_COLUMNS) if history is None else history)
        self.rtol = rtol
        self._live: dict[str, LiveIndicator] = {}
        self.n_closed = self.buffer.n  # bars that are final; the rest (0 or 1) is forming
        self._applied = 0  # updates applied (a ChangeSet reads the state of its own)

    def add(self, name: str, inputs: Mapping[str, str] | None = None, key: str | None = None,
            **params) -> str:
        """Follow indicator ``name``; returns its key: ``key``, or the name with the
        parameters that differ from the defaults (``RSI(timeperiod=21)``)."""
        live = LiveIndicator(name, inputs=inputs, buffer=self.buffer, rtol=self.rtol, **params)
        if key is None:
            ind = live.indicator
            changed = [f"{k}={v}" for k, v in live.params.items() if ind.defaults[k] != v]
            key = f"{ind.name}({', '.join(changed)})" if changed else ind.name
        if key in self._live:
            raise IndicatorError(f"live indicators: {key!r} is already followed")
        self._live[key] = live
        return key

    def remove(self, key: str) -> None:
        del self._live[key]

    def __getitem__(self, key: str) -> LiveIndicator:
        return self._live[key]

    def __iter__(self) -> Iterable[str]:
        return iter(self._live)

    def __len__(self) -> int:
        return len(self._live)

    def apply(self, update) -> ChangeSet:
        """Follow a ``tradeflow.model.BarUpdate``: its closed bars are appended once and its
        forming bar replaces the previous forming one. Returns ``{key: Changes}``: each
        indicator's rows (``ts`` and its columns, indexed by bar position) from the first bar
        the update wrote."""
        start = self.n_closed
        self.buffer.write_tail(start, (update.closed, update.current))
        self.n_closed += len(update.closed)
        for live in self._live.values():
            live._follow()
        self._applied += 1
        applied = self._applied

        def rows(live):
            return lambda: Changes(live.frame(start), self.buffer.n)
        return ChangeSet({key: rows(live) for key, live in self._live.items()},
                         stale=lambda: self._applied != applied)

    def update(self, bar: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Push one bar (see :meth:`BarBuffer.push`) and return the newest bar's values."""
        if self.buffer.push(bar):
            self.n_closed = self.buffer.n - 1  # a later bar came: the ones before are final
        return {key: live.update() for key, live in self._live.items()}
