"""
A loopback proxy that breaks one HTTP exchange at a chosen phase, for proving what a submit did.

It sits between the hook and the emulator, plain TCP or TLS (it terminates TLS itself with a
certificate from a throw-away CA, and speaks plain HTTP to the emulator). The first exchange it
handles gets the fault; later ones pass through untouched, so a client that sends again is seen
doing so (:attr:`FaultProxy.connections`) and its second attempt succeeds. Faults that act before a
connection exists (refused, a connect that never completes) last until :meth:`FaultProxy.heal`.

Each exchange is one connection: the request is sent upstream with ``Connection: close`` and the
answer read to its end, so the proxy knows exactly what the emulator received and answered.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

#: A TLS alert record: fatal (2) handshake_failure (40).
TLS_HANDSHAKE_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"
#: An application-data record whose contents no key decrypts.
BOGUS_TLS_RECORD = b"\x17\x03\x03\x00\x20" + bytes(range(32))
#: How long a stalled answer is held before the proxy gives up on the client.
STALL_CAP_SECONDS = 15.0


@dataclass(frozen=True)
class Fault:
    """
    Where the exchange breaks and how.

    ``phase``: ``connect`` (``refuse``, ``stall``), ``handshake`` (``unknown_ca``, ``alert``; TLS
    only), ``request`` (``close``/``reset`` once ``cut`` = ``headers`` or ``body`` is half received;
    that half is forwarded), or ``answer`` (after the whole request: ``close``, ``reset``,
    ``bogus_tls``, ``status_line``, ``half_body``, ``stall``, or ``replace`` with ``canned``).
    ``forward``: whether the service gets the whole request first (``answer`` phase).
    """

    name: str
    phase: str
    action: str
    cut: str | None = None
    canned: tuple[int, str, bytes] | None = None
    forward: bool = True
    tls_only: bool = False


class FaultProxy:
    """The proxy on a background thread; use it as a context manager."""

    def __init__(
        self,
        upstream: str,
        fault: Fault | None,
        *,
        server_context: ssl.SSLContext | None = None,
        untrusted_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._fault = fault
        self._tls = server_context
        self._untrusted = untrusted_context
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._stuffing: socket.socket | None = None
        #: Connections accepted (a refused or never-completed connect is not one).
        self.connections = 0
        #: Whole requests the emulator received through the proxy.
        self.forwarded = 0
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> FaultProxy:
        fault = self._fault
        if fault is not None and fault.phase == "connect" and fault.action == "refuse":
            return self  # bound, not listening: connects are refused until heal()
        if fault is not None and fault.phase == "connect" and fault.action == "stall":
            # A full accept queue: the kernel drops further SYNs, so a connect never completes.
            self._listener.listen(0)
            self._stuffing = socket.create_connection(("127.0.0.1", self.port))
            return self
        self._start()
        return self

    def heal(self) -> None:
        """End a connect-phase fault: from now on connections are accepted."""
        if not self._listening.is_set():
            with self._lock:
                self._fault = None  # it has done its work: the first accepted exchange is clean
            self._start()

    def _start(self) -> None:
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self._listening.set()
        self._thread.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in [*self._sockets, *filter(None, [self._stuffing])]:
                with suppress(OSError):
                    sock.close()

    # -- serving -------------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stuffing is not None and client.getpeername() == self._stuffing.getsockname():
                client.close()  # the connection that filled the queue while the connect stalled
                continue
            with self._lock:
                self.connections += 1
                fault, self._fault = self._fault, None  # one faulted exchange, then pass-through
                self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client, fault), daemon=True).start()

    def _serve(self, client: socket.socket, fault: Fault | None) -> None:
        try:
            self._exchange(client, fault)
        except OSError:
            pass  # the client gave up (its own timeout, say): nothing more to do
        finally:
            with suppress(OSError):
                client.close()

    def _exchange(self, raw: socket.socket, fault: Fault | None) -> None:
        raw.settimeout(STALL_CAP_SECONDS)
        client: socket.socket = raw
        if self._tls is not None:
            if fault is not None and fault.action == "alert":
                raw.recv(65536)  # the ClientHello
                raw.sendall(TLS_HANDSHAKE_ALERT)
                return
            context = self._untrusted if fault is not None and fault.action == "unknown_ca" else self._tls
            assert context is not None
            try:
                client = context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused the certificate
            with self._lock:
                self._sockets.append(client)
        try:
            self._relay(client, fault)
        finally:
            with suppress(OSError):
                client.close()  # wrapping moved the descriptor to the TLS socket: close that one

    def _relay(self, client: socket.socket, fault: Fault | None) -> None:
        head, body = _read_request(client)
        request = _for_upstream(head, self._upstream) + body
        if fault is not None and fault.phase == "request":
            cut = len(head) // 2 if fault.cut == "headers" else len(head) + len(body) // 2
            self._forward(request[:cut], partial=True)
            _break(client, fault.action)
            return
        forward = fault is None or fault.forward
        answer = self._forward(request) if forward else b""
        if fault is None:
            client.sendall(answer)
            return
        self._answer_fault(client, fault, answer)

    def _answer_fault(self, client: socket.socket, fault: Fault, answer: bytes) -> None:
        action = fault.action
        if action in ("close", "reset"):
            _break(client, action)
        elif action == "bogus_tls":
            os.write(client.fileno(), BOGUS_TLS_RECORD)  # under the TLS layer: no key decrypts it
        elif action == "status_line":
            client.sendall(answer[: answer.index(b"\r\n") + 2])
        elif action == "half_body":
            head_end = answer.index(b"\r\n\r\n") + 4
            body = answer[head_end:]
            client.sendall(answer[:head_end] + body[: max(1, len(body) // 2)])
        elif action == "stall":
            with suppress(OSError):
                client.recv(1)  # returns when the client gives up and closes
        elif action == "replace":
            assert fault.canned is not None
            client.sendall(_http_answer(*fault.canned))
        else:  # pragma: no cover - a test's typo
            raise ValueError(f"unknown answer fault {action!r}")

    def _forward(self, request: bytes, *, partial: bool = False) -> bytes:
        """Send ``request`` to the emulator; return its whole answer (nothing for a partial one)."""
        with socket.create_connection(self._upstream, timeout=10) as upstream:
            upstream.sendall(request)
            if partial:
                return b""  # then the connection drops, as the client's did
            with self._lock:
                self.forwarded += 1
            chunks = []
            while data := upstream.recv(65536):
                chunks.append(data)
            return b"".join(chunks)


def _read_request(sock: socket.socket) -> tuple[bytes, bytes]:
    """One request's head (through the blank line) and its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed before sending a whole request head")
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    head, body = data[:end], data[end:]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed in the middle of the request body")
        body += chunk
    return head, body


def _for_upstream(head: bytes, upstream: tuple[str, int]) -> bytes:
    """
    The head as the emulator gets it: one exchange per connection, and its own ``Host`` (the links
    it signs then point at it, not at this proxy: downloads are not what is being tested here).
    """
    dropped = (b"connection:", b"host:")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(dropped)]
    host = f"Host: {upstream[0]}:{upstream[1]}".encode()
    return b"\r\n".join([lines[0], host, *lines[1:-2], b"Connection: close", b"", b""])


def _break(sock: socket.socket, how: str) -> None:
    """End the connection with a FIN (``close``) or an RST (``reset``)."""
    if how == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        return
    with suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    with suppress(OSError):
        sock.recv(1)  # wait for the client to notice and close its end


def _http_answer(status: int, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} Status\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Retry-After: 0\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def tls_contexts(ca_path: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """
    Server contexts for the proxy: one whose CA is written to ``ca_path`` (give it to the client),
    and one from a CA nobody trusts (the "unknown CA" fault).
    """
    import trustme

    trusted, stranger = trustme.CA(), trustme.CA()
    contexts = []
    for authority in (trusted, stranger):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        contexts.append(context)
    trusted.cert_pem.write_to_path(ca_path)
    return contexts[0], contexts[1]
