"""Where TradeFlow keeps its data and which store it uses.

Custom indicators are Python files in the folders named by ``TRADEFLOW_INDICATORS`` (separated
like PATH), else in ``<data folder>/indicators`` when it exists.

The store is chosen by one URL, the same way in the CLI, the server and notebooks: the ``--store``
option when given, else the ``TRADEFLOW_STORE`` environment variable, else a DuckDB file in the
user's data folder (``TRADEFLOW_HOME`` overrides that folder).
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from data_access import StoreError


def data_dir() -> Path:
    """The folder for TradeFlow's own files (the default DuckDB store among them)."""
    home = os.environ.get("TRADEFLOW_HOME")
    return Path(home) if home else Path(platformdirs.user_data_dir("tradeflow"))


def default_store_url() -> str:
    return f"duckdb:///{data_dir() / 'tradeflow.duckdb'}"


def store_url(option: str | None = None) -> str:
    """The store URL in effect: ``option``, else ``$TRADEFLOW_STORE``, else the default.

    An option given but empty (``--store ""``) is an error, not the default: a script that meant
    to name a store must not write into another one. An empty ``$TRADEFLOW_STORE`` counts as unset,
    as shells treat empty variables."""
    if option is not None:
        if not option.strip():
            raise StoreError("the store URL is empty: use duckdb:///path/to/file.duckdb or "
                             "postgresql://user@host:port/db, or leave --store out for the "
                             "default store")
        return option
    return os.environ.get("TRADEFLOW_STORE") or default_store_url()


def indicator_dirs() -> list[Path]:
    """Folders whose ``*.py`` files define custom indicators (``@indicator``)."""
    named = os.environ.get("TRADEFLOW_INDICATORS")
    if named:
        return [Path(p) for p in named.split(os.pathsep) if p]
    default = data_dir() / "indicators"
    return [default] if default.is_dir() else []
