"""What the server's handlers share (``tradeflow.server.context``): found instruments are kept a
moment, so that ingest does not read the store once per batch."""
import asyncio
import types

import pytest

from data_access import open_async_store
from tradeflow.model import Instrument
from tradeflow.server import context
from tradeflow.server.base import ApiError
from tradeflow.server.context import ServerContext


def test_instruments_found_are_kept_a_moment(tmp_path, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(context.time, "monotonic", lambda: now[0])

    async def main():
        store = await open_async_store(f"duckdb:///{tmp_path}/ctx.duckdb")
        try:
            await store.add_instrument(Instrument("BTCUSDT", 0.1, "SIM", "crypto"))
            reads = []
            real = store.instrument

            async def counted(symbol):
                reads.append(symbol)
                return await real(symbol)

            store.instrument = counted
            ctx = ServerContext(astore=store, store=store.sync, pipeline=None)
            try:
                assert (await ctx.instrument("BTCUSDT")).tick_size == 0.1
                await ctx.instrument("BTCUSDT")
                assert reads == ["BTCUSDT"]  # the second came from what was kept
                await store.add_instrument(Instrument("BTCUSDT", 0.5, "SIM", "crypto"))
                now[0] += context.INSTRUMENTS_FRESH_FOR + 0.1  # a change is seen after that
                assert (await ctx.instrument("BTCUSDT")).tick_size == 0.5
                assert reads == ["BTCUSDT"] * 2
                for _ in range(2):  # an unknown symbol is looked up each time
                    with pytest.raises(ApiError, match="unknown symbol 'NOPE'"):
                        await ctx.instrument("NOPE")
                assert reads[2:] == ["NOPE", "NOPE"]
            finally:
                ctx.readers.shutdown()
        finally:
            await store.close()

    asyncio.run(main())


def test_keys_and_instruments_past_half_their_time_are_read_again_without_waiting(tmp_path,
                                                                                  monkeypatch):
    """Past half of their freshness, keys and instruments are used as read and read again
    beside the request: a request does not wait for the store (with DuckDB a read waits for the
    pipeline's transaction); what the read again finds is used after it."""
    now = [1000.0]
    # (the module's clock only: asyncio's own sleeps keep the real one)
    monkeypatch.setattr(context, "time", types.SimpleNamespace(monotonic=lambda: now[0]))

    async def main():
        store = await open_async_store(f"duckdb:///{tmp_path}/ctx.duckdb")
        try:
            await store.add_instrument(Instrument("BTCUSDT", 0.1, "SIM", "crypto"))
            busy = asyncio.Event()  # cleared: the store's reads wait (a transaction is running)
            busy.set()
            reads = []

            def gated(read):
                async def wait_then_read(*args):
                    reads.append(read.__name__)
                    await busy.wait()
                    return await read(*args)
                return wait_then_read

            store.instrument, store.api_keys = gated(store.instrument), gated(store.api_keys)
            ctx = ServerContext(astore=store, store=store.sync, pipeline=None)
            try:
                await ctx.reload_keys()
                assert (await ctx.instrument("BTCUSDT")).tick_size == 0.1
                await store.add_instrument(Instrument("BTCUSDT", 0.5, "SIM", "crypto"))
                busy.clear()
                now[0] += max(context.KEYS_FRESH_FOR, context.INSTRUMENTS_FRESH_FOR) * 0.75
                found = await asyncio.wait_for(ctx.instrument("BTCUSDT"), 5)
                with pytest.raises(ApiError, match="API key"):
                    await asyncio.wait_for(ctx.check_key("no such key"), 5)
                await ctx.instrument("BTCUSDT")  # one read again at a time
                assert found.tick_size == 0.1  # as read before: the read again waits
                assert sorted(reads) == ["api_keys"] * 2 + ["instrument"] * 2
                busy.set()
                for _ in range(500):
                    if not ctx._refreshing:
                        break
                    await asyncio.sleep(0.01)
                assert (await ctx.instrument("BTCUSDT")).tick_size == 0.5  # read again
                assert len(reads) == 4
            finally:
                ctx.readers.shutdown()
        finally:
            await store.close()

    asyncio.run(main())
