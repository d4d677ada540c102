"""SQL pieces both backends share: bar buckets and the choice of the table a read aggregates."""
from __future__ import annotations

import pandas as pd

from tradeflow.model import BarSpec, Session

from .store import BASE_SPEC


def bucket_expr(dialect: str, spec: BarSpec, session: Session, col: str = "ts") -> str:
    """SQL for the open time (timestamptz) of the ``spec`` bar that ``col`` falls in.

    Intraday bars align to the UTC epoch; daily, weekly and monthly bars to the instrument's
    trading day (see ``Session``), labelled by the trading date at 00:00 UTC, as
    ``tradeflow.model.bar_start`` does in Python.
    """
    if spec.is_intraday_time:
        n = spec.seconds
        if dialect == "duckdb":
            return f"time_bucket(INTERVAL '{n} seconds', {col}, TIMESTAMPTZ '1970-01-01 00:00:00+00')"
        return f"date_bin(INTERVAL '{n} seconds', {col}, TIMESTAMPTZ '1970-01-01 00:00:00+00')"
    shift = int(session.day_shift.total_seconds())
    tz = session.timezone.replace("'", "")
    local = f"(({col} AT TIME ZONE '{tz}') + INTERVAL '{shift} seconds')"
    trunc = f"date_trunc('{spec.calendar_unit}', {local})"
    if dialect == "duckdb":
        # date_trunc of a TIMESTAMP gives a TIMESTAMP (weeks: a DATE); read it as UTC
        return f"timezone('UTC', CAST({trunc} AS TIMESTAMP))"
    return f"(({trunc})::timestamp AT TIME ZONE 'UTC')"


def reads_rollups(spec: BarSpec) -> bool:
    """True when ``spec`` bars can be aggregated from the base-timeframe rollups."""
    if not spec.is_time:
        return False
    if spec.calendar_unit:
        return True
    return spec.seconds % BASE_SPEC.seconds == 0


def widen(spec: BarSpec, start, end):
    """Raw-row bounds that cover every bar whose open time is in ``[start, end)``.

    An intraday bar opening at or after ``start`` holds no row earlier than ``start``; a bar
    opening before ``end`` may hold rows up to one bar length later. Daily and longer bars are
    labelled by trading date, which can be up to a day from their rows either way (session shift),
    and a month is at most 31 days.
    """
    if spec.calendar_unit:
        day = pd.Timedelta(days=2)
        return (None if start is None else start - day), (None if end is None else end + day
                                                          + pd.Timedelta(days=31))
    return start, (None if end is None else end + pd.Timedelta(seconds=spec.seconds))


# Received bars (``external_bars``) -------------------------------------------------------------
# They are kept at their own timeframe (``seconds``). A bar of spec S is built from received bars
# of one timeframe that builds it: S itself (served as it came, its open time unchanged) or a
# shorter one that divides S (daily and longer specs: one that divides a day); of those present,
# the one covering most of the bar (so a day of hourly bars is not shadowed by a few 1-second
# bars), the finest among equals. Bars of other timeframes are not cut up or smeared: left out.
DAY_SECONDS = 86_400
MINUTE_SECONDS = 60
RANK_SCALE = 1 << 23  # above the longest bar (frames.MAX_BAR_SECONDS < 2**22)

AGGREGATES = ("open", "high", "low", "close", "volume", "ask_volume", "bid_volume", "trades",
              "open_interest")


def rolled_up(seconds: int) -> bool:
    """Whether received bars of this timeframe make the 1-minute rollups: those that divide a
    minute, so that each lies inside one (``_usable(BASE_SPEC)`` in SQL)."""
    return seconds <= MINUTE_SECONDS and MINUTE_SECONDS % seconds == 0


def _usable(spec: BarSpec) -> str:
    """SQL condition on ``seconds``: received bars of that timeframe can build ``spec`` bars."""
    if spec.is_intraday_time:
        n = spec.seconds
        return f"(seconds = {n} OR (seconds < {n} AND {n} % seconds = 0))"
    return f"({DAY_SECONDS} % seconds = 0)"


def _aggregate(first, last, last_value) -> str:
    """The bar columns of a group of received bars of one timeframe (their ts unique)."""
    return (f"{first('open')} AS open, max(high) AS high, min(low) AS low, "
            f"{last('close')} AS close, sum(volume) AS volume, sum(ask_volume) AS ask_volume, "
            f"sum(bid_volume) AS bid_volume, CAST(sum(trades) AS BIGINT) AS trades, "
            f"{last_value('open_interest')} AS open_interest")


def _best_covered(bucket: str, where: str, first, last, last_value) -> str:
    """``bucket`` and the bar columns, aggregating per bucket the rows of ``external_bars``
    matching ``where`` of one timeframe: the one whose bars cover most of the bucket (their
    count times their length), the finest of those that cover as much."""
    cols = ", ".join(AGGREGATES)
    rank = f"cover * {RANK_SCALE} - seconds"  # larger cover first, then shorter bars
    return f"""
        SELECT bucket, {_aggregate(first, last, last_value)}
        FROM (SELECT *, max({rank}) OVER (PARTITION BY bucket) AS best
              FROM (SELECT *, sum(seconds) OVER (PARTITION BY bucket, seconds) AS cover
                    FROM (SELECT {bucket} AS bucket, seconds, ts, {cols}
                          FROM external_bars WHERE {where}) a) b) c
        WHERE {rank} = best GROUP BY bucket"""


def external_bars_sql(dialect: str, spec: BarSpec, session: Session, where: str,
                      first, last, last_value) -> str:
    """``spec`` bars (``bucket`` and the bar columns) from the received bars matching ``where``
    (symbol and time range); ``first``/``last``/``last_value`` make the dialect's first and last
    value by ``ts`` and last non-NULL value."""
    b = bucket_expr(dialect, spec, session)
    if spec.is_intraday_time:  # bars of the spec's own timeframe are served as they came
        b = f"CASE WHEN seconds = {spec.seconds} THEN ts ELSE {b} END"
    return _best_covered(b, f"{where} AND {_usable(spec)}", first, last, last_value)


def minutes_from_external_sql(dialect: str, where: str, sym: str, first, last,
                              last_value) -> str:
    """1-minute rollups (``bucket`` and the bar columns) of the received bars matching ``where``
    in minutes that hold no trade of symbol ``sym`` (an SQL value; it comes after ``where``'s
    parameters): trades win (see ``docs/architecture.md``)."""
    m = bucket_expr(dialect, BASE_SPEC, None)
    rows = _best_covered(m, f"{where} AND {_usable(BASE_SPEC)}", first, last, last_value)
    return f"""
        SELECT * FROM ({rows}) r WHERE NOT EXISTS (
            SELECT 1 FROM trades t WHERE t.symbol = {sym}
            AND t.ts >= r.bucket AND t.ts < r.bucket + INTERVAL '1 minute')"""


def too_fine(spec: BarSpec, finest: int, symbol: str) -> str:
    """The message for a read of received bars at a spec they cannot build."""
    return (f"{symbol}: bar spec {spec} cannot be built from the bars received there (the finest "
            f"are {finest} s bars): read at {finest} s or a whole multiple of it, or read the "
            "bars built from trades")
