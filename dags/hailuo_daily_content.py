"""
Daily content: plan the day's videos, then generate each one and land them in object storage.

Prompts come from the run's ``prompts`` param, or else from ``prompts.txt`` beside this file (one
per line). The ``plan`` task checks every request and prices the batch before anything is bought:
an invalid request, or a total above the ``max_total_cost`` param (in the currency of the
connection's prices; empty: no limit), fails the run with no video paid for. Each planned request
then goes through submit -> wait (in the triggerer, no worker slot held) -> download, mapped so
every video has its own three tasks and its own retries.

Where the videos land: the ``destination`` param (default ``$HAILUO_VIDEO_DESTINATION``, else
``file:///tmp/hailuo/videos/``), then ``<ds>/<task_id>.mp4``. For S3 use
``s3://bucket/prefix/`` with ``storage_conn_id`` naming an ``aws`` connection.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task, task_group

from airflow_provider_hailuo.operators.hailuo import (
    HailuoDownloadVideoOperator,
    HailuoPlanVideosOperator,
    HailuoSubmitVideoOperator,
)
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
        "max_total_cost": Param(
            None,
            type=["null", "number"],
            description="The most the run may spend, in the currency of the connection's prices "
            "(CNY for PPInfra's list prices); empty: no limit",
        ),
    },
) as dag:

    @task
    def load_requests() -> list[dict[str, Any]]:
        """The run's requests: a prompt each (the param if given, else prompts.txt), same settings."""
        params = get_current_context()["params"]
        prompts = params["prompts"]
        if not prompts:
            prompts = [line.strip() for line in PROMPTS_FILE.read_text().splitlines() if line.strip()]
        if not prompts:
            raise ValueError("No prompts: pass the `prompts` param or fill prompts.txt")
        return [
            {"prompt": prompt, "duration": params["duration"], "resolution": params["resolution"]}
            for prompt in prompts
        ]

    # Nothing is bought unless every request is valid and the whole batch is within the budget.
    plan = HailuoPlanVideosOperator(
        task_id="plan", requests=load_requests(), max_total_cost="{{ params.max_total_cost }}"
    )

    @task_group
    def generate(
        prompt: str,
        image_url: str | None,
        end_image_url: str | None,
        duration: int,
        resolution: str,
        enable_prompt_expansion: bool,
        fast_pretreatment: bool,
        model: str,
        extra_body: dict[str, Any],
        image_conn_id: str | None,
    ) -> None:
        """One planned request (the plan fills in every field): submit -> wait -> download."""
        submit = HailuoSubmitVideoOperator(
            task_id="submit",
            prompt=prompt,
            image_url=image_url,
            end_image_url=end_image_url,
            duration=duration,
            resolution=resolution,
            enable_prompt_expansion=enable_prompt_expansion,
            fast_pretreatment=fast_pretreatment,
            model=model,
            extra_body=extra_body,
            image_conn_id=image_conn_id,
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

    generate.expand_kwargs(plan.output)
