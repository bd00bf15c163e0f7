"""
The Hailuo API's vocabulary: the request rules, the task-result shapes and the exceptions.

The operator (before it spends money), the hook (before it sends) and the emulator (when it
answers 400) all validate through :class:`VideoRequest`, so the three can never disagree about
what a valid request is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

DEFAULT_MODEL = "minimax-hailuo-02"
PROMPT_MAX_CHARS = 2000
DURATIONS = (6, 10)
RESOLUTIONS = ("768P", "1080P")
#: Resolutions each duration supports; the service documents 10 s at 768P only.
RESOLUTIONS_BY_DURATION = {6: ("768P", "1080P"), 10: ("768P",)}
CORE_FIELDS = ("prompt", "image_url", "duration", "resolution", "enable_prompt_expansion")
_MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


# --------------------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------------------
class HailuoError(Exception):
    """Base class of every error this provider raises."""


class HailuoValidationError(HailuoError, ValueError):
    """A request breaks one of the API's rules; raised before anything is sent."""

    def __init__(self, field_name: str, rule: str, value: Any = None) -> None:
        self.field = field_name
        self.rule = rule
        shown = "" if value is None else f" (got {_short_repr(value)})"
        super().__init__(f"Invalid Hailuo request: `{field_name}` {rule}{shown}")


class HailuoAPIError(HailuoError):
    """The service answered with an error status."""

    def __init__(
        self,
        status: int,
        reason: str = "",
        message: str = "",
        task_id: str | None = None,
        conn_id: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.task_id = task_id
        self.conn_id = conn_id
        parts = [f"Hailuo API answered HTTP {status}"]
        if reason:
            parts.append(reason)
        text = ": ".join(parts)
        if message:
            text += f" - {message}"
        if task_id:
            text += f" (task_id={task_id})"
        if conn_id:
            text += f" [connection {conn_id!r}]"
        super().__init__(text)


class HailuoAuthError(HailuoAPIError):
    """401/403: the key is missing, wrong, or lacks permission or balance. Never retried."""


class HailuoNotFoundError(HailuoAPIError):
    """No such task or endpoint."""


class HailuoTransientError(HailuoAPIError):
    """429 or 5xx: worth another try after a wait (``retry_after`` seconds when the service says)."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class HailuoMalformedAnswerError(HailuoError):
    """A 2xx answer whose body is not what the contract says (a proxy's HTML page, say)."""


class HailuoSubmitUncertainError(HailuoError):
    """
    A submit whose outcome is unknown: the service may have created (and billed) the task.

    Raised instead of retrying after a read timeout or an answer that does not prove the task was
    not created, because a blind retry could buy the same video twice.
    """


class HailuoTaskFailedError(HailuoError):
    """The service finished the generation with ``TASK_STATUS_FAILED``."""

    def __init__(self, task_id: str, reason: str) -> None:
        self.task_id = task_id
        self.reason = reason
        super().__init__(f"Hailuo task {task_id} failed: {reason or 'no reason given by the service'}")


class HailuoDownloadError(HailuoError):
    """A video download was refused, cut short, or is not an MP4."""


class HailuoLinkExpiredError(HailuoDownloadError):
    """The pre-signed download link answered 403: read the task again for a fresh one."""


# --------------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------------
def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_http_url(field_name: str, url: Any) -> str:
    """Refuse anything but an absolute http(s) URL (``file:``, ``ftp:``, ``data:``... are refused)."""
    if not isinstance(url, str) or not url:
        raise HailuoValidationError(field_name, "must be a non-empty http(s) URL string", url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise HailuoValidationError(field_name, "must use the http or https scheme", url)
    if not parts.hostname:
        raise HailuoValidationError(field_name, "must be an absolute URL with a host", url)
    return url


@dataclass(frozen=True)
class VideoRequest:
    """
    One generation request, validated on construction.

    ``model`` is the endpoint name (``POST /v3/async/<model>``); ``extra_body`` carries fields the
    service adds later (``end_image``, ``fast_pretreatment``...) without a provider release.
    """

    prompt: str
    image_url: str | None = None
    duration: int = 6
    resolution: str = "768P"
    enable_prompt_expansion: bool = True
    model: str = DEFAULT_MODEL
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise HailuoValidationError("prompt", "must be a string", self.prompt)
        if not 1 <= len(self.prompt) <= PROMPT_MAX_CHARS:
            raise HailuoValidationError(
                "prompt",
                f"must be 1 to {PROMPT_MAX_CHARS} characters long, got {len(self.prompt)}",
            )
        if not self.prompt.strip():
            raise HailuoValidationError("prompt", "must not be blank")
        if self.image_url is not None:
            check_http_url("image_url", self.image_url)
        if type(self.duration) is not int or self.duration not in DURATIONS:
            raise HailuoValidationError("duration", "must be 6 or 10 (seconds)", self.duration)
        if self.resolution not in RESOLUTIONS:
            raise HailuoValidationError("resolution", "must be '768P' or '1080P'", self.resolution)
        if self.resolution not in RESOLUTIONS_BY_DURATION[self.duration]:
            raise HailuoValidationError(
                "resolution",
                f"{self.resolution} is not available for {self.duration} s videos (10 s supports 768P only)",
                self.resolution,
            )
        if not isinstance(self.enable_prompt_expansion, bool):
            raise HailuoValidationError(
                "enable_prompt_expansion", "must be a boolean", self.enable_prompt_expansion
            )
        if not isinstance(self.model, str) or not _MODEL_RE.match(self.model):
            raise HailuoValidationError(
                "model",
                "must be an endpoint name of lowercase letters, digits, '.', '_' or '-'",
                self.model,
            )
        if not isinstance(self.extra_body, Mapping):
            raise HailuoValidationError("extra_body", "must be a mapping of field name to value")
        clashes = sorted(set(self.extra_body) & set(CORE_FIELDS))
        if clashes:
            raise HailuoValidationError(
                "extra_body", f"must not repeat the operator's own fields ({', '.join(clashes)})"
            )
        try:
            json.dumps(dict(self.extra_body))
        except (TypeError, ValueError) as err:
            raise HailuoValidationError("extra_body", f"must be JSON-serialisable: {err}") from None

    def to_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /v3/async/<model>``."""
        body: dict[str, Any] = {
            "prompt": self.prompt,
            "duration": self.duration,
            "resolution": self.resolution,
            "enable_prompt_expansion": self.enable_prompt_expansion,
        }
        if self.image_url is not None:
            body["image_url"] = self.image_url
        body.update(self.extra_body)
        return body

    @classmethod
    def from_body(cls, body: Any, model: str = DEFAULT_MODEL) -> VideoRequest:
        """Read a request body as the service does (applying its defaults); used by the emulator."""
        if not isinstance(body, Mapping):
            raise HailuoValidationError("body", "must be a JSON object")
        if "prompt" not in body:
            raise HailuoValidationError("prompt", "is required")
        extra = {k: v for k, v in body.items() if k not in CORE_FIELDS}
        return cls(
            prompt=body["prompt"],
            image_url=body.get("image_url"),
            duration=body.get("duration", 6),
            resolution=body.get("resolution", "768P"),
            enable_prompt_expansion=body.get("enable_prompt_expansion", True),
            model=model,
            extra_body=extra,
        )


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce_rendered(name: str, value: Any) -> Any:
    """
    Turn what a Jinja template rendered (always a string) back into the type the API wants.

    ``duration="{{ params.duration }}"`` renders ``"10"``; the rules then see ``10``. Values that are
    already typed pass through untouched, so the rules still reject ``6.5`` or ``"ten"``.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name == "duration" and text.isdigit():
        return int(text)
    if name == "enable_prompt_expansion" and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if name == "image_url" and text.lower() in ("", "none"):
        return None
    return value


def looks_like_mp4(first_bytes: bytes) -> bool:
    """
    Whether a body starts like an MP4: an ISO-BMFF file opens with an ``ftyp`` box (bytes 4..8).

    Catches the classic failure of a download: an HTML error page or proxy page served with a 200.
    """
    return len(first_bytes) >= 8 and bytes(first_bytes[4:8]) == b"ftyp"


# --------------------------------------------------------------------------------------------------
# Task results
# --------------------------------------------------------------------------------------------------
class TaskStatus(StrEnum):
    QUEUED = "TASK_STATUS_QUEUED"
    PROCESSING = "TASK_STATUS_PROCESSING"
    SUCCEED = "TASK_STATUS_SUCCEED"
    FAILED = "TASK_STATUS_FAILED"


def _to_int(value: Any) -> int | None:
    """The service types numbers loosely (``"3600"`` or ``3600``); anything unreadable is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value.strip()))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Video:
    url: str
    ttl_seconds: int | None = None
    video_type: str = "mp4"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Video:
        return cls(
            url=str(data.get("video_url") or ""),
            ttl_seconds=_to_int(data.get("video_url_ttl")),
            video_type=str(data.get("video_type") or "mp4"),
        )


@dataclass(frozen=True)
class TaskResult:
    """
    One answer of ``GET /v3/async/task-result``.

    ``status`` stays the raw string so an unknown status the service invents later is logged and
    treated as "not finished", never a crash.
    """

    task_id: str
    status: str
    reason: str = ""
    eta: int | None = None
    progress_percent: int | None = None
    videos: tuple[Video, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Any, task_id: str = "") -> TaskResult:
        if not isinstance(data, Mapping):
            raise HailuoMalformedAnswerError(f"Task-result answer for task {task_id} is not a JSON object")
        task = data.get("task")
        if not isinstance(task, Mapping):
            raise HailuoMalformedAnswerError(f"Task-result answer for task {task_id} has no `task` object")
        videos = data.get("videos") or []
        return cls(
            task_id=str(task.get("task_id") or task_id),
            status=str(task.get("status") or ""),
            reason=str(task.get("reason") or ""),
            eta=_to_int(task.get("eta")),
            progress_percent=_to_int(task.get("progress_percent")),
            videos=tuple(Video.from_json(v) for v in videos if isinstance(v, Mapping)),
            raw=data,
        )

    @property
    def succeeded(self) -> bool:
        return self.status == TaskStatus.SUCCEED

    @property
    def failed(self) -> bool:
        return self.status == TaskStatus.FAILED

    @property
    def finished(self) -> bool:
        return self.succeeded or self.failed

    @property
    def known_status(self) -> bool:
        return self.status in TaskStatus.__members__.values()

    def to_xcom(self) -> dict[str, Any]:
        """A plain JSON dict for XCom and trigger events (no secrets: links are pre-signed, not keyed)."""
        return {
            "task_id": self.task_id,
            "status": self.status,
            "reason": self.reason,
            "eta": self.eta,
            "progress_percent": self.progress_percent,
            "videos": [
                {"video_url": v.url, "video_url_ttl": v.ttl_seconds, "video_type": v.video_type}
                for v in self.videos
            ],
        }

    def describe(self) -> str:
        """One log line's worth: status, progress and eta."""
        text = f"task {self.task_id}: {self.status or '<no status>'}"
        if self.progress_percent is not None:
            text += f", {self.progress_percent}%"
        if self.eta is not None and not self.finished:
            text += f", eta {self.eta}s"
        return text
