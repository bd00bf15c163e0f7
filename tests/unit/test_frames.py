"""Frames from local files, data: URLs and http URLs: what is sent, and every rule refused before spending."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath
from PIL import Image

from airflow_provider_hailuo import frames
from airflow_provider_hailuo.api import HailuoValidationError
from airflow_provider_hailuo.dialects.minimax import MiniMaxDialect
from airflow_provider_hailuo.frames import resolve_frame

MINIMAX = {
    "vendor": "minimax",
    "accepts_data_url": True,
    "min_short_side": MiniMaxDialect.frame_min_short_side,
    "aspect_range": MiniMaxDialect.frame_aspect_range,
}
#: A vendor that would fetch frames by URL only (every vendor spoken today takes data: URLs).
URL_ONLY = {"vendor": "urlonly", "accepts_data_url": False}


def image_bytes(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, format=fmt)
    return out.getvalue()


def write_image(folder: Path, name: str, size: tuple[int, int], fmt: str = "PNG") -> Path:
    path = folder / name
    path.write_bytes(image_bytes(size, fmt))
    return path


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# --------------------------------------------------------------------------------------------------
# local files
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "name", "expected"),
    [("PNG", "a.png", "png"), ("JPEG", "a.jpg", "jpeg"), ("WEBP", "a.webp", "webp")],
)
def test_a_local_file_travels_inline_as_a_data_url(tmp_path, fmt, name, expected):
    path = write_image(tmp_path, name, (640, 360), fmt)
    frame = resolve_frame("image_url", path.as_uri(), **MINIMAX)
    assert frame.url.startswith(f"data:image/{expected};base64,")
    assert base64.b64decode(frame.url.split(",", 1)[1]) == path.read_bytes()
    assert (frame.kind, frame.format, frame.width, frame.height) == ("file", expected, 640, 360)
    assert frame.bytes == path.stat().st_size
    assert frame.source == path.as_uri()
    assert frame.dataset == ("file", str(path))


def test_a_local_object_storage_path_is_a_local_file(tmp_path):
    path = write_image(tmp_path, "a.png", (640, 360))
    frame = resolve_frame("end_image_url", ObjectStoragePath(path.as_uri()), **MINIMAX)
    assert frame.kind == "file"
    assert frame.url.startswith("data:image/png;base64,")


def test_a_local_file_is_refused_where_the_vendor_takes_urls_only(tmp_path):
    path = write_image(tmp_path, "a.png", (640, 360))
    with pytest.raises(HailuoValidationError) as caught:
        resolve_frame("image_url", path.as_uri(), **URL_ONLY)
    message = str(caught.value)
    assert "`image_url`" in message
    assert "urlonly" in message
    assert "object store" in message
    assert caught.value.field == "image_url"


def test_a_text_file_named_png_is_not_an_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("I am not a picture")
    with pytest.raises(
        HailuoValidationError, match=r"must be a JPEG, PNG or WebP image.*not a readable image"
    ):
        resolve_frame("image_url", path.as_uri(), **MINIMAX)


def test_a_gif_is_named_as_such(tmp_path):
    path = write_image(tmp_path, "a.png", (640, 360), "GIF")
    with pytest.raises(HailuoValidationError, match=r"is GIF \(vendor: minimax\)"):
        resolve_frame("image_url", path.as_uri(), **MINIMAX)


@pytest.mark.parametrize(
    ("size", "ok"),
    [
        ((200, 200), False),
        ((300, 300), False),  # "over 300 px": 300 itself is refused
        ((301, 301), True),
        ((1000, 200), False),  # 5:1
        ((1000, 400), True),  # 5:2 exactly
        ((400, 1000), True),  # 2:5 exactly
        ((399, 1000), False),
        ((1001, 400), False),
    ],
)
def test_minimax_size_rules_at_their_boundaries(tmp_path, size, ok):
    path = write_image(tmp_path, "a.png", size)
    if ok:
        assert resolve_frame("image_url", path.as_uri(), **MINIMAX).width == size[0]
        return
    with pytest.raises(HailuoValidationError, match=r"`image_url` must have .*\(vendor: minimax\)"):
        resolve_frame("image_url", path.as_uri(), **MINIMAX)


def test_the_size_rules_name_the_rule(tmp_path):
    small = write_image(tmp_path, "small.png", (200, 200))
    with pytest.raises(HailuoValidationError, match=r"short side over 300 px, but .* is 200x200"):
        resolve_frame("image_url", small.as_uri(), **MINIMAX)
    wide = write_image(tmp_path, "wide.png", (2000, 350))
    with pytest.raises(
        HailuoValidationError, match=r"aspect ratio .* between 2:5 and 5:2, but .* is 2000x350"
    ):
        resolve_frame("image_url", wide.as_uri(), **MINIMAX)
    banner = write_image(tmp_path, "banner.png", (1000, 200))
    with pytest.raises(HailuoValidationError, match="aspect ratio"):
        resolve_frame(
            "image_url", banner.as_uri(), vendor="minimax", accepts_data_url=True, aspect_range=(0.4, 2.5)
        )


def test_without_rules_any_size_passes(tmp_path):
    path = write_image(tmp_path, "tiny.png", (16, 160))
    frame = resolve_frame("image_url", path.as_uri(), vendor="novita", accepts_data_url=True)
    assert (frame.width, frame.height) == (16, 160)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(
        HailuoValidationError, match=r"`image_url` must name an existing file, but file://.*missing\.png"
    ):
        resolve_frame("image_url", (tmp_path / "missing.png").as_uri(), **MINIMAX)


def test_a_folder_is_not_a_frame(tmp_path):
    with pytest.raises(HailuoValidationError, match="must name a file"):
        resolve_frame("image_url", tmp_path.as_uri(), **MINIMAX)


def test_a_file_of_20_mb_or_more_is_refused(tmp_path, monkeypatch):
    path = write_image(tmp_path, "a.png", (640, 360))
    monkeypatch.setattr(frames, "MAX_FRAME_BYTES", path.stat().st_size)
    with pytest.raises(HailuoValidationError, match="must be under"):
        resolve_frame("image_url", path.as_uri(), **MINIMAX)


# --------------------------------------------------------------------------------------------------
# data: URLs
# --------------------------------------------------------------------------------------------------
def test_a_data_url_is_checked_by_its_bytes_and_sent_unchanged():
    url = data_url(image_bytes((640, 360), "JPEG"), "image/jpeg")
    frame = resolve_frame("image_url", url, **MINIMAX)
    assert frame.url == url
    assert (frame.kind, frame.format, frame.width, frame.height, frame.source) == (
        "data",
        "jpeg",
        640,
        360,
        "data:image/jpeg",
    )
    assert frame.dataset is None
    assert "url" not in frame.as_dict()


def test_image_jpg_is_an_alias_of_jpeg():
    assert (
        resolve_frame("image_url", data_url(image_bytes((640, 360), "JPEG"), "image/jpg"), **MINIMAX).format
        == "jpeg"
    )


def test_a_data_url_is_refused_where_the_vendor_takes_urls_only():
    with pytest.raises(HailuoValidationError, match=r"`image_url` cannot be a data: URL.*urlonly"):
        resolve_frame("image_url", data_url(image_bytes((640, 360))), **URL_ONLY)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            data_url(image_bytes((640, 360), "JPEG"), "image/png"),
            "declares data:image/png but its bytes are JPEG",
        ),
        (data_url(b"plain words", "text/plain"), "must be a data:image/... URL"),
        ("data:image/png;base64,@@not base64@@", "valid base64"),
        ("data:image/png," + "x" * 20, "base64"),
        (data_url(b"not an image at all"), "not a readable image"),
        (data_url(image_bytes((200, 200))), "short side over 300 px"),
    ],
)
def test_bad_data_urls_are_refused_with_the_rule(url, message):
    with pytest.raises(HailuoValidationError, match="`end_image_url`") as caught:
        resolve_frame("end_image_url", url, **MINIMAX)
    assert message in str(caught.value)
    assert "minimax" in str(caught.value)


def test_a_data_url_of_20_mb_or_more_is_refused(monkeypatch):
    data = image_bytes((640, 360))
    monkeypatch.setattr(frames, "MAX_FRAME_BYTES", len(data))
    with pytest.raises(HailuoValidationError, match="must be under"):
        resolve_frame("image_url", data_url(data), **MINIMAX)


# --------------------------------------------------------------------------------------------------
# http(s) URLs and unknown forms
# --------------------------------------------------------------------------------------------------
def test_an_http_url_is_sent_unchanged_and_unread():
    url = "https://cdn.example.com/frames/first.png?X-Amz-Signature=secret"
    frame = resolve_frame("image_url", url, **URL_ONLY)
    assert frame.url == url
    assert frame.kind == "http"
    assert frame.source == "https://cdn.example.com/frames/first.png"  # no signature in the manifest
    assert frame.dataset == ("https://cdn.example.com", "/frames/first.png")
    assert frame.format is None


@pytest.mark.parametrize(
    "value", ["", "   ", "/tmp/frame.png", "frame.png", "https:///nohost.png", "file://host/x.png", 42]
)
def test_unknown_forms_are_refused(value):
    with pytest.raises(HailuoValidationError, match=r"`image_url` must .*\(vendor: urlonly\)"):
        resolve_frame("image_url", value, **URL_ONLY)


def test_an_unknown_store_is_refused():
    with pytest.raises(HailuoValidationError, match="cannot open"):
        resolve_frame("image_url", "nosuchproto://bucket/x.png", **MINIMAX)


@pytest.mark.parametrize("expiry", [0, 3601, 1.5, True])
def test_signed_links_may_not_outlive_the_hour(tmp_path, expiry):
    with pytest.raises(HailuoValidationError, match="sign_expiry_s"):
        resolve_frame("image_url", "s3://bucket/x.png", sign_expiry_s=expiry, **MINIMAX)
