"""A module's private names (``_x``) stay in it (../shared/ARCHITECTURE.md, *Style*): what two
modules share is public, in the lower one. Checked over every ``from ... import`` of the tree."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tradeflow", "indicators", "data_access", "dashboards")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(source: str, importer: str, is_package: bool = False):
    """(importer, module, name) for each private name ``source`` imports from another module."""
    here = importer if is_package else importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = here.split(".")
        module = node.module or ""
        if node.level:
            base = base[:len(base) - (node.level - 1)]
            module = ".".join(base + ([module] if module else []))
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                yield importer, module, alias.name


def allowed(importer: str, module: str) -> bool:
    """No private name passes between modules, not even within one package (what two modules
    share is public, in the lower one); a package's ``__init__`` is a module like the others."""
    return importer == module


def offenders(files) -> list[str]:
    found = []
    for path in files:
        name = module_name(path)
        for importer, module, private in private_imports(path.read_text(), name,
                                                         path.name == "__init__.py"):
            if module.split(".")[0] in PACKAGES and not allowed(importer, module):
                found.append(f"{importer} imports {private} from {module}")
    return sorted(found)


def test_no_private_name_crosses_modules():
    files = [p for top in PACKAGES for p in (ROOT / top).rglob("*.py")]
    assert offenders(files) == []


def test_the_check_sees_a_private_import():
    def check(module: str, source: str, is_package=False):
        return [f"{i} imports {n} from {f}"
                for i, f, n in private_imports(source, module, is_package) if not allowed(i, f)]

    # a live module taking a batch module's helper, relative or absolute
    assert check("indicators.orderflow.live.per_bar", "from ..footprint import _reset_mode") == [
        "indicators.orderflow.live.per_bar imports _reset_mode from indicators.orderflow.footprint"]
    assert check("indicators.profile.live", "from indicators.profile.tpo import _x")
    assert check("indicators.orderflow.live", "from ..._frames import _y", is_package=True)
    # across packages
    assert check("tradeflow.importer", "from tradeflow.ingest.files import _iterate")
    # within one package too: a package's __init__ or a sibling module
    assert check("indicators.orderflow.live", "from .storage import _Columns", True) == [
        "indicators.orderflow.live imports _Columns from indicators.orderflow.live.storage"]
    assert check("indicators.orderflow.live.per_bar", "from .storage import _Columns")
    assert check("tradeflow.ingest.files", "from tradeflow.ingest.errors import _esc")
    # public names pass
    assert check("indicators.profile.live", "from indicators.profile.tpo import TPOProfile") == []
    assert check("indicators.orderflow.live.naked", "from .storage import Columns") == []
