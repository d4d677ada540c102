"""Fuzzing the parsers: any bytes, and cut or damaged valid files, either parse into valid chunks
or raise IngestError -- never another exception, never a hang."""
import datetime as dt
import io
import struct
import zipfile
from types import SimpleNamespace as NS

import databento_dbn as db
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.chunks import BAR_IMPORT_COLUMNS, TS_MAX_NS, TS_MIN_NS
from tradeflow.ingest.files import read_file
from tradeflow.ingest.scid import EPOCH_OFFSET_US, RECORD
from tradeflow.model import TRADE_COLUMNS, normalize_trades

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
pytestmark = pytest.mark.timeout(60)

# ------------------------------------------------------------------------- valid seed files

T0 = 1_700_000_000_000_000_000


def seed_scid() -> bytes:
    head = struct.pack("<4sIIHHI36s", b"SCID", 56, 40, 1, 0, 0, b"\0" * 36)
    rec = np.zeros(6, RECORD)
    rec["dt"] = T0 // 1000 + EPOCH_OFFSET_US + np.array([0, 0, 1, 5, 60_000_000, 60_000_001])
    rec["open"] = [0, 0, 0, 0, 100.0, 0]
    rec["high"], rec["low"] = 100.5, 99.5
    rec["close"] = [100.0, 100.25, 100.0, 99.75, 100.5, 100.25]
    rec["num_trades"] = [1, 1, 1, 1, 9, 1]
    rec["volume"] = [1, 2, 3, 4, 40, 5]
    rec["ask_volume"] = [1, 0, 3, 0, 30, 5]
    rec["bid_volume"] = [0, 2, 0, 4, 10, 0]
    return head + rec.tobytes()


def seed_dbn() -> bytes:
    day = dt.date(2023, 11, 14)
    maps = [NS(raw_symbol="ESZ3", intervals=[NS(start_date=day, end_date=day + dt.timedelta(1),
                                                symbol="42")])]
    meta = db.Metadata(dataset="GLBX.MDP3", start=T0, stype_in=db.SType.RAW_SYMBOL,
                       stype_out=db.SType.INSTRUMENT_ID, schema=db.Schema.TRADES,
                       symbols=["ESZ3"], mappings=maps).encode()
    recs = [bytes(db.TradeMsg(publisher_id=1, instrument_id=42, ts_event=T0 + i * 700,
                              price=4500_000_000_000 + i * 250_000_000, size=i + 1,
                              action=db.Action.TRADE, side=[db.Side.ASK, db.Side.BID][i % 2],
                              depth=0, ts_recv=T0 + i * 700 + 50, flags=0, sequence=i))
            for i in range(5)]
    return meta + b"".join(recs)


def seed_dbn_zst() -> bytes:
    out = io.BytesIO()
    enc = db.Transcoder(out, db.Encoding.DBN, db.Compression.ZSTD)
    enc.write(seed_dbn())
    enc.finish()
    return out.getvalue()


SEED_BINANCE = (b"1000,42000.5,0.1,2000,2001,1704067200123,True,True\n"
                b"1001,42000.4,0.2,2002,2002,1704067200123,False,True\n"
                b"1002,42001.0,1.5,2003,2005,1704067201000,false,true\n")
SEED_CSV = (b"ts,price,size,side,symbol\n2024-01-02T14:30:00Z,100.25,3,buy,ES\n"
            b"2024-01-02T14:30:00Z,100,1,S,ES\n2024-01-02T14:30:01Z,100.5,2,-1,NQ\n"
            b"2024-01-02 14:30:02,101,5,,ES\n")


def seed_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("BTCUSDT-aggTrades-2024-01-01.csv", SEED_BINANCE)
    return out.getvalue()


def seed_parquet() -> bytes:
    table = pa.table({"ts": [1704205800000, 1704205800000, 1704205801000],
                      "price": [1.0, 2.0, 3.0], "size": [1.0, 2.0, 3.0], "side": ["B", "S", ""]})
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=2)
    return out.getvalue()


SEEDS = {
    "scid": ("ES.scid", seed_scid()),
    "dbn": ("es.dbn", seed_dbn()),
    "dbn-zst": ("es.dbn.zst", seed_dbn_zst()),
    "binance": ("BTCUSDT-aggTrades-2024-01-01.csv", SEED_BINANCE),
    "binance-zip": ("BTCUSDT-aggTrades-2024-01-01.zip", seed_zip()),
    "csv": ("trades.csv", SEED_CSV),
    "parquet": ("trades.parquet", seed_parquet()),
}
FORMAT_OF = {"scid": "scid", "dbn": "dbn", "dbn-zst": "dbn", "binance": "binance",
             "binance-zip": "binance", "csv": "csv", "parquet": "parquet"}

# ---------------------------------------------------------------------------------- checks


def check_chunk(chunk):
    assert chunk.kind in ("trades", "bars")
    assert chunk.symbol and not any(c.isspace() for c in chunk.symbol)
    assert 0 <= chunk.done_bytes <= chunk.total_bytes
    f = chunk.frame
    assert len(f) > 0
    assert str(f["ts"].dtype) == "datetime64[ns, UTC]"
    ts = f["ts"].array.asi8
    assert ((ts >= TS_MIN_NS) & (ts < TS_MAX_NS)).all()
    if chunk.kind == "trades":
        assert tuple(f.columns) == TRADE_COLUMNS
        assert np.isfinite(f["price"]).all() and np.isfinite(f["size"]).all()
        assert (f["size"] >= 0).all()
        assert f["side"].isin([-1, 0, 1]).all() and f["side"].dtype == "int8"
        assert f["trade_id"].dtype == "int64"
        assert f["ts"].is_monotonic_increasing
        pd.testing.assert_frame_equal(f, normalize_trades(f))
    else:
        assert tuple(f.columns) == BAR_IMPORT_COLUMNS
        for c in BAR_IMPORT_COLUMNS[1:]:
            assert np.isfinite(f[c].astype("float64")).all()


def parse(path, fmt, chunk_rows):
    """Read the whole file; only clean chunks or an IngestError naming the file may come out."""
    try:
        for chunk in read_file(path, format=fmt, chunk_rows=chunk_rows):
            check_chunk(chunk)
    except IngestError as exc:
        assert str(exc).startswith(f"{path}: ")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_seeds_parse_cleanly(workdir):
    for key, (name, data) in SEEDS.items():
        path = workdir / name
        path.write_bytes(data)
        chunks = list(read_file(path, format=FORMAT_OF[key], chunk_rows=2))
        assert chunks, key
        for c in chunks:
            check_chunk(c)


# -------------------------------------------------------------------------------- mutations


@st.composite
def mutated(draw, data: bytes):
    """A valid file cut short, with bytes flipped, inserted or removed."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["cut", "flip", "insert", "delete", "set"]))
        if not buf:
            break
        pos = draw(st.integers(0, len(buf) - 1))
        if op == "cut":
            del buf[pos:]
        elif op == "flip":
            buf[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[pos:pos + draw(st.integers(1, 16))]
        else:  # an interesting value: zero, all ones, a separator, a digit
            buf[pos] = draw(st.sampled_from([0, 255, ord(","), ord("\n"), ord("9"), ord("-")]))
    return bytes(buf)


def _fuzz_test(key):
    name, data = SEEDS[key]

    @FUZZ
    @given(blob=st.one_of(mutated(data), st.binary(max_size=600)),
           chunk_rows=st.sampled_from([1, 3, 1000]))
    def run(workdir, blob, chunk_rows):
        path = workdir / name
        path.write_bytes(blob)
        parse(path, FORMAT_OF[key], chunk_rows)

    run.__name__ = f"test_fuzz_{key.replace('-', '_')}"
    return run


for _key in SEEDS:
    globals()[f"test_fuzz_{_key.replace('-', '_')}"] = _fuzz_test(_key)


# ------------------------------------------------------------- text that looks like a table

TOKENS = ["", "1", "-1", "0", "1.5", "-2.5", "nan", "inf", "1e308", "1e400", "true", "False",
          "buy", "S", "bid", "ask", "2024-01-02T14:30:00Z", "2024-13-40", "1704205800",
          "1704205800000", "1704205800000000000", "99999999999999999999", "\"1,5\"", "é", "ES",
          "E S", "-0", "0x10", " 3 ", "1735689600000001", "3024-01-02T14:30:00Z", "0001-01-01",
          "2024-01-02T14:30:00+14:00", "1e20", "-1704205800"]


@st.composite
def table_text(draw, header: str | None):
    ncols = draw(st.integers(1, 8))
    rows = [",".join(draw(st.lists(st.sampled_from(TOKENS), min_size=ncols, max_size=ncols + 1)))
            for _ in range(draw(st.integers(0, 6)))]
    return ((header + "\n") if header else "") + "\n".join(rows) + draw(st.sampled_from(
        ["", "\n", "\n\n", "\r\n"]))


@FUZZ
@given(text=table_text("ts,price,size,side,symbol,trade_id"), chunk_rows=st.sampled_from([1, 4]))
def test_fuzz_csv_text(workdir, text, chunk_rows):
    path = workdir / "text.csv"
    path.write_text(text, encoding="utf-8")
    parse(path, "csv", chunk_rows)


@FUZZ
@given(text=st.one_of(table_text(None), table_text(
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker")),
    chunk_rows=st.sampled_from([1, 4]))
def test_fuzz_binance_text(workdir, text, chunk_rows):
    path = workdir / "BTCUSDT-aggTrades-2024-01-01.csv"
    path.write_text(text, encoding="utf-8")
    parse(path, "binance", chunk_rows)


@FUZZ
@given(blob=st.binary(max_size=300))
def test_fuzz_guess_format(workdir, blob):
    from tradeflow.ingest.files import guess_format

    for name in ("x.bin", "x.csv", "x.scid", "x.dbn.zst", "x.zip"):
        path = workdir / name
        path.write_bytes(blob)
        try:
            fmt = guess_format(path)
        except IngestError:
            continue
        parse(path, fmt, 1000)


# ---------------------------------------------------------- Parquet columns of any type

VALUES = {
    "int": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "small": (pa.int64(), st.sampled_from([-1, 0, 1, 2, 1704205800, 1704205800000])),
    "uint": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "float": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "text": (pa.string(), st.sampled_from(TOKENS)),
    "bool": (pa.bool_(), st.booleans()),
    "stamp": (pa.timestamp("us"), st.integers(-(2**62), 2**62)),
    "stamp_tz": (pa.timestamp("ms", tz="America/Chicago"), st.integers(-(2**50), 2**50)),
    "date": (pa.date32(), st.integers(-(10**6), 10**6)),
}


@st.composite
def parquet_table(draw):
    n = draw(st.integers(1, 5))
    cols = {}
    for name in ("ts", "price", "size", "side", "trade_id", "symbol"):
        if name not in ("ts", "price", "size") and draw(st.booleans()):
            continue
        kind = draw(st.sampled_from(sorted(VALUES)))
        typ, values = VALUES[kind]
        cols[name] = pa.array(draw(st.lists(st.one_of(st.none(), values), min_size=n,
                                            max_size=n)), typ)
    return pa.table(cols)


@FUZZ
@given(table=parquet_table(), chunk_rows=st.sampled_from([1, 4]))
def test_fuzz_parquet_types(workdir, table, chunk_rows):
    path = workdir / "typed.parquet"
    pq.write_table(table, path, row_group_size=2)
    parse(path, "parquet", chunk_rows)
