"""Where a running server can be found by the CLI of another terminal.

A DuckDB file serves one process. While ``tradeflow serve`` holds one, it writes
``<file>.server.json`` beside it: its address, its process id and a random control token, readable
by the file's owner only (mode 0600: whoever can read it can read the DuckDB file anyway). The
CLI finds it there and sends ``import``, ``export``, ``study``, ``instruments`` and ``apikey`` work
to the server (``tradeflow.server.control``) instead of failing on the file's lock. The file is
removed when the server stops; one left by a server that died is ignored (its process is gone).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Running:
    url: str  # http://host:port of the server
    pid: int
    token: str


def path_for(store_url: str) -> Path | None:
    """The address file of a DuckDB store URL (None for other stores: PostgreSQL serves many
    processes itself)."""
    scheme, sep, rest = store_url.partition("://")
    if scheme != "duckdb" or not sep or ":memory:" in rest or not rest.startswith("/"):
        return None
    path = rest[1:] if rest.startswith("//") else rest
    return Path(path).with_name(Path(path).name + ".server.json")


def write(store_url: str, url: str, token: str) -> Path | None:
    path = path_for(store_url)
    if path is None:
        return None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "pid": os.getpid(), "token": token}, f)
    return path


def remove(path: Path | None) -> None:
    if path is not None:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def find(store_url: str) -> Running | None:
    """The server holding ``store_url``, if one is running."""
    path = path_for(store_url)
    if path is None:
        return None
    try:
        info = json.loads(path.read_text())
        running = Running(str(info["url"]), int(info["pid"]), str(info["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(running.pid, 0)
    except ProcessLookupError:
        return None  # left by a server that died
    except PermissionError:
        pass  # alive, another user's
    return running
