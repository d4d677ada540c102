"""Volume profile: volume per price level over a span of footprint cells, its POC and value area,
high- and low-volume nodes, per-session and composite profiles.

Input: footprint cells (``tradeflow.model`` layout ``ts, tick, volume, ask_volume, bid_volume,
trades``). Levels are integer tick indexes; with ``rows=N`` a level is a row of N ticks keyed by
its lowest tick (``floor(tick / N) * N``). Pure functions, no I/O.

Definitions
-----------
* **Levels**: every row from the lowest to the highest traded one, rows without trades included
  with volume 0 (so the profile and its value area are contiguous).
* **POC** (point of control): the level with the largest volume; ties go to the level closest to
  the middle of the profile's range, then to the lower one.
* **Value area**: the standard expansion from the POC (CBOT Market Profile handbook; the same rule
  Sierra Chart and most platforms describe): start with the POC; look at the next two levels above
  the area and the next two below (fewer where the profile ends); add the pair with the larger
  volume sum; repeat until the area holds at least ``value_area`` (default 70%) of the volume.
  Ties between the two pairs go to the pair above (a convention; platforms differ). Once one side is
  exhausted the other side's pairs are added. **VAH**/**VAL** are the keys of its highest/lowest
  level. Whole pairs are added, so the area may hold a little more than the target.
* **High-/low-volume nodes**: the level volumes are smoothed with a centred moving average of
  ``smooth`` levels (shrunk at the ends); an HVN is a level whose smoothed volume is the largest
  within ``span`` levels on each side (strictly larger than those below, at least as large as those
  above, so a flat top yields its lowest level) and an LVN likewise the smallest. The first and
  last level are never nodes (they have no neighbour on one side).
* **Session profile**: the cells of one trading day (``Session.trading_date`` of the cell's bar
  time); a **composite** sums the cells of several consecutive trading days.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc

from indicators.frames import positive_int, require, ts_ns

__all__ = ["VolumeProfile", "volume_profile", "value_area_bounds", "volume_nodes",
           "session_profiles", "composite_profile"]

MAX_PROFILE_LEVELS = 20_000_000
PROFILE_SUMS = ("volume", "ask_volume", "bid_volume", "trades")


@dataclass(frozen=True)
class VolumeProfile:
    """A volume profile: ``levels`` (one row per level: ``tick, volume, ask_volume, bid_volume,
    trades, poc, value_area``, ticks ascending) and its summary."""

    levels: pd.DataFrame
    poc: int
    vah: int
    val: int
    volume: float
    value_area_volume: float
    rows: int = 1

    def summary(self) -> dict:
        return {"poc": self.poc, "vah": self.vah, "val": self.val, "volume": self.volume,
                "value_area_volume": self.value_area_volume}


def check_share(value_area) -> float:
    if isinstance(value_area, bool) or not isinstance(value_area, numbers.Real) \
            or not math.isfinite(value_area) or not 0 < value_area <= 1:
        raise ValueError(f"value_area must be a share in (0, 1] (0.70 for 70%), got {value_area!r}")
    return float(value_area)


def poc_index(volume: np.ndarray) -> int:
    """Index of the largest volume; ties: closest to the middle of the array, then the lower."""
    volume = np.asarray(volume, dtype="float64")
    cand = np.flatnonzero(volume == volume.max())
    dist = np.abs(2 * cand - (len(volume) - 1))
    return int(cand[np.lexsort((cand, dist))[0]])


def value_area_bounds(volume: np.ndarray, poc: int, share: float = 0.70) -> tuple[int, int]:
    """(first, last) index of the value area of ``volume`` (levels ascending) around ``poc``, by
    the two-levels-at-a-time expansion (ties to the pair above)."""
    share = check_share(share)
    v = np.asarray(volume, dtype="float64")
    target = share * float(v.sum())
    if len(v) > 200 and np.isfinite(target) and v.min() >= 0:  # faster past ~200 levels
        return _expand_merged(v, int(poc), target)
    return _expand_loop(v, int(poc), target)


def _expand_loop(v: np.ndarray, poc: int, target: float) -> tuple[int, int]:
    """The expansion step by step (on Python floats: the same additions as numpy's)."""
    n, x = len(v), v.tolist()
    lo = hi = poc
    acc = x[lo]
    while acc < target and (lo > 0 or hi < n - 1):
        up = (x[hi + 1] + x[hi + 2] if hi + 2 < n else x[hi + 1]) if hi < n - 1 else -1.0
        down = (x[lo - 2] + x[lo - 1] if lo >= 2 else x[lo - 1]) if lo > 0 else -1.0
        if up >= down:
            hi, acc = min(hi + 2, n - 1), acc + up
        else:
            lo, acc = max(lo - 2, 0), acc + down
    return lo, hi


def _pairs(side: np.ndarray) -> np.ndarray:
    """Sums of consecutive pairs of ``side`` (nearest the POC first); a last single stays."""
    return side[0::2] + np.append(side[1::2], 0.0) if len(side) % 2 else \
        side[0::2] + side[1::2]


def _expand_merged(v: np.ndarray, poc: int, target: float) -> tuple[int, int]:
    """The expansion without a Python loop, for volumes >= 0. Taking the larger of the two next
    pairs (ties above) takes the pairs in the order of a merge of the two sides' *running
    minimum* pair sums, descending (ties above) -- by induction over the steps: a pair is taken
    after everything nearer the POC on its side, and a smaller one earlier on a side holds that
    side back. The area's running volume is then one sequential ``cumsum`` (the same additions
    as the loop), and the area stops at the first pair that reaches the target."""
    up, down = _pairs(v[poc + 1:]), _pairs(v[:poc][::-1])
    ku, kd = np.minimum.accumulate(up), np.minimum.accumulate(down)
    pos_up = np.arange(len(up)) + np.searchsorted(-kd, -ku, side="left")
    pos_down = np.arange(len(down)) + np.searchsorted(-ku, -kd, side="right")
    merged = np.empty(len(up) + len(down) + 1)
    is_up = np.zeros(len(merged), dtype=bool)
    merged[0] = v[poc]
    merged[1 + pos_up], merged[1 + pos_down] = up, down
    is_up[1 + pos_up] = True
    reached = np.flatnonzero(np.cumsum(merged) >= target)
    taken = int(reached[0]) if len(reached) else len(merged) - 1
    n_up = int(is_up[1:taken + 1].sum())
    return max(poc - 2 * (taken - n_up), 0), min(poc + 2 * n_up, len(v) - 1)


def _dense(cells: pd.DataFrame, rows: int, what: str):
    """Volumes per level over the whole range: (keys, {col: array})."""
    require(cells, ("tick", "volume", "ask_volume", "bid_volume"), what)
    rows = positive_int(rows, f"{what}: rows")
    if not len(cells):
        raise ValueError(f"{what}: no cells, nothing to profile")
    key = np.floor_divide(cells["tick"].to_numpy(dtype="int64"), rows)
    lo, hi = int(key.min()), int(key.max())
    if hi - lo + 1 > MAX_PROFILE_LEVELS:
        raise ValueError(f"{what}: {hi - lo + 1} levels between the lowest and highest tick; "
                         f"group ticks into rows (rows=...) to make fewer")
    idx = key - lo
    out = {}
    for c in PROFILE_SUMS:
        w = (cells[c].to_numpy(dtype="float64") if c in cells.columns else np.zeros(len(idx)))
        out[c] = np.bincount(idx, weights=w, minlength=hi - lo + 1)
    out["trades"] = out["trades"].round().astype("int64")
    return (np.arange(lo, hi + 1, dtype="int64") * rows), out


def volume_profile(cells: pd.DataFrame, rows: int = 1, value_area: float = 0.70) -> VolumeProfile:
    """The volume profile of all ``cells`` (see the module's definitions)."""
    share = check_share(value_area)
    keys, cols = _dense(cells, rows, "volume_profile")
    return profile_from_levels(keys, cols, share, rows, "volume_profile")


def profile_from_levels(keys: np.ndarray, cols: dict, share: float, rows: int,
                        what: str = "volume_profile") -> VolumeProfile:
    """The :class:`VolumeProfile` of contiguous levels ``keys`` (ascending) with their summed
    ``cols`` (``volume, ask_volume, bid_volume`` float, ``trades`` int); shared by
    :func:`volume_profile` and the live form (:mod:`.live`), so both build the same object."""
    v = cols["volume"]
    total = float(v.sum())
    if not total > 0:
        raise ValueError(f"{what}: the cells hold no volume, there is no POC")
    p = poc_index(v)
    lo, hi = value_area_bounds(v, p, share)
    at = np.arange(len(keys))
    levels = pd.DataFrame({"tick": keys, **cols})
    levels["poc"] = at == p
    levels["value_area"] = (at >= lo) & (at <= hi)
    return VolumeProfile(levels, int(keys[p]), int(keys[hi]), int(keys[lo]), total,
                         float(v[lo:hi + 1].sum()), int(rows))


def volume_nodes(profile: VolumeProfile | pd.DataFrame, smooth: int = 5, span: int = 3
                 ) -> pd.DataFrame:
    """High- and low-volume nodes: ``tick, kind ("hvn"/"lvn"), volume, smoothed``, by tick.

    ``profile`` is a :class:`VolumeProfile` or its ``levels`` frame (contiguous levels, ascending).
    Rule in the module's definitions."""
    levels = profile.levels if isinstance(profile, VolumeProfile) else profile
    require(levels, ("tick", "volume"), "volume_nodes: levels")
    smooth = positive_int(smooth, "volume_nodes: smooth")
    span = positive_int(span, "volume_nodes: span")
    v = levels["volume"].to_numpy(dtype="float64")
    tick = levels["tick"].to_numpy(dtype="int64")
    n = len(v)
    if n < 3:
        return pd.DataFrame({"tick": np.empty(0, "int64"), "kind": np.empty(0, object),
                             "volume": np.empty(0), "smoothed": np.empty(0)})
    h = smooth // 2
    cs = np.concatenate(([0.0], np.cumsum(v)))
    a = np.maximum(np.arange(n) - h, 0)
    b = np.minimum(np.arange(n) + smooth - h, n)  # window [a, b): smooth levels centred
    s = (cs[b] - cs[a]) / (b - a)
    pad_lo = np.concatenate((np.full(span, np.nan), s, np.full(span, np.nan)))
    win = np.lib.stride_tricks.sliding_window_view(pad_lo, 2 * span + 1)  # win[i] centred on i
    below, above = win[:, :span], win[:, span + 1:]
    with np.errstate(invalid="ignore"):
        hvn = (np.nan_to_num(below, nan=-np.inf) < s[:, None]).all(1) & \
              (np.nan_to_num(above, nan=-np.inf) <= s[:, None]).all(1)
        lvn = (np.nan_to_num(below, nan=np.inf) > s[:, None]).all(1) & \
              (np.nan_to_num(above, nan=np.inf) >= s[:, None]).all(1)
    inner = np.zeros(n, dtype=bool)
    inner[1:-1] = True
    out = []
    for kind, mask in (("hvn", hvn & inner), ("lvn", lvn & inner)):
        i = np.flatnonzero(mask)
        out.append(pd.DataFrame({"tick": tick[i], "kind": kind, "volume": v[i], "smoothed": s[i]}))
    return pd.concat(out, ignore_index=True).sort_values("tick", ignore_index=True)


def _days(cells: pd.DataFrame, session: Session) -> pd.DatetimeIndex:
    require(cells, ("ts",), "session profiles: cells")
    if not isinstance(session, Session):
        raise ValueError(f"session must be a tradeflow.model.Session, got {type(session).__name__}")
    ns = ts_ns(cells["ts"])
    return session.trading_date(ns_to_utc(ns))


def session_profiles(cells: pd.DataFrame, session: Session, rows: int = 1,
                     value_area: float = 0.70) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One profile per trading day of ``session``.

    Returns ``(levels, summary)``: ``levels`` is every day's levels frame with a leading ``date``
    column (the trading date, midnight UTC); ``summary`` has one row per day: ``date, poc, vah, val,
    volume, value_area_volume``. Days whose cells hold no volume are left out."""
    share = check_share(value_area)
    positive_int(rows, "session_profiles: rows")
    if not len(cells):
        raise ValueError("session_profiles: no cells, nothing to profile")
    days = _days(cells, session)
    levels, summary = [], []
    for day, part in cells.groupby(days.asi8, sort=True):
        if not part["volume"].sum() > 0:
            continue
        prof = volume_profile(part, rows=rows, value_area=share)
        date = ns_to_utc(day)
        levels.append(prof.levels.assign(date=date))
        summary.append({"date": date, **prof.summary()})
    if not summary:
        raise ValueError("session_profiles: the cells hold no volume")
    lv = pd.concat(levels, ignore_index=True)
    lv = lv[["date"] + [c for c in lv.columns if c != "date"]]
    return lv, pd.DataFrame(summary)


def composite_profile(cells: pd.DataFrame, session: Session, sessions: int = 5, end=None,
                      rows: int = 1, value_area: float = 0.70) -> VolumeProfile:
    """The profile of the last ``sessions`` trading days (of those present in ``cells``) up to and
    including the trading date ``end`` (default: the latest day present)."""
    sessions = positive_int(sessions, "composite_profile: sessions")
    if not len(cells):
        raise ValueError("composite_profile: no cells, nothing to profile")
    days = _days(cells, session).asi8
    present = np.unique(days)
    if end is not None:
        end_ts = pd.Timestamp(end)
        end_ts = end_ts.tz_localize("UTC") if end_ts.tzinfo is None else end_ts.tz_convert("UTC")
        present = present[present <= end_ts.normalize().value]
        if not len(present):
            raise ValueError(f"composite_profile: no trading day on or before {end}")
    chosen = present[-sessions:]
    return volume_profile(cells[np.isin(days, chosen)], rows=rows, value_area=value_area)
