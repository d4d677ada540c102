"""Sierra Chart .scid import: hand-made files with known content, and every malformed case."""
import struct

import numpy as np
import pandas as pd
import pytest

from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.files import guess_format, read_file
from tradeflow.ingest.trade_ids import made_ids
from tradeflow.ingest.scid import EPOCH_OFFSET_US, RECORD
from tradeflow.model import normalize_trades

T0 = pd.Timestamp("2024-01-02 14:30", tz="UTC")
FIRST_SUB, LAST_SUB = -1.99900095e37, -1.99900197e37


def sc_time(ts: pd.Timestamp, plus_us: int = 0) -> int:
    """SCDateTime: microseconds since 1899-12-30."""
    return ts.value // 1000 + EPOCH_OFFSET_US + plus_us


def header(magic=b"SCID", header_size=56, record_size=40, version=1) -> bytes:
    return struct.pack("<4sIIHHI36s", magic, header_size, record_size, version, 0, 0, b"\0" * 36)


def records(rows) -> bytes:
    """rows: (dt, open, high, low, close, num_trades, volume, bid_volume, ask_volume)."""
    rec = np.zeros(len(rows), RECORD)
    for i, row in enumerate(rows):
        rec[i] = row
    return rec.tobytes()


def tick(us, price, size, ask_vol=0, bid_vol=0, open_=0.0, ts=T0):
    return (sc_time(ts, us), open_, price + 0.25, price - 0.25, price, 1, size, bid_vol, ask_vol)


def write(tmp_path, rows, name="ESZ25-CME.scid", head=None):
    path = tmp_path / name
    path.write_bytes((head if head is not None else header()) + records(rows))
    return path


def trades_of(path, **kw):
    chunks = list(read_file(path, **kw))
    assert all(c.kind == "trades" for c in chunks)
    for c in chunks:
        pd.testing.assert_frame_equal(c.frame, normalize_trades(c.frame))
    return pd.concat([c.frame for c in chunks], ignore_index=True), chunks


def expected(rows):
    return pd.DataFrame({
        "ts": pd.DatetimeIndex([T0 + pd.Timedelta(microseconds=r[0]) for r in rows]).as_unit("ns"),
        "price": np.array([r[1] for r in rows], dtype="float64"),
        "size": np.array([r[2] for r in rows], dtype="float64"),
        "side": np.array([r[3] for r in rows], dtype="int8"),
        "trade_id": made_ids([r[4] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                             [r[3] for r in rows]),  # r[4]: the rank in its microsecond
    })


TICKS = [
    tick(0, 4500.25, 2, ask_vol=2),
    tick(0, 4500.00, 3, bid_vol=3),
    tick(0, 4500.25, 1, ask_vol=1),
    tick(1, 4500.50, 4, ask_vol=4),
    tick(1, 4500.25, 5),  # neither: unknown side
    tick(1_000_000, 4500.75, 6, ask_vol=3, bid_vol=3),  # both: unknown side
]
TICKS_EXPECTED = expected([
    (0, 4500.25, 2, 1, 0), (0, 4500.00, 3, -1, 1), (0, 4500.25, 1, 1, 2),
    (1, 4500.50, 4, 1, 0), (1, 4500.25, 5, 0, 1), (1_000_000, 4500.75, 6, 0, 0),
])


@pytest.mark.parametrize("chunk_rows", [1, 2, 4, 1_000_000])
def test_ticks_exact_and_independent_of_chunking(tmp_path, chunk_rows):
    path = write(tmp_path, TICKS)
    frame, chunks = trades_of(path, chunk_rows=chunk_rows)
    pd.testing.assert_frame_equal(frame, TICKS_EXPECTED)
    assert {c.symbol for c in chunks} == {"ESZ25-CME"}
    assert all(len(c.frame) <= chunk_rows for c in chunks)
    assert chunks[-1].done_bytes == chunks[-1].total_bytes == path.stat().st_size
    assert [c.done_bytes for c in chunks] == sorted(c.done_bytes for c in chunks)


def test_trade_ids_are_stable_on_reimport(tmp_path):
    path = write(tmp_path, TICKS)
    first, _ = trades_of(path, chunk_rows=2)
    again, _ = trades_of(path, chunk_rows=5)
    pd.testing.assert_frame_equal(first, again)
    assert not first.duplicated(["ts", "trade_id"]).any()


def test_unbundled_trade_markers_are_trades(tmp_path):
    path = write(tmp_path, [tick(0, 10.0, 1, ask_vol=1, open_=FIRST_SUB),
                            tick(0, 10.25, 2, ask_vol=2, open_=LAST_SUB)])
    frame, _ = trades_of(path)
    pd.testing.assert_frame_equal(frame, expected([(0, 10.0, 1, 1, 0), (0, 10.25, 2, 1, 1)]))


def test_bars_and_mixed_file(tmp_path):
    bar = (sc_time(T0, 60_000_000), 4500.0, 4502.5, 4499.75, 4501.0, 12, 40, 15, 25)
    path = write(tmp_path, [TICKS[0], bar, tick(60_000_001, 4501.0, 1, bid_vol=1)])
    chunks = list(read_file(path))
    assert sorted(c.kind for c in chunks) == ["bars", "trades"]
    bars = next(c for c in chunks if c.kind == "bars").frame
    want = pd.DataFrame({
        "ts": pd.DatetimeIndex([T0 + pd.Timedelta(minutes=1)]).as_unit("ns"),
        "open": [4500.0], "high": [4502.5], "low": [4499.75], "close": [4501.0],
        "volume": [40.0], "ask_volume": [25.0], "bid_volume": [15.0],
        "trades": np.array([12], dtype="int64"),
    })
    pd.testing.assert_frame_equal(bars, want)
    trades = next(c for c in chunks if c.kind == "trades").frame
    pd.testing.assert_frame_equal(
        trades, expected([(0, 4500.25, 2, 1, 0), (60_000_001, 4501.0, 1, -1, 0)]))


def test_symbol_override_and_header_only_file(tmp_path):
    path = write(tmp_path, TICKS[:1])
    assert [c.symbol for c in read_file(path, symbol="ES")] == ["ES"]
    empty = write(tmp_path, [], name="NQ.scid")
    assert list(read_file(empty)) == []


def test_guessed_by_magic_whatever_the_name(tmp_path):
    path = write(tmp_path, TICKS[:1], name="ticks.bin")
    assert guess_format(path) == "scid"
    assert guess_format(write(tmp_path, TICKS[:1])) == "scid"


def raises(path, match, **kw):
    with pytest.raises(IngestError, match=match) as info:
        list(read_file(path, format="scid", **kw))
    assert str(info.value).startswith(str(path) + ": ")
    return info.value


def test_error_bad_magic(tmp_path):
    path = write(tmp_path, TICKS[:1], head=header(magic=b"SCIX"))
    raises(path, r"header: not a Sierra Chart intraday file")


@pytest.mark.parametrize("head", [header(header_size=60), header(record_size=44)])
def test_error_header_and_record_sizes(tmp_path, head):
    raises(write(tmp_path, TICKS[:1], head=head), r"header: header size .* expected 56 / 40")


def test_error_truncated_header(tmp_path):
    path = tmp_path / "x.scid"
    path.write_bytes(header()[:30])
    raises(path, r"header: truncated header \(30 of 56 bytes\)")


def test_error_truncated_record_names_it(tmp_path):
    path = write(tmp_path, TICKS[:3], name="ES.scid")
    with open(path, "ab") as f:
        f.write(b"\1" * 17)
    err = raises(path, "truncated")
    assert str(err) == f"{path}: record 3: truncated record (17 of 40 bytes)"
    assert (err.where, err.message) == ("record 3", "truncated record (17 of 40 bytes)")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0])
def test_error_bad_trade_price(tmp_path, bad):
    rows = list(TICKS)
    rows[4] = tick(1, bad, 5)
    raises(write(tmp_path, rows), r"record 4: trade price .* not a finite, positive price")


def test_error_bar_range_not_containing_open_and_close(tmp_path):
    bar = (sc_time(T0), 4500.0, 4500.25, 4499.75, 4501.0, 12, 40, 15, 25)
    raises(write(tmp_path, [TICKS[0], bar]), r"record 1: bar high 4500.25 / low 4499.75 do not "
           r"contain its open 4500.0 and close 4501.0")


def test_error_bad_bar_price(tmp_path):
    bar = (sc_time(T0), 4500.0, float("inf"), 4499.75, 4501.0, 12, 40, 15, 25)
    raises(write(tmp_path, [TICKS[0], bar]), r"record 1: high inf")


@pytest.mark.parametrize("when", [pd.Timestamp("1989-12-31", tz="UTC"),
                                  pd.Timestamp("2100-01-01", tz="UTC")])
def test_error_time_out_of_range(tmp_path, when):
    rows = [TICKS[0], tick(0, 4500.0, 1, ts=when)]
    raises(write(tmp_path, rows), r"record 1: time .* out of range \(1990-2100\)")


def test_time_order_follows_the_rule_of_every_format(tmp_path):
    # a small step back (within 60 s) is read and sorted, as in CSV and DBN; the importer's
    # validation refuses larger ones (tests/test_broken_files.py)
    rows = list(TICKS)
    rows[3] = tick(-5, 4500.0, 1)  # record 3 is 5 us earlier than record 2
    for chunk_rows in (1, 3, 100):
        frame, chunks = trades_of(write(tmp_path, rows), chunk_rows=chunk_rows)
        assert all(c.frame["ts"].is_monotonic_increasing for c in chunks)
        assert len(frame) == len(rows)
        assert sorted(int(p) for c in chunks for p in c.places) == list(range(len(rows)))
    rows[3] = tick(-61_000_000, 4500.0, 1)  # 61 s back, in a later chunk: cannot be numbered
    raises(write(tmp_path, rows), r"record 3: time .* is more than 60 s before a row already "
           r"read", chunk_rows=3)


def test_error_nothing_imported_from_a_truncated_file(tmp_path):
    # the truncation is found before the first chunk, so nothing half-imports
    path = write(tmp_path, TICKS)
    with open(path, "ab") as f:
        f.write(b"\0" * 3)
    it = read_file(path, chunk_rows=1)
    with pytest.raises(IngestError, match="record 6: truncated"):
        next(it)


# Old files: SCDateTime as a double of days since 1899-12-30 in the same 8 bytes

def sc_days(ts: pd.Timestamp, plus_ms: int = 0) -> int:
    """The old SCDateTime: days since 1899-12-30 as a double, returned as its int64 bytes."""
    days = (ts + pd.Timedelta(milliseconds=plus_ms) - pd.Timestamp("1899-12-30", tz="UTC")) \
        / pd.Timedelta(days=1)
    return int(np.array([days], dtype="<f8").view("<i8")[0])


def old_tick(ms, price, size, ask_vol=0, bid_vol=0):
    return (sc_days(T0, ms), 0.0, price + 0.25, price - 0.25, price, 1, size, bid_vol, ask_vol)


OLD = [old_tick(0, 1100.25, 2, ask_vol=2), old_tick(0, 1100.0, 1, bid_vol=1),
       old_tick(123, 1100.5, 4, ask_vol=4), old_tick(86_399_999, 1101.0, 3),
       (sc_days(T0, 86_400_000), 1101.0, 1102.5, 1100.75, 1102.0, 9, 30, 12, 18)]


@pytest.mark.parametrize("chunk_rows", [1, 2, 1_000_000])
def test_old_days_as_double_file(tmp_path, chunk_rows):
    path = write(tmp_path, OLD, name="ES-OLD.scid")
    chunks = list(read_file(path, chunk_rows=chunk_rows))
    trades = pd.concat([c.frame for c in chunks if c.kind == "trades"], ignore_index=True)
    pd.testing.assert_frame_equal(trades, expected([
        (0, 1100.25, 2, 1, 0), (0, 1100.0, 1, -1, 1), (123_000, 1100.5, 4, 1, 0),
        (86_399_999_000, 1101.0, 3, 0, 0)]))
    bars = [c.frame for c in chunks if c.kind == "bars"]
    assert len(bars) == 1 and bars[0]["ts"].tolist() == [T0 + pd.Timedelta(days=1)]
    assert bars[0][["open", "high", "low", "close", "volume", "ask_volume", "bid_volume",
                    "trades"]].values.tolist() == [[1101.0, 1102.5, 1100.75, 1102.0, 30, 18, 12, 9]]


def test_old_file_through_the_command(tmp_path):
    from tests.test_cli import run

    store = f"duckdb:///{tmp_path}/o.duckdb"
    run(["instruments", "add", "ES-OLD", "--tick-size", "0.25"], store)
    path = write(tmp_path, OLD[:4], name="ES-OLD.scid")
    out = run(["import", str(path), "--quiet"], store).stdout
    assert "ES-OLD: 4 trades read, 4 new" in out
    from data_access import open_store
    with open_store(store) as s:
        got = s.trades("ES-OLD")
    assert got["ts"].tolist() == [T0, T0, T0 + pd.Timedelta(milliseconds=123),
                                  T0 + pd.Timedelta(milliseconds=86_399_999)]
    assert got["price"].tolist() == [1100.25, 1100.0, 1100.5, 1101.0]
    assert got["side"].tolist() == [1, -1, 1, 0]


def test_error_old_and_new_times_mixed(tmp_path):
    raises(write(tmp_path, [OLD[0], TICKS[1]]),
           r"record 1: time .* \(days since 1899-12-30, the old double format the file's first "
           r"record holds\) is out of range")
    raises(write(tmp_path, [TICKS[0], OLD[1]]),
           r"record 1: time \d+ \(microseconds since 1899-12-30\) is out of range \(1990-2100\); "
           r"it reads as an old days-as-double time, but the file's first record holds micro")


def test_error_time_neither_microseconds_nor_days(tmp_path):
    row = (int(np.array([1e9], dtype="<f8").view("<i8")[0]),) + TICKS[0][1:]  # 1e9 days
    err = raises(write(tmp_path, [row]), r"record 0: time \d+ \(microseconds since 1899-12-30\) "
                 r"is out of range \(1990-2100\)$")
    assert "days" not in str(err)


def test_one_second_bars_across_chunks_keep_whole_minutes(tmp_path):
    from data_access import open_store
    from tradeflow.importer import import_files
    from tradeflow.model import Instrument

    # 1-second bars 14:30:58 .. 14:31:02 read one record at a time: minute 14:30 is split
    rows = [(sc_time(T0, (58 + i) * 1_000_000), 10.0 + i, 10.5 + i, 9.75 + i, 10.25 + i, 2, 5 + i,
             2, 3 + i) for i in range(5)]
    path = write(tmp_path, rows)
    with open_store(f"duckdb:///{tmp_path}/s.duckdb") as store:
        store.add_instrument(Instrument("ESZ25-CME", 0.25, asset_class="future"))
        import_files(store, [path], progress=False, chunk_rows=1)
        got = store.bars("ESZ25-CME", "1m")
    assert got["ts"].tolist() == [T0, T0 + pd.Timedelta(minutes=1)]
    assert got[["open", "high", "low", "close", "volume", "ask_volume", "bid_volume",
                "trades"]].values.tolist() == [
        [10.0, 11.5, 9.75, 11.25, 11, 7, 4, 4], [12.0, 14.5, 11.75, 14.25, 24, 18, 6, 6]]


def bar_row(t: pd.Timestamp, price: float, volume: int = 4):
    return (sc_time(t), price, price + 0.5, price - 0.25, price + 0.25, 2, volume, 1, volume - 1)


@pytest.mark.parametrize("step, want", [(1, 1), (2, 2), (60, 60)])
@pytest.mark.parametrize("chunk_rows", [1, 1_000_000])
def test_bar_timeframe_is_told_by_the_bar_times(tmp_path, step, want, chunk_rows):
    # 1-second storage writes only the seconds that traded: gaps do not hide the timeframe
    offsets = np.cumsum(np.r_[0, np.random.default_rng(2).integers(1, 4, 29)]) * step
    rows = [bar_row(T0 + pd.Timedelta(seconds=int(s)), 4500.0 + i) for i, s in enumerate(offsets)]
    chunks = list(read_file(write(tmp_path, [TICKS[0]] + rows), chunk_rows=chunk_rows))
    bars = [c for c in chunks if c.kind == "bars"]
    assert {c.seconds for c in bars} == {want}
    assert sum(len(c.frame) for c in bars) == len(rows)


def test_bar_timeframe_unknown_off_whole_seconds_and_later_bars_off_the_grid(tmp_path):
    rows = [bar_row(T0 + pd.Timedelta(milliseconds=1500 * i), 4500.0) for i in range(3)]
    assert {c.seconds for c in read_file(write(tmp_path, rows))} == {None}
    from tradeflow.ingest.scid import BarTimeframe
    minutes = [bar_row(T0 + pd.Timedelta(minutes=i), 4500.0)
               for i in range(BarTimeframe.DECIDE_AFTER)]
    late = bar_row(T0 + pd.Timedelta(minutes=2000, seconds=30), 4500.0)
    path = write(tmp_path, minutes + [late])
    with pytest.raises(IngestError, match=rf"record {len(minutes)}: bar time "
                       r"2024-01-03T23:50:30\+00:00 is off the 60 s grid of the file's earlier"):
        list(read_file(path, chunk_rows=100))


def test_one_second_bar_file_is_stored_as_one_second_bars(tmp_path):
    from data_access import open_store
    from tradeflow.importer import import_files
    from tradeflow.model import Instrument

    rows = [bar_row(T0 + pd.Timedelta(seconds=s), 4500.0 + 0.25 * s, 3 + s) for s in
            (0, 1, 2, 5, 59, 60, 61, 130)]
    path = write(tmp_path, rows)
    with open_store(f"duckdb:///{tmp_path}/s.duckdb") as store:
        store.add_instrument(Instrument("ESZ25-CME", 0.25, asset_class="future"))
        summary = import_files(store, [path], progress=False, chunk_rows=3)[0]
        seconds = store.bars("ESZ25-CME", "1s", source="external")
        minutes = store.bars("ESZ25-CME", "1m")
    assert summary.symbols["ESZ25-CME"].bars == len(rows)
    assert seconds["ts"].tolist() == [pd.Timestamp(r[0] - EPOCH_OFFSET_US, unit="us", tz="UTC")
                                      for r in rows]
    assert seconds["volume"].tolist() == [r[6] for r in rows]
    assert minutes["volume"].tolist() == [3 + 4 + 5 + 8 + 62, 63 + 64, 133]
