"""The API's OpenAPI 3.1 document, served at ``/api/v1/openapi.json``.

Written out by hand, next to the handlers it describes; ``tests/test_api_schema.py`` runs
schemathesis against the served document, so a handler that answers something the document does
not say fails there.
"""
from __future__ import annotations

import json

from .base import ApiHandler

ERROR = {"type": "object", "required": ["status", "error"],
         "properties": {"status": {"const": "error"}, "error": {"type": "string"}}}


def _errors(*codes: int) -> dict:
    text = {400: "Malformed request: JSON, fields, types, query parameters",
            401: "No API key in X-API-Key", 403: "Wrong or revoked API key",
            404: "Unknown symbol or study", 413: "Body too large",
            422: "Values refused: off the tick grid, high below low, sizes, unknown symbol, "
                 "times far ahead; nothing of the request was stored",
            429: "The store is behind: send again after Retry-After seconds"}
    out = {}
    for code in codes:
        out[str(code)] = {"description": text[code],
                          "content": {"application/json": {"schema": {"$ref": "#/components/"
                                                                      "schemas/Error"}}}}
        if code == 429:
            out[str(code)]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return out


NUMBER = {"type": "number"}
TIME = {"type": "string", "format": "date-time",
        "description": "ISO 8601 (2025-11-26 21:17:14 or 2025-11-26T21:17:14.5Z); without a "
                       "zone, in the API key's zone (UTC unless set)",
        "examples": ["2025-11-26 21:17:14"]}
SYMBOL = {"type": "string", "pattern": "^[A-Za-z0-9._/^:=@$#!-]{1,40}$",
          "examples": ["XAUUSD", "ESZ5", "BTCUSDT"]}
SIERRA_BAR = {
    "type": "object",
    "required": ["timestamp", "open", "high", "low", "close", "volume"],
    "properties": {
        "timestamp": TIME, "open": NUMBER, "high": NUMBER, "low": NUMBER, "close": NUMBER,
        "volume": NUMBER, "bid_volume": NUMBER, "ask_volume": NUMBER,
        "number_of_trades": {"type": "integer"},
        "open_interest": {"type": ["number", "null"]},
        "chart_info": {"$ref": "#/components/schemas/ChartInfo"},
    },
    "examples": [{"timestamp": "2025-11-26 21:17:14", "open": 4162.88, "high": 4162.88,
                  "low": 4162.58, "close": 4162.58, "volume": 19, "bid_volume": 15,
                  "ask_volume": 4, "number_of_trades": 3, "open_interest": None,
                  "chart_info": {"symbol": "XAUUSD", "chart_number": 1, "seconds_per_bar": 1}}],
}
TRADE = {
    "type": "object",
    "required": ["symbol", "time", "price", "size", "side", "id"],
    "properties": {
        "symbol": SYMBOL, "time": TIME, "price": NUMBER, "size": NUMBER,
        "side": {"enum": ["buy", "sell", 1, -1, 0],
                 "description": "the aggressor: buy (1) lifted the ask, sell (-1) hit the bid"},
        "id": {"type": "integer", "minimum": 0, "description": "the source's trade id"},
    },
}
TABLE = {
    "type": "object", "required": ["symbol", "spec", "columns", "data"],
    "properties": {"symbol": {"type": "string"}, "spec": {"type": "string"},
                   "columns": {"type": "array", "items": {"type": "string"}},
                   "data": {"type": "array", "items": {"type": "array"}}},
}
INSTRUMENT = {
    "type": "object",
    "required": ["symbol", "tick_size", "exchange", "asset_class", "point_value", "session"],
    "properties": {"symbol": {"type": "string"}, "tick_size": NUMBER,
                   "exchange": {"type": "string"}, "asset_class": {"type": "string"},
                   "point_value": NUMBER,
                   "session": {"type": "string", "description": "'TZ RTH[,ETH]', e.g. "
                               "'America/Chicago 08:30-15:15,17:00-16:00'"}},
}


def _param(name, description, required=False, schema=None) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


READ_PARAMS = [
    _param("symbol", "Instrument symbol", True, SYMBOL),
    _param("spec", "Bar spec: 1m (default), 5s, 1h, T500, V1000, R8, 5m:HA ...",
           schema={"type": "string", "examples": ["1m", "5s", "T500", "5m:HA"]}),
    _param("start", "Start time (ISO 8601, UTC unless an offset is given)",
           schema={"type": "string", "examples": ["2025-11-26", "2025-11-26T21:00:00Z"]}),
    _param("end", "End time, exclusive", schema={"type": "string",
                                                 "examples": ["2025-11-27"]}),
    _param("last", "Only the last N bars", schema={"type": "integer", "minimum": 1,
                                                   "maximum": 100_000}),
]


def _read(summary: str, extra=()) -> dict:
    return {"get": {
        "summary": summary, "parameters": READ_PARAMS + list(extra),
        "security": [{}, {"ApiKey": []}],
        "responses": {"200": {"description": "A table: columns and rows (JSON), or an Arrow "
                                             "IPC stream when Accept asks for it",
                              "content": {"application/json": {"schema": TABLE},
                                          "application/vnd.apache.arrow.stream": {
                                              "schema": {"type": "string",
                                                         "format": "binary"}}}},
                      **_errors(400, 401, 403, 404)}}}


def _write(summary: str, body: dict, ok: dict, content_type="application/json",
           extra_content=None) -> dict:
    content = {content_type: {"schema": body}, **(extra_content or {})}
    return {"post": {
        "summary": summary, "security": [{"ApiKey": []}],
        "requestBody": {"required": True, "content": content},
        "responses": {"200": {"description": "Stored",
                              "content": {"application/json": {"schema": ok}}},
                      **_errors(400, 401, 403, 413, 422, 429)}}}


def _ok(*fields) -> dict:
    props = {"status": {"const": "success"}, "symbol": {"type": "string"},
             "timeframe": {"type": "string"}, "bars": {"type": "integer"},
             "trades": {"type": "integer"}, "new": {"type": ["integer", "null"]}}
    return {"type": "object", "required": ["status", "symbol", *fields],
            "properties": {k: props[k] for k in ("status", "symbol", *fields)}}


def document() -> dict:
    trades = {"type": "array", "items": {"$ref": "#/components/schemas/Trade"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "TradeFlow API", "version": "1",
                 "description": "Ingest (Sierra Chart bars, trades; the websocket hook "
                                "/api/v1/ingest/ws is described in the README) and reads of "
                                "bars, footprint cells, profiles and studies. Writes need an "
                                "API key in X-API-Key; reads too, except from this machine."},
        "paths": {
            "/api/v1/market-data": _write(
                "Store one Sierra Chart bar (posting it again replaces it)",
                {"$ref": "#/components/schemas/SierraBar"}, _ok("timeframe")),
            "/api/v1/market-data/batch": _write(
                "Store a batch of one chart's Sierra Chart bars, all or none",
                {"type": "object", "required": ["data"],
                 "properties": {"data": {"type": "array",
                                         "items": {"$ref": "#/components/schemas/SierraBar"}},
                                "metadata": {"type": "object",
                                             "description": "symbol and seconds_per_bar for "
                                                            "bars without chart_info"}}},
                _ok("timeframe", "bars")),
            "/api/v1/trades": _write(
                "Store one symbol's trades (JSON array, or NDJSON), all or none",
                trades, _ok("trades", "new"),
                extra_content={"application/x-ndjson": {"schema": {"type": "string"}}}),
            "/api/v1/bars": _read("Bars of any spec", [_param(
                "source", "external: the bars received built (e.g. Sierra Chart's), as they came",
                schema={"enum": ["external"]})]),
            "/api/v1/footprint": _read("Footprint cells (volume at the bid and ask per price "
                                       "level, keyed by tick index) of any spec"),
            "/api/v1/profile": _read("Volume profile of the range", [
                _param("rows", "Ticks per price row", schema={"type": "integer", "minimum": 1}),
                _param("value_area", "Value area share", schema={"type": "number"})]),
            "/api/v1/instrument": {"get": {
                "summary": "An instrument: tick size, session (what prices are drawn with)",
                "parameters": [_param("symbol", "Instrument symbol", True, SYMBOL)],
                "security": [{}, {"ApiKey": []}],
                "responses": {"200": {"description": "The instrument",
                                      "content": {"application/json": {"schema": INSTRUMENT}}},
                              **_errors(400, 401, 403, 404)}}},
            "/api/v1/studies/{name}": _read(
                "Any study ('tradeflow study --list'); its parameters are further query "
                "parameters", [{"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string"}},
                               _param("tf", "Higher timeframe of an indicator")]),
        },
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header",
                                           "name": "X-API-Key"}},
            "schemas": {
                "Error": ERROR, "SierraBar": SIERRA_BAR, "Trade": TRADE,
                "ChartInfo": {"type": "object", "required": ["symbol", "seconds_per_bar"],
                              "properties": {"symbol": SYMBOL,
                                             "chart_number": {"type": "integer"},
                                             "seconds_per_bar": {"type": "integer",
                                                                 "minimum": 1}}},
            },
        },
    }


class OpenApiHandler(ApiHandler):
    async def get(self):
        self.finish(json.dumps(document()))
