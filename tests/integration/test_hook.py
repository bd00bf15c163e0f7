"""HailuoHook over real HTTP on loopback against the emulator: happy path, errors, retry counts."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from functools import partial

import pytest

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoAuthError,
    HailuoError,
    HailuoLinkExpiredError,
    HailuoNotFoundError,
    HailuoSubmitUncertainError,
    HailuoTransientError,
    HailuoTransportError,
    HailuoValidationError,
    VideoRequest,
)
from airflow_provider_hailuo.dialects import HttpCall
from airflow_provider_hailuo.dialects.answers import json_object
from airflow_provider_hailuo.dialects.ppinfra import TaskStatus
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from tests.conftest import EMULATOR_KEY
from tests.support.connections import hailuo_conn_json
from tests.support.net import CountingProxy, free_port

FAST = {"retry_min_wait": 0.01, "retry_max_wait": 0.05, "retry_after_cap": 0.5}


def make_hook(**kwargs) -> HailuoHook:
    return HailuoHook(**{**FAST, **kwargs})


def wait_until_finished(hook: HailuoHook, task_id: str, limit: float = 10.0):
    seen = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = hook.get_task_result(task_id)
        seen.append(result)
        if result.finished:
            return result, seen
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish: {seen[-1]}")


def test_submit_poll_to_succeed_and_stream_the_mp4(hailuo_conn):
    hook = make_hook()
    task_id = hook.submit(VideoRequest(prompt="a red fox in snow", duration=10))
    result, seen = wait_until_finished(hook, task_id)
    assert result.status == TaskStatus.SUCCEED
    statuses = [r.status for r in seen]
    assert TaskStatus.PROCESSING in statuses
    progress = [r.progress_percent for r in seen if r.status == TaskStatus.PROCESSING]
    assert progress == sorted(progress)
    with hook.stream_video(result.videos[0].url) as response:
        body = b"".join(response.iter_content(65536))
    assert body[4:8] == b"ftyp"
    assert len(body) == int(response.headers["Content-Length"])
    counters = hailuo_conn.counters()
    assert counters["submits"] == 1
    assert counters["download_auth_headers"] == 0


def links_without_signatures(result) -> list[str]:
    """A result's links with their query strings (expiry and signature, fresh on every read) cut off."""
    return [video.url.split("?")[0] for video in result.videos]


def test_async_read_gives_what_the_sync_read_gives(hailuo_conn):
    """The triggerer (async) and a worker (sync) must see the same task: status, reason, video."""
    hook = make_hook()
    done = hook.submit(VideoRequest(prompt="p"))
    hailuo_conn.add_fault(endpoint="submit", action="fail_generation", reason="prompt rejected by moderation")
    failed = hook.submit(VideoRequest(prompt="q"))
    wait_until_finished(hook, done)
    wait_until_finished(hook, failed)

    async def aread(task_id: str):
        return await make_hook().aget_task_result(task_id)

    for task_id in (done, failed):
        sync_result, async_result = hook.get_task_result(task_id), asyncio.run(aread(task_id))
        sync_read, async_read = sync_result.to_xcom(), async_result.to_xcom()
        assert async_read == sync_read
        assert links_without_signatures(async_result) == links_without_signatures(sync_result)
    assert (sync_read["state"], sync_read["reason"]) == ("failed", "prompt rejected by moderation")
    finished = asyncio.run(aread(done))
    assert finished.succeeded and finished.videos
    with hook.stream_video(finished.videos[0].url) as response:  # the async read's link downloads
        assert b"".join(response.iter_content(65536))[4:8] == b"ftyp"
    with pytest.raises(HailuoNotFoundError) as info:
        asyncio.run(aread("no-such-task"))
    assert (info.value.task_id, info.value.status) == ("no-such-task", 404)


def test_wrong_key_is_refused_without_showing_it(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, "wrong-key-123456"))
    with pytest.raises(HailuoAuthError) as info:
        make_hook().submit(VideoRequest(prompt="p"))
    assert info.value.status == 401
    assert "hailuo_default" in str(info.value)
    assert "wrong-key-123456" not in str(info.value) + repr(info.value)
    assert emulator.counters()["submit_requests"] == 1  # auth errors are not retried


def test_missing_key_names_the_connection(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, ""))
    with pytest.raises(HailuoAuthError, match="password field"):
        make_hook().get_task_result("x")
    assert emulator.counters()["polls"] == 0


@pytest.mark.parametrize("pasted", [f"{EMULATOR_KEY}\n", f" {EMULATOR_KEY}\r\n", f"\t{EMULATOR_KEY} "])
def test_a_key_pasted_with_surrounding_whitespace_works(emulator, monkeypatch, pasted):
    """A key copied with its line break: without the strip every call failed, the key in its error."""
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, pasted))
    hook = make_hook()
    task_id = hook.submit(VideoRequest(prompt="p"))
    assert hook.get_task_result(task_id).task_id == task_id
    assert asyncio.run(make_hook().aget_task_result(task_id)).task_id == task_id
    assert make_hook().test_connection()[0] is True
    assert emulator.counters().get("status_401", 0) == 0


def _key_texts(err: BaseException) -> str:
    """Everything an exception would print: its text, its repr, and those of its causes."""
    texts = []
    while err is not None:
        texts += [str(err), repr(err)]
        err = err.__cause__ or err.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("control", ["\x01", "\n", "\r", "\x7f", "\u200b"])
def test_a_key_with_a_control_character_inside_is_refused_without_showing_it(emulator, monkeypatch, control):
    head, tail = EMULATOR_KEY[:12], EMULATOR_KEY[12:]
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, head + control + tail))
    calls = {
        "read": lambda: make_hook().get_task_result("t-1"),
        "submit": lambda: make_hook().submit(VideoRequest(prompt="p")),
        "async read": lambda: asyncio.run(make_hook().aget_task_result("t-1")),
    }
    for what, call in calls.items():
        with pytest.raises(HailuoError) as info:
            call()
        text = _key_texts(info.value)
        assert "hailuo_default" in text and "control" in text, (what, text)
        assert head not in text and tail not in text, (what, text)
    ok, message = make_hook().test_connection()
    assert ok is False
    assert "control" in message
    assert head not in message and tail not in message
    assert (emulator.counters()["polls"], emulator.counters()["submit_requests"]) == (0, 0)


def test_a_task_reported_as_succeeded_in_the_other_spelling_is_done_and_downloads(hailuo_conn):
    """docs/vendors.md §2: one page spells the final word TASK_STATUS_SUCCEEDED; it must not wait forever."""
    hook = make_hook()
    task_id = hook.submit(VideoRequest(prompt="p"))
    finished, _ = wait_until_finished(hook, task_id)
    answer = dict(finished.raw)
    answer["task"] = {**answer["task"], "status": "TASK_STATUS_SUCCEEDED"}
    hailuo_conn.add_fault(endpoint="task_result", action="body", body=answer, count=-1)
    for result in (hook.get_task_result(task_id), asyncio.run(make_hook().aget_task_result(task_id))):
        assert result.succeeded and result.finished and result.status == "TASK_STATUS_SUCCEEDED"
    with hook.stream_video(hook.video_link(hook.get_task_result(task_id))) as response:
        assert next(response.iter_content(64))[4:8] == b"ftyp"

    hook = make_hook()
    session = hook.get_conn()
    # What the service says when a client skips validation: the hook surfaces its message.
    response = session.post(hook.settings.url("/v3/async/minimax-hailuo-02"), json={"prompt": ""}, timeout=5)
    assert response.status_code == 400
    with pytest.raises(HailuoAPIError) as info:
        hook._send(
            HttpCall("POST", "/v3/async/minimax-hailuo-02", json={}),
            partial(json_object, task_id=None, conn_id="c"),
            what="submit",
            retryable=lambda e: False,
        )
    assert info.value.status == 400
    assert info.value.reason == "INVALID_REQUEST_BODY"
    assert "prompt" in info.value.message


def test_unknown_task_is_not_found_with_its_id(hailuo_conn):
    with pytest.raises(HailuoNotFoundError) as info:
        make_hook().get_task_result("no-such-task")
    assert info.value.task_id == "no-such-task"
    assert hailuo_conn.counters()["polls"] == 1


def test_reads_retry_429_honouring_retry_after(hailuo_conn):
    hook = make_hook(retry_after_cap=5)
    task_id = hook.submit(VideoRequest(prompt="p"))
    hailuo_conn.add_fault(endpoint="task_result", action="status", status=429, retry_after=1, count=2)
    started = time.monotonic()
    assert hook.get_task_result(task_id).task_id == task_id
    assert time.monotonic() - started >= 2.0  # two waits of Retry-After: 1
    assert hailuo_conn.counters()["polls"] == 3


def test_reads_retry_5xx_bursts_until_the_limit(hailuo_conn):
    hook = make_hook(retry_limit=4)
    task_id = hook.submit(VideoRequest(prompt="p"))
    hailuo_conn.add_fault(endpoint="task_result", action="status", status=502, count=3)
    assert hook.get_task_result(task_id).task_id == task_id
    hailuo_conn.add_fault(endpoint="task_result", action="status", status=500, count=10)
    before = hailuo_conn.counters()["polls"]
    with pytest.raises(HailuoTransientError):
        hook.get_task_result(task_id)
    assert hailuo_conn.counters()["polls"] - before == 4


@pytest.mark.parametrize("status", [429, 503])
def test_submit_retries_answers_that_prove_nothing_was_created(hailuo_conn, status):
    hailuo_conn.add_fault(endpoint="submit", action="status", status=status, retry_after=0, count=2)
    task_id = make_hook().submit(VideoRequest(prompt="p"))
    counters = hailuo_conn.counters()
    assert counters["submit_requests"] == 3
    assert counters["submits"] == 1
    assert make_hook().get_task_result(task_id).task_id == task_id


@pytest.mark.parametrize("status", [429, 503])
def test_a_caller_that_waits_deferred_gets_the_first_refusal_at_once(hailuo_conn, status):
    """The submit operator defers on a refusal: the hook must not sit through its attempts first."""
    hailuo_conn.add_fault(endpoint="submit", action="status", status=status, retry_after=7, count=2)
    with pytest.raises(HailuoTransientError) as info:
        make_hook(retry_limit=5).submit(VideoRequest(prompt="p"), wait_out_refusals=False)
    assert info.value.nothing_created and info.value.retry_after == 7
    counters = hailuo_conn.counters()
    assert counters["submit_requests"] == 1 and counters["submits"] == 0


def test_a_caller_that_waits_deferred_still_has_failed_connects_retried_here(hailuo_conn, monkeypatch):
    from tests.support.fault_proxy import Fault, FaultProxy
    from tests.support.submit_faults import retrying_with_heal

    with FaultProxy(hailuo_conn.url, Fault("refused", "connect", "refuse")) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(proxy.url, EMULATOR_KEY))
        monkeypatch.setattr(HailuoHook, "_retrying", retrying_with_heal(proxy))
        task_id = make_hook().submit(VideoRequest(prompt="p"), wait_out_refusals=False)
    assert list(hailuo_conn.tasks()) == [task_id]  # refused once, healed, sent again: one task


@pytest.mark.parametrize("status", [500, 502, 504])
def test_submit_never_retries_an_answer_that_may_have_created_a_task(hailuo_conn, status):
    hailuo_conn.add_fault(endpoint="submit", action="status", status=status, count=1)
    with pytest.raises(HailuoSubmitUncertainError, match="may have been accepted"):
        make_hook().submit(VideoRequest(prompt="p"))
    assert hailuo_conn.counters()["submit_requests"] == 1


def test_submit_read_timeout_is_uncertain_and_not_repeated(hailuo_conn):
    hailuo_conn.add_fault(endpoint="submit", action="delay", seconds=2.0, count=1)
    with pytest.raises(HailuoSubmitUncertainError, match="may have been accepted"):
        make_hook(timeout=(2.0, 0.5)).submit(VideoRequest(prompt="p"))
    counters = hailuo_conn.counters()
    assert counters["submit_requests"] == 1
    assert counters["submits"] == 1  # the service did create (and bill) it


def test_submit_connect_refused_is_retried_then_reported_as_not_submitted(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connections are refused
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(url, EMULATOR_KEY))
    with pytest.raises(HailuoTransportError, match="before any request byte was sent") as info:
        make_hook(retry_limit=3).submit(VideoRequest(prompt="p"))
    assert not info.value.request_sent and "NewConnectionError" in str(info.value)


def request_at_512p() -> VideoRequest:
    """Valid for MiniMax, so it is built; PPInfra (the emulator's dialect) has no 512P."""
    return VideoRequest(prompt="p", image_url="https://example.com/a.png", resolution="512P")


def request_changed_after_its_checks() -> VideoRequest:
    """A request whose fields were changed after construction checked them (10 s at 1080P: no vendor)."""
    request = VideoRequest(prompt="p", duration=6, resolution="1080P")
    object.__setattr__(request, "duration", 10)
    return request


@pytest.mark.parametrize(
    ("build", "field", "rule"),
    [
        (request_at_512p, "resolution", "ppinfra"),
        (request_changed_after_its_checks, "resolution", "10 s"),
    ],
)
def test_a_request_the_vendor_refuses_is_never_sent(hailuo_conn, build, field, rule):
    """The hook checks the request against the connection's vendor itself: nothing is sent, nothing paid."""
    request = build()  # constructed without error: only the hook's own check can refuse it
    with pytest.raises(HailuoValidationError) as info:
        make_hook().submit(request)
    assert info.value.field == field and rule in str(info.value)
    counters = hailuo_conn.counters()
    assert (counters["submit_requests"], counters["submits"]) == (0, 0)


def test_expired_link_is_reported_as_expired(hailuo_conn):
    hook = make_hook()
    hailuo_conn.configure(link_ttl_seconds=0.2)
    task_id = hook.submit(VideoRequest(prompt="p"))
    result, _ = wait_until_finished(hook, task_id)
    time.sleep(1.3)
    with pytest.raises(HailuoLinkExpiredError), hook.stream_video(result.videos[0].url):
        pass
    fresh = hook.get_task_result(task_id).videos[0].url
    with hook.stream_video(fresh) as response:
        assert response.status_code == 200


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/v.mp4"])
def test_download_links_with_other_schemes_are_refused(hailuo_conn, url):
    with pytest.raises(HailuoValidationError, match="video_url"), make_hook().stream_video(url):
        pass


def test_test_connection_reports_auth_without_showing_the_key(emulator, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, EMULATOR_KEY))
    ok, message = make_hook().test_connection()
    assert ok is True, message
    assert EMULATOR_KEY not in message
    wrong = f"wrong-key-{uuid.uuid4().hex}"  # long and unique: any echo of it, whole or a tail, is found
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, wrong))
    with caplog.at_level(logging.DEBUG):
        ok, message = make_hook().test_connection()
    assert ok is False
    assert "refused the API key" in message and "401" in message
    assert wrong[-8:] not in message and wrong[-8:] not in caplog.text
    assert emulator.counters()["status_401"] == 1  # the wrong key really was sent, and refused


def test_connection_extras_never_become_headers(emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(emulator.url, EMULATOR_KEY, {"X-Leak": "x"})
    )
    session = make_hook().get_conn()
    assert "X-Leak" not in session.headers
    assert "Authorization" not in session.headers  # added per request by the auth object, never stored


def test_one_hook_makes_its_calls_over_one_kept_alive_connection(emulator, monkeypatch):
    """Counted where the service sees it: TCP connections accepted, not session objects."""
    with CountingProxy(emulator.url) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(proxy.url, EMULATOR_KEY))
        hook = make_hook()
        task_id = hook.submit(VideoRequest(prompt="p"))
        for _ in range(5):
            hook.get_task_result(task_id)
        counters = emulator.counters()
        assert (counters["submit_requests"], counters["polls"]) == (1, 5)
        assert proxy.accepted == 1
