"""10. Long videos in segments: a 1080p30 clip (10 minutes; 3 with --quick) to 720p.

- single pass: FFmpegTranscoder.transcode on the local file (what a short video gets);
- segmented, end to end: POST /jobs/{id}/start until completed, with WORKERS=1 and WORKERS=4
  worker threads on the local stack (SEGMENT_SECONDS 60), each stage timed inside the worker
  (survey + plan, every segment, the audio, the stitch);
- the audio task both ways on the local file: stream copy (what the clip's AAC audio gets) and
  the AAC encode (what any other audio gets);
- the `hls` preset through the same path with WORKERS=4: time to the first playable segment (the
  stream published: the audio and the first segment's ladder done) against time to completed,
  and its prediction for Lambda from the measured segment times;
- a prediction for Lambda with N parallel workers from those per-stage times:
  plan + (waves of the slowest segment, or the audio task if longer) + stitch, where the plan,
  the audio and the stitch grow with the video's length and a segment does not; for a source
  whose audio is AAC-LC mono/stereo (copied) and for any other (encoded).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from benchmarks.core import BenchResult, Context, Table, median
from benchmarks.fixtures import quiesce, tenant
from chalicelib import bootstrap
from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.processing.context import Services
from tests.support.media import make_long_form_clip, stream_facts
from tests.support.stack import Workers

NAME = "segmented"
TITLE = "Long video in segments: 1080p30 to 720p"
WIDTH, HEIGHT, FPS = 1920, 1080, 30
SEGMENT_SECONDS = 60.0
TIMEOUT = 3600.0
# The deployed worker has 3008 MB, about 1.7 vCPU (1769 MB = 1 vCPU); the local numbers come from
# 2 cores that x264 keeps busy, so a Lambda worker is predicted this much slower per stage.
LAMBDA_MEMORY_MB = 3008
LAMBDA_SLOWDOWN = 2 / (LAMBDA_MEMORY_MB / 1769)
LAMBDA_LIMIT_SECONDS = 900.0
TARGET = (3600.0, 90.0)  # a 60-minute video ready in 90 s
Row = Callable[[str, float, str], None]


class TimedSegmenter:
    """The real segmenter, each call timed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.times: dict[str, list[float]] = {"survey": [], "segment": [], "audio": [], "stitch": []}

    def _timed(self, kind: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.times[kind].append(time.perf_counter() - started)

    def probe_duration(self, input_url: str) -> float | None:
        return self.inner.probe_duration(input_url)

    def survey(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("survey", self.inner.survey, *args, **kwargs)

    def render_segment(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("segment", self.inner.render_segment, *args, **kwargs)

    def encode_audio(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("audio", self.inner.encode_audio, *args, **kwargs)

    def stitch(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("stitch", self.inner.stitch, *args, **kwargs)


@dataclass
class Stages:
    """Measured seconds per stage for a video of `duration` seconds."""

    duration: float
    plan: float  # probe + survey + plan + queueing the tasks
    segments: list[float] = field(default_factory=list)
    audio: float = 0.0  # the audio task encoding the soundtrack to AAC
    stitch: float = 0.0
    audio_copy: float | None = None  # the audio task stream-copying an AAC soundtrack


def _audio(stages: Stages, scale: float, slowdown: float, aac: bool) -> float:
    # A copy is reading and writing (like the plan and the stitch), not an encode: not slowed down.
    if aac and stages.audio_copy is not None:
        return stages.audio_copy * scale
    return stages.audio * scale * slowdown


def breakdown(
    stages: Stages, workers: int, duration: float, slowdown: float = LAMBDA_SLOWDOWN, aac: bool = False
) -> dict[str, float]:
    """The predicted terms, in seconds: plan, segments (their waves), audio, stitch.

    Plan, audio and stitch scale with the length (they read or write the whole file); a segment
    is SEGMENT_SECONDS of video whatever the length, so its time does not. Segments run in waves
    of `workers`; the audio task runs beside them (one more task in the first wave). The local
    plan and stitch are mostly reading and writing, so only the encodes get `slowdown`. `aac`:
    the source's audio is AAC-LC mono/stereo, so the audio task copies it (`audio_copy`).
    """
    scale = duration / stages.duration
    tasks = math.ceil(duration / SEGMENT_SECONDS) + 1
    waves = math.ceil(tasks / max(workers, 1))
    return {
        "plan": stages.plan * scale,
        "segments": waves * max(stages.segments) * slowdown,
        "audio": _audio(stages, scale, slowdown, aac),
        "stitch": stages.stitch * scale,
    }


def predict(
    stages: Stages, workers: int, duration: float, slowdown: float = LAMBDA_SLOWDOWN, aac: bool = False
) -> float:
    """Seconds to result on Lambda with `workers` parallel workers for a video of `duration` s."""
    terms = breakdown(stages, workers, duration, slowdown, aac)
    return terms["plan"] + max(terms["segments"], terms["audio"]) + terms["stitch"]


def largest_within(
    stages: Stages, workers: int, limit: float = LAMBDA_LIMIT_SECONDS, aac: bool = False
) -> float:
    """The longest video (s) whose predicted time to result is within `limit` (bisection)."""
    low, high = 0.0, 48 * 3600.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if predict(stages, workers, mid, aac=aac) <= limit else (low, mid)
    return low


def through(ctx: Context, res: BenchResult, data: bytes, workers_n: int, timed: TimedSegmenter) -> float:
    owner = tenant(ctx.stack, ctx.api_url, credits=2)
    workers = Workers(ctx.stack)
    try:
        for _ in range(workers_n):
            workers.start()
        job = owner.api.create(data, "lecture.mp4")
        started = time.perf_counter()
        r = owner.api.post(f"/jobs/{job['id']}/start")
        assert r.status_code == 202, r.text
        done = owner.api.wait_for(job["id"], "completed", "failed", timeout=TIMEOUT)
        seconds = time.perf_counter() - started
    finally:
        workers.stop()
    res.check(f"WORKERS={workers_n}: completed", done["status"] == "completed", str(done.get("error")))
    res.check(f"WORKERS={workers_n}: one credit", owner.api.credits() == 1, str(owner.api.credits()))
    return seconds


def setup(ctx: Context, res: BenchResult, title: str) -> tuple[Path, float, Any, Row]:
    """The long clip (10 minutes; 3 with --quick), the settings and the table's `row`."""
    seconds = 180.0 if ctx.quick else 600.0  # above SEGMENT_THRESHOLD_SECONDS (120)
    clip = ctx.tmp / f"clip-1080p30-{seconds:.0f}s.mp4"
    t0 = time.perf_counter()
    make_long_form_clip(clip, seconds, width=WIDTH, height=HEIGHT, fps=FPS, keyframe_every=2.0)
    size_mb = clip.stat().st_size / 1e6
    ctx.say(f"clip: {seconds:.0f} s, {size_mb:.0f} MB, made in {time.perf_counter() - t0:.0f} s")
    settings = bootstrap.services().settings.model_copy(update={"segment_seconds": SEGMENT_SECONDS})
    table = Table(
        f"{title} ({seconds / 60:.0f} min, {size_mb:.0f} MB; preset {settings.transcode_preset}, "
        f"crf {settings.transcode_crf}; segments of {SEGMENT_SECONDS:.0f} s)",
        ["run", "seconds", "x realtime", "notes"],
    )
    res.tables.append(table)
    rows: dict[str, Any] = {}
    res.data["rows"] = rows

    def row(label: str, value: float, notes: str = "") -> None:
        table.add(label, value, seconds / value, notes)
        rows[label] = {"seconds": round(value, 2), "notes": notes}
        ctx.say(f"{label}: {value:.1f} s {notes}")

    return clip, seconds, settings, row


def run(ctx: Context, res: BenchResult) -> None:
    clip, seconds, settings, row = setup(ctx, res, TITLE)
    real = bootstrap.services()
    started = time.perf_counter()
    out = ctx.tmp / "single.mp4"
    FFmpegTranscoder.from_settings(settings).transcode(str(clip), out)
    single = time.perf_counter() - started
    row("single pass (local file)", single, f"{stream_facts(out)['video']['frames']:.0f} frames")

    quiesce(ctx.stack)
    data = clip.read_bytes()
    measured: dict[int, tuple[float, TimedSegmenter]] = {}
    for workers_n in (1, 4):
        assert real.segmenter is not None
        timed = TimedSegmenter(real.segmenter)
        bootstrap.override(Services(settings, real.repo, real.store, real.queue, real.transcoder, timed))
        try:
            measured[workers_n] = (through(ctx, res, data, workers_n, timed), timed)
        finally:
            bootstrap.override(None)
        total, timed = measured[workers_n]
        segs = timed.times["segment"]
        row(
            f"segmented, WORKERS={workers_n}, end to end",
            total,
            f"{len(segs)} segments, median {median(segs):.1f} s, slowest {max(segs):.1f} s; "
            f"survey {timed.times['survey'][0]:.1f} s, audio {timed.times['audio'][0]:.1f} s, "
            f"stitch {timed.times['stitch'][0]:.1f} s",
        )
    ratio = measured[1][0] / measured[4][0]
    res.notes.append(
        f"WORKERS=1 / WORKERS=4 = {ratio:.2f} (bounded by this machine's cores, not the design)."
    )
    encode = _audio_both_ways(ctx, real.segmenter, clip, row)
    _predictions(ctx, res, measured[1][1], seconds, encode)
    quiesce(ctx.stack)
    hls(ctx, res, data, seconds, settings, row)


def hls(ctx: Context, res: BenchResult, data: bytes, seconds: float, settings: Any, row: Row) -> None:
    """The hls preset, WORKERS=4: the first playable segment, then completed (issue 16)."""
    real = bootstrap.services()
    assert real.segmenter is not None
    timed = TimedSegmenter(real.segmenter)
    bootstrap.override(Services(settings, real.repo, real.store, real.queue, real.transcoder, timed))
    owner = tenant(ctx.stack, ctx.api_url, credits=2)
    workers = Workers(ctx.stack)
    try:
        for _ in range(4):
            workers.start()
        r = owner.api.post(
            "/jobs",
            json={"filename": "talk.mp4", "contentType": "video/mp4", "size": len(data), "preset": "hls"},
        )
        assert r.status_code == 201, r.text
        created = r.json()
        put = requests.put(
            created["upload"]["url"], data=data, headers=created["upload"]["headers"], timeout=600
        )
        assert put.status_code == 200
        job_id = created["job"]["id"]
        started = time.perf_counter()
        assert owner.api.post(f"/jobs/{job_id}/start").status_code == 202
        first = None
        while True:
            job = owner.api.job(job_id)
            if first is None and job["playable"]:
                first = time.perf_counter() - started
                done_n, total_n = job["segmentsDone"], job["segmentsTotal"]
                ctx.say(f"hls: first playable after {first:.1f} s ({done_n} of {total_n} segments)")
            if job["status"] in ("completed", "failed"):
                break
            if time.perf_counter() - started > TIMEOUT:
                raise TimeoutError("the hls job did not complete")
            time.sleep(0.5)
        done = time.perf_counter() - started
    finally:
        workers.stop()
        bootstrap.override(None)
    res.check("hls: completed", job["status"] == "completed", str(job.get("error")))
    res.check("hls: playable before it completed", first is not None and first < done, f"{first} / {done}")
    segs = timed.times["segment"]
    row(
        "hls, WORKERS=4: first playable segment",
        first or math.nan,
        "the audio and the first segment's ladder",
    )
    row(
        "hls, WORKERS=4: completed",
        done,
        f"{len(segs)} segments (ladder {job['attempts'][0]['plan']}), median {median(segs):.1f} s, "
        f"slowest {max(segs):.1f} s",
    )
    stages = Stages(
        duration=seconds,
        plan=timed.times["survey"][0],
        segments=segs,
        stitch=0.0,
        audio=0.0,
        audio_copy=timed.times["audio"][0],
    )
    package = done - (first or 0) - max(segs)  # what follows the last segment: roughly the packaging
    table = Table(
        "HLS: predicted seconds on Lambda (first playable = plan + the first segment's ladder or the "
        "audio; completed = plan + waves of the slowest segment + packaging; "
        f"encodes x {LAMBDA_SLOWDOWN:.2f})",
        [
            "workers",
            "first playable, 10 min",
            "completed, 10 min",
            "first playable, 60 min",
            "completed, 60 min",
        ],
    )
    predictions: dict[str, Any] = {}
    for n in (10, 100, 200):
        cells = []
        for duration in (600.0, 3600.0):
            terms = breakdown(stages, n, duration, aac=True)
            first_s = terms["plan"] + max(segs[0] * LAMBDA_SLOWDOWN, terms["audio"])
            done_s = (
                terms["plan"]
                + max(terms["segments"], terms["audio"])
                + max(package, 0.0) * duration / seconds
            )
            cells += [first_s, done_s]
        table.add(n, cells[0], cells[1], cells[2], cells[3])
        predictions[str(n)] = [round(c, 1) for c in cells]
    res.tables.append(table)
    res.data["hls"] = {
        "first_playable_s": round(first or math.nan, 1),
        "completed_s": round(done, 1),
        "segments_s": [round(x, 1) for x in segs],
        "predictions_first_done_600_3600": predictions,
    }


def _audio_both_ways(ctx: Context, segmenter: Any, clip: Path, row: Row) -> float:
    """The audio task on the local file, copied and encoded; returns the encode's seconds."""
    stream = segmenter.survey(str(clip)).audio_stream
    seconds: dict[bool, float] = {}
    for copy in (True, False):
        seconds[copy] = segmenter.encode_audio(str(clip), stream, ctx.tmp / f"audio-{copy}.m4a", copy=copy)
    row("audio task, stream copy (local file)", seconds[True], "AAC-LC source: -c:a copy")
    row("audio task, AAC encode (local file)", seconds[False], "any other audio: encoded")
    return seconds[False]


def _predictions(
    ctx: Context, res: BenchResult, timed: TimedSegmenter, seconds: float, audio_encode: float
) -> None:
    # WORKERS=1 ran each stage alone on the machine: the cleanest per-stage times. The clip's audio
    # is AAC-LC, so its audio task was the copy; the encode was timed on the local file.
    stages = Stages(
        duration=seconds,
        plan=timed.times["survey"][0],
        segments=timed.times["segment"],
        audio=audio_encode,
        stitch=timed.times["stitch"][0],
        audio_copy=timed.times["audio"][0],
    )
    table = Table(
        f"Predicted seconds to result on Lambda ({LAMBDA_MEMORY_MB} MB; "
        f"local encode times x {LAMBDA_SLOWDOWN:.2f}); AAC = source audio AAC-LC (copied), "
        "other = any other audio (encoded)",
        ["workers", "10 min AAC", "60 min AAC", "60 min other", "largest within 15 min (AAC / other)"],
    )
    res.tables.append(table)
    predictions: dict[str, Any] = {}
    for n in (10, 100, 200):
        ten, sixty = predict(stages, n, 600.0, aac=True), predict(stages, n, 3600.0, aac=True)
        other = predict(stages, n, 3600.0)
        largest, largest_other = largest_within(stages, n, aac=True), largest_within(stages, n)
        table.add(n, ten, sixty, other, f"{largest / 60:.0f} / {largest_other / 60:.0f} min")
        predictions[str(n)] = {
            "600s": round(ten, 1),
            "3600s": round(sixty, 1),
            "3600s_other_audio": round(other, 1),
            "largest_s": round(largest),
            "largest_s_other_audio": round(largest_other),
        }
    res.data["predictions"] = predictions
    for aac in (True, False):
        _target_note(ctx, res, stages, aac)


def _target_note(ctx: Context, res: BenchResult, stages: Stages, aac: bool) -> None:
    sixty_200 = predict(stages, 200, TARGET[0], aac=aac)
    terms = breakdown(stages, 200, TARGET[0], aac=aac)
    label = "AAC-LC audio (copied)" if aac else "other audio (encoded)"
    res.data[f"breakdown_3600s_200_{'aac' if aac else 'other'}"] = {k: round(v, 1) for k, v in terms.items()}
    res.notes.append(
        f"Target: a 60-minute 1080p video in {TARGET[1]:.0f} s. {label}: "
        f"predicted with 200 workers {sixty_200:.0f} s "
        f"({'met' if sixty_200 <= TARGET[1] else 'not met'}): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in terms.items())
        + f"; the longest term is the {max(terms, key=lambda k: terms[k])}."
    )
    ctx.say(res.notes[-1])
