"""Shared helpers of the benchmarks: timing, market-like synthetic trades, throwaway PostgreSQL
clusters, phase timers (where a write spends its time) and the result table.

Machines are noisy, so a benchmark never reports an absolute figure alone: it measures a baseline
doing comparable bare work in the same run, interleaved with the subject (A B A B ...), and
reports the ratio.
"""
from __future__ import annotations

import asyncio
import atexit
import functools
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tradeflow.model import Instrument

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# --------------------------------------------------------------------------------------------
# Timing


@dataclass
class Timing:
    """Wall times (seconds) of the repeats of one measurement."""

    times: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def add(self, seconds: float) -> None:
        self.times.append(seconds)

    def summary(self) -> dict:
        return {"best_s": self.best, "median_s": self.median, "repeats": len(self.times),
                "times_s": [round(t, 6) for t in self.times]}


def clock(fn, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def measure(fn, repeat: int = 5, warmup: int = 1, setup=None, teardown=None) -> Timing:
    """Time ``fn`` ``repeat`` times after ``warmup`` untimed calls.

    With ``setup``, each call is ``fn(setup())`` and only ``fn`` is timed (e.g. a fresh file per
    repeat); ``teardown(state)`` runs untimed after each call.
    """
    timing = Timing()
    for i in range(warmup + repeat):
        state = setup() if setup else None
        t0 = time.perf_counter()
        fn(state) if setup else fn()
        dt = time.perf_counter() - t0
        if teardown:
            teardown(state)
        if i >= warmup:
            timing.add(dt)
    return timing


def compare(subject, baseline, repeat: int = 3, warmup: int = 1, setup_subject=None,
            setup_baseline=None, teardown=None) -> tuple[Timing, Timing]:
    """Time ``subject`` and ``baseline`` alternately (B S B S ...), so that drift of the machine
    (other jobs, thermal, caches) hits both alike. Setups/teardown as in :func:`measure`."""
    ts, tb = Timing(), Timing()
    for i in range(warmup + repeat):
        for fn, setup, timing in ((baseline, setup_baseline, tb), (subject, setup_subject, ts)):
            state = setup() if setup else None
            t0 = time.perf_counter()
            fn(state) if setup else fn()
            dt = time.perf_counter() - t0
            if teardown:
                teardown(state)
            if i >= warmup:
                timing.add(dt)
    return ts, tb


def compare_async(loop: asyncio.AbstractEventLoop, subject, baseline, repeat: int = 30,
                  warmup: int = 3) -> tuple[Timing, Timing]:
    """:func:`compare` for coroutine functions, run on ``loop``."""
    def run(fn):
        return lambda: loop.run_until_complete(fn())
    return compare(run(subject), run(baseline), repeat=repeat, warmup=warmup)


# --------------------------------------------------------------------------------------------
# Synthetic trades that look like a market


BENCH_INSTRUMENT = Instrument("BENCH", 0.25, exchange="SIM", asset_class="future",
                              point_value=50.0)


def _intraday_weights(minutes_per_day: int = 1440) -> np.ndarray:
    """Relative trade intensity by minute of a UTC day: a quiet Asian night, a European morning
    and a busy US session with its open and close peaks."""
    h = np.arange(minutes_per_day) / 60.0
    w = 0.35 + 0.6 * np.exp(-((h - 8.5) / 2.5) ** 2)  # Europe
    w += 1.0 * np.exp(-((h - 17.0) / 3.0) ** 2)  # US day
    w += 1.6 * np.exp(-((h - 14.5) / 0.35) ** 2) + 1.0 * np.exp(-((h - 21.0) / 0.3) ** 2)
    return w


def synthetic_trades(n: int, days: int, start="2024-03-04", instrument: Instrument =
                     BENCH_INSTRUMENT, start_price: float = 5000.0, seed: int = 7) -> pd.DataFrame:
    """``n`` trades (model trade layout) over ``days`` UTC days, made with numpy only.

    What makes it look like a market rather than noise:

    * intensity follows the time of day (see ``_intraday_weights``) times a persistent
      (AR(1) in logs) activity factor per minute, so busy minutes cluster;
    * about 30% of trades are the later fills of a sweep: same microsecond and aggressor as the
      trade before, walking the book one level in its direction half of the time;
    * buyers print at the ask and sellers one tick below, at the bid (bid-ask bounce), and the
      bid is a random walk whose step probability grows with the minute's activity;
    * aggressor runs (order-flow autocorrelation): the side keeps its sign with probability 0.7;
    * sizes are mostly 1-5 lots with a heavy tail of block trades.

    Times are microseconds (the stores' resolution); ``trade_id`` increases from 1.
    """
    rng = np.random.default_rng(seed)
    minutes = days * 1440
    # activity: time of day x AR(1) log-normal factor
    eps = rng.normal(0.0, 0.25, minutes)
    log_act = np.empty(minutes)
    acc = 0.0
    # AR(1) by a short loop over minutes (28,800 for 20 days: cheap)
    for i in range(minutes):
        acc = 0.9 * acc + eps[i]
        log_act[i] = acc
    act = np.exp(log_act)
    weights = np.tile(_intraday_weights(), days) * act
    counts = rng.multinomial(n, weights / weights.sum())
    minute_of = np.repeat(np.arange(minutes, dtype=np.int64), counts)

    t0 = pd.Timestamp(start, tz="UTC").value // 1000  # microseconds
    us = t0 + minute_of * 60_000_000 + (rng.random(n) * 60_000_000).astype(np.int64)
    us.sort()
    # sweeps: a trade shares the time (and side) of the one before it
    sweep = rng.random(n) < 0.3
    sweep[0] = False
    lead = np.maximum.accumulate(np.where(sweep, 0, np.arange(n)))
    us = us[lead]

    # aggressor runs; sweep fills keep the lead's side
    flip = (rng.random(n) < 0.3) & ~sweep
    flip[0] = True
    sign = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    side = sign[np.maximum.accumulate(np.where(flip, np.arange(n), 0))]

    # the bid: a random walk in ticks, busier minutes move more; sweeps walk the book
    q = np.clip(0.035 * np.sqrt(act[minute_of]), 0.0, 0.3)
    u = rng.random(n)
    step = np.where(u < q, 1, np.where(u < 2 * q, -1, 0)).astype(np.int64)
    step = np.where(sweep, np.where(rng.random(n) < 0.5, side.astype(np.int64), 0), step)
    bid = int(round(start_price / instrument.tick_size)) + np.cumsum(step)
    tick = bid + (side == 1)
    price = instrument.to_price(tick)

    size = rng.geometric(0.45, n).astype("float64")
    block = rng.random(n) < 0.01
    size[block] = np.ceil(rng.lognormal(3.5, 0.8, block.sum()))

    return pd.DataFrame({
        "ts": pd.DatetimeIndex(us.astype("datetime64[us]").astype("datetime64[ns]"), tz="UTC"),
        "price": price.astype("float64"),
        "size": size,
        "side": side,
        "trade_id": np.arange(1, n + 1, dtype=np.int64),
    })


def simulator_trades(n: int, days: int, start="2024-03-04",
                     instrument: Instrument = BENCH_INSTRUMENT, seed: int = 7) -> pd.DataFrame:
    """``n`` trades from ``tradeflow.ingest.simulator.MarketSimulator`` (day after day from
    ``start`` until there are enough; the first ``n`` are kept)."""
    from tradeflow.ingest.simulator import MarketSimulator

    sim = MarketSimulator(instrument, seed)
    parts, have = [], 0
    day = pd.Timestamp(start, tz="UTC")
    for _ in range(max(days, 1) * 50):
        batch = sim.generate(day, day + pd.Timedelta(days=1))
        parts.append(batch.trades)
        have += len(batch.trades)
        day += pd.Timedelta(days=1)
        if have >= n:
            break
    trades = pd.concat(parts, ignore_index=True).iloc[:n]
    return trades.reset_index(drop=True)


def make_trades(source: str, n: int, days: int, **kw) -> pd.DataFrame:
    if source == "simulator":
        return simulator_trades(n, days, **kw)
    return synthetic_trades(n, days, **kw)


def chunks(frame: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """``frame`` cut into frames of ``rows`` rows (copies, index from 0, as a file reader gives)."""
    return [frame.iloc[a:a + rows].reset_index(drop=True) for a in range(0, len(frame), rows)]


# --------------------------------------------------------------------------------------------
# Throwaway PostgreSQL clusters (the test suite's code, tests/pg_server.py)


class PgClusters:
    """A plain PostgreSQL cluster and, when installed, one preloading TimescaleDB.

    ``plain`` / ``timescale`` are ``tests.pg_server.Cluster`` objects or None; ``problems`` says
    why one is missing. Both are stopped (and their directories removed) by :meth:`stop`, which
    also runs at exit.
    """

    def __init__(self, want_timescale: bool = True):
        self.plain = self.timescale = None
        self.problems: dict[str, str] = {}
        self.want_timescale = want_timescale

    def start(self) -> "PgClusters":
        from tests import pg_server

        atexit.register(self.stop)
        try:
            bindir = pg_server.postgres_bindir()
            self.plain = pg_server.Cluster(bindir).start()
        except BaseException as exc:  # pytest.skip/fail raise BaseExceptions
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.problems["postgres"] = f"{type(exc).__name__}: {exc}"
            return self
        if not self.want_timescale:
            return self
        if not pg_server.has_timescaledb(bindir):
            self.problems["timescaledb"] = pg_server.TIMESCALE_HINT
            return self
        try:
            self.timescale = pg_server.start_timescale_cluster(bindir)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.problems["timescaledb"] = f"{type(exc).__name__}: {exc}"
        return self

    def stop(self) -> None:
        for c in (self.plain, self.timescale):
            if c is not None:
                try:
                    c.stop()
                except Exception as exc:  # pragma: no cover - best effort at exit
                    print(f"warning: stopping a PostgreSQL cluster failed: {exc}", file=sys.stderr)
        self.plain = self.timescale = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------------------------
# Phase timers: where a call spends its time, without touching the code under test


class Phases:
    """Accumulates wall time per phase name across calls of wrapped functions.

    ``wrap(owner, name, phase)`` replaces ``owner.name`` (a function or coroutine function; a
    ``phase`` callable receives the call's arguments and returns the phase name, e.g. from the
    SQL text) for the duration of the ``active()`` block. Nested wrapped calls are charged to the
    innermost phase only, so the phases add up to at most the total. Only calls made while
    ``recording`` is true are counted (set it around the timed call, not its setup).
    """

    def __init__(self, recording: bool = True):
        self.recording = recording
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._patches: list[tuple[object, str, object]] = []
        self._stack: list[list[float]] = []  # per active wrapped call: [child seconds]

    def _charge(self, phase: str, dt: float, child: float) -> None:
        if not self.recording:
            return
        self.seconds[phase] = self.seconds.get(phase, 0.0) + dt - child
        self.calls[phase] = self.calls.get(phase, 0) + 1
        if self._stack:
            self._stack[-1][0] += dt

    def wrap(self, owner, name: str, phase) -> bool:
        """Wrap ``owner.name``; False (nothing done) when there is no such attribute, so that a
        benchmark keeps running when the code it looks into is reorganised."""
        original = getattr(owner, name, None)
        if not callable(original):
            return False
        name_of = phase if callable(phase) else (lambda *a, **k: phase)
        phases = self

        if asyncio.iscoroutinefunction(original):
            @functools.wraps(original)
            async def wrapper(*args, **kwargs):
                label = name_of(*args, **kwargs)
                phases._stack.append([0.0])
                t0 = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    dt = time.perf_counter() - t0
                    child = phases._stack.pop()[0]
                    phases._charge(label, dt, child)
        else:
            @functools.wraps(original)
            def wrapper(*args, **kwargs):
                label = name_of(*args, **kwargs)
                phases._stack.append([0.0])
                t0 = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    dt = time.perf_counter() - t0
                    child = phases._stack.pop()[0]
                    phases._charge(label, dt, child)
        self._patches.append((owner, name, original))
        setattr(owner, name, wrapper)
        return True

    @contextmanager
    def active(self):
        try:
            yield self
        finally:
            for owner, name, original in reversed(self._patches):
                setattr(owner, name, original)
            self._patches.clear()

    @contextmanager
    def record(self):
        """Count the wrapped calls made inside this block."""
        self.recording = True
        try:
            yield self
        finally:
            self.recording = False

    def report(self, total: float, title: str) -> list[str]:
        """Lines: each phase's share of ``total`` seconds, biggest first, and the rest."""
        lines = [f"{title} (total {total:.2f} s)"]
        for phase, s in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {phase:<44} {s:8.3f} s  {100 * s / total:5.1f}%  "
                         f"({self.calls[phase]} calls)")
        rest = total - sum(self.seconds.values())
        lines.append(f"    {'(the rest: Python glue, unwrapped calls)':<44} {rest:8.3f} s  "
                     f"{100 * rest / total:5.1f}%")
        return lines

    def as_dict(self, total: float) -> dict:
        return {"total_s": total, **{k: {"seconds": v, "share": v / total, "calls": self.calls[k]}
                                     for k, v in self.seconds.items()}}


def sql_phase(rules: list[tuple[str, str]], default: str = "other SQL"):
    """A ``phase`` callable for :meth:`Phases.wrap` of ``execute(self, sql, ...)``-like methods:
    the first rule whose regex matches the SQL text names the phase."""
    compiled = [(re.compile(rx, re.S | re.I), name) for rx, name in rules]

    def phase(*args, **kwargs):
        sql = next((a for a in args if isinstance(a, str)), kwargs.get("query", ""))
        for rx, name in compiled:
            if rx.search(sql):
                return name
        return default
    return phase


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    """One figure of the final table."""

    figure: str
    value: float | None
    unit: str
    baseline: float | None
    baseline_what: str
    ratio: float | None  # speed relative to the baseline: >1 faster, <1 slower
    goal: str = "-"
    met: bool | None = None
    details: dict = field(default_factory=dict)
    note: str = ""


def fmt_value(v: float | None, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if unit.endswith("/s"):
        return f"{v / 1e6:.2f}M {unit}" if v >= 1e6 else f"{v / 1e3:.0f}k {unit}"
    if unit == "ms":
        return f"{v:.2f} ms"
    return f"{v:.3g} {unit}"


def print_table(rows: list[Row], file=sys.stdout) -> None:
    headers = ("figure", "value", "baseline", "ratio", "goal", "met?")
    body = []
    for r in rows:
        met = "n/a" if r.met is None else ("yes" if r.met else "NO")
        body.append((r.figure, fmt_value(r.value, r.unit), fmt_value(r.baseline, r.unit),
                     "n/a" if r.ratio is None else f"{r.ratio:.2f}x", r.goal, met))
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line, file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for b in body:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) if i in (1, 2, 3) else c.ljust(w)
                        for i, (c, w) in enumerate(zip(b, widths))), file=file)
    baselines = {}
    for r in rows:
        baselines.setdefault(r.baseline_what, []).append(r.figure)
    print("\nratio = speed relative to the baseline measured in the same run (throughput: value / "
          "baseline; latency: baseline / value): 1.00x is as fast as the baseline, 0.50x twice "
          "as slow.", file=file)
    print("baselines:", file=file)
    for what, figs in baselines.items():
        print(f"  - {what}  [{'; '.join(figs)}]", file=file)
    notes = [r for r in rows if r.note]
    if notes:
        print("notes:", file=file)
        for r in notes:
            print(f"  - {r.figure}: {r.note}", file=file)


def environment() -> dict:
    import duckdb
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "pandas": pd.__version__, "duckdb": duckdb.__version__}
    for mod in ("pyarrow", "asyncpg"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "versions": versions}


def write_json(name: str, rows: list[Row], meta: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (np.floating, np.integer)):
            return clean(v.item())
        return v
    payload = {"meta": meta, "rows": [clean(r.__dict__) for r in rows]}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
