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
