"""HailuoTaskSensor: wait for a generation to finish and return its result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from airflow_provider_hailuo.api import TaskResult
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.hooks.retry import is_not_found, is_retryable_read
from airflow_provider_hailuo.triggers.hailuo import HailuoTaskTrigger, next_poll_delay

#: Extra time Airflow's own deferral timeout allows past the trigger's deadline, so the trigger's
#: clearer "not finished after N s (last status: ...)" message is the one users see.
DEFERRAL_GRACE = timedelta(minutes=5)


class HailuoTaskSensor(BaseSensorOperator):
    """
    Wait for a Hailuo task and return its result (``{"task_id", "status", "videos": [...], ...}``).

    Deferrable: one read on the worker, then the wait moves to the triggerer, so thousands of
    waiting videos hold no worker slot. A failed generation fails the task without retries (a retry
    would pay for the same failure); a timeout reports the elapsed time and the last status.

    :param hailuo_task_id: the service's task id (templated; usually the submit task's XCom).
    :param hailuo_conn_id: the ``hailuo`` connection.
    :param poll_interval: shortest pause between reads, in seconds.
    :param max_poll_interval: longest pause between reads when the service's ``eta`` is large.
    :param timeout: give up after this many seconds (default one hour).
    :param not_found_grace: for this many seconds after the wait starts, "no such task" means "not
        visible yet" (a freshly queued task); afterwards it fails the task.
    :param deferrable: wait in the triggerer. Default: ``[operators] default_deferrable`` (True when
        the option is absent). Stock Airflow sets that option to False, so pass ``deferrable=True``
        or set ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=true`` deployment-wide (the example DAGs
        pass it) unless a worker slot per waiting video is what you want.
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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(timeout=timeout, **kwargs)
        self.hailuo_task_id = hailuo_task_id
        self.hailuo_conn_id = hailuo_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.deferrable = deferrable
        self.not_found_grace = not_found_grace
        self._first_poke_at: float | None = None
        self._last_result: TaskResult | None = None

    @cached_property
    def hook(self) -> HailuoHook:
        return HailuoHook(self.hailuo_conn_id)

    def _outcome(self, result: TaskResult) -> dict[str, Any] | None:
        """The XCom value when finished well, None while running; raises for a failed generation."""
        if result.failed:
            raise _generation_failed(result.task_id, result.reason)
        if result.succeeded:
            self.log.info("Hailuo %s", result.describe())
            return result.to_xcom()
        self.log.info("Hailuo %s", result.describe())
        return None

    def poke(self, context: Any) -> bool | PokeReturnValue:
        if self._first_poke_at is None:
            self._first_poke_at = time.time()
        try:
            result = self.hook.get_task_result(self.hailuo_task_id)
        except Exception as err:
            fresh = time.time() - self._first_poke_at < self.not_found_grace
            if is_retryable_read(err) or (fresh and is_not_found(err)):
                self.log.warning(
                    "Hailuo task %s: poll failed (%s); will poll again", self.hailuo_task_id, err
                )
                return False
            raise
        self._last_result = result
        value = self._outcome(result)
        return PokeReturnValue(is_done=True, xcom_value=value) if value is not None else False

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started_at = time.time()
        poked = self.poke(context)
        if isinstance(poked, PokeReturnValue):
            return poked.xcom_value
        deadline = started_at + self.timeout
        eta = self._last_result.eta if self._last_result else None
        first_poll_at = time.time() + next_poll_delay(eta, self.poll_interval, self.max_poll_interval)
        self.log.info("Deferring: waiting for Hailuo task %s in the triggerer", self.hailuo_task_id)
        self.defer(
            trigger=HailuoTaskTrigger(
                hailuo_task_id=self.hailuo_task_id,
                hailuo_conn_id=self.hailuo_conn_id,
                deadline=deadline,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
                started_at=started_at,
                not_found_grace=self.not_found_grace,
                first_poll_at=first_poll_at,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        task_id = event.get("task_id", self.hailuo_task_id)
        if status == "success":
            self.log.info("Hailuo task %s succeeded", task_id)
            return event["result"]
        if status == "failed":
            raise _generation_failed(task_id, event.get("reason"))
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", f"Hailuo task {task_id} timed out"))
        message = event.get("message", f"unexpected trigger event for Hailuo task {task_id}")
        if event.get("fatal"):
            raise AirflowFailException(message)
        raise AirflowException(message)


def _generation_failed(task_id: str, reason: str | None) -> AirflowFailException:
    """Fail without retries, whether the worker or the trigger saw it: a retry pays for it again."""
    return AirflowFailException(
        f"Hailuo task {task_id} failed: {reason or 'no reason given'} "
        "(not retried: a retry would pay for the same failure)"
    )
