"""Binance's order-book rules: a local book kept from a REST snapshot plus depth-diff events,
following "how to manage a local order book correctly" (spot: each event's ``U`` is the previous
``u + 1``; USD-M futures: each event's ``pu`` is the previous ``u``). A gap raises
:class:`BookGapError`: fetch a new snapshot.
"""
from __future__ import annotations

import numpy as np

from indicators.orderflow.book import BookCrossedError, OrderBook
from tradeflow.model import DepthUpdate

__all__ = ["BinanceBook", "BookGapError"]


class BookGapError(ValueError):
    """A diff event does not follow the previous one: events were missed, the book is stale."""


def _levels(rows, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(prices, quantities) as float arrays from a list/array of (price, qty) pairs (Binance
    sends them as strings)."""
    arr = np.asarray(rows if rows is not None else [], dtype="float64")
    if arr.size == 0:
        return np.empty(0), np.empty(0)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{what}: expected (price, qty) pairs, got an array of shape {arr.shape}")
    price, qty = arr[:, 0], arr[:, 1]
    if not np.isfinite(price).all():
        raise ValueError(f"{what}: prices must be finite numbers")
    if not np.isfinite(qty).all() or (qty < 0).any():
        raise ValueError(f"{what}: quantities must be finite and >= 0 (0 removes a level)")
    return price, qty


class BinanceBook(OrderBook):
    """An :class:`~indicators.orderflow.book.OrderBook` kept by Binance's sequencing rules.

    Use: buffer the diff stream, fetch a snapshot, :meth:`apply_snapshot` it, then feed every
    buffered and later event to :meth:`apply_diff` (or :meth:`apply` a ``DepthUpdate`` carrying
    the ids). Events with ``u <= last_update_id`` are dropped (``apply_diff`` returns False). The
    first applied event must straddle the snapshot (``U <= last_update_id + 1 <= u``, or for
    futures ``pu == last_update_id``); afterwards each event must follow the previous one
    (``U == previous u + 1``, or when ``prev_final_update_id`` (futures ``pu``) is given,
    ``pu == previous u``). Otherwise :class:`BookGapError` is raised, the book is left as it was
    and marked stale: further diffs are refused until a new snapshot is applied.
    """

    def __init__(self, tick_size: float):
        super().__init__(tick_size)
        self.last_update_id: int | None = None  # u of the last applied event (or the snapshot id)
        self._synced = False       # a snapshot is in place and no gap has been seen since
        self._first = True         # the next applied event is the first after the snapshot

    @property
    def synced(self) -> bool:
        """True once a snapshot is applied and no gap has been detected since."""
        return self._synced

    def _snapshot_applied(self, last_update_id: int) -> None:
        self.last_update_id = int(last_update_id)
        self._synced, self._first = True, True

    def apply_snapshot(self, bids, asks, last_update_id: int) -> None:
        """Replace the book with a snapshot (``lastUpdateId`` of the depth REST call)."""
        bp, bq = _levels(bids, "order book snapshot bids")
        ap, aq = _levels(asks, "order book snapshot asks")
        new_bids = {int(t): float(q) for t, q in zip(self.to_tick(bp), bq) if q > 0}
        new_asks = {int(t): float(q) for t, q in zip(self.to_tick(ap), aq) if q > 0}
        if new_bids and new_asks and max(new_bids) >= min(new_asks):
            raise BookCrossedError(
                f"order book snapshot {last_update_id} is crossed: best bid tick {max(new_bids)} "
                f">= best ask tick {min(new_asks)}; fetch the snapshot again")
        self.bids, self.asks = new_bids, new_asks
        self._snapshot_applied(last_update_id)

    def apply_diff(self, first_update_id: int, final_update_id: int, bids, asks,
                   prev_final_update_id: int | None = None) -> bool:
        """Apply one depth-diff event (``U``, ``u``, ``b``, ``a`` and, for futures, ``pu``).

        Returns True when applied, False when dropped as older than the book.
        """
        if not self._follows(first_update_id, final_update_id, prev_final_update_id):
            return False
        U, u = int(first_update_id), int(final_update_id)
        bp, bq = _levels(bids, f"order book diff {U}-{u} bids")
        ap, aq = _levels(asks, f"order book diff {U}-{u} asks")
        self.set_levels(self.to_tick(bp), bq, self.to_tick(ap), aq,
                        f"order book diff U={U}, u={u}")
        self.last_update_id = u
        self._first = False
        return True

    def apply(self, update: DepthUpdate):
        """Follow a ``DepthUpdate`` as :meth:`OrderBook.apply`, with the sequence rules above when
        it carries Binance's ids: a snapshot with ``final_id`` resyncs the book, a diff older than
        the book changes nothing, a gap raises :class:`BookGapError`."""
        if update.snapshot:
            changes = super().apply(update)
            if update.final_id is not None:
                self._snapshot_applied(update.final_id)
            return changes
        if update.first_id is None:  # a venue that does not number its depth events
            return super().apply(update)
        if not self._follows(update.first_id, update.final_id, update.prev_final_id):
            return super().apply(DepthUpdate(update.levels.iloc[:0]))  # older: nothing changes
        changes = super().apply(update)
        self.last_update_id = int(update.final_id)
        self._first = False
        return changes

    def _follows(self, first_update_id, final_update_id, prev_final_update_id) -> bool:
        """Whether an event with these ids is the next one (True), older than the book (False);
        a gap marks the book stale and raises :class:`BookGapError`."""
        U, u = int(first_update_id), int(final_update_id)
        if U > u:
            raise ValueError(f"order book diff: first update id U={U} is after final id u={u}")
        if self.last_update_id is None:
            raise ValueError("order book diff before any snapshot: buffer the events, fetch a "
                             "snapshot and call apply_snapshot first")
        if not self._synced:
            raise BookGapError(f"order book is stale after a gap (last applied update id "
                               f"{self.last_update_id}): a new snapshot is needed")
        last = self.last_update_id
        if u <= last:
            return False
        if self._first:
            # futures ids are not contiguous: an event whose pu is the snapshot's id follows it
            # directly even when its U is further on
            follows = prev_final_update_id is not None and int(prev_final_update_id) == last
            if not (U <= last + 1 <= u or follows):
                self._synced = False
                raise BookGapError(
                    f"order book gap: the first event after snapshot {last} must have "
                    f"U <= {last + 1} <= u, received U={U}, u={u}; a new snapshot is needed")
        elif prev_final_update_id is not None:
            pu = int(prev_final_update_id)
            if pu != last:
                self._synced = False
                raise BookGapError(
                    f"order book gap: expected pu={last} (the previous event's u), received "
                    f"pu={pu} (U={U}, u={u}); a new snapshot is needed")
        elif U != last + 1:
            self._synced = False
            raise BookGapError(
                f"order book gap: expected U={last + 1} (the previous event's u + 1), received "
                f"U={U} (u={u}); a new snapshot is needed")
        return True
