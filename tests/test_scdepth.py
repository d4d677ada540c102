"""Sierra Chart market-depth files (.depth): reading, replay into book snapshots, import."""
from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_access import open_store
from indicators.orderflow.book import OrderBook, heatmap_grid
from tradeflow.importer import DEPTH_LEVELS, import_files
from tradeflow.ingest import scdepth
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.files import guess_format, read_file
from tradeflow.model import Instrument
from tradeflow.venues.sierra import SierraReplay, apply_sierra, replay_sierra

T0 = pd.Timestamp("2026-01-01 14:30:00", tz="UTC")
CLEAR, ADD_BID, ADD_ASK, MOD_BID, MOD_ASK, DEL_BID, DEL_ASK = 1, 2, 3, 4, 5, 6, 7


def commands(rows) -> pd.DataFrame:
    """Rows of (ms after T0, command, price, quantity, end_of_batch)."""
    ms, cmd, price, qty, eob = zip(*rows) if rows else ((),) * 5
    return pd.DataFrame({
        "ts": T0 + pd.to_timedelta(np.array(ms, dtype="int64"), unit="ms"),
        "command": np.array(cmd, dtype="int8"),
        "price": np.array(price, dtype="float64"),
        "quantity": np.array(qty, dtype="float64"),
        "end_of_batch": np.array(eob, dtype=bool),
    })


def depth(rows) -> pd.DataFrame:
    """Expected snapshots: rows of (ms after T0, side, tick, size)."""
    ms, side, tick, size = zip(*rows) if rows else ((),) * 4
    return pd.DataFrame({
        "ts": (T0 + pd.to_timedelta(np.array(ms, dtype="int64"), unit="ms")).as_unit("ns"),
        "side": np.array(side, dtype="int8"),
        "tick": np.array(tick, dtype="int64"),
        "size": np.array(size, dtype="float64"),
    })


# ---- a hand-worked replay ------------------------------------------------------------------
# tick size 0.25: 100.00 is tick 400, 99.75 is 399, 100.25 is 401, 100.50 is 402, 101.00 is 404
HAND = commands([
    (0, CLEAR, 0, 0, False),          # second 0, batch 1: a full snapshot
    (0, ADD_BID, 100.00, 10, False),
    (0, ADD_BID, 99.75, 5, False),
    (0, ADD_ASK, 100.50, 7, False),
    (0, ADD_ASK, 100.25, 3, True),    # book: bids 400:10 399:5, asks 401:3 402:7
    (300, MOD_BID, 100.00, 12, False),  # batch 2
    (300, DEL_ASK, 100.25, 0, True),  # book: bids 400:12 399:5, asks 402:7  <- second 0
    (600, MOD_ASK, 100.25, 4, False),  # batch 3 starts in second 0 ...: a MODIFY adds the level
    (1200, DEL_BID, 99.75, 0, True),  # ... ends in second 1: bids 400:12, asks 401:4 402:7
    (1500, DEL_BID, 98.00, 0, True),  # deleting a missing level: nothing    <- second 1
    (2100, CLEAR, 0, 0, False),       # second 2: cleared and rebuilt in one batch
    (2100, ADD_ASK, 101.00, 1, False),
    (2100, ADD_BID, 100.75, 2, False),
    (2200, ADD_BID, 100.75, 0, True),  # an ADD of quantity 0 removes: asks 404:1  <- second 2
    (3000, ADD_BID, 100.00, 9, False),  # second 3: no batch ends, no snapshot
])


def test_hand_worked_replay():
    got = replay_sierra(HAND, 0.25, "1s")
    want = depth([
        (300, -1, 400, 12), (300, -1, 399, 5), (300, 1, 402, 7),
        (1500, -1, 400, 12), (1500, 1, 401, 4), (1500, 1, 402, 7),
        (2200, 1, 404, 1),
    ])
    pd.testing.assert_frame_equal(got, want)
    # nearest level a side only
    top = replay_sierra(HAND, 0.25, "1s", levels=1)
    pd.testing.assert_frame_equal(top, depth([
        (300, -1, 400, 12), (300, 1, 402, 7), (1500, -1, 400, 12), (1500, 1, 401, 4),
        (2200, 1, 404, 1)]))
    # the heatmap of the snapshots: one column a second
    grid = heatmap_grid(got, "1s")
    assert grid["ts"].tolist() == [T0] * 3 + [T0 + pd.Timedelta("1s")] * 3 + \
        [T0 + pd.Timedelta("2s")]
    assert grid["tick"].tolist() == [399, 400, 402, 400, 401, 402, 404]
    assert grid["bid_size"].tolist() == [5, 12, 0, 12, 0, 0, 0]
    assert grid["ask_size"].tolist() == [0, 0, 7, 0, 4, 7, 1]


def test_apply_sierra_on_order_book():
    ob = OrderBook(0.25)
    apply_sierra(ob, HAND)  # the last command (a bid of 9 at 100.00) is applied too
    assert ob.bids == {400: 9.0} and ob.asks == {404: 1.0}
    assert ob.best_bid() == (400, 9.0) and ob.best_ask() == (404, 1.0)


def test_chunks_give_the_same_snapshots():
    whole = replay_sierra(HAND, 0.25, "1s")
    for cut in range(len(HAND) + 1):
        replay = SierraReplay(0.25, "1s")
        parts = [replay.feed(HAND.iloc[:cut]), replay.feed(HAND.iloc[cut:]), replay.finish()]
        pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)


@pytest.mark.parametrize("frame, kwargs, message", [
    (HAND.assign(command=np.int8(9)), {}, "unknown command code 9"),
    (HAND.assign(price=np.nan), {}, "finite price"),
    (HAND.assign(quantity=-1.0), {}, "quantity >= 0"),
    (HAND.assign(price=3e38), {}, "price 3e+38 is too far from 0 for tick size 0.25"),
    (HAND.drop(columns="end_of_batch"), {}, "end_of_batch"),
    (HAND.drop(columns="price"), {}, "missing column(s) price"),
    (HAND.iloc[::-1], {}, "time goes backwards"),
    (HAND, {"interval": "soon"}, "not a duration"),
    (HAND, {"interval": "0s"}, "positive duration"),
    (HAND, {"levels": 0}, "levels must be a whole number"),
])
def test_replay_rejects_bad_input(frame, kwargs, message):
    with pytest.raises(ValueError, match="replay_sierra") as exc:
        replay_sierra(frame, 0.25, **kwargs)
    assert message in str(exc.value)


def test_flags_column_stands_in_for_end_of_batch():
    flags = HAND.drop(columns="end_of_batch").assign(flags=HAND["end_of_batch"].astype("uint8"))
    pd.testing.assert_frame_equal(replay_sierra(flags, 0.25), replay_sierra(HAND, 0.25))


# ---- property: the replay equals a brute-force dict replay ---------------------------------

def brute_force(cmds: pd.DataFrame, tick_size: float, step_ns: int, levels=None) -> pd.DataFrame:
    """Command by command with plain dicts; a copy of the book at every batch end, the last one
    of each interval kept."""
    bids, asks = {}, {}
    kept = {}  # interval -> (ts, bids, asks)
    for row in cmds.itertuples(index=False):
        c, tick = int(row.command), int(round(row.price / tick_size))
        if c == CLEAR:
            bids, asks = {}, {}
        elif c in (ADD_BID, MOD_BID, ADD_ASK, MOD_ASK):
            book = bids if c in (ADD_BID, MOD_BID) else asks
            if row.quantity > 0:
                book[tick] = row.quantity
            else:
                book.pop(tick, None)
        elif c in (DEL_BID, DEL_ASK):
            (bids if c == DEL_BID else asks).pop(tick, None)
        if row.end_of_batch:
            ns = row.ts.value
            kept[ns // step_ns] = (ns, dict(bids), dict(asks))
    rows = []
    for ns, b, a in kept.values():
        rows += [(ns, -1, t, b[t]) for t in sorted(b, reverse=True)[:levels]]
        rows += [(ns, 1, t, a[t]) for t in sorted(a)[:levels]]
    ns, side, tick, size = zip(*rows) if rows else ((),) * 4
    return pd.DataFrame({
        "ts": pd.DatetimeIndex(np.array(ns, dtype="int64").view("datetime64[ns]")
                               ).tz_localize("UTC"),
        "side": np.array(side, dtype="int8"), "tick": np.array(tick, dtype="int64"),
        "size": np.array(size, dtype="float64")})


command_rows = st.lists(st.tuples(
    st.integers(0, 700),                               # ms after the previous command
    st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]),
    st.integers(-12, 12),                              # ticks around 5000.00
    st.integers(0, 50),
    st.booleans()), max_size=80)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(rows=command_rows, levels=st.sampled_from([None, 1, 3]),
       interval=st.sampled_from(["250ms", "1s", "3s"]), cuts=st.lists(st.integers(0, 80),
                                                                     max_size=3))
def test_replay_matches_brute_force(rows, levels, interval, cuts):
    ms = np.cumsum([r[0] for r in rows]).tolist()
    cmds = commands([(m, c, 5000 + 0.25 * t, q, e) for m, (_, c, t, q, e) in zip(ms, rows)])
    want = brute_force(cmds, 0.25, pd.Timedelta(interval).value, levels)
    got = replay_sierra(cmds, 0.25, interval, levels)
    pd.testing.assert_frame_equal(got, want)
    # fed in chunks: the same snapshots
    replay = SierraReplay(0.25, interval, levels)
    bounds = [0, *sorted(min(c, len(cmds)) for c in cuts), len(cmds)]
    parts = [replay.feed(cmds.iloc[a:b]) for a, b in zip(bounds, bounds[1:])] + [replay.finish()]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), want)
    # snapshots only where a batch ends, at most one an interval
    ends = set(cmds.loc[cmds["end_of_batch"], "ts"])
    assert set(got["ts"]) <= ends
    buckets = got["ts"].dt.floor(interval)
    assert (got.groupby(buckets)["ts"].nunique() <= 1).all()
    # the book after everything
    ob = OrderBook(0.25)
    apply_sierra(ob, cmds)
    assert ob.bids == replay.book.bids and ob.asks == replay.book.asks


# ---- the file format ------------------------------------------------------------------------

def sc_time(when: dt.datetime) -> int:
    """SCDateTimeMS: microseconds since 1899-12-30 00:00 UTC, worked out with datetime."""
    delta = when - dt.datetime(1899, 12, 30, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def packed_file() -> bytes:
    """A .depth file packed field by field from Sierra's documented structures."""
    header = (struct.pack("<I", 0x44444353)    # FileTypeUniqueHeaderID, UNIQUE_HEADER_ID "SCDD"
              + struct.pack("<I", 64)          # HeaderSize
              + struct.pack("<I", 24)          # RecordSize
              + struct.pack("<I", 1)           # Version
              + bytes(48))                     # Reserve[48]
    assert len(header) == 64

    def record(when, command, flags, num_orders, price, quantity):
        return (struct.pack("<q", sc_time(when))   # SCDateTimeMS DateTime
                + struct.pack("<B", command)       # CommandEnum Command (t_Byte)
                + struct.pack("<B", flags)         # uint8_t Flags
                + struct.pack("<H", num_orders)    # uint16_t NumOrders
                + struct.pack("<f", price)         # float Price
                + struct.pack("<I", quantity)      # uint32_t Quantity
                + struct.pack("<I", 0))            # uint32_t Reserved

    t = dt.datetime(2026, 1, 2, 14, 30, 0, 123456, tzinfo=dt.timezone.utc)
    later = t + dt.timedelta(seconds=1, microseconds=500)
    records = [
        record(t, 1, 0, 0, 0.0, 0),              # CLEAR_BOOK
        record(t, 2, 0, 3, 6001.25, 17),         # ADD_BID_LEVEL
        record(t, 3, 0x01, 5, 6001.5, 4),        # ADD_ASK_LEVEL, FLAG_END_OF_BATCH
        record(later, 4, 0x01, 2, 6001.25, 9),   # MODIFY_BID_LEVEL, end of batch
    ]
    assert all(len(r) == 24 for r in records)
    return header + b"".join(records)


def test_struct_packed_file(tmp_path):
    path = tmp_path / "ESH6-CME.2026-01-02.depth"
    path.write_bytes(packed_file())
    assert path.read_bytes()[:4] == b"SCDD"
    assert guess_format(path) == "depth"
    chunks = list(read_file(path))
    assert [c.kind for c in chunks] == ["depth_commands"] and chunks[0].symbol == "ESH6-CME"
    assert chunks[0].done_bytes == chunks[0].total_bytes == 64 + 4 * 24
    got = chunks[0].frame
    assert list(got.columns) == list(scdepth.COMMAND_COLUMNS)
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert got["ts"].tolist() == [pd.Timestamp("2026-01-02 14:30:00.123456", tz="UTC")] * 3 + \
        [pd.Timestamp("2026-01-02 14:30:01.123956", tz="UTC")]
    assert got["command"].tolist() == [1, 2, 3, 4]
    assert got["flags"].tolist() == [0, 0, 1, 1]
    assert got["end_of_batch"].tolist() == [False, False, True, True]
    assert got["num_orders"].tolist() == [0, 3, 5, 2]
    assert got["price"].tolist() == [0.0, 6001.25, 6001.5, 6001.25]
    assert got["quantity"].tolist() == [0.0, 17.0, 4.0, 9.0]
    snaps = replay_sierra(got, 0.25)
    assert snaps.values.tolist() == [
        [pd.Timestamp("2026-01-02 14:30:00.123456", tz="UTC"), -1, 24005, 17.0],
        [pd.Timestamp("2026-01-02 14:30:00.123456", tz="UTC"), 1, 24006, 4.0],
        [pd.Timestamp("2026-01-02 14:30:01.123956", tz="UTC"), -1, 24005, 9.0],
        [pd.Timestamp("2026-01-02 14:30:01.123956", tz="UTC"), 1, 24006, 4.0]]


def test_writer_round_trip_and_chunks(tmp_path):
    path = tmp_path / "x.depth"
    frame = HAND.assign(num_orders=np.arange(len(HAND)))
    assert scdepth.write_depth_file(path, frame) == len(HAND)
    assert path.stat().st_size == 64 + 24 * len(HAND)
    # the writer agrees with the hand-packed layout on the header
    assert path.read_bytes()[:64] == packed_file()[:64]
    back = scdepth.read_depth_frame(path)
    pd.testing.assert_frame_equal(back[["ts", "command", "price", "quantity", "end_of_batch"]],
                                  HAND, check_dtype=False)
    assert back["num_orders"].tolist() == list(range(len(HAND)))
    assert back["flags"].tolist() == HAND["end_of_batch"].astype(int).tolist()
    small = list(scdepth.read_depth(path, chunk_rows=4))
    assert [len(c.frame) for c in small] == [4, 4, 4, 3]
    assert [c.done_bytes for c in small] == [64 + 24 * n for n in (4, 8, 12, 15)]
    pd.testing.assert_frame_equal(pd.concat([c.frame for c in small], ignore_index=True), back)


def test_default_symbol():
    assert scdepth.default_symbol("/d/ESZ25-CME.2025-12-01.depth") == "ESZ25-CME"
    assert scdepth.default_symbol("NQH6.depth") == "NQH6"
    assert scdepth.default_symbol("6E.H26.depth") == "6E.H26"


def test_guess_by_suffix_and_empty_file(tmp_path):
    path = tmp_path / "ES.depth"
    path.write_bytes(packed_file()[:64])  # header only: no commands
    assert guess_format(path) == "depth"
    assert [len(c.frame) for c in read_file(path)] == []
    assert replay_sierra(scdepth.read_depth_frame(path), 0.25).empty


def _damage(data: bytes, offset: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


GOOD = packed_file()
REC = 64  # offset of record 0


@pytest.mark.parametrize("data, where, message", [
    (b"SCID" + GOOD[4:], "header", "not a Sierra Chart market depth file"),
    (GOOD[:40], "header", "truncated header (40 of 64 bytes)"),
    (_damage(GOOD, 4, "<I", 56), "header", "header size 56, expected 64"),
    (_damage(GOOD, 8, "<I", 40), "header", "record size 40, expected 24"),
    (GOOD[:-10], "record 3", "truncated record (14 of 24 bytes)"),
    (_damage(GOOD, REC + 2 * 24 + 8, "<B", 8), "record 2", "unknown command code 8"),
    (_damage(GOOD, REC + 1 * 24 + 12, "<f", float("nan")), "record 1",
     "ADD_BID_LEVEL price nan is not a finite number"),
    (_damage(GOOD, REC + 3 * 24 + 12, "<f", float("inf")), "record 3",
     "MODIFY_BID_LEVEL price inf is not a finite number"),
    (_damage(GOOD, REC + 3 * 24, "<q", sc_time(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))),
     "record 3", "time goes backwards"),
    (_damage(GOOD, REC, "<q", 5), "record 0", "out of range"),
])
def test_bad_files(tmp_path, data, where, message):
    path = tmp_path / "ESH6.depth"
    path.write_bytes(data)
    with pytest.raises(IngestError) as exc:
        list(read_file(path, format="depth"))
    assert exc.value.path == str(path) and exc.value.where == where
    assert message in exc.value.message
    assert str(exc.value).startswith(f"{path}: {where}: ")


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(GOOD)),
       flips=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), max_size=4))
def test_damaged_bytes_give_ingest_errors_only(tmp_path, cut, flips):
    data = bytearray(GOOD[:cut])
    for pos, xor in flips:
        if pos < len(data):
            data[pos] ^= xor
    path = tmp_path / "ESH6.depth"
    path.write_bytes(bytes(data))
    try:
        frame = pd.concat([c.frame for c in read_file(path, format="depth", chunk_rows=2)]
                          or [scdepth.commands_frame(np.zeros(0, scdepth.RECORD))])
    except IngestError as exc:
        assert str(path) in str(exc)
        return
    try:  # whatever the reader accepts, the replay takes, but for absurd prices
        replay_sierra(frame, 0.25)
    except ValueError as exc:
        assert "too far from 0 for tick size" in str(exc)


def test_nan_price_on_clear_book_is_ignored(tmp_path):
    path = tmp_path / "ESH6.depth"
    path.write_bytes(_damage(GOOD, REC + 12, "<f", float("nan")))  # record 0 is CLEAR_BOOK
    frame = scdepth.read_depth_frame(path)
    assert np.isnan(frame["price"].iloc[0])
    assert len(replay_sierra(frame, 0.25)) == 4


# ---- import into a real store ---------------------------------------------------------------

def busy_file(path, n_batches=400, seed=1) -> pd.DataFrame:
    """A file of periodic full snapshots and incremental batches, 60-level sides around 5000."""
    rng = np.random.default_rng(seed)
    rows, ms = [], 0
    for b in range(n_batches):
        ms += int(rng.integers(1, 400))
        if b % 100 == 0:  # a full snapshot: CLEAR, bids best to worst, asks worst to best
            rows.append((ms, CLEAR, 0, 0, False))
            rows += [(ms, ADD_BID, 5000 - 0.25 * i, int(rng.integers(1, 90)), False)
                     for i in range(60)]
            rows += [(ms, ADD_ASK, 5000.25 + 0.25 * i, int(rng.integers(1, 90)), False)
                     for i in reversed(range(60))]
        else:
            for _ in range(int(rng.integers(1, 6))):
                side = int(rng.integers(0, 2))
                c = [MOD_BID, MOD_ASK][side] if rng.random() < 0.8 else [DEL_BID, DEL_ASK][side]
                off = int(rng.integers(0, 70))
                price = 5000 - 0.25 * off if side == 0 else 5000.25 + 0.25 * off
                rows.append((ms, c, price, int(rng.integers(1, 90)), False))
        rows[-1] = rows[-1][:4] + (True,)
    frame = commands(rows)
    scdepth.write_depth_file(path, frame)
    return frame


def test_import_stores_one_second_snapshots(tmp_path):
    store = open_store(f"duckdb:///{tmp_path}/depth.duckdb")
    try:
        store.add_instrument(Instrument("ES", 0.25, asset_class="future"))
        path = tmp_path / "ES.2026-01-01.depth"
        frame = busy_file(path)
        summary = import_files(store, [path], progress=False)[0]
        assert summary.format == "depth"
        want = replay_sierra(frame, 0.25, "1s", levels=DEPTH_LEVELS)
        got = store.depth("ES")
        assert summary.symbols["ES"].depth_rows == len(want) == len(got)
        assert "book snapshot rows" in "\n".join(summary.lines())
        order = ["ts", "side", "tick"]
        pd.testing.assert_frame_equal(
            got.sort_values(order, ignore_index=True),
            want.sort_values(order, ignore_index=True), check_dtype=False)
        assert got.groupby(["ts", "side"]).size().max() == DEPTH_LEVELS
        snap_times = got["ts"].drop_duplicates()
        assert snap_times.dt.floor("1s").is_unique  # one snapshot a second
        # importing again adds nothing
        again = import_files(store, [path], progress=False)[0]
        assert again.symbols["ES"].depth_rows == 0 and len(store.depth("ES")) == len(got)
        # a damaged file in the same import takes everything back
        bad = tmp_path / "bad" / "ES.2026-01-02.depth"
        bad.parent.mkdir()
        busy_file(bad, seed=2)
        bad.write_bytes(bad.read_bytes()[:-5])
        with store.transaction() as tx:
            tx.con.execute("DELETE FROM depth").fetchall()
        with pytest.raises(IngestError, match="truncated record"):
            import_files(store, [path, bad], progress=False)
        assert len(store.depth("ES")) == 0
    finally:
        store.close()


def test_import_absurd_price_names_the_file(tmp_path):
    store = open_store(f"duckdb:///{tmp_path}/depth.duckdb")
    try:
        store.add_instrument(Instrument("ES", 0.25, asset_class="future"))
        path = tmp_path / "ES.depth"
        path.write_bytes(_damage(GOOD, REC + 24 + 12, "<f", 3e38))
        with pytest.raises(IngestError, match="too far from 0") as exc:
            import_files(store, [path], progress=False)
        assert exc.value.path == str(path)
        assert len(store.depth("ES")) == 0
    finally:
        store.close()


def test_import_needs_a_tick_size(tmp_path):
    store = open_store(f"duckdb:///{tmp_path}/depth.duckdb")
    try:
        path = tmp_path / "NQ.depth"
        path.write_bytes(GOOD)
        with pytest.raises(ValueError, match="no known tick size"):
            import_files(store, [path], progress=False)
    finally:
        store.close()


def test_cli_imports_a_depth_file(tmp_path):
    """The command a user types: `tradeflow import X.depth --format depth --symbol ES`."""
    from tests.test_cli import run

    url = f"duckdb:///{tmp_path}/cli.duckdb"
    run(["instruments", "add", "ES", "--tick-size", "0.25"], url)
    path = tmp_path / "ESZ25-CME.2026-01-01.depth"
    frame = busy_file(path)
    out = run(["import", str(path), "--format", "depth", "--symbol", "ES", "--quiet"], url).stdout
    rows = len(replay_sierra(frame, 0.25, "1s", levels=DEPTH_LEVELS))
    assert f"{rows:,} book snapshot rows" in out
    heat = run(["study", "heatmap", "ES", "--param", "interval_seconds=1"], url).stdout
    assert heat.splitlines()[0].startswith("ts,") and len(heat.splitlines()) > 10
