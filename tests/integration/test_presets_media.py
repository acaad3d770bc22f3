"""Every preset on real generated media, through the worker's transcoder (one ffmpeg run each):
the outputs' size, codec, length and audio; the poster and the thumbnail sprite from the same
decode; HDR phone video tone-mapped to SDR BT.709.

Clips are small (10 frames a second, a few seconds); 1080p only where a rendition needs it.
The HLS stream itself (playlists, bandwidth, segments, keyframe alignment) is read through the
API in tests/integration/test_outputs_api.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.domain import Preset
from chalicelib.processing.ports import Rendered
from tests.support.media import (
    ffmpeg_binary,
    ffprobe_binary,
    make_black_start_clip,
    make_clip,
    make_hdr_clip,
    picture_stats,
    probe_streams,
    stream_facts,
)

pytestmark = pytest.mark.integration

FPS = 10
# The tone-mapped picture against the SDR picture the HDR source was made from: its mean luma
# within 15 % and its mean saturation within 25 %. Measured: HLG 109.7 / 92.5 and PQ 110.4 / 91.2
# against 125.3 / 112.1 (12 % and 18 % off); without tone mapping (8-bit H.264 still tagged
# BT.2020) the saturation was 39.0 (HLG) and 22.9 (PQ): 65-80 % off, what reads as washed out.
LUMA_WITHIN, SATURATION_WITHIN = 0.15, 0.25


def transcoder() -> FFmpegTranscoder:
    return FFmpegTranscoder(
        ffmpeg_binary(), ffprobe_binary(), timeout_seconds=300, progress_interval_seconds=0.0
    )


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("presets")


@pytest.fixture(scope="module")
def full_hd(media: Path) -> Path:
    return make_clip(media / "1080p.mp4", seconds=2, width=1920, height=1080, fps=FPS)


def render(source: Path, preset: Preset, out: Path) -> Rendered:
    out.mkdir()
    return transcoder().render(str(source), out, preset)


@pytest.mark.parametrize(
    ("preset", "size"),
    [(Preset.MP4_1080P, (1920, 1080)), (Preset.MP4_720P, (1280, 720)), (Preset.MP4_480P, (854, 480))],
)
def test_each_mp4_preset_is_h264_high_at_its_size_with_the_sources_length_and_audio(
    full_hd: Path, preset: Preset, size: tuple[int, int], tmp_path: Path
) -> None:
    rendered = render(full_hd, preset, tmp_path / "out")
    assert rendered.video is not None and (rendered.width, rendered.height) == size
    streams = {s["codec_type"]: s for s in probe_streams(rendered.video)}
    video = streams["video"]
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (video["width"], video["height"]) == size
    assert streams["audio"]["codec_name"] == "aac"
    facts = stream_facts(rendered.video)
    assert abs(facts["video"]["duration"] - 2.0) <= 1 / FPS + 1e-6  # within one frame
    assert facts["video"]["frames"] == 2 * FPS


def test_a_source_without_audio_gives_an_output_without_audio(tmp_path: Path) -> None:
    silent = make_clip(tmp_path / "silent.mp4", seconds=1, width=320, height=180, fps=FPS, audio=False)
    rendered = render(silent, Preset.MP4_480P, tmp_path / "out")
    assert rendered.video is not None
    assert [s["codec_type"] for s in probe_streams(rendered.video)] == ["video"]


def test_the_poster_is_a_representative_frame_not_the_black_first_one_and_the_sprite_has_a_cell_a_second(
    tmp_path: Path,
) -> None:
    source = make_black_start_clip(tmp_path / "fade-in.mp4", black=1.5, seconds=4.0, fps=FPS)
    first = tmp_path / "first.png"
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(source), "-frames:v", "1", str(first)], check=True
    )
    rendered = render(source, Preset.MP4_720P, tmp_path / "out")
    assert rendered.poster is not None and rendered.thumbs is not None
    assert picture_stats(first)["YAVG"] < 20  # the first frame is black...
    poster = picture_stats(rendered.poster)
    assert poster["YAVG"] > 60 and poster["SATAVG"] > 40  # ...the poster is the picture
    (poster_stream,) = probe_streams(rendered.poster)
    assert (poster_stream["width"], poster_stream["height"]) == (320, 180)  # the output's size
    sheet = rendered.thumbs
    assert (sheet.interval, sheet.first, sheet.count, sheet.columns) == (1.0, 0, 4, 4)
    (sprite,) = probe_streams(sheet.path)
    assert (sprite["width"], sprite["height"]) == (4 * 160, 90)


@pytest.mark.parametrize("kind", ["hlg", "pq"])
def test_an_hdr_phone_video_is_tone_mapped_to_sdr_bt709(kind: str, tmp_path: Path) -> None:
    source = make_hdr_clip(tmp_path / f"{kind}.mp4", kind)
    (hdr,) = probe_streams(source)
    assert (hdr["codec_name"], hdr["pix_fmt"], hdr["color_primaries"]) == ("hevc", "yuv420p10le", "bt2020")
    rendered = render(source, Preset.MP4_480P, tmp_path / "out")
    assert rendered.video is not None
    (video,) = (s for s in probe_streams(rendered.video) if s["codec_type"] == "video")
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["color_primaries"], video["color_transfer"], video["color_space"]) == (
        "bt709",
        "bt709",
        "bt709",
    )
    reference = make_clip(tmp_path / "sdr.mp4", seconds=1, width=320, height=180, fps=FPS, audio=False)
    want, got = picture_stats(reference), picture_stats(rendered.video)
    assert abs(got["YAVG"] - want["YAVG"]) <= LUMA_WITHIN * want["YAVG"], (got, want)
    assert abs(got["SATAVG"] - want["SATAVG"]) <= SATURATION_WITHIN * want["SATAVG"], (got, want)
