"""What the file parsers share: the chunk type they yield, trade chunks built from column arrays,
and the time and symbol checks (one place, so every format words its errors alike).

Trade ids for files without them are in :mod:`tradeflow.ingest.trade_ids`; guessing a file's
format and handing it to its parser is :mod:`tradeflow.ingest.files`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradeflow import model
from tradeflow.ingest.errors import IngestError


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
        return model.ns_to_utc(int(ns)).isoformat()
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


def trades_chunk(symbol, ts_ns, price, size, side, trade_id, done, total, places=None,
                 unit="row", price_bits=64) -> ImportChunk:
    """Trades from column arrays, as :func:`model.normalize_trades` lays them out (columns,
    dtypes, stable time order); built directly because it is the hot path (tests check that
    ``normalize_trades`` leaves the result unchanged). ``places`` (the rows' line or record
    numbers, in ``unit``) are reordered with the rows."""
    ts_ns = np.asarray(ts_ns, dtype="int64")
    frame = pd.DataFrame({
        "ts": model.ns_to_utc(ts_ns),
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
