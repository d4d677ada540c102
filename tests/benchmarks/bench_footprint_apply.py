"""A served session's share of a live update, in process: ``FootprintChart.apply`` of one trade
at a time on a day of simulated 1-minute ES, ``--charts`` charts each in its own Bokeh document
(as the sessions of a server: lighter ``PATCH-DOC`` messages, the update's frames shared), CPU
(``process_time``) per update of the first chart (the shared ``bar_parts`` and its own work)
and of each further one (its ``apply``, then its ``PATCH-DOC`` made from the events).

No server, socket or Panel callback: what ``bench_sessions`` measures beside this is their cost.
Run the code before and after a change alternately (``PYTHONPATH`` of each) on the same load.

    .venv/bin/python -m tests.benchmarks.bench_footprint_apply [--charts 6] [--updates 300]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from bokeh.document import Document
from bokeh.layouts import column
from bokeh.protocol import Protocol

from dashboards.components.footprint import FootprintChart
from dashboards.patch_messages import light_patch_messages
from tradeflow.bars import BarAggregator
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.model import Instrument

ES = Instrument("ES", 0.25, exchange="CME", asset_class="future", point_value=50.0,
                session="America/Chicago 08:30-15:15,17:00-16:00")
START = pd.Timestamp("2024-03-13 22:00", tz="UTC")  # a trading day's start (17:00 CT)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--charts", type=int, default=6)
    ap.add_argument("--updates", type=int, default=300)
    args = ap.parse_args(argv)
    trades = MarketSimulator(ES, seed=7).generate(START, START + pd.Timedelta("23h")).trades
    aggregator = BarAggregator(ES, "1m")
    head = len(trades) - args.updates
    first = aggregator.update(trades.iloc[:head])
    protocol = Protocol()
    charts, events = [], []
    for _ in range(args.charts):
        chart = FootprintChart(instrument=ES)
        doc = Document()
        doc.add_root(column(chart.figure, chart.totals))
        light_patch_messages(doc)
        chart.load(first.closed, first.closed_footprint, current=first.current,
                   current_footprint=first.current_footprint)
        doc.models.flush_synced()  # as after the browser pulled the document
        got: list = []
        doc.on_change(got.append)
        charts.append(chart)
        events.append(got)
    apply_s, message_s, sent = (np.zeros(args.charts) for _ in range(3))
    for k in range(args.updates):
        update = aggregator.update(trades.iloc[head + k:head + k + 1])
        for i, chart in enumerate(charts):
            t0 = time.process_time()
            chart.apply(update)
            t1 = time.process_time()
            if events[i]:
                msg = protocol.create("PATCH-DOC", list(events[i]))
                sent[i] += len(msg.header_json) + len(msg.metadata_json) + len(msg.content_json)
                events[i].clear()
            apply_s[i] += t1 - t0
            message_s[i] += time.process_time() - t1
    ms = 1e3 / args.updates
    print(f"{len(first.closed)} bars loaded, {args.updates} updates of one trade")
    print(f"first chart: apply {apply_s[0] * ms:.2f} ms, message {message_s[0] * ms:.2f} ms")
    print(f"each further chart: apply {apply_s[1:].mean() * ms:.3f} ms, message "
          f"{message_s[1:].mean() * ms:.3f} ms, {sent[1:].mean() / args.updates:.0f} B")


if __name__ == "__main__":
    main()
