"""Live (incremental) volume profile and market profile (TPO): updated from the bars and footprint
cells of each new batch of trades without recomputing the session's history, and equal to the batch
forms (:func:`.volume.volume_profile`, :func:`.tpo.tpo_profile`) over everything fed.

Feeding protocol (the live protocol of :mod:`indicators.live_protocol`: ``apply(update)`` takes
the ``tradeflow.model.BarUpdate`` of the stream's ``BarAggregator`` and returns the changed rows;
``update(closed, current)`` takes the parts by hand). Each update brings

* ``closed``: the cells (or bars) of bars that are final, in time order. A closed bar is never
  sent again.
* ``current``: the complete cells (or the bar) of the one bar still forming, or nothing. It
  *replaces* the ``current`` of the previous update: a forming bar is re-sent whole as it grows,
  and when it closes it arrives once more among ``closed``.

So the live state is "committed" sums of the closed bars plus the current bar kept aside; a
profile is the two added at the moment it is asked for. Bars must arrive in time order: no closed
bar or current bar may be older than the last closed bar.

Sessions: with a :class:`~tradeflow.model.Session` the profile restarts when a bar of a new trading
day (``Session.trading_date`` of its time) arrives, as :func:`.volume.session_profiles` splits
days; :class:`LiveTPO` always works per trading day, like :func:`.tpo.tpo_profile`.

Costs: an update costs O(cells or bars in it) plus O(levels) per developing row it yields; asking
for a profile costs O(levels + the current bar's cells). Per-level sums live in numpy arrays that
grow (doubling) when prices leave the range seen so far; nothing is proportional to the history.

Exactness: the committed sums add each cell in the order fed, then the current bar's cells, which
is the order in which :func:`.volume.volume_profile` sums a frame of the same cells in the same
order, so even fractional volumes come out bit for bit equal.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc, price_to_tick

from indicators.frames import positive_int, require, ts_ns
from indicators.live_protocol import Changes, ChangeSet
from indicators.profile.tpo import (
    MAX_TPO_LEVELS, TPO_BAR_COLUMNS, TPOProfile, check_period, check_session, check_tick_size,
    days_and_periods, period_letter, summarise,
)
from indicators.profile.volume import (
    MAX_PROFILE_LEVELS, PROFILE_SUMS, VolumeProfile, check_share, poc_index, profile_from_levels,
    value_area_bounds,
)

__all__ = ["LiveVolumeProfile", "LiveTPO", "DevelopingRow", "DEVELOPING_COLUMNS"]

DEVELOPING_COLUMNS = ("ts", "date", "poc", "vah", "val", "volume")
_NAT = np.iinfo("int64").min  # the date of developing rows without a session


class DevelopingRow(NamedTuple):
    """One bar's developing values: bar time, trading date (None without a session), POC, VAH,
    VAL (level keys in ticks; None while the day has no volume) and the day's volume so far."""

    ts: pd.Timestamp
    date: pd.Timestamp | None
    poc: int | None
    vah: int | None
    val: int | None
    volume: float

    @classmethod
    def of(cls, row: tuple) -> "DevelopingRow":
        ns, day, poc, vah, val, volume = row
        return cls(ns_to_utc(ns), None if day == _NAT else ns_to_utc(day),
                   poc, vah, val, volume)


class _Growable:
    """``width`` per-level arrays over a growable span of level indexes: column ``i`` of
    ``data`` is level ``base + i``. Grows by at least half its span on the side that needs it, so
    growing costs amortised O(1) per level."""

    def __init__(self, width: int, dtype):
        self.base = 0
        self.data = np.zeros((width, 0), dtype=dtype)

    def ensure(self, lo: int, hi: int) -> None:
        cap = self.data.shape[1]
        if cap and self.base <= lo and hi < self.base + cap:
            return
        new_lo = lo if not cap else min(lo, self.base)
        new_hi = hi if not cap else max(hi, self.base + cap - 1)
        pad = max((new_hi - new_lo + 1) // 2, 16)
        a = new_lo - (pad if not cap or lo < self.base else 0)
        b = new_hi + (pad if not cap or hi >= self.base + cap else 0)
        data = np.zeros((self.data.shape[0], b - a + 1), dtype=self.data.dtype)
        if cap:
            data[:, self.base - a:self.base - a + cap] = self.data
        self.base, self.data = a, data

    def span(self, lo: int, hi: int) -> np.ndarray:
        """A view of levels ``lo..hi`` (inside the allocated span)."""
        return self.data[:, lo - self.base:hi - self.base + 1]


_MINUTE = 60_000_000_000
_GRID = 2 * 1440  # minutes a calendar grid covers


class _Calendar:
    """Trading day (for the TPO also: in regular hours? period index) of UTC times, looked up
    per minute in a grid that the session's own functions evaluated once (two days of minutes),
    so that a small update does not pay pandas' time-zone machinery each time.

    Exact: session hours are whole minutes, and so (checked on each grid) are the zone's UTC
    offsets, so every answer is constant within a UTC minute; a period that is not whole minutes,
    a zone with odd offsets or a call spanning more than the grid goes to the session directly."""

    def __init__(self, session: Session | None, period: pd.Timedelta | None = None,
                 regular_only: bool = True):
        self.session, self.period, self.regular_only = session, period, regular_only
        self.exact = session is not None and (period is None or period.value % _MINUTE == 0)
        self.start: int | None = None  # first minute of the grid

    def __call__(self, ns: np.ndarray):
        """(keep, trading day (int64 ns of midnight UTC; 0 without a session), period index)."""
        if not len(ns) or not self.exact or len(ns) > _GRID:
            return self._direct(ns)
        m = ns // _MINUTE
        lo, hi = int(m.min()), int(m.max())
        if self.start is None or lo < self.start or hi >= self.start + _GRID:
            if hi - lo >= _GRID or not self._build(lo):
                return self._direct(ns)
        i = m - self.start
        return self.keep[i], self.day[i], self.pidx[i]

    def _direct(self, ns: np.ndarray):
        if self.session is None or not len(ns):
            z = np.zeros(len(ns), dtype="int64")
            return np.ones(len(ns), dtype=bool), z, z
        if self.period is None:
            days = self.session.trading_date(ns_to_utc(ns)).asi8
            return np.ones(len(ns), dtype=bool), days, np.zeros(len(ns), dtype="int64")
        return days_and_periods(ns, self.session, self.period, self.regular_only)

    def _build(self, first: int) -> bool:
        grid = (first + np.arange(_GRID, dtype="int64")) * _MINUTE
        local = ns_to_utc(grid).tz_convert(self.session.timezone).tz_localize(None)
        if ((local.as_unit("ns").asi8 - grid) % _MINUTE).any():
            self.exact = False
            return False
        self.keep, self.day, self.pidx = self._direct(grid)
        self.start = first
        return True


def _require(frame, columns, what: str) -> None:
    """:func:`indicators.frames.require`, with a quick pass for the usual good frame."""
    if not (isinstance(frame, pd.DataFrame) and set(columns) <= set(frame.columns)):
        require(frame, columns, what)


def _ns(ts: pd.Series) -> np.ndarray:
    """UTC nanoseconds of a ``ts`` column: straight from a ``datetime64[ns, UTC]`` column (what
    the bar builder and the stores give), else through :func:`indicators.frames.ts_ns`."""
    dtype = ts.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) and dtype.unit == "ns":
        return ts.array.asi8
    return ts_ns(ts)


def flagged_runs(keys: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of equal ``keys``."""
    if not len(keys):
        return []
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate(([0], cut))
    stops = np.concatenate((cut, [len(keys)]))
    return list(zip(starts.tolist(), stops.tolist()))


def _in_order(ns: np.ndarray, after: int | None, what: str) -> None:
    if len(ns) and ((np.diff(ns) < 0).any() or (after is not None and ns[0] < after)):
        raise ValueError(f"{what} must arrive in time order, none older than the last closed "
                         f"bar; only the forming bar is re-sent, as current")


# --------------------------------------------------------------------------------------------
# volume profile


class LiveVolumeProfile:
    """The volume profile of the footprint cells fed so far (of the current trading day with a
    ``session``; of everything without), and its developing POC / value area.

    ``update(closed, current)`` (protocol in the module's docstring) returns the developing rows
    of the bars in the update; ``profile()`` equals ``volume_profile`` over the session's cells fed
    so far (closed ones, then the current bar's); ``developing()`` equals
    :func:`.developing.developing_profile` over every cell fed. Levels are keys in ticks, as in
    :mod:`.volume` (``rows`` ticks per level)."""

    def __init__(self, session: Session | None = None, rows: int = 1, value_area: float = 0.70):
        if session is not None:
            check_session(session)
        self.session = session
        self.rows = positive_int(rows, "LiveVolumeProfile: rows")
        self.value_area = check_share(value_area)
        self._calendar = _Calendar(session)
        self._done: list[tuple] = []  # developing rows of closed bars, all sessions
        self._pending: tuple | None = None  # the current bar's developing row
        self._last_ns: int | None = None  # time of the last closed bar
        self._applied = 0  # updates applied (a ChangeSet reads the state of its own)
        self.reset()

    def reset(self) -> None:
        """Start an empty profile (the developing rows so far are kept)."""
        self._sums = _Growable(len(PROFILE_SUMS), "float64")
        self._lo = self._hi = None  # level indexes (key // rows) of the closed cells
        self._day: int | None = None
        self._cur = None  # (level indexes, sums (4 x n), lo, hi) of the current bar
        self._pending = None

    # -- feeding

    def apply(self, update) -> ChangeSet:
        """Follow a ``tradeflow.model.BarUpdate`` (its footprint cells): ``{"developing":
        Changes}``, the rows of :meth:`developing` the update wrote (from the last closed bar's
        on: the bar still forming may have shared its time)."""
        start = max(len(self._done) - 1, 0)
        self.update(update.closed_footprint, update.current_footprint)
        self._applied += 1
        applied = self._applied

        def developing():
            rows = self._developing_rows()
            frame = _developing_frame(rows[start:])
            frame.index = pd.RangeIndex(start, len(rows))
            return Changes(frame, len(rows))
        return ChangeSet({"developing": developing}, stale=lambda: self._applied != applied)

    def update(self, closed: pd.DataFrame | None = None, current: pd.DataFrame | None = None
               ) -> list[DevelopingRow]:
        """Add the cells of ``closed`` bars; make ``current`` (cells of one bar, or None/empty) the
        forming bar, replacing the previous one. Returns the developing rows of the bar times in
        this update, one per time, in time order (:meth:`developing` has them all as a frame)."""
        c_ns, c_idx, c_val = self._cells(closed, "closed")
        u_ns, u_idx, u_val = self._cells(current, "current")
        _in_order(c_ns, self._last_ns, "LiveVolumeProfile: closed cells")
        if len(u_ns) and (u_ns != u_ns[0]).any():
            raise ValueError("LiveVolumeProfile: current holds the cells of one bar (one time); "
                             "send finished bars as closed")
        _in_order(u_ns, c_ns[-1] if len(c_ns) else self._last_ns, "LiveVolumeProfile: current")
        days = self._calendar(np.concatenate((c_ns, u_ns)))[1]
        self._check_span(days, np.concatenate((c_idx, u_idx)))
        self._cur, self._pending = None, None
        touched = []
        for a, b in flagged_runs(c_ns):
            self._enter_day(int(days[a]))
            self._add(c_idx[a:b], c_val[:, a:b])
            self._last_ns = int(c_ns[a])
            row = self._row(self._last_ns)
            if self._done and self._done[-1][0] == row[0]:
                self._done[-1] = row  # bars sharing a time (tick bars) give one row
            else:
                self._done.append(row)
            touched.append(row)
        if len(u_ns):
            self._enter_day(int(days[-1]))
            self._cur = (u_idx, u_val, int(u_idx.min()), int(u_idx.max()))
            self._pending = self._row(int(u_ns[0]))
            touched.append(self._pending)
        return [DevelopingRow.of(r) for r in {r[0]: r for r in touched}.values()]

    # -- reading

    @property
    def date(self) -> pd.Timestamp | None:
        """Trading date of the profile (None before any cell, or without a session)."""
        return None if self._day is None or self.session is None else pd.Timestamp(
            self._day, tz="UTC")

    def summary(self) -> dict:
        """``poc, vah, val`` (level keys, None while there is no volume) and ``volume`` of the
        profile now."""
        row = self._pending or (self._done[-1] if self._done and self._lo is not None else None)
        if row is None:
            return {"poc": None, "vah": None, "val": None, "volume": 0.0}
        return dict(zip(("poc", "vah", "val", "volume"), row[2:]))

    def profile(self) -> VolumeProfile:
        """The profile now: equal to ``volume_profile`` of the session's cells fed so far."""
        span = self._span()
        if span is None:
            raise ValueError("LiveVolumeProfile: no cells yet, nothing to profile")
        lo, hi = span
        cols = self._dense(lo, hi, range(len(PROFILE_SUMS)))
        cols = dict(zip(PROFILE_SUMS, cols))
        cols["trades"] = cols["trades"].round().astype("int64")
        keys = np.arange(lo, hi + 1, dtype="int64") * self.rows
        return profile_from_levels(keys, cols, self.value_area, self.rows, "LiveVolumeProfile")

    def developing(self) -> pd.DataFrame:
        """Developing POC / VAH / VAL of every bar time fed (all sessions): one row per time."""
        return _developing_frame(self._developing_rows())

    def _developing_rows(self) -> list[tuple]:
        rows = list(self._done)
        if self._pending is not None:
            if rows and rows[-1][0] == self._pending[0]:
                rows[-1] = self._pending
            else:
                rows.append(self._pending)
        return rows

    # -- internals

    def _cells(self, frame, what):
        """(ns, level index, sums 4 x n) of a cells frame; empty arrays for None/empty."""
        if frame is None or (isinstance(frame, pd.DataFrame) and not len(frame)):
            return np.empty(0, "int64"), np.empty(0, "int64"), np.empty((len(PROFILE_SUMS), 0))
        _require(frame, ("ts", "tick", "volume", "ask_volume", "bid_volume"),
                 f"LiveVolumeProfile: {what} cells")
        idx = np.floor_divide(frame["tick"].to_numpy(dtype="int64"), self.rows)
        val = np.stack([frame[c].to_numpy(dtype="float64") if c in frame.columns
                        else np.zeros(len(frame)) for c in PROFILE_SUMS])
        return _ns(frame["ts"]), idx, val

    def _check_span(self, day: np.ndarray, idx: np.ndarray) -> None:
        """Refuse (before changing anything) a day whose levels would exceed the limit."""
        for a, b in flagged_runs(day):
            lo, hi = int(idx[a:b].min()), int(idx[a:b].max())
            if day[a] == self._day and self._lo is not None:
                lo, hi = min(lo, self._lo), max(hi, self._hi)
            if hi - lo + 1 > MAX_PROFILE_LEVELS:
                raise ValueError(f"LiveVolumeProfile: {hi - lo + 1} levels between the lowest "
                                 f"and highest tick; group ticks into rows (rows=...) to make "
                                 f"fewer")

    def _enter_day(self, day: int) -> None:
        if self._day is not None and day != self._day:
            self.reset()
        self._day = day

    def _add(self, idx: np.ndarray, val: np.ndarray) -> None:
        lo, hi = int(idx.min()), int(idx.max())
        self._lo = lo if self._lo is None else min(lo, self._lo)
        self._hi = hi if self._hi is None else max(hi, self._hi)
        self._sums.ensure(self._lo, self._hi)
        at = idx - self._sums.base
        for k in range(len(PROFILE_SUMS)):  # in order, as bincount sums a frame
            np.add.at(self._sums.data[k], at, val[k])

    def _span(self):
        los = [x for x in (self._lo, self._cur and self._cur[2]) if x is not None]
        his = [x for x in (self._hi, self._cur and self._cur[3]) if x is not None]
        return (min(los), max(his)) if los else None

    def _dense(self, lo: int, hi: int, which) -> list[np.ndarray]:
        """Sums of levels ``lo..hi``: closed cells, then the current bar's added in order."""
        out = []
        for k in which:
            v = np.zeros(hi - lo + 1)
            if self._lo is not None:
                v[self._lo - lo:self._hi - lo + 1] = self._sums.span(self._lo, self._hi)[k]
            if self._cur is not None:
                np.add.at(v, self._cur[0] - lo, self._cur[1][k])
            out.append(v)
        return out

    def _row(self, ns: int) -> tuple:
        """The developing row now: (ts, day, poc, vah, val, volume); None keys without volume."""
        lo, hi = self._span()
        day = self._day if self.session is not None else _NAT
        if self._cur is None:
            v = self._sums.span(lo, hi)[0]
        else:
            v = self._dense(lo, hi, (0,))[0]
        total = float(v.sum())
        if not total > 0:
            return (ns, day, None, None, None, total)
        p = poc_index(v)
        a, b = value_area_bounds(v, p, self.value_area)
        r = self.rows
        return (ns, day, (lo + p) * r, (lo + b) * r, (lo + a) * r, total)


def _developing_frame(rows: list[tuple]) -> pd.DataFrame:
    """The developing rows as a frame (``DEVELOPING_COLUMNS``; keys ``Int64``, <NA> for None)."""
    def keys(j):
        vals = [r[j] for r in rows]
        mask = np.array([v is None for v in vals], dtype=bool)
        data = np.array([0 if v is None else v for v in vals], dtype="int64")
        return pd.arrays.IntegerArray(data, mask)

    def times(j):
        return ns_to_utc(np.array([r[j] for r in rows], dtype="int64"))
    return pd.DataFrame({"ts": times(0), "date": times(1), "poc": keys(2), "vah": keys(3),
                         "val": keys(4), "volume": np.array([r[5] for r in rows], "float64")})


# --------------------------------------------------------------------------------------------
# market profile (TPO)

_EMPTY_LEVELS = pd.DataFrame({"tick": np.empty(0, "int64"), "tpo_count": np.empty(0, "int64"),
                              "letters": np.empty(0, object), "single_print": np.empty(0, bool),
                              "poc": np.empty(0, bool), "value_area": np.empty(0, bool)})


class LiveTPO:
    """The market profile of the bars fed so far on the latest trading day that has bars (in
    regular hours with ``regular_only``, bars outside them being ignored as the batch form ignores
    them): ``profile()`` equals :func:`.tpo.tpo_profile` over that day's bars (closed ones, then
    the current bar), with the same parameters. The first bar of a new trading day starts a new
    profile; until then the last day's stays (e.g. overnight, with ``regular_only``).

    A period is *final* once a closed bar of a later period has arrived; final periods are folded
    into per-row TPO counts and letters (O(the period's rows), once). The initial balance and the
    first extension periods are kept as periods become final, so asking for the profile costs
    O(rows) whatever the length of the day."""

    def __init__(self, tick_size: float, session: Session, period="30min", rows: int = 1,
                 value_area: float = 0.70, ib_periods: int = 2, regular_only: bool = True):
        self.tick_size = check_tick_size(tick_size)
        self.session = check_session(session)
        self.period = check_period(period)
        self.rows = positive_int(rows, "LiveTPO: rows")
        self.value_area = check_share(value_area)
        self.ib_periods = positive_int(ib_periods, "LiveTPO: ib_periods")
        self.regular_only = bool(regular_only)
        self._calendar = _Calendar(self.session, self.period, self.regular_only)
        self._last_ns: int | None = None
        self._applied = 0  # updates applied (a ChangeSet reads the state of its own)
        self.reset()

    def reset(self) -> None:
        """Start an empty profile."""
        self._day: int | None = None
        self._counts = _Growable(1, "int64")  # TPOs per row of the final periods
        self._letters: dict[int, str] = {}  # row -> letters of the final periods
        self._lo = self._hi = None  # rows of the final periods
        self._final: list[tuple[int, int, int]] = []  # (period, low row, high row), in order
        self._ib: tuple[int, int] | None = None  # (low, high) row once the IB periods are final
        self._up = self._down = None  # first final period beyond the IB above / below
        self._open: list[int] | None = None  # [period, low, high] of the closed bars' last period
        self._first: tuple[int, int] | None = None  # (open tick, period) of the day's first bar
        self._close: tuple[int, int] | None = None  # (close tick, period) of the last closed bar
        self._cur: tuple | None = None  # (period, low row, high row, open, close) forming bar

    # -- feeding

    def apply(self, update) -> ChangeSet:
        """Follow a ``tradeflow.model.BarUpdate`` (its bars): ``{"tpo": Changes}``, the rows of
        the profile's ``levels`` now, all of them (an update may add a letter to any row, or
        start a new day's profile); none before any bar in the session's hours."""
        self.update(update.closed, update.current)
        self._applied += 1
        applied = self._applied

        def levels():
            rows = self.profile().levels if self._final or self._tail() else _EMPTY_LEVELS
            return Changes(rows, len(rows))
        return ChangeSet({"tpo": levels}, stale=lambda: self._applied != applied)

    def update(self, closed: pd.DataFrame | None = None, current: pd.DataFrame | None = None
               ) -> None:
        """Add ``closed`` bars (time order); make ``current`` (one bar, or None/empty) the forming
        bar, replacing the previous one."""
        c = self._bars(closed, "closed")
        u = self._bars(current, "current")
        _in_order(c[0], self._last_ns, "LiveTPO: closed bars")
        if len(u[0]) > 1:
            raise ValueError(f"LiveTPO: current is the one forming bar, got {len(u[0])} bars; "
                             f"send finished bars as closed")
        _in_order(u[0], c[0][-1] if len(c[0]) else self._last_ns, "LiveTPO: current")
        self._cur = None
        ns, keep, day, pidx, lo, hi, op, cl = c
        for i in np.flatnonzero(keep).tolist():
            self._enter_day(int(day[i]))
            self._commit(int(pidx[i]), int(lo[i]), int(hi[i]), int(op[i]), int(cl[i]))
        if len(c[0]):
            self._last_ns = int(ns[-1])
        ns, keep, day, pidx, lo, hi, op, cl = u
        if len(ns) and keep[0]:
            self._enter_day(int(day[0]))
            self._cur = (int(pidx[0]), int(lo[0]), int(hi[0]), int(op[0]), int(cl[0]))

    # -- reading

    @property
    def date(self) -> pd.Timestamp | None:
        """Trading date of the profile (None before any bar in the session's hours)."""
        return None if self._day is None else ns_to_utc(self._day)

    def profile(self) -> TPOProfile:
        """The profile now: equal to ``tpo_profile`` of the day's bars fed so far."""
        tail = self._tail()
        if not self._final and not tail:
            raise ValueError("LiveTPO: no bars in the session's hours yet, nothing to profile"
                             + ("" if not self.regular_only else
                                f" (regular hours of {self.session} only)"))
        base = min([p[1] for p in tail] + ([self._lo] if self._final else []))
        top = max([p[2] for p in tail] + ([self._hi] if self._final else []))
        n = top - base + 1
        if n > MAX_TPO_LEVELS:
            raise ValueError(f"LiveTPO: {n} price rows between the lowest and highest tick; "
                             f"group ticks into rows (rows=...) to make fewer")
        counts = np.zeros(n, dtype="int64")
        if self._final:
            counts[self._lo - base:self._hi - base + 1] = self._counts.span(self._lo, self._hi)[0]
        letters = [self._letters.get(r, "") for r in range(base, top + 1)]
        for p, a, b in tail:
            counts[a - base:b - base + 1] += 1
            ch = period_letter(p)
            for i in range(a - base, b - base + 1):
                letters[i] += ch
        ib_lo, ib_hi, up, down = self._balance(tail)
        rows = self.rows
        prof = summarise(np.arange(base, top + 1, dtype="int64") * rows, counts, letters,
                         self.value_area, rows, self.period, (self.date,))
        first = self._first or (self._cur[3], self._cur[0])
        close = (self._cur[4], self._cur[0]) if self._cur is not None else self._close
        return dataclasses.replace(
            prof, ib_high=ib_hi * rows, ib_low=ib_lo * rows,
            ext_up=(top - ib_hi) * rows, ext_up_period=None if up is None else period_letter(up),
            ext_down=(ib_lo - base) * rows,
            ext_down_period=None if down is None else period_letter(down),
            open=first[0], open_period=period_letter(first[1]),
            close=close[0], close_period=period_letter(close[1]))

    # -- internals

    def _bars(self, frame, what):
        """(ns, keep, day, period, low row, high row, open tick, close tick) of a bars frame,
        checked as :func:`.tpo.tpo_profile` checks its bars."""
        if frame is None or (isinstance(frame, pd.DataFrame) and not len(frame)):
            e = np.empty(0, "int64")
            return e, np.empty(0, bool), e, e, e, e, e, e
        _require(frame, TPO_BAR_COLUMNS, f"LiveTPO: {what} bars")
        px = {c: frame[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close")}
        for c, x in px.items():
            if not np.isfinite(x).all():
                raise ValueError(f"LiveTPO: {what} bars column {c!r} has missing or infinite "
                                 f"prices")
        if (px["high"] < px["low"]).any():
            raise ValueError(f"LiveTPO: some {what} bars have high below low")
        ns = _ns(frame["ts"])
        keep, day, pidx = self._calendar(ns)
        t = {c: price_to_tick(x, self.tick_size) for c, x in px.items()}
        return (ns, keep, day, pidx, np.floor_divide(t["low"], self.rows),
                np.floor_divide(t["high"], self.rows), t["open"], t["close"])

    def _enter_day(self, day: int) -> None:
        if self._day is not None and day != self._day:
            self.reset()
        self._day = day

    def _commit(self, p: int, lo: int, hi: int, open_t: int, close_t: int) -> None:
        if self._first is None:
            self._first = (open_t, p)
        self._close = (close_t, p)
        if self._open is not None and p != self._open[0]:
            self._finalize()
        if self._open is None:
            self._open = [p, lo, hi]
        else:
            self._open[1], self._open[2] = min(lo, self._open[1]), max(hi, self._open[2])

    def _finalize(self) -> None:
        """Fold the open period into the counts and letters: no later bar can reach it."""
        p, lo, hi = self._open
        self._open = None
        new_lo = lo if self._lo is None else min(lo, self._lo)
        new_hi = hi if self._hi is None else max(hi, self._hi)
        if new_hi - new_lo + 1 > MAX_TPO_LEVELS:
            raise ValueError(f"LiveTPO: {new_hi - new_lo + 1} price rows between the lowest and "
                             f"highest tick; group ticks into rows (rows=...) to make fewer")
        self._lo, self._hi = new_lo, new_hi
        self._counts.ensure(lo, hi)
        self._counts.span(lo, hi)[0] += 1
        ch = period_letter(p)
        for r in range(lo, hi + 1):
            self._letters[r] = self._letters.get(r, "") + ch
        at = len(self._final)
        self._final.append((p, lo, hi))
        if at == self.ib_periods - 1:
            ib = self._final[:self.ib_periods]
            self._ib = (min(x[1] for x in ib), max(x[2] for x in ib))
        elif at >= self.ib_periods:
            if self._up is None and hi > self._ib[1]:
                self._up = p
            if self._down is None and lo < self._ib[0]:
                self._down = p

    def _tail(self) -> list[tuple[int, int, int]]:
        """The periods not yet final, in order: the closed bars' last one, and the forming bar's
        (merged when they are the same period)."""
        tail = [tuple(self._open)] if self._open is not None else []
        if self._cur is not None:
            p, lo, hi = self._cur[:3]
            if tail and tail[-1][0] == p:
                tail[-1] = (p, min(lo, tail[-1][1]), max(hi, tail[-1][2]))
            else:
                tail.append((p, lo, hi))
        return tail

    def _balance(self, tail):
        """(IB low row, IB high row, first period beyond it above, below) over all periods."""
        k = self.ib_periods
        if self._ib is not None:
            ib_lo, ib_hi = self._ib
        else:
            ib = (self._final + tail)[:k]
            ib_lo, ib_hi = min(x[1] for x in ib), max(x[2] for x in ib)
        up, down = self._up, self._down
        for at, (p, lo, hi) in enumerate(tail, start=len(self._final)):
            if at < k:
                continue
            if up is None and hi > ib_hi:
                up = p
            if down is None and lo < ib_lo:
                down = p
        return ib_lo, ib_hi, up, down
