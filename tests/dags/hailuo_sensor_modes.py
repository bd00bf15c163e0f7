"""
One sensor per (mode, soft_fail, timeout) so a test can run the same case through every mode.

The task id comes from the run's conf (``{"task_id": ...}``), so one DAG serves every case.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

MODES = ("deferrable", "poke", "reschedule")
SHORT_TIMEOUT = 2.0
LONG_TIMEOUT = 30.0


def dag_id(mode: str, soft_fail: bool, short_timeout: bool) -> str:
    return f"hailuo_sensor_{mode}{'_soft' if soft_fail else ''}{'_short' if short_timeout else ''}"


for _mode in MODES:
    for _soft in (False, True):
        for _short in (False, True):
            with DAG(
                dag_id(_mode, _soft, _short),
                schedule=None,
                start_date=datetime(2026, 1, 1),
                catchup=False,
                # One retry allowed: the outcomes that must not be retried show a single try.
                default_args={"retries": 1, "retry_delay": timedelta(0)},
            ) as _dag:
                HailuoTaskSensor(
                    task_id="wait",
                    hailuo_task_id="{{ dag_run.conf['task_id'] }}",
                    poll_interval=0.2,
                    max_poll_interval=0.5,
                    timeout=SHORT_TIMEOUT if _short else LONG_TIMEOUT,
                    not_found_grace=1.0,
                    soft_fail=_soft,
                    deferrable=_mode == "deferrable",
                    mode="reschedule" if _mode == "reschedule" else "poke",
                )
            globals()[_dag.dag_id] = _dag

# The deferrable sensor that always resumes on a worker (``end_from_trigger=False``): it reads the
# task once before deferring, since finding it finished saves the deferral and the second run.
with DAG(
    "hailuo_sensor_deferrable_resume",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
) as resume_dag:
    HailuoTaskSensor(
        task_id="wait",
        hailuo_task_id="{{ dag_run.conf['task_id'] }}",
        poll_interval=0.2,
        max_poll_interval=0.5,
        timeout=LONG_TIMEOUT,
        end_from_trigger=False,
    )
