"""A running ``tradeflow serve`` read as ``MarketData`` is: bars and footprint cells through its
public read API (Arrow IPC), the instrument through ``/api/v1/instrument``.

What a notebook chart reads when the data lives in a server (``tf.chart(..., live="http://...")``,
or the DuckDB file the server holds). Reads from loopback need no key; from elsewhere pass
``api_key`` (sent as ``X-API-Key``, never shown in a message).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pandas as pd
import pyarrow as pa

from .model import Instrument, Session, validate_symbol
from .server.client import ServerError

__all__ = ["ServerData"]

ARROW = "application/vnd.apache.arrow.stream"


class ServerData:
    """``bars``, ``footprint`` and ``store.instrument`` of the server at ``url``
    (``http://host:port``)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ServerError(f"{url!r} is not a server address: use http://host:port")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.api_key, self.timeout = api_key, timeout
        self.store = self  # charts ask ``marketdata.store.instrument(symbol)``

    def __repr__(self) -> str:
        return f"<ServerData {self.url}>"

    def _get(self, path: str, query: dict, accept: str) -> tuple[bytes, str]:
        query = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v)
                 for k, v in query.items() if v is not None}
        headers = {"Accept": accept}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        request = urllib.request.Request(
            f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(query)}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {exc.code}"
            raise ServerError(f"the server at {self.url}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServerError(f"the server at {self.url} did not answer "
                              f"({getattr(exc, 'reason', exc)}): is tradeflow serve running "
                              "there?") from None

    def _frame(self, path: str, **query) -> pd.DataFrame:
        body, _kind = self._get(path, query, ARROW)
        return pa.ipc.open_stream(body).read_all().to_pandas()

    def instrument(self, symbol: str) -> Instrument:
        body, _kind = self._get("instrument", {"symbol": validate_symbol(symbol)},
                                "application/json")
        doc = json.loads(body)
        return Instrument(doc["symbol"], doc["tick_size"], doc["exchange"], doc["asset_class"],
                          doc["point_value"], Session.parse(doc["session"]))

    def bars(self, symbol, spec="1m", start=None, end=None, last=None,
             source=None) -> pd.DataFrame:
        return self._frame("bars", symbol=symbol, spec=str(spec), start=start, end=end,
                           last=last, source=source)

    def footprint(self, symbol, spec="1m", start=None, end=None, last=None) -> pd.DataFrame:
        return self._frame("footprint", symbol=symbol, spec=str(spec), start=start, end=end,
                           last=last)

    def close(self) -> None:
        """Nothing held between reads (each is one HTTP request)."""
