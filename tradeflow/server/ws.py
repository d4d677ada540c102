"""The websocket ingest hook, ``/api/v1/ingest/ws``: feeders push batches, each acknowledged by
its sequence number once it is durably stored.

The upgrade request carries the API key in ``X-API-Key`` (refused with 401/403 before any
message). Each text message is one batch::

    {"seq": 17, "type": "trades", "symbol": "BTCUSDT",
     "data": [{"time": "2026-01-05T14:30:00.125Z", "price": 97000.5, "size": 0.01,
               "side": "buy", "id": 123456}]}

``type`` is ``trades``, ``bars`` (Sierra Chart bar fields; ``"seconds": 60`` per bar),
``depth`` (``{time, side: "bid"|"ask", price, size}``; the rows of one time are the whole book
at that time, a snapshot: a feed of diffs applies them to its own book first, as
``tradeflow.venues.binance.BinanceBook`` does) or
``liquidations`` (``{time, side: "buy"|"sell", price, size}``); each batch holds one symbol.
The server answers each batch with exactly one message:

* ``{"ack": 17, "rows": 500}``: stored (all its rows; once acknowledged, never lost);
* ``{"seq": 17, "error": "trade 3: size ..."}``: refused, nothing of it stored.

A connection's batches are stored one after another, in the order sent (a symbol's live trades
must come in time order), and answered in that order. While the store writes a connection's
trades, the server reads, checks and queues the batches sent after them, up to
:data:`IN_FLIGHT` unanswered (the store then writes them in fewer, larger transactions). When the
store is behind, the server keeps the batch, says ``{"seq": 17, "slow_down": true,
"retry_after": 0.5}`` (a notice, not an answer: the ack or error follows), stops reading the
socket (the feeder's sends block: TCP back-pressure) and queues the batch as soon as the pipeline
takes it. So a feeder never resends, nothing it sent is lost or reordered, and the server holds
at most one batch per connection that the pipeline has not taken. One exception: when the store
fails a write (not a refusal: the database went away), that batch's error may be followed by
acks of batches already queued behind it. For more throughput, send bigger batches, or one
connection per symbol.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from numbers import Integral

import numpy as np
import pandas as pd
import tornado.websocket

from tradeflow.ingest.validate import off_grid_reason, on_grid

from . import payloads
from .base import API_KEY_HEADER, MAX_BODY, ApiError
from .ingest import submit as submit_answer

log = logging.getLogger("tradeflow.server")

TYPES = ("trades", "bars", "depth", "liquidations")
IN_FLIGHT = 64  # trade batches of one connection queued for the store and not yet answered


class IngestSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, ctx):
        self.ctx = ctx
        self.key = None
        self.closed = False
        self.answers: deque[asyncio.Future] = deque()  # in the order the batches came

    @property
    def max_message_size(self) -> int:
        return MAX_BODY

    async def prepare(self):
        try:
            self.key = await self.ctx.check_key(self.request.headers.get(API_KEY_HEADER))
        except ApiError as exc:
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps({"status": "error", "error": exc.message}))

    def check_xsrf_cookie(self):
        return None

    def send(self, message: dict) -> None:
        try:
            self.write_message(json.dumps(message, default=str))
        except tornado.websocket.WebSocketClosedError:
            pass  # the feeder left; what was acknowledged is stored, the rest was not

    async def on_message(self, message):
        try:
            # a key revoked while connected stops working too (the server re-reads keys every
            # few seconds)
            self.key = await self.ctx.check_key(self.request.headers.get(API_KEY_HEADER))
        except ApiError as exc:
            self.send({"seq": None, "error": exc.message})
            self.close(1008, "API key refused")
            return
        try:
            seq, batch = self.batch(message)
        except ApiError as exc:
            self.answer(None, self.refusal(getattr(exc, "seq", None), exc))
            return
        self.answer(seq, await self.queue(seq, batch))
        # Tornado reads the next message once this returns: while the store writes, the next
        # batches are parsed and queued behind this one, up to IN_FLIGHT of them
        while len(self.answers) >= IN_FLIGHT:
            await asyncio.wait([self.answers[0]])

    def answer(self, seq, outcome) -> None:
        """Send the answer of one batch (``outcome``: the answer, or a future of the rows
        stored) after the answers of the batches before it."""
        before = self.answers[-1] if self.answers else None
        task = asyncio.ensure_future(self._answer(before, seq, outcome))
        self.answers.append(task)
        task.add_done_callback(lambda t: self.answers.remove(t))

    async def _answer(self, before, seq, outcome) -> None:
        if not isinstance(outcome, dict):
            try:
                outcome = {"ack": seq, "rows": await submit_answer(outcome)}
            except Exception as exc:  # noqa: BLE001 -- each becomes the feeder's error line
                outcome = self.refusal(seq, exc)
        if before is not None:
            await asyncio.wait([before])
        self.send(outcome)

    def batch(self, message) -> tuple[int, dict]:
        if isinstance(message, bytes):
            raise ApiError(400, "send batches as text (JSON) messages")
        try:
            batch = payloads.parse_json(message)
        except payloads.BadPayload as exc:
            raise ApiError(400, str(exc)) from None
        if not isinstance(batch, dict):
            raise ApiError(400, "a batch is a JSON object: {\"seq\", \"type\", \"symbol\", "
                                "\"data\"}")
        seq = batch.get("seq")
        if not isinstance(seq, Integral) or isinstance(seq, bool) or not 0 <= seq < 2**63:
            raise ApiError(400, "seq must be a whole number >= 0 (the batch's sequence number)")
        if batch.get("type") not in TYPES:
            exc = ApiError(400, f"batch {seq}: type must be one of {', '.join(TYPES)}")
            exc.seq = seq
            raise exc
        return int(seq), batch

    async def queue(self, seq: int, batch: dict):
        """The batch handed to the pipeline: a future of its rows once stored, or the answer
        (a refusal; the ack of a kind stored at once)."""
        try:
            return await self.submit(seq, batch)
        except Exception as exc:  # noqa: BLE001 -- each becomes the feeder's error line
            return self.refusal(seq, exc)

    @staticmethod
    def refusal(seq, exc: Exception) -> dict:
        if isinstance(exc, ApiError):
            return {"seq": seq, "error": exc.message}
        if isinstance(exc, payloads.BadPayload):
            return {"seq": seq, "error": str(exc)}
        # our fault: the feeder hears it, the log has the details
        log.error("websocket batch %s failed", seq, exc_info=exc)
        return {"seq": seq, "error": "internal error; the batch was not stored"}

    @property
    def source(self) -> str:
        return f"websocket {self.key.name}"

    async def submit(self, seq: int, batch: dict):
        """Trades: queued, a future of the rows once stored; other kinds: stored, the ack."""
        kind, data = batch["type"], batch.get("data")
        tz, now = self.key.timezone, pd.Timestamp.now(tz="UTC")
        pipeline = self.ctx.pipeline
        if kind == "bars":
            meta = {"symbol": batch.get("symbol"), "seconds_per_bar": batch.get("seconds")}
            symbol, seconds, frame = payloads.sierra_bars(data, tz, now, meta)
            await self.ctx.instrument(symbol)
            await self.take(seq, pipeline.submit_bars, symbol, frame, seconds, self.source)
            return {"ack": seq, "rows": len(frame)}
        if "symbol" not in batch:
            raise ApiError(400, "symbol is missing: each batch holds one symbol's data")
        symbol = payloads.check_symbol(batch["symbol"], "the batch")
        inst = await self.ctx.instrument(symbol)
        if kind == "trades":
            frame = payloads.trades(data, tz, now, symbol)[1]
            stored = await self.take(seq, pipeline.queue_trades, symbol, frame, self.source)
            return _rows_when(stored, len(frame))
        if kind == "depth":
            frame = payloads.depth(data, tz, now)
            frame = _on_ticks(frame, inst)
            await self.take(seq, pipeline.submit_depth, symbol, frame, self.source)
        else:
            frame = payloads.liquidations(data, tz, now)
            await self.take(seq, pipeline.submit_liquidations, symbol, frame, self.source)
        return {"ack": seq, "rows": len(frame)}

    async def take(self, seq: int, submit, *args):
        """Submit until the pipeline takes the batch; while the store is behind, tell the
        feeder once and wait as the pipeline says."""
        from tradeflow.live.pipeline import Overloaded

        told = False
        while True:
            try:
                return await submit_answer(submit(*args))
            except Overloaded as exc:
                if self.closed:  # nobody to acknowledge it to: the feeder resends it
                    raise ApiError(503, "the connection closed") from None
                if not told:
                    self.send({"seq": seq, "slow_down": True, "retry_after": exc.retry_after})
                    told = True
                await asyncio.sleep(exc.retry_after)

    def on_close(self):
        # a batch being stored finishes (the pipeline keeps what it takes); its answer has no
        # one to go to; one waiting for the store is dropped
        self.closed = True


async def _rows_when(stored: asyncio.Future, rows: int) -> int:
    """``rows`` (the batch's, as sent) once ``stored`` says they are."""
    await stored
    return rows


def _on_ticks(frame: pd.DataFrame, inst) -> pd.DataFrame:
    """Book levels keyed by tick index (the model depth layout)."""
    prices = frame["price"].to_numpy(dtype="float64")
    if not np.isfinite(prices).all() or (prices <= 0).any():
        i = int(np.flatnonzero(~np.isfinite(prices) | (prices <= 0))[0])
        raise ApiError(422, f"level {i}: price must be finite and positive")
    snapped, bad = on_grid(prices, inst.tick_size)
    if bad is not None:
        raise ApiError(422, f"level {bad}: " + off_grid_reason(
            "price", float(prices[bad]), inst.tick_size, inst.symbol))
    ticks = np.rint(snapped / inst.tick_size).astype("int64")
    return pd.DataFrame({"ts": frame["ts"], "side": frame["side"], "tick": ticks,
                         "size": frame["size"]})
