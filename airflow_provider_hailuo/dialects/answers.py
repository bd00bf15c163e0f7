"""
Reading a service's answer, the parts every dialect shares: JSON bodies, HTTP error statuses, task ids.

Each function takes what came back (status, headers, body bytes) and returns data or the exception
that says what to do about it, so the sync and the async hook, and every vendor, decide alike.
Whether a submit may be sent again is not decided here but in ``hooks/submit_rule.py``: an answer
only contributes the fact it proves (``HailuoTransientError.nothing_created``).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoAuthError,
    HailuoMalformedAnswerError,
    HailuoNotFoundError,
    HailuoTransientError,
    id_text,
)

#: Whether a parsed error body is the vendor's own error document (not a gateway's page).
VendorError = Callable[[Any], bool]

#: How much of an error body is read for its message (the message itself is cut to 200 characters).
_ERROR_BODY_BYTES = 64 * 1024
_HTTP_ERRORS: Mapping[int, type[HailuoAPIError]] = {
    401: HailuoAuthError,
    403: HailuoAuthError,
    404: HailuoNotFoundError,
}


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


def error_document(body: bytes) -> Any:
    """An error body's JSON, or None when it is not JSON (a gateway's HTML page, an empty body)."""
    try:
        return json.loads(body[:_ERROR_BODY_BYTES].decode("utf-8", "replace"))
    except ValueError:
        return None


def _words(document: Any, body: bytes) -> tuple[str, str]:
    """(reason, message) of an error body: "v3 async" JSON, MiniMax's ``base_resp``, or plain text."""
    if not isinstance(document, Mapping):
        return "", body[:_ERROR_BODY_BYTES].decode("utf-8", "replace")
    base_resp = document.get("base_resp")
    status_msg = base_resp.get("status_msg") if isinstance(base_resp, Mapping) else None
    return str(document.get("reason") or ""), str(document.get("message") or status_msg or "")


#: The shapes of the two API families' own answers, as :func:`family_of` names them.
V3_FAMILY = "v3 async"
MINIMAX_FAMILY = "minimax"


def family_of(document: Any) -> str | None:
    """
    Which API family a JSON answer is shaped like, or None (a gateway's or a web server's page).

    PPInfra's and Novita's errors are ``{"code", "reason", "message"}`` (docs/vendors.md §3); MiniMax's every
    answer carries ``base_resp`` (docs/vendors.md §5). It lets a 404 be told from "no such task", and a
    connection Test say which vendor actually answered.
    """
    if not isinstance(document, Mapping):
        return None
    if isinstance(document.get("base_resp"), Mapping):
        return MINIMAX_FAMILY
    if isinstance(document.get("task"), Mapping):
        return V3_FAMILY  # a task result
    reason = document.get("reason")
    if isinstance(reason, str) and reason and "code" in document and "message" in document:
        return V3_FAMILY
    return None


def no_vendor_error(document: Any) -> bool:
    """The conservative default: no body proves that the vendor's own application answered."""
    return False


def http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    task_id: str | None,
    conn_id: str,
    vendor_error: VendorError = no_vendor_error,
) -> HailuoAPIError:
    """
    The exception an HTTP error status means (docs/vendors.md §3).

    429 and 5xx are transient. Of those only 429, and a 503 whose body is the vendor's own error
    document, prove that a submit created nothing: a 503 or 502 with a gateway's HTML (or empty)
    body may come from a proxy that had already forwarded the request. A 400 or 404 to a call that
    names a task says the service does not know that id (its only input) only when the body is the
    vendor's own error document: another host's 404 page (a wrong base URL, a proxy) is not it.
    """
    document = error_document(body)
    reason, message = _words(document, body)
    error: HailuoAPIError
    if status == 429 or status >= 500:
        error = HailuoTransientError(
            status,
            reason,
            message,
            task_id,
            conn_id,
            retry_after=parse_retry_after(headers.get("Retry-After")),
            nothing_created=status == 429 or (status == 503 and vendor_error(document)),
        )
    else:
        kind = _HTTP_ERRORS.get(status, HailuoAPIError)
        if status in (400, 404):
            kind = HailuoNotFoundError if task_id is not None and vendor_error(document) else HailuoAPIError
        error = kind(status, reason, message, task_id, conn_id)
    error.answered_like = family_of(document)
    error.content_type = headers.get("Content-Type", "").split(";")[0].strip() or None
    return error


def json_object(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    task_id: str | None,
    conn_id: str,
    vendor_error: VendorError = no_vendor_error,
) -> dict[str, Any]:
    """A 2xx answer's JSON object, or the exception the answer means."""
    if not 200 <= status < 300:
        raise http_error(status, headers, body, task_id=task_id, conn_id=conn_id, vendor_error=vendor_error)
    try:
        data = json.loads(body)
    except ValueError:
        raise HailuoMalformedAnswerError(f"HTTP {status} answer is not JSON (task_id={task_id})") from None
    if not isinstance(data, dict):
        raise HailuoMalformedAnswerError(f"HTTP {status} answer is not a JSON object (task_id={task_id})")
    return data


def submitted_task_id(data: Mapping[str, Any]) -> str:
    """The task id of an accepted submit; an answer without one cannot be read as either outcome."""
    task_id = id_text(data.get("task_id"))
    if task_id is None:
        raise HailuoMalformedAnswerError("the submit's answer carried no task_id")
    return task_id
