"""The survey read from an MP4/MOV's sample tables gives exactly the packet scan's frame and
keyframe times (the cut points of a long video), for the shapes real uploads come in, read from
a local file or through a presigned URL; what it cannot read exactly it declines."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.ffmpeg import mp4index
from chalicelib.adapters.ffmpeg.segmenter import FFmpegSegmenter
from chalicelib.adapters.ffmpeg.segments import build_frames_args, parse_frames
from chalicelib.config import Settings
from tests.support.media import ffmpeg_binary, make_long_form_clip
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration

SHAPES: dict[str, dict[str, Any]] = {
    "plain.mp4": {},
    "b-frames.mp4": {"x264_params": "bframes=3"},
    "open-gop.mp4": {"x264_params": "bframes=3:open-gop=1", "keyframe_every": 2.0},
    "sparse-keyframes.mp4": {"keyframe_every": 5.0},
    "variable-rate.mp4": {"variable_rate": True, "x264_params": "bframes=2"},
    "phone.mov": {"x264_params": "bframes=2"},
    "mp3-audio.mp4": {"audio_codec": "libmp3lame"},
    "no-audio.mp4": {"audio": False},
}


@pytest.fixture(scope="module")
def segmenter() -> FFmpegSegmenter:
    return FFmpegSegmenter.from_settings(Settings())


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("shapes")
    made = {
        name: make_long_form_clip(folder / name, 6, width=320, height=240, **kw)
        for name, kw in SHAPES.items()
    }
    # The same video with its index at the front (what a "web optimised" export writes).
    faststart = folder / "faststart.mp4"
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-y", "-i", str(made["b-frames.mp4"]), "-c", "copy"]
        + ["-movflags", "+faststart", str(faststart)],
        check=True,
    )
    made["faststart.mp4"] = faststart
    return made


def scanned(segmenter: FFmpegSegmenter, url: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    info = segmenter.ffmpeg.probe(url, timeout=30)
    args = build_frames_args(segmenter.ffmpeg.ffprobe_path, url, info.video_stream)
    frames = parse_frames(segmenter.ffmpeg.run_probe(args, url, 60))
    return frames.frame_times, frames.keyframe_times


def indexed(segmenter: FFmpegSegmenter, url: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    info = segmenter.ffmpeg.probe(url, timeout=30)
    assert info.is_mp4
    return mp4index.frame_list(url, info.video_stream, info.video_start_seconds, info.start_seconds)


@pytest.mark.parametrize("name", [*SHAPES, "faststart.mp4"])
def test_the_index_gives_the_packet_scans_frames_and_keyframes(
    segmenter: FFmpegSegmenter, sources: dict[str, Path], name: str
) -> None:
    url = str(sources[name])
    from_index = indexed(segmenter, url)
    assert from_index is not None, f"{name}: the index was not read"
    assert from_index == scanned(segmenter, url)


def test_through_a_presigned_url_it_reads_only_the_index(
    segmenter: FFmpegSegmenter, sources: dict[str, Path], aws_stack: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, bucket = aws_stack.client("s3"), aws_stack.env["R2_BUCKET"]
    path = sources["b-frames.mp4"]  # moov at the end: found by walking the top-level boxes
    s3.put_object(Bucket=bucket, Key="mp4index/b-frames.mp4", Body=path.read_bytes())
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "mp4index/b-frames.mp4"})
    read: list[int] = []
    real = mp4index.HttpFile.read

    def counted(self: mp4index.HttpFile, offset: int, size: int) -> bytes:
        data = real(self, offset, size)
        read.append(len(data))
        return data

    monkeypatch.setattr(mp4index.HttpFile, "read", counted)
    assert indexed(segmenter, url) == scanned(segmenter, str(path))
    assert len(read) <= 6 and sum(read) < path.stat().st_size / 5  # the index, not the media


def test_a_fragmented_mp4_is_left_to_the_packet_scan(
    segmenter: FFmpegSegmenter, sources: dict[str, Path], tmp_path: Path
) -> None:
    fragmented = tmp_path / "fragmented.mp4"
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-y", "-i", str(sources["plain.mp4"]), "-c", "copy"]
        + ["-movflags", "frag_keyframe+empty_moov", str(fragmented)],
        check=True,
    )
    assert indexed(segmenter, str(fragmented)) is None
    survey = segmenter.survey(str(fragmented))  # the survey still works, by the packet scan
    assert (survey.frame_times, survey.keyframe_times) == scanned(segmenter, str(fragmented))


def test_the_survey_uses_the_index(
    segmenter: FFmpegSegmenter, sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(sources["variable-rate.mp4"])
    monkeypatch.setattr(segmenter.ffmpeg, "run_probe", _no_packet_scan(segmenter.ffmpeg.run_probe))
    survey = segmenter.survey(url)
    assert (survey.frame_times, survey.keyframe_times) == indexed(segmenter, url)


def _no_packet_scan(real: Any) -> Any:
    def run_probe(args: list[str], input_url: str, timeout: float) -> str:
        assert "packet=pts_time,flags:format=start_time" not in args, "the survey scanned packets"
        return str(real(args, input_url, timeout))

    return run_probe


@pytest.mark.parametrize("name", sorted(SHAPES) + ["faststart.mp4"])
def test_the_index_says_the_duration_ffprobe_says(
    segmenter: FFmpegSegmenter, sources: dict[str, Path], name: str
) -> None:
    # what decides between one pass and segments, read from moov instead of a second ffprobe
    indexed = mp4index.duration(str(sources[name]))
    probed = segmenter.ffmpeg.probe(str(sources[name]), timeout=30).duration_seconds

    assert indexed is not None and probed is not None and abs(indexed - probed) < 0.05


def test_a_file_without_an_index_has_no_indexed_duration(tmp_path: Path) -> None:
    matroska = make_long_form_clip(tmp_path / "clip.mkv", 2, width=160, height=90)
    assert mp4index.duration(str(matroska)) is None
