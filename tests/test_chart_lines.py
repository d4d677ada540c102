"""Kagi, Point & Figure and Line Break on the desk's chart: their x counts their own lines, so
drawings (kept in times) go through the lines (``price_transforms.LineAxis``) and the live edge
follows new lines, not new bars. In process, over a DuckDB store of simulated trades."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboards.chart import Chart
from dashboards.chart_state import ChartConfig, DeskConfig
from dashboards.components.price_transforms import LineAxis
from data_access import open_store
from tradeflow.bars import BarAggregator
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.live.hub import Snapshot, Update
from tradeflow.marketdata import MarketData
from tradeflow.model import Instrument

BTC = Instrument("BTCUSDT", 0.1)
DAY = "2026-11-25"  # fixed dates: BTCUSDT trades around the clock


def _trades(start: str, end: str, seed: int = 3) -> pd.DataFrame:
    return MarketSimulator(BTC, seed=seed, trades_per_day=20_000).generate(start, end).trades


@pytest.fixture
def market(tmp_path):
    store = open_store(f"duckdb:///{tmp_path / 'market.duckdb'}")
    store.add_instrument(BTC)
    store.write_trades("BTCUSDT", _trades(f"{DAY} 00:00", f"{DAY} 12:00"))
    yield MarketData(store)
    store.close()


def _line_of(chart: Chart, t: str) -> int:
    """The line holding the bar opened at ``t``: the last one begun at or before it."""
    starts = chart.view.line_starts()
    return int(np.searchsorted(starts, pd.Timestamp(t).value, side="right")) - 1


def test_the_line_axis_undoes_itself_and_keeps_each_bar_in_its_line():
    bar_ns = pd.date_range(f"{DAY} 10:00", periods=20, freq="1min", tz="UTC").asi8
    # lines begun by bars 2, 5, 5 (one bar began two lines), 9 and 15; bars numbered from -4
    starts = bar_ns[[2, 5, 5, 9, 15]]
    axis = LineAxis(np.arange(-4, 16), bar_ns, starts)
    assert [axis.to_lines(b) for b in (-2.0, 1.0, 1.5, 5.0, 11.0)] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert axis.to_lines(-2.0 + 1.5) == pytest.approx(0.5)  # half way through line 0's bars
    assert axis.to_lines(16.0) == 5.0  # the last bar's end: the last line's end
    for b in np.linspace(-10, 25, 141):  # bars before the first line and past the last too
        x = axis.to_lines(b)
        assert axis.to_bars(x) == pytest.approx(b, abs=1e-9)
        if -2 <= b < 16:  # inside the lines: in a line its bar began, else the one before
            bar = bar_ns[int(np.floor(b)) + 4]
            lines = set(np.flatnonzero(starts == bar)) or \
                {int(np.searchsorted(starts, bar, side="right")) - 1}
            assert int(np.floor(x)) in lines, b
    xs = [axis.to_lines(b) for b in np.linspace(-10, 25, 141)]
    assert np.all(np.diff(xs) > 0)
    assert axis.to_bars(3.0) == 5.0  # a line's start gives its bar back exactly


def test_a_drawing_made_on_kagi_is_kept_at_its_lines_times_and_reopens_there(market):
    """Points drawn on Kagi are stored as the times of the lines they are on (they were stored
    as bar numbers: the day's first minutes), reopen at the same x from the JSON document and
    the URL, and show at those times on candles."""
    chart = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="kagi"), market)
    starts = pd.DatetimeIndex(chart.view.line_starts()).tz_localize("UTC")
    bars = pd.DatetimeIndex(chart.history["ts"])
    assert len(starts) > 100 and bars[0] < starts[5]
    drawn = {"trends": {"xs": [[5.0, 40.5]], "ys": [[101_000.0, 101_500.0]]},
             "hlines": {"x": [60.25], "y": [100_900.0]},
             "rects": {"x": [80.0], "y": [101_000.0], "width": [10.0], "height": [50.0]},
             "notes": {"x": [90.0], "y": [101_200.0], "text": ["turn"]}}
    for name, data in drawn.items():
        getattr(chart.drawings, name).data = data
    state = chart.state()
    trend = state.drawings[0]["points"]
    assert trend[0]["t"] == starts[5].isoformat().replace("+00:00", "Z")  # line 5's first bar
    assert trend[0]["dx"] == 0.0
    # half way along line 40, by its bars
    held = (bars >= starts[40]) & (bars < starts[41])
    half = bars.get_loc(starts[40]) + held.sum() / 2
    assert bars.get_loc(pd.Timestamp(trend[1]["t"])) + trend[1]["dx"] == pytest.approx(half)
    assert _line_of(chart, trend[1]["t"]) == 40
    rect = state.drawings[2]["points"]
    assert [_line_of(chart, p["t"]) for p in rect] == [75, 85]

    # through the document and the desk's URL, onto a new Kagi chart: the same places
    again = DeskConfig.from_query(DeskConfig(charts=[ChartConfig.from_json(state.to_json())])
                                  .to_query()).charts[0]
    assert again.drawings == json.loads(state.to_json())["drawings"]
    reopened = Chart(again, market)
    for name, data in drawn.items():
        got = getattr(reopened.drawings, name).data
        for column, values in data.items():
            if column == "text":
                assert list(got[column]) == values
            else:
                np.testing.assert_allclose(np.asarray(got[column], float), values, atol=1e-6,
                                           err_msg=f"{name}.{column}")
    assert reopened.state().drawings == state.drawings

    # on candles: at those bars (x is the bar number there)
    candles = Chart(ChartConfig.from_dict({**json.loads(state.to_json()),
                                           "chart_type": "candles"}), market)
    x0 = candles.drawings.trends.data["xs"][0][0]
    assert candles.history["ts"].iloc[int(x0) - candles.first_x] == starts[5]
    assert candles.state().drawings == state.drawings


@pytest.mark.parametrize("chart_type", ["kagi", "point_and_figure", "line_break"])
def test_a_drawing_from_candles_shows_on_kagi_at_its_times_line(market, chart_type):
    """A trend line and a horizontal line drawn at bar times on candles: on Kagi each point is
    inside the line that holds its bar (it was at the bar's number, lines away), and going
    there and back leaves the drawing's times as they were."""
    drawings = [{"kind": "trend", "points": [{"t": f"{DAY}T03:10:00Z", "dx": 0.0,
                                              "price": 100_000.0},
                                             {"t": f"{DAY}T09:47:00Z", "dx": 0.0,
                                              "price": 101_000.0}]},
                {"kind": "hline", "points": [{"t": f"{DAY}T06:30:00Z", "dx": 0.0,
                                              "price": 100_500.0}]}]
    candles = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="candles",
                                drawings=drawings), market)
    made = candles.state().drawings
    assert made == ChartConfig(drawings=drawings).drawings
    kagi = Chart(ChartConfig.from_dict({**json.loads(candles.state().to_json()),
                                        "chart_type": chart_type}), market)
    xs = kagi.drawings.trends.data["xs"][0]
    hline = kagi.drawings.hlines.data["x"][0]
    bars = pd.DatetimeIndex(kagi.history["ts"])
    for x, t in zip([*xs, hline], [f"{DAY}T03:10:00Z", f"{DAY}T09:47:00Z", f"{DAY}T06:30:00Z"]):
        assert pd.Timestamp(t) in bars
        assert int(np.floor(x)) == _line_of(kagi, t), t
    assert 0 < xs[0] < xs[1] <= len(kagi.view.line_starts())
    assert kagi.state().drawings == made
    back = Chart(ChartConfig.from_dict({**json.loads(kagi.state().to_json()),
                                        "chart_type": "candles"}), market)
    assert back.drawings.trends.data == candles.drawings.trends.data
    assert back.state().drawings == made


def _live(market, charts, trades, step=300):
    """A Snapshot of the stored trades' bars, then ``trades`` as hub Updates, to each chart;
    after each Update ``yield``."""
    aggregator = BarAggregator(BTC, "1m")
    seed = aggregator.update(market.store.trades("BTCUSDT"))
    for chart in charts:
        chart.on_message(Snapshot(seed.closed, seed.closed_footprint, seed.current,
                                  seed.current_footprint))
    for start in range(0, len(trades), step):
        up = aggregator.update(trades.iloc[start:start + step])
        for chart in charts:
            chart.on_message(Update(up.closed, up.closed_footprint, up.current,
                                    up.current_footprint))
        yield


@pytest.mark.parametrize("chart_type", ["kagi", "line_break"])
def test_live_lines_keep_the_view_at_the_edge_and_a_scrolled_back_view_stays(market,
                                                                            chart_type):
    """New lines arriving: a chart showing its last line keeps showing it, at the same place in
    the view (it counted bars, so it never moved); one scrolled back does not move."""
    config = dict(symbol="BTCUSDT", spec="1m", chart_type=chart_type)
    edge, back = Chart(ChartConfig(**config), market), Chart(ChartConfig(**config), market)
    last = len(edge.view.line_starts()) - 1
    assert edge.x_range.start < last < edge.x_range.end
    back.x_range.update(start=30.5, end=90.5)
    width = edge.x_range.end - edge.x_range.start
    ahead = edge.x_range.end - last  # the view's room past the last line
    lines_before = last + 1
    for _ in _live(market, [edge, back], _trades(f"{DAY} 12:00", f"{DAY} 15:00", seed=9)):
        last = len(edge.view.line_starts()) - 1
        assert edge.x_range.end - last == pytest.approx(ahead)
        assert edge.x_range.end - edge.x_range.start == pytest.approx(width)
        assert (back.x_range.start, back.x_range.end) == (30.5, 90.5)
    assert last + 1 > lines_before + 20  # lines came (and the view followed them)
    assert len(back.view.line_starts()) == last + 1


def test_a_drawing_on_the_live_line_keeps_its_time_as_lines_come(market):
    """Drawings placed on Kagi at a time in its last (growing) line and past the newest bar:
    as bars and lines arrive they are placed again by their times, so the state (written from
    the figure every second) keeps the times they were drawn at."""
    chart = Chart(ChartConfig(symbol="BTCUSDT", spec="1m", chart_type="kagi"), market)
    bars = pd.DatetimeIndex(chart.history["ts"])
    last_start = pd.Timestamp(chart.view.line_starts()[-1], tz="UTC")
    n_lines = len(chart.view.line_starts())
    # a note half way along the newest line, a horizontal line two lines past the end
    chart.drawings.notes.data = {"x": [n_lines - 0.5], "y": [101_000.0], "text": ["here"]}
    chart.drawings.hlines.data = {"x": [n_lines + 2.0], "y": [100_000.0]}
    drawn = chart.state().drawings
    assert [d["kind"] for d in drawn] == ["hline", "text"]
    assert pd.Timestamp(drawn[1]["points"][0]["t"]) >= last_start
    assert _line_of(chart, drawn[1]["points"][0]["t"]) == n_lines - 1
    assert pd.Timestamp(drawn[0]["points"][0]["t"]) == bars[-1]  # (past the end: the last bar)
    assert drawn[0]["points"][0]["dx"] > 1
    moved = [chart.drawings.notes.data["x"][0]]

    def at(point):  # a point's place in the bars (past the last bar: t + dx is a later bar's)
        ts = pd.DatetimeIndex(chart.history["ts"])
        return ts.get_loc(pd.Timestamp(point["t"])) + point["dx"], point["price"]
    for _ in _live(market, [chart], _trades(f"{DAY} 12:00", f"{DAY} 13:00", seed=9)):
        moved.append(chart.drawings.notes.data["x"][0])
        now = chart.state().drawings
        assert now[1] == drawn[1]
        assert at(now[0]["points"][0]) == pytest.approx(at(drawn[0]["points"][0]))
    starts = chart.view.line_starts()
    assert len(starts) > n_lines + 5
    # the note is inside the line that held its bar, which has ended since
    note_x = chart.drawings.notes.data["x"][0]
    assert int(np.floor(note_x)) == _line_of(chart, drawn[1]["points"][0]["t"]) == n_lines - 1
    assert len(set(moved)) > 1  # (placed again while its line grew)
