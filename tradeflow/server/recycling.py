"""When the served DuckDB store gives memory back.

DuckDB keeps every block of the file it has read until its memory limit (80% of the machine's
memory by default), so a served store's cache grows with the market (~4 MB a simulated hour of a
busy one, against 2 for "flat"): blocks read once or twice and never again. Its eviction queues
keep a node for every buffer it ever unpinned until one queue holds ~33,000 (~9 MB). Both are
given back by dropping the cache (``DuckDBStore.drop_cache``: 5-30 ms, which also purges the
queues' dead nodes) every ``DROP_CACHE_EVERY_S``. Dropped every 5 minutes, DuckDB's own memory
stays flat over 6 simulated hours of a busy market (-0.1 to +0.2 MB/h); the server's RSS grows
+2.4 MB/h there, in glibc's heap (the studies' rows, with the market's activity), not DuckDB's
(bench_memory).

Recycling the store (closing and opening it again in place, ``DuckDBStore.recycle``: 25-200 ms)
gives back everything DuckDB's instance holds; it is kept for growth the drops do not give back.
Its trigger is measured: the server's resident memory, checked every ``CHECK_EVERY_S``, against
its lowest since the store was last opened; when it has grown by ``RECYCLE_AFTER_MB``, and at
least ``MIN_INTERVAL_S`` after the last open, the store is recycled. Growth that is not
DuckDB's (Python's heap, desk sessions) is not given back by a recycle, but the baseline is
measured again after it, so such growth costs one recycle per ``RECYCLE_AFTER_MB``, no more.
"""
from __future__ import annotations

import asyncio
import logging
import time

import psutil

from data_access import StoreError

log = logging.getLogger("tradeflow.server")

CHECK_EVERY_S = 60.0
# The cache a chart's reads keep warm (its last minutes of trades) is back within a second; a
# drop holds reads and writes 5-30 ms.
DROP_CACHE_EVERY_S = 300.0
# A recycle with 5 simulated hours stored holds reads and writes 25-200 ms (the close's
# checkpoint most of it; bench_memory) and makes the next read ~20 ms slower (a cold cache). With
# the cache dropped, the server's RSS wanders in a band ~20-30 MB wide (its allocators' free
# pages, sessions): at 16 MB the store was recycled every half hour, each time starting its
# eviction queues again; at 64 it is a backstop.
RECYCLE_AFTER_MB = 64.0
MIN_INTERVAL_S = 600.0


def rss_mb() -> float:
    """This process's resident memory, MB."""
    return psutil.Process().memory_info().rss / 2**20


class Recycler:
    """Drops ``store``'s cache every ``drop_cache_every_s`` of ``clock()``, and recycles the
    store when ``measure()`` (MB) has grown by ``after_mb`` over its lowest since it was last
    opened, at most once every ``min_interval_s``."""

    def __init__(self, store, measure=rss_mb, after_mb: float | None = None,
                 min_interval_s: float | None = None, clock=time.monotonic,
                 drop_cache_every_s: float | None = None):
        self.store, self.measure, self.clock = store, measure, clock
        self.after_mb = RECYCLE_AFTER_MB if after_mb is None else after_mb
        self.min_interval_s = MIN_INTERVAL_S if min_interval_s is None else min_interval_s
        self.drop_cache_every_s = (DROP_CACHE_EVERY_S if drop_cache_every_s is None
                                   else drop_cache_every_s)
        self.lowest: float | None = None  # the measure's lowest since the last open
        self.opened_at = self.dropped_at = clock()

    def check(self):
        """One look: the cache dropped when it is time, then the store's ``Recycled`` when it
        was recycled, else None. Blocks while the store drops its cache or recycles: run it off
        the event loop."""
        if self.clock() - self.dropped_at >= self.drop_cache_every_s:
            self.store.drop_cache()
            self.dropped_at = self.clock()
        now, mb = self.clock(), self.measure()
        self.lowest = mb if self.lowest is None else min(self.lowest, mb)
        if mb - self.lowest < self.after_mb or now - self.opened_at < self.min_interval_s:
            return None
        got = self.store.recycle()
        if got is not None:
            log.info("recycled the DuckDB store (memory %+.0f MB since it was opened): reads "
                     "and writes held %.0f ms", mb - self.lowest, got.held_s * 1000)
            self.lowest = None  # the next check measures the new instance
            self.opened_at = self.clock()
        return got

    async def run(self, every: float | None = None) -> None:
        """Check every ``every`` s (``CHECK_EVERY_S``) until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECK_EVERY_S if every is None else every)
            try:
                await loop.run_in_executor(None, self.check)
            except StoreError as exc:  # the file taken by another process: said, retried later
                log.error("%s", exc)
