"""
Reading a service's answer, the parts every dialect shares: JSON bodies, HTTP error statuses, task ids.

Each function takes what came back (status, headers, body bytes) and returns data or the exception
that says what to do about it, so the sync and the async hook, and every vendor, decide alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoAuthError,
    HailuoError,
    HailuoMalformedAnswerError,
    HailuoNotFoundError,
    HailuoSubmitUncertainError,
    HailuoTransientError,
    id_text,
)
from airflow_provider_hailuo.hooks.retry import parse_retry_after

#: Error answers that prove a submit created nothing: rate limited, or the service is unavailable.
NOTHING_CREATED_STATUSES = frozenset({429, 503})
#: How much of an error body is read for its message (the message itself is cut to 200 characters).
_ERROR_BODY_BYTES = 64 * 1024
_HTTP_ERRORS: Mapping[int, type[HailuoAPIError]] = {
    401: HailuoAuthError,
    403: HailuoAuthError,
    404: HailuoNotFoundError,
}


def _words(body: bytes) -> tuple[str, str]:
    """(reason, message) of an error body: "v3 async" JSON, MiniMax's ``base_resp``, or plain text."""
    text = body[:_ERROR_BODY_BYTES].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return "", text
    if not isinstance(data, Mapping):
        return "", text
    base_resp = data.get("base_resp")
    status_msg = base_resp.get("status_msg") if isinstance(base_resp, Mapping) else None
    return str(data.get("reason") or ""), str(data.get("message") or status_msg or "")


def http_error(
    status: int, headers: Mapping[str, str], body: bytes, *, task_id: str | None, conn_id: str
) -> HailuoAPIError:
    """
    The exception an HTTP error status means (API.md 3).

    429 and 5xx are transient; of those only 429 and 503 prove that nothing was created. A 400 to a
    call that names a task says the service does not know that id (its only input): not found.
    """
    reason, message = _words(body)
    if status == 429 or status >= 500:
        return HailuoTransientError(
            status,
            reason,
            message,
            task_id,
            conn_id,
            retry_after=parse_retry_after(headers.get("Retry-After")),
            nothing_created=status in NOTHING_CREATED_STATUSES,
        )
    kind = _HTTP_ERRORS.get(status, HailuoAPIError)
    if status == 400 and task_id is not None:
        kind = HailuoNotFoundError
    return kind(status, reason, message, task_id, conn_id)


def json_object(
    status: int, headers: Mapping[str, str], body: bytes, *, task_id: str | None, conn_id: str
) -> dict[str, Any]:
    """A 2xx answer's JSON object, or the exception the answer means."""
    if not 200 <= status < 300:
        raise http_error(status, headers, body, task_id=task_id, conn_id=conn_id)
    try:
        data = json.loads(body)
    except ValueError:
        raise HailuoMalformedAnswerError(f"HTTP {status} answer is not JSON (task_id={task_id})") from None
    if not isinstance(data, dict):
        raise HailuoMalformedAnswerError(f"HTTP {status} answer is not a JSON object (task_id={task_id})")
    return data


def for_submit(err: HailuoError) -> HailuoSubmitUncertainError | None:
    """
    Whether an error that answered a submit leaves the outcome unknown (then: the error to raise).

    A transient answer that does not prove nothing was created (500, 502, 504, MiniMax 1000, 1001,
    1024), or an answer that cannot be read, leaves the task possibly created and billed.
    """
    if isinstance(err, HailuoTransientError) and not err.nothing_created:
        code = f" with status_code {err.code}" if err.code is not None else ""
        return HailuoSubmitUncertainError.because(f"the service answered HTTP {err.status}{code}")
    if isinstance(err, HailuoMalformedAnswerError):
        return HailuoSubmitUncertainError.because(str(err))
    return None


def submitted_task_id(data: Mapping[str, Any]) -> str:
    """The task id of an accepted submit; an answer without one leaves the outcome unknown."""
    task_id = id_text(data.get("task_id"))
    if task_id is None:
        raise HailuoSubmitUncertainError.because("the answer carried no task_id")
    return task_id


@contextmanager
def submit_answer() -> Iterator[None]:
    """Read a submit's answer: errors that leave the outcome unknown become "may have been accepted"."""
    try:
        yield
    except (HailuoTransientError, HailuoMalformedAnswerError) as err:
        uncertain = for_submit(err)
        if uncertain is None:
            raise
        raise uncertain from err
