"""The study catalogue (``indicators.catalogue``): every indicator and order-flow/profile study is
described once, with typed parameters whose defaults are in range; the one parameter check refuses
bad values with one line; each study's live form, followed through the live protocol, holds its
batch frame; ``tradeflow study`` prints the batch frame and lists the catalogue."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from indicators.catalogue import CATALOGUE, DRAWS, READS, Catalogue, StudyData, StudyInfo
from indicators.formula import parse
from indicators.live_protocol import Follower
from indicators.orderflow import OrderBook
from indicators.orderflow.live import INSTRUMENT, REQUIRED, STUDIES, study_defaults
from indicators.registry import PARAM_TYPES, REGISTRY, IndicatorError, Param, Registry, indicator
from tests.test_cli import run
from tests.test_live_orderflow import streams
from tests.test_orderflow import ES
from tradeflow.bars import BarAggregator, build
from tradeflow.model import BarSpec, DepthUpdate

FLOW = [s.name for s in CATALOGUE if s.key not in REGISTRY]


def fixed_trades(n=3000, seed=1) -> pd.DataFrame:
    """Five hours of ES trades from 13:00 Chicago (regular hours) past the 17:00 day change, with
    bursts of same-time prints and runs in one direction (big trades, sweeps, absorption)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-06 19:00", tz="UTC")
    gaps = rng.choice([0, 0, 40, 90, 6000, 30_000], n)
    steps = rng.integers(-2, 3, n)
    steps[rng.random(n) < 0.05] = 1  # short runs up ...
    side = rng.choice(np.array([1, -1], "int8"), n)
    side[steps > 0] = 1  # ... bought
    return pd.DataFrame({"ts": start + pd.to_timedelta(np.cumsum(gaps), unit="ms"),
                         "price": (20000 + np.cumsum(steps)) * ES.tick_size,
                         "size": rng.choice([1.0, 2.0, 0.5, 7.0, 30.0, 120.0], n), "side": side,
                         "trade_id": np.arange(n)})


TRADES = fixed_trades()
LIQS = pd.DataFrame({"ts": TRADES["ts"].iloc[::97].to_numpy(),
                     "side": np.resize(np.array([1, -1], "int8"), len(TRADES.iloc[::97])),
                     "price": TRADES["price"].iloc[::97].to_numpy(), "size": 1.5})
DAY = int(np.searchsorted(TRADES["ts"], pd.Timestamp("2026-01-06 23:00", tz="UTC")))
# batches of the stream: one trade, a few, many; the first trade of the next trading day alone
CUTS = [0, 1, 5, 300, 301, 1500, DAY, DAY + 1, DAY + 2, 2999, 3000]


def data_for(study, trades=TRADES, liqs=LIQS, spec="1m") -> StudyData:
    spec = study.spec or spec
    bars, cells = build(trades, spec, ES)
    return StudyData(ES, bars=bars, footprint=cells, trades=trades, liquidations=liqs, spec=spec)


# --------------------------------------------------------------------------------------------
# what is in it


def test_every_indicator_and_every_study_is_in_the_catalogue_once():
    names = CATALOGUE.names()
    assert len(names) == len(set(n.lower() for n in names)) == len(CATALOGUE)
    assert set(REGISTRY.names()) <= set(names)  # all of TA-Lib and the extras
    assert {"RSI", "MACD", "CDLDOJI", "ICHIMOKU", "VWAP"} <= set(names)
    # every live order-flow study, the profiles and the book
    assert set(STUDIES) - {"liquidations_by_level"} | {"liquidations", "session_vwap", "heatmap",
                                                       "tpo", "volume_profile", "volume_nodes",
                                                       "developing_profile",
                                                       "session_profiles"} == set(FLOW)
    assert len(FLOW) + len(REGISTRY) == len(CATALOGUE)
    for s in CATALOGUE:
        assert CATALOGUE.get(s.name.upper()) is CATALOGUE.get(s.name.lower()) is s
        assert set(s.reads) <= set(READS) and s.draws in DRAWS and s.outputs, s.name
    assert CATALOGUE.get("ICHIMOKU").shift["senkou_a"] == "displacement - 1"
    assert CATALOGUE.get("RSI").levels == (30.0, 70.0) and CATALOGUE.get("RSI").draws == "pane"
    assert CATALOGUE.get("tpo").spec == "1m" and CATALOGUE.get("heatmap").reads == ("depth",)
    with pytest.raises(IndicatorError, match="unknown study 'nope'.*tradeflow study --list"):
        CATALOGUE.get("nope")


def test_indicators_registered_later_are_in_it_and_a_name_taken_by_a_study_is_refused():
    registry = Registry()
    catalogue = Catalogue(registry)
    assert "SPREAD" not in catalogue and len(catalogue) == len(FLOW)

    @indicator(registry=registry, inputs=("high", "low"),
               params=[Param("scale", 2.0, min=0.0, max=10.0)])
    def SPREAD(high, low, scale=2.0, absolute=False):
        """High minus low, scaled."""
        return (high - low) * scale

    registry.register(parse("close - open").indicator("BODY"))
    assert [(p.name, p.type) for p in catalogue.get("spread").params] == [
        ("scale", "float"), ("absolute", "bool")]
    assert catalogue.get("spread").check_params({"absolute": "yes"}, text=True)["absolute"]
    assert catalogue.get("body").group == "Formula"
    assert sum(n in ("SPREAD", "BODY") for n in catalogue.names()) == 2

    @indicator(registry=registry)
    def CVD(close):
        return close

    with pytest.raises(IndicatorError, match="indicator 'CVD' has the name of the study 'cvd'"):
        catalogue.names()


def test_every_parameter_is_typed_with_a_default_in_its_range():
    for s in CATALOGUE:
        for p in s.params:
            assert p.type in PARAM_TYPES, (s.name, p.name)
            assert p.validate(p.default, s.name) == p.default, (s.name, p.name)
            if p.type in ("int", "float") and s.source == "orderflow":
                assert p.min is not None and p.max is not None, (s.name, p.name)
        assert s.check_params({}) == s.defaults


def test_the_order_flow_defaults_are_the_batch_functions_defaults():
    """One default per parameter: the catalogue's equal the batch functions' where they have one
    (the live form reads its defaults from the same functions)."""
    renamed = {("sweeps", "max_gap_ms"): ("max_gap", lambda v: pd.Timedelta(milliseconds=v),
                                          pd.Timedelta),
               ("absorption", "side"): ("side", lambda v: None if v == "both" else v,
                                        lambda v: v),
               # (the batch's None: "session" when a session is given, as the catalogue does)
               ("cvd", "reset"): ("reset", lambda v: v, lambda v: v or "session"),
               ("cvd_candles", "reset"): ("reset", lambda v: v, lambda v: v or "session")}
    checked = 0
    for name in set(STUDIES) & set(FLOW):
        batch = study_defaults(name)
        for p in CATALOGUE.get(name).params:
            arg, mine, theirs = renamed.get((name, p.name), (p.name, lambda v: v, lambda v: v))
            if batch[arg] in (REQUIRED, INSTRUMENT):
                continue
            assert mine(p.default) == theirs(batch[arg]), (name, p.name)
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("name, values, message", [
    ("imbalances", {"ratio": 0.5},
     "imbalances: parameter 'ratio' must be a number from 1.0001 to 1000; got 0.5"),
    ("imbalances", {"rows": 2.5}, "imbalances: parameter 'rows' must be an integer from 1"),
    ("imbalances", {"compare_edges": 1},
     "imbalances: parameter 'compare_edges' must be true or false; got 1 of type int"),
    ("RSI", {"timeperiod": "14"}, "RSI: parameter 'timeperiod' must be an integer from 2 to "
                                  "100000; got '14' of type str"),
    ("cvd", {"reset": "weekly"}, "cvd: parameter 'reset' must be one of 'session', 'none'"),
    ("sweeps", {"max_gap": 3}, "sweeps: unknown parameter 'max_gap'; valid parameters: "
                               "min_levels, max_gap_ms, min_size"),
    ("big_trades", {"min_size": float("nan")}, "big_trades: parameter 'min_size' must be a "
                                               "number from 1e-12 to 1e+15; got nan"),
])
def test_check_params_refuses_bad_values_with_one_line(name, values, message):
    with pytest.raises(IndicatorError) as err:
        CATALOGUE.get(name).check_params(values)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_check_params_converts_text():
    imb = CATALOGUE.get("imbalances")
    assert imb.check_params({"ratio": "4", "compare_edges": "true"}, text=True) == {
        "ratio": 4.0, "min_volume": 0.0, "rows": 1, "compare_edges": True}
    assert CATALOGUE.get("MA").check_params({"matype": "EMA"}, text=True)["matype"] == 1
    for bad in ({"compare_edges": "maybe"}, {"rows": "two"}):
        with pytest.raises(IndicatorError, match="imbalances: parameter .* must be .*; got '"):
            imb.check_params(bad, text=True)


# --------------------------------------------------------------------------------------------
# batch and live agree


CASES = [(name, {}) for name in FLOW if name != "heatmap"] + [
    ("imbalances", {"rows": 2, "compare_edges": True, "ratio": 2.0}),
    ("tpo", {"hours": "all", "period_minutes": 15}),
    ("big_trades", {"min_size": 100.0, "aggregate_same_ts": False}),
    ("absorption", {"min_volume": 20.0, "side": "bid", "rows": 2}),
    ("developing_profile", {"rows": 4}), ("session_profiles", {"value_area": 0.5}),
    ("volume_nodes", {"smooth": 3, "span": 2}), ("cvd", {"reset": "none"}),
    ("RSI", {"timeperiod": 9}), ("MACD", {}), ("OBV", {}), ("ICHIMOKU", {}), ("CDLDOJI", {}),
]


@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}{p or ''}" for n, p in CASES])
def test_the_live_form_holds_the_batch_frame(name, params):
    """Followed through one aggregator's updates, a chart keeping only the changes it is sent
    holds the batch frame over everything so far, after every batch."""
    study = CATALOGUE.get(name)
    live = study.live(ES, **params)
    assert isinstance(live, Follower)
    agg = BarAggregator(ES, study.spec or "1m")
    liq_cuts = np.searchsorted(LIQS["ts"].to_numpy(), TRADES["ts"].to_numpy()[CUTS[1:-1]])
    liq_cuts = [0, *liq_cuts, len(LIQS)]
    shown = None
    for i, (a, b) in enumerate(zip(CUTS, CUTS[1:])):
        changes = live.apply(agg.update(TRADES.iloc[a:b], LIQS.iloc[liq_cuts[i]:liq_cuts[i + 1]]))
        assert list(changes) == [study.name]
        ch = changes[study.name]
        shown = ch.rows if shown is None else ch.applied(shown)
        if b in (5, 1500, DAY + 1, DAY + 2, 3000):
            want = study.batch(data_for(study, TRADES.iloc[:b], LIQS.iloc[:liq_cuts[i + 1]]),
                               **params)
            assert ch.length == len(want)
            assert tuple(want.columns) == study.outputs
            got = shown.reset_index(drop=True)
            if study.source == "talib" or study.key in REGISTRY:  # (live windows: tolerance)
                pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)
            else:
                pd.testing.assert_frame_equal(got, want, check_dtype=len(want) > 0,
                                              check_index_type=False)
    assert len(want) > (0 if name in ("sweeps",) else 1), "the fixed stream shows nothing"
    if "date" in want.columns:  # the day change at 23:00 UTC is inside the stream
        assert want["date"].nunique() == (1 if name == "tpo" and not params else 2)


BAR_STUDIES = [s.name for s in CATALOGUE if s.key not in REGISTRY and s.stream == "bars"]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=streams(), spec=st.sampled_from(["1m", "5m", "T5", "V20"]),
       name=st.sampled_from(BAR_STUDIES), rows=st.sampled_from([1, 2]))
def test_every_study_live_equals_batch_on_random_streams(stream, spec, name, rows):
    """The property tests' random streams (``tests.test_live_orderflow.streams``), cut into random
    batches: after each, the rows a chart was sent are the batch frame."""
    tr, liqs, cuts, liq_cuts = stream
    study = CATALOGUE.get(name)
    spec = study.spec or spec
    if not BarSpec.parse(spec).is_time:  # (cell studies in batch merge bars sharing a time)
        assume(build(tr, spec, ES)[0]["ts"].is_unique)
    params = {"rows": rows} if "rows" in study.defaults else {}
    live, agg, shown, a, la = study.live(ES, **params), BarAggregator(ES, spec), None, 0, 0
    for b, lb in zip(cuts, liq_cuts):
        ch = live.apply(agg.update(tr.iloc[a:b], liqs.iloc[la:lb]))[name]
        shown = ch.rows if shown is None else ch.applied(shown)
        a, la = b, lb
        try:
            want = study.batch(data_for(study, tr.iloc[:b], liqs.iloc[:lb], spec), **params)
        except ValueError as exc:  # (a profile of no volume: the live form shows nothing)
            assert "no cells" in str(exc) or "hold no volume" in str(exc) or "no bars" in str(
                exc), exc
            assert ch.length == 0
            continue
        assert ch.length == len(want), name
        pd.testing.assert_frame_equal(shown.reset_index(drop=True), want,
                                      check_dtype=len(want) > 0, check_index_type=False)


def test_equal_settings_written_differently_share_one_follower():
    imb = CATALOGUE.get("imbalances")
    assert imb.follower_key({}) == imb.follower_key({"rows": 1, "ratio": 3}) \
        == imb.follower_key({"compare_edges": False})
    assert imb.follower_key({"rows": 2}) != imb.follower_key({})
    with pytest.raises(IndicatorError, match="imbalances: parameter 'rows'"):
        imb.follower_key({"rows": 0})


def test_indicators_live_from_their_history():
    study = CATALOGUE.get("SMA")
    bars = build(TRADES, "1m", ES)[0]
    history, rest = bars.iloc[:100], TRADES[TRADES["ts"] >= bars["ts"].iloc[100]]
    live = study.live(ES, history=history, timeperiod=5)
    changes = live.apply(BarAggregator(ES, "1m").update(rest))["SMA"]
    want = study.batch(StudyData(ES, bars=bars), timeperiod=5)
    pd.testing.assert_frame_equal(changes.rows, want.iloc[100:], rtol=1e-12)


def test_every_description_is_plain_json():
    """What a picker or the HTTP API sends: the metadata, no functions."""
    for s in CATALOGUE:
        described = json.loads(json.dumps(s.to_dict()))
        assert described["name"] == s.name and described["live"] == s.has_live
        assert [p["default"] for p in described["params"]] == list(s.defaults.values())


def depth_stream(n=120, seed=3):
    """A book's updates: a snapshot, then diffs of a few levels (size 0 removes one) at times
    10-300 ms apart, some sharing a time; bids below 20000, asks from 20001."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2026-01-06 19:00", tz="UTC")
    ticks = np.r_[np.arange(19990, 20000), np.arange(20001, 20011)]
    updates, t = [], t0
    for i in range(n):
        t = t + pd.Timedelta(milliseconds=int(rng.choice([0, 10, 40, 300])))
        tick = ticks if i == 0 else rng.choice(ticks, 3, replace=False)
        size = rng.choice([0.0, 1.0, 2.5, 10.0], len(tick)) if i else np.full(len(tick), 5.0)
        levels = pd.DataFrame({"ts": t, "side": np.where(tick < 20000, -1, 1).astype("int8"),
                               "tick": tick.astype("int64"), "size": size})
        updates.append(DepthUpdate(levels, snapshot=i == 0))
    return updates


@pytest.mark.parametrize("params", [{}, {"how": "mean", "rows": 2},
                                    {"how": "max", "interval_seconds": 0.25}])
def test_the_live_heatmap_holds_the_batch_grid_of_its_snapshots(params):
    """Followed through a book's updates, the heatmap holds the batch grid over the book's
    snapshots: the book after the last update of each time."""
    study = CATALOGUE.get("heatmap")
    assert study.stream == "depth"
    live, book, snaps, shown = study.live(ES, **params), OrderBook(ES.tick_size), {}, None
    for i, update in enumerate(depth_stream()):
        ch = live.apply(update)["heatmap"]
        shown = ch.rows if shown is None else ch.applied(shown)
        book.apply(update)
        stamp = update.levels["ts"].max()
        snaps[stamp] = book.levels(ts=stamp)
        if i % 40 == 39 or i < 3:
            want = study.batch(StudyData(ES, depth=pd.concat(snaps.values(), ignore_index=True)),
                               **params)
            assert ch.length == len(want) > 0
            pd.testing.assert_frame_equal(shown.reset_index(drop=True), want)
    late = DepthUpdate(update.levels.assign(ts=update.levels["ts"] - pd.Timedelta("1s")))
    with pytest.raises(ValueError, match="LiveHeatmap: depth updates must come in time order"):
        live.apply(late)
    assert live.inner.book.bids == book.bids and live.inner.book.asks == book.asks  # untouched


def test_a_study_without_a_live_form_says_so():
    cvd = CATALOGUE.get("cvd")
    batch_only = StudyInfo("batch_only", "Custom", "A study with no live form", ("bars",), (),
                           ("ts",), "pane", cvd.run)
    with pytest.raises(IndicatorError, match="batch_only: has no live form yet"):
        batch_only.live(ES)
    with pytest.raises(IndicatorError, match="interval_seconds"):
        CATALOGUE.get("heatmap").batch(StudyData(ES), interval_seconds=0)
    with pytest.raises(IndicatorError, match="cvd: live\\(\\) needs the stream's "
                                             "tradeflow.model.Instrument, got str"):
        cvd.live("ES")


# --------------------------------------------------------------------------------------------
# the command line


@pytest.fixture(scope="module")
def es_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("catalogue")
    url = f"duckdb:///{folder}/cli.duckdb"
    run(["instruments", "add", "ES", "--tick-size", "0.25", "--exchange", "CME",
         "--session", "America/Chicago 08:30-15:15,17:00-16:00"], url)
    path = folder / "es.csv"
    frame = TRADES.drop(columns="trade_id").assign(
        ts=TRADES["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        side=np.where(TRADES["side"] > 0, "buy", "sell"))
    frame.to_csv(path, index=False)
    run(["import", str(path), "--symbol", "ES"], url)
    return url


PRINTED = [("imbalances", {"ratio": "2", "compare_edges": "true"}, "5m"),
           ("footprint_metrics", {"rows": "2"}, "1m"), ("cvd", {}, "15m"),
           ("tpo", {"hours": "all"}, "5m"), ("developing_profile", {}, "5m"),
           ("session_profiles", {}, "1m"), ("volume_nodes", {}, "1m"),
           ("big_trades", {"min_size": "100"}, "1m"), ("absorption", {"min_volume": "20"}, "1m"),
           ("zero_prints", {}, "1m"), ("naked_pocs", {}, "1m"), ("stacked_imbalances", {}, "1m"),
           ("MACD", {"fastperiod": "5"}, "5m")]


@pytest.mark.parametrize("name, params, spec", PRINTED, ids=[p[0] for p in PRINTED])
def test_the_command_prints_the_batch_frame(es_store, name, params, spec):
    args = ["study", name, "ES", "--spec", spec]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    printed = run(args, es_store).stdout
    study = CATALOGUE.get(name)
    want = study.batch(data_for(study, spec=spec), **study.check_params(params, text=True))
    assert len(want) > 0
    assert printed == want.to_csv(index=False, float_format="%.10g")


def test_study_list_prints_the_catalogue(es_store):
    listed = pd.read_csv(io.StringIO(run(["study", "--list"], es_store).stdout))
    assert list(listed.columns) == ["name", "group", "title", "reads", "draws", "outputs",
                                    "params", "live"]
    assert len(listed) == len(CATALOGUE) and listed["name"].is_unique
    rows = listed.set_index("name")
    imb = rows.loc["imbalances"]
    assert (imb["group"], imb["reads"], imb["draws"], imb["live"]) == (
        "Order Flow", "footprint", "overlay", "yes")
    assert "compare_edges=False (true or false)" in imb["params"]
    assert "ratio=3.0 (a number from 1.0001 to 1000)" in imb["params"]
    assert rows.loc["RSI", "draws"] == "pane" and rows.loc["RSI", "outputs"] == "ts, RSI"
    assert "timeperiod=14 (an integer from 2 to 100000)" in rows.loc["RSI", "params"]
    assert rows.loc["tpo", "draws"] == "profile" and rows.loc["heatmap", "live"] == "yes"
    assert rows.loc["sweeps", "params"].startswith("min_levels=3 (an integer from 2 to 1000), "
                                                   "max_gap_ms=250.0")


def test_labels_say_the_settings_that_differ_and_are_unique_per_settings():
    ema, macd = CATALOGUE.get("EMA"), CATALOGUE.get("MACD")
    assert ema.label() == ema.label({"timeperiod": 30}) == "EMA"  # the defaults
    assert ema.label({"timeperiod": 20}) == "EMA 20" and ema.label({"timeperiod": 50.0}) == "EMA 50"
    assert macd.label({"fastperiod": 8}) == "MACD 8"
    assert macd.label({"slowperiod": 8}) == "MACD(slowperiod=8)"
    assert macd.label({"fastperiod": 8, "signalperiod": 5}) == "MACD(fastperiod=8, signalperiod=5)"
    assert CATALOGUE.get("imbalances").label({"ratio": 2.5}) == "imbalances 2.5"
