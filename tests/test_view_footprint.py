"""The footprint chart and the delta/CVD panes: what they put in their Bokeh sources, from whole
frames and live (the forming column patched in place, closed bars never sent again)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bokeh.document import Document
from bokeh.document.events import (ColumnDataChangedEvent, ColumnsPatchedEvent,
                                   ColumnsStreamedEvent, ModelChangedEvent)
from bokeh.layouts import column
from bokeh.models import CustomJSFilter, GroupFilter, Text

from dashboards.components.colour_scales import blend
from dashboards.components.delta import CVDPane, DeltaPane
from dashboards.components.footprint import FootprintChart
from dashboards.components.footprint_cells import (CELL_MID, format_size, raster, shared_parts,
                                                   signed_size)
from dashboards.components.theme import THEMES
from indicators.orderflow import cvd, cvd_candles, group_ticks, imbalances
from tradeflow.bars import BarAggregator, build
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.model import BAR_COLUMNS, Instrument

ES = Instrument("ES", 0.25, exchange="CME", asset_class="future", point_value=50.0,
                session="America/Chicago 08:30-15:15,17:00-16:00")
WEDNESDAY = pd.Timestamp("2024-03-13", tz="UTC")


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    """Two hours of ES across the 16:00-17:00 CT break (a new trading day at 22:00 UTC)."""
    return MarketSimulator(ES, seed=7).generate(WEDNESDAY + pd.Timedelta("20h30min"),
                                                WEDNESDAY + pd.Timedelta("22h50min")).trades


@pytest.fixture(scope="module")
def built(trades):
    return build(trades, "1m", ES)


def every_cell(chart: FootprintChart) -> dict:
    """The cells drawn: the closed bars' source, then the forming bar's."""
    closed, forming = chart.cells.data, chart.forming.data
    return {k: np.concatenate([np.asarray(closed[k]), np.asarray(forming[k])])
            for k in closed if k in forming}


def per_bar(chart: FootprintChart, column: str) -> np.ndarray:
    d = every_cell(chart)
    return pd.Series(np.asarray(d[column], float)).groupby(np.asarray(d["x"])).sum().to_numpy()


def zoom(chart: FootprintChart, x0, x1, y0, y1, w=1200, h=600):
    """What the browser reports when the user zooms (the server answers it)."""
    chart.viewport.data = {"x0": [x0], "x1": [x1], "y0": [y0], "y1": [y1], "w": [w], "h": [h]}


def reported(chart: FootprintChart, w, h):
    """The page's first report: the view the load chose, at the plot's real size."""
    zoom(chart, chart.x_range.start, chart.x_range.end, chart.y_range.start, chart.y_range.end,
         w=w, h=h)


def test_cells_sum_to_each_bars_volume_and_sides(built):
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES)
    assert np.array_equal(np.unique(chart.cells.data["x"]), np.arange(len(bars)))
    np.testing.assert_allclose(per_bar(chart, "volume"), bars["volume"])
    np.testing.assert_allclose(per_bar(chart, "ask"), bars["ask_volume"])
    np.testing.assert_allclose(per_bar(chart, "bid"), bars["bid_volume"])
    # each cell at its price, ask and bid on their own sides
    d = chart.cells.data
    bar_ts = bars["ts"].to_numpy()
    shown = pd.DataFrame({"ts": bar_ts[np.asarray(d["x"])], "tick": d["tick"], "ask": d["ask"],
                          "bid": d["bid"], "y": d["y"]})
    both = shown.merge(cells, on=["ts", "tick"], validate="one_to_one")
    assert len(both) == len(cells)
    np.testing.assert_allclose(both["ask"], both["ask_volume"])
    np.testing.assert_allclose(both["bid"], both["bid_volume"])
    np.testing.assert_allclose(both["y"], both["tick"] * ES.tick_size)


def tiny():
    """Two bars: bar 0 trades 12 at the bid and 30 at the ask at 4000.00, 5 x 0 at 4000.25."""
    ts = pd.to_datetime(["2024-03-13 15:00", "2024-03-13 15:01"], utc=True)
    bars = pd.DataFrame({"ts": ts, "open": [4000.0, 4000.25], "high": [4000.25, 4000.5],
                         "low": [4000.0, 4000.25], "close": [4000.25, 4000.5],
                         "volume": [47.0, 9.0], "ask_volume": [30.0, 9.0],
                         "bid_volume": [17.0, 0.0], "delta": [13.0, 9.0], "trades": [9, 3],
                         "open_interest": [np.nan, np.nan]})[list(BAR_COLUMNS)]
    cells = pd.DataFrame({"ts": ts[[0, 0, 1, 1]], "tick": [16000, 16001, 16001, 16002],
                          "volume": [42.0, 5.0, 4.0, 5.0], "ask_volume": [30.0, 0.0, 4.0, 5.0],
                          "bid_volume": [12.0, 5.0, 0.0, 0.0], "trades": [6, 3, 1, 2]})
    return bars, cells


def test_bid_left_ask_right_in_the_numbers():
    bars, cells = tiny()
    chart = FootprintChart(bars, cells, instrument=ES)
    zoom(chart, -0.5, 1.5, 3999.5, 4001.0)
    assert chart.zoomed_in
    t = chart.text.data
    at = {(x, y): (left, right) for x, y, left, right in
          zip(t["x"], t["y"], t["left"], t["right"])}
    assert at[(CELL_MID, 4000.0)] == ("12", "30")
    assert at[(CELL_MID, 4000.25)] == ("5", "0")
    assert at[(1 + CELL_MID, 4000.5)] == ("0", "5")
    # the ask of 30 against 5 at the bid one level down... is not 3x the bid diagonally below
    # 4000.25's ask (0); the bid of 12 at 4000.00 vs the ask of 0 above it: a sell imbalance
    styles = dict(zip(zip(t["x"], t["y"]), t["lstyle"]))
    assert styles[(CELL_MID, 4000.0)] == "bold"
    chart.cell = "delta"
    centre = dict(zip(zip(chart.text.data["x"], chart.text.data["y"]), chart.text.data["center"]))
    assert centre[(CELL_MID, 4000.0)] == "+18" and centre[(CELL_MID, 4000.25)] == "-5"


def test_bid_ask_is_two_words_a_cell_each_coloured_by_its_sides_imbalance(built):
    """Each word is a text the browser measures and paints at every repaint: bid x ask writes
    the two numbers only (no "x" between), and only the cell mode's words are drawn; each side
    keeps its imbalance colour and weight."""
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES, imbalance_ratio=2.0)
    assert chart.zoomed_in
    theme = THEMES[chart.theme]
    up, down = (blend(c, theme.text, 0.3) for c in (theme.up, theme.down))

    def drawn():
        return sorted((r.glyph.text, "closed" if r.data_source is chart.text else "forming")
                      for r in chart.figure.renderers if isinstance(r.glyph, Text)
                      and r.data_source in (chart.text, chart.forming) and r.visible)

    assert drawn() == [("left", "closed"), ("left", "forming"), ("right", "closed"),
                       ("right", "forming")]
    t = chart.text.data
    assert len(t["x"]) and set(t["center"]) == {""}
    imb = dict(zip(zip(np.asarray(chart.cells.data["x"]) + CELL_MID, chart.cells.data["y"]),
                   chart.cells.data["imb"]))
    sides = np.array([imb[xy] for xy in zip(t["x"], t["y"])])
    assert (sides > 0).any() and (sides < 0).any()
    np.testing.assert_array_equal(t["lcolor"], np.where(sides < 0, down, theme.text))
    np.testing.assert_array_equal(t["rcolor"], np.where(sides > 0, up, theme.text))
    np.testing.assert_array_equal(t["lstyle"], np.where(sides < 0, "bold", "normal"))
    np.testing.assert_array_equal(t["rstyle"], np.where(sides > 0, "bold", "normal"))
    chart.cell = "delta"  # one number a cell, in the middle
    assert drawn() == [("center", "closed"), ("center", "forming")]
    assert set(chart.text.data["left"]) == set(chart.text.data["right"]) == {""}


def test_large_sources_are_drawn_through_the_in_view_filter(built):
    """BokehJS paints every row of a glyph at each repaint, in view or not: the renderers of
    the day's bars and cells draw the rows of the bars in view only (``_IN_VIEW``, run in the
    browser: ``test_view_footprint_browser``); the forming bar's small sources need none."""
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES)
    large = {id(s) for s in (chart.cells, chart.bars.source, chart.stacked.closed,
                             chart.zeros.closed, chart.unfinished.closed)}
    # (the cells closed since the zoomed-out image was rendered are a few rows of their own)
    renderers = [r for fig in (chart.figure, chart.totals) for r in fig.renderers
                 if id(r.data_source) in large and not isinstance(r.view.filter, GroupFilter)]
    assert len(renderers) >= 14  # cells, profile, candle, POC, the marks, the totals row
    for r in renderers:
        assert isinstance(r.view.filter, CustomJSFilter), r.glyph
        assert r.view.filter.args["xr"] is chart.x_range
    assert len({id(r.view) for r in renderers}) == len(renderers)  # a view is its renderer's
    small = [r for r in chart.figure.renderers if r.data_source is chart.forming]
    assert small and all(not isinstance(r.view.filter, CustomJSFilter) for r in small)


def test_numbers_are_written_only_where_they_fit_their_cell():
    """Whole-number sizes (``12 x 30``) fit a bar 60 px wide; crypto's fractional sizes
    (``0.012 x 0.03``) would spill into the next bar there, so the cells are drawn without
    numbers until the bars are wide enough for them."""
    bars, cells = tiny()
    whole = FootprintChart(bars, cells, instrument=ES)
    reported(whole, w=120, h=108)  # the page's size is known: the zoom below is the user's
    zoom(whole, -0.5, 1.5, 3999.5, 4001.0, w=120, h=108)  # bars 60 px, rows 18 px
    assert whole.zoomed_in and len(whole.text.data["x"]) == 4
    crypto = bars.copy()
    crypto[["volume", "ask_volume", "bid_volume", "delta"]] /= 1000
    fractional = cells.copy()
    fractional[["volume", "ask_volume", "bid_volume"]] /= 1000
    chart = FootprintChart(crypto, fractional, instrument=ES)
    reported(chart, w=120, h=108)
    zoom(chart, -0.5, 1.5, 3999.5, 4001.0, w=120, h=108)
    assert not chart.zoomed_in and len(chart.text.data["x"]) == 0
    assert len(chart.image.data["image"]) == 1
    zoom(chart, -0.5, 1.5, 3999.5, 4001.0, w=280, h=108)  # bars 140 px
    assert chart.zoomed_in and "0.012" in list(chart.text.data["left"])
    # the font that fits: 5 digits a side in a 102 px cell, not more than the row's 11 px
    sizes = {r.glyph.text_font_size for r in chart.figure.renderers if isinstance(r.glyph, Text)}
    assert sizes == {"11px"}


def test_row_ticks_merge_cells_and_keep_volume(built):
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES)
    before = len(chart.cells.data["x"])
    chart.row_ticks = 4
    d = chart.cells.data
    assert len(d["x"]) < before
    assert (np.asarray(d["tick"]) % 4 == 0).all()
    np.testing.assert_allclose(per_bar(chart, "volume"), bars["volume"])
    np.testing.assert_allclose(per_bar(chart, "delta"), bars["ask_volume"] - bars["bid_volume"])
    # a row's volume is the sum of its four ticks
    rows = group_ticks(cells, 4)
    np.testing.assert_allclose(np.sort(np.asarray(d["volume"])), np.sort(rows["volume"]))
    np.testing.assert_allclose(np.asarray(d["y"]), (np.asarray(d["tick"]) + 1.5) * ES.tick_size)


def test_imbalances_follow_the_ratio(built):
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES, imbalance_ratio=2.0)
    flags = imbalances(cells, ratio=2.0)
    imb = np.asarray(chart.cells.data["imb"])
    assert (imb != 0).sum() == (flags["buy"] | flags["sell"]).sum() > 0
    chart.imbalance_ratio = 6.0
    fewer = (np.asarray(chart.cells.data["imb"]) != 0).sum()
    strict = imbalances(cells, ratio=6.0)
    assert fewer == (strict["buy"] | strict["sell"]).sum() < (imb != 0).sum()


def test_text_only_for_cells_in_view_and_image_zoomed_out(built):
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES)
    lo = float(bars["low"].iloc[40:48].min())
    zoom(chart, 39.5, 47.5, lo, lo + 5.0)  # 8 bars, 20 rows: readable
    assert chart.zoomed_in
    t = chart.text.data
    d = chart.cells.data
    x, y = np.asarray(d["x"]), np.asarray(d["y"])
    inside = (x >= 39) & (x <= 48) & (y >= lo - 0.25) & (y <= lo + 5.25)
    assert 0 < len(t["x"]) == inside.sum() < len(x)
    assert ((np.asarray(t["x"]) - CELL_MID >= 39) & (np.asarray(t["x"]) - CELL_MID <= 48)).all()
    assert ((np.asarray(t["y"]) >= lo - 0.25) & (np.asarray(t["y"]) <= lo + 5.25)).all()
    assert chart.image.data["image"] == []
    # zoomed out: no numbers, the cells are one image with coloured pixels
    zoom(chart, -0.5, len(bars) - 0.5, float(bars["low"].min()), float(bars["high"].max()))
    assert not chart.zoomed_in
    assert len(chart.text.data["x"]) == 0
    img, im = chart.image.data["image"][0], chart.image.data
    h, w = img.shape
    # every cell's middle is a coloured pixel; the candles' quarter of each bar is not
    cx, cy = x + CELL_MID, y
    col = ((cx - im["x"][0]) / im["dw"][0] * w).astype(int)
    row = ((cy - im["y"][0]) / im["dh"][0] * h).astype(int)
    assert h > 100 and ((img[row, col] >> 24) > 0).all()
    candle = ((x - 0.4 - im["x"][0]) / im["dw"][0] * w).astype(int)
    assert ((img[row, candle] >> 24) == 0).mean() > 0.9


def test_totals_row_holds_volume_delta_and_session_cvd(built):
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES)
    b = chart.bars.source.data
    np.testing.assert_allclose(b["volume"], bars["volume"])
    np.testing.assert_allclose(b["delta"], bars["ask_volume"] - bars["bid_volume"])
    expected = cvd(bars, ES.session)
    np.testing.assert_allclose(b["cvd"], expected)
    days = ES.session.trading_date(bars["ts"])
    assert days.nunique() == 2  # the data crosses a reset
    assert list(b["vol_text"][:3]) == [format_size(v) for v in bars["volume"][:3]]


class Recorder:
    """Every change the sources send to the browser."""

    def __init__(self, chart, *models):
        self.doc = Document()
        self.doc.add_root(column(*models))
        self.events = []
        self.doc.on_change(self.events.append)

    def of(self, source):
        return [e for e in self.events if getattr(e, "model", None) is source]


def live(trades, batches=40, split=0.4):
    """A snapshot of the first trades, then the updates of the rest in ``batches``."""
    agg = BarAggregator(ES, "1m")
    head = int(len(trades) * split)
    first = agg.update(trades.iloc[:head])
    parts = np.array_split(np.arange(head, len(trades)), batches)
    return first, (agg.update(trades.iloc[p]) for p in parts)


def test_live_patches_the_forming_column_and_never_resends_closed_bars(trades, built):
    first, updates = live(trades, batches=300)  # several updates a bar
    chart = FootprintChart(instrument=ES)
    chart.load(first.closed, first.closed_footprint, current=first.current,
               current_footprint=first.current_footprint)
    rec = Recorder(chart, chart.figure, chart.totals)
    patched_forming = streamed_bars = 0
    for update in updates:
        closed_before = chart.closed_count       # bars 0 .. closed_before-1 are final
        rec.events.clear()
        chart.apply(update)
        # the closed cells' source only grows, by the bars that closed; the forming bar's
        # source holds that bar alone, patched in place or (new rows, a new bar) replaced
        for e in rec.of(chart.cells):
            assert isinstance(e, ColumnsStreamedEvent), f"closed cells sent again: {e}"
            assert (np.asarray(e.data["x"]) >= closed_before).all()
        # (in place: only the columns that changed, as whole columns of the bar's few rows)
        patched_forming += sum(isinstance(e, ColumnDataChangedEvent) and e.cols is not None
                               and "tick" not in e.cols for e in rec.of(chart.forming))
        assert (np.asarray(chart.forming.data["x"]) == chart.forming_x).all()
        assert (np.asarray(chart.cells.data["x"]) < chart.closed_count).all()
        for e in rec.of(chart.bars.source):
            if isinstance(e, ColumnsStreamedEvent):
                assert (np.asarray(e.data["x"]) >= closed_before).all()
                streamed_bars += len(e.data["x"])
            elif isinstance(e, ColumnsPatchedEvent):
                for rows in e.patches.values():
                    for index, _ in rows:
                        assert (index.start if isinstance(index, slice) else index) == closed_before
            else:
                assert not isinstance(e, (ModelChangedEvent, ColumnDataChangedEvent))
    assert patched_forming > 10 and streamed_bars > 10
    # what the chart holds now is the footprint of every trade
    bars, cells = built
    np.testing.assert_allclose(per_bar(chart, "volume"), bars["volume"])
    np.testing.assert_allclose(per_bar(chart, "ask"), bars["ask_volume"])
    b = chart.bars.source.data
    np.testing.assert_allclose(b["close"], bars["close"])
    np.testing.assert_allclose(b["cvd"], cvd(bars, ES.session))
    assert len(every_cell(chart)["x"]) == len(cells)
    # the marks of closed bars equal a fresh chart's
    fresh = FootprintChart(instrument=ES)
    fresh.load(bars.iloc[:-1], cells[cells["ts"] < bars["ts"].iloc[-1]],
               current=bars.iloc[-1:], current_footprint=cells[cells["ts"] == bars["ts"].iloc[-1]])
    for layer in ("stacked", "zeros", "unfinished"):
        mine, theirs = getattr(chart, layer).closed.data, getattr(fresh, layer).closed.data
        np.testing.assert_allclose(np.sort(np.asarray(mine["x"], float)),
                                   np.sort(np.asarray(theirs["x"], float)))
    assert sorted(zip(chart.naked.data["x"], chart.naked.data["y"])) == \
        sorted(zip(fresh.naked.data["x"], fresh.naked.data["y"]))


def test_the_forming_bar_has_a_source_of_its_own_shared_by_the_sessions(trades):
    """A live update changes the forming bar's small source only (Bokeh compares every column
    of a source it patches: the closed cells are thousands of rows); the closed cells' source
    only grows by the bars that close. Two sessions' charts hold the same arrays for what they
    send of the forming bar (its rows are the same for both, computed once); and the two
    sources together equal a fresh load of the same trades."""
    first, updates = live(trades, batches=300)
    charts = [FootprintChart(instrument=ES) for _ in range(2)]
    for chart in charts:
        chart.load(first.closed, first.closed_footprint, current=first.current,
                   current_footprint=first.current_footprint)
    recs = [Recorder(chart, chart.figure, chart.totals) for chart in charts]
    closes = sent = 0
    for update in updates:
        before = charts[0].closed_count
        for rec in recs:
            rec.events.clear()
        for chart in charts:
            chart.apply(update)
        closes += charts[0].closed_count > before
        kinds = [type(e) for e in recs[0].of(charts[0].cells)]
        assert kinds == ([ColumnsStreamedEvent] if charts[0].closed_count > before else []), kinds
        mine, yours = (chart.forming.data for chart in charts)
        for e in recs[0].of(charts[0].forming):
            for col in (e.cols if e.cols is not None else mine):
                if col not in ("x", "px"):  # (each chart's own bar numbers)
                    assert mine[col] is yours[col] and not mine[col].flags.writeable, col
                    sent += 1
    assert closes > 10 and sent > 100
    chart = charts[0]
    bars, cells = build(trades, "1m", ES)
    fresh = FootprintChart(instrument=ES)
    now = cells["ts"] == bars["ts"].iloc[-1]
    fresh.load(bars.iloc[:-1], cells[~now], current=bars.iloc[-1:], current_footprint=cells[now])
    for source in ("cells", "forming"):
        held, want = getattr(chart, source).data, getattr(fresh, source).data
        order, want_order = (np.lexsort((d["tick"], d["x"])) for d in (held, want))
        for col in held:
            if col != "layer":  # (the fresh chart drew them into its image)
                assert list(np.asarray(held[col])[order]) == \
                    list(np.asarray(want[col])[want_order]), (source, col)


def test_naked_pocs_live_equal_a_fresh_charts_after_every_few_updates(trades):
    # the forming bar's range is judged against the naked POCs' rows only when it grows over
    # one; a fresh chart of the same trades judges every bar
    agg = BarAggregator(ES, "1m")
    head = int(len(trades) * 0.5)
    first = agg.update(trades.iloc[:head])
    chart = FootprintChart(instrument=ES)
    chart.load(first.closed, first.closed_footprint, current=first.current,
               current_footprint=first.current_footprint)
    ends = np.linspace(head, len(trades), 61).astype(int)
    for i, (a, b) in enumerate(zip(ends[:-1], ends[1:])):
        chart.apply(agg.update(trades.iloc[a:b]))
        if i % 6 == 5:
            bars, cells = build(trades.iloc[:b], "1m", ES)
            fresh = FootprintChart(instrument=ES)
            forming = cells["ts"] == bars["ts"].iloc[-1]
            fresh.load(bars.iloc[:-1], cells[~forming], current=bars.iloc[-1:],
                       current_footprint=cells[forming])
            assert sorted(zip(chart.naked.data["x"], chart.naked.data["y"])) == \
                sorted(zip(fresh.naked.data["x"], fresh.naked.data["y"])), f"after update {i}"


def test_live_numbers_follow_the_forming_bar_and_closed_ones_are_sent_once(trades):
    first, updates = live(trades, batches=30, split=0.96)
    chart = FootprintChart(instrument=ES)
    chart.load(first.closed, first.closed_footprint, current=first.current,
               current_footprint=first.current_footprint)
    assert chart.zoomed_in and chart.forming_x is not None  # the load shows the last bars
    # room for the bars to come on the right, at the same scale
    (x0,), (x1,), (y0,), (y1,), (w,), (h,) = (chart.viewport.data[k] for k in
                                              ("x0", "x1", "y0", "y1", "w", "h"))
    reported(chart, w, h)  # the page is as large as the load assumed
    zoom(chart, x0, x1 + 6, y0 - 3, y1 + 3, w=w * (x1 + 6 - x0) / (x1 - x0),
         h=h * (y1 - y0 + 6) / (y1 - y0))
    assert chart.zoomed_in
    rec = Recorder(chart, chart.figure, chart.totals)
    closes = shown = 0
    for update in updates:
        closed_before = chart.closed_count
        rec.events.clear()
        chart.apply(update)
        for e in rec.of(chart.text):
            assert isinstance(e, ColumnsStreamedEvent), "closed cells' numbers sent again"
            assert (np.asarray(e.data["x"]) - CELL_MID >= closed_before).all()
            closes += 1
        # the forming bar's numbers are its cells' own (bid left, ask right), shown zoomed in
        f = chart.forming.data
        assert list(f["left"]) == [format_size(v) for v in f["bid"]]
        assert list(f["right"]) == [format_size(v) for v in f["ask"]]
        words = {r.glyph.text: r.visible for r in chart.figure.renderers
                 if r.data_source is chart.forming and hasattr(r.glyph, "text")}
        assert words == {"left": True, "right": True, "center": False}
        shown += len(f["x"])
    assert closes >= 2 and shown > 0
    # what was streamed is what a fresh look at the same view writes
    held = sorted(zip(chart.text.data["x"], chart.text.data["y"], chart.text.data["left"],
                      chart.text.data["right"]))
    chart.refresh_view()
    assert held == sorted(zip(chart.text.data["x"], chart.text.data["y"], chart.text.data["left"],
                              chart.text.data["right"]))


def test_delta_pane_is_bar_delta_and_cvd_is_its_running_sum(trades, built):
    bars, _ = built
    delta = DeltaPane(bars, instrument=ES)
    np.testing.assert_allclose(delta.source.data["delta"], bars["ask_volume"] - bars["bid_volume"])
    assert list(delta.source.data["x"]) == list(range(len(bars)))
    line = CVDPane(bars, instrument=ES)
    days = ES.session.trading_date(bars["ts"]).asi8
    running = (bars["ask_volume"] - bars["bid_volume"]).groupby(days).cumsum()
    np.testing.assert_allclose(line.source.data["cvd"], running)
    candles = CVDPane(bars, instrument=ES, trades=trades, style="candles")
    ref = cvd_candles(bars, trades=trades, session=ES.session)
    for k in ("open", "high", "low", "close"):
        np.testing.assert_allclose(candles.source.data[k], ref[k])
    line.reset = "none"
    np.testing.assert_allclose(line.source.data["cvd"], (bars["ask_volume"]
                                                         - bars["bid_volume"]).cumsum())


def test_delta_and_cvd_panes_live(trades, built):
    bars, _ = built
    first, updates = live(trades, batches=25)
    delta, line = DeltaPane(instrument=ES), CVDPane(instrument=ES)
    for pane in (delta, line):
        pane.load(first.closed, current=first.current)
    rec = Recorder(None, delta.figure, line.figure)
    for update in updates:
        closed_before = delta.closed_count
        rec.events.clear()
        delta.apply(update)
        line.apply(update)
        for source in (delta.source, line.source):
            for e in rec.of(source):
                assert isinstance(e, (ColumnsStreamedEvent, ColumnsPatchedEvent))
                if isinstance(e, ColumnsStreamedEvent):
                    assert (np.asarray(e.data["x"]) >= closed_before).all()
    np.testing.assert_allclose(delta.source.data["delta"], bars["ask_volume"] - bars["bid_volume"])
    np.testing.assert_allclose(line.source.data["cvd"], cvd(bars, ES.session))


def test_panes_share_the_time_axis_and_crosshair(built):
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES)
    delta = DeltaPane(bars, instrument=ES, x_range=chart.x_range, crosshair=chart.crosshair)
    assert delta.figure.x_range is chart.figure.x_range is chart.totals.x_range
    assert chart.crosshair in delta.figure.tools and chart.crosshair in chart.figure.tools
    # the value axis fits the bars in view (the last ones after a load), not the whole history
    x = np.arange(len(bars))
    d = (bars["ask_volume"] - bars["bid_volume"]).to_numpy()
    seen = d[(x >= chart.x_range.start) & (x <= chart.x_range.end)]
    lo, hi = min(seen.min(), 0), max(seen.max(), 0)
    assert delta.y_range.start < lo and delta.y_range.end > hi
    assert delta.y_range.end - delta.y_range.start < 1.2 * (hi - lo) + 2
    assert (hi - lo) < 0.8 * (d.max() - min(d.min(), 0))


def test_theme_restyles_in_place(built):
    bars, cells = built
    chart = FootprintChart(bars, cells, instrument=ES)
    dark = list(chart.cell_colours.palette)
    chart.theme = "light"
    assert chart.figure.background_fill_color == "#ffffff"
    assert list(chart.cell_colours.palette) != dark
    with pytest.raises(ValueError):
        FootprintChart(bars, cells)  # no instrument


def test_charts_on_one_stream_share_the_work_of_an_update(trades):
    first, updates = live(trades, batches=8)
    charts = [FootprintChart(instrument=ES), FootprintChart(instrument=ES, row_ticks=2)]
    twin = FootprintChart(instrument=ES)
    for chart in charts + [twin]:
        chart.load(first.closed, first.closed_footprint, current=first.current,
                   current_footprint=first.current_footprint)
    for update in updates:
        for chart in charts + [twin]:
            chart.apply(update)
        same = shared_parts(update, ES, 1, 3.0)
        assert shared_parts(update, ES, 1, 3.0) is same            # computed once
        assert shared_parts(update, ES, 2, 3.0) is not same        # other settings: their own
    for name in ("x", "tick", "volume", "ask", "bid", "imb"):
        assert list(every_cell(twin)[name]) == list(every_cell(charts[0])[name])
    np.testing.assert_allclose(per_bar(charts[1], "volume"), per_bar(charts[0], "volume"))


def test_subscribers_own_updates_of_one_commit_share_the_work(trades):
    # the hub gives every subscriber its own Update (studies, book, tape differ) over the
    # stream's same frames: those are what the work is shared by
    from dataclasses import replace

    from tradeflow.live.hub import Update
    _, updates = live(trades, batches=3)
    u = list(updates)[-1]
    update = Update(u.closed, u.closed_footprint, u.current, u.current_footprint)
    mine, yours = replace(update), replace(update, studies={"x": None})
    assert mine is not yours
    assert shared_parts(yours, ES, 1, 3.0) is shared_parts(mine, ES, 1, 3.0)
    other = replace(update, current_footprint=update.current_footprint.copy())
    assert shared_parts(other, ES, 1, 3.0) is not shared_parts(mine, ES, 1, 3.0)


def test_bad_input_is_refused_with_one_clear_line():
    bars, cells = tiny()
    stray = cells.assign(ts=cells["ts"] + pd.Timedelta("30s"))
    with pytest.raises(ValueError, match="cells belong to no bar"):
        FootprintChart(bars, stray, instrument=ES)
    chart = FootprintChart(bars, cells, instrument=ES)
    with pytest.raises(ValueError, match="imbalance_ratio"):
        chart.imbalance_ratio = 1.0   # 100% is no imbalance
    with pytest.raises(ValueError, match="cell"):
        chart.cell = "pie"
    assert chart.imbalance_ratio == 3.0 and chart.cell == "bid_ask"


def test_zoomed_out_live_updates_leave_the_image_alone(trades):
    first, updates = live(trades, batches=30, split=0.9)
    chart = FootprintChart(instrument=ES)
    chart.load(first.closed, first.closed_footprint, current=first.current,
               current_footprint=first.current_footprint)
    n = chart.closed_count
    zoom(chart, -0.5, n + 10, float(first.closed["low"].min()) - 5,
         float(first.closed["high"].max()) + 5)
    assert not chart.zoomed_in and len(chart.image.data["image"]) == 1
    rec = Recorder(chart, chart.figure, chart.totals)
    for update in updates:
        chart.apply(update)
    assert chart.closed_count > n + 2
    assert not rec.of(chart.image)  # no render, no bytes of image per update
    d = chart.cells.data
    x, layer = np.asarray(d["x"]), np.asarray(d["layer"])
    # the bars that closed live, and the forming one, are drawn as rects beside the image
    assert (layer[x >= n] == "rects").all() and (layer[x < n] == "image").all()
    flat = [r for r in chart.figure.renderers if r.data_source is chart.forming and r.visible]
    assert len(flat) == 1 and len(chart.forming.data["x"])  # the forming bar's rects
    # the next look at the view renders them into the image and drops their rects
    chart.refresh_view()
    layer = np.asarray(chart.cells.data["layer"])
    assert (layer == "image").all() and (x < chart.forming_x).all()


BTC = Instrument("BTCUSDT", 0.1, "SIM", "crypto")


def test_the_float_error_of_a_sum_is_written_zero():
    """Sells of 0.1 and 0.2 against a buy of 0.3 at one price: the cell's delta is float error
    (5.6e-17), written ``0`` as the delta of the cell, of its bar and the bar's CVD (it was
    written ``-5.55e-17``)."""
    assert (0.1 + 0.2) - 0.3 != 0  # the float error this is about
    at = WEDNESDAY + pd.Timedelta("14h")
    trades = pd.DataFrame({"ts": at + pd.to_timedelta([1, 2, 3, 61], unit="s"),
                           "price": [50_000.0, 50_000.0, 50_000.0, 50_000.1],
                           "size": [0.1, 0.2, 0.3, 0.004], "side": [-1, -1, 1, 1],
                           "trade_id": [1, 2, 3, 4]})
    bars, cells = build(trades, "1m", BTC)
    chart = FootprintChart(bars, cells, instrument=BTC, row_ticks=1)
    zoom(chart, -0.5, 1.5, 49_999.5, 50_000.5)
    assert chart.zoomed_in  # the numbers are written
    t = chart.text.data
    sides = dict(zip(zip(t["x"], t["y"]), zip(t["left"], t["right"])))
    assert sides[(CELL_MID, 50_000.0)] == ("0.3", "0.3")
    chart.cell = "delta"
    centre = dict(zip(chart.text.data["x"], chart.text.data["center"]))  # a cell a bar
    assert centre == {CELL_MID: "0", 1 + CELL_MID: "+0.004"}
    totals = chart.bars.source.data
    assert list(totals["delta_text"]) == ["0", "+0.004"]
    assert list(totals["cvd_text"]) == ["0", "+0.004"]
    for noise in ((0.1 + 0.2) - 0.3, 0.3 - (0.1 + 0.2)):
        assert format_size(noise) == signed_size(noise) == "0"
    assert (signed_size(0.001), signed_size(-0.001), format_size(1e-8)) == ("+0.001", "-0.001",
                                                                            "1e-08")


def test_automatic_row_size_fits_the_bars_in_view(built):
    """BTC's 1-minute bars span hundreds of 0.1 ticks: the automatic row is coarse (a round
    number of ticks) and the bars in view span about 40 rows; ES 1-minute keeps one tick."""
    trades = MarketSimulator(BTC, seed=3).generate(WEDNESDAY + pd.Timedelta("14h"),
                                                   WEDNESDAY + pd.Timedelta("14h40min")).trades
    bars, cells = build(trades, "1m", BTC)
    chart = FootprintChart(bars, cells, instrument=BTC)
    assert chart.row_ticks == 0 and chart.rows in (2, 5, 10, 25, 50, 100, 250, 500, 1000)
    shown = bars.iloc[chart.first_shown(len(bars)):]
    span_rows = (shown["high"].max() - shown["low"].min()) / (chart.rows * BTC.tick_size)
    assert 40 / 2.5 <= span_rows <= 40
    assert np.all(np.asarray(chart.cells.data["tick"]) % chart.rows == 0)
    np.testing.assert_allclose(per_bar(chart, "volume"), bars["volume"])
    assert f"row {chart.rows} ticks" in chart.figure.title.text
    # every bar opened in view has cells inside the view fitted after the load
    y0, y1 = chart.y_range.start, chart.y_range.end
    d = chart.cells.data
    x, y = np.asarray(d["x"]), np.asarray(d["y"])
    for bar in range(len(bars) - len(shown), len(bars)):
        assert ((x == bar) & (y >= y0) & (y <= y1)).any(), bar
    # and the first view is wide enough for BTC's fractional sizes to be written
    assert chart.zoomed_in and len(chart.text.data["x"]) > 0
    # the page reports a narrower plot than the load assumed: fewer bars, still written
    start = chart.x_range.start
    reported(chart, w=chart.viewport.data["w"][0] * 0.6, h=chart.viewport.data["h"][0])
    assert chart.x_range.start > start and chart.x_range.end == len(bars) + 0.5
    assert chart.zoomed_in and len(chart.text.data["x"]) > 0
    assert chart.viewport.data["x0"] == [chart.x_range.start]
    # later reports are the user's zooms: answered, never refitted
    zoom(chart, 0, len(bars), y0, y1, w=300, h=400)
    assert chart.x_range.start > start and not chart.zoomed_in
    # a row size set by hand is kept; back to automatic, the same choice again
    chart.row_ticks = 1
    assert chart.rows == 1 and chart.figure.title.text.startswith("row 1 tick ")
    chart.row_ticks = 0
    assert chart.rows > 1
    es_bars, es_cells = built
    es = FootprintChart(es_bars, es_cells, instrument=ES)
    assert es.rows == 1 and "row 1 tick" in es.figure.title.text


def test_every_cell_sits_at_its_bars_x_forming_bar_included(trades):
    """Cells and candles at the same x: after a load with a forming bar and after each live
    update (cells are matched to their bar by the bar's price range: a cell lies in it)."""
    first, updates = live(trades, batches=12)
    chart = FootprintChart(instrument=ES)
    chart.load(first.closed, first.closed_footprint, current=first.current,
               current_footprint=first.current_footprint)

    def check():
        b, d = chart.bars.source.data, every_cell(chart)
        assert np.array_equal(np.asarray(b["x"]), np.arange(len(b["x"])))
        x, y = np.asarray(d["x"]), np.asarray(d["y"])
        lo, hi = np.asarray(b["low"])[x], np.asarray(b["high"])[x]
        assert ((y >= lo - 1e-9) & (y <= hi + 1e-9)).all()
        forming = np.asarray(chart.forming.data["x"])
        assert len(forming) and (forming == chart.forming_x).all()
        assert chart.forming_x == len(b["x"]) - 1
        # zoomed in on the forming bar: its numbers are written over its cells
        lo_y, hi_y = float(np.min(b["low"])), float(np.max(b["high"]))
        zoom(chart, chart.forming_x - 3.5, chart.forming_x + 0.5, lo_y - 1, hi_y + 1, w=1200,
             h=int((hi_y - lo_y + 2) / ES.tick_size * 20))
        assert chart.zoomed_in
        texts = [r for r in chart.figure.renderers if r.data_source is chart.forming
                 and hasattr(r.glyph, "text")]
        assert len(texts) == 3 and [r.glyph.text for r in texts if r.visible] == ["left", "right"]
        assert {r.glyph.x.field for r in texts} == {"x"}  # at the forming bar's x, dodged

    check()
    for update in updates:
        chart.apply(update)
        check()


def test_image_of_a_single_price_row():
    """Zoomed in vertically to one row (and out horizontally to one bar), Datashader still
    draws the cells: the grid it is given has at least two coordinates on each axis."""
    cols = {"x": np.array([3, 4]), "y": np.array([100.0, 100.0]), "delta": np.array([1.0, -1.0])}
    palette = ["#ff0000", "#0000ff"]
    img = raster(cols, "delta", (2.5, 4.5), (99.9, 100.1), (200, 100), 0.25, palette, (-1, 1))
    assert img.shape == (100, 200)
    # bar 3 is red (delta -1 -> first colour is for -1: here +1, the last colour) and bar 4 not
    assert len(np.unique(img[50, 60:95])) == 1 and img[50, 60] != 0
    assert img[50, 10] == 0  # the candle's quarter is empty
    assert img[50, 60] != img[50, 160] != 0
    one = raster({"x": np.array([3]), "y": np.array([100.0]), "delta": np.array([1.0])}, "delta",
                 (-100, 100), (99.9, 100.1), (20, 100), 0.25, palette, (-1, 1))
    assert one.shape == (100, 20) and (one != 0).any()


def test_live_updates_keep_text_as_lists_and_skip_property_validation(trades):
    """Bokeh compares every column of a source with itself on each patch: the bars' text
    columns are lists (compared at C speed, not element by element as objects), also after
    bars are streamed; and a live update is applied without Bokeh's property validation."""
    from bokeh.core.property.bases import validation_on

    first, updates = live(trades, batches=60)
    chart = FootprintChart(instrument=ES)
    chart.load(first.closed, first.closed_footprint, current=first.current,
               current_footprint=first.current_footprint)
    seen = []
    chart.bars.source.on_change("data", lambda attr, old, new: seen.append(validation_on()))
    for update in updates:
        chart.apply(update)
    assert seen and not any(seen)
    assert validation_on()  # on again after each update
    data = chart.bars.source.data
    for name in ("dir", "vol_text", "delta_text", "cvd_text", "delta_dir", "cvd_dir"):
        assert isinstance(data[name], list) and len(data[name]) == len(data["x"]), name
    bars, _ = build(trades, "1m", ES)
    assert data["vol_text"] == [format_size(v) for v in bars["volume"]]


@pytest.mark.parametrize("rows", [1, 3])
def test_cell_rows_and_flags_equal_the_studies(built, rows):
    """The footprint's rows and imbalance flags (from the studies' array forms) equal
    ``group_ticks`` and ``imbalances`` over the same cells."""
    from dashboards.components.footprint_cells import cell_columns, open_ns

    bars, cells = built
    got = cell_columns(cells, open_ns(bars), np.arange(len(bars)), ES, rows, 2.5, "closed")
    want = group_ticks(cells, rows)
    flags = imbalances(cells, ratio=2.5, rows=rows)
    assert list(got["tick"]) == list(want["tick"])
    np.testing.assert_array_equal(got["x"], np.searchsorted(open_ns(bars), open_ns(want)))
    for mine, theirs in (("volume", "volume"), ("ask", "ask_volume"), ("bid", "bid_volume"),
                         ("trades", "trades")):
        np.testing.assert_allclose(got[mine], want[theirs], rtol=1e-12)
    buy, sell = flags["buy"].to_numpy(), flags["sell"].to_numpy()
    assert (buy | sell).any()
    np.testing.assert_array_equal(got["imb"] > 0, buy & (~sell | (want["ask_volume"] >= want["bid_volume"])))
    np.testing.assert_array_equal(got["imb"] < 0, sell & ~(got["imb"] > 0))
    largest = pd.Series(got["volume"]).groupby(got["x"]).transform("max").to_numpy()
    np.testing.assert_allclose(got["pw"], got["volume"] / largest)
