"""Live update of 20 indicators on a new bar, against recomputing them on 5,000 bars.

    .venv/bin/python -m tests.benchmarks.bench_live_indicators [--bars 5000] [--updates 200]
                                                               [--quick] [--json PATH]

A chart holding ``--bars`` bars and 20 common indicators (the list below) receives ``--updates``
bar changes, as a live feed gives them: every third one a new bar, the others the forming bar
changing. Subject: :class:`indicators.live.LiveIndicators` ``update(bar)`` (all 20 indicators'
newest values, each computed over its window and checked against the bars before it). Baselines,
measured in the same run with their repeats interleaved with the subject's:

* *recompute*: ``indicators.registry.compute`` of the 20 indicators over all bars (the chart
  without live forms: what it would do on every change);
* *bare recompute*: each indicator's function called directly on numpy arrays of all bars (no
  registry, no frame: the floor of recomputing).

Ratio = baseline time / subject time per update (above 1: the live form is faster). Before timing,
the live values after the updates are checked against the batch ones.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from indicators.live import LiveIndicators
from indicators.registry import REGISTRY, compute
from tests.benchmarks.bench_indicators import make_bars
from tests.benchmarks.common import compare

#: (name, params): the studies a trader's chart typically carries
INDICATORS = [
    ("SMA", {"timeperiod": 20}), ("SMA", {"timeperiod": 200}), ("EMA", {"timeperiod": 21}),
    ("WMA", {"timeperiod": 30}), ("BBANDS", {}), ("RSI", {}), ("MACD", {}), ("STOCH", {}),
    ("ATR", {}), ("ADX", {}), ("CCI", {}), ("MFI", {}), ("OBV", {}), ("VWAP", {}),
    ("SAR", {}), ("SUPERTREND", {}), ("KELTNER", {}), ("ICHIMOKU", {}), ("HMA", {}),
    ("CDLENGULFING", {}),
]


def feed(bars: pd.DataFrame, history: int, updates: int) -> list[dict]:
    """The bar changes after ``history``: two forming versions, then the final bar."""
    out = []
    i = history
    while len(out) < updates:
        row = bars.iloc[i].to_dict()
        for frac in (0.4, 0.8):
            out.append(dict(row, close=row["open"] + frac * (row["close"] - row["open"]),
                            volume=round(row["volume"] * frac)))
        out.append(row)
        i += 1
    return out[:updates]


def bar_updates(changes: list[dict]) -> list:
    """The same changes as a stream's ``BarUpdate``s (what ``LiveIndicators.apply`` follows): a
    bar of a new time closes the forming one; every change re-sends the forming bar."""
    from tradeflow.model import BarUpdate

    ups, forming = [], None
    for bar in changes:
        closed = [forming] if forming is not None and forming["ts"] != bar["ts"] else []
        forming = bar
        ups.append(BarUpdate(pd.DataFrame(closed, columns=list(bar)), pd.DataFrame([bar]),
                             None, None))
    return ups


def start_live(history: pd.DataFrame) -> LiveIndicators:
    live = LiveIndicators(history)
    for name, params in INDICATORS:
        live.add(name, **params)
    return live


def check(bars: pd.DataFrame, history: int, changes: list[dict]) -> None:
    live = start_live(bars.iloc[:history])
    for bar in changes:
        live.update(bar)
    shown = pd.DataFrame(list(bars.iloc[:history].to_dict("records")) +
                         _final_versions(changes))
    for key, (name, params) in zip(live, INDICATORS):
        want = compute(name, shown, **params)
        got = live[key].frame()
        for col in want.columns:
            w, g = want[col].to_numpy(float), got[col].to_numpy(float)
            scale = np.nanmax(np.abs(w[-500:])) or 1.0
            ok = np.isclose(g, w, rtol=0, atol=1e-7 * scale, equal_nan=True)
            if not ok.all():
                raise SystemExit(f"{key} {col}: live and batch disagree")


def _by_bar(bars: pd.DataFrame, history: int, changes: list[dict]) -> LiveIndicators:
    live = start_live(bars.iloc[:history])
    for bar in changes:
        live.update(bar)
    return live


def _final_versions(changes: list[dict]) -> list[dict]:
    last: dict = {}
    for bar in changes:
        last[bar["ts"]] = bar
    return list(last.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=int, default=5000, help="bars on the chart")
    ap.add_argument("--updates", type=int, default=200, help="bar changes per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="50 updates, 3 repeats")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    if args.quick:
        args.updates, args.repeats = 50, 3
    history = args.bars
    bars = make_bars(history + args.updates + 1)
    changes = feed(bars, history, args.updates)
    check(bars, history, changes)

    # the baselines see the chart as it is after each change: bars up to the forming one
    frames = []
    shown = list(bars.iloc[:history].to_dict("records"))
    for bar in changes:
        if shown and shown[-1]["ts"] == bar["ts"]:
            shown[-1] = bar
        else:
            shown.append(bar)
        frames.append(shown[-history:])
    # building the frames is not timed: one per change, the latest `history` bars
    cases = [pd.DataFrame(rows) for rows in frames[:: max(1, len(frames) // 20)]]
    recs = [(REGISTRY.get(name), params) for name, params in INDICATORS]

    def recompute():
        for frame in cases:
            for ind, params in recs:
                compute(ind, frame, **params)

    arrays = [{c: f[c].to_numpy(dtype="float64") for c in f.columns if c != "ts"}
              for f in cases]

    def bare():
        for arr in arrays:
            for ind, params in recs:
                ind.function(*[arr[c] for c in ind.inputs], **params)

    def live_updates(live):
        for bar in changes:
            live.update(bar)

    updates = bar_updates(changes)  # built untimed, as the aggregator hands them over

    def live_applies(live):
        for up in updates:
            live.apply(up)

    probe, by_bar = start_live(bars.iloc[:history]), _by_bar(bars, history, changes)
    live_applies(probe)
    for key in probe:  # the protocol's path gives the values of the bar-by-bar one
        got, want = probe[key].frame(), by_bar[key].frame()
        for col in want.columns[1:]:
            w, g = want[col].to_numpy(float), got[col].to_numpy(float)
            scale = np.nanmax(np.abs(w[-500:])) or 1.0
            if not np.isclose(g, w, rtol=0, atol=1e-7 * scale, equal_nan=True).all():
                raise SystemExit(f"{key} {col}: apply and update disagree")

    live_t, recompute_t = compare(live_updates, recompute, repeat=args.repeats,
                                  setup_subject=lambda: start_live(bars.iloc[:history]))
    live_t2, bare_t = compare(live_updates, bare, repeat=args.repeats,
                              setup_subject=lambda: start_live(bars.iloc[:history]))
    apply_t, _ = compare(live_applies, bare, repeat=args.repeats,
                         setup_subject=lambda: start_live(bars.iloc[:history]))
    per_live = min(live_t.best, live_t2.best) / len(changes)
    per_apply = apply_t.best / len(changes)
    per_recompute = recompute_t.best / len(cases)
    per_bare = bare_t.best / len(cases)
    probe = start_live(bars.iloc[:history])
    live_updates(probe)
    windows = {key: probe[key].window for key in probe}
    print(f"{len(INDICATORS)} indicators, {history} bars, {len(changes)} bar changes "
          f"({sum(1 for _ in _final_versions(changes))} new bars)")
    print(f"  live update          {per_live * 1e3:8.3f} ms per change")
    print(f"  live apply(BarUpdate) {per_apply * 1e3:7.3f} ms per change  ratio to recompute "
          f"{per_recompute / per_apply:6.1f}x")
    print(f"  recompute (registry) {per_recompute * 1e3:8.3f} ms  ratio {per_recompute / per_live:6.1f}x")
    print(f"  recompute (bare)     {per_bare * 1e3:8.3f} ms  ratio {per_bare / per_live:6.1f}x")
    print("  windows (bars each live update computes over): " +
          ", ".join(f"{k} {w}" for k, w in sorted(windows.items(), key=lambda kv: -kv[1])))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"bars": history, "changes": len(changes), "live_s": per_live,
                       "apply_s": per_apply,
                       "recompute_s": per_recompute, "bare_s": per_bare,
                       "windows": windows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
