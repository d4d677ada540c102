"""Market profile (TPO, time-price opportunity) from bars: letters per period and price row, POC,
value area, initial balance, range extensions, poor highs/lows, single prints; per trading day,
merged (composite) and split profiles.

Input: bars (``tradeflow.model`` layout ``ts, open, high, low, close, ...``, ``ts`` the bar's open
time; 1-minute bars are the usual input, any bar length shorter than a period works), an
instrument's tick size and its :class:`~tradeflow.model.Session`. Prices become integer ticks
``round(price / tick_size)`` (halves away from zero, as ``Instrument.to_tick``); with ``rows=N`` a
price row holds N ticks and is keyed by its lowest tick (``floor(tick / N) * N``), as in
:mod:`.volume`. Pure functions, no I/O.

Definitions (J. Peter Steidlmayer's Market Profile as taught in the CBOT Market Profile handbook
and J. Dalton, *Mind Over Markets*; platform conventions noted where they differ)
-----------
* **Trading day**: ``Session.trading_date`` of each bar's ``ts``. With ``regular_only`` (default)
  only bars in the session's regular hours (``Session.is_regular``) are used.
* **Periods**: consecutive spans of ``period`` (default 30 minutes) counted from the session's
  regular open of the trading day (with ``regular_only=False``: from the start of the trading day,
  ``Session.day_start_utc``), in UTC, so a bar belongs to period ``(ts - anchor) // period``.
* **Letters**: period 0 is ``A``, ... period 25 ``Z``, period 26 ``a`` ... period 51 ``z``; the 53rd
  period starts again at ``A`` (letters repeat every 52 periods, as on most platforms). A period's
  letter comes from its time, so a period without bars leaves its letter out.
* **TPO**: a period marks every price row from the row of its bars' lowest low to the row of their
  highest high, inclusive, once (one TPO per period and row). ``tpo_count`` of a row is the number
  of periods that marked it; ``letters`` are their letters in time order.
* **Levels**: every row from the profile's lowest to its highest, ascending (contiguous: a TPO
  profile has no holes, each period's range is filled).
* **POC**: the row with the most TPOs; ties go to the row closest to the middle of the profile's
  range, then to the lower one (the rule of :func:`.volume.poc_index`).
* **Value area**: the two-rows-at-a-time expansion from the POC over the TPO counts
  (:func:`.volume.value_area_bounds`: add the pair above or below with the larger TPO sum, ties to
  the pair above, until at least ``value_area`` of the TPOs are inside). **VAH**/**VAL**: keys of
  its highest/lowest row.
* **Initial balance (IB)**: the range (rows) of the first ``ib_periods`` periods that have bars
  (default 2: ``A`` and ``B``, the first hour with 30-minute periods).
* **Range extension**: how far (in ticks, a multiple of ``rows``) the day's high is above the IB
  high (``ext_up``) and its low below the IB low (``ext_down``); ``ext_up_period`` /
  ``ext_down_period`` is the letter of the first period that traded beyond the IB on that side
  (``None`` when there is no extension).
* **Poor high / poor low**: two or more TPOs on the profile's highest / lowest row (no excess).
* **Single prints**: rows with exactly one TPO that lie *inside* the profile, i.e. with a row of
  two or more TPOs somewhere above and somewhere below. Single-TPO rows at the extremes are tails
  (excess), not single prints (Dalton). ``single_prints`` lists each run of adjacent such rows as
  ``(low, high)`` keys.
* **Open / close**: the tick of the first bar's open and the last bar's close, and the letters of
  their periods.
* **Merged (composite) profile**: TPO counts of the same rows added; letters concatenated in the
  order the profiles are given; POC, value area, poor high/low and single prints recomputed; IB,
  extensions, open and close are not defined for a composite (``None``), except that open is the
  first profile's and close the last's.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc, price_to_tick

from indicators.frames import positive_int, require, ts_ns
from indicators.profile.volume import check_share, poc_index, value_area_bounds

__all__ = ["TPOProfile", "LETTERS", "period_letter", "tpo_profile", "tpo_profiles",
           "merge_profiles", "split_profile"]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_TPO_LEVELS = 5_000_000
TPO_BAR_COLUMNS = ("ts", "open", "high", "low", "close")


def period_letter(index: int) -> str:
    """Letter of period ``index``: 0 ``A`` .. 25 ``Z``, 26 ``a`` .. 51 ``z``, 52 ``A`` again."""
    return LETTERS[int(index) % len(LETTERS)]


@dataclass(frozen=True)
class TPOProfile:
    """A market profile: ``levels`` (one row per price row, ascending: ``tick, tpo_count, letters,
    single_print, poc, value_area``) and its summary (see the module's definitions)."""

    levels: pd.DataFrame
    poc: int
    vah: int
    val: int
    tpo_count: int
    value_area_tpos: int
    high: int
    low: int
    poor_high: bool
    poor_low: bool
    single_prints: tuple
    ib_high: int | None
    ib_low: int | None
    ext_up: int | None
    ext_up_period: str | None
    ext_down: int | None
    ext_down_period: str | None
    open: int | None
    open_period: str | None
    close: int | None
    close_period: str | None
    dates: tuple = ()
    rows: int = 1
    period: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(minutes=30))

    def summary(self) -> dict:
        """The summary fields (everything but ``levels``) as a dict."""
        return {k: getattr(self, k) for k in (
            "poc", "vah", "val", "tpo_count", "value_area_tpos", "high", "low", "poor_high",
            "poor_low", "single_prints", "ib_high", "ib_low", "ext_up", "ext_up_period",
            "ext_down", "ext_down_period", "open", "open_period", "close", "close_period")}


# --------------------------------------------------------------------------------------------
# checks and conversions


def check_tick_size(tick_size) -> float:
    if isinstance(tick_size, bool) or not isinstance(tick_size, numbers.Real) \
            or not math.isfinite(tick_size) or not tick_size > 0:
        raise ValueError(f"tick_size must be a positive number (e.g. 0.25), got {tick_size!r}")
    return float(tick_size)


def check_period(period) -> pd.Timedelta:
    try:  # bare numbers are refused: pd.Timedelta(30) would be 30 nanoseconds
        td = (pd.Timedelta(period) if isinstance(period, (str, timedelta, np.timedelta64))
              else None)
    except (ValueError, TypeError):
        td = None
    if td is None or pd.isna(td) or not td > pd.Timedelta(0):
        raise ValueError(f"period must be a positive duration such as '30min' or "
                         f"timedelta(minutes=30), got {period!r}")
    return td


def check_session(session) -> Session:
    if not isinstance(session, Session):
        raise ValueError(f"session must be a tradeflow.model.Session, got {type(session).__name__}")
    return session


def _prepare(bars, tick_size, session, period, rows, value_area, ib_periods, what):
    """Validate everything; return the bars (sorted by time) with their UTC ns and days."""
    tick_size = check_tick_size(tick_size)
    session = check_session(session)
    period = check_period(period)
    rows = positive_int(rows, f"{what}: rows")
    share = check_share(value_area)
    ib_periods = positive_int(ib_periods, f"{what}: ib_periods")
    require(bars, TPO_BAR_COLUMNS, f"{what}: bars")
    if not len(bars):
        raise ValueError(f"{what}: no bars, nothing to profile")
    for c in ("open", "high", "low", "close"):
        if not np.isfinite(bars[c].to_numpy(dtype="float64")).all():
            raise ValueError(f"{what}: bars column {c!r} has missing or infinite prices")
    if (bars["high"].to_numpy(dtype="float64") < bars["low"].to_numpy(dtype="float64")).any():
        raise ValueError(f"{what}: some bars have high below low")
    ns = ts_ns(bars["ts"])
    order = np.argsort(ns, kind="stable")
    bars, ns = bars.iloc[order], ns[order]
    return bars, ns, tick_size, session, period, rows, share, ib_periods


def days_and_periods(ns: np.ndarray, session: Session, period: pd.Timedelta, regular_only: bool):
    """(keep mask, trading day (int64 ns of midnight UTC), period index) of each bar."""
    idx = ns_to_utc(ns)
    keep = session.is_regular(idx) if regular_only else np.ones(len(ns), dtype=bool)
    days = session.trading_date(idx).asi8
    uniq, inv = np.unique(days, return_inverse=True)
    if regular_only:
        # the regular open of trading date D is D at rth_start, local time
        start = timedelta(hours=session.rth_start.hour, minutes=session.rth_start.minute)
        local = pd.DatetimeIndex(uniq.view("datetime64[ns]")) + start
        anchors = local.tz_localize(session.timezone, ambiguous=False,
                                    nonexistent="shift_forward").tz_convert("UTC").as_unit("ns")
    else:
        anchors = session.day_start_utc(pd.DatetimeIndex(uniq.view("datetime64[ns]")))
    anchor = anchors.asi8[inv]
    pidx = np.maximum((ns - anchor) // period.value, 0)
    return keep, days, pidx


def _build(ns, low_t, high_t, open_t, close_t, pidx, rows, share, ib_periods, period, dates):
    """The profile of one set of bars (one trading day or part of one) with period indexes."""
    lo_row = np.floor_divide(low_t, rows)
    hi_row = np.floor_divide(high_t, rows)
    periods, first = np.unique(pidx, return_index=True)  # ascending period indexes
    pos = np.searchsorted(periods, pidx)
    p_lo = np.full(len(periods), np.iinfo("int64").max)
    p_hi = np.full(len(periods), np.iinfo("int64").min)
    np.minimum.at(p_lo, pos, lo_row)
    np.maximum.at(p_hi, pos, hi_row)
    base, top = int(p_lo.min()), int(p_hi.max())
    n = top - base + 1
    if n > MAX_TPO_LEVELS:
        raise ValueError(f"tpo_profile: {n} price rows between the lowest and highest tick; "
                         f"group ticks into rows (rows=...) to make fewer")
    diff = np.zeros(n + 1, dtype="int64")
    np.add.at(diff, p_lo - base, 1)
    np.add.at(diff, p_hi - base + 1, -1)
    counts = np.cumsum(diff[:-1])
    letters = [[] for _ in range(n)]
    for p, a, b in zip(periods, p_lo - base, p_hi - base):
        ch = period_letter(p)
        for i in range(a, b + 1):
            letters[i].append(ch)
    letters = ["".join(x) for x in letters]

    ib = slice(0, min(ib_periods, len(periods)))
    ib_lo, ib_hi = int(p_lo[ib].min()), int(p_hi[ib].max())
    after = slice(ib.stop, None)
    up = np.flatnonzero(p_hi[after] > ib_hi)
    down = np.flatnonzero(p_lo[after] < ib_lo)
    ext_up = (top - ib_hi) * rows
    ext_down = (ib_lo - base) * rows
    prof = summarise(np.arange(base, top + 1, dtype="int64") * rows, counts, letters, share,
                     rows, period, dates)
    return _replace(
        prof, ib_high=ib_hi * rows, ib_low=ib_lo * rows,
        ext_up=ext_up, ext_up_period=period_letter(periods[ib.stop + up[0]]) if len(up) else None,
        ext_down=ext_down,
        ext_down_period=period_letter(periods[ib.stop + down[0]]) if len(down) else None,
        open=int(open_t[0]), open_period=period_letter(pidx[0]),
        close=int(close_t[-1]), close_period=period_letter(pidx[-1]))


def _replace(prof: TPOProfile, **kw) -> TPOProfile:
    return dataclasses.replace(prof, **kw)


def _single_prints(counts: np.ndarray) -> np.ndarray:
    multi = counts >= 2
    above = np.cumsum(multi[::-1])[::-1] > 0  # a multi row at or above
    below = np.cumsum(multi) > 0  # a multi row at or below
    return (counts == 1) & above & below


def _runs(mask: np.ndarray, keys: np.ndarray) -> tuple:
    i = np.flatnonzero(mask)
    if not len(i):
        return ()
    breaks = np.flatnonzero(np.diff(i) > 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(i) - 1]))
    return tuple((int(keys[i[s]]), int(keys[i[e]])) for s, e in zip(starts, ends))


def summarise(keys, counts, letters, share, rows, period, dates) -> TPOProfile:
    """A profile from its contiguous rows; IB, extensions, open and close left undefined."""
    counts = np.asarray(counts, dtype="int64")
    p = poc_index(counts)
    lo, hi = value_area_bounds(counts, p, share)
    single = _single_prints(counts)
    at = np.arange(len(keys))
    levels = pd.DataFrame({"tick": keys, "tpo_count": counts,
                           "letters": pd.Series(letters, dtype=object), "single_print": single,
                           "poc": at == p, "value_area": (at >= lo) & (at <= hi)})
    return TPOProfile(
        levels=levels, poc=int(keys[p]), vah=int(keys[hi]), val=int(keys[lo]),
        tpo_count=int(counts.sum()), value_area_tpos=int(counts[lo:hi + 1].sum()),
        high=int(keys[-1]), low=int(keys[0]), poor_high=bool(counts[-1] >= 2),
        poor_low=bool(counts[0] >= 2), single_prints=_runs(single, keys),
        ib_high=None, ib_low=None, ext_up=None, ext_up_period=None, ext_down=None,
        ext_down_period=None, open=None, open_period=None, close=None, close_period=None,
        dates=tuple(dates), rows=int(rows), period=period)


def _columns(bars, tick_size):
    return (price_to_tick(bars["low"].to_numpy(dtype="float64"), tick_size),
            price_to_tick(bars["high"].to_numpy(dtype="float64"), tick_size),
            price_to_tick(bars["open"].to_numpy(dtype="float64"), tick_size),
            price_to_tick(bars["close"].to_numpy(dtype="float64"), tick_size))


def _day_groups(bars, tick_size, session, period, regular_only, ns, what):
    """``{trading date: (bar positions, period index, low, high, open, close ticks)}``."""
    keep, days, pidx = days_and_periods(ns, session, period, bool(regular_only))
    if not keep.any():
        raise ValueError(f"{what}: no bars in the session's regular hours ({session}); "
                         f"pass regular_only=False to use every bar")
    low_t, high_t, open_t, close_t = _columns(bars, tick_size)
    out = {}
    kept = np.flatnonzero(keep)
    for day in np.unique(days[kept]):
        i = kept[days[kept] == day]
        date = ns_to_utc(day)
        out[date] = (i, pidx, low_t, high_t, open_t, close_t)
    return out


# --------------------------------------------------------------------------------------------
# public API


def tpo_profile(bars: pd.DataFrame, tick_size: float, session: Session, period="30min",
                rows: int = 1, value_area: float = 0.70, ib_periods: int = 2,
                regular_only: bool = True) -> TPOProfile:
    """The market profile of one trading day of ``bars`` (see the module's definitions).

    ``bars`` must hold one trading day (after the regular-hours filter); for several days use
    :func:`tpo_profiles`, for a composite :func:`merge_profiles`."""
    profiles = tpo_profiles(bars, tick_size, session, period=period, rows=rows,
                            value_area=value_area, ib_periods=ib_periods,
                            regular_only=regular_only, _what="tpo_profile")
    if len(profiles) > 1:
        days = ", ".join(str(d.date()) for d in profiles)
        raise ValueError(f"tpo_profile: the bars span {len(profiles)} trading days ({days}); "
                         f"use tpo_profiles for one profile per day or merge_profiles for a "
                         f"composite")
    return next(iter(profiles.values()))


def tpo_profiles(bars: pd.DataFrame, tick_size: float, session: Session, period="30min",
                 rows: int = 1, value_area: float = 0.70, ib_periods: int = 2,
                 regular_only: bool = True, _what: str = "tpo_profiles") -> dict:
    """One profile per trading day: ``{trading date (midnight UTC Timestamp): TPOProfile}``,
    dates ascending. Days without bars (in regular hours, with ``regular_only``) are absent."""
    bars, ns, tick_size, session, period, rows, share, ib_periods = _prepare(
        bars, tick_size, session, period, rows, value_area, ib_periods, _what)
    groups = _day_groups(bars, tick_size, session, period, regular_only, ns, _what)
    out = {}
    for date, (i, pidx, low_t, high_t, open_t, close_t) in groups.items():
        out[date] = _build(ns[i], low_t[i], high_t[i], open_t[i], close_t[i], pidx[i], rows,
                           share, ib_periods, period, (date,))
    return out


def merge_profiles(profiles, value_area: float = 0.70) -> TPOProfile:
    """A composite of several profiles (a dict as from :func:`tpo_profiles` or a sequence):
    TPO counts of each row added, letters concatenated in the given order, POC, value area, poor
    high/low and single prints recomputed; open from the first profile, close from the last; IB
    and range extensions ``None``. All profiles must share ``rows``."""
    share = check_share(value_area)
    items = list(profiles.values()) if isinstance(profiles, dict) else list(profiles)
    if not items:
        raise ValueError("merge_profiles: no profiles to merge")
    if not all(isinstance(p, TPOProfile) for p in items):
        raise ValueError("merge_profiles: expected TPOProfile objects (from tpo_profile)")
    rows = {p.rows for p in items}
    if len(rows) > 1:
        raise ValueError(f"merge_profiles: the profiles have different rows {sorted(rows)}; "
                         f"build them with the same rows=...")
    rows = rows.pop()
    base = min(p.low for p in items) // rows
    top = max(p.high for p in items) // rows
    n = top - base + 1
    counts = np.zeros(n, dtype="int64")
    letters = [""] * n
    for p in items:
        i = p.levels["tick"].to_numpy(dtype="int64") // rows - base
        counts[i] += p.levels["tpo_count"].to_numpy(dtype="int64")
        for j, s in zip(i, p.levels["letters"]):
            letters[j] += s
    keys = np.arange(base, top + 1, dtype="int64") * rows
    dates = tuple(d for p in items for d in p.dates)
    periods = {p.period for p in items}
    if len(periods) > 1:
        raise ValueError(f"merge_profiles: the profiles have different periods "
                         f"{sorted(str(x) for x in periods)}; build them with the same period=...")
    prof = summarise(keys, counts, letters, share, rows, items[0].period, dates)
    first, last = items[0], items[-1]
    return _replace(prof, open=first.open, open_period=first.open_period, close=last.close,
                    close_period=last.close_period)


def split_profile(bars: pd.DataFrame, tick_size: float, session: Session, at, period="30min",
                  rows: int = 1, value_area: float = 0.70, ib_periods: int = 2,
                  regular_only: bool = True) -> tuple[TPOProfile, TPOProfile]:
    """Two profiles of one trading day: bars opening before ``at`` and bars opening at or after
    it. Both keep the day's period letters (a period cut by ``at`` gives its letter to both); each
    computes its own IB from its own first ``ib_periods`` periods."""
    bars, ns, tick_size, session, period, rows, share, ib_periods = _prepare(
        bars, tick_size, session, period, rows, value_area, ib_periods, "split_profile")
    try:
        cut = pd.Timestamp(at)
    except (ValueError, TypeError):
        raise ValueError(f"split_profile: at must be a time, got {at!r}") from None
    if pd.isna(cut):
        raise ValueError(f"split_profile: at must be a time, got {at!r}")
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    groups = _day_groups(bars, tick_size, session, period, regular_only, ns,
                         "split_profile")
    if len(groups) > 1:
        raise ValueError(f"split_profile: the bars span {len(groups)} trading days; "
                         f"pass the bars of one day")
    (date, (i, pidx, low_t, high_t, open_t, close_t)), = groups.items()
    parts = []
    for side in (i[ns[i] < cut.value], i[ns[i] >= cut.value]):
        if not len(side):
            raise ValueError(f"split_profile: no bars on one side of {cut}; split at a time "
                             f"inside the day's bars")
        parts.append(_build(ns[side], low_t[side], high_t[side], open_t[side], close_t[side],
                            pidx[side], rows, share, ib_periods, period, (date,)))
    return parts[0], parts[1]
