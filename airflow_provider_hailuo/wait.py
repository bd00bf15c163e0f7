"""
How a wait for a generation ends, decided in one place for every mode.

The sensor (poke and reschedule, on a worker) and the trigger (deferrable, in the triggerer) read
the same task in different runtimes; what a read means is the same for both: a pure function of the
read's result or error and of whether the wait is still in its grace period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout

from airflow_provider_hailuo.api import HailuoAPIError, HailuoError, TaskResult
from airflow_provider_hailuo.hooks.retry import is_not_found, is_retryable_read


class WaitOutcome(StrEnum):
    """How a wait ends (also the ``status`` of the trigger's one event)."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    #: Cannot heal by waiting or retrying: key refused, unknown task, success without a video.
    FATAL = "fatal"
    #: Unexpected trouble (a bug, say): the task fails and Airflow's retries apply.
    ERROR = "error"


@dataclass(frozen=True)
class ReadVerdict:
    """What one read means: ``outcome`` None is "keep waiting" (``missed`` when the read failed)."""

    outcome: WaitOutcome | None = None
    message: str = ""
    missed: bool = False


KEEP_WAITING = ReadVerdict()


def no_video_message(task_id: str) -> str:
    return (
        f"Hailuo task {task_id} reports success but lists no video, past the grace period: the "
        "service lost the result; the video cannot be downloaded"
    )


def unfinished_success(result: TaskResult) -> bool:
    """A success that lists no video yet: seen from real services; read again, do not download."""
    return result.succeeded and not result.has_video


def judge_read(task_id: str, read: TaskResult | BaseException, *, in_grace: bool) -> ReadVerdict:
    """
    The verdict on one read of ``task_id``: its result, or the error it raised.

    A failed read is a missed poll when it may heal (network trouble, 429, 5xx, a garbled answer,
    or "no such task" shortly after the submit); an answer that cannot heal (key refused, unknown
    task after the grace period) is fatal; anything else is unexpected, left to Airflow's retries.
    A generation the service failed is final: a retry would pay for it again.
    """
    if isinstance(read, BaseException):
        if is_retryable_read(read) or (in_grace and is_not_found(read)):
            return ReadVerdict(missed=True, message=str(read))
        if isinstance(read, HailuoAPIError):
            return ReadVerdict(WaitOutcome.FATAL, str(read))
        return ReadVerdict(WaitOutcome.ERROR, str(read))
    if read.failed:
        return ReadVerdict(WaitOutcome.FAILED, read.reason)
    if read.succeeded and not unfinished_success(read):
        return ReadVerdict(WaitOutcome.SUCCESS)
    if read.succeeded and not in_grace:
        return ReadVerdict(WaitOutcome.FATAL, no_video_message(task_id))
    return KEEP_WAITING


def generation_failed(task_id: str, reason: str | None) -> AirflowFailException:
    """Fail without retries, whether a worker or the trigger saw it: a retry pays for it again."""
    return AirflowFailException(
        f"Hailuo task {task_id} failed: {reason or 'no reason given'} "
        "(not retried: a retry would pay for the same failure)"
    )


def result_of_event(event: Mapping[str, Any], task_id: str) -> dict[str, Any]:
    """
    The finished task's result from the trigger's event, or the exception its outcome means: the
    same as a read on a worker would have raised (the README's "how a wait ends" table).
    """
    status = event.get("status")
    task_id = str(event.get("task_id") or task_id)
    message = str(event.get("message") or f"Hailuo task {task_id}: {status}")
    if status == WaitOutcome.SUCCESS:
        return dict(event["result"])
    if status == WaitOutcome.FAILED:
        raise generation_failed(task_id, event.get("reason"))
    if status == WaitOutcome.TIMEOUT:
        raise AirflowSensorTimeout(message)
    if status == WaitOutcome.FATAL:
        raise AirflowFailException(message)
    # Unexpected trouble: not an Airflow exception, so Airflow's retries apply, as on a worker.
    raise HailuoError(message)
