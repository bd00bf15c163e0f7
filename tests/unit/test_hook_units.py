"""
Hook pieces without a server: connection parsing, error mapping, retry policy (``responses``).

The async path is tested against the emulator instead (tests/integration/test_trigger.py):
aioresponses 0.7.9 cannot build responses for aiohttp 3.14.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import time
import weakref
from types import SimpleNamespace

import pytest
import requests
import responses
from asgiref.sync import sync_to_async

from airflow_provider_hailuo.api import (
    HailuoAuthError,
    HailuoError,
    HailuoMalformedAnswerError,
    HailuoNotFoundError,
    HailuoSubmitUncertainError,
    HailuoTransientError,
    VideoRequest,
)
from airflow_provider_hailuo.dialects.answers import http_error as error_from_answer
from airflow_provider_hailuo.dialects.answers import json_object as parse_answer
from airflow_provider_hailuo.dialects.answers import parse_retry_after
from airflow_provider_hailuo.hooks.hailuo import HailuoHook, _BearerAuth, connection_settings
from airflow_provider_hailuo.hooks.retry import is_retryable_read
from airflow_provider_hailuo.hooks.submit_rule import may_send_again
from tests.support.connections import hailuo_conn_json

BASE = "https://api.example.test"
KEY = "sk-unit-test-key-0123456789"


def conn(host="", password=KEY, schema="", port=None, conn_id="c"):
    return SimpleNamespace(host=host, password=password, schema=schema, port=port, conn_id=conn_id)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("", None, "https://api.ppinfra.com"),
        ("api.novita.ai", None, "https://api.novita.ai"),
        ("http://127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("https://api.ppinfra.com/", None, "https://api.ppinfra.com/"),
    ],
)
def test_base_url_from_the_connection(host, port, expected):
    assert connection_settings(conn(host=host, port=port), {}).base_url == expected


def test_settings_repr_hides_the_key():
    settings = connection_settings(conn(), {})
    assert KEY not in repr(settings)
    assert KEY not in repr(_BearerAuth(KEY))


@pytest.mark.parametrize(
    ("extra", "verify"), [({}, True), ({"verify": "false"}, False), ({"verify": "/ca.pem"}, "/ca.pem")]
)
def test_tls_verification_only_changes_through_the_verify_extra(extra, verify):
    assert connection_settings(conn(host=BASE), extra).verify == verify


def test_non_http_base_url_is_refused():
    with pytest.raises(HailuoError, match="not an http"):
        connection_settings(conn(host="ftp://x"), {})


def test_retry_after_as_seconds_or_http_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(future) <= 31


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, HailuoAuthError), (403, HailuoAuthError), (404, HailuoNotFoundError), (429, HailuoTransientError)],
)
def test_error_mapping(status, kind):
    body = b'{"code": 1, "reason": "R", "message": "M"}'
    err = error_from_answer(
        status, {"Retry-After": "3"}, body, task_id="t", conn_id="c", vendor_error=lambda doc: True
    )
    assert type(err) is kind and err.reason == "R" and err.message == "M"


def test_html_error_page_keeps_a_short_message():
    err = error_from_answer(502, {}, b"<html>Bad gateway</html>" * 50, task_id=None, conn_id="c")
    assert isinstance(err, HailuoTransientError) and len(err.message) <= 200


def test_garbled_2xx_is_malformed_and_retryable_for_reads_only():
    with pytest.raises(HailuoMalformedAnswerError) as info:
        parse_answer(200, {}, b"<html>", task_id="t", conn_id="c")
    assert is_retryable_read(info.value) and not may_send_again(info.value)


@pytest.fixture
def unit_conn(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_json(BASE, KEY))


@responses.activate
def test_a_garbled_2xx_read_is_retried_on_workers_as_in_the_triggerer(unit_conn):
    """Review item 6: the worker's read parsed the answer outside the retry loop and failed at once."""
    url = f"{BASE}/v3/async/task-result"
    responses.get(url, json={})  # a 2xx without `task`
    responses.get(url, json={"task": {"task_id": "t", "status": "TASK_STATUS_QUEUED"}})
    result = HailuoHook(retry_min_wait=0.01).get_task_result("t")
    assert result.status == "TASK_STATUS_QUEUED" and len(responses.calls) == 2


@pytest.mark.parametrize(
    "trouble",
    [
        ValueError(f"Invalid header value b'Bearer {KEY}\\n'"),  # what http.client said of a pasted key
        RuntimeError(f"something unforeseen around {KEY}"),
    ],
)
def test_test_connection_never_raises_nor_repeats_an_unexpected_error(unit_conn, monkeypatch, trouble):
    def read(*args, **kwargs):
        raise trouble

    hook = HailuoHook()
    monkeypatch.setattr(hook, "get_task_result", read)
    ok, message = hook.test_connection()
    assert ok is False
    assert KEY not in message and type(trouble).__name__ in message


def test_test_connection_of_a_connection_that_does_not_exist_answers_false(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_HAILUO_NOWHERE", raising=False)
    ok, message = HailuoHook(hailuo_conn_id="hailuo_nowhere").test_connection()
    assert ok is False and message


@responses.activate
def test_submit_sends_bearer_and_the_body(unit_conn):
    responses.post(f"{BASE}/v3/async/minimax-hailuo-02", json={"task_id": "abc"})
    assert HailuoHook().submit(VideoRequest(prompt="p", duration=10)) == "abc"
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert b'"duration": 10' in sent.body


@responses.activate
def test_submit_200_without_task_id_is_uncertain(unit_conn):
    responses.post(f"{BASE}/v3/async/minimax-hailuo-02", json={"oops": True})
    with pytest.raises(HailuoSubmitUncertainError):
        HailuoHook().submit(VideoRequest(prompt="p"))
    assert len(responses.calls) == 1


@responses.activate
def test_submit_connection_reset_after_sending_is_uncertain(unit_conn):
    responses.post(f"{BASE}/v3/async/minimax-hailuo-02", body=requests.ConnectionError("reset by peer"))
    with pytest.raises(HailuoSubmitUncertainError):
        HailuoHook(retry_min_wait=0.01).submit(VideoRequest(prompt="p"))
    assert len(responses.calls) == 1


@responses.activate
def test_download_never_carries_the_key(unit_conn):
    responses.get("https://cdn.example.test/v.mp4", body=b"\x00\x00\x00\x20ftypisom")
    hook = HailuoHook()
    with hook.stream_video("https://cdn.example.test/v.mp4") as response:
        response.content  # noqa: B018
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_numeric_task_id_is_accepted_as_a_string(unit_conn):
    responses.post(f"{BASE}/v3/async/minimax-hailuo-02", json={"task_id": 12345})
    assert HailuoHook().submit(VideoRequest(prompt="p")) == "12345"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Content-Length": "100"}, 100),
        ({}, None),
        ({"Content-Length": "100", "Content-Encoding": "gzip"}, None),
        ({"Content-Length": "abc"}, None),
    ],
)
def test_expected_length_counts_only_identity_bodies(headers, expected):
    from airflow_provider_hailuo.operators.hailuo import expected_length

    assert expected_length(headers) == expected


def test_env_proxy_is_resolved_once_like_trust_env(monkeypatch):
    from airflow_provider_hailuo.hooks.hailuo import _env_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    proxy, auth = _env_proxy("https://api.ppinfra.com")
    assert proxy == "http://proxy.internal:3128" and auth.login == "user"
    assert _env_proxy("http://127.0.0.1:8000") == (None, None)


def test_a_closed_event_loop_is_not_kept_alive_by_the_shared_settings(unit_conn):
    """A triggerer (or a test run) goes through many loops: the settings cache must not pin them."""
    loop = asyncio.new_event_loop()
    try:
        settings = loop.run_until_complete(HailuoHook().asettings())
    finally:
        loop.close()
    assert settings.api_key == KEY
    closed = weakref.ref(loop)
    del loop
    # asgiref (Airflow's async connection lookup) remembers the last loop it served in its worker
    # thread's locals, until it serves another one: let it serve one, so only the hook's cache counts.
    asyncio.run(sync_to_async(lambda: None)())
    gc.collect()
    assert closed() is None, gc.get_referrers(closed())


def test_the_sensor_waits_in_the_triggerer_unless_asked(monkeypatch):
    """Issue 18: stock Airflow's default_deferrable is False; a waiting video must not hold a slot."""
    from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert HailuoTaskSensor(task_id="wait", hailuo_task_id="t").deferrable is True
    assert HailuoTaskSensor(task_id="poke", hailuo_task_id="t", deferrable=False).deferrable is False


@pytest.fixture
def mask_requests(monkeypatch) -> list[str]:
    """Every value the provider asks Airflow to mask (the request still goes through)."""
    import airflow.providers.common.compat.sdk as compat_sdk
    from airflow.providers.common.compat.sdk import mask_secret

    asked: list[str] = []

    def asking(secret, *args, **kwargs):
        asked.append(secret)
        mask_secret(secret, *args, **kwargs)

    monkeypatch.setattr(compat_sdk, "mask_secret", asking)
    try:
        import airflow.sdk.log as sdk_log
    except ImportError:
        return asked
    if hasattr(sdk_log, "amask_secret"):
        amask_secret = sdk_log.amask_secret

        async def aasking(secret, *args, **kwargs):
            asked.append(secret)
            await amask_secret(secret, *args, **kwargs)

        monkeypatch.setattr(sdk_log, "amask_secret", aasking)
    return asked


def test_a_key_airflow_masked_when_reading_the_connection_is_not_masked_again(monkeypatch, mask_requests):
    """Airflow 3.0 prints every mask request, value in clear (README): asking again only adds lines."""
    from airflow.providers.common.compat.sdk import redact

    key = f"sk-mask-once-{time.time_ns()}"
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_MASK_ONCE", hailuo_conn_json(BASE, key))
    hook = HailuoHook(hailuo_conn_id="hailuo_mask_once")
    assert hook.settings.api_key == key
    assert asyncio.run(HailuoHook(hailuo_conn_id="hailuo_mask_once").asettings()).api_key == key
    assert mask_requests == []
    assert redact(f"Bearer {key}") == "Bearer ***"  # Airflow's own lookup masked it


def test_a_key_airflow_has_not_masked_is_masked_by_the_provider(mask_requests):
    from airflow.providers.common.compat.sdk import redact

    from airflow_provider_hailuo.hooks.hailuo import _amask, _mask

    key, akey = f"sk-mask-fresh-{time.time_ns()}", f"sk-mask-afresh-{time.time_ns()}"
    _mask(key)
    asyncio.run(_amask(akey))
    assert mask_requests == [key, akey]
    assert redact(f"{key} {akey}") == "*** ***"
