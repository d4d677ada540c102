"""The ``tradeflow`` command, run as a user runs it (a subprocess of the installed entry point)."""
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_access import open_store
from indicators.orderflow import bar_poc

TRADEFLOW = str(Path(sys.executable).with_name("tradeflow"))


def run(args, store, ok=True, env=None):
    env = dict(os.environ, TRADEFLOW_STORE=store, **(env or {}))
    proc = subprocess.run([TRADEFLOW, *args], capture_output=True, text=True, env=env, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session")
def es_only_store(tmp_path_factory):
    """A DuckDB store file holding ES, as ``tradeflow instruments add`` made it (once)."""
    path = tmp_path_factory.mktemp("cli-template") / "cli.duckdb"
    run(["instruments", "add", "ES", "--tick-size", "0.25", "--exchange", "CME",
         "--asset-class", "future", "--point-value", "50",
         "--session", "America/Chicago 08:30-15:15,17:00-16:00"], f"duckdb:///{path}")
    return path


@pytest.fixture
def store(tmp_path, es_only_store):
    """A store of this test's own holding ES: a copy of ``es_only_store`` (a copy of the closed
    file is much quicker than one more ``tradeflow`` process per test)."""
    for name in ("cli.duckdb", "cli.duckdb.wal"):  # DuckDB checkpoints on close; if it did not
        if (es_only_store.parent / name).exists():
            shutil.copyfile(es_only_store.parent / name, tmp_path / name)
    return f"duckdb:///{tmp_path}/cli.duckdb"


def trades_csv(path, n=2000, seed=0, bad_line=None):
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2026-01-06 14:30", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 4 * 3600 * 10**6, n)), unit="us")
    frame = pd.DataFrame({
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "price": 5000 + 0.25 * np.cumsum(rng.integers(-2, 3, n)),
        "size": rng.integers(1, 30, n),
        "side": rng.choice(["buy", "sell"], n),
    })
    text = frame.to_csv(index=False)
    if bad_line is not None:
        lines = text.splitlines()
        lines[bad_line - 1] = lines[bad_line - 1].replace(".", "x", 1)
        text = "\n".join(lines) + "\n"
    path.write_text(text)
    return frame


def test_instruments_add_and_list(store):
    out = run(["instruments", "list"], store).stdout
    assert "ES" in out and "America/Chicago 08:30-15:15,17:00-16:00" in out
    bad = run(["instruments", "add", "NQ", "--tick-size", "-1"], store, ok=False)
    assert bad.returncode != 0
    assert "tick size must be a positive number" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_import_then_export_round_trip(store, tmp_path):
    src = trades_csv(tmp_path / "es.csv")
    out = run(["import", str(tmp_path / "es.csv"), "--symbol", "ES"], store).stdout
    assert "2,000 trades read, 2,000 new" in out
    again = run(["import", str(tmp_path / "es.csv"), "--symbol", "ES"], store).stdout
    assert "2,000 trades read, 0 new" in again

    trades = pd.read_csv(io.StringIO(run(["export", "trades", "ES"], store).stdout))
    assert len(trades) == 2000
    np.testing.assert_allclose(trades["price"], src["price"])

    bars_file = tmp_path / "bars.parquet"
    run(["export", "bars", "ES", "--spec", "15m", "-o", str(bars_file)], store)
    bars = pd.read_parquet(bars_file)
    assert len(bars) == 16 and bars["volume"].sum() == src["size"].sum()

    fp = pd.read_csv(io.StringIO(run(["export", "footprint", "ES", "--spec", "1h"], store).stdout))
    assert fp["volume"].sum() == src["size"].sum()
    assert set(fp["price"]) <= set(src["price"])  # prices on the grid again at the edge

    renko = pd.read_csv(io.StringIO(run(["export", "bars", "ES", "--spec", "RK4", "--last", "5"],
                                        store).stdout))
    assert len(renko) == 5


def test_bad_file_stores_nothing(store, tmp_path):
    trades_csv(tmp_path / "good.csv")
    trades_csv(tmp_path / "bad.csv", seed=1, bad_line=1500)
    proc = run(["import", str(tmp_path / "good.csv"), str(tmp_path / "bad.csv"),
                "--symbol", "ES"], store, ok=False)
    assert proc.returncode != 0
    assert "bad.csv" in proc.stderr and "1500" in proc.stderr
    assert "Traceback" not in proc.stderr
    with open_store(store) as s:
        assert len(s.trades("ES")) == 0 and len(s.bars("ES")) == 0


def test_bad_time_is_refused_clearly(store):
    proc = run(["export", "bars", "ES", "--start", "yesterday-ish"], store, ok=False)
    assert "time 'yesterday-ish' not understood" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_symbol_is_refused_with_advice(store, tmp_path):
    trades_csv(tmp_path / "nq.csv")
    proc = run(["import", str(tmp_path / "nq.csv"), "--symbol", "NQ"], store, ok=False)
    assert "NQ" in proc.stderr and "tradeflow instruments add" in proc.stderr


def test_simulate_fills_history(store):
    run(["instruments", "add", "BTCUSDT", "--tick-size", "0.1", "--asset-class", "crypto"], store)
    out = run(["simulate", "BTCUSDT", "--days", "0.25", "--end", "2026-01-04T12:00Z", "--no-live",
               "--trades-per-day", "50000"], store).stdout
    assert "BTCUSDT: " in out and "simulated trades from 2026-01-04 06:00:00+00:00" in out
    with open_store(store) as s:
        bars = s.bars("BTCUSDT", "1m")
        fp = s.footprint("BTCUSDT", "1m")
    assert len(bars) > 0
    assert fp["volume"].sum() == pytest.approx(bars["volume"].sum())
    heat = pd.read_csv(io.StringIO(run(["study", "heatmap", "BTCUSDT", "--param",
                                        "interval_seconds=60"], store).stdout))
    assert list(heat.columns) == ["ts", "tick", "price", "bid_size", "ask_size"]
    last = heat[heat["ts"] == heat["ts"].max()]
    # the resting bids sit below the resting asks in the last book of the grid
    assert last.loc[last["bid_size"] > 0, "tick"].max() < last.loc[last["ask_size"] > 0,
                                                                    "tick"].min()


def test_study_runs_a_registered_indicator(store, tmp_path):
    import talib

    trades_csv(tmp_path / "es.csv", n=6000)
    run(["import", str(tmp_path / "es.csv"), "--symbol", "ES"], store)
    listed = pd.read_csv(io.StringIO(run(["study", "--list"], store).stdout))
    assert {"RSI", "MACD", "CDLDOJI"} <= set(listed["name"])
    assert "timeperiod=14" in listed.set_index("name").loc["RSI", "params"]
    out = pd.read_csv(io.StringIO(run(["study", "RSI", "ES", "--spec", "5m",
                                       "--param", "timeperiod=9"], store).stdout))
    bars = pd.read_csv(io.StringIO(run(["export", "bars", "ES", "--spec", "5m"], store).stdout))
    np.testing.assert_allclose(out["RSI"], talib.RSI(bars["close"].to_numpy(), 9), rtol=1e-9,
                               equal_nan=True)
    mtf = pd.read_csv(io.StringIO(run(["study", "SMA", "ES", "--spec", "5m", "--tf", "1h",
                                       "--param", "timeperiod=2"], store).stdout))
    hours = pd.read_csv(io.StringIO(run(["export", "bars", "ES", "--spec", "1h"], store).stdout))
    assert len(mtf) == len(bars)
    # the first value appears on the 5m bar that closes with the second hour
    first = mtf["SMA"].first_valid_index()
    assert mtf["ts"].iloc[first] == (pd.Timestamp(hours["ts"].iloc[1]) + pd.Timedelta("55min")
                                     ).isoformat(sep=" ")
    assert mtf["SMA"].iloc[first] == pytest.approx(hours["close"].iloc[:2].mean())
    bad = run(["study", "RSI", "ES", "--param", "timeperiod=1"], store, ok=False)
    assert "parameter 'timeperiod' must be an integer from 2" in bad.stderr


def test_study_runs_order_flow_and_profile_studies(store, tmp_path):
    src = trades_csv(tmp_path / "es.csv", n=4000)
    run(["import", str(tmp_path / "es.csv"), "--symbol", "ES"], store)
    vp = pd.read_csv(io.StringIO(run(["study", "volume_profile", "ES", "--param", "rows=2"],
                                     store).stdout))
    assert list(vp.columns[:7]) == ["price", "volume", "ask_volume", "bid_volume", "trades",
                                    "poc", "value_area"]
    assert vp["volume"].sum() == src["size"].sum()
    assert vp["poc"].sum() == 1 and bool(vp.loc[vp["poc"], "value_area"].iloc[0])
    assert vp.loc[vp["value_area"], "volume"].sum() >= 0.7 * vp["volume"].sum()
    dev = pd.read_csv(io.StringIO(run(["study", "developing_profile", "ES", "--spec", "5m",
                                       "--param", "rows=2"], store).stdout))
    assert list(dev.columns) == ["ts", "date", "poc", "vah", "val", "volume"]
    # one trading day: the last bar's developing POC and value area are the range's
    last = dev.iloc[-1]
    assert last["poc"] == vp.loc[vp["poc"], "price"].item()
    assert (last["val"], last["vah"]) == (vp.loc[vp["value_area"], "price"].min(),
                                          vp.loc[vp["value_area"], "price"].max())
    assert last["volume"] == src["size"].sum()
    cvd = pd.read_csv(io.StringIO(run(["study", "cvd", "ES", "--spec", "15m"], store).stdout))
    bars = pd.read_csv(io.StringIO(run(["export", "bars", "ES", "--spec", "15m"], store).stdout))
    np.testing.assert_allclose(cvd["cvd"], bars["delta"].cumsum())
    tpo = pd.read_csv(io.StringIO(run(["study", "tpo", "ES", "--param", "rows=4"], store).stdout))
    assert {"date", "price", "tpo_count", "letters", "poc", "value_area"} <= set(tpo.columns)
    assert tpo.groupby("date")["poc"].sum().eq(1).all()
    assert (tpo["letters"].str.len() == tpo["tpo_count"]).all()
    bad = run(["study", "imbalances", "ES", "--param", "ratio=0.5"], store, ok=False)
    assert "parameter 'ratio' must be a number from 1.0001" in bad.stderr
    # bar POCs of rows of 2 ticks: row keys, priced at the row's lowest tick
    fm = pd.read_csv(io.StringIO(run(["study", "footprint_metrics", "ES", "--param", "rows=2"],
                                     store).stdout))
    with open_store(store) as s:
        want = bar_poc(s.footprint("ES", "1m"), rows=2)
    assert fm["poc"].tolist() == want["poc"].tolist() and (fm["poc"] % 2 == 0).all()
    assert np.allclose(fm["poc_price"], fm["poc"] * 0.25)


def test_custom_indicator_from_the_user_folder(store, tmp_path):
    folder = tmp_path / "my_indicators"
    folder.mkdir()
    (folder / "spread.py").write_text('''
from indicators.registry import Param, indicator

@indicator(group="Custom", inputs=("high", "low"), outputs=("range",),
           params=[Param("scale", 2.0, min=0.0, max=100.0, description="Multiplier")])
def BAR_RANGE(high, low, scale=2.0):
    """(high - low) * scale."""
    return (high - low) * scale
''')
    trades_csv(tmp_path / "es.csv", n=1000)
    run(["import", str(tmp_path / "es.csv"), "--symbol", "ES"], store)
    env = {"TRADEFLOW_INDICATORS": str(folder)}
    listed = run(["study", "--list"], store, env=env).stdout
    assert "BAR_RANGE" in listed
    out = pd.read_csv(io.StringIO(run(["study", "bar_range", "ES", "--spec", "30m",
                                       "--param", "scale=3"], store, env=env).stdout))
    bars = pd.read_csv(io.StringIO(run(["export", "bars", "ES", "--spec", "30m"], store).stdout))
    np.testing.assert_allclose(out["BAR_RANGE"], (bars["high"] - bars["low"]) * 3)
    (folder / "broken.py").write_text("x = 1\ny = undefined_name\n")
    bad = run(["study", "--list"], store, ok=False, env=env)
    assert "broken.py, line 2: NameError" in bad.stderr and "Traceback" not in bad.stderr



def test_simulate_says_when_a_session_was_closed(store):
    # Saturday noon to Sunday noon UTC: CME is shut from Friday's close to Sunday 17:00 Chicago
    out = run(["simulate", "ES", "--days", "1", "--end", "2026-01-04T12:00Z", "--no-live"],
              store).stdout
    assert "ES: 0 simulated trades" in out
    assert ("its session (America/Chicago 08:30-15:15,17:00-16:00) was closed all that time; "
            "it opens Sun 2026-01-04 17:00 America/Chicago (23:00 UTC, in 11 h 00 min)") in out
    args = ["simulate", "ES", "--days", "0.5", "--end", "2026-01-06T18:00Z", "--no-live",
            "--trades-per-day", "20000"]
    out = run(args, store).stdout
    assert "was closed" not in out
    made = int(re.search(r"ES: ([\d,]+) simulated trades", out).group(1).replace(",", ""))
    assert made > 0
    # again: the same trades (seeded), none new; not "closed" (the main job says it at each start)
    again = run(args, store).stdout
    assert ("ES: 0 new simulated trades from 2026-01-06 06:00:00+00:00 to 2026-01-06 "
            f"18:00:00+00:00 ({made:,} were stored already)") in again
    assert "was closed" not in again


@pytest.mark.parametrize("args, message", [
    (["--days", "-1"], "Invalid value for '--days'"),
    (["--days", "0"], "Invalid value for '--days'"),
    (["--speed", "0"], "Invalid value for '--speed'"),
    (["--end", "2026-01-04"], "--end fixes where the history ends"),
    (["--end", "soon", "--no-live"], "time 'soon' not understood"),
])
def test_simulate_refuses_bad_arguments(store, args, message):
    proc = run(["simulate", "ES", *args], store, ok=False)
    assert proc.returncode != 0 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_live_simulation_streams_what_trades_and_says_what_is_closed(store):
    """On a Sunday evening (UTC) ES is closed and BTCUSDT trades: the main job streams BTCUSDT
    and says when ES opens (the clock is set there with libfaketime)."""
    run(["instruments", "add", "BTCUSDT", "--tick-size", "0.1", "--asset-class", "crypto"], store)
    proc = run(["simulate", "ES", "BTCUSDT", "--days", "0.05", "--live", "--speed", "20",
                "--duration", "6", "--trades-per-day", "20000"], store,
               env=fake_clock("2026-11-29 20:00:00"))
    out = proc.stdout
    assert ("ES: session closed now; it opens Sun 2026-11-29 17:00 America/Chicago "
            "(23:00 UTC, in 3 h 00 min). Its streaming starts then; meanwhile BTCUSDT streams."
            ) in out
    assert "BTCUSDT live: " in out and "ES live" not in out
    with open_store(store) as s:
        btc = s.trades("BTCUSDT")
    assert btc["ts"].max() > pd.Timestamp("2026-11-29 20:00:00", tz="UTC")  # the live part


def fake_clock(when: str) -> dict:
    """Environment that starts a subprocess's clocks at ``when`` (UTC) with libfaketime; they run
    on from there (a clock standing still would stop every timer)."""
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": f"@{when}", "TZ": "UTC"}


LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), "")
