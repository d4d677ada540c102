"""Writing rows into a Bokeh ``ColumnDataSource`` the way live charts must: rows the browser
already has are patched in place, rows past them are streamed, nothing else is sent."""
from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource

__all__ = ["put_rows", "truncate"]


def put_rows(source: ColumnDataSource, start: int, rows: dict) -> None:
    """Write ``rows`` (equal-length columns of the source) at positions ``start``,
    ``start + 1``, ...: those below the source's length as one patch, the rest as one stream.
    ``start`` may not be past the source's length (rows would be missing)."""
    held = len(next(iter(source.data.values()), ()))
    if start > held:
        raise ValueError(f"rows from {start} would leave a gap after the {held} rows held")
    n = len(next(iter(rows.values()), ()))
    if not n:
        return
    keep = min(held - start, n)  # rows that replace rows held
    if keep > 0:
        source.patch({name: [(slice(start, start + keep), _values(col[:keep]))]
                      for name, col in rows.items()})
    if keep < n:
        source.stream({name: _values(col[keep:]) for name, col in rows.items()})


def truncate(source: ColumnDataSource, length: int) -> None:
    """Keep the first ``length`` rows (a forming row that went away). This one re-sends the
    rows kept: it happens only when a forming bar disappears without replacement."""
    held = len(next(iter(source.data.values()), ()))
    if length < held:
        source.data = {name: list(col[:length]) for name, col in source.data.items()}


def _values(col):
    """Columns as Bokeh sends them: numpy arrays stay arrays (binary), objects become lists."""
    col = np.asarray(col)
    return col.tolist() if col.dtype == object else col
