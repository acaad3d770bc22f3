"""The Segmenter port on ffmpeg: survey a source, encode one segment or the audio, stitch."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.adapters.ffmpeg import audio_chunks, mp4index
from chalicelib.adapters.ffmpeg import render as rendering
from chalicelib.adapters.ffmpeg.commands import PROBE_TIMEOUT_SECONDS, ProbeInfo, redact
from chalicelib.adapters.ffmpeg.process import FFmpegTranscoder, _remove
from chalicelib.adapters.ffmpeg.segments import (
    CUT_EPSILON,
    FrameList,
    audio_copyable,
    build_audio_args,
    build_frames_args,
    build_stitch_args,
    concat_list,
    parse_frames,
)
from chalicelib.errors import InvalidVideoError, ProcessingError
from chalicelib.outputs import presets
from chalicelib.processing.audio_plan import Chunk
from chalicelib.processing.ports import Rendered, SegmentWork, SourceSurvey, TranscodeResult
from chalicelib.processing.segment_plan import Span

if TYPE_CHECKING:
    from chalicelib.config import Settings

# Listing every packet of a long remote file reads all of it (demuxing only): give it time.
SURVEY_TIMEOUT_SECONDS = 300.0


class FFmpegSegmenter:
    """Runs the segmented path's commands through an FFmpegTranscoder's process handling."""

    def __init__(
        self, ffmpeg: FFmpegTranscoder, survey_timeout_seconds: float = SURVEY_TIMEOUT_SECONDS
    ) -> None:
        self.ffmpeg = ffmpeg
        self.survey_timeout_seconds = survey_timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> FFmpegSegmenter:
        return cls(FFmpegTranscoder.from_settings(settings))

    def probe_duration(self, input_url: str) -> float | None:
        # An MP4/MOV says it in its index (no ffprobe: the single pass probes once, not twice)
        indexed = mp4index.duration(input_url)
        return indexed or self.ffmpeg.probe(input_url, timeout=PROBE_TIMEOUT_SECONDS).duration_seconds

    def survey(self, input_url: str) -> SourceSurvey:
        info = self.ffmpeg.probe(input_url, timeout=PROBE_TIMEOUT_SECONDS)
        if not info.duration_seconds:
            raise InvalidVideoError(detail="the source has no duration")
        frames = self.frames(input_url, info)
        return SourceSurvey(
            duration_seconds=info.duration_seconds,
            video_stream=info.video_stream,
            audio_stream=info.audio_stream,
            frame_times=frames.frame_times,
            keyframe_times=frames.keyframe_times,
            audio_copy=info.audio_stream is not None
            and audio_copyable(info.audio_codec, info.audio_profile, info.audio_channels),
            short_side=info.short_side,
            hdr=info.hdr,
            audio_chunks=audio_chunks.chunkable(info),
        )

    def frames(self, input_url: str, info: ProbeInfo) -> FrameList:
        """The video's frame and keyframe times: from an MP4/MOV's sample tables (a few ranged
        reads of `moov`), else by listing every packet (a read of the whole file)."""
        if info.is_mp4:
            indexed = mp4index.frame_list(
                input_url, info.video_stream, info.video_start_seconds, info.start_seconds
            )
            if indexed is not None:
                return FrameList(frame_times=indexed[0], keyframe_times=indexed[1])
        args = build_frames_args(self.ffmpeg.ffprobe_path, input_url, info.video_stream)
        return parse_frames(self.ffmpeg.run_probe(args, input_url, self.survey_timeout_seconds))

    def render_segment(
        self,
        input_url: str,
        span: Span,
        video_stream: int,
        out_dir: Path,
        work: SegmentWork,
        stop: threading.Event | None = None,
    ) -> Rendered:
        """Source time [start, end) of the video alone, as the single pass would encode it, with
        the thumbnails of the grid points in it (the first segment: the poster too).

        `-ss` before `-i`: ffmpeg seeks with HTTP Range requests to the keyframe at or before the
        cut and drops what precedes it. Every output is limited to the span's length."""
        ff = self.ffmpeg
        started = time.monotonic()
        seek = max(span.start - CUT_EPSILON, 0.0)
        length = span.start + span.duration - CUT_EPSILON - seek
        grid = rendering.thumb_grid(work.duration, span.start, span.end, offset=seek)
        spec = rendering.RenderSpec(
            video_stream=video_stream,
            audio_stream=None,
            rungs=work.rungs,
            streaming=presets.spec(work.preset).streaming,
            x264_preset=ff.preset,
            crf=ff.crf,
            hdr=work.hdr,
            grid=grid,
            poster=work.poster,
            # a segment's frames keep the source's times: its pieces line up with the others'
            ts_offset=rendering.TS_OFFSET + span.start,
            names=work.names,
        )
        out_dir = Path(out_dir)
        for directory in rendering.output_dirs(out_dir, spec, with_audio=False):
            directory.mkdir(parents=True, exist_ok=True)
        args = rendering.render_args(ff.ffmpeg_path, input_url, out_dir, spec, span=(seek, length))
        deadline = started + ff.timeout_seconds
        ff.run(args, input_url, span.duration, deadline, None, stop=stop)
        return ff.collect(out_dir, spec, work.preset, time.monotonic() - started)

    def encode_audio(
        self,
        input_url: str,
        audio_stream: int,
        output_path: Path,
        copy: bool = False,
        stop: threading.Event | None = None,
        streaming: bool = False,
    ) -> float:
        if streaming:
            (output_path / rendering.HLS_DIR / rendering.AUDIO_RENDITION).mkdir(parents=True, exist_ok=True)
            args = rendering.hls_audio_args(
                self.ffmpeg.ffmpeg_path, input_url, output_path, audio_stream, copy=copy
            )
        else:
            args = build_audio_args(self.ffmpeg.ffmpeg_path, input_url, output_path, audio_stream, copy=copy)
        return self._timed(args, input_url, None, output_path, None, stop)

    def encode_audio_chunk(
        self,
        input_url: str,
        audio_stream: int,
        chunk: Chunk,
        output_path: Path,
        stop: threading.Event | None = None,
    ) -> float:
        args = audio_chunks.build_chunk_args(
            self.ffmpeg.ffmpeg_path, input_url, output_path, audio_stream, chunk
        )
        return self._timed(args, input_url, None, output_path, None, stop)

    def join_audio(self, chunks: Sequence[Chunk], paths: Sequence[Path], output_path: Path) -> int:
        return audio_chunks.join_files(chunks, paths, output_path)

    def stitch(
        self,
        segments: Sequence[tuple[str, float]],
        audio_url: str | None,
        output_path: Path,
        stop: threading.Event | None = None,
    ) -> TranscodeResult:
        started = time.monotonic()
        with tempfile.NamedTemporaryFile("w", suffix=".ffconcat", dir=output_path.parent) as script:
            script.write(concat_list(segments))
            script.flush()
            args = build_stitch_args(self.ffmpeg.ffmpeg_path, script.name, audio_url, output_path)
            try:
                self._timed(args, audio_url or "", None, output_path, None, stop)
            except ProcessingError as error:  # the parts' presigned URLs stay out of the detail
                for location, _ in segments:
                    error.detail = redact(error.detail or "", location)
                raise
        result = self.ffmpeg.probe(str(output_path), timeout=PROBE_TIMEOUT_SECONDS)
        return TranscodeResult(
            width=result.width,
            height=result.height,
            duration_seconds=result.duration_seconds or 0.0,
            elapsed_seconds=time.monotonic() - started,
        )

    def _timed(
        self,
        args: list[str],
        input_url: str,
        duration: float | None,
        output_path: Path,
        on_progress: Callable[[float], None] | None,
        stop: threading.Event | None = None,
    ) -> float:
        started = time.monotonic()
        deadline = started + self.ffmpeg.timeout_seconds
        try:
            self.ffmpeg.run(args, input_url, duration, deadline, on_progress, stop=stop)
        except BaseException:
            _remove(output_path)
            raise
        return time.monotonic() - started
