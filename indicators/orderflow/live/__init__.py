"""Incremental (live) forms of the order-flow studies: :class:`LiveOrderFlow`.

A live chart receives trades in small batches; the one ``tradeflow.bars.BarAggregator`` of the
(symbol, spec) turns each batch into a ``tradeflow.model.BarUpdate`` (closed bars and cells, the
forming bar, the batch's trades and liquidations), and ``LiveOrderFlow.apply(update)`` follows it
(the live protocol of :mod:`indicators.live_protocol`): every study is updated for the bars the
update touched only, the bar that was still forming and any new ones. Rows of closed bars are
kept, never recomputed (a naked POC's ``naked_until`` and a late liquidation's bar are set in
place). After every update, ``result(name)`` equals the batch function run on all trades (and
liquidations) so far -- same columns, dtypes and row order -- and ``changes(name)`` gives the rows
the update wrote, indexed by their position in ``result(name)``; ``apply`` returns them as
``Changes`` per output.

The aggregator is not driven here: it belongs to whoever feeds the stream (the pipeline, a
notebook), and every follower of the stream sees the same update, so trades, bars and cells
cannot drift apart between them. Each update is checked to hold exactly the trades its bars
count, so a missed or repeated update is refused rather than silently miscounted.

Kept between updates, and why:

* bars, footprint cells and per-bar core values (running-delta extremes, POC, traded range) in
  numpy columns that grow (capacity doubles), so an update costs its batch plus the touched bars
  and frames are built only on request;
* the forming bar's running delta, maximum and minimum (its extremes continue in the next batch);
* per bar the CVD and its trading day (the sum carries over, and restarts on a new day);
* big trades: the groups of the last timestamp (the next batch may add prints to them);
  sweeps: the run of the last trade (it may go on);
* naked POCs by level (a later bar that trades through one sets its ``naked_until``) and, for
  session POCs, the volume per level of the current trading day;
* liquidations in the last bar or before any bar, raw: a bar opening later may take them.

Studies are computed per bar. For bar kinds whose bars can share an open time (tick, volume,
range, Renko) the cell-based batch functions, which match cells to bars by ``ts``, would merge such
bars; here each stays apart. Trades are placed in bars by count (the batch ``by="count"``).
The cell studies take the batch functions' ``rows`` (rows of N ticks keyed by their lowest tick);
the bars' own core values are kept for single ticks, and a study with ``rows`` > 1 groups the
touched bars' cells itself.
Sums are kept in the batch functions' order where they are plain running sums; where the batch
uses pairwise or compensated summation the last bits may differ for sizes that are not exact
binary fractions (property tests use sizes that are, and compare divisions with a tolerance).

The package, by module:

* this one: ``LiveOrderFlow``, the studies' batch functions (``BATCH``; their signatures give the
  live parameters and defaults, ``study_defaults``) and the parameter checks (``_study_params``);
* ``storage``: growing columns, what an update touched, ``LiveUpdate``, trading days, frames;
* ``poc``: the POC rule, for the bars' core values and the session profiles;
* ``per_bar``: studies with rows per bar (footprint metrics, CVD, imbalances, stacked
  imbalances, unfinished auctions, zero prints, absorption);
* ``naked``: naked POCs and the current day's volume profile;
* ``trades``: studies over the trades themselves (big trades, sweeps);
* ``liquidations``: liquidations by bar and by level.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd

from tradeflow.model import BAR_COLUMNS, Instrument, ns_to_utc

from ...frames import trade_arrays
from ...live_protocol import Changes, ChangeSet
from ..aggression import absorption, sweeps
from ..footprint import cvd, cvd_candles, footprint_metrics
from ..imbalance import imbalances, stacked_imbalances, unfinished_auctions
from ..liquidations import liquidations_by_bar, liquidations_by_level
from ..prints import big_trades, naked_pocs, zero_prints
from .liquidations import Liquidations, LiqView
from .naked import NakedPocs
from .per_bar import (Absorption, Cvd, FootprintMetrics, Imbalances, Stacked, Unfinished,
                      ZeroPrints)
from .poc import group_pocs
from .storage import (Columns, LiveUpdate, Touch, TradingDays, frame_columns, result_index,
                      rows_frame)
from .trades import Prints, Sweeps

__all__ = ["LiveOrderFlow", "LiveUpdate", "STUDIES", "study_defaults"]

REQUIRED = "<required>"  # a parameter without default (as in the batch function)
INSTRUMENT = "<instrument tick size>"  # defaults to the instrument's tick size

#: the batch function of each live study: its keyword arguments (after the data) are the live
#: study's parameters, with its defaults (the one place they are written)
BATCH = {"footprint_metrics": footprint_metrics, "cvd": cvd, "cvd_candles": cvd_candles,
         "imbalances": imbalances, "stacked_imbalances": stacked_imbalances,
         "unfinished_auctions": unfinished_auctions, "big_trades": big_trades,
         "zero_prints": zero_prints, "naked_pocs": naked_pocs,
         "liquidations_by_bar": liquidations_by_bar,
         "liquidations_by_level": liquidations_by_level, "sweeps": sweeps,
         "absorption": absorption}
STUDIES = tuple(BATCH)
_DATA_ARGS = {"bars", "trades", "cells", "liqs", "by"}  # what the stream gives, not parameters


def study_defaults(name: str) -> dict:
    """The parameters of live study ``name`` and their defaults, read from its batch function's
    signature: ``REQUIRED`` where it has none, ``INSTRUMENT`` for a tick size without one."""
    out = {}
    for arg in inspect.signature(BATCH[name]).parameters.values():
        if arg.name in _DATA_ARGS:
            continue
        if arg.default is not arg.empty:
            out[arg.name] = arg.default
        else:
            out[arg.name] = INSTRUMENT if arg.name == "tick_size" else REQUIRED
    return out


_DEFAULTS = {name: study_defaults(name) for name in STUDIES}
_OUTPUTS = ("bars", "footprint") + STUDIES


def _extremes(signed: np.ndarray, counts: np.ndarray, carry):
    """Running-delta maximum and minimum of each bar (the opening 0 included) and the running
    delta at each bar's end. ``counts``: the batch's trades per bar; ``carry``: (run, max, min) of
    the first bar from earlier batches, or None when it is new."""
    nb = len(counts)
    run_end, hi, lo = np.zeros(nb), np.zeros(nb), np.zeros(nb)
    if carry is not None and nb:
        run_end[0], hi[0], lo[0] = carry
    init = run_end.copy()
    nonempty = counts > 0
    if len(signed):
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        cs = np.cumsum(signed)
        base = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0.0)
        run = cs - np.repeat(base, counts) + np.repeat(init, counts)
        s = starts[nonempty]
        hi[nonempty] = np.maximum(hi[nonempty], np.maximum.reduceat(run, s))
        lo[nonempty] = np.minimum(lo[nonempty], np.minimum.reduceat(run, s))
        run_end[nonempty] = run[s + counts[nonempty] - 1]
    return np.maximum(hi, 0.0), np.minimum(lo, 0.0), run_end


def _study_params(name: str, given, instrument) -> dict:
    """The parameters of study ``name``: the batch defaults updated with ``given``."""
    defaults = _DEFAULTS[name]
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise ValueError(f"{name}: parameters must be a dict of {', '.join(defaults) or 'none'}"
                         f", e.g. {name}={{}}, got {given!r}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(defaults) or 'none'}")
    params = {**defaults, **given}
    missing = [k for k, v in params.items() if isinstance(v, str) and v == REQUIRED]
    if missing:
        raise ValueError(f"{name}: needs {', '.join(missing)} (no default, as in the batch "
                         f"function), e.g. {name}={{'{missing[0]}': ...}}")
    return {k: (instrument.tick_size if isinstance(v, str) and v == INSTRUMENT else v)
            for k, v in params.items()}


class LiveOrderFlow:
    """The order-flow studies of a live chart, following the bar updates of one (symbol, spec)
    without recomputing the history.

    ``instrument`` is the stream's ``tradeflow.model.Instrument`` (tick sizes default to its).
    Each study takes the batch function's parameters as a dict under its name, e.g.
    ``LiveOrderFlow(es, imbalances={"ratio": 4.0}, big_trades={"min_size": 50})``; missing ones
    take the batch defaults. ``studies`` chooses which to compute (default: all, except
    ``big_trades`` and ``absorption`` unless their required parameter is given). Names: see
    ``STUDIES``; ``result``/``changes`` also take ``"bars"`` and ``"footprint"`` (bars and
    cells in the model layouts; for a ``:HA`` spec the plain bars, as the studies use them --
    Heikin-Ashi is a display transform). Feed it every ``BarUpdate`` of one aggregator, from its
    first, with :meth:`apply`.

    ``keep=N`` bounds what is held to the last N closed bars before each update (and those the
    update touched): the rows of older bars -- their bars, cells and per-bar study rows -- are
    dropped, so ``result`` then gives the rows from there on (positions still count from the
    first bar) while ``changes`` are as without it; a study's state that is not per bar (a CVD's
    running sum, naked POCs, big trades, sweeps, liquidations) is kept whole. For a live chart
    that holds the changes itself. ``None`` (default): everything is kept."""

    def __init__(self, instrument: Instrument, studies=None, keep: int | None = None,
                 **params):
        if not isinstance(instrument, Instrument):
            raise ValueError(f"LiveOrderFlow: expected the stream's tradeflow.model.Instrument "
                             f"(its tick size and session), got {type(instrument).__name__}; "
                             f"feed the aggregator's updates with apply(update)")
        self.instrument = instrument
        if keep is not None and not (isinstance(keep, (int, np.integer))
                                     and not isinstance(keep, bool) and keep >= 1):
            raise ValueError(f"LiveOrderFlow: keep must be None (every bar) or a whole number "
                             f"of closed bars, at least 1, got {keep!r}")
        self.keep = None if keep is None else int(keep)
        self.studies = self._choose(studies, params)
        self._params = {s: _study_params(s, params.get(s), self.instrument) for s in self.studies}
        self._bars = Columns(ts="int64", open="float64", high="float64", low="float64",
                              close="float64", volume="float64", ask_volume="float64",
                              bid_volume="float64", trades="int64", dmax="float64",
                              dmin="float64", poc="int64", lo="int64", hi="int64",
                              ncells="int64", cell_start="int64")
        self._cells = Columns(bar="int64", tick="int64", volume="float64", ask_volume="float64",
                               bid_volume="float64", trades="int64")
        self._n_closed = 0
        self._carry = None  # (run, max, min) of the forming bar's running delta
        self._last_ts = None
        self._changed_bars = slice(0, 0)
        self._cache: dict = {}
        self._days = TradingDays()
        self._impl = self._build_studies()
        self.last_update = LiveUpdate(0, 0, 0)
        self._applied = 0  # updates applied: a ChangeSet reads the state of its own update

    @staticmethod
    def _choose(studies, params) -> tuple:
        unknown = sorted(set(params) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"LiveOrderFlow: unknown study or argument {', '.join(unknown)}; "
                             f"studies: {', '.join(_DEFAULTS)}")
        if studies is None:
            return tuple(s for s, p in _DEFAULTS.items()
                         if REQUIRED not in p.values() or s in params)
        chosen = (studies,) if isinstance(studies, str) else tuple(studies)
        bad = [s for s in chosen if s not in _DEFAULTS]
        if bad:
            raise ValueError(f"LiveOrderFlow: unknown studies {', '.join(map(str, bad))}; "
                             f"choose from {', '.join(_DEFAULTS)}")
        unused = sorted(set(params) - set(chosen))
        if unused:
            raise ValueError(f"LiveOrderFlow: parameters given for {', '.join(unused)}, which "
                             f"is not among the studies chosen")
        return tuple(s for s in _DEFAULTS if s in chosen)

    def _build_studies(self) -> dict:
        p, impl = self._params, {}
        classes = {"footprint_metrics": FootprintMetrics, "imbalances": Imbalances,
                   "stacked_imbalances": Stacked, "unfinished_auctions": Unfinished,
                   "zero_prints": ZeroPrints, "naked_pocs": NakedPocs,
                   "absorption": Absorption, "big_trades": Prints, "sweeps": Sweeps}
        for name in self.studies:
            if name in ("cvd", "cvd_candles"):
                impl[name] = Cvd(self, name == "cvd_candles", **p[name])
            elif name in classes:
                impl[name] = classes[name](self, **p[name])
        liq = [s for s in self.studies if s.startswith("liquidations")]
        if liq:
            level = p.get("liquidations_by_level", {})
            tick = level.get("tick_size", self.instrument.tick_size)
            if not (isinstance(tick, (int, float)) and not isinstance(tick, bool) and tick > 0):
                raise ValueError(f"liquidations_by_level: tick size must be positive, "
                                 f"got {tick!r}")
            self._liq = Liquidations(self, float(tick), level.get("rows", 1))
            for name in liq:
                impl[name] = LiqView(self._liq, name.endswith("level"))
        else:
            self._liq = None
        return impl

    # -- feeding

    @property
    def n_bars(self) -> int:
        return len(self._bars)

    @property
    def n_closed(self) -> int:
        return self._n_closed

    def apply(self, update) -> ChangeSet:
        """Follow one ``BarUpdate`` of the stream's aggregator: its trades (none older than the
        last ones fed), bars and cells, and its liquidations (ignored unless a liquidation study
        was chosen). Returns ``{output: Changes}`` for ``bars``, ``footprint`` and each study
        (built when read, valid until the next ``apply``); :attr:`last_update` says which bars
        were touched."""
        for attr in ("closed", "current", "closed_footprint", "current_footprint", "trades",
                     "liquidations"):
            if not hasattr(update, attr):
                raise ValueError(f"LiveOrderFlow.apply: expected a tradeflow.model.BarUpdate "
                                 f"(as BarAggregator.update gives), got {type(update).__name__}")
        trades, liquidations = update.trades, update.liquidations
        liqs = (self._liq.check(liquidations)
                if self._liq is not None and liquidations is not None and len(liquidations)
                else None)
        arrays = self._check_trades(trades) if trades is not None and len(trades) else None
        self._trim()
        self._cache.clear()
        first = len(self._bars)
        if arrays is not None:
            touch = self._ingest(update, arrays)
            self._last_ts = int(arrays["t"][-1])
            first = touch.j0
            for name, study in self._impl.items():
                if not name.startswith("liquidations") and name not in ("big_trades", "sweeps"):
                    study.update(touch)
            for name in ("big_trades", "sweeps"):
                if name in self._impl:
                    self._impl[name].update(arrays)
        else:
            for name, study in self._impl.items():
                if not name.startswith("liquidations"):
                    study.idle()
        if self._liq is not None:
            self._liq.update(first if arrays is not None else None, liqs)
        self._changed_bars = slice(first, len(self._bars))
        self.last_update = LiveUpdate(first, len(self._bars), self._n_closed,
                                      update if arrays is not None else None)
        self._applied += 1
        applied = self._applied
        return ChangeSet({name: (lambda name=name: Changes(self.changes(name), self._size(name)))
                          for name in ("bars", "footprint") + self.studies},
                         stale=lambda: self._applied != applied)

    def _trim(self) -> None:
        """With ``keep``, drop the rows of closed bars before the last ``keep`` (the changes of
        the last update, read lazily, are of bars after them, so they stay valid until now)."""
        if self.keep is None:
            return
        bar = self._n_closed - self.keep
        if bar <= self._bars.base:
            return
        cell = (int(self._bars.at("cell_start", bar)) if bar < len(self._bars)
                else len(self._cells))
        for study in self._impl.values():
            trim = getattr(study, "trim", None)  # (studies not kept per bar have none)
            if trim is not None:
                trim(bar)
        self._bars.drop_before(bar)
        self._cells.drop_before(cell)

    def _size(self, name: str) -> int:
        """The number of rows of ``result(name)`` now."""
        if name == "bars":
            return len(self._bars)
        if name == "footprint":
            return len(self._cells)
        return self._impl[name].size()

    def _check_trades(self, trades: pd.DataFrame) -> dict:
        what = "LiveOrderFlow.apply"
        t, price, size, side = trade_arrays(trades, what)
        if len(t) > 1 and np.any(np.diff(t) < 0):
            raise ValueError(f"{what}: trades must be in time order within a batch; sort them "
                             f"first (frame.sort_values('ts', kind='stable'))")
        if self._last_ts is not None and t[0] < self._last_ts:
            raise ValueError(f"{what}: trades must arrive in time order; this batch starts at "
                             f"{ns_to_utc(t[0])}, before the last trade already "
                             f"fed ({ns_to_utc(self._last_ts)})")
        return {"t": t, "price": price, "size": size, "side": side}

    def _ingest(self, up, tr: dict) -> Touch:
        """Write the bars and cells of the aggregator's answer from the first touched bar on,
        with their core values; returns what was touched."""
        j0 = self._n_closed
        bars = frame_columns([up.closed, up.current], ("open", "high", "low", "close", "volume",
                                                       "ask_volume", "bid_volume"), ("trades",))
        cells = frame_columns([up.closed_footprint, up.current_footprint],
                               ("volume", "ask_volume", "bid_volume"), ("tick", "trades"))
        nb = len(bars["ts"])
        counts = bars["trades"].copy()
        if len(self._bars) > j0 and nb:
            counts[0] -= self._bars.at("trades", j0)  # the forming bar's earlier trades
        if counts.sum() != len(tr["t"]) or (counts < 0).any():
            raise ValueError("LiveOrderFlow.apply: the update's bars do not hold exactly its "
                             "trades (with the forming bar's earlier ones): an update of the "
                             "stream was missed or given twice; follow one aggregator from its "
                             "first update")
        # cells come ordered by bar then tick: the running count of their trades says whose
        cells["bar"] = j0 + np.searchsorted(np.cumsum(bars["trades"]), np.cumsum(cells["trades"]))
        carry = self._carry if len(self._bars) > j0 else None
        signed = np.where(tr["side"] > 0, tr["size"], np.where(tr["side"] < 0, -tr["size"], 0.0))
        bars["dmax"], bars["dmin"], run_end = _extremes(signed, counts, carry)
        pick, s, e = group_pocs(cells["bar"], cells["tick"], cells["volume"])
        poc_bar = cells["bar"][s] if len(s) else np.empty(0, "int64")
        local = poc_bar - j0
        for col, src in (("poc", pick), ("lo", s), ("hi", e)):
            bars[col] = np.zeros(nb, "int64")
            bars[col][local] = cells["tick"][src]
        bars["ncells"] = np.zeros(nb, "int64")
        bars["ncells"][local] = e - s + 1
        cell0 = self._bars.at("cell_start", j0) if len(self._bars) > j0 else len(self._cells)
        bars["cell_start"] = cell0 + np.searchsorted(cells["bar"], np.arange(j0, j0 + nb))
        self._bars.cut(j0)
        self._bars.append(bars)
        self._cells.cut(cell0)
        self._cells.append(cells)
        self._n_closed = j0 + len(up.closed)
        self._carry = ((run_end[-1], bars["dmax"][-1], bars["dmin"][-1])
                       if len(up.current) else None)
        return Touch(j0, j0 + nb, self._n_closed, bars, cells, tr, poc_bar, pick)

    # -- reading

    def result(self, name: str):
        """The current full result of study ``name`` (as its batch function gives it for all
        trades so far: a frame, or for ``cvd`` a Series), built on request and cached until the
        next update."""
        key = ("result", name)
        if key not in self._cache:
            self._cache[key] = self._read(name, full=True)
        return self._cache[key]

    def changes(self, name: str):
        """The rows of ``result(name)`` the last update wrote (those of the bars it touched, plus
        naked POCs it covered and bars late liquidations fell in), indexed by their position in
        ``result(name)``."""
        return self._read(name, full=False)

    def _read(self, name: str, full: bool):
        if name == "bars":
            return self._bars_frame(self._bars.positions() if full else self._changed_bars)
        if name == "footprint":
            return self._cells_frame(full)
        if name not in self._impl:
            raise ValueError(f"LiveOrderFlow: no study {name!r}; computed here: "
                             f"{', '.join(('bars', 'footprint') + self.studies)}")
        study = self._impl[name]
        return study.result() if full else study.changes()

    def _bars_frame(self, rows) -> pd.DataFrame:
        b = self._bars.take(rows)
        frame = rows_frame({"ts": ns_to_utc(b["ts"]), **{c: b[c] for c in BAR_COLUMNS[1:8]},
                            "delta": b["ask_volume"] - b["bid_volume"], "trades": b["trades"],
                            "open_interest": np.full(len(b["ts"]), np.nan)},
                           result_index(rows, len(self._bars)))
        return frame[list(BAR_COLUMNS)]

    def _cells_frame(self, full: bool) -> pd.DataFrame:
        j0 = self._changed_bars.start
        start = (self._cells.base if full else len(self._cells) if j0 >= len(self._bars)
                 else int(self._bars.at("cell_start", j0)))
        c = self._cells.take(slice(start, None))
        return rows_frame({"ts": ns_to_utc(self._bars.at("ts", c["bar"])), "tick": c["tick"],
                           "volume": c["volume"], "ask_volume": c["ask_volume"],
                           "bid_volume": c["bid_volume"], "trades": c["trades"]},
                          pd.RangeIndex(start, len(self._cells)))

    def batch(self, trades: pd.DataFrame, bars: pd.DataFrame, cells: pd.DataFrame,
              liquidations: pd.DataFrame | None = None) -> dict:
        """The batch functions with this object's parameters over ``trades`` and the ``bars``/
        ``cells`` built from them (``tradeflow.bars.build``): what ``result`` must equal. For
        tests and benchmarks."""
        fns = {"footprint_metrics": lambda: footprint_metrics(
                   bars, trades, cells, **self._params["footprint_metrics"]),
               "cvd": lambda: cvd(bars, **self._params["cvd"]),
               "cvd_candles": lambda: cvd_candles(bars, trades,
                                                            **self._params["cvd_candles"]),
               "imbalances": lambda: imbalances(cells, **self._params["imbalances"]),
               "stacked_imbalances": lambda: stacked_imbalances(
                   cells, **self._params["stacked_imbalances"]),
               "unfinished_auctions": lambda: unfinished_auctions(
                   cells, **self._params["unfinished_auctions"]),
               "big_trades": lambda: big_trades(trades, **self._params["big_trades"]),
               "zero_prints": lambda: zero_prints(cells, bars,
                                                         **self._params["zero_prints"]),
               "naked_pocs": lambda: naked_pocs(cells, **self._params["naked_pocs"]),
               "sweeps": lambda: sweeps(trades, **self._params["sweeps"]),
               "absorption": lambda: absorption(cells, bars,
                                                           **self._params["absorption"])}
        liqs = liquidations if liquidations is not None else pd.DataFrame(
            {"ts": pd.DatetimeIndex([], tz="UTC"), "side": np.empty(0, "int8"),
             "price": np.empty(0), "size": np.empty(0)})
        fns["liquidations_by_bar"] = lambda: liquidations_by_bar(liqs, bars)
        fns["liquidations_by_level"] = lambda: liquidations_by_level(
            liqs, bars, **self._params["liquidations_by_level"])
        return {name: fns[name]() for name in self.studies}
