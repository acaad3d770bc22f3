"""The segmented path's media on real generated video: plan, segments, audio, stitch.

Each source goes through the segmented path (segments of a few seconds) and through today's
single pass with the same settings, and the two outputs are compared: duration within one
frame of the source, the same frame count, audio and video in sync, and no visible seam
(SSIM >= 0.98 at every segment boundary). Clips are short and 360p to keep the suite's time sane.
"""

from __future__ import annotations

import bisect
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.adapters.ffmpeg.segmenter import FFmpegSegmenter
from chalicelib.domain import Preset
from chalicelib.outputs.presets import Rung
from chalicelib.processing.audio_plan import plan_chunks
from chalicelib.processing.ports import SegmentWork
from chalicelib.processing.segment_plan import SegmentPlan, plan_segments
from tests.support.media import (
    ffmpeg_binary,
    ffprobe_binary,
    make_long_form_clip,
    ssim_per_frame,
    stream_facts,
)

pytestmark = pytest.mark.integration

SEGMENT_SECONDS = 4.0
SEAM_SSIM = 0.98


def segmenter() -> FFmpegSegmenter:
    return FFmpegSegmenter(
        FFmpegTranscoder(
            ffmpeg_path=ffmpeg_binary(),
            ffprobe_path=ffprobe_binary(),
            timeout_seconds=300,
            max_height=360,
            preset="veryfast",
            progress_interval_seconds=0.0,
        )
    )


@dataclass
class Outputs:
    plan: SegmentPlan
    segmented: Path
    single: Path
    fps: float
    frame_times: tuple[float, ...]
    audio_copied: bool
    audio_chunked: bool


def run_both(source: Path, work: Path, fps: float) -> Outputs:
    seg = segmenter()
    survey = seg.survey(str(source))
    plan = plan_segments(survey.frame_times, survey.keyframe_times, survey.duration_seconds, SEGMENT_SECONDS)
    parts = []
    for span in plan.spans:
        part_dir = work / f"segment-{span.index:04d}"
        part_dir.mkdir()
        job = SegmentWork(Preset.MP4_720P, (Rung(360),), survey.duration_seconds, poster=span.index == 0)
        rendered = seg.render_segment(str(source), span, survey.video_stream, part_dir, job)
        assert rendered.video is not None
        parts.append((str(rendered.video), span.duration))
    audio = None
    if survey.audio_stream is not None and survey.audio_chunks is not None:  # as the segment tasks do
        rate, origin = survey.audio_chunks
        chunks = plan_chunks([span.start for span in plan.spans], rate, origin)
        paths = [work / f"audio-{c.index:04d}.m4a" for c in chunks]
        for chunk, path in zip(chunks, paths, strict=True):
            seg.encode_audio_chunk(str(source), survey.audio_stream, chunk, path)
        audio = work / "audio.m4a"
        seg.join_audio(chunks, paths, audio)
    elif survey.audio_stream is not None:
        audio = work / "audio.m4a"
        seg.encode_audio(str(source), survey.audio_stream, audio, copy=survey.audio_copy)
    segmented = work / "segmented.mp4"
    seg.stitch(parts, str(audio) if audio else None, segmented)
    single = work / "single.mp4"
    seg.ffmpeg.transcode(str(source), single)
    return Outputs(
        plan=plan,
        segmented=segmented,
        single=single,
        fps=fps,
        frame_times=survey.frame_times,
        audio_copied=survey.audio_copy,
        audio_chunked=survey.audio_chunks is not None,
    )


def audio_codec(path: Path) -> tuple[str, str]:
    """The output's audio codec and profile, by ffprobe."""
    out = subprocess.run(
        [
            ffprobe_binary(),
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,profile",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    codec, profile = out.stdout.strip().split(",")
    return codec, profile


def boundary_frames(out: Outputs) -> list[int]:
    """Display indexes of the frames on each side of every join in the segmented output."""
    indexes = []
    for span in out.plan.spans[1:]:
        first = bisect.bisect_left(out.frame_times, span.start - 1e-4)  # frames shown before the join
        indexes += [first - 1, first]
    return indexes


def assert_quality_bars(source: Path, out: Outputs, *, audio: bool) -> None:
    src, seg, single = stream_facts(source), stream_facts(out.segmented), stream_facts(out.single)
    frame = 1 / out.fps
    assert abs(seg["video"]["duration"] - src["video"]["duration"]) <= frame + 1e-6
    assert seg["video"]["frames"] == single["video"]["frames"]
    assert seg["video"]["start"] == pytest.approx(0.0, abs=1e-3)
    if audio:
        assert seg["audio"]["start"] == pytest.approx(seg["video"]["start"], abs=frame)
        assert seg["audio"]["duration"] == pytest.approx(single["audio"]["duration"], abs=0.03)
        assert seg["audio"]["duration"] == pytest.approx(seg["video"]["duration"], abs=frame + 0.03)
    else:
        assert "audio" not in seg
    ssim = ssim_per_frame(out.segmented, out.single)
    assert len(ssim) == single["video"]["frames"]
    seams = {i: ssim[i] for i in boundary_frames(out) if 0 <= i < len(ssim)}
    assert seams, "the plan has no join to check"
    assert min(seams.values()) >= SEAM_SSIM, seams


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def test_keyframe_cuts_join_without_seams(work: Path) -> None:
    source = make_long_form_clip(work / "src.mp4", 12, fps=25, keyframe_every=1.0)
    out = run_both(source, work, fps=25)
    assert out.plan.count == 3 and out.plan.accurate_cuts == 0
    assert [s.start for s in out.plan.spans] == [0.0, 4.0, 8.0]
    assert out.audio_chunked  # encoded in chunks beside the segments, as the single pass encodes it
    assert audio_codec(out.segmented) == ("aac", "LC")
    assert_quality_bars(source, out, audio=True)


def test_aac_in_a_container_that_counts_milliseconds_is_copied_whole(work: Path) -> None:
    source = make_long_form_clip(work / "src.mkv", 12, fps=25, keyframe_every=1.0)
    out = run_both(source, work, fps=25)
    assert out.audio_copied and not out.audio_chunked  # AAC-LC mono: stream-copied by one task
    assert audio_codec(out.segmented) == ("aac", "LC")
    # (Matroska gives its streams no duration of their own: judged against the single pass)
    seg, single = stream_facts(out.segmented), stream_facts(out.single)
    assert seg["video"]["frames"] == single["video"]["frames"] == 12 * 25
    assert seg["video"]["duration"] == pytest.approx(single["video"]["duration"], abs=1 / 25)
    assert seg["audio"]["start"] == pytest.approx(seg["video"]["start"], abs=1 / 25)
    assert seg["audio"]["duration"] == pytest.approx(single["audio"]["duration"], abs=0.03)


@pytest.mark.parametrize(
    ("name", "codec", "channels"),
    [("src.mp4", "libopus", 2), ("src.mp4", "libmp3lame", 2), ("src.mp4", "aac", 6)],
    ids=["opus", "mp3", "aac-5.1"],
)
def test_audio_that_cannot_be_copied_is_encoded_to_aac_in_sync(
    work: Path, name: str, codec: str, channels: int
) -> None:
    source = make_long_form_clip(
        work / name, 9, fps=25, keyframe_every=1.0, audio_codec=codec, audio_channels=channels
    )
    out = run_both(source, work, fps=25)
    assert not out.audio_copied and out.audio_chunked  # encoded in chunks, one per segment
    assert audio_codec(out.segmented) == ("aac", "LC")
    assert_quality_bars(source, out, audio=True)


def test_b_frames_and_open_gops_join_without_seams(work: Path) -> None:
    source = make_long_form_clip(
        work / "src.mp4", 12, fps=25, keyframe_every=2.0, x264_params="bframes=3:open_gop=1:b_pyramid=normal"
    )
    out = run_both(source, work, fps=25)
    assert out.plan.count == 3
    assert_quality_bars(source, out, audio=True)


def test_variable_frame_rate_keeps_every_frame_and_its_time(work: Path) -> None:
    source = make_long_form_clip(work / "src.mp4", 12, fps=30, keyframe_every=1.0, variable_rate=True)
    out = run_both(source, work, fps=30)
    src_frames = stream_facts(source)["video"]["frames"]
    assert stream_facts(out.segmented)["video"]["frames"] == src_frames
    assert_quality_bars(source, out, audio=True)


def test_portrait_video_stays_portrait(work: Path) -> None:
    source = make_long_form_clip(work / "src.mp4", 9, width=360, height=640, fps=25)
    out = run_both(source, work, fps=25)
    streams = stream_facts(out.segmented)
    assert streams["video"]["frames"] == 9 * 25
    assert_quality_bars(source, out, audio=True)


def test_video_without_audio_comes_out_without_audio(work: Path) -> None:
    source = make_long_form_clip(work / "src.mp4", 9, fps=25, audio=False)
    out = run_both(source, work, fps=25)
    assert_quality_bars(source, out, audio=False)


def test_keyframes_ten_seconds_apart_fall_back_to_accurate_cuts(work: Path) -> None:
    source = make_long_form_clip(work / "src.mp4", 12, fps=25, keyframe_every=10.0)
    out = run_both(source, work, fps=25)
    assert out.plan.accurate_cuts >= 1
    assert "between keyframes" in out.plan.describe()
    assert_quality_bars(source, out, audio=True)


def test_a_stitch_that_cannot_read_a_part_fails_without_showing_its_signature(work: Path) -> None:
    import contextlib

    from chalicelib.errors import ProcessingError
    from tests.integration.test_transcoder import serve

    with contextlib.contextmanager(serve)(work) as base:
        missing = f"{base}/gone.mp4?X-Amz-Signature=topsecret"
        with pytest.raises(ProcessingError) as caught:
            segmenter().stitch([(missing, 4.0)], None, work / "out.mp4")
    assert caught.value.code == "R2_DOWNLOAD_FAILED"
    assert "topsecret" not in caught.value.detail
    assert not (work / "out.mp4").exists()
