"""Study settings as ``param`` parameters: the bridge from the catalogue
(:mod:`indicators.catalogue`) to a settings panel.

``settings_class(study)`` makes a ``param.Parameterized`` class with one parameter per study
parameter -- ``param.Integer``/``param.Number`` with the catalogue's inclusive bounds,
``param.Boolean``, ``param.Selector`` over the choices (by label where the choices have labels:
``matype`` offers ``SMA``, ``EMA``... and holds their codes) -- so ``pn.Param(settings_class(
"RSI"))`` is the study's settings panel; ``study_values(settings)`` gives the values back, checked
by the catalogue.

It lives in ``dashboards/`` because ``indicators/`` imports only numeric libraries (the layer rules
of ``tests/test_layers.py``): the catalogue stays free of any UI library, and its only readers of
``param`` parameters are the dashboards' settings panels.
"""
from __future__ import annotations

import re

import param

from indicators.catalogue import CATALOGUE, StudyInfo
from indicators.registry import Param

__all__ = ["parameter", "settings_class", "study_values"]


def parameter(p: Param) -> param.Parameter:
    """The ``param`` parameter of one catalogue parameter (type, default, bounds, description)."""
    doc = p.description or p.name
    if p.type == "bool":
        return param.Boolean(default=p.default, doc=doc)
    if p.type == "choice":
        objects = dict(zip(map(str, p.labels), p.choices)) if p.labels else list(p.choices)
        return param.Selector(default=p.default, objects=objects, doc=doc)
    kind = param.Integer if p.type == "int" else param.Number
    return kind(default=p.default, bounds=(p.min, p.max), doc=doc)


def settings_class(study: StudyInfo | str) -> type[param.Parameterized]:
    """A ``param.Parameterized`` class holding ``study``'s settings (a catalogue name or entry);
    its ``study`` attribute is the catalogue entry."""
    info = CATALOGUE.get(study) if isinstance(study, str) else study
    name = re.sub(r"\W", "_", info.name) + "Settings"
    attrs = {p.name: parameter(p) for p in info.params}
    cls = type(name, (param.Parameterized,), {"__doc__": f"Settings of {info.title}", **attrs})
    cls.study = info
    return cls


def study_values(settings: param.Parameterized) -> dict:
    """The values a settings object holds, checked by the catalogue (``check_params``)."""
    info = type(settings).study
    return info.check_params({p.name: getattr(settings, p.name) for p in info.params})
