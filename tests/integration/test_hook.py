"""HailuoHook over real HTTP on loopback against the emulator: happy path, errors, retry counts."""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial

import pytest
import requests

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoAuthError,
    HailuoError,
    HailuoLinkExpiredError,
    HailuoNotFoundError,
    HailuoSubmitUncertainError,
    HailuoTransientError,
    HailuoValidationError,
    TaskStatus,
    VideoRequest,
)
from airflow_provider_hailuo.dialects import HttpCall
from airflow_provider_hailuo.dialects.answers import json_object
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from tests.conftest import EMULATOR_KEY, hailuo_conn_uri

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


def test_async_read_matches_sync_read(hailuo_conn):
    hook = make_hook()
    task_id = hook.submit(VideoRequest(prompt="p"))

    async def read():
        return await make_hook().aget_task_result(task_id)

    assert asyncio.run(read()).task_id == task_id


def test_wrong_key_is_refused_without_showing_it(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(emulator.url, "wrong-key-123456"))
    with pytest.raises(HailuoAuthError) as info:
        make_hook().submit(VideoRequest(prompt="p"))
    assert info.value.status == 401
    assert "hailuo_default" in str(info.value)
    assert "wrong-key-123456" not in str(info.value) + repr(info.value)
    assert emulator.counters()["submit_requests"] == 1  # auth errors are not retried


def test_missing_key_names_the_connection(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(emulator.url, ""))
    with pytest.raises(HailuoAuthError, match="password field"):
        make_hook().get_task_result("x")
    assert emulator.counters()["polls"] == 0


def test_service_400_carries_its_message(hailuo_conn):
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
    with socket_that_refuses() as url:
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(url, EMULATOR_KEY))
        with pytest.raises(HailuoError, match="nothing was submitted") as info:
            make_hook(retry_limit=3).submit(VideoRequest(prompt="p"))
    assert not isinstance(info.value, HailuoSubmitUncertainError)


def test_hook_validates_again_before_sending(hailuo_conn):
    with pytest.raises(HailuoValidationError):
        make_hook().submit(VideoRequest(prompt="p", duration=10, resolution="1080P"))
    assert hailuo_conn.counters()["submit_requests"] == 0


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


def test_test_connection_reports_auth(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(emulator.url, EMULATOR_KEY))
    assert make_hook().test_connection()[0] is True
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(emulator.url, "bad"))
    ok, message = make_hook().test_connection()
    assert ok is False and "401" in message and "bad" not in message.replace("bad key", "")


def test_connection_extras_never_become_headers(emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HAILUO_DEFAULT",
        json.dumps(
            {"conn_type": "hailuo", "host": emulator.url, "password": EMULATOR_KEY, "extra": {"X-Leak": "x"}}
        ),
    )
    session = make_hook().get_conn()
    assert "X-Leak" not in session.headers
    assert "Authorization" not in session.headers  # added per request by the auth object, never stored


class socket_that_refuses:
    """A loopback port with nothing listening: connections are refused."""

    def __enter__(self) -> str:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        return None


def test_requests_session_is_reused_across_calls(hailuo_conn):
    hook = make_hook()
    assert hook.get_conn() is hook.get_conn()
    assert isinstance(hook.get_conn(), requests.Session)
