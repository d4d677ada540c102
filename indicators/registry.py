"""The indicator registry: what every study is, and one way to compute any of them.

An :class:`Indicator` is a metadata record -- name, group, title, the bar columns it reads, its
parameters (type, default, valid range, description), its outputs, whether it overlays the price
or gets its own pane, its reference levels -- plus the plain function that computes it. The UI
builds its menus and settings dialogs from these records; :func:`compute` runs any of them on a
bars frame (``tradeflow.model`` layout: ``ts, open, high, low, close, volume, ask_volume,
bid_volume, delta, trades, open_interest``).

Built-in indicators (``indicators.ta``: every TA-Lib function) are registered in the module-level
:data:`REGISTRY` the first time it is asked for one. User code registers its own the same way::

    from indicators.registry import Param, indicator, compute

    @indicator(group="Order Flow", inputs=("ask_volume", "bid_volume"), outputs=("ratio",),
               params=[Param("period", 20, min=1, max=10_000, description="Smoothing window")],
               levels=(0.5,))
    def BUY_RATIO(ask, bid, period=20):
        ...  # numpy arrays in (float64, one per input, in order), array(s) out

    compute("buy_ratio", bars, period=50)   # names are case-insensitive

**The function's contract.** It is called as ``function(*arrays, **params)``: one float64 numpy
array per entry of ``inputs`` (in that order, all as long as the bars) and every parameter by
name, already validated. It returns one array per output (a single array when there is one
output, else a tuple in ``outputs`` order), each as long as the bars.

**Output columns** (the one naming scheme): an indicator with a single output gives one column
named after the indicator (``RSI``, ``CDLDOJI``, ``BUY_RATIO``); an indicator with several gives
``<NAME>_<output>`` for each (``MACD_macd``, ``MACD_macdsignal``, ``MACD_macdhist``;
``BBANDS_upperband``, ...). :attr:`Indicator.columns` lists them. The frame's index is the
bars' index.

**Inputs** are bar columns; ``compute(..., inputs={"close": "delta"})`` reads another column in
place of a default one (RSI of delta, an SMA of volume...), which is also how inputs that are not
bar columns (TA-Lib ``MAVP``'s ``periods``) are supplied.

This module imports numpy and pandas only (no I/O, nothing from the application).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import math
import numbers
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "IndicatorError", "Param", "Indicator", "Registry", "REGISTRY", "indicator", "compute",
    "get", "groups",
]

PARAM_TYPES = ("int", "float", "bool", "choice")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class IndicatorError(ValueError):
    """An indicator was asked for by an unknown name, with bad parameters or unusable bars."""


def _fmt_num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Param:
    """One parameter of an indicator.

    ``type`` is ``"int"``, ``"float"``, ``"bool"`` or ``"choice"``; left out it is inferred
    (``choices`` given: choice; a bool default: bool; an int default: int; else float).
    ``min``/``max`` are inclusive bounds (``None``: unbounded on that side). A choice parameter
    takes one of ``choices`` (its values, e.g. the MA type codes ``0..13``); ``labels`` are the
    display names of those values, in the same order, and are accepted by name as well
    (``matype="EMA"``). A bool parameter takes ``True`` or ``False`` (text: true/false, yes/no,
    on/off, 1/0).
    """

    name: str
    default: Any
    min: float | None = None
    max: float | None = None
    description: str = ""
    type: str | None = None
    choices: tuple = ()
    labels: tuple = ()

    def __post_init__(self):
        kind = self.type
        if kind is None:
            if self.choices:
                kind = "choice"
            elif isinstance(self.default, (bool, np.bool_)):
                kind = "bool"
            elif isinstance(self.default, numbers.Integral):
                kind = "int"
            else:
                kind = "float"
            object.__setattr__(self, "type", kind)
        if kind not in PARAM_TYPES:
            raise IndicatorError(f"parameter {self.name!r}: type must be one of "
                                 f"{', '.join(PARAM_TYPES)}, got {kind!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise IndicatorError(f"parameter {self.name!r}: min {self.min} > max {self.max}")
        object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "labels", tuple(self.labels))
        if kind == "choice":
            if not self.choices:
                raise IndicatorError(f"parameter {self.name!r}: a choice needs choices")
            if self.labels and len(self.labels) != len(self.choices):
                raise IndicatorError(f"parameter {self.name!r}: one label per choice")

    # -- describing --------------------------------------------------------------------------

    def label_of(self, value) -> str:
        """The display label of a choice value (the value itself when there are no labels)."""
        if self.labels and value in self.choices:
            return str(self.labels[self.choices.index(value)])
        return str(value)

    def describe_range(self) -> str:
        """The valid values, in words (used in error messages)."""
        if self.type == "choice":
            if self.labels:
                opts = ", ".join(f"{v} ({lab})" for v, lab in zip(self.choices, self.labels))
            else:
                opts = ", ".join(repr(v) for v in self.choices)
            return f"one of {opts}"
        if self.type == "bool":
            return "true or false"
        what = "an integer" if self.type == "int" else "a number"
        if self.min is not None and self.max is not None:
            return f"{what} from {_fmt_num(self.min)} to {_fmt_num(self.max)}"
        if self.min is not None:
            return f"{what} >= {_fmt_num(self.min)}"
        if self.max is not None:
            return f"{what} <= {_fmt_num(self.max)}"
        return what

    # -- validating --------------------------------------------------------------------------

    def validate(self, value, owner: str = "indicator"):
        """The value, coerced to the parameter's type, or an :class:`IndicatorError` naming the
        indicator (``owner``), the parameter and the valid values."""
        def bad(reason: str):
            return IndicatorError(f"{owner}: parameter {self.name!r} must be "
                                  f"{self.describe_range()}; {reason}")

        if self.type == "choice":
            if isinstance(value, str):
                wanted = value.strip().lower()
                for v, lab in zip(self.choices, self.labels or self.choices):
                    if str(lab).lower() == wanted or (isinstance(v, str) and v.lower() == wanted):
                        return v
            elif isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_)):
                for v in self.choices:
                    if isinstance(v, numbers.Number) and not isinstance(v, bool) and value == v:
                        return v
            raise bad(f"got {value!r}")
        if self.type == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise bad(f"got {value!r} of type {type(value).__name__}")
            return bool(value)

        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise bad(f"got {value!r} of type {type(value).__name__}")
        if self.type == "int":
            if not isinstance(value, numbers.Integral):
                fv = float(value)
                if not (math.isfinite(fv) and fv.is_integer()):
                    raise bad(f"got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad(f"got {value!r}")
        if (self.min is not None and value < self.min) or (self.max is not None
                                                            and value > self.max):
            raise bad(f"got {value!r}")
        return value

    def parse(self, text: str, owner: str = "indicator"):
        """A value given as text (a command line's ``--param``, a query string) converted to the
        parameter's type and validated: ``"21"``, ``"2.5"``, ``"true"``/``"false"``, a choice's
        value or label."""
        t = str(text).strip()
        try:
            if self.type == "int":
                value = int(t)
            elif self.type == "float":
                value = float(t)
            elif self.type == "bool":
                if t.lower() not in _TRUE + _FALSE:
                    raise ValueError(t)
                value = t.lower() in _TRUE
            else:  # a choice: its value (e.g. an MA type code) or its label ("EMA")
                value = int(t) if t.lstrip("-").isdigit() else t
        except ValueError:
            raise IndicatorError(f"{owner}: parameter {self.name!r} must be "
                                 f"{self.describe_range()}; got {text!r}") from None
        return self.validate(value, owner)

    def to_dict(self) -> dict:
        d = {"name": self.name, "type": self.type, "default": self.default, "min": self.min,
             "max": self.max, "description": self.description}
        if self.type == "choice":
            d["choices"] = list(self.choices)
            d["labels"] = list(self.labels)
        return d


@dataclass(frozen=True)
class Indicator:
    """What an indicator is, for the UI and for :func:`compute`.

    * ``name``: its key (unique, case-insensitive; built-ins are upper case: ``RSI``);
    * ``group``: the menu it sits in (TA-Lib's groups for its functions: ``Momentum
      Indicators``, ``Overlap Studies``, ``Pattern Recognition``...);
    * ``title``: the human name (``Relative Strength Index``);
    * ``inputs``: the bar columns it reads, in the order the function takes them;
    * ``params``: its :class:`Param` s, in the function's order;
    * ``outputs``: the names of what it returns (``("macd", "macdsignal", "macdhist")``);
    * ``overlay``: drawn over the price (moving averages, bands) rather than in its own pane;
    * ``levels``: reference lines for its pane (RSI 30/70, CCI -100/100, patterns 0);
    * ``function``: the callable (see the module docstring for its contract);
    * ``source``: where it comes from (``"talib"`` for TA-Lib functions, else ``"python"``);
    * ``meta``: anything else worth keeping (TA-Lib's function and output flags...).
    """

    name: str
    group: str
    title: str
    inputs: tuple[str, ...]
    params: tuple[Param, ...]
    outputs: tuple[str, ...]
    function: Callable = field(repr=False, compare=False)
    overlay: bool = False
    levels: tuple[float, ...] = ()
    source: str = "python"
    meta: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        for attr in ("inputs", "params", "outputs", "levels"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        if not self.name or not str(self.name).strip():
            raise IndicatorError("an indicator needs a name")
        if not self.outputs:
            raise IndicatorError(f"{self.name}: an indicator needs at least one output")
        if len(set(self.outputs)) != len(self.outputs):
            raise IndicatorError(f"{self.name}: output names repeat: {self.outputs}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise IndicatorError(f"{self.name}: parameter names repeat: {names}")
        if not callable(self.function):
            raise IndicatorError(f"{self.name}: function is not callable")
        # checked once here so that compute() can trust them
        for p in self.params:
            try:
                p.validate(p.default, self.name)
            except IndicatorError as exc:
                raise IndicatorError(f"{exc} (the default of {p.name!r})") from None

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names :func:`compute` gives (see the module docstring)."""
        if len(self.outputs) == 1:
            return (self.name,)
        return tuple(f"{self.name}_{o}" for o in self.outputs)

    @functools.cached_property
    def _column_index(self) -> pd.Index:
        return pd.Index(self.columns)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise IndicatorError(f"{self.name}: unknown parameter {name!r}; "
                             f"valid parameters: {self._param_names()}")

    def _param_names(self) -> str:
        return ", ".join(p.name for p in self.params) or "(none)"

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``params``, each validated (unknown names rejected)."""
        known = {p.name: p for p in self.params}
        unknown = [k for k in params if k not in known]
        if unknown:
            k = unknown[0]
            raise IndicatorError(
                f"{self.name}: unknown parameter {k!r}; valid parameters: {self._param_names()}"
            )
        return {name: (p.validate(params[name], self.name) if name in params else p.default)
                for name, p in known.items()}

    def to_dict(self) -> dict:
        """Plain metadata (no function), for the UI or JSON."""
        return {"name": self.name, "group": self.group, "title": self.title,
                "inputs": list(self.inputs), "params": [p.to_dict() for p in self.params],
                "outputs": list(self.outputs), "columns": list(self.columns),
                "overlay": self.overlay, "levels": list(self.levels), "source": self.source}

    def __call__(self, bars, inputs: Mapping[str, str] | None = None, **params) -> pd.DataFrame:
        return _compute(self, bars, inputs, params)


# --------------------------------------------------------------------------------------------
# Computing


def _column(bars, name: str, owner: str = "indicator") -> np.ndarray:
    """One column as a contiguous float64 array (a view when it already is one)."""
    arr = None
    getter = getattr(bars, "_get_column_array", None)  # pandas' own column access: ~10x
    if getter is not None:                              # cheaper than building a Series
        try:
            loc = bars.columns.get_loc(name)
            if isinstance(loc, int):
                arr = getter(loc)
        except Exception:
            arr = None
    if arr is None:
        col = bars[name]
        arr = col.to_numpy() if hasattr(col, "to_numpy") else col
    if not (isinstance(arr, np.ndarray) and arr.dtype == np.float64):
        dtype = getattr(arr, "dtype", None)
        if dtype is not None and not pd.api.types.is_numeric_dtype(dtype):
            raise IndicatorError(f"{owner}: column {name!r} is not numeric (dtype {dtype})")
        try:
            if hasattr(arr, "to_numpy") and not isinstance(arr, np.ndarray):  # nullable dtypes
                arr = arr.to_numpy(dtype="float64", na_value=np.nan)
            else:
                arr = np.asarray(arr, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise IndicatorError(f"{owner}: column {name!r} is not numeric ({exc})") from None
    if arr.ndim != 1:
        raise IndicatorError(f"{owner}: column {name!r} is not one-dimensional")
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def _frame(ind: "Indicator", outs: Sequence[np.ndarray], index) -> pd.DataFrame:
    """The result frame, sharing the output arrays; the column index is built once per
    indicator (building one is most of the cost of a small frame)."""
    if len(outs) == 1:
        return pd.DataFrame(outs[0].reshape(-1, 1), index=index, columns=ind._column_index,
                            copy=False)
    frame = pd.DataFrame(dict(enumerate(outs)), index=index, copy=False)
    frame.columns = ind._column_index
    return frame


def _compute(ind: Indicator, bars, inputs: Mapping[str, str] | None,
             params: Mapping[str, Any]) -> pd.DataFrame:
    values = ind.resolve_params(params)
    mapping = dict(inputs or {})
    stray = [k for k in mapping if k not in ind.inputs]
    if stray:
        raise IndicatorError(f"{ind.name}: inputs= maps {stray[0]!r}, which it does not read; "
                             f"its inputs are {', '.join(ind.inputs) or '(none)'}")
    cols = [mapping.get(c, c) for c in ind.inputs]
    have = bars.columns if isinstance(bars, pd.DataFrame) else bars.keys()
    missing = [c for c in cols if c not in have]
    if missing:
        hint = "" if any(m in mapping.values() for m in missing) else (
            f"; pass them or read other columns with inputs={{{missing[0]!r}: 'column'}}")
        raise IndicatorError(f"{ind.name}: the bars lack column(s) {', '.join(map(repr, missing))}"
                             f" (it reads {', '.join(cols)}){hint}")
    arrays = [_column(bars, c, ind.name) for c in cols]
    index = bars.index if isinstance(bars, pd.DataFrame) else None
    n = len(bars) if index is not None else (len(arrays[0]) if arrays else 0)

    try:
        result = ind.function(*arrays, **values)
    except IndicatorError:
        raise
    except Exception as exc:
        if ind.source != "talib":
            raise
        # TA-Lib checks some things only in C (e.g. MAVP's minperiod <= maxperiod)
        raise IndicatorError(f"{ind.name}: TA-Lib refused the call with "
                             f"{', '.join(f'{k}={v!r}' for k, v in values.items()) or 'no params'}"
                             f": {exc}") from exc
    outs = result if isinstance(result, tuple) else (
        tuple(result) if isinstance(result, list) else (result,))
    if len(outs) != len(ind.outputs):
        raise IndicatorError(f"{ind.name}: the function returned {len(outs)} array(s), "
                             f"expected {len(ind.outputs)} ({', '.join(ind.outputs)})")
    arrays_out = []
    for col, out in zip(ind.columns, outs):
        arr = np.asarray(out)
        if arr.shape != (n,):
            raise IndicatorError(f"{ind.name}: output {col!r} has shape {arr.shape}, "
                                 f"expected ({n},), one value per bar")
        if not (arr.flags.owndata and arr.flags.writeable):
            arr = arr.copy()  # a view (of an input, say): the frame gets its own data
        arrays_out.append(arr)
    return _frame(ind, arrays_out, pd.RangeIndex(n) if index is None else index)


# --------------------------------------------------------------------------------------------
# The registry


class Registry:
    """Indicators by case-insensitive name. ``autoload`` names modules imported (once, on first
    use) to register the built-ins."""

    def __init__(self, autoload: Sequence[str] = ()):
        self._by_key: dict[str, Indicator] = {}
        self._autoload = tuple(autoload)
        self._loaded = not self._autoload
        self._loading = False
        self._lock = threading.RLock()

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:  # other threads wait here until the built-ins are in
            if self._loaded or self._loading:  # _loading: those modules registering into us
                return
            self._loading = True
            try:
                for mod in self._autoload:
                    importlib.import_module(mod)
                self._loaded = True
            finally:
                self._loading = False

    def register(self, ind: Indicator, *, replace: bool = False) -> Indicator:
        if not isinstance(ind, Indicator):
            raise IndicatorError(f"can only register an Indicator, got {type(ind).__name__}")
        self._ensure_loaded()
        with self._lock:
            if ind.key in self._by_key and not replace:
                raise IndicatorError(f"an indicator named {self._by_key[ind.key].name!r} is "
                                     "already registered; pass replace=True to replace it")
            self._by_key[ind.key] = ind
        return ind

    def unregister(self, name: str) -> Indicator:
        self._ensure_loaded()
        with self._lock:
            ind = self.get(name)
            del self._by_key[ind.key]
            return ind

    def get(self, name: str | Indicator) -> Indicator:
        if isinstance(name, Indicator):
            return name
        self._ensure_loaded()
        try:
            return self._by_key[str(name).strip().lower()]
        except KeyError:
            raise IndicatorError(f"unknown indicator {name!r}; see REGISTRY.names() or "
                                 "REGISTRY.groups() for what exists") from None

    def __contains__(self, name) -> bool:
        self._ensure_loaded()
        if isinstance(name, Indicator):
            return self._by_key.get(name.key) is name
        return str(name).strip().lower() in self._by_key

    def __iter__(self) -> Iterator[Indicator]:
        self._ensure_loaded()
        return iter(sorted(self._by_key.values(), key=lambda i: i.key))

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._by_key)

    def names(self) -> list[str]:
        return [i.name for i in self]

    def groups(self) -> dict[str, list[Indicator]]:
        """Group name -> its indicators (sorted by name), groups sorted."""
        out: dict[str, list[Indicator]] = {}
        for ind in self:
            out.setdefault(ind.group, []).append(ind)
        return dict(sorted(out.items()))

    def by_group(self, group: str) -> list[Indicator]:
        """The indicators of one group (case-insensitive), sorted by name."""
        g = group.strip().lower()
        return [i for i in self if i.group.lower() == g]

    def compute(self, name: str | Indicator, bars, inputs: Mapping[str, str] | None = None,
                **params) -> pd.DataFrame:
        """See the module-level :func:`compute`."""
        return _compute(self.get(name), bars, inputs, params)


REGISTRY = Registry(autoload=("indicators.ta",))


def get(name: str) -> Indicator:
    """The indicator registered under ``name`` (case-insensitive) in :data:`REGISTRY`."""
    return REGISTRY.get(name)


def groups() -> dict[str, list[Indicator]]:
    return REGISTRY.groups()


def compute(name: str | Indicator, bars, inputs: Mapping[str, str] | None = None,
            **params) -> pd.DataFrame:
    """Compute an indicator of :data:`REGISTRY` over ``bars``.

    ``params`` override the defaults and are validated (unknown name, wrong type, out of range:
    :class:`IndicatorError`, a ``ValueError``, naming the indicator, the parameter and the valid
    values). ``inputs`` maps a default input column to another column of ``bars``. Returns a frame
    with the bars' index and the indicator's :attr:`~Indicator.columns`.
    """
    return REGISTRY.compute(name, bars, inputs, **params)


# --------------------------------------------------------------------------------------------
# The decorator


def _params_from_signature(fn: Callable, inputs: Sequence[str], given: Sequence[Param],
                           name: str) -> tuple[Param, ...]:
    """The parameters of ``fn`` after its ``len(inputs)`` array arguments, in its order: those
    described in ``given``, and a :class:`Param` (unbounded) for each other keyword with an int,
    float or bool default. A described name the function cannot take, or an undescribed one without
    a default, is an error now rather than at the first compute."""
    given_by_name = {p.name: p for p in given}
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins: trust the description
        return tuple(given)
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    args = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL,
                                                                  p.VAR_KEYWORD)]
    positional = [p for p in args if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())
    if len(positional) < len(inputs) and not takes_varargs:
        raise IndicatorError(f"{name}: the function takes {len(positional)} positional "
                             f"argument(s) but reads {len(inputs)} input(s) ({', '.join(inputs)})")
    array_args = {p.name for p in positional[:len(inputs)]}
    out: list[Param] = []
    for p in args:
        if p.name in array_args:
            continue
        if p.name in given_by_name:
            out.append(given_by_name.pop(p.name))
        elif isinstance(p.default, (bool, np.bool_)):
            out.append(Param(p.name, bool(p.default)))
        elif isinstance(p.default, numbers.Real):
            out.append(Param(p.name, p.default))
        elif p.default is p.empty:
            raise IndicatorError(f"{name}: function argument {p.name!r} has no default; give it "
                                 "one or describe it with a Param")
    if given_by_name and not takes_kwargs:
        raise IndicatorError(f"{name}: the function takes no parameter(s) "
                             f"{', '.join(map(repr, given_by_name))}")
    out.extend(given_by_name.values())  # taken by **kwargs
    return tuple(out)


def indicator(name: str | None = None, *, group: str = "Custom", title: str | None = None,
              inputs: Sequence[str] = ("close",), params: Sequence[Param] = (),
              outputs: Sequence[str] | None = None, overlay: bool = False,
              levels: Sequence[float] = (), registry: Registry | None = None,
              replace: bool = False, meta: Mapping[str, Any] | None = None):
    """Register the decorated function as an indicator and return it unchanged.

    ``name`` defaults to the function's name; ``outputs`` to ``("value",)``; ``title`` to the
    first line of its docstring. Parameters not described in ``params`` are taken from the
    function's keyword defaults (ints and floats, unbounded; bools). ``registry`` defaults to
    :data:`REGISTRY`. The record is attached to the function as ``fn.indicator``.
    """
    def decorate(fn: Callable) -> Callable:
        ind_name = name or fn.__name__
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        ind = Indicator(
            name=ind_name, group=group, title=title or (doc[0] if doc else ind_name),
            inputs=tuple(inputs), params=_params_from_signature(fn, inputs, params, ind_name),
            outputs=tuple(outputs or ("value",)), function=fn, overlay=overlay,
            levels=tuple(levels), source="python", meta=dict(meta or {}),
        )
        (registry if registry is not None else REGISTRY).register(ind, replace=replace)
        try:
            fn.indicator = ind
        except (AttributeError, TypeError):
            pass
        return fn

    if callable(name):  # bare @indicator
        fn, name = name, None
        return decorate(fn)
    return decorate
