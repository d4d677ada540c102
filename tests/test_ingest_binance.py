"""Binance public-data CSVs: spot (no header) and futures (header), aggTrades and trades."""
import zipfile

import numpy as np
import pandas as pd
import pytest

from tradeflow.ingest.binance import sniff, symbol_from_name
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.files import guess_format, read_file
from tradeflow.model import normalize_trades

MS = 1704067200123  # 2024-01-01 00:00:00.123 UTC
US = 1735689600000001  # 2025-01-01 00:00:00.000001 UTC


def frame(rows):
    """rows: (ts, price, size, side, trade_id)."""
    return pd.DataFrame({
        "ts": pd.DatetimeIndex([pd.Timestamp(r[0], tz="UTC") for r in rows]).as_unit("ns"),
        "price": np.array([r[1] for r in rows], dtype="float64"),
        "size": np.array([r[2] for r in rows], dtype="float64"),
        "side": np.array([r[3] for r in rows], dtype="int8"),
        "trade_id": np.array([r[4] for r in rows], dtype="int64"),
    })


def load(path, **kw):
    chunks = list(read_file(path, **kw))
    for c in chunks:
        pd.testing.assert_frame_equal(c.frame, normalize_trades(c.frame))
    return pd.concat([c.frame for c in chunks], ignore_index=True), chunks


SPOT_AGG = (
    f"1000,42000.50000000,0.10000000,2000,2001,{MS},True,True\n"
    f"1001,42000.40000000,0.20000000,2002,2002,{MS},False,True\n"
    f"1002,42001.00000000,1.50000000,2003,2005,{MS + 877},false,true\n"
)
SPOT_AGG_EXPECTED = frame([
    ("2024-01-01 00:00:00.123", 42000.5, 0.1, -1, 1000),
    ("2024-01-01 00:00:00.123", 42000.4, 0.2, 1, 1001),
    ("2024-01-01 00:00:01.000", 42001.0, 1.5, 1, 1002),
])


@pytest.mark.parametrize("chunk_rows", [1, 2, 1_000_000])
def test_spot_aggtrades_without_header(tmp_path, chunk_rows):
    path = tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv"
    path.write_text(SPOT_AGG)
    assert guess_format(path) == "binance"
    got, chunks = load(path, chunk_rows=chunk_rows)
    pd.testing.assert_frame_equal(got, SPOT_AGG_EXPECTED)
    assert {c.symbol for c in chunks} == {"BTCUSDT"}
    assert all(len(c.frame) <= chunk_rows for c in chunks)
    assert chunks[-1].done_bytes == chunks[-1].total_bytes == path.stat().st_size


def test_futures_aggtrades_with_header_and_blank_last_line(tmp_path):
    path = tmp_path / "ETHUSDT-aggTrades-2024-05-01.csv"
    path.write_text("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
                    f"is_buyer_maker\n26129,3000.10,4.7,27781,27781,{MS},true\n"
                    f"26130,3000.20,0.5,27782,27783,{MS + 1},false\n\n")
    got, chunks = load(path)
    pd.testing.assert_frame_equal(got, frame([
        ("2024-01-01 00:00:00.123", 3000.1, 4.7, -1, 26129),
        ("2024-01-01 00:00:00.124", 3000.2, 0.5, 1, 26130),
    ]))
    assert chunks[0].symbol == "ETHUSDT"


def test_spot_trades_in_microseconds_inside_zip(tmp_path):
    path = tmp_path / "BNBUSDT-trades-2025-01-01.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("BNBUSDT-trades-2025-01-01.csv",
                   f"51175358,700.10,5.69,3983.5690,{US},True,True\n"
                   f"51175359,700.20,1.00,700.2000,{US + 1},False,True\n")
    assert guess_format(path) == "binance"
    got, chunks = load(path)
    pd.testing.assert_frame_equal(got, frame([
        ("2025-01-01 00:00:00.000001", 700.1, 5.69, -1, 51175358),
        ("2025-01-01 00:00:00.000002", 700.2, 1.0, 1, 51175359),
    ]))
    assert chunks[-1].symbol == "BNBUSDT"
    assert chunks[-1].done_bytes == chunks[-1].total_bytes == path.stat().st_size


@pytest.mark.parametrize("head", ["id,price,qty,quote_qty,time,is_buyer_maker",
                                  "id,price,qty,base_qty,time,is_buyer_maker", None])
def test_futures_trades_usdm_coinm_and_headerless(tmp_path, head):
    path = tmp_path / "BTCUSD_PERP-trades-2024-01-01.csv"
    body = f"28457,9635.0,1,0.01037883,{MS},true\n"
    path.write_text((head + "\n" if head else "") + body)
    got, _ = load(path, symbol="BTCUSD_PERP")
    pd.testing.assert_frame_equal(got, frame([("2024-01-01 00:00:00.123", 9635.0, 1, -1, 28457)]))


def test_out_of_order_rows_are_kept(tmp_path):
    # some futures files are not in time order; ids are the source's, so that is fine
    path = tmp_path / "BTCUSDT-aggTrades-2023-05.csv"
    path.write_text(f"2,1.0,1,2,2,{MS + 5000},true,true\n1,1.0,1,1,1,{MS},true,true\n")
    got, _ = load(path)
    assert list(got["trade_id"]) == [1, 2]


def test_sniff_and_symbol_from_name():
    assert sniff(f"1,2.5,3,4,5,{MS},True,True").kind == "aggTrades"
    assert sniff(f"1,2.5,3,4,5,{MS},true").kind == "aggTrades"
    assert sniff(f"1,2.5,3,7.5,{MS},True,True").kind == "trades"
    assert sniff(f"1,2.5,3,7.5,{MS},true").kind == "trades"
    assert sniff("ts,price,size,side") is None
    assert sniff(f"{MS},2.5,3,1") is None
    assert symbol_from_name("btcusdt-aggTrades-2024-01-01.zip") == "BTCUSDT"
    assert symbol_from_name("prices.csv") is None


def test_generic_csv_is_not_binance(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("ts,price,size\n2024-01-01T00:00:00Z,1.0,2\n")
    assert guess_format(path) == "csv"


def error(path, match, **kw):
    with pytest.raises(IngestError, match=match) as info:
        list(read_file(path, format="binance", **kw))
    assert str(info.value).startswith(f"{path}: ")
    return info.value


def spot(tmp_path, extra_line, position=1, name="BTCUSDT-aggTrades-2024-01-01.csv"):
    lines = SPOT_AGG.splitlines()
    lines.insert(position, extra_line)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, match", [
    (f"7,abc,1,2,2,{MS},True,True", r"line 2: column 'price': not a number: 'abc'"),
    (f"7,1.0,1,2,2,{MS},True", r"line 2: Expected 8 columns, got 7"),
    (f"7,1.0,1,2,2,{MS},maybe,True", r"line 2: column 'is_buyer_maker': not true/false"),
    (f"7,1.0,,2,2,{MS},True,True", r"line 2: column 'quantity': missing value"),
    (f"7,-1.0,1,2,2,{MS},True,True", r"line 2: column 'price': -1.0 is negative"),
    (f"7,inf,1,2,2,{MS},True,True", r"line 2: column 'price': inf is not a finite number"),
    (f"7,1.0,1,2,2,{MS * 1000},True,True",
     r"line 2: column 'transact_time': epoch .* out of range"),
    (f"7.5,1.0,1,2,2,{MS},True,True", r"line 2: column 'agg_trade_id': not an integer"),
])
def test_errors_name_the_line(tmp_path, line, match):
    error(spot(tmp_path, line), match)


def test_error_line_after_chunk_boundary(tmp_path):
    path = spot(tmp_path, f"7,abc,1,2,2,{MS},True,True", position=3)
    error(path, r"line 4: column 'price'", chunk_rows=1)


def test_error_not_binance_and_empty(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("ts,price,size\n")
    error(path, r"line 1: not a Binance trades/aggTrades line")
    path.write_text("")
    error(path, "empty file")


def test_error_symbol_unknown(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(SPOT_AGG)
    error(path, "cannot tell the symbol from the file name")
    assert load(path, format="binance", symbol="BTCUSDT")[1][0].symbol == "BTCUSDT"


def test_error_zip_with_two_files(tmp_path):
    path = tmp_path / "BTCUSDT-trades-2024-01.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.csv", SPOT_AGG)
        z.writestr("b.csv", SPOT_AGG)
    error(path, "the zip holds 2 files")


def test_error_corrupt_zip(tmp_path):
    path = tmp_path / "BTCUSDT-trades-2024-01.zip"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    error(path, "zip")


# Every data.binance.vision trade file name form: spot, USD-M (perpetual and delivery), COIN-M
# (perpetual and delivery); trades and aggTrades; daily and monthly. Each file is built with the
# layout its market publishes, zipped as Binance ships it, and read without --symbol.
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
NAMED = [
    # (zip name, header or None, row, expected (ts, price, size, side, id))
    ("BTCUSDT-aggTrades-2024-01-01.zip", None, f"11,42000.5,0.25,20,21,{MS},True,True",
     ("2024-01-01 00:00:00.123", 42000.5, 0.25, -1, 11)),
    ("ETHBTC-trades-2024-01.zip", None, f"12,0.05,3.5,0.175,{MS},False,True",
     ("2024-01-01 00:00:00.123", 0.05, 3.5, 1, 12)),
    ("1000PEPEUSDT-aggTrades-2024-01.zip", AGG_HEADER, f"13,0.0012,500,30,30,{MS},false",
     ("2024-01-01 00:00:00.123", 0.0012, 500, 1, 13)),
    ("BTCUSDT_240329-trades-2024-01-01.zip", "id,price,qty,quote_qty,time,is_buyer_maker",
     f"14,43000.1,0.002,86.0002,{MS},true", ("2024-01-01 00:00:00.123", 43000.1, 0.002, -1, 14)),
    ("BTCUSD_PERP-aggTrades-2026-05-08.zip", AGG_HEADER, f"15,96000.0,7,40,42,{MS},false",
     ("2024-01-01 00:00:00.123", 96000.0, 7, 1, 15)),
    ("ETHUSD_240628-trades-2024-01.zip", "id,price,qty,base_qty,time,is_buyer_maker",
     f"16,2300.25,3,0.0130,{MS},true", ("2024-01-01 00:00:00.123", 2300.25, 3, -1, 16)),
]


@pytest.mark.parametrize("name, head, row, want", NAMED, ids=[n[0] for n in NAMED])
def test_every_public_data_name_gives_the_symbol(tmp_path, name, head, row, want):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name[:-4] + ".csv", (head + "\n" if head else "") + row + "\n")
    assert guess_format(path) == "binance"
    got, chunks = load(path)
    symbol = name.split("-")[0]
    assert [c.symbol for c in chunks] == [symbol]
    pd.testing.assert_frame_equal(got, frame([want]))
    assert symbol_from_name(name[:-4] + ".csv") == symbol


def test_symbol_from_name_forms():
    assert symbol_from_name("btcusd_perp-aggTrades-2026-05-08.csv") == "BTCUSD_PERP"
    assert symbol_from_name("BTCUSDT-aggTrades-2024-01-01.zip.CHECKSUM") == "BTCUSDT"
    assert symbol_from_name("BTCUSD_PERP_X-trades-2024-01.zip") is None  # two underscores
    assert symbol_from_name("BTCUSD_PERP-klines-2024-01.zip") is None
    assert symbol_from_name("_PERP-trades-2024-01.zip") is None


def test_coin_m_file_through_the_command(tmp_path):
    from tests.test_cli import run

    store = f"duckdb:///{tmp_path}/b.duckdb"
    run(["instruments", "add", "BTCUSD_PERP", "--tick-size", "0.1", "--asset-class", "crypto"],
        store)
    path = tmp_path / "BTCUSD_PERP-aggTrades-2026-05-08.zip"
    ms = 1778198400000  # 2026-05-08 00:00:00 UTC
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(path.name[:-4] + ".csv", f"{AGG_HEADER}\n1,96000.1,7,1,1,{ms},false\n"
                   f"2,96000.0,3,2,3,{ms + 250},true\n")
    out = run(["import", str(path), "--quiet"], store).stdout
    assert "BTCUSD_PERP: 2 trades read, 2 new" in out
    from data_access import open_store
    with open_store(store) as s:
        got = s.trades("BTCUSD_PERP")
    assert got["price"].tolist() == [96000.1, 96000.0]
    assert got["size"].tolist() == [7.0, 3.0]
    assert got["side"].tolist() == [1, -1]
    assert got["trade_id"].tolist() == [1, 2]
    assert got["ts"].tolist() == [pd.Timestamp(ms, unit="ms", tz="UTC"),
                                  pd.Timestamp(ms + 250, unit="ms", tz="UTC")]
