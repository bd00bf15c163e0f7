"""
Benchmark 3, streaming download: ``HailuoDownloadVideoOperator``'s code path (``execute``: a fresh
link from the task, ``HailuoHook.stream_video``, ``storage.land_stream``) against ``curl -o`` of the
same URL to the same disk, for a 100 MiB and a 1 GiB video served by the emulator over loopback.

Destinations: ``file://`` (a temp dir; curl writes to the same dir) and an S3 server (moto,
``tests/support/s3.py``, its own process). For S3 a second reference is measured: the link's raw
stream handed to boto3's ``upload_fileobj`` (what a direct S3 client does; curl cannot write to S3).

The product is measured in two variants side by side (``--variants``): ``off`` =
``video_checks="off", poster=False, manifest=False`` (the download path before video checks) and
``default`` = the operator's defaults (``video_checks="warn"``: PyAV decodes the first and last frames
of the landed file, spooled to a local temp file for an object store; a poster JPEG; a manifest).
The emulator pads the 100 MiB / 1 GiB videos with an MP4 ``free`` box after a small real sample; a
``default`` run that does not report a decoded video with a poster and a manifest fails the benchmark.

Every download runs in a fresh process; peak RSS growth = peak RSS sampled every 5 ms during the
download - RSS just before it (after imports and the filesystem's warm-up; PyAV is not imported by
the warm-up: the operator imports it during the download, so its cost is counted). Also reported:
the same peak split into anonymous and file-backed pages, and the kernel's exact peak (``VmHWM``,
reset just before the download). Runs alternate variants / baselines; medians of ``--repeat`` runs.
After the timed runs, one untimed ``default`` run per case records memory around PyAV's import,
the decode check and the poster (``--phases`` of the worker).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from _common import (
    API_KEY,
    BENCH_DIR,
    PYTHON,
    airflow_env,
    emulator,
    fmt_num,
    hailuo_conn,
    listening_process,
    median,
    ratio,
    snapshot_product,
    submit_tasks,
)

import tests.support.s3 as s3_support  # _common put the repository on sys.path
from tests.support.connections import aws_conn_json

MIB = 2**20
S3_CONN_ID = "hailuo_bench_s3"
VARIANTS = ("off", "default")


@contextmanager
def s3_server(workdir: Path) -> Iterator[str]:
    cmd = [PYTHON, str(BENCH_DIR / "_s3_server.py")]
    with listening_process(cmd, workdir / "s3.log", airflow_env(workdir), "S3 server") as (_, url):
        yield url


def video_url(api: str, task_id: str) -> str:
    answer = requests.get(
        f"{api}/v3/async/task-result",
        params={"task_id": task_id},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    ).json()
    return answer["videos"][0]["video_url"]


def run_worker(env: dict[str, str], *args: str) -> dict[str, Any]:
    os.sync()  # every timed download starts with no dirty pages of an earlier one pending
    proc = subprocess.run(
        [PYTHON, str(BENCH_DIR / "_download_worker.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"download worker failed: {proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def landed_ok(record: dict[str, Any]) -> None:
    """A ``default`` run must have decoded the padded video and landed its poster and manifest."""
    if not (
        record.get("verdict")
        and record.get("codec")
        and record.get("poster_uri")
        and record.get("manifest_uri")
    ):
        keys = ("verdict", "codec", "poster_uri", "manifest_uri")
        raise RuntimeError(
            f"default variant did not check/land everything: { ({k: record.get(k) for k in keys}) }"
        )


@dataclass
class Landing:
    """Where the product downloads of one case go: ``file`` (``disk``) or ``s3`` (``bucket``)."""

    env: dict[str, str]
    task_id: str
    dest: str
    disk: Path
    bucket: str
    client: Any

    def download(self, variant: str, *extra: str) -> dict[str, Any]:
        """One product download into a fresh name; the video and its sidecars are removed after."""
        key = uuid.uuid4().hex
        args = ["--variant", variant, "--task-id", self.task_id, *extra]
        if self.dest == "file":
            record = run_worker(self.env, *args, "--destination", f"file://{self.disk}/{key}.mp4")
            for suffix in (".mp4", ".jpg", ".json"):
                (self.disk / f"{key}{suffix}").unlink(missing_ok=True)
        else:
            destination = f"s3://{self.bucket}/{key}.mp4"
            record = run_worker(
                self.env, *args, "--destination", destination, "--storage-conn-id", S3_CONN_ID
            )
            for suffix in (".mp4", ".jpg", ".json"):
                self.client.delete_object(Bucket=self.bucket, Key=f"{key}{suffix}")
        if variant == "default":
            landed_ok(record)
        return record


def run_curl(url: str, target: Path) -> float:
    os.sync()
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(target), url], check=True, timeout=900)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def run(
    quick: bool = False,
    repeat: int | None = None,
    out: Path | None = None,
    sizes_mib: tuple[int, ...] | None = None,
    variants: tuple[str, ...] = VARIANTS,
) -> list[dict[str, Any]]:
    if sizes_mib:
        sizes: tuple[int, ...] = tuple(size * MIB for size in sizes_mib)
    else:
        sizes = (10 * MIB, 100 * MIB) if quick else (100 * MIB, 1024 * MIB)
    repeat = repeat or (2 if quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="hailuo-bench-download-"))
    disk = workdir / "landing"
    disk.mkdir()
    rows: list[dict[str, Any]] = []
    with (
        emulator("--queue-seconds", "0", "--generation-seconds", "0", log_dir=workdir) as emu,
        s3_server(workdir) as s3_endpoint,
    ):
        bucket = "bench-videos"
        s3_support.S3Server(endpoint_url=s3_endpoint).create_bucket(bucket)
        conn = aws_conn_json(s3_endpoint, s3_support.ACCESS_KEY, s3_support.SECRET_KEY)
        env = airflow_env(
            workdir,
            {
                "AIRFLOW_CONN_HAILUO_DEFAULT": hailuo_conn(emu.url),
                f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": conn,
                "AWS_ACCESS_KEY_ID": s3_support.ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": s3_support.SECRET_KEY,
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            },
        )
        for size in sizes:
            emu.configure(video_bytes=size)
            (task_id,) = submit_tasks(emu.url, 1)
            for dest in ("file", "s3"):
                client = s3_support.S3Server(endpoint_url=s3_endpoint).client()
                landing = Landing(env, task_id, dest, disk, bucket, client)
                product: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
                curl: list[float] = []
                boto: list[dict[str, Any]] = []
                for i in range(repeat):
                    # Alternate which variant goes first, so neither always follows the baseline.
                    for variant in variants if i % 2 == 0 else variants[::-1]:
                        product[variant].append(landing.download(variant))
                    if dest == "s3":
                        key = uuid.uuid4().hex
                        boto.append(
                            run_worker(
                                env,
                                "--mode",
                                "boto3",
                                "--task-id",
                                task_id,
                                "--destination",
                                f"s3://{bucket}/{key}-boto3.mp4",
                                "--video-url",
                                video_url(emu.url, task_id),
                                "--endpoint-url",
                                s3_endpoint,
                            )
                        )
                        client.delete_object(Bucket=bucket, Key=f"{key}-boto3.mp4")
                    curl.append(run_curl(video_url(emu.url, task_id), disk / "curl.mp4"))
                phases = landing.download("default", "--phases") if "default" in variants else None
                for variant in variants:
                    row = summarize(size, dest, variant, product[variant], curl, boto)
                    if variant == "default" and phases is not None:
                        row["phases"] = phase_summary(phases)
                    print(f"  download {json.dumps(row)}", file=sys.stderr)
                    rows.append(row)
    shutil.rmtree(workdir, ignore_errors=True)
    if out:
        out.write_text(json.dumps(rows, indent=2))
    return rows


def phase_summary(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The worker's ``--phases`` notes as MiB over the RSS just before the download."""
    base = record["rss_before"]
    base_anon, base_file = record["anon_before"], record["file_before"]
    seen: set[str] = set()
    notes = []
    for note in record["phases"]:
        name = note["phase"]
        if name.startswith("media_available") and name in seen:
            continue  # cached after the first call: only the first (the import) says anything
        seen.add(name)
        notes.append(
            {
                "phase": name,
                "rss_mib": (note["rss"] - base) / MIB,
                "anon_mib": (note["anon"] - base_anon) / MIB,
                "file_mib": (note["file"] - base_file) / MIB,
                "peak_so_far_mib": (note["hwm"] - base) / MIB,
            }
        )
    notes.append(
        {
            "phase": "download end",
            "rss_mib": (record["rss_after"] - base) / MIB,
            "anon_mib": float("nan"),
            "file_mib": float("nan"),
            "peak_so_far_mib": (record["hwm_peak"] - base) / MIB if record.get("hwm_peak") else float("nan"),
        }
    )
    return notes


def summarize(
    size: int,
    dest: str,
    variant: str,
    product: list[dict[str, Any]],
    curl: list[float],
    boto: list[dict[str, Any]],
) -> dict[str, Any]:
    def mib_s(seconds: float) -> float:
        return size / MIB / seconds

    def growth_of(peak: str, before: str) -> list[float]:
        return [(r[peak] - r[before]) / MIB for r in product if r.get(peak) is not None]

    growth = growth_of("rss_peak", "rss_before")
    maxrss_growth = [(r["maxrss_after"] - r["maxrss_before"]) / MIB for r in product]
    row: dict[str, Any] = {
        "size_mib": size / MIB,
        "destination": dest,
        "variant": variant,
        "runs": len(product),
        "product_mib_s": median([mib_s(r["seconds"]) for r in product]),
        "curl_mib_s": median([mib_s(s) for s in curl]),
        "product_rss_growth_mib": median(growth),
        "product_rss_growth_max_mib": max(growth),
        "product_anon_growth_mib": median(growth_of("anon_peak", "anon_before")),
        "product_file_growth_mib": median(growth_of("file_peak", "file_before")),
        "product_hwm_growth_mib": median(growth_of("hwm_peak", "rss_before")),
        "product_maxrss_growth_mib": median(maxrss_growth),
        "verdicts": sorted({str(r.get("verdict")) for r in product}),
    }
    row["ratio_vs_curl"] = ratio(row["product_mib_s"], row["curl_mib_s"])
    if boto:
        row["boto3_mib_s"] = median([mib_s(r["seconds"]) for r in boto])
        row["boto3_rss_growth_mib"] = median([(r["rss_peak"] - r["rss_before"]) / MIB for r in boto])
        row["ratio_vs_boto3"] = ratio(row["product_mib_s"], row["boto3_mib_s"])
    return row


def times(value: float) -> str:
    return fmt_num(value) + ("x" if value == value else "")


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| video | into | variant | product MiB/s | curl -o MiB/s | **product/curl**"
        " | boto3 upload_fileobj MiB/s | product/boto3 | product peak RSS growth (median, max)"
        " | peak growth anon / file-backed"
        " | exact peak (VmHWM) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size_mib']:g} MiB | {r['destination']} | {r.get('variant', '-')}"
            f" | {fmt_num(r['product_mib_s'])}"
            f" | {fmt_num(r['curl_mib_s'])} | **{fmt_num(r['ratio_vs_curl'])}x**"
            f" | {fmt_num(r.get('boto3_mib_s', float('nan')))}"
            f" | {times(r.get('ratio_vs_boto3', float('nan')))}"
            f" | {fmt_num(r['product_rss_growth_mib'])} MiB, {fmt_num(r['product_rss_growth_max_mib'])} MiB"
            f" | {fmt_num(r.get('product_anon_growth_mib', float('nan')))}"
            f" / {fmt_num(r.get('product_file_growth_mib', float('nan')))} MiB"
            f" | {fmt_num(r.get('product_hwm_growth_mib', float('nan')))} MiB |"
        )
    phased = [r for r in rows if r.get("phases")]
    if phased:
        lines += [
            "",
            "Memory during one untimed `default` run (MiB over the RSS just before the download;"
            " anon / file-backed; peak so far = VmHWM):",
            "",
            "| video | into | phase | RSS | anon | file-backed | peak so far |",
            "|---:|---|---|---:|---:|---:|---:|",
        ]
        for r in phased:
            for note in r["phases"]:
                lines.append(
                    f"| {r['size_mib']:g} MiB | {r['destination']} | {note['phase']}"
                    f" | {fmt_num(note['rss_mib'])} | {fmt_num(note['anon_mib'])}"
                    f" | {fmt_num(note['file_mib'])} | {fmt_num(note['peak_so_far_mib'])} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", metavar="MIB", help="video sizes in MiB")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args()
    print(f"product measured: {snapshot_product()}", file=sys.stderr)
    sizes = tuple(args.sizes) if args.sizes else None
    print(table(run(args.quick, args.repeat, args.json, sizes, tuple(args.variants))))
