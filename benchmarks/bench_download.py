"""
Benchmark 3, streaming download: ``HailuoDownloadVideoOperator``'s code path (``execute``: a fresh
link from the task, ``HailuoHook.stream_video``, ``storage.land_stream``) against ``curl -o`` of the
same URL to the same disk, for a 100 MiB and a 1 GiB video served by the emulator over loopback.

Destinations: ``file://`` (a temp dir; curl writes to the same dir) and an S3 server (moto,
``tests/support/s3.py``, its own process). For S3 a second reference is measured: the link's raw
stream handed to boto3's ``upload_fileobj`` (what a direct S3 client does; curl cannot write to S3).

Every download runs in a fresh process; peak RSS growth = peak RSS sampled every 5 ms during the
download - RSS just before it (after imports and the filesystem's warm-up). Runs alternate product /
baseline; medians of ``--repeat`` runs.
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


def run_curl(url: str, target: Path) -> float:
    os.sync()
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(target), url], check=True, timeout=900)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def run(quick: bool = False, repeat: int | None = None, out: Path | None = None) -> list[dict[str, Any]]:
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
                product: list[dict[str, Any]] = []
                curl: list[float] = []
                boto: list[dict[str, Any]] = []
                for _ in range(repeat):
                    key = uuid.uuid4().hex
                    if dest == "file":
                        destination = f"file://{disk}/{key}.mp4"
                        product.append(run_worker(env, "--task-id", task_id, "--destination", destination))
                        (disk / f"{key}.mp4").unlink()
                    else:
                        destination = f"s3://{bucket}/{key}.mp4"
                        product.append(
                            run_worker(
                                env,
                                "--task-id",
                                task_id,
                                "--destination",
                                destination,
                                "--storage-conn-id",
                                S3_CONN_ID,
                            )
                        )
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
                        client = s3_support.S3Server(endpoint_url=s3_endpoint).client()
                        client.delete_object(Bucket=bucket, Key=f"{key}.mp4")
                        client.delete_object(Bucket=bucket, Key=f"{key}-boto3.mp4")
                    curl.append(run_curl(video_url(emu.url, task_id), disk / "curl.mp4"))
                row = summarize(size, dest, product, curl, boto)
                print(f"  download {json.dumps(row)}", file=sys.stderr)
                rows.append(row)
    shutil.rmtree(workdir, ignore_errors=True)
    if out:
        out.write_text(json.dumps(rows, indent=2))
    return rows


def summarize(
    size: int, dest: str, product: list[dict[str, Any]], curl: list[float], boto: list[dict[str, Any]]
) -> dict[str, Any]:
    def mib_s(seconds: float) -> float:
        return size / MIB / seconds

    growth = [(r["rss_peak"] - r["rss_before"]) / MIB for r in product]
    maxrss_growth = [(r["maxrss_after"] - r["maxrss_before"]) / MIB for r in product]
    row: dict[str, Any] = {
        "size_mib": size / MIB,
        "destination": dest,
        "runs": len(product),
        "product_mib_s": median([mib_s(r["seconds"]) for r in product]),
        "curl_mib_s": median([mib_s(s) for s in curl]),
        "product_rss_growth_mib": median(growth),
        "product_rss_growth_max_mib": max(growth),
        "product_maxrss_growth_mib": median(maxrss_growth),
    }
    row["ratio_vs_curl"] = ratio(row["product_mib_s"], row["curl_mib_s"])
    if boto:
        row["boto3_mib_s"] = median([mib_s(r["seconds"]) for r in boto])
        row["boto3_rss_growth_mib"] = median([(r["rss_peak"] - r["rss_before"]) / MIB for r in boto])
        row["ratio_vs_boto3"] = ratio(row["product_mib_s"], row["boto3_mib_s"])
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| video | into | product MiB/s | curl -o MiB/s | **product/curl** | boto3 upload_fileobj MiB/s"
        " | product/boto3 | product peak RSS growth (median, max) |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size_mib']:g} MiB | {r['destination']} | {fmt_num(r['product_mib_s'])}"
            f" | {fmt_num(r['curl_mib_s'])} | **{fmt_num(r['ratio_vs_curl'])}x**"
            f" | {fmt_num(r.get('boto3_mib_s', float('nan')))}"
            f" | {fmt_num(r.get('ratio_vs_boto3', float('nan')))}x"
            f" | {fmt_num(r['product_rss_growth_mib'])} MiB, {fmt_num(r['product_rss_growth_max_mib'])} MiB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(f"product measured: {snapshot_product()}", file=sys.stderr)
    print(table(run(args.quick, args.repeat, args.json)))
