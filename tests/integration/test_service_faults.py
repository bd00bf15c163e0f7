"""
The product against what a real service and its CDN also do (issue 11's emulator knobs).

Every test drives the real hook / operators over loopback HTTP(S) against the emulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from airflow_provider_hailuo.api import (
    HailuoTransportError,
    VideoRequest,
)
from airflow_provider_hailuo.emulator.server import EmulatorServer
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator
from airflow_provider_hailuo.triggers.hailuo import HailuoTaskTrigger
from tests.conftest import EMULATOR_KEY, hailuo_conn_uri
from tests.integration.test_hook import wait_until_finished


def finished(hook: HailuoHook, task_id: str) -> None:
    result, _ = wait_until_finished(hook, task_id, limit=20)
    assert result.succeeded, result


def land(task_id: str, tmp_path) -> dict:
    operator = HailuoDownloadVideoOperator(
        task_id="download", hailuo_task_id=task_id, destination=tmp_path.as_uri() + "/", video_checks="off"
    )
    return operator.execute(context={})


@pytest.fixture
def done_task(hailuo_conn) -> str:
    hook = HailuoHook()
    task_id = hook.submit(VideoRequest(prompt="p"))
    finished(hook, task_id)
    return task_id


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("redirect", {}),
        ("redirect", {"status": 307, "hops": 2}),
        ("gzip", {}),
        ("chunked", {}),
    ],
)
def test_cdn_answers_still_land_the_exact_video(hailuo_conn, done_task, tmp_path, action, params):
    clean = land(done_task, tmp_path / "clean")  # the same video without the CDN's habit
    hailuo_conn.add_fault(endpoint="download", action=action, count=-1, **params)
    landed = land(done_task, tmp_path / "faulty")
    path = tmp_path / "faulty" / f"{done_task}.mp4"
    assert landed["sha256"] == clean["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert landed["bytes"] == clean["bytes"] == path.stat().st_size


def test_a_2xx_without_the_task_is_read_again(hailuo_conn, done_task):
    hailuo_conn.add_fault(endpoint="task_result", action="no_task", count=2)
    result = HailuoHook(retry_min_wait=0.01).get_task_result(done_task)
    assert result.succeeded and result.has_video
    assert hailuo_conn.counters()["polls_by_task"][done_task] >= 3


def test_a_2xx_without_the_task_is_a_missed_poll_in_the_triggerer(hailuo_conn, done_task):
    hailuo_conn.add_fault(endpoint="task_result", action="no_task", count=4)
    trigger = HailuoTaskTrigger(
        hailuo_task_id=done_task, deadline=time.time() + 30, poll_interval=0.05, max_poll_interval=0.2
    )

    async def first():
        events = [e.payload async for e in trigger.run()]
        return events[0]

    assert asyncio.run(first())["status"] == "success"


@pytest.fixture
def tls_emulator(tmp_path):
    with EmulatorServer(api_key=EMULATOR_KEY, tls=True, queue_seconds=0.1, generation_seconds=0.3) as server:
        yield server


def test_https_with_a_self_signed_certificate_needs_its_ca(tls_emulator, monkeypatch, tmp_path):
    assert tls_emulator.url.startswith("https://")
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(tls_emulator.url, EMULATOR_KEY))
    ok, message = HailuoHook().test_connection()
    assert not ok and "unreachable (SSLError)" in message  # the system store does not trust it
    with pytest.raises(HailuoTransportError, match="before any request byte was sent") as refused:
        HailuoHook(retry_min_wait=0.01).submit(VideoRequest(prompt="refused at the handshake"))
    assert not refused.value.request_sent  # the request never left
    assert tls_emulator.counters()["submit_requests"] == 0

    extra = {"ca_bundle": tls_emulator.ca_path}
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(tls_emulator.url, EMULATOR_KEY, extra))
    hook = HailuoHook()
    task_id = hook.submit(VideoRequest(prompt="over TLS"))
    finished(hook, task_id)
    trigger = HailuoTaskTrigger(hailuo_task_id=task_id, deadline=time.time() + 30, poll_interval=0.05)

    async def first():
        events = [e.payload async for e in trigger.run()]
        return events[0]

    assert asyncio.run(first())["status"] == "success"


def test_the_download_reads_the_finished_task_once(hailuo_conn, done_task, tmp_path):
    """Issue 16, 3: it read the task for the checks and again for the link: two reads per video."""
    before = hailuo_conn.counters()["polls"]
    land(done_task, tmp_path)
    assert hailuo_conn.counters()["polls"] - before == 1
    hailuo_conn.add_fault(endpoint="download", action="expire", count=1)
    before = hailuo_conn.counters()["polls"]
    land(done_task, tmp_path / "renewed")
    assert hailuo_conn.counters()["polls"] - before == 2  # an expired link is renewed by a second read
