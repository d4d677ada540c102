"""Importing market-data files: the format registry, format guessing, and the chunk type.

``read_file`` streams any supported file as :class:`ImportChunk` s of at most
``chunk_rows`` rows, so a 10M-record file never sits in memory whole. Parsers live in one module
per format (``scid``, ``scdepth``, ``binance``, ``dbn``, ``tabular``); the helpers they share
(trade frames, time-range checks, ordinal trade ids) are at the bottom of this module.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from tradeflow import model
from tradeflow.ingest.errors import IngestError

FORMATS = ("scid", "depth", "binance", "dbn", "csv", "parquet")

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass
class ImportChunk:
    """A slice of an imported file, all rows for one symbol.

    ``kind`` is ``"trades"`` (``frame`` in :data:`model.TRADE_COLUMNS` layout) or ``"bars"``
    (``ts, open, high, low, close, volume, ask_volume, bid_volume, trades``, ``ts`` the bar's open
    time) or ``"depth_commands"`` (Sierra Chart market-depth commands, layout
    ``tradeflow.ingest.scdepth.COMMAND_COLUMNS``: the importer replays them into book snapshots,
    which needs the symbol's tick size). ``done_bytes``/``total_bytes`` tell the progress through
    the file.

    ``places`` holds, per row of ``frame``, the row's own place in the file: its ``unit``
    (``"line"``, ``"record"`` or ``"row"``, as :class:`IngestError` names places) and number, so
    that every later check (the importer's validation, a store's) names the file's line or record.
    ``price_bits`` is the precision of the file's prices (32 for ``.scid`` float32), which the tick
    grid check allows for. ``seconds`` is the timeframe of a ``bars`` chunk (None: unknown).
    """

    kind: str
    symbol: str
    frame: pd.DataFrame
    done_bytes: int
    total_bytes: int
    places: np.ndarray | None = None
    unit: str = "row"
    price_bits: int = 64
    seconds: int | None = None

    def where(self, i: int) -> str:
        """The file's own name for row ``i`` of ``frame``, e.g. ``"line 8"``."""
        return f"{self.unit} {int(self.places[i]) if self.places is not None else i}"


BAR_IMPORT_COLUMNS = ("ts", "open", "high", "low", "close", "volume", "ask_volume", "bid_volume",
                      "trades")


# --------------------------------------------------------------------------------------------
# Guessing


def is_zstd(head: bytes) -> bool:
    # a zstd frame, or a skippable frame (magic 0x184D2A5?) that may precede one
    return head[:4] == ZSTD_MAGIC or (len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18"
                                      and head[0] & 0xF0 == 0x50)


def _zstd_head(path: str, n: int = 4) -> bytes:
    try:
        with pa.CompressedInputStream(pa.OSFile(path), "zstd") as stream:
            return stream.read(n)
    except (pa.ArrowException, OSError):
        return b""


def guess_format(path) -> str:
    """The format of ``path``: binary signatures first, then the suffix, then a look at the text.

    A ``.csv`` (or ``.zip``/``.gz`` holding one) is ``binance`` when its first line matches a
    Binance public-data trades/aggTrades layout, else ``csv``.
    """
    from tradeflow.ingest import binance, tabular

    path = os.fspath(path)
    name = Path(path).name.lower()
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise IngestError(path, "", f"cannot open: {exc.strerror or exc}") from None
    if not head:
        raise IngestError(path, "", "empty file")
    if head[:4] == b"SCID":
        return "scid"
    if head[:4] == b"SCDD":
        return "depth"
    if head[:3] == b"DBN" or (is_zstd(head) and _zstd_head(path)[:3] == b"DBN"):
        return "dbn"
    if head[:4] == b"PAR1":
        return "parquet"
    if name.endswith(".scid"):
        return "scid"
    if name.endswith(".depth"):
        return "depth"
    if name.endswith((".dbn", ".dbn.zst", ".dbn.zstd")):
        return "dbn"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    try:
        first = tabular.first_line(path)
    except IngestError as exc:  # say why: a zip of two files, a damaged archive, not UTF-8...
        raise IngestError(path, exc.where, f"cannot tell the file format: {exc.message}") \
            from None
    if first is None:
        raise IngestError(path, "", "cannot tell the file format: it unpacks to nothing")
    if binance.sniff(first) is not None:
        return "binance"
    if name.endswith((".csv", ".txt", ".tsv", ".zip", ".gz")) or tabular.looks_tabular(first):
        return "csv"
    raise IngestError(path, "", "cannot tell the file format: no known signature, "
                      f"suffix or table header (it starts {first[:40]!r}); pass one of "
                      f"{', '.join(FORMATS)} explicitly")


# --------------------------------------------------------------------------------------------
# Reading

# Library errors a parser may let through on corrupt input; read_file turns them into
# IngestError so a caller only ever sees IngestError (never masking our own bugs: no Exception).
_LIBRARY_ERRORS = (pa.ArrowException, zipfile.BadZipFile, zlib.error, EOFError, OSError,
                   UnicodeDecodeError)


def read_file(path, format=None, symbol=None, chunk_rows=1_000_000,
              mapping=None) -> Iterator[ImportChunk]:
    """Stream the trades (bars, depth commands) of a file as :class:`ImportChunk` s.

    ``format`` None guesses it; ``symbol`` overrides the symbol the file names; ``mapping``
    (csv/parquet only) maps our column names to the file's. Malformed input raises
    :class:`IngestError` naming the file and the record/line/row, possibly mid-iteration (the
    caller imports in one transaction). Arguments, the format and the file's existence are
    checked at the call; the content as it is read. The market-data rules (tick grid,
    magnitudes, time order) are checked after parsing, by :mod:`tradeflow.ingest.validate`
    (``import_files`` applies it to every chunk).
    """
    path = os.fspath(path)
    if int(chunk_rows) < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows!r}")
    if not os.path.isfile(path):
        raise IngestError(path, "", "no such file" if not os.path.exists(path) else "not a file")
    fmt = format or guess_format(path)
    if fmt not in FORMATS:
        raise IngestError(path, "", f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if mapping and fmt not in ("csv", "parquet"):
        raise IngestError(path, "", f"a column mapping applies to csv and parquet files, not {fmt}")
    if symbol is not None:
        check_symbol(path, "", symbol)
    return _iterate(path, fmt, symbol, int(chunk_rows), mapping)


def _iterate(path, fmt, symbol, chunk_rows, mapping):
    from tradeflow.ingest import binance, dbn, scdepth, scid, tabular

    readers = {
        "scid": lambda: scid.read_scid(path, symbol=symbol, chunk_rows=chunk_rows),
        "depth": lambda: scdepth.read_depth(path, symbol=symbol, chunk_rows=chunk_rows),
        "binance": lambda: binance.read_binance(path, symbol=symbol, chunk_rows=chunk_rows),
        "dbn": lambda: dbn.read_dbn(path, symbol=symbol, chunk_rows=chunk_rows),
        "csv": lambda: tabular.read_csv(path, symbol=symbol, chunk_rows=chunk_rows,
                                        mapping=mapping),
        "parquet": lambda: tabular.read_parquet(path, symbol=symbol, chunk_rows=chunk_rows,
                                                mapping=mapping),
    }
    try:
        yield from readers[fmt]()
    except IngestError:
        raise
    except _LIBRARY_ERRORS as exc:
        raise IngestError(path, "", f"cannot read as {fmt}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Helpers the parsers share

TS_MIN_NS = int(pd.Timestamp("1990-01-01", tz="UTC").value)
TS_MAX_NS = int(pd.Timestamp("2100-01-01", tz="UTC").value)


def take(values, rows):
    """``values[rows]``, or ``values`` itself when ``rows`` is None (all rows)."""
    return values if rows is None else values[rows]


def first_true(mask) -> int | None:
    """Index of the first True in a boolean array, or None."""
    mask = np.asarray(mask)
    if not mask.any():
        return None
    return int(np.argmax(mask))


def fmt_ns(ns) -> str:
    """A nanosecond epoch value as readable UTC text (for messages)."""
    try:
        return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return str(ns)


def bad_time(ts_ns: np.ndarray) -> int | None:
    """Index of the first timestamp outside 1990-2100, or None."""
    return first_true((ts_ns < TS_MIN_NS) | (ts_ns >= TS_MAX_NS))


def check_symbol(path, where: str, symbol) -> str:
    """A symbol must follow the instrument symbol rule (:func:`model.validate_symbol`)."""
    try:
        return model.validate_symbol(symbol)
    except model.ModelError as exc:
        raise IngestError(path, where, f"{exc}; pass a symbol to the import") from None


def to_utc_ns(ts_ns: np.ndarray) -> pd.DatetimeIndex:
    """int64 epoch nanoseconds as a UTC ``datetime64[ns]`` index."""
    values = np.asarray(ts_ns, dtype="int64").view("datetime64[ns]")
    return pd.DatetimeIndex(values).tz_localize("UTC")


def trades_chunk(symbol, ts_ns, price, size, side, trade_id, done, total, places=None,
                 unit="row", price_bits=64) -> ImportChunk:
    """Trades from column arrays, as :func:`model.normalize_trades` lays them out (columns,
    dtypes, stable time order); built directly because it is the hot path (tests check that
    ``normalize_trades`` leaves the result unchanged). ``places`` (the rows' line or record
    numbers, in ``unit``) are reordered with the rows."""
    ts_ns = np.asarray(ts_ns, dtype="int64")
    frame = pd.DataFrame({
        "ts": to_utc_ns(ts_ns),
        "price": np.asarray(price, dtype="float64"),
        "size": np.asarray(size, dtype="float64"),
        "side": np.asarray(side, dtype="int8"),
        "trade_id": np.asarray(trade_id, dtype="int64"),
    }, columns=list(model.TRADE_COLUMNS))
    places = None if places is None else np.asarray(places, dtype="int64")
    if len(ts_ns) > 1 and not (ts_ns[1:] >= ts_ns[:-1]).all():
        order = np.argsort(ts_ns, kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
        places = None if places is None else places[order]
    return ImportChunk("trades", symbol, frame, int(done), int(total), places, unit, price_bits)


# Trades without source ids (numbered by their rank in the microsecond, in file order) may come
# this much before the latest one of their symbol already read from the same file (real feeds
# reorder a little: Databento's ts_event within records ordered by ts_recv); further back is
# refused (see tradeflow.ingest.validate), in every format alike. Trades with the source's ids
# may come in any order (Binance futures files interleave streams weeks apart); bars must be in
# order (a bar write replaces its minute).
REORDER_WINDOW_NS = 60 * 1_000_000_000


def late_reason(ts_ns: int, latest_ns: int, kind: str = "trades") -> str:
    """Why a row too far back in time is refused (the same words wherever it is found)."""
    if kind == "bars":
        return (f"bar time {fmt_ns(ts_ns)} is before a bar already read ({fmt_ns(latest_ns)}); "
                "bars must be in time order: sort the file")
    return (f"time {fmt_ns(ts_ns)} is more than {REORDER_WINDOW_NS // 10**9} s before a row "
            f"already read ({fmt_ns(latest_ns)}); without trade ids, rows may be out of time "
            f"order by at most {REORDER_WINDOW_NS // 10**9} s: sort the file")


# Ids of trades without a source id: -2**63 + (ordinal << HASH_BITS | content hash), see
# OrdinalIds.ids. Negative, so they never meet a source's own ids (which must be >= 0).
ORDINAL_BITS, HASH_BITS = 21, 42
CONTENT_ID_BASE = np.int64(-(2**63))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer over uint64 arrays: a fixed, well-spread 64-bit hash (numpy's
    uint64 array arithmetic wraps, as the algorithm wants)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def content_hash(price, size, side) -> np.ndarray:
    """A 64-bit hash of each trade's price, size and side (their exact float64 bits)."""
    price = np.asarray(price, dtype="float64") + 0.0  # -0.0 and 0.0 alike
    size = np.asarray(size, dtype="float64") + 0.0
    h = _mix(np.ascontiguousarray(price).view("uint64"))
    h = _mix(h ^ np.ascontiguousarray(size).view("uint64"))
    return _mix(h ^ (np.asarray(side, dtype="int64") + 2).astype("uint64"))


def made_ids(ordinals, price, size, side) -> np.ndarray:
    """``-2**63 + (ordinal << 42 | 42 bits of content_hash)``: the ids :class:`OrdinalIds` makes
    (ordinals below ``2**21``)."""
    low = (content_hash(price, size, side) >> np.uint64(64 - HASH_BITS)).astype("int64")
    return ((np.asarray(ordinals, dtype="int64") << HASH_BITS) | low) + CONTENT_ID_BASE


class OrdinalIds:
    """Trade ids for sources without ids, derived from each trade and its place in time.

    :meth:`ids` gives ``-2**63 + (ordinal << 42 | hash)``: ``ordinal`` is the trade's rank among
    trades of the same symbol and microsecond (the resolution the stores keep) in file order,
    carried across chunks; ``hash`` is 42 bits of a hash of its price, size and side. So
    re-importing a file finds the same keys (nothing new is stored), trades of another file at
    the same microsecond are new unless price, size, side and rank all match (or, with odds of
    1 in 2**42 per such pair, the hashes collide), and ids keep the file's order within a
    microsecond (stores order trades by time, then id). At most 2**21 trades share one
    microsecond.

    Counts are kept for the last ``window_ns`` of time seen, so slightly out-of-order input works;
    a trade older than that cannot be numbered reliably and is reported. Pure numpy (sorted
    input, the usual case, needs no sort at all).
    """

    def __init__(self, window_ns: int = REORDER_WINDOW_NS):
        self.window_us = window_ns // 1000
        # symbol -> (sorted microsecond keys still open, their counts, latest key seen)
        self._carry: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    def ids(self, symbol: str, ts_ns, price, size, side
            ) -> tuple[np.ndarray, tuple[int, str] | None]:
        """(trade ids, None) or (empty, (index of the first trade that cannot be numbered, why))."""
        latest = self._carry[symbol][2] * 1000 if symbol in self._carry else None
        ords, late = self.assign(symbol, ts_ns)
        if late is not None:
            return ords, (late, late_reason(int(np.asarray(ts_ns)[late]), latest))
        crowded = first_true(ords >= 1 << ORDINAL_BITS)
        if crowded is not None:
            return ords[:0], (crowded, f"more than {1 << ORDINAL_BITS:,} trades at one "
                              "microsecond: without trade ids they cannot be told apart")
        return made_ids(ords, price, size, side), None

    def assign(self, symbol: str, ts_ns: np.ndarray) -> tuple[np.ndarray, int | None]:
        """(ordinals, index of the first trade too far back in time, or None)."""
        keys = np.asarray(ts_ns, dtype="int64") // 1000
        n = len(keys)
        if n == 0:
            return np.zeros(0, dtype="int64"), None
        carry = self._carry.get(symbol)
        if carry is not None:
            late = first_true(keys < carry[2] - self.window_us)
            if late is not None:
                return np.zeros(0, dtype="int64"), late
        order = None if (n < 2 or bool((keys[1:] >= keys[:-1]).all())) else \
            np.argsort(keys, kind="stable")
        sk = keys if order is None else keys[order]
        start = np.empty(n, dtype=bool)
        start[0] = True
        np.not_equal(sk[1:], sk[:-1], out=start[1:])
        first = np.flatnonzero(start)
        uniq = sk[first]
        counts = np.diff(np.append(first, n))
        ords = np.arange(n) - np.repeat(first, counts)
        high = int(sk[-1])
        if carry is not None and len(carry[0]):
            ckeys, ccounts, chigh = carry
            high = max(high, chigh)
            pos = np.minimum(np.searchsorted(ckeys, uniq), len(ckeys) - 1)
            offset = np.where(ckeys[pos] == uniq, ccounts[pos], 0)
            ords += np.repeat(offset, counts)
            counts = counts + offset
        elif carry is not None:
            high = max(high, carry[2])
        keep = uniq >= high - self.window_us  # only keys a later chunk may still meet
        uniq, counts = uniq[keep], counts[keep]
        if carry is not None and len(carry[0]):
            rest = (ckeys >= high - self.window_us) & ~np.isin(ckeys, uniq)
            uniq = np.concatenate([ckeys[rest], uniq])
            counts = np.concatenate([ccounts[rest], counts])
            by_key = np.argsort(uniq, kind="stable")
            uniq, counts = uniq[by_key], counts[by_key]
        self._carry[symbol] = (uniq, counts, high)
        if order is None:
            return ords.astype("int64", copy=False), None
        ids = np.empty(n, dtype="int64")
        ids[order] = ords
        return ids, None
