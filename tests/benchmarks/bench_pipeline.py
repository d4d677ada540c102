"""Live pipeline figures: sustained trades/s into each store with aggregation and publishing on,
as a ratio to the store's bare bulk-write rate in the same run; latency from submit to a
subscribed chart's update; memory over a long simulated run.

    .venv/bin/python -m tests.benchmarks.bench_pipeline [--quick] [--no-postgres] [--out NAME]

The measuring code is reusable by other load generators (the server's websocket hook): feed
with :func:`feed` (any ``submit(frame)`` coroutine function), follow a subscription with
:class:`Follower`, sample memory with :func:`rss_mb`.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import time

import numpy as np
import pandas as pd

from tests.benchmarks.common import (BENCH_INSTRUMENT, PgClusters, Row, chunks, environment,
                                     print_table, synthetic_trades, write_json)

GOAL = 100_000  # trades/s, the goal


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rss_mb() -> float:
    """Resident memory of this process, MB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def feed(submit, batches, window: int = 64, retries: list | None = None) -> list[float]:
    """Submit ``batches`` in order with up to ``window`` unanswered at once (a producer that
    pipelines, as a websocket feeder does); returns each batch's submit time (perf_counter).
    Overloaded answers are waited out in order (the window drains first, so order holds)."""
    from tradeflow.live import Overloaded

    sent = []
    pending: set[asyncio.Task] = set()
    i = 0
    while i < len(batches):
        if len(pending) >= window:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            await _check(done, retries)
        sent.append(time.perf_counter())
        task = asyncio.ensure_future(submit(batches[i]))
        await asyncio.sleep(0)  # let it queue before the next one is made
        if task.done() and isinstance(task.exception(), Overloaded):
            sent.pop()
            if pending:
                await asyncio.wait(pending)
                await _check(pending, retries)
                pending = set()
            await asyncio.sleep(task.exception().retry_after)
            if retries is not None:
                retries.append(task.exception().retry_after)
            continue
        pending.add(task)
        i += 1
    if pending:
        await asyncio.wait(pending)
        await _check(pending, retries)
    return sent


async def _check(done, retries) -> None:
    for task in done:
        task.result()  # raise anything but success


class Follower:
    """Reads a subscription as fast as it can; notes when the cumulative trade count it has
    seen (closed bars' trades plus the forming bar's) reaches each mark."""

    def __init__(self, sub, marks: list[int]):
        self.sub, self.marks = sub, marks
        self.reached: list[float] = []
        self.closed_trades = 0
        self.messages = 0
        self.resyncs = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        from tradeflow.live import Resync, Snapshot, Update
        async for message in self.sub:
            self.messages += 1
            if isinstance(message, Snapshot):
                self.closed_trades = int(message.closed["trades"].sum())
                seen = self.closed_trades + int(message.current["trades"].sum())
            elif isinstance(message, Update):
                self.closed_trades += int(message.closed["trades"].sum())
                seen = self.closed_trades + int(message.current["trades"].sum())
            else:
                self.resyncs += isinstance(message, Resync)
                continue
            now = time.perf_counter()
            while len(self.reached) < len(self.marks) and seen >= self.marks[len(self.reached)]:
                self.reached.append(now)

    async def stop(self) -> None:
        self.sub.close()
        await self.task


def make_batches(n: int, rows: int, seed: int = 7, days: int = 1):
    trades = synthetic_trades(n, days, seed=seed)
    trades["trade_id"] = np.arange(len(trades), dtype="int64")
    return chunks(trades, rows)


async def open_store(url: str):
    from data_access import open_async_store
    store = await open_async_store(url)
    await store.add_instrument(BENCH_INSTRUMENT)
    return store


async def bare_rate(url: str, batches, per_tx: int) -> float:
    """The store's bulk-write rate: the same trades written by ``write_trades`` in transactions
    of ``per_tx`` rows, one after the other (what the pipeline's writer does, minus everything
    else), trades/s."""
    store = await open_store(url)
    try:
        whole = pd.concat(batches, ignore_index=True)
        t0 = time.perf_counter()
        for part in chunks(whole, per_tx):
            async with store.transaction() as tx:
                await tx.write_trades(BENCH_INSTRUMENT.symbol, part)
        return len(whole) / (time.perf_counter() - t0)
    finally:
        await store.close()


async def pipeline_rate(url: str, batches, window: int, studies=("cvd",)) -> dict:
    """Sustained trades/s through the pipeline (validation, writes, one 1-minute stream with
    ``studies``, a subscriber reading every update)."""
    from tradeflow.live import Pipeline

    store = await open_store(url)
    pipeline = Pipeline(store, max_pending_rows=window * len(batches[0]) * 2)
    await pipeline.start()
    try:
        marks = np.cumsum([len(b) for b in batches]).tolist()
        follower = Follower(pipeline.hub.subscribe(BENCH_INSTRUMENT.symbol, "1m", studies),
                            marks)
        symbol = BENCH_INSTRUMENT.symbol
        t0 = time.perf_counter()
        sent = await feed(lambda b: pipeline.submit_trades(symbol, b, "bench"), batches, window)
        acked = time.perf_counter()
        while len(follower.reached) < len(marks) and follower.task.done() is False:
            await asyncio.sleep(0.001)
        published = time.perf_counter()
        await follower.stop()
        n = marks[-1]
        return {"rate": n / (acked - t0), "rate_published": n / (published - t0),
                "transactions": pipeline.stats["transactions"], "trades": n,
                "resyncs": follower.resyncs, "sent": sent}
    finally:
        await pipeline.stop()
        await store.close()


async def latency(url: str, batches, interval: float) -> dict:
    """Submit to the subscriber's update, ms, at a steady pace (one batch every ``interval``
    seconds), p50/p95/p99 over the batches."""
    from tradeflow.live import Pipeline

    store = await open_store(url)
    pipeline = Pipeline(store)
    await pipeline.start()
    try:
        symbol = BENCH_INSTRUMENT.symbol
        marks = np.cumsum([len(b) for b in batches]).tolist()
        follower = Follower(pipeline.hub.subscribe(symbol, "1m", ["cvd"]), marks)
        sent, tasks = [], []
        t_next = time.perf_counter()
        for batch in batches:
            t_next += interval
            sent.append(time.perf_counter())
            tasks.append(asyncio.ensure_future(pipeline.submit_trades(symbol, batch, "bench")))
            await asyncio.sleep(max(0.0, t_next - time.perf_counter()))
        await asyncio.gather(*tasks)
        while len(follower.reached) < len(marks):
            await asyncio.sleep(0.001)
        await follower.stop()
        ms = np.array(follower.reached) - np.array(sent)
        ms *= 1000
        return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                "p99": float(np.percentile(ms, 99)), "batches": len(batches),
                "rows": len(batches[0]), "interval_s": interval}
    finally:
        await pipeline.stop()
        await store.close()


async def memory(url: str, hours: float, trades_per_day: int, batch_seconds: float) -> dict:
    """RSS while a long simulated stream (``hours`` of simulated BTCUSDT trades, fed as fast as
    the pipeline takes them, batches of ``batch_seconds`` of market time) goes through the
    pipeline with a 1-minute chart subscribed (bars and footprint; studies keep their whole
    session, so they are left out of this figure)."""
    from tradeflow.ingest.simulator import MarketSimulator
    from tradeflow.live import Pipeline
    from tradeflow.model import Instrument

    btc = Instrument("BTCUSDT", 0.1, "SIM", "crypto")
    store = await open_store(url)
    await store.add_instrument(btc)
    pipeline = Pipeline(store, history=300)
    await pipeline.start()
    sim = MarketSimulator(btc, seed=3, trades_per_day=trades_per_day)
    start = pd.Timestamp("2024-03-05", tz="UTC")
    steps = int(hours * 3600 / batch_seconds)
    follower = Follower(pipeline.hub.subscribe("BTCUSDT", "1m"), [])
    samples, n = [], 0
    try:
        for i in range(steps):
            a = start + pd.Timedelta(seconds=i * batch_seconds)
            batch = sim.generate(a, a + pd.Timedelta(seconds=batch_seconds))
            n += await pipeline.submit_trades("BTCUSDT", batch.trades, "sim")
            await pipeline.submit_depth("BTCUSDT", batch.depth, "sim")
            if i % max(1, steps // 20) == 0 or i == steps - 1:
                gc.collect()
                samples.append((i + 1, n, rss_mb()))
        await follower.stop()
    finally:
        await pipeline.stop()
        await store.close()
    half = samples[len(samples) // 2][2]
    return {"samples": samples, "trades": n, "rss_half_mb": half, "rss_end_mb": samples[-1][2],
            "growth_mb": samples[-1][2] - half, "messages": follower.messages}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10x less data")
    ap.add_argument("--no-postgres", action="store_true", help="DuckDB only")
    ap.add_argument("--out", default="pipeline")
    ap.add_argument("--window", type=int, default=64,
                    help="batches a producer keeps unanswered (default 64)")
    ap.add_argument("--no-memory", action="store_true", help="leave out the memory figure")
    args = ap.parse_args(argv)

    n = 200_000 if args.quick else 2_000_000
    rows, window = 1_000, args.window
    import tempfile
    scratch = tempfile.TemporaryDirectory(prefix="bench-pipeline-")  # its stores, removed at the end
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
    meta = {"env": environment(), "trades": n, "batch_rows": rows, "window": window}
    batches = make_batches(n, rows)
    try:
        for label, url_of in targets.items():
            log(f"{label}: bare bulk writes")
            bare = asyncio.run(bare_rate(url_of("bare"), batches, 50_000))
            log(f"{label}: through the pipeline")
            got = asyncio.run(pipeline_rate(url_of("pipeline"), batches, window))
            got.pop("sent")
            meta[label] = {"bare": bare, **got}
            out.append(Row(f"{label}: trades/s through the pipeline (acknowledged)", got["rate"],
                           "trades/s", bare, "bare write_trades, 50k-row transactions",
                           got["rate"] / bare, f">= {GOAL:,}", got["rate"] >= GOAL,
                           note=f"{got['transactions']} transactions; published to the chart "
                                f"at {got['rate_published']:,.0f}/s"))
            for size, every in ((50, 0.01), (200, 0.005)):  # 5,000 and 40,000 trades/s
                log(f"{label}: latency at {size / every:,.0f} trades/s")
                count = (60_000 if args.quick else 200_000) * size // 200
                lat = asyncio.run(latency(url_of(f"latency{size}"),
                                          make_batches(count, size, seed=11), every))
                meta[label][f"latency_{size / every:.0f}"] = lat
                out.append(Row(f"{label}: submit -> chart update p50 at {size / every:,.0f} "
                               "trades/s", lat["p50"], "ms", None, "-", None,
                               note=f"p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms; "
                               f"batches of {size} every {every * 1000:g} ms"))
        if args.no_memory:
            raise SystemExit(_finish(out, args.out, meta))
        log("DuckDB: memory over a long simulated run")
        hours = 1.0 if args.quick else 4.0
        mem = asyncio.run(memory(targets["DuckDB"]("memory"), hours, 2_000_000,
                                 2.5 if args.quick else 10.0))
        meta["memory"] = mem
        out.append(Row(f"DuckDB: RSS growth over the second half of {hours:g} h simulated",
                       mem["growth_mb"], "MB", mem["rss_half_mb"], "RSS at half-time (MB)", None,
                       note=f"{mem['trades']:,} trades; RSS end {mem['rss_end_mb']:.0f} MB"))
    finally:
        scratch.cleanup()
        if clusters is not None:
            clusters.stop()
    _finish(out, args.out, meta)


def _finish(out, name, meta) -> None:
    print_table(out)
    log(f"written {write_json(name, out, meta)}")


if __name__ == "__main__":
    main()
