"""The example DAGs end to end with dag.test() against the emulator over loopback, into file:// ."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.airflow_runs import example_dag, run_dag

PROMPTS = ["a lighthouse in a storm", "a koi pond in autumn", "a robot watering plants"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def landed_files(root: Path) -> list[Path]:
    """The videos at the destination (each has its poster and manifest beside it)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert not [p for p in files if p.name.endswith(".part")]  # nothing half-written left behind
    videos = [p for p in files if p.suffix == ".mp4"]
    assert sorted(p for p in files if p.suffix != ".mp4") == sorted(
        p.with_suffix(ext) for p in videos for ext in (".jpg", ".json")
    )
    return videos


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    return tmp_path / "videos"


def daily(destination: Path, **conf):
    return run_dag(
        example_dag("hailuo_daily_content"),
        {"prompts": PROMPTS, "destination": destination.as_uri() + "/", **conf},
    )


def test_daily_content_lands_every_video_with_the_reported_sha256(airflow_db, hailuo_conn, destination):
    hailuo_conn.configure(generation_seconds=10)  # still rendering when the first wait starts: it defers
    outcome = daily(destination)
    assert outcome.state == "success"
    # The first wait to run found its video rendering and handed over to the trigger (DEFERRED),
    # whose event ended it; dag.test() runs the mapped waits one after another (in no set order),
    # so the later ones may find their videos done by then.
    deferred = [d for deferrals in outcome.deferrals("generate.wait") for d in deferrals]
    assert [d.classpath.rsplit(".", 1)[1] for d in deferred][:1] == ["HailuoTaskTrigger"]
    assert all(d.event["status"] == "success" for d in deferred)
    downloads = outcome.values("generate.download")
    assert len(downloads) == len(PROMPTS)
    for landed in downloads:
        path = Path(landed["uri"].removeprefix("file://"))
        assert path.is_file()
        assert path.stat().st_size == landed["bytes"]
        assert sha256(path) == landed["sha256"]
        assert path.name == f"{landed['task_id']}.mp4"
        assert path.read_bytes()[4:8] == b"ftyp"
        assert landed["content_type"] == "video/mp4"
    assert len(landed_files(destination)) == len(PROMPTS)  # no .part leftovers
    submitted = outcome.values("generate.submit")
    assert sorted(submitted) == sorted(d["task_id"] for d in downloads)
    results = outcome.values("generate.wait")
    assert {r["status"] for r in results} == {"TASK_STATUS_SUCCEED"}
    # No pre-signed link in XCom or the trigger's events: the download reads a fresh one.
    events = [d.event for deferrals in outcome.deferrals("generate.wait") for d in deferrals]
    assert "video_url" not in json.dumps([results, events]) and "http" not in json.dumps(results)
    counters = hailuo_conn.counters()
    assert counters["submits"] == len(PROMPTS)  # exactly one paid submit per mapped instance
    assert counters["download_auth_headers"] == 0


def test_failed_generation_fails_the_sensor_with_the_reason_and_no_retry(
    airflow_db, hailuo_conn, destination, capfd
):
    hailuo_conn.add_fault(
        endpoint="submit", action="fail_generation", reason="NSFW content detected", count=1
    )
    outcome = daily(destination, prompts=["one prompt"])
    assert outcome.state == "failed"
    assert outcome.states("generate.wait") == ["failed"]
    assert outcome.tries("generate.wait") == [1]  # retries=2 in the DAG, yet not retried
    assert outcome.states("generate.download") == ["upstream_failed"]
    assert "NSFW content detected" in capfd.readouterr().out
    assert hailuo_conn.counters()["submits"] == 1
    assert landed_files(destination) == []


def test_expired_link_is_renewed_and_the_video_lands(airflow_db, hailuo_conn, destination):
    hailuo_conn.add_fault(endpoint="download", action="expire", count=1)
    outcome = daily(destination, prompts=["one prompt"])
    assert outcome.state == "success"
    assert outcome.tries("generate.download") == [1]  # renewed inside the try, not by a retry
    assert hailuo_conn.counters()["downloads"] == 2
    assert len(landed_files(destination)) == 1


def test_cut_download_leaves_nothing_at_the_destination(airflow_db, hailuo_conn, destination):
    hailuo_conn.add_fault(endpoint="download", action="cut", count=-1)
    outcome = daily(destination, prompts=["one prompt"])
    assert outcome.state == "failed"
    assert outcome.states("generate.download") == ["failed"]
    assert landed_files(destination) == []
    assert hailuo_conn.counters()["submits"] == 1


def test_cut_download_then_retry_lands_a_whole_file(airflow_db, hailuo_conn, destination):
    hailuo_conn.add_fault(endpoint="download", action="cut", count=1)
    outcome = daily(destination, prompts=["one prompt"])
    assert outcome.state == "success"
    assert outcome.tries("generate.download") == [2]
    (landed,) = outcome.values("generate.download")
    path = Path(landed["uri"].removeprefix("file://"))
    assert sha256(path) == landed["sha256"]
    assert landed_files(destination) == [path]


def test_bad_parameters_fail_before_any_submit(airflow_db, hailuo_conn, destination, capfd):
    outcome = daily(destination, prompts=["p"], duration=10, resolution="1080P")
    assert outcome.state == "failed"
    assert outcome.states("plan") == ["failed"]  # the plan refuses it: no submit runs
    assert outcome.tries("plan") == [1]  # a rule break is not retried
    assert "success" not in outcome.states("generate.submit")
    assert "request 0: `resolution` 1080P is not available for 10 s videos" in capfd.readouterr().out
    counters = hailuo_conn.counters()
    assert counters["submit_requests"] == 0
    assert counters["requests"] == 0


def test_image_to_video_dag(airflow_db, hailuo_conn, destination):
    outcome = run_dag(
        example_dag("hailuo_image_to_video"),
        {"image_url": "https://images.example.com/cat.jpg", "destination": destination.as_uri() + "/"},
    )
    assert outcome.state == "success"
    (landed,) = outcome.values("download")
    assert sha256(Path(landed["uri"].removeprefix("file://"))) == landed["sha256"]


def test_daily_content_into_s3(airflow_db, hailuo_conn, s3_server, s3_bucket):
    outcome = run_dag(
        example_dag("hailuo_daily_content"),
        {
            "prompts": PROMPTS[:2],
            "destination": f"s3://{s3_bucket}/daily/",
            "storage_conn_id": s3_server.conn_id,
        },
    )
    assert outcome.state == "success"
    downloads = outcome.values("generate.download")
    keys = s3_server.keys(s3_bucket)
    assert len(keys) == 2 * 3  # video, poster, manifest
    for landed in downloads:
        key = landed["uri"].removeprefix(f"s3://{s3_bucket}/")
        assert key in keys and key.startswith("daily/")
        body = s3_server.read(s3_bucket, key)
        assert hashlib.sha256(body).hexdigest() == landed["sha256"]
        assert len(body) == landed["bytes"]
    assert hailuo_conn.counters()["submits"] == 2


@pytest.mark.parametrize("action", ["cut", "wrong_length", "not_mp4"])
def test_bad_download_leaves_nothing_in_s3_and_a_rerun_lands_it(
    airflow_db, hailuo_conn, s3_server, s3_bucket, action
):
    hailuo_conn.add_fault(endpoint="download", action=action, count=-1)
    conf = {"prompts": ["p"], "destination": f"s3://{s3_bucket}/daily/", "storage_conn_id": s3_server.conn_id}
    outcome = run_dag(example_dag("hailuo_daily_content"), conf)
    assert outcome.state == "failed"
    assert outcome.states("generate.download") == ["failed"]
    assert s3_server.keys(s3_bucket) == []
    assert s3_server.multipart_uploads(s3_bucket) == []
    hailuo_conn.clear_faults()
    rerun = run_dag(example_dag("hailuo_daily_content"), conf)
    assert rerun.state == "success"
    assert sorted(k.rsplit(".", 1)[1] for k in s3_server.keys(s3_bucket)) == ["jpg", "json", "mp4"]


def test_the_one_task_daily_content_lands_every_video(airflow_db, hailuo_conn, destination):
    hailuo_conn.configure(generation_seconds=3)
    outcome = run_dag(
        example_dag("hailuo_daily_content_one_task"),
        {"prompts": PROMPTS, "destination": destination.as_uri() + "/"},
    )
    assert outcome.state == "success"
    landed = outcome.values("generate")
    assert len(landed) == len(PROMPTS) == len(landed_files(destination))
    assert sorted(item["task_id"] for item in landed) == sorted(hailuo_conn.tasks())
    for item in landed:
        assert sha256(Path(item["uri"].removeprefix("file://"))) == item["sha256"]
    assert hailuo_conn.counters()["submits"] == len(PROMPTS)
