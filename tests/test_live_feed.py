"""The desk's live feed (``dashboards.live``) over the real pipeline and hub: every message the
hub sends wakes the session (so a served page shows it at once, not at the next 250 ms tick),
and a drain hands them over in order, from the last Snapshot on."""
import asyncio

import pandas as pd

from dashboards.live import LiveFeed, Waker
from tests.test_hub_studies import DAY, run, simulated, submit
from tradeflow.live import Snapshot, Update


def test_each_hub_message_wakes_the_feed_and_a_drain_hands_them_over(tmp_path):
    batches = simulated(DAY, DAY + pd.Timedelta(minutes=3), pd.Timedelta(seconds=20))

    async def body(pipeline, store):
        await submit(pipeline, batches[0])
        woken, got = [], []
        feed = LiveFeed(pipeline.hub, "BTCUSDT", "1m", got.append, periodic=False,
                        wake=lambda: woken.append(len(feed.buffer)))
        for batch in batches[1:]:
            await submit(pipeline, batch)
        for _ in range(200):  # the feed's task reads what the hub sent
            if len(woken) >= len(batches):
                break
            await asyncio.sleep(0.02)
        buffered = len(feed.buffer)
        handed = feed.drain()
        feed.close()
        return woken, buffered, handed, got

    woken, buffered, handed, got = run(f"duckdb:///{tmp_path}/store.duckdb", body)
    # one wake per message, each after the message was buffered
    assert woken == list(range(1, len(woken) + 1)) and len(woken) == buffered == handed
    assert isinstance(got[0], Snapshot) and all(isinstance(m, Update) for m in got[1:])
    assert len(got) == len(batches)  # the snapshot, then an update per later commit


def test_a_waker_without_a_served_session_does_nothing():
    # (a notebook or a test drains by itself; only a served session's document runs callbacks)
    calls = []
    waker = Waker(lambda: calls.append(1))
    assert waker.doc is None
    waker()
    waker()
    assert calls == [] and not waker.pending
