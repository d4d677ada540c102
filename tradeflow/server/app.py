"""``tradeflow serve``: one process, one asyncio loop: the Panel pages, the HTTP and websocket API,
the pipeline and the simulator.

Panel's ``get_server`` builds the Bokeh/Tornado server of the pages; the API's handlers join it as
``extra_patterns``, so pages and API share the port and the loop. The store is opened once: the
pipeline writes through its async form, reads run on worker threads through its sync form (for
DuckDB the very same connection; the pages open the same file in this process, which DuckDB
allows).
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from pathlib import Path

import pandas as pd

from data_access import StoreError, open_async_store, open_store, redact_url
from data_access.adapters import AsyncFromSync

from . import runfile
from .collector import Collector, run_collector
from .context import ServerContext, set_current
from .recycling import Recycler

log = logging.getLogger("tradeflow.server")

API = "/api/v1"


def routes(ctx: ServerContext) -> list[tuple]:
    from .control import ControlHandler
    from .ingest import MarketDataBatchHandler, MarketDataHandler, TradesHandler
    from .openapi import OpenApiHandler
    from .reads import (BarsHandler, FootprintHandler, InstrumentHandler, ProfileHandler,
                        StudyHandler)
    from .ws import IngestSocket

    handlers = [
        ("/market-data", MarketDataHandler), ("/market-data/batch", MarketDataBatchHandler),
        ("/trades", TradesHandler), ("/ingest/ws", IngestSocket),
        ("/bars", BarsHandler), ("/footprint", FootprintHandler), ("/profile", ProfileHandler),
        ("/instrument", InstrumentHandler),
        (r"/studies/([^/]+)", StudyHandler), ("/openapi.json", OpenApiHandler),
        (r"/control/(\w+)", ControlHandler),
    ]
    return [(API + path, handler, {"ctx": ctx}) for path, handler in handlers]


def pages() -> dict:
    """The Panel pages by URL path (files of ``dashboards/apps``): the desk at ``/`` and
    ``/desk``, the formula box at ``/formula``, the chart for other sites' frames at ``/embed``;
    the notebooks, read-only, under ``/notebooks``."""
    import dashboards.apps
    from dashboards.notebook_pages import notebook_pages

    folder = Path(dashboards.apps.__file__).parent
    desk = str(folder / "desk.py")
    return {"/": desk, "desk": desk, "formula": str(folder / "formula.py"),
            "embed": str(folder / "embed.py"), **notebook_pages()}


#: the served DuckDB store's memory limit unless its URL sets one (``?memory_limit=``): DuckDB's
#: default, 80% of the machine's memory, lets its cache of the growing file creep up all day
SERVED_DUCKDB_MEMORY = "256MB"


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost")


async def run(store_url: str, host: str = "127.0.0.1", port: int = 0, simulate=(),
              ready=print, max_pending_rows: int = 2_000_000, started=None,
              embed_origins: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; ``ready(line)`` is told the address to open. ``started(ctx)``,
    when given, is called with the ``ServerContext`` once serving (a benchmark or test that runs
    the server in-process and follows ``ctx.pipeline.hub`` as a chart would).
    ``embed_origins``: the origins that may frame ``/embed`` (None: from the configuration)."""
    import panel as pn

    from tradeflow.config import embed_origins as configured_origins
    from tradeflow.live.pipeline import Pipeline

    from .framing import frame_policy

    if embed_origins is None:
        embed_origins = configured_origins()  # checked before anything starts

    running = runfile.find(store_url)
    if running is not None:  # (its store's lock says so too, but not while it recycles)
        raise StoreError(f"the server at {running.url} (process {running.pid}) holds "
                         f"{redact_url(store_url)}: a DuckDB file serves one process at a time")
    astore = await open_async_store(store_url, duckdb_memory_limit=SERVED_DUCKDB_MEMORY)
    store = astore.sync if isinstance(astore, AsyncFromSync) else open_store(store_url)
    pipeline = Pipeline(astore, max_pending_rows=max_pending_rows)
    await pipeline.start()
    ctx = ServerContext(astore=astore, store=store, pipeline=pipeline,
                        token=secrets.token_urlsafe(32))
    await ctx.reload_keys()
    set_current(ctx)  # the pages served in this process read the store and the hub through it
    os.environ["TRADEFLOW_STORE"] = store_url  # the pages read the server's store
    port = port or _free_port(host)
    server = pn.serve(pages(), port=port, address=host, show=False, start=False,
                      extra_patterns=routes(ctx), websocket_origin=_origins(host, port),
                      title="TradeFlow", transforms=[frame_policy(embed_origins)])
    server.start()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host
    url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{server.port}"
    local_url = f"http://127.0.0.1:{server.port}" if _loopback(host) or host in (
        "0.0.0.0", "::") else url
    address_file = runfile.write(store_url, local_url, ctx.token)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_closed_pages)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    background = [_simulate(pipeline, store, s, ready) for s in simulate]
    # full collections would walk every session's objects: freeze what survives them (collector.py)
    background.append(run_collector(Collector(
        lambda: [session.id for session in server.get_sessions()])))
    # a DuckDB store is closed and opened again when the server's memory grows (recycling.py)
    if hasattr(store, "recycle"):
        background.append(Recycler(store).run())
    tasks = [asyncio.ensure_future(work) for work in background]
    if started is not None:
        started(ctx)
    ready(f"TradeFlow serving {redact_url(store_url)} at {url}/ (the desk; the formula box: "
          f"{url}/formula; API: {url}{API}/, OpenAPI: {url}{API}/openapi.json; embeds: "
          f"{url}/embed?symbol=...; notebooks: {url}/notebooks); Ctrl+C stops")
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.stop()
        set_current(None)
        await pipeline.stop()  # everything acknowledged is stored before the store closes
        runfile.remove(address_file)
        # the reads in flight end (queued ones are dropped) before the store they read closes:
        # DuckDB refuses to close a cursor that is busy
        await loop.run_in_executor(None, lambda: ctx.readers.shutdown(cancel_futures=True))
        if store is not getattr(astore, "sync", None):
            store.close()
        await astore.close()


def _origins(host: str, port: int) -> list[str]:
    """The pages' websocket accepts pages served by this server under its names."""
    names = ["localhost", "127.0.0.1"] + ([] if _loopback(host) else [host])
    return [f"{name}:{port}" for name in names]


def quiet_closed_pages(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The loop's handler of errors no one awaited. A message on its way to a page that closed
    meanwhile (tornado's write to a closed websocket, which Bokeh leaves unawaited) is no fault
    of the server: its two tracebacks, printed when a browser tab closed during a live update,
    only alarmed whoever read the log. It is logged at debug; the rest go to asyncio's own."""
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    if isinstance(context.get("exception"), (WebSocketClosedError, StreamClosedError)):
        log.debug("a message to a closed page was dropped: %s", context.get("message"))
        return
    loop.default_exception_handler(context)


def _free_port(host: str) -> int:
    """A port free now (``--port 0``): Bokeh needs the port before it binds."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def _simulate(pipeline, store, symbol: str, say) -> None:
    """Stream simulated live order flow of ``symbol`` into the pipeline (as a feeder would)."""
    from tradeflow.ingest.simulator import SERVED_FAR_LEVELS, MarketSimulator
    from tradeflow.live.simulated import catch_up, opens_in_words, stream_simulated

    try:
        sim = MarketSimulator(store.instrument(symbol), far_levels=SERVED_FAR_LEVELS)
        now = pd.Timestamp.now(tz="UTC")
        if sim.next_open(now) != now:
            say(f"{symbol}: session closed now; {opens_in_words(sim, now)}. Its simulated "
                "stream starts then.")
        last = await pipeline.store.trades(symbol, last=1)
        if len(last):  # continue the stored simulated market (`tradeflow simulate`, a restart)
            await catch_up(pipeline, sim, symbol, last["ts"].iloc[-1])
        await stream_simulated(pipeline, sim, symbol)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 -- the server goes on; the log says why this feed stopped
        log.exception("the simulator of %s stopped", symbol)
