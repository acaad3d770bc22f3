"""The ffmpeg adapter's pure parts: command lines, the size rule, stderr and progress parsing."""

from __future__ import annotations

import json

import pytest

from chalicelib.adapters.ffmpeg import (
    FFmpegTranscoder,
    ProgressThrottle,
    build_ffmpeg_args,
    build_probe_args,
    classify_stderr,
    duration_words,
    input_options,
    parse_probe,
    progress_fraction,
    progress_seconds,
    redact,
    scale_filter,
)
from chalicelib.config import Settings
from chalicelib.errors import DownloadError, InvalidVideoError, TranscodeFailedError

URL = "https://acct.r2.cloudflarestorage.com/media/in.mp4?X-Amz-Signature=abc123&X-Amz-Expires=900"


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def eval_scale(iw: int, ih: int, max_side: int = 720) -> tuple[int, int]:
    """Evaluate scale_filter's expressions the way ffmpeg does (-2: follow the aspect ratio, even)."""
    expr = scale_filter(max_side)
    w_expr = expr.split("w='", 1)[1].split("'", 1)[0]
    h_expr = expr.split("h='", 1)[1].split("'", 1)[0]
    env = {
        "iw": iw,
        "ih": ih,
        "min": min,
        "trunc": int,
        "gte": lambda a, b: a >= b,
        "if": lambda c, a, b: a if c else b,
    }

    def evaluate(text: str) -> int:
        return int(eval(text.replace("if(", "if_("), {"if_": env["if"], **env}))

    w, h = evaluate(w_expr), evaluate(h_expr)
    if w == -2:
        w = round(iw * h / ih / 2) * 2
    if h == -2:
        h = round(ih * w / iw / 2) * 2
    return w, h


# --- the size rule ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((1920, 1080), (1280, 720)),  # landscape HD: height bounded
        ((1280, 720), (1280, 720)),  # already 720p: unchanged
        ((640, 360), (640, 360)),  # small: never upscaled
        ((1080, 1920), (720, 1280)),  # portrait: the short side (width) is bounded
        ((720, 1280), (720, 1280)),
        ((1080, 1080), (720, 720)),  # square
        ((3840, 1600), (1728, 720)),  # ultra-wide keeps its aspect ratio
        ((641, 361), (640, 360)),  # odd sizes become even
    ],
)
def test_scale_filter_bounds_the_short_side_at_720_without_upscaling(source, expected):
    assert eval_scale(*source) == expected


def test_scale_filter_uses_the_configured_bound():
    assert eval_scale(1920, 1080, max_side=480) == (854, 480)
    assert eval_scale(1080, 1920, max_side=480) == (480, 854)


# --- command lines ---------------------------------------------------------------------------
def test_ffmpeg_args_encode_browser_playable_h264_and_aac_with_faststart():
    args = build_ffmpeg_args("/opt/bin/ffmpeg", URL, "/tmp/out.mp4", video_stream=0, audio_stream=1)

    assert args[0] == "/opt/bin/ffmpeg"
    assert args[-1] == "/tmp/out.mp4"
    assert option(args, "-i") == URL
    assert option(args, "-c:v") == "libx264"
    assert option(args, "-preset") == "veryfast"
    assert option(args, "-crf") == "23"
    assert option(args, "-pix_fmt") == "yuv420p"
    assert option(args, "-profile:v") == "high"
    assert option(args, "-c:a") == "aac"
    assert option(args, "-b:a") == "128k"
    assert option(args, "-movflags") == "+faststart"
    assert option(args, "-vf") == scale_filter(720)
    assert option(args, "-progress") == "pipe:1"
    for flag in ("-nostdin", "-y", "-hide_banner", "-nostats"):
        assert flag in args
    assert option(args, "-loglevel") == "error"


def test_ffmpeg_args_map_the_probed_streams():
    args = build_ffmpeg_args("ffmpeg", URL, "out.mp4", video_stream=2, audio_stream=0)

    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["0:2", "0:0"]


def test_ffmpeg_args_without_audio_stream_drop_audio_instead_of_failing():
    args = build_ffmpeg_args("ffmpeg", URL, "out.mp4", video_stream=0, audio_stream=None)

    assert "-an" in args
    assert "-c:a" not in args
    assert [args[i + 1] for i, a in enumerate(args) if a == "-map"] == ["0:0"]


def test_ffmpeg_args_take_preset_crf_and_bound_from_arguments():
    args = build_ffmpeg_args("ffmpeg", URL, "o.mp4", max_height=480, preset="medium", crf=28)

    assert option(args, "-preset") == "medium"
    assert option(args, "-crf") == "28"
    assert option(args, "-vf") == scale_filter(480)


def test_input_options_come_before_the_input():
    args = build_ffmpeg_args("ffmpeg", URL, "o.mp4")

    assert args.index("-format_whitelist") < args.index("-i")
    assert args.index("-protocol_whitelist") < args.index("-i")
    assert args.index("-reconnect") < args.index("-i")


def test_remote_input_allows_only_http_protocols_and_video_demuxers():
    options = input_options(URL)

    assert option(options, "-protocol_whitelist") == "http,https,tls,tcp"
    formats = option(options, "-format_whitelist").split(",")
    assert "mov" in formats and "matroska" in formats
    for not_a_video in ("hls", "concat", "image2", "tty", "lavfi"):
        assert not_a_video not in formats


def test_local_input_allows_only_the_file_protocol():
    options = input_options("/tmp/in.mp4")

    assert option(options, "-protocol_whitelist") == "file"
    assert "-reconnect" not in options


def test_probe_args_ask_for_json_with_format_and_streams():
    args = build_probe_args("/opt/bin/ffprobe", URL)

    assert args[0] == "/opt/bin/ffprobe"
    assert args[-1] == URL
    assert option(args, "-print_format") == "json"
    assert "-show_format" in args and "-show_streams" in args


# --- stderr classification -------------------------------------------------------------------
@pytest.mark.parametrize(
    "stderr",
    [
        "https://x/in.mp4?<redacted>: Server returned 404 Not Found",
        "https://x/in.mp4: Server returned 403 Forbidden (access denied)",
        "https://x/in.mp4: Server returned 5XX Server Error reply",
        "[tcp @ 0x1] Connection to tcp://127.0.0.1:9 failed: Connection refused",
        "[tcp @ 0x1] Failed to resolve hostname nowhere.invalid: Name or service not known",
        "[tcp @ 0x1] Connection to tcp://10.0.0.1:443 failed: Connection timed out",
        "[http @ 0x1] Stream ends prematurely at 1000, should be 2000",
        # a refused download followed by the generic line must still read as a download error
        "Server returned 404 Not Found\nin.mp4: Invalid data found when processing input",
    ],
)
def test_classify_stderr_recognises_download_failures(stderr):
    assert classify_stderr(stderr) is DownloadError


@pytest.mark.parametrize(
    "stderr",
    [
        "in.mp4: Invalid data found when processing input",
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] moov atom not found",
        "[mov @ 0x1] Could not find codec parameters for stream 0 (Video: h264): unspecified size",
        "[hls @ 0x1] Format not on whitelist 'mov,matroska'",
        "Output file #0 does not contain any stream",
        "Decoder (codec hap) not found for input stream #0:0",
    ],
)
def test_classify_stderr_recognises_unreadable_videos(stderr):
    assert classify_stderr(stderr) is InvalidVideoError


@pytest.mark.parametrize(
    "stderr",
    ["", "[libx264 @ 0x1] height not divisible by 2 (641x361)", "Conversion failed!", "Killed"],
)
def test_classify_stderr_falls_back_to_transcode_failed(stderr):
    assert classify_stderr(stderr) is TranscodeFailedError


def test_redact_removes_the_presigned_signature_from_operator_text():
    text = f"{URL}: Server returned 404 Not Found"

    redacted = redact(text, URL)

    assert "abc123" not in redacted
    assert "X-Amz-Signature" not in redacted
    assert "https://acct.r2.cloudflarestorage.com/media/in.mp4?<redacted>" in redacted


def test_redact_leaves_local_paths_alone():
    assert redact("/tmp/in.mp4: moov atom not found", "/tmp/in.mp4") == "/tmp/in.mp4: moov atom not found"


# --- progress --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "seconds"),
    [
        ("out_time_us=1500000", 1.5),
        ("out_time_ms=1500000\n", 1.5),  # ffmpeg's "ms" key is microseconds too
        ("out_time_us=N/A", None),
        ("out_time_us=-40000", 0.0),
        ("out_time=00:00:01.500000", None),
        ("frame=42", None),
        ("progress=continue", None),
        ("garbage", None),
    ],
)
def test_progress_seconds_reads_out_time_lines(line, seconds):
    assert progress_seconds(line) == seconds


def test_progress_fraction_divides_by_duration_and_caps_at_one():
    assert progress_fraction("out_time_us=2500000", 10.0) == 0.25
    assert progress_fraction("out_time_us=10007800", 10.0) == 1.0
    assert progress_fraction("out_time_us=2500000", None) is None
    assert progress_fraction("out_time_us=2500000", 0.0) is None


def test_progress_throttle_lets_through_at_most_one_value_per_interval():
    throttle = ProgressThrottle(interval_seconds=1.0)

    assert throttle.offer(0.1, now=100.0)
    assert not throttle.offer(0.2, now=100.5)
    assert throttle.offer(0.3, now=101.0)


def test_progress_throttle_only_lets_increasing_values_through():
    throttle = ProgressThrottle(interval_seconds=0.0)

    assert not throttle.offer(0.0, now=1.0)  # nothing done yet is not progress
    assert throttle.offer(0.5, now=2.0)
    assert not throttle.offer(0.5, now=3.0)
    assert not throttle.offer(0.4, now=4.0)
    assert throttle.offer(0.6, now=5.0)


# --- probe parsing ---------------------------------------------------------------------------
def probe_json(streams: list[dict], duration: str | None = "12.5", name: str = "mov,mp4") -> str:
    fmt = {"format_name": name} | ({"duration": duration} if duration else {})
    return json.dumps({"streams": streams, "format": fmt})


VIDEO = {"index": 0, "codec_type": "video", "width": 1920, "height": 1080, "duration": "12.4"}
AUDIO = {"index": 1, "codec_type": "audio"}


def test_parse_probe_finds_video_audio_and_duration():
    info = parse_probe(probe_json([VIDEO, AUDIO]))

    assert (info.video_stream, info.audio_stream) == (0, 1)
    assert (info.width, info.height) == (1920, 1080)
    assert info.duration_seconds == 12.5


def test_parse_probe_without_audio_has_no_audio_stream():
    info = parse_probe(probe_json([VIDEO]))
    assert info.audio_stream is None
    assert (info.audio_codec, info.audio_profile, info.audio_channels) == (None, None, None)


def test_parse_probe_reads_the_audio_codec_profile_and_channels():
    aac = AUDIO | {"codec_name": "aac", "profile": "LC", "channels": 2}
    info = parse_probe(probe_json([VIDEO, aac]))
    assert (info.audio_codec, info.audio_profile, info.audio_channels) == ("aac", "LC", 2)
    bare = parse_probe(probe_json([VIDEO, AUDIO]))  # fields ffprobe left out stay unknown
    assert (bare.audio_codec, bare.audio_profile, bare.audio_channels) == (None, None, None)


def test_parse_probe_falls_back_to_the_stream_duration():
    assert parse_probe(probe_json([VIDEO], duration="N/A")).duration_seconds == 12.4
    assert parse_probe(probe_json([VIDEO | {"duration": "N/A"}], duration=None)).duration_seconds is None


def test_parse_probe_rejects_a_file_without_video():
    with pytest.raises(InvalidVideoError) as caught:
        parse_probe(probe_json([AUDIO | {"index": 0}], name="mp3"))

    assert caught.value.message == "The file is not a readable video"


def test_parse_probe_ignores_cover_art_as_video():
    cover = {"index": 1, "codec_type": "video", "disposition": {"attached_pic": 1}}

    with pytest.raises(InvalidVideoError):
        parse_probe(probe_json([AUDIO | {"index": 0}, cover]))


def test_parse_probe_rejects_output_that_is_not_json():
    with pytest.raises(InvalidVideoError):
        parse_probe("not json")


# --- messages and construction ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "words"),
    [(780, "13 minutes"), (60, "1 minute"), (90, "1 minute 30 seconds"), (1, "1 second"), (45, "45 seconds")],
)
def test_duration_words_name_the_limit_for_people(seconds, words):
    assert duration_words(seconds) == words


def test_from_settings_takes_every_knob_from_settings():
    settings = Settings(
        ffmpeg_path="/opt/bin/ffmpeg",
        ffprobe_path="/opt/bin/ffprobe",
        transcode_timeout_seconds=600,
        transcode_preset="faster",
        transcode_crf=26,
    )

    transcoder = FFmpegTranscoder.from_settings(settings)

    assert transcoder.ffmpeg_path == "/opt/bin/ffmpeg"
    assert transcoder.ffprobe_path == "/opt/bin/ffprobe"
    assert transcoder.timeout_seconds == 600
    assert (transcoder.preset, transcoder.crf) == ("faster", 26)  # the sizes are each job's preset's
