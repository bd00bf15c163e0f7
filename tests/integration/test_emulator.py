"""
The emulator over real loopback HTTP: the API contract (API.md), signed downloads, every fault, the
counters, the control API and the command line. Clients are tested against it, so it is tested first.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_hailuo.emulator import (
    EmulatorServer,
    iter_video,
    looks_like_mp4,
    sample_bytes,
    video_size,
)
from airflow_provider_hailuo.emulator.mp4 import free_box_header
from airflow_provider_hailuo.emulator.spec import VideoSpec

KEY = "test-key-1234"
# The v3 status words, written out: the emulator is tested against API.md, not against the product.
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
        ({"prompt": "x", "image_url": "file:///etc/passwd"}, "image_url"),
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
    assert emulator.counters()["download_auth_headers"] == 1


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
        sock.sendall(f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
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
        counters = requests.get(f"{url}/_emulator/counters", timeout=10).json()
        assert counters["submits"] == 1 and counters["faults_applied"] == 1
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "POST /v3/async/minimax-hailuo-02 -> 200" in stderr
    assert "cli-key" not in stderr
