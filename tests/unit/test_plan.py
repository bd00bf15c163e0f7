"""The plan's pieces without a DAG run: one batch's requests read, checked, normalized and summed."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath
from PIL import Image

from airflow_provider_hailuo.api import HailuoValidationError
from airflow_provider_hailuo.dialects import dialect_for
from airflow_provider_hailuo.operators.plan import Plan, _batch, _count
from airflow_provider_hailuo.operators.request import REQUEST_KEYS, RequestFields, check_request
from airflow_provider_hailuo.prices import prices_for


def offline_hook(vendor: str = "ppinfra"):
    """What check_request asks of a hook: the connection's dialect and its rules (sans-IO)."""
    dialect = dialect_for(vendor, "")
    return SimpleNamespace(dialect=dialect, validate=dialect.validate)


def checked(request: dict, vendor: str = "ppinfra", extra=None):
    return check_request(
        RequestFields.from_mapping(request), offline_hook(vendor), prices_for(vendor, extra, conn_id="c")
    )


@pytest.fixture
def frame(tmp_path):
    path = tmp_path / "first.png"
    out = io.BytesIO()
    Image.new("RGB", (640, 360), (10, 20, 30)).save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return path


@pytest.mark.parametrize(
    ("request_", "field", "rule"),
    [
        ("a prompt", "request", "must be a mapping"),
        ({"duration": 6}, "prompt", "is required"),
        ({"prompt": "p", "seed": 4}, "seed", "is not a request field"),
    ],
)
def test_a_request_of_the_batch_must_be_a_mapping_of_the_submits_fields(request_, field, rule):
    with pytest.raises(HailuoValidationError) as refused:
        RequestFields.from_mapping(request_)
    assert refused.value.field == field and rule in refused.value.rule


def test_normalized_requests_name_every_field_the_submit_takes(frame):
    normalized = checked({"prompt": "p", "duration": "10", "enable_prompt_expansion": "false"}).normalized()
    assert list(normalized) == list(REQUEST_KEYS)
    assert (normalized["duration"], normalized["enable_prompt_expansion"]) == (
        10,
        False,
    )  # rendered text read


def test_normalized_frames_stay_where_they_live(frame):
    """The submit signs its own fresh link when it runs; a signed link or an inline image stays out."""
    as_text = checked({"prompt": "p", "image_url": frame.as_uri()})
    assert as_text.request.image_url.startswith("data:image/png;base64,")  # what the submit would send
    assert as_text.normalized()["image_url"] == frame.as_uri()
    as_path = checked({"prompt": "p", "image_url": ObjectStoragePath(frame.as_uri())})
    assert as_path.normalized()["image_url"] == frame.as_uri()
    signed = "https://cdn.example.com/first.png?X-Amz-Signature=abc"
    assert checked({"prompt": "p", "image_url": signed}).normalized()["image_url"] == signed  # as given


def test_the_summary_counts_each_model_and_leaves_a_partial_total_unknown():
    batch = [
        (0, checked({"prompt": "a"})),
        (1, checked({"prompt": "b", "resolution": "1080P"})),
        (2, checked({"prompt": "c", "model": "hailuo-2.3"})),
        (3, checked({"prompt": "d", "model": "minimax-hailuo-03"})),
    ]
    prices = prices_for("ppinfra", None)
    summary = Plan(batch, prices).summary()
    assert summary == {
        "videos": 4,
        "total": None,  # one price is unknown: a partial sum would be a guess
        "by_model": {
            "hailuo-02": {"videos": 2, "amount": 4.95, "currency": "CNY"},
            "hailuo-2.3": {"videos": 1, "amount": 2.0, "currency": "CNY"},
            "minimax-hailuo-03": {"videos": 1, "amount": None, "currency": None},
        },
        "unpriced": [3],
    }
    assert Plan(batch[:3], prices).summary()["total"] == {"amount": 6.95, "currency": "CNY"}
    table = Plan(batch, prices).table()
    assert "hailuo-02 6 s 1080P" in table and "3.15 CNY" in table and "(1 unpriced)" in table


@pytest.mark.parametrize(("given", "count"), [(None, None), ("None", None), ("", None), (3, 3), ("12", 12)])
def test_max_videos_as_given_or_rendered(given, count):
    assert _count("max_videos", given) == count


@pytest.mark.parametrize("bad", [-1, 2.5, "two", True, "²"])
def test_an_unreadable_max_videos_names_the_field(bad):
    with pytest.raises(HailuoValidationError, match="`max_videos` must be a whole number"):
        _count("max_videos", bad)


def test_requests_as_a_list_or_its_json_text():
    assert _batch('[{"prompt": "p"}]') == [{"prompt": "p"}]
    assert _batch(({"prompt": "p"},)) == [{"prompt": "p"}]
    for bad in ({"prompt": "p"}, "not json", 3):
        with pytest.raises(HailuoValidationError, match="`requests` must be a list of requests"):
            _batch(bad)
