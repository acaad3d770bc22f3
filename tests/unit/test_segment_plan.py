"""The segment planner and the segmented path's command lines: pure rules, no process."""

from __future__ import annotations

import pytest

from chalicelib.adapters.ffmpeg.segments import (
    CUT_EPSILON,
    audio_copyable,
    build_audio_args,
    build_segment_args,
    build_stitch_args,
    concat_list,
    parse_frames,
)
from chalicelib.errors import InvalidVideoError
from chalicelib.processing.segment_plan import plan_segments

URL = "https://acct.r2.cloudflarestorage.com/media/in.mp4?X-Amz-Signature=abc"


def frames(seconds: float, fps: float) -> list[float]:
    return [round(i / fps, 6) for i in range(int(seconds * fps))]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_plan_cuts_on_the_keyframe_nearest_each_target() -> None:
    keys = [0.0, 2.0, 4.1, 6.0, 7.9, 10.0]
    plan = plan_segments(frames(12, 10), keys, 12.0, 4.0)
    assert [s.start for s in plan.spans] == [0.0, 4.1, 7.9]
    assert [round(s.duration, 6) for s in plan.spans] == [4.1, 3.8, 4.1]
    assert plan.accurate_cuts == 0
    assert sum(s.duration for s in plan.spans) == pytest.approx(12.0)


def test_plan_spans_tile_the_video_with_no_gap_or_overlap() -> None:
    plan = plan_segments(frames(125, 30), frames(125, 1), 125.0, 60.0)
    assert plan.count == 2  # a 5 s tail joins the last segment
    for before, after in zip(plan.spans, plan.spans[1:], strict=False):
        assert before.end == pytest.approx(after.start)
    assert plan.spans[-1].end == pytest.approx(125.0)


def test_plan_without_keyframes_near_a_target_cuts_on_a_frame_and_says_so() -> None:
    plan = plan_segments(frames(30, 25), [0.0, 10.0, 20.0], 30.0, 4.0)
    assert plan.accurate_cuts > 0
    assert all(round(s.start * 25, 6) == round(s.start * 25) for s in plan.spans)  # on frames
    assert "between keyframes" in plan.describe()


def test_a_video_shorter_than_one_and_a_half_targets_is_one_segment() -> None:
    plan = plan_segments(frames(5, 10), [0.0], 5.0, 4.0)
    assert plan.count == 1 and plan.spans[0].duration == 5.0


def test_progress_counts_segment_seconds_done() -> None:
    plan = plan_segments(frames(12, 10), [0.0, 4.0, 8.0], 12.0, 4.0)
    assert plan.seconds_done([0, 2]) == pytest.approx(8.0)


def test_parse_frames_sorts_presentation_times_from_the_file_start() -> None:
    out = "\n".join(
        [
            "packet|pts_time=1.400000|flags=K_",
            "packet|pts_time=1.480000|flags=__",
            "packet|pts_time=1.440000|flags=__",
            "packet|pts_time=N/A|flags=__",
            "format|start_time=1.400000",
        ]
    )
    listed = parse_frames(out)
    assert listed.frame_times == (0.0, 0.04, 0.08)
    assert listed.keyframe_times == (0.0,)


def test_parse_frames_without_timed_packets_is_an_invalid_video() -> None:
    with pytest.raises(InvalidVideoError):
        parse_frames("format|start_time=0.000000\n")


def test_segment_args_seek_the_input_a_hair_before_the_cut_and_stop_before_the_next() -> None:
    args = build_segment_args("ffmpeg", URL, "/tmp/s.mp4", start=4.0, duration=4.0, crf=20, preset="fast")
    assert args.index("-ss") < args.index("-i")  # input seeking: Range requests, no split pass
    assert float(option(args, "-ss")) == pytest.approx(4.0 - CUT_EPSILON)
    assert float(option(args, "-ss")) + float(option(args, "-t")) == pytest.approx(8.0 - CUT_EPSILON)
    assert option(args, "-crf") == "20" and option(args, "-preset") == "fast"
    assert "-an" in args and option(args, "-fps_mode") == "vfr"
    assert option(args, "-protocol_whitelist") == "http,https,tls,tcp"


def test_first_segment_seeks_from_zero() -> None:
    args = build_segment_args("ffmpeg", URL, "/tmp/s.mp4", start=0.0, duration=4.0)
    assert option(args, "-ss") == "0.000000"


def test_audio_args_encode_the_whole_audio_stream_alone() -> None:
    args = build_audio_args("ffmpeg", URL, "/tmp/a.m4a", audio_stream=2)
    assert option(args, "-map") == "0:2" and "-vn" in args and option(args, "-c:a") == "aac"
    assert option(args, "-ac") == "2" and "-b:a" in args
    assert "-ss" not in args


def test_audio_args_copy_the_stream_into_the_same_container_without_encoding() -> None:
    args = build_audio_args("ffmpeg", URL, "/tmp/a.m4a", audio_stream=2, copy=True)
    assert option(args, "-map") == "0:2" and "-vn" in args and option(args, "-c:a") == "copy"
    assert "-b:a" not in args and "-ac" not in args  # nothing that would need an encoder
    assert option(args, "-f") == "mp4" and args[-1] == "/tmp/a.m4a"  # what the stitch reads
    encoded = build_audio_args("ffmpeg", URL, "/tmp/a.m4a", audio_stream=2)
    assert option(encoded, "-f") == "mp4" and encoded[-1] == args[-1]


@pytest.mark.parametrize(
    ("codec", "profile", "channels", "copy"),
    [
        ("aac", "LC", 2, True),
        ("aac", "LC", 1, True),
        ("aac", "LC", 6, False),  # 5.1: the output is stereo, as single pass makes it
        ("aac", "HE-AAC", 2, False),  # not every player decodes HE-AAC
        ("aac", "HE-AACv2", 2, False),
        ("aac", None, 2, False),  # ffprobe did not say: encode, the safe way
        ("aac", "LC", None, False),
        ("mp3", None, 2, False),
        ("opus", None, 2, False),
        ("ac3", None, 2, False),
        (None, None, None, False),
    ],
)
def test_only_aac_lc_mono_or_stereo_is_copied(
    codec: str | None, profile: str | None, channels: int | None, copy: bool
) -> None:
    assert audio_copyable(codec, profile, channels) is copy


def test_concat_list_quotes_names_and_gives_planned_durations() -> None:
    text = concat_list([("/tmp/it's.mp4", 4.0), ("https://h/b.mp4?x=1", 3.5)])
    assert text.splitlines() == [
        "ffconcat version 1.0",
        "file '/tmp/it'\\''s.mp4'",
        "duration 4.000000",
        "file 'https://h/b.mp4?x=1'",
        "duration 3.500000",
    ]


def test_stitch_copies_streams_maps_the_audio_and_writes_the_index_first() -> None:
    args = build_stitch_args("ffmpeg", "/tmp/list.ffconcat", URL, "/tmp/out.mp4")
    assert option(args, "-f") == "concat" and option(args, "-c") == "copy"
    assert option(args, "-movflags") == "+faststart"
    assert "1:a:0" in args
    silent = build_stitch_args("ffmpeg", "/tmp/list.ffconcat", None, "/tmp/out.mp4")
    assert "1:a:0" not in silent and silent.count("-i") == 1
