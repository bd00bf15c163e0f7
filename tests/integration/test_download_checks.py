"""
What the download verifies before anything is visible, and what it lands beside each video.

Real parts: the emulator over loopback, the moto S3 server, PyAV decoding the samples, and
``dag.test()`` for the submit -> wait -> download wiring (the request found without extra wiring).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_hailuo.api import HailuoDownloadError, VideoRequest
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from airflow_provider_hailuo.manifest import clean_url
from airflow_provider_hailuo.operators.hailuo import HailuoDownloadVideoOperator
from tests.conftest import EMULATOR_KEY
from tests.integration.test_hook import wait_until_finished
from tests.support.airflow_runs import example_dag, run_dag

pytest.importorskip("av")

#: Starts like an MP4 (an ``ftyp`` box) and is garbage after it: passes today's signature check.
FTYP_GARBAGE = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(6000)


@pytest.fixture
def finished_task(hailuo_conn) -> str:
    """A finished 6 s 768P task (the sample matches the request)."""
    hook = HailuoHook()
    task_id = hook.submit(VideoRequest(prompt="p", duration=6, resolution="768P"))
    wait_until_finished(hook, task_id)
    return task_id


def download(task_id: str, destination, **kwargs) -> tuple[HailuoDownloadVideoOperator, dict]:
    operator = HailuoDownloadVideoOperator(
        task_id="download", hailuo_task_id=task_id, destination=destination, **kwargs
    )
    return operator, operator.execute(context={})


@pytest.fixture
def garbage_stream(monkeypatch):
    """The hook's download hands back an ftyp-prefixed body that does not decode."""

    class Response:
        headers = {"Content-Type": "video/mp4", "Content-Length": str(len(FTYP_GARBAGE))}

        def iter_content(self, chunk_size: int):
            for start in range(0, len(FTYP_GARBAGE), 1000):
                yield FTYP_GARBAGE[start : start + 1000]

    @contextmanager
    def stream_video(self, url):
        yield Response()

    monkeypatch.setattr(HailuoHook, "stream_video", stream_video)


def s3_destination(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/videos/"


def assert_nothing_in_bucket(s3_server, bucket: str) -> None:
    assert s3_server.keys(bucket) == []
    assert s3_server.multipart_uploads(bucket) == []


# --------------------------------------------------------------------------------------------------
# An undecodable video never lands
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["warn", "strict"])
def test_an_undecodable_video_never_lands_on_disk(finished_task, garbage_stream, tmp_path, mode):
    with pytest.raises(HailuoDownloadError, match="does not") as raised:
        download(finished_task, tmp_path.as_uri() + "/", video_checks=mode)
    assert not isinstance(raised.value, AirflowFailException)  # a fresh download may heal: retried
    assert list(tmp_path.iterdir()) == []  # no video, no .part, no poster, no manifest


def test_an_undecodable_video_never_lands_in_s3(finished_task, garbage_stream, s3_server, s3_bucket):
    with pytest.raises(HailuoDownloadError, match="does not"):
        download(finished_task, s3_destination(s3_bucket), storage_conn_id=s3_server.conn_id)
    assert_nothing_in_bucket(s3_server, s3_bucket)


def test_the_emulator_s_undecodable_video_never_lands(hailuo_conn, tmp_path):
    hailuo_conn.add_fault(endpoint="submit", action="undecodable")
    hook = HailuoHook()
    task_id = hook.submit(VideoRequest(prompt="p"))
    wait_until_finished(hook, task_id)
    with pytest.raises(HailuoDownloadError, match="does not"):
        download(task_id, tmp_path.as_uri() + "/")
    assert list(tmp_path.iterdir()) == []


def test_off_keeps_only_the_length_and_signature_checks(finished_task, garbage_stream, tmp_path):
    _, landed = download(finished_task, tmp_path.as_uri() + "/", video_checks="off", poster=False)
    assert landed["checks"] is None and landed["duration_s"] is None and landed["poster_uri"] is None
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".mp4"]


# --------------------------------------------------------------------------------------------------
# A video that is not what was paid for
# --------------------------------------------------------------------------------------------------
def test_a_wrong_duration_is_recorded_in_warn(finished_task, tmp_path, capfd):
    _, landed = download(
        finished_task, tmp_path.as_uri() + "/", request={"duration": 10, "resolution": "768P"}
    )
    checks = landed["checks"]
    assert checks["verdict"] == "mismatch"
    assert [m["check"] for m in checks["mismatches"]] == ["duration"]
    assert checks["checks"] == {"duration": "mismatch", "resolution": "ok"}
    assert landed["duration_s"] == pytest.approx(6, abs=0.5) and min(landed["width"], landed["height"]) == 768
    assert landed["codec"] == "h264"
    record = json.loads(Path(landed["manifest_uri"].removeprefix("file://")).read_text())
    assert record["checks"] == checks
    logged = capfd.readouterr()
    assert "Video check mismatch: duration" in logged.out + logged.err


def test_a_wrong_duration_fails_strict_and_nothing_lands(finished_task, tmp_path):
    with pytest.raises(AirflowFailException, match=r"not what was requested.*duration"):
        download(finished_task, tmp_path.as_uri() + "/", video_checks="strict", request={"duration": 10})
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_duration_fails_strict_and_nothing_lands_in_s3(finished_task, s3_server, s3_bucket):
    with pytest.raises(AirflowFailException, match="duration"):
        download(
            finished_task,
            s3_destination(s3_bucket),
            storage_conn_id=s3_server.conn_id,
            video_checks="strict",
            request='{"duration": 10}',  # a rendered template is JSON text
        )
    assert_nothing_in_bucket(s3_server, s3_bucket)


def test_a_matching_video_passes_strict(finished_task, tmp_path):
    _, landed = download(
        finished_task,
        tmp_path.as_uri() + "/",
        video_checks="strict",
        request={"duration": 6, "resolution": "768P"},
    )
    assert landed["checks"]["verdict"] == "ok"


# --------------------------------------------------------------------------------------------------
# Poster and manifest beside the video
# --------------------------------------------------------------------------------------------------
def test_poster_and_manifest_land_beside_the_video_in_s3(finished_task, s3_server, s3_bucket):
    _, landed = download(
        finished_task,
        s3_destination(s3_bucket),
        storage_conn_id=s3_server.conn_id,
        request={"prompt": "p", "duration": 6, "image_url": "https://h/f.png?X-Amz-Signature=secret"},
    )
    stem = f"videos/{finished_task}"
    assert s3_server.keys(s3_bucket) == [f"{stem}.jpg", f"{stem}.json", f"{stem}.mp4"]
    assert s3_server.multipart_uploads(s3_bucket) == []
    assert s3_server.read(s3_bucket, f"{stem}.jpg")[:3] == b"\xff\xd8\xff"  # a JPEG
    assert landed["poster_uri"] == f"s3://{s3_bucket}/{stem}.jpg"
    assert landed["manifest_uri"] == f"s3://{s3_bucket}/{stem}.json"
    text = s3_server.read(s3_bucket, f"{stem}.json").decode()
    record = json.loads(text)
    assert record["video"]["sha256"] == landed["sha256"] and record["poster_uri"] == landed["poster_uri"]
    assert record["request"]["image_url"] == "https://h/f.png"
    assert "secret" not in text


def test_without_a_known_request_the_manifest_says_unknown(finished_task, tmp_path):
    _, landed = download(finished_task, tmp_path.as_uri() + "/")
    record = json.loads((tmp_path / f"{finished_task}.json").read_text())
    assert record["request"] is None
    assert record["service"]["task_id"] == finished_task
    assert record["checks"]["verdict"] == "unchecked"  # PPInfra reports no size to compare with
    assert landed["checks"]["duration_s"] == landed["duration_s"]


def test_a_replaced_video_never_keeps_an_old_manifest(finished_task, tmp_path, monkeypatch):
    target = tmp_path / "v.mp4"
    download(finished_task, target.as_uri())
    (tmp_path / "v.json").write_text('{"old": true}')
    with pytest.raises(AirflowFailException):
        download(
            finished_task, target.as_uri(), overwrite=True, video_checks="strict", request={"duration": 10}
        )
    # the failed replacement left the old video, and the old manifest that vouches for it
    assert json.loads((tmp_path / "v.json").read_text()) == {"old": True}
    download(finished_task, target.as_uri(), overwrite=True)
    assert "old" not in json.loads((tmp_path / "v.json").read_text())


def test_manifests_of_a_dag_run_hold_the_request_and_no_key(airflow_db, hailuo_conn, tmp_path):
    """submit -> wait -> download, mapped: each download finds its own submit's request."""
    prompts = ["a lighthouse at dawn", "a fox in the snow"]
    outcome = run_dag(
        example_dag("hailuo_daily_content"),
        {"prompts": prompts, "duration": 10, "destination": tmp_path.as_uri() + "/"},
    )
    assert outcome.state == "success"
    results = outcome.values("generate.download")
    assert len(results) == 2
    seen = []
    for map_index, landed in enumerate(results):
        path = Path(landed["manifest_uri"].removeprefix("file://"))
        text = path.read_text()
        record = json.loads(text)
        assert EMULATOR_KEY not in text
        assert record["request"]["duration"] == 10 and record["request"]["resolution"] == "768P"
        assert "vendor" in record["request"]  # the connection's vendor, where it can be told
        assert record["airflow"]["dag_id"] == "hailuo_daily_content"
        assert record["airflow"]["map_index"] == map_index
        assert record["times"]["submitted"] and record["times"]["landed"]
        assert landed["checks"]["checks"] == {"duration": "ok", "resolution": "ok"}
        assert Path(landed["poster_uri"].removeprefix("file://")).exists()
        seen.append(record["request"]["prompt"])
    assert sorted(seen) == sorted(prompts)


# --------------------------------------------------------------------------------------------------
# Lineage
# --------------------------------------------------------------------------------------------------
def test_openlineage_names_the_landed_object_in_s3(finished_task, s3_server, s3_bucket):
    pytest.importorskip("airflow.providers.openlineage")
    operator, _ = download(
        finished_task,
        s3_destination(s3_bucket),
        storage_conn_id=s3_server.conn_id,
        request={"image_url": "s3://frames/day-1/first.png"},
    )
    facets = operator.get_openlineage_facets_on_complete(None)
    [output] = facets.outputs
    assert (output.namespace, output.name) == (f"s3://{s3_bucket}", f"videos/{finished_task}.mp4")
    assert [(i.namespace, i.name) for i in facets.inputs] == [("s3://frames", "day-1/first.png")]


def test_openlineage_names_a_local_file(finished_task, tmp_path):
    pytest.importorskip("airflow.providers.openlineage")
    operator, _ = download(finished_task, tmp_path.as_uri() + "/", request={"image_url": "https://h/f.png"})
    facets = operator.get_openlineage_facets_on_complete(None)
    assert [(o.namespace, o.name) for o in facets.outputs] == [
        ("file", str(tmp_path / f"{finished_task}.mp4"))
    ]
    assert facets.inputs == []  # an http frame is not a dataset


def test_openlineage_carries_the_estimated_cost_of_the_video(finished_task, tmp_path):
    pytest.importorskip("airflow.providers.openlineage")
    from openlineage.client.serde import Serde

    cost = {"amount": 1.8, "currency": "CNY"}
    priced, landed = download(
        finished_task, tmp_path.as_uri() + "/", request={"prompt": "p", "estimated_cost": cost}
    )
    assert landed["estimated_cost"] == cost
    facet = priced.get_openlineage_facets_on_complete(None).run_facets["hailuoEstimatedCost"]
    assert {k: v for k, v in Serde.to_dict(facet).items() if not k.startswith("_")} == cost
    unknown, _ = download(finished_task, tmp_path.as_uri() + "/", request={"prompt": "p"}, overwrite=True)
    facet = unknown.get_openlineage_facets_on_complete(None).run_facets["hailuoEstimatedCost"]
    assert (facet.amount, facet.currency) == (None, None)  # the request is known, its price is not
    unasked, landed = download(finished_task, tmp_path.as_uri() + "/", overwrite=True)
    assert landed["estimated_cost"] is None
    assert unasked.get_openlineage_facets_on_complete(None).run_facets == {}  # nothing known to report


def test_clean_url_drops_credentials():
    assert clean_url("https://user:pw@h/x.png?sig=1#f") == "https://h/x.png"
    assert clean_url("data:image/png;base64,AAAA") == "data:image/png;base64,…"
    assert clean_url("s3://b/k.png") == "s3://b/k.png"


def test_writes_are_reported_to_the_hook_lineage_collector(finished_task, tmp_path, monkeypatch):
    from airflow.providers.common.compat import sdk

    collector = sdk.HookLineageCollector()
    monkeypatch.setattr(sdk, "get_hook_lineage_collector", lambda: collector, raising=False)
    _, landed = download(finished_task, tmp_path.as_uri() + "/")
    # Airflow 3 collects assets, Airflow 2 datasets.
    collected = getattr(collector, "collected_assets", None) or collector.collected_datasets
    reported = [getattr(info, "asset", None) or info.dataset for info in collected.outputs]
    reported = [item.uri for item in reported]
    assert reported == [landed["uri"], landed["poster_uri"], landed["manifest_uri"]]
