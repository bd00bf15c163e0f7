"""
What a landed video really is: does it decode, how long is it, how big, and does that match what was paid for.

A file that starts with ``ftyp`` may still not play, and a service may hand back 2 s where 6 s were
bought. Reading the container header alone would believe a truncated file, so the first and the
last frame are decoded; everything in between is skipped (a seek to the last second), which keeps
the check cheap on large files. The poster frame, half a second in, comes from the same open and
the same pass as the first frame (:func:`inspect`), and on the way to the frames that are looked at
only the frames they refer to are decoded: on a service-sized clip, decoding is what the check costs.

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
from collections.abc import Callable, Iterator, Mapping
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


#: For FFmpeg's look at the streams when a file opens: it would decode an H.264 clip's first frames
#: only to guess the decoder's delay, then throw them away; the check decodes what it needs itself.
#: Skipping them there halves the cost of a 1080P clip's first frame (its largest, a keyframe).
_OPEN_OPTIONS = {"skip_frame": "all"}


def _open(source: Source) -> InputContainer:
    av = _av()
    try:
        if isinstance(source, str | os.PathLike):
            return av.open(os.fspath(source), "r", options=_OPEN_OPTIONS)
        source.seek(0)
        return av.open(source, "r", options=_OPEN_OPTIONS)
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


def _time_s(pts: int | None, stream: VideoStream) -> float:
    if pts is None or not stream.time_base:
        return 0.0
    start = stream.start_time or 0
    return float((pts - start) * stream.time_base)


def _later(chosen: VideoFrame | None, frame: VideoFrame) -> VideoFrame:
    return frame if chosen is None or (frame.pts or 0) >= (chosen.pts or 0) else chosen


def _seek_s(container: InputContainer, stream: VideoStream, seconds: float) -> None:
    """Seek to the keyframe at or before ``seconds`` (stream time); decoding resumes from there."""
    if not stream.time_base:
        return
    offset = int(seconds / stream.time_base) + (stream.start_time or 0)
    container.seek(max(offset, 0), stream=stream, backward=True, any_frame=False)


def _decode(
    container: InputContainer, stream: VideoStream, wanted: Callable[[int | None], bool]
) -> Iterator[VideoFrame]:
    """
    Decode ``stream`` from where the container stands, skipping each frame that no other frame
    refers to unless ``wanted(pts)`` says it may be one that is looked at.

    A third to a half of an H.264 clip's frames are B-frames that nothing refers to (48 % of the
    realistic 1080P clip's): between the first frame and the poster, and within the last GOP, only
    the frames looked at and their references need decoding. The skip is decided per packet, before
    it is decoded (``skip_frame``: the decoder drops a frame it finds unreferenced); every referenced
    frame is decoded in full, so a frame that is looked at comes out exactly as a full decode makes it.
    """
    context = stream.codec_context
    for packet in container.demux(stream):
        context.skip_frame = "DEFAULT" if wanted(packet.pts) else "NONREF"
        yield from packet.decode()


def _may_be_shown_last() -> Callable[[int | None], bool]:
    """
    Which packets of the end's pass to decode even if nothing refers to them: in decode order, each
    one shown after every packet before it, since it may be the last frame shown. A B-frame comes
    after the later frame it leans on, so it is skipped unless a frame refers to it; the last frame
    shown, whatever its kind, is always decoded.
    """
    top: int | None = None

    def wanted(pts: int | None) -> bool:
        nonlocal top
        if pts is None:
            return True
        if top is None or pts > top:
            top = pts
            return True
        return False

    return wanted


@dataclass
class _Scan:
    """What one pass over a file found: its facts (when its end was read) and the poster's frame."""

    facts: VideoFacts | None
    poster: VideoFrame | None


def _scan(source: Source, *, poster_at: float | None, check_end: bool) -> _Scan:
    """
    One open and one pass: the first frame, the poster frame (``poster_at`` seconds in), and, with
    ``check_end``, the last frame after a seek to the last second.

    The poster lies in the first GOP, which the first frame's decode has begun anyway: taking it in
    the same pass spares a second open, a second decode of that GOP's start, and the unreferenced
    frames on the way.
    """
    errors = _ffmpeg_errors()
    name = _describe(source)
    with _open(source) as container:
        stream = _video_stream(container, source)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        frame_s = 1.0 / fps if fps else 0.0
        declared = _declared_duration_s(container, stream)
        # A poster asked for at or past the last frame is the last frame, which the end's pass decodes.
        poster_is_last = (
            poster_at is not None
            and declared is not None
            and declared > 0
            and poster_at >= declared - frame_s
        )
        head_poster_at = None if poster_is_last else poster_at

        started = False

        def head_wants(pts: int | None) -> bool:
            nonlocal started
            if not started:  # the first frame
                started = True
                return True
            return head_poster_at is not None and (pts is None or _time_s(pts, stream) >= head_poster_at)

        first: VideoFrame | None = None
        poster: VideoFrame | None = None
        last: VideoFrame | None = None
        frames = 0
        exhausted = True
        try:
            for frame in _decode(container, stream, head_wants):
                frames += 1
                if first is None:
                    first = frame
                last = _later(last, frame)
                if head_poster_at is None or _time_s(frame.pts, stream) >= head_poster_at:
                    poster = frame if head_poster_at is not None else None
                    exhausted = False
                    break
        except errors as err:
            if first is None:
                raise HailuoVideoCheckError(
                    f"Video check: the first frame of {name} does not decode ({err})"
                ) from err
            raise HailuoVideoCheckError(f"Video check: no poster frame decodes from {name} ({err})") from err
        if first is None:
            raise HailuoVideoCheckError(
                f"Video check: the first frame of {name} does not decode (no frame found)"
            )
        width, height = first.width, first.height
        first = None
        if head_poster_at is not None and poster is None:
            poster = last  # the video ends before the poster's time: its last frame
        if not (check_end or poster_is_last):
            return _Scan(facts=None, poster=poster)

        if not exhausted:
            last = None
            try:
                if declared:
                    _seek_s(container, stream, max(declared - SEEK_BACK_S, 0.0))
                for frame in _decode(container, stream, _may_be_shown_last()):
                    frames += 1
                    last = _later(last, frame)
            except errors as err:
                raise HailuoVideoCheckError(
                    f"Video check: the last frame of {name} does not decode ({err})"
                ) from err
            if last is None:
                raise HailuoVideoCheckError(
                    f"Video check: the last frame of {name} does not decode (no frame near the end)"
                )
        assert last is not None  # the first frame came, so some frame is the last
        if poster_is_last:
            poster = last
        frames_end_s = _time_s(last.pts, stream) + frame_s
        if check_end and declared and frames_end_s < declared - LAST_FRAME_SLACK_S:
            raise HailuoVideoCheckError(
                f"Video check: the last frame of {name} does not decode: frames stop at {frames_end_s:.2f} s "
                f"of the {declared:.2f} s its header announces (the file is cut short or damaged)"
            )
        facts = VideoFacts(
            duration_s=declared if declared else frames_end_s,
            width=width,
            height=height,
            codec=stream.codec_context.name,
            fps=fps,
            frames_decoded=frames,
        )
        return _Scan(facts=facts if check_end else None, poster=poster)


def _jpeg(frame: VideoFrame, quality: int) -> bytes:
    out = io.BytesIO()
    frame.to_image().convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def probe(source: Source) -> VideoFacts:
    """
    Decode the first and the last frame of ``source`` (a path or a seekable binary file object).

    Raises :class:`HailuoVideoCheckError` when the file does not open, has no video stream, or its
    first or last frame does not decode; a cut-short file fails here even when its header still
    announces the full duration, because its frames stop early.
    """
    facts = _scan(source, poster_at=None, check_end=True).facts
    assert facts is not None
    return facts


def poster_jpeg(source: Source, *, at_s: float = POSTER_AT_S, quality: int = 85) -> bytes:
    """
    A JPEG of the frame at ``at_s`` seconds (or the last one, in a shorter video), at the video's size.

    Taken from the first second by default: it exists in every video, and a frame just past the
    start skips the black a generated clip may fade in from. The end of the file is not checked.
    """
    poster = _scan(source, poster_at=max(at_s, 0.0), check_end=False).poster
    if poster is None:
        raise HailuoVideoCheckError(f"Video check: no poster frame decodes from {_describe(source)}")
    return _jpeg(poster, quality)


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


@dataclass(frozen=True)
class Inspection:
    """What the landing learns from its local copy before the commit: the verdict and the poster."""

    report: CheckReport | None
    poster: bytes | None


def inspect(
    source: Source,
    mode: str,
    expected: Expected,
    *,
    poster: bool = True,
    logger: logging.Logger | None = None,
    poster_quality: int = 85,
) -> Inspection:
    """
    Check ``source`` the way ``video_checks=mode`` asks and make its poster, from one open and one
    decode pass (the poster frame lies in the first GOP, which the check decodes anyway).

    ``report`` is None when nothing was checked (``"off"``, or PyAV missing in ``"warn"``), as in
    :func:`verify`, whose failures this raises alike; a ``"strict"`` mismatch raises before any JPEG
    is encoded. With ``"off"`` the end of the file is not read, and a poster that does not decode is
    logged and left out rather than failing a video nobody asked to check.
    """
    logger = logger or log
    mode = check_mode(mode)
    poster = poster and media_available()
    if mode == "off":
        if not poster:
            return Inspection(report=None, poster=None)
        try:
            return Inspection(report=None, poster=poster_jpeg(source, quality=poster_quality))
        except HailuoVideoCheckError:
            logger.warning("No poster frame decodes (video_checks='off'); no poster is made")
            return Inspection(report=None, poster=None)
    if not media_available():
        _without_pyav(mode, logger)
        return Inspection(report=None, poster=None)
    scan = _scan(source, poster_at=POSTER_AT_S if poster else None, check_end=True)
    assert scan.facts is not None
    report = evaluate(mode, scan.facts, expected, logger=logger)
    jpeg = _jpeg(scan.poster, poster_quality) if scan.poster is not None else None
    return Inspection(report=report, poster=jpeg)


def _without_pyav(mode: Mode, logger: logging.Logger) -> None:
    if mode == "strict":
        raise HailuoVideoCheckError(
            "video_checks='strict' needs PyAV: pip install 'airflow-provider-hailuo[media]'"
        )
    logger.warning(
        "PyAV is not installed: the video is checked for its length and MP4 signature only "
        "(pip install 'airflow-provider-hailuo[media]' to decode and compare it)"
    )


def verify(
    source: Source, mode: str, expected: Expected, *, logger: logging.Logger | None = None
) -> CheckReport | None:
    """
    Probe and evaluate ``source`` the way ``video_checks=mode`` asks; None when nothing was checked.

    An undecodable file raises in ``"warn"`` and ``"strict"`` alike. Without PyAV, ``"warn"``
    logs why it fell back to the length and signature checks and returns None, while ``"strict"``
    raises: it was asked to guarantee what it cannot check.
    """
    return inspect(source, mode, expected, poster=False, logger=logger).report
