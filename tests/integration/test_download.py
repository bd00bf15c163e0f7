"""HailuoDownloadVideoOperator on its own: destinations, overwrite rules, checks before commit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_hailuo.api import HailuoDownloadError, VideoRequest
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator
from airflow_provider_hailuo.storage import plain_uri
from tests.integration.test_hook import wait_until_finished
from tests.integration.test_submit_and_wait import TEST_DAGS
from tests.support.airflow_runs import load_dag, run_dag


@pytest.fixture
def finished_task(hailuo_conn) -> str:
    hook = HailuoHook()
    task_id = hook.submit(VideoRequest(prompt="p"))
    wait_until_finished(hook, task_id)
    return task_id


def download(task_id: str, destination, **kwargs) -> dict:
    operator = HailuoDownloadVideoOperator(
        task_id="download", hailuo_task_id=task_id, destination=destination, **kwargs
    )
    return operator.execute(context={})


def test_folder_destination_names_the_file_after_the_task(finished_task, tmp_path):
    landed = download(finished_task, tmp_path.as_uri() + "/out/")
    path = tmp_path / "out" / f"{finished_task}.mp4"
    assert landed["uri"] == path.as_uri()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == landed["sha256"]
    assert landed["bytes"] == path.stat().st_size
    assert landed["task_id"] == finished_task


@pytest.mark.parametrize("where", ["file", "s3"])
def test_a_folder_given_as_an_object_storage_path_gets_the_file_inside(
    finished_task, tmp_path, request, where
):
    """``str()`` of an ObjectStoragePath folder drops its ``/``: the name decides, not the slash."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if where == "file":
        folder, conn_id = ObjectStoragePath(tmp_path.as_uri() + "/videos/"), None
    else:
        s3_server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
        folder, conn_id = (
            ObjectStoragePath(f"s3://{bucket}/videos/", conn_id=s3_server.conn_id),
            s3_server.conn_id,
        )
    landed = download(finished_task, folder, storage_conn_id=conn_id)
    assert landed["uri"] == plain_uri(folder / f"{finished_task}.mp4")
    assert sorted(path.name for path in folder.iterdir()) == [
        f"{finished_task}.{ext}" for ext in ("jpg", "json", "mp4")
    ]


def test_a_destination_not_ending_in_mp4_is_a_folder(finished_task, tmp_path):
    landed = download(finished_task, tmp_path.as_uri() + "/videos")
    assert landed["uri"] == (tmp_path / "videos" / f"{finished_task}.mp4").as_uri()


def test_mapped_downloads_never_land_on_one_object(airflow_db, hailuo_conn, tmp_path):
    """Two map indexes aiming at one object fail before downloading; a folder, a name per index work."""
    outcome = run_dag(load_dag(TEST_DAGS, "mapped_destinations"), {"destination": tmp_path.as_uri() + "/"})
    assert outcome.states("one_object") == outcome.states("in_a_mapped_group.download") == ["failed"] * 2
    for task_id in ("folder", "per_index", "expanded"):
        assert outcome.states(task_id) == ["success"] * 2, task_id
    landed = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*.mp4"))
    submitted = sorted(outcome.values("submit"))
    assert landed == ["a.mp4", "b.mp4", "clip-0.mp4", "clip-1.mp4", *(f"folder/{t}.mp4" for t in submitted)]
    assert hailuo_conn.counters()["downloads"] == 6  # none for the refused ones


def test_full_path_destination_is_used_as_is(finished_task, tmp_path):
    target = tmp_path / "named.mp4"
    assert download(finished_task, target.as_uri())["uri"] == target.as_uri()
    assert target.read_bytes()[4:8] == b"ftyp"


def test_a_part_file_left_by_a_killed_download_is_removed_by_the_next_try(finished_task, tmp_path):
    stale = tmp_path / ".v.mp4.0123456789ab.part"  # named as a try killed mid-download leaves it
    stale.write_bytes(b"\x00\x00\x00\x20ftypisom half of a video")
    landed = download(finished_task, (tmp_path / "v.mp4").as_uri())
    assert not stale.exists()
    assert hashlib.sha256((tmp_path / "v.mp4").read_bytes()).hexdigest() == landed["sha256"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_rerun_keeps_an_identical_object_and_succeeds(finished_task, tmp_path):
    target = tmp_path / "v.mp4"
    first = download(finished_task, target.as_uri())
    mtime = target.stat().st_mtime_ns
    again = download(finished_task, target.as_uri())
    assert again["sha256"] == first["sha256"]
    assert target.stat().st_mtime_ns == mtime  # not rewritten


def test_a_different_existing_object_is_refused_unless_overwrite(finished_task, tmp_path):
    target = tmp_path / "v.mp4"
    target.write_bytes(b"someone else's file")
    with pytest.raises(AirflowFailException, match="already exists with different content"):
        download(finished_task, target.as_uri())
    assert target.read_bytes() == b"someone else's file"
    landed = download(finished_task, target.as_uri(), overwrite=True)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == landed["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.jpg", "v.json", "v.mp4"]


@pytest.mark.parametrize("where", ["file", "s3"])
def test_a_different_video_already_there_fails_without_retry_and_nothing_changes(
    finished_task, tmp_path, request, where
):
    """Its video, poster and manifest stay as they were; a retry would meet the same video: none."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if where == "file":
        folder, conn_id = ObjectStoragePath(tmp_path.as_uri() + "/"), None
    else:
        s3_server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
        folder, conn_id = (
            ObjectStoragePath(f"s3://{bucket}/videos/", conn_id=s3_server.conn_id),
            s3_server.conn_id,
        )
    existing = {
        "v.mp4": b"\x00\x00\x00\x20ftypisom someone else's video",
        "v.jpg": b"its poster",
        "v.json": b'{"video": "its manifest"}',
    }
    for name, data in existing.items():
        (folder / name).write_bytes(data)
    with pytest.raises(AirflowFailException, match="already exists with different content"):
        download(finished_task, plain_uri(folder / "v.mp4"), storage_conn_id=conn_id)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == existing


@pytest.mark.parametrize(
    ("action", "message"),
    [("cut", "IncompleteRead"), ("wrong_length", "IncompleteRead|cut short"), ("not_mp4", "not an MP4")],
)
def test_a_bad_body_is_never_committed(finished_task, tmp_path, hailuo_conn, action, message):
    hailuo_conn.add_fault(endpoint="download", action=action)
    with pytest.raises(HailuoDownloadError, match=message):
        download(finished_task, tmp_path.as_uri() + "/")
    assert list(tmp_path.iterdir()) == []


def test_a_task_still_generating_fails_without_retry_and_downloads_nothing(hailuo_conn, tmp_path):
    """Not finished yet: the task fails at once (no retry would make it finish) naming its status."""
    hailuo_conn.configure(generation_seconds=30)
    task_id = HailuoHook().submit(VideoRequest(prompt="p"))
    expected = rf"^Hailuo task {task_id} has no video to download \(status TASK_STATUS_(QUEUED|PROCESSING)\)$"
    with pytest.raises(AirflowFailException, match=expected):
        download(task_id, tmp_path.as_uri() + "/")
    assert hailuo_conn.counters()["downloads"] == 0
    assert list(tmp_path.iterdir()) == []


def test_link_expired_twice_fails_clearly(finished_task, tmp_path, hailuo_conn):
    hailuo_conn.add_fault(endpoint="download", action="expire", count=2)
    with pytest.raises(HailuoDownloadError, match="expired"):
        download(finished_task, tmp_path.as_uri() + "/")
    assert hailuo_conn.counters()["downloads"] == 2
    assert list(tmp_path.iterdir()) == []


def test_example_dags_parse_without_connection_or_network(monkeypatch):
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2.11, 3.0

    monkeypatch.delenv("AIRFLOW_CONN_HAILUO_DEFAULT", raising=False)
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert bag.import_errors == {}
    assert {"hailuo_daily_content", "hailuo_image_to_video"} <= set(bag.dag_ids)
