"""Generic CSV and Parquet trade tables, and the read_file/guess_format entry points."""
import gzip
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.files import FORMATS, guess_format, read_file
from tradeflow.ingest.trade_ids import CONTENT_ID_BASE, HASH_BITS, OrdinalIds, made_ids
from tradeflow.model import normalize_trades


def frame(rows, made=True):
    """rows: (ts text, price, size, side, trade_id); ``made``: the trade_id given is the rank in
    its microsecond of a trade without a source id (the id is made from it, see OrdinalIds)."""
    out = pd.DataFrame({
        "ts": pd.DatetimeIndex([pd.Timestamp(r[0], tz="UTC") for r in rows]).as_unit("ns"),
        "price": np.array([r[1] for r in rows], dtype="float64"),
        "size": np.array([r[2] for r in rows], dtype="float64"),
        "side": np.array([r[3] for r in rows], dtype="int8"),
        "trade_id": np.array([r[4] for r in rows], dtype="int64"),
    })
    if made:
        out["trade_id"] = made_ids(out["trade_id"], out["price"], out["size"], out["side"])
    return out


def ranks(ids):
    """The rank part of made ids (their place among trades of the same microsecond)."""
    return list((np.asarray(ids, dtype="int64") - CONTENT_ID_BASE) >> HASH_BITS)


def load(path, **kw):
    out = {}
    chunks = list(read_file(path, **kw))
    for c in chunks:
        assert c.kind == "trades"
        assert str(c.frame["ts"].dtype) == "datetime64[ns, UTC]"
        pd.testing.assert_frame_equal(c.frame, normalize_trades(c.frame))
        out.setdefault(c.symbol, []).append(c.frame)
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}, chunks


def write(tmp_path, text, name="trades.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


CSV = """ts,price,size,side
2024-01-02T14:30:00Z,100.25,3,buy
2024-01-02T14:30:00Z,100.00,1,S
2024-01-02T09:30:00.000001-05:00,100.50,2,ask
2024-01-02 14:30:01.5,100.75,4,bid
2024-01-02T14:30:02,101,5,
"""
CSV_EXPECTED = frame([
    ("2024-01-02 14:30:00", 100.25, 3, 1, 0),
    ("2024-01-02 14:30:00", 100.00, 1, -1, 1),
    ("2024-01-02 14:30:00.000001", 100.50, 2, 1, 0),
    ("2024-01-02 14:30:01.5", 100.75, 4, -1, 0),
    ("2024-01-02 14:30:02", 101.0, 5, 0, 0),
])


@pytest.mark.parametrize("chunk_rows", [1, 2, 1_000_000])
def test_csv_iso_times_sides_and_ordinal_ids(tmp_path, chunk_rows):
    path = write(tmp_path, CSV)
    assert guess_format(path) == "csv"
    got, chunks = load(path, chunk_rows=chunk_rows)
    pd.testing.assert_frame_equal(got["trades"], CSV_EXPECTED)
    assert all(len(c.frame) <= chunk_rows for c in chunks)
    assert chunks[-1].done_bytes == chunks[-1].total_bytes == path.stat().st_size


@pytest.mark.parametrize("scale, text", [
    (1, "1704205800"), (1_000, "1704205800000"), (1_000_000, "1704205800000000"),
    (1_000_000_000, "1704205800000000000"), (1, "1704205800.25"),
])
def test_epoch_units_by_magnitude(tmp_path, scale, text):
    path = write(tmp_path, f"time,price,qty\n{text},1.5,2\n")
    got, _ = load(path, symbol="X")
    want = pd.Timestamp("2024-01-02 14:30", tz="UTC") + (
        pd.Timedelta(milliseconds=250) if text.endswith(".25") else pd.Timedelta(0))
    assert got["X"]["ts"].iloc[0] == want
    assert got["X"]["side"].iloc[0] == 0


def test_mapping_trade_id_and_semicolons(tmp_path):
    path = write(tmp_path, "Time;Last;Volume;Aggressor;Id\n"
                           "2024-01-02T14:30:00Z;10.5;3;1;77\n2024-01-02T14:30:00Z;10.25;1;-1;78\n")
    got, _ = load(path, symbol="CL", mapping={"ts": "Time", "price": "Last", "size": "Volume",
                                              "side": "Aggressor", "trade_id": "Id"})
    pd.testing.assert_frame_equal(got["CL"], frame([("2024-01-02 14:30", 10.5, 3, 1, 77),
                                                    ("2024-01-02 14:30", 10.25, 1, -1, 78)],
                                                   made=False))


def test_symbol_column_splits_chunks_and_override_wins(tmp_path):
    path = write(tmp_path, "timestamp,price,quantity,symbol\n"
                           "2024-01-02T14:30:00Z,1,1,AAA\n2024-01-02T14:30:00Z,2,1,BBB\n"
                           "2024-01-02T14:30:00Z,3,1,AAA\n")
    got, _ = load(path, chunk_rows=2)
    assert list(got["AAA"]["price"]) == [1.0, 3.0] and ranks(got["AAA"]["trade_id"]) == [0, 1]
    assert ranks(got["BBB"]["trade_id"]) == [0]
    merged, _ = load(path, symbol="Z")
    assert list(merged) == ["Z"] and ranks(merged["Z"]["trade_id"]) == [0, 1, 2]


def test_blank_lines_are_skipped_and_zip_gz_work(tmp_path):
    text = CSV.replace("\n2024-01-02 14:30:01.5", "\n\n2024-01-02 14:30:01.5") + "\n"
    got, _ = load(write(tmp_path, text))
    pd.testing.assert_frame_equal(got["trades"], CSV_EXPECTED)
    zpath = tmp_path / "ES.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("inner.csv", CSV)
    assert guess_format(zpath) == "csv"
    pd.testing.assert_frame_equal(load(zpath)[0]["ES"], CSV_EXPECTED)
    gpath = tmp_path / "NQ.csv.gz"
    gpath.write_bytes(gzip.compress(CSV.encode()))
    pd.testing.assert_frame_equal(load(gpath, format="csv")[0]["NQ"], CSV_EXPECTED)


def test_header_only_file_yields_nothing(tmp_path):
    assert list(read_file(write(tmp_path, "ts,price,size\n"))) == []


def csv_error(tmp_path, text, match, **kw):
    path = write(tmp_path, text, name="bad.csv")
    with pytest.raises(IngestError, match=match) as info:
        list(read_file(path, format="csv", **kw))
    assert str(info.value).startswith(f"{path}: ")
    return info.value


@pytest.mark.parametrize("row, match", [
    ("2024-01-02T14:30:00Z,abc,1,buy", r"line 3: column 'price': not a number: 'abc'"),
    ("2024-01-02T14:30:00Z,1,,buy", r"line 3: column 'size': missing value"),
    ("2024-01-02T14:30:00Z,-1,1,buy", r"line 3: column 'price': -1.0 is negative"),
    ("2024-01-02T14:30:00Z,nan,1,buy", r"line 3: column 'price': missing value"),
    ("2024-01-02T14:30:00Z,1,inf,buy", r"line 3: column 'size': inf is not a finite number"),
    ("2024-01-02T14:30:00Z,1,1,true", r"line 3: column 'side': true/false is not a side|"
                                       r"line 3: column 'side': 'true' is not a side"),
    ("2024-01-02T14:30:00Z,1,1,2", r"line 3: column 'side': '2' is not a side"),
    ("01/02/2024 14:30,1,1,buy", r"line 3: column 'ts': cannot read '01/02/2024 14:30' as a time"),
    ("1899-01-01T00:00:00Z,1,1,buy", r"line 3: column 'ts': time .* out of range"),
    (",1,1,buy", r"line 3: column 'ts': missing value"),
    ("2024-01-02T14:30:00Z,1,1", r"line 3: Expected 4 columns, got 3"),
])
def test_csv_errors_name_line_and_column(tmp_path, row, match):
    csv_error(tmp_path, f"ts,price,size,side\n2024-01-02T14:30:00Z,1,1,buy\n{row}\n", match)


def test_csv_error_line_in_a_later_chunk(tmp_path):
    rows = "".join(f"2024-01-02T14:30:0{i}Z,1,1,buy\n" for i in range(5))
    csv_error(tmp_path, "ts,price,size,side\n" + rows + "2024-01-02T14:30:09Z,x,1,buy\n",
              r"line 7: column 'price'", chunk_rows=2)


def test_csv_error_mixed_epoch_and_text(tmp_path):
    csv_error(tmp_path, "ts,price,size\n1704205800,1,1\nsoon,1,1\n",
              r"line 3: column 'ts': cannot read 'soon' as an epoch number")


def test_csv_error_out_of_order_without_ids(tmp_path):
    text = "ts,price,size\n2024-01-02T14:30:00Z,1,1\n2024-01-02T15:30:00Z,1,1\n" \
           "2024-01-02T14:30:00Z,1,1\n"
    csv_error(tmp_path, text, r"line 4: time .* more than 60 s before", chunk_rows=2)
    # a small disorder (within the window) is fine, and so is any order with trade ids
    ok = write(tmp_path, "ts,price,size\n2024-01-02T14:30:05Z,1,1\n2024-01-02T14:30:00Z,2,1\n"
                         "2024-01-02T14:30:05Z,3,1\n")
    got, _ = load(ok, chunk_rows=1)
    assert ranks(got["trades"]["trade_id"]) == [0, 0, 1]


@pytest.mark.parametrize("header, kw, match", [
    ("when,price,size", {}, r"no ts column among 'when', 'price', 'size'"),
    ("ts,price,size", {"mapping": {"ts": "Time"}}, r"column 'Time' \(mapped to ts\) is not in"),
    ("ts,price,size", {"mapping": {"bid": "x"}}, r"mapping names unknown column\(s\) 'bid'"),
    ("ts,price,size,size", {}, r"column 'size' appears more than once"),
])
def test_csv_header_errors(tmp_path, header, kw, match):
    csv_error(tmp_path, header + "\n", match, **kw)


def test_csv_bad_symbol_value(tmp_path):
    csv_error(tmp_path, "ts,price,size,symbol\n2024-01-02T14:30:00Z,1,1,E S\n",
              r"line 2: symbol 'E S' is not valid")


# ---------------------------------------------------------------------------------- Parquet


def write_parquet(tmp_path, table: pa.Table, row_group_size=2, name="t.parquet"):
    path = tmp_path / name
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_parquet_timestamps_and_row_groups(tmp_path):
    ts = pd.DatetimeIndex(["2024-01-02 14:30", "2024-01-02 14:30", "2024-01-02 14:31"], tz="UTC")
    table = pa.table({"Time": pa.array(ts.as_unit("us")), "Last": [1.0, 2.0, 3.0],
                      "Volume": pa.array([1, 2, 3], pa.int32()),
                      "Aggressor": pa.array([1, -1, None], pa.int8())})
    path = write_parquet(tmp_path, table)
    assert guess_format(path) == "parquet"
    got, chunks = load(path, chunk_rows=2, symbol="ES",
                       mapping={"ts": "Time", "price": "Last", "size": "Volume",
                                "side": "Aggressor"})
    pd.testing.assert_frame_equal(got["ES"], frame([("2024-01-02 14:30", 1.0, 1, 1, 0),
                                                    ("2024-01-02 14:30", 2.0, 2, -1, 1),
                                                    ("2024-01-02 14:31", 3.0, 3, 0, 0)]))
    assert len(chunks) == 2 and chunks[-1].done_bytes == chunks[-1].total_bytes


def test_parquet_naive_times_text_sides_and_ids(tmp_path):
    table = pa.table({"time": pa.array(pd.to_datetime(["2024-01-02 14:30"]).as_unit("ns")),
                      "price": [5.5], "qty": [2.0], "side": ["Sell"],
                      "trade_id": pa.array([9], pa.int64()), "symbol": ["BTCUSDT"]})
    got, _ = load(write_parquet(tmp_path, table))
    pd.testing.assert_frame_equal(got["BTCUSDT"], frame([("2024-01-02 14:30", 5.5, 2, -1, 9)],
                                                         made=False))


@pytest.mark.parametrize("column, values, match", [
    ("price", [1.0, float("nan"), 2.0], r"row 1: column 'price': nan is not a finite number"),
    ("price", ["1", "2", "3"], r"row 0: column 'price': must be numeric"),
    ("side", [1, 3, 0], r"row 1: column 'side': 3 is not a side"),
    ("side", [True, False, True], r"row 0: column 'side': true/false is not a side"),
    ("ts", [1704205800000, None, 1704205800000], r"row 1: column 'ts': missing value"),
])
def test_parquet_errors_name_row_and_column(tmp_path, column, values, match):
    cols = {"ts": [1704205800000] * 3, "price": [1.0, 2.0, 3.0], "size": [1.0] * 3,
            "side": [1, -1, 0]}
    cols[column] = values
    path = write_parquet(tmp_path, pa.table(cols), row_group_size=10)
    with pytest.raises(IngestError, match=match) as info:
        list(read_file(path, symbol="X"))
    assert str(info.value).startswith(f"{path}: ")


def test_parquet_error_row_in_later_row_group(tmp_path):
    path = write_parquet(tmp_path, pa.table({"ts": [1704205800000] * 5,
                                             "price": [1.0, 2.0, 3.0, -4.0, 5.0],
                                             "size": [1.0] * 5}))
    with pytest.raises(IngestError, match=r"row 3: column 'price': -4.0 is negative"):
        list(read_file(path, symbol="X", chunk_rows=2))


def test_parquet_not_parquet(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(IngestError, match="not a readable Parquet file"):
        list(read_file(path))


# ---------------------------------------------------------------------------- entry points


def test_read_file_argument_errors(tmp_path):
    path = write(tmp_path, CSV)
    with pytest.raises(IngestError, match="unknown format 'xls'"):
        read_file(path, format="xls")
    with pytest.raises(IngestError, match="a column mapping applies to csv and parquet"):
        read_file(path, format="scid", mapping={"ts": "a"})
    with pytest.raises(IngestError, match="no such file"):
        read_file(tmp_path / "missing.csv")
    with pytest.raises(IngestError, match="symbol 'a b'"):
        read_file(path, symbol="a b")
    with pytest.raises(ValueError):
        read_file(path, chunk_rows=0)
    assert FORMATS == ("scid", "depth", "binance", "dbn", "csv", "parquet")


def test_guess_format_cannot_tell(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(IngestError, match=r"blob: cannot tell the file format"):
        guess_format(path)
    path.write_bytes(b"")
    with pytest.raises(IngestError, match=r"blob: empty file"):
        guess_format(path)


def test_ingest_error_format():
    err = IngestError("ES.scid", "record 1234", "truncated record (17 of 40 bytes)")
    assert str(err) == "ES.scid: record 1234: truncated record (17 of 40 bytes)"
    assert str(IngestError("x.csv", "", "empty")) == "x.csv: empty"
    assert isinstance(err, ValueError)
    assert (err.path, err.where, err.message) == ("ES.scid", "record 1234",
                                                  "truncated record (17 of 40 bytes)")


def test_ordinal_ids_carry_across_chunks():
    ids = OrdinalIds()
    a, late = ids.assign("S", np.array([1000, 1000, 2000]))
    b, _ = ids.assign("S", np.array([2000, 2500, 3000]))  # 2000 and 2500 ns share a microsecond
    assert late is None and list(a) == [0, 1, 0] and list(b) == [1, 2, 0]
    assert list(ids.assign("T", np.array([2000]))[0]) == [0]
    _, late = ids.assign("S", np.array([3000, 3000 - 61 * 10**9]))
    assert late == 1


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.integers(0, 5), min_size=1, max_size=60),
       cuts=st.lists(st.integers(1, 60), max_size=6))
def test_ordinal_ids_match_a_plain_count_whatever_the_chunks(keys, cuts):
    # ts in microseconds 0..5 (plus sub-microsecond noise), all within the window
    ts = np.array(keys, dtype="int64") * 1000 + np.arange(len(keys)) % 1000
    want, seen = [], {}
    for k in keys:
        want.append(seen.get(k, 0))
        seen[k] = seen.get(k, 0) + 1
    ids, got, start = OrdinalIds(), [], 0
    for cut in sorted(set(cuts)) + [len(ts)]:
        part, late = ids.assign("S", ts[start:cut])
        assert late is None
        got.extend(part)
        start = max(start, cut)
    assert got == want


# --------------------------------------------------------------------------------------------
# Tardis.dev trade CSVs and "buyer is maker" flags

US0 = 1704205800000000  # 2024-01-02 14:30:00 UTC in microseconds
TARDIS = (
    "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
    f"binance-futures,BTCUSDT,{US0},{US0 + 900},4305213,buy,42000.1,0.004\n"
    f"binance-futures,ETHUSDT,{US0 + 1},{US0 + 950},,sell,2200.55,1.5\n"
    f"binance-futures,BTCUSDT,{US0},{US0 + 990},ab-77,unknown,42000.0,0.5\n"
    f"binance-futures,BTCUSDT,{US0 + 250_001},{US0 + 250_900},4305215,sell,41999.9,2\n"
)


@pytest.mark.parametrize("chunk_rows", [1, 1_000_000])
def test_tardis_trades_csv_without_a_mapping(tmp_path, chunk_rows):
    path = tmp_path / "binance-futures_trades_2024-01-02_BTCUSDT.csv.gz"
    path.write_bytes(gzip.compress(TARDIS.encode()))
    assert guess_format(path) == "csv"
    got, chunks = load(path, chunk_rows=chunk_rows)
    assert sorted(got) == ["BTCUSDT", "ETHUSDT"]
    pd.testing.assert_frame_equal(got["BTCUSDT"], frame([
        ("2024-01-02 14:30:00", 42000.1, 0.004, 1, 0),
        ("2024-01-02 14:30:00", 42000.0, 0.5, 0, 1),  # same microsecond: numbered in file order
        ("2024-01-02 14:30:00.250001", 41999.9, 2, -1, 0),
    ]))
    pd.testing.assert_frame_equal(got["ETHUSDT"], frame([
        ("2024-01-02 14:30:00.000001", 2200.55, 1.5, -1, 0)]))
    assert chunks[-1].done_bytes == chunks[-1].total_bytes == path.stat().st_size


def test_tardis_through_the_command(tmp_path):
    from tests.test_cli import run

    store = f"duckdb:///{tmp_path}/t.duckdb"
    for sym, tick in (("BTCUSDT", "0.1"), ("ETHUSDT", "0.01")):
        run(["instruments", "add", sym, "--tick-size", tick, "--asset-class", "crypto"], store)
    path = tmp_path / "binance-futures_trades_2024-01-02.csv"
    path.write_text(TARDIS)
    out = run(["import", str(path), "--quiet"], store).stdout
    assert "BTCUSDT: 3 trades read, 3 new" in out and "ETHUSDT: 1 trades read, 1 new" in out
    from data_access import open_store
    with open_store(store) as s:
        btc = s.trades("BTCUSDT")
    assert btc["price"].tolist() == [42000.1, 42000.0, 41999.9]
    assert btc["size"].tolist() == [0.004, 0.5, 2.0]
    assert btc["side"].tolist() == [1, 0, -1]


MAKER_TEXT = ["true", "False", " t ", "F", "yes", "NO", "y", "n", "1", "0", ""]
MAKER_SIDE = [-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, 0]


def test_buyer_maker_text_forms_in_csv(tmp_path):
    rows = "".join(f"{US0 + i},{100 + i},1,{v}\n" for i, v in enumerate(MAKER_TEXT))
    path = write(tmp_path, "T,p,q,m\n" + rows)
    got, _ = load(path, symbol="BTCUSDT",
                  mapping={"ts": "T", "price": "p", "size": "q", "buyer_maker": "m"})
    assert got["BTCUSDT"]["side"].tolist() == MAKER_SIDE
    assert got["BTCUSDT"]["price"].tolist() == [100.0 + i for i in range(len(MAKER_TEXT))]


@pytest.mark.parametrize("values, sides", [
    (pa.array([True, False, None], pa.bool_()), [-1, 1, 0]),
    (pa.array([1, 0, None], pa.int8()), [-1, 1, 0]),
    (pa.array([1.0, 0.0, 1.0]), [-1, 1, -1]),
    (pa.array(["True", "false", None]), [-1, 1, 0]),
])
def test_buyer_maker_in_parquet_by_its_binance_name(tmp_path, values, sides):
    table = pa.table({"time": pa.array([US0, US0 + 1, US0 + 2], pa.int64()),
                      "price": [10.5, 10.25, 10.0], "qty": [1.0, 2.0, 3.0],
                      "isBuyerMaker": values, "id": pa.array([7, 8, 9], pa.int64())})
    path = write_parquet(tmp_path, table)
    got, _ = load(path, symbol="BTCUSDT", mapping={"trade_id": "id"})
    pd.testing.assert_frame_equal(got["BTCUSDT"], frame([
        ("2024-01-02 14:30:00", 10.5, 1, sides[0], 7),
        ("2024-01-02 14:30:00.000001", 10.25, 2, sides[1], 8),
        ("2024-01-02 14:30:00.000002", 10.0, 3, sides[2], 9)], made=False))


def test_buyer_maker_through_the_command(tmp_path):
    from tests.test_cli import run

    store = f"duckdb:///{tmp_path}/m.duckdb"
    run(["instruments", "add", "BTCUSDT", "--tick-size", "0.1", "--asset-class", "crypto"], store)
    table = pa.table({"T": pa.array([US0 // 1000, US0 // 1000 + 5], pa.int64()),
                      "p": [42000.5, 42000.4], "q": [0.5, 1.25], "m": [True, False],
                      "a": pa.array([101, 102], pa.int64())})
    path = write_parquet(tmp_path, table)
    out = run(["import", str(path), "--symbol", "BTCUSDT", "--quiet", "--map", "ts=T",
               "--map", "price=p", "--map", "size=q", "--map", "buyer_maker=m",
               "--map", "trade_id=a"], store).stdout
    assert "BTCUSDT: 2 trades read, 2 new" in out
    from data_access import open_store
    with open_store(store) as s:
        got = s.trades("BTCUSDT")
    assert got["side"].tolist() == [-1, 1]
    assert got["trade_id"].tolist() == [101, 102]
    assert got["price"].tolist() == [42000.5, 42000.4] and got["size"].tolist() == [0.5, 1.25]


def test_buyer_maker_errors(tmp_path):
    head = "ts,price,size,m\n"
    csv_error(tmp_path, head + f"{US0},1,1,true\n{US0},1,1,maybe\n",
              r"line 3: column 'm': 'maybe' is not a buyer-is-maker flag", symbol="X",
              mapping={"buyer_maker": "m"})
    table = pa.table({"ts": [US0, US0], "price": [1.0, 1.0], "size": [1.0, 1.0], "m": [0, 2]})
    path = write_parquet(tmp_path, table)
    with pytest.raises(IngestError, match=r"row 1: column 'm': 2 is not a buyer-is-maker flag"):
        list(read_file(path, symbol="X", mapping={"buyer_maker": "m"}))
    # a true/false side column says how to map it
    err = csv_error(tmp_path, head.replace(",m", ",side") + f"{US0},1,1,true\n", r"buyer_maker",
                    symbol="X")
    assert "--map buyer_maker=COLUMN" in str(err)


def test_side_and_buyer_maker_columns_together(tmp_path):
    text = f"ts,price,size,side,is_buyer_maker\n{US0},1,1,buy,true\n"
    csv_error(tmp_path, text, r"both 'side' \(side\) and 'is_buyer_maker' \(buyer_maker\)",
              symbol="X")
    path = write(tmp_path, text)
    assert load(path, symbol="X", mapping={"side": "side"})[0]["X"]["side"].tolist() == [1]
    assert load(path, symbol="X", mapping={"buyer_maker": "is_buyer_maker"})[0]["X"][
        "side"].tolist() == [-1]
