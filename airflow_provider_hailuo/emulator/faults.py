"""
Fault rules: scripted misbehaviour, so clients can be tested against what the real service does badly.

A rule names an endpoint, an action, and how many requests it applies to (``count``, default 1;
``-1`` = forever). A request consumes the first rule for its endpoint that has count left and that
applies to it. A rule is consumed only by a request that would otherwise have been answered normally
(authenticated, valid body, known task, good link signature): a 401 or 400 never eats a fault meant
for the next real call.

Endpoints: ``submit``, ``task_result`` (the v3 task-result read, or MiniMax's query),
``file_retrieve`` (MiniMax only) and ``download`` (the pre-signed storage link).

Any endpoint
    ``status``: answer ``status`` (400-599) in the dialect's error shape (``reason``/``message``
    overridable; on MiniMax the body is a ``base_resp`` whose ``code`` is overridable), with a
    ``Retry-After: <retry_after>`` header when given. A faulted submit creates NO task.
    ``delay``: sleep ``seconds`` (REAL seconds, not scaled by ``time_scale``: it exists to beat a
    client's real timeout) and then answer normally. A delayed submit creates its task BEFORE
    sleeping, so a client that times out has really bought a video.

API endpoints (``submit``, ``task_result``, ``file_retrieve``)
    ``body``: answer ``body`` (any JSON) with HTTP ``status`` (default 200). On ``submit`` the task
    is created unless ``creates_task`` is false: an answer the client cannot read, for a paid task.
    ``base_resp`` (MiniMax only): HTTP 200 with ``{"base_resp": {"status_code": code, "status_msg":
    message}}``, ``code`` != 0 required. On ``submit`` the task is created only if ``creates_task``
    (default: true for 1000, 1001 and 1024, whose meaning is "the task may exist"; false otherwise).

``submit``
    ``fail_generation``: the task created ends failed with ``reason`` (default below); on MiniMax
    ``status: "Fail"`` with ``base_resp`` ``code`` (default 1027, "generated video sensitive").
    ``wrong_duration`` / ``wrong_resolution`` / ``undecodable``: the task's video, at every download,
    is the 2 s clip of the requested class / the requested duration in another class / a file that
    starts with ``ftyp`` but has no playable track. (MiniMax keeps reporting the requested size.)

``task_result``
    ``empty_videos``: a task that succeeded is answered as succeeded with no video (v3: ``videos:
    []``; MiniMax: ``status: "Success"`` without ``file_id``). Consumed only by reads of a task that
    has succeeded. ``no_task``: a 2xx without the task (v3: no ``task`` object; MiniMax: no
    ``status``), everything else as usual.

``download``
    ``expire``: 403 AccessDenied as if the signed link had expired (clients must renew it).
    ``cut``: correct headers (full Content-Length), then the connection closes after ``after_bytes``
    bytes (default: half the video). ``wrong_length``: announces Content-Length = real size +
    ``delta`` (default 1000, > 0), sends the WHOLE video, then closes: only comparing the bytes
    received with Content-Length catches it. ``not_mp4``: 200 with ``Content-Type: video/mp4`` but an
    HTML body. ``redirect``: answers ``status`` (301/302/303/307/308, default 302) to the same video
    ``hops`` times (default 1), like a CDN. ``gzip``: ``Content-Encoding: gzip`` whatever the client
    asked for, streamed chunked without Content-Length (``content_length: true``: compressed whole
    in memory, with the compressed length; meant for unpadded videos). ``chunked``: identity body,
    chunked, no Content-Length.
    ``wrong_duration`` / ``wrong_resolution`` / ``undecodable``: this one download serves such a
    video (see ``submit``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

ENDPOINTS = ("submit", "task_result", "file_retrieve", "download")
MEDIA_ACTIONS = ("wrong_duration", "wrong_resolution", "undecodable")
ACTIONS_BY_ENDPOINT: dict[str, tuple[str, ...]] = {
    "submit": ("status", "delay", "fail_generation", "body", "base_resp", *MEDIA_ACTIONS),
    "task_result": ("status", "delay", "empty_videos", "no_task", "body", "base_resp"),
    "file_retrieve": ("status", "delay", "body", "base_resp"),
    "download": (
        "status",
        "delay",
        "expire",
        "cut",
        "wrong_length",
        "not_mp4",
        "redirect",
        "gzip",
        "chunked",
        *MEDIA_ACTIONS,
    ),
}
DEFAULT_FAILURE_REASON = "content moderation rejected the prompt"
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_HOPS = 20


@dataclass
class FaultRule:
    """One scripted fault; build it with :meth:`from_dict` so bad rules are refused up front."""

    endpoint: str
    action: str
    count: int = 1
    status: int | None = None
    retry_after: str | None = None
    seconds: float = 0.0
    reason: str | None = None
    message: str | None = None
    after_bytes: int | None = None
    delta: int = 1000
    code: int | None = None
    creates_task: bool | None = None
    body: Any = None
    hops: int = 1
    content_length: bool = False
    applied: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> FaultRule:
        """Validate a rule given as a dict (from JSON, a CLI flag or ``add_fault(**rule)``)."""
        if not isinstance(data, dict):
            raise ValueError(f"a fault rule must be a JSON object, got {data!r}")
        known = {f.name for f in fields(cls)} - {"applied"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault rule field(s): {', '.join(unknown)}")
        endpoint = data.get("endpoint")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"fault `endpoint` must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}")
        action = data.get("action")
        allowed = ACTIONS_BY_ENDPOINT[endpoint]
        if action not in allowed:
            raise ValueError(
                f"fault `action` for {endpoint} must be one of {', '.join(allowed)}, got {action!r}"
            )
        rule = cls(endpoint=endpoint, action=action)
        rule.count = _as_int(data.get("count", 1), "count")
        if rule.count != -1 and rule.count < 1:
            raise ValueError("fault `count` must be >= 1, or -1 for forever")
        rule.status = _status(action, data.get("status"))
        if data.get("retry_after") is not None:
            value = data["retry_after"]
            rule.retry_after = str(int(value)) if isinstance(value, int | float) else str(value)
        if "seconds" in data:
            seconds = data["seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise ValueError(f"fault `seconds` must be a number >= 0, got {seconds!r}")
            rule.seconds = float(seconds)
        if data.get("reason") is not None:
            rule.reason = str(data["reason"])
        if data.get("message") is not None:
            rule.message = str(data["message"])
        if data.get("after_bytes") is not None:
            rule.after_bytes = _as_int(data["after_bytes"], "after_bytes")
            if rule.after_bytes < 0:
                raise ValueError("fault `after_bytes` must be >= 0")
        if "delta" in data:
            rule.delta = _as_int(data["delta"], "delta")
            if rule.delta <= 0:
                raise ValueError("fault `delta` must be > 0 (bytes announced beyond the real size)")
        if data.get("code") is not None:
            rule.code = _as_int(data["code"], "code")
        if action == "base_resp" and not rule.code:
            raise ValueError("fault action `base_resp` needs a non-zero `code` (e.g. 1002)")
        if data.get("creates_task") is not None:
            if not isinstance(data["creates_task"], bool):
                raise ValueError("fault `creates_task` must be a boolean")
            rule.creates_task = data["creates_task"]
        if "body" in data:
            rule.body = data["body"]
            json.dumps(rule.body)  # must be JSON (raises TypeError/ValueError otherwise)
        elif action == "body":
            raise ValueError("fault action `body` needs `body` (the JSON to answer)")
        if "hops" in data:
            rule.hops = _as_int(data["hops"], "hops")
            if not 1 <= rule.hops <= MAX_HOPS:
                raise ValueError(f"fault `hops` must be between 1 and {MAX_HOPS}")
        if "content_length" in data:
            if not isinstance(data["content_length"], bool):
                raise ValueError("fault `content_length` must be a boolean")
            rule.content_length = data["content_length"]
        return rule

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status(action: str, status: Any) -> int | None:
    """The HTTP status a rule answers, checked against what its action can mean."""
    if action == "redirect":
        status = 302 if status is None else status
        if status not in REDIRECT_STATUSES:
            raise ValueError(f"fault action `redirect` needs `status` in {REDIRECT_STATUSES}, got {status!r}")
        return int(status)
    if action == "body":
        status = 200 if status is None else status
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"fault action `body` needs `status` between 200 and 599, got {status!r}")
        return status
    if action == "status":
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"fault action `status` needs `status` between 400 and 599, got {status!r}")
        return status
    if status is not None:
        raise ValueError(f"fault action `{action}` takes no `status`")
    return None


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"fault `{name}` must be an integer, got {value!r}")
    return value


def parse_rules(data: Any) -> list[FaultRule]:
    """A rule or a list of rules, as a dict/list or as JSON text (the ``--fault`` flag's value)."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as err:
            raise ValueError(f"fault rule is not valid JSON: {err}") from None
    items = data if isinstance(data, list) else [data]
    try:
        return [FaultRule.from_dict(item) for item in items]
    except TypeError as err:  # a `body` that is not JSON
        raise ValueError(f"fault `body` must be JSON-serialisable: {err}") from None


class FaultList:
    """
    The active rules, in order. Thread-safe: the test thread adds rules while the server's event loop
    consumes them.
    """

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, endpoint: str, applies: Callable[[FaultRule], bool] | None = None) -> FaultRule | None:
        """
        Consume one use of the first rule for ``endpoint`` with count left (and for which
        ``applies(rule)`` is true, when given); exhausted rules go.
        """
        with self._lock:
            for rule in self._rules:
                if rule.endpoint != endpoint or rule.count == 0:
                    continue
                if applies is not None and not applies(rule):
                    continue
                if rule.count > 0:
                    rule.count -= 1
                rule.applied += 1
                self._rules = [r for r in self._rules if r.count != 0]
                return rule
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_dict() for rule in self._rules]
