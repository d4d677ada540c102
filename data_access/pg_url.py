"""Store URLs. ``redact_url`` masks the password of any store URL for messages and logs.
``parse_url`` splits a PostgreSQL URL into a ``Target`` (the DSN asyncpg connects with, and a
password-free URL and ``host:port/db`` for messages) and the store's own ``Options``
(``timescaledb``, ``compress_after``, ``retention``), which it reads and strips from the query."""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .store import StoreError

OFF = "off"
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


# the value of a query option whose name says it is a secret (password=, sslpassword=, token=)
_SECRET_OPTION = re.compile(r"([?&][^=&#]*(?:pass|secret|token|key)[^=&#]*=)[^&#]*", re.I)


def redact_url(url) -> str:
    """``url`` with its password (``user:password@``) and secret query options shown as ``***``;
    for any text, even one that is not a valid URL, so that no message or log echoes a secret."""
    text = str(url)
    scheme, sep, rest = text.rpartition("://") if "://" in text else ("", "", text)
    head, query_sep, query = rest.partition("?")
    # the last @ before the query ends the credentials (an unencoded password may hold / or @)
    creds, at, host = head.rpartition("@")
    user, colon, _ = creds.partition(":")
    if at and colon and "/" not in user:
        head = f"{user}:***@{host}"
    return _SECRET_OPTION.sub(r"\1***", f"{scheme}{sep}{head}{query_sep}{query}")


@dataclass(frozen=True)
class Options:
    """The store's own URL options (intervals as PostgreSQL interval text)."""

    timescaledb: str = "auto"
    compress_after: str | None = None
    retention: str | None = None


@dataclass(frozen=True)
class Target:
    """Where the store connects: the DSN for asyncpg and a password-free description."""

    dsn: str
    url: str  # the URL without its password (store.url)
    where: str  # "host:port/db" for messages


def parse_url(url: str) -> tuple[Target, Options]:
    """Split a store URL into the asyncpg DSN and the store's options.

    URL: ``postgresql://user[:password]@host:port/db[?option=value&...]``. These options are read
    (and stripped) by the store; any other query option goes to asyncpg (``sslmode``...):

    * ``timescaledb=auto|on|off`` -- ``auto`` (default) uses TimescaleDB when the extension exists
      in the database or can be created there (the server must preload it); ``on`` requires it;
      ``off`` keeps plain tables even when it is installed.
    * ``compress_after=7d`` -- TimescaleDB: chunks older than this move to the columnstore (a
      columnstore policy on every hypertable; 7 days when the database has none yet; ``off``
      removes it).
    * ``retention=90d`` -- TimescaleDB: raw trades and depth older than this are dropped, chunk by
      chunk, by a retention policy (``off`` removes it; absent leaves the database as it is).
      Rollups (bars, footprint) are kept. On plain PostgreSQL the option is ignored with a logged
      warning: a DELETE on every write would make a historical import delete what it had just
      stored.

    Durations are ``<n>s|m|h|d|w``.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError as exc:  # "Port out of range 0-65535", "Invalid IPv6 URL"...
        raise StoreError(f"store URL {shown!r}: {_url_problem(exc)}; expected "
                         "postgresql://user@host:port/db") from None
    if port == 0:
        raise StoreError(f"store URL {shown!r}: the port must be a number from 1 to 65535")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    mode = query.pop("timescaledb", "auto").strip().lower()
    if mode not in ("auto", "on", "off"):
        raise StoreError(f"store URL option timescaledb={mode!r}: use auto, on or off")
    opts = Options(timescaledb=mode,
                   compress_after=_interval("compress_after", query.pop("compress_after", None)),
                   retention=_interval("retention", query.pop("retention", None)))
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    host = parts.hostname or "localhost"
    netloc = f"{parts.username}@" if parts.username else ""
    netloc += f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port else ""
    public = urlunsplit(("postgresql", netloc, parts.path, _public_query(parts.query), ""))
    return Target(dsn, public, f"{host}:{port or 5432}{parts.path or '/'}"), opts


def _url_problem(exc: ValueError) -> str:
    text = str(exc)
    if "Port" in text:
        return "the port must be a number from 1 to 65535"
    return text[0].lower() + text[1:] if text else "not a URL"


def _interval(name: str, value: str | None) -> str | None:
    """The duration option ``name`` as interval text, OFF, or None when it is absent."""
    if value is None:
        return None
    if value.strip().lower() in ("off", "none"):
        return OFF
    m = _DURATION.match(value)
    if not m or int(m.group(1)) == 0:
        raise StoreError(f"store URL option {name}={value!r}: use a duration such as 90d, 12h or "
                         "2w, or 'off'")
    return f"{int(m.group(1))} {_UNITS[m.group(2)]}"


def _public_query(query: str) -> str:
    """The query string without anything that looks like a secret."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
             if "pass" not in k.lower() and "secret" not in k.lower()]
    return urlencode(pairs)
