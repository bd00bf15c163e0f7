"""
A DAG only the vendor tests run: one submit and one wait, every request field a run param.

The same DAG runs against each vendor's emulator (the connection chooses the vendor), so what the
tests compare is what arrived at each service, not what each DAG asked for. Both tasks have
retries, so a test can tell "failed at once" (one try) from "retried" (more than one).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath, Param

from airflow_provider_hailuo.operators.hailuo import HailuoSubmitVideoOperator
from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

#: The `aws` connection of the loopback S3 server (tests/support/s3.py).
S3_CONN_ID = "hailuo_test_s3"

with DAG(
    "hailuo_test_vendor_submit_wait",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(0)},
    params={
        "prompt": Param("a paper boat on a rainy street", type="string"),
        "image_url": Param(None, type=["null", "string"]),
        "end_image_url": Param(None, type=["null", "string"]),
        "model": Param("hailuo-02", type="string"),
        "duration": Param(6, type="integer"),
        "resolution": Param("768P", type="string"),
    },
) as submit_wait:
    submit = HailuoSubmitVideoOperator(
        task_id="submit",
        prompt="{{ params.prompt }}",
        image_url="{{ params.image_url }}",
        end_image_url="{{ params.end_image_url }}",
        model="{{ params.model }}",
        duration="{{ params.duration }}",
        resolution="{{ params.resolution }}",
        image_conn_id=S3_CONN_ID,
    )
    HailuoTaskSensor(
        task_id="wait", hailuo_task_id=submit.output, poll_interval=0.2, deferrable=True, timeout=120
    )


#: Where the ObjectStoragePath DAG's first frame is; the test sets it before loading this file.
FRAME_PATH = os.environ.get("HAILUO_TEST_FRAME_PATH")

# Built only when asked for: an ObjectStoragePath attaches its store when it is constructed, and
# Airflow caches that store per (protocol, conn_id) for the process. Built while the S3 connection
# is not defined (any other test loading this file), it would leave a store aimed at real AWS in
# the cache for every later test that uses the same connection id.
if FRAME_PATH:
    with DAG(
        "hailuo_test_vendor_object_storage_path",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args={"retries": 2, "retry_delay": timedelta(0)},
    ) as object_storage_path:
        # An ObjectStoragePath that carries its own connection: image_conn_id is not needed.
        osp_submit = HailuoSubmitVideoOperator(
            task_id="submit",
            prompt="a frame from a bucket",
            image_url=ObjectStoragePath(FRAME_PATH, conn_id=S3_CONN_ID),
        )
        HailuoTaskSensor(
            task_id="wait", hailuo_task_id=osp_submit.output, poll_interval=0.2, deferrable=True, timeout=120
        )
