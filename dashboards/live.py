"""A chart's live feed: a hub subscription read by an asyncio task, its messages handed to the
chart by a periodic callback of the session.

The task only buffers (it runs whenever the hub has news); the session's periodic callback
(every :data:`PERIOD_MS`) takes what is buffered and gives it to ``deliver`` (the chart's
``on_message``) inside ``pn.io.hold()``, so one drain is one round of Bokeh events however many
commits it holds. A :class:`~tradeflow.live.hub.Snapshot` replaces everything before it, so what
was buffered before the last one is skipped. The feed closes (task, callback, subscription) with
its session, or when ``close()`` is called.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Callable

import panel as pn

from tradeflow.live.hub import Resync, Snapshot

__all__ = ["LiveFeed", "Reads", "PERIOD_MS"]

log = logging.getLogger(__name__)

PERIOD_MS = 250


class LiveFeed:
    """Follow ``hub.subscribe(symbol, spec, studies)`` into ``deliver(message)``.

    ``periodic=False`` leaves draining to the caller (``drain()``): for tests and notebooks
    without a session."""

    def __init__(self, hub, symbol: str, spec: str, deliver: Callable[[object], None], *,
                 studies=(), period_ms: int = PERIOD_MS, periodic: bool = True):
        self.subscription = hub.subscribe(symbol, spec, studies)  # refuses bad input now
        self.deliver = deliver
        self.buffer: deque = deque()
        self.delivered = 0
        self.resyncs = 0
        self.closed = False
        self._task = asyncio.ensure_future(self._read())
        self._callback = None
        if periodic:
            self._callback = pn.state.add_periodic_callback(self.drain, period=period_ms)
            if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
                pn.state.on_session_destroyed(lambda _context: self.close())

    async def _read(self) -> None:
        try:
            async for message in self.subscription:
                self.buffer.append(message)
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
        if self._callback is not None:
            self._callback.stop()
        self._task.cancel()
        self.subscription.close()


class Reads:
    """Blocking reads of a session, off the server's loop.

    ``run``: None (a notebook, a plain ``panel serve``): a read runs when asked and its result is
    used at once. In ``tradeflow serve``: ``ServerContext.read`` (reader threads); the result
    waits until ``apply()``, which the session's periodic callback calls, so Bokeh models change
    in session callbacks only. The loop never waits on the store: its writer holds the store
    between awaits, so a read on the loop could wait for a transaction that waits for the loop.
    """

    def __init__(self, run=None):
        self.run = run
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
                return
            self.done.append(lambda: self._finish(then, failed, result))
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
