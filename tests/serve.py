"""``tradeflow serve`` run as a user runs it (the installed entry point, a subprocess on loopback),
and the ``tradeflow`` command beside it, for the server and API tests."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

TRADEFLOW = str(Path(sys.executable).with_name("tradeflow"))

# the Sierra Chart bar of the issue, exactly as ACSIL posts it
SIERRA_BAR = {"timestamp": "2025-11-26 21:17:14", "open": 4162.88, "high": 4162.88,
              "low": 4162.58, "close": 4162.58, "volume": 19, "bid_volume": 15, "ask_volume": 4,
              "number_of_trades": 3, "open_interest": None,
              "chart_info": {"symbol": "XAUUSD", "chart_number": 1, "seconds_per_bar": 1}}


def tradeflow(args, store: str, ok=True, timeout=300) -> subprocess.CompletedProcess:
    env = dict(os.environ, TRADEFLOW_STORE=store)
    proc = subprocess.run([TRADEFLOW, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def new_key(store: str, name: str = "feeder", *extra) -> str:
    out = tradeflow(["apikey", "create", name, *extra], store).stdout
    return out.splitlines()[0].strip()


def prepared(store: str, instruments=(), keys=(), revoked=()) -> dict[str, str]:
    """Set ``store`` up for a served test in this process: what ``tradeflow instruments add``,
    ``apikey create`` and ``apikey revoke`` do (the same ``tradeflow.server.control``
    operations), without a process each; the commands themselves are tested in test_cli and
    test_server. ``instruments``: (symbol, tick size) pairs; ``keys``: names or (name, time
    zone) pairs; ``revoked``: names of keys made, then revoked. Returns {name: key}."""
    from data_access import open_store
    from tradeflow.server import control

    made = {}
    with open_store(store) as s:
        for symbol, tick_size in instruments:
            control.instruments_add(s, symbol, tick_size)
        for key in [*keys, *revoked]:
            name, timezone = (key, "UTC") if isinstance(key, str) else key
            made[name] = control.apikey_create(s, name, timezone).lines[0]
        for name in revoked:
            control.apikey_revoke(s, name)
    return made


class Served:
    """A running ``tradeflow serve``: ``url`` (http://127.0.0.1:PORT), ``api`` (its /api/v1),
    ``output`` (what it printed so far)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines = proc, []
        self.ready = threading.Event()
        self.url = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            found = re.search(r"at (http://[^/\s]+)/ \(the desk", line)
            if found:
                self.url = found.group(1)
                self.ready.set()
        self.ready.set()

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    @property
    def ws(self) -> str:
        return f"ws://{self.url.split('://', 1)[1]}/api/v1/ingest/ws"

    @property
    def output(self) -> str:
        return "".join(self.lines)


@contextlib.contextmanager
def serving(store: str, *args, timeout: float = 120, env: dict | None = None,
            command=(TRADEFLOW, "serve")):
    """Start ``tradeflow serve --port 0`` on ``store`` (``env``: more environment; ``command``:
    another program that serves the same way, e.g. a benchmark's in-process server); stop it
    with SIGINT (as Ctrl+C) after."""
    env = dict(os.environ, TRADEFLOW_STORE=store, **(env or {}))
    proc = subprocess.Popen([*command, "--port", "0", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    served = Served(proc)
    try:
        if not served.ready.wait(timeout) or served.url is None:
            raise AssertionError(f"tradeflow serve did not start:\n{served.output}")
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
