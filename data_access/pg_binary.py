"""PostgreSQL's binary ``COPY`` format, encoded and decoded with numpy record dtypes (never row by
row): ``encode_rows`` / ``copy_in`` write columns of a frame into a table, ``decode_rows`` /
``copy_out`` read a query's fixed-width, NOT NULL columns back into a frame. ``kind_of`` gives the
wire type of a model column."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .store import StoreError

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = _SIGNATURE + bytes(8)  # flags 0, no header extension
_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's epoch, in Unix microseconds
_KINDS = {"ts": "ts", "side": "i2", "tick": "i8", "trades": "i8", "trade_id": "i8", "seq": "i8",
          "symbol": "text"}
_WIRE = {"ts": ">i8", "f8": ">f8", "i8": ">i8", "i2": ">i2"}
_NATIVE = {"ts": "int64", "f8": "float64", "i8": "int64", "i2": "int16"}
_CHUNK_ROWS = 1 << 16


def kind_of(column: str) -> str:
    """Wire type of a model column (everything not named here is a float)."""
    return _KINDS.get(column, "f8")


def _row_dtype(kinds, text_len: int = 0) -> np.dtype:
    """One row: the field count, then each field's length and value."""
    fields = [("n", ">i2")]
    for i, k in enumerate(kinds):
        fields += [(f"l{i}", ">i4"), (f"v{i}", f"S{text_len}" if k == "text" else _WIRE[k])]
    return np.dtype(fields)


def _ts_us(values) -> np.ndarray:
    """Times as microseconds since PostgreSQL's epoch (floored, as the stores keep them)."""
    return pd.DatetimeIndex(values).as_unit("ns").asi8 // 1000 - _PG_EPOCH_US


def encode_rows(columns: dict[str, object], n: int):
    """Binary COPY data for ``n`` rows, in chunks; a ``symbol`` column is one string for all."""
    kinds = [kind_of(c) for c in columns]
    text = str(columns.get("symbol", "")).encode()
    dtype = _row_dtype(kinds, len(text))
    values = [text if k == "text" else (_ts_us(v) if k == "ts" else np.asarray(v))
              for k, v in zip(kinds, columns.values())]
    yield _HEADER
    for a in range(0, n, _CHUNK_ROWS):
        b = min(n, a + _CHUNK_ROWS)
        rows = np.empty(b - a, dtype)
        rows["n"] = len(kinds)
        for i, (k, v) in enumerate(zip(kinds, values)):
            rows[f"l{i}"] = dtype[f"v{i}"].itemsize
            rows[f"v{i}"] = v if k == "text" else v[a:b]
        yield rows.tobytes()
    yield _TRAILER


async def copy_in(con, table: str, columns: dict[str, object], n: int) -> None:
    """COPY ``n`` rows (column name -> array, or the symbol string) into ``table``."""
    async def chunks():  # asyncpg takes an async iterable, not a plain one
        for chunk in encode_rows(columns, n):
            yield chunk
    await con.copy_to_table(table, source=chunks(), columns=list(columns), format="binary")


def decode_rows(data: bytes, columns) -> pd.DataFrame:
    """A frame of binary COPY output whose columns are all fixed-width and NOT NULL."""
    if not data.startswith(_SIGNATURE):
        raise StoreError("PostgreSQL sent COPY data in an unexpected format")
    start = len(_HEADER) + int.from_bytes(data[15:19], "big")  # past the header extension
    kinds = [kind_of(c) for c in columns]
    dtype = _row_dtype(kinds)
    n, extra = divmod(len(data) - start - len(_TRAILER), dtype.itemsize)
    rows = np.frombuffer(data, dtype, count=n, offset=start)
    if extra or (rows["n"] != len(kinds)).any() or any(
            (rows[f"l{i}"] != dtype[f"v{i}"].itemsize).any() for i in range(len(kinds))):
        raise StoreError("PostgreSQL sent a NULL or a column of unexpected width in a read")
    out = {}
    for i, (c, k) in enumerate(zip(columns, kinds)):
        v = rows[f"v{i}"].astype(_NATIVE[k])
        if k == "ts":
            v = pd.DatetimeIndex((v + _PG_EPOCH_US).view("datetime64[us]"), tz="UTC")
        out[c] = v
    return pd.DataFrame(out)


async def copy_out(con, sql: str, columns) -> pd.DataFrame:
    """Run ``sql`` through binary COPY and decode it (much faster than records for big reads)."""
    parts: list[bytes] = []

    async def sink(chunk):
        parts.append(chunk)
    await con.copy_from_query(sql, output=sink, format="binary")
    return decode_rows(b"".join(parts), columns)
