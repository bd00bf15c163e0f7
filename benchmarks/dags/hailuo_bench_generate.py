"""
Pipeline (b) of ``benchmarks/bench_deployment.py``: the one-task ``HailuoGenerateVideoOperator``
(submit -> defer -> resume -> land in one task), mapped over the run's prompts, landing where the
run's ``destination`` param says. The benchmark adds this folder to the deployment only when the
operator exists in the product.

"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

from airflow_provider_hailuo.operators.hailuo import HailuoGenerateVideoOperator

POLL_INTERVAL = float(os.environ.get("HAILUO_POLL_INTERVAL", "10"))

with DAG(
    dag_id="hailuo_bench_generate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["hailuo", "benchmark"],
    default_args={"retries": 2},
    params={
        "prompts": Param([], type="array", items={"type": "string"}),
        "destination": Param("file:///tmp/hailuo/bench-generate/", type="string"),
    },
):

    @task
    def load_prompts() -> list[str]:
        return list(get_current_context()["params"]["prompts"])

    HailuoGenerateVideoOperator.partial(
        task_id="generate",
        duration=6,
        resolution="768P",
        destination="{{ params.destination }}",
        poll_interval=POLL_INTERVAL,
    ).expand(prompt=load_prompts())
