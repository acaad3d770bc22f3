"""16. The presets, the poster and the thumbnails: the 30 s 1080p30 clip (the `worker` benchmark's
small one, ~40 MB), on the local file.

- each preset through the worker's transcoder (`FFmpegTranscoder.render`: probe, the one ffmpeg
  run, the outputs probed) against bare ffmpeg running the same command line (the baseline);
- the poster and the thumbnail sprite: the same command without their two outputs, and the
  uploads of the poster, the sprite and the WebVTT index to the local S3; their difference is
  what they add to the worker;
- the HLS ladder of one 60 s segment (the segmented path's task): every rendition from one
  decode (what a task does) against one command per rendition (what a task per rendition and
  segment would do).

Interleaved per round, so the machine's load weighs on a figure and its baseline alike.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.core import BenchResult, Context, Table, children_cpu, median
from benchmarks.worker import CLIPS
from benchmarks.worker import make_clip as make_worker_clip
from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.adapters.ffmpeg import render as rendering
from chalicelib.config import Settings
from chalicelib.domain import Preset

NAME = "outputs"
TITLE = "Presets, poster and thumbnails: 30 s 1080p30 clip"


def timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command line."""
    cpu, started = children_cpu(), time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - started, children_cpu() - cpu


def spec_for(
    transcoder: FFmpegTranscoder, clip: Path, preset: Preset, extras: bool = True
) -> rendering.RenderSpec:
    """The spec `render` builds for the clip (with or without the poster and the sprite)."""
    spec = transcoder.render_spec(transcoder.probe(str(clip), timeout=60), preset)
    return spec if extras else dataclasses.replace(spec, grid=None, poster=False)


def bare(
    transcoder: FFmpegTranscoder, clip: Path, spec: rendering.RenderSpec, out: Path
) -> tuple[float, float]:
    out.mkdir(parents=True)
    for directory in rendering.output_dirs(out, spec, spec.audio_stream is not None):
        directory.mkdir(parents=True, exist_ok=True)
    return timed(rendering.render_args(transcoder.ffmpeg_path, str(clip), out, spec))


def through_transcoder(
    transcoder: FFmpegTranscoder, clip: Path, preset: Preset, out: Path
) -> tuple[float, float]:
    out.mkdir(parents=True)
    cpu, started = children_cpu(), time.perf_counter()
    transcoder.render(str(clip), out, preset)
    return time.perf_counter() - started, children_cpu() - cpu


def run(ctx: Context, res: BenchResult) -> None:
    settings = Settings()
    transcoder = FFmpegTranscoder.from_settings(settings)
    name, bitrate, noise = CLIPS[0]
    clip = make_worker_clip(name, bitrate, noise)
    rounds = ctx.n(2, 1)
    ctx.say(f"clip {clip.name}: {clip.stat().st_size / 1e6:.0f} MB, {rounds} round(s)")
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}

    def note(label: str, measured: tuple[float, float]) -> None:
        walls.setdefault(label, []).append(measured[0])
        cpus.setdefault(label, []).append(measured[1])
        ctx.say(f"{label}: {measured[0]:.1f} s ({measured[1]:.1f} CPU-s)")

    with tempfile.TemporaryDirectory(prefix="outputs-", dir=ctx.tmp) as tmp:
        work = Path(tmp)
        for r in range(rounds):
            for preset in Preset:
                note(
                    f"{preset.value} bare",
                    bare(transcoder, clip, spec_for(transcoder, clip, preset), work / f"{r}-{preset}-bare"),
                )
                note(
                    f"{preset.value} worker",
                    through_transcoder(transcoder, clip, preset, work / f"{r}-{preset}-worker"),
                )
            plain = spec_for(transcoder, clip, Preset.MP4_720P, extras=False)
            note("mp4-720p without poster and sprite", bare(transcoder, clip, plain, work / f"{r}-plain"))
            note("poster, sprite, index: uploads", _uploads(ctx, work / f"{r}-{Preset.MP4_720P}-bare"))
        ladder = _ladder_per_segment(ctx, transcoder, clip, work)

    table = Table(
        f"{TITLE} (x264 {settings.transcode_preset}, crf {settings.transcode_crf}; median of {rounds})",
        ["preset", "worker s", "bare ffmpeg s", "ratio", "worker CPU-s", "bare CPU-s"],
    )
    res.tables.append(table)
    rows: dict[str, Any] = {}
    for preset in Preset:
        w, b = median(walls[f"{preset.value} worker"]), median(walls[f"{preset.value} bare"])
        wc, bc = median(cpus[f"{preset.value} worker"]), median(cpus[f"{preset.value} bare"])
        table.add(preset.value, w, b, w / b, wc, bc)
        rows[preset.value] = {
            "worker_s": round(w, 2),
            "bare_s": round(b, 2),
            "worker_cpu_s": round(wc, 1),
            "bare_cpu_s": round(bc, 1),
        }
    res.data["presets"] = rows

    with_extras, without = median(walls["mp4-720p bare"]), median(walls["mp4-720p without poster and sprite"])
    cpu_with, cpu_without = median(cpus["mp4-720p bare"]), median(cpus["mp4-720p without poster and sprite"])
    uploads = median(walls["poster, sprite, index: uploads"])
    added = with_extras - without + uploads
    extras = Table(
        "Poster and thumbnail sprite (mp4-720p): what they add to the worker",
        ["run", "seconds", "CPU-s"],
    )
    extras.add("ffmpeg with the poster and sprite outputs", with_extras, cpu_with)
    extras.add("ffmpeg without them", without, cpu_without)
    extras.add("uploads: poster, sprite, WebVTT index", uploads, "")
    extras.add("added by the poster and sprite", added, cpu_with - cpu_without)
    res.tables.append(extras)
    res.data["poster_sprite"] = {
        "added_s": round(added, 2),
        "added_cpu_s": round(cpu_with - cpu_without, 2),
        "uploads_s": round(uploads, 3),
        "share_of_encode": round(added / without, 3) if without else None,
    }
    res.tables.append(ladder)


def _uploads(ctx: Context, out: Path) -> tuple[float, float]:
    """Upload the run's poster and sprite and a WebVTT index to the local S3 (as the worker does)."""
    s3 = ctx.stack.client("s3")
    bucket = ctx.stack.env["R2_BUCKET"]
    started = time.perf_counter()
    s3.upload_file(str(out / rendering.POSTER_FILE), bucket, "bench/poster.jpg")
    s3.upload_file(str(out / rendering.THUMBS_FILE), bucket, "bench/thumbs/00000.jpg")
    s3.put_object(Bucket=bucket, Key="bench/thumbnails.vtt", Body=b"WEBVTT\n" * 200)
    return time.perf_counter() - started, 0.0


def _ladder_per_segment(ctx: Context, transcoder: FFmpegTranscoder, clip: Path, work: Path) -> Table:
    """One segment of the HLS ladder: one command for every rendition, or one per rendition."""
    full = spec_for(transcoder, clip, Preset.HLS)
    span = (0.0, 30.0)  # the whole 30 s clip as one segment
    one = dataclasses.replace(full, audio_stream=None, grid=None, poster=False)
    out = work / "ladder-one"
    out.mkdir()
    for d in rendering.output_dirs(out, one, with_audio=False):
        d.mkdir(parents=True, exist_ok=True)
    together = timed(rendering.render_args(transcoder.ffmpeg_path, str(clip), out, one, span=span))
    apart = []
    for i, rung in enumerate(full.rungs):
        single = dataclasses.replace(one, rungs=(rung,), names=(full.names[i],))
        out = work / f"ladder-{rung.name}"
        out.mkdir()
        for d in rendering.output_dirs(out, single, with_audio=False):
            d.mkdir(parents=True, exist_ok=True)
        apart.append(timed(rendering.render_args(transcoder.ffmpeg_path, str(clip), out, single, span=span)))
    table = Table(
        "The HLS ladder of one segment (30 s of 1080p30): one decode for all renditions, or one command each",
        ["run", "seconds", "CPU-s"],
    )
    table.add("one command, 1080p + 720p + 480p (a task per segment)", together[0], together[1])
    for rung, (seconds, cpu) in zip(full.rungs, apart, strict=True):
        table.add(f"{rung.name} alone (a task per rendition and segment)", seconds, cpu)
    table.add("the three alone, summed", sum(s for s, _ in apart), sum(c for _, c in apart))
    alone = ", ".join(f"{s:.1f}" for s, _ in apart)
    ctx.say(f"ladder: together {together[0]:.1f} s ({together[1]:.1f} CPU-s); alone {alone} s")
    return table
