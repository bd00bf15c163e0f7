"""
DAGs only the plan tests run: a batch from the run's conf, planned, then bought (or not).

``requests`` comes from a task, as a DAG that loads its prompts would have it (an XComArg); the
budget and the video limit are run params, rendered from templates like a user's would be.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

from airflow_provider_hailuo.operators.hailuo import (
    HailuoDownloadVideoOperator,
    HailuoPlanVideosOperator,
    HailuoSubmitVideoOperator,
)
from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

PARAMS = {
    "requests": Param([], type="array"),
    "max_total_cost": Param(None, type=["null", "number", "string"]),
    "max_videos": Param(None, type=["null", "integer"]),
}


@task
def load_requests() -> list[dict[str, Any]]:
    return list(get_current_context()["params"]["requests"])


def planned() -> HailuoPlanVideosOperator:
    return HailuoPlanVideosOperator(
        task_id="plan",
        requests=load_requests(),
        max_total_cost="{{ params.max_total_cost }}",
        max_videos="{{ params.max_videos }}",
    )


with DAG(
    "hailuo_test_plan_then_buy",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={**PARAMS, "destination": Param(type="string", description="folder URI ending in '/'")},
) as plan_then_buy:
    plan = planned()
    submits = HailuoSubmitVideoOperator.partial(task_id="submit").expand_kwargs(plan.output)
    waits = HailuoTaskSensor.partial(task_id="wait", poll_interval=0.2, deferrable=True).expand(
        hailuo_task_id=submits.output
    )
    downloads = HailuoDownloadVideoOperator.partial(
        task_id="download", destination="{{ params.destination }}"
    ).expand(hailuo_task_id=submits.output)
    waits >> downloads


with DAG(
    "hailuo_test_plan_only", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, params=PARAMS
) as plan_only:
    planned()


with DAG(
    "hailuo_test_submit_max_cost",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2},
    params={"max_cost": Param(None, type=["null", "number", "string"]), "resolution": Param("768P")},
) as submit_max_cost:
    HailuoSubmitVideoOperator(
        task_id="submit",
        prompt="one priced video",
        resolution="{{ params.resolution }}",
        max_cost="{{ params.max_cost }}",
    )
