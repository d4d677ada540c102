"""Imports into a real store: damaged files stop with a clean error and store nothing."""
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_access import open_store
from tradeflow.importer import import_files
from tradeflow.ingest.errors import IngestError
from tradeflow.ingest.scid import EPOCH_OFFSET_US, RECORD
from tradeflow.model import Instrument, ModelError

T0_US = 1_767_225_600_000_000  # 2026-01-01 UTC
N = 3000


def scid_bytes() -> bytes:
    """A valid .scid of N single trades (several per microsecond, both sides)."""
    head = struct.pack("<4sIIHHI36s", b"SCID", 56, 40, 1, 0, 0, b"\0" * 36)
    rng = np.random.default_rng(0)
    rec = np.zeros(N, RECORD)
    rec["dt"] = T0_US + EPOCH_OFFSET_US + np.sort(rng.integers(0, 3_600_000_000, N)) // 3 * 3
    rec["close"] = 5000 + 0.25 * np.cumsum(rng.integers(-1, 2, N))
    rec["high"], rec["low"] = rec["close"] + 0.25, rec["close"]
    rec["num_trades"] = 1
    rec["volume"] = rng.integers(1, 9, N)
    buy = rng.random(N) < 0.5
    rec["ask_volume"] = np.where(buy, rec["volume"], 0)
    rec["bid_volume"] = np.where(buy, 0, rec["volume"])
    return head + rec.tobytes()


VALID = scid_bytes()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = open_store(f"duckdb:///{tmp_path_factory.mktemp('imp')}/imp.duckdb")
    s.add_instrument(Instrument("ESH6", 0.25, asset_class="future"))
    yield s
    s.close()


def test_valid_file_imports_once(store, tmp_path):
    path = tmp_path / "ESH6.scid"
    path.write_bytes(VALID)
    first = import_files(store, [path], progress=False)[0]
    assert first.format == "scid" and first.symbols["ESH6"].trades_new == N
    again = import_files(store, [path], progress=False)[0]
    assert again.symbols["ESH6"].trades_read == N and again.symbols["ESH6"].trades_new == 0
    assert store.bars("ESH6", "1m")["volume"].sum() == store.trades("ESH6")["size"].sum()
    with store.transaction() as tx:  # leave the module's store empty for the fuzz test
        tx.con.execute("DELETE FROM trades").fetchall()
        tx.con.execute("DELETE FROM market_data").fetchall()
        tx.con.execute("DELETE FROM footprint").fetchall()


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(VALID)),
       flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), max_size=6))
def test_damaged_file_stores_nothing(store, tmp_path, cut, flips):
    data = bytearray(VALID[:cut] if cut < 120 or cut % 7 else VALID)
    for pos, xor in flips:
        if pos < len(data):
            data[pos] ^= xor
    path = tmp_path / "ESH6.scid"
    path.write_bytes(bytes(data))
    good = tmp_path / "good" / "ESH6.scid"
    good.parent.mkdir(exist_ok=True)
    good.write_bytes(VALID)
    try:
        # a valid file first: a failure in the second must take the first back too
        import_files(store, [good, path], format="scid", progress=False)
    except (IngestError, ModelError) as exc:
        assert str(path) in str(exc) or path.name in str(exc)
        assert len(store.trades("ESH6")) == 0
        assert len(store.bars("ESH6", "1m")) == 0
        assert len(store.footprint("ESH6", "1m")) == 0
    else:  # the damage left a valid file: stored exactly once
        assert len(store.trades("ESH6")) > 0
        with store.transaction() as tx:
            for table in ("trades", "market_data", "footprint"):
                tx.con.execute(f"DELETE FROM {table}").fetchall()
