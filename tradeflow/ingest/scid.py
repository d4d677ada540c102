"""Sierra Chart intraday data files (.scid).

A 56-byte header (``SCID``, HeaderSize 56, RecordSize 40, Version, ...) then 40-byte records:
SCDateTime (int64 microseconds since 1899-12-30 UTC), float32 Open, High, Low, Close, uint32
NumTrades, TotalVolume, BidVolume, AskVolume.

Tick files hold one trade per record, marked by Open: 0 (``SINGLE_TRADE_WITH_BID_ASK``) or the
first/last sub-trade markers of an unbundled trade; then High is the ask, Low the bid, Close the
trade price, TotalVolume its size, and AskVolume/BidVolume say who aggressed. Any other Open is a
real price: the record is a bar (intraday files stored at 1 s, 1 m, ...). The Open marker
decides, not NumTrades (a marked record is one print, whatever its count). A file may mix both;
each kind comes out in its own chunks. Records are numbered from 0 (record 0 starts at byte 56).

Old files hold SCDateTime as it once was, a double of days since 1899-12-30 (the same 8 bytes).
The two cannot be confused: 1990-2100 as microseconds are int64 values of about 3e15-6e15, as a
double of days the same bytes read as about 4.68e18. The first record tells which a file holds;
every record must then hold the same. Doubles of days carry about a microsecond of rounding and
those files kept milliseconds at most, so their times are rounded to the millisecond.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd

from tradeflow.ingest.chunks import (
    BAR_IMPORT_COLUMNS,
    TS_MAX_NS,
    TS_MIN_NS,
    ImportChunk,
    check_symbol,
    first_true,
    fmt_ns,
    trades_chunk,
)
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.trade_ids import OrdinalIds
from tradeflow.model import ns_to_utc

HEADER = struct.Struct("<4sIIHHI36s")
HEADER_SIZE = 56
RECORD_SIZE = 40
RECORD = np.dtype([
    ("dt", "<i8"), ("open", "<f4"), ("high", "<f4"), ("low", "<f4"), ("close", "<f4"),
    ("num_trades", "<u4"), ("volume", "<u4"), ("bid_volume", "<u4"), ("ask_volume", "<u4"),
])
# Open values that mark a single-trade record (Sierra's IntradayRecord.h)
TRADE_MARKERS = np.array([0.0, -1.99900095e37, -1.99900197e37], dtype="<f4")
# SCDateTime epoch 1899-12-30 relative to the Unix epoch, in microseconds
EPOCH_OFFSET_US = 25569 * 86400 * 1_000_000
DAY_US = 86_400_000_000
# 1990-2100 as SCDateTime: microseconds (today's int64) and days (the old double)
SC_US_MIN, SC_US_MAX = TS_MIN_NS // 1000 + EPOCH_OFFSET_US, TS_MAX_NS // 1000 + EPOCH_OFFSET_US
SC_DAYS_MIN, SC_DAYS_MAX = SC_US_MIN / DAY_US, SC_US_MAX / DAY_US


def default_symbol(path) -> str:
    """``ESZ25-CME.scid`` -> ``ESZ25-CME``."""
    name = Path(path).name
    return name[:-5] if name.lower().endswith(".scid") else Path(name).stem


def _check_header(path, head: bytes):
    if len(head) < HEADER_SIZE:
        raise IngestError(path, "header", f"truncated header ({len(head)} of {HEADER_SIZE} bytes)")
    magic, header_size, record_size, _version, _unused, _utc_start, _ = HEADER.unpack(head)
    if magic != b"SCID":
        raise IngestError(path, "header", f"not a Sierra Chart intraday file (magic {magic!r}, "
                          "expected b'SCID')")
    if header_size != HEADER_SIZE or record_size != RECORD_SIZE:
        raise IngestError(path, "header", f"header size {header_size} / record size "
                          f"{record_size}, expected {HEADER_SIZE} / {RECORD_SIZE}")


def read_scid(path, symbol=None, chunk_rows=1_000_000):
    """Trades and bars of a .scid file, ``chunk_rows`` records at a time."""
    symbol = check_symbol(path, "", symbol if symbol is not None else default_symbol(path))
    ids = OrdinalIds()
    days = None  # whether the file holds the old days-as-double times, told by record 0
    timeframe = BarTimeframe(path)
    waiting: list[ImportChunk] = []  # bar chunks until the timeframe is known
    for rec, start, done, total in sc_records(path, HEADER_SIZE, RECORD, _check_header,
                                              chunk_rows):
        count = len(rec)
        if days is None:
            days = holds_days(rec["dt"][0])
        sc_us = days_to_us(path, rec["dt"], start) if days else rec["dt"]
        # times in range here; their order is checked by the importer, as for every format
        check_sc_times(path, sc_us, start, None, ordered=False)
        ts = (sc_us - EPOCH_OFFSET_US) * 1000
        tick = np.isin(rec["open"], TRADE_MARKERS)
        if tick.all():  # the usual tick file: no selection copies
            yield _trades(path, symbol, rec, ts, np.arange(start, start + count), ids,
                          done, total)
            continue
        if tick.any():
            yield _trades(path, symbol, rec[tick], ts[tick], np.flatnonzero(tick) + start,
                          ids, done, total)
        index = np.flatnonzero(~tick) + start
        timeframe.see(ts[~tick], index)
        waiting.append(_bars(path, symbol, rec[~tick], ts[~tick], index, done, total))
        if timeframe.decided:
            yield from _with_timeframe(waiting, timeframe.seconds)
    timeframe.decide()
    yield from _with_timeframe(waiting, timeframe.seconds)


def _with_timeframe(chunks: list, seconds) -> list:
    """The bar chunks that waited for the file's timeframe, with it (the list is emptied)."""
    out = list(chunks)
    chunks.clear()
    for chunk in out:
        chunk.seconds = seconds
    return out


def sc_records(path, header_size: int, dtype: np.dtype, check_header, chunk_rows: int):
    """A Sierra Chart file of a header and fixed-size records (``.scid``, ``.depth``), read
    ``chunk_rows`` records at a time: yields (records, index of the first, bytes done, file
    size). ``check_header(path, head)`` checks the header; a cut last record is refused before
    anything is read."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise IngestError(path, "", f"cannot open: {exc.strerror or exc}") from None
    with f:
        total = os.fstat(f.fileno()).st_size
        check_header(path, f.read(header_size))
        n, partial = divmod(total - header_size, dtype.itemsize)
        if partial:  # reject before importing anything: the file was cut (or is being written)
            raise IngestError(path, f"record {n}",
                              f"truncated record ({partial} of {dtype.itemsize} bytes)")
        start = 0
        while start < n:
            count = min(chunk_rows, n - start)
            rec = np.fromfile(f, dtype=dtype, count=count)
            if len(rec) != count:
                raise IngestError(path, f"record {start + len(rec)}", "file shrank while reading")
            yield rec, start, header_size + (start + count) * dtype.itemsize, total
            start += count


def holds_days(first_dt) -> bool:
    """Whether a file's first SCDateTime is the old double of days (else microseconds)."""
    value = np.asarray(first_dt, dtype="<i8").reshape(1)
    if SC_US_MIN <= value[0] < SC_US_MAX:
        return False
    days = value.view("<f8")[0]
    return bool(SC_DAYS_MIN <= days < SC_DAYS_MAX)


def days_to_us(path, dt: np.ndarray, start: int) -> np.ndarray:
    """Old SCDateTime doubles (days since 1899-12-30) of records ``start...`` as microseconds
    since then, rounded to the millisecond; a value outside 1990-2100 is an error."""
    days = np.asarray(dt, dtype="<i8").view("<f8")
    i = first_true(~((days >= SC_DAYS_MIN) & (days < SC_DAYS_MAX)))  # also NaN
    if i is not None:
        raise IngestError(path, f"record {start + i}", f"time {days[i]!r} (days since "
                          "1899-12-30, the old double format the file's first record holds) is "
                          "out of range (1990-2100)")
    return np.rint(days * (DAY_US // 1000)).astype("int64") * 1000


def check_sc_times(path, dt: np.ndarray, start: int, last_dt: int | None,
                   ordered: bool = True) -> int:
    """Sierra Chart ``SCDateTimeMS`` values (microseconds since 1899-12-30) of records
    ``start...``: in 1990-2100 and, if ``ordered``, never going back, also across chunks
    (``last_dt``: the previous chunk's last). Returns the last time. Shared by ``.scid`` (whose
    trades and bars follow the importer's time-order rule instead) and ``.depth`` (whose
    commands must replay in order)."""
    i = first_true((dt < SC_US_MIN) | (dt >= SC_US_MAX))
    if i is not None:
        hint = ("; it reads as an old days-as-double time, but the file's first record holds "
                "microseconds" if holds_days(dt[i]) else "")
        raise IngestError(path, f"record {start + i}", f"time {dt[i]} (microseconds since "
                          f"1899-12-30) is out of range (1990-2100){hint}")
    if not ordered:
        return int(dt[-1])
    prev = np.empty_like(dt)
    prev[1:] = dt[:-1]
    prev[0] = dt[0] if last_dt is None else last_dt
    i = first_true(dt < prev)
    if i is not None:
        raise IngestError(path, f"record {start + i}", "time goes backwards: "
                          f"{fmt_ns((dt[i] - EPOCH_OFFSET_US) * 1000)} after "
                          f"{fmt_ns((prev[i] - EPOCH_OFFSET_US) * 1000)}")
    return int(dt[-1])


def _check_prices(path, values, index, what):
    values = values.astype("float64")
    i = first_true(~np.isfinite(values) | (values <= 0))
    if i is not None:
        raise IngestError(path, f"record {int(index[i])}", f"{what} {values[i]} is not a "
                          "finite, positive price")
    return values


def _trades(path, symbol, rec, ts, index, ids: OrdinalIds, done, total) -> ImportChunk:
    price = _check_prices(path, rec["close"], index, "trade price")
    ask, bid = rec["ask_volume"], rec["bid_volume"]
    # AskVolume: traded at the ask (buyer aggressed); both or neither: Sierra did not say
    side = ((ask > 0).astype("int8") - (bid > 0).astype("int8")) * ((ask > 0) ^ (bid > 0))
    size = rec["volume"]
    trade_id, problem = ids.ids(symbol, ts, price, size, side)
    if problem is not None:
        raise IngestError(path, f"record {int(index[problem[0]])}", problem[1])
    return trades_chunk(symbol, ts, price, size, side, trade_id, done, total, places=index,
                        unit="record", price_bits=32)


class BarTimeframe:
    """The timeframe of a .scid file's bar records, which the header does not hold: Sierra Chart
    writes bars of its "Intraday Data Storage Time Unit" (1 to 60 seconds), at the start of
    their period. So the file's first ``DECIDE_AFTER`` bars (or all, if fewer) tell it: the
    largest divisor of a minute that every one of their times is a multiple of (1-second bars
    soon show times a second apart). Later bars must lie on that grid. Times that are not whole
    seconds leave it unknown (None)."""

    DECIDE_AFTER = 1000

    def __init__(self, path):
        self.path = path
        self.seconds: int | None = None
        self.decided = False
        self._grid, self._whole, self._seen = 60, True, 0

    def see(self, ts_ns: np.ndarray, index: np.ndarray) -> None:
        whole = ts_ns % 1_000_000_000 == 0
        secs = ts_ns // 1_000_000_000
        if not self.decided:
            self._whole &= bool(whole.all())
            if self._whole:
                self._grid = int(np.gcd.reduce(np.append(secs % 60, self._grid)))
            self._seen += len(ts_ns)
            if self._seen >= self.DECIDE_AFTER:
                self.decide()
            return
        if self.seconds is not None:
            i = first_true(~whole | (secs % self.seconds != 0))
            if i is not None:
                raise IngestError(self.path, f"record {int(index[i])}", f"bar time "
                                  f"{fmt_ns(int(ts_ns[i]))} is off the {self.seconds} s grid of "
                                  "the file's earlier bars (a .scid file holds bars of one "
                                  "storage time unit)")

    def decide(self) -> None:
        self.decided = True
        self.seconds = self._grid if self._whole else None


def _bars(path, symbol, rec, ts, index, done, total) -> ImportChunk:
    cols = {"ts": ns_to_utc(ts)}
    for name in ("open", "high", "low", "close"):
        cols[name] = _check_prices(path, rec[name], index, name)
    o, h, l, c = cols["open"], cols["high"], cols["low"], cols["close"]
    i = first_true((h < np.maximum(o, c)) | (l > np.minimum(o, c)))
    if i is not None:
        raise IngestError(path, f"record {int(index[i])}", f"bar high {h[i]} / low {l[i]} do not "
                          f"contain its open {o[i]} and close {c[i]}")
    cols["volume"] = rec["volume"].astype("float64")
    cols["ask_volume"] = rec["ask_volume"].astype("float64")
    cols["bid_volume"] = rec["bid_volume"].astype("float64")
    cols["trades"] = rec["num_trades"].astype("int64")
    frame = pd.DataFrame(cols, columns=list(BAR_IMPORT_COLUMNS))
    return ImportChunk("bars", symbol, frame, int(done), int(total), np.asarray(index, "int64"),
                       "record", 32)
