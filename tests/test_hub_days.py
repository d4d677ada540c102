"""The hub keeps its studies' state for their trading day: at the next day's first commit the
streams with studies (and the book's depth studies) start again and their charts resync, so the
kept results hold that day, not every day since the server started."""
import pandas as pd
import pytest

from tests.test_hub_studies import BTC, batch, run, simulated, submit
from tests.test_pipeline import assert_bars_equal, drain
from tradeflow.bars import build
from tradeflow.live import ChartState

DAY = pd.Timestamp("2026-03-03", tz="UTC")  # BTCUSDT's trading day starts at 00:00 UTC
HEATMAP = {"heatmap": {"interval_seconds": 10.0}}


@pytest.mark.parametrize("studies", [{"cvd": {}, **HEATMAP}, HEATMAP], ids=["bars", "depth"])
def test_studies_start_again_with_a_new_trading_day(tmp_path, studies):
    """With a bar study the chart's stream starts again; with a depth study only, the book's."""
    before = simulated(DAY - pd.Timedelta(minutes=6), DAY, pd.Timedelta(minutes=1))
    after = simulated(DAY, DAY + pd.Timedelta(minutes=4), pd.Timedelta(minutes=1))

    async def body(pipeline, store):
        hub = pipeline.hub
        await submit(pipeline, before[0])
        sub = hub.subscribe("BTCUSDT", "1m", studies)
        chart = ChartState()
        kinds = await drain(sub, chart)
        for part in before[1:] + after:
            await submit(pipeline, part)
            await pipeline.flushed()
            kinds += await drain(sub, chart)
        stream = hub.streams()[("BTCUSDT", "1m")]
        kept = {name: target.fanout[key].result.frame()
                for name, (target, key) in zip(studies, sub._uses)}
        sub.close()
        return (kinds, chart, kept, stream.follow_from, await store.trades("BTCUSDT"),
                await store.depth("BTCUSDT"))

    kinds, chart, kept, follow_from, trades, depth = run(
        f"duckdb:///{tmp_path}/store.duckdb", body)
    # (a chart may resync twice: its stream's trades, then its book's depth, cross the day)
    assert 1 <= kinds.count("Resync") == kinds.count("Snapshot") - 1 <= 2
    assert follow_from == DAY
    day_bars, day_cells = build(trades[trades["ts"] >= DAY], "1m", BTC)
    if "cvd" in studies:
        want_cvd = batch("cvd", {}, bars=day_bars, footprint=day_cells)
        # the hub keeps the new day's rows only, and the chart holds what the batch gives
        assert len(kept["cvd"]) == len(day_bars) == 4
        pd.testing.assert_frame_equal(kept["cvd"], want_cvd, check_exact=False, rtol=1e-9)
        pd.testing.assert_frame_equal(chart.studies["cvd"], want_cvd, check_exact=False,
                                      rtol=1e-9)
    assert kept["heatmap"]["ts"].min() >= DAY
    heat = chart.studies["heatmap"]
    assert len(heat) and heat["ts"].min() >= DAY
    # from the book as it was when the chart resynced (its bucket's last snapshot counts)
    first = depth[depth["ts"] >= heat["ts"].min()]
    pd.testing.assert_frame_equal(heat.reset_index(drop=True),
                                  batch("heatmap", HEATMAP["heatmap"], depth=first),
                                  check_exact=False, rtol=1e-9)
    # the bars go on across the day: the resync's snapshot holds the closed bars before it
    assert_bars_equal(chart.bars.iloc[-len(day_bars):].reset_index(drop=True), day_bars)
    assert chart.bars["ts"].min() < DAY
