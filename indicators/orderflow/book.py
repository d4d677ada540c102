"""A local limit order book kept from a snapshot plus diff events, and the book heatmap grid.

* :class:`OrderBook` -- resting size per price level, keyed by integer tick, maintained from a
  REST snapshot and depth-diff events following Binance's "how to manage a local order book
  correctly" rules (spot: each event's ``U`` is the previous ``u + 1``; USD-M futures: each
  event's ``pu`` is the previous ``u``). A gap raises :class:`BookGapError`: fetch a new snapshot.
* :meth:`OrderBook.apply_sierra`, :class:`SierraReplay`, :func:`replay_sierra` -- the same book
  kept from Sierra Chart market-depth commands (``.depth`` files, read by
  ``tradeflow.ingest.scdepth``), and book snapshots taken from them once per interval, only where
  a batch of commands ends (the book is consistent only there).
* :func:`heatmap_grid` -- depth snapshots (``tradeflow.model`` depth layout ``ts, side, tick,
  size``) aggregated into a time x price grid of resting size; :func:`to_matrix` turns it into
  dense arrays for plotting.

Pure computation, no I/O; numpy, pandas and stdlib only.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from tradeflow.model import ns_to_utc, price_to_tick

from .._frames import positive_int, require, ts_ns
from ..live_protocol import Changes, ChangeSet

__all__ = ["OrderBook", "BookGapError", "BookCrossedError", "SierraReplay", "replay_sierra",
           "heatmap_grid", "to_matrix"]


class BookGapError(ValueError):
    """A diff event does not follow the previous one: events were missed, the book is stale."""


class BookCrossedError(ValueError):
    """An event would leave the best bid at or above the best ask."""


def _levels(rows, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(prices, quantities) as float arrays from a list/array of (price, qty) pairs."""
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


class OrderBook:
    """A local order book keyed by integer tick (``round(price / tick_size)``, halves away from
    zero, as :meth:`tradeflow.model.Instrument.to_tick`).

    Use: buffer the diff stream, fetch a snapshot, :meth:`apply_snapshot` it, then feed every
    buffered and later event to :meth:`apply_diff`. Events with ``u <= last_update_id`` are
    dropped (``apply_diff`` returns False). The first applied event must straddle the snapshot
    (``U <= last_update_id + 1 <= u``, or for futures ``pu == last_update_id``); afterwards each event must follow the previous one
    (``U == previous u + 1``, or when ``prev_final_update_id`` (futures ``pu``) is given,
    ``pu == previous u``). Otherwise :class:`BookGapError` is raised, the book is left as it was
    and marked stale: further diffs are refused until a new snapshot is applied.

    Events are applied whole: an event that is malformed, or that would leave the book crossed
    (best bid >= best ask after the whole event), raises a ValueError and changes nothing.
    """

    def __init__(self, tick_size: float):
        if (isinstance(tick_size, bool) or not isinstance(tick_size, numbers.Real)
                or not math.isfinite(tick_size) or tick_size <= 0):
            raise ValueError(f"OrderBook: tick size must be a positive number, got {tick_size!r}")
        self.tick_size = float(tick_size)
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.last_update_id: int | None = None  # u of the last applied event (or the snapshot id)
        self._synced = False       # a snapshot is in place and no gap has been seen since
        self._first = True         # the next applied event is the first after the snapshot

    # ---- conversions -----------------------------------------------------------------------
    def to_tick(self, price) -> np.ndarray:
        return price_to_tick(price, self.tick_size)

    @property
    def synced(self) -> bool:
        """True once a snapshot is applied and no gap has been detected since."""
        return self._synced

    # ---- updates ---------------------------------------------------------------------------
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
        self.last_update_id = int(last_update_id)
        self._synced, self._first = True, True

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
        self._write(self.to_tick(bp), bq, self.to_tick(ap), aq, f"order book diff U={U}, u={u}")
        self.last_update_id = u
        self._first = False
        return True

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

    def _write(self, bid_ticks, bid_qty, ask_ticks, ask_qty, what: str) -> list:
        """Set the levels (quantity 0 removes one), whole or not at all: an event that would
        cross the book is undone and raises :class:`BookCrossedError`. Returns the changed
        levels as ``(side, tick, new size)``."""
        undo: list[tuple[dict, int, float | None]] = []
        changed = []
        for side, book, ticks, qtys in ((-1, self.bids, bid_ticks, bid_qty),
                                        (1, self.asks, ask_ticks, ask_qty)):
            for t, q in zip(np.asarray(ticks).tolist(), np.asarray(qtys).tolist()):
                old = book.get(t)
                undo.append((book, t, old))
                if q > 0:
                    book[t] = q
                else:
                    book.pop(t, None)
                if (old or 0.0) != q:
                    changed.append((side, t, q))
        bb, ba = self.best_bid(), self.best_ask()
        if bb is not None and ba is not None and bb[0] >= ba[0]:
            for book, t, old in reversed(undo):
                if old is None:
                    book.pop(t, None)
                else:
                    book[t] = old
            raise BookCrossedError(
                f"{what} would cross the book (best bid tick {bb[0]} >= best ask tick {ba[0]}); "
                f"the event was not applied, resync from a new snapshot")
        return changed

    def apply(self, update) -> ChangeSet:
        """Follow a ``tradeflow.model.DepthUpdate`` (the live protocol of
        :mod:`indicators.live_protocol`): a snapshot replaces the book, other updates change the
        levels given (size 0 removes one), whole or not at all; with the venue's ids the sequence
        rules of :meth:`apply_diff` hold (an update older than the book changes nothing).
        Returns ``{"levels": Changes}``: the changed levels in the depth layout (size 0: gone),
        keyed by ``("side", "tick")``, and the number of levels held."""
        what = "order book update"
        levels = update.levels
        require(levels, ("side", "tick", "size"), what)
        side = levels["side"].to_numpy(dtype="int64")
        tick = levels["tick"].to_numpy(dtype="int64")
        size = levels["size"].to_numpy(dtype="float64")
        if not np.isin(side, (-1, 1)).all():
            raise ValueError(f"{what}: side must be -1 (bid) or +1 (ask)")
        if not (np.isfinite(size).all() and (size >= 0).all()):
            raise ValueError(f"{what}: sizes must be finite and >= 0 (0 removes a level)")
        bid, ask = side == -1, side == 1
        ids = update.first_id, update.final_id, update.prev_final_id
        if update.snapshot:
            old = {(-1, t): q for t, q in self.bids.items()}
            old.update(((1, t), q) for t, q in self.asks.items())
            new_bids = {int(t): float(q) for t, q in zip(tick[bid], size[bid]) if q > 0}
            new_asks = {int(t): float(q) for t, q in zip(tick[ask], size[ask]) if q > 0}
            if new_bids and new_asks and max(new_bids) >= min(new_asks):
                raise BookCrossedError(f"{what}: the snapshot is crossed (best bid tick "
                                       f"{max(new_bids)} >= best ask tick {min(new_asks)})")
            self.bids, self.asks = new_bids, new_asks
            new = {(-1, t): q for t, q in new_bids.items()}
            new.update(((1, t), q) for t, q in new_asks.items())
            changed = [(s, t, new.get((s, t), 0.0)) for s, t in sorted(old.keys() | new.keys())
                       if old.get((s, t)) != new.get((s, t))]
            if update.final_id is not None:
                self.last_update_id = int(update.final_id)
                self._synced, self._first = True, True
        elif update.first_id is not None and not self._follows(*ids):
            changed = []
        else:
            changed = self._write(tick[bid], size[bid], tick[ask], size[ask], what)
            if update.first_id is not None:
                self.last_update_id = int(update.final_id)
                self._first = False
        stamp = ts_ns(levels["ts"]).max() if len(levels) and "ts" in levels else None
        held = len(self.bids) + len(self.asks)

        def rows():
            s, t, q = (np.asarray(x) for x in zip(*changed)) if changed else ([], [], [])
            frame = pd.DataFrame({
                "ts": ns_to_utc(np.full(len(changed), stamp if stamp is not None
                                       else np.iinfo("int64").min, dtype="int64")),
                "side": np.asarray(s, dtype="int8"), "tick": np.asarray(t, dtype="int64"),
                "size": np.asarray(q, dtype="float64")})
            return Changes(frame, held, key=("side", "tick"))
        return ChangeSet({"levels": rows})

    def apply_sierra(self, commands: pd.DataFrame) -> None:
        """Apply Sierra Chart market-depth commands (frame with ``command, price, quantity``,
        codes as in ``s_MarketDepthFileRecord``, see :func:`replay_sierra`) in row order.

        No checks between commands: mid-batch a Sierra book may be half updated, even crossed.
        Sierra commands carry no update ids; the Binance sync state is left as it was.
        """
        cmd, tick, qty = _sierra_levels(commands, self.tick_size, "apply_sierra")
        _sierra_apply(self.bids, self.asks, cmd.tolist(), tick.tolist(), qty.tolist())

    # ---- queries ---------------------------------------------------------------------------
    def best_bid(self) -> tuple[int, float] | None:
        """(tick, size) of the highest bid, or None when there are no bids."""
        if not self.bids:
            return None
        t = max(self.bids)
        return t, self.bids[t]

    def best_ask(self) -> tuple[int, float] | None:
        """(tick, size) of the lowest ask, or None when there are no asks."""
        if not self.asks:
            return None
        t = min(self.asks)
        return t, self.asks[t]

    def levels(self, n: int | None = None, ts=None) -> pd.DataFrame:
        """The book in the depth layout ``ts, side, tick, size``: bids best first (side -1), then
        asks best first (side +1); ``n`` levels a side (all when None); ``ts`` is the caller's
        snapshot time (NaT when None)."""
        if n is not None:
            n = positive_int(n, "levels: n")
        bid_ticks = sorted(self.bids, reverse=True)[:n]
        ask_ticks = sorted(self.asks)[:n]
        k = len(bid_ticks) + len(ask_ticks)
        stamp = pd.Timestamp(ts) if ts is not None else pd.NaT
        if stamp is not pd.NaT:
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return pd.DataFrame({
            "ts": pd.DatetimeIndex([stamp] * k, dtype="datetime64[ns, UTC]"),
            "side": np.array([-1] * len(bid_ticks) + [1] * len(ask_ticks), dtype="int8"),
            "tick": np.array(bid_ticks + ask_ticks, dtype="int64"),
            "size": np.array([self.bids[t] for t in bid_ticks] + [self.asks[t] for t in ask_ticks],
                             dtype="float64"),
        })


# --------------------------------------------------------------------------------------------
# Sierra Chart market-depth commands

# s_MarketDepthFileRecord::CommandEnum (tradeflow.ingest.scdepth has the same names)
SIERRA_NO_COMMAND, SIERRA_CLEAR_BOOK = 0, 1
SIERRA_ADD_BID, SIERRA_ADD_ASK, SIERRA_MODIFY_BID, SIERRA_MODIFY_ASK = 2, 3, 4, 5
SIERRA_DELETE_BID, SIERRA_DELETE_ASK = 6, 7
SIERRA_END_OF_BATCH = 0x01  # Flags bit: last command of a batch


def _sierra_levels(commands, tick_size: float, what: str):
    """(command, tick, quantity) arrays of a commands frame, checked."""
    require(commands, ("command", "price", "quantity"), what)
    cmd = commands["command"].to_numpy(dtype="int64")
    bad = (cmd < SIERRA_NO_COMMAND) | (cmd > SIERRA_DELETE_ASK)
    if bad.any():
        raise ValueError(f"{what}: row {int(np.argmax(bad))}: unknown command code "
                         f"{int(cmd[bad][0])} (expected 0-7)")
    level = cmd >= SIERRA_ADD_BID
    # the price of CLEAR_BOOK / NO_COMMAND means nothing (Sierra writes 0)
    price = np.where(level, commands["price"].to_numpy(dtype="float64"), 0.0)
    qty = commands["quantity"].to_numpy(dtype="float64")
    bad = ~np.isfinite(price) | (level & ~(np.isfinite(qty) & (qty >= 0)))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what}: row {i}: a level command needs a finite price and a finite "
                         f"quantity >= 0, got price {price[i]}, quantity {qty[i]}")
    # beyond 2**53 ticks float64 no longer holds whole ticks (and int64 overflows soon after)
    bad = np.abs(price) >= 2.0**53 * tick_size
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{what}: row {i}: price {price[i]} is too far from 0 for tick size "
                         f"{tick_size}")
    return cmd, price_to_tick(price, tick_size), qty


def _sierra_batches(commands, what: str):
    """(ts ns, end_of_batch) arrays of a commands frame."""
    require(commands, ("ts",), what)
    if "end_of_batch" in commands.columns:
        eob = commands["end_of_batch"].to_numpy(dtype=bool)
    elif "flags" in commands.columns:
        eob = (commands["flags"].to_numpy(dtype="int64") & SIERRA_END_OF_BATCH) != 0
    else:
        raise ValueError(f"{what}: missing column end_of_batch (or flags); the book is only "
                         "consistent where a batch ends")
    return ts_ns(commands["ts"]), eob


def _sierra_apply(bids: dict, asks: dict, cmds, ticks, qtys) -> None:
    """The command loop (plain lists: a dict operation per command is the whole cost)."""
    for c, t, q in zip(cmds, ticks, qtys):
        if c >= SIERRA_ADD_BID:
            book = bids if c % 2 == 0 else asks  # even codes are the bid side
            if c >= SIERRA_DELETE_BID or q <= 0:  # a level with no size is no level
                book.pop(t, None)
            else:
                book[t] = q
        elif c == SIERRA_CLEAR_BOOK:
            bids.clear()
            asks.clear()


class SierraReplay:
    """Book snapshots from a stream of Sierra Chart market-depth commands, fed in chunks.

    Commands (frames with ``ts, command, price, quantity, end_of_batch``; codes of
    ``s_MarketDepthFileRecord``) are applied to :attr:`book` (an :class:`OrderBook`) in order:

    * CLEAR_BOOK (1) empties the book; NO_COMMAND (0) changes nothing;
    * ADD (2 bid, 3 ask) and MODIFY (4 bid, 5 ask) set the level's size to ``quantity`` (a
      MODIFY of a missing level adds it; a quantity of 0 removes the level);
    * DELETE (6 bid, 7 ask) removes the level (absent: nothing happens).

    A *snapshot* is the book where a batch ends (``end_of_batch``: mid-batch the book is half
    updated). For each ``interval`` (epoch-aligned, e.g. ``"1s"``) holding at least one batch end,
    one snapshot is emitted: the book after the interval's last batch, stamped with that batch's
    time, in the depth layout ``ts, side, tick, size`` (bids best first with side -1, then asks
    best first with side +1; ``levels`` nearest levels a side, all when None). Intervals without a
    batch end emit nothing. Times must not go back.

    :meth:`feed` returns the snapshots of the intervals known to be complete; the latest interval
    stays pending (a later chunk may end another batch in it) until a later one starts or
    :meth:`finish` is called.
    """

    def __init__(self, tick_size: float, interval="1s", levels: int | None = None):
        self.book = OrderBook(tick_size)
        self.step = _interval_ns(interval, "replay_sierra")
        self.levels = None if levels is None else positive_int(levels, "replay_sierra: levels")
        self._last_ts: int | None = None
        self._pending = None  # (bucket, snapshot) of the latest interval

    def feed(self, commands: pd.DataFrame) -> pd.DataFrame:
        """Apply a chunk of commands; returns the snapshots of completed intervals."""
        cmd, tick, qty = _sierra_levels(commands, self.book.tick_size, "replay_sierra")
        ts, eob = _sierra_batches(commands, "replay_sierra")
        self._check_order(ts)
        ends = np.flatnonzero(eob)
        bucket = np.floor_divide(ts[ends], self.step)
        last = np.ones(len(ends), dtype=bool)  # the last batch end of each interval
        last[:-1] = bucket[1:] != bucket[:-1]
        stops, stop_buckets = ends[last].tolist(), bucket[last].tolist()
        snaps = []
        if self._pending is not None and stops:
            # a batch end in a later interval completes the pending one; in the same interval it
            # supersedes it
            if stop_buckets[0] != self._pending[0]:
                snaps.append(self._pending[1])
            self._pending = None
        cmd, tick, qty = cmd.tolist(), tick.tolist(), qty.tolist()
        bids, asks = self.book.bids, self.book.asks
        pos = 0
        for k in stops:
            _sierra_apply(bids, asks, cmd[pos:k + 1], tick[pos:k + 1], qty[pos:k + 1])
            pos = k + 1
            snaps.append(self._snapshot(int(ts[k])))
        _sierra_apply(bids, asks, cmd[pos:], tick[pos:], qty[pos:])
        if stops:  # the chunk's last interval may go on in the next chunk
            self._pending = (stop_buckets[-1], snaps.pop())
        return _snapshots_frame(snaps)

    def finish(self) -> pd.DataFrame:
        """The snapshot of the last interval (call once the stream has ended)."""
        pending, self._pending = self._pending, None
        return _snapshots_frame([] if pending is None else [pending[1]])

    def _check_order(self, ts: np.ndarray) -> None:
        if len(ts) == 0:
            return
        prev = np.empty_like(ts)
        prev[1:] = ts[:-1]
        prev[0] = ts[0] if self._last_ts is None else self._last_ts
        back = ts < prev
        if back.any():
            i = int(np.argmax(back))
            raise ValueError(f"replay_sierra: row {i}: time goes backwards "
                             f"({ns_to_utc(ts[i])} after "
                             f"{ns_to_utc(prev[i])})")
        self._last_ts = int(ts[-1])

    def _snapshot(self, ts: int):
        """(ts, bid ticks, bid sizes, ask ticks, ask sizes), each side best first and cut to
        :attr:`levels`."""
        n = self.levels
        bt, bs = _side_arrays(self.book.bids)
        at, as_ = _side_arrays(self.book.asks)
        down = np.argsort(bt)[::-1][:n]
        up = np.argsort(at)[:n]
        return ts, bt[down], bs[down], at[up], as_[up]


def _side_arrays(side: dict) -> tuple[np.ndarray, np.ndarray]:
    return (np.fromiter(side.keys(), "int64", len(side)),
            np.fromiter(side.values(), "float64", len(side)))


def _snapshots_frame(snaps) -> pd.DataFrame:
    """Snapshots from :meth:`SierraReplay._snapshot` as one depth-layout frame."""
    counts = np.array([(len(s[1]), len(s[3])) for s in snaps], dtype="int64").reshape(-1, 2)
    ts = np.repeat(np.array([s[0] for s in snaps], dtype="int64"), counts.sum(axis=1))
    side = np.repeat(np.tile(np.array([-1, 1], dtype="int8"), len(snaps)), counts.ravel())
    tick = np.concatenate([x for s in snaps for x in (s[1], s[3])] or [np.empty(0, "int64")])
    size = np.concatenate([x for s in snaps for x in (s[2], s[4])] or [np.empty(0)])
    stamps = ns_to_utc(ts)
    return pd.DataFrame({"ts": stamps, "side": side, "tick": tick, "size": size})


def replay_sierra(commands: pd.DataFrame, tick_size: float, interval="1s",
                  levels: int | None = None) -> pd.DataFrame:
    """Book snapshots (depth layout ``ts, side, tick, size``) of a whole stream of Sierra Chart
    market-depth commands: one per ``interval`` with a batch end, the book after its last batch,
    stamped with that batch's time; ``levels`` nearest levels a side (all when None). Semantics
    in :class:`SierraReplay`; :func:`heatmap_grid` with the same interval turns the result into
    the heatmap."""
    replay = SierraReplay(tick_size, interval, levels)
    return pd.concat([replay.feed(commands), replay.finish()], ignore_index=True)


# --------------------------------------------------------------------------------------------
# Heatmap grid

_HOW = ("last", "mean", "max")
GRID_COLUMNS = ("ts", "tick", "bid_size", "ask_size")


def _interval_ns(interval, what: str = "heatmap_grid") -> int:
    try:
        step = pd.Timedelta(interval)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: interval {interval!r} is not a duration, "
                         "use e.g. '1s', '250ms', '1min'") from exc
    if step is pd.NaT or step.value <= 0:
        raise ValueError(f"{what}: interval must be a positive duration, got {interval!r}")
    return int(step.value)


def heatmap_grid(depth: pd.DataFrame, interval="1s", tick_rows: int = 1,
                 how: str = "last") -> pd.DataFrame:
    """Depth snapshots aggregated into a time x price grid of resting size.

    A snapshot is all rows of ``depth`` sharing one ``ts``. Rows are bucketed by
    ``ts`` floored to ``interval`` (epoch-aligned) and by price row ``floor(tick / tick_rows) *
    tick_rows`` (sizes of the ticks in a row are summed within a snapshot). Per bucket and row:

    * ``how="last"``: the size in the bucket's last snapshot (0 if the level is absent there);
    * ``how="mean"``: the mean over the bucket's snapshots, a snapshot without the level counting 0;
    * ``how="max"``: the largest size in any of the bucket's snapshots.

    Returns a long frame ``ts, tick, bid_size, ask_size`` sorted by ``ts, tick``; only rows where
    some size is positive.
    """
    if how not in _HOW:
        raise ValueError(f"heatmap_grid: how must be one of {', '.join(_HOW)}, got {how!r}")
    step = _interval_ns(interval)
    rows = positive_int(tick_rows, "heatmap_grid: tick_rows")
    require(depth, ("ts", "side", "tick", "size"), "heatmap_grid")
    if len(depth) == 0:
        return pd.DataFrame({"ts": pd.DatetimeIndex([], dtype="datetime64[ns, UTC]"),
                             "tick": np.empty(0, "int64"), "bid_size": np.empty(0),
                             "ask_size": np.empty(0)})
    ts = ts_ns(depth["ts"])
    side = depth["side"].to_numpy()
    if not np.isin(side, (-1, 1)).all():
        raise ValueError("heatmap_grid: side must be +1 (ask) or -1 (bid)")
    ask = (side == 1)
    tick = np.floor_divide(depth["tick"].to_numpy(dtype="int64"), rows) * rows
    size = depth["size"].to_numpy(dtype="float64")
    bucket = np.floor_divide(ts, step) * step

    # one row per snapshot, side and price row: summed size
    cells = pd.DataFrame({"bucket": bucket, "snap": ts, "ask": ask, "tick": tick, "size": size})
    cells = (cells.groupby(["bucket", "snap", "ask", "tick"], sort=False, as_index=False)["size"]
             .sum())
    if how == "last":
        last = cells.groupby("bucket")["snap"].transform("max").to_numpy()
        agg = cells[cells["snap"].to_numpy() == last].drop(columns="snap")
    elif how == "max":
        agg = cells.groupby(["bucket", "ask", "tick"], sort=False, as_index=False)["size"].max()
    else:
        snaps = pd.Series(ts).groupby(bucket).nunique()
        agg = cells.groupby(["bucket", "ask", "tick"], sort=False, as_index=False)["size"].sum()
        agg["size"] = agg["size"].to_numpy() / snaps.reindex(agg["bucket"]).to_numpy()
    wide = agg.pivot_table(index=["bucket", "tick"], columns="ask", values="size",
                           aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(columns=[False, True], fill_value=0.0).sort_index()
    out = pd.DataFrame({
        "ts": ns_to_utc(wide.index.get_level_values("bucket").to_numpy()),
        "tick": wide.index.get_level_values("tick").to_numpy(dtype="int64"),
        "bid_size": wide[False].to_numpy(dtype="float64"),
        "ask_size": wide[True].to_numpy(dtype="float64"),
    })
    keep = (out["bid_size"].to_numpy() > 0) | (out["ask_size"].to_numpy() > 0)
    return out[keep].reset_index(drop=True)


def to_matrix(grid: pd.DataFrame, tick_rows: int | None = None):
    """Dense arrays of a :func:`heatmap_grid` frame for plotting:
    ``(times, ticks, bid_matrix, ask_matrix)`` -- ``times`` the distinct bucket starts
    (``datetime64[ns]``, UTC), ``ticks`` an evenly spaced row axis from the lowest to the highest
    row key (the step is ``tick_rows`` when given, else the gcd of the row keys' spacing; empty
    rows inside the range are kept), matrices of shape ``(len(times), len(ticks))`` with 0 where
    there is no size."""
    require(grid, GRID_COLUMNS, "to_matrix")
    t_ns = ts_ns(grid["ts"])
    times = np.unique(t_ns)
    keys = np.unique(grid["tick"].to_numpy(dtype="int64"))
    if len(keys) == 0:
        empty = np.zeros((0, 0))
        return times.view("datetime64[ns]"), keys, empty, empty.copy()
    if tick_rows is not None:
        step = positive_int(tick_rows, "to_matrix: tick_rows")
        if ((keys - keys[0]) % step).any():
            raise ValueError(f"to_matrix: the grid's row keys are not {step} ticks apart")
    else:
        step = int(np.gcd.reduce(np.diff(keys))) if len(keys) > 1 else 1
    ticks = np.arange(keys[0], keys[-1] + 1, step, dtype="int64")
    ti = np.searchsorted(times, t_ns)
    ki = (grid["tick"].to_numpy(dtype="int64") - keys[0]) // step
    bid = np.zeros((len(times), len(ticks)))
    ask = np.zeros((len(times), len(ticks)))
    np.add.at(bid, (ti, ki), grid["bid_size"].to_numpy(dtype="float64"))
    np.add.at(ask, (ti, ki), grid["ask_size"].to_numpy(dtype="float64"))
    return times.view("datetime64[ns]"), ticks, bid, ask
