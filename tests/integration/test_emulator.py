"""
The emulator over real loopback HTTP: the API contract (docs/vendors.md), signed downloads, every fault, the
counters, the control API and the command line. Clients are tested against it, so it is tested first.

Every dialect (PPInfra, Novita, MiniMax) is checked at the wire against the vendors' words
(docs/vendors.md), written out here, never through the product's own wire code; the videos are
checked by decoding them (PyAV).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests

from airflow_provider_hailuo.emulator import (
    FRAME_SIZES,
    EmulatorServer,
    iter_video,
    looks_like_mp4,
    sample_bytes,
    undecodable_bytes,
    video_size,
)
from airflow_provider_hailuo.emulator.mp4 import all_sample_keys, free_box_header
from airflow_provider_hailuo.emulator.spec import VideoSpec

KEY = "test-key-1234"
# The v3 status words, written out: the emulator is tested against the vendors' words, not the product.
QUEUED, PROCESSING = "TASK_STATUS_QUEUED", "TASK_STATUS_PROCESSING"
SUCCEED, FAILED = "TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED"
MODEL = "minimax-hailuo-02"
# time_scale=10: 1 service second queued + 4 generating take 0.1 s + 0.4 s of real time.
SETTINGS: dict[str, Any] = {
    "queue_seconds": 1.0,
    "generation_seconds": 4.0,
    "link_ttl_seconds": 3600.0,
    "time_scale": 10.0,
    "video_bytes": None,
    "submits_per_minute": None,
}
REPO = Path(__file__).resolve().parents[2]
SPEC = VideoSpec(model=MODEL, prompt="x", duration=6, resolution="768P")


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key=KEY, **SETTINGS) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Iterator[EmulatorServer]:
    """The module's emulator with tasks, counters, faults and settings back to the start."""
    emulator_server.reset()
    emulator_server.configure(**SETTINGS)
    yield emulator_server
    emulator_server.reset()


def settled_counters(server: EmulatorServer, key: str, expected: int, limit: float = 2.0) -> dict[str, Any]:
    """Counters once ``key`` reached ``expected``: the server counts a body after its last write."""
    deadline = time.monotonic() + limit
    counters = server.counters()
    while counters[key] != expected and time.monotonic() < deadline:
        time.sleep(0.01)
        counters = server.counters()
    return counters


def auth(server: EmulatorServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def submit(server: EmulatorServer, body: dict[str, Any] | None = None, **kwargs: Any) -> requests.Response:
    return requests.post(
        f"{server.url}/v3/async/{MODEL}",
        json={"prompt": "a red fox in the snow"} if body is None else body,
        headers=auth(server),
        timeout=kwargs.pop("timeout", 10),
        **kwargs,
    )


def read_task(server: EmulatorServer, task_id: str) -> requests.Response:
    return requests.get(
        f"{server.url}/v3/async/task-result", params={"task_id": task_id}, headers=auth(server), timeout=10
    )


def wait_finished(server: EmulatorServer, task_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = read_task(server, task_id).json()
        if data["task"]["status"] in (SUCCEED, FAILED):
            return data
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s")


def finished_video_url(server: EmulatorServer) -> str:
    task_id = submit(server).json()["task_id"]
    return wait_finished(server, task_id)["videos"][0]["video_url"]


def assert_error_shape(resp: requests.Response, status: int, reason: str) -> dict[str, Any]:
    assert resp.status_code == status
    body = resp.json()
    assert body["code"] == status
    assert body["reason"] == reason
    assert isinstance(body["message"], str)
    assert body["metadata"] == {}
    return body


# --------------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------------
def test_missing_or_wrong_key_is_401(emulator):
    url = f"{emulator.url}/v3/async/{MODEL}"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEY}):
        resp = requests.post(url, json={"prompt": "x"}, headers=headers, timeout=10)
        body = assert_error_shape(resp, 401, "FAILED_TO_AUTH")
        assert body["message"] == "failed to authenticate API key"
    resp = requests.get(f"{emulator.url}/v3/async/task-result", params={"task_id": "abc"}, timeout=10)
    assert_error_shape(resp, 401, "FAILED_TO_AUTH")
    counters = emulator.counters()
    assert counters["submits"] == 0
    assert counters["submit_requests"] == 3
    assert counters["status_401"] == 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x", "duration": 7}, "duration"),
        ({"prompt": "x", "duration": 10, "resolution": "1080P"}, "resolution"),
        ({"prompt": ""}, "prompt"),
        ({"duration": 6}, "prompt"),
        ({"prompt": "x", "image": "file:///etc/passwd"}, "image"),
        ({"prompt": "x", "enable_prompt_expansion": "yes"}, "enable_prompt_expansion"),
    ],
)
def test_invalid_body_is_400_naming_the_field(emulator, body, field):
    resp = submit(emulator, body)
    message = assert_error_shape(resp, 400, "INVALID_REQUEST_BODY")["message"]
    assert f"`{field}`" in message
    assert emulator.counters()["submits"] == 0


def test_non_json_body_is_400(emulator):
    resp = requests.post(
        f"{emulator.url}/v3/async/{MODEL}", data=b"not json{", headers=auth(emulator), timeout=10
    )
    assert "not valid JSON" in assert_error_shape(resp, 400, "INVALID_REQUEST_BODY")["message"]


def test_lifecycle_queued_processing_succeed(emulator):
    emulator.configure(generation_seconds=8.0)  # 0.8 s of PROCESSING to watch
    resp = submit(emulator, {"prompt": "a cat", "duration": 10, "extra_field": [1]})
    assert resp.status_code == 200
    task_id = resp.json()["task_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", task_id)

    seen: list[dict[str, Any]] = []
    while True:
        data = read_task(emulator, task_id).json()
        seen.append(data["task"])
        if data["task"]["status"] == SUCCEED:
            break
        assert len(seen) < 200
        time.sleep(0.03)

    statuses = [t["status"] for t in seen]
    order = [QUEUED, PROCESSING, SUCCEED]
    assert [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]] == order
    progress = [t["progress_percent"] for t in seen]
    etas = [t["eta"] for t in seen]
    assert progress == sorted(progress) and len(set(progress)) > 3
    assert etas == sorted(etas, reverse=True) and etas[0] >= 1 and etas[-1] == 0
    assert all(isinstance(e, int) and e >= 0 for e in etas)
    assert all(0 <= p <= 99 for t, p in zip(seen, progress, strict=True) if t["status"] != SUCCEED)

    assert data["task"] == {
        "task_id": task_id,
        "task_type": "MINIMAX_HAILUO_02",
        "status": "TASK_STATUS_SUCCEED",
        "reason": "",
        "eta": 0,
        "progress_percent": 100,
    }
    assert data["images"] == []
    [video] = data["videos"]
    assert video["video_url_ttl"] == "360"  # 3600 service seconds / time_scale 10, as a string
    assert video["video_type"] == "mp4"
    extra = data["extra"]
    assert isinstance(extra["seed"], int) and extra["enable_nsfw_detection"] is False
    debug = extra["debug_info"]
    assert debug["request_info"] == ""
    assert debug["submit_time_ms"] <= debug["execute_time_ms"] <= debug["complete_time_ms"]
    counters = emulator.counters()
    assert counters["polls_by_task"] == {task_id: len(seen)}
    assert counters["submits"] == counters["tasks"] == 1


def test_each_read_of_a_finished_task_signs_a_new_link(emulator):
    task_id = submit(emulator).json()["task_id"]
    first = wait_finished(emulator, task_id)["videos"][0]["video_url"]
    time.sleep(0.01)  # expires has millisecond precision
    second = read_task(emulator, task_id).json()["videos"][0]["video_url"]
    assert first != second
    assert requests.get(first, timeout=10).status_code == 200
    assert requests.get(second, timeout=10).status_code == 200


def test_generation_range_is_drawn_per_task_reproducibly(emulator):
    emulator.configure(generation_seconds=(2.0, 6.0))
    durations = [emulator.state.create_task(SPEC).generation_s for _ in range(5)]
    assert all(0.2 <= d <= 0.6 for d in durations) and len(set(durations)) == 5
    emulator.reset()  # reseeds
    assert [emulator.state.create_task(SPEC).generation_s for _ in range(5)] == durations


def test_unknown_task_is_404_and_missing_id_is_400(emulator):
    body = assert_error_shape(read_task(emulator, "deadbeef"), 404, "TASK_NOT_FOUND")
    assert body["message"] == "task deadbeef not found"
    resp = requests.get(f"{emulator.url}/v3/async/task-result", headers=auth(emulator), timeout=10)
    assert_error_shape(resp, 400, "INVALID_REQUEST_BODY")
    resp = requests.get(f"{emulator.url}/v3/nothing-here", headers=auth(emulator), timeout=10)
    assert_error_shape(resp, 404, "NOT_FOUND")


def test_other_model_endpoints_are_accepted(emulator):
    resp = requests.post(
        f"{emulator.url}/v3/async/minimax-hailuo-2.3-t2v",
        json={"prompt": "x", "fast_pretreatment": True},
        headers=auth(emulator),
        timeout=10,
    )
    assert resp.status_code == 200 and resp.json()["task_id"]


# --------------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------------
def test_download_is_a_real_mp4_without_api_key(emulator):
    resp = requests.get(finished_video_url(emulator), timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "video/mp4"
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    assert resp.content == sample_bytes()
    assert looks_like_mp4(resp.content[:8])
    assert resp.content[4:8] == b"ftyp" and resp.content[:4] == struct.pack(">I", 32)
    counters = settled_counters(emulator, "download_completes", 1)
    assert counters["downloads"] == counters["download_completes"] == 1
    assert counters["download_auth_headers"] == 0


def test_download_counts_leaked_auth_headers(emulator):
    resp = requests.get(finished_video_url(emulator), headers=auth(emulator), timeout=10)
    assert resp.status_code == 200  # storage ignores it, but a client should never send it
    # Settled, so that this body's count cannot land in the next test's counters.
    assert settled_counters(emulator, "download_completes", 1)["download_auth_headers"] == 1


def test_padded_video_has_the_exact_size_and_stays_an_mp4(emulator):
    size = 3 * 1024 * 1024 + 5
    emulator.configure(video_bytes=size)
    resp = requests.get(finished_video_url(emulator), stream=True, timeout=10)
    assert int(resp.headers["Content-Length"]) == size
    received = 0
    head = b""
    for chunk in resp.iter_content(256 * 1024):
        if len(head) < 64 * 1024:
            head += chunk
        received += len(chunk)
    assert received == size
    assert looks_like_mp4(head)
    sample_len = len(sample_bytes())
    assert head[:sample_len] == sample_bytes()
    assert head[sample_len : sample_len + 8] == struct.pack(">I4s", size - sample_len, b"free")
    assert settled_counters(emulator, "download_completes", 1)["download_completes"] == 1


def test_padding_beyond_4_gib_uses_a_64_bit_box_without_building_it():
    total = 5 * 1024**3
    assert video_size(total) == total
    chunks = iter_video(total, chunk_size=1024 * 1024)
    sample = b"".join(next(chunks) for _ in range(1))  # the sample is smaller than one chunk
    header = next(chunks)
    padding = total - len(sample)
    assert header == struct.pack(">I4sQ", 1, b"free", padding) == free_box_header(padding)
    assert len(next(chunks)) == 1024 * 1024
    with pytest.raises(ValueError):
        video_size(len(sample_bytes()) + 3)  # too little room for a box header


def test_tampered_link_is_403(emulator):
    url = finished_video_url(emulator)
    bad_sig = re.sub(r"sig=([0-9a-f])", lambda m: "sig=" + ("0" if m.group(1) != "0" else "1"), url)
    later = re.sub(r"expires=(\d+)", lambda m: f"expires={int(m.group(1)) + 1000}", url)
    other_task = re.sub(r"/_downloads/[0-9a-f]+\.mp4", "/_downloads/" + "a" * 32 + ".mp4", url)
    for tampered in (bad_sig, later, other_task, url.split("?")[0]):
        resp = requests.get(tampered, timeout=10)
        assert resp.status_code == 403, tampered
        assert "<Code>SignatureDoesNotMatch</Code>" in resp.text
    assert requests.get(url, timeout=10).status_code == 200


def test_expired_link_is_403_and_a_new_read_renews_it(emulator):
    emulator.configure(link_ttl_seconds=2.0)  # 0.2 real seconds
    task_id = submit(emulator).json()["task_id"]
    data = wait_finished(emulator, task_id)
    assert data["videos"][0]["video_url_ttl"] == "0"
    time.sleep(0.3)
    resp = requests.get(data["videos"][0]["video_url"], timeout=10)
    assert resp.status_code == 403 and "<Code>AccessDenied</Code>" in resp.text
    fresh = read_task(emulator, task_id).json()["videos"][0]["video_url"]
    assert requests.get(fresh, timeout=10).status_code == 200
    assert emulator.counters()["status_403"] == 1


def test_download_host_differs_from_api_host():
    with EmulatorServer(download_host="127.0.0.2", queue_seconds=0, generation_seconds=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.download_url.startswith("http://127.0.0.2:")
        url = finished_video_url(server)
        assert url.startswith(server.download_url + "/_downloads/")
        assert requests.get(url, timeout=10).content == sample_bytes()


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------
def test_status_fault_on_submit_creates_no_task(emulator):
    emulator.add_fault(endpoint="submit", action="status", status=429, retry_after=7)
    resp = submit(emulator)
    assert_error_shape(resp, 429, "RATE_LIMIT_EXCEEDED")
    assert resp.headers["Retry-After"] == "7"
    counters = emulator.counters()
    assert counters["submits"] == 0 and counters["faults_applied"] == 1 and counters["status_429"] == 1
    assert submit(emulator).status_code == 200  # count 1: used up
    assert emulator.counters()["submits"] == 1


def test_status_fault_counts_and_forever(emulator):
    emulator.add_fault(endpoint="task_result", action="status", status=503, count=2)
    task_id = submit(emulator).json()["task_id"]
    assert [read_task(emulator, task_id).status_code for _ in range(3)] == [503, 503, 200]
    emulator.add_fault(endpoint="task_result", action="status", status=500, count=-1)
    assert {read_task(emulator, task_id).status_code for _ in range(5)} == {500}
    emulator.clear_faults()
    assert read_task(emulator, task_id).status_code == 200
    assert emulator.counters()["polls_by_task"][task_id] == 9


def test_faults_are_not_eaten_by_requests_that_fail_anyway(emulator):
    emulator.add_fault(endpoint="submit", action="status", status=503)
    assert submit(emulator, {"prompt": ""}).status_code == 400
    assert submit(emulator).status_code == 503


def test_delayed_submit_still_creates_the_task(emulator):
    emulator.add_fault(endpoint="submit", action="delay", seconds=1.0)
    with pytest.raises(requests.ReadTimeout):
        submit(emulator, timeout=0.3)
    assert emulator.counters()["submits"] == 1  # the client timed out, but it bought a video


def test_delay_fault_on_task_result_answers_normally(emulator):
    task_id = submit(emulator).json()["task_id"]
    emulator.add_fault(endpoint="task_result", action="delay", seconds=0.3)
    started = time.monotonic()
    assert read_task(emulator, task_id).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fail_generation_fault(emulator):
    emulator.add_fault(endpoint="submit", action="fail_generation", reason="nsfw")
    task_id = submit(emulator).json()["task_id"]
    data = wait_finished(emulator, task_id)
    assert data["task"]["status"] == FAILED
    assert data["task"]["reason"] == "nsfw"
    assert data["videos"] == []
    emulator.add_fault(endpoint="submit", action="fail_generation")
    data = wait_finished(emulator, submit(emulator).json()["task_id"])
    assert data["task"]["reason"] == "content moderation rejected the prompt"


def test_download_fault_expire(emulator):
    url = finished_video_url(emulator)
    emulator.add_fault(endpoint="download", action="expire")
    assert requests.get(url, timeout=10).status_code == 403
    assert requests.get(url, timeout=10).status_code == 200


def test_download_fault_cut(emulator):
    url = finished_video_url(emulator)
    emulator.add_fault(endpoint="download", action="cut", after_bytes=1000)
    resp = requests.get(url, stream=True, timeout=10)
    assert int(resp.headers["Content-Length"]) == len(sample_bytes())
    got = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in resp.iter_content(100):
            got += chunk
    assert len(got) == 1000
    emulator.add_fault(endpoint="download", action="cut")  # default: half
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10)
    counters = emulator.counters()
    assert counters["download_completes"] == 0 and counters["faults_applied"] == 2


def test_download_fault_wrong_length(emulator):
    url = finished_video_url(emulator)
    emulator.add_fault(endpoint="download", action="wrong_length", delta=500)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10)
    # On the wire: 500 bytes more announced than sent, and every byte of the real MP4 sent.
    emulator.add_fault(endpoint="download", action="wrong_length", delta=500)
    head, body = raw_get(url)
    assert f"content-length: {len(sample_bytes()) + 500}" in head.lower()
    assert body == sample_bytes()
    assert emulator.counters()["download_completes"] == 0


def raw_get(url: str) -> tuple[str, bytes]:
    """A bare HTTP/1.1 GET read to EOF: what the server really sent, with no client-side framing."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        request = (
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body


def test_download_fault_not_mp4(emulator):
    url = finished_video_url(emulator)
    emulator.add_fault(endpoint="download", action="not_mp4")
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "video/mp4"
    assert resp.content.startswith(b"<html>")
    assert not looks_like_mp4(resp.content[:8])


def test_download_fault_status_and_delay(emulator):
    url = finished_video_url(emulator)
    emulator.add_fault(endpoint="download", action="status", status=503, retry_after=1)
    emulator.add_fault(endpoint="download", action="delay", seconds=0.2)
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "1"
    started = time.monotonic()
    assert requests.get(url, timeout=10).content == sample_bytes()
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    "rule",
    [
        {"endpoint": "nowhere", "action": "status", "status": 500},
        {"endpoint": "submit", "action": "cut"},
        {"endpoint": "submit", "action": "status"},
        {"endpoint": "submit", "action": "status", "status": 200},
        {"endpoint": "download", "action": "cut", "count": 0},
        {"endpoint": "download", "action": "wrong_length", "delta": -5},
        {"endpoint": "submit", "action": "delay", "secs": 1},
    ],
)
def test_bad_fault_rules_are_refused(emulator, rule):
    with pytest.raises(ValueError):
        emulator.add_fault(**rule)


# --------------------------------------------------------------------------------------------------
# Control API and command line
# --------------------------------------------------------------------------------------------------
def test_control_api_over_http(emulator):
    base = f"{emulator.url}/_emulator"
    rules = [
        {"endpoint": "submit", "action": "status", "status": 503},
        {"endpoint": "download", "action": "not_mp4", "count": -1},
    ]
    resp = requests.post(f"{base}/faults", json=rules, timeout=10)
    assert resp.status_code == 200 and len(resp.json()["faults"]) == 2
    assert requests.post(f"{base}/faults", json={"endpoint": "x"}, timeout=10).status_code == 400
    assert [r["action"] for r in requests.get(f"{base}/faults", timeout=10).json()["faults"]] == [
        "status",
        "not_mp4",
    ]
    assert submit(emulator).status_code == 503
    assert requests.delete(f"{base}/faults", timeout=10).json() == {"faults": []}
    assert submit(emulator).status_code == 200

    config = requests.post(
        f"{base}/config", json={"link_ttl_seconds": 60, "time_scale": 2}, timeout=10
    ).json()
    assert config["link_ttl_seconds"] == 60 and config["time_scale"] == 2 and "api_key" not in config
    assert requests.post(f"{base}/config", json={"api_key": "x"}, timeout=10).status_code == 400
    assert requests.post(f"{base}/config", json={"time_scale": 0}, timeout=10).status_code == 400
    assert emulator.state.config.link_ttl_seconds == 60

    counters = requests.get(f"{base}/counters", timeout=10).json()
    assert counters["submit_requests"] == 2 and counters["submits"] == 1 and counters["status_503"] == 1
    assert counters["tasks"] == 1 and counters["faults_applied"] == 1
    assert requests.post(f"{base}/reset", timeout=10).json() == {"ok": True}
    counters = requests.get(f"{base}/counters", timeout=10).json()
    assert counters["tasks"] == 0 and counters["submit_requests"] == 0 and "status_503" not in counters
    assert requests.get(f"{base}/health", timeout=10).json() == {"ok": True}


def test_command_line(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    fault = json.dumps({"endpoint": "submit", "action": "status", "status": 503})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_hailuo.emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--generation-seconds",
            "1:2",
            "--time-scale",
            "100",
            "--submits-per-minute",
            "1",
            "--fault",
            fault,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"Hailuo emulator listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        url = match.group(1)
        assert int(match.group(2)) > 0
        headers = {"Authorization": "Bearer cli-key"}
        body = {"prompt": "a boat"}
        assert (
            requests.post(f"{url}/v3/async/{MODEL}", json=body, headers=headers, timeout=10).status_code
            == 503
        )
        resp = requests.post(f"{url}/v3/async/{MODEL}", json=body, headers=headers, timeout=10)
        assert resp.status_code == 200 and resp.json()["task_id"]
        # One a minute of service time (0.6 s here): the faulted submit created nothing and took
        # nothing from the allowance, the accepted one did.
        resp = requests.post(f"{url}/v3/async/{MODEL}", json=body, headers=headers, timeout=10)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
        counters = requests.get(f"{url}/_emulator/counters", timeout=10).json()
        assert counters["submits"] == 1 and counters["faults_applied"] == 1 and counters["rate_limited"] == 1
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "POST /v3/async/minimax-hailuo-02 -> 200" in stderr
    assert "cli-key" not in stderr


# --------------------------------------------------------------------------------------------------
# The account's allowance (submits_per_minute)
# --------------------------------------------------------------------------------------------------
def test_submits_beyond_the_allowance_are_429_with_retry_after_and_create_nothing(emulator):
    emulator.configure(submits_per_minute=2, time_scale=30.0)  # a minute of service time: 2 s
    first, second = submit(emulator), submit(emulator)
    assert first.status_code == second.status_code == 200
    emulator.add_fault(endpoint="submit", action="status", status=503)
    refused = submit(emulator)
    body = assert_error_shape(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert "rate limit" in body["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 2  # whole seconds, until the first one ages out
    counters = emulator.counters()
    assert counters["submits"] == 2 and counters["tasks"] == 2 and counters["rate_limited"] == 1
    assert counters["status_429"] == 1 and counters["faults_applied"] == 0  # the fault is still there
    attempts = emulator.submissions()
    assert [(a["status"], a["rate_limited"]) for a in attempts] == [(200, False), (200, False), (429, True)]
    assert attempts[2]["task_id"] is None and attempts[0]["at"] <= attempts[2]["at"] <= time.time()
    time.sleep(2.05)  # the minute has passed for both accepted submits
    assert submit(emulator).status_code == 503  # the fault, now that the allowance lets it through
    assert submit(emulator).status_code == 200


def test_the_allowance_is_a_sliding_minute_of_accepted_submits(emulator):
    emulator.configure(submits_per_minute=3, time_scale=60.0)  # a minute: 1 s
    statuses = []
    for _ in range(8):
        statuses.append(submit(emulator).status_code)
        time.sleep(0.2)
    # 3 accepted in the first second; then one each time the oldest leaves the minute: never 4 in 1 s.
    assert statuses[:4] == [200, 200, 200, 429] and 200 in statuses[5:]
    accepted = [a["at"] for a in emulator.submissions() if a["task_id"]]
    assert all(later - earlier >= 1.0 - 0.05 for earlier, later in zip(accepted, accepted[3:], strict=False))


def test_the_allowance_is_set_over_the_control_api_and_checked(emulator):
    base = f"{emulator.url}/_emulator"
    assert (
        requests.post(f"{base}/config", json={"submits_per_minute": 1}, timeout=10).json()[
            "submits_per_minute"
        ]
        == 1
    )
    assert submit(emulator).status_code == 200 and submit(emulator).status_code == 429
    for bad in (0, -1, 1.5, "5", True):
        refused = requests.post(f"{base}/config", json={"submits_per_minute": bad}, timeout=10)
        assert refused.status_code == 400, bad
    assert requests.post(f"{base}/config", json={"submits_per_minute": None}, timeout=10).status_code == 200
    assert submit(emulator).status_code == 200


def test_minimax_refuses_beyond_the_allowance_with_base_resp_1002_on_http_200(minimax):
    minimax.configure(submits_per_minute=1, time_scale=30.0)
    assert base_resp(mm_create(minimax), 0) == "success"
    refused = mm_create(minimax)
    assert refused.status_code == 200 and "Retry-After" not in refused.headers
    assert base_resp(refused, 1002) == "rate limit exceeded"
    assert "task_id" not in refused.json() or not refused.json()["task_id"]
    counters = minimax.counters()
    assert counters["submits"] == 1 and counters["rate_limited"] == 1 and counters["base_resp_1002"] == 1


# --------------------------------------------------------------------------------------------------
# Its own wire code
# --------------------------------------------------------------------------------------------------
def test_the_emulator_never_loads_the_products_wire_code():
    """A stand-in that validated with the client's own code could only agree with it."""
    code = (
        "import sys\n"
        "from airflow_provider_hailuo.emulator import EmulatorServer, create_app\n"
        "from airflow_provider_hailuo.emulator.__main__ import main\n"
        "for api in ('ppinfra', 'novita', 'minimax'):\n"
        "    create_app(api=api)\n"
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_hailuo')\n"
        "             and not m.startswith('airflow_provider_hailuo.emulator')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == ["airflow_provider_hailuo"]


# --------------------------------------------------------------------------------------------------
# Videos that match the request
# --------------------------------------------------------------------------------------------------
def probe(data: bytes) -> dict[str, Any]:
    """What a video really is, by decoding it (first and last frames included)."""
    av = pytest.importorskip("av")
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "width": frames[-1].width,
            "height": frames[-1].height,
            "duration": (container.duration or 0) / av.time_base,
            "frames": len(frames),
        }


@pytest.mark.parametrize(("resolution", "duration"), all_sample_keys())
def test_each_packaged_sample_is_the_h264_video_its_name_says(resolution, duration):
    info = probe(sample_bytes(resolution, duration))
    assert info["codec"] == "h264"
    assert (info["width"], info["height"]) == FRAME_SIZES[resolution]
    assert abs(info["duration"] - duration) < 0.1
    assert info["frames"] == duration * 2  # 2 fps


def test_the_samples_are_small_and_16_by_9():
    total = sum(len(sample_bytes(*key)) for key in all_sample_keys())
    assert total < 100 * 1024  # "well under 1 MB in all"
    for width, height in FRAME_SIZES.values():
        assert abs(width / height - 16 / 9) < 0.01 and width % 2 == height % 2 == 0
    assert FRAME_SIZES["768P"] == (1366, 768)  # what MiniMax reports for 768P text-to-video


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ("768P", 6)),  # the API's defaults
        ({"duration": 10}, ("768P", 10)),
        ({"resolution": "1080P"}, ("1080P", 6)),
    ],
)
def test_the_download_is_the_video_the_request_asked_for(emulator, body, expected):
    task_id = submit(emulator, {"prompt": "a fox", **body}).json()["task_id"]
    url = wait_finished(emulator, task_id)["videos"][0]["video_url"]
    data = requests.get(url, timeout=10).content
    assert data == sample_bytes(*expected)
    info = probe(data)
    assert (info["width"], info["height"]) == FRAME_SIZES[expected[0]]
    assert abs(info["duration"] - expected[1]) < 0.1


def test_padding_follows_the_requested_sample(emulator):
    size = 256 * 1024
    emulator.configure(video_bytes=size)
    task_id = submit(emulator, {"prompt": "a fox", "resolution": "1080P"}).json()["task_id"]
    data = requests.get(wait_finished(emulator, task_id)["videos"][0]["video_url"], timeout=10).content
    sample = sample_bytes("1080P", 6)
    assert len(data) == size and data[: len(sample)] == sample
    assert data[len(sample) : len(sample) + 8] == struct.pack(">I4s", size - len(sample), b"free")
    assert probe(data)["width"] == 1920  # a player skips the free box


def test_media_faults_on_one_download(emulator):
    task_id = submit(emulator, {"prompt": "a fox", "duration": 10}).json()["task_id"]
    url = wait_finished(emulator, task_id)["videos"][0]["video_url"]
    emulator.add_fault(endpoint="download", action="wrong_duration")
    assert abs(probe(requests.get(url, timeout=10).content)["duration"] - 2) < 0.1
    emulator.add_fault(endpoint="download", action="wrong_resolution")
    info = probe(requests.get(url, timeout=10).content)
    assert (info["width"], info["height"]) == (910, 512) and abs(info["duration"] - 10) < 0.1
    emulator.add_fault(endpoint="download", action="undecodable")
    broken = requests.get(url, timeout=10).content
    assert looks_like_mp4(broken) and broken == undecodable_bytes()
    assert_does_not_decode(broken)
    assert requests.get(url, timeout=10).content == sample_bytes("768P", 10)  # faults used up


def assert_does_not_decode(data: bytes) -> None:
    av = pytest.importorskip("av")
    with pytest.raises(av.FFmpegError), av.open(io.BytesIO(data)) as container:
        list(container.decode(video=0))


@pytest.mark.parametrize(
    ("action", "expected"),
    [("wrong_duration", (1366, 768, 2)), ("wrong_resolution", (910, 512, 6)), ("undecodable", None)],
)
def test_media_faults_on_submit_mark_every_download_of_the_task(emulator, action, expected):
    emulator.add_fault(endpoint="submit", action=action)
    task_id = submit(emulator).json()["task_id"]
    for _ in range(2):  # a renewed link serves the same wrong video: the paid video is what it is
        data = requests.get(wait_finished(emulator, task_id)["videos"][0]["video_url"], timeout=10).content
        if expected is None:
            assert looks_like_mp4(data)
            assert_does_not_decode(data)
        else:
            info = probe(data)
            assert (info["width"], info["height"], round(info["duration"])) == expected
    assert emulator.tasks()[task_id]["video_variant"] == action


# --------------------------------------------------------------------------------------------------
# PPInfra: the 2.3 endpoints, and frames under PPInfra's current names only
# --------------------------------------------------------------------------------------------------
def post_v3(server: EmulatorServer, endpoint: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{server.url}/v3/async/{endpoint}", json=body, headers=auth(server), timeout=10)


FRAME = "https://images.example.com/first.png"
LAST = "https://images.example.com/last.png"


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("minimax-hailuo-2.3-i2v", {"prompt": "x"}, "image"),
        ("minimax-hailuo-2.3-fast-i2v", {"prompt": "x", "image_url": FRAME}, "image"),
        (
            "minimax-hailuo-2.3-fast-i2v",
            {"prompt": "x", "image": FRAME, "fast_pretreatment": True},
            "fast_pretreatment",
        ),
        ("minimax-hailuo-2.3-t2v", {"prompt": "x", "duration": 10, "resolution": "1080P"}, "resolution"),
        ("minimax-hailuo-2.3-t2v", {"prompt": "x", "resolution": "512P"}, "resolution"),
        ("minimax-hailuo-2.3-t2v", {"prompt": "x", "aigc_watermark": "yes"}, "aigc_watermark"),
        # the seed's name, gone from the current page: refused, not read as a frame nor ignored
        ("minimax-hailuo-02", {"prompt": "x", "image_url": FRAME}, "image_url"),
        ("minimax-hailuo-02", {"prompt": "x", "image": "data:image/png;base64,not base64!"}, "image"),
        ("minimax-hailuo-02", {"prompt": "x", "image": FRAME, "end_image": "ftp://h/x.png"}, "end_image"),
        ("minimax-hailuo-02", {"prompt": "x", "fast_pretreatment": "yes"}, "fast_pretreatment"),
        ("minimax-hailuo-02", {"prompt": "x", "resolution": "512P"}, "resolution"),
        ("minimax-hailuo-2.3-i2v", {"prompt": "x", "image": "ftp://h/x.png"}, "image"),
    ],
)
def test_ppinfra_endpoint_rules(emulator, endpoint, body, field):
    resp = post_v3(emulator, endpoint, body)
    assert f"`{field}`" in assert_error_shape(resp, 400, "INVALID_REQUEST_BODY")["message"]
    assert emulator.counters()["submits"] == 0


@pytest.mark.parametrize(
    ("endpoint", "body", "task_type", "mode"),
    [
        ("minimax-hailuo-02", {"image": FRAME}, "MINIMAX_HAILUO_02", "image-to-video"),
        (
            "minimax-hailuo-02",
            {"image": FRAME, "end_image": LAST, "fast_pretreatment": True},
            "MINIMAX_HAILUO_02",
            "first-last-frame",
        ),
        ("minimax-hailuo-2.3-t2v", {"aigc_watermark": True}, "MINIMAX_HAILUO_2_3_T2V", "text-to-video"),
        ("minimax-hailuo-2.3-i2v", {"image": FRAME}, "MINIMAX_HAILUO_2_3_I2V", "image-to-video"),
        ("minimax-hailuo-2.3-fast-i2v", {"image": FRAME}, "MINIMAX_HAILUO_2_3_FAST_I2V", "image-to-video"),
        ("minimax-video-01", {"image": FRAME}, "MINIMAX_VIDEO_01", "image-to-video"),
    ],
)
def test_ppinfra_endpoints_accept_their_own_fields(emulator, endpoint, body, task_type, mode):
    resp = post_v3(emulator, endpoint, {"prompt": "x", **body})
    assert resp.status_code == 200, resp.text
    data = wait_finished(emulator, resp.json()["task_id"])
    assert data["task"]["task_type"] == task_type
    task = emulator.tasks()[data["task"]["task_id"]]
    assert task["spec"]["mode"] == mode and task["path"] == f"/v3/async/{endpoint}"


def test_ppinfra_reads_image_and_end_image_as_data_urls_too(emulator):
    """PPInfra's current Hailuo-02 page: `image`/`end_image`, http(s) or base64 `data:` images."""
    first, last = png_data_url(), png_data_url(kind="JPEG")
    task_id = submit(emulator, {"prompt": "x", "image": first, "end_image": last}).json()["task_id"]
    task = emulator.tasks()[task_id]
    assert task["fields"] == ["end_image", "image", "prompt"]
    assert (task["spec"]["first_frame"], task["spec"]["last_frame"]) == (first, last)
    assert task["spec"]["mode"] == "first-last-frame"


def test_ppinfra_refuses_the_seeds_image_url_on_hailuo_02(emulator):
    """A client still sending `image_url` learns it at once, not from a text-to-video on its invoice."""
    resp = submit(emulator, {"prompt": "x", "image_url": FRAME})
    message = assert_error_shape(resp, 400, "INVALID_REQUEST_BODY")["message"]
    assert "`image_url`" in message and "`image`" in message
    assert emulator.counters()["submits"] == 0


# --------------------------------------------------------------------------------------------------
# Novita: `image` / `end_image`, data URLs, and `image_url` ignored
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def novita_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(api="novita", api_key=KEY, **SETTINGS) as server:
        yield server


@pytest.fixture
def novita(novita_server: EmulatorServer) -> Iterator[EmulatorServer]:
    novita_server.reset()
    novita_server.configure(**SETTINGS)
    yield novita_server
    novita_server.reset()


def png_data_url(width: int = 640, height: int = 360, kind: str = "PNG") -> str:
    image_mod = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    image_mod.new("RGB", (width, height), (200, 80, 40)).save(buf, kind)
    mime = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}[kind]
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode()


def test_novita_reads_image_and_end_image(novita):
    first = png_data_url()
    body = {"prompt": "x", "image": first, "end_image": LAST, "fast_pretreatment": True}
    resp = post_v3(novita, MODEL, body)
    assert resp.status_code == 200, resp.text
    task = novita.tasks()[resp.json()["task_id"]]
    assert task["spec"]["first_frame"] == first and task["spec"]["last_frame"] == LAST
    assert task["spec"]["mode"] == "first-last-frame"
    assert task["body"] == body
    assert wait_finished(novita, task["task_id"])["task"]["status"] == SUCCEED


def test_novita_ignores_image_url_and_makes_a_text_to_video(novita):
    task_id = post_v3(novita, MODEL, {"prompt": "x", "image_url": FRAME}).json()["task_id"]
    task = novita.tasks()[task_id]
    assert "image_url" in task["body"]
    assert task["spec"]["first_frame"] is None and task["spec"]["mode"] == "text-to-video"


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        (MODEL, {"prompt": "x", "image": "data:image/png;base64,not base64!"}, "image"),
        (MODEL, {"prompt": "x", "image": "data:image/gif;base64,R0lGODlh"}, "image"),
        (MODEL, {"prompt": "x", "end_image": "data:image/jpeg;base64,iVBORw0KGgo="}, "end_image"),
        (MODEL, {"prompt": "x", "fast_pretreatment": "true"}, "fast_pretreatment"),
        ("minimax-hailuo-2.3-i2v", {"prompt": "x", "image_url": FRAME}, "image"),
        (
            "minimax-hailuo-2.3-fast-i2v",
            {"prompt": "x", "image": FRAME, "fast_pretreatment": True},
            "fast_pretreatment",
        ),
    ],
)
def test_novita_rules(novita, endpoint, body, field):
    resp = post_v3(novita, endpoint, body)
    assert f"`{field}`" in assert_error_shape(resp, 400, "INVALID_REQUEST_BODY")["message"]
    assert novita.counters()["submits"] == 0
    [attempt] = novita.submissions()
    assert attempt["body"] == body and attempt["status"] == 400 and attempt["task_id"] is None


def test_novita_2_3_image_to_video_takes_a_data_url(novita):
    first = png_data_url(kind="WEBP")
    resp = post_v3(novita, "minimax-hailuo-2.3-fast-i2v", {"prompt": "x", "image": first})
    assert resp.status_code == 200, resp.text
    assert novita.tasks()[resp.json()["task_id"]]["spec"]["first_frame"] == first


# --------------------------------------------------------------------------------------------------
# MiniMax's own API
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minimax_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(api="minimax", api_key=KEY, **SETTINGS) as server:
        yield server


@pytest.fixture
def minimax(minimax_server: EmulatorServer) -> Iterator[EmulatorServer]:
    minimax_server.reset()
    minimax_server.configure(**SETTINGS)
    yield minimax_server
    minimax_server.reset()


def mm_create(server: EmulatorServer, body: dict[str, Any] | None = None, **kw: Any) -> requests.Response:
    body = {"model": "MiniMax-Hailuo-02", "prompt": "a red fox"} if body is None else body
    return requests.post(
        f"{server.url}/v1/video_generation", json=body, timeout=10, **{"headers": auth(server), **kw}
    )


def mm_query(server: EmulatorServer, task_id: str, **kw: Any) -> requests.Response:
    return requests.get(
        f"{server.url}/v1/query/video_generation",
        params={"task_id": task_id},
        timeout=10,
        **{"headers": auth(server), **kw},
    )


def mm_retrieve(server: EmulatorServer, file_id: str, **kw: Any) -> requests.Response:
    params = {"file_id": file_id, **kw.pop("params", {})}
    return requests.get(
        f"{server.url}/v1/files/retrieve", params=params, timeout=10, **{"headers": auth(server), **kw}
    )


def mm_wait(server: EmulatorServer, task_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = mm_query(server, task_id).json()
        if data.get("status") in ("Success", "Fail"):
            return data
        time.sleep(0.03)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s")


def base_resp(resp: requests.Response, code: int) -> str:
    """The `base_resp` of an HTTP 200 answer, checked for `code`; its message."""
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["base_resp"]["status_code"] == code, data
    return data["base_resp"]["status_msg"]


def test_minimax_create_query_retrieve_download(minimax):
    minimax.configure(queue_seconds=4.0)  # 0.4 s preparing + queueing, to watch both words
    resp = mm_create(minimax, {"model": "MiniMax-Hailuo-02", "prompt": "a fox", "duration": 10})
    assert base_resp(resp, 0) == "success"
    task_id = resp.json()["task_id"]
    assert re.fullmatch(r"\d{15}", task_id)
    seen = []
    while True:
        data = mm_query(minimax, task_id).json()
        assert data["task_id"] == task_id and data["base_resp"] == {"status_code": 0, "status_msg": "success"}
        if not seen or seen[-1] != data["status"]:
            seen.append(data["status"])
        if data["status"] == "Success":
            break
        assert "file_id" not in data and "video_width" not in data
        time.sleep(0.02)
    assert seen == ["Preparing", "Queueing", "Processing", "Success"]
    assert (data["video_width"], data["video_height"]) == (1366, 768)
    assert re.fullmatch(r"\d{15}", data["file_id"]) and data["file_id"] != task_id

    file_resp = mm_retrieve(minimax, data["file_id"], params={"GroupId": "1234567"})
    assert base_resp(file_resp, 0) == "success"
    file = file_resp.json()["file"]
    assert file["file_id"] == int(data["file_id"]) and file["purpose"] == "video_generation"
    assert file["filename"].endswith(".mp4") and isinstance(file["created_at"], int)
    video = requests.get(file["download_url"], timeout=10)
    assert video.status_code == 200 and video.content == sample_bytes("768P", 10)
    assert minimax.counters()["file_retrievals"] == 1
    assert minimax.counters()["download_auth_headers"] == 0


def test_minimax_download_url_expires_and_a_new_retrieval_renews_it(minimax):
    minimax.configure(link_ttl_seconds=2.0)  # 0.2 real seconds
    file_id = mm_wait(minimax, mm_create(minimax).json()["task_id"])["file_id"]
    url = mm_retrieve(minimax, file_id).json()["file"]["download_url"]
    time.sleep(0.3)
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403 and "<Code>AccessDenied</Code>" in expired.text
    fresh = mm_retrieve(minimax, file_id).json()["file"]["download_url"]
    assert fresh != url and requests.get(fresh, timeout=10).status_code == 200


def test_minimax_512p_image_to_video_reports_its_size(minimax):
    body = {"model": "MiniMax-Hailuo-02", "first_frame_image": png_data_url(), "resolution": "512P"}
    task_id = mm_create(minimax, body).json()["task_id"]  # no prompt: optional with a first frame
    data = mm_wait(minimax, task_id)
    assert (data["video_width"], data["video_height"]) == (910, 512)
    url = mm_retrieve(minimax, data["file_id"]).json()["file"]["download_url"]
    info = probe(requests.get(url, timeout=10).content)
    assert (info["width"], info["height"]) == (910, 512)
    assert minimax.tasks()[task_id]["spec"]["mode"] == "image-to-video"


def test_minimax_wrong_key_is_base_resp_1004_on_every_endpoint(minimax):
    file_id = mm_wait(minimax, mm_create(minimax).json()["task_id"])["file_id"]
    bad = {"Authorization": "Bearer nope"}
    for resp in (mm_create(minimax, headers=bad), mm_query(minimax, "1", headers=bad)):
        assert "authentication" in base_resp(resp, 1004)
    assert "authentication" in base_resp(mm_retrieve(minimax, file_id, headers={}), 1004)
    counters = minimax.counters()
    assert counters["submits"] == 1 and counters["base_resp_1004"] == 3 and "status_401" not in counters


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "MiniMax-Hailuo-02"}, "prompt"),
        ({"model": "MiniMax-Hailuo-02", "prompt": "x" * 2001}, "prompt"),
        ({"model": "MiniMax-Hailuo-02", "prompt": "x", "resolution": "512P"}, "resolution"),
        (
            {
                "model": "MiniMax-Hailuo-02",
                "first_frame_image": FRAME,
                "last_frame_image": LAST,
                "resolution": "512P",
            },
            "resolution",
        ),
        ({"model": "MiniMax-Hailuo-02", "prompt": "x", "resolution": "1080P", "duration": 10}, "resolution"),
        ({"model": "MiniMax-Hailuo-02", "prompt": "x", "duration": 8}, "duration"),
        (
            {"model": "MiniMax-Hailuo-2.3", "prompt": "x", "resolution": "512P", "first_frame_image": FRAME},
            "resolution",
        ),
        (
            {
                "model": "MiniMax-Hailuo-2.3",
                "prompt": "x",
                "first_frame_image": FRAME,
                "last_frame_image": LAST,
            },
            "last_frame_image",
        ),
        ({"model": "MiniMax-Hailuo-2.3-Fast", "prompt": "x"}, "first_frame_image"),
        ({"model": "MiniMax-Hailuo-02", "prompt": "x", "prompt_optimizer": 1}, "prompt_optimizer"),
        (
            {"model": "MiniMax-Hailuo-02", "prompt": "x", "first_frame_image": "s3://b/k.png"},
            "first_frame_image",
        ),
        ({"model": "MiniMax-Hailuo-02", "prompt": "x", "callback_url": "file:///x"}, "callback_url"),
    ],
)
def test_minimax_model_rules_are_2013_naming_the_field(minimax, body, field):
    message = base_resp(mm_create(minimax, body), 2013)
    assert f"`{field}`" in message
    if body.get("model", "").startswith("MiniMax-Hailuo-2.3") and field != "prompt":
        assert body["model"] in message
    assert minimax.counters()["submits"] == 0


@pytest.mark.parametrize(
    ("size", "rule"),
    [((300, 600), "short side"), ((1200, 400), "aspect ratio"), ((400, 1100), "aspect ratio")],
)
def test_minimax_checks_data_url_frames_against_its_image_rules(minimax, size, rule):
    body = {"model": "MiniMax-Hailuo-02", "prompt": "x", "first_frame_image": png_data_url(*size)}
    assert rule in base_resp(mm_create(minimax, body), 2013)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "MiniMax-Hailuo-02", "prompt": "x", "resolution": "1080P"},
        {"model": "MiniMax-Hailuo-02", "first_frame_image": FRAME, "last_frame_image": LAST, "duration": 10},
        {"model": "MiniMax-Hailuo-2.3", "prompt": "x", "duration": 10, "aigc_watermark": True},
        {"model": "MiniMax-Hailuo-2.3-Fast", "first_frame_image": FRAME, "resolution": "1080P"},
        {"model": "T2V-01-Director", "prompt": "x", "resolution": "720P"},  # unknown: universal rules only
    ],
)
def test_minimax_accepts_what_its_models_take(minimax, body):
    resp = mm_create(minimax, body)
    assert base_resp(resp, 0) == "success"
    assert minimax.tasks()[resp.json()["task_id"]]["body"] == body


def test_minimax_unknown_ids_are_2013(minimax):
    assert "not found" in base_resp(mm_query(minimax, "123456789012345"), 2013)
    assert "not found" in base_resp(mm_retrieve(minimax, "123456789012345"), 2013)
    assert "`file_id`" in base_resp(mm_retrieve(minimax, "abc"), 2013)
    assert "`task_id`" in base_resp(mm_query(minimax, ""), 2013)
    assert minimax.counters()["base_resp_2013"] == 4


@pytest.mark.parametrize(
    ("code", "creates"),
    [
        (1002, False),
        (1004, False),
        (1008, False),
        (1026, False),
        (2013, False),
        (1000, True),
        (1001, True),
        (1024, True),
    ],
)
def test_minimax_base_resp_fault_on_submit(minimax, code, creates):
    minimax.add_fault(endpoint="submit", action="base_resp", code=code)
    resp = mm_create(minimax)
    base_resp(resp, code)
    assert "task_id" not in resp.json()
    assert minimax.counters()["submits"] == int(creates)  # 1000/1001/1024: the task may exist
    assert base_resp(mm_create(minimax), 0) == "success"  # count 1: used up


def test_minimax_base_resp_fault_can_say_whether_the_task_exists(minimax):
    minimax.add_fault(
        endpoint="submit", action="base_resp", code=1002, creates_task=True, message="slow down"
    )
    assert base_resp(mm_create(minimax), 1002) == "slow down"
    minimax.add_fault(endpoint="submit", action="base_resp", code=1000, creates_task=False)
    base_resp(mm_create(minimax), 1000)
    assert minimax.counters()["submits"] == 1


def test_minimax_base_resp_faults_on_query_and_retrieval(minimax):
    task_id = mm_create(minimax).json()["task_id"]
    minimax.add_fault(endpoint="task_result", action="base_resp", code=1002, count=2)
    assert [mm_query(minimax, task_id).json()["base_resp"]["status_code"] for _ in range(3)] == [
        1002,
        1002,
        0,
    ]
    file_id = mm_wait(minimax, task_id)["file_id"]
    minimax.add_fault(endpoint="file_retrieve", action="base_resp", code=1024)
    minimax.add_fault(endpoint="file_retrieve", action="status", status=503, retry_after=2)
    assert base_resp(mm_retrieve(minimax, file_id), 1024) == "internal error"
    resp = mm_retrieve(minimax, file_id)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "2"
    assert resp.json()["base_resp"]["status_code"] == 1000
    assert base_resp(mm_retrieve(minimax, file_id), 0) == "success"
    counters = minimax.counters()
    assert counters["base_resp_1002"] == 2 and counters["base_resp_1024"] == 1 and counters["status_503"] == 1


def test_minimax_failed_generation(minimax):
    minimax.add_fault(endpoint="submit", action="fail_generation", reason="video flagged")
    data = mm_wait(minimax, mm_create(minimax).json()["task_id"])
    assert data["status"] == "Fail" and "file_id" not in data
    assert data["base_resp"] == {"status_code": 1027, "status_msg": "video flagged"}
    minimax.add_fault(endpoint="submit", action="fail_generation", code=0)
    data = mm_wait(minimax, mm_create(minimax).json()["task_id"])
    assert data["status"] == "Fail" and data["base_resp"]["status_code"] == 0


def test_minimax_success_without_file_and_answer_without_status(minimax):
    task_id = mm_create(minimax).json()["task_id"]
    minimax.add_fault(endpoint="task_result", action="empty_videos")
    minimax.add_fault(endpoint="task_result", action="no_task")
    data = mm_query(minimax, task_id).json()  # still running: empty_videos waits, no_task applies
    assert "status" not in data and data["base_resp"]["status_code"] == 0
    data = mm_wait(minimax, task_id)
    assert data["status"] == "Success" and "file_id" not in data
    assert "file_id" in mm_query(minimax, task_id).json()


def test_minimax_reports_the_requested_size_when_a_fault_serves_another(minimax):
    minimax.add_fault(endpoint="submit", action="wrong_resolution")
    data = mm_wait(minimax, mm_create(minimax).json()["task_id"])
    assert (data["video_width"], data["video_height"]) == (1366, 768)
    url = mm_retrieve(minimax, data["file_id"]).json()["file"]["download_url"]
    info = probe(requests.get(url, timeout=10).content)
    assert (info["width"], info["height"]) == (910, 512)


def test_base_resp_faults_exist_only_on_minimax(emulator, novita):
    for server in (emulator, novita):
        with pytest.raises(ValueError, match="base_resp"):
            server.add_fault(endpoint="submit", action="base_resp", code=1002)
        with pytest.raises(ValueError, match="file_retrieve"):
            server.add_fault(endpoint="file_retrieve", action="status", status=500)
        with pytest.raises(ValueError):
            server.add_fault(endpoint="submit", action="status", status=500, code=1000)
    resp = requests.post(
        f"{emulator.url}/_emulator/faults",
        json={"endpoint": "submit", "action": "base_resp", "code": 1},
        timeout=10,
    )
    assert resp.status_code == 400


def test_minimax_routes_are_not_served_by_the_v3_dialects(emulator, minimax):
    assert (
        requests.post(
            f"{emulator.url}/v1/video_generation", json={}, headers=auth(emulator), timeout=10
        ).status_code
        == 404
    )
    resp = requests.post(
        f"{minimax.url}/v3/async/{MODEL}", json={"prompt": "x"}, headers=auth(minimax), timeout=10
    )
    assert resp.status_code == 404 and "base_resp" in resp.json()


# --------------------------------------------------------------------------------------------------
# What each task received, for tests of the client
# --------------------------------------------------------------------------------------------------
def test_recorded_bodies_over_the_control_api(minimax):
    body = {"model": "MiniMax-Hailuo-02", "prompt": "x", "first_frame_image": FRAME, "last_frame_image": LAST}
    task_id = mm_create(minimax, body).json()["task_id"]
    base_resp(
        mm_create(minimax, {"model": "MiniMax-Hailuo-2.3", "prompt": "x", "last_frame_image": LAST}), 2013
    )
    base = f"{minimax.url}/_emulator"
    [task] = requests.get(f"{base}/tasks", timeout=10).json()["tasks"]
    assert task["task_id"] == task_id and task["body"] == body
    assert task["fields"] == ["first_frame_image", "last_frame_image", "model", "prompt"]
    assert task["spec"] == {
        "model": "MiniMax-Hailuo-02",
        "prompt": "x",
        "duration": 6,
        "resolution": "768P",
        "first_frame": FRAME,
        "last_frame": LAST,
        "mode": "first-last-frame",
    }
    one = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()
    assert {**one, "phase": None} == {**task, "phase": None}  # the phase moves on with time
    assert requests.get(f"{base}/tasks/999", timeout=10).status_code == 404
    attempts = requests.get(f"{base}/submissions", timeout=10).json()["submissions"]
    assert [(a["status"], a["task_id"]) for a in attempts] == [(200, task_id), (200, None)]
    assert attempts[1]["body"]["model"] == "MiniMax-Hailuo-2.3"
    assert minimax.task_body(task_id) == body
    assert minimax.state.tasks[task_id].body == body
    assert requests.get(f"{base}/config", timeout=10).json()["api"] == "minimax"


def test_unknown_api_is_refused():
    with pytest.raises(ValueError, match="api must be one of ppinfra, novita, minimax"):
        EmulatorServer(api="fal")


# --------------------------------------------------------------------------------------------------
# What a real service and its CDN also do (issue 11)
# --------------------------------------------------------------------------------------------------
def test_succeed_with_no_video_waits_for_the_task_to_succeed(emulator):
    task_id = submit(emulator).json()["task_id"]
    emulator.add_fault(endpoint="task_result", action="empty_videos")
    assert read_task(emulator, task_id).json()["task"]["status"] == QUEUED
    assert len(emulator.state.faults.snapshot()) == 1  # a running task does not use it up
    data = wait_finished(emulator, task_id)
    assert data["task"]["status"] == SUCCEED and data["videos"] == []
    assert len(read_task(emulator, task_id).json()["videos"]) == 1


def test_a_2xx_without_task_and_a_body_of_choice(emulator):
    task_id = submit(emulator).json()["task_id"]
    emulator.add_fault(endpoint="task_result", action="no_task")
    resp = read_task(emulator, task_id)
    assert resp.status_code == 200 and "task" not in resp.json() and resp.json()["videos"] == []
    emulator.add_fault(endpoint="task_result", action="body", body={"status": "ok"}, status=202)
    resp = read_task(emulator, task_id)
    assert resp.status_code == 202 and resp.json() == {"status": "ok"}
    emulator.add_fault(endpoint="submit", action="body", body=["queued"])
    resp = submit(emulator)
    assert resp.status_code == 200 and resp.json() == ["queued"]
    emulator.add_fault(endpoint="submit", action="body", body={}, creates_task=False)
    submit(emulator)
    assert emulator.counters()["submits"] == 2  # the first plus the unreadable-but-paid one


@pytest.mark.parametrize(("status", "hops"), [(302, 1), (307, 3), (301, 2)])
def test_redirected_download(emulator, status, hops):
    url = finished_video_url(emulator)
    emulator.add_fault(endpoint="download", action="redirect", status=status, hops=hops)
    first = requests.get(url, allow_redirects=False, timeout=10)
    assert first.status_code == status and first.headers["Location"].startswith(emulator.url + "/_downloads/")
    emulator.add_fault(endpoint="download", action="redirect", status=status, hops=hops)
    resp = requests.get(url, timeout=10)
    assert [r.status_code for r in resp.history] == [status] * hops
    assert resp.status_code == 200 and resp.content == sample_bytes()
    assert settled_counters(emulator, "download_completes", 1)["download_completes"] == 1


def test_gzip_encoded_download_whatever_the_client_asked(emulator):
    url = finished_video_url(emulator)
    emulator.add_fault(endpoint="download", action="gzip")
    resp = requests.get(url, headers={"Accept-Encoding": "identity"}, stream=True, timeout=10)
    assert resp.headers["Content-Encoding"] == "gzip" and resp.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in resp.headers
    raw = resp.raw.read(decode_content=False)
    assert raw[:2] == b"\x1f\x8b" and gzip.decompress(raw) == sample_bytes()

    emulator.add_fault(endpoint="download", action="gzip", content_length=True)
    resp = requests.get(url, stream=True, timeout=10)
    raw = resp.raw.read(decode_content=False)
    assert int(resp.headers["Content-Length"]) == len(raw) != len(sample_bytes())
    assert gzip.decompress(raw) == sample_bytes()
    emulator.add_fault(endpoint="download", action="gzip")
    assert requests.get(url, timeout=10).content == sample_bytes()  # a client that decodes gets the video


def test_chunked_download_without_content_length(emulator):
    emulator.configure(video_bytes=3 * 1024 * 1024)
    url = finished_video_url(emulator)
    emulator.add_fault(endpoint="download", action="chunked")
    head, body = raw_get(url)
    assert "transfer-encoding: chunked" in head.lower() and "content-length" not in head.lower()
    assert body.endswith(b"\r\n0\r\n\r\n")
    emulator.add_fault(endpoint="download", action="chunked")
    resp = requests.get(url, timeout=10)
    assert len(resp.content) == 3 * 1024 * 1024 and resp.content.startswith(sample_bytes())
    # Both bodies were sent to the end. (At least: a stream an earlier test left open may still
    # finish after the reset and be counted here too.)
    assert settled_counters(emulator, "download_completes", 2)["download_completes"] >= 2


@pytest.mark.parametrize(
    "rule",
    [
        {"endpoint": "download", "action": "redirect", "status": 200},
        {"endpoint": "download", "action": "redirect", "hops": 0},
        {"endpoint": "task_result", "action": "body"},
        {"endpoint": "task_result", "action": "empty_videos", "status": 500},
        {"endpoint": "download", "action": "gzip", "content_length": "yes"},
        {"endpoint": "submit", "action": "body", "body": {}, "creates_task": 1},
        {"endpoint": "task_result", "action": "undecodable"},
    ],
)
def test_bad_new_fault_rules_are_refused(emulator, rule):
    with pytest.raises(ValueError):
        emulator.add_fault(**rule)


# --------------------------------------------------------------------------------------------------
# HTTPS with a certificate no system trusts
# --------------------------------------------------------------------------------------------------
def test_https_with_a_self_signed_ca():
    with EmulatorServer(tls=True, api_key=KEY, download_host="127.0.0.2", **SETTINGS) as server:
        assert server.url.startswith("https://127.0.0.1:") and server.download_url.startswith(
            "https://127.0.0.2:"
        )
        ca = server.ca_path
        assert Path(ca).read_text().startswith("-----BEGIN CERTIFICATE-----")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{server.url}/_emulator/health", timeout=10)  # not in the system's trust store
        resp = requests.post(
            f"{server.url}/v3/async/{MODEL}",
            json={"prompt": "x"},
            headers=auth(server),
            verify=ca,
            timeout=10,
        )
        task_id = resp.json()["task_id"]
        deadline = time.monotonic() + 10
        while True:
            data = requests.get(
                f"{server.url}/v3/async/task-result",
                params={"task_id": task_id},
                headers=auth(server),
                verify=ca,
                timeout=10,
            ).json()
            if data["task"]["status"] == SUCCEED or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        url = data["videos"][0]["video_url"]
        assert url.startswith("https://127.0.0.2:")
        assert requests.get(url, verify=ca, timeout=10).content == sample_bytes()

        async def with_aiohttp() -> int:
            context = ssl.create_default_context(cafile=ca)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{server.url}/_emulator/health", ssl=context) as resp,
            ):
                return resp.status

        assert asyncio.run(with_aiohttp()) == 200
    assert not Path(ca).exists()  # the throw-away CA goes with the server


def test_ca_path_needs_tls(emulator):
    with pytest.raises(RuntimeError, match="tls=True"):
        _ = emulator.ca_path


# --------------------------------------------------------------------------------------------------
# Command line: --api and --tls
# --------------------------------------------------------------------------------------------------
def run_cli(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_hailuo.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.fullmatch(r"Hailuo emulator listening on (https?://127\.0\.0\.1:\d+)\n", line)
    if match is None:
        proc.kill()
        raise AssertionError(line + proc.communicate()[1])
    return proc, match.group(1)


def test_command_line_minimax_over_tls(tmp_path):
    ca = tmp_path / "ca.pem"
    proc, url = run_cli(
        [
            "--api",
            "minimax",
            "--api-key",
            "cli-key",
            "--tls",
            "--ca-file",
            str(ca),
            "--fault",
            json.dumps({"endpoint": "submit", "action": "base_resp", "code": 1002}),
        ]
    )
    try:
        assert url.startswith("https://")
        headers = {"Authorization": "Bearer cli-key"}
        body = {"model": "MiniMax-Hailuo-02", "prompt": "a boat"}

        def post() -> requests.Response:
            return requests.post(
                f"{url}/v1/video_generation", json=body, headers=headers, verify=str(ca), timeout=10
            )

        assert post().json()["base_resp"]["status_code"] == 1002
        assert post().json()["base_resp"]["status_code"] == 0
        assert requests.get(f"{url}/_emulator/config", verify=str(ca), timeout=10).json()["api"] == "minimax"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "POST /v1/video_generation -> 200" in stderr and str(ca) in stderr


def test_command_line_refuses_an_unknown_api():
    out = subprocess.run(
        [sys.executable, "-m", "airflow_provider_hailuo.emulator", "--api", "fal"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 2 and "invalid choice: 'fal'" in out.stderr
