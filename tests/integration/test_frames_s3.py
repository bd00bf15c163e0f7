"""Frames in an S3 bucket (moto on loopback): checked through the connection, handed over as a signed link."""

from __future__ import annotations

import io
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
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


def image_bytes(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 140, 220)).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def put(s3_server, s3_bucket):
    def put_object(key: str, body: bytes) -> str:
        s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=body)
        return f"s3://{s3_bucket}/{key}"

    return put_object


def seconds_left(url: str) -> float:
    """How long a pre-signed S3 link stays valid (SigV4 ``X-Amz-Expires``, SigV2 ``Expires`` epoch)."""
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()


def test_an_object_becomes_a_signed_link_anyone_can_download_within_the_hour(put, s3_server, s3_bucket):
    body = image_bytes((1280, 720), "JPEG")
    uri = put("frames/first.jpg", body)
    frame = resolve_frame("image_url", uri, conn_id=s3_server.conn_id, **MINIMAX)

    assert (frame.kind, frame.format, frame.width, frame.height, frame.bytes) == (
        "object",
        "jpeg",
        1280,
        720,
        len(body),
    )
    assert frame.source == uri
    assert frame.dataset == (f"s3://{s3_bucket}", "frames/first.jpg")
    assert frame.url.startswith(s3_server.endpoint_url)
    assert 0 < seconds_left(frame.url) <= 3600

    response = requests.get(frame.url, timeout=10)  # no credentials: the signature is the permission
    assert response.status_code == 200
    assert response.content == body
    # the bucket is private: without the link's query the same object is refused
    assert requests.get(frame.url.split("?")[0], timeout=10).status_code == 403


def test_the_link_expiry_can_be_shorter(put, s3_server):
    uri = put("frames/first.png", image_bytes((640, 360)))
    frame = resolve_frame("image_url", uri, conn_id=s3_server.conn_id, sign_expiry_s=60, **MINIMAX)
    assert 0 < seconds_left(frame.url) <= 60


def test_an_object_storage_path_takes_its_own_or_the_given_connection(put, s3_server):
    uri = put("frames/last.webp", image_bytes((640, 360), "WEBP"))
    own = resolve_frame("end_image_url", ObjectStoragePath(uri, conn_id=s3_server.conn_id), **MINIMAX)
    given = resolve_frame("end_image_url", ObjectStoragePath(uri), conn_id=s3_server.conn_id, **MINIMAX)
    for frame in (own, given):
        assert (frame.format, frame.source) == ("webp", uri)
        assert requests.get(frame.url, timeout=10).status_code == 200


def test_a_missing_object_is_named_with_the_field(s3_server, s3_bucket):
    uri = f"s3://{s3_bucket}/frames/missing.png"
    with pytest.raises(HailuoValidationError) as caught:
        resolve_frame("end_image_url", uri, conn_id=s3_server.conn_id, **MINIMAX)
    assert caught.value.field == "end_image_url"
    assert f"must name an existing object, but {uri} does not exist" in str(caught.value)
    assert "minimax" in str(caught.value)


def test_an_object_of_20_mb_or_more_is_refused(put, s3_server, monkeypatch):
    body = image_bytes((640, 360))
    uri = put("frames/big.png", body)
    monkeypatch.setattr(frames, "MAX_FRAME_BYTES", len(body))
    with pytest.raises(HailuoValidationError, match=r"`image_url` must be under .* MB, but s3://"):
        resolve_frame("image_url", uri, conn_id=s3_server.conn_id, **MINIMAX)


def test_an_object_that_is_not_an_image_is_refused(put, s3_server):
    uri = put("frames/notes.png", b"these are notes, not pixels")
    with pytest.raises(HailuoValidationError, match="not a readable image"):
        resolve_frame("image_url", uri, conn_id=s3_server.conn_id, **MINIMAX)


def test_minimax_size_rules_apply_to_objects(put, s3_server):
    uri = put("frames/small.png", image_bytes((200, 200)))
    with pytest.raises(HailuoValidationError, match="short side over 300 px"):
        resolve_frame("image_url", uri, conn_id=s3_server.conn_id, **MINIMAX)
    # the same object is fine for a vendor without size rules
    frame = resolve_frame("image_url", uri, conn_id=s3_server.conn_id, vendor="novita", accepts_data_url=True)
    assert frame.width == 200


def test_only_the_header_is_read(put, s3_server, monkeypatch):
    """A 640x360 PNG followed by 4 MB of padding: identifying it fetches one small range, not the object."""
    import s3fs.core

    uri = put("frames/padded.png", image_bytes((640, 360)) + b"\0" * (4 * 2**20))
    fetched: list[int] = []
    real_fetch_range = s3fs.core.S3File._fetch_range

    def counting_fetch_range(self, start, end):
        data = real_fetch_range(self, start, end)
        fetched.append(len(data))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting_fetch_range)
    frame = resolve_frame("image_url", uri, conn_id=s3_server.conn_id, **MINIMAX)
    assert (frame.width, frame.height) == (640, 360)
    assert 0 < sum(fetched) <= frames.HEADER_BLOCK_BYTES * 2
