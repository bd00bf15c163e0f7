"""
The videos the emulator serves: one small real H.264 sample per requested duration and resolution.

A client that checks what landed (duration, resolution, "does it decode") needs the stand-in to
serve what was asked for, so the samples under ``samples/`` cover every duration (6 s, 10 s) and
resolution class (512P, 768P, 1080P) the service sells, plus 2 s clips that exist only to be the
*wrong* duration. They are made by ``scripts/make_samples.py`` (PyAV, 2 fps, near-static frames)
and are a few KB each; serving them needs no PyAV.

Frame sizes (one mapping, used by the script and by MiniMax's ``video_width``/``video_height``):
16:9 whatever the mode, because the emulator never fetches a first frame to learn its aspect ratio.
768P is 1366x768, the size MiniMax reports for 768P text-to-video (docs/vendors.md §5).

With ``realistic_videos`` the emulator serves clips shaped like the service's own instead (24 fps,
a keyframe every 2 s, about the service's bitrate; ``realistic.py``): generated with PyAV on first
use and cached, because they are megabytes each.

To exercise large downloads (100 MiB, 1 GiB, more) without storing them, a sample can be followed by
an ISO-BMFF ``free`` box of zeros: players skip ``free`` boxes, so the padded file is still a valid
MP4, and the padding is generated on the fly in fixed-size chunks so memory stays flat.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "DURATIONS",
    "FRAME_SIZES",
    "Sample",
    "iter_video",
    "looks_like_mp4",
    "sample_bytes",
    "sample_for",
    "undecodable_bytes",
    "video_size",
]

#: Width x height of each resolution class (16:9, even sizes for yuv420p).
FRAME_SIZES: dict[str, tuple[int, int]] = {"512P": (910, 512), "768P": (1366, 768), "1080P": (1920, 1080)}
#: The durations sold (seconds); every class has both, so a request never lacks its sample.
DURATIONS = (6, 10)
#: The duration of the clips served by the ``wrong_duration`` fault.
WRONG_DURATION = 2
DEFAULT_RESOLUTION = "768P"
DEFAULT_DURATION = 6
#: The class served by the ``wrong_resolution`` fault, for each requested class.
WRONG_RESOLUTION = {"512P": "768P", "768P": "512P", "1080P": "768P"}
FPS = 2
SAMPLES_DIR = "samples"
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: A box header is 8 bytes (32-bit size + type); beyond this size it needs the 64-bit ``largesize``.
_MAX_32BIT_BOX = 0xFFFFFFFF
_SMALL_HEADER = 8


def looks_like_mp4(first_bytes: bytes) -> bool:
    """
    Whether a body starts like an MP4: an ISO-BMFF file opens with an ``ftyp`` box (bytes 4..8).

    The emulator's own copy of the check (it never imports the product's wire code).
    """
    return len(first_bytes) >= 8 and bytes(first_bytes[4:8]) == b"ftyp"


def sample_name(resolution: str, duration: int) -> str:
    """The file name of a sample, e.g. ``768P-6s.mp4``."""
    return f"{resolution}-{duration}s.mp4"


def all_sample_keys() -> list[tuple[str, int]]:
    """Every ``(resolution, duration)`` the package ships, wrong-duration clips included."""
    return [(res, dur) for res in FRAME_SIZES for dur in (*DURATIONS, WRONG_DURATION)]


@dataclass(frozen=True)
class Sample:
    """A packaged video and what it really is (what a truthful service would report)."""

    resolution: str
    duration: int
    width: int
    height: int
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@functools.cache
def load_sample(resolution: str, duration: int) -> Sample:
    """Read a packaged sample once per process (importlib.resources: works from a wheel or a zip)."""
    if resolution not in FRAME_SIZES:
        raise ValueError(f"no sample for resolution {resolution!r} (have {', '.join(FRAME_SIZES)})")
    path = resources.files(__package__).joinpath(SAMPLES_DIR, sample_name(resolution, duration))
    width, height = FRAME_SIZES[resolution]
    return Sample(resolution, duration, width, height, path.read_bytes())


#: How a ``(resolution, duration)`` becomes a video: the packaged samples, or realistic clips.
Loader = Callable[[str, int], Sample]


def sample_for(resolution: str | None, duration: int | None, load: Loader = load_sample) -> Sample:
    """The sample for a request; values the emulator has no sample for fall back to 768P / 6 s."""
    res = resolution if resolution in FRAME_SIZES else DEFAULT_RESOLUTION
    dur = duration if duration in DURATIONS else DEFAULT_DURATION
    return load(res, dur)


def wrong_duration_sample(resolution: str | None, load: Loader = load_sample) -> Sample:
    """A sample of the requested class that lasts :data:`WRONG_DURATION` seconds."""
    return load(resolution if resolution in FRAME_SIZES else DEFAULT_RESOLUTION, WRONG_DURATION)


def wrong_resolution_sample(
    resolution: str | None, duration: int | None, load: Loader = load_sample
) -> Sample:
    """A sample of the requested duration in another resolution class."""
    res = resolution if resolution in FRAME_SIZES else DEFAULT_RESOLUTION
    return sample_for(WRONG_RESOLUTION[res], duration, load)


def sample_bytes(resolution: str = DEFAULT_RESOLUTION, duration: int = DEFAULT_DURATION) -> bytes:
    """A sample's bytes; without arguments, the one an API-default request (768P, 6 s) gets."""
    return load_sample(resolution, duration).data


@functools.cache
def undecodable_bytes() -> bytes:
    """
    A file that starts like an MP4 but does not decode: the default sample's ``ftyp`` box, then an
    ``mdat`` of deterministic noise, and no ``moov`` (so no track, no codec, nothing to play). A
    check of the first bytes passes; opening it as a video fails.
    """
    sample = sample_bytes()
    ftyp_size = struct.unpack(">I", sample[:4])[0]
    noise = bytearray()
    block = b"hailuo-emulator-undecodable"
    while len(noise) < len(sample) - ftyp_size - _SMALL_HEADER:
        block = hashlib.sha256(block).digest()
        noise += block
    noise = noise[: max(0, len(sample) - ftyp_size - _SMALL_HEADER)]
    return sample[:ftyp_size] + struct.pack(">I4s", len(noise) + _SMALL_HEADER, b"mdat") + bytes(noise)


def video_size(total_bytes: int | None = None, sample_len: int | None = None) -> int:
    """
    The exact size :func:`iter_video` produces for ``total_bytes`` after a sample of ``sample_len``
    bytes (default: the default sample).

    ``None``, ``0`` or any value up to the sample's own size means "the bare sample". A padding of 1
    to 7 bytes cannot hold a box header, so such sizes are refused rather than silently changed.
    """
    if sample_len is None:
        sample_len = len(sample_bytes())
    if not total_bytes or total_bytes <= sample_len:
        return sample_len
    if total_bytes - sample_len < _SMALL_HEADER:
        raise ValueError(
            f"video_bytes={total_bytes} leaves {total_bytes - sample_len} bytes of padding after the "
            f"{sample_len}-byte sample; a free box needs at least {_SMALL_HEADER} (or use the bare sample)"
        )
    return total_bytes


def check_padding(total_bytes: int | None) -> None:
    """Refuse a ``video_bytes`` that some packaged video could not be padded to."""
    for key in all_sample_keys():
        video_size(total_bytes, len(load_sample(*key).data))
    video_size(total_bytes, len(undecodable_bytes()))


def free_box_header(box_size: int) -> bytes:
    """The header of a ``free`` box of ``box_size`` bytes in total (header included)."""
    if box_size <= _MAX_32BIT_BOX:
        return struct.pack(">I4s", box_size, b"free")
    # size field 1 means "the real size follows as a 64-bit largesize".
    return struct.pack(">I4sQ", 1, b"free", box_size)


def iter_video(
    total_bytes: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE, video: bytes | None = None
) -> Iterator[bytes]:
    """
    Yield the served video in chunks of at most ``chunk_size`` bytes: ``video`` (default: the
    default sample), then padding up to ``total_bytes``.

    The padding is one ``free`` box whose zeros are yielded from a single reused buffer, so a 10 GiB
    video costs the same memory as a 10 KB one.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    data = sample_bytes() if video is None else video
    size = video_size(total_bytes, len(data))
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]
    padding = size - len(data)
    if padding <= 0:
        return
    header = free_box_header(padding)
    yield header
    remaining = padding - len(header)
    zeros = bytes(min(chunk_size, remaining))
    while remaining > 0:
        if remaining >= len(zeros):
            yield zeros
            remaining -= len(zeros)
        else:
            yield zeros[:remaining]
            remaining = 0
