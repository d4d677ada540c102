"""What the server's handlers share (``tradeflow.server.context``): found instruments are kept a
moment, so that ingest does not read the store once per batch."""
import asyncio

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
