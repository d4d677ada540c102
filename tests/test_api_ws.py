"""The websocket ingest hook against a real ``tradeflow serve``: batches acknowledged by sequence
number once stored, refused batches answered with an error and nothing stored, keys required."""
from __future__ import annotations

import asyncio
import json

import httpx
import pandas as pd
import pytest
import websockets

from tests.serve import prepared, serving, tradeflow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = f"duckdb:///{tmp_path_factory.mktemp('ws')}/ws.duckdb"
    key = prepared(store, [("BTCUSDT", 0.1)], ["feeder"])["feeder"]
    with serving(store) as served:
        served.key = key
        yield served


def trades(n, first_id, start):
    t0 = pd.Timestamp(start, tz="UTC")
    return [{"time": (t0 + pd.Timedelta(milliseconds=100 * i)).isoformat(),
             "price": 90000 + 0.5 * (i % 7), "size": 0.5, "side": "buy" if i % 3 else "sell",
             "id": first_id + i} for i in range(n)]


def bars(server, start, end, spec="1m"):
    doc = httpx.get(f"{server.api}/bars", params={"symbol": "BTCUSDT", "spec": spec,
                                                  "start": start, "end": end}).json()
    return pd.DataFrame(doc["data"], columns=doc["columns"])


async def exchange(server, messages, key=True, notices=None):
    """Send every message, then collect one answer per message (slow-down notices, which are
    not answers, go to ``notices``)."""
    headers = {"X-API-Key": server.key} if key else {}
    answers = []
    async with websockets.connect(server.ws, additional_headers=headers) as ws:
        for m in messages:
            await ws.send(m if isinstance(m, str) else json.dumps(m))
        while len(answers) < len(messages):
            answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if answer.get("slow_down"):
                notices.append(answer)
            else:
                answers.append(answer)
    return answers


def by_seq(answers):
    return {a.get("ack", a.get("seq")): a for a in answers}


def test_batches_are_acknowledged_once_stored(server):
    batches = [{"seq": i, "type": "trades", "symbol": "BTCUSDT",
                "data": trades(50, 1 + 50 * i, f"2025-11-26 10:0{i}:00")} for i in range(3)]
    answers = by_seq(asyncio.run(exchange(server, batches)))
    assert answers == {i: {"ack": i, "rows": 50} for i in range(3)}
    got = bars(server, "2025-11-26 10:00", "2025-11-26 10:03")
    assert got["trades"].tolist() == [50, 50, 50]


def test_other_kinds_of_batches(server):
    messages = [
        {"seq": 10, "type": "depth", "symbol": "BTCUSDT",
         "data": [{"time": "2025-11-26 11:00:00", "side": "bid", "price": 89999.5, "size": 3},
                  {"time": "2025-11-26 11:00:00", "side": "ask", "price": 90000.5, "size": 2}]},
        {"seq": 11, "type": "liquidations", "symbol": "BTCUSDT",
         "data": [{"time": "2025-11-26 11:00:01", "side": "sell", "price": 89990.0,
                   "size": 1.5}]},
        {"seq": 12, "type": "bars", "symbol": "BTCUSDT", "seconds": 60,
         "data": [{"timestamp": "2025-11-26 12:00:00", "open": 90000, "high": 90010,
                   "low": 89990, "close": 90005, "volume": 12}]},
    ]
    answers = by_seq(asyncio.run(exchange(server, messages)))
    assert answers == {10: {"ack": 10, "rows": 2}, 11: {"ack": 11, "rows": 1},
                       12: {"ack": 12, "rows": 1}}
    got = bars(server, "2025-11-26 12:00", "2025-11-26 12:01")
    assert got[["open", "close", "volume"]].values.tolist() == [[90000, 90005, 12]]


def test_refused_batches_say_why_and_store_nothing(server):
    good = trades(5, 10_000, "2025-11-26 13:00:00")
    zero = [dict(t) for t in good]
    zero[3]["size"] = 0
    off_grid = [dict(t) for t in good]
    off_grid[1]["price"] = 90000.05
    messages = [
        "{not json",
        {"type": "trades", "symbol": "BTCUSDT", "data": good},
        {"seq": 20, "type": "quotes", "symbol": "BTCUSDT", "data": good},
        {"seq": 21, "type": "trades", "symbol": "BTCUSDT", "data": zero},
        {"seq": 22, "type": "trades", "symbol": "BTCUSDT", "data": off_grid},
        {"seq": 23, "type": "trades", "symbol": "NOPE", "data": good},
        {"seq": 24, "type": "trades", "data": good},
        {"seq": 25, "type": "depth", "symbol": "BTCUSDT",
         "data": [{"time": "2025-11-26 13:00:00", "side": "middle", "price": 1, "size": 1}]},
        {"seq": 26, "type": "trades", "symbol": "BTCUSDT",
         "data": trades(1, 99, "2125-01-01 00:00:00")},
    ]
    answers = asyncio.run(exchange(server, messages))
    errors = {a.get("seq"): a["error"] for a in answers}
    assert all("ack" not in a for a in answers), answers
    assert "malformed JSON" in errors[None] or "seq must be" in errors[None]
    assert "type must be one of" in errors[20]
    assert "row 3" in errors[21] and "size" in errors[21]
    assert "tick grid" in errors[22]
    assert "unknown symbol 'NOPE'" in errors[23]
    assert "symbol is missing" in errors[24]
    assert "side must be one of" in errors[25]
    assert "ahead of the server's clock" in errors[26]
    assert bars(server, "2025-11-26 13:00", "2025-11-26 14:00").empty


def test_the_upgrade_needs_a_key(server):
    async def connect(headers):
        async with websockets.connect(server.ws, additional_headers=headers):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect({}))
    assert refused.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect({"X-API-Key": server.key[:-2] + "xx"}))
    assert refused.value.response.status_code == 403
    assert b"not valid" in refused.value.response.body


def test_the_readme_client_feeds_the_server(server):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S)
                if "async def feed" in block)
    space: dict = {}
    exec(compile(code, "README.md", "exec"), space)
    batches = [trades(10, 50_000 + 10 * i, f"2025-11-26 16:0{i}:00") for i in range(3)]
    asyncio.run(space["feed"](batches, server.key, server.ws))
    assert bars(server, "2025-11-26 16:00", "2025-11-26 16:03")["trades"].tolist() == [10] * 3
    bad = [trades(2, 60_000, "2025-11-26 16:05:00")]
    bad[0][1]["size"] = -1
    with pytest.raises(ValueError, match="row 1"):
        asyncio.run(space["feed"](bad, server.key, server.ws))


def test_a_store_behind_tells_feeders_to_slow_down_and_loses_nothing(tmp_path):
    store = f"duckdb:///{tmp_path}/slow.duckdb"
    key = prepared(store, [("BTCUSDT", 0.1)], ["burst"])["burst"]
    # at most 100 rows may wait for the store: two feeders sending batches of 90 at once
    # cannot both be taken
    with serving(store, "--max-pending-rows", "100") as served:
        served.key = key
        notices = []

        async def two_feeders():
            return await asyncio.gather(*[exchange(served, [
                {"seq": i, "type": "trades", "symbol": symbol,
                 "data": trades(90, 1 + 90 * i, f"2025-11-26 17:{i:02d}:00")}
                for i in range(6)], notices=notices) for symbol in ("BTCUSDT", "ETHUSDT")])

        tradeflow(["instruments", "add", "ETHUSDT", "--tick-size", "0.01"], store)
        answers = asyncio.run(two_feeders())
        assert notices and all(n["retry_after"] > 0 for n in notices)
        # every batch acknowledged, in the order sent, and stored
        assert [[a["ack"] for a in feeder] for feeder in answers] == [list(range(6))] * 2
        for symbol in ("BTCUSDT", "ETHUSDT"):
            doc = httpx.get(f"{served.api}/bars", params={
                "symbol": symbol, "start": "2025-11-26 17:00", "end": "2025-11-26 18:00"}).json()
            assert [row[doc["columns"].index("trades")] for row in doc["data"]] == [90] * 6
        too_big = asyncio.run(exchange(served, [{"seq": 99, "type": "trades",
                                                 "symbol": "BTCUSDT",
                                                 "data": trades(101, 10_000,
                                                                "2025-11-26 18:00:00")}]))
        assert "split it" in too_big[0]["error"]


def test_a_key_revoked_while_connected_stops_working(tmp_path):
    store = f"duckdb:///{tmp_path}/revoke.duckdb"
    key = prepared(store, [("BTCUSDT", 0.1)], ["leaver"])["leaver"]
    with serving(store) as served:
        async def session():
            async with websockets.connect(served.ws,
                                          additional_headers={"X-API-Key": key}) as ws:
                await ws.send(json.dumps({"seq": 1, "type": "trades", "symbol": "BTCUSDT",
                                          "data": trades(3, 1, "2025-11-26 19:00:00")}))
                first = json.loads(await ws.recv())
                await asyncio.to_thread(tradeflow, ["apikey", "revoke", "leaver"], store)
                await ws.send(json.dumps({"seq": 2, "type": "trades", "symbol": "BTCUSDT",
                                          "data": trades(3, 10, "2025-11-26 19:01:00")}))
                second = json.loads(await ws.recv())
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
                return first, second

        first, second = asyncio.run(session())
        assert first == {"ack": 1, "rows": 3}
        assert "revoked" in second["error"]
        served.key = key
        assert bars(served, "2025-11-26 19:00", "2025-11-26 20:00")["trades"].tolist() == [3]


def test_batches_in_flight_are_answered_in_the_order_sent(server):
    # sent at once: the server queues the good batches behind the one being written, refuses
    # the bad one when it comes to it, and answers all of them in the order sent
    good = [trades(40, 70_000 + 40 * i, f"2025-11-26 20:{i:02d}:00") for i in range(8)]
    good[3][5]["price"] = 90000.05  # off the tick grid
    messages = [{"seq": i, "type": "trades", "symbol": "BTCUSDT", "data": d}
                for i, d in enumerate(good)]
    answers = asyncio.run(exchange(server, messages))
    assert [a.get("ack", a.get("seq")) for a in answers] == list(range(8))
    assert "tick grid" in answers[3]["error"]
    assert all(a == {"ack": i, "rows": 40} for i, a in enumerate(answers) if i != 3)
    got = bars(server, "2025-11-26 20:00", "2025-11-26 20:08")
    assert got["trades"].tolist() == [40] * 7
    minutes = pd.to_datetime(got["ts"]).dt.strftime("%H:%M").tolist()
    assert minutes == [f"20:{i:02d}" for i in range(8) if i != 3]
