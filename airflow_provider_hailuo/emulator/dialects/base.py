"""
What every dialect does the same way: the order of a submit and of a task read.

A submit is counted, authenticated, parsed, validated, checked against the account's allowance
(``submits_per_minute``), recorded, maybe faulted, and only then creates a (paid) task; a read is
counted, authenticated, looked up, maybe faulted, then answered. That order decides which requests
eat a fault and which ones cost money, so it lives here once; a dialect module only words each step
on the wire (paths, field names, status words, error shapes).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any

from aiohttp import web

from airflow_provider_hailuo.emulator.faults import (
    ACTIONS_BY_ENDPOINT,
    DEFAULT_FAILURE_REASON,
    MEDIA_ACTIONS,
    FaultRule,
)
from airflow_provider_hailuo.emulator.spec import VideoSpec, WireError
from airflow_provider_hailuo.emulator.state import STATE_KEY, SUCCEEDED, EmulatorState, Task


class Dialect(ABC):
    """One vendor's wire; subclasses implement the abstract answers and lay out the routes."""

    name: str = ""
    #: Fault endpoints this dialect has (``file_retrieve`` is MiniMax's alone).
    fault_endpoints: tuple[str, ...] = ("submit", "task_result", "download")
    #: Whether errors can arrive as HTTP 200 with ``base_resp`` (MiniMax).
    has_base_resp: bool = False

    # -- set-up --------------------------------------------------------------------------------------
    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Add this dialect's API routes (downloads and the control API are shared)."""

    def new_id(self) -> str:
        """A task (or file) id as this vendor shapes it: 32 hex digits by default."""
        return uuid.uuid4().hex

    def check_fault(self, rule: FaultRule) -> None:
        """Refuse a rule this dialect cannot play (ValueError), so a typo fails the test at once."""
        if rule.endpoint not in self.fault_endpoints:
            raise ValueError(f"the {self.name} API has no `{rule.endpoint}` endpoint to fault")
        if not self.has_base_resp and (rule.action == "base_resp" or rule.code is not None):
            raise ValueError(f"the {self.name} API has no base_resp error codes (use action `status`)")
        if rule.action not in ACTIONS_BY_ENDPOINT[rule.endpoint]:  # pragma: no cover - from_dict checks
            raise ValueError(f"unknown action {rule.action!r}")

    # -- wording -------------------------------------------------------------------------------------
    @abstractmethod
    def http_error(
        self, status: int, message: str, reason: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        """An HTTP error status in this vendor's error body."""

    def rate_limited(self, state: EmulatorState, wait: float) -> web.Response:
        """The answer to a submit beyond the allowance: 429 with ``Retry-After`` (whole seconds)."""
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        return self.http_error(429, "rate limit exceeded: too many video generation requests", None, headers)

    @abstractmethod
    def unauthorized(self, state: EmulatorState) -> web.Response:
        """The answer to a missing or wrong key."""

    @abstractmethod
    def invalid(self, state: EmulatorState, err: WireError) -> web.Response:
        """The answer to a body or query that breaks a rule."""

    @abstractmethod
    def read_spec(self, body: Any, path_model: str | None) -> VideoSpec:
        """Read a submit body (under this vendor's field names) or raise :class:`WireError`."""

    @abstractmethod
    def submit_answer(self, task: Task) -> web.Response:
        """The answer to an accepted submit."""

    @abstractmethod
    def task_not_found(self, state: EmulatorState, task_id: str) -> web.Response:
        """The answer to a read of an unknown task."""

    @abstractmethod
    def task_answer(
        self, state: EmulatorState, task: Task, base_url: str, fault: FaultRule | None
    ) -> dict[str, Any]:
        """The read's JSON now; ``fault`` is an ``empty_videos``/``no_task`` rule to play, if any."""

    def fault_status(self, rule: FaultRule) -> web.Response:
        assert rule.status is not None  # FaultRule.from_dict guarantees it for action "status"
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else None
        return self.http_error(
            rule.status, rule.message or f"emulated fault: HTTP {rule.status}", rule.reason, headers
        )

    def fault_answer(self, state: EmulatorState, rule: FaultRule) -> web.Response | None:
        """The answer of an API-endpoint fault that replaces the normal one (None: answer normally)."""
        if rule.action == "status":
            return self.fault_status(rule)
        if rule.action == "body":
            return web.json_response(rule.body, status=rule.status or 200)
        return None

    def fault_creates_task(self, rule: FaultRule) -> bool:
        """Whether a submit answered by ``rule`` still created (and billed) its task."""
        if rule.action == "body":
            return rule.creates_task is not False
        return False

    def failure_of(self, rule: FaultRule) -> tuple[str, int | None]:
        """``(reason, code)`` of a task failed by a ``fail_generation`` rule."""
        return rule.reason or DEFAULT_FAILURE_REASON, None

    # -- the flows -----------------------------------------------------------------------------------
    @staticmethod
    def authorized(request: web.Request, api_key: str) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())

    async def submit(self, request: web.Request, path_model: str | None = None) -> web.Response:
        """A submit: nothing is created unless every check passed and no fault refused it."""
        state = request.app[STATE_KEY]
        state.count("submit_requests")
        raw = await request.read()
        problem: str | None = None
        try:
            body: Any = json.loads(raw)
        except ValueError as err:
            body, problem = raw.decode("utf-8", "replace"), f"request body is not valid JSON: {err}"
        task: Task | None = None
        wait: float | None = None
        if not self.authorized(request, state.config.api_key):
            response = self.unauthorized(state)
        elif problem is not None:
            response = self.invalid(state, WireError("body", problem))
        else:
            try:
                spec = self.read_spec(body, path_model)
            except WireError as err:
                response = self.invalid(state, err)
            else:
                wait = state.rate_limit_wait()
                if wait is not None:  # refused before any fault is consumed: nothing is created
                    state.count("rate_limited")
                    response = self.rate_limited(state, wait)
                else:
                    response, task = await self._create(request, state, spec, body)
        state.record_submission(
            request.path, body, response.status, task.task_id if task else None, rate_limited=wait is not None
        )
        return response

    async def _create(
        self, request: web.Request, state: EmulatorState, spec: VideoSpec, body: Any
    ) -> tuple[web.Response, Task | None]:
        fault = state.take_fault("submit")
        if fault is not None:
            refused = self.fault_answer(state, fault)
            if refused is not None:
                task = None
                if self.fault_creates_task(fault):
                    task = state.create_task(spec, body, request.path)
                return refused, task
        reason: str | None = None
        code: int | None = None
        if fault is not None and fault.action == "fail_generation":
            reason, code = self.failure_of(fault)
        variant = fault.action if fault is not None and fault.action in MEDIA_ACTIONS else None
        task = state.create_task(spec, body, request.path, reason, code, variant)
        if fault is not None and fault.action == "delay":
            await asyncio.sleep(fault.seconds)  # the task already exists: a timed-out client still paid
        return self.submit_answer(task), task

    async def read(self, request: web.Request, task_id: str) -> web.Response:
        """A task read: unknown ids and bad keys never eat a fault."""
        state = request.app[STATE_KEY]
        state.count("polls")
        if not self.authorized(request, state.config.api_key):
            return self.unauthorized(state)
        if not task_id:
            return self.invalid(state, WireError("task_id", "query parameter is required"))
        task = state.get_task(task_id)
        if task is None:
            return self.task_not_found(state, task_id)
        state.count_poll(task_id)
        phase = task.phase(time.monotonic())[0]
        fault = state.take_fault(
            "task_result", lambda rule: rule.action != "empty_videos" or phase == SUCCEEDED
        )
        if fault is not None:
            replaced = self.fault_answer(state, fault)
            if replaced is not None:
                return replaced
            if fault.action == "delay":
                await asyncio.sleep(fault.seconds)
                fault = None
        return web.json_response(self.task_answer(state, task, state.base_url(request), fault))


def numeric_id() -> str:
    """A 15-digit id, the shape of MiniMax's task and file ids."""
    return str(10**14 + secrets.randbelow(9 * 10**14))
