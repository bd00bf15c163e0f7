"""
PPInfra's "v3 async" API (docs/vendors.md §1-3): ``POST /v3/async/<endpoint>``, ``GET /v3/async/task-result``.

Errors are HTTP statuses; the video link is in the task result. PPInfra's current Hailuo-02 page
names the frames ``image`` and ``end_image`` (http(s) or base64 ``data:`` images) like Novita's:
the seed's ``image_url`` is gone, and a frame under a name the service does not read would buy a
text-to-video. The 2.3 pages name the first frame ``image`` too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar

from airflow_provider_hailuo.api import (
    HailuoMalformedAnswerError,
    TaskResult,
    TaskState,
    Video,
    id_text,
    loose_int,
)
from airflow_provider_hailuo.dialects.answers import V3_FAMILY, family_of, json_object, submitted_task_id
from airflow_provider_hailuo.dialects.base import Dialect, HttpCall
from airflow_provider_hailuo.dialects.models import Offer

TASK_RESULT_PATH = "/v3/async/task-result"


class TaskStatus(StrEnum):
    """PPInfra's and Novita's status words (``task.status`` of ``GET /v3/async/task-result``)."""

    QUEUED = "TASK_STATUS_QUEUED"
    PROCESSING = "TASK_STATUS_PROCESSING"
    SUCCEED = "TASK_STATUS_SUCCEED"
    #: One revision of the docs spells the final word so (docs/vendors.md §2): read as unknown, a
    #: finished video would be waited on until the deadline.
    SUCCEEDED = "TASK_STATUS_SUCCEEDED"
    FAILED = "TASK_STATUS_FAILED"


#: The status words as states: every decision is taken on the state, never on the word.
STATES: Mapping[str, TaskState] = {
    TaskStatus.QUEUED: TaskState.QUEUED,
    TaskStatus.PROCESSING: TaskState.PROCESSING,
    TaskStatus.SUCCEED: TaskState.SUCCEEDED,
    TaskStatus.SUCCEEDED: TaskState.SUCCEEDED,
    TaskStatus.FAILED: TaskState.FAILED,
}


def task_result(data: Any, task_id: str = "") -> TaskResult:
    """
    A task-result answer (docs/vendors.md §2) as a result. ``video_url_ttl`` comes as a string or
    a number; fields the service adds later are ignored.
    """
    if not isinstance(data, Mapping):
        raise HailuoMalformedAnswerError(f"Task-result answer for task {task_id} is not a JSON object")
    task = data.get("task")
    if not isinstance(task, Mapping):
        raise HailuoMalformedAnswerError(
            f"Task-result answer for task {task_id} has no `task` object", answered_like=family_of(data)
        )
    status = str(task.get("status") or "")
    videos = data.get("videos") or []
    return TaskResult(
        task_id=id_text(task.get("task_id")) or task_id,
        status=status,
        state=STATES.get(status, TaskState.UNKNOWN),
        reason=str(task.get("reason") or ""),
        eta=loose_int(task.get("eta")),
        progress_percent=loose_int(task.get("progress_percent")),
        videos=tuple(
            Video(
                url=str(video.get("video_url") or ""),
                ttl_seconds=loose_int(video.get("video_url_ttl")),
                video_type=str(video.get("video_type") or "mp4"),
            )
            for video in videos
            if isinstance(video, Mapping)
        ),
        raw=data,
    )


#: Hailuo-02 on the "v3 async" family (PPInfra's and Novita's current pages): one endpoint for text,
#: image and first-and-last-frame videos.
V3_HAILUO_02 = Offer(
    text_name="minimax-hailuo-02",
    image_name="minimax-hailuo-02",
    first_frame="image",
    last_frame="end_image",
    fast_pretreatment=True,
)
#: Hailuo 2.3 on the "v3 async" family (PPInfra and Novita alike): one endpoint for text, one for
#: image-to-video; Fast is image-to-video only and has no ``fast_pretreatment``.
V3_HAILUO_23 = Offer(
    text_name="minimax-hailuo-2.3-t2v",
    image_name="minimax-hailuo-2.3-i2v",
    first_frame="image",
    fast_pretreatment=True,
)
V3_HAILUO_23_FAST = Offer(text_name=None, image_name="minimax-hailuo-2.3-fast-i2v", first_frame="image")


class PPInfraDialect(Dialect):
    """PPInfra (``api.ppinfra.com``) and any other host of the seed's API."""

    name = "ppinfra"
    family = V3_FAMILY
    console = "PPInfra's console (task list and billing)"
    accepts_data_url = True
    prompt_expansion_field = "enable_prompt_expansion"
    passthrough_frames: ClassVar[tuple[str, str | None]] = ("image", "end_image")
    #: A passed-through name is a path segment: no ``/``, no ``..``, nothing to escape.
    passthrough_name_form = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
    offers: ClassVar[Mapping[str, Offer]] = {
        "hailuo-02": V3_HAILUO_02,
        "hailuo-2.3": V3_HAILUO_23,
        "hailuo-2.3-fast": V3_HAILUO_23_FAST,
    }

    def submit_http(self, model: str, body: Mapping[str, Any]) -> HttpCall:
        return HttpCall("POST", f"/v3/async/{model}", json=body)

    def parse_submit(self, status: int, headers: Mapping[str, str], body: bytes, *, conn_id: str) -> str:
        data = json_object(
            status, headers, body, task_id=None, conn_id=conn_id, vendor_error=self.is_vendor_error
        )
        return submitted_task_id(data)

    def read_call(self, task_id: str) -> HttpCall:
        return HttpCall("GET", TASK_RESULT_PATH, params={"task_id": task_id})

    def parse_read(
        self, status: int, headers: Mapping[str, str], body: bytes, *, task_id: str, conn_id: str
    ) -> TaskResult:
        data = json_object(
            status, headers, body, task_id=task_id, conn_id=conn_id, vendor_error=self.is_vendor_error
        )
        return task_result(data, task_id)
