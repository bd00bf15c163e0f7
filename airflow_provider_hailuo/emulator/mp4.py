"""
The video the emulator serves, and the MP4 signature check the provider's download code shares.

The emulator serves one real, playable H.264 MP4 (``sample.mp4``, 2 s, 320x180, generated once with
ffmpeg's ``testsrc``) so that a downloaded file can be opened by any player. To exercise large
downloads (100 MiB, 1 GiB, more) without storing them, the sample can be followed by an ISO-BMFF
``free`` box of zeros: players skip ``free`` boxes, so the padded file is still a valid MP4, and the
padding is generated on the fly in fixed-size chunks so memory stays flat whatever the size.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from importlib import resources

from airflow_provider_hailuo.api import looks_like_mp4

__all__ = ["iter_video", "looks_like_mp4", "sample_bytes", "video_size"]

SAMPLE_NAME = "sample.mp4"
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: A box header is 8 bytes (32-bit size + type); beyond this size it needs the 64-bit ``largesize``.
_MAX_32BIT_BOX = 0xFFFFFFFF
_SMALL_HEADER = 8
_LARGE_HEADER = 16


def sample_resource() -> resources.abc.Traversable:
    """The packaged sample, found through importlib.resources so it works from a wheel or a zip."""
    return resources.files(__package__).joinpath(SAMPLE_NAME)


@functools.cache
def sample_bytes() -> bytes:
    """The sample MP4's bytes (a few KB, read once per process)."""
    return sample_resource().read_bytes()


def video_size(total_bytes: int | None = None) -> int:
    """
    The exact size :func:`iter_video` produces for ``total_bytes``.

    ``None``, ``0`` or any value up to the sample's own size means "the bare sample". A padding of 1
    to 7 bytes cannot hold a box header, so such sizes are refused rather than silently changed.
    """
    sample_len = len(sample_bytes())
    if not total_bytes or total_bytes <= sample_len:
        return sample_len
    if total_bytes - sample_len < _SMALL_HEADER:
        raise ValueError(
            f"video_bytes={total_bytes} leaves {total_bytes - sample_len} bytes of padding after the "
            f"{sample_len}-byte sample; a free box needs at least {_SMALL_HEADER} (or use the bare sample)"
        )
    return total_bytes


def free_box_header(box_size: int) -> bytes:
    """The header of a ``free`` box of ``box_size`` bytes in total (header included)."""
    if box_size <= _MAX_32BIT_BOX:
        return struct.pack(">I4s", box_size, b"free")
    # size field 1 means "the real size follows as a 64-bit largesize".
    return struct.pack(">I4sQ", 1, b"free", box_size)


def iter_video(total_bytes: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """
    Yield the served video in chunks of at most ``chunk_size`` bytes: the sample, then padding.

    The padding is one ``free`` box whose zeros are yielded from a single reused buffer, so a 10 GiB
    video costs the same memory as a 10 KB one.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    size = video_size(total_bytes)
    sample = sample_bytes()
    for start in range(0, len(sample), chunk_size):
        yield sample[start : start + chunk_size]
    padding = size - len(sample)
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
