"""What a live desk page costs the browser: main-thread time per second and long tasks per live
update of pages served by a running ``tradeflow serve``, each against the candles page in the
same run (issue 11: "a few real Chromium pages confirm the figure").

    .venv/bin/python -m tests.benchmarks.bench_page http://127.0.0.1:8793 [before=http://...] \
        [--pages footprint,candles] [--repeat 2] [--warmup 15] [--window 20] [--profile 8]

Several servers (``NAME=URL``; two versions of the code, each on its own data folder and port)
are measured in turn, page by page, each against its own candles page.

Each page is opened alone in a fresh headless Chromium (``tests.browser.browser_page``), left
``--warmup`` seconds to load and settle, then measured for ``--window`` seconds with the Chrome
DevTools Protocol: ``Performance.getMetrics`` (``TaskDuration``: all the main thread's tasks;
``ScriptDuration``, ``LayoutDuration``, ``RecalcStyleDuration``), a ``longtask``
``PerformanceObserver`` (tasks over 50 ms) and the Bokeh ``PATCH-DOC`` messages the page receives
(one per live update). Pages are measured in turn (footprint, candles, footprint, ...) so that a
busy machine slows both alike. ``--profile S``: afterwards, S seconds of each page under the CDP
sampling ``Profiler``: the JavaScript functions with the most time (self, and inclusive of what
they call), to find where a page's time goes.
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import time

PAGES = {
    "footprint": "/?symbol=ES&spec=1m&type=footprint",
    "candles": "/?symbol=ES&spec=1m&type=candles",
    "btc-footprint": "/?symbol=BTCUSDT&spec=1m&type=footprint",
}
METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
LONG_TASKS_JS = """() => { window._tf_long = [];
  new PerformanceObserver(l => { for (const e of l.getEntries()) window._tf_long.push(e.duration); })
    .observe({entryTypes: ['longtask']}); }"""


def _metrics(cdp) -> dict:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def measure(url: str, warmup: float, window: float, profile: float = 0.0) -> dict:
    """One page: main-thread ms per second, long tasks, updates over ``window`` seconds."""
    from tests.browser import browser_page

    with browser_page(1400, 900) as page:
        patches = [0]
        counting = [False]

        def frame(payload):
            if counting[0] and isinstance(payload, str) and \
                    '"msgtype":"PATCH-DOC"' in payload.replace(" ", ""):
                patches[0] += 1

        page.on("websocket", lambda ws: ws.on("framereceived", frame))
        page.goto(url)
        page.wait_for_timeout(warmup * 1000)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.evaluate(LONG_TASKS_JS)
        m0, t0 = _metrics(cdp), time.monotonic()
        counting[0] = True
        page.wait_for_timeout(window * 1000)
        counting[0] = False
        m1, t1 = _metrics(cdp), time.monotonic()
        long_tasks = page.evaluate("() => window._tf_long")
        out = {k: (m1[k] - m0[k]) / (t1 - t0) * 1000 for k in METRICS}
        out.update(long=len(long_tasks), long_ms=sum(long_tasks), updates=patches[0],
                   seconds=t1 - t0)
        if profile:
            out["profile"] = js_profile(cdp, page, profile)
        return out


def js_profile(cdp, page, seconds: float, top: int = 25) -> list[tuple[str, float, float]]:
    """(function, self ms/s, inclusive ms/s) of the functions with the most inclusive time over
    ``seconds`` of the CDP sampling profiler."""
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    page.wait_for_timeout(seconds * 1000)
    prof = cdp.send("Profiler.stop")["profile"]
    nodes = {n["id"]: n for n in prof["nodes"]}
    parent = {c: n["id"] for n in prof["nodes"] for c in n.get("children", ())}

    def name(n):
        f = n["callFrame"]
        where = os.path.basename(f["url"].split("?")[0]) or "-"
        return f"{f['functionName'] or '(anonymous)'} {where}:{f['lineNumber'] + 1}"

    own, incl = collections.Counter(), collections.Counter()
    for node_id, dt in zip(prof["samples"], prof["timeDeltas"]):
        key = name(nodes[node_id])
        own[key] += dt
        seen = set()
        while node_id is not None:
            k = name(nodes[node_id])
            if k not in seen:
                seen.add(k)
                incl[k] += dt
            node_id = parent.get(node_id)
    per_s = 1 / (seconds * 1000)  # microseconds over the run -> ms per second
    return [(k, own[k] * per_s, v * per_s) for k, v in incl.most_common(top)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("servers", nargs="+",
                    help="base URLs of running tradeflow serve processes (NAME=URL to name one)")
    ap.add_argument("--pages", default="footprint,candles",
                    help=f"pages in turn, of {', '.join(PAGES)}; the candles page is the baseline")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--profile", type=float, default=0.0, help="seconds of JS profile per page")
    args = ap.parse_args(argv)
    servers = dict(s.split("=", 1) if "=" in s else (s, s) for s in args.servers)
    names = [(server, page) for page in args.pages.split(",") for server in servers]
    runs = collections.defaultdict(list)
    for i in range(args.repeat):
        for server, page in names:
            r = measure(servers[server].rstrip("/") + PAGES[page], args.warmup, args.window,
                        args.profile if i == 0 else 0.0)
            runs[server, page].append(r)
            print(f"{server} {page} #{i + 1}: task {r['TaskDuration']:.0f} ms/s (script "
                  f"{r['ScriptDuration']:.0f}, layout {r['LayoutDuration']:.0f}, style "
                  f"{r['RecalcStyleDuration']:.0f}), {r['long']} long tasks "
                  f"({r['long_ms']:.0f} ms) over {r['updates']} updates; load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            for fn, own, incl in r.get("profile", ()):
                print(f"    {incl:6.1f} {own:6.1f} ms/s  {fn}")
    print("\nserver page            task ms/s  script ms/s  long tasks/update  x candles (task)")
    for server, page in names:
        rs, base = runs[server, page], runs.get((server, "candles"))
        task = statistics.median(r["TaskDuration"] for r in rs)
        script = statistics.median(r["ScriptDuration"] for r in rs)
        per_update = sum(r["long"] for r in rs) / max(sum(r["updates"] for r in rs), 1)
        ratio = task / statistics.median(r["TaskDuration"] for r in base) if base else float("nan")
        print(f"{server[:6]:6s} {page:15s} {task:9.0f} {script:12.0f} {per_update:18.2f} "
              f"{ratio:17.2f}")


if __name__ == "__main__":
    main()
