"""Sierra Chart market-depth commands (``.depth`` files, read by :mod:`tradeflow.ingest.scdepth`)
replayed into the local order book (:class:`indicators.orderflow.book.OrderBook`), and book
snapshots taken from them once per interval, only where a batch of commands ends (the book is
consistent only there).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# the studies' own input checks, so a command frame is refused in the same words as any frame
from indicators.frames import positive_int, require, ts_ns
from indicators.orderflow.book import OrderBook, interval_ns
from tradeflow.ingest.scdepth import (
    ADD_BID_LEVEL,
    CLEAR_BOOK,
    DELETE_ASK_LEVEL,
    DELETE_BID_LEVEL,
    FLAG_END_OF_BATCH,
    NO_COMMAND,
)
from tradeflow.model import ns_to_utc, price_to_tick

__all__ = ["SierraReplay", "replay_sierra", "apply_sierra"]


def apply_sierra(book: OrderBook, commands: pd.DataFrame) -> None:
    """Apply Sierra Chart market-depth commands (frame with ``command, price, quantity``, codes
    as in ``s_MarketDepthFileRecord``, see :class:`SierraReplay`) to ``book`` in row order.

    No checks between commands: mid-batch a Sierra book may be half updated, even crossed.
    """
    cmd, tick, qty = _command_levels(commands, book.tick_size, "apply_sierra")
    _apply_commands(book.bids, book.asks, cmd.tolist(), tick.tolist(), qty.tolist())


def _command_levels(commands, tick_size: float, what: str):
    """(command, tick, quantity) arrays of a commands frame, checked."""
    require(commands, ("command", "price", "quantity"), what)
    cmd = commands["command"].to_numpy(dtype="int64")
    bad = (cmd < NO_COMMAND) | (cmd > DELETE_ASK_LEVEL)
    if bad.any():
        raise ValueError(f"{what}: row {int(np.argmax(bad))}: unknown command code "
                         f"{int(cmd[bad][0])} (expected 0-7)")
    level = cmd >= ADD_BID_LEVEL
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


def _batch_ends(commands, what: str):
    """(ts ns, end_of_batch) arrays of a commands frame."""
    require(commands, ("ts",), what)
    if "end_of_batch" in commands.columns:
        eob = commands["end_of_batch"].to_numpy(dtype=bool)
    elif "flags" in commands.columns:
        eob = (commands["flags"].to_numpy(dtype="int64") & FLAG_END_OF_BATCH) != 0
    else:
        raise ValueError(f"{what}: missing column end_of_batch (or flags); the book is only "
                         "consistent where a batch ends")
    return ts_ns(commands["ts"]), eob


def _apply_commands(bids: dict, asks: dict, cmds, ticks, qtys) -> None:
    """The command loop (plain lists: a dict operation per command is the whole cost)."""
    for c, t, q in zip(cmds, ticks, qtys):
        if c >= ADD_BID_LEVEL:
            book = bids if c % 2 == 0 else asks  # even codes are the bid side
            if c >= DELETE_BID_LEVEL or q <= 0:  # a level with no size is no level
                book.pop(t, None)
            else:
                book[t] = q
        elif c == CLEAR_BOOK:
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
        self.step = interval_ns(interval, "replay_sierra")
        self.levels = None if levels is None else positive_int(levels, "replay_sierra: levels")
        self._last_ts: int | None = None
        self._pending = None  # (bucket, snapshot) of the latest interval

    def feed(self, commands: pd.DataFrame) -> pd.DataFrame:
        """Apply a chunk of commands; returns the snapshots of completed intervals."""
        cmd, tick, qty = _command_levels(commands, self.book.tick_size, "replay_sierra")
        ts, eob = _batch_ends(commands, "replay_sierra")
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
            _apply_commands(bids, asks, cmd[pos:k + 1], tick[pos:k + 1], qty[pos:k + 1])
            pos = k + 1
            snaps.append(self._snapshot(int(ts[k])))
        _apply_commands(bids, asks, cmd[pos:], tick[pos:], qty[pos:])
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
