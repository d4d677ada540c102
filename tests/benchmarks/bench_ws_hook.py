"""Trades through the websocket ingest hook of a served process: sustained trades/s into each
store (ratio to the store's bare bulk-write rate in the same run) with a chart and studies
subscribed, and latency from a batch's send to the chart's update at steady rates.

    .venv/bin/python -m tests.benchmarks.bench_ws_hook [--quick] [--no-postgres] [--out NAME]

The server is ``tradeflow serve --no-simulate`` run in-process by ``tests.benchmarks.served``
(so a chart can follow its hub); the feeders are separate processes speaking the README's
protocol over loopback (``websockets``), each one symbol on one connection (a symbol's trades
must come in time order, so one feeder per symbol), their messages encoded before the clock
starts. :func:`feeders` and :func:`prepare_store` are reused by ``bench_memory``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from queue import Empty

import numpy as np
import pandas as pd

from tests.benchmarks.common import (PgClusters, Row, chunks, environment, print_table,
                                     synthetic_trades, write_json)

GOAL = 100_000  # trades/s, the goal
STUDIES = ("cvd", "footprint_metrics", "imbalances")  # what the subscribed charts follow
SERVED = (sys.executable, "-m", "tests.benchmarks.served")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def instrument(symbol: str):
    from tradeflow.model import Instrument
    return Instrument(symbol, 0.25, exchange="SIM", asset_class="future", point_value=50.0)


def bench_trades(n: int, seed: int) -> pd.DataFrame:
    """``n`` market-like trades over one fixed UTC day (``synthetic_trades``), ids from 1."""
    return synthetic_trades(n, 1, start="2024-03-04", seed=seed)


# --------------------------------------------------------------------------------------------
# The feeder's side: messages of the protocol, one connection per process


def encode(frame: pd.DataFrame, symbol: str, rows: int, first_seq: int = 0) -> list[str]:
    """The trades as websocket batches of ``rows`` (JSON text, as a feeder sends them)."""
    times = np.datetime_as_string(frame["ts"].dt.tz_convert(None).to_numpy(), unit="us")
    sides = np.where(frame["side"].to_numpy() > 0, "buy",
                     np.where(frame["side"].to_numpy() < 0, "sell", "0"))
    out = []
    for seq, a in enumerate(range(0, len(frame), rows), start=first_seq):
        b = min(a + rows, len(frame))
        data = [{"time": t + "Z", "price": p, "size": s, "side": d if d != "0" else 0, "id": i}
                for t, p, s, d, i in zip(times[a:b].tolist(),
                                         frame["price"].to_numpy()[a:b].tolist(),
                                         frame["size"].to_numpy()[a:b].tolist(),
                                         sides[a:b].tolist(),
                                         frame["trade_id"].to_numpy()[a:b].tolist())]
        out.append(json.dumps({"seq": seq, "type": "trades", "symbol": symbol, "data": data}))
    return out


async def feed(url: str, key: str, messages: list[str], rows: list[int], window: int,
               interval: float | None = None) -> dict:
    """Send ``messages`` on one connection, at most ``window`` unanswered (``interval``: one
    every so many seconds instead, whatever is unanswered); send and answer times
    (``time.monotonic()``) per batch."""
    import websockets

    sent = [0.0] * len(messages)
    answered = [0.0] * len(messages)
    errors: list[str] = []
    notices = 0
    free = asyncio.Semaphore(window)
    # no keepalive pings: behind megabytes of batches a pong comes late, and a benchmark that
    # overloads the server on purpose would be cut off
    async with websockets.connect(url, additional_headers={"X-API-Key": key}, max_size=None,
                                  ping_interval=None) as ws:
        async def receive():
            nonlocal notices
            for _ in range(len(messages)):
                while True:
                    answer = json.loads(await ws.recv())
                    if not answer.get("slow_down"):
                        break
                    notices += 1
                seq = answer.get("ack", answer.get("seq"))
                answered[seq] = time.monotonic()
                if "error" in answer:
                    errors.append(answer["error"])
                free.release()

        receiver = asyncio.ensure_future(receive())
        t_next = time.monotonic()
        for seq, message in enumerate(messages):
            if interval is not None:
                t_next += interval
            else:
                await free.acquire()
            sent[seq] = time.monotonic()
            await ws.send(message)
            if interval is not None:
                await asyncio.sleep(max(0.0, t_next - time.monotonic()))
        await receiver
    return {"sent": sent, "answered": answered, "rows": rows, "errors": errors,
            "notices": notices}


def _feeder(job: dict, ready, go, results) -> None:
    """One feeder process: make and encode its trades, wait for the start, feed, report."""
    frame = bench_trades(job["n"], job["seed"])
    messages = encode(frame, job["symbol"], job["rows"])
    rows = [len(c) for c in chunks(frame[["price"]], job["rows"])]
    ready.put(job["symbol"])
    go.wait()
    out = asyncio.run(feed(job["url"], job["key"], messages, rows, job["window"],
                           job.get("interval")))
    results.put({"symbol": job["symbol"], **out})


def feeders(jobs: list[dict]) -> dict[str, dict]:
    """Run one feeder process per job (``url``, ``key``, ``symbol``, ``n``, ``seed``, ``rows``,
    ``window``, optional ``interval``), started together once all have encoded their
    messages; their reports by symbol."""
    mp = multiprocessing.get_context("spawn")
    ready, results, go = mp.Queue(), mp.Queue(), mp.Event()
    procs = [mp.Process(target=_feeder, args=(job, ready, go, results)) for job in jobs]
    for p in procs:
        p.start()
    def get(queue):  # the next report, or the error of a feeder that died
        while True:
            try:
                return queue.get(timeout=1.0)
            except Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a feeder failed (exit code {dead[0]}): see above")

    try:
        for _ in jobs:
            get(ready)
        go.set()
        out = {}
        for _ in jobs:
            r = get(results)
            out[r["symbol"]] = r
        return out
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()


# --------------------------------------------------------------------------------------------
# The store and the server


def prepare_store(url: str, symbols) -> str:
    """Add the instruments to the store at ``url``; a new API key (through the CLI)."""
    from data_access import open_store
    from tests.serve import new_key

    store = open_store(url)
    try:
        for symbol in symbols:
            store.add_instrument(instrument(symbol))
    finally:
        store.close()
    return new_key(url, "bench")


@contextmanager
def served(url: str, charts, studies=STUDIES, spec: str = "1m", extra=()):
    """The served process with a chart per symbol of ``charts`` (``extra``: more of
    ``served.py``'s options); yields (served, notes) where ``notes`` is filled with the charts'
    record once the server has stopped."""
    from tests.serve import serving

    record = Path(tempfile.mkstemp(prefix="bench-charts-", suffix=".json")[1])
    notes: dict = {}
    try:
        with serving(url, "--store", url, "--charts", ",".join(charts), "--spec", spec,
                     "--studies", ",".join(studies), "--record", str(record), *extra,
                     command=SERVED) as server:
            yield server, notes
        notes.update(json.loads(record.read_text() or "{}"))
    finally:
        record.unlink(missing_ok=True)


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system, all threads) of process ``pid`` (None: this one), seconds. A
    busy machine stretches wall time but hardly the CPU a piece of work needs, so CPU per trade
    compares better between runs than trades per second."""
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reached(note: dict, marks) -> np.ndarray:
    """For each cumulative trade count in ``marks``, the time the chart first held that many
    (NaN when it never did)."""
    seen, t = np.asarray(note["seen"]), np.asarray(note["t"])
    # counts only grow (no resync), so the first message at or past a mark is a search away
    top = np.maximum.accumulate(seen) if len(seen) else seen
    i = np.searchsorted(top, marks, side="left")
    out = np.full(len(marks), np.nan)
    ok = i < len(t)
    out[ok] = t[i[ok]]
    return out


# --------------------------------------------------------------------------------------------
# Figures


async def bare_rate(url: str, frames: dict[str, pd.DataFrame], per_tx: int) -> tuple[float, float]:
    """The store's own bulk-write rate: the same trades by ``write_trades``, every symbol's next
    ``per_tx`` rows in one transaction (the pipeline's writer's shape, minus everything
    else): trades/s and CPU seconds of this process per million trades."""
    from data_access import open_async_store

    store = await open_async_store(url)
    try:
        for symbol in frames:
            await store.add_instrument(instrument(symbol))
        parts = {s: chunks(f, per_tx) for s, f in frames.items()}
        t0, c0 = time.perf_counter(), cpu_seconds()
        for k in range(max(len(p) for p in parts.values())):
            async with store.transaction() as tx:
                for symbol, p in parts.items():
                    if k < len(p):
                        await tx.write_trades(symbol, p[k])
        n = sum(len(f) for f in frames.values())
        return n / (time.perf_counter() - t0), (cpu_seconds() - c0) / n * 1e6
    finally:
        await store.close()


def throughput(url: str, n: int, clients: int, rows: int, window: int) -> dict:
    """Trades/s acknowledged through the hook, ``clients`` feeders of ``n`` trades each, a
    chart with :data:`STUDIES` on every symbol."""
    symbols = [f"BENCH{i + 1}" for i in range(clients)]
    key = prepare_store(url, symbols)
    with served(url, symbols) as (server, notes):
        jobs = [{"url": server.ws, "key": key, "symbol": s, "n": n, "seed": 7 + i,
                 "rows": rows, "window": window} for i, s in enumerate(symbols)]
        c0 = cpu_seconds(server.proc.pid)
        got = feeders(jobs)
        time.sleep(1.0)  # the charts' last updates (the record says when they came)
        cpu = cpu_seconds(server.proc.pid) - c0
    t0 = min(r["sent"][0] for r in got.values())
    acked = max(max(r["answered"]) for r in got.values())
    total = sum(sum(r["rows"]) for r in got.values())
    errors = [e for r in got.values() for e in r["errors"]]
    done, lat = [], []
    for s, r in got.items():
        marks = np.cumsum(r["rows"])
        at = reached(notes.get(s, {"t": [], "seen": []}), marks)
        done.append(at[-1])
        lat.append(at - np.asarray(r["sent"]))
    lat = np.concatenate(lat) * 1000
    published = max(done)
    return {"rate": total / (acked - t0), "trades": total, "seconds": acked - t0,
            "rate_published": total / (published - t0) if np.isfinite(published) else None,
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "notices": sum(r["notices"] for r in got.values()),
            "resyncs": sum(c.get("resyncs", 0) for c in notes.values()),
            "cpu_s_per_million": cpu / total * 1e6,
            "latency_p50": float(np.nanpercentile(lat, 50)),
            "latency_p99": float(np.nanpercentile(lat, 99))}


def latency(url: str, rates, seconds: float) -> dict:
    """Send to chart update, ms, one feeder at a time sending a batch every 10 ms at each rate
    of ``rates`` (trades/s) for ``seconds``; p50/p95/p99 over its batches."""
    every = 0.01
    symbols = [f"LAT{i + 1}" for i in range(len(rates))]
    key = prepare_store(url, symbols)
    out = {}
    with served(url, symbols) as (server, notes):
        sent = {}
        for i, (symbol, rate) in enumerate(zip(symbols, rates)):
            rows = int(rate * every)
            job = {"url": server.ws, "key": key, "symbol": symbol, "n": int(rate * seconds),
                   "seed": 11 + i, "rows": rows, "window": 1, "interval": every}
            sent[symbol] = feeders([job])[symbol]
        time.sleep(1.0)
    for symbol, rate in zip(symbols, rates):
        r = sent[symbol]
        at = reached(notes[symbol], np.cumsum(r["rows"]))
        ms = (at - np.asarray(r["sent"])) * 1000
        achieved = sum(r["rows"]) / (max(r["answered"]) - r["sent"][0])
        out[rate] = {"p50": float(np.nanpercentile(ms, 50)),
                     "p95": float(np.nanpercentile(ms, 95)),
                     "p99": float(np.nanpercentile(ms, 99)), "missing": int(np.isnan(ms).sum()),
                     "batches": len(ms), "rows": int(rate * every), "achieved": achieved,
                     "errors": len(r["errors"])}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10x less data")
    ap.add_argument("--no-postgres", action="store_true", help="DuckDB only")
    ap.add_argument("--out", default="ws_hook")
    ap.add_argument("--clients", type=int, default=2, help="feeder processes (one symbol each)")
    ap.add_argument("--rows", type=int, default=10_000, help="trades per batch")
    ap.add_argument("--window", type=int, default=8, help="batches a feeder keeps unanswered")
    ap.add_argument("--trades", type=int, default=None, help="trades per feeder")
    ap.add_argument("--no-latency", action="store_true", help="throughput only")
    args = ap.parse_args(argv)

    n = args.trades or (100_000 if args.quick else 1_000_000)
    seconds = 5.0 if args.quick else 20.0
    rates = (5_000, 50_000)
    scratch = tempfile.TemporaryDirectory(prefix="bench-ws-")  # its stores, removed at the end
    tmp = scratch.name
    targets = {"DuckDB": lambda name: f"duckdb:///{tmp}/{name}.duckdb"}
    clusters = None
    if not args.no_postgres:
        clusters = PgClusters().start()
        for label, cluster in (("PostgreSQL", clusters.plain),
                               ("PostgreSQL+TimescaleDB", clusters.timescale)):
            if cluster is not None:
                targets[label] = lambda name, c=cluster: c.url(c.create_database())
    out: list[Row] = []
    meta = {"env": environment(), "load_average": os.getloadavg(), "trades_per_feeder": n, "clients": args.clients,
            "rows": args.rows, "window": args.window, "studies": STUDIES}
    frames = {f"BENCH{i + 1}": bench_trades(n, 7 + i) for i in range(args.clients)}
    try:
        for label, url_of in targets.items():
            log(f"{label}: bare bulk writes")
            bare, bare_cpu = asyncio.run(bare_rate(url_of("bare"), frames, 25_000))
            log(f"{label}: through the websocket hook ({args.clients} feeders)")
            got = throughput(url_of("hook"), n, args.clients, args.rows, args.window)
            meta[label] = {"bare": bare, "bare_cpu_s_per_million": bare_cpu, **got}
            log(f"{label}: {got['rate']:,.0f} trades/s, bare {bare:,.0f}")
            published = (f"published to the charts at {got['rate_published']:,.0f}/s"
                         if got["rate_published"] else "the charts never got all trades")
            out.append(Row(f"{label}: trades/s through the websocket hook (acknowledged)",
                           got["rate"], "trades/s", bare,
                           "bare write_trades, 50k-row transactions", got["rate"] / bare,
                           f">= {GOAL:,}", got["rate"] >= GOAL,
                           note=f"{got['trades']:,} trades in {got['seconds']:.1f} s; "
                                f"{published}; send->chart p50 {got['latency_p50']:.0f} ms, "
                                f"p99 {got['latency_p99']:.0f} ms under this load; "
                                f"{got['notices']} slow-downs, {got['errors']} errors, "
                                f"{got['resyncs']} resyncs; server CPU "
                                f"{got['cpu_s_per_million']:.1f} s per million trades (bare "
                                f"writes {bare_cpu:.1f} s)"))
            if args.no_latency:
                continue
            log(f"{label}: latency at {', '.join(f'{r:,}' for r in rates)} trades/s")
            lat = latency(url_of("latency"), rates, seconds)
            meta[label]["latency"] = lat
            for rate, d in lat.items():
                out.append(Row(f"{label}: send -> chart update p50 at {rate:,} trades/s",
                               d["p50"], "ms", None, "-", None,
                               note=f"p95 {d['p95']:.1f} ms, p99 {d['p99']:.1f} ms; batches of "
                                    f"{d['rows']} every 10 ms, {d['batches']} batches, "
                                    f"achieved {d['achieved']:,.0f} trades/s"
                                    + (f", {d['missing']} never seen" if d["missing"] else "")))
    finally:
        scratch.cleanup()
        if clusters is not None:
            clusters.stop()
    meta["load_average_end"] = os.getloadavg()
    print_table(out)
    log(f"load average (1, 5, 15 min) at the start {meta['load_average']}, at the end "
        f"{meta['load_average_end']} on {os.cpu_count()} CPUs")
    log(f"written {write_json(args.out, out, meta)}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
