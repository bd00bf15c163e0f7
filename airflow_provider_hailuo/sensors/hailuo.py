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
from airflow_provider_hailuo.compat import (
    first_reschedule_time,
    parse_first_reschedule_date,
    trigger_end,
)
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

    Deferrable: the wait moves to the triggerer, so thousands of waiting videos hold no worker
    slot. Where Airflow lets a trigger store the XCom exactly as a worker would (2.11, and 3.0.5+
    through 3.3: ``compat.trigger_end``), a successful wait also ends there: the sensor runs once
    on a worker (to defer, without reading the task first: the trigger reads at once) and a
    downstream task pulls the same dict a worker would have pushed. Elsewhere (3.0.0-3.0.4), and
    for every outcome other than success, the sensor resumes on a worker, which raises or returns
    as the module docstring's table says; there it reads the task once before deferring, since
    finding the video finished saves the deferral and the second run. Under ``dag.test()``, which
    runs triggers inline, it always resumes (one run, one read by the trigger).

    :param hailuo_task_id: the service's task id (templated; usually the submit task's XCom).
    :param hailuo_conn_id: the ``hailuo`` connection.
    :param poll_interval: shortest pause between reads, in seconds.
    :param max_poll_interval: longest pause between reads when the service's ``eta`` is large.
    :param timeout: give up after this many seconds (default one hour).
    :param not_found_grace: for this many seconds after the wait first started, "no such task"
        means "not visible yet" (a freshly queued task), and a success without a video means "not
        quite finished"; afterwards both fail the task.
    :param end_from_trigger: end a successful deferred wait in the triggerer where Airflow stores
        its XCom as a worker would (default True; see above). False always resumes the sensor on a
        worker after the wait (and reads the task once before deferring). The sensor also resumes
        where a worker's push does more than store the value: a downstream task mapped over this
        XCom (``expand``), ``multiple_outputs``, ``do_xcom_push=False``.
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
        end_from_trigger: bool = True,
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
        ends_in_triggerer = self._ends_in_triggerer()
        first_poll_at: float | None = None
        try:
            if ends_in_triggerer:
                # No read here: the trigger reads at once, and a finished video then ends in the
                # triggerer too, so a read here would only add a status read.
                self._check_task_id()
            else:
                # Where the task resumes on a worker after the wait, finding the video finished
                # now saves the deferral and that second run.
                poked = self.poke(context)
                if isinstance(poked, PokeReturnValue):
                    return poked.xcom_value
                eta = self._last_result.eta if self._last_result else None
                first_poll_at = time.time() + next_poll_delay(eta, self.poll_interval, self.max_poll_interval)
        except AirflowFailException as err:
            # The same soft_fail rule as the base sensor applies to a poke in poke mode.
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {err}") from err
            raise
        deadline = started_at + self.timeout
        self.log.info(
            "Deferring: waiting for Hailuo task %s in the triggerer (a success ends %s)",
            self.hailuo_task_id,
            "there" if ends_in_triggerer else "on a worker",
        )
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
                end_from_trigger=ends_in_triggerer,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    def _ends_in_triggerer(self) -> bool:
        """
        Whether a successful deferred wait can end in the triggerer with the XCom a worker would
        push: asked for, allowed by this Airflow (``compat.trigger_end``), and nothing a worker adds
        when it pushes (a downstream mapped over this XCom, ``multiple_outputs``, a DAG result).
        """
        if not (self.end_from_trigger and self.do_xcom_push and trigger_end() is not None):
            return False
        if self.multiple_outputs or getattr(self, "returns_dag_result", False):
            return False
        try:
            return next(self.iter_mapped_dependants(), None) is None
        except RuntimeError:  # not in a DAG: cannot tell, so resume on a worker
            return False

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
