"""The desk chart's panes following a real hub (a pipeline over a DuckDB store): the CVD
candles' wicks over every bar shown, and the volume profile and TPO panes sharing one follower
per symbol and settings."""
import asyncio

import numpy as np
import pandas as pd

from tests.test_hub_studies import BTC, run, simulated, submit

DAY = pd.Timestamp("2026-03-04", tz="UTC")  # BTCUSDT's trading day starts at 00:00 UTC


def _drain(chart, tries=100):
    """Apply what the chart's feed has received (a tick of the session's callback)."""
    async def wait():
        for _ in range(tries):
            await asyncio.sleep(0.01)
            if chart.feed.buffer:
                break
        chart.feed.drain()
    return wait()


def test_cvd_candles_have_wicks_on_the_days_before_the_hubs(tmp_path):
    """The hub's ``cvd_candles`` rows start with its trading day; the bars before it get their
    wicks from their stored trades (the batch form), and the pane, loaded and then following the
    hub's updates, equals ``cvd_candles`` over every stored trade (the live form agrees)."""
    from dashboards.chart import Chart
    from dashboards.chart_state import ChartConfig
    from data_access import open_store
    from indicators.orderflow import cvd_candles
    from tradeflow.bars import build
    from tradeflow.marketdata import MarketData

    url = f"duckdb:///{tmp_path}/store.duckdb"
    parts = simulated(DAY - pd.Timedelta(minutes=30), DAY + pd.Timedelta(minutes=12),
                      pd.Timedelta(minutes=1))

    async def body(pipeline, store):
        for part in parts[:-4]:
            await submit(pipeline, part)
        await pipeline.flushed()
        chart = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="candles",
                                  panes=["cvd_candles"]),
                      MarketData(open_store(url)), pipeline.hub)
        await _drain(chart)
        seen = []
        for part in parts[-4:]:
            await submit(pipeline, part)
            await pipeline.flushed()
            await _drain(chart)
            seen.append({k: np.asarray(v) for k, v in chart.under[0].source.data.items()})
        chart.close()
        return seen, await store.trades("BTCUSDT")

    seen, trades = run(url, body, history=5)
    bars = build(trades, "1m", BTC)[0]
    want = cvd_candles(bars, trades=trades, session=BTC.session)
    got = seen[-1]
    assert len(got["x"]) == len(bars) and (bars["ts"] < DAY).sum() == 30
    earlier = (bars["ts"] < DAY).to_numpy()
    # the earlier day's wicks reach past their bodies (they did not: bodies only)
    assert (want["high"].to_numpy()[earlier] > np.maximum(want["open"], want["close"])
            .to_numpy()[earlier]).sum() > 10
    for column in ("open", "high", "low", "close"):
        np.testing.assert_allclose(got[column], want[column].to_numpy(), atol=1e-9,
                                   err_msg=column)
