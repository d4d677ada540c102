"""The hub follows any study of the catalogue, and the book: simulated trades, depth snapshots and
liquidations go through the real Pipeline into each store, and what charts following the hub
hold equals the catalogue's batch frames over the stored data; equal studies share a follower;
bad studies and settings are refused at subscribe; a book and tape reach who asked for them."""
import asyncio

import numpy as np
import pandas as pd
import pytest

from data_access import open_async_store
from indicators.catalogue import CATALOGUE, Catalogue, StudyData, StudyInfo
from indicators.registry import REGISTRY, IndicatorError
from tests.test_pipeline import assert_bars_equal, assert_cells_equal, drain
from tradeflow.bars import build
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.live import ChartState, Hub, Pipeline, Snapshot, Update
from tradeflow.model import Instrument

BTC = Instrument("BTCUSDT", 0.1, "SIM", "crypto")
DAY = pd.Timestamp("2026-03-02", tz="UTC")  # the trading day the live part is in (00:00 UTC)
FIRST = DAY - pd.Timedelta(minutes=20)  # history from the day before
LIVE = DAY + pd.Timedelta(minutes=4)  # subscriptions are made here
LAST = DAY + pd.Timedelta(minutes=9)

CHART = {"EMA": {"timeperiod": 10}, "RSI": {}, "cvd": {}, "volume_profile": {},
         "developing_profile": {"value_area": 0.6}, "naked_pocs": {}, "liquidations_by_bar": {},
         "heatmap": {"interval_seconds": 10.0}}  # (naked POCs rewrite older rows)
TICKS = {"tpo": {"period_minutes": 5}, "RSI": {"timeperiod": 5}}  # on T50 bars
SAME = {"ema": {"timeperiod": 10.0}, "heatmap": {"interval_seconds": 10}}  # = CHART's two


def simulated(start, end, step):
    """The simulator's market from ``start`` to ``end`` in batches of ``step``."""
    # (a snapshot every 5 s: the live heatmap recomputes its bucket at each, some milliseconds)
    sim = MarketSimulator(BTC, seed=11, trades_per_day=150_000, depth_interval="5s")
    sim.generate(start - pd.Timedelta(minutes=1), start)  # (its state from before)
    t, out = start, []
    while t < end:
        out.append(sim.generate(t, min(t + step, end)))
        t += step
    return out


async def submit(pipeline, batch):
    if len(batch.trades):
        await pipeline.submit_trades("BTCUSDT", batch.trades, "sim")
    if len(batch.depth):
        await pipeline.submit_depth("BTCUSDT", batch.depth, "sim")
    if len(batch.liquidations):
        await pipeline.submit_liquidations("BTCUSDT", batch.liquidations, "sim")


def run(store_url, body, **options):
    async def main():
        store = await open_async_store(store_url)
        try:
            await store.add_instrument(BTC)
            pipeline = Pipeline(store, **options)
            await pipeline.start()
            try:
                return await body(pipeline, store)
            finally:
                await pipeline.stop()
        finally:
            await store.close()
    return asyncio.run(main())


def batch(name, params, **data):
    return CATALOGUE.get(name).batch(StudyData(BTC, **data), **params)


def assert_frame(got, want, what):
    assert len(want), f"{what}: the data shows nothing"
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_exact=False,
                                  rtol=1e-9, obj=what)


def test_charts_hold_the_batch_frames_of_their_studies(store_url):
    history = simulated(FIRST, LIVE, pd.Timedelta(minutes=1))
    live = simulated(LIVE, LAST, pd.Timedelta(seconds=30))

    async def body(pipeline, store):
        for part in history:
            await submit(pipeline, part)
        hub = pipeline.hub
        heat_from = hub.books()["BTCUSDT"].top(1)["ts"].iloc[0]  # the book as published last
        subs = [hub.subscribe("BTCUSDT", "1m", CHART, book_levels=5, tape=50),
                hub.subscribe("BTCUSDT", "T50", TICKS),
                hub.subscribe("BTCUSDT", "1m", SAME)]
        charts = [ChartState(tape_length=50), ChartState(), ChartState()]
        seen = [[], [], []]  # each chart's updates
        for sub, chart in zip(subs, charts):
            await drain(sub, chart)
        tape_from = charts[0].tape["ts"].iloc[0]  # the snapshot's liquidations start there
        for part in live:
            await submit(pipeline, part)
            for sub, chart, updates in zip(subs, charts, seen):
                while sub.waiting:
                    updates.append(await sub.__anext__())
                    chart.apply(updates[-1])
        one, book = hub.streams()[("BTCUSDT", "1m")].fanout, hub.books()["BTCUSDT"].fanout
        shared = (len(one), one.users(CATALOGUE.get("EMA").follower_key({"timeperiod": 10})),
                  len(book), book.users(CATALOGUE.get("heatmap").follower_key(SAME["heatmap"])),
                  sorted(hub.streams()))
        for sub in subs:
            sub.close()
        stored = (await store.trades("BTCUSDT"), await store.depth("BTCUSDT"),
                  await store.liquidations("BTCUSDT"), await store.trades("BTCUSDT", last=50))
        return charts, seen, shared, (heat_from, tape_from), stored, sorted(hub.streams())

    charts, seen, shared, (heat_from, tape_from), stored, left = run(store_url, body,
                                                                     history=10_000)
    trades, depth, liquidations, tape = stored
    main, ticks, same = charts
    bars, cells = build(trades, "1m", BTC)
    assert_bars_equal(main.bars, bars)
    assert_cells_equal(main.footprint, cells)
    today = trades[trades["ts"] >= DAY]
    day_bars, day_cells = build(today, "1m", BTC)
    # indicators from the closed bars before the day on; order flow and profiles from the day
    assert_frame(main.studies["EMA"], batch("EMA", {"timeperiod": 10}, bars=bars), "EMA")
    assert_frame(main.studies["RSI"], batch("RSI", {}, bars=bars), "RSI")
    assert main.studies["EMA"]["ts"].iloc[0] == FIRST
    for name in ("cvd", "volume_profile", "developing_profile", "naked_pocs"):
        assert_frame(main.studies[name], batch(name, CHART[name], bars=day_bars,
                                               footprint=day_cells), name)
    liqs = liquidations[liquidations["ts"] >= DAY].reset_index(drop=True)
    assert_frame(main.studies["liquidations_by_bar"],
                 batch("liquidations_by_bar", {}, bars=day_bars, liquidations=liqs), "liqs")
    # the heatmap from the book as it was when it was made
    assert_frame(main.studies["heatmap"], batch("heatmap", CHART["heatmap"],
                                                depth=depth[depth["ts"] >= heat_from]), "heatmap")
    # the book: the best 5 levels a side of the last snapshot; the tape: the last 50 trades
    newest = depth[depth["ts"] == depth["ts"].max()]
    bids = newest[newest["side"] == -1].sort_values("tick", ascending=False).head(5)
    asks = newest[newest["side"] == 1].sort_values("tick").head(5)
    want = pd.concat([bids, asks], ignore_index=True)
    assert list(main.book["tick"]) == list(want["tick"]) and len(want) == 10
    np.testing.assert_allclose(main.book["size"], want["size"])
    np.testing.assert_allclose(main.book["price"], want["tick"] * 0.1)
    assert (main.book["ts"] == newest["ts"].iloc[0]).all()
    assert list(main.tape["trade_id"]) == list(tape["trade_id"])
    liqs = liquidations[liquidations["ts"] >= tape_from].reset_index(drop=True)
    assert 0 < len(liqs) < 50
    pd.testing.assert_frame_equal(main.liquidations, liqs[list(main.liquidations.columns)])
    # the TPO follows 1-minute bars whatever the chart's; tick bars restart each day
    tick_bars = build(today, "T50", BTC)[0]
    assert_bars_equal(ticks.bars, tick_bars)
    assert_frame(ticks.studies["tpo"], batch("tpo", TICKS["tpo"], bars=day_bars, spec="1m"),
                 "tpo")
    assert_frame(ticks.studies["RSI"], batch("RSI", TICKS["RSI"], bars=tick_bars), "RSI T50")
    assert ticks.book is None and ticks.tape.empty and ticks.liquidations.empty  # not asked
    # equal settings written differently: one follower, one Changes for both charts
    assert shared == (8, 2, 1, 2, [("BTCUSDT", "1m"), ("BTCUSDT", "T50")])
    assert len(seen[0]) == len(seen[2]) > len(live)
    for a, b in zip(seen[0], seen[2]):
        assert isinstance(a, Update) and a.studies.keys() >= {"EMA", "heatmap"} & a.studies.keys()
        assert a.studies.get("EMA") is b.studies.get("ema")
        assert a.studies.get("heatmap") is b.studies.get("heatmap")
    assert_frame(same.studies["ema"], main.studies["EMA"], "shared EMA")
    assert left == []  # the streams went with their last subscriber


def test_bad_studies_and_settings_are_refused_at_subscribe():
    def instrument(symbol):
        return Instrument(symbol, 0.1, "SIM", "crypto")
    hub = Hub(None, instrument, asyncio.Lock())
    with pytest.raises(IndicatorError, match="unknown study 'NOPE'"):
        hub.subscribe("BTCUSDT", "1m", ["cvd", "NOPE"])
    with pytest.raises(IndicatorError, match="EMA: parameter 'timeperiod'"):
        hub.subscribe("BTCUSDT", "1m", {"EMA": {"timeperiod": 0}})
    with pytest.raises(IndicatorError, match="heatmap: unknown parameter 'bucket'"):
        hub.subscribe("BTCUSDT", "1m", {"heatmap": {"bucket": 1}})
    with pytest.raises(ValueError, match="study 'cvd': settings must be a mapping"):
        hub.subscribe("BTCUSDT", "1m", {"cvd": "session"})
    with pytest.raises(ValueError, match="study 'EMA 20' is asked for twice"):
        hub.subscribe("BTCUSDT", "1m", [("EMA", {"timeperiod": 20}), ("ema", {"timeperiod": 20})])
    with pytest.raises(ValueError, match="a name or a \\(name, settings\\) pair"):
        hub.subscribe("BTCUSDT", "1m", [("EMA", {}, "extra")])
    assert list(hub.subscribe("BTCUSDT", "1m", [("EMA", {"timeperiod": 20}), ("EMA", {}),
                                               "cvd"]).studies) == ["EMA 20", "EMA", "cvd"]
    with pytest.raises(ValueError, match="book_levels must be a whole number from 0 to 1000"):
        hub.subscribe("BTCUSDT", "1m", book_levels=-1)
    with pytest.raises(ValueError, match="tape must be a whole number"):
        hub.subscribe("BTCUSDT", "1m", tape=2.5)
    with pytest.raises(ValueError, match="without studies, book or tape"):
        hub.subscribe("BTCUSDT", "1s", source="external", book_levels=10)
    # a study the catalogue describes without a live form
    batch_only = StudyInfo("batch_only", "Test", "A study with no live form", ("bars",), (),
                           ("ts",), "pane", lambda data, params: data.bars[["ts"]])
    hub.catalogue = Catalogue(REGISTRY, studies=[batch_only])
    with pytest.raises(ValueError, match="'batch_only' has no live form"):
        hub.subscribe("BTCUSDT", "1m", ["batch_only"])
    assert hub.subscribe("BTCUSDT", "1m", ["RSI"]).studies == {"RSI": {"timeperiod": 14}}


def snapshots(times, best_bid=1000, levels=3, size=1.0):
    """Book snapshots at ``times`` (``levels`` a side around ``best_bid``), depth layout."""
    rows = []
    for i, ts in enumerate(times):
        for k in range(levels):
            rows.append((ts, -1, best_bid + i - k, size + k))
            rows.append((ts, 1, best_bid + i + 1 + k, size + k))
    return pd.DataFrame(rows, columns=["ts", "side", "tick", "size"])


def test_depth_reaches_a_book_subscriber(tmp_path):
    """Only the book's subscribers hear of depth: the book after each commit, a resent batch
    changing nothing; a chart of the same symbol without a book gets no depth-only update."""
    t0 = pd.Timestamp("2026-03-02 10:00", tz="UTC")
    first = snapshots([t0, t0 + pd.Timedelta(seconds=1)])
    later = snapshots([t0 + pd.Timedelta(seconds=2)], best_bid=1005, levels=4, size=3.0)

    async def body(pipeline, store):
        await pipeline.submit_depth("BTCUSDT", first)
        ladder = pipeline.hub.subscribe("BTCUSDT", "1m", book_levels=2)
        plain = pipeline.hub.subscribe("BTCUSDT", "1m")
        shown = await ladder.__anext__()
        await plain.__anext__()
        await pipeline.submit_depth("BTCUSDT", later)
        moved = await asyncio.wait_for(ladder.__anext__(), 10)
        await pipeline.submit_depth("BTCUSDT", later)  # resent: stored already, nothing new
        await pipeline.submit_depth("BTCUSDT", first)  # and the first: nothing
        waiting = (ladder.waiting, plain.waiting)
        return shown, moved, waiting, len(await store.depth("BTCUSDT"))

    shown, moved, waiting, stored = run(f"duckdb:///{tmp_path}/store.duckdb", body)
    assert isinstance(shown, Snapshot) and isinstance(moved, Update)
    assert list(shown.book["tick"]) == [1001, 1000, 1002, 1003]  # bids best first, then asks
    assert list(shown.book["size"]) == [1.0, 2.0, 1.0, 2.0]
    assert list(moved.book["tick"]) == [1005, 1004, 1006, 1007]
    assert list(moved.book["size"]) == [3.0, 4.0, 3.0, 4.0]
    assert (moved.book["ts"] == later["ts"].iloc[0]).all()
    assert moved.closed.empty and moved.studies == {} and moved.trades is None
    assert waiting == (0, 0) and stored == len(first) + len(later)


def test_a_slow_heatmap_subscriber_resyncs_to_the_same_state(tmp_path):
    t0 = pd.Timestamp("2026-03-02 10:00", tz="UTC")
    steps = [snapshots([t0 + pd.Timedelta(milliseconds=500 * i)], best_bid=1000 + i % 3)
             for i in range(8)]
    params = {"heatmap": {"interval_seconds": 1.0, "how": "max"}}

    async def body(pipeline, store):
        await pipeline.submit_depth("BTCUSDT", steps[0])
        slow = pipeline.hub.subscribe("BTCUSDT", "1m", params, queue_size=2, book_levels=3)
        fast = pipeline.hub.subscribe("BTCUSDT", "1m", params, book_levels=3)
        slow_chart, fast_chart = ChartState(), ChartState()
        await drain(slow, slow_chart)
        await drain(fast, fast_chart)
        for part in steps[1:]:
            await pipeline.submit_depth("BTCUSDT", part)
            await drain(fast, fast_chart)
        kinds = []
        while "Snapshot" not in kinds or slow.waiting:
            message = await slow.__anext__()
            kinds.append(type(message).__name__)
            slow_chart.apply(message)
        slow.close(), fast.close()
        return kinds, slow_chart, fast_chart, await store.depth("BTCUSDT")

    kinds, slow_chart, fast_chart, depth = run(f"duckdb:///{tmp_path}/store.duckdb", body)
    assert kinds == ["Resync", "Snapshot"] and slow_chart.resyncs == 1
    want = batch("heatmap", params["heatmap"], depth=depth)
    assert_frame(fast_chart.studies["heatmap"], want, "fast")
    assert_frame(slow_chart.studies["heatmap"], want, "slow")
    pd.testing.assert_frame_equal(slow_chart.book, fast_chart.book)


def test_a_chart_closed_while_it_is_attached_leaves_nothing(tmp_path):
    """Closed while its snapshot reads the store (its stream made, its studies' followers being
    seeded): its stream and followers go with it, and its reader stops."""
    trades = simulated(LIVE, LAST, pd.Timedelta(minutes=5))[0].trades

    async def body(pipeline, store):
        await pipeline.submit_trades("BTCUSDT", trades)
        hub = pipeline.hub
        sub = hub.subscribe("BTCUSDT", "1m", {"EMA": {}, "tpo": {}}, book_levels=3)
        reading = asyncio.ensure_future(sub.__anext__())
        while not hub.streams():  # the chart's stream is made; the followers come next
            await asyncio.sleep(0)
        sub.close()
        with pytest.raises(StopAsyncIteration):
            await reading
        return hub.streams(), {s: len(b.subs) for s, b in hub.books().items()}

    assert run(f"duckdb:///{tmp_path}/store.duckdb", body) == ({}, {"BTCUSDT": 0})
