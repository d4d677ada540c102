"""The live pipeline: sources submit batches; each is validated, queued, aggregated and
published to the :class:`~tradeflow.live.hub.Hub` as it is written with other submitters'
batches in one store transaction, and acknowledged once that transaction committed.

Rules, and why:

* **Acknowledgement is durability.** ``submit_*`` returns after the transaction holding its batch
  committed. Batches queued while a transaction runs share the next one (micro-batching: one bulk
  write per symbol and kind instead of one per submitter). A batch that fails validation is
  refused (:class:`Rejected`) before it is queued, so it never joins, or fails, another's write.
* **Bounded.** At most ``max_pending_rows`` rows wait for the store; a submit that would go over
  raises :class:`Overloaded` at once, with the time the queue takes to drain at the recent write
  rate as ``retry_after``. A batch bigger than the whole limit is refused outright.
* **Time order per symbol.** The live bars are built from trades in the order the store sorts
  them (time, then trade id), so a symbol's live trades must arrive in that order: a trade before
  the latest one received is refused unless it is already known (a resent batch: trades are
  identified by ``(ts, trade_id)`` at microseconds, as the stores keep them), in which case it is
  dropped, so resending is harmless (idempotent).
* **Published as it is stored.** A transaction's trades, liquidations and depth go to the hub
  (one ``Hub.publish`` per symbol) when its writes begin, under the lock the writer holds until
  the commit, so charts see them in commit order without waiting for the store, and a stream
  seeded from the store (under that lock) misses and repeats nothing. Acknowledgements still
  wait for the commit. If the commit fails, the hub forgets those symbols' streams and books
  (``Hub.forget``): their charts resync from the store, so nothing unstored stays shown, and a
  chart's live bars equal the bars built from the stored trades. Bars received built are
  published after the commit (their subscribers read the store).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_access import AsyncStore
from data_access.frames import RowError, clean_depth, clean_liquidations
from tradeflow.ingest.validate import Validator
from tradeflow.model import TRADE_COLUMNS, InstrumentRegistry, ModelError, ns_to_utc, to_utc

from .hub import HISTORY, Hub

__all__ = ["Pipeline", "Rejected", "Overloaded"]

log = logging.getLogger(__name__)

US = 1_000  # ns in a microsecond: the stores' time resolution


class Rejected(ValueError):
    """A batch refused as bad input; ``str()`` says what and where (``row``: the batch's row,
    0-based, or None when the batch as a whole is wrong). Nothing of it was stored."""

    def __init__(self, message: str, row: int | None = None):
        super().__init__(message)
        self.row = row


class Overloaded(RuntimeError):
    """The store is behind: try again after ``retry_after`` seconds. Nothing was queued."""

    def __init__(self, retry_after: float, pending: int, limit: int):
        super().__init__(f"the store is behind ({pending:,} rows waiting, limit {limit:,}): "
                         f"retry in {retry_after:.2f} s")
        self.retry_after = retry_after


@dataclass
class _Batch:
    kind: str  # "trades", "bars", "depth" or "liquidations"
    symbol: str
    frame: pd.DataFrame
    done: asyncio.Future
    seconds: int | None = None  # bars: seconds per bar
    rows: int = field(init=False)

    def __post_init__(self):
        self.rows = len(self.frame)


@dataclass
class _Latest:
    """The latest trade of a symbol received (queued or stored): its time and the ids at it."""
    ts: int = -(2 ** 63)
    ids: set = field(default_factory=set)


class Pipeline:
    """One per process: sources -> validate -> micro-batched writes -> hub (``self.hub``)."""

    def __init__(self, store: AsyncStore, registry: InstrumentRegistry | None = None, *,
                 max_pending_rows: int = 2_000_000, max_transaction_rows: int = 500_000,
                 history: int = HISTORY, subscriber_queue: int = 256):
        self.store = store
        self.max_pending_rows = int(max_pending_rows)
        self.max_transaction_rows = int(max_transaction_rows)
        self._registry = registry
        self._commit = asyncio.Lock()  # held from a transaction's publishing to its commit
        self.hub = Hub(store, lambda symbol: self._registry.get(symbol), self._commit,
                       history=history, queue_size=subscriber_queue)
        self._queue: deque[_Batch] = deque()
        self._pending_rows = 0  # queued or being written
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task | None = None
        self._stopping = False
        self._inflight = 0  # submits begun and not yet answered
        self._quiet = asyncio.Event()  # set when none is
        self._quiet.set()
        self._validators: dict[str, Validator] = {}
        self._latest: dict[str, _Latest] = {}
        self._order: dict[str, asyncio.Lock] = {}
        self._loading: dict[str, asyncio.Future] = {}
        self._rate = 100_000.0  # rows per second the store has been taking (moving average)
        self.stats = {"transactions": 0, "rows": 0}

    # life ------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._registry is None:
            self._registry = await self.store.instruments()
        self._stopping = False
        self._writer = asyncio.create_task(self._write_loop(), name="pipeline-writer")

    async def stop(self) -> None:
        """Refuse new batches, write every queued one (their submitters get their answers), then
        stop the writer and end every subscription."""
        self._stopping = True
        await self._quiet.wait()  # submits already begun queue their batches and get answers
        await self.flushed()
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        self.hub.close()

    async def flushed(self) -> None:
        """Return once every batch queued so far has been written (or has failed)."""
        while self._queue or not self._idle.is_set():
            self._wake.set()
            await self._idle.wait()
            if self._writer is None or self._writer.done():
                break

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    # submitting ------------------------------------------------------------------------------
    async def submit_trades(self, symbol: str, trades: pd.DataFrame, source: str = "api") -> int:
        """Store a batch of one symbol's trades (``ts, price, size, side, trade_id``); returns the
        number of trades new to the pipeline (resent ones are dropped) once they are stored."""
        return await self._tracked(self._submit_trades(symbol, trades, source))

    async def queue_trades(self, symbol: str, trades: pd.DataFrame,
                           source: str = "api") -> asyncio.Future:
        """:meth:`submit_trades` in two steps, for a feeder that keeps batches in flight: returns
        once the batch is queued (refusals and :class:`Overloaded` are raised here, before
        anything is queued) with a future answered once it is stored (the number of new
        trades). Batches queued one after the other are stored in that order."""
        return await self._tracked(self._queue_in_order(symbol, trades, source))

    async def _submit_trades(self, symbol, trades, source) -> int:
        return await (await self._queue_in_order(symbol, trades, source))

    async def _queue_in_order(self, symbol, trades, source) -> asyncio.Future:
        # a symbol's submits queue their batches in the order they were called (a lock is
        # first come, first served), whatever each awaits on the way
        lock = self._order.setdefault(symbol, asyncio.Lock())
        async with lock:
            done = await self._queue_trades(symbol, trades, source)
        if done is None:  # nothing new: answered at once
            done = self._future()
            done.set_result(0)
        return done

    async def _queue_trades(self, symbol, trades, source) -> asyncio.Future | None:
        await self._instrument(symbol)
        frame = _trade_frame(trades)
        if frame.empty:
            return None
        try:
            frame = self._validator(source).trades(symbol, frame)
        except RowError as exc:
            raise Rejected(f"row {exc.row}: {exc.reason}", exc.row) from None
        frame, rows = _in_store_order(frame)
        frame = await self._drop_known(symbol, frame, rows)
        if frame.empty:
            return None
        self._capacity(len(frame))
        latest = self._latest[symbol]
        ts = frame["ts"].array.asi8
        last = int(ts[-1])
        at_last = set(frame["trade_id"].to_numpy()[ts == last].tolist())
        latest.ids = (latest.ids | at_last) if last == latest.ts else at_last
        latest.ts = last
        return self._put(_Batch("trades", symbol, frame, self._future()))

    async def submit_bars(self, symbol: str, bars: pd.DataFrame, seconds: int,
                          source: str) -> int:
        """Store bars received built (``seconds`` per bar; the same bar again replaces it)."""
        return await self._tracked(self._submit_bars(symbol, bars, seconds, source))

    async def _submit_bars(self, symbol, bars, seconds, source) -> int:
        await self._instrument(symbol)
        with _refused("bars"):
            frame = bars.copy()
            frame["ts"] = to_utc(frame["ts"])
            frame = self._validator(source).bars(symbol, frame, seconds=int(seconds))
        if frame.empty:
            return 0
        self._capacity(len(frame))
        return await self._put(_Batch("bars", symbol, frame, self._future(), int(seconds)))

    async def submit_depth(self, symbol: str, depth: pd.DataFrame, source: str = "api") -> int:
        """Store order-book snapshots (``ts, side, tick, size``)."""
        return await self._tracked(self._submit_plain("depth", clean_depth, symbol, depth))

    async def submit_liquidations(self, symbol: str, liq: pd.DataFrame,
                                  source: str = "api") -> int:
        """Store liquidations (``ts, side, price, size``); charts' studies see them."""
        return await self._tracked(
            self._submit_plain("liquidations", clean_liquidations, symbol, liq))

    async def _submit_plain(self, kind, clean, symbol, frame) -> int:
        await self._instrument(symbol)
        with _refused(kind):
            frame = clean(frame).sort_values("ts", kind="stable", ignore_index=True)
        if frame.empty:
            return 0
        self._capacity(len(frame))
        return await self._put(_Batch(kind, symbol, frame, self._future()))

    async def _tracked(self, submit) -> int:
        """Run a submit, counted so that stop() waits for it."""
        if self._writer is None or self._stopping:
            submit.close()
            raise RuntimeError("the pipeline is not running (start() it; after stop() it takes "
                               "nothing more)")
        self._inflight += 1
        self._quiet.clear()
        try:
            return await submit
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._quiet.set()

    async def _instrument(self, symbol: str):
        try:
            return self._registry.get(symbol)
        except ModelError:
            self._registry = await self.store.instruments()  # added since: look again
            try:
                return self._registry.get(symbol)
            except ModelError as exc:
                raise Rejected(str(exc)) from None

    def _validator(self, source: str) -> Validator:
        if source not in self._validators:
            self._validators[source] = Validator(lambda s: self._registry.get(s).tick_size)
        return self._validators[source]

    def _capacity(self, rows: int) -> None:
        if rows > self.max_pending_rows:
            raise Rejected(f"a batch of {rows:,} rows is more than the pipeline takes at once "
                           f"({self.max_pending_rows:,}): split it")
        if self._pending_rows + rows > self.max_pending_rows:
            wait = (self._pending_rows + rows - self.max_pending_rows / 2) / self._rate
            raise Overloaded(round(min(max(wait, 0.01), 10.0), 3), self._pending_rows,
                             self.max_pending_rows)

    def _future(self) -> asyncio.Future:
        return asyncio.get_running_loop().create_future()

    def _put(self, batch: _Batch) -> asyncio.Future:
        """Queue a batch; its future is answered when it is stored. Await it shielded: a
        cancelled submitter (a client gone) does not take its batch back, it is written."""
        self._queue.append(batch)
        self._pending_rows += batch.rows
        self._wake.set()
        return asyncio.shield(batch.done)

    # time order and resent trades -------------------------------------------------------------
    async def _drop_known(self, symbol: str, frame: pd.DataFrame, rows) -> pd.DataFrame:
        """``frame`` (sorted; ``rows``: each row's place in the batch as given) without trades
        already received; :class:`Rejected` for a trade before the latest one received that is
        not one of them. Returns with nothing awaited after the final check, so the caller queues
        the batch before any other submitter runs."""
        ts = frame["ts"].array.asi8
        tid = frame["trade_id"].to_numpy()
        latest = await self._latest_of(symbol)
        stored = np.zeros(len(ts), dtype=bool)
        behind = ts < latest.ts
        if behind.any():
            stored[behind] = await self._stored(symbol, frame[behind])
        latest = self._latest[symbol]  # another submitter may have moved it meanwhile
        behind = ts < latest.ts
        same = ts == latest.ts
        top = max(latest.ids) if latest.ids else np.iinfo("int64").min
        known = stored | (same & np.isin(tid, list(latest.ids)))
        late = (behind | (same & (tid < top))) & ~known
        if late.any():
            i = int(np.flatnonzero(late)[0])
            row = int(rows[i])
            raise Rejected(
                f"row {row}: trade at {ns_to_utc(ts[i])} (id {int(tid[i])}) "
                f"comes after {symbol}'s trade at {ns_to_utc(latest.ts)} (id {top}): "
                "live trades must come in time order, then trade id (older data: "
                "'tradeflow import')", row)
        return frame[~known].reset_index(drop=True) if known.any() else frame

    async def _stored(self, symbol: str, frame: pd.DataFrame) -> np.ndarray:
        """Which of these trades the store holds (the slow path of a resent batch: everything
        queued is written first, so a trade received is a trade stored)."""
        await self.flushed()
        async with self._commit:
            lo, hi = frame["ts"].iloc[0], frame["ts"].iloc[-1]
            stored = await self.store.trades(symbol, start=lo, end=hi + pd.Timedelta(1, "us"))
        have = pd.MultiIndex.from_arrays([stored["ts"].dt.floor("us").array.asi8,
                                          stored["trade_id"].to_numpy()])
        keys = pd.MultiIndex.from_arrays([frame["ts"].array.asi8, frame["trade_id"].to_numpy()])
        return np.asarray(keys.isin(have))

    async def _latest_of(self, symbol: str) -> _Latest:
        """The symbol's latest trade: read from the store on first use."""
        if symbol in self._latest:
            return self._latest[symbol]
        if symbol not in self._loading:
            self._loading[symbol] = asyncio.ensure_future(self._load_latest(symbol))
        latest = await asyncio.shield(self._loading[symbol])
        self._latest.setdefault(symbol, latest)
        return self._latest[symbol]

    async def _load_latest(self, symbol: str) -> _Latest:
        async with self._commit:
            last = await self.store.trades(symbol, last=1)
            if last.empty:
                return _Latest()
            at = last["ts"].iloc[0]
            same = await self.store.trades(symbol, start=at, end=at + pd.Timedelta(1, "us"))
        return _Latest(int(at.value), set(same["trade_id"].tolist()))

    # writing ---------------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._idle.clear()
            taken, rows = [], 0
            while self._queue and (not taken or rows + self._queue[0].rows
                                   <= self.max_transaction_rows):
                batch = self._queue.popleft()
                taken.append(batch)
                rows += batch.rows
            try:
                await self._write(taken, rows)
            except Exception as exc:  # noqa: BLE001 (a bug here must not stop the writer)
                log.exception("the pipeline's writer failed on %d batches", len(taken))
                for batch in taken:
                    if not batch.done.done():
                        batch.done.set_exception(exc)

    async def _write(self, taken: list[_Batch], rows: int) -> None:
        trades = _grouped(b for b in taken if b.kind == "trades")
        liquidations = _grouped(b for b in taken if b.kind == "liquidations")
        depth = _grouped(b for b in taken if b.kind == "depth")
        symbols = list(dict.fromkeys([*trades, *liquidations, *depth]))
        async with self._commit:
            # shown while it is stored: the store's transaction (tens of ms, more on a busy
            # machine) is not on the way to the charts; a failed one makes them resync below
            self._publish(symbols, trades, liquidations, depth)
            began = time.perf_counter()
            try:
                async with self.store.transaction() as tx:
                    for symbol, frame in trades.items():
                        await tx.write_trades(symbol, frame)
                    for batch in taken:
                        if batch.kind == "bars":
                            await tx.write_bars(batch.symbol, batch.frame, batch.seconds)
                    for symbol, frame in depth.items():
                        await tx.write_depth(symbol, frame)
                    for symbol, frame in liquidations.items():
                        await tx.write_liquidations(symbol, frame)
            except Exception as exc:  # noqa: BLE001 (every submitter must hear of it)
                # what the hub was shown is not stored: its charts read the store again
                self.hub.forget(symbols, "a write to the store failed: the charts of "
                                f"{', '.join(symbols)} are read from the store again")
                self._pending_rows -= rows
                self._forget(taken)
                for batch in taken:
                    if not batch.done.done():
                        batch.done.set_exception(exc)
                return
            self._pending_rows -= rows
            elapsed = time.perf_counter() - began
            self._rate = 0.8 * self._rate + 0.2 * (rows / max(elapsed, 1e-6))
            self.stats["transactions"] += 1
            self.stats["rows"] += rows
            for batch in taken:
                if not batch.done.done():
                    batch.done.set_result(batch.rows)
            try:  # bars received built: their subscribers read the store, so after it has them
                for batch in taken:
                    if batch.kind == "bars":
                        self.hub.publish_bars(batch.symbol, batch.frame, batch.seconds)
            except Exception:  # noqa: BLE001 (stored and acknowledged: charts resync)
                log.exception("publishing bars to the hub failed; its charts resync")
                self.hub.reset("an update could not be published")

    def _publish(self, symbols, trades, liquidations, depth) -> None:
        """A transaction's trades, liquidations and depth to the hub, one ``publish`` per
        symbol (called under the commit lock, before the transaction's writes)."""
        try:
            for symbol in symbols:
                self.hub.publish(symbol, trades.get(symbol), liquidations.get(symbol),
                                 depth.get(symbol))
        except Exception:  # noqa: BLE001 (the batch is still stored: the charts resync)
            log.exception("publishing to the hub failed; its charts resync")
            self.hub.reset("an update could not be published")

    def _forget(self, failed: list[_Batch]) -> None:
        """After a failed write: the failed trades were not received after all; the latest trade
        of their symbols is read from the store (and the queue) again."""
        for symbol in {b.symbol for b in failed if b.kind == "trades"}:
            self._latest.pop(symbol, None)
            self._loading.pop(symbol, None)
            queued = [b for b in self._queue if b.kind == "trades" and b.symbol == symbol]
            if queued:  # what is still queued is newer than anything stored
                frame = queued[-1].frame
                ts = frame["ts"].array.asi8
                self._latest[symbol] = _Latest(int(ts[-1]), set(
                    frame["trade_id"].to_numpy()[ts == ts[-1]].tolist()))


def _grouped(batches) -> dict[str, pd.DataFrame]:
    """One frame per symbol, batches in queue order (trades: each sorted, and each after the one
    before it, so the whole is sorted)."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for batch in batches:
        parts.setdefault(batch.symbol, []).append(batch.frame)
    return {s: (p[0] if len(p) == 1 else pd.concat(p, ignore_index=True)) for s, p in parts.items()}


def _trade_frame(trades: pd.DataFrame) -> pd.DataFrame:
    """The batch in the model's trade layout and dtypes, rows as given; Rejected names what is
    missing or of the wrong type."""
    if not isinstance(trades, pd.DataFrame):
        raise Rejected(f"trades: expected a table of trades, got {type(trades).__name__}")
    missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
    if missing:
        raise Rejected(f"trades: missing column(s) {', '.join(missing)} (each trade needs "
                       f"{', '.join(TRADE_COLUMNS)}; trade_id identifies it, so resending is "
                       "harmless)")
    out = {}
    for column, convert in (("ts", _times), ("price", _floats), ("size", _floats),
                            ("side", _ints), ("trade_id", _ints)):
        try:
            out[column] = convert(trades[column])
        except (ValueError, TypeError, OverflowError, ModelError) as exc:
            raise Rejected(f"trades: column {column}: {_why(exc)}") from None
    side = out["side"]
    bad = np.flatnonzero((side < -1) | (side > 1))
    if len(bad):
        i = int(bad[0])
        raise Rejected(f"row {i}: side must be 1 (buy), -1 (sell) or 0 (unknown), got "
                       f"{trades['side'].iloc[i]!r}", i)
    out["side"] = side.astype("int8")
    return pd.DataFrame(out, copy=False)


def _times(column: pd.Series) -> pd.DatetimeIndex:
    """UTC, floored to the microsecond: trades are identified at the stores' resolution."""
    dtype = getattr(column, "dtype", None)
    if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC" and dtype.unit == "ns":
        ns = column.array.asi8
    else:
        ns = to_utc(column).asi8
    return ns_to_utc(ns - ns % US)


def _in_store_order(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """(the trades sorted by time, then id, repeats of a (time, id) dropped; each row's place in
    the batch as given). Batches mostly come in that order already: then nothing is copied."""
    ts, tid = frame["ts"].array.asi8, frame["trade_id"].to_numpy()
    rows = np.arange(len(ts))
    step, same = ts[1:] - ts[:-1], tid[1:] - tid[:-1]
    if ((step > 0) | ((step == 0) & (same > 0))).all():
        return frame, rows
    order = np.lexsort((rows, tid, ts))
    ts, tid = ts[order], tid[order]
    keep = np.concatenate(([True], (ts[1:] != ts[:-1]) | (tid[1:] != tid[:-1])))
    order = order[keep]
    return frame.iloc[order].reset_index(drop=True), order


def _floats(column: pd.Series) -> np.ndarray:
    return np.asarray(column, dtype="float64")


def _ints(column: pd.Series) -> np.ndarray:
    values = np.asarray(column)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or (values != np.round(values)).any():
            raise ValueError("must be whole numbers")
    return values.astype("int64")


@contextmanager
def _refused(kind: str):
    """Bad input as :class:`Rejected`: a validator's row error names its row, other errors (a
    missing column, a wrong type) the kind of batch."""
    try:
        yield
    except RowError as exc:
        raise Rejected(f"row {exc.row}: {exc.reason}", exc.row) from None
    except (KeyError, ValueError, TypeError) as exc:
        raise Rejected(f"{kind}: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
