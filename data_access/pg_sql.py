"""SQL text the PostgreSQL store runs: quoted literals and time ranges (reads inline their few
values so that they can go through binary COPY), tick indexes, bars and footprint cells from
trades, bars rolled up from base bars or the 1-hour aggregate (``HOURS``), first/last-value
aggregates with or without TimescaleDB, and the ``bars_sql`` / ``footprint_sql`` / ``latest``
queries of the store's reads."""
from __future__ import annotations

from tradeflow.model import ModelError

from . import frames
from .pg_schema import CAGG, DIALECT
from .sql import bucket_expr, external_bars_sql, reads_rollups, widen
from .store import BASE_SPEC

MINUTE = bucket_expr(DIALECT, BASE_SPEC, None)  # the base bar of a row (intraday: no session)
BAR_VALUES = ", ".join(frames.STORED_BAR_COLUMNS[1:-1])  # open ... trades
BAR_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in frames.STORED_BAR_COLUMNS[1:])
# the 1-hour aggregate, read like market_data (its bucket as ts; predicates reach inside)
HOURS = f"(SELECT symbol, bucket AS ts, {BAR_VALUES}, open_interest FROM {CAGG}) hours"
_VOLUMES = """sum(size) AS volume,
    sum(CASE WHEN side = 1 THEN size ELSE 0 END) AS ask_volume,
    sum(CASE WHEN side = -1 THEN size ELSE 0 END) AS bid_volume,
    count(*) AS trades"""


def text_literal(value: str) -> str:
    """A safely quoted SQL string literal (reads inline their few values to use COPY)."""
    value = str(value)
    if "\x00" in value:
        raise ModelError(f"{value!r}: text cannot contain NUL characters")
    body = value.replace("'", "''")
    if "\\" in body:  # E'' reads the same whatever standard_conforming_strings says
        return "E'" + body.replace("\\", "\\\\") + "'"
    return f"'{body}'"


def ts_literal(ts) -> str:
    # ceil: with microsecond rows, ts >= t and ts < t hold exactly when they hold for ceil(t)
    return f"'{ts.ceil('us').isoformat()}'::timestamptz"


def ts_range(col: str, start, end) -> str:
    """`` AND col >= start AND col < end`` for the sides that are given."""
    where = ""
    if start is not None:
        where += f" AND {col} >= {ts_literal(start)}"
    if end is not None:
        where += f" AND {col} < {ts_literal(end)}"
    return where


def tick_expr(tick_size: float) -> str:
    """Integer tick index of ``price``, rounding half away from zero exactly like DuckDB's
    ``round`` (PostgreSQL's float ``round`` rounds half to even)."""
    x = f"(price / {float(tick_size)!r}::float8)"
    return (f"CAST(CASE WHEN abs({x} - trunc({x})) = 0.5 THEN trunc({x}) + sign({x}) "
            f"ELSE round({x}) END AS BIGINT)")


def trade_bars(bucket: str, sym: str, times: str) -> str:
    """Bars of symbol ``sym`` (an SQL value) from its trades matching ``times``, by ``bucket``.

    Open and close are the prices of the first and last trade by ``(ts, trade_id)``: found by
    two index probes per bar rather than by ordering every trade (``array_agg(... ORDER BY)``
    was three times slower over two million trades), and the same with or without TimescaleDB.
    The symbol stays out of GROUP BY: it is fixed, and grouping on it cost a third more.
    """
    return f"""
        SELECT {sym}::text AS symbol, a.bucket, o.price AS open, a.high, a.low, c.price AS close,
               a.volume, a.ask_volume, a.bid_volume, a.trades
        FROM (SELECT {bucket} AS bucket, min(ts) AS t0, max(ts) AS t1,
                     max(price) AS high, min(price) AS low, {_VOLUMES}
              FROM trades WHERE symbol = {sym}{times} GROUP BY bucket) a
        CROSS JOIN LATERAL (SELECT price FROM trades t WHERE t.symbol = {sym} AND t.ts = a.t0
                            ORDER BY t.trade_id LIMIT 1) o
        CROSS JOIN LATERAL (SELECT price FROM trades t WHERE t.symbol = {sym} AND t.ts = a.t1
                            ORDER BY t.trade_id DESC LIMIT 1) c"""


def trade_cells(bucket: str, tick_size: float, sym: str, times: str) -> str:
    """Footprint cells of symbol ``sym`` from its trades matching ``times``."""
    return f"""
        SELECT {sym}::text AS symbol, {bucket} AS bucket, {tick_expr(tick_size)} AS tick,
               {_VOLUMES}
        FROM trades WHERE symbol = {sym}{times} GROUP BY bucket, tick"""


def descending(order: str) -> str:
    return ", ".join(f"{c.strip()} DESC" for c in order.split(","))


def first_last(timescaledb: bool, order: str = "ts"):
    """SQL makers for the first / last value by ``order`` (unique within a group), and the last
    non-NULL value. TimescaleDB's first()/last() (one ``order`` column) avoid sorting; plain
    PostgreSQL sorts. Both give the same answer: ``order`` has no ties."""
    if timescaledb:
        return (lambda v: f"first({v}, {order})", lambda v: f"last({v}, {order})",
                lambda v: f"last({v}, {order}) FILTER (WHERE {v} IS NOT NULL)")
    desc = descending(order)
    return (lambda v: f"(array_agg({v} ORDER BY {order}))[1]",
            lambda v: f"(array_agg({v} ORDER BY {desc}))[1]",
            lambda v: f"(array_agg({v} ORDER BY {desc}) FILTER (WHERE {v} IS NOT NULL))[1]")


def rollup_bars(first, last, last_value, bucket: str, source: str, where: str) -> str:
    """Bars aggregated from base bars (``market_data`` or the 1-hour aggregate)."""
    return f"""
        SELECT {bucket} AS bucket, {first('open')} AS open, max(high) AS high, min(low) AS low,
               {last('close')} AS close, sum(volume) AS volume, sum(ask_volume) AS ask_volume,
               sum(bid_volume) AS bid_volume, sum(trades)::bigint AS trades,
               {last_value('open_interest')} AS open_interest
        FROM {source} WHERE {where} GROUP BY bucket"""


def latest(sql: str, order: str, last) -> str:
    """``sql`` ordered by ``order``; with ``last``, only its ``last`` final rows."""
    if last is None:
        return f"{sql} ORDER BY {order}"
    return (f"SELECT * FROM ({sql} ORDER BY {descending(order)} LIMIT {int(last)}) q "
            f"ORDER BY {order}")


def bars_sql(symbol, spec, session, start, end, timescaledb: bool, hours: bool,
             external: bool = False) -> str:
    """``spec`` bars as ``bucket`` (open time) and the stored bar columns, without NULLs; with
    ``hours``, rollups read the 1-hour aggregate rather than ``market_data``; ``external``: the
    bars received built instead."""
    b = bucket_expr(DIALECT, spec, session)
    lo, hi = widen(spec, start, end)
    sym, times = text_literal(symbol), ts_range("ts", lo, hi)
    where = f"symbol = {sym}{times}"
    if external:
        inner = external_bars_sql(DIALECT, spec, session, where, *first_last(timescaledb))
    elif spec == BASE_SPEC:  # the rollups are the answer
        inner = f"SELECT ts AS bucket, {BAR_VALUES}, open_interest FROM market_data WHERE {where}"
    elif reads_rollups(spec):
        inner = rollup_bars(*first_last(timescaledb), b, HOURS if hours else "market_data", where)
    else:
        inner = (f"SELECT bucket, {BAR_VALUES}, NULL::float8 AS open_interest "
                 f"FROM ({trade_bars(b, sym, times)}) t")
    return (f"SELECT bucket, {BAR_VALUES}, coalesce(open_interest, 'NaN') FROM ({inner}) q "
            f"WHERE true{ts_range('bucket', start, end)}")


def footprint_sql(symbol, spec, inst, start, end) -> str:
    """Footprint cells of ``spec`` bars, ordered by bucket and tick."""
    b = bucket_expr(DIALECT, spec, inst.session)
    lo, hi = widen(spec, start, end)
    sym, times = text_literal(symbol), ts_range("ts", lo, hi)
    where = f"symbol = {sym}{times}"
    sums = "volume, ask_volume, bid_volume, trades"
    if spec == BASE_SPEC:
        inner = f"SELECT ts AS bucket, tick, {sums} FROM footprint WHERE {where}"
    elif reads_rollups(spec):
        inner = (f"SELECT {b} AS bucket, tick, sum(volume) AS volume, "
                 "sum(ask_volume) AS ask_volume, sum(bid_volume) AS bid_volume, "
                 f"sum(trades)::bigint AS trades FROM footprint WHERE {where} "
                 "GROUP BY bucket, tick")
    else:
        inner = trade_cells(b, inst.tick_size, sym, times)
    return (f"SELECT bucket, tick, {sums} FROM ({inner}) q "
            f"WHERE true{ts_range('bucket', start, end)} ORDER BY bucket, tick")
