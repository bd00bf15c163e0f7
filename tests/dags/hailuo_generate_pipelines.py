"""DAGs only the tests run: the one-task generate operator, mapped, and crashing after it paid."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_hailuo.operators.hailuo import HailuoGenerateVideoOperator

START = datetime(2026, 1, 1)
DESTINATION = Param(type="string", description="folder URI ending in '/'")

with DAG(
    "hailuo_test_generate",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"destination": DESTINATION},
) as generate:
    HailuoGenerateVideoOperator.partial(
        task_id="generate", destination="{{ params.destination }}", poll_interval=0.3
    ).expand(prompt=["a lighthouse in a storm", "a koi pond in autumn"])

    @task
    def requests() -> list[dict[str, Any]]:
        return [{"prompt": "a robot watering plants", "duration": 6}, {"prompt": "a fox", "duration": 10}]

    HailuoGenerateVideoOperator.partial(
        task_id="generate_kwargs", destination="{{ params.destination }}kwargs/", poll_interval=0.3
    ).expand_kwargs(requests())


with DAG(
    "hailuo_test_generate_on_worker",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"destination": DESTINATION},
) as on_worker:
    HailuoGenerateVideoOperator(
        task_id="generate",
        prompt="waited for on the worker",
        destination="{{ params.destination }}",
        poll_interval=0.3,
        deferrable=False,
    )


class CrashWhileLandingOnTheFirstTry(HailuoGenerateVideoOperator):
    """Dies on its first try after the wait, as a worker killed while landing would."""

    def _land(self, context: Any) -> dict[str, Any]:
        if context["ti"].try_number == 1:
            raise RuntimeError(f"simulated crash while landing {self.hailuo_task_id}")
        return super()._land(context)


with DAG(
    "hailuo_test_generate_crash",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"destination": DESTINATION},
) as crash:
    CrashWhileLandingOnTheFirstTry(
        task_id="generate",
        prompt="paid once, landed by the retry",
        destination="{{ params.destination }}",
        poll_interval=0.3,
        retries=1,
        retry_delay=timedelta(0),
    )
