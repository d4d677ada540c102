"""Request bodies of the ingest API turned into model frames, or one line saying what was wrong.

The shape is checked here (JSON, fields, types, times); the values (prices on the tick grid,
positive sizes, high/low around open/close, time order) by the pipeline's validator, the one
check every source passes (``tradeflow.ingest.validate``). Items are numbered from 0 as they
appear in the request: ``bar 3``, ``trade 12``.

Times are ISO 8601 text. A time without a zone is in the API key's zone (``UTC`` unless the key
says otherwise: Sierra Chart posts its chart's time without a zone). A time more than
:data:`MAX_AHEAD` past the server's clock is refused: that is a wrong zone far more often than
a clock that is off.
"""
from __future__ import annotations

import json
from numbers import Integral, Real

import numpy as np
import orjson
import pandas as pd

from tradeflow.model import ModelError, validate_symbol

MAX_AHEAD = pd.Timedelta(minutes=10)
EARLIEST = pd.Timestamp("1970-01-01", tz="UTC")  # no market data is older
MAX_ITEMS = 1_000_000  # items of one request or websocket batch
SIDES = {"buy": 1, "sell": -1, 1: 1, -1: -1, 0: 0}  # a trade's aggressor
BOOK_SIDES = {"ask": 1, "bid": -1, 1: 1, -1: -1}  # a resting level (model depth layout)
ORDER_SIDES = {"buy": 1, "sell": -1, 1: 1, -1: -1}  # a forced order
MAX_BAR_SECONDS = 86_400


class BadPayload(ValueError):
    """A request the API refuses; ``status`` is the HTTP answer (400 shape, 422 values)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_json(body: bytes | str):
    """The JSON document of ``body``; malformed JSON names the line and column. Parsed by orjson
    (several times faster than the standard library on large batches; strict: no NaN)."""
    try:
        return orjson.loads(body)
    except UnicodeDecodeError:
        raise BadPayload("the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadPayload(f"malformed JSON at line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg}") from None


def parse_ndjson(body: bytes) -> list:
    """One JSON value per non-empty line (newline-delimited JSON)."""
    items = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            try:
                items.append(orjson.loads(line))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                msg = getattr(exc, "msg", "not UTF-8 text")
                raise BadPayload(f"malformed JSON on line {number}: {msg}") from None
    return items


def timeframe(seconds: int) -> str:
    """Bar length in BarSpec notation: 1 -> "1s", 60 -> "1m", 3600 -> "1h", 86400 -> "1d"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _items(value, what: str, plural: str) -> list[dict]:
    if not isinstance(value, list):
        raise BadPayload(f"expected a JSON array of {plural}, got {_kind(value)}")
    if not value:
        raise BadPayload(f"no {plural}: the array is empty")
    if len(value) > MAX_ITEMS:
        raise BadPayload(f"{len(value):,} {plural}: at most {MAX_ITEMS:,} in one request", 413)
    if _types(value) != {dict}:  # the loop only to name the first that is not an object
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise BadPayload(f"{what} {i}: expected a JSON object, got {_kind(item)}")
    return value


def _types(values) -> set:
    """The exact types among ``values``: one C-speed pass, so a large batch of well-formed items
    skips the item-by-item checks, which then run only to say what is wrong and where."""
    return set(map(type, values))


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {dict: "an object", list: "an array", str: "text"}.get(type(value), "a number")


def _number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _numbers(items: list[dict], field: str, what: str, *, integer=False, optional=False,
             default=None) -> np.ndarray:
    """The field of every item as float64 (int64 when ``integer``); JSON numbers only."""
    values = [item.get(field, default) for item in items]
    if not optional and _types(values) <= ({int} if integer else {int, float}):
        try:  # all JSON numbers (bool is not int here): nothing to name
            return np.array(values, dtype="int64" if integer else "float64")
        except OverflowError:
            pass  # the checks below say which one
    for i, v in enumerate(values):
        if v is None:
            if optional:
                continue
            raise BadPayload(f"{what} {i}: {field} is missing" if field not in items[i] else
                             f"{what} {i}: {field} is null; it must be a number")
        if not _number(v) or (integer and not (isinstance(v, Integral) or float(v).is_integer())):
            kind = "a whole number" if integer else "a number"
            raise BadPayload(f"{what} {i}: {field} must be {kind}, got {_kind(v)} "
                             f"{json.dumps(v)[:40]}")
        if integer and not -2**63 <= v < 2**63:
            raise BadPayload(f"{what} {i}: {field} {v} is out of range")
    if optional:
        return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    if integer:
        return np.array(values, dtype="float64").astype("int64") if any(
            isinstance(v, float) for v in values) else np.array(values, dtype="int64")
    return np.array(values, dtype="float64")


def times(texts: list, what: str, tz: str, now: pd.Timestamp, field: str = "time"
          ) -> pd.DatetimeIndex:
    """ISO 8601 texts as UTC times; zone-less ones in ``tz``; none past ``now + MAX_AHEAD``."""
    for i, t in enumerate(texts if _types(texts) != {str} else ()):
        if not isinstance(t, str):
            problem = "is missing" if t is None else f"must be ISO 8601 text, got {_kind(t)}"
            raise BadPayload(f"{what} {i}: {field} {problem}")
    try:
        out = pd.DatetimeIndex(pd.to_datetime(texts, format="ISO8601"))  # a list: no Series
        out = out.tz_convert("UTC") if out.tz is not None else out.tz_localize(
            tz, ambiguous="raise", nonexistent="raise").tz_convert("UTC")
        out = out.as_unit("ns")
    except (ValueError, TypeError, OverflowError):
        out = pd.DatetimeIndex([_one_time(t, i, what, tz, field) for i, t in enumerate(texts)])
    early = np.flatnonzero(out < EARLIEST)
    if len(early):
        i = int(early[0])
        raise BadPayload(f"{what} {i}: {field} {texts[i][:40]!r} is before {EARLIEST:%Y}: is "
                         "it a time?", 422)
    ahead = np.flatnonzero(out > now + MAX_AHEAD)
    if len(ahead):
        i = int(ahead[0])
        hours = (out[i] - now) / pd.Timedelta(hours=1)
        raise BadPayload(f"{what} {i}: {field} {texts[i]!r} is {hours:,.1f} h ahead of the "
                         f"server's clock ({now:%Y-%m-%d %H:%M} UTC); a time without a zone is "
                         f"read in {tz}: is that the feeder's zone? (tradeflow apikey create "
                         "NAME --timezone TZ)", 422)
    return out.as_unit("ns")


def _one_time(text: str, i: int, what: str, tz: str, field: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text)
        if ts is pd.NaT:
            raise ValueError
        if ts.tzinfo is None:
            ts = ts.tz_localize(tz, ambiguous="raise", nonexistent="raise")
        ts = ts.tz_convert("UTC")
        if ts > pd.Timestamp.max.tz_localize("UTC"):
            raise BadPayload(f"{what} {i}: {field} {text[:40]!r} is centuries ahead: is it a "
                             "time?", 422)
        if ts < EARLIEST:
            raise BadPayload(f"{what} {i}: {field} {text[:40]!r} is before {EARLIEST:%Y}: is "
                             "it a time?", 422)
        return ts.as_unit("ns")
    except BadPayload:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        reason = str(exc) if "ambiguous" in str(exc).lower() or "nonexistent" in str(
            exc).lower() else "not an ISO 8601 time such as 2025-11-26 21:17:14"
        raise BadPayload(f"{what} {i}: {field} {text[:40]!r}: {reason}") from None


def check_symbol(value, where: str) -> str:
    if not isinstance(value, str):
        raise BadPayload(f"{where}: symbol must be text, got {_kind(value)}")
    try:
        return validate_symbol(value)
    except ModelError as exc:
        raise BadPayload(f"{where}: {exc}") from None


# Sierra Chart bars ------------------------------------------------------------------------------

def _chart(info, where: str) -> tuple[str, int]:
    """(symbol, seconds per bar) of a ``chart_info`` object."""
    if not isinstance(info, dict):
        raise BadPayload(f"{where}: chart_info must be an object with symbol and "
                         f"seconds_per_bar, got {_kind(info)}")
    if "symbol" not in info:
        raise BadPayload(f"{where}: chart_info.symbol is missing")
    symbol = check_symbol(info["symbol"], where)
    seconds = info.get("seconds_per_bar")
    if not isinstance(seconds, Integral) or isinstance(seconds, bool) \
            or not 1 <= seconds <= MAX_BAR_SECONDS:
        raise BadPayload(f"{where}: chart_info.seconds_per_bar must be a whole number of seconds "
                         f"from 1 to {MAX_BAR_SECONDS}, got {json.dumps(seconds)[:40]}",
                         400 if not _number(seconds) else 422)
    return symbol, int(seconds)


def sierra_bars(items: list, tz: str, now: pd.Timestamp, metadata=None
                ) -> tuple[str, int, pd.DataFrame]:
    """(symbol, seconds per bar, bars frame) of Sierra Chart bar objects (the JSON an ACSIL
    study posts). Each bar's ``chart_info`` (or, in a batch, ``metadata``'s ``symbol`` and
    ``seconds_per_bar``) names the chart; all bars of one request must be of one chart."""
    items = _items(items, "bar", "bars")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadPayload(f"metadata must be an object, got {_kind(metadata)}")
    charts = []
    for i, item in enumerate(items):
        info = item.get("chart_info", metadata if metadata and "symbol" in metadata else None)
        if info is None:
            raise BadPayload(f"bar {i}: chart_info is missing (it names the symbol and "
                             "seconds_per_bar)")
        charts.append(_chart(info, f"bar {i}"))
    for i, chart in enumerate(charts):
        if chart != charts[0]:
            raise BadPayload(f"bar {i}: one request holds one chart's bars; bar 0 is "
                             f"{charts[0][0]} {timeframe(charts[0][1])}, bar {i} is {chart[0]} "
                             f"{timeframe(chart[1])}: send them separately", 422)
    symbol, seconds = charts[0]
    ts = times([item.get("timestamp") for item in items], "bar", tz, now, "timestamp")
    frame = pd.DataFrame({
        "ts": ts,
        **{c: _numbers(items, c, "bar") for c in ("open", "high", "low", "close", "volume")},
        "ask_volume": _numbers(items, "ask_volume", "bar", default=0),
        "bid_volume": _numbers(items, "bid_volume", "bar", default=0),
        "trades": _numbers(items, "number_of_trades", "bar", integer=True, default=0),
        "open_interest": _numbers(items, "open_interest", "bar", optional=True),
    })
    return symbol, seconds, frame


# trades -----------------------------------------------------------------------------------------

def trades(items: list, tz: str, now: pd.Timestamp, symbol: str | None = None
           ) -> tuple[str, pd.DataFrame]:
    """(symbol, trades frame) of trade objects ``{symbol, time, price, size, side, id}``.
    ``side``: ``"buy"`` or ``1`` (the buyer aggressed), ``"sell"`` or ``-1``, ``0`` unknown;
    ``id``: the source's trade id, a whole number >= 0 (posting a trade again stores it once).
    All trades of one request are of one symbol (given, or each trade's ``symbol``)."""
    items = _items(items, "trade", "trades")
    if symbol is None:
        first = items[0].get("symbol")
        if first is None:
            raise BadPayload("trade 0: symbol is missing")
        symbol = check_symbol(first, "trade 0")
    named = [item.get("symbol", symbol) for item in items]
    for i, other in enumerate(named if named.count(symbol) != len(named) else ()):
        if other != symbol:
            raise BadPayload(f"trade {i}: one request holds one symbol's trades; trade 0 is "
                             f"{symbol}, trade {i} is {json.dumps(other)[:40]}: send them "
                             "separately", 422)
    values = [item.get("side") for item in items]
    # as sent by most feeders ("buy"/"sell" or 1/-1/0) in one pass; else item by item
    side = [SIDES.get(v) for v in values] if _types(values) <= {str, int} else [None]
    if None in side:
        side = []
        for i, value in enumerate(values):
            key = _side_key(value)
            if key not in SIDES:
                raise BadPayload(f"trade {i}: side must be \"buy\", \"sell\", 1, -1 or 0, got "
                                 f"{json.dumps(value)[:40]}" if "side" in items[i] else
                                 f"trade {i}: side is missing")
            side.append(SIDES[key])
    ids = _numbers(items, "id", "trade", integer=True)
    negative = np.flatnonzero(ids < 0)
    if len(negative):
        raise BadPayload(f"trade {int(negative[0])}: id must be >= 0 (the source's trade id)",
                         422)
    frame = pd.DataFrame({
        "ts": times([item.get("time") for item in items], "trade", tz, now),
        "price": _numbers(items, "price", "trade"),
        "size": _numbers(items, "size", "trade"),
        "side": np.array(side, dtype="int8"),
        "trade_id": ids,
    })
    return symbol, frame


# depth and liquidations (websocket batches) ------------------------------------------------------

def depth(items: list, tz: str, now: pd.Timestamp) -> pd.DataFrame:
    """Book levels ``{time, side, price, size}``: side ``"ask"``/``1`` or ``"bid"``/``-1``; size
    0 removes the level. Prices stay prices here (the handler puts them on the tick grid)."""
    items = _items(items, "level", "levels")
    return pd.DataFrame({
        "ts": times([item.get("time") for item in items], "level", tz, now),
        "side": _sides(items, "level", BOOK_SIDES),
        "price": _numbers(items, "price", "level"),
        "size": _numbers(items, "size", "level"),
    })


def liquidations(items: list, tz: str, now: pd.Timestamp) -> pd.DataFrame:
    """Liquidations ``{time, side, price, size}``."""
    items = _items(items, "liquidation", "liquidations")
    return pd.DataFrame({
        "ts": times([item.get("time") for item in items], "liquidation", tz, now),
        "side": _sides(items, "liquidation", ORDER_SIDES),
        "price": _numbers(items, "price", "liquidation"),
        "size": _numbers(items, "size", "liquidation"),
    })


def _sides(items: list[dict], what: str, sides: dict) -> np.ndarray:
    out = []
    for i, item in enumerate(items):
        value = item.get("side")
        key = _side_key(value)
        if key not in sides:
            allowed = ", ".join(json.dumps(k) for k in sides)
            raise BadPayload(f"{what} {i}: side must be one of {allowed}, got "
                             f"{json.dumps(value)[:40]}")
        out.append(sides[key])
    return np.array(out, dtype="int8")


def _side_key(value):
    """A side value as a lookup key (text lower-cased, numbers as they are; anything else, a
    bool or an unhashable list, as a key no table holds)."""
    if isinstance(value, str):
        return value.lower()
    if _number(value):
        return value
    return None
