"""The CLI's side of ``tradeflow.server.control``: run an operation in the running server."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pyarrow as pa

from .control import CONTROL_HEADER, Result
from .runfile import Running


class ServerError(RuntimeError):
    """The running server refused the work (its message says why) or could not be reached."""


def call(server: Running, op: str, args: dict) -> Result:
    request = urllib.request.Request(
        f"{server.url}/api/v1/control/{op}", data=json.dumps(args, default=str).encode(),
        method="POST", headers={CONTROL_HEADER: server.token,
                                "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=None) as answer:
            body, kind = answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise ServerError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServerError(f"the server at {server.url} (process {server.pid}) holds the store but "
                          f"did not answer ({getattr(exc, 'reason', exc)}): wait for it, or stop "
                          "it and run the command again") from None
    if "arrow" in kind:
        return Result(frame=pa.ipc.open_stream(body).read_all().to_pandas())
    return Result(lines=json.loads(body)["lines"])
