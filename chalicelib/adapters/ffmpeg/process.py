"""Running ffprobe and ffmpeg: the Transcoder port, process groups, pipes, deadlines."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from chalicelib.adapters.ffmpeg import mp4index
from chalicelib.adapters.ffmpeg import render as rendering
from chalicelib.adapters.ffmpeg.commands import (
    PROBE_TIMEOUT_SECONDS,
    STDERR_TAIL_CHARS,
    ProbeInfo,
    ProgressThrottle,
    build_ffmpeg_args,
    build_probe_args,
    classify_stderr,
    duration_words,
    is_remote,
    parse_probe,
    progress_fraction,
    redact,
)
from chalicelib.domain import DEFAULT_PRESET, Preset
from chalicelib.errors import (
    DownloadError,
    FFmpegCrashedError,
    FFmpegNotFoundError,
    InvalidVideoError,
    StoppedError,
    TranscodeFailedError,
    TranscodeTimeoutError,
)
from chalicelib.outputs import presets
from chalicelib.outputs.hls import h264_codecs, parse_media_playlist
from chalicelib.processing.ports import Rendered, RenditionFiles, ThumbSheet, TranscodeResult

if TYPE_CHECKING:
    from chalicelib.config import Settings

POLL_SECONDS = 0.2


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


def _playlist_seconds(playlist: Path) -> float:
    return sum(duration for _, duration in parse_media_playlist(playlist.read_text()))


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


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
            preset=settings.transcode_preset,
            crf=settings.transcode_crf,
        )

    def transcode(
        self,
        input_url: str,
        output_path: Path,
        on_progress: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> TranscodeResult:
        started = time.monotonic()
        deadline = started + self.timeout_seconds
        output_path = Path(output_path)
        throttle = ProgressThrottle(self.progress_interval_seconds)
        try:
            source = self._probe_within(input_url, deadline)
            self._run_ffmpeg(input_url, output_path, source, deadline, on_progress, throttle, stop)
            # What was written, from its own headers (no second ffprobe), else ffprobe's view
            facts = mp4index.movie_facts(str(output_path)) or self._probed(output_path)
            if on_progress is not None and throttle.last_value < 1.0:
                on_progress(1.0)  # the last report always says "done", however fast it went
        except BaseException:
            _remove(output_path)
            raise
        width, height, duration = facts
        return TranscodeResult(width, height, duration, elapsed_seconds=time.monotonic() - started)

    def _probed(self, output_path: Path) -> tuple[int, int, float]:
        result = self.probe(str(output_path), timeout=self.probe_timeout_seconds)
        return result.width, result.height, result.duration_seconds or 0.0

    def _probe_within(self, input_url: str, deadline: float) -> ProbeInfo:
        """The input's probe, bounded by the transcode's own deadline too: a probe that is cut off
        by that deadline (not by its own limit) is the transcode running out of time, whatever
        the file is."""
        if self.probe_timeout_seconds < self.timeout_seconds:
            return self.probe(input_url, timeout=self.probe_timeout_seconds)
        try:
            return self.probe(input_url, timeout=self.timeout_seconds)
        except (DownloadError, InvalidVideoError) as exc:
            if time.monotonic() < deadline:
                raise
            raise TranscodeTimeoutError(
                f"Processing took longer than {duration_words(self.timeout_seconds)} and was stopped",
                detail=f"ffprobe gave no answer within {self.timeout_seconds} s",
            ) from exc

    def render(
        self,
        input_url: str,
        out_dir: Path,
        preset: Preset = DEFAULT_PRESET,
        on_progress: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Rendered:
        """The preset's outputs, the poster and the thumbnails in `out_dir`, from one ffmpeg run
        (chalicelib.adapters.ffmpeg.render)."""
        started = time.monotonic()
        deadline = started + self.timeout_seconds
        out_dir = Path(out_dir)
        throttle = ProgressThrottle(self.progress_interval_seconds)
        source = self._probe_within(input_url, deadline)
        spec = self.render_spec(source, preset)
        for directory in rendering.output_dirs(out_dir, spec, source.audio_stream is not None):
            directory.mkdir(parents=True, exist_ok=True)
        args = rendering.render_args(self.ffmpeg_path, input_url, out_dir, spec)
        self.run(args, input_url, source.duration_seconds, deadline, on_progress, throttle, stop)
        rendered = self.collect(out_dir, spec, preset, time.monotonic() - started)
        if on_progress is not None and throttle.last_value < 1.0:
            on_progress(1.0)
        return rendered

    def render_spec(self, source: ProbeInfo, preset: Preset = DEFAULT_PRESET) -> rendering.RenderSpec:
        """What one run renders of `source` for `preset`: its ladder, the poster and the thumbnails."""
        rungs = presets.ladder(preset, source.short_side)
        return rendering.RenderSpec(
            video_stream=source.video_stream,
            audio_stream=source.audio_stream,
            rungs=rungs,
            streaming=presets.spec(preset).streaming,
            x264_preset=self.preset,
            crf=self.crf,
            hdr=source.hdr,
            audio_copy=False,
            grid=rendering.thumb_grid(source.duration_seconds) if source.duration_seconds else None,
            poster=bool(source.duration_seconds),
            names=tuple(presets.rendition_name(r, source.short_side) for r in rungs),
        )

    def collect(self, out_dir: Path, spec: rendering.RenderSpec, preset: Preset, elapsed: float) -> Rendered:
        """What a run wrote, probed: the output's size and length, each rendition's CODECS."""
        poster = out_dir / rendering.POSTER_FILE
        sheet = out_dir / rendering.THUMBS_FILE
        thumbs = None
        if spec.grid is not None and spec.grid.count > 0 and sheet.exists():
            grid = spec.grid
            thumbs = ThumbSheet(sheet, grid.interval, grid.first, grid.count, grid.columns)
        common = {
            "preset": preset,
            "elapsed_seconds": elapsed,
            "poster": poster if poster.exists() else None,
            "thumbs": thumbs,
        }
        if not spec.streaming:
            video = out_dir / rendering.VIDEO_FILE
            # What was written, from its own index (no second ffprobe), else ffprobe's view
            width, height, duration = mp4index.movie_facts(str(video)) or self._probed(video)
            return Rendered(
                width=width,
                height=height,
                duration_seconds=duration,
                video=video,
                **common,  # type: ignore[arg-type]
            )
        renditions = tuple(self._rendition(out_dir / rendering.HLS_DIR / name) for name in spec.names)
        audio_dir = out_dir / rendering.HLS_DIR / rendering.AUDIO_RENDITION
        audio = None
        if (audio_dir / rendering.PLAYLIST_FILE).exists():
            audio = RenditionFiles(
                rendering.AUDIO_RENDITION, audio_dir, audio_dir / rendering.PLAYLIST_FILE, 0, 0, ""
            )
        top = renditions[0]
        return Rendered(
            width=top.width,
            height=top.height,
            duration_seconds=_playlist_seconds(top.playlist),
            renditions=renditions,
            audio=audio,
            **common,  # type: ignore[arg-type]
        )

    def _rendition(self, directory: Path) -> RenditionFiles:
        playlist = directory / rendering.PLAYLIST_FILE
        first = next(iter(sorted(directory.glob("*.ts"))), None)
        if first is None:
            raise TranscodeFailedError(detail=f"no segment written in {directory.name}")
        info = self.probe(str(first), timeout=self.probe_timeout_seconds)
        return RenditionFiles(
            name=directory.name,
            directory=directory,
            playlist=playlist,
            width=info.width,
            height=info.height,
            codecs=h264_codecs(info.level or 40),
        )

    def probe(self, input_url: str, timeout: float) -> ProbeInfo:
        """ffprobe the input. Raises DownloadError, InvalidVideoError or FFmpegNotFoundError."""
        return parse_probe(self.run_probe(build_probe_args(self.ffprobe_path, input_url), input_url, timeout))

    def run_probe(self, args: list[str], input_url: str, timeout: float) -> str:
        """Run one ffprobe command line; its stdout. Errors as for probe()."""
        proc = _spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            error = DownloadError if is_remote(input_url) else InvalidVideoError
            raise error(detail=f"ffprobe gave no answer within {timeout:.0f} s") from exc
        detail = redact(stderr.decode("utf-8", errors="replace").strip()[-STDERR_TAIL_CHARS:], input_url)
        if proc.returncode < 0:  # a signal (killed, out of memory): the machine's fault, not the file's
            raise FFmpegCrashedError(detail=f"ffprobe killed by signal {-proc.returncode}: {detail}")
        if proc.returncode != 0:
            error_class = classify_stderr(detail)
            if error_class is TranscodeFailedError:  # ffprobe failing on its own is unreadable data
                error_class = InvalidVideoError
            raise error_class(detail=f"ffprobe exit {proc.returncode}: {detail}")
        return stdout.decode("utf-8", errors="replace")

    def _run_ffmpeg(
        self,
        input_url: str,
        output_path: Path,
        source: ProbeInfo,
        deadline: float,
        on_progress: Callable[[float], None] | None,
        throttle: ProgressThrottle,
        stop: threading.Event | None,
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
        self.run(args, input_url, source.duration_seconds, deadline, on_progress, throttle, stop)

    def run(
        self,
        args: list[str],
        input_url: str,
        duration_seconds: float | None,
        deadline: float,
        on_progress: Callable[[float], None] | None = None,
        throttle: ProgressThrottle | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Run one ffmpeg command line that writes `-progress pipe:1`, until it ends, the
        deadline passes or `stop` is set (its process group killed within a poll).

        Raises the ProcessingError its stderr stands for, TranscodeTimeoutError, or StoppedError.
        """
        throttle = throttle or ProgressThrottle(self.progress_interval_seconds)
        # A process group of its own: a timeout kills ffmpeg and anything it started.
        proc = _spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        assert proc.stdout is not None and proc.stderr is not None
        progress = _ProgressReader(proc.stdout, duration_seconds)
        stderr = _StderrTail(proc.stderr)
        progress.start()
        stderr.start()
        try:
            returncode = self._wait(proc, progress, deadline, on_progress, throttle, stop)
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            progress.join(timeout=5)
            stderr.join(timeout=5)
            proc.stdout.close()
            proc.stderr.close()
        if returncode < 0:  # a signal (killed, out of memory): the machine's fault, not the file's
            detail = redact(stderr.text(), input_url)
            raise FFmpegCrashedError(detail=f"ffmpeg killed by signal {-returncode}: {detail}")
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
        stop: threading.Event | None,
    ) -> int:
        """Wait for ffmpeg, reporting progress from this thread (a slow callback never stalls
        the pipe reader). Raises TranscodeTimeoutError when the wall clock passes the limit, and
        StoppedError when `stop` is set (the caller kills the process group)."""
        while True:
            if stop is not None and stop.is_set():
                raise StoppedError(f"ffmpeg stopped at {progress.fraction:.0%}")
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
