"""
The "v3 async" API family (docs/vendors.md §1-4), shared by PPInfra and Novita.

``POST /v3/async/<endpoint>`` submits, ``GET /v3/async/task-result?task_id=`` reads; statuses are
``TASK_STATUS_*``, errors are HTTP statuses with ``{"code", "reason", "message", "metadata"}``.
What differs between the two vendors is data, not code: which body field each endpoint reads the
first and last frame from, whether ``data:`` URLs are taken, which options exist. Each vendor's
module declares that in a :class:`V3Profile`; an endpoint name no profile knows (``minimax-video-01``
or a model released tomorrow) gets the universal rules and the vendor's usual frame field.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from airflow_provider_hailuo.emulator.dialects.base import Dialect
from airflow_provider_hailuo.emulator.faults import FaultRule
from airflow_provider_hailuo.emulator.spec import (
    VideoSpec,
    WireError,
    check_bool,
    check_duration,
    check_frame,
    check_prompt,
    require_object,
)
from airflow_provider_hailuo.emulator.state import (
    FAILED,
    PREPARING,
    PROCESSING,
    QUEUED,
    SUCCEEDED,
    EmulatorState,
    Task,
)

STATUS_WORDS = {
    PREPARING: "TASK_STATUS_QUEUED",
    QUEUED: "TASK_STATUS_QUEUED",
    PROCESSING: "TASK_STATUS_PROCESSING",
    SUCCEEDED: "TASK_STATUS_SUCCEED",
    FAILED: "TASK_STATUS_FAILED",
}
REASONS = {
    400: "INVALID_REQUEST_BODY",
    401: "FAILED_TO_AUTH",
    403: "NOT_ENOUGH_BALANCE",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
#: Both resolutions of Hailuo-02 and 2.3 on this API; 512P is MiniMax's alone.
RESOLUTIONS = ("768P", "1080P")
#: Shared by Hailuo-02 and 2.3: 1080P is 6 s only, 10 s is 768P only.
RESOLUTIONS_BY_DURATION = {6: ("768P", "1080P"), 10: ("768P",)}
_MODEL_PATH = r"[a-z0-9][a-z0-9._-]*"


@dataclass(frozen=True)
class V3Endpoint:
    """What one ``/v3/async/<name>`` endpoint reads from a body, and its rules."""

    first_frame: str | None = None  # the body field read as the first frame (None: text-to-video only)
    last_frame: str | None = None
    first_frame_required: bool = False
    booleans: tuple[str, ...] = ("enable_prompt_expansion",)
    #: Options the endpoint does not have and refuses when asked for (``fast_pretreatment: true``).
    refused_options: tuple[str, ...] = ()
    #: Fields an older page of the endpoint had and the current one does not: refused when present,
    #: so a client still sending one fails at once instead of buying a video without its frame.
    retired_fields: tuple[str, ...] = ()
    #: Known endpoints apply the duration/resolution rules; an unknown one only the universal ones.
    known: bool = True


@dataclass(frozen=True)
class V3Profile:
    """One vendor of the family: its endpoints and how it takes frames."""

    name: str
    endpoints: dict[str, V3Endpoint]
    #: The frame field of endpoints the profile does not list.
    generic_first_frame: str
    data_urls: bool
    generic: V3Endpoint = field(init=False)

    def __post_init__(self) -> None:
        generic = V3Endpoint(first_frame=self.generic_first_frame, known=False)
        object.__setattr__(self, "generic", generic)

    def endpoint(self, name: str) -> V3Endpoint:
        return self.endpoints.get(name, self.generic)


def task_type(endpoint: str) -> str:
    """``minimax-hailuo-2.3-t2v`` -> ``MINIMAX_HAILUO_2_3_T2V`` (``MINIMAX_HAILUO_02`` for Hailuo-02)."""
    return re.sub(r"[^A-Z0-9]+", "_", endpoint.upper()).strip("_")


class V3Dialect(Dialect):
    """The v3 async wire, parametrised by a vendor's :class:`V3Profile`."""

    def __init__(self, profile: V3Profile) -> None:
        self.profile = profile
        self.name = profile.name

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v3/async/task-result", self._read)
        app.router.add_post("/v3/async/{model:" + _MODEL_PATH + "}", self._submit)

    async def _submit(self, request: web.Request) -> web.Response:
        return await self.submit(request, request.match_info["model"])

    async def _read(self, request: web.Request) -> web.Response:
        return await self.read(request, request.query.get("task_id", ""))

    # -- errors --------------------------------------------------------------------------------------
    def http_error(
        self, status: int, message: str, reason: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        body = {
            "code": status,
            "reason": reason or REASONS.get(status, "ERROR"),
            "message": message,
            "metadata": {},
        }
        return web.json_response(body, status=status, headers=headers)

    def unauthorized(self, state: EmulatorState) -> web.Response:
        return self.http_error(401, "failed to authenticate API key", "FAILED_TO_AUTH")

    def invalid(self, state: EmulatorState, err: WireError) -> web.Response:
        return self.http_error(400, f"invalid request: {err}", "INVALID_REQUEST_BODY")

    def task_not_found(self, state: EmulatorState, task_id: str) -> web.Response:
        return self.http_error(404, f"task {task_id} not found", "TASK_NOT_FOUND")

    # -- submit --------------------------------------------------------------------------------------
    def read_spec(self, body: Any, path_model: str | None) -> VideoSpec:
        """Read a body as this vendor's endpoint does; fields it does not know are ignored."""
        body = require_object(body)
        model = path_model or "minimax-hailuo-02"
        endpoint = self.profile.endpoint(model)
        prompt = check_prompt(body)
        duration = check_duration(body)
        resolution = body.get("resolution", "768P")
        if endpoint.known:
            if resolution not in RESOLUTIONS:
                raise WireError("resolution", f"must be one of {', '.join(RESOLUTIONS)}", resolution)
            if resolution not in RESOLUTIONS_BY_DURATION[duration]:
                raise WireError(
                    "resolution",
                    f"{resolution} is not available for {duration} s videos (10 s supports 768P only)",
                    resolution,
                )
        elif not isinstance(resolution, str):
            raise WireError("resolution", "must be a string", resolution)
        for name in endpoint.booleans:
            check_bool(body, name)
        for name in endpoint.refused_options:
            if body.get(name):
                raise WireError(name, f"is not available on {model}", body[name])
        for name in endpoint.retired_fields:
            if name in body:
                frames = " and ".join(f"`{f}`" for f in (endpoint.first_frame, endpoint.last_frame) if f)
                raise WireError(name, f"is not a field of {model}: its frames are {frames}")
        first = self._frame(body, endpoint.first_frame)
        if endpoint.first_frame_required and first is None:
            raise WireError(str(endpoint.first_frame), f"is required by {model} (image-to-video)")
        last = self._frame(body, endpoint.last_frame)
        return VideoSpec(model, prompt, duration, resolution, first, last)

    def _frame(self, body: dict[str, Any], name: str | None) -> str | None:
        return check_frame(body, name, self.profile.data_urls) if name is not None else None

    def submit_answer(self, task: Task) -> web.Response:
        return web.json_response({"task_id": task.task_id})

    # -- read ----------------------------------------------------------------------------------------
    def task_answer(
        self, state: EmulatorState, task: Task, base_url: str, fault: FaultRule | None
    ) -> dict[str, Any]:
        """The task-result JSON in the shape of docs/vendors.md §2 (a finished task gets a fresh link)."""
        now = time.monotonic()
        phase, progress, eta = task.phase(now)
        videos: list[dict[str, Any]] = []
        if phase == SUCCEEDED and not (fault is not None and fault.action == "empty_videos"):
            url, ttl = state.signed_link(base_url, task.task_id)
            videos.append({"video_url": url, "video_url_ttl": ttl, "video_type": "mp4"})
        started = now - task.created >= task.queue_s
        execute_ms = task.submit_time_ms + int(task.queue_s * 1000) if started else 0
        complete_ms = execute_ms + int(task.generation_s * 1000) if progress == 100 else 0
        answer: dict[str, Any] = {
            "task": {
                "task_id": task.task_id,
                "task_type": task_type(task.model),
                "status": STATUS_WORDS[phase],
                "reason": (task.failure_reason or "") if phase == FAILED else "",
                "eta": eta,
                "progress_percent": progress,
            },
            "images": [],
            "videos": videos,
            "extra": {
                "seed": task.seed,
                "enable_nsfw_detection": False,
                "debug_info": {
                    "request_info": "",
                    "submit_time_ms": task.submit_time_ms,
                    "execute_time_ms": execute_ms,
                    "complete_time_ms": complete_ms,
                },
            },
        }
        if fault is not None and fault.action == "no_task":
            del answer["task"]
        return answer
