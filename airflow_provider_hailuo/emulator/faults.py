"""
Fault rules: scripted misbehaviour, so clients can be tested against what the real service does badly.

A rule names an endpoint (``submit``, ``task_result`` or ``download``), an action, and how many
requests it applies to (``count``, default 1; ``-1`` = forever). A request consumes the first rule
for its endpoint that has count left. A rule is consumed only by a request that would otherwise have
been answered normally (authenticated, valid body, known task, good link signature): a 401 or 400
never eats a fault meant for the next real call.

Actions:

``status`` (any endpoint)
    Answer ``status`` (400-599) in the API's error shape (``reason``/``message`` overridable), with a
    ``Retry-After: <retry_after>`` header when given. A faulted submit creates NO task.
``delay`` (any endpoint)
    Sleep ``seconds`` (REAL seconds, not scaled by ``time_scale``: it exists to beat a client's real
    timeout) and then answer normally. A delayed submit creates its task BEFORE sleeping, so a client
    that times out has really bought a video: the double-billing hazard a blind retry would cause.
``fail_generation`` (submit)
    The task created by this submit ends ``TASK_STATUS_FAILED`` with ``reason`` (default below).
``expire`` (download)
    403 AccessDenied as if the signed link had expired (clients must renew it by reading the task).
``cut`` (download)
    Correct headers (full Content-Length), then the connection closes after ``after_bytes`` bytes
    (default: half the video). The client sees a body shorter than announced.
``wrong_length`` (download)
    Announces ``Content-Length`` = real size + ``delta`` (default 1000, must be > 0), sends the WHOLE
    real video, then closes. Unlike ``cut`` every byte of a complete, playable MP4 arrives, so a
    signature check passes: only comparing the bytes received with Content-Length catches it. (A
    negative delta is not offered: HTTP framing would make the client stop early on a body that then
    looks complete, which no client can detect.)
``not_mp4`` (download)
    200 with ``Content-Type: video/mp4`` but an HTML body, like a proxy or captive portal page.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

ENDPOINTS = ("submit", "task_result", "download")
ACTIONS_BY_ENDPOINT: dict[str, tuple[str, ...]] = {
    "submit": ("status", "delay", "fail_generation"),
    "task_result": ("status", "delay"),
    "download": ("status", "delay", "expire", "cut", "wrong_length", "not_mp4"),
}
DEFAULT_FAILURE_REASON = "content moderation rejected the prompt"


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
        if action == "status":
            status = data.get("status")
            if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
                raise ValueError(f"fault action `status` needs `status` between 400 and 599, got {status!r}")
            rule.status = status
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
        return rule

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    return [FaultRule.from_dict(item) for item in items]


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

    def take(self, endpoint: str) -> FaultRule | None:
        """Consume one use of the first rule for ``endpoint`` with count left; exhausted rules go."""
        with self._lock:
            for rule in self._rules:
                if rule.endpoint != endpoint or rule.count == 0:
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
