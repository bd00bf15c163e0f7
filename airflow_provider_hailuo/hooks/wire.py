"""
Where an exchange broke: before the first byte of the request reached the socket, or after.

That is the only fact that proves a failed submit created nothing at the transport level, and no
exception class carries it: urllib3 wraps a TLS handshake failure and a TLS error while reading the
answer in the same ``SSLError``, and a timeout in a TLS handshake surfaces as a *read* timeout. So
the requests session's connections note it themselves: :class:`WatchedAdapter` gives them
connection classes that mark the current :class:`Exchange` just before the first request byte is
written (connecting, TLS and a proxy's CONNECT are not request bytes). For aiohttp (the triggerer,
which only reads) the connector's own errors are the connect phase.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from requests.adapters import HTTPAdapter
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from airflow_provider_hailuo.api import HailuoTransportError, service_text


@dataclass
class Exchange:
    """One request/answer exchange as the transport saw it."""

    #: A watched connection took part (unwatched ones, e.g. through a SOCKS proxy, prove nothing).
    watched: bool = False
    #: Some byte of the request was handed to the socket: the service may have seen the request.
    request_started: bool = False


_current: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("hailuo_exchange", default=None)


@contextmanager
def watch_exchange() -> Iterator[Exchange]:
    """Record, for the requests sent inside, whether any request byte was written."""
    exchange = Exchange()
    token = _current.set(exchange)
    try:
        yield exchange
    finally:
        _current.reset(token)


class _WatchedConnection:
    """Marks the current exchange just before the first request byte is written (not while connecting)."""

    _hailuo_connecting = False

    def connect(self) -> None:
        exchange = _current.get()
        if exchange is not None:
            exchange.watched = True
        self._hailuo_connecting = True
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self._hailuo_connecting = False

    def send(self, data: Any) -> None:
        # http.client connects lazily inside its first send(): do that first, so that a connect
        # failure there is seen as one, before any request byte.
        if getattr(self, "sock", None) is None and getattr(self, "auto_open", False):
            self.connect()
        exchange = _current.get()
        if exchange is not None and not self._hailuo_connecting:
            exchange.watched = True
            exchange.request_started = True
        super().send(data)  # type: ignore[misc]


class WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


_WATCHED_POOLS = {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}


class WatchedAdapter(TCPKeepAliveAdapter):
    """
    requests-toolbelt's TCP keep-alive adapter (idle NAT and load-balancer paths stop silently
    dropping the socket) whose connections, direct or through an HTTP(S) proxy, are watched.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = HTTPAdapter.proxy_manager_for(self, proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are their own classes: left unwatched
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def _connect_phase_class(exc: BaseException) -> bool:
    """urllib3's own connect-phase errors, raised only while opening the socket."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (NewConnectionError, ConnectTimeoutError)):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__context__
    return False


def request_was_sent(exc: BaseException, exchange: Exchange) -> bool:
    """
    Whether the service may have seen the request that failed with ``exc``.

    A watched exchange answers it exactly. An unwatched one (a SOCKS proxy) counts as sent unless
    urllib3 itself says the socket never opened: when in doubt, the request may have arrived.
    """
    if exchange.watched:
        return exchange.request_started
    return not _connect_phase_class(exc)


def _error(exc: BaseException, base_url: str, *, sent: bool) -> HailuoTransportError:
    """The provider's error for a transport failure, saying where it broke (never the key)."""
    where = (
        "after the request was sent" if sent else "before any request byte was sent: the service never saw it"
    )
    detail = service_text(str(exc))
    return HailuoTransportError(
        f"{type(exc).__name__} talking to {base_url} {where}" + (f" ({detail})" if detail else ""),
        request_sent=sent,
    )


def transport_error(exc: BaseException, exchange: Exchange, base_url: str) -> HailuoTransportError:
    """A requests failure as the provider's error, placed by the exchange's watch."""
    return _error(exc, base_url, sent=request_was_sent(exc, exchange))


def aiohttp_transport_error(exc: BaseException, base_url: str) -> HailuoTransportError:
    """
    The same for aiohttp: its connector's errors (refused, DNS, TLS handshake or certificate, a
    connect timeout) are raised before the request is written; anything else may come after.
    """
    import aiohttp

    sent = not isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
    return _error(exc, base_url, sent=sent)
