"""
One real generation through the example DAG: 6 s, 768P, text-to-video, landed on the local disk.

Costs one paid video on the vendor the connection names. Skipped unless ``HAILUO_LIVE_CONN`` is set
(see conftest.py); never run in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.airflow_runs import example_dag, run_dag

pytestmark = [pytest.mark.live, pytest.mark.timeout(1800)]

PROMPT = "A paper boat drifts down a rain-soaked city street at dusk, neon reflections, slow dolly shot"


def test_one_text_to_video_lands_a_playable_6s_768p_mp4(airflow_db, live_conn, tmp_path):
    from airflow_provider_hailuo.media import probe

    destination = tmp_path / "videos"
    outcome = run_dag(
        example_dag("hailuo_daily_content"),
        {
            "prompts": [PROMPT],
            "duration": 6,
            "resolution": "768P",
            "destination": destination.as_uri() + "/",
        },
    )
    assert outcome.state == "success", {t: outcome.states(t) for t, _ in outcome.tis}
    assert outcome.tries("generate.submit") == [1]  # one paid submit
    (landed,) = outcome.values("generate.download")
    video = Path(landed["uri"].removeprefix("file://"))
    assert video.is_file() and video.stat().st_size == landed["bytes"]
    assert video.with_suffix(".jpg").is_file() and video.with_suffix(".json").is_file()
    assert video.read_bytes()[4:8] == b"ftyp"
    facts = probe(video)
    assert 5.5 <= facts.duration_s <= 6.6, facts
    assert facts.short_side == 768, facts  # 768P text-to-video: 1366x768 (16:9)
    assert facts.frames_decoded >= 2  # the first and the last frame decode


def test_image_to_video_opens_on_the_frame_it_was_given(airflow_db, live_conn, tmp_path):
    """
    The frame went under the field name the vendor reads: the landed video's first frame is the
    input picture (a frame under an ignored name would have bought a text-to-video instead).
    """
    import base64
    import io

    from PIL import Image, ImageDraw

    from tests.support.first_frame import SAME_PICTURE, first_frame_difference

    image = Image.new("RGB", (1280, 720), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 640, 720), fill="navy")  # half the frame: any honoured frame keeps it
    draw.ellipse((800, 200, 1100, 500), fill="darkred")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    png = buffer.getvalue()
    destination = tmp_path / "videos"
    outcome = run_dag(
        example_dag("hailuo_image_to_video"),
        {
            "image_url": "data:image/png;base64," + base64.b64encode(png).decode(),
            "prompt": "The red ball rolls slowly to the right; the camera stays still",
            "destination": destination.as_uri() + "/",
        },
    )
    assert outcome.state == "success", {t: outcome.states(t) for t, _ in outcome.tis}
    (video,) = destination.rglob("*.mp4")
    difference = first_frame_difference(video, png)
    assert difference < SAME_PICTURE, f"first frame differs from the input by {difference:.2f}"
