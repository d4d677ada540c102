"""The HTTP ingest endpoints: Sierra Chart bars (one, or a batch) and trades.

Each request is parsed whole (``payloads``), its symbol checked, then handed to the pipeline,
whose ``submit_*`` returns once the rows are durably stored (all of them or none); only then
does the answer say success.
"""
from __future__ import annotations

import math

import pandas as pd
from tornado.web import stream_request_body

from tradeflow.model import ModelError

from . import payloads
from .base import MAX_BODY, ApiError, ApiHandler


async def submit(coro):
    """Await a pipeline submission; its refusals become 4xx answers (``Overloaded`` is left to
    the caller: HTTP answers 429, the websocket waits)."""
    from tradeflow.live.pipeline import Rejected

    try:
        return await coro
    except Rejected as exc:
        raise ApiError(422, str(exc)) from None
    except ModelError as exc:  # the store's own checks (a RowError names the row)
        raise ApiError(422, str(exc)) from None


async def submit_http(coro):
    """:func:`submit`, with ``Overloaded`` answered 429 and ``Retry-After``."""
    from tradeflow.live.pipeline import Overloaded

    try:
        return await submit(coro)
    except Overloaded as exc:
        raise ApiError(429, f"the store is behind: send this again in {exc.retry_after:.3g} s",
                       {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}) from None


@stream_request_body
class BodyHandler(ApiHandler):
    """A write: the key is checked and the size announced is judged before the body is read;
    a body that grows past :data:`MAX_BODY` is refused whole."""

    async def prepare(self):
        await self.require_key()
        length = self.request.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise ApiError(413, f"the body is larger than {MAX_BODY // 2**20} MiB: send the "
                                "data in smaller requests")
        self._chunks, self._size = [], 0

    def data_received(self, chunk: bytes):
        self._size += len(chunk)
        if self._size <= MAX_BODY:
            self._chunks.append(chunk)
        else:
            self._chunks = []

    @property
    def body(self) -> bytes:
        if self._size > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY // 2**20} MiB: send the "
                                "data in smaller requests")
        if not self._size:
            raise ApiError(400, "the body is empty: send the data as JSON")
        return b"".join(self._chunks)

    @property
    def source(self) -> str:
        """The stream the pipeline checks time order in: one per key (one feeder)."""
        return f"http {self.key.name}"

    def payload(self, fn, *args):
        try:
            return fn(*args)
        except payloads.BadPayload as exc:
            raise ApiError(exc.status, str(exc)) from None


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


class MarketDataHandler(BodyHandler):
    """``POST /api/v1/market-data``: one Sierra Chart bar."""

    async def post(self):
        bar = self.payload(payloads.parse_json, self.body)
        if not isinstance(bar, dict):
            raise ApiError(400, "expected one bar as a JSON object (for several, POST "
                                "{\"data\": [bars], \"metadata\": {}} to "
                                "/api/v1/market-data/batch)")
        symbol, seconds, frame = self.payload(payloads.sierra_bars, [bar], self.timezone, _now())
        await self.ctx.instrument(symbol)
        await submit_http(self.ctx.pipeline.submit_bars(symbol, frame, seconds, self.source))
        self.write_json({"status": "success", "symbol": symbol,
                         "timeframe": payloads.timeframe(seconds)})


class MarketDataBatchHandler(BodyHandler):
    """``POST /api/v1/market-data/batch``: ``{"data": [bars], "metadata": {...}}``, all or none."""

    async def post(self):
        doc = self.payload(payloads.parse_json, self.body)
        if not isinstance(doc, dict) or "data" not in doc:
            raise ApiError(400, "expected {\"data\": [bars], \"metadata\": {...}}")
        symbol, seconds, frame = self.payload(payloads.sierra_bars, doc["data"], self.timezone,
                                              _now(), doc.get("metadata"))
        await self.ctx.instrument(symbol)
        await submit_http(self.ctx.pipeline.submit_bars(symbol, frame, seconds, self.source))
        self.write_json({"status": "success", "symbol": symbol,
                         "timeframe": payloads.timeframe(seconds), "bars": len(frame)})


class TradesHandler(BodyHandler):
    """``POST /api/v1/trades``: a JSON array, or NDJSON (``Content-Type: application/x-ndjson``),
    of one symbol's trades."""

    async def post(self):
        kind = self.request.headers.get("Content-Type", "")
        parse = payloads.parse_ndjson if "ndjson" in kind or "jsonl" in kind \
            else payloads.parse_json
        items = self.payload(parse, self.body)
        symbol, frame = self.payload(payloads.trades, items, self.timezone, _now())
        await self.ctx.instrument(symbol)
        new = await submit_http(self.ctx.pipeline.submit_trades(symbol, frame, self.source))
        self.write_json({"status": "success", "symbol": symbol, "trades": len(frame),
                         "new": int(new) if new is not None else None})
