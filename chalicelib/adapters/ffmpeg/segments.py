"""The segmented path's command lines and parsers: frame listing, segment, audio, stitch. Pure.

How the pieces fit (measured choices are in the README, "Long videos"):

- Each segment task reads its own time range straight from the source's presigned URL
  (`-ss` before `-i`: ffmpeg seeks with HTTP Range requests to the keyframe at or before the
  cut, decodes from there and drops what precedes the cut). No separate split pass.
- Every segment is encoded with the job's scale, preset and CRF, starts with an IDR frame (every
  encode does), and libx264's GOPs are closed (its default), so the segments' H.264 streams join
  with stream copy.
- Cut times are frame presentation times. `-ss` and `-t` are given a hair (CUT_EPSILON) before
  the cut: ffprobe prints times rounded to the microsecond, and a frame whose printed time is a
  rounding above its real one would otherwise fall out of both segments.
- Audio is handled once for the whole file (no audio seams): stream-copied when the source's is
  already AAC-LC mono or stereo (what the output carries anyway; an hour's AAC encode is minutes
  of CPU in one task), else encoded as single pass encodes it. The stitch joins the segments with
  the concat demuxer, each entry given its planned duration so timestamps follow the source even
  with a variable frame rate, muxes the audio and writes `+faststart`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chalicelib.adapters.ffmpeg.commands import (
    audio_only_args,
    base_args,
    input_options,
    video_encode_options,
)
from chalicelib.errors import InvalidVideoError

CUT_EPSILON = 0.0005  # far below any frame interval (240 fps is 4.2 ms)
CONCAT_PROTOCOLS = "file,http,https,tls,tcp"


@dataclass(frozen=True)
class FrameList:
    """A source's video frames, seconds from the start of the file (where `-ss` counts from)."""

    frame_times: tuple[float, ...]
    keyframe_times: tuple[float, ...]


def build_frames_args(ffprobe_path: str, input_url: str, video_stream: int) -> list[str]:
    """List every video packet's time and flags (demuxing only, no decoding) and the start time."""
    return [
        ffprobe_path,
        "-hide_banner",
        "-v",
        "error",
        *input_options(input_url),
        "-select_streams",
        str(video_stream),
        "-show_entries",
        "packet=pts_time,flags:format=start_time",
        "-print_format",
        "compact",
        input_url,
    ]


def parse_frames(output: str) -> FrameList:
    """Read build_frames_args' output. Raises InvalidVideoError when no frame has a time."""
    start, frames, keys = 0.0, [], []
    for line in output.splitlines():
        fields = dict(part.partition("=")[::2] for part in line.strip().split("|")[1:])
        if line.startswith("format|"):
            start = _seconds(fields.get("start_time")) or 0.0
        elif line.startswith("packet|") and (pts := _seconds(fields.get("pts_time"))) is not None:
            frames.append(pts)
            if "K" in fields.get("flags", ""):
                keys.append(pts)
    if not frames:
        raise InvalidVideoError(detail="ffprobe listed no timed video packet")
    frame_times = tuple(sorted(round(t - start, 6) for t in frames))
    key_times = tuple(sorted(round(t - start, 6) for t in keys))
    return FrameList(frame_times=frame_times, keyframe_times=key_times)


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None or value == "N/A" else float(value)
    except ValueError:
        return None


def build_segment_args(
    ffmpeg_path: str,
    input_url: str,
    output_path: Path | str,
    *,
    start: float,
    duration: float,
    video_stream: int = 0,
    max_height: int = 720,
    preset: str = "veryfast",
    crf: int = 23,
) -> list[str]:
    """Encode source time [start, start + duration) of the video alone, as single-pass would."""
    seek = max(start - CUT_EPSILON, 0.0)
    return [
        *base_args(ffmpeg_path),
        *input_options(input_url),
        "-ss",
        f"{seek:.6f}",
        "-i",
        input_url,
        "-t",
        f"{start + duration - CUT_EPSILON - seek:.6f}",
        "-map",
        f"0:{video_stream}",
        "-an",
        *video_encode_options(max_height, preset, crf),
        "-f",
        "mp4",
        str(output_path),
    ]


def audio_copyable(codec: str | None, profile: str | None, channels: int | None) -> bool:
    """Whether the source's audio can go into the output as it is (ffprobe's codec_name,
    profile and channels): AAC-LC, mono or stereo, what MP4 players all decode. HE-AAC, 5.1
    and every other codec are encoded (to AAC-LC stereo, as single pass does)."""
    return codec == "aac" and profile == "LC" and channels in (1, 2)


def build_audio_args(
    ffmpeg_path: str, input_url: str, output_path: Path | str, audio_stream: int, *, copy: bool = False
) -> list[str]:
    """The whole file's audio, once: stream-copied (copy) or encoded as single-pass encodes it."""
    return [*audio_only_args(ffmpeg_path, input_url, audio_stream, copy=copy), "-f", "mp4", str(output_path)]


def concat_list(entries: Sequence[tuple[str, float]]) -> str:
    """The concat demuxer's script: each segment (path or URL) with its planned duration."""
    lines = ["ffconcat version 1.0"]
    for location, duration in entries:
        quoted = location.replace("'", "'\\''")
        lines += [f"file '{quoted}'", f"duration {duration:.6f}"]
    return "\n".join(lines) + "\n"


def build_stitch_args(
    ffmpeg_path: str, list_path: Path | str, audio_url: str | None, output_path: Path | str
) -> list[str]:
    """Join the segments (stream copy), mux the audio, index first (+faststart)."""
    audio_input = [*input_options(audio_url), "-i", audio_url] if audio_url is not None else []
    audio_map = ["-map", "1:a:0"] if audio_url is not None else []
    return [
        *base_args(ffmpeg_path),
        "-f",
        "concat",
        "-safe",
        "0",
        "-protocol_whitelist",
        CONCAT_PROTOCOLS,
        "-i",
        str(list_path),
        *audio_input,
        "-map",
        "0:v:0",
        *audio_map,
        "-c",
        "copy",
        "-map_metadata",
        "-1",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(output_path),
    ]
