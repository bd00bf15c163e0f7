"""
MiniMax's own video API (docs/vendors.md §5): create, query, file retrieval.

- ``POST /v1/video_generation`` takes ``model``, ``prompt``, ``first_frame_image``,
  ``last_frame_image``, ``duration``, ``resolution``, ``prompt_optimizer``, ``fast_pretreatment``,
  ``callback_url``, ``aigc_watermark`` and answers ``{"task_id", "base_resp"}``;
- ``GET /v1/query/video_generation?task_id=`` answers ``status`` (``Preparing``, ``Queueing``,
  ``Processing``, ``Success``, ``Fail``) and, on success, ``file_id``, ``video_width``,
  ``video_height`` (the size of the sample the request gets);
- ``GET /v1/files/retrieve?file_id=`` (``GroupId`` accepted, as older accounts send it) answers the
  file with a pre-signed, expiring ``download_url``. ``file.file_id`` is an integer there and
  ``bytes`` is 0, as in MiniMax's own examples: a client must not trust either for its checks.

Errors come the MiniMax way: mostly HTTP 200 with ``base_resp.status_code != 0``. A bad key is 1004,
a body that breaks a rule is 2013 naming the field, the model and the rule; unknown task and file
ids are 2013 too. The model rules: Hailuo-02 takes 512P (image-to-video without a last frame),
768P (6/10 s) and 1080P (6 s); Hailuo-2.3 and 2.3-Fast take 768P and 1080P (6 s), 2.3-Fast only
with a first frame; only Hailuo-02 takes a last frame. Other model names (older ``T2V-01``... or a
model released tomorrow) get the universal rules only. ``data:`` frames are checked for MiniMax's
image rules (short side > 300 px, aspect 2:5 to 5:2); URL frames are not fetched.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from airflow_provider_hailuo.emulator.dialects.base import Dialect, numeric_id
from airflow_provider_hailuo.emulator.faults import DEFAULT_FAILURE_REASON, FaultRule
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
    STATE_KEY,
    SUCCEEDED,
    EmulatorState,
    Task,
    default_video_for,
)

STATUS_WORDS = {
    PREPARING: "Preparing",
    QUEUED: "Queueing",
    PROCESSING: "Processing",
    SUCCEEDED: "Success",
    FAILED: "Fail",
}
#: ``base_resp`` codes (docs/vendors.md §5) and the message the emulator gives each.
MESSAGES = {
    0: "success",
    1000: "unknown error",
    1001: "request timeout",
    1002: "rate limit exceeded",
    1004: "authentication failed: API key missing or does not match",
    1008: "insufficient balance",
    1024: "internal error",
    1026: "input content flagged as sensitive",
    1027: "generated video flagged as sensitive",
    2013: "invalid params",
}
#: Codes that mean "the request may have been carried out": a submit refused so may have a task.
UNCERTAIN_CODES = (1000, 1001, 1024)
#: The code a generation failed by a ``fail_generation`` fault reports (unless the rule says).
DEFAULT_FAILURE_CODE = 1027
MIN_IMAGE_SIDE = 300
BOOLEANS = ("prompt_optimizer", "fast_pretreatment", "aigc_watermark")


@dataclass(frozen=True)
class ModelRules:
    """What one MiniMax model takes."""

    resolutions: tuple[str, ...]
    last_frame: bool = False
    first_frame_required: bool = False
    image_only_resolutions: tuple[str, ...] = ()  # resolutions for image-to-video only


MODELS = {
    "MiniMax-Hailuo-02": ModelRules(
        ("512P", "768P", "1080P"), last_frame=True, image_only_resolutions=("512P",)
    ),
    "MiniMax-Hailuo-2.3": ModelRules(("768P", "1080P")),
    "MiniMax-Hailuo-2.3-Fast": ModelRules(("768P", "1080P"), first_frame_required=True),
}


def _code_for_status(status: int) -> int:
    """The ``base_resp`` code carried by an HTTP error status."""
    return {400: 2013, 401: 1004, 403: 1004, 429: 1002, 504: 1001}.get(status, 1000)


class MiniMaxDialect(Dialect):
    name = "minimax"
    fault_endpoints = ("submit", "task_result", "file_retrieve", "download")
    has_base_resp = True

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/video_generation", self._submit)
        app.router.add_get("/v1/query/video_generation", self._query)
        app.router.add_get("/v1/files/retrieve", self.retrieve)

    def new_id(self) -> str:
        return numeric_id()

    async def _submit(self, request: web.Request) -> web.Response:
        return await self.submit(request)

    async def _query(self, request: web.Request) -> web.Response:
        return await self.read(request, request.query.get("task_id", ""))

    # -- errors --------------------------------------------------------------------------------------
    @staticmethod
    def base_resp(
        state: EmulatorState,
        code: int,
        message: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """``{"base_resp": {...}}``; non-zero codes are counted as ``base_resp_<code>``."""
        state.count(f"base_resp_{code}")
        body = {"base_resp": {"status_code": code, "status_msg": message or MESSAGES.get(code, "error")}}
        return web.json_response(body, status=status, headers=headers)

    def http_error(
        self, status: int, message: str, reason: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        code = _code_for_status(status)
        body = {"base_resp": {"status_code": code, "status_msg": message or MESSAGES[code]}}
        return web.json_response(body, status=status, headers=headers)

    def fault_status(self, rule: FaultRule) -> web.Response:
        assert rule.status is not None
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else None
        code = rule.code if rule.code is not None else _code_for_status(rule.status)
        message = rule.message or f"emulated fault: HTTP {rule.status}"
        body = {"base_resp": {"status_code": code, "status_msg": message}}
        return web.json_response(body, status=rule.status, headers=headers)

    def rate_limited(self, state: EmulatorState, wait: float) -> web.Response:
        """MiniMax's way (API.md 5): HTTP 200 with ``base_resp`` 1002 and no ``Retry-After``."""
        return self.base_resp(state, 1002)

    def unauthorized(self, state: EmulatorState) -> web.Response:
        return self.base_resp(state, 1004)

    def invalid(self, state: EmulatorState, err: WireError) -> web.Response:
        return self.base_resp(state, 2013, f"invalid params: {err}")

    def task_not_found(self, state: EmulatorState, task_id: str) -> web.Response:
        return self.base_resp(state, 2013, f"invalid params: task {task_id} not found")

    def fault_answer(self, state: EmulatorState, rule: FaultRule) -> web.Response | None:
        if rule.action == "base_resp":
            assert rule.code is not None
            return self.base_resp(state, rule.code, rule.message)
        return super().fault_answer(state, rule)

    def fault_creates_task(self, rule: FaultRule) -> bool:
        if rule.action == "base_resp":
            return rule.creates_task if rule.creates_task is not None else rule.code in UNCERTAIN_CODES
        return super().fault_creates_task(rule)

    def failure_of(self, rule: FaultRule) -> tuple[str, int | None]:
        return rule.reason or DEFAULT_FAILURE_REASON, DEFAULT_FAILURE_CODE if rule.code is None else rule.code

    # -- create --------------------------------------------------------------------------------------
    def read_spec(self, body: Any, path_model: str | None) -> VideoSpec:
        body = require_object(body)
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            raise WireError("model", "is required (e.g. MiniMax-Hailuo-02)", model)
        rules = MODELS.get(model)
        first = check_frame(body, "first_frame_image", data_urls=True, min_side=MIN_IMAGE_SIDE)
        last = check_frame(body, "last_frame_image", data_urls=True, min_side=MIN_IMAGE_SIDE)
        prompt = check_prompt(body, required=first is None)
        for name in BOOLEANS:
            check_bool(body, name)
        if body.get("callback_url") is not None:
            check_frame(body, "callback_url", data_urls=False)
        if rules is None:  # a model this emulator does not know: universal rules only
            duration = body.get("duration", 6)
            if type(duration) is not int or duration <= 0:
                raise WireError("duration", "must be a positive integer (seconds)", duration)
            resolution = body.get("resolution", "768P")
            if not isinstance(resolution, str):
                raise WireError("resolution", "must be a string", resolution)
            return VideoSpec(model, prompt, duration, resolution, first, last)
        duration = check_duration(body)
        resolution = body.get("resolution", "768P")
        self._check_model(model, rules, duration, resolution, first, last)
        return VideoSpec(model, prompt, duration, resolution, first, last)

    @staticmethod
    def _check_model(
        model: str, rules: ModelRules, duration: int, resolution: Any, first: str | None, last: str | None
    ) -> None:
        if resolution not in rules.resolutions:
            raise WireError(
                "resolution", f"must be one of {', '.join(rules.resolutions)} on {model}", resolution
            )
        if resolution == "1080P" and duration != 6:
            raise WireError("resolution", f"1080P is 6 s only on {model} (got duration {duration})")
        if rules.first_frame_required and first is None:
            raise WireError("first_frame_image", f"is required by {model} (image-to-video only)")
        if last is not None and not rules.last_frame:
            raise WireError("last_frame_image", f"is not accepted by {model} (Hailuo-02 only)")
        if resolution in rules.image_only_resolutions:
            if first is None:
                raise WireError(
                    "resolution", f"{resolution} is for image-to-video only on {model}", resolution
                )
            if last is not None:
                raise WireError(
                    "resolution", f"{resolution} does not take a last frame on {model}", resolution
                )

    def submit_answer(self, task: Task) -> web.Response:
        return web.json_response(
            {"task_id": task.task_id, "base_resp": {"status_code": 0, "status_msg": "success"}}
        )

    # -- query ---------------------------------------------------------------------------------------
    def task_answer(
        self, state: EmulatorState, task: Task, base_url: str, fault: FaultRule | None
    ) -> dict[str, Any]:
        phase = task.phase(time.monotonic())[0]
        answer: dict[str, Any] = {"task_id": task.task_id, "status": STATUS_WORDS[phase]}
        base = {"status_code": 0, "status_msg": "success"}
        if phase == SUCCEEDED:
            if not (fault is not None and fault.action == "empty_videos"):
                answer["file_id"] = task.file_id
            video = default_video_for(task)  # what was asked for, even when a fault serves another
            answer["video_width"], answer["video_height"] = video.width, video.height
        elif phase == FAILED:
            code = task.failure_code if task.failure_code is not None else DEFAULT_FAILURE_CODE
            base = {"status_code": code, "status_msg": task.failure_reason or MESSAGES.get(code, "error")}
            if code:
                state.count(f"base_resp_{code}")
        answer["base_resp"] = base
        if fault is not None and fault.action == "no_task":
            del answer["status"]
        return answer

    # -- file retrieval ------------------------------------------------------------------------------
    async def retrieve(self, request: web.Request) -> web.Response:
        """``GET /v1/files/retrieve?file_id=``: a fresh pre-signed link for a finished video."""
        state = request.app[STATE_KEY]
        state.count("file_retrievals")
        if not self.authorized(request, state.config.api_key):
            return self.unauthorized(state)
        file_id = request.query.get("file_id", "")
        if not file_id:
            return self.invalid(state, WireError("file_id", "query parameter is required"))
        if not (file_id.isascii() and file_id.isdigit()):
            return self.invalid(state, WireError("file_id", "must be an integer", file_id))
        task = state.task_of_file(file_id)
        if task is None or task.phase(time.monotonic())[0] != SUCCEEDED:
            return self.base_resp(state, 2013, f"invalid params: file {file_id} not found")
        fault = state.take_fault("file_retrieve")
        if fault is not None:
            replaced = self.fault_answer(state, fault)
            if replaced is not None:
                return replaced
            await asyncio.sleep(fault.seconds)
        url, _ttl = state.signed_link(state.base_url(request), task.task_id)
        created_at = int(task.submit_time_ms / 1000 + task.queue_s + task.generation_s)
        return web.json_response(
            {
                "file": {
                    "file_id": int(file_id),
                    "bytes": 0,
                    "created_at": created_at,
                    "filename": "output_aigc.mp4",
                    "purpose": "video_generation",
                    "download_url": url,
                },
                "base_resp": {"status_code": 0, "status_msg": "success"},
            }
        )


DIALECT = MiniMaxDialect()
