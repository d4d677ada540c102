"""The desk: its state as JSON and as a URL (pure Python), and the served desk end to end in
Chromium (``tradeflow serve --simulate``)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboards.chart_state import (CHART_TYPES, DRAWING_POINTS, PANES, ChartConfig, DeskConfig,
                                    StateError, format_studies, parse_studies)
from indicators.catalogue import CATALOGUE

# --- the state document ------------------------------------------------------------------------

STUDIES = ["RSI", "EMA", "MA", "BBANDS", "MACD", "cvd", "session_vwap", "imbalances", "volume_profile"]
SYMBOL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/^:=@$#!"


@st.composite
def study_entries(draw):
    info = CATALOGUE.get(draw(st.sampled_from(STUDIES)))
    params = {}
    for p in info.params:
        if not draw(st.booleans()):
            continue
        if p.type == "choice":
            params[p.name] = draw(st.sampled_from(list(p.choices)))
        elif p.type == "bool":
            params[p.name] = draw(st.booleans())
        elif p.type == "int":
            params[p.name] = draw(st.integers(p.min, min(p.max, p.min + 500)))
        else:
            params[p.name] = draw(st.floats(p.min, p.max, allow_nan=False))
    return {"name": info.name, "params": params}


times = st.datetimes(min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
                     max_value=pd.Timestamp("2090-01-01").to_pydatetime()).map(
    lambda d: pd.Timestamp(d, tz="UTC").isoformat())
prices = st.floats(0.01, 1e6, allow_nan=False)


@st.composite
def drawings(draw):
    kind = draw(st.sampled_from(sorted(DRAWING_POINTS)))
    points = [{"t": draw(times), "dx": draw(st.floats(-50, 50, allow_nan=False)),
               "price": draw(prices)} for _ in range(DRAWING_POINTS[kind])]
    out = {"kind": kind, "points": points}
    if kind == "text":
        out["text"] = draw(st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]),
                                   max_size=40))
    return out


@st.composite
def chart_docs(draw):
    start = pd.Timestamp(draw(times))
    return {"symbol": draw(st.text(SYMBOL_CHARS, min_size=1, max_size=12).filter(
                lambda s: any(c.isalnum() for c in s))),
            "spec": draw(st.sampled_from(["1m", "5s", "4h", "1d", "T500", "V1000", "R8", "RK10",
                                          "5m:HA"])),
            "chart_type": draw(st.sampled_from(CHART_TYPES)),
            "panes": draw(st.lists(st.sampled_from(PANES), unique=True, max_size=3)),
            "studies": draw(st.lists(study_entries(), max_size=4)),
            "drawings": draw(st.lists(drawings(), max_size=4)),
            "view_range": draw(st.one_of(st.none(), st.just(
                [start.isoformat(), (start + pd.Timedelta(hours=3)).isoformat()]))),
            "theme": draw(st.sampled_from(["dark", "light"]))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chart_docs())
def test_a_chart_round_trips_through_its_json_document(doc):
    chart = ChartConfig.from_dict(doc)
    again = ChartConfig.from_json(chart.to_json())
    assert again == chart
    assert again.to_json() == chart.to_json()
    # what was asked is what is held: names as the catalogue has them, settings with defaults
    assert [s["name"] for s in again.studies] == [CATALOGUE.get(s["name"]).name
                                                   for s in doc["studies"]]
    for asked, held in zip(doc["studies"], again.studies):
        assert held["params"] == CATALOGUE.get(asked["name"]).check_params(asked["params"])
    for asked, held in zip(doc["drawings"], again.drawings):
        assert [pd.Timestamp(p["t"]) for p in held["points"]] == [
            pd.Timestamp(p["t"]) for p in asked["points"]]
        assert [p["price"] for p in held["points"]] == [p["price"] for p in asked["points"]]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([1, 2, 4]), st.sampled_from(["dark", "light"]), st.data())
def test_the_desk_round_trips_through_its_url(layout, theme, data):
    charts = []
    for _ in range(layout):
        doc = data.draw(chart_docs())
        doc.pop("drawings"), doc.pop("view_range")  # the JSON document's, not the URL's
        charts.append(ChartConfig.from_dict(doc))
    desk = DeskConfig(layout=layout, theme=theme, charts=charts,
                      active=data.draw(st.integers(0, layout - 1)))
    query = desk.to_query()
    assert DeskConfig.from_query(query) == desk
    assert DeskConfig.from_json(desk.to_json()) == desk


def test_the_url_is_short_and_readable():
    desk = DeskConfig.from_query("layout=2&studies=RSI(timeperiod=21),MA(matype=EMA),CVD"
                                 "&type=candles&symbol2=ES&spec2=T500")
    assert desk.to_query() == ("layout=2&type=candles&studies=RSI(timeperiod=21),MA(matype=EMA),"
                               "cvd&symbol2=ES&spec2=T500")
    assert desk.charts[0].studies[1] == {"name": "MA", "params": {"timeperiod": 30, "matype": 1}}
    assert DeskConfig().to_query() == ""  # the default desk: BTCUSDT 1m footprint, dark


@pytest.mark.parametrize("query, message", [
    ("symbol=a%20b", "symbol: symbol 'a b' is not valid"),
    ("spec=3x", "spec: bar spec '3x' not understood"),
    ("studies=FOO", "studies: unknown study 'FOO'"),
    ("studies=RSI(timeperiod=0)", "studies: RSI: parameter 'timeperiod' must be an integer"),
    ("studies=RSI(length=3)", "studies: RSI: unknown parameter 'length'"),
    ("studies=RSI(x", "studies: 'RSI(x' not understood at character 1"),
    ("layout=3", "layout: '3': use 1, 2 or 4"),
    ("symbol2=ES", "symbol2: chart 2 is not shown with layout=1"),
    ("layout=2&spec2=2x", "spec2: bar spec '2x' not understood"),
    ("type=pie", "type: 'pie': use one of footprint, candles"),
    ("theme=blue", "theme: 'blue': use one of dark, light"),
    ("typo=1", "URL: unknown parameter 'typo'"),
])
def test_a_bad_url_says_what_and_where(query, message):
    with pytest.raises(StateError) as exc:
        DeskConfig.from_query(query)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("change, message", [
    ({"studies": [{"name": "RSI", "params": {"timeperiod": 1}}]},
     "studies[0]: RSI: parameter 'timeperiod'"),
    ({"studies": [{"name": "RSI"}, {"name": "nope"}]}, "studies[1]: unknown study 'nope'"),
    ({"drawings": [{"kind": "trend", "points": [{"t": "2026-11-27T10:00:00Z", "price": 1}]}]},
     "drawings[0].points: a trend drawing has 2 points"),
    ({"drawings": [{"kind": "hline", "points": [{"t": "2026-11-27T10:00", "price": 1}]}]},
     "drawings[0].points[0].t: '2026-11-27T10:00' has no time zone"),
    ({"drawings": [{"kind": "hline", "points": [{"t": "2026-11-27T10:00Z", "price": "x"}]}]},
     "drawings[0].points[0].price: 'x' is not a finite number"),
    ({"drawings": [{"kind": "text", "text": "a\x1b[31m", "points": [
        {"t": "2026-11-27T10:00Z", "price": 1}]}]}, "drawings[0].text: a note is printable"),
    ({"view_range": ["2026-11-27T10:00Z", "2026-11-27T09:00Z"]},
     "view_range: the start must come before the end"),
    ({"spec": "T0"}, "spec: bar spec 'T0': the size must be positive"),
    ({"colour": "red"}, "unknown fields ['colour']"),
])
def test_a_bad_document_says_what_and_where(change, message):
    doc = ChartConfig().to_dict() | change
    with pytest.raises(StateError) as exc:
        ChartConfig.from_json(json.dumps(doc))
    assert str(exc.value).startswith(message)
    with pytest.raises(StateError, match="not a JSON document"):
        ChartConfig.from_json("{")


def test_study_text_round_trips():
    studies = parse_studies("BBANDS(timeperiod=10,nbdevup=2.5,matype=WMA), cvd")
    assert studies[0]["params"] == {"timeperiod": 10, "nbdevup": 2.5, "nbdevdn": 2.0,
                                    "matype": 2}
    assert parse_studies(format_studies(studies)) == studies
