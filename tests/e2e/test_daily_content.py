"""The example DAG on a real deployment: scheduler, LocalExecutor workers, triggerer, S3."""

from __future__ import annotations

import hashlib

import pytest

from tests.e2e.runs import trigger_daily

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROMPTS = [
    "a lighthouse in a storm",
    "a koi pond in autumn",
    "a robot watering plants",
    "a paper boat in the rain",
]


def test_four_videos_land_in_s3_through_deferred_sensors(airflow_deployment, emulator, s3_server, bucket):
    # Long enough that no sensor can find its video finished at its first (worker-side) poke,
    # even when four workers start slowly on two cores: every wait must go to the triggerer.
    emulator.configure(generation_seconds=10.0)
    run = trigger_daily(
        airflow_deployment,
        prompts=PROMPTS,
        destination=f"s3://{bucket}/daily/",
        storage_conn_id=s3_server.conn_id,
    )
    assert run.wait() == "success", run.task_instances()

    assert run.states("generate.submit") == ["success"] * 4
    assert run.states("generate.wait") == ["success"] * 4
    assert run.states("generate.download") == ["success"] * 4
    assert run.tries("generate.download") == [1] * 4

    # Every mapped sensor was seen DEFERRED, and each had its own HailuoTaskTrigger row waiting for
    # its own generation: the waits ran in the triggerer, not in worker slots.
    for map_index in range(4):
        assert "deferred" in run.states_seen[("generate.wait", map_index)], run.states_seen
    submitted = run.xcoms("generate.submit")
    assert sorted(submitted) == [0, 1, 2, 3]
    triggered_ids = sorted(t["kwargs"]["hailuo_task_id"] for t in run.hailuo_triggers())
    assert triggered_ids == sorted(submitted.values())

    # Each video is in the bucket, whole, under the run's day, with the XCom's size and sha256.
    downloads = run.xcoms("generate.download")
    assert sorted(downloads) == [0, 1, 2, 3]
    keys = s3_server.keys(bucket)
    # Beside each video: its poster (.jpg) and its manifest (.json), and nothing else.
    assert keys == sorted(
        f"daily/{run.ds}/{task_id}.{ext}" for task_id in submitted.values() for ext in ("jpg", "json", "mp4")
    )
    for map_index, landed in downloads.items():
        assert landed["task_id"] == submitted[map_index]
        key = landed["uri"].removeprefix(f"s3://{bucket}/")
        body = s3_server.read(bucket, key)
        assert len(body) == landed["bytes"]
        assert hashlib.sha256(body).hexdigest() == landed["sha256"]
        assert body[4:8] == b"ftyp"
    assert s3_server.multipart_uploads(bucket) == []

    counters = emulator.counters()
    assert counters["submits"] == 4  # exactly one paid generation per video
    assert counters["submit_requests"] == 4
    assert counters["download_completes"] == 4
    assert counters["download_auth_headers"] == 0


def test_a_run_triggered_without_a_logical_date_lands_its_video(airflow_deployment, emulator, tmp_path):
    destination = tmp_path / "videos"
    run = trigger_daily(
        airflow_deployment,
        with_logical_date=False,
        prompts=["a snowy owl at dusk"],
        destination=destination.as_uri() + "/",
    )
    state = run.wait()
    assert state == "success", run.task_log_text("generate.download", 0)[-3000:]
    assert len([p for p in destination.rglob("*.mp4") if not p.name.startswith(".")]) == 1
