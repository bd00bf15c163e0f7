"""
Review items on the download and submit paths, each with the behaviour a user relies on.

Items (issue 11): 8 the read-ahead thread stops before the response closes; 9 ``extra_body`` from a
template or XCom; 11 ``overwrite=False`` checked at commit time, and task ids that cannot escape the
destination; 14 a CA bundle for the API does not apply to storage download links.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from pathlib import Path

import pytest
from aiohttp import web

from airflow_provider_hailuo.api import HailuoDownloadError, looks_like_mp4
from airflow_provider_hailuo.emulator.mp4 import sample_bytes
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.operators.hailuo import (
    HailuoDownloadVideoOperator,
    HailuoSubmitVideoOperator,
    safe_object_name,
)
from airflow_provider_hailuo.storage import READ_AHEAD_THREAD, land_stream, read_ahead
from tests.conftest import hailuo_conn_uri

VIDEO = sample_bytes()


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == READ_AHEAD_THREAD and t.is_alive()]


# -- 8 ---------------------------------------------------------------------------------------------
def test_closing_the_read_ahead_stops_its_thread_before_returning():
    def endless():
        while True:
            yield b"x" * 1024

    chunks = read_ahead(endless(), depth=2)
    next(chunks)
    chunks.close()
    assert read_ahead_threads() == []  # joined: nothing reads the response after this


def test_a_failed_check_leaves_no_reader_behind(tmp_path):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    def not_a_video():
        yield b"<html>an error page, not a video</html>"
        while True:
            yield b"x" * 1024

    from contextlib import closing

    with pytest.raises(HailuoDownloadError), closing(read_ahead(not_a_video())) as chunks:
        land_stream(
            chunks, ObjectStoragePath((tmp_path / "v.mp4").as_uri()), expected_bytes=None, overwrite=False
        )
    assert read_ahead_threads() == []
    assert list(tmp_path.iterdir()) == []


# -- 9 ---------------------------------------------------------------------------------------------
def test_extra_body_may_be_a_template_or_an_xcom():
    from airflow.providers.common.compat.sdk import DAG

    with DAG("extra_body_forms", schedule=None):
        upstream = HailuoSubmitVideoOperator(task_id="a", prompt="p")
        templated = HailuoSubmitVideoOperator(task_id="b", prompt="p", extra_body="{{ params.extra }}")
        from_xcom = HailuoSubmitVideoOperator(task_id="c", prompt="p", extra_body=upstream.output)
    assert templated.extra_body == "{{ params.extra }}" and from_xcom.extra_body is not None
    templated.extra_body = '{"aigc_watermark": true}'  # what the template renders
    assert templated.build_request().extra_body == {"aigc_watermark": True}
    templated.extra_body = "[1, 2]"
    with pytest.raises(ValueError, match="`extra_body`"):
        templated.build_request()


# -- 11 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("task_id", "name"),
    [("abc-123", "abc-123"), ("../../etc/passwd", "_.._etc_passwd"), ("a/b", "a_b"), ("..", None)],
)
def test_a_task_id_never_names_a_file_outside_the_folder(task_id, name):
    if name is None:
        with pytest.raises(Exception, match="cannot name a file"):
            safe_object_name(task_id)
    else:
        assert safe_object_name(task_id) == name


def test_the_object_key_stays_in_the_destination_folder(tmp_path):
    operator = HailuoDownloadVideoOperator(
        task_id="d", hailuo_task_id="../../escape", destination=tmp_path.as_uri() + "/videos/"
    )
    target = operator.target_path()
    assert Path(target.path).parent == tmp_path / "videos"


def chunks_that_create(destination_path, content: bytes):
    """The video's chunks; halfway through, someone else creates the destination object."""
    half = len(VIDEO) // 2
    yield VIDEO[:half]
    with destination_path.open("wb") as other:
        other.write(content)
    yield VIDEO[half:]


def paths(tmp_path, s3_server, s3_bucket, where):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if where == "file":
        return ObjectStoragePath((tmp_path / "v.mp4").as_uri())
    return ObjectStoragePath(f"s3://{s3_bucket}/race/v.mp4", conn_id=s3_server.conn_id)


@pytest.mark.parametrize("where", ["file", "s3"])
def test_an_object_created_during_the_download_is_never_replaced(tmp_path, request, where):
    s3_server = request.getfixturevalue("s3_server") if where == "s3" else None
    bucket = request.getfixturevalue("s3_bucket") if where == "s3" else None
    destination = paths(tmp_path, s3_server, bucket, where)
    with pytest.raises(HailuoDownloadError, match="already exists with different content"):
        land_stream(
            chunks_that_create(destination, b"someone else's video"),
            destination,
            expected_bytes=len(VIDEO),
            overwrite=False,
        )
    assert destination.read_bytes() == b"someone else's video"


@pytest.mark.parametrize("where", ["file", "s3"])
def test_the_same_video_created_meanwhile_is_kept_and_succeeds(tmp_path, request, where):
    s3_server = request.getfixturevalue("s3_server") if where == "s3" else None
    bucket = request.getfixturevalue("s3_bucket") if where == "s3" else None
    destination = paths(tmp_path, s3_server, bucket, where)
    landed = land_stream(
        chunks_that_create(destination, VIDEO), destination, expected_bytes=len(VIDEO), overwrite=False
    )
    assert (
        landed.sha256
        == hashlib.sha256(VIDEO).hexdigest()
        == hashlib.sha256(destination.read_bytes()).hexdigest()
    )


# -- 14 --------------------------------------------------------------------------------------------
trustme = pytest.importorskip("trustme")


@pytest.fixture
def storage_cdn(tmp_path):
    """An HTTPS "storage" host whose certificate the (stand-in) system trust store trusts."""
    import asyncio

    public_ca = trustme.CA()
    system_store = tmp_path / "system-ca.pem"
    public_ca.cert_pem.write_to_path(str(system_store))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    public_ca.issue_cert("localhost").configure_cert(context)

    async def video(request):
        return web.Response(body=VIDEO, content_type="video/mp4")

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/v.mp4", video)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"https://localhost:{port}/v.mp4", system_store
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


@pytest.mark.parametrize("extra_name", ["ca_bundle", "verify"])  # the form's field, and the older spelling
def test_the_api_ca_bundle_does_not_apply_to_storage_links(storage_cdn, tmp_path, monkeypatch, extra_name):
    import requests.adapters

    url, system_store = storage_cdn
    # requests' own trust store (certifi) stands in for the system's; no environment override.
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(system_store))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    private_ca = trustme.CA()  # the API gateway's own CA
    api_ca = tmp_path / "api-gateway-ca.pem"
    private_ca.cert_pem.write_to_path(str(api_ca))
    monkeypatch.setenv(
        "AIRFLOW_CONN_HAILUO_DEFAULT",
        hailuo_conn_uri("https://gw.example.test", "k", {extra_name: str(api_ca)}),
    )
    with HailuoHook().stream_video(url) as response:
        body = response.content
    assert body == VIDEO and looks_like_mp4(body)


def test_tls_checks_off_applies_to_downloads_too(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri("https://x.test", "k", {"verify": False})
    )
    assert HailuoHook()._download_session.verify is False


# -- 12 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("empty", [None, "", "  ", "None"])
def test_an_empty_task_id_from_upstream_fails_at_once_without_a_call(hailuo_conn, tmp_path, empty):
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_hailuo.sensors.hailuo import HailuoTaskSensor

    sensor = HailuoTaskSensor(task_id="w", hailuo_task_id=empty, deferrable=True)
    download = HailuoDownloadVideoOperator(
        task_id="d", hailuo_task_id=empty, destination=tmp_path.as_uri() + "/"
    )
    for run in (lambda: sensor.execute(context={}), lambda: download.execute(context={})):
        with pytest.raises(AirflowFailException, match=r"hailuo_task_id.*returned no task id"):
            run()
    assert hailuo_conn.counters()["polls"] == 0 and list(tmp_path.iterdir()) == []
