"""Loopback networking for tests and benchmarks: a free port, waiting for a condition, a counting proxy."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (another process may take it later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.2,
    *,
    detail: Callable[[], str] | str = "",
    error: type[Exception] = TimeoutError,
) -> T:
    """
    Call ``probe`` until it returns something truthy (and return that), or raise ``error`` after
    ``timeout`` seconds naming ``what``, the probe's last exception and ``detail`` (logs, say).
    A probe that raises is tried again: it may race with what it watches.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as err:
            last_error = err
        if time.monotonic() >= deadline:
            why = f" (last error: {last_error!r})" if last_error else ""
            tail = detail() if callable(detail) else detail
            raise error(
                f"timed out after {timeout:g}s waiting for {what}{why}" + (f"\n{tail}" if tail else "")
            )
        time.sleep(interval)


class CountingProxy:
    """
    A loopback TCP forwarder to ``target`` (a URL) that counts the connections it accepts.

    Point a client at :attr:`url` instead of the server: :attr:`accepted` is then the number of TCP
    connections the client opened, and :attr:`open_connections` how many it has not closed yet.
    """

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._scheme = parts.scheme or "http"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self.accepted = 0
        self.closed = 0
        self._thread = threading.Thread(target=self._accept_loop, name="counting-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self.accepted - self.closed

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self._target)
            with self._lock:
                self.accepted += 1
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            if from_client:  # the client closed (or reset) its end of the connection
                with self._lock:
                    self.closed += 1
