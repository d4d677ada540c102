"""Store URLs: every bad URL gets one clear line with its password masked; an empty --store is
an error, not the default store; a stored instrument that breaks the rules is left out (with a
warning) instead of making the store unreadable."""
import asyncio
import logging

import duckdb
import pytest

from data_access import StoreError, open_store, redact_url
from data_access.pg_url import parse_url
from tests.test_cli import run
from tests.test_cli_errors import XSS, one_line_error
from tradeflow import config
from tradeflow.model import Instrument

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize("url, shown", [
    (f"postgresql://u:{SECRET}@h:5432/db", "postgresql://u:***@h:5432/db"),
    (f"postgresql://u:{SECRET}/x@y@h/db", "postgresql://u:***@h/db"),  # unencoded / and @
    (f"postgresql://u@h/db?password={SECRET}&sslmode=require",
     "postgresql://u@h/db?password=***&sslmode=require"),
    (f"postgresql://u@h/db?sslpassword={SECRET}", "postgresql://u@h/db?sslpassword=***"),
    (f"mysql://u:{SECRET}@h/db", "mysql://u:***@h/db"),
    (f"u:{SECRET}@h", "u:***@h"),  # no scheme at all
    ("duckdb:///data/a@b.duckdb", "duckdb:///data/a@b.duckdb"),  # no password: unchanged
    ("postgresql://u@h/db", "postgresql://u@h/db"),
])
def test_redact_url_masks_passwords_of_any_text(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize("url, message", [
    (f"postgresql://u:{SECRET}@h:99999/db", "the port must be a number from 1 to 65535"),
    (f"postgresql://u:{SECRET}@h:abc/db", "the port must be a number from 1 to 65535"),
    (f"postgresql://u:{SECRET}@h:0/db", "the port must be a number from 1 to 65535"),
    (f"postgresql://u:{SECRET}@h:-1/db", "the port must be a number from 1 to 65535"),
    (f"postgresql://u:{SECRET}@[::1/db", "invalid IPv6 URL"),
    (f"postgresql://u:{SECRET}@h/db?timescaledb=maybe", "timescaledb='maybe': use auto, on"),
    (f"postgresql://u:{SECRET}@h/db?retention=forever", "retention='forever': use a duration"),
])
def test_parse_url_refuses_bad_urls_without_the_password(url, message):
    with pytest.raises(StoreError, match=message) as err:
        parse_url(url)
    assert SECRET not in str(err.value)


BAD_URLS = [
    (f"mysql://u:{SECRET}@h/db", "unknown scheme 'mysql'"),
    (f"u:{SECRET}@h", "is not a URL"),
    (f"postgresql://u:{SECRET}@h:99999/db", "the port must be a number from 1 to 65535"),
    (f"postgresql://u:{SECRET}@h:abc/db", "the port must be a number from 1 to 65535"),
    (f"postgresql://u:{SECRET}@h:99999999999999999999/db", "the port must be a number"),
    (f"postgresql://u:{SECRET}@[::1/db", "invalid IPv6 URL"),
    (f"postgres://u:{SECRET}@127.0.0.1:1/db", "cannot connect to PostgreSQL at 127.0.0.1:1/db"),
    (f"postgresql://u@127.0.0.1:1/db?password={SECRET}", "cannot connect to PostgreSQL"),
    (f"postgresql://u:{SECRET}@127.0.0.1:1/db?sslmode=bogus", "sslmode"),
    (f"postgresql://u:{SECRET}@h/db?timescaledb=maybe", "use auto, on or off"),
    ("duckdb:relative.duckdb", "is not a URL"),
    ("duckdb://relative.duckdb", "use duckdb:///path/to/file.duckdb"),
]


@pytest.mark.parametrize("url, message", BAD_URLS)
@pytest.mark.parametrize("how", ["option", "environment"])
def test_every_bad_store_url_is_one_line_with_the_password_masked(url, message, how):
    args = ["--store", url] if how == "option" else []
    proc = run([*args, "instruments", "list"], store=url, ok=False)
    one_line_error(proc, message)
    assert SECRET not in proc.stderr + proc.stdout


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_store_option_is_refused_not_the_default(tmp_path, empty):
    # the default store lives in TRADEFLOW_HOME: it must stay untouched
    proc = run(["--store", empty, "instruments", "add", "NQ", "--tick-size", "0.25"],
               store="duckdb:///unused", ok=False, env={"TRADEFLOW_HOME": str(tmp_path)})
    one_line_error(proc, "the store URL is empty", "leave --store out")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreError, match="the store URL is empty"):
        config.store_url(empty)


def _insert_bad_instrument(url: str) -> None:
    """A row that today's rules refuse, written with SQL (as an older version or a hand edit)."""
    sql = ("INSERT INTO instruments (symbol, exchange, asset_class, tick_size, point_value, "
           f"session) VALUES ('{XSS}', '', 'other', 0.25, 1, 'UTC 00:00-24:00')")
    if url.startswith("duckdb"):
        con = duckdb.connect(url.removeprefix("duckdb://"))
        con.execute(sql)
        con.close()
    else:
        from tests.test_postgres_store import execute
        asyncio.run(execute(url, sql))


def test_a_stored_instrument_that_breaks_the_rules_is_left_out(store_url, caplog):
    with open_store(store_url) as s:
        s.add_instrument(Instrument("ES", 0.25))
    _insert_bad_instrument(store_url)
    with caplog.at_level(logging.WARNING), open_store(store_url) as s:
        assert [i.symbol for i in s.instruments()] == ["ES"]
        assert s.instrument("ES").tick_size == 0.25
        with pytest.raises(ValueError, match="is not valid"):
            s.instrument(XSS)
    assert f"stored instrument '{XSS}' left out" in caplog.text


def test_a_duckdb_url_sets_its_memory_limit(tmp_path):
    """``?memory_limit=`` caps DuckDB's buffers; the served default applies only without it;
    anything else in the query, or a limit that is not a size, is one line."""
    from data_access.duckdb_store import open_duckdb

    def limit(store):
        try:
            return store.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        finally:
            store.close()

    default = limit(open_store(f"duckdb:///{tmp_path}/a.duckdb"))
    assert limit(open_store(f"duckdb:///{tmp_path}/a.duckdb?memory_limit=64MB")) != default
    assert limit(open_duckdb(f"/{tmp_path}/a.duckdb?memory_limit=64MB", "128MB")) == \
        limit(open_duckdb(f"/{tmp_path}/a.duckdb", "64MB"))  # the URL's wins
    with pytest.raises(StoreError, match="unknown option 'threads'.*takes memory_limit"):
        open_store(f"duckdb:///{tmp_path}/a.duckdb?threads=2")
    with pytest.raises(StoreError, match="memory_limit='lots' is not a size"):
        open_store(f"duckdb:///{tmp_path}/a.duckdb?memory_limit=lots")
