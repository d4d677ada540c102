"""Stores of market data: an embedded DuckDB file (default) or PostgreSQL/TimescaleDB.

``open_store(url)`` gives the synchronous API (notebooks, CLI), ``open_async_store(url)`` the
async one (server). The URL is ``duckdb:///path/to/file.duckdb`` or
``postgresql://user@host:port/db`` (options such as ``?retention=90d`` are documented in
``data_access.pg_url.parse_url``; a DuckDB URL takes ``?memory_limit=512MB``).
"""
from __future__ import annotations

from .pg_url import redact_url
from .store import BASE_SPEC, AsyncStore, Store, StoreError

__all__ = ["open_store", "open_async_store", "redact_url", "Store", "AsyncStore", "StoreError",
           "BASE_SPEC"]


def _scheme(url: str) -> tuple[str, str]:
    scheme, sep, rest = str(url).partition("://")
    if not sep or scheme not in ("duckdb", "postgresql", "postgres"):
        if not str(url).strip():
            problem = "the store URL is empty"
        elif sep:
            problem = f"store URL {redact_url(url)!r}: unknown scheme {scheme!r}"
        else:
            problem = f"store URL {redact_url(url)!r} is not a URL"
        raise StoreError(f"{problem}: use duckdb:///path/to/file.duckdb or "
                         "postgresql://user@host:port/db")
    return ("postgresql" if scheme == "postgres" else scheme), rest


def open_store(url: str) -> Store:
    """The synchronous store for ``url``."""
    scheme, rest = _scheme(url)
    if scheme == "duckdb":
        from .duckdb_store import open_duckdb
        return open_duckdb(rest)
    from .adapters import SyncFromAsync
    from .postgres_store import connect
    return SyncFromAsync.open(lambda: connect(url))


async def open_async_store(url: str, *, duckdb_memory_limit: str | None = None) -> AsyncStore:
    """The async store for ``url``; ``duckdb_memory_limit``: a DuckDB store's memory limit
    when the URL sets none (``?memory_limit=``)."""
    scheme, rest = _scheme(url)
    if scheme == "duckdb":
        from .adapters import AsyncFromSync
        from .duckdb_store import open_duckdb
        return AsyncFromSync(open_duckdb(rest, duckdb_memory_limit))
    from .postgres_store import connect
    return await connect(url)
