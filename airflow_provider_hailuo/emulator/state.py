"""
The emulator's state: tasks, what each submit carried, counters, faults, signed links.

It is vendor-neutral: a task knows the :class:`VideoSpec` its dialect understood and goes through
neutral phases (preparing, queued, processing, succeeded, failed) that each dialect words its own
way. Time is simulated from the wall clock with durations drawn when the task is submitted.

State is shared between the server's event loop and the thread that controls it (a pytest fixture,
a benchmark), so every mutation goes through one lock, never held across an ``await``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import logging
import math
import random
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from airflow_provider_hailuo.emulator.config import RUNTIME_SETTINGS, EmulatorConfig
from airflow_provider_hailuo.emulator.dialects import get_dialect
from airflow_provider_hailuo.emulator.faults import FaultList, FaultRule
from airflow_provider_hailuo.emulator.mp4 import (
    Loader,
    Sample,
    load_sample,
    sample_for,
    undecodable_bytes,
    wrong_duration_sample,
    wrong_resolution_sample,
)
from airflow_provider_hailuo.emulator.realistic import prefetch, realistic_sample
from airflow_provider_hailuo.emulator.spec import VideoSpec

if TYPE_CHECKING:
    from airflow_provider_hailuo.emulator.dialects.base import Dialect

logger = logging.getLogger("airflow_provider_hailuo.emulator")

PREPARING, QUEUED, PROCESSING, SUCCEEDED, FAILED = "preparing", "queued", "processing", "succeeded", "failed"
FINISHED = (SUCCEEDED, FAILED)
#: How many submit attempts ``submissions()`` keeps (a benchmark submits thousands).
MAX_SUBMISSIONS = 10_000


@dataclass
class Task:
    """One submitted generation; its timings are fixed (in real seconds) when it is submitted."""

    task_id: str
    model: str
    spec: VideoSpec
    body: dict[str, Any]  # the JSON body exactly as received: which field names arrived
    path: str
    created: float  # time.monotonic() at submit
    submit_time_ms: int  # wall clock, as the service reports it
    queue_s: float
    generation_s: float
    seed: int
    failure_reason: str | None = None
    failure_code: int | None = None  # MiniMax's base_resp code of a failed generation
    video_variant: str | None = None  # a media fault: wrong_duration, wrong_resolution, undecodable
    file_id: str = ""

    def phase(self, now: float) -> tuple[str, int, int]:
        """``(phase, progress_percent, eta)`` at monotonic time ``now``; phases are neutral words."""
        elapsed = now - self.created
        done_at = self.queue_s + self.generation_s
        if elapsed >= done_at:
            return (FAILED if self.failure_reason is not None else SUCCEEDED), 100, 0
        eta = max(0, math.ceil(done_at - elapsed))
        if elapsed < self.queue_s:
            return (PREPARING if elapsed < self.queue_s / 2 else QUEUED), 0, eta
        progress = int(100 * (elapsed - self.queue_s) / self.generation_s) if self.generation_s else 99
        return PROCESSING, min(99, max(0, progress)), eta

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """What the control API shows of a task: the body received and what was understood of it."""
        phase = self.phase(time.monotonic() if now is None else now)[0]
        return {
            "task_id": self.task_id,
            "path": self.path,
            "model": self.model,
            "body": copy.deepcopy(self.body),
            "fields": sorted(self.body),
            "spec": self.spec.to_json(),
            "phase": phase,
            "file_id": self.file_id,
            "failure_reason": self.failure_reason,
            "video_variant": self.video_variant,
        }


class EmulatorState:
    """Tasks, counters, faults and settings of one emulator, safe to read and change from any thread."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.dialect: Dialect = get_dialect(self.config.api)
        self.faults = FaultList()
        #: Where download links point (``http://host:port``); None: the host the API was called on.
        self.download_base_url: str | None = None
        self._secret = secrets.token_bytes(32)  # per process: links die with the emulator
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._files: dict[str, str] = {}  # MiniMax file_id -> task_id
        self._submissions: deque[dict[str, Any]] = deque(maxlen=MAX_SUBMISSIONS)
        self._counters: Counter[str] = Counter()
        self._polls_by_task: Counter[str] = Counter()
        self._rng = random.Random(self.config.seed)
        #: When recent submits were accepted (monotonic), for ``submits_per_minute``.
        self._accepted: deque[float] = deque(maxlen=MAX_SUBMISSIONS)

    # -- counters ----------------------------------------------------------------------------------
    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def counters(self) -> dict[str, Any]:
        """A copy: fixed counters (always present), ``status_<code>`` and ``base_resp_<code>`` ones,
        ``tasks``, ``polls_by_task``."""
        with self._lock:
            data: dict[str, Any] = {
                "requests": 0,
                "submit_requests": 0,
                "submits": 0,
                "polls": 0,
                "file_retrievals": 0,
                "downloads": 0,
                "download_completes": 0,
                "download_auth_headers": 0,
                "faults_applied": 0,
                "rate_limited": 0,
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
        """Add rules after checking this dialect has their endpoint and action (ValueError if not)."""
        for rule in rules:
            self.dialect.check_fault(rule)
        self.faults.add(rules)

    def take_fault(self, endpoint: str, applies: Any = None) -> FaultRule | None:
        rule = self.faults.take(endpoint, applies)
        if rule is not None:
            self.count("faults_applied")
            logger.info("fault applied on %s: %s", endpoint, rule.action)
        return rule

    def reset(self) -> None:
        """Forget tasks, submissions, counters and faults (settings stay), and reseed the draws."""
        self.faults.clear()
        with self._lock:
            self._tasks.clear()
            self._files.clear()
            self._submissions.clear()
            self._counters.clear()
            self._polls_by_task.clear()
            self._accepted.clear()
            self._rng = random.Random(self.config.seed)

    # -- tasks ---------------------------------------------------------------------------------------
    def create_task(
        self,
        spec: VideoSpec,
        body: dict[str, Any] | None = None,
        path: str = "",
        failure_reason: str | None = None,
        failure_code: int | None = None,
        video_variant: str | None = None,
    ) -> Task:
        with self._lock:
            cfg = self.config
            gen = cfg.generation_seconds
            gen_service = self._rng.uniform(*gen) if isinstance(gen, tuple) else gen
            task = Task(
                task_id=self.dialect.new_id(),
                model=spec.model,
                spec=spec,
                body=copy.deepcopy(body) if body is not None else {},
                path=path,
                created=time.monotonic(),
                submit_time_ms=int(time.time() * 1000),
                queue_s=cfg.real_seconds(cfg.queue_seconds),
                generation_s=cfg.real_seconds(gen_service),
                seed=self._rng.randrange(2**31),
                failure_reason=failure_reason,
                failure_code=failure_code,
                video_variant=video_variant,
                file_id=self.dialect.new_id(),
            )
            self._tasks[task.task_id] = task
            self._files[task.file_id] = task.task_id
            self._counters["submits"] += 1
            self._accepted.append(task.created)
        if cfg.realistic_videos:
            # Made while the task "generates", as the service does, so its download need not wait.
            prefetch(spec.resolution, spec.duration)
        return task

    def rate_limit_wait(self) -> float | None:
        """
        None if a submit now is within ``submits_per_minute``; else the real seconds until the
        oldest accepted submit of the last minute (service time) leaves it. Only accepted submits
        count: a refused one takes nothing from the allowance.
        """
        with self._lock:
            limit = self.config.submits_per_minute
            if limit is None:
                return None
            window = self.config.real_seconds(60.0)
            now = time.monotonic()
            while self._accepted and self._accepted[0] <= now - window:
                self._accepted.popleft()
            if len(self._accepted) < limit:
                return None
            return self._accepted[-limit] + window - now

    def get_task(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def task_of_file(self, file_id: str) -> Task | None:
        with self._lock:
            task_id = self._files.get(file_id)
            return self._tasks.get(task_id) if task_id is not None else None

    @property
    def tasks(self) -> dict[str, Task]:
        """A snapshot of the tasks by id (``state.tasks[id].body`` is what that submit carried)."""
        with self._lock:
            return dict(self._tasks)

    def count_poll(self, task_id: str) -> None:
        with self._lock:
            self._polls_by_task[task_id] += 1

    def record_submission(
        self, path: str, body: Any, status: int, task_id: str | None, rate_limited: bool = False
    ) -> None:
        """
        Every submit attempt, accepted or not: the body as received, what it was answered, whether
        the answer was a rate-limit refusal, and when (UNIX time).
        """
        entry = {
            "path": path,
            "body": copy.deepcopy(body),
            "status": status,
            "task_id": task_id,
            "rate_limited": rate_limited,
            "at": time.time(),
        }
        with self._lock:
            self._submissions.append(entry)  # the oldest go beyond MAX_SUBMISSIONS

    def submissions(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._submissions))

    # -- videos --------------------------------------------------------------------------------------
    def video_of(self, task: Task, variant: str | None = None) -> Sample:
        """
        The video a task's download serves: the sample matching its request, or what a media fault
        (``variant``, else the task's own) puts in its place.
        """
        spec, kind = task.spec, variant or task.video_variant
        if kind == "undecodable":
            return dataclasses.replace(sample_for(spec.resolution, spec.duration), data=undecodable_bytes())
        load = self.video_loader()
        if kind == "wrong_duration":
            return wrong_duration_sample(spec.resolution, load)
        if kind == "wrong_resolution":
            return wrong_resolution_sample(spec.resolution, spec.duration, load)
        return sample_for(spec.resolution, spec.duration, load)

    def video_loader(self) -> Loader:
        """The packaged samples, or (``realistic_videos``) service-like clips made on first use."""
        return realistic_sample if self.config.realistic_videos else load_sample

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

    def base_url(self, request: web.Request) -> str:
        """Where download links of an answer to ``request`` point."""
        return self.download_base_url or f"{request.scheme}://{request.host}"


STATE_KEY = web.AppKey("hailuo_emulator_state", EmulatorState)


def default_video_for(task: Task) -> Sample:
    """The sample a task's request asks for, ignoring faults (what MiniMax reports it made)."""
    return sample_for(task.spec.resolution, task.spec.duration)


__all__ = [
    "FAILED",
    "FINISHED",
    "PREPARING",
    "PROCESSING",
    "QUEUED",
    "STATE_KEY",
    "SUCCEEDED",
    "EmulatorState",
    "Task",
    "default_video_for",
]
