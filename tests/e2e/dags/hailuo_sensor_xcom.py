"""
submit -> deferrable sensor -> a task that pulls the sensor's XCom -> download from that XCom.

The example DAG's download reads the submit's XCom; here everything downstream of the wait uses
the sensor's own result, as a user's DAG may, so the e2e test sees what a downstream task reads
when the sensor ended in the triggerer.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator, HailuoSubmitVideoOperator
from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

DAG_ID = "hailuo_sensor_xcom"

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"prompt": "a heron on one leg", "destination": ""},
) as dag:
    submit = HailuoSubmitVideoOperator(task_id="submit", prompt="{{ params.prompt }}", duration=6)
    wait = HailuoTaskSensor(
        task_id="wait",
        hailuo_task_id=submit.output,
        poll_interval=float(os.environ.get("HAILUO_POLL_INTERVAL", "10")),
        deferrable=True,
        timeout=600,
    )

    @task
    def inspect(result: Any) -> dict[str, Any]:
        """What a downstream task gets from ``wait.output``: its type, and the task id in it."""
        task_id = result["task_id"] if isinstance(result, dict) else None
        return {"type": type(result).__name__, "task_id": task_id}

    seen = inspect(wait.output)
    download = HailuoDownloadVideoOperator(
        task_id="download",
        hailuo_task_id="{{ ti.xcom_pull(task_ids='wait')['task_id'] }}",
        destination="{{ params.destination }}",
    )
    seen >> download
