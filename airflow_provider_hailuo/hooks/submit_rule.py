"""
The one rule for sending a paid submit again (README, "Retries and money").

A video is bought the moment the service accepts the submit, and an answer that was lost on the way
back looks, to the client, just like a request that never arrived. So a submit is sent again only
when the evidence says the service created nothing:

- no byte of the request reached the socket: DNS failure, connection refused, connect timeout, TLS
  handshake or certificate failure (``HailuoTransportError.request_sent`` is False, as the
  transport saw it, not guessed from exception class names);
- the vendor's own application refused it: 429, a 503 carrying the vendor's JSON error document,
  MiniMax ``base_resp`` 1002 (``HailuoTransientError.nothing_created``, set by the dialect).

Anything else after the first request byte was written (a reset, a TLS error while reading, a read
timeout, another 5xx, a 502/503 from a gateway, a garbled or incomplete 2xx) means the submission
may have been accepted: it is not sent again, and the task fails without Airflow's retries. Answers
in which the service refused the request for good (400, 401/403, a flagged prompt) created nothing
either, but would be refused again: they fail at once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeGuard

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoTransientError,
    HailuoTransportError,
    HailuoValidationError,
)


class SubmitVerdict(StrEnum):
    """What a failed submit attempt proves about the paid task."""

    #: The service cannot have created a task: the submit may be sent again.
    NOTHING_CREATED = "nothing created"
    #: The service refused the request itself and would refuse it again: fail, nothing was bought.
    REFUSED = "refused"
    #: The service may have created (and billed) the task: never send it again.
    MAY_HAVE_BEEN_ACCEPTED = "may have been accepted"


def submit_verdict(exc: BaseException) -> SubmitVerdict:
    """The verdict on a submit attempt that raised ``exc`` (unknown failures count as accepted)."""
    if isinstance(exc, HailuoTransportError):
        return SubmitVerdict.MAY_HAVE_BEEN_ACCEPTED if exc.request_sent else SubmitVerdict.NOTHING_CREATED
    if isinstance(exc, HailuoTransientError):
        return SubmitVerdict.NOTHING_CREATED if exc.nothing_created else SubmitVerdict.MAY_HAVE_BEEN_ACCEPTED
    if isinstance(exc, (HailuoAPIError, HailuoValidationError)):
        return SubmitVerdict.REFUSED
    return SubmitVerdict.MAY_HAVE_BEEN_ACCEPTED


def may_send_again(exc: BaseException) -> bool:
    """The submit's retry predicate: only what proves that nothing was created."""
    return submit_verdict(exc) is SubmitVerdict.NOTHING_CREATED


def refused_for_now(exc: BaseException) -> TypeGuard[HailuoTransientError]:
    """
    The vendor's own "not now" (429, its own 503, MiniMax 1002): nothing was created, and the wait
    before sending again is the service's to decide (``retry_after``), often longer than a worker
    slot should be held. A submit operator waits it out deferred; a failed connect is not one of
    these (it heals within the hook's short backoff).
    """
    return isinstance(exc, HailuoTransientError) and exc.nothing_created
