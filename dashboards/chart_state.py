"""A chart's whole state as one JSON document, and the desk's state as a URL query string.

:class:`ChartConfig` holds what a trader chose for one chart: symbol, bar spec, chart type, the
panes under it, studies with their settings, drawings, the view range and the theme.
``to_json()`` / ``from_json(text)`` round-trip it; ``from_json`` (and ``from_dict``) check
everything with the project's own rules (``model.validate_symbol``, ``BarSpec.parse``, the
catalogue's ``check_params``) and refuse bad input with one :class:`StateError` line naming the
place (``studies[1].params``). Times are UTC ISO 8601 text, so a drawing keeps its place when the
chart reloads with more (or less) history: a point is the open time of a bar plus ``dx`` bars
from it, and the price.

:class:`DeskConfig` is the desk: layout (1, 2 or 4 charts), theme, the focused chart and the
charts. ``to_query()`` / ``from_query(args)`` is its URL form, short and readable
(``?symbol=BTCUSDT&spec=1m&type=footprint&studies=RSI(timeperiod=21),CVD&layout=2&symbol2=ES``), so
a link reopens the same desk; ``mode=light`` is the theme (Panel's templates read ``theme``
themselves). Drawings and the view range are in it too, compact (``draw=hline(2026-11-27T14:35Z
@50000),text(2026-11-27T15:00Z+0.5@49800;'it''s here')`` and ``view=START,END``: points as
``time[+dx]@price``, a note's text single-quoted with ``''`` for a quote); a link longer than
:data:`MAX_LINK_VALUE` characters in one parameter is refused.
"""
from __future__ import annotations

import json
import math
import re
from urllib.parse import parse_qs, urlencode

import pandas as pd
import param

from dashboards.components.price_shapes import CHART_TYPES as PRICE_CHART_TYPES
from indicators.catalogue import CATALOGUE
from indicators.registry import IndicatorError
from tradeflow.model import BarSpec, ModelError, validate_symbol

__all__ = ["StateError", "ChartConfig", "DeskConfig", "CHART_TYPES", "PANES", "DRAWING_POINTS",
           "LAYOUTS", "THEME_NAMES", "parse_studies", "format_studies", "parse_drawings",
           "format_drawings", "parse_view", "format_view", "MAX_LINK_VALUE"]

# the footprint, and the chart types of the price chart (TradingView's list)
CHART_TYPES = ("footprint",) + PRICE_CHART_TYPES + ("heatmap",)
# under the chart (sharing its time axis): delta, cvd, cvd_candles; beside it (sharing its
# prices): volume_profile, tpo; side panels: tape (time & sales), dom (the ladder)
PANES = ("volume", "delta", "cvd", "cvd_candles", "volume_profile", "tpo", "tape", "dom")
DRAWING_POINTS = {"trend": 2, "hline": 1, "rect": 2, "text": 1, "fib": 2}  # kind: points
LAYOUTS = (1, 2, 4)
THEME_NAMES = ("dark", "light")
MAX_STUDIES = 20
MAX_DRAWINGS = 200
MAX_NOTE = 200  # characters of a text note
MAX_LINK_VALUE = 16_000  # characters of one URL parameter (the drawings): a link stays a link


class StateError(ValueError):
    """A state document (or URL) that cannot be used; the message says what and where."""


def _fail(where: str, problem: str):
    raise StateError(f"{where}: {problem}" if where else problem)


def _utc(value, where: str) -> pd.Timestamp:
    """An ISO 8601 time with a zone (or a Timestamp) as a UTC Timestamp."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        ts = None
    if ts is None or ts is pd.NaT or isinstance(value, bool):
        _fail(where, f"{value!r} is not a time (use ISO 8601 with a zone, e.g. "
                     "'2026-11-27T14:35:00Z')")
    if ts.tzinfo is None:
        _fail(where, f"{value!r} has no time zone (add 'Z' for UTC)")
    return ts.tz_convert("UTC")


def _iso(ts: pd.Timestamp) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(where, f"{value!r} is not a finite number")
    return float(value)


def _study(item, where: str) -> dict:
    """One study entry ``{"name", "params"}``, named as the catalogue names it, every setting
    checked and the defaults filled in (so equal settings give equal documents)."""
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or set(item) - {"name", "params"} or "name" not in item:
        _fail(where, 'a study is {"name": ..., "params": {...}}')
    params = item.get("params") or {}
    if not isinstance(params, dict):
        _fail(f"{where}.params", "settings are an object of name: value")
    try:
        info = CATALOGUE.get(str(item["name"]))
        checked = info.check_params(params)
    except IndicatorError as exc:
        _fail(where, str(exc))
    return {"name": info.name, "params": checked}


def _drawing(item, where: str) -> dict:
    if not isinstance(item, dict) or item.get("kind") not in DRAWING_POINTS:
        _fail(where, f"a drawing is an object with kind one of {', '.join(DRAWING_POINTS)}")
    if set(item) - {"kind", "points", "text"}:
        _fail(where, f"unknown fields {sorted(set(item) - {'kind', 'points', 'text'})}")
    kind, points = item["kind"], item.get("points")
    need = DRAWING_POINTS[kind]
    if not isinstance(points, list) or len(points) != need:
        _fail(f"{where}.points", f"a {kind} drawing has {need} point{'s' * (need > 1)}")
    out_points = []
    for i, point in enumerate(points):
        at = f"{where}.points[{i}]"
        if not isinstance(point, dict) or set(point) - {"t", "dx", "price"} or not {
                "t", "price"} <= set(point):
            _fail(at, 'a point is {"t": time, "dx": bars after it, "price": price}')
        out_points.append({"t": _iso(_utc(point["t"], f"{at}.t")),
                           "dx": _number(point.get("dx", 0.0), f"{at}.dx"),
                           "price": _number(point["price"], f"{at}.price")})
    out = {"kind": kind, "points": out_points}
    if kind == "text":
        text = item.get("text", "")
        if not isinstance(text, str) or len(text) > MAX_NOTE or not text.isprintable():
            _fail(f"{where}.text", f"a note is printable text of at most {MAX_NOTE} characters")
        out["text"] = text
    elif "text" in item:
        _fail(f"{where}.text", f"only text notes have text, not a {kind} drawing")
    return out


class ChartConfig(param.Parameterized):
    """One chart's state (see the module's docstring); every value already checked."""

    symbol = param.String(default="BTCUSDT", doc="the instrument's symbol")
    spec = param.String(default="1m", doc="the bar spec, in BarSpec notation")
    chart_type = param.Selector(default="footprint", objects=list(CHART_TYPES))
    panes = param.List(default=[], item_type=str, doc="panes under the chart, from PANES")
    studies = param.List(default=[], doc='[{"name": study, "params": {...}}] (checked)')
    drawings = param.List(default=[], doc="trend, hline, rect, text, fib; points in time")
    view_range = param.Parameter(default=None, doc="(start, end) UTC Timestamps, or None: latest")
    theme = param.Selector(default="dark", objects=list(THEME_NAMES))

    FIELDS = ("symbol", "spec", "chart_type", "panes", "studies", "drawings", "view_range",
              "theme")

    def to_dict(self) -> dict:
        view = None if self.view_range is None else [_iso(t) for t in self.view_range]
        return {"symbol": self.symbol, "spec": self.spec, "chart_type": self.chart_type,
                "panes": list(self.panes), "studies": [dict(s, params=dict(s["params"]))
                                                       for s in self.studies],
                "drawings": [dict(d) for d in self.drawings], "view_range": view,
                "theme": self.theme}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, where: str = "") -> "ChartConfig":
        try:
            doc = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise StateError(f"{where + ': ' if where else ''}not a JSON document ({exc})") \
                from None
        return cls.from_dict(doc, where)

    @classmethod
    def from_dict(cls, doc, where: str = "") -> "ChartConfig":
        """A ChartConfig of ``doc`` (missing fields take their defaults), checked whole."""
        return cls(**cls.check(doc, where))

    @classmethod
    def check(cls, doc, where: str = "") -> dict:
        """``doc``'s fields, checked and normalised (a StateError names the first problem)."""
        at = (lambda name: f"{where}.{name}" if where else name)
        if not isinstance(doc, dict):
            _fail(where, "a chart's state is a JSON object")
        unknown = sorted(set(doc) - set(cls.FIELDS))
        if unknown:
            _fail(where, f"unknown fields {unknown}; a chart has {', '.join(cls.FIELDS)}")
        out = {}
        if "symbol" in doc:
            try:
                out["symbol"] = validate_symbol(doc["symbol"])
            except ModelError as exc:
                _fail(at("symbol"), str(exc))
        if "spec" in doc:
            try:
                out["spec"] = str(BarSpec.parse(doc["spec"]))
            except ModelError as exc:
                _fail(at("spec"), str(exc))
        if "chart_type" in doc:
            if doc["chart_type"] not in CHART_TYPES:
                _fail(at("chart_type"), f"{doc['chart_type']!r}: use one of "
                                        f"{', '.join(CHART_TYPES)}")
            out["chart_type"] = doc["chart_type"]
        if "panes" in doc:
            panes = doc["panes"]
            if not isinstance(panes, list) or any(p not in PANES for p in panes):
                _fail(at("panes"), f"a list from {', '.join(PANES)}")
            out["panes"] = list(dict.fromkeys(panes))
        if "studies" in doc:
            studies = doc["studies"]
            if not isinstance(studies, list) or len(studies) > MAX_STUDIES:
                _fail(at("studies"), f"a list of at most {MAX_STUDIES} studies")
            out["studies"] = [_study(s, at(f"studies[{i}]")) for i, s in enumerate(studies)]
        if "drawings" in doc:
            drawings = doc["drawings"]
            if not isinstance(drawings, list) or len(drawings) > MAX_DRAWINGS:
                _fail(at("drawings"), f"a list of at most {MAX_DRAWINGS} drawings")
            out["drawings"] = [_drawing(d, at(f"drawings[{i}]")) for i, d in enumerate(drawings)]
        if doc.get("view_range") is not None:
            view = doc["view_range"]
            if not isinstance(view, (list, tuple)) or len(view) != 2:
                _fail(at("view_range"), "[start, end] times, or null for the latest bars")
            start, end = (_utc(v, at(f"view_range[{i}]")) for i, v in enumerate(view))
            if not start < end:
                _fail(at("view_range"), "the start must come before the end")
            out["view_range"] = (start, end)
        if "theme" in doc:
            if doc["theme"] not in THEME_NAMES:
                _fail(at("theme"), f"{doc['theme']!r}: use one of {', '.join(THEME_NAMES)}")
            out["theme"] = doc["theme"]
        return out

    def study_settings(self) -> dict[str, dict]:
        """``{name: params}`` of the studies (what the hub and the views take)."""
        return {s["name"]: dict(s["params"]) for s in self.studies}

    def __eq__(self, other):
        return isinstance(other, ChartConfig) and self.to_dict() == other.to_dict()

    __hash__ = param.Parameterized.__hash__


# --- the URL form ------------------------------------------------------------------------------

_STUDY = re.compile(r"\s*([^(),\s]+)\s*(?:\(([^()]*)\))?\s*(?:,|$)")


def parse_studies(text: str, where: str = "studies") -> list[dict]:
    """``"RSI(timeperiod=21),MA(timeperiod=50,matype=EMA),CVD"`` as checked study entries (settings
    written as text, converted by the catalogue)."""
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _STUDY.match(text, pos)
        if not m or m.end() == pos:
            _fail(where, f"{text!r} not understood at character {pos + 1}: write studies as "
                         "NAME or NAME(setting=value,...) separated by commas")
        name, args = m.group(1), m.group(2)
        params = {}
        for part in filter(None, (a.strip() for a in (args or "").split(","))):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                _fail(where, f"{name}: {part!r} is not setting=value")
            params[key.strip()] = value.strip()
        try:
            info = CATALOGUE.get(name)
            checked = info.check_params(params, text=True)
        except IndicatorError as exc:
            _fail(where, str(exc))
        out.append({"name": info.name, "params": checked})
        pos = m.end()
    return out


def format_studies(studies: list[dict]) -> str:
    """The URL text of study entries: only settings that differ from the defaults."""
    parts = []
    for s in studies:
        info = CATALOGUE.get(s["name"])
        changed = [f"{p.name}={_text(p, s['params'][p.name])}" for p in info.params
                   if s["params"].get(p.name, p.default) != p.default]
        parts.append(info.name + (f"({','.join(changed)})" if changed else ""))
    return ",".join(parts)


def _text(p, value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return p.label_of(value) if p.type == "choice" else str(value)


# drawings and view range: ``kind(point;point[;'text'])`` items, a point ``time[+dx]@price``
_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?Z"
_NUM = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_POINT = re.compile(rf"({_TIME})([+-]\d+(?:\.\d+)?(?:e[+-]?\d+)?)?@({_NUM})")
_KIND = re.compile(r"([a-z]+)\(")
_NOTE = re.compile(r"'((?:[^']|'')*)'")


def _link_time(ts) -> str:
    """A UTC time as short as it stays exact: ``2026-11-27T14:35Z``."""
    text = _iso(pd.Timestamp(ts))
    return text[:-4] + "Z" if text.endswith(":00Z") and "." not in text else text


def _link_number(value: float) -> str:
    text = repr(float(value))  # the shortest text that reads back as the same float
    return text[:-2] if text.endswith(".0") else text


def _link_size(text: str, where: str) -> None:
    if len(text) > MAX_LINK_VALUE:
        _fail(where, f"{len(text):,} characters; a link holds at most {MAX_LINK_VALUE:,} in one "
                     "parameter (remove some drawings or shorten the notes)")


def format_drawings(drawings: list[dict]) -> str:
    """The URL text of checked drawings (see :func:`parse_drawings`)."""
    items = []
    for d in drawings:
        parts = []
        for p in d["points"]:
            dx = p.get("dx", 0.0)
            parts.append(_link_time(p["t"]) + (f"{'+' if dx > 0 else ''}{_link_number(dx)}"
                                               if dx else "") + "@" + _link_number(p["price"]))
        if d["kind"] == "text":
            parts.append("'" + d.get("text", "").replace("'", "''") + "'")
        items.append(f"{d['kind']}({';'.join(parts)})")
    return ",".join(items)


def parse_drawings(text: str, where: str = "draw") -> list[dict]:
    """``"trend(2026-11-27T14:10Z@101;2026-11-27T14:20Z+0.5@105),text(...;'a note')"`` as
    checked drawings (``ChartConfig.drawings``); too long a text is refused before reading."""
    _link_size(text, where)
    out, pos = [], 0
    while pos < len(text):
        at = f"{where}[{len(out)}]"
        m = _KIND.match(text, pos)
        if not m:
            _fail(at, f"not understood at character {pos + 1}: write KIND(TIME[+DX]@PRICE;...), "
                      f"KIND one of {', '.join(DRAWING_POINTS)}")
        if m.group(1) not in DRAWING_POINTS:
            _fail(at, f"{m.group(1)!r} is not a drawing: use {', '.join(DRAWING_POINTS)}")
        item, pos = {"kind": m.group(1), "points": []}, m.end()
        while True:
            p = _POINT.match(text, pos)
            note = _NOTE.match(text, pos) if not p else None
            if p:
                item["points"].append({"t": p.group(1), "dx": float(p.group(2) or 0),
                                       "price": float(p.group(3))})
                pos = p.end()
            elif note:
                item["text"] = note.group(1).replace("''", "'")
                pos = note.end()
            else:
                _fail(at, f"not understood at character {pos + 1}: a point is TIME[+DX]@PRICE "
                          "(e.g. 2026-11-27T14:35Z@50000), a note's text 'in quotes'")
            if text.startswith(";", pos):
                pos += 1
                continue
            if not text.startswith(")", pos):
                _fail(at, f"not understood at character {pos + 1}: expected ';' or ')'")
            pos += 1
            break
        out.append(item)
        if pos < len(text):
            if not text.startswith(",", pos) or pos + 1 == len(text):
                _fail(f"{where}[{len(out)}]", f"not understood at character {pos + 1}: "
                                              "drawings are separated by commas")
            pos += 1
    return _checked("drawings", out, where)


def _checked(field: str, value, where: str):
    """``value`` checked as the document's ``field``, errors named by the URL parameter."""
    try:
        return ChartConfig.check({field: value})[field]
    except StateError as exc:
        raise StateError(re.sub(rf"^{field}", where, str(exc))) from None


def format_view(view) -> str:
    return ",".join(_link_time(t) for t in view)


def parse_view(text: str, where: str = "view") -> tuple[pd.Timestamp, pd.Timestamp]:
    """``"2026-11-27T14:00Z,2026-11-27T16:00Z"``: the view range, checked."""
    _link_size(text, where)
    parts = text.split(",")
    if len(parts) != 2 or not all(re.fullmatch(_TIME, p.strip()) for p in parts):
        _fail(where, f"{text[:60]!r}: write START,END as UTC times, e.g. "
                     "2026-11-27T14:00Z,2026-11-27T16:00Z")
    return _checked("view_range", [p.strip() for p in parts], where)


class DeskConfig(param.Parameterized):
    """The desk: ``layout`` charts shown (1, 2 or 4), the ``theme``, the ``active`` chart (what
    the pickers change) and the charts (as many as the layout shows)."""

    layout = param.Selector(default=1, objects=list(LAYOUTS))
    theme = param.Selector(default="dark", objects=list(THEME_NAMES))
    active = param.Integer(default=0, bounds=(0, max(LAYOUTS) - 1))
    charts = param.List(default=[], item_type=ChartConfig)

    _KEYS = {"symbol": "symbol", "spec": "spec", "type": "chart_type", "panes": "panes",
             "studies": "studies", "draw": "drawings", "view": "view_range"}

    def __init__(self, **params):
        super().__init__(**params)
        self.fill()

    def fill(self) -> None:
        """As many charts as the layout shows (new ones copy the first chart's symbol and
        spec, as candles); every chart in the desk's theme."""
        charts = list(self.charts)
        first = charts[0] if charts else ChartConfig()
        while len(charts) < self.layout:
            charts.append(ChartConfig(symbol=first.symbol, spec=first.spec,
                                      chart_type="candles" if charts else first.chart_type))
        for chart in charts:
            chart.theme = self.theme
        self.charts = charts
        self.active = min(self.active, self.layout - 1)

    def to_query(self) -> str:
        """The URL query string (without '?'): defaults left out."""
        args: dict[str, str] = {}
        if self.layout != 1:
            args["layout"] = str(self.layout)
        if self.theme != "dark":
            args["mode"] = self.theme
        if self.active:
            args["active"] = str(self.active + 1)
        default = ChartConfig()
        for i, chart in enumerate(self.charts[:self.layout]):
            suffix = "" if i == 0 else str(i + 1)
            for key, field in self._KEYS.items():
                value = getattr(chart, field)
                if value == getattr(default, field):
                    continue
                if field == "studies":
                    value = format_studies(value)
                elif field == "panes":
                    value = ",".join(value)
                elif field == "drawings":
                    value = format_drawings(value)
                    _link_size(value, key + suffix)
                elif field == "view_range":
                    value = format_view(value)
                args[key + suffix] = value
        return urlencode(args, safe="(),=:;@'")

    @classmethod
    def from_query(cls, args) -> "DeskConfig":
        """A desk from URL query arguments: a query string, or ``{name: [values]}`` (as
        ``parse_qs`` or Panel's ``session_args`` give, bytes or text). Unknown names are
        refused, so a typo is not silently ignored."""
        if isinstance(args, str):
            args = parse_qs(args.lstrip("?"), keep_blank_values=True)
        values = {}
        for name, vals in args.items():
            val = vals[0] if isinstance(vals, (list, tuple)) else vals
            values[name] = val.decode("utf-8", "replace") if isinstance(val, bytes) else str(val)
        allowed = {"layout", "mode", "active"} | {
            key + suffix for key in cls._KEYS for suffix in ("", "2", "3", "4")}
        unknown = sorted(set(values) - allowed)
        if unknown:
            _fail("URL", f"unknown parameter {unknown[0]!r}; the desk takes layout, mode, active,"
                         f" and symbol, spec, type, panes, studies, draw, view (2, 3, 4 after them"
                         f" for the other charts, e.g. symbol2)")
        layout = values.get("layout", "1")
        if layout not in ("1", "2", "4"):
            _fail("layout", f"{layout!r}: use 1, 2 or 4")
        layout = int(layout)
        beyond = sorted(n for n in values if n[-1:].isdigit() and int(n[-1]) > layout)
        if beyond:
            _fail(beyond[0], f"chart {beyond[0][-1]} is not shown with layout={layout}: use "
                             f"layout={2 if int(beyond[0][-1]) == 2 else 4}")
        theme = values.get("mode", "dark")
        if theme not in THEME_NAMES:
            _fail("mode", f"{theme!r}: use one of {', '.join(THEME_NAMES)}")
        active = values.get("active", "1")
        if active not in [str(i + 1) for i in range(layout)]:
            _fail("active", f"{active!r}: use a chart number from 1 to {layout}")
        charts = []
        for i in range(layout):
            suffix = "" if i == 0 else str(i + 1)
            doc = {}
            for key, field in cls._KEYS.items():
                if key + suffix not in values:
                    continue
                text = values[key + suffix]
                if field == "studies":
                    doc[field] = parse_studies(text, key + suffix)
                elif field == "drawings":
                    doc[field] = parse_drawings(text, key + suffix)
                elif field == "view_range":
                    doc[field] = [_iso(t) for t in parse_view(text, key + suffix)]
                elif field == "panes":
                    doc[field] = [p.strip() for p in text.split(",") if p.strip()]
                else:
                    doc[field] = text
            if not doc and charts:
                doc = {"symbol": charts[0].symbol, "spec": charts[0].spec,
                       "chart_type": "candles"}
            try:
                charts.append(ChartConfig.from_dict(doc))
            except StateError as exc:
                # name the URL parameter (symbol2), not the document's field
                message = str(exc)
                for key, field in cls._KEYS.items():
                    message = re.sub(rf"^{field}\b", key + suffix, message)
                raise StateError(message) from None
        return cls(layout=layout, theme=theme, active=int(active) - 1, charts=charts)

    def to_dict(self) -> dict:
        return {"layout": self.layout, "theme": self.theme, "active": self.active,
                "charts": [c.to_dict() for c in self.charts]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "DeskConfig":
        try:
            doc = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise StateError(f"not a JSON document ({exc})") from None
        if not isinstance(doc, dict) or set(doc) - {"layout", "theme", "active", "charts"}:
            _fail("", "a desk is {layout, theme, active, charts}")
        if doc.get("layout", 1) not in LAYOUTS:
            _fail("layout", f"{doc.get('layout')!r}: use 1, 2 or 4")
        if doc.get("theme", "dark") not in THEME_NAMES:
            _fail("theme", f"{doc.get('theme')!r}: use one of {', '.join(THEME_NAMES)}")
        charts = doc.get("charts", [])
        if not isinstance(charts, list) or len(charts) > max(LAYOUTS):
            _fail("charts", f"a list of at most {max(LAYOUTS)} charts")
        active = doc.get("active", 0)
        if not isinstance(active, int) or isinstance(active, bool) or not (
                0 <= active < doc.get("layout", 1)):
            _fail("active", "the index of a shown chart")
        return cls(layout=doc.get("layout", 1), theme=doc.get("theme", "dark"), active=active,
                   charts=[ChartConfig.from_dict(c, f"charts[{i}]")
                           for i, c in enumerate(charts)])

    def __eq__(self, other):
        return isinstance(other, DeskConfig) and self.to_dict() == other.to_dict()

    __hash__ = param.Parameterized.__hash__
