"""The one error every file parser raises: it names the file, the place in it, and what is wrong."""
from __future__ import annotations

import os


def printable(text: str) -> str:
    """``text`` safe for a terminal: characters that are not printable (ESC, BEL, NUL, newlines,
    undecodable bytes of a file name...) are shown escaped, as Python writes them (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class IngestError(ValueError):
    """Malformed input: ``str(e) == "{path}: {where}: {message}"`` (``where`` may be empty), with
    every character that is not printable escaped (file names and messages quote the file).

    ``where`` is ``"record N"`` for binary files (.scid, DBN: records counted from 0, the first
    record after the header), ``"line N"`` for CSV (from 1, the header line counts) and
    ``"row N"`` for Parquet (from 0, as pandas numbers rows). The attributes keep the raw text.
    """

    def __init__(self, path, where: str, message: str):
        self.path = os.fspath(path) if path is not None else ""
        self.where = where or ""
        self.message = message
        text = f"{self.path}: {self.where}: {message}" if self.where else f"{self.path}: {message}"
        super().__init__(printable(text))

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working
        return (type(self), (self.path, self.where, self.message))
