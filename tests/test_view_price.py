"""The price chart: what each chart type puts in its Bokeh sources, live updates (closed bars
streamed once, the forming bar patched, never a whole re-send), catalogue studies as overlays
and panes with their levels and display shifts, and -- in Chromium -- every chart type drawn."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from bokeh.document import Document
from bokeh.document.events import (ColumnDataChangedEvent, ColumnsPatchedEvent,
                                   ColumnsStreamedEvent, ModelChangedEvent)
from bokeh.models import Rect, Segment, Span

from dashboards.components.price_chart import PriceChart
from dashboards.components.price_shapes import BAR_TYPES, CHART_TYPES
from indicators.catalogue import CATALOGUE, StudyData
from tradeflow.bars import BarAggregator, build
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.live.hub import Snapshot, Update
from tradeflow.model import Instrument

ES = Instrument("ES", 0.25, exchange="CME", asset_class="future", point_value=50.0,
                session="America/Chicago 08:30-15:15,17:00-16:00")
START = pd.Timestamp("2024-03-13 14:00", tz="UTC")  # a fixed Wednesday, in regular hours
RESENT = (ModelChangedEvent, ColumnDataChangedEvent)  # a source's data sent whole


@pytest.fixture(scope="module")
def trades():
    return MarketSimulator(ES, seed=3, trades_per_day=40_000).generate(
        START, START + pd.Timedelta("3h")).trades


@pytest.fixture(scope="module")
def bars(trades):
    return build(trades, "1m", ES)


def chart(bars_cells, **params) -> PriceChart:
    bars, cells = bars_cells
    return PriceChart(instrument=ES, bars=bars, footprint=cells, **params)


def data(source) -> dict:
    return {k: np.asarray(v) for k, v in source.data.items()}


# ------------------------------------------------------------------------- chart types


def test_candles_are_the_bars_with_bodies_from_open_to_close(bars):
    frame = bars[0]
    d = data(chart(bars).source)
    assert d["x"].tolist() == list(range(len(frame)))
    for k in ("open", "high", "low", "close", "volume", "delta"):
        assert np.array_equal(d[k], frame[k].to_numpy("float64")), k
    o, c = frame["open"].to_numpy(), frame["close"].to_numpy()
    assert np.array_equal(d["top"], np.maximum(o, c))
    assert np.array_equal(d["bottom"], np.minimum(o, c))
    assert d["dir"].tolist() == ["up" if a >= b else "down" for a, b in zip(c, o)]
    assert np.isnan(d["change"][0]) and np.allclose(d["change"][1:], np.diff(c))
    # the fit spans each bar's range; the time labels read local (Chicago, CDT) wall clock
    assert np.array_equal(d["lo"], frame["low"]) and np.array_equal(d["hi"], frame["high"])
    first = pd.to_datetime(d["t"][0], unit="ms")
    assert first == frame["ts"].iloc[0].tz_convert("America/Chicago").tz_localize(None)


def test_heikin_ashi_rows(bars):
    frame = bars[0]
    d = data(chart(bars, chart_type="heikin_ashi").source)
    o, h, l, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
    ha_close = (o + h + l + c) / 4
    assert np.allclose(d["close"], ha_close)
    assert d["open"][0] == pytest.approx((o[0] + c[0]) / 2)
    assert np.allclose(d["open"][1:], (d["open"][:-1] + ha_close[:-1]) / 2)
    assert np.allclose(d["high"], np.maximum.reduce([h, d["open"], ha_close]))


def test_hollow_candles_and_columns_colour_by_the_previous_close(bars):
    frame = bars[0]
    c, o = frame["close"].to_numpy(), frame["open"].to_numpy()
    rising = np.r_[c[0] >= o[0], c[1:] >= c[:-1]]
    hollow = data(chart(bars, chart_type="hollow_candles").source)
    assert hollow["dir"].tolist() == np.where(rising, "up", "down").tolist()
    assert hollow["fill"].tolist() == np.where(c > o, "hollow",
                                               np.where(rising, "up", "down")).tolist()
    cols = data(chart(bars, chart_type="columns").source)
    assert cols["fill"].tolist() == np.where(rising, "up", "down").tolist()
    assert np.array_equal(cols["top"], c) and not cols["bottom"].any()


def test_volume_candles_width_or_colour_by_volume(bars):
    volume = bars[0]["volume"].to_numpy()
    wide = data(chart(bars, chart_type="volume_candles").source)
    order = np.argsort(volume, kind="stable")
    assert np.all(np.diff(wide["width"][order]) >= 0)  # more volume, never narrower
    assert wide["width"].max() == pytest.approx(0.9) and wide["width"].min() < 0.5
    coloured = data(chart(bars, chart_type="volume_candles", volume_candles="colour").source)
    assert np.all(np.diff(coloured["alpha"][order]) >= 0) and coloured["alpha"].min() < 0.6
    assert set(coloured["width"]) == {0.7}


@pytest.mark.parametrize("kind", ["line", "line_markers", "step", "area", "baseline"])
def test_line_types_fit_the_closes(bars, kind):
    d = data(chart(bars, chart_type=kind).source)
    close = bars[0]["close"].to_numpy()
    base = close[0] if kind == "baseline" else None
    want_lo = np.minimum(close, base) if base is not None else close
    want_hi = np.maximum(close, base) if base is not None else close
    assert np.array_equal(d["lo"], want_lo) and np.array_equal(d["hi"], want_hi)


def test_baseline_splits_at_its_base(bars):
    close = bars[0]["close"].to_numpy()
    base = float(np.median(close))
    c = chart(bars, chart_type="baseline", base_price=base)
    d = data(c.source)
    assert np.array_equal(d["above"], np.maximum(close, base))
    assert np.array_equal(d["below"], np.minimum(close, base))
    spans = [r for r in c._layout.children[1].center if isinstance(r, Span)]
    assert base in [s.location for s in spans]


def test_hlc_area_and_high_low_span_the_bars(bars):
    frame = bars[0]
    for kind in ("hlc_area", "high_low"):
        d = data(chart(bars, chart_type=kind).source)
        assert np.array_equal(d["lo"], frame["low"]) and np.array_equal(d["hi"], frame["high"])
    d = data(chart(bars, chart_type="high_low").source)
    assert np.array_equal(d["top"], frame["high"]) and np.array_equal(d["bottom"],
                                                                        frame["low"])


def test_renko_bricks_have_no_wicks_and_range_bars_do(trades):
    renko = chart(build(trades, "RK4", ES), chart_type="renko", spec="RK4")
    price = renko._layout.children[1]
    glyphs = [r.glyph for r in price.renderers]
    assert not any(isinstance(g, Segment) for g in glyphs)
    assert any(isinstance(g, Rect) for g in glyphs)
    d = data(renko.source)
    assert np.allclose((d["top"] - d["bottom"])[:-1], 4 * ES.tick_size)  # closed: one brick
    ranged = chart(build(trades, "R8", ES), chart_type="range", spec="R8")
    assert any(isinstance(r.glyph, Segment) for r in ranged._layout.children[1].renderers)
    assert (data(ranged.source)["high"] - data(ranged.source)["low"]).max() <= 8 * ES.tick_size


def test_every_type_is_offered_and_bad_input_says_what_was_wrong(bars):
    assert set(BAR_TYPES) < set(CHART_TYPES)
    assert {"kagi", "point_and_figure", "line_break"} <= set(CHART_TYPES)
    with pytest.raises(ValueError, match="lacks delta"):
        PriceChart(instrument=ES, bars=bars[0].drop(columns=["delta"]))
    with pytest.raises(ValueError, match="unknown study 'NOPE'"):
        PriceChart(instrument=ES, studies=[("NOPE", {})])
    with pytest.raises(ValueError, match="profile"):
        PriceChart(instrument=ES, studies=[("volume_profile", {})])
    with pytest.raises(ValueError, match="reads trades"):  # only the hub's snapshot has it
        chart(bars, studies=[("cvd_candles", {})])


# -------------------------------------------------------------------------------- live


def feed(trades, spec, pieces):
    """The aggregator's updates of ``trades`` cut into ``pieces`` batches."""
    agg = BarAggregator(ES, spec)
    cuts = np.linspace(0, len(trades), pieces + 1).astype(int)
    return [agg.update(trades.iloc[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


class Events:
    """The document events a chart's sources cause (what Bokeh sends the browser)."""

    def __init__(self, c: PriceChart):
        self.doc = Document()
        self.doc.add_root(c._layout)
        self.log = []
        self.doc.on_change(self.log.append)

    def of(self, source):
        return [e for e in self.log if getattr(e, "model", None) is source
]


@pytest.mark.parametrize("kind", ["candles", "heikin_ashi", "hollow_candles", "line"])
def test_live_updates_stream_closed_bars_and_patch_the_forming_one(trades, kind):
    updates = feed(trades, "1m", 40)
    first = updates[0]
    c = PriceChart(instrument=ES, chart_type=kind, studies=[("EMA", {"timeperiod": 5})])
    ema = CATALOGUE.get("EMA").live(ES, timeperiod=5)
    c.load(Snapshot(first.closed, first.closed_footprint, first.current,
                    first.current_footprint, {"EMA": ema.apply(first)["EMA"].rows}))
    events = Events(c)
    held_closed = len(first.closed)
    for up in updates[1:]:
        seen = len(events.log)
        c.apply(Update(up.closed, up.closed_footprint, up.current, up.current_footprint,
                       {"EMA": ema.apply(up)["EMA"]}))
        for e in events.log[seen:]:
            if isinstance(e, ColumnsPatchedEvent) and e.model is c.source:
                starts = {p[0].start for col in e.patches.values() for p in col}
                assert starts == {held_closed}  # the forming row only: closed rows stay
        held_closed += len(up.closed)
    mine = events.of(c.source)
    assert mine and not any(isinstance(e, RESENT) for e in mine)  # no whole re-send
    assert any(isinstance(e, ColumnsPatchedEvent) for e in mine)
    streamed = sum(len(e.data["x"]) for e in mine if isinstance(e, ColumnsStreamedEvent))
    everything = build(trades, "1m", ES)[0]
    assert streamed == len(everything) - len(first.closed) - len(first.current)
    # what the chart holds equals a chart loaded with all the bars at once
    whole = PriceChart(instrument=ES, bars=everything, chart_type=kind,
                       studies=[("EMA", {"timeperiod": 5})])
    for k in whole.source.data:
        assert _same(list(c.source.data[k]), list(whole.source.data[k])), k
    lines = c.layers[0].source.data
    assert np.allclose(lines["EMA"], whole.layers[0].source.data["EMA"], equal_nan=True)
    assert np.array_equal(lines["x"], whole.layers[0].source.data["x"])
    assert not any(isinstance(e, RESENT) for e in events.of(c.layers[0].source))


def test_a_frame_load_then_updates_do_not_duplicate_the_forming_bar(trades):
    updates = feed(trades, "5m", 12)
    head = pd.concat([updates[0].closed, updates[0].current], ignore_index=True)
    c = PriceChart(instrument=ES, bars=head, spec="5m")
    for up in updates[1:]:
        c.apply(Update(up.closed, up.closed_footprint, up.current, up.current_footprint))
    want = build(trades, "5m", ES)[0]
    assert np.array_equal(np.asarray(c.source.data["close"]), want["close"].to_numpy())
    assert c.readout.text.count(f"{want['close'].iloc[-1]:,.2f}") >= 1  # the last bar's readout


def _same(a, b) -> bool:
    return all((x == y) or (isinstance(x, float) and np.isnan(x) and np.isnan(y))
               for x, y in zip(a, b)) and len(a) == len(b)


# ----------------------------------------------------------------------------- studies


def test_overlays_go_on_the_price_and_panes_below_with_their_levels(bars):
    c = chart(bars, studies=[("EMA", {"timeperiod": 20}), ("RSI", {}), ("cvd", {})],
              show_volume=True)
    readout, price, volume, rsi, cvd = c._layout.children
    ema, rsi_layer, cvd_layer = c.layers
    assert ema.draws == "overlay" and any(r.data_source is ema.source for r in price.renderers)
    assert any(r.data_source is rsi_layer.source for r in rsi.renderers)
    assert any(r.data_source is cvd_layer.source for r in cvd.renderers)
    assert sorted(s.location for s in rsi.center if isinstance(s, Span)) == [30.0, 70.0]
    assert all(s.line_dash == [6] or s.line_dash == "dashed" or s.line_dash
               for s in rsi.center if isinstance(s, Span))
    # panes share the x range and the crosshair; only the bottom one labels time
    assert {id(f.x_range) for f in (price, volume, rsi, cvd)} == {id(c.x_range)}
    assert all(c.crosshair in f.tools for f in (price, volume, rsi, cvd))
    assert [f.xaxis[0].visible for f in (price, volume, rsi, cvd)] == [False, False, False, True]
    # the values are the catalogue's
    want = CATALOGUE.get("RSI").batch(_data(bars), timeperiod=14)
    assert np.allclose(rsi_layer.source.data["RSI"], want["RSI"], equal_nan=True)


def _data(bars):
    from indicators.catalogue import StudyData
    return StudyData(ES, bars=bars[0], footprint=bars[1], spec="1m")


@pytest.mark.parametrize("displacement", [26, 10])
def test_ichimoku_spans_are_drawn_ahead_and_the_lagging_line_behind(bars, displacement):
    c = chart(bars, studies=[("ICHIMOKU", {"displacement": displacement})])
    (layer,) = c.layers
    d = data(layer.source)
    k = displacement - 1
    assert np.array_equal(d["x_ICHIMOKU_senkou_a"], d["x"] + k)
    assert np.array_equal(d["x_ICHIMOKU_senkou_b"], d["x"] + k)
    assert np.array_equal(d["x_ICHIMOKU_chikou"], d["x"] - k)
    assert "x_ICHIMOKU_tenkan" not in d
    last = len(bars[0]) - 1
    assert c.x_range.end > last + k  # the view reaches the spans' end
    price = c._layout.children[1]
    drawn = {r.glyph.x for r in price.renderers if r.data_source is layer.source
             and hasattr(r.glyph, "y")}
    assert "x_ICHIMOKU_senkou_a" in drawn and "x_ICHIMOKU_chikou" in drawn


def test_markers_of_events_sit_on_the_bar_holding_them(trades, bars):
    frame = CATALOGUE.get("big_trades").batch(_trades_data(trades, bars), min_size=8)
    assert len(frame)
    c = PriceChart(instrument=ES, studies=[("big_trades", {"min_size": 8})])
    c.load(bars[0], bars[1], studies={"big_trades": frame})  # (trades: the hub's snapshot)
    (layer,) = c.layers
    x = np.asarray(layer.source.data["x"], "int64")
    opens = bars[0]["ts"].to_numpy()
    for i in range(0, len(frame), max(1, len(frame) // 20)):
        t = frame["ts"].to_numpy()[i]
        assert opens[x[i]] <= t and (x[i] + 1 == len(opens) or t < opens[x[i] + 1])


def _trades_data(trades, bars):
    from indicators.catalogue import StudyData
    return StudyData(ES, bars=bars[0], footprint=bars[1], trades=trades, spec="1m")


def test_theme_change_restyles_without_sending_data(bars):
    c = chart(bars, studies=[("RSI", {})])
    events = Events(c)
    c.theme = "light"
    assert c._layout.children[1].background_fill_color == "#ffffff"
    assert c._dir_map.palette == ["#089981", "#f23645"]
    assert not events.of(c.source) and not events.of(c.layers[0].source)


# ---------------------------------------------------- Kagi, Point & Figure, Line Break

TRANSFORM_SETTINGS = {"kagi": {"reversal": 8}, "point_and_figure": {"box": 4, "reversal": 3},
                      "line_break": {"lines": 3}}


def test_line_break_bricks_kagi_lines_and_pnf_boxes(bars):
    import tradeflow.bar_transforms as kinds
    frame = bars[0]
    lb = chart(bars, chart_type="line_break", transform=TRANSFORM_SETTINGS)
    want = kinds.line_break(frame, ES, lines=3)
    d = data(lb.transform_source)
    assert d["x"].tolist() == list(range(len(want))) and len(want) > 5
    assert np.array_equal(d["close"], want["close"]) and np.array_equal(d["open"], want["open"])
    assert d["dir"].tolist() == np.where(want["direction"] > 0, "up", "down").tolist()

    kg = chart(bars, chart_type="kagi", transform=TRANSFORM_SETTINGS)
    want = kinds.kagi(frame, ES, reversal=8)
    marks, rows = data(kg.marks), data(kg.transform_source)
    assert np.array_equal(marks["x"], want["line"]) and np.array_equal(marks["y1"], want["close"])
    assert rows["x"].tolist() == sorted(set(want["line"]))  # one row per line
    assert set(marks["thick"][want["yang"].to_numpy()]) == {3.0}  # yang thick, yin thin
    assert set(marks["thick"][~want["yang"].to_numpy()]) == {1.0}

    pf = chart(bars, chart_type="point_and_figure", transform=TRANSFORM_SETTINGS)
    want = kinds.point_and_figure(frame, ES, box=4, reversal=3)
    marks = data(pf.marks)
    assert len(marks["x"]) == want["boxes"].sum()
    for i, col in want.iterrows():  # each column's boxes: its levels, one box apart
        ys = marks["y"][marks["x"] == i]
        assert ys.min() == col["low"] and ys.max() == col["high"]
        assert np.allclose(np.diff(ys), 4 * ES.tick_size)
    # boxes drawn in price units, 80% of a level high: they never overlap at any zoom
    assert np.allclose(marks["y1"] - marks["y0"], 0.8 * 4 * ES.tick_size)
    assert np.allclose(marks["box"], 0.8 * 4 * ES.tick_size)
    assert set(marks["dir"][marks["x"] == 0]) == {"up" if want["direction"][0] > 0 else "down"}


@pytest.mark.parametrize("kind", ["kagi", "point_and_figure", "line_break"])
def test_transforms_follow_live_updates_sending_only_what_changed(trades, kind):
    updates = feed(trades, "1m", 30)
    c = PriceChart(instrument=ES, chart_type=kind, transform=TRANSFORM_SETTINGS)
    events = _followed(c, updates)
    whole = chart(build(trades, "1m", ES), chart_type=kind, transform=TRANSFORM_SETTINGS)
    for mine, want in ((c.transform_source, whole.transform_source), (c.marks, whole.marks)):
        for k in want.data:
            assert _same(list(mine.data[k]), list(want.data[k])), k
        assert not any(isinstance(e, RESENT) for e in events.of(mine))
    sent = sum(len(e.data["x"]) for e in events.of(c.transform_source)
               if isinstance(e, ColumnsStreamedEvent))
    assert sent == len(whole.transform_source.data["x"]) - _held_after_first(kind, updates[0])


LINE_STUDIES = [("EMA", {"timeperiod": 5}), ("RSI", {"timeperiod": 5}), ("cvd_candles", {})]


@pytest.mark.parametrize("kind", ["kagi", "point_and_figure", "line_break"])
def test_transforms_draw_volume_and_studies_over_their_lines(trades, kind):
    """A line's or column's volume is its bars' (from the bar that began it to the one before
    the next began); studies of bars are computed over the lines taken as bars (their closes),
    overlays on the price and panes below on the lines' x; a study of more than bars (CVD
    candles' wicks read the trades) has no rows there and says so; live, both follow the updates and
    equal a chart loaded whole, sending only rows that changed."""
    import tradeflow.bar_transforms as kinds
    frame, cells = build(trades, "1m", ES)
    c = chart((frame, cells), chart_type=kind, transform=TRANSFORM_SETTINGS,
              studies=LINE_STUDIES)
    readout, price, volume, rsi, cvd_pane = c._layout.children
    rows = data(c.transform_source)
    made = {"kagi": kinds.kagi, "point_and_figure": kinds.point_and_figure,
            "line_break": kinds.line_break}[kind](frame, ES, **TRANSFORM_SETTINGS[kind])
    starts = made.groupby("line").head(1) if kind == "kagi" else made
    begun = np.searchsorted(frame["ts"].to_numpy(), starts["ts"].to_numpy())
    begun[0] = 0
    ends = np.append(begun[1:], len(frame))
    want_volume = [frame["volume"].iloc[a:b].sum() for a, b in zip(begun, ends)]
    assert len(rows["x"]) > 5 and np.allclose(rows["volume"], want_volume)
    assert rows["volume"].sum() == pytest.approx(frame["volume"].sum())
    assert any(r.data_source is c.transform_source for r in volume.renderers)
    ema, rsi_layer, cvd_layer = c.layers
    assert any(r.data_source is ema.source for r in price.renderers)
    assert any(r.data_source is rsi_layer.source for r in rsi.renderers)
    lines = pd.DataFrame({"ts": starts["ts"].to_numpy(), **{
        k: rows[k] for k in ("open", "high", "low", "close", "volume")}})
    for layer, name in ((ema, "EMA"), (rsi_layer, "RSI")):
        got = data(layer.source)
        want = CATALOGUE.get(name).batch(StudyData(ES, bars=lines, spec="1m"), timeperiod=5)
        assert got["x"].tolist() == rows["x"].tolist()
        np.testing.assert_allclose(got[name], want[name], equal_nan=True)
        assert np.isfinite(got[name]).sum() > 0
    assert not len(cvd_layer.source.data["x"])
    assert any("(time bars only)" in item.label.value for item in cvd_pane.legend[0].items)
    # live: the same as loaded whole, and no source sent whole again
    updates = feed(trades, "1m", 30)
    live = PriceChart(instrument=ES, chart_type=kind, transform=TRANSFORM_SETTINGS,
                      studies=LINE_STUDIES)
    events = _followed(live, updates)
    for mine, want in ((live.transform_source, c.transform_source),
                       (live.layers[0].source, ema.source),
                       (live.layers[1].source, rsi_layer.source)):
        for k in want.data:
            np.testing.assert_allclose(np.asarray(mine.data[k], float),
                                       np.asarray(want.data[k], float), equal_nan=True,
                                       err_msg=k) if np.asarray(want.data[k]).dtype.kind in "fiu" \
                else assert_same(mine.data[k], want.data[k], k)
        assert not any(isinstance(e, RESENT) for e in events.of(mine))


def assert_same(a, b, what):
    assert _same(list(a), list(b)), what


def _followed(c: PriceChart, updates) -> "Events":
    """``c`` loaded with the first of ``updates`` (a Snapshot), then given the rest; the events
    it sent after the load."""
    first = updates[0]
    c.load(Snapshot(first.closed, first.closed_footprint, first.current,
                    first.current_footprint))
    events = Events(c)
    for up in updates[1:]:
        c.apply(Update(up.closed, up.closed_footprint, up.current, up.current_footprint))
    return events


def _held_after_first(kind, first) -> int:
    c = PriceChart(instrument=ES, chart_type=kind, transform=TRANSFORM_SETTINGS)
    c.load(Snapshot(first.closed, first.closed_footprint, first.current,
                    first.current_footprint))
    return len(c.transform_source.data["x"])


# ----------------------------------------------------------------------------- browser

PAGE = '''
import pandas as pd
import panel as pn
from tradeflow.bars import build
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.model import Instrument
from dashboards.components.price_chart import PriceChart
from dashboards.components.theme import THEMES

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
START = pd.Timestamp("2024-03-13 13:00", tz="UTC")  # a fixed Wednesday
SPECS = {"renko": "RK4", "range": "R8"}
SETTINGS = {"kagi": {"reversal": 8}, "point_and_figure": {"box": 4}}
args = pn.state.session_args
kind = args["type"][0].decode()
theme = args["theme"][0].decode()
trades = MarketSimulator(ES, seed=5, trades_per_day=60_000).generate(
    START, START + pd.Timedelta("6h")).trades
spec = SPECS.get(kind, "2m")
bars, cells = build(trades, spec, ES)
studies = [("EMA", {"timeperiod": 20}), ("RSI", {})] if kind in (
    "candles", "kagi", "point_and_figure", "line_break") else []
chart = PriceChart(instrument=ES, bars=bars, footprint=cells, chart_type=kind, theme=theme,
                   spec=spec, studies=studies, transform=SETTINGS, height=420)
chart.y_range.name, chart.x_range.name = "price-y", "price-x"  # (for the test to read)
pn.extension(raw_css=[f"body {{ background: {THEMES[theme].background}; }}"])
pn.Column(chart, sizing_mode="stretch_width").servable()
'''

ACCENT_TYPES = ("line", "line_markers", "step", "area")

# the plots drawn, and the finite values of the drawn sources' volume and RSI columns
DRAWN_JS = """() => {
  const seen = new Set(), out = {plots: 0, volume: 0, RSI: 0};
  function walk(view) {
    if (!view || seen.has(view)) return;
    seen.add(view);
    const renderers = (view.model && view.model.renderers) || [];
    if (renderers.length) out.plots += 1;
    for (const r of renderers) {
      const d = r.data_source && r.data_source.data;
      if (!d) continue;
      for (const c of ['volume', 'RSI'])
        if (d[c] !== undefined) out[c] = Math.max(out[c],
            Array.from(d[c]).filter((v) => Number.isFinite(v) && v !== 0).length);
    }
    for (const child of view.child_views || []) walk(child);
  }
  for (const view of Object.values(window.Bokeh.index)) walk(view);
  return out;
}"""


def _range(page, name: str) -> tuple[float, float]:
    """A named Bokeh range's (start, end) as the browser holds it."""
    return tuple(page.evaluate(
        "(name) => { const r = Bokeh.documents[0].get_model_by_name(name);"
        " return [r.start, r.end]; }", name))


def _pixels_near(image, colour: str, tolerance: int = 40) -> int:
    rgb = np.asarray(image.convert("RGB"), "int32")
    want = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - want).sum(axis=2) <= tolerance).sum())


def test_every_chart_type_draws_in_chromium(tmp_path):
    from PIL import Image

    from dashboards.components.theme import THEMES
    from tests.browser import ROOT, browser_page, panel_app

    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    script = tmp_path / "price_page.py"
    script.write_text(PAGE)
    shots = [(kind, "dark") for kind in CHART_TYPES] + [("candles", "light")]
    with panel_app(str(script)) as url, browser_page(1100, 760) as page:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        for kind, theme in shots:
            page.goto(f"{url}/price_page?type={kind}&theme={theme}")
            readout = page.locator(".bk-Div .bk-clearfix", has_text="ES")  # (shadow DOM)
            readout.first.wait_for(timeout=60_000)
            page.wait_for_selector("canvas", timeout=60_000)
            page.wait_for_timeout(800)  # the canvases paint after the models arrive
            name = f"price-{kind}" + ("-light" if theme == "light" else "")
            path = artifacts / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            image = Image.open(path)
            colours = THEMES[theme]
            wanted = [colours.accent] if kind in ACCENT_TYPES else [colours.up, colours.down]
            for colour in wanted:
                assert _pixels_near(image, colour) > 150, (kind, theme, colour)
            text = readout.first.inner_text().replace("\xa0", " ")
            assert text.startswith("ES") and " C 5," in text, (kind, text)
            if kind in ("candles", "kagi", "point_and_figure", "line_break"):
                # the volume pane and the RSI pane are drawn, with data, on the chart's x
                drawn = page.evaluate(DRAWN_JS)
                assert drawn["volume"] > 5 and drawn["RSI"] > 5, (kind, drawn)
                assert drawn["plots"] >= 3, (kind, drawn)
            if (kind, theme) == ("candles", "dark"):
                # the readout follows the cursor: a bar to the left shows another time
                box = page.locator("canvas").first.bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
                page.wait_for_timeout(300)
                assert readout.first.inner_text().replace("\xa0", " ") != text
                # zoomed in, the y range fits the bars now in view (in the browser)
                before = _range(page, "price-y")
                x_before = _range(page, "price-x")
                for _ in range(3):
                    page.mouse.wheel(0, -400)
                    page.wait_for_timeout(200)
                x_after = _range(page, "price-x")
                assert x_after[1] - x_after[0] < x_before[1] - x_before[0]  # fewer bars
                after = _range(page, "price-y")
                assert after != before and after[0] >= before[0] and after[1] <= before[1]
        assert not errors


# --------------------------------------------------------------------- through the hub


def test_the_chart_follows_a_hub_subscription(tmp_path):
    """Simulated trades through the real pipeline and hub (DuckDB): the chart applies the
    subscription's Snapshot and Updates and holds what ChartState holds, studies included."""
    from tests.test_hub_studies import BTC, DAY, run, simulated, submit
    from tradeflow.live import ChartState

    history = simulated(DAY - pd.Timedelta(minutes=20), DAY + pd.Timedelta(minutes=4),
                        pd.Timedelta(minutes=1))
    live = simulated(DAY + pd.Timedelta(minutes=4), DAY + pd.Timedelta(minutes=9),
                     pd.Timedelta(seconds=30))
    studies = {"ema": {"timeperiod": 10}, "cvd": {}}  # ("ema": the hub labels by the name given)
    chart = PriceChart(instrument=BTC, studies=list(studies.items()))
    state = ChartState()

    async def body(pipeline, store):
        for part in history:
            await submit(pipeline, part)
        sub = pipeline.hub.subscribe("BTCUSDT", "1m", studies)
        message = await sub.__anext__()
        chart.apply(message)
        state.apply(message)
        events = Events(chart)
        for part in live:
            await submit(pipeline, part)
            while sub.waiting:
                message = await sub.__anext__()
                chart.apply(message)
                state.apply(message)
        sub.close()
        return events

    events = run(f"duckdb:///{tmp_path}/hub.duckdb", body)
    bars = state.bars
    assert np.array_equal(np.asarray(chart.source.data["close"]), bars["close"].to_numpy())
    assert np.array_equal(np.asarray(chart.source.data["volume"]), bars["volume"].to_numpy())
    ema, cvd = chart.layers
    # the hub's rows (its history bars'), and before them the rows of the chart's earlier bars,
    # computed by the chart: drawn over every bar
    for layer, name, column in ((ema, "ema", "EMA"), (cvd, "cvd", "cvd")):
        hub = state.studies[name][column].to_numpy()
        drawn = np.asarray(layer.source.data[column])
        assert list(layer.source.data["x"]) == list(range(len(bars)))
        assert np.allclose(drawn[-len(hub):], hub, equal_nan=True), name
        earlier = bars.iloc[:len(bars) - len(hub)].reset_index(drop=True)
        want = CATALOGUE.get(column.upper() if name == "ema" else name).batch(
            StudyData(BTC, bars=earlier), **studies[name])[column].to_numpy()
        assert np.allclose(drawn[:len(earlier)], want, equal_nan=True), name
    # the CVD restarts with the day: the hub's rows are the day's bars'
    first_of_day = int(np.searchsorted(bars["ts"], DAY))
    assert len(state.studies["cvd"]) == len(bars) - first_of_day
    for source in (chart.source, ema.source, cvd.source):
        assert events.of(source) and not any(isinstance(e, RESENT) for e in events.of(source))


def test_one_chart_shows_a_study_twice_with_different_settings(tmp_path):
    """EMA 3 and EMA 5 on one chart: the hub labels each by its settings, the chart's layers
    follow their own, and the legends say which is which."""
    from bokeh.models import Legend

    from tests.test_hub_studies import BTC, DAY, run, simulated, submit
    from tradeflow.live import ChartState

    history = simulated(DAY - pd.Timedelta(minutes=10), DAY, pd.Timedelta(minutes=1))
    live = simulated(DAY, DAY + pd.Timedelta(minutes=3), pd.Timedelta(seconds=30))
    studies = [("EMA", {"timeperiod": 3}), ("EMA", {"timeperiod": 5})]
    chart = PriceChart(instrument=BTC, studies=studies)
    state = ChartState()

    async def body(pipeline, store):
        for part in history:
            await submit(pipeline, part)
        sub = pipeline.hub.subscribe("BTCUSDT", "1m", studies)
        message = await sub.__anext__()
        for part in [None, *live]:
            if part is not None:
                await submit(pipeline, part)
                message = await sub.__anext__()
            chart.apply(message)
            state.apply(message)
            while sub.waiting:
                message = await sub.__anext__()
                chart.apply(message)
                state.apply(message)
        sub.close()
        return await store.bars("BTCUSDT", "1m")

    bars = run(f"duckdb:///{tmp_path}/hub.duckdb", body)
    assert sorted(state.studies) == ["EMA 3", "EMA 5"]
    ema3, ema5 = chart.layers
    assert (ema3.label, ema5.label) == ("EMA 3", "EMA 5")
    for layer, period in ((ema3, 3), (ema5, 5)):
        want = CATALOGUE.get("EMA").batch(StudyData(BTC, bars=bars), timeperiod=period)
        held = state.studies[layer.label]
        assert np.allclose(layer.source.data["EMA"], held["EMA"], equal_nan=True)
        assert np.allclose(held["EMA"], want["EMA"].to_numpy()[-len(held):], equal_nan=True)
    assert not np.allclose(ema3.source.data["EMA"], ema5.source.data["EMA"], equal_nan=True)
    price = chart._layout.children[1]
    labels = [item.label.value for legend in price.select({"type": Legend})
              for item in legend.items]
    assert "EMA 3" in labels and "EMA 5" in labels


def test_studies_added_while_live_are_computed_over_the_bars_and_cells_held(trades):
    """Cells of the forming bar are replaced, never added twice, so a footprint study asked
    for later equals the catalogue's over everything."""
    updates = feed(trades, "5m", 15)
    head = pd.concat([updates[0].closed, updates[0].current], ignore_index=True)
    cells = pd.concat([updates[0].closed_footprint, updates[0].current_footprint],
                      ignore_index=True)
    c = PriceChart(instrument=ES, bars=head, footprint=cells, spec="5m")
    for up in updates[1:]:
        c.apply(Update(up.closed, up.closed_footprint, up.current, up.current_footprint))
    c.studies = [("imbalances", {})]
    bars, cells = build(trades, "5m", ES)
    want = CATALOGUE.get("imbalances").batch(StudyData(ES, bars=bars, footprint=cells,
                                                        spec="5m"))
    assert len(want) and np.array_equal(c.layers[0].source.data["price"], want["price"])


def test_received_bars_replace_bars_of_their_time_and_add_new_ones(bars):
    from tradeflow.live.hub import ExternalBars
    frame = bars[0]
    c = PriceChart(instrument=ES, bars=frame.iloc[:-1])
    events = Events(c)
    last, new = frame.iloc[[-2]].copy(), frame.iloc[[-1]]
    last["close"] = last["high"]  # the bar received again, changed
    c.apply(ExternalBars(pd.concat([last, new], ignore_index=True)))
    d = data(c.source)
    assert len(d["x"]) == len(frame) and d["close"][-2] == last["close"].iloc[0]
    assert d["close"][-1] == new["close"].iloc[0]
    mine = events.of(c.source)
    patched = [e for e in mine if isinstance(e, ColumnsPatchedEvent)]
    assert {p[0].start for e in patched for col in e.patches.values() for p in col} == \
        {len(frame) - 2}
    assert not any(isinstance(e, RESENT) for e in mine)


def test_a_bad_study_is_refused_and_the_chart_keeps_its_studies(bars):
    c = chart(bars, studies=[("RSI", {})])
    with pytest.raises(ValueError, match="RSI: .*timeperiod"):
        c.studies = [("RSI", {"timeperiod": 0})]
    assert c.studies == [("RSI", {})] and [layer.name for layer in c.layers] == ["RSI"]
    c.studies = [("EMA", {"timeperiod": 9})]
    assert [layer.label for layer in c.layers] == ["EMA 9"]


def test_each_pane_fits_its_values_in_view(bars):
    frame = bars[0]
    c = chart(bars, studies=[("RSI", {})], visible_bars=40)
    price, volume, rsi = c._layout.children[1:]
    view = frame.iloc[-40:]
    assert c.y_range.start < view["low"].min() and c.y_range.end > view["high"].max()
    assert c.y_range.end - c.y_range.start < 1.3 * (view["high"].max() - view["low"].min())
    assert volume.y_range.start == 0 and volume.y_range.end > view["volume"].max()
    assert volume.y_range.end < 1.2 * view["volume"].max()
    values = np.asarray(c.layers[0].source.data["RSI"])[-40:]
    assert rsi.y_range.start < min(30, values.min()) and rsi.y_range.end > max(70, values.max())
    # rebuilt (another type): one fit in the browser, of the new figures
    c.chart_type = "line"
    c.chart_type = "candles"
    fits = [cb for cb in c.x_range.js_property_callbacks["change:start"]
            if "ranges" in cb.args]
    assert len(fits) == 1 and c._layout.children[3].y_range in fits[0].args["ranges"]


def test_without_a_height_the_price_pane_stretches(bars):
    c = chart(bars, height=None)
    assert c._layout.sizing_mode == c._pane.sizing_mode == "stretch_both"
    assert c._layout.children[1].sizing_mode == "stretch_both"
    c.height = 300
    assert c._pane.sizing_mode == "stretch_width" and c._layout.children[1].height == 300


def test_the_readout_escapes_what_goes_into_its_html(bars):
    c = chart(bars, spec="<b>1m</b>")
    assert "&lt;b&gt;1m&lt;/b&gt;" in c.readout.text and "<b>1m" not in c.readout.text
    assert "&lt;b&gt;1m&lt;/b&gt;" in c._readout_cb.args["head"]


def test_the_readout_writes_sizes_as_the_footprint_does():
    """Crypto sizes are fractions: a bar of 0.004 BTC with a delta of -0.003 reads so, not as
    "Vol 0" and "Δ -0"; large sizes are shortened as the footprint's cells write them."""
    from dashboards.components.price_chart import _last_readout
    from dashboards.components.theme import THEMES

    def readout(volume, delta):
        data = {"close": [100.0], "open": [99.0], "volume": [volume], "delta": [delta]}
        html = _last_readout(data, 0, 1, THEMES["dark"])
        return re.sub(r"<[^>]+>", "", html).replace("&nbsp;", " ")

    assert "Vol 0.004" in readout(0.004, -0.003) and "Δ -0.003" in readout(0.004, -0.003)
    assert "Vol 12.3k" in readout(12_345.0, 250.0) and "Δ +250" in readout(12_345.0, 250.0)
    assert "Δ 0" in readout(5.0, 0.0) and "-0" not in readout(5.0, -0.0)


def test_the_readout_puts_prices_first_and_the_time_last():
    """A narrow chart (four on the desk) cuts the readout's end: the prices and the change come
    first, then volume and delta, the bar's time (also on the axis) last."""
    from dashboards.components.price_chart import _last_readout
    from dashboards.components.theme import THEMES

    data = {"t": [1_795_000_000_000.0], "open": [99.0], "high": [101.0], "low": [98.0],
            "close": [100.0], "change": [1.0], "volume": [5.0], "delta": [2.0]}
    text = re.sub(r"<[^>]+>", "", _last_readout(data, 0, 1, THEMES["dark"])).replace("&nbsp;", " ")
    order = [text.index(label) for label in ("O 99.0", "C 100.0", "Chg +1.0", "Vol 5", "Δ +2",
                                             "2026-")]
    assert order == sorted(order), text
