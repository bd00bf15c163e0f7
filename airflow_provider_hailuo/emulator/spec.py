"""
What the emulator understood from a submit, and the checks every dialect shares.

Written from the vendors' contracts (docs/vendors.md), independently of the product's ``api``
module: a stand-in that validated with the client's own code could only ever agree with it. Each
dialect reads its own field names into a :class:`VideoSpec` (the vendor-neutral request) and answers
a :class:`WireError` in its own error shape (HTTP 400 on the v3 API, ``base_resp`` 2013 on
MiniMax's).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

PROMPT_MAX_CHARS = 2000
DURATIONS = (6, 10)
#: Input images: JPG/PNG/WebP under 20 MB (docs/vendors.md §5; Novita documents the same forms).
IMAGE_MAX_BYTES = 20 * 1024 * 1024
_DATA_URL = re.compile(r"^data:image/(jpeg|jpg|png|webp);base64,(.*)$", re.IGNORECASE | re.DOTALL)
_IMAGE_SIGNATURES = {"jpeg": (b"\xff\xd8\xff",), "png": (b"\x89PNG\r\n\x1a\n",), "webp": (b"RIFF",)}


class WireError(ValueError):
    """A body breaks a rule of the service: ``field`` and a human-readable ``rule``."""

    def __init__(self, field: str, rule: str, value: Any = None) -> None:
        self.field = field
        self.rule = rule
        shown = "" if value is None else f" (got {_short(value)})"
        super().__init__(f"`{field}` {rule}{shown}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class VideoSpec:
    """
    A submit as the emulator understood it: which video it will make, in vendor-neutral terms.

    ``model`` is the v3 endpoint name or MiniMax's ``model``. ``first_frame``/``last_frame`` are the
    frames the service *read* (under its own field names): a frame sent under a name the service
    ignores is simply absent here, and the task is a text-to-video.
    """

    model: str
    prompt: str
    duration: int
    resolution: str
    first_frame: str | None = None
    last_frame: str | None = None

    @property
    def mode(self) -> str:
        if self.first_frame is None:
            return "text-to-video"
        return "first-last-frame" if self.last_frame is not None else "image-to-video"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = self.mode
        return data


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise WireError("body", "must be a JSON object")
    return body


def check_prompt(body: dict[str, Any], field: str = "prompt", required: bool = True) -> str:
    """1 to 2000 characters, not blank; absent is allowed only where ``required`` is false."""
    value = body.get(field)
    if value is None:
        if required:
            raise WireError(field, "is required")
        return ""
    if not isinstance(value, str):
        raise WireError(field, "must be a string", value)
    if not 1 <= len(value) <= PROMPT_MAX_CHARS:
        raise WireError(field, f"must be 1 to {PROMPT_MAX_CHARS} characters long, got {len(value)}")
    if not value.strip():
        raise WireError(field, "must not be blank")
    return value


def check_duration(body: dict[str, Any], default: int = 6) -> int:
    value = body.get("duration", default)
    if type(value) is not int or value not in DURATIONS:
        raise WireError("duration", "must be 6 or 10 (seconds)", value)
    return value


def check_bool(body: dict[str, Any], field: str) -> None:
    if field in body and not isinstance(body[field], bool):
        raise WireError(field, "must be a boolean", body[field])


def check_frame(body: dict[str, Any], field: str, data_urls: bool, min_side: int = 0) -> str | None:
    """
    The frame under ``field``: an absolute http(s) URL, or, where the vendor takes one
    (``data_urls``), a ``data:image/{jpeg,png,webp};base64,`` URL whose bytes are that kind of image
    under 20 MB (and, with ``min_side``, whose short side is larger and whose aspect is within 2:5
    to 5:2: MiniMax's rules, checked where the emulator has the bytes, i.e. for data URLs).
    """
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise WireError(field, "must be a non-empty URL string", value)
    if value[:5].lower() == "data:":
        if not data_urls:
            raise WireError(field, "must be an http(s) URL (data: URLs are not accepted here)", value)
        _check_data_url(field, value, min_side)
        return value
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        accepted = "an http(s) URL or a data:image/...;base64, URL" if data_urls else "an http(s) URL"
        raise WireError(field, f"must be {accepted}", value)
    return value


def _check_data_url(field: str, value: str, min_side: int) -> None:
    match = _DATA_URL.match(value)
    if match is None:
        raise WireError(field, "must be data:image/(jpeg|png|webp);base64,<data>", value)
    kind = "jpeg" if match.group(1).lower() == "jpg" else match.group(1).lower()
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise WireError(field, "holds invalid base64", value) from None
    if len(data) >= IMAGE_MAX_BYTES:
        raise WireError(field, f"image must be under 20 MB, got {len(data)} bytes")
    if not data.startswith(_IMAGE_SIGNATURES[kind]) or (kind == "webp" and data[8:12] != b"WEBP"):
        raise WireError(field, f"bytes are not a {kind.upper()} image", value)
    if min_side:
        _check_image_size(field, data, min_side)


def _check_image_size(field: str, data: bytes, min_side: int) -> None:
    """Short side and aspect ratio, read by Pillow (a dependency of the provider) when installed."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is a dependency; without it only the signature counts
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError):
        raise WireError(field, "is not a readable image") from None
    if min(width, height) <= min_side:
        raise WireError(field, f"image short side must be more than {min_side} px, got {width}x{height}")
    if not 2 / 5 <= width / height <= 5 / 2:
        raise WireError(field, f"image aspect ratio must be between 2:5 and 5:2, got {width}x{height}")
