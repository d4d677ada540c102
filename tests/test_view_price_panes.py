"""The delta and CVD panes under Kagi, Point & Figure and Line Break follow the chart's lines:
a line holds the bars from the one that began it to the one before the next began, its delta is
theirs summed, its CVD the CVD at its last bar, its CVD candle theirs joined (open at the first,
close at the last, high and low their extremes). Loaded whole or followed bar by bar, the same."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bokeh.document import Document
from bokeh.document.events import (ColumnDataChangedEvent, ColumnsPatchedEvent,
                                   ColumnsStreamedEvent, ModelChangedEvent)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tradeflow.bar_transforms as kinds
from dashboards.components.delta import CVDPane, DeltaPane
from dashboards.components.price_chart import PriceChart
from indicators.catalogue import CATALOGUE
from indicators.orderflow import cvd, cvd_candles
from tests.test_view_price import ES, START, TRANSFORM_SETTINGS
from tradeflow.bars import BarAggregator, build
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.live.hub import Snapshot, Update

KINDS = ["kagi", "point_and_figure", "line_break"]
RESENT = (ModelChangedEvent, ColumnDataChangedEvent)  # a source's data sent whole


@pytest.fixture(scope="module")
def trades():
    # two hours over ES's daily break (16:00-17:00 Chicago): the CVD resets inside the data
    start = START + pd.Timedelta("6h")
    return MarketSimulator(ES, seed=5, trades_per_day=40_000).generate(
        start, start + pd.Timedelta("3h")).trades


@pytest.fixture(scope="module")
def bars(trades):
    return build(trades, "1m", ES)[0]


def panes(chart: PriceChart, **kw) -> tuple:
    """The three panes under ``chart``, following its lines."""
    common = dict(instrument=ES, x_range=chart.x_range, lines=chart.line_starts)
    return (DeltaPane(**common), CVDPane(**common),
            CVDPane(style="candles", **common, **kw))


def spans(kind: str, bars: pd.DataFrame) -> list[tuple[int, int]]:
    """Each line's bars ``(first, end)``, from the batch transform's lines."""
    made = getattr(kinds, kind)(bars, ES, **TRANSFORM_SETTINGS[kind])
    starts = made.groupby("line").head(1) if kind == "kagi" else made
    ts = list(bars["ts"])
    begun = [ts.index(t) for t in starts["ts"]]
    if begun:
        begun[0] = 0
    return list(zip(begun, begun[1:] + [len(bars)]))


def data(source) -> dict:
    return {k: np.asarray(v) for k, v in source.data.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_the_panes_draw_each_lines_bars(trades, bars, kind):
    chart = PriceChart(instrument=ES, bars=bars, chart_type=kind, transform=TRANSFORM_SETTINGS)
    delta, line, candles = panes(chart)
    for pane in (delta, line):
        pane.load(bars)
    candles.load(bars, trades=trades)
    lines = spans(kind, bars)
    rows = data(chart.transform_source)
    assert len(lines) > 5 and rows["x"].tolist() == list(range(len(lines)))
    bar_delta = (bars["ask_volume"] - bars["bid_volume"]).to_numpy()
    bar_cvd = cvd(bars, ES.session).to_numpy()
    bar_candles = cvd_candles(bars, trades=trades, session=ES.session)
    days = ES.session.trading_date(bars["ts"])
    assert days.nunique() == 2  # (the CVD starts again from 0 inside the data)
    want = {
        "delta": [bar_delta[a:b].sum() for a, b in lines],
        "cvd": [bar_cvd[b - 1] for a, b in lines],
        "open": [bar_candles["open"].iloc[a] for a, b in lines],
        "close": [bar_candles["close"].iloc[b - 1] for a, b in lines],
        "high": [bar_candles["high"].iloc[a:b].max() for a, b in lines],
        "low": [bar_candles["low"].iloc[a:b].min() for a, b in lines],
    }
    got = {"delta": data(delta.source), "cvd": data(line.source)}
    got.update({k: data(candles.source) for k in ("open", "close", "high", "low")})
    for column, values in want.items():
        np.testing.assert_allclose(got[column][column], values, atol=1e-9, err_msg=column)
    for pane in (delta, line, candles):  # on the lines' x, labelled with the lines' times
        d = data(pane.source)
        assert d["x"].tolist() == rows["x"].tolist()
        np.testing.assert_array_equal(d["t"], rows["t"])
    assert got["delta"]["delta"].sum() == pytest.approx(bar_delta.sum())
    # a line's wick reaches past its body where its bars' running delta did
    body_top = np.maximum(want["open"], want["close"])
    assert (np.asarray(want["high"]) > body_top).sum() > 3


def updates_at(trades, cuts) -> list:
    """The aggregator's updates of ``trades`` cut at the positions ``cuts``."""
    agg = BarAggregator(ES, "1m")
    edges = [0, *cuts, len(trades)]
    return [agg.update(trades.iloc[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def follow(kind: str, updates) -> tuple:
    """A chart and its panes loaded with the first update (a hub Snapshot, with the CVD
    candles' study rows) and given the others as the desk's chart gives them (the chart first,
    then each pane); the events each pane's source sent after the load, by update."""
    study = CATALOGUE.get("cvd_candles").live(ES)
    first = updates[0]
    chart = PriceChart(instrument=ES, chart_type=kind, transform=TRANSFORM_SETTINGS)
    under = panes(chart)
    snap = Snapshot(first.closed, first.closed_footprint, first.current,
                    first.current_footprint, {"cvd_candles": study.apply(first)["cvd_candles"].rows})
    chart.load(snap)
    for pane in under:
        pane.apply(snap)
    doc = Document()
    for pane in under:
        doc.add_root(pane.figure)
    log: list = []
    doc.on_change(log.append)
    closed = [first.closed]
    sent = []  # per update: (lines closed before it, the events it caused)
    for up in updates[1:]:
        before = len(log)
        message = Update(up.closed, up.closed_footprint, up.current, up.current_footprint,
                         {"cvd_candles": study.apply(up)["cvd_candles"]})
        chart.apply(message)
        for pane in under:
            pane.apply(message)
        done = pd.concat(closed, ignore_index=True)
        # lines before the last one the closed bars drew are closed: never sent again
        sent.append((max(len(spans(kind, done)) - 1, 0), log[before:]))
        closed.append(up.closed)
    return chart, under, sent


def assert_follows(kind, trades, bars, updates):
    chart, under, sent = follow(kind, updates)
    whole = PriceChart(instrument=ES, bars=bars, chart_type=kind, transform=TRANSFORM_SETTINGS)
    fresh = panes(whole)
    fresh[0].load(bars)
    for pane in fresh[1:]:  # (the line's y fit reads the wicks too, as the study's rows give)
        pane.load(bars, trades=trades)
    for mine, want in zip(under, fresh):
        a, b = data(mine.source), data(want.source)
        assert a["x"].tolist() == b["x"].tolist()
        for column in b:
            if b[column].dtype.kind == "f":
                np.testing.assert_allclose(a[column], b[column], atol=1e-9, err_msg=column)
            else:
                assert a[column].tolist() == b[column].tolist(), column
    sources = [pane.source for pane in under]
    for closed_lines, events in sent:
        for e in (e for e in events if getattr(e, "model", None) in sources):
            assert not isinstance(e, RESENT), e
            if isinstance(e, ColumnsPatchedEvent):
                starts = {p[0].start for col in e.patches.values() for p in col}
                assert min(starts) >= closed_lines, (closed_lines, starts)
    return sent


@pytest.mark.filterwarnings("error:attempted to patch an immutable")  # (a streamed view)
@pytest.mark.parametrize("kind", KINDS)
def test_live_panes_equal_a_fresh_load_and_never_resend_closed_lines(trades, bars, kind):
    sent = assert_follows(kind, trades, bars, updates_at(
        trades, np.linspace(0, len(trades), 61).astype(int)[1:-1]))
    # lines closed as the market moved on: the test saw patches that could have touched them
    assert sum(1 for _, events in sent for e in events if isinstance(e, ColumnsPatchedEvent)) \
        > 20 and sent[-1][0] > 5
    assert any(isinstance(e, ColumnsStreamedEvent) for _, events in sent for e in events)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_split_of_the_feed_ends_at_the_loaded_panes(trades, bars, data):
    kind = data.draw(st.sampled_from(KINDS))
    cuts = data.draw(st.lists(st.integers(1, len(trades) - 1), min_size=1, max_size=12,
                              unique=True))
    assert_follows(kind, trades, bars, updates_at(trades, sorted(cuts)))


def test_the_desk_chart_follows_the_hub_with_its_panes_on_the_lines(tmp_path):
    """The desk's ``Chart`` (Kagi with delta and CVD candles), a Snapshot then Updates as the hub
    sends them: its panes end as a chart opened afresh on every trade, on the view's lines."""
    from dashboards.chart import Chart
    from dashboards.chart_state import ChartConfig
    from tests.test_desk import store_and_live_trades
    from tradeflow.marketdata import MarketData

    store, inst, stored, live = store_and_live_trades(tmp_path)
    config = dict(symbol="BTCUSDT", spec="1m", chart_type="kagi", panes=["delta", "cvd"])
    chart = Chart(ChartConfig(**config), MarketData(store))
    aggregator = BarAggregator(inst, "1m")
    seed = aggregator.update(stored)
    chart.on_message(Snapshot(seed.closed, seed.closed_footprint, seed.current,
                              seed.current_footprint))
    for start in range(0, len(live), 300):
        up = aggregator.update(live.iloc[start:start + 300])
        chart.on_message(Update(up.closed, up.closed_footprint, up.current, up.current_footprint))
    store.write_trades("BTCUSDT", live)
    fresh = Chart(ChartConfig(**config), MarketData(store))
    lines = data(fresh.view.transform_source)
    assert len(lines["x"]) > 10
    np.testing.assert_array_equal(data(chart.view.transform_source)["x"], lines["x"])
    for mine, want in zip(chart.under, fresh.under):
        a, b = data(mine.source), data(want.source)
        assert a["x"].tolist() == b["x"].tolist() == lines["x"].tolist()
        for column in ("delta",) if "delta" in a else ("cvd", "open", "high", "low", "close"):
            np.testing.assert_allclose(a[column], b[column], atol=1e-9, err_msg=column)
    store.close()
