"""The market simulator as a live source: its batches submitted to a :class:`Pipeline` as any
feeder's are (waiting as told while the store is behind), and when a closed market opens, in
words. ``tradeflow simulate --live`` and ``tradeflow serve --simulate`` both use it."""
from __future__ import annotations

import asyncio
from typing import Callable

import pandas as pd

from tradeflow.ingest.simulator import MarketSimulator, SimBatch

from .pipeline import Overloaded, Pipeline


async def submit_waiting(submit, *args) -> int:
    """``await submit(*args)``, sleeping the ``retry_after`` it asks for while overloaded."""
    while True:
        try:
            return await submit(*args)
        except Overloaded as exc:
            await asyncio.sleep(exc.retry_after)


CATCH_UP_LIMIT = pd.Timedelta("1h")  # the longest gap a started simulated feed fills


async def stream_simulated(pipeline: Pipeline, sim: MarketSimulator, symbol: str,
                           speed: float = 1.0,
                           on_batch: Callable[[int, SimBatch], None] | None = None) -> None:
    """Submit ``sim``'s live batches of ``symbol`` until cancelled; ``on_batch(trades so far,
    batch)`` after each is stored."""
    n = 0
    async for batch in sim.stream(speed=speed):
        n += await _submit(pipeline, symbol, batch)
        if on_batch is not None:
            on_batch(n, batch)


async def catch_up(pipeline: Pipeline, sim: MarketSimulator, symbol: str, since,
                   now: Callable[[], pd.Timestamp] | None = None) -> int:
    """Submit ``sim``'s history of ``symbol`` from ``since`` (the store's last trade) to now, so
    that a stream started next continues the stored market without a gap (the minute between
    ``tradeflow simulate`` and ``serve``, a restart). A gap longer than ``CATCH_UP_LIMIT`` stays,
    as a feed that was off leaves one. The trades submitted. ``now`` is the clock (tests give
    their own)."""
    now = now or (lambda: pd.Timestamp.now(tz="UTC"))
    cursor = pd.Timestamp(since)
    if now() - cursor > CATCH_UP_LIMIT:
        return 0
    n = 0
    # again until caught up: the filling itself takes time, which must not become a gap either
    while (end := now()) - cursor > pd.Timedelta("1s"):
        for batch in sim.history(cursor, end, chunk="1h"):
            n += await _submit(pipeline, symbol, batch)
        cursor = end
    return n


async def _submit(pipeline: Pipeline, symbol: str, batch: SimBatch) -> int:
    """One simulator batch into the pipeline, as a feeder sends it; its trades stored."""
    source = f"simulator {symbol}"
    n = 0
    if len(batch.trades):
        n = await submit_waiting(pipeline.submit_trades, symbol, batch.trades, source)
    if len(batch.depth):
        await submit_waiting(pipeline.submit_depth, symbol, batch.depth, source)
    if len(batch.liquidations):
        await submit_waiting(pipeline.submit_liquidations, symbol, batch.liquidations, source)
    return n


def opens_in_words(sim: MarketSimulator, at) -> str:
    """When a simulated market next trades, in words (for a user watching a closed session)."""
    opens = sim.next_open(at)
    if opens is None:
        return "it does not open in the next two weeks"
    tz = sim.instrument.session.timezone
    wait = opens - pd.Timestamp(at)
    hours, minutes = divmod(round(wait.total_seconds() / 60), 60)
    return (f"it opens {opens.tz_convert(tz):%a %Y-%m-%d %H:%M} {tz} ({opens:%H:%M} UTC, in "
            f"{hours} h {minutes:02d} min)")


def fill_history(store, sim: MarketSimulator, symbol: str, start, end, depth: bool = True,
                 on_batch: Callable[[SimBatch], None] | None = None, chunk: str = "1h") -> int:
    """Write ``sim``'s history of ``[start, end)`` into ``store`` (a sync Store), a transaction
    per batch (``chunk`` of time); the trades written. ``depth=False`` leaves out the book
    snapshots. ``on_batch(batch)`` after each is stored."""
    n = 0
    for batch in sim.history(start, end, chunk=chunk):
        with store.transaction() as tx:
            n += tx.write_trades(symbol, batch.trades)
            if depth:
                tx.write_depth(symbol, batch.depth)
            tx.write_liquidations(symbol, batch.liquidations)
        if on_batch is not None:
            on_batch(batch)
    return n
