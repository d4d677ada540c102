"""The notebook API (``import tradeflow as tf``): every function gives what the call it wraps
gives, errors are one line, charts build offline, and live charts follow a store and a running
``tradeflow serve`` (forming bar patched, closed bars once) and stop when replaced or closed."""
from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
import time

import httpx
import numpy as np
import pandas as pd
import pytest

import tradeflow as tf
from dashboards import notebook
from indicators.catalogue import CATALOGUE
from indicators.registry import IndicatorError
from tests.serve import new_key, serving, tradeflow
from tradeflow.api import Workspace
from tradeflow.ingest.simulator import MarketSimulator
from tradeflow.marketdata import MarketData
from tradeflow.model import Instrument, ModelError
from tradeflow.studies import run_study

BTC = Instrument("BTCUSDT", 0.1, "BINANCE", "crypto")
T0 = pd.Timestamp("2026-01-06 10:00", tz="UTC")
FILLED = T0 + pd.Timedelta("2h30s")  # the history ends 30 s into a 1-minute bar
TRADES_PER_DAY = 40_000


def fill(ws: Workspace, start=T0, end=FILLED) -> int:
    """Simulated BTCUSDT trades of [start, end) (deterministic: seed 5)."""
    return ws.simulate("BTCUSDT", start, end, seed=5, trades_per_day=TRADES_PER_DAY, depth=False)


@pytest.fixture
def ws(store_url):
    w = Workspace(store_url)
    w.add_instrument(BTC.symbol, BTC.tick_size, BTC.exchange, BTC.asset_class)
    fill(w)
    yield w
    notebook.stop_all()
    w.close()


@pytest.fixture
def duck(tmp_path):
    w = Workspace(f"duckdb:///{tmp_path}/tf.duckdb")
    w.add_instrument(BTC.symbol, BTC.tick_size, BTC.exchange, BTC.asset_class)
    fill(w)
    yield w
    notebook.stop_all()
    w.close()


# --- the package ---------------------------------------------------------------------------------

def test_import_tradeflow_loads_no_panel_and_the_api_names_stay_functions():
    code = ("import sys, tradeflow as tf, tradeflow.cli, tradeflow.bars, tradeflow.studies\n"
            "assert not {'panel', 'bokeh', 'holoviews'} & set(sys.modules), sys.modules.keys()\n"
            "from tradeflow.bars import build\n"
            "assert callable(tf.bars) and tf.bars.__name__ == 'bars'\n"
            "assert callable(tf.studies) and tf.studies.__name__ == 'studies'\n"
            "assert 'chart' in dir(tf)\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_open_makes_the_current_workspace(tmp_path, monkeypatch):
    url = f"duckdb:///{tmp_path}/a.duckdb"
    monkeypatch.setenv("TRADEFLOW_STORE", url)
    monkeypatch.setattr("tradeflow.api._current", None)
    assert tf.current().url == url  # the default store, as the CLI's
    other = tf.open(f"duckdb:///{tmp_path}/b.duckdb")
    assert tf.current() is other and tf.open(other.url) is other
    tf.add_instrument("BTCUSDT", 0.1)
    assert tf.instruments()["symbol"].tolist() == ["BTCUSDT"]
    assert tf.instrument("BTCUSDT").tick_size == 0.1
    with pytest.raises(ModelError, match="unknown symbol|no instrument|not registered"):
        tf.bars("ETHUSDT")
    other.close()


# --- data, as the calls they wrap ----------------------------------------------------------------

def test_every_read_is_the_call_it_wraps(ws):
    md = MarketData(ws.store)
    for spec in ("5m", "T500", "R20"):
        pd.testing.assert_frame_equal(ws.bars("BTCUSDT", spec), md.bars("BTCUSDT", spec))
    pd.testing.assert_frame_equal(ws.bars("BTCUSDT", "1m", last=7),
                                  md.bars("BTCUSDT", "1m", last=7))
    pd.testing.assert_frame_equal(ws.trades("BTCUSDT", start=T0, end=T0 + pd.Timedelta("5min")),
                                  md.trades("BTCUSDT", T0, T0 + pd.Timedelta("5min")))
    cells = ws.footprint("BTCUSDT", "15m")
    want = md.footprint("BTCUSDT", "15m")
    pd.testing.assert_frame_equal(cells.drop(columns=["price", "delta"]), want)
    assert np.allclose(cells["price"], want["tick"] * 0.1)
    assert (cells["delta"] == want["ask_volume"] - want["bid_volume"]).all()


def test_study_is_the_cli_study_with_typed_settings(ws):
    md = MarketData(ws.store)
    got = ws.study("RSI", "BTCUSDT", "5m", timeperiod=10)
    pd.testing.assert_frame_equal(got, run_study(md, "RSI", "BTCUSDT", "5m",
                                                 params={"timeperiod": "10"}))
    assert got["RSI"].notna().sum() == len(got) - 10
    last = ws.study("cvd", "BTCUSDT", "5m", last=4)
    assert len(last) == 4 and last["ts"].iloc[-1] == ws.bars("BTCUSDT", "5m")["ts"].iloc[-1]
    higher = ws.study("EMA", "BTCUSDT", "5m", higher="30m", timeperiod=3)
    pd.testing.assert_frame_equal(higher, run_study(md, "EMA", "BTCUSDT", "5m",
                                                    params={"timeperiod": "3"}, higher="30m"))
    studies = tf.studies()
    pd.testing.assert_frame_equal(studies, CATALOGUE.table())
    assert {"RSI", "cvd", "volume_profile"} <= set(studies["name"])


def test_import_file_stores_what_the_importer_stores(tmp_path):
    rows = pd.DataFrame({"time": pd.date_range("2026-01-06 09:00", periods=5, freq="s",
                                               tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "price": [100.0, 100.1, 100.2, 100.1, 100.0],
                         "qty": [1.0, 2.0, 1.5, 1.0, 3.0], "side": [1, -1, 1, 1, -1]})
    path = tmp_path / "t.csv"
    rows.to_csv(path, index=False)
    with Workspace(f"duckdb:///{tmp_path}/imp.duckdb") as w:
        w.add_instrument("BTCUSDT", 0.1)
        lines = w.import_file(path, symbol="BTCUSDT", mapping={"ts": "time", "size": "qty"})
        assert "5 new trades" in lines[-1]
        got = w.trades("BTCUSDT")
        assert got["price"].tolist() == rows["price"].tolist()
        assert got["size"].tolist() == rows["qty"].tolist()
        assert got["side"].tolist() == rows["side"].tolist()
        # all or nothing: a bad file stores nothing, and says where in one line
        bad = tmp_path / "bad.csv"
        rows.assign(price=[100.0, 100.1, -5.0, 100.1, 100.0]).to_csv(bad, index=False)
        with pytest.raises(Exception) as err:
            w.import_file(bad, symbol="BTCUSDT", mapping={"ts": "time", "size": "qty"})
        assert "bad.csv" in str(err.value) and "\n" not in str(err.value)
        assert len(w.trades("BTCUSDT")) == 5


def test_simulate_writes_the_simulators_trades(tmp_path):
    with Workspace(f"duckdb:///{tmp_path}/sim.duckdb") as w:
        w.add_instrument("BTCUSDT", 0.1)
        n = w.simulate("BTCUSDT", T0, T0 + pd.Timedelta("20min"), seed=3, trades_per_day=20_000)
        want = MarketSimulator(w.instrument("BTCUSDT"), seed=3, trades_per_day=20_000).generate(
            T0, T0 + pd.Timedelta("20min")).trades
        got = w.trades("BTCUSDT")
        assert n == len(want) == len(got)
        assert got["price"].tolist() == want["price"].tolist()
        assert len(w.depth("BTCUSDT")) > 0


@pytest.mark.parametrize("call, kind, words", [
    (lambda w: w.bars("BTCUSDT", "7q"), ModelError, "7q"),
    (lambda w: w.bars("NOPE!?", "1m"), ModelError, "NOPE"),
    (lambda w: w.study("RSI", "BTCUSDT", "5m", timeprd=3), IndicatorError, "timeprd"),
    (lambda w: w.study("RSI", "BTCUSDT", "5m", timeperiod="x"), IndicatorError, "timeperiod"),
    (lambda w: w.study("NOSUCH", "BTCUSDT"), IndicatorError, "NOSUCH"),
    (lambda w: w.chart("BTCUSDT", "5m", type="pie"), ValueError, "pie"),
    (lambda w: w.chart("BTCUSDT", "5m", studies=["RSI(x"]), ValueError, "RSI"),
    (lambda w: w.chart("ETHUSDT", "5m"), ModelError, "ETHUSDT"),
    (lambda w: w.chart("BTCUSDT", "5m", live=True, end=T0), ValueError, "end"),
    (lambda w: w.chart("BTCUSDT", "5m", live=3), ValueError, "live"),
    (lambda w: w.simulate("BTCUSDT", T0, None), ValueError, "end"),
])
def test_errors_are_one_line(duck, call, kind, words):
    with pytest.raises(kind) as err:
        call(duck)
    text = str(err.value)
    assert words in text and "\n" not in text and "Traceback" not in text


# --- charts --------------------------------------------------------------------------------------

def test_a_chart_builds_offline_with_its_settings(duck, tmp_path):
    import panel as pn
    from bokeh.resources import INLINE

    chart = duck.chart("BTCUSDT", "5m", type="footprint", studies=["cvd"], last=6,
                       theme="light")
    assert pn.config.inline  # BokehJS and Panel's scripts go into the notebook
    assert type(chart.view).__name__ == "FootprintChart" and chart.config.theme == "light"
    bars = duck.bars("BTCUSDT", "5m")
    pd.testing.assert_frame_equal(chart.history, bars)
    assert chart.config.view_range == (bars["ts"].iloc[-6], bars["ts"].iloc[-1])
    from bokeh.models import Plot
    root = pn.panel(chart).get_root()
    assert list(root.select({"type": Plot}))  # the footprint's figures are in the model
    out = tmp_path / "chart.html"
    pn.panel(chart).save(str(out), resources=INLINE)
    page = out.read_text()
    scripts = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']*)", page)
    styles = re.findall(r"<link[^>]*rel=[\"']stylesheet[\"'][^>]*href=[\"']([^\"']*)", page)
    assert not [s for s in scripts + styles if "cdn." in s or s.startswith("http")]
    assert "Bokeh" in page and len(page) > 1_000_000  # the scripts are in it

    candles = duck.chart("BTCUSDT", "1m", studies=[("RSI", {"timeperiod": 5})],
                         end=T0 + pd.Timedelta("30min"))
    assert candles.config.studies[0]["params"]["timeperiod"] == 5
    assert candles.history["ts"].iloc[-1] == T0 + pd.Timedelta("29min")  # ends at ``end``


def _more(ws, start, end):
    """More simulated trades after the chart was drawn (what another process would write)."""
    return fill(ws, start, end)


def _check_live(ws, chart, follower):
    bars_before = len(chart.history)
    forming = chart.history.iloc[-1].copy()
    assert not follower.poll_now()  # nothing new: nothing sent
    _more(ws, FILLED, FILLED + pd.Timedelta("15s"))  # inside the forming bar
    assert follower.poll_now()
    assert len(chart.history) == bars_before
    assert chart.history["ts"].iloc[-1] == forming["ts"]
    assert chart.history["volume"].iloc[-1] > forming["volume"]
    _more(ws, FILLED + pd.Timedelta("15s"), FILLED + pd.Timedelta("3min"))  # 3 bars close
    assert follower.poll_now()
    assert not follower.poll_now()
    want = MarketData(ws.store).bars("BTCUSDT", "1m", last=len(chart.history))
    pd.testing.assert_frame_equal(chart.history, want)  # each bar once, as stored
    assert len(chart.history) == bars_before + 3


def test_live_from_the_store_and_from_postgresql(store_url):
    w = Workspace(store_url)
    w.add_instrument(BTC.symbol, BTC.tick_size)
    fill(w)
    try:
        # live=True follows the workspace's store; a store URL opens its own (postgresql://)
        live = True if store_url.startswith("duckdb") else store_url
        chart = w.chart("BTCUSDT", "1m", live=live)
        follower = chart.feed
        assert isinstance(follower, notebook.Follower)
        shown = chart.view.source.data
        n_rows = len(shown["x"]) if "x" in shown else None
        _check_live(w, chart, follower)
        if n_rows is not None:  # the view holds each bar once too
            xs = list(chart.view.source.data["x"])
            assert len(xs) == len(set(xs)) == len(chart.history)
    finally:
        notebook.stop_all()
        w.close()


def test_the_periodic_callback_follows_and_stops_when_replaced_closed_or_collected(duck):
    async def main():
        chart = duck.chart("BTCUSDT", "1m", live=True, period_ms=50)
        follower = chart.feed
        assert follower.callback.running
        before = chart.history["volume"].iloc[-1]
        _more(duck, FILLED, FILLED + pd.Timedelta("10s"))
        for _ in range(200):  # the callback polls on its own
            await asyncio.sleep(0.05)
            if follower.applied:
                break
        assert follower.applied == 1 and chart.history["volume"].iloc[-1] > before
        # the cell run again: the same chart replaces it, the old one stops
        again = duck.chart("BTCUSDT", "1m", live=True, period_ms=50)
        assert follower.closed and not follower.callback.running
        assert list(notebook.FOLLOWING.values()) == [again.feed]
        await asyncio.sleep(0.2)
        applied = again.feed.applied
        again.close()
        assert again.feed.closed and not notebook.FOLLOWING
        _more(duck, FILLED + pd.Timedelta("10s"), FILLED + pd.Timedelta("20s"))
        await asyncio.sleep(0.3)
        assert again.feed.applied == applied  # stopped: nothing applied after close
        third = duck.chart("BTCUSDT", "1m", live=True, period_ms=50)
        follower = third.feed
        del third
        gc.collect()
        await asyncio.sleep(0.1)
        assert follower.closed and not follower.callback.running

    asyncio.run(main())


def test_live_from_a_running_server(tmp_path):
    store = f"duckdb:///{tmp_path}/served.duckdb"
    with Workspace(store) as w:
        w.add_instrument(BTC.symbol, BTC.tick_size)
        fill(w)
        want_bars = w.bars("BTCUSDT", "1m")
    key = new_key(store)
    with serving(store) as served:
        w = Workspace(store)  # the server holds the file: the work runs there
        assert w.server is not None and w.server.url == served.url
        pd.testing.assert_frame_equal(w.bars("BTCUSDT", "1m"), want_bars)
        assert len(w.study("RSI", "BTCUSDT", "5m", timeperiod=5)) == len(
            w.bars("BTCUSDT", "5m"))
        chart = w.chart("BTCUSDT", "1m", live=served.url)
        pd.testing.assert_frame_equal(chart.history.iloc[-len(want_bars):].reset_index(drop=True),
                                      want_bars.iloc[-len(chart.history):].reset_index(drop=True))
        follower = chart.feed
        assert not follower.poll_now()
        forming = chart.history.iloc[-1].copy()
        last_id = int(w.trades("BTCUSDT", last=1)["trade_id"].iloc[0])

        def post(seconds, price):
            body = [{"symbol": "BTCUSDT", "time": (FILLED + pd.Timedelta(seconds=s)).isoformat(),
                     "price": price, "size": 1.5, "side": "buy", "id": last_id + 1 + s}
                    for s in seconds]
            answer = httpx.post(f"{served.api}/trades", json=body,
                                headers={"X-API-Key": key}, timeout=60)
            assert answer.status_code == 200, answer.text

        def wait_poll():
            for _ in range(100):  # the pipeline writes in micro-batches
                if follower.poll_now():
                    return
                time.sleep(0.1)
            raise AssertionError("no update came")

        post([1, 2], float(forming["close"]))
        wait_poll()
        assert chart.history["ts"].iloc[-1] == forming["ts"]
        assert chart.history["volume"].iloc[-1] == forming["volume"] + 3.0
        n = len(chart.history)
        post([65, 130], float(forming["close"]))  # two new bars: one closes, one forms
        wait_poll()
        assert len(chart.history) == n + 2
        got = chart.history.iloc[-3:].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, w.bars("BTCUSDT", "1m", last=3))
        # following the held file by its URL, from another workspace, reads the server too
        from tradeflow.remote import ServerData
        with Workspace(f"duckdb:///{tmp_path}/other.duckdb") as other:
            by_url = other.chart("BTCUSDT", "1m", live=store)
            assert isinstance(by_url.feed.source, ServerData)
            pd.testing.assert_frame_equal(by_url.history.iloc[-3:].reset_index(drop=True),
                                          got)
        notebook.stop_all()
        assert follower.closed and by_url.feed.closed


def test_server_data_errors_are_one_line():
    from tradeflow.remote import ServerData
    from tradeflow.server.client import ServerError

    with pytest.raises(ServerError, match="http://host:port"):
        ServerData("ftp://x")
    with pytest.raises(ServerError) as err:
        ServerData("http://127.0.0.1:9").bars("BTCUSDT")  # nothing listens on port 9
    assert "did not answer" in str(err.value) and "\n" not in str(err.value)


# --- a long history ------------------------------------------------------------------------------

class CountingReads(MarketData):
    """The real MarketData, noting the most trades one read returned."""

    most = 0

    def trades(self, symbol, start=None, end=None, last=None):
        frame = super().trades(symbol, start, end, last)
        self.most = max(self.most, len(frame))
        return frame


def test_overview_bins_every_trade_reading_a_chunk_at_a_time(duck):
    all_trades = duck.trades("BTCUSDT")
    grid = duck.overview("BTCUSDT", T0, FILLED, width=60, height=30)
    assert grid.shape == (30, 60) and grid.dims == ("price", "ts")
    assert np.isclose(float(grid.sum()), all_trades["size"].sum())
    reads = CountingReads(duck.store)
    from tradeflow.history_grid import trade_grid
    chunked = trade_grid(reads, "BTCUSDT", T0, FILLED, width=60, height=30, chunk="10min")
    np.testing.assert_allclose(chunked.to_numpy(), grid.to_numpy())  # however it is chunked
    assert 0 < reads.most < len(all_trades) / 5  # never the whole history at once
    # the cell of the highest price holds the trades at the day's high
    top = all_trades["price"].max()
    assert float(grid.isel(price=-1).sum()) >= all_trades.loc[all_trades["price"] == top,
                                                               "size"].sum()
    with pytest.raises(ValueError, match="before start"):
        duck.overview("BTCUSDT", FILLED, T0)


def test_a_live_chart_in_a_jupyter_kernel(tmp_path):
    """In a real kernel: the chart is displayed with BokehJS inline (no CDN), follows new trades
    through the kernel's event loop, and a cell run again replaces its follower."""
    import nbformat
    from nbclient import NotebookClient

    cells = [
        f"""import asyncio, pandas as pd, tradeflow as tf
tf.open("duckdb:///{tmp_path}/nb.duckdb")
tf.add_instrument("BTCUSDT", 0.1)
T = pd.Timestamp("{FILLED.isoformat()}")
n = tf.simulate("BTCUSDT", T - pd.Timedelta("1h"), T, seed=5, trades_per_day=40000)""",
        """chart = tf.chart("BTCUSDT", "1m", live=True, period_ms=100)
chart""",
        """before = chart.history["volume"].iloc[-1]
tf.simulate("BTCUSDT", T, T + pd.Timedelta("20s"), seed=5, trades_per_day=40000)
for _ in range(100):  # the periodic callback runs on the kernel's loop while this awaits
    await asyncio.sleep(0.1)
    if chart.feed.applied:
        break
assert chart.feed.applied == 1 and chart.history["volume"].iloc[-1] > before""",
        """old = chart.feed
chart = tf.chart("BTCUSDT", "1m", live=True, period_ms=100)
from dashboards import notebook
assert old.closed and not old.callback.running and len(notebook.FOLLOWING) == 1""",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    scripts = "".join(o.get("data", {}).get("application/javascript", "") for o in outputs)
    assert len(scripts) > 1_000_000  # BokehJS itself, inline
    shown = [o for o in nb.cells[1].outputs if o.output_type == "execute_result"][0]["data"]
    assert "application/vnd.holoviews_exec.v0+json" in shown
    assert not re.findall(r"<script[^>]*src=[\"']https?://", shown["text/html"])


def test_a_live_footprint_follows_its_cells(duck):
    chart = duck.chart("BTCUSDT", "1m", type="footprint", live=True)
    follower = chart.feed
    assert follower.poller.cells
    _more(duck, FILLED, FILLED + pd.Timedelta("2min"))
    assert follower.poll_now()
    md = MarketData(duck.store)
    first = chart.history["ts"].iloc[0]
    pd.testing.assert_frame_equal(chart.history, md.bars("BTCUSDT", "1m", start=first))
    pd.testing.assert_frame_equal(chart.history_cells.reset_index(drop=True),
                                  md.footprint("BTCUSDT", "1m", start=first))


def test_the_module_functions_show_the_methods_signatures():
    import inspect

    assert list(inspect.signature(tf.bars).parameters)[:3] == ["symbol", "spec", "start"]
    assert tf.bars.__doc__ == Workspace.bars.__doc__


def test_the_studies_of_a_polled_chart_follow_its_bars(duck):
    chart = duck.chart("BTCUSDT", "1m", studies=[("EMA", {"timeperiod": 5}), "cvd"], live=True)
    _more(duck, FILLED, FILLED + pd.Timedelta("20s"))
    assert chart.feed.poll_now()  # the forming bar changed
    _more(duck, FILLED + pd.Timedelta("20s"), FILLED + pd.Timedelta("3min"))
    assert chart.feed.poll_now()  # three bars closed
    bars = MarketData(duck.store).bars("BTCUSDT", "1m", start=chart.history["ts"].iloc[0])
    pd.testing.assert_frame_equal(chart.history, bars)
    layers = {layer.name: layer for layer in chart.view.layers}
    for name, params in (("EMA", {"timeperiod": 5}), ("cvd", {})):
        want = duck.study(name, "BTCUSDT", "1m", start=bars["ts"].iloc[0], **params)
        column = layers[name].columns[0]
        got = np.asarray(layers[name].source.data[column], "float64")
        assert len(got) == len(bars)
        np.testing.assert_allclose(got, want[column].to_numpy("float64"), equal_nan=True)
