"""What the handlers of one server share: the store (async for writes, sync on worker threads for
reads), the pipeline, the API keys, the instruments; and :func:`current`, the running server's
context, which the pages it serves in-process read their market data and hub from (the pages
import ``tradeflow``, never the reverse)."""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tradeflow.accounts.apikeys import ApiKey, KeyRing
from tradeflow.model import Instrument, ModelError

log = logging.getLogger(__name__)

_running: "ServerContext | None" = None  # the context of the server running in this process

KEYS_FRESH_FOR = 2.0  # seconds a loaded key list is trusted (keys made or revoked elsewhere)
INSTRUMENTS_FRESH_FOR = 2.0  # seconds a stored instrument found is trusted (changed elsewhere)
# Past half of that, a request still uses what was read and a read again starts beside it: a
# feeder sending steadily never waits for the store (with DuckDB, a read waits for the pipeline's
# transaction: one batch in every 2 s waited 50-170 ms with 10-20 desk sessions open).


@dataclass
class ServerContext:
    """``astore``: the AsyncStore the pipeline writes through; ``store``: a sync Store over the
    same data for reads (``MarketData``, studies) run on ``readers`` threads, never on the loop;
    ``pipeline``: ``tradeflow.live.Pipeline``."""

    astore: object
    store: object
    pipeline: object
    token: str = ""  # the local control token (see runfile)
    readers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="reads"))
    keys: KeyRing = field(default_factory=KeyRing)
    _keys_at: float = -1e9
    _instruments: dict = field(default_factory=dict)  # symbol -> (Instrument, when read)
    _refreshing: dict = field(default_factory=dict)  # what is being read again -> its task

    def __post_init__(self):
        from tradeflow.marketdata import MarketData

        self.marketdata = MarketData(self.store)

    async def read(self, fn, *args, **kwargs):
        """Run a blocking read on a reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.readers, lambda: fn(*args, **kwargs))

    async def reload_keys(self) -> None:
        self.keys.load(await self.astore.api_keys())
        self._keys_at = time.monotonic()

    async def check_key(self, presented: str | None) -> ApiKey:
        from .base import ApiError

        age = time.monotonic() - self._keys_at
        if age > KEYS_FRESH_FOR:
            await self.reload_keys()
        elif age > KEYS_FRESH_FOR / 2:
            self._read_again("keys", self.reload_keys)
        verdict, key = self.keys.find(presented)
        if verdict == "ok":
            return key
        if verdict == "missing":
            raise ApiError(401, "an API key is required in the X-API-Key header: make one with "
                                "'tradeflow apikey create NAME'", {"WWW-Authenticate": "ApiKey"})
        if verdict == "revoked":
            raise ApiError(403, "this API key was revoked: ask for a new one")
        raise ApiError(403, "the API key in X-API-Key is not valid: check it was copied whole, "
                            "or make a new one with 'tradeflow apikey create NAME'")

    async def instrument(self, symbol: str) -> Instrument:
        """The stored instrument, else a 422 naming the symbol and what to do. Found ones are
        kept a moment: with DuckDB a read waits for the store's one thread, which the pipeline's
        writes hold, so a read per batch would make every batch wait for a transaction."""
        from .base import ApiError

        known = self._instruments.get(symbol)
        age = time.monotonic() - known[1] if known is not None else None
        if age is not None and age < INSTRUMENTS_FRESH_FOR:
            if age > INSTRUMENTS_FRESH_FOR / 2:
                self._read_again(("instrument", symbol), lambda: self._read_instrument(symbol))
            return known[0]
        try:
            return await self._read_instrument(symbol)
        except ModelError:
            raise ApiError(422, f"unknown symbol {symbol!r}: add it first with 'tradeflow "
                                f"instruments add {symbol} --tick-size X'") from None

    async def _read_instrument(self, symbol: str) -> Instrument:
        try:
            found = await self.astore.instrument(symbol)
        except ModelError:
            self._instruments.pop(symbol, None)
            raise
        self._instruments[symbol] = (found, time.monotonic())
        return found

    def _read_again(self, what, read) -> None:
        """Start ``read()`` in the background unless it is running already; a failure is only
        logged (once what was read is stale, the next request reads and says it)."""
        if what in self._refreshing:
            return

        async def run():
            try:
                await read()
            except Exception as exc:  # noqa: BLE001 -- see the docstring
                log.info("reading %s again failed: %s", what, exc)
            finally:
                self._refreshing.pop(what, None)
        self._refreshing[what] = asyncio.ensure_future(run())


def current() -> ServerContext | None:
    """The context of the ``tradeflow serve`` running in this process, or None (a notebook, a
    page under a plain ``panel serve``)."""
    return _running


def set_current(ctx: ServerContext | None) -> None:
    """Called by the server as it starts (its context) and stops (None)."""
    global _running
    _running = ctx
