"""Live ``liquidations_by_bar`` and ``liquidations_by_level``: ``Liquidations`` (the sums per
bar and level, and the liquidations still pending) and ``LiqView`` (one study over it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import ns_to_utc, price_to_tick

from ...frames import positive_int, require, ts_ns
from ..imbalance import row_keys
from .storage import Columns, result_index, rows_frame


class Liquidations:
    """``liquidations_by_bar`` and ``liquidations_by_level``. A liquidation belongs to the latest
    bar opened at or before it. Kept: final sums per bar (``per_bar``, with the count of level
    rows) and per bar and level (``levels``: a tick, or the key of its row of ``rows`` ticks), and
    the *pending* liquidations -- in the last bar or before any bar -- raw, because a bar opening
    later, at or before their time, takes them."""

    def __init__(self, owner, tick_size, rows=1):
        self.owner = owner
        self.tick_size = tick_size
        self.row_ticks = positive_int(rows, "liquidations_by_level: rows")
        # (bar open times kept here: the owner may drop old bars, a late liquidation's is needed)
        self.per_bar = Columns(ts="int64", long="float64", short="float64", count="int64",
                                nlev="int64")
        self.levels: dict[int, dict[int, list]] = {}
        self.pending = self._empty()
        self.last_ts = None
        self.changed = np.empty(0, "int64")

    @staticmethod
    def _empty() -> dict:
        return {"ts": np.empty(0, "int64"), "side": np.empty(0, "int64"),
                "tick": np.empty(0, "int64"), "size": np.empty(0)}

    def check(self, liqs: pd.DataFrame) -> dict:
        """Liquidations as numpy columns: checked, and in time order after the ones fed before."""
        what = "LiveOrderFlow.update: liquidations"
        require(liqs, ("ts", "side", "price", "size"), what)
        t = ts_ns(liqs["ts"])
        price = liqs["price"].to_numpy(dtype="float64")
        size = liqs["size"].to_numpy(dtype="float64")
        if not (np.all(np.isfinite(price)) and np.all(np.isfinite(size))):
            raise ValueError(f"{what}: prices and sizes must be finite")
        if (len(t) > 1 and np.any(np.diff(t) < 0)) or (
                len(t) and self.last_ts is not None and t[0] < self.last_ts):
            raise ValueError(f"{what} must arrive in time order: each batch sorted by ts and "
                             f"starting at or after the last one fed")
        return {"ts": t, "side": liqs["side"].to_numpy(dtype="int64"),
                "tick": row_keys(price_to_tick(price, self.tick_size), self.row_ticks),
                "size": size}

    def update(self, j0: int | None, new: dict | None) -> None:
        """Bars from ``j0`` on were (re)written (None: no bar changed); place the pending
        liquidations and the ``new`` ones."""
        n = len(self.owner._bars)
        changed = [np.arange(j0, n)] if j0 is not None else []
        if len(self.pending["ts"]) and len(self.per_bar):
            # the pending ones were shown in the last bar; a new bar may take them from it
            changed.append(np.array([len(self.per_bar) - 1]))
        if j0 is not None:
            self.per_bar.cut(j0)  # bar j0 held only pending ones: nothing final is lost
            z = np.zeros(n - j0)
            self.per_bar.append({"ts": self.owner._bars.at("ts", np.arange(j0, n)), "long": z,
                                 "short": z, "count": z.astype("int64"),
                                 "nlev": z.astype("int64")})
        bar_ts = self.per_bar["ts"]
        if new is not None and len(new["ts"]):
            self.last_ts = int(new["ts"][-1])
            self.pending = {k: np.concatenate([self.pending[k], new[k]]) for k in new}
        p = self.pending
        bar = np.searchsorted(bar_ts, p["ts"], side="right") - 1
        final = (bar >= 0) & (bar < n - 1)
        self._finalize({k: v[final] for k, v in p.items()}, bar[final])
        self.pending = {k: v[(bar == n - 1) | (n == 0)] for k, v in p.items()}
        changed.append(np.unique(bar[final]))
        if n and len(self.pending["ts"]):
            changed.append(np.array([n - 1]))
        self.changed = np.unique(np.concatenate(changed)) if changed else np.empty(0, "int64")

    def _finalize(self, p: dict, bar: np.ndarray) -> None:
        """Add liquidations, in order, to their bars' final sums."""
        if not len(bar):
            return
        long_, short = self._split(p)
        for col, v in (("long", long_), ("short", short)):
            np.add.at(self.per_bar._data[col], bar, v)
        np.add.at(self.per_bar._data["count"], bar, 1)
        for b, k, lo, sh in zip(bar.tolist(), p["tick"].tolist(), long_.tolist(), short.tolist()):
            level = self.levels.setdefault(b, {})
            if k not in level:
                level[k] = [0.0, 0.0, 0]
                self.per_bar._data["nlev"][b] += 1
            cell = level[k]
            cell[0] += lo
            cell[1] += sh
            cell[2] += 1

    @staticmethod
    def _split(p: dict):
        return (np.where(p["side"] == -1, p["size"], 0.0),
                np.where(p["side"] == 1, p["size"], 0.0))

    # -- frames

    def by_bar(self, bars) -> pd.DataFrame:
        """Rows of ``bars`` (a slice or positions): final sums plus the pending ones."""
        n = len(self.per_bar)
        b = np.arange(n)[bars]
        cols = self.per_bar.take(b)
        at = b == n - 1  # the last bar has no final sums: only pending ones
        if at.any() and len(self.pending["ts"]):
            long_, short = self._split(self.pending)
            first = np.zeros(len(long_), "int64")  # bincount adds in order, as the batch
            cols["long"][at] = np.bincount(first, weights=long_)[0]
            cols["short"][at] = np.bincount(first, weights=short)[0]
            cols["count"][at] = len(long_)
        return rows_frame({"ts": ns_to_utc(cols["ts"]), "long_size": cols["long"],
                           "short_size": cols["short"], "count": cols["count"]},
                          result_index(bars, n))

    def _pending_levels(self) -> dict:
        p = self.pending
        if not len(self.per_bar) or not len(p["ts"]):
            return {}
        long_, short = self._split(p)
        out: dict[int, list] = {}
        for k, lo, sh in zip(p["tick"].tolist(), long_.tolist(), short.tolist()):
            cell = out.setdefault(k, [0.0, 0.0, 0])
            cell[0] += lo
            cell[1] += sh
            cell[2] += 1
        return out

    def by_level(self, bars: np.ndarray) -> pd.DataFrame:
        """Level rows of ``bars`` (bar indexes, ascending), indexed by position in the result."""
        n = len(self.per_bar)
        pend = self._pending_levels()
        counts = self.per_bar["nlev"].copy()
        if pend:
            counts[n - 1] += len(pend)
        first = np.cumsum(counts) - counts
        rows, index = [], []
        for b in bars.tolist():
            level = pend if (b == n - 1 and pend) else self.levels.get(b, {})
            for i, k in enumerate(sorted(level)):
                rows.append((b, k, *level[k]))
                index.append(first[b] + i)
        b, k, lo, sh, c = (np.asarray(x) for x in zip(*rows)) if rows else (
            np.empty(0, "int64"),) * 2 + (np.empty(0),) * 2 + (np.empty(0, "int64"),)
        return rows_frame({"ts": ns_to_utc(self.per_bar.at("ts", b.astype("int64"))),
                           "tick": k.astype("int64"), "long_size": lo.astype("float64"),
                           "short_size": sh.astype("float64"), "count": c.astype("int64")},
                          pd.Index(np.asarray(index, "int64")) if len(index) != counts.sum()
                          else pd.RangeIndex(len(index)))

    def n_levels(self) -> int:
        """Rows of ``liquidations_by_level`` now."""
        return int(self.per_bar["nlev"].sum()) + len(self._pending_levels())

    def bars_with_levels(self) -> np.ndarray:
        n = len(self.per_bar)
        present = np.flatnonzero(self.per_bar["nlev"] > 0)
        if n and len(self.pending["ts"]):
            present = np.union1d(present, [n - 1])
        return present


class LiqView:
    """One of the two liquidation studies, over the shared :class:`Liquidations`."""

    def __init__(self, liq: Liquidations, level: bool):
        self.liq, self.level = liq, level

    def result(self):
        if self.level:
            return self.liq.by_level(self.liq.bars_with_levels())
        return self.liq.by_bar(slice(0, len(self.liq.per_bar)))

    def size(self) -> int:
        return self.liq.n_levels() if self.level else len(self.liq.per_bar)

    def changes(self):
        if self.level:
            # a bar's new level moves the rows of every later bar: they are changes too
            with_levels, changed = self.liq.bars_with_levels(), self.liq.changed
            first = changed.min() if len(changed) else len(self.liq.per_bar)
            return self.liq.by_level(with_levels[with_levels >= first])
        return self.liq.by_bar(self.liq.changed)
