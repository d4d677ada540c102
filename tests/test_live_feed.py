"""The desk's live feed (``dashboards.live``) over the real pipeline and hub: every message the
hub sends wakes the session (so a served page shows it at once, not at the next 250 ms tick),
and a drain hands them over in order, from the last Snapshot on."""
import asyncio

import pandas as pd

from dashboards.live import LiveFeed, Waker
from tests.test_hub_studies import DAY, run, simulated, submit
from tradeflow.live import Snapshot, Update


def test_each_hub_message_wakes_the_feed_and_a_drain_hands_them_over(tmp_path):
    batches = simulated(DAY, DAY + pd.Timedelta(minutes=3), pd.Timedelta(seconds=20))

    async def body(pipeline, store):
        await submit(pipeline, batches[0])
        woken, got = [], []
        feed = LiveFeed(pipeline.hub, "BTCUSDT", "1m", got.append, periodic=False,
                        wake=lambda: woken.append(len(feed.buffer)))
        for batch in batches[1:]:
            await submit(pipeline, batch)
        for _ in range(200):  # the feed's task reads what the hub sent
            if len(woken) >= len(batches):
                break
            await asyncio.sleep(0.02)
        buffered = len(feed.buffer)
        handed = feed.drain()
        feed.close()
        return woken, buffered, handed, got

    woken, buffered, handed, got = run(f"duckdb:///{tmp_path}/store.duckdb", body)
    # one wake per message, each after the message was buffered
    assert woken == list(range(1, len(woken) + 1)) and len(woken) == buffered == handed
    assert isinstance(got[0], Snapshot) and all(isinstance(m, Update) for m in got[1:])
    assert len(got) == len(batches)  # the snapshot, then an update per later commit


def test_a_waker_without_a_served_session_does_nothing():
    # (a notebook or a test drains by itself; only a served session's document runs callbacks)
    calls = []
    waker = Waker(lambda: calls.append(1))
    assert waker.doc is None
    waker()
    waker()
    assert calls == [] and not waker.pending


LATE_DRAW_APP = """
import time
import panel as pn
from dashboards.live import session_callback

layout = pn.Column(pn.pane.HTML("<p class='waiting'>waiting</p>"))
connected = []

def tick():
    # a draw half a second after the browser connected (it pulls the document at once)
    session = getattr(pn.state.curdoc.session_context, "_session", None)
    if session is None or session.connection_count == 0 or len(connected) > 1:
        return
    if not connected:
        connected.append(time.monotonic())
    elif time.monotonic() - connected[0] > 0.5:
        connected.append("drawn")
        with pn.io.hold():
            layout.objects = [pn.pane.HTML("<p class='drawn'>drawn</p>")]

session_callback(tick, 100)
layout.servable()
"""


def test_a_change_made_before_the_page_reports_ready_reaches_it(tmp_path):
    """Panel drops the changes a ``pn.io.hold()`` block makes after the browser pulled its
    document and before it reported ``document_ready`` (the desk's "stays on loading" bug):
    session callbacks start once the page has loaded, so a draw they make reaches the page even
    when the browser is slow to report ready (held back here for 3 s)."""
    from tests.browser import browser_page, panel_app, ready_held_back

    app = tmp_path / "late_draw.py"
    app.write_text(LATE_DRAW_APP)
    with panel_app(str(app)) as url, browser_page(800, 400) as page, \
            ready_held_back(page, r".*/late_draw/ws.*") as (slow, release):
        slow.goto(f"{url}/late_draw", timeout=60_000)
        slow.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0",
                               timeout=60_000)
        slow.wait_for_timeout(3000)
        assert slow.locator(".drawn").count() == 0  # nothing is drawn before the page is ready
        release()
        slow.wait_for_selector(".drawn", timeout=20_000)


def test_a_read_done_off_the_loop_wakes_the_session_and_waits_for_it():
    """In ``tradeflow serve`` a session's reads run on reader threads; the result waits for the
    session (Bokeh models change in session callbacks only) and wakes it, so it is shown at
    once rather than at the session's next periodic call."""
    from concurrent.futures import ThreadPoolExecutor

    from dashboards.live import Reads

    async def body():
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as pool:
            woken, shown, failed = [], [], []
            reads = Reads(lambda fn, *args: loop.run_in_executor(pool, fn, *args),
                          wake=lambda: woken.append(len(reads.done)))
            reads.submit(sum, [1, 2, 3], then=shown.append, failed=failed.append)
            reads.submit(int, "x", then=shown.append, failed=failed.append)
            for _ in range(200):
                if len(woken) == 2:
                    break
                await asyncio.sleep(0.01)
            assert shown == [] and failed == []  # nothing applied outside the session
            reads.apply()
            return woken, shown, failed

    woken, shown, failed = asyncio.run(body())
    assert woken == [1, 2] and shown == [6]
    assert len(failed) == 1 and "invalid literal" in str(failed[0])


FALLBACK_APP = """
import asyncio
import threading
import panel as pn
from dashboards.live import FALLBACK_MS, Reads, Waker, session_callback

log = pn.pane.HTML("<p class='log'>-</p>")
seen, ticks, path = {}, [], []


def note(key):
    seen[key] = path[-1]  # which call applied it: the wake or the fallback tick
    log.object = "<p class='log'>" + " ".join(f"{k}:{v}" for k, v in sorted(seen.items())) + "</p>"


def run(fn, *args):  # a reader thread, as tradeflow serve's ServerContext.read
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


# wired as a Chart wires its session: its reads wake its tick, which also runs every FALLBACK_MS
reads = Reads(run)
quiet = Reads(run)  # what does not wake the session (a wake missed)
woke = threading.Event()  # the quiet read ends only after a wake tick has run: no race for it


def tick(how):
    path.append(how)
    reads.apply()
    quiet.apply()
    if how == "wake":
        woke.set()
    if how == "fallback":
        ticks.append(1)
        if len(ticks) == 2:  # the page loaded a while ago; the next fallback is FALLBACK_MS away
            reads.submit(sum, [1, 2], then=lambda _: note("woken"), failed=print)
            quiet.submit(woke.wait, 30, then=lambda _: note("quiet"), failed=print)


reads.wake = Waker(lambda: tick("wake"))
session_callback(lambda: tick("fallback"), FALLBACK_MS)
log.servable()
"""


def test_a_read_wakes_its_session_and_the_fallback_tick_takes_what_did_not(tmp_path):
    """A session's read done off the loop wakes the session and is shown by that wake, without
    waiting for the 1 s fallback tick; what does not wake it (nothing to read, a wake missed)
    is still taken by the fallback tick."""
    from tests.browser import browser_page, panel_app

    app = tmp_path / "fallback.py"
    app.write_text(FALLBACK_APP)
    with panel_app(str(app)) as url, browser_page(800, 400) as page:
        page.goto(f"{url}/fallback", timeout=60_000)
        page.locator(".log", has_text="quiet").wait_for(timeout=60_000)  # (in shadow roots)
        assert page.locator(".log").text_content() == "quiet:fallback woken:wake"


PHASES_APP = """
import time
import panel as pn
from dashboards.live import session_callback

out = pn.pane.HTML("<p class='phases'>waiting</p>")
calls = {}

def make(i):
    def tick():
        calls.setdefault(i, []).append(time.monotonic())
        if len(calls) == 6 and all(len(v) >= 2 for v in calls.values()) and \\
                "waiting" in out.object:
            second = [v[1] - v[0] for v in calls.values()]  # first periodic call after load
            out.object = (f"<p class='phases'>first {min(second):.3f} "
                          f"spread {max(second) - min(second):.3f}</p>")
    return tick

for i in range(6):  # six callbacks of one period, made together, as 6 sessions loaded together
    session_callback(make(i), 1000)
out.servable()
"""


def test_session_callbacks_made_together_run_at_spread_phases(tmp_path):
    """Periodic work of sessions loaded together (a load generator, browsers reconnecting after
    a restart) runs at random phases of its period, not all in one tick: 50 desks refreshing
    their watchlists in the same tick held the loop ~0.5 s every 5 s. Each callback still runs
    at load."""
    from tests.browser import browser_page, panel_app

    app = tmp_path / "phases.py"
    app.write_text(PHASES_APP)
    with panel_app(str(app)) as url, browser_page(800, 400) as page:
        page.goto(f"{url}/phases", timeout=60_000)
        page.locator(".phases", has_text="spread").wait_for(timeout=60_000)
        words = page.locator(".phases").text_content().split()
    first, spread = float(words[1]), float(words[3])
    assert first < 1.0  # the next call within a period of the call at load
    # six phases uniform over 1 s: all within 0.1 s of each other has odds of ~6e-5;
    # the same phase for all (as before) gives a spread of a few milliseconds
    assert spread > 0.1
