"""``tradeflow serve`` as a process: its address, its pages, a clean stop, the CLI of another
terminal while it holds the embedded DuckDB file, API keys from the command line, every store."""
from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from data_access import open_store
from tradeflow.server.base import is_loopback
from tests.test_cli import fake_clock
from tests.serve import SIERRA_BAR, new_key, serving, tradeflow


def duckdb_store(tmp_path) -> tuple[str, Path]:
    path = tmp_path / "held.duckdb"
    return f"duckdb:///{path}", path


def trades_csv(path: Path, start="2025-11-26 15:00", n=120) -> None:
    ts = pd.date_range(start, periods=n, freq="1s", tz="UTC")
    pd.DataFrame({"ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "price": [4100 + 0.01 * (i % 9) for i in range(n)],
                  "size": 1, "side": ["buy", "sell"] * (n // 2)}).to_csv(path, index=False)


def test_serve_prints_its_address_serves_pages_and_stops_cleanly(tmp_path):
    store, path = duckdb_store(tmp_path)
    tradeflow(["instruments", "add", "XAUUSD", "--tick-size", "0.01"], store)
    with serving(store) as served:
        assert served.url.startswith("http://127.0.0.1:")
        address_file = path.with_name(path.name + ".server.json")
        info = json.loads(address_file.read_text())
        assert info["url"] == served.url and info["pid"] == served.proc.pid
        assert address_file.stat().st_mode & 0o077 == 0  # the owner's only
        page = httpx.get(f"{served.url}/formula", params={"symbol": "XAUUSD"}, timeout=60)
        assert page.status_code == 200 and "formula" in page.text
        assert httpx.get(f"{served.url}/api/v1/openapi.json").json()["openapi"] == "3.1.0"
        served.proc.send_signal(signal.SIGINT)
        assert served.proc.wait(60) == 0
    assert "Traceback" not in served.output
    assert not address_file.exists()
    with open_store(store) as s:  # the file is free again
        assert s.instrument("XAUUSD").tick_size == 0.01


def test_cli_of_another_terminal_works_through_the_server(tmp_path, monkeypatch):
    store, _ = duckdb_store(tmp_path)
    tradeflow(["instruments", "add", "XAUUSD", "--tick-size", "0.01"], store)
    with serving(store) as served:
        # instruments, keys, import, export and study while the server holds the file
        added = tradeflow(["instruments", "add", "BTCUSDT", "--tick-size", "0.1"], store)
        assert "the work runs there" in added.stderr
        key = new_key(store, "late")
        answer = httpx.post(f"{served.api}/market-data", json=SIERRA_BAR,
                            headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text  # a key made meanwhile works at once
        csv = tmp_path / "trades.csv"
        trades_csv(csv)
        monkeypatch.chdir(tmp_path)  # a relative path, from this terminal's directory
        out = tradeflow(["import", "trades.csv", "--symbol", "XAUUSD", "--quiet"], store).stdout
        assert "120 new trades" in out
        bars = tradeflow(["export", "bars", "XAUUSD", "--start", "2025-11-26 15:00",
                          "--end", "2025-11-26 16:00"], store)
        frame = pd.read_csv(pd.io.common.StringIO(bars.stdout))
        assert frame["trades"].tolist() == [60, 60]
        study = tradeflow(["study", "SMA", "XAUUSD", "--param", "timeperiod=2", "--start",
                           "2025-11-26 15:00", "--end", "2025-11-26 16:00"], store).stdout
        assert study.splitlines()[0] == "ts,SMA" and len(study.splitlines()) == 3
        # the CLI's own errors come back as one line, no traceback, nothing half done
        bad = tradeflow(["export", "bars", "NOPE"], store, ok=False)
        assert bad.returncode == 1 and "unknown symbol 'NOPE'" in bad.stderr
        assert "Traceback" not in bad.stderr
        missing = tradeflow(["import", str(tmp_path / "trades.csv"), "--format", "scid"],
                            store, ok=False)
        assert missing.returncode == 1 and "Traceback" not in missing.stderr
        # revoked from the command line: refused by the server at once
        tradeflow(["apikey", "revoke", "late"], store)
        answer = httpx.post(f"{served.api}/market-data", json=SIERRA_BAR,
                            headers={"X-API-Key": key})
        assert answer.status_code == 403 and "revoked" in answer.json()["error"]
        listed = tradeflow(["apikey", "list"], store).stdout
        assert "late" in listed and key not in listed
    assert "Traceback" not in served.output


def test_a_second_server_on_a_held_file_says_why(tmp_path):
    store, _ = duckdb_store(tmp_path)
    with serving(store):
        second = tradeflow(["serve", "--port", "0"], store, ok=False, timeout=120)
    assert second.returncode == 1
    assert "serves one process at a time" in second.stderr
    assert "Traceback" not in second.stderr


def test_apikey_commands_store_only_a_hash(tmp_path):
    store, _ = duckdb_store(tmp_path)
    key = new_key(store, "sierra", "--timezone", "Europe/London")
    assert key.startswith("tfk_") and len(key) > 60
    with open_store(store) as s:
        rows = s.api_keys()
    assert len(rows) == 1 and rows[0]["timezone"] == "Europe/London"
    assert key not in json.dumps(rows, default=str)
    secret = key.split("_", 2)[2]  # (tfk_<id>_<secret>: the secret may hold "_" too)
    assert len(secret) == 43 and secret not in json.dumps(rows, default=str)
    again = tradeflow(["apikey", "create", "sierra"], store, ok=False)
    assert again.returncode == 1 and "already named 'sierra'" in again.stderr
    zone = tradeflow(["apikey", "create", "x", "--timezone", "Mars/Olympus"], store, ok=False)
    assert "time zone 'Mars/Olympus' is unknown" in zone.stderr
    gone = tradeflow(["apikey", "revoke", "nobody"], store, ok=False)
    assert "no active key is named 'nobody'" in gone.stderr
    tradeflow(["apikey", "revoke", "sierra"], store)
    assert new_key(store, "sierra") != key  # the name is free again


def test_serve_on_every_store(store_url):
    tradeflow(["instruments", "add", "XAUUSD", "--tick-size", "0.01"], store_url)
    key = new_key(store_url, "feeder")
    with serving(store_url) as served:
        answer = httpx.post(f"{served.api}/market-data", json=SIERRA_BAR,
                            headers={"X-API-Key": key})
        assert answer.json() == {"status": "success", "symbol": "XAUUSD", "timeframe": "1s"}
        trades = [{"symbol": "XAUUSD", "time": f"2025-11-26T21:20:0{i}Z", "price": 4160 + i * .01,
                   "size": 1, "side": "buy", "id": i} for i in range(5)]
        answer = httpx.post(f"{served.api}/trades", json=trades, headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        doc = httpx.get(f"{served.api}/bars", params={"symbol": "XAUUSD",
                                                      "start": "2025-11-26 21:00"}).json()
        got = pd.DataFrame(doc["data"], columns=doc["columns"])
        assert got["volume"].tolist() == [19, 5]
        if not store_url.startswith("duckdb"):  # the store is shared: no server in between
            tradeflow(["apikey", "revoke", "feeder"], store_url)
            # the server re-reads the keys every 2 s: asked until it refuses (or 10 s passed)
            deadline = time.monotonic() + 10
            while True:
                answer = httpx.post(f"{served.api}/market-data", json=SIERRA_BAR,
                                    headers={"X-API-Key": key})
                if answer.status_code != 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert answer.status_code == 403 and "revoked" in answer.json()["error"]
    assert "Traceback" not in served.output


def test_serve_with_the_simulator_streams_through_the_pipeline(tmp_path):
    """On a Sunday evening (the clock set there with libfaketime) BTCUSDT streams and the server
    says when ES, closed, opens."""
    store, _ = duckdb_store(tmp_path)
    tradeflow(["instruments", "add", "BTCUSDT", "--tick-size", "0.1", "--asset-class", "crypto"],
              store)
    tradeflow(["instruments", "add", "ES", "--tick-size", "0.25", "--session",
               "America/Chicago 08:30-15:15,17:00-16:00"], store)
    with serving(store, "--simulate", "BTCUSDT,ES",
                 env=fake_clock("2026-11-29 20:00:00")) as served:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            doc = httpx.get(f"{served.api}/bars", params={"symbol": "BTCUSDT", "spec": "1s",
                                                          "last": "5"}).json()
            if doc["data"]:
                break
            time.sleep(1)
        assert doc["data"], served.output
        first = dict(zip(doc["columns"], doc["data"][0]))
        assert first["ts"].startswith("2026-11-29T20:0"), first  # live, on the fake clock
        # (the wait is counted from when the server started: a slow start may take a minute off)
        assert re.search(r"ES: session closed now; it opens Sun 2026-11-29 17:00 America/Chicago "
                         r"\(23:00 UTC, in (3 h 00|2 h 59) min\)\. Its simulated stream starts "
                         r"then\.", served.output), served.output
        es = httpx.get(f"{served.api}/bars", params={"symbol": "ES", "spec": "1s"}).json()
        assert es["data"] == []
    assert "Traceback" not in served.output


@pytest.mark.parametrize("ip, local", [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.7", False), ("10.0.0.5", False), ("::ffff:192.0.2.7", False), ("fe80::1%eth0", False),
    ("", False), (None, False), ("not an address", False),
])
def test_only_loopback_clients_read_without_a_key(ip, local):
    # A served test from another address would send traffic to a non-loopback address, which
    # this workplace forbids; the rule the read handlers apply is checked here instead.
    assert is_loopback(ip) is local


def test_simulate_while_served_says_what_to_do(tmp_path):
    store, _ = duckdb_store(tmp_path)
    tradeflow(["instruments", "add", "BTCUSDT", "--tick-size", "0.1", "--asset-class", "crypto"],
              store)
    with serving(store):
        held = tradeflow(["simulate", "BTCUSDT", "--days", "0.01", "--no-live",
                          "--end", "2025-11-26"], store, ok=False)
    assert held.returncode == 1
    assert "holds the store" in held.stderr and "tradeflow serve --simulate BTCUSDT" in held.stderr
    assert "Traceback" not in held.stderr
