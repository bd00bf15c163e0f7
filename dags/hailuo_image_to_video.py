"""
Image to video: animate one still image (its URL is the ``image_url`` param) into a short video.

Triggered by hand or by another DAG with ``{"image_url": ..., "prompt": ...}`` as run conf; the
video lands in ``destination`` (default ``$HAILUO_VIDEO_DESTINATION``, else
``file:///tmp/hailuo/videos/``) under ``image-to-video/<run_id>/``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator, HailuoSubmitVideoOperator
from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

with DAG(
    dag_id="hailuo_image_to_video",
    description="Animate one image into a 6 s video with MiniMax Hailuo-02",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["hailuo", "video"],
    doc_md=__doc__,
    params={
        "image_url": Param(
            "https://static.ppinfra.com/docs/assets/minimax-hailuo-video-02-input-image.jpg",
            type="string",
            pattern="^(https?://|data:image/|s3://|gs://|file://)",
            description="the first frame: an http(s) URL, a data:image/...;base64, URL, or an object "
            "in storage (s3://, gs://, file://)",
        ),
        "prompt": Param("The subject slowly turns towards the camera and smiles", type="string"),
        "destination": Param(
            os.environ.get("HAILUO_VIDEO_DESTINATION", "file:///tmp/hailuo/videos/"), type="string"
        ),
        "storage_conn_id": Param(os.environ.get("HAILUO_STORAGE_CONN_ID"), type=["null", "string"]),
    },
) as dag:
    submit = HailuoSubmitVideoOperator(
        task_id="submit",
        prompt="{{ params.prompt }}",
        image_url="{{ params.image_url }}",
        duration=6,
        resolution="1080P",
        retries=2,
    )
    wait = HailuoTaskSensor(
        task_id="wait",
        hailuo_task_id=submit.output,
        poll_interval=float(os.environ.get("HAILUO_POLL_INTERVAL", "10")),
        deferrable=True,
    )
    download = HailuoDownloadVideoOperator(
        task_id="download",
        hailuo_task_id=submit.output,
        destination="{{ params.destination }}image-to-video/{{ run_id | replace(':', '_') }}/",
        storage_conn_id="{{ params.storage_conn_id or '' }}",
        retries=2,
    )
    wait >> download
