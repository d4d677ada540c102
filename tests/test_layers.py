"""The layers of ../shared/ARCHITECTURE.md, checked over the whole tree's import graph (every
import, those inside functions too, built by grimp, the engine of import-linter): arrows point
down only."""
from __future__ import annotations

import sys

import grimp
import pytest

PACKAGES = ("tradeflow", "indicators", "data_access", "dashboards")
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES, include_external_packages=True)


def imports_of(graph, package: str) -> dict[str, set[str]]:
    """Each module of ``package`` (the package itself included) -> what it imports directly."""
    modules = {package} | graph.find_descendants(package)
    return {m: graph.find_modules_directly_imported_by(m) for m in modules}


def layer(module: str) -> str:
    top = module.split(".")[0]
    if module == "tradeflow.model":
        return "model"
    return {"tradeflow": "application"}.get(top, top) if top in PACKAGES else "external"


def offenders(graph, package, allowed) -> list[str]:
    return sorted(f"{m} -> {i}" for m, imported in imports_of(graph, package).items()
                  for i in imported if not allowed(i))


def test_the_model_imports_only_numpy_pandas_and_the_standard_library(graph):
    assert offenders(graph, "tradeflow.model",
                     lambda i: i in STDLIB | {"numpy", "pandas"}) == []


@pytest.mark.parametrize("package", ["indicators", "data_access"])
def test_studies_and_stores_import_only_themselves_and_the_model(graph, package):
    assert offenders(graph, package, lambda i: layer(i) in ("external", "model")
                     or i.split(".")[0] == package) == []


def test_studies_use_only_numeric_libraries(graph):
    assert offenders(graph, "indicators", lambda i: layer(i) != "external"
                     or i in STDLIB | {"numpy", "pandas", "talib"}) == []


def test_the_application_never_imports_the_dashboards(graph):
    # one exception: the notebook API (``tf.chart``) hands out the desk's chart component
    found = offenders(graph, "tradeflow", lambda i: layer(i) != "dashboards")
    assert found == ["tradeflow.api -> dashboards.notebook"]


def test_components_never_talk_sql(graph):
    assert offenders(graph, "dashboards",
                     lambda i: i not in {"duckdb", "asyncpg", "sqlalchemy", "psycopg"}) == []


def test_the_check_sees_a_violation():
    """The rules above bite: an import pointing up is reported."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True)
    graph.add_import(importer="indicators.registry", imported="tradeflow.bars")
    assert offenders(graph, "indicators", lambda i: layer(i) in ("external", "model")
                     or i.split(".")[0] == "indicators") == ["indicators.registry -> tradeflow.bars"]


def cycles_within(graph, package: str) -> list[str]:
    """Each import ``a -> b`` between modules of ``package`` where ``b`` leads back to ``a``."""
    modules = {package} | graph.find_descendants(package)
    return sorted(f"{m} -> {i}" for m in modules
                  for i in graph.find_modules_directly_imported_by(m) & modules
                  if graph.chain_exists(importer=i, imported=m, as_packages=False))


def test_no_import_cycle_among_the_ingest_modules(graph):
    assert cycles_within(graph, "tradeflow.ingest") == []


def test_the_cycle_check_sees_a_cycle():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True)
    graph.add_import(importer="tradeflow.ingest.chunks", imported="tradeflow.ingest.files")
    assert "tradeflow.ingest.chunks -> tradeflow.ingest.files" in cycles_within(
        graph, "tradeflow.ingest")
