"""Frames in and out of the stores: validation of what is written, dtypes of what is read."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import (
    BAR_COLUMNS, DEPTH_COLUMNS, FOOTPRINT_COLUMNS, LIQUIDATION_COLUMNS, TRADE_COLUMNS, ModelError,
    empty_frame, to_utc,
)

# Columns as stored (the symbol is added by the store).
STORED_BAR_COLUMNS = tuple(c for c in BAR_COLUMNS if c != "delta")

# Sane magnitudes: no real market exceeds them, and they keep every rollup finite and inside
# float8: a minute, hour or month sums at most a few billion trades of MAX_SIZE (< 1e25), far
# below float8's 1.8e308, so no sum overflows (a size of 1e308 would make a minute's volume inf,
# and PostgreSQL then fails every later write to that minute).
MAX_PRICE = 1e12  # the highest real prices (Bitcoin in Iranian rial) stay near 1e10
MIN_SIZE = 1e-12  # below any exchange's smallest lot (Bitcoin's satoshi is 1e-8)
MAX_SIZE = 1e15  # one trade; meme tokens trade up to ~1e12 units at once
MAX_BAR_VOLUME = 1e18  # one bar's volume (and its ask/bid parts)


class RowError(ModelError):
    """A bad value in row ``row`` (0-based position) of a frame being written or checked.

    ``str(e) == "{what}: row {row}: {reason}"``; a caller that knows where the rows came from
    (an import: the file's lines or records) names the place itself from ``row`` and ``reason``.
    """

    def __init__(self, what: str, row: int, reason: str):
        self.what, self.row, self.reason = what, int(row), reason
        super().__init__(f"{what}: row {self.row}: {reason}")

    def __reduce__(self):
        return (type(self), (self.what, self.row, self.reason))


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ModelError(f"{what}: missing column(s) {', '.join(missing)}")


def _finite(frame: pd.DataFrame, columns, what: str, positive=(), nonnegative=(),
            low=None, high=None) -> None:
    """Each column finite (and positive / non-negative); within ``[low, high]`` when given."""
    for c in columns:
        values = frame[c].to_numpy(dtype="float64")
        bad = ~np.isfinite(values)
        if c in positive:
            bad |= values <= 0
        if c in nonnegative:
            bad |= values < 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            rule = "positive" if c in positive else "non-negative" if c in nonnegative else "finite"
            value = frame[c].iloc[i].item()
            raise RowError(what, i, f"{c} must be {rule}, got {value!r}")
        out = np.zeros(len(values), dtype=bool)
        if low is not None:
            out |= values < low
        if high is not None:
            out |= values > high
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise RowError(what, i, f"{c} {float(values[i])!r} is out of range "
                           f"({_bounds_text(low, high)})")


def _bounds_text(low, high) -> str:
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def check_trade_values(frame: pd.DataFrame, what: str = "trades") -> None:
    """Prices finite, positive and at most :data:`MAX_PRICE`; sizes finite, within
    :data:`MIN_SIZE`..:data:`MAX_SIZE`. Raises :class:`RowError`."""
    _finite(frame, ("price",), what, positive=("price",), high=MAX_PRICE)
    _finite(frame, ("size",), what, positive=("size",), low=MIN_SIZE, high=MAX_SIZE)


def check_bar_values(frame: pd.DataFrame, what: str = "bars") -> None:
    """OHLC finite, positive, at most :data:`MAX_PRICE`, high/low containing open and close;
    volumes and trade counts finite, >= 0, volumes at most :data:`MAX_BAR_VOLUME`. Columns
    other than OHLC may be absent. Raises :class:`RowError`."""
    prices = ("open", "high", "low", "close")
    _finite(frame, prices, what, positive=prices, high=MAX_PRICE)
    volumes = [c for c in ("volume", "ask_volume", "bid_volume") if c in frame]
    _finite(frame, volumes, what, nonnegative=volumes, high=MAX_BAR_VOLUME)
    if "trades" in frame:
        _finite(frame, ("trades",), what, nonnegative=("trades",))
    o, h, lo, c = (frame[k].to_numpy(dtype="float64") for k in prices)
    bad = (h < np.maximum(np.maximum(o, c), lo)) | (lo > np.minimum(o, c))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RowError(what, i, f"high/low {float(h[i])!r}/{float(lo[i])!r} do not contain "
                       f"open {float(o[i])!r} and close {float(c[i])!r}")


def _sides(frame: pd.DataFrame, what: str, allowed=(-1, 0, 1)) -> np.ndarray:
    side = frame["side"].to_numpy()
    bad = ~np.isin(side, allowed)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RowError(what, i, f"side must be one of {allowed}, got {side[i].item()!r}")
    return side.astype("int8")


MAX_TICKS = 2**52  # price / tick size must stay an exact integer in a double


def clean_trades(frame: pd.DataFrame, tick_size: float | None = None) -> pd.DataFrame:
    """Trades to store: canonical dtypes, validated, sorted; a trade_id is required. With
    ``tick_size``, prices must be within the range a tick index can key."""
    what = "trades"
    _require(frame, TRADE_COLUMNS, what)
    check_trade_values(frame, what)
    if tick_size is not None:
        far = np.abs(frame["price"].to_numpy(dtype="float64") / tick_size) >= MAX_TICKS
        if far.any():
            i = int(np.flatnonzero(far)[0])
            price = float(frame["price"].iloc[i])
            raise RowError(what, i, f"price {price!r} is out of range for tick size "
                           f"{tick_size!r}")
    out = pd.DataFrame({
        # stores keep microseconds (PostgreSQL's timestamptz resolution), so the key does too
        "ts": to_utc(frame["ts"]).floor("us"),
        "price": frame["price"].to_numpy(dtype="float64"),
        "size": frame["size"].to_numpy(dtype="float64"),
        "side": _sides(frame, what),
        "trade_id": frame["trade_id"].to_numpy(dtype="int64"),
    })
    ts, tid = pd.DatetimeIndex(out["ts"]).asi8, out["trade_id"].to_numpy()
    same_ts = ts[1:] == ts[:-1]
    if (ts[1:] < ts[:-1]).any() or (same_ts & (tid[1:] < tid[:-1])).any():
        out = out.sort_values(["ts", "trade_id"], kind="stable", ignore_index=True)
        ts, tid = pd.DatetimeIndex(out["ts"]).asi8, out["trade_id"].to_numpy()
        same_ts = ts[1:] == ts[:-1]
    repeated = same_ts & (tid[1:] == tid[:-1])
    if repeated.any():  # the same trade twice in one batch is stored once
        out = out[np.concatenate(([True], ~repeated))].reset_index(drop=True)
    return out


def clean_bars(frame: pd.DataFrame) -> pd.DataFrame:
    what = "bars"
    _require(frame, ("ts", "open", "high", "low", "close", "volume"), what)
    out = pd.DataFrame({"ts": to_utc(frame["ts"])})
    for c in ("open", "high", "low", "close", "volume", "ask_volume", "bid_volume"):
        out[c] = frame[c].to_numpy(dtype="float64") if c in frame else 0.0
    out["trades"] = frame["trades"].to_numpy(dtype="int64") if "trades" in frame else 0
    out["open_interest"] = (frame["open_interest"].to_numpy(dtype="float64")
                            if "open_interest" in frame else np.nan)
    check_bar_values(out, what)
    return out.sort_values("ts", kind="stable", ignore_index=True)


MAX_BAR_SECONDS = 31 * 86_400  # the longest bar a source sends built: a month


def check_bar_seconds(seconds) -> int:
    """The timeframe of received bars, a whole number of seconds from 1 to a month."""
    ok = isinstance(seconds, (int, np.integer)) and not isinstance(seconds, bool)
    if not ok or not 1 <= seconds <= MAX_BAR_SECONDS:
        raise ModelError(f"bars: seconds must be a whole number of seconds from 1 to "
                         f"{MAX_BAR_SECONDS} (the bar's timeframe), got {seconds!r}")
    return int(seconds)


def clean_received_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Bars received built, to store as they came: :func:`clean_bars`, times in whole
    microseconds (what stores keep), one bar per open time (the later row of the frame wins,
    as a bar posted again replaces the earlier one)."""
    out = clean_bars(frame)
    out["ts"] = out["ts"].dt.floor("us")
    return out.drop_duplicates("ts", keep="last", ignore_index=True)


def to_minutes(bars: pd.DataFrame) -> pd.DataFrame:
    """Clean bars of at most a minute rolled up to 1-minute bars (the first of bars with equal
    times opens, the last closes)."""
    if bars.empty:
        return bars
    minute = bars["ts"].dt.floor("min")
    g = bars.groupby(minute, sort=True)
    oi = bars["open_interest"].where(bars["open_interest"].notna())
    return pd.DataFrame({
        "ts": g["ts"].first().index, "open": g["open"].first().to_numpy(),
        "high": g["high"].max().to_numpy(), "low": g["low"].min().to_numpy(),
        "close": g["close"].last().to_numpy(), "volume": g["volume"].sum().to_numpy(),
        "ask_volume": g["ask_volume"].sum().to_numpy(),
        "bid_volume": g["bid_volume"].sum().to_numpy(), "trades": g["trades"].sum().to_numpy(),
        "open_interest": oi.groupby(minute, sort=True).last().to_numpy(),
    })


def clean_depth(frame: pd.DataFrame) -> pd.DataFrame:
    what = "depth"
    _require(frame, DEPTH_COLUMNS, what)
    _finite(frame, ("size",), what, nonnegative=("size",))
    return pd.DataFrame({
        "ts": to_utc(frame["ts"]),
        "side": _sides(frame, what, (-1, 1)),
        "tick": frame["tick"].to_numpy(dtype="int64"),
        "size": frame["size"].to_numpy(dtype="float64"),
    })


def depth_span(depth: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of a clean depth frame's times, to look up the snapshots already stored."""
    return depth["ts"].min(), depth["ts"].max() + pd.Timedelta(1, "us")


def new_snapshots(depth: pd.DataFrame, stored_ts) -> pd.DataFrame:
    """The rows of a clean depth frame whose time no stored snapshot of the symbol has: a
    snapshot is all rows of one time, and one already stored is not stored again (so re-importing
    a .depth file, or a feeder resending a batch, adds nothing). Times are compared in
    microseconds, what the stores keep."""
    stored = pd.DatetimeIndex(stored_ts)
    if not len(stored):
        return depth
    stored = (stored.tz_localize("UTC") if stored.tz is None else stored).as_unit("us").asi8
    incoming = pd.DatetimeIndex(depth["ts"]).as_unit("ns").asi8 // 1000
    return depth[~np.isin(incoming, stored)].reset_index(drop=True)


def clean_liquidations(frame: pd.DataFrame) -> pd.DataFrame:
    what = "liquidations"
    _require(frame, LIQUIDATION_COLUMNS, what)
    _finite(frame, ("price", "size"), what, positive=("price", "size"))
    return pd.DataFrame({
        "ts": to_utc(frame["ts"]),
        "side": _sides(frame, what, (-1, 1)),
        "price": frame["price"].to_numpy(dtype="float64"),
        "size": frame["size"].to_numpy(dtype="float64"),
    })


def to_arrow(frame: pd.DataFrame):
    """An Arrow table of a clean frame, times as microseconds (what both stores keep)."""
    import pyarrow as pa

    if "ts" in frame:  # as_unit truncates to whole microseconds
        frame = frame.assign(ts=frame["ts"].dt.as_unit("us"))
    return pa.Table.from_pandas(frame, preserve_index=False)


def _ts_ns(frame: pd.DataFrame) -> pd.DataFrame:
    if "ts" in frame:
        ts = frame["ts"]
        if ts.dt.tz is None:
            ts = ts.dt.tz_localize("UTC")
        frame["ts"] = ts.dt.tz_convert("UTC").dt.as_unit("ns")
    return frame


def finish(frame: pd.DataFrame | None, columns) -> pd.DataFrame:
    """A read result in the model layout: columns in order, UTC ns times, derived delta."""
    if frame is None or len(frame) == 0:
        return empty_frame(columns)
    frame = _ts_ns(frame)
    if "delta" in columns:
        frame["delta"] = frame["ask_volume"] - frame["bid_volume"]
    dtypes = {"side": "int8", "tick": "int64", "trades": "int64", "trade_id": "int64"}
    for c, dt in dtypes.items():
        if c in frame:
            frame[c] = frame[c].astype(dt)
    return frame[list(columns)].reset_index(drop=True)


def bounds(start, end) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """A read range as UTC timestamps (either side may be None)."""
    def one(v):
        if v is None:
            return None
        try:
            return to_utc([v])[0]
        except (ValueError, TypeError, OverflowError):
            raise ModelError(f"time {v!r} not understood: use ISO 8601, "
                             "e.g. 2026-01-06 or 2026-01-06T14:30Z") from None
    s, e = one(start), one(end)
    if s is not None and e is not None and e < s:
        raise ModelError(f"time range: end {e} is before start {s}")
    return s, e


LAYOUTS = {
    "trades": TRADE_COLUMNS, "bars": BAR_COLUMNS, "footprint": FOOTPRINT_COLUMNS,
    "depth": DEPTH_COLUMNS, "liquidations": LIQUIDATION_COLUMNS,
}
