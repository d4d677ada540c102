"""API keys: made once, shown once, kept only as a salted HMAC, checked in constant time.

A key reads ``tfk_<id>_<secret>``: ``id`` (16 hex digits) finds the stored row without a scan,
``secret`` is 256 random bits. With that much randomness a slow hash adds nothing (nobody can
guess through 2**256), so the store keeps ``HMAC-SHA256(salt, secret)`` with a random salt per
key, and a presented key is compared with ``hmac.compare_digest``. The key itself is never
stored, logged or echoed; errors name the key's *name* or nothing.

A key's ``timezone`` says how the API reads timestamps without a zone that its feeder sends
(Sierra Chart posts the chart's local time without a zone).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

PREFIX = "tfk_"
_KEY = re.compile(r"tfk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")


class ApiKeyError(ValueError):
    """A key request a user can fix (bad name, unknown zone, unknown key name)."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    name: str
    timezone: str
    created_at: pd.Timestamp
    revoked_at: pd.Timestamp | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise ApiKeyError(f"key name {name!r}: use 1-64 letters, digits, spaces and . _ @ -, "
                        "starting with a letter or digit")
    return name


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiKeyError(f"time zone {tz!r} is unknown: use an IANA name such as UTC, "
                        "America/New_York or Europe/London") from None
    return tz


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def new_key(name: str, timezone: str = "UTC", now=None) -> tuple[str, dict]:
    """(the key to show once, the row to store)."""
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    row = {"key_id": key_id, "name": check_name(name), "salt": salt,
           "digest": _digest(salt, secret), "timezone": check_timezone(timezone),
           "created_at": (now or pd.Timestamp.now(tz="UTC")).to_pydatetime(),
           "revoked_at": None}
    return f"{PREFIX}{key_id}_{secret}", row


def _stored(row: dict) -> ApiKey:
    revoked = row.get("revoked_at")
    return ApiKey(row["key_id"], row["name"], row["timezone"], pd.Timestamp(row["created_at"]),
                  None if revoked is None else pd.Timestamp(revoked))


def create(store, name: str, timezone: str = "UTC") -> str:
    """Make and store a key named ``name`` (no other active key may have that name); returns
    the key, which is not kept anywhere."""
    name = check_name(name)
    if any(k.name == name and k.active for k in list_keys(store)):
        raise ApiKeyError(f"an active key is already named {name!r}: revoke it first or choose "
                        "another name")
    key, row = new_key(name, timezone)
    store.add_api_key(row)
    return key


def list_keys(store) -> list[ApiKey]:
    return [_stored(r) for r in store.api_keys()]


def revoke(store, name: str) -> int:
    n = store.revoke_api_key(name, pd.Timestamp.now(tz="UTC").to_pydatetime())
    if not n:
        raise ApiKeyError(f"no active key is named {name!r}: see 'tradeflow apikey list'")
    return n


class KeyRing:
    """The stored keys, for checking presented ones; ``load(rows)`` replaces them (the server
    reloads after each change it makes and on a miss, so a key made elsewhere works at once)."""

    def __init__(self, rows=()):
        self._rows: dict[str, dict] = {}
        self.load(rows)

    def load(self, rows) -> None:
        self._rows = {r["key_id"]: r for r in rows}

    def find(self, presented: str | None) -> tuple[str, ApiKey | None]:
        """("ok", key) for an active key; ("missing"|"malformed"|"unknown"|"revoked", None)
        otherwise (reasons for the answer, never containing the key)."""
        if not presented:
            return "missing", None
        match = _KEY.fullmatch(presented.strip())
        if not match:
            return "malformed", None
        row = self._rows.get(match.group(1))
        # compare even when the id is unknown, so timing tells nothing about which ids exist
        salt, digest = (row["salt"], row["digest"]) if row else ("00" * 16, "0" * 64)
        equal = hmac.compare_digest(_digest(salt, match.group(2)), digest)
        if row is None or not equal:
            return "unknown", None
        key = _stored(row)
        return ("ok", key) if key.active else ("revoked", None)

    def knows_id(self, presented: str | None) -> bool:
        match = _KEY.fullmatch((presented or "").strip())
        return bool(match) and match.group(1) in self._rows
