"""
The submit operator under a rate limit, without a service: when it defers, until when, with what,
and that a deferral never leaves a bought task behind (nothing stored, one submit per resume).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from airflow_provider_hailuo.api import HailuoAPIError, HailuoError, HailuoTransientError
from airflow_provider_hailuo.dialects import dialect_for
from airflow_provider_hailuo.operators.hailuo import HailuoSubmitVideoOperator
from airflow_provider_hailuo.operators.rate_limit import (
    PACING_SPREAD,
    pacing_interval,
    refusal_wait,
    submit_slot,
)
from airflow_provider_hailuo.triggers.hailuo import HailuoWaitTrigger

WAIT_TRIGGER = "airflow_provider_hailuo.triggers.hailuo.HailuoWaitTrigger"


class ScriptedHook:
    """Answers each submit with the next of ``answers`` (an exception is raised); counts them."""

    def __init__(self, *answers: Any, submits_per_minute: float | None = None) -> None:
        self.dialect = dialect_for("ppinfra", "https://api.ppinfra.com")
        self.submits_per_minute = submits_per_minute
        # What the submit's price check reads: no `prices` extra, so the vendor's list.
        self.settings = SimpleNamespace(prices=None, conn_id="hailuo_default")
        self.answers = list(answers)
        self.calls: list[bool] = []

    def validate(self, request):
        return self.dialect.validate(request)

    def submit(self, request, *, wait_out_refusals: bool = True) -> str:
        self.calls.append(wait_out_refusals)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


class Store(dict):
    """A ``task_state_store`` (Airflow 3.3): what a retry of the task would find."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


def operator(hook: ScriptedHook, **kwargs: Any) -> HailuoSubmitVideoOperator:
    op = HailuoSubmitVideoOperator(task_id="submit", prompt="a paced video", **kwargs)
    op.__dict__["hook"] = hook  # the cached property, already "built"
    return op


def context(map_index: int = -1, started: datetime | None = None) -> dict[str, Any]:
    return {
        "ti": SimpleNamespace(map_index=map_index, xcom_push=lambda **_: None, stats_tags={}),
        "dag_run": SimpleNamespace(start_date=started or datetime.now(UTC)),
        "task_state_store": Store(),
    }


def refusal(retry_after: float | None = 3.0) -> HailuoTransientError:
    return HailuoTransientError(
        429, "RATE_LIMIT_EXCEEDED", "slow down", None, "c", retry_after=retry_after, nothing_created=True
    )


def test_each_map_index_waits_in_a_trigger_for_its_own_slot_before_sending():
    started = datetime.now(UTC)
    hook = ScriptedHook("task-3", submits_per_minute=5)
    ctx = context(map_index=3, started=started)
    with pytest.raises(TaskDeferred) as info:
        operator(hook).execute(ctx)
    trigger = info.value.trigger
    assert isinstance(trigger, HailuoWaitTrigger) and info.value.method_name == "execute_after_wait"
    assert trigger.until == pytest.approx(started.timestamp() + 3 * 12 * PACING_SPREAD)
    assert hook.calls == [] and ctx["task_state_store"] == {}  # nothing sent, nothing stored
    # Resumed (a new operator object, as Airflow builds one): it sends at once, exactly once.
    event = {**trigger.payload, "waited_until": trigger.until}
    assert operator(hook).execute_after_wait(ctx, event=event) == "task-3"
    assert hook.calls == [False]  # the hook hands a refusal back instead of sleeping on the worker
    stored = {"hailuo_task_id": "task-3"} if AIRFLOW_V_3_3_PLUS else {}  # no store before Airflow 3.3
    assert ctx["task_state_store"] == stored


@pytest.mark.parametrize(("map_index", "rate"), [(-1, 5), (0, 5), (7, None)])
def test_no_pacing_for_an_unmapped_task_the_first_index_or_without_the_extra(map_index, rate):
    hook = ScriptedHook("task", submits_per_minute=rate)
    assert operator(hook).execute(context(map_index=map_index)) == "task"


def test_a_slot_that_has_passed_sends_at_once():
    hook = ScriptedHook("task", submits_per_minute=5)
    assert operator(hook).execute(context(map_index=3, started=datetime.now(UTC) - timedelta(minutes=5)))


def test_a_refusal_defers_for_retry_after_plus_jitter_and_buys_nothing():
    hook = ScriptedHook(refusal(retry_after=3.0), "task")
    ctx = context()
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        operator(hook).execute(ctx)
    trigger = info.value.trigger
    assert before + 3.0 <= trigger.until <= time.time() + 4.5
    assert trigger.payload["refusals"] == 1 and before <= trigger.payload["rate_limited_since"]
    assert info.value.timeout >= timedelta(seconds=3)  # Airflow ends a lost trigger, not a slow one
    assert ctx["task_state_store"] == {} and hook.calls == [False]
    # Resumed: the same validation and the one submit; the service takes it now.
    assert operator(hook).execute_after_wait(ctx, event=trigger.payload) == "task"
    assert hook.calls == [False, False]


def test_refusals_in_a_row_keep_when_they_began_and_count():
    since = time.time() - 100
    hook = ScriptedHook(refusal())
    with pytest.raises(TaskDeferred) as info:
        operator(hook).execute_after_wait(context(), event={"rate_limited_since": since, "refusals": 4})
    assert info.value.trigger.payload == {"rate_limited_since": since, "refusals": 5}


def test_refused_for_longer_than_rate_limit_timeout_fails_saying_so_and_may_be_retried():
    hook = ScriptedHook(refusal())
    event = {"rate_limited_since": time.time() - 601, "refusals": 9}
    with pytest.raises(HailuoError) as info:
        operator(hook, rate_limit_timeout=timedelta(minutes=10)).execute_after_wait(context(), event=event)
    assert not isinstance(info.value, AirflowFailException)  # nothing was bought: a retry may send it
    assert "refused this submit 10 times" in str(info.value) and "rate_limit_timeout=600 s" in str(info.value)
    assert "nothing was bought" in str(info.value)


def test_the_last_wait_ends_at_rate_limit_timeout():
    hook = ScriptedHook(refusal(retry_after=120.0))
    event = {"rate_limited_since": time.time() - 55, "refusals": 2}
    with pytest.raises(TaskDeferred) as info:
        operator(hook, rate_limit_timeout=60).execute_after_wait(context(), event=event)
    assert info.value.trigger.until <= time.time() + 5.0


def test_a_refusal_for_good_still_fails_at_once_without_a_deferral():
    hook = ScriptedHook(HailuoAPIError(400, "INVALID_REQUEST_BODY", "no", None, "hailuo_default"))
    with pytest.raises(AirflowFailException):
        operator(hook).execute(context(map_index=2, started=datetime.now(UTC) - timedelta(hours=1)))


def test_the_wait_honours_the_service_then_the_allowance_then_backs_off():
    with_header = refusal(retry_after=7.0)
    assert all(7.0 <= refusal_wait(with_header, n, 5) <= 10.5 for n in range(1, 50))
    no_header = refusal(retry_after=None)
    assert 12 * PACING_SPREAD <= refusal_wait(no_header, 1, 5) <= 1.5 * 12 * PACING_SPREAD
    for n in (1, 2, 3):
        assert 2.0**n <= refusal_wait(no_header, n, None) <= 1.5 * 2.0**n
    assert refusal_wait(no_header, 30, None) <= 90.0  # 60 s at most, plus jitter
    assert refusal_wait(refusal(retry_after=0.0), 1, None) >= 1.0


def uuid7(at: datetime) -> uuid.UUID:
    """A UUIDv7 as Airflow 3 gives task instances: the creation time in its first 48 bits."""
    return uuid.UUID(int=(int(at.timestamp() * 1000) << 80) | (0x7 << 76) | (0b10 << 62) | 12345)


def test_slots_count_from_when_the_batch_was_laid_out_not_from_the_run_start():
    """Minutes of prompt-building before the batch must not turn its first slots into a burst."""
    run_started = datetime.now(UTC) - timedelta(minutes=10)
    laid_out = datetime.now(UTC) - timedelta(seconds=1)
    ctx = context(map_index=2, started=run_started)
    ctx["ti"].id = uuid7(laid_out)
    with pytest.raises(TaskDeferred) as info:
        operator(ScriptedHook("task", submits_per_minute=5)).execute(ctx)
    assert info.value.trigger.until == pytest.approx(laid_out.timestamp() + 2 * 13.2, abs=0.01)
    ctx["ti"].id = uuid.uuid4()  # not a time-ordered id: the run's start is the origin
    assert operator(ScriptedHook("task", submits_per_minute=5)).execute(ctx) == "task"


def test_a_retry_is_not_paced_its_slots_have_passed():
    ctx = context(map_index=5)
    ctx["ti"].try_number = 2
    assert operator(ScriptedHook("task", submits_per_minute=5)).execute(ctx) == "task"


def test_slots_are_one_interval_apart_from_their_origin():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert pacing_interval(5) == pytest.approx(13.2)
    assert [submit_slot(start, i, 20) - start.timestamp() for i in (-1, 0, 1, 29)] == pytest.approx(
        [0, 0, 3.3, 95.7]
    )


def test_the_wait_trigger_fires_at_its_instant_with_its_payload_and_survives_serialization():
    until = time.time() + 0.3
    classpath, kwargs = HailuoWaitTrigger(until, {"refusals": 2}).serialize()
    assert classpath == WAIT_TRIGGER and kwargs == {"until": until, "payload": {"refusals": 2}}

    async def first_event():
        async for event in HailuoWaitTrigger(**kwargs).run():
            return event, time.time()

    event, fired = asyncio.run(first_event())
    assert until <= fired < until + 0.2
    assert event.payload == {"refusals": 2, "waited_until": until}
