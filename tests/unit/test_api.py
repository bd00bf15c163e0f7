"""The request rules and result parsing, with every rule's boundary values."""

from __future__ import annotations

import pytest

from airflow_provider_hailuo.api import (
    HailuoMalformedAnswerError,
    HailuoValidationError,
    TaskResult,
    VideoRequest,
    coerce_rendered,
)


def invalid(field: str, **kwargs):
    kwargs.setdefault("prompt", "a cat")
    with pytest.raises(HailuoValidationError) as info:
        VideoRequest(**kwargs)
    assert info.value.field == field
    assert f"`{field}`" in str(info.value)
    return info.value


@pytest.mark.parametrize("length", [1, 2, 1999, 2000])
def test_prompt_length_accepted_at_bounds(length):
    assert len(VideoRequest(prompt="x" * length).prompt) == length


@pytest.mark.parametrize("length", [0, 2001, 5000])
def test_prompt_length_refused_outside_bounds(length):
    err = invalid("prompt", prompt="x" * length)
    assert "1 to 2000 characters" in err.rule


def test_prompt_counts_characters_not_bytes():
    assert VideoRequest(prompt="熊" * 2000).prompt == "熊" * 2000
    invalid("prompt", prompt="熊" * 2001)


@pytest.mark.parametrize("prompt", ["   ", "\n\t"])
def test_blank_prompt_refused(prompt):
    assert "blank" in invalid("prompt", prompt=prompt).rule


@pytest.mark.parametrize("prompt", [None, 42, ["a"]])
def test_prompt_must_be_a_string(prompt):
    invalid("prompt", prompt=prompt)


@pytest.mark.parametrize("duration", [6, 10])
def test_durations_accepted(duration):
    assert VideoRequest(prompt="p", duration=duration).duration == duration


@pytest.mark.parametrize("duration", [0, 5, 7, 9, 11, 6.0, "6", True, None])
def test_other_durations_refused(duration):
    invalid("duration", duration=duration)


@pytest.mark.parametrize(("duration", "resolution"), [(6, "768P"), (6, "1080P"), (10, "768P")])
def test_supported_combinations(duration, resolution):
    request = VideoRequest(prompt="p", duration=duration, resolution=resolution)
    assert request.to_body()["resolution"] == resolution


def test_ten_seconds_only_at_768p():
    err = invalid("resolution", duration=10, resolution="1080P")
    assert "10 s" in err.rule and "768P" in err.rule


@pytest.mark.parametrize("resolution", ["720P", "768p", "1080", "", None, "4K"])
def test_unknown_resolutions_refused(resolution):
    invalid("resolution", resolution=resolution)


@pytest.mark.parametrize("url", ["https://example.com/a.jpg", "http://10.0.0.1:8080/x.png"])
def test_http_image_urls_accepted(url):
    assert VideoRequest(prompt="p", image_url=url).to_body()["image_url"] == url


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://host/a.jpg", "data:image/png;base64,AAAA", "//host/a.jpg", "", 3]
)
def test_non_http_image_urls_refused(url):
    invalid("image_url", image_url=url)


@pytest.mark.parametrize("value", ["true", 1, None])
def test_prompt_expansion_must_be_bool(value):
    invalid("enable_prompt_expansion", enable_prompt_expansion=value)


@pytest.mark.parametrize("model", ["minimax-hailuo-02", "minimax-hailuo-2.3-fast-i2v", "minimax-video-01"])
def test_sibling_models_accepted(model):
    assert VideoRequest(prompt="p", model=model).model == model


@pytest.mark.parametrize("model", ["", "../task-result", "a/b", "UPPER", "x" * 200])
def test_model_must_be_an_endpoint_name(model):
    invalid("model", model=model)


def test_extra_body_passes_new_fields_through():
    body = VideoRequest(
        prompt="p", extra_body={"fast_pretreatment": True, "end_image": "https://x/y.png"}
    ).to_body()
    assert body["fast_pretreatment"] is True
    assert body["end_image"] == "https://x/y.png"


def test_extra_body_cannot_override_checked_fields():
    err = invalid("extra_body", extra_body={"duration": 30})
    assert "duration" in err.rule


def test_extra_body_must_be_json():
    invalid("extra_body", extra_body={"when": object()})


def test_body_has_defaults_and_omits_absent_image():
    assert VideoRequest(prompt="p").to_body() == {
        "prompt": "p",
        "duration": 6,
        "resolution": "768P",
        "enable_prompt_expansion": True,
    }


def test_from_body_applies_service_defaults_and_rules():
    request = VideoRequest.from_body({"prompt": "p", "fast_pretreatment": False}, model="minimax-video-01")
    assert (request.duration, request.resolution, request.model) == (6, "768P", "minimax-video-01")
    assert request.extra_body == {"fast_pretreatment": False}
    with pytest.raises(HailuoValidationError, match="`prompt` is required"):
        VideoRequest.from_body({})
    with pytest.raises(HailuoValidationError, match="`body`"):
        VideoRequest.from_body(["not", "an", "object"])


@pytest.mark.parametrize(
    ("name", "rendered", "expected"),
    [
        ("duration", "10", 10),
        ("duration", " 6 ", 6),
        ("duration", "6.5", "6.5"),
        ("enable_prompt_expansion", "False", False),
        ("enable_prompt_expansion", "true", True),
        ("enable_prompt_expansion", "maybe", "maybe"),
        ("image_url", "None", None),
        ("image_url", "", None),
        ("prompt", "10", "10"),
        ("duration", 10, 10),
    ],
)
def test_coerce_rendered(name, rendered, expected):
    assert coerce_rendered(name, rendered) == expected


SUCCEED = {
    "task": {
        "task_id": "t1",
        "task_type": "MINIMAX_HAILUO_02",
        "status": "TASK_STATUS_SUCCEED",
        "reason": "",
        "eta": 0,
        "progress_percent": 100,
        "brand_new_field": {"x": 1},
    },
    "images": [],
    "audios": [],
    "videos": [{"video_url": "https://cdn/v.mp4", "video_url_ttl": "3600", "video_type": "mp4"}],
    "extra": {"seed": 1, "debug_info": {"submit_time_ms": 1}},
}


def test_task_result_parses_documented_shape():
    result = TaskResult.from_json(SUCCEED)
    assert result.succeeded and result.finished and not result.failed
    assert result.videos[0].url == "https://cdn/v.mp4"
    assert result.videos[0].ttl_seconds == 3600
    assert result.to_xcom()["videos"][0]["video_url_ttl"] == 3600


def test_ttl_as_int_and_unknown_status_tolerated():
    data = {
        "task": {"task_id": "t", "status": "TASK_STATUS_PAUSED", "eta": "12"},
        "videos": [{"video_url_ttl": 60}],
    }
    result = TaskResult.from_json(data)
    assert not result.finished and not result.known_status
    assert result.eta == 12
    assert result.videos[0].ttl_seconds == 60


def test_failed_result_keeps_reason():
    result = TaskResult.from_json(
        {"task": {"task_id": "t", "status": "TASK_STATUS_FAILED", "reason": "nsfw"}}
    )
    assert result.failed and result.reason == "nsfw"


@pytest.mark.parametrize("data", [[], "x", {"videos": []}, {"task": "x"}])
def test_malformed_results_raise_a_retryable_error(data):
    with pytest.raises(HailuoMalformedAnswerError):
        TaskResult.from_json(data, "t9")
