"""The one live protocol: every live study follows an update stream with ``apply(update)`` and
answers with the rows the update wrote or rewrote.

* The update of a bar study is a :class:`tradeflow.model.BarUpdate`: what the one
  ``BarAggregator`` of a (symbol, spec) produced for a batch of trades (closed bars and cells, the
  forming bar and its cells, the batch's trades and liquidations). The order book's is a
  :class:`tradeflow.model.DepthUpdate`. Every follower of a stream is given every update of it,
  in order, once.
* The answer is a mapping ``{output name: Changes}`` (a :class:`ChangeSet`, built lazily: an
  output nobody reads costs nothing). :class:`Changes` says how an output's result (the frame
  its ``result``/``frame``/``developing`` method gives) changed, so a chart can follow it without
  reading the whole result: append the rows past its length, patch the others, drop the rows at
  or past the new ``length`` (a forming bar's rows may shrink).
* :class:`Fanout` runs one update through the followers of one stream and shares a follower
  between the charts that ask for the same study with the same settings: any number of them cost
  one computation.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pandas as pd

__all__ = ["Changes", "ChangeSet", "Follower", "Fanout", "follower_key"]


@dataclass(frozen=True)
class Changes:
    """How one output's result changed in an update.

    ``rows``: every row that was written, rewritten or moved, indexed by its position in the
    result (rows not in it are unchanged at their positions); ``length``: the number of rows of
    the result now. ``key``: for an output kept by key rather than by position (the order book's
    levels, by ``("side", "tick")``), the columns that name a row; ``rows`` then holds the changed
    keys with their new values and ``length`` the number of keys held."""

    rows: pd.DataFrame | pd.Series
    length: int
    key: tuple[str, ...] = ()

    def patch(self, before: int) -> pd.DataFrame | pd.Series:
        """The rows that replace rows a chart already shows (of its ``before`` rows)."""
        return self.rows[self.rows.index < min(before, self.length)]

    def append(self, before: int) -> pd.DataFrame | pd.Series:
        """The rows past a chart's ``before`` rows."""
        return self.rows[self.rows.index >= before]

    def applied(self, shown: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
        """``shown`` (the result as it was, or its rows from some position on, indexed by
        position) with these changes made: what a chart following the changes holds, equal to
        the result now from that position on (changes of rows before it are left out)."""
        if self.key:
            raise ValueError("Changes.applied: keyed changes are merged by key, not position")
        kept = shown[shown.index < self.length]
        rows = self.rows
        if len(shown) and len(rows) and shown.index[0] > 0:
            rows = rows[rows.index >= shown.index[0]]
        if not len(rows):
            return kept
        if not len(kept):
            return rows
        kept = kept[~kept.index.isin(rows.index)]
        return pd.concat([kept, rows]).sort_index() if len(kept) else rows


class ChangeSet(Mapping):
    """``{output name: Changes}`` of one update, each built on first access from a function of
    the follower's state, then kept. Valid until the follower's next ``apply``: ``stale`` says
    when that came, and an output first read after it is refused rather than made wrong."""

    def __init__(self, outputs: Mapping[str, Callable[[], Changes]],
                 stale: Callable[[], bool] | None = None):
        self._make = dict(outputs)
        self._made: dict[str, Changes] = {}
        self._stale = stale

    def __getitem__(self, name: str) -> Changes:
        if name not in self._made:
            make = self._make[name]  # KeyError for an unknown output
            if self._stale is not None and self._stale():
                raise RuntimeError(f"changes of {name!r} read after the follower's next update; "
                                   f"read them before applying the next one")
            self._made[name] = make()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._make)

    def __len__(self) -> int:
        return len(self._make)

    def __repr__(self) -> str:
        return f"ChangeSet({', '.join(self._make)})"


@runtime_checkable
class Follower(Protocol):
    """A live study: follows one update stream; ``apply`` is given each update once, in order."""

    def apply(self, update) -> Mapping[str, Changes]: ...


def _frozen(value: Any) -> Hashable:
    """``value`` as a hashable key: dicts and lists become sorted/ordered tuples."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 3 and 3.0 are the same setting
    hash(value)  # a TypeError names what cannot be a setting
    return value


def follower_key(study: str, params: Mapping[str, Any] | None = None) -> tuple:
    """The key of a follower within one stream: the study's name and its settings, so that equal
    settings written differently (key order, 3 vs 3.0) find the same follower."""
    return (study, _frozen(params or {}))


class Fanout:
    """The followers of one update stream (one ``BarAggregator`` of a symbol and spec, or one
    book), by key (:func:`follower_key`). :meth:`follow` hands out the follower of a key, made on
    first demand and shared by everyone asking with the same key; :meth:`apply` runs an update
    through each follower once and returns each one's changes."""

    def __init__(self):
        self._followers: dict[Hashable, Follower] = {}
        self._users: dict[Hashable, int] = {}

    def follow(self, key: Hashable, make: Callable[[], Follower]) -> Follower:
        """The follower of ``key``: the one already kept, or ``make()`` (kept from now on). Each
        call counts one user; :meth:`release` gives the use back."""
        if key not in self._followers:
            follower = make()
            if not isinstance(follower, Follower):
                raise TypeError(f"Fanout: the follower of {key!r} has no apply(update) method "
                                f"(got {type(follower).__name__})")
            self._followers[key] = follower
            self._users[key] = 0
        self._users[key] += 1
        return self._followers[key]

    def release(self, key: Hashable) -> None:
        """One user of ``key`` is gone; the follower is dropped with its last user."""
        if key not in self._users:
            raise KeyError(f"Fanout: no follower {key!r}")
        self._users[key] -= 1
        if not self._users[key]:
            del self._users[key], self._followers[key]

    def __getitem__(self, key: Hashable) -> Follower:
        """The follower of ``key`` (no use counted)."""
        return self._followers[key]

    def users(self, key: Hashable) -> int:
        return self._users.get(key, 0)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._followers

    def __len__(self) -> int:
        return len(self._followers)

    def apply(self, update) -> dict[Hashable, Mapping[str, Changes]]:
        """Run ``update`` through every follower once; ``{key: its changes}``."""
        return {key: follower.apply(update) for key, follower in self._followers.items()}
