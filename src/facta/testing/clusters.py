"""Private PostgreSQL servers for tests and benchmarks: a primary, its replicas, partitions.

Each :class:`Cluster` is a server of its own (``initdb`` and ``pg_ctl`` of the newest
installed PostgreSQL, run as the ``postgres`` user when the caller is root) on a free
loopback port in a temporary directory, so a test can stop, kill or replicate it without
touching a shared server. :meth:`Cluster.replica` makes a hot standby that streams from it
(``pg_basebackup --write-recovery-conf``).

    with private_cluster() as primary, primary.replica() as standby:
        store = facta.connect(primary.url("orders"), replicas=[standby.url("orders")])

Raises :class:`ClustersUnavailable` where no server programs are installed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

__all__ = ["Cluster", "ClustersUnavailable", "private_cluster", "server_binaries"]

# Small and fast: these servers hold test data only.
_TEST_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "60",
    "shared_buffers": "32MB",
}


class ClustersUnavailable(RuntimeError):
    """No PostgreSQL server programs (``initdb``, ``pg_ctl``) are installed."""


def server_binaries() -> Path:
    """The newest installed server's programs (Debian's layout), or the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise ClustersUnavailable("no PostgreSQL server programs installed (initdb, pg_ctl)")
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Cluster:
    """One private PostgreSQL server: its directory, port and programs.

    ``settings`` are server options (``-c name=value``) on top of fast test defaults (no
    fsync); pass ``durable=True`` to :func:`private_cluster` for a server that syncs to disk
    like a production one (benchmarks).
    """

    def __init__(self, directory: Path, settings: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.binaries = server_binaries()
        self.port = _free_port()
        self.settings = dict(settings or {})

    def url(self, schema: str | None = None, database: str = "postgres") -> str:
        """A facta URL of the server (``?schema=`` when given)."""
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return url if schema is None else f"{url}?schema={schema}"

    def conninfo(self, database: str = "postgres") -> str:
        """A libpq connection string for psycopg."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def run(self, program: str, *args: str) -> str:
        """Run one of the server's programs as the ``postgres`` user; its output."""
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        command = [*as_postgres, str(self.binaries / program), *args]
        done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        return done.stdout

    def create(self) -> None:
        """``initdb`` the data directory (trust authentication, user ``postgres``)."""
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        log = str(self.directory / "server.log")
        self.run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash); quiet when it is not running."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop the server (fast) and start it again on the same port."""
        self.stop()
        self.start()

    def terminate_sessions(self) -> int:
        """End every other client session, as an administrator may, and wait until they are
        gone; how many there were."""
        others = "FROM pg_stat_activity WHERE backend_type = 'client backend'"
        others += " AND pid <> pg_backend_pid()"
        with psycopg.connect(self.conninfo(), autocommit=True) as admin:
            row = admin.execute(f"SELECT count(pg_terminate_backend(pid)) {others}".encode())
            count = int(row.fetchone()[0])  # type: ignore[index]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if admin.execute(f"SELECT count(*) {others}".encode()).fetchone() == (0,):
                    break
                time.sleep(0.01)
            return count

    def execute(self, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement in autocommit mode; its rows (none for a command)."""
        with psycopg.connect(self.conninfo(database), autocommit=True) as connection:
            cursor = connection.execute(statement.encode())
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        """Create database ``name``; its name."""
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    @contextlib.contextmanager
    def replica(self, timeout: float = 60.0) -> Iterator[Cluster]:
        """A hot standby streaming from this server, started; removed afterwards."""
        directory = _directory("facta-replica-")
        standby = Cluster(directory, self.settings)
        try:
            self.run(
                "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-D", str(standby.data), "--write-recovery-conf", "--checkpoint=fast",
                "--wal-method=stream", "--no-sync",
            )  # fmt: skip
            standby.start()
            standby.wait_for_replay(self, timeout)
            yield standby
        finally:
            standby.stop("immediate")
            shutil.rmtree(directory, ignore_errors=True)

    def wait_for_replay(self, primary: Cluster, timeout: float = 60.0) -> None:
        """Wait until this standby has replayed everything ``primary`` has written so far."""
        target = primary.execute("SELECT pg_current_wal_lsn()::text")[0][0]
        deadline = time.monotonic() + timeout
        query = f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
        while self.execute(query)[0][0] is not True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"standby on port {self.port} did not reach {target}")
            time.sleep(0.02)


def _directory(prefix: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return directory


@contextlib.contextmanager
def private_cluster(durable: bool = False, **settings: str) -> Iterator[Cluster]:
    """A new PostgreSQL server of the caller's own, started; stopped and removed afterwards.

    ``durable`` keeps PostgreSQL's own defaults (fsync on) instead of the fast test ones;
    ``settings`` are further server options.
    """
    directory = _directory("facta-cluster-")
    cluster = Cluster(directory, {**({} if durable else _TEST_SETTINGS), **settings})
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
