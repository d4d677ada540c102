"""``dashboards.growing_frame.GrowingFrame``: a chart's history grown by live updates is the
history joined at every update, but joined only when read."""
from __future__ import annotations

import pandas as pd

import dashboards.growing_frame as growing
from dashboards.growing_frame import GrowingFrame

T0 = pd.Timestamp("2026-11-23 14:30", tz="UTC")  # a Monday


def _bars(start: int, n: int, volume: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"ts": [T0 + pd.Timedelta(minutes=start + i) for i in range(n)],
                         "volume": [volume + i for i in range(n)]})


def _updates():
    """(closed, current) of the hub's updates after 10 bars read (the last one forming)."""
    yield _bars(9, 0), _bars(9, 1, 5.0)      # the forming bar grows
    yield _bars(9, 0), _bars(9, 1, 6.0)
    yield _bars(9, 1, 7.0), _bars(10, 1)     # it closes, a new one forms
    yield _bars(10, 2, 3.0), _bars(12, 1)    # two close at once
    yield _bars(12, 0), _bars(12, 1, 9.0)


def test_updates_give_the_history_joined_at_every_update(monkeypatch):
    read = _bars(0, 10)
    rows = GrowingFrame(read)
    eager, forming = read, 1
    joins = []
    concat = pd.concat
    monkeypatch.setattr(growing.pd, "concat", lambda *a, **k: joins.append(1) or concat(*a, **k))
    for closed, current in _updates():
        keep = len(eager) - forming
        rows.grow(closed, current, lambda frame, keep=keep: frame.iloc[:keep])
        eager = concat([eager.iloc[:keep]] + [f for f in (closed, current) if len(f)],
                       ignore_index=True)  # (the chart's join before)
        forming = len(current)
        assert len(rows) == len(eager)
    assert not joins  # nothing joined while only updates came
    pd.testing.assert_frame_equal(rows.frame, eager)
    assert rows.frame is rows.frame  # joined once until the next update
    assert len(joins) == 2           # the closed parts, then the forming bar


def test_the_first_update_cuts_the_frame_read_once():
    rows = GrowingFrame(_bars(0, 10))
    cuts = []

    def cut(frame):
        cuts.append(len(frame))
        return frame.iloc[:9]
    for closed, current in _updates():
        rows.grow(closed, current, cut)
    assert cuts == [10]
    assert rows.frame["ts"].is_monotonic_increasing and rows.frame["ts"].is_unique
    assert len(rows) == 13 and rows.frame["volume"].iloc[-1] == 9.0
