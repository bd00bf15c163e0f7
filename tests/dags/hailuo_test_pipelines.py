"""DAGs only the tests run: a crash right after the paid submit, task mapping, where mapped videos land."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Asset, Param, get_current_context, task, task_group

from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator, HailuoSubmitVideoOperator
from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor


class SubmitThenCrashOnFirstTry(HailuoSubmitVideoOperator):
    """Dies on its first try right after the submit was paid for, as a worker killed there would."""

    def poll_until_complete(self, external_id: Any, context: Any) -> str:
        if context["ti"].try_number == 1:
            raise RuntimeError(f"simulated crash after submitting {external_id}")
        return super().poll_until_complete(external_id, context)


with DAG("hailuo_test_resume", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as resume:
    submit = SubmitThenCrashOnFirstTry(
        task_id="submit", prompt="a crash-safe video", retries=2, retry_delay=timedelta(0)
    )
    HailuoTaskSensor(task_id="wait", hailuo_task_id=submit.output, poll_interval=0.2, deferrable=True)


with DAG("hailuo_test_mapped", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as mapped:
    submits = HailuoSubmitVideoOperator.partial(task_id="submit", duration=10).expand(
        prompt=["first prompt", "second prompt", "third prompt"]
    )
    HailuoTaskSensor.partial(task_id="wait", poll_interval=0.2, deferrable=True).expand(
        hailuo_task_id=submits.output
    )


with DAG("hailuo_test_poke", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as poke:
    submit = HailuoSubmitVideoOperator(task_id="submit", prompt="waited for on the worker")
    HailuoTaskSensor(task_id="wait", hailuo_task_id=submit.output, poll_interval=0.2, deferrable=False)
    HailuoTaskSensor(
        task_id="wait_rescheduled",
        hailuo_task_id=submit.output,
        poll_interval=0.5,
        deferrable=False,
        mode="reschedule",
    )


LANDED = Asset("hailuo://landed-videos")

with DAG("hailuo_test_asset", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as asset:
    submit = HailuoSubmitVideoOperator(task_id="submit", prompt="{{ params.prompt }}", params={"prompt": "p"})
    wait = HailuoTaskSensor(task_id="wait", hailuo_task_id=submit.output, poll_interval=0.2, deferrable=True)
    download = HailuoDownloadVideoOperator(
        task_id="download",
        hailuo_task_id=submit.output,
        destination="{{ params.destination }}",
        # No default: the test gives a folder of its own (run conf), never a shared /tmp path.
        params={"destination": Param(type="string", description="folder URI the video lands in")},
        outlets=[LANDED],
    )
    wait >> download


class SubmitThenCrashBeforeTheIdIsStored(HailuoSubmitVideoOperator):
    """Dies on its first try after the service accepted the submit, before the id is stored."""

    def submit_job(self, context: Any) -> str:
        task_id = super().submit_job(context)
        if context["ti"].try_number == 1:
            raise RuntimeError(f"simulated crash after buying {task_id}, before storing it")
        return task_id


with DAG(
    "hailuo_test_crash_before_store", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
) as crash_before_store:
    SubmitThenCrashBeforeTheIdIsStored(
        task_id="submit", prompt="the window the guarantee leaves", retries=1, retry_delay=timedelta(0)
    )


class QuickReadsAfterACrash(SubmitThenCrashOnFirstTry):
    """The crash of ``resume``, with short backoff so a failing read of the stored task ends fast."""

    @cached_property
    def hook(self) -> HailuoHook:
        return HailuoHook(
            self.hailuo_conn_id, timeout=(2.0, 0.5), retry_limit=3, retry_min_wait=0.01, retry_max_wait=0.05
        )


with DAG(
    "hailuo_test_resume_reads_fail", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
) as resume_reads_fail:
    QuickReadsAfterACrash(task_id="submit", prompt="read back", retries=3, retry_delay=timedelta(0))


with DAG(
    "hailuo_test_mapped_destinations",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"destination": Param(type="string", description="folder URI ending in '/'")},
) as mapped_destinations:
    submits = HailuoSubmitVideoOperator.partial(task_id="submit").expand(prompt=["first", "second"])
    waits = HailuoTaskSensor.partial(task_id="wait", poll_interval=0.2, deferrable=True).expand(
        hailuo_task_id=submits.output
    )
    downloads = HailuoDownloadVideoOperator.partial
    # One object for every map index: refused before anything is downloaded.
    one_object = downloads(task_id="one_object", destination="{{ params.destination }}clip.mp4").expand(
        hailuo_task_id=submits.output
    )

    @task_group
    def in_a_mapped_group(hailuo_task_id: str) -> None:
        HailuoDownloadVideoOperator(
            task_id="download", hailuo_task_id=hailuo_task_id, destination="{{ params.destination }}group.mp4"
        )

    grouped = in_a_mapped_group.expand(hailuo_task_id=submits.output)
    # One object per map index: a folder (no .mp4 at the end), the map index in the name, expanded.
    folder = downloads(task_id="folder", destination="{{ params.destination }}folder").expand(
        hailuo_task_id=submits.output
    )
    per_index = downloads(
        task_id="per_index", destination="{{ params.destination }}clip-{{ ti.map_index }}.mp4"
    ).expand(hailuo_task_id=submits.output)
    expanded = downloads(
        task_id="expanded", hailuo_task_id="{{ ti.xcom_pull(task_ids='submit', map_indexes=ti.map_index) }}"
    ).expand(destination=["{{ params.destination }}a.mp4", "{{ params.destination }}b.mp4"])
    waits >> [one_object, grouped, folder, per_index, expanded]


with DAG(
    "hailuo_test_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(0)},
    params={
        "prompts": Param(type="array", items={"type": "string"}),
        "destination": Param(type="string", description="folder URI ending in '/'"),
    },
) as batch:
    # One batch, stage by stage: the submits of every prompt, then the waits, then the downloads.
    @task
    def prompts() -> list[str]:
        return list(get_current_context()["params"]["prompts"])

    submits = HailuoSubmitVideoOperator.partial(task_id="submit").expand(prompt=prompts())
    waits = HailuoTaskSensor.partial(task_id="wait", poll_interval=0.2, deferrable=True).expand(
        hailuo_task_id=submits.output
    )
    landed = HailuoDownloadVideoOperator.partial(
        task_id="download", destination="{{ params.destination }}", video_checks="off", poster=False
    ).expand(hailuo_task_id=submits.output)
    waits >> landed
