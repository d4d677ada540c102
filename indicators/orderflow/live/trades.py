"""Live studies over the trades themselves rather than the bars: ``Prints`` (``big_trades``)
and ``Sweeps`` (``sweeps``)."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from tradeflow.model import ns_to_utc, price_to_tick

from ...frames import group_starts, non_negative, positive_number, positive_tick_size
from ..aggression import max_gap_ns
from .storage import Columns, rows_frame


class Prints:
    """``big_trades``. Kept: the rows of timestamps before the last one (final) and the groups of
    the last timestamp (one per side, or the big single prints), which the next batch may extend
    or join: ``size``, ``pv`` (size-weighted price sum), low, high, prints."""

    _EMPTY = {"t": "int64", "side": "int64", "size": "float64", "pv": "float64",
              "lo": "float64", "hi": "float64", "n": "int64"}

    def __init__(self, owner, min_size, aggregate_same_ts=True):
        self.min_size = positive_number(min_size, "big_trades: min_size")
        if not isinstance(aggregate_same_ts, (bool, np.bool_)):
            raise ValueError(f"big_trades: aggregate_same_ts must be True or False, "
                             f"got {aggregate_same_ts!r}")
        self.aggregate = bool(aggregate_same_ts)
        self.rows = Columns(ts="int64", side="int8", price="float64", size="float64",
                             prints="int64", price_low="float64", price_high="float64")
        self.open = {k: np.empty(0, v) for k, v in self._EMPTY.items()}
        self.changed = slice(0, 0)

    def update(self, tr: dict) -> None:
        t, price, size, side = tr["t"], tr["price"], tr["size"], tr["side"]
        work = {"t": t, "side": side, "size": size, "pv": price * size, "lo": price, "hi": price,
                "n": np.ones(len(t), "int64")}
        work = {k: np.concatenate([self.open[k], work[k]]) for k in work}
        order = np.lexsort((-work["side"], work["t"]))  # stable: earlier prints first
        w = {k: v[order] for k, v in work.items()}
        g = self._groups(w) if self.aggregate else w
        last = g["t"] == g["t"][-1]
        before = len(self.rows)
        self._append(g, ~last & (g["size"] >= self.min_size))
        self.open = {k: v[last & (self.aggregate | (g["size"] >= self.min_size))]
                     for k, v in g.items()}
        self.changed = slice(before, None)

    @staticmethod
    def _groups(w: dict) -> dict:
        s = np.flatnonzero(group_starts(w["t"]) | group_starts(w["side"]))
        return {"t": w["t"][s], "side": w["side"][s], "size": np.add.reduceat(w["size"], s),
                "pv": np.add.reduceat(w["pv"], s), "lo": np.minimum.reduceat(w["lo"], s),
                "hi": np.maximum.reduceat(w["hi"], s), "n": np.add.reduceat(w["n"], s)}

    def _append(self, g: dict, keep, into: Columns | None = None) -> None:
        tot, lo, hi = g["size"][keep], g["lo"][keep], g["hi"][keep]
        if self.aggregate:
            with np.errstate(invalid="ignore", divide="ignore"):
                vw = np.where(tot > 0, g["pv"][keep] / tot, (lo + hi) / 2)
            vw = np.clip(vw, lo, hi)  # as the batch: rounding cannot leave the prints' range
        else:
            vw = lo
        (self.rows if into is None else into).append(
            {"ts": g["t"][keep], "side": g["side"][keep], "price": vw, "size": tot,
             "prints": g["n"][keep], "price_low": lo, "price_high": hi})

    def idle(self) -> None:
        self.changed = slice(len(self.rows), None)  # the open groups' rows, unchanged

    def size(self) -> int:
        return len(self.rows) + int((self.open["size"] >= self.min_size).sum())

    def _open_rows(self) -> dict:
        tail = Columns(**{k: v.dtype for k, v in self.rows._data.items()})
        self._append(self.open, self.open["size"] >= self.min_size, tail)
        return tail.take(slice(None))

    def result(self):
        return self.frame(slice(0, None))

    def changes(self):
        return self.frame(self.changed)

    def frame(self, rows) -> pd.DataFrame:
        start = rows.indices(len(self.rows))[0]
        done, tail = self.rows.take(rows), self._open_rows()
        cols = {k: np.concatenate([done[k], tail[k]]) for k in done}
        cols["ts"] = ns_to_utc(cols["ts"])
        return rows_frame(cols, pd.RangeIndex(start, start + len(cols["size"])))


class Sweeps:
    """``sweeps``. Kept: the qualifying runs that ended, and the run of the last trade (it may
    go on): its start time, side, first tick, levels, size, prints, and the last trade's time and
    tick (the next trade continues the run or breaks it)."""

    def __init__(self, owner, tick_size, min_levels=3, max_gap="250ms", min_size=0):
        self.tick_size = positive_tick_size(tick_size, "sweeps")
        if isinstance(min_levels, bool) or not isinstance(min_levels, numbers.Integral) \
                or min_levels < 2:
            raise ValueError(f"sweeps: min_levels must be a whole number >= 2 (a sweep clears "
                             f"at least two levels), got {min_levels!r}")
        self.min_levels = int(min_levels)
        self.gap = max_gap_ns(max_gap)
        self.min_size = non_negative(min_size, "sweeps: min_size")
        self.rows = Columns(ts_start="int64", ts_end="int64", side="int8", tick_start="int64",
                             tick_end="int64", levels="int64", size="float64", trades="int64")
        self.open = None  # the last run: dict of scalars
        self.changed = slice(0, 0)

    def _breaks(self, t, side, tick):
        """Where a run breaks before each trade, and where a run's tick changes (the batch rule;
        the first trade is compared with the last one of the previous batch)."""
        m = len(t)
        pt, ps, pk = (np.zeros(m, "int64") for _ in range(3))
        pt[1:], ps[1:], pk[1:] = t[:-1], side[:-1], tick[:-1]
        if self.open is not None:
            pt[0], ps[0], pk[0] = self.open["t_last"], self.open["side"], self.open["tick_last"]
        brk = (side != ps) | (side == 0) | (t - pt > self.gap) | (side * (tick - pk) < 0)
        if self.open is None:
            brk[0] = True
        changed = ((tick != pk) & ~brk).astype("int64")
        return brk, changed

    def update(self, tr: dict) -> None:
        t, size, side = tr["t"], tr["size"], tr["side"]
        tick = price_to_tick(tr["price"], self.tick_size)
        brk, changed = self._breaks(t, side, tick)
        s = np.flatnonzero(brk)
        if not brk[0]:
            s = np.concatenate(([0], s))
        e = np.append(s[1:], len(t)) - 1
        runs = {"ts_start": t[s], "ts_end": t[e], "side": side[s].astype("int8"),
                "tick_start": tick[s], "tick_end": tick[e],
                "levels": 1 + np.add.reduceat(changed, s), "size": np.add.reduceat(size, s),
                "trades": (e - s + 1).astype("int64")}
        if not brk[0]:  # the first run continues the last batch's
            o = self.open
            runs["ts_start"][0], runs["side"][0] = o["ts_start"], o["side"]
            runs["tick_start"][0] = o["tick_start"]
            runs["levels"][0] += o["levels"] - 1
            runs["size"][0] = o["size"] + runs["size"][0]
            runs["trades"][0] += o["trades"]
        before = len(self.rows)
        if brk[0] and self.open is not None:  # the last batch's run ended before this batch
            ended = {k: np.asarray([self.open[k]], dtype=v.dtype) for k, v in runs.items()}
            self.rows.append({k: v[self._keep(ended)] for k, v in ended.items()})
        done = np.arange(len(s)) < len(s) - 1
        self.rows.append({k: v[done & self._keep(runs)] for k, v in runs.items()})
        self.open = {k: v[-1] for k, v in runs.items()}
        self.open.update(t_last=t[-1], tick_last=tick[-1])
        self.changed = slice(before, None)

    def idle(self) -> None:
        self.changed = slice(len(self.rows), None)  # the open run's row, unchanged

    def size(self) -> int:
        if self.open is None:
            return len(self.rows)
        tail = {k: np.asarray([self.open[k]]) for k in ("side", "levels", "size")}
        return len(self.rows) + int(self._keep(tail)[0])

    def _keep(self, runs: dict) -> np.ndarray:
        return ((runs["side"] != 0) & (runs["levels"] >= self.min_levels)
                & (runs["size"] >= self.min_size))

    def result(self):
        return self.frame(slice(0, None))

    def changes(self):
        return self.frame(self.changed)

    def frame(self, rows) -> pd.DataFrame:
        start = rows.indices(len(self.rows))[0]
        cols = self.rows.take(rows)
        if self.open is not None:
            tail = {k: np.asarray([self.open[k]], dtype=cols[k].dtype) for k in cols}
            if self._keep(tail)[0]:
                cols = {k: np.concatenate([cols[k], tail[k]]) for k in cols}
        cols["ts_start"], cols["ts_end"] = ns_to_utc(cols["ts_start"]), ns_to_utc(cols["ts_end"])
        return rows_frame(cols, pd.RangeIndex(start, start + len(cols["size"])))
