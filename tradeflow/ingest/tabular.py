"""Generic trade tables: CSV (also inside .zip/.gz) and Parquet, with a column mapping.

Columns are found by name (case-insensitive): ``ts``/``time``/``timestamp``, ``price``,
``size``/``qty``/``quantity``/``volume``/``amount``, optional ``side`` (or ``buyer_maker``),
``trade_id`` and ``symbol``; ``mapping`` (our name -> the file's) overrides. Times are ISO 8601
text (naive means UTC), epoch numbers (s/ms/us/ns, told by magnitude once per file) or Parquet
timestamps. Sides are ``1/-1/0``, ``B/S``, ``buy/sell`` or ``bid/ask`` (traded at the ask = buyer
aggressor); an empty side or ``unknown`` is unknown (0); ``true/false`` is refused as a side.

A "buyer is maker" flag (Binance's ``is_buyer_maker``/``m``) is the role ``buyer_maker``: true
means the seller hit the bid (-1), false that the buyer lifted the ask (+1); it may be a boolean,
``1/0`` or text (``true/false``, ``t/f``, ``yes/no``, ``y/n``, ``1/0``); empty is unknown (0).
Columns named ``is_buyer_maker``/``isBuyerMaker``/``buyer_maker`` are taken as such by default.
Tardis.dev trade CSVs (``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``,
microsecond epochs, side ``buy/sell/unknown``) read without a mapping: their ``id`` is not used
(text on some exchanges, empty on others), trades are numbered per microsecond instead.

The CSV streaming helpers here (:func:`open_source`, :func:`stream_csv`) serve the Binance
parser too. CSV errors name the line (from 1, the header is line 1), Parquet errors the row
(from 0).
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tradeflow.ingest.chunks import (
    TS_MAX_NS,
    TS_MIN_NS,
    check_symbol,
    first_true,
    fmt_ns,
    take,
    trades_chunk,
)
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.trade_ids import OrdinalIds
from tradeflow.ingest.unpack import BoundedStream

ROLES = ("ts", "price", "size", "side", "buyer_maker", "trade_id", "symbol")
DEFAULT_NAMES = {
    "ts": ("ts", "time", "timestamp"),
    "price": ("price",),
    "size": ("size", "qty", "quantity", "volume", "amount"),
    "side": ("side",),
    "buyer_maker": ("is_buyer_maker", "isbuyermaker", "buyer_maker"),
    "trade_id": ("trade_id",),
    "symbol": ("symbol",),
}
REQUIRED = ("ts", "price", "size")
SNIFF_BYTES = 1 << 16


# --------------------------------------------------------------------------------------------
# Opening CSV text: plain, a .zip holding one file, or .gz


# What a damaged .zip/.gz may raise while opened or read. The stdlib readers are not hardened
# against hostile bytes (IndexError, struct.error, NotImplementedError "zip version 8.4" seen in
# fuzzing), so around *their* calls only, any Exception counts as a damaged archive.
_ZIP_ERRORS = (Exception,)


@dataclass
class Source:
    stream: BoundedStream  # the CSV bytes
    raw: io.BufferedReader  # the file on disk, for progress
    total: int
    inner_name: str  # the CSV's own name (the zip member's), for symbol guessing
    packed: bool = False  # read through zipfile/gzip

    def failed(self) -> str:
        """How a read error begins: unpacking an archive, or reading the file."""
        return f"cannot unpack {self.stream.what}" if self.packed else "cannot read"

    def done(self) -> int:
        try:
            return min(self.raw.tell(), self.total)
        except (OSError, ValueError):
            return self.total


@contextlib.contextmanager
def open_source(path):
    """The CSV bytes of ``path``, unpacking a .zip of one file or a .gz on the way, within the
    limits of :mod:`tradeflow.ingest.unpack` (the stream is stopped on the way out)."""
    path = os.fspath(path)
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise IngestError(path, "", f"cannot open: {exc.strerror or exc}") from None
    with raw:
        total = os.fstat(raw.fileno()).st_size
        head = raw.read(4)
        raw.seek(0)
        if head[:2] == b"PK":
            archive, member = _zip_member(path, raw)
            try:
                inner = archive.open(member)
            except _ZIP_ERRORS as exc:
                raise IngestError(path, "", f"cannot unpack {member.filename!r}: {exc}") from None
            name = Path(member.filename).name
            source = Source(BoundedStream(inner, path, f"the zip member {name!r}", total), raw,
                            total, name, True)
            closers = (inner, archive)
        elif head[:2] == b"\x1f\x8b":
            inner = gzip.GzipFile(fileobj=raw)
            name = Path(path).name
            source = Source(BoundedStream(inner, path, "the gzip data", total), raw, total,
                            name[:-3] if name.endswith(".gz") else name, True)
            closers = (inner,)
        else:
            source = Source(BoundedStream(raw, path, "the file", None), raw, total,
                            Path(path).name)
            closers = ()
        try:
            yield source
        finally:
            source.stream.stop()  # before closing what a read-ahead thread may be reading
            for c in closers:
                c.close()


def _zip_member(path, raw) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    """The one file in a zip (macOS resource forks aside), or an IngestError saying why not."""
    try:
        archive = zipfile.ZipFile(raw)
        members = [m for m in archive.infolist()
                   if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    except zipfile.BadZipFile as exc:
        why = ("no zip directory at its end: truncated, or not a zip"
               if "not a zip file" in str(exc) else str(exc))
        raise IngestError(path, "", f"not a readable zip file ({why})") from None
    except _ZIP_ERRORS as exc:
        raise IngestError(path, "", f"not a readable zip file ({exc})") from None
    if len(members) != 1:
        archive.close()
        names = ", ".join(repr(m.filename) for m in members[:3])
        more = ", ..." if len(members) > 3 else ""
        raise IngestError(path, "", f"the zip holds {len(members)} files"
                          f"{f' ({names}{more})' if members else ''}; expected exactly one CSV")
    return archive, members[0]


def _read_head(path) -> bytes:
    with open_source(path) as src:
        try:
            return src.stream.read(SNIFF_BYTES)
        except IngestError:
            raise
        except Exception as exc:  # noqa: BLE001 -- only a damaged archive may land here
            if not (src.packed or isinstance(exc, OSError)):
                raise
            raise IngestError(path, "line 1", f"{src.failed()}: {exc}") from None


def _decode_line(path, head: bytes) -> str:
    line = re.split(b"\r\n|\r|\n", head, maxsplit=1)[0]  # the line ends pyarrow knows
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and len(line) == len(head):
            text = line[: exc.start].decode("utf-8")  # a character cut at the end of the sniff
        else:
            raise IngestError(path, "line 1", f"not UTF-8 text (byte 0x{line[exc.start]:02x} "
                              f"at byte {exc.start + 1} of the line)") from None
    return text.lstrip("\ufeff")


def first_line(path) -> str | None:
    """The first line of a CSV source as text (None for an empty file)."""
    head = _read_head(path)
    if not head:
        return None
    return _decode_line(path, head)


def _avg_line(head: bytes) -> float:
    lines = head.count(b"\n")
    return len(head) / lines if lines else max(len(head), 64)


def sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def looks_tabular(line: str) -> bool:
    """A first line that reads as a header of a delimited table."""
    return bool(line) and line.isprintable() and any(d in line for d in (",", ";", "\t", "|"))


def split_header(path, line: str, delimiter: str) -> list[str]:
    try:
        return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
    except (csv.Error, StopIteration) as exc:
        raise IngestError(path, "line 1", f"cannot read the header: {exc}") from None


_ROW = re.compile(r"Row #(\d+): ?")
_COLUMN = re.compile(r"In CSV column #(\d+): ?")


def _arrow_csv_error(path, exc, names, fallback_line: int) -> IngestError:
    """An IngestError from a pyarrow CSV error, naming the line pyarrow names."""
    text = str(exc).split("\n")[0]
    m = _ROW.search(text)
    where = f"line {m.group(1)}" if m else f"line {fallback_line} or later"
    c = _COLUMN.search(text)
    col = ""
    if c and int(c.group(1)) < len(names):
        col = f"column {names[int(c.group(1))]!r}: "
    text = _COLUMN.sub("", _ROW.sub("", text))
    for arrow, ours in (("double", "a number"), ("int64", "an integer"), ("bool", "true/false")):
        text = text.replace(f"CSV conversion error to {arrow}: invalid value", f"not {ours}:")
    text = text.replace("CSV parse error: ", "")
    return IngestError(path, where, col + text.strip())


def stream_csv(path, names, types, header: bool, delimiter: str, chunk_rows: int, display=None):
    """Stream a CSV as pyarrow batches of at most ``chunk_rows`` rows.

    Yields ``(line_of_first_row, batch, done_bytes, total_bytes)``. ``names`` name every column
    of the file (the header, if any, is skipped); ``types`` maps the columns to read to their
    pyarrow types. Empty lines stay rows (all null), so row i of the file is line
    ``i + 1 + header``; the reader runs single-threaded because only then does pyarrow say which
    row a parse error is on. ``display`` are the column names errors show (default ``names``).
    """
    head = _read_head(path)
    block = int(min(max(_avg_line(head) * chunk_rows * 1.1, 1 << 16), 1 << 28))
    read_opts = pacsv.ReadOptions(column_names=list(names), skip_rows=1 if header else 0,
                                  block_size=block, use_threads=False)
    parse_opts = pacsv.ParseOptions(delimiter=delimiter, ignore_empty_lines=False)
    convert_opts = pacsv.ConvertOptions(column_types=types, include_columns=list(types),
                                        strings_can_be_null=True, quoted_strings_can_be_null=True)
    line = 2 if header else 1
    held = None  # one piece held back, so that the last one can report the whole file done
    with open_source(path) as src:
        try:
            reader = pacsv.open_csv(src.stream, read_options=read_opts, parse_options=parse_opts,
                                    convert_options=convert_opts)
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_rows):
                    piece = batch.slice(start, chunk_rows)
                    if held is not None:
                        yield held[0], held[1], min(src.done(), src.total), src.total
                    held = (line, piece)
                    line += piece.num_rows
        except IngestError:
            raise
        except pa.ArrowInvalid as exc:
            raise _arrow_csv_error(path, exc, display or names, line) from None
        except Exception as exc:  # noqa: BLE001 -- see _ZIP_ERRORS
            if not (src.packed or isinstance(exc, (pa.ArrowException, OSError))):
                raise
            raise IngestError(path, f"line {line} or later", f"{src.failed()}: {exc}") from None
        if held is not None:
            yield held[0], held[1], src.total, src.total


# --------------------------------------------------------------------------------------------
# Column conversion shared by CSV and Parquet


_INT_RE = r"^\s*[+-]?\d+\s*$"
_NUM_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_SIDES = {"1": 1, "+1": 1, "1.0": 1, "b": 1, "buy": 1, "ask": 1,
          "-1": -1, "-1.0": -1, "s": -1, "sell": -1, "bid": -1,
          "0": 0, "0.0": 0, "+0": 0, "-0": 0, "unknown": 0}
_SIDE_KEYS = pa.array(list(_SIDES))
_SIDE_VALUES = np.array(list(_SIDES.values()), dtype="int8")
# "buyer is maker" text -> the aggressor side: true means the seller hit the bid
_MAKER = {"true": -1, "t": -1, "yes": -1, "y": -1, "1": -1, "1.0": -1,
          "false": 1, "f": 1, "no": 1, "n": 1, "0": 1, "0.0": 1}
_MAKER_KEYS = pa.array(list(_MAKER))
_MAKER_VALUES = np.array(list(_MAKER.values()), dtype="int8")
_SIDE_ADVICE = "use 1/-1/0, B/S, buy/sell or bid/ask"
_MAKER_ADVICE = ("a 'buyer is maker' flag? map it as buyer_maker "
                 "(--map buyer_maker=COLUMN): true means the seller aggressed")
_TS_MIN, _TS_MAX = pd.Timestamp(TS_MIN_NS, tz="UTC"), pd.Timestamp(TS_MAX_NS, tz="UTC")
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _unit_by_magnitude(value: float) -> str:
    v = abs(value)
    return "s" if v < 1e11 else "ms" if v < 1e14 else "us" if v < 1e17 else "ns"


class Converter:
    """Turns one batch's columns into trade arrays; ``where(i)`` names row i of the batch."""

    def __init__(self, path, columns: dict[str, str]):
        self.path = path
        self.columns = columns  # role -> the file's column name
        self.time_kind = None  # "epoch-int" | "epoch-float" | "iso" | "timestamp", per file
        self.unit = None  # epoch unit, per file

    def fail(self, where, i, role, message):
        raise IngestError(self.path, where(i), f"column {self.columns[role]!r}: {message}")

    def nulls(self, arr, where, role, what="missing value"):
        i = first_true(np.asarray(arr.is_null()))
        if i is not None:
            self.fail(where, i, role, what)

    def number(self, arr, where, role) -> np.ndarray:
        """A finite, non-negative float column (price, size)."""
        if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)
                or pa.types.is_decimal(arr.type)):
            self.fail(where, 0, role, f"must be numeric, is {arr.type}")
        self.nulls(arr, where, role)
        values = np.asarray(pc.cast(arr, pa.float64()), dtype="float64")
        i = first_true(~np.isfinite(values))
        if i is not None:
            self.fail(where, i, role, f"{values[i]} is not a finite number")
        i = first_true(values < 0)
        if i is not None:
            self.fail(where, i, role, f"{values[i]} is negative")
        return values

    def trade_ids(self, arr, where) -> np.ndarray:
        if not pa.types.is_integer(arr.type):
            self.fail(where, 0, "trade_id", f"must be integers, is {arr.type}")
        self.nulls(arr, where, "trade_id")
        try:
            ids = np.asarray(pc.cast(arr, pa.int64()), dtype="int64")
        except pa.ArrowInvalid:
            big = first_true(np.asarray(pc.greater(arr, 2**63 - 1)))
            self.fail(where, big or 0, "trade_id", "too large for a 64-bit id")
        i = first_true(ids < 0)
        if i is not None:  # negative ids are the ones made for trades without ids (OrdinalIds)
            self.fail(where, i, "trade_id", f"{ids[i]} is negative: trade ids must be >= 0")
        return ids

    def sides(self, arr, where) -> np.ndarray:
        t = arr.type
        if pa.types.is_boolean(t):
            self.fail(where, 0, "side", f"true/false is not a side: {_SIDE_ADVICE} (is it "
                      f"{_MAKER_ADVICE})")
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            values = np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), 0.0), dtype="float64")
            i = first_true(~np.isin(values, (-1.0, 0.0, 1.0)))
            if i is not None:
                self.fail(where, i, "side", f"{values[i]:g} is not a side (1, -1 or 0)")
            return values.astype("int8")
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            self.fail(where, 0, "side", f"must be text or numbers, is {t}")
        norm = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        idx = pc.index_in(norm, value_set=_SIDE_KEYS)
        blank = np.asarray(pc.fill_null(pc.equal(norm, ""), True))  # null or "" -> unknown
        pos = np.asarray(pc.fill_null(idx, -1), dtype="int64")
        i = first_true((pos < 0) & ~blank)
        if i is not None:
            value = arr[i].as_py()
            hint = (f" (is it {_MAKER_ADVICE})"
                    if value.strip().lower() in ("true", "false") else "")
            self.fail(where, i, "side", f"{value!r} is not a side: {_SIDE_ADVICE}{hint}")
        return np.where(pos < 0, 0, _SIDE_VALUES[np.maximum(pos, 0)]).astype("int8")

    def buyer_maker(self, arr, where) -> np.ndarray:
        """The aggressor side from a "buyer is maker" flag: true -> -1, false -> +1, empty -> 0."""
        t = arr.type
        if pa.types.is_boolean(t):
            flags = np.asarray(pc.fill_null(pc.cast(arr, pa.int8()), -1), dtype="int8")
            return np.select([flags == 1, flags == 0], [-1, 1], 0).astype("int8")
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            values = np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), np.nan), dtype="float64")
            blank = np.isnan(values)
            i = first_true(~np.isin(values, (0.0, 1.0)) & ~blank)
            if i is not None:
                self.fail(where, i, "buyer_maker", f"{values[i]:g} is not a buyer-is-maker flag "
                          "(1 or 0)")
            return np.select([values == 1, values == 0], [-1, 1], 0).astype("int8")
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            self.fail(where, 0, "buyer_maker", f"must be true/false, 1/0 or text, is {t}")
        norm = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        pos = np.asarray(pc.fill_null(pc.index_in(norm, value_set=_MAKER_KEYS), -1),
                         dtype="int64")
        blank = np.asarray(pc.fill_null(pc.equal(norm, ""), True))
        i = first_true((pos < 0) & ~blank)
        if i is not None:
            self.fail(where, i, "buyer_maker", f"{arr[i].as_py()!r} is not a buyer-is-maker "
                      "flag: use true/false, t/f, yes/no, y/n or 1/0")
        return np.where(pos < 0, 0, _MAKER_VALUES[np.maximum(pos, 0)]).astype("int8")

    def times(self, arr, where) -> np.ndarray:
        """Epoch nanoseconds of a time column, checked to lie in 1990-2100."""
        self.nulls(arr, where, "ts")
        t = arr.type
        if pa.types.is_timestamp(t):  # epoch values in the column's unit (naive means UTC)
            ns = self._epoch(np.asarray(arr.cast(pa.int64()), dtype="int64"), where, t.unit)
        elif pa.types.is_integer(t):
            ns = self._epoch(np.asarray(pc.cast(arr, pa.int64()), dtype="int64"), where)
        elif pa.types.is_floating(t):
            ns = self._epoch(np.asarray(arr, dtype="float64"), where)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            ns = self._text_times(arr, where)
        else:
            self.fail(where, 0, "ts", f"cannot read {t} as times")
        i = first_true((ns < TS_MIN_NS) | (ns >= TS_MAX_NS))
        if i is not None:
            self.fail(where, i, "ts", f"time {fmt_ns(ns[i])} is out of range (1990-2100)")
        return ns

    def _text_times(self, arr, where) -> np.ndarray:
        if self.time_kind is None:
            numeric = pc.match_substring_regex(arr[:1], _NUM_RE)[0].as_py()
            self.time_kind = "epoch" if numeric else "iso"
        if self.time_kind == "iso":
            values = arr.to_numpy(zero_copy_only=False)
            parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
            idx = pd.DatetimeIndex(parsed)
            i = first_true(np.asarray(idx.isna()))
            if i is not None:
                self.fail(where, i, "ts", f"cannot read {values[i]!r} as a time (use ISO 8601 "
                          "such as 2024-01-02T09:30:00.123Z, or epoch numbers)")
            # check the range before going to nanoseconds: pandas may have parsed year 3024
            out = (idx < _TS_MIN) | (idx >= _TS_MAX)
            i = first_true(np.asarray(out))
            if i is not None:
                self.fail(where, i, "ts", f"time {values[i]!r} is out of range (1990-2100)")
            return idx.as_unit("ns").asi8
        ok = np.asarray(pc.match_substring_regex(arr, _NUM_RE))
        i = first_true(~ok)
        if i is not None:
            self.fail(where, i, "ts", f"cannot read {arr[i].as_py()!r} as an epoch number "
                      "(earlier rows were numbers)")
        if np.asarray(pc.match_substring_regex(arr, _INT_RE)).all():
            try:
                return self._epoch(np.asarray(pc.cast(pc.utf8_trim_whitespace(arr), pa.int64()),
                                              dtype="int64"), where)
            except pa.ArrowInvalid:
                pass  # beyond int64: read as floats, the range check rejects it
        return self._epoch(np.asarray(pc.cast(pc.utf8_trim_whitespace(arr), pa.float64()),
                                      dtype="float64"), where)

    def _epoch(self, values: np.ndarray, where, unit=None) -> np.ndarray:
        hint = "" if unit else "; the unit is told from the first row's magnitude"
        if unit is None:
            if self.unit is None and len(values):
                self.unit = _unit_by_magnitude(float(values[0]))
            unit = self.unit or "ns"
        mult = _UNIT_NS[unit]
        lo, hi = TS_MIN_NS // mult, TS_MAX_NS // mult
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values) | (values < lo) | (values >= hi)
        else:
            bad = (values < lo) | (values >= hi)
        i = first_true(bad)
        if i is not None:
            self.fail(where, i, "ts", f"epoch {values[i]} ({unit}) is out of range "
                      f"(1990-2100{hint})")
        if values.dtype.kind == "f":  # to whole microseconds: float seconds hold no more
            us = np.rint(values * (mult / 1000)) if mult >= 1000 else np.rint(values / 1000)
            return us.astype("int64") * 1000
        return values.astype("int64") * mult


def _listed(header: list[str], most: int = 20, width: int = 40) -> str:
    """The header's names for a message, quoted, long names and long headers cut short."""
    names = [repr(n) if len(n) <= width else repr(n[:width]) + "..." for n in header[:most]]
    return ", ".join(names) + (f", ... ({len(header)} columns)" if len(header) > most else "")


def _match_columns(path, header: list[str], mapping) -> dict[str, str]:
    """role -> file column name, from the mapping or the default names."""
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if k not in ROLES]
    if unknown:
        raise IngestError(path, "", "mapping names unknown column(s) "
                          f"{', '.join(map(repr, unknown))}; use {', '.join(ROLES)}")
    lower = {}
    for name in header:
        lower.setdefault(name.lower(), name)
    found = {}
    for role in ROLES:
        if role in mapping:
            want = mapping[role]
            name = want if want in header else lower.get(str(want).lower())
            if name is None:
                raise IngestError(path, "", f"column {want!r} (mapped to {role}) is not in the "
                                  f"file; it has {_listed(header)}")
            found[role] = name
            continue
        for cand in DEFAULT_NAMES[role]:
            if cand in lower:
                found[role] = lower[cand]
                break
    if "side" in found and "buyer_maker" in found:
        # a mapped column wins over one found by its name; two of the same kind are ambiguous
        if "side" in mapping and "buyer_maker" not in mapping:
            del found["buyer_maker"]
        elif "buyer_maker" in mapping and "side" not in mapping:
            del found["side"]
        else:
            raise IngestError(path, "", f"both {found['side']!r} (side) and "
                              f"{found['buyer_maker']!r} (buyer_maker) say who aggressed; map "
                              "one of them, e.g. --map side=" + found["side"])
    used = list(found.values())
    shared = [n for n in set(used) if used.count(n) > 1]
    if shared:
        raise IngestError(path, "", f"column {shared[0]!r} is mapped to more than one of "
                          f"{', '.join(r for r in found if found[r] == shared[0])}")
    twice = [n for n in set(used) if header.count(n) > 1]
    if twice:
        raise IngestError(path, "", f"column {twice[0]!r} appears more than once in the header")
    missing = [r for r in REQUIRED if r not in found]
    if missing:
        raise IngestError(path, "", f"no {', '.join(missing)} column among "
                          f"{_listed(header)}; name them (ts/time/timestamp, price, "
                          "size/qty/quantity/volume) or pass a mapping such as "
                          "{'ts': 'Time', 'price': 'Last', 'size': 'Volume'}")
    return found


def _chunks(path, conv: Converter, ids: OrdinalIds, cols: dict[str, pa.Array], places, unit,
            symbol, default_symbol, done, total):
    """ImportChunks (one per symbol) from one batch of columns; ``places`` are the rows' own
    numbers in the file (``unit`` ``"line"`` or ``"row"``)."""
    n = len(cols["ts"])
    # lines that are wholly empty are skipped (a blank line at the end of a hand-made file)
    blank = np.ones(n, dtype=bool)
    for arr in cols.values():
        blank &= np.asarray(arr.is_null())
    if blank.any():
        keep = np.flatnonzero(~blank)
        cols = {k: v.take(pa.array(keep)) for k, v in cols.items()}
        places = places[keep]
    if len(cols["ts"]) == 0:
        return
    where = lambda i: f"{unit} {int(places[i])}"  # noqa: E731
    ts = conv.times(cols["ts"], where)
    price = conv.number(cols["price"], where, "price")
    size = conv.number(cols["size"], where, "size")
    if "side" in cols:
        side = conv.sides(cols["side"], where)
    elif "buyer_maker" in cols:
        side = conv.buyer_maker(cols["buyer_maker"], where)
    else:
        side = np.zeros(len(ts), "int8")
    tid = conv.trade_ids(cols["trade_id"], where) if "trade_id" in cols else None
    if symbol is not None or "symbol" not in cols:
        groups = [(symbol or default_symbol, None)]
    else:
        sym = cols["symbol"]
        if not (pa.types.is_string(sym.type) or pa.types.is_large_string(sym.type)):
            sym = pc.cast(sym, pa.string())
        conv.nulls(sym, where, "symbol")
        codes = sym.dictionary_encode()
        names = codes.dictionary.to_pylist()
        idx = np.asarray(codes.indices)
        groups = []
        for k, name in enumerate(names):
            rows = np.flatnonzero(idx == k)
            check_symbol(path, where(int(rows[0])), name)
            groups.append((name, rows))
    for name, rows in groups:
        g_ts, g_price, g_size, g_side = (take(ts, rows), take(price, rows), take(size, rows),
                                         take(side, rows))
        if tid is None:
            g_id, problem = ids.ids(name, g_ts, g_price, g_size, g_side)
            if problem is not None:
                i = problem[0] if rows is None else int(rows[problem[0]])
                raise IngestError(path, where(i), problem[1])
        else:
            g_id = take(tid, rows)
        yield trades_chunk(name, g_ts, g_price, g_size, g_side, g_id, done, total,
                           places=take(places, rows), unit=unit)


# --------------------------------------------------------------------------------------------
# CSV


def read_csv(path, symbol=None, chunk_rows=1_000_000, mapping=None):
    """Trades from a generic CSV with a header line (see the module docstring)."""
    line = first_line(path)
    if line is None:
        return
    delimiter = sniff_delimiter(line)
    header = split_header(path, line, delimiter)
    columns = _match_columns(path, header, mapping)
    names = [f"c{i}" for i in range(len(header))]  # our own names: headers may repeat
    position = {role: header.index(name) for role, name in columns.items()}
    types = {names[i]: {"price": pa.float64(), "size": pa.float64(),
                        "trade_id": pa.int64()}.get(role, pa.string())
             for role, i in position.items()}
    conv = Converter(path, columns)
    ids = OrdinalIds()
    default = _default_symbol(path)
    for first, batch, done, total in stream_csv(path, names, types, header=True,
                                                delimiter=delimiter, chunk_rows=chunk_rows,
                                                display=header):
        cols = {role: batch.column(names[i]) for role, i in position.items()}
        places = np.arange(first, first + batch.num_rows)
        yield from _chunks(path, conv, ids, cols, places, "line", symbol, default, done, total)


def _default_symbol(path) -> str:
    name = Path(path).name
    for suffix in (".gz", ".zip", ".csv", ".txt", ".tsv", ".parquet", ".pq"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


# --------------------------------------------------------------------------------------------
# Parquet


def read_parquet(path, symbol=None, chunk_rows=1_000_000, mapping=None):
    """Trades from a Parquet file, read a batch of row groups at a time."""
    try:
        pf = pq.ParquetFile(path)
        header = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(path, "", f"not a readable Parquet file: {exc}") from None
    columns = _match_columns(path, header, mapping)
    conv = Converter(path, columns)
    ids = OrdinalIds()
    default = _default_symbol(path)
    total = os.path.getsize(path)
    rows_total = max(pf.metadata.num_rows, 1)
    row = 0
    wanted = list(dict.fromkeys(columns.values()))
    try:
        batches = pf.iter_batches(batch_size=chunk_rows, columns=wanted)
        for batch in batches:
            cols = {role: batch.column(batch.schema.get_field_index(name))
                    for role, name in columns.items()}
            for role, arr in cols.items():
                if pa.types.is_dictionary(arr.type):
                    cols[role] = arr.dictionary_decode()
            places = np.arange(row, row + batch.num_rows)
            row += batch.num_rows
            done = min(total, int(total * row / rows_total))
            yield from _chunks(path, conv, ids, cols, places, "row", symbol, default, done, total)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(path, f"row {row} or later", f"cannot read: {exc}") from None
