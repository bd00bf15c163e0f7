"""
One aiohttp session per event loop, shared by every Hailuo trigger in the process.

A triggerer runs thousands of triggers in one loop. A session per poll (or per trigger) means a new
connection pool, a TLS handshake and a socket in TIME_WAIT for every status read; one pool for all
of them keeps a handful of warm keep-alive connections instead. The session carries no credentials:
the key is added per request, so triggers of different connections can share it safely.

Users lease the session; the last lease to end closes it. A triggerer with waiting triggers keeps
it open for as long as any wait, while a loop that runs one trigger and ends (``airflow dags test``,
a test) does not leave an unclosed session behind.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

#: Concurrent connections per host. Polls are tiny, so a few dozen sockets serve thousands of triggers.
CONNECTIONS_PER_HOST = 32


@dataclass
class _Pool:
    session: aiohttp.ClientSession
    leases: int = 0


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def shared_client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """Lease the running loop's session, creating it on first use; leases nest freely."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None or pool.session.closed:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=CONNECTIONS_PER_HOST, ttl_dns_cache=300)
        # trust_env=False: with it, aiohttp re-reads ~/.netrc and the proxy environment in a thread
        # on every request (~20% of a busy triggerer's CPU); the hook resolves the proxy once.
        pool = _pools[loop] = _Pool(aiohttp.ClientSession(connector=connector, trust_env=False))
    pool.leases += 1
    try:
        yield pool.session
    finally:
        pool.leases -= 1
        if pool.leases == 0 and _pools.get(loop) is pool:
            del _pools[loop]
            await pool.session.close()


def open_pool_count() -> int:
    """Sessions currently open across loops (for tests and benchmarks)."""
    return sum(1 for pool in _pools.values() if not pool.session.closed)
