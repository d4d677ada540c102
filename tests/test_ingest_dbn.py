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
from tradeflow.ingest.files import guess_format, read_file
from tradeflow.ingest.trade_ids import made_ids
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
    path = tmp_path / "defs.dbn"
    path.write_bytes(metadata(schema=db.Schema.DEFINITION))
    err = error(path, r"metadata: unsupported schema 'definition': TradeFlow imports trades from")
    assert "ohlcv-1m" in str(err) and "mbo" in str(err)


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


# --------------------------------------------------------------------------------------------
# MBO, CMBP-1/TCBBO, OHLCV bars, and the sampled BBO schemas


def test_layouts_match_the_library():
    def offsets(cls):
        dt = np.dtype([(n, t) for n, t in cls._dtypes])
        return {n: (dt.fields[n][1], dt.fields[n][0]) for n in dt.names}

    def ours(fields):
        dt = np.dtype(fields)
        return {n: (dt.fields[n][1], dt.fields[n][0]) for n in dt.names}

    assert ours(dbn_mod.MBO_FIELDS) == offsets(db.MBOMsg)
    assert ours(dbn_mod.OHLCV_FIELDS) == offsets(db.OHLCVMsg)
    used = ("instrument_id", "ts_event", "price", "size", "action", "side", "ts_recv")
    trade = ours(dbn_mod.TRADE_FIELDS)
    for cls in (db.TradeMsg, db.MBP1Msg, db.MBP10Msg, db.CMBP1Msg):
        lib = offsets(cls)
        assert {n: lib[n] for n in used} == {n: trade[n] for n in used}, cls


def mbo(dt_ns, action, side, price=4500.25, size=1, order_id=1, iid=42):
    return bytes(db.MBOMsg(publisher_id=1, instrument_id=iid, ts_event=T0 + dt_ns,
                           order_id=order_id, price=round(price * 1e9), size=size, action=action,
                           side=side, ts_recv=T0 + dt_ns + 700, flags=0))


@pytest.mark.parametrize("chunk_rows", [1, 1_000_000])
def test_mbo_imports_the_aggressors_trades_not_the_fills(tmp_path, chunk_rows):
    A, T, F, C = db.Action.ADD, db.Action.TRADE, db.Action.FILL, db.Action.CANCEL
    recs = [
        mbo(0, A, db.Side.ASK, 4500.25, 5, order_id=10),
        # a buyer lifts 3 at 4500.25: the aggressor's trade, the resting order's fill, its cancel
        mbo(100, T, db.Side.BID, 4500.25, 3, order_id=11),
        mbo(100, F, db.Side.ASK, 4500.25, 3, order_id=10),
        mbo(100, C, db.Side.ASK, 4500.25, 3, order_id=10),
        # a seller hits two resting bids: one trade record per level, each with its fill
        mbo(5_000, T, db.Side.ASK, 4500.00, 2, order_id=12),
        mbo(5_000, F, db.Side.BID, 4500.00, 2, order_id=7),
        mbo(5_000, T, db.Side.ASK, 4499.75, 4, order_id=12),
        mbo(5_000, F, db.Side.BID, 4499.75, 4, order_id=8),
        mbo(9_000, T, db.Side.NONE, 4500.50, 1, order_id=0),  # no aggressor known
    ]
    path = tmp_path / "es.mbo.dbn.zst"
    path.write_bytes(zstd(metadata(schema=db.Schema.MBO, mappings=[mapping("ESZ3", 42)])
                          + b"".join(recs)))
    got, chunks = load(path, chunk_rows=chunk_rows)
    pd.testing.assert_frame_equal(got["ESZ3"], frame([
        (100, 4500.25, 3, 1, 0), (5_000, 4500.00, 2, -1, 0), (5_000, 4499.75, 4, -1, 1),
        (9_000, 4500.50, 1, 0, 0)]))
    assert got["ESZ3"]["size"].sum() == 10  # each lot once


def cmbp(dt_ns, action, side, price, size, rtype=db.RType.CMBP_1):
    return bytes(db.CMBP1Msg(rtype=rtype, publisher_id=1, instrument_id=42, ts_event=T0 + dt_ns,
                             price=round(price * 1e9), size=size, action=action, side=side,
                             ts_recv=T0 + dt_ns + 300, flags=0))


@pytest.mark.parametrize("schema, rtype", [(db.Schema.CMBP_1, db.RType.CMBP_1),
                                           (db.Schema.TCBBO, db.RType.TCBBO)])
def test_cmbp1_and_tcbbo_trades(tmp_path, schema, rtype):
    A, T = db.Action.ADD, db.Action.TRADE
    recs = [cmbp(0, A, db.Side.BID, 99.5, 10, rtype), cmbp(10, T, db.Side.ASK, 99.5, 4, rtype),
            cmbp(20, T, db.Side.BID, 99.75, 6, rtype)]
    if schema == db.Schema.TCBBO:
        recs = recs[1:]  # trades only in tcbbo
    path = tmp_path / "c.dbn"
    path.write_bytes(metadata(schema=schema, mappings=[mapping("AAPL", 42)]) + b"".join(recs))
    got, _ = load(path)
    pd.testing.assert_frame_equal(got["AAPL"], frame([(10, 99.5, 4, -1, 0),
                                                      (20, 99.75, 6, 1, 1)]))  # same us


def ohlcv(dt_ns, o, h, l, c, v, rtype=db.RType.OHLCV_1M, iid=42):
    return bytes(db.OHLCVMsg(rtype=rtype, publisher_id=1, instrument_id=iid, ts_event=T0 + dt_ns,
                             open=round(o * 1e9), high=round(h * 1e9), low=round(l * 1e9),
                             close=round(c * 1e9), volume=v))


def bars_frame(rows):
    """rows: (ns after T0, open, high, low, close, volume)."""
    return pd.DataFrame({
        "ts": pd.DatetimeIndex(np.array([T0 + r[0] for r in rows], dtype="datetime64[ns]"))
        .tz_localize("UTC"),
        **{k: np.array([r[i + 1] for r in rows], dtype="float64")
           for i, k in enumerate(("open", "high", "low", "close", "volume"))},
        "ask_volume": np.zeros(len(rows)), "bid_volume": np.zeros(len(rows)),
        "trades": np.zeros(len(rows), dtype="int64"),
    })


MIN = 60 * 10**9


@pytest.mark.parametrize("schema, rtype, step", [
    (db.Schema.OHLCV_1S, db.RType.OHLCV_1S, 10**9), (db.Schema.OHLCV_1M, db.RType.OHLCV_1M, MIN),
    (db.Schema.OHLCV_1H, db.RType.OHLCV_1H, 60 * MIN),
    (db.Schema.OHLCV_1D, db.RType.OHLCV_1D, 1440 * MIN)])
@pytest.mark.parametrize("chunk_rows", [1, 1_000_000])
def test_ohlcv_bars(tmp_path, schema, rtype, step, chunk_rows):
    start = T0 - T0 % (1440 * MIN)  # a day's start: every bar size is aligned
    rows = [(start - T0, 4500.0, 4502.5, 4499.75, 4501.0, 40),
            (start - T0 + step, 4501.0, 4501.25, 4500.5, 4500.75, 7)]
    recs = b"".join(ohlcv(r[0], *r[1:], rtype=rtype) for r in rows)
    day = dt.date(2023, 11, 14)
    path = tmp_path / "bars.dbn.zst"
    maps = [mapping("ESZ3", 42, day, day + dt.timedelta(days=2))]
    path.write_bytes(zstd(metadata(schema=schema, mappings=maps) + recs))
    chunks = list(read_file(path, chunk_rows=chunk_rows))
    assert {c.kind for c in chunks} == {"bars"} and {c.symbol for c in chunks} == {"ESZ3"}
    assert {c.seconds for c in chunks} == {step // 10**9}  # the record type's interval
    got = pd.concat([c.frame for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(got, bars_frame(rows))
    assert chunks[-1].done_bytes == chunks[-1].total_bytes == path.stat().st_size


def test_ohlcv_two_instruments_and_errors(tmp_path):
    base = metadata(schema=db.Schema.OHLCV_1M, mappings=[mapping("ESZ3", 42), mapping("NQZ3", 43)])
    path = tmp_path / "two.dbn"
    path.write_bytes(base + ohlcv(0, 10, 11, 9, 10.5, 3) + ohlcv(0, 20, 21, 19, 20.5, 4, iid=43))
    chunks = list(read_file(path))
    by = {c.symbol: c.frame for c in chunks}
    pd.testing.assert_frame_equal(by["ESZ3"], bars_frame([(0, 10, 11, 9, 10.5, 3)]))
    pd.testing.assert_frame_equal(by["NQZ3"], bars_frame([(0, 20, 21, 19, 20.5, 4)]))
    path.write_bytes(base + ohlcv(0, 10, 11, 9, 10.5, 3) + ohlcv(MIN, 10, 10.25, 10.5, 10, 1))
    error(path, r"record 1: bar high 10.25 / low 10.5 do not contain its open 10.0 and close 10.0")
    bad = bytearray(ohlcv(MIN, 10, 11, 9, 10, 1))
    bad[16:24] = (2**63 - 1).to_bytes(8, "little")
    path.write_bytes(base + ohlcv(0, 10, 11, 9, 10.5, 3) + bytes(bad))
    error(path, r"record 1: bar open undefined is not a positive price")


def test_sampled_bbo_schemas_are_refused_clearly(tmp_path):
    path = tmp_path / "cbbo.dbn"
    path.write_bytes(metadata(schema=db.Schema.CBBO_1S, mappings=[mapping("AAPL", 42)]))
    err = error(path, r"metadata: schema 'cbbo-1s' samples the best bid/offer on an interval "
                r"and carries only each interval's last trade")
    assert "tcbbo" in str(err)
    # in a file without one schema (live data) the record says it
    rec = bytes(db.CBBOMsg(rtype=db.RType.CBBO_1M, publisher_id=1, instrument_id=42, ts_event=T0,
                           price=10**11, size=1, side=db.Side.BID, ts_recv=T0 + 60 * 10**9))
    path.write_bytes(metadata(schema=None, stype_in=None) + TRADES[0] + rec)
    error(path, r"record 1: schema 'cbbo-1m' samples the best bid/offer")


def test_one_second_bars_split_across_chunks_store_whole_minutes(tmp_path):
    from data_access import open_store
    from tradeflow.importer import import_files
    from tradeflow.model import Instrument

    start = T0 - T0 % MIN  # 22:13:00
    rng = np.random.default_rng(3)
    n = 150  # 2.5 minutes of 1-second bars, read 7 at a time: chunks end mid-minute
    close = 4500 + 0.25 * np.cumsum(rng.integers(-2, 3, n))
    opens = np.concatenate([[4500.0], close[:-1]])
    high, low = np.maximum(opens, close) + 0.25, np.minimum(opens, close) - 0.25
    vol = rng.integers(1, 50, n)
    recs = b"".join(ohlcv(start - T0 + i * 10**9, opens[i], high[i], low[i], close[i], int(vol[i]),
                          rtype=db.RType.OHLCV_1S) for i in range(n))
    path = tmp_path / "es-1s.dbn"
    path.write_bytes(metadata(schema=db.Schema.OHLCV_1S, mappings=[mapping("ESZ3", 42)]) + recs)
    with open_store(f"duckdb:///{tmp_path}/s.duckdb") as store:
        store.add_instrument(Instrument("ESZ3", 0.25, asset_class="future"))
        summary = import_files(store, [path], progress=False, chunk_rows=7)[0]
        got = store.bars("ESZ3", "1m")
    assert summary.format == "dbn" and summary.symbols["ESZ3"].trades_read == 0
    minute = np.arange(n) // 60
    assert got["volume"].tolist() == [float(vol[minute == m].sum()) for m in range(3)]
    assert got["open"].tolist() == [opens[m * 60] for m in range(3)]
    assert got["close"].tolist() == [close[min(m * 60 + 59, n - 1)] for m in range(3)]
    assert got["high"].tolist() == [high[minute == m].max() for m in range(3)]
    assert got["low"].tolist() == [low[minute == m].min() for m in range(3)]
    assert (got["ask_volume"] == 0).all() and (got["bid_volume"] == 0).all()


def test_hourly_bars_are_stored_as_hourly_bars(tmp_path):
    from data_access import open_store
    from tradeflow.importer import import_files
    from tradeflow.model import Instrument

    start = T0 - T0 % (60 * MIN)  # 22:00
    hours = [(start - T0 + h * 60 * MIN, 4500 + h, 4502 + h, 4499 + h, 4501 + h, 10 + h)
             for h in range(5)]
    # a live file without one schema: 1-minute bars in one of the hours, two record types
    minutes = [(start - T0 + 60 * MIN + m * MIN, 4501, 4501.5, 4500.5, 4501, 1) for m in range(3)]
    path = tmp_path / "mixed.dbn"
    day = dt.date(2023, 11, 14)
    maps = [mapping("ESZ3", 42, day, day + dt.timedelta(days=2))]
    path.write_bytes(metadata(schema=None, stype_in=None, mappings=maps)
                     + b"".join(ohlcv(*r, rtype=db.RType.OHLCV_1H) for r in hours)
                     + b"".join(ohlcv(*r, rtype=db.RType.OHLCV_1M) for r in minutes))
    assert sorted((c.seconds, len(c.frame)) for c in read_file(path)) == [(60, 3), (3600, 5)]
    with open_store(f"duckdb:///{tmp_path}/s.duckdb") as store:
        store.add_instrument(Instrument("ESZ3", 0.25, asset_class="future"))
        import_files(store, [path], progress=False)
        hourly = store.bars("ESZ3", "1h", source="external")
        rollups = store.bars("ESZ3", "1m")
    # each hour from the bars covering most of it: the hourly bar, over three 1-minute bars
    assert hourly["volume"].tolist() == [10, 11, 12, 13, 14]
    assert rollups["volume"].tolist() == [1, 1, 1]  # only the 1-minute bars make minutes


def test_bars_and_mbo_through_the_command(tmp_path):
    from data_access import open_store
    from tests.test_cli import run

    store = f"duckdb:///{tmp_path}/c.duckdb"
    run(["instruments", "add", "ESZ3", "--tick-size", "0.25", "--asset-class", "future"], store)
    start = T0 - T0 % (60 * MIN)  # 22:00
    bars = tmp_path / "es.ohlcv-1m.dbn.zst"
    bars.write_bytes(zstd(metadata(schema=db.Schema.OHLCV_1M, mappings=[mapping("ESZ3", 42)])
                          + ohlcv(start - T0, 4500, 4501, 4499.5, 4500.75, 12)
                          + ohlcv(start - T0 + MIN, 4500.75, 4502, 4500.5, 4501.5, 30)))
    trades = tmp_path / "es.mbo.dbn"
    T, F = db.Action.TRADE, db.Action.FILL
    trades.write_bytes(metadata(schema=db.Schema.MBO, mappings=[mapping("ESZ3", 42)])
                       + mbo(5 * MIN, T, db.Side.BID, 4502.0, 3) + mbo(5 * MIN, F, db.Side.ASK,
                                                                       4502.0, 3))
    out = run(["import", str(bars), str(trades), "--quiet"], store).stdout
    assert "ESZ3: 0 trades read, 0 new, 2 bars" in out and "ESZ3: 1 trades read, 1 new" in out
    with open_store(store) as s:
        got = s.bars("ESZ3", "1m", end=pd.Timestamp(T0, tz="UTC"))
        stored = s.trades("ESZ3")
    assert got["ts"].tolist() == [pd.Timestamp(start, tz="UTC"),
                                  pd.Timestamp(start + MIN, tz="UTC")]
    assert got[["open", "high", "low", "close", "volume"]].values.tolist() == [
        [4500, 4501, 4499.5, 4500.75, 12], [4500.75, 4502, 4500.5, 4501.5, 30]]
    assert stored[["price", "size", "side"]].values.tolist() == [[4502.0, 3, 1]]
    received = pd.read_csv(io.StringIO(run(["export", "bars", "ESZ3", "--spec", "1h",
                                            "--received"], store).stdout))
    assert received[["open", "close", "volume"]].values.tolist() == [[4500, 4501.5, 42]]
    fine = run(["export", "bars", "ESZ3", "--spec", "30s", "--received"], store, ok=False)
    assert "bar spec 30s cannot be built from the bars received there" in fine.stderr
    assert "Traceback" not in fine.stderr


def test_mbp10_and_tbbo_record_type(tmp_path):
    # mbp-10 records (368 bytes) begin as trades do; rtype TBBO (0xC5) has the MBP-1 layout
    book = trade(0, 20.0, 5, cls=db.MBP10Msg, action=db.Action.ADD)
    recs = [book, trade(10, 20.25, 2, side=db.Side.BID, cls=db.MBP10Msg),
            trade(2_000, 20.0, 1, cls=db.MBP10Msg)]
    path = tmp_path / "mbp10.dbn"
    path.write_bytes(metadata(schema=db.Schema.MBP_10, mappings=[mapping("ESZ3", 42)])
                     + b"".join(recs))
    got, _ = load(path)
    pd.testing.assert_frame_equal(got["ESZ3"], frame([(10, 20.25, 2, 1, 0),
                                                      (2_000, 20.0, 1, -1, 0)]))
    tbbo = bytearray(trade(10, 20.25, 2, cls=db.MBP1Msg))
    tbbo[1] = 0xC5
    path.write_bytes(metadata(schema=None, stype_in=None, mappings=[mapping("ESZ3", 42)])
                     + bytes(tbbo))
    pd.testing.assert_frame_equal(load(path)[0]["ESZ3"], frame([(10, 20.25, 2, -1, 0)]))
