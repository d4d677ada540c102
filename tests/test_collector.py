"""The served process's garbage-collection policy (``tradeflow/server/collector.py``), on the
real collector: what survives a full collection is frozen, and frozen garbage is freed after
sessions close and at each refresh."""
from __future__ import annotations

import gc
import weakref

import pytest

from tradeflow.server.collector import Collector


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self):
        self.me = self


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collector():
    sessions = {"a", "b"}
    clock = Clock()
    c = Collector(lambda: sessions, close_debounce=10.0, refresh=600.0, freeze_after_ms=0.0,
                  clock=clock)
    c.start()
    c.tick()  # the open sessions are known
    yield c, sessions, clock
    c.stop()
    gc.unfreeze()


def test_what_survives_a_full_collection_is_frozen(collector):
    c, _, clock = collector
    gc.unfreeze()
    clock.now = 1.0
    assert c.tick() is None  # no full collection since: nothing to freeze
    gc.collect()
    clock.now = 2.0
    assert c.tick() == "freeze"
    assert gc.get_freeze_count() > 0
    survivor = Node()
    ref = weakref.ref(survivor)
    gc.collect()
    c.tick()
    del survivor
    gc.collect()
    assert ref() is not None  # frozen: a full collection no longer reaches it


def test_quick_full_collections_freeze_nothing():
    """A server without sessions: its full collections are quick, and nothing is frozen."""
    c = Collector(lambda: (), freeze_after_ms=60_000.0, clock=Clock())
    c.start()
    try:
        gc.unfreeze()
        gc.collect()
        assert c.tick() is None and gc.get_freeze_count() == 0
    finally:
        c.stop()


def frozen_garbage(c: Collector, clock: Clock) -> tuple[weakref.ref, str | None]:
    """A cycle frozen by ``c`` while alive, then dropped (as a closed session's): a weak
    reference to it, and what the tick at 1 s did."""
    node = Node()
    ref = weakref.ref(node)
    gc.collect()
    clock.now = 1.0
    return ref, c.tick()


def test_frozen_garbage_is_freed_once_sessions_closed(collector):
    c, sessions, clock = collector
    ref, done = frozen_garbage(c, clock)
    assert done == "freeze"
    sessions.discard("a")
    clock.now = 2.0
    assert c.tick() is None and ref() is not None
    clock.now = 11.9  # the closes of the next 10 s share one collection
    assert c.tick() is None and ref() is not None
    clock.now = 12.0
    assert c.tick() == "collect"
    assert ref() is None
    assert gc.get_freeze_count() > 0  # the live objects are frozen again
    assert c.collections[-1][0] == "sessions closed"
    clock.now = 30.0
    assert c.tick() is None  # nothing closed since


def test_refresh_frees_frozen_garbage_without_closes(collector):
    c, _, clock = collector
    ref, _ = frozen_garbage(c, clock)
    clock.now = 599.0
    c.tick()
    assert ref() is not None
    clock.now = 600.0
    assert c.tick() == "collect" and ref() is None
    assert c.collections[-1][0] == "refresh"


def test_stop_unhooks_and_unfreezes(collector):
    c, _, clock = collector
    gc.collect()
    clock.now = 1.0
    c.tick()
    assert gc.get_freeze_count() > 0
    c.stop()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert not c.full_ran  # its gc callback is gone
