"""
A loopback HTTP relay for download links that can stop a download half-way, on purpose.

The emulator serves a 200 MiB video in well under a second on loopback, far too fast to kill a
worker "mid-download" reliably. Download links are pointed at this relay instead (the emulator's
``download_base_url``); it forwards each request to the emulator, headers included (so a leaked
``Authorization`` still reaches the emulator's counter), and streams the answer back. The first
download is held after ``hold_after_bytes`` bytes until :meth:`release`: the worker is then
provably in the middle of writing, and stays there until the test has killed it.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import requests

FORWARDED_HEADERS = ("Content-Type", "Content-Length")


class DownloadGate:
    def __init__(self, upstream: str, hold_after_bytes: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.hold_after_bytes = hold_after_bytes
        self.holding = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.requests = 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate._relay(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="download-gate", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def release(self) -> None:
        self._release.set()

    def _relay(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests += 1
            hold = self.requests == 1
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        with requests.get(self.upstream + handler.path, headers=headers, stream=True, timeout=60) as answer:
            handler.send_response(answer.status_code)
            for name in FORWARDED_HEADERS:
                if name in answer.headers:
                    handler.send_header(name, answer.headers[name])
            handler.send_header("Connection", "close")
            handler.end_headers()
            sent = 0
            try:
                for chunk in answer.raw.stream(2**20, decode_content=False):
                    handler.wfile.write(chunk)
                    sent += len(chunk)
                    if hold and sent >= self.hold_after_bytes and not self._release.is_set():
                        handler.wfile.flush()
                        self.holding.set()
                        self._release.wait(timeout=120)
                        hold = False
            except (BrokenPipeError, ConnectionResetError):
                return  # the client died (that is the point of the test)

    def __enter__(self) -> DownloadGate:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
