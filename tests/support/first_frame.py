"""
Whether a video opens on a given image: the proof that a frame sent under a vendor's field name was
honoured (a frame under a name the service ignores buys a text-to-video, silently).

Both pictures are decoded with PyAV/Pillow and shrunk to a thumbnail in grey levels, so the
service's re-encoding, scaling and a slight colour shift do not count; a different picture does.
"""

from __future__ import annotations

import io
from pathlib import Path

#: Thumbnail the two pictures are compared at.
THUMBNAIL = (32, 18)
#: Mean absolute difference (0..1) under which the video is taken to open on the image.
SAME_PICTURE = 0.12


def first_frame_difference(video: Path | str, image: bytes) -> float:
    """Mean absolute grey-level difference (0..1) between the video's first frame and ``image``."""
    import av
    from PIL import Image, ImageChops, ImageStat

    with av.open(str(video)) as container:
        frame = next(container.decode(video=0))
        first = frame.to_image()
    size = THUMBNAIL
    a = first.convert("L").resize(size, Image.Resampling.BILINEAR)
    b = Image.open(io.BytesIO(image)).convert("L").resize(size, Image.Resampling.BILINEAR)
    return float(ImageStat.Stat(ImageChops.difference(a, b)).mean[0]) / 255.0
