"""The read endpoints: bars, footprint cells, the volume profile and any study, as JSON or as an
Arrow IPC stream (``Accept: application/vnd.apache.arrow.stream``).

Query parameters: ``symbol`` (required), ``spec`` (``1m`` by default: any BarSpec), ``start`` and
``end`` (ISO 8601, UTC unless an offset is given; ``[start, end)``), ``last`` (the last N bars,
1..:data:`MAX_BARS`). Reads run on the server's reader threads through ``MarketData``, never on
the event loop.
"""
from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

from indicators.registry import IndicatorError
from tradeflow.model import BarSpec, ModelError, validate_symbol
from tradeflow.studies import StudyError, run_study

from .base import ApiError, ApiHandler

ARROW = "application/vnd.apache.arrow.stream"
MAX_BARS = 100_000  # the most bars one read returns (the pages' limit too)
COMMON = ("symbol", "spec", "start", "end", "last", "source")


def frame_json(frame: pd.DataFrame) -> dict:
    """``{"columns": [...], "data": [[...], ...]}``: times as ISO 8601 UTC, NaN as null."""
    return json.loads(frame.to_json(orient="split", index=False, date_format="iso",
                                    date_unit="us"))


def arrow_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class ReadHandler(ApiHandler):
    """Checks the common query parameters, runs ``self.compute`` on a reader thread and answers
    in the format asked for."""

    def arg(self, name: str, default=None):
        values = self.request.query_arguments.get(name)
        if not values:
            return default
        try:
            return values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, f"{name}: not UTF-8 text") from None

    def query(self) -> dict:
        symbol = self.arg("symbol")
        if symbol is None:
            raise ApiError(400, "symbol is required, e.g. ?symbol=ES&spec=5m&last=500")
        last = self.arg("last")
        try:
            validate_symbol(symbol)
            spec = str(BarSpec.parse(self.arg("spec", "1m")))
            if last is not None:
                if not last.strip().isdigit() or not 1 <= int(last) <= MAX_BARS:
                    raise ApiError(400, f"last={last[:20]!r}: use a whole number from 1 to "
                                        f"{MAX_BARS:,}")
                last = int(last)
            from data_access.frames import bounds
            start, end = bounds(self.arg("start"), self.arg("end"))
        except ModelError as exc:
            raise ApiError(400, str(exc)) from None
        return {"symbol": symbol, "spec": spec, "start": start, "end": end, "last": last}

    async def get(self, *args):
        await self.allow_read()
        q = self.query()
        try:  # on a reader thread too: a DuckDB store may be busy writing
            await self.ctx.read(self.ctx.store.instrument, q["symbol"])
        except ModelError as exc:
            raise ApiError(404, str(exc)) from None
        try:
            frame = await self.ctx.read(self.compute, q, *args)
        except (StudyError, IndicatorError, ModelError) as exc:
            status = 404 if str(exc).startswith("unknown study") else 400
            raise ApiError(status, str(exc)) from None
        if ARROW in self.request.headers.get("Accept", ""):
            self.set_header("Content-Type", ARROW)
            self.finish(arrow_bytes(frame))
            return
        self.write_json({"symbol": q["symbol"], "spec": q["spec"], **frame_json(frame)})

    def compute(self, q: dict, *args) -> pd.DataFrame:
        raise NotImplementedError

    def since_last(self, q: dict):
        """The start of the last N bars (studies over "the last N bars")."""
        if q["last"] is None:
            return q["start"]
        bars = self.ctx.marketdata.bars(q["symbol"], q["spec"], q["start"], q["end"], q["last"])
        return bars["ts"].iloc[0] if len(bars) else q["start"]


def instrument_json(inst) -> dict:
    """What a client draws an instrument's prices with (``tradeflow.remote`` reads it)."""
    return {"symbol": inst.symbol, "tick_size": inst.tick_size, "exchange": inst.exchange,
            "asset_class": inst.asset_class, "point_value": inst.point_value,
            "session": str(inst.session)}


class InstrumentHandler(ReadHandler):
    """``/api/v1/instrument?symbol=ES``: the instrument (tick size, session, ...)."""

    async def get(self):
        await self.allow_read()
        symbol = self.arg("symbol")
        if symbol is None:
            raise ApiError(400, "symbol is required, e.g. ?symbol=ES")
        try:
            validate_symbol(symbol)
        except ModelError as exc:
            raise ApiError(400, str(exc)) from None
        try:
            inst = await self.ctx.read(self.ctx.store.instrument, symbol)
        except ModelError as exc:
            raise ApiError(404, str(exc)) from None
        self.write_json(instrument_json(inst))


class BarsHandler(ReadHandler):
    """``source=external``: the bars received built (Sierra Chart bars), as they came, at a time
    spec equal to or longer than theirs; else the bars of the store's rollups and trades."""

    def compute(self, q):
        return self.ctx.marketdata.bars(q["symbol"], q["spec"], q["start"], q["end"], q["last"],
                                        source=self.arg("source"))


class FootprintHandler(ReadHandler):
    def compute(self, q):
        return self.ctx.marketdata.footprint(q["symbol"], q["spec"], q["start"], q["end"],
                                             q["last"])


class StudyHandler(ReadHandler):
    """``/api/v1/studies/NAME``: study parameters are further query parameters (``timeperiod=21``);
    ``tf`` computes an indicator on a higher timeframe, aligned to the ``spec`` bars."""

    def params(self) -> dict:
        return {k: self.arg(k) for k in self.request.query_arguments if k not in COMMON + ("tf",)}

    def compute(self, q, name="volume_profile"):
        return run_study(self.ctx.marketdata, name, q["symbol"], q["spec"], self.since_last(q),
                         q["end"], self.params(), self.arg("tf"))


class ProfileHandler(StudyHandler):
    """``/api/v1/profile``: the volume profile of the range (``rows``, ``value_area``)."""

    def compute(self, q):
        return super().compute(q, "volume_profile")
