"""The server's memory while an hour of simulated market goes through it at 10x speed: RSS of the
served process sampled every few seconds, and its growth after warm-up as a slope per simulated
hour (it must stay flat).

    .venv/bin/python -m tests.benchmarks.bench_memory [--hours 1] [--speed 10] [--quick] \
        [--postgres]

The server is ``tests.benchmarks.served`` (``tradeflow serve --no-simulate`` in-process, a 1-minute
BTCUSDT chart with the studies of ``bench_ws_hook`` following its hub) on a DuckDB file
(``--store`` for another URL; ``--postgres``: then again on a throwaway PostgreSQL cluster, whose
memory is its own processes', so the figure is the server's alone). A feeder in this process runs
``MarketSimulator`` (BTCUSDT, ``--trades-per-day``, default 2M: ~80k trades a simulated hour, ten
times the simulator's default; without its daily cycle unless ``--daily-cycle``, so the data the
hub keeps does not trend and a growing RSS is the server's own) and sends each ``--step`` seconds
of market (trades, the book's snapshots and liquidations) through the websocket hook every ``step /
speed`` seconds of wall time, paced to the clock, waiting for each ack; ``--prefill`` simulated
hours (default 5) are written into the store first, so the chart's history is full from the start.
The figure is the slope of a least-squares line through the RSS samples after the first
``--warmup`` share of the run, in MB per simulated hour; it is flat at most ``FLAT_MB_PER_H``. The
served process logs its allocators and DuckDB's own accounting (``served.allocators``,
``DuckDBStore.memory()``), and the note splits the slope by them. The server drops its DuckDB
store's cache and recycles the store as ``tradeflow serve`` does (``tradeflow.server.recycling``),
its check and minimum intervals divided by ``--speed`` so the replayed market meets the policy as
the real one would (``--no-drop-cache``, ``--no-recycle``: never); the note gives what those held
reads and writes back and, as a recycle's drop steepens the slope downwards, the slope from the
first recycle after warm-up on, and the RSS by simulated half hour.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.benchmarks.bench_ws_hook import STUDIES, log, served
from tests.benchmarks.common import PgClusters, Row, environment, print_table, write_json

# A fixed day; BTCUSDT trades around the clock and its trading day opens at 00:00 UTC. The run
# starts 6 h into it, so the studies' day (what a new follower catches up, then keeps for the
# bars a snapshot sends) is already longer than the hub's history: the run sees the steady
# state. From the day's open (``--start '2024-03-05 00:00'``) the studies' rows fill for the
# history's first 5 h (``imbalances``: a row per footprint cell, ~1.5-2 MB a simulated hour).
START = pd.Timestamp("2024-03-05 06:00", tz="UTC")
# Written into the store before the run: the hub keeps 300 closed bars, 5 h of 1-minute bars, so
# the served chart starts with its history full and the run sees the steady state, not the
# history filling (which alone is ~5 MB a simulated hour).
PREFILL_H = 5.0
# "Flat": the RSS after warm-up grows by at most this, MB per simulated hour (a simulated day at
# this pace adds ~50 MB to a ~300 MB server); a 1-hour run's slope carries ~1-2 MB/h of noise,
# printed beside it.
FLAT_MB_PER_H = 2.0


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of process ``pid`` and its anonymous part (heaps, allocators' arenas;
    the rest is file-backed: libraries, mapped files), MB (Linux ``smaps_rollup``)."""
    kb = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                kb[name] = int(value.split()[0])
    return kb["Rss"] / 1024, kb["Anonymous"] / 1024


MAP_KINDS = ("heap", "arenas", "stacks", "other")
ARENA_ALIGN_KB = 64 * 1024  # glibc's thread arenas are heaps of 64 MiB, aligned to their size


def map_kind(m) -> str:
    """What an anonymous mapping of ``served.anonymous_maps`` belongs to: ``heap`` (glibc's
    main arena), ``arenas`` (its thread arenas), ``stacks`` (the main thread's stack; threads'
    stacks are among ``other``, as are Python's object arenas, jemalloc's and mimalloc's
    extents and the large blocks glibc maps alone)."""
    start, size, _, name = m
    if name == "[heap]":
        return "heap"
    if name == "[stack]":
        return "stacks"
    return "arenas" if (start >> 10) % ARENA_ALIGN_KB == 0 and size <= ARENA_ALIGN_KB else "other"


def logged_mb(lines: list[dict], clock: list[float]) -> dict[str, np.ndarray]:
    """The served process's memory log at each sample time of ``clock`` (its last line before
    it), MB: its allocators (``served.allocators``), its anonymous mappings by kind
    (``maps_KIND``, :func:`map_kind`) and, on a DuckDB store, ``duckdb``
    (``DuckDBStore.memory()``, all kinds) and ``duckdb_cache`` (its ``BASE_TABLE``: cached
    blocks of the file)."""
    if not lines:
        return {}
    t = np.array([line["t"] for line in lines])
    i = np.clip(np.searchsorted(t, clock, side="right") - 1, 0, len(t) - 1)
    out = {name: np.array([line["allocators"].get(name, 0) for line in lines])[i] / 2**20
           for name in lines[-1]["allocators"]}
    if "maps" in lines[-1]:
        kb = np.zeros((len(lines), len(MAP_KINDS)))
        for row, line in enumerate(lines):
            for m in line["maps"]:
                kb[row, MAP_KINDS.index(map_kind(m))] += m[2]
        out.update({f"maps_{kind}": kb[i, k] / 1024 for k, kind in enumerate(MAP_KINDS)})
    if lines[-1]["duckdb"]:
        out["duckdb"] = np.array([sum(line["duckdb"].values()) for line in lines])[i] / 2**20
        out["duckdb_cache"] = np.array([line["duckdb"].get("BASE_TABLE", 0)
                                        for line in lines])[i] / 2**20
    return out


def _iso(ts: pd.Series) -> list[str]:
    return [t + "Z" for t in np.datetime_as_string(ts.dt.tz_convert(None).to_numpy(),
                                                   unit="us").tolist()]


def messages(batch, symbol: str, tick: float, seq: int) -> list[dict]:
    """One simulated stretch as websocket batches: trades, depth, liquidations (those it has)."""
    out = []
    t = batch.trades
    if len(t):
        out.append({"type": "trades", "data": [
            {"time": ts, "price": p, "size": s, "side": int(d), "id": i}
            for ts, p, s, d, i in zip(_iso(t["ts"]), t["price"].tolist(), t["size"].tolist(),
                                      t["side"].tolist(), t["trade_id"].tolist())]})
    d = batch.depth
    if len(d):
        out.append({"type": "depth", "data": [
            {"time": ts, "side": "ask" if s > 0 else "bid", "price": round(k * tick, 10),
             "size": z}
            for ts, s, k, z in zip(_iso(d["ts"]), d["side"].tolist(), d["tick"].tolist(),
                                   d["size"].tolist())]})
    q = batch.liquidations
    if q is not None and len(q):
        out.append({"type": "liquidations", "data": [
            {"time": ts, "side": "buy" if s > 0 else "sell", "price": p, "size": z}
            for ts, s, p, z in zip(_iso(q["ts"]), q["side"].tolist(), q["price"].tolist(),
                                   q["size"].tolist())]})
    for i, m in enumerate(out):
        m.update(seq=seq + i, symbol=symbol)
    return out


async def feed_simulated(url: str, key: str, sim, hours: float, speed: float, step: float,
                         sample, every: float, start: pd.Timestamp = START) -> dict:
    """Send ``hours`` of ``sim``'s market in ``step``-second stretches, one each
    ``step / speed`` s of wall time; ``sample(simulated_hours)`` every ``every`` s of wall."""
    import websockets

    symbol, tick = sim.instrument.symbol, sim.instrument.tick_size
    steps = int(round(hours * 3600 / step))
    seq = trades = late = 0
    t0 = time.monotonic()
    next_sample = t0
    async with websockets.connect(url, additional_headers={"X-API-Key": key}, max_size=None,
                                  ping_interval=None) as ws:
        for i in range(steps):
            a = start + pd.Timedelta(seconds=i * step)
            batch = sim.generate(a, a + pd.Timedelta(seconds=step))
            for m in messages(batch, symbol, tick, seq):
                await ws.send(json.dumps(m))
                answer = json.loads(await ws.recv())
                while answer.get("slow_down"):
                    answer = json.loads(await ws.recv())
                if "error" in answer:
                    raise RuntimeError(f"batch {m['seq']} ({m['type']}): {answer['error']}")
                seq += 1
            trades += len(batch.trades)
            now = time.monotonic()
            if now >= next_sample:
                sample((i + 1) * step / 3600)
                next_sample += every
            wait = t0 + (i + 1) * step / speed - now
            late += wait < 0
            await asyncio.sleep(max(0.0, wait))
    sample(steps * step / 3600)
    return {"trades": trades, "batches": seq, "wall_s": time.monotonic() - t0,
            "late_steps": late, "steps": steps}


def prefill(url: str, sim, start: pd.Timestamp, hours: float) -> None:
    """Write ``hours`` of ``sim``'s market before ``start`` straight into the store (10-minute
    transactions), so the served chart starts with its hub's history of closed bars full."""
    from data_access import open_store

    store = open_store(url)
    try:
        a = start - pd.Timedelta(hours=hours)
        while a < start:
            b = min(a + pd.Timedelta(minutes=10), start)
            batch = sim.generate(a, b)
            with store.transaction():
                store.write_trades(sim.instrument.symbol, batch.trades)
                store.write_depth(sim.instrument.symbol, batch.depth)
                if batch.liquidations is not None and len(batch.liquidations):
                    store.write_liquidations(sim.instrument.symbol, batch.liquidations)
            a = b
    finally:
        store.close()


def stored_mb(url: str) -> float | None:
    """Size of a DuckDB store's files (the database and its WAL), MB; None for other stores."""
    if not url.startswith("duckdb:///"):
        return None
    path = Path(url.removeprefix("duckdb://").partition("?")[0])
    return sum(f.stat().st_size for f in (path, path.with_name(path.name + ".wal"))
               if f.exists()) / 2**20


def kept_cells(sim, start: pd.Timestamp, hours: float, before: float,
               at_h: np.ndarray) -> np.ndarray:
    """Footprint cells (prices traded in a 1-minute bar) in the hub's kept history (the
    ``HISTORY`` minutes before each of ``at_h`` simulated hours into the run), counted from
    ``sim``'s trades: what the studies hold rows for, so the RSS follows it. A copy of ``sim``
    with a sparse book (which leaves the trades alone) replays the run afterwards."""
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.live.hub import HISTORY

    sim = MarketSimulator(sim.instrument, seed=sim.seed, start_price=sim.start_price,
                          trades_per_day=int(sim.trades_per_day), depth_interval="1h",
                          daily_cycle=sim.daily_cycle)
    first = start - pd.Timedelta(minutes=max(HISTORY, before * 60))
    minutes = int(round((start - first).total_seconds() / 60 + hours * 60)) + 1
    per_minute = np.zeros(minutes)
    minute0 = first.value // 60_000_000_000
    for batch in sim.history(first, start + pd.Timedelta(hours=hours), chunk="1h"):
        t = batch.trades
        minute = t["ts"].astype("int64").to_numpy() // 60_000_000_000 - minute0
        tick = np.round(t["price"].to_numpy() / sim.instrument.tick_size).astype(np.int64)
        cells = np.unique(np.stack([minute, tick]), axis=1)  # a minute's batch is whole
        per_minute += np.bincount(cells[0], minlength=minutes)[:minutes]
    cum = np.concatenate([[0.0], np.cumsum(per_minute)])
    end = ((start - first).total_seconds() / 60 + np.asarray(at_h) * 60).astype(int)
    return cum[end] - cum[np.maximum(end - HISTORY, 0)]


def trace_args(path: str, warm_s: float, wall_s: float) -> tuple[str, ...]:
    """The served process's ``--trace-growth``: traced from the end of warm-up, its growth
    counted from a wall minute later, or a quarter of what is left of the run if that is
    sooner (the steady churn then in both snapshots), to just before the run's end (the last
    snapshot is taken while the server serves; tracing slows it, so the run ends later)."""
    first = warm_s + min(60.0, (wall_s - warm_s) / 4)
    last = wall_s - min(30.0, (wall_s - first) / 10)
    return ("--trace-growth", path, "--trace-window", f"{warm_s:.1f}", f"{first:.1f}",
            f"{last:.1f}")


def run(url: str, hours: float, speed: float, step: float, trades_per_day: int, every: float,
        warmup: float, studies, start: pd.Timestamp = START, before: float = 0.0,
        trace: str | None = None, recycle: bool = True, drop_cache: bool = True,
        keep_log: str | None = None, daily_cycle: bool = False) -> dict:
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.model import Instrument

    from data_access import open_store
    from tests.serve import new_key

    btc = Instrument("BTCUSDT", 0.1, "SIM", "crypto")
    store = open_store(url)
    try:
        store.add_instrument(btc)
    finally:
        store.close()
    key = new_key(url, "bench")
    sim = MarketSimulator(btc, seed=3, trades_per_day=trades_per_day, daily_cycle=daily_cycle)
    if before:
        prefill(url, sim, start, before)
    samples: list[tuple[float, float, float]] = []  # simulated h, RSS, anonymous RSS
    clock: list[float] = []  # each sample's time.monotonic()
    load: list[float] = []  # the machine's 1-minute load average
    stored: list[float | None] = []  # the store's files, MB
    duck_log = Path(tempfile.mkstemp(prefix="bench-duckdb-", suffix=".jsonl")[1])

    def sample(h: float) -> None:
        samples.append((h, *rss_mb(pid)))
        clock.append(time.monotonic())
        stored.append(stored_mb(url))
        load.append(os.getloadavg()[0])

    try:
        extra = ("--memory-log", str(duck_log), "--recycle-speed", str(speed),
                 *(() if recycle else ("--no-recycle",)),
                 *(() if drop_cache else ("--no-drop-cache",)),
                 *(trace_args(trace, hours * 3600 / speed * warmup, hours * 3600 / speed)
                   if trace else ()))
        with served(url, ["BTCUSDT"], studies, extra=extra) as (server, notes):
            pid = server.proc.pid
            sample(0.0)
            got = asyncio.run(feed_simulated(server.ws, key, sim, hours, speed, step, sample,
                                             every, start))
        lines = [json.loads(line) for line in duck_log.read_text().splitlines()]
        logged = logged_mb(lines, clock)
    finally:
        if keep_log:  # (diagnosis: every mapping's growth, read afterwards)
            shutil.move(duck_log, keep_log)
        duck_log.unlink(missing_ok=True)
    h, mb, anon = (np.array(c) for c in zip(*samples))
    after = h >= warmup * hours

    def slope_of(y) -> float:
        return float(np.polyfit(h[after], y[after], 1)[0]) if after.sum() >= 2 else float("nan")

    # the slope's standard error: how far the samples' noise alone could move it
    error = (float(np.sqrt(np.polyfit(h[after], mb[after], 1, cov=True)[1][0, 0]))
             if after.sum() >= 4 else float("nan"))

    cells = kept_cells(sim, start, hours, before, h)
    got["kept_cells"] = (float(cells[after][0]), float(cells[-1]))
    got["kept_cells_pct_per_h"] = 100 * slope_of(cells) / float(cells[after].mean())
    parts = {"anonymous": anon, "file-backed": mb - anon, **logged}
    if stored[0] is not None:
        parts["stored"] = np.array(stored)
    slopes = {name: slope_of(y) for name, y in parts.items()}
    got["logged_mb"] = {name: y.tolist() for name, y in logged.items()}
    # DuckDB's eviction queues (nodes, dead nodes) at the first and last log line
    got["eviction_queues"] = [lines[0].get("queues"), lines[-1].get("queues")] if lines else []
    # the store's recycles (the server's policy, tradeflow.server.recycling): what each held
    # back, and the RSS of the samples before and after it
    got["recycles"] = lines[-1].get("recycles", []) if lines else []
    got["cache_drops_s"] = lines[-1].get("cache_drops", []) if lines else []
    for r in got["recycles"]:
        i = int(np.searchsorted(clock, r["at"]))
        r["rss_mb"] = (float(mb[max(i - 1, 0)]), float(mb[min(i, len(mb) - 1)]))
        r["simulated_h"] = float(h[min(i, len(h) - 1)])
    # a recycle's drop inside the fitted samples steepens the slope downwards: the slope from
    # the first recycle after warm-up on says whether the recycled server still grows
    later = [r["simulated_h"] for r in got["recycles"] if r["simulated_h"] >= warmup * hours]
    if later:
        rest = after & (h >= later[0])
        got["after_first_recycle"] = {
            "from_h": later[0], "slope_mb_per_h": float(np.polyfit(h[rest], mb[rest], 1)[0])
            if rest.sum() >= 2 else float("nan"),
            "slopes_mb_per_h": {name: float(np.polyfit(h[rest], y[rest], 1)[0])
                                for name, y in parts.items()} if rest.sum() >= 2 else {}}
    halves = [mb[(h >= a) & (h < a + 0.5)] for a in np.arange(0, h.max(), 0.5)]
    got["rss_by_half_hour"] = [(float(x.min()), float(x.max())) for x in halves if len(x)]
    return {**got, "slopes_mb_per_h": slopes, "samples": samples, "slope_mb_per_h": slope_of(mb),
            "slope_error_mb_per_h": error,
            "rss_warm_mb": float(mb[after][0]), "rss_end_mb": float(mb[-1]),
            "rss_max_mb": float(mb.max()), "chart_messages": notes.get("BTCUSDT", {}).get(
                "messages"), "studies": studies, "prefill_h": before,
            "load_min_max": (min(load), max(load)), "daily_cycle": daily_cycle}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=1.0, help="simulated hours (default 1)")
    ap.add_argument("--speed", type=float, default=10.0, help="x real time (default 10)")
    ap.add_argument("--step", type=float, default=5.0, help="simulated seconds per stretch")
    ap.add_argument("--trades-per-day", type=int, default=2_000_000)
    ap.add_argument("--every", type=float, default=5.0, help="wall seconds between samples")
    ap.add_argument("--warmup", type=float, default=0.1, help="share of the run left out")
    ap.add_argument("--store", default=None, help="store URL (default: a new DuckDB file)")
    ap.add_argument("--postgres", action="store_true",
                    help="also on a throwaway PostgreSQL cluster")
    ap.add_argument("--studies", default=",".join(STUDIES),
                    help="the chart's studies, comma-separated ('' for bars and cells only)")
    ap.add_argument("--only-postgres", action="store_true", help="PostgreSQL only")
    ap.add_argument("--start", default=str(START),
                    help="the simulated market's start (UTC; default 6 h into a trading day; "
                         "'2024-03-05 00:00': from the day's open; '2024-03-05 22:00': across "
                         "a trading day, where the studies start again)")
    ap.add_argument("--prefill", type=float, default=PREFILL_H,
                    help="simulated hours written into the store before the run (default 5: "
                         "the hub's history full; 0: a cold start)")
    ap.add_argument("--daily-cycle", action="store_true",
                    help="the simulated market's day and week rhythm (default: every minute "
                         "weighs the same, so what the hub keeps does not trend and a growing "
                         "RSS is the server's own; with the rhythm, the 5 h kept get busier "
                         "through the morning)")
    ap.add_argument("--no-recycle", action="store_true",
                    help="the server never recycles its DuckDB store (to compare)")
    ap.add_argument("--no-drop-cache", action="store_true",
                    help="the server never drops its DuckDB store's cache (to compare)")
    ap.add_argument("--quick", action="store_true", help="6 simulated minutes")
    ap.add_argument("--out", default="memory")
    ap.add_argument("--keep-log", default=None, metavar="PREFIX",
                    help="diagnosis: keep the served process's memory log (its allocators and "
                         "mappings every 5 s) as PREFIX.STORE.jsonl")
    ap.add_argument("--trace-growth", default=None, metavar="FILE",
                    help="diagnosis: the call stacks whose allocations (Python's objects, numpy's "
                         "arrays apart) grew most after warm-up, written to FILE (tracemalloc; "
                         "slows the server)")
    args = ap.parse_args(argv)
    hours = 0.1 if args.quick else args.hours
    scratch = tempfile.TemporaryDirectory(prefix="bench-memory-")  # the store, removed at the end
    targets = {"DuckDB" if not args.store or args.store.startswith("duckdb") else "store":
               lambda: args.store or f"duckdb:///{scratch.name}/memory.duckdb"}
    clusters = None
    if args.only_postgres:
        targets.clear()
    if args.postgres or args.only_postgres:
        clusters = PgClusters(want_timescale=False).start()
        if clusters.plain is not None:
            targets["PostgreSQL"] = lambda c=clusters.plain: c.url(c.create_database())
    rows, meta = [], {"env": environment(), **vars(args)}
    try:
        for label, url_of in targets.items():
            log(f"{label}: {hours:g} simulated h at {args.speed:g}x: about "
                f"{hours * 3600 / args.speed:.0f} s")
            got = run(url_of(), hours, args.speed, args.step, args.trades_per_day, args.every,
                      args.warmup, [s for s in args.studies.split(",") if s],
                      pd.Timestamp(args.start, tz="UTC"), args.prefill, args.trace_growth,
                      not args.no_recycle, not args.no_drop_cache,
                      args.keep_log and f"{args.keep_log}.{label}.jsonl", args.daily_cycle)
            meta[label] = {"load_average": os.getloadavg(), **got}
            slope, stored = got["slope_mb_per_h"], got["slopes_mb_per_h"].get("stored")
            rows.append(Row(
                f"{label}: server RSS growth per simulated hour after warm-up",
                slope, "MB", got["rss_warm_mb"], "RSS after warm-up", None,
                f"flat: <= {FLAT_MB_PER_H:g} MB/h", slope <= FLAT_MB_PER_H,
                note=f"{slope:+.1f} +- {got['slope_error_mb_per_h']:.1f} MB/h"
                     + (f" ({slope / stored:.1f}x the growth of the store's files, "
                        f"{stored:+.1f} MB/h)" if stored else "") + "; "
                     f"{got['prefill_h']:g} h stored before; "
                     f"{got['trades']:,} trades, {hours:g} h at {args.speed:g}x in "
                     f"{got['wall_s']:.0f} s ({got['late_steps']} of {got['steps']} stretches "
                     f"late); RSS {got['rss_warm_mb']:.0f} -> {got['rss_end_mb']:.0f} MB, max "
                     f"{got['rss_max_mb']:.0f}; {len(got['samples'])} samples"
                     f"; market {'with' if got['daily_cycle'] else 'without'} its daily cycle, "
                     f"footprint cells in the kept history {got['kept_cells'][0]:,.0f} -> "
                     f"{got['kept_cells'][1]:,.0f} ({got['kept_cells_pct_per_h']:+.1f}%/h)"
                     f"; load average {got['load_min_max'][0]:.1f}-{got['load_min_max'][1]:.1f}"
                     + (f"; DuckDB's eviction queues (nodes, dead) {got['eviction_queues'][0]} "
                        f"-> {got['eviction_queues'][1]}" if got["eviction_queues"] and
                        got["eviction_queues"][1] else "")
                     + (f"; {len(got['recycles'])} recycle(s) of the store, reads and writes "
                        "held " + ", ".join(f"{r['held_s'] * 1000:.0f}" for r in got["recycles"])
                        + " ms" if got["recycles"] else "; no recycle")
                     + (f"; {len(got['cache_drops_s'])} drop(s) of its cache, reads and writes "
                        f"held {np.median(got['cache_drops_s']) * 1000:.0f} ms (median), "
                        f"{max(got['cache_drops_s']) * 1000:.0f} ms (max)"
                        if got["cache_drops_s"] else "")
                     + (f"; from the first recycle after warm-up "
                        f"({got['after_first_recycle']['from_h']:.2f} h) on: "
                        f"{got['after_first_recycle']['slope_mb_per_h']:+.1f} MB/h ("
                        + ", ".join(f"{name} {v:+.1f}" for name, v in
                                    got["after_first_recycle"]["slopes_mb_per_h"].items())
                        + ")" if "after_first_recycle" in got else "")
                     + "; RSS by simulated half hour " + ", ".join(
                         f"{a:.0f}-{b:.0f}" for a, b in got["rss_by_half_hour"]) + " MB"
                     + "; slopes MB/h: " + ", ".join(
                         f"{name} {v:+.1f}" for name, v in got["slopes_mb_per_h"].items())))
    finally:
        scratch.cleanup()
        if clusters is not None:
            clusters.stop()
    print_table(rows)
    for row in rows:
        log(f"{row.figure.split(':')[0]}: {row.value:+.1f} MB per simulated hour: flat "
            f"(<= {FLAT_MB_PER_H:g}) {'met' if row.met else 'NOT met'}")
    if len(rows) == 2:
        log(f"{rows[0].figure.split(':')[0]} minus {rows[1].figure.split(':')[0]}: "
            f"{rows[0].value - rows[1].value:+.1f} MB/h")
    for label in targets:
        for r in meta[label].get("recycles", []):
            log(f"{label}: recycled: held {r['held_s'] * 1000:.0f} ms (waited "
                f"{r['waited_s'] * 1000:.0f}, close {r['close_s'] * 1000:.0f}, open "
                f"{r['open_s'] * 1000:.0f}); RSS {r['rss_mb'][0]:.0f} -> {r['rss_mb'][1]:.0f} MB")
    log(f"load average (1, 5, 15 min) at the end {os.getloadavg()} on {os.cpu_count()} CPUs")
    log(f"written {write_json(args.out, rows, meta)}")


if __name__ == "__main__":
    main()
