"""Databento DBN import, on files written with databento_dbn's own encoder."""
import datetime as dt
import io
from types import SimpleNamespace as NS

import databento_dbn as db
import numpy as np
import pandas as pd
import pytest

from tradeflow.ingest import dbn as dbn_mod
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.files import guess_format, made_ids, read_file
from tradeflow.model import normalize_trades

T0 = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC
DAY = dt.date(2023, 11, 14)


def mapping(raw, iid, start=DAY, end=DAY + dt.timedelta(days=1)):
    return NS(raw_symbol=raw, intervals=[NS(start_date=start, end_date=end, symbol=str(iid))])


def metadata(schema=db.Schema.TRADES, mappings=(), version=None, ts_out=False,
             stype_in=db.SType.RAW_SYMBOL) -> bytes:
    kw = {} if version is None else {"version": version}
    return db.Metadata(dataset="GLBX.MDP3", start=T0, stype_in=stype_in,
                       stype_out=db.SType.INSTRUMENT_ID, schema=schema, symbols=["ESZ3"],
                       mappings=list(mappings), ts_out=ts_out, **kw).encode()


def trade(dt_ns=0, price=4500.25, size=3, side=db.Side.ASK, iid=42, recv=None, cls=db.TradeMsg,
          action=db.Action.TRADE, **kw) -> bytes:
    return bytes(cls(publisher_id=1, instrument_id=iid, ts_event=T0 + dt_ns,
                     price=round(price * 1e9), size=size, action=action, side=side, depth=0,
                     ts_recv=T0 + dt_ns + 500 if recv is None else recv, flags=0, **kw))


def zstd(data: bytes) -> bytes:
    out = io.BytesIO()
    enc = db.Transcoder(out, db.Encoding.DBN, db.Compression.ZSTD)
    enc.write(data)
    enc.finish()
    return out.getvalue()


def frame(rows):
    """rows: (ns after T0, price, size, side, trade_id)."""
    return pd.DataFrame({
        "ts": pd.DatetimeIndex(np.array([T0 + r[0] for r in rows], dtype="datetime64[ns]"))
        .tz_localize("UTC"),
        "price": np.array([r[1] for r in rows], dtype="float64"),
        "size": np.array([r[2] for r in rows], dtype="float64"),
        "side": np.array([r[3] for r in rows], dtype="int8"),
        "trade_id": made_ids([r[4] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                             [r[3] for r in rows]),  # r[4]: the rank in its microsecond
    })


def load(path, **kw):
    chunks = list(read_file(path, **kw))
    out = {}
    for c in chunks:
        assert c.kind == "trades"
        pd.testing.assert_frame_equal(c.frame, normalize_trades(c.frame))
        out.setdefault(c.symbol, []).append(c.frame)
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}, chunks


TRADES = [trade(0, 4500.25, 3, db.Side.ASK), trade(0, 4500.50, 1, db.Side.BID),
          trade(1_000, 4500.75, 2, db.Side.NONE), trade(1_500, 4500.00, 7, db.Side.BID)]
EXPECTED = frame([(0, 4500.25, 3, -1, 0), (0, 4500.50, 1, 1, 1), (1_000, 4500.75, 2, 0, 0),
                  (1_500, 4500.00, 7, 1, 1)])  # 1_000 and 1_500 ns share a microsecond


def test_layout_matches_the_library():
    if hasattr(db.TradeMsg, "_dtypes"):
        assert [(n, np.dtype(t)) for n, t in db.TradeMsg._dtypes] == \
            [(n, np.dtype(t)) for n, t in dbn_mod.TRADE_FIELDS]
        assert db.TradeMsg._dtypes == db.MBP1Msg._dtypes[:len(db.TradeMsg._dtypes)]


@pytest.mark.parametrize("chunk_rows", [1, 3, 1_000_000])
@pytest.mark.parametrize("compressed", [False, True])
def test_trades_exact(tmp_path, chunk_rows, compressed):
    data = metadata(mappings=[mapping("ESZ3", 42)]) + b"".join(TRADES)
    path = tmp_path / ("es.dbn.zst" if compressed else "es.dbn")
    path.write_bytes(zstd(data) if compressed else data)
    assert guess_format(path) == "dbn"
    got, chunks = load(path, chunk_rows=chunk_rows)
    assert list(got) == ["ESZ3"]
    pd.testing.assert_frame_equal(got["ESZ3"], EXPECTED)
    assert all(len(c.frame) <= chunk_rows for c in chunks)
    assert chunks[-1].done_bytes == chunks[-1].total_bytes == path.stat().st_size


def test_several_instruments_and_symbol_override(tmp_path):
    data = metadata(mappings=[mapping("ESZ3", 42), mapping("NQZ3", 43)]) + b"".join(
        [trade(0, 4500.0, 1, iid=42), trade(0, 15000.0, 2, iid=43), trade(0, 4500.25, 3, iid=42)])
    path = tmp_path / "two.dbn"
    path.write_bytes(data)
    got, _ = load(path)
    pd.testing.assert_frame_equal(got["ESZ3"], frame([(0, 4500.0, 1, -1, 0),
                                                      (0, 4500.25, 3, -1, 1)]))
    pd.testing.assert_frame_equal(got["NQZ3"], frame([(0, 15000.0, 2, -1, 0)]))
    merged, _ = load(path, symbol="X")
    assert list(merged) == ["X"]
    pd.testing.assert_frame_equal(merged["X"], frame([(0, 4500.0, 1, -1, 0), (0, 15000.0, 2, -1, 1),
                                                      (0, 4500.25, 3, -1, 2)]))


def test_mapping_follows_the_date_of_ts_recv(tmp_path):
    # instrument 42 is ESZ3 on 2023-11-14 and ESH4 from 2023-11-15 (a continuous-style map)
    maps = [mapping("ESZ3", 42), mapping("ESH4", 42, DAY + dt.timedelta(days=1),
                                         DAY + dt.timedelta(days=2))]
    next_day = 86_400 * 10**9
    data = metadata(mappings=maps) + trade(0) + trade(next_day)
    path = tmp_path / "roll.dbn"
    path.write_bytes(data)
    got, _ = load(path)
    assert sorted(got) == ["ESH4", "ESZ3"]


def test_mbp1_keeps_only_trades_and_ts_out(tmp_path):
    recs = [trade(0, 10.0, 1, cls=db.MBP1Msg, ts_out=T0 + 9),
            trade(5, 10.5, 9, cls=db.MBP1Msg, action=db.Action.ADD, ts_out=T0 + 9),
            trade(9, 10.25, 2, side=db.Side.BID, cls=db.MBP1Msg, ts_out=T0 + 9)]
    data = metadata(schema=db.Schema.MBP_1, mappings=[mapping("ESZ3", 42)], ts_out=True)
    path = tmp_path / "mbp1.dbn"
    path.write_bytes(data + b"".join(recs))
    got, _ = load(path)
    pd.testing.assert_frame_equal(got["ESZ3"], frame([(0, 10.0, 1, -1, 0),
                                                      (9, 10.25, 2, 1, 1)]))


def test_live_stream_with_symbol_mapping_records(tmp_path):
    sym = bytes(db.SymbolMappingMsg(
        publisher_id=1, instrument_id=7, ts_event=T0, stype_in=db.SType.RAW_SYMBOL,
        stype_in_symbol="CLZ3", stype_out=db.SType.INSTRUMENT_ID, stype_out_symbol="7",
        start_ts=T0 - 10**12, end_ts=T0 + 10**13))
    data = metadata(schema=None, stype_in=None) + sym + trade(0, 75.5, 4, iid=7)
    path = tmp_path / "live.dbn"
    path.write_bytes(data)
    got, _ = load(path)
    pd.testing.assert_frame_equal(got["CLZ3"], frame([(0, 75.5, 4, -1, 0)]))


@pytest.mark.parametrize("version", [1, 2])
def test_older_dbn_versions(tmp_path, version):
    path = tmp_path / "old.dbn"
    path.write_bytes(metadata(mappings=[mapping("ESZ3", 42)], version=version) + TRADES[0])
    got, _ = load(path)
    pd.testing.assert_frame_equal(got["ESZ3"], EXPECTED.iloc[:1])


def error(path, match, **kw):
    with pytest.raises(IngestError, match=match) as info:
        list(read_file(path, format="dbn", **kw))
    assert str(info.value).startswith(f"{path}: ")
    return info.value


def test_error_no_symbol(tmp_path):
    path = tmp_path / "nomap.dbn"
    path.write_bytes(metadata() + b"".join(TRADES))
    error(path, r"record 0: instrument_id 42 has no symbol .* on 2023-11-14; pass a symbol")
    got, _ = load(path, symbol="ES")
    pd.testing.assert_frame_equal(got["ES"], EXPECTED)


def test_error_truncated_record(tmp_path):
    path = tmp_path / "cut.dbn"
    path.write_bytes((metadata(mappings=[mapping("ESZ3", 42)]) + b"".join(TRADES))[:-7])
    err = error(path, "truncated")
    assert str(err) == f"{path}: record 3: truncated record (41 of 48 bytes)"


def test_error_truncated_zstd(tmp_path):
    data = metadata(mappings=[mapping("ESZ3", 42)]) + b"".join(TRADES)
    path = tmp_path / "cut.dbn.zst"
    path.write_bytes(zstd(data)[:-9])
    error(path, r"(metadata|record \d+).*corrupt compressed data")


def test_error_truncated_metadata(tmp_path):
    path = tmp_path / "meta.dbn"
    path.write_bytes(metadata()[:40])
    error(path, r"metadata: truncated metadata")


def test_error_not_dbn(tmp_path):
    path = tmp_path / "x.dbn"
    path.write_bytes(b"hello, world\n")
    error(path, r"not a DBN file")


def test_error_unsupported_schema(tmp_path):
    path = tmp_path / "bars.dbn"
    path.write_bytes(metadata(schema=db.Schema.OHLCV_1M))
    error(path, r"metadata: unsupported schema 'ohlcv-1m'")


def test_error_unknown_record_type_and_bad_length(tmp_path):
    base = metadata(mappings=[mapping("ESZ3", 42)])
    bad = bytearray(TRADES[1])
    bad[1] = 0x77
    path = tmp_path / "rtype.dbn"
    path.write_bytes(base + TRADES[0] + bytes(bad))
    error(path, r"record 1: unknown record type 0x77")
    bad = bytearray(TRADES[1])
    bad[0] = 2
    path.write_bytes(base + TRADES[0] + bytes(bad))
    error(path, r"record 1: impossible record length 8 bytes")


def test_error_bad_values(tmp_path):
    base = metadata(mappings=[mapping("ESZ3", 42)])
    path = tmp_path / "v.dbn"
    undefined_price = bytearray(TRADES[1])
    undefined_price[16:24] = (2**63 - 1).to_bytes(8, "little")
    path.write_bytes(base + TRADES[0] + bytes(undefined_price))
    error(path, r"record 1: trade without a price")
    bad_side = bytearray(TRADES[1])
    bad_side[29] = ord("X")
    path.write_bytes(base + TRADES[0] + bytes(bad_side))
    error(path, r"record 1: side 'X' is not A, B or N")
    path.write_bytes(base + TRADES[0] + trade(-T0 + 5))  # 1970
    error(path, r"record 1: ts_event 5 is out of range")


def test_guessed_by_content(tmp_path):
    data = metadata(mappings=[mapping("ESZ3", 42)]) + TRADES[0]
    for name, blob in (("plain.bin", data), ("packed.bin", zstd(data))):
        path = tmp_path / name
        path.write_bytes(blob)
        assert guess_format(path) == "dbn"
        assert load(path)[0]["ESZ3"]["price"].tolist() == [4500.25]
