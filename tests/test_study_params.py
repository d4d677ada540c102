"""The bridge from the catalogue to settings panels (``dashboards.study_params``): every study's
parameters become ``param`` parameters, Panel generates a widget for each, and the values the
widgets hold pass the catalogue's check."""
from __future__ import annotations

import panel as pn
import param
import pytest

from dashboards.study_params import parameter, settings_class, study_values
from indicators.catalogue import CATALOGUE
from indicators.registry import Param

KINDS = {"int": param.Integer, "float": param.Number, "bool": param.Boolean,
         "choice": param.Selector}


def widgets(settings) -> dict:
    """The widgets ``pn.Param`` generates for a settings object (one per parameter, in order,
    each labelled with its parameter's label), by parameter name."""
    names = [n for n in settings.param if n != "name"]
    made = pn.Param(settings, show_name=False).layout.objects
    assert [w.name for w in made] == [settings.param[n].label for n in names]
    return dict(zip(names, made))


def test_every_study_gets_a_settings_panel_whose_values_pass_the_check():
    for study in CATALOGUE:
        settings = settings_class(study)()
        made = widgets(settings)
        assert list(made) == [p.name for p in study.params], study.name
        for p in study.params:
            par = settings.param[p.name]
            assert type(par) is KINDS[p.type], (study.name, p.name)
            assert getattr(settings, p.name) == p.default
            if p.type in ("int", "float"):
                assert par.bounds == (p.min, p.max)
        assert study_values(settings) == study.defaults


def test_widgets_move_the_settings_and_the_check_accepts_them():
    settings = settings_class("imbalances")()
    made = widgets(settings)
    made["ratio"].value = 1000.0  # the top of the range
    made["rows"].value = 4
    made["compare_edges"].value = True
    assert study_values(settings) == {"ratio": 1000.0, "min_volume": 0.0, "rows": 4,
                                      "compare_edges": True}
    ma = settings_class("MA")()
    matype = [p for p in CATALOGUE.get("MA").params if p.name == "matype"][0]
    picker = widgets(ma)["matype"]  # offers the labels, holds the codes
    assert picker.options == dict(zip(matype.labels, matype.choices))
    picker.value = 1
    assert ma.matype == 1 and study_values(ma)["matype"] == 1


def test_param_refuses_what_the_catalogue_refuses():
    settings = settings_class("imbalances")()
    with pytest.raises(ValueError, match="ratio"):
        settings.ratio = 0.5
    with pytest.raises(ValueError, match="rows"):
        settings.rows = 2.5
    with pytest.raises(ValueError, match="how"):
        settings_class("heatmap")().how = "median"
    assert study_values(settings)["ratio"] == 3.0  # unchanged


def test_parameter_kinds():
    assert parameter(Param("n", 5, min=1, max=9)).bounds == (1, 9)
    assert parameter(Param("x", 0.5)).bounds == (None, None)
    assert parameter(Param("flag", True)).default is True
    sel = parameter(Param("mode", "a", choices=("a", "b")))
    assert sel.objects == ["a", "b"] and sel.default == "a"
    assert settings_class("RSI").study is CATALOGUE.get("RSI")
