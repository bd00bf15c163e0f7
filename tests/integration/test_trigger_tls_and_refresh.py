"""
The triggerer's hot path with what production adds: HTTPS with a private CA, and a rotated key.

A small aiohttp HTTPS server on loopback (certificate from a throwaway CA made by ``trustme``)
answers task-result reads, so the test sees every TLS connection the triggerer opens.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time

import pytest
from aiohttp import web

from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.triggers.hailuo import HailuoTaskTrigger
from tests.conftest import hailuo_conn_uri

trustme = pytest.importorskip("trustme")
KEY = "tls-test-key-5150"


class TlsTaskService:
    """Answers QUEUED for the first reads of a task, then SUCCEED; counts TLS connections."""

    def __init__(self, ca_path: str, cert: trustme.LeafCert, reads_before_done: int = 4) -> None:
        self.ca_path = ca_path
        self.cert = cert
        self.reads_before_done = reads_before_done
        self.reads: dict[str, int] = {}
        self.client_ports: set[int] = set()
        self.auth_failures = 0
        self.accepted_key = KEY

    async def task_result(self, request: web.Request) -> web.Response:
        self.client_ports.add(request.transport.get_extra_info("peername")[1])
        if request.headers.get("Authorization") != f"Bearer {self.accepted_key}":
            self.auth_failures += 1
            return web.json_response(
                {"code": 401, "reason": "FAILED_TO_AUTH", "message": "bad key"}, status=401
            )
        task_id = request.query["task_id"]
        count = self.reads[task_id] = self.reads.get(task_id, 0) + 1
        done = count > self.reads_before_done
        task = {
            "task_id": task_id,
            "status": "TASK_STATUS_SUCCEED" if done else "TASK_STATUS_QUEUED",
            "eta": 0,
        }
        videos = [{"video_url": "https://cdn.example.test/v.mp4", "video_url_ttl": "3600"}] if done else []
        return web.json_response({"task": task, "videos": videos})


async def serve(service: TlsTaskService):
    app = web.Application()
    app.router.add_get("/v3/async/task-result", service.task_result)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    service.cert.configure_cert(context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"https://localhost:{port}"


@pytest.fixture
def ca_and_cert(tmp_path):
    ca = trustme.CA()
    ca_path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return str(ca_path), ca.issue_cert("localhost", "127.0.0.1")


def trigger(task_id: str) -> HailuoTaskTrigger:
    return HailuoTaskTrigger(
        hailuo_task_id=task_id, deadline=time.time() + 30, poll_interval=0.05, max_poll_interval=0.1
    )


async def first_event(t: HailuoTaskTrigger):
    events = [e.payload async for e in t.run()]
    return events[0]


@pytest.mark.parametrize("extra_name", ["ca_bundle", "verify"])  # the form's field, and the older spelling
def test_https_with_a_ca_bundle_reuses_connections_and_reads_the_bundle_off_the_loop(
    ca_and_cert, monkeypatch, extra_name
):
    ca_path, cert = ca_and_cert
    service = TlsTaskService(ca_path, cert, reads_before_done=6)
    contexts_built = []  # (on the loop's thread?) for each CA-bundle context
    real_create = ssl.create_default_context

    def recording_create(*args, **kwargs):
        if kwargs.get("cafile") == ca_path:
            contexts_built.append(threading.current_thread() is threading.main_thread())
        return real_create(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", recording_create)

    async def scenario():
        runner, url = await serve(service)
        monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(url, KEY, {extra_name: ca_path}))
        try:
            return await asyncio.gather(*(first_event(trigger(f"t{i}")) for i in range(3)))
        finally:
            await runner.cleanup()

    events = asyncio.run(scenario())
    assert [e["status"] for e in events] == ["success"] * 3
    assert sum(service.reads.values()) == 21
    # The bundle is read once for the loop's shared settings, in a worker thread...
    assert contexts_built == [False]
    # ...and that one SSLContext lets 21 reads share a few kept-alive connections instead of 21.
    assert len(service.client_ports) <= 3


def test_a_rotated_key_is_looked_up_once_for_all_waiting_triggers(ca_and_cert, monkeypatch):
    ca_path, cert = ca_and_cert
    service = TlsTaskService(ca_path, cert, reads_before_done=0)
    lookups = []
    original = HailuoHook._resolve_async

    async def counting(self):
        lookups.append(time.monotonic())
        return await original(self)

    monkeypatch.setattr(HailuoHook, "_resolve_async", counting)

    async def scenario():
        runner, url = await serve(service)
        extra = {"ca_bundle": ca_path}
        try:
            monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(url, "revoked-key", extra))
            await HailuoHook().asettings()  # the loop's shared lookup holds the old key...
            service.accepted_key = "rotated-key"
            monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(url, "rotated-key", extra))
            return await asyncio.gather(*(first_event(trigger(f"t{i}")) for i in range(20)))
        finally:
            await runner.cleanup()

    events = asyncio.run(scenario())
    assert [e["status"] for e in events] == ["success"] * 20
    assert service.auth_failures == 20  # each trigger met the revoked key once...
    assert len(lookups) == 2  # ...and the connection was looked up again once, not 20 times
