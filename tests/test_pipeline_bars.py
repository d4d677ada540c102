"""Bars received built (a Sierra Chart bar POST) through the pipeline: stored at their own
timeframe, a repeated bar replacing the stored one, and streamed to ``source="external"`` charts.
Needs the stores' received bars (``write_bars(..., seconds)``, ``bars(source="external")``)."""
import asyncio

import pandas as pd
import pytest

from data_access import open_async_store
from tradeflow.live import ChartState, ExternalBars, Pipeline, Rejected, Snapshot
from tradeflow.model import Instrument

XAU = Instrument("XAUUSD", 0.01, "SIM", "fx")
T0 = pd.Timestamp("2025-11-26 21:17:14", tz="UTC")


def bar(ts, o, h, l, c, volume=19.0):
    return pd.DataFrame({"ts": [ts], "open": [o], "high": [h], "low": [l], "close": [c],
                         "volume": [volume], "ask_volume": [4.0], "bid_volume": [15.0],
                         "trades": [3]})


def test_received_bars_are_stored_as_they_came_and_streamed(store_url):
    async def body():
        store = await open_async_store(store_url)
        await store.add_instrument(XAU)
        pipeline = Pipeline(store)
        await pipeline.start()
        try:
            await pipeline.submit_bars("XAUUSD", bar(T0, 4162.88, 4162.88, 4162.58, 4162.58), 1,
                                       "sierra")
            sub = pipeline.hub.subscribe("XAUUSD", "1s", source="external")
            chart = ChartState()
            first = await sub.__anext__()
            chart.apply(first)
            # the same bar again (it grew), then the next second's
            await pipeline.submit_bars("XAUUSD", bar(T0, 4162.88, 4163.0, 4162.5, 4162.9, 25.0),
                                       1, "sierra")
            await pipeline.submit_bars("XAUUSD", bar(T0 + pd.Timedelta(seconds=1), 4162.9,
                                                     4163.1, 4162.9, 4163.1, 2.0), 1, "sierra")
            updates = [await sub.__anext__(), await sub.__anext__()]
            for message in updates:
                chart.apply(message)
            with pytest.raises(Rejected, match="row 0: high"):
                await pipeline.submit_bars("XAUUSD", bar(T0 + pd.Timedelta(seconds=2), 4163.0,
                                                         4162.0, 4162.5, 4162.5), 1, "sierra")
            sub.close()
            return first, updates, chart, await store.bars("XAUUSD", "1s", source="external")
        finally:
            await pipeline.stop()
            await store.close()

    first, updates, chart, stored = asyncio.run(body())
    assert isinstance(first, Snapshot) and len(first.closed) == 1
    assert all(isinstance(m, ExternalBars) for m in updates)
    assert list(stored["ts"]) == [T0, T0 + pd.Timedelta(seconds=1)]
    assert list(stored["high"]) == [4163.0, 4163.1] and list(stored["volume"]) == [25.0, 2.0]
    assert list(chart.bars["ts"]) == list(stored["ts"])
    assert list(chart.bars["close"]) == list(stored["close"])
