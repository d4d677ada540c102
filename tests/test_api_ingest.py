"""The HTTP ingest API against a real ``tradeflow serve`` on loopback: what is accepted is stored
and read back through the read API; bad input gets a 4xx that says what was wrong, and nothing of
it is stored."""
from __future__ import annotations

import copy
import io
import json

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from tests.serve import SIERRA_BAR, prepared, serving

DAY = "2025-11-26"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = f"duckdb:///{tmp_path_factory.mktemp('api')}/api.duckdb"
    # one key per test that posts bars: a feeder's bars must come in time order
    keys = prepared(store, [("XAUUSD", 0.01), ("BTCUSDT", 0.1)],
                    ["utc", "batch", "meta", "bad", ("ny", "America/New_York")], ["old"])
    keys["revoked"] = keys.pop("old")
    with serving(store) as served:
        served.keys, served.store = keys, store
        yield served


def post(server, path, body, key="utc", **kwargs):
    headers = dict(kwargs.pop("headers", {}))
    if key:
        headers["X-API-Key"] = server.keys.get(key, key)
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(f"{server.api}{path}", content=content, headers=headers, timeout=60,
                      **kwargs)


def bars(server, symbol="XAUUSD", spec="1m", start=DAY, end="2025-11-28", **params):
    answer = httpx.get(f"{server.api}/bars", params={"symbol": symbol, "spec": spec,
                                                     "start": start, "end": end, **params})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    return pd.DataFrame(doc["data"], columns=doc["columns"])


def bar(ts, o, h, lo, c, volume=10, symbol="XAUUSD", seconds=60, **extra):
    return {"timestamp": ts, "open": o, "high": h, "low": lo, "close": c, "volume": volume,
            "bid_volume": volume / 2, "ask_volume": volume / 2, "number_of_trades": 2,
            "open_interest": None,
            "chart_info": {"symbol": symbol, "chart_number": 1, "seconds_per_bar": seconds},
            **extra}


def test_sierra_chart_bar_as_posted_is_stored_and_replaced_when_posted_again(server):
    answer = post(server, "/market-data", SIERRA_BAR)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "success", "symbol": "XAUUSD", "timeframe": "1s"}
    got = bars(server, start="2025-11-26 21:17", end="2025-11-26 21:18")
    assert got[["open", "high", "low", "close", "volume", "ask_volume", "bid_volume",
                "trades"]].values.tolist() == [[4162.88, 4162.88, 4162.58, 4162.58, 19, 4, 15, 3]]
    again = dict(SIERRA_BAR, close=4162.70, low=4162.60, volume=25, bid_volume=20,
                 ask_volume=5)
    assert post(server, "/market-data", again).status_code == 200
    got = bars(server, start="2025-11-26 21:17", end="2025-11-26 21:18")
    assert got[["close", "low", "volume"]].values.tolist() == [[4162.70, 4162.60, 25]]
    # kept as the 1-second bar it is
    got = bars(server, spec="1s", source="external", start="2025-11-26 21:17",
               end="2025-11-26 21:18")
    assert got[["ts", "close", "volume"]].values.tolist() == [
        ["2025-11-26T21:17:14.000000Z", 4162.70, 25]]


def test_time_without_zone_is_read_in_the_keys_zone(server):
    # a zone in the text wins over the key's
    answer = post(server, "/market-data",
                  bar("2025-11-26T10:00:00+00:00", 4100, 4101, 4099, 4100.5), key="ny")
    assert answer.status_code == 200, answer.text
    got = bars(server, start="2025-11-26 09:00", end="2025-11-26 11:00")
    assert got["ts"].tolist() == ["2025-11-26T10:00:00.000000Z"]
    # 09:00 in New York in November (EST) is 14:00 UTC
    answer = post(server, "/market-data", bar("2025-11-26 09:00:00", 4100, 4101, 4099, 4100.5),
                  key="ny")
    assert answer.status_code == 200, answer.text
    got = bars(server, start="2025-11-26 13:00", end="2025-11-26 15:00")
    assert got["ts"].tolist() == ["2025-11-26T14:00:00.000000Z"]
    # and an earlier bar from the same feeder is out of order
    answer = post(server, "/market-data", bar("2025-11-26 08:00:00", 4100, 4101, 4099, 4100.5),
                  key="ny")
    assert answer.status_code == 422 and "time order" in answer.json()["error"]


def test_batch_is_stored_whole_or_not_at_all(server):
    good = [bar(f"2025-11-26 03:0{i}:00", 4000 + i, 4001 + i, 3999 + i, 4000.5 + i)
            for i in range(3)]
    bad = copy.deepcopy(good)
    bad[2]["high"] = 3990  # below its low
    answer = post(server, "/market-data/batch", {"data": bad, "metadata": {}}, key="batch")
    assert answer.status_code == 422
    assert "high" in answer.json()["error"] and "2" in answer.json()["error"]
    assert bars(server, start="2025-11-26 03:00", end="2025-11-26 04:00").empty
    answer = post(server, "/market-data/batch", {"data": good, "metadata": {}}, key="batch")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "success", "symbol": "XAUUSD", "timeframe": "1m",
                             "bars": 3}
    got = bars(server, start="2025-11-26 03:00", end="2025-11-26 04:00")
    assert got["open"].tolist() == [4000, 4001, 4002]


def test_batch_bars_may_name_their_chart_in_metadata(server):
    plain = [{k: v for k, v in bar("2025-11-26 04:00:00", 10, 11, 9, 10.5).items()
              if k != "chart_info"}]
    answer = post(server, "/market-data/batch",
                  {"data": plain, "metadata": {"symbol": "XAUUSD", "seconds_per_bar": 60}},
                  key="meta")
    assert answer.status_code == 200, answer.text
    assert bars(server, start="2025-11-26 04:00", end="2025-11-26 04:01")["close"].tolist() \
        == [10.5]


def trades(n, first_id=1, start="2025-11-26 05:00:00", symbol="BTCUSDT"):
    t0 = pd.Timestamp(start, tz="UTC")
    return [{"symbol": symbol, "time": (t0 + pd.Timedelta(seconds=i)).isoformat(),
             "price": 90000 + i * 0.5, "size": 0.25, "side": "buy" if i % 2 else "sell",
             "id": first_id + i} for i in range(n)]


def test_trades_as_json_and_ndjson_are_stored_once(server):
    answer = post(server, "/trades", trades(4))
    assert answer.status_code == 200, answer.text
    assert answer.json()["trades"] == 4
    ndjson = "\n".join(json.dumps(t) for t in trades(6)) + "\n"
    answer = post(server, "/trades", ndjson, headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200, answer.text
    got = bars(server, "BTCUSDT", start="2025-11-26 05:00", end="2025-11-26 05:01")
    # ids 1..4 were posted twice: stored once
    assert got[["volume", "trades", "ask_volume", "bid_volume"]].values.tolist() == \
        [[1.5, 6, 0.75, 0.75]]


def test_reads_as_arrow_equal_reads_as_json(server):
    post(server, "/trades", trades(30, 1000, "2025-11-26 06:00:00"))
    params = {"symbol": "BTCUSDT", "spec": "10s", "start": "2025-11-26 06:00",
              "end": "2025-11-26 07:00"}
    as_json = bars(server, "BTCUSDT", "10s", params["start"], params["end"])
    answer = httpx.get(f"{server.api}/bars", params=params,
                       headers={"Accept": "application/vnd.apache.arrow.stream"})
    assert answer.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(io.BytesIO(answer.content)).read_all().to_pandas()
    assert len(table) == len(as_json) == 3
    assert table["close"].tolist() == as_json["close"].tolist()
    assert str(table["ts"].dtype) == "datetime64[ns, UTC]"


def test_footprint_profile_and_studies_are_read(server):
    post(server, "/trades", trades(20, 2000, "2025-11-26 07:00:00"))
    q = {"symbol": "BTCUSDT", "start": "2025-11-26 07:00", "end": "2025-11-26 08:00"}
    cells = httpx.get(f"{server.api}/footprint", params=q).json()
    assert len(cells["data"]) == 20 and "tick" in cells["columns"]
    profile = httpx.get(f"{server.api}/profile", params=q).json()
    levels = pd.DataFrame(profile["data"], columns=profile["columns"])
    assert (levels["volume"] > 0).sum() == 20 and levels["poc"].sum() == 1
    sma = httpx.get(f"{server.api}/studies/SMA", params={**q, "spec": "10s",
                                                          "timeperiod": "2"}).json()
    assert sma["columns"] == ["ts", "SMA"] and len(sma["data"]) == 2
    unknown = httpx.get(f"{server.api}/studies/NOPE", params=q)
    assert unknown.status_code == 404 and "unknown study" in unknown.json()["error"]
    bad_param = httpx.get(f"{server.api}/studies/SMA", params={**q, "timeperiod": "x"})
    assert bad_param.status_code == 400 and "timeperiod" in bad_param.json()["error"]


BAD_BARS = [
    ("malformed JSON", b'{"timestamp": "2025-11-26 01:00:00", "open": }', 400,
     "malformed JSON at line 1"),
    ("wrong type", bar("2025-11-26 01:00:00", "4100", 4101, 4099, 4100), 400,
     "open must be a number"),
    ("missing field", {k: v for k, v in bar("2025-11-26 01:00:00", 4100, 4101, 4099, 4100).items()
                       if k != "close"}, 400, "close is missing"),
    ("not an object", [1, 2], 400, "expected one bar as a JSON object"),
    ("high below low", bar("2025-11-26 01:00:00", 4100, 4098, 4099, 4100), 422, "high"),
    ("off the tick grid", bar("2025-11-26 01:00:00", 4100.005, 4101, 4099, 4100), 422,
     "tick grid"),
    ("zero price", bar("2025-11-26 01:00:00", 0, 4101, 4099, 4100), 422, "open"),
    ("negative volume", bar("2025-11-26 01:00:00", 4100, 4101, 4099, 4100, volume=-5), 422,
     "volume"),
    ("unknown symbol", bar("2025-11-26 01:00:00", 4100, 4101, 4099, 4100, symbol="NOPE"), 422,
     "unknown symbol 'NOPE'"),
    ("bad symbol", bar("2025-11-26 01:00:00", 4100, 4101, 4099, 4100, symbol="a b;"), 400,
     "symbol"),
    ("far in the future", bar("2125-11-26 01:00:00", 4100, 4101, 4099, 4100), 422,
     "ahead of the server's clock"),
    ("not a time", bar("yesterday", 4100, 4101, 4099, 4100), 400, "not an ISO 8601 time"),
    ("year 422", bar("0422-03-06T02:43:15Z", 4100, 4101, 4099, 4100), 422, "before 1970"),
    ("year 9999", bar("9999-01-01", 4100, 4101, 4099, 4100), 422, "centuries ahead"),
    ("bad bar length", bar("2025-11-26 01:00:00", 4100, 4101, 4099, 4100, seconds=0), 422,
     "seconds_per_bar"),
    ("empty body", b"", 400, "empty"),
]


@pytest.mark.parametrize("case, body, status, text", BAD_BARS, ids=[c[0] for c in BAD_BARS])
def test_bad_bars_are_refused_and_nothing_is_stored(server, case, body, status, text):
    answer = post(server, "/market-data", body, key="bad")
    assert answer.status_code == status, answer.text
    assert answer.json()["status"] == "error"
    assert text in answer.json()["error"]
    assert bars(server, start="2025-11-26 01:00", end="2025-11-26 02:00").empty


# after every trade the other tests post (a symbol's live trades come in time order)
LATE = "2025-11-26 23:00:00"


def trade(**change):
    return [dict(trades(1, 1, LATE)[0], **change)]


BAD_TRADES = [
    ("zero size", trade(size=0), 422, "size"),
    ("negative size", trade(size=-1), 422, "size"),
    ("missing id", [{k: v for k, v in trade()[0].items() if k != "id"}], 400, "id is missing"),
    ("float id", trade(id=1.5), 400, "id must be a whole number"),
    ("bad side", trade(side="up"), 400, "side must be"),
    ("bool price", trade(price=True), 400, "price must be a number"),
    ("400-digit price", trade(price=10 ** 400), 400, "number is infinity"),
    ("400-digit id", trade(id=10 ** 400), 400, "number is infinity"),
    ("off the grid", trade(price=90000.05), 422, "tick grid"),
    ("two symbols", trade() + trade(symbol="XAUUSD", id=9), 422, "one symbol"),
    ("not an array", {"symbol": "BTCUSDT"}, 400, "expected a JSON array"),
    ("empty array", [], 400, "empty"),
]


@pytest.mark.parametrize("case, body, status, text", BAD_TRADES, ids=[c[0] for c in BAD_TRADES])
def test_bad_trades_are_refused_and_nothing_is_stored(server, case, body, status, text):
    # a good trade first in the same request: it must not be stored either
    body = trades(1, 500, LATE) + body if isinstance(body, list) and body \
        and case != "two symbols" else body
    answer = post(server, "/trades", body)
    assert answer.status_code == status, answer.text
    assert text in answer.json()["error"]
    assert bars(server, "BTCUSDT", start="2025-11-26 23:00", end="2025-11-27 00:00").empty


@pytest.mark.parametrize("key, status, text", [
    (None, 401, "an API key is required"),
    ("tfk_0123456789abcdef_" + "A" * 43, 403, "not valid"),
    ("not-a-key", 403, "not valid"),
    ("revoked", 403, "revoked"),
])
def test_writes_need_a_valid_key_which_is_never_echoed(server, key, status, text):
    answer = post(server, "/market-data", bar("2025-11-26 01:30:00", 4100, 4101, 4099, 4100),
                  key=key)
    assert answer.status_code == status
    assert text in answer.json()["error"]
    assert (server.keys.get(key, key) or "tfk_") not in answer.text
    assert bars(server, start="2025-11-26 01:00", end="2025-11-26 02:00").empty
    for secret in server.keys.values():
        assert secret not in server.output  # nor logged


def test_oversized_body_is_refused(server):
    big = b"[" + b" " * (33 * 2**20) + b"]"
    answer = post(server, "/trades", big)
    assert answer.status_code == 413
    assert "larger than 32 MiB" in answer.json()["error"]


def test_read_parameters_are_checked(server):
    for params, text in [({}, "symbol is required"), ({"symbol": "XAUUSD", "last": "0"}, "last"),
                         ({"symbol": "XAUUSD", "spec": "7q"}, "bar spec"),
                         ({"symbol": "XAUUSD", "start": "soon"}, "not understood")]:
        answer = httpx.get(f"{server.api}/bars", params=params)
        assert answer.status_code == 400 and text in answer.json()["error"], answer.text
    answer = httpx.get(f"{server.api}/bars", params={"symbol": "NOPE"})
    assert answer.status_code == 404 and "unknown symbol" in answer.json()["error"]


def test_http_writes_get_429_while_the_store_is_behind(tmp_path):
    import asyncio

    store = f"duckdb:///{tmp_path}/slow.duckdb"
    symbols = [f"S{i}" for i in range(6)]
    key = prepared(store, [(symbol, 0.1) for symbol in symbols], ["burst"])["burst"]
    with serving(store, "--max-pending-rows", "100") as served:
        async def burst():
            async with httpx.AsyncClient(timeout=60) as client:
                return await asyncio.gather(*[client.post(
                    f"{served.api}/trades", headers={"X-API-Key": key},
                    json=trades(90, 1, "2025-11-26 05:00:00", symbol)) for symbol in symbols])

        answers = dict(zip(symbols, asyncio.run(burst())))
        slowed = [s for s, a in answers.items() if a.status_code == 429]
        assert slowed and len(slowed) < len(symbols)
        for symbol, answer in answers.items():
            stored = bars(served, symbol, start="2025-11-26 05:00", end="2025-11-26 06:00")
            if symbol in slowed:
                assert int(answer.headers["Retry-After"]) >= 1
                assert "the store is behind" in answer.json()["error"]
                assert stored.empty
            else:
                assert answer.status_code == 200 and stored["trades"].sum() == 90
