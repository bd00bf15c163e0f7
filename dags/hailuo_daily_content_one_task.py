"""
Daily content, one task per video: the same run as ``hailuo_daily_content`` with
``HailuoGenerateVideoOperator`` (validate -> pay once -> wait in the triggerer -> land) instead of
submit -> wait -> download. A third of the task instances, the same guarantees on Airflow 3.3; on
older Airflow lines an Airflow retry of a video's task buys it again (the README says when to
prefer the three-task DAG).

Prompts come from the run's ``prompts`` param, or else from ``prompts.txt`` beside this file.
Videos land under the ``destination`` param (default ``$HAILUO_VIDEO_DESTINATION``, else
``file:///tmp/hailuo/videos/``), then ``<date>/<task_id>.mp4``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

from airflow_provider_hailuo.operators.hailuo import HailuoGenerateVideoOperator

PROMPTS_FILE = Path(__file__).with_name("prompts.txt")
POLL_INTERVAL = float(os.environ.get("HAILUO_POLL_INTERVAL", "10"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("HAILUO_RETRY_DELAY_SECONDS", "30")))

with DAG(
    dag_id="hailuo_daily_content_one_task",
    description="Generate the day's videos with MiniMax Hailuo-02, one task per video",
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

    HailuoGenerateVideoOperator.partial(
        task_id="generate",
        duration="{{ params.duration }}",
        resolution="{{ params.resolution }}",
        # run_after, not ds: manual and API-triggered runs have no logical date in Airflow 3.
        destination="{{ params.destination }}"
        "{{ (dag_run.run_after if dag_run.run_after is defined else dag_run.logical_date) | ds }}/",
        storage_conn_id="{{ params.storage_conn_id or '' }}",
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    ).expand(prompt=load_prompts())
