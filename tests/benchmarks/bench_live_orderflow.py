"""Live order-flow figures: the incremental update of every order-flow study for a new batch of
trades against recomputing all the batch studies over the session so far.

    .venv/bin/python -m tests.benchmarks.bench_live_orderflow [--quick] [--out NAME]

Data: one simulated 24-hour crypto session (``tradeflow.ingest.simulator.MarketSimulator``,
instrument ``BTCUSDT`` tick 0.1, about 2M trades and a few hundred liquidations; ``--quick``
about 200k), 1-minute bars. At a few points of the session (a quarter, half, nine tenths of its
trades so far):

* subject: the live update of the next batch of B trades (B = 100 and 1,000): the stream's
  ``BarAggregator.update`` and ``LiveOrderFlow.apply`` of its update, every study on
  (``big_trades`` and ``absorption`` with thresholds from the data, session CVD and session
  naked POCs), the pair having been fed the session so far beforehand; the median over K
  consecutive batches. The note says how much of it is the ``BarAggregator.update`` (measured
  alone on the same batches).
* baseline: what a chart without the live form does for each batch -- ``tradeflow.bars.build``
  of the session so far plus every batch study over it (``LiveOrderFlow.batch``, the same
  parameters); median of its repeats, interleaved with the subject's blocks.

``ratio = baseline / subject``: how many times cheaper the update is than the recompute. No
timing is asserted; the ratios are what to compare between runs. Before timing, the live results
are checked against the batch functions (same rows; values equal within 1e-9 relative).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from tests.benchmarks.common import Row, environment, print_table, write_json
from tradeflow.model import Instrument

INSTRUMENT = Instrument("BTCUSDT", 0.1, exchange="SIM", asset_class="crypto")
DAY = pd.Timestamp("2024-03-05", tz="UTC")
POINTS = (0.25, 0.5, 0.9)
BATCHES = (100, 1000)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def session(trades_per_day: int):
    """One simulated session: (trades, liquidations)."""
    from tradeflow.ingest.simulator import MarketSimulator

    sim = MarketSimulator(INSTRUMENT, seed=7, trades_per_day=trades_per_day)
    batch = sim.generate(DAY, DAY + pd.Timedelta(days=1))
    return batch.trades.reset_index(drop=True), batch.liquidations.reset_index(drop=True)


def study_params(trades: pd.DataFrame) -> dict:
    """Every study on; thresholds where a chart would put them for this market."""
    size = trades["size"].to_numpy()
    return {"big_trades": {"min_size": float(np.quantile(size, 0.999))},
            "absorption": {"min_volume": float(np.quantile(size, 0.99)) * 20},
            "cvd": {"session": INSTRUMENT.session},
            "cvd_candles": {"session": INSTRUMENT.session},
            "naked_pocs": {"session": INSTRUMENT.session}}


class Live:
    """A ``LiveOrderFlow`` following its stream's ``BarAggregator``, as the pipeline runs them."""

    def __init__(self, params: dict):
        from indicators.orderflow import LiveOrderFlow
        from tradeflow.bars import BarAggregator

        self.aggregator = BarAggregator(INSTRUMENT, "1m")
        self.flow = LiveOrderFlow(INSTRUMENT, **params)
        self.result, self.batch = self.flow.result, self.flow.batch

    def update(self, trades, liquidations=None):
        return self.flow.apply(self.aggregator.update(trades, liquidations))


def new_live(params: dict) -> Live:
    return Live(params)


def recompute(live, trades: pd.DataFrame, liqs: pd.DataFrame) -> dict:
    """The baseline: bars, footprint and every batch study over all trades so far."""
    from tradeflow.bars import build

    bars, cells = build(trades, "1m", INSTRUMENT)
    return live.batch(trades, bars, cells, liqs)


def liqs_until(liqs: pd.DataFrame, trades: pd.DataFrame, end: int) -> pd.DataFrame:
    """Liquidations up to the time of trade ``end - 1`` (the live feed's position)."""
    return liqs[liqs["ts"] <= trades["ts"].iloc[end - 1]]


def check(live, trades, liqs, end: int) -> None:
    """The live results equal the batch functions' (untimed, before measuring)."""
    want = recompute(live, trades.iloc[:end], liqs_until(liqs, trades, end))
    for name, w in want.items():
        got = live.result(name)
        assert len(got) == len(w), (name, len(got), len(w))
        for col in (w.columns if isinstance(w, pd.DataFrame) else [None]):
            a = got if col is None else got[col]
            b = w if col is None else w[col]
            if pd.api.types.is_float_dtype(b.dtype):
                np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9,
                                           atol=1e-9, err_msg=f"{name}.{col}")
            else:
                assert a.reset_index(drop=True).equals(b.reset_index(drop=True)), (name, col)


def ns(frame: pd.DataFrame) -> np.ndarray:
    return frame["ts"].array.as_unit("ns").asi8


def batch(trades, liqs, start: int, end: int, t=None, liq_t=None) -> tuple:
    """One update's input, as a feed hands it over: trades ``start:end`` and the liquidations
    after the trade before them, up to the last of them (``t``/``liq_t``: their times in ns)."""
    t = ns(trades) if t is None else t
    liq_t = ns(liqs) if liq_t is None else liq_t
    lo = np.searchsorted(liq_t, t[start - 1], side="right") if start else 0
    hi = np.searchsorted(liq_t, t[end - 1], side="right")
    return trades.iloc[start:end], liqs.iloc[lo:hi]


def feed(live, trades, liqs, start: int, end: int) -> None:
    live.update(*batch(trades, liqs, start, end))


def measure_point(trades, liqs, params, at: int, batches: int, repeats: int) -> tuple:
    """Subject blocks and baseline recomputes at position ``at``, interleaved."""
    from tradeflow.bars import BarAggregator

    lives = {}
    for b in BATCHES:  # fed up to ``at``, untimed; checked once
        live = new_live(params)
        t0 = time.perf_counter()
        feed(live, trades, liqs, 0, at)
        bulk = time.perf_counter() - t0
        lives[b] = live
    check(lives[BATCHES[0]], trades, liqs, at)
    agg_times = {}
    for b in BATCHES:  # the aggregator alone on the same batches
        agg = BarAggregator(INSTRUMENT, "1m")
        agg.update(trades.iloc[:at])
        agg_times[b] = []
        for k in range(batches * repeats):
            part = trades.iloc[at + k * b: at + (k + 1) * b]
            t0 = time.perf_counter()
            agg.update(part)
            agg_times[b].append(time.perf_counter() - t0)
    t, liq_t = ns(trades), ns(liqs)
    inputs = {b: [batch(trades, liqs, at + k * b, at + (k + 1) * b, t, liq_t)
                  for k in range(batches * repeats)] for b in BATCHES}  # sliced before timing
    base, subject = [], {b: [] for b in BATCHES}
    for r in range(repeats):
        t0 = time.perf_counter()
        recompute(lives[BATCHES[0]], trades.iloc[:at], liqs_until(liqs, trades, at))
        base.append(time.perf_counter() - t0)
        for b in BATCHES:
            for part, part_liqs in inputs[b][r * batches:(r + 1) * batches]:
                t0 = time.perf_counter()
                lives[b].update(part, part_liqs)
                subject[b].append(time.perf_counter() - t0)
    for b in BATCHES:
        check(lives[b], trades, liqs, at + b * batches * repeats)
    return base, subject, agg_times, bulk


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 10x smaller session, fewer repeats")
    ap.add_argument("--out", default="live_orderflow", help="results/<name>.json")
    args = ap.parse_args(argv)
    per_day = 200_000 if args.quick else 2_000_000
    batches, repeats = (10, 2) if args.quick else (20, 3)

    log(f"simulating one session of ~{per_day:,} trades")
    trades, liqs = session(per_day)
    n = len(trades)
    params = study_params(trades)
    log(f"{n:,} trades, {len(liqs):,} liquidations; studies: every order-flow study")
    rows, table = [], []
    for share in POINTS:
        at = int(n * share)
        log(f"after {at:,} trades: live updates of {BATCHES} trades vs recomputing everything")
        base, subject, agg, bulk = measure_point(trades, liqs, params, at, batches, repeats)
        b_ms = statistics.median(base) * 1e3
        for b in BATCHES:
            s_ms = statistics.median(subject[b]) * 1e3
            a_ms = statistics.median(agg[b]) * 1e3
            table.append((at, b, s_ms, a_ms, b_ms))
            rows.append(Row(
                f"live update of {b:,} trades after {at / 1e6:.2f}M", s_ms, "ms", b_ms,
                "recompute bars + every batch study over the session so far", b_ms / s_ms,
                details={"subject_s": subject[b], "baseline_s": base, "aggregator_s": agg[b],
                         "history_trades": at, "batch_trades": b, "bulk_feed_s": bulk},
                note=f"of which BarAggregator.update {a_ms:.2f} ms ({100 * a_ms / s_ms:.0f}%); "
                     f"{1e3 * s_ms / b:.1f} us per trade"))
    print()
    print(f"{'history':>10} {'batch':>6} {'live ms':>9} {'aggregator':>11} {'recompute ms':>13} "
          f"{'ratio':>9}")
    for at, b, s_ms, a_ms, b_ms in table:
        print(f"{at:>10,} {b:>6,} {s_ms:>9.2f} {a_ms:>11.2f} {b_ms:>13.1f} {b_ms / s_ms:>8.0f}x")
    print()
    print_table(rows)
    path = write_json(args.out, rows, {"env": environment(), "trades": n,
                                       "liquidations": len(liqs), "params": str(params),
                                       "quick": args.quick})
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
