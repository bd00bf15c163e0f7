"""
The emulator's realistic videos: clips shaped like the service's (24 fps, a keyframe every 48
frames, about its bitrate), made with PyAV once and cached, served instead of the tiny samples when
``realistic_videos`` is on (at start, through ``configure()``, or ``--realistic-videos``).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_hailuo.emulator import EmulatorConfig, EmulatorServer, realistic, sample_bytes
from airflow_provider_hailuo.emulator import config as emulator_config
from airflow_provider_hailuo.emulator.__main__ import _state_from_args, build_parser

av = pytest.importorskip("av")

KEY = "realistic-key"


def facts(data: bytes) -> dict[str, Any]:
    """What PyAV reads from a file, keyframe positions (in frames) included."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        packets = [packet for packet in container.demux(stream) if packet.size]
        return {
            "codec": stream.codec_context.name,
            "size": (stream.width, stream.height),
            "fps": float(stream.average_rate),
            "duration_s": float(stream.duration * stream.time_base),
            "frames": len(packets),
            "keyframes": [i for i, packet in enumerate(packets) if packet.is_keyframe],
        }


def download(server: EmulatorServer) -> bytes:
    """A 6 s 512P video (MiniMax's API: 512P is image-to-video there), the class the session made."""
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {
        "model": "MiniMax-Hailuo-02",
        "prompt": "a fox",
        "first_frame_image": "https://images.example.com/first.png",
        "resolution": "512P",
        "duration": 6,
    }
    created = requests.post(f"{server.url}/v1/video_generation", json=body, headers=headers, timeout=10)
    task_id = created.json()["task_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = requests.get(
            f"{server.url}/v1/query/video_generation",
            params={"task_id": task_id},
            headers=headers,
            timeout=10,
        ).json()
        if answer["status"] == "Success":
            found = requests.get(
                f"{server.url}/v1/files/retrieve",
                params={"file_id": answer["file_id"]},
                headers=headers,
                timeout=10,
            ).json()
            return requests.get(found["file"]["download_url"], timeout=60).content
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def test_a_realistic_clip_has_the_services_shape(realistic_videos: Path):
    path = realistic.realistic_path("512P", 6)
    assert path.parent == realistic_videos
    found = facts(path.read_bytes())
    assert found["codec"] == "h264" and found["size"] == (910, 512)
    assert found["fps"] == 24.0 and found["duration_s"] == pytest.approx(6.0, abs=0.01)
    assert found["frames"] == 144 and found["keyframes"] == [0, 48, 96]  # GOP 48, no scene cuts
    expected_bytes = realistic.BITRATES["512P"] * 6 / 8
    assert 0.7 * expected_bytes < path.stat().st_size < 1.35 * expected_bytes


def test_the_bitrates_follow_the_services_1080p_file():
    """A 6 s 1080P clip of the service is about 6 MB; smaller classes get fewer bits."""
    assert realistic.BITRATES["1080P"] * 6 / 8 == pytest.approx(6_000_000)
    assert realistic.BITRATES["512P"] < realistic.BITRATES["768P"] < realistic.BITRATES["1080P"]


def test_clips_are_made_once_per_set_of_parameters(tmp_path, monkeypatch):
    made: list[Path] = []

    def fake_generate(path: Path, **params: Any) -> Path:
        made.append(path)
        path.write_bytes(b"clip")
        return path

    monkeypatch.setattr(realistic, "generate", fake_generate)
    first = realistic.realistic_path("768P", 10, folder=tmp_path)
    assert realistic.realistic_path("768P", 10, folder=tmp_path) == first
    assert made == [first]
    other = realistic.realistic_path("768P", 10, bitrate=1_000_000, folder=tmp_path)
    assert other != first and made == [first, other]
    assert "1366x768" in first.name and "10s" in first.name and "g48" in first.name


def test_the_knob_serves_realistic_clips_from_start_and_through_configure(realistic_videos: Path):
    with EmulatorServer(
        api="minimax", api_key=KEY, queue_seconds=0, generation_seconds=0.1, realistic_videos=True
    ) as server:
        served = download(server)
        assert served == realistic.realistic_path("512P", 6).read_bytes()
        found = facts(served)
        assert (found["size"], found["fps"], found["keyframes"]) == ((910, 512), 24.0, [0, 48, 96])
        assert found["duration_s"] == pytest.approx(6.0, abs=0.01)

        assert server.configure(realistic_videos=False).realistic_videos is False
        assert download(server) == sample_bytes("512P", 6)
        server.configure(realistic_videos=True)
        assert download(server) == served
        shown = requests.get(f"{server.url}/_emulator/config", timeout=10).json()
        assert shown["realistic_videos"] is True


def test_the_command_line_switch():
    assert _state_from_args(build_parser().parse_args([])).config.realistic_videos is False
    state = _state_from_args(build_parser().parse_args(["--realistic-videos"]))
    assert state.config.realistic_videos is True


def test_the_knob_is_a_boolean_and_needs_pyav(monkeypatch):
    with pytest.raises(ValueError, match="realistic_videos must be true or false"):
        EmulatorConfig(realistic_videos="yes")  # type: ignore[arg-type]
    monkeypatch.setattr(emulator_config, "realistic_available", lambda: False)
    with pytest.raises(ValueError, match=r"needs PyAV.*\[media\]"):
        EmulatorConfig(realistic_videos=True)
    assert EmulatorConfig().realistic_videos is False  # the samples need no PyAV


def test_the_landing_check_passes_on_a_realistic_clip_and_posts_the_right_frame(realistic_videos: Path):
    """The download's one pass on a service-shaped file: verdict ok, poster = a full decode's frame."""
    from airflow_provider_hailuo import media

    path = realistic.realistic_path("512P", 6)
    found = media.inspect(path, "strict", media.Expected(duration_s=6, resolution="512P"), poster=True)
    assert found.report is not None and found.report.verdict == "ok"
    assert found.report.facts.frames_decoded < 49  # not the whole last GOP: unreferenced frames skipped
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        shown = next(f for f in container.decode(stream) if float(f.pts * stream.time_base) >= 0.5)
        out = io.BytesIO()
        shown.to_image().convert("RGB").save(out, format="JPEG", quality=85)
    assert found.poster == out.getvalue()
