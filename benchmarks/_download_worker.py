"""
One download in a fresh process, so its memory is its own: prints a JSON line with the wall time and
the RSS before (after imports and warm-up) and the peak during the download (sampled every 5 ms;
also split into anonymous and file-backed pages, and the kernel's exact peak, ``VmHWM``, reset just
before the download through ``/proc/self/clear_refs``).

``--mode product``: ``HailuoDownloadVideoOperator.execute`` (fresh link from the task, then
``HailuoHook.stream_video`` + ``storage.land_stream``). ``--variant`` picks its settings: ``off`` is
``video_checks="off", poster=False, manifest=False`` (the path before video checks existed);
``default`` is the operator's defaults (``video_checks="warn"``, poster and manifest on).
``--phases`` also records RSS and ``VmHWM`` around PyAV's import, the decode pass (check and poster
frame) and the poster's JPEG (wrappers around ``media``'s functions; a diagnosis, not for timing).
``--mode boto3``: a reference for S3, the link's raw stream handed to boto3's ``upload_fileobj``
(multipart, 8 MiB parts).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

#: Operator settings per variant: "off" is the download path before video checks, poster and manifest.
VARIANTS: dict[str, dict[str, Any]] = {
    "off": {"video_checks": "off", "poster": False, "manifest": False},
    "default": {},
}


def vm_hwm() -> int:
    """The kernel's peak RSS of this process (``VmHWM``), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_hwm() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory() -> dict[str, int]:
    info = psutil.Process().memory_info()
    return {"rss": info.rss, "file": info.shared, "anon": info.rss - info.shared, "hwm": vm_hwm()}


class PeakRss:
    def __init__(self, interval: float = 0.005) -> None:
        self.process = psutil.Process()
        info = self.process.memory_info()
        self.peak = info.rss
        self.peak_anon = info.rss - info.shared  # anonymous: heap, buffers, thread stacks
        self.peak_file = info.shared  # file-backed: mapped libraries (and any mmap'ed file)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        info = self.process.memory_info()
        self.peak = max(self.peak, info.rss)
        self.peak_anon = max(self.peak_anon, info.rss - info.shared)
        self.peak_file = max(self.peak_file, info.shared)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def record_phases(phases: list[dict[str, Any]]) -> None:
    """Wrap the media functions the operator calls, to note memory as each starts and ends."""
    from airflow_provider_hailuo import media

    def wrap(name: str) -> None:
        original: Callable[..., Any] = getattr(media, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            phases.append({"phase": f"{name} start", **memory()})
            try:
                return original(*args, **kwargs)
            finally:
                phases.append({"phase": f"{name} end", **memory()})

        setattr(media, name, wrapper)

    # inspect: the check and the poster frame in one pass; _jpeg: the poster's encoding, inside it.
    for name in ("media_available", "inspect", "_jpeg"):
        wrap(name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("product", "boto3"), default="product")
    parser.add_argument("--variant", choices=tuple(VARIANTS), default="default")
    parser.add_argument("--phases", action="store_true")
    parser.add_argument("--task-id", required=True)
    parser.add_argument("--destination", required=True)
    parser.add_argument("--storage-conn-id", default=None)
    parser.add_argument("--video-url", default=None)
    parser.add_argument("--endpoint-url", default=None)
    args = parser.parse_args()

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator

    operator = HailuoDownloadVideoOperator(
        task_id="download",
        hailuo_task_id=args.task_id,
        destination=args.destination,
        storage_conn_id=args.storage_conn_id,
        overwrite=True,
        **VARIANTS[args.variant],
    )
    # Warm-up, not measured: the connection, and the destination's filesystem (s3fs, aiobotocore and
    # their imports are loaded on first use; that is import cost, not streaming cost).
    operator.hook.settings  # noqa: B018
    target = operator.target_path()
    target.fs  # noqa: B018
    target.parent.exists()
    boto = None
    if args.mode == "boto3":
        import boto3
        import requests
        from boto3.s3.transfer import TransferConfig

        boto = boto3.client("s3", endpoint_url=args.endpoint_url, region_name="us-east-1")
    phases: list[dict[str, Any]] = []
    if args.phases:
        record_phases(phases)
    result: dict[str, Any] = {}
    before = psutil.Process().memory_info()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    hwm_reset = reset_hwm()
    with PeakRss() as peak:
        started = time.perf_counter()
        if args.mode == "product":
            result = operator.execute(context={})
            size = result["bytes"]
        else:
            assert boto is not None
            path = ObjectStoragePath(args.destination)
            bucket, _, key = path.path.partition("/")
            with requests.get(args.video_url, stream=True, timeout=60) as response:
                response.raise_for_status()
                boto.upload_fileobj(
                    response.raw,
                    bucket,
                    key,
                    Config=TransferConfig(multipart_chunksize=8 * 2**20, max_concurrency=4),
                )
                size = int(response.headers["Content-Length"])
        elapsed = time.perf_counter() - started
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    after = memory()
    checks = result.get("checks") or {}
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "bytes": size,
                "rss_before": before.rss,
                "rss_peak": peak.peak,
                "anon_before": before.rss - before.shared,
                "anon_peak": peak.peak_anon,
                "file_before": before.shared,
                "file_peak": peak.peak_file,
                "rss_after": after["rss"],
                "hwm_peak": after["hwm"] if hwm_reset else None,
                "maxrss_before": maxrss_before,
                "maxrss_after": maxrss_after,
                # What the default variant checked and landed (None/absent for "off" and boto3).
                "verdict": checks.get("verdict"),
                "codec": result.get("codec"),
                "poster_uri": result.get("poster_uri"),
                "manifest_uri": result.get("manifest_uri"),
                "phases": phases,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
