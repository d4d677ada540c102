"""Reading compressed input (.zip, .gz, .zst) within limits: a decompression bomb is refused.

Every stream a parser reads is wrapped in a :class:`BoundedStream`, which counts the bytes as they
come out of the decompressor (the sizes an archive declares are not trusted) and refuses to give
more than

* ``TRADEFLOW_MAX_RATIO`` times the size of the file on disk (default 100), or
* ``TRADEFLOW_MAX_UNPACKED`` bytes in all (default 64 GiB; ``K``/``M``/``G``/``T`` suffixes),

whichever is less; up to 64 MiB always pass, so a small, very regular file is never refused. Real
exchange files compress 4 to 10 times (Binance aggTrades zips, Databento ``.dbn.zst``, gzip'd CSV),
a bomb hundreds to thousands of times (1 GiB of NULs deflates about 1000 to 1). A user with a
genuine file beyond a limit raises it with the environment variable the message names.

pyarrow's CSV reader pulls from a Python stream on a background I/O thread (read-ahead). A thread
still inside Python when the interpreter exits aborts the process (``Fatal Python error:
PyGILState_Release``), so readers :meth:`~BoundedStream.stop` their stream when they finish or
fail (the stream then reads as ended, and ``stop`` waits for a read in progress), and an ``atexit``
hook stops any stream still open, for example one left in a generator that was never closed.
"""
from __future__ import annotations

import atexit
import io
import os
import re
import threading
import weakref

from tradeflow.ingest.errors import IngestError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def is_zstd(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts a zstd stream."""
    # a zstd frame, or a skippable frame (magic 0x184D2A5?) that may precede one
    return head[:4] == ZSTD_MAGIC or (len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18"
                                      and head[0] & 0xF0 == 0x50)


MAX_RATIO_ENV = "TRADEFLOW_MAX_RATIO"
MAX_UNPACKED_ENV = "TRADEFLOW_MAX_UNPACKED"
DEFAULT_MAX_RATIO = 100.0
DEFAULT_MAX_UNPACKED = 64 << 30
ALWAYS_ALLOWED = 64 << 20  # bytes any file may unpack to, whatever its ratio
PIECE = 1 << 20  # bytes decompressed at a time, so that stop() never waits long

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"64G"`` -> bytes (binary units; ``"500M"``, ``"2GiB"``, ``"1048576"``)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (e.g. 64G, 500M or a number of bytes)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def limits(path) -> tuple[float, int]:
    """(max ratio, max unpacked bytes) from the environment; a bad value is an IngestError."""
    try:
        ratio = float(os.environ.get(MAX_RATIO_ENV) or DEFAULT_MAX_RATIO)
        if not ratio > 0:
            raise ValueError(f"{ratio} is not a positive number")
    except ValueError as exc:
        raise IngestError(path, "", f"{MAX_RATIO_ENV}: {exc}") from None
    try:
        size = parse_size(os.environ.get(MAX_UNPACKED_ENV) or str(DEFAULT_MAX_UNPACKED))
    except ValueError as exc:
        raise IngestError(path, "", f"{MAX_UNPACKED_ENV}: {exc}") from None
    return ratio, size


class BoundedStream(io.RawIOBase):
    """The bytes of ``inner`` (a decompressing stream, or a plain file with ``packed_size``
    None: no limit), refused past the limits above; safe to read from one other thread."""

    def __init__(self, inner, path, what: str, packed_size: int | None):
        super().__init__()
        self._inner = inner
        self.path = os.fspath(path)
        self.what = what  # names the data in messages: "the zip member 'x.csv'"
        self.read_bytes = 0
        self.limit = None
        if packed_size is not None:
            ratio, most = limits(path)
            by_ratio = max(int(min(ratio * packed_size, 1 << 62)), ALWAYS_ALLOWED)  # ratio inf
            self.limit = min(by_ratio, most)
            self._why = (f"more than {format_size(most)} ({MAX_UNPACKED_ENV})" if most <= by_ratio
                         else f"more than {ratio:g} times the file's {format_size(packed_size)} "
                              f"({MAX_RATIO_ENV})")
        self._lock = threading.Condition()
        self._busy = 0
        self._stopped = False
        _OPEN.add(self)

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.read_bytes

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, n: int = -1) -> bytes:
        with self._lock:
            if self._stopped:
                return b""
            self._busy += 1
        try:
            return self._read(n)
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()

    def _read(self, n) -> bytes:
        parts, got = [], 0
        while n is None or n < 0 or got < n:
            if self._stopped:
                break
            piece = self._inner.read(PIECE if n is None or n < 0 else min(PIECE, n - got))
            if not piece:
                break
            self.read_bytes += len(piece)
            if self.limit is not None and self.read_bytes > self.limit:
                self.stop(wait=False)
                raise IngestError(self.path, "", f"{self.what} unpacks to {self._why}: refused "
                                  "as a likely decompression bomb (raise the limit if the file is "
                                  "genuine)")
            parts.append(piece)
            got += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def stop(self, wait: bool = True, timeout: float = 60.0):
        """From now on the stream reads as ended; with ``wait``, wait for a read in progress
        (on another thread) to return."""
        with self._lock:
            self._stopped = True
            if wait:
                self._lock.wait_for(lambda: self._busy == 0, timeout)

    def close(self):
        """Stop, then close the stream read from."""
        self.stop()
        self._inner.close()
        super().close()


_OPEN: weakref.WeakSet[BoundedStream] = weakref.WeakSet()


@atexit.register
def _stop_all():
    # atexit runs before the interpreter starts finalizing, while other threads may still
    # take the GIL and finish their read
    for stream in list(_OPEN):
        stream.stop()
