"""
Throw-away Postgres and Redis servers on loopback, from Debian's ``postgresql`` and ``redis-server``
packages, for the CeleryExecutor deployment (tests/e2e, benchmarks/bench_deployment.py).

Each server runs in the foreground as a child of this process (its own session), keeps all its files
in one temp dir, listens on 127.0.0.1 on a free port only, and is gone with that dir when stopped.
Postgres runs as the ``postgres`` user when this process is root (``initdb`` and ``postgres`` refuse
root); its cluster is not registered with Debian's ``pg_ctlcluster`` tools, so nothing outside the
temp dir changes. Durability is off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the
cluster dies with the test anyway, and it spares the shared machine's disk.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from contextlib import suppress
from pathlib import Path
from types import TracebackType

from tests.support.net import free_port, wait_for

DEBIAN_PACKAGES = ("postgresql", "redis-server")


class ServiceUnavailable(RuntimeError):
    """The server's package is missing and could not be installed (the message says why)."""


def postgres_bin_dir() -> Path | None:
    """Debian's ``/usr/lib/postgresql/<major>/bin`` with ``initdb`` and ``postgres`` (newest major)."""
    root = Path("/usr/lib/postgresql")
    majors = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists() and (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return majors[-1] if majors else None


def missing_packages() -> list[str]:
    missing = []
    if postgres_bin_dir() is None:
        missing.append("postgresql")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


def ensure_packages(install: bool = True) -> None:
    """
    Make sure ``postgresql`` and ``redis-server`` are installed: with ``install``, apt-get installs
    what is missing (root only). Raises :class:`ServiceUnavailable` saying what is missing and why.
    """
    missing = missing_packages()
    if not missing:
        return
    if not install:
        raise ServiceUnavailable(f"Debian packages not installed: {' '.join(missing)}")
    if os.geteuid() != 0:
        raise ServiceUnavailable(
            f"Debian packages not installed: {' '.join(missing)} (apt-get needs root: "
            f"`apt-get install -y {' '.join(missing)}`)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        try:
            result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ServiceUnavailable(f"`{' '.join(cmd)}` failed: {err!r}") from err
        if result.returncode != 0:
            raise ServiceUnavailable(
                f"`{' '.join(cmd)}` exited {result.returncode}: {result.stderr.strip()[-600:]}"
            )
    still = missing_packages()
    if still:
        raise ServiceUnavailable(f"apt-get ran but these are still missing: {' '.join(still)}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[bytes], signum: int, grace: float = 20) -> None:
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class PostgresServer:
    """A Postgres cluster in a temp dir, on ``127.0.0.1:<free port>``, database ``airflow``, trust auth."""

    database = "airflow"
    user = "postgres"

    def __init__(self) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise ServiceUnavailable("Debian package postgresql not installed")
        self.bin_dir = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hailuo-postgres-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        # initdb and postgres refuse to run as root: as root, run them as the postgres user.
        self._run_as = "postgres" if os.geteuid() == 0 else None
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.dir, 0o700)

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg2)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            args, user=self._run_as, capture_output=True, text=True, timeout=timeout, cwd=self.dir
        )
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(args)}` exited {result.returncode}: {result.stderr}")

    def start(self) -> PostgresServer:
        self._run(
            str(self.bin_dir / "initdb"),
            *("-D", str(self.data), "--auth=trust", f"--username={self.user}"),
            *("--encoding=UTF8", "--no-locale", "--no-sync"),
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "max_connections": "200",
            "shared_buffers": "64MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                user=self._run_as,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                start_new_session=True,
            )
        wait_for("postgres to accept connections", self._ready, 60, 0.2, detail=self.log_tail)
        self._run(
            str(self.bin_dir / "createdb"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database),
        )
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise ServiceUnavailable(f"postgres exited {self.process.returncode}:\n{self.log_tail()}")
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
            capture_output=True,
        )
        return result.returncode == 0

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, signal.SIGINT)  # "fast" shutdown: end sessions, no checkpoint wait
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RedisServer:
    """A Redis server on ``127.0.0.1:<free port>``, no persistence, its files in a temp dir."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("Debian package redis-server not installed")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hailuo-redis-"))
        self.log_path = self.dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            *("--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                start_new_session=True,
            )
        wait_for("redis to listen", self._ready, 30, 0.1, detail=self.log_tail)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise ServiceUnavailable(f"redis-server exited {self.process.returncode}:\n{self.log_tail()}")
        if not _port_open(self.port):
            return False
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
