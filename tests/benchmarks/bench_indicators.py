"""Indicator figures: every registered indicator over 1,000,000 bars, and what the registry costs
over calling TA-Lib directly.

    .venv/bin/python -m tests.benchmarks.bench_indicators [--bars N] [--quick] [--only RSI,MACD]
                                                          [--repeats K] [--json PATH]

For each indicator: ``indicators.registry.compute(name, bars)`` with its default parameters on a
bars frame of N rows (float64 OHLCV in the model's layout). For TA-Lib-backed indicators the
baseline is ``talib.<NAME>(*arrays, **defaults)`` on numpy arrays taken from the frame before
timing (the bare C call: no parameter checks, no column look-ups, no frame built), measured in the
same run with its repeats interleaved with the registry's (baseline, registry, baseline, ...), so
that a busy machine slows both alike. Each side's figure is the best of its repeats; a fast
function is repeated until each side has run for about 0.2 s (at least ``--repeats`` times).

``overhead = registry / direct - 1`` (goal: under 10%). The table is sorted by overhead; the
summary gives the total time, the median overhead and how many are over the goal.
Self-contained on purpose (no ``tests/benchmarks/common.py``).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

GOAL = 0.10
MIN_SIDE_SECONDS = 0.2


def make_bars(n: int, seed: int = 1) -> pd.DataFrame:
    """Bars in ``tradeflow.model``'s layout: a fat-tailed random walk, consistent OHLC,
    lognormal volume split into ask/bid. ``mavp_periods`` feeds MAVP's variable period."""
    rng = np.random.default_rng(seed)
    close = 4500.0 * np.exp(np.cumsum(rng.standard_t(4, n) * 0.0015))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.0003, n))
    wick = np.abs(rng.normal(0, 0.001, (2, n))) * close
    volume = np.round(rng.lognormal(6, 0.8, n))
    ask = np.round(volume * rng.beta(5, 5, n))
    return pd.DataFrame({
        "ts": pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC"),
        "open": open_, "high": np.maximum(open_, close) + wick[0],
        "low": np.minimum(open_, close) - wick[1], "close": close, "volume": volume,
        "ask_volume": ask, "bid_volume": volume - ask, "delta": 2 * ask - volume,
        "trades": rng.integers(1, 500, n).astype("int64"),
        "open_interest": 1e5 + np.cumsum(rng.normal(0, 10, n)),
        "mavp_periods": rng.integers(2, 40, n).astype("float64"),
    })


@dataclass
class Row:
    name: str
    group: str
    source: str
    registry_s: float
    direct_s: float | None
    repeats: int

    @property
    def overhead(self) -> float | None:
        return None if self.direct_s is None else self.registry_s / self.direct_s - 1.0


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(ind, bars: pd.DataFrame, min_repeats: int) -> Row:
    from indicators.registry import compute

    inputs = {"periods": "mavp_periods"} if "periods" in ind.inputs else None
    run_registry = lambda: compute(ind.name, bars, inputs=inputs)  # noqa: E731
    direct = None
    if ind.source == "talib":
        arrays = [bars[(inputs or {}).get(c, c)].to_numpy(dtype="float64") for c in ind.inputs]
        params = ind.defaults
        fn = ind.function
        direct = lambda: fn(*arrays, **params)  # noqa: E731
    # warm-up (first-call costs, caches)
    run_registry()
    if direct:
        direct()
    reg_times: list[float] = []
    dir_times: list[float] = []
    while True:
        if direct:
            dir_times.append(_timed(direct))
        reg_times.append(_timed(run_registry))
        enough_time = sum(reg_times) >= MIN_SIDE_SECONDS and (not direct or sum(dir_times)
                                                               >= MIN_SIDE_SECONDS)
        if len(reg_times) >= min_repeats and (enough_time or len(reg_times) >= 200):
            break
    return Row(ind.name, ind.group, ind.source, min(reg_times),
               min(dir_times) if direct else None, len(reg_times))


def fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:9.2f}"


def print_table(rows: list[Row]) -> None:
    def key(r: Row):
        return (r.overhead is None, -(r.overhead or 0.0), r.name)

    print(f"{'indicator':<22}{'group':<24}{'registry ms':>12}{'direct ms':>12}{'overhead':>10}"
          f"{'reps':>6}")
    for r in sorted(rows, key=key):
        oh = "-" if r.overhead is None else f"{r.overhead * 100:+8.1f}%"
        flag = "  <-- over goal" if r.overhead is not None and r.overhead > GOAL else ""
        print(f"{r.name:<22}{r.group[:23]:<24}{fmt_ms(r.registry_s):>12}{fmt_ms(r.direct_s):>12}"
              f"{oh:>10}{r.repeats:>6}{flag}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100,000 bars")
    ap.add_argument("--only", default="", help="comma-separated indicator names")
    ap.add_argument("--repeats", type=int, default=3, help="minimum repeats per side")
    ap.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    n = 100_000 if args.quick else args.bars

    import talib

    from indicators.registry import REGISTRY

    t0 = time.perf_counter()
    bars = make_bars(n)
    print(f"bars: {n:,} rows built in {time.perf_counter() - t0:.2f} s; "
          f"{len(REGISTRY)} indicators registered; TA-Lib {talib.__version__}, "
          f"numpy {np.__version__}, pandas {pd.__version__}, Python {platform.python_version()}",
          flush=True)
    wanted = {s.strip().lower() for s in args.only.split(",") if s.strip()}
    inds = [i for i in REGISTRY if not wanted or i.key in wanted]

    rows: list[Row] = []
    t_all = time.perf_counter()
    for k, ind in enumerate(inds, 1):
        rows.append(measure(ind, bars, args.repeats))
        if k % 25 == 0:
            print(f"  ... {k}/{len(inds)}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t_all

    print()
    print_table(rows)
    total_reg = sum(r.registry_s for r in rows)
    with_base = [r for r in rows if r.overhead is not None]
    total_dir = sum(r.direct_s for r in with_base)
    total_reg_tl = sum(r.registry_s for r in with_base)
    print()
    print(f"one pass over all {len(rows)} indicators through the registry: {total_reg:.2f} s "
          f"({n:,} bars; benchmark wall time {wall:.0f} s)")
    if with_base:
        overheads = [r.overhead for r in with_base]
        over = [r for r in with_base if r.overhead > GOAL]
        print(f"TA-Lib-backed: {len(with_base)}; direct {total_dir:.2f} s vs registry "
              f"{total_reg_tl:.2f} s (overall {total_reg_tl / total_dir - 1:+.1%}); "
              f"median overhead {statistics.median(overheads):+.2%}, "
              f"max {max(overheads):+.2%} ({max(with_base, key=lambda r: r.overhead).name}); "
              f"{len(over)} over the {GOAL:.0%} goal"
              + (f": {', '.join(r.name for r in over)}" if over else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"bars": n, "rows": [asdict(r) | {"overhead": r.overhead} for r in rows]},
                      fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
