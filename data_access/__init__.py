"""Stores of market data: an embedded DuckDB file (default) or PostgreSQL/TimescaleDB.

``open_store(url)`` gives the synchronous API (notebooks, CLI), ``open_async_store(url)`` the
async one (server). The URL is ``duckdb:///path/to/file.duckdb`` or
``postgresql://user@host:port/db`` (options such as ``?retention=90d`` are documented in
``data_access.pg_url.parse_url``).
"""
from __future__ import annotations

from .store import BASE_SPEC, AsyncStore, Store, StoreError

__all__ = ["open_store", "open_async_store", "Store", "AsyncStore", "StoreError", "BASE_SPEC"]


def _scheme(url: str) -> tuple[str, str]:
    scheme, sep, rest = str(url).partition("://")
    if not sep or scheme not in ("duckdb", "postgresql", "postgres"):
        raise StoreError(
            f"store URL {url!r} not understood: use duckdb:///path/to/file.duckdb or "
            "postgresql://user@host:port/db"
        )
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


async def open_async_store(url: str) -> AsyncStore:
    """The async store for ``url``."""
    scheme, rest = _scheme(url)
    if scheme == "duckdb":
        from .adapters import AsyncFromSync
        from .duckdb_store import open_duckdb
        return AsyncFromSync(open_duckdb(rest))
    from .postgres_store import connect
    return await connect(url)
