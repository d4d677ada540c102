"""Binance's order-book rules (tradeflow.venues.binance): the local book kept from a snapshot and
depth diffs (spot U/u, futures pu), and DepthUpdates carrying Binance's ids."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indicators.orderflow.book import BookCrossedError
from tradeflow.venues.binance import BinanceBook, BookGapError
from tests.test_book import changed, depth


def _book():
    ob = BinanceBook(0.1)
    ob.apply_snapshot(bids=[("100.0", "1.5"), ("99.9", "2")], asks=[(100.1, 3), (100.2, 4)],
                      last_update_id=100)
    return ob


# ---- OrderBook: spot sequence ----------------------------------------------------------------

def test_spot_sequence_hand_worked():
    ob = _book()
    assert ob.best_bid() == (1000, 1.5) and ob.best_ask() == (1001, 3.0)
    # stale: u <= lastUpdateId, dropped, book unchanged
    assert ob.apply_diff(95, 100, [(100.0, 9)], []) is False
    assert ob.bids[1000] == 1.5
    # first event straddles 101: U=99 <= 101 <= u=103
    assert ob.apply_diff(99, 103, [(100.0, 0), (99.8, 5)], [(100.1, 2.5)]) is True  # removal
    assert 1000 not in ob.bids
    assert ob.best_bid() == (999, 2.0) and ob.best_ask() == (1001, 2.5)
    assert ob.last_update_id == 103
    # next event follows: U = 104
    assert ob.apply_diff(104, 106, [], [(100.3, 1), (100.1, 0)]) is True
    assert ob.best_ask() == (1002, 4.0)
    # a duplicate of an applied event is dropped as stale
    assert ob.apply_diff(104, 106, [], [(100.1, 7)]) is False
    lv = ob.levels(ts="2024-01-02 03:04:05")
    assert list(lv.columns) == ["ts", "side", "tick", "size"]
    assert lv["tick"].tolist() == [999, 998, 1002, 1003]
    assert lv["side"].tolist() == [-1, -1, 1, 1]
    assert lv["size"].tolist() == [2.0, 5.0, 4.0, 1.0]
    assert str(lv["ts"].dtype) == "datetime64[ns, UTC]"
    assert (lv["ts"] == pd.Timestamp("2024-01-02 03:04:05", tz="UTC")).all()
    assert ob.levels(n=1)["tick"].tolist() == [999, 1002]
    # gap: expected U=107
    with pytest.raises(BookGapError, match=r"expected U=107.*received U=109.*new snapshot"):
        ob.apply_diff(109, 110, [(99.9, 1)], [])
    assert ob.bids[999] == 2.0 and not ob.synced  # nothing applied, book stale
    with pytest.raises(BookGapError, match="new snapshot is needed"):
        ob.apply_diff(107, 108, [], [])
    assert issubclass(BookGapError, ValueError)
    ob.apply_snapshot([(99.0, 1)], [(101.0, 1)], 200)  # resync
    assert ob.synced and ob.apply_diff(201, 201, [(99.1, 1)], [])


def test_first_event_must_straddle_snapshot():
    ob = _book()
    with pytest.raises(BookGapError, match=r"U <= 101 <= u, received U=102, u=105.*new snapshot"):
        ob.apply_diff(102, 105, [], [])


def test_diff_before_snapshot_and_bad_ids():
    with pytest.raises(ValueError, match="snapshot first"):
        BinanceBook(0.5).apply_diff(1, 2, [], [])
    with pytest.raises(ValueError, match="U=5 is after final id u=4"):
        _book().apply_diff(5, 4, [], [])
    with pytest.raises(ValueError, match=">= 0"):
        _book().apply_diff(101, 101, [(100.0, -1)], [])
    with pytest.raises(ValueError, match="pairs"):
        _book().apply_diff(101, 101, [(100.0, 1, 2)], [])


# ---- futures pu -------------------------------------------------------------------------------

def test_futures_pu_sequence():
    ob = _book()
    assert ob.apply_diff(90, 100, [(99.5, 1)], [], prev_final_update_id=89) is False
    assert ob.apply_diff(98, 104, [(99.5, 1)], [], prev_final_update_id=97)  # first: straddles
    # futures ids need not be contiguous: U jumps, pu links to previous u
    assert ob.apply_diff(110, 115, [], [(100.2, 0)], prev_final_update_id=104)
    assert ob.last_update_id == 115 and 1002 not in ob.asks
    with pytest.raises(BookGapError, match=r"expected pu=115.*received pu=118.*new snapshot"):
        ob.apply_diff(120, 125, [], [], prev_final_update_id=118)


def test_futures_first_event_may_follow_snapshot_id_with_a_jump():
    # the snapshot id is the u of an event (dropped as stale); the next event's U jumps past
    # snapshot id + 1 but its pu links to it
    ob = _book()
    assert ob.apply_diff(97, 100, [], [], prev_final_update_id=96) is False
    assert ob.apply_diff(105, 108, [(99.8, 1)], [], prev_final_update_id=100)
    ob = _book()
    with pytest.raises(BookGapError, match="new snapshot"):
        ob.apply_diff(105, 108, [], [], prev_final_update_id=103)


# ---- crossed book -----------------------------------------------------------------------------

def test_crossed_book_rejected_whole_unless_fixed_by_same_event():
    ob = _book()
    with pytest.raises(BookCrossedError, match="cross"):
        ob.apply_diff(101, 101, [(100.1, 1), (99.9, 0)], [])
    assert ob.bids == {1000: 1.5, 999: 2.0} and ob.last_update_id == 100  # rolled back
    # a bid at the old best ask is fine when the same event removes that ask
    assert ob.apply_diff(101, 102, [(100.1, 1)], [(100.1, 0)])
    assert ob.best_bid() == (1001, 1.0) and ob.best_ask() == (1002, 4.0)
    with pytest.raises(ValueError, match="crossed"):
        BinanceBook(1).apply_snapshot([(10, 1)], [(10, 1)], 1)


def test_ticks_round_half_away_from_zero():
    ob = BinanceBook(0.5)
    ob.apply_snapshot([(0.25, 1), (-0.25, 1)], [(1.75, 1)], 1)
    assert set(ob.bids) == {1, -1} and set(ob.asks) == {4}


# ---- property: equals a dict-based reference --------------------------------------------------

_level = st.tuples(st.integers(-20, 20), st.sampled_from([0.0, 0.0, 1.0, 2.5, 7.0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(st.tuples(st.lists(_level, max_size=6), st.lists(_level, max_size=6),
                                 st.integers(1, 3), st.booleans()), max_size=25),
       futures=st.booleans())
def test_random_diffs_match_reference(events, futures):
    # bids on ticks < 0 and asks on ticks > 0 so the book never crosses
    ob = BinanceBook(0.25)
    ref_b, ref_a = {-1: 1.0}, {1: 1.0}
    ob.apply_snapshot([(-0.25, 1.0)], [(0.25, 1.0)], 10)
    u, prev = 10, None
    for bids, asks, n, resend in events:
        if resend and prev is not None:  # a repeated (already applied) event is dropped
            assert ob.apply_diff(*prev) is False
            assert ob.bids == ref_b and ob.asks == ref_a
        bids = [(-abs(t) - 1, q) for t, q in bids]
        asks = [(abs(t) + 1, q) for t, q in asks]
        U, new_u = u + 1, u + n
        prev = (U, new_u, [(t * 0.25, q) for t, q in bids], [(t * 0.25, q) for t, q in asks],
                u if futures else None)
        assert ob.apply_diff(*prev) is True
        for ref, levels in ((ref_b, bids), (ref_a, asks)):
            for t, q in levels:
                if q == 0:
                    ref.pop(t, None)
                else:
                    ref[t] = q
        u = new_u
        assert ob.bids == ref_b and ob.asks == ref_a
        assert ob.best_bid() == ((max(ref_b), ref_b[max(ref_b)]) if ref_b else None)
        assert ob.best_ask() == ((min(ref_a), ref_a[min(ref_a)]) if ref_a else None)
    lv = ob.levels()
    assert len(lv) == len(ref_b) + len(ref_a)
    assert dict(zip(lv.loc[lv.side == -1, "tick"], lv.loc[lv.side == -1, "size"])) == ref_b


# ---- BinanceBook: the live protocol (a depth update in, the changed levels out) -----------------

def test_apply_depth_updates_hand_worked():
    ob = BinanceBook(0.1)
    out = ob.apply(depth([(-1, 1000, 1.5), (-1, 999, 2), (1, 1001, 3), (1, 1002, 4)],
                         snapshot=True, final_id=100))
    assert changed(out) == [(-1, 999, 2.0), (-1, 1000, 1.5), (1, 1001, 3.0), (1, 1002, 4.0)]
    assert out["levels"].length == 4 and ob.synced and ob.last_update_id == 100
    # a diff with Binance ids: the first straddles 101; 1000 goes, 998 comes, 1001 unchanged
    out = ob.apply(depth([(-1, 1000, 0), (-1, 998, 5), (1, 1001, 3)], first_id=99,
                         final_id=103))
    assert changed(out) == [(-1, 1000, 0.0), (-1, 998, 5.0)] and out["levels"].length == 4
    assert str(out["levels"].rows["ts"].iloc[0]) == "2026-01-05 15:00:00+00:00"
    # older than the book: dropped, nothing changed; a gap: refused, the book goes stale
    assert changed(ob.apply(depth([(-1, 990, 1)], first_id=101, final_id=103))) == []
    with pytest.raises(BookGapError, match="expected U=104"):
        ob.apply(depth([(-1, 990, 1)], first_id=105, final_id=106))
    assert 990 not in ob.bids and not ob.synced
    # a new snapshot: every level that differs from the book is a change
    out = ob.apply(depth([(-1, 998, 5), (1, 1003, 1)], snapshot=True, final_id=200))
    assert changed(out) == [(-1, 999, 0.0), (1, 1001, 0.0), (1, 1002, 0.0), (1, 1003, 1.0)]
    assert ob.synced and out["levels"].length == 2
    # without ids (a venue that does not number its depth events): applied as given
    assert changed(ob.apply(depth([(1, 1003, 2)]))) == [(1, 1003, 2.0)]
