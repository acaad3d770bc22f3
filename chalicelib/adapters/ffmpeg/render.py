"""The command lines that produce a preset's outputs, its poster and its thumbnails from ONE decode.

One ffmpeg run reads the source once. Its video is scaled to the largest rendition, tone-mapped
when it is HDR, then split: each rendition is an output of the same run (scaled down from the
largest), and so are the poster and the thumbnail sprite, from frames the run samples on a fixed
grid (one every `interval` seconds of the source). Nothing reads the input a second time.

- Poster: the `thumbnail` filter picks the most representative of the sampled frames (the one
  closest to their average colour histogram), so a fade from black or a black first second is
  not the poster.
- Thumbnails: the sampled frames, letterboxed into THUMB_W x THUMB_H cells of one JPEG grid
  (`tile`), indexed by a WebVTT file the worker writes (chalicelib.outputs.thumbnails).
- HDR (10-bit HLG or PQ, phones' default): linearised with zscale, tone-mapped with `mobius`
  (linear up to a knee, highlights compressed: measured closest to the SDR reference among the
  tonemap filter's curves that keep highlights), converted to BT.709 and tagged so. zscale and
  tonemap are in Debian's ffmpeg 5.1 (libzimg) and in the Lambda layer's static 6.0 build.
- HLS: MPEG-TS segments of about SEGMENT_SECONDS; keyframes forced every KEYFRAME_SECONDS in
  every rendition with scene-cut keyframes off, so all renditions cut at the same times; the bit
  rate capped per rendition. Timestamps are the source's plus TS_OFFSET (no automatic shifting),
  so separately encoded pieces (a long video's segments, its audio) line up exactly.

Pure functions; chalicelib.adapters.ffmpeg.process runs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from chalicelib.adapters.ffmpeg.commands import (
    audio_codec,
    audio_only_args,
    base_args,
    input_options,
    scale_filter,
    strip_metadata,
)
from chalicelib.outputs.presets import KEYFRAME_SECONDS, SEGMENT_SECONDS, Rung
from chalicelib.outputs.thumbnails import THUMB_H, THUMB_W, interval_for, points_between

TS_OFFSET = 10.0  # seconds added to every HLS timestamp (keeps B-frame decode times positive)
POSTER_BOUND = 720  # a poster larger than 720p is scaled down to it
TONEMAP = (
    "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
    "tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
)
SDR_TAGS = ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})  # PQ, HLG

POSTER_FILE = "poster.jpg"
THUMBS_FILE = "thumbs.jpg"
VIDEO_FILE = "video.mp4"
HLS_DIR = "hls"
AUDIO_RENDITION = "audio"
PLAYLIST_FILE = "index.m3u8"


@dataclass(frozen=True)
class ThumbGrid:
    """The sampled frames one run takes: grid points k = first .. first+count-1, each the first
    frame at or after k * interval seconds of the source. `offset` is where the run starts in the
    source (a segment's start), `end` where it stops."""

    interval: float
    first: int
    count: int
    offset: float = 0.0
    end: float | None = None
    columns: int = 10

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.count / self.columns))


@dataclass(frozen=True)
class RenderSpec:
    """What one run produces. `rungs` largest first; `streaming`: HLS outputs, else one MP4."""

    video_stream: int
    audio_stream: int | None
    rungs: tuple[Rung, ...]
    streaming: bool
    x264_preset: str = "veryfast"
    crf: int = 23
    hdr: bool = False
    audio_copy: bool = False  # the source's audio is AAC-LC mono/stereo: copied, not encoded
    grid: ThumbGrid | None = None  # the thumbnails (None: none)
    poster: bool = False  # the poster, from the grid's frames
    ts_offset: float = TS_OFFSET  # HLS: the timestamp of the run's first frame's source time 0
    names: tuple[str, ...] = ()  # the renditions' names (HLS directories), as the rungs

    def __post_init__(self) -> None:
        if len(self.names) != len(self.rungs):
            object.__setattr__(self, "names", tuple(r.name for r in self.rungs))


def select_grid(grid: ThumbGrid) -> str:
    """A `select` expression taking the first frame of each grid interval (source time)."""
    t = f"(t+{grid.offset:.6f})" if grid.offset else "t"
    i = f"{grid.interval:g}"
    first_in_bucket = (
        f"isnan(prev_selected_t)+gte(floor({t}/{i}),floor((prev_selected_t+{grid.offset:.6f})/{i})+1)"
    )
    bounds = [f"gte({t},{grid.first * grid.interval:.6f})"]
    if grid.end is not None:
        bounds.append(f"lt({t},{grid.end:.6f})")
    return "select='" + "*".join([*bounds, f"({first_in_bucket})"]) + "'"


def filter_graph(spec: RenderSpec) -> str:
    """The run's filtergraph: [v0]..[vN-1] the renditions, [poster], [thumbs]."""
    top = spec.rungs[0]
    head = f"[0:{spec.video_stream}]{scale_filter(top.bound)}"
    if spec.hdr:
        head += f",{TONEMAP}"
    sampled = spec.grid is not None and (spec.poster or spec.grid.count > 0)
    branches = [f"r{i}" for i in range(len(spec.rungs))] + (["g"] if sampled else [])
    parts = [f"{head},split={len(branches)}" + "".join(f"[{b}]" for b in branches)]
    parts.append("[r0]null[v0]")
    for i, rung in enumerate(spec.rungs[1:], start=1):
        parts.append(f"[r{i}]{scale_filter(rung.bound)}[v{i}]")
    if sampled:
        assert spec.grid is not None
        uses = (["p"] if spec.poster else []) + (["t"] if spec.grid.count > 0 else [])
        parts.append(f"[g]{select_grid(spec.grid)},split={len(uses)}" + "".join(f"[{u}]" for u in uses))
        if spec.poster:
            poster = f"[p]thumbnail=n={max(spec.grid.count, 2)}"
            if top.bound > POSTER_BOUND:
                poster += f",{scale_filter(POSTER_BOUND)}"
            parts.append(poster + "[poster]")
        if spec.grid.count > 0:
            parts.append(
                f"[t]scale={THUMB_W}:{THUMB_H}:force_original_aspect_ratio=decrease,"
                f"pad={THUMB_W}:{THUMB_H}:-1:-1,setsar=1,"
                f"tile={spec.grid.columns}x{spec.grid.rows}[thumbs]"
            )
    return ";".join(parts)


def _video_options(spec: RenderSpec, rung: Rung) -> list[str]:
    """The encoder's settings for one rendition: the seed's MP4 settings, and for HLS the bit
    rate cap and keyframes every KEYFRAME_SECONDS, the same in every rendition."""
    options = [
        "-c:v",
        "libx264",
        "-preset",
        spec.x264_preset,
        "-crf",
        str(spec.crf),
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        # Frames keep their source times (a variable frame rate stays variable).
        "-fps_mode",
        "vfr",
    ]
    if spec.hdr:
        options += SDR_TAGS
    if spec.streaming:
        if rung.maxrate_kbps:
            options += ["-maxrate", f"{rung.maxrate_kbps}k", "-bufsize", f"{rung.bufsize_kbps}k"]
        options += [
            "-sc_threshold",
            "0",
            "-force_key_frames",
            f"expr:gte(t,n_forced*{KEYFRAME_SECONDS})",
        ]
    return options


def hls_muxer(directory: Path, ts_offset: float) -> list[str]:
    """MPEG-TS segments of about SEGMENT_SECONDS in `directory`, timestamps not shifted."""
    return [
        "-muxdelay",
        "0",
        "-muxpreload",
        "0",
        "-avoid_negative_ts",
        "disabled",
        "-output_ts_offset",
        f"{ts_offset:.6f}",
        "-f",
        "hls",
        "-hls_time",
        str(SEGMENT_SECONDS),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "mpegts",
        "-hls_segment_filename",
        str(directory / "seg-%05d.ts"),
        str(directory / PLAYLIST_FILE),
    ]


def render_args(
    ffmpeg_path: str,
    input_url: str,
    out_dir: Path,
    spec: RenderSpec,
    span: tuple[float, float] | None = None,
) -> list[str]:
    """The whole run. `span` (seek, length): a segment of the source (no audio: the segmented
    path encodes the audio once, in its own task), each output limited to `length`.

    Outputs in `out_dir`: VIDEO_FILE, or HLS_DIR/<rendition>/ (and HLS_DIR/audio/); POSTER_FILE;
    THUMBS_FILE.
    """
    seek = ["-ss", f"{span[0]:.6f}"] if span else []
    limit = ["-t", f"{span[1]:.6f}"] if span else []
    args = [
        *base_args(ffmpeg_path),
        *input_options(input_url),
        *seek,
        # ... and on the input too: with only the outputs limited, ffmpeg (5.1) went on decoding
        # the rest of the file after the span (tests/integration/test_streaming_input.py)
        *limit,
        "-i",
        input_url,
        "-filter_complex",
        filter_graph(spec),
    ]
    audio = spec.audio_stream if span is None else None
    for i, rung in enumerate(spec.rungs):
        args += ["-map", f"[v{i}]"]
        if not spec.streaming:
            args += ["-map", f"0:{audio}", *audio_codec(False)] if audio is not None else ["-an"]
            args += [*_video_options(spec, rung), *strip_metadata(), *limit]
            args += (["-movflags", "+faststart"] if span is None else []) + [
                "-f",
                "mp4",
                str(out_dir / VIDEO_FILE),
            ]
            continue
        directory = out_dir / HLS_DIR / spec.names[i]
        args += ["-an", *_video_options(spec, rung), *strip_metadata(), *limit]
        args += hls_muxer(directory, spec.ts_offset)
    if spec.streaming and audio is not None:
        directory = out_dir / HLS_DIR / AUDIO_RENDITION
        args += ["-map", f"0:{audio}", "-vn", *audio_codec(spec.audio_copy), *strip_metadata()]
        args += hls_muxer(directory, spec.ts_offset)
    if spec.grid is not None and spec.poster:
        args += ["-map", "[poster]", *limit, "-frames:v", "1", "-update", "1", "-q:v", "3"]
        args += ["-f", "image2", str(out_dir / POSTER_FILE)]
    if spec.grid is not None and spec.grid.count > 0:
        args += ["-map", "[thumbs]", *limit, "-frames:v", "1", "-update", "1", "-q:v", "5"]
        args += ["-f", "image2", str(out_dir / THUMBS_FILE)]
    return args


def hls_audio_args(
    ffmpeg_path: str, input_url: str, out_dir: Path, audio_stream: int, *, copy: bool
) -> list[str]:
    """The whole file's audio as an HLS audio rendition (the segmented path's audio task)."""
    return [
        *audio_only_args(ffmpeg_path, input_url, audio_stream, copy=copy),
        *hls_muxer(out_dir / HLS_DIR / AUDIO_RENDITION, TS_OFFSET),
    ]


def output_dirs(out_dir: Path, spec: RenderSpec, with_audio: bool) -> list[Path]:
    """The directories the HLS muxer writes into (ffmpeg does not create them)."""
    if not spec.streaming:
        return []
    dirs = [out_dir / HLS_DIR / name for name in spec.names]
    return dirs + ([out_dir / HLS_DIR / AUDIO_RENDITION] if with_audio else [])


def thumb_grid(
    duration: float, start: float = 0.0, end: float | None = None, offset: float | None = None
) -> ThumbGrid:
    """The grid points a run over source time [start, end) takes (the whole source by default),
    at chalicelib.outputs.thumbnails' interval for the source's duration: one sheet of ten
    columns for the whole source, one row for a segment. `offset`: the source time the run's
    frame times count from (a segment's seek point)."""
    interval = interval_for(duration)
    stop = duration if end is None else min(end, duration)
    points = points_between(interval, start, stop)
    count = len(points)
    columns = min(10, count) if end is None else count
    return ThumbGrid(
        interval=interval,
        first=points.start if count else 0,
        count=count,
        offset=start if offset is None else offset,
        end=end,
        columns=max(columns, 1),
    )
