"""The request rules (shared and per model, at their boundaries per vendor) and the task result."""

from __future__ import annotations

import json

import pytest

from airflow_provider_hailuo.api import (
    HailuoAPIError,
    HailuoMalformedAnswerError,
    HailuoTaskFailedError,
    HailuoValidationError,
    TaskResult,
    TaskState,
    VideoRequest,
    loose_int,
)
from airflow_provider_hailuo.dialects import DIALECTS, refuse_what_no_vendor_takes
from airflow_provider_hailuo.dialects.ppinfra import task_result
from airflow_provider_hailuo.rendered import coerce_rendered

VENDORS = tuple(DIALECTS)
FIRST = "https://example.com/first.png"
LAST = "https://example.com/last.png"
DATA_URL = "data:image/png;base64,iVBORw0KGgo="
#: Each catalogue model with the frames it needs at least (2.3-Fast is image-to-video only).
MODELS = {"hailuo-02": {}, "hailuo-2.3": {}, "hailuo-2.3-fast": {"image_url": FIRST}}


def checked_request(**fields):
    """A request as a DAG's literal values are checked at parse time: shared rules, then every vendor's."""
    request = VideoRequest(**fields)
    refuse_what_no_vendor_takes(request)
    return request


def invalid(field: str, **kwargs):
    kwargs.setdefault("prompt", "a cat")
    with pytest.raises(HailuoValidationError) as info:
        checked_request(**kwargs)
    assert info.value.field == field
    assert f"`{field}`" in str(info.value)
    return info.value


def sent(vendor: str, **kwargs):
    """The submit body a vendor's dialect builds for a request (the request is valid there)."""
    kwargs.setdefault("prompt", "a cat")
    return DIALECTS[vendor]().validate(checked_request(**kwargs)).call.json


def refused_by(vendor: str, field: str, **kwargs) -> HailuoValidationError:
    """A request some vendor takes, refused by this one naming the field, the model and the vendor."""
    kwargs.setdefault("prompt", "a cat")
    request = checked_request(**kwargs)
    with pytest.raises(HailuoValidationError) as info:
        DIALECTS[vendor]().validate(request)
    err = info.value
    assert err.field == field and err.vendor == vendor
    assert f"`{field}`" in str(err) and f"on {vendor})" in str(err) and str(err.model) in str(err)
    return err


def refused_everywhere(field: str, model: str, **kwargs) -> HailuoValidationError:
    """A request no vendor takes: refused when built, naming the field, the model and every vendor."""
    err = invalid(field, model=model, **kwargs)
    assert model in err.rule and all(vendor in err.rule for vendor in VENDORS)
    return err


# --------------------------------------------------------------------------------------------------
# Rules every vendor shares
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("length", [1, 2, 1999, 2000])
def test_prompt_length_accepted_at_bounds_and_sent_whole(vendor, length):
    assert sent(vendor, prompt="x" * length)["prompt"] == "x" * length


@pytest.mark.parametrize("length", [0, 2001, 5000])
def test_prompt_length_refused_outside_bounds(length):
    err = invalid("prompt", prompt="x" * length)
    assert "1 to 2000 characters" in err.rule


def test_prompt_counts_characters_not_bytes():
    assert sent("minimax", prompt="熊" * 2000)["prompt"] == "熊" * 2000
    invalid("prompt", prompt="熊" * 2001)


@pytest.mark.parametrize("prompt", ["   ", "\n\t"])
def test_blank_prompt_refused(prompt):
    assert "blank" in invalid("prompt", prompt=prompt).rule


@pytest.mark.parametrize("prompt", [None, 42, ["a"]])
def test_prompt_must_be_a_string(prompt):
    invalid("prompt", prompt=prompt)


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("duration", [6, 10])
def test_durations_accepted_and_sent_as_integers(vendor, duration):
    assert sent(vendor, duration=duration)["duration"] == duration


@pytest.mark.parametrize("duration", [0, 5, 7, 9, 11, 6.0, "6", True, None])
def test_other_durations_refused(duration):
    invalid("duration", duration=duration)


@pytest.mark.parametrize("resolution", ["720P", "768p", "1080", "", None, "4K"])
def test_unknown_resolutions_refused(resolution):
    invalid("resolution", resolution=resolution)


@pytest.mark.parametrize("field", ["image_url", "end_image_url"])
@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://host/a.jpg", "s3://bucket/a.png", "//host/a.jpg", "", 3]
)
def test_frames_must_be_http_or_data_urls(field, url):
    kwargs = {"image_url": FIRST} if field == "end_image_url" else {}
    err = invalid(field, **{field: url}, **kwargs)
    assert "http" in err.rule


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,",
        "data:image/png,AAAA",
        "data:text/plain;base64,AAAA",
        "data:image/png;base64,A A",
    ],
)
def test_malformed_data_urls_refused(url):
    assert "data:image" in invalid("image_url", image_url=url).rule


@pytest.mark.parametrize("name", ["enable_prompt_expansion", "fast_pretreatment"])
@pytest.mark.parametrize("value", ["true", 1, None])
def test_flags_must_be_bool(name, value):
    invalid(name, **{name: value})


@pytest.mark.parametrize("model", ["", "../task-result", "a/b", "x" * 200, "-lead", 7])
def test_model_must_be_a_name_not_a_path(model):
    invalid("model", model=model)


def test_extra_body_passes_new_fields_through():
    body = sent("ppinfra", extra_body={"aigc_watermark": True, "brand_new": {"x": 1}})
    assert body["aigc_watermark"] is True and body["brand_new"] == {"x": 1}


@pytest.mark.parametrize("field", ["duration", "image_url", "end_image_url", "fast_pretreatment"])
def test_extra_body_cannot_override_the_requests_fields(field):
    err = invalid("extra_body", extra_body={field: 30})
    assert field in err.rule


@pytest.mark.parametrize(
    ("vendor", "model", "wire_name"),
    [
        ("ppinfra", "hailuo-2.3", "image"),
        ("ppinfra", "hailuo-02", "image"),
        ("ppinfra", "hailuo-02", "end_image"),
        ("novita", "hailuo-02", "image"),
        ("novita", "hailuo-02", "end_image"),
        ("minimax", "hailuo-02", "first_frame_image"),
        ("minimax", "hailuo-02", "last_frame_image"),
        ("minimax", "hailuo-02", "prompt_optimizer"),
        ("minimax", "hailuo-02", "model"),
    ],
)
def test_extra_body_cannot_smuggle_a_vendors_own_field(vendor, model, wire_name):
    err = refused_by(vendor, "extra_body", model=model, extra_body={wire_name: "x"})
    assert wire_name in err.rule


def test_extra_body_must_be_json():
    invalid("extra_body", extra_body={"when": object()})


# --------------------------------------------------------------------------------------------------
# Model rules at their boundaries, per vendor
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("duration", "resolution"), [(6, "768P"), (6, "1080P"), (10, "768P")])
def test_supported_durations_and_resolutions(vendor, model, duration, resolution):
    body = sent(vendor, model=model, duration=duration, resolution=resolution, **MODELS[model])
    assert (body["duration"], body["resolution"]) == (duration, resolution)


@pytest.mark.parametrize("model", MODELS)
def test_1080p_is_6_seconds_only(model):
    err = refused_everywhere("resolution", model, duration=10, resolution="1080P", **MODELS[model])
    assert "1080P is not available for 10 s videos" in err.rule and "10 s is 768P only" in err.rule


@pytest.mark.parametrize("duration", [6, 10])
def test_512p_is_image_to_video_on_minimax_only(duration):
    body = sent("minimax", resolution="512P", image_url=FIRST, duration=duration)
    assert (body["resolution"], body["duration"]) == ("512P", duration)
    for vendor in ("ppinfra", "novita"):
        refusal = refused_by(vendor, "resolution", resolution="512P", image_url=FIRST, duration=duration)
        assert "768P, 1080P" in refusal.rule


def test_512p_text_to_video_is_refused_naming_minimaxs_rule():
    err = invalid("resolution", resolution="512P")
    assert "512P is for image-to-video without a last frame only (hailuo-02 on minimax)" in err.rule


@pytest.mark.parametrize("duration", [6, 10])
def test_512p_is_refused_with_a_last_frame_at_either_duration(duration):
    """docs/vendors.md §5: Hailuo-02's 512P image-to-video is 6 or 10 s, never with a last frame."""
    with pytest.raises(HailuoValidationError) as with_last:
        checked_request(prompt="p", resolution="512P", image_url=FIRST, end_image_url=LAST, duration=duration)
    assert "512P is for image-to-video without a last frame only (hailuo-02 on minimax)" in str(
        with_last.value
    )
    text = invalid("resolution", resolution="512P", duration=duration)
    assert "512P is for image-to-video without a last frame only (hailuo-02 on minimax)" in text.rule


@pytest.mark.parametrize("model", ["hailuo-2.3", "hailuo-2.3-fast"])
def test_512p_is_hailuo_02_only(model):
    invalid("resolution", model=model, resolution="512P", image_url=FIRST)


def test_2_3_fast_needs_a_first_frame():
    err = refused_everywhere("image_url", "hailuo-2.3-fast")
    assert "is required" in err.rule
    for vendor in VENDORS:
        assert sent(vendor, model="hailuo-2.3-fast", image_url=FIRST)


@pytest.mark.parametrize("model", ["hailuo-2.3", "hailuo-2.3-fast"])
def test_a_last_frame_on_2_3_is_refused(model):
    err = refused_everywhere("end_image_url", model, image_url=FIRST, end_image_url=LAST)
    assert "no last frame" in err.rule


def test_a_last_frame_on_hailuo_02_on_every_vendor():
    assert sent("ppinfra", image_url=FIRST, end_image_url=LAST)["end_image"] == LAST
    assert sent("novita", image_url=FIRST, end_image_url=LAST)["end_image"] == LAST
    assert sent("minimax", image_url=FIRST, end_image_url=LAST)["last_frame_image"] == LAST


def test_a_last_frame_needs_a_first_frame():
    assert "goes with a first frame" in invalid("end_image_url", end_image_url=LAST).rule


def test_fast_pretreatment_where_documented():
    for vendor in VENDORS:
        assert sent(vendor, fast_pretreatment=True)["fast_pretreatment"] is True
        assert "fast_pretreatment" not in sent(vendor)  # the default is the service's own
    refused_everywhere("fast_pretreatment", "hailuo-2.3-fast", image_url=FIRST, fast_pretreatment=True)


def test_data_url_frames_where_the_vendor_takes_them():
    assert sent("ppinfra", image_url=DATA_URL, end_image_url=DATA_URL)["end_image"] == DATA_URL
    assert sent("novita", image_url=DATA_URL)["image"] == DATA_URL
    assert sent("minimax", image_url=DATA_URL)["first_frame_image"] == DATA_URL


def test_a_passed_through_model_gets_the_shared_rules_only():
    request = checked_request(prompt="p", model="minimax-video-01", duration=10, resolution="1080P")
    for vendor in VENDORS:
        resolved = DIALECTS[vendor]().validate(request)
        assert resolved.passthrough and resolved.catalogue_model is None
        assert "minimax-video-01" in resolved.warning
    invalid("prompt", prompt="", model="minimax-video-01")
    invalid("image_url", image_url="file:///x.png", model="minimax-video-01")


def test_a_passed_through_name_must_be_an_endpoint_on_the_v3_api():
    for vendor in ("ppinfra", "novita"):
        refused_by(vendor, "model", model="MiniMax-Hailuo-02-Preview")
    assert (
        DIALECTS["minimax"]()
        .validate(checked_request(prompt="p", model="MiniMax-Hailuo-02-Preview"))
        .passthrough
    )


def test_the_old_default_is_hailuo_02_with_its_rules_on_every_vendor():
    for vendor in VENDORS:
        resolved = DIALECTS[vendor]().validate(checked_request(prompt="p", model="minimax-hailuo-02"))
        assert resolved.catalogue_model == "hailuo-02" and not resolved.passthrough
    err = invalid("resolution", model="minimax-hailuo-02", duration=10, resolution="1080P")
    assert "(hailuo-02 on ppinfra, novita, minimax)" in err.rule


# --------------------------------------------------------------------------------------------------
# PPInfra's body
# --------------------------------------------------------------------------------------------------
def ppinfra_body(request: VideoRequest) -> dict:
    from airflow_provider_hailuo.dialects.ppinfra import PPInfraDialect

    return dict(PPInfraDialect().validate(request).call.json or {})


def test_body_has_defaults_and_omits_absent_image():
    assert ppinfra_body(checked_request(prompt="p")) == {
        "prompt": "p",
        "duration": 6,
        "resolution": "768P",
        "enable_prompt_expansion": True,
    }


def test_ppinfra_names_the_frames_image_and_end_image():
    """PPInfra's current Hailuo-02 page: `image_url` (the seed's name) would buy a text-to-video."""
    body = ppinfra_body(checked_request(prompt="p", image_url=FIRST, end_image_url=LAST))
    assert (body["image"], body["end_image"]) == (FIRST, LAST)
    assert "image_url" not in body and "end_image_url" not in body


# --------------------------------------------------------------------------------------------------
# Rendered templates
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "rendered", "expected"),
    [
        ("duration", "10", 10),
        ("duration", " 6 ", 6),
        ("duration", "6.5", "6.5"),
        ("duration", "²", "²"),
        ("duration", "٦", "٦"),
        ("enable_prompt_expansion", "False", False),
        ("enable_prompt_expansion", "true", True),
        ("enable_prompt_expansion", "maybe", "maybe"),
        ("fast_pretreatment", "on", True),
        ("image_url", "None", None),
        ("image_url", "", None),
        ("end_image_url", "none", None),
        ("prompt", "10", "10"),
        ("duration", 10, 10),
    ],
)
def test_coerce_rendered(name, rendered, expected):
    assert coerce_rendered(name, rendered) == expected


@pytest.mark.parametrize("rendered", ["²", "٦", "\uff16"])
def test_a_rendered_non_ascii_digit_fails_as_the_fields_rule(rendered):
    # "²".isdigit() is True, and int("٦") is 6 (so is the full-width 6): none may reach int()
    invalid("duration", duration=coerce_rendered("duration", rendered))


# --------------------------------------------------------------------------------------------------
# Task results
# --------------------------------------------------------------------------------------------------
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
    result = task_result(SUCCEED)
    assert result.succeeded and result.finished and not result.failed and result.has_video
    assert result.state is TaskState.SUCCEEDED
    assert result.videos[0].url == result.video_url == "https://cdn/v.mp4"
    assert result.videos[0].ttl_seconds == 3600
    assert result.to_xcom()["videos"] == [{"video_type": "mp4"}]


def test_ttl_as_int_and_unknown_status_tolerated():
    data = {
        "task": {"task_id": "t", "status": "TASK_STATUS_PAUSED", "eta": "12"},
        "videos": [{"video_url_ttl": 60}],
    }
    result = task_result(data)
    assert not result.finished and not result.known_status and result.state is TaskState.UNKNOWN
    assert result.eta == 12
    assert result.videos[0].ttl_seconds == 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3600", 3600),
        (" 12 ", 12),
        (12.7, 12),
        ("1e3", 1000),
        ("1e999", None),
        ("Infinity", None),
        ("-inf", None),
        ("NaN", None),
        (float("inf"), None),
        (float("nan"), None),
        ("ten", None),
        (True, None),
        (None, None),
    ],
)
def test_loose_int_reads_what_it_can_and_calls_the_rest_unreadable(value, expected):
    assert loose_int(value) == expected


def test_a_task_result_with_an_infinite_number_still_reads():
    """Python's json reads ``Infinity`` and ``1e999`` as floats: an answer carrying one is not a crash."""
    data = json.loads(
        '{"task": {"task_id": "t", "status": "TASK_STATUS_PROCESSING", "eta": 1e999,'
        ' "progress_percent": Infinity}, "videos": [{"video_url_ttl": "1e999"}]}'
    )
    result = task_result(data)
    assert (result.eta, result.progress_percent, result.videos[0].ttl_seconds) == (None, None, None)


def test_failed_result_keeps_reason():
    result = task_result({"task": {"task_id": "t", "status": "TASK_STATUS_FAILED", "reason": "nsfw"}})
    assert result.failed and result.reason == "nsfw" and not result.has_video


def test_succeeded_without_a_video_has_none_to_download():
    result = task_result({"task": {"task_id": "t", "status": "TASK_STATUS_SUCCEED"}, "videos": []})
    assert result.succeeded and not result.has_video and result.video_url is None


@pytest.mark.parametrize("data", [[], "x", {"videos": []}, {"task": "x"}])
def test_malformed_results_raise_a_retryable_error(data):
    with pytest.raises(HailuoMalformedAnswerError):
        task_result(data, "t9")


@pytest.mark.parametrize(
    "result",
    [
        task_result(SUCCEED),
        TaskResult(
            task_id="t", status="TASK_STATUS_QUEUED", state=TaskState.QUEUED, eta=30, progress_percent=0
        ),
        TaskResult(
            task_id="106916112212032",
            status="Success",
            state=TaskState.SUCCEEDED,
            file_id="205258526306433",
            video_width=1366,
            video_height=768,
        ),
        TaskResult(task_id="t", status="Fail", state=TaskState.FAILED, reason="input flagged as sensitive"),
    ],
)
def test_the_xcom_is_plain_json_without_links(result):
    xcom = result.to_xcom()
    assert json.loads(json.dumps(xcom)) == xcom
    assert (xcom["task_id"], xcom["status"], xcom["state"]) == (result.task_id, result.status, result.state)
    assert "video_url" not in json.dumps(xcom) and "https://" not in json.dumps(xcom)


# --------------------------------------------------------------------------------------------------
# Service text in errors
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "echo",
    [
        "Bearer sk-live-0123456789abcdef",
        "sk_0123456789abcdefghij",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "A" * 64,
    ],
)
def test_service_text_never_carries_a_key_and_is_bounded(echo):
    err = HailuoAPIError(401, "FAILED_TO_AUTH", f"invalid key {echo} " + "no " * 500, conn_id="c")
    assert echo not in str(err) and echo[:20] not in str(err)
    assert len(err.message) <= 200 and err.message.startswith("invalid key ***")
    failed = HailuoTaskFailedError("t", "y" * 1000)
    assert len(failed.reason) <= 200
