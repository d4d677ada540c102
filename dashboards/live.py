"""A chart's live feed: a hub subscription read by an asyncio task, its messages handed to the
chart by a periodic callback of the session.

The task only buffers (it runs whenever the hub has news); the session's periodic callback
(every :data:`PERIOD_MS`) takes what is buffered and gives it to ``deliver`` (the chart's
``on_message``) inside ``pn.io.hold()``, so one drain is one round of Bokeh events however many
commits it holds. A :class:`~tradeflow.live.hub.Snapshot` replaces everything before it, so what
was buffered before the last one is skipped. The feed closes (task, callback, subscription) with
its session, or when ``close()`` is called.

A session's live work does not wait for the next period: the task ``wake``s the session when a
message arrives (a next-tick callback, one at a time), so an update reaches the page as soon as
the session can send it, and messages that arrive while one drain is pending go in it.
Periodic callbacks run as Panel's "background" callbacks (:func:`session_callback`): a plain
``pn.state.add_periodic_callback`` flips the process-wide ``busy`` flag around every call, and
every session's busy indicator follows it, so N sessions ticking 4 times a second cost N x N
model changes a second.

A session's live work starts only once its page has loaded (Panel's ``onload``, the browser's
``document_ready``). Panel (1.9.4) drops the changes a ``pn.io.hold()`` block makes before
then, counting on the document being serialized whole when the browser pulls it; but the
browser pulls it *before* it reports ready, so a change made between the two (a chart's first
draw, rows streamed into its new sources) never reached the page: the chart stayed on
"loading" and every later stream named a source the browser did not know.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from typing import Callable

import panel as pn

from tradeflow.live.hub import Resync, Snapshot

__all__ = ["LiveFeed", "Reads", "PERIOD_MS", "FALLBACK_MS", "SessionCallback",
           "session_callback", "Waker"]

log = logging.getLogger(__name__)

PERIOD_MS = 250
# a served chart's or desk's own periodic work, when what it waits for wakes it (a Waker):
# only what a wake missed waits for it (each periodic call of every session costs the loop)
FALLBACK_MS = 1000


class SessionCallback:
    """``pn.state.add_periodic_callback`` as a background callback (it does not set the
    process-wide ``busy`` flag every sessions' busy indicators follow), started once the page
    has loaded (see the module's docstring); stopped with its session or by ``stop()``.

    It is called once at load, then at a random phase of its period and every ``period_ms``
    from there: sessions loaded together (a load generator, browsers reconnecting after a
    restart) would otherwise run it in the same tick, every period. 50 desks refreshing their
    watchlists together held the loop ~0.5 s every 5 s, and the trades arriving then waited."""

    def __init__(self, callback: Callable[[], None], period_ms: int):
        from panel.io.callbacks import PeriodicCallback

        self.periodic = PeriodicCallback(callback=callback, period=period_ms, background=True)
        self.stopped = False
        self.phase_ms = random.uniform(0, period_ms)
        pn.state.onload(self._start)  # at once when loaded already, or outside a session

    def _start(self) -> None:
        if self.stopped:
            return
        self.periodic.callback()  # what waited for the page is drawn now, not a period later
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            doc.add_timeout_callback(self._start_periodic, self.phase_ms)
        else:
            self.periodic.start()

    def _start_periodic(self) -> None:
        if not self.stopped:
            self.periodic.start()
            self.periodic.callback()  # at the phase, then every period: no gap over a period

    def stop(self) -> None:
        self.stopped = True
        self.periodic.stop()


def session_callback(callback: Callable[[], None], period_ms: int = PERIOD_MS) -> SessionCallback:
    """Call ``callback`` every ``period_ms`` in the session, from when its page has loaded."""
    return SessionCallback(callback, period_ms)


class Waker:
    """Run ``callback`` on the session's next tick when woken (at most one pending): what the
    live feed calls from outside the session when a message arrives. Before the page has
    loaded it does nothing (the session's periodic work, which starts then, takes what waits);
    without a served session (a notebook, a test) neither: the caller drains itself."""

    def __init__(self, callback: Callable[[], None]):
        self.callback = callback
        doc = pn.state.curdoc
        self.doc = doc if doc is not None and doc.session_context is not None else None
        self.pending = False
        self.closed = False
        self.loaded = False
        if self.doc is not None:
            pn.state.onload(self._loaded)

    def _loaded(self) -> None:
        self.loaded = True

    def __call__(self) -> None:
        if self.doc is None or not self.loaded or self.pending or self.closed:
            return
        self.pending = True
        try:
            self.doc.add_next_tick_callback(self._run)
        except Exception:  # noqa: BLE001 -- a session going away: the periodic tick remains
            self.pending = False

    def _run(self) -> None:
        self.pending = False
        if not self.closed:
            self.callback()


class LiveFeed:
    """Follow ``hub.subscribe(symbol, spec, studies, **asked)`` into ``deliver(message)``.

    ``periodic=False`` leaves draining to the caller (``drain()``): for tests and notebooks
    without a session; ``wake`` (e.g. a :class:`Waker` of the caller's tick) is called when a
    message is buffered. With ``periodic``, the feed wakes its own drain."""

    def __init__(self, hub, symbol: str, spec: str, deliver: Callable[[object], None], *,
                 studies=(), period_ms: int = PERIOD_MS, periodic: bool = True,
                 wake: Callable[[], None] | None = None, **asked):
        # (asked: the hub's other choices, book_levels= and tape=)
        self.subscription = hub.subscribe(symbol, spec, studies, **asked)  # refuses bad input
        self.deliver = deliver
        self.buffer: deque = deque()
        self.delivered = 0
        self.resyncs = 0
        self.closed = False
        self._task = asyncio.ensure_future(self._read())
        self._callback = None
        self.wake = wake
        if periodic:
            self.wake = wake or Waker(self.drain)
            self._callback = session_callback(self.drain, period_ms)
            if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
                pn.state.on_session_destroyed(lambda _context: self.close())

    async def _read(self) -> None:
        try:
            async for message in self.subscription:
                self.buffer.append(message)
                if self.wake is not None:
                    self.wake()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 -- the chart stays; the log says why it went still
            log.exception("the live feed of %s stopped", self.subscription.key)

    def drain(self) -> int:
        """Hand what is buffered to ``deliver``, from the last Snapshot on; the messages given."""
        if not self.buffer or self.closed:
            return 0
        messages = list(self.buffer)
        self.buffer.clear()
        last_snapshot = max((i for i, m in enumerate(messages) if isinstance(m, Snapshot)),
                            default=0)
        messages = messages[last_snapshot:]
        with pn.io.hold():
            for message in messages:
                if isinstance(message, Resync):
                    self.resyncs += 1  # the Snapshot that follows replaces the chart's state
                    continue
                try:
                    self.deliver(message)
                except Exception:  # noqa: BLE001 -- one bad message must not lose the others
                    # (an exception out of pn.io.hold() drops every change held with it)
                    log.exception("a live message to %s failed", self.subscription.key)
                self.delivered += 1
        return len(messages)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if isinstance(self.wake, Waker):
            self.wake.closed = True
        if self._callback is not None:
            self._callback.stop()
        self._task.cancel()
        self.subscription.close()


class Reads:
    """Blocking reads of a session, off the server's loop.

    ``run``: None (a notebook, a plain ``panel serve``): a read runs when asked and its result is
    used at once. In ``tradeflow serve``: ``ServerContext.read`` (reader threads); the result
    waits until ``apply()``, which the session calls (``wake``, e.g. a :class:`Waker` of it, is
    called when a result waits; else its periodic callback), so Bokeh models change in session
    callbacks only. The loop never waits on the store: its writer holds the store between
    awaits, so a read on the loop could wait for a transaction that waits for the loop.
    """

    def __init__(self, run=None, wake: Callable[[], None] | None = None):
        self.run = run
        self.wake = wake
        self.done: deque = deque()
        self._running: set = set()  # the loop keeps only weak references to tasks
        self.closed = False

    def submit(self, fn, *args, then, failed) -> None:
        """``then(fn(*args))``, or ``failed(exc)`` when either raises (a chart whose result
        cannot be shown says so, rather than staying on "loading")."""
        if self.closed:
            return
        if self.run is None:
            try:
                result = fn(*args)
            except Exception as exc:  # noqa: BLE001 -- handed to failed, which says it
                failed(exc)
                return
            self._finish(then, failed, result)
            return

        async def work():
            try:
                result = await self.run(fn, *args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- as above
                self.done.append(lambda error=exc: failed(error))
            else:
                self.done.append(lambda: self._finish(then, failed, result))
            if self.wake is not None:
                self.wake()
        task = asyncio.ensure_future(work())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    @staticmethod
    def _finish(then, failed, result) -> None:
        try:
            then(result)
        except Exception as exc:  # noqa: BLE001 -- said by failed
            failed(exc)

    def apply(self) -> None:
        while self.done and not self.closed:
            try:
                self.done.popleft()()
            except Exception:  # noqa: BLE001 -- the log says why; the others still apply
                log.exception("applying a read failed")

    def close(self) -> None:
        """Drop what is pending: reads not started yet are cancelled, so a closed session's
        reads do not hold the reader threads for the sessions still open."""
        self.closed = True
        self.done.clear()
        for task in list(self._running):
            task.cancel()
