"""
How a wait for a generation ends, decided in one place for every mode.

The sensor (poke and reschedule, on a worker) and the trigger (deferrable, in the triggerer) read
the same task in different runtimes; what a read means is the same for both: a pure function of the
read's result or error and of whether the wait is still in its grace period.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from airflow_provider_hailuo.api import HailuoAPIError, TaskResult
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
