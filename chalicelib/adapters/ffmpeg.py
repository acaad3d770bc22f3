"""FFmpeg adapter: turns an uploaded video, read straight from its presigned URL, into a web MP4.

What it produces, and why:

- H.264 (libx264, High profile, yuv420p) and AAC-LC 128 kb/s stereo in MP4: the one combination
  every browser plays. An input without audio gives an output without audio.
- Size: "720p" bounds the SHORT side. A landscape 1920x1080 becomes 1280x720 and a portrait
  1080x1920 becomes 720x1280, so a phone video keeps the same detail as a landscape one
  (bounding the height alone would shrink it to 406x720). Never upscaled, aspect ratio kept,
  both sides even (yuv420p needs it). The rule is a scale-filter expression, not arithmetic on
  the probed size, because ffmpeg rotates phone videos (display-matrix rotation) before the
  filter runs: only the filter sees the size as displayed.
- `-movflags +faststart`, written to a local file the worker uploads afterwards: the index
  (moov) sits before the media data, so a browser starts playing a progressive download at
  once, and the output is a plain MP4 every player and ffprobe reads. Fragmented MP4 would let
  ffmpeg stream to a pipe, but this runtime has /tmp (up to 10 GB) and the upload wants a sized
  file anyway; faststart costs one extra pass over a file already on disk.
- Input safety: only video container demuxers are allowed (`-format_whitelist`) and only the
  protocols the input needs (`-protocol_whitelist`), so an "upload" that is in fact an HLS or
  concat playlist cannot make ffmpeg read local files or other URLs.
- The video is never read into Python memory: ffmpeg reads the URL itself (an HTTP URL is
  seekable through Range requests, so a moov-at-the-end upload works).

Errors are the ProcessingError family: `.message` is for the person, `.detail` (the stderr
tail, the presigned URL's query string removed) is for the operator.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from chalicelib.errors import (
    DownloadError,
    FFmpegNotFoundError,
    InvalidVideoError,
    ProcessingError,
    TranscodeFailedError,
    TranscodeTimeoutError,
)
from chalicelib.processing.ports import TranscodeResult

if TYPE_CHECKING:
    from chalicelib.config import Settings

STDERR_TAIL_CHARS = 4000
PROBE_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.2
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


# --- pure helpers: no process, unit-tested -------------------------------------------------------
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
        ffmpeg_path,
        "-nostdin",
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-nostats",
        *input_options(input_url),
        "-i",
        input_url,
        "-map",
        f"0:{video_stream}",
        *audio,
        "-sn",
        "-dn",
        # Uploads may carry GPS position and device names: none of it goes into the output.
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
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
    )


def _is_moving_picture(stream: dict[str, Any]) -> bool:
    # Cover art inside an audio file is a "video" stream of one still picture.
    return stream.get("codec_type") == "video" and not (stream.get("disposition") or {}).get("attached_pic")


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


# --- process plumbing --------------------------------------------------------------------------
class _StderrTail(threading.Thread):
    """Drains a pipe so ffmpeg never blocks on it, keeping only the last characters."""

    def __init__(self, pipe: IO[bytes], limit: int = STDERR_TAIL_CHARS) -> None:
        super().__init__(daemon=True)
        self._pipe, self._limit = pipe, limit
        self._tail = b""

    def run(self) -> None:
        while chunk := os.read(self._pipe.fileno(), 65536):
            self._tail = (self._tail + chunk)[-self._limit :]

    def text(self) -> str:
        return self._tail.decode("utf-8", errors="replace").strip()


class _ProgressReader(threading.Thread):
    """Reads `-progress pipe:1` lines; keeps the highest fraction seen. Never calls back."""

    def __init__(self, pipe: IO[bytes], duration_seconds: float | None) -> None:
        super().__init__(daemon=True)
        self._pipe, self._duration = pipe, duration_seconds
        self.fraction = 0.0

    def run(self) -> None:
        for raw in self._pipe:
            value = progress_fraction(raw.decode("ascii", errors="replace"), self._duration)
            if value is not None and value > self.fraction:
                self.fraction = value


def _spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(list(args), stdin=subprocess.DEVNULL, **kwargs)
    except OSError as exc:  # missing, not executable, wrong architecture
        raise FFmpegNotFoundError(detail=f"{args[0]}: {exc}") from exc


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


# --- the adapter ---------------------------------------------------------------------------------
class FFmpegTranscoder:
    """The Transcoder port on the ffmpeg and ffprobe binaries (the Lambda layer's /opt/bin)."""

    def __init__(
        self,
        ffmpeg_path: str,
        ffprobe_path: str,
        timeout_seconds: float,
        max_height: int = 720,
        preset: str = "veryfast",
        crf: int = 23,
        *,
        progress_interval_seconds: float = 1.0,
        probe_timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self.ffmpeg_path = ffmpeg_path
        self.ffprobe_path = ffprobe_path
        self.timeout_seconds = timeout_seconds
        self.max_height = max_height
        self.preset = preset
        self.crf = crf
        self.progress_interval_seconds = progress_interval_seconds
        self.probe_timeout_seconds = probe_timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> FFmpegTranscoder:
        return cls(
            ffmpeg_path=settings.ffmpeg_path,
            ffprobe_path=settings.ffprobe_path,
            timeout_seconds=settings.transcode_timeout_seconds,
            max_height=settings.transcode_max_height,
            preset=settings.transcode_preset,
            crf=settings.transcode_crf,
        )

    def transcode(
        self,
        input_url: str,
        output_path: Path,
        on_progress: Callable[[float], None] | None = None,
    ) -> TranscodeResult:
        started = time.monotonic()
        deadline = started + self.timeout_seconds
        output_path = Path(output_path)
        throttle = ProgressThrottle(self.progress_interval_seconds)
        try:
            source = self.probe(input_url, timeout=min(self.probe_timeout_seconds, self.timeout_seconds))
            self._run_ffmpeg(input_url, output_path, source, deadline, on_progress, throttle)
            result = self.probe(str(output_path), timeout=self.probe_timeout_seconds)
            if on_progress is not None and throttle.last_value < 1.0:
                on_progress(1.0)  # the last report always says "done", however fast it went
        except BaseException:
            _remove(output_path)
            raise
        return TranscodeResult(
            width=result.width,
            height=result.height,
            duration_seconds=result.duration_seconds or 0.0,
            elapsed_seconds=time.monotonic() - started,
        )

    def probe(self, input_url: str, timeout: float) -> ProbeInfo:
        """ffprobe the input. Raises DownloadError, InvalidVideoError or FFmpegNotFoundError."""
        args = build_probe_args(self.ffprobe_path, input_url)
        proc = _spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            error = DownloadError if is_remote(input_url) else InvalidVideoError
            raise error(detail=f"ffprobe gave no answer within {timeout:.0f} s") from exc
        detail = redact(stderr.decode("utf-8", errors="replace").strip()[-STDERR_TAIL_CHARS:], input_url)
        if proc.returncode != 0:
            error_class = classify_stderr(detail)
            if error_class is TranscodeFailedError:  # ffprobe failing on its own is unreadable data
                error_class = InvalidVideoError
            raise error_class(detail=f"ffprobe exit {proc.returncode}: {detail}")
        return parse_probe(stdout.decode("utf-8", errors="replace"))

    def _run_ffmpeg(
        self,
        input_url: str,
        output_path: Path,
        source: ProbeInfo,
        deadline: float,
        on_progress: Callable[[float], None] | None,
        throttle: ProgressThrottle,
    ) -> None:
        args = build_ffmpeg_args(
            self.ffmpeg_path,
            input_url,
            output_path,
            video_stream=source.video_stream,
            audio_stream=source.audio_stream,
            max_height=self.max_height,
            preset=self.preset,
            crf=self.crf,
        )
        # A process group of its own: a timeout kills ffmpeg and anything it started.
        proc = _spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        assert proc.stdout is not None and proc.stderr is not None
        progress = _ProgressReader(proc.stdout, source.duration_seconds)
        stderr = _StderrTail(proc.stderr)
        progress.start()
        stderr.start()
        try:
            returncode = self._wait(proc, progress, deadline, on_progress, throttle)
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            progress.join(timeout=5)
            stderr.join(timeout=5)
            proc.stdout.close()
            proc.stderr.close()
        if returncode != 0:
            detail = redact(stderr.text(), input_url)
            raise classify_stderr(detail)(detail=f"ffmpeg exit {returncode}: {detail}")

    def _wait(
        self,
        proc: subprocess.Popen[bytes],
        progress: _ProgressReader,
        deadline: float,
        on_progress: Callable[[float], None] | None,
        throttle: ProgressThrottle,
    ) -> int:
        """Wait for ffmpeg, reporting progress from this thread (a slow callback never stalls
        the pipe reader). Raises TranscodeTimeoutError when the wall clock passes the limit."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TranscodeTimeoutError(
                    f"Processing took longer than {duration_words(self.timeout_seconds)} and was stopped",
                    detail=f"ffmpeg killed after {self.timeout_seconds} s at {progress.fraction:.0%}",
                )
            try:
                return proc.wait(timeout=min(POLL_SECONDS, remaining))
            except subprocess.TimeoutExpired:
                pass
            if on_progress is not None and throttle.offer(progress.fraction, time.monotonic()):
                on_progress(progress.fraction)
