"""The one nanoseconds-to-UTC conversion (``tradeflow.model.ns_to_utc``), and no second copy."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from tradeflow.model import ns_to_utc

ROOT = Path(__file__).resolve().parent.parent


def test_an_array_becomes_a_utc_nanosecond_index():
    ns = np.array([0, 1_767_225_600_123_456_789, -1], dtype="int64")
    idx = ns_to_utc(ns)
    assert isinstance(idx, pd.DatetimeIndex) and str(idx.dtype) == "datetime64[ns, UTC]"
    assert [t.isoformat() for t in idx] == [
        "1970-01-01T00:00:00+00:00", "2026-01-01T00:00:00.123456789+00:00",
        "1969-12-31T23:59:59.999999999+00:00"]
    assert (idx.asi8 == ns).all()
    assert len(ns_to_utc(np.empty(0, dtype="int64"))) == 0
    assert ns_to_utc([5]).asi8.tolist() == [5]  # any sequence of integers


def test_one_value_becomes_a_timestamp():
    t = ns_to_utc(np.int64(1_767_225_600_000_000_001))
    assert isinstance(t, pd.Timestamp) and t.isoformat() == "2026-01-01T00:00:00.000000001+00:00"
    assert ns_to_utc(0) == pd.Timestamp("1970-01-01", tz="UTC")


# A conversion written out again: epoch nanoseconds viewed as datetime64 and given the UTC zone, or
# an integer made a UTC Timestamp.
COPIES = re.compile(r"""view\(["'](?:datetime64|M8)\[ns\]["']\)[^\n]*(?:tz_localize\(["']UTC|"""
                    r"""dtype=["']datetime64\[ns, UTC\])|Timestamp\([^()\n]*(?:\([^()\n]*\))?"""
                    r"""[^()\n]*unit=["']ns["'][^\n]*tz=|Timestamp\(int\(""")


def copies_in(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if COPIES.search(line)]


def test_no_module_converts_nanoseconds_to_utc_itself():
    found = {str(p.relative_to(ROOT)): copies_in(p.read_text())
             for top in ("tradeflow", "indicators", "data_access", "dashboards")
             for p in (ROOT / top).rglob("*.py") if p != ROOT / "tradeflow" / "model.py"}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_check_sees_a_copy():
    assert copies_in('    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")')
    assert copies_in('x = pd.DatetimeIndex(a.view("M8[ns]"), dtype="datetime64[ns, UTC]")')
    assert copies_in("f'{pd.Timestamp(int(ts[i]), tz=\"UTC\")}'")
    assert copies_in('pd.Timestamp(ns, unit="ns", tz="UTC")')
    assert not copies_in('local = pd.DatetimeIndex(uniq.view("datetime64[ns]")) + start')
