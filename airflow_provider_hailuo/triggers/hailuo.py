"""
HailuoTaskTrigger: waits for a generation in the triggerer, so no worker slot is held meanwhile.

Unlike the pattern it follows (the dbt Cloud trigger), it polls through one process-wide HTTP
session, paces itself by the service's own ``eta``, and treats a failed poll as a missed poll, not a
failed video: only the deadline, a finished task, or an error that cannot heal (bad key, unknown
task) ends the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any, cast

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_hailuo.api import HailuoAPIError, HailuoAuthError, TaskResult
from airflow_provider_hailuo.compat import end_task_in_trigger
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.wait import WaitOutcome, judge_read

__all__ = ["HailuoTaskTrigger", "WaitOutcome", "backoff_delay", "next_poll_delay"]


#: Missed polls beyond this many no longer double the pause (it is at ``max_poll_interval`` long
#: before); capping the exponent keeps ``2 ** n`` from overflowing after a day-long outage.
MAX_BACKOFF_EXPONENT = 16


def backoff_delay(missed_polls: int, min_interval: float, max_interval: float) -> float:
    """Pause after ``missed_polls`` failed reads in a row: doubling from ``min_interval``, capped."""
    exponent = min(max(missed_polls - 1, 0), MAX_BACKOFF_EXPONENT)
    return float(min(min_interval * 2**exponent, max_interval))


def error_summary(err: BaseException) -> str:
    """
    A bounded, classified description of a read error for the trigger event.

    The event is stored in the task's ``next_kwargs``, outside the secrets masker, so it carries
    the class of trouble and the HTTP status, never the service's free text.
    """
    if isinstance(err, HailuoAPIError):
        answer = f"HTTP {err.status}" if err.code is None else f"status_code {err.code}"
        if isinstance(err, HailuoAuthError):
            what = f"the API refused the key ({answer})"
        else:
            what = f"the API answered {answer}" + (f" {err.reason}" if err.reason else "")
    else:
        what = f"unexpected {type(err).__name__} (traceback in the triggerer's log)"
    conn = f" [connection {err.conn_id!r}]" if isinstance(err, HailuoAPIError) and err.conn_id else ""
    return (what + conn)[:300]


def next_poll_delay(eta: int | None, min_interval: float, max_interval: float) -> float:
    """
    How long to sleep before the next read.

    The service says how many seconds are left; sleeping that long (within bounds) costs about one
    poll per video instead of one per ``min_interval``, and polling again ``min_interval`` later
    if it is not quite done keeps the lateness under ``min_interval``.
    """
    if eta is None or eta <= 0:
        return min_interval
    return float(min(max(eta, min_interval), max_interval))


class HailuoTaskTrigger(BaseTrigger):
    """
    Poll ``task-result`` until the task finishes or ``deadline`` (a UNIX timestamp) passes.

    Fires exactly one event whose payload has ``status`` a :class:`WaitOutcome`: ``success`` (with
    ``result``, the task result as a JSON dict), ``failed`` (with ``reason``), ``timeout``, ``fatal``
    or ``error`` (with a bounded ``message``). The kwargs are ids, bounds and times only: never a
    key or a header.

    :param hailuo_task_id: the service's task id.
    :param hailuo_conn_id: the Airflow connection to resolve (in the triggerer, asynchronously).
    :param deadline: absolute UNIX time at which to give up; survives a move to another triggerer.
    :param poll_interval: shortest pause between reads (and the longest lateness after SUCCEED).
    :param max_poll_interval: longest pause, however large the service's ``eta``.
    :param started_at: UNIX time the wait began, to report the elapsed time.
    :param not_found_grace: seconds after ``started_at`` during which "no such task" (400/404) is
        read as "not visible yet", and a success without a video as "not quite finished", rather
        than as final errors.
    :param end_from_trigger: on success, end the task here (``TaskSuccessEvent``, the result stored
        as its ``return_value`` XCom exactly as a worker would store it: ``compat.TriggerEnd``)
        instead of resuming it on a worker, where Airflow allows it and the trigger runs in a
        triggerer (not inline under ``dag.test()``); otherwise, and for every other outcome, the
        task resumes, so Airflow's rules for failures (no retry, ``soft_fail``) stay the operator's.
    :param first_poll_at: UNIX time of the first read, when the sensor has just read the task
        before deferring (reading again at once would be a wasted poll); a trigger rebuilt after
        that time, or given None, reads at once.
    """

    def __init__(
        self,
        hailuo_task_id: str,
        deadline: float,
        hailuo_conn_id: str = HailuoHook.default_conn_name,
        poll_interval: float = 10.0,
        max_poll_interval: float = 60.0,
        started_at: float | None = None,
        not_found_grace: float = 60.0,
        first_poll_at: float | None = None,
        end_from_trigger: bool = False,
    ) -> None:
        super().__init__()
        self.hailuo_task_id = hailuo_task_id
        self.hailuo_conn_id = hailuo_conn_id
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = max(float(max_poll_interval), self.poll_interval)
        self.started_at = float(started_at) if started_at is not None else time.time()
        self.not_found_grace = float(not_found_grace)
        self.first_poll_at = float(first_poll_at) if first_poll_at is not None else None
        self.end_from_trigger = bool(end_from_trigger)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "hailuo_task_id": self.hailuo_task_id,
                "hailuo_conn_id": self.hailuo_conn_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "started_at": self.started_at,
                "not_found_grace": self.not_found_grace,
                "first_poll_at": self.first_poll_at,
                "end_from_trigger": self.end_from_trigger,
            },
        )

    @cached_property
    def hook(self) -> HailuoHook:
        # Retry a read a few times quickly; beyond that the loop below waits and reads again.
        return HailuoHook(
            self.hailuo_conn_id,
            retry_limit=3,
            retry_min_wait=min(1.0, self.poll_interval),
            retry_max_wait=self.poll_interval,
            retry_after_cap=self.max_poll_interval,
        )

    def _in_grace(self) -> bool:
        """
        Shortly after the submit an unknown task, or a success without a video, is tolerated: a
        freshly queued task may not be readable everywhere yet. After ``not_found_grace`` it is final.
        """
        return time.time() - self.started_at < self.not_found_grace

    def _event(self, status: WaitOutcome, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": str(status), "task_id": self.hailuo_task_id, **payload})

    def _error_event(self, err: BaseException) -> TriggerEvent:
        """Log the whole error here (the triggerer's log is masked); the event gets a summary."""
        summary = error_summary(err)
        final = isinstance(err, HailuoAPIError)
        if final:
            self.log.error("Hailuo task %s cannot be read: %s", self.hailuo_task_id, err)
        else:
            # Decided after the except block (wait.judge_read): the traceback is passed explicitly.
            self.log.error(
                "Hailuo task %s: unexpected error while polling", self.hailuo_task_id, exc_info=err
            )
        outcome = WaitOutcome.FATAL if final else WaitOutcome.ERROR
        return self._event(outcome, message=f"Hailuo task {self.hailuo_task_id} cannot be read: {summary}")

    async def _success_event(self, result: dict[str, Any]) -> TriggerEvent:
        """
        End the task here, its XCom stored as a worker would store it, where the sensor asked and
        Airflow allows it (``compat.TriggerEnd``); otherwise resume it on a worker with the result.
        """
        if self.end_from_trigger:
            try:
                ended = await end_task_in_trigger(getattr(self, "task_instance", None), result)
            except Exception:
                # The worker can still push it: resuming costs a task run, not the outcome.
                self.log.warning(
                    "Hailuo task %s: could not store the result here; the task resumes on a worker",
                    self.hailuo_task_id,
                    exc_info=True,
                )
            else:
                if ended is not None:
                    self.log.info("Hailuo task %s: ending the sensor here", self.hailuo_task_id)
                    return cast(TriggerEvent, ended)
        return self._event(WaitOutcome.SUCCESS, result=result)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Hold a lease on the loop's shared HTTP session for the whole wait: every poll of every
        # Hailuo trigger in this triggerer then reuses the same keep-alive connections. (Imported
        # here: the sensor module imports this one, and workers need no aiohttp.)
        from airflow_provider_hailuo.hooks.async_session import shared_client_session

        async with shared_client_session():
            async for event in self._wait():
                yield event
                return

    async def _wait(self) -> AsyncIterator[TriggerEvent]:
        last: TaskResult | None = None
        missed_polls = 0
        if self.first_poll_at is not None:
            await asyncio.sleep(max(0.0, min(self.first_poll_at, self.deadline) - time.time()))
        while True:
            read: TaskResult | BaseException
            status_before = last.status if last else None
            try:
                read = last = await self.hook.aget_task_result(self.hailuo_task_id)
            except Exception as err:
                read = err
            verdict = judge_read(self.hailuo_task_id, read, in_grace=self._in_grace())
            if isinstance(read, BaseException):
                if verdict.outcome is not None:
                    yield self._error_event(read)
                    return
                missed_polls += 1
                self.log.warning(
                    "Hailuo task %s: poll failed (%s), %d in a row; polling again",
                    self.hailuo_task_id,
                    error_summary(read),
                    missed_polls,
                )
            else:
                missed_polls = 0
                if verdict.outcome is WaitOutcome.FAILED:
                    self.log.error("Hailuo %s: %s", read.describe(), read.reason)
                    yield self._event(WaitOutcome.FAILED, reason=read.reason, result=read.to_xcom())
                    return
                if verdict.outcome is WaitOutcome.SUCCESS:
                    self.log.info("Hailuo %s", read.describe())
                    yield await self._success_event(read.to_xcom())
                    return
                if verdict.outcome is WaitOutcome.FATAL:
                    yield self._event(WaitOutcome.FATAL, message=verdict.message)
                    return
                if not read.known_status:
                    self.log.warning("Hailuo %s (unknown status, still waiting)", read.describe())
                elif read.status != status_before:
                    self.log.info("Hailuo %s", read.describe())
                else:
                    # The same status again: a line per read would be the trigger's largest cost
                    # per read (benchmarks/RESULTS.md, section 1b); the progress stays at DEBUG.
                    self.log.debug("Hailuo %s", read.describe())

            now = time.time()
            if now >= self.deadline:
                elapsed = now - self.started_at
                status = last.status if last else "never read"
                yield self._event(
                    WaitOutcome.TIMEOUT,
                    message=f"Hailuo task {self.hailuo_task_id} not finished after {elapsed:.0f}s "
                    f"(last status: {status})",
                    last_status=status,
                    elapsed=elapsed,
                )
                return
            if missed_polls:
                delay = backoff_delay(missed_polls, self.poll_interval, self.max_poll_interval)
            else:
                delay = next_poll_delay(
                    last.eta if last else None, self.poll_interval, self.max_poll_interval
                )
            await asyncio.sleep(max(0.0, min(delay, self.deadline - now)))


class HailuoWaitTrigger(BaseTrigger):
    """
    Fire once at ``until`` (a UNIX time), handing ``payload`` back to the task that deferred.

    A submit that may not go yet (its pacing slot has not come, or the service refused it for now)
    waits here rather than on a worker. Airflow's ``DateTimeTrigger`` would do, but it wakes a
    second at a time (pacing needs the instant) and its event carries no state of the task's own
    (``dag.test()`` drops the deferral's kwargs once an event arrives); ``payload`` carries it.
    """

    def __init__(self, until: float, payload: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.until = float(until)
        self.payload = dict(payload or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"until": self.until, "payload": self.payload},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # A sleep may end a little early (clock adjustments): sleep again until the instant is past.
        while (left := self.until - time.time()) > 0:
            await asyncio.sleep(left)
        yield TriggerEvent({**self.payload, "waited_until": self.until})
