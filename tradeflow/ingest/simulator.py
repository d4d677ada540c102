"""A deterministic market simulator: trades, book depth and liquidations that look like a market.

Same seed and arguments give the same output however the history is chunked, because nothing is
carried from one call to the next:

* time is cut into fixed ten-minute *blocks* counted from the UTC epoch; each block draws from its
  own random stream, keyed by ``(seed, symbol, block index)``;
* the price is pinned at every minute boundary to an *anchor* that depends on the minute alone: a
  daily anchor (a triangular moving average of per-day shocks: a random walk that slowly forgets,
  so it needs no origin and stays around ``start_price``) and, between two daily anchors, a
  Brownian bridge in activity time over the day's minutes;
* inside a minute, trades arrive as a Hawkes cluster process (immigrants plus bursts), aggressor
  sides come in Markov runs leaning towards the minute's move, each trade pushes the price its
  way, and the path is bridged onto the next minute's anchor;
* book snapshot sizes come from a stateless hash of (seed, level, time);
* trade ids are ``block index * 2**24 + ordinal``: strictly increasing over the whole simulation.

Public API: :class:`SimBatch`, :class:`MarketSimulator` (``history``, ``generate``, ``stream``,
``next_open``).
"""
from __future__ import annotations

import asyncio
import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import AsyncIterator, Iterator

import numpy as np
import pandas as pd

from tradeflow.model import Instrument, ns_to_utc

__all__ = ["SimBatch", "MarketSimulator", "default_start_price"]

MINUTE_NS = 60_000_000_000
MINUTES_PER_DAY = 1440
BLOCK_MINUTES = 10  # divides a day, so a block never straddles two days
BLOCK_NS = BLOCK_MINUTES * MINUTE_NS
ID_STRIDE = 1 << 24  # trade ids: block index * ID_STRIDE + ordinal within the block

# Random-stream tags: each (tag, index) pair seeds its own independent stream.
_S_TRADES, _S_DAY, _S_SHOCK = 1, 2, 3
_MASK64 = (1 << 64) - 1

# --- model parameters (the reasoning is in the docstrings where they are used) ---------------
BRANCHING = 0.55        # Hawkes branching ratio: mean burst 1/(1-0.55) ~ 2.2 events
BURST_TAU = 0.15        # median gap between events of a burst, seconds (log-normal, sd 1.0)
SWEEP_PROB = 0.03       # share of aggressive events that sweep several levels at one timestamp
SWEEP_EXTRA_P = 0.4     # extra prints of a sweep ~ Geometric(0.4): 2.5 more on average
RUN_LENGTH = 3.0        # mean run of same-side aggressors before leaning (lag-1 autocorr ~ 1/3)
RUN_BIAS_MAX = 0.6      # how far the buy/sell mix may lean towards the minute's move
IMPACT = 0.6            # correlation of an event's price step with its side
MOVE_SHARE = (0.05, 0.35)  # bounds on the share of events that move the price
ACTIVITY_SD = 0.4       # sd of the log activity factor (volume and volatility clustering)
ACTIVITY_MEMORY = 30.0  # its AR(1) memory, minutes
CLOSED_VAR = 2e-5       # share of a day's variance per closed minute: gaps at the reopen
ANCHOR_MEMORY = 64      # days over which a daily shock fades (level sd ~ 4.6 daily sd)
DEPTH_WALL_PERIOD = 300.0  # seconds a resting-size "wall" at a level lasts before it is redrawn
FAR_SPAN = 0.002        # the far levels reach this share of the start price beyond the touch band
SERVED_FAR_LEVELS = 10  # far levels a side the desk's simulated feeds show (the heatmap's depth)


@dataclass
class SimBatch:
    """Simulated market data for the time range ``[start, end)``."""

    trades: pd.DataFrame        # model trade layout, sorted by ts
    depth: pd.DataFrame         # depth layout: a snapshot of N levels a side every interval
    liquidations: pd.DataFrame  # liquidation layout (empty for non-crypto)
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None


@dataclass(frozen=True)
class _Profile:
    """What differs between asset classes: volatility, size units and book depth."""

    daily_vol: float      # sd of a day's log return
    lot: float            # size increment
    size_median: float    # median trade size, in lots
    size_sigma: float     # log-normal spread of trade sizes
    block_prob: float     # chance that a print is a block trade
    block_lots: float     # scale of block trades, in lots (Pareto tail)
    depth_lots: float     # resting size at the touch, in lots
    quantum_ns: int       # timestamp resolution of the venue
    around_the_clock: bool
    liquidations: bool


_VOL = {"crypto": 0.025, "fx": 0.006, "equity": 0.015, "option": 0.03}  # daily sd
_START_PRICES = (  # symbol prefix -> a sensible level (futures roots and crypto bases)
    ("BTC", 60000.0), ("XBT", 60000.0), ("ETH", 3000.0), ("SOL", 150.0), ("MNQ", 18000.0),
    ("MES", 5000.0), ("RTY", 2000.0), ("NQ", 18000.0), ("ES", 5000.0), ("YM", 39000.0),
    ("CL", 75.0), ("GC", 2000.0), ("6E", 1.08), ("ZN", 110.0),
)


def _profile(inst: Instrument, price: float) -> _Profile:
    cls = inst.asset_class
    vol = _VOL.get(cls, 0.01)
    if cls == "crypto":
        lot = 10.0 ** math.floor(math.log10(100.0 / price))  # e.g. 0.001 BTC at 60k
        median = max(1.0, 300.0 / price / lot)  # ~$300 median ticket
        return _Profile(vol, lot, median, 1.6, 0.002, 40 * median, 150 * median, 1_000_000,
                        around_the_clock=True, liquidations=True)
    if cls == "equity":
        return _Profile(vol, 1.0, 80.0, 1.2, 0.002, 5000.0, 400.0, 1_000, False, False)
    if cls == "fx":
        return _Profile(vol, 1000.0, 100.0, 1.0, 0.002, 5000.0, 2000.0, 1_000, False, False)
    return _Profile(vol, 1.0, 1.0, 1.1, 0.002, 20.0, 30.0, 1_000, False, False)


def default_start_price(inst: Instrument) -> float:
    """A plausible price level for a symbol: known roots, else 20,000 ticks (fx: 100,000)."""
    sym = inst.symbol.upper()
    for prefix, price in _START_PRICES:
        if sym.startswith(prefix) or (inst.asset_class == "crypto" and prefix in sym):
            return price
    return (100_000 if inst.asset_class == "fx" else 20_000) * inst.tick_size


def _ns(value) -> int:
    """A time (naive taken as UTC) as integer nanoseconds since the epoch."""
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _mix_int(x: int) -> int:
    """splitmix64 finaliser on a Python int."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a stateless hash, so book 'walls' need no carried state."""
    x = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _unit(h: np.ndarray) -> np.ndarray:
    """Hash values as uniforms in (0, 1)."""
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def _seg_cumsum(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each segment (segments given by start index and length)."""
    used = counts > 0  # an empty segment has no start inside the array
    starts, counts = starts[used], counts[used]
    cs = np.cumsum(values)
    base = cs[starts] - values[starts]
    return cs - np.repeat(base, counts)


def _ranks(counts: np.ndarray) -> np.ndarray:
    """Position of each element inside its segment, for segments of the given lengths."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(starts, counts)


# --------------------------------------------------------------------------------------------
# Per-day and per-block state


@dataclass
class _Day:
    """What a UTC day fixes for its minutes: activity, anchors and volatility."""

    lam: np.ndarray     # expected prints per minute (1440)
    anchor: np.ndarray  # price in float ticks at each minute boundary (1441)
    sigma: np.ndarray   # sd of each minute's move, in ticks (1440)
    open: np.ndarray    # the market trades in this minute (1440, bool)


@dataclass
class _Block:
    """Ten minutes of simulated data as arrays (times in absolute ns)."""

    t_ts: np.ndarray
    t_tick: np.ndarray
    t_size: np.ndarray
    t_side: np.ndarray
    t_id: np.ndarray
    s_ts: np.ndarray   # book snapshot times
    s_bid: np.ndarray  # best bid tick at each snapshot
    l_ts: np.ndarray
    l_side: np.ndarray
    l_tick: np.ndarray
    l_size: np.ndarray


def _empty_block() -> _Block:
    i64, f64, i8 = np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int8)
    return _Block(i64, i64, f64, i8, i64, i64, i64, i64, i8, i64, f64)


@dataclass
class _Minutes:
    """The block's minutes as seen from its day (slices of :class:`_Day`)."""

    lam: np.ndarray
    a0: np.ndarray     # anchor at each minute's start (float ticks)
    a1: np.ndarray     # ... and at its end
    sigma: np.ndarray
    open: np.ndarray


@dataclass
class _Events:
    """Aggressive events of a block (an event is one print, or a sweep of several)."""

    t: np.ndarray       # ns since the block start, sorted
    minute: np.ndarray  # minute of the block each event falls in
    counts: np.ndarray  # events per minute
    first: np.ndarray   # index of each minute's first event


class MarketSimulator:
    """Simulated trades, depth snapshots and (crypto) liquidations for one instrument.

    ``start_price`` is the level the price wanders around (within a few daily standard
    deviations); ``trades_per_day`` is the expected count on a typical trading day. A book
    snapshot holds ``depth_levels`` a side at every tick from the touch, and ``far_levels`` a
    side beyond them on a coarser grid reaching ``FAR_SPAN`` of the start price.
    ``daily_cycle=False`` weighs every open minute the same (no intraday or weekend rhythm; the
    minute-to-minute busy and quiet spells stay): a market whose activity does not trend, for
    load and memory measurements.
    """

    def __init__(self, instrument: Instrument, seed: int = 0, start_price: float | None = None,
                 trades_per_day: int = 200_000, depth_interval: str = "1s", depth_levels: int = 20,
                 far_levels: int = 0, daily_cycle: bool = True):
        if int(seed) < 0:
            raise ValueError(f"simulator: seed must be a non-negative integer, got {seed!r}")
        if not trades_per_day > 0:
            raise ValueError(f"simulator: trades_per_day must be positive, got {trades_per_day!r}")
        interval = pd.Timedelta(depth_interval).value
        if interval <= 0:
            raise ValueError(f"simulator: depth_interval must be a positive duration such as "
                             f"'1s' or '250ms', got {depth_interval!r}")
        if int(depth_levels) < 1:
            raise ValueError(f"simulator: depth_levels must be at least 1, got {depth_levels!r}")
        if int(far_levels) < 0:
            raise ValueError(f"simulator: far_levels must be 0 or more, got {far_levels!r}")
        self.instrument = instrument
        self.seed = int(seed)
        self.start_price = float(start_price) if start_price else default_start_price(instrument)
        if not (math.isfinite(self.start_price) and self.start_price > 10 * instrument.tick_size):
            raise ValueError(f"simulator: start price {self.start_price!r} must be at least ten "
                             f"ticks ({instrument.tick_size}) above zero")
        self.trades_per_day = float(trades_per_day)
        self.depth_interval_ns = int(interval)
        self.depth_levels = int(depth_levels)
        self.far_levels = int(far_levels)
        self.daily_cycle = bool(daily_cycle)
        # far levels sit on a fixed grid of prices, so their walls stay put as the price moves
        self.far_step = max(1, round(self.start_price * FAR_SPAN / max(self.far_levels, 1)
                                     / instrument.tick_size))
        self.profile = _profile(instrument, self.start_price)
        self._symkey = zlib.crc32(instrument.symbol.encode())
        self._cursor: int | None = None  # where stream() continues: end of the last range served
        self._days: OrderedDict[int, _Day] = OrderedDict()
        self._blocks: OrderedDict[int, _Block] = OrderedDict()
        self._shocks: dict[int, float] = {}
        self._norm = self._typical_day_weight()

    # ---------------------------------------------------------------------------- public API

    def history(self, start, end, chunk: str = "1h") -> Iterator[SimBatch]:
        """Batches covering ``[start, end)`` in time order: ``[start, start + chunk)``, ... .

        Every chunk yields a batch, empty or not (a closed market gives empty frames).
        """
        t0, t1 = _ns(start), _ns(end)
        step = pd.Timedelta(chunk).value
        if step <= 0:
            raise ValueError(f"simulator: chunk must be a positive duration, got {chunk!r}")
        while t0 < t1:
            t = min(t0 + step, t1)
            batch = self._range(t0, t)
            self._cursor = t
            yield batch
            t0 = t

    def generate(self, start, end) -> SimBatch:
        """The whole range ``[start, end)`` as one batch."""
        t0 = _ns(start)
        t1 = max(t0, _ns(end))
        batch = self._range(t0, t1)
        self._cursor = t1
        return batch

    async def stream(self, speed: float = 1.0, batch_interval: float = 0.25
                     ) -> AsyncIterator[SimBatch]:
        """Live batches every ``batch_interval`` wall seconds, simulated ``speed`` times real time.

        Continues from the end of the last history()/generate() range, else from now (UTC).
        Batches are contiguous (``end`` of one is ``start`` of the next) and may be empty.
        """
        if not (speed > 0 and batch_interval > 0):
            raise ValueError("simulator: speed and batch_interval must be positive")
        loop = asyncio.get_running_loop()
        cursor = self._cursor if self._cursor is not None else pd.Timestamp.now("UTC").value
        sim0, wall0, n = cursor, loop.time(), 0
        while True:
            n += 1
            # Sleep to the n-th tick of a fixed wall schedule so generation time does not drift.
            await asyncio.sleep(max(0.0, wall0 + n * batch_interval - loop.time()))
            target = sim0 + int((loop.time() - wall0) * speed * 1e9)
            if target <= cursor:
                continue
            batch = self._range(cursor, target)
            cursor = self._cursor = target
            yield batch

    def next_open(self, at) -> pd.Timestamp | None:
        """The first minute at or after ``at`` in which this market trades (``at``'s own minute
        when it is open), or None when it stays closed for the next two weeks."""
        t = _ns(at)
        minute = t // MINUTE_NS
        day0 = minute // MINUTES_PER_DAY
        w = self._minute_weights(day0, 15).ravel()[minute - day0 * MINUTES_PER_DAY:]
        open_ = np.flatnonzero(w > 0)
        if not len(open_):
            return None
        return ns_to_utc(max(t, int(minute + open_[0]) * MINUTE_NS))

    # ---------------------------------------------------------------------------- assembly

    def _range(self, t0: int, t1: int) -> SimBatch:
        """Everything in ``[t0, t1)`` (ns), cut from whole blocks."""
        blocks = [self._block(b) for b in range(t0 // BLOCK_NS, -(-t1 // BLOCK_NS))]
        blocks = blocks or [_empty_block()]

        def cut(*names):
            ts = np.concatenate([getattr(b, names[0]) for b in blocks])
            m = (ts >= t0) & (ts < t1)
            return [ts[m]] + [np.concatenate([getattr(b, n) for b in blocks])[m] for n in names[1:]]

        inst = self.instrument
        ts, tick, size, side, ids = cut("t_ts", "t_tick", "t_size", "t_side", "t_id")
        trades = _frame({"ts": ns_to_utc(ts), "price": inst.to_price(tick), "size": size,
                         "side": side, "trade_id": ids})
        depth = self._depth_rows(*cut("s_ts", "s_bid"))
        ts, side, tick, size = cut("l_ts", "l_side", "l_tick", "l_size")
        liq = _frame({"ts": ns_to_utc(ts), "side": side, "price": inst.to_price(tick),
                      "size": size})
        return SimBatch(trades, depth, liq, ns_to_utc(t0), ns_to_utc(t1))

    def _rng(self, tag: int, index: int) -> np.random.Generator:
        """An independent stream for (seed, symbol, tag, index) (SeedSequence mixes the key)."""
        ss = np.random.SeedSequence([self.seed, self._symkey, tag, index & _MASK64])
        return np.random.Generator(np.random.PCG64(ss))

    # ---------------------------------------------------------------------------- the day

    def _minute_weights(self, day0: int, ndays: int) -> np.ndarray:
        """Relative activity of each minute of UTC days ``day0 ..`` (0 where closed)."""
        w = self._cycle_weights(day0, ndays)
        return w if self.daily_cycle else (w > 0).astype(np.float64)

    def _cycle_weights(self, day0: int, ndays: int) -> np.ndarray:
        """:meth:`_minute_weights` with the day's and the week's rhythm."""
        mins = (day0 * MINUTES_PER_DAY + np.arange(ndays * MINUTES_PER_DAY)).astype(np.int64)
        if self.profile.around_the_clock:
            # Crypto: a mild daily cycle peaking in the EU/US overlap, quieter weekends.
            hour = (mins % MINUTES_PER_DAY) / 60.0
            w = 1.0 + 0.3 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
            w *= np.where(_weekday(mins) >= 5, 0.75, 1.0)
            return w.reshape(ndays, MINUTES_PER_DAY)
        sess = self.instrument.session
        idx = ns_to_utc(mins * MINUTE_NS)
        # Local wall-clock minutes since the epoch; one tz conversion, then integer arithmetic.
        local = idx.tz_convert(sess.timezone).tz_localize(None).asi8 // MINUTE_NS
        shift = int(sess.day_shift.total_seconds()) // 60
        trading_day_open = _weekday(local + shift) < 5  # no trading dates on weekends
        w = self._session_curve((local % MINUTES_PER_DAY).astype(np.float64)) * trading_day_open
        return w.reshape(ndays, MINUTES_PER_DAY)

    def _session_curve(self, m: np.ndarray) -> np.ndarray:
        """Activity by local minute of day: U-shaped regular hours, thin extended hours."""
        sess = self.instrument.session

        def minute(t, default):
            return default if t is None else t.hour * 60 + t.minute

        rs, re_ = minute(sess.rth_start, 0), minute(sess.rth_end, MINUTES_PER_DAY)
        rth_len = (re_ - rs) % MINUTES_PER_DAY or MINUTES_PER_DAY
        if sess.eth_start is None and rth_len == MINUTES_PER_DAY:
            # Around-the-clock session (fx, the default): a mild cycle peaking mid-afternoon.
            return 1.0 + 0.3 * np.cos(2 * np.pi * (m / 60.0 - 14.0) / 24.0)
        x = (m - rs) % MINUTES_PER_DAY  # minutes since the regular open
        in_rth = x < rth_len
        # Open and close draw the crowd: bursts decaying over ~25 minutes from each end.
        rth = 1.0 + 2.5 * np.exp(-x / 25.0) + 2.5 * np.exp(-(rth_len - 1 - x) / 25.0)
        w = np.where(in_rth, rth, 0.0)
        if sess.eth_start is not None:
            es, ee = minute(sess.eth_start, 0), minute(sess.eth_end, MINUTES_PER_DAY)
            eth_len = (ee - es) % MINUTES_PER_DAY or MINUTES_PER_DAY
            in_eth = ((m - es) % MINUTES_PER_DAY < eth_len) & ~in_rth
            before = (rs - m) % MINUTES_PER_DAY  # minutes to the regular open
            after = (m - re_) % MINUTES_PER_DAY  # minutes since the regular close
            # Overnight is quiet; it warms up before the open and trails off after the close.
            eth = 0.12 + 0.3 * np.exp(-before / 30.0) + 0.5 * np.exp(-after / 15.0)
            w = np.where(in_eth, eth, w)
        return w

    def _typical_day_weight(self) -> float:
        """Mean total weight of a trading day (over a reference week), to scale trades_per_day."""
        day0 = pd.Timestamp("2024-01-08", tz="UTC").value // (MINUTE_NS * MINUTES_PER_DAY)
        w = self._minute_weights(day0, 7)
        open_days = 7 if self.profile.around_the_clock else 5
        return float(w.sum()) / open_days or 1.0

    def _day_variance(self, w: np.ndarray) -> np.ndarray:
        """Expected share of a typical day's variance per minute (with a floor while closed)."""
        return w / self._norm + CLOSED_VAR

    def _shock(self, d: int) -> float:
        """The log-price shock of UTC day ``d``, scaled by how much the day trades."""
        if d not in self._shocks:
            lo = d
            while lo - 1 not in self._shocks and lo > d - 2 * ANCHOR_MEMORY:
                lo -= 1
            # Compute the missing run of days in one vectorised pass (tz conversion is the cost).
            days = range(lo, d + 1)
            var = self._day_variance(self._minute_weights(lo, len(days))).sum(axis=1)
            for j, v in zip(days, var):
                if j not in self._shocks:
                    z = self._rng(_S_SHOCK, j).standard_normal()
                    self._shocks[j] = self.profile.daily_vol * math.sqrt(v) * z
        return self._shocks[d]

    def _log_anchor(self, d: int) -> float:
        """Log price at 00:00 UTC of day ``d``: shocks of the last days, tapering off linearly.

        A triangular moving average keeps each day's move ~ its own shock (plus a 1/L pull back)
        while the level stays stationary around start_price, and needs no origin or carried state.
        """
        L = ANCHOR_MEMORY
        total = sum((1.0 - i / L) * self._shock(d - 1 - i) for i in range(L))
        return math.log(self.start_price) + total

    def _day(self, d: int) -> _Day:
        if d in self._days:
            self._days.move_to_end(d)
            return self._days[d]
        day = self._make_day(d)
        self._days[d] = day
        if len(self._days) > 4:
            self._days.popitem(last=False)
        return day

    def _make_day(self, d: int) -> _Day:
        rng = self._rng(_S_DAY, d)
        w = self._minute_weights(d, 1)[0]
        act = self._activity(rng)
        share = w * act / self._norm  # of a typical day's trades and variance
        v = share + CLOSED_VAR
        # Brownian bridge in variance time from today's anchor to tomorrow's.
        lo, hi = self._log_anchor(d), self._log_anchor(d + 1)
        steps = self.profile.daily_vol * np.sqrt(v) * rng.standard_normal(MINUTES_PER_DAY)
        x = np.concatenate([[0.0], np.cumsum(steps)])
        vc = np.concatenate([[0.0], np.cumsum(v)])
        logp = lo + x - vc / vc[-1] * (x[-1] - (hi - lo))
        anchor = np.exp(logp) / self.instrument.tick_size
        sigma = self.profile.daily_vol * np.sqrt(v) * anchor[:-1]
        return _Day(lam=self.trades_per_day * share, anchor=anchor, sigma=sigma, open=w > 0)

    @staticmethod
    def _activity(rng: np.random.Generator) -> np.ndarray:
        """Log-normal AR(1) activity factor per minute, mean 1: busy and quiet spells."""
        phi = math.exp(-1.0 / ACTIVITY_MEMORY)
        eps = rng.standard_normal(MINUTES_PER_DAY) * ACTIVITY_SD * math.sqrt(1 - phi * phi)
        y = np.empty(MINUTES_PER_DAY)
        prev = rng.standard_normal() * ACTIVITY_SD
        for i in range(MINUTES_PER_DAY):
            prev = phi * prev + eps[i]
            y[i] = prev
        return np.exp(y - ACTIVITY_SD ** 2 / 2)

    # ---------------------------------------------------------------------------- the block

    def _block(self, b: int) -> _Block:
        if b in self._blocks:
            return self._blocks[b]
        block = self._make_block(b)
        self._blocks[b] = block
        if len(self._blocks) > 4:  # stream() cuts many small ranges out of one block
            self._blocks.popitem(last=False)
        return block

    def _minutes(self, b: int) -> _Minutes:
        d, i = divmod(b * BLOCK_MINUTES, MINUTES_PER_DAY)
        day = self._day(d)
        j = slice(i, i + BLOCK_MINUTES)
        return _Minutes(day.lam[j], day.anchor[i:i + BLOCK_MINUTES],
                        day.anchor[i + 1:i + 1 + BLOCK_MINUTES], day.sigma[j], day.open[j])

    def _make_block(self, b: int) -> _Block:
        mins = self._minutes(b)
        block = _empty_block()
        if not mins.open.any():
            return block  # closed: no trades, no book
        t0 = b * BLOCK_NS
        rng = self._rng(_S_TRADES, b)
        ev = self._arrivals(rng, mins.lam)
        n = len(ev.t)
        # Per-event step sd, so that a minute's own noise matches the minute's volatility. Only
        # a share of the events move the price (by larger jumps): many prints share a level.
        s = 0.9 * mins.sigma / np.sqrt(np.maximum(ev.counts, 1))
        mover = np.clip(s * s, MOVE_SHARE[0], MOVE_SHARE[1])
        drift = np.sqrt(mover) * s * IMPACT  # expected step of a buy (minus: of a sell)
        lean = np.clip((mins.a1 - mins.a0) / (np.maximum(ev.counts, 1) * drift + 1e-12),
                       -RUN_BIAS_MAX, RUN_BIAS_MAX)
        side = self._sides(rng, ev.minute, lean)
        prints = np.ones(n, np.int64)
        sweep = rng.random(n) < SWEEP_PROB
        prints[sweep] += rng.geometric(SWEEP_EXTRA_P, int(sweep.sum()))
        reach = rng.uniform(0.4, 1.0, n)  # levels a sweep walks per print
        swept = np.floor((prints - 1) * reach).astype(np.int64)
        before, after = self._price_path(rng, ev, side, swept, s, mover, mins)
        # Expand events into prints: buyers lift the ask (bid + 1), sweeps walk the book.
        e = np.repeat(np.arange(n), prints)
        sd = side[e].astype(np.int64)
        level = np.floor(_ranks(prints) * reach[e]).astype(np.int64)
        bid = np.maximum(np.rint(before), 1).astype(np.int64)
        if len(e) >= ID_STRIDE:
            raise ValueError("simulator: too many trades in ten minutes; lower trades_per_day")
        block.t_ts = t0 + ev.t[e]
        block.t_tick = bid[e] + (sd > 0) + sd * level
        block.t_size = self._sizes(rng, prints[e] > 1)
        block.t_side = side[e]
        block.t_id = b * ID_STRIDE + np.arange(len(e), dtype=np.int64)
        self._add_snapshots(block, t0, ev, after, mins)
        if self.profile.liquidations:  # drawn after the trades, so they leave the trades alone
            self._add_liquidations(block, rng, t0, mins)
        return block

    def _arrivals(self, rng: np.random.Generator, lam: np.ndarray) -> _Events:
        """Event times: a Hawkes process in its cluster form, minute by minute.

        Immigrants arrive as Poisson at the minute's rate; each brings a burst of
        Geometric(1 - BRANCHING) events spaced by exponential gaps on a burst-specific
        (log-normal) time scale: self-excitation without a sequential loop. Bursts are cut at
        the end of their minute.
        """
        per_event = 1.0 + SWEEP_PROB / SWEEP_EXTRA_P  # prints per event
        parents = rng.poisson(lam / per_event * (1.0 - BRANCHING))
        p_min = np.repeat(np.arange(BLOCK_MINUTES), parents)
        sizes = rng.geometric(1.0 - BRANCHING, len(p_min))
        tau = BURST_TAU * np.exp(rng.standard_normal(len(p_min)))
        start = rng.random(len(p_min)) * 60.0
        cid = np.repeat(np.arange(len(p_min)), sizes)
        gaps = rng.exponential(1.0, len(cid)) * tau[cid]
        first = np.cumsum(sizes) - sizes
        gaps[first] = 0.0
        t = start[cid] + _seg_cumsum(gaps, first, sizes)
        keep = t < 60.0
        t = np.sort(t[keep] + 60.0 * p_min[cid][keep])
        q = self.profile.quantum_ns  # the venue's clock resolution
        t_ns = (np.floor(t * (1e9 / q)) * q).astype(np.int64)
        minute = (t_ns // MINUTE_NS).astype(np.int64)
        counts = np.bincount(minute, minlength=BLOCK_MINUTES)
        return _Events(t_ns, minute, counts, np.cumsum(counts) - counts)

    @staticmethod
    def _sides(rng: np.random.Generator, minute: np.ndarray, lean: np.ndarray) -> np.ndarray:
        """Aggressor sides: alternating Markov runs, some flipped towards the minute's lean.

        Flipping a run against the lean with probability |lean| makes the buy share
        (1 + lean) / 2 and merges runs, so aggression is persistent and goes with the price.
        """
        n = len(minute)
        if n == 0:
            return np.empty(0, np.int8)
        switch = rng.random(n) < 1.0 / RUN_LENGTH
        switch[0] = True
        run = np.cumsum(switch) - 1
        nruns = int(run[-1]) + 1
        sign = np.where(np.arange(nruns) % 2 == 0, 1, -1) * (1 if rng.random() < 0.5 else -1)
        f = lean[minute[switch]]
        flip = (rng.random(nruns) < np.abs(f)) & (sign != np.sign(f))
        sign[flip] *= -1
        return sign[run].astype(np.int8)

    @staticmethod
    def _price_path(rng, ev: _Events, side, swept, s, mover, mins: _Minutes):
        """Bid in float ticks before and after each event.

        A share ``mover`` of the events move the price, by a jump of sd ``s / sqrt(mover)`` that
        leans the event's way (impact) and is rounded stochastically to whole ticks; a sweep moves
        it by the levels it took. Per minute, the moves are then stretched onto the next minute's
        anchor (the correction rides on the moving events, so still prints stay on their level).
        """
        n, m = len(side), ev.minute
        moving = (rng.random(n) < mover[m]) | (swept > 0)
        jump = (s / np.sqrt(mover))[m]
        raw = jump * (IMPACT * side + math.sqrt(1 - IMPACT ** 2) * rng.standard_normal(n))
        steps = np.where(moving, np.floor(raw + rng.random(n)), 0.0) + side * swept
        if n == 0:
            return steps, steps
        # Minutes where nothing moved take their correction evenly over all their events.
        weight = moving.astype(np.float64)
        still = np.bincount(m, weights=weight, minlength=BLOCK_MINUTES) == 0
        weight[still[m]] = 1.0
        w_incl = _seg_cumsum(weight, ev.first, ev.counts)
        incl = _seg_cumsum(steps, ev.first, ev.counts)
        total = np.bincount(m, weights=steps, minlength=BLOCK_MINUTES)
        w_total = np.bincount(m, weights=weight, minlength=BLOCK_MINUTES)
        corr = (mins.a1 - mins.a0 - total) / np.maximum(w_total, 1e-12)
        before = mins.a0[m] + incl - steps + corr[m] * (w_incl - weight)
        after = mins.a0[m] + incl + corr[m] * w_incl
        return before, after

    def _sizes(self, rng: np.random.Generator, in_sweep: np.ndarray) -> np.ndarray:
        """Trade sizes: log-normal lots (mostly small), Pareto-tailed blocks, larger sweeps."""
        p, n = self.profile, len(in_sweep)
        lots = np.ceil(np.exp(rng.normal(math.log(p.size_median), p.size_sigma, n)))
        lots[in_sweep] = np.ceil(lots[in_sweep] * 3.0)
        block = rng.random(n) < p.block_prob
        # Pareto tail, capped: the largest print is 50 times the usual block.
        tail = np.minimum(1.0 + rng.pareto(1.4, int(block.sum())), 50.0)
        lots[block] = np.ceil(p.block_lots * tail)
        return self._lots_to_size(lots)

    def _lots_to_size(self, lots: np.ndarray) -> np.ndarray:
        """Whole lots as sizes, rounded to the lot's decimals so they print cleanly."""
        lot = self.profile.lot
        if lot >= 1:
            return lots * lot  # whole numbers: exact already
        return np.round(lots * lot, -int(math.floor(math.log10(lot))))

    def _add_snapshots(self, block: _Block, t0: int, ev: _Events, after, mins: _Minutes) -> None:
        """Times of the book snapshots (multiples of the interval, open minutes) and the bid."""
        step = self.depth_interval_ns
        first = -(-t0 // step) * step
        times = np.arange(first, t0 + BLOCK_NS, step, dtype=np.int64)
        minute = (times - t0) // MINUTE_NS
        open_ = mins.open[minute]
        times, minute = times[open_], minute[open_]
        # The book at t reflects every event up to and including t.
        seen = np.searchsorted(ev.t, times - t0, side="right")
        mine = seen - ev.first[minute] > 0  # some event of this minute already happened
        state = mins.a0[minute]
        state[mine] = after[seen[mine] - 1]
        block.s_ts = times
        block.s_bid = np.maximum(np.rint(state), 1).astype(np.int64)

    def _depth_rows(self, times: np.ndarray, bid: np.ndarray) -> pd.DataFrame:
        """The depth frame: N levels a side around each snapshot's touch (1-tick spread), then
        ``far_levels`` a side every ``far_step`` ticks beyond them (a sparse book at a distance,
        which the heatmap shows as liquidity away from the price).

        Sizes grow away from the touch, with persistent walls and per-snapshot noise that come
        from a stateless hash of (seed, level, time), so they cannot depend on chunking.
        """
        L, F, n = self.depth_levels, self.far_levels, len(times)
        offs = np.concatenate([np.arange(-(L - 1), 1), np.arange(1, L + 1)])  # bids, then asks
        dist = np.concatenate([np.arange(L - 1, -1, -1), np.arange(L)])  # levels from the touch
        sides = np.concatenate([np.full(L, -1, np.int8), np.full(L, 1, np.int8)])
        ticks = bid[:, None] + offs[None, :]
        shape = np.broadcast_to(self.profile.depth_lots * (1.0 + dist) ** 0.6, ticks.shape)
        if F:
            step, k = self.far_step, np.arange(F)
            below = (bid - L) // step * step  # the first grid price under the near bids
            above = -(-(bid + L + 1) // step) * step  # and over the near asks
            far = np.concatenate([below[:, None] - step * k[::-1], above[:, None] + step * k],
                                 axis=1)
            # in price order, as the near levels: far bids, near bids, near asks, far asks
            ticks = np.concatenate([far[:, :F], ticks, far[:, F:]], axis=1)
            sides = np.concatenate([np.full(F, -1, np.int8), sides, np.full(F, 1, np.int8)])
            far_lots = np.full((n, F), 2.0 * self.profile.depth_lots * (1.0 + L) ** 0.6)
            shape = np.concatenate([far_lots, shape, far_lots], axis=1)
        width = ticks.shape[1]
        ticks = ticks.ravel()
        ts = np.repeat(times, width)
        lots = np.maximum(1.0, np.rint(shape.ravel() * self._walls(ticks, ts)))
        keep = ticks > 0
        side = np.tile(sides, n)
        if not keep.all():
            ticks, ts, side, lots = ticks[keep], ts[keep], side[keep], lots[keep]
        return _frame({"ts": ns_to_utc(ts), "side": side, "tick": ticks,
                       "size": self._lots_to_size(lots)})

    def _walls(self, ticks: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Size factor per row: a per-level wall that lasts a few minutes, times some noise.

        Each level redraws its factor every DEPTH_WALL_PERIOD at its own phase, so liquidity
        lines persist as the price moves through them and do not all change at once.
        """
        salt = np.uint64(_mix_int(self.seed ^ (self._symkey << 20)))
        period = np.uint64(int(DEPTH_WALL_PERIOD * 1e9))
        level = _mix(ticks.view(np.uint64) ^ salt)
        window = (ts.view(np.uint64) + level % period) // period
        h = _mix(level ^ (window * np.uint64(0x9E3779B97F4A7C15)))
        wall = np.exp(1.2 * (_unit(h) - 0.5))  # log-uniform, sd ~0.35
        wall[(h & np.uint64(0xFFFF)) < 2000] *= 4.0  # ~3% of levels hold a big resting order
        noise = np.exp(0.8 * (_unit(_mix(h ^ ts.view(np.uint64))) - 0.5))
        return wall * noise

    def _add_liquidations(self, block: _Block, rng: np.random.Generator, t0: int,
                          mins: _Minutes) -> None:
        """Forced orders: a trickle, and a flood when a minute moves fast.

        Longs are liquidated (forced sells) into drops and shorts (forced buys) into rallies,
        mostly; each lands on an aggressive print of its side in its minute, so cascades cluster
        with the bursts that moved the price.
        """
        if len(block.t_ts) == 0:
            return
        move = mins.a1 - mins.a0
        ref = self.profile.daily_vol * mins.a0 / math.sqrt(MINUTES_PER_DAY)  # a typical minute
        r = np.abs(move) / np.maximum(ref, 1e-9)
        counts = rng.poisson((0.02 + 0.25 * r * r) * mins.open)
        minute = np.repeat(np.arange(BLOCK_MINUTES), counts)
        way = np.where(move[minute] > 0, 1, -1)
        side = np.where(rng.random(len(minute)) < 0.85, way, -way)
        # Group the prints by (minute, side) and draw one print of the matching group.
        p_min = (block.t_ts - t0) // MINUTE_NS
        key = p_min * 2 + (block.t_side > 0)
        order = np.argsort(key, kind="stable")
        size = np.bincount(key, minlength=2 * BLOCK_MINUTES)
        start = np.cumsum(size) - size
        want = minute * 2 + (side > 0)
        ok = size[want] > 0
        want, side = want[ok], side[ok]
        pick = order[start[want] + (rng.random(len(want)) * size[want]).astype(np.int64)]
        by_time = np.argsort(pick, kind="stable")
        pick, side = pick[by_time], side[by_time]
        notional = 8000.0 * np.exp(rng.normal(0.0, 1.5, len(pick)))  # forced orders are larger
        price = block.t_tick[pick] * self.instrument.tick_size
        lots = np.maximum(1.0, np.ceil(notional / price / self.profile.lot))
        block.l_ts, block.l_side = block.t_ts[pick], side.astype(np.int8)
        block.l_tick, block.l_size = block.t_tick[pick], self._lots_to_size(lots)


def _weekday(minutes: np.ndarray) -> np.ndarray:
    """Day of week (Monday 0) of minutes since the epoch (1970-01-01 was a Thursday)."""
    return (minutes // MINUTES_PER_DAY + 3) % 7


def _frame(columns: dict) -> pd.DataFrame:
    """A frame over freshly made arrays, without copying them."""
    return pd.DataFrame(columns, copy=False)
