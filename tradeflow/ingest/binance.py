"""Binance public-data trade files (the CSVs of data.binance.vision, plain or in their .zip).

Two layouts, told apart by the header (futures files have one) or, without a header (spot
files), by the column count and where the true/false columns are:

* aggTrades: ``agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
  is_buyer_maker[, is_best_match]``
* trades: ``id, price, qty, quote_qty (base_qty on COIN-M), time, is_buyer_maker[,
  is_best_match]``

Times are milliseconds, or microseconds in spot files since 2025: told once per file by
magnitude. ``is_buyer_maker`` true means the seller hit the bid (side -1). The trade id is the
(aggregate) trade id; rows are not required to be in time order (some futures files are not).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tradeflow.ingest.chunks import check_symbol, trades_chunk
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.tabular import Converter, first_line, open_source, stream_csv

# data.binance.vision names: SYMBOL-(aggTrades|trades)-YYYY-MM[-DD].zip, the CSV inside the same
# without .zip; spot and USD-M symbols are letters and digits (BTCUSDT, 1000PEPEUSDT), USD-M
# deliveries and COIN-M add an underscore part (BTCUSDT_240329, BTCUSD_PERP, ETHUSD_240628)
_SYMBOL = re.compile(r"^([A-Za-z0-9]+(?:_[A-Za-z0-9]+)?)-(aggTrades|trades)-", re.IGNORECASE)
_INT = re.compile(r"^\d+$")
_FLOAT = re.compile(r"^\d+(\.\d*)?([eE][+-]?\d+)?$")
_BOOL = {"true", "false"}


@dataclass(frozen=True)
class Layout:
    kind: str  # "aggTrades" or "trades"
    names: tuple[str, ...]  # every column of the file
    header: bool
    id: str
    price: str
    size: str
    ts: str
    maker: str


def _is_int(s):
    return bool(_INT.match(s.strip()))


def _is_float(s):
    return bool(_FLOAT.match(s.strip()))


def _is_bool(s):
    return s.strip().lower() in _BOOL


def _from_header(fields: list[str]) -> Layout | None:
    names = [f.strip().lower() for f in fields]
    if len(set(names)) != len(names):
        return None
    pick = lambda *cands: next((c for c in cands if c in names), None)  # noqa: E731
    roles = (pick("agg_trade_id", "id"), pick("price"), pick("quantity", "qty"),
             pick("transact_time", "time"), pick("is_buyer_maker"))
    if None in roles:
        return None
    kind = "aggTrades" if roles[0] == "agg_trade_id" else "trades"
    return Layout(kind, tuple(names), True, *roles)


def sniff(line: str) -> Layout | None:
    """The Binance layout a file's first line shows, or None when it is not one."""
    fields = line.strip().split(",")
    if not fields or not fields[0].strip():
        return None
    if not _is_int(fields[0]):
        return _from_header(fields)
    n = len(fields)
    ok = lambda kinds: all(k(f) for k, f in zip(kinds, fields, strict=False))  # noqa: E731
    i, f, b = _is_int, _is_float, _is_bool
    if n == 8 and ok((i, f, f, i, i, i, b, b)):
        return Layout("aggTrades", ("agg_trade_id", "price", "quantity", "first_trade_id",
                                    "last_trade_id", "transact_time", "is_buyer_maker",
                                    "is_best_match"), False,
                      "agg_trade_id", "price", "quantity", "transact_time", "is_buyer_maker")
    trades = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
    if n == 7 and ok((i, f, f, f, i, b, b)):
        return Layout("trades", trades, False, "id", "price", "qty", "time", "is_buyer_maker")
    if n == 7 and ok((i, f, f, i, i, i, b)):
        return Layout("aggTrades", ("agg_trade_id", "price", "quantity", "first_trade_id",
                                    "last_trade_id", "transact_time", "is_buyer_maker"), False,
                      "agg_trade_id", "price", "quantity", "transact_time", "is_buyer_maker")
    if n == 6 and ok((i, f, f, f, i, b)):
        return Layout("trades", trades[:6], False, "id", "price", "qty", "time", "is_buyer_maker")
    return None


def symbol_from_name(name: str) -> str | None:
    """``BTCUSDT-aggTrades-2024-01-01.csv`` -> ``BTCUSDT``, ``BTCUSD_PERP-trades-2024-01.zip`` ->
    ``BTCUSD_PERP``."""
    m = _SYMBOL.match(Path(name).name)
    return m.group(1).upper() if m else None


def read_binance(path, symbol=None, chunk_rows=1_000_000):
    """Trades from a Binance trades/aggTrades CSV (or a .zip holding one)."""
    line = first_line(path)
    if line is None:
        raise IngestError(path, "", "empty file")
    layout = sniff(line)
    if layout is None:
        raise IngestError(path, "line 1", f"not a Binance trades/aggTrades line: {line[:80]!r}")
    if symbol is None:
        with open_source(path) as src:
            symbol = symbol_from_name(src.inner_name) or symbol_from_name(path)
        if symbol is None:
            raise IngestError(path, "", "cannot tell the symbol from the file name (expected "
                              "e.g. BTCUSDT-aggTrades-2024-01-01.csv); pass a symbol")
    check_symbol(path, "", symbol)
    types = {layout.id: pa.int64(), layout.price: pa.float64(), layout.size: pa.float64(),
             layout.ts: pa.int64(), layout.maker: pa.bool_()}
    conv = Converter(path, {"ts": layout.ts, "price": layout.price, "size": layout.size,
                            "trade_id": layout.id, "buyer_maker": layout.maker})
    for first, batch, done, total in stream_csv(path, layout.names, types, header=layout.header,
                                                delimiter=",", chunk_rows=chunk_rows):
        cols = {role: batch.column(name) for role, name in
                (("ts", layout.ts), ("price", layout.price), ("size", layout.size),
                 ("trade_id", layout.id), ("buyer_maker", layout.maker))}
        rows = np.arange(batch.num_rows)
        blank = np.ones(batch.num_rows, dtype=bool)  # empty lines (e.g. at the end) are skipped
        for arr in cols.values():
            blank &= np.asarray(arr.is_null())
        if blank.any():
            rows = np.flatnonzero(~blank)
            cols = {k: v.take(pa.array(rows)) for k, v in cols.items()}
        if len(rows) == 0:
            continue
        where = lambda i, first=first, rows=rows: f"line {first + int(rows[i])}"  # noqa: E731
        ts = conv.times(cols["ts"], where)
        price = conv.number(cols["price"], where, "price")
        size = conv.number(cols["size"], where, "size")
        tid = conv.trade_ids(cols["trade_id"], where)
        conv.nulls(cols["buyer_maker"], where, "buyer_maker")  # Binance always says
        side = conv.buyer_maker(cols["buyer_maker"], where)
        yield trades_chunk(symbol, ts, price, size, side, tid, done, total,
                           places=first + rows, unit="line")
