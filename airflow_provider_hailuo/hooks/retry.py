"""
When a Hailuo call may be tried again, and how long to wait first.

Reads and submits differ on purpose: a read repeated costs nothing, while a submit repeated after
the service may already have accepted it buys a second video. Both policies are built here so the
sync hook (workers) and the async hook (triggerer) retry the same way.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import tenacity

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoMalformedAnswerError,
    HailuoNotFoundError,
    HailuoTransientError,
)

log = logging.getLogger(__name__)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _loaded(module: str, *names: str) -> tuple[type[BaseException], ...]:
    """
    A library's exception classes, if the library is loaded; if it is not, none can have been raised.

    The HTTP libraries are imported where they are used (requests on workers, aiohttp in the
    triggerer), not by merely importing this provider: DAG parsing and task start-up stay cheap.
    """
    loaded = sys.modules.get(module)
    return tuple(getattr(loaded, name) for name in names) if loaded else ()


def is_connect_failure(exc: BaseException) -> bool:
    """True when the request provably never reached the service (refused, DNS, connect timeout)."""
    if isinstance(exc, _loaded("requests.exceptions", "ConnectTimeout")):
        return True
    if isinstance(exc, _loaded("requests.exceptions", "ConnectionError")):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)
        # A refused TLS handshake (untrusted certificate) also fails before the request is sent.
        return isinstance(
            reason, _loaded("urllib3.exceptions", "NewConnectionError", "ConnectTimeoutError", "SSLError")
        )
    return isinstance(exc, _loaded("aiohttp", "ClientConnectorError"))


def is_retryable_read(exc: BaseException) -> bool:
    """Reads are retried on anything that may heal: network trouble, 429, 5xx, a garbled answer."""
    return isinstance(
        exc,
        (
            HailuoTransientError,
            HailuoMalformedAnswerError,
            asyncio.TimeoutError,
            *_loaded("requests.exceptions", "ConnectionError", "Timeout", "ChunkedEncodingError"),
            *_loaded("aiohttp", "ClientConnectionError", "ClientPayloadError"),
        ),
    )


def is_not_found(exc: BaseException) -> bool:
    """
    The service's "no such task": 400 or 404 (API.md does not say which), or the dialect's verdict
    (MiniMax says it as ``base_resp`` 2013 on an HTTP 200).
    """
    return isinstance(exc, HailuoNotFoundError) or (
        isinstance(exc, HailuoAPIError) and exc.status in (400, 404)
    )


def is_retryable_submit(exc: BaseException) -> bool:
    """Submits are retried only where the service cannot have created the task (the dialect says)."""
    if isinstance(exc, HailuoTransientError):
        return exc.nothing_created
    return is_connect_failure(exc)


class wait_retry_after_or_backoff(tenacity.wait.wait_base):
    """Honour the service's ``Retry-After`` (capped); otherwise exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float, retry_after_cap: float) -> None:
        self.backoff = tenacity.wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
        self.retry_after_cap = retry_after_cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, self.retry_after_cap))
        return float(self.backoff(retry_state))


def _log_before_sleep(what: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "Hailuo %s attempt %d failed (%s); retrying in %.1fs",
            what,
            retry_state.attempt_number,
            type(exc).__name__ if exc else "?",
            wait,
        )

    return before_sleep


def retry_kwargs(
    what: str,
    retryable: Callable[[BaseException], bool],
    *,
    attempts: int,
    initial_wait: float,
    max_wait: float,
    retry_after_cap: float,
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying``: one policy, two runtimes."""
    return {
        "retry": tenacity.retry_if_exception(retryable),
        "stop": tenacity.stop_after_attempt(max(1, attempts)),
        "wait": wait_retry_after_or_backoff(initial_wait, max_wait, retry_after_cap),
        "before_sleep": _log_before_sleep(what),
        "reraise": True,
    }
