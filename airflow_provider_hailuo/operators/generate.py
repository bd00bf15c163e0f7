"""
HailuoGenerateVideoOperator: one task per video — validate, pay once, wait in the triggerer, land.

The three-task pipeline (submit → sensor → download) is the right shape when the steps are wired
separately; most DAGs only want the video. Every task instance costs the deployment scheduling,
a worker process and a start-up, so one task per video is about a third of the machinery. It is
made of the same pieces, not copies: the submit operator's request, rules and single paid submit
(its durable id on Airflow 3.3), the trigger and the wait's verdicts, the download's landing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout, ObjectStoragePath

from airflow_provider_hailuo.api import HailuoDownloadError, HailuoError
from airflow_provider_hailuo.hooks.retry import is_retryable_read
from airflow_provider_hailuo.manifest import REQUEST_XCOM_KEY
from airflow_provider_hailuo.operators.download import HailuoDownloadVideoOperator
from airflow_provider_hailuo.operators.submit import HailuoSubmitVideoOperator
from airflow_provider_hailuo.triggers.hailuo import HailuoTaskTrigger, next_poll_delay
from airflow_provider_hailuo.wait import WaitOutcome, generation_failed, judge_read, result_of_event

#: Extra time Airflow's own deferral timeout allows past the trigger's deadline, so the trigger's
#: clearer "not finished after N s" message is the one users see.
DEFERRAL_GRACE = timedelta(minutes=5)
#: Landings tried within one try where an Airflow retry would buy a new video (below Airflow 3.3,
#: or ``durable=False``): the paid video is fetched again rather than bought again.
LANDING_ATTEMPTS = 3
LANDING_BACKOFF_S = 5.0


class HailuoGenerateVideoOperator(HailuoSubmitVideoOperator, HailuoDownloadVideoOperator):
    """
    Generate one video and land it: validate → submit once → wait (in the triggerer by default)
    → stream, check, poster, manifest, commit.

    Takes the submit's request arguments (``prompt``, ``image_url``, ``end_image_url``,
    ``duration``, ``resolution``, ``enable_prompt_expansion``, ``fast_pretreatment``, ``model``,
    ``extra_body``, ``image_conn_id``, ``max_cost``), the download's (``destination``, ``storage_conn_id``,
    ``video_checks``, ``poster``, ``manifest``, ``overwrite``) and the wait's. Returns the
    download's XCom with the service's ``task_id`` and the validated ``request``.

    **Money.** The service's task id is kept in ``task_state_store`` the moment it is known
    (Airflow 3.3+), so a retry of this task — during the wait or the landing — reuses the paid
    video. Below 3.3 Airflow has no such store and a retry buys a new video: there the landing is
    retried within the try instead (``LANDING_ATTEMPTS``), and the README says to prefer the
    three-task pipeline where Airflow retries must never buy.

    :param poll_interval: shortest pause between reads, in seconds.
    :param max_poll_interval: longest pause when the service's ``eta`` is large.
    :param timeout: give up waiting after this many seconds (default one hour).
    :param not_found_grace: seconds after the submit during which "no such task" and a success
        without a video mean "not visible yet".
    :param deferrable: wait in the triggerer (default True); False waits on the worker.
    """

    template_fields: Sequence[str] = (
        *HailuoSubmitVideoOperator.template_fields,
        "destination",
        "storage_conn_id",
    )
    template_fields_renderers = {"prompt": "md", "extra_body": "json"}
    ui_color = "#e0dcff"

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        poll_interval: float = 10.0,
        max_poll_interval: float = 60.0,
        timeout: float | timedelta = 3600,
        not_found_grace: float = 60.0,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(hailuo_task_id="", destination=destination, **kwargs)
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.wait_timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.not_found_grace = not_found_grace
        self.deferrable = deferrable

    # ----------------------------------------------------------------------------------------------
    # submit, then wait
    # ----------------------------------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        task_id = HailuoSubmitVideoOperator.execute(self, context)  # validated, paid once
        self.hailuo_task_id = task_id
        started_at = time.time()
        if not self.deferrable:
            self._wait_on_the_worker(task_id, started_at)
            return self._land(context)
        # Just submitted: nothing can be ready yet, so the first read is the trigger's, a poll
        # interval later (a retry that reconnected to a finished video waits that long, once).
        self.log.info("Deferring: waiting for Hailuo task %s in the triggerer", task_id)
        self.defer(
            trigger=HailuoTaskTrigger(
                hailuo_task_id=task_id,
                hailuo_conn_id=self.hailuo_conn_id,
                deadline=started_at + self.wait_timeout,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
                started_at=started_at,
                not_found_grace=self.not_found_grace,
                first_poll_at=started_at + self.poll_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.wait_timeout) + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """The trigger's verdict, as the sensor would take it; a finished video is landed."""
        result = result_of_event(event, str(event.get("task_id") or ""))
        self.hailuo_task_id = str(result.get("task_id") or event.get("task_id"))
        return self._land(context)

    def _wait_on_the_worker(self, task_id: str, started_at: float) -> None:
        """``deferrable=False``: the same reads and verdicts, with the worker slot held."""
        while True:
            try:
                read: Any = self.hook.get_task_result(task_id)
            except Exception as err:
                read = err
            verdict = judge_read(task_id, read, in_grace=time.time() - started_at < self.not_found_grace)
            if verdict.outcome is WaitOutcome.SUCCESS:
                return
            if verdict.outcome is WaitOutcome.FAILED:
                raise generation_failed(task_id, verdict.message)
            if verdict.outcome is WaitOutcome.FATAL:
                raise AirflowFailException(verdict.message)
            if verdict.outcome is WaitOutcome.ERROR:
                raise read
            if time.time() - started_at >= self.wait_timeout:
                status = getattr(read, "status", "never read")
                raise AirflowSensorTimeout(
                    f"Hailuo task {task_id} not finished after {self.wait_timeout:.0f}s "
                    f"(last status: {status})"
                )
            eta = getattr(read, "eta", None)
            time.sleep(next_poll_delay(eta, self.poll_interval, self.max_poll_interval))

    # ----------------------------------------------------------------------------------------------
    # land
    # ----------------------------------------------------------------------------------------------
    def known_request(self, context: Any) -> dict[str, Any] | None:
        """The request this task published before it paid (the same try, before the deferral)."""
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is None:
            return None
        map_index = getattr(ti, "map_index", -1)
        try:
            record = ti.xcom_pull(
                task_ids=self.task_id,
                key=REQUEST_XCOM_KEY,
                map_indexes=-1 if map_index is None else map_index,
            )
        except Exception as err:  # an XCom backend's error must not fail a video that arrived
            self.log.warning("Could not read this task's request: %s", err)
            return None
        return dict(record) if isinstance(record, Mapping) else None

    def _land(self, context: Any) -> dict[str, Any]:
        """
        The download's landing; where an Airflow retry would buy again, a failed landing is tried
        again here first (the video is paid for: fetching it again is free).
        """
        attempts = 1 if getattr(self, "durable", False) else LANDING_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                summary = HailuoDownloadVideoOperator.execute(self, context)
            except HailuoError as err:
                if (
                    not (isinstance(err, HailuoDownloadError) or is_retryable_read(err))
                    or attempt == attempts
                ):
                    raise
                self.log.warning(
                    "Landing task %s failed (%s); trying again (%d of %d) rather than buying it again",
                    self.hailuo_task_id,
                    err,
                    attempt + 1,
                    attempts,
                )
                time.sleep(LANDING_BACKOFF_S * attempt)
                continue
            return {**summary, "request": self._known}
        raise AssertionError("unreachable")
