"""The book views: the order-book heatmap (xarray grid rendered by Datashader, trade bubbles,
liquidations, best bid/ask), the time & sales tape and the DOM ladder -- what they put in their
Bokeh sources, loaded whole and followed live, and one browser screenshot of all three."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from bokeh.document import Document
from bokeh.document.events import ColumnDataChangedEvent, ColumnsPatchedEvent, ColumnsStreamedEvent

from dashboards.components.book_data import last_snapshot
from dashboards.components.dom import DomLadder
from dashboards.components.heatmap import BookHeatmap, bubble_sizes, heat_colors, trade_bubbles
from dashboards.components.tape import Tape
from dashboards.components.theme import THEMES
from indicators.orderflow.book import OrderBook, heatmap_grid
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.model import DepthUpdate, Instrument, Session

ES = Instrument("ES", 0.25, session=Session.parse("America/Chicago 08:30-15:15,17:00-16:00"))
BTC = Instrument("BTCUSDT", 0.1, asset_class="crypto")


@pytest.fixture(scope="module")
def es():
    """Three minutes of ES (a fixed Tuesday), depth 30 levels a side every second."""
    sim = MarketSimulator(ES, seed=3, trades_per_day=100_000, depth_levels=30)
    return sim.generate("2026-01-06T15:00Z", "2026-01-06T15:03Z")


@pytest.fixture(scope="module")
def btc():
    """Ten minutes of BTCUSDT with liquidations."""
    sim = MarketSimulator(BTC, seed=1, trades_per_day=200_000)
    return sim.generate("2026-01-06T14:00Z", "2026-01-06T14:10Z")


def diffs(depth: pd.DataFrame) -> list[DepthUpdate]:
    """The snapshots of ``depth`` as a venue sends them: the first whole, then the levels that
    changed (size 0: gone)."""
    out, before = [], {}
    for ts, snap in depth.groupby("ts", sort=True):
        now = {(int(s), int(t)): float(q) for s, t, q in zip(snap["side"], snap["tick"],
                                                              snap["size"])}
        if not out:
            out.append(DepthUpdate(snap.reset_index(drop=True), snapshot=True))
        else:
            keys = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            out.append(DepthUpdate(pd.DataFrame({
                "ts": pd.DatetimeIndex([ts] * len(keys)),
                "side": np.array([k[0] for k in keys], dtype="int8"),
                "tick": np.array([k[1] for k in keys], dtype="int64"),
                "size": [now.get(k, 0.0) for k in keys]})))
        before = now
    return out


def events_of(*models) -> list:
    """The document events the models' changes send to a browser (recorded from now on)."""
    doc = Document()
    for model in models:
        doc.add_root(model)
    seen = []
    doc.on_change(lambda event: seen.append(event))
    return seen


def batches(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    cuts = np.linspace(0, len(frame), n + 1).astype(int)
    return [frame.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def assert_same_grid(got, want):
    """The same times, and the same size in every cell (the two may hold different empty price
    rows beyond the sizes: a buffer grows with room to spare)."""
    import xarray as xr

    np.testing.assert_array_equal(got["time"], want["time"])
    got, want = xr.align(*(a.swap_dims(price="tick").drop_vars("price") for a in (got, want)),
                         join="outer")
    np.testing.assert_allclose(got.fillna(0).to_numpy(), want.fillna(0).to_numpy(), rtol=1e-9)
    assert float(got.sum()) == pytest.approx(float(want.sum()), rel=1e-12)


# ---- heatmap ------------------------------------------------------------------------------

@pytest.mark.parametrize("interval, tick_rows, how", [("1s", 1, "last"), ("5s", 4, "mean"),
                                                      ("15s", 2, "max")])
def test_the_grid_is_a_time_by_price_dataarray_holding_the_grids_sizes(es, interval, tick_rows,
                                                                         how):
    view = BookHeatmap(es.depth, es.trades, instrument=ES, interval=interval,
                       tick_rows=tick_rows, how=how)
    grid = heatmap_grid(es.depth, interval, tick_rows, how)
    array = view.grid
    assert array.dims == ("time", "price")
    step = pd.Timedelta(interval).value
    times = array["time"].to_numpy().astype("int64")
    first = pd.DatetimeIndex(grid["ts"]).asi8.min()
    assert times[0] == first and (np.diff(times) == step).all()
    assert times[-1] == pd.DatetimeIndex(grid["ts"]).asi8.max()  # every bucket, none extra
    ticks = array["tick"].to_numpy()
    assert (np.diff(ticks) == tick_rows).all() and (ticks % tick_rows == 0).all()
    np.testing.assert_allclose(array["price"].to_numpy(), ticks * ES.tick_size)
    # the totals: all, per time bucket, and cell by cell
    total = grid["bid_size"] + grid["ask_size"]
    assert float(array.sum()) == pytest.approx(total.sum(), rel=1e-12)
    per_time = total.groupby(pd.DatetimeIndex(grid["ts"]).asi8).sum()
    np.testing.assert_allclose(array.sum("price").to_numpy()[
        (per_time.index.to_numpy() - first) // step], per_time.to_numpy(), rtol=1e-12)
    ti = (pd.DatetimeIndex(grid["ts"]).asi8 - first) // step
    ki = (grid["tick"].to_numpy() - ticks[0]) // tick_rows
    np.testing.assert_allclose(array.to_numpy()[ti, ki], total.to_numpy(), rtol=1e-12)


def test_buckets_without_a_snapshot_are_empty_not_zero(es):
    """A gap in the depth stays a gap in true time (NaN, drawn blank)."""
    depth = es.depth[(es.depth["ts"] < "2026-01-06T15:00:30Z")
                     | (es.depth["ts"] >= "2026-01-06T15:01:00Z")]
    array = BookHeatmap(depth, instrument=ES).grid
    gap = array.sel(time=slice("2026-01-06T15:00:30", "2026-01-06T15:00:59"))
    assert len(gap["time"]) == 30 and bool(gap.isnull().all())
    assert not bool(array.sel(time="2026-01-06T15:01:00").isnull().any())


def test_the_image_is_rendered_for_the_range_in_view_with_a_cap(es):
    view = BookHeatmap(es.depth, es.trades, instrument=ES)
    data = view.image_source.data
    assert len(data["image"]) == 1
    full = data["dw"][0]
    painted = (data["image"][0] >> 24) & 255
    assert painted.any()
    # the colour scale tops out at the quantile of the sizes in view, below the largest level
    assert view.cap < float(view.grid.max())
    rgba = data["image"][0].view(np.uint8).reshape(*data["image"][0].shape, 4)
    top = _rgb(heat_colors(THEMES["dark"])[-1])
    assert (rgba[..., :3] == top).all(axis=-1).any()  # the biggest levels reach the top colour
    # zoomed in: the image covers the view only
    start = view.x_range.start
    view.x_range.update(start=start + 60_000, end=start + 90_000)
    view.render()
    assert view.image_source.data["dw"][0] < full
    assert view.image_source.data["x"][0] == pytest.approx(start + 60_000)
    assert view.image_source.data["dw"][0] == pytest.approx(30_000)
    # fewer cells than pixels: one pixel a cell (30 one-second buckets), exactly the cells' sizes
    image = view.image_source.data["image"][0]
    assert image.shape[1] == 30
    rows = view.grid.sel(time=slice("2026-01-06T15:01:00", "2026-01-06T15:01:29"))
    # rows are centred on their prices: the image starts half a tick under its first row's
    first = view.image_source.data["y"][0] / ES.tick_size + 0.5
    assert first == pytest.approx(round(first))
    rows = rows.sel(tick=slice(round(first), round(first) + image.shape[0] - 1))
    painted = ((image >> 24) & 255) > 0
    np.testing.assert_array_equal(painted, (rows.fillna(0).to_numpy() > 0).T)


def test_zooming_into_prices_keeps_the_colours(es):
    """The cap comes from the time in view at every price: a few rows zoomed into keep their
    colours (a cap from those few cells alone would paint them all hot)."""
    view = BookHeatmap(es.depth, instrument=ES)
    cap = view.cap
    mid = (view.y_range.start + view.y_range.end) / 2
    view.y_range.update(start=mid - 1, end=mid + 1)
    view.render()
    assert view.cap == cap
    view.x_range.update(start=view.x_range.start, end=view.x_range.start + 20_000)
    view.render()
    assert view.cap != cap  # the time in view decides


def test_zoomed_out_each_pixel_shows_the_largest_of_its_cells():
    from dashboards.components.heatmap import max_pool

    values = np.arange(20.0).reshape(4, 5)
    values[0, 0] = np.nan
    np.testing.assert_array_equal(max_pool(values, 2, 2), [[6, 9], [16, 19]])
    assert max_pool(values, 10, 10).shape == (4, 5)  # never more pixels than cells
    empty = np.full((3, 3), np.nan)
    assert np.isnan(max_pool(empty, 1, 1)).all()


def test_x_is_true_time_in_the_instruments_zone(es):
    view = BookHeatmap(es.depth, es.trades, instrument=ES)
    # 15:00 UTC is 09:00 in Chicago in January: the axis reads local wall-clock time
    want = pd.Timestamp("2026-01-06T09:00").value / 1e6
    assert view.best_source.data["x"][0] == want
    assert view.x_range.start == want


def test_a_daylight_saving_change_keeps_the_image_and_the_glyphs_aligned():
    """Chicago's clocks go forward at 08:00 UTC on 8 March 2026: one offset for the whole view,
    so the best bid/ask points keep their one-second spacing and stay on the image's buckets."""
    inst = Instrument("CHI", 0.25, asset_class="crypto",  # (trades on a Sunday)
                      session=Session.parse("America/Chicago 00:00-24:00"))
    sim = MarketSimulator(inst, seed=3, trades_per_day=100_000)
    batch = sim.generate("2026-03-08T07:58Z", "2026-03-08T08:02Z")
    assert batch.depth["ts"].nunique() == 240
    view = BookHeatmap(batch.depth, batch.trades, instrument=inst)
    x = np.asarray(view.best_source.data["x"])
    assert (np.diff(x) == 1000).all()
    assert x[0] == pd.Timestamp("2026-03-08T01:58").value / 1e6  # CST, the first time's zone
    assert view.image_source.data["x"][0] == x[0]


def test_bubbles_are_sized_monotonically_by_volume(btc):
    view = BookHeatmap(btc.depth, btc.trades, btc.liquidations, instrument=BTC)
    data = view.bubble_source.data
    volume, size = np.asarray(data["volume"]), np.asarray(data["size"])
    order = np.argsort(volume, kind="stable")
    assert (np.diff(size[order]) >= 0).all()
    below = volume[order] < np.quantile(volume, 0.99)  # under the reference: strictly growing
    grows = np.diff(volume[order][below]) > 1e-9  # (sums of the same sizes differ by ulps)
    assert (np.diff(size[order][below])[grows] > 0).all()
    assert size.min() >= 4 and size.max() == view.max_bubble
    # the bubbles hold every trade, by side
    for side in (-1, 1):
        assert volume[np.asarray(data["side"]) == side].sum() == pytest.approx(
            btc.trades.loc[btc.trades["side"] == side, "size"].sum())
    assert set(data["color"][np.asarray(data["side"]) > 0]) == {THEMES["dark"].up}
    assert len(view.liquidation_source.data["x"]) == len(btc.liquidations) > 0
    np.testing.assert_array_equal(view.liquidation_source.data["marker"] == "triangle",
                                  btc.liquidations["side"].to_numpy() > 0)


def test_max_bubble_resizes_the_bubbles(btc):
    view = BookHeatmap(btc.depth, btc.trades, instrument=BTC)
    view.max_bubble = 12
    assert max(view.bubble_source.data["size"]) == 12


def test_bubble_sizes_grow_with_the_square_root_of_volume():
    sizes = bubble_sizes([0, 1, 4, 9, 100], reference=9, smallest=2, largest=32)
    np.testing.assert_allclose(sizes, [2, 12, 22, 32, 32])


def test_best_bid_and_ask_lines_follow_the_snapshots(es):
    view = BookHeatmap(es.depth, instrument=ES)
    data = view.best_source.data
    first = es.depth[es.depth["ts"] == es.depth["ts"].iloc[0]]
    assert data["bid"][0] == first.loc[first["side"] == -1, "tick"].max() * 0.25
    assert data["ask"][0] == first.loc[first["side"] == 1, "tick"].min() * 0.25
    assert len(data["x"]) == es.depth["ts"].nunique()


def test_live_apply_equals_loading_everything(es):
    """Depth diffs, trades and liquidations applied live end where loading it all at once
    does; bubbles of the current bucket are patched, the rest streamed, nothing redrawn whole."""
    cut = pd.Timestamp("2026-01-06T15:02:00Z")
    early_depth = es.depth[es.depth["ts"] < cut]
    view = BookHeatmap(early_depth, es.trades[es.trades["ts"] < cut], instrument=ES)
    seen = events_of(view.fig)
    late = diffs(es.depth)
    late = [u for u in late if u.levels["ts"].iloc[0] >= cut] if len(late) else late
    late_trades = batches(es.trades[es.trades["ts"] >= cut], len(late))
    for u, trades in zip(late, late_trades):
        view.apply(SimpleNamespace(depth=[u], trades=trades, liquidations=None))
    whole = BookHeatmap(es.depth, es.trades, instrument=ES)
    assert_same_grid(view.grid, whole.grid)
    assert float(view.grid.sum()) == pytest.approx(float(whole.grid.sum()), rel=1e-12)

    def bubbles(v):
        d = v.bubble_source.data
        return (pd.DataFrame({k: d[k] for k in ("x", "price", "side", "volume", "trades")})
                .sort_values(["x", "price", "side"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(bubbles(view), bubbles(whole))
    kinds = {type(e) for e in seen if getattr(e, "model", None) is view.bubble_source}
    assert ColumnsStreamedEvent in kinds and ColumnsPatchedEvent in kinds
    assert ColumnDataChangedEvent not in kinds
    assert any(isinstance(e, ColumnsStreamedEvent) and e.model is view.best_source for e in seen)
    np.testing.assert_allclose(view.best_source.data["bid"], whole.best_source.data["bid"])


def test_live_the_image_is_sent_when_a_bucket_or_a_pixel_column_fills(es, monkeypatch):
    """Trades and book changes inside the bucket in progress send no image; a new bucket does
    (zoomed in: a pixel a bucket); zoomed out, only once a pixel column's buckets have come."""
    cut = pd.Timestamp("2026-01-06T15:01:00Z")
    view = BookHeatmap(es.depth[es.depth["ts"] < cut], instrument=ES)
    seen = events_of(view.fig)

    def images():
        return sum(1 for e in seen if getattr(e, "model", None) is view.image_source)
    late = [u for u in diffs(es.depth) if u.levels["ts"].iloc[0] >= cut]
    inside = late[0].levels.assign(ts=late[0].levels["ts"] + pd.Timedelta("300ms"))
    view.apply(SimpleNamespace(trades=es.trades[es.trades["ts"] >= cut].head(3)))
    assert images() == 0
    view.apply(late[0])  # a new bucket: drawn
    assert images() == 1
    view.apply(DepthUpdate(inside))  # the same bucket again: not yet
    assert images() == 1
    # zoomed out: 62 one-second buckets on 20 pixels -> 4 buckets a pixel (the plot's size is
    # the browser's; here it is set)
    monkeypatch.setattr(view, "_canvas_size", lambda: (20, 100))
    view.render()
    sent = images()
    for u in late[1:6]:
        view.apply(u)
    assert images() - sent == 1  # after the fourth new bucket, not before


def test_live_follows_the_newest_time(es):
    cut = pd.Timestamp("2026-01-06T15:02:00Z")
    view = BookHeatmap(es.depth[es.depth["ts"] < cut], instrument=ES)
    start, end = view.x_range.start, view.x_range.end
    later = es.depth[es.depth["ts"] == cut + pd.Timedelta("10s")]
    view.apply(DepthUpdate(later.reset_index(drop=True), snapshot=True))
    assert view.x_range.start == pytest.approx(start + 11_000)
    assert view.x_range.end == pytest.approx(end + 11_000)


def test_trade_bubbles_sum_per_bucket_price_and_side():
    times = ["2026-01-06T15:00:00.1Z", "2026-01-06T15:00:00.9Z", "2026-01-06T15:00:01.2Z",
             "2026-01-06T15:00:00.5Z"]
    trades = pd.DataFrame({"ts": pd.to_datetime(times),
                           "price": [10.0, 10.0, 10.0, 10.0], "size": [1.0, 2.0, 4.0, 8.0],
                           "side": [1, 1, 1, -1]})
    out = trade_bubbles(trades, 1_000_000_000)
    assert out[["side", "volume", "trades"]].values.tolist() == [[-1, 8, 1], [1, 3, 2], [1, 4, 1]]


def test_bad_frames_are_refused_in_one_line(es):
    with pytest.raises(ValueError, match=r"heatmap depth: missing column\(s\) size"):
        BookHeatmap(es.depth.drop(columns="size"), instrument=ES)
    with pytest.raises(ValueError, match="give the instrument"):
        BookHeatmap(es.depth)
    with pytest.raises(ValueError, match="more than 1,000 cells.*longer interval"):
        from dashboards.components.heatmap import DepthGrid
        DepthGrid(ES, max_cells=1000).put(heatmap_grid(es.depth), trim=False)


def test_live_the_grid_drops_its_oldest_buckets_past_its_cells(es):
    from dashboards.components.heatmap import DepthGrid

    grid = heatmap_grid(es.depth)
    held = DepthGrid(ES, max_cells=5_000)
    for ts, rows in grid.groupby("ts", sort=True):  # one bucket at a time, as live
        held.put(rows)
        assert held.n_t * held.values.shape[1] <= 5_000
    array = held.array()
    newest = grid[grid["ts"] >= pd.Timestamp(array["time"].to_numpy()[0], tz="UTC")]
    assert array["time"].to_numpy()[-1] == grid["ts"].max().tz_localize(None).to_datetime64()
    assert float(array.sum()) == pytest.approx((newest["bid_size"] + newest["ask_size"]).sum())
    assert len(array["time"]) < grid["ts"].nunique()  # some were dropped


def test_theme_restyles_the_heatmap(es):
    view = BookHeatmap(es.depth, es.trades, instrument=ES)
    dark = view.image_source.data["image"][0].copy()
    view.theme = "light"
    assert view.fig.background_fill_color == THEMES["light"].background
    assert set(view.bubble_source.data["color"]) <= {THEMES["light"].up, THEMES["light"].down,
                                                     THEMES["light"].neutral}
    assert not np.array_equal(dark, view.image_source.data["image"][0])


# ---- tape ---------------------------------------------------------------------------------

def test_the_tape_shows_the_newest_first_and_its_filter_drops_small_trades(btc):
    tape = Tape(btc.trades, instrument=BTC, rows=500)
    shown = tape.shown
    assert len(shown) == 500  # bounded
    newest = btc.trades.iloc[::-1].head(500)
    np.testing.assert_allclose(shown["size"], newest["size"])
    assert shown["time"].is_monotonic_decreasing
    tape.min_size = 0.1
    shown = tape.shown
    big = btc.trades[btc.trades["size"] >= 0.1]
    assert 0 < len(shown) == min(len(big), 500)
    assert (shown["size"] >= 0.1).all()
    np.testing.assert_allclose(shown["size"], big["size"].iloc[::-1].head(500))
    assert shown["time"].iloc[0] == pd.Timestamp(big["ts"].iloc[-1]).strftime("%H:%M:%S.%f")[:12]
    colors = np.asarray(tape.source.data["color"])
    sides = np.asarray(tape.source.data["side"])
    assert set(colors[sides > 0]) == {THEMES["dark"].up}
    assert set(colors[sides < 0]) == {THEMES["dark"].down}


def test_the_tape_streams_live_trades_with_rollover(btc):
    first, rest = btc.trades.iloc[:300], btc.trades.iloc[300:]
    tape = Tape(first, instrument=BTC, rows=200, min_size=0.01)
    seen = events_of(tape.fig)
    for batch in batches(rest, 40):
        tape.apply(SimpleNamespace(trades=batch))
    whole = Tape(btc.trades, instrument=BTC, rows=200, min_size=0.01)
    pd.testing.assert_frame_equal(tape.shown, whole.shown)
    kinds = [type(e) for e in seen if getattr(e, "model", None) is tape.source]
    assert kinds and set(kinds) == {ColumnsStreamedEvent}
    assert all(e.rollover == 200 for e in seen if isinstance(e, ColumnsStreamedEvent))
    # following: the newest row is the top one in view
    assert tape.y_range.end == pytest.approx(max(tape.source.data["y"]) + 0.5)


def test_tape_times_are_in_the_instruments_zone(es):
    tape = Tape(es.trades, instrument=ES)
    last = es.trades["ts"].iloc[-1].tz_convert("America/Chicago")
    assert tape.shown["time"].iloc[0] == last.strftime("%H:%M:%S.%f")[:12]
    assert tape.shown["price"].iloc[0] == f"{es.trades['price'].iloc[-1]:,.2f}"


# ---- DOM ladder ---------------------------------------------------------------------------

def book_of(depth, instrument=ES) -> OrderBook:
    book = OrderBook(instrument.tick_size)
    book.apply(DepthUpdate(last_snapshot(depth), snapshot=True))
    return book


def assert_ladder_is_the_book(ladder, book, levels):
    rows = ladder.rows
    top = book.levels(levels)
    for side, column in ((-1, "bid"), (1, "ask")):
        want = top[top["side"] == side].set_index("tick")["size"].sort_index()
        got = rows[rows[column] > 0].set_index("tick")[column].sort_index()
        pd.testing.assert_series_equal(got, want, check_names=False)
    np.testing.assert_allclose(rows["price"], rows["tick"] * ladder.instrument.tick_size)


def test_ladder_sizes_equal_the_books_levels(es):
    ladder = DomLadder(es.depth, es.trades, instrument=ES, levels=10)
    assert_ladder_is_the_book(ladder, book_of(es.depth), 10)
    rows = ladder.rows
    assert (np.diff(rows["tick"]) == -1).all()  # one row a tick, highest first
    # the session's traded volume at each price, and the last trade's row
    want = es.trades.groupby(ES.to_tick(es.trades["price"]))["size"].sum()
    got = rows[rows["volume"] > 0].set_index("tick")["volume"]
    pd.testing.assert_series_equal(got.sort_index(), want.reindex(got.index).sort_index(),
                                   check_names=False)
    assert rows.loc[rows["last"], "tick"].tolist() == [ES.to_tick(es.trades["price"].iloc[-1])]
    assert ladder.last_source.data["y"] == [es.trades["price"].iloc[-1]]
    ladder.levels = 3
    assert_ladder_is_the_book(ladder, book_of(es.depth), 3)


def test_ladder_volume_is_the_sessions_only():
    """ES's trading day starts 17:00 Chicago: trades before it are the previous session's."""
    trades = pd.DataFrame({"ts": pd.to_datetime(["2026-01-06T22:59:00Z", "2026-01-06T23:01:00Z"]),
                           "price": [100.0, 100.0], "size": [5.0, 2.0], "side": [1, -1]})
    ladder = DomLadder(trades=trades, instrument=ES)
    ladder.apply(DepthUpdate(pd.DataFrame({
        "ts": pd.to_datetime(["2026-01-06T23:01:00Z"] * 2), "side": [-1, 1],
        "tick": [399, 401], "size": [1.0, 1.0]}), snapshot=True))
    rows = ladder.rows
    assert rows.loc[rows["tick"] == 400, "volume"].tolist() == [2.0]


def test_the_ladder_follows_live_depth_and_trades_by_patching(es):
    cut = pd.Timestamp("2026-01-06T15:02:00Z")
    ladder = DomLadder(es.depth[es.depth["ts"] < cut], es.trades[es.trades["ts"] < cut],
                       instrument=ES, levels=5)
    seen = events_of(ladder.fig)
    late = [u for u in diffs(es.depth) if u.levels["ts"].iloc[0] >= cut]
    for u, trades in zip(late, batches(es.trades[es.trades["ts"] >= cut], len(late))):
        ladder.apply(SimpleNamespace(depth=[u], trades=trades))
        assert_ladder_is_the_book(ladder, ladder.book, 5)
    assert_ladder_is_the_book(ladder, book_of(es.depth), 5)
    shown = ladder.rows.set_index("tick")
    want = es.trades.groupby(ES.to_tick(es.trades["price"]))["size"].sum()
    np.testing.assert_allclose(shown["volume"], want.reindex(shown.index).fillna(0))
    kinds = [type(e) for e in seen if getattr(e, "model", None) is ladder.source]
    assert ColumnsPatchedEvent in kinds  # mostly patched in place
    assert kinds.count(ColumnsPatchedEvent) > kinds.count(ColumnDataChangedEvent)


# ---- browser ------------------------------------------------------------------------------

APP = '''
import pandas as pd
import panel as pn
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.model import Instrument, Session
from dashboards.components.dom import DomLadder
from dashboards.components.heatmap import BookHeatmap
from dashboards.components.tape import Tape

theme = pn.state.session_args.get("theme", [b"dark"])[0].decode()
inst = Instrument("ES", 0.25, session=Session.parse("America/Chicago 08:30-15:15,17:00-16:00"))
sim = MarketSimulator(inst, seed=3, trades_per_day=100_000, depth_levels=30)
b = sim.generate("2026-01-06T15:00Z", "2026-01-06T15:03Z")
# (futures have no liquidations: two made up, to see the marks)
at = b.trades.iloc[[len(b.trades) // 3, 2 * len(b.trades) // 3]]
liqs = pd.DataFrame({"ts": at["ts"].to_numpy(), "side": [-1, 1], "price": at["price"].to_numpy(),
                     "size": [30.0, 12.0]})
views = [BookHeatmap(b.depth, b.trades, liqs, instrument=inst, theme=theme),
         Tape(b.trades, instrument=inst, theme=theme),
         DomLadder(b.depth, b.trades, instrument=inst, theme=theme)]
pn.Row(*views, sizing_mode="stretch_width",
       styles={"background": "#131722" if theme == "dark" else "#ffffff"}).servable()
'''


def test_the_three_views_draw_in_a_browser(tmp_path):
    from PIL import Image

    from tests.browser import ROOT, browser_page, panel_app

    script = tmp_path / "book.py"
    script.write_text(APP)
    out = ROOT / "tests" / "artifacts"
    out.mkdir(exist_ok=True)
    with panel_app(str(script)) as url, browser_page(1500, 600) as page:
        for theme in ("dark", "light"):
            page.goto(f"{url}/book?theme={theme}")
            page.wait_for_selector("canvas", timeout=60_000)
            deadline = time.monotonic() + 30
            path = out / f"book-{theme}.png"
            colors = THEMES[theme]
            while True:  # until the heatmap image and the tape's colours are painted
                page.screenshot(path=str(path))
                rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
                pixels = set(map(tuple, np.unique(rgb, axis=0).tolist()))
                want = {_rgb(colors.up), _rgb(colors.down), _rgb(colors.poc)}
                if want <= pixels or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert _rgb(colors.up) in pixels and _rgb(colors.down) in pixels  # tape text
            assert _rgb(colors.poc) in pixels  # the heatmap's largest resting sizes
        # zooming in re-renders the image for the range in view (RangesUpdate -> Python)
        full = page.evaluate(IMAGE_WIDTH)
        page.mouse.move(400, 250)
        for _ in range(4):
            page.mouse.wheel(0, -300)
            time.sleep(0.2)
        deadline = time.monotonic() + 20
        while page.evaluate(IMAGE_WIDTH) == full and time.monotonic() < deadline:
            time.sleep(0.3)
        assert 0 < page.evaluate(IMAGE_WIDTH) < full / 2
        page.screenshot(path=str(out / "book-light-zoomed.png"))


# the width in time of the heatmap's image, as the browser holds it
IMAGE_WIDTH = """() => { for (const doc of Bokeh.documents) {
  const m = doc.get_model_by_name('heatmap-image'); if (m) return m.data.dw[0]; } return null; }"""


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


# ---- the hub's messages -------------------------------------------------------------------

def test_views_follow_hub_shaped_updates(es):
    """As the hub sends them: the heatmap study's Changes (its ``LiveHeatmap`` follower), the
    book's best levels whole, the commit's trades."""
    from indicators.orderflow import LiveHeatmap

    cut = pd.Timestamp("2026-01-06T15:02:00Z")
    early = es.depth[es.depth["ts"] < cut]
    heat = BookHeatmap(early, es.trades[es.trades["ts"] < cut], instrument=ES)
    ladder = DomLadder(early, es.trades[es.trades["ts"] < cut], instrument=ES, levels=5)
    follower = LiveHeatmap(ES.tick_size)
    follower.apply(DepthUpdate(last_snapshot(early), snapshot=True))
    book = OrderBook(ES.tick_size)
    book.apply(DepthUpdate(last_snapshot(early), snapshot=True))
    late = [u for u in diffs(es.depth) if u.levels["ts"].iloc[0] >= cut]
    for u, trades in zip(late, batches(es.trades[es.trades["ts"] >= cut], len(late))):
        book.apply(u)
        levels = book.levels(5, ts=u.levels["ts"].max())
        message = SimpleNamespace(studies={"heatmap": follower.apply(u)["heatmap"]},
                                  book=levels, trades=trades)
        heat.apply(message)
        ladder.apply(message)
    whole = BookHeatmap(es.depth, es.trades, instrument=ES)
    assert_same_grid(heat.grid, whole.grid)
    np.testing.assert_allclose(heat.best_source.data["ask"], whole.best_source.data["ask"])
    assert_ladder_is_the_book(ladder, book_of(es.depth), 5)


def test_a_hub_snapshot_adds_what_is_newer_than_what_is_shown(es):
    """The first message of a subscription (or one after a resync) is a Snapshot: the views keep
    the history loaded before it and add the buckets, trades and book it has that are newer."""
    from tradeflow.live.hub import Snapshot
    from tradeflow.model import BAR_COLUMNS, FOOTPRINT_COLUMNS, empty_frame

    cut = pd.Timestamp("2026-01-06T15:02:30Z")
    early_depth, early_trades = es.depth[es.depth["ts"] < cut], es.trades[es.trades["ts"] < cut]
    heat = BookHeatmap(early_depth, early_trades, instrument=ES)
    tape = Tape(early_trades, instrument=ES)
    ladder = DomLadder(early_depth, early_trades, instrument=ES, levels=5)
    # the hub's heatmap began at 15:02 and its tape reaches 10 trades back (both overlap the
    # history)
    tape_length = int((es.trades["ts"] >= cut).sum()) + 10
    follower = es.depth[es.depth["ts"] >= "2026-01-06T15:02:00Z"]
    book = book_of(es.depth).levels(5, ts=es.depth["ts"].max())
    bars, cells = empty_frame(BAR_COLUMNS), empty_frame(FOOTPRINT_COLUMNS)
    snapshot = Snapshot(bars, cells, bars, cells, studies={"heatmap": heatmap_grid(follower)},
                        book=book, trades=es.trades.tail(tape_length))
    for view in (heat, tape, ladder):
        view.apply(snapshot)
    whole = BookHeatmap(es.depth, es.trades, instrument=ES)
    assert_same_grid(heat.grid, whole.grid)
    pd.testing.assert_frame_equal(tape.shown, Tape(es.trades, instrument=ES).shown)
    assert_ladder_is_the_book(ladder, book_of(es.depth), 5)
    shown = ladder.rows.set_index("tick")
    want = es.trades.groupby(ES.to_tick(es.trades["price"]))["size"].sum()
    np.testing.assert_allclose(shown["volume"], want.reindex(shown.index).fillna(0))
    assert heat.bubble_source.data["volume"].sum() == pytest.approx(es.trades["size"].sum())
    assert len(heat.best_source.data["x"]) == len(whole.best_source.data["x"]) - 29
    # a view that loaded nothing shows the snapshot's state
    fresh = BookHeatmap(instrument=ES)
    fresh.apply(snapshot)
    assert float(fresh.grid.sum()) == pytest.approx(float(heatmap_grid(follower)[
        ["bid_size", "ask_size"]].to_numpy().sum()))
    assert fresh.x_range.end > fresh.x_range.start > 0


def test_views_from_a_store_through_marketdata(tmp_path, btc):
    """The README's notebook lines: depth, trades and liquidations read back from a store."""
    from data_access import open_store
    from tradeflow.marketdata import MarketData

    store = open_store(f"duckdb:///{tmp_path}/book.duckdb")
    try:
        store.add_instrument(BTC)
        store.write_trades("BTCUSDT", btc.trades)
        store.write_depth("BTCUSDT", btc.depth)
        store.write_liquidations("BTCUSDT", btc.liquidations)
        md = MarketData(store)
        span = dict(start="2026-01-06T14:00Z", end="2026-01-06T14:10Z")
        inst = md.store.instrument("BTCUSDT")
        depth, trades = md.depth("BTCUSDT", **span), md.trades("BTCUSDT", **span)
        heat = BookHeatmap(depth, trades, md.liquidations("BTCUSDT", **span), instrument=inst)
        assert float(heat.grid.sum()) == pytest.approx(
            float(BookHeatmap(btc.depth, instrument=BTC).grid.sum()))
        assert len(heat.liquidation_source.data["x"]) == len(btc.liquidations)
        assert len(Tape(trades, instrument=inst, min_size=0.5).shown) == \
            (btc.trades["size"] >= 0.5).sum()
        assert_ladder_is_the_book(DomLadder(depth, trades, instrument=inst),
                                  book_of(depth, BTC), 10)
    finally:
        store.close()


def test_tape_and_ladder_take_the_theme(es):
    tape = Tape(es.trades, instrument=ES)
    ladder = DomLadder(es.depth, es.trades, instrument=ES)
    light = THEMES["light"]
    for view in (tape, ladder):
        view.theme = "light"
        assert view.fig.background_fill_color == light.background
        assert f"background:{light.background}" in view.header.object
    sides = np.asarray(tape.source.data["side"])
    assert set(np.asarray(tape.source.data["color"])[sides > 0]) == {light.up}
    fills = {r.glyph.fill_color for r in ladder.fig.renderers if hasattr(r.glyph, "fill_color")}
    assert {light.up, light.down, light.accent} <= fills
    assert THEMES["dark"].up not in fills


def test_a_new_grid_setting_regrids_what_was_loaded(es):
    view = BookHeatmap(es.depth, es.trades, instrument=ES)
    view.param.update(interval="5s", tick_rows=2)
    grid = heatmap_grid(es.depth, "5s", 2)
    assert (np.diff(view.grid["time"].to_numpy().astype("int64")) == 5_000_000_000).all()
    assert (np.diff(view.grid["tick"].to_numpy()) == 2).all()
    assert float(view.grid.sum()) == pytest.approx((grid["bid_size"] + grid["ask_size"]).sum())


def test_the_views_follow_a_real_hub_subscription(tmp_path):
    """History loaded from the store, then the hub's Snapshot and Updates of one subscription
    (its heatmap study, book levels and tape) through the real Pipeline: the views end where
    loading everything stored at once does."""
    import asyncio

    from data_access import open_async_store
    from tradeflow.live import Pipeline

    inst = Instrument("BTCUSDT", 0.1, "SIM", "crypto")
    day = pd.Timestamp("2026-03-02", tz="UTC")
    sim = MarketSimulator(inst, seed=11, trades_per_day=150_000, depth_interval="5s")
    history = sim.generate(day, day + pd.Timedelta(minutes=3))
    live = [sim.generate(day + pd.Timedelta(seconds=s), day + pd.Timedelta(seconds=s + 15))
            for s in range(180, 300, 15)]

    async def submit(pipeline, batch):
        for kind, frame in (("trades", batch.trades), ("depth", batch.depth),
                            ("liquidations", batch.liquidations)):
            if len(frame):
                await getattr(pipeline, f"submit_{kind}")("BTCUSDT", frame, "sim")

    async def main():
        store = await open_async_store(f"duckdb:///{tmp_path}/hub.duckdb")
        try:
            await store.add_instrument(inst)
            pipeline = Pipeline(store)
            await pipeline.start()
            try:
                await submit(pipeline, history)
                depth, trades = await store.depth("BTCUSDT"), await store.trades("BTCUSDT")
                liqs = await store.liquidations("BTCUSDT")
                heat = BookHeatmap(depth, trades, liqs, instrument=inst, interval="5s")
                tape = Tape(trades, instrument=inst, rows=300)
                ladder = DomLadder(depth, trades, instrument=inst, levels=5)
                sub = pipeline.hub.subscribe("BTCUSDT", "1m", heat.study_settings,
                                             book_levels=5, tape=100)
                kinds = []

                async def follow():
                    while True:
                        message = await asyncio.wait_for(sub.__anext__(), 30)
                        kinds.append(type(message).__name__)
                        for view in (heat, tape, ladder):
                            view.apply(message)
                        if not sub.waiting:
                            return
                await follow()
                for batch in live:
                    await submit(pipeline, batch)
                    if sub.waiting:
                        await follow()
                sub.close()
                stored = (await store.depth("BTCUSDT"), await store.trades("BTCUSDT"),
                          await store.liquidations("BTCUSDT"))
                return (heat, tape, ladder), kinds, stored
            finally:
                await pipeline.stop()
        finally:
            await store.close()

    (heat, tape, ladder), kinds, (depth, trades, liqs) = asyncio.run(main())
    assert kinds[0] == "Snapshot" and kinds.count("Update") >= len(live)
    whole = BookHeatmap(depth, trades, liqs, instrument=inst, interval="5s")
    assert_same_grid(heat.grid, whole.grid)
    assert heat.grid["time"].to_numpy()[-1] == whole.grid["time"].to_numpy()[-1]
    assert heat.bubble_source.data["volume"].sum() == pytest.approx(trades["size"].sum())
    assert len(heat.liquidation_source.data["x"]) == len(liqs) > 0  # (one, live)
    np.testing.assert_allclose(heat.best_source.data["bid"][-1], whole.best_source.data["bid"][-1])
    pd.testing.assert_frame_equal(tape.shown, Tape(trades, instrument=inst, rows=300).shown)
    assert_ladder_is_the_book(ladder, book_of(depth, inst), 5)
    shown = ladder.rows.set_index("tick")
    want = trades.groupby(inst.to_tick(trades["price"]))["size"].sum()
    np.testing.assert_allclose(shown["volume"], want.reindex(shown.index).fillna(0))


def test_the_ladder_shares_the_heatmaps_price_range(es):
    heat = BookHeatmap(es.depth, es.trades, instrument=ES)
    before = (heat.y_range.start, heat.y_range.end)
    crosshair = next(t for t in heat.fig.tools if type(t).__name__ == "CrosshairTool")
    ladder = DomLadder(es.depth, es.trades, instrument=ES, y_range=heat.y_range,
                       crosshair=crosshair)
    assert ladder.fig.y_range is heat.y_range and crosshair in ladder.fig.tools
    assert (heat.y_range.start, heat.y_range.end) == before  # the ladder leaves it alone
    # its own range: the rows that fit at 18 px (here fewer than the ladder's), the touch in them
    own = DomLadder(es.depth, es.trades, instrument=ES)
    rows = own.rows
    fit = (own.height - 20) // 18
    assert len(rows) > fit
    assert (own.y_range.end - own.y_range.start) / ES.tick_size == pytest.approx(fit)
    best = [rows.loc[rows["bid"] > 0, "price"].max(), rows.loc[rows["ask"] > 0, "price"].min()]
    assert own.y_range.start < min(best) and max(best) < own.y_range.end
    tall = DomLadder(es.depth, es.trades, instrument=ES, height=2000)  # every row fits
    assert tall.y_range.start == pytest.approx((rows["tick"].min() - 0.5) * ES.tick_size)
    assert tall.y_range.end == pytest.approx((rows["tick"].max() + 0.5) * ES.tick_size)


def test_the_first_view_is_the_newest_depth_and_its_prices(btc):
    """Over ten minutes the price range is too wide for the book's levels to be seen: the view
    opens on the newest ``first_view`` seconds, and on the prices with depth in them."""
    view = BookHeatmap(btc.depth, btc.trades, instrument=BTC, first_view=120)
    times = pd.DatetimeIndex(view.grid["time"].to_numpy())
    last = times[-1] + pd.Timedelta(view.interval)
    opened = pd.Timestamp(view.x_range.start, unit="ms")  # (UTC shows as itself here)
    assert last - opened == pd.Timedelta(seconds=120)
    shown = view.grid.sel(time=slice(opened.tz_localize(None), None)).fillna(0)
    ticks = shown["tick"].to_numpy()[(shown.to_numpy() > 0).any(axis=0)]
    assert view.y_range.start == pytest.approx((ticks.min() - 2.5) * BTC.tick_size)
    assert view.y_range.end == pytest.approx((ticks.max() + 2.5) * BTC.tick_size)
    everything = BookHeatmap(btc.depth, btc.trades, instrument=BTC, first_view=3600)
    assert everything.x_range.start < view.x_range.start  # the ten minutes, when asked
    assert everything.y_range.end - everything.y_range.start > view.y_range.end - view.y_range.start
