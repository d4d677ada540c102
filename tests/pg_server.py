"""Throwaway PostgreSQL clusters for the tests (a pytest plugin; ``tests/conftest.py`` loads it).

Fixtures:

* ``pg_url`` (session): a plain PostgreSQL cluster, TimescaleDB not preloaded;
* ``timescale_url`` (session): a cluster with ``shared_preload_libraries=timescaledb`` and the
  extension created in ``template1`` (so every database made from it has it); skipped when
  TimescaleDB is not installed;
* ``pg_db_url`` / ``timescale_db_url`` (function): a fresh database in that cluster, dropped after
  the test, so store tests never see each other's rows.

Each cluster is ``initdb``-ed into a temporary directory (trust auth, fsync off, a free port on
127.0.0.1, the unix socket in that directory), started with ``pg_ctl`` and removed at the end of
the session. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user. When no server is installed, root installs it with apt (CI's ``.ci/run`` normally has).
"""
from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PG_ROOT = "/usr/lib/postgresql"
TIMESCALE_HINT = "TimescaleDB is not installed: run ../shared/scripts/install-timescaledb.sh"


# --------------------------------------------------------------------------------------------
# Finding (or installing) the server


def _bindirs() -> list[Path]:
    """Server bin directories, newest major first."""
    found = glob.glob(f"{PG_ROOT}/*/bin/postgres")
    return sorted((Path(p).parent for p in found), key=lambda d: int(d.parent.name), reverse=True)


def _install_postgres() -> None:
    """Fallback for a fresh machine: ``apt-get install postgresql`` (needs root)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("PostgreSQL is not installed: apt-get install -y postgresql")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")


def postgres_bindir() -> Path:
    """The newest installed server's bin directory, installing PostgreSQL if there is none."""
    dirs = _bindirs()
    if not dirs:
        _install_postgres()
        dirs = _bindirs()
    if not dirs:
        pytest.fail(f"no PostgreSQL server under {PG_ROOT} after installing it")
    return dirs[0]


def has_timescaledb(bindir: Path) -> bool:
    """True when the TimescaleDB library is installed into that server."""
    pkglibdir = bindir.parent / "lib"
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        out = subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            pkglibdir = Path(out.stdout.strip())
    return (pkglibdir / "timescaledb.so").exists()


# --------------------------------------------------------------------------------------------
# Clusters


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> str | None:
    """The unprivileged account to run the server as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    pytest.fail("running as root and neither a 'postgres' nor a 'nobody' account exists")


async def _admin(url: str, *statements: str) -> None:
    import asyncpg

    con = await asyncpg.connect(url)
    try:
        for sql in statements:
            await con.execute(sql)
    finally:
        await con.close()


class Cluster:
    """One throwaway cluster: ``start()``, ``url(db)``, ``create_database()``, ``stop()``."""

    def __init__(self, bindir: Path, settings: dict[str, str] | None = None):
        self.bindir = bindir
        self.settings = settings or {}
        self.user = _server_user()
        self.port = 0
        self.root: Path | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        argv = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.root)
        if done.returncode:
            log = self.root / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}\n{tail}")
        return done

    def start(self) -> "Cluster":
        # /tmp rather than pytest's tmp_path: the server account must be able to reach it
        self.root = Path(tempfile.mkdtemp(prefix="tradeflow-pg-"))
        try:
            if self.user:
                shutil.chown(self.root, self.user)
            self._init()
            self._launch()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            raise
        return self

    def _init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        conf = {
            "listen_addresses": "'127.0.0.1'", "unix_socket_directories": f"'{self.root}'",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "max_connections": "300", "timezone": "'UTC'", **self.settings,
        }
        with open(self.data / "postgresql.conf", "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())

    def _launch(self) -> None:
        for attempt in range(3):  # the free port may be taken before the server binds it
            self.port = _free_port()
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                          "-o", f"-p {self.port}", "-w", "-t", "60", "start")
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def execute(self, *statements: str, db: str = "postgres") -> None:
        asyncio.run(_admin(self.url(db), *statements))

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a test that failed may have left a store open
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def start_timescale_cluster(bindir: Path) -> Cluster:
    """A cluster that preloads TimescaleDB, with the extension in every new database."""
    cluster = Cluster(bindir, {
        "shared_preload_libraries": "'timescaledb'",
        "timescaledb.telemetry_level": "off",
        # no background jobs: policies are created and inspected, tests run them explicitly
        # (run_job), so nothing compresses or drops chunks behind a test's back
        "timescaledb.max_background_workers": "0",
    }).start()
    try:
        cluster.execute("CREATE EXTENSION IF NOT EXISTS timescaledb", db="template1")
        cluster.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except BaseException:
        cluster.stop()
        raise
    return cluster


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = Cluster(postgres_bindir()).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def timescale_cluster():
    bindir = postgres_bindir()
    if not has_timescaledb(bindir):
        pytest.skip(TIMESCALE_HINT)
    cluster = start_timescale_cluster(bindir)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_cluster) -> str:
    """URL of the plain PostgreSQL cluster's ``postgres`` database."""
    return pg_cluster.url()


@pytest.fixture(scope="session")
def timescale_url(timescale_cluster) -> str:
    """URL of the TimescaleDB cluster's ``postgres`` database (extension created)."""
    return timescale_cluster.url()


def _fresh_database(cluster: Cluster):
    name = cluster.create_database()
    yield cluster.url(name)
    cluster.drop_database(name)


@pytest.fixture
def pg_db_url(pg_cluster):
    """A fresh, empty database on the plain PostgreSQL cluster."""
    yield from _fresh_database(pg_cluster)


@pytest.fixture
def timescale_db_url(timescale_cluster):
    """A fresh database (TimescaleDB extension created) on the TimescaleDB cluster."""
    yield from _fresh_database(timescale_cluster)
