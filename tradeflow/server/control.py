"""The CLI's store work, one implementation for two ways of running it: in the CLI's own process
(the store is free) or inside the running server that holds the embedded DuckDB file (sent by
``tradeflow.server.client`` to ``POST /api/v1/control/OP``; see ``runfile``).

Each operation takes a sync ``Store`` and JSON-able arguments and returns a :class:`Result`: lines
to print, a frame to write, or both. Errors a user can fix are raised as the CLI's usual
exception types; the server answers them with 422 and their message, which the CLI prints.
"""
from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field

import pandas as pd

from .base import ApiError, ApiHandler, is_loopback


@dataclass
class Result:
    lines: list[str] = field(default_factory=list)
    frame: pd.DataFrame | None = None


def export_frame(store, what, symbol, spec="1m", start=None, end=None, last=None,
                 received=False) -> Result:
    from tradeflow.marketdata import MarketData

    inst = store.instrument(symbol)  # an unknown symbol is an error, not an empty file
    md = MarketData(store)
    if what == "trades":
        frame = md.trades(symbol, start, end, last)
    elif what == "bars":
        frame = md.bars(symbol, spec, start, end, last, source="external" if received else None)
    else:
        frame = md.footprint(symbol, spec, start, end, last)
        frame.insert(1, "price", inst.to_price(frame["tick"]))
        frame["delta"] = frame["ask_volume"] - frame["bid_volume"]
    return Result(frame=frame)


def study(store, name, symbol, spec="1m", start=None, end=None, params=None, tf=None,
          text=True) -> Result:
    from tradeflow.marketdata import MarketData
    from tradeflow.studies import run_study

    return Result(frame=run_study(MarketData(store), name, symbol, spec, start, end,
                                  params or {}, tf, text))


def import_(store, paths, format=None, symbol=None, mapping=None, progress=False) -> Result:
    from tradeflow.importer import import_files

    started = time.perf_counter()
    summaries = import_files(store, paths, format, symbol, mapping, progress=progress)
    lines = [line for s in summaries for line in s.lines()]
    total = sum(v.trades_new for s in summaries for v in s.symbols.values())
    depth = sum(v.depth_rows for s in summaries for v in s.symbols.values())
    book = f", {depth:,} book snapshot rows" if depth else ""
    lines.append(f"imported {len(summaries)} file(s): {total:,} new trades{book} in "
                 f"{time.perf_counter() - started:.1f} s")
    return Result(lines)


def instruments_add(store, symbol, tick_size, exchange="", asset_class="other",
                    point_value=1.0, session="UTC 00:00-24:00") -> Result:
    from tradeflow.model import Instrument, Session

    inst = Instrument(symbol, tick_size, exchange, asset_class, point_value,
                      Session.parse(session))
    store.add_instrument(inst)
    return Result([f"{symbol}: tick size {tick_size:g}, session {inst.session}"])


def instruments_list(store) -> Result:
    rows = [{"symbol": i.symbol, "exchange": i.exchange, "asset_class": i.asset_class,
             "tick_size": i.tick_size, "point_value": i.point_value,
             "session": str(i.session)} for i in store.instruments()]
    if not rows:
        return Result(["no instruments yet: tradeflow instruments add SYMBOL --tick-size X"])
    return Result(pd.DataFrame(rows).to_string(index=False).split("\n"))


def apikey_create(store, name, timezone="UTC") -> Result:
    from tradeflow.accounts import apikeys

    key = apikeys.create(store, name, timezone)
    return Result([key, f"API key {name!r} made (times without a zone read in {timezone}). "
                        "This is the only time it is shown: keep it now; send it in the "
                        "X-API-Key header."])


def apikey_list(store) -> Result:
    from tradeflow.accounts import apikeys

    keys = apikeys.list_keys(store)
    if not keys:
        return Result(["no API keys yet: tradeflow apikey create NAME"])
    rows = [{"name": k.name, "timezone": k.timezone,
             "created": f"{k.created_at.tz_convert('UTC'):%Y-%m-%d %H:%M} UTC",
             "revoked": "" if k.active else f"{k.revoked_at.tz_convert('UTC'):%Y-%m-%d %H:%M} UTC"}
            for k in keys]
    return Result(pd.DataFrame(rows).to_string(index=False).split("\n"))


def apikey_revoke(store, name) -> Result:
    from tradeflow.accounts import apikeys

    n = apikeys.revoke(store, name)
    return Result([f"revoked {n} key(s) named {name!r}"])


OPERATIONS = {"export": export_frame, "study": study, "import": import_,
              "instruments_add": instruments_add, "instruments_list": instruments_list,
              "apikey_create": apikey_create, "apikey_list": apikey_list,
              "apikey_revoke": apikey_revoke}
CONTROL_HEADER = "X-Control-Token"


def user_errors() -> tuple:
    """The exception types whose message is for the user (the CLI prints them as one line)."""
    from data_access import StoreError
    from indicators.registry import IndicatorError
    from tradeflow.accounts.apikeys import ApiKeyError
    from tradeflow.ingest.errors import IngestError
    from tradeflow.model import ModelError
    from tradeflow.plugins import PluginError
    from tradeflow.studies import StudyError

    return (ModelError, IngestError, StoreError, IndicatorError, StudyError, PluginError,
            ApiKeyError, OSError)


class ControlHandler(ApiHandler):
    """``POST /api/v1/control/OP``: the CLI of this machine, with the token of the address file.
    Not part of the public API (not in the OpenAPI document)."""

    async def post(self, op: str):
        from .payloads import BadPayload, parse_json
        from .reads import ARROW, arrow_bytes

        token = self.request.headers.get(CONTROL_HEADER, "")
        if not is_loopback(self.request.remote_ip) or not self.ctx.token or \
                not hmac.compare_digest(token.encode(), self.ctx.token.encode()):
            raise ApiError(403, "control requests come from this machine's tradeflow command")
        fn = OPERATIONS.get(op)
        if fn is None:
            raise ApiError(404, f"unknown operation {op!r}")
        try:
            args = parse_json(self.request.body or b"{}")
        except BadPayload as exc:
            raise ApiError(400, str(exc)) from None
        if not isinstance(args, dict):
            raise ApiError(400, "the arguments are a JSON object")
        try:
            result = await self.ctx.read(fn, self.ctx.store, **args)
        except user_errors() as exc:
            raise ApiError(422, str(exc)) from None
        except TypeError as exc:  # arguments that do not fit the operation
            raise ApiError(400, f"{op}: {exc}") from None
        if op.startswith("apikey"):
            await self.ctx.reload_keys()
        if result.frame is not None:
            self.set_header("Content-Type", ARROW)
            self.finish(arrow_bytes(result.frame))
        else:
            self.write_json({"lines": result.lines})
