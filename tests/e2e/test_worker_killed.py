"""
A worker killed mid-download (SIGKILL: no ``finally``, no cleanup) leaves nothing at the destination;
Airflow's retry then lands the whole video.

The first download is held half-way by a relay (tests/e2e/gate.py) until the worker is dead, so
"mid-download" is a fact, not a race against a 200 MiB transfer that takes a fraction of a second.
"""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest

from tests.e2e.gate import DownloadGate
from tests.e2e.runs import Run, task_process, trigger_daily

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

VIDEO_BYTES = 200 * 2**20
HOLD_AFTER_BYTES = 40 * 2**20


@pytest.fixture
def gate(emulator):
    """Download links go through a relay that holds the first download after 40 MiB."""
    emulator.configure(video_bytes=VIDEO_BYTES, generation_seconds=0.5)
    with DownloadGate(emulator.url, hold_after_bytes=HOLD_AFTER_BYTES) as relay:
        emulator.state.download_base_url = relay.url
        try:
            yield relay
        finally:
            emulator.state.download_base_url = None


def _kill_download_when(run: Run, started_writing) -> None:
    """Wait until the download (try 1) is writing to the destination, then SIGKILL its task process."""

    def writing(r: Run):
        (ti,) = r.task_instances("generate.download")
        if ti["state"] != "running" or ti["try_number"] != 1 or not started_writing():
            return None
        return task_process(ti["id"])

    process = run.wait_until("the download to be writing to the destination", writing, timeout=120)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _wait_for_the_failed_try(run: Run, nothing_visible, gate: DownloadGate) -> None:
    """Until Airflow has recorded try 1 as failed, nothing may be visible at the destination."""

    def try_1_over(r: Run) -> bool:
        assert nothing_visible(), "a partial video became visible at the destination"
        (ti,) = r.task_instances("generate.download")
        return ti["try_number"] >= 2 or ti["state"] in ("up_for_retry", "failed")

    run.wait_until("Airflow to notice the killed download", try_1_over, timeout=120)
    assert nothing_visible()
    gate.release()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_worker_killed_mid_upload_to_s3_leaves_no_object_and_the_retry_lands_it(
    airflow_deployment, emulator, gate, s3_server, bucket
):
    run = trigger_daily(
        airflow_deployment,
        prompts=["a whale breaching at sunset"],
        destination=f"s3://{bucket}/daily/",
        storage_conn_id=s3_server.conn_id,
    )

    # "Writing": a multipart upload has been started, i.e. at least one 8 MiB part went out.
    _kill_download_when(run, lambda: gate.holding.is_set() and s3_server.multipart_uploads(bucket))
    assert emulator.counters()["download_completes"] == 0, "killed too late: the download had finished"
    _wait_for_the_failed_try(run, lambda: s3_server.keys(bucket) == [], gate)

    assert run.wait(timeout=180) == "success", run.task_instances()
    assert run.tries("generate.download") == [2]
    (landed,) = run.xcoms("generate.download").values()
    assert landed["bytes"] == VIDEO_BYTES
    key = landed["uri"].removeprefix(f"s3://{bucket}/")
    # The video, and its poster and manifest beside it (written after the video): nothing else.
    assert s3_server.keys(bucket) == [key.removesuffix(".mp4") + ext for ext in (".jpg", ".json", ".mp4")]
    body = s3_server.read(bucket, key)
    assert len(body) == VIDEO_BYTES
    assert _sha256(body) == landed["sha256"]
    counters = emulator.counters()
    assert counters["submits"] == 1  # the retry downloaded again; it did not buy again
    assert counters["downloads"] == 2
    assert gate.requests == 2
    assert counters["download_auth_headers"] == 0


def test_worker_killed_mid_write_to_a_local_folder_leaves_no_file_and_the_retry_lands_it(
    airflow_deployment, emulator, gate, tmp_path: Path
):
    destination = tmp_path / "videos"
    run = trigger_daily(
        airflow_deployment, prompts=["a fox in fresh snow"], destination=destination.as_uri() + "/"
    )

    def files() -> list[Path]:
        return sorted(p for p in destination.rglob("*") if p.is_file())

    def visible() -> list[Path]:
        return [p for p in files() if not p.name.startswith(".")]

    def part_file_growing() -> bool:
        return any(p.name.endswith(".part") and p.stat().st_size >= 8 * 2**20 for p in files())

    _kill_download_when(run, lambda: gate.holding.is_set() and part_file_growing())
    assert emulator.counters()["download_completes"] == 0, "killed too late: the download had finished"
    _wait_for_the_failed_try(run, lambda: visible() == [], gate)

    assert run.wait(timeout=180) == "success", run.task_instances()
    assert run.tries("generate.download") == [2]
    (landed,) = run.xcoms("generate.download").values()
    path = Path(landed["uri"].removeprefix("file://"))
    landed_files = [path.with_suffix(ext) for ext in (".jpg", ".json", ".mp4")]  # poster, manifest, video
    assert visible() == landed_files
    assert path.stat().st_size == VIDEO_BYTES
    assert _sha256(path.read_bytes()) == landed["sha256"]
    # The killed try's hidden `.part` may stay behind (nothing ran to remove it); never a final name.
    leftovers = [p for p in files() if p not in landed_files]
    assert all(p.name.startswith(".") and p.name.endswith(".part") for p in leftovers), leftovers
    assert emulator.counters()["submits"] == 1
