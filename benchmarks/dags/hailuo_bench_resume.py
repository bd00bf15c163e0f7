"""
Pipeline (a-resume) of ``benchmarks/bench_deployment.py``: pipeline (a)'s three tasks per video
(submit -> deferrable sensor -> download, a mapped task group), with the sensor resuming on a
worker after the wait (``end_from_trigger=False``) instead of ending in the triggerer. Side by side
with (a), it measures what ending a wait in the triggerer costs and saves on this deployment.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task, task_group

from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator, HailuoSubmitVideoOperator
from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

POLL_INTERVAL = float(os.environ.get("HAILUO_POLL_INTERVAL", "10"))

with DAG(
    dag_id="hailuo_bench_resume",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["hailuo", "benchmark"],
    default_args={"retries": 2},
    params={
        "prompts": Param([], type="array", items={"type": "string"}),
        "destination": Param("file:///tmp/hailuo/bench-resume/", type="string"),
    },
):

    @task
    def load_prompts() -> list[str]:
        return list(get_current_context()["params"]["prompts"])

    @task_group
    def generate(prompt: str) -> None:
        submit = HailuoSubmitVideoOperator(task_id="submit", prompt=prompt, duration=6, resolution="768P")
        wait = HailuoTaskSensor(
            task_id="wait",
            hailuo_task_id=submit.output,
            poll_interval=POLL_INTERVAL,
            end_from_trigger=False,
            timeout=3600,
        )
        download = HailuoDownloadVideoOperator(
            task_id="download", hailuo_task_id=submit.output, destination="{{ params.destination }}"
        )
        wait >> download

    generate.expand(prompt=load_prompts())
