"""Sierra Chart market-depth data files (.depth).

A 64-byte header ``s_MarketDepthFileHeader`` (uint32 FileTypeUniqueHeaderID ``SCDD``, HeaderSize
64, RecordSize 24, Version, 48 reserved bytes) then 24-byte records ``s_MarketDepthFileRecord``:
SCDateTimeMS (int64 microseconds since 1899-12-30 UTC), uint8 Command, uint8 Flags, uint16
NumOrders, float32 Price, uint32 Quantity, uint32 Reserved; little-endian.

Each record is one command on one price level of the book (:data:`COMMANDS`); Flags bit
``FLAG_END_OF_BATCH`` marks the last record of a batch, and the book is consistent only there
(mid-batch it may be half updated, even crossed). Sierra writes one file per symbol and UTC day
(``ESZ25-CME.2025-12-01.depth``) and starts batches with CLEAR_BOOK for full snapshots.

:func:`read_depth` yields the commands as frames (:data:`COMMAND_COLUMNS`); replaying them into a
book is :func:`tradeflow.venues.sierra.replay_sierra`. Records are numbered from 0 (record 0
starts at byte 64). An older layout that Sierra once documented (a double DateTime in days, no
Flags/NumOrders) is not read: its times come out of range and the file is rejected.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd

from tradeflow.ingest.chunks import ImportChunk, check_symbol, first_true
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.scid import EPOCH_OFFSET_US, check_sc_times, sc_records
from tradeflow.model import ns_to_utc

MAGIC = b"SCDD"  # UNIQUE_HEADER_ID 0x44444353 as little-endian bytes
HEADER = struct.Struct("<4sIII48s")
HEADER_SIZE = 64
RECORD_SIZE = 24
VERSION = 1
RECORD = np.dtype([
    ("dt", "<i8"), ("command", "u1"), ("flags", "u1"), ("num_orders", "<u2"),
    ("price", "<f4"), ("quantity", "<u4"), ("reserved", "<u4"),
])
assert RECORD.itemsize == RECORD_SIZE

# s_MarketDepthFileRecord::CommandEnum
NO_COMMAND = 0
CLEAR_BOOK = 1
ADD_BID_LEVEL = 2
ADD_ASK_LEVEL = 3
MODIFY_BID_LEVEL = 4
MODIFY_ASK_LEVEL = 5
DELETE_BID_LEVEL = 6
DELETE_ASK_LEVEL = 7
COMMANDS = {
    NO_COMMAND: "NO_COMMAND", CLEAR_BOOK: "CLEAR_BOOK", ADD_BID_LEVEL: "ADD_BID_LEVEL",
    ADD_ASK_LEVEL: "ADD_ASK_LEVEL", MODIFY_BID_LEVEL: "MODIFY_BID_LEVEL",
    MODIFY_ASK_LEVEL: "MODIFY_ASK_LEVEL", DELETE_BID_LEVEL: "DELETE_BID_LEVEL",
    DELETE_ASK_LEVEL: "DELETE_ASK_LEVEL",
}
FLAG_END_OF_BATCH = 0x01

COMMAND_COLUMNS = ("ts", "command", "flags", "num_orders", "price", "quantity", "end_of_batch")

_DATED = re.compile(r"\.\d{4}-\d{2}-\d{2}$")


def default_symbol(path) -> str:
    """``ESZ25-CME.2025-12-01.depth`` -> ``ESZ25-CME`` (the date Sierra puts in the name goes)."""
    name = Path(path).name
    stem = name[:-6] if name.lower().endswith(".depth") else Path(name).stem
    return _DATED.sub("", stem)


def _check_header(path, head: bytes):
    if len(head) < HEADER_SIZE:
        raise IngestError(path, "header", f"truncated header ({len(head)} of {HEADER_SIZE} bytes)")
    magic, header_size, record_size, _version, _ = HEADER.unpack(head)
    if magic != MAGIC:
        raise IngestError(path, "header", f"not a Sierra Chart market depth file (magic "
                          f"{magic!r}, expected {MAGIC!r})")
    if header_size != HEADER_SIZE:
        raise IngestError(path, "header", f"header size {header_size}, expected {HEADER_SIZE}")
    if record_size != RECORD_SIZE:
        raise IngestError(path, "header", f"record size {record_size}, expected {RECORD_SIZE}")


def read_depth(path, symbol=None, chunk_rows=1_000_000):
    """The commands of a .depth file as ``"depth_commands"`` chunks of ``chunk_rows`` records
    (frame layout :data:`COMMAND_COLUMNS`)."""
    symbol = check_symbol(path, "", symbol if symbol is not None else default_symbol(path))
    for rec, done, total in _records(path, chunk_rows):
        yield ImportChunk("depth_commands", symbol, commands_frame(rec), done, total)


def read_depth_frame(path) -> pd.DataFrame:
    """All commands of a .depth file in one frame (small files, tests, notebooks)."""
    parts = [commands_frame(rec) for rec, _, _ in _records(path, 1_000_000)]
    return pd.concat(parts, ignore_index=True) if parts else commands_frame(np.zeros(0, RECORD))


def _records(path, chunk_rows):
    """Checked record arrays of ``chunk_rows`` records, with bytes done and the file size."""
    last_dt = None
    for rec, start, done, total in sc_records(path, HEADER_SIZE, RECORD, _check_header,
                                              chunk_rows):
        last_dt = _check_records(path, rec, start, last_dt)
        yield rec, done, total


def commands_frame(rec: np.ndarray) -> pd.DataFrame:
    """Records (:data:`RECORD` array) as a frame in the :data:`COMMAND_COLUMNS` layout."""
    flags = rec["flags"].astype("uint8")
    return pd.DataFrame({
        "ts": ns_to_utc((rec["dt"] - EPOCH_OFFSET_US) * 1000),
        "command": rec["command"].astype("int8"),
        "flags": flags,
        "num_orders": rec["num_orders"].astype("int32"),
        "price": rec["price"].astype("float64"),
        "quantity": rec["quantity"].astype("float64"),
        "end_of_batch": (flags & FLAG_END_OF_BATCH).astype(bool),
    }, columns=list(COMMAND_COLUMNS))


def _check_records(path, rec, start, last_dt):
    """Known commands, finite level prices, times in 1990-2100 never going back (also across
    chunks); returns the last time."""
    cmd = rec["command"]
    i = first_true(cmd > DELETE_ASK_LEVEL)
    if i is not None:
        raise IngestError(path, f"record {start + i}", f"unknown command code {int(cmd[i])} "
                          f"(expected 0-{DELETE_ASK_LEVEL})")
    # the price only means something on level commands; CLEAR_BOOK and NO_COMMAND carry 0
    i = first_true((cmd >= ADD_BID_LEVEL) & ~np.isfinite(rec["price"]))
    if i is not None:
        raise IngestError(path, f"record {start + i}", f"{COMMANDS[int(cmd[i])]} price "
                          f"{float(rec['price'][i])} is not a finite number")
    return check_sc_times(path, rec["dt"], start, last_dt)


# --------------------------------------------------------------------------------------------
# Writing (tests, fixtures, exports)

def write_depth_file(path, frame: pd.DataFrame) -> int:
    """Write commands (``ts, command, price, quantity`` and optionally ``flags``,
    ``end_of_batch``, ``num_orders``) as a .depth file; returns the records written.

    ``end_of_batch`` True sets ``FLAG_END_OF_BATCH`` in ``flags``. Times are truncated to
    microseconds, prices stored as float32, quantities as uint32.
    """
    missing = [c for c in ("ts", "command", "price", "quantity") if c not in frame.columns]
    if missing:
        raise ValueError(f"write_depth_file: missing column(s) {', '.join(missing)}")
    n = len(frame)
    ts = pd.DatetimeIndex(frame["ts"])
    ts = (ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")).as_unit("ns")
    command = frame["command"].to_numpy(dtype="int64")
    if ((command < 0) | (command > DELETE_ASK_LEVEL)).any():
        raise ValueError("write_depth_file: command codes must be 0-7")
    quantity = frame["quantity"].to_numpy(dtype="float64")
    if not np.isfinite(quantity).all() or (quantity < 0).any() or (quantity >= 2**32).any():
        raise ValueError("write_depth_file: quantities must be whole numbers in 0 .. 2**32-1")
    flags = (frame["flags"].to_numpy(dtype="int64") if "flags" in frame.columns
             else np.zeros(n, "int64"))
    if "end_of_batch" in frame.columns:
        flags = np.where(frame["end_of_batch"].to_numpy(dtype=bool),
                         flags | FLAG_END_OF_BATCH, flags & ~FLAG_END_OF_BATCH)
    rec = np.zeros(n, RECORD)
    rec["dt"] = ts.asi8 // 1000 + EPOCH_OFFSET_US
    rec["command"] = command
    rec["flags"] = flags
    if "num_orders" in frame.columns:
        rec["num_orders"] = frame["num_orders"].to_numpy(dtype="int64")
    rec["price"] = frame["price"].to_numpy(dtype="float64")
    rec["quantity"] = np.rint(quantity)
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, HEADER_SIZE, RECORD_SIZE, VERSION, b"\0" * 48))
        rec.tofile(f)
    return n
