"""Order-flow and profile figures: footprint metrics + volume profile + TPO of one session of
2 million trades against a straightforward pandas implementation, and the live forms' cost per
update against recomputing the session.

    .venv/bin/python -m tests.benchmarks.bench_orderflow [--quick] [--batch N] [--out NAME]

Prints a table (figure, value, baseline, ratio) and writes it as JSON to
``tests/benchmarks/results/orderflow.json``. Every figure has a baseline measured in the same run
(interleaved where the work can be repeated); no absolute time is judged, only ratios.

Figures
-------
1. ``bars.build(trades, "1m")`` (1,440 bars and their footprint cells) vs the pandas groupby of
   ``bench_foundation`` (trades/s).
2. The studies -- ``footprint_metrics`` (delta, delta %, running-delta extremes from the trades,
   bar POC from the cells) + ``volume_profile`` + ``tpo_profile`` (30-minute periods, from the
   1-minute bars) -- given the bars and cells, vs :func:`pandas_orderflow`, which does the same
   from the trades with plain pandas (groupby per bar and price, groupby cumsum for the running
   delta, groupby price for the profile with a simple value-area loop, per-period min/max for the
   TPO). Both answers are checked to agree before anything is timed.
3. The same with ``bars.build`` included (trades in, studies out on both sides).
4. ``developing_profile`` (per bar, the session's POC/VAH/VAL so far) vs ``volume_profile`` of
   every bar's prefix of cells (the plain way to get the same series).
5. Live: the session fed in batches of ``--batch`` trades (default 1,000) through
   ``BarAggregator``; per update ``LiveVolumeProfile.apply`` + ``LiveTPO.apply`` + the POC/VAH/VAL
   summary (5a), or + both full profile objects (5b), vs recomputing ``volume_profile`` +
   ``tpo_profile`` over the session's cells and bars so far, timed at the same moments (a quarter,
   half and all of the session; the ratio is at the end of the session, where a chart would
   be). The live results are checked against the recomputation at those moments. The prepared
   updates are frozen out of the garbage collector (``gc.freeze``) while the live forms run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import statistics
import sys
import time

import numpy as np
import pandas as pd

from tests.benchmarks.bench_foundation import pandas_bars_footprint
from tests.benchmarks.common import (
    BENCH_INSTRUMENT, Row, Timing, chunks, compare, environment, print_table, synthetic_trades,
    write_json,
)

START = "2024-03-04"
PERIOD = pd.Timedelta(minutes=30)
SHARE = 0.70


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# the baseline: plain pandas from the trades


def _pick_poc(volume: np.ndarray) -> int:
    """Index of the largest volume; ties to the middle of the range, then the lower."""
    cand = np.flatnonzero(volume == volume.max())
    return int(min(cand, key=lambda i: (abs(2 * i - (len(volume) - 1)), i)))


def _simple_value_area(volume: np.ndarray, poc: int, share: float) -> tuple[int, int]:
    """The two-levels-at-a-time expansion from the POC, written plainly (ties to the pair above)."""
    n, target = len(volume), share * volume.sum()
    lo = hi = poc
    acc = volume[poc]
    while acc < target and (lo > 0 or hi < n - 1):
        up = volume[hi + 1:hi + 3].sum() if hi < n - 1 else -1.0
        down = volume[max(lo - 2, 0):lo].sum() if lo > 0 else -1.0
        if up >= down:
            hi, acc = min(hi + 2, n - 1), acc + up
        else:
            lo, acc = max(lo - 2, 0), acc + down
    return lo, hi


def pandas_orderflow(trades: pd.DataFrame, tick_size: float) -> dict:
    """Footprint metrics per 1-minute bar, the session's volume profile and its TPO profile, the
    way an analyst writes them with pandas."""
    size, side = trades["size"], trades["side"].astype("int64")
    df = pd.DataFrame({"minute": trades["ts"].dt.floor("min"),
                       "tick": np.rint(trades["price"] / tick_size).astype("int64"),
                       "size": size, "signed": size * side,
                       "ask": size.where(side == 1, 0.0), "bid": size.where(side == -1, 0.0)})
    # per bar: delta, delta %, running-delta extremes, POC
    bars = df.groupby("minute").agg(volume=("size", "sum"), ask=("ask", "sum"),
                                    bid=("bid", "sum"))
    bars["delta"] = bars["ask"] - bars["bid"]
    bars["delta_pct"] = bars["delta"] / bars["volume"].where(bars["volume"] > 0)
    running = df.groupby("minute")["signed"].cumsum()
    bars["delta_max"] = running.groupby(df["minute"]).max().clip(lower=0)
    bars["delta_min"] = running.groupby(df["minute"]).min().clip(upper=0)
    cells = df.groupby(["minute", "tick"])["size"].sum().reset_index()
    by_bar = cells.groupby("minute")["tick"]
    cells["dist"] = (2 * cells["tick"] - by_bar.transform("min") - by_bar.transform("max")).abs()
    poc = cells.sort_values(["minute", "size", "dist", "tick"],
                            ascending=[True, False, True, True]).drop_duplicates("minute")
    bars["poc"] = poc.set_index("minute")["tick"]
    # volume profile: every level from the lowest to the highest
    per_tick = df.groupby("tick")["size"].sum()
    per_tick = per_tick.reindex(range(per_tick.index.min(), per_tick.index.max() + 1),
                                fill_value=0.0)
    v = per_tick.to_numpy()
    p = _pick_poc(v)
    lo, hi = _simple_value_area(v, p, SHARE)
    profile = {"levels": per_tick, "poc": int(per_tick.index[p]),
               "vah": int(per_tick.index[hi]), "val": int(per_tick.index[lo])}
    # TPO: each 30-minute period marks the rows between its lowest and highest trade
    period = (trades["ts"] - trades["ts"].dt.normalize()) // PERIOD
    ranges = df.groupby(period)["tick"].agg(["min", "max"])
    base, top = ranges["min"].min(), ranges["max"].max()
    counts = np.zeros(top - base + 1, dtype="int64")
    letters = [""] * len(counts)
    abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    for k, (a, b) in ranges.iterrows():
        counts[a - base:b - base + 1] += 1
        for i in range(a - base, b - base + 1):
            letters[i] += abc[k % 52]
    p = _pick_poc(counts)
    lo, hi = _simple_value_area(counts.astype(float), p, SHARE)
    tpo = {"counts": counts, "letters": letters, "low": int(base), "poc": int(base + p),
           "vah": int(base + hi), "val": int(base + lo)}
    return {"bars": bars, "profile": profile, "tpo": tpo}


# --------------------------------------------------------------------------------------------
# ours


def ours(bars: pd.DataFrame, cells: pd.DataFrame, trades: pd.DataFrame) -> dict:
    from indicators.orderflow import footprint_metrics
    from indicators.profile import tpo_profile, volume_profile

    inst = BENCH_INSTRUMENT
    return {"metrics": footprint_metrics(bars, trades, cells, by="time"),
            "profile": volume_profile(cells, value_area=SHARE),
            "tpo": tpo_profile(bars, inst.tick_size, inst.session, period=PERIOD,
                               value_area=SHARE)}


def check_agree(mine: dict, base: dict) -> None:
    """The two implementations give the same numbers (else the timings mean nothing)."""
    m, b = mine["metrics"], base["bars"]
    assert len(m) == len(b), "bars differ"
    for col in ("delta", "delta_pct", "delta_max", "delta_min"):
        np.testing.assert_allclose(m[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-9,
                                   atol=1e-9, equal_nan=True, err_msg=col)
    assert (m["poc"].to_numpy("int64") == b["poc"].to_numpy("int64")).all(), "bar POCs differ"
    vp, bp = mine["profile"], base["profile"]
    assert vp.levels["tick"].tolist() == bp["levels"].index.tolist(), "profile levels differ"
    np.testing.assert_allclose(vp.levels["volume"], bp["levels"].to_numpy(), rtol=1e-12)
    assert (vp.poc, vp.vah, vp.val) == (bp["poc"], bp["vah"], bp["val"]), "profile POC/VA differ"
    tp, bt = mine["tpo"], base["tpo"]
    assert tp.low == bt["low"] and tp.levels["tpo_count"].tolist() == bt["counts"].tolist()
    assert tp.levels["letters"].tolist() == bt["letters"], "TPO letters differ"
    assert (tp.poc, tp.vah, tp.val) == (bt["poc"], bt["vah"], bt["val"]), "TPO POC/VA differ"


# --------------------------------------------------------------------------------------------
# figures


def latency_row(figure, t_value: Timing, t_base: Timing, what: str, **details) -> Row:
    v, b = 1000 * t_value.best, 1000 * t_base.best
    return Row(figure, v, "ms", b, what, b / v,
               details={"subject": t_value.summary(), "baseline": t_base.summary(), **details})


def figure_batch(trades: pd.DataFrame, repeat: int) -> list[Row]:
    from tradeflow.bars import build

    inst, n = BENCH_INSTRUMENT, len(trades)
    log(f"figure 1: bars.build of {n:,} trades vs pandas groupby, {repeat} repeats")
    bars, cells = build(trades, "1m", inst)
    t_build, t_pb = compare(lambda: build(trades, "1m", inst),
                            lambda: pandas_bars_footprint(trades, inst.tick_size),
                            repeat=repeat)
    rows = [Row(f"1m bars + footprint: bars.build, {n / 1e6:g}M trades", n / t_build.best,
                "trades/s", n / t_pb.best, "pandas groupby bars + cells (bench_foundation)",
                t_pb.best / t_build.best,
                details={"build": t_build.summary(), "pandas": t_pb.summary(),
                         "bars": len(bars), "cells": len(cells)})]

    log("figure 2: checking that the studies and the pandas baseline agree")
    check_agree(ours(bars, cells, trades), pandas_orderflow(trades, inst.tick_size))
    levels = int(ours(bars, cells, trades)["profile"].levels.shape[0])
    log(f"figure 2: studies ({len(bars):,} bars, {len(cells):,} cells, {levels:,} levels) vs "
        f"pandas from trades, {repeat} repeats")
    t_ours, t_pd = compare(lambda: ours(bars, cells, trades),
                           lambda: pandas_orderflow(trades, inst.tick_size), repeat=repeat)
    base_what = ("pandas from the trades: groupby per bar/price, groupby cumsum, groupby price + "
                 "value-area loop, per-period min/max")
    rows.append(latency_row("studies: footprint_metrics + volume_profile + tpo_profile "
                            "(bars, cells given)", t_ours, t_pd, base_what,
                            bars=len(bars), cells=len(cells), levels=levels))

    log("figure 3: the same with bars.build included")
    t_all, t_pd2 = compare(lambda: ours(*build(trades, "1m", inst), trades),
                           lambda: pandas_orderflow(trades, inst.tick_size), repeat=repeat)
    rows.append(latency_row("studies + bars.build (trades in)", t_all, t_pd2, base_what))

    rows.append(figure_developing(cells, max(1, repeat - 1)))
    return rows


def figure_developing(cells: pd.DataFrame, repeat: int) -> Row:
    from indicators.profile import developing_profile, volume_profile

    inst = BENCH_INSTRUMENT
    ts = cells["ts"].to_numpy()
    ends = np.flatnonzero(np.r_[ts[1:] != ts[:-1], True]) + 1  # cells are in bar order

    def naive():
        rows = []
        for e in ends:
            p = volume_profile(cells.iloc[:e], value_area=SHARE)
            rows.append((p.poc, p.vah, p.val))
        return rows

    log(f"figure 4: developing_profile over {len(ends):,} bars vs volume_profile of each prefix")
    dev = developing_profile(cells, inst.session, value_area=SHARE)
    assert list(zip(dev["poc"], dev["vah"], dev["val"])) == naive(), "developing differs"
    t_dev, t_naive = compare(lambda: developing_profile(cells, inst.session, value_area=SHARE),
                             naive, repeat=repeat, warmup=0)
    return latency_row("developing_profile (POC/VAH/VAL per bar)", t_dev, t_naive,
                       "volume_profile of every bar's prefix of cells", bars=len(ends))


def figure_live(trades: pd.DataFrame, batch: int, repeat: int) -> list[Row]:
    from indicators.profile import LiveTPO, LiveVolumeProfile, tpo_profile, volume_profile
    from tradeflow.bars import BarAggregator

    inst = BENCH_INSTRUMENT
    parts = chunks(trades, batch)
    log(f"figure 5: the session in {len(parts):,} batches of {batch:,} trades through "
        f"BarAggregator (untimed), then the live profiles")
    agg = BarAggregator(inst, "1m")
    t0 = time.perf_counter()
    updates = [agg.update(p) for p in parts]
    agg_ms = 1000 * (time.perf_counter() - t0) / len(parts)
    checkpoints = sorted({len(updates) // 4, len(updates) // 2, len(updates) - 1})

    def so_far(k):
        """The session's cells and bars after update ``k`` (what a recompute reads)."""
        cl = [u.closed_footprint for u in updates[:k + 1]] + [updates[k].current_footprint]
        bl = [u.closed for u in updates[:k + 1]] + [updates[k].current]
        return (pd.concat([c for c in cl if len(c)], ignore_index=True),
                pd.concat([b for b in bl if len(b)], ignore_index=True))

    def recompute(cells, bars):
        return (volume_profile(cells, value_area=SHARE),
                tpo_profile(bars, inst.tick_size, inst.session, period=PERIOD,
                            value_area=SHARE))

    # the 2,000 prepared updates are the benchmark's, not the live forms': keep the collector
    # from walking them in the timed loop (a full pass took ~250 ms once per run)
    gc.collect()
    gc.freeze()
    warm = LiveVolumeProfile(inst.session), LiveTPO(inst.tick_size, inst.session, period=PERIOD)
    for live in warm:  # first-call costs (time-zone data, the first calendar grid), untimed
        live.apply(updates[0])
        live.profile()
    out = {}
    for full in (False, True):
        vp = LiveVolumeProfile(inst.session, value_area=SHARE)
        tpo = LiveTPO(inst.tick_size, inst.session, period=PERIOD, value_area=SHARE)
        per_update, at = [], {}
        for k, up in enumerate(updates):
            t0 = time.perf_counter()
            vp.apply(up)
            tpo.apply(up)
            if full:
                got = (vp.profile(), tpo.profile())
            else:
                got = vp.summary()
            per_update.append(time.perf_counter() - t0)
            if k in checkpoints:
                cells, bars = so_far(k)
                t_re = Timing()
                for _ in range(repeat):
                    t1 = time.perf_counter()
                    want = recompute(cells, bars)
                    t_re.add(time.perf_counter() - t1)
                if full:
                    assert want[0].summary() == got[0].summary(), "live profile differs"
                    assert want[1].summary() == got[1].summary(), "live TPO differs"
                else:
                    assert {k2: got[k2] for k2 in ("poc", "vah", "val")} == {
                        "poc": want[0].poc, "vah": want[0].vah, "val": want[0].val}
                at[k] = (t_re, len(cells), len(bars))
        out[full] = (per_update, at)

    gc.unfreeze()
    rows = []
    for full, label in ((False, "apply both + volume POC/VAH/VAL"),
                        (True, "apply both + both full profiles")):
        per_update, at = out[full]
        med = statistics.median(per_update)
        t_end, n_cells, n_bars = at[checkpoints[-1]]
        by_point = {f"update {k + 1} of {len(updates)}": {
            "recompute_ms": 1000 * t.best, "cells": c, "bars": b,
            "ratio": t.best / med} for k, (t, c, b) in at.items()}
        rows.append(Row(
            f"live: LiveVolumeProfile + LiveTPO, {label}, per batch of {batch:,} trades",
            1000 * med, "ms", 1000 * t_end.best,
            "recompute volume_profile + tpo_profile of the session so far (at its end)",
            t_end.best / med,
            details={"per_update_ms": {"median": 1000 * med, "p90": 1000 * float(
                np.percentile(per_update, 90)), "max": 1000 * max(per_update)},
                "checkpoints": by_point, "updates": len(updates),
                "aggregator_ms_per_update": agg_ms},
            note=(f"median of {len(updates):,} updates; recompute/update ratio "
                  + ", ".join(f"{v['ratio']:.1f}x at {k.split()[1]}/{len(updates)}"
                              for k, v in by_point.items())
                  + f"; BarAggregator.update itself {agg_ms:.2f} ms per batch (both need it)")))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x fewer trades, fewer repeats")
    ap.add_argument("--batch", type=int, default=1000, help="trades per live update")
    ap.add_argument("--out", default="orderflow", help="results/<name>.json")
    args = ap.parse_args(argv)
    n = 200_000 if args.quick else 2_000_000
    repeat = 2 if args.quick else 3

    t_start = time.perf_counter()
    log(f"generating one session (UTC day) of {n:,} trades")
    trades = synthetic_trades(n, 1, start=START)
    rows = figure_batch(trades, repeat)
    rows += figure_live(trades, args.batch, repeat)

    print()
    print(f"TradeFlow order-flow figures ({'quick' if args.quick else 'full'} run, {n:,} trades "
          f"in one session, {time.perf_counter() - t_start:.0f} s)")
    print()
    print_table(rows)
    meta = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m tests.benchmarks.bench_orderflow" + (" --quick" if args.quick
                                                                     else ""),
        "quick": args.quick, "trades": n, "batch": args.batch, "repeats": repeat,
        "environment": environment(),
    }
    path = write_json(args.out, rows, meta)
    print(f"\nwritten: {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
