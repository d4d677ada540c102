"""Writing rows into a Bokeh ``ColumnDataSource`` the way live charts must: rows the browser
already has are patched in place, rows past them are streamed, rows that went away are blanked;
the whole source is never sent again."""
from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource

__all__ = ["put_rows", "truncate", "put_differences", "differs"]


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
        # (copies: streamed into an empty source, a read-only view pandas handed out would
        # become the source's column, which a later patch must write)
        source.stream({name: _values(np.array(col[keep:])) for name, col in rows.items()})


def truncate(source: ColumnDataSource, length: int, keep: tuple[str, ...] = ("x", "t")
             ) -> None:
    """Rows at or past ``length`` are gone (a forming bar's row that went away): they are
    blanked in one patch -- their numbers NaN but those of the ``keep`` columns, so nothing is
    drawn there and the positions stay -- rather than the whole source re-sent. A later
    :func:`put_rows` fills them again."""
    held = len(next(iter(source.data.values()), ()))
    if length >= held:
        return
    blank = {}
    for name, col in source.data.items():
        col = np.asarray(col)
        if name not in keep and col.dtype.kind == "f":
            blank[name] = [(slice(length, held), np.full(held - length, np.nan))]
    if blank:
        source.patch(blank)


def put_differences(source: ColumnDataSource, new: dict) -> None:
    """Make ``source`` hold ``new`` (its whole columns, made again), sending the rows from the
    first that differs: rows that did not change are not sent again."""
    first = _first_difference(source.data, new)
    length = len(next(iter(new.values()), ()))
    put_rows(source, first, {k: np.asarray(v)[first:] for k, v in new.items()})
    truncate(source, length)


def _first_difference(held: dict, new: dict) -> int:
    """The first row where ``new`` differs from ``held`` (or where one of them ends)."""
    n_held = len(next(iter(held.values()), ()))
    n_new = len(next(iter(new.values()), ()))
    first = min(n_held, n_new)
    for name, col in new.items():
        if name not in held:
            return 0
        bad = np.flatnonzero(differs(np.asarray(held[name])[:first], np.asarray(col)[:first]))
        if len(bad):
            first = int(bad[0])
    return first


def differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where two columns of the same length differ, element by element (NaN equals NaN)."""
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        a, b = a.astype("float64"), b.astype("float64")
        return ~((a == b) | (np.isnan(a) & np.isnan(b)))
    return a != b


def _values(col):
    """Columns as Bokeh sends them: numpy arrays stay arrays (binary), objects become lists."""
    col = np.asarray(col)
    return col.tolist() if col.dtype == object else col
