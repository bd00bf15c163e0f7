"""
Videos shaped like the service's own output, for measuring what a landing really costs.

The packaged samples (``mp4.py``) are a few KB at 2 fps: they prove a check is made, but decoding
them costs next to nothing, so a benchmark or a memory figure taken on them says little about a
real 6 MB 1080P clip. These are generated instead, because a set of them is too large for git: an
H.264 MP4 of the requested resolution class (the sizes of :data:`~.mp4.FRAME_SIZES`), 24 fps, a
keyframe every 48 frames, at about the service's bitrate. The picture moves (a drifting gradient
under temporal noise) so that the encoder spends its bitrate the way it does on a generated clip,
and a decoder has as much to do.

Generated with PyAV (the ``[media]`` extra): FFmpeg's own ``gradients`` and ``noise`` filters make
the frames and libx264 encodes them, so nothing beyond PyAV is needed. Each file is made once and
kept in a cache folder (``HAILUO_EMULATOR_VIDEO_CACHE``, else ``<tmp>/hailuo-emulator-videos``),
named after every parameter that shapes it, so a changed parameter never serves an old file.

From a shell: ``python -m airflow_provider_hailuo.emulator.realistic --resolution 1080P --duration 6``
prints the path of the (cached) file.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from airflow_provider_hailuo.emulator.mp4 import DEFAULT_RESOLUTION, FRAME_SIZES, Sample, sample_for

__all__ = [
    "BITRATES",
    "FPS",
    "GOP",
    "cache_dir",
    "generate",
    "prefetch",
    "realistic_available",
    "realistic_path",
    "realistic_sample",
]

FPS = 24
#: Frames from one keyframe to the next (2 s at 24 fps), as in the service's files.
GOP = 48
#: Bits per second by class. 1080P: a 6 s 1080P clip of the service is about 6.1 MB (1 MB/s). The
#: other classes are scaled by their pixel count from that one measured file (an assumption).
BITRATES: dict[str, int] = {
    res: round(8_000_000 * w * h / (1920 * 1080)) for res, (w, h) in FRAME_SIZES.items()
}
#: Part of every file name: bump it when the generator's output changes for the same parameters.
GENERATOR_VERSION = 1
CACHE_ENV = "HAILUO_EMULATOR_VIDEO_CACHE"
#: libx264's ``veryfast`` keeps CABAC and B-frames (what a decoder meets in a service's file) and
#: encodes a 10 s 1080P clip in seconds rather than minutes.
PRESET = "veryfast"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
#: One clip is encoded at a time: libx264 already uses every core, and a burst of submits must not
#: start one encoder per task.
_encoding = threading.Lock()


def realistic_available() -> bool:
    """Whether PyAV imports: the generator needs it (serving an already cached file would not)."""
    try:
        importlib.import_module("av")
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    """Where generated files are kept: ``$HAILUO_EMULATOR_VIDEO_CACHE``, else a folder in the temp dir."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "hailuo-emulator-videos"


def file_name(width: int, height: int, duration: float, fps: int, gop: int, bitrate: int) -> str:
    shape = f"{width}x{height}-{duration:g}s-{fps}fps-g{gop}-{bitrate // 1000}k"
    return f"realistic-v{GENERATOR_VERSION}-{shape}.mp4"


def generate(
    path: Path,
    *,
    width: int,
    height: int,
    duration: float,
    fps: int = FPS,
    gop: int = GOP,
    bitrate: int,
    seed: int = 7,
) -> Path:
    """
    Encode the clip into ``path`` (written aside and renamed, so a reader never sees half a file).

    The keyframe interval is fixed (no scene-cut keyframes) so a seek lands where it would in the
    service's file; the rate is capped near the target so the size follows the bitrate.
    """
    av = importlib.import_module("av")
    frames = round(duration * fps)
    source = (
        f"gradients=s={width}x{height}:r={fps}:d={(frames + 1) / fps}:speed=0.03:seed={seed},"
        "noise=alls=8:allf=t,format=yuv420p"
    )
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    path.parent.mkdir(parents=True, exist_ok=True)
    time_base = Fraction(1, fps)
    try:
        with (
            av.open(source, format="lavfi") as frames_in,
            av.open(
                str(aside), "w", format="mp4", options={"movflags": "+faststart", "fflags": "+bitexact"}
            ) as out,
        ):
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.bit_rate = bitrate
            stream.codec_context.gop_size = gop
            stream.codec_context.time_base = time_base
            stream.codec_context.options = {
                "preset": PRESET,
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
                "maxrate": str(bitrate * 3 // 2),
                "bufsize": str(bitrate * 2),
                "flags": "+bitexact",
            }
            for index, frame in enumerate(frames_in.decode(video=0)):
                if index >= frames:
                    break
                frame.pts, frame.time_base = index, time_base
                # A decoded frame says "I": left so, every frame would become a keyframe.
                frame.pict_type = av.video.frame.PictureType.NONE
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        os.replace(aside, path)
    finally:
        aside.unlink(missing_ok=True)
    return path


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def realistic_path(
    resolution: str = DEFAULT_RESOLUTION,
    duration: float = 6,
    *,
    fps: int = FPS,
    gop: int = GOP,
    bitrate: int | None = None,
    folder: Path | None = None,
) -> Path:
    """The cached clip for these parameters, generated on first use (once per process and key)."""
    if resolution not in FRAME_SIZES:
        raise ValueError(f"no frame size for resolution {resolution!r} (have {', '.join(FRAME_SIZES)})")
    if duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration!r}")
    width, height = FRAME_SIZES[resolution]
    rate = BITRATES[resolution] if bitrate is None else bitrate
    path = (folder or cache_dir()) / file_name(width, height, duration, fps, gop, rate)
    with _lock(str(path)):
        if not path.exists():
            with _encoding:
                generate(path, width=width, height=height, duration=duration, fps=fps, gop=gop, bitrate=rate)
    return path


@functools.lru_cache(maxsize=8)
def _cached_sample(resolution: str, duration: int, folder: str) -> Sample:
    path = realistic_path(resolution, duration, folder=Path(folder))
    width, height = FRAME_SIZES[resolution]
    return Sample(resolution, duration, width, height, path.read_bytes())


def realistic_sample(resolution: str, duration: int) -> Sample:
    """What the emulator serves with ``realistic_videos``: the clip's bytes, kept in memory once read."""
    return _cached_sample(resolution, duration, str(cache_dir()))


def prefetch(resolution: str | None, duration: int | None) -> threading.Thread:
    """
    Make the clip a request will download, in the background (a daemon thread: the emulator's exit
    does not wait for an encoder). A download that comes first waits for the same file.
    """

    def make() -> None:
        try:
            sample_for(resolution, duration, realistic_sample)
        except Exception:  # the download will try again and answer with the error
            logging.getLogger("airflow_provider_hailuo.emulator").exception("realistic video not made")

    thread = threading.Thread(target=make, name="hailuo-emulator-realistic-video", daemon=True)
    thread.start()
    return thread


def describe(path: Path) -> dict[str, Any]:
    """What PyAV reads from a file: size, rate, duration, keyframe positions, bytes."""
    av = importlib.import_module("av")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keyframes = [i for i, p in enumerate(q for q in container.demux(stream) if q.size) if p.is_keyframe]
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        return {
            "path": str(path),
            "bytes": path.stat().st_size,
            "codec": stream.codec_context.name,
            "width": stream.width,
            "height": stream.height,
            "fps": float(stream.average_rate) if stream.average_rate else None,
            "duration_s": duration,
            "frames": stream.frames,
            "keyframes": keyframes,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_hailuo.emulator.realistic",
        description="Generate (or find in the cache) a service-like H.264 clip and print its path.",
    )
    parser.add_argument("--resolution", choices=list(FRAME_SIZES), default=DEFAULT_RESOLUTION)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds (default 6)")
    parser.add_argument("--bitrate", type=int, default=None, help="bits per second (default: by class)")
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"cache folder (default ${CACHE_ENV} or tmp)"
    )
    parser.add_argument("--describe", action="store_true", help="also print what PyAV reads from it")
    args = parser.parse_args(argv)
    duration: float = int(args.duration) if float(args.duration).is_integer() else args.duration
    path = realistic_path(args.resolution, duration, bitrate=args.bitrate, folder=args.cache)
    print(path)
    if args.describe:
        facts = describe(path)
        facts["keyframes"] = ",".join(map(str, facts["keyframes"]))
        for key, value in facts.items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
