"""What every API handler shares: JSON answers and errors, the body limit, who may call.

Every error is ``{"status": "error", "error": "<what was wrong>"}`` with a 4xx status (a 5xx
only for the server's own faults, whose details go to the log, never to the client). A key is
never part of a message or a log line.
"""
from __future__ import annotations

import ipaddress
import json
import logging

import tornado.web

from .context import ServerContext

log = logging.getLogger("tradeflow.server")

MAX_BODY = 32 * 1024 * 1024  # bytes of one request body
API_KEY_HEADER = "X-API-Key"


class ApiError(Exception):
    """An answer other than success: HTTP ``status`` and the message for the client."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def is_loopback(remote_ip: str | None) -> bool:
    """Whether a client address is this machine (IPv4-mapped loopback counts)."""
    try:
        ip = ipaddress.ip_address((remote_ip or "").split("%")[0])
    except ValueError:
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


class ApiHandler(tornado.web.RequestHandler):
    """Base of the API's handlers: ``self.ctx`` is the server's context."""

    def initialize(self, ctx: ServerContext):
        self.ctx = ctx
        self.key = None  # the caller's ApiKey once checked

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def check_xsrf_cookie(self):  # an API of keys, not cookies
        return None

    def write_json(self, value, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value, allow_nan=False, default=str))

    def _handle_request_exception(self, e):
        if isinstance(e, ApiError):
            if self._finished:
                return
            self.clear()
            for name, value in e.headers.items():
                self.set_header(name, value)
            self.write_json({"status": "error", "error": e.message}, e.status)
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs):
        # tornado's own refusals (405, a malformed request) and our faults: one JSON line,
        # no traceback to the client
        reason = self._reason if status_code < 500 else \
            "internal error; the server log has the details"
        self.finish(json.dumps({"status": "error", "error": reason}))

    def log_exception(self, typ, value, tb):
        if isinstance(value, ApiError):  # the client's mistake: one line, at info
            log.info("%s %s: %s %s", self.request.method, self.request.path, value.status,
                     value.message)
            return
        super().log_exception(typ, value, tb)

    # who may call ---------------------------------------------------------------------------
    async def require_key(self) -> None:
        """A valid, active API key in ``X-API-Key``, else 401 (none) or 403 (wrong)."""
        self.key = await self.ctx.check_key(self.request.headers.get(API_KEY_HEADER))

    async def allow_read(self) -> None:
        """Reads are open to loopback clients; others need a key."""
        if not is_loopback(self.request.remote_ip):
            await self.require_key()

    @property
    def timezone(self) -> str:
        """The zone of times without one: the key's, else UTC."""
        return self.key.timezone if self.key else "UTC"
