"""The one error every file parser raises: it names the file, the place in it, and what is wrong."""
from __future__ import annotations

import os


class IngestError(ValueError):
    """Malformed input: ``str(e) == "{path}: {where}: {message}"`` (``where`` may be empty).

    ``where`` is ``"record N"`` for binary files (.scid, DBN: records counted from 0, the first
    record after the header), ``"line N"`` for CSV (from 1, the header line counts) and
    ``"row N"`` for Parquet (from 0, as pandas numbers rows). Import chunks carry these places
    per row (``ImportChunk.where``), so checks after parsing (validation, the stores') name them
    too.
    """

    def __init__(self, path, where: str, message: str):
        self.path = os.fspath(path) if path is not None else ""
        self.where = where or ""
        self.message = message
        text = f"{self.path}: {self.where}: {message}" if self.where else f"{self.path}: {message}"
        super().__init__(text)

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working
        return (type(self), (self.path, self.where, self.message))
