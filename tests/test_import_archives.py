"""Hostile archives and hostile text: decompression bombs are refused by size and ratio with one
clean line (no interpreter abort), unguessable files say why, control bytes are escaped.

The files are made here. Imports run through the ``tradeflow`` command against DuckDB and
PostgreSQL + TimescaleDB, and the store must be left as it was.
"""
import gzip
import io
import os
import struct
import threading
import time
import zipfile
import zlib

import databento_dbn as db
import pyarrow as pa
import pytest

from data_access import open_store
from tests.test_cli import run
from tradeflow.ingest import unpack
from tradeflow.ingest.errors import IngestError, printable
from tradeflow.ingest.files import guess_format, read_file

T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
SEED_NAME = "BTCUSDT-aggTrades-2024-01-01.zip"


def agg_lines(n: int, first_id: int = 1) -> bytes:
    """Binance spot aggTrades rows (no header), one trade a second."""
    return b"".join(
        b"%d,%.2f,0.5,%d,%d,%d,%s,true\n" % (i, 42000 + (i % 7) * 0.01, i, i, T0_MS + i * 1000,
                                            b"true" if i % 2 else b"false")
        for i in range(first_id, first_id + n))


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def dbn_trades(n: int) -> bytes:
    """A DBN trades file: metadata and ``n`` identical trades (ES at 4500.25, seller hit)."""
    t0 = T0_MS * 1_000_000
    meta = db.Metadata(dataset="GLBX.MDP3", start=t0, stype_in=db.SType.RAW_SYMBOL,
                       stype_out=db.SType.INSTRUMENT_ID, schema=db.Schema.TRADES,
                       symbols=["BTCUSDT"], mappings=[]).encode()
    rec = bytes(db.TradeMsg(publisher_id=1, instrument_id=42, ts_event=t0, price=4500250000000,
                            size=1, action=db.Action.TRADE, side=db.Side.ASK, depth=0,
                            ts_recv=t0 + 500, flags=0))
    return meta + rec * n


def zstd(data: bytes) -> bytes:
    return pa.compress(data, "zstd", asbytes=True)


def nul_zip(path, name: str, line: bytes, blocks: int, block: int = 1 << 24):
    """A zip whose one member is ``line`` then ``blocks`` x ``block`` NULs, made in well under a
    second: after a full flush deflate turns each identical block into identical bytes, so one
    packed block is written again and again. Its CRC is left 0: nothing reads it to its end."""
    zeros = b"\0" * block
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(line + zeros) + c.flush(zlib.Z_FULL_FLUSH)
    middle = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH) == middle
    last = c.compress(zeros) + c.flush()
    packed = len(first) + len(middle) * (blocks - 2) + len(last)
    fname = name.encode()
    zip64 = struct.pack("<HHQQ", 1, 16, len(line) + blocks * block, packed)  # the real sizes
    common = struct.pack("<HHHHHIII", 45, 0, 8, 0, 0x21, 0, 0xFFFFFFFF, 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04" + common + struct.pack("<HH", len(fname), len(zip64)) + fname
                + zip64)
        f.write(first)
        for _ in range(blocks - 2):
            f.write(middle)
        f.write(last)
        cd_offset = f.tell()
        cd = (b"PK\x01\x02" + struct.pack("<H", 45) + common
              + struct.pack("<HHHHHII", len(fname), len(zip64), 0, 0, 0, 0, 0) + fname + zip64)
        f.write(cd)
        f.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(cd), cd_offset, 0))


@pytest.fixture(scope="module")
def nul_bomb(tmp_path_factory) -> str:
    """The bomb of the report: a ~2 MB zip holding one Binance line and 2 GiB of NULs."""
    path = tmp_path_factory.mktemp("bomb") / "BTCUSDT-aggTrades-2024-01-02.zip"
    nul_zip(path, "BTCUSDT-aggTrades-2024-01-02.csv", agg_lines(1, 10_000), 128)
    with zipfile.ZipFile(path) as z:  # a zip the standard library reads
        assert z.infolist()[0].file_size > 2 << 30 - 1
        assert z.open(z.infolist()[0]).read(60).startswith(agg_lines(1, 10_000))
    assert os.path.getsize(path) < 3 << 20
    return str(path)


# --------------------------------------------------------------------------------------------
# Stores: one DuckDB file and one TimescaleDB database per module, seeded with a real import


@pytest.fixture(scope="module", params=["duckdb", "timescaledb"])
def seeded(request, tmp_path_factory):
    """(store URL, folder for files): BTCUSDT registered and 100 trades imported."""
    folder = tmp_path_factory.mktemp(f"arch-{request.param}")
    if request.param == "duckdb":
        url, drop = f"duckdb:///{folder}/store.duckdb", None
    else:
        cluster = request.getfixturevalue("timescale_cluster")
        name = cluster.create_database()
        url, drop = cluster.url(name), (lambda: cluster.drop_database(name))
    run(["instruments", "add", "BTCUSDT", "--tick-size", "0.01"], url)
    seed = folder / SEED_NAME
    seed.write_bytes(zip_bytes({SEED_NAME[:-4] + ".csv": agg_lines(100)}))
    assert "100 new" in run(["import", "--quiet", str(seed)], url).stdout
    yield url, folder
    if drop:
        drop()


def snapshot(url):
    store = open_store(url)
    try:
        return store.trades("BTCUSDT"), store.bars("BTCUSDT", "1m")
    finally:
        store.close()


def refused(url, path, *extra, env=None) -> str:
    """Import ``path``; it must fail with one clean line and leave the store as it was."""
    before = snapshot(url)
    started = time.monotonic()
    proc = run(["import", "--quiet", str(path), *extra], url, ok=False, env=env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Fatal Python error" not in proc.stderr and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].isprintable(), lines[0]
    assert elapsed < 60, f"took {elapsed:.0f} s"
    after = snapshot(url)
    for old, new in zip(before, after, strict=True):
        assert len(old) and old.equals(new)
    return lines[0]


# --------------------------------------------------------------------------------------------
# Bombs


def test_zip_bomb_at_default_limits(seeded, nul_bomb):
    url, _ = seeded
    started = time.monotonic()
    line = refused(url, nul_bomb)
    assert time.monotonic() - started < 20
    assert line.startswith(f"Error: {nul_bomb}: the zip member 'BTCUSDT-aggTrades-2024-01-02.csv' "
                           "unpacks to more than 100 times the file's ")
    assert "(TRADEFLOW_MAX_RATIO): refused as a likely decompression bomb" in line


def test_read_ahead_thread_stopped_before_exit(tmp_path, nul_bomb):
    # with the limits raised the bomb reaches the CSV parser, which fails while pyarrow's
    # read-ahead thread is still unpacking: that used to abort the interpreter at exit
    url = f"duckdb:///{tmp_path}/s.duckdb"
    proc = run(["import", "--quiet", "--symbol", "BTCUSDT", nul_bomb], url, ok=False,
               env={"TRADEFLOW_MAX_RATIO": "1e9"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Fatal Python error" not in proc.stderr
    assert "decompression bomb" not in proc.stderr
    assert proc.stderr.startswith(f"Error: {nul_bomb}: line 2")


def test_gzip_and_zstd_refused_past_the_size_limit(seeded):
    url, folder = seeded
    gz = folder / "BTCUSDT-aggTrades-2024-01-03.csv.gz"
    gz.write_bytes(gzip.compress(agg_lines(40_000, 1000)))  # ~2.5 MiB of CSV
    line = refused(url, gz, env={"TRADEFLOW_MAX_UNPACKED": "1M"})
    assert line == (f"Error: {gz}: the gzip data unpacks to more than 1.0 MiB "
                    "(TRADEFLOW_MAX_UNPACKED): refused as a likely decompression bomb (raise the "
                    "limit if the file is genuine)")
    dbn = folder / "trades.dbn.zst"
    dbn.write_bytes(zstd(dbn_trades(50_000)))  # 2.4 MB of records
    line = refused(url, dbn, "--symbol", "BTCUSDT", env={"TRADEFLOW_MAX_UNPACKED": "2M"})
    assert line == (f"Error: {dbn}: the zstd data unpacks to more than 2.0 MiB "
                    "(TRADEFLOW_MAX_UNPACKED): refused as a likely decompression bomb (raise the "
                    "limit if the file is genuine)")


def test_size_limit_is_exact_and_small_regular_files_pass(tmp_path, monkeypatch):
    csv = agg_lines(20_000)
    gz = tmp_path / "BTCUSDT-aggTrades-2024-01-04.csv.gz"
    gz.write_bytes(gzip.compress(csv))
    assert len(csv) / os.path.getsize(gz) > 5
    monkeypatch.setenv("TRADEFLOW_MAX_UNPACKED", str(len(csv)))
    assert sum(len(c.frame) for c in read_file(gz)) == 20_000
    monkeypatch.setenv("TRADEFLOW_MAX_UNPACKED", str(len(csv) - 1))
    with pytest.raises(IngestError, match="unpacks to more than"):
        list(read_file(gz))
    # identical DBN records compress thousands of times, yet a small file is never refused
    monkeypatch.delenv("TRADEFLOW_MAX_UNPACKED")
    data = dbn_trades(20_000)
    dbn = tmp_path / "same.dbn.zst"
    dbn.write_bytes(zstd(data))
    assert len(data) / os.path.getsize(dbn) > unpack.DEFAULT_MAX_RATIO
    assert sum(len(c.frame) for c in read_file(dbn, symbol="BTCUSDT")) == 20_000


@pytest.mark.parametrize("name, value, match", [
    ("TRADEFLOW_MAX_UNPACKED", "lots", "TRADEFLOW_MAX_UNPACKED: 'lots' is not a size"),
    ("TRADEFLOW_MAX_RATIO", "-3", "TRADEFLOW_MAX_RATIO: -3.0 is not a positive number"),
])
def test_bad_limit_setting(tmp_path, monkeypatch, name, value, match):
    gz = tmp_path / "BTCUSDT-aggTrades-2024-01-04.csv.gz"
    gz.write_bytes(gzip.compress(agg_lines(10)))
    monkeypatch.setenv(name, value)
    with pytest.raises(IngestError, match=match):
        list(read_file(gz, format="binance"))


def test_parse_size():
    assert unpack.parse_size("64G") == 64 << 30
    assert unpack.parse_size("1.5 MiB") == 3 << 19
    assert unpack.parse_size("4096") == 4096
    with pytest.raises(ValueError):
        unpack.parse_size("12 parsecs")


def test_stop_waits_for_a_read_in_progress_then_reads_as_ended(tmp_path):
    # a real pipe stands for a slow decompressor being read on another thread
    r, w = os.pipe()
    with os.fdopen(r, "rb", buffering=0) as inner, os.fdopen(w, "wb", buffering=0) as writer:
        stream = unpack.BoundedStream(inner, tmp_path / "x.gz", "the gzip data", 10)
        got = []
        reader = threading.Thread(target=lambda: got.append(stream.read(5)))
        reader.start()
        time.sleep(0.2)  # the reader is now blocked inside the pipe read
        stopper = threading.Thread(target=stream.stop)
        stopper.start()
        stopper.join(0.5)
        assert stopper.is_alive()  # stop() waits for the read in progress...
        writer.write(b"abc")
        reader.join(5)
        stopper.join(5)
        assert got == [b"abc"] and not stopper.is_alive()  # ...which ends at the next piece
        writer.write(b"more")
        assert stream.read(4) == b""  # and from then on the stream reads as ended


# --------------------------------------------------------------------------------------------
# Files whose format cannot be guessed say why


def unguessable(folder):
    two = folder / "two.zip"
    two.write_bytes(zip_bytes({"a.csv": agg_lines(3), "b.csv": agg_lines(3)}))
    cut = folder / "cut.zip"
    cut.write_bytes(zip_bytes({"a.csv": agg_lines(500)})[:1500])
    bad_gz = folder / "bad.gz"
    bad_gz.write_bytes(gzip.compress(agg_lines(500))[:-200] + b"\xff" * 50)
    latin = folder / "latin.txt"
    latin.write_bytes("Zeit;Preis;Größe\n2024-01-01;1;1\n".encode("latin-1"))
    return [
        (two, "cannot tell the file format: the zip holds 2 files ('a.csv', 'b.csv'); expected "
              "exactly one CSV"),
        (cut, "cannot tell the file format: not a readable zip file (no zip directory at its "
              "end: truncated, or not a zip)"),
        (bad_gz, "line 1: cannot tell the file format: cannot unpack the gzip data: "),
        (latin, "line 1: cannot tell the file format: not UTF-8 text (byte 0xf6 at byte 14 of "
                "the line)"),
    ]


def test_unguessable_files_say_why(seeded):
    url, folder = seeded
    for path, why in unguessable(folder):
        line = refused(url, path)
        assert line.startswith(f"Error: {path}: {why}"), line
        with pytest.raises(IngestError) as exc:
            guess_format(path)
        assert f"{path}: {why}" in str(exc.value)


# --------------------------------------------------------------------------------------------
# Control bytes


def test_control_bytes_are_escaped(seeded):
    url, folder = seeded
    path = folder / "evil\x1b]0;owned\x07\x1b[2J.csv"
    path.write_bytes(b"ts,price,size\n2024-01-01T00:00:00Z,\x1b[31m42000\x07,1\n")
    line = refused(url, path, "--symbol", "BTCUSDT")
    assert "\x1b" not in line and "\x07" not in line
    shown = "evil\\x1b]0;owned\\x07\\x1b[2J.csv"
    assert f"{shown}: line 2: column 'price': " in line
    assert "\\x1b[31m42000\\x07" in line
    # a Binance line whose file name carries control bytes: the summary is escaped too
    name = folder / "BTCUSDT-aggTrades-2024-01-05\x1b[5m.csv"
    name.write_bytes(agg_lines(3, 500))
    out = run(["import", "--quiet", str(name)], url).stdout
    assert "\x1b" not in out and "2024-01-05\\x1b[5m.csv" in out
    assert "3 new" in out


def test_printable():
    assert printable("plain text, ünïcode €") == "plain text, ünïcode €"
    assert printable("a\x1bb\x07\x00\r\n\t\x7f\u2028") == "a\\x1bb\\x07\\x00\\r\\n\\t\\x7f\\u2028"
    err = IngestError("f\x1b.csv", "line 3", "bad value '\x1b[31m'")
    assert str(err) == "f\\x1b.csv: line 3: bad value '\\x1b[31m'"
    assert err.path == "f\x1b.csv"  # the attributes keep the raw text
