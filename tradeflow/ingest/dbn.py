"""Databento DBN files (.dbn, .dbn.zst): trades and bars.

* Trades (action ``T``) from ``trades``, ``tbbo``, ``mbp-1``, ``mbp-10``, ``cmbp-1``, ``tcbbo``
  and ``mbo``. In MBO a trade is one ``T`` record (the aggressor's order, side = aggressor) and
  ``F`` records (the resting orders filled by it, side = the resting side): only ``T`` is
  imported, as counting the fills too would count every traded lot twice.
* Bars from ``ohlcv-1s``, ``-1m``, ``-1h``, ``-1d`` (``ts_event`` is the bar's open time). They
  carry no bid/ask split nor trade count: ``ask_volume``, ``bid_volume`` and ``trades`` are 0.
* ``cbbo-1s/1m`` and ``bbo-1s/1m`` sample the book on an interval and carry only each interval's
  last trade, so they give neither every trade nor bars: refused, saying so. Other record types
  (definitions, statistics, status, ...) are skipped.

The metadata header is decoded by ``databento_dbn`` (which also upgrades DBN v1/v2 metadata);
records are fixed-layout structs read in bulk with numpy, walking the per-record length byte
so that files mixing record types (live data with symbol-mapping or system records) work.
zstd is unpacked with pyarrow's streaming decompressor, which, unlike ``DBNDecoder``, reports a
cut-off zstd stream instead of quietly returning fewer records.

Trade side is the aggressor: ``B`` buyer (+1), ``A`` seller (-1), ``N`` none (0); prices are
fixed-point 1e-9. The symbol comes from the metadata's symbology (instrument id and UTC date of
``ts_recv`` -> requested symbol, as Databento's own ``InstrumentMap`` resolves it) or from
symbol-mapping records; a ``symbol`` argument overrides it. Records are numbered from 0, the first
record after the metadata. Trade ids are made by ``OrdinalIds`` from each trade's microsecond,
rank in it, price, size and side (DBN's ``sequence`` is not unique per trade on every venue).
"""
from __future__ import annotations

import datetime as dt
import os
import struct

import databento_dbn as dbn
import numpy as np
import pandas as pd
import pyarrow as pa

from tradeflow.ingest.chunks import (
    BAR_IMPORT_COLUMNS,
    TS_MAX_NS,
    TS_MIN_NS,
    ImportChunk,
    check_symbol,
    first_true,
    take,
    trades_chunk,
)
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.trade_ids import OrdinalIds
from tradeflow.ingest.unpack import BoundedStream, is_zstd
from tradeflow.model import ns_to_utc

# The record layouts, as databento_dbn describes them (``TradeMsg._dtypes`` etc.; tests compare).
HEADER_FIELDS = [("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"),
                 ("instrument_id", "<u4"), ("ts_event", "<u8")]
# trades (MBP-0); MBP-1, TBBO, MBP-10, CMBP-1 and TCBBO records begin with the same fields
TRADE_FIELDS = HEADER_FIELDS + [
    ("price", "<i8"), ("size", "<u4"), ("action", "S1"), ("side", "S1"), ("flags", "u1"),
    ("depth", "u1"), ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4"),
]
MBO_FIELDS = HEADER_FIELDS + [
    ("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"), ("flags", "u1"),
    ("channel_id", "u1"), ("action", "S1"), ("side", "S1"), ("ts_recv", "<u8"),
    ("ts_in_delta", "<i4"), ("sequence", "<u4"),
]
OHLCV_FIELDS = HEADER_FIELDS + [("open", "<i8"), ("high", "<i8"), ("low", "<i8"),
                                ("close", "<i8"), ("volume", "<u8")]


def _rtypes() -> dict[str, int]:
    """Record type names -> values, as this databento_dbn knows them."""
    out = {}
    for v in dbn.RType.variants():
        try:
            out[v.name] = int(v.value)
        except (TypeError, ValueError):
            pass
    return out


_RTYPE = _rtypes()
KNOWN_RTYPES = set(_RTYPE.values())
RTYPE_SYMBOL_MAPPING = _RTYPE["SYMBOL_MAPPING"]
TRADE_RTYPES = {_RTYPE[n] for n in ("MBP_0", "MBP_1", "MBP_10", "CMBP_1", "TCBBO", "TBBO")
                if n in _RTYPE}
MBO_RTYPE = _RTYPE["MBO"]
OHLCV_RTYPES = {_RTYPE[n] for n in ("OHLCV_DEPRECATED", "OHLCV_1S", "OHLCV_1M", "OHLCV_1H",
                                    "OHLCV_1D") if n in _RTYPE}
# the timeframe of each OHLCV record type (the deprecated one: the file's schema says)
BAR_SECONDS = {_RTYPE[n]: s for n, s in (("OHLCV_1S", 1), ("OHLCV_1M", 60), ("OHLCV_1H", 3600),
                                         ("OHLCV_1D", 86400)) if n in _RTYPE}
SCHEMA_SECONDS = {"ohlcv-1s": 1, "ohlcv-1m": 60, "ohlcv-1h": 3600, "ohlcv-1d": 86400}
TRADE_SCHEMAS = ("trades", "tbbo", "mbp-1", "mbp-10", "cmbp-1", "tcbbo", "mbo")
BAR_SCHEMAS = ("ohlcv-1s", "ohlcv-1m", "ohlcv-1h", "ohlcv-1d")
SCHEMAS = TRADE_SCHEMAS + BAR_SCHEMAS
# sampled on an interval: the book then, and only the interval's last trade
SAMPLED = {_RTYPE[n]: n.lower().replace("_", "-") for n in ("CBBO_1S", "CBBO_1M", "BBO_1S",
                                                             "BBO_1M") if n in _RTYPE}
SUPPORTED = (f"TradeFlow imports trades from {', '.join(TRADE_SCHEMAS)} and bars from "
             f"{', '.join(BAR_SCHEMAS)}")
UNDEF_PRICE = (1 << 63) - 1
UNDEF_TS = (1 << 64) - 1
DAY_NS = 86_400 * 10**9
BLOCK = 1 << 24  # bytes read at a time
_FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)


_TRADE_NAMES = ("instrument_id", "ts_event", "price", "size", "side", "ts_recv")
_BAR_NAMES = ("instrument_id", "ts_event", "open", "high", "low", "close", "volume")


def _dtype(fields, size: int) -> np.dtype:
    """``fields`` at the start of a record of ``size`` bytes (levels, ts_out add bytes)."""
    base = np.dtype(fields)
    return np.dtype({"names": base.names, "formats": [base.fields[n][0] for n in base.names],
                     "offsets": [base.fields[n][1] for n in base.names], "itemsize": size})


def _sampled_message(schema: str) -> str:
    return (f"schema {schema!r} samples the best bid/offer on an interval and carries only "
            "each interval's last trade, so it gives neither every trade nor bars; "
            f"{SUPPORTED} (for trades with the consolidated BBO use tcbbo)")


class _Symbols:
    """instrument_id and date -> symbol, from the metadata and symbol-mapping records."""

    def __init__(self):
        self.intervals: dict[int, list[tuple[int, int, str]]] = {}  # days since epoch [start, end)

    def add(self, iid: int, start_day: int, end_day: int, symbol: str):
        if symbol:
            self.intervals.setdefault(int(iid), []).append((start_day, end_day, symbol))

    def add_metadata(self, meta):
        stype_in, stype_out = meta.stype_in, meta.stype_out
        for symbol_in, entries in (meta.mappings or {}).items():
            for e in entries:
                try:
                    start = (e["start_date"] - dt.date(1970, 1, 1)).days
                    end = (e["end_date"] - dt.date(1970, 1, 1)).days
                    if stype_in == dbn.SType.INSTRUMENT_ID:
                        self.add(int(symbol_in), start, end, str(e["symbol"]))
                    elif stype_out == dbn.SType.INSTRUMENT_ID:
                        self.add(int(e["symbol"]), start, end, str(symbol_in))
                except (TypeError, ValueError, KeyError, AttributeError):
                    continue  # not an instrument-id mapping: nothing we can use

    def resolve(self, iid: int, day: int) -> str | None:
        for start, end, symbol in self.intervals.get(int(iid), ()):
            if start <= day < end:
                return symbol
        return None


def _open(path):
    """(stream of uncompressed DBN, raw file for progress, total bytes)."""
    raw = open(path, "rb")
    head = raw.read(4)
    raw.seek(0)
    if head[:3] == b"DBN":
        return raw, raw, os.fstat(raw.fileno()).st_size
    if is_zstd(head):
        size = os.fstat(raw.fileno()).st_size
        stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd")
        try:
            return BoundedStream(stream, path, "the zstd data", size), raw, size
        except IngestError:  # a bad limit setting
            raw.close()
            raise
    raw.close()
    raise IngestError(path, "", "not a DBN file (it starts with neither 'DBN' nor a zstd frame)")


def _read(path, stream, n, index) -> bytes:
    try:
        return stream.read(n)
    except IngestError:  # a decompression bomb (unpack limits)
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        where = "metadata" if index is None else f"record {index}"
        raise IngestError(path, where, f"corrupt compressed data: {exc}") from None


def read_dbn(path, symbol=None, chunk_rows=1_000_000):
    """Trades of a DBN file, in chunks of at most ``chunk_rows`` trades."""
    if symbol is not None:
        check_symbol(path, "", symbol)
    try:
        stream, raw, total = _open(path)
    except OSError as exc:
        raise IngestError(path, "", f"cannot open: {exc.strerror or exc}") from None
    try:
        yield from _records(path, stream, raw, total, symbol, chunk_rows)
    finally:
        stream.close()
        raw.close()


def _metadata(path, stream):
    prelude = _read(path, stream, 8, None)
    if len(prelude) < 8 or prelude[:3] != b"DBN":
        raise IngestError(path, "metadata", "not a DBN file (no 'DBN' signature)"
                          if prelude[:3] != b"DBN" or len(prelude) >= 3 else "truncated metadata")
    version = prelude[3]
    if not 1 <= version <= dbn.DBN_VERSION:
        raise IngestError(path, "metadata", f"DBN version {version} is not supported (this "
                          f"databento_dbn reads 1 to {dbn.DBN_VERSION})")
    (length,) = struct.unpack("<I", prelude[4:8])
    body = _read(path, stream, length, None)
    if len(body) < length:
        raise IngestError(path, "metadata", f"truncated metadata ({len(body)} of {length} bytes)")
    try:
        meta = dbn.Metadata.decode(prelude + body)
    except BaseException as exc:  # DBNError, or a pyo3 PanicException on garbage
        if isinstance(exc, _FATAL):
            raise
        raise IngestError(path, "metadata", f"cannot decode: {exc}") from None
    schema = _schema(meta)
    if schema in SAMPLED.values():
        raise IngestError(path, "metadata", _sampled_message(schema))
    if schema is not None and schema not in SCHEMAS:
        raise IngestError(path, "metadata", f"unsupported schema {schema!r}: {SUPPORTED}")
    return meta, version


def _schema(meta) -> str | None:
    """The file's schema name (``ohlcv-1m``...), None when it has none (live data)."""
    return None if meta.schema is None else str(getattr(meta.schema, "value", meta.schema))


def _take(path, rtype, buf, start, size, count, offset):
    """(kind, columns) of a run of records: kind "trades" or "bars", or None to skip the run."""
    if rtype in TRADE_RTYPES or rtype == MBO_RTYPE:
        fields = MBO_FIELDS if rtype == MBO_RTYPE else TRADE_FIELDS
        names, kind = _TRADE_NAMES, "trades"
    elif rtype in OHLCV_RTYPES:
        fields, names, kind = OHLCV_FIELDS, _BAR_NAMES, "bars"
    elif rtype in SAMPLED:
        raise IngestError(path, f"record {start}", _sampled_message(SAMPLED[rtype]))
    else:
        return None, None
    need = np.dtype(fields).itemsize
    if size < need:
        raise IngestError(path, f"record {start}", f"record of {size} bytes is too short for its "
                          f"type (needs {need})")
    rec = np.frombuffer(buf, dtype=_dtype(fields, size), count=count, offset=offset)
    rows = None
    if kind == "trades":
        trade = rec["action"] == b"T"  # book updates, and in MBO the fills: not trades
        rows = None if trade.all() else np.flatnonzero(trade)
    cols = {name: rec[name].copy() if rows is None else rec[name][rows] for name in names}
    cols["number"] = np.arange(start, start + count) if rows is None else rows + start
    return kind, cols


def _records(path, stream, raw, total, symbol, chunk_rows):
    meta, version = _metadata(path, stream)
    symbols = _Symbols()
    symbols.add_metadata(meta)
    ids = OrdinalIds()
    pending: dict[str, dict[str, list[np.ndarray]]] = {"trades": {}, "bars": {}}
    waiting = {"trades": 0, "bars": 0}  # rows in pending, not yet in a chunk
    buf = b""
    index = 0  # number of the record at the start of buf
    while True:
        block = _read(path, stream, BLOCK, index)
        buf = buf + block if buf else block
        runs, used = _walk(path, buf, index, final=not block)
        for rtype, start, size, count, offset in runs:
            if rtype == RTYPE_SYMBOL_MAPPING:
                _symbol_mappings(path, buf, start, size, count, offset, version, meta, symbols)
                continue
            kind, cols = _take(path, rtype, buf, start, size, count, offset)
            if kind == "bars":  # 0: unknown
                seconds = BAR_SECONDS.get(rtype, SCHEMA_SECONDS.get(_schema(meta), 0))
                cols["seconds"] = np.full(count, seconds, dtype="int64")
            if kind is not None:
                for name, col in cols.items():
                    pending[kind].setdefault(name, []).append(col)
                waiting[kind] += len(cols["number"])
        index += sum(r[3] for r in runs)
        buf = buf[used:]
        final = not block
        done = total if final else min(raw.tell(), total)
        for kind, make in (("trades", _chunks), ("bars", _bar_chunks)):
            n = waiting[kind]
            if not n or not (final or n >= chunk_rows):
                continue
            cols = {k: np.concatenate(v) for k, v in pending[kind].items()}
            cut = n if final else n - n % chunk_rows
            for lo in range(0, cut, chunk_rows):
                part = {k: v[lo:min(lo + chunk_rows, cut)] for k, v in cols.items()}
                yield from make(path, part, symbol, symbols, ids, done, total)
            pending[kind] = {k: [v[cut:]] for k, v in cols.items()}
            waiting[kind] -= cut
        if final:
            return


def _walk(path, buf: bytes, index: int, final: bool):
    """Split ``buf`` into runs of consecutive records of one type and size.

    Returns ``([(rtype, first record number, size, count, byte offset)], bytes used)``; a
    trailing partial record stays for the next block, or is an error at the end of the file.
    """
    data = np.frombuffer(buf, dtype="u1")
    runs, pos, n = [], 0, len(data)
    while pos < n:
        size = int(data[pos]) * 4
        if size < 16:
            raise IngestError(path, f"record {index}", f"impossible record length {size} bytes")
        if n - pos < size:
            break
        rtype = int(data[pos + 1])
        if rtype not in KNOWN_RTYPES:
            raise IngestError(path, f"record {index}", f"unknown record type 0x{rtype:02x}")
        m = (n - pos) // size
        grid = data[pos: pos + m * size].reshape(m, size)
        # records at this stride that keep the first one's length and type: one run
        count = first_true((grid[:, 0] != data[pos]) | (grid[:, 1] != rtype)) or m
        runs.append((rtype, index, size, count, pos))
        pos += count * size
        index += count
    if final and pos < n:
        size = int(data[pos]) * 4
        raise IngestError(path, f"record {index}",
                          f"truncated record ({n - pos} of {size} bytes)")
    return runs, pos


def _symbol_mappings(path, buf, start, size, count, offset, version, meta, symbols):
    """Symbol-mapping records (live data): decoded one by one with databento_dbn (rare)."""
    for k in range(count):
        one = buf[offset + k * size: offset + (k + 1) * size]
        try:
            dec = dbn.DBNDecoder(has_metadata=False, ts_out=bool(meta.ts_out),
                                 input_version=version)
            dec.write(one)
            msg = dec.decode()[0]
        except BaseException as exc:
            if isinstance(exc, _FATAL):
                raise
            raise IngestError(path, f"record {start + k}", f"bad symbol mapping: {exc}") from None
        out = msg.stype_out_symbol
        name = msg.stype_in_symbol if (not out or out.isdigit()) else out
        start_day = 0 if msg.start_ts == UNDEF_TS else msg.start_ts // DAY_NS
        end_day = 1 << 30 if msg.end_ts == UNDEF_TS else -(-msg.end_ts // DAY_NS)
        symbols.add(msg.instrument_id, start_day, end_day, name)


def _chunks(path, cols, symbol, symbols: _Symbols, ids: OrdinalIds, done, total):
    """Validate trade columns and yield one ImportChunk per symbol."""
    numbers = cols["number"]
    ts = cols["ts_event"]
    i = first_true((ts < TS_MIN_NS) | (ts >= TS_MAX_NS))  # also catches UNDEF_TIMESTAMP
    if i is not None:
        raise IngestError(path, f"record {int(numbers[i])}", f"ts_event {int(ts[i])} is out of "
                          "range (1990-2100)")
    ts = ts.astype("int64")
    price = cols["price"]
    i = first_true(price == UNDEF_PRICE)
    if i is not None:
        raise IngestError(path, f"record {int(numbers[i])}", "trade without a price")
    code = cols["side"].view("u1")
    buy, sell = code == ord("B"), code == ord("A")
    i = first_true(~(buy | sell | (code == ord("N"))))
    if i is not None:
        raise IngestError(path, f"record {int(numbers[i])}",
                          f"side {chr(code[i])!r} is not A, B or N")
    side = buy.astype("int8") - sell.astype("int8")
    groups = [(symbol, None)] if symbol is not None else _resolve(path, cols, symbols)
    for name, rows in groups:
        g_ts, g_price = take(ts, rows), take(price, rows) / 1e9
        g_size, g_side = take(cols["size"], rows), take(side, rows)
        g_id, problem = ids.ids(name, g_ts, g_price, g_size, g_side)
        if problem is not None:
            i = problem[0] if rows is None else rows[problem[0]]
            raise IngestError(path, f"record {int(numbers[i])}", problem[1])
        yield trades_chunk(name, g_ts, g_price, g_size, g_side, g_id, done, total,
                           places=take(numbers, rows), unit="record")


def _bar_chunks(path, cols, symbol, symbols: _Symbols, ids, done, total):
    """Validate OHLCV columns and yield one bars ImportChunk per symbol (``ids`` unused)."""
    numbers = cols["number"]
    ts = cols["ts_event"]
    i = first_true((ts < TS_MIN_NS) | (ts >= TS_MAX_NS))
    if i is not None:
        raise IngestError(path, f"record {int(numbers[i])}", f"ts_event {int(ts[i])} is out of "
                          "range (1990-2100)")
    out = {"ts": ns_to_utc(ts.astype("int64"))}
    for name in ("open", "high", "low", "close"):
        raw = cols[name]
        i = first_true((raw == UNDEF_PRICE) | (raw <= 0))
        if i is not None:
            what = "undefined" if raw[i] == UNDEF_PRICE else f"{raw[i] / 1e9}"
            raise IngestError(path, f"record {int(numbers[i])}", f"bar {name} {what} is not a "
                              "positive price")
        out[name] = raw / 1e9
    o, h, l, c = out["open"], out["high"], out["low"], out["close"]
    i = first_true((h < np.maximum(o, c)) | (l > np.minimum(o, c)))
    if i is not None:
        raise IngestError(path, f"record {int(numbers[i])}", f"bar high {h[i]} / low {l[i]} do "
                          f"not contain its open {o[i]} and close {c[i]}")
    out["volume"] = cols["volume"].astype("float64")
    n = len(ts)
    out["ask_volume"] = out["bid_volume"] = np.zeros(n)  # OHLCV has no bid/ask split
    out["trades"] = np.zeros(n, dtype="int64")  # nor a trade count
    frame = pd.DataFrame(out, columns=list(BAR_IMPORT_COLUMNS))
    groups = [(symbol, None)] if symbol is not None else _resolve(path, cols, symbols)
    seconds = cols["seconds"]
    for name, rows in groups:
        for secs in np.unique(take(seconds, rows)):  # one timeframe a chunk
            own = take(seconds, rows) == secs
            if rows is None and own.all():
                part, where = frame, None
            else:
                where = np.flatnonzero(own) if rows is None else np.asarray(rows)[own]
                part = frame.iloc[where].reset_index(drop=True)
            yield ImportChunk("bars", name, part, done, total, take(numbers, where), "record",
                              seconds=int(secs) or None)


def _resolve(path, cols, symbols: _Symbols):
    """[(symbol, row positions or None for all rows)] by instrument id and date of ts_recv
    (of ts_event for bars, and for records without ts_recv)."""
    numbers = cols["number"]
    recv = cols.get("ts_recv", cols["ts_event"])
    when = np.where(recv == np.uint64(UNDEF_TS), cols["ts_event"], recv).astype("int64")
    day = np.clip(when // DAY_NS, 0, 65535)
    iid = cols["instrument_id"].astype("int64")

    def name_of(i, d, first):
        name = symbols.resolve(i, d)
        if name is None:
            date = dt.date(1970, 1, 1) + dt.timedelta(days=int(d))
            raise IngestError(path, f"record {int(numbers[first])}", f"instrument_id {i} has no "
                              f"symbol in the file's symbology on {date}; pass a symbol to "
                              "import it")
        return check_symbol(path, f"record {int(numbers[first])}", name)

    # the usual case: one instrument, one symbol over the chunk's few days
    if (iid == iid[0]).all():
        days, first = np.unique(day, return_index=True)
        names = {name_of(int(iid[0]), int(d), int(f)) for d, f in zip(days, first, strict=True)}
        if len(names) == 1:
            return [(names.pop(), None)]
    key = iid * 65536 + day
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    table: dict[str, list[int]] = {}
    for u, k in enumerate(uniq):
        table.setdefault(name_of(int(k) // 65536, int(k) % 65536, int(first[u])), []).append(u)
    inverse = inverse.ravel()
    out = []
    for name, us in table.items():
        out.append((name, np.flatnonzero(np.isin(inverse, us))))
    return out
