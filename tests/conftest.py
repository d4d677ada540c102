"""Shared fixtures: a store of every backend, PostgreSQL clusters started from system binaries."""
import pytest

pytest_plugins = ["tests.pg_server"]

BACKENDS = ["duckdb", "postgres", "timescaledb"]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A URL of an empty store, once per backend (PostgreSQL: a fresh database per test)."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/store.duckdb"
    if request.param == "postgres":
        return request.getfixturevalue("pg_db_url")
    return request.getfixturevalue("timescale_db_url")


@pytest.fixture
def store(store_url):
    from data_access import open_store

    s = open_store(store_url)
    yield s
    s.close()
