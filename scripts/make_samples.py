"""
Generate the emulator's sample videos: ``airflow_provider_hailuo/emulator/samples/<RES>-<N>s.mp4``.

Run ``.venv/bin/python scripts/make_samples.py`` (needs PyAV, the ``[media]`` extra) after changing
the frame sizes or durations in ``airflow_provider_hailuo/emulator/mp4.py``; the files are committed
so the emulator never needs PyAV to serve them.

Why they look the way they do: a client checks that a landed video decodes and has the requested
duration and resolution, so each sample is a real H.264 MP4 of exactly that duration and size. To
stay tiny (a few KB each), frames are 2 per second, a flat colour per resolution class, with a
progress bar and a binary frame counter (so successive frames differ and a player visibly advances)
and one key frame per file. ``moov`` is written first (``faststart``) like a CDN-served video, and
``bitexact`` keeps the bytes the same from one run to the next with the same PyAV/FFmpeg.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import av

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from airflow_provider_hailuo.emulator.mp4 import (  # noqa: E402
    FPS,
    FRAME_SIZES,
    SAMPLES_DIR,
    all_sample_keys,
    sample_name,
)

OUT = REPO / "airflow_provider_hailuo" / "emulator" / SAMPLES_DIR
#: (Y, U, V) of the background of each class, so a person can tell them apart at a glance.
COLOURS = {"512P": (80, 160, 100), "768P": (70, 110, 150), "1080P": (60, 150, 160)}
FOREGROUND_Y = 220


def frame_planes(width: int, height: int, resolution: str, index: int, count: int) -> list[bytes]:
    """The three yuv420p planes (without line padding) of frame ``index`` of ``count``."""
    y_bg, u_bg, v_bg = COLOURS[resolution]
    rows = [bytes([y_bg]) * width for _ in range(height)]
    # A progress bar along the top: (index + 1) / count of the width.
    bar_h, bar_w = max(8, height // 24), width * (index + 1) // count
    bar = bytes([FOREGROUND_Y]) * bar_w + bytes([y_bg]) * (width - bar_w)
    for row in range(bar_h):
        rows[height // 12 + row] = bar
    # A binary frame counter in the middle: 8 squares, lit for each set bit of the index.
    side = height // 10
    top, left = height // 2 - side // 2, width // 2 - 4 * side
    line = bytearray([y_bg]) * width
    for bit in range(8):
        lit = (index >> (7 - bit)) & 1
        start = left + bit * side
        line[start + 2 : start + side - 2] = bytes([FOREGROUND_Y if lit else y_bg + 30]) * (side - 4)
    for row in range(side - 4):
        rows[top + 2 + row] = bytes(line)
    luma = b"".join(rows)
    chroma_w, chroma_h = width // 2, height // 2
    return [luma, bytes([u_bg]) * (chroma_w * chroma_h), bytes([v_bg]) * (chroma_w * chroma_h)]


def fill(frame: av.VideoFrame, planes: list[bytes]) -> None:
    """Copy tight planes into the frame's (possibly padded) lines."""
    for plane, data in zip(frame.planes, planes, strict=True):
        stride, width = plane.line_size, plane.width
        if stride == width:
            plane.update(data)
            continue
        padded = bytearray(stride * plane.height)
        for row in range(plane.height):
            padded[row * stride : row * stride + width] = data[row * width : (row + 1) * width]
        plane.update(bytes(padded))


def make_sample(path: Path, resolution: str, duration: int) -> None:
    width, height = FRAME_SIZES[resolution]
    count = duration * FPS
    with av.open(
        str(path), "w", format="mp4", options={"movflags": "+faststart", "fflags": "+bitexact"}
    ) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.codec_context.gop_size = count
        stream.codec_context.options = {
            "crf": "45",
            "preset": "veryslow",
            "tune": "stillimage",
            "flags": "+bitexact",
        }
        for index in range(count):
            frame = av.VideoFrame(width, height, "yuv420p")
            fill(frame, frame_planes(width, height, resolution, index, count))
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def describe(path: Path) -> str:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        seconds = (container.duration or 0) / av.time_base
        return f"{video.codec_context.name} {video.width}x{video.height} {seconds:.2f} s {frames} frames"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for resolution, duration in all_sample_keys():
        path = args.out / sample_name(resolution, duration)
        make_sample(path, resolution, duration)
        size = path.stat().st_size
        total += size
        print(f"{path.name:16} {size:7,} bytes  {describe(path)}")
    print(f"total {total:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
