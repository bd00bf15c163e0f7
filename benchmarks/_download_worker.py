"""
One download in a fresh process, so its memory is its own: prints a JSON line with the wall time and
the RSS before (after imports and warm-up) and the peak during the download (sampled every 5 ms).

``--mode product``: ``HailuoDownloadVideoOperator.execute`` (fresh link from the task, then
``HailuoHook.stream_video`` + ``storage.land_stream``). ``--mode boto3``: a reference for S3, the
link's raw stream handed to boto3's ``upload_fileobj`` (multipart, 8 MiB parts).
"""

from __future__ import annotations

import argparse
import json
import resource
import threading
import time

import psutil


class PeakRss:
    def __init__(self, interval: float = 0.005) -> None:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("product", "boto3"), default="product")
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
    rss_before = psutil.Process().memory_info().rss
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
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
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "bytes": size,
                "rss_before": rss_before,
                "rss_peak": peak.peak,
                "maxrss_before": maxrss_before,
                "maxrss_after": maxrss_after,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
