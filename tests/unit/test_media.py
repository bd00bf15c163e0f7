"""Video checks on real files made with PyAV: facts, the ±0.5 s and size rules, broken files, posters."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

av = pytest.importorskip("av")
from PIL import Image, ImageDraw  # noqa: E402

from airflow_provider_hailuo import media  # noqa: E402
from airflow_provider_hailuo.api import HailuoDownloadError, HailuoValidationError  # noqa: E402
from airflow_provider_hailuo.media import (  # noqa: E402
    CheckReport,
    Expected,
    HailuoVideoCheckError,
    Inspection,
    VideoFacts,
    compare,
    evaluate,
    inspect,
    poster_jpeg,
    probe,
    verify,
)


def make_video(
    path: Path,
    *,
    seconds: float,
    width: int,
    height: int,
    fps: int = 24,
    gop: int = 24,
    faststart=False,
    preset: str = "ultrafast",
) -> Path:
    """
    An H.264 MP4 whose frames change colour, so a decoder has real work to do. ``ultrafast`` makes
    no B-frames; ``veryfast`` does, as a service's encoder does, and a yellow box moves across.
    """
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": preset, "crf": "45", "g": str(gop)}
        for i in range(round(seconds * fps)):
            image = Image.new("RGB", (width, height), ((i * 7) % 256, 80, 160))
            if preset != "ultrafast":
                left = i * 4 % width
                ImageDraw.Draw(image).rectangle([left, 20, left + 40, 60], fill=(255, 255, 0))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        "6s_768": make_video(folder / "6s_768.mp4", seconds=6, width=1366, height=768, fps=12, gop=12),
        "2s_288": make_video(folder / "2s_288.mp4", seconds=2, width=512, height=288),
        # moov first and one keyframe only: a cut leaves a header announcing frames that are gone
        "6s_faststart": make_video(
            folder / "6s_faststart.mp4", seconds=6, width=320, height=180, gop=1000, faststart=True
        ),
        # B-frames, a keyframe every 48 frames: the shape of the service's files, small
        "4s_bframes": make_video(
            folder / "4s_bframes.mp4", seconds=4, width=320, height=180, gop=48, preset="veryfast"
        ),
        # B-frames at 2 fps (like the emulator's samples): one frame missed at the end is 0.5 s
        "6s_2fps_bframes": make_video(
            folder / "6s_2fps_bframes.mp4", seconds=6, width=320, height=180, fps=2, gop=48, preset="veryfast"
        ),
    }


def facts(duration_s: float = 6.0, width: int = 1366, height: int = 768) -> VideoFacts:
    return VideoFacts(
        duration_s=duration_s, width=width, height=height, codec="h264", fps=24.0, frames_decoded=2
    )


# --------------------------------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------------------------------
def test_media_is_available_here():
    assert media.media_available() is True


def test_probe_reads_duration_size_codec_and_rate(videos):
    found = probe(videos["6s_768"])
    assert (found.width, found.height, found.codec) == (1366, 768, "h264")
    assert found.duration_s == pytest.approx(6.0, abs=0.05)
    assert found.fps == pytest.approx(12.0)

    short = probe(str(videos["2s_288"]))
    assert (short.width, short.height) == (512, 288)
    assert short.duration_s == pytest.approx(2.0, abs=0.05)


def test_probe_decodes_the_first_and_the_last_second_only(videos):
    """With a keyframe every second, a 6 s video is checked by decoding about two seconds of it."""
    found = probe(videos["6s_768"])
    assert found.frames_decoded < 6 * 12 / 2


def test_probe_reads_a_file_object(videos):
    with open(videos["2s_288"], "rb") as handle:
        handle.read(100)  # not at the start: probe rewinds
        assert probe(handle).duration_s == pytest.approx(2.0, abs=0.05)
    assert probe(io.BytesIO(videos["2s_288"].read_bytes())).width == 512


def test_a_file_that_starts_with_ftyp_but_is_garbage_does_not_open(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 64)
    with pytest.raises(HailuoVideoCheckError, match="does not open as a video container") as caught:
        probe(fake)
    assert isinstance(caught.value, HailuoDownloadError)


def test_an_empty_file_does_not_open():
    with pytest.raises(HailuoVideoCheckError, match="does not open"):
        probe(io.BytesIO(b""))


def test_an_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "mono"
        for i in range(20):
            frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            frame.planes[0].update(b"\0" * 4096)
            frame.sample_rate, frame.pts = 44100, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(HailuoVideoCheckError, match="has no video stream"):
        probe(path)


def test_a_video_cut_in_half_fails(videos, tmp_path):
    """moov at the end (the muxer's default): half a file has no index and does not open."""
    data = videos["6s_768"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(HailuoVideoCheckError, match="does not open"):
        probe(cut)


def test_a_faststart_video_cut_in_half_fails_on_its_last_frame(videos):
    """moov first: the header still announces 6 s, the first frame decodes, the end does not."""
    data = videos["6s_faststart"].read_bytes()
    with pytest.raises(HailuoVideoCheckError, match="last frame"):
        probe(io.BytesIO(data[: len(data) // 2]))


def test_frames_that_stop_early_fail_even_when_they_end_cleanly(videos):
    """Cut exactly after a packet at ~3 s: every packet read decodes, yet 3 s of 6 are missing."""
    data = videos["6s_faststart"].read_bytes()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        ends = [
            packet.pos + packet.size
            for packet in container.demux(stream)
            if packet.pos is not None and packet.pts is not None and packet.pts * stream.time_base < 3
        ]
    with pytest.raises(HailuoVideoCheckError, match="frames stop at"):
        probe(io.BytesIO(data[: max(ends)]))


# --------------------------------------------------------------------------------------------------
# compare / evaluate / verify
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("duration_s", "ok"),
    [(5.49, False), (5.5, True), (6.0, True), (6.5, True), (6.51, False), (2.0, False)],
)
def test_duration_is_within_half_a_second(duration_s, ok):
    report = compare(facts(duration_s=duration_s), Expected(duration_s=6))
    assert report.verdict == ("ok" if ok else "mismatch")
    assert [check.name for check in report.mismatches] == ([] if ok else ["duration"])


@pytest.mark.parametrize(
    ("size", "resolution", "ok"),
    [
        ((1366, 768), "768P", True),
        ((768, 1366), "768P", True),  # portrait: the short side counts
        ((1360, 760), "768P", True),  # 8 px of encoder alignment
        ((1360, 759), "768P", False),
        ((1280, 720), "768P", False),
        ((1920, 1080), "1080P", True),
        ((1366, 768), "1080P", False),
        ((910, 512), "512P", True),
        ((512, 288), "512P", False),
    ],
)
def test_resolution_class_is_checked_on_the_short_side(size, resolution, ok):
    report = compare(facts(width=size[0], height=size[1]), Expected(resolution=resolution))
    assert report.verdict == ("ok" if ok else "mismatch")


def test_a_size_the_service_reported_is_compared_exactly():
    expected = Expected(resolution="768P", width=1366, height=768)
    assert compare(facts(width=1366, height=768), expected).verdict == "ok"
    report = compare(facts(width=1360, height=768), expected)
    assert report.verdict == "mismatch"
    assert report.mismatches[0].expected == "1366x768"
    assert report.mismatches[0].actual == "1360x768"


def test_nothing_expected_is_unchecked():
    report = compare(facts(), Expected())
    assert report.verdict == "unchecked"
    assert report.as_dict()["checks"] == {}


def test_expected_from_a_rendered_request():
    expected = Expected.from_request({"duration": "10", "resolution": "768P"}, width="1366", height=768)
    assert expected == Expected(duration_s=10.0, resolution="768P", width=1366, height=768)
    assert Expected.from_request(None) == Expected()


def test_report_as_dict_is_json_with_the_manifest_keys(videos):
    report = compare(probe(videos["2s_288"]), Expected(duration_s=6, resolution="768P"))
    data = json.loads(json.dumps(report.as_dict()))
    assert {"duration_s", "width", "height", "codec", "fps", "verdict", "mismatches"} <= set(data)
    assert data["verdict"] == "mismatch"
    assert data["checks"] == {"duration": "mismatch", "resolution": "mismatch"}
    assert {m["check"] for m in data["mismatches"]} == {"duration", "resolution"}
    assert (data["width"], data["height"], data["codec"]) == (512, 288, "h264")


def test_warn_logs_each_mismatch_and_returns_the_report(caplog):
    with caplog.at_level(logging.WARNING):
        report = evaluate("warn", facts(duration_s=2.0), Expected(duration_s=6, resolution="768P"))
    assert report.verdict == "mismatch"
    assert "duration 2.00 s, requested 6 s" in caplog.text


def test_strict_raises_on_a_mismatch_with_the_report():
    with pytest.raises(HailuoVideoCheckError, match="not what was requested") as caught:
        evaluate("strict", facts(duration_s=2.0), Expected(duration_s=6))
    assert isinstance(caught.value.report, CheckReport)
    assert caught.value.report.verdict == "mismatch"
    assert evaluate("strict", facts(), Expected(duration_s=6)).verdict == "ok"


def test_off_checks_nothing():
    assert evaluate("off", facts(duration_s=2.0), Expected(duration_s=6)).verdict == "unchecked"


def test_an_unknown_mode_is_a_validation_error():
    with pytest.raises(HailuoValidationError, match="video_checks"):
        media.check_mode("loud")


def test_verify_probes_and_compares(videos):
    assert verify(videos["6s_768"], "strict", Expected(duration_s=6, resolution="768P")).verdict == "ok"
    assert verify(videos["6s_768"], "off", Expected(duration_s=10)) is None
    with pytest.raises(HailuoVideoCheckError, match="does not open"):
        verify(io.BytesIO(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 500), "warn", Expected())


def test_verify_without_pyav_warns_in_warn_and_fails_in_strict(monkeypatch, caplog):
    monkeypatch.setattr(media, "media_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert verify(io.BytesIO(b"anything"), "warn", Expected(duration_s=6)) is None
    assert "PyAV is not installed" in caplog.text
    with pytest.raises(HailuoVideoCheckError, match=r"\[media\]"):
        verify(io.BytesIO(b"anything"), "strict", Expected(duration_s=6))


# --------------------------------------------------------------------------------------------------
# poster
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["6s_768", "2s_288"])
def test_poster_is_a_jpeg_of_the_videos_size(videos, name):
    found = probe(videos[name])
    jpeg = poster_jpeg(videos[name])
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        assert image.size == (found.width, found.height)


def test_poster_is_taken_at_the_requested_time(videos):
    """Frame i is coloured (7*i % 256, 80, 160): the red channel tells which frame was taken."""
    with Image.open(io.BytesIO(poster_jpeg(videos["2s_288"], at_s=0.5))) as image:
        red = image.convert("RGB").getpixel((10, 10))[0]
    assert abs(red - 7 * 12) < 12  # frame 12 at 24 fps


def test_poster_of_a_short_video_past_its_end_is_its_last_frame(videos):
    with open(videos["2s_288"], "rb") as handle:
        jpeg = poster_jpeg(handle, at_s=30)
    assert jpeg[:3] == b"\xff\xd8\xff"


def test_poster_of_garbage_fails(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 500)
    with pytest.raises(HailuoVideoCheckError):
        poster_jpeg(fake)


def test_the_provider_imports_and_falls_back_without_pyav():
    """``av`` blocked: importing media costs nothing, and ``"warn"`` falls back with one warning."""
    script = """
import io, logging, sys
sys.modules["av"] = None  # what an environment without the [media] extra looks like to import
from airflow_provider_hailuo import media
assert media.media_available() is False
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
assert media.verify(io.BytesIO(b"x"), "warn", media.Expected(duration_s=6)) is None
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("PyAV is not installed") == 1

    imported = subprocess.run(
        [sys.executable, "-c", "import sys, airflow_provider_hailuo.media; print('av' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------------
# inspect: the check and the poster from one open and one pass
# --------------------------------------------------------------------------------------------------
def frame_types(path: Path) -> set[str]:
    with av.open(str(path)) as container:
        return {av.video.frame.PictureType(frame.pict_type).name for frame in container.decode(video=0)}


def full_decode_poster(path: Path, at_s: float = media.POSTER_AT_S) -> bytes:
    """The poster as a decode of every frame makes it: the first frame shown at or after ``at_s``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if float(frame.pts * stream.time_base) >= at_s:
                break
        out = io.BytesIO()
        frame.to_image().convert("RGB").save(out, format="JPEG", quality=85)
        return out.getvalue()


def count_opens(monkeypatch) -> list[object]:
    opened: list[object] = []
    original = media._open

    def counting(source):
        opened.append(source)
        return original(source)

    monkeypatch.setattr(media, "_open", counting)
    return opened


def test_the_check_and_the_poster_come_from_one_open(videos, monkeypatch):
    opened = count_opens(monkeypatch)
    found = inspect(videos["4s_bframes"], "warn", Expected(duration_s=4), poster=True)
    assert len(opened) == 1
    assert found.report is not None and found.report.verdict == "ok"
    assert found.poster is not None and found.poster[:3] == b"\xff\xd8\xff"


def test_the_poster_is_the_frame_a_full_decode_shows(videos):
    """Frames nothing refers to are skipped on the way; the poster frame and its references are not."""
    assert "B" in frame_types(videos["4s_bframes"])
    found = inspect(videos["4s_bframes"], "warn", Expected(), poster=True)
    assert found.poster == full_decode_poster(videos["4s_bframes"])
    # Every frame of the first GOP as the poster: I, P, B that others lean on, and B that none do.
    for index in range(48):
        at_s = index / 24
        assert poster_jpeg(videos["4s_bframes"], at_s=at_s) == full_decode_poster(videos["4s_bframes"], at_s)


def test_unreferenced_frames_are_not_decoded(videos):
    """The last GOP is 48 frames: decoding all of it (and the first frame) would be 49."""
    with av.open(str(videos["4s_bframes"])) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        referenced = sum(1 for frame in container.decode(stream) if frame.pts * stream.time_base >= 2)
    assert referenced < 48
    assert probe(videos["4s_bframes"]).frames_decoded <= referenced + 2


def test_the_end_s_pass_decodes_every_frame_that_may_be_shown_last():
    """Decode order I0 P4 B2 B1 B3 P8 B6 B5 B7, then a B9 nothing refers to: B9 is shown last."""
    wanted = media._may_be_shown_last()
    decisions = [wanted(pts) for pts in (0, 4, 2, 1, 3, 8, 6, 5, 7, 9, None)]
    assert decisions == [True, True, False, False, False, True, False, False, False, True, True]


def test_skipping_is_decided_per_packet_before_it_is_decoded():
    class Packet:
        def __init__(self, pts):
            self.pts = pts

        def decode(self):
            return [(self.pts, context.skip_frame)]

    class Container:
        def demux(self, stream):
            return [Packet(pts) for pts in (0, 4, 2)]

    class Context:
        skip_frame = "DEFAULT"

    context = Context()
    stream = type("Stream", (), {"codec_context": context})()
    decoded = list(media._decode(Container(), stream, lambda pts: pts != 2))
    assert decoded == [(0, "DEFAULT"), (4, "DEFAULT"), (2, "NONREF")]


def test_the_last_frame_of_a_b_frame_video_is_decoded(videos):
    """At 2 fps a last frame left undecoded would look like a file cut short by 0.5 s or more."""
    assert "B" in frame_types(videos["6s_2fps_bframes"])
    report = verify(videos["6s_2fps_bframes"], "strict", Expected(duration_s=6))
    assert report is not None and report.verdict == "ok"
    last_shown = full_decode_poster(videos["6s_2fps_bframes"], at_s=5.5)  # frame 11 of 12
    assert poster_jpeg(videos["6s_2fps_bframes"], at_s=30) == last_shown


def test_the_emulators_samples_pass_their_own_check():
    from airflow_provider_hailuo.emulator.mp4 import all_sample_keys, sample_bytes

    for resolution, duration in all_sample_keys():
        found = inspect(
            io.BytesIO(sample_bytes(resolution, duration)),
            "strict",
            Expected(duration_s=duration, resolution=resolution),
            poster=True,
        )
        assert found.report is not None and found.report.verdict == "ok", (resolution, duration)
        assert found.poster is not None


def test_a_strict_mismatch_raises_before_any_jpeg_is_made(videos, monkeypatch):
    encoded: list[object] = []
    monkeypatch.setattr(media, "_jpeg", lambda frame, quality: encoded.append(frame) or b"")
    with pytest.raises(HailuoVideoCheckError, match="not what was requested") as caught:
        inspect(videos["2s_288"], "strict", Expected(duration_s=6), poster=True)
    assert caught.value.report is not None
    assert encoded == []


def test_warn_returns_the_report_and_the_poster(videos, caplog):
    with caplog.at_level(logging.WARNING):
        found = inspect(videos["2s_288"], "warn", Expected(duration_s=6), poster=True)
    assert found.report is not None and found.report.verdict == "mismatch"
    assert "duration 2.00 s, requested 6 s" in caplog.text
    assert found.poster == full_decode_poster(videos["2s_288"])
    assert inspect(videos["2s_288"], "warn", Expected(), poster=False).poster is None


def test_off_makes_a_poster_without_reading_the_end(videos):
    """A file cut in half still has its first second: with checks off, its poster is made."""
    data = videos["6s_faststart"].read_bytes()
    cut = io.BytesIO(data[: len(data) // 2])
    found = inspect(cut, "off", Expected(duration_s=6), poster=True)
    assert found.report is None and found.poster is not None
    with pytest.raises(HailuoVideoCheckError, match="last frame"):
        inspect(cut, "warn", Expected(duration_s=6), poster=True)


def test_off_leaves_out_a_poster_that_does_not_decode(caplog):
    garbage = io.BytesIO(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 500)
    with caplog.at_level(logging.WARNING):
        assert inspect(garbage, "off", Expected(), poster=True) == Inspection(report=None, poster=None)
    assert "No poster frame decodes (video_checks='off')" in caplog.text
    assert inspect(garbage, "off", Expected(), poster=False) == Inspection(report=None, poster=None)


def test_inspect_without_pyav_checks_and_posts_nothing(monkeypatch, caplog):
    monkeypatch.setattr(media, "media_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert inspect(io.BytesIO(b"x"), "warn", Expected(duration_s=6), poster=True) == Inspection(
            None, None
        )
    assert "PyAV is not installed" in caplog.text
    with pytest.raises(HailuoVideoCheckError, match=r"\[media\]"):
        inspect(io.BytesIO(b"x"), "strict", Expected(duration_s=6), poster=True)
