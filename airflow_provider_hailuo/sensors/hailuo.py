"""
HailuoTaskSensor: wait for a generation to finish and return its result.

Every mode (deferrable, poke, reschedule) ends the same way for the same cause:

============================  =============================================  =================
cause                         task outcome                                   with ``soft_fail``
============================  =============================================  =================
video ready                   success, XCom = the task result                success
generation failed             failed, not retried (a retry pays again)       skipped
no result by ``timeout``      failed (``AirflowSensorTimeout``, last status) skipped
key refused (401/403)         failed, not retried                            skipped
unknown task after grace      failed, not retried                            skipped
unexpected error              failed, retried by Airflow's ``retries``       failed, retried
============================  =============================================  =================
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
)

from airflow_provider_hailuo.api import HailuoValidationError, TaskResult
from airflow_provider_hailuo.compat import first_reschedule_time, parse_first_reschedule_date
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.rendered import rendered_task_id
from airflow_provider_hailuo.triggers.hailuo import HailuoTaskTrigger, next_poll_delay
from airflow_provider_hailuo.wait import WaitOutcome, generation_failed, judge_read, result_of_event

#: Extra time Airflow's own deferral timeout allows past the trigger's deadline, so the trigger's
#: clearer "not finished after N s (last status: ...)" message is the one users see.
DEFERRAL_GRACE = timedelta(minutes=5)


class HailuoTaskSensor(BaseSensorOperator):
    """
    Wait for a Hailuo task and return its result (``{"task_id", "status", "videos": [...], ...}``).

    Deferrable: one read on the worker, then the wait moves to the triggerer, so thousands of
    waiting videos hold no worker slot (``end_from_trigger=True`` also ends a success there, at the
    cost described below). The module docstring's table says how each mode ends.

    :param hailuo_task_id: the service's task id (templated; usually the submit task's XCom).
    :param hailuo_conn_id: the ``hailuo`` connection.
    :param poll_interval: shortest pause between reads, in seconds.
    :param max_poll_interval: longest pause between reads when the service's ``eta`` is large.
    :param timeout: give up after this many seconds (default one hour).
    :param not_found_grace: for this many seconds after the wait first started, "no such task"
        means "not visible yet" (a freshly queued task), and a success without a video means "not
        quite finished"; afterwards both fail the task.
    :param end_from_trigger: end a successful deferred wait in the triggerer (``TaskSuccessEvent``,
        the result pushed as its XCom there), so a worker runs the sensor once, not twice. Off by
        default: Airflow 3.x's triggerer stores such an XCom JSON-encoded a second time, so a
        downstream task pulling ``wait.output`` gets the result as text, not a dict (Airflow 2.11
        stores it like a worker does). Turn it on where nothing pulls the sensor's XCom (the
        example DAGs' download reads the submit's).
    :param deferrable: wait in the triggerer (default True: waiting holds no worker slot unless
        asked). ``False`` waits on the worker, in ``mode="poke"`` or ``"reschedule"``.
    """

    template_fields: Sequence[str] = ("hailuo_task_id",)
    ui_color = "#f0e4ff"

    def __init__(
        self,
        *,
        hailuo_task_id: str,
        hailuo_conn_id: str = HailuoHook.default_conn_name,
        poll_interval: float = 10.0,
        max_poll_interval: float = 60.0,
        timeout: float | timedelta = 3600,
        not_found_grace: float = 60.0,
        deferrable: bool = True,
        end_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(timeout=timeout, **kwargs)
        self.hailuo_task_id = hailuo_task_id
        self.hailuo_conn_id = hailuo_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger
        self.not_found_grace = not_found_grace
        self._started_at: float | None = None
        self._last_result: TaskResult | None = None

    @cached_property
    def hook(self) -> HailuoHook:
        return HailuoHook(self.hailuo_conn_id)

    def _wait_started_at(self, context: Any) -> float:
        """When this wait began: in reschedule mode the first try's start, which survives reschedules."""
        if self._started_at is None:
            first = first_reschedule_time(context) if self.reschedule else None
            self._started_at = first if first is not None else time.time()
        return self._started_at

    def _check_task_id(self) -> str:
        try:
            return rendered_task_id(self.hailuo_task_id)
        except HailuoValidationError as err:
            raise AirflowFailException(str(err)) from err

    def poke(self, context: Any) -> bool | PokeReturnValue:
        task_id = self._check_task_id()
        started_at = self._wait_started_at(context)
        in_grace = time.time() - started_at < self.not_found_grace
        read: TaskResult | BaseException
        try:
            read = self.hook.get_task_result(task_id)
        except Exception as err:
            read = err
        verdict = judge_read(task_id, read, in_grace=in_grace)
        if isinstance(read, BaseException):
            if verdict.missed:
                self.log.warning("Hailuo task %s: poll failed (%s); will poll again", task_id, read)
                return False
            if verdict.outcome is WaitOutcome.FATAL:  # key refused, unknown task...: cannot heal
                raise AirflowFailException(verdict.message) from read
            raise read  # unexpected: Airflow's retries apply
        self._last_result = read
        self.log.info("Hailuo %s", read.describe())
        if verdict.outcome is WaitOutcome.FAILED:
            raise generation_failed(task_id, read.reason)
        if verdict.outcome is WaitOutcome.SUCCESS:
            return PokeReturnValue(is_done=True, xcom_value=read.to_xcom())
        if verdict.outcome is WaitOutcome.FATAL:
            raise AirflowFailException(verdict.message)
        if read.succeeded:
            self.log.warning("Hailuo task %s: succeeded but lists no video yet; polling again", task_id)
        return False

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            if self.reschedule:
                parse_first_reschedule_date(context)  # Airflow 3.0's base sensor needs it too
            try:
                return super().execute(context)
            except AirflowSensorTimeout as err:
                raise AirflowSensorTimeout(f"{err} (last status: {self._last_status()})") from err
        started_at = self._wait_started_at(context)
        try:
            poked = self.poke(context)
        except AirflowFailException as err:
            # The same soft_fail rule as the base sensor applies to a poke in poke mode.
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {err}") from err
            raise
        if isinstance(poked, PokeReturnValue):
            return poked.xcom_value
        deadline = started_at + self.timeout
        eta = self._last_result.eta if self._last_result else None
        first_poll_at = time.time() + next_poll_delay(eta, self.poll_interval, self.max_poll_interval)
        self.log.info("Deferring: waiting for Hailuo task %s in the triggerer", self.hailuo_task_id)
        self.defer(
            trigger=HailuoTaskTrigger(
                hailuo_task_id=str(self.hailuo_task_id),
                hailuo_conn_id=self.hailuo_conn_id,
                deadline=deadline,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
                started_at=started_at,
                not_found_grace=self.not_found_grace,
                first_poll_at=first_poll_at,
                end_from_trigger=self.end_from_trigger,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    def _last_status(self) -> str:
        return self._last_result.status if self._last_result else "never read"

    def execute_complete(self, context: Any, event: dict[str, Any] | str) -> dict[str, Any]:
        """Turn the trigger's event into the outcome a poke would have had (the module's table)."""
        if isinstance(event, str):
            # A success the trigger ended the task with, handed back by a runner that resumes the
            # task anyway (``dag.test()``) without its XCom: read the finished task once for it.
            return self.hook.get_task_result(self._check_task_id()).to_xcom()
        result = result_of_event(event, str(self.hailuo_task_id))
        self.log.info("Hailuo task %s succeeded", result.get("task_id", self.hailuo_task_id))
        return result
