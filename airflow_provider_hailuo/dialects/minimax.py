"""
MiniMax's own API (docs/vendors.md §5): create, query and file retrieval under ``/v1``.

Most errors arrive as HTTP 200 with ``base_resp.status_code != 0``; each code says whether to wait,
fail at once, or count the generation as failed, and whether a refused submit created anything.
A finished task names a file; its download link comes from file retrieval, fresh at download time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoAuthError,
    HailuoContentRefusedError,
    HailuoMalformedAnswerError,
    HailuoNotFoundError,
    HailuoTransientError,
    HailuoValidationError,
    TaskResult,
    TaskState,
    check_http_url,
    id_text,
    loose_int,
    service_text,
)
from airflow_provider_hailuo.dialects.answers import (
    MINIMAX_FAMILY,
    error_document,
    family_of,
    http_error,
    json_object,
    no_vendor_error,
    parse_retry_after,
    submitted_task_id,
)
from airflow_provider_hailuo.dialects.base import Dialect, HttpCall
from airflow_provider_hailuo.dialects.models import Offer

SUBMIT_PATH = "/v1/video_generation"
QUERY_PATH = "/v1/query/video_generation"
FILE_PATH = "/v1/files/retrieve"
#: Seconds to wait after a 1002: a standard account may send about 5 generation requests a minute.
RATE_LIMIT_WAIT = 12.0

#: Status words (compared case-insensitively: the push callback's casing differs).
STATES: Mapping[str, TaskState] = {
    "preparing": TaskState.QUEUED,
    "queueing": TaskState.QUEUED,
    "processing": TaskState.PROCESSING,
    "success": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
}

#: ``base_resp.status_code`` values and what they mean.
MEANINGS: Mapping[int, str] = {
    1000: "unknown error",
    1001: "timeout",
    1002: "rate limited",
    1004: "authentication failed",
    1008: "insufficient balance",
    1024: "internal error",
    1026: "input flagged as sensitive",
    1027: "generated video flagged as sensitive",
    2013: "invalid parameters",
    2049: "invalid API key",
    1041: "connection limit",
    2045: "rate growth limit",
}
_Error = Callable[..., HailuoAPIError]
#: What each code means for a submit. Codes not listed (1000, 1001, 1024, 1041, 2045, unknown) may
#: heal, but do not prove that nothing was created: a submit answered so may have been accepted.
SUBMIT_ERRORS: Mapping[int, _Error] = {
    1002: partial(HailuoTransientError, retry_after=RATE_LIMIT_WAIT, nothing_created=True),
    1004: HailuoAuthError,
    1008: HailuoAuthError,
    2049: HailuoAuthError,
    1026: HailuoContentRefusedError,
    1027: HailuoContentRefusedError,
    2013: HailuoAPIError,
}
#: For a read or a file retrieval, whose only input is an id, "invalid parameters" is an unknown id.
READ_ERRORS: Mapping[int, _Error] = {**SUBMIT_ERRORS, 2013: HailuoNotFoundError}


def base_resp_error(
    data: Mapping[str, Any],
    http_status: int,
    table: Mapping[int, _Error],
    *,
    task_id: str | None,
    conn_id: str,
) -> HailuoAPIError | None:
    """The error a 2xx answer's ``base_resp`` carries, or None for ``status_code`` 0 (or none)."""
    base_resp = data.get("base_resp")
    if not isinstance(base_resp, Mapping):
        return None
    code = loose_int(base_resp.get("status_code"))
    if not code:
        return None
    kind = table.get(code, HailuoTransientError)
    return kind(
        http_status,
        MEANINGS.get(code, "unknown status_code"),
        str(base_resp.get("status_msg") or ""),
        task_id,
        conn_id,
        code=code,
    )


def _with_retry_after(error: HailuoAPIError | None, headers: Mapping[str, str]) -> HailuoAPIError | None:
    """A ``Retry-After`` the answer carries beats the code's usual wait."""
    seconds = parse_retry_after(headers.get("Retry-After"))
    if isinstance(error, HailuoTransientError) and seconds is not None:
        error.retry_after = seconds
    return error


class MiniMaxDialect(Dialect):
    """MiniMax (``api.minimax.io``, ``api.minimaxi.com``)."""

    name = "minimax"
    family = MINIMAX_FAMILY
    console = "MiniMax's platform (video generation history and billing)"
    accepts_data_url = True
    prompt_expansion_field = "prompt_optimizer"
    passthrough_frames = ("first_frame_image", "last_frame_image")
    call_fields = ("model",)
    #: docs/vendors.md §5: input images have a short side over 300 px and an aspect ratio from 2:5 to 5:2.
    frame_min_short_side = 300
    frame_aspect_range = (2 / 5, 5 / 2)
    offers: ClassVar[Mapping[str, Offer]] = {
        "hailuo-02": Offer(
            text_name="MiniMax-Hailuo-02",
            image_name="MiniMax-Hailuo-02",
            first_frame="first_frame_image",
            last_frame="last_frame_image",
            fast_pretreatment=True,
            image_only_resolutions={6: ("512P",), 10: ("512P",)},  # docs/vendors.md §5: 6 or 10 s
        ),
        "hailuo-2.3": Offer(
            text_name="MiniMax-Hailuo-2.3",
            image_name="MiniMax-Hailuo-2.3",
            first_frame="first_frame_image",
            fast_pretreatment=True,
        ),
        "hailuo-2.3-fast": Offer(
            text_name=None, image_name="MiniMax-Hailuo-2.3-Fast", first_frame="first_frame_image"
        ),
    }

    def submit_http(self, model: str, body: Mapping[str, Any]) -> HttpCall:
        return HttpCall("POST", SUBMIT_PATH, json={"model": model, **body})

    def _answer(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        table: Mapping[int, _Error],
        *,
        task_id: str | None,
        conn_id: str,
    ) -> tuple[dict[str, Any], HailuoAPIError | None]:
        """
        A 2xx answer's JSON and the error its ``base_resp`` carries; an error status raises, read by
        its ``base_resp`` when it has one (a 503 with code 1002 was refused; a bare 503 proves nothing).
        """
        if not 200 <= status < 300:
            document = error_document(body)
            error = None
            if isinstance(document, Mapping):
                error = base_resp_error(document, status, table, task_id=task_id, conn_id=conn_id)
            # Only base_resp 1002 proves a refused submit created nothing: a 503 without it is not
            # read as the vendor's own refusal, even with a base_resp of code 0.
            own = self.is_vendor_error if status != 503 else no_vendor_error
            raise _with_retry_after(error, headers) or http_error(
                status, headers, body, task_id=task_id, conn_id=conn_id, vendor_error=own
            )
        data = json_object(status, headers, body, task_id=task_id, conn_id=conn_id)
        error = base_resp_error(data, status, table, task_id=task_id, conn_id=conn_id)
        return data, _with_retry_after(error, headers)

    def parse_submit(self, status: int, headers: Mapping[str, str], body: bytes, *, conn_id: str) -> str:
        data, error = self._answer(status, headers, body, SUBMIT_ERRORS, task_id=None, conn_id=conn_id)
        if error is not None:
            raise error
        return submitted_task_id(data)

    def read_call(self, task_id: str) -> HttpCall:
        return HttpCall("GET", QUERY_PATH, params={"task_id": task_id})

    def parse_read(
        self, status: int, headers: Mapping[str, str], body: bytes, *, task_id: str, conn_id: str
    ) -> TaskResult:
        data, error = self._answer(status, headers, body, READ_ERRORS, task_id=task_id, conn_id=conn_id)
        raw_status = data.get("status")
        if isinstance(error, HailuoContentRefusedError):
            # The generation ran and its input or output was refused: a failed task, not an outage.
            reason = f"{error.reason}: {error.message}" if error.message else error.reason
            return self._result(data, task_id, str(raw_status or "Fail"), TaskState.FAILED, reason)
        if error is not None:
            raise error
        if not isinstance(raw_status, str) or not raw_status:
            raise HailuoMalformedAnswerError(
                f"Query answer for task {task_id} has no `status`", answered_like=family_of(data)
            )
        return self._result(data, task_id, raw_status, STATES.get(raw_status.lower(), TaskState.UNKNOWN))

    @staticmethod
    def _result(
        data: Mapping[str, Any], task_id: str, status: str, state: TaskState, reason: str = ""
    ) -> TaskResult:
        return TaskResult(
            task_id=id_text(data.get("task_id")) or task_id,
            status=status,
            state=state,
            reason=service_text(reason),
            file_id=id_text(data.get("file_id")),
            video_width=loose_int(data.get("video_width")),
            video_height=loose_int(data.get("video_height")),
            raw=data,
        )

    def link_call(self, result: TaskResult) -> HttpCall:
        """File retrieval for the task's file: each call signs a fresh link (valid about 9 hours)."""
        self._require_video(result)
        params = {"file_id": str(result.file_id)}
        if self.group_id:
            params["GroupId"] = self.group_id
        return HttpCall("GET", FILE_PATH, params=params)

    def parse_link(
        self, status: int, headers: Mapping[str, str], body: bytes, *, task_id: str, conn_id: str
    ) -> str:
        data, error = self._answer(status, headers, body, READ_ERRORS, task_id=task_id, conn_id=conn_id)
        if error is not None:
            raise error
        file = data.get("file")
        url = file.get("download_url") if isinstance(file, Mapping) else None
        try:
            return check_http_url("download_url", url)
        except HailuoValidationError:
            raise HailuoMalformedAnswerError(
                f"File retrieval for task {task_id} carried no http(s) download_url"
            ) from None
