"""
What a landed video really is: does it decode, how long is it, how big, and does that match what was paid for.

A file that starts with ``ftyp`` may still not play, and a service may hand back 2 s where 6 s were
bought. Reading the container header alone would believe a truncated file, so the first and the
last frame are decoded; everything in between is skipped (a seek to the last second), which keeps
the check cheap on large files.

PyAV (``av``, the ``[media]`` extra, which bundles FFmpeg) is imported only when a check runs, so
the provider imports and works without it; :func:`media_available` tells the operator whether it
may check at all.
"""

from __future__ import annotations

import functools
import importlib
import io
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

from airflow_provider_hailuo.api import HailuoDownloadError, HailuoValidationError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

log = logging.getLogger(__name__)

Source = str | os.PathLike[str] | IO[bytes]
Mode = Literal["warn", "strict", "off"]
MODES: tuple[Mode, ...] = ("warn", "strict", "off")
Verdict = Literal["ok", "mismatch", "unchecked"]

#: A video this far off the requested duration is a mismatch (the service rounds to whole frames).
DURATION_TOLERANCE_S = 0.5
#: Encoders align sizes to 8 or 16 px blocks; a short side this close to the class still matches.
SHORT_SIDE_TOLERANCE_PX = 8
#: The last decoded frame must end this close to the declared duration, or the file is cut short.
LAST_FRAME_SLACK_S = 0.5
#: How far before the end the last-frame check seeks (it decodes from the keyframe before that).
SEEK_BACK_S = 1.0
#: Where the poster frame is taken: inside the first second, past a fade-in from black.
POSTER_AT_S = 0.5
_RESOLUTION_RE = re.compile(r"^\s*(\d{3,4})\s*[pP]\s*$")


class HailuoVideoCheckError(HailuoDownloadError):
    """A downloaded video does not decode, or (``video_checks="strict"``) is not what was requested."""

    def __init__(self, message: str, report: CheckReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@functools.cache
def media_available() -> bool:
    """Whether PyAV imports; cached, because the answer cannot change inside one process."""
    try:
        importlib.import_module("av")
    except ImportError:
        return False
    return True


def _av() -> Any:
    try:
        return importlib.import_module("av")
    except ImportError as err:
        raise ImportError("Video checks need PyAV: pip install 'airflow-provider-hailuo[media]'") from err


# --------------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoFacts:
    """What the file itself says, once its first and last frames decoded."""

    duration_s: float
    width: int
    height: int
    codec: str
    fps: float | None
    frames_decoded: int

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 3),
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "fps": None if self.fps is None else round(self.fps, 3),
            "frames_decoded": self.frames_decoded,
        }


def _describe(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "the downloaded video"


@functools.cache
def _ffmpeg_errors() -> tuple[type[BaseException], ...]:
    # What a damaged file raises from FFmpeg, or from PyAV reading a file object.
    return (_av().FFmpegError, OSError, EOFError, ValueError)


def _open(source: Source) -> InputContainer:
    av = _av()
    try:
        if isinstance(source, str | os.PathLike):
            return av.open(os.fspath(source), "r")
        source.seek(0)
        return av.open(source, "r")
    except _ffmpeg_errors() as err:
        raise HailuoVideoCheckError(
            f"Video check: {_describe(source)} does not open as a video container ({err})"
        ) from err


def _video_stream(container: InputContainer, source: Source) -> VideoStream:
    if not container.streams.video:
        raise HailuoVideoCheckError(f"Video check: {_describe(source)} has no video stream")
    return container.streams.video[0]


def _declared_duration_s(container: InputContainer, stream: VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / _av().time_base
    return None


def _frame_time_s(frame: VideoFrame, stream: VideoStream) -> float:
    if frame.pts is None or not stream.time_base:
        return 0.0
    start = stream.start_time or 0
    return float((frame.pts - start) * stream.time_base)


def _seek_s(container: InputContainer, stream: VideoStream, seconds: float) -> None:
    """Seek to the keyframe at or before ``seconds`` (stream time); decoding resumes from there."""
    if not stream.time_base:
        return
    offset = int(seconds / stream.time_base) + (stream.start_time or 0)
    container.seek(max(offset, 0), stream=stream, backward=True, any_frame=False)


def probe(source: Source) -> VideoFacts:
    """
    Decode the first and the last frame of ``source`` (a path or a seekable binary file object).

    Raises :class:`HailuoVideoCheckError` when the file does not open, has no video stream, or its
    first or last frame does not decode; a cut-short file fails here even when its header still
    announces the full duration, because its frames stop early.
    """
    errors = _ffmpeg_errors()
    with _open(source) as container:
        stream = _video_stream(container, source)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        declared = _declared_duration_s(container, stream)
        name = _describe(source)
        try:
            first = next(iter(container.decode(stream)), None)
        except errors as err:
            raise HailuoVideoCheckError(
                f"Video check: the first frame of {name} does not decode ({err})"
            ) from err
        if first is None:
            raise HailuoVideoCheckError(
                f"Video check: the first frame of {name} does not decode (no frame found)"
            )
        width, height = first.width, first.height
        frames = 1
        last: VideoFrame | None = None
        try:
            if declared:
                _seek_s(container, stream, max(declared - SEEK_BACK_S, 0.0))
            for frame in container.decode(stream):
                frames += 1
                if last is None or (frame.pts or 0) >= (last.pts or 0):
                    last = frame
        except errors as err:
            raise HailuoVideoCheckError(
                f"Video check: the last frame of {name} does not decode ({err})"
            ) from err
        if last is None:
            raise HailuoVideoCheckError(
                f"Video check: the last frame of {name} does not decode (no frame near the end)"
            )
        frames_end_s = _frame_time_s(last, stream) + (1.0 / fps if fps else 0.0)
        if declared and frames_end_s < declared - LAST_FRAME_SLACK_S:
            raise HailuoVideoCheckError(
                f"Video check: the last frame of {name} does not decode: frames stop at {frames_end_s:.2f} s "
                f"of the {declared:.2f} s its header announces (the file is cut short or damaged)"
            )
        return VideoFacts(
            duration_s=declared if declared else frames_end_s,
            width=width,
            height=height,
            codec=stream.codec_context.name,
            fps=fps,
            frames_decoded=frames,
        )


def poster_jpeg(source: Source, *, at_s: float = POSTER_AT_S, quality: int = 85) -> bytes:
    """
    A JPEG of the frame at ``at_s`` seconds (or the last one, in a shorter video), at the video's size.

    Taken from the first second by default: it exists in every video, and a frame just past the
    start skips the black a generated clip may fade in from.
    """
    errors = _ffmpeg_errors()
    with _open(source) as container:
        stream = _video_stream(container, source)
        chosen: VideoFrame | None = None
        try:
            _seek_s(container, stream, max(at_s, 0.0))
            for frame in container.decode(stream):
                chosen = frame
                if _frame_time_s(frame, stream) >= at_s:
                    break
        except errors as err:
            raise HailuoVideoCheckError(
                f"Video check: no poster frame decodes from {_describe(source)} ({err})"
            ) from err
        if chosen is None:
            raise HailuoVideoCheckError(f"Video check: no poster frame decodes from {_describe(source)}")
        image = chosen.to_image()
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# Expectations and the comparison
# --------------------------------------------------------------------------------------------------
def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Expected:
    """
    What was paid for: the requested duration and resolution class, and the size the service reported.

    Any part may be unknown (``None``); a check without its expectation is simply not made.
    """

    duration_s: float | None = None
    resolution: str | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def from_request(
        cls, request: Mapping[str, Any] | None, *, width: Any = None, height: Any = None
    ) -> Expected:
        """From a request body (as XCom carries it) and the ``video_width``/``video_height`` reported."""
        request = request or {}
        duration = _as_int(request.get("duration"))
        resolution = request.get("resolution")
        return cls(
            duration_s=float(duration) if duration else None,
            resolution=str(resolution) if resolution else None,
            width=_as_int(width) or None,
            height=_as_int(height) or None,
        )

    @property
    def short_side(self) -> int | None:
        match = _RESOLUTION_RE.match(self.resolution or "")
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Check:
    """One comparison that was made; ``ok`` False makes it a mismatch."""

    name: str
    expected: Any
    actual: Any
    ok: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "expected": self.expected, "actual": self.actual, "message": self.message}


@dataclass(frozen=True)
class CheckReport:
    facts: VideoFacts
    checks: tuple[Check, ...] = ()

    @property
    def mismatches(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def verdict(self) -> Verdict:
        if not self.checks:
            return "unchecked"
        return "mismatch" if self.mismatches else "ok"

    def summary(self) -> str:
        facts = self.facts
        text = f"{facts.duration_s:.2f} s, {facts.width}x{facts.height} {facts.codec}: {self.verdict}"
        if self.mismatches:
            text += " (" + "; ".join(check.message for check in self.mismatches) + ")"
        return text

    def as_dict(self) -> dict[str, Any]:
        """For the manifest, XCom and the Asset event: plain JSON, the same keys in every verdict."""
        facts = self.facts.as_dict()
        return {
            "duration_s": facts["duration_s"],
            "width": facts["width"],
            "height": facts["height"],
            "codec": facts["codec"],
            "fps": facts["fps"],
            "verdict": self.verdict,
            "mismatches": [check.as_dict() for check in self.mismatches],
            "checks": {check.name: "ok" if check.ok else "mismatch" for check in self.checks},
        }


def _duration_check(facts: VideoFacts, expected: Expected) -> Check | None:
    if expected.duration_s is None:
        return None
    off_by = abs(facts.duration_s - expected.duration_s)
    ok = off_by <= DURATION_TOLERANCE_S + 1e-9
    return Check(
        name="duration",
        expected=expected.duration_s,
        actual=round(facts.duration_s, 3),
        ok=ok,
        message=f"duration {facts.duration_s:.2f} s, requested {expected.duration_s:g} s "
        f"(±{DURATION_TOLERANCE_S:g} s)",
    )


def _resolution_check(facts: VideoFacts, expected: Expected) -> Check | None:
    actual = f"{facts.width}x{facts.height}"
    if expected.width and expected.height:
        wanted = f"{expected.width}x{expected.height}"
        return Check(
            name="resolution",
            expected=wanted,
            actual=actual,
            ok=(facts.width, facts.height) == (expected.width, expected.height),
            message=f"size {actual}, the service reported {wanted}",
        )
    short = expected.short_side
    if short is None:
        return None
    return Check(
        name="resolution",
        expected=expected.resolution,
        actual=actual,
        ok=abs(facts.short_side - short) <= SHORT_SIDE_TOLERANCE_PX,
        message=f"size {actual}, requested {expected.resolution} (short side {short}"
        f"±{SHORT_SIDE_TOLERANCE_PX} px)",
    )


def compare(facts: VideoFacts, expected: Expected) -> CheckReport:
    """Compare what decoded with what was paid for; checks without an expectation are left out."""
    checks = (_duration_check(facts, expected), _resolution_check(facts, expected))
    return CheckReport(facts=facts, checks=tuple(check for check in checks if check is not None))


# --------------------------------------------------------------------------------------------------
# The operator's `video_checks` mode
# --------------------------------------------------------------------------------------------------
def check_mode(value: Any) -> Mode:
    """Validate ``video_checks``; raises ``HailuoValidationError`` so a typo fails at parse time."""
    for mode in MODES:
        if value == mode:
            return mode
    raise HailuoValidationError("video_checks", "must be 'warn', 'strict' or 'off'", value)


def evaluate(
    mode: str, facts: VideoFacts, expected: Expected, *, logger: logging.Logger | None = None
) -> CheckReport:
    """
    Apply ``mode`` to the comparison: ``"warn"`` logs each mismatch, ``"strict"`` raises on one.

    ``"off"`` returns an unchecked report. The returned report is what the manifest records.
    """
    logger = logger or log
    if check_mode(mode) == "off":
        return CheckReport(facts=facts)
    report = compare(facts, expected)
    if report.mismatches:
        if mode == "strict":
            raise HailuoVideoCheckError(
                f"The video is not what was requested: {report.summary()}", report=report
            )
        for check in report.mismatches:
            logger.warning("Video check mismatch: %s", check.message)
    return report


def verify(
    source: Source, mode: str, expected: Expected, *, logger: logging.Logger | None = None
) -> CheckReport | None:
    """
    Probe and evaluate ``source`` the way ``video_checks=mode`` asks; None when nothing was checked.

    An undecodable file raises in ``"warn"`` and ``"strict"`` alike. Without PyAV, ``"warn"``
    logs why it fell back to the length and signature checks and returns None, while ``"strict"``
    raises: it was asked to guarantee what it cannot check.
    """
    logger = logger or log
    mode = check_mode(mode)
    if mode == "off":
        return None
    if not media_available():
        if mode == "strict":
            raise HailuoVideoCheckError(
                "video_checks='strict' needs PyAV: pip install 'airflow-provider-hailuo[media]'"
            )
        logger.warning(
            "PyAV is not installed: the video is checked for its length and MP4 signature only "
            "(pip install 'airflow-provider-hailuo[media]' to decode and compare it)"
        )
        return None
    return evaluate(mode, probe(source), expected, logger=logger)
