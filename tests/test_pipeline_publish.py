"""The pipeline publishes a transaction's data to the hub as its writes begin, not after the
commit: a chart hears of a batch while the store is still writing it; if the commit fails, the
charts of its symbols resync from the store, so nothing unstored stays shown; a batch sent again
is shown once. Real stores; the failing commit is PostgreSQL's own (a deferred constraint
trigger, checked at COMMIT)."""
import asyncio

import asyncpg
import numpy as np
import pandas as pd
from indicators.orderflow.footprint import cvd
from tests.test_hub_studies import snapshots
from tests.test_pipeline import (BTC, START, assert_bars_equal, assert_cells_equal,
                                 assert_same_trades, drain, run, trades)
from tradeflow.bars import build
from tradeflow.live import ChartState

BAD_ID = 1100  # the trade PostgreSQL refuses at commit while the trigger is there
TAPE = 150  # trades in the chart's tape

REFUSE_AT_COMMIT = f"""
CREATE FUNCTION refuse_trade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.trade_id = {BAD_ID} THEN
        RAISE EXCEPTION 'trade {BAD_ID} refused at commit';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER refuse_trade AFTER INSERT ON trades
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_trade();
"""


def test_a_chart_hears_of_a_batch_while_the_store_writes_it(store_url):
    """The Update reaches a subscriber before the transaction holding its trades has committed
    (the store's write is not on the way to the charts); the submit still returns only once
    the trades are stored."""
    first, second = trades(300), trades(200, START + pd.Timedelta(minutes=1), first_id=1000)

    async def body(pipeline, store):
        await pipeline.submit_trades("BTCUSDT", first)
        sub = pipeline.hub.subscribe("BTCUSDT", "1m")
        chart = ChartState()
        await drain(sub, chart)
        heard = {}

        async def follow():
            message = await sub.__anext__()
            heard["committed"] = pipeline.stats["transactions"]
            chart.apply(message)

        follower = asyncio.ensure_future(follow())
        before = pipeline.stats["transactions"]
        assert await pipeline.submit_trades("BTCUSDT", second) == len(second)
        stored = await store.trades("BTCUSDT")
        await follower
        return before, heard["committed"], chart, stored

    before, committed_when_heard, chart, stored = run(store_url, body)
    assert committed_when_heard == before  # heard while its transaction was still open
    assert_same_trades(stored, pd.concat([first, second]))
    assert_bars_equal(chart.bars, build(stored, "1m", BTC)[0])


def test_a_failed_commit_resyncs_the_charts_and_a_resent_batch_is_shown_once(pg_db_url):
    first = trades(300)
    bad = trades(200, START + pd.Timedelta(minutes=1), first_id=1000, seed=3)
    assert BAD_ID in set(bad["trade_id"])
    book_before = snapshots([START + pd.Timedelta(seconds=30)])
    book_failed = snapshots([START + pd.Timedelta(seconds=90)], best_bid=6_000_500, size=7.0)

    async def body(pipeline, store):
        await pipeline.submit_trades("BTCUSDT", first)
        await pipeline.submit_depth("BTCUSDT", book_before)
        sub = pipeline.hub.subscribe("BTCUSDT", "1m", studies=["cvd"], book_levels=3,
                                       tape=TAPE)
        chart, kinds = ChartState(tape_length=TAPE), []

        async def follow():
            async for message in sub:
                chart.apply(message)
                kinds.append((type(message).__name__, int(chart.bars["trades"].sum())))

        follower = asyncio.ensure_future(follow())
        while not kinds:
            await asyncio.sleep(0.01)
        con = await asyncpg.connect(pg_db_url)
        try:
            await con.execute(REFUSE_AT_COMMIT)
            # trades and depth queued together: one transaction, refused at its commit
            failed = await asyncio.gather(pipeline.submit_trades("BTCUSDT", bad),
                                          pipeline.submit_depth("BTCUSDT", book_failed),
                                          return_exceptions=True)
            await wait_for(lambda: kinds[-1][0] == "Snapshot" and len(kinds) > 1)
            after_failure = (list(kinds), chart.bars, chart.footprint, chart.book,
                             chart.tape, dict(chart.studies), await store.trades("BTCUSDT"))
            await con.execute("DROP TRIGGER refuse_trade ON trades")
        finally:
            await con.close()
        sent = [await pipeline.submit_trades("BTCUSDT", bad),  # now stored
                await pipeline.submit_trades("BTCUSDT", bad)]  # sent again: nothing new
        again = pipeline.queue_trades("BTCUSDT", bad.iloc[100:])  # and part of it, in flight
        sent.append(await (await again))
        await asyncio.sleep(0.2)
        sub.close()
        await follower
        return failed, after_failure, sent, kinds, chart, await store.trades("BTCUSDT")

    failed, after_failure, sent, kinds, chart, stored = run(pg_db_url, body)
    assert all(isinstance(f, Exception) and f"trade {BAD_ID} refused" in str(f) for f in failed)

    # the chart was shown the batch as it was written, then resynced to the store's state
    seen, bars, cells, book, tape, studies, stored_then = after_failure
    assert [k for k, _ in seen] == ["Snapshot", "Update", "Resync", "Snapshot"]
    assert seen[1][1] == len(first) + len(bad)  # shown while written...
    assert seen[-1][1] == len(first) == len(stored_then)  # ...and gone with the commit
    want_bars, want_cells = build(stored_then, "1m", BTC)
    assert_bars_equal(bars, want_bars)
    assert_cells_equal(cells, want_cells)
    np.testing.assert_allclose(studies["cvd"]["cvd"].to_numpy(float),
                               cvd(want_bars).to_numpy(), rtol=1e-9)
    assert list(tape["trade_id"]) == list(stored_then["trade_id"].iloc[-TAPE:])
    assert book is not None and not (book["size"] == 7.0).any()  # the failed depth is not shown

    # stored once, shown once, however often it was sent
    assert sent == [len(bad), 0, 0]
    assert_same_trades(stored, pd.concat([first, bad]))
    want_bars, want_cells = build(stored, "1m", BTC)
    assert_bars_equal(chart.bars, want_bars)
    assert_cells_equal(chart.footprint, want_cells)
    assert int(chart.bars["trades"].sum()) == len(first) + len(bad)
    assert list(chart.tape["trade_id"]) == list(stored["trade_id"].iloc[-TAPE:])
    assert kinds[-1] == ("Update", len(first) + len(bad))


async def wait_for(condition, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")

