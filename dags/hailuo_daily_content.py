"""
Daily content: generate one video per prompt and land them in object storage, one folder a day.

Prompts come from the run's ``prompts`` param, or else from ``prompts.txt`` beside this file (one
per line). Each prompt goes through submit -> wait (in the triggerer, no worker slot held) ->
download, mapped so every video has its own three tasks and its own retries.

Where the videos land: the ``destination`` param (default ``$HAILUO_VIDEO_DESTINATION``, else
``file:///tmp/hailuo/videos/``), then ``<ds>/<task_id>.mp4``. For S3 use
``s3://bucket/prefix/`` with ``storage_conn_id`` naming an ``aws`` connection.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task, task_group

from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator, HailuoSubmitVideoOperator
from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

PROMPTS_FILE = Path(__file__).with_name("prompts.txt")
#: Shortest pause between status reads; the sensor otherwise paces itself by the service's eta.
POLL_INTERVAL = float(os.environ.get("HAILUO_POLL_INTERVAL", "10"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("HAILUO_RETRY_DELAY_SECONDS", "30")))

with DAG(
    dag_id="hailuo_daily_content",
    description="Generate the day's videos with MiniMax Hailuo-02 and land them in object storage",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["hailuo", "video"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": RETRY_DELAY},
    params={
        "prompts": Param([], type="array", items={"type": "string"}, description="Empty: prompts.txt"),
        "duration": Param(6, enum=[6, 10]),
        "resolution": Param("768P", enum=["768P", "1080P"]),
        "destination": Param(
            os.environ.get("HAILUO_VIDEO_DESTINATION", "file:///tmp/hailuo/videos/"),
            type="string",
            description="Folder URI ending in '/'; the run's date is appended",
        ),
        "storage_conn_id": Param(os.environ.get("HAILUO_STORAGE_CONN_ID"), type=["null", "string"]),
    },
) as dag:

    @task
    def load_prompts() -> list[str]:
        """The run's prompts: the param if given, else the non-empty lines of prompts.txt."""
        prompts = get_current_context()["params"]["prompts"]
        if not prompts:
            prompts = [line.strip() for line in PROMPTS_FILE.read_text().splitlines() if line.strip()]
        if not prompts:
            raise ValueError("No prompts: pass the `prompts` param or fill prompts.txt")
        return prompts

    @task_group
    def generate(prompt: str) -> None:
        submit = HailuoSubmitVideoOperator(
            task_id="submit",
            prompt=prompt,
            duration="{{ params.duration }}",
            resolution="{{ params.resolution }}",
        )
        wait = HailuoTaskSensor(
            task_id="wait",
            hailuo_task_id=submit.output,
            poll_interval=POLL_INTERVAL,
            deferrable=True,  # wait in the triggerer: no worker slot held while the video renders
            timeout=3600,
        )
        download = HailuoDownloadVideoOperator(
            task_id="download",
            hailuo_task_id=submit.output,
            # run_after, not ds: manual and API-triggered runs have no logical date in Airflow 3;
            # Airflow 2 has no run_after, and every run there has a logical date.
            destination="{{ params.destination }}"
            "{{ (dag_run.run_after if dag_run.run_after is defined else dag_run.logical_date) | ds }}/",
            storage_conn_id="{{ params.storage_conn_id or '' }}",
        )
        wait >> download

    generate.expand(prompt=load_prompts())
