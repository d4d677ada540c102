"""``tradeflow serve --no-simulate`` with charts following its hub, for the load benchmarks.

    python -m tests.benchmarks.served --port 0 --store URL --charts BENCH1,BENCH2 \\
        --studies cvd,footprint_metrics --record FILE

The server has no endpoint a chart subscribes through from outside (pages run in its process),
so this runs the very function ``tradeflow serve`` runs (``tradeflow.server.app.run``) in this
process and, once it serves, subscribes one chart per symbol to ``ctx.pipeline.hub`` as a desk
page would. Each chart notes, per message, when it read it (``time.monotonic()``: one clock for
every process of the machine, so a feeder's send times compare with it) and how many trades its
bars hold then (closed bars' trades plus the forming bar's). On SIGINT the server stops as
``tradeflow serve`` does and the notes go to ``--record`` as JSON:
``{symbol: {"t": [...], "seen": [...], "close": [...], "messages": n, "resyncs": n}}``.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import threading
import time
from pathlib import Path


class Chart:
    """One subscription read as fast as it comes; notes (time, trades seen) per message."""

    def __init__(self, sub):
        self.sub = sub
        self.t: list[float] = []
        self.seen: list[int] = []
        self.close: list[float] = []  # the forming bar's close (else the last bar's), per message
        self.messages = self.resyncs = 0
        self.closed_trades = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        from tradeflow.live import Resync, Snapshot, Update

        async for message in self.sub:
            self.messages += 1
            if isinstance(message, Snapshot):
                # a snapshot holds the recent closed bars only: exact for the first one (an
                # empty store); after a resync the count is short, which the report shows
                self.closed_trades = int(message.closed["trades"].sum())
            elif isinstance(message, Update):
                self.closed_trades += int(message.closed["trades"].sum())
            else:
                self.resyncs += isinstance(message, Resync)
                continue
            self.t.append(time.monotonic())
            self.seen.append(self.closed_trades + int(message.current["trades"].sum()))
            last = message.current if len(message.current) else message.closed
            self.close.append(float(last["close"].iloc[-1]) if len(last) else float("nan"))

    def summary(self) -> dict:
        return {"t": self.t, "seen": self.seen, "close": self.close, "messages": self.messages,
                "resyncs": self.resyncs}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def allocators() -> dict[str, int]:
    """What this process's allocators hold, bytes: ``arrow`` (Arrow's default pool, mimalloc),
    ``glibc``/``glibc_held`` (malloc in use: Python's larger objects, numpy, pandas, DuckDB's
    C++ structures; and with its free chunks), ``jemalloc``/``jemalloc_resident`` (DuckDB's own
    allocator, ``duckdb_allocator``: in use, and resident with the freed pages it keeps)."""
    import pyarrow as pa

    from data_access.duckdb_store import duckdb_allocator

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    out = {"arrow": pa.total_allocated_bytes(), "glibc": info.uordblks + info.hblkhd,
           "glibc_held": info.arena + info.hblkhd}
    je = duckdb_allocator()
    if je:
        out.update(jemalloc=je["allocated"], jemalloc_resident=je["resident"])
    return out


def anonymous_maps() -> list[tuple[int, int, int, str]]:
    """This process's mappings that hold anonymous memory (heaps, allocators' arenas, thread
    stacks): ``(start address, size kB, anonymous kB, name)`` each (name: ``[heap]``, ``[stack]``
    or empty), from ``/proc/self/smaps``. Which of them grows tells the allocator that does
    (glibc's thread arenas are 64 MiB-aligned: ``bench_memory.map_kind``)."""
    out, start, size, name = [], None, 0, ""
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                a, b = head.split("-")
                fields = line.split()
                # (files' mappings are left out: their few anonymous pages are copy-on-write)
                name = fields[5] if len(fields) > 5 else ""
                start, size = ((None, 0) if name and not name.startswith("[")
                               else (int(a, 16), (int(b, 16) - int(a, 16)) >> 10))
            elif head == "Anonymous:" and start is not None:
                kb = int(line.split()[1])
                if kb:
                    out.append((start, size, kb, name))
    return out


# numpy reports its arrays' data to tracemalloc in this domain (numpy/_core/src/multiarray/alloc.c)
NUMPY_DOMAIN = 389047


def _trace_growth(path: str, start_s: float, first_s: float, last_s: float) -> None:
    """Start ``tracemalloc`` after ``start_s`` s (so the warm-up's allocations are not traced),
    snapshot at ``first_s`` s and at ``last_s`` s (while the server still serves: at exit its
    state is gone), and write to ``path`` the 25 call stacks whose live allocations grew most
    between them: Python's objects and, apart, numpy's arrays."""
    import tracemalloc

    time.sleep(start_s)
    tracemalloc.start(12)
    time.sleep(max(first_s - start_s, 0.0))
    first = tracemalloc.take_snapshot()
    time.sleep(max(last_s - first_s, 0.0))
    last = tracemalloc.take_snapshot()
    out = [f"# traced from {start_s:.0f} s, growth from {first_s:.0f} s to {last_s:.0f} s"]
    for label, inclusive in (("numpy arrays", True), ("everything else", False)):
        only = [tracemalloc.DomainFilter(inclusive, NUMPY_DOMAIN)]
        stats = last.filter_traces(only).compare_to(first.filter_traces(only), "traceback")
        grown = sum(s.size_diff for s in stats)
        blocks = sum(s.count_diff for s in stats)
        held = sum(s.size for s in stats)
        out.append(f"## {label}: {grown / 2**20:+.2f} MB in {blocks:+,} blocks since the first "
                   f"snapshot ({held / 2**20:.1f} MB held at the last)")
        for s in stats[:25]:
            out.append(f"{s.size_diff / 1024:+.1f} KiB, {s.count_diff:+} blocks "
                       f"(now {s.size / 1024:.1f} KiB in {s.count})")
            out.extend(f"    {line}" for line in s.traceback.format(most_recent_first=True))
    Path(path).write_text("\n".join(out) + "\n")
    tracemalloc.stop()


def _log_memory(store, path: str, every: float = 5.0) -> None:
    """Append ``{"t": monotonic, "allocators": allocators(), "duckdb": {TAG: bytes...}, ...,
    "maps": anonymous_maps()}`` every ``every`` s: the allocators, ``store.memory()`` (DuckDB's
    own accounting, on a DuckDB store) and the mappings holding anonymous memory."""
    with open(path, "a") as f:
        while True:
            f.write(json.dumps({"t": time.monotonic(), "allocators": allocators(),
                                "duckdb": store.memory() if hasattr(store, "memory") else {},
                                "queues": store.eviction_queues()
                                if hasattr(store, "eviction_queues") else {},
                                "recycles": [vars(r) for r in getattr(store, "recycles", ())],
                                "cache_drops": list(getattr(store, "cache_drops", ())),
                                "maps": anonymous_maps()})
                    + "\n")
            f.flush()
            time.sleep(every)


def main(argv=None) -> None:
    from tradeflow.server.app import run

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--store", required=True)
    ap.add_argument("--charts", default="", help="symbols, comma-separated")
    ap.add_argument("--spec", default="1m")
    ap.add_argument("--studies", default="", help="catalogue studies, comma-separated")
    ap.add_argument("--record", required=True, help="JSON file the charts' notes go to")
    ap.add_argument("--memory-log", default=None,
                    help="JSON lines file: the allocators and DuckDB's accounting every 5 s")
    ap.add_argument("--trace-growth", default=None,
                    help="file: the call stacks whose allocations grew most (Python's objects, "
                         "numpy's arrays apart; tracemalloc, slows the server)")
    ap.add_argument("--trace-window", type=float, nargs=3, default=(60.0, 120.0, 600.0),
                    metavar=("START_S", "FIRST_S", "LAST_S"),
                    help="trace from START_S s after start, growth counted from FIRST_S s to "
                         "LAST_S s")
    ap.add_argument("--recycle-speed", type=float, default=1.0,
                    help="run the DuckDB store's recycling policy this many times faster (its "
                         "intervals divided by it): a market replayed at 10x meets the policy as "
                         "the real one would")
    ap.add_argument("--no-recycle", action="store_true",
                    help="never recycle the DuckDB store (a comparison)")
    ap.add_argument("--no-drop-cache", action="store_true",
                    help="never drop the DuckDB store's cache (a comparison)")
    args = ap.parse_args(argv)
    from tradeflow.server import recycling

    recycling.CHECK_EVERY_S /= args.recycle_speed
    recycling.MIN_INTERVAL_S /= args.recycle_speed
    recycling.DROP_CACHE_EVERY_S /= args.recycle_speed
    if args.no_recycle:
        recycling.RECYCLE_AFTER_MB = float("inf")
    if args.no_drop_cache:
        recycling.DROP_CACHE_EVERY_S = float("inf")
    studies = [s for s in args.studies.split(",") if s]
    charts: dict[str, Chart] = {}

    def started(ctx) -> None:
        for symbol in filter(None, args.charts.split(",")):
            # a queue long enough that a busy loop never drops this chart to a resync
            sub = ctx.pipeline.hub.subscribe(symbol, args.spec, studies, queue_size=1_000_000)
            charts[symbol] = Chart(sub)
        if args.memory_log:
            threading.Thread(target=_log_memory, args=(ctx.store, args.memory_log),
                             daemon=True).start()
        if args.trace_growth:
            threading.Thread(target=_trace_growth,
                             args=(args.trace_growth, *args.trace_window),
                             daemon=True).start()

    asyncio.run(run(args.store, "127.0.0.1", args.port, (), started=started,
                    ready=lambda line: print(line, flush=True)))
    Path(args.record).write_text(json.dumps({s: c.summary() for s, c in charts.items()}))


if __name__ == "__main__":
    main()
