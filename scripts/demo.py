"""
`make demo`: the daily-content DAG end to end against the bundled emulator, no key, no network.

Starts the emulator on a free loopback port, speaking the vendor's API chosen by ``--api`` or
``HAILUO_DEMO_API`` (``ppinfra`` (default), ``novita`` or ``minimax``; ``make demo API=minimax``),
points the `hailuo_default` connection at it through the environment, with the connection's `api`
extra naming that vendor (as you would point it at PPInfra, Novita or MiniMax), runs the example
DAG with `airflow dags test` (deferral to the trigger included), then lists the videos that landed, each
with what its manifest says it is (duration, resolution, check verdict) and the files beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from airflow_provider_hailuo.api import looks_like_mp4
from airflow_provider_hailuo.emulator.server import EmulatorServer

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".demo"
OUTPUT = REPO / "demo-output" / "videos"
DEMO_KEY = "demo-key-not-a-secret"
VENDORS = ("ppinfra", "novita", "minimax")
#: The real service each dialect stands in for.
REAL_HOSTS = {
    "ppinfra": "https://api.ppinfra.com",
    "novita": "https://api.novita.ai",
    "minimax": "https://api.minimax.io",
}


def airflow(args: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("ab") as handle:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=env, stdout=handle, stderr=subprocess.STDOUT
        ).returncode


def describe(video: Path) -> str:
    """One video's lines: size, what the checks measured, and its poster and manifest (if landed)."""
    kind = "MP4" if looks_like_mp4(video.read_bytes()[:16]) else "NOT AN MP4"
    lines = [f"  {video}  {video.stat().st_size:,} bytes  {kind}"]
    manifest, poster = video.with_suffix(".json"), video.with_suffix(".jpg")
    checks = json.loads(manifest.read_text()).get("checks") if manifest.exists() else None
    if checks:
        lines.append(
            f"    {checks['duration_s']:.1f} s, {checks['width']}x{checks['height']} {checks['codec']}, "
            f"checks: {checks['verdict']}"
        )
    else:
        lines.append("    not checked (no manifest, or video_checks='off' / no PyAV)")
    lines.append(f"    poster:   {poster if poster.exists() else '(none)'}")
    lines.append(f"    manifest: {manifest if manifest.exists() else '(none)'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "--api",
        default=os.environ.get("HAILUO_DEMO_API") or "ppinfra",
        type=lambda value: value.strip().lower(),
        help="the vendor's API the emulator speaks: ppinfra (default), novita or minimax "
        "(default: $HAILUO_DEMO_API)",
    )
    args = parser.parse_args(argv)
    if args.api not in VENDORS:
        parser.error(f"--api / HAILUO_DEMO_API must be one of {', '.join(VENDORS)}, not {args.api!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    api = parse_args(argv).api
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.rmtree(OUTPUT, ignore_errors=True)
    WORK.mkdir(parents=True)
    log = WORK / "airflow.log"
    started = time.monotonic()
    with EmulatorServer(api=api, api_key=DEMO_KEY, queue_seconds=1, generation_seconds=(3, 6)) as emulator:
        print(f"Emulator: {emulator.url}, speaking {api}'s API (a stand-in for {REAL_HOSTS[api]})")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(WORK / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_HAILUO_DEFAULT": json.dumps(
                {"conn_type": "hailuo", "host": emulator.url, "password": DEMO_KEY, "extra": {"api": api}}
            ),
            "HAILUO_VIDEO_DESTINATION": OUTPUT.as_uri() + "/",
            "HAILUO_POLL_INTERVAL": "1",
        }
        print("Preparing a throw-away Airflow home in .demo/ ...")
        if airflow(["db", "migrate"], env, log) != 0:
            print(f"`airflow db migrate` failed; see {log}")
            return 1
        print("Running `airflow dags test hailuo_daily_content` (submit -> defer -> download) ...")
        code = airflow(["dags", "test", "hailuo_daily_content"], env, log)
        counters = emulator.counters()
    videos = sorted(OUTPUT.rglob("*.mp4"))
    print()
    if code != 0 or not videos:
        print(f"The DAG run failed (exit {code}); the full log is {log}")
        return 1
    print(f"{len(videos)} videos landed under {OUTPUT}:")
    for video in videos:
        print(describe(video))
    print(
        f"Emulator ({api}) counters: {counters['submits']} paid submits, {counters['polls']} status polls, "
        f"{counters['file_retrievals']} file retrievals, {counters['downloads']} downloads. "
        f"Took {time.monotonic() - started:.0f}s; log: {log}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
