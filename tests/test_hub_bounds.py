"""Memory flat within a trading day: the hub keeps a study's rows of the bars a snapshot sends
(its ``history``) only, and the order-flow followers hold the forming bar's cells and a closed
bar or so; what either holds does not grow with the day's bars. A chart that subscribed early
and one that subscribes late hold the same rows where they overlap (by position in the whole
result), and the early one still holds the batch frames."""
import gc
import tracemalloc

import pandas as pd

from tests.test_hub_studies import BTC, batch, run, simulated, submit
from tests.test_pipeline import drain
from tradeflow.bars import build
from tradeflow.live import ChartState
from indicators.live_protocol import Changes
from tradeflow.live.hub import _Result, _Stream
from tradeflow.model import BAR_COLUMNS, FOOTPRINT_COLUMNS, BarSpec

DAY = pd.Timestamp("2026-03-04", tz="UTC")  # BTCUSDT's trading day starts at 00:00 UTC
HISTORY = 5  # closed bars the hub keeps for snapshots
STUDIES = {"cvd": {}, "imbalances": {"ratio": 1.5}, "footprint_metrics": {},
           "EMA": {"timeperiod": 3}, "naked_pocs": {}}
FLOWS = ("cvd", "imbalances", "footprint_metrics", "naked_pocs")  # (LiveOrderFlow followers)


def test_the_hub_and_its_followers_hold_a_bounded_number_of_bars(tmp_path):
    parts = simulated(DAY, DAY + pd.Timedelta(minutes=30), pd.Timedelta(minutes=1))

    async def body(pipeline, store):
        hub = pipeline.hub
        await submit(pipeline, parts[0])
        await pipeline.flushed()
        early, chart = hub.subscribe("BTCUSDT", "1m", STUDIES), ChartState()
        await drain(early, chart)
        most = {}  # the most bars any kept rows were of, by what kept them
        for part in parts[1:]:
            await submit(pipeline, part)
            await pipeline.flushed()
            await drain(early, chart)
            for name, (target, key) in zip(STUDIES, early._uses):
                followed = target.fanout[key]
                held = followed.result.frame()
                if name == "naked_pocs":  # (a session's row is after the bars', at its start)
                    held = held[held["kind"] == "bar"]
                assert (held["ts"] >= target.since()).all(), name
                most[name] = max(most.get(name, 0), held["ts"].nunique())
                if name in FLOWS:
                    flow = followed.follower.inner  # the LiveOrderFlow
                    for what in ("bars", "footprint"):
                        n = flow.result(what)["ts"].nunique()
                        most[f"{name} {what}"] = max(most.get(f"{name} {what}", 0), n)
        late, late_chart = hub.subscribe("BTCUSDT", "1m", STUDIES), ChartState()
        await drain(late, late_chart)
        early.close()
        late.close()
        return most, chart, late_chart, await store.trades("BTCUSDT")

    most, chart, late, trades = run(f"duckdb:///{tmp_path}/store.duckdb", body,
                                    history=HISTORY)
    bars, cells = build(trades, "1m", BTC)
    assert len(bars) == 30
    # kept for snapshots: the history's bars (whole updates of a minute: one or two more) and
    # the forming one; held by a follower: one closed bar, those an update touched
    for name in STUDIES:
        assert most[name] <= HISTORY + 2, name
    for name in FLOWS:
        assert most[f"{name} bars"] <= 3 and most[f"{name} footprint"] <= 3, name
    for name in STUDIES:
        got = late.studies[name]
        assert got.index[0] > 0 and got["ts"].iloc[0] == late.bars["ts"].iloc[0], name
        pd.testing.assert_frame_equal(got, chart.studies[name].loc[got.index], obj=name)
    for name in ("cvd", "imbalances", "EMA"):  # the early chart: everything, as the batch
        want = batch(name, STUDIES[name], bars=bars, footprint=cells)
        pd.testing.assert_frame_equal(chart.studies[name].reset_index(drop=True), want,
                                      check_exact=False, rtol=1e-9, obj=name)


def test_a_chart_draws_a_hub_study_over_all_its_bars(tmp_path):
    """The hub keeps a study's rows of its history bars only; a chart with more bars than that
    computes the earlier bars' rows itself, so the study is drawn over every bar shown, its x
    in bar order, and then follows the hub's updates."""
    import asyncio

    import numpy as np

    from dashboards.chart import Chart
    from dashboards.chart_state import ChartConfig
    from data_access import open_store
    from tradeflow.marketdata import MarketData

    url = f"duckdb:///{tmp_path}/store.duckdb"
    parts = simulated(DAY - pd.Timedelta(minutes=40), DAY + pd.Timedelta(minutes=10),
                      pd.Timedelta(minutes=1))

    async def body(pipeline, store):
        for part in parts[:-5]:
            await submit(pipeline, part)
        await pipeline.flushed()
        chart = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="candles",
                                  studies=[{"name": "EMA", "params": {"timeperiod": 3}}]),
                      MarketData(open_store(url)), pipeline.hub)
        seen = []
        for part in [None, *parts[-5:]]:
            if part is not None:
                await submit(pipeline, part)
                await pipeline.flushed()
            for _ in range(50):
                await asyncio.sleep(0.01)
                if chart.feed.buffer:
                    break
            chart.feed.drain()
            layer = chart.view.layers[0]
            seen.append(({k: np.asarray(v) for k, v in layer.source.data.items()},
                         list(chart.view.source.data["x"]), chart.history.copy(),
                         len(layer.of(chart.live_studies))))  # (the hub's rows)
        chart.close()
        return seen

    seen = run(url, body, history=HISTORY)
    for ema, bar_x, bars, from_hub in seen:
        assert list(ema["x"]) == bar_x and len(bar_x) == len(bars)  # every bar, in order
        # the earlier bars' rows, computed by the chart, equal a batch over the bars shown
        want = batch("EMA", {"timeperiod": 3}, bars=bars)["EMA"].to_numpy()
        earlier = len(bars) - from_hub
        assert 0 < from_hub < len(bars) // 2  # (the hub keeps rows of its history bars only)
        np.testing.assert_allclose(ema["EMA"][:earlier], want[:earlier])


def _traced_after(make):
    """``make()``'s result and the memory its allocations still hold (tracemalloc, numpy's
    arrays included), MB."""
    gc.collect()
    tracemalloc.start()
    try:
        got = make()
        gc.collect()
        return got, tracemalloc.get_traced_memory()[0] / 2**20
    finally:
        tracemalloc.stop()


def test_what_ages_out_of_the_kept_history_is_freed():
    """The hub keeps closed bars and study rows in pieces, so what ages out is freed as it
    goes: the seed's 300 bars (one update) are not held whole until the last of them has aged
    out, beside the bars that replaced them (which doubled what a 1-minute chart held for 5
    hours)."""
    minutes = pd.date_range(DAY, periods=450, freq="1min")
    bars = pd.DataFrame({"ts": minutes, **{c: 1.0 for c in BAR_COLUMNS if c != "ts"}})
    bars = bars[list(BAR_COLUMNS)]
    cells = pd.DataFrame({"ts": minutes.repeat(2000), "tick": 1, "bid_volume": 1.0,
                          "ask_volume": 1.0, "volume": 2.0, "trades": 1})
    cells = cells.reindex(columns=list(FOOTPRINT_COLUMNS), fill_value=0)
    per_bar = cells.memory_usage(index=False).sum() / 2**20 / 450  # MB of cells a bar

    def stream_after(new: int):
        stream = _Stream(BTC, BarSpec.parse("1m"), history=300)
        stream.keep(bars.iloc[:300].copy(), cells[cells["ts"] < minutes[300]].copy())
        for i in range(300, 300 + new):
            stream.keep(bars.iloc[i:i + 1].copy(), cells[cells["ts"] == minutes[i]].copy())
        return stream

    seeded, at_seed = _traced_after(lambda: stream_after(0))
    later, at_150 = _traced_after(lambda: stream_after(150))
    assert sum(len(b) for b, _ in later.chunks) <= 300 + 30
    # 150 bars came and ~150 aged out: about what the seed held, not 150 bars' more
    assert at_150 < at_seed + 40 * per_bar, (at_seed, at_150, per_bar)

    rows = cells.iloc[:600_000][["ts", "volume"]].reset_index(drop=True)

    def result_after(trim_to: int):
        result = _Result(["ts", "volume"], rows.copy())  # (its memory traced)
        result.trim(minutes[trim_to])
        return result

    whole, held = _traced_after(lambda: result_after(0))
    trimmed, after = _traced_after(lambda: result_after(210))  # 70% of the rows aged out
    assert len(trimmed.frame()) == len(rows) - 210 * 2000
    assert after < 0.45 * held, (held, after)

    # a new follower's first change: the trading day's rows caught up at once (an order-flow
    # study's, which comes without a seed frame), then a bar's rows at a time
    def caught_up_after(trim_to: int):
        result = _Result(["ts", "volume"])
        result.add(Changes(rows.copy(), len(rows)))
        for i in range(300, 300 + trim_to):
            bar = rows.iloc[:2000].assign(ts=minutes[i])
            bar.index = pd.RangeIndex(result.n, result.n + 2000)
            result.add(Changes(bar, result.n + 2000))
        result.trim(minutes[trim_to])
        return result

    caught, at_start = _traced_after(lambda: caught_up_after(0))
    moved_on, at_140 = _traced_after(lambda: caught_up_after(140))
    assert len(moved_on.frame()) == len(rows)
    # 140 bars came and 140 aged out: about what the day caught up held, not 140 bars' more
    assert at_140 < 1.2 * at_start, (at_start, at_140)


def test_a_results_pieces_stay_small_as_updates_are_merged():
    """Updates are merged ``MERGED`` at a time into pieces that stay that size: merging the
    newest parts took the last merged piece in each time, so one piece grew to span most of the
    history and was held whole (doubling what was kept) until its last row aged out."""
    per_bar, history, bars = 100, 300, 600
    minutes = pd.date_range(DAY, periods=bars, freq="1min")

    def followed(n_bars: int):
        result = _Result(["ts", "volume"])
        for i in range(n_bars):
            # each bar's rows come as it forms (twice) and closes
            for volume in (1.0, 2.0, 3.0):
                start = i * per_bar
                rows = pd.DataFrame({"ts": minutes[i], "volume": volume},
                                    index=pd.RangeIndex(start, start + per_bar))
                result.add(Changes(rows, start + per_bar))
            result.trim(minutes[max(i + 1 - history, 0)])
        return result

    full, at_history = _traced_after(lambda: followed(history))
    later, at_end = _traced_after(lambda: followed(bars))
    frame = later.frame()
    assert len(frame) == history * per_bar and (frame["volume"] == 3.0).all()
    assert frame.index[0] == (bars - history) * per_bar
    # a merged piece holds MERGED updates: at most that many bars
    assert max(len(p) for p in later.parts) <= _Result.MERGED * per_bar
    # as many bars kept, about as much memory held
    assert at_end < 1.25 * at_history, (at_history, at_end)
