"""When the served DuckDB store is recycled: closed and opened again in place
(``DuckDBStore.recycle``), which gives back what DuckDB keeps for the life of an instance (the
dead nodes of its eviction queues and the blocks they keep, its cache of the file; ~5 MB a
simulated hour of a busy market after the first, against 2 for "flat").

The trigger is measured, not a clock: the server's resident memory, checked every
``CHECK_EVERY_S``, against its lowest since the store was last opened; when it has grown by
``RECYCLE_AFTER_MB``, and at least ``MIN_INTERVAL_S`` after the last open, the store is recycled.
Growth that is not DuckDB's (Python's heap) is not given back by a recycle, but the baseline is
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
# A recycle with 5 simulated hours stored holds reads and writes 25-115 ms (the close's
# checkpoint most of it; bench_memory) and makes the next read ~20 ms slower (a cold cache). A
# fresh instance's working set regrows 10-15 MB within minutes (its cache, rows not yet
# checkpointed, its allocator's free pages): at 8 MB the server recycled at every minimum
# interval (9 times in 2 simulated hours of a busy market), at 16 about every half hour, with
# its memory as flat.
RECYCLE_AFTER_MB = 16.0
MIN_INTERVAL_S = 600.0


def rss_mb() -> float:
    """This process's resident memory, MB."""
    return psutil.Process().memory_info().rss / 2**20


class Recycler:
    """Recycles ``store`` when ``measure()`` (MB) has grown by ``after_mb`` over its lowest
    since the store was last opened, at most once every ``min_interval_s`` of ``clock()``."""

    def __init__(self, store, measure=rss_mb, after_mb: float | None = None,
                 min_interval_s: float | None = None, clock=time.monotonic):
        self.store, self.measure, self.clock = store, measure, clock
        self.after_mb = RECYCLE_AFTER_MB if after_mb is None else after_mb
        self.min_interval_s = MIN_INTERVAL_S if min_interval_s is None else min_interval_s
        self.lowest: float | None = None  # the measure's lowest since the last open
        self.opened_at = clock()

    def check(self):
        """One look at the measure; the store's ``Recycled`` when it was recycled, else None.
        Blocks while the store recycles: run it off the event loop."""
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
