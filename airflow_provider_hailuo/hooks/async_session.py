"""
One aiohttp session per event loop, shared by every Hailuo trigger in the process.

A triggerer runs thousands of triggers in one loop. A session per poll (or per trigger) means a new
connection pool, a TLS handshake and a socket in TIME_WAIT for every status read; one pool for all
of them keeps a handful of warm keep-alive connections instead. The session carries no credentials:
the key is added per request, so triggers of different connections can share it safely.
"""

from __future__ import annotations

import asyncio
import weakref

import aiohttp

#: Concurrent connections per host. Polls are tiny, so a few dozen sockets serve thousands of triggers.
CONNECTIONS_PER_HOST = 32

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def shared_client_session() -> aiohttp.ClientSession:
    """The running loop's session, created on first use; must be called from inside that loop."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=CONNECTIONS_PER_HOST, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector, trust_env=True)
        _sessions[loop] = session
    return session


async def close_shared_client_session() -> None:
    """Close the running loop's session (tests and benchmarks; a triggerer keeps it for its life)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None and not session.closed:
        await session.close()
