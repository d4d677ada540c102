"""Derive the async store API from a sync backend and the sync API from an async one."""
from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager

from .store import AsyncStore, Store

# Methods that pass straight through (transaction and close need care and are written out).
_DELEGATED = ("add_instrument", "instruments", "instrument", "write_trades", "write_bars",
              "write_depth", "write_liquidations", "add_api_key", "api_keys",
              "revoke_api_key", "trades", "bars", "footprint", "depth",
              "liquidations")


class AsyncFromSync(AsyncStore):
    """Async face of a sync store: every call runs on one worker thread, in order."""

    def __init__(self, store: Store, worker: ThreadPoolExecutor | None = None):
        self.sync = store
        self.url = store.url
        self._worker = worker or ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    def _call(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._worker, functools.partial(fn, *args, **kwargs))

    @asynccontextmanager
    async def transaction(self):
        cm = self.sync.transaction()
        tx = await self._call(cm.__enter__)
        try:
            yield AsyncFromSync(tx, self._worker)
        except BaseException as exc:
            await self._call(cm.__exit__, type(exc), exc, exc.__traceback__)
            raise
        else:
            await self._call(cm.__exit__, None, None, None)

    async def close(self):
        await self._call(self.sync.close)
        self._worker.shutdown()


class SyncFromAsync(Store):
    """Sync face of an async store: a private event loop on a background thread runs the calls."""

    def __init__(self, astore: AsyncStore, loop: asyncio.AbstractEventLoop):
        self.astore = astore
        self.url = astore.url
        self._loop = loop

    @classmethod
    def open(cls, connect) -> "SyncFromAsync":
        """Run ``connect()`` (a coroutine function returning an AsyncStore) on a new loop thread."""
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="store-loop", daemon=True).start()
        try:
            astore = asyncio.run_coroutine_threadsafe(connect(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            raise
        return cls(astore, loop)

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @contextmanager
    def transaction(self):
        cm = self.astore.transaction()
        tx = self._run(cm.__aenter__())
        try:
            yield SyncFromAsync(tx, self._loop)
        except BaseException as exc:
            self._run(cm.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        else:
            self._run(cm.__aexit__(None, None, None))

    def close(self):
        try:
            self._run(self.astore.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)


def _async_delegate(name):
    async def method(self, *args, **kwargs):
        return await self._call(getattr(self.sync, name), *args, **kwargs)
    method.__name__ = name
    return method


def _sync_delegate(name):
    def method(self, *args, **kwargs):
        return self._run(getattr(self.astore, name)(*args, **kwargs))
    method.__name__ = name
    return method


for _name in _DELEGATED:
    setattr(AsyncFromSync, _name, _async_delegate(_name))
    setattr(SyncFromAsync, _name, _sync_delegate(_name))
AsyncFromSync.__abstractmethods__ = frozenset()
SyncFromAsync.__abstractmethods__ = frozenset()
