"""HailuoTaskTrigger against the emulator: events, serialization, pacing, and no blocking calls."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from airflow_provider_hailuo.api import VideoRequest
from airflow_provider_hailuo.emulator.server import EmulatorServer
from airflow_provider_hailuo.hooks.async_session import open_pool_count
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.triggers.hailuo import HailuoTaskTrigger, next_poll_delay
from tests.support.connections import hailuo_conn_json
from tests.support.net import CountingProxy


def submit(prompt: str = "p") -> str:
    return HailuoHook().submit(VideoRequest(prompt=prompt))


async def first_event(trigger: HailuoTaskTrigger):
    """Consume the trigger as the triggerer does (to its end): it must fire exactly one event."""
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    return events[0]


def run_trigger(trigger: HailuoTaskTrigger, *, debug: bool = False):
    loop = asyncio.new_event_loop()
    if debug:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.05
    try:
        return loop.run_until_complete(first_event(trigger))
    finally:
        loop.close()
        assert open_pool_count() == 0  # the trigger's lease closed the shared session


def make_trigger(task_id: str, **kwargs) -> HailuoTaskTrigger:
    kwargs.setdefault("deadline", time.time() + 30)
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("max_poll_interval", 1.0)
    return HailuoTaskTrigger(hailuo_task_id=task_id, **kwargs)


def test_fires_success_with_the_result(hailuo_conn):
    task_id = submit()
    event = run_trigger(make_trigger(task_id))
    assert event["status"] == "success"
    assert event["result"]["task_id"] == task_id
    assert event["result"]["videos"] == [{"video_type": "mp4"}]  # no pre-signed link in the event


class FakeTI:
    """The identity a triggerer gives a trigger (``trigger.task_instance``)."""

    dag_id, run_id, task_id, map_index = "d", "r", "wait", 3


class RecordingComms:
    """Stands in for the triggerer's supervisor comms: records each ``SetXCom``, answers None."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list = []
        self.fail = fail

    def send(self, msg):
        if type(msg).__name__ != "SetXCom":
            return None  # the hook's MaskSecret, say
        self.sent.append(msg)
        if self.fail:
            raise RuntimeError("the API server is away")
        return None


def every_event(trigger: HailuoTaskTrigger) -> list:
    async def events():
        return [event async for event in trigger.run()]

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(events())
    finally:
        loop.close()


@pytest.fixture
def comms(monkeypatch):
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    recording = RecordingComms()
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time import task_runner

        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", recording, raising=False)
    return recording


def test_a_sensors_trigger_ends_the_task_with_the_xcom_a_worker_would_store(hailuo_conn, comms):
    """
    Issue 16, 2: the sensor ran twice on a worker (defer, then resume) for every video; and where
    the trigger ended the task (``TaskSuccessEvent(xcoms=...)``), Airflow 3's triggerer stored the
    XCom JSON-encoded twice, so downstream tasks read a string.
    """
    from airflow.triggers.base import TaskSuccessEvent

    from airflow_provider_hailuo.compat import TriggerEnd, trigger_end

    task_id = submit()
    trigger = make_trigger(task_id, end_from_trigger=True)
    assert HailuoTaskTrigger(**trigger.serialize()[1]).end_from_trigger  # survives a triggerer move
    trigger.task_instance = FakeTI()  # as the triggerer sets it
    (event,) = every_event(trigger)
    assert isinstance(event, TaskSuccessEvent)
    how = trigger_end()
    if how is TriggerEnd.SET_XCOM:  # Airflow 3.0.5+: stored through the comms, as a worker does
        from airflow.sdk.execution_time.comms import SetXCom
        from airflow.sdk.execution_time.xcom import XCom

        assert not event.xcoms  # nothing for the triggerer to store a second time, encoded twice
        (sent,) = comms.sent
        assert isinstance(sent, SetXCom)
        assert (sent.dag_id, sent.run_id, sent.task_id, sent.map_index, sent.key) == (
            "d",
            "r",
            "wait",
            3,
            "return_value",
        )
        result = XCom.deserialize_value(sent)  # what a downstream task's pull turns it into
    else:
        assert how is TriggerEnd.EVENT_XCOMS  # Airflow 2.11: the triggerer pushes like a worker
        assert comms.sent == []
        result = event.xcoms["return_value"]
    assert isinstance(result, dict)
    assert result["task_id"] == task_id and result["state"] == "succeeded"


def test_a_trigger_that_cannot_end_the_task_resumes_it_with_the_result(hailuo_conn, comms, monkeypatch):
    """Under dag.test() (no task instance), where the XCom cannot be stored, or off: the worker pushes it."""
    from airflow_provider_hailuo import compat

    inline = make_trigger(submit(), end_from_trigger=True)  # no task_instance: run inline
    (event,) = every_event(inline)
    assert event.payload["status"] == "success" and event.payload["result"]["videos"]

    off = make_trigger(submit(), end_from_trigger=False)
    off.task_instance = FakeTI()
    assert every_event(off)[0].payload["status"] == "success"

    monkeypatch.setattr(compat, "trigger_end", lambda version=None: None)  # Airflow 3.0.0-3.0.4
    old = make_trigger(submit(), end_from_trigger=True)
    old.task_instance = FakeTI()
    assert every_event(old)[0].payload["status"] == "success"
    assert comms.sent == []

    hailuo_conn.add_fault(endpoint="submit", action="fail_generation", reason="moderation")
    failed = make_trigger(submit(), end_from_trigger=True)
    failed.task_instance = FakeTI()
    assert every_event(failed)[0].payload["status"] == "failed"  # the worker decides: no retry, soft_fail


def test_a_result_the_trigger_could_not_store_resumes_the_task(hailuo_conn, comms):
    from airflow_provider_hailuo.compat import TriggerEnd, trigger_end

    if trigger_end() is not TriggerEnd.SET_XCOM:
        pytest.skip("Airflow 2 stores the XCom in the triggerer, after the event")
    comms.fail = True
    trigger = make_trigger(submit(), end_from_trigger=True)
    trigger.task_instance = FakeTI()
    (event,) = every_event(trigger)
    assert event.payload["status"] == "success" and event.payload["result"]["videos"]


def test_fires_failed_with_the_service_reason(hailuo_conn):
    hailuo_conn.add_fault(endpoint="submit", action="fail_generation", reason="prompt rejected by moderation")
    event = run_trigger(make_trigger(submit()))
    assert event["status"] == "failed"
    assert event["reason"] == "prompt rejected by moderation"


def test_times_out_at_the_absolute_deadline_with_last_status(hailuo_conn):
    hailuo_conn.configure(generation_seconds=30)
    started = time.time()
    event = run_trigger(make_trigger(submit(), deadline=started + 1.0, started_at=started))
    assert event["status"] == "timeout"
    assert event["last_status"] in ("TASK_STATUS_QUEUED", "TASK_STATUS_PROCESSING")
    assert "not finished after 1s" in event["message"]
    assert 0.9 <= time.time() - started < 5


def test_missed_polls_do_not_fail_the_wait(hailuo_conn):
    task_id = submit()
    # 3 attempts per read in the trigger's hook: 7 errors = two whole reads missed, then success.
    hailuo_conn.add_fault(endpoint="task_result", action="status", status=503, count=7)
    event = run_trigger(make_trigger(task_id))
    assert event["status"] == "success"
    assert hailuo_conn.counters()["status_503"] == 7


def test_a_task_not_visible_at_first_is_waited_for(hailuo_conn):
    task_id = submit()
    hailuo_conn.add_fault(endpoint="task_result", action="status", status=404, count=2)
    event = run_trigger(make_trigger(task_id))
    assert event["status"] == "success"


def test_unknown_task_is_a_fatal_error_after_the_grace(hailuo_conn):
    started = time.time()
    event = run_trigger(make_trigger("does-not-exist", not_found_grace=1.0, started_at=started))
    assert time.time() - started >= 1.0
    assert event["status"] == "fatal"
    assert "does-not-exist" in event["message"] and "HTTP 404" in event["message"]


def test_serialize_round_trip_resumes_with_the_same_deadline(hailuo_conn):
    deadline = time.time() + 600
    original = make_trigger("abc", deadline=deadline, hailuo_conn_id="my_conn", started_at=deadline - 700)
    classpath, kwargs = original.serialize()
    assert classpath == "airflow_provider_hailuo.triggers.hailuo.HailuoTaskTrigger"
    assert set(kwargs) == {
        "hailuo_task_id",
        "hailuo_conn_id",
        "deadline",
        "poll_interval",
        "max_poll_interval",
        "started_at",
        "not_found_grace",
        "first_poll_at",
        "end_from_trigger",
    }
    rebuilt = HailuoTaskTrigger(**kwargs)
    assert rebuilt.serialize() == original.serialize()
    assert rebuilt.deadline == deadline


def test_a_rebuilt_trigger_runs_to_the_original_deadline(hailuo_conn):
    """A trigger moved to another triggerer (rebuilt from its kwargs) keeps the wait's deadline."""
    hailuo_conn.configure(generation_seconds=30)
    started = time.time()
    original = make_trigger(submit(), deadline=started + 1.5, started_at=started)
    _, kwargs = original.serialize()
    time.sleep(0.5)  # the first triggerer dies; another one picks the wait up later
    event = run_trigger(HailuoTaskTrigger(**kwargs))
    assert event["status"] == "timeout"
    assert 1.4 <= time.time() - started < 4  # the original deadline, not a fresh 1.5 s
    assert "not finished after 1s" in event["message"] or "not finished after 2s" in event["message"]


def test_backoff_after_a_day_long_outage_does_not_overflow():
    from airflow_provider_hailuo.triggers.hailuo import backoff_delay

    assert backoff_delay(1, 10.0, 60.0) == 10.0
    assert backoff_delay(3, 10.0, 60.0) == 40.0
    assert backoff_delay(5000, 10.0, 60.0) == 60.0  # 2 ** 4999 * 10.0 raised OverflowError


def test_a_programming_error_is_logged_with_traceback_and_summarised(hailuo_conn, monkeypatch, capsys):
    secret_body = "service text with sk-secretish-0000 inside"

    async def broken(self, task_id):
        raise ValueError(secret_body)

    monkeypatch.setattr(HailuoHook, "aget_task_result", broken)
    event = run_trigger(make_trigger("t1"))
    assert event["status"] == "error"
    assert "ValueError" in event["message"] and secret_body not in str(event)
    logged = capsys.readouterr().out  # the triggerer's log gets the whole story
    assert "Traceback" in logged and f"ValueError: {secret_body}" in logged


def test_a_service_error_event_carries_no_service_text(hailuo_conn):
    """The event lands in next_kwargs, outside the masker: the service's free text stays out."""
    event = run_trigger(make_trigger("t2-unknown", not_found_grace=0))
    assert event["status"] == "fatal" and "HTTP 404 TASK_NOT_FOUND" in event["message"]
    assert "task t2-unknown not found" not in str(event)  # the emulator's message text


def test_first_poll_waits_for_first_poll_at(hailuo_conn):
    task_id = submit()
    started = time.time()
    event = run_trigger(make_trigger(task_id, first_poll_at=started + 1.5))
    assert event["status"] == "success"
    assert time.time() - started >= 1.5
    assert hailuo_conn.counters()["polls_by_task"][task_id] == 1  # one read, when it was done


def test_the_key_is_in_no_kwargs_event_or_log_of_the_trigger(monkeypatch, caplog, capsys):
    """
    Kwargs and events are stored in the metadata database, outside the secrets masker, and the log
    is read by people: a wait that succeeds and one whose key is refused show neither key anywhere.
    """
    key = f"sk-trigger-{uuid.uuid4().hex}{uuid.uuid4().hex}"  # long and unique: no false alarm
    revoked = f"sk-revoked-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    with EmulatorServer(api_key=key, queue_seconds=0.1, generation_seconds=0.3) as server:
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(server.url, key))
        task_id = submit()
        stored, events = [], []
        with caplog.at_level(logging.DEBUG):
            for conn_key in (key, revoked):
                monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(server.url, conn_key))
                trigger = make_trigger(task_id)
                stored.append(repr(trigger.serialize()))
                events.append(run_trigger(trigger))
        counters = server.counters()
    assert [e["status"] for e in events] == ["success", "fatal"]
    assert "refused the key" in events[1]["message"]
    assert counters["polls_by_task"][task_id] >= 1 and counters["status_401"] >= 1  # both keys were sent
    out, err = capsys.readouterr()
    seen = "\n".join([*stored, *map(repr, events), caplog.text, out, err])
    for secret in (key, revoked):
        assert secret[-16:] not in seen


def test_no_blocking_call_in_the_event_loop(hailuo_conn, caplog):
    """
    No step of a wait holds the loop over 50 ms. A blocking call does so in every wait; a machine
    too busy to run the loop in time (CI runs the version matrix's lines at once) in one wait, not
    in three in a row.
    """
    slow_waits = []
    for _ in range(3):
        caplog.clear()
        task_id = submit()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            event = run_trigger(make_trigger(task_id), debug=True)
        assert event["status"] == "success"
        slow = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
        if not slow:
            return
        slow_waits.append(slow)
    pytest.fail(f"every wait held the loop over 50 ms: {slow_waits}")


def test_many_waits_share_kept_alive_connections(hailuo_conn, monkeypatch):
    """
    Twenty waits in one triggerer, reading one after another: the service accepts one TCP connection
    (a few at most), not one per wait or per read; when the waits end, the connections are closed.
    """
    hailuo_conn.configure(queue_seconds=0, generation_seconds=0)  # each wait ends at its first read
    task_ids = [submit(f"p{i}") for i in range(20)]
    with CountingProxy(hailuo_conn.url) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(proxy.url, hailuo_conn.api_key))
        start = time.time() + 0.2

        async def all_events():
            # All twenty wait at once; their reads are spread 0.1 s apart, so none has to overlap.
            triggers = [make_trigger(t, first_poll_at=start + 0.1 * i) for i, t in enumerate(task_ids)]
            events = await asyncio.gather(*(first_event(t) for t in triggers))
            # Still inside the loop (its end would close any socket): the last wait closed them.
            for _ in range(50):
                if proxy.open_connections == 0:
                    break
                await asyncio.sleep(0.1)
            return events, proxy.open_connections

        events, left_open = asyncio.run(all_events())
        assert [e["status"] for e in events] == ["success"] * 20
        assert hailuo_conn.counters()["polls_by_task"] == dict.fromkeys(task_ids, 1)
        assert proxy.accepted <= 3, f"{proxy.accepted} connections for 20 reads"
        assert left_open == 0


@pytest.mark.parametrize(
    ("eta", "expected"),
    [(None, 5.0), (0, 5.0), (3, 5.0), (30, 30.0), (500, 60.0)],
)
def test_next_poll_delay_follows_eta_within_bounds(eta, expected):
    assert next_poll_delay(eta, 5.0, 60.0) == expected


def test_triggers_of_one_loop_share_one_connection_lookup(hailuo_conn, monkeypatch):
    from airflow_provider_hailuo.hooks import hailuo as hook_module

    lookups = []
    original = hook_module.HailuoHook._resolve_async

    async def counting(self):
        lookups.append(self.hailuo_conn_id)
        return await original(self)

    monkeypatch.setattr(hook_module.HailuoHook, "_resolve_async", counting)
    task_ids = [submit(f"p{i}") for i in range(10)]

    async def all_events():
        return await asyncio.gather(*(first_event(make_trigger(t)) for t in task_ids))

    assert [e["status"] for e in asyncio.run(all_events())] == ["success"] * 10
    assert lookups == ["hailuo_default"]


def test_a_rotated_key_is_looked_up_again_on_401(emulator, monkeypatch):
    from tests.conftest import EMULATOR_KEY

    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, EMULATOR_KEY))
    task_id = submit()

    async def wait_after_rotation():
        # The loop's shared lookup still holds the old key when the connection gets the new one.
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, "old-revoked-key"))
        await HailuoHook().asettings()
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, EMULATOR_KEY))
        return await first_event(make_trigger(task_id))

    assert asyncio.run(wait_after_rotation())["status"] == "success"
    assert emulator.counters()["status_401"] == 1


def test_a_progress_line_is_info_when_the_status_changes_and_debug_while_it_stays(monkeypatch):
    """One INFO line per status (a line per read was the trigger's largest cost per read)."""
    from unittest import mock

    from airflow_provider_hailuo.api import TaskResult, TaskState, Video

    reads = iter(
        [
            TaskResult(task_id="t1", status="TASK_STATUS_QUEUED", state=TaskState.QUEUED),
            TaskResult(task_id="t1", status="TASK_STATUS_PROCESSING", state=TaskState.PROCESSING, eta=1),
            TaskResult(
                task_id="t1", status="TASK_STATUS_PROCESSING", state=TaskState.PROCESSING, progress_percent=50
            ),
            TaskResult(
                task_id="t1",
                status="TASK_STATUS_SUCCEED",
                state=TaskState.SUCCEEDED,
                videos=(Video(url="https://example.invalid/v.mp4"),),
            ),
        ]
    )

    async def read(self, task_id):
        return next(reads)

    monkeypatch.setattr(HailuoHook, "aget_task_result", read)
    trigger = make_trigger("t1", poll_interval=0.01, max_poll_interval=0.01)
    trigger._log = log = mock.Mock()
    assert run_trigger(trigger)["status"] == "success"
    info = [call.args[1] for call in log.info.call_args_list]
    debug = [call.args[1] for call in log.debug.call_args_list]
    assert info == [
        "task t1: TASK_STATUS_QUEUED",
        "task t1: TASK_STATUS_PROCESSING, eta 1s",
        "task t1: TASK_STATUS_SUCCEED",
    ]
    assert debug == ["task t1: TASK_STATUS_PROCESSING, 50%"]
    log.warning.assert_not_called()
