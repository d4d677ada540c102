"""Live ``naked_pocs``: ``NakedPocs`` (bar and session POCs, and the naked ones by level) and
``_DayProfile`` (the volume per level of the current trading day, for session POCs).

A *level* is a tick, or with ``rows=N`` the index k of the row of N ticks keyed ``k*N`` (the
batch function's rows): everything here is kept in levels and turned into row keys on output."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import Session, ns_to_utc

from ...frames import group_starts, positive_int
from ..prints import first_cover
from .per_bar import row_pocs
from .poc import group_pocs
from .storage import Columns, Touch, rows_frame

_MISSING = np.iinfo("int64").min  # NaT as int64 nanoseconds


class _DayProfile:
    """Volume per level of one trading day, dense over a span that grows as needed: adding a
    bar's cells costs the cells, and the POC costs the day's span -- never the history. Volumes
    are added in order from 0, as the batch profile's ``bincount`` adds them."""

    def __init__(self, day: int):
        self.day, self.base, self.vol = day, 0, np.zeros(0)
        self.lo = self.hi = None  # lowest and highest traded level

    def copy(self) -> "_DayProfile":
        out = _DayProfile(self.day)
        out.base, out.vol, out.lo, out.hi = self.base, self.vol.copy(), self.lo, self.hi
        return out

    def add(self, ticks: np.ndarray, vols: np.ndarray) -> None:
        if not len(ticks):
            return
        lo, hi = int(ticks.min()), int(ticks.max())
        if self.lo is not None:
            lo, hi = min(lo, self.lo), max(hi, self.hi)
        if lo < self.base or hi >= self.base + len(self.vol):
            span = hi - lo + 1
            base = lo - span // 2  # room on both sides: growing is rare
            vol = np.zeros(2 * span)
            if self.lo is not None:  # the traded part moves over; the rest is zeros
                vol[self.lo - base:self.hi - base + 1] = \
                    self.vol[self.lo - self.base:self.hi - self.base + 1]
            self.base, self.vol = base, vol
        self.lo, self.hi = lo, hi
        np.add.at(self.vol, ticks - self.base, vols)

    def poc(self):
        """The POC level (rule of the volume profile), or None without volume."""
        if self.lo is None:
            return None
        v = self.vol[self.lo - self.base:self.hi - self.base + 1]
        if not v.sum() > 0:
            return None
        pick, _, _ = group_pocs(np.zeros(len(v), "int64"), np.arange(self.lo, self.hi + 1), v)
        return int(self.lo + pick[0])


class NakedPocs:
    """``naked_pocs``. Kept: one row per bar with cells (``bar, poc, until``) and, with a session,
    one per trading day with volume, POCs as levels; ``store`` maps a level to the fixed POCs
    there that no later bar has traded through yet (codes: bar row ``r``, or ``-(r + 1)`` for
    session row ``r``), so a touched bar only looks up the levels of its own range. Session POCs
    need the volume per level of the current day from its closed bars (``profile``)."""

    def __init__(self, owner, session=None, rows=1):
        if session is not None and not isinstance(session, Session):
            raise ValueError(f"naked_pocs: session must be a tradeflow.model.Session (e.g. "
                             f"instrument.session) or None, got {type(session).__name__}")
        self.owner, self.session = owner, session
        self.row_ticks = positive_int(rows, "naked_pocs: rows")
        self.rows = Columns(bar="int64", ts="int64", poc="int64", until="int64")
        self.start = Columns(s="int64")
        self.days = Columns(day="int64", poc="int64", until="int64")
        self.store: dict[int, list[int]] = {}
        self.open_day = None  # (day, its row or None) of the day still going on
        self.profile = None  # _DayProfile of the last day's closed bars
        self.changed = (np.empty(0, "int64"), np.empty(0, "int64"))

    # -- the update

    def update(self, t: Touch) -> None:
        n, bar_rows_before = self.row_ticks, len(self.rows)
        has = t.bars["ncells"] > 0
        bar = np.arange(t.j0, t.n)[has]
        lo, hi = t.bars["lo"][has] // n, t.bars["hi"][has] // n  # in levels
        pick, g = row_pocs(t, n)  # the POC rows, in bar order as the bars with cells
        poc = g["tick"][pick] // n
        days = (self.owner._days.keys(self.session, t.bars["ts"][has])
                if self.session is not None else None)
        if days is not None and len(days):
            self._close_open_day(days[0])
        cand_ticks = self._candidates(lo, hi)
        day_q = self._session_queries(t, days) if days is not None and len(days) else []
        q_poc = np.concatenate([cand_ticks, poc] + [np.array([d[1]]) for d in day_q]
                               ).astype("int64")
        q_after = np.concatenate([np.full(len(cand_ticks), -1), np.arange(len(bar))]
                                 + [np.array([d[2]]) for d in day_q]).astype("int64")
        hit = first_cover(lo, hi, q_after, q_poc) if len(bar) else np.full(len(q_poc), -1)
        until = np.where(hit >= 0, t.bars["ts"][has][np.maximum(hit, 0)] if len(bar) else 0,
                         _MISSING)
        k = len(cand_ticks)
        covered = self._cover(cand_ticks, until[:k])
        bar_rows = self._write_bars(t, bar, poc, until[k:k + len(bar)])
        day_rows = self._write_days(day_q, until[k + len(bar):], days)
        if len(self.rows) != bar_rows_before:  # session rows follow the bar rows: they moved
            day_rows = np.arange(len(self.days))
        self.changed = (np.union1d(covered[0], bar_rows), np.union1d(covered[1], day_rows))

    def idle(self) -> None:
        self.changed = (np.empty(0, "int64"), np.empty(0, "int64"))

    def trim(self, bar: int) -> None:
        """The bars before ``bar`` will not change: their row starts are not needed (their
        rows are kept, with their times: a POC stays naked until a later bar trades there)."""
        self.start.drop_before(bar)

    def size(self) -> int:
        return len(self.rows) + len(self.days)

    def _candidates(self, lo, hi) -> np.ndarray:
        """Ticks in the touched bars' span holding naked POCs (fixed before this update)."""
        if not len(lo) or not self.store:
            return np.empty(0, "int64")
        a, b = int(lo.min()), int(hi.max())
        if b - a + 1 <= len(self.store):
            ticks = [x for x in range(a, b + 1) if x in self.store]
        else:
            ticks = [x for x in self.store if a <= x <= b]
        return np.asarray(sorted(ticks), dtype="int64")

    def _cover(self, ticks, until):
        """Set ``naked_until`` of every stored POC at the covered ``ticks``; returns the bar and
        session rows changed."""
        bar_rows, day_rows = [], []
        for tick, u in zip(ticks.tolist(), until.tolist()):
            if u == _MISSING:
                continue
            for code in self.store.pop(tick):
                if code >= 0:
                    self.rows._data["until"][code] = u
                    bar_rows.append(code)
                else:
                    self.days._data["until"][-code - 1] = u
                    day_rows.append(-code - 1)
        return np.asarray(bar_rows, "int64"), np.asarray(day_rows, "int64")

    def _remember(self, tick: int, code: int) -> None:
        self.store.setdefault(int(tick), []).append(int(code))

    def _write_bars(self, t: Touch, bar, poc, until) -> np.ndarray:
        cut = self.start.at("s", t.j0) if len(self.start) > t.j0 else len(self.rows)
        self.rows.cut(cut)
        self.start.cut(t.j0)
        self.start.append({"s": cut + np.searchsorted(bar, np.arange(t.j0, t.n))})
        self.rows.append({"bar": bar, "ts": t.bars["ts"][bar - t.j0], "poc": poc,
                          "until": until})
        for i in np.flatnonzero((bar < t.n_closed) & (until == _MISSING)):
            self._remember(poc[i], cut + i)  # closed and still naked: later bars may cover it
        return np.arange(cut, len(self.rows))

    # -- session POCs

    def _close_open_day(self, first_day: int) -> None:
        """The day still going on at the last update is over when a bar of a later day comes:
        its POC is final, so it joins the store (its row does not change)."""
        if self.open_day is None or self.open_day[0] >= first_day:
            return
        day, row = self.open_day
        if row is not None and self.days["until"][row] == _MISSING:
            self._remember(self.days["poc"][row], -row - 1)
        self.open_day = None

    def _profile_of(self, day: int) -> _DayProfile:
        """The profile of ``day`` from its closed bars before this update (empty for a new day)."""
        return self.profile if self.profile is not None and self.profile.day == day \
            else _DayProfile(day)

    def _session_queries(self, t: Touch, days) -> list:
        """(day, POC, index among the touched bars with cells of its last bar) for each touched
        day with volume; adds the touched closed bars of the last day to its profile."""
        c = t.cells
        cell_day = days[np.cumsum(group_starts(c["bar"])) - 1] if len(c["bar"]) else days[:0]
        closed = c["bar"] < t.n_closed
        out, bounds = [], np.flatnonzero(group_starts(days))
        last = int(days[-1])
        for a, b in zip(bounds, np.append(bounds[1:], len(days))):
            day = int(days[a])
            sel = cell_day == day
            base = self._profile_of(day)
            if day == last:  # its closed bars stay in the profile for the next update
                done = sel & closed
                base.add(c["tick"][done] // self.row_ticks, c["volume"][done])
                self.profile, sel = base, sel & ~closed
            prof = base.copy() if sel.any() else base
            prof.add(c["tick"][sel] // self.row_ticks, c["volume"][sel])
            poc = prof.poc()
            if poc is not None:
                out.append((day, poc, b - 1))
        return out

    def _write_days(self, day_q, until, days) -> np.ndarray:
        if days is None or not len(days):
            return np.empty(0, "int64")
        if self.open_day is not None and self.open_day[1] is not None:
            self.days.cut(self.open_day[1])  # the day going on is written anew
        first = len(self.days)
        self.open_day = (int(days[-1]), None)
        for (day, poc, _), u in zip(day_q, until.tolist()):
            row = len(self.days)
            self.days.append({"day": [day], "poc": [poc], "until": [u]})
            if day == days[-1]:
                self.open_day = (day, row)
            elif u == _MISSING:
                self._remember(poc, -row - 1)
        return np.arange(first, len(self.days))

    # -- frames

    def result(self):
        return self.frame(np.arange(len(self.rows)), np.arange(len(self.days)))

    def changes(self):
        return self.frame(*self.changed)

    def frame(self, bar_rows, day_rows) -> pd.DataFrame:
        b, d = self.rows.take(bar_rows), self.days.take(day_rows)
        ts = np.concatenate([b["ts"], d["day"]])
        kind = np.array(["bar"] * len(b["bar"]) + ["session"] * len(d["day"]), dtype=object)
        index = np.concatenate([bar_rows, len(self.rows) + np.asarray(day_rows, "int64")])
        return rows_frame({"ts": ns_to_utc(ts), "kind": kind,
                           "poc": np.concatenate([b["poc"], d["poc"]]) * self.row_ticks,
                           "naked_until": ns_to_utc(np.concatenate([b["until"], d["until"]]))},
                          index if len(index) != len(self.rows) + len(self.days)
                          else pd.RangeIndex(len(index)))
