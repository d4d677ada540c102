"""The hub: charts subscribe by ``(symbol, spec, studies, source)`` and receive the current state,
then every change, as the pipeline publishes what it stored.

* One stream per (symbol, spec) in use, whatever the number of charts: one
  ``tradeflow.bars.BarAggregator`` and one ``indicators.live_protocol.Fanout`` of study followers
  (one per study and settings, shared by every chart asking for them). A stream is made on first
  demand and seeded from the store (the forming bar's trades; for tick, volume and range bars the
  trading day's, as they restart each day; recent closed time bars from the rollups); it is
  dropped with its last subscriber.
* Messages: :class:`Snapshot` first (recent closed bars, the forming bar, each study's result),
  then an :class:`Update` per commit (closed bars, sent once; the forming bar, re-sent whole; each
  study's :class:`~indicators.live_protocol.Changes`); :class:`ExternalBars` for ``source=
  "external"`` (bars received built, which replace stored bars of the same time). A
  :class:`ChartState` applies them: what a chart following a subscription holds.
* A slow subscriber does not slow anyone: each subscription queues at most ``queue_size``
  messages; when it is full the queue is emptied and replaced by one :class:`Resync`, and the
  next message after it is a fresh :class:`Snapshot` built when the subscriber reads it.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from indicators.live_protocol import Fanout, follower_key
from indicators.orderflow.live import LiveOrderFlow
from tradeflow.bars import BarAggregator
from tradeflow.model import (BAR_COLUMNS, FOOTPRINT_COLUMNS, BarSpec, Instrument, ModelError,
                             bar_start, empty_frame)

__all__ = ["Hub", "Subscription", "Snapshot", "Update", "ExternalBars", "Resync", "ChartState"]

SOURCES = ("trades", "external")


@dataclass(frozen=True)
class Snapshot:
    """The state of a chart now: recent closed bars (at least the hub's ``history``) and their
    cells, the forming bar (0 or 1 row) and its cells, each study's whole result."""
    closed: pd.DataFrame
    closed_footprint: pd.DataFrame
    current: pd.DataFrame
    current_footprint: pd.DataFrame
    studies: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Update:
    """What one commit changed: bars that closed (final), the forming bar (0 or 1 row, replacing
    the previous one), their cells, and ``{study: Changes}``."""
    closed: pd.DataFrame
    closed_footprint: pd.DataFrame
    current: pd.DataFrame
    current_footprint: pd.DataFrame
    studies: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExternalBars:
    """Bars received built; each replaces a shown bar with the same ``ts`` or is added."""
    bars: pd.DataFrame


@dataclass(frozen=True)
class Resync:
    """Updates were dropped (``reason`` says why); a fresh Snapshot follows."""
    reason: str


class ChartState:
    """What a chart holds after following a subscription's messages (``apply`` each)."""

    def __init__(self):
        self.closed = empty_frame(BAR_COLUMNS)
        self.closed_cells = empty_frame(FOOTPRINT_COLUMNS)
        self.current = empty_frame(BAR_COLUMNS)
        self.current_cells = empty_frame(FOOTPRINT_COLUMNS)
        self.studies: dict[str, pd.DataFrame] = {}
        self.resyncs = 0

    def apply(self, message) -> None:
        if isinstance(message, Snapshot):
            self.closed, self.closed_cells = message.closed, message.closed_footprint
            self.current, self.current_cells = message.current, message.current_footprint
            self.studies = {k: v.reset_index(drop=True) for k, v in message.studies.items()}
        elif isinstance(message, Update):
            self.closed = _cat(self.closed, message.closed)
            self.closed_cells = _cat(self.closed_cells, message.closed_footprint)
            self.current, self.current_cells = message.current, message.current_footprint
            for name, changes in message.studies.items():
                shown = self.studies.get(name)
                self.studies[name] = changes.applied(
                    shown if shown is not None else changes.rows.iloc[:0])
        elif isinstance(message, ExternalBars):
            both = _cat(self.closed, message.bars)
            self.closed = both.drop_duplicates("ts", keep="last").sort_values(
                "ts", ignore_index=True)
        elif isinstance(message, Resync):
            self.resyncs += 1

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


def _studies(studies) -> tuple[tuple[str, dict], ...]:
    """``studies`` as ((name, params), ...): names, or a mapping of name to its parameters."""
    if isinstance(studies, str):
        studies = (studies,)
    if isinstance(studies, Mapping):
        return tuple((str(k), dict(v or {})) for k, v in studies.items())
    return tuple((str(name), {}) for name in studies)


class _Stream:
    """One (symbol, spec) built from trades: its aggregator, recent closed bars and followers."""

    def __init__(self, instrument: Instrument, spec: BarSpec, history: int):
        self.instrument, self.spec, self.history = instrument, spec, history
        self.aggregator = BarAggregator(instrument, spec)
        self.chunks: deque[tuple[pd.DataFrame, pd.DataFrame]] = deque()  # closed (bars, cells)
        self.n_closed = 0
        self.fanout = Fanout()
        self.subs: set[Subscription] = set()
        self.follow_from: pd.Timestamp | None = None  # where a new study follower starts

    def keep(self, bars: pd.DataFrame, cells: pd.DataFrame) -> None:
        """Remember closed bars for snapshots: at least the last ``history``, whole updates."""
        if not len(bars):
            return
        self.chunks.append((bars, cells))
        self.n_closed += len(bars)
        while self.chunks and self.n_closed - len(self.chunks[0][0]) >= self.history:
            self.n_closed -= len(self.chunks.popleft()[0])

    def snapshot(self, studies) -> Snapshot:
        now = self.aggregator.update()  # no trades: the forming bar as it is
        results = {name: self.fanout[follower_key(name, params)].result(name)
                   for name, params in studies}
        return Snapshot(_frames([b for b, _ in self.chunks], BAR_COLUMNS),
                        _frames([c for _, c in self.chunks], FOOTPRINT_COLUMNS),
                        now.current, now.current_footprint, results)


def _frames(parts, columns) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_frame(columns)
    return pd.concat(parts, ignore_index=True)[list(columns)]


class Subscription:
    """One chart's messages, as an async iterator; ``close()`` unsubscribes."""

    def __init__(self, hub: "Hub", key: tuple, studies, queue_size: int):
        self.key = key  # (symbol, spec, source)
        self.studies = studies
        self._hub = hub
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
    """Subscriptions by (symbol, spec, studies, source), fed by the pipeline's ``publish_*``.

    ``instrument(symbol)`` gives an Instrument (raising ModelError for an unknown symbol); ``lock``
    is held by the pipeline from a transaction's start to its publishing, so a stream seeded
    from the store under it misses and repeats nothing."""

    def __init__(self, store, instrument, lock: asyncio.Lock, *, history: int = 300,
                 queue_size: int = 256):
        self.store = store
        self._instrument = instrument
        self._lock = lock
        self.history = history
        self.queue_size = queue_size
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._subs: dict[tuple, set[Subscription]] = {}  # by (symbol, spec, source)

    # subscribing -----------------------------------------------------------------------------
    def subscribe(self, symbol: str, spec: str, studies=(), source: str = "trades",
                  queue_size: int | None = None) -> Subscription:
        """A chart's subscription. Raises ModelError/ValueError for an unknown symbol, spec,
        source, study or parameter."""
        instrument = self._instrument(symbol)
        spec = BarSpec.parse(spec)
        if source not in SOURCES:
            raise ValueError(f"source {source!r}: use one of {', '.join(SOURCES)}")
        studies = _studies(studies)
        if source == "external" and (studies or not spec.is_intraday_time):
            raise ValueError("source 'external': bars received built, at an intraday time spec "
                             "(e.g. '1s', '1m'), without studies")
        for name, params in studies:  # refuse bad names and settings now, not when read
            LiveOrderFlow(instrument, [name], **{name: params})
        sub = Subscription(self, (symbol, str(spec), source), studies,
                           queue_size or self.queue_size)
        self._subs.setdefault(sub.key, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]
        stream = self._streams.get(sub.key[:2]) if sub.key[2] == "trades" else None
        if stream is not None and sub in stream.subs:
            self._detach(stream, sub)

    def _detach(self, stream: _Stream, sub: Subscription) -> None:
        stream.subs.discard(sub)
        for name, params in sub.studies:
            stream.fanout.release(follower_key(name, params))
        if not stream.subs:
            self._streams.pop((stream.instrument.symbol, str(stream.spec)), None)

    def streams(self) -> dict[tuple[str, str], _Stream]:
        """The streams in use, by (symbol, spec)."""
        return dict(self._streams)

    def close(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()

    # snapshots -------------------------------------------------------------------------------
    async def _snapshot(self, sub: Subscription):
        """A fresh Snapshot for ``sub`` (attaching it to its stream, made and seeded if need be),
        or None if it was closed meanwhile."""
        symbol, spec, source = sub.key
        async with self._lock:  # no commit is published while the store is read
            if sub._closed:
                return None
            instrument = self._instrument(symbol)
            if source == "external":
                bars = await self.store.bars(symbol, spec, last=self.history, source="external")
                empty = empty_frame(FOOTPRINT_COLUMNS)
                return Snapshot(bars, empty, bars.iloc[:0], empty)
            stream = self._streams.get((symbol, spec))
            if stream is None:
                stream = await self._seed(instrument, BarSpec.parse(spec))
                self._streams[(symbol, spec)] = stream
            if sub not in stream.subs:
                for name, params in sub.studies:
                    key = follower_key(name, params)
                    if key not in stream.fanout:
                        follower = LiveOrderFlow(instrument, [name], **{name: params})
                        await self._seed_follower(stream, follower)
                        stream.fanout.follow(key, lambda f=follower: f)
                    else:
                        stream.fanout.follow(key, None)
                stream.subs.add(sub)
            return stream.snapshot(sub.studies)

    async def _trades_since(self, symbol: str, start) -> pd.DataFrame:
        return await self.store.trades(symbol, start=start)

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
        stream.follow_from = _day_open(instrument, spec, ts)
        if spec.is_time:  # the closed bars before the forming one: from the rollups
            bars = await self.store.bars(symbol, spec, end=start, last=self.history)
            if len(bars):
                cells = await self.store.footprint(symbol, spec, start=bars["ts"].iloc[0],
                                                   end=start)
                stream.keep(bars[list(BAR_COLUMNS)], cells[list(FOOTPRINT_COLUMNS)])
        stream.keep(up.closed, up.closed_footprint)
        return stream

    async def _seed_follower(self, stream: _Stream, follower) -> None:
        """Bring a new study follower to where the stream is: the stored trades of the trading
        day through an aggregator of its own, which then holds the same forming bar."""
        if stream.follow_from is None:
            return
        aggregator = BarAggregator(stream.instrument, stream.spec)
        follower.apply(aggregator.update(
            await self.store.trades(stream.instrument.symbol, start=stream.follow_from)))

    # publishing (called by the pipeline after each commit) ------------------------------------
    def publish_trades(self, symbol: str, trades: pd.DataFrame | None,
                       liquidations: pd.DataFrame | None = None) -> None:
        for (sym, _), stream in list(self._streams.items()):
            if sym != symbol:
                continue
            if trades is not None and len(trades) and stream.follow_from is None:
                stream.follow_from = _day_open(stream.instrument, stream.spec,
                                               trades["ts"].iloc[0])
            try:
                up = stream.aggregator.update(trades, liquidations)
                changes = stream.fanout.apply(up)
            except (ModelError, ValueError) as exc:  # e.g. older trades stored by an import
                self._drop_stream(stream, f"the live stream of {symbol} {stream.spec} is "
                                          f"rebuilt: {exc}")
                continue
            stream.keep(up.closed, up.closed_footprint)
            for sub in list(stream.subs):
                sub._push(Update(up.closed, up.closed_footprint, up.current,
                                 up.current_footprint,
                                 {name: changes[follower_key(name, params)][name]
                                  for name, params in sub.studies}))

    def publish_bars(self, symbol: str, bars: pd.DataFrame, seconds: int) -> None:
        """Bars received built, to the ``external`` subscribers of their timeframe."""
        for (sym, spec, source), subs in list(self._subs.items()):
            if sym == symbol and source == "external" and BarSpec.parse(spec).seconds == seconds:
                for sub in list(subs):
                    sub._push(ExternalBars(bars))

    def reset(self, reason: str) -> None:
        """Drop every stream; their subscribers resync (and are seeded afresh from the store)."""
        for stream in list(self._streams.values()):
            self._drop_stream(stream, reason)

    def _drop_stream(self, stream: _Stream, reason: str) -> None:
        """Forget a stream that cannot go on; its subscribers resync (a new one is seeded)."""
        self._streams.pop((stream.instrument.symbol, str(stream.spec)), None)
        for sub in list(stream.subs):
            sub._resync(reason)


def _bar_open(instrument: Instrument, spec: BarSpec, ts: pd.Timestamp) -> pd.Timestamp:
    """The open of the bar forming at ``ts``; for tick, volume, range and Renko bars, which
    restart each trading day, the day's start."""
    session = instrument.session
    at = pd.DatetimeIndex([ts])
    if not spec.is_time:
        return session.day_start_utc(session.trading_date(at))[0]
    opened = bar_start(at, spec, session)
    return (opened if spec.is_intraday_time else session.day_start_utc(opened))[0]


def _day_open(instrument: Instrument, spec: BarSpec, ts: pd.Timestamp) -> pd.Timestamp:
    """Where study followers start: the open of the bar in which ``ts``'s trading day began
    (studies such as CVD restart with the day; a bar open, so bars line up with the stream's)."""
    session = instrument.session
    day = session.day_start_utc(session.trading_date(pd.DatetimeIndex([ts])))[0]
    return _bar_open(instrument, spec, day)
