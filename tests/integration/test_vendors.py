"""
One pipeline, three vendors: the same DAGs against the emulator speaking PPInfra's, Novita's and
MiniMax's API over real loopback HTTP, with only the connection changed.

What is asserted is what a user (or their invoice) would see: videos landed, paid submits counted
by the service, the body fields the service received (``server.task_body``), the task states and
tries of each run, and the messages in the task logs.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_hailuo.api import HailuoValidationError, VideoRequest
from airflow_provider_hailuo.emulator.server import EmulatorServer
from airflow_provider_hailuo.hooks.hailuo import HailuoHook
from tests.conftest import EMULATOR_KEY, hailuo_conn_uri
from tests.support.airflow_runs import RunOutcome, example_dag, load_dag, run_dag

VENDORS = ("ppinfra", "novita", "minimax")
TIMINGS = {"queue_seconds": 0.2, "generation_seconds": 0.6}
VENDOR_DAGS = Path(__file__).resolve().parents[1] / "dags" / "hailuo_vendor_pipelines.py"
PROMPTS = ["a lighthouse in a storm", "a koi pond in autumn"]
FIRST = "https://images.example.com/first.png"
LAST = "https://images.example.com/last.png"
#: Each vendor's names for the first and last frame of Hailuo-02.
FRAME_FIELDS = {
    "ppinfra": ("image", "end_image"),
    "novita": ("image", "end_image"),
    "minimax": ("first_frame_image", "last_frame_image"),
}
EVERY_FRAME_FIELD = {
    "image_url",
    "end_image_url",
    "image",
    "end_image",
    "first_frame_image",
    "last_frame_image",
}
SUBMIT_PATHS = {
    "ppinfra": "/v3/async/minimax-hailuo-02",
    "novita": "/v3/async/minimax-hailuo-02",
    "minimax": "/v1/video_generation",
}


# --------------------------------------------------------------------------------------------------
# one emulator per dialect, and the connection pointed at one of them
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, EmulatorServer]]:
    with ExitStack() as stack:
        yield {
            api: stack.enter_context(EmulatorServer(api=api, api_key=EMULATOR_KEY, **TIMINGS))
            for api in VENDORS
        }


def connect(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """Point `hailuo_default` at ``server``; on 127.0.0.1 the `api` extra must name the vendor."""
    server.reset()
    server.configure(**TIMINGS, link_ttl_seconds=3600, time_scale=1.0)
    extra = {} if server.api == "ppinfra" else {"api": server.api}  # no extra, no known host: PPInfra
    monkeypatch.setenv("AIRFLOW_CONN_HAILUO_DEFAULT", hailuo_conn_uri(server.url, EMULATOR_KEY, extra))
    return server


@pytest.fixture(params=VENDORS)
def vendor(request, servers, monkeypatch) -> Iterator[EmulatorServer]:
    yield connect(servers[request.param], monkeypatch)
    servers[request.param].reset()


@pytest.fixture
def minimax(servers, monkeypatch) -> Iterator[EmulatorServer]:
    yield connect(servers["minimax"], monkeypatch)
    servers["minimax"].reset()


@pytest.fixture
def ppinfra(servers, monkeypatch) -> Iterator[EmulatorServer]:
    yield connect(servers["ppinfra"], monkeypatch)
    servers["ppinfra"].reset()


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def png(width: int = 640, height: int = 360, color: str = "teal") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def submit_and_wait(**params: Any) -> RunOutcome:
    """The vendor test DAG (submit, then a deferred wait) with ``params`` as the run's conf."""
    return run_dag(load_dag(VENDOR_DAGS, "submit_wait"), params)


def only_task(server: EmulatorServer) -> tuple[str, dict[str, Any]]:
    """The one task the service created: its id and the body its submit carried."""
    (task_id,) = server.tasks()
    return task_id, server.task_body(task_id)


def assert_failed_before_any_submit(outcome: RunOutcome, server: EmulatorServer) -> None:
    assert outcome.state == "failed"
    assert outcome.states("submit") == ["failed"]
    assert outcome.tries("submit") == [1]  # retries=2 in the DAG: a rule break is not retried
    assert outcome.states("wait") == ["upstream_failed"]
    counters = server.counters()
    assert counters["submit_requests"] == 0 and counters["submits"] == 0


def assert_waited_in_the_trigger(outcome: RunOutcome, task_id: str, server: EmulatorServer) -> None:
    """
    The wait moved to the Hailuo trigger, which saw the video ready; no key in its kwargs.

    dag.test() runs mapped instances one after another, so a later instance may find its video
    already made at its first read and need no trigger: at least one instance must have deferred.
    """
    deferrals = [d for per_instance in outcome.deferrals(task_id) for d in per_instance]
    assert deferrals, "no instance of the wait deferred"
    for deferral in deferrals:
        assert deferral.classpath == "airflow_provider_hailuo.triggers.hailuo.HailuoTaskTrigger"
        assert deferral.event["status"] == "success"
        assert EMULATOR_KEY not in str(deferral.kwargs)
        # the trigger read the service itself: more reads than the one before deferring
        assert server.counters()["polls_by_task"][deferral.kwargs["hailuo_task_id"]] >= 2


# --------------------------------------------------------------------------------------------------
# the example DAG in every dialect
# --------------------------------------------------------------------------------------------------
def test_daily_content_lands_its_videos_in_each_dialect(airflow_db, vendor, tmp_path):
    vendor.configure(
        generation_seconds=5.0
    )  # still rendering at the first wait's read, even on a busy machine
    destination = tmp_path / "videos"
    outcome = run_dag(
        example_dag("hailuo_daily_content"), {"prompts": PROMPTS, "destination": destination.as_uri() + "/"}
    )
    assert outcome.state == "success"
    files = sorted(p for p in destination.rglob("*") if p.is_file())
    videos = [p for p in files if p.suffix == ".mp4"]
    assert len(videos) == len(PROMPTS)
    assert files == sorted(v.with_suffix(ext) for v in videos for ext in (".mp4", ".jpg", ".json"))
    for video in videos:
        assert video.read_bytes()[4:8] == b"ftyp"
    landed = outcome.values("generate.download")
    assert sorted(d["task_id"] for d in landed) == sorted(vendor.tasks())
    counters = vendor.counters()
    assert counters["submit_requests"] == counters["submits"] == len(PROMPTS)  # one paid submit per video
    assert {s["path"] for s in vendor.submissions()} == {SUBMIT_PATHS[vendor.api]}
    assert sorted(vendor.task_body(t)["prompt"] for t in vendor.tasks()) == sorted(PROMPTS)
    assert counters["download_auth_headers"] == 0
    if vendor.api == "minimax":
        assert counters["file_retrievals"] >= len(PROMPTS)  # the link came from file retrieval
    assert_waited_in_the_trigger(outcome, "generate.wait", vendor)


# --------------------------------------------------------------------------------------------------
# MiniMax's error classes (base_resp.status_code on an HTTP 200)
# --------------------------------------------------------------------------------------------------
def test_minimax_1002_on_submit_is_waited_out_in_the_triggerer_and_sent_again(airflow_db, minimax):
    minimax.add_fault(endpoint="submit", action="base_resp", code=1002, count=1)
    outcome = submit_and_wait()
    assert outcome.state == "success"
    assert outcome.tries("submit") == [1]  # waited out within the try, not by an Airflow retry
    ((deferral,),) = outcome.deferrals("submit")  # on no worker: in a trigger, for MiniMax's 12 s
    assert deferral.classpath == "airflow_provider_hailuo.triggers.hailuo.HailuoWaitTrigger"
    assert deferral.event["refusals"] == 1
    assert 12.0 <= deferral.kwargs["until"] - deferral.event["rate_limited_since"] <= 18.0  # + jitter
    counters = minimax.counters()
    assert counters["base_resp_1002"] == 1
    assert counters["submit_requests"] == 2 and counters["submits"] == 1


@pytest.mark.parametrize("code", [1004, 1008, 2013, 1026])
def test_minimax_refusals_on_submit_fail_at_once_with_the_message(airflow_db, minimax, capfd, code):
    message = f"the service refused this ({code})"
    minimax.add_fault(endpoint="submit", action="base_resp", code=code, message=message, count=-1)
    outcome = submit_and_wait()
    assert outcome.state == "failed"
    assert outcome.states("submit") == ["failed"]
    assert outcome.tries("submit") == [1]  # retries=2, yet not retried
    assert outcome.states("wait") == ["upstream_failed"]
    assert message in capfd.readouterr().out
    counters = minimax.counters()
    assert counters["submit_requests"] == 1 and counters["submits"] == 0


@pytest.mark.parametrize("code", [1000, 1001, 1024, 1039])
def test_minimax_uncertain_submit_may_have_been_accepted_and_is_not_sent_again(
    airflow_db, minimax, capfd, code
):
    minimax.add_fault(endpoint="submit", action="base_resp", code=code, count=-1)
    outcome = submit_and_wait()
    assert outcome.state == "failed"
    assert outcome.states("submit") == ["failed"]
    assert outcome.tries("submit") == [1]
    assert "may have been accepted" in capfd.readouterr().out
    assert minimax.counters()["submit_requests"] == 1  # never sent blindly again


@pytest.mark.parametrize(
    "fault",
    [
        {"endpoint": "submit", "action": "fail_generation", "code": 1027, "reason": "video flagged (1027)"},
        {"endpoint": "task_result", "action": "base_resp", "code": 1027, "message": "video flagged (1027)"},
    ],
    ids=["status-fail", "query-base-resp"],
)
def test_minimax_1027_is_a_failed_generation_not_retried(airflow_db, minimax, capfd, fault):
    minimax.add_fault(**fault, count=-1 if fault["endpoint"] == "task_result" else 1)
    outcome = submit_and_wait()
    assert outcome.state == "failed"
    assert outcome.states("submit") == ["success"]
    assert outcome.states("wait") == ["failed"]
    assert outcome.tries("wait") == [1]  # retries=2: a retry would pay for the same failure
    out = capfd.readouterr().out
    assert "video flagged (1027)" in out and "not retried" in out
    assert minimax.counters()["submits"] == 1


def test_minimax_1000_on_reads_is_retried_and_the_wait_succeeds(airflow_db, minimax):
    minimax.add_fault(endpoint="task_result", action="base_resp", code=1000, count=2)
    outcome = submit_and_wait()
    assert outcome.state == "success"
    assert outcome.tries("wait") == [1]
    (result,) = outcome.values("wait")
    (task_id,) = minimax.tasks()
    assert result["task_id"] == task_id and result["status"] == "Success"
    counters = minimax.counters()
    assert counters["base_resp_1000"] == 2 and counters["submits"] == 1


# --------------------------------------------------------------------------------------------------
# first and last frames under each vendor's names
# --------------------------------------------------------------------------------------------------
def test_first_and_last_frames_arrive_under_the_vendors_names(airflow_db, vendor):
    first_field, last_field = FRAME_FIELDS[vendor.api]
    outcome = submit_and_wait(image_url=FIRST, end_image_url=LAST)
    assert outcome.state == "success"
    task_id, body = only_task(vendor)
    expected = {first_field: FIRST, last_field: LAST}
    assert {k: v for k, v in body.items() if k in EVERY_FRAME_FIELD} == expected  # the others absent
    spec = vendor.tasks()[task_id]["spec"]
    # the service read both frames: a first-and-last-frame video was bought, not a text-to-video
    assert (spec["first_frame"], spec["last_frame"], spec["mode"]) == (FIRST, LAST, "first-last-frame")
    if vendor.api == "minimax":
        assert body["prompt_optimizer"] is True and "enable_prompt_expansion" not in body
    else:
        assert body["enable_prompt_expansion"] is True and "prompt_optimizer" not in body


@pytest.mark.parametrize("with_last", [False, True], ids=["image", "image+end_image"])
def test_an_image_to_video_on_ppinfra_carries_image_and_end_image(ppinfra, with_last):
    """PPInfra's current Hailuo-02 page: the seed's `image_url` would be refused (or ignored)."""
    request = VideoRequest(prompt="a fox", image_url=FIRST, end_image_url=LAST if with_last else None)
    task_id = HailuoHook().submit(request)
    body = ppinfra.task_body(task_id)
    assert body["image"] == FIRST and body.get("end_image") == (LAST if with_last else None)
    assert "image_url" not in body and "end_image_url" not in body
    spec = ppinfra.tasks()[task_id]["spec"]
    assert spec["mode"] == ("first-last-frame" if with_last else "image-to-video")


# --------------------------------------------------------------------------------------------------
# frames from object storage and local files
# --------------------------------------------------------------------------------------------------
def test_an_s3_frame_reaches_each_vendor_as_a_signed_url(airflow_db, vendor, s3_server, s3_bucket):
    image = png()
    s3_server.client().put_object(Bucket=s3_bucket, Key="frames/first.png", Body=image)
    outcome = submit_and_wait(image_url=f"s3://{s3_bucket}/frames/first.png")
    assert outcome.state == "success"
    task_id, body = only_task(vendor)
    first_field = FRAME_FIELDS[vendor.api][0]
    sent = body[first_field]
    parts = urlsplit(sent)
    assert f"{parts.scheme}://{parts.netloc}" == s3_server.endpoint_url
    assert parts.path == f"/{s3_bucket}/frames/first.png"
    query = parse_qs(parts.query)
    assert "X-Amz-Signature" in query or "Signature" in query
    fetched = requests.get(sent, timeout=10)  # no credentials: the link itself is the permission
    assert fetched.status_code == 200 and fetched.content == image
    assert vendor.tasks()[task_id]["spec"]["mode"] == "image-to-video"


def test_an_object_storage_path_frame_reaches_the_vendor_as_a_signed_url(
    airflow_db, vendor, s3_server, s3_bucket, monkeypatch
):
    image = png(720, 480)
    s3_server.client().put_object(Bucket=s3_bucket, Key="osp/first.png", Body=image)
    monkeypatch.setenv("HAILUO_TEST_FRAME_PATH", f"s3://{s3_bucket}/osp/first.png")
    outcome = run_dag(load_dag(VENDOR_DAGS, "object_storage_path"))
    assert outcome.state == "success"
    task_id, body = only_task(vendor)
    sent = body[FRAME_FIELDS[vendor.api][0]]
    assert sent.startswith(f"{s3_server.endpoint_url}/{s3_bucket}/osp/first.png?")
    assert requests.get(sent, timeout=10).content == image
    assert vendor.tasks()[task_id]["spec"]["mode"] == "image-to-video"


def test_a_local_frame_reaches_each_vendor_as_a_data_url(airflow_db, vendor, tmp_path):
    image = png()
    frame = tmp_path / "first.png"
    frame.write_bytes(image)
    outcome = submit_and_wait(image_url=frame.as_uri())
    assert outcome.state == "success"
    task_id, body = only_task(vendor)
    sent = body[FRAME_FIELDS[vendor.api][0]]
    prefix = "data:image/png;base64,"
    assert sent.startswith(prefix)
    assert base64.b64decode(sent.removeprefix(prefix)) == image
    assert vendor.tasks()[task_id]["spec"]["mode"] == "image-to-video"  # the service read it


def test_a_frame_too_small_for_minimax_fails_before_any_submit(
    airflow_db, minimax, s3_server, s3_bucket, capfd
):
    s3_server.client().put_object(Bucket=s3_bucket, Key="small.png", Body=png(200, 200))
    outcome = submit_and_wait(image_url=f"s3://{s3_bucket}/small.png")
    assert_failed_before_any_submit(outcome, minimax)
    out = capfd.readouterr().out
    assert "`image_url` must have a short side over 300 px" in out
    assert "200x200 (vendor: minimax)" in out


# --------------------------------------------------------------------------------------------------
# models: neutral names mapped per vendor, rules checked before the money is spent
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_frame", [True, False], ids=["image", "text"])
def test_hailuo_2_3_at_the_wire(vendor, with_frame):
    request = VideoRequest(prompt="a fox", model="hailuo-2.3", image_url=FIRST if with_frame else None)
    task_id = HailuoHook().submit(request)
    (submission,) = vendor.submissions()
    body = vendor.task_body(task_id)
    if vendor.api == "minimax":
        assert submission["path"] == "/v1/video_generation"
        assert body["model"] == "MiniMax-Hailuo-2.3"
        assert body.get("first_frame_image") == (FIRST if with_frame else None)
    else:
        suffix = "i2v" if with_frame else "t2v"
        assert submission["path"] == f"/v3/async/minimax-hailuo-2.3-{suffix}"
        assert body.get("image") == (FIRST if with_frame else None)
    assert not EVERY_FRAME_FIELD - {FRAME_FIELDS[vendor.api][0], "image"} & set(body)
    expected_mode = "image-to-video" if with_frame else "text-to-video"
    assert vendor.tasks()[task_id]["spec"]["mode"] == expected_mode


#: (model, fields) refused by every vendor before anything is sent, and the field each error names.
REFUSED_EVERYWHERE = [
    ({"model": "hailuo-02", "duration": 10, "resolution": "1080P"}, "resolution"),
    ({"model": "hailuo-2.3", "duration": 10, "resolution": "1080P"}, "resolution"),
    ({"model": "hailuo-2.3-fast"}, "image_url"),
    ({"model": "hailuo-2.3", "image_url": FIRST, "end_image_url": LAST}, "end_image_url"),
]


@pytest.mark.parametrize(("fields", "field"), REFUSED_EVERYWHERE)
def test_model_rules_refuse_before_any_submit_on_every_vendor(vendor, fields, field):
    with pytest.raises(HailuoValidationError) as caught:
        HailuoHook().validate(VideoRequest(prompt="a fox", **fields))
    assert caught.value.field == field
    assert vendor.api in str(caught.value)  # the error names the vendors (and the model)
    assert fields["model"] in str(caught.value)
    assert vendor.counters()["submit_requests"] == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "hailuo-02", "duration": 6, "resolution": "1080P"},
        {"model": "hailuo-02", "duration": 10, "resolution": "768P"},
        {"model": "hailuo-2.3", "duration": 6, "resolution": "1080P", "image_url": FIRST},
        {"model": "hailuo-2.3-fast", "duration": 10, "resolution": "768P", "image_url": FIRST},
    ],
    ids=["02-1080P-6s", "02-768P-10s", "2.3-1080P-6s", "2.3-fast-768P-10s"],
)
def test_the_edges_each_model_allows_are_bought_on_every_vendor(vendor, fields):
    task_id = HailuoHook().submit(VideoRequest(prompt="a fox", **fields))
    spec = vendor.tasks()[task_id]["spec"]
    assert (spec["duration"], spec["resolution"]) == (fields["duration"], fields["resolution"])
    assert vendor.counters()["submits"] == 1


def test_512p_is_minimax_image_to_video_only(servers, monkeypatch):
    for api in VENDORS:
        server = connect(servers[api], monkeypatch)
        image_request = VideoRequest(prompt="a fox", image_url=FIRST, resolution="512P")
        ten_seconds = VideoRequest(prompt="a fox", image_url=FIRST, resolution="512P", duration=10)
        if api == "minimax":
            for request in (image_request, ten_seconds):
                task_id = HailuoHook().submit(request)
                body = server.task_body(task_id)
                assert (body["resolution"], body["duration"]) == ("512P", request.duration)
            refused = [{}, {"image_url": FIRST, "end_image_url": LAST}]  # text; with a last frame
            for fields in refused:
                with pytest.raises(
                    HailuoValidationError,
                    match=r"512P is for image-to-video without a last frame only \(hailuo-02 on minimax\)",
                ):
                    HailuoHook().validate(VideoRequest(prompt="a fox", resolution="512P", **fields))
        else:
            for request in (image_request, ten_seconds):
                with pytest.raises(HailuoValidationError, match=rf"`resolution` .*\(hailuo-02 on {api}\)"):
                    HailuoHook().validate(request)
        assert server.counters()["submit_requests"] == (2 if api == "minimax" else 0)
