"""Importing market-data files: guessing a file's format and handing it to its parser.

``read_file`` streams any supported file as :class:`~tradeflow.ingest.chunks.ImportChunk` s of
at most ``chunk_rows`` rows, so a 10M-record file never sits in memory whole. Parsers live in one
module per format (``scid``, ``scdepth``, ``binance``, ``dbn``, ``tabular``); what they share is
in :mod:`tradeflow.ingest.chunks` and :mod:`tradeflow.ingest.trade_ids`, which import none of them.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from tradeflow.ingest import binance, dbn, scdepth, scid, tabular
from tradeflow.ingest.chunks import ImportChunk, check_symbol
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.unpack import is_zstd

FORMATS = ("scid", "depth", "binance", "dbn", "csv", "parquet")


# --------------------------------------------------------------------------------------------
# Guessing


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
