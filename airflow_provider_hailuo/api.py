"""
The provider's vocabulary, the same for every vendor: the request, the task result and the exceptions.

What differs per vendor (paths, field names, status words, error codes) lives in one module per
vendor under :mod:`airflow_provider_hailuo.dialects`, and what differs per model lives in its
catalogue (:mod:`airflow_provider_hailuo.dialects.models`). This module keeps the rules that hold
whoever sells the video, so a DAG's literal values are checked when it is parsed, before anyone
knows which vendor its connection names.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

#: The model a request names when the DAG names none: the catalogue's Hailuo-02, which every vendor
#: sells (each dialect maps it to its own endpoint or model name).
DEFAULT_MODEL = "hailuo-02"
PROMPT_MAX_CHARS = 2000
#: The request's own fields: ``extra_body`` may not repeat them (it would bypass their rules).
CORE_FIELDS = (
    "prompt",
    "image_url",
    "end_image_url",
    "duration",
    "resolution",
    "enable_prompt_expansion",
    "fast_pretreatment",
)
#: A model name any vendor could take: an endpoint path segment or a ``model`` field, never a path.
MODEL_NAME_FORM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Longest service text copied into an error (it ends up in logs and in trigger events).
SERVICE_TEXT_LIMIT = 200
#: Key-like runs in a service's text: a bearer token, a JWT, an ``sk-`` key, any long opaque token.
_SECRET_LIKE = re.compile(r"(?i:bearer)\s+\S+|\beyJ[\w.-]+|\bsk[-_][\w-]+|[\w+/=.-]{40,}")
_DATA_IMAGE_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,[A-Za-z0-9+/]+={0,2}")


def service_text(value: Any, limit: int = SERVICE_TEXT_LIMIT) -> str:
    """
    Text from a service's answer, fit to put in an error message.

    A service may echo the key it refused; key-like tokens are blanked before the text is cut to
    ``limit`` characters (so a key cut in half at the limit cannot survive either).
    """
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = " ".join(_SECRET_LIKE.sub("***", text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------------------
class HailuoError(Exception):
    """Base class of every error this provider raises."""


class HailuoValidationError(HailuoError, ValueError):
    """
    A request breaks one of the rules; raised before anything is sent.

    A model rule also names the model and the vendor it holds for: ``rule`` then ends with
    ``(<model> on <vendor>)`` and ``condition`` is the rule without them.
    """

    def __init__(
        self,
        field_name: str,
        rule: str,
        value: Any = None,
        *,
        model: str | None = None,
        vendor: str | None = None,
    ) -> None:
        self.field = field_name
        self.condition = rule
        self.value = value
        self.model = model
        self.vendor = vendor
        self.rule = f"{rule} ({model} on {vendor})" if model else rule
        shown = "" if value is None else f" (got {_short_repr(value)})"
        super().__init__(f"Invalid Hailuo request: `{field_name}` {self.rule}{shown}")


class HailuoAPIError(HailuoError):
    """
    The service answered with an error: an HTTP status, or (MiniMax) ``base_resp.status_code``.

    ``code`` is the service's own error code when it has one; ``reason`` and ``message`` are the
    service's words, bounded and with key-like tokens blanked.
    """

    def __init__(
        self,
        status: int,
        reason: str = "",
        message: str = "",
        task_id: str | None = None,
        conn_id: str | None = None,
        *,
        code: int | None = None,
    ) -> None:
        self.status = status
        self.code = code
        #: Which API family the answer's body is shaped like (None: not a vendor's; see dialects).
        self.answered_like: str | None = None
        self.content_type: str | None = None
        self.reason = service_text(reason)
        self.message = service_text(message)
        self.task_id = task_id
        self.conn_id = conn_id
        text = f"Hailuo API answered HTTP {status}"
        if code is not None:
            text += f" with status_code {code}"
        if self.reason:
            text += f": {self.reason}"
        if self.message:
            text += f" - {self.message}"
        if task_id:
            text += f" (task_id={task_id})"
        if conn_id:
            text += f" [connection {conn_id!r}]"
        super().__init__(text)


class HailuoAuthError(HailuoAPIError):
    """The key is missing, wrong, or lacks permission or balance. Never retried."""


class HailuoNotFoundError(HailuoAPIError):
    """No such task, file or endpoint (on a read: the service does not know that task id)."""


class HailuoTransientError(HailuoAPIError):
    """
    Worth another try after a wait (``retry_after`` seconds when the service says).

    ``nothing_created`` is set by the vendor's classifier when the answer proves a submit created
    no task (HTTP 429/503, MiniMax 1002): only then may a submit be sent again. Any other transient
    answer to a submit leaves the task possibly created (and billed).
    """

    def __init__(
        self,
        *args: Any,
        retry_after: float | None = None,
        nothing_created: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after
        self.nothing_created = nothing_created


class HailuoContentRefusedError(HailuoAPIError):
    """The service flagged the input or the output as sensitive: a failed generation, never retried."""


class HailuoMalformedAnswerError(HailuoError):
    """A 2xx answer whose body is not what the contract says (a proxy's HTML page, say)."""

    def __init__(self, message: str, *, answered_like: str | None = None) -> None:
        super().__init__(message)
        #: The API family the body is shaped like, when it is another vendor's answer.
        self.answered_like = answered_like


class HailuoTransportError(HailuoError):
    """
    The exchange broke below HTTP: no answer was read (refused, reset, TLS, timeout...).

    ``request_sent`` is where it broke, as the transport saw it: False only when not one byte of the
    request had been handed to the socket, so the service cannot have seen it (a submit may then be
    sent again); True when the service may have received the request.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class HailuoSubmitUncertainError(HailuoError):
    """
    A submit whose outcome is unknown: the service may have created (and billed) the task.

    Raised instead of sending it again, because a blind resend could buy the same video twice; the
    message says which connection, when the request went out, and where to look for the task.
    """

    def __init__(self, message: str, *, conn_id: str | None = None, sent_at: str | None = None) -> None:
        super().__init__(message)
        self.conn_id = conn_id
        self.sent_at = sent_at

    @classmethod
    def because(
        cls,
        why: str,
        *,
        conn_id: str | None = None,
        sent_at: str | None = None,
        console: str = "the vendor's console",
    ) -> HailuoSubmitUncertainError:
        """The error with the one message every path uses: what happened and what to check."""
        through = f" through connection {conn_id!r}" if conn_id else ""
        when = f" sent at {sent_at}" if sent_at else ""
        look = f"look in {console} for a task created at {sent_at}" if sent_at else f"look in {console}"
        return cls(
            f"The Hailuo submission{through} may have been accepted: {why} (request{when}). It was "
            f"NOT sent again, to avoid paying for a second video: {look} before running this task "
            "again.",
            conn_id=conn_id,
            sent_at=sent_at,
        )


class HailuoTaskFailedError(HailuoError):
    """The service finished the generation as failed."""

    def __init__(self, task_id: str, reason: str) -> None:
        self.task_id = task_id
        self.reason = service_text(reason)
        super().__init__(f"Hailuo task {task_id} failed: {self.reason or 'no reason given by the service'}")


class HailuoNoVideoError(HailuoError):
    """A task has no video to download (yet): not finished, failed, or finished without a file."""


class HailuoDownloadError(HailuoError):
    """A video download was refused, cut short, or is not an MP4."""


class HailuoDestinationTakenError(HailuoDownloadError):
    """``overwrite=False`` and the destination holds a different file: every retry would meet it too."""


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


def is_data_url(url: str) -> bool:
    """Whether a frame is inline (``data:``) rather than a link: vendors differ on taking those."""
    return url[:5].lower() == "data:"


def check_frame_url(field_name: str, url: Any) -> str:
    """
    A frame as a service can fetch it: an http(s) URL, or a ``data:image/...;base64,`` URL.

    Object-storage forms (``s3://``, ``gs://``, ``file://``) are turned into one of these before a
    request is built; anything else here is a mistake that would fail only after paying.
    """
    if isinstance(url, str) and is_data_url(url):
        if not _DATA_IMAGE_URL.fullmatch(url):
            raise HailuoValidationError(field_name, "must be a data:image/<type>;base64,<data> URL", url)
        return url
    try:
        return check_http_url(field_name, url)
    except HailuoValidationError as err:
        raise HailuoValidationError(
            field_name, f"{err.rule}, or be a data:image/...;base64, URL", url
        ) from None


@dataclass(frozen=True, kw_only=True)
class VideoRequest:
    """
    One generation request in the provider's own terms, validated on construction.

    Construction checks the rules every vendor shares (prompt length, frame URL forms, types). What
    the vendors take is theirs to say: the submit operator asks every dialect when the DAG is parsed
    (``dialects.refuse_what_no_vendor_takes``: 10 s at 1080P, say), and the connection's dialect
    before the submit (``dialect.validate``). This module imports no dialect.

    ``model`` is a catalogue name (``hailuo-02``, ``hailuo-2.3``, ``hailuo-2.3-fast``) or a vendor's
    own model name, passed through; ``extra_body`` carries fields the service adds later without a
    provider release.
    """

    prompt: str
    image_url: str | None = None
    end_image_url: str | None = None
    duration: int = 6
    resolution: str = "768P"
    enable_prompt_expansion: bool = True
    fast_pretreatment: bool = False
    model: str = DEFAULT_MODEL
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_shared_rules()

    def _check_shared_rules(self) -> None:
        if not isinstance(self.prompt, str):
            raise HailuoValidationError("prompt", "must be a string", self.prompt)
        if not 1 <= len(self.prompt) <= PROMPT_MAX_CHARS:
            raise HailuoValidationError(
                "prompt",
                f"must be 1 to {PROMPT_MAX_CHARS} characters long, got {len(self.prompt)}",
            )
        if not self.prompt.strip():
            raise HailuoValidationError("prompt", "must not be blank")
        for name in ("image_url", "end_image_url"):
            if getattr(self, name) is not None:
                check_frame_url(name, getattr(self, name))
        if type(self.duration) is not int or self.duration <= 0:
            raise HailuoValidationError("duration", "must be a whole number of seconds", self.duration)
        if not isinstance(self.resolution, str) or not self.resolution:
            raise HailuoValidationError(
                "resolution", "must be a resolution name such as '768P'", self.resolution
            )
        for name in ("enable_prompt_expansion", "fast_pretreatment"):
            if not isinstance(getattr(self, name), bool):
                raise HailuoValidationError(name, "must be a boolean", getattr(self, name))
        if not isinstance(self.model, str) or not MODEL_NAME_FORM.fullmatch(self.model):
            raise HailuoValidationError(
                "model",
                "must be a model name of letters, digits, '.', '_' or '-' (at most 128)",
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


def looks_like_mp4(first_bytes: bytes) -> bool:
    """
    Whether a body starts like an MP4: an ISO-BMFF file opens with an ``ftyp`` box (bytes 4..8).

    Catches the classic failure of a download: an HTML error page or proxy page served with a 200.
    """
    return len(first_bytes) >= 8 and bytes(first_bytes[4:8]) == b"ftyp"


# --------------------------------------------------------------------------------------------------
# Task results
# --------------------------------------------------------------------------------------------------
class TaskState(StrEnum):
    """Where a task is, in every vendor's terms: what the sensor, trigger and download decide on."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: A status word this provider does not know: logged and treated as not finished.
    UNKNOWN = "unknown"


def loose_int(value: Any) -> int | None:
    """
    The services type numbers loosely (``"3600"`` or ``3600``); anything unreadable is None.

    Infinities and NaN are unreadable too (``json`` reads ``Infinity`` and ``1e999`` as floats):
    one odd number in an answer must not crash the read that carries it.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    return None


def id_text(value: Any) -> str | None:
    """An id as text: services send ids as strings or numbers; empty, boolean or other is None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Video:
    url: str
    ttl_seconds: int | None = None
    video_type: str = "mp4"


@dataclass(frozen=True, kw_only=True)
class TaskResult:
    """
    One read of a task, whichever vendor answered.

    ``status`` stays the vendor's raw word (for logs and messages); ``state`` is what the vendor's
    dialect made of it, and every decision is taken on ``state``, so a status word a service invents
    later is logged and treated as "not finished", never a crash. A vendor either lists its
    ``videos`` with their links, or names a ``file_id`` whose link a second call signs at download
    time; ``video_width``/``video_height`` are the size the service reported, where it reports one.
    """

    task_id: str
    status: str
    state: TaskState = TaskState.UNKNOWN
    reason: str = ""
    eta: int | None = None
    progress_percent: int | None = None
    videos: tuple[Video, ...] = ()
    file_id: str | None = None
    video_width: int | None = None
    video_height: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.state is TaskState.SUCCEEDED

    @property
    def failed(self) -> bool:
        return self.state is TaskState.FAILED

    @property
    def finished(self) -> bool:
        return self.succeeded or self.failed

    @property
    def known_status(self) -> bool:
        return self.state is not TaskState.UNKNOWN

    @property
    def video_url(self) -> str | None:
        """The first video link the result lists (a "v3 async" result; MiniMax's list none)."""
        return next((video.url for video in self.videos if video.url), None)

    @property
    def has_video(self) -> bool:
        """
        Whether a succeeded task names something to download: a link, or MiniMax's file id.

        A service may report success before (or without) the video: such a result is not done.
        """
        return self.succeeded and (self.video_url is not None or self.file_id is not None)

    def to_xcom(self) -> dict[str, Any]:
        """
        A plain JSON dict for XCom and trigger events. Download links are left out: a pre-signed
        link is a bearer credential to the video that expires within hours, and the download reads
        a fresh one anyway (the manifest leaves them out for the same reason).
        """
        return {
            "task_id": self.task_id,
            "status": self.status,
            "state": str(self.state),
            "reason": self.reason,
            "eta": self.eta,
            "progress_percent": self.progress_percent,
            "videos": [{"video_type": v.video_type} for v in self.videos],
            "file_id": self.file_id,
            "video_width": self.video_width,
            "video_height": self.video_height,
        }

    def describe(self) -> str:
        """One log line's worth: status, progress and eta."""
        text = f"task {self.task_id}: {self.status or '<no status>'}"
        if self.progress_percent is not None:
            text += f", {self.progress_percent}%"
        if self.eta is not None and not self.finished:
            text += f", eta {self.eta}s"
        return text
