"""Developing POC and value area: for each bar, the POC, VAH and VAL of the session's volume
profile so far (the "developing POC" lines of Sierra Chart or ATAS).

Definitions
-----------
* **Bar**: the footprint cells sharing one ``ts`` (bars sharing an open time, as tick bars may,
  count as one step).
* **Developing profile** at bar *b*: :func:`.volume.volume_profile` (same ``rows`` and
  ``value_area``, same POC and value-area rules) of every cell of *b*'s trading day with
  ``ts <= b.ts``; without a ``session``, of every cell with ``ts <= b.ts``.
* Keys are level keys in ticks, as in :mod:`.volume` (the lowest tick of a row of ``rows`` ticks);
  multiply by the tick size (``Instrument.to_price``) for prices. While a day's cells so far hold
  no volume, ``poc``, ``vah`` and ``val`` are ``<NA>``.

Computed in one pass by :class:`.live.LiveVolumeProfile` (so the batch and live forms agree by
construction): O(cells + bars x levels), not bars x cells.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tradeflow.model import Session

from indicators.frames import positive_int, require, ts_ns
from indicators.profile.live import LiveVolumeProfile
from indicators.profile.volume import check_share

__all__ = ["developing_profile"]


def developing_profile(cells: pd.DataFrame, session: Session | None = None, rows: int = 1,
                       value_area: float = 0.70) -> pd.DataFrame:
    """Developing POC and value area of ``cells`` (see the module's definitions).

    Returns one row per distinct bar time, ascending: ``ts``, ``date`` (trading date, midnight
    UTC; ``NaT`` without a session), ``poc``, ``vah``, ``val`` (level keys in ticks, ``Int64``) and
    ``volume`` (the day's volume so far). ``session=None`` never restarts."""
    share = check_share(value_area)
    rows = positive_int(rows, "developing_profile: rows")
    require(cells, ("ts", "tick", "volume", "ask_volume", "bid_volume"), "developing_profile")
    if not len(cells):
        raise ValueError("developing_profile: no cells, nothing to profile")
    if session is not None and not isinstance(session, Session):
        raise ValueError(f"session must be a tradeflow.model.Session, got {type(session).__name__}")
    order = np.argsort(ts_ns(cells["ts"]), kind="stable")
    live = LiveVolumeProfile(session, rows, share)
    live.update(cells.iloc[order])
    return live.developing()
