"""The live test's proof that a frame was honoured can tell the same picture from another one."""

from __future__ import annotations

import io

import pytest

from tests.support.first_frame import SAME_PICTURE, first_frame_difference

av = pytest.importorskip("av")


def picture(kind: str) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 360), "white")
    draw = ImageDraw.Draw(image)
    if kind == "left":
        draw.rectangle((0, 0, 320, 360), fill="navy")
    else:
        draw.ellipse((200, 60, 440, 300), fill="darkred")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def video_opening_on(image: bytes, path) -> str:
    """A short H.264 clip whose frames are ``image``, re-encoded and scaled like a service's output."""
    from PIL import Image

    still = Image.open(io.BytesIO(image)).convert("RGB").resize((1366, 768))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 1366, 768, "yuv420p"
        for _ in range(6):
            for packet in stream.encode(av.VideoFrame.from_image(still)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def test_the_same_picture_is_recognised_and_another_is_not(tmp_path):
    left, circle = picture("left"), picture("circle")
    clip = video_opening_on(left, tmp_path / "clip.mp4")
    assert first_frame_difference(clip, left) < SAME_PICTURE
    assert first_frame_difference(clip, circle) > SAME_PICTURE
