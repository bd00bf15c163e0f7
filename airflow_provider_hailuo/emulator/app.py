"""
The emulator's ``aiohttp.web`` application and its state.

It answers the same endpoints with the same JSON shapes as the real service (see API.md), so a DAG,
the test-suite or a benchmark can run offline. Time is simulated from the wall clock: a task is
QUEUED, then PROCESSING, then finished, according to durations drawn when it is submitted. The
request rules are the provider's own (:meth:`VideoRequest.from_body`), so the emulator can never
accept a body the operator would refuse, or the reverse.

State is shared between the server's event loop and the thread that controls it (a pytest fixture,
a benchmark), so every mutation goes through one lock, never held across an ``await``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import random
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from airflow_provider_hailuo.api import HailuoValidationError, TaskStatus, VideoRequest
from airflow_provider_hailuo.emulator.faults import DEFAULT_FAILURE_REASON, FaultList, FaultRule, parse_rules
from airflow_provider_hailuo.emulator.mp4 import DEFAULT_CHUNK_SIZE, iter_video, video_size

logger = logging.getLogger("airflow_provider_hailuo.emulator")

DEFAULT_API_KEY = "emulator-key"
TASK_TYPE = "MINIMAX_HAILUO_02"
#: Settings ``configure()`` / ``POST /_emulator/config`` may change while the server runs.
RUNTIME_SETTINGS = ("queue_seconds", "generation_seconds", "link_ttl_seconds", "time_scale", "video_bytes")
_REASONS = {
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
_NOT_MP4_BODY = (
    b"<html><head><title>Service notice</title></head><body><h1>Please sign in to continue</h1></body></html>"
)


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmulatorConfig:
    """
    How the emulated service behaves. Durations are "service seconds"; ``time_scale`` divides them
    into real seconds (``time_scale=10`` makes a 4 s generation take 0.4 s), so the same scenario
    runs fast in tests and realistically in a demo. ``generation_seconds`` may be a ``(min, max)``
    range, drawn per task from ``random.Random(seed)`` so runs are reproducible.
    """

    api_key: str = DEFAULT_API_KEY
    queue_seconds: float = 1.0
    generation_seconds: float | tuple[float, float] = 4.0
    link_ttl_seconds: float = 3600.0
    time_scale: float = 1.0
    video_bytes: int | None = None
    seed: int | None = 0
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key:
            raise ValueError("api_key must be a non-empty string")
        gen = self.generation_seconds
        if isinstance(gen, list | tuple):
            if len(gen) != 2:
                raise ValueError(f"generation_seconds range must be (min, max), got {gen!r}")
            low, high = (_non_negative("generation_seconds", v) for v in gen)
            if low > high:
                raise ValueError(f"generation_seconds range has min > max: {gen!r}")
            object.__setattr__(self, "generation_seconds", (low, high))
        else:
            object.__setattr__(self, "generation_seconds", _non_negative("generation_seconds", gen))
        object.__setattr__(self, "queue_seconds", _non_negative("queue_seconds", self.queue_seconds))
        object.__setattr__(self, "link_ttl_seconds", _non_negative("link_ttl_seconds", self.link_ttl_seconds))
        scale = _non_negative("time_scale", self.time_scale)
        if scale == 0:
            raise ValueError("time_scale must be > 0")
        object.__setattr__(self, "time_scale", scale)
        if self.video_bytes is not None:
            if isinstance(self.video_bytes, bool) or not isinstance(self.video_bytes, int):
                raise ValueError(f"video_bytes must be an integer, got {self.video_bytes!r}")
            video_size(self.video_bytes)  # refuses sizes a free box cannot pad to
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size <= 0:
            raise ValueError("chunk_size must be a positive integer")

    def real_seconds(self, service_seconds: float) -> float:
        return service_seconds / self.time_scale

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON, without the API key (the control API needs no key, so it shows none)."""
        data = dataclasses.asdict(self)
        data.pop("api_key")
        if isinstance(self.generation_seconds, tuple):
            data["generation_seconds"] = list(self.generation_seconds)
        return data


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------------
@dataclass
class Task:
    """One submitted generation; its timings are fixed (in real seconds) when it is submitted."""

    task_id: str
    model: str
    request: VideoRequest
    created: float  # time.monotonic() at submit
    submit_time_ms: int  # wall clock, as the service reports it
    queue_s: float
    generation_s: float
    seed: int
    failure_reason: str | None = None

    def phase(self, now: float) -> tuple[str, int, int]:
        """``(status, progress_percent, eta)`` at monotonic time ``now``."""
        elapsed = now - self.created
        done_at = self.queue_s + self.generation_s
        if elapsed >= done_at:
            status = TaskStatus.FAILED if self.failure_reason is not None else TaskStatus.SUCCEED
            return str(status), 100, 0
        eta = max(0, math.ceil(done_at - elapsed))
        if elapsed < self.queue_s:
            return str(TaskStatus.QUEUED), 0, eta
        progress = int(100 * (elapsed - self.queue_s) / self.generation_s) if self.generation_s else 99
        return str(TaskStatus.PROCESSING), min(99, max(0, progress)), eta


# --------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------
class EmulatorState:
    """Tasks, counters, faults and settings of one emulator, safe to read and change from any thread."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.faults = FaultList()
        #: Where download links point (``http://host:port``); None: the host the API was called on.
        self.download_base_url: str | None = None
        self._secret = secrets.token_bytes(32)  # per process: links die with the emulator
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._counters: Counter[str] = Counter()
        self._polls_by_task: Counter[str] = Counter()
        self._rng = random.Random(self.config.seed)

    # -- counters ----------------------------------------------------------------------------------
    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def counters(self) -> dict[str, Any]:
        """A copy: fixed counters (always present), ``status_<code>`` ones, ``tasks``, ``polls_by_task``."""
        with self._lock:
            data: dict[str, Any] = {
                "submit_requests": 0,
                "submits": 0,
                "polls": 0,
                "downloads": 0,
                "download_completes": 0,
                "download_auth_headers": 0,
                "faults_applied": 0,
            }
            data.update(self._counters)
            data["tasks"] = len(self._tasks)
            data["polls_by_task"] = dict(self._polls_by_task)
            return data

    # -- settings and faults -------------------------------------------------------------------------
    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change run-time settings; tasks already submitted keep the timings they were given."""
        unknown = sorted(set(changes) - set(RUNTIME_SETTINGS))
        if unknown:
            raise ValueError(
                f"cannot change {', '.join(unknown)} at run time (allowed: {', '.join(RUNTIME_SETTINGS)})"
            )
        with self._lock:
            self.config = dataclasses.replace(self.config, **changes)
            return self.config

    def add_faults(self, rules: list[FaultRule]) -> None:
        self.faults.add(rules)

    def take_fault(self, endpoint: str) -> FaultRule | None:
        rule = self.faults.take(endpoint)
        if rule is not None:
            self.count("faults_applied")
            logger.info("fault applied on %s: %s", endpoint, rule.action)
        return rule

    def reset(self) -> None:
        """Forget tasks, counters and faults (settings stay), and reseed the random draws."""
        self.faults.clear()
        with self._lock:
            self._tasks.clear()
            self._counters.clear()
            self._polls_by_task.clear()
            self._rng = random.Random(self.config.seed)

    # -- tasks ---------------------------------------------------------------------------------------
    def create_task(self, model: str, request: VideoRequest, failure_reason: str | None = None) -> Task:
        with self._lock:
            cfg = self.config
            gen = cfg.generation_seconds
            gen_service = self._rng.uniform(*gen) if isinstance(gen, tuple) else gen
            task = Task(
                task_id=uuid.uuid4().hex,
                model=model,
                request=request,
                created=time.monotonic(),
                submit_time_ms=int(time.time() * 1000),
                queue_s=cfg.real_seconds(cfg.queue_seconds),
                generation_s=cfg.real_seconds(gen_service),
                seed=self._rng.randrange(2**31),
                failure_reason=failure_reason,
            )
            self._tasks[task.task_id] = task
            self._counters["submits"] += 1
            return task

    def get_task(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def count_poll(self, task_id: str) -> None:
        with self._lock:
            self._polls_by_task[task_id] += 1

    # -- signed links --------------------------------------------------------------------------------
    def _signature(self, task_id: str, expires: str) -> str:
        return hmac.new(self._secret, f"{task_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_link(self, base_url: str, task_id: str) -> tuple[str, str]:
        """A fresh ``(url, ttl)``; ``expires`` has millisecond precision so sub-second TTLs work."""
        ttl = self.config.real_seconds(self.config.link_ttl_seconds)
        expires = f"{time.time() + ttl:.3f}"
        query = urlencode({"expires": expires, "sig": self._signature(task_id, expires)})
        return f"{base_url}/_downloads/{task_id}.mp4?{query}", str(int(ttl))

    def check_link(self, task_id: str, expires: str, sig: str) -> str | None:
        """None if the link is good, else why not (``SignatureDoesNotMatch`` or ``expired``)."""
        if not expires or not sig or not hmac.compare_digest(self._signature(task_id, expires), sig):
            return "SignatureDoesNotMatch"
        try:
            deadline = float(expires)
        except ValueError:
            return "SignatureDoesNotMatch"
        return "expired" if time.time() > deadline else None

    # -- answers ------------------------------------------------------------------------------------
    def task_result(self, task: Task, base_url: str) -> dict[str, Any]:
        """The task-result JSON, in the shape API.md documents (a finished task gets a fresh link)."""
        now = time.monotonic()
        status, progress, eta = task.phase(now)
        videos: list[dict[str, Any]] = []
        if status == TaskStatus.SUCCEED:
            url, ttl = self.signed_link(base_url, task.task_id)
            videos.append({"video_url": url, "video_url_ttl": ttl, "video_type": "mp4"})
        started = now - task.created >= task.queue_s
        execute_ms = task.submit_time_ms + int(task.queue_s * 1000) if started else 0
        complete_ms = execute_ms + int(task.generation_s * 1000) if progress == 100 else 0
        return {
            "task": {
                "task_id": task.task_id,
                "task_type": TASK_TYPE,
                "status": status,
                "reason": (task.failure_reason or "") if status == TaskStatus.FAILED else "",
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


STATE_KEY = web.AppKey("hailuo_emulator_state", EmulatorState)


# --------------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------------
def error_response(
    status: int, reason: str | None = None, message: str = "", headers: dict[str, str] | None = None
) -> web.Response:
    """The API's error shape: ``{"code", "reason", "message", "metadata"}``."""
    body = {
        "code": status,
        "reason": reason or _REASONS.get(status, "ERROR"),
        "message": message,
        "metadata": {},
    }
    return web.json_response(body, status=status, headers=headers)


def _storage_error(status: int, code: str, message: str) -> web.Response:
    """Object storage answers in XML, not in the API's JSON shape (like S3's AccessDenied)."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def _fault_status(rule: FaultRule) -> web.Response:
    assert rule.status is not None  # FaultRule.from_dict guarantees it for action "status"
    headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else None
    message = rule.message or f"emulated fault: HTTP {rule.status}"
    return error_response(rule.status, rule.reason, message, headers)


def _unauthorized() -> web.Response:
    return error_response(401, "FAILED_TO_AUTH", "failed to authenticate API key")


def _authorized(request: web.Request, api_key: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def _base_url(request: web.Request, state: EmulatorState) -> str:
    return state.download_base_url or f"{request.scheme}://{request.host}"


# --------------------------------------------------------------------------------------------------
# API handlers
# --------------------------------------------------------------------------------------------------
async def submit(request: web.Request) -> web.Response:
    """``POST /v3/async/{model}``: validate, maybe apply a fault, create a (paid) task."""
    state = request.app[STATE_KEY]
    state.count("submit_requests")
    if not _authorized(request, state.config.api_key):
        return _unauthorized()
    model = request.match_info["model"]
    try:
        body = json.loads(await request.read())
    except ValueError as err:
        return error_response(400, "INVALID_REQUEST_BODY", f"request body is not valid JSON: {err}")
    try:
        video_request = VideoRequest.from_body(body, model=model)
    except HailuoValidationError as err:
        return error_response(400, "INVALID_REQUEST_BODY", str(err))

    fault = state.take_fault("submit")
    if fault is not None and fault.action == "status":
        return _fault_status(fault)  # refused: no task, nothing billed
    failure = None
    if fault is not None and fault.action == "fail_generation":
        failure = fault.reason or DEFAULT_FAILURE_REASON
    task = state.create_task(model, video_request, failure_reason=failure)
    if fault is not None and fault.action == "delay":
        await asyncio.sleep(fault.seconds)  # the task already exists: a timed-out client still paid
    return web.json_response({"task_id": task.task_id})


async def task_result(request: web.Request) -> web.Response:
    """``GET /v3/async/task-result?task_id=...``: the task's state now, with a fresh link if done."""
    state = request.app[STATE_KEY]
    state.count("polls")
    if not _authorized(request, state.config.api_key):
        return _unauthorized()
    task_id = request.query.get("task_id", "")
    if not task_id:
        return error_response(400, "INVALID_REQUEST_BODY", "query parameter `task_id` is required")
    task = state.get_task(task_id)
    if task is None:
        return error_response(404, "TASK_NOT_FOUND", f"task {task_id} not found")
    state.count_poll(task_id)
    fault = state.take_fault("task_result")
    if fault is not None and fault.action == "status":
        return _fault_status(fault)
    if fault is not None and fault.action == "delay":
        await asyncio.sleep(fault.seconds)
    return web.json_response(state.task_result(task, _base_url(request, state)))


async def download(request: web.Request) -> web.StreamResponse:
    """``GET /_downloads/{task_id}.mp4?expires=&sig=``: a pre-signed link; no API key involved."""
    state = request.app[STATE_KEY]
    state.count("downloads")
    if "Authorization" in request.headers:
        state.count("download_auth_headers")  # a client leaking its API key to storage
    task_id = request.match_info["task_id"]
    problem = state.check_link(task_id, request.query.get("expires", ""), request.query.get("sig", ""))
    if problem == "expired":
        return _storage_error(403, "AccessDenied", "Request has expired")
    if problem is not None:
        return _storage_error(403, "SignatureDoesNotMatch", "The request signature does not match")
    task = state.get_task(task_id)
    if task is None or task.phase(time.monotonic())[0] != TaskStatus.SUCCEED:
        return _storage_error(404, "NoSuchKey", "The specified key does not exist.")

    cfg = state.config
    size = video_size(cfg.video_bytes)
    fault = state.take_fault("download")
    if fault is None:
        return await _stream_video(request, state, cfg, announced=size, limit=size)
    if fault.action == "status":
        return _fault_status(fault)
    if fault.action == "expire":
        return _storage_error(403, "AccessDenied", "Request has expired")
    if fault.action == "not_mp4":
        return web.Response(body=_NOT_MP4_BODY, content_type="video/mp4")
    if fault.action == "cut":
        limit = size // 2 if fault.after_bytes is None else min(fault.after_bytes, size)
        return await _stream_video(request, state, cfg, announced=size, limit=limit)
    if fault.action == "wrong_length":
        return await _stream_video(request, state, cfg, announced=size + fault.delta, limit=size)
    # "delay"
    await asyncio.sleep(fault.seconds)
    return await _stream_video(request, state, cfg, announced=size, limit=size)


async def _stream_video(
    request: web.Request, state: EmulatorState, cfg: EmulatorConfig, announced: int, limit: int
) -> web.StreamResponse:
    """
    Stream the video chunk by chunk (``resp.write`` waits for the socket, so memory stays flat).

    ``announced`` is the Content-Length sent, ``limit`` the bytes really sent; when they differ the
    connection is closed after ``limit`` bytes, which the client sees as a body cut short.
    """
    resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    resp.content_length = announced
    if limit != announced:
        resp.force_close()
    await resp.prepare(request)
    sent = 0
    try:
        for chunk in iter_video(cfg.video_bytes, cfg.chunk_size):
            if sent >= limit:
                break
            piece = chunk if sent + len(chunk) <= limit else chunk[: limit - sent]
            await resp.write(piece)
            sent += len(piece)
    except ConnectionError:
        logger.info("download of %s: client went away after %d bytes", request.match_info["task_id"], sent)
        return resp
    if sent == announced:
        state.count("download_completes")
    return resp


# --------------------------------------------------------------------------------------------------
# Control API (no key: a local development tool)
# --------------------------------------------------------------------------------------------------
async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    return json.loads(raw) if raw.strip() else {}


def _control_error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def get_counters(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].counters())


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": request.app[STATE_KEY].faults.snapshot()})


async def add_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        state.add_faults(parse_rules(await _json_body(request)))
    except ValueError as err:
        return _control_error(str(err))
    return web.json_response({"faults": state.faults.snapshot()})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults.clear()
    return web.json_response({"faults": []})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"ok": True})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].config.to_json())


async def set_config(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        changes = await _json_body(request)
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        config = state.configure(**changes)
    except (ValueError, TypeError) as err:
        return _control_error(str(err))
    return web.json_response(config.to_json())


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


# --------------------------------------------------------------------------------------------------
# Application
# --------------------------------------------------------------------------------------------------
@web.middleware
async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
    """Log every request (method, path, status; never headers) and count error statuses."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # unknown route, wrong method: answer in the API's error shape
        response = error_response(exc.status, None, exc.reason)
    status = response.status
    if status >= 400 and not request.path.startswith("/_emulator/"):
        request.app[STATE_KEY].count(f"status_{status}")
    logger.info("%s %s -> %d", request.method, request.path, status)
    return response


def create_app(state: EmulatorState | None = None, **config: Any) -> web.Application:
    """The application; pass a ``state`` to share it, or settings (``EmulatorConfig`` fields)."""
    app = web.Application(middlewares=[observe])
    app[STATE_KEY] = state if state is not None else EmulatorState(EmulatorConfig(**config))
    app.router.add_get("/v3/async/task-result", task_result)
    app.router.add_post("/v3/async/{model:[a-z0-9][a-z0-9._-]*}", submit)
    app.router.add_get("/_downloads/{task_id:[0-9a-f]+}.mp4", download)
    app.router.add_get("/_emulator/health", health)
    app.router.add_get("/_emulator/counters", get_counters)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_post("/_emulator/faults", add_faults)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/config", get_config)
    app.router.add_post("/_emulator/config", set_config)
    return app
