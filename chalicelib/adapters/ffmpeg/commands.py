"""FFmpeg's command lines and what its output means: pure functions, no process, unit-tested."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chalicelib.errors import DownloadError, InvalidVideoError, ProcessingError, TranscodeFailedError

STDERR_TAIL_CHARS = 4000
PROBE_TIMEOUT_SECONDS = 60.0
AUDIO_BITRATE = "128k"

# Demuxers a video upload may use. Anything else (playlists, images, text) is not a video.
VIDEO_FORMATS = (
    "mov",  # mov,mp4,m4a,3gp,3g2,mj2
    "matroska",  # matroska,webm
    "avi",
    "flv",
    "mpegts",
    "mpeg",
    "asf",
    "ogg",
    "mxf",
    "gif",
    "h264",
    "hevc",
    "m4v",
    "ivf",
    "obu",
    "dv",
    "nut",
    "rm",
)
HTTP_PROTOCOLS = "http,https,tls,tcp"
# A dropped connection mid-file is retried; a stalled read fails instead of waiting for the
# wall-clock limit. Connect errors and HTTP statuses are not retried: they will not heal.
HTTP_INPUT_OPTIONS = ("-reconnect", "1", "-reconnect_delay_max", "10", "-rw_timeout", "30000000")

DOWNLOAD_MARKERS = (
    "server returned",
    "connection refused",
    "connection timed out",
    "connection reset",
    "failed to resolve hostname",
    "name or service not known",
    "temporary failure in name resolution",
    "network is unreachable",
    "no route to host",
    "stream ends prematurely",
    "error in the pull function",
    "no such file or directory",
)
INVALID_VIDEO_MARKERS = (
    "invalid data found when processing input",
    "moov atom not found",
    "could not find codec parameters",
    "format not on whitelist",
    "does not contain any stream",
    "ebml header parsing failed",
    "decoder (codec",
)


def classify_stderr(stderr: str) -> type[ProcessingError]:
    """The error a failed ffmpeg/ffprobe run stands for, judged from its stderr.

    Download problems are checked first: a 404 or a refused connection is often followed by a
    generic "Invalid data" line that would otherwise hide it.
    """
    text = stderr.lower()
    if any(marker in text for marker in DOWNLOAD_MARKERS):
        return DownloadError
    if any(marker in text for marker in INVALID_VIDEO_MARKERS):
        return InvalidVideoError
    return TranscodeFailedError


def is_remote(input_url: str) -> bool:
    return input_url.lower().startswith(("http://", "https://"))


def input_options(input_url: str) -> list[str]:
    """Options placed before `-i`: the demuxer and protocol whitelists, HTTP resilience."""
    options = ["-format_whitelist", ",".join(VIDEO_FORMATS)]
    if is_remote(input_url):
        return [*options, "-protocol_whitelist", HTTP_PROTOCOLS, *HTTP_INPUT_OPTIONS]
    return [*options, "-protocol_whitelist", "file"]


def scale_filter(max_side: int) -> str:
    """Bound the short side at max_side, never upscale, keep the aspect ratio, even sizes.

    Landscape (and square): height = min(ih, max_side) rounded down to even, width follows (-2).
    Portrait: width = min(iw, max_side) rounded down to even, height follows.
    """
    bounded_w = f"trunc(min(iw,{max_side})/2)*2"
    bounded_h = f"trunc(min(ih,{max_side})/2)*2"
    return f"scale=w='if(gte(iw,ih),-2,{bounded_w})':h='if(gte(iw,ih),{bounded_h},-2)'"


def build_probe_args(ffprobe_path: str, input_url: str) -> list[str]:
    return [
        ffprobe_path,
        "-hide_banner",
        "-v",
        "error",
        *input_options(input_url),
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        input_url,
    ]


def base_args(ffmpeg_path: str) -> list[str]:
    """Every ffmpeg run: no stdin, overwrite, errors only, machine-readable progress on stdout."""
    return [
        ffmpeg_path,
        "-nostdin",
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-nostats",
    ]


def strip_metadata() -> list[str]:
    """Uploads may carry GPS position and device names: none of it goes into an output."""
    return ["-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]


def audio_codec(copy: bool) -> list[str]:
    """The soundtrack: stream-copied, or encoded to AAC-LC stereo (what every output carries)."""
    return ["-c:a", "copy"] if copy else ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ac", "2"]


def audio_only_args(ffmpeg_path: str, input_url: str, audio_stream: int, *, copy: bool) -> list[str]:
    """The whole file's audio stream alone, copied or encoded; the caller adds the output."""
    return [
        *base_args(ffmpeg_path),
        *input_options(input_url),
        "-i",
        input_url,
        "-map",
        f"0:{audio_stream}",
        "-vn",
        *audio_codec(copy),
        *strip_metadata(),
    ]


def video_encode_options(max_height: int, preset: str, crf: int) -> list[str]:
    """The output's video settings, shared by the single pass and every segment (segments must
    encode exactly as the single pass does, or their joins would show)."""
    return [
        "-sn",
        "-dn",
        # Uploads may carry GPS position and device names: none of it goes into the output.
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        # Frames keep their source times (a variable frame rate stays variable, no duplicated
        # frames): both paths, single pass and segments, count the same frames.
        "-fps_mode",
        "vfr",
        "-vf",
        scale_filter(max_height),
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(crf),
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
    ]


def build_ffmpeg_args(
    ffmpeg_path: str,
    input_url: str,
    output_path: Path | str,
    *,
    video_stream: int = 0,
    audio_stream: int | None = None,
    max_height: int = 720,
    preset: str = "veryfast",
    crf: int = 23,
) -> list[str]:
    """The full ffmpeg command line. Stream indexes are absolute, as ffprobe reports them."""
    audio = (
        ["-map", f"0:{audio_stream}", "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ac", "2"]
        if audio_stream is not None
        else ["-an"]
    )
    return [
        *base_args(ffmpeg_path),
        *input_options(input_url),
        "-i",
        input_url,
        "-map",
        f"0:{video_stream}",
        *audio,
        *video_encode_options(max_height, preset, crf),
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(output_path),
    ]


def progress_seconds(line: str) -> float | None:
    """Seconds of output written, from one `-progress` line; None for any other line.

    `out_time_ms` is in microseconds too (a long-standing ffmpeg naming quirk); both are
    "N/A" before the first frame.
    """
    key, sep, value = line.strip().partition("=")
    if not sep or key not in ("out_time_us", "out_time_ms"):
        return None
    try:
        micros = int(value)
    except ValueError:
        return None
    return max(micros, 0) / 1_000_000


def progress_fraction(line: str, duration_seconds: float | None) -> float | None:
    """The share (0..1) of the input done, from one `-progress` line; None when unknown."""
    seconds = progress_seconds(line)
    if seconds is None or not duration_seconds or duration_seconds <= 0:
        return None
    return min(seconds / duration_seconds, 1.0)


class ProgressThrottle:
    """Lets a progress value through at most once per interval, and only when it grew."""

    def __init__(self, interval_seconds: float = 1.0) -> None:
        self.interval = interval_seconds
        self.last_value = 0.0
        self.last_at = -math.inf

    def offer(self, value: float, now: float) -> bool:
        if value <= self.last_value or now - self.last_at < self.interval:
            return False
        self.last_value, self.last_at = value, now
        return True


@dataclass(frozen=True)
class ProbeInfo:
    format_name: str
    duration_seconds: float | None
    video_stream: int
    audio_stream: int | None
    width: int
    height: int
    # The first audio stream's codec, profile and channels: whether the segmented path may copy it.
    audio_codec: str | None = None
    audio_profile: str | None = None
    audio_channels: int | None = None
    rotation: int = 0  # the display matrix's rotation in degrees (a phone's portrait video: ±90)
    color_transfer: str | None = None  # smpte2084 (PQ) or arib-std-b67 (HLG): HDR
    level: int | None = None  # H.264/HEVC level_idc (an output's CODECS entry)
    start_seconds: float = 0.0  # the file's start time (what input `-ss` counts from)
    video_start_seconds: float = 0.0  # the video stream's first presentation time
    # The first audio stream's timing: whether its timestamps count samples (audio chunks).
    audio_sample_rate: int | None = None
    audio_time_base: Fraction | None = None
    audio_start_pts: int = 0

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown (ffmpeg rotates before any filter runs)."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height

    @property
    def short_side(self) -> int:
        return min(self.display_size)

    @property
    def hdr(self) -> bool:
        return self.color_transfer in ("smpte2084", "arib-std-b67")

    @property
    def is_mp4(self) -> bool:
        """An MP4 or MOV (ffmpeg's `mov` demuxer): its frame index can be read from `moov`."""
        return "mp4" in self.format_name.split(",") or "mov" in self.format_name.split(",")


def parse_probe(probe_json: str) -> ProbeInfo:
    """Read ffprobe's JSON. Raises InvalidVideoError when there is no real video stream."""
    try:
        data: dict[str, Any] = json.loads(probe_json or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidVideoError(detail=f"ffprobe printed no JSON: {exc}") from exc
    streams: list[dict[str, Any]] = data.get("streams") or []
    fmt: dict[str, Any] = data.get("format") or {}
    video = next((s for s in streams if _is_moving_picture(s)), None)
    if video is None:
        raise InvalidVideoError(detail=f"no video stream (format {fmt.get('format_name')!r})")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    return ProbeInfo(
        format_name=str(fmt.get("format_name", "")),
        duration_seconds=_positive_float(fmt.get("duration")) or _positive_float(video.get("duration")),
        video_stream=int(video.get("index", 0)),
        audio_stream=int(audio["index"]) if audio is not None else None,
        width=int(video.get("width") or 0),
        height=int(video.get("height") or 0),
        audio_codec=_text((audio or {}).get("codec_name")),
        audio_profile=_text((audio or {}).get("profile")),
        audio_channels=int((audio or {}).get("channels") or 0) or None,
        rotation=_rotation(video),
        color_transfer=_text(video.get("color_transfer")),
        level=int(video["level"]) if isinstance(video.get("level"), int) and video["level"] > 0 else None,
        start_seconds=_float(fmt.get("start_time")),
        video_start_seconds=_float(video.get("start_time")),
        audio_sample_rate=int((audio or {}).get("sample_rate") or 0) or None,
        audio_time_base=_fraction((audio or {}).get("time_base")),
        audio_start_pts=int((audio or {}).get("start_pts") or 0),
    )


def _rotation(stream: dict[str, Any]) -> int:
    """Degrees the display matrix (or an old `rotate` tag) turns the picture."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            try:
                return int(float(side["rotation"]))
            except (TypeError, ValueError):
                return 0
    try:
        return int((stream.get("tags") or {}).get("rotate", 0))
    except (TypeError, ValueError):
        return 0


def _fraction(value: object) -> Fraction | None:
    try:
        return Fraction(str(value)) if value else None
    except (ValueError, ZeroDivisionError):
        return None


def _text(value: object) -> str | None:
    return str(value) if value else None


def _is_moving_picture(stream: dict[str, Any]) -> bool:
    # Cover art inside an audio file is a "video" stream of one still picture.
    return stream.get("codec_type") == "video" and not (stream.get("disposition") or {}).get("attached_pic")


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _positive_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 and math.isfinite(number) else None


def redact(text: str, input_url: str) -> str:
    """Remove a presigned URL's query string (its signature) from text meant for operators."""
    if not is_remote(input_url):
        return text
    parts = urlsplit(input_url)
    if not parts.query:
        return text
    return text.replace(input_url, urlunsplit(parts._replace(query="<redacted>")))


def duration_words(seconds: float) -> str:
    """'13 minutes', '1 minute 30 seconds', '45 seconds': how a limit reads in a message."""
    total = max(int(round(seconds)), 1)
    minutes, secs = divmod(total, 60)
    words = []
    if minutes:
        words.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    if secs:
        words.append(f"{secs} second{'s' if secs != 1 else ''}")
    return " ".join(words)
