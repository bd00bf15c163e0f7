"""
Benchmark 5, the landing's own cost: the CPU a download spends, before its commit, checking the
video (``video_checks="warn"``) and making its poster, on a video like the service's.

The emulator's samples are a few KB at 2 fps and cost nothing to decode; this runs on a realistic
clip instead (``airflow_provider_hailuo.emulator.realistic``: H.264, 24 fps, GOP 48, ~1 MB/s at
1080P; generated with PyAV once and cached), by default a 6 s 1080P one (~6 MB).

Two implementations side by side in one process, runs alternating, after one untimed warm-up each
(PyAV and PIL imported, as in a task that already checked a video):

- ``before``: ``media.py`` as of ``--before`` (a git revision; default the last commit with the
  two-pass code): ``verify()`` (open, first frame, seek, last GOP) then ``poster_jpeg()`` (open
  again, decode to 0.5 s, JPEG), as the download operator called them.
- ``after``: the work tree's ``media.inspect(..., poster=True)``: one open, one pass.

CPU = ``time.process_time()`` (user + system of every thread of the process) around each call;
wall time beside it. Each run's verdict, facts and poster bytes are compared between the two; a
difference fails the benchmark. Medians of ``--repeat`` runs.

``--breakdown`` adds two partial ``after`` variants to the same alternation, to tell the three
changes apart: ``one pass`` (every frame decoded on the way, FFmpeg's stream probing left as it
was), and ``+ no decode at open`` (probing skips decoding; every frame still decoded).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from _common import REPO, fmt_num, median

from airflow_provider_hailuo import media
from airflow_provider_hailuo.emulator import realistic

#: The last commit whose download checked and made the poster in two passes.
BEFORE_REVISION = "cc62f25"
VIDEOS = ("1080P:6",)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def media_at(revision: str) -> ModuleType:
    """``airflow_provider_hailuo/media.py`` as of ``revision``, imported under another name."""
    source = git("show", f"{revision}:airflow_provider_hailuo/media.py")
    path = Path(tempfile.mkdtemp(prefix="hailuo-bench-landing-")) / "media_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("media_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["media_before"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def timed(call: Any) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = call()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def run_before(old: ModuleType, path: Path, expected: Any) -> dict[str, Any]:
    report, check_cpu, check_wall = timed(lambda: old.verify(str(path), "warn", old.Expected(**expected)))
    poster, poster_cpu, poster_wall = timed(lambda: old.poster_jpeg(str(path)))
    return {
        "check_cpu": check_cpu,
        "poster_cpu": poster_cpu,
        "cpu": check_cpu + poster_cpu,
        "wall": check_wall + poster_wall,
        "frames": report.facts.frames_decoded,
        "facts": {k: v for k, v in report.as_dict().items()},
        "poster": poster,
    }


#: The variants of ``--breakdown``: (no decode at open, unreferenced frames skipped).
PARTIAL = {"one pass": (False, False), "+ no decode at open": (True, False), "after": (True, True)}


@contextlib.contextmanager
def partial(variant: str) -> Iterator[None]:
    """``media`` with some of its savings turned off, for ``--breakdown``."""
    quiet_open, skip = PARTIAL[variant]
    saved = (media._OPEN_OPTIONS, media._decode)
    decode = media._decode
    if not quiet_open:
        media._OPEN_OPTIONS = {}
    if not skip:
        media._decode = lambda container, stream, wanted: decode(container, stream, lambda pts: True)
    try:
        yield
    finally:
        media._OPEN_OPTIONS, media._decode = saved


def run_after(path: Path, expected: Any, variant: str = "after") -> dict[str, Any]:
    with partial(variant):
        found, cpu, wall = timed(
            lambda: media.inspect(str(path), "warn", media.Expected(**expected), poster=True)
        )
    return {
        "cpu": cpu,
        "wall": wall,
        "frames": found.report.facts.frames_decoded,
        "facts": found.report.as_dict(),
        "poster": found.poster,
    }


def measure(video: str, repeat: int, old: ModuleType, breakdown: bool = False) -> dict[str, Any]:
    resolution, seconds = video.split(":")
    path = realistic.realistic_path(resolution, int(seconds))
    described = realistic.describe(path)
    expected = {"duration_s": float(seconds), "resolution": resolution}
    variants = ["before", *(PARTIAL if breakdown else ["after"])]
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    run_before(old, path, expected)  # warm-up: imports, first-call costs
    run_after(path, expected)
    for i in range(repeat):
        for variant in variants if i % 2 == 0 else variants[::-1]:
            if variant == "before":
                runs[variant].append(run_before(old, path, expected))
            else:
                runs[variant].append(run_after(path, expected, variant))
    before, after = runs["before"], runs["after"]
    for variant in variants[1:]:
        for b, a in zip(before, runs[variant], strict=True):
            if b["facts"] != a["facts"] or b["poster"] != a["poster"]:
                raise RuntimeError(
                    f"before and {variant} disagree on {path.name}: facts {b['facts']} vs {a['facts']}, "
                    f"posters equal: {b['poster'] == a['poster']}"
                )
    row = {
        "video": f"{resolution} {seconds} s",
        "bytes": described["bytes"],
        "size": f"{described['width']}x{described['height']}",
        "keyframes": described["keyframes"],
        "runs": repeat,
        "before_check_cpu": median([r["check_cpu"] for r in before]),
        "before_poster_cpu": median([r["poster_cpu"] for r in before]),
        "before_cpu": median([r["cpu"] for r in before]),
        "before_wall": median([r["wall"] for r in before]),
        # The check's count, plus the poster's own pass: frame 0 up to the first at 0.5 s.
        "before_frames": before[0]["frames"] + int(media.POSTER_AT_S * described["fps"]) + 1,
        "after_cpu": median([r["cpu"] for r in after]),
        "after_wall": median([r["wall"] for r in after]),
        "after_frames": after[0]["frames"],
        "verdict": after[0]["facts"]["verdict"],
        "poster_bytes": len(after[0]["poster"] or b""),
    }
    row["ratio_cpu"] = row["after_cpu"] / row["before_cpu"]
    if breakdown:
        row["partial_cpu"] = {v: median([r["cpu"] for r in runs[v]]) for v in PARTIAL}
        row["partial_frames"] = {v: runs[v][0]["frames"] for v in PARTIAL}
    print(f"  landing {json.dumps(row)}", file=sys.stderr)
    return row


def run(
    quick: bool = False,
    repeat: int | None = None,
    out: Path | None = None,
    videos: tuple[str, ...] = VIDEOS,
    before: str = BEFORE_REVISION,
    breakdown: bool = False,
) -> list[dict[str, Any]]:
    repeat = repeat or (5 if quick else 15)
    old = media_at(before)
    rows = [measure(video, repeat, old, breakdown) for video in videos]
    if out:
        out.write_text(json.dumps(rows, indent=2))
    return rows


def table(rows: list[dict[str, Any]], before: str = BEFORE_REVISION) -> str:
    lines = [
        f"| video | MB | frames | before (`{before}`): check + poster = CPU-s | before wall s"
        " | **after (one pass): CPU-s** | after wall s | **after/before CPU**"
        " | frames decoded before / after |",
        "|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['video']} {r['size']} | {r['bytes'] / 1e6:.2f} | keyframes at {r['keyframes']}"
            f" | {fmt_num(r['before_check_cpu'])} + {fmt_num(r['before_poster_cpu'])}"
            f" = {fmt_num(r['before_cpu'])} | {fmt_num(r['before_wall'])}"
            f" | **{fmt_num(r['after_cpu'])}** | {fmt_num(r['after_wall'])}"
            f" | **{fmt_num(r['ratio_cpu'])}x** | {r['before_frames']} / {r['after_frames']} |"
        )
    partial = [r for r in rows if r.get("partial_cpu")]
    if partial:
        lines += [
            "",
            "Where the saving comes from (same runs; each step adds one change):",
            "",
            "| video | step | CPU-s | frames decoded |",
            "|---|---|---:|---:|",
        ]
        for r in partial:
            lines.append(
                f"| {r['video']} | before: two passes | {fmt_num(r['before_cpu'])} | {r['before_frames']} |"
            )
            for variant, cpu in r["partial_cpu"].items():
                label = "+ unreferenced frames skipped (= after)" if variant == "after" else variant
                lines.append(f"| {r['video']} | {label} | {fmt_num(cpu)} | {r['partial_frames'][variant]} |")
    return "\n".join(lines)


def product() -> str:
    head = git("rev-parse", "--short", "HEAD").strip()
    dirty = git("status", "--porcelain", "--", "airflow_provider_hailuo").strip()
    return f"{head}{' + uncommitted changes' if dirty else ''}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--videos", nargs="+", default=list(VIDEOS), metavar="RES:SECONDS", help="e.g. 1080P:6 768P:10"
    )
    parser.add_argument("--before", default=BEFORE_REVISION, help="git revision of the two-pass media.py")
    parser.add_argument("--breakdown", action="store_true", help="also time the partial variants")
    args = parser.parse_args()
    print(
        f"product measured: {product()}; before = media.py at {args.before}; "
        f"load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    rows = run(args.quick, args.repeat, args.json, tuple(args.videos), args.before, args.breakdown)
    print(table(rows, args.before))
    print(f"\n(load average at the end: {os.getloadavg()[0]:.2f})", file=sys.stderr)
