"""Broken files refused at the edge: a corpus made here, imported with the ``tradeflow`` command.

Every broken file is imported into a store that already holds good data of the same minutes
(DuckDB and PostgreSQL + TimescaleDB): the import must fail (rc != 0) with one line naming the
file, the file's own line/record/row and what is wrong, and the stored trades, bars and
footprint must be exactly what they were. Then what must pass: trades of different files at the
same timestamps, the same file twice, small reorderings, float32 prices put back on the grid.
"""
import re
from dataclasses import dataclass

import databento_dbn as db
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_access import open_store
from data_access.frames import MAX_SIZE, RowError
from tests.test_cli import run
from tests.test_ingest_dbn import mapping, metadata, ohlcv, trade
from tradeflow.ingest.scid import EPOCH_OFFSET_US, HEADER, RECORD
from tradeflow.ingest.validate import Validator, on_grid
from tradeflow.model import Instrument

T0 = pd.Timestamp(1_700_000_000, unit="s", tz="UTC")  # 2023-11-14 22:13:20 UTC (a Tuesday)
SEC = 1_000_000_000
INSTRUMENTS = [Instrument("ES", 0.25), Instrument("BTCUSDT", 0.01), Instrument("TINY", 1e-8),
               Instrument("CL", 0.01)]


# --------------------------------------------------------------------------------------------
# Writers of each format. Trades are (ns after T0, price, size, side).


def es_trades(n=8, base=4510.0):
    """n good ES trades one second apart (prices unlike the stored ones: if a broken file were
    half-imported, these would show)."""
    return [[i * SEC, base + 0.25 * (i % 4), 1 + i % 3, 1 if i % 2 else -1] for i in range(n)]


def write_csv(path, rows, extra=None):
    """Generic CSV, header on line 1, row k on line k + 2. ``extra``: {column: values}."""
    frame = pd.DataFrame({
        "ts": [(T0 + pd.Timedelta(r[0], "ns")).isoformat() for r in rows],
        "price": [repr(float(r[1])) for r in rows],
        "size": [repr(float(r[2])) for r in rows],
        "side": [r[3] for r in rows],
        **(extra or {}),
    })
    path.write_text(frame.to_csv(index=False))
    return path


def write_binance(path, rows, first_id=1000):
    """Spot trades layout, no header: row k on line k + 1; times in ms."""
    lines = []
    for k, (dt, price, size, side) in enumerate(rows):
        ms = (T0.value + dt) // 1_000_000
        lines.append(f"{first_id + k},{price!r},{size!r},{price * size!r},{ms},"
                     f"{'true' if side < 0 else 'false'},true")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path, rows):
    """Rows numbered from 0."""
    pq.write_table(pa.table({
        "ts": pa.array([T0.value + r[0] for r in rows], pa.timestamp("ns", tz="UTC")),
        "price": pa.array([float(r[1]) for r in rows], pa.float64()),
        "size": pa.array([float(r[2]) for r in rows], pa.float64()),
        "side": pa.array([r[3] for r in rows], pa.int8()),
    }), path)
    return path


def sc_dt(dt_ns):
    return (T0.value + dt_ns) // 1000 + EPOCH_OFFSET_US


def scid_tick(dt_ns, price, size, side):
    """A Sierra Chart single-trade record (Open 0; ask/bid volume tell the aggressor)."""
    return (sc_dt(dt_ns), 0.0, price, price, price, 1, size,
            size if side < 0 else 0, size if side > 0 else 0)


def scid_bar(dt_ns, o, h, lo, c, volume=10):
    return (sc_dt(dt_ns), o, h, lo, c, 3, volume, volume // 2, volume - volume // 2)


def write_scid(path, records):
    """Records numbered from 0 (float32 prices, as Sierra Chart stores them)."""
    rec = np.zeros(len(records), RECORD)
    for i, r in enumerate(records):
        rec[i] = r
    path.write_bytes(HEADER.pack(b"SCID", 56, 40, 1, 0, 0, b"\0" * 36) + rec.tobytes())
    return path


def write_dbn(path, rows):
    """Databento trades, records numbered from 0; ``--symbol ES`` names them."""
    body = b"".join(trade(dt, price, size, side=db.Side.BID if side > 0 else db.Side.ASK)
                    for dt, price, size, side in rows)
    path.write_bytes(metadata(mappings=[mapping("ESZ3", 42)]) + body)
    return path


def write_dbn_bars(path, bars):
    """Databento ohlcv-1m bars (ns after T0, open, high, low, close), records from 0."""
    body = b"".join(ohlcv(dt, o, h, lo, c, 5) for dt, o, h, lo, c in bars)
    path.write_bytes(metadata(schema=db.Schema.OHLCV_1M, mappings=[mapping("ESZ3", 42)]) + body)
    return path


def changed(rows, i, **kw):
    """rows with row i's fields replaced (dt, price, size, side)."""
    rows = [list(r) for r in rows]
    names = ("dt", "price", "size", "side")
    for name, value in kw.items():
        rows[i][names.index(name)] = value
    return rows


# --------------------------------------------------------------------------------------------
# The corpus: (name, maker(dir) -> (file, extra args), where, message regex)


@dataclass
class Broken:
    name: str
    make: object
    where: str
    message: str

    def __repr__(self):
        return self.name


LATE = r"time 2023-11-14T22:1\d:\d\d(\.\d+)?\+00:00 is more than 60 s before a row already read"
BAR_LATE = (r"bar time 2023-11-14T22:14:20\+00:00 is before a bar already read "
            r"\(2023-11-14T22:14:21\+00:00\); bars must be in time order")
OFF_GRID = (r"price 4500\.1 is not on the tick grid of ES \(tick size 0\.25: 4500\.0 or "
            r"4500\.25\); the tick size may be wrong")
ES = ["--symbol", "ES"]

CORPUS = [
    # generic CSV: lines from 1, the header is line 1
    Broken("csv-off-grid", lambda d: (write_csv(d / "a.csv", changed(es_trades(), 6, price=4500.1)),
                                      ES), "line 8", OFF_GRID),
    Broken("csv-size-1e308", lambda d: (write_csv(d / "a.csv", changed(es_trades(), 3, size=1e308)),
                                        ES), "line 5", r"size 1e\+308 is out of range"),
    Broken("csv-size-tiny", lambda d: (write_csv(d / "a.csv", changed(es_trades(), 3, size=1e-13)),
                                       ES), "line 5", r"size 1e-13 is out of range"),
    Broken("csv-price-1e-44", lambda d: (write_csv(d / "a.csv",
                                                   changed(es_trades(), 2, price=1e-44)), ES),
           "line 4", r"price 1e-44 is below one tick \(0\.25\) of ES"),
    Broken("csv-price-huge", lambda d: (write_csv(d / "a.csv", changed(es_trades(), 2, price=1e13)),
                                        ES),
           "line 4", r"price 10000000000000\.0 is out of range \(at most 1e\+12\)"),
    Broken("csv-price-inf", lambda d: (write_csv(d / "a.csv",
                                                 changed(es_trades(), 1, price=float("inf"))), ES),
           "line 3", r"column 'price': inf is not a finite number"),
    Broken("csv-late", lambda d: (write_csv(d / "a.csv", changed(es_trades(), 4, dt=-61 * SEC)),
                                  ES), "line 6", LATE),
    Broken("csv-negative-id", lambda d: (write_csv(d / "a.csv", es_trades(3),
                                                   {"trade_id": [5, -3, 7]}), ES),
           "line 3", r"column 'trade_id': -3 is negative: trade ids must be >= 0"),
    # a store's own check (price beyond the tick index range) names the line too, not the row
    Broken("csv-store-check", lambda d: (write_csv(d / "a.csv",
                                                   [[0, 1.0, 1, 1], [SEC, 1e9, 1, 1]]),
                                         ["--symbol", "TINY"]),
           "line 3", r"price 1000000000\.0 is out of range for tick size 1e-08"),
    # Binance public data (no header: lines from 1)
    Broken("binance-off-grid", lambda d: (write_binance(d / "BTCUSDT-trades-2023-11-14.csv", [
        [0, 37000.01, 0.5, 1], [SEC, 37000.005, 0.5, -1]]), []),
           "line 2", r"price 37000\.005 is not on the tick grid of BTCUSDT"),
    Broken("binance-qty-1e308", lambda d: (write_binance(d / "BTCUSDT-trades-2023-11-14.csv", [
        [0, 37000.01, 0.5, 1], [SEC, 37000.0, 1e308, -1]]), []),
           "line 2", r"size 1e\+308 is out of range"),
    Broken("binance-price-1e-44", lambda d: (write_binance(d / "BTCUSDT-trades-2023-11-14.csv", [
        [0, 1e-44, 0.5, 1]]), []), "line 1", r"price 1e-44 is below one tick"),
    # Parquet: rows from 0
    Broken("parquet-off-grid", lambda d: (write_parquet(d / "a.parquet",
                                                        changed(es_trades(), 2, price=4500.1)),
                                          ES), "row 2", OFF_GRID),
    Broken("parquet-size-1e308", lambda d: (write_parquet(d / "a.parquet",
                                                          changed(es_trades(), 1, size=1e308)),
                                            ES), "row 1", r"size 1e\+308 is out of range"),
    Broken("parquet-price-inf", lambda d: (write_parquet(d / "a.parquet",
                                                         changed(es_trades(), 5, price=np.inf)),
                                           ES), "row 5", r"column 'price': inf is not a finite"),
    Broken("parquet-late", lambda d: (write_parquet(d / "a.parquet",
                                                    changed(es_trades(), 3, dt=-70 * SEC)), ES),
           "row 3", LATE),
    # Sierra Chart .scid: records from 0; float32 prices
    Broken("scid-off-grid", lambda d: (write_scid(d / "ES.scid", [
        scid_tick(*r) for r in changed(es_trades(), 4, price=4500.1)]), []),
           "record 4", r"price 4500\.10009765625 is not on the tick grid of ES .*tick size may"),
    Broken("scid-price-1e-44", lambda d: (write_scid(d / "ES.scid", [
        scid_tick(*r) for r in changed(es_trades(), 1, price=1e-44)]), []),
           "record 1", r"price [0-9.]+e-4[45] is below one tick"),
    Broken("scid-late", lambda d: (write_scid(d / "ES.scid", [
        scid_tick(*r) for r in changed(es_trades(), 3, dt=-61 * SEC)]), []), "record 3", LATE),
    Broken("scid-bar-off-grid", lambda d: (write_scid(d / "ES.scid", [
        scid_bar(0, 4500.0, 4501.0, 4499.0, 4500.5), scid_bar(60 * SEC, 4500.1, 4501.0, 4499.0,
                                                              4500.5)]), []),
           "record 1", r"open 4500\.10009765625 is not on the tick grid of ES"),
    Broken("scid-bar-high-low", lambda d: (write_scid(d / "ES.scid", [
        scid_bar(0, 4500.0, 4501.0, 4499.0, 4500.5), scid_bar(60 * SEC, 4500.0, 4500.25, 4499.0,
                                                              4501.0)]), []),
           "record 1", r"bar high 4500\.25 / low 4499\.0 do not contain its open 4500\.0 and "
                       r"close 4501\.0"),
    Broken("scid-bar-late", lambda d: (write_scid(d / "ES.scid", [  # bars: strictly in order
        scid_bar(61 * SEC, 4500.0, 4501.0, 4499.0, 4500.5), scid_bar(60 * SEC, 4500.0, 4501.0,
                                                                     4499.0, 4500.5)]), []),
           "record 1", BAR_LATE),
    # Databento DBN: records from 0; fixed-point prices (1e-9)
    Broken("dbn-off-grid", lambda d: (write_dbn(d / "a.dbn", changed(es_trades(), 2, price=4500.1)),
                                      ES), "record 2", OFF_GRID),
    Broken("dbn-price-one-unit", lambda d: (write_dbn(d / "a.dbn",
                                                      changed(es_trades(), 2, price=1e-9)), ES),
           "record 2", r"price 1e-09 is below one tick"),
    Broken("dbn-negative-price", lambda d: (write_dbn(d / "a.dbn",
                                                      changed(es_trades(), 3, price=-4500.0)), ES),
           "record 3", r"price must be positive, got -4500\.0"),
    Broken("dbn-bar-off-grid", lambda d: (write_dbn_bars(d / "a.dbn", [
        (0, 4500.0, 4501.0, 4499.0, 4500.5), (60 * SEC, 4500.0, 4501.0, 4499.1, 4500.5)]), ES),
           "record 1", r"low 4499\.1 is not on the tick grid of ES"),
    Broken("dbn-bar-late", lambda d: (write_dbn_bars(d / "a.dbn", [
        (61 * SEC, 4500.0, 4501.0, 4499.0, 4500.5), (60 * SEC, 4500.0, 4501.0, 4499.0, 4500.5)]),
        ES), "record 1", BAR_LATE),
    Broken("dbn-late", lambda d: (write_dbn(d / "a.dbn", changed(es_trades(), 5, dt=-61 * SEC)),
                                  ES), "record 5", LATE),
]


# --------------------------------------------------------------------------------------------
# Stores


def add_instruments(url):
    with open_store(url) as s:
        for inst in INSTRUMENTS:
            s.add_instrument(inst)


def snapshot(url) -> dict[str, pd.DataFrame]:
    """What a user can export: trades, 1-minute bars and footprint of every symbol."""
    out = {}
    with open_store(url) as s:
        for inst in INSTRUMENTS:
            out[f"{inst.symbol} trades"] = s.trades(inst.symbol)
            out[f"{inst.symbol} bars"] = s.bars(inst.symbol, "1m")
            out[f"{inst.symbol} footprint"] = s.footprint(inst.symbol, "1m")
    return out


def assert_same(before, after):
    for key, frame in before.items():
        pd.testing.assert_frame_equal(after[key], frame, obj=key)


@pytest.fixture(scope="module", params=["duckdb", "timescaledb"])
def loaded(request, tmp_path_factory):
    """A store URL holding good ES and BTCUSDT trades in the minutes the broken files touch."""
    folder = tmp_path_factory.mktemp("loaded")
    if request.param == "duckdb":
        url, cleanup = f"duckdb:///{folder}/store.duckdb", None
    else:
        cluster = request.getfixturevalue("timescale_cluster")
        name = cluster.create_database()
        url, cleanup = cluster.url(name), lambda: cluster.drop_database(name)
    add_instruments(url)
    good = [[i * SEC // 2, 4500.0 + 0.25 * (i % 5), 2, 1 - 2 * (i % 2)] for i in range(200)]
    run(["import", str(write_csv(folder / "good.csv", good)), "--symbol", "ES", "--quiet"], url)
    btc = [[i * SEC, 37000.0 + 0.01 * (i % 7), 0.25, 1 - 2 * (i % 2)] for i in range(100)]
    run(["import", str(write_binance(folder / "BTCUSDT-trades-2023-11-14.csv", btc, 1)),
         "--quiet"], url)
    yield url
    if cleanup:
        cleanup()


@pytest.mark.parametrize("case", CORPUS, ids=repr)
def test_broken_file_is_refused_and_stores_nothing(loaded, case, tmp_path):
    path, args = case.make(tmp_path)
    before = snapshot(loaded)
    proc = run(["import", str(path), "--quiet", *args], loaded, ok=False)
    assert proc.returncode != 0
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    assert re.search(f"{re.escape(str(path))}: {case.where}: {case.message}", lines[0]), lines[0]
    assert_same(before, snapshot(loaded))


def test_places_count_through_chunks_of_a_big_scid_file(tmp_path):
    """Record 1,100,000 is named so (not as the row of its 1,000,000-record chunk)."""
    url = f"duckdb:///{tmp_path}/store.duckdb"
    add_instruments(url)
    n, bad = 1_100_001, 1_100_000
    rec = np.zeros(n, RECORD)
    rec["dt"] = sc_dt(0) + np.arange(n) // 100  # 100 trades a microsecond
    rec["close"] = rec["high"] = rec["low"] = 4500.25
    rec["volume"] = rec["ask_volume"] = 1
    rec["close"][bad] = 4500.1
    path = tmp_path / "ES.scid"
    path.write_bytes(HEADER.pack(b"SCID", 56, 40, 1, 0, 0, b"\0" * 36) + rec.tobytes())
    proc = run(["import", str(path), "--quiet"], url, ok=False)
    assert f"{path}: record 1100000: price 4500.10009765625 is not on the tick grid" in proc.stderr
    assert len(snapshot(url)["ES trades"]) == 0


# --------------------------------------------------------------------------------------------
# What must pass


@pytest.fixture
def store_url(tmp_path):
    url = f"duckdb:///{tmp_path}/store.duckdb"
    add_instruments(url)
    return url


def imported(url, path, *args) -> str:
    return run(["import", str(path), "--quiet", *args], url).stdout


@pytest.mark.parametrize("fmt", ["csv", "parquet", "scid", "dbn"])
def test_different_trades_at_the_same_timestamps_are_all_stored(store_url, tmp_path, fmt):
    a = es_trades(6)
    b = [[dt, price + 1.0, size, side] for dt, price, size, side in a]  # same times, new trades
    c = [[dt, price, size + 1, side] for dt, price, size, side in a]  # same prices, other sizes
    write = {"csv": lambda p, r: write_csv(p.with_suffix(".csv"), r),
             "parquet": lambda p, r: write_parquet(p.with_suffix(".parquet"), r),
             "scid": lambda p, r: write_scid(p.with_suffix(".scid"),
                                             [scid_tick(*x) for x in r]),
             "dbn": lambda p, r: write_dbn(p.with_suffix(".dbn"), r)}[fmt]
    files = []
    for name, rows in (("a", a), ("b", b), ("c", c)):
        (tmp_path / name).mkdir()
        files.append(write(tmp_path / name / "ES", rows))
    for f in files:
        assert "6 trades read, 6 new" in imported(store_url, f, *ES)
    for f in files:  # the same file again: nothing new
        assert "6 trades read, 0 new" in imported(store_url, f, *ES)
    got = snapshot(store_url)
    assert len(got["ES trades"]) == 18
    assert got["ES bars"]["volume"].sum() == sum(r[2] for r in a + b + c)


def test_identical_trades_in_one_microsecond_are_all_kept(store_url, tmp_path):
    rows = [[0, 4500.0, 1, 1]] * 3 + [[0, 4500.25, 1, 1]]
    path = write_csv(tmp_path / "a.csv", rows)
    assert "4 trades read, 4 new" in imported(store_url, path, *ES)
    assert "4 trades read, 0 new" in imported(store_url, path, *ES)
    # another file with one more of the same trade: only that one is new
    more = write_csv(tmp_path / "b.csv", [[0, 4500.0, 1, 1]] * 4)
    assert "4 trades read, 1 new" in imported(store_url, more, *ES)
    trades = snapshot(store_url)["ES trades"]
    # ids keep the file's order within the microsecond (ranks first)
    assert list(trades["price"][:3]) == [4500.0] * 3
    assert sorted(trades["price"][3:]) == [4500.0, 4500.25]
    assert (trades["trade_id"] < 0).all()


@pytest.mark.parametrize("fmt", ["csv", "binance", "parquet", "scid", "dbn"])
def test_small_reorderings_are_accepted_and_stored_in_time_order(store_url, tmp_path, fmt):
    # one trade 59 s (< 60 s) before the one read before it, as real feeds have
    rows = [[0, 4500.0, 1, 1], [59 * SEC, 4500.25, 2, -1], [SEC, 4500.5, 3, 1],
            [60 * SEC, 4500.0, 4, 1]]
    if fmt == "binance":
        rows = [[dt, 37000.0 + price - 4500.0, size, side] for dt, price, size, side in rows]
        path, args, symbol = write_binance(tmp_path / "BTCUSDT-trades-2023-11-14.csv", rows), [], \
            "BTCUSDT"
    else:
        path = {"csv": lambda: write_csv(tmp_path / "a.csv", rows),
                "parquet": lambda: write_parquet(tmp_path / "a.parquet", rows),
                "scid": lambda: write_scid(tmp_path / "ES.scid", [scid_tick(*r) for r in rows]),
                "dbn": lambda: write_dbn(tmp_path / "a.dbn", rows)}[fmt]()
        args, symbol = ES, "ES"
    assert "4 trades read, 4 new" in imported(store_url, path, *args)
    trades = snapshot(store_url)[f"{symbol} trades"]
    assert trades["ts"].is_monotonic_increasing
    assert list(trades["size"]) == [1, 3, 2, 4]


def test_trades_with_ids_may_come_in_any_order(store_url, tmp_path):
    # Binance futures monthly files interleave two id streams weeks apart (binance-public-data
    # issues 288, 293, 339): real files, so they import, stored in time order
    week = 7 * 86400 * SEC
    rows = []
    for k in range(4):
        rows.append([k * SEC, 37000.0 + 0.01 * k, 0.5, 1])
        rows.append([2 * week + k * SEC, 38000.0 + 0.01 * k, 0.25, -1])
    path = tmp_path / "BTCUSDT-aggTrades-2023-11.csv"
    lines = [f"{(1000 if k % 2 == 0 else 5000) + k // 2},{p!r},{q!r},{1 + k},{1 + k},"
             f"{(T0.value + dt) // 1_000_000},{'true' if side < 0 else 'false'}"
             for k, (dt, p, q, side) in enumerate(rows)]
    path.write_text("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
                    "is_buyer_maker\n" + "\n".join(lines) + "\n")
    assert "8 trades read, 8 new" in imported(store_url, path)
    assert "8 trades read, 0 new" in imported(store_url, path)
    trades = snapshot(store_url)["BTCUSDT trades"]
    assert trades["ts"].is_monotonic_increasing and list(trades["size"]) == [0.5] * 4 + [0.25] * 4
    # a CSV with its own trade ids too
    csv = write_csv(tmp_path / "a.csv", [[0, 4500.0, 1, 1], [3600 * SEC, 4500.0, 2, 1],
                                        [SEC, 4500.0, 3, 1]], {"trade_id": [1, 2, 3]})
    assert "3 trades read, 3 new" in imported(store_url, csv, *ES)


def test_float32_prices_are_stored_exactly_on_the_grid(store_url, tmp_path):
    # 75.13 is 75.12999725341797 as float32; CL's grid is 0.01
    path = write_scid(tmp_path / "CL.scid", [
        scid_tick(0, 75.13, 1, 1), scid_tick(SEC, 75.07, 2, -1),
        scid_bar(120 * SEC, 75.1, 75.2, 75.01, 75.11)])
    imported(store_url, path)
    got = snapshot(store_url)
    assert list(got["CL trades"]["price"]) == [75.13, 75.07]
    bars = got["CL bars"]
    assert list(bars["high"]) == [75.13, 75.2] and list(bars["low"]) == [75.07, 75.01]
    assert list(bars["open"]) == [75.13, 75.1] and list(bars["close"]) == [75.07, 75.11]
    assert sorted(got["CL footprint"]["tick"]) == [7507, 7513]


def test_a_huge_size_never_poisons_a_rollup_on_postgresql(timescale_db_url, tmp_path):
    add_instruments(timescale_db_url)
    rows = es_trades(4)
    bad = write_csv(tmp_path / "bad.csv", changed(rows, 2, size=1e308))
    proc = run(["import", str(bad), "--quiet", *ES], timescale_db_url, ok=False)
    assert "line 4: size 1e+308 is out of range" in proc.stderr
    # nor through the store's own API (a live writer): the same bound
    with open_store(timescale_db_url) as s, pytest.raises(RowError, match="row 1: size"):
        frame = pd.DataFrame({"ts": [T0, T0], "price": [4500.0, 4500.0], "size": [1.0, 1e308],
                              "side": [1, 1], "trade_id": [1, 2]})
        s.write_trades("ES", frame)
    # the minute stays writable, and the largest size allowed sums to a finite volume
    top = write_csv(tmp_path / "top.csv", [[dt, price, MAX_SIZE, side]
                                           for dt, price, _, side in rows])
    imported(timescale_db_url, write_csv(tmp_path / "good.csv", rows), *ES)
    imported(timescale_db_url, top, *ES)
    bars = snapshot(timescale_db_url)["ES bars"]
    assert len(bars) == 1 and np.isfinite(bars["volume"]).all()
    assert bars["volume"].iloc[0] == pytest.approx(4 * MAX_SIZE + sum(r[2] for r in rows))


# --------------------------------------------------------------------------------------------
# The validation API as a live batch uses it (no file: rows are named by position)


def batch(prices, sizes=None, dts=None, ids=None):
    """Trades of a live batch; without ``ids``, made (negative) ids as for sources without."""
    n = len(prices)
    return pd.DataFrame({
        "ts": T0 + pd.to_timedelta(dts if dts is not None else np.arange(n) * SEC, "ns"),
        "price": np.asarray(prices, "float64"),
        "size": np.asarray(sizes if sizes is not None else [1.0] * n, "float64"),
        "side": np.ones(n, "int8"),
        "trade_id": np.asarray(ids if ids is not None
                               else np.arange(n, dtype="int64") + np.iinfo("int64").min, "int64")})


def test_validator_checks_a_live_batch_of_trades():
    v = Validator({"ES": 0.25, "BTC": 0.01}.__getitem__)
    ok = v.trades("ES", batch([4500.0, 4500.25000000001]))
    assert list(ok["price"]) == [4500.0, 4500.25]  # on the grid exactly
    with pytest.raises(RowError, match=r"row 1: price 4500\.1 is not on the tick grid") as e:
        v.trades("ES", batch([4500.0, 4500.1]))
    assert e.value.row == 1
    with pytest.raises(RowError, match=r"row 0: size 1e\+308 is out of range"):
        v.trades("ES", batch([4500.0], [1e308]))
    # time order carries across batches of one stream, per symbol
    v.trades("BTC", batch([37000.0], dts=[600 * SEC]))
    with pytest.raises(RowError, match=r"row 1: time .* more than 60 s before"):
        v.trades("BTC", batch([37000.0, 37000.0], dts=[599 * SEC, 500 * SEC]))
    v.trades("ES", batch([4500.0], dts=[0]))  # ES has its own clock
    # trades with the source's ids may come in any order
    v.trades("BTC", batch([37000.0, 37000.0], dts=[0, 900 * SEC], ids=[7, 8]))
    v.trades("BTC", batch([37000.0], dts=[0], ids=[9]))


def test_validator_checks_bars():
    v = Validator(lambda symbol: 0.25)
    bars = pd.DataFrame({"ts": [T0, T0 + pd.Timedelta(1, "min")], "open": [4500.0, 4500.5],
                         "high": [4501.0, 4501.0], "low": [4499.0, 4500.0],
                         "close": [4500.25, 4500.75], "volume": [10.0, 5.0]})
    pd.testing.assert_frame_equal(v.bars("ES", bars), bars)
    with pytest.raises(RowError, match=r"row 1: high/low 4501\.0/4500\.0 do not contain open "
                       r"4500\.5 and close 4502\.0"):
        v.bars("ES", bars.assign(close=[4500.25, 4502.0]))
    with pytest.raises(RowError, match=r"row 0: volume must be non-negative, got -1\.0"):
        v.bars("ES", bars.assign(volume=[-1.0, 5.0]))
    with pytest.raises(RowError, match=r"row 0: volume 1e\+300 is out of range"):
        v.bars("ES", bars.assign(volume=[1e300, 5.0]))
    with pytest.raises(RowError, match=r"row 1: low 4500\.1 is not on the tick grid"):
        v.bars("ES", bars.assign(low=[4499.0, 4500.1]))


@pytest.mark.parametrize("tick", [0.25, 0.01, 0.1, 1e-8, 5.0, 1 / 32, 1 / 3])
def test_on_grid_snaps_to_the_value_whose_tick_index_is_exact(tick):
    ticks = np.array([1, 7, 123_457, 45_003, 10**9])
    exact = ticks * tick
    # float32 holds 24 bits: prices of up to ~1e6 ticks stay apart
    f32 = exact[:-1].astype("float32").astype("float64")
    for prices, want, bits in ((exact, ticks, 64), (f32, ticks[:-1], 32)):
        snapped, bad = on_grid(prices, tick, bits)
        assert bad is None
        np.testing.assert_array_equal(np.rint(snapped / tick), want)
        np.testing.assert_array_equal(on_grid(snapped, tick)[0], snapped)  # idempotent
    assert on_grid(np.array([(ticks[2] + 0.4) * tick]), tick)[1] == 0


def test_places_are_named_in_the_ingest_error_convention():
    # IngestError's docstring: "record N" (binary, from 0), "line N" (CSV, from 1),
    # "row N" (Parquet, from 0); a chunk names its rows the same way
    from tradeflow.ingest.chunks import ImportChunk

    chunk = ImportChunk("trades", "ES", batch([1.0, 2.0]), 0, 0, np.array([7, 3]), "line")
    assert chunk.where(0) == "line 7" and chunk.where(1) == "line 3"
