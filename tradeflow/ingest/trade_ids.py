"""Trade ids for sources without ids (Sierra Chart ``.scid``, most CSV/Parquet files): derived
from each trade and its place in time, so importing the same file twice stores it once."""
from __future__ import annotations

import numpy as np

from tradeflow.ingest.chunks import REORDER_WINDOW_NS, first_true, late_reason

# Ids of trades without a source id: -2**63 + (ordinal << HASH_BITS | content hash), see
# OrdinalIds.ids. Negative, so they never meet a source's own ids (which must be >= 0).
ORDINAL_BITS, HASH_BITS = 21, 42
CONTENT_ID_BASE = np.int64(-(2**63))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer over uint64 arrays: a fixed, well-spread 64-bit hash (numpy's
    uint64 array arithmetic wraps, as the algorithm wants)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def content_hash(price, size, side) -> np.ndarray:
    """A 64-bit hash of each trade's price, size and side (their exact float64 bits)."""
    price = np.asarray(price, dtype="float64") + 0.0  # -0.0 and 0.0 alike
    size = np.asarray(size, dtype="float64") + 0.0
    h = _mix(np.ascontiguousarray(price).view("uint64"))
    h = _mix(h ^ np.ascontiguousarray(size).view("uint64"))
    return _mix(h ^ (np.asarray(side, dtype="int64") + 2).astype("uint64"))


def made_ids(ordinals, price, size, side) -> np.ndarray:
    """``-2**63 + (ordinal << 42 | 42 bits of content_hash)``: the ids :class:`OrdinalIds` makes
    (ordinals below ``2**21``)."""
    low = (content_hash(price, size, side) >> np.uint64(64 - HASH_BITS)).astype("int64")
    return ((np.asarray(ordinals, dtype="int64") << HASH_BITS) | low) + CONTENT_ID_BASE


class OrdinalIds:
    """Trade ids for sources without ids, derived from each trade and its place in time.

    :meth:`ids` gives ``-2**63 + (ordinal << 42 | hash)``: ``ordinal`` is the trade's rank among
    trades of the same symbol and microsecond (the resolution the stores keep) in file order,
    carried across chunks; ``hash`` is 42 bits of a hash of its price, size and side. So
    re-importing a file finds the same keys (nothing new is stored), trades of another file at
    the same microsecond are new unless price, size, side and rank all match (or, with odds of
    1 in 2**42 per such pair, the hashes collide), and ids keep the file's order within a
    microsecond (stores order trades by time, then id). At most 2**21 trades share one
    microsecond.

    Counts are kept for the last ``window_ns`` of time seen, so slightly out-of-order input works;
    a trade older than that cannot be numbered reliably and is reported. Pure numpy (sorted
    input, the usual case, needs no sort at all).
    """

    def __init__(self, window_ns: int = REORDER_WINDOW_NS):
        self.window_us = window_ns // 1000
        # symbol -> (sorted microsecond keys still open, their counts, latest key seen)
        self._carry: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    def ids(self, symbol: str, ts_ns, price, size, side
            ) -> tuple[np.ndarray, tuple[int, str] | None]:
        """(trade ids, None) or (empty, (index of the first trade that cannot be numbered, why))."""
        latest = self._carry[symbol][2] * 1000 if symbol in self._carry else None
        ords, late = self.assign(symbol, ts_ns)
        if late is not None:
            return ords, (late, late_reason(int(np.asarray(ts_ns)[late]), latest))
        crowded = first_true(ords >= 1 << ORDINAL_BITS)
        if crowded is not None:
            return ords[:0], (crowded, f"more than {1 << ORDINAL_BITS:,} trades at one "
                              "microsecond: without trade ids they cannot be told apart")
        return made_ids(ords, price, size, side), None

    def assign(self, symbol: str, ts_ns: np.ndarray) -> tuple[np.ndarray, int | None]:
        """(ordinals, index of the first trade too far back in time, or None)."""
        keys = np.asarray(ts_ns, dtype="int64") // 1000
        n = len(keys)
        if n == 0:
            return np.zeros(0, dtype="int64"), None
        carry = self._carry.get(symbol)
        if carry is not None:
            late = first_true(keys < carry[2] - self.window_us)
            if late is not None:
                return np.zeros(0, dtype="int64"), late
        order = None if (n < 2 or bool((keys[1:] >= keys[:-1]).all())) else \
            np.argsort(keys, kind="stable")
        sk = keys if order is None else keys[order]
        start = np.empty(n, dtype=bool)
        start[0] = True
        np.not_equal(sk[1:], sk[:-1], out=start[1:])
        first = np.flatnonzero(start)
        uniq = sk[first]
        counts = np.diff(np.append(first, n))
        ords = np.arange(n) - np.repeat(first, counts)
        high = int(sk[-1])
        if carry is not None and len(carry[0]):
            ckeys, ccounts, chigh = carry
            high = max(high, chigh)
            pos = np.minimum(np.searchsorted(ckeys, uniq), len(ckeys) - 1)
            offset = np.where(ckeys[pos] == uniq, ccounts[pos], 0)
            ords += np.repeat(offset, counts)
            counts = counts + offset
        elif carry is not None:
            high = max(high, carry[2])
        keep = uniq >= high - self.window_us  # only keys a later chunk may still meet
        uniq, counts = uniq[keep], counts[keep]
        if carry is not None and len(carry[0]):
            rest = (ckeys >= high - self.window_us) & ~np.isin(ckeys, uniq)
            uniq = np.concatenate([ckeys[rest], uniq])
            counts = np.concatenate([ccounts[rest], counts])
            by_key = np.argsort(uniq, kind="stable")
            uniq, counts = uniq[by_key], counts[by_key]
        self._carry[symbol] = (uniq, counts, high)
        if order is None:
            return ords.astype("int64", copy=False), None
        ids = np.empty(n, dtype="int64")
        ids[order] = ords
        return ids, None
