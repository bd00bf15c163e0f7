"""
Each vendor's wire as plain functions: what a submit sends, and what each answer means.

The central risk is a frame sent under a name the service ignores: that buys a text-to-video instead
of the image-to-video asked for, so every vendor's frame names are pinned here at the body.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoAuthError,
    HailuoContentRefusedError,
    HailuoError,
    HailuoMalformedAnswerError,
    HailuoNotFoundError,
    HailuoNoVideoError,
    HailuoTransientError,
    TaskResult,
    TaskState,
    VideoRequest,
)
from airflow_provider_hailuo.dialects import (
    DIALECTS,
    HttpCall,
    MiniMaxDialect,
    NovitaDialect,
    PPInfraDialect,
    dialect_for,
)
from airflow_provider_hailuo.dialects.ppinfra import task_result
from airflow_provider_hailuo.hooks.submit_rule import SubmitVerdict, submit_verdict

FIRST = "https://example.com/first.png"
LAST = "https://example.com/last.png"
DATA_URL = "data:image/png;base64,iVBORw0KGgo="
KEY = "sk-unit-test-key-0123456789abcdef"
PPINFRA, NOVITA, MINIMAX = PPInfraDialect(), NovitaDialect(), MiniMaxDialect()


def call(dialect, **kwargs) -> HttpCall:
    kwargs.setdefault("prompt", "a cat")
    return dialect.submit_call(VideoRequest(**kwargs))


def fields_holding(body, value) -> set[str]:
    return {name for name, held in body.items() if held == value}


def answer(data, status=200, headers=None):
    """(status, headers, body) as the hook hands them to a parser."""
    return status, headers or {}, json.dumps(data).encode() if not isinstance(data, bytes) else data


# --------------------------------------------------------------------------------------------------
# Frames under each vendor's names
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dialect", "model", "path", "first_name"),
    [
        (PPINFRA, "hailuo-02", "/v3/async/minimax-hailuo-02", "image"),
        (PPINFRA, "hailuo-2.3", "/v3/async/minimax-hailuo-2.3-i2v", "image"),
        (PPINFRA, "hailuo-2.3-fast", "/v3/async/minimax-hailuo-2.3-fast-i2v", "image"),
        (NOVITA, "hailuo-02", "/v3/async/minimax-hailuo-02", "image"),
        (NOVITA, "hailuo-2.3", "/v3/async/minimax-hailuo-2.3-i2v", "image"),
        (NOVITA, "hailuo-2.3-fast", "/v3/async/minimax-hailuo-2.3-fast-i2v", "image"),
        (MINIMAX, "hailuo-02", "/v1/video_generation", "first_frame_image"),
        (MINIMAX, "hailuo-2.3", "/v1/video_generation", "first_frame_image"),
        (MINIMAX, "hailuo-2.3-fast", "/v1/video_generation", "first_frame_image"),
    ],
)
def test_the_first_frame_goes_under_the_vendors_name_only(dialect, model, path, first_name):
    sent = call(dialect, model=model, image_url=FIRST)
    assert (sent.method, sent.path) == ("POST", path)
    assert fields_holding(sent.json, FIRST) == {first_name}


@pytest.mark.parametrize(
    ("dialect", "first_name", "last_name"),
    [
        (PPINFRA, "image", "end_image"),
        (NOVITA, "image", "end_image"),
        (MINIMAX, "first_frame_image", "last_frame_image"),
    ],
)
def test_first_and_last_frames_go_under_the_vendors_names(dialect, first_name, last_name):
    body = call(dialect, image_url=FIRST, end_image_url=LAST).json
    assert fields_holding(body, FIRST) == {first_name}
    assert fields_holding(body, LAST) == {last_name}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"image_url": FIRST, "end_image_url": LAST, "fast_pretreatment": True},
        {"image_url": DATA_URL},
        {"model": "hailuo-2.3", "image_url": FIRST},
        {"model": "hailuo-2.3-fast", "image_url": FIRST, "duration": 10},
        {"model": "minimax-video-01", "image_url": FIRST, "end_image_url": LAST},
    ],
)
def test_novita_speaks_ppinfras_wire_under_its_own_name(fields):
    """PPInfra's current pages name the frames as Novita's do: the two differ in name only."""
    request = VideoRequest(prompt="p", **fields)
    assert NOVITA.submit_call(request) == PPINFRA.submit_call(request)
    assert (NOVITA.accepts_data_url, NOVITA.passthrough_frames) == (
        PPINFRA.accepts_data_url,
        PPINFRA.passthrough_frames,
    )


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
def test_text_to_video_sends_no_frame(dialect):
    body = call(dialect).json
    assert not {"image", "image_url", "end_image", "first_frame_image", "last_frame_image"} & set(body)


# --------------------------------------------------------------------------------------------------
# Models and the other fields
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA])
def test_v3_picks_the_2_3_endpoint_by_the_first_frame(dialect):
    assert call(dialect, model="hailuo-2.3").path == "/v3/async/minimax-hailuo-2.3-t2v"
    assert call(dialect, model="hailuo-2.3", image_url=FIRST).path == "/v3/async/minimax-hailuo-2.3-i2v"


@pytest.mark.parametrize(
    ("model", "minimax_name", "frames"),
    [
        ("hailuo-02", "MiniMax-Hailuo-02", {}),
        ("minimax-hailuo-02", "MiniMax-Hailuo-02", {}),
        ("hailuo-2.3", "MiniMax-Hailuo-2.3", {}),
        ("hailuo-2.3-fast", "MiniMax-Hailuo-2.3-Fast", {"image_url": FIRST}),
    ],
)
def test_minimax_names_the_model_in_the_body(model, minimax_name, frames):
    sent = call(MINIMAX, model=model, **frames)
    assert sent.path == "/v1/video_generation" and sent.json["model"] == minimax_name


@pytest.mark.parametrize(
    ("dialect", "path", "model_field"),
    [
        (PPINFRA, "/v3/async/minimax-video-01", None),
        (NOVITA, "/v3/async/minimax-video-01", None),
        (MINIMAX, "/v1/video_generation", "minimax-video-01"),
    ],
)
def test_an_unknown_model_is_passed_through_with_a_warning(dialect, path, model_field):
    resolved = dialect.validate(VideoRequest(prompt="p", model="minimax-video-01", image_url=FIRST))
    assert resolved.passthrough and resolved.model == "minimax-video-01"
    assert "minimax-video-01" in resolved.warning and dialect.name in resolved.warning
    assert resolved.call.path == path and resolved.call.json.get("model") == model_field
    assert len(fields_holding(resolved.call.json, FIRST)) == 1


def test_catalogue_models_carry_no_warning():
    resolved = NOVITA.validate(VideoRequest(prompt="p", model="hailuo-2.3"))
    assert not resolved.passthrough and resolved.warning is None
    assert (resolved.catalogue_model, resolved.model) == ("hailuo-2.3", "minimax-hailuo-2.3-t2v")


@pytest.mark.parametrize(
    ("dialect", "flag"),
    [
        (PPINFRA, "enable_prompt_expansion"),
        (NOVITA, "enable_prompt_expansion"),
        (MINIMAX, "prompt_optimizer"),
    ],
)
def test_prompt_expansion_goes_under_the_vendors_name(dialect, flag):
    body = call(dialect, enable_prompt_expansion=False).json
    assert body[flag] is False
    assert {"enable_prompt_expansion", "prompt_optimizer"} & set(body) == {flag}


def test_extra_body_comes_last_and_verbatim():
    body = call(MINIMAX, extra_body={"aigc_watermark": True, "callback_url": "https://hooks.example/x"}).json
    assert body["aigc_watermark"] is True and body["callback_url"] == "https://hooks.example/x"


# --------------------------------------------------------------------------------------------------
# Submit answers
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
@pytest.mark.parametrize(("task_id", "expected"), [("abc", "abc"), (12345, "12345")])
def test_submit_answer_gives_the_task_id(dialect, task_id, expected):
    assert dialect.parse_submit(*answer({"task_id": task_id}), conn_id="c") == expected


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
@pytest.mark.parametrize(
    "raw", [b"<html>proxy</html>", b"[]", b'{"oops": true}', b'{"task_id": ""}', b'{"task_id": true}']
)
def test_an_accepted_submit_without_a_task_id_may_have_been_accepted(dialect, raw):
    with pytest.raises(HailuoMalformedAnswerError) as info:
        dialect.parse_submit(200, {}, raw, conn_id="c")
    assert submit_verdict(info.value) is SubmitVerdict.MAY_HAVE_BEEN_ACCEPTED


#: The vendor's own "unavailable" for each family: the v3 error document, MiniMax's base_resp 1002.
VENDOR_503 = {
    "ppinfra": {"code": 503, "reason": "SERVICE_UNAVAILABLE", "message": "try again later", "metadata": {}},
    "novita": {"code": 503, "reason": "SERVICE_UNAVAILABLE", "message": "try again later"},
    "minimax": {"base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded"}},
}


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
def test_429_on_submit_created_nothing_whatever_its_body(dialect):
    for body in (b"", b"<html>Too Many Requests</html>", json.dumps(VENDOR_503[dialect.name]).encode()):
        with pytest.raises(HailuoTransientError) as info:
            dialect.parse_submit(429, {"Retry-After": "7"}, body, conn_id="c")
        assert submit_verdict(info.value) is SubmitVerdict.NOTHING_CREATED
        assert info.value.retry_after == 7.0


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
def test_a_503_in_the_vendors_own_words_created_nothing(dialect):
    with pytest.raises(HailuoTransientError) as info:
        dialect.parse_submit(*answer(VENDOR_503[dialect.name], 503, {"Retry-After": "7"}), conn_id="c")
    assert submit_verdict(info.value) is SubmitVerdict.NOTHING_CREATED


GATEWAY_BODIES = [
    b"upstream connect error or disconnect/reset before headers. reset reason: connection termination",
    b"<html><head><title>503 Service Temporarily Unavailable</title></head></html>",
    b"",
    b'{"message": "Service Unavailable"}',  # an API gateway's own JSON
    b'{"code": 503, "message": "no healthy upstream"}',  # JSON without the vendor's `reason`
    b'{"base_resp": {"status_code": 0, "status_msg": ""}}',
]


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("body", GATEWAY_BODIES)
def test_other_5xx_on_submit_may_have_been_accepted(dialect, status, body):
    with pytest.raises(HailuoTransientError, match=f"HTTP {status}") as info:
        dialect.parse_submit(status, {}, body, conn_id="c")
    assert submit_verdict(info.value) is SubmitVerdict.MAY_HAVE_BEEN_ACCEPTED


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
@pytest.mark.parametrize(
    ("status", "kind"), [(400, HailuoAPIError), (401, HailuoAuthError), (403, HailuoAuthError)]
)
def test_http_refusals_on_submit_fail_at_once(dialect, status, kind):
    body = {"code": status, "reason": "INVALID_REQUEST_BODY", "message": "prompt is too long"}
    with pytest.raises(HailuoAPIError) as info:
        dialect.parse_submit(*answer(body, status), conn_id="c")
    assert type(info.value) is kind and info.value.message == "prompt is too long"
    assert "[connection 'c']" in str(info.value)


def minimax_submit(code, msg="x"):
    return MINIMAX.parse_submit(
        *answer({"task_id": "", "base_resp": {"status_code": code, "status_msg": msg}}), conn_id="c"
    )


def test_minimax_1002_on_submit_is_waited_out_and_created_nothing():
    with pytest.raises(HailuoTransientError) as info:
        minimax_submit(1002, "rate limit exceeded")
    assert info.value.nothing_created and info.value.code == 1002 and info.value.retry_after > 0


@pytest.mark.parametrize("code", [1004, 1008])
def test_minimax_auth_and_balance_fail_at_once(code):
    with pytest.raises(HailuoAuthError) as info:
        minimax_submit(code, "insufficient balance")
    assert info.value.code == code and "insufficient balance" in str(info.value)


def test_minimax_2013_fails_at_once_with_the_message():
    with pytest.raises(HailuoAPIError) as info:
        minimax_submit(2013, "invalid params: duration")
    assert type(info.value) is HailuoAPIError and info.value.code == 2013
    assert "invalid params: duration" in str(info.value)


@pytest.mark.parametrize("code", [1026, 1027])
def test_minimax_sensitive_content_on_submit_is_a_failed_generation(code):
    with pytest.raises(HailuoContentRefusedError) as info:
        minimax_submit(code, "content flagged")
    assert not isinstance(info.value, HailuoTransientError) and "content flagged" in str(info.value)


@pytest.mark.parametrize("code", [1000, 1001, 1024, 1041, 2045, 1999, 99999])
def test_minimax_unknown_trouble_on_submit_may_have_been_accepted(code):
    with pytest.raises(HailuoTransientError, match=f"status_code {code}") as info:
        minimax_submit(code)
    assert submit_verdict(info.value) is SubmitVerdict.MAY_HAVE_BEEN_ACCEPTED


@pytest.mark.parametrize("code", [1004, 1008, 2049])
def test_minimax_refused_key_or_balance_on_submit_fails_at_once(code):
    with pytest.raises(HailuoAuthError) as info:
        minimax_submit(code)
    assert submit_verdict(info.value) is SubmitVerdict.REFUSED


@pytest.mark.parametrize(("status", "code"), [(503, 1002), (429, 1002), (500, 1000)])
def test_minimax_error_status_is_read_by_its_base_resp(status, code):
    body = {"base_resp": {"status_code": code, "status_msg": "m"}}
    with pytest.raises(HailuoTransientError) as info:
        MINIMAX.parse_submit(*answer(body, status), conn_id="c")
    assert info.value.code == code and info.value.nothing_created == (code == 1002)


def test_minimax_success_base_resp_gives_the_id():
    data = {"task_id": "106916112212032", "base_resp": {"status_code": 0, "status_msg": "success"}}
    assert MINIMAX.parse_submit(*answer(data), conn_id="c") == "106916112212032"


def test_error_text_never_carries_the_key_and_is_bounded():
    data = {"base_resp": {"status_code": 1004, "status_msg": f"key {KEY} does not match " + "no " * 200}}
    with pytest.raises(HailuoAuthError) as info:
        MINIMAX.parse_submit(*answer(data), conn_id="c")
    assert KEY not in str(info.value) and KEY[:12] not in str(info.value)
    assert len(info.value.message) <= 200
    with pytest.raises(HailuoAuthError) as http_info:
        PPINFRA.parse_submit(*answer({"message": f"Bearer {KEY} refused"}, 401), conn_id="c")
    assert KEY not in str(http_info.value)


# --------------------------------------------------------------------------------------------------
# Task reads
# --------------------------------------------------------------------------------------------------
def test_read_calls():
    assert PPINFRA.read_call("t1") == HttpCall("GET", "/v3/async/task-result", {"task_id": "t1"})
    assert NOVITA.read_call("t1") == HttpCall("GET", "/v3/async/task-result", {"task_id": "t1"})
    assert MINIMAX.read_call("t1") == HttpCall("GET", "/v1/query/video_generation", {"task_id": "t1"})


def v3_task(status, videos=()):
    return {"task": {"task_id": "t1", "status": status, "eta": 5}, "videos": list(videos)}


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA])
@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("TASK_STATUS_QUEUED", TaskState.QUEUED),
        ("TASK_STATUS_PROCESSING", TaskState.PROCESSING),
        ("TASK_STATUS_FAILED", TaskState.FAILED),
        ("TASK_STATUS_PAUSED", TaskState.UNKNOWN),
        ("", TaskState.UNKNOWN),
    ],
)
def test_v3_read_states(dialect, status, state):
    result = dialect.parse_read(*answer(v3_task(status)), task_id="t1", conn_id="c")
    assert result.state is state and result.status == status
    assert result.known_status is (state is not TaskState.UNKNOWN)
    assert not result.succeeded and result.finished is (state is TaskState.FAILED)


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA])
@pytest.mark.parametrize("word", ["TASK_STATUS_SUCCEED", "TASK_STATUS_SUCCEEDED"])  # docs/vendors.md §2: both
def test_v3_succeed_with_and_without_videos(dialect, word):
    video = {"video_url": "https://cdn/v.mp4", "video_url_ttl": "3600", "video_type": "mp4"}
    done = dialect.parse_read(*answer(v3_task(word, [video])), task_id="t1", conn_id="c")
    assert done.succeeded and done.has_video and done.video_url == "https://cdn/v.mp4"
    assert done.status == word  # the vendor's own word is kept for logs and XCom
    empty = dialect.parse_read(*answer(v3_task(word)), task_id="t1", conn_id="c")
    assert empty.succeeded and not empty.has_video and empty.video_url is None


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
@pytest.mark.parametrize("status", [400, 404])
def test_an_unknown_task_id_is_not_found(dialect, status):
    own_words = {
        "ppinfra": {"code": status, "reason": "TASK_NOT_FOUND", "message": "task t9 not found"},
        "novita": {"code": status, "reason": "TASK_NOT_FOUND", "message": "task t9 not found"},
        "minimax": {"base_resp": {"status_code": 0, "status_msg": "not found"}},
    }[dialect.name]
    with pytest.raises(HailuoNotFoundError) as info:
        dialect.parse_read(*answer(own_words, status), task_id="t9", conn_id="c")
    assert "task_id=t9" in str(info.value)


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
@pytest.mark.parametrize("body", [b"<html>404 Not Found</html>", b"", b'{"message": "no route"}'])
def test_a_404_in_another_hosts_words_is_not_an_unknown_task(dialect, body):
    """Issue 18, 1: a web server's or a proxy's 404 page was read as "no such task"."""
    with pytest.raises(HailuoAPIError) as info:
        dialect.parse_read(404, {"Content-Type": "text/html"}, body, task_id="t9", conn_id="c")
    assert not isinstance(info.value, HailuoNotFoundError)


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA, MINIMAX])
@pytest.mark.parametrize("raw", [b"<html>", b"[]", b"{}"])
def test_a_garbled_read_is_malformed(dialect, raw):
    with pytest.raises(HailuoMalformedAnswerError):
        dialect.parse_read(200, {}, raw, task_id="t1", conn_id="c")


def minimax_read(data, status=200) -> TaskResult:
    return MINIMAX.parse_read(*answer(data, status), task_id="t1", conn_id="c")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Preparing", TaskState.QUEUED),
        ("Queueing", TaskState.QUEUED),
        ("Processing", TaskState.PROCESSING),
        ("processing", TaskState.PROCESSING),
        ("Fail", TaskState.FAILED),
        ("FAIL", TaskState.FAILED),
        ("Paused", TaskState.UNKNOWN),
    ],
)
def test_minimax_read_states_case_insensitively(status, state):
    result = minimax_read({"task_id": "t1", "status": status, "base_resp": {"status_code": 0}})
    assert result.state is state and result.status == status and not result.has_video


@pytest.mark.parametrize("status", ["Success", "success", "SUCCESS"])
def test_minimax_success_names_a_file(status):
    data = {
        "task_id": "106916112212032",
        "status": status,
        "file_id": 205258526306433,
        "video_width": 1366,
        "video_height": 768,
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }
    result = minimax_read(data)
    assert result.succeeded and result.has_video and result.videos == ()
    assert (result.task_id, result.file_id) == ("106916112212032", "205258526306433")
    assert (result.video_width, result.video_height) == (1366, 768)
    assert result.to_xcom()["file_id"] == "205258526306433"


def test_minimax_success_without_a_file_has_nothing_to_download():
    result = minimax_read({"task_id": "t1", "status": "Success", "base_resp": {"status_code": 0}})
    assert result.succeeded and not result.has_video


@pytest.mark.parametrize("code", [1002, 1000, 1001, 1024, 4321])
def test_minimax_read_trouble_is_transient(code):
    with pytest.raises(HailuoTransientError) as info:
        minimax_read({"base_resp": {"status_code": code, "status_msg": "busy"}})
    assert info.value.code == code and "task_id=t1" in str(info.value)


@pytest.mark.parametrize(
    ("code", "kind"), [(1004, HailuoAuthError), (1008, HailuoAuthError), (2013, HailuoNotFoundError)]
)
def test_minimax_read_refusals(code, kind):
    with pytest.raises(kind):
        minimax_read({"base_resp": {"status_code": code, "status_msg": "no"}})


@pytest.mark.parametrize("code", [1026, 1027])
def test_minimax_sensitive_content_on_read_is_a_failed_task(code):
    result = minimax_read(
        {"task_id": "t1", "status": "Fail", "base_resp": {"status_code": code, "status_msg": "flagged"}}
    )
    assert result.failed and result.finished and "sensitive" in result.reason and "flagged" in result.reason


@pytest.mark.parametrize(
    ("status", "kind"), [(429, HailuoTransientError), (502, HailuoTransientError), (401, HailuoAuthError)]
)
def test_minimax_http_errors_on_read(status, kind):
    with pytest.raises(kind):
        minimax_read(b"<html>error</html>", status)


# --------------------------------------------------------------------------------------------------
# Download links
# --------------------------------------------------------------------------------------------------
V3_DONE = task_result(
    {
        "task": {"task_id": "t1", "status": "TASK_STATUS_SUCCEED"},
        "videos": [{"video_url": "https://cdn/v.mp4"}],
    }
)
MINIMAX_DONE = TaskResult(task_id="t1", status="Success", state=TaskState.SUCCEEDED, file_id="f1")


@pytest.mark.parametrize("dialect", [PPINFRA, NOVITA])
def test_v3_links_are_in_the_result(dialect):
    assert dialect.link_call(V3_DONE) is None and V3_DONE.video_url == "https://cdn/v.mp4"


def test_minimax_links_come_from_file_retrieval():
    assert MINIMAX.link_call(MINIMAX_DONE) == HttpCall("GET", "/v1/files/retrieve", {"file_id": "f1"})
    with_group = MiniMaxDialect(group_id="1890").link_call(MINIMAX_DONE)
    assert with_group.params == {"file_id": "f1", "GroupId": "1890"}
    data = {
        "file": {"file_id": "f1", "download_url": "https://cdn.minimax/v.mp4?sig=1"},
        "base_resp": {"status_code": 0},
    }
    assert MINIMAX.parse_link(*answer(data), task_id="t1", conn_id="c") == "https://cdn.minimax/v.mp4?sig=1"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"file": {"file_id": "f1"}, "base_resp": {"status_code": 0}}, HailuoMalformedAnswerError),
        ({"file": {"download_url": "ftp://x/v.mp4"}}, HailuoMalformedAnswerError),
        ({"base_resp": {"status_code": 1002}}, HailuoTransientError),
        ({"base_resp": {"status_code": 2013}}, HailuoNotFoundError),
    ],
)
def test_minimax_link_answers_that_give_no_link(data, kind):
    with pytest.raises(kind):
        MINIMAX.parse_link(*answer(data), task_id="t1", conn_id="c")


@pytest.mark.parametrize(
    ("dialect", "result"),
    [
        (
            PPINFRA,
            task_result({"task": {"task_id": "t", "status": "TASK_STATUS_SUCCEED"}, "videos": []}),
        ),
        (PPINFRA, task_result({"task": {"task_id": "t", "status": "TASK_STATUS_FAILED"}})),
        (MINIMAX, TaskResult(task_id="t", status="Success", state=TaskState.SUCCEEDED)),
        (MINIMAX, TaskResult(task_id="t", status="Processing", state=TaskState.PROCESSING, file_id="f")),
    ],
)
def test_no_link_without_a_video(dialect, result):
    with pytest.raises(HailuoNoVideoError, match="task t "):
        dialect.link_call(result)


# --------------------------------------------------------------------------------------------------
# Which vendor a connection speaks
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("api", "host", "vendor"),
    [
        (None, "https://api.minimax.io", "minimax"),
        (None, "api.minimaxi.com", "minimax"),
        (None, "https://API.MiniMax.io/", "minimax"),
        (None, "https://api.novita.ai", "novita"),
        (None, "https://api.ppinfra.com", "ppinfra"),
        (None, "http://127.0.0.1:8000", "ppinfra"),
        (None, "", "ppinfra"),
        ("", "https://api.novita.ai", "novita"),
        ("minimax", "http://127.0.0.1:8000", "minimax"),
        ("Novita ", "https://api.minimax.io", "novita"),
        ("ppinfra", "https://api.novita.ai", "ppinfra"),
    ],
)
def test_the_api_extra_wins_else_the_host_decides(api, host, vendor):
    dialect = dialect_for(api, host)
    assert dialect.name == vendor and type(dialect) is DIALECTS[vendor]


@pytest.mark.parametrize("api", ["openai", "fal", 1, True])
def test_an_unknown_api_extra_is_refused_naming_the_choices(api):
    with pytest.raises(HailuoError, match=r"extra `api`.*ppinfra, novita, minimax"):
        dialect_for(api, "https://api.minimax.io")


def test_data_urls_per_vendor():
    assert (PPINFRA.accepts_data_url, NOVITA.accepts_data_url, MINIMAX.accepts_data_url) == (
        True,
        True,
        True,
    )
