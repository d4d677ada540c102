"""The volume profile and TPO panes, the developing POC / VWAP overlays: what they put in their
Bokeh sources, over two simulated ES sessions (Tuesday 3 and Wednesday 4 March 2026), loaded
whole and followed live through a BarAggregator's updates."""
import numpy as np
import pandas as pd
import pytest

from dashboards.components.live_sources import BarNumbers, KeyedRows, set_small
from dashboards.components.profile import (VolumeProfilePane, auto_row_ticks, developing_overlay,
                                           row_prices)
from dashboards.components.theme import THEMES, figure
from dashboards.components.tpo import TPOPane
from dashboards.components.vwap import vwap_overlay
from bokeh.document import Document
from bokeh.document.events import (ColumnDataChangedEvent, ColumnsPatchedEvent,
                                   ColumnsStreamedEvent)
from bokeh.models import ColumnDataSource, Range1d
from indicators.profile import developing_profile
from tradeflow.bars import BarAggregator, build
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.live.hub import Update
from tradeflow.model import Instrument

ES = Instrument("ES", 0.25, session="America/Chicago 08:30-15:15,17:00-16:00")
SPEC = "5m"


@pytest.fixture(scope="module")
def trades():
    return MarketSimulator(ES, seed=7).generate("2026-03-03 13:00", "2026-03-04 19:00").trades


@pytest.fixture(scope="module")
def whole(trades):
    return build(trades, SPEC, ES)


def live(trades, start: int, chunk: int = 4000):
    """(bars and cells of the first ``start`` trades, the aggregator's updates of the rest)."""
    agg = BarAggregator(ES, SPEC)
    agg.update(trades.iloc[:start])
    bars, cells = build(trades.iloc[:start], SPEC, ES)
    updates = [agg.update(trades.iloc[i:i + chunk]) for i in range(start, len(trades), chunk)]
    return bars, cells, updates


def data(source) -> pd.DataFrame:
    return pd.DataFrame({k: np.asarray(v) for k, v in source.data.items()})


class Spy:
    """The patches, streams and whole replacements a source sends, read from its document's
    events (what a served page would receive)."""

    def __init__(self, source):
        self.patched, self.streamed, self.replaced = [], [], 0
        doc = Document()
        doc.add_root(source)
        doc.on_change(self._event)

    def _event(self, event) -> None:
        if isinstance(event, ColumnsPatchedEvent):
            self.patched.append({k: [i for i, _ in v] for k, v in event.patches.items()})
        elif isinstance(event, ColumnsStreamedEvent):
            self.streamed.append(len(next(iter(event.data.values()))))
        elif isinstance(event, ColumnDataChangedEvent):  # source.data = ...: all rows sent
            self.replaced += 1

    def rows_patched(self) -> set:
        return {i for p in self.patched for v in p.values() for i in v}


def days(ts) -> np.ndarray:
    return ES.session.trading_date(pd.DatetimeIndex(ts)).asi8


# --------------------------------------------------------------------------------------------
# volume profile


def test_composite_rows_sum_to_the_bars_volume_with_the_poc_the_largest_row(whole):
    bars, cells = whole
    pane = VolumeProfilePane(instrument=ES, range="composite", row_ticks=1, bars=bars,
                             footprint=cells)
    rows = data(pane.rows)
    assert rows["volume"].sum() == pytest.approx(bars["volume"].sum())
    assert (rows["ask"] + rows["bid"]).sum() == pytest.approx(bars["volume"].sum())
    poc = rows[rows["zone"] == "poc"]
    assert len(poc) == 1 and poc["volume"].iloc[0] == rows["volume"].max()
    assert pane.poc_line.location == pytest.approx(poc["y"].iloc[0])
    assert poc["y"].iloc[0] == pytest.approx(poc["key"].iloc[0] * ES.tick_size)


@pytest.mark.parametrize("pct", [70, 50, 90])
def test_the_value_area_holds_its_share_in_one_block_around_the_poc(whole, pct):
    bars, cells = whole
    pane = VolumeProfilePane(instrument=ES, range="composite", value_area_pct=pct, bars=bars,
                             footprint=cells)
    rows = data(pane.rows).sort_values("key")
    inside = rows["zone"].isin(["poc", "va"]).to_numpy()
    assert rows["volume"][inside].sum() >= pct / 100 * rows["volume"].sum()
    first, last = np.flatnonzero(inside)[[0, -1]]
    assert inside[first:last + 1].all()  # contiguous
    keys = rows["key"].to_numpy()
    assert pane.va_box.bottom == pytest.approx((keys[first] - 0.5) * ES.tick_size)
    assert pane.va_box.top == pytest.approx((keys[last] + 0.5) * ES.tick_size)


def test_a_session_profile_holds_the_latest_day_and_each_day_is_drawn_on_the_chart(whole):
    bars, cells = whole
    pane = VolumeProfilePane(instrument=ES, bars=bars, footprint=cells)
    day = days(bars["ts"])
    latest = bars[day == day.max()]
    assert data(pane.rows)["volume"].sum() == pytest.approx(latest["volume"].sum())
    assert pane.figure.title.text == "Volume profile · 04 Mar"
    on_chart = data(pane.session_rows)
    assert on_chart["key"].str.split(":").str[0].nunique() == len(np.unique(day))
    first_x = {d: int(np.flatnonzero(day == d)[0]) for d in np.unique(day)}
    lefts = on_chart.groupby(on_chart["key"].str.split(":").str[0].astype("int64"))["left"]
    assert {d: v for d, v in lefts.min().items()} == {d: x - 0.5 for d, x in first_x.items()}


def test_the_visible_range_profiles_the_bars_in_view(whole):
    bars, cells = whole
    x_range = Range1d(-1, len(bars) + 1)
    pane = VolumeProfilePane(instrument=ES, range="visible", x_range=x_range, bars=bars,
                             footprint=cells)
    assert data(pane.rows)["volume"].sum() == pytest.approx(bars["volume"].sum())
    x_range.start, x_range.end = 99.6, 140.2  # bars 100..140 in view
    assert data(pane.rows)["volume"].sum() == pytest.approx(bars["volume"][100:141].sum())
    assert pane.figure.title.text == "Volume profile · visible range"


def test_a_served_visible_range_follows_the_view_once_it_has_settled(whole):
    bars, cells = whole
    x_range = Range1d(-1, len(bars) + 1)
    pane = VolumeProfilePane(instrument=ES, range="visible", x_range=x_range, bars=bars,
                             footprint=cells)
    doc = Document()
    doc.add_root(pane.figure)  # as in a served page
    for start in (10, 20, 30):  # a pan: three moves, one refresh after them
        x_range.start, x_range.end = start, start + 50
    assert len(doc.session_callbacks) == 1
    assert data(pane.rows)["volume"].sum() == pytest.approx(bars["volume"].sum())  # not yet
    doc.session_callbacks[0].callback()
    assert data(pane.rows)["volume"].sum() == pytest.approx(bars["volume"][30:81].sum())


def test_naked_pocs_are_the_earlier_sessions_pocs_no_later_bar_reached(whole):
    bars, cells = whole
    pane = VolumeProfilePane(instrument=ES, row_ticks=1, bars=bars, footprint=cells)
    day = days(cells["ts"])
    first = cells[day == day.min()]
    by_tick = first.groupby("tick")["volume"].sum()
    poc = by_tick.idxmax()
    later = cells[day > day.min()]
    reached = ((later.groupby("ts")["tick"].min() <= poc)
               & (later.groupby("ts")["tick"].max() >= poc)).any()
    shown = data(pane.naked_rows)
    assert len(shown) == (0 if reached else 1)
    if not reached:
        assert shown["y"].iloc[0] == pytest.approx(poc * ES.tick_size)
        assert shown["label"].iloc[0] == "nPOC 03 Mar"


def test_rows_of_several_ticks_keep_the_volume(whole):
    bars, cells = whole
    pane = VolumeProfilePane(instrument=ES, range="composite", row_ticks=4, bars=bars,
                             footprint=cells)
    rows = data(pane.rows)
    assert (rows["key"] % 4 == 0).all()
    assert rows["volume"].sum() == pytest.approx(bars["volume"].sum())
    assert rows["height"].iloc[0] == pytest.approx(4 * ES.tick_size * 0.85)
    pane.row_ticks = 2  # a changed setting redraws from the bars held
    rows = data(pane.rows)
    assert (rows["key"] % 2 == 0).all() and (rows["key"] % 4 != 0).any()
    assert rows["volume"].sum() == pytest.approx(bars["volume"].sum())


@pytest.mark.parametrize("mode", ["session", "composite"])
def test_live_patches_only_the_rows_that_changed_and_ends_equal_to_a_fresh_load(trades, whole,
                                                                                mode):
    bars, cells, updates = live(trades, len(trades) - 30_000)  # the last day goes on live
    pane = VolumeProfilePane(instrument=ES, range=mode, bars=bars, footprint=cells)
    spy = Spy(pane.rows)
    start = len(pane.rows.data["key"])
    for update in updates:
        before = data(pane.rows)
        spy.patched.clear()
        pane.apply(update)
        after = data(pane.rows)
        changed = {i for i in range(len(before))
                   if not before.iloc[i].equals(after.iloc[i])}
        assert spy.rows_patched() == changed
        assert len(changed) < len(after)  # a live update touches a few rows, not all
    fresh = VolumeProfilePane(instrument=ES, range=mode, bars=whole[0], footprint=whole[1])
    mine, theirs = (data(p.rows).sort_values("key", ignore_index=True) for p in (pane, fresh))
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    assert sum(spy.streamed) == len(after) - start  # rows new to the profile, streamed once
    assert spy.replaced == 0  # never replaced within a session


def test_a_forming_bar_that_closes_without_being_resent_is_counted_once(whole):
    bars, cells = whole
    head, nxt = bars.iloc[:200], bars.iloc[200:201]
    pane = VolumeProfilePane(instrument=ES, range="composite", bars=head,
                             footprint=cells[cells["ts"] < nxt["ts"].iloc[0]])
    pane.apply(Update(closed=bars.iloc[:0], closed_footprint=cells.iloc[:0], current=nxt,
                      current_footprint=cells[cells["ts"] == nxt["ts"].iloc[0]]))
    assert data(pane.rows)["volume"].sum() == pytest.approx(bars["volume"].iloc[:201].sum())
    assert pane.numbers.last == 200


def test_the_theme_recolours_without_touching_the_rows(whole):
    bars, cells = whole
    pane = VolumeProfilePane(instrument=ES, bars=bars, footprint=cells)
    holder = pane.rows.data
    pane.theme = "light"
    assert pane.figure.background_fill_color == THEMES["light"].background
    assert pane.zone_colors["transform"].palette[0] == THEMES["light"].poc
    assert pane.rows.data is holder


def test_colour_modes_show_their_own_bars(whole):
    bars, cells = whole
    pane = VolumeProfilePane(instrument=ES, bars=bars, footprint=cells, color_by="bid_ask")
    assert pane.by_bid.visible and pane.by_ask.visible and not pane.by_volume.visible
    pane.color_by = "delta"
    assert pane.by_delta.visible and not pane.by_bid.visible
    rows = data(pane.rows)
    assert ((rows["side"] == "up") == (rows["ask"] >= rows["bid"])).all()


def test_bad_input_says_what_is_missing(whole):
    with pytest.raises(ValueError, match="instrument"):
        VolumeProfilePane()
    with pytest.raises(ValueError, match="footprint cells are needed"):
        VolumeProfilePane(instrument=ES).load(whole[0])


# --------------------------------------------------------------------------------------------
# TPO


def periods_touching(bars: pd.DataFrame, rows: int) -> dict:
    """Row key -> number of 30-minute periods of the regular session whose bars traded there,
    counted here from the bars alone."""
    local = pd.DatetimeIndex(bars["ts"]).tz_convert(ES.session.timezone)
    minutes = local.hour * 60 + local.minute
    rth = (minutes >= 8 * 60 + 30) & (minutes < 15 * 60 + 15)
    b = bars[rth].assign(period=(minutes[rth] - (8 * 60 + 30)) // 30)
    lo = np.floor_divide(np.round(b["low"] / ES.tick_size).astype("int64"), rows)
    hi = np.floor_divide(np.round(b["high"] / ES.tick_size).astype("int64"), rows)
    span = pd.DataFrame({"period": b["period"], "lo": lo, "hi": hi}).groupby("period")
    count: dict = {}
    for _, (a, z) in span.agg({"lo": "min", "hi": "max"}).iterrows():
        for r in range(a, z + 1):
            count[r * rows] = count.get(r * rows, 0) + 1
    return count


@pytest.mark.parametrize("rows", [1, 4])
def test_tpo_letters_per_row_are_the_periods_that_traded_there(whole, rows):
    bars, _ = whole
    day = days(bars["ts"])
    latest = bars[day == day.max()]
    pane = TPOPane(instrument=ES, row_ticks=rows, bars=bars)
    shown = data(pane.rows)
    expected = periods_touching(latest, rows)
    assert dict(zip(shown["key"], shown["letters"].str.len())) == expected
    assert all(len(set(s)) == len(s) for s in shown["letters"])  # one letter per period
    assert set("".join(shown["letters"])) <= set("ABCDEFGHIJKLMNO")
    poc = shown[shown["zone"] == "poc"]
    assert len(poc) == 1 and len(poc["letters"].iloc[0]) == shown["letters"].str.len().max()
    assert (shown["weight"] == "bold").sum() == 1


def test_tpo_value_area_initial_balance_and_single_prints(whole):
    bars, _ = whole
    pane = TPOPane(instrument=ES, row_ticks=2, bars=bars)
    shown = data(pane.rows).sort_values("key")
    counts = shown["letters"].str.len().to_numpy()
    inside = shown["zone"].isin(["poc", "va"]).to_numpy()
    assert counts[inside].sum() >= 0.7 * counts.sum()
    # the initial balance bar spans the rows the first two periods (A, B) traded
    ab = shown[shown["letters"].str.contains("A|B")]
    lo, hi = row_prices([ab["key"].min(), ab["key"].max()], 2, ES.tick_size)[0]
    assert pane.ib.data["y0"][0] == pytest.approx(lo - ES.tick_size)
    assert pane.ib.data["y1"][0] == pytest.approx(hi + ES.tick_size)
    single = shown["single"].to_numpy() > 0
    multi = counts >= 2
    for i in np.flatnonzero(single):  # one letter, with multi-letter rows above and below
        assert counts[i] == 1 and multi[:i].any() and multi[i + 1:].any()


def test_tpo_composite_merges_the_sessions(whole):
    bars, _ = whole
    pane = TPOPane(instrument=ES, range="composite", row_ticks=4, bars=bars)
    day = days(bars["ts"])
    expected: dict = {}
    for d in np.unique(day):
        for k, n in periods_touching(bars[day == d], 4).items():
            expected[k] = expected.get(k, 0) + n
    shown = data(pane.rows)
    assert dict(zip(shown["key"], shown["letters"].str.len())) == expected
    assert pane.figure.title.text.startswith("TPO · composite of 2 sessions")


def test_tpo_live_patches_the_rows_whose_letters_changed(trades, whole):
    bars, _, updates = live(trades, len(trades) - 40_000, chunk=2000)
    pane = TPOPane(instrument=ES, row_ticks=4, bars=bars)
    spy = Spy(pane.rows)
    patched_any = False
    for update in updates:
        before = data(pane.rows)
        spy.patched.clear()
        pane.apply(update)
        after = data(pane.rows)
        changed = {i for i in range(len(before)) if not before.iloc[i].equals(after.iloc[i])}
        assert spy.rows_patched() == changed
        patched_any |= bool(changed)
    assert patched_any
    fresh = TPOPane(instrument=ES, row_ticks=4, bars=whole[0])
    mine, theirs = (data(p.rows).sort_values("key", ignore_index=True) for p in (pane, fresh))
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)


# --------------------------------------------------------------------------------------------
# overlays on the price chart


def test_developing_lines_equal_the_batch_study_at_each_bar(whole):
    bars, cells = whole
    overlay = developing_overlay(figure(THEMES["dark"]), ES, bars, cells)
    shown = data(overlay.source).dropna()
    dev = developing_profile(cells, ES.session)
    assert len(shown) == len(bars)
    assert shown["x"].tolist() == list(range(len(bars)))
    assert np.allclose(shown["poc"], dev["poc"].astype(float) * ES.tick_size)
    assert np.allclose(shown["vah"], dev["vah"].astype(float) * ES.tick_size)
    # one break (a NaN row) between the two trading days, so the lines do not join them
    assert data(overlay.source)["poc"].isna().sum() == 1


@pytest.mark.parametrize("make", ["vwap", "developing"])
def test_overlays_stream_closed_bars_once_and_patch_the_forming_one(trades, whole, make):
    bars, cells, updates = live(trades, len(trades) - 30_000, chunk=1500)
    fig = figure(THEMES["dark"])
    overlay = (vwap_overlay(fig, ES, bars) if make == "vwap"
               else developing_overlay(fig, ES, bars, cells))
    spy = Spy(overlay.source)
    for update in updates:
        n = len(overlay.source.data["x"])
        spy.patched.clear()
        spy.streamed.clear()
        overlay.apply(update)
        new_bars = len(update.closed) + len(update.current) - 1  # the forming bar was shown
        assert sum(spy.streamed) == new_bars
        assert spy.rows_patched() <= {n - 1}  # only the last row shown: the forming bar
    fresh = (vwap_overlay(figure(THEMES["dark"]), ES, whole[0]) if make == "vwap"
             else developing_overlay(figure(THEMES["dark"]), ES, *whole))
    pd.testing.assert_frame_equal(data(overlay.source), data(fresh.source), check_exact=False,
                                  rtol=1e-9)


def test_vwap_bands_are_symmetric_and_ordered(whole):
    bars, _ = whole
    overlay = vwap_overlay(figure(THEMES["light"]), ES, bars, bands=(1, 2), theme="light")
    rows = data(overlay.source).dropna()
    assert set(rows.columns) == {"x", "vwap", "upper_1", "lower_1", "upper_2", "lower_2"}
    assert np.allclose(rows["upper_2"] - rows["vwap"], 2 * (rows["upper_1"] - rows["vwap"]))
    assert np.allclose(rows["vwap"] - rows["lower_1"], rows["upper_1"] - rows["vwap"])
    assert (rows["upper_1"] >= rows["vwap"]).all()
    assert overlay.vwap.glyph.line_color == THEMES["light"].palette[1]
    with pytest.raises(ValueError, match="bands"):
        vwap_overlay(figure(THEMES["light"]), ES, bars, bands=(0,))


# --------------------------------------------------------------------------------------------
# the helpers


def test_keyed_rows_patch_changes_stream_new_keys_and_replace_when_keys_go():
    source = ColumnDataSource()
    rows = KeyedRows(source, "key")
    assert rows.show({"key": [1, 2, 3], "v": [1.0, 2.0, 3.0]}) == "replaced"
    spy = Spy(source)
    assert rows.show({"key": [0, 1, 2, 3], "v": [9.0, 1.0, 5.0, 3.0]}) == "patched"
    assert spy.patched == [{"v": [1]}] and spy.streamed == [1]
    assert dict(zip(source.data["key"], source.data["v"])) == {1: 1.0, 2: 5.0, 3: 3.0, 0: 9.0}
    assert rows.show({"key": [0, 1, 2, 3], "v": [9.0, 1.0, 5.0, 3.0]}) == "same"
    assert rows.show({"key": [2, 3], "v": [5.0, 3.0]}) == "replaced"
    assert list(source.data["key"]) == [2, 3]


def test_bar_numbers_give_a_resent_forming_bar_its_own_x(whole):
    bars, cells = whole
    numbers = BarNumbers()
    assert numbers.load(bars.iloc[:10]).tolist() == list(range(10))
    step = numbers.advance(Update(closed=bars.iloc[9:11], closed_footprint=cells.iloc[:0],
                                  current=bars.iloc[11:12], current_footprint=cells.iloc[:0]))
    assert step.closed_x.tolist() == [9, 10] and step.current_x.tolist() == [11]
    step = numbers.advance(Update(closed=bars.iloc[:0], closed_footprint=cells.iloc[:0],
                                  current=bars.iloc[12:13], current_footprint=cells.iloc[:0]))
    # bar 11 closed without being re-sent: handed on as closed, at its own x
    assert step.closed_x.tolist() == [11] and step.current_x.tolist() == [12]
    assert step.closed["ts"].tolist() == bars["ts"].iloc[11:12].tolist()


def test_small_sources_are_sent_only_when_their_marks_move():
    source = ColumnDataSource({"y": [1.0], "label": ["HVN"]})
    spy = Spy(source)
    assert not set_small(source, {"y": [1.0], "label": ["HVN"]})
    assert set_small(source, {"y": [1.25], "label": ["HVN"]})
    assert set_small(source, {"y": [1.25, 2.0], "label": ["HVN", "LVN"]})
    assert spy.replaced == 2


def test_tpo_by_hand_single_prints_tails_and_the_initial_balance():
    # Wednesday 4 March 2026, Chicago on CST: 14:30 UTC is the 08:30 open (period A)
    open_ = pd.Timestamp("2026-03-04 14:30", tz="UTC")
    spans = [(0, 100, 110), (30, 100, 102), (60, 108, 112)]  # minutes after the open, low, high
    bars = pd.DataFrame({"ts": [open_ + pd.Timedelta(minutes=m) for m, _, _ in spans],
                         "open": [lo * 0.25 for _, lo, _ in spans],
                         "high": [hi * 0.25 for _, _, hi in spans],
                         "low": [lo * 0.25 for _, lo, _ in spans],
                         "close": [hi * 0.25 for _, _, hi in spans], "volume": 1.0})
    pane = TPOPane(instrument=ES, row_ticks=1, bars=bars)
    shown = data(pane.rows).set_index("key")
    assert shown.loc[100, "letters"] == "AB" and shown.loc[105, "letters"] == "A"
    assert shown.loc[109, "letters"] == "AC" and shown.loc[112, "letters"] == "C"
    # rows 103..107: one TPO between rows of two -- single prints; 111, 112: a tail, not
    singles = sorted(shown.index[shown["single"] > 0])
    assert singles == [103, 104, 105, 106, 107]
    assert pane.ib.data["y0"][0] == pytest.approx(99.5 * 0.25)  # A and B: 100..110
    assert pane.ib.data["y1"][0] == pytest.approx(110.5 * 0.25)
    assert pane.figure.title.text == "TPO · 04 Mar · 30min · 1-tick rows"


def test_live_across_a_session_boundary_starts_the_new_profile_and_keeps_the_old_on_the_chart(
        trades, whole):
    bars, cells, updates = live(trades, len(trades) // 5, chunk=6000)
    assert days(bars["ts"]).max() < days(whole[0]["ts"]).max()  # the new day comes live
    pane = VolumeProfilePane(instrument=ES, bars=bars, footprint=cells)
    spy = Spy(pane.rows)
    for update in updates:
        pane.apply(update)
    assert spy.replaced == 1  # the new session's rows replace the old day's, once
    fresh = VolumeProfilePane(instrument=ES, bars=whole[0], footprint=whole[1])
    for source in ("rows", "session_rows", "naked_rows"):
        # (the labels' x follows the volume axis, which rescales seldom: not compared)
        mine, theirs = (data(getattr(p, source)).drop(columns="x", errors="ignore")
                        for p in (pane, fresh))
        key = "key" if "key" in mine else "y"
        mine, theirs = (f.sort_values(key, ignore_index=True) for f in (mine, theirs))
        pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)


def test_the_automatic_row_size_keeps_the_latest_day_under_its_rows(whole):
    bars, _ = whole
    day = days(bars["ts"])
    span = int(round((bars["high"][day == day.max()].max()
                      - bars["low"][day == day.max()].min()) / ES.tick_size)) + 1
    for most in (300, 40, 10):
        n = auto_row_ticks(bars, ES, most)
        assert span / n <= most
        assert n == 1 or span / max(k for k in (1, 2, 4, 5, 8, 10, 20, 25, 40, 50, 100)
                                    if k < n) > most  # the smallest nice size that fits
    wide = bars.assign(high=bars["high"] + 1000)  # a day of 4,000 more ticks
    pane = VolumeProfilePane(instrument=ES, range="session", bars=wide, footprint=whole[1])
    assert pane.row_size == auto_row_ticks(wide, ES, 300) > 1
    assert pane.rows_title.text == f"{pane.row_size}-tick rows"  # (above the title)
    assert (data(pane.rows)["key"] % pane.row_size == 0).all()


def test_overnight_the_tpo_shows_the_last_regular_session_or_says_why_it_is_empty(whole):
    """ES's regular hours are 14:30-21:15 UTC in March. At 02:00 UTC the new trading day has
    overnight bars only: the pane shows the last session that had regular hours; with no such
    session loaded it says why it is empty rather than showing a blank pane."""
    bars, _ = whole
    night = bars[bars["ts"] < pd.Timestamp("2026-03-04 02:00", tz="UTC")]
    assert days(night["ts"]).max() == pd.Timestamp("2026-03-04").value  # the new day has begun
    pane = TPOPane(instrument=ES, row_ticks=2, bars=night)
    day_before = night[days(night["ts"]) == pd.Timestamp("2026-03-03").value]
    alone = TPOPane(instrument=ES, row_ticks=2, bars=day_before)
    assert pane.figure.title.text.startswith("TPO · 03 Mar")
    pd.testing.assert_frame_equal(data(pane.rows).sort_values("key").reset_index(drop=True),
                                  data(alone.rows).sort_values("key").reset_index(drop=True))
    only_night = night[days(night["ts"]) == pd.Timestamp("2026-03-04").value]
    empty = TPOPane(instrument=ES, row_ticks=2, bars=only_night)
    assert len(empty.rows.data["key"]) == 0
    assert empty.figure.title.text == "TPO · waiting for regular hours"


def test_patch_rows_sends_only_the_columns_that_changed():
    """``live_sources.patch_rows``: one row (the forming bar's, at every update) and several:
    only the columns whose values changed are patched (NaN left NaN is no change), a row as
    plain values, text into a list column as a list."""
    from bokeh.models import ColumnDataSource

    from dashboards.components.live_sources import patch_rows

    source = ColumnDataSource({"x": np.arange(3), "v": np.array([1.0, np.nan, 3.0]),
                               "w": np.array([np.nan, 2.0, 5.0]), "text": ["a", "b", "c"]})
    doc = Document()
    doc.add_root(source)
    events = []
    doc.on_change(events.append)
    assert patch_rows(source, 1, 2, {"x": [1], "v": [np.nan], "w": [4.0], "text": ["b"]}) == ["w"]
    assert events[-1].patches == {"w": [(1, 4.0)]} and type(events[-1].patches["w"][0][1]) is float
    assert patch_rows(source, 0, 1, {"x": [0], "v": [1.0], "w": [np.nan], "text": ["z"]}) == ["text"]
    assert patch_rows(source, 1, 3, {"x": np.array([1, 2]), "v": np.array([np.nan, 3.0]),
                                     "w": np.array([4.0, 5.0]),
                                     "text": np.array(["b", "d"], dtype=object)}) == ["text"]
    assert isinstance(source.data["text"], list) and source.data["text"] == ["z", "b", "d"]
    assert patch_rows(source, 2, 3, {"x": [2], "v": [3.0], "w": [5.0], "text": ["d"]}) == []
    assert len(events) == 3
