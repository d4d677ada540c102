"""File imports into a store: all files of one import commit together or not at all."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from data_access import Store
from data_access.frames import RowError

from .ingest.errors import IngestError, printable
from .ingest.files import guess_format, read_file
from .ingest.validate import Validator
from .model import ModelError
from .venues.sierra import SierraReplay

# Sierra Chart .depth files are stored as book snapshots: one a second (the book after the
# second's last complete batch), the nearest DEPTH_LEVELS price levels a side
DEPTH_INTERVAL = "1s"
DEPTH_LEVELS = 50


@dataclass
class SymbolSummary:
    trades_read: int = 0
    trades_new: int = 0
    bars: int = 0
    depth_rows: int = 0
    first: object = None
    last: object = None


@dataclass
class ImportSummary:
    path: str
    format: str | None
    symbols: dict[str, SymbolSummary] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"{printable(self.path)}: {self.seconds:.1f} s"]
        for sym, s in sorted(self.symbols.items()):
            part = f"  {printable(sym)}: {s.trades_read:,} trades read, {s.trades_new:,} new"
            if s.bars:
                part += f", {s.bars:,} bars"
            if s.depth_rows:
                part += f", {s.depth_rows:,} book snapshot rows"
            if s.first is not None:
                part += f", {s.first} .. {s.last}"
            out.append(part)
        return out


def import_files(store: Store, paths, format=None, symbol=None, mapping=None,
                 progress: bool = True, chunk_rows: int = 1_000_000) -> list[ImportSummary]:
    """Import every file into ``store`` in one transaction; any error stores nothing.

    Every chunk of trades or bars passes :class:`tradeflow.ingest.validate.Validator` (tick grid,
    magnitudes, time order) before it is written. Raises IngestError (bad file content, naming
    the file's own line or record, also for a store's own checks) or ModelError (e.g. a symbol
    without a known tick size), their messages naming the file.
    """
    registry = store.instruments()
    summaries = []
    with store.transaction() as tx:
        for path in paths:
            summaries.append(_import_one(tx, registry, str(path), format, symbol, mapping, progress,
                                         chunk_rows))
    return summaries


def _import_one(tx, registry, path, format, symbol, mapping, progress,
                chunk_rows) -> ImportSummary:
    summary = ImportSummary(path, format or guess_format(path))
    started = time.perf_counter()
    total = os.path.getsize(path) if os.path.exists(path) else 0
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=printable(os.path.basename(path)),
               disable=not progress or total < 8 << 20, leave=False)
    replays: dict[str, SierraReplay] = {}  # per symbol: the book of a .depth file
    validator = Validator(lambda sym: registry.get(sym).tick_size)  # one per file: time order
    last_minute: dict[str, tuple] = {}  # per symbol: bars held back, see _whole_minutes
    try:
        for chunk in read_file(path, format=summary.format, symbol=symbol, mapping=mapping,
                               chunk_rows=chunk_rows):
            if chunk.symbol not in registry:
                raise ModelError(
                    f"{path}: symbol {chunk.symbol!r} has no known tick size: add it with "
                    f"'tradeflow instruments add {chunk.symbol} --tick-size X' (or pass --symbol)")
            s = summary.symbols.setdefault(chunk.symbol, SymbolSummary())
            frame = chunk.frame
            if len(frame):
                s.first = s.first if s.first is not None else frame["ts"].iloc[0]
                s.last = frame["ts"].iloc[-1]
            where = chunk.where  # names row i of what is written
            try:
                if chunk.kind == "trades":
                    frame = validator.trades(chunk.symbol, frame, chunk.places, chunk.price_bits)
                    s.trades_read += len(frame)
                    s.trades_new += tx.write_trades(chunk.symbol, frame)
                elif chunk.kind == "depth_commands":
                    replay = replays.get(chunk.symbol)
                    if replay is None:
                        replay = replays[chunk.symbol] = SierraReplay(
                            registry.get(chunk.symbol).tick_size, DEPTH_INTERVAL, DEPTH_LEVELS)
                    try:
                        snaps = replay.feed(frame)
                    except ValueError as exc:  # e.g. a price beyond any tick index
                        raise IngestError(path, "", f"book replay: {exc}") from exc
                    s.depth_rows += tx.write_depth(chunk.symbol, snaps)
                else:
                    frame = validator.bars(chunk.symbol, frame, chunk.places, chunk.price_bits,
                                           chunk.seconds)
                    if chunk.seconds is None:  # rolled up as 1-minute bars: see _whole_minutes
                        frame, where = _whole_minutes(last_minute, chunk, frame)
                    s.bars += tx.write_bars(chunk.symbol, frame, chunk.seconds)
            except RowError as exc:  # ours or a store's: name the file's own line or record
                raise IngestError(path, where(exc.row), exc.reason) from None
            except ModelError as exc:  # a store's validation: say which file it came from
                raise ModelError(f"{path}: {exc}") from exc
            bar.update(chunk.done_bytes - bar.n)
        for sym, (rest, unit, numbers) in last_minute.items():
            try:
                summary.symbols[sym].bars += tx.write_bars(sym, rest)
            except RowError as exc:
                raise IngestError(path, f"{unit} {numbers[exc.row]}", exc.reason) from None
            except ModelError as exc:
                raise ModelError(f"{path}: {exc}") from exc
        for sym, replay in replays.items():  # the last second of each book
            try:
                summary.symbols[sym].depth_rows += tx.write_depth(sym, replay.finish())
            except ModelError as exc:
                raise ModelError(f"{path}: {exc}") from exc
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _whole_minutes(held: dict[str, tuple], chunk, bars: pd.DataFrame):
    """The bars of ``bars`` (after those ``held`` back for the chunk's symbol) to write now, and
    the names of their places in the file: all but the last minute's, which wait for the next
    chunk. Bars of unknown timeframe (``.scid`` bars at times that are not whole seconds) are
    stored as 1-minute bars that replace the minute, so a minute split across two chunks must
    reach the store together (bars are in time order: the validator sees to it). Bars of a
    known timeframe need not wait: the store rolls a minute up from all its stored bars."""
    numbers = chunk.places if chunk.places is not None else np.arange(len(bars))
    if chunk.symbol in held:
        old, _, old_numbers = held.pop(chunk.symbol)
        bars = pd.concat([old, bars], ignore_index=True)
        numbers = np.concatenate([old_numbers, numbers])
    if not bars.empty:
        minute = pd.DatetimeIndex(bars["ts"]).floor("min")
        last = np.asarray(minute == minute.max())
        held[chunk.symbol] = (bars[last], chunk.unit, numbers[last])
        bars, numbers = bars[~last], numbers[~last]
    return bars, lambda i: f"{chunk.unit} {numbers[i]}"


__all__ = ["import_files", "ImportSummary", "IngestError"]
