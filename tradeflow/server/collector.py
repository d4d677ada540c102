"""The served process's garbage-collection policy: what survives a full collection is frozen.

Why: each desk session holds ~20,000 long-lived Python objects (Bokeh models, param watchers).
CPython's full (generation-2) collection walks every tracked object: at 50 sessions ~1.3M
objects, ~0.9 s during which no session is served and no trade ingested, about every 20 s under
load. Those pauses were the tail of trade -> browser latency.

``gc.freeze()`` moves every object alive now to the permanent generation, which collections do
not walk (it is O(1)). Right after a full collection everything left is alive, so the collector
freezes then, when that collection took :data:`FREEZE_AFTER_MS` or more: the next full
collections walk only what was made since (tens of milliseconds). A server without sessions
has nothing worth freezing, and freezes nothing after start-up.

What is frozen is never collected, and objects frozen alive can die later inside cycles: those
of a closed session (Bokeh's models and document refer to each other), and the odd callback
closure caught in flight. So after sessions close (the closes of :data:`CLOSE_DEBOUNCE` seconds
together), and every :data:`REFRESH` seconds, the collector unfreezes and runs one full
collection: the pause Bokeh and Panel already pay at every close, now shared.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

CLOSE_DEBOUNCE = 10.0  # s: closes within this share one full collection
REFRESH = 600.0        # s: a full collection of everything at least this often
FREEZE_AFTER_MS = 50.0  # a full collection this long: what survived it is worth freezing
TICK = 1.0             # s


class Collector:
    """Freezes what survives slow full collections; frees the frozen garbage after sessions
    close.

    ``sessions()`` gives the ids of the sessions open now; :meth:`tick` runs every :data:`TICK`
    seconds and says what it did (``"freeze"``, ``"collect"`` or None). :meth:`start` hooks it
    into ``gc.callbacks``, :meth:`stop` unhooks it and unfreezes."""

    def __init__(self, sessions: Callable[[], Iterable[str]],
                 close_debounce: float = CLOSE_DEBOUNCE, refresh: float = REFRESH,
                 freeze_after_ms: float = FREEZE_AFTER_MS, clock=time.monotonic):
        self.sessions, self.close_debounce, self.refresh, self.clock = (
            sessions, close_debounce, refresh, clock)
        self.freeze_after_ms = freeze_after_ms
        self.open: set[str] = set()
        self.closed_at: float | None = None  # the first close whose objects are still frozen
        self.full_ran = False  # a slow full collection ran since the last tick
        self._began = 0.0      # when the collection running now began (perf_counter)
        self.last_full = clock()
        # the last full collections it ran: (why, objects freed, ms), newest last
        self.collections: deque[tuple[str, int, float]] = deque(maxlen=100)

    def start(self) -> None:
        gc.callbacks.append(self._seen)

    def stop(self) -> None:
        if self._seen in gc.callbacks:
            gc.callbacks.remove(self._seen)
        gc.unfreeze()

    def _seen(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        elif (time.perf_counter() - self._began) * 1e3 >= self.freeze_after_ms:
            self.full_ran = True

    def tick(self) -> str | None:
        now = self.clock()
        ids = set(self.sessions())
        if self.open - ids and self.closed_at is None:
            self.closed_at = now
        self.open = ids
        if self.closed_at is not None and now - self.closed_at >= self.close_debounce:
            return self._collect("sessions closed", now)
        if now - self.last_full >= self.refresh:
            return self._collect("refresh", now)
        if self.full_ran:
            self.full_ran = False
            gc.collect(1)  # what was made since that collection and is garbage already
            gc.freeze()
            return "freeze"
        return None

    def _collect(self, why: str, now: float) -> str:
        t0 = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        ms = (time.perf_counter() - t0) * 1e3
        if ms >= self.freeze_after_ms:  # (the rule of the automatic collections)
            gc.freeze()
        self.closed_at, self.last_full, self.full_ran = None, now, False
        self.collections.append((why, freed, ms))
        log.info("full garbage collection (%s): %d objects freed in %.0f ms", why, freed, ms)
        return "collect"


async def run_collector(collector: Collector, period: float = TICK) -> None:
    """Run ``collector`` (ticking every ``period`` seconds) until cancelled."""
    collector.start()
    try:
        while True:
            await asyncio.sleep(period)
            collector.tick()
    finally:
        collector.stop()
