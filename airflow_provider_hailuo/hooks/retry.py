"""
When a Hailuo call may be tried again, and how long to wait first.

Reads and submits differ on purpose: a read repeated costs nothing, while a submit repeated after
the service may already have accepted it buys a second video (its rule: ``submit_rule.py``). Both
policies are built here so the sync hook (workers) and the async hook (triggerer) retry alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import tenacity

from airflow_provider_hailuo.api import (
    HailuoMalformedAnswerError,
    HailuoNotFoundError,
    HailuoTransientError,
    HailuoTransportError,
)

log = logging.getLogger(__name__)


def is_retryable_read(exc: BaseException) -> bool:
    """
    Reads are retried on anything that may heal: any transport failure (wherever it broke: a read
    is free and changes nothing), 429, 5xx, a garbled answer.
    """
    return isinstance(
        exc,
        (
            HailuoTransportError,
            HailuoTransientError,
            HailuoMalformedAnswerError,
            asyncio.TimeoutError,
        ),
    )


def is_not_found(exc: BaseException) -> bool:
    """
    The service's "no such task", as the dialect read it: a 400 or 404 in the vendor's own words
    (the vendors do not say which), MiniMax's ``base_resp`` 2013. Another host's 404 page is not it.
    """
    return isinstance(exc, HailuoNotFoundError)


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
