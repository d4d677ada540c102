"""Where TradeFlow keeps its data and which store it uses.

Custom indicators are Python files in the folders named by ``TRADEFLOW_INDICATORS`` (separated
like PATH), else in ``<data folder>/indicators`` when it exists.

The store is chosen by one URL, the same way in the CLI, the server and notebooks: the ``--store``
option when given, else the ``TRADEFLOW_STORE`` environment variable, else a DuckDB file in the
user's data folder (``TRADEFLOW_HOME`` overrides that folder).

The origins that may show ``/embed`` in a frame: ``tradeflow serve --embed-origins``, else
``TRADEFLOW_EMBED_ORIGINS`` (comma-separated ``scheme://host[:port]``), else none (the server's
own pages only).
"""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from data_access import StoreError

EMBED_ORIGINS = "TRADEFLOW_EMBED_ORIGINS"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting and the value."""


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


# a DNS name (labels of letters, digits and inner hyphens) or an IPv4 address; IPv6 in brackets
_HOST = re.compile(r"(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def _ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def _origin(text: str, where: str) -> str:
    """``text`` as an origin ``scheme://host[:port]`` (lower case), else a ConfigError."""
    def bad(why: str):
        raise ConfigError(f"{where}: {text!r} is not an origin ({why}): write "
                          "scheme://host[:port], e.g. https://news.example.com or "
                          "http://127.0.0.1:8080")
    if any(c.isspace() or not c.isprintable() for c in text):
        bad("it holds a space or a control character")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        bad("its host or port cannot be read; a port is a number from 1 to 65535")
    if parts.scheme.lower() not in ("http", "https") or not text.lower().startswith(
            parts.scheme.lower() + "://"):
        bad("the scheme is http or https")
    if parts.username is not None or parts.password is not None:
        bad("no user or password")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        bad("no path, not even '/'")
    host = parts.hostname or ""
    ipv6 = parts.netloc.startswith("[")
    if not (_ipv6(host) if ipv6 else _HOST.fullmatch(host)):
        bad("the host is a name like example.com, an IPv4 address or [an IPv6 address]")
    if port == 0:
        bad("its port is not a number from 1 to 65535")
    shown = f"[{host}]" if ipv6 else host
    return f"{parts.scheme.lower()}://{shown.lower()}" + (f":{port}" if port else "")


def embed_origins(option: str | None = None) -> list[str]:
    """The origins allowed to show ``/embed`` in a frame: ``option`` (``--embed-origins``), else
    ``$TRADEFLOW_EMBED_ORIGINS``, else none. Comma-separated; each checked as
    ``scheme://host[:port]`` (a ConfigError names the first bad one)."""
    where = "--embed-origins" if option is not None else EMBED_ORIGINS
    text = option if option is not None else os.environ.get(EMBED_ORIGINS, "")
    origins = [_origin(item.strip(), where) for item in text.split(",") if item.strip()]
    return list(dict.fromkeys(origins))
