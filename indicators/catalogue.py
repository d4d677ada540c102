"""The study catalogue: every study described once, for the command line, the pipeline and the
pickers and settings panels of the dashboards.

A :class:`StudyInfo` says what a study is -- name, group, title, what it reads (``bars``,
``footprint`` cells, ``trades``, ``depth``, ``liquidations``), its typed parameters
(:class:`indicators.registry.Param`: type, default, range), the columns of its frame, where it
draws (``overlay`` on the price, its own ``pane``, a price-aligned ``profile``), the reference
levels of its pane and any display shift (Ichimoku's spans) -- and how to compute it:

* ``batch(data, **params)``: the study's frame over ``data``, any object with the attributes the
  study reads plus ``instrument`` (a ``tradeflow.model.Instrument``) and ``spec`` (the bars'
  spec; :class:`StudyData` is one). Prices are given as prices next to their tick keys. This
  frame is what ``tradeflow study`` prints.
* ``live(instrument, **params)``: a follower of the live protocol (:mod:`indicators.live_protocol`)
  whose ``apply(update)`` answers ``{name: Changes}``, the rows of that same frame the update
  wrote; followed from a stream's first update, a chart holding those rows holds ``batch`` over
  everything fed. Indicators take ``history=`` (the closed bars before the stream). ``stream``
  says what it follows: the ``BarUpdate`` s of the symbol's aggregator (of ``spec`` when given),
  or for the heatmap the ``DepthUpdate`` s of its book. ``follower_key(params)`` is the key a
  ``Fanout`` shares it by.

:data:`CATALOGUE` holds every indicator of :data:`indicators.registry.REGISTRY` (all of TA-Lib,
the extras, ``@indicator`` functions, formulas made indicators), read from it at each lookup so
indicators registered later are in, and the order-flow and profile studies below. Names are
case-insensitive and unique across both. ``check_params`` is the one check of a study's settings
(text from a command line or a query string too).

Imports numpy, pandas, ``tradeflow.model`` and the studies only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from tradeflow.model import BarSpec, Instrument

from .live import LiveIndicators
from .live_protocol import Changes, ChangeSet, Follower, follower_key
from .orderflow import (LiveHeatmap, LiveOrderFlow, VwapState, absorption, big_trades, cvd, cvd_candles,
                        footprint_metrics, heatmap_grid, imbalances, liquidations_by_bar,
                        liquidations_by_level,
                        naked_pocs, session_vwap, stacked_imbalances, sweeps,
                        unfinished_auctions, zero_prints)
from .profile import (LiveTPO, LiveVolumeProfile, developing_profile, tpo_profiles,
                      volume_nodes, volume_profile)
from .registry import REGISTRY, Indicator, IndicatorError, Param, Registry

__all__ = ["READS", "DRAWS", "StudyInfo", "StudyData", "Catalogue", "CATALOGUE", "StudyFollower"]

READS = ("bars", "footprint", "trades", "depth", "liquidations")
DRAWS = ("overlay", "pane", "profile")


@dataclass
class StudyData:
    """What a study reads, as frames in the ``tradeflow.model`` layouts (``footprint``: the
    cells of the bars). ``spec``: the bars' spec (a ``BarSpec`` or its text)."""

    instrument: Instrument
    bars: pd.DataFrame | None = None
    footprint: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    depth: pd.DataFrame | None = None
    liquidations: pd.DataFrame | None = None
    spec: Any = "1m"


@dataclass(frozen=True, eq=False)
class StudyInfo:
    """One study of the catalogue (see the module's docstring). ``spec``: the bars it always
    reads, whatever the chart's (the TPO reads 1-minute bars); ``shift``: display shift of
    columns in bars (``{"senkou_a": "displacement - 1"}``), applied by the chart; ``stream``:
    the updates its live form follows, ``"bars"`` (a ``BarUpdate`` of the symbol's aggregator)
    or ``"depth"`` (a ``DepthUpdate`` of its book)."""

    name: str
    group: str
    title: str
    reads: tuple[str, ...]
    params: tuple[Param, ...]
    outputs: tuple[str, ...]
    draws: str
    run: Callable[[Any, dict], pd.DataFrame] = field(repr=False, compare=False)
    follow: Callable[[Instrument, dict, Any], Follower] | None = field(
        default=None, repr=False, compare=False)
    levels: tuple[float, ...] = ()
    shift: Mapping[str, str] = field(default_factory=dict)
    spec: str | None = None
    stream: str = "bars"
    source: str = "orderflow"

    def __post_init__(self):
        bad = [r for r in self.reads if r not in READS]
        if bad or self.draws not in DRAWS or self.stream not in ("bars", "depth"):
            raise IndicatorError(f"{self.name}: reads must be among {', '.join(READS)} and draws "
                                 f"one of {', '.join(DRAWS)}; got {self.reads}, {self.draws!r}")

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    @property
    def has_live(self) -> bool:
        return self.follow is not None

    def check_params(self, values: Mapping[str, Any] | None = None, *, text: bool = False
                     ) -> dict[str, Any]:
        """``values`` validated, in the parameters' types, with the defaults of the others; an
        :class:`IndicatorError` of one line names the study, the parameter and what it takes.
        ``text=True``: the values are text (``"21"``, ``"true"``, ``"EMA"``) to convert."""
        known = {p.name: p for p in self.params}
        values = dict(values or {})
        for name in values:
            if name not in known:
                raise IndicatorError(f"{self.name}: unknown parameter {name!r}; valid parameters:"
                                     f" {', '.join(known) or 'none'}")
        return {name: (p.parse(values[name], self.name) if text else
                       p.validate(values[name], self.name)) if name in values else p.default
                for name, p in known.items()}

    def follower_key(self, params: Mapping[str, Any] | None = None) -> tuple:
        """The key a stream's ``Fanout`` keeps this study's follower by: its name and its checked
        settings, so that settings written differently (defaults left out or given, ``3`` or
        ``3.0``, ``"true"`` or ``True`` as text) share one follower."""
        return follower_key(self.name, self.check_params(params))

    def label(self, params: Mapping[str, Any] | None = None) -> str:
        """The study with the settings that differ from its defaults, unique per settings:
        ``EMA``, ``EMA 20`` (only the first parameter differs: its value), else
        ``MACD(fastperiod=8, signalperiod=5)``. What a chart's legend and the hub's messages
        call it, so one chart can show the same study with different settings."""
        checked = self.check_params(params)
        changed = {k: v for k, v in checked.items() if v != self.defaults[k]}
        if not changed:
            return self.name
        if list(changed) == [self.params[0].name]:
            return f"{self.name} {_setting(changed[self.params[0].name])}"
        return f"{self.name}({', '.join(f'{k}={_setting(v)}' for k, v in changed.items())})"

    def batch(self, data, **params) -> pd.DataFrame:
        """The study's frame over ``data`` (see the module's docstring), index 0..n-1."""
        return self.run(data, self.check_params(params)).reset_index(drop=True)

    def live(self, instrument: Instrument, *, history: pd.DataFrame | None = None,
             **params) -> Follower:
        """A follower of the stream of ``instrument`` answering ``{self.name: Changes}``."""
        if self.follow is None:
            raise IndicatorError(f"{self.name}: has no live form yet; compute it with batch()")
        if not isinstance(instrument, Instrument):
            raise IndicatorError(f"{self.name}: live() needs the stream's "
                                 f"tradeflow.model.Instrument, got {type(instrument).__name__}")
        return self.follow(instrument, self.check_params(params), history)

    def to_dict(self) -> dict:
        """Plain metadata (no functions), for a picker or JSON."""
        return {"name": self.name, "group": self.group, "title": self.title,
                "reads": list(self.reads), "params": [p.to_dict() for p in self.params],
                "outputs": list(self.outputs), "draws": self.draws, "levels": list(self.levels),
                "shift": dict(self.shift), "spec": self.spec, "live": self.has_live,
                "stream": self.stream,
                "source": self.source}


def _setting(value: Any) -> str:
    """A setting as a label shows it: ``20``, ``2.5``, ``True``, ``EMA``."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------------------------
# live forms


class StudyFollower:
    """The live form of a catalogue study: follows a live form of :mod:`indicators` (``inner``)
    and answers ``{name: Changes}`` with rows in the study's frame layout (``read`` makes them
    from the inner follower's changes)."""

    def __init__(self, name: str, inner, read: Callable[[Mapping[str, Changes]], Changes]):
        self.name, self.inner, self._read = name, inner, read
        self._applied = 0

    def apply(self, update) -> ChangeSet:
        changes = self.inner.apply(update)
        self._applied += 1
        applied = self._applied
        return ChangeSet({self.name: lambda: self._read(changes)},
                         stale=lambda: self._applied != applied)


def _presented(output: str, present: Callable[[pd.DataFrame, Mapping], pd.DataFrame]):
    """``read`` of a follower whose output ``output`` has rows that ``present`` (row by row)
    turns into the study's layout; ``present`` also sees the whole change set."""
    def read(changes):
        ch = changes[output]
        return Changes(present(ch.rows, changes), ch.length)
    return read


class _Whole:
    """A follower answering its whole result at each update (a profile: any row may change)."""

    def __init__(self, inner, result: Callable[[], pd.DataFrame]):
        self.inner, self.result = inner, result

    def apply(self, update) -> ChangeSet:
        self.inner.update(update.closed_footprint, update.current_footprint)
        return ChangeSet({"whole": lambda: _all(self.result())})


def _all(frame: pd.DataFrame) -> Changes:
    return Changes(frame.reset_index(drop=True), len(frame))


class _Days:
    """A live TPO of every trading day (``LiveTPO`` keeps the latest day): the bars of each update
    are given day by day, and a day's levels are kept once a later day begins."""

    def __init__(self, tpo: LiveTPO, present: Callable[[object, pd.Timestamp], pd.DataFrame]):
        self.tpo, self.present = tpo, present
        self.done: list[pd.DataFrame] = []  # levels of finished days, presented
        self._dates: set = set()
        self._rows = 0  # rows of the finished days

    def _finish_day_before(self, ns: int) -> None:
        date = self.tpo.date
        day = self.tpo.session.trading_date(pd.DatetimeIndex([pd.Timestamp(ns, tz="UTC")]))[0]
        if date is not None and day != date and date not in self._dates:
            levels = self._levels()
            if levels is not None:
                self.done.append(levels)
                self._rows += len(levels)
            self._dates.add(date)

    def _levels(self) -> pd.DataFrame | None:
        try:
            return self.present(self.tpo.profile(), self.tpo.date)
        except ValueError:  # no bar in the session's hours yet
            return None

    def apply(self, update) -> ChangeSet:
        start, first_new = self._rows, len(self.done)
        closed = update.closed
        if len(closed):
            ns = closed["ts"].to_numpy(dtype="datetime64[ns]").view("int64")
            cut = np.flatnonzero(np.diff(self.tpo.session.trading_date(
                pd.DatetimeIndex(closed["ts"])).asi8)) + 1
            for part in np.split(np.arange(len(closed)), cut):
                self._finish_day_before(int(ns[part[0]]))
                self.tpo.update(closed.iloc[part], None)
        current = update.current
        if current is not None and len(current):
            self._finish_day_before(int(pd.Timestamp(current["ts"].iloc[0]).value))
        self.tpo.update(None, current)
        now = self._levels() if self.tpo.date not in self._dates else None
        parts = self.done[first_new:] + ([now] if now is not None else [])

        def rows():
            if not parts:
                return Changes(self.done[-1].iloc[:0] if self.done else pd.DataFrame(), start)
            frame = pd.concat(parts, ignore_index=True)
            frame.index = pd.RangeIndex(start, start + len(frame))
            return Changes(frame, start + len(frame))
        return ChangeSet({"tpo": rows})


class _DaySummaries:
    """One summary row per trading day, each the day's last developing row (``summary`` makes
    them from developing rows), kept as updates come (not when their changes are read)."""

    def __init__(self, profile: LiveVolumeProfile, summary: Callable[[pd.DataFrame], pd.DataFrame]):
        self.profile, self.summary = profile, summary
        self.days: list = []

    def apply(self, update) -> ChangeSet:
        rows = self.summary(self.profile.apply(update)["developing"].rows)
        start = len(self.days)
        for row in rows.itertuples(index=False):
            while self.days and self.days[-1].date >= row.date:  # rewritten from this day on
                self.days.pop()
                start = min(start, len(self.days))
            self.days.append(row)
        frame = pd.DataFrame(self.days[start:], columns=rows.columns)
        frame.index = pd.RangeIndex(start, len(self.days))
        changes = Changes(frame, len(self.days))
        return ChangeSet({"days": lambda: changes})


# --------------------------------------------------------------------------------------------
# the order-flow and profile studies


def _by(data) -> str:
    """How trades are placed in bars: by time for time bars, else by count."""
    return "time" if BarSpec.parse(str(data.spec)).is_time else "count"


def _priced(frame: pd.DataFrame, instrument: Instrument, tick="tick", price="price"):
    """``frame`` with a ``price`` column (the tick key's price) after the ``tick`` column."""
    frame = frame.copy()
    frame.insert(frame.columns.get_loc(tick) + 1, price, instrument.to_price(frame[tick]))
    return frame


def _prices_of(frame: pd.DataFrame, instrument: Instrument, columns) -> pd.DataFrame:
    """``columns`` of tick keys (NaN where unknown) turned into prices in place."""
    frame = frame.copy()
    for col in columns:
        known = frame[col].notna().to_numpy()
        ticks = frame[col].fillna(0).to_numpy(dtype="int64")
        frame[col] = np.where(known, instrument.to_price(ticks), np.nan)
    return frame


ROWS = Param("rows", 1, min=1, max=100_000, description="Ticks per price row")
RATIO = Param("ratio", 3.0, min=1.0001, max=1000.0,
              description="Imbalance ratio (3 = 300%), above 1")
MIN_VOLUME = Param("min_volume", 0.0, min=0.0, max=1e15,
                   description="Least volume of an imbalanced level")
EDGES = Param("compare_edges", False,
              description="Also compare the lowest bid with the level below the lowest ask")
RESET = Param("reset", "session", choices=("session", "none"),
              description="Restart CVD at each trading day, or never")
VALUE_AREA = Param("value_area", 0.70, min=0.01, max=1.0, description="Value area share")


#: closed bars an order-flow study's live form holds: its followers answer changes (a chart
#: holds the rows), so older bars' cells and rows are dropped as the day goes on
FLOW_KEEP = 1


@dataclass(frozen=True)
class _Flow:
    """An order-flow study computed by ``LiveOrderFlow`` live: its batch function ``fn`` is called
    with the data ``args`` and keyword arguments ``kwargs(params, instrument)``, the same the live
    study ``live_name`` is given; ``present`` turns the function's rows into the frame's."""

    live_name: str
    fn: Callable
    args: Callable
    kwargs: Callable[[dict, Instrument], dict]
    present: Callable[[pd.DataFrame, Instrument], pd.DataFrame] = lambda rows, inst: rows

    def run(self, data, p: dict) -> pd.DataFrame:
        return self.present(self.fn(*self.args(data), **self.kwargs(p, data.instrument)),
                            data.instrument)


def _flow(name, group, title, reads, params, outputs, draws, flow: _Flow, levels=()):
    """A study computed by ``flow``: in batch by its function, live by ``LiveOrderFlow``."""
    def follow(instrument, p, history):
        live = LiveOrderFlow(instrument, studies=[flow.live_name], keep=FLOW_KEEP,
                             **{flow.live_name: flow.kwargs(p, instrument)})
        return StudyFollower(name, live, _presented(
            flow.live_name, lambda rows, changes: flow.present(rows, instrument)))
    return StudyInfo(name, group, title, reads, params, outputs, draws, flow.run, follow,
                     levels=levels)


def _cvd_present(rows, changes) -> pd.DataFrame:
    ts = changes["bars"].rows["ts"].reindex(rows.index)
    return pd.DataFrame({"ts": ts, "cvd": rows.to_numpy()}, index=rows.index)


def _cvd_study() -> StudyInfo:
    def run(data, p):
        return pd.DataFrame({"ts": data.bars["ts"].to_numpy(), "cvd": cvd(
            data.bars, data.instrument.session, p["reset"]).to_numpy()})

    def follow(instrument, p, history):
        flow = LiveOrderFlow(instrument, studies=["cvd"], keep=FLOW_KEEP,
                             cvd={"session": instrument.session, "reset": p["reset"]})
        return StudyFollower("cvd", flow, _presented("cvd", _cvd_present))
    return StudyInfo("cvd", "Order Flow", "Cumulative volume delta", ("bars",), (RESET,),
                     ("ts", "cvd"), "pane", run, follow, levels=(0.0,))


def _session(p, inst):
    return {"session": inst.session, "reset": p["reset"]}


def _tick(p, inst):
    return {"tick_size": inst.tick_size, "rows": p["rows"]}


_IMB = ("ts", "tick", "price", "volume", "ask_volume", "bid_volume", "bid_below", "ask_above",
        "buy", "sell")


def _flows() -> list[StudyInfo]:
    return [
        _flow("footprint_metrics", "Order Flow", "Delta, delta %, running delta extremes, POC",
              ("bars", "trades", "footprint"), (ROWS,),
              ("ts", "volume", "trades", "delta", "delta_pct", "delta_max", "delta_min", "poc",
               "poc_price"), "pane",
              _Flow("footprint_metrics", footprint_metrics,
                    lambda d: (d.bars, d.trades, d.footprint),
                    lambda p, i: {"rows": p["rows"]},
                    lambda rows, i: _priced(rows, i, "poc", "poc_price"))),
        _cvd_study(),
        _flow("cvd_candles", "Order Flow", "CVD candles", ("bars", "trades"), (RESET,),
              ("ts", "open", "high", "low", "close"), "pane",
              _Flow("cvd_candles", cvd_candles, lambda d: (d.bars, d.trades), _session),
              levels=(0.0,)),
        _flow("imbalances", "Order Flow", "Diagonal bid/ask imbalances", ("footprint",),
              (RATIO, MIN_VOLUME, ROWS, EDGES), _IMB, "overlay",
              _Flow("imbalances", imbalances, lambda d: (d.footprint,),
                    lambda p, i: {k: p[k] for k in ("ratio", "min_volume", "rows",
                                                    "compare_edges")},
                    lambda rows, i: _priced(rows, i))),
        _flow("stacked_imbalances", "Order Flow", "Stacked imbalance zones", ("footprint",),
              (Param("min_rows", 3, min=2, max=1000, description="Consecutive rows"), RATIO,
               MIN_VOLUME, ROWS, EDGES),
              ("ts", "side", "tick_low", "price_low", "tick_high", "price_high", "rows"),
              "overlay",
              _Flow("stacked_imbalances", stacked_imbalances, lambda d: (d.footprint,),
                    lambda p, i: {k: p[k] for k in ("min_rows", "ratio", "min_volume", "rows",
                                                    "compare_edges")},
                    lambda rows, i: _priced(_priced(rows, i, "tick_low", "price_low"), i,
                                            "tick_high", "price_high"))),
        _flow("unfinished_auctions", "Order Flow", "Unfinished auctions at bar extremes",
              ("footprint",), (ROWS, MIN_VOLUME),
              ("ts", "high_tick", "low_tick", "unfinished_high", "unfinished_low"), "overlay",
              _Flow("unfinished_auctions", unfinished_auctions, lambda d: (d.footprint,),
                    lambda p, i: {"rows": p["rows"], "min_volume": p["min_volume"]})),
        _flow("big_trades", "Order Flow", "Big trades (same-time prints of a side summed)",
              ("trades",),
              (Param("min_size", 50.0, min=1e-12, max=1e15,
                     description="Least size of a big trade"),
               Param("aggregate_same_ts", True,
                     description="Sum the prints of one side at one time into one trade")),
              ("ts", "side", "price", "size", "prints", "price_low", "price_high"), "overlay",
              _Flow("big_trades", big_trades, lambda d: (d.trades,),
                    lambda p, i: {"min_size": p["min_size"],
                                  "aggregate_same_ts": p["aggregate_same_ts"]})),
        _flow("zero_prints", "Order Flow", "Levels in a bar's range with no bid or ask volume",
              ("footprint", "bars"), (ROWS,), ("ts", "tick", "price", "missing_side"), "overlay",
              _Flow("zero_prints", zero_prints, lambda d: (d.footprint, d.bars), _tick,
                    lambda rows, i: _priced(rows, i))),
        _flow("naked_pocs", "Order Flow", "Bar and session POCs not revisited since",
              ("footprint",), (ROWS,),
              ("ts", "kind", "poc", "poc_price", "naked_until"), "overlay",
              _Flow("naked_pocs", naked_pocs, lambda d: (d.footprint,),
                    lambda p, i: {"session": i.session, "rows": p["rows"]},
                    lambda rows, i: _priced(rows, i, "poc", "poc_price"))),
        _flow("sweeps", "Order Flow", "Sweeps: one side clearing several levels fast",
              ("trades",),
              (Param("min_levels", 3, min=2, max=1000, description="Distinct price levels"),
               Param("max_gap_ms", 250.0, min=0.001, max=60_000.0,
                     description="Most time between the trades of a sweep, ms"),
               Param("min_size", 0.0, min=0.0, max=1e15, description="Least total size")),
              ("ts_start", "ts_end", "side", "tick_start", "tick_end", "levels", "size",
               "trades"), "overlay",
              _Flow("sweeps", sweeps, lambda d: (d.trades,),
                    lambda p, i: {"tick_size": i.tick_size, "min_levels": p["min_levels"],
                                  "max_gap": pd.Timedelta(milliseconds=p["max_gap_ms"]),
                                  "min_size": p["min_size"]})),
        _flow("absorption", "Order Flow", "Absorption: heavy volume at a level that held",
              ("footprint", "bars"),
              (Param("min_volume", 100.0, min=0.0, max=1e15,
                     description="Least aggressor volume"),
               Param("max_progress_ticks", 1, min=0, max=10_000,
                     description="Most ticks the close got past the level"), ROWS,
               Param("side", "both", choices=("both", "bid", "ask"),
                     description="Both kinds, or passive buyers (bid) or sellers (ask) only")),
              ("ts", "tick", "price", "side", "volume", "aggressor_volume", "progress_ticks"),
              "overlay",
              _Flow("absorption", absorption, lambda d: (d.footprint, d.bars),
                    lambda p, i: {"tick_size": i.tick_size, "min_volume": p["min_volume"],
                                  "max_progress_ticks": p["max_progress_ticks"],
                                  "side": None if p["side"] == "both" else p["side"],
                                  "rows": p["rows"]},
                    lambda rows, i: _priced(rows, i))),
        _flow("liquidations", "Order Flow", "Liquidations per bar and price level",
              ("liquidations", "bars"), (ROWS,),
              ("ts", "tick", "price", "long_size", "short_size", "count"), "overlay",
              _Flow("liquidations_by_level", liquidations_by_level,
                    lambda d: (d.liquidations, d.bars), _tick,
                    lambda rows, i: _priced(rows, i))),
        _flow("liquidations_by_bar", "Order Flow", "Liquidations per bar",
              ("liquidations", "bars"), (), ("ts", "long_size", "short_size", "count"), "pane",
              _Flow("liquidations_by_bar", liquidations_by_bar,
                    lambda d: (d.liquidations, d.bars), lambda p, i: {})),
        _vwap_study(), _heatmap_study(), _tpo_study(), *_profile_studies(),
    ]


def _vwap_study() -> StudyInfo:
    def follow(instrument, p, history):
        return StudyFollower("session_vwap", VwapState(session=instrument.session),
                             _presented("vwap", lambda rows, changes: rows))
    return StudyInfo(
        "session_vwap", "Order Flow", "Session VWAP with 1, 2 and 3 standard-deviation bands",
        ("bars",), (), ("ts", "vwap", "upper_1", "lower_1", "upper_2", "lower_2", "upper_3",
                        "lower_3"), "overlay",
        lambda d, p: session_vwap(d.bars, d.instrument.session), follow)


def _heatmap_study() -> StudyInfo:
    def args(p):
        return pd.Timedelta(seconds=p["interval_seconds"]), p["rows"], p["how"]

    def run(d, p):
        return _priced(heatmap_grid(d.depth, *args(p)), d.instrument)

    def follow(instrument, p, history):
        return StudyFollower("heatmap", LiveHeatmap(instrument.tick_size, *args(p)), _presented(
            "heatmap", lambda rows, changes: _priced(rows, instrument)))
    return StudyInfo(
        "heatmap", "Order Book", "Resting size per time bucket and price (depth heatmap)",
        ("depth",),
        (Param("interval_seconds", 1.0, min=0.001, max=86_400.0,
               description="Seconds per time bucket"), ROWS,
         Param("how", "last", choices=("last", "mean", "max"),
               description="Size of a bucket: its last snapshot, mean or max")),
        ("ts", "tick", "price", "bid_size", "ask_size"), "overlay", run, follow, stream="depth")


_TPO_PARAMS = (Param("period_minutes", 30, min=1, max=1440, description="Minutes per letter"),
               ROWS, VALUE_AREA,
               Param("ib_periods", 2, min=1, max=48, description="Periods of the initial balance"),
               Param("hours", "regular", choices=("regular", "all"),
                     description="Regular trading hours only, or the whole trading day"))
_TPO_COLUMNS = ("date", "price", "tick", "tpo_count", "letters", "single_print", "poc",
                "value_area", "initial_balance")


def _tpo_present(profile, date, instrument: Instrument) -> pd.DataFrame:
    """A day's ``TPOProfile`` as rows: its levels with the date, prices, and whether each row is
    in the initial balance (so a pane drawn from the rows alone can mark it)."""
    levels = profile.levels.assign(date=date)
    levels.insert(1, "price", instrument.to_price(levels["tick"]))
    tick = levels["tick"].to_numpy()
    levels["initial_balance"] = ((tick >= profile.ib_low) & (tick <= profile.ib_high)
                                 if profile.ib_high is not None else np.zeros(len(tick), bool))
    return levels[["date", "price"] + [c for c in levels.columns if c not in ("date", "price")]]


def _tpo_args(p: dict) -> dict:
    return {"period": pd.Timedelta(minutes=p["period_minutes"]), "rows": p["rows"],
            "value_area": p["value_area"], "ib_periods": p["ib_periods"],
            "regular_only": p["hours"] == "regular"}


def _tpo_study() -> StudyInfo:
    def run(d, p):
        inst = d.instrument
        days = tpo_profiles(d.bars, inst.tick_size, inst.session, **_tpo_args(p))
        return pd.concat([_tpo_present(prof, day, inst) for day, prof in days.items()],
                         ignore_index=True)

    def follow(instrument, p, history):
        days = _Days(LiveTPO(instrument.tick_size, instrument.session, **_tpo_args(p)),
                     lambda profile, date: _tpo_present(profile, date, instrument))
        return StudyFollower("tpo", days, lambda changes: changes["tpo"])
    return StudyInfo("tpo", "Profile", "Market profile (TPO) of each trading day, from 1m bars",
                     ("bars",), _TPO_PARAMS, _TPO_COLUMNS, "profile", run, follow, spec="1m")


_LEVELS = ("price", "volume", "ask_volume", "bid_volume", "trades", "poc", "value_area", "tick")


def _levels_present(levels: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    levels = levels.copy()
    levels.insert(0, "price", instrument.to_price(levels["tick"]))
    return levels[list(_LEVELS)]


def _profile_studies() -> list[StudyInfo]:
    def whole(name, result):
        """A study following a range profile (no session) and answering ``result`` whole."""
        def follow(inst, p, history):
            live = LiveVolumeProfile(None, p["rows"], p["value_area"])

            def frame():
                try:
                    prof = live.profile()
                except ValueError:  # no cells yet
                    return pd.DataFrame(columns=list(outputs[name]))
                return result(prof, p, inst)
            return StudyFollower(name, _Whole(live, frame), lambda changes: changes["whole"])
        return follow

    outputs = {"volume_profile": _LEVELS,
               "volume_nodes": ("tick", "price", "kind", "volume", "smoothed")}
    nodes_params = (ROWS, VALUE_AREA, Param("smooth", 5, min=1, max=1001, description="Smoothing"),
                    Param("span", 3, min=1, max=1000, description="Levels each side"))

    def nodes(prof, p, inst):
        return _priced(volume_nodes(prof, p["smooth"], p["span"]), inst)

    def developing_run(d, p):
        return _prices_of(developing_profile(d.footprint, d.instrument.session, p["rows"],
                                             p["value_area"]), d.instrument, ("poc", "vah", "val"))

    def developing_follow(inst, p, history):
        live = LiveVolumeProfile(inst.session, p["rows"], p["value_area"])
        return StudyFollower("developing_profile", live, _presented(
            "developing", lambda rows, changes: _prices_of(rows, inst, ("poc", "vah", "val"))))

    return [
        StudyInfo("volume_profile", "Profile", "Volume profile of the range (POC, value area)",
                  ("footprint",), (ROWS, VALUE_AREA), _LEVELS, "profile",
                  lambda d, p: _levels_present(volume_profile(d.footprint, p["rows"],
                                                              p["value_area"]).levels,
                                               d.instrument),
                  whole("volume_profile", lambda prof, p, inst: _levels_present(prof.levels,
                                                                                inst))),
        StudyInfo("developing_profile", "Profile",
                  "Developing POC and value area: per bar, those of the trading day so far",
                  ("footprint",), (ROWS, VALUE_AREA),
                  ("ts", "date", "poc", "vah", "val", "volume"), "overlay", developing_run,
                  developing_follow),
        StudyInfo("volume_nodes", "Profile", "High- and low-volume nodes of the range's profile",
                  ("footprint",), nodes_params, outputs["volume_nodes"], "profile",
                  lambda d, p: nodes(volume_profile(d.footprint, p["rows"], p["value_area"]), p,
                                     d.instrument),
                  whole("volume_nodes", nodes)),
        _session_profiles_study(),
    ]


def _session_profiles_study() -> StudyInfo:
    """POC, value area and volume of each trading day: the day's last developing row."""
    columns = ("date", "poc", "vah", "val", "volume")

    def summary(rows: pd.DataFrame, inst: Instrument) -> pd.DataFrame:
        last = rows[rows["volume"] > 0].groupby("date", sort=True).tail(1)
        return _prices_of(last[list(columns)], inst, ("poc", "vah", "val"))

    def run(d, p):
        return summary(developing_profile(d.footprint, d.instrument.session, p["rows"],
                                          p["value_area"]), d.instrument)

    def follow(inst, p, history):
        days = _DaySummaries(LiveVolumeProfile(inst.session, p["rows"], p["value_area"]),
                             lambda rows: summary(rows, inst))
        return StudyFollower("session_profiles", days, lambda changes: changes["days"])
    return StudyInfo("session_profiles", "Profile", "POC and value area of each trading day",
                     ("footprint",), (ROWS, VALUE_AREA), columns, "profile", run, follow)


# --------------------------------------------------------------------------------------------
# indicators of the registry


def _indicator_info(ind: Indicator) -> StudyInfo:
    def run(data, p):
        out = ind(data.bars, **p)
        out.insert(0, "ts", data.bars["ts"].to_numpy())
        return out

    def follow(instrument, p, history):
        live = LiveIndicators(history)
        live.add(ind.name, key=ind.name, **p)
        return StudyFollower(ind.name, live, lambda changes: changes[ind.name])
    return StudyInfo(ind.name, ind.group, ind.title, ("bars",), ind.params,
                     ("ts",) + ind.columns, "overlay" if ind.overlay else "pane", run, follow,
                     levels=ind.levels, shift=dict(ind.meta.get("display_shift", {})),
                     source=ind.source)


# --------------------------------------------------------------------------------------------
# the catalogue


class Catalogue:
    """Every study by case-insensitive name: the order-flow and profile studies, and the
    indicators of ``registry`` (read at each lookup)."""

    def __init__(self, registry: Registry = REGISTRY, studies=None):
        self.registry = registry
        self._studies = {s.key: s for s in (_flows() if studies is None else studies)}
        self._made: dict[str, tuple[Indicator, StudyInfo]] = {}

    def _of(self, ind: Indicator) -> StudyInfo:
        if ind.key in self._studies:
            raise IndicatorError(f"indicator {ind.name!r} has the name of the study "
                                 f"{self._studies[ind.key].name!r}; register it under another "
                                 f"name")
        made = self._made.get(ind.key)
        if made is None or made[0] is not ind:  # (re-registered: describe the new one)
            made = self._made[ind.key] = (ind, _indicator_info(ind))
        return made[1]

    def get(self, name: str) -> StudyInfo:
        key = str(name).strip().lower()
        if key in self._studies:
            return self._studies[key]
        if key in self.registry:
            return self._of(self.registry.get(key))
        raise IndicatorError(f"unknown study {name!r}: see 'tradeflow study --list' for the "
                             f"studies and their parameters")

    def __contains__(self, name) -> bool:
        key = str(name).strip().lower()
        return key in self._studies or key in self.registry

    def __iter__(self) -> Iterator[StudyInfo]:
        infos = list(self._studies.values()) + [self._of(i) for i in self.registry]
        return iter(sorted(infos, key=lambda s: (s.group, s.key)))

    def __len__(self) -> int:
        return len(self._studies) + len(self.registry)

    def names(self) -> list[str]:
        return [s.name for s in self]

    def groups(self) -> dict[str, list[StudyInfo]]:
        out: dict[str, list[StudyInfo]] = {}
        for s in self:
            out.setdefault(s.group, []).append(s)
        return out

    def table(self) -> pd.DataFrame:
        """One row per study: what ``tradeflow study --list`` prints."""
        def params(ps):
            return ", ".join(f"{p.name}={p.default} ({p.describe_range()})" for p in ps)
        return pd.DataFrame(
            [{"name": s.name, "group": s.group, "title": s.title, "reads": " ".join(s.reads),
              "draws": s.draws, "outputs": ", ".join(s.outputs), "params": params(s.params),
              "live": "yes" if s.has_live else "no"} for s in self],
            columns=["name", "group", "title", "reads", "draws", "outputs", "params", "live"])


CATALOGUE = Catalogue()
