"""The local order book (a study: DepthUpdates in, changed levels out) and the heatmap grid."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indicators.orderflow.book import BookCrossedError, OrderBook, heatmap_grid, to_matrix
from tradeflow.model import DepthUpdate


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_tick_size(bad):
    with pytest.raises(ValueError, match="tick size must be a positive number"):
        OrderBook(bad)


# ---- heatmap grid -----------------------------------------------------------------------------

def _depth(rows):
    ts, side, tick, size = zip(*rows)
    return pd.DataFrame({"ts": pd.to_datetime(list(ts), utc=True), "side": side, "tick": tick,
                         "size": [float(s) for s in size]})


T0 = "2024-01-01 00:00:00"
DEPTH = _depth([
    # bucket 00:00:00 -- two snapshots
    ("2024-01-01 00:00:00.2", -1, 10, 1), ("2024-01-01 00:00:00.2", -1, 11, 2),
    ("2024-01-01 00:00:00.2", 1, 12, 3),
    ("2024-01-01 00:00:00.7", -1, 10, 5), ("2024-01-01 00:00:00.7", 1, 12, 1),
    ("2024-01-01 00:00:00.7", 1, 13, 4),
    # bucket 00:00:01 -- one snapshot
    ("2024-01-01 00:00:01.5", -1, 9, 2), ("2024-01-01 00:00:01.5", 1, 13, 6),
])


def _rows(grid):
    return [(str(r.ts.time()), r.tick, r.bid_size, r.ask_size) for r in grid.itertuples()]


def test_heatmap_grid_hand_worked():
    assert _rows(heatmap_grid(DEPTH, "1s", how="last")) == [
        ("00:00:00", 10, 5.0, 0.0), ("00:00:00", 12, 0.0, 1.0), ("00:00:00", 13, 0.0, 4.0),
        ("00:00:01", 9, 2.0, 0.0), ("00:00:01", 13, 0.0, 6.0)]
    assert _rows(heatmap_grid(DEPTH, "1s", how="mean")) == [
        ("00:00:00", 10, 3.0, 0.0), ("00:00:00", 11, 1.0, 0.0), ("00:00:00", 12, 0.0, 2.0),
        ("00:00:00", 13, 0.0, 2.0), ("00:00:01", 9, 2.0, 0.0), ("00:00:01", 13, 0.0, 6.0)]
    assert _rows(heatmap_grid(DEPTH, "1s", how="max")) == [
        ("00:00:00", 10, 5.0, 0.0), ("00:00:00", 11, 2.0, 0.0), ("00:00:00", 12, 0.0, 3.0),
        ("00:00:00", 13, 0.0, 4.0), ("00:00:01", 9, 2.0, 0.0), ("00:00:01", 13, 0.0, 6.0)]
    # rows of 2 ticks: floor(tick/2)*2 -> 9->8, 10,11->10, 12,13->12; sizes summed per snapshot
    assert _rows(heatmap_grid(DEPTH, "1s", tick_rows=2, how="max")) == [
        ("00:00:00", 10, 5.0, 0.0), ("00:00:00", 12, 0.0, 5.0),
        ("00:00:01", 8, 2.0, 0.0), ("00:00:01", 12, 0.0, 6.0)]
    # one bucket of 2 s holding all three snapshots: last is the 01.5 one
    assert _rows(heatmap_grid(DEPTH, "2s")) == [("00:00:00", 9, 2.0, 0.0),
                                                 ("00:00:00", 13, 0.0, 6.0)]
    grid = heatmap_grid(DEPTH, "1s", how="max")
    assert list(grid.columns) == ["ts", "tick", "bid_size", "ask_size"]
    assert str(grid["ts"].dtype) == "datetime64[ns, UTC]" and grid["tick"].dtype == np.int64
    times, ticks, bid, ask = to_matrix(grid)
    assert ticks.tolist() == [9, 10, 11, 12, 13] and len(times) == 2
    assert bid.tolist() == [[0, 5, 2, 0, 0], [2, 0, 0, 0, 0]]
    assert ask.tolist() == [[0, 0, 0, 3, 4], [0, 0, 0, 0, 6]]
    assert times[0] == np.datetime64(T0, "ns")
    t2, k2, _, a2 = to_matrix(heatmap_grid(DEPTH, "1s", tick_rows=2))
    assert k2.tolist() == [8, 10, 12] and a2.tolist() == [[0, 0, 5], [0, 0, 6]]


def test_heatmap_grid_last_equals_last_snapshot_invariant():
    rng = np.random.default_rng(7)
    n_snap = 300
    snap_ts = np.sort(rng.choice(10_000, n_snap, replace=False)).astype("int64") * 1_000_000
    parts = []
    for t in snap_ts:
        k = rng.integers(1, 12)
        ticks = rng.choice(np.arange(-30, 30), k, replace=False)
        parts.append(pd.DataFrame({"ts": t, "side": np.where(ticks < 0, -1, 1), "tick": ticks,
                                   "size": rng.integers(1, 50, k).astype(float)}))
    depth = pd.concat(parts, ignore_index=True).sample(frac=1, random_state=1)  # any row order
    depth["ts"] = pd.to_datetime(depth["ts"], utc=True)
    grid = heatmap_grid(depth, "250ms", how="last")
    step = 250_000_000
    ns = depth["ts"].astype("int64").to_numpy()
    for b in np.unique(ns // step * step):
        last = ns[(ns // step * step) == b].max()
        snap = depth[ns == last]
        expect = sorted((int(r.tick), float(r.size) if r.side == -1 else 0.0,
                         float(r.size) if r.side == 1 else 0.0) for r in snap.itertuples())
        got = grid[grid["ts"].astype("int64") == b]
        assert list(zip(got.tick, got.bid_size, got.ask_size)) == expect


def test_heatmap_grid_empty():
    grid = heatmap_grid(DEPTH.iloc[:0])
    assert list(grid.columns) == ["ts", "tick", "bid_size", "ask_size"] and len(grid) == 0
    times, ticks, bid, ask = to_matrix(grid)
    assert len(times) == 0 and bid.shape == (0, 0)


@pytest.mark.parametrize("kwargs, msg", [
    ({"interval": "0s"}, "interval must be a positive duration"),
    ({"interval": "-1s"}, "interval must be a positive duration"),
    ({"interval": "soon"}, "not a duration"),
    ({"tick_rows": 0}, "tick_rows must be a whole number >= 1"),
    ({"tick_rows": 1.5}, "tick_rows must be a whole number >= 1"),
    ({"how": "median"}, "how must be one of last, mean, max"),
])
def test_heatmap_grid_bad_parameters(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        heatmap_grid(DEPTH, **kwargs)


def test_heatmap_grid_bad_frames():
    with pytest.raises(ValueError, match="missing column"):
        heatmap_grid(DEPTH.drop(columns="size"))
    bad = DEPTH.copy()
    bad.loc[0, "side"] = 0
    with pytest.raises(ValueError, match="side must be"):
        heatmap_grid(bad)
    with pytest.raises(ValueError, match="tick_rows must be"):
        to_matrix(heatmap_grid(DEPTH), tick_rows=0)


# ---- OrderBook: the live protocol (a depth update in, the changed levels out) -------------------

def depth(rows, **kw) -> DepthUpdate:
    """A DepthUpdate from (side, tick, size) tuples, at one time."""
    side, tick, size = (np.asarray(x) for x in zip(*rows)) if rows else ([], [], [])
    return DepthUpdate(pd.DataFrame({
        "ts": pd.DatetimeIndex(["2026-01-05 15:00"] * len(side), tz="UTC"),
        "side": np.asarray(side, "int8"), "tick": np.asarray(tick, "int64"),
        "size": np.asarray(size, float)}), **kw)


def changed(change_set) -> list:
    ch = change_set["levels"]
    assert ch.key == ("side", "tick")
    return [tuple(r) for r in ch.rows[["side", "tick", "size"]].itertuples(index=False)]


def test_the_book_applies_updates_as_given_whatever_their_ids():
    """Sequencing is the venue's (tradeflow.venues.binance): the study applies what it is given."""
    ob = OrderBook(0.1)
    ob.apply(depth([(-1, 1000, 1), (1, 1001, 1)], first_id=50, final_id=60))  # no snapshot first
    out = ob.apply(depth([(-1, 999, 2)], first_id=10, final_id=12))  # "older": applied all the same
    assert changed(out) == [(-1, 999, 2.0)] and ob.bids == {1000: 1.0, 999: 2.0}


def test_apply_refuses_bad_depth_updates_whole():
    ob = OrderBook(0.1)
    ob.apply(depth([(-1, 1000, 1), (1, 1001, 1)], snapshot=True, final_id=1))
    with pytest.raises(BookCrossedError, match="would cross the book"):
        ob.apply(depth([(-1, 999, 7), (-1, 1002, 1)], first_id=2, final_id=2))
    assert ob.bids == {1000: 1.0} and ob.asks == {1001: 1.0}  # nothing of it applied
    with pytest.raises(BookCrossedError, match="snapshot is crossed"):
        ob.apply(depth([(-1, 1002, 1), (1, 1001, 1)], snapshot=True))
    with pytest.raises(ValueError, match="side must be -1"):
        ob.apply(depth([(0, 1000, 1)]))
    with pytest.raises(ValueError, match="sizes must be finite and >= 0"):
        ob.apply(depth([(1, 1001, -1)]))
    with pytest.raises(ValueError, match="lacks|missing|column"):
        ob.apply(DepthUpdate(pd.DataFrame({"tick": [1], "size": [1.0]})))
    assert ob.bids == {1000: 1.0} and ob.asks == {1001: 1.0}
