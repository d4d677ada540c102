"""The shared vocabulary of TradeFlow: instruments, sessions, bar specs and frame layouts.

Everything here depends on numpy and pandas only, so that every layer (studies, stores, the
application, the dashboards) can speak it.

Frame layouts (all times are UTC, pandas ``datetime64[ns, UTC]``):

* trades: ``ts, price, size, side, trade_id`` -- ``side`` is the aggressor (+1 buyer lifted the
  ask, -1 seller hit the bid, 0 unknown); ``trade_id`` is the source's id, or for imported files
  without ids one made from the trade's microsecond, rank in it, price, size and side
  (``tradeflow.ingest.trade_ids.OrdinalIds``), so that importing the same file twice stores it once.
* bars: ``ts, open, high, low, close, volume, ask_volume, bid_volume, delta, trades,
  open_interest`` -- ``ts`` is the bar's open time (for daily and longer bars: the trading date at
  00:00 UTC); ``delta = ask_volume - bid_volume``.
* footprint: ``ts, tick, volume, ask_volume, bid_volume, trades`` -- one row per bar and price
  level, the level keyed by its integer tick index ``round(price / tick_size)``.
* depth: ``ts, side, tick, size`` -- resting size per level in a book snapshot (side +1 ask, -1 bid).
* liquidations: ``ts, side, price, size`` -- ``side`` is the side of the forced order.
"""
from __future__ import annotations

import enum
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd


_log = logging.getLogger(__name__)


class Side(enum.IntEnum):
    """The aggressor of a trade (or the side of a resting order / forced order)."""

    BUY = 1
    SELL = -1
    UNKNOWN = 0


TRADE_COLUMNS = ("ts", "price", "size", "side", "trade_id")
BAR_COLUMNS = (
    "ts", "open", "high", "low", "close", "volume", "ask_volume", "bid_volume", "delta", "trades",
    "open_interest",
)
FOOTPRINT_COLUMNS = ("ts", "tick", "volume", "ask_volume", "bid_volume", "trades")
DEPTH_COLUMNS = ("ts", "side", "tick", "size")
LIQUIDATION_COLUMNS = ("ts", "side", "price", "size")

ASSET_CLASSES = ("future", "crypto", "equity", "fx", "index", "option", "other")


class ModelError(ValueError):
    """A value of the shared vocabulary (a spec, a session, an instrument) is malformed."""


# --------------------------------------------------------------------------------------------
# Sessions


_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _parse_hhmm(text: str, what: str) -> time | None:
    """Parse ``HH:MM``; ``24:00`` becomes ``None`` (end of day)."""
    m = _HHMM.match(text.strip())
    if not m:
        raise ModelError(f"{what}: expected HH:MM, got {text!r}")
    h, mi = int(m.group(1)), int(m.group(2))
    if (h, mi) == (24, 0):
        return None
    if h > 23 or mi > 59:
        raise ModelError(f"{what}: {text!r} is not a time of day")
    return time(h, mi)


def _fmt(t: time | None) -> str:
    return "24:00" if t is None else t.strftime("%H:%M")


@dataclass(frozen=True)
class Session:
    """A trading-session template in the exchange's time zone.

    Notation: ``"TZ RTH_START-RTH_END[,ETH_START-ETH_END]"``, for example
    ``"America/Chicago 08:30-15:15,17:00-16:00"`` (CME equity index futures: regular hours
    08:30-15:15, extended hours from 17:00 the evening before to 16:00) or ``"UTC 00:00-24:00"``
    (a market that trades around the clock, the default). The trading day begins at the start of the
    extended hours when given, else of the regular hours; a start later than the regular open means
    the day began the evening before.
    """

    timezone: str = "UTC"
    rth_start: time | None = time(0, 0)
    rth_end: time | None = None  # None is 24:00
    eth_start: time | None = None
    eth_end: time | None = None

    def __post_init__(self):
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ModelError(f"session: unknown time zone {self.timezone!r}") from exc
        if (self.eth_start is None) != (self.eth_end is None):
            raise ModelError("session: extended hours need both a start and an end")

    @classmethod
    def parse(cls, text: str) -> "Session":
        parts = text.strip().split(None, 1)
        if len(parts) != 2:
            raise ModelError(
                f"session {text!r}: expected 'TZ HH:MM-HH:MM[,HH:MM-HH:MM]', "
                "e.g. 'America/Chicago 08:30-15:15,17:00-16:00'"
            )
        tz, spans = parts
        ranges = [s.strip() for s in spans.split(",")]
        if len(ranges) > 2:
            raise ModelError(f"session {text!r}: at most regular and extended hours")
        parsed = []
        for r in ranges:
            if r.count("-") != 1:
                raise ModelError(f"session {text!r}: {r!r} is not HH:MM-HH:MM")
            a, b = r.split("-")
            parsed.append((_parse_hhmm(a, f"session {text!r}"), _parse_hhmm(b, f"session {text!r}")))
        (rs, re_), *eth = parsed
        if rs is None:
            raise ModelError(f"session {text!r}: a session cannot start at 24:00")
        es, ee = eth[0] if eth else (None, None)
        return cls(tz, rs, re_, es, ee)

    def __str__(self) -> str:
        text = f"{self.timezone} {_fmt(self.rth_start)}-{_fmt(self.rth_end)}"
        if self.eth_start is not None:
            text += f",{_fmt(self.eth_start)}-{_fmt(self.eth_end)}"
        return text

    @property
    def day_start(self) -> time:
        """The local time at which a trading day begins."""
        return self.eth_start if self.eth_start is not None else self.rth_start

    @property
    def starts_evening_before(self) -> bool:
        return self.day_start > self.rth_start

    @property
    def day_shift(self) -> timedelta:
        """Add this to a local wall time, then take the date, to get the trading date."""
        start = timedelta(hours=self.day_start.hour, minutes=self.day_start.minute)
        return (timedelta(days=1) - start) if self.starts_evening_before else -start

    def trading_date(self, ts: pd.Series | pd.DatetimeIndex) -> pd.DatetimeIndex:
        """Trading date of each UTC timestamp, as midnight UTC of that date."""
        idx = pd.DatetimeIndex(ts).as_unit("ns")
        local = idx.tz_convert(self.timezone).tz_localize(None) + self.day_shift
        return local.normalize().tz_localize("UTC")

    def day_start_utc(self, trading_date) -> pd.DatetimeIndex:
        """The UTC instant each trading day (given as its date, e.g. from :meth:`trading_date`)
        begins."""
        dates = pd.DatetimeIndex(pd.to_datetime(trading_date)).tz_localize(None).normalize()
        local = dates - self.day_shift
        # ambiguous/non-existent local times (DST changes) resolve to the later instant
        return (local.tz_localize(self.timezone, ambiguous=False, nonexistent="shift_forward")
                .tz_convert("UTC").as_unit("ns"))

    def is_regular(self, ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        """True where a UTC timestamp falls in regular trading hours."""
        local = pd.DatetimeIndex(ts).tz_convert(self.timezone)
        minutes = local.hour * 60 + local.minute
        start = self.rth_start.hour * 60 + self.rth_start.minute
        end = 24 * 60 if self.rth_end is None else self.rth_end.hour * 60 + self.rth_end.minute
        if start <= end:
            return np.asarray((minutes >= start) & (minutes < end))
        return np.asarray((minutes >= start) | (minutes < end))


# --------------------------------------------------------------------------------------------
# Instruments


def price_to_tick(price, tick_size: float) -> np.ndarray:
    """Integer tick index of each price; halves round away from zero, as SQL's round() does in
    both stores, so Python and the databases put a price on the same level."""
    x = np.asarray(price, dtype="float64") / tick_size
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype("int64")


SYMBOL_CHARS = "letters, digits and . _ - / ^ : = @ $ # !"
SYMBOL_MAX_LENGTH = 40
# ESZ5, ES.FUT, BTCUSD_PERP, BTC-USDT, EUR/USD, ^GSPC, /ES, ES=F, @ES, $SPX, ES1!, ES.c.0 pass;
# spaces, quotes, <, >, &, backslashes and control characters (markup, shell, SQL) never do
_SYMBOL = re.compile(r"[A-Za-z0-9._\-/^:=@$#!]{1,%d}" % SYMBOL_MAX_LENGTH)
MIN_TICK_SIZE, MAX_TICK_SIZE = 1e-12, 1e6
MAX_POINT_VALUE = 1e9


def validate_symbol(symbol) -> str:
    """``symbol`` when it is a valid instrument symbol: 1 to :data:`SYMBOL_MAX_LENGTH` ASCII
    characters from :data:`SYMBOL_CHARS`, at least one a letter or digit; else a ModelError.

    Every place a symbol enters (instruments, imports, the command line, page URLs) checks it
    here, so no stored or requested symbol carries markup or quotes."""
    if not (isinstance(symbol, str) and _SYMBOL.fullmatch(symbol)
            and any(c.isalnum() for c in symbol)):
        shown = repr(symbol if not isinstance(symbol, str) or len(symbol) <= 60
                     else symbol[:60] + "...")
        raise ModelError(f"symbol {shown} is not valid: use 1 to {SYMBOL_MAX_LENGTH} {SYMBOL_CHARS}"
                         " (e.g. ESZ5, BTCUSDT, EUR/USD)")
    return symbol


@dataclass(frozen=True)
class Instrument:
    """A tradable symbol and what is needed to put its prices on a grid and its bars in a day."""

    symbol: str
    tick_size: float
    exchange: str = ""
    asset_class: str = "other"
    point_value: float = 1.0
    session: Session = field(default_factory=Session)

    def __post_init__(self):
        validate_symbol(self.symbol)
        if not (isinstance(self.tick_size, (int, float)) and math.isfinite(self.tick_size)
                and self.tick_size > 0):
            raise ModelError(f"instrument {self.symbol}: tick size must be a positive number, "
                             f"got {self.tick_size!r}")
        # prices become int64 tick indexes: a tick far outside this range overflows them or
        # loses the grid in float rounding
        if not MIN_TICK_SIZE <= self.tick_size <= MAX_TICK_SIZE:
            raise ModelError(f"instrument {self.symbol}: tick size must be from {MIN_TICK_SIZE:g} "
                             f"to {MAX_TICK_SIZE:g}, got {self.tick_size!r}")
        if not (isinstance(self.point_value, (int, float)) and math.isfinite(self.point_value)
                and 0 < self.point_value <= MAX_POINT_VALUE):
            raise ModelError(f"instrument {self.symbol}: point value must be a positive number up "
                             f"to {MAX_POINT_VALUE:g}, got {self.point_value!r}")
        if not (isinstance(self.exchange, str) and len(self.exchange) <= 64
                and self.exchange.isprintable()):
            raise ModelError(f"instrument {self.symbol}: exchange {self.exchange!r} must be "
                             "printable text of at most 64 characters")
        if self.asset_class not in ASSET_CLASSES:
            raise ModelError(f"instrument {self.symbol}: asset class {self.asset_class!r} is not one "
                             f"of {', '.join(ASSET_CLASSES)}")
        if isinstance(self.session, str):
            object.__setattr__(self, "session", Session.parse(self.session))

    def to_tick(self, price) -> np.ndarray:
        """Integer tick index of each price (the key of every price level)."""
        return price_to_tick(price, self.tick_size)

    def to_price(self, tick) -> np.ndarray:
        """Price of each tick index, rounded to the tick's decimals so it prints cleanly."""
        return np.round(np.asarray(tick, dtype="int64") * self.tick_size, self.price_decimals)

    @property
    def price_decimals(self) -> int:
        text = f"{self.tick_size:.12f}".rstrip("0")
        return len(text.split(".")[1]) if "." in text else 0


class InstrumentRegistry:
    """Instruments by symbol (the stores persist it; this is the in-memory view)."""

    def __init__(self, instruments=()):
        self._by_symbol: dict[str, Instrument] = {}
        for inst in instruments:
            self.add(inst)

    @classmethod
    def from_rows(cls, rows) -> "InstrumentRegistry":
        """The registry of stored rows ``(symbol, tick_size, exchange, asset_class, point_value,
        session)``. A row that breaks today's rules (written before them, or by hand) is left out
        with a logged warning, so that one bad row cannot make the whole store unreadable."""
        registry = cls()
        for symbol, tick, exchange, asset_class, point_value, session in rows:
            try:
                registry.add(Instrument(symbol, tick, exchange, asset_class, point_value,
                                        Session.parse(session)))
            except ModelError as exc:
                _log.warning("stored instrument %r left out: %s", symbol, exc)
        return registry

    def add(self, instrument: Instrument) -> None:
        self._by_symbol[instrument.symbol] = instrument

    def get(self, symbol: str) -> Instrument:
        validate_symbol(symbol)
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise ModelError(
                f"unknown symbol {symbol!r}: add it first, e.g. "
                f"'tradeflow instruments add {symbol} --tick-size 0.25'"
            ) from None

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._by_symbol

    def __iter__(self):
        return iter(sorted(self._by_symbol.values(), key=lambda i: i.symbol))

    def __len__(self) -> int:
        return len(self._by_symbol)


# --------------------------------------------------------------------------------------------
# Bar specifications


_TIME_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "M": "month"}
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPEC = re.compile(r"^(?:(?P<n>\d+)(?P<unit>[smhdwM])|(?P<kind>T|V|R|RK)(?P<size>\d+))$")
_KINDS = {"T": "tick", "V": "volume", "R": "range", "RK": "renko"}
_PREFIX = {v: k for k, v in _KINDS.items()}


@dataclass(frozen=True)
class BarSpec:
    """How trades are cut into bars. One notation, parsed by :meth:`parse`:

    * time bars: ``"1s"`` ... ``"30s"``, ``"1m"``, ``"5m"``, ``"1h"``, ``"4h"``, ``"1d"``, ``"1w"``,
      ``"1M"`` (calendar month); intraday bars are aligned to the UTC epoch, daily and longer bars
      to the instrument's trading day;
    * ``"T500"``: a bar every 500 trades;
    * ``"V1000"``: a bar closes once its volume reaches 1000 (a trade is never split);
    * ``"R8"``: range bars, a new bar starts when a trade would stretch the bar beyond 8 ticks;
    * ``"RK10"``: Renko bricks of 10 ticks (a reversal needs two bricks);
    * a ``":HA"`` suffix on any of them (``"5m:HA"``) gives Heikin-Ashi bars of that spec.
    """

    kind: str  # time | tick | volume | range | renko
    size: int
    unit: str = ""  # time bars: s m h d w M
    heikin_ashi: bool = False

    @classmethod
    def parse(cls, text: "str | BarSpec") -> "BarSpec":
        if isinstance(text, BarSpec):
            return text
        raw = str(text).strip()
        body, ha = raw, False
        if raw.upper().endswith(":HA"):
            body, ha = raw[:-3], True
        m = _SPEC.match(body)
        if not m:
            raise ModelError(
                f"bar spec {raw!r} not understood: use e.g. '1m', '5s', '4h', '1d', '1M', "
                "'T500' (ticks), 'V1000' (volume), 'R8' (range ticks), 'RK10' (Renko ticks), "
                "with ':HA' for Heikin-Ashi"
            )
        if m.group("unit"):
            n, unit = int(m.group("n")), m.group("unit")
            spec = cls("time", n, unit, ha)
        else:
            spec = cls(_KINDS[m.group("kind")], int(m.group("size")), "", ha)
        if spec.size <= 0:
            raise ModelError(f"bar spec {raw!r}: the size must be positive")
        if spec.unit in ("d", "w", "M") and spec.size != 1:
            raise ModelError(f"bar spec {raw!r}: daily, weekly and monthly bars come one at a time")
        if spec.kind == "time" and spec.unit in _UNIT_SECONDS and spec.unit not in ("d", "w"):
            if spec.seconds > 86400 or 86400 % spec.seconds:
                raise ModelError(f"bar spec {raw!r}: intraday bars must divide a day evenly")
        return spec

    def __str__(self) -> str:
        text = f"{self.size}{self.unit}" if self.kind == "time" else f"{_PREFIX[self.kind]}{self.size}"
        return text + (":HA" if self.heikin_ashi else "")

    @property
    def is_time(self) -> bool:
        return self.kind == "time"

    @property
    def is_intraday_time(self) -> bool:
        return self.kind == "time" and self.unit in ("s", "m", "h")

    @property
    def seconds(self) -> int:
        """Length of an intraday or daily/weekly time bar in seconds (not for months)."""
        if self.kind != "time" or self.unit == "M":
            raise ModelError(f"bar spec {self}: has no fixed length in seconds")
        return self.size * _UNIT_SECONDS[self.unit]

    @property
    def calendar_unit(self) -> str | None:
        """``day``/``week``/``month`` for session-aligned bars, else None."""
        return _TIME_UNITS[self.unit] if self.kind == "time" and self.unit in "dwM" else None

    @property
    def base(self) -> "BarSpec":
        """The same spec without the Heikin-Ashi transform."""
        return BarSpec(self.kind, self.size, self.unit, False)


def bar_start(ts: pd.Series | pd.DatetimeIndex, spec: BarSpec, session: Session) -> pd.DatetimeIndex:
    """Open time of the time bar each UTC timestamp falls in."""
    idx = pd.DatetimeIndex(ts).as_unit("ns")
    if spec.is_intraday_time:
        step = spec.seconds * 1_000_000_000
        values = idx.asi8
        return ns_to_utc(values - values % step)
    day = session.trading_date(idx)
    if spec.unit == "d":
        return day
    naive = day.tz_localize(None)
    if spec.unit == "w":  # weeks start on the Monday of the trading week
        return (naive - pd.to_timedelta(naive.day_of_week, unit="D")).tz_localize("UTC")
    return naive.to_period("M").to_timestamp().as_unit("ns").tz_localize("UTC")


def bar_end(ts, spec: BarSpec, session: Session) -> pd.DatetimeIndex:
    """The close time of each bar of ``spec`` whose open time (label) is ``ts``.

    Time bars end one interval later (daily and longer: when the next trading day, week or month
    begins). Tick, volume, range and Renko bars end when the next one opens: the last of them is
    still open, so its end is NaT.
    """
    idx = pd.DatetimeIndex(ts).as_unit("ns")
    if spec.is_intraday_time:
        return idx + pd.Timedelta(seconds=spec.seconds)
    if spec.is_time:
        naive = idx.tz_localize(None)
        step = {"d": pd.DateOffset(days=1), "w": pd.DateOffset(weeks=1),
                "M": pd.DateOffset(months=1)}[spec.unit]
        return session.day_start_utc(naive + step)
    if len(idx) == 0:
        return idx
    return pd.DatetimeIndex(list(idx[1:]) + [pd.NaT]).tz_convert("UTC").as_unit("ns")


# --------------------------------------------------------------------------------------------
# Frame helpers


def empty_frame(columns) -> pd.DataFrame:
    """An empty frame with the right dtypes for one of the layouts above."""
    dtypes = {
        "ts": "datetime64[ns, UTC]", "side": "int8", "tick": "int64", "trades": "int64",
        "trade_id": "int64",
    }
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float64")) for c in columns})


def ns_to_utc(ns):
    """int64 epoch nanoseconds as UTC time: an array as a ``datetime64[ns, UTC]`` index, one
    value as a ``pd.Timestamp``. The one such conversion: every module uses it."""
    if np.ndim(ns) == 0:
        return pd.Timestamp(int(ns), unit="ns", tz="UTC")
    # built with the zone as its dtype: several times cheaper than tz_localize, which matters
    # for the small frames of every live update
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("datetime64[ns]"),
                            dtype="datetime64[ns, UTC]")


def to_utc(values) -> pd.DatetimeIndex:
    """Timestamps (naive taken as UTC) as a UTC DatetimeIndex in nanoseconds."""
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return idx.as_unit("ns")


def normalize_trades(frame: pd.DataFrame) -> pd.DataFrame:
    """Trades in the canonical layout and dtypes, sorted by time (stable)."""
    missing = [c for c in ("ts", "price", "size") if c not in frame.columns]
    if missing:
        raise ModelError(f"trades frame lacks column(s) {', '.join(missing)}")
    out = pd.DataFrame({
        "ts": to_utc(frame["ts"]),
        "price": np.asarray(frame["price"], dtype="float64"),
        "size": np.asarray(frame["size"], dtype="float64"),
        "side": np.asarray(frame["side"] if "side" in frame else 0, dtype="int8"),
    })
    if "trade_id" in frame:
        out["trade_id"] = np.asarray(frame["trade_id"], dtype="int64")
    else:
        # ordinal among trades of the same microsecond (the resolution the stores keep)
        out["trade_id"] = out.groupby(out["ts"].dt.floor("us")).cumcount().to_numpy(dtype="int64")
    if not out["ts"].is_monotonic_increasing:
        out = out.sort_values("ts", kind="stable")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Live updates: what the live studies follow (defined here so that ``indicators/`` can read them
# without importing the application)


def _empty_trades() -> pd.DataFrame:
    return empty_frame(TRADE_COLUMNS)


@dataclass
class BarUpdate:
    """What one batch of trades did to the bars of one (symbol, spec), as
    ``tradeflow.bars.BarAggregator.update`` gives it: the bars that closed (final, sent once) and
    the bar still forming (0 or 1 row, re-sent whole at every update until it closes), each with
    its footprint cells; and the batch's own ``trades`` (trade layout, time order) and
    ``liquidations`` (liquidation layout; None when the batch had none), so that studies over
    trades follow the same update as the bars and nothing drifts."""

    closed: pd.DataFrame
    current: pd.DataFrame
    closed_footprint: pd.DataFrame
    current_footprint: pd.DataFrame
    trades: pd.DataFrame = field(default_factory=_empty_trades)
    liquidations: pd.DataFrame | None = None


@dataclass
class DepthUpdate:
    """Changes to a book's resting size, in the depth layout (``ts, side, tick, size``; size 0
    removes the level). ``snapshot``: the levels replace the whole book. ``first_id``,
    ``final_id``, ``prev_final_id``: the venue's update ids when it numbers its depth events
    (Binance ``U``, ``u``, ``pu``), for the venue's sequence rules
    (``tradeflow.venues.binance.BinanceBook``); None otherwise."""

    levels: pd.DataFrame
    snapshot: bool = False
    first_id: int | None = None
    final_id: int | None = None
    prev_final_id: int | None = None
