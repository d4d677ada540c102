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


def test_profile_and_tpo_panes_share_one_hub_follower(tmp_path):
    """Two charts of one symbol with the volume profile and TPO panes: the hub holds one
    follower of each (two users), the panes compute nothing of their latest session, and the
    panes, loaded then following the hub's updates, equal panes loaded afresh from the store."""
    from dashboards.chart import Chart
    from dashboards.chart_state import ChartConfig
    from dashboards.components.profile import SharedDay, VolumeProfilePane
    from dashboards.components.tpo import SharedTPO, TPOPane
    from data_access import open_store
    from tradeflow.bars import build
    from tradeflow.marketdata import MarketData

    url = f"duckdb:///{tmp_path}/store.duckdb"
    parts = simulated(DAY - pd.Timedelta(minutes=30), DAY + pd.Timedelta(minutes=70),
                      pd.Timedelta(minutes=2))
    config = dict(symbol="BTCUSDT", spec="1m", panes=["volume_profile", "tpo"])

    async def body(pipeline, store):
        for part in parts[:-5]:
            await submit(pipeline, part)
        await pipeline.flushed()
        market = MarketData(open_store(url))
        charts = [Chart(ChartConfig(chart_type=kind, **config), market, pipeline.hub)
                  for kind in ("footprint", "candles")]
        for chart in charts:
            await _drain(chart)
        for part in parts[-5:]:
            await submit(pipeline, part)
            await pipeline.flushed()
            for chart in charts:
                await _drain(chart)
        shared = {}
        for chart in charts:
            for target, key in chart.feed.subscription._uses:
                shared.setdefault(key, set()).add((id(target), target.fanout.users(key)))
        panes = [(chart.panes[0], chart.panes[1]) for chart in charts]
        rows = [(p.row_size, t._rows) for p, t in panes]
        got = [({k: list(v) for k, v in p.rows.data.items()},
                {k: list(v) for k, v in t.rows.data.items()}, dict(t.ib.data),
                isinstance(p._session, SharedDay), isinstance(t.tpo, SharedTPO))
               for p, t in panes]
        for chart in charts:
            chart.close()
        return shared, rows, got, await store.trades("BTCUSDT")

    shared, rows, got, trades = run(url, body, history=5)
    # one follower per profile study and settings, used by both charts
    profile_keys = [k for k in shared if "volume_profile" in str(k) or "tpo" in str(k)]
    assert len(profile_keys) == 2, shared
    for key in profile_keys:
        assert shared[key] == {(next(iter(shared[key]))[0], 2)}, shared[key]
    assert rows[0] == rows[1]
    bars, cells = build(trades, "1m", BTC)
    fresh_profile = VolumeProfilePane(instrument=BTC, row_ticks=rows[0][0])
    fresh_profile.load(bars, cells)
    fresh_tpo = TPOPane(instrument=BTC, row_ticks=rows[0][1])
    fresh_tpo.load(bars)
    want = ({k: list(v) for k, v in fresh_profile.rows.data.items()},
            {k: list(v) for k, v in fresh_tpo.rows.data.items()}, dict(fresh_tpo.ib.data))
    assert len(want[0]["key"]) > 20 and len(want[1]["key"]) > 5 and len(want[2]["y0"]) == 1
    for profile, tpo, ib, shares_day, shares_tpo in got:
        assert shares_day and shares_tpo  # (the latest session is the hub's)
        for mine, fresh in ((profile, want[0]), (tpo, want[1])):
            order, fresh_order = np.argsort(mine["key"]), np.argsort(fresh["key"])
            for column in fresh:
                a = np.asarray(mine[column], dtype=object)[order]
                b = np.asarray(fresh[column], dtype=object)[fresh_order]
                if column in ("volume", "ask", "bid", "y", "height", "alpha", "single"):
                    np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-9,
                                               err_msg=column)
                else:
                    assert list(a) == list(b), column
        assert ib == want[2]


def test_a_desk_footprint_writes_its_numbers_before_the_page_reports(tmp_path):
    """A desk chart opens its footprint on the last bars whose numbers fit (``first_shown``),
    set on the shared range after the view's load. The view answers that range at once: its
    cells are rects with their numbers before the page reports its view (they were blocks
    without numbers, drawn for the wider range before, until a report that can come late).
    The page's first report, at another size, still refits the bars to it."""
    from dashboards.chart import Chart
    from dashboards.chart_state import ChartConfig
    from data_access import open_store
    from tradeflow.marketdata import MarketData

    url = f"duckdb:///{tmp_path}/store.duckdb"
    parts = simulated(DAY - pd.Timedelta(minutes=40), DAY, pd.Timedelta(minutes=2))

    async def body(pipeline, store):
        for part in parts:
            await submit(pipeline, part)
        await pipeline.flushed()
        chart = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="footprint"),
                      MarketData(open_store(url)), pipeline.hub)
        view = chart.view  # as the page first gets it: the history loaded, the hub not yet heard
        seen = dict(range=(chart.x_range.start, chart.x_range.end),
                    viewport={k: v[0] for k, v in view.viewport.data.items()},
                    zoomed_in=view.zoomed_in, numbers=len(view.text.data["x"]))
        # the page's first report, narrower than assumed: fewer bars fit
        v = seen["viewport"]
        view.viewport.data = {"x0": [v["x0"]], "x1": [v["x1"]], "y0": [v["y0"]], "y1": [v["y1"]],
                              "w": [v["w"] / 2], "h": [v["h"]]}
        seen["after_report"] = chart.x_range.start
        chart.close()
        return seen

    seen = run(url, body, history=5)
    start, end = seen["range"]
    assert (seen["viewport"]["x0"], seen["viewport"]["x1"]) == (start, end)
    assert end - start < 16  # the numbers' bars, not the 16 of the range set before
    assert seen["zoomed_in"] and seen["numbers"] > 0
    assert seen["after_report"] > start  # refitted to the narrower page
