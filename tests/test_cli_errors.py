"""Bad input on the command line: one clear line (no traceback), nothing stored, no secret shown.
Run as a user runs it (the installed entry point); data at fixed dates."""
import io

import pandas as pd
import pytest

from data_access import open_store
from tests.test_cli import es_only_store, run, store, trades_csv  # noqa: F401 -- fixtures

XSS = "<svg/onload=alert(document.domain)>"


def one_line_error(proc, *parts):
    """The command failed with an error line holding every part, and no traceback."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1, proc.stderr
    for part in parts:
        assert part in error[0], proc.stderr
    return error[0]


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """ES with 3,000 trades of 2026-01-06 (the commands here must not change it)."""
    folder = tmp_path_factory.mktemp("filled")
    url = f"duckdb:///{folder}/filled.duckdb"
    run(["instruments", "add", "ES", "--tick-size", "0.25", "--session",
         "America/Chicago 08:30-15:15,17:00-16:00"], url)
    trades_csv(folder / "es.csv", n=3000)
    run(["import", str(folder / "es.csv"), "--symbol", "ES", "--quiet"], url)
    return url


def contents(url):
    with open_store(url) as s:
        return [i.symbol for i in s.instruments()], len(s.trades("ES")), len(s.bars("ES"))


@pytest.mark.parametrize("symbol", [XSS, "ES X", "É", "E" * 41, "a&b", "x'y"])
def test_instruments_add_refuses_bad_symbols(filled, symbol):
    proc = run(["instruments", "add", symbol, "--tick-size", "0.25"], filled, ok=False)
    one_line_error(proc, "is not valid: use 1 to 40 letters, digits")
    assert contents(filled)[0] == ["ES"]


def test_instruments_add_takes_real_symbols(store):
    real = ["ESZ5", "ES.FUT", "BTCUSD_PERP", "BTC-USDT", "EUR/USD", "^GSPC", "BRK.B", "6E", "/ES"]
    for symbol in real:
        run(["instruments", "add", symbol, "--tick-size", "0.01"], store)
    assert set(real) <= set(run(["instruments", "list"], store).stdout.split())


@pytest.mark.parametrize("args, parts", [
    (["--tick-size", "1e300"], ["tick size must be from 1e-12 to 1e+06"]),
    (["--tick-size", "1e-300"], ["tick size must be from"]),
    (["--tick-size", "0"], ["tick size must be a positive number"]),
    (["--tick-size", "abc"], ["'--tick-size'", "'abc' is not a valid float"]),
    (["--tick-size", "0.25", "--point-value", "inf"], ["point value must be a positive number"]),
    (["--tick-size", "0.25", "--session", "Mars/Olympus 08:30-15:00"], ["unknown time zone"]),
    (["--tick-size", "0.25", "--session", "UTC 25:00-26:00"], ["is not a time of day"]),
])
def test_instruments_add_refuses_bad_numbers_and_sessions(filled, args, parts):
    one_line_error(run(["instruments", "add", "NQ", *args], filled, ok=False), *parts)
    assert contents(filled)[0] == ["ES"]


# --last is one option of `export`, read before what is exported: every bad count once, each
# kind of export in turn (not every count with every kind)
@pytest.mark.parametrize("what, last", [
    ("trades", "-3"), ("bars", "0"), ("footprint", "99999999999999999999"),
    ("trades", "1000000001"), ("footprint", "abc")])
def test_export_last_must_be_a_sane_count(filled, what, last):
    proc = run(["export", what, "ES", "--last", last], filled, ok=False)
    one_line_error(proc, "'--last'")


def test_export_last_takes_every_count_in_range(filled):
    out = pd.read_csv(io.StringIO(run(["export", "bars", "ES", "--last", "1"], filled).stdout))
    assert len(out) == 1
    out = pd.read_csv(io.StringIO(run(["export", "trades", "ES", "--last", "1000000000"],
                                      filled).stdout))
    assert len(out) == 3000


BAD_OPTIONS = [
    (["export", "trades", "NOPE"], ["unknown symbol 'NOPE'", "tradeflow instruments add"]),
    (["export", "bars", "NOPE"], ["unknown symbol 'NOPE'"]),
    (["export", "footprint", "NOPE", "--last", "3"], ["unknown symbol 'NOPE'"]),
    (["export", "bars", XSS], ["is not valid"]),
    (["export", "bars", "ES", "--spec", "7x"], ["bar spec '7x' not understood"]),
    (["export", "bars", "ES", "--spec", "0m"], ["the size must be positive"]),
    (["export", "bars", "ES", "--spec", "T-5"], ["bar spec 'T-5' not understood"]),
    (["export", "bars", "ES", "--spec", "99999999999h"], ["must divide a day evenly"]),
    (["export", "bars", "ES", "--start", "1e9"], ["time '1e9' not understood"]),
    (["export", "bars", "ES", "--start", "99999-01-01"], ["not understood"]),
    (["export", "bars", "ES", "--start", "2026-01-07", "--end", "2026-01-06"],
     ["is before start"]),
    (["export", "bars", "ES", "-o", "out.txt"], ["use a .csv or .parquet file name"]),
    (["study", "RSI", "ES", "--spec", "5m", "--tf", "1m"],
     ["--tf 1m: the higher timeframe must be longer than the bars' spec 5m"]),
    (["study", "RSI", "ES", "--spec", "5m", "--tf", "5m"], ["must be longer"]),
    (["study", "RSI", "ES", "--spec", "1M", "--tf", "1w"], ["must be longer"]),
    (["study", "RSI", "ES", "--spec", "T500", "--tf", "T100"], ["must be longer"]),
    (["study", "RSI", "ES", "--tf", "7x"], ["bar spec '7x' not understood"]),
    (["study", "NOPE", "ES"], ["unknown study 'NOPE'", "tradeflow study --list"]),
    (["study", "RSI", "NOPE"], ["unknown symbol 'NOPE'"]),
    (["study", "RSI", XSS], ["is not valid"]),
    (["study", "RSI"], ["give a study NAME and a SYMBOL"]),
    (["study", "RSI", "ES", "--param", "timeperiod=-5"], ["'timeperiod' must be an integer"]),
    (["study", "RSI", "ES", "--param", "timeperiod=99999999999999999999"],
     ["'timeperiod' must be an integer"]),
    (["study", "RSI", "ES", "--param", "timeperiod"], ["--param 'timeperiod': expected KEY=VALUE"]),
    (["study", "big_trades", "ES", "--param", "min_size=nan"], ["'min_size' must be a number"]),
    (["study", "sweeps", "ES", "--param", "max_gap_ms=1e300"], ["'max_gap_ms' must be a number"]),
    (["study", "cvd", "ES", "--tf", "1h"], ["a higher timeframe applies to indicators only"]),
    (["study", "cvd", "ES", "--param", "reset=bogus"], ["'reset' must be one of"]),
    (["study", "volume_profile", "ES", "--start", "2030-01-01"],
     ["Error: volume_profile: no cells, nothing to profile"]),
    (["import", "es.csv", "--symbol", XSS], ["es.csv", "is not valid"]),
    (["import", "es.csv", "--symbol", "ES", "--map", "ts"], ["--map 'ts': expected KEY=VALUE"]),
]


@pytest.mark.parametrize("args, parts", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_options_get_one_clear_line(filled, tmp_path, monkeypatch, args, parts):
    monkeypatch.chdir(tmp_path)
    trades_csv(tmp_path / "es.csv", n=10, seed=5)
    one_line_error(run(args, filled, ok=False), *parts)
    assert contents(filled) == (["ES"], 3000, 240)  # nothing stored
    assert not (tmp_path / "out.txt").exists()


def test_higher_timeframes_still_run(filled):
    out = pd.read_csv(io.StringIO(run(["study", "SMA", "ES", "--spec", "5m", "--tf", "1h",
                                       "--param", "timeperiod=2"], filled).stdout))
    assert out["SMA"].notna().any()
    out = pd.read_csv(io.StringIO(run(["study", "SMA", "ES", "--spec", "T50", "--tf", "15m",
                                       "--param", "timeperiod=2"], filled).stdout))
    assert out["SMA"].notna().any()
