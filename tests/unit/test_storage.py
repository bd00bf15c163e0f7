"""The landing path on a local disk: read-ahead, checks before commit, nothing half-written."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_hailuo.api import HailuoDownloadError
from airflow_provider_hailuo.storage import land_stream, read_ahead

MP4 = b"\x00\x00\x00\x20ftypisom" + b"\x00" * 20


def test_read_ahead_keeps_order_and_content():
    chunks = [bytes([i]) * 1000 for i in range(50)]
    assert list(read_ahead(iter(chunks), depth=3)) == chunks


def test_read_ahead_passes_the_reader_error_on():
    def broken():
        yield b"a"
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError, match="cut"):
        list(read_ahead(broken()))


def test_read_ahead_stops_reading_when_the_consumer_stops():
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield b"x"

    ahead = read_ahead(endless(), depth=2)
    next(ahead)
    ahead.close()
    time.sleep(0.3)
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count <= 5
    assert not [t for t in threading.enumerate() if t.name == "hailuo-download-read-ahead" and t.is_alive()]


def test_land_stream_commits_a_whole_mp4(tmp_path):
    target = ObjectStoragePath((tmp_path / "v.mp4").as_uri())
    landed = land_stream(iter([MP4[:10], MP4[10:]]), target, expected_bytes=len(MP4), overwrite=False)
    assert (tmp_path / "v.mp4").read_bytes() == MP4
    assert landed.sha256 == hashlib.sha256(MP4).hexdigest() and landed.bytes == len(MP4)


@pytest.mark.parametrize(
    ("chunks", "expected", "message"),
    [
        ([MP4[:20]], len(MP4), "cut short"),
        ([b"<html>not a video</html>"], None, "not an MP4"),
        ([], None, "not an MP4"),
    ],
)
def test_land_stream_commits_nothing_on_a_bad_body(tmp_path, chunks, expected, message):
    target = ObjectStoragePath((tmp_path / "v.mp4").as_uri())
    with pytest.raises(HailuoDownloadError, match=message):
        land_stream(iter(chunks), target, expected_bytes=expected, overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_before_commit_reads_the_whole_copy_and_can_stop_the_commit(tmp_path):
    target = ObjectStoragePath((tmp_path / "v.mp4").as_uri())
    seen = []

    def refuse(local_path: str) -> None:
        seen.append(Path(local_path).read_bytes())
        raise HailuoDownloadError("does not decode")

    with pytest.raises(HailuoDownloadError, match="does not decode"):
        land_stream(
            iter([MP4[:10], MP4[10:]]), target, expected_bytes=len(MP4), overwrite=False, before_commit=refuse
        )
    assert seen == [MP4]  # flushed before the check: the whole body, not a buffered prefix
    assert list(tmp_path.iterdir()) == []


def test_land_bytes_replaces_a_sidecar(tmp_path):
    from airflow_provider_hailuo.storage import land_bytes

    (tmp_path / "v.json").write_text("old")
    landed = land_bytes(b"{}", ObjectStoragePath((tmp_path / "v.json").as_uri()))
    assert (tmp_path / "v.json").read_bytes() == b"{}" and landed.bytes == 2
    assert [p.name for p in tmp_path.iterdir()] == ["v.json"]


def no_hard_links(monkeypatch):
    """What gcsfuse, mountpoint-s3 or blobfuse answer to link(2)."""

    def link(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted", src)

    monkeypatch.setattr(os, "link", link)


def test_without_hard_links_the_video_lands_by_a_checked_rename(tmp_path, monkeypatch):
    no_hard_links(monkeypatch)
    target = ObjectStoragePath((tmp_path / "v.mp4").as_uri())
    landed = land_stream(iter([MP4]), target, expected_bytes=len(MP4), overwrite=False)
    assert (tmp_path / "v.mp4").read_bytes() == MP4 and landed.sha256 == hashlib.sha256(MP4).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_without_hard_links_a_file_created_meanwhile_is_still_kept(tmp_path, monkeypatch):
    no_hard_links(monkeypatch)
    path = tmp_path / "v.mp4"

    def chunks():
        yield MP4[:10]
        path.write_bytes(b"someone else's video")  # after the existence check at the start
        yield MP4[10:]

    with pytest.raises(HailuoDownloadError, match="already exists with different content"):
        land_stream(chunks(), ObjectStoragePath(path.as_uri()), expected_bytes=len(MP4), overwrite=False)
    assert path.read_bytes() == b"someone else's video"
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_a_part_file_a_live_writer_holds_is_left_alone(tmp_path):
    live = tmp_path / ".v.mp4.0123456789ab.part"
    with live.open("wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as a download still running holds its own
        land_stream(
            iter([MP4]),
            ObjectStoragePath((tmp_path / "v.mp4").as_uri()),
            expected_bytes=None,
            overwrite=False,
        )
        assert live.exists()
