"""The hub: charts subscribe by ``(symbol, spec, studies, source)`` and receive the current state,
then every change, as the pipeline publishes what it stores (as each transaction begins; after
a failed commit the symbols' charts resync from the store: :meth:`Hub.forget`).

* One stream per (symbol, spec) in use, whatever the number of charts: one
  ``tradeflow.bars.BarAggregator``, recent closed bars and one
  ``indicators.live_protocol.Fanout`` of study followers. A stream is made on first demand and
  seeded from the store (the forming bar's trades; for tick, volume and range bars the trading
  day's, as they restart each day; recent closed time bars from the rollups); it is dropped when
  nothing uses it.
* Studies: any study of ``indicators.catalogue.CATALOGUE`` that has a live form, with its
  settings (``studies=["cvd"]``, ``{"EMA": {"timeperiod": 21}, "heatmap": {}}`` or
  ``[("EMA", {"timeperiod": 20}), ("EMA", {"timeperiod": 50})]``; checked by the catalogue at
  :meth:`Hub.subscribe`). A name as given labels it in messages; a ``(name, settings)`` pair is
  labelled by the study and the settings that differ from its defaults
  (``StudyInfo.label``: ``EMA 20``, ``EMA 50``), so a chart can show both. Its follower,
  ``StudyInfo.live``, is shared by every chart asking for the same study and settings
  (``StudyInfo.follower_key``). A bar study follows the chart's stream, or the stream of its own
  spec when it has one (the TPO reads 1-minute bars, whatever the chart's); it is fed the stored
  trades and liquidations of the trading day when made, and indicators of time bars are also
  given up to ``history`` closed bars before that day (``history=``), so a chart holds the
  study's batch frame over those bars. This state is kept for one trading day: at the next
  day's first commit a stream with studies is dropped and its charts resync (seeded afresh, the
  studies start with the new day), and so are the book's depth studies; memory does not grow
  from day to day.
* Depth: every stored depth time is a whole book snapshot. The hub keeps the latest book of each
  symbol whose depth it is given since it started (``indicators.orderflow.OrderBook``; the
  store is not read for it; a snapshot not after the book's, or a crossed one, is skipped), and
  depth studies (``StudyInfo.stream == "depth"``: the
  heatmap) follow its snapshots as ``DepthUpdate`` s, from the book as it was when they were
  made.
* Messages: :class:`Snapshot` first (recent closed bars, the forming bar, each study's result
  from the first of those bars on, indexed by position: the hub keeps no more of it),
  then an :class:`Update` per commit that touched the chart (closed bars, sent once; the forming
  bar, re-sent whole; each study's :class:`~indicators.live_protocol.Changes`);
  :class:`ExternalBars` for ``source="external"`` (bars received built, which replace stored
  bars of the same time). A :class:`ChartState` applies them: what a chart following a
  subscription holds.
* Asked for at subscribe, for a DOM ladder and a time & sales tape: ``book_levels=N`` puts the
  book's best N levels a side (``ts, side, tick, price, size``; bids best first, then asks; the
  first of each side is the best bid/ask) in ``Snapshot.book``, and in ``Update.book`` whenever
  a commit changed the book (whole: it is small); ``tape=N`` (``True``: 200) puts the latest N
  stored trades in ``Snapshot.trades`` (and the liquidations since the first of them in
  ``Snapshot.liquidations``), and each commit's trades and liquidations in ``Update.trades`` and
  ``Update.liquidations``. Unasked, they are None.
* A slow subscriber does not slow anyone: each subscription queues at most ``queue_size``
  messages; when it is full the queue is emptied and replaced by one :class:`Resync`, and the
  next message after it is a fresh :class:`Snapshot` built when the subscriber reads it.
"""
from __future__ import annotations

import asyncio
import logging
import numbers
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from indicators.catalogue import CATALOGUE, Catalogue, StudyData, StudyInfo
from indicators.live_protocol import Changes, Fanout
from indicators.orderflow import OrderBook
from tradeflow.bars import BarAggregator
from tradeflow.model import (BAR_COLUMNS, FOOTPRINT_COLUMNS, LIQUIDATION_COLUMNS, TRADE_COLUMNS,
                             BarSpec, DepthUpdate, Instrument, ModelError, bar_start, empty_frame,
                             ns_to_utc)

__all__ = ["Hub", "Subscription", "Snapshot", "Update", "ExternalBars", "Resync", "ChartState"]

log = logging.getLogger(__name__)

SOURCES = ("trades", "external")
MAX_BOOK_LEVELS = 1000  # a side
TAPE = 200  # trades in a snapshot's tape when ``tape=True``
MAX_TAPE = 100_000
HISTORY = 300  # closed bars a chart's snapshot holds at least, by default


@dataclass(frozen=True)
class Snapshot:
    """The state of a chart now: recent closed bars (at least the hub's ``history``) and their
    cells, the forming bar (0 or 1 row) and its cells, each study's result since its follower
    started (its trading day; by the label it was asked by) from the first closed bar sent on,
    indexed by position in that whole result (so it starts past 0 once the day has more bars
    than are sent: an ``Update``'s ``Changes`` use the same positions); the book's best levels
    (``book_levels``), the latest trades and the liquidations since the first of them
    (``tape``) when asked, else None."""
    closed: pd.DataFrame
    closed_footprint: pd.DataFrame
    current: pd.DataFrame
    current_footprint: pd.DataFrame
    studies: dict = field(default_factory=dict)
    book: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    liquidations: pd.DataFrame | None = None


@dataclass(frozen=True)
class Update:
    """What one commit changed: bars that closed (final), the forming bar (0 or 1 row, replacing
    the previous one), their cells, and ``{study: Changes}`` of the studies it changed; ``book``:
    the book's best levels when asked and changed (else None); ``trades``, ``liquidations``:
    the commit's, when a tape was asked (else None)."""
    closed: pd.DataFrame
    closed_footprint: pd.DataFrame
    current: pd.DataFrame
    current_footprint: pd.DataFrame
    studies: dict = field(default_factory=dict)
    book: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    liquidations: pd.DataFrame | None = None


@dataclass(frozen=True)
class ExternalBars:
    """Bars received built; each replaces a shown bar with the same ``ts`` or is added."""
    bars: pd.DataFrame


@dataclass(frozen=True)
class Resync:
    """Updates were dropped (``reason`` says why); a fresh Snapshot follows."""
    reason: str


class ChartState:
    """What a chart holds after following a subscription's messages (``apply`` each); ``tape``
    keeps the latest ``tape_length`` trades and liquidations (None: all)."""

    def __init__(self, tape_length: int | None = None):
        self.closed = empty_frame(BAR_COLUMNS)
        self.closed_cells = empty_frame(FOOTPRINT_COLUMNS)
        self.current = empty_frame(BAR_COLUMNS)
        self.current_cells = empty_frame(FOOTPRINT_COLUMNS)
        self.studies: dict[str, pd.DataFrame] = {}
        self.book: pd.DataFrame | None = None
        self.tape = empty_frame(TRADE_COLUMNS)
        self.liquidations = empty_frame(LIQUIDATION_COLUMNS)
        self.tape_length = tape_length
        self.resyncs = 0

    def apply(self, message) -> None:
        if isinstance(message, Snapshot):
            self.closed, self.closed_cells = message.closed, message.closed_footprint
            self.current, self.current_cells = message.current, message.current_footprint
            self.studies = dict(message.studies)  # (indexed by position: past 0 when trimmed)
            self.book = message.book
            self.tape = self._kept(message.trades, empty_frame(TRADE_COLUMNS))
            self.liquidations = self._kept(message.liquidations,
                                           empty_frame(LIQUIDATION_COLUMNS))
        elif isinstance(message, Update):
            self.closed = _cat(self.closed, message.closed)
            self.closed_cells = _cat(self.closed_cells, message.closed_footprint)
            self.current, self.current_cells = message.current, message.current_footprint
            for name, changes in message.studies.items():
                shown = self.studies.get(name)
                self.studies[name] = changes.applied(
                    shown if shown is not None else changes.rows.iloc[:0])
            if message.book is not None:
                self.book = message.book
            self.tape = self._kept(message.trades, self.tape)
            self.liquidations = self._kept(message.liquidations, self.liquidations)
        elif isinstance(message, ExternalBars):
            both = _cat(self.closed, message.bars)
            self.closed = both.drop_duplicates("ts", keep="last").sort_values(
                "ts", ignore_index=True)
        elif isinstance(message, Resync):
            self.resyncs += 1

    def _kept(self, new: pd.DataFrame | None, shown: pd.DataFrame) -> pd.DataFrame:
        """``shown`` with ``new`` rows after it (None: nothing new), the latest ``tape_length``."""
        if new is None:
            return shown
        rows = _cat(shown, new)
        if self.tape_length is not None and len(rows) > self.tape_length:
            rows = rows.iloc[-self.tape_length:].reset_index(drop=True)
        return rows

    @property
    def bars(self) -> pd.DataFrame:
        return _cat(self.closed, self.current)

    @property
    def footprint(self) -> pd.DataFrame:
        return _cat(self.closed_cells, self.current_cells)


def _cat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    if not len(b):
        return a.reset_index(drop=True)
    if not len(a):
        return b.reset_index(drop=True)
    return pd.concat([a, b], ignore_index=True)


# --------------------------------------------------------------------------------------------
# studies asked for, and their results


@dataclass(frozen=True, eq=False)
class _Asked:
    """A study a subscription asked for: its label in messages, its catalogue entry and checked
    settings, the key its follower is shared by, and the bars it follows (None: the book)."""
    label: str
    info: StudyInfo
    params: dict
    key: tuple
    spec: str | None


def _asked(catalogue: Catalogue, studies, spec: BarSpec) -> tuple[_Asked, ...]:
    """``studies`` (names, ``(name, settings)`` pairs, or a mapping of name to settings)
    checked against the catalogue: an unknown study, a bad setting, a study without a live form
    or two studies of one label raise one line naming it. A name is labelled as given; a pair
    by ``StudyInfo.label`` (``EMA 20``), so one chart can ask for a study twice."""
    if isinstance(studies, str):
        studies = (studies,)
    items = studies.items() if isinstance(studies, Mapping) else (
        (s, None, False) if isinstance(s, str) else (*_pair(s), True) for s in studies)
    out, labels = [], set()
    for label, params, *paired in items:
        label = str(label)
        info = catalogue.get(label)
        if params is not None and not isinstance(params, Mapping):
            raise ValueError(f"study {label!r}: settings must be a mapping of parameter to "
                             f"value, got {type(params).__name__}")
        checked = info.check_params(params)
        if paired and paired[0]:
            label = info.label(checked)
        if label in labels:
            raise ValueError(f"study {label!r} is asked for twice; give each study once (the "
                             f"same study with other settings is another label, e.g. EMA 20)")
        labels.add(label)
        if not info.has_live:
            raise ValueError(f"study {info.name!r} has no live form, so a chart cannot follow "
                             f"it; compute it with 'tradeflow study {info.name}'")
        follows = (None if info.stream == "depth"
                   else str(BarSpec.parse(info.spec)) if info.spec else str(spec))
        out.append(_Asked(label, info, checked, info.follower_key(checked), follows))
    return tuple(out)


def _pair(item) -> tuple:
    """A ``(name, settings)`` pair of a subscription's studies."""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise ValueError(f"studies: each must be a name or a (name, settings) pair, got {item!r}")


def _count(value, what: str, most: int, default: int | None = None) -> int:
    """A subscription's count option: 0 (or False) for none, a whole number up to ``most``, or
    True for ``default`` when it has one."""
    if isinstance(value, bool) and (default is not None or not value):
        return default if value else 0
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) \
            and 0 <= value <= most:
        return int(value)
    also = " or True" if default is not None else ""
    raise ValueError(f"{what} must be a whole number from 0 to {most}{also}, got {value!r}")


class _Result:
    """A study's result from position ``first`` on, kept from its changes (what a chart
    following them holds), for snapshots; :meth:`trim` drops the rows of bars a snapshot no
    longer sends, so it does not grow through the day. Kept in pieces indexed by position, so
    that an update touching the last rows costs what it touches, not the whole frame. A piece
    is held whole while any of its rows is kept, so no piece spans much: the first result (the
    seed, or the trading day caught up) and any change of more than a tenth of what is kept come
    in ``SEED_PIECES`` pieces (copies), ``MERGED`` updates at a time are merged into one piece
    (never into an earlier merged one), and a snapshot's frame is not kept (one piece of all of
    it would double what is held until its last row aged out: 5 h of a 1-minute chart)."""

    SEED_PIECES = 10
    MERGED = 32

    def __init__(self, columns, frame: pd.DataFrame | None = None):
        self.columns = list(columns)
        self.parts = []
        if frame is not None and len(frame):
            self.parts = self._pieces(frame.reset_index(drop=True))
        self.n = len(frame) if self.parts else 0
        self.first = 0  # the position of the first row kept
        self.fresh = 0  # the last parts that are one update each (not merged, not split)

    def _pieces(self, frame: pd.DataFrame) -> list[pd.DataFrame]:
        """``frame`` in ``SEED_PIECES`` copies (its index kept)."""
        step = -(-len(frame) // self.SEED_PIECES)
        return [frame.iloc[a:a + step].copy() for a in range(0, len(frame), step)]

    def add(self, changes: Changes) -> None:
        rows = changes.rows
        if changes.length < self.first:  # (shrunk below what is kept: nothing is left)
            self.parts, self.first, self.n, self.fresh = [], changes.length, changes.length, 0
            return
        if self.first and len(rows):
            rows = rows[rows.index >= self.first]  # (a change of a row dropped: left out)
        first = int(rows.index.min()) if len(rows) else changes.length
        cut = max(min(first, changes.length, self.n), self.first)
        old = [p[(p.index < changes.length) & ~p.index.isin(rows.index)]
               for p in self._take_from(cut)]
        pieces = [p for p in (*old, rows) if len(p)]
        if pieces:
            part = pd.concat(pieces).sort_index() if len(pieces) > 1 else pieces[0]
            # (the day's rows caught up by a new follower came as one change: 5 h of a
            # 1-minute chart's imbalances, ~10 MB, were held whole until their last row aged
            # out. A result without times is never trimmed: no use cutting it.)
            tenth = (changes.length - self.first) // self.SEED_PIECES
            if "ts" in self.columns and len(part) > max(self.SEED_PIECES, tenth):
                self.parts.extend(self._pieces(part))
                self.fresh = 0
            else:
                self.parts.append(part)
                self.fresh += 1
        if cut + sum(len(p) for p in pieces) != changes.length:
            raise ValueError(f"a study's changes leave rows {cut}..{changes.length} unknown")
        self.n = changes.length
        if self.fresh >= 2 * self.MERGED:
            # the oldest updates not merged yet into one piece: fewer pieces to concatenate.
            # (Merging the newest instead took the last merged piece in each time, so one piece
            # grew to span most of the history, and was held whole until its last row aged out.)
            a = len(self.parts) - self.fresh
            self.parts[a:a + self.MERGED] = [pd.concat(self.parts[a:a + self.MERGED])]
            self.fresh -= self.MERGED

    def _take_from(self, cut: int) -> list[pd.DataFrame]:
        """Remove and return the rows at positions ``cut`` and after."""
        taken = []
        while self.parts and self.n - len(self.parts[-1]) >= cut:
            part = self.parts.pop()
            self.n -= len(part)
            self.fresh = max(self.fresh - 1, 0)
            taken.append(part)
        if self.parts and self.n > cut:
            last = self.parts[-1]
            before = last.index < cut
            self.parts[-1] = last[before]
            taken.append(last[~before])
            self.n = cut
        return taken[::-1]

    def trim(self, before: pd.Timestamp | None) -> None:
        """Drop the leading rows whose ``ts`` is before ``before`` (a result without times,
        such as a profile's levels, is kept whole)."""
        if before is None or "ts" not in self.columns:
            return
        while self.parts:
            ts = self.parts[0]["ts"]
            if not len(ts) or not ts.iloc[0] < before:
                return
            old = (ts < before).to_numpy()
            k = len(old) if old.all() else int(np.argmin(old))
            self.first += k
            if k == len(old):
                self.parts.pop(0)
                self.fresh = min(self.fresh, len(self.parts))
            else:
                self.parts[0] = self.parts[0].iloc[k:]
                return

    def frame(self) -> pd.DataFrame:
        """The rows kept, indexed by their position in the study's result."""
        if not self.parts:
            return pd.DataFrame(columns=self.columns, index=pd.RangeIndex(self.first,
                                                                          self.first))
        frame = pd.concat(self.parts) if len(self.parts) > 1 else self.parts[0].copy(deep=False)
        frame.index = pd.RangeIndex(self.first, self.first + len(frame))
        return frame


class _Followed:
    """A study's live follower (``StudyInfo.live``) and its result so far."""

    def __init__(self, info: StudyInfo, follower, history: pd.DataFrame | None = None):
        self.name, self.follower = info.name, follower
        self.result = _Result(info.outputs, history)

    def apply(self, update) -> dict[str, Changes]:
        changes = self.follower.apply(update)[self.name]
        self.result.add(changes)
        return {self.name: changes}


def _merged(first: Changes, then: Changes) -> Changes:
    """Two consecutive changes of one output as one: what a chart applying both would hold."""
    rows = first.rows[first.rows.index < then.length]
    rows = rows[~rows.index.isin(then.rows.index)]
    both = pd.concat([rows, then.rows]).sort_index() if len(rows) else then.rows
    return Changes(both, then.length)


# --------------------------------------------------------------------------------------------
# streams and books


class _Stream:
    """One (symbol, spec) built from trades: its aggregator, recent closed bars, the forming bar,
    its study followers, and the subscriptions using it (as their chart, or for a study)."""

    def __init__(self, instrument: Instrument, spec: BarSpec, history: int):
        self.instrument, self.spec, self.history = instrument, spec, history
        self.aggregator = BarAggregator(instrument, spec)
        self.chunks: deque[tuple[pd.DataFrame, pd.DataFrame]] = deque()  # closed (bars, cells)
        self.n_closed = 0
        self.current = empty_frame(BAR_COLUMNS)
        self.current_cells = empty_frame(FOOTPRINT_COLUMNS)
        self.fanout = Fanout()
        self.subs: set[Subscription] = set()
        self.follow_from: pd.Timestamp | None = None  # where a new study follower starts
        self.day_end: pd.Timestamp | None = None  # when follow_from's trading day ends

    def start_day(self, ts: pd.Timestamp) -> None:
        """Study followers made from now on start with the trading day of ``ts``."""
        self.follow_from = _day_open(self.instrument, self.spec, ts)
        self.day_end = _day_end(self.instrument, ts)

    def keep(self, bars: pd.DataFrame, cells: pd.DataFrame) -> None:
        """Remember closed bars for snapshots: at least the last ``history``, kept as the
        updates came, except that an update of more than a tenth of that (the seed's history, a
        gap caught up) is kept in pieces of a tenth (copies): a piece is held while any of its
        bars is, and the seed's 300 bars held whole until the last aged out would double what
        the stream holds for 5 h."""
        if not len(bars):
            return
        step = max(1, self.history // 10)
        if len(bars) <= step:
            pieces = [(bars, cells)]
        else:
            ts = bars["ts"].reset_index(drop=True)
            # (cut only where the time moves on: bars of one time, as tick bars can be, and
            # their cells stay in one piece)
            cuts = [b for b in range(step, len(bars), step) if ts[b] > ts[b - 1]]
            pieces = []
            for a, b in zip([0, *cuts], [*cuts, len(bars)]):
                inside = np.ones(len(cells), bool)
                if a:
                    inside &= (cells["ts"] >= ts[a]).to_numpy()
                if b < len(bars):
                    inside &= (cells["ts"] < ts[b]).to_numpy()
                pieces.append((bars.iloc[a:b].copy(), cells[inside]))
        for piece in pieces:
            self.chunks.append(piece)
            self.n_closed += len(piece[0])
        while self.chunks and self.n_closed - len(self.chunks[0][0]) >= self.history:
            self.n_closed -= len(self.chunks.popleft()[0])

    def advance(self, up) -> None:
        self.keep(up.closed, up.closed_footprint)
        self.current, self.current_cells = up.current, up.current_footprint

    def closed(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return (_frames([b for b, _ in self.chunks], BAR_COLUMNS),
                _frames([c for _, c in self.chunks], FOOTPRINT_COLUMNS))

    def since(self) -> pd.Timestamp | None:
        """The open of the first closed bar kept (a snapshot's first bar), None without one."""
        return self.chunks[0][0]["ts"].iloc[0] if self.chunks else None

    def trim(self, keys) -> None:
        """The results of the followers ``keys`` kept from the first closed bar kept on: rows
        of older bars are not in a snapshot's bars, so they are not kept for one either."""
        since = self.since()
        for key in keys:
            self.fanout[key].result.trim(since)


class _Book:
    """The latest book of a symbol (each stored depth time is a whole snapshot), the depth
    studies following its snapshots, and the subscriptions using it."""

    def __init__(self, instrument: Instrument):
        self.instrument = instrument
        self.book = OrderBook(instrument.tick_size)
        self.ts: int | None = None  # epoch ns of the snapshot it holds
        self.day_end: pd.Timestamp | None = None  # when the depth studies' trading day ends
        self.fanout = Fanout()
        self.subs: set[Subscription] = set()

    def top(self, n: int) -> pd.DataFrame:
        """The best ``n`` levels a side: ``ts, side, tick, price, size``."""
        levels = self.book.levels(n, ts=None if self.ts is None else ns_to_utc(self.ts))
        levels.insert(3, "price", self.instrument.to_price(levels["tick"]))
        return levels

    def snapshot(self) -> DepthUpdate | None:
        """The book as a snapshot update (what a new follower starts from)."""
        if self.ts is None:
            return None
        return DepthUpdate(self.book.levels(ts=ns_to_utc(self.ts)), snapshot=True)


def _frames(parts, columns) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_frame(columns)
    return pd.concat(parts, ignore_index=True)[list(columns)]


def _snapshots(depth: pd.DataFrame, after: int | None) -> list[tuple[int, pd.DataFrame]]:
    """The snapshots of a depth frame, in time order, as ``(epoch ns, levels)``; those not after
    ``after`` left out (a resent batch: the store skipped them too)."""
    depth = depth.sort_values("ts", kind="stable", ignore_index=True)
    ns = pd.DatetimeIndex(depth["ts"]).as_unit("ns").asi8
    if after is not None:
        keep = ns > after
        depth, ns = depth[keep].reset_index(drop=True), ns[keep]
    if not len(ns):
        return []
    bounds = np.r_[np.flatnonzero(np.r_[True, ns[1:] != ns[:-1]]), len(ns)]
    return [(int(ns[a]), depth.iloc[a:b].reset_index(drop=True))
            for a, b in zip(bounds[:-1], bounds[1:])]


class Subscription:
    """One chart's messages, as an async iterator; ``close()`` unsubscribes."""

    def __init__(self, hub: "Hub", key: tuple, asked: tuple[_Asked, ...], queue_size: int,
                 book_levels: int = 0, tape: int = 0):
        self.key = key  # (symbol, spec, source)
        self.studies = {a.label: a.params for a in asked}  # checked, defaults filled
        self.book_levels, self.tape = book_levels, tape
        self._asked = asked
        self._hub = hub
        self._stream: _Stream | None = None  # its chart's stream, once attached
        self._uses: list[tuple[_Stream | _Book, tuple]] | None = None  # each study's follower
        self._queue: deque = deque()
        self._size = queue_size
        self._ready = asyncio.Event()
        self._snapshot_due = True  # the next message read is a Snapshot (nothing queued)
        self._closed = False
        self.dropped = 0  # messages dropped by overflows

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._queue:
                message = self._queue.popleft()
                if not self._queue:
                    self._ready.clear()
                return message
            if self._snapshot_due:
                message = await self._hub._snapshot(self)
                if message is not None:
                    self._snapshot_due = False
                    return message
                continue
            self._ready.clear()
            await self._ready.wait()

    @property
    def waiting(self) -> int:
        """Messages that can be read now without waiting."""
        return len(self._queue)

    def _push(self, message) -> None:
        if self._closed or self._snapshot_due:
            return  # the snapshot to come is built when read: it will hold this
        if len(self._queue) >= self._size:
            self.dropped += len(self._queue)
            self._queue.clear()
            self._queue.append(Resync(f"more than {self._size} updates were waiting for this "
                                      "subscriber; they were dropped"))
            self._snapshot_due = True
        else:
            self._queue.append(message)
        self._ready.set()

    def _resync(self, reason: str) -> None:
        self._queue.clear()
        self._queue.append(Resync(reason))
        self._snapshot_due = True
        self._ready.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub._unsubscribe(self)
            self._ready.set()


class Hub:
    """Subscriptions by (symbol, spec, studies, source), fed by the pipeline's ``publish*``.

    ``instrument(symbol)`` gives an Instrument (raising ModelError for an unknown symbol); ``lock``
    is held by the pipeline from a transaction's publishing to its commit, so a stream seeded
    from the store under it misses and repeats nothing. ``catalogue``: where studies are found."""

    def __init__(self, store, instrument, lock: asyncio.Lock, *, history: int = HISTORY,
                 queue_size: int = 256, catalogue: Catalogue = CATALOGUE):
        self.store = store
        self._instrument = instrument
        self._lock = lock
        self.history = history
        self.queue_size = queue_size
        self.catalogue = catalogue
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._books: dict[str, _Book] = {}
        self._subs: dict[tuple, set[Subscription]] = {}  # by (symbol, spec, source)

    # subscribing -----------------------------------------------------------------------------
    def subscribe(self, symbol: str, spec: str, studies=(), source: str = "trades",
                  queue_size: int | None = None, *, book_levels: int = 0,
                  tape: int | bool = 0) -> Subscription:
        """A chart's subscription (see the module's docstring). Raises ModelError/ValueError,
        one line naming it, for an unknown symbol, spec, source or study, a bad setting, a study
        without a live form, or a bad ``book_levels``/``tape``."""
        self._instrument(symbol)
        spec = BarSpec.parse(spec)
        if source not in SOURCES:
            raise ValueError(f"source {source!r}: use one of {', '.join(SOURCES)}")
        asked = _asked(self.catalogue, studies or (), spec)
        book_levels = _count(book_levels, "book_levels", MAX_BOOK_LEVELS)
        tape = _count(tape, "tape", MAX_TAPE, default=TAPE)
        if source == "external" and (asked or book_levels or tape or not spec.is_intraday_time):
            raise ValueError("source 'external': bars received built, at an intraday time spec "
                             "(e.g. '1s', '1m'), without studies, book or tape")
        sub = Subscription(self, (symbol, str(spec), source), asked,
                           queue_size or self.queue_size, book_levels, tape)
        self._subs.setdefault(sub.key, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]
        self._detach(sub)

    def _detach(self, sub: Subscription) -> None:
        """Give back what ``sub`` uses: its studies' followers, its streams (dropped when
        nothing else uses them), its book."""
        used = [sub._stream] if sub._stream is not None else []
        for target, key in sub._uses or ():
            target.fanout.release(key)
            used.append(target)
        book = self._books.get(sub.key[0])
        if book is not None:
            used.append(book)
        for target in used:
            target.subs.discard(sub)
            if isinstance(target, _Stream) and not target.subs:
                key = (target.instrument.symbol, str(target.spec))
                if self._streams.get(key) is target:
                    del self._streams[key]
        sub._stream, sub._uses = None, None

    def streams(self) -> dict[tuple[str, str], _Stream]:
        """The streams in use, by (symbol, spec)."""
        return dict(self._streams)

    def books(self) -> dict[str, _Book]:
        """The books kept, by symbol."""
        return dict(self._books)

    def close(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()

    # snapshots -------------------------------------------------------------------------------
    async def _snapshot(self, sub: Subscription):
        """A fresh Snapshot for ``sub`` (attaching it to its streams, made and seeded if need
        be), or None if it was closed meanwhile."""
        symbol, spec, source = sub.key
        async with self._lock:  # no commit is published while the store is read
            if sub._closed:
                return None
            instrument = self._instrument(symbol)
            if source == "external":
                bars = await self.store.bars(symbol, spec, last=self.history, source="external")
                empty = empty_frame(FOOTPRINT_COLUMNS)
                return Snapshot(bars, empty, bars.iloc[:0], empty)
            if sub._stream is None:
                try:
                    await self._attach(sub, instrument)
                except BaseException:
                    self._detach(sub)
                    raise
                if sub._closed:  # closed while the store was read
                    self._detach(sub)
                    return None
            stream = sub._stream
            for target, key in sub._uses:
                if isinstance(target, _Stream):
                    target.trim([key])
            studies = {a.label: target.fanout[a.key].result.frame()
                       for a, (target, _) in zip(sub._asked, sub._uses)}
            book = self._books[symbol].top(sub.book_levels) if sub.book_levels else None
            trades = liquidations = None
            if sub.tape:
                trades = (await self.store.trades(symbol, last=sub.tape))[list(TRADE_COLUMNS)]
                liquidations = empty_frame(LIQUIDATION_COLUMNS)
                if len(trades):
                    liquidations = (await self.store.liquidations(
                        symbol, start=trades["ts"].iloc[0]))[list(LIQUIDATION_COLUMNS)]
            closed, closed_cells = stream.closed()
            return Snapshot(closed, closed_cells, stream.current, stream.current_cells, studies,
                            book, trades, liquidations)

    async def _attach(self, sub: Subscription, instrument: Instrument) -> None:
        """Attach ``sub`` to its chart's stream, its studies' followers and its book. What was
        attached is recorded in ``sub`` even when this fails (so it can be given back)."""
        stream, uses = None, []
        try:
            stream = await self._stream_of(instrument, sub.key[1])
            stream.subs.add(sub)
            for a in sub._asked:
                target = (await self._stream_of(instrument, a.spec) if a.spec is not None
                          else self._book_of(instrument))
                target.subs.add(sub)
                if a.key not in target.fanout:
                    follower = (await self._bar_follower(target, a) if a.spec is not None
                                else self._depth_follower(target, a))
                    target.fanout.follow(a.key, lambda f=follower: f)
                else:
                    target.fanout.follow(a.key, None)
                uses.append((target, a.key))
            if sub.book_levels:
                self._book_of(instrument).subs.add(sub)
        finally:
            sub._stream, sub._uses = stream, uses

    async def _stream_of(self, instrument: Instrument, spec: str) -> _Stream:
        stream = self._streams.get((instrument.symbol, spec))
        if stream is None:
            stream = await self._seed(instrument, BarSpec.parse(spec))
            self._streams[(instrument.symbol, spec)] = stream
        return stream

    def _book_of(self, instrument: Instrument) -> _Book:
        if instrument.symbol not in self._books:
            self._books[instrument.symbol] = _Book(instrument)
        return self._books[instrument.symbol]

    async def _seed(self, instrument: Instrument, spec: BarSpec) -> _Stream:
        """A stream whose aggregator has the stored trades of its forming bar (tick, volume,
        range bars: of the trading day, as they restart each day), and recent closed bars."""
        stream = _Stream(instrument, spec, self.history)
        symbol = instrument.symbol
        last = await self.store.trades(symbol, last=1)
        if last.empty:
            return stream
        ts = last["ts"].iloc[-1]
        start = _bar_open(instrument, spec, ts)
        up = stream.aggregator.update(await self.store.trades(symbol, start=start))
        stream.start_day(ts)
        if spec.is_time:  # the closed bars before the forming one: from the rollups
            bars = await self.store.bars(symbol, spec, end=start, last=self.history)
            if len(bars):
                cells = await self.store.footprint(symbol, spec, start=bars["ts"].iloc[0],
                                                   end=start)
                stream.keep(bars[list(BAR_COLUMNS)], cells[list(FOOTPRINT_COLUMNS)])
        stream.advance(up)
        return stream

    async def _bar_follower(self, stream: _Stream, a: _Asked) -> _Followed:
        """A new follower of a bar study, brought to where the stream is: fed the stored trades
        and liquidations of the trading day through an aggregator of its own, which then holds
        the same forming bar. An indicator of time bars is first given up to ``history`` closed
        bars before that day (tick, volume and range bars restart each day), and its result
        starts with its values over them."""
        symbol, start = stream.instrument.symbol, stream.follow_from
        history = None
        if a.info.key in self.catalogue.registry and start is not None and stream.spec.is_time:
            bars = await self.store.bars(symbol, stream.spec, end=start, last=self.history)
            history = bars[list(BAR_COLUMNS)].reset_index(drop=True) if len(bars) else None
        before = None if history is None else a.info.batch(
            StudyData(stream.instrument, bars=history, spec=str(stream.spec)), **a.params)
        followed = _Followed(a.info, a.info.live(stream.instrument, history=history,
                                                 **a.params), before)
        if start is not None:
            trades = await self.store.trades(symbol, start=start)
            liquidations = await self.store.liquidations(symbol, start=start)
            followed.apply(BarAggregator(stream.instrument, stream.spec).update(
                trades, liquidations[list(LIQUIDATION_COLUMNS)] if len(liquidations) else None))
        return followed

    def _depth_follower(self, book: _Book, a: _Asked) -> _Followed:
        """A new follower of a depth study, starting from the book as it is."""
        followed = _Followed(a.info, a.info.live(book.instrument, **a.params))
        now = book.snapshot()
        if now is not None:
            followed.apply(now)
        return followed

    # publishing (called by the pipeline as each transaction begins) -----------------------------
    def publish(self, symbol: str, trades: pd.DataFrame | None = None,
                liquidations: pd.DataFrame | None = None,
                depth: pd.DataFrame | None = None) -> None:
        """What one commit stores for ``symbol`` (each part None or empty when it had none), to
        the symbol's streams, its book and their subscribers. The pipeline calls it as the
        transaction begins, holding the lock until the commit (:meth:`forget` if it fails)."""
        moved = {}
        if _rows(trades) or _rows(liquidations):
            moved = self._advance_streams(symbol, trades, liquidations)
        book, depth_changes = self._books.get(symbol), None
        if _rows(depth):
            book = self._book_of(self._instrument(symbol))
            depth_changes = self._advance_book(book, depth)
        subs = {}
        for stream in moved:
            subs.update(dict.fromkeys(stream.subs))
        if depth_changes is not None:
            subs.update(dict.fromkeys(book.subs))
        tops: dict[int, pd.DataFrame] = {}
        tape = (trades if _rows(trades) else empty_frame(TRADE_COLUMNS),
                liquidations if _rows(liquidations) else empty_frame(LIQUIDATION_COLUMNS))
        for sub in subs:
            if sub._stream is None:
                continue
            studies = {}
            for a, (target, key) in zip(sub._asked, sub._uses):
                changes = moved[target][1] if target in moved else (
                    depth_changes if target is book else None)
                if changes is not None and key in changes:
                    studies[a.label] = changes[key]
            top = None
            if sub.book_levels and depth_changes is not None:
                if sub.book_levels not in tops:
                    tops[sub.book_levels] = book.top(sub.book_levels)
                top = tops[sub.book_levels]
            stream = sub._stream
            if stream in moved:
                closed, closed_cells = moved[stream][0].closed, moved[stream][0].closed_footprint
            else:  # the bars did not change: none closed, the forming bar as it is
                closed, closed_cells = empty_frame(BAR_COLUMNS), empty_frame(FOOTPRINT_COLUMNS)
            sub._push(Update(closed, closed_cells, stream.current, stream.current_cells,
                             studies, top, *(tape if sub.tape else (None, None))))

    def _advance_streams(self, symbol, trades, liquidations) -> dict:
        """Run a commit's trades through the symbol's streams: ``{stream: (BarUpdate, {follower
        key: Changes})}``. A stream that refuses them (older trades written around the
        pipeline) is dropped and its subscribers resync."""
        moved, failed, new_day = {}, [], []
        for (sym, _), stream in list(self._streams.items()):
            if sym != symbol:
                continue
            if _rows(trades):
                last = trades["ts"].iloc[-1]
                if stream.follow_from is None:
                    stream.start_day(trades["ts"].iloc[0])
                elif last >= stream.day_end:
                    # a new trading day: the studies' state (kept for their day, e.g. a CVD,
                    # a session profile) starts again instead of growing day after day; the
                    # stream is seeded afresh and its charts resync (their snapshots wait for the
                    # lock, so for the commit)
                    if len(stream.fanout):
                        new_day.append(stream)
                        continue
                    stream.start_day(last)
            try:
                up = stream.aggregator.update(trades, liquidations)
                out = stream.fanout.apply(up)
            except (ModelError, ValueError) as exc:
                failed.append((stream, exc))
                continue
            stream.advance(up)
            changes = {key: cs[stream.fanout[key].name] for key, cs in out.items()}
            if len(up.closed):
                stream.trim(out)
            moved[stream] = (up, changes)
        for stream, exc in failed:
            self._drop(stream, f"the live stream of {symbol} {stream.spec} is rebuilt: {exc}")
        for stream in new_day:
            self._drop(stream, f"a new trading day: the studies of {symbol} {stream.spec} "
                               "start again")
        return moved

    def _advance_book(self, book: _Book, depth: pd.DataFrame) -> dict | None:
        """Apply a commit's depth snapshots to the symbol's book: ``{follower key: Changes}``
        (the changes of all its snapshots as one), or None when the book did not change. With
        no depth study following, only the last snapshot matters (each replaces the book)."""
        snapshots = _snapshots(depth, book.ts)
        if snapshots and book.day_end is not None and snapshots[-1][0] >= book.day_end.value:
            # a new trading day: the depth studies (their kept results) start again from the
            # book as it is, instead of growing day after day; their charts resync
            if len(book.fanout):
                self._drop(book, f"a new trading day: the depth studies of "
                                 f"{book.instrument.symbol} start again")
            book.day_end = None
        if snapshots and book.day_end is None:
            book.day_end = _day_end(book.instrument, ns_to_utc(snapshots[-1][0]))
        if not len(book.fanout):
            snapshots = snapshots[-1:]
        changes, applied = {}, False
        for ns, levels in snapshots:
            update = DepthUpdate(levels, snapshot=True)
            try:
                book.book.apply(update)
            except ValueError as exc:  # crossed: stored, but no book a study can follow
                log.warning("%s: the depth snapshot at %s is left out of the live book: %s",
                            book.instrument.symbol, ns_to_utc(ns), exc)
                continue
            book.ts, applied = ns, True
            try:
                out = book.fanout.apply(update)
            except ValueError as exc:
                self._drop(book, f"the live depth studies of {book.instrument.symbol} are "
                                 f"rebuilt: {exc}")
                return {}
            for key, cs in out.items():
                now = cs[book.fanout[key].name]
                changes[key] = _merged(changes[key], now) if key in changes else now
        return changes if applied else None

    def publish_bars(self, symbol: str, bars: pd.DataFrame, seconds: int) -> None:
        """Bars received built, to the ``external`` subscribers of their timeframe."""
        for (sym, spec, source), subs in list(self._subs.items()):
            if sym == symbol and source == "external" and BarSpec.parse(spec).seconds == seconds:
                for sub in list(subs):
                    sub._push(ExternalBars(bars))

    def reset(self, reason: str) -> None:
        """Drop every stream and every book's studies; their subscribers resync (and are seeded
        afresh from the store)."""
        for target in [*self._streams.values(), *self._books.values()]:
            self._drop(target, reason)

    def forget(self, symbols, reason: str) -> None:
        """Drop the streams and books of ``symbols`` (after a failed commit, what they were
        shown is not stored); their subscribers resync, seeded afresh from the store. A book
        starts empty again: the store has no latest snapshot to seed it from."""
        symbols = set(symbols)
        for (symbol, _), stream in list(self._streams.items()):
            if symbol in symbols:
                self._drop(stream, reason)
        for symbol in symbols:
            book = self._books.get(symbol)
            if book is not None:
                self._drop(book, reason)
                self._books.pop(symbol, None)

    def _drop(self, target: _Stream | _Book, reason: str) -> None:
        """Forget a stream (or a book's followers) that cannot go on; its subscribers resync,
        and are attached afresh when they read their next snapshot."""
        if isinstance(target, _Stream):
            self._streams.pop((target.instrument.symbol, str(target.spec)), None)
        for sub in list(target.subs):
            self._detach(sub)
            sub._resync(reason)


def _rows(frame: pd.DataFrame | None) -> int:
    return 0 if frame is None else len(frame)


def _bar_open(instrument: Instrument, spec: BarSpec, ts: pd.Timestamp) -> pd.Timestamp:
    """The open of the bar forming at ``ts``; for tick, volume, range and Renko bars, which
    restart each trading day, the day's start."""
    session = instrument.session
    at = pd.DatetimeIndex([ts])
    if not spec.is_time:
        return session.day_start_utc(session.trading_date(at))[0]
    opened = bar_start(at, spec, session)
    return (opened if spec.is_intraday_time else session.day_start_utc(opened))[0]


def _day_end(instrument: Instrument, ts: pd.Timestamp) -> pd.Timestamp:
    """When the trading day of ``ts`` ends (the next trading date's start)."""
    session = instrument.session
    day = session.trading_date(pd.DatetimeIndex([ts]))
    return session.day_start_utc(day + pd.Timedelta(days=1))[0]


def _day_open(instrument: Instrument, spec: BarSpec, ts: pd.Timestamp) -> pd.Timestamp:
    """Where study followers start: the open of the bar in which ``ts``'s trading day began
    (studies such as CVD restart with the day; a bar open, so bars line up with the stream's)."""
    session = instrument.session
    day = session.day_start_utc(session.trading_date(pd.DatetimeIndex([ts])))[0]
    return _bar_open(instrument, spec, day)
