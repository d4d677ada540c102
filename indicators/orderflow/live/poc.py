"""The POC rule over rows grouped by bar (or by day): used for the bars' core values and for
the session profiles of the naked POCs."""

from __future__ import annotations

import numpy as np

from ...frames import group_starts


def group_pocs(group: np.ndarray, tick: np.ndarray, vol: np.ndarray):
    """Per group of rows sorted by (group, tick): the index of its POC -- most volume; ties to the
    tick closest to the middle of the group's lowest and highest tick, then the lower one (the rule
    of ``bar_poc`` and of the volume profile). Returns (picks, group starts, group ends)."""
    if not len(group):
        e = np.empty(0, "int64")
        return e, e, e
    first = group_starts(group)
    grp = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(group)) - 1
    vmax = np.maximum.reduceat(vol, starts)[grp]
    dist = np.abs(2 * tick - (tick[starts] + tick[ends])[grp])
    cand = np.flatnonzero(vol == vmax)
    pick = cand[np.lexsort((tick[cand], dist[cand], grp[cand]))]
    return pick[group_starts(grp[pick])], starts, ends
