"""Foundation figures: bars from trades, bulk import into each store, one day read back.

    .venv/bin/python -m tests.benchmarks.bench_foundation [--quick] [--no-postgres]
                                                          [--source numpy|simulator]

Prints a table (figure, value, baseline, ratio, goal, met?) and writes it as JSON to
``tests/benchmarks/results/foundation.json``. Every figure comes with a baseline measured in the
same run, interleaved with it; see README.md in this folder for what each one means.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from tests.benchmarks.common import (
    BENCH_INSTRUMENT, Phases, PgClusters, Row, Timing, chunks, compare, compare_async,
    environment, make_trades, print_table, sql_phase, write_json,
)

SYMBOL = BENCH_INSTRUMENT.symbol
START = "2024-03-04"  # a Monday


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# Figure 1: trades -> 1-minute bars + footprint


def pandas_bars_footprint(trades: pd.DataFrame, tick_size: float):
    """The baseline: what a careful analyst writes with a plain pandas groupby."""
    size = trades["size"].to_numpy()
    side = trades["side"].to_numpy()
    price = trades["price"].to_numpy()
    df = pd.DataFrame({
        "minute": trades["ts"].dt.floor("min"), "price": price, "size": size,
        "ask": np.where(side == 1, size, 0.0), "bid": np.where(side == -1, size, 0.0),
        "tick": np.rint(price / tick_size).astype("int64"), "n": 1,
    })
    bars = df.groupby("minute", sort=True).agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"),
        close=("price", "last"), volume=("size", "sum"), ask_volume=("ask", "sum"),
        bid_volume=("bid", "sum"), trades=("n", "sum"))
    cells = df.groupby(["minute", "tick"], sort=True)[["size", "ask", "bid", "n"]].sum()
    return bars, cells


def figure_bars(trades: pd.DataFrame, agg_rows: int, repeat: int) -> tuple[list[Row], dict]:
    from tradeflow.bars import BarAggregator, build

    inst, n = BENCH_INSTRUMENT, len(trades)
    log(f"figure 1: build(trades, '1m') of {n:,} trades vs pandas groupby, {repeat} repeats")
    # same answer? (untimed)
    bars, cells = build(trades, "1m", inst)
    pbars, pcells = pandas_bars_footprint(trades, inst.tick_size)
    assert len(bars) == len(pbars) and len(cells) == len(pcells), "build and baseline disagree"
    assert np.allclose(bars["volume"].to_numpy(), pbars["volume"].to_numpy())
    assert np.allclose(bars["close"].to_numpy(), pbars["close"].to_numpy())

    t_build, t_pandas = compare(lambda: build(trades, "1m", inst),
                                lambda: pandas_bars_footprint(trades, inst.tick_size),
                                repeat=repeat, warmup=1)
    rate, base = n / t_build.best, n / t_pandas.best
    rows = [Row(
        f"1m bars+footprint: bars.build, {n / 1e6:g}M trades", rate, "trades/s", base,
        "pandas groupby(minute).agg(first/max/min/last/sum) + groupby([minute, tick]).sum()",
        rate / base, details={"build": t_build.summary(), "pandas": t_pandas.summary(),
                              "bars": len(bars), "cells": len(cells)})]

    # incremental: the live form, fed like the pipeline feeds it
    part = trades.iloc[:agg_rows]
    batches = chunks(part, 1000)
    log(f"figure 1: BarAggregator over {len(part):,} trades in {len(batches):,} batches of 1,000")

    def incremental():
        agg = BarAggregator(inst, "1m")
        out = [agg.update(b) for b in batches]
        return out
    # where its time goes: one untimed run over the first 200 batches with phase timers on
    # the aggregator's steps (those that exist: bars.py may be reorganised)
    bars_mod = importlib.import_module("tradeflow.bars")  # tradeflow.bars is tf.bars, a function

    phases = Phases()
    steps = {
        "_prepare": "_prepare (normalise/sort check)", "_arrays": "_arrays (ts, ticks)",
        "_segment_bars": "_segment_bars (bars of the batch)",
        "_segment_cells": "_segment_cells (cells of the batch)",
        "_merge_first": "_merge_first (extend the open bar)",
        "_merge_cells": "_merge_cells (open bar's cells + batch's)",
        "_bars_frame": "_bars_frame (output frames)", "_cells_frame": "_cells_frame (output frames)",
    }
    for name, label in steps.items():
        phases.wrap(bars_mod, name, label)
    if hasattr(bars_mod, "TimeCutter"):
        phases.wrap(bars_mod.TimeCutter, "cut", "TimeCutter.cut (bar_start)")
    agg = BarAggregator(inst, "1m")
    with phases.active():
        t0 = time.perf_counter()
        for b in batches[:200]:
            agg.update(b)
        profiled = time.perf_counter() - t0
    profile = phases.report(profiled, f"BarAggregator.update, {min(200, len(batches))} batches "
                                      "of 1,000 trades")
    # the fixed cost of an update: batches of 10 trades
    small = chunks(part.iloc[:2000], 10)
    agg = BarAggregator(inst, "1m")
    t0 = time.perf_counter()
    for b in small:
        agg.update(b)
    per_small = (time.perf_counter() - t0) / len(small)
    t_inc = Timing()
    for _ in range(2):
        t0 = time.perf_counter()
        incremental()
        t_inc.add(time.perf_counter() - t0)
    inc_rate = len(part) / t_inc.best
    rows.append(Row(
        f"1m bars+footprint: BarAggregator, batches of 1,000 ({len(part) / 1e6:g}M trades)",
        inc_rate, "trades/s", rate, "bars.build of all trades at once (row above)",
        inc_rate / rate, details={"incremental": t_inc.summary(), "batches": len(batches),
                                  "ms_per_batch": 1000 * t_inc.best / len(batches)},
        note=f"{1000 * t_inc.best / len(batches):.1f} ms per batch of 1,000 trades, "
             f"{1000 * per_small:.1f} ms per batch of 10 (a fixed cost per update)"))
    rows[-1].details["ms_per_batch_of_10"] = 1000 * per_small
    return rows, {"aggregator_profile": profile}


# --------------------------------------------------------------------------------------------
# Figure 2: bulk import


def _trades_ddl(dialect: str) -> str:
    """The store's own CREATE TABLE trades, so that the baseline's table is identical."""
    from data_access import migrations

    for sql in migrations.render(dialect, migrations.MIGRATIONS[0][2]):
        if "CREATE TABLE trades" in sql:
            return sql
    raise RuntimeError("no CREATE TABLE trades in migration 1")


def _arrow_chunks(parts: list[pd.DataFrame]):
    """The same rows as Arrow tables typed exactly like the table (built before timing)."""
    import pyarrow as pa

    out = []
    for p in parts:
        n = len(p)
        out.append(pa.table({
            "symbol": pa.array(np.full(n, SYMBOL, dtype=object), type=pa.string()),
            "ts": pa.array(p["ts"].dt.tz_convert(None).to_numpy().astype("datetime64[us]"),
                           type=pa.timestamp("us", tz="UTC")),
            "price": pa.array(p["price"].to_numpy(), type=pa.float64()),
            "size": pa.array(p["size"].to_numpy(), type=pa.float64()),
            "side": pa.array(p["side"].to_numpy().astype("int16"), type=pa.int16()),
            "trade_id": pa.array(p["trade_id"].to_numpy(), type=pa.int64()),
        }))
    return out


DUCK_SQL = [
    (r"FROM instruments", "instrument lookup"),
    (r"SELECT count\(\*\) FROM trades", "overlap check (count in range)"),
    (r"INSERT INTO trades", "INSERT INTO trades (Arrow)"),
    (r"INTO market_data", "rollup: market_data upsert (1m bars)"),
    (r"DELETE FROM footprint", "rollup: footprint delete"),
    (r"INSERT INTO footprint", "rollup: footprint insert (cells)"),
    (r"^\s*COMMIT", "COMMIT"),
]


class Workdir:
    """A temporary folder for DuckDB files, removed at the end."""

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="tradeflow-bench-"))
        self._n = 0

    def new(self, stem: str) -> Path:
        self._n += 1
        return self.path / f"{stem}-{self._n}.duckdb"

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


def _rm_duckdb(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)


def figure_import_duckdb(trades: pd.DataFrame, chunk_rows: int, repeat: int, work: Workdir):
    import duckdb

    from data_access import duckdb_store, frames, open_store

    n = len(trades)
    parts = chunks(trades, chunk_rows)
    arrow = _arrow_chunks(parts)
    ddl = _trades_ddl("duckdb")
    log(f"figure 2: DuckDB import of {n:,} trades in {len(parts)} chunks, {repeat} repeats")

    phases = Phases(recording=False)
    phases.wrap(frames, "clean_trades", "frames.clean_trades (validate, floor, sort check)")
    phases.wrap(frames, "to_arrow", "frames.to_arrow (pandas -> Arrow)")
    phases.wrap(duckdb_store.DuckDBStore, "_exec", sql_phase(DUCK_SQL))
    totals = {"subject_s": 0.0, "close_s": []}
    kept: dict[str, Path] = {}

    def setup_subject():
        path = work.new("store")
        store = open_store(f"duckdb:///{path}")
        store.add_instrument(BENCH_INSTRUMENT)
        return store, path

    def subject(state):
        store, _ = state
        t0 = time.perf_counter()
        with phases.record(), store.transaction() as tx:
            for p in parts:
                tx.write_trades(SYMBOL, p)
        totals["subject_s"] += time.perf_counter() - t0

    def setup_baseline():
        path = work.new("bare")
        con = duckdb.connect(str(path))
        con.execute("SET TimeZone = 'UTC'").fetchall()
        con.execute(ddl).fetchall()
        return con, path

    def baseline(state):
        con, _ = state
        con.execute("BEGIN TRANSACTION").fetchall()
        for table in arrow:
            con.register("arrow", table)
            con.execute("INSERT INTO trades SELECT * FROM arrow").fetchall()
            con.unregister("arrow")
        con.execute("COMMIT").fetchall()

    def teardown(state):
        obj, path = state
        t0 = time.perf_counter()
        obj.close()
        if obj.__class__.__name__ == "DuckDBStore":
            totals["close_s"].append(time.perf_counter() - t0)
            if "store" in kept:
                _rm_duckdb(kept["store"])
            kept["store"] = path  # the last subject's file serves figure 3
        else:
            _rm_duckdb(path)

    # the phase wrappers stay in place for every subject run (a dozen calls: no measurable cost)
    with phases.active():
        t_sub, t_base = compare(subject, baseline, repeat=repeat, warmup=0,
                                setup_subject=setup_subject, setup_baseline=setup_baseline,
                                teardown=teardown)
    rate, base = n / t_sub.best, n / t_base.best
    ratio = rate / base
    row = Row(f"import: DuckDB write_trades, {n / 1e6:g}M trades ({len(parts)} chunks, 1 tx)",
              rate, "rows/s", base,
              "bare Arrow INSERT INTO <identical table> SELECT * FROM arrow, fresh DuckDB file",
              ratio, ">= 0.70x", ratio >= 0.7,
              details={"store": t_sub.summary(), "bare": t_base.summary(),
                       "close_s": totals["close_s"],
                       "breakdown": phases.as_dict(totals["subject_s"])},
              note=f"closing the store afterwards (checkpoint) took "
                   f"{np.median(totals['close_s']):.2f} s more (not counted)")
    breakdown = phases.report(totals["subject_s"], "DuckDB write_trades breakdown, all runs")
    return row, breakdown, kept["store"]


PG_SQL = [
    (r"FROM instruments", "instrument lookup"),
    (r"EXISTS \(SELECT 1 FROM trades", "overlap check (EXISTS in range)"),
    (r"INSERT INTO market_data", "rollup: market_data upsert (1m bars)"),
    (r"DELETE FROM footprint", "rollup: footprint delete"),
    (r"INSERT INTO footprint", "rollup: footprint insert (cells)"),
    (r"refresh_continuous_aggregate", "1h continuous aggregate refresh"),
    (r"cagg_watermark", "1h aggregate watermark lookup"),
    (r"^\s*(COMMIT|RELEASE|BEGIN|SAVEPOINT)", "BEGIN/COMMIT/savepoints"),
]


def _pg_records(parts: list[pd.DataFrame]) -> list[list[tuple]]:
    """The same rows as asyncpg records (built before timing)."""
    out = []
    for p in parts:
        ts = pd.DatetimeIndex(p["ts"]).to_pydatetime()
        out.append(list(zip([SYMBOL] * len(p), ts, p["price"].tolist(), p["size"].tolist(),
                            p["side"].astype("int16").tolist(), p["trade_id"].tolist())))
    return out


def figure_import_pg(name: str, cluster, trades: pd.DataFrame, chunk_rows: int, repeat: int,
                     loop: asyncio.AbstractEventLoop, timescale: bool):
    import asyncpg

    from data_access import frames, open_store, postgres_store

    n = len(trades)
    parts = chunks(trades, chunk_rows)
    records = _pg_records(parts)
    ddl = _trades_ddl("postgres")
    columns = ["symbol", "ts", "price", "size", "side", "trade_id"]
    log(f"figure 2: {name} import of {n:,} trades in {len(parts)} chunks, {repeat} repeats")

    phases = Phases(recording=False)
    phases.wrap(frames, "clean_trades", "frames.clean_trades (validate, floor, sort check)")
    phases.wrap(postgres_store, "copy_in", "COPY into trades (numpy-encoded binary)")
    execute_phase = sql_phase(PG_SQL)
    for method in ("execute", "fetchval", "fetch"):
        phases.wrap(asyncpg.connection.Connection, method,
                    lambda self, *a, **k: execute_phase(*a, **k))
    totals = {"subject_s": 0.0}
    kept: dict[str, str] = {}

    def setup_subject():
        db = cluster.create_database()
        store = open_store(cluster.url(db))
        if timescale and not store.astore.timescaledb:
            raise RuntimeError("the TimescaleDB cluster's store did not enable TimescaleDB")
        store.add_instrument(BENCH_INSTRUMENT)
        return store, db

    def subject(state):
        store, _ = state
        t0 = time.perf_counter()
        with phases.record(), store.transaction() as tx:
            for p in parts:
                tx.write_trades(SYMBOL, p)
        totals["subject_s"] += time.perf_counter() - t0

    async def _bare_setup(url):
        con = await asyncpg.connect(url)
        await con.execute(ddl)
        if timescale:  # as the store makes its trades table: a hypertable of 1-day chunks
            await con.execute("SELECT create_hypertable('trades', by_range('ts', INTERVAL "
                              "'1 day'), create_default_indexes => false)")
        return con

    def setup_baseline():
        db = cluster.create_database()
        return loop.run_until_complete(_bare_setup(cluster.url(db))), db

    async def _bare(con):
        async with con.transaction():
            for recs in records:
                await con.copy_records_to_table("trades", records=recs, columns=columns)

    def baseline(state):
        loop.run_until_complete(_bare(state[0]))

    def teardown(state):
        obj, db = state
        if isinstance(obj, asyncpg.Connection):
            loop.run_until_complete(obj.close())
            cluster.drop_database(db)
            return
        obj.close()
        if "db" in kept:
            cluster.drop_database(kept["db"])
        kept["db"] = db

    with phases.active():
        t_sub, t_base = compare(subject, baseline, repeat=repeat, warmup=0,
                                setup_subject=setup_subject, setup_baseline=setup_baseline,
                                teardown=teardown)
    rate, base = n / t_sub.best, n / t_base.best
    ratio = rate / base
    what = ("bare COPY (asyncpg copy_records_to_table) into an identical unindexed "
            + ("hypertable (1-day chunks)" if timescale else "table"))
    row = Row(f"import: {name} write_trades, {n / 1e6:g}M trades ({len(parts)} chunks, 1 tx)",
              rate, "rows/s", base, what, ratio, ">= 0.70x", ratio >= 0.7,
              details={"store": t_sub.summary(), "bare": t_base.summary(),
                       "breakdown": phases.as_dict(totals["subject_s"])})
    breakdown = phases.report(totals["subject_s"], f"{name} write_trades breakdown, all runs")
    return row, breakdown, cluster.url(kept["db"])


# --------------------------------------------------------------------------------------------
# Figure 3: one day of bars and footprint read back


def _day(trades: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A whole UTC day inside the data: the one of its middle trade (or the day before)."""
    ts = trades["ts"]
    d0 = ts.iloc[len(ts) // 2].floor("D")
    if d0 + pd.Timedelta(days=1) > ts.iloc[-1]:
        d0 -= pd.Timedelta(days=1)
    return d0, d0 + pd.Timedelta(days=1)


def _read_rows(name, kind, t_sub, t_base, n_rows, extra=None) -> Row:
    ms, base_ms = 1000 * t_sub.median, 1000 * t_base.median
    what = extra or "bare SELECT * of the same rows"
    return Row(f"read one day: {name} {kind}('1m') ({n_rows:,} rows)", ms, "ms", base_ms, what,
               base_ms / ms, "< 50 ms", ms < 50.0,
               details={"store": t_sub.summary(), "bare": t_base.summary(), "rows": n_rows})


def figure_reads_duckdb(path: Path, trades: pd.DataFrame, repeat: int):
    from data_access import duckdb_store, frames, open_store

    d0, d1 = _day(trades)
    store = open_store(f"duckdb:///{path}")
    rows, breakdowns = [], []
    try:
        for kind, table in (("bars", "market_data"), ("footprint", "footprint")):
            read = getattr(store, kind)
            got = read(SYMBOL, "1m", d0, d1)
            sql = f"SELECT * FROM {table} WHERE symbol = ? AND ts >= ? AND ts < ?"
            bare = store.con.execute(sql, [SYMBOL, d0, d1]).fetch_df()
            assert len(got) == len(bare), f"{kind}: store {len(got)} rows, bare {len(bare)}"
            log(f"figure 3: DuckDB {kind} of {d0.date()}: {len(got):,} rows, {repeat} repeats")
            t_sub, t_base = compare(
                lambda: read(SYMBOL, "1m", d0, d1),
                lambda: store.con.execute(sql, [SYMBOL, d0, d1]).fetch_df(),
                repeat=repeat, warmup=3)
            rows.append(_read_rows("DuckDB", kind, t_sub, t_base, len(got),
                                   "bare SELECT * of the same rows, DuckDB fetch_df"))
            phases = Phases()
            phases.wrap(duckdb_store.DuckDBStore, "_exec",
                        sql_phase([(r"FROM instruments", "instrument lookup")]))
            phases.wrap(duckdb_store.DuckDBStore, "_query", "query + fetch_df")
            phases.wrap(frames, "finish", "frames.finish (layout, dtypes)")
            with phases.active():
                t0 = time.perf_counter()
                for _ in range(10):
                    read(SYMBOL, "1m", d0, d1)
                total = time.perf_counter() - t0
            breakdowns += phases.report(total, f"DuckDB {kind}('1m') one day, 10 calls")
    finally:
        store.close()
    return rows, breakdowns


def figure_reads_pg(name: str, url: str, trades: pd.DataFrame, repeat: int,
                    loop: asyncio.AbstractEventLoop):
    import asyncpg

    from data_access import frames, postgres_store
    from data_access.postgres_store import connect

    d0, d1 = _day(trades)
    store = loop.run_until_complete(connect(url))
    con = loop.run_until_complete(asyncpg.connect(url))
    rows, breakdowns = [], []
    try:
        # the state after autovacuum has looked at the freshly imported tables
        loop.run_until_complete(con.execute("ANALYZE"))
        for kind, table in (("bars", "market_data"), ("footprint", "footprint")):
            read = getattr(store, kind)
            sql = f"SELECT * FROM {table} WHERE symbol = $1 AND ts >= $2 AND ts < $3"
            args = (SYMBOL, d0.to_pydatetime(), d1.to_pydatetime())
            got = loop.run_until_complete(read(SYMBOL, "1m", d0, d1))
            bare = loop.run_until_complete(con.fetch(sql, *args))
            assert len(got) == len(bare), f"{kind}: store {len(got)} rows, bare {len(bare)}"
            log(f"figure 3: {name} {kind} of {d0.date()}: {len(got):,} rows, {repeat} repeats")
            t_sub, t_base = compare_async(loop, lambda: read(SYMBOL, "1m", d0, d1),
                                          lambda: con.fetch(sql, *args), repeat=repeat)
            rows.append(_read_rows(name, kind, t_sub, t_base, len(got),
                                   "bare SELECT * of the same rows, asyncpg fetch"))
            phases = Phases()
            phases.wrap(postgres_store.PostgresStore, "instrument", "instrument lookup")
            phases.wrap(postgres_store, "copy_out", "query via binary COPY + numpy decode")
            phases.wrap(frames, "finish", "frames.finish (layout, dtypes)")
            with phases.active():
                t0 = time.perf_counter()
                for _ in range(10):
                    loop.run_until_complete(read(SYMBOL, "1m", d0, d1))
                total = time.perf_counter() - t0
            breakdowns += phases.report(total, f"{name} {kind}('1m') one day, 10 calls")
    finally:
        loop.run_until_complete(con.close())
        loop.run_until_complete(store.close())
    return rows, breakdowns


def _unavailable(figure: str, what: str, why: str, goal: str) -> Row:
    return Row(figure, None, "", None, what, None, goal, None, note=f"not measured: {why}")


# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x smaller data, fewer repeats")
    ap.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL/TimescaleDB")
    ap.add_argument("--source", choices=("numpy", "simulator"), default="numpy",
                    help="synthetic trades from numpy (default) or tradeflow's MarketSimulator")
    ap.add_argument("--out", default="foundation", help="results/<name>.json (default foundation)")
    args = ap.parse_args(argv)

    k = 10 if args.quick else 1
    n_bars = 2_000_000 // k  # figure 1, and the PostgreSQL import
    n_duck = 10_000_000 // k
    chunk = 1_000_000 // k
    n_agg = 500_000 // k
    days_small, days_big = 4, 20  # ~500k trades a day (full run)
    rep_cpu, rep_import, rep_read = (2, 2, 15) if args.quick else (5, 4, 50)

    t_start = time.perf_counter()
    log(f"generating {n_bars:,} + {n_duck:,} trades ({args.source})")
    small = make_trades(args.source, n_bars, days_small, start=START)
    big = make_trades(args.source, n_duck, days_big, start=START, seed=11)

    rows: list[Row] = []
    notes: list[str] = []
    extra: dict = {}

    fig1, more = figure_bars(small, n_agg, rep_cpu)
    rows += fig1
    extra.update(more)

    work = Workdir()
    loop = asyncio.new_event_loop()
    clusters = None
    try:
        duck_row, duck_bd, duck_path = figure_import_duckdb(big, chunk, rep_import, work)
        rows.append(duck_row)
        notes += duck_bd

        pg_targets = []  # (name, cluster, timescale)
        pg_problem = None
        if args.no_postgres:
            pg_problem = "--no-postgres"
        else:
            try:
                from data_access import postgres_store  # noqa: F401
            except Exception as exc:
                pg_problem = f"data_access.postgres_store does not import: {exc!r}"
        if pg_problem is None:
            log("starting throwaway PostgreSQL clusters (plain, TimescaleDB)")
            clusters = PgClusters().start()
            if clusters.plain is not None:
                pg_targets.append(("PostgreSQL", clusters.plain, False))
            if clusters.timescale is not None:
                pg_targets.append(("TimescaleDB", clusters.timescale, True))
        pg_urls = {}
        for name in ("PostgreSQL", "TimescaleDB"):
            target = next((t for t in pg_targets if t[0] == name), None)
            figure = f"import: {name} write_trades, {n_bars / 1e6:g}M trades"
            if target is None:
                why = pg_problem or (clusters.problems.get(name.lower() if name != "PostgreSQL"
                                                           else "postgres", "cluster missing")
                                     if clusters else "no cluster")
                rows.append(_unavailable(figure, "bare COPY", why, ">= 0.70x"))
                continue
            try:
                row, bd, url = figure_import_pg(name, target[1], small, chunk, rep_import,
                                                loop, target[2])
                rows.append(row)
                notes += bd
                pg_urls[name] = url
            except Exception as exc:
                traceback.print_exc()
                rows.append(_unavailable(figure, "bare COPY", f"failed: {exc!r}"[:300],
                                         ">= 0.70x"))

        r, bd = figure_reads_duckdb(duck_path, big, rep_read)
        rows += r
        notes += bd
        for name in ("PostgreSQL", "TimescaleDB"):
            if name not in pg_urls:
                for kind in ("bars", "footprint"):
                    rows.append(_unavailable(f"read one day: {name} {kind}('1m')",
                                             "bare SELECT *", "no imported database", "< 50 ms"))
                continue
            try:
                r, bd = figure_reads_pg(name, pg_urls[name], small, rep_read, loop)
                rows += r
                notes += bd
            except Exception as exc:
                traceback.print_exc()
                for kind in ("bars", "footprint"):
                    rows.append(_unavailable(f"read one day: {name} {kind}('1m')",
                                             "bare SELECT *", f"failed: {exc!r}"[:300], "< 50 ms"))
    finally:
        loop.close()
        if clusters is not None:
            clusters.stop()
        work.remove()

    print()
    print("where the time goes")
    print("-------------------")
    for line in notes:
        print(line)
    for line in extra["aggregator_profile"]:
        print(line)
    print()
    print(f"TradeFlow foundation figures ({'quick' if args.quick else 'full'} run, "
          f"{args.source} trades, {time.perf_counter() - t_start:.0f} s)")
    print()
    print_table(rows)
    meta = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m tests.benchmarks.bench_foundation" + (" --quick" if args.quick
                                                                      else ""),
        "quick": args.quick, "source": args.source,
        "sizes": {"bars_trades": n_bars, "aggregator_trades": n_agg, "duckdb_import": n_duck,
                  "postgres_import": n_bars, "chunk_rows": chunk},
        "repeats": {"cpu": rep_cpu, "import": rep_import, "read": rep_read},
        "environment": environment(),
        "breakdowns": notes + extra["aggregator_profile"],
    }
    path = write_json(args.out, rows, meta)
    print(f"\nwritten: {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
