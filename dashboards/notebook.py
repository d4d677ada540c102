"""The desk's chart in a notebook (``tf.chart``), offline, and following live data by polling.

* **Offline.** The first chart of a kernel calls ``pn.extension(inline=True)``: BokehJS and
  Panel's own JavaScript are put into the notebook itself, so charts draw with no CDN reachable
  (a locked-down desk machine), and the saved notebook keeps them.
* **Live.** A notebook runs no pipeline; it follows another process's data by reading it again
  (``tradeflow.live.poll.BarPoller``): from a running ``tradeflow serve`` (``live="http://..."``,
  its read API), from a store URL (``live="postgresql://..."``: another process writes there), or
  ``live=True``: the workspace's own store. A :class:`Follower` polls on a worker thread from a
  Panel periodic callback (``pn.state.add_periodic_callback``, on the kernel's event loop) and
  hands each ``Update`` to the chart as the hub's are (closed bars streamed once, the forming bar
  patched); the price chart's studies of bars are computed again over its bars and their rows
  from the update on sent with it (:func:`study_changes`).
* **Stopping.** One follower per notebook cell (the cell's id when the front end sends one, else
  the chart's symbol, spec, type and source): re-running the cell stops the previous one. A
  follower also stops when its chart is closed (``chart.close()``) or garbage-collected, and
  every follower at the kernel's exit. In a notebook served as an app, followers are kept per
  viewer's session and stop with it.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pandas as pd

import panel as pn

from dashboards.chart import Chart
from dashboards.chart_state import ChartConfig
from indicators.catalogue import CATALOGUE, StudyData
from indicators.live_protocol import Changes
from tradeflow.live.poll import BarPoller

__all__ = ["chart", "Follower", "FOLLOWING", "stop_all"]

log = logging.getLogger(__name__)

FOLLOWING: dict = {}  # key (cell or chart) -> its Follower
_STORES: dict = {}  # store URL followed -> its Workspace, shared by the cells following it
_loaded = False


def _extension() -> None:
    """Panel's extension once per kernel, its resources inline (no CDN)."""
    global _loaded
    if not _loaded:
        # a notebook that ran pn.extension(inline=True) itself has BokehJS already: loading it
        # again would put another 6 MB copy into the saved notebook
        if not (pn.config.inline and getattr(pn.extension, "_loaded", False)):
            pn.config.inline = True
            pn.extension(inline=True)
        _loaded = True


def _study(item) -> dict | str:
    """A study as ``ChartConfig`` takes it: ``"RSI"``, ``("RSI", {"timeperiod": 21})``,
    ``{"name": "RSI", "params": {...}}``."""
    if isinstance(item, tuple) and len(item) == 2:
        return {"name": item[0], "params": dict(item[1])}
    return item


def _sources(ws, live):
    """(what the chart's history is read from, what live polls: None when not live)."""
    if live is None or live is False:
        return ws.marketdata, None
    if live is True:
        md = ws.marketdata
        return md, md
    if not isinstance(live, str):
        raise ValueError(f"live={live!r}: use True (this store), a server's http://host:port or "
                         "a store URL (postgresql://...)")
    if live.startswith(("http://", "https://")):
        from tradeflow.remote import ServerData
        md = ServerData(live)
        return md, md
    if live == ws.url:
        md = ws.marketdata
        return md, md
    other = _STORES.get(live)
    if other is None:  # its own workspace: a DuckDB file a server holds is read from the server
        other = _STORES[live] = type(ws)(live)
    md = other.marketdata
    return md, md


def chart(ws, symbol: str, spec="1m", type: str = "candles", studies=(), panes=(),
          theme: str = "dark", start=None, end=None, last: int | None = None, live=None,
          height: int = 500, period_ms: int = 1000) -> Chart:
    """The desk's :class:`~dashboards.chart.Chart` of ``symbol`` over workspace ``ws``
    (``tradeflow.api.Workspace``).

    ``type``: ``"candles"``, ``"footprint"``, ``"heikin_ashi"``, ``"renko"``... (the desk's
    chart types); ``studies``: catalogue studies (``"cvd"``, ``("RSI", {"timeperiod": 21})``);
    ``panes``: ``"volume_profile"``, ``"tpo"``; ``start``/``last``: the bars in view at first,
    ``end``: the chart ends there (else at the latest bar); ``live``: follow new data (see the
    module's docstring) every ``period_ms``. Bad input raises one ``ValueError`` line."""
    _extension()
    config = ChartConfig.from_dict({"symbol": symbol, "spec": str(spec), "chart_type": type,
                                    "panes": list(panes), "theme": theme,
                                    "studies": [_study(s) for s in studies]})
    if live not in (None, False) and end is not None:
        raise ValueError("live charts follow the newest bars: leave out end")
    history, source = _sources(ws, live)
    history.store.instrument(config.symbol)  # an unknown symbol: its one line, now
    if start is not None or last is not None:
        shown = history.bars(config.symbol, config.spec, start=start, end=end, last=last)
        if len(shown) >= 2:
            config.view_range = (shown["ts"].iloc[0], shown["ts"].iloc[-1])
    made = Chart(config, history, end=end, height=height)
    if made.error:
        raise ValueError(made.error)
    if source is not None:
        follow(made, source, period_ms=period_ms)
    return made


def _cell_key():
    """The running cell's id, when the front end sends one (JupyterLab, VS Code)."""
    try:
        from IPython import get_ipython
        shell = get_ipython()
        parent = shell.kernel.get_parent() if shell is not None else None
        return ("cell", parent["metadata"]["cellId"])
    except (AttributeError, KeyError, TypeError, ImportError):
        return None


def follow(made: Chart, source, period_ms: int = 1000, key=None) -> "Follower":
    """Follow ``source`` into ``made``; the follower kept under ``key`` (default: the cell, else
    the chart) replaces the one kept there before."""
    c = made.config
    doc = pn.state.curdoc
    served = doc is not None and doc.session_context is not None  # a notebook served as an app
    key = key or (None if served else _cell_key()) or (
        "chart", id(doc) if served else None, c.symbol, c.spec, c.chart_type, repr(source))
    old = FOLLOWING.pop(key, None)
    if old is not None:
        old.close()
    follower = Follower(made, source, period_ms)
    FOLLOWING[key] = follower
    if served:  # each viewer's session has its own charts; they stop with it
        pn.state.on_session_destroyed(lambda _context: follower.close())
    return follower


class Follower:
    """Polls ``source`` for ``made`` (see the module's docstring). ``poll_now()`` polls and
    applies at once (tests, or a cell that wants the newest bars now)."""

    def __init__(self, made: Chart, source, period_ms: int = 1000):
        self._chart = weakref.ref(made)
        # from the last bar shown (forming, or the last closed one: read again, unchanged)
        self.poller = BarPoller(source, made.config.symbol, made.spec.base,
                                made.history.iloc[-1:],
                                cells=made.wants_cells)
        self.source = source
        self.closed = False
        self.failing = False  # the last poll failed
        self.applied = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tf-follow")
        made.feed = self  # Chart.close() closes its feed
        weakref.finalize(made, self.close)
        self.callback = pn.state.add_periodic_callback(self._tick, period=period_ms)

    @property
    def chart(self) -> Chart | None:
        return self._chart()

    async def _tick(self) -> None:
        if self.closed:
            return
        if self.chart is None:
            self.close()
            return
        try:
            update = await asyncio.get_running_loop().run_in_executor(self._worker,
                                                                      self.poller.poll)
        except Exception as exc:  # noqa: BLE001 -- a read failing now may work next time
            if not self.failing:  # said once, not every period (a server stopped, a store closed)
                log.warning("polling %s %s: %s", self.poller.symbol, self.poller.spec, exc)
            self.failing = True
            return
        self.failing = False
        self._apply(update)

    def _apply(self, update) -> bool:
        made = self.chart
        if update is None or made is None or self.closed:
            return False
        studies = study_changes(made, update)
        if studies:
            update = replace(update, studies=studies)
        with pn.io.hold():
            made.on_message(update)
        self.applied += 1
        return True

    def poll_now(self) -> bool:
        """Poll and apply now; whether anything changed."""
        return self._apply(self.poller.poll())

    def drain(self) -> int:
        """(The chart's ``tick`` drains its feed; polled data is applied as it comes.)"""
        return 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.callback.stop()
        self._worker.shutdown(wait=False, cancel_futures=True)
        for key, follower in list(FOLLOWING.items()):
            if follower is self:
                del FOLLOWING[key]


def study_changes(made: Chart, update) -> dict:
    """``{study: Changes}`` of the price chart's studies of bars (one row a bar) for a polled
    ``update``: each computed again over the bars as they will be, the rows from the update's
    first bar on sent. (The hub computes them in the desk; a poll brings bars only.) Studies
    of trades, of other rows than bars, and Heikin-Ashi charts keep what was loaded."""
    if made.config.chart_type == "footprint" or made.spec.heikin_ashi or not made.config.studies:
        return {}
    bars = pd.concat([f for f in (update.closed, update.current) if len(f)] or [update.current],
                     ignore_index=True)
    if not len(bars):
        return {}
    held = made.history
    first = int(held["ts"].searchsorted(bars["ts"].iloc[0]))  # the forming bar shown: replaced
    after = pd.concat([held.iloc[:first], bars], ignore_index=True)
    out = {}
    for study in made.config.studies:
        info = CATALOGUE.get(study["name"])
        if set(info.reads) != {"bars"}:
            continue
        frame = info.batch(StudyData(made.instrument, bars=after, spec=made.spec),
                           **study["params"])
        if len(frame) == len(after):
            # (by label, as the hub's: a chart may show a study twice, e.g. EMA 20 and EMA 50)
            out[info.label(study["params"])] = Changes(rows=frame.iloc[first:],
                                                       length=len(frame))
    return out


def stop_all() -> None:
    """Stop every follower and close the stores opened for them (at the kernel's exit)."""
    for follower in list(FOLLOWING.values()):
        follower.close()
    for other in _STORES.values():
        other.close()
    _STORES.clear()


atexit.register(stop_all)
