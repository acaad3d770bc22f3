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
- The video is never read into Python memory: the worker hands ffmpeg a local copy (written to
  disk by boto3's ranged GETs; TRANSCODE_INPUT=download, the default) or the presigned URL, which
  ffmpeg reads itself (an HTTP URL is seekable through Range requests, so a moov-at-the-end
  upload works either way).

Errors are the ProcessingError family: `.message` is for the person, `.detail` (the stderr
tail, the presigned URL's query string removed) is for the operator.
"""

from chalicelib.adapters.ffmpeg.commands import (
    ProbeInfo,
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
from chalicelib.adapters.ffmpeg.process import FFmpegTranscoder

__all__ = [
    "FFmpegTranscoder",
    "ProbeInfo",
    "ProgressThrottle",
    "build_ffmpeg_args",
    "build_probe_args",
    "classify_stderr",
    "duration_words",
    "input_options",
    "parse_probe",
    "progress_fraction",
    "progress_seconds",
    "redact",
    "scale_filter",
]
